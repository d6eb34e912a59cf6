//! The JSON trees the answer engines read ([`super::legacy_schema`]'s schema walk and
//! [`super::schema`]'s templates), behind one trait.

use serde_json::Value;

use super::services::as_list;

/// What the answer engines read: serde_json's [`Value`] (answers upsbridge rebuilt), or the
/// borrowed tree of [`serde_json_borrow`] that the hot path parses UPS's bytes into (objects
/// as vectors, strings borrowed from the body: no hashing, no key allocation).
pub trait Node: Sized {
    /// The member `name` of an object (the first of that name), `null` included.
    fn field(&self, name: &str) -> Option<&Self>;
    /// An array's items.
    fn list(&self) -> Option<&[Self]>;
    /// An owned copy, for an answer being built.
    fn owned(&self) -> Value;
    /// An array's items, or the value itself (the legacy single-item collapse read back).
    fn items(&self) -> impl Iterator<Item = &Self>;
    /// The members of an object in order (none for anything else).
    fn entries(&self) -> impl Iterator<Item = (&str, &Self)>;
    fn is_null(&self) -> bool;
    /// An object or an array.
    fn is_structure(&self) -> bool;
    /// A string leaf.
    fn string(&self) -> Option<&str>;
    /// A number or boolean leaf, spelled out.
    fn scalar(&self) -> Option<String>;

    /// The member `name` of an object, unless absent or `null`.
    fn member(&self, name: &str) -> Option<&Self> {
        self.field(name).filter(|v| !v.is_null())
    }
    /// A leaf as answer templates take it: a string as it is, `null` as nothing, anything
    /// else as its JSON.
    fn json_text(&self) -> String {
        match self.string() {
            Some(s) => s.to_string(),
            None if self.is_null() => String::new(),
            None => self.owned().to_string(),
        }
    }
    fn is_nonempty_string(&self) -> bool {
        self.string().is_some_and(|s| !s.is_empty())
    }
    /// A leaf as text: strings as they are, numbers and booleans spelled out.
    fn text(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self.string() {
            Some(s) => Some(s.into()),
            None => self.scalar().map(Into::into),
        }
    }
}

/// UPS's answer parsed borrowed. The bytes are checked as UTF-8 once and parsed as text: a
/// parse of bytes checks every string on its own, which cost more than the rest of the parse
/// of a rate's answer.
pub fn parse_borrowed(body: &[u8]) -> Option<serde_json_borrow::Value<'_>> {
    serde_json::from_str(std::str::from_utf8(body).ok()?).ok()
}

impl Node for Value {
    fn field(&self, name: &str) -> Option<&Value> {
        self.as_object()?.get(name)
    }
    fn list(&self) -> Option<&[Value]> {
        self.as_array().map(Vec::as_slice)
    }
    fn owned(&self) -> Value {
        self.clone()
    }
    fn items(&self) -> impl Iterator<Item = &Value> {
        as_list(Some(self)).into_iter()
    }
    fn entries(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.as_object()
            .into_iter()
            .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v)))
    }
    fn is_null(&self) -> bool {
        Value::is_null(self)
    }
    fn is_structure(&self) -> bool {
        self.is_object() || self.is_array()
    }
    fn string(&self) -> Option<&str> {
        self.as_str()
    }
    fn scalar(&self) -> Option<String> {
        (self.is_number() || self.is_boolean()).then(|| self.to_string())
    }
}

impl Node for serde_json_borrow::Value<'_> {
    fn field(&self, name: &str) -> Option<&Self> {
        self.as_object()?.get(name)
    }
    fn list(&self) -> Option<&[Self]> {
        self.as_array()
    }
    fn owned(&self) -> Value {
        Value::from(self)
    }
    fn items(&self) -> impl Iterator<Item = &Self> {
        match self.as_array() {
            Some(list) => list.iter(),
            None => std::slice::from_ref(self).iter(),
        }
    }
    fn entries(&self) -> impl Iterator<Item = (&str, &Self)> {
        self.as_object().into_iter().flat_map(|m| m.iter())
    }
    fn is_null(&self) -> bool {
        serde_json_borrow::Value::is_null(self)
    }
    fn is_structure(&self) -> bool {
        self.is_object() || self.is_array()
    }
    fn string(&self) -> Option<&str> {
        self.as_str()
    }
    fn scalar(&self) -> Option<String> {
        use serde_json_borrow::Value as V;
        match self {
            V::Number(n) => Some(n.to_string()),
            V::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

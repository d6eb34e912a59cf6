//! The JSON trees the answer engines read ([`super::legacy_schema`]'s schema walk and
//! [`super::schema`]'s templates), behind one trait.

use std::cell::Cell;

use bumpalo::Bump;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::services::as_list;

/// What the answer engines read: serde_json's [`Value`] (answers upsbridge rebuilt), or the
/// [`Json`] tree in an arena that the hot path parses UPS's bytes into (strings borrowed from
/// the body: no hashing, no key allocation, nothing freed one by one).
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
    /// A leaf as answer templates take it: a string as it is (borrowed: most are written
    /// straight into an answer), `null` as nothing, anything else as its JSON.
    fn json_text(&self) -> std::borrow::Cow<'_, str> {
        match self.string() {
            Some(s) => s.into(),
            None if self.is_null() => "".into(),
            None => self.owned().to_string().into(),
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

/// UPS's answer parsed into a tree in `arena`: strings borrowed from `body` (those with an
/// escape unescaped into the arena), each object's members and each array's items one slice
/// of the arena. Nothing in the tree is freed on its own: the arena is reset as a whole
/// ([`with_arena`]). A tree of vectors (`serde_json_borrow`) grew each object's vector item
/// by item and freed them one by one: an old-XML rate's translation cost 5 % more with it.
///
/// The bytes are checked as UTF-8 once and parsed as text: a parse of bytes checks every
/// string on its own, which cost more than the rest of the parse of a rate's answer.
pub fn parse_in<'a>(arena: &'a Bump, body: &'a [u8]) -> Option<Json<'a>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut de = serde_json::Deserializer::from_str(text);
    // The items and members of the arrays and objects open, gathered here and copied into
    // the arena as one slice when their container ends. In the arena themselves: a vector
    // of 64 members is 2.5 KB, which the allocator hands out by its slow path.
    let (mut items, mut members) = (
        bumpalo::collections::Vec::with_capacity_in(16, arena),
        bumpalo::collections::Vec::with_capacity_in(64, arena),
    );
    let tree = Build {
        arena,
        items: &mut items,
        members: &mut members,
    }
    .deserialize(&mut de)
    .ok()?;
    de.end().ok()?;
    Some(tree)
}

/// Run `f` with this thread's arena for answer trees, reset afterwards: the memory of one
/// answer's tree serves the next.
pub fn with_arena<R>(f: impl FnOnce(&Bump) -> R) -> R {
    /// What an arena may keep between answers (a larger one is freed).
    const KEPT: usize = 256 << 10;
    thread_local! {
        static SPARE: Cell<Option<Bump>> = const { Cell::new(None) };
    }
    // Taken out, not borrowed: an `f` that needs an arena of its own gets a new one.
    let mut arena = SPARE.take().unwrap_or_default();
    let r = f(&arena);
    arena.reset();
    if arena.allocated_bytes() <= KEPT {
        SPARE.set(Some(arena));
    }
    r
}

/// A JSON value parsed by [`parse_in`]. `Copy`: it only points into the arena and the body.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    /// A number without fraction or exponent, ≥ 0.
    PosInt(u64),
    /// A number without fraction or exponent, < 0.
    NegInt(i64),
    Float(f64),
    Str(&'a str),
    Array(&'a [Json<'a>]),
    /// Members in document order, a repeated name included (lookups find the first).
    Object(&'a [(&'a str, Json<'a>)]),
}

/// A value of the tree being built (see [`parse_in`]).
struct Build<'a, 's> {
    arena: &'a Bump,
    items: &'s mut bumpalo::collections::Vec<'a, Json<'a>>,
    members: &'s mut bumpalo::collections::Vec<'a, (&'a str, Json<'a>)>,
}

impl<'a> Build<'a, '_> {
    /// A value inside this one, gathered on the same scratch vectors.
    fn nested(&mut self) -> Build<'a, '_> {
        Build {
            arena: self.arena,
            items: &mut *self.items,
            members: &mut *self.members,
        }
    }
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for Build<'a, '_> {
    type Value = Json<'a>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Json<'a>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for Build<'a, '_> {
    type Value = Json<'a>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Json<'a>, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json<'a>, E> {
        Ok(Json::Bool(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json<'a>, E> {
        Ok(Json::PosInt(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json<'a>, E> {
        Ok(Json::NegInt(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json<'a>, E> {
        Ok(Json::Float(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Json<'a>, E> {
        Ok(Json::Str(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json<'a>, E> {
        Ok(Json::Str(self.arena.alloc_str(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Json<'a>, A::Error> {
        let start = self.items.len();
        while let Some(item) = seq.next_element_seed(self.nested())? {
            self.items.push(item);
        }
        let items = self.arena.alloc_slice_copy(&self.items[start..]);
        self.items.truncate(start);
        Ok(Json::Array(items))
    }
    fn visit_map<M: MapAccess<'de>>(mut self, mut map: M) -> Result<Json<'a>, M::Error> {
        let start = self.members.len();
        while let Some(name) = map.next_key_seed(Name(self.arena))? {
            let value = map.next_value_seed(self.nested())?;
            self.members.push((name, value));
        }
        let members = self.arena.alloc_slice_copy(&self.members[start..]);
        self.members.truncate(start);
        Ok(Json::Object(members))
    }
}

/// A member's name: borrowed from the body, or unescaped into the arena.
struct Name<'a>(&'a Bump);

impl<'de: 'a, 'a> DeserializeSeed<'de> for Name<'a> {
    type Value = &'a str;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<&'a str, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for Name<'a> {
    type Value = &'a str;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a member name")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<&'a str, E> {
        Ok(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<&'a str, E> {
        Ok(self.0.alloc_str(v))
    }
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

impl Node for Json<'_> {
    fn field(&self, name: &str) -> Option<&Self> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| *k == name).map(|(_, v)| v),
            _ => None,
        }
    }
    fn list(&self) -> Option<&[Self]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }
    fn owned(&self) -> Value {
        match *self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(b),
            Json::PosInt(n) => n.into(),
            Json::NegInt(n) => n.into(),
            // Parsed from JSON text: finite.
            Json::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
            Json::Str(s) => s.into(),
            Json::Array(items) => items.iter().map(Json::owned).collect(),
            // A name given twice keeps its first place and its last value, as a map built
            // member by member does.
            Json::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.owned()))
                    .collect(),
            ),
        }
    }
    fn items(&self) -> impl Iterator<Item = &Self> {
        match self {
            Json::Array(items) => items.iter(),
            _ => std::slice::from_ref(self).iter(),
        }
    }
    fn entries(&self) -> impl Iterator<Item = (&str, &Self)> {
        let members: &[(&str, Json)] = match self {
            Json::Object(members) => members,
            _ => &[],
        };
        members.iter().map(|(k, v)| (*k, v))
    }
    fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }
    fn is_structure(&self) -> bool {
        matches!(self, Json::Object(_) | Json::Array(_))
    }
    fn string(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }
    fn scalar(&self) -> Option<String> {
        match self {
            Json::PosInt(n) => Some(n.to_string()),
            Json::NegInt(n) => Some(n.to_string()),
            // As the borrowed tree before it spelled them (`3.0` as `3`).
            Json::Float(f) => Some(f.to_string()),
            Json::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_in_the_arena_reads_as_serde_json_reads_the_text() {
        let text = r#"{"A":{"B":[1,-2,2.5,3.0,"x",true,null,[],{}]},"esc\"aped":"\u00e9t\u00e9",
            "C":"plain","A":"again","N":18446744073709551615}"#;
        let arena = Bump::new();
        let tree = parse_in(&arena, text.as_bytes()).unwrap();
        let value: Value = serde_json::from_str(text).unwrap();
        // A name given twice: its first place, its last value, as serde_json's map has it.
        assert_eq!(tree.owned(), value);
        // Lookups find the first of a repeated name, as templates read UPS's answers.
        assert_eq!(
            tree.field("A")
                .and_then(|a| a.field("B"))
                .map(|b| b.list().unwrap().len()),
            Some(9)
        );
        assert_eq!(tree.member("esc\"aped").and_then(Node::string), Some("été"));
        let items = tree.field("A").unwrap().field("B").unwrap();
        let scalars: Vec<_> = items.items().map(|v| v.scalar()).collect();
        assert_eq!(
            scalars[..4],
            [
                Some("1".into()),
                Some("-2".into()),
                Some("2.5".into()),
                Some("3".into())
            ]
        );
        assert!(items.items().nth(6).unwrap().is_null());
        assert_eq!(
            tree.entries().map(|(k, _)| k).collect::<Vec<_>>(),
            ["A", "esc\"aped", "C", "A", "N"]
        );
        // A single value is its own one item (the legacy single-item collapse read back).
        assert_eq!(tree.field("C").unwrap().items().count(), 1);
    }

    #[test]
    fn what_is_not_one_json_document_is_no_tree() {
        let arena = Bump::new();
        for bad in [&b"{"[..], b"{\"a\":1} x", b"", b"\xff", b"[1,]"] {
            assert!(parse_in(&arena, bad).is_none(), "{bad:?}");
        }
        // Nested past serde_json's recursion limit: refused, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_in(&arena, deep.as_bytes()).is_none());
        assert!(parse_in(&arena, b" {\"a\":[]} ").is_some());
    }

    #[test]
    fn the_arena_is_reused_by_the_next_answer_and_a_large_one_is_not_kept() {
        let small = r#"{"RateResponse":{"Response":{"Code":"1"}}}"#;
        with_arena(|arena| assert!(parse_in(arena, small.as_bytes()).is_some()));
        // The second answer's tree is allocated in the memory the first one used.
        let reused = with_arena(|arena| {
            let before = arena.allocated_bytes();
            parse_in(arena, small.as_bytes()).unwrap();
            (before, arena.allocated_bytes())
        });
        assert!(reused.0 > 0, "the spare arena kept its memory");
        assert_eq!(reused.0, reused.1, "no new chunk for a tree that fits");
        // A tree of megabytes is built, then its arena freed rather than kept.
        let big = format!("[{}\"x\"]", "\"0123456789abcdef\",".repeat(100_000));
        with_arena(|arena| assert!(parse_in(arena, big.as_bytes()).is_some()));
        let after = with_arena(|arena| arena.allocated_bytes());
        assert!(after < 256 << 10, "kept {after} bytes");
        // An answer shaped inside another's arena gets an arena of its own.
        with_arena(|outer| {
            let a = parse_in(outer, small.as_bytes()).unwrap();
            with_arena(|inner| assert!(!std::ptr::eq(inner, outer)));
            assert!(a.field("RateResponse").is_some());
        });
    }
}

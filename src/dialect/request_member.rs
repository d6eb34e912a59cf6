//! What a request's REST call is read from when its service reads nothing but the `Request`
//! member ([`super::services::reads_request_member_only`]: rates, shipments, most of the
//! traffic): the request option and the customer context.
//!
//! The one-pass readers hold that member as JSON text. Reading the two strings straight from
//! it, instead of building a `serde_json::Value` of the member and looking them up, was a
//! tree built and dropped for every rate, in every body dialect.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Error, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// The request option and the customer context of a `Request` member, each when it is a
/// string (trimmed, not empty), as `to_rest` reads them from a request's tree.
#[derive(Debug, Default)]
pub struct RequestMember<'a> {
    option: Option<Cow<'a, str>>,
    customer_context: Option<Cow<'a, str>>,
}

impl<'a> RequestMember<'a> {
    /// Read from a request object's tree (the value of `RateRequest` and the like).
    pub fn of(request: &'a Value) -> RequestMember<'a> {
        let text = |v: Option<&'a Value>| v.and_then(Value::as_str).map(Cow::Borrowed);
        let member = request.get("Request");
        RequestMember {
            option: text(member.and_then(|m| m.get("RequestOption"))),
            customer_context: text(
                member
                    .and_then(|m| m.get("TransactionReference"))
                    .and_then(|r| r.get("CustomerContext")),
            ),
        }
    }

    /// Read from the JSON text of the `Request` member's value, as [`RequestMember::of`]
    /// reads it from the tree that text would make: a member repeated counts by its last
    /// copy, a value that is not a string is no string. An error if the text is not JSON.
    /// (Text, not bytes: read from bytes, serde_json checks each string's UTF-8 again, which
    /// was a third of this read.)
    pub fn from_json(json: &'a str) -> serde_json::Result<RequestMember<'a>> {
        serde_json::from_str(json)
    }

    /// `RequestOption`, trimmed, if it is a string with text.
    pub fn option(&self) -> Option<&str> {
        trimmed(self.option.as_deref())
    }

    /// `TransactionReference/CustomerContext`, trimmed, if it is a string with text.
    pub fn customer_context(&self) -> Option<&str> {
        trimmed(self.customer_context.as_deref())
    }
}

/// Any JSON value, read for its text: a string's (borrowed when it holds no escape), or
/// `None` for any other value, which is read past.
pub struct JsonText<'a>(pub Option<Cow<'a, str>>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for JsonText<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(JsonText(Part::Text.deserialize(d)?.into_text()))
    }
}

/// The member read where it stands in a larger document (see [`RequestMember::from_json`]).
impl<'de> serde::Deserialize<'de> for RequestMember<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Part::Request.deserialize(d)? {
            Found::Request(member) => member,
            _ => RequestMember::default(),
        })
    }
}

fn trimmed(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| !t.is_empty())
}

/// Which value is being read: the `Request` member, its `TransactionReference`, or a string
/// (a member's name, `RequestOption`, `CustomerContext`). Any other JSON is read past.
#[derive(Clone, Copy)]
enum Part {
    Request,
    Reference,
    Text,
}

enum Found<'a> {
    Request(RequestMember<'a>),
    Context(Option<Cow<'a, str>>),
    Text(Cow<'a, str>),
    Nothing,
}

impl<'a> Found<'a> {
    fn into_text(self) -> Option<Cow<'a, str>> {
        match self {
            Found::Text(text) => Some(text),
            _ => None,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Part {
    type Value = Found<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Found<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl Part {
    /// A string read: kept where a string is wanted (made only then: it may be a copy).
    fn text<'a>(self, text: impl FnOnce() -> Cow<'a, str>) -> Found<'a> {
        match self {
            Part::Text => Found::Text(text()),
            Part::Request | Part::Reference => Found::Nothing,
        }
    }
}

impl<'de> Visitor<'de> for Part {
    type Value = Found<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: Error>(self, s: &'de str) -> Result<Found<'de>, E> {
        Ok(self.text(|| Cow::Borrowed(s)))
    }

    fn visit_str<E: Error>(self, s: &str) -> Result<Found<'de>, E> {
        Ok(self.text(|| Cow::Owned(s.to_owned())))
    }

    fn visit_bool<E: Error>(self, _: bool) -> Result<Found<'de>, E> {
        Ok(Found::Nothing)
    }

    fn visit_i64<E: Error>(self, _: i64) -> Result<Found<'de>, E> {
        Ok(Found::Nothing)
    }

    fn visit_u64<E: Error>(self, _: u64) -> Result<Found<'de>, E> {
        Ok(Found::Nothing)
    }

    fn visit_f64<E: Error>(self, _: f64) -> Result<Found<'de>, E> {
        Ok(Found::Nothing)
    }

    fn visit_unit<E: Error>(self) -> Result<Found<'de>, E> {
        Ok(Found::Nothing)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Found<'de>, A::Error> {
        while items.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Found::Nothing)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Found<'de>, A::Error> {
        let mut request = RequestMember::default();
        let mut context = None;
        while let Some(name) = members.next_key_seed(Part::Text)? {
            let name = name.into_text().unwrap_or_default();
            // The last of a repeated member counts, as in a tree (a later copy replaces).
            match (self, &*name) {
                (Part::Request, "RequestOption") => {
                    request.option = members.next_value_seed(Part::Text)?.into_text();
                }
                (Part::Request, "TransactionReference") => {
                    request.customer_context = match members.next_value_seed(Part::Reference)? {
                        Found::Context(context) => context,
                        _ => None,
                    };
                }
                (Part::Reference, "CustomerContext") => {
                    context = members.next_value_seed(Part::Text)?.into_text();
                }
                _ => {
                    members.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(match self {
            Part::Request => Found::Request(request),
            Part::Reference => Found::Context(context),
            Part::Text => Found::Nothing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The member read from its text equals the member read from its tree.
    fn reads_as_the_tree(member: &str) -> RequestMember<'_> {
        let from_text = RequestMember::from_json(member).unwrap();
        let request =
            serde_json::json!({ "Request": serde_json::from_str::<Value>(member).unwrap() });
        let from_tree = RequestMember::of(&request);
        assert_eq!(from_text.option(), from_tree.option(), "{member}");
        assert_eq!(
            from_text.customer_context(),
            from_tree.customer_context(),
            "{member}"
        );
        from_text
    }

    #[test]
    fn the_option_and_context_are_read_as_the_tree_reads_them() {
        let m = reads_as_the_tree(
            r#"{"RequestOption":" Shop ","TransactionReference":{"CustomerContext":"c-1"}}"#,
        );
        assert_eq!(
            (m.option(), m.customer_context()),
            (Some("Shop"), Some("c-1"))
        );
        let m = reads_as_the_tree(r#"{"RequestOption":"Rate","RequestOption":"Shop"}"#);
        assert_eq!(m.option(), Some("Shop"), "the last copy counts");
        let m = reads_as_the_tree(
            r#"{"TransactionReference":{"CustomerContext":"a"},"TransactionReference":{}}"#,
        );
        assert_eq!(m.customer_context(), None, "the last copy counts, whole");
        let m = reads_as_the_tree(r#"{"Request\u004fption":"Sh\u006fp"}"#);
        assert_eq!(m.option(), Some("Shop"), "escaped names and text");
        let m = reads_as_the_tree(r#"{"RequestOption":["Shop"],"Other":{"RequestOption":"x"}}"#);
        assert_eq!(m.option(), None, "not a string");
        for other in [
            r#"{"RequestOption":"  "}"#,
            r#"{"RequestOption":1,"TransactionReference":"c"}"#,
            r#"{"TransactionReference":[{"CustomerContext":"c"}]}"#,
            r#"{"TransactionReference":{"CustomerContext":{"CustomerContext":"c"}}}"#,
            r#"{"TransactionReference":{"Other":{"CustomerContext":"c"}}}"#,
            r#"["Shop"]"#,
            r#""Shop""#,
            r#"true"#,
            r#"12.5"#,
            r#"{}"#,
        ] {
            let m = reads_as_the_tree(other);
            assert_eq!((m.option(), m.customer_context()), (None, None), "{other}");
        }
    }

    #[test]
    fn json_text_keeps_strings_only() {
        for (json, text) in [
            (r#""a\"b""#, Some("a\"b")),
            (r#"" K1 ""#, Some(" K1 ")),
            ("12", None),
            ("null", None),
            (r#"{"Username":"u"}"#, None),
            (r#"["u"]"#, None),
        ] {
            let read = serde_json::from_str::<JsonText>(json).unwrap();
            assert_eq!(read.0.as_deref(), text, "{json}");
        }
    }

    #[test]
    fn text_that_is_not_json_is_an_error() {
        for bad in [
            r#"{"RequestOption":"Shop""#,
            r#"{"RequestOption":"Shop"} x"#,
            "",
            "{,}",
        ] {
            assert!(RequestMember::from_json(bad).is_err(), "{bad}");
        }
    }
}

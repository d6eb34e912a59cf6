//! A request's header fields as the dialects and the pipeline read them.
//!
//! hyper's path has them in an `http::HeaderMap`. The express lane has them where httparse
//! found them, in its read buffer: building a `HeaderMap` there (a hash and an insert per
//! field, a reference count per value, an allocation) cost more than every lookup the
//! pipeline makes, which is a handful of names in about ten fields. So the lane lends them
//! as they are, and a lookup walks them.

/// The header fields of one request. Names are compared without regard to case.
#[derive(Clone, Copy)]
pub enum Fields<'a> {
    /// hyper's.
    Map(&'a http::HeaderMap),
    /// The express lane's: names as the client wrote them and values, in the client's order,
    /// both checked by httparse (names are tokens; values have no control byte but tab, the
    /// same rules as `http`'s `HeaderName` and `HeaderValue`).
    Raw(&'a [(&'a [u8], &'a [u8])]),
}

impl<'a> Fields<'a> {
    /// The first value of `name` (lower case).
    pub fn get(self, name: &'static str) -> Option<&'a [u8]> {
        match self {
            Fields::Map(map) => map.get(name).map(|v| v.as_bytes()),
            Fields::Raw(fields) => fields
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, v)| *v),
        }
    }

    pub fn contains(self, name: &'static str) -> bool {
        self.get(name).is_some()
    }

    /// Every field, name and value, in order (a map's names are lower case).
    pub fn each(self, mut seen: impl FnMut(&'a [u8], &'a [u8])) {
        match self {
            Fields::Map(map) => map
                .iter()
                .for_each(|(n, v)| seen(n.as_str().as_bytes(), v.as_bytes())),
            Fields::Raw(fields) => fields.iter().for_each(|(n, v)| seen(n, v)),
        }
    }

    /// How many fields there are.
    pub fn len(self) -> usize {
        match self {
            Fields::Map(map) => map.len(),
            Fields::Raw(fields) => fields.len(),
        }
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// A value as text, on the rules of `HeaderValue::to_str` (visible ASCII and tab).
pub fn text(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_and_the_same_fields_raw_answer_alike() {
        let mut map = http::HeaderMap::new();
        map.append("host", "p".parse().unwrap());
        map.append("password", "a".parse().unwrap());
        map.append("password", "b".parse().unwrap());
        map.append("x-other", "o".parse().unwrap());
        let raw: [(&[u8], &[u8]); 4] = [
            (b"Host", b"p"),
            (b"PassWORD", b"a"),
            (b"X-Other", b"o"),
            (b"password", b"b"),
        ];
        for fields in [Fields::Map(&map), Fields::Raw(&raw)] {
            assert_eq!(fields.get("password"), Some(&b"a"[..]), "the first of two");
            assert!(fields.contains("x-other"));
            assert!(!fields.contains("username"));
            assert_eq!(fields.get("username"), None);
            assert_eq!(fields.len(), 4);
            let mut names = Vec::new();
            fields.each(|n, _| names.push(n.to_ascii_lowercase()));
            names.sort();
            assert_eq!(names, [&b"host"[..], b"password", b"password", b"x-other"]);
        }
    }

    #[test]
    fn text_is_what_header_value_to_str_accepts() {
        for bytes in [
            &b"plain"[..],
            b"tab\there",
            b"",
            b"\xc3\xa9",
            b"bell\x07",
            b"del\x7f",
        ] {
            let ours = text(bytes).is_some();
            let http = http::HeaderValue::from_bytes(bytes)
                .map(|v| v.to_str().is_ok())
                .unwrap_or(false);
            assert_eq!(ours, http, "{bytes:?}");
        }
    }
}

//! XML ⇄ JSON engine shared by the SOAP and old-XML dialects (quick-xml 0.38).
//!
//! XML → tree: namespace-aware, local names kept with their namespace URI,
//! text and CDATA decoded, predefined entities and character references
//! resolved, attributes dropped except `xsi:nil`. One document is read up to the
//! end of its root element, so two concatenated documents (old XML) are split by
//! parsing, never by searching for `<?xml`.
//! Tree → JSON: text → string, empty element → `""`, repeated element → array;
//! which paths are arrays even with one element comes from [`super::schema`].
//! JSON → XML: arrays → repeated elements, `""` → empty element.
//!
//! Safety: a `<!DOCTYPE` is refused outright (no DTD, no entity expansion, so a
//! billion-laughs body costs one event), nesting is capped at [`MAX_DEPTH`],
//! the element count at [`MAX_ELEMENTS`] and namespace declarations at
//! [`MAX_NAMESPACE_DECLARATIONS`], attributes are read without the quadratic check
//! for repeats ([`is_nil`]); every input error is a
//! [`Failure::Malformed`], never a panic. This module never logs: the trees it
//! builds may hold credentials.

use std::borrow::Cow;
use std::sync::Arc;

use quick_xml::escape::{partial_escape, resolve_predefined_entity};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use serde_json::{Map, Value};

use super::tree::Node;
use super::Failure;
use crate::substring::Substring;

/// Deepest element nesting accepted (XOLTWS documents nest about 12 deep).
pub const MAX_DEPTH: usize = 64;
/// Most elements accepted in one document.
pub const MAX_ELEMENTS: usize = 100_000;
/// Most namespace declarations (`xmlns`, `xmlns:p`) accepted in one body. A resolving reader
/// looks each element's prefix up among the declarations in scope one by one, so a body of
/// a hundred thousand declarations and as many elements (10 MiB holds both) cost minutes of
/// CPU before any credential was checked; at this cap, a worst case costs under twice what a
/// plain body of [`MAX_ELEMENTS`] does. SOAP clients declare a handful, on the envelope or
/// where the namespace changes (XOLTWS payloads change it two or three times).
pub const MAX_NAMESPACE_DECLARATIONS: usize = 256;

/// What begins every namespace declaration.
pub(super) static XMLNS: Substring = Substring::new(b"xmlns");

/// One XML element: namespace URI, local name, children in order, text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// Shared: a document's elements are in a handful of namespaces.
    pub ns: Option<Arc<str>>,
    pub name: String,
    pub children: Vec<Element>,
    /// Concatenated character data (ignored when the element has children).
    pub text: String,
    /// `xsi:nil="true"`: the element stands for an absent value.
    pub nil: bool,
}

impl Element {
    /// First child with this local name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Descendant by a `/`-separated path of local names (first match at each step).
    pub fn at(&self, path: &str) -> Option<&Element> {
        path.split('/')
            .filter(|s| !s.is_empty())
            .try_fold(self, |e, seg| e.child(seg))
    }

    /// The name of the first element that has two children of the same name, in this
    /// element or below it (credential documents must say each thing once). The names
    /// seen go into a set: comparing each child with every one before it took seconds for a
    /// block of 100,000 children, read before any credential is checked. (The set hashes
    /// with SipHash's random keys: the names are the client's.)
    pub fn repeated_child(&self) -> Option<&str> {
        let mut seen = std::collections::HashSet::with_capacity(self.children.len());
        for c in &self.children {
            if !seen.insert(c.name.as_str()) {
                return Some(&c.name);
            }
            if let Some(r) = c.repeated_child() {
                return Some(r);
            }
        }
        None
    }

    /// Trimmed, non-empty text of the descendant at `path` (`""` = this element).
    pub fn text_at(&self, path: &str) -> Option<&str> {
        let e = if path.is_empty() {
            self
        } else {
            self.at(path)?
        };
        Some(e.text.trim()).filter(|t| !t.is_empty() && e.children.is_empty())
    }
}

/// [`decode`], refusing a body that declares more than [`MAX_NAMESPACE_DECLARATIONS`]
/// namespaces (every `xmlns` counts, in markup or not: text that says it merely counts too).
/// With the text, where its last `xmlns` begins (for [`onepass::Declarations`]: the search
/// that counted them is the only one a body needs).
///
/// [`onepass::Declarations`]: super::onepass::Declarations
pub fn decode_within_limits(body: &[u8]) -> Result<(Cow<'_, str>, Option<usize>), Failure> {
    let text = decode(body);
    let (mut count, mut last) = (0, None);
    for at in XMLNS.find_iter(text.as_bytes()) {
        count += 1;
        if count > MAX_NAMESPACE_DECLARATIONS {
            return Err(malformed(format_args!(
                "more than {MAX_NAMESPACE_DECLARATIONS} namespace declarations"
            )));
        }
        last = Some(at);
    }
    Ok((text, last))
}

/// Decode a body to text. The encoding comes from an XML declaration if one
/// names a non-UTF-8 encoding (`ISO-8859-1`, `windows-1252`, …, by the WHATWG
/// labels of `encoding_rs`); otherwise UTF-8, falling back to windows-1252
/// (a superset of Latin-1) for bytes that are not UTF-8, as old clients send
/// Latin-1 while declaring UTF-8 or nothing.
pub fn decode(body: &[u8]) -> Cow<'_, str> {
    if let Some(enc) = declared_encoding(body) {
        return enc.decode_without_bom_handling(body).0;
    }
    match std::str::from_utf8(body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => {
            encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(body)
                .0
        }
    }
}

/// A non-UTF-8 encoding named by any XML declaration in the body (at most the first few).
fn declared_encoding(body: &[u8]) -> Option<&'static encoding_rs::Encoding> {
    static DECLARATION: Substring = Substring::new(b"<?xml");
    static DECLARATION_END: Substring = Substring::new(b"?>");
    let mut rest = body;
    for _ in 0..4 {
        let start = DECLARATION.find(rest)?;
        let decl = &rest[start..];
        let end = DECLARATION_END.find(decl)?;
        let decl_text = &decl[..end];
        if let Some(label) = encoding_label(decl_text) {
            if let Some(enc) = encoding_rs::Encoding::for_label(label) {
                if enc != encoding_rs::UTF_8 {
                    return Some(enc);
                }
            }
        }
        rest = &decl[end..];
    }
    None
}

/// `encoding="label"` or `encoding='label'` inside a declaration.
fn encoding_label(decl: &[u8]) -> Option<&[u8]> {
    static ENCODING: Substring = Substring::new(b"encoding");
    let at = ENCODING.find(decl)?;
    let after = decl.get(at + ENCODING.needle().len()..)?;
    let after = trim_ascii_start(after).strip_prefix(b"=")?;
    let after = trim_ascii_start(after);
    let quote = *after.first()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let value = after.get(1..)?;
    let end = value.iter().position(|&b| b == quote)?;
    value.get(..end)
}

fn trim_ascii_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

fn malformed(what: impl std::fmt::Display) -> Failure {
    Failure::Malformed(format!("XML: {what}"))
}

/// Parse the first document in `text`: leading whitespace, an XML declaration,
/// comments and processing instructions are skipped, then one root element is read
/// to its end tag. Returns the root and the byte offset in `text` just after it.
pub fn parse_document(text: &str) -> Result<(Element, usize), Failure> {
    let skipped = text.len() - text.trim_start().len();
    let doc = &text[skipped..];
    if doc.is_empty() {
        return Err(Failure::Empty);
    }
    let mut reader = NsReader::from_str(doc);
    reader.config_mut().check_end_names = true;
    let mut tree = TreeBuilder::new(0, 0);
    // The namespace of the element read last: the next one is most often in the same.
    let mut last_ns: Option<Arc<str>> = None;
    loop {
        let (ns, event) = match reader.read_resolved_event() {
            // Only a start tag keeps its namespace (end tags are checked by name).
            Ok((ResolveResult::Bound(n), event @ (Event::Start(_) | Event::Empty(_)))) => {
                if last_ns.as_ref().is_none_or(|l| l.as_bytes() != n.as_ref()) {
                    last_ns = Some(Arc::from(String::from_utf8_lossy(n.as_ref()).as_ref()));
                }
                (last_ns.clone(), event)
            }
            Ok((_, event)) => (None, event),
            Err(e) => {
                return Err(malformed(format_args!(
                    "{e} (at byte {})",
                    skipped as u64 + reader.error_position()
                )))
            }
        };
        if let Some(root) = tree.feed(ns, event)? {
            return Ok((root, skipped + reader.buffer_position() as usize));
        }
    }
}

/// Builds an element tree from a reader's events: a whole document, or one element of one
/// (the SOAP header, read while the rest of the envelope is streamed).
pub struct TreeBuilder {
    stack: Vec<Element>,
    /// How deep the first element fed sits in its document (for [`MAX_DEPTH`]).
    depth0: usize,
    count: usize,
}

impl TreeBuilder {
    /// A builder for an element `depth0` deep, `count` elements into its document.
    pub fn new(depth0: usize, count: usize) -> Self {
        TreeBuilder {
            stack: Vec::new(),
            depth0,
            count,
        }
    }

    /// Elements of the document so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Feed one event (a start tag with its namespace, if it is to be kept); returns the
    /// element fed first once its end tag has been fed.
    pub fn feed(
        &mut self,
        ns: Option<Arc<str>>,
        event: Event<'_>,
    ) -> Result<Option<Element>, Failure> {
        match event {
            Event::Start(e) => {
                let el = self.start(&e, ns)?;
                self.stack.push(el);
                Ok(None)
            }
            Event::Empty(e) => {
                let el = self.start(&e, ns)?;
                Ok(close(&mut self.stack, el))
            }
            Event::End(_) => {
                let el = self
                    .stack
                    .pop()
                    .ok_or_else(|| malformed("unmatched end tag"))?;
                Ok(close(&mut self.stack, el))
            }
            Event::Eof => Err(if self.stack.is_empty() && self.count == 0 {
                malformed("no root element")
            } else {
                malformed("document ends before its root element is closed")
            }),
            other => {
                if let Some(s) = event_text(&other)? {
                    push_text(&mut self.stack, &s)?;
                }
                Ok(None)
            }
        }
    }

    /// A new element from its start tag, within the depth and count limits.
    fn start(
        &mut self,
        e: &quick_xml::events::BytesStart,
        ns: Option<Arc<str>>,
    ) -> Result<Element, Failure> {
        counted(self.depth0 + self.stack.len(), &mut self.count)?;
        Ok(Element {
            ns,
            name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
            nil: is_nil(e),
            ..Element::default()
        })
    }
}

/// One more element, `depth` deep: within [`MAX_DEPTH`] and [`MAX_ELEMENTS`]?
pub fn counted(depth: usize, count: &mut usize) -> Result<(), Failure> {
    if depth >= MAX_DEPTH {
        return Err(malformed(format_args!(
            "elements nested deeper than {MAX_DEPTH}"
        )));
    }
    *count += 1;
    if *count > MAX_ELEMENTS {
        return Err(malformed(format_args!("more than {MAX_ELEMENTS} elements")));
    }
    Ok(())
}

/// `xsi:nil="true"` (or `1`) on a start tag.
/// Attributes are not checked for repeats (an attribute given twice counts twice): quick-xml
/// 0.38 compares each with every one before it, and one start tag of a hundred thousand
/// attributes (a megabyte) took minutes.
pub fn is_nil(e: &quick_xml::events::BytesStart) -> bool {
    // Most elements have no attributes: nothing to parse.
    !e.attributes_raw().trim_ascii().is_empty()
        && e.attributes().with_checks(false).flatten().any(|a| {
            a.key.local_name().as_ref() == b"nil" && matches!(a.value.as_ref(), b"true" | b"1")
        })
}

/// The character data an event stands for (text and CDATA decoded, a character reference
/// or predefined entity resolved), `None` for events that carry none; a DOCTYPE is refused.
pub fn event_text<'i>(event: &Event<'i>) -> Result<Option<Cow<'i, str>>, Failure> {
    Ok(Some(match event {
        Event::Text(t) => t.xml_content().map_err(malformed)?,
        Event::CData(t) => t.xml_content().map_err(malformed)?,
        Event::GeneralRef(r) if r.is_char_ref() => r
            .resolve_char_ref()
            .map_err(malformed)?
            .map(|c| Cow::Owned(String::from(c)))
            .ok_or_else(|| malformed("invalid character reference"))?,
        Event::GeneralRef(r) => {
            let name = r.xml_content().map_err(malformed)?;
            resolve_predefined_entity(&name)
                .map(Cow::Borrowed)
                .ok_or_else(|| malformed(format_args!("undefined entity &{name};")))?
        }
        Event::DocType(_) => {
            return Err(malformed(
                "a DOCTYPE is not accepted (no DTDs or entity declarations)",
            ))
        }
        _ => return Ok(None),
    }))
}

/// Attach a finished element to its parent; returns it when it was the root.
fn close(stack: &mut [Element], el: Element) -> Option<Element> {
    match stack.last_mut() {
        Some(parent) => {
            parent.children.push(el);
            None
        }
        None => Some(el),
    }
}

fn push_text(stack: &mut [Element], s: &str) -> Result<(), Failure> {
    match stack.last_mut() {
        Some(el) => {
            el.text.push_str(s);
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None => Err(malformed("text outside the root element")),
    }
}

// ---- tree → JSON ------------------------------------------------------------------------------

/// An element as JSON (no schema): `None` for `xsi:nil`.
/// Leaves are strings (`""` when empty); repeated children become arrays, in order.
/// The tree is consumed: its names and texts move into the JSON instead of being copied.
pub fn to_json(el: Element) -> Option<Value> {
    if el.nil {
        return None;
    }
    if el.children.is_empty() {
        return Some(Value::String(trimmed(el.text)));
    }
    let mut map: Map<String, Value> = Map::new();
    for mut c in el.children {
        let name = std::mem::take(&mut c.name);
        let Some(v) = to_json(c) else { continue };
        match map.get_mut(&name) {
            None => {
                map.insert(name, v);
            }
            // Element values are never arrays, so an array here is a repetition list.
            Some(Value::Array(list)) => list.push(v),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, v]);
            }
        }
    }
    Some(Value::Object(map))
}

/// `text` without surrounding whitespace, in its own buffer when there is none to cut.
fn trimmed(text: String) -> String {
    let t = text.trim();
    if t.len() == text.len() {
        text
    } else {
        t.to_string()
    }
}

/// Make every path listed for `root` an array (one element → one-element array),
/// and drop empty-string and null items of arrays (REST refuses an empty `AddressLine` item).
pub fn normalize_arrays(v: &mut Value, arrays: &super::schema::ArrayPaths) {
    fn walk(v: &mut Value, path: &mut String, arrays: &super::schema::ArrayPaths) {
        let Value::Object(map) = v else { return };
        let mut emptied: Vec<String> = vec![];
        for (k, child) in map.iter_mut() {
            let len = path.len();
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(k);
            let listed = arrays.contains(path.as_str());
            if listed && !child.is_array() {
                let one = child.take();
                *child = Value::Array(vec![one]);
            }
            match child {
                Value::Array(items) => {
                    if listed {
                        items.retain(|i| !matches!(i, Value::Null) && i != "");
                    }
                    for i in items.iter_mut() {
                        walk(i, path, arrays);
                    }
                    if items.is_empty() {
                        emptied.push(k.clone());
                    }
                }
                other => walk(other, path, arrays),
            }
            path.truncate(len);
        }
        for k in emptied {
            map.shift_remove(&k);
        }
    }
    walk(v, &mut String::new(), arrays);
}

/// Drop empty leaves that are not presence indicators (`…Indicator`), and containers
/// left empty: old clients send `<FaxNumber/>`, `<CustomerContext/>`, an empty
/// `<PackageServiceOptions></PackageServiceOptions>`, which REST may refuse as values,
/// while an empty `<NegotiatedRatesIndicator/>` means "on" and must stay.
pub fn prune_empty(v: &mut Value) {
    fn prune(v: &mut Value) -> bool {
        match v {
            Value::Object(map) => {
                map.retain(|k, x| !prune(x) || k.ends_with("Indicator"));
                map.is_empty()
            }
            Value::Array(items) => {
                for i in items.iter_mut() {
                    prune(i);
                }
                false
            }
            Value::String(s) => s.trim().is_empty(),
            _ => false,
        }
    }
    prune(v);
}

// ---- JSON → XML -------------------------------------------------------------------------------

/// A JSON key usable as an XML element name (REST answers are trusted less than that).
/// Only ASCII names pass, so the bytes are checked, not the chars.
pub fn is_xml_name(k: &str) -> bool {
    match k.as_bytes().split_first() {
        Some((first, rest)) => {
            (first.is_ascii_alphabetic() || *first == b'_')
                && rest.iter().all(|&b| NAME_BYTE[usize::from(b)])
        }
        None => false,
    }
}

/// The bytes [`is_xml_name`] takes after the first, as a table: every key of an answer is
/// checked, and a load per byte replaces a chain of comparisons per byte.
const NAME_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < table.len() {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.');
        b += 1;
    }
    table
};

/// A JSON string. Most text of a document needs no escape and is copied between quotes;
/// serde_json writes the rest (its writer's set-up cost more than the copy, per leaf).
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| JSON_ESCAPED[usize::from(b)]) {
        serde_json::to_writer(out, s).expect("writing to a Vec cannot fail");
    } else {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// The bytes a JSON string escapes: control characters, `"` and `\`.
const JSON_ESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < table.len() {
        table[b] = b < 0x20 || b == b'"' as usize || b == b'\\' as usize;
        b += 1;
    }
    table
};

/// The bytes [`push_escaped`] escapes, as a table (a load per byte).
const TEXT_ESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    table[b'<' as usize] = true;
    table[b'>' as usize] = true;
    table[b'&' as usize] = true;
    table
};

/// Append character data to `out`, escaped. Most leaves (codes, amounts, names) hold
/// nothing to escape: one loop over their bytes says so, and they are copied as they stand
/// (quick-xml's escape cost about 90 instructions a leaf to return them unchanged).
pub fn push_escaped(out: &mut String, s: &str) {
    if s.bytes().any(|b| TEXT_ESCAPED[usize::from(b)]) {
        out.push_str(&partial_escape(s));
    } else {
        out.push_str(s);
    }
}

/// Write `v` as element `name` (prefixed with `prefix:` when given, descendants too):
/// objects → children, arrays → repeated elements, strings → text, `""` → empty
/// element, numbers/booleans → their text, `null` → nothing.
pub fn write_json(out: &mut String, prefix: Option<&str>, name: &str, v: &Value) {
    if !is_xml_name(name) {
        return;
    }
    match v {
        Value::Null => {}
        Value::Array(items) => {
            for i in items {
                if !i.is_array() {
                    write_json(out, prefix, name, i);
                }
            }
        }
        Value::Object(map) => {
            open(out, prefix, name);
            out.push('>');
            for (k, c) in map {
                write_json(out, prefix, k, c);
            }
            close_tag(out, prefix, name);
        }
        Value::String(s) if s.is_empty() => {
            open(out, prefix, name);
            out.push_str("/>");
        }
        other => {
            let text = match other {
                Value::String(s) => Cow::Borrowed(s.as_str()),
                n => Cow::Owned(n.to_string()),
            };
            open(out, prefix, name);
            out.push('>');
            push_escaped(out, &text);
            close_tag(out, prefix, name);
        }
    }
}

/// `v` (a borrowed answer's node) written as [`write_json`] writes `v.owned()`, without the
/// copy; `None` if one of its objects names a member twice (the copy would keep one) or has
/// more than 64.
pub fn write_node<T: Node>(out: &mut String, name: &str, v: &T) -> Option<()> {
    if !is_xml_name(name) || v.is_null() {
        return Some(());
    }
    if let Some(items) = v.list() {
        for i in items.iter().filter(|i| i.list().is_none()) {
            write_node(out, name, i)?;
        }
        return Some(());
    }
    if v.is_structure() {
        open_element(out, name);
        let mut seen: smallvec::SmallVec<[&str; 16]> = smallvec::SmallVec::new();
        for (k, c) in v.entries() {
            // Names are searched linearly: a huge object goes to the map, which hashes them.
            if seen.contains(&k) || seen.len() >= 64 {
                return None;
            }
            seen.push(k);
            write_node(out, k, c)?;
        }
        close_element(out, name);
        return Some(());
    }
    match v.string() {
        Some(s) => write_named_text(out, name, s),
        // Numbers and booleans spelled as the copy would spell them.
        None => write_named_text(out, name, &v.owned().to_string()),
    }
    Some(())
}

/// A string as [`write_json`] writes one: `<name/>` when empty.
pub fn write_text(out: &mut String, name: &str, text: &str) {
    if is_xml_name(name) {
        write_named_text(out, name, text);
    }
}

/// [`write_text`] for a name already checked ([`is_xml_name`]).
pub fn write_named_text(out: &mut String, name: &str, text: &str) {
    open(out, None, name);
    if text.is_empty() {
        out.push_str("/>");
    } else {
        out.push('>');
        push_escaped(out, text);
        close_tag(out, None, name);
    }
}

/// `<name>`, unprefixed.
pub fn open_element(out: &mut String, name: &str) {
    open(out, None, name);
    out.push('>');
}

/// `</name>`, unprefixed.
pub fn close_element(out: &mut String, name: &str) {
    close_tag(out, None, name);
}

fn open(out: &mut String, prefix: Option<&str>, name: &str) {
    out.push('<');
    if let Some(p) = prefix {
        out.push_str(p);
        out.push(':');
    }
    out.push_str(name);
}

fn close_tag(out: &mut String, prefix: Option<&str>, name: &str) {
    out.push_str("</");
    if let Some(p) = prefix {
        out.push_str(p);
        out.push(':');
    }
    out.push_str(name);
    out.push('>');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn push_escaped_writes_what_quick_xml_escapes() {
        for text in [
            "",
            "18.70",
            "UPS 2nd Day Air",
            "a<b",
            "AT&T",
            "x > y",
            "<&>",
            "é&ü",
        ] {
            let mut out = String::from("<x>");
            push_escaped(&mut out, text);
            assert_eq!(out, format!("<x>{}", partial_escape(text)), "{text:?}");
        }
    }

    #[test]
    fn json_strings_are_written_as_serde_json_writes_them() {
        for s in [
            "",
            "plain",
            "a\"b",
            "back\\slash",
            "tab\tnl\n",
            "\u{1}",
            "é ü €",
            "\u{7f}",
        ] {
            let mut out = Vec::new();
            write_json_str(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn xml_names_are_ascii_names() {
        for ok in ["Code", "_x", "a-b.c1", "RatedShipment"] {
            assert!(is_xml_name(ok), "{ok}");
        }
        for bad in ["", "1a", "-a", ".a", "a b", "a:b", "é", "aé", "a\"b"] {
            assert!(!is_xml_name(bad), "{bad}");
        }
        // After the first byte: letters, digits, `_`, `-`, `.`, and no other byte.
        let allowed: Vec<u8> = (b'a'..=b'z')
            .chain(b'A'..=b'Z')
            .chain(b'0'..=b'9')
            .chain([b'_', b'-', b'.'])
            .collect();
        for b in 0..=u8::MAX {
            let name = [b'a', b];
            let taken = std::str::from_utf8(&name).is_ok_and(is_xml_name);
            assert_eq!(taken, allowed.contains(&b), "a{b:#04x}");
        }
    }

    #[test]
    fn two_documents_are_split_by_parsing() {
        let body = "   \n<?xml version=\"1.0\" ?>\n<A xml:lang=\"en-US\"><B>1</B></A><?xml version=\"1.0\"?><C><D/></C>";
        let (a, end) = parse_document(body).unwrap();
        assert_eq!(a.name, "A");
        assert_eq!(a.text_at("B"), Some("1"));
        let (c, _) = parse_document(&body[end..]).unwrap();
        assert_eq!(to_json(c).unwrap(), json!({"D": ""}));
    }

    #[test]
    fn namespaces_entities_cdata_and_nil() {
        let body = r#"<e:Env xmlns:e="urn:x" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><p:A xmlns:p="urn:p">a &amp; b &#x41;<![CDATA[<c>]]></p:A><N xsi:nil="true"/></e:Env>"#;
        let (root, _) = parse_document(body).unwrap();
        assert_eq!(root.ns.as_deref(), Some("urn:x"));
        assert_eq!(root.children[0].ns.as_deref(), Some("urn:p"));
        assert_eq!(to_json(root).unwrap(), json!({"A": "a & b A<c>"}));
    }

    #[test]
    fn doctype_depth_and_garbage_are_malformed() {
        let lol = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><lolz>&lol2;</lolz>"#;
        assert!(matches!(parse_document(lol), Err(Failure::Malformed(m)) if m.contains("DOCTYPE")));
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(
            matches!(parse_document(&deep), Err(Failure::Malformed(m)) if m.contains("deeper"))
        );
        assert!(matches!(
            parse_document("<a><b></a>"),
            Err(Failure::Malformed(_))
        ));
        assert!(matches!(
            parse_document("<a>&foo;</a>"),
            Err(Failure::Malformed(_))
        ));
        assert!(matches!(parse_document("  "), Err(Failure::Empty)));
        assert!(matches!(parse_document("<a>"), Err(Failure::Malformed(_))));
    }

    #[test]
    fn empty_leaves_go_but_indicators_stay() {
        let mut v = json!({"A": {"FaxNumber": "", "ResidentialAddressIndicator": "", "B": {"C": ""}, "D": "x"}, "E": {}});
        prune_empty(&mut v);
        assert_eq!(
            v,
            json!({"A": {"ResidentialAddressIndicator": "", "D": "x"}})
        );
    }

    #[test]
    fn latin1_is_decoded() {
        let mut body = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><A>M".to_vec();
        body.push(0xFC);
        body.extend_from_slice(b"nchen</A>");
        let text = decode(&body);
        let (a, _) = parse_document(&text).unwrap();
        assert_eq!(a.text, "München");
        // Undeclared Latin-1 falls back too.
        assert_eq!(decode(b"<A>\xE9</A>"), "<A>é</A>");
    }

    #[test]
    fn arrays_by_schema_and_back_to_xml() {
        let (el, _) = parse_document("<R><S><P><W>1</W></P><L>a</L><L></L><I/></S></R>").unwrap();
        let mut v = to_json(el).unwrap();
        let arrays = ["S/P".to_string(), "S/L".to_string()].into_iter().collect();
        normalize_arrays(&mut v, &arrays);
        assert_eq!(v, json!({"S": {"P": [{"W": "1"}], "L": ["a"], "I": ""}}));
        let mut out = String::new();
        write_json(&mut out, Some("x"), "R", &v);
        assert_eq!(
            out,
            "<x:R><x:S><x:P><x:W>1</x:W></x:P><x:L>a</x:L><x:I/></x:S></x:R>"
        );
    }
}

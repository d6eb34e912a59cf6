//! Data-driven translation: the tables and the small engines that apply them.
//!
//! - [`arrays`]: which JSON paths are arrays, per wrapper root (`RateRequest`,
//!   `RateResponse`, …), generated from UPS's OpenAPI specs by
//!   `scripts/gen-schema-tables.py` into `tables/arrays.json` and embedded here.
//!   The XML → JSON engine never decides arrays from how often an element repeats
//!   in one document alone.
//! - [`Rule`]: declarative request rewrites (rename, move, collect address lines,
//!   drop, default) that turn old-XML request trees into XOLTWS/REST names.
//! - [`Field`]/[`Src`]: declarative answer templates that build an old-XML answer,
//!   element by element and in the order old clients expect, from a REST answer; and
//!   [`stream`], which writes one while UPS's JSON is read.
//!
//! The tables themselves are data; no per-field code. Nothing here logs.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};
use smallvec::SmallVec;

use super::tree::Node;
use super::xmljson;

pub mod stream;

static ARRAYS_JSON: &str = include_str!("tables/arrays.json");

/// Paths (`/`-joined element names below a root) that are arrays. FxHash: a request's every
/// member path is looked up here, and the table is ours, not the client's.
pub type ArrayPaths = rustc_hash::FxHashSet<String>;

/// The array paths below `root` (e.g. `Shipment/Package` for `RateRequest`).
pub fn arrays(root: &str) -> Option<&'static ArrayPaths> {
    static TABLE: OnceLock<HashMap<String, ArrayPaths>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            // Committed, generated data: a unit test proves it parses.
            serde_json::from_str::<HashMap<String, Vec<String>>>(ARRAYS_JSON)
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().collect()))
                .collect()
        })
        .get(root)
}

/// The empty set, for roots without arrays.
pub fn no_arrays() -> &'static ArrayPaths {
    static EMPTY: OnceLock<ArrayPaths> = OnceLock::new();
    EMPTY.get_or_init(ArrayPaths::default)
}

// ---- request rewrite rules --------------------------------------------------------------------

/// One request rewrite. Patterns are `/`-separated element names below the request
/// root; `*` matches one element, `**` any number (including none). Arrays along
/// the way are entered item by item.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// Rename the element at `pattern` to `new_name` (same parent).
    Rename(&'static str, &'static str),
    /// Move the subtree at exact path `from` to exact path `to` (parents created).
    Move(&'static str, &'static str),
    /// Under every container at `pattern`, collect the listed children (in that
    /// order, non-empty ones) into one array member `into`.
    Collect(&'static str, &'static [&'static str], &'static str),
    /// Remove the element at `pattern`.
    Drop(&'static str),
    /// If `when` exists (exact path), set `path` (exact) to the string `value`.
    SetIf(&'static str, &'static str, &'static str),
    /// Set `path` (exact) to `value` unless present.
    Default(&'static str, &'static str),
    /// Move `from` to `to` (exact paths) unless `to` exists; `from` is removed either way.
    Fill(&'static str, &'static str),
    /// Rename the element at `pattern` to `new_name` and wrap its value as `{inner: value}`.
    Wrap(&'static str, &'static str, &'static str),
    /// A repeated element at `pattern` that REST takes once: keep the last occurrence.
    Last(&'static str),
}

/// Apply rules in order to a request object (the content of its root).
pub fn apply(rules: &[Rule], v: &mut Value) {
    for rule in rules {
        match *rule {
            Rule::Rename(pattern, new_name) => {
                let segs: Vec<&str> = pattern.split('/').collect();
                at_pattern(v, &segs, &mut |map, key| {
                    if let Some(x) = map.shift_remove(key) {
                        map.insert(new_name.to_string(), x);
                    }
                });
            }
            Rule::Drop(pattern) => {
                let segs: Vec<&str> = pattern.split('/').collect();
                at_pattern(v, &segs, &mut |map, key| {
                    map.shift_remove(key);
                });
            }
            Rule::Collect(pattern, from, into) => {
                let segs: Vec<&str> = pattern.split('/').collect();
                at_pattern(v, &segs, &mut |map, key| {
                    let Some(Value::Object(container)) = map.get_mut(key) else {
                        return;
                    };
                    let mut lines: Vec<Value> = match container.shift_remove(into) {
                        Some(Value::Array(a)) => a,
                        Some(one) => vec![one],
                        None => vec![],
                    };
                    for name in from {
                        match container.shift_remove(*name) {
                            Some(Value::Array(a)) => lines.extend(a),
                            Some(one) => lines.push(one),
                            None => {}
                        }
                    }
                    lines.retain(|l| l.as_str().is_some_and(|s| !s.trim().is_empty()));
                    if !lines.is_empty() {
                        container.insert(into.to_string(), Value::Array(lines));
                    }
                });
            }
            Rule::Move(from, to) => {
                if let Some(x) = take(v, from) {
                    put(v, to, x);
                }
            }
            Rule::SetIf(when, path, value) => {
                if get(v, when).is_some() {
                    put(v, path, Value::String(value.to_string()));
                }
            }
            Rule::Default(path, value) => {
                if get(v, path).is_none() {
                    put(v, path, Value::String(value.to_string()));
                }
            }
            Rule::Fill(from, to) => {
                if let Some(x) = take(v, from) {
                    if get(v, to).is_none() {
                        put(v, to, x);
                    }
                }
            }
            Rule::Last(pattern) => {
                let segs: Vec<&str> = pattern.split('/').collect();
                at_pattern(v, &segs, &mut |map, key| {
                    if let Some(Value::Array(items)) = map.get_mut(key) {
                        if let Some(last) = items.pop() {
                            map.insert(key.to_string(), last);
                        }
                    }
                });
            }
            Rule::Wrap(pattern, new_name, inner) => {
                let segs: Vec<&str> = pattern.split('/').collect();
                at_pattern(v, &segs, &mut |map, key| {
                    if let Some(x) = map.shift_remove(key) {
                        let mut wrapped = Map::new();
                        wrapped.insert(inner.to_string(), x);
                        map.insert(new_name.to_string(), Value::Object(wrapped));
                    }
                });
            }
        }
    }
}

/// Whether a rule's pattern names `path` (`/`-joined element names below the request root),
/// with the same `*` and `**` as [`apply`]; for writers that meet elements one at a time.
pub fn pattern_matches(pattern: &str, path: &str) -> bool {
    if pattern == path {
        return true;
    }
    if !pattern.contains('*') {
        return false;
    }
    // The common wildcard, `**/` before names (an old-XML address's lines are collected under
    // any `Address`, checked for each of its children): the path ends in those names.
    if let Some(names) = pattern.strip_prefix("**/") {
        if !names.contains('*') {
            return path
                .strip_suffix(names)
                .is_some_and(|above| above.is_empty() || above.ends_with('/'));
        }
    }
    segments_match(Some(pattern), Some(path))
}

/// The first segment and what follows it (`None`: nothing).
fn first(s: &str) -> (&str, Option<&str>) {
    match s.bytes().position(|b| b == b'/') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

/// [`pattern_matches`] segment by segment (`None`: no segment left).
fn segments_match(pattern: Option<&str>, path: Option<&str>) -> bool {
    let Some(pattern) = pattern else {
        return path.is_none();
    };
    let (seg, pattern_rest) = first(pattern);
    match path.map(first) {
        // `**`: no element here, or one more still under `**`.
        _ if seg == "**" => {
            segments_match(pattern_rest, path)
                || path.is_some_and(|p| segments_match(Some(pattern), first(p).1))
        }
        Some((name, path_rest)) => {
            (seg == "*" || seg == name) && segments_match(pattern_rest, path_rest)
        }
        None => false,
    }
}

/// What follows the last `/` (all of `s` without one).
pub fn last_segment(s: &str) -> &str {
    match s.bytes().rposition(|b| b == b'/') {
        Some(i) => &s[i + 1..],
        None => s,
    }
}

/// Call `f(parent, key)` for every member matching the pattern.
fn at_pattern(v: &mut Value, segs: &[&str], f: &mut dyn FnMut(&mut Map<String, Value>, &str)) {
    match v {
        Value::Array(items) => {
            for i in items {
                at_pattern(i, segs, f);
            }
        }
        Value::Object(map) => at_pattern_obj(map, segs, f),
        _ => {}
    }
}

fn at_pattern_obj(
    map: &mut Map<String, Value>,
    segs: &[&str],
    f: &mut dyn FnMut(&mut Map<String, Value>, &str),
) {
    let Some((&first, rest)) = segs.split_first() else {
        return;
    };
    if first == "**" {
        // `**` stands for no element here…
        at_pattern_obj(map, rest, f);
        // …or for one more, still followed by `**`.
        for child in map.values_mut() {
            at_pattern(child, segs, f);
        }
        return;
    }
    match (first, rest.is_empty()) {
        // `f` changes the map: the names are taken first (the only allocation here).
        ("*", true) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                f(map, &k);
            }
        }
        ("*", false) => {
            for child in map.values_mut() {
                at_pattern(child, rest, f);
            }
        }
        (name, true) => {
            if map.contains_key(name) {
                f(map, name);
            }
        }
        (name, false) => {
            if let Some(child) = map.get_mut(name) {
                at_pattern(child, rest, f);
            }
        }
    }
}

/// The names of a `/`-joined path, empty ones skipped, split by [`first`]'s byte scan:
/// `split('/')`'s searcher cost more to set up than a path of a few short names takes to
/// scan.
fn segments(path: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(path);
    std::iter::from_fn(move || loop {
        let (seg, after) = first(rest?);
        rest = after;
        if !seg.is_empty() {
            return Some(seg);
        }
    })
}

/// The value at an exact path; arrays are entered at their first item.
pub fn get<'v, T: Node>(v: &'v T, path: &str) -> Option<&'v T> {
    segments(path)
        .try_fold(v, |cur, seg| {
            let cur = match cur.list() {
                Some(a) => a.first()?,
                None => cur,
            };
            cur.field(seg)
        })
        .map(|found| match found.list() {
            Some([one]) => one,
            _ => found,
        })
}

/// Trimmed non-empty text at a path.
pub fn text<'v>(v: &'v Value, path: &str) -> Option<&'v str> {
    get(v, path)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn take(v: &mut Value, path: &str) -> Option<Value> {
    let (parent, last) = match path.rsplit_once('/') {
        Some((p, l)) => (Some(p), l),
        None => (None, path),
    };
    let mut cur = v;
    if let Some(p) = parent {
        for seg in p.split('/') {
            cur = match cur {
                Value::Array(a) => a.first_mut()?.get_mut(seg)?,
                other => other.get_mut(seg)?,
            };
        }
    }
    if let Value::Array(a) = cur {
        cur = a.first_mut()?;
    }
    cur.as_object_mut()?.shift_remove(last)
}

fn put(v: &mut Value, path: &str, x: Value) {
    let mut cur = v;
    let segs: Vec<&str> = path.split('/').collect();
    let Some((last, parents)) = segs.split_last() else {
        return;
    };
    for seg in parents {
        if let Value::Array(a) = cur {
            match a.first_mut() {
                Some(first) => cur = first,
                None => return,
            }
        }
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Some(map) = cur.as_object_mut() else {
            return;
        };
        cur = map
            .entry(seg.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Value::Array(a) = cur {
        match a.first_mut() {
            Some(first) => cur = first,
            None => return,
        }
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    if let Some(map) = cur.as_object_mut() {
        map.insert(last.to_string(), x);
    }
}

// ---- answer templates -------------------------------------------------------------------------

/// Where an answer element's content comes from (paths relative to the current REST object).
#[derive(Debug, Clone, Copy)]
pub enum Src {
    /// The subtree at a path, omitted when absent.
    Copy(&'static str),
    /// The text at a path; an empty element when absent.
    TextOrEmpty(&'static str),
    /// For every item of the (object-or-array) value at the first path, the text at
    /// the second path: one repeated element each.
    EachText(&'static str, &'static str),
    /// An element built from these fields; omitted when it comes out empty.
    Nested(&'static [Field]),
    /// For every item of the value at a path, an element built from these fields.
    Each(&'static str, &'static [Field]),
    /// The members of the object at a path, spread into the current element.
    Spread(&'static str),
    /// A fixed text.
    Const(&'static str),
}

/// One element of an answer template.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub src: Src,
}

/// Shorthand for table rows.
pub const fn f(name: &'static str, src: Src) -> Field {
    Field { name, src }
}

/// The items at `path`: on the stack while there are a few (a rate answer's lists hold one to
/// a dozen), where three vectors per list cost more than finding the items.
fn items_at<'v, T: Node>(v: &'v T, path: &str) -> SmallVec<[&'v T; 8]> {
    // An array stands for its items; anything else for itself.
    fn each<T: Node>(c: &T) -> &[T] {
        c.list().unwrap_or(std::slice::from_ref(c))
    }
    let mut cur: SmallVec<[&'v T; 8]> = smallvec::smallvec![v];
    for seg in segments(path) {
        cur = cur
            .into_iter()
            .flat_map(each)
            .filter_map(|c| c.field(seg))
            .collect();
    }
    cur.into_iter().flat_map(each).collect()
}

/// Build an element's members from a template against a REST object.
pub fn build<T: Node>(fields: &[Field], rest: &T) -> Map<String, Value> {
    let mut out = Map::new();
    for field in fields {
        let value = match field.src {
            Src::Copy(path) => get(rest, path).map(T::owned),
            Src::TextOrEmpty(path) => Some(Value::String(
                get(rest, path)
                    .map(|v| v.json_text().into_owned())
                    .unwrap_or_default(),
            )),
            Src::EachText(list, path) => {
                let texts: Vec<Value> = items_at(rest, list)
                    .into_iter()
                    .filter_map(|i| get(i, path))
                    .map(|v| Value::String(v.json_text().into_owned()))
                    .collect();
                (!texts.is_empty()).then_some(Value::Array(texts))
            }
            Src::Nested(sub) => {
                let m = build(sub, rest);
                (!m.is_empty()).then_some(Value::Object(m))
            }
            Src::Each(list, sub) => {
                let built: Vec<Value> = items_at(rest, list)
                    .into_iter()
                    .map(|i| Value::Object(build(sub, i)))
                    .filter(|m| m.as_object().is_some_and(|o| !o.is_empty()))
                    .collect();
                (!built.is_empty()).then_some(Value::Array(built))
            }
            Src::Spread(path) => {
                for (k, x) in get(rest, path).into_iter().flat_map(T::entries) {
                    out.insert(k.to_string(), x.owned());
                }
                None
            }
            Src::Const(s) => Some(Value::String(s.to_string())),
        };
        if let Some(value) = value {
            out.insert(field.name.to_string(), value);
        }
    }
    out
}

/// What [`build`] builds, written straight into `out` as the XML elements
/// `xmljson::write_json` would write its map as, without the map (no copies of UPS's
/// members, no hashing). `None` where the two would differ, and the caller builds the map:
/// a `Spread` (its members may take the place of fields), or a member named twice in one of
/// UPS's objects (the map keeps one). The fields must name distinct members at every level
/// (the map would keep one of two): [`names_are_distinct`], which the tables' tests check.
pub fn write_fields<T: Node>(out: &mut String, fields: &[Field], rest: &T) -> Option<()> {
    write_members(out, fields, rest).map(drop)
}

/// [`write_fields`]; how many members [`build`]'s map would hold (a `null` copied counts,
/// though nothing is written for it).
fn write_members<T: Node>(out: &mut String, fields: &[Field], rest: &T) -> Option<usize> {
    debug_assert!(names_are_distinct(fields));
    let mut members = 0;
    for field in fields {
        let name = field.name;
        let member = match field.src {
            Src::Copy(path) => match get(rest, path) {
                Some(v) => {
                    xmljson::write_node(out, name, v)?;
                    true
                }
                None => false,
            },
            Src::TextOrEmpty(path) => {
                let text = get(rest, path).map(T::json_text).unwrap_or_default();
                xmljson::write_text(out, name, &text);
                true
            }
            Src::EachText(list, path) => {
                let mut any = false;
                for text in items_at(rest, list)
                    .into_iter()
                    .filter_map(|i| get(i, path))
                {
                    xmljson::write_text(out, name, &text.json_text());
                    any = true;
                }
                any
            }
            Src::Nested(sub) => write_wrapped(out, name, sub, rest)?,
            Src::Each(list, sub) => {
                let mut any = false;
                for item in items_at(rest, list) {
                    any |= write_wrapped(out, name, sub, item)?;
                }
                any
            }
            Src::Spread(_) => return None,
            Src::Const(text) => {
                xmljson::write_text(out, name, text);
                true
            }
        };
        members += usize::from(member);
    }
    Some(members)
}

/// Whether no two of `fields`, nor of any fields nested in them, name the same member: a
/// property of a static table, checked by its tests rather than on every answer.
pub fn names_are_distinct(fields: &[Field]) -> bool {
    fields.iter().enumerate().all(|(i, field)| {
        let nested = match field.src {
            Src::Nested(sub) | Src::Each(_, sub) => names_are_distinct(sub),
            _ => true,
        };
        nested && !fields[..i].iter().any(|f| f.name == field.name)
    })
}

/// `<name>` around `fields`' members, or nothing when there are none (`build` leaves an
/// empty object out); whether it was written.
fn write_wrapped<T: Node>(
    out: &mut String,
    name: &str,
    fields: &[Field],
    rest: &T,
) -> Option<bool> {
    let mark = out.len();
    xmljson::open_element(out, name);
    if write_members(out, fields, rest)? == 0 {
        out.truncate(mark);
        return Some(false);
    }
    xmljson::close_element(out, name);
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns_name_the_paths_apply_reaches() {
        let yes = [
            ("Request/RequestOption", "Request/RequestOption"),
            ("Shipment/*/CompanyName", "Shipment/ShipTo/CompanyName"),
            ("**/Address", "Address"),
            ("**/Address", "Shipment/ShipTo/Address"),
            ("**/Address/City", "Address/City"),
            ("**/*/City", "Shipment/Address/City"),
            (
                "**/Address/ResidentialAddress",
                "Shipment/Shipper/Address/ResidentialAddress",
            ),
        ];
        let no = [
            ("Request/RequestOption", "Request"),
            ("Request/RequestOption", "Request/RequestOption/X"),
            ("Shipment/*/CompanyName", "Shipment/CompanyName"),
            ("Shipment/*/CompanyName", "Shipment/A/B/CompanyName"),
            ("**/Address", "Shipment/Address/City"),
            (
                "**/Address/ResidentialAddress",
                "Shipment/ResidentialAddress",
            ),
            ("**/Address", "ShipToAddress"),
            ("**/Address", "Shipment/ShipToAddress"),
            ("**/Address", "Address/City"),
            ("**/Address/City", "Shipment/Address/XCity"),
        ];
        for (pattern, path) in yes {
            assert!(pattern_matches(pattern, path), "{pattern} {path}");
        }
        // `**/` before names, read as a suffix: what the segment walk reads, on every path of
        // up to four names of a small alphabet.
        let names = ["A", "B", "AB", "BA"];
        let mut paths = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = paths
                .iter()
                .flat_map(|p| {
                    names.map(|n| {
                        if p.is_empty() {
                            n.to_string()
                        } else {
                            format!("{p}/{n}")
                        }
                    })
                })
                .collect();
            paths.extend(longer);
        }
        for pattern in ["**/A", "**/B", "**/A/B", "**/AB/A", "**/B/A/B"] {
            for path in paths.iter().filter(|p| !p.is_empty()) {
                assert_eq!(
                    pattern_matches(pattern, path),
                    segments_match(Some(pattern), Some(path)),
                    "{pattern} {path}"
                );
            }
        }
        for (pattern, path) in no {
            assert!(!pattern_matches(pattern, path), "{pattern} {path}");
        }
        // The same elements `apply` reaches: rename by each pattern, see which moved.
        for (pattern, path) in yes {
            let mut v = json!({});
            put(&mut v, path, json!("x"));
            apply(&[Rule::Rename(pattern, "Renamed")], &mut v);
            let (parent, _) = path.rsplit_once('/').unwrap_or(("", path));
            let renamed = if parent.is_empty() {
                "Renamed".to_string()
            } else {
                format!("{parent}/Renamed")
            };
            assert!(get(&v, &renamed).is_some(), "{pattern} {path}: {v}");
        }
    }

    #[test]
    fn generated_array_table_is_embedded() {
        let rate = arrays("RateRequest").expect("RateRequest arrays");
        assert!(rate.contains("Shipment/Package"));
        assert!(rate.contains("Shipment/ShipTo/Address/AddressLine"));
        assert!(!rate.contains("Shipment/Service"));
        let ship = arrays("ShipmentRequest").unwrap();
        assert!(ship.contains("Shipment/PaymentInformation/ShipmentCharge"));
        assert!(arrays("RateResponse")
            .unwrap()
            .contains("RatedShipment/RatedPackage"));
        assert!(arrays("XAVRequest")
            .unwrap()
            .contains("AddressKeyFormat/AddressLine"));
    }

    #[test]
    fn rules_rename_move_collect_drop_and_default() {
        let mut v = json!({"Shipment": {
            "ShipTo": {"CompanyName": "Acme", "Address": {"AddressLine1": "5 Oak", "AddressLine2": "", "AddressLine3": "Suite 2"}},
            "Package": [{"PackagingType": {"Code": "02"}}, {"PackagingType": {"Code": "01"}}],
            "RateInformation": {"NegotiatedRatesIndicator": ""},
            "Junk": "x"}});
        apply(
            &[
                Rule::Rename("Shipment/*/CompanyName", "Name"),
                Rule::Collect(
                    "**/Address",
                    &["AddressLine1", "AddressLine2", "AddressLine3"],
                    "AddressLine",
                ),
                Rule::Rename("Shipment/Package/PackagingType", "Packaging"),
                Rule::Move("Shipment/RateInformation", "Shipment/ShipmentRatingOptions"),
                Rule::Drop("Shipment/Junk"),
                Rule::Default("Request/RequestOption", "nonvalidate"),
                Rule::SetIf("Shipment/ShipTo", "Shipment/ShipTo/Flag", "1"),
            ],
            &mut v,
        );
        assert_eq!(
            v,
            json!({"Shipment": {
                "ShipTo": {"Address": {"AddressLine": ["5 Oak", "Suite 2"]}, "Name": "Acme", "Flag": "1"},
                "Package": [{"Packaging": {"Code": "02"}}, {"Packaging": {"Code": "01"}}],
                "ShipmentRatingOptions": {"NegotiatedRatesIndicator": ""}},
                "Request": {"RequestOption": "nonvalidate"}})
        );
    }

    #[test]
    fn last_keeps_the_last_of_a_repeated_element() {
        let mut v = json!({"Request": {"RequestOption": ["Shop", "Rate"]}});
        apply(&[Rule::Last("Request/RequestOption")], &mut v);
        assert_eq!(v, json!({"Request": {"RequestOption": "Rate"}}));
    }

    #[test]
    fn templates_build_in_order() {
        const PKG: &[Field] = &[f("Weight", Src::Copy("Weight"))];
        const T: &[Field] = &[
            f(
                "Service",
                Src::Nested(&[f("Code", Src::Copy("Service/Code"))]),
            ),
            f("Warning", Src::EachText("Alert", "Description")),
            f("Days", Src::TextOrEmpty("Guaranteed/Days")),
            f("Pkg", Src::Each("Package", PKG)),
            f("Absent", Src::Nested(&[f("X", Src::Copy("Nope"))])),
        ];
        let rest = json!({"Package": {"Weight": "3"}, "Alert": [{"Description": "a"}, {"Description": "b"}],
                          "Service": {"Code": "03", "Description": "Ground"}});
        assert_eq!(
            Value::Object(build(T, &rest)),
            json!({"Service": {"Code": "03"}, "Warning": ["a", "b"], "Days": "", "Pkg": [{"Weight": "3"}]})
        );
    }

    #[test]
    fn a_template_reads_a_borrowed_parse_as_it_reads_a_value() {
        const T: &[Field] = &[
            f("Charges", Src::Copy("Total")),
            f("Weight", Src::TextOrEmpty("Package/Weight")),
            f("Count", Src::TextOrEmpty("Count")),
            f("Note", Src::TextOrEmpty("Note")),
            f("Warning", Src::EachText("Alert", "Description")),
            f("Pkg", Src::Each("Package", &[f("W", Src::Copy("Weight"))])),
            f("Spread", Src::Spread("Extra")),
            f("Fixed", Src::Const("1")),
        ];
        let text = r#"{"Total":{"CurrencyCode":"USD","MonetaryValue":"21.35"},
            "Package":[{"Weight":"3.0"}],"Count":2,"Note":null,
            "Alert":{"Description":"esc\"aped \u00e9"},"Extra":{"A":"1","B":["2","3"]}}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        let arena = bumpalo::Bump::new();
        let borrowed = crate::dialect::tree::parse_in(&arena, text.as_bytes()).unwrap();
        let built = Value::Object(build(T, &borrowed));
        assert_eq!(built, Value::Object(build(T, &value)));
        assert_eq!(built["Count"], "2");
        assert_eq!(built["Note"], "");
        assert_eq!(built["Warning"], json!(["esc\"aped é"]));
        assert_eq!(built["Weight"], "3.0");
        assert_eq!(built["B"], json!(["2", "3"]));
    }
}

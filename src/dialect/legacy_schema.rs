//! The legacy answer schemas: what a WSDL-generated SOAP client (suds, zeep,
//! JAX-WS, .NET), a typed legacy-JSON client and an old-XML client accept.
//!
//! UPS's XOLTWS XSDs (and the old XML API's, where found) are turned into
//! `tables/legacy_schema.json` by `scripts/gen-legacy-tables.py`: for every
//! complex type, its child elements in schema sequence order with namespace,
//! type and occurrence bounds. Answers are written by walking that table beside
//! the answer's JSON, so an answer holds only elements the client's schema
//! defines, in sequence order, in the right namespace:
//! - a member the schema does not define (a REST-only field) is dropped and
//!   reported in [`Shaped::dropped`] (the proxy counts it);
//! - a required element the answer lacks is written empty (every XOLTWS leaf is
//!   an `xsd:string`), with its required children, so strict parsers accept it;
//! - repetitions are capped by `maxOccurs`.
//!
//! Nothing here logs: answers are UPS's data and never hold credentials, but the
//! engine stays quiet anyway.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use rustc_hash::FxHashMap;
use serde::Deserialize;
use serde_json::Value;
use smallvec::SmallVec;

use super::tree::Node;
use super::xmljson::{is_xml_name, push_escaped, write_json_str};

mod stream;

static TABLE_JSON: &str = include_str!("tables/legacy_schema.json");

/// Which family of legacy schemas a root belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// XOLTWS: SOAP payloads and (same element names) legacy JSON.
    Xoltws,
    /// The old XML API (`/ups.app/xml`).
    OldXml,
}

#[derive(Deserialize)]
struct RawTable {
    #[serde(default)]
    namespaces: HashMap<String, String>,
    roots: HashMap<String, HashMap<String, RawRoot>>,
    types: HashMap<String, Vec<RawChild>>,
}

#[derive(Deserialize)]
struct RawRoot {
    ns: Option<String>,
    #[serde(rename = "type")]
    ty: String,
}

#[derive(Deserialize)]
struct RawChild {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    ns: Option<String>,
    #[serde(rename = "type", default)]
    ty: Option<String>,
    #[serde(default = "one")]
    min: u32,
    #[serde(default)]
    max: Option<u32>,
    #[serde(default)]
    choice: Option<u32>,
    #[serde(default)]
    any: bool,
}

fn one() -> u32 {
    1
}

/// One child element of a complex type.
#[derive(Debug)]
pub struct ChildDef {
    pub name: String,
    /// Index into [`Schemas::namespaces`]; `None` for unqualified elements.
    pub ns: Option<usize>,
    /// Index into [`Schemas::types`]; `None` for text content.
    pub ty: Option<usize>,
    pub min: u32,
    /// `None` = unbounded.
    pub max: Option<u32>,
    /// Alternatives of one `xsd:choice` share a group number.
    pub choice: Option<u32>,
    /// `<prefix:name></prefix:name>`, built once: an answer's every element writes its tags
    /// from it in one copy each.
    tags: Box<str>,
    /// `"name":`, the legacy JSON member's key, written in one copy.
    json_key: Box<str>,
}

impl ChildDef {
    fn new(
        name: String,
        prefix: Option<&str>,
        ns: Option<usize>,
        ty: Option<usize>,
        (min, max): (u32, Option<u32>),
        choice: Option<u32>,
    ) -> ChildDef {
        let qualified = match prefix {
            Some(prefix) => format!("{prefix}:{name}"),
            None => name.clone(),
        };
        ChildDef {
            tags: format!("<{qualified}></{qualified}>").into(),
            json_key: format!("\"{name}\":").into(),
            name,
            ns,
            ty,
            min,
            max,
            choice,
        }
    }

    /// `<prefix:name`: the start tag before its attributes, or its `/>`.
    fn tag_start(&self) -> &str {
        &self.tags[..self.tags.len() / 2 - 1]
    }

    /// `<prefix:name>`
    fn open_tag(&self) -> &str {
        &self.tags[..self.tags.len() / 2]
    }

    /// `</prefix:name>`
    fn close_tag(&self) -> &str {
        &self.tags[self.tags.len() / 2..]
    }
}

/// A complex type: its children in sequence order.
#[derive(Debug, Default)]
pub struct TypeDef {
    pub children: Vec<ChildDef>,
    /// `xsd:any` somewhere in the content: unknown members are kept, not dropped.
    pub open: bool,
    /// The index in `children` of each child's name: every member of an answer object is
    /// looked up here once. (A binary search over the names, each compare a pointer chase
    /// into `children`, was a fifth of a legacy JSON rate's translation.)
    by_name: FxHashMap<Box<str>, u32>,
}

impl TypeDef {
    /// The index of the child named `name`.
    fn position(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).map(|&i| i as usize)
    }

    /// [`TypeDef::position`] for a member of an answer read in order, the next unwritten
    /// child being `next`: UPS mostly sends members in schema order, skipping a few optional
    /// ones, so the children just ahead are compared first (a length and a few bytes each),
    /// and only a member from further on is hashed. (Names are unique within a type.)
    fn position_after(&self, name: &str, next: usize) -> Option<usize> {
        let ahead = self.children.get(next..).unwrap_or_default();
        match ahead.iter().take(4).position(|c| c.name == name) {
            Some(i) => Some(next + i),
            None => self.position(name),
        }
    }
}

/// A document (or payload) root element.
#[derive(Debug)]
pub struct RootDef {
    pub name: String,
    pub ns: Option<usize>,
    pub ty: usize,
    /// Every namespace used in the root's type closure (declared once on the root).
    pub namespaces: Vec<usize>,
    /// The root as an element (its end tag is written from it).
    element: ChildDef,
}

/// The compiled table.
#[derive(Debug, Default)]
pub struct Schemas {
    pub namespaces: Vec<(String, String)>,
    pub types: Vec<TypeDef>,
    /// By family, then name (looked up by `&str` on every answer: no allocation).
    roots: HashMap<Family, HashMap<String, RootDef>>,
}

/// The embedded table (generated, committed; a unit test proves it compiles).
pub fn schemas() -> &'static Schemas {
    static TABLE: OnceLock<Schemas> = OnceLock::new();
    TABLE.get_or_init(|| Schemas::compile(TABLE_JSON).unwrap_or_default())
}

impl Schemas {
    /// Compile a table; `Err` names the first inconsistency.
    pub fn compile(json: &str) -> Result<Schemas, String> {
        let raw: RawTable = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let mut namespaces: Vec<(String, String)> = raw
            .namespaces
            .iter()
            .map(|(prefix, ns)| (prefix.clone(), ns.clone()))
            .collect();
        namespaces.sort();
        let ns_index = |ns: &Option<String>, namespaces: &mut Vec<(String, String)>| {
            ns.as_ref().map(|uri| {
                namespaces
                    .iter()
                    .position(|(_, u)| u == uri)
                    .unwrap_or_else(|| {
                        let prefix = format!("ns{}", namespaces.len());
                        namespaces.push((prefix, uri.clone()));
                        namespaces.len() - 1
                    })
            })
        };
        let mut names: Vec<&String> = raw.types.keys().collect();
        names.sort();
        let type_index: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut types = Vec::with_capacity(names.len());
        for name in &names {
            let mut def = TypeDef::default();
            for c in &raw.types[*name] {
                if c.any {
                    def.open = true;
                    continue;
                }
                let Some(child_name) = &c.name else {
                    return Err(format!("{name}: a child without a name"));
                };
                // Answers write names as they are, unescaped, in XML and in JSON.
                if !is_xml_name(child_name) {
                    return Err(format!("{name}: {child_name:?} is not an XML name"));
                }
                let ty = match &c.ty {
                    None => None,
                    Some(t) => Some(
                        *type_index
                            .get(t.as_str())
                            .ok_or_else(|| format!("{name}/{child_name}: unknown type {t}"))?,
                    ),
                };
                let ns = ns_index(&c.ns, &mut namespaces);
                def.children.push(ChildDef::new(
                    child_name.clone(),
                    ns.map(|i| namespaces[i].0.as_str()),
                    ns,
                    ty,
                    (c.min, c.max),
                    c.choice,
                ));
            }
            for (i, c) in def.children.iter().enumerate() {
                if def
                    .by_name
                    .insert(c.name.as_str().into(), i as u32)
                    .is_some()
                {
                    return Err(format!("{name}: two children named {}", c.name));
                }
            }
            types.push(def);
        }
        let mut roots: HashMap<Family, HashMap<String, RootDef>> = HashMap::new();
        for (family, list) in &raw.roots {
            let family = match family.as_str() {
                "soap" => Family::Xoltws,
                "oldxml" => Family::OldXml,
                _ => continue,
            };
            for (name, r) in list {
                if !is_xml_name(name) {
                    return Err(format!("root {name:?} is not an XML name"));
                }
                let ty = *type_index
                    .get(r.ty.as_str())
                    .ok_or_else(|| format!("root {name}: unknown type {}", r.ty))?;
                let ns = ns_index(&r.ns, &mut namespaces);
                let mut used = BTreeSet::new();
                used.extend(ns);
                closure_namespaces(&types, ty, &mut vec![false; types.len()], &mut used);
                roots.entry(family).or_default().insert(
                    name.clone(),
                    RootDef {
                        name: name.clone(),
                        ns,
                        ty,
                        namespaces: used.into_iter().collect(),
                        element: ChildDef::new(
                            name.clone(),
                            ns.map(|i| namespaces[i].0.as_str()),
                            ns,
                            Some(ty),
                            (1, Some(1)),
                            None,
                        ),
                    },
                );
            }
        }
        Ok(Schemas {
            namespaces,
            types,
            roots,
        })
    }

    /// The root element `name` of a family, if the schemas define it.
    pub fn root(&self, family: Family, name: &str) -> Option<&RootDef> {
        self.roots.get(&family)?.get(name)
    }

    /// The children of the element at `path` (names below `root`), for tests and docs.
    pub fn type_at(&self, root: &RootDef, path: &[&str]) -> Option<&TypeDef> {
        let mut ty = root.ty;
        for seg in path {
            let c = self.types[ty].children.iter().find(|c| c.name == *seg)?;
            ty = c.ty?;
        }
        Some(&self.types[ty])
    }

    fn prefix(&self, ns: usize) -> &str {
        &self.namespaces[ns].0
    }

    fn uri(&self, ns: usize) -> &str {
        &self.namespaces[ns].1
    }
}

fn closure_namespaces(
    types: &[TypeDef],
    ty: usize,
    seen: &mut Vec<bool>,
    out: &mut BTreeSet<usize>,
) {
    if seen[ty] {
        return;
    }
    seen[ty] = true;
    for c in &types[ty].children {
        out.extend(c.ns);
        if let Some(t) = c.ty {
            closure_namespaces(types, t, seen, out);
        }
    }
}

/// What shaping an answer left out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Shaped {
    /// Members the schema does not define (the proxy counts them).
    pub dropped: u32,
    /// Their paths (element names from the root), kept for the unit tests only: building
    /// them cost a rate answer more than writing its members.
    pub paths: Vec<String>,
}

impl Shaped {
    fn drop_member(&mut self, path: impl FnOnce() -> String) {
        self.dropped += 1;
        if cfg!(test) {
            self.paths.push(path());
        }
    }
}

/// UPS's answer parsed into `arena` when it can be written straight from UPS's bytes: a
/// success of a service whose REST answer goes through unchanged. `None`: take the `Value`
/// path (errors, converted services, bodies that are not JSON).
pub fn borrowed_success<'a>(
    arena: &'a bumpalo::Bump,
    status: u16,
    service: super::services::Service,
    body: &'a [u8],
) -> Option<super::tree::Json<'a>> {
    is_direct(status, service)
        .then(|| super::tree::parse_in(arena, body))
        .flatten()
}

/// UPS's answer as text when it can be shaped straight from UPS's bytes (see
/// [`borrowed_success`]): first streamed ([`stream_json`], [`stream_xml`]), else walked from a
/// borrowed parse.
pub fn direct_success(status: u16, service: super::services::Service, body: &[u8]) -> Option<&str> {
    is_direct(status, service)
        .then(|| std::str::from_utf8(body).ok())
        .flatten()
}

fn is_direct(status: u16, service: super::services::Service) -> bool {
    (200..300).contains(&status) && super::services::answer_is_unchanged(service)
}

/// Where shaping writes: XML text or legacy JSON.
trait Sink {
    fn open(&mut self, s: &Schemas, c: &ChildDef);
    fn close(&mut self, s: &Schemas, c: &ChildDef);
    fn text(&mut self, s: &Schemas, c: &ChildDef, text: &str);
    /// [`Sink::text`] of a JSON string that held no escape and no control character (what
    /// serde_json lends from the input): nothing in it needs escaping in JSON.
    fn plain_json_text(&mut self, s: &Schemas, c: &ChildDef, text: &str) {
        self.text(s, c, text)
    }

    // For a streamed answer, whose members may come out of schema order (see `stream`).
    /// How much is written.
    fn written(&self) -> usize;
    /// Where a member written next begins, after the separator it takes.
    fn member_at(&self) -> usize;
    /// Finish the open object's last member (a JSON array's `]`), so it can be moved past.
    fn settle(&mut self);
    /// Move the member written last (from `from`, a [`Sink::member_at`] taken before it, to
    /// the end) back to `to` (the `member_at` of an earlier member of the same object), both
    /// settled. Returns by how much what was at `to` moved on.
    fn move_back(&mut self, from: usize, to: usize) -> usize;
}

struct Walk<'a> {
    schemas: &'a Schemas,
    shaped: Shaped,
    depth: usize,
}

/// Deepest nesting written (schemas are not recursive; this guards a table that is).
const MAX_DEPTH: usize = 48;

impl Walk<'_> {
    /// Write the members of `value` (an object) as the children of type `ty`.
    fn children<S: Sink, N: Node>(
        &mut self,
        sink: &mut S,
        ty: usize,
        value: &N,
        path: &mut String,
    ) {
        let def = &self.schemas.types[ty];
        // The members by the child they are, in schema order: each member's name is looked
        // up once instead of each child's name being searched among the members. A name
        // given twice counts once, its first copy, as a lookup by name finds it.
        let mut found: SmallVec<[(usize, &N); 16]> = SmallVec::new();
        let mut unknown: SmallVec<[&str; 4]> = SmallVec::new();
        for (k, v) in value.entries() {
            match def.position(k) {
                Some(i) => found.push((i, v)),
                None => unknown.push(k),
            }
        }
        found.sort_by_key(|&(i, _)| i); // stable: a first copy stays first
        found.dedup_by_key(|&mut (i, _)| i);
        let mut found = found.into_iter().peekable();
        let mut chosen: SmallVec<[u32; 4]> = SmallVec::new();
        for (i, c) in def.children.iter().enumerate() {
            let present = found
                .next_if(|&(at, _)| at == i)
                .map(|(_, v)| v)
                .filter(|v| !v.is_null());
            if let Some(group) = c.choice {
                if chosen.contains(&group) {
                    continue;
                }
                if present.is_some() {
                    chosen.push(group);
                } else {
                    continue;
                }
            }
            match present {
                Some(v) => {
                    let cap = c.max.map(|m| m as usize).unwrap_or(usize::MAX);
                    for item in v.items().filter(|i| !i.is_null()).take(cap) {
                        self.element(sink, c, Some(item), path);
                    }
                }
                None if c.min > 0 => self.element::<S, N>(sink, c, None, path),
                None => {}
            }
        }
        if !def.open {
            for k in unknown {
                self.shaped.drop_member(|| join(path, k));
            }
        }
    }

    /// One element `c` holding `v` (`None`: a required element the answer lacks).
    fn element<S: Sink, N: Node>(
        &mut self,
        sink: &mut S,
        c: &ChildDef,
        v: Option<&N>,
        path: &mut String,
    ) {
        let len = path.len();
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(&c.name);
        match (c.ty, v) {
            (None, Some(v)) if v.is_structure() => {
                // Structure where the schema has text: not the client's element.
                self.shaped.drop_member(|| path.clone());
            }
            (None, v) => sink.text(self.schemas, c, &v.and_then(Node::text).unwrap_or_default()),
            (Some(_), Some(v)) if v.is_nonempty_string() => {
                self.shaped.drop_member(|| path.clone());
            }
            (Some(ty), v) => {
                sink.open(self.schemas, c);
                if self.depth < MAX_DEPTH {
                    self.depth += 1;
                    match v {
                        Some(v) => self.children(sink, ty, v, path),
                        None => self.children(sink, ty, &Value::Null, path),
                    }
                    self.depth -= 1;
                }
                sink.close(self.schemas, c);
            }
        }
        path.truncate(len);
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}/{k}")
    }
}

/// XML output with the table's prefixes.
struct XmlSink<'a> {
    out: &'a mut String,
}

impl Sink for XmlSink<'_> {
    fn written(&self) -> usize {
        self.out.len()
    }
    fn member_at(&self) -> usize {
        self.out.len()
    }
    fn settle(&mut self) {}
    fn move_back(&mut self, from: usize, to: usize) -> usize {
        // `<earlier…><moved…>` becomes `<moved…><earlier…>`.
        let tail = self.out.split_off(to);
        let (earlier, moved) = tail.split_at(from - to);
        self.out.push_str(moved);
        self.out.push_str(earlier);
        moved.len()
    }
    fn open(&mut self, _: &Schemas, c: &ChildDef) {
        self.out.push_str(c.open_tag());
    }
    fn close(&mut self, _: &Schemas, c: &ChildDef) {
        self.out.push_str(c.close_tag());
    }
    fn text(&mut self, _: &Schemas, c: &ChildDef, text: &str) {
        if text.is_empty() {
            self.out.push_str(c.tag_start());
            self.out.push_str("/>");
        } else {
            self.out.push_str(c.open_tag());
            push_escaped(self.out, text);
            self.out.push_str(c.close_tag());
        }
    }
}

/// Write `content` (the members of the root) as the root element, declaring every
/// namespace of the root's schema. `client_ns`: the namespace URI the client used for
/// its request payload; when it differs from the schema's root namespace (another
/// version of the same service), it is declared in its place.
pub fn write_xml<N: Node>(
    out: &mut String,
    schemas: &Schemas,
    root: &RootDef,
    content: &N,
    client_ns: Option<&str>,
) -> Shaped {
    let walked = xml_document(out, schemas, root, client_ns, |walk, sink| {
        walk.children(sink, root.ty, content, &mut String::new());
        Some(())
    });
    walked.unwrap_or_default() // a walk over a tree always completes
}

/// [`write_xml`] of UPS's answer text, its member named as the root the content, shaped as
/// it is parsed (`stream`). `None`, with `out` as it was, where a tree must be walked.
pub fn stream_xml(
    out: &mut String,
    schemas: &Schemas,
    root: &RootDef,
    answer: &str,
    client_ns: Option<&str>,
) -> Option<Shaped> {
    let at = out.len();
    let streamed = xml_document(out, schemas, root, client_ns, |walk, sink| {
        stream::members(walk, sink, root, answer)
    });
    if streamed.is_none() {
        out.truncate(at);
    }
    streamed
}

/// The root element with its namespace declarations around what `content` writes.
fn xml_document(
    out: &mut String,
    schemas: &Schemas,
    root: &RootDef,
    client_ns: Option<&str>,
    content: impl FnOnce(&mut Walk<'_>, &mut XmlSink<'_>) -> Option<()>,
) -> Option<Shaped> {
    out.push_str(root.element.tag_start());
    for &ns in &root.namespaces {
        let uri = match (client_ns, root.ns) {
            (Some(client), Some(r)) if r == ns => client,
            _ => schemas.uri(ns),
        };
        out.push_str(" xmlns:");
        out.push_str(schemas.prefix(ns));
        out.push_str("=\"");
        out.push_str(&quick_xml::escape::escape(uri));
        out.push('"');
    }
    out.push('>');
    let mut walk = Walk {
        schemas,
        shaped: Shaped::default(),
        depth: 0,
    };
    let mut sink = XmlSink { out };
    content(&mut walk, &mut sink)?;
    sink.close(schemas, &root.element);
    Some(walk.shaped)
}

/// Legacy JSON output, written as the walk goes: members in schema order, one item as an
/// object and several as an array (the legacy single-item collapse), text as strings.
struct JsonSink<'a> {
    out: &'a mut Vec<u8>,
    /// One per open object.
    objects: Vec<JsonObject>,
}

#[derive(Default)]
struct JsonObject {
    /// The member written last: its name's index in the schema's children (by address), where
    /// its value starts in `out`, and whether it became an array.
    last: Option<(*const ChildDef, usize, bool)>,
}

impl JsonSink<'_> {
    /// Start the value of member `c`. Items of one child come one after another (the walk
    /// goes by schema order), so a second item turns the first into an array in place.
    fn member(&mut self, c: &ChildDef) {
        let out = &mut *self.out;
        let Some(object) = self.objects.last_mut() else {
            return;
        };
        match &mut object.last {
            Some((def, start, array)) if std::ptr::eq(*def, c) => {
                if !*array {
                    out.insert(*start, b'[');
                    *array = true;
                }
                out.push(b',');
                return;
            }
            Some((_, _, array)) => {
                if *array {
                    out.push(b']');
                }
                out.push(b',');
            }
            None => {}
        }
        out.extend_from_slice(c.json_key.as_bytes());
        object.last = Some((c, out.len(), false));
    }

    fn open_object(&mut self) {
        self.out.push(b'{');
        self.objects.push(JsonObject::default());
    }

    fn close_object(&mut self) {
        if let Some(JsonObject {
            last: Some((_, _, true)),
        }) = self.objects.pop()
        {
            self.out.push(b']');
        }
        self.out.push(b'}');
    }
}

/// `"name":` for a schema name: an XML name (checked when the table is compiled) needs no
/// escaping.
fn write_name(out: &mut Vec<u8>, name: &str) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

impl Sink for JsonSink<'_> {
    fn written(&self) -> usize {
        self.out.len()
    }
    fn member_at(&self) -> usize {
        let separator = match self.objects.last().and_then(|o| o.last) {
            None => 0,
            Some((_, _, false)) => 1,
            Some((_, _, true)) => 2,
        };
        self.out.len() + separator
    }
    fn settle(&mut self) {
        if let Some(JsonObject {
            last: Some((_, _, array @ true)),
        }) = self.objects.last_mut()
        {
            self.out.push(b']');
            *array = false;
        }
    }
    fn move_back(&mut self, from: usize, to: usize) -> usize {
        // `"Earlier":…,"Moved":…` becomes `"Moved":…,"Earlier":…`.
        let tail = self.out.split_off(to);
        let (earlier, moved) = tail.split_at(from - to);
        self.out.extend_from_slice(moved);
        self.out.push(b',');
        self.out.extend_from_slice(&earlier[..earlier.len() - 1]);
        moved.len() + 1
    }
    fn open(&mut self, _: &Schemas, c: &ChildDef) {
        self.member(c);
        self.open_object();
    }
    fn close(&mut self, _: &Schemas, _: &ChildDef) {
        self.close_object();
    }
    fn text(&mut self, _: &Schemas, c: &ChildDef, text: &str) {
        self.member(c);
        write_json_str(self.out, text);
    }
    fn plain_json_text(&mut self, _: &Schemas, c: &ChildDef, text: &str) {
        self.member(c);
        self.out.push(b'"');
        self.out.extend_from_slice(text.as_bytes());
        self.out.push(b'"');
    }
}

/// Write `{"<root>":{…}}`: the members of a legacy-JSON answer root shaped by the XOLTWS
/// schema of `root`, straight into `out`.
pub fn write_json<N: Node>(
    out: &mut Vec<u8>,
    schemas: &Schemas,
    root: &RootDef,
    content: &N,
) -> Shaped {
    let walked = json_document(out, schemas, root, |walk, sink| {
        walk.children(sink, root.ty, content, &mut String::new());
        Some(())
    });
    walked.unwrap_or_default() // a walk over a tree always completes
}

/// [`write_json`] of UPS's answer text, its member named as the root the content, shaped as
/// it is parsed (`stream`). `None`, with `out` as it was, where a tree must be walked.
pub fn stream_json(
    out: &mut Vec<u8>,
    schemas: &Schemas,
    root: &RootDef,
    answer: &str,
) -> Option<Shaped> {
    let at = out.len();
    let streamed = json_document(out, schemas, root, |walk, sink| {
        stream::members(walk, sink, root, answer)
    });
    if streamed.is_none() {
        out.truncate(at);
    }
    streamed
}

/// `{"<root>":{` and `}}` around what `content` writes.
fn json_document(
    out: &mut Vec<u8>,
    schemas: &Schemas,
    root: &RootDef,
    content: impl FnOnce(&mut Walk<'_>, &mut JsonSink<'_>) -> Option<()>,
) -> Option<Shaped> {
    let mut walk = Walk {
        schemas,
        shaped: Shaped::default(),
        depth: 0,
    };
    out.push(b'{');
    write_name(out, &root.name);
    let mut sink = JsonSink {
        out,
        objects: vec![],
    };
    sink.open_object();
    content(&mut walk, &mut sink)?;
    sink.close_object();
    out.push(b'}');
    Some(walk.shaped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_name_that_is_not_an_xml_name_is_refused() {
        let table = TABLE.replace("\"TotalCharges\"", "\"Total\\\"Charges\"");
        assert!(Schemas::compile(&table)
            .unwrap_err()
            .contains("not an XML name"));
    }

    const TABLE: &str = r#"{
      "namespaces": {"r": "urn:rate", "c": "urn:common"},
      "roots": {"soap": {"RateResponse": {"ns": "urn:rate", "type": "r:RateResponse"}}},
      "types": {
        "r:RateResponse": [
          {"name": "Response", "ns": "urn:common", "type": "c:Response", "min": 1, "max": 1},
          {"name": "RatedShipment", "ns": "urn:rate", "type": "r:RatedShipment", "min": 1, "max": null}
        ],
        "c:Response": [
          {"name": "ResponseStatus", "ns": "urn:common", "type": "c:Status", "min": 1, "max": 1},
          {"name": "Alert", "ns": "urn:common", "type": "c:Status", "min": 0, "max": null}
        ],
        "c:Status": [
          {"name": "Code", "ns": "urn:common", "type": null, "min": 1, "max": 1},
          {"name": "Description", "ns": "urn:common", "type": null, "min": 1, "max": 1}
        ],
        "r:RatedShipment": [
          {"name": "Service", "ns": "urn:rate", "type": "c:Status", "min": 1, "max": 1},
          {"name": "Negotiated", "ns": "urn:rate", "type": null, "min": 0, "max": 1, "choice": 1},
          {"name": "Published", "ns": "urn:rate", "type": null, "min": 0, "max": 1, "choice": 1},
          {"name": "TotalCharges", "ns": "urn:rate", "type": null, "min": 1, "max": 1}
        ]
      }
    }"#;

    #[test]
    fn order_namespaces_drops_and_defaults() {
        let s = Schemas::compile(TABLE).unwrap();
        let root = s.root(Family::Xoltws, "RateResponse").unwrap();
        let rest = json!({
            "RatedShipment": {"TotalCharges": "9.10", "ItemizedCharges": [{"Code": "x"}],
                              "Service": {"Code": "03"}, "Published": "p"},
            "Response": {"ResponseStatus": {"Description": "Success", "Code": "1"}},
        });
        let mut out = String::new();
        let shaped = write_xml(&mut out, &s, root, &rest, None);
        assert_eq!(
            out,
            "<r:RateResponse xmlns:c=\"urn:common\" xmlns:r=\"urn:rate\"><c:Response><c:ResponseStatus><c:Code>1</c:Code><c:Description>Success</c:Description></c:ResponseStatus></c:Response>\
<r:RatedShipment><r:Service><c:Code>03</c:Code><c:Description/></r:Service><r:Published>p</r:Published><r:TotalCharges>9.10</r:TotalCharges></r:RatedShipment></r:RateResponse>"
        );
        assert_eq!(shaped.paths, vec!["RatedShipment/ItemizedCharges"]);
        assert_eq!(shaped.dropped, 1);
        let mut json = vec![];
        let shaped = write_json(&mut json, &s, root, &rest);
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"RateResponse":{"Response":{"ResponseStatus":{"Code":"1","Description":"Success"}},"RatedShipment":{"Service":{"Code":"03","Description":""},"Published":"p","TotalCharges":"9.10"}}}"#
        );
        assert_eq!(shaped.dropped, 1);
        // The borrowed tree of the hot path shapes the same bytes the same way.
        let text = rest.to_string();
        let arena = bumpalo::Bump::new();
        let borrowed = crate::dialect::tree::parse_in(&arena, text.as_bytes()).unwrap();
        let mut again = String::new();
        write_xml(&mut again, &s, root, &borrowed, None);
        assert_eq!(again, out);
        let mut json_again = vec![];
        write_json(&mut json_again, &s, root, &borrowed);
        let mut json = vec![];
        write_json(&mut json, &s, root, &rest);
        assert_eq!(json_again, json);
    }

    #[test]
    fn repeated_members_become_arrays_in_place_and_single_items_stay_objects() {
        let s = Schemas::compile(TABLE).unwrap();
        let root = s.root(Family::Xoltws, "RateResponse").unwrap();
        let rest = json!({
            "Response": {"ResponseStatus": {"Code": "1"}, "Alert": [{"Code": "a"}, {"Code": "b"}]},
            "RatedShipment": [{"TotalCharges": "1"}, {"TotalCharges": 2.5}, {"Junk": true}],
        });
        let expected = concat!(
            r#"{"RateResponse":{"Response":{"ResponseStatus":{"Code":"1","Description":""},"#,
            r#""Alert":[{"Code":"a","Description":""},{"Code":"b","Description":""}]},"#,
            r#""RatedShipment":[{"Service":{"Code":"","Description":""},"TotalCharges":"1"},"#,
            r#"{"Service":{"Code":"","Description":""},"TotalCharges":"2.5"},"#,
            r#"{"Service":{"Code":"","Description":""},"TotalCharges":""}]}}"#
        );
        let mut json = vec![];
        let shaped = write_json(&mut json, &s, root, &rest);
        assert_eq!(String::from_utf8(json).unwrap(), expected);
        assert_eq!(shaped.paths, vec!["RatedShipment/Junk"]);
        let text = rest.to_string();
        let arena = bumpalo::Bump::new();
        let borrowed = crate::dialect::tree::parse_in(&arena, text.as_bytes()).unwrap();
        let mut json = vec![];
        write_json(&mut json, &s, root, &borrowed);
        assert_eq!(String::from_utf8(json).unwrap(), expected);
        let one = json!({"RatedShipment": {"TotalCharges": "1"}});
        let mut json = vec![];
        write_json(&mut json, &s, root, &one);
        assert!(
            String::from_utf8(json)
                .unwrap()
                .contains(r#""RatedShipment":{"Service""#),
            "one item stays an object"
        );
    }

    #[test]
    fn client_namespace_replaces_the_schema_one() {
        let s = Schemas::compile(TABLE).unwrap();
        let root = s.root(Family::Xoltws, "RateResponse").unwrap();
        let mut out = String::new();
        write_xml(&mut out, &s, root, &json!({}), Some("urn:rate-v2"));
        assert!(
            out.starts_with("<r:RateResponse xmlns:c=\"urn:common\" xmlns:r=\"urn:rate-v2\">"),
            "{out}"
        );
    }

    #[test]
    fn the_embedded_table_compiles() {
        Schemas::compile(TABLE_JSON).unwrap();
    }
}

//! An answer template ([`Field`]) written while UPS's JSON is read, with no tree in between.
//!
//! [`write_fields`](super::write_fields) walks a parsed tree: every member of UPS's answer
//! is built into the arena, then looked up by the template's paths. Here the template is
//! compiled once into a [`Plan`] (which member of an object feeds which of the template's
//! elements), and each member is written the moment it is read, or read past.
//!
//! UPS's order is not the old answer's: a rate's `GuaranteedDelivery` comes after its
//! `RatedPackage`, its `NegotiatedRateCharges` before it, where the old answer has them the
//! other way round. So each element read is a span of `out` tagged with its place in the
//! template; when the object ends, the spans are put in template order, with the `Nested`
//! wrappers, the `TextOrEmpty` elements UPS left out and the `Const` texts between them.
//!
//! What this writes is what `write_fields` writes over the tree, or nothing (`None`, `out` as
//! it was, and the caller walks the tree): a float (how it is spelled is the tree's business),
//! a member named twice or more than 64 in a copied object, an array in an array where the
//! tree's lookup would take it for its one item, structure where a text is taken, an escaped
//! member name, or an answer whose member is not an object, each stops the stream. Two
//! differences, both where the tree refuses what a client can use: a member the template
//! never reads is read past, not parsed, so a lone surrogate escape in it, or nesting deeper
//! than serde_json parses, does not make the whole answer unreadable.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use smallvec::SmallVec;

use super::{segments, Field, Src};
use crate::dialect::xmljson::{self, is_xml_name};

/// A template compiled for [`write()`]: its elements in template order, and which member of the
/// object it reads feeds which of them.
#[derive(Debug)]
pub struct Plan {
    fields: &'static [Field],
    /// The template's elements other than `Nested` wrappers, in template (depth-first) order.
    leaves: Vec<Leaf>,
    /// What each member of the object the template reads feeds.
    members: Table,
    /// No wrapper, no element written when UPS gives nothing: elements read in template order
    /// are the answer as they stand.
    flat: bool,
}

#[derive(Debug)]
struct Leaf {
    name: &'static str,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// `Copy`: the subtree, as `xmljson::write_node` writes it.
    Copy,
    /// `TextOrEmpty`.
    Text,
    /// `EachText`: each item's members read by this table, to the item's text.
    EachText(Table),
    /// `Each`: each item an element built by this plan.
    Each(Box<Plan>),
    /// `Const`.
    Const(&'static str),
}

/// The members of one object that feed the template, by name.
#[derive(Debug, Default)]
struct Table {
    entries: Vec<(&'static str, Step)>,
}

#[derive(Debug)]
enum Step {
    /// An object (or an array's first item) on the way down a path: `schema::get`'s step.
    Down(Table),
    /// The value leaf `i` writes (for an `EachText`, one item's text).
    Value(usize),
    /// The items of the value (an array's, or the value itself) of leaf `i`, an `Each` or an
    /// `EachText`: `schema::items_at`'s.
    Items(usize),
}

impl Table {
    fn step(&self, name: &str) -> Option<(usize, &Step)> {
        self.entries
            .iter()
            .enumerate()
            .find(|(_, (n, _))| *n == name)
            .map(|(k, (_, step))| (k, step))
    }

    /// `step` at the end of `path`; `None` where the template reads one member two ways, or an
    /// object more than one word of flags can track.
    fn insert(&mut self, path: &'static str, step: Step) -> Option<()> {
        let names: SmallVec<[&'static str; 4]> = segments(path).collect();
        let (last, above) = names.split_last()?;
        let mut table = self;
        for &name in above {
            let k = match table.step(name) {
                Some((k, _)) => k,
                None => {
                    table.entries.push((name, Step::Down(Table::default())));
                    if table.entries.len() > 64 {
                        return None;
                    }
                    table.entries.len() - 1
                }
            };
            table = match &mut table.entries[k].1 {
                Step::Down(t) => t,
                _ => return None,
            };
        }
        if table.step(last).is_some() {
            return None;
        }
        table.entries.push((last, step));
        (table.entries.len() <= 64).then_some(())
    }
}

impl Plan {
    /// `fields` compiled; `None` for a template this cannot write (a `Spread`, a list path of
    /// more than one name, a member read two ways, an element name that is not an XML name),
    /// which `write_fields` writes from a tree.
    pub fn compile(fields: &'static [Field]) -> Option<Plan> {
        let mut plan = Plan {
            fields,
            leaves: Vec::new(),
            members: Table::default(),
            flat: true,
        };
        plan.add(fields)?;
        Some(plan)
    }

    fn add(&mut self, fields: &'static [Field]) -> Option<()> {
        for field in fields {
            // Checked here, so that the writer need not check each element it writes.
            if !is_xml_name(field.name) {
                return None;
            }
            let i = self.leaves.len();
            let (kind, read) = match field.src {
                Src::Nested(sub) => {
                    self.flat = false;
                    self.add(sub)?;
                    continue;
                }
                Src::Copy(path) => (Kind::Copy, Some((path, Step::Value(i)))),
                Src::TextOrEmpty(path) => {
                    self.flat = false;
                    (Kind::Text, Some((path, Step::Value(i))))
                }
                Src::EachText(list, path) => {
                    let mut item = Table::default();
                    item.insert(path, Step::Value(i))?;
                    (
                        Kind::EachText(item),
                        Some((one_name(list)?, Step::Items(i))),
                    )
                }
                Src::Each(list, sub) => (
                    Kind::Each(Box::new(Plan::compile(sub)?)),
                    Some((one_name(list)?, Step::Items(i))),
                ),
                Src::Const(text) => {
                    self.flat = false;
                    (Kind::Const(text), None)
                }
                Src::Spread(_) => return None,
            };
            self.leaves.push(Leaf {
                name: field.name,
                kind,
            });
            if let Some((path, step)) = read {
                self.members.insert(path, step)?;
            }
        }
        Some(())
    }
}

/// A list's path of one name: `items_at` takes every item of every array along a longer one,
/// which this does not follow.
fn one_name(path: &'static str) -> Option<&'static str> {
    let mut names = segments(path);
    let name = names.next()?;
    names.next().is_none().then_some(name)
}

/// The elements of `plan` built from the member `root` of the JSON document `text`, appended
/// to `out`: what `write_fields(out, plan's fields, root's value)` appends. `None` (and `out`
/// as it was) where the two could differ, or `text` has no object `root`.
pub fn write(out: &mut String, plan: &Plan, root: &str, text: &str) -> Option<()> {
    let mark = out.len();
    let mut scratch = String::new();
    let mut de = serde_json::Deserializer::from_str(text);
    let written = Document {
        root,
        plan,
        out: &mut *out,
        scratch: &mut scratch,
    }
    .deserialize(&mut de)
    .ok()
    .filter(|&found| found)
    .and_then(|_| de.end().ok());
    if written.is_none() {
        out.truncate(mark);
    }
    written
}

/// The error that stops a stream (never shown: the tree takes over).
fn stop<E: serde::de::Error>() -> E {
    E::custom("not streamable")
}

/// Where in `out` a leaf's elements were written, and for a `Copy` whether UPS gave it (a
/// `null` counts as a member, though nothing is written for it).
#[derive(Clone, Copy, Default)]
struct Written {
    at: usize,
    end: usize,
    found: bool,
}

/// One object being written by a plan: the leaves' spans so far, and the output.
struct Scope<'p, 'o> {
    plan: &'p Plan,
    written: SmallVec<[Written; 16]>,
    out: &'o mut String,
    /// Where the spans are put in order (one buffer for the whole answer).
    scratch: &'o mut String,
}

impl<'p> Scope<'p, '_> {
    fn leaf(&self, i: usize) -> &'p Leaf {
        &self.plan.leaves[i]
    }

    /// The spans from `from` on, in template order with what goes between them; how many
    /// members `write_fields` would count.
    fn assemble(&mut self, from: usize) -> usize {
        let plan = self.plan;
        let spans = || plan.leaves.iter().zip(&self.written);
        let mut at = from;
        let in_order = spans().all(|(_, w)| {
            let after = w.at >= at || w.at == w.end;
            at = at.max(w.end);
            after
        });
        if plan.flat && in_order {
            return spans().filter(|(leaf, w)| counts(leaf, w)).count();
        }
        self.scratch.clear();
        self.scratch.push_str(&self.out[from..]);
        self.out.truncate(from);
        let mut next = 0;
        self.emit(plan.fields, &mut next, from)
    }

    /// `fields` (leaves from `next` on) written from the spans in `scratch` (which begins at
    /// `from` of the object's output).
    fn emit(&mut self, fields: &[Field], next: &mut usize, from: usize) -> usize {
        let mut members = 0;
        for field in fields {
            if let Src::Nested(sub) = field.src {
                let mark = self.out.len();
                xmljson::open_element(self.out, field.name);
                if self.emit(sub, next, from) == 0 {
                    self.out.truncate(mark);
                } else {
                    xmljson::close_element(self.out, field.name);
                    members += 1;
                }
                continue;
            }
            let (leaf, w) = (&self.plan.leaves[*next], self.written[*next]);
            *next += 1;
            if w.at != w.end {
                self.out.push_str(&self.scratch[w.at - from..w.end - from]);
            }
            match leaf.kind {
                Kind::Text if w.at == w.end => xmljson::write_named_text(self.out, leaf.name, ""),
                Kind::Const(text) => xmljson::write_named_text(self.out, leaf.name, text),
                _ => {}
            }
            members += usize::from(counts(leaf, &w));
        }
        members
    }
}

/// Whether `write_fields` counts the leaf as a member of its element.
fn counts(leaf: &Leaf, w: &Written) -> bool {
    match leaf.kind {
        Kind::Copy => w.found,
        Kind::Text | Kind::Const(_) => true,
        Kind::EachText(_) | Kind::Each(_) => w.at != w.end,
    }
}

/// The answer document: its first member named `root`, an object, written by the plan.
struct Document<'p, 'o> {
    root: &'p str,
    plan: &'p Plan,
    out: &'o mut String,
    scratch: &'o mut String,
}

impl<'de> DeserializeSeed<'de> for Document<'_, '_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Document<'_, '_> {
    type Value = bool;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an answer object")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<bool, M::Error> {
        let mut found = false;
        while let Some(key) = m.next_key::<&'de str>()? {
            if found || key != self.root {
                m.next_value::<IgnoredAny>()?;
                continue;
            }
            found = true;
            let mut scope = Scope {
                plan: self.plan,
                written: smallvec::smallvec![Written::default(); self.plan.leaves.len()],
                out: &mut *self.out,
                scratch: &mut *self.scratch,
            };
            let from = scope.out.len();
            m.next_value_seed(Object {
                table: &self.plan.members,
                scope: &mut scope,
            })?;
            scope.assemble(from);
        }
        Ok(found)
    }
}

/// An object whose members feed `table`'s steps: every member named there (the first of a
/// name: the tree's lookups find the first) is followed, the rest read past. Anything but an
/// object stops the stream (a plan reads objects only).
struct Object<'t, 's, 'p, 'o> {
    table: &'t Table,
    scope: &'s mut Scope<'p, 'o>,
}

impl<'de> DeserializeSeed<'de> for Object<'_, '_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Object<'_, '_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<(), M::Error> {
        read_members(self.table, self.scope, &mut m)
    }
}

fn read_members<'de, M: MapAccess<'de>>(
    table: &Table,
    scope: &mut Scope<'_, '_>,
    m: &mut M,
) -> Result<(), M::Error> {
    let mut seen = 0u64;
    while let Some(key) = m.next_key::<&'de str>()? {
        let Some((k, step)) = table.step(key).filter(|(k, _)| seen & (1 << k) == 0) else {
            m.next_value::<IgnoredAny>()?;
            continue;
        };
        seen |= 1 << k;
        match *step {
            Step::Down(ref inner) => m.next_value_seed(Down {
                table: inner,
                scope: &mut *scope,
                item: false,
            })?,
            Step::Value(i) => {
                let leaf = scope.leaf(i);
                let at = scope.out.len();
                match leaf.kind {
                    Kind::Copy => m.next_value_seed(Subtree {
                        name: leaf.name,
                        out: &mut *scope.out,
                        top: true,
                        item: false,
                    })?,
                    // An `EachText` item's text: the leaf's span is its whole list's.
                    Kind::EachText(_) => {
                        m.next_value_seed(Text(leaf.name, &mut *scope.out))?;
                        continue;
                    }
                    _ => m.next_value_seed(Text(leaf.name, &mut *scope.out))?,
                }
                scope.written[i] = Written {
                    at,
                    end: scope.out.len(),
                    found: true,
                };
            }
            Step::Items(i) => {
                let at = scope.out.len();
                m.next_value_seed(Items {
                    leaf: i,
                    scope: &mut *scope,
                    item: false,
                })?;
                scope.written[i] = Written {
                    at,
                    end: scope.out.len(),
                    found: true,
                };
            }
        }
    }
    Ok(())
}

/// A value on the way down a path: an object's members are read by the table; an array's
/// first item is taken (`item`: this is it), the rest read past; anything else ends the path.
struct Down<'t, 's, 'p, 'o> {
    table: &'t Table,
    scope: &'s mut Scope<'p, 'o>,
    item: bool,
}

impl<'de> DeserializeSeed<'de> for Down<'_, '_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Down<'_, '_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<(), M::Error> {
        read_members(self.table, self.scope, &mut m)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // An array's first item is looked into; an array in an array has no members.
        if !self.item {
            seq.next_element_seed(Down { item: true, ..self })?;
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
}

/// The items of an `Each` or `EachText` leaf: an array's, or the value as its one item.
/// `item`: this is one item of that array, where an array stops the stream (`items_at`
/// takes an array in an array as its item, which is the tree's business).
struct Items<'s, 'p, 'o> {
    leaf: usize,
    scope: &'s mut Scope<'p, 'o>,
    item: bool,
}

impl<'de> DeserializeSeed<'de> for Items<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Items<'_, '_, '_> {
    /// An item that is not an object: an `Each` element has only the members UPS need not
    /// give; an `EachText` item no text.
    fn scalar<E: serde::de::Error>(self) -> Result<(), E> {
        if let Kind::Each(ref plan) = self.scope.leaf(self.leaf).kind {
            let name = self.scope.leaf(self.leaf).name;
            element(name, plan, self.scope, |_| Ok(()))?;
        }
        Ok(())
    }
}

/// `<name>` around the members `read` feeds to a scope of `plan`, put in order; nothing where
/// they count none.
fn element<E>(
    name: &str,
    plan: &Plan,
    outer: &mut Scope<'_, '_>,
    read: impl FnOnce(&mut Scope<'_, '_>) -> Result<(), E>,
) -> Result<(), E> {
    let mark = outer.out.len();
    xmljson::open_element(outer.out, name);
    let mut scope = Scope {
        plan,
        written: smallvec::smallvec![Written::default(); plan.leaves.len()],
        out: &mut *outer.out,
        scratch: &mut *outer.scratch,
    };
    let from = scope.out.len();
    read(&mut scope)?;
    if scope.assemble(from) == 0 {
        outer.out.truncate(mark);
    } else {
        xmljson::close_element(outer.out, name);
    }
    Ok(())
}

impl<'de> Visitor<'de> for Items<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<(), M::Error> {
        let leaf = self.scope.leaf(self.leaf);
        match leaf.kind {
            Kind::Each(ref plan) => element(leaf.name, plan, self.scope, |scope| {
                read_members(&plan.members, scope, &mut m)
            }),
            Kind::EachText(ref item) => read_members(item, self.scope, &mut m),
            _ => Err(stop()),
        }
    }
    /// Each item in turn.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.item {
            return Err(stop());
        }
        while seq
            .next_element_seed(Items {
                leaf: self.leaf,
                scope: &mut *self.scope,
                item: true,
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
}

/// A leaf's text element, from a leaf value as the templates take it (`Node::json_text`): a
/// string as it is, a whole number or a boolean spelled out, `null` as empty. Structure or a
/// float stops the stream. The name is one already checked: a plan's, or a member name
/// [`is_xml_name`] took.
struct Text<'n, 'o>(&'n str, &'o mut String);

impl<'de> DeserializeSeed<'de> for Text<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Text<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a leaf")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        xmljson::write_named_text(self.1, self.0, "");
        Ok(())
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        xmljson::write_named_text(self.1, self.0, if v { "true" } else { "false" });
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        xmljson::write_named_text(self.1, self.0, itoa::Buffer::new().format(v));
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        xmljson::write_named_text(self.1, self.0, itoa::Buffer::new().format(v));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        xmljson::write_named_text(self.1, self.0, v);
        Ok(())
    }
}

/// Any JSON value written as element `name`, as `xmljson::write_node` writes it. `top`: the
/// value the template's path found (an array in an array there is the tree's business);
/// `item`: one item of an array (an array in it is skipped).
struct Subtree<'n, 'o> {
    name: &'n str,
    out: &'o mut String,
    top: bool,
    item: bool,
}

impl<'de> DeserializeSeed<'de> for Subtree<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Subtree<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        Text(self.name, self.out).visit_bool(v)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        Text(self.name, self.out).visit_u64(v)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        Text(self.name, self.out).visit_i64(v)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        Text(self.name, self.out).visit_str(v)
    }
    fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<(), M::Error> {
        xmljson::open_element(self.out, self.name);
        // Names are searched linearly; the tree's writer refuses what this refuses.
        let mut seen: SmallVec<[&'de str; 16]> = SmallVec::new();
        while let Some(key) = m.next_key::<&'de str>()? {
            if seen.contains(&key) || seen.len() >= 64 {
                return Err(stop());
            }
            seen.push(key);
            if is_xml_name(key) {
                m.next_value_seed(Subtree {
                    name: key,
                    out: &mut *self.out,
                    top: false,
                    item: false,
                })?;
            } else {
                m.next_value::<IgnoredAny>()?;
            }
        }
        xmljson::close_element(self.out, self.name);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.item && self.top {
            return Err(stop());
        }
        if self.item {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        while seq
            .next_element_seed(Subtree {
                name: self.name,
                out: &mut *self.out,
                top: self.top,
                item: true,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// Answers generated from a template's paths, for the tests that hold this writer to the
/// tree's: members in any order, left out, repeated, `null`, arrays or single, numbers,
/// floats, escapes, arrays in arrays, members no template reads.
#[cfg(test)]
pub(crate) mod generated {
    use super::{segments, Field, Src};
    use crate::dialect::generated_json::{null_array_or, Rng, TEXTS};

    /// The members a template reads below one object, by name.
    #[derive(Default, Debug)]
    pub struct Shape {
        members: Vec<(&'static str, Shape)>,
    }

    impl Shape {
        pub fn of(fields: &'static [Field]) -> Shape {
            let mut shape = Shape::default();
            shape.add(fields);
            shape
        }

        fn add(&mut self, fields: &'static [Field]) {
            for field in fields {
                match field.src {
                    Src::Copy(path) | Src::TextOrEmpty(path) => {
                        self.at(path);
                    }
                    Src::EachText(list, path) => {
                        self.at(list).at(path);
                    }
                    Src::Each(list, sub) => self.at(list).add(sub),
                    Src::Nested(sub) => self.add(sub),
                    Src::Spread(path) => {
                        self.at(path);
                    }
                    Src::Const(_) => {}
                }
            }
        }

        fn at(&mut self, path: &'static str) -> &mut Shape {
            segments(path).fold(self, |shape, name| {
                let k = match shape.members.iter().position(|(n, _)| *n == name) {
                    Some(k) => k,
                    None => {
                        shape.members.push((name, Shape::default()));
                        shape.members.len() - 1
                    }
                };
                &mut shape.members[k].1
            })
        }
    }

    const SUBTREES: [&str; 8] = [
        r#"{"CurrencyCode":"USD","MonetaryValue":"18.70"}"#,
        r#"{"UnitOfMeasurement":{"Code":"LBS","Description":"Pounds"},"Weight":"3.0"}"#,
        r#"{"A":[["x"],"y",null,{"B":"c"}],"N":7,"T":true}"#,
        r#"{"1bad":{"x":"y","x":"z"},"ok":"y","a b":"c"}"#,
        r#"{}"#,
        r#"[]"#,
        r#"{"Esc":"<a href=\"x\">&amp;</a>","Neg":-3}"#,
        r#"{"Code":"","Description":null}"#,
    ];

    /// What stops a stream now and then: a float, a member named twice, an escaped name.
    const STOPPERS: [&str; 4] = [
        "1.5",
        r#"{"Weight":"1","Weight":"2"}"#,
        r#"{"W\u0065ight":"1"}"#,
        "[[\"x\"]]",
    ];

    /// One object of `shape`.
    pub fn object(rng: &mut Rng, shape: &Shape, depth: usize, out: &mut String) {
        let mut members: Vec<Option<&Shape>> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for (name, sub) in &shape.members {
            if rng.chance(70) {
                names.push(name.to_string());
                members.push(Some(sub));
                if rng.chance(4) {
                    names.push(name.to_string());
                    members.push(Some(sub));
                }
            }
            if rng.chance(8) {
                names.push(format!("Rest{}", rng.below(3)));
                members.push(None);
            }
        }
        // Out of order, as UPS's REST order is not the old answer's.
        for _ in 0..rng.below(4) {
            if names.len() > 1 {
                let from = rng.below(names.len() as u64) as usize;
                let to = rng.below(names.len() as u64) as usize;
                let (n, m) = (names.remove(from), members.remove(from));
                names.insert(to, n);
                members.insert(to, m);
            }
        }
        out.push('{');
        for (i, (name, member)) in names.iter().zip(members).enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&format!("\"{name}\":"));
            match member {
                Some(sub) => value(rng, sub, depth, out),
                // Read past: anything, a float and a repeated name included.
                None => out.push_str(rng.pick(&[
                    r#"{"X":[1.25,{"Y":null}],"X":"again"}"#,
                    "2.5",
                    r#""\ud83d\ude00""#,
                ])),
            }
        }
        out.push('}');
    }

    fn value(rng: &mut Rng, shape: &Shape, depth: usize, out: &mut String) {
        null_array_or(rng, out, |rng, out| item(rng, shape, depth, out));
    }

    fn item(rng: &mut Rng, shape: &Shape, depth: usize, out: &mut String) {
        let r = rng.below(100);
        if !shape.members.is_empty() && depth < 6 {
            match r {
                0..88 => object(rng, shape, depth + 1, out),
                88..94 => out.push_str(rng.pick(&TEXTS)),
                94..98 => out.push_str(rng.pick(&["7", "true", "-1"])),
                _ => out.push_str(rng.pick(&STOPPERS)),
            }
            return;
        }
        match r {
            0..70 => out.push_str(rng.pick(&TEXTS)),
            70..82 => out.push_str(rng.pick(&["12", "-3", "0", "true", "false"])),
            82..98 => out.push_str(rng.pick(&SUBTREES)),
            _ => out.push_str(rng.pick(&STOPPERS)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::generated::{object, Shape};
    use super::*;
    use crate::dialect::generated_json::Rng;
    use crate::dialect::schema::{build, f, write_fields};
    use crate::dialect::tree::{parse_in, Node};

    const PACKAGE: &[Field] = &[
        f("Charge", Src::Copy("Charge")),
        f("Weight", Src::Copy("Weight")),
    ];

    const ITEM: &[Field] = &[
        f("Code", Src::TextOrEmpty("Code")),
        f("Fixed", Src::Const("1")),
        f("Package", Src::Each("Package", PACKAGE)),
    ];

    /// Every kind of source, paths of one to three names, wrappers in wrappers.
    const TEMPLATE: &[Field] = &[
        f(
            "Service",
            Src::Nested(&[f("Code", Src::Copy("Service/Code"))]),
        ),
        f("Warning", Src::EachText("Alert", "Description")),
        f("Deep", Src::EachText("Note", "Text/Value")),
        f("Total", Src::Copy("Total")),
        f("Days", Src::TextOrEmpty("Guaranteed/Days")),
        f("Time", Src::TextOrEmpty("Guaranteed/Time")),
        f("Package", Src::Each("Package", PACKAGE)),
        f("Item", Src::Each("Item", ITEM)),
        f(
            "Net",
            Src::Nested(&[f(
                "Sum",
                Src::Nested(&[f("Grand", Src::Copy("Net/Charge/Total"))]),
            )]),
        ),
        f("Version", Src::Const("2")),
    ];

    /// What the tree path writes for the member `root` of `text`: the template built as a
    /// map, each member written as `xmljson::write_json` writes it (the reference
    /// `write_fields` is held to).
    fn by_map(fields: &[Field], root: &str, text: &str) -> Option<String> {
        let arena = bumpalo::Bump::new();
        let doc = parse_in(&arena, text.as_bytes())?;
        let rest = doc.field(root)?;
        let mut out = String::new();
        for (name, value) in build(fields, rest) {
            xmljson::write_json(&mut out, None, &name, &value);
        }
        Some(out)
    }

    fn streamed(fields: &'static [Field], root: &str, text: &str) -> Option<String> {
        let plan = Plan::compile(fields).expect("compiles");
        let mut out = String::from("<before/>");
        let written = write(&mut out, &plan, root, text);
        match written {
            Some(()) => Some(out["<before/>".len()..].to_string()),
            None => {
                assert_eq!(out, "<before/>", "a stopped stream leaves `out` as it was");
                None
            }
        }
    }

    /// For thousands of generated answers, whatever the stream writes is byte for byte what
    /// the tree path writes; most answers stream, and some stop.
    #[test]
    fn a_streamed_template_is_the_tree_s_template() {
        let shape = Shape::of(TEMPLATE);
        let (mut streamed_count, cases) = (0, 6000u32);
        for seed in 1..=cases {
            let mut rng = Rng(u64::from(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut text = String::from("{");
            if rng.chance(5) {
                text.push_str(r#""Other":[1,{"a":null}],"#);
            }
            text.push_str("\"Answer\":");
            object(&mut rng, &shape, 0, &mut text);
            if rng.chance(3) {
                text.push_str(r#","Answer":{"Total":"second"}"#);
            }
            text.push('}');
            let Some(written) = streamed(TEMPLATE, "Answer", &text) else {
                continue;
            };
            streamed_count += 1;
            let reference = by_map(TEMPLATE, "Answer", &text).expect("a tree");
            assert_eq!(written, reference, "seed {seed}: {text}");
            // And what the tree's own writer writes, where it writes.
            let arena = bumpalo::Bump::new();
            let doc = parse_in(&arena, text.as_bytes()).unwrap();
            let mut direct = String::new();
            if write_fields(&mut direct, TEMPLATE, doc.field("Answer").unwrap()).is_some() {
                assert_eq!(written, direct, "seed {seed}");
            }
        }
        eprintln!("{streamed_count} of {cases} generated answers streamed");
        assert!(streamed_count * 2 > cases, "only {streamed_count} streamed");
        assert!(streamed_count < cases, "the stops are not exercised");
    }

    #[test]
    fn elements_come_out_in_template_order_whatever_ups_s_order() {
        let text = r#"{"Answer":{"Net":{"Charge":{"Total":{"V":"9"}}},"Package":{"Weight":"3"},
            "Guaranteed":{"Time":"noon","Days":2},"Alert":[{"Description":"a"},{"Description":null},
            {"Code":"x"}],"Service":{"Code":"02"},"Item":[null,{"Code":"c"}]}}"#;
        let written = streamed(TEMPLATE, "Answer", text).expect("streams");
        assert_eq!(
            written,
            "<Service><Code>02</Code></Service><Warning>a</Warning><Warning/><Days>2</Days>\
             <Time>noon</Time><Package><Weight>3</Weight></Package><Item><Code/><Fixed>1</Fixed>\
             </Item><Item><Code>c</Code><Fixed>1</Fixed></Item><Net><Sum><Grand><V>9</V></Grand>\
             </Sum></Net><Version>2</Version>"
        );
        assert_eq!(Some(written), by_map(TEMPLATE, "Answer", text));
    }

    #[test]
    fn what_the_tree_would_write_differently_stops_the_stream() {
        for (why, text) in [
            ("a float", r#"{"Answer":{"Total":1.5}}"#),
            (
                "a name twice in a copy",
                r#"{"Answer":{"Total":{"A":"1","A":"2"}}}"#,
            ),
            ("an escaped name", r#"{"Answer":{"Tot\u0061l":"1"}}"#),
            ("an array in an array", r#"{"Answer":{"Total":[["1"]]}}"#),
            (
                "structure for a text",
                r#"{"Answer":{"Guaranteed":{"Days":{}}}}"#,
            ),
            (
                "an array for a text",
                r#"{"Answer":{"Guaranteed":{"Days":["2"]}}}"#,
            ),
            ("an item that is an array", r#"{"Answer":{"Package":[[]]}}"#),
            ("no object", r#"{"Answer":null}"#),
            ("no member", r#"{"Other":{}}"#),
            ("not JSON", r#"{"Answer":{}"#),
            ("more after it", r#"{"Answer":{}} x"#),
        ] {
            assert_eq!(streamed(TEMPLATE, "Answer", text), None, "{why}");
        }
        let wide: Vec<String> = (0..65).map(|i| format!(r#""M{i}":"{i}""#)).collect();
        let wide = format!(r#"{{"Answer":{{"Total":{{{}}}}}}}"#, wide.join(","));
        assert_eq!(streamed(TEMPLATE, "Answer", &wide), None, "65 members");
    }

    /// A member the template never reads is read past, not parsed: what the tree refuses
    /// there does not stop the answer.
    #[test]
    fn what_no_template_reads_is_read_past() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for unread in [r#""\ud800""#, deep.as_str()] {
            let text = format!(r#"{{"Answer":{{"Total":"1","Extra":{unread}}}}}"#);
            assert!(
                by_map(TEMPLATE, "Answer", &text).is_none(),
                "the tree refuses"
            );
            let written = streamed(TEMPLATE, "Answer", &text).expect("streams");
            assert!(written.starts_with("<Total>1</Total>"), "{written}");
        }
    }

    #[test]
    fn templates_the_stream_cannot_write_do_not_compile() {
        const TWICE: &[Field] = &[f("A", Src::Copy("X")), f("B", Src::Copy("X/Y"))];
        const SPREAD: &[Field] = &[f("A", Src::Spread("X"))];
        const LONG_LIST: &[Field] = &[f("A", Src::EachText("X/Y", "Z"))];
        // The writer takes the template's names as checked: one that is not an XML name
        // (which the tree's writer leaves out) keeps the tree, however deep it is.
        const NOT_A_NAME: &[Field] = &[f("1A", Src::TextOrEmpty("X"))];
        const DEEP_NOT_A_NAME: &[Field] = &[f("A", Src::Each("X", &[f("B C", Src::Const("c"))]))];
        for fields in [TWICE, SPREAD, LONG_LIST, NOT_A_NAME, DEEP_NOT_A_NAME] {
            assert!(Plan::compile(fields).is_none(), "{fields:?}");
        }
        assert!(Plan::compile(TEMPLATE).is_some());
    }
}

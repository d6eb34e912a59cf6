//! Shaping UPS's answer as serde_json reads it, with no tree in between.
//!
//! UPS writes an answer's members mostly in the order of the client's schema (the REST
//! schemas are the XOLTWS ones rendered as JSON), so each member can be written the moment it
//! is read: the walk of [`Walk::children`], done member by member. Building the tree and
//! freeing it was half of a rate answer's parse.
//!
//! Where REST's order differs (a rate's `GuaranteedDelivery` comes after `RatedPackage`;
//! XOLTWS has it first), the optional member that comes late is kept as raw text, written
//! when its object ends and moved back before the first member that follows it in the
//! schema ([`Sink::move_back`]).
//!
//! What this writes is what the walk over the tree writes, or nothing: a required member or
//! an alternative of a choice out of order, an array in an array, a number with a fraction,
//! an object with more children than one word of flags holds, an escaped key, each stops the
//! stream (`None`), and the caller shapes the answer from a tree. The one difference: members
//! the schema lacks are reported as they are read (only their count is used outside tests).

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;
use smallvec::SmallVec;

use super::{ChildDef, RootDef, Sink, Walk, MAX_DEPTH};

/// The error that stops a stream (never shown: the tree walk takes over).
fn stop<E: serde::de::Error>() -> E {
    E::custom("not streamable")
}

/// Write the members of the `root` member of the JSON document `text` as the children of the
/// root's type. `None` when the stream stopped (what it wrote is then to be discarded), or the
/// document has no such member.
pub(super) fn members<S: Sink>(
    walk: &mut Walk<'_>,
    sink: &mut S,
    root: &RootDef,
    text: &str,
) -> Option<()> {
    let mut de = serde_json::Deserializer::from_str(text);
    let mut path = Path::default();
    let document = Document {
        walk,
        sink,
        root,
        path: &mut path,
    };
    let found = document.deserialize(&mut de).ok()?;
    de.end().ok()?;
    found.then_some(())
}

/// Where the stream is: the names of the elements open below the root, joined only for a
/// member reported as dropped. (Building the path as a string, element by element, was a
/// tenth of the stream's work.)
#[derive(Default)]
struct Path<'s> {
    names: SmallVec<[&'s str; 8]>,
    /// What the tree walk, called for an absent or empty element, keeps its path in: such an
    /// element drops nothing, so its path is never read.
    scratch: String,
}

impl Path<'_> {
    fn joined(&self) -> String {
        self.names.join("/")
    }

    /// The path of member `key` of the innermost element.
    fn with(&self, key: &str) -> String {
        let mut path = self.joined();
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(key);
        path
    }
}

/// The answer document: its first member named as the root is written, the others skipped.
struct Document<'w, 's, S> {
    walk: &'w mut Walk<'s>,
    sink: &'w mut S,
    root: &'w RootDef,
    path: &'w mut Path<'s>,
}

impl<'de, S: Sink> DeserializeSeed<'de> for Document<'_, '_, S> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, S: Sink> Visitor<'de> for Document<'_, '_, S> {
    type Value = bool;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an answer object")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<bool, M::Error> {
        let mut found = false;
        while let Some(key) = m.next_key::<&'de str>()? {
            if !found && key == self.root.name {
                // Its content must be an object (anything else, `null` included, is the tree
                // walk's case).
                m.next_value_seed(Members {
                    walk: &mut *self.walk,
                    sink: &mut *self.sink,
                    ty: self.root.ty,
                    path: &mut *self.path,
                })?;
                found = true;
            } else {
                m.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// An object written as the children of type `ty`.
struct Members<'w, 's, S> {
    walk: &'w mut Walk<'s>,
    sink: &'w mut S,
    ty: usize,
    path: &'w mut Path<'s>,
}

impl<'de, S: Sink> DeserializeSeed<'de> for Members<'_, '_, S> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, S: Sink> Visitor<'de> for Members<'_, '_, S> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<M: MapAccess<'de>>(mut self, mut m: M) -> Result<(), M::Error> {
        let schemas = self.walk.schemas;
        let def = &schemas.types[self.ty];
        if def.children.len() > 64 {
            return Err(stop());
        }
        // The children read (a second copy of one is skipped: the walk takes the first), the
        // first child not yet written or passed, and the choice groups decided.
        let mut seen = 0u64;
        let mut next = 0;
        let mut chosen: SmallVec<[u32; 4]> = SmallVec::new();
        // Where each child written begins, in schema order; and the optional children that
        // came after a later one, written last and moved back into place.
        let mut marks: Marks = SmallVec::new();
        let mut late: SmallVec<[(usize, &'de RawValue); 2]> = SmallVec::new();
        while let Some(key) = m.next_key::<&'de str>()? {
            let Some(i) = def.position_after(key, next) else {
                m.next_value::<IgnoredAny>()?;
                if !def.open {
                    self.walk.shaped.drop_member(|| self.path.with(key));
                }
                continue;
            };
            if seen & (1 << i) != 0 {
                m.next_value::<IgnoredAny>()?;
                continue;
            }
            seen |= 1 << i;
            let c = &def.children[i];
            if i < next {
                // A required child was written empty when passed; an alternative's choice
                // depends on the order: both are the tree walk's.
                if c.min > 0 || c.choice.is_some() {
                    return Err(stop());
                }
                late.push((i, m.next_value()?));
                continue;
            }
            // Mostly the member that comes next in the schema: no child was passed over.
            if next < i {
                self.absent(next..i, &mut marks);
            }
            next = i + 1;
            if c.choice.is_some_and(|group| chosen.contains(&group)) {
                m.next_value::<IgnoredAny>()?;
                continue;
            }
            let (before, at) = (self.sink.written(), self.sink.member_at());
            let given = m.next_value_seed(Member {
                walk: &mut *self.walk,
                sink: &mut *self.sink,
                c,
                path: &mut *self.path,
                in_array: false,
            })?;
            if self.sink.written() != before {
                marks.push((i, at));
            }
            match (given, c.choice) {
                (true, Some(group)) => chosen.push(group),
                (false, None) if c.min > 0 => self.absent(i..i + 1, &mut marks),
                _ => {}
            }
        }
        self.absent(next..def.children.len(), &mut marks);
        late.sort_unstable_by_key(|&(i, _)| i);
        for (i, raw) in late {
            self.late(i, raw, &mut marks)
                .map_err(|_| stop::<M::Error>())?;
        }
        Ok(())
    }
}

/// Where each child written so far begins: its index, its [`Sink::member_at`].
type Marks = SmallVec<[(usize, usize); 16]>;

impl<S: Sink> Members<'_, '_, S> {
    /// What the walk writes for the children in `range` the object does not give (or gives
    /// as `null`): a required one empty, with its required children; nothing for an
    /// alternative.
    fn absent(&mut self, range: std::ops::Range<usize>, marks: &mut Marks) {
        let children = &self.walk.schemas.types[self.ty].children;
        for i in range {
            let c = &children[i];
            if c.choice.is_none() && c.min > 0 {
                let at = self.sink.member_at();
                self.walk
                    .element::<S, Value>(self.sink, c, None, &mut self.path.scratch);
                marks.push((i, at));
            }
        }
    }

    /// Child `i`, given after a later child: written at the end, then moved back before the
    /// first child written that comes after it in the schema.
    fn late(&mut self, i: usize, raw: &RawValue, marks: &mut Marks) -> serde_json::Result<()> {
        let c = &self.walk.schemas.types[self.ty].children[i];
        self.sink.settle();
        let (before, from) = (self.sink.written(), self.sink.member_at());
        let mut de = serde_json::Deserializer::from_str(raw.get());
        Member {
            walk: &mut *self.walk,
            sink: &mut *self.sink,
            c,
            path: &mut *self.path,
            in_array: false,
        }
        .deserialize(&mut de)?;
        self.sink.settle();
        if self.sink.written() == before {
            return Ok(());
        }
        match marks.iter().position(|&(j, _)| j > i) {
            Some(k) => {
                let to = marks[k].1;
                let moved = self.sink.move_back(from, to);
                for mark in &mut marks[k..] {
                    mark.1 += moved;
                }
                marks.insert(k, (i, to));
            }
            None => marks.push((i, from)),
        }
        Ok(())
    }
}

/// The value of child `c` (or, `in_array`, one item of it). Its result: whether it was given
/// (not `null`).
struct Member<'w, 's, S> {
    walk: &'w mut Walk<'s>,
    sink: &'w mut S,
    c: &'s ChildDef,
    path: &'w mut Path<'s>,
    in_array: bool,
}

impl<'de, S: Sink> DeserializeSeed<'de> for Member<'_, '_, S> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<S: Sink> Member<'_, '_, S> {
    /// The child's name added to the path for what `write` does, then taken off again. Only
    /// the unit tests read a dropped member's path ([`super::Shaped::paths`]), so only their
    /// builds keep it.
    fn at<R>(&mut self, write: impl FnOnce(&mut Self) -> R) -> R {
        if cfg!(test) {
            self.path.names.push(&self.c.name);
        }
        let r = write(self);
        if cfg!(test) {
            self.path.names.pop();
        }
        r
    }

    /// A string, number or boolean: the text of a leaf; an empty string, a number or a
    /// boolean where the schema has structure is that structure empty; a non-empty string
    /// there is not the client's element. `plain`: nothing in `text` needs a JSON escape.
    fn scalar<E: serde::de::Error>(
        mut self,
        text: &str,
        string: bool,
        plain: bool,
    ) -> Result<bool, E> {
        if self.written_nothing() {
            return Ok(true);
        }
        self.at(|m| match m.c.ty {
            None if plain => m.sink.plain_json_text(m.walk.schemas, m.c, text),
            None => m.sink.text(m.walk.schemas, m.c, text),
            Some(_) if string && !text.is_empty() => m.walk.shaped.drop_member(|| m.path.joined()),
            Some(ty) => {
                m.sink.open(m.walk.schemas, m.c);
                if m.walk.depth < MAX_DEPTH {
                    m.walk.depth += 1;
                    m.walk
                        .children(m.sink, ty, &Value::Null, &mut m.path.scratch);
                    m.walk.depth -= 1;
                }
                m.sink.close(m.walk.schemas, m.c);
            }
        });
        Ok(true)
    }

    /// A child the schema caps at no occurrence: read, never written.
    fn written_nothing(&self) -> bool {
        self.c.max == Some(0)
    }
}

/// Every remaining entry of `m` read and skipped.
fn skip_map<'de, M: MapAccess<'de>>(m: &mut M) -> Result<(), M::Error> {
    while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

impl<'de, S: Sink> Visitor<'de> for Member<'_, '_, S> {
    type Value = bool;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<bool, E> {
        self.scalar(if v { "true" } else { "false" }, false, true)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<bool, E> {
        self.scalar(itoa::Buffer::new().format(v), false, true)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<bool, E> {
        self.scalar(itoa::Buffer::new().format(v), false, true)
    }
    /// How a float is spelled is the tree's business.
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<bool, E> {
        Err(stop())
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<bool, E> {
        self.scalar(v, true, false)
    }
    /// The stream is read only by serde_json's text deserializer (`from_str`), which lends a
    /// string only when it held no escape, and refuses control characters in strings: its
    /// text is written between quotes as it is.
    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<bool, E> {
        self.scalar(v, true, true)
    }
    fn visit_map<M: MapAccess<'de>>(mut self, mut m: M) -> Result<bool, M::Error> {
        if self.written_nothing() {
            skip_map(&mut m)?;
            return Ok(true);
        }
        self.at(|me| match me.c.ty {
            None => {
                // Structure where the schema has text: not the client's element.
                me.walk.shaped.drop_member(|| me.path.joined());
                skip_map(&mut m)
            }
            Some(ty) => {
                me.sink.open(me.walk.schemas, me.c);
                if me.walk.depth < MAX_DEPTH {
                    me.walk.depth += 1;
                    Members {
                        walk: &mut *me.walk,
                        sink: &mut *me.sink,
                        ty,
                        path: &mut *me.path,
                    }
                    .visit_map(m)?;
                    me.walk.depth -= 1;
                } else {
                    skip_map(&mut m)?;
                }
                me.sink.close(me.walk.schemas, me.c);
                Ok(())
            }
        })?;
        Ok(true)
    }
    /// The items of a repeated child, up to its cap, `null`s left out.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        if self.in_array {
            return Err(stop());
        }
        let cap = self.c.max.map_or(usize::MAX, |m| m as usize);
        let mut written = 0;
        while written < cap {
            let item = Member {
                walk: &mut *self.walk,
                sink: &mut *self.sink,
                c: self.c,
                path: &mut *self.path,
                in_array: true,
            };
            match seq.next_element_seed(item)? {
                None => return Ok(true),
                Some(true) => written += 1,
                Some(false) => {}
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{schemas, stream_json, stream_xml, write_json, write_xml, Family, Schemas};
    use crate::dialect::generated_json::{null_array_or, Rng, TEXTS};
    use crate::dialect::tree::{parse_in, Node};

    /// An answer object of type `ty`: its children mostly in schema order, some left out,
    /// some repeated, now and then one out of order or a member the schema lacks.
    fn object(rng: &mut Rng, s: &Schemas, ty: usize, depth: usize, out: &mut String) {
        let children = &s.types[ty].children;
        let mut members: Vec<String> = Vec::new();
        for c in children {
            if rng.chance(55) {
                members.push(c.name.clone());
                if rng.chance(3) {
                    members.push(c.name.clone());
                }
            }
            if rng.chance(3) {
                members.push(format!("Rest{}", rng.below(3)));
            }
        }
        // Out of order, as UPS's REST answers are where REST's order is not XOLTWS's.
        for _ in 0..rng.below(3) {
            if members.len() > 1 && rng.chance(25) {
                let from = rng.below(members.len() as u64) as usize;
                let to = rng.below(members.len() as u64) as usize;
                let moved = members.remove(from);
                members.insert(to, moved);
            }
        }
        out.push('{');
        for (i, name) in members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&format!("\"{name}\":"));
            match children.iter().find(|c| &c.name == name) {
                Some(c) => value(rng, s, c.ty, depth, out),
                None => out.push_str(r#"{"X":"y"}"#),
            }
        }
        out.push('}');
    }

    fn value(rng: &mut Rng, s: &Schemas, ty: Option<usize>, depth: usize, out: &mut String) {
        null_array_or(rng, out, |rng, out| item(rng, s, ty, depth, out));
    }

    fn item(rng: &mut Rng, s: &Schemas, ty: Option<usize>, depth: usize, out: &mut String) {
        let r = rng.below(100);
        match ty {
            Some(t) if depth < 6 && r < 80 => object(rng, s, t, depth + 1, out),
            Some(_) if r < 88 => out.push_str(r#""""#),
            Some(_) if r < 93 => out.push_str(r#""x""#),
            Some(_) => out.push_str(["7", "true", "{}"][rng.below(3) as usize]),
            None if r < 75 => out.push_str(rng.pick(&TEXTS)),
            None if r < 85 => out.push_str(["12", "-3", "0"][rng.below(3) as usize]),
            None if r < 88 => out.push_str("1.5"),
            None if r < 93 => out.push_str(["true", "false"][rng.below(2) as usize]),
            None => out.push_str(r#"{"A":"b"}"#),
        }
    }

    /// The simulator's rate answer, in REST's order: `GuaranteedDelivery` after
    /// `RatedPackage`, where XOLTWS has it before.
    const RATE_ANSWER: &str = r#"{"RateResponse":{"Response":{"ResponseStatus":{"Code":"1","Description":"Success"},"TransactionReference":{"CustomerContext":"cart-4411"}},"RatedShipment":{"Service":{"Code":"02","Description":"UPS 2nd Day Air"},"RatedShipmentAlert":[{"Code":"110971","Description":"Your invoice may vary from the displayed reference rates"}],"BillingWeight":{"UnitOfMeasurement":{"Code":"LBS","Description":"Pounds"},"Weight":"3.0"},"TransportationCharges":{"CurrencyCode":"USD","MonetaryValue":"18.70"},"BaseServiceCharge":{"CurrencyCode":"USD","MonetaryValue":"18.70"},"ServiceOptionsCharges":{"CurrencyCode":"USD","MonetaryValue":"0.00"},"TotalCharges":{"CurrencyCode":"USD","MonetaryValue":"18.70"},"RatedPackage":{"TransportationCharges":{"CurrencyCode":"USD","MonetaryValue":"18.70"},"BaseServiceCharge":{"CurrencyCode":"USD","MonetaryValue":"18.70"},"ServiceOptionsCharges":{"CurrencyCode":"USD","MonetaryValue":"0.00"},"TotalCharges":{"CurrencyCode":"USD","MonetaryValue":"18.70"},"Weight":"3","BillingWeight":{"UnitOfMeasurement":{"Code":"LBS","Description":"Pounds"},"Weight":"3.0"}},"GuaranteedDelivery":{"BusinessDaysInTransit":"2","DeliveryByTime":"End of Day"},"RatingMethod":"01","BillableWeightCalculationMethod":"02","ItemizedCharges":[{"Code":"270","CurrencyCode":"USD","MonetaryValue":"0.00"}]}}}"#;

    #[test]
    fn a_rate_answer_in_rest_order_streams_as_it_is_walked() {
        let s = schemas();
        let root = s.root(Family::Xoltws, "RateResponse").unwrap();
        let mut json = Vec::new();
        let shaped = stream_json(&mut json, s, root, RATE_ANSWER).expect("streams");
        let arena = bumpalo::Bump::new();
        let doc = parse_in(&arena, RATE_ANSWER.as_bytes()).unwrap();
        let mut walked = Vec::new();
        let walked_shape = write_json(&mut walked, s, root, doc.member("RateResponse").unwrap());
        assert_eq!(
            String::from_utf8(json).unwrap(),
            String::from_utf8(walked).unwrap()
        );
        assert_eq!(shaped.dropped, walked_shape.dropped);
        assert_eq!(sorted(shaped.paths), sorted(walked_shape.paths));
        let mut xml = String::new();
        stream_xml(&mut xml, s, root, RATE_ANSWER, None).expect("streams");
        let (at_delivery, at_package) = (
            xml.find("GuaranteedDelivery>").unwrap(),
            xml.find("RatedPackage>").unwrap(),
        );
        assert!(at_delivery < at_package, "XOLTWS order: {xml}");
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    /// For thousands of generated answers, whatever the stream writes is byte for byte what
    /// the walk over the tree writes, in JSON and in XML, and it drops as many members; most
    /// answers stream.
    #[test]
    fn a_streamed_answer_is_the_walked_answer() {
        let s = schemas();
        let roots: Vec<_> = ["RateResponse", "ShipmentResponse", "VoidShipmentResponse"]
            .iter()
            .filter_map(|r| s.root(Family::Xoltws, r))
            .collect();
        assert_eq!(roots.len(), 3);
        let (mut streamed, mut cases) = (0, 0);
        for seed in 1..4000u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let root = roots[rng.below(roots.len() as u64) as usize];
            let mut text = String::from("{");
            if rng.chance(5) {
                text.push_str(r#""Other":[1,{"a":null}],"#);
            }
            text.push_str(&format!("\"{}\":", root.name));
            if rng.chance(2) {
                text.push_str("null");
            } else {
                object(&mut rng, s, root.ty, 0, &mut text);
            }
            text.push('}');
            let arena = bumpalo::Bump::new();
            let doc = parse_in(&arena, text.as_bytes()).expect("generated JSON parses");
            let content = doc.member(&root.name);
            cases += 1;

            let mut json = Vec::new();
            let Some(shaped) = stream_json(&mut json, s, root, &text) else {
                assert!(
                    json.is_empty(),
                    "seed {seed}: a stopped stream leaves nothing"
                );
                continue;
            };
            streamed += 1;
            let content = content.unwrap_or_else(|| panic!("seed {seed}: streamed without a root"));
            let mut walked = Vec::new();
            let walked_shape = write_json(&mut walked, s, root, content);
            assert_eq!(
                String::from_utf8_lossy(&json),
                String::from_utf8_lossy(&walked),
                "seed {seed}: {text}"
            );
            assert_eq!(shaped.dropped, walked_shape.dropped, "seed {seed}");
            assert_eq!(
                sorted(shaped.paths),
                sorted(walked_shape.paths),
                "seed {seed}"
            );

            let mut xml = String::from("<x>");
            let shaped = stream_xml(&mut xml, s, root, &text, Some("urn:v2")).unwrap();
            let mut walked = String::from("<x>");
            let walked_shape = write_xml(&mut walked, s, root, content, Some("urn:v2"));
            assert_eq!(xml, walked, "seed {seed}: {text}");
            assert_eq!(shaped.dropped, walked_shape.dropped, "seed {seed}");
            assert_eq!(
                sorted(shaped.paths),
                sorted(walked_shape.paths),
                "seed {seed}"
            );
        }
        eprintln!("{streamed} of {cases} generated answers streamed");
        assert!(streamed * 3 > cases, "only {streamed} of {cases} streamed");
        assert!(
            streamed < cases,
            "every case streamed: the stops are not exercised"
        );
    }
}

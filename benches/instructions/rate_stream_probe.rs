//! A measuring stick, not the product: the old-XML rate answer's `RatedShipment` elements
//! written while UPS's JSON is read, with no tree and no template lookups, for
//! `translate_count probe`. Hand-written for the rate template of `oldxml` (its fields, its
//! order, `GuaranteedDelivery` moved back before `RatedPackage`), it keeps the parts of the
//! tree path's semantics that cost work (a member named twice in a copied object or more than
//! 64 refused, arrays in arrays skipped, a copied `null` keeping its wrapper, the first of a
//! repeated member taken) and refuses a float; it has none of the tree path's fallbacks, and
//! its edge cases are not the template's (a `null` alert text, `NegotiatedRateCharges`, which
//! the bench's answer does not have, are read past).
//! `translate_count probe` checks it writes what the product writes for the bench's answer,
//! then times both: the gap is what a streamed template writer can save.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error, IgnoredAny, MapAccess, SeqAccess, Visitor};
use smallvec::SmallVec;
use upsbridge::dialect::xmljson::{is_xml_name, push_escaped};

type R<E> = Result<(), E>;

/// The `RatedShipment` elements of the rate answer `answer`, appended to `out`; `None` where
/// the tree path would be needed.
pub fn rated_shipments(answer: &str, out: &mut String) -> Option<()> {
    let mut de = serde_json::Deserializer::from_str(answer);
    Items(Kind::Under(&["RateResponse", "RatedShipment"]), out)
        .deserialize(&mut de)
        .ok()?;
    Some(())
}

/// What an object read is.
#[derive(Clone, Copy)]
enum Kind {
    /// On the way down: the rated shipments are under the first member of each of these names
    /// in turn; every other member is read past.
    Under(&'static [&'static str]),
    Shipment,
    Package,
    Alert,
}
/// An object, or an array of them.
struct Items<'o>(Kind, &'o mut String);
impl<'de> DeserializeSeed<'de> for Items<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}
impl<'de> Visitor<'de> for Items<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("items")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> R<A::Error> {
        while s.next_element_seed(Items(self.0, &mut *self.1))?.is_some() {}
        Ok(())
    }
    fn visit_map<M: MapAccess<'de>>(self, m: M) -> R<M::Error> {
        match self.0 {
            Kind::Under(path) => under(path, self.1, m),
            Kind::Shipment => shipment(self.1, m),
            Kind::Package => package(self.1, m),
            Kind::Alert => alert(self.1, m),
        }
    }
}

fn under<'de, M: MapAccess<'de>>(
    path: &'static [&'static str],
    out: &mut String,
    mut m: M,
) -> R<M::Error> {
    let mut found = false;
    while let Some(k) = m.next_key::<&str>()? {
        if k != path[0] || std::mem::replace(&mut found, true) {
            m.next_value::<IgnoredAny>()?;
        } else {
            let next = match &path[1..] {
                [] => Kind::Shipment,
                rest => Kind::Under(rest),
            };
            m.next_value_seed(Items(next, &mut *out))?;
        }
    }
    Ok(())
}

fn shipment<'de, M: MapAccess<'de>>(out: &mut String, mut m: M) -> R<M::Error> {
    out.push_str("<RatedShipment>");
    let (mut days, mut time): (Option<&'de str>, Option<&'de str>) = (None, None);
    let mut guaranteed_at = None;
    let mut seen: SmallVec<[&str; 16]> = SmallVec::new();
    while let Some(k) = m.next_key::<&str>()? {
        // The first of a repeated member is the one the template reads.
        if seen.contains(&k) {
            m.next_value::<IgnoredAny>()?;
            continue;
        }
        seen.push(k);
        match k {
            "Service" => m.next_value_seed(Pick {
                name: "Code",
                wrap: &["Service"],
                el: "Code",
                out: &mut *out,
            })?,
            "RatedShipmentAlert" => m.next_value_seed(Items(Kind::Alert, &mut *out))?,
            "BillingWeight"
            | "TransportationCharges"
            | "ServiceOptionsCharges"
            | "TotalCharges" => m.next_value_seed(Node(k, &mut *out, false))?,
            "RatedPackage" => {
                guaranteed_at.get_or_insert(out.len());
                m.next_value_seed(Items(Kind::Package, &mut *out))?
            }
            "GuaranteedDelivery" => {
                let (d, t) = m.next_value::<Guaranteed<'de>>()?.0;
                days = d;
                time = t;
            }
            _ => {
                m.next_value::<IgnoredAny>()?;
            }
        }
    }
    let mut g = String::with_capacity(96);
    for (name, v) in [
        ("GuaranteedDaysToDelivery", days),
        ("ScheduledDeliveryTime", time),
    ] {
        match v {
            Some(v) if !v.is_empty() => {
                g.push('<');
                g.push_str(name);
                g.push('>');
                push_escaped(&mut g, v);
                g.push_str("</");
                g.push_str(name);
                g.push('>');
            }
            _ => {
                g.push('<');
                g.push_str(name);
                g.push_str("/>");
            }
        }
    }
    match guaranteed_at {
        Some(at) => out.insert_str(at, &g),
        None => out.push_str(&g),
    }
    out.push_str("</RatedShipment>");
    Ok(())
}

fn package<'de, M: MapAccess<'de>>(out: &mut String, mut m: M) -> R<M::Error> {
    out.push_str("<RatedPackage>");
    let mut seen: SmallVec<[&str; 8]> = SmallVec::new();
    while let Some(k) = m.next_key::<&str>()? {
        if seen.contains(&k) {
            m.next_value::<IgnoredAny>()?;
            continue;
        }
        seen.push(k);
        match k {
            "TransportationCharges"
            | "ServiceOptionsCharges"
            | "TotalCharges"
            | "Weight"
            | "BillingWeight" => m.next_value_seed(Node(k, &mut *out, false))?,
            _ => {
                m.next_value::<IgnoredAny>()?;
            }
        }
    }
    out.push_str("</RatedPackage>");
    Ok(())
}

fn alert<'de, M: MapAccess<'de>>(out: &mut String, mut m: M) -> R<M::Error> {
    while let Some(k) = m.next_key::<&str>()? {
        if k == "Description" {
            m.next_value_seed(Node("RatedShipmentWarning", &mut *out, false))?;
        } else {
            m.next_value::<IgnoredAny>()?;
        }
    }
    Ok(())
}

struct Guaranteed<'de>((Option<&'de str>, Option<&'de str>));
impl<'de> serde::Deserialize<'de> for Guaranteed<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Guaranteed<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("g")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Guaranteed<'de>, M::Error> {
                let (mut a, mut b) = (None, None);
                while let Some(k) = m.next_key::<&str>()? {
                    match k {
                        "BusinessDaysInTransit" => a = Some(m.next_value::<&str>()?),
                        "DeliveryByTime" => b = Some(m.next_value::<&str>()?),
                        _ => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Guaranteed((a, b)))
            }
        }
        d.deserialize_map(V)
    }
}

/// `<wrap…><el>text of member name</el></wrap…>`
struct Pick<'o> {
    name: &'static str,
    wrap: &'static [&'static str],
    el: &'static str,
    out: &'o mut String,
}
impl<'de> DeserializeSeed<'de> for Pick<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}
impl<'de> Visitor<'de> for Pick<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("pick")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> R<M::Error> {
        let mut found = false;
        while let Some(k) = m.next_key::<&str>()? {
            // The first of a repeated member is the one the template reads.
            if k == self.name && !std::mem::replace(&mut found, true) {
                for w in self.wrap {
                    self.out.push('<');
                    self.out.push_str(w);
                    self.out.push('>');
                }
                // Found, even as `null`: the wrapper stays (a copied `null` counts).
                m.next_value_seed(Node(self.el, &mut *self.out, false))?;
                for w in self.wrap.iter().rev() {
                    self.out.push_str("</");
                    self.out.push_str(w);
                    self.out.push('>');
                }
            } else {
                m.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// Any JSON value written as element `name`, as `xmljson::write_node` writes it (the third
/// field: an array's item, where an array is skipped).
struct Node<'o>(&'o str, &'o mut String, bool);
impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}
impl Node<'_> {
    fn text(self, t: &str) {
        let (name, out) = (self.0, self.1);
        out.push('<');
        out.push_str(name);
        if t.is_empty() {
            out.push_str("/>");
        } else {
            out.push('>');
            push_escaped(out, t);
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
    }
}
impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any")
    }
    fn visit_unit<E>(self) -> R<E> {
        Ok(())
    }
    fn visit_bool<E>(self, v: bool) -> R<E> {
        self.text(if v { "true" } else { "false" });
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> R<E> {
        self.text(itoa::Buffer::new().format(v));
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> R<E> {
        self.text(itoa::Buffer::new().format(v));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> R<E> {
        self.text(v);
        Ok(())
    }
    /// How a float is spelled is the tree path's business.
    fn visit_f64<E: Error>(self, _: f64) -> R<E> {
        Err(E::custom("a float"))
    }
    fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> R<M::Error> {
        let (name, out) = (self.0, self.1);
        out.push('<');
        out.push_str(name);
        out.push('>');
        let mut seen: SmallVec<[&str; 16]> = SmallVec::new();
        while let Some(k) = m.next_key::<&str>()? {
            if seen.contains(&k) || seen.len() >= 64 {
                return Err(M::Error::custom("a member named twice, or too many"));
            }
            seen.push(k);
            if is_xml_name(k) {
                m.next_value_seed(Node(k, &mut *out, false))?;
            } else {
                m.next_value::<IgnoredAny>()?;
            }
        }
        out.push_str("</");
        out.push_str(name);
        out.push('>');
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> R<A::Error> {
        let (name, out) = (self.0, self.1);
        if self.2 {
            while s.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        while s.next_element_seed(Node(name, &mut *out, true))?.is_some() {}
        Ok(())
    }
}

//! SOAP: `/webservices/<Svc>`, one SOAP 1.1 envelope whose `Header` carries the
//! credentials (`UPSSecurity`, or the older xpci `AccessRequest`) and whose `Body`
//! holds the XOLTWS request element (`RateRequest`, `ShipmentRequest`, …).
//!
//! Envelope, `Header` and `Body` are matched by namespace URI and local name,
//! never by prefix. The header is read for credentials only and never forwarded:
//! the REST body is built from `Body/<Svc>Request` alone (converted to JSON, which
//! IS the XOLTWS object [`services`] maps, arrays per the generated schema table).
//! Answers go back in an envelope with the service's response element in the
//! namespace the client used for its payload; errors as SOAP Faults with UPS's
//! `Errors/ErrorDetail`, HTTP 500. Credentials are never logged or echoed.

use std::sync::OnceLock;

use bytes::Bytes;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{NamespaceResolver, QName, ResolveResult};
use serde_json::{Map, Value};

use super::legacy_schema::{self, Family, RootDef};
use super::onepass;
use super::schema::{self, Rule};
use super::services::{self, AnswerShape, Converted, Service};
use super::tree::{self, Node};
use super::xmljson::{self, push_escaped, Element};
use super::{
    rest_errors, Answer, Answered, Dialect, Failure, Head, Parsed, Request, Route, Severity, Ups,
    UpsError,
};
use crate::accounts::LegacyCredentials;
use crate::rest::RestCall;

pub const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";
const COMMON_NS: &str = "http://www.ups.com/XMLSchema/XOLTWS/Common/v1.0";
const ERROR_NS: &str = "http://www.ups.com/XMLSchema/XOLTWS/Error/v1.1";
const CONTENT_TYPE: &str = "text/xml; charset=utf-8";

/// The SOAP dialect.
pub struct Soap;

impl Dialect for Soap {
    fn name(&self) -> &'static str {
        "soap"
    }

    fn detect(&self, path: &str, lower: &str, _headers: super::Fields<'_>) -> Option<String> {
        super::service_after(&["/webservices/"], path, lower)
    }

    fn parse(&self, _route: &Route, _head: &Head<'_>, body: &[u8]) -> Result<Parsed, Failure> {
        parse(body)
    }

    fn refusal(&self, _route: &Route, failure: &Failure) -> Answer {
        fault(&[failure.ups_error()], Some(failure.kind()))
    }
}

/// A SOAP request understood: its REST call, and what its answer needs (the namespace of
/// the client's payload element, which the answer is written in).
struct SoapRequest {
    shape: AnswerShape,
    namespace: Option<std::sync::Arc<str>>,
    call: RestCall,
    body: Option<Bytes>,
}

#[async_trait::async_trait]
impl Answered for SoapRequest {
    fn service(&self) -> &'static str {
        self.shape.service.name()
    }

    async fn exchange(&mut self, ups: &mut dyn Ups) -> Result<Answer, Failure> {
        let rest = ups.call(&self.call, self.body.take()).await?;
        Ok(answer(
            &self.shape,
            self.namespace.as_deref(),
            rest.status,
            rest.body,
        ))
    }

    fn refusal(&self, failure: &Failure) -> Answer {
        fault(&[failure.ups_error()], Some(failure.kind()))
    }
}

/// Payload namespace and prefix per service, when the client's request had none.
fn default_namespace(service: Service) -> (&'static str, &'static str) {
    match service {
        Service::Rate => ("rate", "http://www.ups.com/XMLSchema/XOLTWS/Rate/v1.1"),
        Service::Ship | Service::LabelRecovery => {
            ("ship", "http://www.ups.com/XMLSchema/XOLTWS/Ship/v1.0")
        }
        Service::Void => ("void", "http://www.ups.com/XMLSchema/XOLTWS/Void/v1.1"),
        Service::Track => ("trk", "http://www.ups.com/XMLSchema/XOLTWS/Track/v2.0"),
        Service::TimeInTransit => ("tnt", "http://www.ups.com/XMLSchema/XOLTWS/tnt/v1.0"),
        Service::Xav => ("xav", "http://www.ups.com/XMLSchema/XOLTWS/xav/v1.0"),
        Service::PickupCreation
        | Service::PickupRate
        | Service::PickupCancel
        | Service::PickupPendingStatus
        | Service::PickupPoliticalDivision1
        | Service::PickupServiceCenters => {
            ("pkup", "http://www.ups.com/XMLSchema/XOLTWS/Pickup/v1.1")
        }
        Service::Locator => ("loc", "http://www.ups.com/XMLSchema/XOLTWS/Locator/v1.0"),
        Service::QuantumView => ("qv", "http://www.ups.com/XMLSchema/XOLTWS/QuantumView/v1.0"),
    }
}

/// Names SOAP clients send that REST spells differently (legacy-dialects §4.1).
fn rules(service: Service) -> &'static [Rule] {
    rule_set(service).0
}

/// [`rules`] compiled for one pass, once per table.
fn one_pass_rules(service: Service) -> &'static onepass::Rules {
    let (table, compiled) = rule_set(service);
    compiled.get_or_init(|| onepass::Rules::new(&[table]))
}

/// A service's rule table, and where it is kept compiled for one pass.
fn rule_set(service: Service) -> (&'static [Rule], &'static OnceLock<onepass::Rules>) {
    const XPCI: Rule = Rule::Drop("Request/TransactionReference/XpciVersion");
    // purplship sends `RequestOption` twice (`Shop`, then the `Rate` it means).
    const ONE_OPTION: Rule = Rule::Last("Request/RequestOption");
    static SHIP: OnceLock<onepass::Rules> = OnceLock::new();
    static QUANTUM_VIEW: OnceLock<onepass::Rules> = OnceLock::new();
    static OTHER: OnceLock<onepass::Rules> = OnceLock::new();
    match service {
        Service::Ship => (
            &[
                Rule::Rename("Shipment/Package/PackagingType", "Packaging"),
                Rule::Drop("Shipment/ShipFrom/ShipperNumber"),
                XPCI,
                ONE_OPTION,
            ],
            &SHIP,
        ),
        Service::QuantumView => (&[ONE_OPTION], &QUANTUM_VIEW),
        _ => (&[XPCI, ONE_OPTION], &OTHER),
    }
}

fn is_soap_ns(ns: Option<&str>) -> bool {
    ns.is_some_and(|ns| is_soap_ns_bytes(ns.as_bytes()))
}

/// [`is_soap_ns`] of a namespace name as read, byte for byte: one that is not UTF-8 is not
/// one of these either, so it needs no check of its own.
fn is_soap_ns_bytes(ns: &[u8]) -> bool {
    ns == SOAP11_NS.as_bytes() || ns == SOAP12_NS.as_bytes()
}

/// Take a SOAP body apart: credentials from the header, REST call from the body.
pub fn parse(body: &[u8]) -> Result<Parsed, Failure> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Failure::Empty);
    }
    let (text, last_xmlns) = xmljson::decode_within_limits(body)?;
    let declarations = onepass::Declarations::with_last(&text, last_xmlns);
    if let Some(parsed) = one_pass(&text, &declarations) {
        return Ok(parsed);
    }
    parse_tree(&text)
}

/// [`parse`] by the element tree alone, which takes every request and words every error:
/// the reference the one-pass path is tested against.
#[doc(hidden)]
pub fn parse_by_tree(body: &[u8]) -> Result<Parsed, Failure> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Failure::Empty);
    }
    parse_tree(&xmljson::decode_within_limits(body)?.0)
}

fn parse_tree(text: &str) -> Result<Parsed, Failure> {
    let (envelope, _) = xmljson::parse_document(text)?;
    if envelope.name != "Envelope" || !is_soap_ns(envelope.ns.as_deref()) {
        return Err(Failure::Malformed(format!(
            "expected a SOAP Envelope, found <{}>",
            envelope.name
        )));
    }
    let in_envelope_ns = |e: &&Element, name: &str| e.name == name && is_soap_ns(e.ns.as_deref());
    let header = envelope
        .children
        .iter()
        .find(|e| in_envelope_ns(e, "Header"));
    let credentials = match header {
        Some(h) => credentials(h)?,
        None => LegacyCredentials::none(),
    };
    let request = envelope
        .children
        .into_iter()
        .find(|e| in_envelope_ns(&e, "Body"))
        .ok_or_else(|| Failure::Malformed("the SOAP Envelope has no Body".into()))
        .and_then(understood);
    Ok(Parsed {
        credentials,
        request,
    })
}

/// A SOAP body read in one pass (see [`onepass`]): the header into a tree for its
/// credentials, the payload straight into its REST JSON. `None` for anything one pass does
/// not take (a service whose call reads more than its `Request` member, a document the
/// tree path refuses, …): the caller then takes the tree path.
#[doc(hidden)]
pub fn parse_in_one_pass(text: &str) -> Option<Parsed> {
    one_pass(text, &onepass::Declarations::of(text))
}

/// [`parse_in_one_pass`], where `text`'s namespace declarations are.
///
/// Most clients declare every namespace on the envelope's start tag (purplship, PHP's
/// `SoapClient`, the bench's rate). Then nothing below it changes a prefix's binding, and
/// the envelope is read by a reader that resolves no namespace, its `Header`, `Body` and
/// payload resolved in the envelope's scope: a resolving reader kept a scope for each of
/// the envelope's and the header's elements, which nothing looks at (about 5k of a SOAP
/// rate's instructions). An envelope with a declaration below its start tag is read by the
/// resolving reader.
fn one_pass(text: &str, declarations: &onepass::Declarations<'_>) -> Option<Parsed> {
    let doc = text.trim_start();
    match envelope_read_plainly(doc, declarations) {
        Some(read) => read,
        None => envelope_read_resolving(doc, declarations),
    }
}

/// [`one_pass`] by a reader that resolves no namespace; `None` when something below the
/// envelope's start tag declares one.
fn envelope_read_plainly(
    doc: &str,
    declarations: &onepass::Declarations<'_>,
) -> Option<Option<Parsed>> {
    let mut plain = onepass::plain_reader(doc.as_bytes());
    let Some(envelope) = onepass::root_start(doc, &mut plain) else {
        return Some(None);
    };
    if declarations.in_part(plain.get_ref()) {
        return None;
    }
    Some(with_scope_for(&envelope, |scope| {
        // The scope's one level, the envelope's, is taken back however this ends.
        let read = scope.push(&envelope).ok().and_then(|()| {
            let mut reader = PlainEnvelope {
                reader: plain,
                scope,
            };
            envelope_in_one_pass(doc, &mut reader, &envelope, declarations)
        });
        scope.pop();
        read
    }))
}

/// [`one_pass`] by a reader that resolves every element's namespace.
fn envelope_read_resolving(doc: &str, declarations: &onepass::Declarations<'_>) -> Option<Parsed> {
    let mut reader = onepass::Reader::from_str(doc);
    reader.config_mut().check_end_names = true;
    let envelope = onepass::root_start(doc, &mut reader)?;
    envelope_in_one_pass(doc, &mut reader, &envelope, declarations)
}

/// The most bytes of attributes an envelope's start tag may have for its declarations to go
/// into the thread's kept scope. Real envelopes declare a few namespaces in a few hundred
/// bytes; a scope keeps the room its largest envelope took, so a crafted start tag with a
/// body's worth of declarations gets a scope of its own, freed with the request.
const MAX_KEPT_DECLARATIONS: usize = 2048;

/// `f` given a namespace scope for `envelope`: the thread's, kept with its reserved bindings
/// only between requests (a new one is two allocations), unless the envelope's start tag is
/// larger than [`MAX_KEPT_DECLARATIONS`].
fn with_scope_for<T>(envelope: &BytesStart<'_>, f: impl FnOnce(&mut NamespaceResolver) -> T) -> T {
    thread_local! {
        static SCOPE: std::cell::RefCell<NamespaceResolver> =
            std::cell::RefCell::new(NamespaceResolver::default());
    }
    if envelope.attributes_raw().len() > MAX_KEPT_DECLARATIONS {
        return f(&mut NamespaceResolver::default());
    }
    SCOPE.with(|scope| match scope.try_borrow_mut() {
        Ok(mut scope) => f(&mut scope),
        // Nothing reads two envelopes at once on one thread; if something did, the second
        // would have a scope of its own.
        Err(_) => f(&mut NamespaceResolver::default()),
    })
}

/// What one pass reads an envelope with: its events, and the namespace of an element's name
/// where it is.
trait EnvelopeReader<'x>: onepass::Events<'x> {
    fn namespace_of<'n>(&self, name: QName<'n>) -> ResolveResult<'_>;

    /// The payload element (the `Body`'s start tag just read) read apart, by a reader that
    /// resolves no namespace. A reader that resolves none already reads it as it comes.
    fn payload_apart(
        &mut self,
        _doc: &'x str,
        _count: &mut usize,
        _declarations: &onepass::Declarations<'_>,
    ) -> Option<Plainly> {
        Some(Plainly::AsItComes)
    }
}

impl<'x> EnvelopeReader<'x> for onepass::Reader<'x> {
    fn namespace_of<'n>(&self, name: QName<'n>) -> ResolveResult<'_> {
        self.resolve_element(name).0
    }

    fn payload_apart(
        &mut self,
        doc: &'x str,
        count: &mut usize,
        declarations: &onepass::Declarations<'_>,
    ) -> Option<Plainly> {
        payload_read_plainly(doc, self, count, declarations)
    }
}

/// An envelope none of whose elements below the root declares a namespace, read by a reader
/// that resolves none: every name resolves in the root's scope.
struct PlainEnvelope<'x, 's> {
    reader: onepass::PlainReader<'x>,
    /// The root's scope.
    scope: &'s NamespaceResolver,
}

impl<'x> onepass::Events<'x> for PlainEnvelope<'x, '_> {
    fn next_event(&mut self) -> quick_xml::Result<Event<'x>> {
        self.reader.read_event()
    }
}

impl<'x> EnvelopeReader<'x> for PlainEnvelope<'x, '_> {
    fn namespace_of<'n>(&self, name: QName<'n>) -> ResolveResult<'_> {
        self.scope.resolve_element(name).0
    }
}

/// The envelope whose start tag `envelope` `reader` just read, in one pass: credentials
/// from its `Header`, the REST call from its `Body`.
fn envelope_in_one_pass<'x>(
    doc: &'x str,
    reader: &mut impl EnvelopeReader<'x>,
    envelope: &BytesStart<'_>,
    declarations: &onepass::Declarations<'_>,
) -> Option<Parsed> {
    let mut count = 0usize;
    xmljson::counted(0, &mut count).ok()?;
    if !in_envelope_ns(reader, envelope, "Envelope") {
        return None;
    }
    let mut credentials: Option<LegacyCredentials> = None;
    let mut payload = None;
    let mut body_seen = false;
    loop {
        match reader.next_event().ok()? {
            Event::Start(e) => {
                if credentials.is_none() && in_envelope_ns(reader, &e, "Header") {
                    credentials = Some(header_in_one_pass(doc, reader, &mut count)?);
                } else if !body_seen && in_envelope_ns(reader, &e, "Body") {
                    xmljson::counted(1, &mut count).ok()?;
                    body_seen = true;
                    payload = Some(payload_in_one_pass(doc, reader, &mut count, declarations)?);
                } else {
                    xmljson::counted(1, &mut count).ok()?;
                    onepass::skip_element(doc, reader, 1, &mut count)?;
                }
            }
            Event::Empty(e) => {
                xmljson::counted(1, &mut count).ok()?;
                if credentials.is_none() && in_envelope_ns(reader, &e, "Header") {
                    credentials = Some(LegacyCredentials::none());
                } else if !body_seen && in_envelope_ns(reader, &e, "Body") {
                    return None;
                }
            }
            // The envelope's end: what follows it is not read, as on the tree path.
            Event::End(_) => break,
            Event::Eof => return None,
            other => {
                onepass::event_text(doc, &other).ok()?;
            }
        }
    }
    let (service, namespace, written) = payload??;
    let rest = services::to_rest_of_member(service, &written.request_member()?)?;
    let request = rest
        .map(|(call, shape)| soap_request(shape, namespace, call, || Bytes::from(written.body)));
    Some(Parsed {
        credentials: credentials.unwrap_or_else(LegacyCredentials::none),
        request,
    })
}

/// The credentials of a SOAP `Header` whose start tag was just read, taken from its events as
/// they come: what [`credentials`] reads from the header's tree, which cost more to build
/// than the rest of the envelope's reading. `None` for anything the tree path words (two
/// credential blocks, an element given twice in one, a limit).
fn header_in_one_pass<'x>(
    doc: &'x str,
    reader: &mut impl onepass::Events<'x>,
    count: &mut usize,
) -> Option<LegacyCredentials> {
    xmljson::counted(1, count).ok()?;
    let mut fields: Option<[String; 3]> = None;
    loop {
        let (e, empty) = match reader.next_event().ok()? {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => break, // the Header's own end
            Event::Eof => return None,
            other => {
                onepass::event_text(doc, &other).ok()?;
                continue;
            }
        };
        xmljson::counted(2, count).ok()?;
        let name = onepass::in_input(doc, onepass::local_name(&e))?;
        if matches!(name, "UPSSecurity" | "AccessRequest") {
            if fields.is_some() {
                return None; // a second credential block
            }
            fields = Some(match empty {
                true => Default::default(),
                false => onepass::credential_block(doc, reader, name, 2, count)?,
            });
        } else if !empty {
            onepass::skip_element(doc, reader, 2, count)?;
        }
    }
    Some(match fields {
        Some([key, user, password]) => LegacyCredentials::new(key, user, password),
        None => LegacyCredentials::none(),
    })
}

/// The payload element read from a SOAP `Body`: its service, the namespace the client wrote
/// it in (the answer is written in it), and its REST JSON.
type Payload = (Service, Option<std::sync::Arc<str>>, onepass::Written);

/// The first element of a SOAP `Body` (its start tag just read) written as REST JSON, the
/// rest of the `Body` read past: `Some(None)` when the `Body` holds no element.
fn payload_in_one_pass<'x>(
    doc: &'x str,
    reader: &mut impl EnvelopeReader<'x>,
    count: &mut usize,
    declarations: &onepass::Declarations<'_>,
) -> Option<Option<Payload>> {
    let mut payload = match reader.payload_apart(doc, count, declarations)? {
        Plainly::Read(payload) => Some(payload),
        Plainly::AsItComes => None,
    };
    loop {
        match reader.next_event().ok()? {
            Event::Start(e) if payload.is_none() => {
                let namespace = bound(reader.namespace_of(e.name()))?;
                payload = Some(write_payload(doc, reader, &e, namespace, count)?);
            }
            Event::Start(_) => {
                xmljson::counted(2, count).ok()?;
                onepass::skip_element(doc, reader, 2, count)?;
            }
            // An empty payload element: the tree path words what it lacks.
            Event::Empty(_) if payload.is_none() => return None,
            Event::Empty(_) => xmljson::counted(2, count).ok()?,
            Event::End(_) => return Some(payload),
            Event::Eof => return None,
            other => {
                onepass::event_text(doc, &other).ok()?;
            }
        }
    }
}

/// How the payload was read.
enum Plainly {
    Read(Payload),
    /// The envelope's reader reads it as it comes: it resolves none itself, or something in
    /// or after the payload declares a namespace (or the `Body` opens with no start tag) and
    /// it is the reader that checks declarations.
    AsItComes,
}

/// The payload element read by a reader that resolves no namespace, when nothing from its
/// start tag's end on declares one: the resolving reader kept a namespace scope for each of
/// its elements, whose namespace is never looked at (payload elements go by local name;
/// about 4k of a SOAP rate's 153k instructions). Only the payload's own namespace is
/// resolved: in the envelope's scope plus its own declarations. The envelope's reader then
/// goes on from the payload's end tag, in the state it was in (the `Body` open): the
/// payload's subtree is balanced, and a reader of a slice keeps nothing of the input but what
/// is left of it. A body that declares a namespace inside the payload is read by the
/// resolving reader, as before.
fn payload_read_plainly<'x>(
    doc: &'x str,
    reader: &mut onepass::Reader<'x>,
    count: &mut usize,
    declarations: &onepass::Declarations<'_>,
) -> Option<Plainly> {
    let mut plain = onepass::plain_reader(reader.get_ref());
    let e = loop {
        match plain.read_event().ok()? {
            Event::Start(e) => break e,
            Event::Empty(_) | Event::End(_) | Event::Eof => return Some(Plainly::AsItComes),
            other => {
                onepass::event_text(doc, &other).ok()?;
            }
        }
    };
    if declarations.in_part(plain.get_ref()) {
        return Some(Plainly::AsItComes);
    }
    // Its namespace, in the envelope reader's scope (the `Body` open), and its own
    // declarations if it has any (in a copy of that scope: two allocations, and a scope
    // push, that a payload which declares nothing does without).
    let namespace = if declarations.in_part(e.attributes_raw()) {
        let mut scope = reader.resolver().clone();
        scope.push(&e).ok()?;
        bound(scope.resolve_element(e.name()).0)?
    } else {
        bound(reader.resolve_element(e.name()).0)?
    };
    let payload = write_payload(doc, &mut plain, &e, namespace, count)?;
    // What is left of the input, after the payload's end tag. Both readers are between
    // markup there; only the envelope reader's error positions lose the payload's length,
    // and one pass reports none (the tree path words errors).
    *reader.get_mut() = *plain.get_ref();
    Some(Plainly::Read(payload))
}

/// A resolved namespace as text; `Some(None)` for none, `None` for one that is not UTF-8.
/// The thread's last one is shared again when it is the same: a client writes each service
/// in one namespace, and a new `Arc<str>` of it was an allocation per request.
fn bound(resolved: ResolveResult<'_>) -> Option<Option<std::sync::Arc<str>>> {
    thread_local! {
        static LAST: std::cell::RefCell<Option<std::sync::Arc<str>>> =
            const { std::cell::RefCell::new(None) };
    }
    let ResolveResult::Bound(ns) = resolved else {
        return Some(None);
    };
    let ns = std::str::from_utf8(ns.as_ref()).ok()?;
    Some(Some(LAST.with_borrow_mut(|last| match last {
        Some(kept) if **kept == *ns => kept.clone(),
        _ => last.insert(ns.into()).clone(),
    })))
}

/// The payload element whose start tag `e` was just read from `reader`, written as REST JSON
/// (`None` for what the tree path reads: a service read from more than its `Request`, rules
/// one pass does not apply, a nil payload).
fn write_payload<'x>(
    doc: &'x str,
    reader: &mut impl onepass::Events<'x>,
    e: &BytesStart<'x>,
    namespace: Option<std::sync::Arc<str>>,
    count: &mut usize,
) -> Option<Payload> {
    xmljson::counted(2, count).ok()?;
    let name = onepass::in_input(doc, onepass::local_name(e))?;
    let service = Service::from_request_root(name)?;
    let rules = one_pass_rules(service);
    if !services::reads_request_member_only(service) || !rules.takes || xmljson::is_nil(e) {
        return None;
    }
    let plan = onepass::Plan {
        wrapper: name,
        arrays: schema::arrays(name).unwrap_or_else(schema::no_arrays),
        rules,
        captures: &[],
    };
    let written = onepass::write_request(doc, reader, 2, count, &plan)?;
    Some((service, namespace, written))
}

/// A start tag named `name` in the SOAP 1.1 or 1.2 envelope namespace.
fn in_envelope_ns<'x>(reader: &impl EnvelopeReader<'x>, e: &BytesStart<'_>, name: &str) -> bool {
    onepass::local_name(e) == name.as_bytes()
        && matches!(reader.namespace_of(e.name()), ResolveResult::Bound(n) if is_soap_ns_bytes(n.as_ref()))
}

/// `UPSSecurity` (XOLTWS) or `AccessRequest` (older xpci services) in the header.
/// A credential block given twice, or a credential given twice inside it, is refused: the
/// copy that authenticates must be the only one.
fn credentials(header: &Element) -> Result<LegacyCredentials, Failure> {
    let text = |e: &Element, p: &str| e.text_at(p).unwrap_or("").to_string();
    let blocks: Vec<&Element> = header
        .children
        .iter()
        .filter(|c| c.name == "UPSSecurity" || c.name == "AccessRequest")
        .collect();
    let block = match blocks.as_slice() {
        [] => return Ok(LegacyCredentials::none()),
        [one] => *one,
        _ => {
            return Err(Failure::Malformed(
                "the SOAP Header has two credential blocks".into(),
            ))
        }
    };
    if let Some(name) = block.repeated_child() {
        return Err(Failure::Malformed(format!(
            "{} has `{name}` twice",
            block.name
        )));
    }
    Ok(if block.name == "UPSSecurity" {
        LegacyCredentials::new(
            text(block, "ServiceAccessToken/AccessLicenseNumber"),
            text(block, "UsernameToken/Username"),
            text(block, "UsernameToken/Password"),
        )
    } else {
        LegacyCredentials::new(
            text(block, "AccessLicenseNumber"),
            text(block, "UserId"),
            text(block, "Password"),
        )
    })
}

/// The XOLTWS request element of a SOAP body, as JSON normalised to the REST schema.
pub fn request_json(request: Element, service: Service) -> Value {
    let arrays = schema::arrays(&request.name).unwrap_or_else(schema::no_arrays);
    let mut v = match xmljson::to_json(request) {
        Some(v @ Value::Object(_)) => v,
        _ => Value::Object(Map::new()),
    };
    schema::apply(rules(service), &mut v);
    xmljson::prune_empty(&mut v);
    xmljson::normalize_arrays(&mut v, arrays);
    v
}

fn understood(body: Element) -> Result<Request, Failure> {
    let request = body
        .children
        .into_iter()
        .next()
        .ok_or_else(|| Failure::Malformed("the SOAP Body is empty".into()))?;
    let (root, namespace) = (request.name.clone(), request.ns.clone());
    let service =
        Service::from_request_root(&root).ok_or_else(|| Failure::UnknownService(root.clone()))?;
    let v = request_json(request, service);
    let (call, shape) = services::to_rest(service, &v)?;
    Ok(soap_request(shape, namespace, call, || {
        super::rest_body(&root, &v)
    }))
}

/// A request understood, its REST body the request as converted (`unchanged`) unless its
/// call says otherwise.
fn soap_request(
    shape: AnswerShape,
    namespace: Option<std::sync::Arc<str>>,
    call: RestCall,
    unchanged: impl FnOnce() -> Bytes,
) -> Request {
    let body = super::rest_body_of(&call, unchanged);
    Request::Answered(Box::new(SoapRequest {
        shape,
        namespace,
        call,
        body,
    }))
}

/// UPS's REST answer → a SOAP envelope (or Fault), its payload in `namespace` (the one the
/// client's request payload was in).
pub fn answer(shape: &AnswerShape, namespace: Option<&str>, status: u16, body: Bytes) -> Answer {
    let root = shape.service.response_root();
    let schemas = legacy_schema::schemas();
    let def = schemas.root(Family::Xoltws, root);
    // The common case, streamed: shaped as UPS's bytes are parsed.
    if let Some((def, text)) = def
        .and_then(|d| legacy_schema::direct_success(status, shape.service, &body).map(|t| (d, t)))
    {
        // XML's tags take about twice the bytes of JSON's member names.
        let mut out = String::with_capacity(2 * body.len() + 512);
        out.push_str(ENVELOPE_OPEN);
        if let Some(report) = legacy_schema::stream_xml(&mut out, schemas, def, text, namespace) {
            out.push_str(ENVELOPE_CLOSE);
            return envelope_answer(out, report.dropped);
        }
    }
    // The common case (a success whose members go through as they are) is written from a
    // borrowed parse of UPS's bytes: no `Value` tree, no hashing.
    let borrowed = def.and_then(|def| {
        tree::with_arena(|arena| {
            let doc = legacy_schema::borrowed_success(arena, status, shape.service, &body)?;
            Some(match doc.member(root) {
                Some(content) => enveloped(|out| by_schema(out, def, content, namespace)),
                None => garbled(root, status),
            })
        })
    });
    if let Some(answer) = borrowed {
        return answer;
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        return fault(&rest_errors(&parsed, status), None);
    }
    let doc = match services::from_rest(shape, &parsed) {
        Converted::Unchanged => parsed,
        Converted::Json(v) => v,
        Converted::Errors(e) => return fault(&e, None),
    };
    let Some(content) = doc.get(root) else {
        return garbled(root, status);
    };
    enveloped(|out| match def {
        Some(def) => by_schema(out, def, content, namespace),
        None => {
            unshaped_payload(out, shape.service, namespace, root, content);
            0
        }
    })
}

/// The payload written by its XOLTWS schema; returns how many REST members it left out.
fn by_schema<N: Node>(
    out: &mut String,
    def: &RootDef,
    content: &N,
    namespace: Option<&str>,
) -> u32 {
    let schemas = legacy_schema::schemas();
    legacy_schema::write_xml(out, schemas, def, content, namespace).dropped
}

fn garbled(root: &str, status: u16) -> Answer {
    let f = Failure::UpstreamGarbled(format!("no {root} in a {status} answer"));
    fault(&[f.ups_error()], Some(f.kind()))
}

const ENVELOPE_OPEN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Header/><soapenv:Body>";
const ENVELOPE_CLOSE: &str = "</soapenv:Body></soapenv:Envelope>";

/// `soapenv:Envelope/Body/<Root>`, the payload written by `payload` (by the service's XOLTWS
/// schema where upsbridge has it: only elements it defines, in its order, in the namespace
/// the client used for its request), which returns how many REST members it left out.
fn enveloped(payload: impl FnOnce(&mut String) -> u32) -> Answer {
    let mut out = String::with_capacity(2048);
    out.push_str(ENVELOPE_OPEN);
    let dropped = payload(&mut out);
    out.push_str(ENVELOPE_CLOSE);
    envelope_answer(out, dropped)
}

fn envelope_answer(out: String, dropped: u32) -> Answer {
    Answer {
        status: 200,
        content_type: CONTENT_TYPE,
        body: Bytes::from(out),
        error_kind: None,
        dropped_fields: dropped,
    }
}

/// A payload for a service whose XOLTWS schema upsbridge does not have (Locator,
/// QuantumView): REST's members as they are, `Response` in the Common namespace.
fn unshaped_payload(
    out: &mut String,
    service: Service,
    namespace: Option<&str>,
    root: &str,
    content: &Value,
) {
    let (prefix, default_ns) = default_namespace(service);
    let ns = namespace.unwrap_or(default_ns);
    out.push('<');
    out.push_str(prefix);
    out.push(':');
    out.push_str(root);
    out.push_str(" xmlns:");
    out.push_str(prefix);
    out.push_str("=\"");
    out.push_str(&quick_xml::escape::escape(ns));
    out.push_str("\" xmlns:common=\"");
    out.push_str(COMMON_NS);
    out.push_str("\">");
    if let Value::Object(members) = content {
        for (k, v) in members {
            let p = if k == "Response" { "common" } else { prefix };
            xmljson::write_json(out, Some(p), k, v);
        }
    }
    out.push_str("</");
    out.push_str(prefix);
    out.push(':');
    out.push_str(root);
    out.push('>');
}

/// A SOAP 1.1 Fault with UPS's error detail, HTTP 500.
pub fn fault(errors: &[UpsError], error_kind: Option<&'static str>) -> Answer {
    let transient = errors.iter().all(|e| e.severity == Severity::Transient);
    let mut out = String::with_capacity(512);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"");
    out.push_str(SOAP11_NS);
    out.push_str("\"><soapenv:Header/><soapenv:Body><soapenv:Fault><faultcode>");
    out.push_str(if transient { "Server" } else { "Client" });
    out.push_str("</faultcode><faultstring>An exception has been raised as a result of client data.</faultstring><detail><err:Errors xmlns:err=\"");
    out.push_str(ERROR_NS);
    out.push_str("\">");
    for e in errors {
        out.push_str("<err:ErrorDetail><err:Severity>");
        out.push_str(e.severity.as_str());
        out.push_str("</err:Severity><err:PrimaryErrorCode><err:Code>");
        push_escaped(&mut out, &e.code);
        out.push_str("</err:Code><err:Description>");
        push_escaped(&mut out, &e.description);
        out.push_str("</err:Description></err:PrimaryErrorCode></err:ErrorDetail>");
    }
    out.push_str("</err:Errors></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>");
    Answer {
        status: 500,
        content_type: CONTENT_TYPE,
        body: Bytes::from(out),
        error_kind,
        dropped_fields: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::CannedUps;
    use serde_json::json;

    const RATE: &str = r#"<tns:Envelope xmlns:tns="http://schemas.xmlsoap.org/soap/envelope/" xmlns:upss="http://www.ups.com/XMLSchema/XOLTWS/UPSS/v1.0" xmlns:common="http://www.ups.com/XMLSchema/XOLTWS/Common/v1.0">
 <tns:Header><upss:UPSSecurity><upss:UsernameToken><upss:Username>legacyuser</upss:Username><upss:Password>legacypass</upss:Password></upss:UsernameToken>
  <upss:ServiceAccessToken><upss:AccessLicenseNumber>ACCESSKEY123</upss:AccessLicenseNumber></upss:ServiceAccessToken></upss:UPSSecurity></tns:Header>
 <ns2:Body xmlns:ns2="http://schemas.xmlsoap.org/soap/envelope/"><rate:RateRequest xmlns:rate="http://www.ups.com/XMLSchema/XOLTWS/Rate/v1.1">
  <common:Request><common:RequestOption>Shop</common:RequestOption><common:TransactionReference><common:CustomerContext>cc-1</common:CustomerContext></common:TransactionReference></common:Request>
  <rate:Shipment><rate:ShipTo><rate:Address><rate:AddressLine>5 Oak Ave</rate:AddressLine><rate:CountryCode>US</rate:CountryCode><rate:ResidentialAddressIndicator/></rate:Address></rate:ShipTo>
  <rate:Package><rate:PackagingType><rate:Code>02</rate:Code></rate:PackagingType></rate:Package></rate:Shipment>
 </rate:RateRequest></ns2:Body></tns:Envelope>"#;

    /// `RATE`'s envelope reader, just past the `Body`'s start tag.
    fn reader_in_body(doc: &str) -> onepass::Reader<'_> {
        let mut reader = onepass::Reader::from_str(doc);
        reader.config_mut().check_end_names = true;
        loop {
            if let Event::Start(e) = reader.read_event().unwrap() {
                if e.local_name().as_ref() == b"Body" {
                    return reader;
                }
            }
        }
    }

    /// The namespace of `doc`'s payload, read plainly.
    fn payload_namespace(doc: &str) -> Option<std::sync::Arc<str>> {
        let mut reader = reader_in_body(doc);
        let declarations = onepass::Declarations::of(doc);
        match payload_read_plainly(doc, &mut reader, &mut 0, &declarations) {
            Some(Plainly::Read((_, namespace, _))) => namespace,
            _ => panic!("read plainly: {doc}"),
        }
    }

    #[test]
    fn a_payload_that_declares_nothing_inside_is_read_plainly_and_the_envelope_goes_on() {
        let mut reader = reader_in_body(RATE);
        let mut count = 0;
        let Some(Plainly::Read((service, namespace, written))) = payload_read_plainly(
            RATE,
            &mut reader,
            &mut count,
            &onepass::Declarations::of(RATE),
        ) else {
            panic!("read plainly");
        };
        assert_eq!(service, Service::Rate);
        // Declared on the payload's own start tag.
        assert_eq!(
            namespace.as_deref(),
            Some("http://www.ups.com/XMLSchema/XOLTWS/Rate/v1.1")
        );
        assert!(std::str::from_utf8(&written.body)
            .unwrap()
            .starts_with(r#"{"RateRequest":{"Request":"#));
        // The envelope's reader is past the payload: next come the `Body`'s and the envelope's
        // ends, checked against their start tags.
        let ends: Vec<String> = std::iter::from_fn(|| match reader.read_event().unwrap() {
            Event::Eof => None,
            Event::End(e) => Some(String::from_utf8_lossy(e.as_ref()).into_owned()),
            _ => Some(String::new()),
        })
        .filter(|e| !e.is_empty())
        .collect();
        assert_eq!(ends, ["ns2:Body", "tns:Envelope"]);

        // A default namespace on the payload's own tag is its namespace.
        let doc = RATE.replace(
            r#"<rate:RateRequest xmlns:rate="http://www.ups.com/XMLSchema/XOLTWS/Rate/v1.1">"#,
            r#"<RateRequest xmlns="urn:rate">"#,
        );
        let doc = doc.replace("</rate:RateRequest>", "</RateRequest>");
        assert_eq!(payload_namespace(&doc).as_deref(), Some("urn:rate"));

        // Declared on the envelope, or on the `Body`, and not on the payload: resolved in the
        // envelope reader's scope, with no copy of it; the same text shares its `Arc`.
        let mut seen = Vec::new();
        for on in ["tns:Envelope", "ns2:Body"] {
            let doc = RATE
                .replace(
                    r#"<rate:RateRequest xmlns:rate="http://www.ups.com/XMLSchema/XOLTWS/Rate/v1.1">"#,
                    "<rate:RateRequest>",
                )
                .replacen(
                    &format!("<{on} "),
                    &format!(r#"<{on} xmlns:rate="urn:envelope-rate" "#),
                    1,
                );
            let namespace = payload_namespace(&doc).expect("a namespace");
            assert_eq!(&*namespace, "urn:envelope-rate", "{on}");
            seen.push(namespace);
        }
        assert!(std::sync::Arc::ptr_eq(&seen[0], &seen[1]));
    }

    /// What a one-pass read amounts to: the credentials and the REST call sent, or nothing.
    fn read(parsed: Option<Parsed>) -> Option<String> {
        parsed.map(|p| {
            let c = &p.credentials;
            let who = format!(
                "{} {} {}",
                c.access_key.as_str(),
                c.user_id.as_str(),
                c.password.expose()
            );
            format!("{who} {:?}", CannedUps::sent(p))
        })
    }

    #[test]
    fn an_envelope_that_declares_everything_on_its_start_tag_is_read_plainly_as_the_resolving_reader_reads_it(
    ) {
        let bench = include_str!("../../../benches/compare/rate_soap.xml");
        let payload_ns =
            r#"<rate:RateRequest xmlns:rate="http://www.ups.com/XMLSchema/XOLTWS/Rate/v1.1">"#;
        // `RATE` with every declaration moved to the envelope's start tag.
        let rate = RATE
            .replace(payload_ns, "<rate:RateRequest>")
            .replace(r#"<ns2:Body xmlns:ns2="http://schemas.xmlsoap.org/soap/envelope/">"#, "<ns2:Body>")
            .replace(
                "<tns:Envelope ",
                r#"<tns:Envelope xmlns:ns2="http://schemas.xmlsoap.org/soap/envelope/" xmlns:rate="http://www.ups.com/XMLSchema/XOLTWS/Rate/v1.1" "#,
            );
        let docs = [
            bench.to_string(),
            rate.clone(),
            // A default namespace: the header's and the body's unprefixed names are in it.
            r#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Header><UPSSecurity><UsernameToken><Username>u</Username><Password>p</Password></UsernameToken><ServiceAccessToken><AccessLicenseNumber>K</AccessLicenseNumber></ServiceAccessToken></UPSSecurity></Header><Body><RateRequest><Request><RequestOption>Rate</RequestOption></Request><Shipment><Package><PackagingType><Code>02</Code></PackagingType></Package></Shipment></RateRequest></Body></Envelope>"#.to_string(),
            // SOAP 1.2's envelope.
            rate.replace("http://schemas.xmlsoap.org/soap/envelope/", "http://www.w3.org/2003/05/soap-envelope"),
            // Declarations larger than a kept scope takes: a scope of the request's own.
            rate.replacen(
                "<tns:Envelope ",
                &format!(
                    "<tns:Envelope {}",
                    (0..40)
                        .map(|i| format!(r#"xmlns:p{i}="urn:a-long-namespace-name-for-prefix-{i}" "#))
                        .collect::<String>()
                ),
                1,
            ),
            // A header in another namespace is not the header: no credentials.
            rate.replace("<tns:Header>", "<rate:Header>").replace("</tns:Header>", "</rate:Header>"),
            // A body in another namespace is not the body: nothing to send.
            rate.replace("<ns2:Body>", "<rate:Body>").replace("</ns2:Body>", "</rate:Body>"),
            // An envelope in no namespace, or an unbound prefix: not an envelope.
            rate.replace(r#" xmlns:tns="http://schemas.xmlsoap.org/soap/envelope/""#, ""),
            // The envelope's end tag must match its start tag.
            rate.replace("</tns:Envelope>", "</tns:Envelop>"),
            // A declaration the resolving reader refuses, on the envelope.
            rate.replace("<tns:Envelope ", r#"<tns:Envelope xmlns:xml="urn:not-xml" "#),
        ];
        let mut taken = Vec::new();
        for doc in &docs {
            let declarations = onepass::Declarations::of(doc);
            let plainly =
                envelope_read_plainly(doc, &declarations).expect("no declaration below the root");
            let resolving = envelope_read_resolving(doc, &declarations);
            taken.push(resolving.is_some());
            assert_eq!(read(plainly), read(resolving), "{doc}");
        }
        // The fifth envelope's start tag is larger than a kept scope takes.
        assert!(docs[4].find('>').unwrap() > MAX_KEPT_DECLARATIONS);
        // What one pass does not take (no body, no envelope, a mismatched end, a refused
        // declaration), the tree path words.
        let expected = [
            true, true, true, true, true, true, false, false, false, false,
        ];
        assert_eq!(taken, expected);
        // One declaration below the root, and the resolving reader reads the envelope.
        for below in ["tns:Header", "upss:Username", "ns2:Body", "common:Request"] {
            let doc = rate.replacen(
                &format!("<{below}>"),
                &format!(r#"<{below} xmlns:x="urn:x">"#),
                1,
            );
            assert_ne!(doc, rate, "{below}");
            let declarations = onepass::Declarations::of(&doc);
            assert!(
                envelope_read_plainly(&doc, &declarations).is_none(),
                "{below}"
            );
            assert!(parse_in_one_pass(&doc).is_some(), "{below}");
        }
    }

    #[test]
    fn a_payload_that_declares_a_namespace_inside_is_left_to_the_envelope_reader() {
        let doc = RATE.replace(
            "<common:Request>",
            r#"<common:Request xmlns:common="urn:c">"#,
        );
        let mut reader = reader_in_body(&doc);
        let mut count = 0;
        assert!(matches!(
            payload_read_plainly(
                &doc,
                &mut reader,
                &mut count,
                &onepass::Declarations::of(&doc)
            ),
            Some(Plainly::AsItComes)
        ));
        // Nothing of it was read: the payload's start tag comes next.
        let next = loop {
            match reader.read_event().unwrap() {
                Event::Start(e) => break String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                Event::Text(_) => {}
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(next, "rate:RateRequest");
        // And the whole request reads as the tree reads it.
        assert_eq!(
            format!("{:?}", CannedUps::sent(parse(doc.as_bytes()).unwrap())),
            format!(
                "{:?}",
                CannedUps::sent(parse_by_tree(doc.as_bytes()).unwrap())
            )
        );
    }

    #[test]
    fn rate_request_becomes_rest_json_with_schema_arrays() {
        let p = parse(RATE.as_bytes()).unwrap();
        assert_eq!(p.credentials.access_key, "ACCESSKEY123");
        assert_eq!(p.credentials.user_id, "legacyuser");
        assert_eq!(p.credentials.password.expose(), "legacypass");
        let (call, body) = CannedUps::sent(p);
        assert_eq!(call.path_and_query, "/api/rating/v2409/Shop");
        let v: Value = serde_json::from_slice(&body.unwrap()).unwrap();
        let s = &v["RateRequest"]["Shipment"];
        assert_eq!(s["Package"], json!([{"PackagingType": {"Code": "02"}}]));
        assert_eq!(s["ShipTo"]["Address"]["AddressLine"], json!(["5 Oak Ave"]));
        assert_eq!(s["ShipTo"]["Address"]["ResidentialAddressIndicator"], "");
        assert_eq!(
            v["RateRequest"]["Request"]["TransactionReference"]["CustomerContext"],
            "cc-1"
        );
        assert!(!v.to_string().contains("legacypass"));
    }

    #[test]
    fn answer_is_shaped_by_the_xoltws_schema_in_the_clients_namespace() {
        let p = parse(RATE.as_bytes()).unwrap();
        // REST order, a REST-only member (ItemizedCharges), required members missing.
        let rest = br#"{"RateResponse":{"Response":{"ResponseStatus":{"Code":"1","Description":"Success"}},"RatedShipment":[{"TotalCharges":{"CurrencyCode":"USD","MonetaryValue":"9.10"},"Service":{"Code":"03"},"ItemizedCharges":[{"Code":"x"}]},{"Service":{"Code":"02"}}]}}"#;
        let a = CannedUps::new(200, &rest[..]).run(p.request).unwrap();
        assert_eq!(a.status, 200);
        let text = std::str::from_utf8(&a.body).unwrap();
        assert!(
            text.contains("<rate:RateResponse ")
                && text.contains(" xmlns:rate=\"http://www.ups.com/XMLSchema/XOLTWS/Rate/v1.1\""),
            "{text}"
        );
        assert!(
            text.contains("<common:Response><common:ResponseStatus><common:Code>1</common:Code>"),
            "{text}"
        );
        // Schema order; required BillingWeight, charges and RatedPackage written empty.
        assert!(text.contains("<rate:RatedShipment><rate:Service><rate:Code>03</rate:Code></rate:Service><rate:BillingWeight><rate:UnitOfMeasurement><rate:Code/></rate:UnitOfMeasurement><rate:Weight/></rate:BillingWeight><rate:TransportationCharges><rate:CurrencyCode/><rate:MonetaryValue/></rate:TransportationCharges><rate:ServiceOptionsCharges><rate:CurrencyCode/><rate:MonetaryValue/></rate:ServiceOptionsCharges><rate:TotalCharges><rate:CurrencyCode>USD</rate:CurrencyCode><rate:MonetaryValue>9.10</rate:MonetaryValue></rate:TotalCharges><rate:RatedPackage></rate:RatedPackage></rate:RatedShipment><rate:RatedShipment>"), "{text}");
        assert!(!text.contains("ItemizedCharges"), "{text}");
        assert_eq!(a.dropped_fields, 1);
    }

    #[test]
    fn errors_are_faults() {
        let a = fault(
            &[Failure::Malformed("x".into()).ups_error()],
            Some("malformed"),
        );
        assert_eq!(a.status, 500);
        let text = std::str::from_utf8(&a.body).unwrap();
        assert!(text.contains("<faultcode>Client</faultcode>"));
        assert!(text.contains("<err:Code>10001</err:Code>"));
        assert!(matches!(parse(b"<a/>"), Err(Failure::Malformed(_))));
        assert!(matches!(parse(b""), Err(Failure::Empty)));
        let p = parse(br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><FooRequest/></s:Body></s:Envelope>"#).unwrap();
        assert!(matches!(p.request, Err(Failure::UnknownService(_))));
        assert_eq!(p.credentials.access_key, "");
    }
}

//! Legacy dialects: how each old UPS client shape is recognised, where its
//! credentials are, how its request becomes a REST call and how the REST answer
//! (or our refusal) goes back in the client's own shape.
//!
//! - [`header`]: `AccessLicenseNumber`/`Username`/`Password` headers on the
//!   2018–2022 JSON paths; path-only mapping, body streamed untouched.
//! - [`legacy_json`]: `/rest/<Svc>`, `/json/<Svc>` with `UPSSecurity`/`Security`.
//! - [`soap`]: `/webservices/<Svc>`, SOAP 1.1 envelopes with `UPSSecurity`.
//! - [`oldxml`]: `/ups.app/xml/<Svc>`, an `AccessRequest` document followed by
//!   the old request document; ShipConfirm/ShipAccept emulated on one-phase REST.
//! - [`services`]: the XOLTWS-named request objects shared by legacy JSON and SOAP
//!   → REST calls, and REST answers → XOLTWS answers.
//! - [`xmljson`] and [`schema`]: the XML ⇄ JSON engine and its data tables;
//!   [`onepass`]: the same for the common requests, straight from XML events to JSON.
//!
//! Every dialect implements one [`Dialect`] trait (listed once, in [`DIALECTS`]):
//! `detect`, `parse` (credentials + what the request asks), `refusal`. Header style
//! is its streaming mode ([`Request::Streamed`]); a body dialect's request is an
//! [`Answered`] holding that dialect's own per-request state, which makes its
//! exchange with UPS through the pipeline's [`Ups`] and writes the answer.
//!
//! Credentials are taken out here and handed over as [`LegacyCredentials`]; nothing in this
//! module logs them or copies them into an answer.

pub mod fields;
#[cfg(test)]
pub(crate) mod generated_json;
pub mod header;
pub mod legacy_json;
pub mod legacy_schema;
pub mod old_service;
pub mod oldxml;
pub mod onepass;
pub mod request_member;
pub mod schema;
pub mod services;
pub mod soap;
pub mod tree;
pub mod xmljson;

use bytes::Bytes;

use crate::accounts::LegacyCredentials;
pub use crate::error::{DigestProblem, Failure, Severity, UpsError};
pub use crate::rest::RestAnswer;
use crate::rest::{RestBody, RestCall};
pub use fields::Fields;

/// Every dialect, in the order a request is offered to them: the one list of them. Adding a
/// dialect is its folder and one line here (and its `pub mod` above). Header style is last:
/// it claims the legacy JSON paths the body dialects leave.
pub static DIALECTS: [&dyn Dialect; 4] = [
    &legacy_json::LegacyJson,
    &soap::Soap,
    &oldxml::OldXml,
    &header::HeaderJson,
];

/// A legacy dialect: how its requests are recognised, where their credentials are, what
/// they ask of UPS and how the answer goes back. One implementation per dialect folder.
pub trait Dialect: Send + Sync {
    /// Its name in logs and metrics (`header_json`, `legacy_json`, `soap`, `xml`).
    fn name(&self) -> &'static str;
    /// `Some(service segment)` when the request is this dialect's (`path` as sent, `lower`
    /// the same lower-cased); the segment is empty for a dialect without one.
    fn detect(&self, path: &str, lower: &str, headers: Fields<'_>) -> Option<String>;
    /// Streaming mode: the request is parsed from its head alone and its body goes to UPS
    /// unread ([`Request::Streamed`]). Otherwise the body is read whole before [`Dialect::parse`].
    fn streams(&self) -> bool {
        false
    }
    /// Streaming mode: whether the client's header `name` (in any case) goes on to UPS (the
    /// client's headers become UPS's). `false` for everything that must not reach UPS (legacy
    /// credentials, hop-by-hop headers).
    fn forwards_to_ups(&self, _name: &[u8]) -> bool {
        true
    }
    /// Take the request apart. `Err` when it is refused before authentication (malformed,
    /// empty, not even credentials found), answered with [`Dialect::refusal`].
    fn parse(&self, route: &Route, head: &Head<'_>, body: &[u8]) -> Result<Parsed, Failure>;
    /// upsbridge's refusal of a request not (yet) understood, in this dialect.
    fn refusal(&self, route: &Route, failure: &Failure) -> Answer;
}

/// The request head, as the dialects see it.
#[derive(Clone, Copy)]
pub struct Head<'a> {
    pub method: &'a http::Method,
    pub uri: &'a http::Uri,
    pub headers: Fields<'a>,
}

/// A request taken apart by its dialect.
pub struct Parsed {
    pub credentials: LegacyCredentials,
    /// What it asks, or why it cannot be done (reported only after authentication, so an
    /// unauthenticated client learns nothing about the request beyond "not authenticated").
    pub request: Result<Request, Failure>,
}

/// What an understood request asks for.
pub enum Request {
    /// Streaming mode: the client's body goes to this call unread; UPS's answer comes back
    /// as it is.
    Streamed(RestCall),
    /// upsbridge makes the exchange with UPS and writes the answer, in the dialect's terms.
    Answered(Box<dyn Answered>),
}

/// One understood request of a body dialect, holding that dialect's own per-request state
/// (what its answer must echo, its namespace, its two-phase step, …).
#[async_trait::async_trait]
pub trait Answered: Send {
    /// The service, for logs and metrics (`rate`, `ship_confirm`, …).
    fn service(&self) -> &'static str;
    /// Talk to UPS (through `ups`, which carries the account's bearer, retries a 401 once and
    /// times out) and write the client's answer.
    async fn exchange(&mut self, ups: &mut dyn Ups) -> Result<Answer, Failure>;
    /// upsbridge's refusal of this request, in its dialect (echoing what it may echo).
    fn refusal(&self, failure: &Failure) -> Answer;
}

/// UPS, as one authenticated request may use it. The pipeline implements it: the bearer,
/// the 401 retry, timeouts, kept answers for retried calls and metrics happen there, once.
#[async_trait::async_trait]
pub trait Ups: Send {
    /// One REST call.
    async fn call(&mut self, call: &RestCall, body: Option<Bytes>) -> Result<RestAnswer, Failure>;
    /// Keep a call to be made later, once, by this account; returns its handle (old XML's
    /// `ShipmentDigest`).
    async fn prepare(&mut self, call: RestCall, body: Bytes) -> Result<String, Failure>;
    /// Make a prepared call: once, whoever asks again gets the first answer.
    async fn make_prepared(&mut self, handle: &str) -> Result<RestAnswer, Failure>;
}

/// A [`Ups`] that answers every call with one fixed REST answer and prepares nothing: to
/// run a dialect alone (benches, fuzzing, its unit tests).
pub struct CannedUps {
    pub answer: RestAnswer,
    /// The calls made, with their bodies.
    pub calls: Vec<(RestCall, Option<Bytes>)>,
}

impl CannedUps {
    pub fn new(status: u16, body: impl Into<Bytes>) -> CannedUps {
        CannedUps {
            answer: RestAnswer {
                status,
                body: body.into(),
            },
            calls: vec![],
        }
    }
}

impl CannedUps {
    /// Run an understood request's exchange against this canned UPS: its answer (the calls
    /// it made are in [`CannedUps::calls`]). No runtime is needed: nothing here waits.
    pub fn run(&mut self, request: Result<Request, Failure>) -> Result<Answer, Failure> {
        let mut request = match request? {
            Request::Answered(r) => r,
            Request::Streamed(call) => {
                self.calls.push((call, None));
                return Ok(Answer::new(
                    self.answer.status,
                    "application/json",
                    self.answer.body.clone(),
                ));
            }
        };
        let mut exchange = request.exchange(self);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match exchange.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(answer) => answer,
            std::task::Poll::Pending => unreachable!("a canned UPS never waits"),
        }
    }
}

impl CannedUps {
    /// The first call an understood request makes (UPS answering `200 {}`), with its body.
    pub fn sent(parsed: Parsed) -> (RestCall, Option<Bytes>) {
        let mut ups = CannedUps::new(200, &b"{}"[..]);
        let _ = ups.run(parsed.request);
        ups.calls
            .into_iter()
            .next()
            .expect("the request made a call")
    }
}

#[async_trait::async_trait]
impl Ups for CannedUps {
    async fn call(&mut self, call: &RestCall, body: Option<Bytes>) -> Result<RestAnswer, Failure> {
        self.calls.push((call.clone(), body));
        Ok(self.answer.clone())
    }
    async fn prepare(&mut self, call: RestCall, body: Bytes) -> Result<String, Failure> {
        self.calls.push((call, Some(body)));
        Ok("canned-digest".into())
    }
    async fn make_prepared(&mut self, _handle: &str) -> Result<RestAnswer, Failure> {
        Ok(self.answer.clone())
    }
}

/// Which dialect a request speaks and the service segment of its path.
#[derive(Clone)]
pub struct Route {
    pub dialect: &'static dyn Dialect,
    /// The `<Svc>` path segment as sent (body dialects), or empty.
    pub service: String,
}

impl PartialEq for Route {
    fn eq(&self, other: &Route) -> bool {
        self.dialect.name() == other.dialect.name() && self.service == other.service
    }
}

impl Eq for Route {}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.dialect.name(), self.service)
    }
}

/// Recognise the dialect from the path (and, for header style, the credential header).
/// `None`: not a legacy UPS request upsbridge knows.
pub fn detect(path: &str, headers: Fields<'_>) -> Option<Route> {
    // On the stack for any usual path: every request comes here.
    let mut lower = smallvec::SmallVec::<[u8; 128]>::from_slice(path.as_bytes());
    lower.make_ascii_lowercase();
    let lower = std::str::from_utf8(&lower).expect("ASCII lower-casing keeps UTF-8 valid");
    DIALECTS.iter().find_map(|dialect| {
        let service = dialect.detect(path, lower, headers)?;
        Some(Route {
            dialect: *dialect,
            service,
        })
    })
}

/// The refusal of a request no dialect claims: REST's error shape, which is what a client
/// calling an unknown path on UPS got.
pub fn unrouted_refusal(failure: &Failure) -> Answer {
    header::refusal(failure)
}

/// The body a REST call is sent with: none, its own JSON, or the request as converted
/// (`unchanged`, built only then).
pub fn rest_body_of(call: &RestCall, unchanged: impl FnOnce() -> Bytes) -> Option<Bytes> {
    match &call.body {
        RestBody::None => None,
        RestBody::Unchanged => Some(unchanged()),
        RestBody::Json(j) => Some(Bytes::from(j.to_string())),
    }
}

/// `{"<root>":<request>}`, the REST body of a translated request, serialised into one buffer
/// (`json!` would deep-copy `request` before writing it).
pub fn rest_body(root: &str, request: &serde_json::Value) -> Bytes {
    let mut out = Vec::with_capacity(1024);
    out.push(b'{');
    serde_json::to_writer(&mut out, root).expect("a str serialises into a Vec");
    out.push(b':');
    serde_json::to_writer(&mut out, request).expect("a Value serialises into a Vec");
    out.push(b'}');
    Bytes::from(out)
}

/// The one `<Svc>` segment after one of `prefixes` (lower case, with both slashes), as sent;
/// a trailing slash is allowed. How the body dialects recognise their paths.
pub fn service_after(prefixes: &[&str], path: &str, lower: &str) -> Option<String> {
    prefixes.iter().find_map(|prefix| {
        let rest = lower.strip_prefix(prefix)?;
        let service = path[prefix.len()..prefix.len() + rest.len()].trim_end_matches('/');
        (!service.is_empty() && !service.contains('/')).then(|| service.to_string())
    })
}

/// A `.` or `..` path segment, raw or percent-encoded (`%2e`, `.%2E`, …). Such a path is
/// refused: forwarded as it is, with a bearer, it could reach another UPS path than the
/// one the mapping chose.
pub fn has_dot_segment(path: &str) -> bool {
    // Every request passes here: a path with neither a dot nor an escape has no such segment.
    if !path.bytes().any(|b| b == b'.' || b == b'%') {
        return false;
    }
    path.split('/').any(|seg| {
        // A dot segment decodes to at most two bytes: look no further than three.
        let mut decoded = percent_encoding::percent_decode_str(seg);
        let first = [decoded.next(), decoded.next(), decoded.next()];
        matches!(
            first,
            [Some(b'.'), None, None] | [Some(b'.'), Some(b'.'), None]
        )
    })
}

/// A complete answer for the legacy client.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Bytes,
    /// Set when upsbridge (not UPS) produced an error: value of `x-upsbridge-error`.
    pub error_kind: Option<&'static str>,
    /// Members of UPS's answer the client's legacy schema has no place for, left out
    /// (counted in `upsbridge_answer_fields_dropped_total`).
    pub dropped_fields: u32,
}

impl Answer {
    /// An answer with no error of upsbridge's and nothing dropped.
    pub fn new(status: u16, content_type: &'static str, body: Bytes) -> Answer {
        Answer {
            status,
            content_type,
            body,
            error_kind: None,
            dropped_fields: 0,
        }
    }
}

/// Errors of a REST answer body: `{"response":{"errors":[…]}}` or TimeInTransit's `{"errors":[…]}`.
pub fn rest_errors(body: &serde_json::Value, http_status: u16) -> Vec<UpsError> {
    let list = body
        .pointer("/response/errors")
        .or_else(|| body.get("errors"))
        .and_then(|e| e.as_array());
    let severity = |code: &str| {
        if code.starts_with("2500") {
            Severity::Authentication
        } else if http_status >= 500 || http_status == 429 {
            Severity::Transient
        } else {
            Severity::Hard
        }
    };
    let mut out: Vec<UpsError> = list
        .into_iter()
        .flatten()
        .map(|e| {
            let code = json_text(e.get("code"));
            let message = json_text(e.get("message"));
            UpsError {
                severity: severity(&code),
                code,
                description: message,
            }
        })
        .collect();
    if out.is_empty() {
        out.push(UpsError::new(
            if http_status == 429 { "10429" } else { "20001" },
            format!("General process failure (UPS answered HTTP {http_status})"),
            if http_status >= 500 || http_status == 429 {
                Severity::Transient
            } else {
                Severity::Hard
            },
        ));
    }
    out
}

/// A JSON scalar as text (UPS sends codes as strings, sometimes as numbers).
pub fn json_text(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// [`json_text`] for a value that is present.
pub fn json_text_value(v: &serde_json::Value) -> String {
    json_text(Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_key() -> Fields<'static> {
        Fields::Raw(&[(b"AccessLicenseNumber", b"K")])
    }

    #[test]
    fn detection_is_by_path_then_header() {
        let r = detect("/rest/Rate", Fields::Raw(&[])).unwrap();
        assert_eq!(
            (r.dialect.name(), r.service.as_str()),
            ("legacy_json", "Rate")
        );
        assert_eq!(
            detect("/JSON/Track/", Fields::Raw(&[])).unwrap().service,
            "Track"
        );
        assert_eq!(
            detect("/ship/v1801/shipments", with_key())
                .unwrap()
                .dialect
                .name(),
            "header_json"
        );
        assert_eq!(
            detect("/ship/v1801/shipments", Fields::Raw(&[]))
                .unwrap()
                .dialect
                .name(),
            "header_json"
        );
        assert!(detect("/api/rating/v2409/Rate", Fields::Raw(&[])).is_none());
        assert!(detect("/api/rating/v2409/Rate", with_key()).is_some());
        assert!(detect("/favicon.ico", with_key()).is_none());
        assert!(detect("/rest/", Fields::Raw(&[])).is_none());
        let r = detect("/UPS.APP/xml/ShipConfirm", Fields::Raw(&[])).unwrap();
        assert_eq!(
            (r.dialect.name(), r.service.as_str()),
            ("xml", "ShipConfirm")
        );
        let r = detect("/webservices/Rate", Fields::Raw(&[])).unwrap();
        assert_eq!((r.dialect.name(), r.service.as_str()), ("soap", "Rate"));
        assert!(detect("/webservices/", Fields::Raw(&[])).is_none());
    }

    #[test]
    fn dot_segments_raw_or_encoded() {
        for p in [
            "/api/../admin",
            "/api/./x",
            "/api/%2e%2E/x",
            "/api/.%2e/x",
            "/rest/%2E",
            "/x/..",
            "..",
        ] {
            assert!(has_dot_segment(p), "{p}");
        }
        for p in [
            "/api/rating/v2409/Rate",
            "/ups.app/xml/Rate",
            "/a/.../b",
            "/a/.b",
            "/a/%2e%2e%2e/b",
            "/a/..%2F/b",
            "/a/b.",
            "/a/%41",
        ] {
            assert!(!has_dot_segment(p), "{p}");
        }
    }

    #[test]
    fn rest_errors_read_both_shapes_and_classify() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"response":{"errors":[{"code":"250002","message":"Invalid Authentication Information."}]}}"#,
        )
        .unwrap();
        assert_eq!(rest_errors(&v, 401)[0].severity, Severity::Authentication);
        let v: serde_json::Value =
            serde_json::from_str(r#"{"errors":[{"code":9,"message":"x"}]}"#).unwrap();
        assert_eq!(rest_errors(&v, 400)[0].code, "9");
        assert_eq!(
            rest_errors(&serde_json::Value::Null, 503)[0].severity,
            Severity::Transient
        );
    }
}

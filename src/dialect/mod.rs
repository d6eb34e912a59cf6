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
//! - [`xmljson`] and [`schema`]: the XML ⇄ JSON engine and its data tables.
//!
//! Credentials are taken out here and handed over as
//! [`LegacyCredentials`](crate::accounts::LegacyCredentials); nothing in this
//! module logs them or copies them into an answer.

pub mod header;
pub mod legacy_json;
pub mod legacy_schema;
pub mod old_service;
pub mod oldxml;
pub mod schema;
pub mod services;
pub mod soap;
pub mod xmljson;

use bytes::Bytes;

use crate::accounts::LegacyCredentials;
pub use crate::error::{DigestProblem, Failure, Severity, UpsError};
use services::{AnswerShape, RestCall};

/// The body dialects, each in its own module: the one list of them. Adding a dialect is its
/// module and one line here (and its `pub mod` above).
pub static BODY_DIALECTS: [&dyn BodyDialect; 3] =
    [&legacy_json::LegacyJson, &soap::Soap, &oldxml::OldXml];

/// The dialect a request speaks: header style (streamed; credentials in headers), or one
/// of [`BODY_DIALECTS`].
#[derive(Clone, Copy)]
pub enum Dialect {
    /// Credentials in headers on pre-OAuth JSON paths (or on `/api/…`).
    HeaderJson,
    /// Credentials inside the body: read whole, taken apart, answered by upsbridge.
    Body(&'static dyn BodyDialect),
}

impl Dialect {
    /// The dialect's name in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::HeaderJson => "header_json",
            Dialect::Body(d) => d.name(),
        }
    }
}

impl PartialEq for Dialect {
    fn eq(&self, other: &Dialect) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Dialect {}

impl std::fmt::Debug for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which dialect a request speaks and the service segment of its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dialect: Dialect,
    /// The `<Svc>` path segment as sent (body dialects), or empty.
    pub service: String,
}

/// Recognise the dialect from the path (and, for header style, the credential header).
/// `None`: not a legacy UPS request upsbridge knows.
pub fn detect(path: &str, has_access_key_header: bool) -> Option<Route> {
    let lower = path.to_ascii_lowercase();
    for dialect in BODY_DIALECTS {
        for prefix in dialect.path_prefixes() {
            if let Some(rest) = lower.strip_prefix(prefix) {
                let service = &path[prefix.len()..prefix.len() + rest.len()];
                let service = service.trim_end_matches('/');
                if !service.is_empty() && !service.contains('/') {
                    return Some(Route {
                        dialect: Dialect::Body(dialect),
                        service: service.to_string(),
                    });
                }
            }
        }
    }
    // A legacy JSON path is header style even without credentials (then refused as such);
    // `/api/…` is header style only when legacy credentials are present.
    let legacy_path = header::is_header_style_path(&lower) && !lower.starts_with("/api/");
    if legacy_path || (has_access_key_header && lower.starts_with("/api/")) {
        return Some(Route {
            dialect: Dialect::HeaderJson,
            service: String::new(),
        });
    }
    None
}

/// A `.` or `..` path segment, raw or percent-encoded (`%2e`, `.%2E`, …). Such a path is
/// refused: forwarded as it is, with a bearer, it could reach another UPS path than the
/// one the mapping chose.
pub fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|seg| {
        let decoded = percent_encoding::percent_decode_str(seg).collect::<Vec<u8>>();
        decoded == b"." || decoded == b".."
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

/// What a body dialect asks the proxy to do with UPS.
#[derive(Debug, Clone)]
pub enum Plan {
    /// One REST call; its answer goes back through [`BodyDialect::answer`].
    Call { call: RestCall, body: Option<Bytes> },
    /// Old-XML ShipConfirm: price the shipment with `rate` (nothing is created at UPS);
    /// on success store `ship` + `ship_body` under a new digest, then answer the rate
    /// through [`BodyDialect::answer`] with the digest in [`AnswerShape`]'s `xml.digest`.
    ShipConfirm {
        rate: RestCall,
        rate_body: Bytes,
        ship: RestCall,
        ship_body: Bytes,
    },
    /// Old-XML ShipAccept: look the digest up (bound to the account) and make its one
    /// ship call; a repeated accept is answered from the cached answer.
    ShipAccept { digest: String },
}

/// A body-dialect request taken apart.
pub struct Parsed {
    pub credentials: LegacyCredentials,
    /// What to do, or why nothing can be done (reported only after authentication, so an
    /// unauthenticated client learns nothing about the request beyond "not authenticated").
    pub plan: Result<(Plan, AnswerShape), Failure>,
}

/// A dialect whose credentials are inside the body: the request is read whole,
/// taken apart, answered by the proxy. One implementation per dialect; the
/// proxy picks one per request from [`Route::dialect`].
pub trait BodyDialect: Send + Sync {
    /// Its name in logs and metrics (`legacy_json`, `soap`, `xml`).
    fn name(&self) -> &'static str;
    /// The path prefixes (lower case, with both slashes) whose next segment is its `<Svc>`.
    fn path_prefixes(&self) -> &'static [&'static str];
    /// Take the request apart. `Err` only when not even credentials can be found
    /// (malformed, empty): the proxy answers it with [`BodyDialect::refusal`].
    fn parse(&self, route: &Route, body: &[u8]) -> Result<Parsed, Failure>;
    /// UPS's REST answer → the client's answer.
    fn answer(&self, shape: &AnswerShape, status: u16, body: Bytes) -> Answer;
    /// upsbridge's own refusal → the client's answer (`shape` once the request was understood).
    fn refusal(&self, route: &Route, shape: Option<&AnswerShape>, failure: &Failure) -> Answer;
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

    #[test]
    fn detection_is_by_path_then_header() {
        let r = detect("/rest/Rate", false).unwrap();
        assert_eq!(
            (r.dialect.as_str(), r.service.as_str()),
            ("legacy_json", "Rate")
        );
        assert_eq!(detect("/JSON/Track/", false).unwrap().service, "Track");
        assert_eq!(
            detect("/ship/v1801/shipments", true).unwrap().dialect,
            Dialect::HeaderJson
        );
        assert_eq!(
            detect("/ship/v1801/shipments", false).unwrap().dialect,
            Dialect::HeaderJson
        );
        assert!(detect("/api/rating/v2409/Rate", false).is_none());
        assert!(detect("/api/rating/v2409/Rate", true).is_some());
        assert!(detect("/favicon.ico", true).is_none());
        assert!(detect("/rest/", false).is_none());
        let r = detect("/UPS.APP/xml/ShipConfirm", false).unwrap();
        assert_eq!(
            (r.dialect.as_str(), r.service.as_str()),
            ("xml", "ShipConfirm")
        );
        let r = detect("/webservices/Rate", false).unwrap();
        assert_eq!((r.dialect.as_str(), r.service.as_str()), ("soap", "Rate"));
        assert!(detect("/webservices/", false).is_none());
    }

    #[test]
    fn dot_segments_raw_or_encoded() {
        for p in [
            "/api/../admin",
            "/api/./x",
            "/api/%2e%2E/x",
            "/api/.%2e/x",
            "/rest/%2E",
        ] {
            assert!(has_dot_segment(p), "{p}");
        }
        for p in [
            "/api/rating/v2409/Rate",
            "/ups.app/xml/Rate",
            "/a/.../b",
            "/a/.b",
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

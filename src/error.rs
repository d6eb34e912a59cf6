//! The one error of a legacy request: what upsbridge refuses or fails with instead of
//! a UPS answer. Each failure knows where it came from ([`Origin`]), whether the client
//! may retry it, its HTTP status, the UPS error an old client understands (code, text,
//! severity) and its metrics label, all here in one place. Dialects only shape it.
//! Transport errors are classified into it in one function (`proxy::upstream::classify`).

use std::sync::Arc;

use crate::accounts::AuthError;
use crate::oauth::TokenError;
use crate::store::StoreError;

/// How bad an error is, in UPS's terms (old clients branch on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Hard,
    Transient,
    Authentication,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Hard => "Hard",
            Severity::Transient => "Transient",
            Severity::Authentication => "Authentication",
            Severity::Warning => "Warning",
        }
    }
}

/// One UPS-style error: what goes into `Error`, `ErrorDetail` or `errors[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpsError {
    pub code: String,
    pub description: String,
    pub severity: Severity,
}

impl UpsError {
    pub fn new(code: &str, description: impl Into<String>, severity: Severity) -> UpsError {
        UpsError {
            code: code.to_string(),
            description: description.into(),
            severity,
        }
    }
}

/// Everything upsbridge itself refuses or fails with, before or instead of a UPS answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    #[error("authentication: {0}")]
    Auth(#[from] AuthError),
    #[error("no UPS token: {0}")]
    Token(#[from] TokenError),
    #[error("request not well formed: {0}")]
    Malformed(String),
    #[error("request empty")]
    Empty,
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    #[error("unknown or unsupported service `{0}`")]
    UnknownService(String),
    #[error("missing required field {0}")]
    MissingField(&'static str),
    #[error("UPS unreachable: {0}")]
    UpstreamUnreachable(String),
    #[error("UPS did not answer within {0:?}")]
    UpstreamTimeout(std::time::Duration),
    #[error("UPS answer unusable: {0}")]
    UpstreamGarbled(String),
    #[error(
        "UPS refused a fresh token of account `{0}`; check that its UPS app has this API product"
    )]
    UpstreamAuth(String),
    /// ShipAccept with a digest that is forged, unknown, expired or another account's.
    #[error("ShipmentDigest refused: {0}")]
    DigestRefused(DigestProblem),
    /// ShipAccept for a digest whose ship call is under way (concurrent retry).
    #[error("ShipmentDigest is being accepted by another request")]
    DigestBusy,
    /// upsbridge's own store failed.
    #[error("store: {0}")]
    Store(#[source] Arc<StoreError>),
}

/// Where a failure comes from: what ops look at first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The legacy client's request (credentials, shape, size, service).
    Client,
    /// UPS: unreachable, slow, or an answer that cannot be used.
    Ups,
    /// upsbridge itself: its tokens, its store, its own state.
    Upsbridge,
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::Store(Arc::new(e))
    }
}

/// Why a `ShipmentDigest` was refused (the client sees one text for all but expiry,
/// so a digest of another account cannot be told from an unknown one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestProblem {
    /// Not one upsbridge made (MAC check failed) or not base64url.
    Forged,
    /// MAC fine, but no record (never stored, or removed).
    Unknown,
    /// Older than the digest TTL.
    Expired,
    /// Made for another account.
    Foreign,
}

impl std::fmt::Display for DigestProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DigestProblem::Forged => "forged",
            DigestProblem::Unknown => "unknown",
            DigestProblem::Expired => "expired",
            DigestProblem::Foreign => "bound to another account",
        })
    }
}

impl Failure {
    /// A store record that does not read back (`what` names it for the log).
    pub fn unreadable(what: &str, detail: impl std::fmt::Display) -> Failure {
        StoreError::Corrupt {
            key: what.to_string(),
            detail: detail.to_string(),
        }
        .into()
    }

    pub fn origin(&self) -> Origin {
        match self {
            Failure::Auth(_)
            | Failure::Malformed(_)
            | Failure::Empty
            | Failure::TooLarge(_)
            | Failure::UnknownService(_)
            | Failure::MissingField(_)
            | Failure::DigestRefused(_) => Origin::Client,
            Failure::UpstreamUnreachable(_)
            | Failure::UpstreamTimeout(_)
            | Failure::UpstreamGarbled(_)
            | Failure::UpstreamAuth(_) => Origin::Ups,
            Failure::Token(_) | Failure::DigestBusy | Failure::Store(_) => Origin::Upsbridge,
        }
    }

    /// May the same request succeed if the client sends it again later? (UPS's
    /// `Transient` severity, which old clients read to decide.)
    pub fn retryable(&self) -> bool {
        self.ups_error().severity == Severity::Transient
    }

    /// Value of `x-upsbridge-error` and the metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Auth(_) => "auth",
            Failure::Token(e) => e.kind(),
            Failure::Malformed(_) => "malformed",
            Failure::Empty => "empty",
            Failure::TooLarge(_) => "too_large",
            Failure::UnknownService(_) => "unknown_service",
            Failure::MissingField(_) => "missing_field",
            Failure::UpstreamUnreachable(_) => "upstream_unreachable",
            Failure::UpstreamTimeout(_) => "upstream_timeout",
            Failure::UpstreamGarbled(_) => "upstream_garbled",
            Failure::UpstreamAuth(_) => "upstream_auth",
            Failure::DigestRefused(_) => "digest_refused",
            Failure::DigestBusy => "digest_busy",
            Failure::Store(_) => "store",
        }
    }

    /// HTTP status for dialects that use HTTP statuses (header JSON, legacy JSON).
    pub fn http_status(&self) -> u16 {
        match self {
            Failure::Auth(_) => 401,
            Failure::Token(_) => 503,
            Failure::Malformed(_) | Failure::Empty | Failure::MissingField(_) => 400,
            Failure::TooLarge(_) => 413,
            Failure::UnknownService(_) => 404,
            Failure::UpstreamUnreachable(_) | Failure::UpstreamGarbled(_) => 502,
            Failure::UpstreamTimeout(_) => 504,
            Failure::UpstreamAuth(_) => 503,
            Failure::DigestRefused(_) => 400,
            Failure::DigestBusy => 409,
            Failure::Store(_) => 500,
        }
    }

    /// The UPS error a legacy client understands (codes from UPS's common error list).
    pub fn ups_error(&self) -> UpsError {
        use Severity::*;
        match self {
            Failure::Auth(e) => match e.cause() {
                AuthError::MissingAccessKey | AuthError::UnknownAccessKey => {
                    UpsError::new("250003", "Invalid Access License number", Authentication)
                }
                _ => UpsError::new(
                    "250002",
                    "Invalid Authentication Information.",
                    Authentication,
                ),
            },
            // Our fault, not the client's credentials: a transient general failure that says why.
            Failure::Token(e) => UpsError::new(
                "20001",
                format!("General process failure: upsbridge could not get a UPS OAuth token: {e}"),
                Transient,
            ),
            Failure::Malformed(why) => UpsError::new(
                "10001",
                format!("The request is not well formed: {why}"),
                Hard,
            ),
            Failure::Empty => UpsError::new("10003", "The request is empty or null", Hard),
            Failure::TooLarge(limit) => UpsError::new(
                "10002",
                format!("The request is too large (limit {limit} bytes)"),
                Hard,
            ),
            Failure::UnknownService(s) => {
                UpsError::new("20002", format!("Invalid service name: {s}"), Hard)
            }
            Failure::MissingField(f) => {
                UpsError::new("20007", format!("Missing required field {f}"), Hard)
            }
            Failure::UpstreamUnreachable(why) => UpsError::new(
                "20001",
                format!("General process failure: UPS unreachable ({why})"),
                Transient,
            ),
            Failure::UpstreamTimeout(t) => UpsError::new(
                "20001",
                format!("General process failure: UPS did not answer within {t:?}"),
                Transient,
            ),
            Failure::UpstreamGarbled(why) => UpsError::new(
                "20001",
                format!("General process failure: unusable UPS answer ({why})"),
                Transient,
            ),
            // Our token, not the client's credentials: never a 25000x the client would act on.
            Failure::UpstreamAuth(account) => UpsError::new(
                "20001",
                format!(
                    "General process failure: UPS refused upsbridge's token for account {account}"
                ),
                Transient,
            ),
            Failure::DigestRefused(DigestProblem::Expired) => UpsError::new(
                "10002",
                "The XML document is well formed but the document is not valid: the ShipmentDigest has expired; send ShipConfirm again",
                Hard,
            ),
            Failure::DigestRefused(_) => UpsError::new(
                "10002",
                "The XML document is well formed but the document is not valid: unknown ShipmentDigest",
                Hard,
            ),
            Failure::DigestBusy => UpsError::new(
                "20001",
                "General process failure: this ShipmentDigest is being accepted by another request; retry shortly",
                Transient,
            ),
            Failure::Store(_) => UpsError::new(
                "20001",
                "General process failure: upsbridge could not use its store",
                Transient,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn origin_and_retry_agree_with_what_the_client_is_told() {
        let store = Failure::unreadable("digest record", "bad json");
        assert!(
            std::error::Error::source(&store).is_some(),
            "typed cause kept"
        );
        for (f, origin, retry) in [
            (Failure::Malformed("x".into()), Origin::Client, false),
            (Failure::TooLarge(10), Origin::Client, false),
            (
                Failure::DigestRefused(DigestProblem::Expired),
                Origin::Client,
                false,
            ),
            (
                Failure::UpstreamTimeout(Duration::from_secs(3)),
                Origin::Ups,
                true,
            ),
            (
                Failure::UpstreamUnreachable("refused".into()),
                Origin::Ups,
                true,
            ),
            (Failure::DigestBusy, Origin::Upsbridge, true),
            (store, Origin::Upsbridge, true),
        ] {
            assert_eq!(f.origin(), origin, "{f}");
            assert_eq!(f.retryable(), retry, "{f}");
            // A client error is never a 5xx, a UPS or upsbridge one never a 4xx but 409.
            let status = f.http_status();
            match origin {
                Origin::Client => assert!((400..500).contains(&status), "{f}: {status}"),
                _ => assert!(status >= 500 || status == 409, "{f}: {status}"),
            }
        }
    }
}

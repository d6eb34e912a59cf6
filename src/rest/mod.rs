//! UPS's current REST API as upsbridge calls it: the catalogue of services ([`Service`]),
//! the call every dialect's request becomes ([`RestCall`]), and one place for the paths and
//! the API versions, read from UPS's OpenAPI specs (the `Valid values` of each `{version}`
//! path parameter). Every dialect builds its REST paths from these, so a version bump is one
//! line. Nothing here depends on a dialect.
//!
//! The specs list one valid version per operation today (older ones such as
//! `v1801` or `v2205` are gone), so a version a legacy client puts in its path is
//! recognised as a version and replaced by the current one.

mod service;

pub use service::Service;

use http::Method;
use serde_json::Value;

/// The body of the REST call.
#[derive(Debug, Clone, PartialEq)]
pub enum RestBody {
    /// No body (GET/DELETE).
    None,
    /// `{"<root>": <the request object as the client sent it>}`: the caller may reuse its bytes.
    Unchanged,
    /// A rebuilt body.
    Json(Value),
}

/// One REST call to UPS.
#[derive(Debug, Clone, PartialEq)]
pub struct RestCall {
    pub method: Method,
    pub path_and_query: String,
    pub body: RestBody,
    /// Extra headers some calls take (`Prn`, `AccountNumber`).
    pub headers: Vec<(&'static str, String)>,
}

/// UPS's answer to one REST call, read whole.
#[derive(Debug, Clone)]
pub struct RestAnswer {
    pub status: u16,
    pub body: bytes::Bytes,
}

/// `POST /api/rating/{v}/{requestoption}`.
pub const RATING: &str = "v2409";
/// `POST /api/shipments/{v}/ship` and `DELETE /api/shipments/{v}/void/cancel/{id}`.
pub const SHIPPING: &str = "v2409";
/// `POST /api/labels/{v}/recovery`.
pub const LABEL_RECOVERY: &str = "v1";
/// `GET /api/track/{v}/details/{n}` (fixed in the spec).
pub const TRACKING: &str = "v1";
/// `POST /api/shipments/{v}/transittimes`.
pub const TIME_IN_TRANSIT: &str = "v1";
/// `POST /api/addressvalidation/{v}/{requestoption}`.
pub const ADDRESS_VALIDATION: &str = "v2";
/// Every Pickup operation.
pub const PICKUP: &str = "v2409";
/// `POST /api/locations/{v}/search/availabilities/{reqOption}`.
pub const LOCATOR: &str = "v3";
/// `POST /api/quantumview/{v}/events`.
pub const QUANTUM_VIEW: &str = "v3";

/// A legacy version path segment: `v1801`, `V1801`, `1801`, `v1`, `v2409` (1–4 digits).
pub fn is_version_segment(segment: &str) -> bool {
    let digits = segment.strip_prefix(['v', 'V']).unwrap_or(segment);
    !digits.is_empty() && digits.len() <= 4 && digits.bytes().all(|b| b.is_ascii_digit())
}

/// REST's spelling of a rating request option (`shop` → `Shop`).
pub fn rating_option(option: &str) -> Option<&'static str> {
    // Compared in place: lower-casing a copy was an allocation on every rate request.
    ["Rate", "Shop", "Ratetimeintransit", "Shoptimeintransit"]
        .into_iter()
        .find(|known| known.eq_ignore_ascii_case(option))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rating_options_in_any_case_get_rest_spelling() {
        assert_eq!(rating_option("shop"), Some("Shop"));
        assert_eq!(rating_option("RATE"), Some("Rate"));
        assert_eq!(
            rating_option("RateTimeInTransit"),
            Some("Ratetimeintransit")
        );
        assert_eq!(
            rating_option("shoptimeintransit"),
            Some("Shoptimeintransit")
        );
        for unknown in ["", "Rates", "Sho", "shop "] {
            assert_eq!(rating_option(unknown), None, "{unknown:?}");
        }
    }

    #[test]
    fn version_segments() {
        for v in ["v1", "V1801", "1801", "v1807", "v2409"] {
            assert!(is_version_segment(v), "{v}");
        }
        for v in ["", "v", "vx", "v12345", "details"] {
            assert!(!is_version_segment(v), "{v}");
        }
    }
}

//! Header-style JSON: UPS's 2018–2022 JSON APIs, credentials in the
//! `AccessLicenseNumber`, `Username` and `Password` headers, bodies already in
//! REST shape. Only the path changes; the body streams through untouched and
//! the answer comes back unchanged. Refusals use REST's `response.errors` shape.

use bytes::Bytes;
use http::Method;
use secrecy::SecretString;

use super::{Answer, Failure};
use crate::accounts::LegacyCredentials;

/// The legacy credential headers; every one is removed before forwarding.
pub const CREDENTIAL_HEADERS: [&str; 3] = ["accesslicensenumber", "username", "password"];

/// The REST call a header-style request becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestTarget {
    pub method: Method,
    /// `/api/…` with the client's query string kept.
    pub path_and_query: String,
}

/// Paths header-style clients use (lower-cased).
pub fn is_header_style_path(lower: &str) -> bool {
    [
        "/ship/",
        "/track/",
        "/addressvalidation/",
        "/rating/",
        "/shipments/",
        "/labels/",
        "/pickup",
        "/locations/",
        "/api/",
    ]
    .iter()
    .any(|p| lower.starts_with(p))
}

/// Credentials from the request headers (missing ones are empty).
pub fn credentials(headers: &http::HeaderMap) -> LegacyCredentials {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim()
            .to_string()
    };
    LegacyCredentials {
        access_key: get("accesslicensenumber"),
        user_id: get("username"),
        password: SecretString::from(get("password")),
    }
}

/// `v1801`, `V1801`, `1801` → `v1801`; anything else → `None`.
fn version(segment: &str) -> Option<String> {
    let digits = segment.strip_prefix(['v', 'V']).unwrap_or(segment);
    (!digits.is_empty() && digits.len() <= 4 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("v{digits}"))
}

/// Rating only accepts these versions; anything else goes to the current default.
const RATING_VERSIONS: [&str; 8] = [
    "v1", "v1601", "v1607", "v1701", "v1707", "v2108", "v2205", "v2409",
];
const RATING_DEFAULT: &str = "v2409";

/// REST spells the rating request options this way.
pub fn rating_option(option: &str) -> Option<&'static str> {
    match option.to_ascii_lowercase().as_str() {
        "rate" => Some("Rate"),
        "shop" => Some("Shop"),
        "ratetimeintransit" => Some("Ratetimeintransit"),
        "shoptimeintransit" => Some("Shoptimeintransit"),
        _ => None,
    }
}

/// Map a header-style path to the REST call (table 3.3 of legacy-dialects.md).
/// `has_body`: a GET with a body is a rating call sent by a client that used the wrong verb.
pub fn map(method: &Method, path: &str, query: Option<&str>, has_body: bool) -> Option<RestTarget> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let q = |p: String| match query {
        Some(q) if !q.is_empty() => format!("{p}?{q}"),
        _ => p,
    };
    let post = Method::POST;
    let (m, p) = match l.as_slice() {
        // Already REST: credentials swapped, path kept.
        ["api", ..] => (method.clone(), format!("/{}", segs.join("/"))),
        ["ship", v, "shipments"] => (post, format!("/api/shipments/{}/ship", version(v)?)),
        ["ship", v, "shipments", "cancel", _id] => (
            Method::DELETE,
            format!("/api/shipments/{}/void/cancel/{}", version(v)?, segs[4]),
        ),
        ["ship", v, "shipments", "transittimes"] => {
            (post, format!("/api/shipments/{}/transittimes", version(v)?))
        }
        ["ship", _v, "shipments", "labels"] => (post, "/api/labels/v1/recovery".to_string()),
        ["ship", v, "rating", option] => {
            let v = version(v)?;
            let v = if RATING_VERSIONS.contains(&v.as_str()) {
                v
            } else {
                RATING_DEFAULT.to_string()
            };
            if *method != Method::POST && !(*method == Method::GET && has_body) {
                return None;
            }
            (post, format!("/api/rating/{v}/{}", rating_option(option)?))
        }
        ["ship", v, "pickups"] => (post, format!("/api/pickupcreation/{}/pickup", version(v)?)),
        ["ship", _v, "pickups", "rating"] => (post, "/api/shipments/v2409/pickup/oncall".into()),
        ["ship", _v, "pickups", _cancel_by] => (
            Method::DELETE,
            format!("/api/shipments/v2409/pickup/{}", segs[3]),
        ),
        ["track", "v1", "details", _id] => {
            (Method::GET, format!("/api/track/v1/details/{}", segs[3]))
        }
        ["track", "v1", "reference", "details", _r] => (
            Method::GET,
            format!("/api/track/v1/reference/details/{}", segs[4]),
        ),
        ["addressvalidation", v, option @ ("1" | "2" | "3")] => {
            let v = version(v)?;
            let v = if v == "v1" || v == "v2" {
                v
            } else {
                "v2".into()
            };
            (post, format!("/api/addressvalidation/{v}/{option}"))
        }
        ["locations", v, "search", "availabilities", option] => (
            post,
            format!(
                "/api/locations/{}/search/availabilities/{option}",
                version(v)?
            ),
        ),
        _ => return None,
    };
    Some(RestTarget {
        method: m,
        path_and_query: q(p),
    })
}

/// A refusal in REST's error shape (what header-style clients already parse).
pub fn refusal(failure: &Failure) -> Answer {
    let e = failure.ups_error();
    let body = serde_json::json!({
        "response": {"errors": [{"code": e.code, "message": e.description}]}
    });
    Answer {
        status: failure.http_status(),
        content_type: "application/json",
        body: Bytes::from(body.to_string()),
        error_kind: Some(failure.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(method: Method, path: &str, query: Option<&str>) -> Option<String> {
        map(&method, path, query, false).map(|t| format!("{} {}", t.method, t.path_and_query))
    }

    #[test]
    fn legacy_paths_map_to_rest() {
        assert_eq!(
            m(
                Method::POST,
                "/ship/V1801/shipments",
                Some("additionaladdressvalidation=city")
            ),
            Some("POST /api/shipments/v1801/ship?additionaladdressvalidation=city".into())
        );
        assert_eq!(
            m(
                Method::DELETE,
                "/ship/v1/shipments/cancel/1Z9Y9Y9Y0000000001",
                None
            ),
            Some("DELETE /api/shipments/v1/void/cancel/1Z9Y9Y9Y0000000001".into())
        );
        assert_eq!(
            m(
                Method::POST,
                "/ship/1801/rating/rate",
                Some("additionalinfo=timeintransit")
            ),
            Some("POST /api/rating/v2409/Rate?additionalinfo=timeintransit".into())
        );
        assert_eq!(
            m(Method::POST, "/ship/v1607/rating/Shop", None),
            Some("POST /api/rating/v1607/Shop".into())
        );
        assert_eq!(
            m(Method::GET, "/track/v1/details/1Z123", Some("locale=en_US")),
            Some("GET /api/track/v1/details/1Z123?locale=en_US".into())
        );
        assert_eq!(
            m(Method::POST, "/addressvalidation/v1/3", None),
            Some("POST /api/addressvalidation/v1/3".into())
        );
        assert_eq!(
            m(Method::POST, "/ship/v1/shipments/transittimes", None),
            Some("POST /api/shipments/v1/transittimes".into())
        );
        assert_eq!(
            m(Method::POST, "/api/rating/v2409/Rate", None),
            Some("POST /api/rating/v2409/Rate".into())
        );
        assert_eq!(m(Method::POST, "/ship/vx/shipments", None), None);
        assert_eq!(m(Method::POST, "/ship/v1/rating/Cheapest", None), None);
    }

    #[test]
    fn get_with_body_on_rating_becomes_post() {
        let t = map(&Method::GET, "/ship/1801/rating/Rate", None, true).unwrap();
        assert_eq!(t.method, Method::POST);
        assert!(map(&Method::GET, "/ship/1801/rating/Rate", None, false).is_none());
    }
}

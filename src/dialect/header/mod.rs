//! Header-style JSON: UPS's 2018–2022 JSON APIs, credentials in the
//! `AccessLicenseNumber`, `Username` and `Password` headers, bodies already in
//! REST shape. Only the path changes; the body streams through untouched and
//! the answer comes back unchanged. Refusals use REST's `response.errors` shape.

use bytes::Bytes;
use http::Method;
use smallvec::SmallVec;

use super::fields::{self, Fields};
use super::{Answer, Dialect, Failure, Head, Parsed, Request, Route};
use crate::accounts::LegacyCredentials;
use crate::rest::{RestBody, RestCall};
use crate::substring::trim;

/// The header-style dialect: the same [`Dialect`] as the others, in streaming mode.
pub struct HeaderJson;

impl Dialect for HeaderJson {
    fn name(&self) -> &'static str {
        "header_json"
    }

    /// A legacy JSON path is header style even without credentials (then refused as such);
    /// `/api/…` is header style only when legacy credentials are present.
    fn detect(&self, _path: &str, lower: &str, headers: Fields<'_>) -> Option<String> {
        let legacy_path = is_header_style_path(lower) && !lower.starts_with("/api/");
        let api_with_key = lower.starts_with("/api/") && headers.contains(ACCESS_KEY);
        (legacy_path || api_with_key).then(String::new)
    }

    fn streams(&self) -> bool {
        true
    }

    fn forwards_to_ups(&self, name: &[u8]) -> bool {
        !is_stripped(name)
    }

    /// From the head alone: an unknown path or a repeated credential header is refused at
    /// once (before authentication, as UPS did).
    fn parse(&self, _route: &Route, head: &Head<'_>, _body: &[u8]) -> Result<Parsed, Failure> {
        let has_body = head
            .headers
            .get("content-length")
            .is_some_and(|v| v != b"0")
            || head.headers.contains("transfer-encoding");
        let path = head.uri.path();
        let call = map(head.method, path, head.uri.query(), has_body)
            .ok_or_else(|| Failure::UnknownService(path.to_string()))?;
        let credentials = credentials(head.headers)
            .map_err(|h| Failure::Malformed(format!("the {h} header is sent twice")))?;
        Ok(Parsed {
            credentials,
            request: Ok(Request::Streamed(call)),
        })
    }

    fn refusal(&self, _route: &Route, failure: &Failure) -> Answer {
        refusal(failure)
    }
}

const ACCESS_KEY: &str = "accesslicensenumber";
const USERNAME: &str = "username";
const PASSWORD: &str = "password";

/// Headers a client may send that must never reach UPS: its legacy credentials, anything
/// that authenticates elsewhere, and hop-by-hop headers of its own connection. (By length
/// first: every field of every request is checked.)
fn is_stripped(name: &[u8]) -> bool {
    let any = |names: &[&str]| {
        names
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
    };
    match name.len() {
        2 => any(&["te"]),
        6 => any(&["cookie", "expect"]),
        7 => any(&["upgrade"]),
        8 => any(&[USERNAME, PASSWORD]),
        10 => any(&["connection", "keep-alive"]),
        13 => any(&["authorization"]),
        19 => any(&[ACCESS_KEY, "proxy-authorization"]),
        _ => false,
    }
}

/// Paths header-style clients use (lower-cased).
fn is_header_style_path(lower: &str) -> bool {
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

/// The credentials from the request headers (a missing one is empty), or the name of one
/// sent twice.
pub fn credentials(headers: Fields<'_>) -> Result<LegacyCredentials, &'static str> {
    // One walk over the fields for all three (by length first: most fields are none of them).
    const NAMES: [(&str, &str); 3] = [
        (ACCESS_KEY, "AccessLicenseNumber"),
        (USERNAME, "Username"),
        (PASSWORD, "Password"),
    ];
    let mut values: [Option<&[u8]>; 3] = [None; 3];
    let mut twice = None;
    headers.each(|name, value| {
        if !matches!(name.len(), 8 | 19) {
            return;
        }
        if let Some(i) = NAMES
            .iter()
            .position(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()))
        {
            if values[i].replace(value).is_some() {
                twice = twice.or(Some(NAMES[i].1));
            }
        }
    });
    if let Some(name) = twice {
        return Err(name);
    }
    let [key, user, password] = values
        .map(|v| v.and_then(fields::text).unwrap_or(""))
        .map(trim);
    Ok(LegacyCredentials::new(key, user, password))
}

/// The REST call of a header-style request (legacy-dialects §3.3), or `None` when the path
/// is not one upsbridge knows.
///
/// Legacy paths carry a version segment (`v1`, `v1801`, `V1801`, `1801`, `v1807`, …) that the
/// REST API no longer has: any version-shaped segment is accepted and replaced by the
/// current version of that operation ([`crate::rest`]). The REST paths are accepted without
/// their `/api` prefix too (`/rating/v1/Rate`). Track also comes as
/// `GET /track/v1/details/?inquiryNumber=…` (query parameter, trailing slash).
/// `has_body`: a GET with a body on rating is a POST sent with the wrong verb.
pub fn map(method: &Method, path: &str, query: Option<&str>, has_body: bool) -> Option<RestCall> {
    // Already REST, as most header-style clients send it: path and query go as they came.
    // (The segment walk gives the same for such a path, with four allocations more.)
    if is_plain_rest_path(path) {
        let mut path_and_query =
            String::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
        path_and_query.push_str(path);
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            path_and_query.push('?');
            path_and_query.push_str(q);
        }
        return Some(RestCall {
            method: method.clone(),
            path_and_query,
            body: RestBody::Unchanged,
            headers: vec![],
        });
    }
    map_by_segments(method, path, query, has_body)
}

/// [`map`] for any path, segment by segment.
fn map_by_segments(
    method: &Method,
    path: &str,
    query: Option<&str>,
    has_body: bool,
) -> Option<RestCall> {
    use crate::rest;
    // The segments as sent and lower-cased, on the stack (one allocation for the lower-cased
    // path: this runs for every header-style request on a legacy path).
    let segs: SmallVec<[&str; 8]> = path.split('/').filter(|s| !s.is_empty()).collect();
    let lower = path.to_ascii_lowercase();
    let l: SmallVec<[&str; 8]> = lower.split('/').filter(|s| !s.is_empty()).collect();
    let version = |v: &str| rest::is_version_segment(v).then_some(());
    let mut query = query.unwrap_or("").to_string();
    let post = Method::POST;
    let (m, p) = match l.as_slice() {
        // Already REST: credentials swapped, path kept.
        ["api", ..] => (method.clone(), format!("/{}", segs.join("/"))),
        ["ship", v, "shipments"] | ["shipments", v, "ship"] => {
            version(v)?;
            (post, format!("/api/shipments/{}/ship", rest::SHIPPING))
        }
        ["ship", v, "shipments", "cancel", _]
        | ["ship", v, "shipments", "void", "cancel", _]
        | ["shipments", v, "void", "cancel", _] => {
            version(v)?;
            let id = segs[segs.len() - 1];
            let p = format!("/api/shipments/{}/void/cancel/{id}", rest::SHIPPING);
            (Method::DELETE, p)
        }
        ["ship", v, "shipments", "transittimes"] | ["shipments", v, "transittimes"] => {
            version(v)?;
            let p = format!("/api/shipments/{}/transittimes", rest::TIME_IN_TRANSIT);
            (post, p)
        }
        ["ship", v, "shipments", "labels"] | ["labels", v, "recovery"] => {
            version(v)?;
            (
                post,
                format!("/api/labels/{}/recovery", rest::LABEL_RECOVERY),
            )
        }
        ["ship", v, "rating", option] | ["rating", v, option] => {
            version(v)?;
            if *method != Method::POST && !(*method == Method::GET && has_body) {
                return None;
            }
            let option = rest::rating_option(option)?;
            // The commonest header-style call: concatenated, not formatted.
            (post, ["/api/rating/", rest::RATING, "/", option].concat())
        }
        ["ship", v, "pickups"] | ["pickupcreation", v, "pickup"] => {
            version(v)?;
            (post, format!("/api/pickupcreation/{}/pickup", rest::PICKUP))
        }
        ["ship", v, "pickups", "rating"] => {
            version(v)?;
            (
                post,
                format!("/api/shipments/{}/pickup/oncall", rest::PICKUP),
            )
        }
        ["ship", v, "pickups", _cancel_by] => {
            version(v)?;
            let p = format!("/api/shipments/{}/pickup/{}", rest::PICKUP, segs[3]);
            (Method::DELETE, p)
        }
        ["track", v, "details", _id] => {
            version(v)?;
            let p = format!("/api/track/{}/details/{}", rest::TRACKING, segs[3]);
            (Method::GET, p)
        }
        ["track", v, "details"] => {
            version(v)?;
            let (number, others) = take_query_param(&query, &["inquirynumber", "trackingnumber"])?;
            query = others;
            let p = format!("/api/track/{}/details/{number}", rest::TRACKING);
            (Method::GET, p)
        }
        ["track", v, "reference", "details", _r] => {
            version(v)?;
            let p = format!(
                "/api/track/{}/reference/details/{}",
                rest::TRACKING,
                segs[4]
            );
            (Method::GET, p)
        }
        ["addressvalidation", v, option @ ("1" | "2" | "3")] => {
            version(v)?;
            let p = format!(
                "/api/addressvalidation/{}/{option}",
                rest::ADDRESS_VALIDATION
            );
            (post, p)
        }
        ["locations", v, "search", "availabilities", option] => {
            version(v)?;
            let p = format!(
                "/api/locations/{}/search/availabilities/{option}",
                rest::LOCATOR
            );
            (post, p)
        }
        _ => return None,
    };
    let path_and_query = if query.is_empty() {
        p
    } else {
        format!("{p}?{query}")
    };
    Some(RestCall {
        method: m,
        path_and_query,
        // The client's body, already REST's, goes as it is (streamed, or read whole for a
        // call that creates or destroys something).
        body: RestBody::Unchanged,
        headers: vec![],
    })
}

/// `/api/…` (any case) with no empty segment: a REST path that needs no mapping.
fn is_plain_rest_path(path: &str) -> bool {
    path.get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("/api/"))
        && !path.ends_with('/')
        && !path.contains("//")
}

/// The first non-empty value of one of `names` (any case) in a query string, kept
/// percent-encoded as it came (it becomes a path segment), and the query without it.
fn take_query_param(query: &str, names: &[&str]) -> Option<(String, String)> {
    let mut value = None;
    let mut kept = vec![];
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let wanted = names.iter().any(|n| k.eq_ignore_ascii_case(n));
        if value.is_none() && wanted && !v.is_empty() {
            value = Some(v.to_string());
        } else {
            kept.push(pair);
        }
    }
    value.map(|v| (v, kept.join("&")))
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
        dropped_fields: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_credential_and_hop_by_hop_header_is_stripped_in_any_case() {
        for name in [
            "AccessLicenseNumber",
            "USERNAME",
            "password",
            "Authorization",
            "Cookie",
            "Proxy-Authorization",
            "Connection",
            "Keep-Alive",
            "TE",
            "Upgrade",
            "Expect",
        ] {
            assert!(!HeaderJson.forwards_to_ups(name.as_bytes()), "{name}");
        }
        for name in [
            "Content-Type",
            "transId",
            "Cookies",
            "X-Password",
            "Accept",
            "t",
        ] {
            assert!(HeaderJson.forwards_to_ups(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn credentials_are_found_in_any_case_and_refused_when_sent_twice() {
        let raw: [(&[u8], &[u8]); 5] = [
            (b"Host", b"p"),
            (b"ACCESSLICENSENUMBER", b" KEY "),
            (b"content-type", b"application/json"),
            (b"PassWord", b"p w"),
            (b"X-Username", b"not this"),
        ];
        let c = credentials(Fields::Raw(&raw)).unwrap();
        assert_eq!(c.access_key.as_str(), "KEY");
        assert_eq!(c.user_id.as_str(), "", "a missing one is empty");
        assert_eq!(c.password.expose(), "p w");
        let mut map = http::HeaderMap::new();
        map.append("username", "u".parse().unwrap());
        map.append("username", "v".parse().unwrap());
        assert_eq!(credentials(Fields::Map(&map)).err(), Some("Username"));
        let twice: [(&[u8], &[u8]); 2] = [(b"Password", b"a"), (b"password", b"b")];
        assert_eq!(credentials(Fields::Raw(&twice)).err(), Some("Password"));
        // A value that is not visible ASCII counts as missing, as `HeaderValue::to_str` did.
        let odd: [(&[u8], &[u8]); 1] = [(b"Username", b"\xc3\xa9")];
        assert_eq!(credentials(Fields::Raw(&odd)).unwrap().user_id.as_str(), "");
    }

    fn m(method: Method, path: &str, query: Option<&str>) -> Option<String> {
        map(&method, path, query, false).map(|t| format!("{} {}", t.method, t.path_and_query))
    }

    #[test]
    fn legacy_paths_map_to_rest_at_current_versions() {
        let cases = [
            (
                Method::POST,
                "/ship/V1801/shipments",
                Some("additionaladdressvalidation=city"),
                "POST /api/shipments/v2409/ship?additionaladdressvalidation=city",
            ),
            (
                Method::POST,
                "/ship/v1807/shipments",
                None,
                "POST /api/shipments/v2409/ship",
            ),
            (
                Method::DELETE,
                "/ship/v1/shipments/cancel/1Z9Y9Y9Y0000000001",
                None,
                "DELETE /api/shipments/v2409/void/cancel/1Z9Y9Y9Y0000000001",
            ),
            (
                Method::POST,
                "/ship/1801/rating/rate",
                Some("additionalinfo=timeintransit"),
                "POST /api/rating/v2409/Rate?additionalinfo=timeintransit",
            ),
            (
                Method::POST,
                "/ship/v1607/rating/Shop",
                None,
                "POST /api/rating/v2409/Shop",
            ),
            (
                Method::POST,
                "/rating/v1/Rate",
                None,
                "POST /api/rating/v2409/Rate",
            ),
            (
                Method::GET,
                "/track/v1/details/1Z123",
                Some("locale=en_US"),
                "GET /api/track/v1/details/1Z123?locale=en_US",
            ),
            (
                Method::GET,
                "/track/v1/details/",
                Some("inquiryNumber=1Z123&locale=en_US"),
                "GET /api/track/v1/details/1Z123?locale=en_US",
            ),
            (
                Method::GET,
                "/track/V1/details",
                Some("InquiryNumber=1Z123"),
                "GET /api/track/v1/details/1Z123",
            ),
            (
                Method::POST,
                "/addressvalidation/v1/3",
                None,
                "POST /api/addressvalidation/v2/3",
            ),
            (
                Method::POST,
                "/ship/v1/shipments/transittimes",
                None,
                "POST /api/shipments/v1/transittimes",
            ),
            (
                Method::POST,
                "/ship/v1/shipments/labels",
                None,
                "POST /api/labels/v1/recovery",
            ),
            (
                Method::POST,
                "/locations/v1/search/availabilities/64",
                None,
                "POST /api/locations/v3/search/availabilities/64",
            ),
            (
                Method::POST,
                "/api/rating/v2409/Rate",
                None,
                "POST /api/rating/v2409/Rate",
            ),
            (
                Method::GET,
                "/API/track/v1/details/1Z123",
                Some("locale=en_US"),
                "GET /API/track/v1/details/1Z123?locale=en_US",
            ),
            (
                Method::GET,
                "/api//track/v1/details/1Z123/",
                Some(""),
                "GET /api/track/v1/details/1Z123",
            ),
        ];
        for (method, path, query, want) in cases {
            assert_eq!(m(method, path, query).as_deref(), Some(want), "{path}");
        }
        assert_eq!(m(Method::POST, "/ship/vx/shipments", None), None);
        // A plain REST path takes the short way; it gives what the segment walk gives.
        for (path, query) in [
            ("/api/track/v1/details/1Z123", Some("locale=en_US")),
            ("/Api/rating/v2409/Shop", None),
            ("/api/shipments/v2409/ship", Some("")),
            ("/api/x", Some("a=1&b")),
        ] {
            assert!(is_plain_rest_path(path), "{path}");
            let walked = map_by_segments(&Method::POST, path, query, true)
                .map(|t| format!("{} {}", t.method, t.path_and_query));
            assert_eq!(m(Method::POST, path, query), walked, "{path}");
        }
        for path in [
            "/api/",
            "/api",
            "/api//x",
            "/api/x/",
            "/apix/y",
            "/ship/v1/api/x",
        ] {
            assert!(!is_plain_rest_path(path), "{path}");
        }
        assert_eq!(m(Method::POST, "/ship/v1/rating/Cheapest", None), None);
        assert_eq!(
            m(Method::GET, "/track/v1/details/", Some("locale=en_US")),
            None
        );
    }

    #[test]
    fn get_with_body_on_rating_becomes_post() {
        let t = map(&Method::GET, "/ship/1801/rating/Rate", None, true).unwrap();
        assert_eq!(t.method, Method::POST);
        assert!(map(&Method::GET, "/ship/1801/rating/Rate", None, false).is_none());
    }
}

//! Legacy JSON: `/rest/<Svc>` and `/json/<Svc>`, one object holding the
//! credentials (`UPSSecurity`, or the older `Security` with
//! `UPSServiceAccessToken`) next to the XOLTWS request object.
//!
//! The credential member is cut out of the body and every other byte is kept
//! (values, key order, whitespace), unless the service needs its request
//! rebuilt or the client sent `null`s, which REST refuses. Answers are UPS's
//! bytes unchanged except for Track/TimeInTransit (rebuilt) and errors, which
//! become the legacy `Fault` object.

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::legacy_schema::{self, Family, RootDef};
use super::request_member::JsonText;
use super::services::{self, AnswerShape, Converted, RequestMember, RestBody, Service};
use super::tree::{self, Node};
use super::{
    rest_errors, Answer, Answered, Dialect, Failure, Head, Parsed, Request, Route, Severity, Ups,
    UpsError,
};
use crate::accounts::LegacyCredentials;
use crate::rest::RestCall;
use crate::substring::{trim, Substring};

/// `null` anywhere in a body: such a body takes the full reading, which removes nulls.
static NULL: Substring = Substring::new(b"null");

/// The legacy JSON dialect.
pub struct LegacyJson;

impl Dialect for LegacyJson {
    fn name(&self) -> &'static str {
        "legacy_json"
    }

    fn detect(&self, path: &str, lower: &str, _headers: super::Fields<'_>) -> Option<String> {
        super::service_after(&["/rest/", "/json/"], path, lower)
    }

    fn parse(&self, _route: &Route, _head: &Head<'_>, body: &[u8]) -> Result<Parsed, Failure> {
        parse(body)
    }

    fn refusal(&self, _route: &Route, failure: &Failure) -> Answer {
        refusal(failure)
    }
}

/// A legacy JSON request understood: its one REST call, and what its answer needs.
struct JsonRequest {
    shape: AnswerShape,
    call: RestCall,
    body: Option<Bytes>,
}

#[async_trait::async_trait]
impl Answered for JsonRequest {
    fn service(&self) -> &'static str {
        self.shape.service.name()
    }

    async fn exchange(&mut self, ups: &mut dyn Ups) -> Result<Answer, Failure> {
        let rest = ups.call(&self.call, self.body.take()).await?;
        Ok(answer(&self.shape, rest.status, rest.body))
    }

    fn refusal(&self, failure: &Failure) -> Answer {
        refusal(failure)
    }
}

const SECURITY_KEYS: [&str; 2] = ["UPSSecurity", "Security"];

/// Most top-level members the one-pass reading of a common request takes (one has two: the
/// credentials and the request).
const MAX_COMMON_MEMBERS: usize = 16;

/// Take a legacy JSON body apart: credentials, REST call and REST body.
pub fn parse(body: &[u8]) -> Result<Parsed, Failure> {
    let text = text_of(body)?;
    match parse_common(text) {
        Some(parsed) => Ok(parsed),
        None => read_in_full(text),
    }
}

/// [`parse`] without the one-pass reading of the common request: the reference that reading
/// is tested against.
#[doc(hidden)]
pub fn parse_in_full(body: &[u8]) -> Result<Parsed, Failure> {
    read_in_full(text_of(body)?)
}

fn text_of(body: &[u8]) -> Result<&str, Failure> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Failure::Empty);
    }
    std::str::from_utf8(body).map_err(|e| Failure::Malformed(format!("not UTF-8: {e}")))
}

/// Any body, every error worded.
fn read_in_full(text: &str) -> Result<Parsed, Failure> {
    let members = serde_json::from_str::<Members>(text)
        .map_err(|e| Failure::Malformed(format!("JSON: {e}")))?
        .0;
    // A member given twice is ambiguous: which copy authenticates and which is forwarded
    // must never differ, so neither is chosen. The names seen go into a set: comparing each
    // with every one before it took 4 s for 40,000 members, read before any credential is
    // checked (SipHash: the names are the client's).
    let mut seen = std::collections::HashSet::with_capacity(members.len());
    for (k, _) in &members {
        if !seen.insert(k.as_str()) {
            return Err(Failure::Malformed(format!("member `{k}` appears twice")));
        }
    }
    let mut securities = members
        .iter()
        .filter(|(k, _)| SECURITY_KEYS.contains(&k.as_str()));
    let security = securities.next();
    if securities.next().is_some() {
        return Err(Failure::Malformed(
            "both `UPSSecurity` and `Security` are present".into(),
        ));
    }
    let credentials = match security {
        Some((name, raw)) => credentials(name, raw)?,
        None => LegacyCredentials::none(),
    };
    let request = rest_call(text, &members);
    Ok(Parsed {
        credentials,
        request,
    })
}

/// The common request (a rate or a shipment, credentials and one request object, no `null`)
/// read in one pass over the body: the credential member's text and the root's `Request`
/// member are all that is parsed. `None` for anything else (a member twice, an escaped key, a
/// root that is not an object, a call that needs more than `Request`); the full reading in
/// [`parse`] then takes the body and words any error.
fn parse_common(text: &str) -> Option<Parsed> {
    if NULL.is_in(text.as_bytes()) {
        return None;
    }
    let body: CommonBody = serde_json::from_str(text).ok()?;
    let (service, request) = body.root?;
    if !services::reads_request_member_only(service) {
        return None;
    }
    let credentials = match body.security {
        Some((name, raw)) => credentials(name, raw).ok()?,
        None => LegacyCredentials::none(),
    };
    let member = request.unwrap_or_default();
    let (call, shape) = services::to_rest_of_member(service, &member)?.ok()?;
    let forwarded = cut_members(text, body.security.as_slice())?;
    Some(Parsed {
        credentials,
        request: Ok(Request::Answered(Box::new(JsonRequest {
            shape,
            call,
            body: Some(Bytes::from(forwarded)),
        }))),
    })
}

/// What [`parse_common`] reads of a body: its credential member and the first request root's
/// service with that root's `Request` member.
struct CommonBody<'a> {
    security: Option<(&'a str, &'a RawValue)>,
    root: Option<(Service, Option<RequestMember<'a>>)>,
}

impl<'de> serde::Deserialize<'de> for CommonBody<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, IgnoredAny};
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = CommonBody<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<CommonBody<'de>, M::Error> {
                let mut seen: smallvec::SmallVec<[&'de str; 4]> = smallvec::SmallVec::new();
                let mut body = CommonBody {
                    security: None,
                    root: None,
                };
                // A key with an escape is not borrowed: an error, and the full reading's case.
                while let Some(key) = m.next_key::<&'de str>()? {
                    // More members than a request has: the full reading, which checks
                    // repeats with a set (this scan is quadratic).
                    if seen.len() >= MAX_COMMON_MEMBERS {
                        return Err(M::Error::custom("many members"));
                    }
                    if seen.contains(&key) {
                        return Err(M::Error::custom("a member twice"));
                    }
                    seen.push(key);
                    if SECURITY_KEYS.contains(&key) {
                        if body.security.is_some() {
                            return Err(M::Error::custom("two credential members"));
                        }
                        body.security = Some((key, m.next_value()?));
                    } else if let (None, Some(service)) =
                        (&body.root, Service::from_request_root(key))
                    {
                        let RootRequest(request) = m.next_value()?;
                        body.root = Some((service, request));
                    } else {
                        m.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(body)
            }
        }
        d.deserialize_map(Visit)
    }
}

/// What a request root's `Request` member holds for its REST call, of the last of repeated
/// ones (as a full parse reads them); the root's other members are skipped, not parsed.
struct RootRequest<'a>(Option<RequestMember<'a>>);

impl<'de> serde::Deserialize<'de> for RootRequest<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::IgnoredAny;
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RootRequest<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<RootRequest<'de>, M::Error> {
                let mut request = None;
                while let Some(key) = m.next_key::<&'de str>()? {
                    if key == "Request" {
                        request = Some(m.next_value()?);
                    } else {
                        m.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(RootRequest(request))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// The members of the top-level object in order, duplicates kept (a map would hide them).
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Members<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<Members<'a>, M::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, &'de RawValue>()? {
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// The credential member, read borrowed. serde refuses a field given twice: which copy
/// authenticates must never be a guess.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Security<'a> {
    #[serde(rename = "UsernameToken", borrow)]
    username_token: Option<UsernameToken<'a>>,
    #[serde(rename = "ServiceAccessToken", borrow)]
    access: Option<AccessToken<'a>>,
    /// The older `Security` member's name for it.
    #[serde(rename = "UPSServiceAccessToken", borrow)]
    ups_access: Option<AccessToken<'a>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct UsernameToken<'a> {
    #[serde(rename = "Username", borrow)]
    username: Option<JsonText<'a>>,
    #[serde(rename = "Password", borrow)]
    password: Option<JsonText<'a>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct AccessToken<'a> {
    #[serde(rename = "AccessLicenseNumber", borrow)]
    key: Option<JsonText<'a>>,
}

/// The credentials in `name`'s member: a field given twice is refused; a member not shaped
/// as credentials gives none (refused as missing credentials).
fn credentials(name: &str, raw: &RawValue) -> Result<LegacyCredentials, Failure> {
    let security = match serde_json::from_str::<Security>(raw.get()) {
        Ok(security) => security,
        Err(e) if e.to_string().starts_with("duplicate field") => {
            return Err(Failure::Malformed(format!(
                "`{name}` has a member twice ({e})"
            )))
        }
        Err(_) => Security::default(),
    };
    // A string, trimmed; anything else is no value.
    let text = |value: Option<JsonText>| {
        value
            .and_then(|v| v.0)
            .map(|s| trim(&s).to_string())
            .unwrap_or_default()
    };
    let token = security.username_token.unwrap_or_default();
    let key = text(security.access.and_then(|a| a.key));
    Ok(LegacyCredentials::new(
        if key.is_empty() {
            text(security.ups_access.and_then(|a| a.key))
        } else {
            key
        },
        text(token.username),
        text(token.password),
    ))
}

fn rest_call(text: &str, members: &[(String, &RawValue)]) -> Result<Request, Failure> {
    let (root, raw, service) = members
        .iter()
        .find_map(|(k, v)| Service::from_request_root(k).map(|s| (k.as_str(), *v, s)))
        .ok_or_else(|| {
            let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
            Failure::UnknownService(format!("no known request object among {keys:?}"))
        })?;
    if !raw.get().starts_with('{') {
        return Err(Failure::Malformed(format!("{root} is not an object")));
    }
    // Most requests (rates, shipments) go to UPS byte for byte and their REST call is read
    // from their `Request` member: only that member is parsed, the shipment never is. A body
    // that may hold a `null` takes the full path, which removes nulls (REST refuses them).
    let nulls_possible = NULL.is_in(raw.get().as_bytes());
    if services::reads_request_member_only(service) && !nulls_possible {
        let inner = serde_json::from_str::<Members>(raw.get())
            .map_err(|e| Failure::Malformed(format!("{root}: {e}")))?
            .0;
        // As in a full parse, the last of repeated members counts.
        let member = match inner.iter().rev().find(|(k, _)| k == "Request") {
            Some((_, r)) => {
                RequestMember::from_json(r.get()).map_err(|e| Failure::Malformed(e.to_string()))?
            }
            None => RequestMember::default(),
        };
        if let Some(rest) = services::to_rest_of_member(service, &member) {
            let (call, shape) = rest?;
            return Ok(Request::Answered(Box::new(JsonRequest {
                shape,
                call,
                body: Some(Bytes::from(without_security(text, members))),
            })));
        }
    }
    let mut request: Value =
        serde_json::from_str(raw.get()).map_err(|e| Failure::Malformed(e.to_string()))?;
    let had_nulls = strip_nulls(&mut request);
    let (call, shape) = services::to_rest(service, &request)?;
    let body = match &call.body {
        RestBody::None => None,
        RestBody::Json(v) => Some(Bytes::from(v.to_string())),
        RestBody::Unchanged if had_nulls => Some(super::rest_body(root, &request)),
        RestBody::Unchanged => Some(Bytes::from(without_security(text, members))),
    };
    Ok(Request::Answered(Box::new(JsonRequest {
        shape,
        call,
        body,
    })))
}

/// Drop `null` members and array items (REST refuses them); true if any was found.
fn strip_nulls(v: &mut Value) -> bool {
    match v {
        Value::Object(o) => {
            let before = o.len();
            o.retain(|_, x| !x.is_null());
            let mut found = o.len() != before;
            for x in o.values_mut() {
                found |= strip_nulls(x);
            }
            found
        }
        Value::Array(a) => {
            let before = a.len();
            a.retain(|x| !x.is_null());
            let mut found = a.len() != before;
            for x in a.iter_mut() {
                found |= strip_nulls(x);
            }
            found
        }
        _ => false,
    }
}

/// The body text with the credential member cut out, every other byte kept.
/// Falls back to re-serialising the other members if the text is not laid out as expected.
fn without_security(text: &str, members: &[(String, &RawValue)]) -> String {
    let securities: smallvec::SmallVec<[(&str, &RawValue); 2]> = members
        .iter()
        .filter(|(k, _)| SECURITY_KEYS.contains(&k.as_str()))
        .map(|(k, raw)| (k.as_str(), *raw))
        .collect();
    cut_members(text, &securities).unwrap_or_else(|| rebuild(members))
}

/// `text` without `members` (each with one adjacent comma); `None` if one of them is not laid
/// out as expected (an escaped key).
fn cut_members(text: &str, members: &[(&str, &RawValue)]) -> Option<String> {
    let mut cuts = members
        .iter()
        .map(|(k, raw)| member_span(text, k, raw))
        .collect::<Option<smallvec::SmallVec<[(usize, usize); 2]>>>()?;
    cuts.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut kept_from = 0;
    for (start, end) in cuts {
        out.push_str(text.get(kept_from..start)?);
        kept_from = end;
    }
    out.push_str(&text[kept_from..]);
    Some(out)
}

/// Byte span of `"key": value` plus one adjacent comma.
fn member_span(text: &str, key: &str, raw: &RawValue) -> Option<(usize, usize)> {
    let value_start = (raw.get().as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    let value_end = value_start + raw.get().len();
    let bytes = text.as_bytes();
    let before = text[..value_start].trim_end();
    let before = before.strip_suffix(':')?.trim_end();
    let key_start = before
        .strip_suffix('"')?
        .strip_suffix(key)?
        .strip_suffix('"')?
        .len();
    // Prefer the comma after the member; else (last member) the comma before it.
    let after = value_end + (text[value_end..].len() - text[value_end..].trim_start().len());
    if bytes.get(after) == Some(&b',') {
        return Some((key_start, after + 1));
    }
    let lead = text[..key_start].trim_end();
    if lead.ends_with(',') {
        return Some((lead.len() - 1, value_end));
    }
    Some((key_start, value_end))
}

fn rebuild(members: &[(String, &RawValue)]) -> String {
    let kept: Vec<String> = members
        .iter()
        .filter(|(k, _)| !SECURITY_KEYS.contains(&k.as_str()))
        .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), v.get()))
        .collect();
    format!("{{{}}}", kept.join(","))
}

/// The legacy `Fault` object for one or more errors.
pub fn fault(errors: &[UpsError]) -> Value {
    let details: Vec<Value> = errors
        .iter()
        .map(|e| {
            json!({"Severity": e.severity.as_str(),
                   "PrimaryErrorCode": {"Code": e.code, "Description": e.description}})
        })
        .collect();
    let transient = errors.iter().all(|e| e.severity == Severity::Transient);
    json!({"Fault": {
        "faultcode": if transient { "Server" } else { "Client" },
        "faultstring": "An exception has been raised as a result of client data.",
        "detail": {"Errors": {"ErrorDetail": services::collapse(details)}}
    }})
}

fn json_answer(status: u16, body: Bytes, error_kind: Option<&'static str>) -> Answer {
    Answer {
        status,
        content_type: "application/json",
        body,
        error_kind,
        dropped_fields: 0,
    }
}

/// upsbridge's own refusal, as a legacy Fault.
pub fn refusal(failure: &Failure) -> Answer {
    json_answer(
        failure.http_status(),
        Bytes::from(fault(&[failure.ups_error()]).to_string()),
        Some(failure.kind()),
    )
}

/// UPS's REST answer → the legacy client's answer.
pub fn answer(shape: &AnswerShape, status: u16, body: Bytes) -> Answer {
    let root = shape.service.response_root();
    let schemas = legacy_schema::schemas();
    let def = schemas.root(Family::Xoltws, root);
    // The common case, streamed: shaped as UPS's bytes are parsed.
    if let Some((def, text)) = def
        .and_then(|d| legacy_schema::direct_success(status, shape.service, &body).map(|t| (d, t)))
    {
        let mut out = Vec::with_capacity(body.len());
        if let Some(report) = legacy_schema::stream_json(&mut out, schemas, def, text) {
            return shaped_answer(status, out, &report);
        }
    }
    // The common case (a success UPS's members go through as they are) is shaped from a
    // borrowed parse of UPS's bytes: no `Value` tree, no hashing.
    let borrowed = def.and_then(|def| {
        tree::with_arena(|arena| {
            let doc = legacy_schema::borrowed_success(arena, status, shape.service, &body)?;
            Some(match doc.member(root) {
                Some(content) => shaped(def, content, status),
                None => json_answer(status, body.clone(), None),
            })
        })
    });
    if let Some(answer) = borrowed {
        return answer;
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        let errors = rest_errors(&parsed, status);
        return json_answer(status, Bytes::from(fault(&errors).to_string()), None);
    }
    let doc = match services::from_rest(shape, &parsed) {
        Converted::Unchanged => parsed,
        Converted::Json(v) => v,
        Converted::Errors(e) => return json_answer(400, Bytes::from(fault(&e).to_string()), None),
    };
    match (def, doc.member(root)) {
        // Shaped like the XOLTWS answer the client was written against: only its members,
        // in its order (a typed client rejects a member its model lacks).
        (Some(def), Some(content)) => shaped(def, content, status),
        // No schema for this service (Locator, QuantumView): UPS's answer as it is.
        _ => json_answer(status, body, None),
    }
}

/// `{"<Root>": …}` written by the root's XOLTWS schema.
fn shaped<N: Node>(def: &RootDef, content: &N, status: u16) -> Answer {
    let mut out = Vec::with_capacity(2048);
    let report = legacy_schema::write_json(&mut out, legacy_schema::schemas(), def, content);
    shaped_answer(status, out, &report)
}

fn shaped_answer(status: u16, body: Vec<u8>, report: &legacy_schema::Shaped) -> Answer {
    let mut a = json_answer(status, Bytes::from(body), None);
    a.dropped_fields = report.dropped;
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::CannedUps;

    fn sent(p: Parsed) -> (RestCall, Option<Bytes>) {
        CannedUps::sent(p)
    }

    const RATE: &str = r#"{"UPSSecurity":{"UsernameToken":{"Username":"legacyuser","Password":"legacypass"},"ServiceAccessToken":{"AccessLicenseNumber":"ACCESSKEY123"}},
 "RateRequest": {"Request":{"RequestOption":"Shop"},  "Shipment":{"Shipper":{"ShipperNumber":"9Y9Y9Y"}}}}"#;

    #[test]
    fn security_member_is_cut_and_every_other_byte_kept() {
        let p = parse(RATE.as_bytes()).unwrap();
        assert_eq!(p.credentials.access_key, "ACCESSKEY123");
        assert_eq!(p.credentials.user_id, "legacyuser");
        assert_eq!(p.credentials.password.expose(), "legacypass");
        let (call, body) = sent(p);
        assert_eq!(call.path_and_query, "/api/rating/v2409/Shop");
        assert_eq!(
            std::str::from_utf8(&body.unwrap()).unwrap(),
            "{\n \"RateRequest\": {\"Request\":{\"RequestOption\":\"Shop\"},  \"Shipment\":{\"Shipper\":{\"ShipperNumber\":\"9Y9Y9Y\"}}}}"
        );
    }

    /// The one-pass reading of the common request gives what the full reading gives, and
    /// leaves every other body to it.
    #[test]
    fn the_common_reading_agrees_with_the_full_one() {
        let common = [
            RATE.to_string(),
            r#"{"RateRequest":{"Shipment":{},"Request":{"RequestOption":"Rate"},"Request":{"RequestOption":"Shop"}},"UPSSecurity":{"UsernameToken":{"Username":"u","Password":"p"},"ServiceAccessToken":{"AccessLicenseNumber":"K"}}}"#.into(),
            r#"{ "Security" : {"UsernameToken":{"Username":" u ","Password":"p\u0041"},"UPSServiceAccessToken":{"AccessLicenseNumber":"K"}} ,"ShipmentRequest":{"Shipment":{"Description":"a\"b"}}}"#.into(),
            r#"{"RateRequest":{"Request":{"RequestOption":"Rate"}}}"#.into(),
        ];
        for body in &common {
            let one = parse_common(body).unwrap_or_else(|| panic!("not common: {body}"));
            let full = parse_in_full(body.as_bytes()).unwrap();
            let (a, b) = (&one.credentials, &full.credentials);
            assert_eq!(
                (&a.access_key, &a.user_id, a.password.expose()),
                (&b.access_key, &b.user_id, b.password.expose()),
                "{body}"
            );
            let (one_call, one_body) = sent(one);
            let (full_call, full_body) = sent(full);
            assert_eq!(one_call.path_and_query, full_call.path_and_query, "{body}");
            assert_eq!(one_body, full_body, "{body}");
        }
        let others = [
            r#"{"UPSSecurity":{},"UPSSecurity":{},"RateRequest":{}}"#,
            r#"{"UPSSecurity":{},"Security":{},"RateRequest":{}}"#,
            r#"{"UPS\u0053ecurity":{},"RateRequest":{}}"#,
            r#"{"UPSSecurity":{},"RateRequest":"x"}"#,
            r#"{"UPSSecurity":{},"RateRequest":{"Request":null}}"#,
            r#"{"UPSSecurity":{},"VoidShipmentRequest":{"VoidShipment":{"ShipmentIdentificationNumber":"1Z"}}}"#,
            r#"{"UPSSecurity":{},"FooRequest":{}}"#,
            r#"[1]"#,
        ];
        for body in others {
            assert!(parse_common(body).is_none(), "{body}");
        }
    }

    #[test]
    fn security_last_and_older_shape() {
        let body = r#"{"XAVRequest":{"AddressKeyFormat":{"AddressLine":"5 Oak Ave","CountryCode":"US"}} , "Security":{"UsernameToken":{"Username":"u","Password":"p"},"UPSServiceAccessToken":{"AccessLicenseNumber":"K"}}}"#;
        let p = parse(body.as_bytes()).unwrap();
        assert_eq!(p.credentials.access_key, "K");
        let (call, body) = sent(p);
        assert_eq!(call.path_and_query, "/api/addressvalidation/v2/1");
        assert!(!String::from_utf8(body.unwrap().to_vec())
            .unwrap()
            .contains("Security"));
    }

    #[test]
    fn nulls_are_dropped_by_rebuilding() {
        let body = r#"{"UPSSecurity":{},"ShipmentRequest":{"Shipment":{"Package":{"Dimensions":{"Height":null}}}}}"#;
        let (_, body) = sent(parse(body.as_bytes()).unwrap());
        assert_eq!(
            std::str::from_utf8(&body.unwrap()).unwrap(),
            r#"{"ShipmentRequest":{"Shipment":{"Package":{"Dimensions":{}}}}}"#
        );
    }

    #[test]
    fn bad_bodies_are_specific_failures() {
        assert!(matches!(parse(b"  "), Err(Failure::Empty)));
        assert!(matches!(parse(b"{\"a\":"), Err(Failure::Malformed(_))));
        assert!(matches!(parse(b"[1]"), Err(Failure::Malformed(_))));
        let p = parse(br#"{"UPSSecurity":{},"FooRequest":{}}"#).unwrap();
        assert!(matches!(p.request, Err(Failure::UnknownService(_))));
    }

    #[test]
    fn rest_errors_become_a_fault() {
        let mut ups = CannedUps::new(
            400,
            &br#"{"response":{"errors":[{"code":"111210","message":"bad"}]}}"#[..],
        );
        let a = ups.run(parse(RATE.as_bytes()).unwrap().request).unwrap();
        let v: Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(a.status, 400);
        assert_eq!(
            v["Fault"]["detail"]["Errors"]["ErrorDetail"]["PrimaryErrorCode"]["Code"],
            "111210"
        );
        assert_eq!(
            v["Fault"]["detail"]["Errors"]["ErrorDetail"]["Severity"],
            "Hard"
        );
    }
}

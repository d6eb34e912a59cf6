//! XOLTWS request objects (`RateRequest`, `TrackRequest`, …, as legacy JSON and
//! SOAP clients send them) → the REST call, and REST answers → XOLTWS answers.
//!
//! Most services keep the XOLTWS names in REST, so the request object is sent
//! as is (the legacy-JSON dialect even keeps its bytes). The exceptions live
//! here: request options and ids that move into the path or query, Void and
//! Track that lose their body, TimeInTransit and Tracking whose REST schemas
//! are camelCase and must be rebuilt both ways.

use http::Method;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Map, Value};

pub use super::request_member::RequestMember;
use super::{json_text, Failure, Severity, UpsError};
use crate::rest::{self, rating_option};
use crate::substring::trim;

/// Characters kept verbatim in a path segment or query value built from request data.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

pub use crate::rest::{RestBody, RestCall, Service};

/// What the answer conversion needs to remember from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerShape {
    pub service: Service,
    pub customer_context: Option<String>,
    /// Track: return every activity (`RequestOption` `1`/`activity`) or only the latest.
    pub all_activity: bool,
}

fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    at(v, pointer)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `v.pointer(path)` without its allocations: `Value::pointer` builds two `String`s per
/// step to unescape `~0` and `~1`, which none of our constant paths has. Every rate reads
/// two of these.
fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    debug_assert!(path.starts_with('/') && !path.contains('~'), "{path}");
    path.split('/').skip(1).try_fold(v, |v, step| match v {
        Value::Object(m) => m.get(step),
        Value::Array(a) => step.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// A value that may be a string, a `{"Value": …}` wrapper or a one-element array of either.
fn first_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !trim(s).is_empty() => Some(trim(s).to_string()),
        Value::Array(a) => first_text(a.first()),
        Value::Object(o) => first_text(o.get("Value")),
        _ => None,
    }
}

/// The items of a value that may be one item, an array of them, absent or null.
pub fn as_list(v: Option<&Value>) -> Vec<&Value> {
    match v {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a.iter().collect(),
        Some(one) => vec![one],
    }
}

/// Whether [`to_rest`] reads nothing of a `service` request but its `Request` member, and
/// sends the body unchanged: then a caller holding the body as text need not build a tree of
/// the rest of it (the shipment, most of the bytes).
pub fn reads_request_member_only(service: Service) -> bool {
    matches!(
        service,
        Service::Rate
            | Service::Ship
            | Service::PickupRate
            | Service::PickupServiceCenters
            | Service::Locator
            | Service::QuantumView
    )
}

/// Map a XOLTWS request object to its REST call.
pub fn to_rest(service: Service, req: &Value) -> Result<(RestCall, AnswerShape), Failure> {
    let member = RequestMember::of(req);
    if let Some(rest) = to_rest_of_member(service, &member) {
        return rest;
    }
    let shape = shape_of(service, &member);
    let post = Method::POST;
    let rest = match service {
        Service::Rate
        | Service::Ship
        | Service::PickupRate
        | Service::PickupServiceCenters
        | Service::Locator
        | Service::QuantumView => unreachable!("to_rest_of_member reads these"),
        Service::Void => {
            let id = first_text(req.pointer("/VoidShipment/ShipmentIdentificationNumber"))
                .or_else(|| first_text(req.get("ShipmentIdentificationNumber")))
                .ok_or(Failure::MissingField(
                    "VoidShipment/ShipmentIdentificationNumber",
                ))?;
            let numbers: Vec<String> = as_list(req.pointer("/VoidShipment/TrackingNumber"))
                .into_iter()
                .filter_map(|v| first_text(Some(v)))
                .collect();
            let query = match numbers.as_slice() {
                [] => String::new(),
                [one] => format!("?trackingnumber={}", seg(one)),
                many => format!(
                    "?trackingnumber={}",
                    seg(&serde_json::to_string(many).expect("strings serialize"))
                ),
            };
            call(
                Method::DELETE,
                format!(
                    "/api/shipments/{}/void/cancel/{}{query}",
                    rest::SHIPPING,
                    seg(&id)
                ),
                RestBody::None,
            )
        }
        Service::Track => {
            let option = member.option().unwrap_or("0").to_ascii_lowercase();
            let n = first_text(req.get("InquiryNumber"))
                .or_else(|| first_text(req.get("TrackingNumber")))
                .ok_or(Failure::MissingField("TrackRequest/InquiryNumber"))?;
            return Ok((
                call(
                    Method::GET,
                    format!("/api/track/{}/details/{}", rest::TRACKING, seg(&n)),
                    RestBody::None,
                ),
                AnswerShape {
                    all_activity: option != "0" && option != "none",
                    ..shape
                },
            ));
        }
        Service::TimeInTransit => call(
            post,
            format!("/api/shipments/{}/transittimes", rest::TIME_IN_TRANSIT),
            RestBody::Json(tnt_request(req)?),
        ),
        Service::Xav => {
            let option = member.option().unwrap_or("1");
            if !matches!(option, "1" | "2" | "3") {
                return Err(Failure::MissingField(
                    "XAVRequest/Request/RequestOption (1, 2 or 3)",
                ));
            }
            let mut query = vec![];
            if let Some(n) = text(req, "/MaximumListSize") {
                query.push(format!("maximumcandidatelistsize={}", seg(n)));
            }
            if req.get("RegionalRequestIndicator").is_some() {
                query.push("regionalrequestindicator=true".to_string());
            }
            let mut akf = req
                .get("AddressKeyFormat")
                .cloned()
                .ok_or(Failure::MissingField("XAVRequest/AddressKeyFormat"))?;
            for a in match &mut akf {
                Value::Array(list) => list.iter_mut().collect::<Vec<_>>(),
                one => vec![one],
            } {
                if let Some(o) = a.as_object_mut() {
                    o.shift_remove("BuildingName");
                    if let Some(line) = o.get_mut("AddressLine") {
                        if !line.is_array() {
                            *line = Value::Array(vec![line.take()]);
                        }
                    }
                }
            }
            let q = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            call(
                post,
                format!("/api/addressvalidation/v2/{option}{q}"),
                RestBody::Json(json!({"XAVRequest": {"AddressKeyFormat": akf}})),
            )
        }
        Service::PickupCreation => {
            let mut body = req.clone();
            if let Some(r) = body.get_mut("Request").and_then(Value::as_object_mut) {
                r.shift_remove("RequestOption");
            }
            call(
                post,
                format!("/api/pickupcreation/{}/pickup", rest::PICKUP),
                RestBody::Json(json!({"PickupCreationRequest": body})),
            )
        }
        Service::PickupCancel => {
            let by = text(req, "/CancelBy").unwrap_or("02");
            let mut c = call(
                Method::DELETE,
                format!("/api/shipments/{}/pickup/{}", rest::PICKUP, seg(by)),
                RestBody::None,
            );
            if let Some(prn) = text(req, "/PRN") {
                c.headers.push(("Prn", prn.to_string()));
            }
            c
        }
        Service::PickupPendingStatus => {
            let kind = text(req, "/PickupType").unwrap_or("01");
            let mut c = call(
                Method::GET,
                format!("/api/shipments/{}/pickup/{}", rest::PICKUP, seg(kind)),
                RestBody::None,
            );
            if let Some(n) = text(req, "/AccountNumber") {
                c.headers.push(("AccountNumber", n.to_string()));
            }
            c
        }
        Service::PickupPoliticalDivision1 => {
            let country = text(req, "/CountryCode").ok_or(Failure::MissingField(
                "PickupGetPoliticalDivision1ListRequest/CountryCode",
            ))?;
            call(
                Method::GET,
                format!("/api/pickup/{}/countries/{}", rest::PICKUP, seg(country)),
                RestBody::None,
            )
        }
        Service::LabelRecovery => {
            let mut body = req.clone();
            if let Some(o) = body.as_object_mut() {
                if !o.contains_key("TrackingNumbers") {
                    if let Some(n) = o.get("TrackingNumber").cloned() {
                        o.insert("TrackingNumbers".into(), Value::Array(vec![n]));
                    }
                }
            }
            call(
                post,
                format!("/api/labels/{}/recovery", rest::LABEL_RECOVERY),
                RestBody::Json(json!({"LabelRecoveryRequest": body})),
            )
        }
    };
    Ok((rest, shape))
}

/// [`to_rest`] of a request whose service [`reads_request_member_only`], from that member
/// alone; `None` for any other service.
pub fn to_rest_of_member(
    service: Service,
    member: &RequestMember<'_>,
) -> Option<Result<(RestCall, AnswerShape), Failure>> {
    let post = |path: String| call(Method::POST, path, RestBody::Unchanged);
    let rest = match service {
        Service::Rate => {
            let Some(option) = rating_option(member.option().unwrap_or("Rate")) else {
                return Some(Err(Failure::MissingField(
                    "RateRequest/Request/RequestOption",
                )));
            };
            // Rates and shipments are most calls: their paths are joined, not formatted.
            post(["/api/rating/", rest::RATING, "/", option].concat())
        }
        Service::Ship => post(["/api/shipments/", rest::SHIPPING, "/ship"].concat()),
        Service::PickupRate => post(format!("/api/shipments/{}/pickup/oncall", rest::PICKUP)),
        Service::PickupServiceCenters => post(format!(
            "/api/pickup/{}/servicecenterlocations",
            rest::PICKUP
        )),
        Service::Locator => post(format!(
            "/api/locations/{}/search/availabilities/{}",
            rest::LOCATOR,
            seg(member.option().unwrap_or("1"))
        )),
        Service::QuantumView => post(format!("/api/quantumview/{}/events", rest::QUANTUM_VIEW)),
        _ => return None,
    };
    Some(Ok((rest, shape_of(service, member))))
}

/// A REST call without extra headers.
fn call(method: Method, path_and_query: String, body: RestBody) -> RestCall {
    RestCall {
        method,
        path_and_query,
        body,
        headers: vec![],
    }
}

fn shape_of(service: Service, member: &RequestMember<'_>) -> AnswerShape {
    AnswerShape {
        service,
        customer_context: member.customer_context().map(str::to_string),
        all_activity: false,
    }
}

// ---- TimeInTransit (REST is flat camelCase) ---------------------------------------------------

fn yyyymmdd_to_iso(d: &str) -> Option<String> {
    let d = d.trim();
    (d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..]))
}

fn hhmm_to_iso(t: &str) -> Option<String> {
    let t = t.trim();
    if !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match t.len() {
        4 => Some(format!("{}:{}:00", &t[..2], &t[2..])),
        6 => Some(format!("{}:{}:{}", &t[..2], &t[2..4], &t[4..])),
        _ => None,
    }
}

fn number(s: Option<&str>) -> Option<Value> {
    let s = s?;
    if let Ok(i) = s.parse::<i64>() {
        return Some(Value::from(i));
    }
    s.parse::<f64>().ok().map(Value::from)
}

/// XOLTWS `TimeInTransitRequest` (SOAP/legacy JSON shape) → REST transit-times body.
fn tnt_request(req: &Value) -> Result<Value, Failure> {
    let mut out = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            out.insert(k.to_string(), v);
        }
    };
    let s = |p: &str| text(req, p).map(|s| Value::String(s.to_string()));
    for (side, from) in [("origin", "ShipFrom"), ("destination", "ShipTo")] {
        let a = |f: &str| s(&format!("/{from}/Address/{f}"));
        put(&format!("{side}CountryCode"), a("CountryCode"));
        put(&format!("{side}StateProvince"), a("StateProvinceCode"));
        put(&format!("{side}CityName"), a("City"));
        put(&format!("{side}TownName"), a("Town"));
        put(&format!("{side}PostalCode"), a("PostalCode"));
    }
    put(
        "residentialIndicator",
        Some(json!(if req
            .pointer("/ShipTo/Address/ResidentialAddressIndicator")
            .is_some()
        {
            "01"
        } else {
            "02"
        })),
    );
    put(
        "shipDate",
        text(req, "/Pickup/Date")
            .and_then(yyyymmdd_to_iso)
            .map(Value::from),
    );
    put(
        "shipTime",
        text(req, "/Pickup/Time")
            .and_then(hhmm_to_iso)
            .map(Value::from),
    );
    put("weight", number(text(req, "/ShipmentWeight/Weight")));
    put(
        "weightUnitOfMeasure",
        s("/ShipmentWeight/UnitOfMeasurement/Code"),
    );
    put(
        "shipmentContentsValue",
        number(text(req, "/InvoiceLineTotal/MonetaryValue")),
    );
    put(
        "shipmentContentsCurrencyCode",
        s("/InvoiceLineTotal/CurrencyCode"),
    );
    put(
        "billType",
        Some(json!(if req.get("DocumentsOnlyIndicator").is_some() {
            "02"
        } else {
            "03"
        })),
    );
    put(
        "numberOfPackages",
        number(text(req, "/TotalPackagesInShipment")),
    );
    put("maxList", number(text(req, "/MaximumListSize")));
    if !out.contains_key("originCountryCode") || !out.contains_key("destinationCountryCode") {
        return Err(Failure::MissingField(
            "ShipFrom/Address/CountryCode and ShipTo/Address/CountryCode",
        ));
    }
    Ok(Value::Object(out))
}

fn iso_to_yyyymmdd(d: &str) -> String {
    d.replace('-', "")
}

fn iso_to_hhmmss(t: &str) -> String {
    t.replace(':', "")
}

/// One item → the item; several → an array (the legacy single-item collapse).
pub fn collapse(mut items: Vec<Value>) -> Value {
    if items.len() == 1 {
        items.pop().expect("one item")
    } else {
        Value::Array(items)
    }
}

fn response_header(shape: &AnswerShape) -> Value {
    let mut r = json!({"ResponseStatus": {"Code": "1", "Description": "Success"}});
    if let Some(c) = &shape.customer_context {
        r["TransactionReference"] = json!({"CustomerContext": c});
    }
    r
}

/// REST `emsResponse` → XOLTWS `TimeInTransitResponse`: the one TimeInTransit converter
/// (the old-XML answer is built from this one, `oldxml::tnt_answer`).
pub fn tnt_answer(shape: &AnswerShape, rest: &Value) -> Value {
    let ems = rest.get("emsResponse").cloned().unwrap_or(Value::Null);
    let t = |k: &str| json_text(ems.get(k));
    let address = |side: &str| {
        json!({"Address": {
            "City": t(&format!("{side}CityName")),
            "StateProvinceCode": t(&format!("{side}StateProvince")),
            "CountryCode": t(&format!("{side}CountryCode")),
            "Country": t(&format!("{side}CountryName")),
            "PostalCode": t(&format!("{side}PostalCode")),
        }})
    };
    let services: Vec<Value> = as_list(ems.get("services"))
        .into_iter()
        .map(|s| {
            let st = |k: &str| json_text(s.get(k));
            let mut summary = json!({
                "Service": {"Code": st("serviceLevel"), "Description": st("serviceLevelDescription")},
                "EstimatedArrival": {
                    "Arrival": {"Date": iso_to_yyyymmdd(&st("deliveryDate")), "Time": iso_to_hhmmss(&st("deliveryTime"))},
                    "BusinessDaysInTransit": st("businessTransitDays"),
                    "Pickup": {"Date": iso_to_yyyymmdd(&st("pickupDate")), "Time": iso_to_hhmmss(&st("pickupTime"))},
                    "DayOfWeek": st("deliveryDayOfWeek"),
                    "CustomerCenterCutoff": iso_to_hhmmss(&st("cstccutoffTime")),
                    "DelayCount": st("delayCount"),
                    "HolidayCount": st("holidayCount"),
                    "RestDays": st("restDaysCount"),
                    "TotalTransitDays": st("totalTransitDays"),
                },
                "SaturdayDelivery": if st("saturdayDeliveryDate").is_empty() { "0" } else { "1" },
            });
            if matches!(st("guaranteeIndicator").as_str(), "1" | "Y") {
                summary["GuaranteedIndicator"] = json!("");
            }
            summary
        })
        .collect();
    let mut transit = json!({
        "ShipFrom": address("origin"),
        "ShipTo": address("destination"),
        "PickupDate": iso_to_yyyymmdd(&t("shipDate")),
        "ShipmentWeight": {"UnitOfMeasurement": {"Code": t("weightUnitOfMeasure")}, "Weight": t("weight")},
        "ServiceSummary": collapse(services),
        "Disclaimer": "All services are guaranteed if shipment is delivered within the time shown. Services listed as guaranteed are backed by a money-back guarantee for transportation charges only.",
    });
    if !t("shipmentContentsValue").is_empty() {
        transit["InvoiceLineTotal"] = json!({"CurrencyCode": t("shipmentContentsCurrencyCode"), "MonetaryValue": t("shipmentContentsValue")});
    }
    json!({"TimeInTransitResponse": {"Response": response_header(shape), "TransitResponse": transit}})
}

// ---- Tracking (REST is camelCase) --------------------------------------------------------------
//
// One converter: REST `trackResponse` → XOLTWS `TrackResponse` (what SOAP and legacy-JSON
// clients read). The old-XML answer is built from this one (`oldxml::track_answer`). Every
// field below is filled when REST carries it; `docs/answers.md` lists the sources and the
// fields REST cannot supply.

/// XOLTWS `Address` from a REST tracking address (`addressLine1..3` → `AddressLine[]`).
pub fn track_address(a: Option<&Value>) -> Value {
    let a = a.unwrap_or(&Value::Null);
    let t = |k: &str| json_text(a.get(k));
    let mut out = Map::new();
    let lines: Vec<Value> = ["addressLine1", "addressLine2", "addressLine3"]
        .iter()
        .map(|k| t(k))
        .filter(|l| !l.trim().is_empty())
        .map(Value::String)
        .collect();
    if !lines.is_empty() {
        out.insert("AddressLine".into(), Value::Array(lines));
    }
    out.insert("City".into(), json!(t("city")));
    out.insert("StateProvinceCode".into(), json!(t("stateProvince")));
    out.insert("PostalCode".into(), json!(t("postalCode")));
    let country = if t("countryCode").is_empty() {
        t("country")
    } else {
        t("countryCode")
    };
    out.insert("CountryCode".into(), json!(country));
    Value::Object(out)
}

/// The shipper number inside a 1Z tracking number (`1Z` + 6 characters of shipper number).
pub fn shipper_number_of(tracking: &str) -> Option<&str> {
    let t = tracking.trim();
    (t.len() == 18 && t[..2].eq_ignore_ascii_case("1Z") && t.is_ascii()).then(|| &t[2..8])
}

/// REST `referenceNumber[]` items of one level (`SHIPMENT` or `PACKAGE`) → XOLTWS
/// `ReferenceNumber[]` (`Code` `01`: UPS's generic reference code; REST gives no code).
fn references(package: &Value, level: &str) -> Vec<Value> {
    as_list(package.get("referenceNumber"))
        .into_iter()
        .filter(|r| json_text(r.get("type")).eq_ignore_ascii_case(level))
        .map(|r| json!({"Code": "01", "Value": json_text(r.get("number"))}))
        .collect()
}

/// REST `deliveryDate[]` (+ `deliveryTime`) → XOLTWS `DeliveryDetail[]`.
fn delivery_details(package: &Value) -> Vec<Value> {
    let time = package.get("deliveryTime").unwrap_or(&Value::Null);
    as_list(package.get("deliveryDate"))
        .into_iter()
        .map(|d| {
            let kind = json_text(d.get("type"));
            let (code, desc) = match kind.as_str() {
                "SDD" => ("03", "Scheduled Delivery"),
                "RDD" => ("02", "Rescheduled Delivery"),
                _ => ("01", "Delivered"),
            };
            let mut detail = json!({"Type": {"Code": code, "Description": desc}, "Date": json_text(d.get("date"))});
            if json_text(time.get("type")) == kind {
                let t = json_text(time.get("endTime"));
                if !t.is_empty() {
                    detail["Time"] = json!(t);
                }
            }
            detail
        })
        .collect()
}

/// The date the package was picked up: the oldest pickup scan (status type `P`), else the
/// oldest scan by UPS (anything but the manifest-only `M`). REST has no pickup date field.
fn pickup_date(activities: &[&Value]) -> Option<String> {
    let date = |a: &&Value| json_text(a.get("date"));
    let kind = |a: &&Value| json_text(a.pointer("/status/type"));
    activities
        .iter()
        .filter(|a| kind(a) == "P")
        .min_by_key(|a| date(a))
        .or_else(|| {
            activities
                .iter()
                .filter(|a| kind(a) != "M")
                .min_by_key(|a| date(a))
        })
        .map(date)
        .filter(|d| !d.is_empty())
}

/// REST `trackResponse` → XOLTWS `TrackResponse`, or the legacy "not found" error.
pub fn track_answer(shape: &AnswerShape, rest: &Value) -> Result<Value, Vec<UpsError>> {
    let shipment = rest
        .pointer("/trackResponse/shipment/0")
        .cloned()
        .unwrap_or(Value::Null);
    let Some(package) = shipment.pointer("/package/0") else {
        let why = shipment
            .pointer("/warnings/0/message")
            .and_then(Value::as_str)
            .unwrap_or("No tracking information available");
        return Err(vec![UpsError::new("151044", why, Severity::Hard)]);
    };
    let tracking = json_text(package.get("trackingNumber"));
    let activities = as_list(package.get("activity"));
    let delivered_at = package.get("deliveryInformation");
    let mut activity: Vec<Value> = activities
        .iter()
        .map(|a| {
            let status = a.get("status").unwrap_or(&Value::Null);
            let delivered = json_text(status.get("type")) == "D";
            let mut location = json!({"Address": track_address(a.pointer("/location/address"))});
            if delivered {
                if let Some(d) = delivered_at {
                    let place = json_text(d.get("location"));
                    if !place.is_empty() {
                        location["Description"] = json!(place);
                    }
                    let by = json_text(d.get("receivedBy"));
                    if !by.is_empty() {
                        location["SignedForByName"] = json!(by);
                    }
                }
            }
            let mut out = json!({
                "ActivityLocation": location,
                "Status": {
                    "Type": json_text(status.get("type")),
                    "Description": json_text(status.get("description")),
                    "Code": json_text(status.get("code")),
                },
                "Date": json_text(a.get("date")),
                "Time": json_text(a.get("time")),
            });
            for (rest_key, legacy) in [
                ("gmtDate", "GMTDate"),
                ("gmtTime", "GMTTime"),
                ("gmtOffset", "GMTOffset"),
            ] {
                let v = json_text(a.get(rest_key));
                if !v.is_empty() {
                    out[legacy] = json!(v);
                }
            }
            out
        })
        .collect();
    if !shape.all_activity {
        activity.truncate(1);
    }
    let weight = package.get("weight").map(|w| {
        json!({"UnitOfMeasurement": {"Code": json_text(w.get("unitOfMeasurement"))}, "Weight": json_text(w.get("weight"))})
    });
    let delivered = json_text(package.pointer("/currentStatus/type")) == "D"
        || activities
            .iter()
            .any(|a| json_text(a.pointer("/status/type")) == "D");
    let details = delivery_details(package);

    let mut pkg = Map::new();
    pkg.insert("TrackingNumber".into(), json!(tracking));
    pkg.insert(
        "DeliveryIndicator".into(),
        json!(if delivered { "Y" } else { "N" }),
    );
    if !details.is_empty() {
        pkg.insert("DeliveryDetail".into(), collapse(details.clone()));
    }
    if !activity.is_empty() {
        pkg.insert("Activity".into(), collapse(activity));
    }
    if let Some(w) = &weight {
        pkg.insert("PackageWeight".into(), w.clone());
    }
    let package_refs = references(package, "PACKAGE");
    if !package_refs.is_empty() {
        pkg.insert("ReferenceNumber".into(), collapse(package_refs));
    }

    let mut ship = Map::new();
    ship.insert(
        "InquiryNumber".into(),
        json!({"Code": "01", "Description": "ShipmentIdentificationNumber", "Value": json_text(shipment.get("inquiryNumber"))}),
    );
    ship.insert(
        "ShipmentType".into(),
        json!({"Code": "01", "Description": "Small Package"}),
    );
    if let Some(n) = shipper_number_of(&tracking) {
        ship.insert("ShipperNumber".into(), json!(n));
    }
    let mut addresses = vec![];
    for a in as_list(package.get("packageAddress")) {
        let (code, desc) = match json_text(a.get("type")).to_ascii_uppercase().as_str() {
            "ORIGIN" | "SHIPPER" => ("01", "Shipper Address"),
            "DESTINATION" => ("02", "ShipTo Address"),
            _ => continue,
        };
        addresses.push(json!({
            "Type": {"Code": code, "Description": desc},
            "Address": track_address(a.get("address")),
        }));
    }
    if !addresses.is_empty() {
        ship.insert("ShipmentAddress".into(), collapse(addresses));
    }
    if let Some(w) = weight {
        ship.insert("ShipmentWeight".into(), w);
    }
    if let Some(s) = package.get("service") {
        ship.insert(
            "Service".into(),
            json!({"Code": json_text(s.get("code")), "Description": json_text(s.get("description"))}),
        );
    }
    let shipment_refs = references(package, "SHIPMENT");
    if !shipment_refs.is_empty() {
        ship.insert("ReferenceNumber".into(), collapse(shipment_refs));
    }
    if let Some(s) = package.get("currentStatus") {
        ship.insert(
            "CurrentStatus".into(),
            json!({"Code": json_text(s.get("code")), "Description": json_text(s.get("description"))}),
        );
    }
    if let Some(d) = pickup_date(&activities) {
        ship.insert("PickupDate".into(), json!(d));
    }
    if !details.is_empty() {
        ship.insert("DeliveryDetail".into(), collapse(details));
    }
    ship.insert("Package".into(), Value::Object(pkg));
    Ok(json!({"TrackResponse": {"Response": response_header(shape), "Shipment": ship}}))
}

/// What to send back for a successful (2xx) REST answer.
pub enum Converted {
    /// The REST answer is already the XOLTWS answer: send its bytes.
    Unchanged,
    /// A rebuilt XOLTWS answer.
    Json(Value),
    /// A 2xx that is an error in legacy terms (Track "not found").
    Errors(Vec<UpsError>),
}

/// Turn a successful REST answer into the XOLTWS answer for `shape`.
/// Whether [`from_rest`] hands every answer of `service` back unchanged, so its answers
/// can be shaped straight from a borrowed parse of UPS's bytes.
pub fn answer_is_unchanged(service: Service) -> bool {
    !matches!(
        service,
        Service::Track | Service::TimeInTransit | Service::Void
    )
}

pub fn from_rest(shape: &AnswerShape, rest: &Value) -> Converted {
    match shape.service {
        Service::Track => match track_answer(shape, rest) {
            Ok(v) => Converted::Json(v),
            Err(e) => Converted::Errors(e),
        },
        Service::TimeInTransit => Converted::Json(tnt_answer(shape, rest)),
        Service::Void => match rest.pointer("/VoidShipmentResponse/PackageLevelResults") {
            // REST pluralised the XOLTWS element (`PackageLevelResult`, repeated).
            Some(results) => {
                let mut v = rest.clone();
                if let Some(o) = v["VoidShipmentResponse"].as_object_mut() {
                    o.insert("PackageLevelResult".into(), results.clone());
                    o.shift_remove("PackageLevelResults");
                }
                Converted::Json(v)
            }
            None => Converted::Unchanged,
        },
        _ => Converted::Unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rest(root: &str, v: Value) -> RestCall {
        to_rest(Service::from_request_root(root).unwrap(), &v)
            .unwrap()
            .0
    }

    #[test]
    fn at_finds_what_a_json_pointer_finds() {
        let v = json!({"A": {"B": [{"C": "x"}, 2], "": {"D": 1}}, "E": null});
        for path in [
            "/A", "/A/B", "/A/B/0/C", "/A/B/1", "/A/B/2", "/A//D", "/E", "/E/F", "/Z",
        ] {
            assert_eq!(at(&v, path), v.pointer(path), "{path}");
        }
    }

    #[test]
    fn services_read_from_the_request_member_alone_need_nothing_else() {
        let full = json!({
            "Request": {"RequestOption": "Shop", "TransactionReference": {"CustomerContext": "c-1"}},
            "Shipment": {"Shipper": {"ShipperNumber": "9Y9Y9Y"}, "Package": {"PackagingType": {"Code": "02"}}},
            "PickupAddress": {"CountryCode": "US"}, "OriginAddress": {"PhoneNumber": "1"},
            "SubscriptionRequest": {"Name": "n"}
        });
        let request_only = json!({"Request": full["Request"].clone()});
        for root in [
            "RateRequest",
            "ShipmentRequest",
            "PickupRateRequest",
            "PickupGetServiceCenterFacilitiesRequest",
            "LocatorRequest",
            "QuantumViewRequest",
        ] {
            let service = Service::from_request_root(root).unwrap();
            assert!(reads_request_member_only(service), "{root}");
            let member = RequestMember::of(&request_only);
            let (from_member, _) = to_rest_of_member(service, &member).unwrap().unwrap();
            let (a, shape_a) = to_rest(service, &full).unwrap();
            let (b, shape_b) = to_rest(service, &request_only).unwrap();
            assert_eq!(a, b, "{root}");
            assert_eq!(a, from_member, "{root}");
            assert_eq!(a.body, RestBody::Unchanged, "{root}");
            assert_eq!(shape_a.customer_context, shape_b.customer_context);
        }
        // Every other service reads more than its `Request` member.
        for root in [
            "VoidShipmentRequest",
            "TrackRequest",
            "TimeInTransitRequest",
            "XAVRequest",
            "PickupCreationRequest",
            "PickupCancelRequest",
            "PickupPendingStatusRequest",
            "PickupGetPoliticalDivision1ListRequest",
            "LabelRecoveryRequest",
        ] {
            let service = Service::from_request_root(root).unwrap();
            assert!(!reads_request_member_only(service), "{root}");
            assert!(
                to_rest_of_member(service, &RequestMember::default()).is_none(),
                "{root}"
            );
        }
    }

    #[test]
    fn rate_option_goes_to_the_path() {
        let c = rest("RateRequest", json!({"Request": {"RequestOption": "shop"}}));
        assert_eq!(c.path_and_query, "/api/rating/v2409/Shop");
        assert_eq!(c.body, RestBody::Unchanged);
        let c = rest("RateRequest", json!({"Shipment": {}}));
        assert_eq!(c.path_and_query, "/api/rating/v2409/Rate");
    }

    #[test]
    fn void_moves_ids_to_path_and_query() {
        let c = rest(
            "VoidShipmentRequest",
            json!({"VoidShipment": {"ShipmentIdentificationNumber": "1Z9Y9Y9Y0000000001", "TrackingNumber": ["1ZA", "1ZB"]}}),
        );
        assert_eq!(c.method, Method::DELETE);
        assert_eq!(
            c.path_and_query,
            "/api/shipments/v2409/void/cancel/1Z9Y9Y9Y0000000001?trackingnumber=%5B%221ZA%22%2C%221ZB%22%5D"
        );
        assert_eq!(c.body, RestBody::None);
    }

    #[test]
    fn path_segments_from_request_data_are_encoded() {
        let c = rest("TrackRequest", json!({"InquiryNumber": "../../admin?x=1"}));
        assert_eq!(
            c.path_and_query,
            "/api/track/v1/details/..%2F..%2Fadmin%3Fx%3D1"
        );
    }

    #[test]
    fn xav_moves_option_and_list_size_and_makes_address_lines_arrays() {
        let c = rest(
            "XAVRequest",
            json!({"Request": {"RequestOption": "3"}, "MaximumListSize": "5",
                   "AddressKeyFormat": {"AddressLine": "5 Oak Ave", "BuildingName": "x", "CountryCode": "US"}}),
        );
        assert_eq!(
            c.path_and_query,
            "/api/addressvalidation/v2/3?maximumcandidatelistsize=5"
        );
        assert_eq!(
            c.body,
            RestBody::Json(
                json!({"XAVRequest": {"AddressKeyFormat": {"AddressLine": ["5 Oak Ave"], "CountryCode": "US"}}})
            )
        );
    }

    #[test]
    fn tnt_request_is_rebuilt_in_camel_case() {
        let c = rest(
            "TimeInTransitRequest",
            json!({"ShipFrom": {"Address": {"CountryCode": "US", "PostalCode": "19901"}},
                   "ShipTo": {"Address": {"CountryCode": "US", "PostalCode": "89501", "ResidentialAddressIndicator": ""}},
                   "Pickup": {"Date": "20260110", "Time": "1030"},
                   "ShipmentWeight": {"UnitOfMeasurement": {"Code": "LBS"}, "Weight": "3.5"}}),
        );
        let RestBody::Json(b) = c.body else { panic!() };
        assert_eq!(b["originPostalCode"], "19901");
        assert_eq!(b["residentialIndicator"], "01");
        assert_eq!(b["shipDate"], "2026-01-10");
        assert_eq!(b["shipTime"], "10:30:00");
        assert_eq!(b["weight"], json!(3.5));
    }

    #[test]
    fn track_answer_is_rebuilt_and_trimmed() {
        let shape = AnswerShape {
            service: Service::Track,
            customer_context: Some("c1".into()),
            all_activity: false,
        };
        let rest = json!({"trackResponse": {"shipment": [{"inquiryNumber": "1Z1", "package": [{
            "trackingNumber": "1Z1",
            "activity": [{"status": {"type": "D", "description": "DELIVERED", "code": "KB"}, "date": "20260101", "time": "101010",
                          "location": {"address": {"city": "Reno", "countryCode": "US"}}},
                         {"status": {"type": "I"}, "date": "20251231", "time": "090000"}]}]}]}});
        let Converted::Json(v) = from_rest(&shape, &rest) else {
            panic!()
        };
        let s = &v["TrackResponse"]["Shipment"];
        assert_eq!(s["InquiryNumber"]["Value"], "1Z1");
        assert_eq!(
            s["Package"]["Activity"]["Status"]["Description"],
            "DELIVERED"
        );
        assert_eq!(
            s["Package"]["Activity"]["ActivityLocation"]["Address"]["City"],
            "Reno"
        );
        assert_eq!(
            v["TrackResponse"]["Response"]["TransactionReference"]["CustomerContext"],
            "c1"
        );
    }

    #[test]
    fn track_not_found_is_an_error() {
        let shape = AnswerShape {
            service: Service::Track,
            customer_context: None,
            all_activity: true,
        };
        let rest = json!({"trackResponse": {"shipment": [{"warnings": [{"code": "TW0001", "message": "Tracking Information Not Found"}]}]}});
        let Converted::Errors(e) = from_rest(&shape, &rest) else {
            panic!()
        };
        assert_eq!(e[0].code, "151044");
        assert_eq!(e[0].description, "Tracking Information Not Found");
    }
}

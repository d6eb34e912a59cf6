//! Plausible UPS REST responses of each spec's shape (`/work/shared/ups-openapi`),
//! echoing the inputs (shipper number, tracking number, weights, addresses) so
//! tests can see that what the client sent reached "UPS". Everything derived
//! from input is deterministic; nothing here panics on odd input.

use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Map, Value};

use super::dates;
use super::dispatch::Req;
use super::reply::{self, ok, ups_error};
use super::state::Sim;

/// What a service handler gets.
pub struct Ctx<'a> {
    pub sim: &'a Sim,
    pub req: &'a Req,
    pub body: &'a Value,
    pub unapproved: &'a [String],
    /// Shippers for whom UPS silently leaves negotiated rates out.
    pub unverified: &'a [String],
}

/// A 1×1 GIF89a.
const TINY_GIF: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

// ---------------------------------------------------------------------------
// JSON helpers

/// The value at `path` below `v`.
fn at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(v, |cur, k| cur.get(*k))
}

/// A string or number as text.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn text_or(v: Option<&Value>, default: &str) -> String {
    text(v)
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// An object or an array of objects as a list (UPS collapses single items).
fn list(v: Option<&Value>) -> Vec<&Value> {
    match v {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => Vec::new(),
    }
}

/// One item → the item itself, several → an array (UPS's collapsing).
fn collapse(mut items: Vec<Value>) -> Value {
    if items.len() == 1 {
        items.pop().unwrap_or(Value::Null)
    } else {
        Value::Array(items)
    }
}

fn num(s: &str) -> f64 {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite() && *f >= 0.0)
        .map(|f| f.min(1.0e6))
        .unwrap_or(0.0)
}

/// A weight as UPS writes it: at least one decimal, at most two.
fn weight_str(w: f64) -> String {
    let mut s = format!("{w:.2}");
    while s.ends_with('0') && !s.ends_with(".0") {
        s.pop();
    }
    s
}

fn amount(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn money(cents: u64) -> Value {
    json!({"CurrencyCode": "USD", "MonetaryValue": amount(cents)})
}

/// The request root (`RateRequest`, …) or a 400 naming what is missing.
fn root<'v>(body: &'v Value, name: &str) -> Result<&'v Value, Box<Response>> {
    match body.get(name) {
        Some(v @ Value::Object(_)) => Ok(v),
        _ => Err(Box::new(ups_error(
            400,
            "10001",
            &format!("The request is not well formed: missing {name}"),
        ))),
    }
}

/// `Response` block: success, echoing `Request.TransactionReference.CustomerContext`.
fn response_block(request_root: &Value) -> Value {
    let mut r = Map::new();
    r.insert(
        "ResponseStatus".into(),
        json!({"Code": "1", "Description": "Success"}),
    );
    if let Some(cc) = text(at(
        request_root,
        &["Request", "TransactionReference", "CustomerContext"],
    )) {
        r.insert(
            "TransactionReference".into(),
            json!({ "CustomerContext": cc }),
        );
    }
    Value::Object(r)
}

/// FNV-1a, for deterministic numbers derived from text.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn require_trans_headers(req: &Req) -> Result<(), Box<Response>> {
    for h in ["transId", "transactionSrc"] {
        if req.header(h).is_none_or(|v| v.trim().is_empty()) {
            return Err(Box::new(ups_error(
                400,
                "10001",
                &format!("The request is not well formed: missing header {h}"),
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Services and charges

fn service_name(code: &str) -> String {
    match code {
        "01" => "UPS Next Day Air",
        "02" => "UPS 2nd Day Air",
        "03" => "UPS Ground",
        "07" => "UPS Worldwide Express",
        "08" => "UPS Worldwide Expedited",
        "11" => "UPS Standard",
        "12" => "UPS 3 Day Select",
        "13" => "UPS Next Day Air Saver",
        "14" => "UPS Next Day Air Early",
        "54" => "UPS Worldwide Express Plus",
        "59" => "UPS 2nd Day Air A.M.",
        "65" => "UPS Worldwide Saver",
        "93" => "UPS SurePost",
        _ => return format!("UPS Service {code}"),
    }
    .to_string()
}

fn is_ground(code: &str) -> bool {
    matches!(code, "03" | "11" | "93")
}

/// Business days in transit for a service.
fn transit_days(code: &str) -> u32 {
    match code {
        "01" | "13" | "14" | "07" | "54" => 1,
        "02" | "59" | "65" => 2,
        "12" => 3,
        "03" | "11" | "93" => 5,
        _ => 3,
    }
}

/// Price factor of a service, in percent of Ground.
fn service_factor(code: &str) -> u64 {
    match code {
        "03" | "11" | "93" => 100,
        "12" => 150,
        "02" => 200,
        "59" => 230,
        "13" => 260,
        "08" => 280,
        "01" => 300,
        "65" => 320,
        "07" => 350,
        "14" => 380,
        "54" => 420,
        _ => 180,
    }
}

/// Transportation charge of one package, in cents: deterministic from weight and service.
fn package_cents(weight: f64, code: &str) -> u64 {
    let base = 650.0 + weight * 95.0;
    (base * service_factor(code) as f64 / 100.0).round() as u64
}

fn uom_description(code: &str) -> &'static str {
    match code.to_ascii_uppercase().as_str() {
        "KGS" => "Kilograms",
        "OZS" => "Ounces",
        _ => "Pounds",
    }
}

/// A package's weight and unit, from `PackageWeight` (Rating, Shipping).
fn package_weight(pkg: &Value) -> (String, f64, String) {
    let raw = text_or(at(pkg, &["PackageWeight", "Weight"]), "0");
    let uom = text_or(
        at(pkg, &["PackageWeight", "UnitOfMeasurement", "Code"]),
        "LBS",
    );
    let w = num(&raw);
    (raw, w, uom)
}

struct Priced {
    packages: Vec<Value>,
    transport: u64,
    total_weight: f64,
    uom: String,
}

/// Price every package of a shipment for `code`.
fn price(packages: &[&Value], code: &str, with_weight_echo: bool) -> Priced {
    let mut out = Vec::new();
    let mut transport = 0;
    let mut total_weight = 0.0;
    let mut uom = None;
    for pkg in packages {
        let (raw, w, u) = package_weight(pkg);
        let cents = package_cents(w, code);
        transport += cents;
        total_weight += w;
        let mut p = Map::new();
        p.insert("TransportationCharges".into(), money(cents));
        p.insert("BaseServiceCharge".into(), money(cents));
        p.insert("ServiceOptionsCharges".into(), money(0));
        p.insert("TotalCharges".into(), money(cents));
        if with_weight_echo {
            p.insert("Weight".into(), json!(raw));
        }
        p.insert(
            "BillingWeight".into(),
            json!({
                "UnitOfMeasurement": {"Code": u, "Description": uom_description(&u)},
                "Weight": weight_str(w.ceil()),
            }),
        );
        uom.get_or_insert(u);
        out.push(Value::Object(p));
    }
    Priced {
        packages: out,
        transport,
        total_weight,
        uom: uom.unwrap_or_else(|| "LBS".to_string()),
    }
}

fn billing_weight(p: &Priced) -> Value {
    json!({
        "UnitOfMeasurement": {"Code": p.uom, "Description": uom_description(&p.uom)},
        "Weight": weight_str(p.total_weight),
    })
}

/// The negotiated (account) price: 15 % off.
fn negotiated(total: u64) -> Value {
    json!({"TotalCharge": money(total * 85 / 100)})
}

/// The shipment's packages; a shipment without any is rated as one empty package.
fn packages_of(shipment: &Value) -> Vec<&Value> {
    static EMPTY: Value = Value::Null;
    let p = list(shipment.get("Package"));
    if p.is_empty() {
        vec![&EMPTY]
    } else {
        p
    }
}

// ---------------------------------------------------------------------------
// Rating

/// `POST /api/rating/{version}/{requestoption}`.
pub fn rate(ctx: &Ctx, opt: &str) -> Response {
    let rr = match root(ctx.body, "RateRequest") {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let empty = json!({});
    let shipment = rr.get("Shipment").unwrap_or(&empty);
    let shipper = text_or(at(shipment, &["Shipper", "ShipperNumber"]), "");
    let wants_negotiated = at(
        shipment,
        &["ShipmentRatingOptions", "NegotiatedRatesIndicator"],
    )
    .is_some();
    if wants_negotiated && ctx.unapproved.contains(&shipper) {
        return ups_error(
            400,
            "111210",
            "The Shipper ID is not approved for negotiated rates.",
        );
    }
    let packages = packages_of(shipment);
    let codes: Vec<String> = if opt.starts_with("shop") {
        vec!["03".into(), "02".into(), "01".into()]
    } else {
        vec![text_or(at(shipment, &["Service", "Code"]), "03")]
    };
    let with_tnt = opt.ends_with("timeintransit");
    let pickup_day = text(at(shipment, &["DeliveryTimeInformation", "Pickup", "Date"]))
        .and_then(|d| dates::parse_ymd(&d))
        .unwrap_or_else(dates::today);

    let mut rated = Vec::new();
    for code in &codes {
        let p = price(&packages, code, true);
        let mut s = Map::new();
        s.insert(
            "Service".into(),
            json!({"Code": code, "Description": service_name(code)}),
        );
        s.insert(
            "RatedShipmentAlert".into(),
            json!([{"Code": "110971", "Description": "Your invoice may vary from the displayed reference rates"}]),
        );
        s.insert("BillingWeight".into(), billing_weight(&p));
        s.insert("TransportationCharges".into(), money(p.transport));
        s.insert("BaseServiceCharge".into(), money(p.transport));
        s.insert("ServiceOptionsCharges".into(), money(0));
        s.insert("TotalCharges".into(), money(p.transport));
        if wants_negotiated && !ctx.unverified.contains(&shipper) {
            s.insert("NegotiatedRateCharges".into(), negotiated(p.transport));
        }
        s.insert("RatedPackage".into(), collapse(p.packages));
        let days = transit_days(code);
        if with_tnt {
            let arrival = dates::add_business_days(pickup_day, days);
            s.insert(
                "TimeInTransit".into(),
                json!({
                    "PickupDate": dates::ymd_compact(pickup_day),
                    "PackageBillType": "03",
                    "ServiceSummary": {
                        "Service": {"Description": service_name(code)},
                        "EstimatedArrival": {
                            "Arrival": {"Date": dates::ymd_compact(arrival), "Time": if is_ground(code) { "230000" } else { "103000" }},
                            "BusinessDaysInTransit": days.to_string(),
                            "Pickup": {"Date": dates::ymd_compact(pickup_day), "Time": "170000"},
                            "DayOfWeek": dates::weekday_name(arrival),
                            "CustomerCenterCutoff": "170000",
                            "TotalTransitDays": (arrival - pickup_day).whole_days().to_string(),
                        },
                        "SaturdayDelivery": "0",
                    },
                }),
            );
        }
        if !is_ground(code) {
            s.insert(
                "GuaranteedDelivery".into(),
                json!({"BusinessDaysInTransit": days.to_string(), "DeliveryByTime": if code == "01" { "10:30 A.M." } else { "End of Day" }}),
            );
        }
        // Members UPS's REST Rate has and the XOLTWS Rate v1.1 answer does not.
        s.insert("RatingMethod".into(), json!("01"));
        s.insert("BillableWeightCalculationMethod".into(), json!("02"));
        s.insert(
            "ItemizedCharges".into(),
            json!([{"Code": "270", "CurrencyCode": "USD", "MonetaryValue": "0.00"}]),
        );
        rated.push(Value::Object(s));
    }
    let rated = if opt.starts_with("shop") {
        Value::Array(rated)
    } else {
        collapse(rated)
    };
    ok(&json!({"RateResponse": {"Response": response_block(rr), "RatedShipment": rated}}))
}

// ---------------------------------------------------------------------------
// Shipping

/// `1Z` + shipper number (6) + service (2) + counter (8): 18 characters.
fn one_z(shipper: &str, service: &str, n: u64) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect()
    };
    let mut sh: String = clean(shipper).chars().take(6).collect();
    while sh.len() < 6 {
        sh.push('0');
    }
    let sv: String = clean(service).chars().take(2).collect();
    let sv = format!("{sv:0>2}");
    format!("1Z{sh}{sv}{:08}", n % 100_000_000)
}

fn label(tracking: &str) -> Value {
    let html = format!(
        "<html><head><title>View/Print Label</title></head><body><img src=\"label{tracking}.gif\"></body></html>"
    );
    json!({
        "ImageFormat": {"Code": "GIF", "Description": "GIF"},
        "GraphicImage": STANDARD.encode(TINY_GIF),
        "HTMLImage": STANDARD.encode(html.as_bytes()),
    })
}

/// `POST /api/shipments/{version}/ship`.
pub fn ship(ctx: &Ctx) -> Response {
    let sr = match root(ctx.body, "ShipmentRequest") {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let empty = json!({});
    let shipment = sr.get("Shipment").unwrap_or(&empty);
    let shipper = text(at(shipment, &["Shipper", "ShipperNumber"]))
        .or_else(|| {
            list(at(shipment, &["PaymentInformation", "ShipmentCharge"]))
                .into_iter()
                .find_map(|c| text(at(c, &["BillShipper", "AccountNumber"])))
        })
        .unwrap_or_default();
    let code = text_or(at(shipment, &["Service", "Code"]), "03");
    let wants_negotiated = at(
        shipment,
        &["ShipmentRatingOptions", "NegotiatedRatesIndicator"],
    )
    .is_some();
    let packages = packages_of(shipment);
    let p = price(&packages, &code, false);
    let results: Vec<Value> = packages
        .iter()
        .map(|_| {
            let tn = one_z(&shipper, &code, ctx.sim.next_counter());
            json!({
                "TrackingNumber": tn,
                "BaseServiceCharge": money(p.transport / packages.len().max(1) as u64),
                "ServiceOptionsCharges": money(0),
                "ShippingLabel": label(&tn),
                "ItemizedCharges": [{"Code": "270", "CurrencyCode": "USD", "MonetaryValue": "0.00"}],
            })
        })
        .collect();
    let id = results
        .first()
        .and_then(|r| r.get("TrackingNumber"))
        .cloned()
        .unwrap_or(Value::Null);
    let mut res = Map::new();
    res.insert(
        "Disclaimer".into(),
        json!([{"Code": "01", "Description": "Taxes are included in the shipping cost and apply to the transportation charges but additional duties/taxes may apply and are not reflected in the total amount due."}]),
    );
    res.insert(
        "ShipmentCharges".into(),
        json!({
            "TransportationCharges": money(p.transport),
            "ServiceOptionsCharges": money(0),
            "TotalCharges": money(p.transport),
        }),
    );
    if wants_negotiated && !ctx.unverified.contains(&shipper) {
        res.insert("NegotiatedRateCharges".into(), negotiated(p.transport));
    }
    res.insert("RatingMethod".into(), json!("01"));
    res.insert("BillableWeightCalculationMethod".into(), json!("02"));
    res.insert("BillingWeight".into(), billing_weight(&p));
    res.insert("ShipmentIdentificationNumber".into(), id);
    res.insert("PackageResults".into(), collapse(results));
    ok(&json!({"ShipmentResponse": {
        "Response": response_block(sr),
        "ShipmentResults": Value::Object(res),
    }}))
}

/// Tracking numbers of `?trackingnumber=1Z…` or `?trackingnumber=["1Z…","1Z…"]`.
fn tracking_numbers(query: &str) -> Vec<String> {
    let q = reply::form(query.as_bytes());
    let Some(raw) = q.get("trackingnumber") else {
        return Vec::new();
    };
    let raw = raw.trim();
    let inner = raw
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(raw);
    inner
        .split(',')
        .map(|s| s.trim().trim_matches('"').trim().to_string())
        .filter(|s| !s.is_empty())
        .take(20)
        .collect()
}

/// `DELETE /api/shipments/{version}/void/cancel/{id}`.
pub fn void(ctx: &Ctx, id: &str) -> Response {
    if id.to_ascii_uppercase().starts_with("1ZNOTFOUND") {
        return ups_error(
            400,
            "190117",
            "The shipment identification number is invalid",
        );
    }
    let mut r = Map::new();
    r.insert(
        "Response".into(),
        json!({"ResponseStatus": {"Code": "1", "Description": "Success"}}),
    );
    r.insert(
        "SummaryResult".into(),
        json!({"Status": {"Code": "1", "Description": "Voided"}}),
    );
    let tns = tracking_numbers(ctx.req.query());
    if !tns.is_empty() {
        let results = tns
            .iter()
            .map(|t| json!({"TrackingNumber": t, "Status": {"Code": "1", "Description": "Voided"}}))
            .collect();
        r.insert("PackageLevelResults".into(), collapse(results));
    }
    ok(&json!({ "VoidShipmentResponse": Value::Object(r) }))
}

/// `POST /api/labels/{version}/recovery`.
pub fn label_recovery(ctx: &Ctx) -> Response {
    let lr = match root(ctx.body, "LabelRecoveryRequest") {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let tn = text(lr.get("TrackingNumber"))
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| {
            let seed = text_or(at(lr, &["ReferenceValues", "ReferenceNumber", "Value"]), "");
            one_z("999AA1", "03", fnv(&seed))
        });
    let l = label(&tn);
    ok(&json!({"LabelRecoveryResponse": {
        "Response": response_block(lr),
        "ShipmentIdentificationNumber": tn,
        "LabelResults": {
            "TrackingNumber": tn,
            "LabelImage": {
                "LabelImageFormat": {"Code": "GIF"},
                "GraphicImage": l["GraphicImage"],
                "HTMLImage": l["HTMLImage"],
            },
        },
    }}))
}

// ---------------------------------------------------------------------------
// Tracking

fn address(city: &str, state: &str, postal: &str) -> Value {
    json!({
        "addressLine1": "",
        "addressLine2": "",
        "addressLine3": "",
        "city": city,
        "stateProvince": state,
        "postalCode": postal,
        "country": "US",
        "countryCode": "US",
    })
}

/// One scan. Local times are US Eastern (GMT-05:00); the GMT fields are derived from them.
fn activity(
    days: time::Date,
    time: &str,
    loc: Value,
    typ: &str,
    desc: &str,
    code: &str,
    sc: &str,
) -> Value {
    let h: i64 = time.get(..2).and_then(|h| h.parse().ok()).unwrap_or(0);
    let gmt_hour = h + 5;
    let (gmt_day, gmt_hour) = if gmt_hour >= 24 {
        (days + time::Duration::days(1), gmt_hour - 24)
    } else {
        (days, gmt_hour)
    };
    json!({
        "location": {"address": loc, "slic": "8199"},
        "status": {"type": typ, "description": desc, "code": code, "statusCode": sc, "simplifiedTextDescription": desc},
        "date": dates::ymd_compact(days),
        "time": time,
        "gmtDate": dates::ymd_compact(gmt_day),
        "gmtTime": format!("{gmt_hour:02}:{}:{}", &time[2..4], &time[4..6]),
        "gmtOffset": "-05:00",
    })
}

/// `GET /api/track/v1/details/{n}` and `GET /api/track/v1/reference/details/{ref}`.
pub fn track(ctx: &Ctx, number: &str, by_reference: bool) -> Response {
    if let Err(e) = require_trans_headers(ctx.req) {
        return *e;
    }
    if number.to_ascii_uppercase().starts_with("1ZNOTFOUND") {
        return ok(&json!({"trackResponse": {"shipment": [{
            "inquiryNumber": number,
            "warnings": [{"code": "TW0001", "message": "Tracking Information Not Found"}],
        }]}}));
    }
    let tracking = if by_reference {
        one_z("999AA1", "03", fnv(number))
    } else {
        number.to_string()
    };
    // In a 1Z number the service code follows the 6-character shipper number.
    let svc = tracking
        .get(8..10)
        .filter(|_| tracking.to_ascii_uppercase().starts_with("1Z") && tracking.len() == 18)
        .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or("03")
        .to_string();
    let today = dates::today();
    let origin = address("ATLANTA", "GA", "30303");
    let hub = address("LOUISVILLE", "KY", "40209");
    let dest = address("NEW YORK", "NY", "10001");
    let mut pkg = json!({
        "trackingNumber": tracking,
        "deliveryDate": [{"type": "DEL", "date": dates::ymd_compact(today)}],
        "deliveryTime": {"type": "DEL", "endTime": "143000"},
        "activity": [
            activity(today, "143000", dest.clone(), "D", "DELIVERED", "FS", "011"),
            activity(today - time::Duration::days(1), "034500", hub, "I", "Departed from Facility", "DP", "005"),
            activity(today - time::Duration::days(2), "163000", origin.clone(), "P", "Pickup Scan", "PU", "038"),
            activity(today - time::Duration::days(2), "101500", origin.clone(), "M", "Shipper created a label, UPS has not received the package yet.", "MP", "003"),
        ],
        "deliveryInformation": {"location": "Front Door", "receivedBy": "JSMITH"},
        "referenceNumber": [
            {"type": "SHIPMENT", "number": "PO-4411"},
            {"type": "PACKAGE", "number": "BOX-1"},
        ],
        "milestones": [{"category": "Delivered", "code": "011", "current": true, "description": "Delivered", "state": "completed"}],
        "currentStatus": {"type": "D", "description": "Delivered", "code": "011", "statusCode": "011", "simplifiedTextDescription": "Delivered"},
        "packageAddress": [
            {"type": "ORIGIN", "name": "SHIPPER", "address": origin},
            {"type": "DESTINATION", "name": "CONSIGNEE", "address": dest},
        ],
        "weight": {"unitOfMeasurement": "LBS", "weight": "5.00"},
        "service": {"code": format!("0{svc}"), "levelCode": format!("0{svc}"), "description": service_name(&svc)},
        "packageCount": 1,
    });
    if by_reference {
        pkg["referenceNumber"] = json!([{"type": "SHIPMENT", "number": number}]);
    }
    ok(&json!({"trackResponse": {"shipment": [{
        "inquiryNumber": number,
        "package": [pkg],
    }]}}))
}

// ---------------------------------------------------------------------------
// Address validation

/// `POST /api/addressvalidation/{version}/{1|2|3}`.
pub fn xav(ctx: &Ctx, opt: &str) -> Response {
    let xr = match root(ctx.body, "XAVRequest") {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let Some(akf) = list(xr.get("AddressKeyFormat")).into_iter().next() else {
        return ups_error(
            400,
            "10001",
            "The request is not well formed: missing XAVRequest.AddressKeyFormat",
        );
    };
    let classify = opt != "1";
    let classification = json!({"Code": "1", "Description": "Commercial"});
    let mut r = Map::new();
    r.insert("Response".into(), response_block(xr));
    let postal = text_or(akf.get("PostcodePrimaryLow"), "");
    if postal.trim() == "00000" {
        r.insert("NoCandidatesIndicator".into(), json!(""));
        if classify {
            r.insert(
                "AddressClassification".into(),
                json!({"Code": "0", "Description": "Unclassified"}),
            );
        }
    } else {
        r.insert("ValidAddressIndicator".into(), json!(""));
        if classify {
            r.insert("AddressClassification".into(), classification.clone());
        }
        let mut cand = Map::new();
        if classify {
            cand.insert("AddressClassification".into(), classification);
        }
        cand.insert("AddressKeyFormat".into(), akf.clone());
        r.insert("Candidate".into(), Value::Object(cand));
    }
    ok(&json!({ "XAVResponse": Value::Object(r) }))
}

// ---------------------------------------------------------------------------
// Time in transit

/// `POST /api/shipments/{version}/transittimes`.
pub fn time_in_transit(ctx: &Ctx) -> Response {
    if let Err(e) = require_trans_headers(ctx.req) {
        return *e;
    }
    let b = ctx.body;
    let f = |k: &str| text_or(b.get(k), "");
    let ship_day = dates::parse_ymd(&f("shipDate")).unwrap_or_else(dates::today);
    let (oc, dc) = (
        text_or(b.get("originCountryCode"), "US"),
        text_or(b.get("destinationCountryCode"), "US"),
    );
    let domestic = oc.eq_ignore_ascii_case("US") && dc.eq_ignore_ascii_case("US");
    let offers: &[(&str, &str, u32, &str)] = if domestic {
        &[
            ("1DA", "UPS Next Day Air", 1, "10:30:00"),
            ("2DA", "UPS 2nd Day Air", 2, "23:00:00"),
            ("GND", "UPS Ground", 4, "23:00:00"),
        ]
    } else {
        &[
            ("01", "UPS Worldwide Express", 2, "10:30:00"),
            ("05", "UPS Worldwide Expedited", 5, "23:00:00"),
        ]
    };
    let services: Vec<Value> = offers
        .iter()
        .map(|(level, desc, days, commit)| {
            let arrival = dates::add_business_days(ship_day, *days);
            json!({
                "serviceLevel": level,
                "serviceLevelDescription": desc,
                "shipDate": dates::ymd_dashed(ship_day),
                "deliveryDate": dates::ymd_dashed(arrival),
                "commitTime": commit,
                "deliveryTime": commit,
                "deliveryDayOfWeek": dates::weekday_name(arrival),
                "nextDayPickupIndicator": "0",
                "saturdayPickupIndicator": "0",
                "saturdayDeliveryDate": "",
                "saturdayDeliveryTime": "",
                "serviceRemarksText": "",
                "guaranteeIndicator": if *level == "GND" { "0" } else { "1" },
                "totalTransitDays": (arrival - ship_day).whole_days(),
                "businessTransitDays": days,
                "restDaysCount": 0,
                "holidayCount": 0,
                "delayCount": 0,
                "pickupDate": dates::ymd_dashed(ship_day),
                "pickupTime": "17:00:00",
                "cstccutoffTime": "17:00:00",
                "poddate": "",
                "poddays": 0,
            })
        })
        .collect();
    let country_name = |c: &str| -> String {
        match c.to_ascii_uppercase().as_str() {
            "US" => "UNITED STATES",
            "CA" => "CANADA",
            "DE" => "GERMANY",
            "GB" => "UNITED KINGDOM",
            "FR" => "FRANCE",
            "MX" => "MEXICO",
            _ => c,
        }
        .to_string()
    };
    let ems = json!({
        "shipDate": dates::ymd_dashed(ship_day),
        "shipTime": f("shipTime"),
        "serviceLevel": "A",
        "billType": text_or(b.get("billType"), "03"),
        "dutyType": "",
        "residentialIndicator": f("residentialIndicator"),
        "destinationCountryName": country_name(&dc),
        "destinationCountryCode": dc,
        "destinationPostalCode": f("destinationPostalCode"),
        "destinationPostalCodeLow": f("destinationPostalCode"),
        "destinationPostalCodeHigh": f("destinationPostalCode"),
        "destinationStateProvince": f("destinationStateProvince"),
        "destinationCityName": f("destinationCityName"),
        "originCountryName": country_name(&oc),
        "originCountryCode": oc,
        "originPostalCode": f("originPostalCode"),
        "originPostalCodeLow": f("originPostalCode"),
        "originPostalCodeHigh": f("originPostalCode"),
        "originStateProvince": f("originStateProvince"),
        "originCityName": f("originCityName"),
        "weight": f("weight"),
        "weightUnitOfMeasure": f("weightUnitOfMeasure"),
        "shipmentContentsValue": f("shipmentContentsValue"),
        "shipmentContentsCurrencyCode": f("shipmentContentsCurrencyCode"),
        "guaranteeSuspended": false,
        "numberOfServices": services.len(),
        "services": services,
    });
    ok(&json!({
        "validationList": {
            "invalidFieldList": [],
            "invalidFieldListCodes": [],
            "destinationAmbiguous": false,
            "originAmbiguous": false,
        },
        "destinationPickList": [],
        "originPickList": [],
        "emsResponse": ems,
    }))
}

// ---------------------------------------------------------------------------
// Pickup

fn pickup_rate_result(cents: u64) -> Value {
    json!({
        "RateType": "FD",
        "CurrencyCode": "USD",
        "ChargeDetail": [{
            "ChargeCode": "B",
            "ChargeDescription": "BASE CHARGE",
            "ChargeAmount": amount(cents),
            "IncentedAmount": amount(cents),
            "TaxAmount": "0.00",
        }],
        "GrandTotalOfAllCharge": amount(cents),
        "GrandTotalOfAllIncentedCharge": amount(cents),
    })
}

/// `POST /api/pickupcreation/{version}/pickup`.
pub fn pickup_create(ctx: &Ctx) -> Response {
    let pr = match root(ctx.body, "PickupCreationRequest") {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let prn = format!("2929{:07X}", ctx.sim.next_counter() % 0x1000_0000);
    let rated = text(pr.get("RatePickupIndicator")).is_some_and(|v| v.eq_ignore_ascii_case("Y"));
    let mut r = Map::new();
    r.insert("Response".into(), response_block(pr));
    r.insert("PRN".into(), json!(prn));
    if rated {
        r.insert(
            "RateStatus".into(),
            json!({"Code": "01", "Description": "Rate Available"}),
        );
        r.insert("RateResult".into(), pickup_rate_result(645));
    } else {
        r.insert(
            "RateStatus".into(),
            json!({"Code": "02", "Description": "Rate Not Requested"}),
        );
    }
    ok(&json!({ "PickupCreationResponse": Value::Object(r) }))
}

/// `POST /api/shipments/{version}/pickup/{pickuptype}` (pickup rate).
pub fn pickup_rate(ctx: &Ctx, pickup_type: &str) -> Response {
    let pr = match root(ctx.body, "PickupRateRequest") {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let cents = if pickup_type == "smart" { 495 } else { 645 };
    ok(&json!({"PickupRateResponse": {
        "Response": response_block(pr),
        "RateResult": pickup_rate_result(cents),
    }}))
}

/// `DELETE /api/shipments/{version}/pickup/{CancelBy}` (`01` account, `02` PRN header).
pub fn pickup_cancel(ctx: &Ctx, cancel_by: &str) -> Response {
    let mut r = Map::new();
    r.insert(
        "Response".into(),
        json!({"ResponseStatus": {"Code": "1", "Description": "Success"}}),
    );
    match cancel_by {
        "01" => {
            r.insert("PickupType".into(), json!("01"));
        }
        "02" => {
            if ctx.req.header("prn").is_none_or(|p| p.trim().is_empty()) {
                return ups_error(
                    400,
                    "10001",
                    "The request is not well formed: missing header Prn",
                );
            }
            r.insert("PickupType".into(), json!("02"));
            r.insert(
                "GWNStatus".into(),
                json!({"Code": "2", "Description": "Cancelled"}),
            );
        }
        other => {
            return ups_error(
                400,
                "10001",
                &format!(
                    "The request is not well formed: CancelBy must be 01 or 02, found {other:?}"
                ),
            )
        }
    }
    ok(&json!({ "PickupCancelResponse": Value::Object(r) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_z_is_18_chars() {
        assert_eq!(one_z("a1b2c3", "3", 7), "1ZA1B2C30300000007");
        assert_eq!(one_z("X", "02", 1).len(), 18);
        assert_eq!(one_z("", "", 123_456_789), "1Z0000000023456789");
    }

    #[test]
    fn weights_and_money_format() {
        assert_eq!(weight_str(5.0), "5.0");
        assert_eq!(weight_str(2.25), "2.25");
        assert_eq!(weight_str(1.5), "1.5");
        assert_eq!(amount(1234), "12.34");
        assert_eq!(num("-3"), 0.0);
        assert_eq!(num("NaN"), 0.0);
    }

    #[test]
    fn tracking_number_query_forms() {
        assert_eq!(tracking_numbers("trackingnumber=1ZA"), vec!["1ZA"]);
        assert_eq!(
            tracking_numbers("trackingnumber=%5B%221ZA%22,%221ZB%22%5D"),
            vec!["1ZA", "1ZB"]
        );
        assert!(tracking_numbers("x=1").is_empty());
    }
}

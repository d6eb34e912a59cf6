//! The richest answers: for each body dialect, Rate, Ship, Track and TimeInTransit go through
//! the proxy to a simulator that fills every optional REST field it knows, and every legacy
//! field upsbridge maps (docs/answers.md) must carry the value UPS's REST answer had. The
//! oracle is the REST answer itself, fetched again from the simulator for the same call.
//! (Schema validity of each answer is checked by the harness for every test.)

mod common;

use common::*;
use serde_json::{json, Value};

const TRACKING: &str = "1Z9Y9Y9Y0300000001";

struct Env {
    _dir: tempfile::TempDir,
    sim: Sim,
    proxy: Proxy,
}

fn env() -> Env {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], FAST_TIMEOUTS);
    Env {
        _dir: dir,
        sim,
        proxy,
    }
}

/// The three body dialects.
#[derive(Clone, Copy, Debug, PartialEq)]
enum D {
    Json,
    Soap,
    Xml,
}

/// A value at a `/`-separated path of names; `Name[i]` picks the i-th repetition. JSON
/// answers are read with the legacy single-item rule (an object is one item).
fn at(doc: &Doc, path: &str) -> Option<String> {
    match doc {
        Doc::Json(v) => {
            let mut cur = v;
            for seg in path.split('/') {
                let (name, index) = split_index(seg);
                cur = cur.get(name)?;
                cur = match cur {
                    Value::Array(a) => a.get(index)?,
                    one if index == 0 => one,
                    _ => return None,
                };
            }
            cur.as_str().map(str::to_string)
        }
        Doc::Xml(text) => {
            let d = roxmltree::Document::parse(text).unwrap();
            let mut node = d.root_element();
            for seg in path.split('/') {
                let (name, index) = split_index(seg);
                node = node
                    .children()
                    .filter(|c| c.is_element() && c.tag_name().name() == name)
                    .nth(index)?;
            }
            Some(node.text().unwrap_or("").to_string())
        }
    }
}

fn split_index(seg: &str) -> (&str, usize) {
    match seg.split_once('[') {
        Some((n, i)) => (n, i.trim_end_matches(']').parse().unwrap()),
        None => (seg, 0),
    }
}

enum Doc {
    Json(Value),
    Xml(String),
}

/// REST value at a JSON pointer, as text.
fn rest(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => panic!("the simulator's REST answer has no {pointer}: {v}"),
        Some(other) => other.to_string(),
    }
}

/// Every (legacy path, expected value) pair holds in the answer.
fn expect(d: D, doc: &Doc, root: &str, pairs: &[(&str, String)]) {
    let prefix = match d {
        D::Soap => format!("Body/{root}"),
        D::Json => root.to_string(),
        D::Xml => String::new(),
    };
    for (path, want) in pairs {
        let full = if prefix.is_empty() {
            path.to_string()
        } else {
            format!("{prefix}/{path}")
        };
        let got = at(doc, &full);
        assert_eq!(
            got.as_deref(),
            Some(want.as_str()),
            "{d:?} {full}\n{}",
            match doc {
                Doc::Json(v) => v.to_string(),
                Doc::Xml(t) => t.clone(),
            }
        );
    }
}

fn access(a: &TestAccount) -> String {
    format!(
        "<?xml version=\"1.0\"?><AccessRequest><AccessLicenseNumber>{}</AccessLicenseNumber><UserId>{}</UserId><Password>{}</Password></AccessRequest>",
        a.access_key, a.user, a.password
    )
}

/// Send a XOLTWS request object in dialect `d` (legacy JSON or SOAP); `ns` is the SOAP
/// payload namespace.
fn xoltws(e: &Env, d: D, svc: &str, root: &str, ns: &str, request: &Value) -> Doc {
    match d {
        D::Json => {
            let body = json!({"UPSSecurity": ups_security(&EAST), root: request});
            let r = e.proxy.post_json(&format!("/rest/{svc}"), &body);
            assert_eq!(r.status().as_u16(), 200);
            Doc::Json(r.json().unwrap())
        }
        D::Soap => {
            let mut payload = String::new();
            to_xml(&mut payload, root, request, true, ns);
            let (status, _, text) = post_raw(
                &e.proxy.http,
                &format!("{}/webservices/{svc}", e.proxy.url),
                soap_envelope(&EAST, &payload),
                Some("text/xml; charset=utf-8"),
            );
            assert_eq!(status, 200, "{text}");
            Doc::Xml(text)
        }
        D::Xml => unreachable!("old XML has its own request documents"),
    }
}

/// JSON → XML for test requests (arrays repeat, strings are text), in namespace `ns`.
fn to_xml(out: &mut String, name: &str, v: &Value, root: bool, ns: &str) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| to_xml(out, name, i, root, ns)),
        Value::Object(m) => {
            if root {
                out.push_str(&format!("<p:{name} xmlns:p=\"{ns}\">"));
            } else {
                out.push_str(&format!("<p:{name}>"));
            }
            for (k, c) in m {
                to_xml(out, k, c, false, ns);
            }
            out.push_str(&format!("</p:{name}>"));
        }
        Value::String(s) => out.push_str(&format!("<p:{name}>{s}</p:{name}>")),
        _ => {}
    }
}

fn old_xml(e: &Env, svc: &str, request: &str) -> Doc {
    let (status, _, text) = post_raw(
        &e.proxy.http,
        &format!("{}/ups.app/xml/{svc}", e.proxy.url),
        format!("{}{request}", access(&EAST)),
        None,
    );
    assert_eq!(status, 200, "{text}");
    assert_old_xml_success(&text);
    Doc::Xml(text)
}

fn last_call(e: &Env) -> Value {
    e.sim.api_requests().pop().expect("a REST call")
}

#[test]
fn the_richest_track_answer_is_complete_in_every_dialect() {
    let e = env();
    let request = json!({"Request": {"RequestOption": "1"}, "InquiryNumber": TRACKING});
    for d in [D::Json, D::Soap, D::Xml] {
        e.sim.clear();
        let doc = match d {
            D::Xml => old_xml(&e, "Track", &format!("<TrackRequest><Request><RequestAction>Track</RequestAction><RequestOption>activity</RequestOption></Request><TrackingNumber>{TRACKING}</TrackingNumber></TrackRequest>")),
            _ => xoltws(&e, d, "Track", "TrackRequest", "http://www.ups.com/XMLSchema/XOLTWS/Track/v2.0", &request),
        };
        let r = e.sim.replay(&EAST, &last_call(&e));
        let p = "/trackResponse/shipment/0/package/0";
        let act = |i: usize, k: &str| rest(&r, &format!("{p}/activity/{i}/{k}"));
        let n_act = r
            .pointer(&format!("{p}/activity"))
            .unwrap()
            .as_array()
            .unwrap()
            .len();
        let pickup = (0..n_act)
            .find(|&i| act(i, "status/type") == "P")
            .map(|i| act(i, "date"))
            .unwrap();
        let mut pairs: Vec<(String, String)> = vec![];
        let mut add = |k: &str, v: String| pairs.push((k.to_string(), v));
        let (sh, pk) = ("Shipment", "Shipment/Package");
        match d {
            D::Xml => {
                add(
                    &format!("{sh}/ShipmentIdentificationNumber"),
                    TRACKING.into(),
                );
                add(&format!("{sh}/Shipper/ShipperNumber"), EAST.shipper.into());
                add(
                    &format!("{sh}/Shipper/Address/City"),
                    rest(&r, &format!("{p}/packageAddress/0/address/city")),
                );
                add(
                    &format!("{sh}/ShipTo/Address/PostalCode"),
                    rest(&r, &format!("{p}/packageAddress/1/address/postalCode")),
                );
                add(&format!("{sh}/ReferenceNumber/Value"), "PO-4411".into());
                add(&format!("{pk}/ReferenceNumber/Value"), "BOX-1".into());
                for i in 0..n_act {
                    add(
                        &format!("{pk}/Activity[{i}]/Status/StatusType/Code"),
                        act(i, "status/type"),
                    );
                    add(
                        &format!("{pk}/Activity[{i}]/Status/StatusCode/Code"),
                        act(i, "status/code"),
                    );
                    add(
                        &format!("{pk}/Activity[{i}]/ActivityLocation/Address/City"),
                        act(i, "location/address/city"),
                    );
                }
            }
            _ => {
                add(&format!("{sh}/InquiryNumber/Value"), TRACKING.into());
                add(&format!("{sh}/ShipperNumber"), EAST.shipper.into());
                add(&format!("{sh}/ShipmentAddress[0]/Type/Code"), "01".into());
                add(
                    &format!("{sh}/ShipmentAddress[0]/Address/City"),
                    rest(&r, &format!("{p}/packageAddress/0/address/city")),
                );
                add(
                    &format!("{sh}/ShipmentAddress[1]/Address/PostalCode"),
                    rest(&r, &format!("{p}/packageAddress/1/address/postalCode")),
                );
                add(&format!("{sh}/ReferenceNumber/Value"), "PO-4411".into());
                add(&format!("{pk}/ReferenceNumber/Value"), "BOX-1".into());
                add(
                    &format!("{sh}/CurrentStatus/Description"),
                    rest(&r, &format!("{p}/currentStatus/description")),
                );
                add(
                    &format!("{sh}/DeliveryDetail/Date"),
                    rest(&r, &format!("{p}/deliveryDate/0/date")),
                );
                for i in 0..n_act {
                    add(
                        &format!("{pk}/Activity[{i}]/Status/Type"),
                        act(i, "status/type"),
                    );
                    add(
                        &format!("{pk}/Activity[{i}]/Status/Description"),
                        act(i, "status/description"),
                    );
                    add(
                        &format!("{pk}/Activity[{i}]/Status/Code"),
                        act(i, "status/code"),
                    );
                    add(
                        &format!("{pk}/Activity[{i}]/ActivityLocation/Address/City"),
                        act(i, "location/address/city"),
                    );
                }
            }
        }
        add(&format!("{sh}/PickupDate"), pickup);
        add(
            &format!("{sh}/Service/Code"),
            rest(&r, &format!("{p}/service/code")),
        );
        add(
            &format!("{sh}/ShipmentWeight/Weight"),
            rest(&r, &format!("{p}/weight/weight")),
        );
        add(&format!("{pk}/TrackingNumber"), TRACKING.into());
        add(&format!("{pk}/DeliveryIndicator"), "Y".into());
        add(
            &format!("{pk}/PackageWeight/Weight"),
            rest(&r, &format!("{p}/weight/weight")),
        );
        add(
            &format!("{pk}/Activity[0]/ActivityLocation/SignedForByName"),
            rest(&r, &format!("{p}/deliveryInformation/receivedBy")),
        );
        add(
            &format!("{pk}/Activity[0]/ActivityLocation/Description"),
            rest(&r, &format!("{p}/deliveryInformation/location")),
        );
        for i in 0..n_act {
            add(&format!("{pk}/Activity[{i}]/Date"), act(i, "date"));
            add(&format!("{pk}/Activity[{i}]/Time"), act(i, "time"));
            add(&format!("{pk}/Activity[{i}]/GMTDate"), act(i, "gmtDate"));
            add(&format!("{pk}/Activity[{i}]/GMTTime"), act(i, "gmtTime"));
            add(
                &format!("{pk}/Activity[{i}]/GMTOffset"),
                act(i, "gmtOffset"),
            );
        }
        let pairs: Vec<(&str, String)> =
            pairs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        expect(d, &doc, "TrackResponse", &pairs);
    }
}

fn rate_request() -> Value {
    json!({"Request": {"RequestOption": "Rate"},
        "Shipment": {"Shipper": {"ShipperNumber": "9Y9Y9Y", "Address": {"AddressLine": ["10 Elm Rd"], "City": "Dover", "StateProvinceCode": "DE", "PostalCode": "19901", "CountryCode": "US"}},
            "ShipTo": {"Name": "Acme", "Address": {"AddressLine": ["5 Oak Ave"], "City": "Reno", "StateProvinceCode": "NV", "PostalCode": "89501", "CountryCode": "US"}},
            "Service": {"Code": "01"},
            "Package": [{"PackagingType": {"Code": "02"}, "PackageWeight": {"UnitOfMeasurement": {"Code": "LBS"}, "Weight": "3"}}],
            "ShipmentRatingOptions": {"NegotiatedRatesIndicator": ""}}})
}

const OLD_RATE: &str = "<RatingServiceSelectionRequest><Request><RequestAction>Rate</RequestAction><RequestOption>Rate</RequestOption></Request><Shipment><Shipper><ShipperNumber>9Y9Y9Y</ShipperNumber><Address><AddressLine1>10 Elm Rd</AddressLine1><City>Dover</City><StateProvinceCode>DE</StateProvinceCode><PostalCode>19901</PostalCode><CountryCode>US</CountryCode></Address></Shipper><ShipTo><CompanyName>Acme</CompanyName><Address><AddressLine1>5 Oak Ave</AddressLine1><City>Reno</City><StateProvinceCode>NV</StateProvinceCode><PostalCode>89501</PostalCode><CountryCode>US</CountryCode></Address></ShipTo><Service><Code>01</Code></Service><Package><PackagingType><Code>02</Code></PackagingType><PackageWeight><UnitOfMeasurement><Code>LBS</Code></UnitOfMeasurement><Weight>3</Weight></PackageWeight></Package><RateInformation><NegotiatedRatesIndicator/></RateInformation></Shipment></RatingServiceSelectionRequest>";

#[test]
fn the_richest_rate_answer_is_complete_in_every_dialect_and_rest_only_fields_are_dropped() {
    let e = env();
    for d in [D::Json, D::Soap, D::Xml] {
        e.sim.clear();
        let doc = match d {
            D::Xml => old_xml(&e, "Rate", OLD_RATE),
            _ => xoltws(
                &e,
                d,
                "Rate",
                "RateRequest",
                "http://www.ups.com/XMLSchema/XOLTWS/Rate/v1.1",
                &rate_request(),
            ),
        };
        let r = e.sim.replay(&EAST, &last_call(&e));
        let s = "/RateResponse/RatedShipment";
        let mut pairs = vec![
            (
                "RatedShipment/Service/Code",
                rest(&r, &format!("{s}/Service/Code")),
            ),
            (
                "RatedShipment/BillingWeight/Weight",
                rest(&r, &format!("{s}/BillingWeight/Weight")),
            ),
            (
                "RatedShipment/BillingWeight/UnitOfMeasurement/Code",
                rest(&r, &format!("{s}/BillingWeight/UnitOfMeasurement/Code")),
            ),
            (
                "RatedShipment/TransportationCharges/MonetaryValue",
                rest(&r, &format!("{s}/TransportationCharges/MonetaryValue")),
            ),
            (
                "RatedShipment/ServiceOptionsCharges/MonetaryValue",
                rest(&r, &format!("{s}/ServiceOptionsCharges/MonetaryValue")),
            ),
            (
                "RatedShipment/TotalCharges/CurrencyCode",
                rest(&r, &format!("{s}/TotalCharges/CurrencyCode")),
            ),
            (
                "RatedShipment/TotalCharges/MonetaryValue",
                rest(&r, &format!("{s}/TotalCharges/MonetaryValue")),
            ),
            (
                "RatedShipment/RatedPackage/TotalCharges/MonetaryValue",
                rest(&r, &format!("{s}/RatedPackage/TotalCharges/MonetaryValue")),
            ),
            (
                "RatedShipment/RatedPackage/Weight",
                rest(&r, &format!("{s}/RatedPackage/Weight")),
            ),
            (
                "RatedShipment/RatedPackage/BillingWeight/Weight",
                rest(&r, &format!("{s}/RatedPackage/BillingWeight/Weight")),
            ),
        ];
        match d {
            D::Xml => {
                pairs.push((
                    "RatedShipment/RatedShipmentWarning",
                    rest(&r, &format!("{s}/RatedShipmentAlert/0/Description")),
                ));
                pairs.push((
                    "RatedShipment/GuaranteedDaysToDelivery",
                    rest(&r, &format!("{s}/GuaranteedDelivery/BusinessDaysInTransit")),
                ));
                pairs.push((
                    "RatedShipment/ScheduledDeliveryTime",
                    rest(&r, &format!("{s}/GuaranteedDelivery/DeliveryByTime")),
                ));
                pairs.push((
                    "RatedShipment/NegotiatedRates/NetSummaryCharges/GrandTotal/MonetaryValue",
                    rest(
                        &r,
                        &format!("{s}/NegotiatedRateCharges/TotalCharge/MonetaryValue"),
                    ),
                ));
            }
            _ => {
                pairs.push((
                    "RatedShipment/RatedShipmentAlert/Code",
                    rest(&r, &format!("{s}/RatedShipmentAlert/0/Code")),
                ));
                pairs.push((
                    "RatedShipment/RatedShipmentAlert/Description",
                    rest(&r, &format!("{s}/RatedShipmentAlert/0/Description")),
                ));
                pairs.push((
                    "RatedShipment/GuaranteedDelivery/BusinessDaysInTransit",
                    rest(&r, &format!("{s}/GuaranteedDelivery/BusinessDaysInTransit")),
                ));
                pairs.push((
                    "RatedShipment/GuaranteedDelivery/DeliveryByTime",
                    rest(&r, &format!("{s}/GuaranteedDelivery/DeliveryByTime")),
                ));
                pairs.push((
                    "RatedShipment/NegotiatedRateCharges/TotalCharge/MonetaryValue",
                    rest(
                        &r,
                        &format!("{s}/NegotiatedRateCharges/TotalCharge/MonetaryValue"),
                    ),
                ));
                pairs.push(("Response/ResponseStatus/Code", "1".into()));
            }
        }
        let root = if d == D::Xml {
            "RatingServiceSelectionResponse"
        } else {
            "RateResponse"
        };
        expect(d, &doc, root, &pairs);
        // REST-only members (not in XOLTWS Rate v1.1) are not in the answer.
        let text = match &doc {
            Doc::Json(v) => v.to_string(),
            Doc::Xml(t) => t.clone(),
        };
        assert!(r.pointer(&format!("{s}/ItemizedCharges")).is_some());
        for rest_only in [
            "ItemizedCharges",
            "RatingMethod",
            "BillableWeightCalculationMethod",
            "BaseServiceCharge",
        ] {
            assert!(
                !text.contains(rest_only),
                "{d:?}: {rest_only} left in\n{text}"
            );
        }
    }
    let metrics = e.proxy.admin_text("/metrics");
    let dropped: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("upsbridge_answer_fields_dropped_total") && l.contains("service=\"rate\"")
        })
        .collect();
    assert_eq!(
        dropped.len(),
        2,
        "legacy JSON and SOAP count what they drop:\n{metrics}"
    );
}

fn ship_request() -> Value {
    json!({"Request": {"RequestOption": "nonvalidate"},
        "Shipment": {"Description": "parts",
            "Shipper": {"Name": "East", "ShipperNumber": "9Y9Y9Y", "Address": {"AddressLine": ["10 Elm Rd"], "City": "Dover", "StateProvinceCode": "DE", "PostalCode": "19901", "CountryCode": "US"}},
            "ShipTo": {"Name": "Acme", "Address": {"AddressLine": ["5 Oak Ave"], "City": "Reno", "StateProvinceCode": "NV", "PostalCode": "89501", "CountryCode": "US"}},
            "PaymentInformation": {"ShipmentCharge": [{"Type": "01", "BillShipper": {"AccountNumber": "9Y9Y9Y"}}]},
            "Service": {"Code": "03"},
            "ShipmentRatingOptions": {"NegotiatedRatesIndicator": ""},
            "Package": [{"Packaging": {"Code": "02"}, "PackageWeight": {"UnitOfMeasurement": {"Code": "LBS"}, "Weight": "5"}}]},
        "LabelSpecification": {"LabelImageFormat": {"Code": "GIF"}, "LabelStockSize": {"Height": "6", "Width": "4"}}})
}

#[test]
fn the_richest_ship_answer_is_complete_in_every_dialect() {
    let e = env();
    for d in [D::Json, D::Soap, D::Xml] {
        e.sim.clear();
        let doc = match d {
            D::Xml => {
                let confirm = "<ShipmentConfirmRequest><Request><RequestAction>ShipConfirm</RequestAction><RequestOption>nonvalidate</RequestOption></Request><Shipment><Shipper><Name>East</Name><ShipperNumber>9Y9Y9Y</ShipperNumber><Address><AddressLine1>10 Elm Rd</AddressLine1><City>Dover</City><StateProvinceCode>DE</StateProvinceCode><PostalCode>19901</PostalCode><CountryCode>US</CountryCode></Address></Shipper><ShipTo><CompanyName>Acme</CompanyName><Address><AddressLine1>5 Oak Ave</AddressLine1><City>Reno</City><StateProvinceCode>NV</StateProvinceCode><PostalCode>89501</PostalCode><CountryCode>US</CountryCode></Address></ShipTo><PaymentInformation><Prepaid><BillShipper><AccountNumber>9Y9Y9Y</AccountNumber></BillShipper></Prepaid></PaymentInformation><Service><Code>03</Code></Service><RateInformation><NegotiatedRatesIndicator/></RateInformation><Package><PackagingType><Code>02</Code></PackagingType><PackageWeight><UnitOfMeasurement><Code>LBS</Code></UnitOfMeasurement><Weight>5</Weight></PackageWeight></Package></Shipment><LabelSpecification><LabelPrintMethod><Code>GIF</Code></LabelPrintMethod></LabelSpecification></ShipmentConfirmRequest>";
                let Doc::Xml(c) = old_xml(&e, "ShipConfirm", confirm) else {
                    unreachable!()
                };
                let digest = xml_text(&c, "ShipmentDigest").unwrap();
                old_xml(&e, "ShipAccept", &format!("<ShipmentAcceptRequest><Request><RequestAction>ShipAccept</RequestAction></Request><ShipmentDigest>{digest}</ShipmentDigest></ShipmentAcceptRequest>"))
            }
            _ => xoltws(
                &e,
                d,
                "Ship",
                "ShipmentRequest",
                "http://www.ups.com/XMLSchema/XOLTWS/Ship/v1.0",
                &ship_request(),
            ),
        };
        let call = last_call(&e);
        assert!(call["path"].as_str().unwrap().ends_with("/ship"));
        let r = e.sim.replay(&EAST, &call);
        let s = "/ShipmentResponse/ShipmentResults";
        // The replay drew the next tracking number; the client's was the one before it.
        let replayed = rest(&r, &format!("{s}/ShipmentIdentificationNumber"));
        let n: u64 = replayed[10..].parse().unwrap();
        let id = format!("{}{:08}", &replayed[..10], n - 1);
        let pr = "ShipmentResults/PackageResults";
        let mut pairs = vec![
            (
                "ShipmentResults/ShipmentCharges/TransportationCharges/MonetaryValue",
                rest(
                    &r,
                    &format!("{s}/ShipmentCharges/TransportationCharges/MonetaryValue"),
                ),
            ),
            (
                "ShipmentResults/ShipmentCharges/ServiceOptionsCharges/MonetaryValue",
                rest(
                    &r,
                    &format!("{s}/ShipmentCharges/ServiceOptionsCharges/MonetaryValue"),
                ),
            ),
            (
                "ShipmentResults/ShipmentCharges/TotalCharges/MonetaryValue",
                rest(
                    &r,
                    &format!("{s}/ShipmentCharges/TotalCharges/MonetaryValue"),
                ),
            ),
            (
                "ShipmentResults/BillingWeight/Weight",
                rest(&r, &format!("{s}/BillingWeight/Weight")),
            ),
            ("ShipmentResults/ShipmentIdentificationNumber", id.clone()),
        ];
        let (label, ipr) = match d {
            D::Xml => ("LabelImage", "LabelImageFormat"),
            _ => ("ShippingLabel", "ImageFormat"),
        };
        let owned: Vec<(String, String)> = vec![
            (format!("{pr}/TrackingNumber"), id.clone()),
            (
                format!("{pr}/ServiceOptionsCharges/MonetaryValue"),
                rest(
                    &r,
                    &format!("{s}/PackageResults/ServiceOptionsCharges/MonetaryValue"),
                ),
            ),
            (
                format!("{pr}/{label}/{ipr}/Code"),
                rest(
                    &r,
                    &format!("{s}/PackageResults/ShippingLabel/ImageFormat/Code"),
                ),
            ),
            (
                format!("{pr}/{label}/GraphicImage"),
                rest(
                    &r,
                    &format!("{s}/PackageResults/ShippingLabel/GraphicImage"),
                ),
            ),
            (format!("{pr}/{label}/HTMLImage"), {
                // The label page names its own tracking number: the replay's, turned back.
                use base64::Engine as _;
                let b64 = base64::engine::general_purpose::STANDARD;
                let html = b64
                    .decode(rest(
                        &r,
                        &format!("{s}/PackageResults/ShippingLabel/HTMLImage"),
                    ))
                    .unwrap();
                let html = String::from_utf8(html).unwrap().replace(&replayed, &id);
                b64.encode(html)
            }),
        ];
        let extra: Vec<(String, String)> = match d {
            D::Xml => vec![(
                "ShipmentResults/NegotiatedRates/NetSummaryCharges/GrandTotal/MonetaryValue".into(),
                rest(
                    &r,
                    &format!("{s}/NegotiatedRateCharges/TotalCharge/MonetaryValue"),
                ),
            )],
            _ => vec![
                (
                    "ShipmentResults/NegotiatedRateCharges/TotalCharge/MonetaryValue".into(),
                    rest(
                        &r,
                        &format!("{s}/NegotiatedRateCharges/TotalCharge/MonetaryValue"),
                    ),
                ),
                (
                    "ShipmentResults/RatingMethod".into(),
                    rest(&r, &format!("{s}/RatingMethod")),
                ),
                (
                    "ShipmentResults/BillableWeightCalculationMethod".into(),
                    rest(&r, &format!("{s}/BillableWeightCalculationMethod")),
                ),
                (
                    "ShipmentResults/Disclaimer/Description".into(),
                    rest(&r, &format!("{s}/Disclaimer/0/Description")),
                ),
                (
                    format!("{pr}/BaseServiceCharge/MonetaryValue"),
                    rest(
                        &r,
                        &format!("{s}/PackageResults/BaseServiceCharge/MonetaryValue"),
                    ),
                ),
            ],
        };
        for (k, v) in owned.iter().chain(extra.iter()) {
            pairs.push((k.as_str(), v.clone()));
        }
        let root = if d == D::Xml {
            "ShipmentAcceptResponse"
        } else {
            "ShipmentResponse"
        };
        expect(d, &doc, root, &pairs);
    }
}

#[test]
fn the_richest_time_in_transit_answer_is_complete_in_every_dialect() {
    let e = env();
    let request = json!({"Request": {"RequestOption": "TNT"},
        "ShipFrom": {"Address": {"City": "Dover", "StateProvinceCode": "DE", "PostalCode": "19901", "CountryCode": "US"}},
        "ShipTo": {"Address": {"City": "Reno", "StateProvinceCode": "NV", "PostalCode": "89501", "CountryCode": "US"}},
        "Pickup": {"Date": "20260112"},
        "ShipmentWeight": {"UnitOfMeasurement": {"Code": "LBS"}, "Weight": "3.5"},
        "InvoiceLineTotal": {"CurrencyCode": "USD", "MonetaryValue": "100"}});
    for d in [D::Json, D::Soap, D::Xml] {
        e.sim.clear();
        let doc = match d {
            D::Xml => old_xml(&e, "TimeInTransit", "<TimeInTransitRequest><Request><RequestAction>TimeInTransit</RequestAction></Request><TransitFrom><AddressArtifactFormat><PoliticalDivision2>Dover</PoliticalDivision2><PoliticalDivision1>DE</PoliticalDivision1><PostcodePrimaryLow>19901</PostcodePrimaryLow><CountryCode>US</CountryCode></AddressArtifactFormat></TransitFrom><TransitTo><AddressArtifactFormat><PoliticalDivision2>Reno</PoliticalDivision2><PoliticalDivision1>NV</PoliticalDivision1><PostcodePrimaryLow>89501</PostcodePrimaryLow><CountryCode>US</CountryCode></AddressArtifactFormat></TransitTo><PickupDate>20260112</PickupDate><ShipmentWeight><UnitOfMeasurement><Code>LBS</Code></UnitOfMeasurement><Weight>3.5</Weight></ShipmentWeight><InvoiceLineTotal><CurrencyCode>USD</CurrencyCode><MonetaryValue>100</MonetaryValue></InvoiceLineTotal></TimeInTransitRequest>"),
            _ => xoltws(&e, d, "TimeInTransit", "TimeInTransitRequest", "http://www.ups.com/XMLSchema/XOLTWS/tnt/v1.0", &request),
        };
        let r = e.sim.replay(&EAST, &last_call(&e));
        let ems = "/emsResponse";
        let services = r
            .pointer("/emsResponse/services")
            .unwrap()
            .as_array()
            .unwrap()
            .len();
        let svc = |i: usize, k: &str| rest(&r, &format!("{ems}/services/{i}/{k}"));
        let compact = |s: String| s.replace(['-', ':'], "");
        let mut pairs: Vec<(String, String)> = vec![];
        let t = "TransitResponse";
        match d {
            D::Xml => {
                pairs.push((
                    format!("{t}/PickupDate"),
                    rest(&r, &format!("{ems}/shipDate")),
                ));
                pairs.push((
                    format!("{t}/TransitFrom/AddressArtifactFormat/PostcodePrimaryLow"),
                    rest(&r, &format!("{ems}/originPostalCode")),
                ));
                pairs.push((
                    format!("{t}/TransitTo/AddressArtifactFormat/PoliticalDivision2"),
                    rest(&r, &format!("{ems}/destinationCityName")),
                ));
                for i in 0..services {
                    let ss = format!("{t}/ServiceSummary[{i}]");
                    pairs.push((format!("{ss}/Service/Code"), svc(i, "serviceLevel")));
                    pairs.push((
                        format!("{ss}/Service/Description"),
                        svc(i, "serviceLevelDescription"),
                    ));
                    pairs.push((
                        format!("{ss}/Guaranteed/Code"),
                        if svc(i, "guaranteeIndicator") == "1" {
                            "Y".into()
                        } else {
                            "N".into()
                        },
                    ));
                    pairs.push((
                        format!("{ss}/EstimatedArrival/Date"),
                        svc(i, "deliveryDate"),
                    ));
                    pairs.push((
                        format!("{ss}/EstimatedArrival/Time"),
                        svc(i, "deliveryTime"),
                    ));
                    pairs.push((
                        format!("{ss}/EstimatedArrival/BusinessTransitDays"),
                        svc(i, "businessTransitDays"),
                    ));
                    pairs.push((
                        format!("{ss}/EstimatedArrival/DayOfWeek"),
                        svc(i, "deliveryDayOfWeek"),
                    ));
                    pairs.push((
                        format!("{ss}/EstimatedArrival/PickupDate"),
                        svc(i, "pickupDate"),
                    ));
                }
            }
            _ => {
                pairs.push((
                    format!("{t}/PickupDate"),
                    compact(rest(&r, &format!("{ems}/shipDate"))),
                ));
                pairs.push((
                    format!("{t}/ShipFrom/Address/PostalCode"),
                    rest(&r, &format!("{ems}/originPostalCode")),
                ));
                pairs.push((
                    format!("{t}/ShipTo/Address/City"),
                    rest(&r, &format!("{ems}/destinationCityName")),
                ));
                for i in 0..services {
                    let ss = format!("{t}/ServiceSummary[{i}]");
                    pairs.push((format!("{ss}/Service/Code"), svc(i, "serviceLevel")));
                    pairs.push((
                        format!("{ss}/Service/Description"),
                        svc(i, "serviceLevelDescription"),
                    ));
                    pairs.push((
                        format!("{ss}/EstimatedArrival/Arrival/Date"),
                        compact(svc(i, "deliveryDate")),
                    ));
                    pairs.push((
                        format!("{ss}/EstimatedArrival/Arrival/Time"),
                        compact(svc(i, "deliveryTime")),
                    ));
                    pairs.push((
                        format!("{ss}/EstimatedArrival/BusinessDaysInTransit"),
                        svc(i, "businessTransitDays"),
                    ));
                    pairs.push((
                        format!("{ss}/EstimatedArrival/Pickup/Date"),
                        compact(svc(i, "pickupDate")),
                    ));
                    pairs.push((
                        format!("{ss}/EstimatedArrival/DayOfWeek"),
                        svc(i, "deliveryDayOfWeek"),
                    ));
                    pairs.push((
                        format!("{ss}/EstimatedArrival/TotalTransitDays"),
                        svc(i, "totalTransitDays"),
                    ));
                }
            }
        }
        pairs.push((
            format!("{t}/ShipmentWeight/Weight"),
            rest(&r, &format!("{ems}/weight")),
        ));
        pairs.push((
            format!("{t}/InvoiceLineTotal/MonetaryValue"),
            rest(&r, &format!("{ems}/shipmentContentsValue")),
        ));
        let pairs: Vec<(&str, String)> =
            pairs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        expect(d, &doc, "TimeInTransitResponse", &pairs);
    }
}

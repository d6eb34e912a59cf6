//! SOAP clients end to end: `/webservices/<Svc>` envelopes reach the simulator's
//! REST API as REST JSON (arrays where UPS's schema has arrays) with a bearer and
//! no legacy credential; answers come back as SOAP envelopes in the client's
//! namespace, errors as SOAP Faults (HTTP 500) with UPS's error codes.

mod common;

use common::*;
use serde_json::{json, Value};

const RATE_NS: &str = "http://www.ups.com/XMLSchema/XOLTWS/Rate/v1.1";

fn rate_payload() -> String {
    format!(
        r#"<rate:RateRequest xmlns:rate="{RATE_NS}"><common:Request><common:RequestOption>Rate</common:RequestOption><common:TransactionReference><common:CustomerContext>cart-4411</common:CustomerContext></common:TransactionReference></common:Request>
<rate:Shipment><rate:Shipper><rate:ShipperNumber>9Y9Y9Y</rate:ShipperNumber><rate:Address><rate:AddressLine>10 Elm Rd</rate:AddressLine><rate:City>Dover</rate:City><rate:StateProvinceCode>DE</rate:StateProvinceCode><rate:PostalCode>19901</rate:PostalCode><rate:CountryCode>US</rate:CountryCode></rate:Address></rate:Shipper>
<rate:ShipTo><rate:Name>Acme</rate:Name><rate:Address><rate:AddressLine>5 Oak Ave</rate:AddressLine><rate:City>Reno</rate:City><rate:StateProvinceCode>NV</rate:StateProvinceCode><rate:PostalCode>89501</rate:PostalCode><rate:CountryCode>US</rate:CountryCode><rate:ResidentialAddressIndicator/></rate:Address></rate:ShipTo>
<rate:Service><rate:Code>02</rate:Code></rate:Service><rate:Package><rate:PackagingType><rate:Code>02</rate:Code></rate:PackagingType><rate:PackageWeight><rate:UnitOfMeasurement><rate:Code>LBS</rate:Code></rate:UnitOfMeasurement><rate:Weight>3</rate:Weight></rate:PackageWeight></rate:Package></rate:Shipment></rate:RateRequest>"#
    )
}

/// The same request as legacy JSON: its answer is UPS's bytes unchanged, an oracle for values.
fn rate_json(a: &TestAccount) -> Value {
    json!({"UPSSecurity": ups_security(a), "RateRequest": {"Request": {"RequestOption": "Rate"},
        "Shipment": {"Shipper": {"ShipperNumber": "9Y9Y9Y", "Address": {"AddressLine": ["10 Elm Rd"], "City": "Dover", "StateProvinceCode": "DE", "PostalCode": "19901", "CountryCode": "US"}},
                     "ShipTo": {"Name": "Acme", "Address": {"AddressLine": ["5 Oak Ave"], "City": "Reno", "StateProvinceCode": "NV", "PostalCode": "89501", "CountryCode": "US", "ResidentialAddressIndicator": ""}},
                     "Service": {"Code": "02"},
                     "Package": [{"PackagingType": {"Code": "02"}, "PackageWeight": {"UnitOfMeasurement": {"Code": "LBS"}, "Weight": "3"}}]}}})
}

struct Env {
    _dir: tempfile::TempDir,
    sim: Sim,
    proxy: Proxy,
}

fn env() -> Env {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST, &WEST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST, &WEST], FAST_TIMEOUTS);
    Env {
        _dir: dir,
        sim,
        proxy,
    }
}

fn soap(e: &Env, svc: &str, a: &TestAccount, payload: &str) -> (u16, String) {
    let (status, headers, text) = post_raw(
        &e.proxy.http,
        &format!("{}/webservices/{svc}", e.proxy.url),
        soap_envelope(a, payload),
        Some("text/xml; charset=utf-8"),
    );
    assert_eq!(headers["content-type"], "text/xml; charset=utf-8", "{text}");
    (status, text)
}

#[test]
fn a_soap_rate_request_is_answered_with_a_soap_rate_response() {
    let e = env();
    let (status, text) = soap(&e, "Rate", &EAST, &rate_payload());
    assert_eq!(status, 200, "{text}");
    let reqs = e.sim.api_requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0]["method"], "POST");
    assert_eq!(reqs[0]["path"], "/api/rating/v2409/Rate");
    assert_clean_upstream(&reqs[0], &EAST);
    let sent = sent_json(&reqs[0]);
    let s = &sent["RateRequest"]["Shipment"];
    // Arrays where the schema has arrays, even for one element.
    assert_eq!(s["Package"].as_array().map(Vec::len), Some(1), "{sent}");
    assert_eq!(s["Package"][0]["PackageWeight"]["Weight"], "3");
    assert_eq!(s["ShipTo"]["Address"]["AddressLine"], json!(["5 Oak Ave"]));
    assert_eq!(s["ShipTo"]["Address"]["ResidentialAddressIndicator"], "");
    assert_eq!(s["Service"], json!({"Code": "02"}));
    assert!(!reqs[0]["body"].as_str().unwrap().contains("UsernameToken"));

    // The client's namespace, the simulator's values.
    let b = "Body/RateResponse";
    assert_eq!(xml_ns(&text, b).as_deref(), Some(RATE_NS));
    assert_eq!(
        xml_ns(&text, &format!("{b}/Response")).as_deref(),
        Some("http://www.ups.com/XMLSchema/XOLTWS/Common/v1.0")
    );
    assert_eq!(
        xml_text(&text, &format!("{b}/Response/ResponseStatus/Code")).as_deref(),
        Some("1")
    );
    assert_eq!(
        xml_text(
            &text,
            &format!("{b}/Response/TransactionReference/CustomerContext")
        )
        .as_deref(),
        Some("cart-4411")
    );
    assert_eq!(
        xml_text(&text, &format!("{b}/RatedShipment/Service/Code")).as_deref(),
        Some("02")
    );
    let oracle: Value = e
        .proxy
        .http
        .post(format!("{}/rest/Rate", e.proxy.url))
        .json(&rate_json(&EAST))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let total = oracle["RateResponse"]["RatedShipment"]["TotalCharges"]["MonetaryValue"]
        .as_str()
        .unwrap();
    assert_eq!(
        xml_text(
            &text,
            &format!("{b}/RatedShipment/TotalCharges/MonetaryValue")
        )
        .as_deref(),
        Some(total)
    );
    assert_eq!(
        xml_text(&text, &format!("{b}/RatedShipment/RatedShipmentAlert/Code")).as_deref(),
        Some("110971")
    );
}

#[test]
fn any_prefixes_and_a_body_under_another_prefix_are_understood() {
    let e = env();
    // `tns:` bound to the envelope namespace, Body under a second prefix for the same URI,
    // payload with a default namespace and Common elements unprefixed.
    let body = format!(
        r#"<tns:Envelope xmlns:tns="http://schemas.xmlsoap.org/soap/envelope/"><tns:Header><UPSSecurity xmlns="http://www.ups.com/XMLSchema/XOLTWS/UPSS/v1.0"><ServiceAccessToken><AccessLicenseNumber>{}</AccessLicenseNumber></ServiceAccessToken><UsernameToken><Password>{}</Password><Username>{}</Username></UsernameToken></UPSSecurity></tns:Header>
<ns2:Body xmlns:ns2="http://schemas.xmlsoap.org/soap/envelope/"><XAVRequest xmlns="http://www.ups.com/XMLSchema/XOLTWS/xav/v1.0"><Request><RequestOption>3</RequestOption></Request><MaximumListSize>5</MaximumListSize><AddressKeyFormat><AddressLine>5 Oak Ave</AddressLine><PoliticalDivision2>Reno</PoliticalDivision2><PoliticalDivision1>NV</PoliticalDivision1><PostcodePrimaryLow>89501</PostcodePrimaryLow><CountryCode>US</CountryCode></AddressKeyFormat></XAVRequest></ns2:Body></tns:Envelope>"#,
        EAST.access_key, EAST.password, EAST.user
    );
    let (status, _, text) = post_raw(
        &e.proxy.http,
        &format!("{}/webservices/XAV", e.proxy.url),
        body,
        None,
    );
    assert_eq!(status, 200, "{text}");
    let reqs = e.sim.api_requests();
    assert_eq!(reqs[0]["path"], "/api/addressvalidation/v2/3");
    assert_eq!(reqs[0]["query"], "maximumcandidatelistsize=5");
    assert_clean_upstream(&reqs[0], &EAST);
    assert_eq!(
        sent_json(&reqs[0]),
        json!({"XAVRequest": {"AddressKeyFormat": {"AddressLine": ["5 Oak Ave"], "PoliticalDivision2": "Reno", "PoliticalDivision1": "NV", "PostcodePrimaryLow": "89501", "CountryCode": "US"}}})
    );
    let b = "Body/XAVResponse";
    assert_eq!(
        xml_ns(&text, b).as_deref(),
        Some("http://www.ups.com/XMLSchema/XOLTWS/xav/v1.0")
    );
    assert_eq!(
        xml_text(&text, &format!("{b}/ValidAddressIndicator")).as_deref(),
        Some("")
    );
    assert_eq!(
        xml_text(&text, &format!("{b}/AddressClassification/Description")).as_deref(),
        Some("Commercial")
    );
    assert_eq!(
        xml_all(
            &text,
            &format!("{b}/Candidate/AddressKeyFormat/AddressLine")
        ),
        vec!["5 Oak Ave".to_string()]
    );
}

#[test]
fn ship_void_track_and_time_in_transit_over_soap() {
    let e = env();
    let ship = r#"<ship:ShipmentRequest xmlns:ship="http://www.ups.com/XMLSchema/XOLTWS/Ship/v1.0"><common:Request><common:RequestOption>nonvalidate</common:RequestOption></common:Request>
<ship:Shipment><ship:Description>parts</ship:Description><ship:Shipper><ship:Name>East</ship:Name><ship:ShipperNumber>9Y9Y9Y</ship:ShipperNumber><ship:Address><ship:AddressLine>10 Elm Rd</ship:AddressLine><ship:City>Dover</ship:City><ship:StateProvinceCode>DE</ship:StateProvinceCode><ship:PostalCode>19901</ship:PostalCode><ship:CountryCode>US</ship:CountryCode></ship:Address></ship:Shipper>
<ship:ShipTo><ship:Name>Acme</ship:Name><ship:Address><ship:AddressLine>5 Oak Ave</ship:AddressLine><ship:AddressLine>Suite 2</ship:AddressLine><ship:City>Reno</ship:City><ship:StateProvinceCode>NV</ship:StateProvinceCode><ship:PostalCode>89501</ship:PostalCode><ship:CountryCode>US</ship:CountryCode></ship:Address></ship:ShipTo>
<ship:ShipFrom><ship:Name>East</ship:Name><ship:ShipperNumber>9Y9Y9Y</ship:ShipperNumber><ship:Address><ship:AddressLine>10 Elm Rd</ship:AddressLine><ship:City>Dover</ship:City><ship:PostalCode>19901</ship:PostalCode><ship:CountryCode>US</ship:CountryCode></ship:Address></ship:ShipFrom>
<ship:PaymentInformation><ship:ShipmentCharge><ship:Type>01</ship:Type><ship:BillShipper><ship:AccountNumber>9Y9Y9Y</ship:AccountNumber></ship:BillShipper></ship:ShipmentCharge></ship:PaymentInformation>
<ship:Service><ship:Code>03</ship:Code></ship:Service><ship:Package><ship:PackagingType><ship:Code>02</ship:Code></ship:PackagingType><ship:PackageWeight><ship:UnitOfMeasurement><ship:Code>LBS</ship:Code></ship:UnitOfMeasurement><ship:Weight>5</ship:Weight></ship:PackageWeight></ship:Package></ship:Shipment>
<ship:LabelSpecification><ship:LabelImageFormat><ship:Code>GIF</ship:Code></ship:LabelImageFormat></ship:LabelSpecification></ship:ShipmentRequest>"#;
    let (status, text) = soap(&e, "Ship", &EAST, ship);
    assert_eq!(status, 200, "{text}");
    let reqs = e.sim.api_requests();
    assert_eq!(reqs[0]["path"], "/api/shipments/v2409/ship");
    assert_clean_upstream(&reqs[0], &EAST);
    let sent = sent_json(&reqs[0]);
    let s = &sent["ShipmentRequest"]["Shipment"];
    assert_eq!(
        s["Package"][0]["Packaging"],
        json!({"Code": "02"}),
        "{sent}"
    );
    assert!(s["Package"][0].get("PackagingType").is_none());
    assert_eq!(s["PaymentInformation"]["ShipmentCharge"][0]["Type"], "01");
    assert_eq!(
        s["ShipTo"]["Address"]["AddressLine"],
        json!(["5 Oak Ave", "Suite 2"])
    );
    assert!(
        s["ShipFrom"].get("ShipperNumber").is_none(),
        "not in REST ShipFrom"
    );
    let b = "Body/ShipmentResponse/ShipmentResults";
    let id = xml_text(&text, &format!("{b}/ShipmentIdentificationNumber")).unwrap();
    assert!(id.starts_with("1Z9Y9Y9Y03"), "{id}");
    assert_eq!(
        xml_text(&text, &format!("{b}/PackageResults/TrackingNumber")).as_deref(),
        Some(id.as_str())
    );
    assert!(
        xml_text(
            &text,
            &format!("{b}/PackageResults/ShippingLabel/GraphicImage")
        )
        .unwrap()
        .len()
            > 20
    );

    e.sim.clear();
    let void = format!(
        r#"<v:VoidShipmentRequest xmlns:v="http://www.ups.com/XMLSchema/XOLTWS/Void/v1.1"><common:Request><common:RequestOption>1</common:RequestOption></common:Request><v:VoidShipment><v:ShipmentIdentificationNumber>{id}</v:ShipmentIdentificationNumber></v:VoidShipment></v:VoidShipmentRequest>"#
    );
    let (status, text) = soap(&e, "Void", &EAST, &void);
    assert_eq!(status, 200, "{text}");
    let reqs = e.sim.api_requests();
    assert_eq!(reqs[0]["method"], "DELETE");
    assert_eq!(
        reqs[0]["path"],
        format!("/api/shipments/v2409/void/cancel/{id}")
    );
    assert_eq!(reqs[0]["body"], "");
    assert_clean_upstream(&reqs[0], &EAST);
    assert_eq!(
        xml_text(&text, "Body/VoidShipmentResponse/SummaryResult/Status/Code").as_deref(),
        Some("1")
    );

    e.sim.clear();
    let track = format!(
        r#"<trk:TrackRequest xmlns:trk="http://www.ups.com/XMLSchema/XOLTWS/Track/v2.0"><common:Request><common:RequestOption>1</common:RequestOption></common:Request><trk:InquiryNumber>{id}</trk:InquiryNumber></trk:TrackRequest>"#
    );
    let (status, text) = soap(&e, "Track", &EAST, &track);
    assert_eq!(status, 200, "{text}");
    let reqs = e.sim.api_requests();
    assert_eq!(reqs[0]["method"], "GET");
    assert_eq!(reqs[0]["path"], format!("/api/track/v1/details/{id}"));
    assert_clean_upstream(&reqs[0], &EAST);
    let b = "Body/TrackResponse/Shipment";
    assert_eq!(
        xml_ns(&text, "Body/TrackResponse").as_deref(),
        Some("http://www.ups.com/XMLSchema/XOLTWS/Track/v2.0")
    );
    assert_eq!(
        xml_text(&text, &format!("{b}/InquiryNumber/Value")).as_deref(),
        Some(id.as_str())
    );
    assert_eq!(
        xml_all(&text, &format!("{b}/Package/Activity/Status/Description")),
        vec![
            "DELIVERED",
            "Departed from Facility",
            "Pickup Scan",
            "Shipper created a label, UPS has not received the package yet."
        ]
    );
    assert_eq!(
        xml_text(
            &text,
            &format!("{b}/Package/Activity/ActivityLocation/Address/City")
        )
        .as_deref(),
        Some("NEW YORK")
    );

    e.sim.clear();
    let tnt = r#"<tnt:TimeInTransitRequest xmlns:tnt="http://www.ups.com/XMLSchema/XOLTWS/tnt/v1.0"><common:Request><common:RequestOption>TNT</common:RequestOption></common:Request>
<tnt:ShipFrom><tnt:Address><tnt:City>Dover</tnt:City><tnt:StateProvinceCode>DE</tnt:StateProvinceCode><tnt:PostalCode>19901</tnt:PostalCode><tnt:CountryCode>US</tnt:CountryCode></tnt:Address></tnt:ShipFrom>
<tnt:ShipTo><tnt:Address><tnt:City>Reno</tnt:City><tnt:PostalCode>89501</tnt:PostalCode><tnt:CountryCode>US</tnt:CountryCode><tnt:ResidentialAddressIndicator/></tnt:Address></tnt:ShipTo>
<tnt:Pickup><tnt:Date>20260112</tnt:Date></tnt:Pickup><tnt:ShipmentWeight><tnt:UnitOfMeasurement><tnt:Code>LBS</tnt:Code></tnt:UnitOfMeasurement><tnt:Weight>3.5</tnt:Weight></tnt:ShipmentWeight></tnt:TimeInTransitRequest>"#;
    let (status, text) = soap(&e, "TimeInTransit", &EAST, tnt);
    assert_eq!(status, 200, "{text}");
    let reqs = e.sim.api_requests();
    assert_eq!(reqs[0]["path"], "/api/shipments/v1/transittimes");
    assert_clean_upstream(&reqs[0], &EAST);
    let sent = sent_json(&reqs[0]);
    assert_eq!(sent["originPostalCode"], "19901");
    assert_eq!(sent["destinationCityName"], "Reno");
    assert_eq!(sent["residentialIndicator"], "01");
    assert_eq!(sent["shipDate"], "2026-01-12");
    assert_eq!(sent["weight"], json!(3.5));
    let b = "Body/TimeInTransitResponse/TransitResponse";
    assert_eq!(
        xml_text(&text, &format!("{b}/PickupDate")).as_deref(),
        Some("20260112")
    );
    assert_eq!(
        xml_all(&text, &format!("{b}/ServiceSummary/Service/Code")),
        vec!["1DA", "2DA", "GND"]
    );
    assert_eq!(
        xml_all(
            &text,
            &format!("{b}/ServiceSummary/EstimatedArrival/Arrival/Date")
        ),
        vec!["20260113", "20260114", "20260116"]
    );
}

fn fault_code(text: &str) -> (String, String) {
    (
        soap_fault_code(text).unwrap_or_default(),
        xml_text(text, &format!("{SOAP_FAULT_ERROR}/Severity")).unwrap_or_default(),
    )
}

#[test]
fn refusals_and_ups_errors_are_soap_faults() {
    let e = env();
    // Wrong password: 250002, nothing forwarded.
    let mut bad = EAST.clone();
    bad.password = "wrong-password";
    let (status, text) = soap(&e, "Rate", &bad, &rate_payload());
    assert_eq!(status, 500);
    assert_eq!(
        fault_code(&text),
        ("250002".into(), "Authentication".into())
    );
    assert_eq!(
        xml_text(&text, "Body/Fault/faultcode").as_deref(),
        Some("Client")
    );
    // Unknown access key: 250003.
    let mut bad = EAST.clone();
    bad.access_key = "NOSUCHKEY";
    let (status, text) = soap(&e, "Rate", &bad, &rate_payload());
    assert_eq!((status, fault_code(&text).0.as_str()), (500, "250003"));
    assert!(e.sim.api_requests().is_empty());

    // Malformed XML.
    let (status, _, text) = post_raw(
        &e.proxy.http,
        &format!("{}/webservices/Rate", e.proxy.url),
        "<soapenv:Envelope",
        None,
    );
    assert_eq!((status, fault_code(&text).0.as_str()), (500, "10001"));

    // UPS 4xx: the code UPS gave, severity Hard.
    e.sim.faults(json!({"api_status": 400}));
    let (status, text) = soap(&e, "Rate", &EAST, &rate_payload());
    assert_eq!(status, 500);
    assert_eq!(fault_code(&text), ("10400".into(), "Hard".into()));
    // UPS 5xx: transient, faultcode Server.
    e.sim.faults(json!({"api_status": 503}));
    let (status, text) = soap(&e, "Rate", &EAST, &rate_payload());
    assert_eq!(status, 500);
    assert_eq!(fault_code(&text), ("10503".into(), "Transient".into()));
    assert_eq!(
        xml_text(&text, "Body/Fault/faultcode").as_deref(),
        Some("Server")
    );
    e.sim.clear_faults();

    // A token failure (new account, token endpoint down): transient 20001, not the client's credentials.
    e.sim.faults(json!({"token_status": 503}));
    let (status, text) = soap(&e, "Rate", &WEST, &rate_payload());
    assert_eq!(status, 500);
    assert_eq!(fault_code(&text), ("20001".into(), "Transient".into()));
}

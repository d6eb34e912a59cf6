//! Old-XML clients end to end: `/ups.app/xml/<Svc>` bodies (an `AccessRequest`
//! document, then the old request document) reach the simulator's REST API as
//! REST JSON with a bearer and no legacy credential; answers are the old
//! response documents (HTTP 200, `ResponseStatusCode` 1/0, `Response/Error`).
//! ShipConfirm/ShipAccept ship exactly once; the quirks real clients have are
//! each exercised.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const RATE: &str = r#"<?xml version="1.0"?>
<RatingServiceSelectionRequest><Request><TransactionReference><CustomerContext>cart-4411</CustomerContext><XpciVersion>1.0001</XpciVersion></TransactionReference><RequestAction>Rate</RequestAction><RequestOption>Rate</RequestOption></Request>
<Shipment><Shipper><ShipperNumber>9Y9Y9Y</ShipperNumber><Address><AddressLine1>10 Elm Rd</AddressLine1><City>Dover</City><StateProvinceCode>DE</StateProvinceCode><PostalCode>19901</PostalCode><CountryCode>US</CountryCode></Address></Shipper>
<ShipTo><CompanyName>Acme</CompanyName><Address><AddressLine1>5 Oak Ave</AddressLine1><City>Reno</City><StateProvinceCode>NV</StateProvinceCode><PostalCode>89501</PostalCode><CountryCode>US</CountryCode><ResidentialAddressIndicator/></Address></ShipTo>
<Service><Code>02</Code></Service><Package><PackagingType><Code>02</Code></PackagingType><PackageWeight><UnitOfMeasurement><Code>LBS</Code></UnitOfMeasurement><Weight>3</Weight></PackageWeight></Package>
<RateInformation><NegotiatedRatesIndicator/></RateInformation></Shipment></RatingServiceSelectionRequest>"#;

fn confirm(a: &TestAccount) -> String {
    format!(
        r#"<?xml version="1.0"?>
<ShipmentConfirmRequest><Request><RequestAction>ShipConfirm</RequestAction><RequestOption>nonvalidate</RequestOption><TransactionReference><CustomerContext>order-77</CustomerContext></TransactionReference></Request>
<Shipment><Description>parts</Description><Shipper><Name>East</Name><PhoneNumber>3025550100</PhoneNumber><ShipperNumber>{0}</ShipperNumber><Address><AddressLine1>10 Elm Rd</AddressLine1><City>Dover</City><StateProvinceCode>DE</StateProvinceCode><PostalCode>19901</PostalCode><CountryCode>US</CountryCode></Address></Shipper>
<ShipTo><CompanyName>Acme</CompanyName><AttentionName>Pat</AttentionName><PhoneNumber>7755550100</PhoneNumber><Address><AddressLine1>5 Oak Ave</AddressLine1><AddressLine2>Suite 2</AddressLine2><City>Reno</City><StateProvinceCode>NV</StateProvinceCode><PostalCode>89501</PostalCode><CountryCode>US</CountryCode></Address></ShipTo>
<PaymentInformation><Prepaid><BillShipper><AccountNumber>{0}</AccountNumber></BillShipper></Prepaid></PaymentInformation>
<Service><Code>03</Code></Service><Package><PackagingType><Code>02</Code></PackagingType><PackageWeight><UnitOfMeasurement><Code>LBS</Code></UnitOfMeasurement><Weight>5</Weight></PackageWeight></Package></Shipment>
<LabelSpecification><LabelPrintMethod><Code>GIF</Code></LabelPrintMethod><HTTPUserAgent>Mozilla/4.5</HTTPUserAgent></LabelSpecification></ShipmentConfirmRequest>"#,
        a.shipper
    )
}

fn accept(digest: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><ShipmentAcceptRequest><Request><RequestAction>ShipAccept</RequestAction><TransactionReference><CustomerContext>order-77</CustomerContext></TransactionReference></Request><ShipmentDigest>{digest}</ShipmentDigest></ShipmentAcceptRequest>"
    )
}

struct Env {
    _dir: tempfile::TempDir,
    sim: Sim,
    proxy: Proxy,
}

fn env_with(extra: &str) -> Env {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST, &WEST], 14399);
    let proxy = Proxy::start(
        dir.path(),
        &sim,
        &[&EAST, &WEST],
        &format!("{FAST_TIMEOUTS}{extra}"),
    );
    Env {
        _dir: dir,
        sim,
        proxy,
    }
}

fn env() -> Env {
    env_with("")
}

fn xml(e: &Env, svc: &str, body: impl Into<Vec<u8>>) -> String {
    let (status, headers, text) = post_raw(
        &e.proxy.http,
        &format!("{}/ups.app/xml/{svc}", e.proxy.url),
        body,
        Some("application/x-www-form-urlencoded"),
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["content-type"], "application/xml");
    assert!(
        text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
        "{text}"
    );
    text
}

fn error_of(text: &str) -> (String, String, String) {
    let t = |p: &str| xml_text(text, p).unwrap_or_default();
    (
        t("Response/ResponseStatusCode"),
        t("Response/Error/ErrorCode"),
        t("Response/Error/ErrorSeverity"),
    )
}

#[test]
fn an_old_xml_rate_request_is_answered_with_the_old_rate_response() {
    let e = env();
    let text = xml(&e, "Rate", format!("{}{RATE}", access(&EAST)));
    let reqs = e.sim.api_requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0]["path"], "/api/rating/v2409/Rate");
    assert_clean_upstream(&reqs[0], &EAST);
    assert!(!reqs[0]["body"].as_str().unwrap().contains(EAST.user));
    let sent = sent_json(&reqs[0]);
    let s = &sent["RateRequest"]["Shipment"];
    assert_eq!(s["Package"].as_array().map(Vec::len), Some(1), "{sent}");
    assert_eq!(s["ShipTo"]["Name"], "Acme");
    assert_eq!(s["ShipTo"]["Address"]["AddressLine"], json!(["5 Oak Ave"]));
    assert_eq!(s["ShipTo"]["Address"]["ResidentialAddressIndicator"], "");
    assert_eq!(
        s["ShipmentRatingOptions"],
        json!({"NegotiatedRatesIndicator": ""})
    );
    assert!(sent["RateRequest"]["Request"]
        .get("RequestAction")
        .is_none());

    assert_old_xml_success(&text);
    assert_eq!(
        xml_text(&text, "Response/TransactionReference/CustomerContext").as_deref(),
        Some("cart-4411")
    );
    assert_eq!(
        xml_text(&text, "Response/TransactionReference/XpciVersion").as_deref(),
        Some("1.0001")
    );
    assert_eq!(
        xml_text(&text, "RatedShipment/Service/Code").as_deref(),
        Some("02")
    );
    assert_eq!(
        xml_text(&text, "RatedShipment/RatedShipmentWarning").as_deref(),
        Some("Your invoice may vary from the displayed reference rates")
    );
    assert_eq!(
        xml_text(&text, "RatedShipment/GuaranteedDaysToDelivery").as_deref(),
        Some("2")
    );
    // Same values as the REST answer the legacy-JSON dialect passes through unchanged.
    let oracle: Value = e
        .proxy
        .http
        .post(format!("{}/rest/Rate", e.proxy.url))
        .json(&json!({"UPSSecurity": ups_security(&EAST), "RateRequest": sent["RateRequest"]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let rs = &oracle["RateResponse"]["RatedShipment"];
    assert_eq!(
        xml_text(&text, "RatedShipment/TotalCharges/MonetaryValue").as_deref(),
        rs["TotalCharges"]["MonetaryValue"].as_str()
    );
    assert_eq!(
        xml_text(
            &text,
            "RatedShipment/NegotiatedRates/NetSummaryCharges/GrandTotal/MonetaryValue"
        )
        .as_deref(),
        rs["NegotiatedRateCharges"]["TotalCharge"]["MonetaryValue"].as_str()
    );
    assert_eq!(
        xml_text(&text, "RatedShipment/RatedPackage/Weight").as_deref(),
        rs["RatedPackage"]["Weight"].as_str()
    );
}

#[test]
fn ship_confirm_then_accept_ships_exactly_once() {
    let e = env();
    let text = xml(
        &e,
        "ShipConfirm",
        format!("{}{}", access(&EAST), confirm(&EAST)),
    );
    assert_old_xml_success(&text);
    assert_eq!(
        xml_text(&text, "Response/TransactionReference/CustomerContext").as_deref(),
        Some("order-77")
    );
    let digest = xml_text(&text, "ShipmentDigest").unwrap();
    assert!(digest.len() > 80, "{digest}");
    assert_eq!(
        xml_text(&text, "ShipmentIdentificationNumber").as_deref(),
        Some("")
    );
    let confirm_total = xml_text(&text, "ShipmentCharges/TotalCharges/MonetaryValue").unwrap();
    // Confirm priced with Rate only: nothing shipped yet.
    let reqs = e.sim.api_requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0]["path"], "/api/rating/v2409/Rate");
    assert_clean_upstream(&reqs[0], &EAST);
    let rated = sent_json(&reqs[0]);
    assert_eq!(
        rated["RateRequest"]["Shipment"]["Package"][0]["PackagingType"]["Code"],
        "02"
    );
    assert_eq!(
        rated["RateRequest"]["Shipment"]["PaymentDetails"]["ShipmentCharge"][0]["Type"],
        "01"
    );

    let text = xml(
        &e,
        "ShipAccept",
        format!("{}{}", access(&EAST), accept(&digest)),
    );
    assert_old_xml_success(&text);
    let id = xml_text(&text, "ShipmentResults/ShipmentIdentificationNumber").unwrap();
    assert!(id.starts_with("1Z9Y9Y9Y03"), "{id}");
    assert_eq!(
        xml_text(&text, "ShipmentResults/PackageResults/TrackingNumber").as_deref(),
        Some(id.as_str())
    );
    assert_eq!(
        xml_text(
            &text,
            "ShipmentResults/PackageResults/LabelImage/LabelImageFormat/Code"
        )
        .as_deref(),
        Some("GIF")
    );
    assert!(
        xml_text(
            &text,
            "ShipmentResults/PackageResults/LabelImage/GraphicImage"
        )
        .unwrap()
        .len()
            > 20
    );
    assert_eq!(
        xml_text(
            &text,
            "ShipmentResults/ShipmentCharges/TotalCharges/MonetaryValue"
        ),
        Some(confirm_total)
    );
    let ships: Vec<Value> = e
        .sim
        .api_requests()
        .into_iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with("/ship"))
        .collect();
    assert_eq!(ships.len(), 1);
    assert_eq!(ships[0]["path"], "/api/shipments/v2409/ship");
    assert_clean_upstream(&ships[0], &EAST);
    let sent = sent_json(&ships[0]);
    let s = &sent["ShipmentRequest"]["Shipment"];
    assert_eq!(
        s["PaymentInformation"]["ShipmentCharge"],
        json!([{"BillShipper": {"AccountNumber": "9Y9Y9Y"}, "Type": "01"}])
    );
    assert_eq!(s["ShipTo"]["Name"], "Acme");
    assert_eq!(s["ShipTo"]["Phone"], json!({"Number": "7755550100"}));
    assert_eq!(
        s["ShipTo"]["Address"]["AddressLine"],
        json!(["5 Oak Ave", "Suite 2"])
    );
    assert_eq!(s["Package"][0]["Packaging"]["Code"], "02");
    assert_eq!(
        sent["ShipmentRequest"]["LabelSpecification"]["LabelStockSize"],
        json!({"Height": "6", "Width": "4"})
    );

    // A retried accept of the same digest is the same shipment: the first answer again (the
    // same number and label), and nothing is shipped twice.
    let again = xml(
        &e,
        "ShipAccept",
        format!("{}{}", access(&EAST), accept(&digest)),
    );
    assert_old_xml_success(&again);
    assert_eq!(
        xml_text(&again, "ShipmentResults/ShipmentIdentificationNumber").as_deref(),
        Some(id.as_str()),
        "{again}"
    );
    let ships = e
        .sim
        .api_requests()
        .into_iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with("/ship"))
        .count();
    assert_eq!(ships, 1, "a replayed accept must not ship again");

    // The digest used with another account's credentials: refused, nothing shipped.
    let text = xml(
        &e,
        "ShipAccept",
        format!("{}{}", access(&WEST), accept(&digest)),
    );
    assert_eq!(error_of(&text), ("0".into(), "10002".into(), "Hard".into()));
    assert_eq!(
        xml_text(&text, "ShipmentResults/ShipmentIdentificationNumber"),
        None
    );
    // A forged digest (last character changed): refused before any lookup.
    let mut forged = digest.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let text = xml(
        &e,
        "ShipAccept",
        format!("{}{}", access(&EAST), accept(&forged)),
    );
    assert_eq!(error_of(&text), ("0".into(), "10002".into(), "Hard".into()));
    let ships = e
        .sim
        .api_requests()
        .into_iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with("/ship"))
        .count();
    assert_eq!(ships, 1);
    let log = e.proxy.log_text();
    assert!(
        log.contains("ShipmentDigest refused: bound to another account"),
        "{log}"
    );
    assert!(log.contains("ShipmentDigest refused: forged"));
    assert!(
        !log.contains(&digest),
        "the digest is a capability and must not be logged"
    );
}

#[test]
fn an_expired_digest_is_refused() {
    let e = env_with("digest_ttl_secs = 1\n");
    let text = xml(
        &e,
        "ShipConfirm",
        format!("{}{}", access(&EAST), confirm(&EAST)),
    );
    let digest = xml_text(&text, "ShipmentDigest").unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    let text = xml(
        &e,
        "ShipAccept",
        format!("{}{}", access(&EAST), accept(&digest)),
    );
    assert_eq!(error_of(&text), ("0".into(), "10002".into(), "Hard".into()));
    assert!(xml_text(&text, "Response/Error/ErrorDescription")
        .unwrap()
        .contains("expired"));
    assert_eq!(
        e.sim
            .api_requests()
            .iter()
            .filter(|r| r["path"].as_str().unwrap().ends_with("/ship"))
            .count(),
        0
    );
}

#[test]
fn void_track_time_in_transit_av_and_xav() {
    let e = env();
    // Void, RequestAction numeric as one Node client sends it.
    let void = "<?xml version=\"1.0\"?><VoidShipmentRequest><Request><RequestAction>1</RequestAction></Request><ExpandedVoidShipment><ShipmentIdentificationNumber>1Z9Y9Y9Y0312345678</ShipmentIdentificationNumber><TrackingNumber>1Z9Y9Y9Y0312345678</TrackingNumber><TrackingNumber>1Z9Y9Y9Y0312345679</TrackingNumber></ExpandedVoidShipment></VoidShipmentRequest>";
    let text = xml(&e, "Void", format!("{}{void}", access(&EAST)));
    let reqs = e.sim.api_requests();
    assert_eq!(reqs[0]["method"], "DELETE");
    assert_eq!(
        reqs[0]["path"],
        "/api/shipments/v2409/void/cancel/1Z9Y9Y9Y0312345678"
    );
    assert_eq!(
        reqs[0]["query"],
        "trackingnumber=%5B%221Z9Y9Y9Y0312345678%22%2C%221Z9Y9Y9Y0312345679%22%5D"
    );
    assert_clean_upstream(&reqs[0], &EAST);
    assert_old_xml_success(&text);
    assert_eq!(
        xml_text(&text, "Status/StatusType/Code").as_deref(),
        Some("1")
    );
    assert_eq!(
        xml_all(&text, "PackageLevelResults/TrackingNumber"),
        vec!["1Z9Y9Y9Y0312345678", "1Z9Y9Y9Y0312345679"]
    );

    // Track: lower-case RequestAction, TrackingNumber/Value (a Python client), all activity.
    e.sim.clear();
    let track = "<?xml version=\"1.0\"?><TrackRequest xml:lang=\"en-US\"><Request><RequestAction>track</RequestAction><RequestOption>activity</RequestOption></Request><TrackingNumber><Value>1Z9Y9Y9Y0312345678</Value></TrackingNumber></TrackRequest>";
    let text = xml(&e, "Track", format!("{}{track}", access(&EAST)));
    let reqs = e.sim.api_requests();
    assert_eq!(reqs[0]["method"], "GET");
    assert_eq!(reqs[0]["path"], "/api/track/v1/details/1Z9Y9Y9Y0312345678");
    assert_clean_upstream(&reqs[0], &EAST);
    assert_eq!(
        xml_text(&text, "Shipment/ShipmentIdentificationNumber").as_deref(),
        Some("1Z9Y9Y9Y0312345678"),
        "{text}"
    );
    assert_eq!(
        xml_text(&text, "Shipment/Shipper/Address/City").as_deref(),
        Some("ATLANTA")
    );
    assert_eq!(
        xml_text(&text, "Shipment/ShipTo/Address/PostalCode").as_deref(),
        Some("10001")
    );
    assert_eq!(
        xml_text(&text, "Shipment/Package/TrackingNumber").as_deref(),
        Some("1Z9Y9Y9Y0312345678")
    );
    assert_eq!(
        xml_all(&text, "Shipment/Package/Activity/Status/StatusType/Code"),
        vec!["D", "I", "P", "M"]
    );
    assert_eq!(
        xml_text(&text, "Shipment/Package/Activity/Status/StatusCode/Code").as_deref(),
        Some("FS")
    );
    assert_eq!(
        xml_text(&text, "Shipment/Package/PackageWeight/Weight").as_deref(),
        Some("5.00")
    );
    // Not found: an old error document.
    let nf = track.replace("1Z9Y9Y9Y0312345678", "1ZNOTFOUND0000001");
    let text = xml(&e, "Track", format!("{}{nf}", access(&EAST)));
    assert_eq!(
        error_of(&text),
        ("0".into(), "151044".into(), "Hard".into())
    );
    assert_eq!(
        xml_text(&text, "Response/Error/ErrorDescription").as_deref(),
        Some("Tracking Information Not Found")
    );

    // TimeInTransit (AddressArtifactFormat).
    e.sim.clear();
    let tnt = "<?xml version=\"1.0\"?><TimeInTransitRequest><Request><RequestAction>TimeInTransit</RequestAction></Request><TransitFrom><AddressArtifactFormat><PoliticalDivision2>Dover</PoliticalDivision2><PoliticalDivision1>DE</PoliticalDivision1><CountryCode>US</CountryCode><PostcodePrimaryLow>19901</PostcodePrimaryLow></AddressArtifactFormat></TransitFrom><TransitTo><AddressArtifactFormat><PoliticalDivision2>Reno</PoliticalDivision2><CountryCode>US</CountryCode><PostcodePrimaryLow>89501</PostcodePrimaryLow><ResidentialAddressIndicator/></AddressArtifactFormat></TransitTo><ShipmentWeight><UnitOfMeasurement><Code>LBS</Code></UnitOfMeasurement><Weight>3</Weight></ShipmentWeight><PickupDate>20260112</PickupDate><DocumentsOnlyIndicator/></TimeInTransitRequest>";
    let text = xml(&e, "TimeInTransit", format!("{}{tnt}", access(&EAST)));
    let reqs = e.sim.api_requests();
    assert_eq!(reqs[0]["path"], "/api/shipments/v1/transittimes");
    assert_clean_upstream(&reqs[0], &EAST);
    let sent = sent_json(&reqs[0]);
    assert_eq!(sent["originCityName"], "Dover");
    assert_eq!(sent["originStateProvince"], "DE");
    assert_eq!(sent["destinationPostalCode"], "89501");
    assert_eq!(sent["residentialIndicator"], "01");
    assert_eq!(sent["shipDate"], "2026-01-12");
    assert_eq!(sent["billType"], "02");
    assert_eq!(sent["weight"], json!(3));
    let t = "TransitResponse";
    assert_eq!(
        xml_text(&text, &format!("{t}/PickupDate")).as_deref(),
        Some("2026-01-12"),
        "{text}"
    );
    assert_eq!(
        xml_text(
            &text,
            &format!("{t}/TransitTo/AddressArtifactFormat/PoliticalDivision2")
        )
        .as_deref(),
        Some("Reno")
    );
    assert_eq!(
        xml_text(
            &text,
            &format!("{t}/TransitFrom/AddressArtifactFormat/Country")
        )
        .as_deref(),
        Some("UNITED STATES")
    );
    assert_eq!(
        xml_all(&text, &format!("{t}/ServiceSummary/Service/Code")),
        vec!["1DA", "2DA", "GND"]
    );
    assert_eq!(
        xml_all(&text, &format!("{t}/ServiceSummary/Guaranteed/Code")),
        vec!["Y", "Y", "N"]
    );
    assert_eq!(
        xml_all(&text, &format!("{t}/ServiceSummary/EstimatedArrival/Date")),
        vec!["2026-01-13", "2026-01-14", "2026-01-16"]
    );
    assert_eq!(
        xml_all(
            &text,
            &format!("{t}/ServiceSummary/EstimatedArrival/BusinessTransitDays")
        ),
        vec!["1", "2", "4"]
    );

    // AV (city/state/ZIP) → XAV option 1.
    e.sim.clear();
    let av = "<?xml version=\"1.0\"?><AddressValidationRequest><Request><RequestAction>AV</RequestAction></Request><Address><City>Reno</City><StateProvinceCode>NV</StateProvinceCode><PostalCode>89501</PostalCode></Address></AddressValidationRequest>";
    let text = xml(&e, "AV", format!("{}{av}", access(&EAST)));
    let reqs = e.sim.api_requests();
    assert_eq!(reqs[0]["path"], "/api/addressvalidation/v2/1");
    assert_clean_upstream(&reqs[0], &EAST);
    assert_eq!(
        sent_json(&reqs[0]),
        json!({"XAVRequest": {"AddressKeyFormat": {"PoliticalDivision2": "Reno", "PoliticalDivision1": "NV", "PostcodePrimaryLow": "89501", "CountryCode": "US"}}})
    );
    let r = "AddressValidationResult";
    assert_eq!(
        xml_text(&text, &format!("{r}/Rank")).as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        xml_text(&text, &format!("{r}/Quality")).as_deref(),
        Some("1.0")
    );
    assert_eq!(
        xml_text(&text, &format!("{r}/Address/City")).as_deref(),
        Some("Reno")
    );
    assert_eq!(
        xml_text(&text, &format!("{r}/PostalCodeLowEnd")).as_deref(),
        Some("89501")
    );

    // XAV through the same path name UPS used (`AddressValidationRequest` with AddressKeyFormat).
    e.sim.clear();
    let xav = "<?xml version=\"1.0\"?><AddressValidationRequest><Request><RequestAction>XAV</RequestAction><RequestOption>3</RequestOption></Request><MaximumListSize>3</MaximumListSize><AddressKeyFormat><ConsigneeName>Acme</ConsigneeName><BuildingName>B</BuildingName><AddressLine>5 Oak Ave</AddressLine><PoliticalDivision2>Reno</PoliticalDivision2><PoliticalDivision1>NV</PoliticalDivision1><PostcodePrimaryLow>89501</PostcodePrimaryLow><CountryCode>US</CountryCode></AddressKeyFormat></AddressValidationRequest>";
    let text = xml(&e, "XAV", format!("{}{xav}", access(&EAST)));
    let reqs = e.sim.api_requests();
    assert_eq!(reqs[0]["path"], "/api/addressvalidation/v2/3");
    assert_eq!(reqs[0]["query"], "maximumcandidatelistsize=3");
    assert_clean_upstream(&reqs[0], &EAST);
    let sent = sent_json(&reqs[0]);
    assert_eq!(
        sent["XAVRequest"]["AddressKeyFormat"]["AddressLine"],
        json!(["5 Oak Ave"])
    );
    assert!(sent["XAVRequest"]["AddressKeyFormat"]
        .get("BuildingName")
        .is_none());
    assert_eq!(
        xml_text(&text, "ValidAddressIndicator").as_deref(),
        Some(""),
        "{text}"
    );
    assert_eq!(
        xml_text(&text, "AddressClassification/Code").as_deref(),
        Some("1")
    );
    assert_eq!(
        xml_text(&text, "AddressKeyFormat/AddressClassification/Description").as_deref(),
        Some("Commercial")
    );
    assert_eq!(
        xml_all(&text, "AddressKeyFormat/AddressLine"),
        vec!["5 Oak Ave"]
    );
    assert_eq!(
        xml_text(&text, "AddressKeyFormat/PostcodePrimaryLow").as_deref(),
        Some("89501")
    );
}

#[test]
fn refusals_and_ups_errors_are_old_error_documents_at_http_200() {
    let e = env();
    let mut bad = EAST.clone();
    bad.password = "wrong-password";
    let text = xml(&e, "Rate", format!("{}{RATE}", access(&bad)));
    assert_eq!(
        error_of(&text),
        ("0".into(), "250002".into(), "Authentication".into())
    );
    assert_eq!(
        xml_text(&text, "Response/Error/ErrorDescription").as_deref(),
        Some("Invalid Authentication Information.")
    );
    assert_eq!(
        xml_text(&text, "Response/TransactionReference/CustomerContext").as_deref(),
        Some("cart-4411"),
        "the client's own reference is echoed"
    );
    assert!(
        roxmltree::Document::parse(&text)
            .unwrap()
            .root_element()
            .tag_name()
            .name()
            == "RatingServiceSelectionResponse"
    );
    // No AccessRequest at all: 250003.
    let text = xml(&e, "Rate", RATE);
    assert_eq!(error_of(&text).1, "250003");
    assert!(e.sim.api_requests().is_empty());
    // Malformed second document.
    let text = xml(
        &e,
        "Track",
        format!("{}<TrackRequest><Request>", access(&EAST)),
    );
    assert_eq!(error_of(&text), ("0".into(), "10001".into(), "Hard".into()));
    assert_eq!(
        roxmltree::Document::parse(&text)
            .unwrap()
            .root_element()
            .tag_name()
            .name(),
        "TrackResponse"
    );

    e.sim.faults(json!({"api_status": 400}));
    let text = xml(&e, "Rate", format!("{}{RATE}", access(&EAST)));
    assert_eq!(error_of(&text), ("0".into(), "10400".into(), "Hard".into()));
    e.sim.faults(json!({"api_status": 503}));
    let text = xml(&e, "Rate", format!("{}{RATE}", access(&EAST)));
    assert_eq!(
        error_of(&text),
        ("0".into(), "10503".into(), "Transient".into())
    );
    // A failing ShipConfirm pricing call stores nothing and answers the confirm error.
    let text = xml(
        &e,
        "ShipConfirm",
        format!("{}{}", access(&EAST), confirm(&EAST)),
    );
    assert_eq!(error_of(&text).1, "10503");
    assert_eq!(
        roxmltree::Document::parse(&text)
            .unwrap()
            .root_element()
            .tag_name()
            .name(),
        "ShipmentConfirmResponse"
    );
    assert_eq!(xml_text(&text, "ShipmentDigest"), None);
    e.sim.clear_faults();

    e.sim.faults(json!({"token_status": 503}));
    let text = xml(&e, "Rate", format!("{}{RATE}", access(&WEST)));
    assert_eq!(
        error_of(&text),
        ("0".into(), "20001".into(), "Transient".into())
    );
}

#[test]
fn real_client_quirks_are_tolerated() {
    let e = env();
    let url = format!("{}/ups.app/xml/Rate", e.proxy.url);
    let ok = |text: &str| xml_text(text, "Response/ResponseStatusCode").unwrap_or_default() == "1";
    // No content type at all; 8 spaces and a newline before each `<?xml`; a declaration with
    // `standalone="yes" ?>`; the two documents glued together without a newline.
    let spaced = format!(
        "        \n<?xml version=\"1.0\" standalone=\"yes\" ?>{}        \n{}",
        access(&EAST)
            .trim_start_matches("<?xml version=\"1.0\"?>\n")
            .trim_end(),
        RATE
    );
    let (status, _, text) = post_raw(&e.proxy.http, &url, spaced, None);
    assert_eq!(status, 200);
    assert!(ok(&text), "{text}");
    let glued = format!("{}{}", access(&EAST).trim_end(), RATE);
    for ct in [
        None,
        Some("text/xml"),
        Some("application/xml"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let (status, _, text) = post_raw(&e.proxy.http, &url, glued.clone(), ct);
        assert_eq!(status, 200);
        assert!(ok(&text), "{ct:?}: {text}");
    }
    // No declaration at all in either document.
    let bare = format!(
        "{}{}",
        access(&EAST).replace("<?xml version=\"1.0\"?>\n", ""),
        RATE.replace("<?xml version=\"1.0\"?>\n", "")
    );
    let (_, _, text) = post_raw(&e.proxy.http, &url, bare, None);
    assert!(ok(&text), "{text}");

    // ISO-8859-1 declared, Latin-1 bytes (a `ü`): decoded, sent to UPS as UTF-8, answered in UTF-8.
    e.sim.clear();
    let mut latin = access(&EAST).into_bytes();
    let doc = RATE
        .replace(
            "<?xml version=\"1.0\"?>",
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>",
        )
        .replace(
            "<CompanyName>Acme</CompanyName>",
            "<CompanyName>M\u{fc}ller</CompanyName>",
        );
    latin.extend(doc.chars().map(|c| c as u32 as u8));
    let text = xml(&e, "Rate", latin);
    assert!(ok(&text), "{text}");
    let sent = sent_json(&e.sim.api_requests()[0]);
    assert_eq!(sent["RateRequest"]["Shipment"]["ShipTo"]["Name"], "Müller");

    // Empty indicator elements survive in both spellings; `ResidentialAddress` is renamed.
    e.sim.clear();
    let doc = RATE.replace(
        "<ResidentialAddressIndicator/>",
        "<ResidentialAddress></ResidentialAddress>",
    );
    let text = xml(&e, "Rate", format!("{}{doc}", access(&EAST)));
    assert!(ok(&text));
    let sent = sent_json(&e.sim.api_requests()[0]);
    assert_eq!(
        sent["RateRequest"]["Shipment"]["ShipTo"]["Address"]["ResidentialAddressIndicator"],
        ""
    );
    assert_eq!(
        sent["RateRequest"]["Shipment"]["ShipmentRatingOptions"]["NegotiatedRatesIndicator"],
        ""
    );

    // HTTP/1.0 with Connection: close: a Content-Length reply, not chunked, then close.
    let body = format!("{}{RATE}", access(&EAST));
    let addr = e.proxy.url.trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST /ups.app/xml/Rate HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, payload) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1."), "{head}");
    assert!(head.contains(" 200 "), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(!lower.contains("transfer-encoding"), "{head}");
    let len: usize = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(len, payload.len());
    assert!(ok(payload), "{payload}");
}

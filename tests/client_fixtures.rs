//! Requests captured from real legacy UPS client libraries (ClassicUPS3 0.1.8,
//! purplship.ups 2022.2, shipping-ups 0.5.7; see tests/fixtures/clients/README.md),
//! replayed byte for byte (body and content type) through the proxy to the
//! simulator: each is translated to clean REST JSON and answered with what the
//! library reads back. The ShipAccept captures carry a canned digest, replaced
//! by the one our ShipConfirm answered.

mod common;

use common::*;
use serde_json::{json, Value};

struct Capture {
    path: String,
    content_type: Option<String>,
    body: Vec<u8>,
}

fn capture(name: &str) -> Capture {
    let file = format!(
        "{}/tests/fixtures/clients/{name}.http",
        env!("CARGO_MANIFEST_DIR")
    );
    let raw = std::fs::read(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let path = lines.next().unwrap().split(' ').nth(1).unwrap().to_string();
    let content_type = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.trim().to_string());
    let declared: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim().parse().unwrap())
        .unwrap();
    assert_eq!(declared, body.len(), "{name}: capture is complete");
    Capture {
        path,
        content_type,
        body,
    }
}

fn send(proxy: &Proxy, c: &Capture, body: Vec<u8>) -> (u16, String) {
    let (status, _, text) = post_raw(
        &proxy.http,
        &format!("{}{}", proxy.url, c.path),
        body,
        c.content_type.as_deref(),
    );
    (status, text)
}

fn start() -> (tempfile::TempDir, Sim, Proxy) {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], FAST_TIMEOUTS);
    (dir, sim, proxy)
}

fn ship_calls(sim: &Sim) -> Vec<Value> {
    sim.api_requests()
        .into_iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with("/ship"))
        .collect()
}

/// Old-XML ShipConfirm + ShipAccept captures of one library: ships once, answers what it reads.
fn confirm_accept(lib: &str) -> (Value, String) {
    let (_dir, sim, proxy) = start();
    let c = capture(&format!("{lib}-shipconfirm"));
    let (status, text) = send(&proxy, &c, c.body.clone());
    assert_eq!(status, 200);
    assert_old_xml_success(&text);
    let digest = xml_text(&text, "ShipmentDigest").expect("digest");
    assert!(
        xml_text(&text, "ShipmentCharges/TotalCharges/MonetaryValue")
            .unwrap()
            .parse::<f64>()
            .unwrap()
            > 0.0
    );
    let a = capture(&format!("{lib}-shipaccept"));
    let body = String::from_utf8(a.body.clone())
        .unwrap()
        .replace("CAPTURE-DIGEST-0001", &digest);
    let (status, text) = send(&proxy, &a, body.into_bytes());
    assert_eq!(status, 200);
    assert_old_xml_success(&text);
    let id = xml_text(&text, "ShipmentResults/ShipmentIdentificationNumber").unwrap();
    assert!(id.starts_with("1Z9Y9Y9Y03"), "{id}");
    assert_eq!(xml_all(&text, "ShipmentResults/PackageResults").len(), 1);
    assert_eq!(
        xml_text(&text, "ShipmentResults/PackageResults/TrackingNumber").as_deref(),
        Some(id.as_str())
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
    let ships = ship_calls(&sim);
    assert_eq!(ships.len(), 1);
    for r in sim.api_requests() {
        assert_clean_upstream(&r, &EAST);
    }
    (sent_json(&ships[0]), text)
}

#[test]
fn classicups3_confirm_and_accept() {
    let (sent, _) = confirm_accept("classicups3");
    let sr = &sent["ShipmentRequest"];
    // Its swapped 4×6 stock is REST's Height 6 / Width 4; the empty PackageServiceOptions is gone.
    assert_eq!(
        sr["LabelSpecification"]["LabelStockSize"],
        json!({"Height": "6", "Width": "4"})
    );
    assert_eq!(
        sr["LabelSpecification"]["LabelImageFormat"],
        json!({"Code": "GIF"})
    );
    assert!(sr["LabelSpecification"].get("LabelPrintMethod").is_none());
    let p = &sr["Shipment"]["Package"][0];
    assert!(p.get("PackageServiceOptions").is_none(), "{p}");
    assert_eq!(p["Packaging"], json!({"Code": "02"}));
    assert_eq!(sr["Shipment"]["ShipTo"]["Name"], "Acme Corp");
    assert_eq!(
        sr["Shipment"]["PaymentInformation"]["ShipmentCharge"][0]["Type"],
        "01"
    );
}

#[test]
fn shipping_ups_rate_confirm_and_accept() {
    let (_dir, sim, proxy) = start();
    let c = capture("shipping-ups-rate");
    let (status, text) = send(&proxy, &c, c.body.clone());
    assert_eq!(status, 200);
    assert_old_xml_success(&text);
    assert_eq!(xml_all(&text, "RatedShipment").len(), 1);
    assert_eq!(
        xml_text(&text, "RatedShipment/Service/Code").as_deref(),
        Some("03")
    );
    let sent = sent_json(&sim.api_requests()[0]);
    let s = &sent["RateRequest"]["Shipment"];
    assert!(
        s["Shipper"].get("FaxNumber").is_none() && s["Shipper"].get("EMailAddress").is_none(),
        "{s}"
    );
    assert!(s.get("Description").is_none());
    assert_eq!(s["Shipper"]["Address"]["AddressLine"], json!(["10 Elm Rd"]));
    assert_eq!(s["ShipmentRatingOptions"]["NegotiatedRatesIndicator"], "");
    assert_eq!(sent["RateRequest"]["PickupType"], json!({"Code": "01"}));
    assert!(sent["RateRequest"]["Request"]
        .get("TransactionReference")
        .is_none());
    drop((sim, proxy));

    let (sent, _) = confirm_accept("shipping-ups");
    let sr = &sent["ShipmentRequest"];
    assert!(sr.get("PickupType").is_none() && sr.get("CustomerClassification").is_none());
    assert_eq!(
        sr["LabelSpecification"]["LabelStockSize"],
        json!({"Height": "6", "Width": "4"})
    );
}

#[test]
fn purplship_soap_rate_and_ship() {
    let (_dir, sim, proxy) = start();
    let c = capture("purplship-rate");
    let (status, text) = send(&proxy, &c, c.body.clone());
    assert_eq!(status, 200, "{text}");
    let reqs = sim.api_requests();
    assert_eq!(reqs[0]["path"], "/api/rating/v2409/Rate");
    let sent = sent_json(&reqs[0]);
    assert_eq!(
        sent["RateRequest"]["Request"]["RequestOption"], "Rate",
        "{sent}"
    );
    assert_eq!(
        xml_text(&text, "Body/RateResponse/RatedShipment/Service/Code").as_deref(),
        Some("03")
    );
    assert!(xml_text(
        &text,
        "Body/RateResponse/RatedShipment/TotalCharges/MonetaryValue"
    )
    .is_some());

    let c = capture("purplship-ship");
    let (status, text) = send(&proxy, &c, c.body.clone());
    assert_eq!(status, 200, "{text}");
    let ships = ship_calls(&sim);
    assert_eq!(ships.len(), 1);
    let sent = sent_json(&ships[0]);
    assert!(
        sent["ShipmentRequest"]["Shipment"]
            .get("ShipmentServiceOptions")
            .is_none(),
        "{sent}"
    );
    let r = "Body/ShipmentResponse/ShipmentResults";
    let id = xml_text(&text, &format!("{r}/ShipmentIdentificationNumber")).unwrap();
    assert!(id.starts_with("1Z9Y9Y9Y03"), "{id}");
    assert_eq!(
        xml_text(
            &text,
            &format!("{r}/PackageResults/ShippingLabel/ImageFormat/Code")
        )
        .as_deref(),
        Some("GIF")
    );
    for r in sim.api_requests() {
        assert_clean_upstream(&r, &EAST);
    }
}

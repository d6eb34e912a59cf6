//! Hostile bodies against the real proxy (XML, and legacy JSON's one case of the kind): a billion-laughs document and
//! 50 MiB bodies (declared and chunked) are refused fast, in dialect, with
//! bounded memory (peak RSS of the proxy process, VmHWM, measured before/after).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const LOL: &str = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>"#;

const FIFTY_MIB: usize = 50 * 1024 * 1024;

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Send a request head, then up to `body_len` bytes from a writer thread (chunked or not),
/// and read the answer. Returns (head, body, elapsed).
fn hostile(addr: &str, path: &str, body_len: usize, chunked: bool) -> (String, String, Duration) {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let framing = if chunked {
        "Transfer-Encoding: chunked\r\n".to_string()
    } else {
        format!("Content-Length: {body_len}\r\n")
    };
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n{framing}\r\n"
    )
    .unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let block = vec![b'<'; 64 * 1024];
        let mut sent = 0;
        while sent < body_len {
            let r = if chunked {
                write!(w, "{:x}\r\n", block.len())
                    .and_then(|_| w.write_all(&block))
                    .and_then(|_| w.write_all(b"\r\n"))
            } else {
                w.write_all(&block)
            };
            if r.is_err() {
                return; // the proxy refused and closed: expected
            }
            sent += block.len();
        }
        if chunked {
            let _ = w.write_all(b"0\r\n\r\n");
        }
    });
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let elapsed = started.elapsed();
    drop(s);
    let _ = writer.join();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_string(), body.to_string(), elapsed)
}

#[test]
fn billion_laughs_and_50_mib_bodies_are_refused_fast_with_bounded_memory() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], FAST_TIMEOUTS);
    let pid = proxy.proc.child.id();
    let addr = proxy.url.trim_start_matches("http://").to_string();
    let before = vm_hwm_kib(pid);

    // Billion laughs, as the old-XML service document and as a SOAP body.
    let access = format!(
        "<?xml version=\"1.0\"?><AccessRequest><AccessLicenseNumber>{}</AccessLicenseNumber><UserId>{}</UserId><Password>{}</Password></AccessRequest>\n",
        EAST.access_key, EAST.user, EAST.password
    );
    let started = Instant::now();
    let (status, _, text) = post_raw(
        &proxy.http,
        &format!("{}/ups.app/xml/Rate", proxy.url),
        format!("{access}{LOL}"),
        None,
    );
    let lol_xml = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(
        xml_text(&text, "Response/Error/ErrorCode").as_deref(),
        Some("10001"),
        "{text}"
    );
    assert!(xml_text(&text, "Response/Error/ErrorDescription")
        .unwrap()
        .contains("DOCTYPE"));
    let started = Instant::now();
    let (status, _, text) = post_raw(
        &proxy.http,
        &format!("{}/webservices/Rate", proxy.url),
        LOL,
        None,
    );
    let lol_soap = started.elapsed();
    assert_eq!(status, 500);
    assert_eq!(soap_fault_code(&text).as_deref(), Some("10001"));
    assert!(
        lol_xml < Duration::from_secs(1) && lol_soap < Duration::from_secs(1),
        "{lol_xml:?} {lol_soap:?}"
    );

    // 50 MiB declared: refused from the Content-Length, before reading it.
    let (head, body, declared) = hostile(&addr, "/ups.app/xml/Rate", FIFTY_MIB, false);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(
        xml_text(&body, "Response/Error/ErrorCode").as_deref(),
        Some("10002"),
        "{body}"
    );
    // 50 MiB chunked (no length): read up to the 10 MiB cap, then refused.
    let (head, body, chunked) = hostile(&addr, "/webservices/Rate", FIFTY_MIB, true);
    assert!(head.starts_with("HTTP/1.1 500"), "{head}");
    assert_eq!(soap_fault_code(&body).as_deref(), Some("10002"));
    assert!(declared < Duration::from_secs(2), "{declared:?}");
    assert!(chunked < Duration::from_secs(10), "{chunked:?}");

    let after = vm_hwm_kib(pid);
    eprintln!(
        "billion laughs refused in {lol_xml:?} (old XML) / {lol_soap:?} (SOAP); 50 MiB declared refused in {declared:?}, 50 MiB chunked in {chunked:?}; proxy VmHWM {before} kB before, {after} kB after (+{} kB)",
        after - before
    );
    // The body cap is 10 MiB: peak memory grows by about one capped buffer, never by 50 MiB.
    assert!(
        after - before < 32 * 1024,
        "VmHWM grew by {} kB",
        after - before
    );
    // Still serving.
    let (status, _, text) = post_raw(
        &proxy.http,
        &format!("{}/ups.app/xml/Track", proxy.url),
        format!("{access}<TrackRequest><TrackingNumber>1Z9Y9Y9Y0312345678</TrackingNumber></TrackRequest>"),
        None,
    );
    assert_eq!(status, 200);
    assert_old_xml_success(&text);
}

/// `n` attributes for a start tag: ` a0="x" a1="x" …`.
fn attributes(n: usize) -> String {
    (0..n).map(|i| format!(" a{i}=\"x\"")).collect()
}

/// `n` namespace declarations: ` xmlns:p0="urn:p" …`.
fn declarations(n: usize) -> String {
    (0..n).map(|i| format!(" xmlns:p{i}=\"urn:p\"")).collect()
}

#[test]
fn many_attributes_and_credential_children_are_read_in_linear_time_and_many_namespaces_are_refused()
{
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], FAST_TIMEOUTS);
    let rate = |attrs: &str| {
        format!(
            r#"<rate:RateRequest xmlns:rate="http://www.ups.com/XMLSchema/XOLTWS/Rate/v1.1"{attrs}><common:Request><common:RequestOption>Rate</common:RequestOption></common:Request><rate:Shipment><rate:Shipper><rate:ShipperNumber>9Y9Y9Y</rate:ShipperNumber><rate:Address><rate:City>Dover</rate:City><rate:PostalCode>19901</rate:PostalCode><rate:CountryCode>US</rate:CountryCode></rate:Address></rate:Shipper><rate:ShipTo><rate:Address><rate:City>Reno</rate:City><rate:PostalCode>89501</rate:PostalCode><rate:CountryCode>US</rate:CountryCode></rate:Address></rate:ShipTo><rate:Package><rate:PackagingType><rate:Code>02</rate:Code></rate:PackagingType><rate:PackageWeight><rate:UnitOfMeasurement><rate:Code>LBS</rate:Code></rate:UnitOfMeasurement><rate:Weight>3</rate:Weight></rate:PackageWeight></rate:Package></rate:Shipment></rate:RateRequest>"#
        )
    };
    // POST a body to a path: the answer, and how long it took.
    let timed = |path: &str, body: String, content_type: Option<&str>| {
        let started = Instant::now();
        let answer = post_raw(
            &proxy.http,
            &format!("{}{path}", proxy.url),
            body,
            content_type,
        );
        (answer, started.elapsed())
    };
    let soap = |body: String| timed("/webservices/Rate", body, Some("text/xml"));
    let track = |attrs: &str| {
        format!(
            "{}<?xml version=\"1.0\"?><TrackRequest{attrs}><TrackingNumber>1Z9Y9Y9Y0312345678</TrackingNumber></TrackRequest>",
            access(&EAST)
        )
    };
    let old_xml = |body: String| timed("/ups.app/xml/Track", body, None);

    // 200,000 attributes (2.6 MB) on the payload's start tag. Checking each for a repeat
    // against every one before it (quick-xml 0.38's default) took minutes; they are dropped
    // and the request is answered as without them.
    let many = attributes(200_000);
    let ((status, _, text), soap_attrs) = soap(soap_envelope(&EAST, &rate(&many)));
    assert_eq!(status, 200, "{}", &text[..text.len().min(2000)]);
    assert!(
        xml_text(
            &text,
            "Body/RateResponse/RatedShipment/TotalCharges/MonetaryValue"
        )
        .is_some(),
        "{text}"
    );
    let ((status, _, text), old_attrs) = old_xml(track(&many));
    assert_eq!(status, 200);
    assert_old_xml_success(&text);

    // 99,000 children in a credential block: each was compared with every one before it
    // (seconds); now a set. The block names no credential: refused as such, in dialect.
    let children: String = (0..99_000).map(|i| format!("<k{i}/>")).collect();
    let ((status, _, text), soap_block) = soap(format!(
        r#"<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header><UPSSecurity>{children}</UPSSecurity></soapenv:Header><soapenv:Body>{}</soapenv:Body></soapenv:Envelope>"#,
        rate("")
    ));
    assert_eq!(status, 500);
    assert_eq!(soap_fault_code(&text).as_deref(), Some("250003"), "{text}");
    let ((status, _, text), old_block) = old_xml(format!(
        "<?xml version=\"1.0\"?><AccessRequest>{children}</AccessRequest>{}",
        track("").split_once("</AccessRequest>").unwrap().1
    ));
    assert_eq!(status, 200);
    assert_eq!(
        xml_text(&text, "Response/Error/ErrorCode").as_deref(),
        Some("250003"),
        "{text}"
    );

    // More namespace declarations than a body may make: refused in dialect, before anything
    // is resolved (each element's prefix is looked up among those in scope, one by one).
    let bomb = format!(
        r#"<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"{}><soapenv:Body>{}</soapenv:Body></soapenv:Envelope>"#,
        declarations(200_000),
        "<a>1</a>".repeat(50_000)
    );
    let ((status, _, text), soap_declared) = soap(bomb);
    assert_eq!(status, 500);
    assert_eq!(soap_fault_code(&text).as_deref(), Some("10001"));
    assert!(
        xml_text(
            &text,
            &format!("{SOAP_FAULT_ERROR}/PrimaryErrorCode/Description")
        )
        .unwrap()
        .contains("more than 256 namespace declarations"),
        "{text}"
    );
    let ((status, _, text), old_declared) = old_xml(track(&declarations(257)));
    assert_eq!(status, 200);
    assert_eq!(
        xml_text(&text, "Response/Error/ErrorCode").as_deref(),
        Some("10001")
    );
    assert!(
        xml_text(&text, "Response/Error/ErrorDescription")
            .unwrap()
            .contains("namespace declarations"),
        "{text}"
    );
    // 256 declarations are taken.
    let ((status, _, text), _) = old_xml(track(&declarations(256)));
    assert_eq!(status, 200);
    assert_old_xml_success(&text);

    eprintln!(
        "200,000 attributes answered in {soap_attrs:?} (SOAP) / {old_attrs:?} (old XML); 99,000 children of a credential block in {soap_block:?} / {old_block:?}; 200,000 declarations refused in {soap_declared:?} (SOAP), 257 in {old_declared:?} (old XML)"
    );
    for took in [
        soap_attrs,
        old_attrs,
        soap_block,
        old_block,
        soap_declared,
        old_declared,
    ] {
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
    // Neither refusal reached UPS: the two answered requests are the only ones it saw.
    assert_eq!(sim.api_requests().len(), 3, "{:?}", sim.api_requests());
}

#[test]
fn a_legacy_json_body_of_many_members_is_checked_for_repeats_in_linear_time() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], FAST_TIMEOUTS);
    // 100,000 top-level members (1.1 MB), the first given again at the end. Each was compared
    // with every one before it (4 s for 40,000 in a release build); now a set.
    let members: String = (0..100_000).map(|i| format!(",\"k{i}\":0")).collect();
    let body = format!(
        "{{\"UPSSecurity\":{}{members},\"k0\":1}}",
        serde_json::to_string(&ups_security(&EAST)).unwrap()
    );
    let started = Instant::now();
    let (status, _, text) = post_raw(
        &proxy.http,
        &format!("{}/rest/Rate", proxy.url),
        body,
        Some("application/json"),
    );
    let took = started.elapsed();
    eprintln!("100,000 members checked in {took:?}");
    assert_eq!(status, 400, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let detail = &v["Fault"]["detail"]["Errors"]["ErrorDetail"]["PrimaryErrorCode"];
    assert_eq!(detail["Code"], "10001", "{text}");
    assert!(
        detail["Description"]
            .as_str()
            .unwrap()
            .contains("`k0` appears twice"),
        "{text}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(sim.api_requests().is_empty());
}

//! The proxy core, end to end: header-style and legacy-JSON clients reach the
//! simulator's REST API through upsbridge with a bearer token and no legacy
//! credential; refusals come back in the client's dialect; tokens are fetched
//! once, renewed before expiry, and recovered after a token-endpoint outage.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

fn rate_body() -> Value {
    json!({"RateRequest": {"Request": {"RequestOption": "Rate", "TransactionReference": {"CustomerContext": "cart-4411"}},
        "Shipment": {"Shipper": {"ShipperNumber": "9Y9Y9Y", "Address": {"AddressLine": ["10 Elm Rd"], "City": "Dover", "StateProvinceCode": "DE", "PostalCode": "19901", "CountryCode": "US"}},
                     "ShipTo": {"Name": "Acme", "Address": {"AddressLine": ["5 Oak Ave"], "City": "Reno", "StateProvinceCode": "NV", "PostalCode": "89501", "CountryCode": "US"}},
                     "Service": {"Code": "02"},
                     "Package": {"PackagingType": {"Code": "02"}, "PackageWeight": {"UnitOfMeasurement": {"Code": "LBS"}, "Weight": "3"}}}}})
}

fn ship_body() -> Value {
    json!({"ShipmentRequest": {"Request": {"RequestOption": "nonvalidate"},
        "Shipment": {"Description": "parts",
            "Shipper": {"Name": "East", "ShipperNumber": "9Y9Y9Y", "Address": {"AddressLine": ["10 Elm Rd"], "City": "Dover", "StateProvinceCode": "DE", "PostalCode": "19901", "CountryCode": "US"}},
            "ShipTo": {"Name": "Acme", "Address": {"AddressLine": ["5 Oak Ave"], "City": "Reno", "StateProvinceCode": "NV", "PostalCode": "89501", "CountryCode": "US"}},
            "PaymentInformation": {"ShipmentCharge": {"Type": "01", "BillShipper": {"AccountNumber": "9Y9Y9Y"}}},
            "Service": {"Code": "03"},
            "Package": {"Packaging": {"Code": "02"}, "PackageWeight": {"UnitOfMeasurement": {"Code": "LBS"}, "Weight": "5"}}},
        "LabelSpecification": {"LabelImageFormat": {"Code": "GIF"}}}})
}

fn xav_body() -> Value {
    json!({"XAVRequest": {"AddressKeyFormat": {"AddressLine": ["5 Oak Ave"], "PoliticalDivision2": "Reno", "PoliticalDivision1": "NV", "PostcodePrimaryLow": "89501", "CountryCode": "US"}}})
}

fn with_security(mut body: Value, a: &TestAccount) -> Value {
    body.as_object_mut()
        .unwrap()
        .insert("UPSSecurity".into(), ups_security(a));
    body
}

#[test]
fn header_style_clients_reach_rest_with_a_bearer_and_no_legacy_credentials() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], FAST_TIMEOUTS);
    let http = &proxy.http;
    let u = |p: &str| format!("{}{p}", proxy.url);

    // Rate (GET with a body, as one Python client sends it; version without `v`).
    let r = http
        .get(u("/ship/1801/rating/Rate?additionalinfo=timeintransit"))
        .header("AccessLicenseNumber", EAST.access_key)
        .header("Username", EAST.user)
        .header("Password", EAST.password)
        .json(&rate_body())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(v["RateResponse"]["RatedShipment"]["Service"]["Code"], "02");

    let r = header_request(
        http,
        Method::POST,
        &u("/ship/V1801/shipments"),
        &EAST,
        Some(&ship_body()),
    );
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    let id = v["ShipmentResponse"]["ShipmentResults"]["ShipmentIdentificationNumber"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(id.starts_with("1Z9Y9Y9Y"), "{id}");

    let r = header_request(
        http,
        Method::DELETE,
        &u(&format!("/ship/v1/shipments/cancel/{id}")),
        &EAST,
        None,
    );
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(
        v["VoidShipmentResponse"]["SummaryResult"]["Status"]["Code"],
        "1"
    );

    let r = header_request(
        http,
        Method::GET,
        &u(&format!("/track/v1/details/{id}?locale=en_US")),
        &EAST,
        None,
    );
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(
        v["trackResponse"]["shipment"][0]["inquiryNumber"],
        id.as_str()
    );

    let r = header_request(
        http,
        Method::POST,
        &u("/addressvalidation/v1/3"),
        &EAST,
        Some(&xav_body()),
    );
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    assert!(v.to_string().contains("89501"), "{v}");

    let reqs = sim.api_requests();
    let seen: Vec<String> = reqs
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            "POST /api/rating/v2409/Rate".to_string(),
            // Legacy versions are replaced by the current ones (the only ones REST accepts).
            "POST /api/shipments/v2409/ship".to_string(),
            format!("DELETE /api/shipments/v2409/void/cancel/{id}"),
            format!("GET /api/track/v1/details/{id}"),
            "POST /api/addressvalidation/v2/3".to_string(),
        ]
    );
    assert_eq!(reqs[0]["query"], "additionalinfo=timeintransit");
    assert_eq!(reqs[3]["headers"]["transid"], "t-123");
    assert_eq!(reqs[3]["headers"]["transactionsrc"], "shopapp");
    for r in &reqs {
        assert_clean_upstream(r, &EAST);
    }
    // The body streamed through untouched.
    let sent: Value = serde_json::from_str(reqs[1]["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent, ship_body());
}

#[test]
fn legacy_json_clients_reach_rest_and_get_legacy_answers() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], FAST_TIMEOUTS);
    let post = |path: &str, body: &Value| {
        let r = proxy
            .http
            .post(format!("{}{path}", proxy.url))
            .json(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().unwrap())
    };

    let (s, v) = post("/rest/Rate", &with_security(rate_body(), &EAST));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["RateResponse"]["RatedShipment"]["Service"]["Code"], "02");

    let (s, v) = post("/json/Ship", &with_security(ship_body(), &EAST));
    assert_eq!(s, 200, "{v}");
    let id = v["ShipmentResponse"]["ShipmentResults"]["ShipmentIdentificationNumber"]
        .as_str()
        .unwrap()
        .to_string();

    let void = json!({"VoidShipmentRequest": {"Request": {"RequestOption": "1"}, "VoidShipment": {"ShipmentIdentificationNumber": id}}});
    let (s, v) = post("/rest/Void", &with_security(void, &EAST));
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["VoidShipmentResponse"]["SummaryResult"]["Status"]["Code"],
        "1"
    );

    // Older `Security` shape, Track rebuilt into the XOLTWS TrackResponse.
    let track = json!({"Security": {"UsernameToken": {"Username": EAST.user, "Password": EAST.password},
                                     "UPSServiceAccessToken": {"AccessLicenseNumber": EAST.access_key}},
                       "TrackRequest": {"Request": {"RequestOption": "1", "TransactionReference": {"CustomerContext": "order-9"}}, "InquiryNumber": id}});
    let (s, v) = post("/rest/Track", &track);
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["TrackResponse"]["Response"]["ResponseStatus"]["Code"],
        "1"
    );
    assert_eq!(
        v["TrackResponse"]["Response"]["TransactionReference"]["CustomerContext"],
        "order-9"
    );
    assert_eq!(
        v["TrackResponse"]["Shipment"]["InquiryNumber"]["Value"],
        id.as_str()
    );
    assert!(
        v["TrackResponse"]["Shipment"]["Package"]["Activity"].is_array(),
        "{v}"
    );

    let xav = json!({"XAVRequest": {"Request": {"RequestOption": "3"}, "MaximumListSize": "3",
                      "AddressKeyFormat": {"AddressLine": "5 Oak Ave", "PoliticalDivision2": "Reno", "PoliticalDivision1": "NV", "PostcodePrimaryLow": "89501", "CountryCode": "US"}}});
    let (s, v) = post("/rest/XAV", &with_security(xav, &EAST));
    assert_eq!(s, 200, "{v}");
    assert!(v["XAVResponse"].is_object(), "{v}");

    let reqs = sim.api_requests();
    let seen: Vec<String> = reqs
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            "POST /api/rating/v2409/Rate".to_string(),
            "POST /api/shipments/v2409/ship".to_string(),
            format!("DELETE /api/shipments/v2409/void/cancel/{id}"),
            format!("GET /api/track/v1/details/{id}"),
            "POST /api/addressvalidation/v2/3".to_string(),
        ]
    );
    assert_eq!(reqs[4]["query"], "maximumcandidatelistsize=3");
    for r in &reqs {
        assert_clean_upstream(r, &EAST);
    }
    // The rate request object reached UPS unchanged.
    let sent: Value = serde_json::from_str(reqs[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent, rate_body());
    let sent: Value = serde_json::from_str(reqs[4]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        sent["XAVRequest"]["AddressKeyFormat"]["AddressLine"],
        json!(["5 Oak Ave"])
    );
}

#[test]
fn bad_credentials_are_refused_in_dialect_and_nothing_is_forwarded() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], FAST_TIMEOUTS);
    let cases: [(&str, &str, &str, &str); 4] = [
        (
            "wrong password",
            EAST.access_key,
            EAST.user,
            "not-the-password",
        ),
        ("unknown access key", "NOSUCHKEY", EAST.user, EAST.password),
        ("unknown user id", EAST.access_key, "nobody", EAST.password),
        ("missing credentials", "", "", ""),
    ];
    let expected_code = |case: &str| match case {
        "unknown access key" | "missing credentials" => "250003",
        _ => "250002",
    };
    for (case, key, user, password) in cases {
        // Header style.
        let mut req = proxy
            .http
            .post(format!("{}/ship/v1/rating/Rate", proxy.url))
            .json(&rate_body());
        if !key.is_empty() {
            req = req
                .header("AccessLicenseNumber", key)
                .header("Username", user)
                .header("Password", password);
        }
        let r = req.send().unwrap();
        assert_eq!(r.status(), 401, "{case}");
        assert_eq!(r.headers()["x-upsbridge-error"], "auth", "{case}");
        let v: Value = r.json().unwrap();
        assert_eq!(
            v["response"]["errors"][0]["code"],
            expected_code(case),
            "{case}: {v}"
        );

        // Legacy JSON.
        let mut body = rate_body();
        if !key.is_empty() {
            body["UPSSecurity"] = json!({"UsernameToken": {"Username": user, "Password": password},
                                         "ServiceAccessToken": {"AccessLicenseNumber": key}});
        }
        let r = proxy.post_json("/rest/Rate", &body);
        assert_eq!(r.status(), 401, "{case}");
        let v: Value = r.json().unwrap();
        let detail = &v["Fault"]["detail"]["Errors"]["ErrorDetail"];
        assert_eq!(
            detail["PrimaryErrorCode"]["Code"],
            expected_code(case),
            "{case}: {v}"
        );
        assert_eq!(detail["Severity"], "Authentication", "{case}");
        assert!(
            !v.to_string().contains(password) || password.is_empty(),
            "{case}: password echoed"
        );
    }
    assert!(
        sim.requests().is_empty(),
        "UPS received: {:?}",
        sim.requests()
    );
    let log = proxy.log_text();
    assert!(log.contains("refused: authentication"), "{log}");
    assert!(!log.contains("not-the-password"));
}

#[test]
fn two_hundred_concurrent_requests_cause_one_token_request() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], FAST_TIMEOUTS);
    let url = format!("{}/track/v1/details/1Z9Y9Y9Y0300000001", proxy.url);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..200)
            .map(|_| {
                s.spawn(|| {
                    let http = reqwest::blocking::Client::new();
                    header_request(&http, Method::GET, &url, &EAST, None)
                        .status()
                        .as_u16()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    if !statuses.iter().all(|&s| s == 200) {
        let log = proxy.log_text();
        let why: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        panic!(
            "{statuses:?}\nUPS saw {} calls; proxy warnings:\n{}",
            sim.api_requests().len(),
            why.join("\n")
        );
    }
    assert_eq!(sim.token_requests("client_credentials"), 1);
    assert_eq!(sim.api_requests().len(), 200);
}

#[test]
fn a_token_inside_its_margin_is_renewed_without_failing_a_request() {
    let dir = tempdir();
    // Tokens live 4 s; renew 2 s before expiry.
    let sim = Sim::start(dir.path(), &[&EAST], 4);
    let proxy = Proxy::start(
        dir.path(),
        &sim,
        &[&EAST],
        &format!("{FAST_TIMEOUTS}token_refresh_margin_secs = 2\n"),
    );
    let url = format!("{}/track/v1/details/1Z9Y9Y9Y0300000001", proxy.url);
    let started = Instant::now();
    let mut count = 0;
    while started.elapsed() < Duration::from_secs(9) {
        let r = header_request(&proxy.http, Method::GET, &url, &EAST, None);
        assert_eq!(
            r.status(),
            200,
            "request {count} at {:?}",
            started.elapsed()
        );
        count += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let tokens = sim.token_requests("client_credentials");
    assert!(
        (3..=6).contains(&tokens),
        "{tokens} token requests over 9 s with 4 s tokens"
    );
    // Every bearer UPS saw was valid when used: the simulator refuses expired ones with 401,
    // which the loop above would have seen.
    assert!(count > 40);
}

#[test]
fn a_failing_token_endpoint_gives_a_dialect_error_then_recovers_without_restart() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], FAST_TIMEOUTS);
    sim.faults(json!({"token_status": 503}));

    let started = Instant::now();
    let r = header_request(
        &proxy.http,
        Method::GET,
        &format!("{}/track/v1/details/1Z1", proxy.url),
        &EAST,
        None,
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["x-upsbridge-error"], "token_unavailable");
    let v: Value = r.json().unwrap();
    let msg = v["response"]["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("UPS token endpoint is failing (HTTP 503"),
        "{msg}"
    );

    let body = with_security(rate_body(), &EAST);
    let r = proxy.post_json("/rest/Rate", &body);
    assert_eq!(r.status(), 503);
    let v: Value = r.json().unwrap();
    assert_eq!(
        v["Fault"]["detail"]["Errors"]["ErrorDetail"]["Severity"],
        "Transient"
    );
    assert!(sim.api_requests().is_empty());

    // Slow token endpoint: the client gets an answer within the configured token timeout.
    sim.faults(json!({"token_status": 0, "token_latency_ms": 5000}));
    std::thread::sleep(Duration::from_millis(1100));
    let started = Instant::now();
    let r = header_request(
        &proxy.http,
        Method::GET,
        &format!("{}/track/v1/details/1Z1", proxy.url),
        &EAST,
        None,
    );
    assert_eq!(r.status(), 503);
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "took {:?}",
        started.elapsed()
    );

    sim.clear_faults();
    std::thread::sleep(Duration::from_millis(1100)); // past the failure backoff
    let r = header_request(
        &proxy.http,
        Method::GET,
        &format!("{}/track/v1/details/1Z1", proxy.url),
        &EAST,
        None,
    );
    assert_eq!(r.status(), 200);
    let r = proxy.post_json("/rest/Rate", &body);
    assert_eq!(r.status(), 200);
}

#[test]
fn unknown_paths_and_bad_bodies_get_specific_errors() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], "max_body_bytes = 4096\n");
    let r = proxy
        .http
        .get(format!("{}/index.html", proxy.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-upsbridge-error"], "unknown_service");

    let r = proxy
        .http
        .post(format!("{}/rest/Rate", proxy.url))
        .body("{\"UPSSecurity\": ")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().unwrap();
    assert_eq!(
        v["Fault"]["detail"]["Errors"]["ErrorDetail"]["PrimaryErrorCode"]["Code"],
        "10001"
    );

    let big = format!(
        "{{\"UPSSecurity\":{{}},\"RateRequest\":{{\"x\":\"{}\"}}}}",
        "a".repeat(10_000)
    );
    let r = proxy
        .http
        .post(format!("{}/rest/Rate", proxy.url))
        .body(big)
        .send()
        .unwrap();
    assert_eq!(r.status(), 413);

    let body = json!({"UPSSecurity": ups_security(&EAST), "FrobnicateRequest": {}});
    let r = proxy.post_json("/rest/Frobnicate", &body);
    assert_eq!(r.status(), 404);
    let v: Value = r.json().unwrap();
    assert_eq!(
        v["Fault"]["detail"]["Errors"]["ErrorDetail"]["PrimaryErrorCode"]["Code"],
        "20002"
    );
    assert!(sim.api_requests().is_empty());
}

#[test]
fn ups_errors_come_back_in_the_clients_dialect() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], FAST_TIMEOUTS);
    sim.faults(json!({"api_status": 500}));
    let r = proxy.post_json("/rest/Rate", &with_security(rate_body(), &EAST));
    assert_eq!(r.status(), 500);
    let v: Value = r.json().unwrap();
    assert_eq!(
        v["Fault"]["detail"]["Errors"]["ErrorDetail"]["Severity"], "Transient",
        "{v}"
    );
    // Header style gets UPS's own answer.
    let r = header_request(
        &proxy.http,
        Method::POST,
        &format!("{}/ship/v1/rating/Rate", proxy.url),
        &EAST,
        Some(&rate_body()),
    );
    assert_eq!(r.status(), 500);
    assert!(r.headers().get("x-upsbridge-error").is_none());

    // UPS down entirely: a dialect error naming the cause, within the timeout.
    sim.clear_faults();
    sim.faults(json!({"latency_ms": 6000}));
    let started = Instant::now();
    let r = proxy.post_json("/rest/Rate", &with_security(rate_body(), &EAST));
    assert_eq!(r.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let r = header_request(
        &proxy.http,
        Method::POST,
        &format!("{}/ship/v1/rating/Rate", proxy.url),
        &EAST,
        Some(&rate_body()),
    );
    assert_eq!(r.status(), 504);
    assert_eq!(r.headers()["x-upsbridge-error"], "upstream_timeout");
}

#[test]
fn no_secret_reaches_any_log_line() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST, &WEST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST, &WEST], FAST_TIMEOUTS);
    for a in [&EAST, &WEST] {
        let r = header_request(
            &proxy.http,
            Method::POST,
            &format!("{}/ship/v1/rating/Rate", proxy.url),
            a,
            Some(&rate_body()),
        );
        assert_eq!(r.status(), 200);
        let r = proxy.post_json("/rest/Rate", &with_security(rate_body(), a));
        assert_eq!(r.status(), 200);
    }
    let bearers: Vec<String> = sim
        .api_requests()
        .iter()
        .map(|r| {
            r["headers"]["authorization"]
                .as_str()
                .unwrap()
                .trim_start_matches("Bearer ")
                .to_string()
        })
        .collect();
    assert_eq!(bearers.len(), 4);
    let log = proxy.log_text();
    assert!(
        log.contains("token obtained"),
        "the log was captured: {log}"
    );
    let mut secrets: Vec<&str> = vec![
        EAST.password,
        EAST.client_secret,
        WEST.password,
        WEST.client_secret,
    ];
    secrets.extend(bearers.iter().map(String::as_str));
    for s in secrets {
        assert!(!log.contains(s), "secret `{s}` in the proxy log");
    }
}

#[test]
fn accounts_check_and_serve_report_every_map_problem_with_its_line() {
    let dir = tempdir();
    let good = hash_password("pw");
    let record = |name: &str, key: &str, hash: &str| {
        format!("[[account]]\nname = \"{name}\"\nups_account_number = \"9Y9Y9Y\"\naccess_license_number = \"{key}\"\nuser_id = \"u\"\npassword_hash = \"{hash}\"\nclient_id = \"c\"\nclient_secret_env = \"HOME\"\n")
    };
    let map = format!(
        "{}{}{}[[account]]\nname = \"d\nbroken\n",
        record("a", "K1", &good),
        record("b", "K1", &good),
        record("c", "K2", "plaintext-password")
    );
    let path = dir.path().join("accounts.toml");
    std::fs::write(&path, map).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["accounts", "check", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let p = path.display();
    for expected in [
        format!("{p}:9: duplicate access_license_number"),
        format!("{p}:22: password_hash"),
        format!("{p}:26: syntax"),
    ] {
        assert!(err.contains(&expected), "missing `{expected}` in:\n{err}");
    }
    assert!(
        !err.contains("plaintext-password"),
        "the bad hash value is echoed: {err}"
    );

    // serve refuses to start with the same messages.
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    std::fs::write(
        dir.path().join("upsbridge.toml"),
        Proxy::config_text(&sim.url, ""),
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args([
            "serve",
            "--config",
            dir.path().join("upsbridge.toml").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let serve_err = String::from_utf8_lossy(&out.stderr);
    for line in err.lines().filter(|l| l.contains(".toml:")) {
        let msg = line.trim_start_matches("upsbridge: ");
        assert!(
            serve_err.contains(msg),
            "serve did not report `{msg}`:\n{serve_err}"
        );
    }
}

/// Every old path form in the README's table reaches the REST call the table names, with the
/// current version, and the client gets UPS's answer.
#[test]
fn path_forms_from_the_readme_table_reach_the_current_rest_paths() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], FAST_TIMEOUTS);
    let id = "1Z9Y9Y9Y0300000001";
    // Voiding one shipment twice is the same void (answered again, not sent again): each
    // void form voids its own shipment.
    let (id2, id3) = ("1Z9Y9Y9Y0300000002", "1Z9Y9Y9Y0300000003");
    let pickup = json!({"PickupCreationRequest": {"RatePickupIndicator": "N", "Shipper": {"Account": {"AccountNumber": "9Y9Y9Y", "AccountCountryCode": "US"}},
        "PickupDateInfo": {"CloseTime": "1700", "ReadyTime": "1000", "PickupDate": "20260110"},
        "PickupAddress": {"CompanyName": "East", "ContactName": "Ann", "AddressLine": ["10 Elm Rd"], "City": "Dover", "StateProvince": "DE", "PostalCode": "19901", "CountryCode": "US", "ResidentialIndicator": "N", "Phone": {"Number": "5551234"}},
        "AlternateAddressIndicator": "N", "PickupPiece": [{"ServiceCode": "003", "Quantity": "1", "DestinationCountryCode": "US", "ContainerCode": "01"}],
        "OverweightIndicator": "N", "PaymentMethod": "01"}});
    let tnt = json!({"originCountryCode": "US", "originPostalCode": "19901", "destinationCountryCode": "US", "destinationPostalCode": "89501", "weight": "3", "weightUnitOfMeasure": "LBS", "shipDate": "2026-01-10"});
    let labels = json!({"LabelRecoveryRequest": {"LabelSpecification": {"LabelImageFormat": {"Code": "GIF"}}, "TrackingNumber": id}});
    // (method, legacy path and query, body, expected REST method and path, expected query)
    let cases: Vec<(Method, String, Option<Value>, String, &str)> = vec![
        (
            Method::POST,
            "/ship/v1801/shipments".into(),
            Some(ship_body()),
            "POST /api/shipments/v2409/ship".into(),
            "",
        ),
        (
            Method::POST,
            "/shipments/V1807/ship".into(),
            Some(ship_body()),
            "POST /api/shipments/v2409/ship".into(),
            "",
        ),
        (
            Method::DELETE,
            format!("/ship/v1/shipments/cancel/{id}"),
            None,
            format!("DELETE /api/shipments/v2409/void/cancel/{id}"),
            "",
        ),
        (
            Method::DELETE,
            format!("/ship/v1/shipments/void/cancel/{id2}"),
            None,
            format!("DELETE /api/shipments/v2409/void/cancel/{id2}"),
            "",
        ),
        (
            Method::DELETE,
            format!("/shipments/v2108/void/cancel/{id3}"),
            None,
            format!("DELETE /api/shipments/v2409/void/cancel/{id3}"),
            "",
        ),
        (
            Method::POST,
            "/ship/V1801/rating/shop".into(),
            Some(rate_body()),
            "POST /api/rating/v2409/Shop".into(),
            "",
        ),
        (
            Method::GET,
            "/ship/1801/rating/Rate".into(),
            Some(rate_body()),
            "POST /api/rating/v2409/Rate".into(),
            "",
        ),
        (
            Method::POST,
            "/rating/v1/Rate".into(),
            Some(rate_body()),
            "POST /api/rating/v2409/Rate".into(),
            "",
        ),
        (
            Method::GET,
            format!("/track/v1/details/{id}?locale=en_US"),
            None,
            format!("GET /api/track/v1/details/{id}"),
            "locale=en_US",
        ),
        (
            Method::GET,
            format!("/track/v1/details/?inquiryNumber={id}&locale=en_US"),
            None,
            format!("GET /api/track/v1/details/{id}"),
            "locale=en_US",
        ),
        (
            Method::GET,
            format!("/track/V1/details?trackingNumber={id}"),
            None,
            format!("GET /api/track/v1/details/{id}"),
            "",
        ),
        (
            Method::GET,
            "/track/v1/reference/details/PO-4411".into(),
            None,
            "GET /api/track/v1/reference/details/PO-4411".into(),
            "",
        ),
        (
            Method::POST,
            "/addressvalidation/v1/3".into(),
            Some(xav_body()),
            "POST /api/addressvalidation/v2/3".into(),
            "",
        ),
        (
            Method::POST,
            "/ship/v1/shipments/transittimes".into(),
            Some(tnt.clone()),
            "POST /api/shipments/v1/transittimes".into(),
            "",
        ),
        (
            Method::POST,
            "/shipments/v1/transittimes".into(),
            Some(tnt),
            "POST /api/shipments/v1/transittimes".into(),
            "",
        ),
        (
            Method::POST,
            "/ship/v1/shipments/labels".into(),
            Some(labels.clone()),
            "POST /api/labels/v1/recovery".into(),
            "",
        ),
        (
            Method::POST,
            "/labels/v1903/recovery".into(),
            Some(labels),
            "POST /api/labels/v1/recovery".into(),
            "",
        ),
        (
            Method::POST,
            "/ship/v1/pickups".into(),
            Some(pickup.clone()),
            "POST /api/pickupcreation/v2409/pickup".into(),
            "",
        ),
        (
            Method::POST,
            "/pickupcreation/v1707/pickup".into(),
            Some(pickup),
            "POST /api/pickupcreation/v2409/pickup".into(),
            "",
        ),
    ];
    for (method, legacy, body, want, want_query) in cases {
        sim.clear();
        let r = header_request(
            &proxy.http,
            method,
            &format!("{}{legacy}", proxy.url),
            &EAST,
            body.as_ref(),
        );
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        assert!(status < 300, "{legacy}: {status} {text}");
        let reqs = sim.api_requests();
        assert_eq!(reqs.len(), 1, "{legacy}: one REST call");
        let got = format!(
            "{} {}",
            reqs[0]["method"].as_str().unwrap(),
            reqs[0]["path"].as_str().unwrap()
        );
        assert_eq!(got, want, "{legacy}");
        assert_eq!(reqs[0]["query"], want_query, "{legacy}");
        assert_clean_upstream(&reqs[0], &EAST);
    }
    // Not a version, not a known form: refused in REST's shape, nothing forwarded.
    sim.clear();
    for legacy in [
        "/ship/vx/shipments",
        "/track/v1/details/?locale=en_US",
        "/ship/v1/rating/Cheapest",
    ] {
        let r = header_request(
            &proxy.http,
            Method::POST,
            &format!("{}{legacy}", proxy.url),
            &EAST,
            Some(&rate_body()),
        );
        assert_eq!(r.status().as_u16(), 404, "{legacy}");
        let v: Value = r.json().unwrap();
        assert_eq!(v["response"]["errors"][0]["code"], "20002", "{legacy}");
    }
    assert!(sim.api_requests().is_empty());
}

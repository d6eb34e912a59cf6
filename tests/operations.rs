//! Operating upsbridge: hot reload of the account map, UPS revoking tokens,
//! the negotiated-rates diagnosis on the ops page, and metrics.

mod common;
mod perf_common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use perf_common::cpu_ticks;
use reqwest::Method;
use serde_json::{json, Value};

/// A header-style rate request for `account` (with or without negotiated rates).
fn rate(
    http: &reqwest::blocking::Client,
    proxy: &Proxy,
    account: &TestAccount,
    negotiated: bool,
) -> reqwest::blocking::Response {
    header_request(
        http,
        Method::POST,
        &format!("{}/ship/v1/rating/Rate", proxy.url),
        account,
        Some(&rate_body(negotiated)),
    )
}

fn rate_body(negotiated: bool) -> Value {
    let mut v = json!({"RateRequest": {"Request": {"RequestOption": "Rate"},
        "Shipment": {"Shipper": {"ShipperNumber": "9Y9Y9Y", "Address": {"CountryCode": "US", "PostalCode": "19901"}},
                     "ShipTo": {"Address": {"CountryCode": "US", "PostalCode": "89501"}},
                     "Service": {"Code": "03"},
                     "Package": {"PackageWeight": {"UnitOfMeasurement": {"Code": "LBS"}, "Weight": "2"}}}}});
    if negotiated {
        v["RateRequest"]["Shipment"]["ShipmentRatingOptions"] =
            json!({"NegotiatedRatesIndicator": ""});
    }
    v
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Parse Prometheus text into `name{labels}` → value.
fn metrics(proxy: &Proxy) -> HashMap<String, f64> {
    let text = proxy.admin_text("/metrics");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// The metrics once `key` has been counted (or after 2 s, for the assertions to show).
fn metrics_once(proxy: &Proxy, key: &str) -> HashMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let m = metrics(proxy);
        if m.contains_key(key) || Instant::now() > deadline {
            return m;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_account_map_reloads_under_load_and_bad_changes_are_rejected_whole() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST, &WEST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST, &WEST], FAST_TIMEOUTS);
    let map = dir.path().join("accounts.toml");

    // Load on EAST while the map changes (WEST's password changes): no EAST request may fail.
    let stop = AtomicBool::new(false);
    let failures = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let http = reqwest::blocking::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    let r = rate(&http, &proxy, &EAST, false);
                    if r.status() != 200 {
                        let status = r.status();
                        eprintln!(
                            "EAST failed during reload: {status} {}",
                            r.text().unwrap_or_default()
                        );
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let mut west2 = WEST.clone();
        west2.password = "west-new-password";
        for _ in 0..3 {
            write_map(&map, &[&EAST, &west2]);
            std::thread::sleep(Duration::from_millis(400));
            write_map(&map, &[&EAST, &WEST]);
            std::thread::sleep(Duration::from_millis(400));
        }
        write_map(&map, &[&EAST, &west2]);
        wait_for("WEST's new password", || {
            rate(&proxy.http, &proxy, &west2, false).status() == 200
        });
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "of {} requests",
        done.load(Ordering::Relaxed)
    );
    assert!(done.load(Ordering::Relaxed) > 50);
    assert_eq!(
        rate(&proxy.http, &proxy, &WEST, false).status(),
        401,
        "the old password still works"
    );

    // An invalid change: rejected whole, the old map keeps serving, the page says where.
    let before = metrics(&proxy)["upsbridge_map_rejections_total"];
    let good = std::fs::read_to_string(&map).unwrap();
    std::fs::write(
        &map,
        format!("{good}\n[[account]]\nname = \"broken\nx = 1\n"),
    )
    .unwrap();
    wait_for("the rejection", || {
        metrics(&proxy)["upsbridge_map_rejections_total"] > before
    });
    let page = proxy.admin_text("/");
    assert!(page.contains("id=\"map-rejected\""), "{page}");
    assert!(
        page.contains(&format!("{}:", map.display())) && page.contains("syntax"),
        "{page}"
    );
    assert_eq!(rate(&proxy.http, &proxy, &EAST, false).status(), 200);
    assert!(proxy
        .log_text()
        .contains("account map change rejected; the previous map stays in force"));

    // Removing an account refuses it at once (here via SIGHUP, as ops would after an edit).
    let mut west2 = WEST.clone();
    west2.password = "west-new-password";
    assert_eq!(rate(&proxy.http, &proxy, &west2, false).status(), 200);
    write_map(&map, &[&EAST]);
    let r = std::process::Command::new("kill")
        .args(["-HUP", &proxy.proc.child.id().to_string()])
        .status()
        .unwrap();
    assert!(r.success());
    wait_for("WEST removed", || {
        rate(&proxy.http, &proxy, &west2, false).status() == 401
    });
    assert_eq!(account_rows(&proxy).len(), 1);
    assert_eq!(rate(&proxy.http, &proxy, &EAST, false).status(), 200);
}

#[test]
fn a_map_in_a_kubernetes_configmap_volume_reloads_when_the_kubelet_swaps_its_data_link() {
    use std::os::unix::fs::symlink;
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST, &WEST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST, &WEST], FAST_TIMEOUTS);
    let at = |name: &str| dir.path().join(name);

    // The kubelet's layout: the map is a link through `..data` into a timestamped folder.
    // Linked in by a rename over the map, which names it: seen once WEST has gone.
    std::fs::create_dir(at("..2026_12_05_10_00_00.1")).unwrap();
    write_map(&at("..2026_12_05_10_00_00.1/accounts.toml"), &[&EAST]);
    symlink("..2026_12_05_10_00_00.1", at("..data")).unwrap();
    symlink("..data/accounts.toml", at("accounts.toml.link")).unwrap();
    std::fs::rename(at("accounts.toml.link"), at("accounts.toml")).unwrap();
    wait_for("the linked map without WEST", || {
        rate(&proxy.http, &proxy, &WEST, false).status() == 401
    });

    // An update, as the kubelet writes it: a new folder, then a new `..data` renamed over the
    // old one, then the old folder removed. No event names `accounts.toml`.
    let mut west2 = WEST.clone();
    west2.password = "west-new-password";
    std::fs::create_dir(at("..2026_12_05_10_05_00.2")).unwrap();
    write_map(
        &at("..2026_12_05_10_05_00.2/accounts.toml"),
        &[&EAST, &west2],
    );
    symlink("..2026_12_05_10_05_00.2", at("..data_tmp")).unwrap();
    std::fs::rename(at("..data_tmp"), at("..data")).unwrap();
    std::fs::remove_dir_all(at("..2026_12_05_10_00_00.1")).unwrap();
    wait_for("WEST back from the updated ConfigMap", || {
        rate(&proxy.http, &proxy, &west2, false).status() == 200
    });
    assert_eq!(rate(&proxy.http, &proxy, &EAST, false).status(), 200);
}

#[test]
fn a_token_ups_revoked_is_renewed_and_the_request_replayed() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], FAST_TIMEOUTS);
    let body = json!({"UPSSecurity": ups_security(&EAST), "RateRequest": rate_body(false)["RateRequest"].clone()});
    let post = || proxy.post_json("/rest/Rate", &body);
    assert_eq!(post().status(), 200);
    assert_eq!(sim.token_requests("client_credentials"), 1);

    sim.faults(json!({"revoke_tokens": true}));
    // Legacy JSON bodies are in memory: the client never sees the 401.
    assert_eq!(post().status(), 200);
    assert_eq!(sim.token_requests("client_credentials"), 2);
    assert_eq!(sim.api_requests().len(), 3, "one replay after the 401");

    // Header style streams its body: UPS's 401 reaches the client once, the next request works.
    sim.faults(json!({"revoke_tokens": true}));
    let r = rate(&proxy.http, &proxy, &EAST, false);
    assert_eq!(r.status(), 401);
    let r = rate(&proxy.http, &proxy, &EAST, false);
    assert_eq!(r.status(), 200);
    assert_eq!(sim.token_requests("client_credentials"), 3);
}

#[test]
fn negotiated_rates_refusal_is_diagnosed_on_the_ops_page_and_metrics_count_requests() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], FAST_TIMEOUTS);
    sim.faults(json!({"negotiated_rates_unapproved": [EAST.shipper]}));

    let r = rate(&proxy.http, &proxy, &EAST, true);
    assert_eq!(r.status(), 400);
    let v: Value = r.json().unwrap();
    assert!(
        v.to_string().to_lowercase().contains("negotiated rates"),
        "{v}"
    );
    let body = json!({"UPSSecurity": ups_security(&EAST), "RateRequest": rate_body(true)["RateRequest"].clone()});
    let r = proxy.post_json("/rest/Rate", &body);
    assert_eq!(r.status(), 400);
    let v: Value = r.json().unwrap();
    assert!(
        v["Fault"]["detail"]["Errors"]["ErrorDetail"]["PrimaryErrorCode"]["Description"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("negotiated rates")
    );

    let row = account_row(&proxy, EAST.name);
    assert!(
        row["last_error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("negotiated rates"),
        "{row}"
    );
    let page = proxy.admin_text("/");
    assert!(
        page.contains("UPS.com profile that authorized the app"),
        "{page}"
    );
    assert!(page.contains("invoice"), "{page}");

    // A plain rate still works and clears the error.
    let r = rate(&proxy.http, &proxy, &EAST, false);
    assert_eq!(r.status(), 200);
    assert!(account_row(&proxy, EAST.name)["last_error"].is_null());

    // A request is counted once its last byte is handed over, which may be just after the
    // client has read it.
    let ok = r#"upsbridge_requests_total{dialect="header_json",outcome="ok",service="rate"}"#;
    let m = metrics_once(&proxy, ok);
    let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
    assert_eq!(
        get(
            r#"upsbridge_requests_total{dialect="header_json",outcome="ups_error",service="rate"}"#
        ),
        1.0,
        "{m:?}"
    );
    assert_eq!(
        get(
            r#"upsbridge_requests_total{dialect="legacy_json",outcome="ups_error",service="rate"}"#
        ),
        1.0
    );
    assert_eq!(
        get(r#"upsbridge_requests_total{dialect="header_json",outcome="ok",service="rate"}"#),
        1.0
    );
    assert_eq!(
        get(&format!(
            "upsbridge_token_requests_total{{account=\"{}\"}}",
            EAST.name
        )),
        1.0,
        "{m:?}"
    );
    assert_eq!(get("upsbridge_accounts"), 1.0);
}

#[test]
fn sigterm_finishes_in_flight_requests_then_exits_cleanly_without_waiting_out_the_grace() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    write_map(&dir.path().join("accounts.toml"), &[&EAST]);
    let config = Proxy::config_text(&sim.url, "request_timeout_ms = 5000\n")
        .replace("shutdown_grace_secs = 1", "shutdown_grace_secs = 30");
    let proxy = Proxy::start_with_config(dir.path(), &[&EAST], &config);
    // Warm the token so the slow part is UPS's answer; the client keeps its connection open,
    // idle, as legacy clients do.
    let r = rate(&proxy.http, &proxy, &EAST, false);
    assert_eq!(r.status(), 200);
    // A 700 ms answer must be let through.
    sim.faults(json!({"latency_ms": 700}));
    let mut proxy = proxy;
    let started = Instant::now();
    std::thread::scope(|s| {
        let in_flight = s.spawn(|| {
            let http = reqwest::blocking::Client::new();
            let body = json!({"UPSSecurity": ups_security(&EAST), "RateRequest": rate_body(false)["RateRequest"].clone()});
            http.post(format!("{}/rest/Rate", proxy.url)).json(&body).send().map(|r| r.status().as_u16())
        });
        std::thread::sleep(Duration::from_millis(300));
        proxy.proc.sigterm();
        assert_eq!(
            in_flight.join().unwrap().unwrap(),
            200,
            "the in-flight request was cut"
        );
    });
    // New connections are refused once shutdown started.
    std::thread::sleep(Duration::from_millis(200));
    let addr = proxy.direct_url.trim_start_matches("http://").to_string();
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "still accepting after SIGTERM"
    );
    // Out as soon as the last connection closed, not at the 30 s grace period's end.
    let status = proxy.proc.wait_exit(started, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    let log = proxy.log_text();
    assert!(
        log.contains("every client connection has closed, before the grace period's end"),
        "{log}"
    );
    assert!(log.contains("shutting down: flushing the store"), "{log}");
}

#[test]
fn a_request_outliving_the_grace_period_is_cut_and_serve_still_exits_cleanly() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    // The test config's grace is 1 s; UPS takes 4 s.
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], "request_timeout_ms = 8000\n");
    assert_eq!(rate(&proxy.http, &proxy, &EAST, false).status(), 200);
    sim.faults(json!({"latency_ms": 4000}));
    let mut proxy = proxy;
    let url = proxy.direct_url.clone();
    let in_flight = std::thread::spawn(move || {
        let body = json!({"UPSSecurity": ups_security(&EAST), "RateRequest": rate_body(false)["RateRequest"].clone()});
        reqwest::blocking::Client::new()
            .post(format!("{url}/rest/Rate"))
            .json(&body)
            .send()
            .map(|r| r.status().as_u16())
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    proxy.proc.sigterm();
    let status = proxy.proc.wait_exit(started, Duration::from_secs(10));
    // The grace period (1 s) and then pingora's runtime shutdown, not UPS's 4 s.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "exited after {took:?}, before the grace period's end"
    );
    assert!(
        took < Duration::from_millis(3500),
        "waited {took:?} for the request"
    );
    assert!(status.success(), "{status:?}");
    assert!(
        in_flight.join().unwrap().is_err(),
        "the request outlived the grace period"
    );
    let log = proxy.log_text();
    assert!(!log.contains("every client connection has closed"), "{log}");
    assert!(log.contains("shutting down: flushing the store"), "{log}");
}

#[test]
fn a_proxy_port_already_in_use_stops_serve_at_once_with_the_address() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&NORTH], 3600);
    write_map(&dir.path().join("accounts.toml"), &[&NORTH]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config = Proxy::config_text(&sim.url, "").replace(
        "listen = \"127.0.0.1:0\"\nthreads",
        &format!("listen = \"{addr}\"\nthreads"),
    );
    std::fs::write(dir.path().join("upsbridge.toml"), config).unwrap();
    let started = Instant::now();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(dir.path().join("upsbridge.toml"))
        .env(secret_env(&NORTH), NORTH.client_secret)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "stderr:\n{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
    // Not pingora's retry-and-linger: refused before anything starts.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// UPS leaves negotiated rates out, without an error, for a shipper that is on the UPS.com
/// login but not verified: after a few such answers the ops page says what to do. Requests
/// that did not ask for negotiated rates never count; the client's answers are unchanged.
#[test]
fn silently_missing_negotiated_rates_are_diagnosed_for_that_account_only() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST, &WEST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST, &WEST], FAST_TIMEOUTS);
    sim.faults(json!({"negotiated_rates_unverified": [EAST.shipper]}));
    let diagnosis = |name: &str| account_row(&proxy, name)["diagnosis"].clone();
    // Without the indicator: nothing to diagnose, in any dialect.
    for _ in 0..3 {
        assert_eq!(rate(&proxy.http, &proxy, &EAST, false).status(), 200);
        let body = json!({"UPSSecurity": ups_security(&EAST), "RateRequest": rate_body(false)["RateRequest"].clone()});
        assert_eq!(proxy.post_json("/rest/Rate", &body).status(), 200);
    }
    assert_eq!(diagnosis(EAST.name), Value::Null);
    // With it: header style (streamed), legacy JSON and SOAP, each answered unchanged.
    let r = rate(&proxy.http, &proxy, &EAST, true);
    assert_eq!(r.status(), 200);
    assert!(!r.text().unwrap().contains("NegotiatedRateCharges"));
    assert_eq!(
        diagnosis(EAST.name),
        Value::Null,
        "one answer is not yet a pattern"
    );
    let body = json!({"UPSSecurity": ups_security(&EAST), "RateRequest": rate_body(true)["RateRequest"].clone()});
    assert_eq!(proxy.post_json("/rest/Rate", &body).status(), 200);
    let payload = "<rate:RateRequest xmlns:rate=\"http://www.ups.com/XMLSchema/XOLTWS/Rate/v1.1\"><rate:Shipment><rate:Shipper><rate:ShipperNumber>9Y9Y9Y</rate:ShipperNumber></rate:Shipper><rate:Service><rate:Code>03</rate:Code></rate:Service><rate:ShipmentRatingOptions><rate:NegotiatedRatesIndicator/></rate:ShipmentRatingOptions></rate:Shipment></rate:RateRequest>";
    let (status, _, _) = post_raw(
        &proxy.http,
        &format!("{}/webservices/Rate", proxy.url),
        soap_envelope(&EAST, payload),
        Some("text/xml"),
    );
    assert_eq!(status, 200);
    let d = diagnosis(EAST.name);
    let text = d.as_str().expect("the account is diagnosed");
    assert!(
        text.contains("View Account Details") && text.contains(EAST.shipper),
        "{text}"
    );
    let page = proxy.admin_text("/");
    assert!(page.contains("View Account Details"), "{page}");
    // Another account with negotiated rates given: nothing.
    assert_eq!(rate(&proxy.http, &proxy, &WEST, true).status(), 200);
    assert_eq!(diagnosis(WEST.name), Value::Null);
    // Once UPS gives them again, the diagnosis goes.
    sim.clear_faults();
    assert_eq!(rate(&proxy.http, &proxy, &EAST, true).status(), 200);
    assert_eq!(diagnosis(EAST.name), Value::Null);
}

/// Disable on the ops page: the account's next request is refused in each dialect with the
/// dialect's authentication error and nothing reaches UPS; the account stays in the map;
/// Enable brings it back. The state survives a restart.
#[test]
fn a_disabled_account_is_refused_in_every_dialect_and_nothing_is_forwarded() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    let set = |proxy: &Proxy, action: &str| {
        let r = proxy
            .http
            .post(format!("{}/accounts/{}/{action}", proxy.admin, EAST.name))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{action}");
    };
    let legacy = json!({"UPSSecurity": ups_security(&EAST), "RateRequest": rate_body(false)["RateRequest"].clone()});
    let soap_rate = soap_envelope(&EAST, "<rate:RateRequest xmlns:rate=\"http://www.ups.com/XMLSchema/XOLTWS/Rate/v1.1\"><rate:Shipment><rate:Service><rate:Code>03</rate:Code></rate:Service></rate:Shipment></rate:RateRequest>");
    let old_rate = format!("<?xml version=\"1.0\"?><AccessRequest><AccessLicenseNumber>{}</AccessLicenseNumber><UserId>{}</UserId><Password>{}</Password></AccessRequest><RatingServiceSelectionRequest><Request><RequestAction>Rate</RequestAction></Request><Shipment><Service><Code>03</Code></Service></Shipment></RatingServiceSelectionRequest>", EAST.access_key, EAST.user, EAST.password);
    {
        let proxy = Proxy::start(dir.path(), &sim, &[&EAST], FAST_TIMEOUTS);
        assert_eq!(rate(&proxy.http, &proxy, &EAST, false).status(), 200);
        set(&proxy, "disable");
        assert_eq!(account_row(&proxy, EAST.name)["disabled"], true);
        sim.clear();
        let r = rate(&proxy.http, &proxy, &EAST, false);
        assert_eq!(r.status(), 401);
        let v: Value = r.json().unwrap();
        assert_eq!(v["response"]["errors"][0]["code"], "250002");
        let r = proxy.post_json("/rest/Rate", &legacy);
        let v: Value = r.json().unwrap();
        assert_eq!(
            v["Fault"]["detail"]["Errors"]["ErrorDetail"]["PrimaryErrorCode"]["Code"],
            "250002"
        );
        let (status, _, text) = post_raw(
            &proxy.http,
            &format!("{}/webservices/Rate", proxy.url),
            soap_rate.clone(),
            Some("text/xml"),
        );
        assert_eq!(status, 500);
        assert!(text.contains("<err:Code>250002</err:Code>"), "{text}");
        let (_, _, text) = post_raw(
            &proxy.http,
            &format!("{}/ups.app/xml/Rate", proxy.url),
            old_rate.clone(),
            None,
        );
        assert_eq!(
            xml_text(&text, "Response/Error/ErrorCode").as_deref(),
            Some("250002"),
            "{text}"
        );
        assert!(sim.api_requests().is_empty(), "nothing reached UPS");
        assert!(proxy.log_text().contains("is disabled on the ops page"));
    }
    // After a restart it is still disabled; Enable brings it back.
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], FAST_TIMEOUTS);
    assert_eq!(rate(&proxy.http, &proxy, &EAST, false).status(), 401);
    set(&proxy, "enable");
    assert_eq!(rate(&proxy.http, &proxy, &EAST, false).status(), 200);
    let (status, _, _) = post_raw(
        &proxy.http,
        &format!("{}/webservices/Rate", proxy.url),
        soap_rate,
        Some("text/xml"),
    );
    assert_eq!(status, 200);
}

/// The account view counts exactly what was sent, by dialect and service, lists the last
/// refusals and shows who the account is (never its password).
#[test]
fn the_account_view_counts_what_the_account_sent() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST, &WEST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST, &WEST], FAST_TIMEOUTS);
    for _ in 0..3 {
        assert_eq!(rate(&proxy.http, &proxy, &EAST, false).status(), 200);
    }
    let legacy = json!({"UPSSecurity": ups_security(&EAST), "RateRequest": rate_body(false)["RateRequest"].clone()});
    for _ in 0..2 {
        assert_eq!(proxy.post_json("/rest/Rate", &legacy).status(), 200);
    }
    // One UPS error (counted as an error of that dialect and service).
    sim.faults(json!({"api_status": 500}));
    assert_eq!(proxy.post_json("/rest/Rate", &legacy).status(), 500);
    sim.clear_faults();
    // WEST's traffic is WEST's.
    assert_eq!(rate(&proxy.http, &proxy, &WEST, false).status(), 200);
    // A wrong password for EAST's login: a refusal on EAST's view.
    let mut wrong = EAST.clone();
    wrong.password = "not-it";
    assert_eq!(rate(&proxy.http, &proxy, &wrong, false).status(), 401);

    let v: Value = proxy
        .http
        .get(format!("{}/api/accounts/{}", proxy.admin, EAST.name))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let rows = v["traffic"]["by_service"].as_array().unwrap();
    let row = |d: &str| {
        rows.iter()
            .find(|r| r["dialect"] == d && r["service"] == "rate")
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(row("header_json")["requests_last_hour"], 3, "{v}");
    assert_eq!(row("header_json")["errors_last_hour"], 0);
    assert_eq!(row("legacy_json")["requests_last_hour"], 3);
    assert_eq!(row("legacy_json")["errors_last_hour"], 1);
    assert_eq!(row("legacy_json")["requests_last_day"], 3);
    assert_eq!(rows.len(), 2, "only what EAST sent: {v}");
    assert!(v["traffic"]["latency_ms"]
        .as_array()
        .is_some_and(|l| l.len() == 3));
    let refusals = v["traffic"]["last_refusals"].to_string();
    assert!(
        refusals.contains("bad user or password") && refusals.contains("127.0.0.1"),
        "{refusals}"
    );
    assert_eq!(v["access_license_number"], EAST.access_key);
    assert_eq!(v["user_id"], EAST.user);
    // A simulator base URL counts as production, and both environments go there.
    assert_eq!(v["environment"], "production");
    assert!(v["ups_base"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    assert_eq!(v["host_mismatches"], 0);
    let page = proxy.admin_text(&format!("/accounts/{}", EAST.name));
    assert!(
        page.contains(EAST.access_key)
            && page.contains(EAST.user)
            && page.contains("id=\"traffic\""),
        "{page}"
    );
    assert!(page.contains("Disable"), "{page}");
    // The page shows the same numbers: legacy JSON rate 3 requests, 1 error (hour and day).
    assert!(
        page.contains("<td>legacy_json</td><td>rate</td><td class=\"n\">3</td><td class=\"n\">1</td><td class=\"n\">3</td><td class=\"n\">1</td>"),
        "{page}"
    );
    assert!(
        page.contains(
            "<td>header_json</td><td>rate</td><td class=\"n\">3</td><td class=\"n\">0</td>"
        ),
        "{page}"
    );
    for secret in [EAST.password, EAST.client_secret] {
        assert!(!page.contains(secret) && !v.to_string().contains(secret));
    }
}

/// `[admin] map_writable = false` (a map under configuration management): the New-account
/// form only makes the block to paste (hashed password, never the clear one) and writes
/// nothing. `upsbridge accounts add` writes the block from a terminal.
#[test]
fn a_read_only_map_gets_a_block_to_paste_and_the_cli_adds_accounts() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST, &WEST], 14399);
    write_map(&dir.path().join("accounts.toml"), &[&EAST]);
    let config = Proxy::config_text(&sim.url, FAST_TIMEOUTS)
        .replace("[store]", "map_writable = false\n[store]");
    let proxy = Proxy::start_with_env(dir.path(), &[&EAST, &WEST], &config, &[]);
    let before = std::fs::read_to_string(dir.path().join("accounts.toml")).unwrap();
    let r = proxy
        .http
        .post(format!("{}/accounts/new", proxy.admin))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .form(&[
            ("name", WEST.name),
            ("ups_account_number", WEST.shipper),
            ("grant", "client_credentials"),
            ("client_id", WEST.client_id),
            ("secret_source", &format!("env:{}", secret_env(&WEST))),
            ("access_license_number", WEST.access_key),
            ("user_id", WEST.user),
            ("password", WEST.password),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().unwrap();
    let block = page
        .split("<pre id=\"block\">")
        .nth(1)
        .expect("a block to paste");
    assert!(
        block.contains("[[account]]") && block.contains("$argon2id$") && block.contains(WEST.name),
        "{block}"
    );
    assert!(!page.contains(WEST.password));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("accounts.toml")).unwrap(),
        before,
        "nothing written"
    );
    drop(proxy);

    // From a terminal: the password on stdin, the hash in the file.
    use std::io::Write;
    let mut cli = std::process::Command::new(BIN)
        .args(["accounts", "add", "--config"])
        .arg(dir.path().join("upsbridge.toml"))
        .args([
            "--name",
            WEST.name,
            "--ups-account-number",
            WEST.shipper,
            "--client-id",
            WEST.client_id,
        ])
        .args(["--client-secret", &format!("env:{}", secret_env(&WEST))])
        .args([
            "--access-license-number",
            WEST.access_key,
            "--user-id",
            WEST.user,
        ])
        .env(secret_env(&EAST), EAST.client_secret)
        .env(secret_env(&WEST), WEST.client_secret)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    cli.stdin
        .take()
        .unwrap()
        .write_all(WEST.password.as_bytes())
        .unwrap();
    let out = cli.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = std::fs::read_to_string(dir.path().join("accounts.toml")).unwrap();
    assert!(
        text.starts_with("# test account map\n") && text.contains(WEST.access_key),
        "{text}"
    );
    assert!(!text.contains(WEST.password));
}

/// Context switches so far of each of the proxy's threads, by thread name; threads of one
/// name (sled's I/O pool, say) are summed.
fn switches_by_thread(pid: u32) -> std::collections::BTreeMap<String, u64> {
    let mut by_name = std::collections::BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let (Ok(comm), Ok(status)) = (
            std::fs::read_to_string(task.path().join("comm")),
            std::fs::read_to_string(task.path().join("status")),
        ) else {
            continue; // the thread ended meanwhile
        };
        let switches: u64 = status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .map(|l| l.split_whitespace().last().unwrap().parse::<u64>().unwrap())
            .sum();
        let name = comm.trim().trim_end_matches(|c: char| c.is_ascii_digit());
        *by_name.entry(name.to_string()).or_default() += switches;
    }
    by_name
}

#[test]
fn an_idle_proxy_does_not_wake_for_its_log_and_a_new_line_is_written_at_once() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 3600);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], "");
    assert_eq!(rate(&proxy.http, &proxy, &EAST, false).status(), 200);
    let pid = proxy.proc.child.id();
    // Quiet: the startup and request lines are written, nothing else is logged, and the map
    // watcher has let the log's last write (in the map's folder) through its 250 ms debounce.
    std::thread::sleep(Duration::from_millis(600));
    let threads_before = switches_by_thread(pid);
    let cpu_before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let threads_after = switches_by_thread(pid);
    let cpu = cpu_ticks(pid) - cpu_before;
    // A thread that spins shows here, whether or not it is ever switched out (a poll loop
    // that never parks would use all 200 ticks of the two seconds).
    assert!(
        cpu <= 10,
        "the proxy used {cpu} ticks of CPU in 2 s of quiet"
    );
    let idle = threads_after["upsbridge-log"] - threads_before["upsbridge-log"];
    // A flusher on a fixed 20 ms beat switched about 100 times in these two seconds.
    assert!(
        idle <= 2,
        "the log thread woke {idle} times in 2 s of quiet"
    );
    // Nor does any other thread of ours tick. pingora's "fast" timer thread, started by the
    // first connection, switched about 200 times in these two seconds. sled's own threads
    // (its log flusher and I/O pool) wake a few times a second by design and are left out.
    let woke: Vec<(&String, u64)> = threads_after
        .iter()
        .filter(|(name, _)| !name.starts_with("sled-io-") && name.as_str() != "log flusher")
        // Saturating: a pool thread that ends meanwhile takes its count out of the sum.
        .map(|(name, after)| {
            let before = threads_before.get(name).copied().unwrap_or(0);
            (name, after.saturating_sub(before))
        })
        .filter(|(_, woke)| *woke > 2)
        .collect();
    assert!(
        woke.is_empty(),
        "threads that woke more than twice in 2 s of quiet: {woke:?}"
    );

    // The first line after the quiet spell still reaches the file within the batch delay.
    let logged = std::fs::metadata(&proxy.proc.log).unwrap().len();
    let sent = Instant::now();
    assert_eq!(rate(&proxy.http, &proxy, &EAST, false).status(), 200);
    while std::fs::metadata(&proxy.proc.log).unwrap().len() == logged {
        assert!(
            sent.elapsed() < Duration::from_millis(500),
            "no log line 500 ms after a request"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let text = proxy.log_text();
    let new = &text[logged as usize..];
    assert!(
        new.contains("service=\"rate\"") && new.contains("status=200"),
        "{new}"
    );
}

/// The lines of `log` that record the request `id`.
fn request_lines<'a>(log: &'a str, id: &str) -> Vec<&'a str> {
    let marker = format!(" request request_id={id} ");
    log.lines().filter(|l| l.contains(&marker)).collect()
}

/// The request id the proxy put on its answer.
fn request_id(answer: &reqwest::blocking::Response) -> String {
    answer
        .headers()
        .get("x-upsbridge-request-id")
        .expect("an answer names its request")
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn each_request_has_one_log_line_under_its_id_and_rust_log_governs_it() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 3600);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], "");
    let ok = rate(&proxy.http, &proxy, &EAST, false);
    assert_eq!(ok.status(), 200);
    let wrong = TestAccount {
        password: "not-the-password",
        ..EAST.clone()
    };
    let refused = rate(&proxy.http, &proxy, &wrong, false);
    assert_eq!(refused.status(), 401);
    let (ok, refused) = (request_id(&ok), request_id(&refused));
    assert_ne!(ok, refused);

    let log = proxy.log_text();
    for (id, rest) in [
        (
            &ok,
            format!(
                "dialect=\"header_json\" service=\"rate\" account=\"{}\" status=200 outcome=\"ok\" ms=",
                EAST.name
            ),
        ),
        (
            &refused,
            "dialect=\"header_json\" service=\"rate\" account=\"-\" status=401 outcome=\"auth\" ms=".to_string(),
        ),
    ] {
        let lines = request_lines(&log, id);
        assert_eq!(lines.len(), 1, "{id}:\n{log}");
        let (time, line) = lines[0].split_at(27);
        assert!(
            time.len() == 27 && time.as_bytes()[10] == b'T' && time.ends_with('Z'),
            "{time}"
        );
        let head = format!("  INFO upsbridge::pipeline: request request_id={id} {rest}");
        let ms = line.strip_prefix(&head).unwrap_or_else(|| panic!("{line}"));
        assert!(ms.parse::<u64>().is_ok(), "{line}");
    }
    assert!(!log.contains(wrong.password), "a password in the log");

    // The request line answers to RUST_LOG like any other line: off at `warn`, and off for
    // its own module while the rest of `info` stays.
    for (level, other_info) in [("warn", false), ("info,upsbridge::pipeline=warn", true)] {
        let dir = tempdir();
        write_map(&dir.path().join("accounts.toml"), &[&EAST]);
        let quiet = Proxy::start_with_env(
            dir.path(),
            &[&EAST],
            &Proxy::config_text(&sim.url, ""),
            &[("RUST_LOG", level)],
        );
        let answer = rate(&quiet.http, &quiet, &EAST, false);
        assert_eq!(answer.status(), 200);
        let id = request_id(&answer);
        let log = quiet.log_text();
        assert!(request_lines(&log, &id).is_empty(), "{level}:\n{log}");
        assert!(!log.contains(" request request_id="), "{level}:\n{log}");
        assert_eq!(log.contains("  INFO "), other_info, "{level}:\n{log}");
    }
}

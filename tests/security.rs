//! Findings of the attacker's and the flaky client's probe (hardening issue), each as a test
//! that failed before its fix: password guessing as a CPU, memory and timing oracle; raw
//! request bytes in debug/trace logs; a connection kept open after a body-framing error;
//! a store readable by other users; duplicated credentials; dot segments forwarded with a
//! bearer.

mod common;
#[path = "perf_common/mod.rs"]
mod perf_common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use perf_common::{cpu_ticks, heavy, rss_kib};
use reqwest::Method;
use serde_json::{json, Value};

fn rate_body() -> Value {
    json!({"RateRequest": {"Request": {"RequestOption": "Rate"},
        "Shipment": {"Shipper": {"ShipperNumber": "9Y9Y9Y", "Address": {"AddressLine": ["10 Elm Rd"], "City": "Dover", "StateProvinceCode": "DE", "PostalCode": "19901", "CountryCode": "US"}},
                     "ShipTo": {"Name": "Acme", "Address": {"AddressLine": ["5 Oak Ave"], "City": "Reno", "StateProvinceCode": "NV", "PostalCode": "89501", "CountryCode": "US"}},
                     "Service": {"Code": "03"},
                     "Package": {"PackagingType": {"Code": "02"}, "PackageWeight": {"UnitOfMeasurement": {"Code": "LBS"}, "Weight": "3"}}}}})
}

/// A header-style rate with these credentials: (status, time taken).
fn rate_as(proxy: &Proxy, key: &str, user: &str, password: &str) -> (u16, Duration) {
    let started = Instant::now();
    let r = proxy
        .http
        .post(format!("{}/ship/v1/rating/Rate", proxy.url))
        .header("AccessLicenseNumber", key)
        .header("Username", user)
        .header("Password", password)
        .json(&rate_body())
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let _ = r.bytes();
    (status, started.elapsed())
}

fn env() -> (tempfile::TempDir, Sim, Proxy) {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST, &WEST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST, &WEST], FAST_TIMEOUTS);
    (dir, sim, proxy)
}

#[test]
fn a_thousand_wrong_passwords_cost_no_argon2_and_never_slow_another_account() {
    let _heavy = heavy();
    let (_dir, sim, proxy) = env();
    // EAST's real client is in use (its password verified once).
    assert_eq!(
        rate_as(&proxy, EAST.access_key, EAST.user, EAST.password).0,
        200
    );
    let pid = proxy.proc.child.id();
    let cpu_before = cpu_ticks(pid);
    let (rss_before, _) = rss_kib(pid);
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(rss_before));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let (rss, _) = rss_kib(pid);
                peak.fetch_max(rss, std::sync::atomic::Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let flood = |proxy: &Proxy, round: u32| -> Vec<std::thread::JoinHandle<()>> {
        (0..4)
            .map(|t| {
                let (url, http) = (proxy.url.clone(), proxy.http.clone());
                std::thread::spawn(move || {
                    for i in 0..250 {
                        let r = http
                            .post(format!("{url}/ship/v1/rating/Rate"))
                            .header("AccessLicenseNumber", EAST.access_key)
                            .header("Username", EAST.user)
                            .header("Password", format!("guess-{round}-{t}-{i}"))
                            .json(&rate_body())
                            .send()
                            .unwrap();
                        assert_eq!(r.status().as_u16(), 401);
                        let v: Value = r.json().unwrap();
                        assert_eq!(v["response"]["errors"][0]["code"], "250002");
                    }
                })
            })
            .collect()
    };
    // 1: the flood alone, measured.
    let started = Instant::now();
    for t in flood(&proxy, 1) {
        t.join().unwrap();
    }
    let flood_took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    sampler.join().unwrap();
    let cpu = (cpu_ticks(pid) - cpu_before) as f64 / 100.0;
    let growth_kib = peak
        .load(std::sync::atomic::Ordering::SeqCst)
        .saturating_sub(rss_before);
    // 2: another flood, and WEST's first login ever in the middle of it.
    let second = flood(&proxy, 2);
    std::thread::sleep(Duration::from_millis(200));
    let (status, west_took) = rate_as(&proxy, WEST.access_key, WEST.user, WEST.password);
    assert_eq!(status, 200);
    for t in second {
        t.join().unwrap();
    }
    eprintln!(
        "1000 wrong passwords in {flood_took:?}: proxy CPU {cpu:.2} s, peak RSS growth {growth_kib} KiB; \
         another account's first login during a flood took {west_took:?}"
    );
    assert!(cpu < 3.0, "{cpu:.2} CPU seconds for 1000 wrong passwords");
    assert!(growth_kib < 10 * 1024, "peak RSS grew {growth_kib} KiB");
    assert!(
        west_took < Duration::from_millis(200),
        "first login took {west_took:?}"
    );
    // The real client still works, nothing was forwarded for the guesses.
    assert_eq!(
        rate_as(&proxy, EAST.access_key, EAST.user, EAST.password).0,
        200
    );
    assert_eq!(sim.api_requests().len(), 3);
    // Refusals say who tried what from where (never the password), and are counted.
    let log = proxy.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("legacy credentials refused"))
        .expect("a refusal line");
    // The access key only as its hash (legacy-dialects §2: never log the stripped values).
    let hashed = upsbridge::accounts::AccessKey::from(EAST.access_key).to_string();
    assert!(
        line.contains("peer=127.0.0.1")
            && line.contains(&format!("access_key={hashed}"))
            && line.contains("user=legacyuser"),
        "{line}"
    );
    assert!(
        !log.contains(EAST.access_key),
        "an access key reached the log"
    );
    assert!(
        !log.contains("guess-"),
        "a guessed password reached the log"
    );
    let metrics = proxy.admin_text("/metrics");
    let refused: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("upsbridge_auth_refusals_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(refused, 2000.0, "{metrics}");
    assert!(
        metrics.contains("upsbridge_auth_refusals_total{reason=\"backing_off\"}"),
        "{metrics}"
    );
}

#[test]
fn unknown_users_and_wrong_passwords_are_refused_in_the_same_time() {
    let _heavy = heavy();
    let (_dir, _sim, proxy) = env();
    assert_eq!(
        rate_as(&proxy, EAST.access_key, EAST.user, EAST.password).0,
        200
    );
    let mut unknown = vec![];
    let mut wrong = vec![];
    for i in 0..61 {
        let (s, t) = rate_as(&proxy, EAST.access_key, "nobody", &format!("x{i}"));
        assert_eq!(s, 401);
        unknown.push(t);
        let (s, t) = rate_as(&proxy, EAST.access_key, EAST.user, &format!("x{i}"));
        assert_eq!(s, 401);
        wrong.push(t);
    }
    // The first tries (before the backoff) are the oracle an attacker would use: each
    // costs one argon2 run's time, whether the user exists or not.
    for i in 0..3 {
        let (u, w) = (unknown[i].as_secs_f64(), wrong[i].as_secs_f64());
        assert!(
            (u - w).abs() / u.max(w) < 0.5,
            "try {i}: unknown {u:.4}s, known {w:.4}s"
        );
    }
    unknown.sort();
    wrong.sort();
    let (mu, mw) = (unknown[30].as_secs_f64(), wrong[30].as_secs_f64());
    eprintln!("median refusal: unknown user {mu:.5}s, known user wrong password {mw:.5}s");
    assert!(
        (mu - mw).abs() / mu.max(mw) < 0.2,
        "medians {mu:.5}s and {mw:.5}s"
    );
}

#[test]
fn no_secret_reaches_the_log_at_trace_level_even_for_malformed_requests() {
    // Timing is measured here: no two tests of this file run at once.
    let _heavy = heavy();
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    write_map(&dir.path().join("accounts.toml"), &[&EAST]);
    let proxy = Proxy::start_with_env(
        dir.path(),
        &[&EAST],
        &Proxy::config_text(&sim.url, FAST_TIMEOUTS),
        &[("RUST_LOG", "trace")],
    );
    let addr = proxy.direct_url.trim_start_matches("http://").to_string();
    let raw = |bytes: &str| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(bytes.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let creds = format!(
        "AccessLicenseNumber: {}\r\nUsername: {}\r\nPassword: {}\r\n",
        EAST.access_key, EAST.user, EAST.password
    );
    // Malformed request lines and headers, a bad chunk size, an oversize header: pingora's
    // debug records would print these bytes.
    raw(&format!(
        "POST /ship/v1/rating/Rate HTTP/1.1 junk\r\nHost: x\r\n{creds}\r\n"
    ));
    raw(&format!(
        "GET /track/v1/details/1Z HTTP/1.1\r\nHost: x\r\n{creds}Bad Header\r\n\r\n"
    ));
    raw(&format!("POST /rest/Rate HTTP/1.1\r\nHost: x\r\n{creds}Transfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n"));
    raw(&format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{creds}X-Big: {}\r\n\r\n",
        "a".repeat(70_000)
    ));
    // And good requests in every dialect (tokens, client secrets and bearers in play).
    let r = header_request(
        &proxy.http,
        Method::POST,
        &format!("{}/ship/v1/rating/Rate", proxy.url),
        &EAST,
        Some(&rate_body()),
    );
    assert_eq!(r.status(), 200);
    let mut legacy = rate_body();
    legacy["UPSSecurity"] = ups_security(&EAST);
    assert_eq!(proxy.post_json("/rest/Rate", &legacy).status(), 200);
    let bearer = sim.api_requests()[0]["headers"]["authorization"]
        .as_str()
        .unwrap()
        .trim_start_matches("Bearer ")
        .to_string();
    let log = proxy.log_text();
    assert!(
        log.contains("TRACE") || log.contains("trace"),
        "the log is at trace level"
    );
    for secret in [EAST.password, EAST.client_secret, bearer.as_str()] {
        assert!(!log.contains(secret), "secret `{secret}` in the trace log");
    }
    let key = std::fs::read_to_string(dir.path().join("store.key")).unwrap_or_default();
    if !key.trim().is_empty() {
        assert!(!log.contains(key.trim()), "the store key is in the log");
    }
}

#[test]
fn a_body_framing_error_closes_the_connection() {
    // Timing is measured here: no two tests of this file run at once.
    let _heavy = heavy();
    let (_dir, sim, proxy) = env();
    let addr = proxy.direct_url.trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // A bad chunk size, then what would be a second request on the same connection.
    let second = format!(
        "POST /rest/Rate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        serde_json::to_string(&json!({"UPSSecurity": ups_security(&EAST), "RateRequest": rate_body()["RateRequest"]})).unwrap().len(),
        serde_json::to_string(&json!({"UPSSecurity": ups_security(&EAST), "RateRequest": rate_body()["RateRequest"]})).unwrap()
    );
    let first = "POST /rest/Rate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    s.write_all(format!("{first}{second}").as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert_eq!(
        out.matches("HTTP/1.1 ").count(),
        1,
        "one answer, then the connection closed:\n{out}"
    );
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("\"Fault\""), "{out}");
    assert!(
        sim.api_requests().is_empty(),
        "the smuggled request was not served"
    );
}

#[test]
fn the_store_the_key_and_the_rotation_journal_are_private() {
    // Timing is measured here: no two tests of this file run at once.
    let _heavy = heavy();
    use std::os::unix::fs::PermissionsExt;
    let (dir, _sim, proxy) = env();
    assert_eq!(
        rate_as(&proxy, EAST.access_key, EAST.user, EAST.password).0,
        200
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let store = dir.path().join("store");
    assert_eq!(mode(&store), 0o700, "store directory");
    for entry in std::fs::read_dir(&store).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
    let key = dir.path().join("store.key");
    assert_eq!(mode(&key), 0o600, "key file");
}

#[test]
fn duplicated_credentials_are_refused_as_malformed_and_nothing_is_forwarded() {
    // Timing is measured here: no two tests of this file run at once.
    let _heavy = heavy();
    let (_dir, sim, proxy) = env();
    // Header style: a credential header sent twice.
    let r = proxy
        .http
        .post(format!("{}/ship/v1/rating/Rate", proxy.url))
        .header("AccessLicenseNumber", EAST.access_key)
        .header("Username", EAST.user)
        .header("Password", "first")
        .header("Password", EAST.password)
        .json(&rate_body())
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    // Legacy JSON: UPSSecurity twice (the first copy would have been forwarded).
    let sec = serde_json::to_string(&ups_security(&EAST)).unwrap();
    let other = sec.replace(EAST.password, "other-password");
    let body = format!(
        "{{\"UPSSecurity\":{other},\"RateRequest\":{},\"UPSSecurity\":{sec}}}",
        rate_body()["RateRequest"]
    );
    let (status, _, text) = post_raw(
        &proxy.http,
        &format!("{}/rest/Rate", proxy.url),
        body,
        Some("application/json"),
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("10001") && text.contains("twice"), "{text}");
    // Legacy JSON: a Password twice inside UPSSecurity; both UPSSecurity and Security.
    let inner = sec.replacen("\"Password\"", "\"Password\":\"x\",\"Password\"", 1);
    let body = format!(
        "{{\"UPSSecurity\":{inner},\"RateRequest\":{}}}",
        rate_body()["RateRequest"]
    );
    let (status, _, _) = post_raw(
        &proxy.http,
        &format!("{}/rest/Rate", proxy.url),
        body,
        Some("application/json"),
    );
    assert_eq!(status, 400);
    let body = format!(
        "{{\"UPSSecurity\":{sec},\"Security\":{sec},\"RateRequest\":{}}}",
        rate_body()["RateRequest"]
    );
    let (status, _, _) = post_raw(
        &proxy.http,
        &format!("{}/rest/Rate", proxy.url),
        body,
        Some("application/json"),
    );
    assert_eq!(status, 400);
    // SOAP: two UPSSecurity blocks.
    let one = format!("<upss:UPSSecurity><upss:UsernameToken><upss:Username>{}</upss:Username><upss:Password>{}</upss:Password></upss:UsernameToken><upss:ServiceAccessToken><upss:AccessLicenseNumber>{}</upss:AccessLicenseNumber></upss:ServiceAccessToken></upss:UPSSecurity>", EAST.user, EAST.password, EAST.access_key);
    let envelope = format!("<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:upss=\"http://www.ups.com/XMLSchema/XOLTWS/UPSS/v1.0\"><soapenv:Header>{one}{one}</soapenv:Header><soapenv:Body><rate:RateRequest xmlns:rate=\"http://www.ups.com/XMLSchema/XOLTWS/Rate/v1.1\"/></soapenv:Body></soapenv:Envelope>");
    let (status, _, text) = post_raw(
        &proxy.http,
        &format!("{}/webservices/Rate", proxy.url),
        envelope,
        Some("text/xml"),
    );
    assert_eq!(status, 500);
    assert!(text.contains("<err:Code>10001</err:Code>"), "{text}");
    // Old XML: the Password twice in AccessRequest.
    let access = format!("<?xml version=\"1.0\"?><AccessRequest><AccessLicenseNumber>{}</AccessLicenseNumber><UserId>{}</UserId><Password>x</Password><Password>{}</Password></AccessRequest>", EAST.access_key, EAST.user, EAST.password);
    let (status, _, text) = post_raw(
        &proxy.http,
        &format!("{}/ups.app/xml/Rate", proxy.url),
        format!("{access}<RatingServiceSelectionRequest/>"),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(
        xml_text(&text, "Response/Error/ErrorCode").as_deref(),
        Some("10001"),
        "{text}"
    );
    assert!(sim.api_requests().is_empty(), "nothing reached UPS");
}

#[test]
fn dot_segments_are_refused_raw_or_encoded_and_never_forwarded() {
    // Timing is measured here: no two tests of this file run at once.
    let _heavy = heavy();
    let (_dir, sim, proxy) = env();
    let addr = proxy.direct_url.trim_start_matches("http://").to_string();
    for path in [
        "/api/rating/v2409/../../security/v1/oauth/token",
        "/api/rating/v2409/%2e%2e/Rate",
        "/api/./rating/v2409/Rate",
        "/ship/v1/rating/.%2E/Rate",
    ] {
        // Raw socket: an HTTP client would normalise the path before sending it.
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let body = rate_body().to_string();
        s.write_all(format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAccessLicenseNumber: {}\r\nUsername: {}\r\nPassword: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            EAST.access_key, EAST.user, EAST.password, body.len()
        ).as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 400"), "{path}: {out}");
        assert!(out.contains("10001"), "{path}: {out}");
    }
    assert!(sim.api_requests().is_empty());
    assert_eq!(
        sim.token_requests("client_credentials"),
        0,
        "refused before any token was asked for"
    );
}

#[test]
fn the_admin_listener_wants_the_password_its_own_host_and_csrf_tokens() {
    // Timing is measured here: no two tests of this file run at once.
    let _heavy = heavy();
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&NORTH], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&NORTH], FAST_TIMEOUTS);
    let http = no_redirects();
    let a = |p: &str| format!("{}{p}", proxy.admin);
    // Without credentials only health and readiness answer.
    for p in ["/healthz", "/readyz"] {
        assert_eq!(http.get(a(p)).send().unwrap().status(), 200, "{p}");
    }
    for p in [
        "/",
        "/api/accounts",
        "/metrics",
        "/accounts/north-dock/authorize",
    ] {
        assert_eq!(http.get(a(p)).send().unwrap().status(), 401, "{p}");
    }
    let r = http
        .post(a("/accounts/north-dock/authorize"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    // A browser is sent to the login form; a wrong password is refused.
    let r = http
        .get(a("/"))
        .header("accept", "text/html")
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login");
    let r = http
        .post(a("/login"))
        .form(&[("password", "wrong")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    // The forged-Host attack: refused before anything else, whatever the credentials.
    let r = http
        .post(a("/accounts/north-dock/authorize"))
        .header("host", "evil.example")
        .header("origin", "http://evil.example")
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .unwrap();
    assert_eq!(r.status(), 421);
    // Log in as a browser: a session cookie, HttpOnly and SameSite=Lax.
    let r = http
        .post(a("/login"))
        .form(&[("password", ADMIN_PASSWORD)])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    let session = set.split(';').next().unwrap().to_string();
    let page = http
        .get(a("/"))
        .header("cookie", &session)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .expect("the ops page carries a CSRF token")
        .to_string();
    // A cross-site POST with the session cookie but no CSRF token: 403, no flow started.
    let r = http
        .post(a("/accounts/north-dock/authorize"))
        .header("cookie", &session)
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .post(a("/accounts/north-dock/authorize"))
        .header("cookie", &session)
        .header("origin", "http://evil.example")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "a foreign Origin is refused even with the token"
    );
    // The same POST from the ops page: off to UPS, with the flow bound to this browser.
    let r = http
        .post(a("/accounts/north-dock/authorize"))
        .header("cookie", &session)
        .header("origin", proxy.admin.as_str())
        .form(&[("csrf", csrf.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    let ups = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        ups.starts_with(&format!("{}/security/v1/oauth/authorize", sim.url)),
        "{ups}"
    );
    let flow = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        flow.starts_with("ub_oauth=") && flow.contains("HttpOnly"),
        "{flow}"
    );
    // Someone else (another browser, another UPS login) finishes that flow: refused.
    let callback = log_in_at_ups(&ups);
    let r = http.get(&callback).send().unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("another browser"));
    assert_eq!(
        account_row(&proxy, NORTH.name)["token"]["state"],
        "needs_authorization"
    );
    assert_eq!(
        sim.token_requests("authorization_code"),
        0,
        "nothing was exchanged"
    );
    // Flash messages are codes: text from the URL is never shown.
    let page = http
        .get(a(
            "/?error=UPS%20says%3A%20call%20555-0100&flash=authorized&account=nobody",
        ))
        .header("cookie", &session)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        !page.contains("555-0100") && !page.contains("id=\"flash\""),
        "{page}"
    );
}

// ---- retries of calls that create or destroy something -------------------------------------

/// A proxy whose UPS calls may take 3 s (its own timeout is 10 s).
fn slow_env() -> (tempfile::TempDir, Sim, Proxy) {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], "request_timeout_ms = 10000\n");
    (dir, sim, proxy)
}

/// A client with a 1 s read timeout that re-sends the same request up to 3 times, as the
/// retrying client in the probe did. Returns (attempts, status, body) of the first answer.
fn retrying_client(
    send: impl Fn(&reqwest::blocking::Client) -> reqwest::Result<reqwest::blocking::Response>,
) -> (usize, u16, String) {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    for attempt in 1..=4 {
        match send(&http) {
            Ok(r) => {
                let status = r.status().as_u16();
                if let Ok(body) = r.text() {
                    return (attempt, status, body);
                }
            }
            Err(e) => assert!(e.is_timeout(), "attempt {attempt}: {e}"),
        }
    }
    panic!("no answer after 4 attempts");
}

fn count(sim: &Sim, method: &str, ends: &str) -> usize {
    sim.api_requests()
        .iter()
        .filter(|r| r["method"] == method && r["path"].as_str().unwrap().contains(ends))
        .count()
}

#[test]
fn a_ship_retried_after_timeouts_ships_once_and_the_retry_gets_the_label() {
    // Timing is measured here: no two tests of this file run at once.
    let _heavy = heavy();
    let (_dir, sim, proxy) = slow_env();
    sim.faults(json!({"latency_ms": 3000}));
    // Header style: the body as the 2018-2022 JSON API took it.
    let mut body = ship_json(&EAST);
    body.as_object_mut().unwrap().remove("UPSSecurity");
    let url = format!("{}/ship/v1801/shipments", proxy.url);
    let (attempts, status, text) = retrying_client(|http| {
        http.post(&url)
            .header("AccessLicenseNumber", EAST.access_key)
            .header("Username", EAST.user)
            .header("Password", EAST.password)
            .json(&body)
            .send()
    });
    assert!(attempts > 1, "the first attempt timed out");
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(
        v["ShipmentResponse"]["ShipmentResults"]["PackageResults"]["ShippingLabel"]["GraphicImage"]
            .is_string(),
        "{text}"
    );
    assert_eq!(
        count(&sim, "POST", "/ship"),
        1,
        "exactly one shipment at UPS\n{}",
        proxy
            .log_text()
            .lines()
            .filter(|l| !l.contains("DEBUG"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Legacy JSON, the same way.
    sim.clear();
    let url = format!("{}/rest/Ship", proxy.url);
    let body = ship_json(&EAST);
    let (attempts, status, text) = retrying_client(|http| http.post(&url).json(&body).send());
    assert!(attempts > 1);
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("GraphicImage"), "{text}");
    assert_eq!(
        count(&sim, "POST", "/ship"),
        1,
        "exactly one shipment at UPS"
    );
    let m = proxy.admin_text("/metrics");
    assert!(m.contains("upsbridge_answers_kept_total 2"), "{m}");
}

#[test]
fn two_identical_ships_whose_answers_were_delivered_are_two_shipments() {
    // Timing is measured here: no two tests of this file run at once.
    let _heavy = heavy();
    let (_dir, sim, proxy) = slow_env();
    let body = ship_json(&EAST);
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let r = proxy.post_json("/rest/Ship", &body);
            assert_eq!(r.status(), 200);
            let v: Value = r.json().unwrap();
            v["ShipmentResponse"]["ShipmentResults"]["ShipmentIdentificationNumber"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_ne!(ids[0], ids[1], "two boxes, two shipments");
    assert_eq!(count(&sim, "POST", "/ship"), 2);
}

#[test]
fn a_retried_ship_accept_and_a_retried_void_act_once() {
    // Timing is measured here: no two tests of this file run at once.
    let _heavy = heavy();
    let (_dir, sim, proxy) = slow_env();
    let access = format!(
        "<?xml version=\"1.0\"?><AccessRequest><AccessLicenseNumber>{}</AccessLicenseNumber><UserId>{}</UserId><Password>{}</Password></AccessRequest>",
        EAST.access_key, EAST.user, EAST.password
    );
    let confirm = format!("{access}<ShipmentConfirmRequest><Request><RequestAction>ShipConfirm</RequestAction><RequestOption>nonvalidate</RequestOption></Request><Shipment><Shipper><Name>East</Name><ShipperNumber>9Y9Y9Y</ShipperNumber><Address><AddressLine1>10 Elm Rd</AddressLine1><City>Dover</City><StateProvinceCode>DE</StateProvinceCode><PostalCode>19901</PostalCode><CountryCode>US</CountryCode></Address></Shipper><ShipTo><CompanyName>Acme</CompanyName><Address><AddressLine1>5 Oak Ave</AddressLine1><City>Reno</City><StateProvinceCode>NV</StateProvinceCode><PostalCode>89501</PostalCode><CountryCode>US</CountryCode></Address></ShipTo><PaymentInformation><Prepaid><BillShipper><AccountNumber>9Y9Y9Y</AccountNumber></BillShipper></Prepaid></PaymentInformation><Service><Code>03</Code></Service><Package><PackagingType><Code>02</Code></PackagingType><PackageWeight><Weight>5</Weight></PackageWeight></Package></Shipment><LabelSpecification><LabelPrintMethod><Code>GIF</Code></LabelPrintMethod></LabelSpecification></ShipmentConfirmRequest>");
    let (_, _, text) = post_raw(
        &proxy.http,
        &format!("{}/ups.app/xml/ShipConfirm", proxy.url),
        confirm,
        None,
    );
    let digest = xml_text(&text, "ShipmentDigest").expect("a digest");
    sim.faults(json!({"latency_ms": 3000}));
    let accept = format!("{access}<ShipmentAcceptRequest><Request><RequestAction>ShipAccept</RequestAction></Request><ShipmentDigest>{digest}</ShipmentDigest></ShipmentAcceptRequest>");
    let url = format!("{}/ups.app/xml/ShipAccept", proxy.url);
    let (attempts, status, text) =
        retrying_client(|http| http.post(&url).body(accept.clone()).send());
    assert!(attempts > 1);
    assert_eq!(status, 200);
    assert_old_xml_success(&text);
    assert!(
        xml_text(
            &text,
            "ShipmentResults/PackageResults/LabelImage/GraphicImage"
        )
        .is_some_and(|g| !g.is_empty()),
        "{text}"
    );
    assert_eq!(
        count(&sim, "POST", "/ship"),
        1,
        "exactly one shipment at UPS"
    );
    let id = xml_text(&text, "ShipmentResults/ShipmentIdentificationNumber").unwrap();
    // Void, legacy JSON, retried: one void at UPS, the client told it is voided.
    let void = json!({"UPSSecurity": ups_security(&EAST), "VoidShipmentRequest": {"Request": {"RequestOption": "1"}, "VoidShipment": {"ShipmentIdentificationNumber": id}}});
    let url = format!("{}/rest/Void", proxy.url);
    let (attempts, status, text) = retrying_client(|http| http.post(&url).json(&void).send());
    assert!(attempts > 1);
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("VoidShipmentResponse"), "{text}");
    assert_eq!(
        count(&sim, "DELETE", "/void/cancel/"),
        1,
        "exactly one void at UPS"
    );
    // Voiding again later is the same void: the same answer, no second call.
    sim.clear_faults();
    let r = proxy.post_json("/rest/Void", &void);
    assert_eq!(r.status(), 200);
    assert_eq!(count(&sim, "DELETE", "/void/cancel/"), 1);
}

#[test]
fn a_kept_answer_survives_kill_9_and_is_replayed_after_restart() {
    // Timing is measured here: no two tests of this file run at once.
    let _heavy = heavy();
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    sim.faults(json!({"latency_ms": 2000}));
    let body = ship_json(&EAST);
    {
        let proxy = Proxy::start(dir.path(), &sim, &[&EAST], "request_timeout_ms = 10000\n");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let e = http
            .post(format!("{}/rest/Ship", proxy.url))
            .json(&body)
            .send()
            .unwrap_err();
        assert!(e.is_timeout());
        // UPS answers after 2 s; the proxy keeps the answer, then dies hard.
        let kept = perf_common::wait_for(Duration::from_secs(10), || {
            proxy
                .admin_text("/metrics")
                .contains("upsbridge_answers_kept_total 1")
                .then_some(())
        });
        assert!(kept.is_some(), "the undelivered answer was kept");
        let pid = proxy.proc.child.id().to_string();
        assert!(std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success());
    }
    sim.clear_faults();
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], "request_timeout_ms = 10000\n");
    let r = proxy.post_json("/rest/Ship", &body);
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().contains("GraphicImage"));
    assert_eq!(
        count(&sim, "POST", "/ship"),
        1,
        "replayed after the restart, not shipped again"
    );
}

/// The admin listener closes a connection whose request head is not complete in time (also
/// the idle wait for a kept-alive connection's next request) and caps open connections.
#[test]
fn the_admin_listener_times_out_slow_heads_and_idle_connections_and_caps_connections() {
    // Timing is measured here: no two tests of this file run at once.
    let _heavy = heavy();
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    write_map(&dir.path().join("accounts.toml"), &[&EAST]);
    let config = Proxy::config_text(&sim.url, FAST_TIMEOUTS).replace(
        "[store]",
        "header_read_timeout_secs = 1\nmax_connections = 4\n[store]",
    );
    let proxy = Proxy::start_with_env(dir.path(), &[&EAST], &config, &[]);
    let addr = proxy.admin.trim_start_matches("http://").to_string();
    assert_listener_limits(
        &addr,
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        || {
            proxy
                .http
                .get(format!("{}/healthz", proxy.admin))
                .send()
                .unwrap()
                .status()
                .as_u16()
        },
    );
    assert!(proxy.log_text().contains("too many open"));
}

#[test]
fn the_proxy_listener_times_out_slow_heads_and_idle_connections_and_caps_connections() {
    // Timing is measured here: no two tests of this file run at once.
    let _heavy = heavy();
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    write_map(&dir.path().join("accounts.toml"), &[&EAST]);
    let config = Proxy::config_text(&sim.url, FAST_TIMEOUTS).replace(
        "[admin]",
        "header_read_timeout_secs = 1\nmax_connections = 4\n[admin]",
    );
    let proxy = Proxy::start_with_env(dir.path(), &[&EAST], &config, &[]);
    let addr = proxy.direct_url.trim_start_matches("http://").to_string();
    let track = format!(
        "GET /track/v1/details/1Z12345E0205271688 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccessLicenseNumber: {}\r\nUsername: {}\r\nPassword: {}\r\n",
        EAST.access_key, EAST.user, EAST.password
    );
    assert_listener_limits(&addr, &track, || {
        proxy
            .http
            .get(format!(
                "{}/track/v1/details/1Z12345E0205271688",
                proxy.direct_url
            ))
            .header("AccessLicenseNumber", EAST.access_key)
            .header("Username", EAST.user)
            .header("Password", EAST.password)
            .send()
            .unwrap()
            .status()
            .as_u16()
    });
    assert!(proxy.log_text().contains("too many open"));
    let metrics = proxy.metrics_text();
    assert!(
        metrics.contains("upsbridge_connections_refused_total{listener=\"proxy\"} 1"),
        "{metrics}"
    );
}

/// A listener with `header_read_timeout_secs = 1` and `max_connections = 4`: a head that never
/// ends and an idle kept-alive connection are closed within about a second; a fifth connection
/// is closed at once; once the four are gone, `serves()` gets 200 again. `head` is a request
/// without its final empty line.
fn assert_listener_limits(addr: &str, head: &str, serves: impl Fn() -> u16) {
    let closed_within = |s: &mut std::net::TcpStream, limit: Duration| {
        s.set_read_timeout(Some(limit)).unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return Some(started.elapsed()),
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Some(started.elapsed())
                }
                Err(_) => return None,
            }
        }
    };
    // A head sent and never finished: closed after about a second.
    let mut slow = std::net::TcpStream::connect(addr).unwrap();
    slow.write_all(head.as_bytes()).unwrap();
    let took =
        closed_within(&mut slow, Duration::from_secs(5)).expect("the slow head was not closed");
    // Under two limits: a deadline restarted anywhere (say, on a hand-over) would show.
    assert!(took < Duration::from_millis(1800), "closed after {took:?}");
    // A kept-alive connection that stays idle after its answer: closed too.
    let mut idle = std::net::TcpStream::connect(addr).unwrap();
    idle.write_all(format!("{head}\r\n").as_bytes()).unwrap();
    let took = closed_within(&mut idle, Duration::from_secs(5))
        .expect("the idle connection was not closed");
    assert!(took < Duration::from_millis(1800), "closed after {took:?}");
    // Four connections open at once at most: a fifth is closed at once.
    let mut held: Vec<std::net::TcpStream> = (0..4)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut fifth = std::net::TcpStream::connect(addr).unwrap();
    let took = closed_within(&mut fifth, Duration::from_millis(800))
        .expect("a fifth connection was served");
    assert!(took < Duration::from_millis(800));
    held.clear();
    // Once they are gone, the listener answers again.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(serves(), 200);
}

//! Faults at UPS (simulator `/__sim/faults`) against the real proxy: the API slower than
//! `[ups] request_timeout_ms`, connections reset, UPS 5xx, the token endpoint failing and too
//! slow. Each client gets an error in its own dialect within the configured time, the next
//! request on a fresh connection succeeds promptly once the fault is cleared (no stuck
//! connection, no restart), and `/metrics` counts every outcome.

mod common;
mod perf_common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use perf_common::*;
use serde_json::{json, Value};

const REQUEST_TIMEOUT: Duration = Duration::from_millis(1500);
const TOKEN_TIMEOUT: Duration = Duration::from_millis(1200);
const BACKOFF: Duration = Duration::from_millis(400);
/// What a debug build on a busy 2-core machine may add to any answer.
const SLACK: Duration = Duration::from_millis(1500);
/// "Promptly": a healthy request through the proxy.
const PROMPT: Duration = Duration::from_millis(2000);

/// A blocking client that never reuses a connection.
fn fresh_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

struct Answer {
    status: u16,
    kind: Option<String>,
    body: Value,
    took: Duration,
}

fn send(base: &str, a: &TestAccount, shape: Shape) -> Answer {
    let http = fresh_client();
    let started = Instant::now();
    let req = match shape {
        Shape::Header => http
            .post(format!("{base}/ship/v2409/rating/Rate"))
            .header("AccessLicenseNumber", a.access_key)
            .header("Username", a.user)
            .header("Password", a.password)
            .header("transId", "fault-1")
            .header("transactionSrc", "perf")
            .json(&rate_body()),
        Shape::LegacyJson => http
            .post(format!("{base}/rest/Rate"))
            .json(&legacy_rate_body(a)),
    };
    let r = req.send().expect("the proxy answers every request");
    let status = r.status().as_u16();
    let kind = r
        .headers()
        .get("x-upsbridge-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = r.text().unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        kind,
        body,
        took: started.elapsed(),
    }
}

/// The UPS error code and severity a client reads from an error in its dialect.
fn dialect_error(shape: Shape, body: &Value) -> (String, String) {
    match shape {
        Shape::Header => {
            let e = &body["response"]["errors"][0];
            (e["code"].as_str().unwrap_or("").to_string(), String::new())
        }
        Shape::LegacyJson => {
            let d = &body["Fault"]["detail"]["Errors"]["ErrorDetail"];
            let d = if d.is_array() { &d[0] } else { d };
            (
                d["PrimaryErrorCode"]["Code"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                d["Severity"].as_str().unwrap_or("").to_string(),
            )
        }
    }
}

/// Counts of `upsbridge_requests_total` by outcome that the test expects.
#[derive(Default)]
struct Expected(BTreeMap<String, u64>);

impl Expected {
    fn add(&mut self, outcome: &str) {
        *self.0.entry(outcome.to_string()).or_default() += 1;
    }
}

struct Scene {
    sim: Sim,
    proxy: Proxy,
    accounts: Vec<TestAccount>,
    expected: Expected,
    _dir: tempfile::TempDir,
}

impl Scene {
    fn start() -> Scene {
        let accounts: Vec<TestAccount> = (0..3).map(|i| account(i, "fault")).collect();
        let refs: Vec<&TestAccount> = accounts.iter().collect();
        let dir = tempdir();
        let sim = Sim::start(dir.path(), &refs, 14399);
        let ups = format!(
            "request_timeout_ms = {}\ntoken_timeout_ms = {}\nconnect_timeout_ms = 1000\ntoken_failure_backoff_ms = {}\n",
            REQUEST_TIMEOUT.as_millis(),
            TOKEN_TIMEOUT.as_millis(),
            BACKOFF.as_millis()
        );
        // One proxy thread: each thread keeps its own pool of UPS connections, and the
        // connection-reset step relies on the connections that timed out before it being all
        // the proxy had (the simulator resets connections as it accepts them).
        let config = Proxy::config_text(&sim.url, &ups).replace("threads = 2", "threads = 1");
        write_map(&dir.path().join("accounts.toml"), &refs);
        let proxy = Proxy::start_with_config(dir.path(), &refs, &config);
        Scene {
            sim,
            proxy,
            accounts,
            expected: Expected::default(),
            _dir: dir,
        }
    }

    /// Both dialects succeed for `account`, each on a fresh connection, promptly.
    fn assert_healthy(&mut self, account: usize, after: &str) {
        for shape in [Shape::Header, Shape::LegacyJson] {
            let a = send(&self.proxy.url, &self.accounts[account], shape);
            assert_eq!(
                a.status, 200,
                "{shape:?} after {after}: {} {:?}",
                a.body, a.kind
            );
            assert!(
                a.body.to_string().contains("RateResponse"),
                "{shape:?} after {after}: {}",
                a.body
            );
            assert!(
                a.took < PROMPT,
                "{shape:?} after {after}: took {:?}",
                a.took
            );
            self.expected.add("ok");
        }
    }

    /// Both dialects get an error of this kind (`x-upsbridge-error`, the metrics outcome),
    /// HTTP status and UPS code, within `limit`.
    fn assert_refused(
        &mut self,
        account: usize,
        kinds: &[&str],
        status: u16,
        code: &str,
        limit: Duration,
    ) -> Vec<Duration> {
        let mut took = vec![];
        for shape in [Shape::Header, Shape::LegacyJson] {
            let a = send(&self.proxy.url, &self.accounts[account], shape);
            let kind = a.kind.clone().unwrap_or_default();
            assert!(
                kinds.contains(&kind.as_str()),
                "{shape:?}: x-upsbridge-error {kind:?}, wanted one of {kinds:?}; HTTP {} {}",
                a.status,
                a.body
            );
            assert_eq!(a.status, status, "{shape:?} {kind}: {}", a.body);
            let (got_code, severity) = dialect_error(shape, &a.body);
            assert_eq!(got_code, code, "{shape:?} {kind}: {}", a.body);
            if shape == Shape::LegacyJson {
                assert_eq!(severity, "Transient", "{}", a.body);
            }
            assert!(a.took < limit, "{shape:?} {kind}: took {:?}", a.took);
            self.expected.add(&kind);
            took.push(a.took);
        }
        took
    }

    fn faults(&self, f: Value) {
        self.sim.faults(f);
    }

    /// `/metrics` has exactly the expected count for every outcome, and nothing else.
    fn assert_metrics(&self) {
        let m = metrics(&self.proxy.admin);
        let mut got: BTreeMap<String, u64> = BTreeMap::new();
        for s in m.iter().filter(|s| s.name == "upsbridge_requests_total") {
            *got.entry(s.labels["outcome"].clone()).or_default() += s.value as u64;
        }
        got.retain(|_, v| *v > 0);
        assert_eq!(got, self.expected.0, "upsbridge_requests_total by outcome");
        // Each dialect carried half of the requests.
        let total: u64 = self.expected.0.values().sum();
        for dialect in ["header_json", "legacy_json"] {
            assert_eq!(
                sum(&m, "upsbridge_requests_total", &[("dialect", dialect)]) as u64,
                total / 2,
                "{dialect}"
            );
        }
    }
}

#[test]
fn slow_api_resets_and_5xx_give_dialect_errors_in_time_then_recover_without_restart() {
    let _heavy = heavy();
    let mut s = Scene::start();
    s.assert_healthy(0, "start");

    // 1. UPS slower than request_timeout_ms: 504 upstream_timeout, no sooner and not much later.
    s.faults(json!({"latency_ms": 4 * REQUEST_TIMEOUT.as_millis() as u64}));
    let took = s.assert_refused(
        0,
        &["upstream_timeout"],
        504,
        "20001",
        REQUEST_TIMEOUT + SLACK,
    );
    for t in took {
        assert!(
            t >= REQUEST_TIMEOUT - Duration::from_millis(50),
            "answered after {t:?}, before the configured timeout"
        );
    }
    // 2. Connections reset as UPS accepts them (the timed-out connections above are gone, so
    // the proxy must open new ones): 502 upstream_unreachable, well within the timeout.
    s.faults(json!({"latency_ms": 0, "reset_connections": true}));
    s.assert_refused(0, &["upstream_unreachable"], 502, "20001", REQUEST_TIMEOUT);
    // Cleared: the very next requests succeed, each on a fresh client connection.
    s.sim.clear_faults();
    s.assert_healthy(0, "slow API and resets");

    // 3. UPS answers 5xx: header style gets UPS's own answer untouched, legacy JSON a Fault
    // with UPS's status; both counted as ups_error.
    s.faults(json!({"api_status": 503}));
    for shape in [Shape::Header, Shape::LegacyJson] {
        let a = send(&s.proxy.url, &s.accounts[0], shape);
        assert_eq!(a.status, 503, "{shape:?}: {}", a.body);
        assert_eq!(a.kind, None, "{shape:?}: UPS's error, not upsbridge's");
        assert!(a.took < PROMPT, "{shape:?}: took {:?}", a.took);
        match shape {
            Shape::Header => assert!(
                a.body["response"]["errors"][0]["code"].is_string(),
                "{}",
                a.body
            ),
            Shape::LegacyJson => {
                let (_, severity) = dialect_error(shape, &a.body);
                assert_eq!(severity, "Transient", "{}", a.body);
            }
        }
        s.expected.add("ups_error");
    }
    s.sim.clear_faults();
    s.assert_healthy(0, "UPS 5xx");

    // 4. Token endpoint failing (an account with no token yet): 503 token_unavailable at once.
    s.faults(json!({"token_status": 503}));
    s.assert_refused(1, &["token_unavailable"], 503, "20001", PROMPT);
    s.sim.clear_faults();
    std::thread::sleep(BACKOFF + Duration::from_millis(100));
    s.assert_healthy(1, "token endpoint 503");

    // 5. Token endpoint slower than token_timeout_ms: 503 within the token timeout.
    s.faults(json!({"token_latency_ms": 4 * TOKEN_TIMEOUT.as_millis() as u64}));
    let took = s.assert_refused(
        2,
        &["token_timeout", "token_unreachable"],
        503,
        "20001",
        TOKEN_TIMEOUT + SLACK,
    );
    // The first request waited for the token request; the second may have been answered
    // from the failure backoff at once.
    assert!(
        took[0] >= TOKEN_TIMEOUT - Duration::from_millis(50),
        "answered after {:?}, before the token timeout",
        took[0]
    );
    s.sim.clear_faults();
    std::thread::sleep(BACKOFF + Duration::from_millis(100));
    s.assert_healthy(2, "slow token endpoint");

    // Every request above reached the metrics with its outcome; the earlier accounts still work.
    s.assert_healthy(0, "everything");
    s.assert_metrics();
    let m = metrics(&s.proxy.admin);
    assert!(
        sum(&m, "upsbridge_token_failures_total", &[]) >= 2.0,
        "token failures counted"
    );
}

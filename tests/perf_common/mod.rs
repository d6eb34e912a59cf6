//! Helpers for the load, fault, scale and soak tests (`tests/perf_*.rs`): many accounts,
//! many concurrent requests, Prometheus text, process memory. Builds on `tests/common`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{hash_password, TestAccount};

/// Tests that measure time or memory take this lock so they never overlap one another.
pub static HEAVY: Mutex<()> = Mutex::new(());

pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|p| p.into_inner())
}

/// A test account whose strings are made at run time (leaked: tests are short-lived).
pub fn account(i: usize, prefix: &str) -> TestAccount {
    let s = |v: String| -> &'static str { Box::leak(v.into_boxed_str()) };
    TestAccount {
        name: s(format!("{prefix}-{i}")),
        shipper: s(format!("{:06}", 100_000 + i)),
        access_key: s(format!(
            "{}KEY{i:06}",
            prefix.to_uppercase().replace('-', "")
        )),
        user: s(format!("{prefix}user{i}")),
        password: s(format!("{prefix}-pass-{i}-Zq")),
        client_id: s(format!("{prefix}-client-{i}")),
        client_secret: s(format!("{prefix}-secret-{i}-Wv9")),
        grant: "client_credentials",
    }
}

/// One map record's text, with a precomputed hash.
pub fn record_text(a: &TestAccount, hash: &str, secret_env: &str) -> String {
    format!(
        "\n[[account]]\nname = \"{}\"\nups_account_number = \"{}\"\naccess_license_number = \"{}\"\nuser_id = \"{}\"\npassword_hash = \"{hash}\"\nclient_id = \"{}\"\nclient_secret_env = \"{secret_env}\"\ngrant = \"{}\"\n",
        a.name, a.shipper, a.access_key, a.user, a.client_id, a.grant
    )
}

/// Hashes for these accounts, made once (argon2 is slow on purpose).
pub fn hashes(accounts: &[TestAccount]) -> Vec<String> {
    accounts.iter().map(|a| hash_password(a.password)).collect()
}

/// The rate request every load test sends (header style body; legacy JSON adds UPSSecurity).
pub fn rate_body() -> Value {
    json!({"RateRequest": {"Request": {"RequestOption": "Rate", "TransactionReference": {"CustomerContext": "perf"}},
        "Shipment": {"Shipper": {"ShipperNumber": "9Y9Y9Y", "Address": {"AddressLine": ["10 Elm Rd"], "City": "Dover", "StateProvinceCode": "DE", "PostalCode": "19901", "CountryCode": "US"}},
                     "ShipTo": {"Name": "Acme", "Address": {"AddressLine": ["5 Oak Ave"], "City": "Reno", "StateProvinceCode": "NV", "PostalCode": "89501", "CountryCode": "US"}},
                     "Service": {"Code": "02"},
                     "Package": {"PackagingType": {"Code": "02"}, "PackageWeight": {"UnitOfMeasurement": {"Code": "LBS"}, "Weight": "3"}}}}})
}

pub fn legacy_rate_body(a: &TestAccount) -> Value {
    let mut b = rate_body();
    b.as_object_mut().unwrap().insert(
        "UPSSecurity".into(),
        json!({"UsernameToken": {"Username": a.user, "Password": a.password},
               "ServiceAccessToken": {"AccessLicenseNumber": a.access_key}}),
    );
    b
}

/// Which legacy shape a generated request uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Header,
    LegacyJson,
}

/// What one request got.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub account: usize,
    pub shape: Shape,
    pub status: u16,
    pub error_kind: Option<String>,
    pub body: String,
    pub took: Duration,
    /// When the answer was complete.
    pub done: Instant,
}

impl Outcome {
    /// A UPS rate answer in the client's shape.
    pub fn is_rate_answer(&self) -> bool {
        self.status == 200 && self.body.contains("RateResponse") && self.body.contains("18.70")
    }
}

/// An async request builder for one legacy request.
pub fn legacy_request(
    http: &reqwest::Client,
    base: &str,
    a: &TestAccount,
    shape: Shape,
) -> reqwest::RequestBuilder {
    match shape {
        Shape::Header => http
            .post(format!("{base}/ship/v2409/rating/Rate"))
            .header("AccessLicenseNumber", a.access_key)
            .header("Username", a.user)
            .header("Password", a.password)
            .header("transId", "perf-1")
            .header("transactionSrc", "perf")
            .json(&rate_body()),
        Shape::LegacyJson => http
            .post(format!("{base}/rest/Rate"))
            .json(&legacy_rate_body(a)),
    }
}

pub async fn send(
    http: &reqwest::Client,
    base: &str,
    accounts: &[TestAccount],
    i: usize,
    shape: Shape,
) -> Outcome {
    let account = i % accounts.len();
    let started = Instant::now();
    let r = legacy_request(http, base, &accounts[account], shape)
        .send()
        .await;
    let (status, error_kind, body) = match r {
        Ok(r) => {
            let status = r.status().as_u16();
            let kind = r
                .headers()
                .get("x-upsbridge-error")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = r.text().await.unwrap_or_else(|e| format!("<body: {e}>"));
            (status, kind, body)
        }
        Err(e) => (0, None, format!("<request failed: {e}>")),
    };
    Outcome {
        account,
        shape,
        status,
        error_kind,
        body,
        took: started.elapsed(),
        done: Instant::now(),
    }
}

/// `n` requests all in flight together (each on its own connection), alternating shapes and
/// cycling through `accounts`. Every request is bounded by `timeout`.
pub fn storm(base: &str, accounts: &[TestAccount], n: usize, timeout: Duration) -> Vec<Outcome> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(n)
            .build()
            .unwrap();
        let gate = std::sync::Arc::new(tokio::sync::Barrier::new(n));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let http = http.clone();
            let base = base.to_string();
            let accounts = accounts.to_vec();
            let gate = gate.clone();
            tasks.spawn(async move {
                gate.wait().await;
                let shape = if i % 2 == 0 {
                    Shape::Header
                } else {
                    Shape::LegacyJson
                };
                (i, send(&http, &base, &accounts, i, shape).await)
            });
        }
        let mut out: Vec<(usize, Outcome)> = Vec::with_capacity(n);
        while let Some(r) = tasks.join_next().await {
            out.push(r.expect("request task"));
        }
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, o)| o).collect()
    })
}

/// Summarise failed outcomes for an assertion message.
pub fn failures(outcomes: &[Outcome]) -> String {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    let mut sample = None;
    for o in outcomes.iter().filter(|o| !o.is_rate_answer()) {
        *by.entry(format!(
            "{:?} {} {}",
            o.shape,
            o.status,
            o.error_kind.as_deref().unwrap_or("-")
        ))
        .or_default() += 1;
        sample.get_or_insert_with(|| o.body.chars().take(300).collect::<String>());
    }
    format!("{by:?}; first body: {sample:?}")
}

/// One Prometheus sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parse the Prometheus text format (the subset the prometheus crate writes: no timestamps,
/// label values with `\\`, `\"` and `\n` escapes). Panics on a line it cannot read.
pub fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => (&line[..i], &line[i..]),
            None => panic!("metric line without value: {line}"),
        };
        let mut labels = BTreeMap::new();
        let value_text = if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let end;
            loop {
                // label name
                let start = chars.peek().map(|(i, _)| *i).expect("label");
                let mut eq = None;
                for (i, c) in chars.by_ref() {
                    if c == '=' {
                        eq = Some(i);
                        break;
                    }
                }
                let eq = eq.unwrap_or_else(|| panic!("label without '=': {line}"));
                let lname = body[start..eq].trim_start_matches(',').trim().to_string();
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c)) => value.push(c),
                            None => panic!("dangling escape: {line}"),
                        },
                        Some((_, '"')) => break,
                        Some((_, c)) => value.push(c),
                        None => panic!("unterminated label value: {line}"),
                    }
                }
                labels.insert(lname, value);
                match chars.next() {
                    Some((_, ',')) if chars.peek().map(|(_, c)| *c) == Some('}') => {
                        end = chars.next().unwrap().0;
                        break;
                    }
                    Some((_, ',')) => continue,
                    Some((i, '}')) => {
                        end = i;
                        break;
                    }
                    other => panic!("unexpected {other:?} in labels: {line}"),
                }
            }
            &body[end + 1..]
        } else {
            rest
        };
        let value: f64 = value_text
            .split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("no value: {line}"))
            .parse()
            .unwrap_or_else(|e| panic!("value of {line}: {e}"));
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    out
}

/// Fetch and parse `/metrics` from the proxy's admin listener.
pub fn metrics(admin: &str) -> Vec<Sample> {
    let text = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(format!("{admin}/metrics"))
        .basic_auth("admin", Some(crate::common::ADMIN_PASSWORD))
        .send()
        .expect("GET /metrics")
        .text()
        .unwrap();
    parse_prometheus(&text)
}

/// Sum of the samples called `name` whose labels include every `(key, value)` of `want`.
pub fn sum(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// `upsbridge_requests_total` for one outcome (all dialects and services).
pub fn requests_with_outcome(samples: &[Sample], outcome: &str) -> u64 {
    sum(samples, "upsbridge_requests_total", &[("outcome", outcome)]) as u64
}

/// CPU time a process has used so far, in clock ticks (utime + stime; 100 a second).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Resident and peak resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Poll `f` until it returns `Some`, at most `limit`.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Write a map of these accounts with precomputed hashes; `extra` is appended (e.g. a
/// comment that changes on every rewrite).
pub fn write_map_with(path: &Path, accounts: &[TestAccount], hashes: &[String], extra: &str) {
    let mut text = String::from("# generated by a perf test\n");
    for (a, h) in accounts.iter().zip(hashes) {
        text.push_str(&record_text(a, h, &crate::common::secret_env(a)));
    }
    text.push_str(extra);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_is_parsed_with_labels_and_escapes() {
        let text = "# HELP x y\n# TYPE x counter\nupsbridge_requests_total{dialect=\"header_json\",outcome=\"ok\",service=\"rate\"} 12\nplain 3.5\nodd{a=\"q\\\"uote,}\",b=\"\\\\\"} 1e3\n";
        let s = parse_prometheus(text);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].labels["outcome"], "ok");
        assert_eq!(s[0].value, 12.0);
        assert_eq!(s[1].name, "plain");
        assert_eq!(s[2].labels["a"], "q\"uote,}");
        assert_eq!(s[2].labels["b"], "\\");
        assert_eq!(requests_with_outcome(&s, "ok"), 12);
    }
}

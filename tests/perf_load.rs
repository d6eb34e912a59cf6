//! Load tests against the real binaries (simulator + proxy on loopback): a token storm across
//! expiry boundaries. The scale and soak tests live in `perf_scale.rs` and `perf_soak.rs`.

mod common;
mod perf_common;

use std::time::{Duration, Instant};

use common::*;
use perf_common::*;
use serde_json::Value;

const STORM: usize = 1_000;

/// Live access tokens the simulator has issued (expired ones are not listed).
fn live_tokens(sim: &Sim) -> usize {
    reqwest::blocking::Client::new()
        .get(format!("{}/__sim/tokens", sim.url))
        .send()
        .unwrap()
        .json::<Vec<Value>>()
        .unwrap()
        .len()
}

fn assert_all_answered(phase: &str, outcomes: &[Outcome]) {
    assert_eq!(outcomes.len(), STORM, "{phase}");
    let ok = outcomes.iter().filter(|o| o.is_rate_answer()).count();
    assert_eq!(ok, STORM, "{phase}: failures {}", failures(outcomes));
    let slowest = outcomes.iter().map(|o| o.took).max().unwrap();
    eprintln!("{phase}: {STORM} answered, slowest {slowest:?}");
}

/// Token requests per account seen by the simulator, once background renewals have landed.
fn settle_token_requests(sim: &Sim, want: u64) -> u64 {
    wait_for(Duration::from_secs(5), || {
        let n = sim.token_requests("client_credentials");
        (n >= want).then_some(n)
    })
    .unwrap_or_else(|| sim.token_requests("client_credentials"))
}

/// The simulator's delay before it answers a token request, so that a whole storm piles up
/// behind one request.
const TOKEN_LATENCY: Duration = Duration::from_millis(1000);

/// One simulator + proxy pair with four accounts.
struct Pair {
    accounts: Vec<TestAccount>,
    sim: Sim,
    proxy: Proxy,
    /// Token lifetime at the simulator and renewal margin at the proxy.
    ttl: Duration,
    margin: Duration,
    _dir: tempfile::TempDir,
}

impl Pair {
    fn start(prefix: &str, ttl: Duration, margin: Duration) -> Pair {
        let accounts: Vec<TestAccount> = (0..4).map(|i| account(i, prefix)).collect();
        let refs: Vec<&TestAccount> = accounts.iter().collect();
        let dir = tempdir();
        let sim = Sim::start(dir.path(), &refs, ttl.as_secs());
        let proxy = Proxy::start(
            dir.path(),
            &sim,
            &refs,
            &format!(
                "request_timeout_ms = 20000\ntoken_timeout_ms = 5000\nconnect_timeout_ms = 2000\ntoken_refresh_margin_secs = {}\n",
                margin.as_secs()
            ),
        );
        sim.faults(serde_json::json!({"token_latency_ms": TOKEN_LATENCY.as_millis() as u64}));
        Pair {
            accounts,
            sim,
            proxy,
            ttl,
            margin,
            _dir: dir,
        }
    }

    fn storm(&self) -> Vec<Outcome> {
        storm(
            &self.proxy.url,
            &self.accounts,
            STORM,
            Duration::from_secs(30),
        )
    }

    fn token_requests(&self) -> u64 {
        self.sim.token_requests("client_credentials")
    }

    /// No renewal can come due during a storm that started at `from` (with no usable token,
    /// or inside the margin) and ended with its last answer: the token it made is fresh for
    /// TTL − margin after it arrived, at least TOKEN_LATENCY after `from`.
    fn assert_within_fresh_period(&self, phase: &str, from: Instant, outcomes: &[Outcome]) {
        let last = outcomes.iter().map(|o| o.done).max().unwrap();
        let fresh_until = from + TOKEN_LATENCY + (self.ttl - self.margin);
        assert!(
            last < fresh_until,
            "{phase}: the storm took {:?}, longer than a token stays fresh ({:?}); the machine \
             is too busy for this test to tell renewals from duplicates",
            last - from,
            fresh_until - from
        );
    }

    /// The proxy's metrics: every storm request answered from UPS, the token count as the
    /// simulator saw it, and half of the requests in each dialect.
    fn assert_metrics(&self, requests: u64, tokens: u64) {
        let m = metrics(&self.proxy.admin);
        assert_eq!(
            sum(&m, "upsbridge_token_requests_total", &[]) as u64,
            tokens
        );
        assert_eq!(sum(&m, "upsbridge_token_failures_total", &[]) as u64, 0);
        assert_eq!(requests_with_outcome(&m, "ok"), requests);
        for dialect in ["header_json", "legacy_json"] {
            assert_eq!(
                sum(&m, "upsbridge_requests_total", &[("dialect", dialect)]) as u64,
                requests / 2,
                "{dialect}"
            );
        }
        let stats = self.sim.stats();
        assert_eq!(stats["api_requests"], requests, "{stats}");
    }
}

/// 1,000 concurrent requests for four accounts, in the three situations where a token must be
/// fetched: none yet (cold), still usable but inside the renewal margin (the storm runs while
/// the renewal is in flight), and expired (a second simulator + proxy pair whose tokens were
/// left to die, so the storm does not wait on the first pair's clock). Each time exactly one
/// token request per account, and every client gets its rate answer.
#[test]
fn a_thousand_concurrent_requests_across_expiry_cause_one_token_request_per_account_per_renewal() {
    let _heavy = heavy();
    // Renewal pair: tokens live 30 s and are renewed from 15 s on. (A storm of debug builds
    // on a busy 2-core machine takes up to ~12 s; a token must stay fresh longer than that.)
    let a = Pair::start("storm", Duration::from_secs(30), Duration::from_secs(15));
    // Expiry pair: tokens live 16 s, renewed only in the last second (nobody asks then).
    let b = Pair::start("expiry", Duration::from_secs(16), Duration::from_secs(1));
    let n_acc = a.accounts.len() as u64;

    // 1. Cold: nobody has a token.
    let started = Instant::now();
    let cold = a.storm();
    assert_all_answered("cold", &cold);
    a.assert_within_fresh_period("cold", started, &cold);
    assert_eq!(
        a.token_requests(),
        n_acc,
        "cold storm: one token request per account"
    );

    // The expiry pair gets its tokens now (one request per account) and is then left alone.
    let warm = storm(
        &b.proxy.url,
        &b.accounts,
        b.accounts.len(),
        Duration::from_secs(30),
    );
    assert!(
        warm.iter().all(Outcome::is_rate_answer),
        "{}",
        failures(&warm)
    );
    assert_eq!(b.token_requests(), n_acc);

    // 2. Inside the margin. Each account's token arrived before its first answer, so it is
    // due for renewal TTL − margin after that; the simulator expires it TTL after `started`
    // plus the token latency at the earliest.
    let first_answers = (0..a.accounts.len())
        .map(|i| {
            cold.iter()
                .filter(|o| o.account == i)
                .map(|o| o.done)
                .min()
                .unwrap()
        })
        .max()
        .unwrap();
    let margin_from = first_answers + (a.ttl - a.margin) + Duration::from_millis(200);
    let expiry = started + TOKEN_LATENCY + a.ttl;
    assert!(
        margin_from + TOKEN_LATENCY + Duration::from_millis(500) < expiry,
        "the cold storm's first answers took {:?}: no room left inside the renewal margin",
        first_answers - started
    );
    std::thread::sleep(margin_from.saturating_duration_since(Instant::now()));
    let margin_started = Instant::now();
    let margin = a.storm();
    assert_all_answered("inside margin", &margin);
    a.assert_within_fresh_period("inside margin", margin_started, &margin);
    assert_eq!(
        settle_token_requests(&a.sim, 2 * n_acc),
        2 * n_acc,
        "storm inside the margin: one renewal per account"
    );
    a.assert_metrics(2 * STORM as u64, 2 * n_acc);

    // 3. Expired: wait until the expiry pair's tokens are dead at its simulator. The proxy
    // counts a token's life from when the answer arrived, a little after the simulator did:
    // step past that too.
    let dead = wait_for(b.ttl + Duration::from_secs(5), || {
        (live_tokens(&b.sim) == 0).then_some(())
    });
    assert!(dead.is_some(), "tokens still live after {:?}", b.ttl);
    std::thread::sleep(Duration::from_millis(300));
    let expired_started = Instant::now();
    let expired = b.storm();
    assert_all_answered("after expiry", &expired);
    b.assert_within_fresh_period("after expiry", expired_started, &expired);
    assert_eq!(
        settle_token_requests(&b.sim, 2 * n_acc),
        2 * n_acc,
        "storm after expiry: one token request per account"
    );
    b.assert_metrics(STORM as u64 + n_acc, 2 * n_acc);

    eprintln!(
        "storm: cold {:?}, inside margin {:?}, after expiry {:?}; whole test {:?}",
        cold.iter().map(|o| o.done).max().unwrap() - started,
        margin.iter().map(|o| o.done).max().unwrap() - margin_started,
        expired.iter().map(|o| o.done).max().unwrap() - expired_started,
        started.elapsed()
    );
}

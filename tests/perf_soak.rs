//! Soak: a steady rate of legacy requests against the proxy while tokens expire and are
//! renewed and the account map is rewritten, sampling the proxy's resident memory.
//!
//! `cargo test` runs a 20-second form (tokens live 8 s, map rewritten every 5 s). The full
//! run is ten minutes with tokens of 30 s and the map rewritten every minute:
//!
//!     UPSBRIDGE_SOAK_SECS=600 cargo test --release --test perf_soak -- --nocapture
//!
//! The map rewrite keeps the three accounts under load and adds or removes a fourth, so every
//! rewrite is a real reload (counted in `upsbridge_map_reloads_total`).

mod common;
mod perf_common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use perf_common::*;

/// Requests per second, spread over `WORKERS` client threads with keep-alive connections.
const RATE: u64 = 40;
const WORKERS: u64 = 4;
/// RSS sampling period.
const SAMPLE_EVERY: Duration = Duration::from_secs(2);

struct Plan {
    secs: u64,
    ttl: u64,
    margin: u64,
    rewrite_every: Duration,
    /// Allowed growth of resident memory from the first third of the run to the last, KiB.
    rss_growth_kib: u64,
}

impl Plan {
    fn from_env() -> Plan {
        let secs = std::env::var("UPSBRIDGE_SOAK_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20u64)
            .clamp(10, 24 * 3600);
        if secs >= 120 {
            Plan {
                secs,
                ttl: 30,
                margin: 10,
                rewrite_every: Duration::from_secs(60),
                rss_growth_kib: 8 * 1024,
            }
        } else {
            Plan {
                secs,
                ttl: 8,
                margin: 3,
                rewrite_every: Duration::from_secs(5),
                rss_growth_kib: 6 * 1024,
            }
        }
    }
}

#[test]
fn steady_load_with_token_renewals_and_map_rewrites_has_no_error_and_bounded_memory() {
    let _heavy = heavy();
    let plan = Plan::from_env();
    let accounts: Vec<TestAccount> = (0..4).map(|i| account(i, "soak")).collect();
    let hashes = hashes(&accounts);
    let loaded = &accounts[..3];
    let dir = tempdir();
    let refs: Vec<&TestAccount> = accounts.iter().collect();
    let sim = Sim::start(dir.path(), &refs, plan.ttl);
    let map = dir.path().join("accounts.toml");
    write_map_with(&map, loaded, &hashes[..3], "");
    let proxy = Proxy::start_with_map(
        dir.path(),
        &sim,
        &refs,
        &format!(
            "{FAST_TIMEOUTS}token_refresh_margin_secs = {}\n",
            plan.margin
        ),
    );
    let pid = proxy.proc.child.id();
    let run_for = Duration::from_secs(plan.secs);
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let rewrites = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let samples = Arc::new(Mutex::new(Vec::<(Duration, u64)>::new()));

    std::thread::scope(|s| {
        // Memory sampler.
        {
            let (stop, samples) = (stop.clone(), samples.clone());
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    samples
                        .lock()
                        .unwrap()
                        .push((started.elapsed(), rss_kib(pid).0));
                    std::thread::sleep(SAMPLE_EVERY);
                }
            });
        }
        // Map rewriter: the three loaded accounts always; the fourth every other time.
        {
            let (stop, map, accounts, hashes) = (stop.clone(), map.clone(), &accounts, &hashes);
            let rewrites = rewrites.clone();
            s.spawn(move || {
                let mut n = 0u64;
                let mut next = started + plan.rewrite_every;
                while !stop.load(Ordering::Relaxed) {
                    if Instant::now() >= next {
                        n += 1;
                        let k = if n % 2 == 1 { 4 } else { 3 };
                        write_map_with(
                            &map,
                            &accounts[..k],
                            &hashes[..k],
                            &format!("# rewrite {n}\n"),
                        );
                        rewrites.store(n, Ordering::Relaxed);
                        next += plan.rewrite_every;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        // Load: WORKERS threads, each at RATE / WORKERS per second on its own schedule.
        for w in 0..WORKERS {
            let (ok, errors, url) = (ok.clone(), errors.clone(), proxy.url.clone());
            s.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let every = Duration::from_micros(1_000_000 * WORKERS / RATE);
                let mut i = w as usize;
                let mut next = started + every * w as u32 / WORKERS as u32;
                while started.elapsed() < run_for {
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                    next += every;
                    let shape = if i.is_multiple_of(2) {
                        Shape::Header
                    } else {
                        Shape::LegacyJson
                    };
                    let o = rt.block_on(send(&http, &url, loaded, i, shape));
                    if o.is_rate_answer() {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        errors.lock().unwrap().push(format!(
                            "at {:?}: {:?} {} {:?} {}",
                            started.elapsed(),
                            o.shape,
                            o.status,
                            o.error_kind,
                            o.body.chars().take(200).collect::<String>()
                        ));
                    }
                    i += WORKERS as usize;
                }
            });
        }
        // The workers end on their own after `run_for`; then stop the helpers.
        std::thread::sleep(run_for + Duration::from_millis(200));
        let limit = Instant::now() + Duration::from_secs(15);
        while Instant::now() < limit {
            let sent = ok.load(Ordering::Relaxed) + errors.lock().unwrap().len() as u64;
            if sent >= RATE * plan.secs * 9 / 10 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, Ordering::Relaxed);
    });

    let ok = ok.load(Ordering::Relaxed);
    let errors = errors.lock().unwrap();
    let samples = samples.lock().unwrap();
    let m = metrics(&proxy.admin);
    let tokens = sim.token_requests("client_credentials");
    let reloads = sum(&m, "upsbridge_map_reloads_total", &[]) as u64;
    let rewrites = rewrites.load(Ordering::Relaxed);
    let kib: Vec<u64> = samples.iter().map(|(_, k)| *k).collect();
    eprintln!(
        "soak {}s: {ok} ok, {} errors, {tokens} token requests, {reloads} map reloads; RSS KiB every {:?}: {kib:?}",
        plan.secs,
        errors.len(),
        SAMPLE_EVERY
    );

    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    // Every rewrite was applied once (the last one may still sit in the watcher's debounce),
    // and nothing else reloaded the map: reading the file must not trigger another reload.
    assert!(
        rewrites >= 2 && reloads + 1 >= rewrites && reloads <= rewrites,
        "{reloads} reloads for {rewrites} rewrites of the map"
    );
    // The rate was held (within 10 %).
    let planned = RATE * plan.secs;
    assert!(
        ok >= planned * 9 / 10 && ok <= planned + 2 * WORKERS,
        "{ok} requests answered, {planned} planned"
    );
    assert_eq!(requests_with_outcome(&m, "ok"), ok);
    // Tokens were renewed on schedule: one per account at start and one per renewal
    // (every ttl − margin seconds under steady load), never a burst.
    let per_account = plan.secs / (plan.ttl - plan.margin);
    let (low, high) = (3 * per_account.max(1), 3 * (per_account + 2));
    assert!(
        (low..=high).contains(&tokens),
        "{tokens} token requests for 3 accounts over {}s with {}s tokens renewed {}s early (expected {low}..={high})",
        plan.secs,
        plan.ttl,
        plan.margin
    );
    // Memory: the last third of the run against the first third (past start-up).
    assert!(kib.len() >= 6, "only {} RSS samples", kib.len());
    let third = kib.len() / 3;
    let early = *kib[1..third.max(2)].iter().max().unwrap();
    let late = *kib[kib.len() - third..].iter().max().unwrap();
    assert!(
        late <= early + plan.rss_growth_kib,
        "RSS grew from {early} KiB to {late} KiB (bound {} KiB): {kib:?}",
        plan.rss_growth_kib
    );
}

//! A generated account map of 10,000 accounts (design §8: resident memory under 50 MB at
//! 10,000 accounts): time from start to `readyz`, memory once ready and after traffic, and
//! accounts at the start, middle and end of the map all reachable. The 100,000 run is in
//! `benches/scale.sh` (release build) and `benches/accounts.rs` (lookup cost).

mod common;
mod perf_common;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use common::*;
use perf_common::*;

/// Every generated account reads its client secret from this variable (see `shared()`).
const SHARED_SECRET: &str = "scale-shared-secret-Hq2";
const PASSWORD: &str = "scale-pass-Rr5";

/// A stand-in account whose only job is to put the shared secret into the proxy's
/// environment (`UPSBRIDGE_TEST_SECRET_SHARED`).
fn shared() -> TestAccount {
    TestAccount {
        name: "shared",
        shipper: "",
        access_key: "",
        user: "",
        password: "",
        client_id: "",
        client_secret: SHARED_SECRET,
        grant: "client_credentials",
    }
}

fn generated(i: usize) -> TestAccount {
    let mut a = account(i, "scale");
    a.password = PASSWORD;
    a.client_secret = SHARED_SECRET;
    a
}

/// A map of `n` accounts sharing one argon2 hash (each unique by access key + user id).
fn write_generated_map(path: &std::path::Path, n: usize, hash: &str) {
    let env = secret_env(&shared());
    let mut text = String::with_capacity(n * 320);
    text.push_str("# generated: scale test\n");
    for i in 0..n {
        let a = generated(i);
        write!(text, "{}", record_text(&a, hash, &env)).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

struct Measured {
    ready_after: Duration,
    rss_ready_kib: u64,
    rss_after_kib: u64,
    hwm_kib: u64,
}

fn measure(n: usize, hash: &str) -> Measured {
    let dir = tempdir();
    // The simulator knows the apps of the accounts this test calls.
    let called: Vec<usize> = vec![0, n / 2, n - 1];
    let callers: Vec<TestAccount> = called.iter().map(|&i| generated(i)).collect();
    let refs: Vec<&TestAccount> = callers.iter().collect();
    let sim = Sim::start(dir.path(), &refs, 14399);
    write_generated_map(&dir.path().join("accounts.toml"), n, hash);
    let started = Instant::now();
    let proxy = Proxy::start_with_map(dir.path(), &sim, &[&shared()], FAST_TIMEOUTS);
    let ready_after = started.elapsed();
    let pid = proxy.proc.child.id();
    let (rss_ready_kib, _) = rss_kib(pid);
    let m = metrics(&proxy.admin);
    assert_eq!(sum(&m, "upsbridge_accounts", &[]) as usize, n);
    let http = reqwest::blocking::Client::new();
    for a in &callers {
        let r = header_request(
            &http,
            reqwest::Method::POST,
            &format!("{}/ship/v2409/rating/Rate", proxy.url),
            a,
            Some(&rate_body()),
        );
        assert_eq!(r.status(), 200, "{} of {n}", a.name);
    }
    // A near miss: the right access key with another account's user id.
    let mut wrong = generated(n - 1);
    wrong.user = generated(0).user;
    let r = header_request(
        &http,
        reqwest::Method::POST,
        &format!("{}/ship/v2409/rating/Rate", proxy.url),
        &wrong,
        Some(&rate_body()),
    );
    assert_eq!(r.status(), 401);
    let (rss_after_kib, hwm_kib) = rss_kib(pid);
    eprintln!(
        "{n} accounts: ready after {ready_after:?}, RSS {} KiB when ready, {} KiB after traffic, peak {} KiB",
        rss_ready_kib, rss_after_kib, hwm_kib
    );
    Measured {
        ready_after,
        rss_ready_kib,
        rss_after_kib,
        hwm_kib,
    }
}

#[test]
fn ten_thousand_accounts_load_quickly_in_a_few_kib_each() {
    let _heavy = heavy();
    let hash = hash_password(PASSWORD);
    let small = measure(10, &hash);
    let large = measure(10_000, &hash);
    // What the accounts themselves cost: 10,000 over 10, once ready. Release measures
    // 2.5 KiB per account (docs/performance.md); the debug build the same within noise.
    // Design §8 wants < 50 MB at 10,000 accounts: release starts at ~17 MB, so 3 KiB per
    // account (29 MB) keeps the whole process inside it. The debug binary starts ~15 MB
    // heavier, so the absolute figure is checked on release by benches/scale.sh.
    let per_account = (large.rss_ready_kib.saturating_sub(small.rss_ready_kib)) as f64 / 9_990.0;
    assert!(
        per_account < 3.0,
        "{per_account:.2} KiB per account in memory"
    );
    // argon2 needs a 19 MiB work area per verification; it must go back to the system
    // afterwards, not stay resident on the pool thread that ran it (it once added 40 MB).
    let argon2_residue = large.rss_after_kib.saturating_sub(large.rss_ready_kib);
    eprintln!(
        "argon2 verification of three accounts left {} KiB (10) / {argon2_residue} KiB (10,000); peak {} KiB",
        small.rss_after_kib.saturating_sub(small.rss_ready_kib),
        large.hwm_kib
    );
    assert!(
        argon2_residue < 6 * 1024,
        "three argon2 verifications left {argon2_residue} KiB resident"
    );
    // Debug build on a shared 2-core machine; release loads 10,000 in about half a second.
    assert!(
        large.ready_after < Duration::from_secs(20),
        "10,000 accounts ready after {:?}",
        large.ready_after
    );
    assert!(small.ready_after < Duration::from_secs(10));
}

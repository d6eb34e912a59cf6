//! Several `upsbridge serve` instances sharing one PostgreSQL store (a real server from
//! Debian's packages, tests/common/pg.rs), one simulator behind them: what must hold across
//! instances. Token renewal happens once per account in the whole cluster; a shipment
//! confirmed on one instance is accepted on another, once; instances with different map
//! files do not delete each other's accounts; PostgreSQL restarting under traffic costs
//! the requests that have a cached token nothing.

mod common;
mod perf_common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pg::Postgres;
use common::*;
use perf_common::*;

/// `[store] timeout_ms` of every instance.
const STORE_TIMEOUT: Duration = Duration::from_millis(3000);

/// The `[store]` section of an instance on `pg`. The sealing key is one file for all
/// instances (ops copy it to every host, as docs/ha.md says).
fn pg_store(pg: &Postgres, key_file: &Path, instance: &str) -> String {
    format!(
        "[store]\npath = \"store\"\nkey_file = \"{}\"\nbackend = \"postgres\"\nurl = \"{}\"\npassword_file = \"{}\"\ntimeout_ms = {}\ninstance = \"{instance}\"\n",
        key_file.display(),
        pg.url(),
        pg.password_file().display(),
        STORE_TIMEOUT.as_millis()
    )
}

/// An instance's config: the test harness's, with its store on PostgreSQL.
fn instance_config(sim: &Sim, pg: &Postgres, key: &Path, name: &str, ups_extra: &str) -> String {
    let config = Proxy::config_text(&sim.url, ups_extra);
    assert!(config.contains("[store]\npath = \"store\"\n"));
    config.replace("[store]\npath = \"store\"\n", &pg_store(pg, key, name))
}

struct Cluster {
    sim: Sim,
    a: Proxy,
    b: Proxy,
    pg: Postgres,
    _dirs: [tempfile::TempDir; 3],
}

impl Cluster {
    /// The simulator, then instance `a` (which makes the key), then `b` with the same key.
    fn start(accounts: &[&TestAccount], token_ttl: Duration, ups_extra: &str) -> Cluster {
        let pg = Postgres::start();
        let (sim_dir, dir_a, dir_b) = (tempdir(), tempdir(), tempdir());
        let sim = Sim::start(sim_dir.path(), accounts, token_ttl.as_secs());
        let key = dir_a.path().join("upsbridge.key");
        let mut proxies = ["a", "b"].map(|name| {
            let dir = if name == "a" { &dir_a } else { &dir_b };
            write_map(&dir.path().join("accounts.toml"), accounts);
            let config = instance_config(&sim, &pg, &key, name, ups_extra);
            Some(Proxy::start_with_config(dir.path(), accounts, &config))
        });
        Cluster {
            sim,
            a: proxies[0].take().unwrap(),
            b: proxies[1].take().unwrap(),
            pg,
            _dirs: [sim_dir, dir_a, dir_b],
        }
    }
}

/// `n` concurrent rate requests, half to each instance, all answered.
fn storm_both(c: &Cluster, accounts: &[TestAccount], n: usize, phase: &str) -> Vec<Outcome> {
    let (a, b) = (c.a.url.clone(), c.b.url.clone());
    let (accounts_a, accounts_b) = (accounts.to_vec(), accounts.to_vec());
    let on_a = std::thread::spawn(move || storm(&a, &accounts_a, n / 2, Duration::from_secs(30)));
    let on_b = storm(&b, &accounts_b, n - n / 2, Duration::from_secs(30));
    let mut all = on_a.join().unwrap();
    all.extend(on_b);
    let ok = all.iter().filter(|o| o.is_rate_answer()).count();
    assert_eq!(ok, n, "{phase}: failures {}", failures(&all));
    all
}

/// 1,000 concurrent requests spread over two instances, cold and then inside the renewal
/// margin: each time exactly one token request per account reaches UPS from the whole
/// cluster (the instance holding the account's lease asks; the other waits and takes the
/// stored token), and every client gets its rate answer.
#[test]
fn a_storm_over_two_instances_renews_each_token_once_in_the_cluster() {
    let _heavy = heavy();
    let accounts: Vec<TestAccount> = (0..4).map(|i| account(i, "cluster")).collect();
    let refs: Vec<&TestAccount> = accounts.iter().collect();
    let (ttl, margin) = (Duration::from_secs(30), Duration::from_secs(15));
    let c = Cluster::start(
        &refs,
        ttl,
        &format!(
            "request_timeout_ms = 20000\ntoken_timeout_ms = 5000\nconnect_timeout_ms = 2000\ntoken_refresh_margin_secs = {}\n",
            margin.as_secs()
        ),
    );
    // A slow token endpoint, so that both instances' requests pile up behind one renewal.
    c.sim.faults(serde_json::json!({"token_latency_ms": 1000}));
    let n_acc = accounts.len() as u64;

    let started = Instant::now();
    let cold = storm_both(&c, &accounts, 1_000, "cold");
    assert_eq!(
        c.sim.token_requests("client_credentials"),
        n_acc,
        "cold: one token request per account from both instances together"
    );
    let first_answer = cold.iter().map(|o| o.done).min().unwrap();

    // Inside the renewal margin: both instances want a new token; one asks UPS.
    let margin_from = first_answer.max(started) + (ttl - margin) + Duration::from_millis(500);
    std::thread::sleep(margin_from.saturating_duration_since(Instant::now()));
    storm_both(&c, &accounts, 1_000, "inside the margin");
    let renewed = wait_for(Duration::from_secs(8), || {
        let n = c.sim.token_requests("client_credentials");
        (n >= 2 * n_acc).then_some(n)
    })
    .unwrap_or_else(|| c.sim.token_requests("client_credentials"));
    // Give a duplicate the time to show up before counting.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        (renewed, c.sim.token_requests("client_credentials")),
        (2 * n_acc, 2 * n_acc),
        "inside the margin: one renewal per account in the cluster"
    );
    let asked: f64 = [&c.a, &c.b]
        .iter()
        .map(|p| sum(&metrics(&p.admin), "upsbridge_token_requests_total", &[]))
        .sum();
    assert_eq!(asked as u64, 2 * n_acc, "the instances' own counts agree");
    for p in [&c.a, &c.b] {
        assert_eq!(
            sum(&metrics(&p.admin), "upsbridge_token_failures_total", &[]) as u64,
            0
        );
    }
}

/// The same across an expiry: tokens left to die with no traffic, then 1,000 concurrent
/// requests over both instances: one new token per account in the whole cluster.
#[test]
fn a_storm_over_two_instances_after_expiry_gets_one_token_per_account() {
    let _heavy = heavy();
    let accounts: Vec<TestAccount> = (0..4).map(|i| account(i, "expiry")).collect();
    let refs: Vec<&TestAccount> = accounts.iter().collect();
    // 8 s tokens, renewed only in their last second (nobody asks then).
    let ttl = Duration::from_secs(8);
    let c = Cluster::start(
        &refs,
        ttl,
        "request_timeout_ms = 20000\ntoken_timeout_ms = 5000\nconnect_timeout_ms = 2000\ntoken_refresh_margin_secs = 1\n",
    );
    c.sim.faults(serde_json::json!({"token_latency_ms": 1000}));
    let n_acc = accounts.len() as u64;
    // Warm: each instance answers each account once; the second takes the first's token.
    storm_both(&c, &accounts, 2 * accounts.len(), "warm");
    assert_eq!(c.sim.token_requests("client_credentials"), n_acc);
    let warmed = Instant::now();

    std::thread::sleep(
        (warmed + ttl + Duration::from_millis(500)).saturating_duration_since(Instant::now()),
    );
    storm_both(&c, &accounts, 1_000, "after expiry");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        c.sim.token_requests("client_credentials"),
        2 * n_acc,
        "after expiry: one token request per account from both instances together"
    );
}

/// ShipConfirm answered by one instance, ShipAccept by the other: one shipment. The same
/// accept sent again to the first instance gets the first accept's answer (same tracking
/// number, same label), and nothing more is shipped.
#[test]
fn a_shipment_confirmed_on_one_instance_is_accepted_once_on_another() {
    let c = Cluster::start(&[&EAST], Duration::from_secs(14399), FAST_TIMEOUTS);
    let confirmed = old_xml(&c.a, "ShipConfirm", confirm(&EAST));
    let digest = xml_text(&confirmed, "ShipmentDigest").expect("a ShipmentDigest");
    assert_eq!(ships(&c.sim), 0, "ShipConfirm ships nothing");

    let accepted = old_xml(&c.b, "ShipAccept", accept(&EAST, &digest));
    let number = xml_text(&accepted, "ShipmentResults/ShipmentIdentificationNumber")
        .expect("a tracking number");
    assert_eq!(ships(&c.sim), 1);

    let again = old_xml(&c.a, "ShipAccept", accept(&EAST, &digest));
    assert_eq!(
        xml_text(&again, "ShipmentResults/ShipmentIdentificationNumber").as_deref(),
        Some(number.as_str()),
        "the retry on the other instance gets the first accept's shipment"
    );
    assert_eq!(ships(&c.sim), 1, "a retried accept never ships twice");
    assert!(c.a.log_text().contains("ShipAccept repeated"));
}

/// A client gives up on one instance while UPS is still shipping, and retries on the other:
/// the retry waits for the call in flight (marked in the store), gets its kept answer (the
/// same label), and UPS ships once.
#[test]
fn a_shipment_retried_on_another_instance_while_the_first_call_runs_ships_once() {
    let c = Cluster::start(
        &[&EAST],
        Duration::from_secs(14399),
        "request_timeout_ms = 10000\n",
    );
    let body = ship_json(&EAST);
    c.sim.faults(serde_json::json!({"latency_ms": 3000}));
    let impatient = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let first = impatient
        .post(format!("{}/rest/Ship", c.a.direct_url))
        .json(&body)
        .send();
    assert!(first.is_err(), "the first attempt timed out at the client");
    let retry = c.b.post_json("/rest/Ship", &body);
    assert_eq!(retry.status(), 200);
    let text = retry.text().unwrap();
    assert!(text.contains("GraphicImage"), "{text}");
    assert_eq!(ships(&c.sim), 1, "one shipment at UPS");
    assert!(c.b.log_text().contains("in flight at another instance"));
}

/// Two instances whose map files differ: each imports its own, neither removes the other's
/// account (nor its tokens); an account goes only when no instance's map lists it.
#[test]
fn instances_with_different_maps_keep_each_others_accounts() {
    let c = Cluster::start(&[&EAST, &WEST], Duration::from_secs(14399), FAST_TIMEOUTS);
    // Both accounts get their tokens (stored in PostgreSQL).
    for (proxy, a) in [(&c.a, &EAST), (&c.b, &WEST)] {
        let (status, _, text) = post_raw(
            &proxy.http,
            &format!("{}/ups.app/xml/Rate", proxy.url),
            format!("{}{}", access(a), RATE),
            None,
        );
        assert_eq!(status, 200, "{text}");
        assert_old_xml_success(&text);
    }
    let tokens_before = c.sim.token_requests("client_credentials");
    assert_eq!(tokens_before, 2);

    // b's map loses EAST. a still has it: EAST keeps its tokens and works on both.
    write_map(&c.b.dir.join("accounts.toml"), &[&WEST]);
    assert!(
        wait_for(Duration::from_secs(10), || c
            .b
            .log_text()
            .contains("account map reloaded")
            .then_some(()))
        .is_some(),
        "b reloads its map"
    );
    let (status, _, text) = post_raw(
        &c.a.http,
        &format!("{}/ups.app/xml/Rate", c.a.url),
        format!("{}{}", access(&EAST), RATE),
        None,
    );
    assert_eq!(status, 200, "{text}");
    assert_old_xml_success(&text);
    assert_eq!(
        c.sim.token_requests("client_credentials"),
        tokens_before,
        "EAST's token survived b's reload"
    );
    // The ops page says the instances' maps differ.
    let page = c.a.admin_text("/");
    assert!(
        page.contains("instances load different account maps"),
        "{page}"
    );
}

const RATE: &str = "<?xml version=\"1.0\"?><RatingServiceSelectionRequest><Request><RequestAction>Rate</RequestAction><RequestOption>Rate</RequestOption></Request><Shipment><Shipper><ShipperNumber>9Y9Y9Y</ShipperNumber><Address><City>Dover</City><StateProvinceCode>DE</StateProvinceCode><PostalCode>19901</PostalCode><CountryCode>US</CountryCode></Address></Shipper><ShipTo><CompanyName>Acme</CompanyName><Address><City>Reno</City><StateProvinceCode>NV</StateProvinceCode><PostalCode>89501</PostalCode><CountryCode>US</CountryCode></Address></ShipTo><Service><Code>02</Code></Service><Package><PackagingType><Code>02</Code></PackagingType><PackageWeight><UnitOfMeasurement><Code>LBS</Code></UnitOfMeasurement><Weight>3</Weight></PackageWeight></Package></Shipment></RatingServiceSelectionRequest>";

/// `accounts authorize` against `proxy`, whose redirect URI is under the load balancer's
/// name `public`: the owner opens the start link (given to `proxy`) and logs in at UPS.
/// Returns the callback URL UPS sends the browser to (under `public`).
fn owner_logs_in(proxy: &Proxy, account: &TestAccount, public: &str) -> String {
    let r = no_redirects()
        .post(format!(
            "{}/accounts/{}/authorize",
            proxy.admin, account.name
        ))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let start: serde_json::Value = r.json().unwrap();
    let start = start["start_url"].as_str().expect("a start link");
    assert!(start.starts_with(public), "{start}");
    let callback = log_in_at_ups(&open_start_link(&start.replace(public, &proxy.admin)));
    assert!(
        callback.starts_with(&format!("{public}/oauth/callback?")),
        "{callback}"
    );
    callback
}

/// The owner starts "Authorize" on one instance; UPS sends the browser back to the shared
/// redirect name, which the load balancer gives to the other instance: the flow completes
/// there (state and PKCE verifier come from the store), works once only in the cluster, and
/// both instances then serve the account with the one token UPS issued.
#[test]
fn an_authorization_started_on_one_instance_completes_on_another() {
    const PUBLIC: &str = "http://upsbridge.test";
    let c = Cluster::start(
        &[&NORTH],
        Duration::from_secs(14399),
        &format!("{FAST_TIMEOUTS}redirect_uri = \"{PUBLIC}/oauth/callback\"\n"),
    );
    let callback = owner_logs_in(&c.a, &NORTH, PUBLIC);
    let r = follow_callback(&callback.replace(PUBLIC, &c.b.admin));
    assert_eq!(r.status(), 303, "{}", r.text().unwrap_or_default());
    assert_eq!(c.sim.token_requests("authorization_code"), 1);

    // The same callback again, to the first instance: the state was single use everywhere.
    let r = follow_callback(&callback.replace(PUBLIC, &c.a.admin));
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("already used"));

    for proxy in [&c.a, &c.b] {
        let r = track(proxy, &NORTH);
        assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    }
    assert_eq!(
        (
            c.sim.token_requests("authorization_code"),
            c.sim.token_requests("refresh_token")
        ),
        (1, 0),
        "both instances use the one token the authorization gave"
    );
    // The verifier and the state never reach the database in clear.
    for proxy in [&c.a, &c.b] {
        let log = proxy.log_text();
        assert!(!log.contains(NORTH.client_secret), "{log}");
    }
}

/// `kill -9` of one instance at random moments while refresh tokens rotate, 50 times (or
/// `UPSBRIDGE_CRASH_KILLS`): the other instance answers right after every kill, the killed
/// one after every restart, and nobody has to authorize again. The rotation helper holds the
/// account's lease in PostgreSQL until the new refresh token is committed, so a kill never
/// lets the other instance rotate a refresh token UPS has already replaced.
#[test]
fn kill_9_during_rotation_loses_no_refresh_token_on_postgres() {
    let kills: usize = std::env::var("UPSBRIDGE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    const PUBLIC: &str = "http://upsbridge.test";
    // 3 s access tokens renewed 2 s before expiry; each rotation takes 400 ms at "UPS".
    let extra = format!(
        "{FAST_TIMEOUTS}token_refresh_margin_secs = 2\nredirect_uri = \"{PUBLIC}/oauth/callback\"\n"
    );
    let mut c = Cluster::start(&[&NORTH], Duration::from_secs(3), &extra);
    let callback = owner_logs_in(&c.a, &NORTH, PUBLIC);
    assert_eq!(
        follow_callback(&callback.replace(PUBLIC, &c.a.admin)).status(),
        303
    );
    c.sim.faults(serde_json::json!({"token_latency_ms": 400}));

    let config = std::fs::read_to_string(c.a.dir.join("upsbridge.toml")).unwrap();
    let dir_a = c.a.dir.clone();
    let mut rng_state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state % n
    };
    let (mut lost, mut mid_rotation) = (Vec::new(), 0);
    let started = Instant::now();
    for i in 0..kills {
        let until = Instant::now() + Duration::from_millis(next(1000));
        while Instant::now() < until {
            let _ = track(&c.a, &NORTH);
            std::thread::sleep(Duration::from_millis(10));
        }
        if helpers_of(c.a.proc.child.id()) > 0 {
            mid_rotation += 1;
        }
        // SIGKILL now, mid-rotation or not; the other instance must answer at once.
        let replacement = Proxy::start_with_config(&dir_a, &[&NORTH], &config);
        let killed = std::mem::replace(&mut c.a, replacement);
        drop(killed);
        for (who, proxy) in [("b", &c.b), ("a", &c.a)] {
            let r = track(proxy, &NORTH);
            let status = r.status().as_u16();
            if status != 200 {
                lost.push(format!(
                    "kill {i}: {who} answered {status}: {}",
                    r.text().unwrap_or_default()
                ));
            }
        }
    }
    let rotations = c.sim.token_requests("refresh_token");
    eprintln!(
        "{kills} kills in {:?}: {mid_rotation} with a rotation under way, {rotations} rotations",
        started.elapsed()
    );
    assert!(lost.is_empty(), "{lost:?}");
    assert_eq!(
        c.sim.token_requests("authorization_code"),
        1,
        "someone had to authorize again"
    );
    assert!(
        rotations as usize >= kills / 5,
        "too few rotations ({rotations}) to mean anything"
    );
    assert!(
        mid_rotation >= kills / 20,
        "too few kills landed mid-rotation ({mid_rotation})"
    );
}
/// `/readyz` of an instance: status and body.
fn readyz(p: &Proxy) -> (u16, String) {
    let r = p
        .http
        .get(format!("{}/readyz", p.admin))
        .send()
        .expect("GET /readyz");
    (r.status().as_u16(), r.text().unwrap_or_default())
}

/// Wait until both instances' `/readyz` answer `status`; their bodies.
fn both_ready_say(c: &Cluster, status: u16, limit: Duration, phase: &str) -> [String; 2] {
    [&c.a, &c.b].map(|p| {
        let mut last = (0, String::new());
        wait_for(limit, || {
            last = readyz(p);
            (last.0 == status).then_some(())
        })
        .unwrap_or_else(|| panic!("{phase}: /readyz of {} answered {last:?}", p.admin));
        last.1
    })
}

/// Rate requests one after another (alternating header-style and legacy JSON, cycling
/// through `accounts`) until `stop`; every outcome.
fn steady_traffic(
    base: String,
    accounts: Vec<TestAccount>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<Outcome>> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut out = vec![];
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let shape = if i % 2 == 0 {
                    Shape::Header
                } else {
                    Shape::LegacyJson
                };
                out.push(send(&http, &base, &accounts, i, shape).await);
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            out
        })
    })
}

/// A ShipConfirm that needs the store while PostgreSQL is down: an old-XML error document
/// (status code 0) from upsbridge's store, in time.
fn confirm_refused_in_time(p: &Proxy, a: &TestAccount) {
    let started = Instant::now();
    let (_, headers, text) = post_raw(
        &p.http,
        &format!("{}/ups.app/xml/ShipConfirm", p.url),
        confirm(a),
        Some("application/x-www-form-urlencoded"),
    );
    let took = started.elapsed();
    assert!(
        took <= STORE_TIMEOUT + Duration::from_secs(1),
        "ShipConfirm with PostgreSQL down took {took:?}"
    );
    assert_eq!(
        xml_text(&text, "Response/ResponseStatusCode").as_deref(),
        Some("0"),
        "{text}"
    );
    assert_eq!(
        headers
            .get("x-upsbridge-error")
            .and_then(|v| v.to_str().ok()),
        Some("store"),
        "{text}"
    );
}

/// PostgreSQL stops for about three seconds under steady rate traffic on two instances and
/// starts again on the same port. Requests of accounts whose token is cached and fresh are
/// all answered throughout; /readyz says 503 (naming the database, no password) while it is
/// down and 200 once it is back, without restarting upsbridge; the outage is counted; a
/// ShipConfirm (it writes a digest) gets its dialect's error in time while it is down and
/// succeeds again after; the password never reaches a log.
#[test]
fn postgres_restarting_mid_traffic_costs_cached_token_traffic_nothing() {
    let accounts: Vec<TestAccount> = (0..3).map(|i| account(i, "restart")).collect();
    let refs: Vec<&TestAccount> = accounts.iter().collect();
    let c = Cluster::start(&refs, Duration::from_secs(14399), FAST_TIMEOUTS);
    let password = std::fs::read_to_string(c.pg.password_file())
        .unwrap()
        .trim()
        .to_string();
    assert!(!password.is_empty());
    let target = format!("127.0.0.1:{}/upsbridge", c.pg.port);

    // Warm-up: one request per account per instance caches its token in both.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    for p in [&c.a, &c.b] {
        for i in 0..accounts.len() {
            let o = rt.block_on(send(&http, &p.url, &accounts, i, Shape::Header));
            assert!(o.is_rate_answer(), "warm-up: {}", failures(&[o]));
        }
    }
    assert_eq!(
        c.sim.token_requests("client_credentials"),
        accounts.len() as u64,
        "one token per account, cached by both instances"
    );
    both_ready_say(&c, 200, Duration::from_secs(5), "before");

    let stop = Arc::new(AtomicBool::new(false));
    let traffic: Vec<_> = [&c.a, &c.b]
        .iter()
        .map(|p| steady_traffic(p.url.clone(), accounts.clone(), stop.clone()))
        .collect();
    std::thread::sleep(Duration::from_secs(1));

    let stopped = Instant::now();
    c.pg.stop();
    let down = both_ready_say(&c, 503, Duration::from_secs(5), "database down");
    for body in &down {
        assert!(body.starts_with("store not ready:"), "{body}");
        assert!(body.contains(&target), "names the database: {body}");
        assert_eq!(body.trim_end().lines().count(), 1, "one line: {body}");
        assert!(
            !body.contains(&password) && !body.contains("postgres://"),
            "{body}"
        );
    }
    for (p, a) in [(&c.a, &accounts[0]), (&c.b, &accounts[1])] {
        confirm_refused_in_time(p, a);
    }
    let page = c.a.admin_text("/");
    assert!(
        page.contains("id=\"store-probe\" data-up=\"false\""),
        "{page}"
    );
    std::thread::sleep(
        (stopped + Duration::from_secs(3)).saturating_duration_since(Instant::now()),
    );
    c.pg.start_again();
    let restarted = Instant::now();

    // Back without restarting upsbridge.
    both_ready_say(&c, 200, Duration::from_secs(10), "database back");
    for (p, a) in [(&c.a, &accounts[2]), (&c.b, &accounts[0])] {
        let confirmed = old_xml(p, "ShipConfirm", confirm(a));
        assert!(
            xml_text(&confirmed, "ShipmentDigest").is_some(),
            "{confirmed}"
        );
    }
    let page = c.b.admin_text("/");
    assert!(
        page.contains("id=\"store-probe\" data-up=\"true\""),
        "{page}"
    );
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);

    let outcomes: Vec<Vec<Outcome>> = traffic.into_iter().map(|t| t.join().unwrap()).collect();
    for (name, out) in ["a", "b"].iter().zip(&outcomes) {
        assert!(
            out.iter().all(Outcome::is_rate_answer),
            "instance {name}: {} of {} failed: {}",
            out.iter().filter(|o| !o.is_rate_answer()).count(),
            out.len(),
            failures(out)
        );
        let during = out
            .iter()
            .filter(|o| o.done > stopped && o.done < restarted)
            .count();
        assert!(
            during >= 20,
            "instance {name}: only {during} requests while the database was down"
        );
    }
    assert_eq!(
        c.sim.token_requests("client_credentials"),
        accounts.len() as u64,
        "no token was asked for again"
    );

    let failed: f64 = [&c.a, &c.b]
        .iter()
        .map(|p| {
            let m = metrics(&p.admin);
            assert_eq!(
                sum(&m, "upsbridge_store_up", &[("backend", "postgres")]),
                1.0,
                "{}",
                p.admin
            );
            sum(
                &m,
                "upsbridge_store_operations_total",
                &[("backend", "postgres"), ("outcome", "error")],
            ) + sum(
                &m,
                "upsbridge_store_operations_total",
                &[("backend", "postgres"), ("outcome", "timeout")],
            )
        })
        .sum();
    assert!(failed > 0.0, "the outage is counted");

    for p in [&c.a, &c.b] {
        let log = p.log_text();
        assert!(
            log.contains("does not answer the readiness probe"),
            "the outage is logged"
        );
        assert!(
            !log.contains(&password),
            "the database password is in a log"
        );
    }
}

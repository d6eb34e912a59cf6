//! `kill -9` of `serve` at random moments while refresh tokens rotate: after
//! every restart the authorization-code account still works without a person
//! logging in again. Rotations are slowed down (simulator token latency) so
//! many kills land while one is in flight; the test reports how many.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rand::Rng;
use reqwest::Method;

fn track(proxy: &Proxy) -> u16 {
    header_request(
        &proxy.http,
        Method::GET,
        &format!("{}/track/v1/details/1Z7W7W7W0300000001", proxy.url),
        &NORTH,
        None,
    )
    .status()
    .as_u16()
}

#[test]
fn a_hundred_kill_9_during_rotation_lose_no_refresh_token() {
    let kills: usize = std::env::var("UPSBRIDGE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let dir = tempdir();
    // 3 s access tokens renewed 2 s before expiry (so a restarted serve usually finds its stored
    // token inside the margin and rotates in the background); each rotation takes 400 ms at "UPS".
    let sim = Sim::start(dir.path(), &[&NORTH], 3);
    let extra = format!("{FAST_TIMEOUTS}token_refresh_margin_secs = 2\n");
    {
        let proxy = Proxy::start(dir.path(), &sim, &[&NORTH], &extra);
        let callback = log_in_at_ups(&start_authorize(&proxy, NORTH.name));
        assert_eq!(follow_callback(&callback).status(), 303);
        assert_eq!(track(&proxy), 200);
    }
    sim.faults(serde_json::json!({"token_latency_ms": 400}));

    let mut rng = rand::thread_rng();
    let mut mid_rotation = 0;
    let mut lost = 0;
    let started = Instant::now();
    for i in 0..kills {
        let proxy = Proxy::start_with_map(dir.path(), &sim, &[&NORTH], &extra);
        // The account must work right after every restart, with no new authorization.
        let status = track(&proxy);
        if status != 200 {
            lost += 1;
            eprintln!("kill {i}: after restart the account answered {status}");
        }
        let pid = proxy.proc.child.id();
        let deadline = Instant::now() + Duration::from_millis(rng.gen_range(0..1000));
        let mut in_flight = false;
        while Instant::now() < deadline {
            let _ = track(&proxy);
            std::thread::sleep(Duration::from_millis(10));
        }
        if helpers_of(pid) > 0 {
            in_flight = true;
        }
        drop(proxy); // SIGKILL, then reap
        if in_flight {
            mid_rotation += 1;
        }
    }
    // One last start: still working, and nobody logged in again.
    let proxy = Proxy::start_with_map(dir.path(), &sim, &[&NORTH], &extra);
    assert_eq!(track(&proxy), 200);
    let rotations = sim.token_requests("refresh_token");
    eprintln!(
        "{kills} kills in {:?}: {mid_rotation} while a rotation was in flight, {rotations} rotations, {lost} lost",
        started.elapsed()
    );
    assert_eq!(lost, 0, "{lost} restarts found the account locked out");
    assert_eq!(
        sim.token_requests("authorization_code"),
        1,
        "someone had to authorize again"
    );
    assert!(
        rotations as usize >= kills / 10,
        "too few rotations ({rotations}) to mean anything"
    );
    assert!(
        mid_rotation > kills / 20,
        "too few kills landed mid-rotation ({mid_rotation})"
    );
}

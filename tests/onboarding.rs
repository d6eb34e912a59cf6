//! Authorization-code accounts: the Authorize flow through the admin listener
//! and the simulator's login page, refusals of bad callbacks, rotation of
//! refresh tokens, and tokens sealed at rest.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

#[test]
fn an_account_owner_authorizes_once_and_legacy_requests_then_work() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&NORTH], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&NORTH], FAST_TIMEOUTS);

    assert_eq!(
        account_row(&proxy, NORTH.name)["token"]["state"],
        "needs_authorization"
    );
    let r = track(&proxy, &NORTH);
    assert_eq!(r.status(), 503);
    let v: Value = r.json().unwrap();
    let msg = v["response"]["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("needs authorization") && msg.contains("Authorize"),
        "{msg}"
    );

    let authorize = start_authorize(&proxy, NORTH.name);
    assert!(
        authorize.starts_with(&format!("{}/security/v1/oauth/authorize?", sim.url)),
        "{authorize}"
    );
    assert!(
        authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    let callback = log_in_at_ups(&authorize);
    assert!(
        callback.starts_with(&format!("{}/oauth/callback?", proxy.admin)),
        "{callback}"
    );
    let r = follow_callback(&callback);
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        format!("/?flash=authorized&account={}", NORTH.name).as_str()
    );
    assert_eq!(account_row(&proxy, NORTH.name)["token"]["state"], "valid");
    assert_eq!(sim.token_requests("authorization_code"), 1);

    let r = track(&proxy, &NORTH);
    assert_eq!(r.status(), 200);
    let forwarded = sim.api_requests();
    assert_eq!(forwarded.len(), 1);
    assert_clean_upstream(&forwarded[0], &NORTH);

    // The same callback a second time: the state was single use.
    let r = follow_callback(&callback);
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("already used"));
    assert_eq!(
        sim.token_requests("authorization_code"),
        1,
        "a replayed callback reached UPS"
    );

    // The page shows the account as valid, with no secret on it.
    let page = proxy.admin_text("/");
    assert!(page.contains("data-state=\"valid\""), "{page}");
    for s in [NORTH.client_secret, NORTH.password] {
        assert!(!page.contains(s));
    }
}

#[test]
fn forged_or_failed_callbacks_are_refused_and_nothing_is_stored() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&NORTH, &SOUTH], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&NORTH, &SOUTH], FAST_TIMEOUTS);
    // The owner's browser, with the flow cookie of the last flow it started.
    let cb = |q: &str| follow_callback(&format!("{}/oauth/callback?{q}", proxy.admin));

    let r = cb("code=abc&state=forged-state");
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .unwrap()
        .contains("unknown, already used or expired"));

    // UPS sends the owner back with an error (they clicked Deny).
    let authorize = start_authorize(&proxy, NORTH.name);
    let state = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let r = cb(&format!(
        "error=access_denied&error_description=denied&state={state}"
    ));
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("access_denied"));

    // A code UPS issued for SOUTH's app, presented with NORTH's state.
    let south_callback = log_in_at_ups(&start_authorize(&proxy, SOUTH.name));
    let south_code = url::Url::parse(&south_callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let north_state = url::Url::parse(&start_authorize(&proxy, NORTH.name))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let r = cb(&format!("code={south_code}&state={north_state}"));
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("UPS refused"));

    // Nothing was stored: both accounts still need authorization and get no token.
    for a in [NORTH.name, SOUTH.name] {
        assert_eq!(
            account_row(&proxy, a)["token"]["state"],
            "needs_authorization"
        );
    }
    assert_eq!(track(&proxy, &NORTH).status(), 503);
    assert_eq!(sim.token_requests("refresh_token"), 0);
}

#[test]
fn refresh_tokens_rotate_and_are_sealed_at_rest() {
    let dir = tempdir();
    // Access tokens live 3 s: every few requests the broker rotates the refresh token.
    let sim = Sim::start(dir.path(), &[&NORTH], 3);
    let proxy = Proxy::start(
        dir.path(),
        &sim,
        &[&NORTH],
        &format!("{FAST_TIMEOUTS}token_refresh_margin_secs = 1\n"),
    );
    let callback = log_in_at_ups(&start_authorize(&proxy, NORTH.name));
    assert_eq!(follow_callback(&callback).status(), 303);

    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        assert_eq!(track(&proxy, &NORTH).status(), 200);
        std::thread::sleep(Duration::from_millis(150));
    }
    let refreshes = sim.token_requests("refresh_token");
    assert!(
        (2..=6).contains(&refreshes),
        "{refreshes} rotations in 8 s of 3 s tokens"
    );

    // Every token value UPS issued or received, as the simulator saw them.
    let mut secrets: Vec<String> = vec![NORTH.client_secret.into(), NORTH.password.into()];
    for r in sim.requests() {
        if let Some(a) = r["headers"]["authorization"].as_str() {
            if let Some(t) = a.strip_prefix("Bearer ") {
                secrets.push(t.to_string());
            }
        }
        for (k, v) in url::form_urlencoded::parse(r["body"].as_str().unwrap_or("").as_bytes()) {
            if k == "refresh_token" || k == "code" {
                secrets.push(v.into_owned());
            }
        }
    }
    assert!(secrets.len() > 6);
    let mut raw = Vec::new();
    for entry in walk(&dir.path().join("store")) {
        raw.extend(std::fs::read(entry).unwrap());
    }
    assert!(raw.len() > 1000, "the store was read");
    let log = proxy.log_text();
    for s in &secrets {
        assert!(
            !contains(&raw, s.as_bytes()),
            "a secret is in the store in clear"
        );
        assert!(!log.contains(s.as_str()), "a secret is in the log");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn accounts_authorize_onboards_from_a_terminal() {
    use std::io::{BufRead, BufReader};
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&NORTH], 14399);
    write_map(&dir.path().join("accounts.toml"), &[&NORTH]);
    // The CLI finds the server by its configured admin address, so give it a fixed one.
    let admin_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = Proxy::config_text(&sim.url, FAST_TIMEOUTS).replace(
        "[admin]\nlisten = \"127.0.0.1:0\"",
        &format!("[admin]\nlisten = \"127.0.0.1:{admin_port}\""),
    );
    let proxy = Proxy::start_with_config(dir.path(), &[&NORTH], &config);

    let mut cli = std::process::Command::new(BIN)
        .args(["accounts", "authorize", NORTH.name, "--config"])
        .arg(dir.path().join("upsbridge.toml"))
        .env("UPSBRIDGE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(cli.stdout.take().unwrap()).lines();
    let start = loop {
        let line = lines.next().expect("the CLI printed a start link").unwrap();
        if line
            .trim()
            .starts_with(&format!("{}/oauth/start/", proxy.admin))
        {
            break line.trim().to_string();
        }
    };
    let url = open_start_link(&start);
    assert!(
        url.starts_with(&format!("{}/security/v1/oauth/authorize", sim.url)),
        "{url}"
    );
    let callback = log_in_at_ups(&url);
    assert_eq!(follow_callback(&callback).status(), 303);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(cli.wait().unwrap().success());
    assert!(rest.iter().any(|l| l.contains("is authorized")), "{rest:?}");
    assert_eq!(track(&proxy, &NORTH).status(), 200);
}

#[test]
fn an_authorization_completing_during_sigterm_is_saved_before_the_process_exits() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&NORTH], 14399);
    write_map(&dir.path().join("accounts.toml"), &[&NORTH]);
    let config = Proxy::config_text(&sim.url, FAST_TIMEOUTS)
        .replace("shutdown_grace_secs = 1", "shutdown_grace_secs = 30");
    let mut proxy = Proxy::start_with_config(dir.path(), &[&NORTH], &config);
    let callback = log_in_at_ups(&start_authorize(&proxy, NORTH.name));
    // UPS takes its time exchanging the code; SIGTERM arrives meanwhile.
    sim.faults(serde_json::json!({"token_latency_ms": 1500}));
    let started = Instant::now();
    // The owner's browser (and its flow cookie) stays on this thread; ops stop the service.
    let r = std::thread::scope(|scope| {
        scope.spawn(|| {
            // Once the callback's exchange has reached UPS (counted as it arrives, before
            // the latency): the admin request is then surely in progress.
            while sim.token_requests("authorization_code") == 0 {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "no code exchange"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            proxy.proc.sigterm();
        });
        follow_callback(&callback)
    });
    assert!(
        started.elapsed() > Duration::from_millis(1400),
        "the exchange did not outlast the SIGTERM"
    );
    assert_eq!(r.status(), 303, "the callback was cut by the shutdown");
    assert_eq!(
        r.headers()["location"],
        format!("/?flash=authorized&account={}", NORTH.name).as_str()
    );
    // Out once the exchange is saved, not at the 30 s grace period's end.
    let exit = proxy.proc.wait_exit(started, Duration::from_secs(10));
    assert!(exit.success(), "{exit:?}");
    drop(proxy);

    // The next start has the account's token: the exchange was saved, not lost.
    sim.clear_faults();
    let proxy = Proxy::start_with_config(dir.path(), &[&NORTH], &config);
    assert_eq!(account_row(&proxy, NORTH.name)["token"]["state"], "valid");
    assert_eq!(track(&proxy, &NORTH).status(), 200);
    assert_eq!(sim.token_requests("authorization_code"), 1);
}

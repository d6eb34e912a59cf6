//! The Authorize flow in a real browser: headless Chromium (Debian's), driven by
//! `tests/browser/authorize.mjs` with playwright-core, against the real simulator
//! and proxy. Open the ops page, click Authorize, log in on the simulator's login
//! page, land back on the ops page with the account valid; then a legacy request
//! for the account goes through.
//!
//! Needs `bash scripts/setup.sh` (Chromium, Node.js, `npm ci` in tests/browser);
//! without them it fails saying so. Screenshots go to a temp dir, or to `docs/`
//! with `UPSBRIDGE_UPDATE_SCREENSHOTS=1`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;

const DRIVER_TIMEOUT: Duration = Duration::from_secs(30);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What the browser test needs, or a message saying how to get it.
fn preflight() -> Result<(), String> {
    let setup = "run `bash scripts/setup.sh` (installs Debian's chromium, Node.js and the pinned playwright-core)";
    let chromium =
        std::env::var("UPSBRIDGE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Err(format!("Chromium not found at {chromium}: {setup}"));
    }
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        return Err(format!("`node` not found: {setup}"));
    }
    let pw = repo().join("tests/browser/node_modules/playwright-core/package.json");
    if !pw.exists() {
        return Err(format!("{} is missing: {setup}", pw.display()));
    }
    Ok(())
}

/// Run the Node driver, killing it if it hangs; returns (success, stdout + stderr).
fn run_driver(
    dir: &Path,
    admin: &str,
    account: &str,
    before: &Path,
    after: &Path,
) -> (bool, String) {
    let out_path = dir.join("driver.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new("node")
        .arg(repo().join("tests/browser/authorize.mjs"))
        .args([admin, account])
        .arg(before)
        .arg(after)
        .current_dir(repo().join("tests/browser"))
        .env("UPSBRIDGE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("spawn node");
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > DRIVER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut text = std::fs::read_to_string(&out_path).unwrap_or_default();
    match status {
        Some(s) => (s.success(), text),
        None => {
            text.push_str(&format!("\n(driver killed after {DRIVER_TIMEOUT:?})"));
            (false, text)
        }
    }
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 5_000,
        "{} is not a screenshot ({} bytes)",
        path.display(),
        bytes.len()
    );
}

#[test]
fn ops_authorize_in_headless_chromium_then_legacy_requests_work() {
    if let Err(why) = preflight() {
        panic!("browser test cannot run: {why}");
    }
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&NORTH], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&NORTH], FAST_TIMEOUTS);

    let shots = if std::env::var("UPSBRIDGE_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        repo().join("docs")
    } else {
        dir.path().to_path_buf()
    };
    std::fs::create_dir_all(&shots).unwrap();
    let before = shots.join("ops-page-before.png");
    let after = shots.join("ops-page-after.png");

    let started = Instant::now();
    let (ok, output) = run_driver(dir.path(), &proxy.admin, NORTH.name, &before, &after);
    assert!(
        ok,
        "browser driver failed after {:?}:\n{output}\n--- proxy log (tail) ---\n{}",
        started.elapsed(),
        tail(&proxy.log_text(), 40)
    );
    eprintln!("{output}browser round trip: {:?}", started.elapsed());
    assert_png(&before);
    assert_png(&after);

    // The browser's round trip stored the tokens: exactly one code exchange at UPS.
    assert_eq!(account_row(&proxy, NORTH.name)["token"]["state"], "valid");
    assert_eq!(sim.token_requests("authorization_code"), 1);

    // A legacy header-style request for the account now goes through with a bearer.
    let r = header_request(
        &proxy.http,
        Method::GET,
        &format!("{}/track/v1/details/1Z7W7W7W0300000001", proxy.url),
        &NORTH,
        None,
    );
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    let forwarded = sim.api_requests();
    assert_eq!(forwarded.len(), 1);
    assert_clean_upstream(&forwarded[0], &NORTH);
    assert_eq!(
        sim.token_requests("authorization_code"),
        1,
        "the legacy request re-authorized"
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The ops page's New-account form in a real browser: a client-credentials account and an
/// authorization-code account (authorized at the simulator's login page) are added; a
/// legacy request then works for each; the map file stays valid, keeps its comments and
/// holds no clear password; a form opened before a hand edit of the map is refused.
#[test]
fn ops_adds_accounts_in_headless_chromium_then_legacy_requests_work() {
    if let Err(why) = preflight() {
        panic!("browser test cannot run: {why}");
    }
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&WEST, &EAST, &NORTH], 14399);
    // The map starts with WEST only; EAST's and NORTH's client secrets are in the environment.
    let map = dir.path().join("accounts.toml");
    write_map(&map, &[&WEST]);
    let config = Proxy::config_text(&sim.url, FAST_TIMEOUTS);
    let (east_env, north_env) = (secret_env(&EAST), secret_env(&NORTH));
    let proxy = Proxy::start_with_env(
        dir.path(),
        &[&WEST],
        &config,
        &[
            (east_env.as_str(), EAST.client_secret),
            (north_env.as_str(), NORTH.client_secret),
        ],
    );
    let form = |a: &TestAccount| {
        serde_json::json!({"name": a.name, "ups_account_number": a.shipper, "grant": a.grant, "client_id": a.client_id,
            "secret_source": format!("env:{}", secret_env(a)), "access_license_number": a.access_key,
            "user_id": a.user, "password": a.password})
    };
    let accounts = dir.path().join("new-accounts.json");
    std::fs::write(
        &accounts,
        serde_json::json!([form(&EAST), form(&NORTH)]).to_string(),
    )
    .unwrap();
    let shots = if std::env::var("UPSBRIDGE_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        repo().join("docs")
    } else {
        dir.path().to_path_buf()
    };
    let out = Command::new("node")
        .arg(repo().join("tests/browser/add_accounts.mjs"))
        .arg(&proxy.admin)
        .arg(&accounts)
        .arg(&map)
        .arg(&shots)
        .current_dir(repo().join("tests/browser"))
        .env("UPSBRIDGE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .output()
        .expect("spawn node");
    assert!(
        out.status.success(),
        "browser driver failed:\n{}{}\n--- proxy log (tail) ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        tail(&proxy.log_text(), 40)
    );
    for shot in [
        "ops-1-accounts",
        "ops-2-new-account",
        "ops-3-added",
        "ops-4-authorized",
        "ops-5-account-view",
        "ops-6-concurrent-edit",
    ] {
        assert_png(&shots.join(format!("{shot}.png")));
    }
    // A legacy request works for each added account.
    for a in [&EAST, &NORTH] {
        let r = header_request(
            &proxy.http,
            Method::GET,
            &format!("{}/track/v1/details/1Z9Y9Y9Y0300000001", proxy.url),
            a,
            None,
        );
        assert_eq!(
            r.status(),
            200,
            "{}: {}",
            a.name,
            r.text().unwrap_or_default()
        );
    }
    // The map is valid, kept its comments, and holds hashes, never passwords.
    let text = std::fs::read_to_string(&map).unwrap();
    assert!(text.starts_with("# test account map\n"), "{text}");
    assert!(
        text.contains("# edited by hand meanwhile"),
        "the hand edit stayed: {text}"
    );
    for a in [&WEST, &EAST, &NORTH] {
        assert!(
            !text.contains(a.password),
            "clear password of {} in the map",
            a.name
        );
    }
    assert!(
        !text.contains("late-edit"),
        "the refused form wrote nothing"
    );
    let check = Command::new(BIN)
        .args(["accounts", "check"])
        .arg(&map)
        .env(&east_env, EAST.client_secret)
        .env(&north_env, NORTH.client_secret)
        .env(secret_env(&WEST), WEST.client_secret)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("3 accounts"));
}

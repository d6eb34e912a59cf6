//! Real legacy UPS client libraries, pinned old releases from PyPI and npm, driven through
//! the proxy against the UPS simulator: each completes a rate and a ship with what it parses
//! from upsbridge's answers, and what it parsed must be what the simulator produced.
//!
//! | library | dialect | driver |
//! |---|---|---|
//! | ClassicUPS3 0.1.8 (PyPI) | old XML: ShipConfirm (priced: its "rate") + ShipAccept | `tests/clients/classicups3_driver.py` |
//! | purplship.ups 2022.2 (PyPI) | SOAP: Rate, Ship | `tests/clients/purplship_driver.py` |
//! | shipping-ups 0.5.7 (npm) | old XML: Rate, ShipConfirm + ShipAccept | `tests/clients/shipping_ups_driver.js` |
//! | suds 1.1.2 + python-ups 0.0.4's RateWS.wsdl (PyPI) | SOAP, WSDL-strict: Rate | `tests/clients/suds_rate_driver.py` |
//! | zeep 4.2.1 + python-ups 0.0.4's RateWS.wsdl (PyPI) | SOAP, WSDL-strict: Rate | `tests/clients/zeep_rate_driver.py` |
//! | karrio.ups 2023.3 (PyPI, target/client-venv2) | SOAP: Rate, Ship; header JSON: Track | `tests/clients/karrio_driver.py` |
//! | py-ups-rest 0.0.5 (PyPI) | header JSON: Ship, Track | `tests/clients/py_ups_rest_driver.py` |
//! | darbiadev-ups 0.6.5 (PyPI) | legacy JSON: Track | `tests/clients/darbiadev_ups_driver.py` |
//! | ups-shipping 1.0.0 (npm) | old XML: Rate, ShipConfirm + ShipAccept, Track | `tests/clients/ups_shipping_driver.js` |
//! | ups-shipping-api 1.0.0 (npm) | legacy JSON: Rate | `tests/clients/ups_shipping_api_driver.js` |
//! | shipit 1.2.0 (npm) | old XML: Track | `tests/clients/shipit_driver.js` |
//!
//! The libraries are installed by `bash scripts/setup.sh` (PyPI ones into
//! `target/client-venv`, karrio into `target/client-venv2`, npm ones into `tests/clients/node_modules`); without them these
//! tests fail and say so. What each library sends is in `tests/fixtures/clients/`.
//!
//! Each test runs its library through upsbridge's plain URL; and
//! `every_real_client_runs_unpatched_by_ups_name_over_tls` runs every one of them again with
//! no change to its code or URL: UPS's own name, reached over TLS by a hosts file or through
//! `HTTPS_PROXY`, in network and mount namespaces of its own.
//!
//! The expected values come from the simulator itself: the REST calls the proxy made are
//! read from `/__sim/requests` and replayed to the simulator with a token of the same app,
//! and the library's parsed rate, tracking number and label are compared with those answers.
mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use serde_json::Value;

const DRIVER_TIMEOUT: Duration = Duration::from_secs(120);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn setup_hint(what: &str) -> ! {
    panic!(
        "legacy client runtime missing: {what}.\nRun `bash scripts/setup.sh` (installs the pinned \
         legacy UPS client libraries: PyPI ones into target/client-venv, npm ones into \
         tests/clients/node_modules), then run the tests again."
    )
}

/// The venv's python, after checking the given modules are importable there.
fn python_with(modules: &[&str]) -> PathBuf {
    python_in("target/client-venv", modules)
}

/// The python of the venv at `venv` (relative to the repo), after checking the given
/// modules are importable there.
fn python_in(venv: &str, modules: &[&str]) -> PathBuf {
    let py = root().join(venv).join("bin/python");
    if !py.exists() {
        setup_hint(&format!("{} does not exist", py.display()));
    }
    let ok = Command::new(&py)
        .arg("-c")
        .arg("import importlib.util, sys; sys.exit(0 if all(importlib.util.find_spec(m) for m in sys.argv[1:]) else 1)")
        .args(modules)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        setup_hint(&format!(
            "python modules {modules:?} not installed in {}",
            py.display()
        ));
    }
    py
}

/// `node`, after checking `tests/clients/node_modules/<package>` has the pinned version.
fn node_with(package: &str, version: &str) -> PathBuf {
    if !Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        setup_hint("`node` is not on PATH");
    }
    let manifest = root()
        .join("tests/clients/node_modules")
        .join(package)
        .join("package.json");
    let installed = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_string));
    if installed.as_deref() != Some(version) {
        setup_hint(&format!(
            "npm package {package}@{version} not installed ({} has {installed:?})",
            manifest.display()
        ));
    }
    PathBuf::from("node")
}

/// What one driver run left behind.
struct Run {
    parsed: Value,
    sim: Sim,
    proxy: Proxy,
    _dir: tempfile::TempDir,
}

/// How a driver's library reaches upsbridge.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Via {
    /// The library pointed at upsbridge's plain URL (by its URL option, or the driver's
    /// documented adjustment when it has none).
    Url,
    /// Unpatched: the library calls `https://onlinetools.ups.com` as it always did; the hosts
    /// file points the name at upsbridge's TLS listener on 127.0.0.1:443 (inside the network
    /// and mount namespaces of [`every_real_client_runs_unpatched_by_ups_name_over_tls`]).
    HostsFile,
    /// Unpatched, with `HTTPS_PROXY` naming upsbridge's plain listener (CONNECT mode) and no
    /// hosts entry: the name never resolves, the tunnel is the only way.
    HttpsProxy,
}

/// Start simulator + proxy for EAST, run `program driver BASE KEY USER PASSWORD SHIPPER`.
/// Panics with the driver's stderr, the REST calls and the proxy log if it fails.
fn run_driver(program: &Path, driver: &str, via: Via) -> Run {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 3600);
    let (proxy, base, trust) = match via {
        Via::Url => {
            let proxy = Proxy::start(dir.path(), &sim, &[&EAST], FAST_TIMEOUTS);
            let base = proxy.url.clone();
            (proxy, base, None)
        }
        Via::HostsFile | Via::HttpsProxy => {
            write_map(&dir.path().join("accounts.toml"), &[&EAST]);
            let listener = if via == Via::HostsFile {
                "tls_listen = \"127.0.0.1:443\"\n"
            } else {
                "connect_proxy = true\n"
            };
            let config = Proxy::config_text(&sim.url, FAST_TIMEOUTS)
                .replace("[admin]", &format!("{listener}[admin]"))
                + "[tls]\ndir = \"tls\"\n";
            std::fs::write(dir.path().join("upsbridge.toml"), &config).unwrap();
            let init = Command::new(BIN)
                .args(["tls", "init", "--config"])
                .arg(dir.path().join("upsbridge.toml"))
                .output()
                .unwrap();
            assert!(init.status.success(), "{init:?}");
            let ca = dir.path().join("tls/ca.pem");
            let proxy = Proxy::start_with_env(dir.path(), &[&EAST], &config, &[]);
            (proxy, "https://onlinetools.ups.com".to_string(), Some(ca))
        }
    };
    let script = root().join("tests/clients").join(driver);
    let mut command = Command::new(program);
    if let Some(ca) = &trust {
        // Each ecosystem's own way to trust a CA (docs/tls.md §3), nothing else.
        if program.ends_with("node") {
            command.env("NODE_EXTRA_CA_CERTS", ca);
        } else {
            command
                .env("REQUESTS_CA_BUNDLE", ca)
                .env("SSL_CERT_FILE", ca);
        }
    }
    if via == Via::HttpsProxy {
        command
            .env("HTTPS_PROXY", &proxy.url)
            .env("https_proxy", &proxy.url);
    } else {
        command.env_remove("HTTPS_PROXY").env_remove("https_proxy");
    }
    let mut child = command
        .arg(&script)
        .args([
            base.as_str(),
            EAST.access_key,
            EAST.user,
            EAST.password,
            EAST.shipper,
        ])
        .current_dir(root().join("tests/clients"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {} {driver}: {e}", program.display()));
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + DRIVER_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out_t.join().unwrap();
    let stderr = err_t.join().unwrap();
    let ctx = || context(&sim, &proxy, &stdout, &stderr);
    match status {
        None => panic!("{driver} did not finish in {DRIVER_TIMEOUT:?}\n{}", ctx()),
        Some(st) if !st.success() => panic!("{driver} failed ({st})\n{}", ctx()),
        Some(_) => {}
    }
    let line = stdout.lines().last().unwrap_or("");
    let parsed: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{driver} printed no JSON line ({e})\n{}", ctx()));
    Run {
        parsed,
        sim,
        proxy,
        _dir: dir,
    }
}

/// Everything useful to see why a library failed.
fn context(sim: &Sim, proxy: &Proxy, stdout: &str, stderr: &str) -> String {
    let calls: Vec<String> = sim
        .api_requests()
        .iter()
        .map(|r| {
            format!(
                "  {} {}{}{} {}",
                r["method"].as_str().unwrap_or(""),
                r["path"].as_str().unwrap_or(""),
                if r["query"].as_str().unwrap_or("").is_empty() {
                    ""
                } else {
                    "?"
                },
                r["query"].as_str().unwrap_or(""),
                r["body"].as_str().unwrap_or("")
            )
        })
        .collect();
    let log = proxy.log_text();
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    format!(
        "--- driver stdout:\n{stdout}\n--- driver stderr:\n{stderr}\n--- REST calls the simulator got ({}):\n{}\n--- proxy log (last 40 lines):\n{}",
        calls.len(),
        calls.join("\n"),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    )
}

impl Run {
    fn calls(&self) -> Vec<Value> {
        self.sim.api_requests()
    }

    fn rate_calls(&self) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|r| path(r).starts_with("/api/rating/"))
            .collect()
    }

    fn ship_calls(&self) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|r| path(r).starts_with("/api/shipments/") && path(r).ends_with("/ship"))
            .collect()
    }

    /// The rate the library parsed: its service label, the total and USD.
    fn assert_rate(&self, service: &str, total: f64) {
        let p = &self.parsed;
        assert_eq!(p["rate_service"], service, "{}", self.ctx());
        assert_eq!(num(&p["rate_total"]), total, "rate total\n{}", self.ctx());
        assert_eq!(p["rate_currency"], "USD", "{}", self.ctx());
    }

    fn ctx(&self) -> String {
        context(&self.sim, &self.proxy, &self.parsed.to_string(), "")
    }

    /// Common checks: one ship call, every REST call clean, at least `min_rates` rate calls.
    fn check_calls(&self, min_rates: usize) -> (Vec<Value>, Value) {
        for r in self.calls() {
            assert_clean_upstream(&r, &EAST);
        }
        let rates = self.rate_calls();
        assert!(
            rates.len() >= min_rates,
            "expected at least {min_rates} REST rate call(s)\n{}",
            self.ctx()
        );
        let ships = self.ship_calls();
        assert_eq!(
            ships.len(),
            1,
            "the library shipped once: exactly one REST ship call\n{}",
            self.ctx()
        );
        (rates, ships[0].clone())
    }

    fn track_calls(&self) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|r| path(r).starts_with("/api/track/"))
            .collect()
    }

    /// For libraries without a ship call: every REST call clean, no ship call, and at least
    /// `min_rates` rate and `min_tracks` track calls. Returns (rate calls, track calls).
    fn check_calls_no_ship(&self, min_rates: usize, min_tracks: usize) -> (Vec<Value>, Vec<Value>) {
        for r in self.calls() {
            assert_clean_upstream(&r, &EAST);
        }
        assert!(
            self.ship_calls().is_empty(),
            "the library did not ship: no REST ship call\n{}",
            self.ctx()
        );
        let rates = self.rate_calls();
        assert!(
            rates.len() >= min_rates,
            "expected at least {min_rates} REST rate call(s)\n{}",
            self.ctx()
        );
        let tracks = self.track_calls();
        assert!(
            tracks.len() >= min_tracks,
            "expected at least {min_tracks} REST track call(s)\n{}",
            self.ctx()
        );
        (rates, tracks)
    }

    /// The simulator's answer to a REST track call (replayed; tracking answers do not change
    /// the simulator's state): (tracking number, first activity's status description, its
    /// status type, number of activities) of the first package.
    fn expected_track(&self, track_call: &Value) -> (String, String, String, usize) {
        let answer = self.replay(track_call);
        let pkg = one(&one(&answer["trackResponse"]["shipment"])["package"]).clone();
        let activity: Vec<Value> = match &pkg["activity"] {
            Value::Array(a) => a.clone(),
            Value::Null => vec![],
            other => vec![other.clone()],
        };
        let first = activity.first().cloned().unwrap_or(Value::Null);
        (
            pkg["trackingNumber"].as_str().unwrap_or("").to_string(),
            first["status"]["description"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            first["status"]["type"].as_str().unwrap_or("").to_string(),
            activity.len(),
        )
    }

    /// The simulator's ground (service 03) rated shipment for a REST rate call (replayed).
    fn expected_ground(&self, rate_call: &Value) -> Value {
        let rated = self.replay(rate_call);
        let list: Vec<Value> = match &rated["RateResponse"]["RatedShipment"] {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        list.into_iter()
            .find(|s| s["Service"]["Code"] == "03")
            .unwrap_or_else(|| panic!("sim rated no ground service: {rated}"))
    }

    /// Send a recorded REST call again, straight to the simulator, with a token of EAST's app.
    fn replay(&self, call: &Value) -> Value {
        self.sim.replay(&EAST, call)
    }

    /// The simulator's answer to the (one) REST ship call, and the tracking number it gave
    /// that call. Replaying draws the next number of the simulator's counter, so the number
    /// the library's call got is the replayed one minus one.
    fn expected_ship(&self, ship_call: &Value) -> (Value, String) {
        let answer = self.replay(ship_call);
        let results = answer["ShipmentResponse"]["ShipmentResults"].clone();
        let replayed = results["ShipmentIdentificationNumber"]
            .as_str()
            .expect("sim ship answer has a ShipmentIdentificationNumber")
            .to_string();
        let (head, counter) = replayed.split_at(replayed.len() - 8);
        let n: u64 = counter.parse().expect("1Z counter");
        (results, format!("{head}{:08}", n - 1))
    }
}

fn path(r: &Value) -> &str {
    r["path"].as_str().unwrap_or("")
}

fn one(v: &Value) -> &Value {
    match v {
        Value::Array(a) => a.first().unwrap_or(&Value::Null),
        other => other,
    }
}

/// The price a client that prefers negotiated rates shows: negotiated when UPS gave one.
fn negotiated_or_list(rated_shipment: &Value) -> f64 {
    if rated_shipment["NegotiatedRateCharges"].is_object() {
        money(&rated_shipment["NegotiatedRateCharges"]["TotalCharge"])
    } else {
        money(&rated_shipment["TotalCharges"])
    }
}

fn money(v: &Value) -> f64 {
    v["MonetaryValue"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no MonetaryValue in {v}"))
}

fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a number: {v}")),
        _ => panic!("not a number: {v}"),
    }
}

fn label_bytes(results: &Value) -> usize {
    let img = one(&results["PackageResults"])["ShippingLabel"]["GraphicImage"]
        .as_str()
        .expect("sim label");
    base64::engine::general_purpose::STANDARD
        .decode(img)
        .unwrap()
        .len()
}

fn classicups3(via: Via) -> Run {
    let py = python_with(&["ClassicUPS3", "dict2xml", "xmltodict"]);
    run_driver(&py, "classicups3_driver.py", via)
}

/// ClassicUPS3: ShipConfirm (its price is the library's "rate") then ShipAccept (label).
#[test]
fn classicups3_old_xml_confirm_and_accept_through_proxy() {
    classicups3_old_xml_confirm_and_accept_through_proxy_via(Via::Url);
}

fn classicups3_old_xml_confirm_and_accept_through_proxy_via(via: Via) {
    let run = classicups3(via);
    let p = &run.parsed;
    let (rates, ship) = run.check_calls(1);
    // The confirm was priced by a REST rate call; the library's cost is that call's total.
    let rated = run.replay(&rates[0]);
    let expected_rate = money(&one(&rated["RateResponse"]["RatedShipment"])["TotalCharges"]);
    assert_eq!(
        num(&p["rate_total"]),
        expected_rate,
        "Shipment.cost\n{}",
        run.ctx()
    );
    let (results, tn) = run.expected_ship(&ship);
    assert_eq!(
        p["accept_shipment_id"],
        tn.as_str(),
        "ShipAccept's ShipmentIdentificationNumber\n{}",
        run.ctx()
    );
    assert_eq!(
        p["accept_tracking_number"],
        tn.as_str(),
        "ShipAccept's PackageResults/TrackingNumber\n{}",
        run.ctx()
    );
    assert_eq!(
        num(&p["accept_total"]),
        money(&results["ShipmentCharges"]["TotalCharges"]),
        "{}",
        run.ctx()
    );
    assert_eq!(
        p["label_is_gif"],
        true,
        "Shipment.get_label() is the simulator's GIF\n{}",
        run.ctx()
    );
    assert_eq!(
        p["label_bytes"].as_u64(),
        Some(label_bytes(&results) as u64),
        "{}",
        run.ctx()
    );
}

/// ClassicUPS3's `Shipment.tracking_number` is read from the *ShipmentConfirmResponse*
/// (`ShipmentIdentificationNumber`), never from the accept answer. UPS's REST API has no
/// two-phase shipping, and ShipConfirm must not create a shipment (issue 3), so no number
/// exists at confirm time: upsbridge answers an empty `ShipmentIdentificationNumber` and the
/// real number comes with ShipAccept (`PackageResults/TrackingNumber`). This test pins that
/// documented limitation (README, compatibility table) so a change to it is deliberate.
#[test]
fn classicups3_confirm_time_tracking_number_is_empty_until_accept() {
    classicups3_confirm_time_tracking_number_is_empty_until_accept_via(Via::Url);
}

fn classicups3_confirm_time_tracking_number_is_empty_until_accept_via(via: Via) {
    let run = classicups3(via);
    let (_, ship) = run.check_calls(1);
    let (_, tn) = run.expected_ship(&ship);
    assert!(
        run.parsed["tracking_number"].is_null() || run.parsed["tracking_number"] == "",
        "confirm-time number changed: {}\n{}",
        run.parsed["tracking_number"],
        run.ctx()
    );
    assert_eq!(
        run.parsed["accept_tracking_number"],
        tn.as_str(),
        "{}",
        run.ctx()
    );
}

/// purplship.ups 2022.2: SOAP Rate then SOAP Ship (one phase).
#[test]
fn purplship_soap_rate_and_ship_through_proxy() {
    purplship_soap_rate_and_ship_through_proxy_via(Via::Url);
}

fn purplship_soap_rate_and_ship_through_proxy_via(via: Via) {
    let py = python_with(&["purplship", "purplship.mappers.ups", "ups_lib"]);
    let run = run_driver(&py, "purplship_driver.py", via);
    let p = &run.parsed;
    let (rates, ship) = run.check_calls(1);
    let rated = run.replay(&rates[0]);
    let shipments = &rated["RateResponse"]["RatedShipment"];
    let list: Vec<&Value> = match shipments {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let ground = list
        .iter()
        .find(|s| s["Service"]["Code"] == "03")
        .unwrap_or_else(|| panic!("sim rated no ground service: {rated}"));
    // purplship takes the negotiated total when there is one.
    let expected = negotiated_or_list(ground);
    run.assert_rate("ups_ground", expected);
    let (_, tn) = run.expected_ship(&ship);
    assert_eq!(
        p["tracking_number"],
        tn.as_str(),
        "ShipmentDetails.tracking_number\n{}",
        run.ctx()
    );
    assert_eq!(p["shipment_id"], tn.as_str(), "{}", run.ctx());
    assert_eq!(
        p["label_is_pdf"],
        true,
        "the simulator's GIF label, converted to PDF by purplship\n{}",
        run.ctx()
    );
    assert!(
        p["messages"].as_array().is_some_and(Vec::is_empty),
        "no error messages\n{}",
        run.ctx()
    );
}

/// shipping-ups 0.5.7 (npm): old XML Rate, then ShipConfirm + ShipAccept.
#[test]
fn shipping_ups_old_xml_rate_confirm_accept_through_proxy() {
    shipping_ups_old_xml_rate_confirm_accept_through_proxy_via(Via::Url);
}

fn shipping_ups_old_xml_rate_confirm_accept_through_proxy_via(via: Via) {
    let node = node_with("shipping-ups", "0.5.7");
    let run = run_driver(&node, "shipping_ups_driver.js", via);
    let p = &run.parsed;
    let (rates, ship) = run.check_calls(1);
    let rated = run.replay(&rates[0]);
    let shipment = one(&rated["RateResponse"]["RatedShipment"]);
    // Old XML puts the list price in TotalCharges (negotiated rates go to NegotiatedRates).
    run.assert_rate("03", money(&shipment["TotalCharges"]));
    let (results, tn) = run.expected_ship(&ship);
    assert_eq!(
        p["shipment_id"],
        tn.as_str(),
        "ShipmentResults/ShipmentIdentificationNumber\n{}",
        run.ctx()
    );
    assert_eq!(
        p["tracking_number"],
        tn.as_str(),
        "PackageResults/TrackingNumber\n{}",
        run.ctx()
    );
    let ship_total = money(&results["ShipmentCharges"]["TotalCharges"]);
    assert_eq!(num(&p["accept_total"]), ship_total, "{}", run.ctx());
    assert_eq!(
        num(&p["confirm_total"]),
        ship_total,
        "the confirm priced what was shipped\n{}",
        run.ctx()
    );
    assert!(p["digest_chars"].as_u64().unwrap_or(0) > 0, "{}", run.ctx());
    assert_eq!(p["label_is_gif"], true, "{}", run.ctx());
    assert_eq!(
        p["label_bytes"].as_u64(),
        Some(label_bytes(&results) as u64),
        "{}",
        run.ctx()
    );
}

/// The number the track-only drivers (darbiadev-ups, shipit) ask for.
fn first_number() -> String {
    format!("1Z{}0300000001", EAST.shipper)
}

/// suds 1.1.2 with UPS's RateWS.wsdl (python-ups 0.0.4's copy): SOAP ProcessRate, unmarshalled
/// by suds against the WSDL's schema.
#[test]
fn suds_wsdl_strict_soap_rate_through_proxy() {
    suds_wsdl_strict_soap_rate_through_proxy_via(Via::Url);
}

fn suds_wsdl_strict_soap_rate_through_proxy_via(via: Via) {
    let py = python_with(&["suds", "ups"]);
    let run = run_driver(&py, "suds_rate_driver.py", via);
    let p = &run.parsed;
    let (rates, _) = run.check_calls_no_ship(1, 0);
    let rated = run.replay(&rates[0]);
    let shipment = one(&rated["RateResponse"]["RatedShipment"]);
    assert_eq!(p["rate_status_code"], "1", "{}", run.ctx());
    run.assert_rate("03", money(&shipment["TotalCharges"]));
}

/// zeep 4.2.1 (strict) with UPS's RateWS.wsdl (python-ups 0.0.4's copy): SOAP ProcessRate,
/// parsed into zeep's typed objects; unknown or misplaced elements are errors.
#[test]
fn zeep_wsdl_strict_soap_rate_through_proxy() {
    zeep_wsdl_strict_soap_rate_through_proxy_via(Via::Url);
}

fn zeep_wsdl_strict_soap_rate_through_proxy_via(via: Via) {
    let py = python_with(&["zeep", "ups"]);
    let run = run_driver(&py, "zeep_rate_driver.py", via);
    let p = &run.parsed;
    let (rates, _) = run.check_calls_no_ship(1, 0);
    let rated = run.replay(&rates[0]);
    let shipment = one(&rated["RateResponse"]["RatedShipment"]);
    assert_eq!(p["rate_status_code"], "1", "{}", run.ctx());
    run.assert_rate("03", money(&shipment["TotalCharges"]));
    assert!(
        p["rate_packages"].as_u64().unwrap_or(0) >= 1,
        "RatedPackage (required by the 2007 schema)\n{}",
        run.ctx()
    );
}

/// karrio.ups 2023.3 (target/client-venv2): SOAP Rate and Ship into generated classes, then
/// header-style JSON track of the shipped number into karrio's TrackingDetails.
#[test]
fn karrio_soap_rate_ship_and_header_json_track_through_proxy() {
    karrio_soap_rate_ship_and_header_json_track_through_proxy_via(Via::Url);
}

fn karrio_soap_rate_ship_and_header_json_track_through_proxy_via(via: Via) {
    let py = python_in(
        "target/client-venv2",
        &["karrio", "karrio.mappers.ups", "ups_lib"],
    );
    let run = run_driver(&py, "karrio_driver.py", via);
    let p = &run.parsed;
    let (rates, ship) = run.check_calls(1);
    let ground = run.expected_ground(&rates[0]);
    // karrio (like purplship) takes the negotiated total when there is one.
    let expected = negotiated_or_list(&ground);
    run.assert_rate("ups_ground", expected);
    let tracks = run.track_calls();
    assert_eq!(tracks.len(), 1, "one REST track call\n{}", run.ctx());
    let (track_tn, status, status_type, activities) = run.expected_track(&tracks[0]);
    let (_, tn) = run.expected_ship(&ship);
    assert_eq!(p["tracking_number"], tn.as_str(), "{}", run.ctx());
    assert_eq!(p["shipment_id"], tn.as_str(), "{}", run.ctx());
    assert_eq!(p["label_is_pdf"], true, "{}", run.ctx());
    assert_eq!(p["track_number"], track_tn.as_str(), "{}", run.ctx());
    assert_eq!(
        track_tn,
        tn,
        "karrio tracked the number it shipped\n{}",
        run.ctx()
    );
    assert_eq!(
        p["track_activity_count"].as_u64(),
        Some(activities as u64),
        "{}",
        run.ctx()
    );
    assert_eq!(p["track_first_event"], status.as_str(), "{}", run.ctx());
    assert_eq!(
        p["track_delivered"],
        status_type == "D",
        "delivered iff an activity has status type D (the first one here)\n{}",
        run.ctx()
    );
    assert!(
        p["messages"].as_array().is_some_and(Vec::is_empty),
        "no error messages\n{}",
        run.ctx()
    );
}

/// py-ups-rest 0.0.5: header-style JSON ship, then track of the shipped number.
#[test]
fn py_ups_rest_header_json_ship_and_track_through_proxy() {
    py_ups_rest_header_json_ship_and_track_through_proxy_via(Via::Url);
}

fn py_ups_rest_header_json_ship_and_track_through_proxy_via(via: Via) {
    let py = python_with(&["pyups", "requests"]);
    let run = run_driver(&py, "py_ups_rest_driver.py", via);
    let p = &run.parsed;
    let (_, ship) = run.check_calls(0);
    let tracks = run.track_calls();
    assert_eq!(tracks.len(), 1, "one REST track call\n{}", run.ctx());
    let (track_tn, status, status_type, activities) = run.expected_track(&tracks[0]);
    let (results, tn) = run.expected_ship(&ship);
    assert_eq!(p["shipment_id"], tn.as_str(), "{}", run.ctx());
    assert_eq!(p["tracking_number"], tn.as_str(), "{}", run.ctx());
    assert_eq!(
        num(&p["ship_total"]),
        money(&results["ShipmentCharges"]["TotalCharges"]),
        "{}",
        run.ctx()
    );
    assert_eq!(p["label_is_gif"], true, "{}", run.ctx());
    assert_eq!(
        p["label_bytes"].as_u64(),
        Some(label_bytes(&results) as u64),
        "{}",
        run.ctx()
    );
    assert_eq!(
        track_tn,
        tn,
        "the shipped number was tracked\n{}",
        run.ctx()
    );
    assert_eq!(p["track_number"], track_tn.as_str(), "{}", run.ctx());
    assert_eq!(p["track_status"], status.as_str(), "{}", run.ctx());
    assert_eq!(
        p["track_status_type"],
        status_type.as_str(),
        "{}",
        run.ctx()
    );
    assert_eq!(
        p["track_activity_count"].as_u64(),
        Some(activities as u64),
        "{}",
        run.ctx()
    );
}

/// darbiadev-ups 0.6.5: legacy JSON /rest/Track, parsed by its parse_tracking_response
/// (which needs Shipment/ReferenceNumber and Package/ReferenceNumber).
#[test]
fn darbiadev_ups_legacy_json_track_through_proxy() {
    darbiadev_ups_legacy_json_track_through_proxy_via(Via::Url);
}

fn darbiadev_ups_legacy_json_track_through_proxy_via(via: Via) {
    let py = python_with(&["darbiadev_ups", "requests"]);
    let run = run_driver(&py, "darbiadev_ups_driver.py", via);
    let p = &run.parsed;
    let (_, tracks) = run.check_calls_no_ship(0, 1);
    let (track_tn, status, _, _) = run.expected_track(&tracks[0]);
    assert_eq!(track_tn, first_number(), "{}", run.ctx());
    assert_eq!(p["track_number"], first_number().as_str(), "{}", run.ctx());
    assert_eq!(
        p["track_packages"],
        serde_json::json!([first_number()]),
        "{}",
        run.ctx()
    );
    assert_eq!(
        p["track_status"],
        status.as_str(),
        "Package/Activity[0]/Status/Description\n{}",
        run.ctx()
    );
}

/// ups-shipping 1.0.0 (npm): old XML Rate, ShipConfirm + ShipAccept, then Track of the
/// accepted number.
#[test]
fn ups_shipping_old_xml_rate_ship_track_through_proxy() {
    ups_shipping_old_xml_rate_ship_track_through_proxy_via(Via::Url);
}

fn ups_shipping_old_xml_rate_ship_track_through_proxy_via(via: Via) {
    let node = node_with("ups-shipping", "1.0.0");
    let run = run_driver(&node, "ups_shipping_driver.js", via);
    let p = &run.parsed;
    let (rates, ship) = run.check_calls(1);
    let rated = run.replay(&rates[0]);
    let shipment = one(&rated["RateResponse"]["RatedShipment"]);
    run.assert_rate("03", money(&shipment["TotalCharges"]));
    let tracks = run.track_calls();
    assert_eq!(tracks.len(), 1, "one REST track call\n{}", run.ctx());
    let (track_tn, status, status_type, activities) = run.expected_track(&tracks[0]);
    let (results, tn) = run.expected_ship(&ship);
    assert!(p["digest_chars"].as_u64().unwrap_or(0) > 0, "{}", run.ctx());
    assert_eq!(p["shipment_id"], tn.as_str(), "{}", run.ctx());
    assert_eq!(p["tracking_number"], tn.as_str(), "{}", run.ctx());
    assert_eq!(
        num(&p["accept_total"]),
        money(&results["ShipmentCharges"]["TotalCharges"]),
        "{}",
        run.ctx()
    );
    assert_eq!(p["label_is_gif"], true, "{}", run.ctx());
    assert_eq!(
        p["label_bytes"].as_u64(),
        Some(label_bytes(&results) as u64),
        "{}",
        run.ctx()
    );
    assert_eq!(track_tn, tn, "{}", run.ctx());
    assert_eq!(p["track_number"], tn.as_str(), "{}", run.ctx());
    assert_eq!(p["track_status"], status.as_str(), "{}", run.ctx());
    assert_eq!(
        p["track_status_type"],
        status_type.as_str(),
        "{}",
        run.ctx()
    );
    assert_eq!(
        p["track_activity_count"].as_u64(),
        Some(activities as u64),
        "{}",
        run.ctx()
    );
}

/// ups-shipping-api 1.0.0 (npm): legacy JSON /json/Rate (Shop).
#[test]
fn ups_shipping_api_legacy_json_rate_through_proxy() {
    ups_shipping_api_legacy_json_rate_through_proxy_via(Via::Url);
}

fn ups_shipping_api_legacy_json_rate_through_proxy_via(via: Via) {
    let node = node_with("ups-shipping-api", "1.0.0");
    let run = run_driver(&node, "ups_shipping_api_driver.js", via);
    let p = &run.parsed;
    let (rates, _) = run.check_calls_no_ship(1, 0);
    let ground = run.expected_ground(&rates[0]);
    run.assert_rate("03", money(&ground["TotalCharges"]));
    let rated = run.replay(&rates[0]);
    let n = match &rated["RateResponse"]["RatedShipment"] {
        Value::Array(a) => a.len(),
        _ => 1,
    };
    assert_eq!(p["rate_count"].as_u64(), Some(n as u64), "{}", run.ctx());
}

/// shipit 1.2.0 (npm): old XML Track (RequestOption 3), presented as status + activities.
#[test]
fn shipit_old_xml_track_through_proxy() {
    shipit_old_xml_track_through_proxy_via(Via::Url);
}

fn shipit_old_xml_track_through_proxy_via(via: Via) {
    let node = node_with("shipit", "1.2.0");
    let run = run_driver(&node, "shipit_driver.js", via);
    let p = &run.parsed;
    let (_, tracks) = run.check_calls_no_ship(0, 1);
    let (track_tn, _, status_type, activities) = run.expected_track(&tracks[0]);
    assert_eq!(track_tn, first_number(), "{}", run.ctx());
    // shipit maps the first activity's status type: D delivered, P en route, M shipping.
    let expected = match status_type.as_str() {
        "D" => "DELIVERED",
        "P" | "I" => "EN_ROUTE",
        "M" => "SHIPPING",
        _ => "UNKNOWN",
    };
    if status_type != "I" {
        assert_eq!(p["track_status"], expected, "{}", run.ctx());
    }
    assert_eq!(
        p["track_first_status_type"],
        status_type.as_str(),
        "{}",
        run.ctx()
    );
    assert_eq!(
        p["track_activity_count"].as_u64(),
        Some(activities as u64),
        "activities with a date, time and StatusType description\n{}",
        run.ctx()
    );
}

/// Every library above, unpatched: each calls `https://onlinetools.ups.com` as it always did
/// and runs its full checks, as through the plain URL. The test re-runs itself in new network
/// and mount namespaces (`unshare`; CI runs as root) where there is nothing but loopback:
/// first with `HTTPS_PROXY` naming upsbridge and no hosts entry (the libraries that honour
/// it), then with `/etc/hosts` pointing UPS's names at 127.0.0.1, where upsbridge's TLS
/// listener is on port 443.
#[test]
fn every_real_client_runs_unpatched_by_ups_name_over_tls() {
    const INSIDE: &str = "UPSBRIDGE_TEST_IN_NAMESPACE";
    const NAME: &str = "every_real_client_runs_unpatched_by_ups_name_over_tls";
    if std::env::var_os(INSIDE).is_none() {
        let out = Command::new("unshare")
            .args(["--net", "--mount", "--fork", "--"])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env(INSIDE, "1")
            .output()
            .expect("unshare (util-linux) runs");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "inside the namespaces ({}):\n{stdout}\n{stderr}",
            out.status
        );
        return;
    }
    let sh = |program: &str, args: &[&str]| {
        let out = Command::new(program).args(args).output().unwrap();
        assert!(out.status.success(), "{program} {args:?}: {out:?}");
    };
    sh("ip", &["link", "set", "lo", "up"]);
    use std::net::ToSocketAddrs;
    assert!(
        ("onlinetools.ups.com", 443).to_socket_addrs().is_err(),
        "no name service in the namespace: a library can only reach UPS's name through upsbridge"
    );
    type Check = fn(Via);
    // (library, its checks, whether it honours HTTPS_PROXY)
    let libraries: [(&str, Check, bool); 12] = [
        (
            "ClassicUPS3",
            classicups3_old_xml_confirm_and_accept_through_proxy_via,
            true,
        ),
        (
            "ClassicUPS3",
            classicups3_confirm_time_tracking_number_is_empty_until_accept_via,
            true,
        ),
        (
            "purplship",
            purplship_soap_rate_and_ship_through_proxy_via,
            true,
        ),
        (
            "shipping-ups",
            shipping_ups_old_xml_rate_confirm_accept_through_proxy_via,
            false,
        ),
        ("suds", suds_wsdl_strict_soap_rate_through_proxy_via, false),
        ("zeep", zeep_wsdl_strict_soap_rate_through_proxy_via, true),
        (
            "karrio",
            karrio_soap_rate_ship_and_header_json_track_through_proxy_via,
            true,
        ),
        (
            "py-ups-rest",
            py_ups_rest_header_json_ship_and_track_through_proxy_via,
            true,
        ),
        (
            "darbiadev-ups",
            darbiadev_ups_legacy_json_track_through_proxy_via,
            true,
        ),
        (
            "ups-shipping",
            ups_shipping_old_xml_rate_ship_track_through_proxy_via,
            false,
        ),
        (
            "ups-shipping-api",
            ups_shipping_api_legacy_json_rate_through_proxy_via,
            true,
        ),
        ("shipit", shipit_old_xml_track_through_proxy_via, true),
    ];
    for (library, check, honours_proxy) in libraries {
        if honours_proxy {
            eprintln!("{library}: HTTPS_PROXY");
            check(Via::HttpsProxy);
        }
    }
    let hosts = tempdir();
    let file = hosts.path().join("hosts");
    std::fs::write(
        &file,
        "127.0.0.1 localhost\n127.0.0.1 onlinetools.ups.com wwwcie.ups.com\n",
    )
    .unwrap();
    sh("mount", &["--bind", file.to_str().unwrap(), "/etc/hosts"]);
    for (library, check, _) in libraries {
        eprintln!("{library}: hosts file");
        check(Via::HostsFile);
    }
}

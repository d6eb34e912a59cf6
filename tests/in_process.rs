//! The in-process harness: the simulator and `serve` run on threads of the test process (as
//! linkerd2-proxy's `integration` crate runs its proxy), so one behaviour is one short test
//! with no binary to spawn. A panic on either thread is caught and re-raised in the test that
//! started it, when its harness is dropped. The end-to-end suite, which runs the real binary,
//! stays; this one covers behaviours cheaply. (Authorization-code rotation needs the real
//! binary: its helper process is `upsbridge internal-rotate`.)

use std::any::Any;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// A panic payload caught on a harness thread, to re-raise in the test.
type Caught = Arc<Mutex<Option<Box<dyn Any + Send>>>>;

struct Harness {
    proxy: String,
    sim: String,
    http: reqwest::blocking::Client,
    caught: Caught,
    _dir: tempfile::TempDir,
}

const KEY: &str = "INPROCKEY01";
const USER: &str = "inprocuser";
const PASSWORD: &str = "inproc-pass-7Q";

/// Run `body` on a thread of its own; a panic there is kept in `caught`.
fn thread(caught: &Caught, body: impl FnOnce() + Send + 'static) {
    let caught = caught.clone();
    std::thread::spawn(move || {
        if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(body)) {
            *caught.lock().unwrap() = Some(panic);
        }
    });
}

impl Harness {
    /// A simulator and `serve` with one client-credentials account; `ups_extra` goes into
    /// `[ups]`.
    fn start(ups_extra: &str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let caught: Caught = Arc::default();
        let (sim_tx, sim_rx) = mpsc::channel();
        thread(&caught, move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let opts = upsbridge_sim::SimOptions {
                    clients: vec![("inproc-client".into(), "inproc-secret".into())],
                    ..Default::default()
                };
                let running = upsbridge_sim::start("127.0.0.1:0".parse().unwrap(), opts)
                    .await
                    .unwrap();
                sim_tx.send(running.base_url()).unwrap();
                // Dropping `running` would stop the simulator: it lives as long as the thread.
                std::future::pending::<()>().await;
                drop(running)
            })
        });
        let sim: String = sim_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let hash = upsbridge::accounts::password::hash(PASSWORD).unwrap();
        std::fs::write(dir.path().join("secret"), "inproc-secret").unwrap();
        std::fs::write(
            dir.path().join("accounts.toml"),
            format!("[[account]]\nname = \"inproc\"\nups_account_number = \"5Z5Z5Z\"\naccess_license_number = \"{KEY}\"\nuser_id = \"{USER}\"\npassword_hash = \"{hash}\"\nclient_id = \"inproc-client\"\nclient_secret_file = \"secret\"\n"),
        )
        .unwrap();
        let text = format!("[proxy]\nlisten = \"127.0.0.1:0\"\nthreads = 1\n[admin]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"store\"\n[accounts]\nfile = \"accounts.toml\"\n[ups]\nbase_url = \"{sim}\"\n{ups_extra}");
        let config = upsbridge::config::Config::parse(&text, "in-process", dir.path()).unwrap();
        let (serve_tx, serve_rx) = mpsc::channel::<SocketAddr>();
        thread(&caught, move || {
            upsbridge::server::serve_with(config, move |proxy, _admin| {
                serve_tx.send(proxy).unwrap();
            })
            .unwrap();
        });
        let proxy = serve_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        // The addresses are known before pingora's accept loop runs: wait for it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(proxy).is_err() {
            assert!(std::time::Instant::now() < deadline, "serve never listened");
            std::thread::sleep(Duration::from_millis(10));
        }
        Harness {
            proxy: format!("http://{proxy}"),
            sim,
            http: reqwest::blocking::Client::new(),
            caught,
            _dir: dir,
        }
    }

    /// A header-style rate request with these credentials: (status, body).
    fn rate(&self, key: &str, user: &str, password: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/ship/v1801/rating/Rate", self.proxy))
            .header("AccessLicenseNumber", key)
            .header("Username", user)
            .header("Password", password)
            .body(r#"{"RateRequest":{"Request":{"RequestOption":"Rate"},"Shipment":{"Shipper":{"ShipperNumber":"5Z5Z5Z"},"Package":{"PackageWeight":{"Weight":"3"}}}}}"#)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap_or_default())
    }

    /// The REST calls the simulator received.
    fn ups_calls(&self) -> Vec<Value> {
        let all: Vec<Value> = self
            .http
            .get(format!("{}/__sim/requests", self.sim))
            .send()
            .unwrap()
            .json()
            .unwrap();
        all.into_iter()
            .filter(|r| r["path"].as_str().unwrap_or("").starts_with("/api/"))
            .collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(panic) = self.caught.lock().unwrap().take() {
            if !std::thread::panicking() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

#[test]
fn a_header_style_call_reaches_ups_with_a_bearer_and_no_legacy_credential() {
    let h = Harness::start("");
    let (status, body) = h.rate(KEY, USER, PASSWORD);
    assert_eq!(status, 200, "{body}");
    assert!(body["RateResponse"].is_object(), "{body}");
    let calls = h.ups_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["path"], "/api/rating/v2409/Rate");
    let seen = calls[0].to_string();
    assert!(seen.contains("Bearer "), "{seen}");
    assert!(!seen.contains(PASSWORD) && !seen.contains(KEY), "{seen}");
}

#[test]
fn a_wrong_password_is_refused_with_250002_and_nothing_reaches_ups() {
    let h = Harness::start("");
    let (status, body) = h.rate(KEY, USER, "not-the-password");
    assert_eq!(status, 401);
    assert_eq!(body["response"]["errors"][0]["code"], "250002", "{body}");
    assert!(h.ups_calls().is_empty());
}

#[test]
fn a_slow_ups_is_answered_in_time_with_the_real_timeout() {
    let h = Harness::start("request_timeout_ms = 300\n");
    h.http
        .post(format!("{}/__sim/faults", h.sim))
        .json(&serde_json::json!({"latency_ms": 2000}))
        .send()
        .unwrap();
    let started = std::time::Instant::now();
    let (status, body) = h.rate(KEY, USER, PASSWORD);
    assert_eq!(status, 504, "{body}");
    assert!(started.elapsed() < Duration::from_millis(1500));
    let message = body["response"]["errors"][0]["message"].to_string();
    assert!(message.contains("300ms"), "{message}");
}

#[test]
fn a_panic_on_a_harness_thread_fails_the_test_that_started_it() {
    let caught: Caught = Arc::default();
    thread(&caught, || panic!("boom on a harness thread"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while caught.lock().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the panic was not caught"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let h = Harness {
        proxy: String::new(),
        sim: String::new(),
        http: reqwest::blocking::Client::new(),
        caught,
        _dir: tempfile::tempdir().unwrap(),
    };
    let dropped = std::panic::catch_unwind(AssertUnwindSafe(move || drop(h)));
    let payload = dropped.expect_err("the harness re-raises the thread's panic");
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"boom on a harness thread")
    );
}

//! Shared harness for end-to-end tests: the real `upsbridge` binary as
//! simulator and as proxy, on ephemeral loopback ports, with a real sled store
//! in a temp dir and every log line captured to a file the tests can grep.
//! `pg` runs a real PostgreSQL for the PostgreSQL store backend.
#![allow(dead_code)]

pub mod answers;
pub mod pg;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_upsbridge");

/// The legacy credentials and UPS app of one test account.
#[derive(Clone)]
pub struct TestAccount {
    pub name: &'static str,
    pub shipper: &'static str,
    pub access_key: &'static str,
    pub user: &'static str,
    pub password: &'static str,
    pub client_id: &'static str,
    pub client_secret: &'static str,
    pub grant: &'static str,
}

pub const EAST: TestAccount = TestAccount {
    name: "east-warehouse",
    shipper: "9Y9Y9Y",
    access_key: "ACCESSKEY123",
    user: "legacyuser",
    password: "legacypass-Xq7",
    client_id: "east-client",
    client_secret: "east-secret-Zr8PqL",
    grant: "client_credentials",
};

pub const WEST: TestAccount = TestAccount {
    name: "west-warehouse",
    shipper: "8X8X8X",
    access_key: "ACCESSKEY456",
    user: "westuser",
    password: "westpass-Lm3",
    client_id: "west-client",
    client_secret: "west-secret-Ty6WvB",
    grant: "client_credentials",
};

/// A child process killed when dropped, its stderr captured to a file.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Send SIGTERM, as systemd's stop does.
    pub fn sigterm(&self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
    }

    /// Wait for the process to end, at most `within` from `since`; its exit status.
    pub fn wait_exit(&mut self, since: Instant, within: Duration) -> std::process::ExitStatus {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                since.elapsed() < within,
                "still running {:?} after SIGTERM",
                since.elapsed()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The log so far. upsbridge writes its log from a log thread in batches, so a line
    /// logged just before an answer may reach the file just after it: read until the file
    /// has not grown for 50 ms (at most 2 s).
    pub fn log_text(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut text = std::fs::read_to_string(&self.log).unwrap_or_default();
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let now = std::fs::read_to_string(&self.log).unwrap_or_default();
            if now.len() == text.len() || Instant::now() > deadline {
                return now;
            }
            text = now;
        }
    }
}

/// Start `upsbridge ARGS`, wait for `lines` stdout lines, return them.
fn spawn(args: &[&str], env: &[(&str, &str)], log: PathBuf, lines: usize) -> (Proc, Vec<String>) {
    let err = std::fs::File::create(&log).expect("log file");
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdout(Stdio::piped())
        .stderr(err)
        .env("RUST_LOG", "debug,h2=info,hyper=info,hyper_util=info,reqwest=info,sled=info,pingora_core=info,pingora_proxy=info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn upsbridge");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut out = vec![];
    let proc = Proc { child, log };
    while out.len() < lines {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => out.push(l),
            Err(_) => panic!(
                "upsbridge {args:?} printed {out:?} and no more; log:\n{}",
                proc.log_text()
            ),
        }
    }
    (proc, out)
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("upsbridge-test-")
        .tempdir()
        .expect("tempdir")
}

/// The UPS simulator as a separate process.
pub struct Sim {
    pub proc: Proc,
    pub url: String,
    http: reqwest::blocking::Client,
}

impl Sim {
    pub fn start(dir: &Path, clients: &[&TestAccount], token_ttl: u64) -> Sim {
        let mut args = vec!["sim".to_string(), "--listen".into(), "127.0.0.1:0".into()];
        for c in clients {
            args.push("--client".into());
            args.push(format!("{}:{}", c.client_id, c.client_secret));
        }
        args.push("--token-ttl".into());
        args.push(token_ttl.to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (proc, lines) = spawn(&args, &[], dir.join("sim.log"), 1);
        let url = lines[0]
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("sim first line: {}", lines[0]))
            .to_string();
        Sim {
            proc,
            url,
            http: reqwest::blocking::Client::new(),
        }
    }

    pub fn requests(&self) -> Vec<Value> {
        self.http
            .get(format!("{}/__sim/requests", self.url))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    /// Requests to the REST API only (not OAuth).
    pub fn api_requests(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["path"].as_str().unwrap_or("").starts_with("/api/"))
            .collect()
    }

    pub fn clear(&self) {
        self.http
            .delete(format!("{}/__sim/requests", self.url))
            .send()
            .unwrap();
    }

    pub fn stats(&self) -> Value {
        self.http
            .get(format!("{}/__sim/stats", self.url))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    pub fn token_requests(&self, grant: &str) -> u64 {
        self.stats()["token_requests"][grant].as_u64().unwrap_or(0)
    }

    /// Send a recorded REST call (from [`Sim::api_requests`]) again, straight to the
    /// simulator with a token of `a`'s app: UPS's answer to it, the oracle for what the
    /// legacy client should have been told.
    pub fn replay(&self, a: &TestAccount, call: &Value) -> Value {
        let token: Value = self
            .http
            .post(format!("{}/security/v1/oauth/token", self.url))
            .basic_auth(a.client_id, Some(a.client_secret))
            .header("x-merchant-id", a.shipper)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .unwrap()
            .json()
            .unwrap();
        let bearer = token["access_token"].as_str().expect("sim token");
        let path = call["path"].as_str().unwrap_or("");
        let query = call["query"].as_str().unwrap_or("");
        let url = if query.is_empty() {
            format!("{}{path}", self.url)
        } else {
            format!("{}{path}?{query}", self.url)
        };
        let method =
            reqwest::Method::from_bytes(call["method"].as_str().unwrap().as_bytes()).unwrap();
        let resp = self
            .http
            .request(method, url)
            .bearer_auth(bearer)
            .header("transId", "replay")
            .header("transactionSrc", "upsbridge-tests")
            .header("Content-Type", "application/json")
            .body(call["body"].as_str().unwrap_or("").to_string())
            .send()
            .unwrap();
        assert!(
            resp.status().is_success(),
            "replay of {call} answered {}",
            resp.status()
        );
        resp.json().unwrap()
    }

    pub fn faults(&self, faults: Value) {
        let r = self
            .http
            .post(format!("{}/__sim/faults", self.url))
            .json(&faults)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "setting faults: {}", r.status());
    }

    pub fn clear_faults(&self) {
        self.http
            .delete(format!("{}/__sim/faults", self.url))
            .send()
            .unwrap();
    }
}

/// Write an account map for these accounts (password hashes made by the binary itself).
pub fn write_map(path: &Path, accounts: &[&TestAccount]) {
    let mut text = String::from("# test account map\n");
    for a in accounts {
        text.push_str(&format!(
            "\n[[account]]\nname = \"{}\"\nups_account_number = \"{}\"\naccess_license_number = \"{}\"\nuser_id = \"{}\"\npassword_hash = \"{}\"\nclient_id = \"{}\"\nclient_secret_env = \"{}\"\ngrant = \"{}\"\n",
            a.name, a.shipper, a.access_key, a.user, hash_password(a.password), a.client_id, secret_env(a), a.grant
        ));
    }
    std::fs::write(path, text).unwrap();
}

pub fn secret_env(a: &TestAccount) -> String {
    format!(
        "UPSBRIDGE_TEST_SECRET_{}",
        a.name.replace('-', "_").to_uppercase()
    )
}

/// `upsbridge accounts hash-password`, as ops would run it.
/// The admin password every test config sets (`[admin] password_hash`).
pub const ADMIN_PASSWORD: &str = "admin-pw-Kd82";

/// Its hash, made once per test binary.
pub fn admin_password_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password(ADMIN_PASSWORD))
}

pub fn hash_password(password: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(["accounts", "hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The proxy (`upsbridge serve`) as a separate process.
pub struct Proxy {
    pub proc: Proc,
    /// Where tests send legacy requests: a recording relay in front of the proxy, so that
    /// every answer is checked against the legacy schemas when the `Proxy` is dropped.
    pub url: String,
    /// The proxy's own listener (for tests about its sockets: accept, refuse, close).
    pub direct_url: String,
    pub relay: answers::Relay,
    pub admin: String,
    /// The TLS listener (`https://ADDR`), when the config has `tls_listen`.
    pub tls_url: Option<String>,
    pub dir: PathBuf,
    pub http: reqwest::blocking::Client,
}

/// Extra `[ups]` settings for a test config.
pub const FAST_TIMEOUTS: &str =
    "request_timeout_ms = 3000\ntoken_timeout_ms = 2000\nconnect_timeout_ms = 1000\n";

impl Proxy {
    /// Config + map in `dir`, secrets in the environment, started and ready.
    pub fn start(dir: &Path, sim: &Sim, accounts: &[&TestAccount], ups_extra: &str) -> Proxy {
        write_map(&dir.join("accounts.toml"), accounts);
        Proxy::start_with_map(dir, sim, accounts, ups_extra)
    }

    pub fn config_text(sim_url: &str, ups_extra: &str) -> String {
        format!(
            "[proxy]\nlisten = \"127.0.0.1:0\"\nthreads = 2\nshutdown_grace_secs = 1\n[admin]\nlisten = \"127.0.0.1:0\"\npassword_hash = \"{}\"\n[store]\npath = \"store\"\n[accounts]\nfile = \"accounts.toml\"\n[ups]\nbase_url = \"{sim_url}\"\n{ups_extra}",
            admin_password_hash()
        )
    }

    pub fn start_with_map(
        dir: &Path,
        sim: &Sim,
        accounts: &[&TestAccount],
        ups_extra: &str,
    ) -> Proxy {
        Proxy::start_with_config(dir, accounts, &Proxy::config_text(&sim.url, ups_extra))
    }

    /// Start with this exact config text (the map must already be in `dir`).
    pub fn start_with_config(dir: &Path, accounts: &[&TestAccount], config: &str) -> Proxy {
        Proxy::start_with_env(dir, accounts, config, &[])
    }

    /// [`Proxy::start_with_config`] with extra environment (e.g. `RUST_LOG=trace`).
    pub fn start_with_env(
        dir: &Path,
        accounts: &[&TestAccount],
        config: &str,
        extra_env: &[(&str, &str)],
    ) -> Proxy {
        std::fs::write(dir.join("upsbridge.toml"), config).unwrap();
        let mut envs: Vec<(String, String)> = accounts
            .iter()
            .map(|a| (secret_env(a), a.client_secret.to_string()))
            .collect();
        envs.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let env: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let config = dir.join("upsbridge.toml");
        let tls = std::fs::read_to_string(&config)
            .unwrap()
            .contains("tls_listen");
        let (proc, lines) = spawn(
            &["serve", "--config", config.to_str().unwrap()],
            &env,
            dir.join("proxy.log"),
            if tls { 3 } else { 2 },
        );
        let tls_url = lines
            .get(2)
            .and_then(|l| l.strip_prefix("tls listening on "))
            .map(str::to_string);
        let direct_url = lines[0]
            .strip_prefix("proxy listening on ")
            .unwrap()
            .to_string();
        let relay = answers::Relay::start(direct_url.trim_start_matches("http://"));
        let url = format!("http://{}", relay.addr);
        let admin = lines[1]
            .strip_prefix("admin listening on ")
            .unwrap()
            .to_string();
        let proxy = Proxy {
            proc,
            url,
            direct_url,
            relay,
            admin,
            tls_url,
            dir: dir.to_path_buf(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        proxy.wait_ready();
        proxy
    }

    /// Wait until the proxy port accepts connections and the admin says ready.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = self.direct_url.trim_start_matches("http://").to_string();
        loop {
            let up = std::net::TcpStream::connect(&addr).is_ok()
                && self
                    .http
                    .get(format!("{}/readyz", self.admin))
                    .send()
                    .is_ok_and(|r| r.status().is_success());
            if up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "proxy not ready; log:\n{}",
                self.proc.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        self.proc.log_text()
    }

    /// The admin listener's `/metrics` text (with the admin password).
    pub fn metrics_text(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.admin))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .unwrap()
            .text()
            .unwrap()
    }

    /// The metrics text once it holds `line`, or after 5 s for the caller's assertion to
    /// show: a request is counted once its last byte is handed over, which may be just after
    /// the client has read it.
    pub fn metrics_text_with(&self, line: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = self.metrics_text();
            if text.contains(line) || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every problem the legacy schemas find in the answers received so far (and stop
    /// recording). Dropping the `Proxy` fails the test on any.
    pub fn answer_problems(&self) -> Vec<String> {
        self.relay.problems()
    }

    /// POST a JSON body to a proxy path (a body dialect's endpoint).
    pub fn post_json(&self, path: &str, body: &Value) -> reqwest::blocking::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .unwrap()
    }

    /// The text of an admin page (`/` is the ops page), with the admin password.
    pub fn admin_text(&self, path: &str) -> String {
        self.http
            .get(format!("{}{path}", self.admin))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .unwrap()
            .text()
            .unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let problems = self.relay.problems();
        assert!(
            problems.is_empty(),
            "{} answer(s) a strict legacy client would reject:\n{}",
            problems.len(),
            problems.join("\n\n")
        );
    }
}

/// Request helpers for the two JSON dialects.
pub fn header_request(
    http: &reqwest::blocking::Client,
    method: reqwest::Method,
    url: &str,
    a: &TestAccount,
    body: Option<&Value>,
) -> reqwest::blocking::Response {
    let mut r = http
        .request(method, url)
        .header("AccessLicenseNumber", a.access_key)
        .header("Username", a.user)
        .header("Password", a.password)
        .header("transId", "t-123")
        .header("transactionSrc", "shopapp");
    if let Some(b) = body {
        r = r.json(b);
    }
    r.send().unwrap()
}

pub fn ups_security(a: &TestAccount) -> Value {
    serde_json::json!({"UsernameToken": {"Username": a.user, "Password": a.password},
                       "ServiceAccessToken": {"AccessLicenseNumber": a.access_key}})
}

/// Assert a forwarded request carries a bearer and no legacy credential anywhere.
pub fn assert_clean_upstream(req: &Value, a: &TestAccount) {
    let headers = req["headers"].as_object().expect("headers");
    let auth = headers
        .get("authorization")
        .and_then(Value::as_str)
        .unwrap_or("");
    assert!(
        auth.starts_with("Bearer ") && auth.len() > 20,
        "bearer: {req}"
    );
    for h in ["accesslicensenumber", "username", "password"] {
        assert!(!headers.contains_key(h), "{h} forwarded: {req}");
    }
    let text = req.to_string();
    for secret in [a.password, a.access_key] {
        assert!(!text.contains(secret), "`{secret}` reached UPS: {req}");
    }
    let body = req["body"].as_str().unwrap_or("");
    assert!(
        !body.contains("UPSSecurity") && !body.contains("\"Security\""),
        "security member forwarded: {body}"
    );
}

pub const NORTH: TestAccount = TestAccount {
    name: "north-dock",
    shipper: "7W7W7W",
    access_key: "ACCESSKEY789",
    user: "northuser",
    password: "northpass-Qd9",
    client_id: "north-client",
    client_secret: "north-secret-Hk2MxV",
    grant: "authorization_code",
};

pub const SOUTH: TestAccount = TestAccount {
    name: "south-dock",
    shipper: "6V6V6V",
    access_key: "ACCESSKEY321",
    user: "southuser",
    password: "southpass-Pw4",
    client_id: "south-client",
    client_secret: "south-secret-Jn5RtC",
    grant: "authorization_code",
};

/// A client that never follows redirects (to look at each hop of the OAuth dance).
pub fn no_redirects() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

thread_local! {
    /// The flow cookie the (simulated) owner's browser got when it started onboarding.
    static FLOW_COOKIE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Start onboarding for `account` as `accounts authorize` does (admin password → start
/// link), then open the start link as the owner's browser; returns UPS's authorize URL.
/// The browser's flow cookie is kept for [`follow_callback`].
pub fn start_authorize(proxy: &Proxy, account: &str) -> String {
    let r = no_redirects()
        .post(format!("{}/accounts/{account}/authorize", proxy.admin))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "authorize start: {}",
        r.text().unwrap_or_default()
    );
    let v: Value = r.json().unwrap();
    open_start_link(v["start_url"].as_str().expect("a start link"))
}

/// The owner's browser opening a start link: keeps the flow cookie, returns UPS's URL.
pub fn open_start_link(start: &str) -> String {
    let r = no_redirects().get(start).send().unwrap();
    assert_eq!(
        r.status(),
        303,
        "start link: {}",
        r.text().unwrap_or_default()
    );
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    let pair = cookie.split(';').next().unwrap().to_string();
    assert!(pair.starts_with("ub_oauth="), "{cookie}");
    FLOW_COOKIE.with(|c| *c.borrow_mut() = pair);
    r.headers()["location"].to_str().unwrap().to_string()
}

/// The owner's browser following UPS's redirect to the callback (with its flow cookie).
pub fn follow_callback(callback: &str) -> reqwest::blocking::Response {
    let cookie = FLOW_COOKIE.with(|c| c.borrow().clone());
    no_redirects()
        .get(callback)
        .header("cookie", cookie)
        .send()
        .unwrap()
}

/// Play the account owner at the simulator's login page: returns the callback URL UPS
/// redirects to (with `code` and `state`).
pub fn log_in_at_ups(authorize_url: &str) -> String {
    let http = no_redirects();
    let page = http.get(authorize_url).send().unwrap();
    assert_eq!(page.status(), 200);
    let url = url::Url::parse(authorize_url).unwrap();
    let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    form.push(("user".into(), "owner".into()));
    form.push(("password".into(), "owner-password".into()));
    let post_url = format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap(),
        url.port().map(|p| format!(":{p}")).unwrap_or_default()
    );
    let r = http
        .post(format!("{post_url}/security/v1/oauth/authorize"))
        .form(&form)
        .send()
        .unwrap();
    assert_eq!(r.status(), 302, "login: {}", r.text().unwrap_or_default());
    r.headers()["location"].to_str().unwrap().to_string()
}

/// Every `/api/accounts` row.
pub fn account_rows(proxy: &Proxy) -> Vec<Value> {
    proxy
        .http
        .get(format!("{}/api/accounts", proxy.admin))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// `/api/accounts` row of `name`.
pub fn account_row(proxy: &Proxy, name: &str) -> Value {
    account_rows(proxy)
        .into_iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no account {name}"))
}

// ---- XML dialects (SOAP, old XML) ---------------------------------------------------------

/// POST raw bytes with the given content type (or none), returning status, headers and text.
pub fn post_raw(
    http: &reqwest::blocking::Client,
    url: &str,
    body: impl Into<Vec<u8>>,
    content_type: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut r = http.post(url).body(body.into());
    if let Some(ct) = content_type {
        r = r.header("content-type", ct);
    }
    let r = r.send().unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().unwrap())
}

/// An old-XML answer that says success (`Response/ResponseStatusCode` 1).
pub fn assert_old_xml_success(doc: &str) {
    assert_eq!(
        xml_text(doc, "Response/ResponseStatusCode").as_deref(),
        Some("1"),
        "{doc}"
    );
}

/// Text of the first element at a path of local names below the document root
/// (namespaces ignored), e.g. `Body/RateResponse/RatedShipment/Service/Code`.
pub fn xml_text(doc: &str, path: &str) -> Option<String> {
    let d = roxmltree::Document::parse(doc).unwrap_or_else(|e| panic!("{e}: {doc}"));
    let mut node = d.root_element();
    for seg in path.split('/') {
        node = node
            .children()
            .find(|c| c.is_element() && c.tag_name().name() == seg)?;
    }
    Some(node.text().unwrap_or("").to_string())
}

/// Where a SOAP fault carries UPS's error: below it, `PrimaryErrorCode/Code`,
/// `PrimaryErrorCode/Description` and `Severity`.
pub const SOAP_FAULT_ERROR: &str = "Body/Fault/detail/Errors/ErrorDetail";

/// The error code of a SOAP fault.
pub fn soap_fault_code(fault: &str) -> Option<String> {
    xml_text(fault, &format!("{SOAP_FAULT_ERROR}/PrimaryErrorCode/Code"))
}

/// Every element at a path (namespaces ignored): their texts.
pub fn xml_all(doc: &str, path: &str) -> Vec<String> {
    let d = roxmltree::Document::parse(doc).unwrap_or_else(|e| panic!("{e}: {doc}"));
    let segs: Vec<&str> = path.split('/').collect();
    let mut nodes = vec![d.root_element()];
    for seg in segs {
        nodes = nodes
            .into_iter()
            .flat_map(|n| {
                n.children()
                    .filter(|c| c.is_element() && c.tag_name().name() == seg)
                    .collect::<Vec<_>>()
            })
            .collect();
    }
    nodes
        .into_iter()
        .map(|n| n.text().unwrap_or("").to_string())
        .collect()
}

/// Namespace URI of the first element at a path (namespaces ignored for matching).
pub fn xml_ns(doc: &str, path: &str) -> Option<String> {
    let d = roxmltree::Document::parse(doc).unwrap();
    let mut node = d.root_element();
    for seg in path.split('/') {
        node = node
            .children()
            .find(|c| c.is_element() && c.tag_name().name() == seg)?;
    }
    node.tag_name().namespace().map(str::to_string)
}

/// A SOAP 1.1 envelope with `UPSSecurity` for `a` around `payload`.
pub fn soap_envelope(a: &TestAccount, payload: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:upss="http://www.ups.com/XMLSchema/XOLTWS/UPSS/v1.0" xmlns:common="http://www.ups.com/XMLSchema/XOLTWS/Common/v1.0">
<soapenv:Header><upss:UPSSecurity><upss:UsernameToken><upss:Username>{}</upss:Username><upss:Password>{}</upss:Password></upss:UsernameToken><upss:ServiceAccessToken><upss:AccessLicenseNumber>{}</upss:AccessLicenseNumber></upss:ServiceAccessToken></upss:UPSSecurity></soapenv:Header>
<soapenv:Body>{payload}</soapenv:Body></soapenv:Envelope>"#,
        a.user, a.password, a.access_key
    )
}

/// The JSON body UPS received in a recorded request.
pub fn sent_json(req: &Value) -> Value {
    serde_json::from_str(req["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

/// Old XML's `AccessRequest` document for `a`.
pub fn access(a: &TestAccount) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<AccessRequest xml:lang=\"en-US\"><AccessLicenseNumber>{}</AccessLicenseNumber><UserId>{}</UserId><Password>{}</Password></AccessRequest>\n",
        a.access_key, a.user, a.password
    )
}

/// An old-XML ShipConfirm for `a` (AccessRequest included).
pub fn confirm(a: &TestAccount) -> String {
    format!(
        "{}<?xml version=\"1.0\"?><ShipmentConfirmRequest><Request><RequestAction>ShipConfirm</RequestAction><RequestOption>nonvalidate</RequestOption></Request><Shipment><Shipper><Name>East</Name><PhoneNumber>3025550100</PhoneNumber><ShipperNumber>{1}</ShipperNumber><Address><AddressLine1>10 Elm Rd</AddressLine1><City>Dover</City><StateProvinceCode>DE</StateProvinceCode><PostalCode>19901</PostalCode><CountryCode>US</CountryCode></Address></Shipper><ShipTo><CompanyName>Acme</CompanyName><PhoneNumber>7755550100</PhoneNumber><Address><AddressLine1>5 Oak Ave</AddressLine1><City>Reno</City><StateProvinceCode>NV</StateProvinceCode><PostalCode>89501</PostalCode><CountryCode>US</CountryCode></Address></ShipTo><PaymentInformation><Prepaid><BillShipper><AccountNumber>{1}</AccountNumber></BillShipper></Prepaid></PaymentInformation><Service><Code>03</Code></Service><Package><PackagingType><Code>02</Code></PackagingType><PackageWeight><UnitOfMeasurement><Code>LBS</Code></UnitOfMeasurement><Weight>5</Weight></PackageWeight></Package></Shipment><LabelSpecification><LabelPrintMethod><Code>GIF</Code></LabelPrintMethod></LabelSpecification></ShipmentConfirmRequest>",
        access(a),
        a.shipper
    )
}

/// An old-XML ShipAccept of `digest` for `a` (AccessRequest included).
pub fn accept(a: &TestAccount, digest: &str) -> String {
    format!(
        "{}<?xml version=\"1.0\"?><ShipmentAcceptRequest><Request><RequestAction>ShipAccept</RequestAction></Request><ShipmentDigest>{digest}</ShipmentDigest></ShipmentAcceptRequest>",
        access(a)
    )
}

/// POST an old-XML request; asserts HTTP 200 and `ResponseStatusCode` 1.
pub fn old_xml(proxy: &Proxy, svc: &str, body: String) -> String {
    let (status, _, text) = post_raw(
        &proxy.http,
        &format!("{}/ups.app/xml/{svc}", proxy.url),
        body,
        Some("application/x-www-form-urlencoded"),
    );
    assert_eq!(status, 200, "{text}");
    assert_old_xml_success(&text);
    text
}

/// How many ship calls reached the simulator.
pub fn ships(sim: &Sim) -> usize {
    sim.api_requests()
        .iter()
        .filter(|r| r["path"].as_str().unwrap_or("").ends_with("/ship"))
        .count()
}

/// A header-style Track request as `a`.
pub fn track(proxy: &Proxy, a: &TestAccount) -> reqwest::blocking::Response {
    header_request(
        &proxy.http,
        reqwest::Method::GET,
        &format!("{}/track/v1/details/1Z7W7W7W0300000001", proxy.url),
        a,
        None,
    )
}

/// A legacy JSON Ship request for `a` (one package, GIF label).
pub fn ship_json(a: &TestAccount) -> Value {
    serde_json::json!({"UPSSecurity": ups_security(a), "ShipmentRequest": {"Request": {"RequestOption": "nonvalidate"},
        "Shipment": {"Description": "parts",
            "Shipper": {"Name": "East", "ShipperNumber": a.shipper, "Address": {"AddressLine": ["10 Elm Rd"], "City": "Dover", "StateProvinceCode": "DE", "PostalCode": "19901", "CountryCode": "US"}},
            "ShipTo": {"Name": "Acme", "Address": {"AddressLine": ["5 Oak Ave"], "City": "Reno", "StateProvinceCode": "NV", "PostalCode": "89501", "CountryCode": "US"}},
            "PaymentInformation": {"ShipmentCharge": {"Type": "01", "BillShipper": {"AccountNumber": a.shipper}}},
            "Service": {"Code": "03"},
            "Package": {"Packaging": {"Code": "02"}, "PackageWeight": {"UnitOfMeasurement": {"Code": "LBS"}, "Weight": "5"}}},
        "LabelSpecification": {"LabelImageFormat": {"Code": "GIF"}}}})
}

/// Rotation helpers that are children of `pid` right now.
pub fn helpers_of(pid: u32) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, after)| after.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            ppid == Some(pid) && String::from_utf8_lossy(&cmdline).contains("internal-rotate")
        })
        .count()
}

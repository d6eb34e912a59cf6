//! TLS for programs with UPS's host names built in (issue 9): the private CA and its name
//! constraints, the TLS listener, CONNECT tunnels, leaf renewal under load and the loop guard.
//! Real binary, real TLS (rustls on both sides), the simulator as UPS.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

const UPS: &str = "onlinetools.ups.com";
const CIE: &str = "wwwcie.ups.com";

fn tls_init(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "tls".to_string(),
        "init".to_string(),
        "--config".to_string(),
        dir.join("upsbridge.toml").display().to_string(),
    ];
    for n in extra {
        args.push("--name".into());
        args.push(n.to_string());
    }
    std::process::Command::new(BIN)
        .args(&args)
        .output()
        .unwrap()
}

fn pem_certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .unwrap()
}

/// rustls's WebPKI verifier (what browsers-grade clients do) with only our CA trusted.
fn verify(ca_pem: &[u8], chain: &[CertificateDer<'static>], name: &str) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(ca_pem) {
        roots.add(c).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
    verifier
        .verify_server_cert(
            &chain[0],
            &chain[1..],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn config_with(sim: &Sim, proxy_extra: &str, tls_extra: &str) -> String {
    Proxy::config_text(&sim.url, FAST_TIMEOUTS).replace("[admin]", &format!("{proxy_extra}[admin]"))
        + &format!("[tls]\ndir = \"tls\"\n{tls_extra}")
}

/// A blocking client that trusts only the CA in `ca_pem` and reaches UPS's name at `addr`.
fn ups_client(ca_pem: Option<&[u8]>, addr: &str) -> reqwest::blocking::Client {
    let mut b = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .resolve(UPS, addr.parse().unwrap());
    if let Some(pem) = ca_pem {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(pem).unwrap());
    }
    b.build().unwrap()
}

fn track(
    http: &reqwest::blocking::Client,
    url: &str,
) -> reqwest::Result<reqwest::blocking::Response> {
    http.get(format!("{url}/track/v1/details/1Z12345E0205271688"))
        .header("AccessLicenseNumber", EAST.access_key)
        .header("Username", EAST.user)
        .header("Password", EAST.password)
        .send()
}

/// A simulator and a proxy with `tls init` done first: (dir, sim, proxy, the CA's PEM).
fn tls_env(proxy_extra: &str, tls_extra: &str) -> (tempfile::TempDir, Sim, Proxy, Vec<u8>) {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    write_map(&dir.path().join("accounts.toml"), &[&EAST]);
    let config = config_with(&sim, proxy_extra, tls_extra);
    std::fs::write(dir.path().join("upsbridge.toml"), &config).unwrap();
    assert!(tls_init(dir.path(), &[]).status.success());
    let proxy = Proxy::start_with_env(dir.path(), &[&EAST], &config, &[]);
    let ca = std::fs::read(dir.path().join("tls/ca.pem")).unwrap();
    (dir, sim, proxy, ca)
}

/// The TLS listener's `IP:PORT`, and its port.
fn tls_listener(proxy: &Proxy) -> (String, String) {
    let addr = proxy.tls_url.as_ref().expect("a TLS listener");
    let addr = addr.trim_start_matches("https://").to_string();
    let port = addr.rsplit(':').next().unwrap().to_string();
    (addr, port)
}

#[test]
fn tls_init_makes_a_ca_limited_to_ups_names_and_never_replaces_it() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    std::fs::write(dir.path().join("upsbridge.toml"), config_with(&sim, "", "")).unwrap();
    let out = tls_init(dir.path(), &["ups.internal.example", "10.1.2.3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let ca_path = stdout.lines().last().unwrap().trim().to_string();
    let tls = dir.path().join("tls");
    assert_eq!(Path::new(&ca_path), tls.join("ca.pem"));
    use std::os::unix::fs::PermissionsExt;
    for (file, mode) in [("ca.key", 0o600), ("leaf.key", 0o600)] {
        let m = std::fs::metadata(tls.join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(m, mode, "{file}");
    }
    assert_eq!(
        std::fs::metadata(&tls).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let ca_pem = std::fs::read(&ca_path).unwrap();
    let ca_key = std::fs::read(tls.join("ca.key")).unwrap();
    let leaf = pem_certs(&std::fs::read(tls.join("leaf.pem")).unwrap());
    // The issued leaf verifies for every name it was made for.
    for name in [UPS, "wwwcie.ups.com", "ups.internal.example", "10.1.2.3"] {
        verify(&ca_pem, &leaf, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(verify(&ca_pem, &leaf, "www.google.com").is_err());

    // A certificate made by hand with the CA's own key for another site: WebPKI refuses it
    // (name constraints), for a DNS name and for an IP address alike.
    let key = rcgen::KeyPair::from_pem(&String::from_utf8(ca_key.clone()).unwrap()).unwrap();
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(&String::from_utf8(ca_pem.clone()).unwrap(), &key).unwrap();
    for forged_name in ["www.google.com", "login.ups.com.evil.example", "192.0.2.7"] {
        let params = rcgen::CertificateParams::new(vec![forged_name.to_string()]).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let forged = params.signed_by(&leaf_key, &issuer).unwrap();
        let chain = vec![forged.der().clone(), pem_certs(&ca_pem)[0].clone()];
        let e = verify(&ca_pem, &chain, forged_name).expect_err(forged_name);
        assert!(e.to_lowercase().contains("name"), "{forged_name}: {e}");
    }

    // Running init again keeps the CA (clients trust it) and refuses a name it cannot cover.
    let again = tls_init(dir.path(), &[]);
    assert!(again.status.success());
    assert_eq!(std::fs::read(&ca_path).unwrap(), ca_pem);
    assert_eq!(std::fs::read(tls.join("ca.key")).unwrap(), ca_key);
    let outside = tls_init(dir.path(), &["other.example"]);
    assert!(!outside.status.success());
    let err = String::from_utf8_lossy(&outside.stderr);
    assert!(err.contains("outside its name constraints"), "{err}");
    assert_eq!(std::fs::read(&ca_path).unwrap(), ca_pem);
}

#[test]
fn a_client_calling_ups_by_name_reaches_upsbridge_over_tls_and_an_untrusting_one_fails() {
    let (_dir, sim, proxy, ca) = tls_env("tls_listen = \"127.0.0.1:0\"\n", "");
    let (addr, port) = tls_listener(&proxy);
    let url = format!("https://{UPS}:{port}");
    let r = track(&ups_client(Some(&ca), &addr), &url).unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().contains("trackResponse"));
    // The simulator got the REST call with a bearer and no legacy credential.
    let seen = sim.api_requests();
    let last = seen.last().unwrap();
    assert!(
        last["path"].as_str().unwrap().starts_with("/api/track/"),
        "{last}"
    );
    // Without the CA: the handshake fails, nothing is served.
    let e = track(&ups_client(None, &addr), &url).unwrap_err();
    assert!(
        e.is_connect() || e.to_string().contains("certificate"),
        "{e}"
    );
    assert_eq!(sim.api_requests().len(), seen.len());
    // TLS 1.2 only clients (old stacks) are served too.
    let tls12 = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .no_proxy()
        .resolve(UPS, addr.parse().unwrap())
        .build()
        .unwrap();
    assert_eq!(track(&tls12, &url).unwrap().status(), 200);
}

#[test]
fn connect_tunnels_only_to_ups_names_on_443_and_refuses_everything_else() {
    let (_dir, sim, proxy, ca) = tls_env("connect_proxy = true\n", "");
    // HTTPS_PROXY-style client: CONNECT onlinetools.ups.com:443, TLS inside, no hosts entry.
    let via_proxy = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .proxy(reqwest::Proxy::https(&proxy.direct_url).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = track(&via_proxy, &format!("https://{UPS}")).unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().contains("trackResponse"));
    let before = sim.api_requests().len();
    // Any other target, or another port: 403, and nothing is reached.
    let addr = proxy.direct_url.trim_start_matches("http://").to_string();
    for target in [
        "example.com:443",
        "onlinetools.ups.com:8443",
        "127.0.0.1:22",
        "wwwcie.ups.com",
    ] {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 403"), "{target}: {answer}");
    }
    assert_eq!(sim.api_requests().len(), before);
    let log = proxy.log_text();
    assert!(
        log.contains("CONNECT refused") && log.contains("example.com:443"),
        "{log}"
    );
    let metrics = proxy.metrics_text();
    assert!(
        metrics.contains("upsbridge_connect_refused_total 4"),
        "{metrics}"
    );
}

#[test]
fn connect_is_refused_when_not_enabled() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], FAST_TIMEOUTS);
    let addr = proxy.direct_url.trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "CONNECT {UPS}:443 HTTP/1.1\r\nHost: {UPS}:443\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
}

#[test]
fn serve_renews_a_leaf_near_expiry_under_load_with_no_failed_request() {
    // Leaves live 2 minutes and are renewed in their last 115 s: the first one is renewed
    // about 5 s after it is issued (`tls init` wrote it just before `serve` started).
    let (dir, _sim, proxy, ca) = tls_env(
        "tls_listen = \"127.0.0.1:0\"\n",
        "leaf_validity_secs = 120\nrenew_before_secs = 115\n",
    );
    let first = std::fs::read(dir.path().join("tls/leaf.pem")).unwrap();
    let (addr, port) = tls_listener(&proxy);
    let started = Instant::now();
    let mut served = 0;
    let mut renewed_seen = None;
    // New connections throughout (every handshake picks the current leaf).
    while started.elapsed() < Duration::from_secs(14) {
        let http = ups_client(Some(&ca), &addr);
        let r = track(&http, &format!("https://{UPS}:{port}")).expect("a request failed");
        assert_eq!(r.status(), 200);
        served += 1;
        if renewed_seen.is_none()
            && std::fs::read(dir.path().join("tls/leaf.pem")).unwrap() != first
        {
            renewed_seen = Some(started.elapsed());
        }
    }
    assert!(served > 20, "{served}");
    let when = renewed_seen.expect("the leaf was not renewed");
    assert!(when < Duration::from_secs(12), "{when:?}");
    let log = proxy.log_text();
    assert!(
        log.contains("leaf certificate renewed") && log.contains("TLS certificates reloaded"),
        "{log}"
    );
    // The renewed leaf verifies under the same CA.
    let leaf = pem_certs(&std::fs::read(dir.path().join("tls/leaf.pem")).unwrap());
    verify(&ca, &leaf, UPS).unwrap();
}

#[test]
fn serve_refuses_to_call_itself_and_starts_with_a_pin() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    write_map(&dir.path().join("accounts.toml"), &[&EAST]);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // UPS's base URL names this very listener (as a hosts file would): refused at start.
    let looped = Proxy::config_text(&format!("http://localhost:{port}"), FAST_TIMEOUTS).replace(
        "listen = \"127.0.0.1:0\"\nthreads",
        &format!("listen = \"127.0.0.1:{port}\"\nthreads"),
    );
    std::fs::write(dir.path().join("upsbridge.toml"), &looped).unwrap();
    let out = std::process::Command::new(BIN)
        .args([
            "serve",
            "--config",
            dir.path().join("upsbridge.toml").to_str().unwrap(),
        ])
        .env(secret_env(&EAST), EAST.client_secret)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("upsbridge's own listener") && err.contains("[ups] resolve"),
        "{err}"
    );
    // The UPS name pinned to the real UPS (the simulator here): starts and reaches it.
    let sim_port = sim
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let pinned = Proxy::config_text(&format!("http://{UPS}:{sim_port}"), FAST_TIMEOUTS)
        + &format!("resolve = {{ \"{UPS}\" = [\"127.0.0.1\"] }}\n");
    let proxy = Proxy::start_with_env(dir.path(), &[&EAST], &pinned, &[]);
    let r = track(&proxy.http, &proxy.url).unwrap();
    assert_eq!(r.status(), 200);
}

fn doctor(dir: &Path, env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["doctor", "--config"])
        .arg(dir.join("upsbridge.toml"))
        .env(secret_env(&EAST), EAST.client_secret)
        .env(secret_env(&NORTH), NORTH.client_secret);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The line of `item` in doctor's output (panics when absent).
fn doctor_line<'a>(out: &'a str, item: &str) -> &'a str {
    out.lines()
        .find(|l| l.get(6..).is_some_and(|rest| rest.starts_with(item)))
        .unwrap_or_else(|| panic!("no `{item}` line in:\n{out}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn doctor_passes_a_good_set_up_and_names_each_broken_item_with_its_fix() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    write_map(&dir.path().join("accounts.toml"), &[&EAST]);
    let good = config_with(&sim, "tls_listen = \"127.0.0.1:0\"\n", "");
    let write = |text: &str| std::fs::write(dir.path().join("upsbridge.toml"), text).unwrap();
    write(&good);

    // No certificates yet, for a TLS listener: blocks traffic, says what to run.
    let (ok, out) = doctor(dir.path(), &[]);
    assert!(!ok, "{out}");
    let l = doctor_line(&out, "TLS certificates");
    assert!(
        l.starts_with("FAIL") && l.contains("upsbridge tls init"),
        "{l}"
    );

    // After tls init, against the simulator: nothing blocks (the store does not exist yet).
    assert!(tls_init(dir.path(), &[]).status.success());
    let (ok, out) = doctor(dir.path(), &[]);
    assert!(ok, "{out}");
    for item in [
        "config",
        "account map",
        "proxy listener",
        "TLS leaf",
        "TLS CA key",
        "UPS reachable",
        "clock",
    ] {
        assert!(doctor_line(&out, item).starts_with("ok"), "{item}:\n{out}");
    }
    assert!(
        doctor_line(&out, "TLS name onlinetools.ups.com").starts_with("ok"),
        "{out}"
    );
    assert!(
        doctor_line(&out, "UPS address of 127.0.0.1").contains("not upsbridge itself"),
        "{out}"
    );

    // An expired leaf (made by hand under the CA) blocks traffic; a missing CA key warns.
    let tls = dir.path().join("tls");
    let ca_pem = std::fs::read_to_string(tls.join("ca.pem")).unwrap();
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(tls.join("ca.key")).unwrap()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, &ca_key).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![UPS.to_string()]).unwrap();
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
    params.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let expired = params.signed_by(&leaf_key, &issuer).unwrap();
    std::fs::write(tls.join("leaf.pem"), format!("{}{ca_pem}", expired.pem())).unwrap();
    std::fs::write(tls.join("leaf.key"), leaf_key.serialize_pem()).unwrap();
    std::fs::remove_file(tls.join("ca.key")).unwrap();
    let (ok, out) = doctor(dir.path(), &[]);
    assert!(!ok, "{out}");
    let l = doctor_line(&out, "TLS leaf");
    assert!(
        l.starts_with("FAIL") && l.contains("expired") && l.contains("tls init"),
        "{l}"
    );
    let l = doctor_line(&out, "TLS CA key");
    assert!(
        l.starts_with("WARN") && l.contains("cannot be renewed"),
        "{l}"
    );

    // UPS down, and UPS's name pointing at upsbridge itself.
    let closed = free_port();
    write(&Proxy::config_text(
        &format!("http://127.0.0.1:{closed}"),
        FAST_TIMEOUTS,
    ));
    let (ok, out) = doctor(dir.path(), &[]);
    assert!(!ok, "{out}");
    let l = doctor_line(&out, "UPS reachable");
    assert!(l.starts_with("FAIL") && l.contains("firewall"), "{l}");
    let own = free_port();
    write(
        &Proxy::config_text(&format!("http://localhost:{own}"), FAST_TIMEOUTS).replace(
            "listen = \"127.0.0.1:0\"\nthreads",
            &format!("listen = \"127.0.0.1:{own}\"\nthreads"),
        ),
    );
    let (ok, out) = doctor(dir.path(), &[]);
    assert!(!ok, "{out}");
    let l = doctor_line(&out, "UPS address of localhost");
    assert!(l.starts_with("FAIL") && l.contains("[ups] resolve"), "{l}");
}

#[test]
fn doctor_names_an_account_that_is_not_authorized_at_ups() {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST, &NORTH], 14399);
    write_map(&dir.path().join("accounts.toml"), &[&EAST, &NORTH]);
    let admin = free_port();
    let config = Proxy::config_text(&sim.url, FAST_TIMEOUTS).replace(
        "[admin]\nlisten = \"127.0.0.1:0\"",
        &format!("[admin]\nlisten = \"127.0.0.1:{admin}\""),
    );
    let _proxy = Proxy::start_with_env(dir.path(), &[&EAST, &NORTH], &config, &[]);
    let (ok, out) = doctor(dir.path(), &[("UPSBRIDGE_ADMIN_PASSWORD", ADMIN_PASSWORD)]);
    assert!(!ok, "{out}");
    let l = doctor_line(&out, &format!("account {}", NORTH.name));
    assert!(
        l.starts_with("FAIL")
            && l.contains(&format!("upsbridge accounts authorize {}", NORTH.name)),
        "{l}"
    );
    assert!(
        !doctor_line(&out, &format!("account {}", EAST.name)).starts_with("FAIL"),
        "{out}"
    );
    // The running server's listeners are in use by it: not a problem.
    assert!(
        doctor_line(&out, "admin listener").starts_with("ok"),
        "{out}"
    );
}

/// A client that trusts `ca_pem` and reaches both UPS names at `addr`.
fn both_names_client(ca_pem: &[u8], addr: &str) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem).unwrap())
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .resolve(UPS, addr.parse().unwrap())
        .resolve(CIE, addr.parse().unwrap())
        .build()
        .unwrap()
}

fn track_as(
    http: &reqwest::blocking::Client,
    url: &str,
    who: &TestAccount,
) -> reqwest::blocking::Response {
    http.get(format!("{url}/track/v1/details/1Z12345E0205271688"))
        .header("AccessLicenseNumber", who.access_key)
        .header("Username", who.user)
        .header("Password", who.password)
        .send()
        .unwrap()
}

/// Host-aware routing. Production's and CIE's UPS are two simulators. EAST is a production
/// account (the default: `base_url`), WEST a CIE one (its map entry says so), NORTH an
/// authorization-code production account not yet authorized.
#[test]
fn each_account_reaches_its_environment_and_host_policy_decides_for_a_client_calling_the_other() {
    for policy in ["account", "client"] {
        let dir = tempdir();
        let production = Sim::start(dir.path(), &[&EAST, &WEST, &NORTH], 14399);
        let cie_dir = dir.path().join("cie");
        std::fs::create_dir(&cie_dir).unwrap();
        let cie = Sim::start(&cie_dir, &[&EAST, &WEST, &NORTH], 14399);
        let map = dir.path().join("accounts.toml");
        write_map(&map, &[&EAST, &WEST, &NORTH]);
        let text = std::fs::read_to_string(&map).unwrap().replace(
            &format!("name = \"{}\"\n", WEST.name),
            &format!("name = \"{}\"\nenvironment = \"cie\"\n", WEST.name),
        );
        std::fs::write(&map, text).unwrap();
        let ups = format!(
            "{FAST_TIMEOUTS}cie_url = \"{}\"\nhost_policy = \"{policy}\"\n",
            cie.url
        );
        let config = Proxy::config_text(&production.url, &ups)
            .replace("[admin]", "tls_listen = \"127.0.0.1:0\"\n[admin]")
            + "[tls]\ndir = \"tls\"\n";
        std::fs::write(dir.path().join("upsbridge.toml"), &config).unwrap();
        assert!(tls_init(dir.path(), &[]).status.success());
        let proxy = Proxy::start_with_env(dir.path(), &[&EAST, &WEST, &NORTH], &config, &[]);
        let ca = std::fs::read(dir.path().join("tls/ca.pem")).unwrap();
        let (addr, port) = tls_listener(&proxy);
        let http = both_names_client(&ca, &addr);
        let calls = |sim: &Sim| sim.api_requests().len();

        // Each account, called by upsbridge's own address, goes to its own environment.
        let plain = reqwest::blocking::Client::new();
        assert_eq!(track_as(&plain, &proxy.url, &EAST).status(), 200);
        assert_eq!((calls(&production), calls(&cie)), (1, 0), "{policy}");
        assert_eq!(track_as(&plain, &proxy.url, &WEST).status(), 200);
        assert_eq!((calls(&production), calls(&cie)), (1, 1), "{policy}");
        // Called by its own environment's name: no disagreement.
        let onlinetools = format!("https://{UPS}:{port}");
        let wwwcie = format!("https://{CIE}:{port}");
        assert_eq!(track_as(&http, &onlinetools, &EAST).status(), 200);
        assert_eq!((calls(&production), calls(&cie)), (2, 1), "{policy}");

        // EAST (production) called as wwwcie.ups.com: host_policy decides, and it is counted.
        let issued_by = |sim: &Sim| {
            sim.requests()
                .iter()
                .filter(|r| r["path"] == "/security/v1/oauth/token")
                .count()
        };
        let cie_tokens = issued_by(&cie);
        let r = track_as(&http, &wwwcie, &EAST);
        assert_eq!(r.status(), 200, "{policy}: {}", r.text().unwrap());
        let sent_to = if policy == "account" {
            assert_eq!((calls(&production), calls(&cie)), (3, 1), "{policy}");
            assert_eq!(issued_by(&cie), cie_tokens, "no CIE token for EAST");
            "production"
        } else {
            assert_eq!((calls(&production), calls(&cie)), (2, 2), "{policy}");
            // With a token of CIE's own OAuth server (a production one is worthless there).
            assert_eq!(issued_by(&cie), cie_tokens + 1, "EAST's CIE token");
            "cie"
        };
        let metrics = proxy.metrics_text();
        let line = format!(
            "upsbridge_host_mismatch_total{{account=\"{}\",called=\"cie\",sent_to=\"{sent_to}\"}} 1",
            EAST.name
        );
        assert!(metrics.contains(&line), "{policy}: {metrics}");
        let view: serde_json::Value =
            serde_json::from_str(&proxy.admin_text(&format!("/api/accounts/{}", EAST.name)))
                .unwrap();
        assert_eq!(view["environment"], "production");
        assert_eq!(view["host_policy"], policy);
        assert_eq!(view["host_mismatches"], 1);
        let page = proxy.admin_text(&format!("/accounts/{}", EAST.name));
        assert!(page.contains("1 request(s); [ups] host_policy"), "{page}");

        // An authorization-code account's refresh token belongs to its own environment: under
        // `client` it cannot be sent to the other one, and the client is told why.
        let r = track_as(&http, &wwwcie, &NORTH);
        let body = r.text().unwrap();
        if policy == "client" {
            assert!(body.contains("authorized at UPS production only"), "{body}");
        } else {
            assert!(body.contains("needs authorization"), "{body}");
        }
        assert_eq!(calls(&production) + calls(&cie), 4, "NORTH reached no UPS");
    }
}

/// A TLS client of our own: trusts only `ca_pem`, offers `alpn`, names `name`.
fn handshake(
    ca_pem: &[u8],
    addr: &str,
    name: &str,
    alpn: &[&[u8]],
) -> Result<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(ca_pem) {
        roots.add(c).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let conn = rustls::ClientConnection::new(
        Arc::new(config),
        ServerName::try_from(name.to_string()).unwrap(),
    )
    .unwrap();
    let tcp = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| e.to_string())?;
    }
    Ok(tls)
}

#[test]
fn a_client_that_hangs_up_after_the_handshake_is_no_warning_and_http_1_0_clients_are_served() {
    let (_dir, _sim, proxy, ca) = tls_env("tls_listen = \"127.0.0.1:0\"\n", "");
    let (addr, _) = tls_listener(&proxy);
    // Health checks and probes: a full handshake, then gone at once, many times.
    for _ in 0..20 {
        let tls = handshake(&ca, &addr, UPS, &[b"http/1.1"]).unwrap();
        // Gone with a reset, as load balancers' TLS checks and `openssl s_time` leave.
        socket2::SockRef::from(&tls.sock)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(tls);
    }
    // An old client that offers only HTTP/1.0 by ALPN gets a connection, and an answer.
    let mut old = handshake(&ca, &addr, UPS, &[b"http/1.0"]).unwrap();
    assert_eq!(old.conn.alpn_protocol(), Some(&b"http/1.0"[..]));
    old.write_all(format!("GET /track/v1/details/1Z12345E0205271688 HTTP/1.0\r\nHost: {UPS}\r\nAccessLicenseNumber: {}\r\nUsername: {}\r\nPassword: {}\r\n\r\n", EAST.access_key, EAST.user, EAST.password).as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = old.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    // A client that does not trust the CA is the one warning.
    let untrusting = {
        let other = rcgen::generate_simple_self_signed(vec!["x.example".to_string()]).unwrap();
        handshake(other.cert.pem().as_bytes(), &addr, UPS, &[b"http/1.1"])
    };
    assert!(untrusting.is_err());
    std::thread::sleep(Duration::from_millis(300));
    let log = proxy.log_text();
    let warnings = log.matches("TLS handshake failed").count();
    assert_eq!(warnings, 1, "{log}");
}

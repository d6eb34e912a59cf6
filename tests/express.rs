//! The express lane (src/proxy/express.rs), end to end over real sockets:
//! the real binary, the simulator, and raw HTTP/1.1 written and read by hand, so the bytes
//! on the wire are what is checked. UPS's answers in every framing (a relay re-frames the
//! simulator's), a pooled connection UPS closed, one connection moving from the lane to
//! hyper, pipelined requests, refusals that keep the connection, and body dialects with a
//! next request sent while the first is at UPS.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::Value;

const RATE: &str = r#"{"RateRequest":{"Request":{"RequestOption":"Rate"},"Shipment":{"Shipper":{"ShipperNumber":"9Y9Y9Y","Address":{"AddressLine":["10 Elm Rd"],"City":"Dover","StateProvinceCode":"DE","PostalCode":"19901","CountryCode":"US"}},"ShipTo":{"Name":"Acme","Address":{"AddressLine":["5 Oak Ave"],"City":"Reno","StateProvinceCode":"NV","PostalCode":"89501","CountryCode":"US"}},"Service":{"Code":"02"},"Package":{"PackagingType":{"Code":"02"},"PackageWeight":{"UnitOfMeasurement":{"Code":"LBS"},"Weight":"3"}}}}}"#;

/// A header-style Rate request, `Content-Length` framed.
fn rate(a: &TestAccount, password: &str) -> String {
    format!(
        "POST /ship/v2409/rating/Rate HTTP/1.1\r\nHost: proxy\r\nAccessLicenseNumber: {}\r\nUsername: {}\r\nPassword: {password}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{RATE}",
        a.access_key,
        a.user,
        RATE.len()
    )
}

/// The same request with a chunked body (hyper's to serve).
fn rate_chunked(a: &TestAccount) -> String {
    let (one, two) = RATE.split_at(40);
    format!(
        "POST /ship/v2409/rating/Rate HTTP/1.1\r\nHost: proxy\r\nAccessLicenseNumber: {}\r\nUsername: {}\r\nPassword: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{one}\r\n{:x}\r\n{two}\r\n0\r\n\r\n",
        a.access_key,
        a.user,
        a.password,
        one.len(),
        two.len()
    )
}

/// An HTTP/1.1 answer as read off the wire.
struct Wire {
    status: u16,
    /// The head's lines as sent (names in their case).
    head: Vec<String>,
    body: Vec<u8>,
}

impl Wire {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.iter().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{e}: {:?} {}",
                self.head,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Read one answer: `Content-Length`, chunked, or until the connection closes.
fn read_answer(r: &mut BufReader<TcpStream>) -> Wire {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line: {line:?}"));
    let mut head = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        head.push(l.to_string());
    }
    let mut wire = Wire {
        status,
        head,
        body: Vec::new(),
    };
    if let Some(n) = wire.header("content-length") {
        let mut body = vec![0; n.parse().unwrap()];
        r.read_exact(&mut body).unwrap();
        wire.body = body;
    } else if wire.header("transfer-encoding") == Some("chunked") {
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            let size = line.trim_end().split(';').next().unwrap();
            let size = usize::from_str_radix(size, 16).unwrap();
            let mut chunk = vec![0; size + 2];
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    line.clear();
                    r.read_line(&mut line).unwrap();
                    if line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            r.read_exact(&mut chunk).unwrap();
            wire.body.extend_from_slice(&chunk[..size]);
        }
    } else {
        r.read_to_end(&mut wire.body).unwrap();
    }
    wire
}

fn connect(proxy: &Proxy) -> (TcpStream, BufReader<TcpStream>) {
    let addr = proxy.direct_url.trim_start_matches("http://");
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

fn assert_rated(w: &Wire) {
    assert_eq!(
        w.status,
        200,
        "{:?} {}",
        w.head,
        String::from_utf8_lossy(&w.body)
    );
    assert!(w.json()["RateResponse"].is_object(), "{}", w.json());
}

/// How the relay re-frames the simulator's (`Content-Length`) answers.
#[derive(Clone, Copy, PartialEq)]
enum Reframe {
    /// `Transfer-Encoding: chunked`, in three chunks, one with an extension, and a trailer.
    Chunked,
    /// No length: the body ends when the connection closes.
    UntilClose,
    /// Unchanged, but the connection is closed after each answer without saying so, as a
    /// server closes an idle keep-alive connection.
    CloseAfterEach,
}

/// Between the proxy and the simulator, counting the API calls that reach it.
struct FramingRelay {
    url: String,
    api_calls: Arc<AtomicUsize>,
}

fn read_message(r: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let len = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((head, body))
}

fn start_relay(sim: &Sim, mode: Reframe) -> FramingRelay {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sim_addr = sim.url.trim_start_matches("http://").to_string();
    let api_calls = Arc::new(AtomicUsize::new(0));
    let calls = api_calls.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let (sim_addr, calls) = (sim_addr.clone(), calls.clone());
            std::thread::spawn(move || {
                let mut from_client = BufReader::new(client.try_clone().unwrap());
                let upstream = TcpStream::connect(&sim_addr).unwrap();
                let mut to_sim = upstream.try_clone().unwrap();
                let mut from_sim = BufReader::new(upstream);
                while let Some((head, body)) = read_message(&mut from_client) {
                    if head.contains(" /api/") {
                        calls.fetch_add(1, Ordering::SeqCst);
                    }
                    to_sim.write_all(head.as_bytes()).unwrap();
                    to_sim.write_all(&body).unwrap();
                    let (head, body) = read_message(&mut from_sim).expect("the simulator answers");
                    let kept: String = head
                        .lines()
                        .filter(|l| {
                            mode == Reframe::CloseAfterEach
                                || !l.to_ascii_lowercase().starts_with("content-length:")
                        })
                        .filter(|l| !l.is_empty())
                        .map(|l| format!("{l}\r\n"))
                        .collect();
                    let mut out = kept.into_bytes();
                    match mode {
                        Reframe::Chunked => {
                            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                            let third = body.len() / 3;
                            for (i, part) in
                                [&body[..third], &body[third..2 * third], &body[2 * third..]]
                                    .into_iter()
                                    .enumerate()
                            {
                                let ext = if i == 1 { ";note=x" } else { "" };
                                out.extend_from_slice(
                                    format!("{:x}{ext}\r\n", part.len()).as_bytes(),
                                );
                                out.extend_from_slice(part);
                                out.extend_from_slice(b"\r\n");
                            }
                            out.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
                        }
                        Reframe::UntilClose | Reframe::CloseAfterEach => {
                            out.extend_from_slice(b"\r\n");
                            out.extend_from_slice(&body);
                        }
                    }
                    // Written in two pieces: the proxy must not assume one read.
                    let cut = out.len() / 2;
                    client.write_all(&out[..cut]).unwrap();
                    client.flush().unwrap();
                    std::thread::sleep(Duration::from_millis(2));
                    client.write_all(&out[cut..]).unwrap();
                    if mode != Reframe::Chunked {
                        let _ = client.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                }
            });
        }
    });
    FramingRelay { url, api_calls }
}

/// A simulator, the relay re-framing its answers, and a proxy whose UPS is the relay. Bind
/// it whole (`let scene = …`): a pattern with `..` would drop the simulator at once.
struct Scene {
    relay: FramingRelay,
    proxy: Proxy,
    _sim: Sim,
    _dir: tempfile::TempDir,
}

fn through_relay(mode: Reframe) -> Scene {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    let relay = start_relay(&sim, mode);
    write_map(&dir.path().join("accounts.toml"), &[&EAST]);
    let proxy = Proxy::start_with_config(
        dir.path(),
        &[&EAST],
        &Proxy::config_text(&relay.url, FAST_TIMEOUTS),
    );
    Scene {
        relay,
        proxy,
        _sim: sim,
        _dir: dir,
    }
}

/// A simulator and a proxy in front of it (keep all three bound for the test's length).
fn in_front_of_the_simulator() -> (tempfile::TempDir, Sim, Proxy) {
    let dir = tempdir();
    let sim = Sim::start(dir.path(), &[&EAST], 14399);
    let proxy = Proxy::start(dir.path(), &sim, &[&EAST], FAST_TIMEOUTS);
    (dir, sim, proxy)
}

fn assert_no_hand_over(proxy: &Proxy) {
    let metrics = proxy.metrics_text();
    assert!(
        !metrics.contains("upsbridge_connections_handed_to_hyper_total{"),
        "{metrics}"
    );
}

#[test]
fn a_chunked_ups_answer_reaches_the_client_whole_and_the_connection_carries_on() {
    let scene = through_relay(Reframe::Chunked);
    let (relay, proxy) = (&scene.relay, &scene.proxy);
    let (mut s, mut r) = connect(proxy);
    for _ in 0..3 {
        s.write_all(rate(&EAST, EAST.password).as_bytes()).unwrap();
        let w = read_answer(&mut r);
        assert_rated(&w);
        assert_eq!(
            w.header("transfer-encoding"),
            Some("chunked"),
            "{:?}",
            w.head
        );
        assert!(w.header("x-upsbridge-request-id").is_some(), "{:?}", w.head);
    }
    // A body dialect's call reads the chunked answer whole (trailer and all) to translate it,
    // on the same pooled connection.
    for _ in 0..2 {
        s.write_all(legacy_json_rate(&EAST).as_bytes()).unwrap();
        assert_rated(&read_answer(&mut r));
    }
    assert_eq!(relay.api_calls.load(Ordering::SeqCst), 5);
    // All three went through the lane.
    assert_no_hand_over(proxy);
}

#[test]
fn an_answer_ended_by_ups_closing_reaches_the_client_whole_then_its_connection_closes() {
    let scene = through_relay(Reframe::UntilClose);
    let (relay, proxy) = (&scene.relay, &scene.proxy);
    for _ in 0..2 {
        let (mut s, mut r) = connect(proxy);
        s.write_all(rate(&EAST, EAST.password).as_bytes()).unwrap();
        let w = read_answer(&mut r);
        assert_eq!(w.header("connection"), Some("close"), "{:?}", w.head);
        assert_rated(&w);
    }
    // A body dialect reads such an answer to its end; the client's answer is its own, so
    // the client's connection carries on.
    let (mut s, mut r) = connect(proxy);
    for _ in 0..2 {
        s.write_all(legacy_json_rate(&EAST).as_bytes()).unwrap();
        let w = read_answer(&mut r);
        assert_eq!(w.header("connection"), None, "{:?}", w.head);
        assert_rated(&w);
    }
    assert_eq!(relay.api_calls.load(Ordering::SeqCst), 4);
}

#[test]
fn a_pooled_connection_ups_closed_is_retried_on_a_new_one_and_each_call_reaches_ups_once() {
    let scene = through_relay(Reframe::CloseAfterEach);
    let (relay, proxy) = (&scene.relay, &scene.proxy);
    let (mut s, mut r) = connect(proxy);
    for i in 0..6 {
        // Header style and a body dialect take the same pooled connections.
        let request = if i % 2 == 0 {
            rate(&EAST, EAST.password)
        } else {
            legacy_json_rate(&EAST)
        };
        s.write_all(request.as_bytes()).unwrap();
        assert_rated(&read_answer(&mut r));
        // Let the relay's close reach the proxy's pooled connection first.
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(relay.api_calls.load(Ordering::SeqCst), 6);
    let log = proxy.log_text();
    assert!(!log.contains("refused:"), "{log}");
}

#[test]
fn one_connection_moves_from_the_lane_to_hyper_and_keeps_answering_in_order() {
    let (_dir, sim, proxy) = in_front_of_the_simulator();
    let (mut s, mut r) = connect(&proxy);

    // The lane: header names as UPS writes them, our request id, no hop-by-hop header.
    s.write_all(rate(&EAST, EAST.password).as_bytes()).unwrap();
    let w = read_answer(&mut r);
    assert_rated(&w);
    assert!(
        w.head.iter().any(|l| l.starts_with("Content-Type: ")),
        "{:?}",
        w.head
    );
    assert!(
        w.head
            .iter()
            .any(|l| l.starts_with("X-Upsbridge-Request-Id: ub")),
        "{:?}",
        w.head
    );
    assert!(w.header("connection").is_none(), "{:?}", w.head);

    // Two requests in one write: two answers, in order.
    let two = format!(
        "{}{}",
        rate(&EAST, EAST.password),
        rate(&EAST, EAST.password)
    );
    s.write_all(two.as_bytes()).unwrap();
    let (first, second) = (read_answer(&mut r), read_answer(&mut r));
    assert_rated(&first);
    assert_rated(&second);
    assert_ne!(
        first.header("x-upsbridge-request-id"),
        second.header("x-upsbridge-request-id")
    );

    // A wrong password: refused in REST's shape, and the connection stays.
    s.write_all(rate(&EAST, "not-the-password").as_bytes())
        .unwrap();
    let refused = read_answer(&mut r);
    assert_eq!(refused.status, 401, "{:?}", refused.head);
    assert!(
        refused.json()["response"]["errors"].is_array(),
        "{}",
        refused.json()
    );
    assert!(
        refused
            .head
            .iter()
            .any(|l| l.starts_with("X-Upsbridge-Error: ")),
        "{:?}",
        refused.head
    );

    // A chunked request body: hyper serves it, and everything after it, on this connection.
    s.write_all(rate_chunked(&EAST).as_bytes()).unwrap();
    assert_rated(&read_answer(&mut r));
    s.write_all(rate(&EAST, EAST.password).as_bytes()).unwrap();
    assert_rated(&read_answer(&mut r));

    // Handed over once, at the chunked request.
    let metrics = proxy.metrics_text();
    assert!(
        metrics.contains("upsbridge_connections_handed_to_hyper_total{reason=\"head\"} 1"),
        "{metrics}"
    );
    let calls = sim.api_requests();
    assert_eq!(calls.len(), 5, "{calls:?}");
    for call in &calls {
        assert_clean_upstream(call, &EAST);
    }
    assert!(!proxy.log_text().contains(EAST.password));
}

/// A request of a body dialect: legacy JSON Rate (credentials in `UPSSecurity`).
fn legacy_json_rate(a: &TestAccount) -> String {
    let mut body: Value = serde_json::from_str(RATE).unwrap();
    body["UPSSecurity"] = ups_security(a);
    let body = body.to_string();
    format!(
        "POST /rest/Rate HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn body_dialects_are_answered_on_the_lane_and_a_next_request_sent_early_waits_its_turn() {
    let (_dir, sim, proxy) = in_front_of_the_simulator();
    let (mut s, mut r) = connect(&proxy);

    s.write_all(legacy_json_rate(&EAST).as_bytes()).unwrap();
    let w = read_answer(&mut r);
    assert_rated(&w);
    assert!(w.header("date").is_some(), "{:?}", w.head);
    assert!(
        w.head
            .iter()
            .any(|l| l.starts_with("X-Upsbridge-Request-Id: ub")),
        "{:?}",
        w.head
    );

    // UPS is slow; the client sends its next request while the first is at UPS.
    sim.faults(serde_json::json!({"latency_ms": 400}));
    s.write_all(legacy_json_rate(&EAST).as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    s.write_all(rate(&EAST, EAST.password).as_bytes()).unwrap();
    let (first, second) = (read_answer(&mut r), read_answer(&mut r));
    assert_rated(&first);
    assert_rated(&second);
    sim.clear_faults();

    assert_no_hand_over(&proxy);
    let counted =
        r#"upsbridge_requests_total{dialect="legacy_json",outcome="ok",service="rate"} 2"#;
    let metrics = proxy.metrics_text_with(counted);
    assert!(metrics.contains(counted), "{metrics}");
    let calls = sim.api_requests();
    assert_eq!(calls.len(), 3, "{calls:?}");
    for call in &calls {
        assert_clean_upstream(call, &EAST);
    }
}

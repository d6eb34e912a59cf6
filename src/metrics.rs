//! Prometheus metrics: requests by dialect/service/outcome and upstream latency.
//! Token and map counters are read from their owners at scrape time. Labels are
//! bounded sets (dialect, service, outcome, account name): never a credential.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    /// `upsbridge_request_seconds`'s one series, looked up once.
    upstream_series: prometheus::Histogram,
    /// Tells this registry's cached series from another's (tests make many).
    id: usize,
    dropped_fields: IntCounterVec,
    auth_refusals: IntCounterVec,
    kept_answers: prometheus::IntCounter,
    replayed_answers: prometheus::IntCounter,
    connections_refused: IntCounterVec,
    handed_to_hyper: IntCounterVec,
    connect_refused: prometheus::IntCounter,
    host_mismatches: IntCounterVec,
    /// Per-account traffic for the ops page (not exported: unbounded label sets).
    pub traffic: traffic::Traffic,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "upsbridge_requests_total",
                "Legacy requests by dialect, service and outcome",
            ),
            &["dialect", "service", "outcome"],
        )
        .expect("valid metric");
        let upstream_seconds = HistogramVec::new(
            HistogramOpts::new(
                "upsbridge_request_seconds",
                "Time from request to answer, for requests that reached UPS",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &[],
        )
        .expect("valid metric");
        let dropped_fields = IntCounterVec::new(
            Opts::new(
                "upsbridge_answer_fields_dropped_total",
                "Members of UPS's REST answers left out because the client's legacy schema has no place for them (debug: a high count for a service means REST grew fields the legacy answer cannot carry)",
            ),
            &["dialect", "service"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(requests.clone()))
            .expect("register once");
        registry
            .register(Box::new(dropped_fields.clone()))
            .expect("register once");
        let auth_refusals = IntCounterVec::new(
            Opts::new(
                "upsbridge_auth_refusals_total",
                "Legacy credentials refused, by reason (backing_off: refused unchecked after repeated failures from one address)",
            ),
            &["reason"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(auth_refusals.clone()))
            .expect("register once");
        registry
            .register(Box::new(upstream_seconds.clone()))
            .expect("register once");
        let kept_answers = prometheus::IntCounter::new(
            "upsbridge_answers_kept_total",
            "Answers to ship/void/pickup calls whose client had gone, kept for its retry",
        )
        .expect("valid metric");
        let replayed_answers = prometheus::IntCounter::new(
            "upsbridge_answers_replayed_total",
            "Retried ship/void/pickup calls answered from a kept answer instead of calling UPS again",
        )
        .expect("valid metric");
        let connections_refused = IntCounterVec::new(
            Opts::new(
                "upsbridge_connections_refused_total",
                "Connections closed at accept because the listener had max_connections open",
            ),
            &["listener"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(connections_refused.clone()))
            .expect("register once");
        let handed_to_hyper = IntCounterVec::new(
            Opts::new(
                "upsbridge_connections_handed_to_hyper_total",
                "Proxy connections the express lane handed to hyper, by why: the first request it did not take was a header-style shipment or cancellation (effectful), had an unusual head (head: chunked, Expect, HTTP/1.0, …), was larger than 64 KiB (size), or its body was slower than the head deadline (slow)",
            ),
            &["reason"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(handed_to_hyper.clone()))
            .expect("register once");
        let connect_refused = prometheus::IntCounter::new(
            "upsbridge_connect_refused_total",
            "CONNECT requests refused (a target other than UPS's names on port 443, or CONNECT not enabled)",
        )
        .expect("valid metric");
        let host_mismatches = IntCounterVec::new(
            Opts::new(
                "upsbridge_host_mismatch_total",
                "Requests whose UPS host (TLS name, CONNECT target or Host) is the other environment than their account's, by account, the environment called, and where [ups] host_policy sent them",
            ),
            &["account", "called", "sent_to"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(host_mismatches.clone()))
            .expect("register once");
        for c in [&kept_answers, &replayed_answers, &connect_refused] {
            registry
                .register(Box::new(c.clone()))
                .expect("register once");
        }
        Metrics {
            registry,
            kept_answers,
            replayed_answers,
            connections_refused,
            handed_to_hyper,
            connect_refused,
            host_mismatches,
            traffic: traffic::Traffic::default(),
            requests,
            upstream_series: upstream_seconds.with_label_values::<&str>(&[]),
            id: {
                static IDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
            dropped_fields,
            auth_refusals,
        }
    }

    pub fn count_request(
        &self,
        dialect: &'static str,
        service: &'static str,
        outcome: &'static str,
    ) {
        // Per request: the series is found by the labels' addresses in a small per-thread
        // list, not by hashing three strings and taking the vector's lock.
        thread_local! {
            static SERIES: std::cell::RefCell<Vec<([usize; 4], prometheus::IntCounter)>> =
                const { std::cell::RefCell::new(Vec::new()) };
        }
        let key = [
            self.id,
            dialect.as_ptr() as usize,
            service.as_ptr() as usize,
            outcome.as_ptr() as usize,
        ];
        SERIES.with(|series| {
            let mut series = series.borrow_mut();
            if let Some((_, c)) = series.iter().find(|(k, _)| *k == key) {
                return c.inc();
            }
            let c = self
                .requests
                .with_label_values(&[dialect, service, outcome]);
            c.inc();
            // Bounded: labels are a fixed set; a list grown past it starts again.
            if series.len() >= 256 {
                series.clear();
            }
            series.push((key, c));
        })
    }

    /// A client called the other environment's host than its account's.
    pub fn count_host_mismatch(&self, account: &str, called: &str, sent_to: &str) {
        self.host_mismatches
            .with_label_values(&[account, called, sent_to])
            .inc();
    }

    /// Host mismatches of one account so far (for the ops page).
    pub fn host_mismatches_of(&self, account: &str) -> u64 {
        use prometheus::core::Collector;
        self.host_mismatches
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .filter(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "account" && l.value() == account)
            })
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    pub fn count_kept_answer(&self) {
        self.kept_answers.inc();
    }

    /// A plain connection the express lane handed to hyper (`reason`: a fixed word).
    pub fn count_handed_to_hyper(&self, reason: &'static str) {
        self.handed_to_hyper.with_label_values(&[reason]).inc();
    }

    pub fn count_connection_refused(&self, listener: &str) {
        self.connections_refused
            .with_label_values(&[listener])
            .inc();
    }

    /// Add metrics kept elsewhere (the token broker's counters, the account map's state).
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) {
        if let Err(e) = self.registry.register(collector) {
            tracing::error!(error = %e, "metric not registered");
        }
    }

    pub fn count_connect_refused(&self) {
        self.connect_refused.inc();
    }

    pub fn count_replay(&self) {
        self.replayed_answers.inc();
    }

    pub fn count_auth_refusal(&self, reason: &str) {
        self.auth_refusals.with_label_values(&[reason]).inc();
    }

    /// REST members an answer left out (legacy schema shaping).
    pub fn count_dropped_fields(&self, dialect: &str, service: &str, n: u32) {
        if n > 0 {
            self.dropped_fields
                .with_label_values(&[dialect, service])
                .inc_by(u64::from(n));
        }
    }

    pub fn observe_upstream(&self, took: Duration) {
        self.upstream_series.observe(took.as_secs_f64());
    }

    /// The registry in Prometheus text format, followed by `extra` lines.
    pub fn render(&self, extra: &str) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        let mut s = String::from_utf8(out).expect("prometheus text is UTF-8");
        s.push_str(extra);
        s
    }
}

/// Per-account traffic for the ops page's account view: requests and errors by dialect and
/// service per minute for the last day, recent latencies, and the last refusals. In memory
/// (a restart starts over); bounded per account.
pub mod traffic {
    use std::collections::{BTreeMap, VecDeque};
    use std::sync::Mutex;
    use std::time::Duration;

    use crate::clock::{unix_now, unix_now_coarse};

    use dashmap::DashMap;
    use serde::Serialize;

    /// Minutes kept (one day).
    const MINUTES: u64 = 24 * 60;
    /// Latencies kept for percentiles.
    const LATENCIES: usize = 2048;
    /// Refusals kept.
    const REFUSALS: usize = 10;

    /// (dialect, service) → (requests, errors) in one minute.
    type Minute = BTreeMap<(&'static str, &'static str), (u64, u64)>;

    #[derive(Default)]
    struct Account {
        /// (minute number, its counts), oldest first.
        minutes: VecDeque<(u64, Minute)>,
        latencies_ms: VecDeque<(u64, f64)>,
        refusals: VecDeque<Refusal>,
    }

    /// One refused request, as the account view lists it.
    #[derive(Debug, Clone, Serialize)]
    pub struct Refusal {
        pub at: u64,
        pub dialect: &'static str,
        pub service: &'static str,
        pub reason: String,
    }

    /// Requests and errors of one dialect and service.
    #[derive(Debug, Clone, Serialize, PartialEq, Eq)]
    pub struct Counts {
        pub dialect: &'static str,
        pub service: &'static str,
        pub requests_last_hour: u64,
        pub errors_last_hour: u64,
        pub requests_last_day: u64,
        pub errors_last_day: u64,
    }

    /// The account view's traffic block.
    #[derive(Debug, Clone, Serialize, Default)]
    pub struct Summary {
        pub by_service: Vec<Counts>,
        /// Latency of the last day's requests (ms): p50, p95, p99.
        pub latency_ms: Option<[f64; 3]>,
        pub last_refusals: Vec<Refusal>,
    }

    #[derive(Default)]
    pub struct Traffic {
        accounts: DashMap<String, Mutex<Account>>,
    }

    impl Traffic {
        fn with(&self, account: &str, f: impl FnOnce(&mut Account)) {
            // One lookup per request once the account has traffic; the name is copied only
            // for its first request.
            match self.accounts.get(account) {
                Some(a) => f(&mut a.lock().expect("traffic lock")),
                None => {
                    let a = self.accounts.entry(account.to_string()).or_default();
                    f(&mut a.lock().expect("traffic lock"));
                }
            }
        }

        /// One request of `account` ended (`error`: refused, or UPS answered an error).
        pub fn record(
            &self,
            account: &str,
            dialect: &'static str,
            service: &'static str,
            error: bool,
            took: Duration,
        ) {
            // Per request: the second as of the kernel's tick is all a minute bucket needs.
            let t = unix_now_coarse();
            let minute = t / 60;
            self.with(account, |a| {
                if a.minutes.back().map(|(m, _)| *m) != Some(minute) {
                    a.minutes.push_back((minute, BTreeMap::new()));
                }
                while a
                    .minutes
                    .front()
                    .is_some_and(|(m, _)| *m + MINUTES <= minute)
                {
                    a.minutes.pop_front();
                }
                let (_, bucket) = a.minutes.back_mut().expect("pushed above");
                let c = bucket.entry((dialect, service)).or_default();
                c.0 += 1;
                c.1 += u64::from(error);
                if a.latencies_ms.len() == LATENCIES {
                    a.latencies_ms.pop_front();
                }
                a.latencies_ms.push_back((t, took.as_secs_f64() * 1000.0));
            });
        }

        /// A request of `account` was refused (why, in ops terms; never a credential).
        pub fn refused(
            &self,
            account: &str,
            dialect: &'static str,
            service: &'static str,
            reason: String,
        ) {
            self.with(account, |a| {
                if a.refusals.len() == REFUSALS {
                    a.refusals.pop_front();
                }
                a.refusals.push_back(Refusal {
                    at: unix_now(),
                    dialect,
                    service,
                    reason,
                });
            });
        }

        pub fn summary(&self, account: &str) -> Summary {
            let Some(a) = self.accounts.get(account) else {
                return Summary::default();
            };
            let a = a.lock().expect("traffic lock");
            let t = unix_now();
            let minute = t / 60;
            let mut totals: BTreeMap<(&'static str, &'static str), [u64; 4]> = BTreeMap::new();
            for (m, bucket) in &a.minutes {
                if *m + MINUTES <= minute {
                    continue;
                }
                let in_hour = *m + 60 > minute;
                for (k, (req, err)) in bucket {
                    let c = totals.entry(*k).or_default();
                    c[2] += req;
                    c[3] += err;
                    if in_hour {
                        c[0] += req;
                        c[1] += err;
                    }
                }
            }
            let by_service = totals
                .into_iter()
                .map(|((dialect, service), c)| Counts {
                    dialect,
                    service,
                    requests_last_hour: c[0],
                    errors_last_hour: c[1],
                    requests_last_day: c[2],
                    errors_last_day: c[3],
                })
                .collect();
            let mut day: Vec<f64> = a
                .latencies_ms
                .iter()
                .filter(|(at, _)| *at + MINUTES * 60 > t)
                .map(|(_, ms)| *ms)
                .collect();
            day.sort_by(|x, y| x.total_cmp(y));
            let pct = |p: f64| day[((day.len() - 1) as f64 * p).round() as usize];
            Summary {
                by_service,
                latency_ms: (!day.is_empty()).then(|| [pct(0.5), pct(0.95), pct(0.99)]),
                last_refusals: a.refusals.iter().rev().cloned().collect(),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn counts_by_dialect_and_service_and_percentiles() {
            let t = Traffic::default();
            for i in 0..10 {
                t.record(
                    "east",
                    "soap",
                    "rate",
                    i % 5 == 0,
                    Duration::from_millis(10 + i),
                );
            }
            t.record("east", "xml", "track", false, Duration::from_millis(100));
            t.refused("east", "soap", "rate", "wrong password".into());
            let s = t.summary("east");
            assert_eq!(s.by_service.len(), 2);
            let soap = s.by_service.iter().find(|c| c.dialect == "soap").unwrap();
            assert_eq!(
                (
                    soap.requests_last_hour,
                    soap.errors_last_hour,
                    soap.requests_last_day
                ),
                (10, 2, 10)
            );
            let [p50, _, p99] = s.latency_ms.unwrap();
            assert!(p50 >= 10.0 && p99 >= 99.0, "{p50} {p99}");
            assert_eq!(s.last_refusals.len(), 1);
            assert!(t.summary("west").by_service.is_empty());
        }
    }
}

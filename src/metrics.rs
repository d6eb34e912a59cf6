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
    upstream_seconds: HistogramVec,
    dropped_fields: IntCounterVec,
    auth_refusals: IntCounterVec,
    kept_answers: prometheus::IntCounter,
    replayed_answers: prometheus::IntCounter,
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
        for c in [&kept_answers, &replayed_answers] {
            registry
                .register(Box::new(c.clone()))
                .expect("register once");
        }
        Metrics {
            registry,
            kept_answers,
            replayed_answers,
            requests,
            upstream_seconds,
            dropped_fields,
            auth_refusals,
        }
    }

    pub fn count_request(&self, dialect: &str, service: &str, outcome: &str) {
        self.requests
            .with_label_values(&[dialect, service, outcome])
            .inc();
    }

    pub fn count_kept_answer(&self) {
        self.kept_answers.inc();
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
        self.upstream_seconds
            .with_label_values::<&str>(&[])
            .observe(took.as_secs_f64());
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

//! What the store's callers see of it, as Prometheus metrics: every [`super::Store`] method
//! call counted by backend, operation and outcome and timed, and whether the database
//! answered the last readiness probe. The collectors are made with the store and added to
//! the server's registry (`Metrics::register`). Labels are a backend name and a static
//! operation name: never a key, a value or an account.

use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

use super::StoreError;

/// How one store call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The backend failed or refused (PostgreSQL down, a query error, sled I/O).
    Error,
    /// PostgreSQL did not answer within `[store] timeout_ms`.
    Timeout,
}

impl Outcome {
    pub fn of<T>(result: &Result<T, StoreError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(StoreError::PgTimeout { .. }) => Outcome::Timeout,
            Err(_) => Outcome::Error,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
        }
    }
}

/// The store's metrics (cheap to clone: the vectors share their values).
#[derive(Clone)]
pub struct StoreMetrics {
    operations: IntCounterVec,
    seconds: HistogramVec,
    up: IntGaugeVec,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl StoreMetrics {
    pub fn new() -> StoreMetrics {
        let operations = IntCounterVec::new(
            Opts::new(
                "upsbridge_store_operations_total",
                "Store calls by backend, operation and outcome (ok, error, timeout: PostgreSQL did not answer within [store] timeout_ms)",
            ),
            &["backend", "op", "outcome"],
        )
        .expect("valid metric");
        let seconds = HistogramVec::new(
            HistogramOpts::new(
                "upsbridge_store_operation_seconds",
                "Time a store call took, by backend and operation (failed calls included)",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0, 10.0,
            ]),
            &["backend", "op"],
        )
        .expect("valid metric");
        let up = IntGaugeVec::new(
            Opts::new(
                "upsbridge_store_up",
                "1 when the store answered the last readiness probe (/readyz), 0 when it did not",
            ),
            &["backend"],
        )
        .expect("valid metric");
        StoreMetrics {
            operations,
            seconds,
            up,
        }
    }

    /// The collectors, for the server's registry.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.operations.clone()),
            Box::new(self.seconds.clone()),
            Box::new(self.up.clone()),
        ]
    }

    pub fn record(&self, backend: &str, op: &'static str, outcome: Outcome, took: Duration) {
        self.operations
            .with_label_values(&[backend, op, outcome.as_str()])
            .inc();
        self.seconds
            .with_label_values(&[backend, op])
            .observe(took.as_secs_f64());
    }

    pub fn set_up(&self, backend: &str, up: bool) {
        self.up.with_label_values(&[backend]).set(i64::from(up));
    }

    /// Calls of `op` with `outcome` so far (tests, the ops page).
    pub fn count(&self, backend: &str, op: &str, outcome: Outcome) -> u64 {
        self.operations
            .get_metric_with_label_values(&[backend, op, outcome.as_str()])
            .map_or(0, |c| c.get())
    }
}

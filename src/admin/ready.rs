//! The store's part of `/readyz`: does the store answer a cheap query ([`Store::ping`])
//! within `[store] timeout_ms`? The answer is kept for [`MAX_AGE`], so a load balancer (or
//! several) polling `/readyz` costs the database at most one query per second, and only
//! one probe runs at a time. While a probe runs, a caller whose last answer was "down" gets
//! that at once instead of waiting out a hung database again.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::store::Store;

/// How long a probe's answer stands.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// One probe's answer.
#[derive(Debug, Clone)]
pub struct Probe {
    /// `Err`: why the store did not answer, one line, no password, no URL (PostgreSQL is
    /// named `HOST:PORT/DB`).
    pub answer: Result<(), String>,
    /// When the probe ended (unix seconds, for the ops page).
    pub at_unix: u64,
    at: Instant,
}

pub struct StoreProbe {
    store: Store,
    max_age: Duration,
    last: Mutex<Option<Probe>>,
    /// Held by the one probe running.
    running: tokio::sync::Mutex<()>,
}

impl StoreProbe {
    pub fn new(store: Store) -> StoreProbe {
        StoreProbe::with_max_age(store, MAX_AGE)
    }

    pub fn with_max_age(store: Store, max_age: Duration) -> StoreProbe {
        StoreProbe {
            store,
            max_age,
            last: Mutex::new(None),
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// The last answer, whatever its age (`None` before the first probe).
    pub fn last(&self) -> Option<Probe> {
        self.last.lock().expect("probe lock").clone()
    }

    fn fresh(&self) -> Option<Probe> {
        self.last().filter(|p| p.at.elapsed() < self.max_age)
    }

    /// The store's answer as of at most [`MAX_AGE`] ago: the kept one, or a new probe's.
    pub async fn check(&self) -> Probe {
        if let Some(p) = self.fresh() {
            return p;
        }
        let _running = match self.running.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // Another caller is probing. Known down: say so now (a hung database would
                // make this caller wait the whole timeout too); else wait for its answer.
                if let Some(p) = self.last().filter(|p| p.answer.is_err()) {
                    return p;
                }
                self.running.lock().await
            }
        };
        if let Some(p) = self.fresh() {
            return p;
        }
        let answer = self
            .store
            .ping()
            .await
            .map_err(|e| e.to_string().replace(['\r', '\n'], " "));
        let probe = Probe {
            answer,
            at_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            at: Instant::now(),
        };
        let changed = self
            .last()
            .is_none_or(|p| p.answer.is_ok() != probe.answer.is_ok());
        if changed {
            match &probe.answer {
                Ok(()) => tracing::info!(
                    backend = self.store.backend_name(),
                    "store answers the readiness probe"
                ),
                Err(why) => {
                    tracing::warn!(backend = self.store.backend_name(), error = %why, "store does not answer the readiness probe: /readyz answers 503")
                }
            }
        }
        *self.last.lock().expect("probe lock") = Some(probe.clone());
        probe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sled_is_always_ready_and_the_answer_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s")).await.unwrap();
        let probe = StoreProbe::with_max_age(store.clone(), Duration::from_secs(60));
        assert!(probe.last().is_none());
        for _ in 0..5 {
            assert!(probe.check().await.answer.is_ok());
        }
        let pings = store
            .metrics()
            .count("sled", "ping", crate::store::observe::Outcome::Ok);
        assert_eq!(pings, 1, "one probe while its answer stands");
        assert!(probe.last().is_some());
    }
}

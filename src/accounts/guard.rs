//! Password checks that an attacker cannot turn into a CPU, memory or timing oracle.
//!
//! - Every check that needs argon2 runs it, for a known account or not: an unknown access
//!   key or user is checked against a dummy hash with the same parameters, so the time of a
//!   refusal does not tell a known user from an unknown one.
//! - Failures are counted per (account or attempted login, client address). After
//!   [`FREE_FAILURES`] the next checks from that address for that login are refused at once,
//!   without argon2, for a window that doubles with each further failure (capped at
//!   [`MAX_BACKOFF`]); a success clears it. A password that already verified for the account
//!   (the per-account tag) is still accepted during a backoff, so a working client sharing
//!   an address with a guesser keeps working.
//! - argon2 runs one at a time (its 19 MiB work area is handed back to the system after each
//!   run): memory is bounded whatever the load, and a flood cannot starve other accounts'
//!   first logins for longer than the few checks the backoff lets through.
//! - An account whose password already verified refuses any other password without argon2
//!   (`Accounts::authenticate`): guessing against an account in use costs no CPU or memory.
//!   That refusal waits as long as an argon2 run typically takes ([`LoginGuard::pretend`]),
//!   so it cannot be told from the others by its time either.
//!
//! Never logs or stores a password; the tags are keyed digests (see `password`).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Failures from one address for one login before checks are refused unchecked.
pub const FREE_FAILURES: u32 = 3;
/// Longest backoff window.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Failure records older than this are forgotten (bounds the table under a spray).
const FORGET_AFTER: Duration = Duration::from_secs(900);
/// Most failure records kept; beyond it the oldest half is dropped.
const MAX_RECORDS: usize = 100_000;

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    until: Option<Instant>,
}

/// What the guard decided before any argon2 work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Check the password.
    Check,
    /// Refuse without checking: this address failed too often for this login.
    BackingOff,
}

pub struct LoginGuard {
    failures: DashMap<(String, Option<IpAddr>), Failures>,
    /// One argon2 at a time.
    argon2: tokio::sync::Semaphore,
    /// A hash of a random password with the map's parameters, for unknown logins.
    dummy: String,
    /// How long an argon2 run takes here (µs, moving average).
    typical_micros: std::sync::atomic::AtomicU64,
}

impl Default for LoginGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl LoginGuard {
    pub fn new() -> LoginGuard {
        let random: [u8; 24] = rand::random();
        let started = Instant::now();
        let dummy = super::password::hash(&format!("{random:?}")).unwrap_or_default();
        let took = started.elapsed().as_micros() as u64;
        crate::memory::return_freed_memory();
        LoginGuard {
            failures: DashMap::new(),
            argon2: tokio::sync::Semaphore::new(1),
            dummy,
            typical_micros: std::sync::atomic::AtomicU64::new(took),
        }
    }

    /// May `login` be checked from `peer` now?
    pub fn gate(&self, login: &str, peer: Option<IpAddr>) -> Gate {
        let now = Instant::now();
        match self.failures.get(&(login.to_string(), peer)) {
            Some(f) if f.until.is_some_and(|u| u > now) => Gate::BackingOff,
            _ => Gate::Check,
        }
    }

    /// Count a failed check; returns how long checks from `peer` for `login` now wait.
    pub fn failed(&self, login: &str, peer: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        if self.failures.len() >= MAX_RECORDS {
            self.failures
                .retain(|_, f| now.duration_since(f.last) < FORGET_AFTER / 2);
        }
        let mut f = self
            .failures
            .entry((login.to_string(), peer))
            .or_insert(Failures {
                count: 0,
                last: now,
                until: None,
            });
        if now.duration_since(f.last) > FORGET_AFTER {
            f.count = 0;
        }
        f.count += 1;
        f.last = now;
        let wait = (f.count > FREE_FAILURES).then(|| {
            let doublings = (f.count - FREE_FAILURES - 1).min(16);
            (Duration::from_secs(1) * 2u32.pow(doublings)).min(MAX_BACKOFF)
        });
        f.until = wait.map(|w| now + w);
        wait
    }

    /// A check succeeded: forget this address's failures for this login.
    pub fn succeeded(&self, login: &str, peer: Option<IpAddr>) {
        self.failures.remove(&(login.to_string(), peer));
    }

    /// Run argon2 for `password` against `phc` (the dummy hash when `None`), one at a time,
    /// off the async runtime. `false` for the dummy, whatever the password. `already`:
    /// asked once the turn comes; `true` (verified meanwhile) skips the work.
    pub async fn argon2(
        &self,
        phc: Option<&str>,
        password: &str,
        already: impl Fn() -> bool,
    ) -> bool {
        let Ok(_permit) = self.argon2.acquire().await else {
            return false;
        };
        if already() {
            return true;
        }
        let known = phc.is_some();
        let phc = phc.unwrap_or(&self.dummy).to_string();
        let password = zeroize::Zeroizing::new(password.to_string());
        let started = Instant::now();
        let ok = tokio::task::spawn_blocking(move || {
            let mut area = Vec::new();
            let ok = super::password::verify_in(&phc, &password, &mut area);
            drop(area);
            // The 19 MiB work area would otherwise stay resident on this pool thread.
            crate::memory::return_freed_memory();
            ok
        })
        .await
        .unwrap_or(false);
        let took = started.elapsed().as_micros() as u64;
        let typical = &self.typical_micros;
        let old = typical.load(std::sync::atomic::Ordering::Relaxed);
        typical.store((old * 7 + took) / 8, std::sync::atomic::Ordering::Relaxed);
        ok && known
    }

    /// Wait as long as an argon2 run typically takes, without running one.
    pub async fn pretend(&self) {
        let micros = self
            .typical_micros
            .load(std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_micros(micros)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_after_free_failures_doubles_and_clears() {
        let g = LoginGuard::new();
        let ip = Some("10.0.0.1".parse().unwrap());
        for _ in 0..FREE_FAILURES {
            assert_eq!(g.gate("east", ip), Gate::Check);
            assert_eq!(g.failed("east", ip), None);
        }
        assert_eq!(g.failed("east", ip), Some(Duration::from_secs(1)));
        assert_eq!(g.gate("east", ip), Gate::BackingOff);
        assert_eq!(g.failed("east", ip), Some(Duration::from_secs(2)));
        // Another address, another login: unaffected.
        assert_eq!(
            g.gate("east", Some("10.0.0.2".parse().unwrap())),
            Gate::Check
        );
        assert_eq!(g.gate("west", ip), Gate::Check);
        g.succeeded("east", ip);
        assert_eq!(g.gate("east", ip), Gate::Check);
    }
}

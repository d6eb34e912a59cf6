//! The simulator's memory: registered clients, issued tokens and codes, the
//! request log, counters and the active faults. One `std::sync::Mutex`, never
//! held across an `.await`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::SimOptions;

/// Oldest recorded requests are dropped beyond this many (keeps benches bounded).
pub const MAX_RECORDED: usize = 50_000;
/// Lifetime of an authorization code.
pub const CODE_TTL: Duration = Duration::from_secs(300);

/// One request as shown by `GET /__sim/requests`.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Map<String, Value>,
    pub body: String,
}

pub struct AccessToken {
    pub client_id: String,
    pub merchant_id: Option<String>,
    pub expires_at: Instant,
    pub seq: u64,
}

pub struct RefreshToken {
    pub client_id: String,
    pub expires_at: Instant,
    /// How many times this chain has been refreshed (UPS `refresh_count`).
    pub refresh_count: u64,
}

pub struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub expires_at: Instant,
}

/// Faults set through `POST /__sim/faults`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Faults {
    pub token_status: Option<u16>,
    pub api_status: Option<u16>,
    pub latency_ms: u64,
    pub token_latency_ms: u64,
    pub reset_connections: bool,
    pub negotiated_rates_unapproved: Vec<String>,
    /// Shippers whose negotiated rates are silently left out (on the login, not verified).
    pub negotiated_rates_unverified: Vec<String>,
}

#[derive(Default)]
pub struct Inner {
    pub tokens: HashMap<String, AccessToken>,
    pub refresh: HashMap<String, RefreshToken>,
    pub codes: HashMap<String, AuthCode>,
    pub requests: VecDeque<Recorded>,
    pub faults: Faults,
}

/// Which grant a token request was for (for `/__sim/stats`).
#[derive(Debug, Clone, Copy)]
pub enum Grant {
    ClientCredentials,
    AuthorizationCode,
    RefreshToken,
}

pub struct Sim {
    clients: HashMap<String, String>,
    pub token_ttl: Duration,
    pub refresh_ttl: Duration,
    inner: Mutex<Inner>,
    reset: AtomicBool,
    seq: AtomicU64,
    /// 1Z and PRN counter.
    counter: AtomicU64,
    stat_cc: AtomicU64,
    stat_ac: AtomicU64,
    stat_rt: AtomicU64,
    stat_api: AtomicU64,
}

/// What a successful token issue hands back to the OAuth handlers.
pub struct Issued {
    pub access_token: String,
    pub issued_at_ms: u128,
    pub refresh: Option<(String, u64)>,
}

impl Sim {
    pub fn new(opts: SimOptions) -> Self {
        Sim {
            clients: opts.clients.into_iter().collect(),
            token_ttl: opts.token_ttl,
            refresh_ttl: opts.refresh_ttl,
            inner: Mutex::new(Inner::default()),
            reset: AtomicBool::new(false),
            seq: AtomicU64::new(0),
            counter: AtomicU64::new(0),
            stat_cc: AtomicU64::new(0),
            stat_ac: AtomicU64::new(0),
            stat_rt: AtomicU64::new(0),
            stat_api: AtomicU64::new(0),
        }
    }

    /// Locks the state; a poisoned lock is recovered (the data stays usable).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_client(&self, id: &str) -> bool {
        self.clients.contains_key(id)
    }

    /// Constant-time secret check (the simulator is a test tool, but cheap to do right).
    pub fn check_client(&self, id: &str, secret: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.clients
            .get(id)
            .is_some_and(|s| bool::from(s.as_bytes().ct_eq(secret.as_bytes())))
    }

    pub fn reset_connections(&self) -> bool {
        self.reset.load(Ordering::Relaxed)
    }

    pub fn next_counter(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn count_grant(&self, g: Grant) {
        let c = match g {
            Grant::ClientCredentials => &self.stat_cc,
            Grant::AuthorizationCode => &self.stat_ac,
            Grant::RefreshToken => &self.stat_rt,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_api(&self) {
        self.stat_api.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stats_json(&self) -> Value {
        json!({
            "token_requests": {
                "client_credentials": self.stat_cc.load(Ordering::Relaxed),
                "authorization_code": self.stat_ac.load(Ordering::Relaxed),
                "refresh_token": self.stat_rt.load(Ordering::Relaxed),
            },
            "api_requests": self.stat_api.load(Ordering::Relaxed),
        })
    }

    pub fn zero_stats(&self) {
        for c in [&self.stat_cc, &self.stat_ac, &self.stat_rt, &self.stat_api] {
            c.store(0, Ordering::Relaxed);
        }
    }

    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    pub fn set_faults(&self, f: Faults) {
        self.reset.store(f.reset_connections, Ordering::Relaxed);
        self.lock().faults = f;
    }

    pub fn record(&self, r: Recorded) {
        let mut g = self.lock();
        if g.requests.len() >= MAX_RECORDED {
            g.requests.pop_front();
        }
        g.requests.push_back(r);
    }

    /// Issue an access token (and, for the authorization-code grants, a refresh token
    /// continuing a chain that has been refreshed `refresh_count` times).
    pub fn issue(
        &self,
        client_id: &str,
        merchant_id: Option<String>,
        refresh_count: Option<u64>,
    ) -> Issued {
        let now = Instant::now();
        let access_token = random_string(48);
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut g = self.lock();
        g.tokens.retain(|_, t| t.expires_at > now);
        g.refresh.retain(|_, t| t.expires_at > now);
        g.codes.retain(|_, c| c.expires_at > now);
        g.tokens.insert(
            access_token.clone(),
            AccessToken {
                client_id: client_id.to_string(),
                merchant_id,
                expires_at: now + self.token_ttl,
                seq,
            },
        );
        let refresh = refresh_count.map(|count| {
            let rt = random_string(48);
            g.refresh.insert(
                rt.clone(),
                RefreshToken {
                    client_id: client_id.to_string(),
                    expires_at: now + self.refresh_ttl,
                    refresh_count: count,
                },
            );
            (rt, count)
        });
        Issued {
            access_token,
            issued_at_ms: now_ms(),
            refresh,
        }
    }

    /// Is `token` a live access token? Returns its client id.
    pub fn bearer_client(&self, token: &str) -> Option<String> {
        let g = self.lock();
        g.tokens
            .get(token)
            .filter(|t| t.expires_at > Instant::now())
            .map(|t| t.client_id.clone())
    }

    pub fn live_tokens_json(&self) -> Value {
        let now = Instant::now();
        let g = self.lock();
        let mut live: Vec<&AccessToken> =
            g.tokens.values().filter(|t| t.expires_at > now).collect();
        live.sort_by_key(|t| t.seq);
        Value::Array(
            live.into_iter()
                .map(|t| {
                    json!({
                        "client_id": t.client_id,
                        "merchant_id": t.merchant_id,
                        "expires_in_secs": t.expires_at.saturating_duration_since(now).as_secs(),
                    })
                })
                .collect(),
        )
    }
}

/// A random opaque string of url-safe characters.
pub fn random_string(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

pub fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

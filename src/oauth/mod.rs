//! The token broker: one OAuth access token per account, fetched with the
//! `oauth2` crate, cached in memory, renewed before it expires.
//!
//! Rules this module keeps:
//! - one token request in flight per account, however many callers wait
//!   (callers share one future; the request runs on the broker's own runtime,
//!   so a caller that goes away does not cancel it);
//! - a token inside its refresh margin is still handed out while its renewal
//!   runs in the background, so renewal never fails a client request;
//! - after a failure, callers get that failure for a short backoff instead of
//!   hammering UPS's token endpoint;
//! - never logs or displays a token, refresh token or client secret.

pub mod grant;
pub mod rotate;
pub mod ups;
pub mod vault;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use dashmap::DashMap;
use futures::future::{BoxFuture, FutureExt, Shared};
use oauth2::TokenUrl;
use tracing::{error, info, warn};

use crate::accounts::{Account, Grant};
use crate::clock::{unix_now, unix_now_coarse, Tick};
use crate::config::{Environment, UpsConfig};
use crate::store::Store;
use grant::AppCredentials;
use rotate::Rotator;
use vault::{TokenRecord, Vault};

/// Why no token could be had. `Display` says what ops must do; it never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum TokenError {
    #[error("UPS token endpoint unreachable ({0}); check [ups] base_url and the network")]
    Unreachable(String),
    #[error(
        "UPS token endpoint did not answer within {0:?}; UPS may be down, requests will retry"
    )]
    Timeout(Duration),
    #[error("UPS token endpoint refused account `{account}` (HTTP {status}: {detail}); check its client_id and client secret")]
    Rejected {
        account: String,
        status: u16,
        detail: String,
    },
    #[error("UPS token endpoint is failing (HTTP {status}: {detail}); UPS-side trouble, requests will retry")]
    Unavailable { status: u16, detail: String },
    #[error("account `{0}` needs authorization: open the admin page and click Authorize (or run `upsbridge accounts authorize {0}`)")]
    NeedsAuthorization(String),
    #[error("account `{account}` is authorized at UPS {own} only, and [ups] host_policy = \"client\" sends this client (which called {called}'s host) there; map the client to an account authorized at {called}, or set host_policy = \"account\"")]
    OtherEnvironment {
        account: String,
        own: Environment,
        called: Environment,
    },
    #[error("UPS token answer unusable: {0}")]
    BadAnswer(String),
    #[error("the token store failed: {0}")]
    Store(String),
}

impl TokenError {
    /// Short machine name, for metrics and `x-upsbridge-error`.
    pub fn kind(&self) -> &'static str {
        match self {
            TokenError::Unreachable(_) => "token_unreachable",
            TokenError::Timeout(_) => "token_timeout",
            TokenError::Rejected { .. } => "token_rejected",
            TokenError::Unavailable { .. } => "token_unavailable",
            TokenError::NeedsAuthorization(_) => "needs_authorization",
            TokenError::OtherEnvironment { .. } => "other_environment",
            TokenError::BadAnswer(_) => "token_bad_answer",
            TokenError::Store(_) => "token_store",
        }
    }
}

/// An access token ready to put in `Authorization: Bearer`.
pub struct CachedToken {
    /// The whole `Authorization` value, built once per token rather than per request (UPS
    /// tokens run to a couple of KB) and marked sensitive so it never prints. `None` if the
    /// token is not a valid header value.
    authorization: Option<http::HeaderValue>,
    expires_at: Tick,
    /// Renew from this instant on (expiry minus margin).
    renew_at: Tick,
    expires_at_unix: u64,
}

impl CachedToken {
    fn from_record(r: &TokenRecord, margin: Duration) -> CachedToken {
        // Sub-second precision: a record read from the store (renewed by another instance)
        // may have little time left, and a whole-second clock would overstate it by up to a
        // second. A small allowance covers the request's way to UPS.
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let left = Duration::from_secs(r.access_expires_at).saturating_sub(since_epoch);
        let left = left.saturating_sub(TRANSIT_ALLOWANCE.min(left / 20));
        // Margin relative to a lifetime we can only estimate from what is left.
        let margin = margin.min(left / 2);
        let now = Tick::now();
        let authorization = http::HeaderValue::from_str(&format!("Bearer {}", r.access_token))
            .ok()
            .map(|mut v| {
                v.set_sensitive(true);
                v
            });
        CachedToken {
            authorization,
            expires_at: now + left,
            renew_at: now + (left - margin),
            expires_at_unix: r.access_expires_at,
        }
    }

    /// A token from somewhere other than UPS's token endpoint (a fake UPS in tests).
    pub fn bearer(access_token: &str, lifetime: Duration) -> CachedToken {
        let mut authorization = http::HeaderValue::from_str(&format!("Bearer {access_token}")).ok();
        if let Some(v) = authorization.as_mut() {
            v.set_sensitive(true);
        }
        let now = Tick::now();
        CachedToken {
            authorization,
            expires_at: now + lifetime,
            renew_at: now + lifetime / 2,
            expires_at_unix: unix_now() + lifetime.as_secs(),
        }
    }

    /// `Bearer <token>` (a reference-counted copy); `None` if UPS issued a token that
    /// cannot go in a header.
    pub fn authorization(&self) -> Option<http::HeaderValue> {
        self.authorization.clone()
    }

    fn usable(&self, now: Tick) -> bool {
        now < self.expires_at
    }

    fn fresh(&self, now: Tick) -> bool {
        now < self.renew_at
    }
}

/// Time taken off a token's life for the request that carries it to reach UPS.
const TRANSIT_ALLOWANCE: Duration = Duration::from_millis(500);

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedToken")
            .field("expires_at_unix", &self.expires_at_unix)
            .finish_non_exhaustive()
    }
}

type Flight = Shared<BoxFuture<'static, Result<Arc<CachedToken>, TokenError>>>;

/// Per-account state.
#[derive(Default)]
struct Slot {
    current: ArcSwapOption<CachedToken>,
    flight: Mutex<Option<Flight>>,
    last_failure: Mutex<Option<(Instant, TokenError)>>,
    /// The newest record (with the refresh token), as stored.
    record: Mutex<Option<TokenRecord>>,
    /// `record` was read from the store (once; a failed read is tried again next time,
    /// and callers wait for a read under way instead of starting from an empty slot).
    loaded: tokio::sync::OnceCell<()>,
    last_used_unix: AtomicU64,
    /// The last error UPS answered for this account's API calls, with the fix.
    last_api_error: Mutex<Option<String>>,
    /// Rate/ship answers in a row that lacked the negotiated rates the request asked for.
    negotiated_missing: std::sync::atomic::AtomicU32,
}

impl Slot {
    fn record(&self) -> Option<TokenRecord> {
        self.record.lock().expect("record lock").clone()
    }
}

/// Token state of one account, for `accounts list`, the admin page and `/api/accounts`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenStatus {
    /// `valid`, `missing`, `needs_authorization` or `failing`.
    pub state: &'static str,
    pub expires_at: Option<u64>,
    pub last_used: Option<u64>,
    pub last_error: Option<String>,
    /// Rate/ship answers in a row without the negotiated rates the request asked for.
    pub negotiated_rates_missing: u32,
}

/// Counts for `/metrics`.
pub struct BrokerCounters {
    /// Token requests sent to UPS, per account.
    pub requests: prometheus::IntCounterVec,
    /// Token requests that failed, per account.
    pub failures: prometheus::IntCounterVec,
}

impl Default for BrokerCounters {
    fn default() -> Self {
        let vec = |name: &str, help: &str| {
            prometheus::IntCounterVec::new(prometheus::Opts::new(name, help), &["account"])
                .expect("valid metric")
        };
        BrokerCounters {
            requests: vec(
                "upsbridge_token_requests_total",
                "Token requests sent to UPS (client credentials or refresh), per account",
            ),
            failures: vec(
                "upsbridge_token_failures_total",
                "Token requests that failed, per account",
            ),
        }
    }
}

/// Where tokens persist.
pub struct TokenStore {
    pub store: Store,
    pub vault: Vault,
    pub rotator: Rotator,
}

/// The broker. Cheap to clone.
#[derive(Clone)]
pub struct TokenBroker {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Production's and CIE's token endpoints.
    token_urls: [TokenUrl; 2],
    /// Production's and CIE's refresh endpoints.
    refresh_urls: [String; 2],
    /// The environment of accounts whose map entry names none.
    default_env: Environment,
    margin: Duration,
    timeout: Duration,
    backoff: Duration,
    spawner: tokio::runtime::Handle,
    slots: DashMap<String, Arc<Slot>>,
    counters: BrokerCounters,
    persist: TokenStore,
}

impl TokenBroker {
    /// `spawner` is the runtime token requests run on (keep it alive as long as the broker).
    pub fn new(
        ups: &UpsConfig,
        spawner: tokio::runtime::Handle,
        store: Store,
        vault: Vault,
        rotator: Rotator,
    ) -> Result<TokenBroker, reqwest::Error> {
        let http = rotate::pinned(reqwest::Client::builder(), &ups.pins())
            // OAuth endpoints must never redirect (a redirect could leak the Basic credentials).
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(ups.connect_timeout)
            .timeout(ups.token_timeout)
            .build()?;
        Ok(TokenBroker {
            inner: Arc::new(Inner {
                http,
                token_urls: Environment::ALL
                    .map(|e| TokenUrl::from_url(ups.url_in(e, "/security/v1/oauth/token"))),
                refresh_urls: Environment::ALL
                    .map(|e| ups.url_in(e, "/security/v1/oauth/refresh").to_string()),
                default_env: ups.default_environment(),
                margin: ups.token_refresh_margin,
                timeout: ups.token_timeout,
                backoff: ups.token_failure_backoff,
                spawner,
                slots: DashMap::new(),
                counters: BrokerCounters::default(),
                persist: TokenStore {
                    store,
                    vault,
                    rotator,
                },
            }),
        })
    }

    fn slot(&self, account: &str) -> Arc<Slot> {
        if let Some(s) = self.inner.slots.get(account) {
            return s.clone();
        }
        self.inner
            .slots
            .entry(account.to_string())
            .or_default()
            .clone()
    }

    /// The slot with its stored record loaded (once per process). `Err` when the store
    /// cannot be read now: the record may be there, so nothing must act as if it were not.
    async fn loaded_slot(&self, account: &str) -> Result<Arc<Slot>, TokenError> {
        let slot = self.slot(account);
        slot.loaded
            .get_or_try_init(|| async {
                let p = &self.inner.persist;
                let stored = p.store.token(account).await.map_err(|e| {
                    error!(account, error = %e, "cannot read stored token");
                    TokenError::Store(e.to_string())
                })?;
                if let Some(sealed) = stored {
                    match p.vault.open_record(account, &sealed) {
                        Ok(r) => {
                            if r.access_expires_at > unix_now() {
                                slot.current.store(Some(Arc::new(CachedToken::from_record(
                                    &r,
                                    self.inner.margin,
                                ))));
                            }
                            *slot.record.lock().expect("record lock") = Some(r);
                        }
                        Err(e) => {
                            error!(account, error = %e, "stored token does not open; the account needs new tokens")
                        }
                    }
                }
                Ok(())
            })
            .await?;
        Ok(slot)
    }

    /// The environment an account belongs to.
    pub fn home(&self, account: &Account) -> Environment {
        account.record.environment.unwrap_or(self.inner.default_env)
    }

    /// A usable access token for `account` in its own environment.
    pub async fn token(&self, account: &Arc<Account>) -> Result<Arc<CachedToken>, TokenError> {
        self.token_in(account, self.home(account)).await
    }

    /// The slot of an account's tokens for `env`: its own environment's under its name (and
    /// in the store); the other one's (client credentials only, `host_policy = "client"`)
    /// in memory under a key no account name can be.
    fn slot_key(&self, account: &Account, env: Environment) -> Option<String> {
        (env != self.home(account)).then(|| crossed_key(account.name(), env))
    }

    /// The cached token of `account` for its own environment if it is fresh, from the slot in
    /// place (no clone of it, no future). `None`: anything else (not loaded yet, due for
    /// renewal, another environment's), for [`TokenBroker::token_in`].
    pub fn fresh_token(&self, account: &Account, env: Environment) -> Option<Arc<CachedToken>> {
        if env != self.home(account) {
            return None;
        }
        let slot = self.inner.slots.get(account.name())?;
        if !slot.loaded.initialized() {
            return None;
        }
        let token = slot.current.load_full().filter(|t| t.fresh(Tick::now()))?;
        slot.last_used_unix
            .store(unix_now_coarse(), Ordering::Relaxed);
        Some(token)
    }

    /// A usable access token for `account` at `env`'s UPS: cached, renewed, or fetched now.
    pub async fn token_in(
        &self,
        account: &Arc<Account>,
        env: Environment,
    ) -> Result<Arc<CachedToken>, TokenError> {
        let crossed = self.slot_key(account, env);
        if crossed.is_some() && account.record.grant == Grant::AuthorizationCode {
            // Its refresh token belongs to its own environment's OAuth server.
            return Err(TokenError::OtherEnvironment {
                account: account.name().to_string(),
                own: self.home(account),
                called: env,
            });
        }
        let slot = match &crossed {
            None => self.loaded_slot(account.name()).await?,
            Some(key) => self.slot(key),
        };
        slot.last_used_unix
            .store(unix_now_coarse(), Ordering::Relaxed);
        let now = Tick::now();
        if let Some(t) = slot.current.load_full() {
            if t.fresh(now) {
                return Ok(t);
            }
            if t.usable(now) {
                // Inside the margin: renew in the background, keep serving the old token.
                let _ = self.flight(&slot, account, env);
                return Ok(t);
            }
        }
        let flight = self.flight(&slot, account, env)?;
        match tokio::time::timeout(self.inner.timeout, flight).await {
            Ok(r) => r,
            Err(_) => Err(TokenError::Timeout(self.inner.timeout)),
        }
    }

    /// The in-flight request for this account, started if there is none.
    /// `Err` when a recent failure is still inside its backoff.
    fn flight(
        &self,
        slot: &Arc<Slot>,
        account: &Arc<Account>,
        env: Environment,
    ) -> Result<Flight, TokenError> {
        let mut flight = slot.flight.lock().expect("flight lock");
        if let Some(f) = flight.as_ref() {
            return Ok(f.clone());
        }
        // A flight that finished between the caller's check and this lock left a fresh token.
        if let Some(t) = slot.current.load_full() {
            if t.fresh(Tick::now()) {
                return Ok(futures::future::ready(Ok(t)).boxed().shared());
            }
        }
        if let Some((at, e)) = slot.last_failure.lock().expect("failure lock").as_ref() {
            if at.elapsed() < self.inner.backoff {
                return Err(e.clone());
            }
        }
        let broker = self.clone();
        let slot2 = slot.clone();
        let account = account.clone();
        let task = self.inner.spawner.spawn(async move {
            let result = broker.fetch(&slot2, &account, env).await;
            if let Err(e) = &result {
                warn!(account = %account.name(), error = %e, "token request failed");
                broker
                    .inner
                    .counters
                    .failures
                    .with_label_values(&[account.name()])
                    .inc();
                *slot2.last_failure.lock().expect("failure lock") =
                    Some((Instant::now(), e.clone()));
            }
            *slot2.flight.lock().expect("flight lock") = None;
            result
        });
        let f: Flight = async move {
            task.await
                .unwrap_or_else(|e| Err(TokenError::BadAnswer(format!("token task ended: {e}"))))
        }
        .boxed()
        .shared();
        *flight = Some(f.clone());
        Ok(f)
    }

    /// One token request to UPS: client credentials, or a refresh-token rotation.
    async fn fetch(
        &self,
        slot: &Slot,
        account: &Account,
        env: Environment,
    ) -> Result<Arc<CachedToken>, TokenError> {
        // (Failures are counted by the caller, which also keeps them for the backoff.)
        let app = app_credentials(account);
        let name = account.name();
        if env != self.home(account) {
            // The other environment's token (client credentials only): memory only,
            // refetched after a restart.
            let generation = slot.record().map_or(0, |r| r.generation) + 1;
            self.count_request(name);
            let record = self.client_credentials(&app, env, generation).await?;
            return Ok(self.cache(slot, name, record));
        }
        let p = &self.inner.persist;
        // One renewal per account among the instances sharing the store: the others wait
        // for the lease, then take what its holder stored. An authorization-code rotation on
        // a shared store takes the lease in its helper process instead (see oauth::rotate).
        let helper_leases =
            account.record.grant == Grant::AuthorizationCode && p.rotator.stores_itself();
        let mut lease = if helper_leases {
            None
        } else {
            match p.store.token_lease(name, self.inner.timeout).await {
                Ok(lease) => Some(lease),
                Err(e) if account.record.grant == Grant::ClientCredentials => {
                    warn!(account = name, error = %e, "the token store is unreachable: asking UPS without the cluster lease; the new token stays in memory until the store answers");
                    None
                }
                Err(e) => return Err(TokenError::Store(e.to_string())),
            }
        };
        let mut previous = slot.record();
        if let Some(held) = lease.as_mut() {
            match held.token().await {
                Ok(Some(sealed)) => match p.vault.open_record(name, &sealed) {
                    Ok(stored)
                        if previous
                            .as_ref()
                            .is_none_or(|r| stored.generation > r.generation) =>
                    {
                        let token = CachedToken::from_record(&stored, self.inner.margin);
                        if token.fresh(Tick::now()) {
                            if let Some(held) = lease.take() {
                                held.release().await;
                            }
                            info!(
                                account = name,
                                generation = stored.generation,
                                "token renewed by another instance; taken from the store"
                            );
                            return Ok(self.cache(slot, name, stored));
                        }
                        // Not fresh, but its refresh token is the newest there is.
                        previous = Some(stored);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        error!(account = name, error = %e, "stored token does not open; renewing it")
                    }
                },
                Ok(None) => {}
                Err(e) => return Err(TokenError::Store(e.to_string())),
            }
        }
        let generation = previous.as_ref().map_or(0, |r| r.generation) + 1;
        self.count_request(name);
        let record = match account.record.grant {
            Grant::ClientCredentials => self.client_credentials(&app, env, generation).await?,
            Grant::AuthorizationCode => {
                let current = previous
                    .filter(|r| r.refresh_token.is_some())
                    .ok_or_else(|| TokenError::NeedsAuthorization(name.to_string()))?;
                p.rotator
                    .rotate(
                        &p.vault,
                        &app,
                        &current,
                        &self.inner.refresh_urls[env.index()],
                    )
                    .await?
            }
        };
        let stored = match lease {
            Some(held) => {
                held.commit_token(p.vault.seal_record(name, &record))
                    .await
                    .map_err(|e| TokenError::Store(e.to_string()))?;
                true
            }
            // The helper committed it under its own lease.
            None => helper_leases,
        };
        if stored {
            p.rotator.forget_up_to(&p.vault, name, record.generation);
        }
        Ok(self.cache(slot, name, record))
    }

    fn count_request(&self, account: &str) {
        self.inner
            .counters
            .requests
            .with_label_values(&[account])
            .inc();
    }

    async fn client_credentials(
        &self,
        app: &AppCredentials<'_>,
        env: Environment,
        generation: u64,
    ) -> Result<TokenRecord, TokenError> {
        grant::request(
            &self.inner.http,
            &self.inner.token_urls[env.index()],
            app,
            grant::Grant::ClientCredentials,
            generation,
        )
        .await
    }

    /// Make `record` the account's tokens: sealed and flushed to the store first, then cached.
    async fn install(
        &self,
        slot: &Slot,
        account: &str,
        record: TokenRecord,
    ) -> Result<Arc<CachedToken>, TokenError> {
        let p = &self.inner.persist;
        p.store
            .put_token_durably(account, p.vault.seal_record(account, &record))
            .await
            .map_err(|e| TokenError::Store(e.to_string()))?;
        p.rotator.forget_up_to(&p.vault, account, record.generation);
        Ok(self.cache(slot, account, record))
    }

    /// Make `record` the slot's current tokens (already stored, or not to be stored).
    fn cache(&self, slot: &Slot, account: &str, record: TokenRecord) -> Arc<CachedToken> {
        let token = Arc::new(CachedToken::from_record(&record, self.inner.margin));
        info!(
            account,
            expires_at = token.expires_at_unix,
            generation = record.generation,
            "token obtained"
        );
        *slot.record.lock().expect("record lock") = Some(record);
        slot.current.store(Some(token.clone()));
        *slot.last_failure.lock().expect("failure lock") = None;
        token
    }

    /// Finish authorization-code onboarding: exchange the code, store the tokens.
    pub async fn complete_authorization(
        &self,
        account: &Arc<Account>,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<(), TokenError> {
        let broker = self.clone();
        let account = account.clone();
        let (code, verifier, redirect_uri) = (
            code.to_string(),
            verifier.to_string(),
            redirect_uri.to_string(),
        );
        self.inner
            .spawner
            .spawn(async move {
                let slot = broker.loaded_slot(account.name()).await?;
                let generation = slot.record().map_or(0, |r| r.generation) + 1;
                broker.count_request(account.name());
                let record = grant::request(
                    &broker.inner.http,
                    &broker.inner.token_urls[broker.home(&account).index()],
                    &app_credentials(&account),
                    grant::Grant::Code {
                        code: &code,
                        verifier: &verifier,
                        redirect_uri: &redirect_uri,
                    },
                    generation,
                )
                .await?;
                broker
                    .install(&slot, account.name(), record)
                    .await
                    .map(|_| ())
            })
            .await
            .unwrap_or_else(|e| {
                Err(TokenError::BadAnswer(format!(
                    "authorization task ended: {e}"
                )))
            })
    }

    /// Forget an account's tokens (removed from the map; the store drops them too).
    pub fn forget(&self, account: &str) {
        self.inner.slots.remove(account);
        for env in Environment::ALL {
            self.inner.slots.remove(&crossed_key(account, env));
        }
    }

    /// Drop the cached access token if it is still `token` (UPS answered 401 with it).
    pub fn invalidate(&self, account: &Account, env: Environment, token: &Arc<CachedToken>) {
        let key = self
            .slot_key(account, env)
            .unwrap_or_else(|| account.name().to_string());
        if let Some(slot) = self.inner.slots.get(&key).map(|s| s.clone()) {
            let current = slot.current.load_full();
            if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, token)) {
                slot.current.store(None);
            }
        }
    }

    /// Remember the last error UPS gave this account's calls (shown on the ops page).
    pub fn note_api_error(&self, account: &str, message: Option<String>) {
        *self
            .slot(account)
            .last_api_error
            .lock()
            .expect("api error lock") = message;
    }

    pub async fn status(&self, account: &Account) -> TokenStatus {
        // A store that cannot be read now shows what this process knows (and the error).
        let (slot, unread) = match self.loaded_slot(account.name()).await {
            Ok(slot) => (slot, None),
            Err(e) => (self.slot(account.name()), Some(e)),
        };
        let now = Tick::now();
        let current = slot.current.load_full();
        let failure = slot
            .last_failure
            .lock()
            .expect("failure lock")
            .clone()
            .map(|(_, e)| e)
            .or(unread);
        let last_used = Some(slot.last_used_unix.load(Ordering::Relaxed)).filter(|&t| t > 0);
        let has_refresh = slot.record().is_some_and(|r| r.refresh_token.is_some());
        let state = match (&current, &failure) {
            (Some(t), _) if t.usable(now) => "valid",
            (_, Some(TokenError::NeedsAuthorization(_))) => "needs_authorization",
            (_, Some(_)) => "failing",
            _ if account.record.grant == Grant::AuthorizationCode && !has_refresh => {
                "needs_authorization"
            }
            _ => "missing",
        };
        let api_error = slot.last_api_error.lock().expect("api error lock").clone();
        TokenStatus {
            state,
            expires_at: current.filter(|t| t.usable(now)).map(|t| t.expires_at_unix),
            last_used,
            last_error: failure.map(|e| e.to_string()).or(api_error),
            negotiated_rates_missing: slot.negotiated_missing.load(Ordering::Relaxed),
        }
    }

    /// A rate or ship answer for `account`: whether its request asked for negotiated rates
    /// and whether UPS's answer has them. UPS gives none, silently, when the shipper account
    /// is on the UPS.com login but not verified; a run of such answers is the diagnosis.
    pub fn note_negotiated_rates(&self, account: &str, asked: bool, got: bool) {
        if !asked {
            return;
        }
        let slot = self.slot(account);
        if got {
            slot.negotiated_missing.store(0, Ordering::Relaxed);
        } else {
            slot.negotiated_missing.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn counters(&self) -> &BrokerCounters {
        &self.inner.counters
    }
}

/// The slot key of an account's tokens for the other environment than its own (a newline
/// is in no account name).
fn crossed_key(account: &str, env: Environment) -> String {
    format!("{account}\n{env}")
}

fn app_credentials(account: &Account) -> AppCredentials<'_> {
    AppCredentials {
        account: account.name(),
        client_id: &account.record.client_id,
        client_secret: &account.client_secret,
        merchant: &account.record.ups_account_number,
    }
}

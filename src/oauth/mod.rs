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

pub mod ups;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use dashmap::DashMap;
use futures::future::{BoxFuture, FutureExt, Shared};
use oauth2::{ClientId, ClientSecret, RefreshToken, TokenResponse, TokenUrl};
use secrecy::{ExposeSecret, SecretString};
use tracing::{info, warn};
use url::Url;

use crate::accounts::{Account, Grant};
use crate::config::UpsConfig;
use ups::{TransportError, UpsErrorResponse, UpsOAuthClient, UpsTokenResponse};

/// Why no token could be had. `Display` says what ops must do; it never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    #[error("UPS token answer unusable: {0}")]
    BadAnswer(String),
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
            TokenError::BadAnswer(_) => "token_bad_answer",
        }
    }
}

/// An access token ready to put in `Authorization: Bearer`.
pub struct CachedToken {
    access: SecretString,
    expires_at: Instant,
    /// Renew from this instant on (expiry minus margin).
    renew_at: Instant,
    expires_at_unix: u64,
}

impl CachedToken {
    pub fn bearer_value(&self) -> String {
        format!("Bearer {}", self.access.expose_secret())
    }

    fn usable(&self, now: Instant) -> bool {
        now < self.expires_at
    }

    fn fresh(&self, now: Instant) -> bool {
        now < self.renew_at
    }

    /// The raw token (for tests that must prove it never leaks).
    pub fn expose(&self) -> &str {
        self.access.expose_secret()
    }
}

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
    refresh_token: Mutex<Option<SecretString>>,
    last_used_unix: std::sync::atomic::AtomicU64,
}

/// Token state of one account, for `accounts list`, the admin page and `/api/accounts`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenStatus {
    /// `valid`, `missing`, `needs_authorization` or `failing`.
    pub state: &'static str,
    pub expires_at: Option<u64>,
    pub last_used: Option<u64>,
    pub last_error: Option<String>,
}

/// Counts for `/metrics`.
#[derive(Default)]
pub struct BrokerCounters {
    pub requests: std::sync::atomic::AtomicU64,
    pub failures: std::sync::atomic::AtomicU64,
}

struct Endpoints {
    token: TokenUrl,
    refresh: TokenUrl,
}

/// The broker. Cheap to clone.
#[derive(Clone)]
pub struct TokenBroker {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    endpoints: Endpoints,
    margin: Duration,
    timeout: Duration,
    backoff: Duration,
    spawner: tokio::runtime::Handle,
    slots: DashMap<String, Arc<Slot>>,
    counters: BrokerCounters,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn token_url(url: Url) -> TokenUrl {
    TokenUrl::from_url(url)
}

impl TokenBroker {
    /// `spawner` is the runtime token requests run on (keep it alive as long as the broker).
    pub fn new(
        ups: &UpsConfig,
        spawner: tokio::runtime::Handle,
    ) -> Result<TokenBroker, reqwest::Error> {
        let http = reqwest::Client::builder()
            // OAuth endpoints must never redirect (a redirect could leak the Basic credentials).
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(ups.connect_timeout)
            .timeout(ups.token_timeout)
            .build()?;
        Ok(TokenBroker {
            inner: Arc::new(Inner {
                http,
                endpoints: Endpoints {
                    token: token_url(ups.url("/security/v1/oauth/token")),
                    refresh: token_url(ups.url("/security/v1/oauth/refresh")),
                },
                margin: ups.token_refresh_margin,
                timeout: ups.token_timeout,
                backoff: ups.token_failure_backoff,
                spawner,
                slots: DashMap::new(),
                counters: BrokerCounters::default(),
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

    /// A usable access token for `account`: cached, renewed, or fetched now.
    pub async fn token(&self, account: &Arc<Account>) -> Result<Arc<CachedToken>, TokenError> {
        let slot = self.slot(account.name());
        slot.last_used_unix
            .store(unix_now(), std::sync::atomic::Ordering::Relaxed);
        let now = Instant::now();
        if let Some(t) = slot.current.load_full() {
            if t.fresh(now) {
                return Ok(t);
            }
            if t.usable(now) {
                // Inside the margin: renew in the background, keep serving the old token.
                let _ = self.flight(&slot, account);
                return Ok(t);
            }
        }
        let flight = self.flight(&slot, account)?;
        match tokio::time::timeout(self.inner.timeout, flight).await {
            Ok(r) => r,
            Err(_) => Err(TokenError::Timeout(self.inner.timeout)),
        }
    }

    /// The in-flight request for this account, started if there is none.
    /// `Err` when a recent failure is still inside its backoff.
    fn flight(&self, slot: &Arc<Slot>, account: &Arc<Account>) -> Result<Flight, TokenError> {
        let mut flight = slot.flight.lock().expect("flight lock");
        if let Some(f) = flight.as_ref() {
            return Ok(f.clone());
        }
        // A flight that finished between the caller's check and this lock left a fresh token.
        if let Some(t) = slot.current.load_full() {
            if t.fresh(Instant::now()) {
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
            let result = broker.fetch(&slot2, &account).await;
            match &result {
                Ok(t) => {
                    slot2.current.store(Some(t.clone()));
                    *slot2.last_failure.lock().expect("failure lock") = None;
                }
                Err(e) => {
                    warn!(account = %account.name(), error = %e, "token request failed");
                    broker
                        .inner
                        .counters
                        .failures
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    *slot2.last_failure.lock().expect("failure lock") =
                        Some((Instant::now(), e.clone()));
                }
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

    /// One token request to UPS (client credentials, or refresh for authorization-code accounts).
    async fn fetch(&self, slot: &Slot, account: &Account) -> Result<Arc<CachedToken>, TokenError> {
        self.inner
            .counters
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let merchant = account.record.ups_account_number.clone();
        let http = self.inner.http.clone();
        let client = |url: &TokenUrl| -> UpsOAuthClient {
            oauth2::Client::new(ClientId::new(account.record.client_id.clone()))
                .set_client_secret(ClientSecret::new(
                    account.client_secret.expose_secret().to_string(),
                ))
                .set_token_uri(url.clone())
        };
        let status = Arc::new(std::sync::atomic::AtomicU16::new(0));
        let send = |req| {
            let http = http.clone();
            let merchant = merchant.clone();
            let status = status.clone();
            async move {
                let resp = ups::send(&http, Some(&merchant), req).await?;
                status.store(resp.status().as_u16(), std::sync::atomic::Ordering::Relaxed);
                Ok::<_, TransportError>(resp)
            }
        };
        let answer = match account.record.grant {
            Grant::ClientCredentials => {
                client(&self.inner.endpoints.token)
                    .exchange_client_credentials()
                    .request_async(&send)
                    .await
            }
            Grant::AuthorizationCode => {
                let refresh = slot.refresh_token.lock().expect("refresh lock").clone();
                let Some(refresh) = refresh else {
                    return Err(TokenError::NeedsAuthorization(account.name().to_string()));
                };
                let refresh = RefreshToken::new(refresh.expose_secret().to_string());
                client(&self.inner.endpoints.refresh)
                    .exchange_refresh_token(&refresh)
                    .request_async(&send)
                    .await
            }
        };
        let status = status.load(std::sync::atomic::Ordering::Relaxed);
        let answer = answer.map_err(|e| classify(account.name(), status, e))?;
        if let Some(r) = answer.refresh_token() {
            *slot.refresh_token.lock().expect("refresh lock") =
                Some(SecretString::from(r.secret().to_string()));
        }
        let token = self.cache(&answer);
        info!(account = %account.name(), expires_at = token.expires_at_unix, "token obtained");
        Ok(Arc::new(token))
    }

    fn cache(&self, answer: &UpsTokenResponse) -> CachedToken {
        let lifetime = answer.expires_in().unwrap_or(Duration::from_secs(3600));
        let margin = self.inner.margin.min(lifetime / 2);
        let now = Instant::now();
        CachedToken {
            access: SecretString::from(answer.access_token().secret().to_string()),
            expires_at: now + lifetime,
            renew_at: now + lifetime - margin,
            expires_at_unix: unix_now() + lifetime.as_secs(),
        }
    }

    /// Forget an account's tokens (removed from the map).
    pub fn forget(&self, account: &str) {
        self.inner.slots.remove(account);
    }

    /// Drop the cached access token if it is still `token` (UPS answered 401 with it).
    pub fn invalidate(&self, account: &str, token: &Arc<CachedToken>) {
        if let Some(slot) = self.inner.slots.get(account).map(|s| s.clone()) {
            let current = slot.current.load_full();
            if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, token)) {
                slot.current.store(None);
            }
        }
    }

    pub fn status(&self, account: &Account) -> TokenStatus {
        let slot = self.inner.slots.get(account.name()).map(|s| s.clone());
        let now = Instant::now();
        let current = slot.as_ref().and_then(|s| s.current.load_full());
        let failure = slot
            .as_ref()
            .and_then(|s| s.last_failure.lock().expect("failure lock").clone())
            .map(|(_, e)| e);
        let last_used = slot
            .as_ref()
            .map(|s| s.last_used_unix.load(std::sync::atomic::Ordering::Relaxed))
            .filter(|&t| t > 0);
        let has_refresh = slot
            .as_ref()
            .is_some_and(|s| s.refresh_token.lock().expect("refresh lock").is_some());
        let state = match (&current, &failure) {
            (Some(t), _) if t.usable(now) => "valid",
            (_, Some(TokenError::NeedsAuthorization(_))) => "needs_authorization",
            (_, Some(_)) => "failing",
            _ if account.record.grant == Grant::AuthorizationCode && !has_refresh => {
                "needs_authorization"
            }
            _ => "missing",
        };
        TokenStatus {
            state,
            expires_at: current.filter(|t| t.usable(now)).map(|t| t.expires_at_unix),
            last_used,
            last_error: failure.map(|e| e.to_string()),
        }
    }

    pub fn counters(&self) -> &BrokerCounters {
        &self.inner.counters
    }
}

type OAuthError = oauth2::RequestTokenError<TransportError, UpsErrorResponse>;

fn classify(account: &str, status: u16, e: OAuthError) -> TokenError {
    match e {
        oauth2::RequestTokenError::ServerResponse(r) if status == 429 || status >= 500 => {
            TokenError::Unavailable {
                status,
                detail: r.to_string(),
            }
        }
        oauth2::RequestTokenError::ServerResponse(r) => TokenError::Rejected {
            account: account.to_string(),
            status,
            detail: r.to_string(),
        },
        oauth2::RequestTokenError::Request(TransportError::Http(e)) if e.is_timeout() => {
            TokenError::Unreachable("timed out".into())
        }
        oauth2::RequestTokenError::Request(e) => TokenError::Unreachable(redact(&e.to_string())),
        // A non-JSON answer (an HTML 503 page, say): report the status, never the body.
        oauth2::RequestTokenError::Parse(_, _) if status >= 400 => TokenError::Unavailable {
            status,
            detail: "not a UPS JSON answer".into(),
        },
        oauth2::RequestTokenError::Parse(e, _) => {
            TokenError::BadAnswer(format!("not UPS token JSON ({})", e.inner()))
        }
        oauth2::RequestTokenError::Other(s) => TokenError::BadAnswer(redact(&s)),
    }
}

/// Error texts from the HTTP stack can carry the URL; never its query (none of ours has secrets,
/// but keep the rule simple).
fn redact(s: &str) -> String {
    s.split('?').next().unwrap_or(s).to_string()
}

//! Authorization-code onboarding: the "Authorize" button of shipping suites.
//!
//! `POST /accounts/{name}/authorize` sends the account owner to UPS's login page
//! with a fresh `state` (single use, expires, bound to that account and to the
//! browser that started the flow by a cookie) and a PKCE challenge;
//! `/oauth/callback` checks the state and that cookie, exchanges the code and
//! stores the tokens. Anything off (unknown, reused or expired state, another
//! browser, an error from UPS, a code UPS will not exchange) is a 400 page and
//! nothing is stored. From a terminal (`accounts authorize`) the flow starts
//! with a single-use start link the owner opens, which sets the cookie.
//!
//! Flows in progress and start links live in the store (sealed, keyed by a hash of the
//! state or ticket, taken atomically), so with several instances on one PostgreSQL the
//! callback may come back to any of them, and still works once only.

use std::sync::Arc;
use std::time::Duration;

use oauth2::{AuthUrl, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use url::Url;

use crate::accounts::{Account, Grant};
use crate::clock::unix_now;
use crate::oauth::ups::UpsOAuthClient;
use crate::oauth::vault::Vault;
use crate::store::Store;

/// How long an authorize link stays good.
const STATE_TTL: Duration = Duration::from_secs(600);

/// A flow in progress, as stored (sealed: the PKCE verifier is a secret).
#[derive(Serialize, Deserialize)]
struct Pending {
    account: String,
    verifier: String,
    expires_unix: u64,
    /// SHA-256 of the browser cookie that must come back with the callback.
    browser: [u8; 32],
}

/// A terminal-issued start link, as stored.
#[derive(Serialize, Deserialize)]
struct Ticket {
    account: String,
    expires_unix: u64,
}

/// The AEAD associated data of stored flows (a sealed flow opens as nothing else).
const FLOW_AAD: &str = "oauth-flow";

/// The cookie binding a flow to the browser that started it.
pub const FLOW_COOKIE: &str = "ub_oauth";

/// Authorization flows: started here, finished by whichever instance gets the callback.
pub struct Onboarding {
    store: Store,
    vault: Vault,
    auth_url: AuthUrl,
    token_url: oauth2::TokenUrl,
    pub redirect_uri: Url,
}

/// Why a callback is refused (shown on the 400 page).
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("this authorization link is unknown, already used or expired; start again from the ops page")]
    BadState,
    #[error("UPS refused the authorization: {0}")]
    Refused(String),
    #[error("account `{0}` is no longer in the account map")]
    AccountGone(String),
    #[error("this authorization was started in another browser; start it again from the ops page in the browser you log in with")]
    OtherBrowser,
    #[error("the store did not answer ({0}); try again in a moment")]
    Store(String),
}

/// Why a flow could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("account `{0}` uses the client-credentials grant: it needs no authorization")]
    NotAuthorizationCode(String),
    #[error("the store did not answer ({0}); try again in a moment")]
    Store(String),
}

impl Onboarding {
    pub fn new(
        ups_base: &crate::config::UpsConfig,
        redirect_uri: Url,
        store: Store,
        vault: Vault,
    ) -> Onboarding {
        Onboarding {
            store,
            vault,
            auth_url: AuthUrl::from_url(ups_base.url("/security/v1/oauth/authorize")),
            token_url: oauth2::TokenUrl::from_url(ups_base.url("/security/v1/oauth/token")),
            redirect_uri,
        }
    }

    /// The UPS login URL for `account`, with a new state and PKCE challenge, and the value of
    /// the [`FLOW_COOKIE`] the starting browser must be given.
    pub async fn start(&self, account: &Account) -> Result<(Url, String), StartError> {
        if account.record.grant != Grant::AuthorizationCode {
            return Err(StartError::NotAuthorizationCode(account.name().to_string()));
        }
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let client: UpsOAuthClient<oauth2::EndpointSet> =
            oauth2::Client::new(ClientId::new(account.record.client_id.clone()))
                .set_auth_uri(self.auth_url.clone())
                .set_token_uri(self.token_url.clone())
                .set_redirect_uri(RedirectUrl::from_url(self.redirect_uri.clone()));
        let (url, state) = client
            .authorize_url(CsrfToken::new_random)
            .set_pkce_challenge(challenge)
            .url();
        let browser = super::auth::hex(&rand::random::<[u8; 32]>());
        let pending = Pending {
            account: account.name().to_string(),
            verifier: verifier.secret().clone(),
            expires_unix: unix_now() + STATE_TTL.as_secs(),
            browser: sha256(&browser),
        };
        self.keep(state.secret(), &pending).await?;
        Ok((url, browser))
    }

    async fn keep(&self, secret: &str, value: &impl Serialize) -> Result<(), StartError> {
        let json = zeroize::Zeroizing::new(serde_json::to_vec(value).expect("flow serializes"));
        self.store
            .put_flow(&flow_key(secret), self.vault.seal(FLOW_AAD, &json))
            .await
            .map_err(|e| StartError::Store(e.to_string()))
    }

    /// Take a stored flow or start link (single use); `None` when unknown, used or unreadable.
    async fn take_stored<T: for<'de> Deserialize<'de>>(
        &self,
        secret: &str,
    ) -> Result<Option<T>, CallbackError> {
        let sealed = self
            .store
            .take_flow(&flow_key(secret))
            .await
            .map_err(|e| CallbackError::Store(e.to_string()))?;
        Ok(sealed
            .and_then(|s| self.vault.open(FLOW_AAD, &s).ok())
            .and_then(|json| serde_json::from_slice(&zeroize::Zeroizing::new(json)).ok()))
    }

    /// The cookie line that binds the flow to this browser.
    pub fn flow_cookie(value: &str) -> String {
        format!(
            "{FLOW_COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/oauth; Max-Age={}",
            STATE_TTL.as_secs()
        )
    }

    /// A single-use start link for `account` (terminal onboarding): the owner's browser
    /// opens it, gets the flow cookie and goes on to UPS.
    pub async fn ticket(&self, account: &Account) -> Result<Url, StartError> {
        if account.record.grant != Grant::AuthorizationCode {
            return Err(StartError::NotAuthorizationCode(account.name().to_string()));
        }
        let ticket = super::auth::hex(&rand::random::<[u8; 24]>());
        let stored = Ticket {
            account: account.name().to_string(),
            expires_unix: unix_now() + STATE_TTL.as_secs(),
        };
        self.keep(&format!("ticket/{ticket}"), &stored).await?;
        let mut url = self.redirect_uri.clone();
        url.set_path(&format!("/oauth/start/{ticket}"));
        url.set_query(None);
        Ok(url)
    }

    /// Consume a start link: the account it is for.
    pub async fn take_ticket(&self, ticket: &str) -> Result<Option<String>, CallbackError> {
        let stored: Option<Ticket> = self.take_stored(&format!("ticket/{ticket}")).await?;
        Ok(stored
            .filter(|t| t.expires_unix > unix_now())
            .map(|t| t.account))
    }

    /// Consume `state` (single use, even when the rest of the callback fails) and check that
    /// `browser` (the flow cookie) is the one the flow was started with.
    /// Returns the account name and the PKCE verifier.
    pub async fn take(
        &self,
        state: &str,
        browser: Option<&str>,
    ) -> Result<(String, String), CallbackError> {
        let p: Pending = self
            .take_stored(state)
            .await?
            .ok_or(CallbackError::BadState)?;
        if p.expires_unix <= unix_now() {
            return Err(CallbackError::BadState);
        }
        let same = browser.is_some_and(|b| bool::from(sha256(b).ct_eq(&p.browser)));
        if !same {
            return Err(CallbackError::OtherBrowser);
        }
        Ok((p.account, p.verifier))
    }

    /// Finish a callback: find the account the state was bound to.
    pub fn account_for(
        accounts: &crate::accounts::Accounts,
        name: &str,
    ) -> Result<Arc<Account>, CallbackError> {
        accounts
            .snapshot()
            .by_name(name)
            .filter(|a| a.record.grant == Grant::AuthorizationCode)
            .cloned()
            .ok_or_else(|| CallbackError::AccountGone(name.to_string()))
    }
}

/// The store key of a state or ticket: its hash (the store never holds the value itself).
fn flow_key(secret: &str) -> String {
    super::auth::hex(&sha256(secret))
}

fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

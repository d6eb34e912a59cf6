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

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use oauth2::{AuthUrl, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use url::Url;

use crate::accounts::{Account, Grant};
use crate::oauth::ups::UpsOAuthClient;

/// How long an authorize link stays good.
const STATE_TTL: Duration = Duration::from_secs(600);

struct Pending {
    account: String,
    verifier: String,
    expires: Instant,
    /// SHA-256 of the browser cookie that must come back with the callback.
    browser: [u8; 32],
}

/// The cookie binding a flow to the browser that started it.
pub const FLOW_COOKIE: &str = "ub_oauth";

/// Outstanding authorization requests, by `state`.
pub struct Onboarding {
    pending: DashMap<String, Pending>,
    /// Start links for terminal onboarding: ticket → (account, expiry).
    tickets: DashMap<String, (String, Instant)>,
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
}

impl Onboarding {
    pub fn new(ups_base: &crate::config::UpsConfig, redirect_uri: Url) -> Onboarding {
        Onboarding {
            pending: DashMap::new(),
            tickets: DashMap::new(),
            auth_url: AuthUrl::from_url(ups_base.url("/security/v1/oauth/authorize")),
            token_url: oauth2::TokenUrl::from_url(ups_base.url("/security/v1/oauth/token")),
            redirect_uri,
        }
    }

    /// The UPS login URL for `account`, with a new state and PKCE challenge, and the value of
    /// the [`FLOW_COOKIE`] the starting browser must be given.
    pub fn start(&self, account: &Account) -> Result<(Url, String), String> {
        if account.record.grant != Grant::AuthorizationCode {
            return Err(format!(
                "account `{}` uses the client-credentials grant: it needs no authorization",
                account.name()
            ));
        }
        self.pending.retain(|_, p| p.expires > Instant::now());
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
        self.pending.insert(
            state.secret().clone(),
            Pending {
                account: account.name().to_string(),
                verifier: verifier.secret().clone(),
                expires: Instant::now() + STATE_TTL,
                browser: sha256(&browser),
            },
        );
        Ok((url, browser))
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
    pub fn ticket(&self, account: &Account) -> Result<Url, String> {
        if account.record.grant != Grant::AuthorizationCode {
            return Err(format!(
                "account `{}` uses the client-credentials grant: it needs no authorization",
                account.name()
            ));
        }
        self.tickets
            .retain(|_, (_, expires)| *expires > Instant::now());
        let ticket = super::auth::hex(&rand::random::<[u8; 24]>());
        self.tickets.insert(
            ticket.clone(),
            (account.name().to_string(), Instant::now() + STATE_TTL),
        );
        let mut url = self.redirect_uri.clone();
        url.set_path(&format!("/oauth/start/{ticket}"));
        url.set_query(None);
        Ok(url)
    }

    /// Consume a start link: the account it is for.
    pub fn take_ticket(&self, ticket: &str) -> Option<String> {
        let (_, (name, expires)) = self.tickets.remove(ticket)?;
        (expires > Instant::now()).then_some(name)
    }

    /// Consume `state` (single use, even when the rest of the callback fails) and check that
    /// `browser` (the flow cookie) is the one the flow was started with.
    /// Returns the account name and the PKCE verifier.
    pub fn take(
        &self,
        state: &str,
        browser: Option<&str>,
    ) -> Result<(String, String), CallbackError> {
        let (_, p) = self.pending.remove(state).ok_or(CallbackError::BadState)?;
        if p.expires <= Instant::now() {
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

fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

//! Authorization-code onboarding: the "Authorize" button of shipping suites.
//!
//! `/accounts/{name}/authorize` sends the account owner to UPS's login page
//! with a fresh `state` (single use, expires, bound to that account) and a
//! PKCE challenge; `/oauth/callback` checks the state, exchanges the code and
//! stores the tokens. Anything off (unknown, reused or expired state, an error
//! from UPS, a code UPS will not exchange) is a 400 page and nothing is stored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use oauth2::{AuthUrl, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl};
use url::Url;

use crate::accounts::{Account, Grant};
use crate::oauth::ups::UpsOAuthClient;

/// How long an authorize link stays good.
const STATE_TTL: Duration = Duration::from_secs(600);

struct Pending {
    account: String,
    verifier: String,
    expires: Instant,
}

/// Outstanding authorization requests, by `state`.
pub struct Onboarding {
    pending: DashMap<String, Pending>,
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
}

impl Onboarding {
    pub fn new(ups_base: &crate::config::UpsConfig, redirect_uri: Url) -> Onboarding {
        Onboarding {
            pending: DashMap::new(),
            auth_url: AuthUrl::from_url(ups_base.url("/security/v1/oauth/authorize")),
            token_url: oauth2::TokenUrl::from_url(ups_base.url("/security/v1/oauth/token")),
            redirect_uri,
        }
    }

    /// The UPS login URL for `account`, with a new state and PKCE challenge.
    pub fn start(&self, account: &Account) -> Result<Url, String> {
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
        self.pending.insert(
            state.secret().clone(),
            Pending {
                account: account.name().to_string(),
                verifier: verifier.secret().clone(),
                expires: Instant::now() + STATE_TTL,
            },
        );
        Ok(url)
    }

    /// Consume `state` (single use, even when the rest of the callback fails).
    /// Returns the account name and the PKCE verifier.
    pub fn take(&self, state: &str) -> Result<(String, String), CallbackError> {
        let (_, p) = self.pending.remove(state).ok_or(CallbackError::BadState)?;
        if p.expires <= Instant::now() {
            return Err(CallbackError::BadState);
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

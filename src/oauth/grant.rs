//! The three UPS token requests, on the `oauth2` crate: client credentials,
//! authorization-code exchange (with PKCE) and refresh (UPS's own URL). Each
//! returns a [`TokenRecord`] ready to seal. Shared by the broker and the
//! rotation helper process. Never logs a token or a secret.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use oauth2::{
    AuthorizationCode, ClientId, ClientSecret, PkceCodeVerifier, RedirectUrl, RefreshToken,
    TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};

use crate::clock::unix_now;

use super::ups::{self, TransportError, UpsErrorResponse, UpsOAuthClient, UpsTokenResponse};
use super::vault::TokenRecord;
use super::TokenError;

/// Who asks: the UPS app and the shipper it acts for.
pub struct AppCredentials<'a> {
    pub account: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a SecretString,
    /// Shipper number, sent as `x-merchant-id`.
    pub merchant: &'a str,
}

fn client(app: &AppCredentials, url: &TokenUrl) -> UpsOAuthClient {
    oauth2::Client::new(ClientId::new(app.client_id.to_string()))
        .set_client_secret(ClientSecret::new(
            app.client_secret.expose_secret().to_string(),
        ))
        .set_token_uri(url.clone())
}

/// Which request to make.
pub enum Grant<'a> {
    ClientCredentials,
    Code {
        code: &'a str,
        verifier: &'a str,
        redirect_uri: &'a str,
    },
    Refresh {
        refresh_token: &'a str,
    },
}

/// Make one token request; `generation` is the new record's generation.
pub async fn request(
    http: &reqwest::Client,
    url: &TokenUrl,
    app: &AppCredentials<'_>,
    grant: Grant<'_>,
    generation: u64,
) -> Result<TokenRecord, TokenError> {
    let status = Arc::new(AtomicU16::new(0));
    // Owned captures: the request future must be `Send + 'static` to run on any runtime.
    let merchant = app.merchant.to_string();
    let send = |req| {
        let status = status.clone();
        let http = http.clone();
        let merchant = merchant.clone();
        async move {
            let resp = ups::send(&http, Some(&merchant), req).await?;
            status.store(resp.status().as_u16(), Ordering::Relaxed);
            Ok::<_, TransportError>(resp)
        }
    };
    let c = client(app, url);
    let answer = match grant {
        Grant::ClientCredentials => c.exchange_client_credentials().request_async(&send).await,
        Grant::Code {
            code,
            verifier,
            redirect_uri,
        } => {
            let redirect = RedirectUrl::new(redirect_uri.to_string())
                .map_err(|e| TokenError::BadAnswer(format!("redirect URI: {e}")))?;
            c.set_redirect_uri(redirect)
                .exchange_code(AuthorizationCode::new(code.to_string()))
                .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()))
                .request_async(&send)
                .await
        }
        Grant::Refresh { refresh_token } => {
            c.exchange_refresh_token(&RefreshToken::new(refresh_token.to_string()))
                .request_async(&send)
                .await
        }
    };
    let status = status.load(Ordering::Relaxed);
    let answer = answer.map_err(|e| classify(app.account, status, e))?;
    Ok(record(&answer, generation))
}

fn record(answer: &UpsTokenResponse, generation: u64) -> TokenRecord {
    let now = unix_now();
    let lifetime = answer.expires_in().unwrap_or(Duration::from_secs(3600));
    TokenRecord {
        access_token: answer.access_token().secret().to_string(),
        access_expires_at: now + lifetime.as_secs(),
        refresh_token: answer.refresh_token().map(|r| r.secret().to_string()),
        refresh_expires_at: answer.refresh_token_expires_in().map(|d| now + d.as_secs()),
        generation,
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

/// Error texts from the HTTP stack can carry the URL; never its query.
fn redact(s: &str) -> String {
    s.split('?').next().unwrap_or(s).to_string()
}

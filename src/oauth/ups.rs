//! UPS's OAuth dialect on top of the `oauth2` crate.
//!
//! UPS differs from RFC 6749 in three ways handled here: every field of its
//! token JSON is a string (`"expires_in":"14399"`), errors come as
//! `{"response":{"errors":[{code,message}]}}`, and client-credential requests
//! carry the shipper number in an `x-merchant-id` header. Refresh goes to its
//! own URL (`/security/v1/oauth/refresh`).

use std::time::Duration;

use oauth2::basic::{
    BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AccessToken, EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, RefreshToken, Scope,
    StandardRevocableToken, TokenResponse,
};
use serde::{Deserialize, Deserializer, Serialize};

/// A UPS token answer. Unknown fields (`issued_at`, `status`, …) are ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpsTokenResponse {
    access_token: AccessToken,
    #[serde(deserialize_with = "oauth2::helpers::deserialize_untagged_enum_case_insensitive")]
    token_type: BasicTokenType,
    #[serde(default, deserialize_with = "string_or_number")]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<RefreshToken>,
    #[serde(default, deserialize_with = "string_or_number")]
    refresh_token_expires_in: Option<u64>,
}

impl UpsTokenResponse {
    pub fn refresh_token_expires_in(&self) -> Option<Duration> {
        self.refresh_token_expires_in.map(Duration::from_secs)
    }
}

impl TokenResponse for UpsTokenResponse {
    type TokenType = BasicTokenType;
    fn access_token(&self) -> &AccessToken {
        &self.access_token
    }
    fn token_type(&self) -> &BasicTokenType {
        &self.token_type
    }
    fn expires_in(&self) -> Option<Duration> {
        self.expires_in.map(Duration::from_secs)
    }
    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }
    fn scopes(&self) -> Option<&Vec<Scope>> {
        None
    }
}

/// `"14399"`, `14399` or absent.
fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        N(u64),
        S(String),
    }
    match Option::<Either>::deserialize(d)? {
        None => Ok(None),
        Some(Either::N(n)) => Ok(Some(n)),
        Some(Either::S(s)) if s.trim().is_empty() => Ok(None),
        Some(Either::S(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("`{s}` is not a number of seconds"))),
    }
}

/// UPS's error envelope, as the `oauth2` crate's error-response type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpsErrorResponse {
    #[serde(default)]
    response: Option<UpsErrors>,
    // RFC 6749 shape, in case a proxy in front of UPS answers that way.
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UpsErrors {
    #[serde(default)]
    errors: Vec<UpsError>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UpsError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl std::fmt::Display for UpsErrorResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(e) = self.response.as_ref().and_then(|r| r.errors.first()) {
            return write!(f, "UPS error {}: {}", e.code, e.message);
        }
        match (&self.error, &self.error_description) {
            (Some(e), Some(d)) => write!(f, "{e}: {d}"),
            (Some(e), None) => f.write_str(e),
            _ => f.write_str("UPS token endpoint refused the request"),
        }
    }
}

impl oauth2::ErrorResponse for UpsErrorResponse {}

/// An `oauth2` client speaking UPS's dialect, with the token (or refresh) URL set.
pub type UpsOAuthClient<HasAuthUrl = EndpointNotSet> = oauth2::Client<
    UpsErrorResponse,
    UpsTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    HasAuthUrl,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Failure of the HTTP exchange itself (not an OAuth error answer).
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot reach the UPS token endpoint: {0}")]
    Http(#[from] reqwest::Error),
    #[error("invalid token request: {0}")]
    Request(String),
}

/// Send one token request with `reqwest`, adding `x-merchant-id` when given.
pub async fn send(
    http: &reqwest::Client,
    merchant_id: Option<&str>,
    request: HttpRequest,
) -> Result<HttpResponse, TransportError> {
    let (parts, body) = request.into_parts();
    let mut req = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body);
    if let Some(m) = merchant_id {
        req = req.header("x-merchant-id", m);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await?.to_vec();
    let mut out = http::Response::builder().status(status);
    if let Some(h) = out.headers_mut() {
        *h = headers;
    }
    out.body(body)
        .map_err(|e| TransportError::Request(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ups_all_string_token_json_parses() {
        let json = r#"{"token_type":"Bearer","issued_at":"1686868088744","client_id":"c",
            "access_token":"tok","scope":"","expires_in":"14399","refresh_count":"0","status":"approved",
            "refresh_token":"r1","refresh_token_expires_in":"5183999"}"#;
        let t: UpsTokenResponse = serde_json::from_str(json).unwrap();
        assert_eq!(t.expires_in(), Some(Duration::from_secs(14399)));
        assert_eq!(t.refresh_token().unwrap().secret(), "r1");
        assert_eq!(
            t.refresh_token_expires_in(),
            Some(Duration::from_secs(5183999))
        );
    }

    #[test]
    fn ups_error_envelope_displays_code_and_message() {
        let e: UpsErrorResponse = serde_json::from_str(
            r#"{"response":{"errors":[{"code":"10401","message":"ClientId is Invalid"}]}}"#,
        )
        .unwrap();
        assert_eq!(e.to_string(), "UPS error 10401: ClientId is Invalid");
    }
}

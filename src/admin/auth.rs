//! Who may use the admin listener, and from where.
//!
//! - **Host check**: the `Host` header must name this listener (loopback names, the listen
//!   address, the `redirect_uri` host, or `[admin] hosts`), so a page on another site cannot
//!   reach it through a rebinding DNS name or a forged host.
//! - **Authentication**: everything but `/healthz`, `/readyz`, `/login`, the OAuth callback
//!   (bound to the browser that started the flow instead) and, with `[admin] metrics_public`,
//!   `/metrics`, needs the admin password (`[admin] password_hash`, argon2): a session cookie
//!   from `/login` (HttpOnly, SameSite=Lax) for browsers, HTTP Basic (`admin:<password>`)
//!   for the CLI and scripts.
//! - **CSRF**: state-changing actions are POSTs; a cookie-authenticated POST must carry the
//!   session's CSRF token and, when the browser sends one, an `Origin` naming this host.
//!
//! Never logs the password, a session id or a CSRF token.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use base64::Engine as _;
use dashmap::DashMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::accounts::password::PasswordTag;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "ub_session";
/// How long a login lasts.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// How a request is authenticated (if at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// A browser session (cookie): POSTs need its CSRF token.
    Session(String),
    /// HTTP Basic with the admin password (CLI, scripts): not CSRF-able.
    Basic,
    Nobody,
}

pub struct AdminAuth {
    password_hash: Option<String>,
    /// Tag of the password that last verified (argon2 once, then a keyed digest compare).
    verified: Mutex<Option<PasswordTag>>,
    sessions: DashMap<String, Instant>,
    hosts: Vec<String>,
    pub metrics_public: bool,
    /// Key for CSRF tokens (per process).
    csrf_key: [u8; 32],
}

impl AdminAuth {
    /// `hosts`: every host name (without port) requests may be addressed to.
    pub fn new(
        password_hash: Option<String>,
        hosts: Vec<String>,
        metrics_public: bool,
    ) -> AdminAuth {
        AdminAuth {
            password_hash,
            verified: Mutex::new(None),
            sessions: DashMap::new(),
            hosts: hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect(),
            metrics_public,
            csrf_key: rand::random(),
        }
    }

    pub fn configured(&self) -> bool {
        self.password_hash.is_some()
    }

    /// Is the `Host` header one of this listener's names?
    pub fn host_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
            return false;
        };
        self.hosts.iter().any(|h| *h == host_name(host))
    }

    /// Does a browser's `Origin` (when sent) name this listener too?
    pub fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
            None => true,
            Some(origin) => url::Url::parse(origin)
                .ok()
                .and_then(|u| {
                    u.host_str()
                        .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
                })
                .is_some_and(|h| {
                    self.hosts
                        .iter()
                        .any(|allowed| allowed.trim_matches(['[', ']']) == h)
                }),
        }
    }

    /// Check the admin password (argon2 the first time, a keyed digest after).
    pub async fn password_ok(&self, password: &str) -> bool {
        let Some(phc) = self.password_hash.clone() else {
            return false;
        };
        let tag = PasswordTag::of(password);
        if self
            .verified
            .lock()
            .expect("admin tag")
            .is_some_and(|t| t.matches(&tag))
        {
            return true;
        }
        let password = zeroize::Zeroizing::new(password.to_string());
        let ok = tokio::task::spawn_blocking(move || {
            crate::accounts::password::verify_slow(&phc, &password)
        })
        .await
        .unwrap_or(false);
        if ok {
            *self.verified.lock().expect("admin tag") = Some(tag);
        }
        ok
    }

    /// Start a browser session; returns its id (the cookie value).
    pub fn new_session(&self) -> String {
        let now = Instant::now();
        self.sessions.retain(|_, expires| *expires > now);
        let id = hex(&rand::random::<[u8; 32]>());
        self.sessions.insert(id.clone(), now + SESSION_TTL);
        id
    }

    pub fn end_session(&self, id: &str) {
        self.sessions.remove(id);
    }

    /// The session cookie line for `id`.
    pub fn session_cookie(id: &str) -> String {
        format!(
            "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}",
            SESSION_TTL.as_secs()
        )
    }

    /// Who sent this request.
    pub async fn who(&self, headers: &HeaderMap) -> Who {
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            if self
                .sessions
                .get(id)
                .is_some_and(|expires| *expires > Instant::now())
            {
                return Who::Session(id.to_string());
            }
        }
        let basic = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok());
        if let Some(userpass) = basic {
            let password = zeroize::Zeroizing::new(
                userpass
                    .split_once(':')
                    .map(|(_, p)| p.to_string())
                    .unwrap_or_default(),
            );
            if self.password_ok(&password).await {
                return Who::Basic;
            }
        }
        Who::Nobody
    }

    /// The CSRF token of a session (a keyed digest of its id).
    pub fn csrf_token(&self, session: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.csrf_key).expect("any key length");
        mac.update(session.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    pub fn csrf_ok(&self, session: &str, token: &str) -> bool {
        self.csrf_token(session)
            .as_bytes()
            .ct_eq(token.as_bytes())
            .into()
    }
}

/// `host[:port]` → `host` (lower case; IPv6 brackets kept).
fn host_name(host: &str) -> String {
    let h = host.trim().to_ascii_lowercase();
    if h.starts_with('[') {
        return h.split(']').next().map(|s| format!("{s}]")).unwrap_or(h);
    }
    h.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map(|(name, _)| name.to_string())
        .unwrap_or(h)
}

/// A cookie's value from the `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn host_and_origin_must_name_this_listener() {
        let a = AdminAuth::new(
            None,
            vec!["127.0.0.1".into(), "localhost".into(), "[::1]".into()],
            false,
        );
        assert!(a.host_allowed(&headers(&[("host", "127.0.0.1:9090")])));
        assert!(a.host_allowed(&headers(&[("host", "LOCALHOST")])));
        assert!(a.host_allowed(&headers(&[("host", "[::1]:9090")])));
        assert!(!a.host_allowed(&headers(&[("host", "evil.example")])));
        assert!(!a.host_allowed(&headers(&[])));
        assert!(a.origin_allowed(&headers(&[])));
        assert!(a.origin_allowed(&headers(&[("origin", "http://127.0.0.1:9090")])));
        assert!(!a.origin_allowed(&headers(&[("origin", "http://evil.example")])));
    }

    #[test]
    fn csrf_tokens_are_per_session() {
        let a = AdminAuth::new(None, vec![], false);
        let s1 = a.new_session();
        let s2 = a.new_session();
        assert!(a.csrf_ok(&s1, &a.csrf_token(&s1)));
        assert!(!a.csrf_ok(&s2, &a.csrf_token(&s1)));
    }
}

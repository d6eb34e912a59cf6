//! UPS OAuth: `/security/v1/oauth/{token,refresh,authorize}`. Every body field
//! is a JSON string, as UPS answers. Tokens and secrets are never logged.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::response::Response;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::dispatch::Req;
use super::reply::{self, esc, form, html, page, qenc, ups_error};
use super::state::{random_string, AuthCode, Grant, Issued, Sim, CODE_TTL};

pub async fn handle(sim: &Sim, req: &Req) -> Response {
    let m = &req.parts.method;
    match req.path() {
        "/security/v1/oauth/token" if m == Method::POST => token(sim, req).await,
        "/security/v1/oauth/refresh" if m == Method::POST => refresh(sim, req).await,
        "/security/v1/oauth/authorize" if m == Method::GET => authorize_page(sim, req),
        "/security/v1/oauth/authorize" if m == Method::POST => authorize_submit(sim, req),
        "/security/v1/oauth/token"
        | "/security/v1/oauth/refresh"
        | "/security/v1/oauth/authorize" => reply::method_not_allowed(),
        _ => reply::not_found(),
    }
}

fn invalid_client() -> Response {
    ups_error(401, "10401", "ClientId is Invalid")
}

fn invalid_grant() -> Response {
    ups_error(400, "10400", "Invalid/Missing grant_type")
}

fn invalid_code() -> Response {
    ups_error(400, "10400", "Invalid Authorization Code")
}

/// `Authorization: Basic base64(id:secret)` → (id, secret).
fn basic_auth(req: &Req) -> Option<(String, String)> {
    let h = req.header("authorization")?;
    let (scheme, rest) = h.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// Apply `token_latency_ms`, then `token_status` if set.
async fn token_faults(sim: &Sim) -> Option<Response> {
    let f = sim.faults();
    if f.token_latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(f.token_latency_ms)).await;
    }
    f.token_status.map(reply::fault_error)
}

fn token_body(sim: &Sim, client_id: &str, issued: &Issued) -> Value {
    let mut v = json!({
        "token_type": "Bearer",
        "issued_at": issued.issued_at_ms.to_string(),
        "client_id": client_id,
        "access_token": issued.access_token,
        "scope": "",
        "expires_in": sim.token_ttl.as_secs().to_string(),
        "refresh_count": issued.refresh.as_ref().map(|r| r.1).unwrap_or(0).to_string(),
        "status": "approved",
    });
    if let (Some((rt, _)), Some(o)) = (&issued.refresh, v.as_object_mut()) {
        o.insert("refresh_token".into(), json!(rt));
        o.insert(
            "refresh_token_expires_in".into(),
            json!(sim.refresh_ttl.as_secs().to_string()),
        );
        o.insert("refresh_token_status".into(), json!("approved"));
        o.insert(
            "refresh_token_issued_at".into(),
            json!(issued.issued_at_ms.to_string()),
        );
    }
    v
}

/// `POST /security/v1/oauth/token`: client credentials or authorization code.
async fn token(sim: &Sim, req: &Req) -> Response {
    let f = form(&req.body);
    let grant = f.get("grant_type").map(String::as_str).unwrap_or("");
    match grant {
        "client_credentials" => sim.count_grant(Grant::ClientCredentials),
        "authorization_code" => sim.count_grant(Grant::AuthorizationCode),
        "refresh_token" => sim.count_grant(Grant::RefreshToken),
        _ => {}
    }
    if let Some(r) = token_faults(sim).await {
        return r;
    }
    let basic = basic_auth(req);
    match grant {
        "client_credentials" => {
            let Some((id, secret)) = basic else {
                return invalid_client();
            };
            if !sim.check_client(&id, &secret) {
                return invalid_client();
            }
            let merchant = req
                .header("x-merchant-id")
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty());
            let issued = sim.issue(&id, merchant.clone(), None);
            tracing::debug!(client_id = %id, merchant = ?merchant, "issued client-credentials token");
            reply::ok(&token_body(sim, &id, &issued))
        }
        "authorization_code" => auth_code_token(sim, req, &f, basic),
        _ => {
            // Unknown grant: still refuse bad credentials first, as UPS does.
            match basic {
                Some((id, secret)) if sim.check_client(&id, &secret) => invalid_grant(),
                _ => invalid_client(),
            }
        }
    }
}

fn auth_code_token(
    sim: &Sim,
    req: &Req,
    f: &HashMap<String, String>,
    basic: Option<(String, String)>,
) -> Response {
    let verifier = f.get("code_verifier").filter(|v| !v.is_empty());
    // Basic auth, or (PKCE flow) client_id in the body with a code_verifier.
    let client_id = match basic {
        Some((id, secret)) => {
            if !sim.check_client(&id, &secret) {
                return invalid_client();
            }
            id
        }
        None => match (f.get("client_id"), verifier) {
            (Some(id), Some(_)) if sim.is_client(id) => id.clone(),
            _ => return invalid_client(),
        },
    };
    let Some(code) = f.get("code").filter(|c| !c.is_empty()) else {
        return invalid_code();
    };
    // Single use: the code is gone whatever the outcome.
    let Some(ac) = sim.lock().codes.remove(code) else {
        return invalid_code();
    };
    if ac.expires_at <= Instant::now() || ac.client_id != client_id {
        return invalid_code();
    }
    if f.get("redirect_uri") != Some(&ac.redirect_uri) {
        return ups_error(400, "10400", "Invalid redirect_uri");
    }
    if let Some(challenge) = &ac.code_challenge {
        let Some(v) = verifier else {
            return ups_error(400, "10400", "Invalid code_verifier");
        };
        let method = ac.code_challenge_method.as_deref().unwrap_or("plain");
        let computed = if method.eq_ignore_ascii_case("S256") {
            URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes()))
        } else {
            v.clone()
        };
        if &computed != challenge {
            return ups_error(400, "10400", "Invalid code_verifier");
        }
    }
    let merchant = req
        .header("x-merchant-id")
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty());
    let issued = sim.issue(&client_id, merchant, Some(0));
    tracing::debug!(client_id = %client_id, "issued authorization-code tokens");
    reply::ok(&token_body(sim, &client_id, &issued))
}

/// `POST /security/v1/oauth/refresh`: rotate the refresh token.
async fn refresh(sim: &Sim, req: &Req) -> Response {
    sim.count_grant(Grant::RefreshToken);
    if let Some(r) = token_faults(sim).await {
        return r;
    }
    let f = form(&req.body);
    let Some((id, secret)) = basic_auth(req) else {
        return invalid_client();
    };
    if !sim.check_client(&id, &secret) {
        return invalid_client();
    }
    if f.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return invalid_grant();
    }
    let invalid = || ups_error(401, "10401", "Invalid Refresh Token");
    let Some(rt) = f.get("refresh_token").filter(|t| !t.is_empty()) else {
        return invalid();
    };
    let count = {
        let mut g = sim.lock();
        match g.refresh.get(rt) {
            Some(t) if t.client_id == id && t.expires_at > Instant::now() => {
                let count = t.refresh_count + 1;
                g.refresh.remove(rt);
                count
            }
            _ => return invalid(),
        }
    };
    let issued = sim.issue(&id, None, Some(count));
    tracing::debug!(client_id = %id, refresh_count = count, "refresh token rotated");
    reply::ok(&token_body(sim, &id, &issued))
}

/// The query/form fields the login page carries through.
const CARRIED: [&str; 6] = [
    "client_id",
    "redirect_uri",
    "response_type",
    "state",
    "scope",
    "code_challenge",
];

fn login_page(p: &HashMap<String, String>, error: Option<&str>) -> String {
    let mut hidden = String::new();
    for k in CARRIED.iter().chain(["code_challenge_method"].iter()) {
        if let Some(v) = p.get(*k) {
            hidden.push_str(&format!(
                "<input type=\"hidden\" name=\"{k}\" value=\"{}\">\n",
                esc(v)
            ));
        }
    }
    let err = error
        .map(|e| format!("<p class=\"error\" id=\"error\">{}</p>\n", esc(e)))
        .unwrap_or_default();
    let client = p.get("client_id").map(String::as_str).unwrap_or("");
    page(
        "UPS Login",
        &format!(
            "<p>The application <b>{}</b> asks for access to your UPS account.</p>\n{err}\
<form method=\"post\" action=\"/security/v1/oauth/authorize\">\n{hidden}\
<label for=\"user\">User ID</label> <input type=\"text\" id=\"user\" name=\"user\">\n\
<label for=\"password\">Password</label> <input type=\"password\" id=\"password\" name=\"password\">\n\
<button type=\"submit\" id=\"allow\">Allow</button>\n</form>",
            esc(client)
        ),
    )
}

/// Why the authorize parameters cannot be used, if they cannot.
fn authorize_problem(sim: &Sim, p: &HashMap<String, String>) -> Option<String> {
    match p.get("client_id").filter(|c| !c.is_empty()) {
        None => return Some("Missing client_id.".to_string()),
        Some(c) if !sim.is_client(c) => return Some(format!("Unknown client_id {c:?}.")),
        Some(_) => {}
    }
    if p.get("redirect_uri").is_none_or(|r| r.is_empty()) {
        return Some("Missing redirect_uri.".to_string());
    }
    if p.get("response_type").map(String::as_str) != Some("code") {
        return Some("response_type must be \"code\".".to_string());
    }
    None
}

fn bad_authorize(problem: &str) -> Response {
    html(
        StatusCode::BAD_REQUEST,
        page(
            "Invalid authorization request",
            &format!("<p id=\"error\">{}</p>", esc(problem)),
        ),
    )
}

fn authorize_page(sim: &Sim, req: &Req) -> Response {
    let p = form(req.query().as_bytes());
    if let Some(problem) = authorize_problem(sim, &p) {
        return bad_authorize(&problem);
    }
    html(StatusCode::OK, login_page(&p, None))
}

fn authorize_submit(sim: &Sim, req: &Req) -> Response {
    let p = form(&req.body);
    if let Some(problem) = authorize_problem(sim, &p) {
        return bad_authorize(&problem);
    }
    let filled = |k: &str| p.get(k).is_some_and(|v| !v.is_empty());
    if !filled("user") || !filled("password") {
        return html(
            StatusCode::OK,
            login_page(&p, Some("Enter your User ID and Password.")),
        );
    }
    let (Some(client_id), Some(redirect_uri)) = (p.get("client_id"), p.get("redirect_uri")) else {
        return bad_authorize("Missing client_id or redirect_uri.");
    };
    let code = random_string(40);
    sim.lock().codes.insert(
        code.clone(),
        AuthCode {
            client_id: client_id.clone(),
            redirect_uri: redirect_uri.clone(),
            code_challenge: p.get("code_challenge").filter(|c| !c.is_empty()).cloned(),
            code_challenge_method: p.get("code_challenge_method").cloned(),
            expires_at: Instant::now() + CODE_TTL,
        },
    );
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let mut location = format!("{redirect_uri}{sep}code={}", qenc(&code));
    if let Some(state) = p.get("state") {
        location.push_str("&state=");
        location.push_str(&qenc(state));
    }
    tracing::debug!(client_id = %client_id, "authorization code issued");
    reply::redirect(&location)
}

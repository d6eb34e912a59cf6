//! The ops HTTP surface on `[admin] listen`: health, readiness, metrics and
//! account status. Never shows a secret: account rows carry names, numbers and
//! token state only.

use std::sync::atomic::Ordering;
use std::sync::Arc;

pub mod onboarding;
pub mod page;

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tracing::{error, info, warn};

use crate::accounts::Accounts;
use crate::metrics::Metrics;
use crate::oauth::{TokenBroker, TokenStatus};
use onboarding::{CallbackError, Onboarding};

#[derive(Clone)]
pub struct AdminState {
    pub accounts: Arc<Accounts>,
    pub broker: TokenBroker,
    pub metrics: Arc<Metrics>,
    pub onboarding: Arc<Onboarding>,
}

/// One account as `/api/accounts` and `accounts list` show it.
#[derive(Debug, Serialize)]
pub struct AccountView {
    pub name: String,
    pub ups_account_number: String,
    pub grant: &'static str,
    pub token: TokenStatus,
    pub last_error: Option<String>,
}

impl AdminState {
    pub fn account_views(&self) -> Vec<AccountView> {
        let snapshot = self.accounts.snapshot();
        let mut views: Vec<AccountView> = snapshot
            .iter()
            .map(|a| {
                let token = self.broker.status(a);
                AccountView {
                    name: a.record.name.clone(),
                    ups_account_number: a.record.ups_account_number.clone(),
                    grant: a.record.grant.as_str(),
                    last_error: token.last_error.clone(),
                    token,
                }
            })
            .collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        views
    }
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/", get(ops_page))
        .route("/accounts/{name}/authorize", get(authorize))
        .route("/oauth/callback", get(callback))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/accounts", get(accounts))
        .with_state(state)
}

/// Serve the admin router on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, state: AdminState) {
    if let Err(e) = axum::serve(listener, router(state)).await {
        error!(error = %e, "admin listener failed");
    }
}

async fn ops_page(
    State(s): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
) -> Html<String> {
    let flash = match (q.get("authorized"), q.get("error")) {
        (Some(name), _) => Some((
            format!("Account {name} is authorized; its tokens are stored."),
            true,
        )),
        (_, Some(e)) => Some((e.clone(), false)),
        _ => None,
    };
    Html(page::render(
        &s.account_views(),
        &s.accounts.status(),
        flash.as_ref().map(|(m, ok)| (m.as_str(), *ok)),
    ))
}

fn bad_request(title: &str, text: &str) -> Response {
    (StatusCode::BAD_REQUEST, Html(page::message(title, text))).into_response()
}

async fn authorize(State(s): State<AdminState>, Path(name): Path<String>) -> Response {
    let Some(account) = s.accounts.snapshot().by_name(&name).cloned() else {
        return (
            StatusCode::NOT_FOUND,
            Html(page::message(
                "Unknown account",
                &format!("No account `{name}` in the account map."),
            )),
        )
            .into_response();
    };
    match s.onboarding.start(&account) {
        Ok(url) => {
            info!(account = %name, "authorization started");
            Redirect::to(url.as_str()).into_response()
        }
        Err(why) => bad_request("Nothing to authorize", &why),
    }
}

async fn callback(
    State(s): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let state = q.get("state").map(String::as_str).unwrap_or("");
    // The state is consumed whatever happens next: a link works once.
    let taken = s.onboarding.take(state);
    if let Some(e) = q.get("error") {
        let detail = q.get("error_description").map(String::as_str).unwrap_or("");
        warn!(error = %e, "authorization refused at UPS");
        return bad_request(
            "Authorization not completed",
            &CallbackError::Refused(format!("{e} {detail}")).to_string(),
        );
    }
    let (name, verifier) = match taken {
        Ok(t) => t,
        Err(e) => {
            warn!("authorization callback with an unknown, reused or expired state");
            return bad_request("Authorization not completed", &e.to_string());
        }
    };
    let Some(code) = q.get("code").filter(|c| !c.is_empty()) else {
        return bad_request(
            "Authorization not completed",
            "UPS sent no authorization code.",
        );
    };
    let account = match Onboarding::account_for(&s.accounts, &name) {
        Ok(a) => a,
        Err(e) => return bad_request("Authorization not completed", &e.to_string()),
    };
    match s
        .broker
        .complete_authorization(
            &account,
            code,
            &verifier,
            s.onboarding.redirect_uri.as_str(),
        )
        .await
    {
        Ok(()) => {
            info!(account = %name, "account authorized; tokens stored");
            Redirect::to(&format!("/?authorized={name}")).into_response()
        }
        Err(e) => {
            warn!(account = %name, error = %e, "authorization code exchange failed");
            bad_request(
                "Authorization not completed",
                &CallbackError::Refused(e.to_string()).to_string(),
            )
        }
    }
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    let status = s.accounts.status();
    if status.loaded_at.is_some() {
        (
            StatusCode::OK,
            format!("ready: {} accounts\n", status.accounts),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "account map not loaded\n".to_string(),
        )
    }
}

async fn accounts(State(s): State<AdminState>) -> Json<Vec<AccountView>> {
    Json(s.account_views())
}

async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    let c = s.broker.counters();
    let map = s.accounts.status();
    let extra = format!(
        "# HELP upsbridge_token_requests_total Token requests sent to UPS.\n# TYPE upsbridge_token_requests_total counter\nupsbridge_token_requests_total {}\n\
         # HELP upsbridge_token_failures_total Token requests that failed.\n# TYPE upsbridge_token_failures_total counter\nupsbridge_token_failures_total {}\n\
         # HELP upsbridge_accounts Accounts in the map in force.\n# TYPE upsbridge_accounts gauge\nupsbridge_accounts {}\n\
         # HELP upsbridge_map_reloads_total Successful account map reloads.\n# TYPE upsbridge_map_reloads_total counter\nupsbridge_map_reloads_total {}\n\
         # HELP upsbridge_map_rejections_total Rejected account map versions.\n# TYPE upsbridge_map_rejections_total counter\nupsbridge_map_rejections_total {}\n",
        c.requests.load(Ordering::Relaxed),
        c.failures.load(Ordering::Relaxed),
        map.accounts,
        map.reloads,
        map.rejections,
    );
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(&extra),
    )
}

/// Lines for `accounts list`: from the running server's admin listener when it is up,
/// else from the store (sled allows one process, so never both).
pub fn list(config: &crate::config::Config) -> Result<Vec<String>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("http://{}/api/accounts", config.admin.listen);
    let live = rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(3))
            .build()
            .ok()?;
        client
            .get(&url)
            .send()
            .await
            .ok()?
            .json::<Vec<serde_json::Value>>()
            .await
            .ok()
    });
    if let Some(rows) = live {
        return Ok(rows
            .iter()
            .map(|r| {
                let t = |p: &str| {
                    r.pointer(p)
                        .map(crate::dialect::json_text_value)
                        .unwrap_or_default()
                };
                format!(
                    "{}\t{}\t{}\t{}{}",
                    t("/name"),
                    t("/ups_account_number"),
                    t("/grant"),
                    t("/token/state"),
                    match t("/token/expires_at").as_str() {
                        "" => String::new(),
                        e => format!(" until {e}"),
                    }
                )
            })
            .collect());
    }
    let store = crate::store::Store::open(&config.store.path).map_err(|e| e.to_string())?;
    let records = store.accounts().map_err(|e| e.to_string())?;
    Ok(records
        .iter()
        .map(|r| {
            let state = match store.token(&r.name) {
                Ok(Some(_)) => "stored token (server not running)",
                _ if r.grant == crate::accounts::Grant::AuthorizationCode => "needs_authorization",
                _ => "missing (server not running)",
            };
            format!(
                "{}\t{}\t{}\t{}",
                r.name,
                r.ups_account_number,
                r.grant.as_str(),
                state
            )
        })
        .collect())
}

/// `accounts authorize NAME`: ask the running server for a UPS login URL, print it, and wait
/// until the account's token is valid. The callback must reach the server's admin listener.
pub fn authorize_from_terminal(config: &crate::config::Config, name: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let admin = format!("http://{}", config.admin.listen);
    rt.block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        let r = http
            .get(format!("{admin}/accounts/{name}/authorize"))
            .send()
            .await
            .map_err(|_| format!("no upsbridge server answers at {admin}; start `upsbridge serve` first (UPS sends the account owner back to its admin listener)"))?;
        let Some(url) = r.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_string) else {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            let why = text.split("id=\"message\">").nth(1).and_then(|t| t.split('<').next()).unwrap_or("").to_string();
            return Err(format!("the server refused ({status}): {why}"));
        };
        println!("Open this URL in a browser, log in as the UPS account owner and click Allow:\n\n  {url}\n\nWaiting for UPS to send you back to {admin}/oauth/callback …");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
        let before = account_state(&http, &admin, name).await;
        while std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let now = account_state(&http, &admin, name).await;
            if now.0.as_deref() == Some("valid") && now.1 != before.1 {
                println!("Account {name} is authorized; its tokens are stored.");
                return Ok(());
            }
        }
        Err("no authorization arrived within 10 minutes; run the command again for a new link".into())
    })
}

/// (token state, expiry) of an account, from the running server.
async fn account_state(
    http: &reqwest::Client,
    admin: &str,
    name: &str,
) -> (Option<String>, Option<u64>) {
    let rows: Vec<serde_json::Value> = match http.get(format!("{admin}/api/accounts")).send().await
    {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => vec![],
    };
    rows.iter()
        .find(|r| r["name"] == name)
        .map(|r| {
            (
                r.pointer("/token/state")
                    .and_then(|s| s.as_str())
                    .map(str::to_string),
                r.pointer("/token/expires_at").and_then(|s| s.as_u64()),
            )
        })
        .unwrap_or((None, None))
}

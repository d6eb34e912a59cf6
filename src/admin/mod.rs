//! The ops HTTP surface on `[admin] listen`: health, readiness, metrics and
//! account status. Never shows a secret: account rows carry names, numbers and
//! token state only.

use std::sync::Arc;

pub mod auth;
pub mod onboarding;
pub mod page;
pub mod ready;

use std::collections::HashMap;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Json, Router};
use serde::Serialize;
use tracing::{error, info, warn};

use crate::accounts::Accounts;
use crate::metrics::Metrics;
use crate::oauth::{TokenBroker, TokenStatus};
use onboarding::{CallbackError, Onboarding};

#[derive(Clone)]
pub struct AdminState {
    pub accounts: Arc<Accounts>,
    pub store: crate::store::Store,
    /// The store's readiness, probed at most once a second (`/readyz`, the ops page).
    pub store_probe: Arc<ready::StoreProbe>,
    pub broker: TokenBroker,
    pub metrics: Arc<Metrics>,
    pub onboarding: Arc<Onboarding>,
    pub auth: Arc<auth::AdminAuth>,
    /// Answers in a row without asked-for negotiated rates before the page says why.
    pub negotiated_threshold: u32,
    /// `[ups]`: where each environment is, the default one and the host policy.
    pub ups: Arc<crate::config::UpsConfig>,
    /// `[admin] map_writable` (`None`: write when the map file is writable).
    pub map_writable: Option<bool>,
}

/// One account in detail: what the account view and `/api/accounts/{name}` show.
#[derive(Debug, Serialize)]
pub struct AccountDetail {
    #[serde(flatten)]
    pub view: AccountView,
    /// `production` or `cie`.
    pub environment: &'static str,
    /// Where its calls go (that environment's UPS, or a simulator).
    pub ups_base: String,
    /// `[ups] host_policy`, and how many of its requests called the other environment's host.
    pub host_policy: &'static str,
    pub host_mismatches: u64,
    /// What the legacy program sends (never its password).
    pub access_license_number: String,
    pub user_id: String,
    pub traffic: crate::metrics::traffic::Summary,
}

/// One account as `/api/accounts` and `accounts list` show it.
#[derive(Debug, Serialize)]
pub struct AccountView {
    pub name: String,
    pub ups_account_number: String,
    pub grant: &'static str,
    pub token: TokenStatus,
    pub last_error: Option<String>,
    /// What the account's traffic says is wrong, and the fix (never from a client's input).
    pub diagnosis: Option<String>,
    /// Ops disabled it: its requests are refused.
    pub disabled: bool,
}

impl AdminState {
    pub async fn account_views(&self) -> Vec<AccountView> {
        // The map as of now (an owned snapshot: nothing is held while the store answers).
        let accounts: Vec<Arc<crate::accounts::Account>> =
            self.accounts.snapshot().iter().cloned().collect();
        let tokens =
            futures::future::join_all(accounts.iter().map(|a| self.broker.status(a))).await;
        let mut views: Vec<AccountView> = accounts
            .iter()
            .zip(tokens)
            .map(|(a, token)| {
                let diagnosis =
                    (token.negotiated_rates_missing >= self.negotiated_threshold).then(|| {
                        page::silent_negotiated_rates_fix(
                            &a.record.ups_account_number,
                            token.negotiated_rates_missing,
                        )
                    });
                AccountView {
                    name: a.record.name.clone(),
                    ups_account_number: a.record.ups_account_number.clone(),
                    grant: a.record.grant.as_str(),
                    last_error: token.last_error.clone(),
                    diagnosis,
                    disabled: self.accounts.is_disabled(&a.record.name),
                    token,
                }
            })
            .collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        views
    }
}

pub fn router(state: AdminState) -> Router {
    let admin_only = middleware::from_fn_with_state(state.clone(), require_admin);
    let mut protected = Router::new()
        .route("/", get(ops_page))
        .route(
            "/accounts/{name}/authorize",
            get(authorize_confirm).post(authorize),
        )
        .route("/api/accounts", get(accounts))
        .route("/accounts/new", get(new_account_form).post(new_account))
        .route("/accounts/{name}", get(account_page))
        .route("/api/accounts/{name}", get(account_detail))
        .route("/accounts/{name}/disable", post(disable))
        .route("/accounts/{name}/enable", post(enable))
        .route("/logout", post(logout));
    let mut open = Router::new()
        .route("/login", get(login_form).post(login))
        .route("/oauth/callback", get(callback))
        .route("/oauth/start/{ticket}", get(start_from_ticket))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz));
    if state.auth.metrics_public {
        open = open.route("/metrics", get(metrics));
    } else {
        protected = protected.route("/metrics", get(metrics));
    }
    protected
        .layer(admin_only)
        .merge(open)
        .layer(middleware::from_fn_with_state(state.clone(), check_host))
        .with_state(state)
}

/// Limits on admin connections (an exposed admin listener must not be held open by a slow
/// or idle client).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Whole request head within this (also the idle wait for a kept-alive connection's
    /// next request).
    pub header_read_timeout: std::time::Duration,
    /// Connections at once; more are closed at accept.
    pub max_connections: usize,
}

/// How the admin listener takes part in a shutdown (`server::exit_once_drained`).
pub struct Drain {
    /// One permit per open connection, held until the connection has closed: the exit waits
    /// for all of them. Sized by [`Limits::max_connections`].
    pub slots: Arc<tokio::sync::Semaphore>,
    /// Turns true when the shutdown starts: the listener closes, idle connections close at
    /// once, and a request in progress is answered (its response written) before its
    /// connection closes. A dropped sender means no shutdown is coming this way.
    pub stop: tokio::sync::watch::Receiver<bool>,
}

/// Serve the admin router on `listener` until the process ends or `drain.stop` turns true,
/// with `limits`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    limits: Limits,
    drain: Drain,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let app = router(state);
    let mut stop = drain.stop.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // The listener is dropped on return: new connections are refused.
            () = stopping(&mut stop) => return,
        };
        let (stream, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                error!(error = %e, "admin listener: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = drain.slots.clone().try_acquire_owned() else {
            warn!(%peer, max = limits.max_connections, "admin connection refused: too many open; raise [admin] max_connections if this is legitimate");
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut stop = drain.stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let conn = http.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let ended = tokio::select! {
                ended = conn.as_mut() => ended,
                () = stopping(&mut stop) => {
                    // Finish the request in progress (a save, an OAuth callback), then close.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "admin connection ended");
            }
        });
    }
}

/// Resolves once `stop` turns true; never, if its sender is dropped first.
async fn stopping(stop: &mut tokio::sync::watch::Receiver<bool>) {
    if stop.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Requests must name this listener in `Host` (health probes excepted).
async fn check_host(State(s): State<AdminState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/healthz" || path == "/readyz" || s.auth.host_allowed(req.headers()) {
        return next.run(req).await;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    warn!(host = %host, path, "admin request for another host refused; add the name to [admin] hosts if it is this listener's");
    (
        StatusCode::MISDIRECTED_REQUEST,
        Html(page::message(
            "Wrong host",
            "This admin listener does not answer for that host name. If it is reached by that name on purpose, add it to [admin] hosts.",
        )),
    )
        .into_response()
}

/// The admin password (session cookie or HTTP Basic) for everything but the open routes;
/// a browser POST must come from this host's pages (`Origin`).
async fn require_admin(State(s): State<AdminState>, mut req: Request, next: Next) -> Response {
    if !s.auth.configured() {
        return (
            StatusCode::UNAUTHORIZED,
            Html(page::message(
                "Admin password not set",
                "Set [admin] password_hash in the config (printf '%s' PASSWORD | upsbridge accounts hash-password) and restart; until then only /healthz and /readyz answer.",
            )),
        )
            .into_response();
    }
    let who = s.auth.who(req.headers()).await;
    if who == auth::Who::Nobody {
        let browser = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        if browser && req.method() == http::Method::GET {
            return Redirect::to("/login").into_response();
        }
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"upsbridge admin\"")],
            "admin password required (log in at /login, or HTTP Basic admin:PASSWORD)\n",
        )
            .into_response();
    }
    if req.method() == http::Method::POST
        && matches!(who, auth::Who::Session(_))
        && !s.auth.origin_allowed(req.headers())
    {
        warn!("cross-site admin POST refused (Origin names another site)");
        return (StatusCode::FORBIDDEN, "cross-site request refused\n").into_response();
    }
    req.extensions_mut().insert(who);
    next.run(req).await
}

/// What the ops page may announce: codes, never text taken from the URL.
fn flash_for(s: &AdminState, q: &HashMap<String, String>) -> Option<(String, bool)> {
    let account = q
        .get("account")
        .filter(|n| s.accounts.snapshot().by_name(n).is_some());
    match (q.get("flash").map(String::as_str), account) {
        (Some("authorized"), Some(name)) => Some((
            format!("Account {name} is authorized; its tokens are stored."),
            true,
        )),
        (Some("logged_in"), _) => Some(("Logged in.".into(), true)),
        (Some("disabled"), Some(name)) => Some((
            format!(
                "Account {name} is disabled: its requests are refused until it is enabled again."
            ),
            true,
        )),
        (Some("enabled"), Some(name)) => Some((format!("Account {name} is enabled."), true)),
        (Some("added"), Some(name)) => Some((
            format!("Account {name} is added to the account map and in force."),
            true,
        )),
        _ => None,
    }
}

async fn ops_page(
    State(s): State<AdminState>,
    Extension(who): Extension<auth::Who>,
    Query(q): Query<HashMap<String, String>>,
) -> Html<String> {
    let flash = flash_for(&s, &q);
    let csrf = csrf_for(&s, &who);
    // The probe first: a database that did not answer it is not asked again for the maps.
    let probe = s.store_probe.check().await;
    let instances = match &probe.answer {
        Ok(()) => s.store.instance_maps().await.map_err(|e| e.to_string()),
        Err(why) => Err(why.clone()),
    };
    let leases = match &probe.answer {
        Ok(()) => {
            let names: Vec<String> = s
                .accounts
                .snapshot()
                .iter()
                .map(|a| a.name().to_string())
                .collect();
            s.store.lease_holders(&names).await.unwrap_or_default()
        }
        Err(_) => vec![],
    };
    let store = page::StoreView {
        backend: s.store.backend_name(),
        database: s
            .store
            .postgres()
            .map(|pg| (pg.target().to_string(), pg.instance().to_string())),
        instances,
        leases,
        probe,
    };
    Html(page::render(
        &s.account_views().await,
        &s.accounts.status(),
        &store,
        flash.as_ref().map(|(m, ok)| (m.as_str(), *ok)),
        &csrf,
    ))
}

fn bad_request(title: &str, text: &str) -> Response {
    (StatusCode::BAD_REQUEST, Html(page::message(title, text))).into_response()
}

async fn login_form() -> Html<String> {
    Html(page::login(None))
}

async fn login(State(s): State<AdminState>, Form(f): Form<HashMap<String, String>>) -> Response {
    let password = zeroize::Zeroizing::new(f.get("password").cloned().unwrap_or_default());
    if !s.auth.configured() || !s.auth.password_ok(&password).await {
        warn!("admin login refused (wrong password)");
        return (
            StatusCode::UNAUTHORIZED,
            Html(page::login(Some("Wrong password."))),
        )
            .into_response();
    }
    let id = s.auth.new_session();
    info!("admin logged in");
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, auth::AdminAuth::session_cookie(&id)),
            (header::LOCATION, "/?flash=logged_in".to_string()),
        ],
    )
        .into_response()
}

async fn logout(State(s): State<AdminState>, Extension(who): Extension<auth::Who>) -> Response {
    if let auth::Who::Session(id) = who {
        s.auth.end_session(&id);
    }
    Redirect::to("/login").into_response()
}

fn unknown_account(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(page::message(
            "Unknown account",
            &format!("No account `{name}` in the account map."),
        )),
    )
        .into_response()
}

/// A GET (bookmark, old link) only shows the button: starting a flow is a POST.
async fn authorize_confirm(
    State(s): State<AdminState>,
    Extension(who): Extension<auth::Who>,
    Path(name): Path<String>,
) -> Response {
    if s.accounts.snapshot().by_name(&name).is_none() {
        return unknown_account(&name);
    }
    let csrf = csrf_for(&s, &who);
    Html(page::confirm_authorize(&name, &csrf)).into_response()
}

/// Start authorization-code onboarding. A browser (session + CSRF token) is sent to UPS
/// with the flow cookie; the CLI (Basic) gets a start link as JSON for the owner's browser.
async fn authorize(
    State(s): State<AdminState>,
    Extension(who): Extension<auth::Who>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Some(account) = s.accounts.snapshot().by_name(&name).cloned() else {
        return unknown_account(&name);
    };
    match who {
        auth::Who::Session(_) => {
            if let Some(refused) = csrf_refused(&s, &who, &body) {
                warn!(account = %name, "authorize POST without a valid CSRF token refused");
                return refused;
            }
            info!(account = %name, "authorization started");
            to_ups(&s, &account).await
        }
        _ => match s.onboarding.ticket(&account).await {
            Ok(url) => {
                info!(account = %name, "authorization start link issued");
                Json(serde_json::json!({"start_url": url.as_str()})).into_response()
            }
            Err(why) => (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({"error": why.to_string()})),
            )
                .into_response(),
        },
    }
}

/// The CSRF token to put in this caller's forms (none for Basic callers).
fn csrf_for(s: &AdminState, who: &auth::Who) -> String {
    match who {
        auth::Who::Session(id) => s.auth.csrf_token(id),
        _ => String::new(),
    }
}

/// Start an authorization flow bound to this browser: 303 to UPS's login with the flow cookie.
async fn to_ups(s: &AdminState, account: &crate::accounts::Account) -> Response {
    match s.onboarding.start(account).await {
        Ok((url, browser)) => (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, Onboarding::flow_cookie(&browser)),
                (header::LOCATION, url.to_string()),
            ],
        )
            .into_response(),
        Err(why @ onboarding::StartError::NotAuthorizationCode(_)) => {
            bad_request("Nothing to authorize", &why.to_string())
        }
        Err(why) => {
            warn!(account = %account.name(), error = %why, "authorization not started");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(page::message("Authorization not started", &why.to_string())),
            )
                .into_response()
        }
    }
}

/// The CSRF check for a form POST from a browser session (Basic callers are not CSRF-able).
fn csrf_refused(s: &AdminState, who: &auth::Who, body: &[u8]) -> Option<Response> {
    let auth::Who::Session(id) = who else {
        return None;
    };
    let token = url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned());
    if token.is_some_and(|t| s.auth.csrf_ok(id, &t)) {
        return None;
    }
    Some(
        (
            StatusCode::FORBIDDEN,
            Html(page::message(
                "Refused",
                "This form is stale or came from another site; open the ops page and try again.",
            )),
        )
            .into_response(),
    )
}

async fn disable(
    State(s): State<AdminState>,
    Extension(who): Extension<auth::Who>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    set_disabled(s, who, name, body, true).await
}

async fn enable(
    State(s): State<AdminState>,
    Extension(who): Extension<auth::Who>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    set_disabled(s, who, name, body, false).await
}

/// Disable or enable an account: a browser goes back to the page, the CLI gets JSON.
async fn set_disabled(
    s: AdminState,
    who: auth::Who,
    name: String,
    body: axum::body::Bytes,
    disabled: bool,
) -> Response {
    if let Some(refused) = csrf_refused(&s, &who, &body) {
        return refused;
    }
    if s.accounts.snapshot().by_name(&name).is_none() {
        return unknown_account(&name);
    }
    if let Err(e) = s.accounts.set_disabled(&name, disabled).await {
        error!(account = %name, error = %e, "could not record the account's state");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Html(page::message(
                "Not saved",
                "upsbridge could not write its store; see its log.",
            )),
        )
            .into_response();
    }
    info!(account = %name, disabled, "account {} on the ops page", if disabled { "disabled" } else { "enabled" });
    match who {
        auth::Who::Session(_) => {
            let code = if disabled { "disabled" } else { "enabled" };
            Redirect::to(&format!("/?flash={code}&account={name}")).into_response()
        }
        _ => Json(serde_json::json!({"name": name, "disabled": disabled})).into_response(),
    }
}

/// A terminal-issued start link: bind this browser to a new flow and go to UPS.
async fn start_from_ticket(State(s): State<AdminState>, Path(ticket): Path<String>) -> Response {
    let name = match s.onboarding.take_ticket(&ticket).await {
        Ok(Some(name)) => name,
        Ok(None) => {
            return bad_request(
                "Authorization not started",
                "This start link is unknown, already used or expired; run `upsbridge accounts authorize` again.",
            )
        }
        Err(e) => return bad_request("Authorization not started", &e.to_string()),
    };
    let Some(account) = s.accounts.snapshot().by_name(&name).cloned() else {
        return unknown_account(&name);
    };
    to_ups(&s, &account).await
}

async fn callback(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let state = q.get("state").map(String::as_str).unwrap_or("");
    // The state is consumed whatever happens next: a link works once.
    let taken = s
        .onboarding
        .take(state, auth::cookie(&headers, onboarding::FLOW_COOKIE))
        .await;
    if let Some(e) = q.get("error") {
        warn!(error = %e, "authorization refused at UPS");
        return bad_request(
            "Authorization not completed",
            &CallbackError::Refused(format!("UPS answered `{e}`")).to_string(),
        );
    }
    let (name, verifier) = match taken {
        Ok(t) => t,
        Err(e) => {
            warn!(error = %e, "authorization callback refused");
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
            Redirect::to(&format!("/?flash=authorized&account={name}")).into_response()
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

async fn account_detail_of(s: &AdminState, name: &str) -> Option<AccountDetail> {
    let account = s.accounts.snapshot().by_name(name).cloned()?;
    let view = s
        .account_views()
        .await
        .into_iter()
        .find(|v| v.name == name)?;
    let env = account
        .record
        .environment
        .unwrap_or_else(|| s.ups.default_environment());
    Some(AccountDetail {
        view,
        environment: env.as_str(),
        ups_base: s.ups.base_of(env).to_string(),
        host_policy: s.ups.host_policy.as_str(),
        host_mismatches: s.metrics.host_mismatches_of(name),
        access_license_number: account.record.access_license_number.clone(),
        user_id: account.record.user_id.clone(),
        traffic: s.metrics.traffic.summary(name),
    })
}

async fn account_detail(State(s): State<AdminState>, Path(name): Path<String>) -> Response {
    match account_detail_of(&s, &name).await {
        Some(d) => Json(d).into_response(),
        None => unknown_account(&name),
    }
}

async fn account_page(
    State(s): State<AdminState>,
    Extension(who): Extension<auth::Who>,
    Path(name): Path<String>,
) -> Response {
    let Some(d) = account_detail_of(&s, &name).await else {
        return unknown_account(&name);
    };
    let csrf = csrf_for(&s, &who);
    Html(page::account(&d, &csrf)).into_response()
}

/// May the form write the map file?
fn map_writable(s: &AdminState) -> bool {
    s.map_writable.unwrap_or_else(|| {
        std::fs::OpenOptions::new()
            .append(true)
            .open(s.accounts.file())
            .is_ok()
    })
}

async fn new_account_form(
    State(s): State<AdminState>,
    Extension(who): Extension<auth::Who>,
) -> Response {
    let csrf = csrf_for(&s, &who);
    let digest = std::fs::read(s.accounts.file())
        .map(|b| crate::accounts::add::file_digest(&b))
        .unwrap_or_default();
    Html(page::new_account(
        &csrf,
        &digest,
        map_writable(&s),
        None,
        &[],
    ))
    .into_response()
}

/// The New-account form: validated like `accounts check` plus the live map, then appended to
/// the map file (or, when the file is not ours to write, the block to paste is shown). An
/// authorization-code account goes straight on to UPS to be authorized.
async fn new_account(
    State(s): State<AdminState>,
    Extension(who): Extension<auth::Who>,
    body: axum::body::Bytes,
) -> Response {
    use crate::accounts::add::{self, AddError, NewAccount};
    if let Some(refused) = csrf_refused(&s, &who, &body) {
        return refused;
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let f = |k: &str| {
        form.get(k)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let csrf = csrf_for(&s, &who);
    let grant = match f("grant").as_str() {
        "authorization_code" => crate::accounts::Grant::AuthorizationCode,
        _ => crate::accounts::Grant::ClientCredentials,
    };
    let new = NewAccount {
        name: f("name"),
        ups_account_number: f("ups_account_number"),
        grant,
        client_id: f("client_id"),
        secret_source: f("secret_source"),
        access_license_number: f("access_license_number"),
        user_id: f("user_id"),
        environment: Some(f("environment")).filter(|e| !e.is_empty()),
    };
    let password = zeroize::Zeroizing::new(form.get("password").cloned().unwrap_or_default());
    let refuse = |status: StatusCode, problem: String| {
        let digest = std::fs::read(s.accounts.file())
            .map(|b| add::file_digest(&b))
            .unwrap_or_default();
        (
            status,
            Html(page::new_account(
                &csrf,
                &digest,
                map_writable(&s),
                Some(&problem),
                &[],
            )),
        )
            .into_response()
    };
    if let Some(env) = &new.environment {
        if crate::config::Environment::parse(env).is_none() {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("environment `{env}` is neither `production` nor `cie`"),
            );
        }
    }
    // Duplicates against the map in force too (the file may hold a change not yet loaded).
    let live = s.accounts.snapshot();
    if live.by_name(&new.name).is_some() {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "an account named `{}` is already in the map in force",
                new.name
            ),
        );
    }
    if live
        .lookup(&new.access_license_number, &new.user_id)
        .is_ok()
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            "that access license number and user id already belong to an account in force".into(),
        );
    }
    if !map_writable(&s) {
        // Not ours to write: hand ops the block (with the hash, never the password) to paste.
        let current = std::fs::read_to_string(s.accounts.file()).unwrap_or_default();
        let result = crate::accounts::password::hash(&password)
            .map_err(|e| AddError::Invalid(e.to_string()))
            .and_then(|hash| {
                let text = add::with_account(&current, &new, &hash)?;
                add::validate(&text, s.accounts.file())?;
                Ok(text[current.len()..].to_string())
            });
        return match result {
            Ok(block) => Html(page::new_account(&csrf, "", false, None, &[block])).into_response(),
            Err(e) => refuse(StatusCode::BAD_REQUEST, e.to_string()),
        };
    }
    let file = s.accounts.file().to_path_buf();
    let expected = f("map_digest");
    let (n, pw) = (new.clone(), password.clone());
    let written = tokio::task::spawn_blocking(move || {
        add::add_to_file(&file, Some(expected.as_str()), &n, &pw)
    })
    .await
    .unwrap_or_else(|e| Err(AddError::Invalid(e.to_string())));
    match written {
        Ok(()) => {}
        Err(e @ AddError::Changed) => return refuse(StatusCode::CONFLICT, e.to_string()),
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e.to_string()),
    }
    info!(account = %new.name, "account added to the map on the ops page");
    let reloaded = s.accounts.reload(true).await;
    if reloaded.is_err() {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the account was written to the map, but the map did not reload; see the log".into(),
        );
    }
    let added = s.accounts.snapshot().by_name(&new.name).cloned();
    match (grant, added) {
        (crate::accounts::Grant::AuthorizationCode, Some(account)) => to_ups(&s, &account).await,
        _ => Redirect::to(&format!("/?flash=added&account={}", new.name)).into_response(),
    }
}

/// Ready: the account map is loaded and the store answers (PostgreSQL: a cheap query
/// within `[store] timeout_ms`, probed at most once a second; sled always does). Else 503
/// with one line saying why (PostgreSQL named `HOST:PORT/DB`, never a password or URL).
/// `/healthz` says only that the process is up.
async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    let status = s.accounts.status();
    if status.loaded_at.is_none() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "account map not loaded\n".to_string(),
        );
    }
    match s.store_probe.check().await.answer {
        Ok(()) => (
            StatusCode::OK,
            format!(
                "ready: {} accounts, store {} answers\n",
                status.accounts,
                s.store.backend_name()
            ),
        ),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store not ready: {why}\n"),
        ),
    }
}

async fn accounts(State(s): State<AdminState>) -> Json<Vec<AccountView>> {
    Json(s.account_views().await)
}

async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(""),
    )
}

/// The admin password for the CLI: `UPSBRIDGE_ADMIN_PASSWORD`, else asked on the terminal.
fn cli_password() -> Option<String> {
    if let Ok(p) = std::env::var("UPSBRIDGE_ADMIN_PASSWORD") {
        return Some(p);
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return None;
    }
    eprint!("upsbridge admin password: ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).ok()?;
    Some(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Why the CLI could not use the running server.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot start: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("no upsbridge server answers at {0}; start `upsbridge serve` first (UPS sends the account owner back to its admin listener)")]
    NotRunning(String),
    #[error("the admin listener refused the admin password; set UPSBRIDGE_ADMIN_PASSWORD to the password whose hash is [admin] password_hash")]
    Unauthorized,
    #[error("the server refused ({0}): {1}")]
    Refused(u16, String),
    #[error("no authorization arrived within 10 minutes; run the command again for a new link")]
    TimedOut,
    #[error("cannot read the store: {0}")]
    Store(String),
}

fn cli_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
}

/// An HTTP client for the admin JSON API, with the admin password when there is one.
fn cli_client() -> Result<(reqwest::Client, Option<String>), CliError> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| CliError::Runtime(std::io::Error::other(e)))?;
    Ok((http, cli_password()))
}

fn with_password(r: reqwest::RequestBuilder, password: &Option<String>) -> reqwest::RequestBuilder {
    match password {
        Some(p) => r.basic_auth("admin", Some(p)),
        None => r,
    }
}

/// Lines for `accounts list`: from the running server's admin JSON API when it is up,
/// else from the store (sled allows one process, so never both).
pub fn list(config: &crate::config::Config) -> Result<Vec<String>, CliError> {
    let rt = cli_runtime()?;
    let url = format!("http://{}/api/accounts", config.admin.listen);
    let live = rt.block_on(async {
        let (client, password) = cli_client().ok()?;
        let r = with_password(client.get(&url), &password)
            .send()
            .await
            .ok()?;
        if r.status() == reqwest::StatusCode::UNAUTHORIZED {
            return Some(Err(CliError::Unauthorized));
        }
        r.json::<Vec<serde_json::Value>>().await.ok().map(Ok)
    });
    if let Some(rows) = live {
        return Ok(rows?
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
    let stored = rt.block_on(async {
        let store = crate::store::Store::open(&config.store).await?;
        let mut rows = vec![];
        for r in store.accounts().await? {
            let token = store.token(&r.name).await;
            rows.push((r, token));
        }
        Ok::<_, crate::store::StoreError>(rows)
    });
    let stored = stored.map_err(|e| CliError::Store(e.to_string()))?;
    Ok(stored
        .iter()
        .map(|(r, token)| {
            let state = match token {
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

/// `accounts authorize NAME`: ask the running server for a start link, print it, and wait
/// until the account's token is valid. The owner opens the link in the browser they log in
/// with; the callback must reach the server's admin listener.
pub fn authorize_from_terminal(config: &crate::config::Config, name: &str) -> Result<(), CliError> {
    let rt = cli_runtime()?;
    let admin = format!("http://{}", config.admin.listen);
    rt.block_on(async {
        let (http, password) = cli_client()?;
        let r = with_password(
            http.post(format!("{admin}/accounts/{name}/authorize"))
                .header(header::ACCEPT, "application/json"),
            &password,
        )
        .send()
        .await
        .map_err(|_| CliError::NotRunning(admin.clone()))?;
        let status = r.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(CliError::Unauthorized);
        }
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        let Some(url) = v["start_url"].as_str().map(str::to_string) else {
            let why = v["error"].as_str().unwrap_or("no start link in the answer").to_string();
            return Err(CliError::Refused(status.as_u16(), why));
        };
        println!("Open this link in the browser the UPS account owner logs in with, log in at UPS and click Allow:\n\n  {url}\n\nWaiting for UPS to send the owner back to {admin}/oauth/callback …");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
        let before = account_state(&http, &password, &admin, name).await;
        while std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let now = account_state(&http, &password, &admin, name).await;
            if now.0.as_deref() == Some("valid") && now.1 != before.1 {
                println!("Account {name} is authorized; its tokens are stored.");
                return Ok(());
            }
        }
        Err(CliError::TimedOut)
    })
}

/// (token state, expiry) of an account, from the running server.
async fn account_state(
    http: &reqwest::Client,
    password: &Option<String>,
    admin: &str,
    name: &str,
) -> (Option<String>, Option<u64>) {
    let rows: Vec<serde_json::Value> =
        match with_password(http.get(format!("{admin}/api/accounts")), password)
            .send()
            .await
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

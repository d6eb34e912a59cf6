//! One request, independent of the transport: recognise the dialect, authenticate,
//! get the account's token, call UPS (or say how to stream to it), translate the
//! answer back, and record the request once. The proxy adapter ([`crate::proxy`])
//! only moves bytes between sockets and this module.
//!
//! Rules kept here, once: a 401 from UPS renews the token and retries a buffered
//! call once; effectful calls (ship, void, pickup) run to completion even when the
//! client has gone and their answers are kept for the retry ([`replay`]); every
//! request gets one metrics record and one log line, at its end.
//!
//! Nothing is forwarded for a request whose credentials did not verify, and no
//! credential, token or secret is logged.

pub mod digest;
pub mod replay;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use crate::accounts::{Account, Accounts, LegacyCredentials};
use crate::config::{Environment, HostPolicy};
use crate::dialect::{self, Answered, Dialect, Failure, Fields, Request};
pub use crate::dialect::{Answer, Head, Route};
use crate::logbuf;
use crate::metrics::Metrics;
use crate::oauth::{CachedToken, TokenBroker, TokenError};
pub use crate::rest::RestAnswer;
use crate::rest::RestCall;
use crate::substring::Substring;
use digest::{Accept, ShipDigests};
use replay::{Begin, Replays};

/// Seen in a rate request: the client asked for negotiated rates.
pub const NEGOTIATED_ASKED: &[u8] = b"NegotiatedRatesIndicator";
/// Seen in a rate answer: UPS gave them.
pub const NEGOTIATED_GIVEN: &[u8] = b"NegotiatedRateCharges";

/// Sees each chunk of a streamed body on its way.
pub type Tap = Box<dyn FnMut(&[u8]) + Send>;

/// What the pipeline needs of UPS's REST API: one buffered call (the proxy's `Upstream`
/// in `serve`).
#[async_trait::async_trait]
pub trait RestApi: Send + Sync {
    async fn exchange(
        &self,
        env: Environment,
        call: &RestCall,
        body: Option<Bytes>,
        bearer: &HeaderValue,
        trans_id: &str,
    ) -> Result<RestAnswer, Failure>;
    fn request_timeout(&self) -> Duration;
}

/// What the pipeline needs of the token broker ([`TokenBroker`] in `serve`).
#[async_trait::async_trait]
pub trait Tokens: Send + Sync {
    /// A token of `account` for `env`'s UPS (its own environment's, or the other one's when
    /// `[ups] host_policy = "client"` sends it there).
    async fn token(
        &self,
        account: &Arc<Account>,
        env: Environment,
    ) -> Result<Arc<CachedToken>, TokenError>;
    /// The token [`Tokens::token`] would give at once, when that needs no waiting (a fresh
    /// cached one): most requests, answered without building a future. `None`: ask `token`.
    fn fresh(&self, _account: &Account, _env: Environment) -> Option<Arc<CachedToken>> {
        None
    }
    /// UPS refused this token: never hand it out again.
    fn invalidate(&self, account: &Account, env: Environment, token: &Arc<CachedToken>);
    /// The account's last UPS error (`None`: it works), for the ops page.
    fn note_api_error(&self, account: &str, message: Option<String>);
    fn note_negotiated_rates(&self, account: &str, asked: bool, got: bool);
}

#[async_trait::async_trait]
impl Tokens for TokenBroker {
    async fn token(
        &self,
        account: &Arc<Account>,
        env: Environment,
    ) -> Result<Arc<CachedToken>, TokenError> {
        TokenBroker::token_in(self, account, env).await
    }
    fn fresh(&self, account: &Account, env: Environment) -> Option<Arc<CachedToken>> {
        TokenBroker::fresh_token(self, account, env)
    }
    fn invalidate(&self, account: &Account, env: Environment, token: &Arc<CachedToken>) {
        TokenBroker::invalidate(self, account, env, token)
    }
    fn note_api_error(&self, account: &str, message: Option<String>) {
        TokenBroker::note_api_error(self, account, message)
    }
    fn note_negotiated_rates(&self, account: &str, asked: bool, got: bool) {
        TokenBroker::note_negotiated_rates(self, account, asked, got)
    }
}

pub struct Pipeline {
    pub accounts: Arc<Accounts>,
    pub tokens: Arc<dyn Tokens>,
    pub rest: Arc<dyn RestApi>,
    pub metrics: Arc<Metrics>,
    pub max_body_bytes: usize,
    /// Old-XML ShipConfirm digests (two-phase shipping).
    pub digests: Arc<ShipDigests>,
    /// Answers kept for retried shipments.
    pub replays: Arc<Replays>,
    /// Which environment an account's calls go to when the client called the other one's host.
    pub host_policy: HostPolicy,
    /// The environment of accounts whose map entry names none.
    pub default_env: Environment,
}

/// An effectful call's answer, to keep if the client does not get it.
pub struct Keep {
    ticket: Option<replay::Ticket>,
    key: replay::Key,
    account: String,
    method: Method,
    status: u16,
    body: Bytes,
}

/// A request's id: `ub` and 16 random hex digits, kept inline (one is made per request).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestId([u8; 18]);

impl RequestId {
    pub fn new() -> RequestId {
        // Written without the formatting machinery.
        let mut raw = *b"ub0000000000000000";
        let n = rand::random::<u64>();
        for (i, b) in raw[2..].iter_mut().enumerate() {
            *b = b"0123456789abcdef"[(n >> (60 - 4 * i) & 0xf) as usize];
        }
        RequestId(raw)
    }
}

impl Default for RequestId {
    fn default() -> RequestId {
        RequestId::new()
    }
}

impl std::ops::Deref for RequestId {
    type Target = str;

    fn deref(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII hex digits")
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

/// What one request has become so far (recorded at its end by [`Pipeline::finish`]).
pub struct Exchange {
    /// Also UPS's `transId` and the client's `X-Upsbridge-Request-Id` (written from its
    /// bytes: a `HeaderValue` of it was an allocation per request).
    pub id: RequestId,
    pub started: Instant,
    pub peer: Option<IpAddr>,
    /// The UPS environment whose host the client called (TLS name, CONNECT target or
    /// `Host`); `None` when it called upsbridge by its own name.
    pub called: Option<Environment>,
    pub dialect: Option<&'static dyn Dialect>,
    pub service: &'static str,
    pub account: Option<Arc<Account>>,
    /// Set when upsbridge answered with its own error.
    pub error_kind: Option<&'static str>,
    pub status: u16,
    /// Reading the request body failed (bad chunk size, early close, too large): the
    /// connection is closed after the answer.
    pub framing_error: bool,
    /// An effectful call's answer, kept if the client is gone.
    keep: Option<Keep>,
    /// This answer is a kept one, replayed (forgotten once delivered).
    replayed: Option<(replay::Key, Method)>,
}

impl Exchange {
    pub fn new(peer: Option<IpAddr>) -> Exchange {
        let id = RequestId::new();
        Exchange {
            id,
            started: Instant::now(),
            peer,
            called: None,
            dialect: None,
            service: "-",
            account: None,
            error_kind: None,
            status: 0,
            framing_error: false,
            keep: None,
            replayed: None,
        }
    }

    fn account_name(&self) -> &str {
        self.account.as_ref().map(|a| a.name()).unwrap_or("-")
    }
}

/// A header-style request that may go to UPS: where, as whom, with which token.
pub struct Authorized {
    /// The (streaming) dialect it speaks.
    pub dialect: &'static dyn Dialect,
    /// `/api/…` with the client's query string kept; its body is the client's.
    pub target: RestCall,
    pub account: Arc<Account>,
    /// Where the call goes (and whose token it carries).
    pub env: Environment,
    pub token: Arc<CachedToken>,
}

impl Authorized {
    pub fn is_effectful(&self) -> bool {
        replay::is_effectful(&self.target.method, &self.target.path_and_query)
    }
}

/// The headers of a streamed request to UPS: the client's, in its order, without what its
/// dialect keeps back (every legacy credential, hop-by-hop headers); UPS's host in the place
/// of the client's `Host`; then the account's bearer, and a transaction id and source where
/// the client gave none (UPS asks for them). Handed out one by one, so that the express lane
/// writes them straight into the request head, with no map built, searched or shrunk.
pub struct UpsHeaders<'a> {
    client: Fields<'a>,
    dialect: &'static dyn Dialect,
    host: &'a HeaderValue,
    authorization: HeaderValue,
    trans_id: &'a str,
}

/// The header UPS reads a transaction id from.
static TRANS_ID: HeaderName = HeaderName::from_static("transid");

/// One header of a request to UPS: the client's, or one upsbridge puts in.
enum UpsField<'a> {
    Client(&'a [u8], &'a [u8]),
    Ours(&'static HeaderName, &'a HeaderValue),
    /// The transaction id UPS asks for (our request id, where the client gave none).
    TransId(&'a str),
}

impl UpsHeaders<'_> {
    /// Every header, in the order UPS gets them (the client's names as it wrote them).
    pub fn each(&self, mut put: impl FnMut(&[u8], &[u8])) {
        self.walk(|field| match field {
            UpsField::Client(name, value) => put(name, value),
            UpsField::Ours(name, value) => put(name.as_str().as_bytes(), value.as_bytes()),
            UpsField::TransId(id) => put(TRANS_ID.as_str().as_bytes(), id.as_bytes()),
        })
    }

    /// The same, as a map (for hyper's client; the bearer stays marked sensitive).
    pub fn to_map(&self) -> http::HeaderMap {
        let mut map = http::HeaderMap::with_capacity(self.client.len() + 3);
        self.walk(|field| match field {
            UpsField::Client(name, value) => {
                // A client's field was a valid name and value when it was read.
                if let (Ok(name), Ok(value)) =
                    (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
                {
                    map.append(name, value);
                }
            }
            UpsField::Ours(name, value) => {
                map.append(name, value.clone());
            }
            UpsField::TransId(id) => {
                if let Ok(value) = HeaderValue::from_str(id) {
                    map.append(&TRANS_ID, value);
                }
            }
        });
        map
    }

    fn walk(&self, mut put: impl FnMut(UpsField<'_>)) {
        static TRANSACTION_SRC: HeaderName = HeaderName::from_static("transactionsrc");
        static SOURCE: HeaderValue = HeaderValue::from_static("upsbridge");
        let (mut host_put, mut has_trans_id, mut has_source) = (false, false, false);
        self.client.each(|name, value| {
            if name.eq_ignore_ascii_case(b"host") {
                if !std::mem::replace(&mut host_put, true) {
                    put(UpsField::Ours(&http::header::HOST, self.host));
                }
            } else if self.dialect.forwards_to_ups(name) {
                has_trans_id |= name.eq_ignore_ascii_case(b"transid");
                has_source |= name.eq_ignore_ascii_case(b"transactionsrc");
                put(UpsField::Client(name, value));
            }
        });
        if !host_put {
            put(UpsField::Ours(&http::header::HOST, self.host));
        }
        put(UpsField::Ours(
            &http::header::AUTHORIZATION,
            &self.authorization,
        ));
        if !has_trans_id {
            put(UpsField::TransId(self.trans_id));
        }
        if !has_source {
            put(UpsField::Ours(&TRANSACTION_SRC, &SOURCE));
        }
    }
}

/// A header-style request understood but not yet authenticated.
pub struct Planned {
    credentials: LegacyCredentials,
    pub target: RestCall,
}

impl Planned {
    pub fn is_effectful(&self) -> bool {
        replay::is_effectful(&self.target.method, &self.target.path_and_query)
    }
}

/// Says "the client is gone" to the replay registry when dropped before disarmed: the
/// transport drops a request's future when its client closes the connection.
struct ClientWatch(Option<replay::ClientGone>);

impl Drop for ClientWatch {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            w.client_gone();
        }
    }
}

impl Pipeline {
    /// The dialect of a request, or the refusal to answer at once.
    pub fn route(
        &self,
        path: &str,
        headers: Fields<'_>,
        ex: &mut Exchange,
    ) -> Result<Route, Answer> {
        let Some(route) = dialect::detect(path, headers) else {
            let failure = Failure::UnknownService(path.to_string());
            self.log_refusal(ex, &failure);
            return Err(dialect::unrouted_refusal(&failure));
        };
        ex.dialect = Some(route.dialect);
        if dialect::has_dot_segment(path) {
            let failure = Failure::Malformed("a `.` or `..` path segment".into());
            self.log_refusal(ex, &failure);
            return Err(route.dialect.refusal(&route, &failure));
        }
        Ok(route)
    }

    /// Whether the route's body is read whole before the request is parsed (else it
    /// streams: header style).
    pub fn reads_whole_body(route: &Route) -> bool {
        !route.dialect.streams()
    }

    /// A streamed request's refusal, logged.
    pub fn stream_refusal(&self, route: &Route, ex: &Exchange, failure: &Failure) -> Answer {
        self.log_refusal(ex, failure);
        route.dialect.refusal(route, failure)
    }

    /// Log a refusal in terms ops can act on.
    pub fn log_refusal(&self, ex: &Exchange, failure: &Failure) {
        warn!(request_id = %ex.id, dialect = dialect_name(ex),
              service = ex.service, account = ex.account_name(), kind = failure.kind(),
              origin = ?failure.origin(), retryable = failure.retryable(), "refused: {failure}");
    }

    async fn authenticate(
        &self,
        creds: &LegacyCredentials,
        ex: &Exchange,
    ) -> Result<Arc<Account>, Failure> {
        match self.accounts.authenticate(creds, ex.peer).await {
            Ok(a) => Ok(a),
            Err(e) => {
                // Who tried what, from where (never the password): what ops need to act.
                let peer = ex.peer.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
                warn!(peer = %peer, access_key = %creds.access_key, user = %creds.user_id,
                      reason = e.reason(), "legacy credentials refused: {e}");
                self.metrics.count_auth_refusal(e.reason());
                // Wrong password or disabled for a known login: shown on that account's view.
                if let Some(name) = self
                    .accounts
                    .name_for(creds.access_key.as_str(), creds.user_id.as_str())
                {
                    self.metrics.traffic.refused(
                        &name,
                        "-",
                        "-",
                        format!("{} (from {peer})", e.reason().replace('_', " ")),
                    );
                }
                Err(e.into())
            }
        }
    }

    /// The account's token for `env`: the fresh cached one, or from the broker's wait.
    async fn token(
        &self,
        account: &Arc<Account>,
        env: Environment,
    ) -> Result<Arc<CachedToken>, TokenError> {
        match self.tokens.fresh(account, env) {
            Some(token) => Ok(token),
            None => self.tokens.token(account, env).await,
        }
    }

    /// The environment an account's call goes to: its own, unless the client called the
    /// other environment's host and `[ups] host_policy = "client"`. A disagreement is
    /// counted and logged either way.
    fn environment(&self, account: &Account, ex: &Exchange) -> Environment {
        let own = account.record.environment.unwrap_or(self.default_env);
        match ex.called {
            Some(called) if called != own => {
                let sent_to = match self.host_policy {
                    HostPolicy::Account => own,
                    HostPolicy::Client => called,
                };
                self.metrics
                    .count_host_mismatch(account.name(), called.as_str(), sent_to.as_str());
                info!(request_id = %ex.id, account = account.name(), called = called.ups_host(),
                      account_environment = %own, sent_to = %sent_to, host_policy = self.host_policy.as_str(),
                      "the client called the other UPS environment's host than its account's");
                sent_to
            }
            _ => own,
        }
    }

    /// Streaming mode (header style): parse the head, authenticate, get the token. The body
    /// is not read.
    pub async fn authorize_stream(
        &self,
        route: &Route,
        head: &Head<'_>,
        ex: &mut Exchange,
    ) -> Result<Authorized, Failure> {
        let planned = Self::plan_stream(route, head)?;
        self.authorize_planned(route, planned, ex).await
    }

    /// Streaming mode, first half: what the head asks and with which credentials (nothing
    /// checked yet).
    pub fn plan_stream(route: &Route, head: &Head<'_>) -> Result<Planned, Failure> {
        let parsed = route.dialect.parse(route, head, &[])?;
        match parsed.request? {
            Request::Streamed(target) => Ok(Planned {
                credentials: parsed.credentials,
                target,
            }),
            Request::Answered(_) => Err(Failure::UnknownService(format!(
                "{} does not stream",
                route.dialect.name()
            ))),
        }
    }

    /// Streaming mode, second half: authenticate and get the token.
    pub async fn authorize_planned(
        &self,
        route: &Route,
        planned: Planned,
        ex: &mut Exchange,
    ) -> Result<Authorized, Failure> {
        let Planned {
            credentials,
            target,
        } = planned;
        ex.service = service_label(&target.path_and_query);
        let account = self.authenticate(&credentials, ex).await?;
        ex.account = Some(account.clone());
        let env = self.environment(&account, ex);
        let token = self.token(&account, env).await?;
        Ok(Authorized {
            dialect: route.dialect,
            target,
            account,
            env,
            token,
        })
    }

    /// Header style, a call that creates or destroys something: sent once with its whole
    /// body, UPS's answer passed back as it is (and kept if the client is gone).
    pub async fn answer_effectful(
        self: &Arc<Self>,
        auth: Authorized,
        body: Bytes,
        ex: &mut Exchange,
    ) -> Result<Answer, Failure> {
        let call = auth.target;
        let body = (!body.is_empty()).then_some(body);
        // (Its time to UPS is observed in `finish`, as for every streamed-mode request.)
        let answer = self
            .effectful_call(&auth.account, auth.env, auth.token, &call, body, ex)
            .await?;
        Ok(Answer {
            status: answer.status,
            content_type: "application/json",
            body: answer.body,
            error_kind: None,
            dropped_fields: 0,
        })
    }

    /// Header style, streamed: the client's headers as UPS gets them (see [`UpsHeaders`]).
    pub fn headers_for_ups<'a>(
        &self,
        auth: &Authorized,
        client: Fields<'a>,
        host: &'a HeaderValue,
        ex: &'a Exchange,
    ) -> Result<UpsHeaders<'a>, Failure> {
        Ok(UpsHeaders {
            client,
            dialect: auth.dialect,
            host,
            authorization: authorization(&auth.token)?,
            trans_id: &ex.id,
        })
    }

    /// Header style, streamed: what to watch on the way (nothing is buffered but the
    /// first 64 KiB of an error answer).
    pub fn scan(&self, auth: &Authorized, ex: &Exchange) -> Scan {
        let rate = ex.service == "rate";
        Scan {
            account: auth.account.clone(),
            env: auth.env,
            token: auth.token.clone(),
            asked: rate.then(|| Arc::new(AtomicBool::new(false))),
            given: rate.then(|| Needle::new(&GIVEN)),
            error_body: None,
        }
    }

    /// Header style, streamed: UPS answered with `status` (its body still to come).
    pub fn stream_answered(&self, scan: &mut Scan, status: u16, ex: &mut Exchange) {
        ex.status = status;
        if status == 401 {
            // The token is dead at UPS: drop it so the client's next request gets a new one.
            // (This request's body was streamed and cannot be replayed.)
            warn!(request_id = %ex.id, account = scan.account.name(), "UPS refused the token (401); renewing it for the next request");
            self.tokens.invalidate(&scan.account, scan.env, &scan.token);
        }
        if status >= 400 {
            scan.error_body = Some(Vec::new());
        }
    }

    /// Header style, streamed: the answer's body has passed.
    pub fn stream_done(&self, scan: Scan, ex: &Exchange) {
        let account = scan.account.name();
        self.diagnose(
            account,
            ex.service,
            ex.status,
            scan.error_body.as_deref().unwrap_or(&[]),
        );
        if let (Some(asked), Some(given)) = (scan.asked, scan.given) {
            if (200..300).contains(&ex.status) {
                self.tokens.note_negotiated_rates(
                    account,
                    asked.load(Ordering::Relaxed),
                    given.found,
                );
            }
        }
    }

    /// Body dialects: parse, authenticate, translate, call UPS, translate back, answering
    /// any failure in the client's dialect.
    pub async fn answer_whole(
        self: &Arc<Self>,
        route: &Route,
        head: &Head<'_>,
        body: Result<Bytes, Failure>,
        ex: &mut Exchange,
    ) -> Answer {
        let mut understood = None;
        match self.answered(route, head, body, ex, &mut understood).await {
            Ok(answer) => answer,
            Err(failure) => {
                self.log_refusal(ex, &failure);
                match &understood {
                    // Echoes what the dialect may echo (old XML's CustomerContext), nothing more.
                    Some(request) => request.refusal(&failure),
                    None => route.dialect.refusal(route, &failure),
                }
            }
        }
    }

    /// `understood` is filled in as soon as the request is understood, for the refusal's shape.
    async fn answered(
        self: &Arc<Self>,
        route: &Route,
        head: &Head<'_>,
        body: Result<Bytes, Failure>,
        ex: &mut Exchange,
        understood: &mut Option<Box<dyn Answered>>,
    ) -> Result<Answer, Failure> {
        let body = body.inspect_err(|_| ex.framing_error = true)?;
        let parsed = route.dialect.parse(route, head, &body)?;
        let request = match parsed.request {
            Ok(Request::Answered(request)) => Ok(understood.insert(request)),
            Ok(Request::Streamed(_)) => Err(Failure::UnknownService(format!(
                "{} streams",
                route.dialect.name()
            ))),
            Err(failure) => Err(failure),
        };
        let account = self.authenticate(&parsed.credentials, ex).await?;
        ex.account = Some(account.clone());
        let request = request?;
        ex.service = request.service();
        let env = self.environment(&account, ex);
        let token = self.token(&account, env).await?;
        let mut ups = AccountUps {
            pipeline: self,
            account: &account,
            env,
            token,
            ex,
        };
        request.exchange(&mut ups).await
    }

    /// Make a prepared call (old XML's ShipAccept of what its ShipConfirm priced), once.
    async fn make_prepared(
        self: &Arc<Self>,
        account: &Arc<Account>,
        env: Environment,
        token: Arc<CachedToken>,
        digest: &str,
        ex: &Exchange,
    ) -> Result<(u16, Bytes), Failure> {
        // A concurrent retry of an accept in progress waits for it, then gets its answer.
        let started = Instant::now();
        let accept = loop {
            match self.digests.begin(digest, account.name()).await {
                Err(Failure::DigestBusy) if started.elapsed() < self.rest.request_timeout() => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                other => break other?,
            }
        };
        match accept {
            Accept::Cached { status, body } => {
                // The same digest is the same shipment: a retried accept gets the first
                // accept's answer (label included) and never ships twice.
                let shipped: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let id = dialect::json_text(
                    shipped
                        .pointer("/ShipmentResponse/ShipmentResults/ShipmentIdentificationNumber"),
                );
                info!(request_id = %ex.id, shipment = %id, "ShipAccept repeated: the first accept's answer replayed, not shipped again");
                Ok((status, body))
            }
            Accept::Ship { key, call, body } => {
                // In its own task: the shipment is made and recorded under its digest even
                // when this client leaves (the transport then drops this future), so the
                // client's retry gets it instead of a digest stuck half-accepted.
                let (this, account, id, service) =
                    (self.clone(), account.clone(), ex.id, ex.service);
                let ship = async move {
                    let outcome = this
                        .call_ups(&account, env, token, &call, Some(body), &id, service)
                        .await;
                    match outcome {
                        Ok(answer) if (200..300).contains(&answer.status) => {
                            this.digests
                                .finish(&key, answer.status, &answer.body)
                                .await?;
                            Ok((answer.status, answer.body))
                        }
                        other => {
                            this.digests.release(&key).await?;
                            let answer = other?;
                            Ok((answer.status, answer.body))
                        }
                    }
                };
                let shipped = tokio::spawn(ship).await.map_err(|_| {
                    Failure::UpstreamUnreachable("the call to UPS was cut short".into())
                });
                self.metrics.observe_upstream(ex.started.elapsed());
                shipped?
            }
        }
    }

    /// A call that creates or destroys something (ship, void, pickup): answered from a kept
    /// answer when this is the retry of a call whose client had gone, else made once. The
    /// call runs in its own task, so it completes even when the client leaves (the
    /// transport then drops this future); its answer is kept for the retry.
    async fn effectful_call(
        self: &Arc<Self>,
        account: &Arc<Account>,
        env: Environment,
        token: Arc<CachedToken>,
        call: &RestCall,
        body: Option<Bytes>,
        ex: &mut Exchange,
    ) -> Result<RestAnswer, Failure> {
        let key = Replays::key(account.name(), call, body.as_deref());
        if let Some(kept) = self.kept_answer(&key, account, call, ex).await? {
            return Ok(kept);
        }
        let ticket = match self.replays.begin(key).await {
            Begin::Call(t) => Some(t),
            Begin::Answered(status, body) => {
                info!(request_id = %ex.id, account = account.name(), "a retry that waited for the identical call in flight gets its answer (not sent to UPS again)");
                self.metrics.count_replay();
                ex.replayed = Some((key, call.method.clone()));
                return Ok(RestAnswer { status, body });
            }
            Begin::Separate => {
                if let Some(kept) = self.kept_answer(&key, account, call, ex).await? {
                    return Ok(kept);
                }
                None
            }
        };
        let mut watch = ClientWatch(ticket.as_ref().map(replay::Ticket::client_watch));
        let (tx, rx) = oneshot::channel();
        let task = {
            let (this, account, call, id, service) = (
                self.clone(),
                account.clone(),
                call.clone(),
                ex.id,
                ex.service,
            );
            async move {
                let answer = this
                    .call_ups(&account, env, token, &call, body, &id, service)
                    .await;
                let keep = |a: &RestAnswer| Keep {
                    ticket,
                    key,
                    account: account.name().to_string(),
                    method: call.method.clone(),
                    status: a.status,
                    body: a.body.clone(),
                };
                let outcome = match answer {
                    Ok(a) => Ok((keep(&a), a)),
                    Err(f) => Err(f),
                };
                if let Err(Ok((keep, _))) = tx.send(outcome) {
                    // The client left while UPS was working: keep the answer for its retry.
                    warn!(request_id = %id, "the client left while UPS was working; the call ran on and its answer is kept for the client's retry");
                    this.settle(Some(keep), None, false, &id).await;
                }
            }
        };
        tokio::spawn(task);
        let outcome = rx
            .await
            .map_err(|_| Failure::UpstreamUnreachable("the call to UPS was cut short".into()))?;
        watch.0 = None;
        let (keep, answer) = outcome?;
        ex.keep = Some(keep);
        Ok(answer)
    }

    async fn kept_answer(
        &self,
        key: &replay::Key,
        account: &Account,
        call: &RestCall,
        ex: &mut Exchange,
    ) -> Result<Option<RestAnswer>, Failure> {
        Ok(self.replays.kept(key, account.name()).await?.map(|(status, body)| {
            info!(request_id = %ex.id, account = account.name(), "a retried call answered with the answer its first attempt's client never got (not sent to UPS again)");
            self.metrics.count_replay();
            ex.replayed = Some((*key, call.method.clone()));
            RestAnswer { status, body }
        }))
    }

    /// After the answer was written (or not): keep an effectful call's answer the client did
    /// not get, forget a replayed one it did get.
    async fn settle(
        &self,
        keep: Option<Keep>,
        replayed: Option<(replay::Key, Method)>,
        delivered: bool,
        id: &str,
    ) {
        if let Some((key, method)) = replayed {
            if delivered {
                self.replays.delivered_replay(&key, &method).await;
            }
        }
        let Some(keep) = keep else { return };
        let gone = keep.ticket.as_ref().is_some_and(|t| t.is_client_gone());
        let delivered = delivered && !gone;
        let ok = (200..300).contains(&keep.status);
        let outcome = if ok && (!delivered || Replays::keeps_delivered(&keep.method)) {
            match self
                .replays
                .keep(&keep.key, &keep.account, keep.status, &keep.body)
                .await
            {
                Ok(()) if delivered => replay::Outcome::Delivered,
                Ok(()) => {
                    warn!(request_id = %id, account = %keep.account, "answer not delivered (the client had gone): kept for its retry");
                    self.metrics.count_kept_answer();
                    replay::Outcome::Kept(keep.status, keep.body.clone())
                }
                Err(e) => {
                    error!(request_id = %id, error = %e, "could not keep an undelivered answer");
                    replay::Outcome::Failed
                }
            }
        } else if delivered {
            replay::Outcome::Delivered
        } else {
            replay::Outcome::Failed
        };
        if let Some(t) = keep.ticket {
            t.finish(outcome);
        }
    }

    /// One buffered REST call. A 401 means UPS no longer takes this token (revoked, rotated
    /// early): drop it, get a new one and replay the call once (its body is in memory).
    #[allow(clippy::too_many_arguments)]
    async fn call_ups(
        &self,
        account: &Arc<Account>,
        env: Environment,
        token: Arc<CachedToken>,
        call: &RestCall,
        body: Option<Bytes>,
        id: &str,
        service: &'static str,
    ) -> Result<RestAnswer, Failure> {
        let asks_negotiated = body.as_deref().is_some_and(|b| ASKED.is_in(b));
        let mut answer = self
            .rest
            .exchange(env, call, body.clone(), &authorization(&token)?, id)
            .await?;
        if answer.status == 401 {
            warn!(request_id = %id, account = account.name(), "UPS refused the token (401); renewing it and retrying once");
            self.tokens.invalidate(account, env, &token);
            let token = self.tokens.token(account, env).await?;
            answer = self
                .rest
                .exchange(env, call, body, &authorization(&token)?, id)
                .await?;
            if answer.status == 401 {
                return Err(Failure::UpstreamAuth(account.name().to_string()));
            }
        }
        self.diagnose(account.name(), service, answer.status, &answer.body);
        if (200..300).contains(&answer.status) && matches!(service, "rate" | "ship") {
            let got = GIVEN.is_in(&answer.body);
            self.tokens
                .note_negotiated_rates(account.name(), asks_negotiated, got);
        }
        Ok(answer)
    }

    /// Keep the account's last UPS error (and its fix) for the ops page.
    fn diagnose(&self, account: &str, service: &str, status: u16, body: &[u8]) {
        if (200..300).contains(&status) {
            if service == "rate" || service == "ship" {
                self.tokens.note_api_error(account, None);
            }
            return;
        }
        let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let first = dialect::rest_errors(&parsed, status).into_iter().next();
        if let Some(e) = first {
            let message = format!(
                "UPS answered {status} to a {service} request: {} {}",
                e.code, e.description
            );
            if e.description
                .to_ascii_lowercase()
                .contains("negotiated rate")
            {
                warn!(account, code = %e.code, "UPS refuses negotiated rates for this shipper: add the account to the UPS.com profile that authorized the app and verify it with an invoice");
            }
            self.tokens.note_api_error(account, Some(message));
        }
    }

    /// Note what `answer` says about the request before it is written.
    pub fn answering(&self, ex: &mut Exchange, answer: &Answer) {
        ex.status = answer.status;
        ex.error_kind = answer.error_kind;
        if answer.dropped_fields > 0 {
            let dialect = dialect_name(ex);
            self.metrics
                .count_dropped_fields(dialect, ex.service, answer.dropped_fields);
        }
    }

    /// The end of a request, whatever became of it: settle a kept or replayed answer, then
    /// one metrics record and one log line. `delivered`: the answer's last byte was handed
    /// to the client's connection. Called once per request, from the transport. Returns
    /// when the request ended (a keep-alive connection's wait for the next starts there).
    pub fn finish(self: &Arc<Self>, mut ex: Exchange, delivered: bool) -> Instant {
        if ex.keep.is_some() || ex.replayed.is_some() {
            let (keep, replayed, this, id) =
                (ex.keep.take(), ex.replayed.take(), self.clone(), ex.id);
            tokio::spawn(async move { this.settle(keep, replayed, delivered, &id).await });
        }
        let dialect = dialect_name(&ex);
        // One clock read for the metrics, the log line and the connection's next wait.
        let ended = Instant::now();
        let elapsed = ended.saturating_duration_since(ex.started);
        let outcome = match (ex.error_kind, ex.status, delivered) {
            (Some(kind), _, _) => kind,
            (None, 200..=299, true) => "ok",
            (None, 200..=299, false) => "client_gone",
            (None, _, _) => "ups_error",
        };
        self.metrics.count_request(dialect, ex.service, outcome);
        if ex.dialect.is_some_and(|d| d.streams()) && ex.error_kind.is_none() {
            self.metrics.observe_upstream(elapsed);
        }
        if let Some(a) = &ex.account {
            self.metrics
                .traffic
                .record(a.name(), dialect, ex.service, outcome != "ok", elapsed);
            if let Some(kind) = ex.error_kind {
                self.metrics
                    .traffic
                    .refused(a.name(), dialect, ex.service, kind.replace('_', " "));
            }
        }
        log_request(&ex, dialect, outcome, elapsed.as_millis() as u64);
        ended
    }
}

/// The request's line in the log. Straight into the log's batch where the binary's log set-up
/// allows it, through `tracing` otherwise: the same line either way, under the same
/// `RUST_LOG` (see [`logbuf::DirectLine`]).
fn log_request(ex: &Exchange, dialect: &str, outcome: &str, ms: u64) {
    let enabled = tracing::enabled!(
        tracing::Level::INFO,
        request_id,
        dialect,
        service,
        account,
        status,
        outcome,
        ms
    );
    if !enabled {
        return;
    }
    if let Some(mut line) =
        logbuf::DirectLine::start(tracing::Level::INFO, module_path!(), "request")
    {
        line.display("request_id", &ex.id);
        line.str("dialect", dialect);
        line.str("service", ex.service);
        line.str("account", ex.account_name());
        line.u64("status", ex.status.into());
        line.str("outcome", outcome);
        line.u64("ms", ms);
        return;
    }
    info!(
        request_id = %ex.id,
        dialect,
        service = ex.service,
        account = ex.account_name(),
        status = ex.status,
        outcome,
        ms,
        "request"
    );
}

/// The request's dialect in logs and metrics.
fn dialect_name(ex: &Exchange) -> &'static str {
    ex.dialect.map(|d| d.name()).unwrap_or("unknown")
}

/// UPS as one authenticated body-dialect request uses it: the account's bearer, the 401
/// retry, kept answers for effectful calls and the upstream timing, all in the pipeline.
struct AccountUps<'a> {
    pipeline: &'a Arc<Pipeline>,
    account: &'a Arc<Account>,
    env: Environment,
    token: Arc<CachedToken>,
    ex: &'a mut Exchange,
}

#[async_trait::async_trait]
impl dialect::Ups for AccountUps<'_> {
    async fn call(&mut self, call: &RestCall, body: Option<Bytes>) -> Result<RestAnswer, Failure> {
        let (p, ex) = (self.pipeline, &mut *self.ex);
        let answer = if replay::is_effectful(&call.method, &call.path_and_query) {
            p.effectful_call(self.account, self.env, self.token.clone(), call, body, ex)
                .await?
        } else {
            let token = self.token.clone();
            p.call_ups(
                self.account,
                self.env,
                token,
                call,
                body,
                &ex.id,
                ex.service,
            )
            .await?
        };
        p.metrics.observe_upstream(ex.started.elapsed());
        Ok(answer)
    }

    async fn prepare(&mut self, call: RestCall, body: Bytes) -> Result<String, Failure> {
        self.pipeline
            .digests
            .create(self.account.name(), &call, &body)
            .await
    }

    async fn make_prepared(&mut self, handle: &str) -> Result<RestAnswer, Failure> {
        let (p, token) = (self.pipeline, self.token.clone());
        let (status, body) = p
            .make_prepared(self.account, self.env, token, handle, self.ex)
            .await?;
        Ok(RestAnswer { status, body })
    }
}

/// What a streamed header-style exchange watches as its bytes pass.
pub struct Scan {
    account: Arc<Account>,
    env: Environment,
    token: Arc<CachedToken>,
    /// Rate: the request asked for negotiated rates (set by the request tap).
    asked: Option<Arc<AtomicBool>>,
    /// Rate: UPS's answer carries them.
    given: Option<Needle>,
    /// The start of an error answer, to diagnose it for the ops page.
    error_body: Option<Vec<u8>>,
}

impl Scan {
    /// Sees each chunk of the client's body on its way to UPS (`None`: nothing to watch).
    pub fn request_tap(&self) -> Option<Tap> {
        let asked = self.asked.clone()?;
        let mut needle = Needle::new(&ASKED);
        Some(Box::new(move |chunk| {
            needle.feed(chunk);
            if needle.found {
                asked.store(true, Ordering::Relaxed);
            }
        }))
    }

    /// Sees the client's whole body at once (the express lane has it in memory).
    pub fn request_seen(&self, body: &[u8]) {
        if let Some(asked) = &self.asked {
            if ASKED.is_in(body) {
                asked.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Sees each chunk of UPS's answer on its way to the client.
    pub fn answer_chunk(&mut self, chunk: &[u8]) {
        const KEEP: usize = 64 * 1024;
        if let Some(buf) = self.error_body.as_mut() {
            let room = KEEP.saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        if let Some(n) = self.given.as_mut() {
            n.feed(chunk);
        }
    }
}

/// The two byte strings scanned for.
static ASKED: Substring = Substring::new(NEGOTIATED_ASKED);
static GIVEN: Substring = Substring::new(NEGOTIATED_GIVEN);

/// The longest needle a [`Needle`] may look for, and the most it keeps between chunks.
const NEEDLE_MAX: usize = 32;

/// Finds a byte string in a stream of chunks, across chunk boundaries, without allocating:
/// what it keeps of the previous chunks fits on the stack.
struct Needle {
    substring: &'static Substring,
    /// The last `needle - 1` bytes seen (fewer at the start).
    tail: [u8; NEEDLE_MAX],
    tail_len: usize,
    found: bool,
}

impl Needle {
    fn new(substring: &'static Substring) -> Needle {
        assert!(substring.needle().len() <= NEEDLE_MAX, "needle too long");
        Needle {
            substring,
            tail: [0; NEEDLE_MAX],
            tail_len: 0,
            found: false,
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        if self.found || chunk.is_empty() {
            return;
        }
        let keep = self.substring.needle().len() - 1;
        // The kept tail and the chunk's start: a match across the seam, and what is kept
        // when the chunk is shorter than the tail.
        let mut seam = [0u8; 2 * NEEDLE_MAX];
        let head = &chunk[..chunk.len().min(keep)];
        seam[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
        seam[self.tail_len..self.tail_len + head.len()].copy_from_slice(head);
        let seam = &seam[..self.tail_len + head.len()];
        self.found = self.substring.is_in(seam) || self.substring.is_in(chunk);
        let kept = if chunk.len() >= keep {
            &chunk[chunk.len() - keep..]
        } else {
            &seam[seam.len().saturating_sub(keep)..]
        };
        self.tail[..kept.len()].copy_from_slice(kept);
        self.tail_len = kept.len();
    }
}

fn authorization(token: &CachedToken) -> Result<HeaderValue, Failure> {
    token
        .authorization()
        .ok_or_else(|| Failure::UpstreamGarbled("UPS token is not a valid header value".into()))
}

/// `/api/rating/v2409/Rate` → `rating` (a bounded label for logs and metrics).
fn service_label(path: &str) -> &'static str {
    // (`trim_start_matches` with a `&str` sets up a substring searcher on every call.)
    let p = path.strip_prefix("/api/").unwrap_or(path);
    for (prefix, label) in [
        ("rating/", "rate"),
        ("shipments/", "ship"),
        ("track/", "track"),
        ("addressvalidation/", "xav"),
        ("pickup", "pickup"),
        ("labels/", "label_recovery"),
        ("locations/", "locator"),
        ("quantumview/", "quantum_view"),
    ] {
        if !p.starts_with(prefix) {
            continue;
        }
        // Only shipments' paths are searched further (this runs for every request).
        return match label {
            "ship" if p.contains("/void/") => "void",
            "ship" if p.contains("/transittimes") => "time_in_transit",
            "ship" if p.contains("/pickup/") => "pickup",
            _ => label,
        };
    }
    "other"
}

#[cfg(test)]
mod tests {
    //! The pipeline without sockets: a fake UPS REST API and a fake token broker around the
    //! real account store (sled in a temp dir), replays and metrics.

    use super::*;
    use std::collections::VecDeque;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    const RATE_ANSWER: &str = r#"{"RateResponse":{"Response":{"ResponseStatus":{"Code":"1","Description":"Success"}},"RatedShipment":{"Service":{"Code":"02"},"BillingWeight":{"UnitOfMeasurement":{"Code":"LBS"},"Weight":"3.0"},"TransportationCharges":{"CurrencyCode":"USD","MonetaryValue":"21.50"},"ServiceOptionsCharges":{"CurrencyCode":"USD","MonetaryValue":"0.00"},"TotalCharges":{"CurrencyCode":"USD","MonetaryValue":"21.50"}}}}"#;

    /// Answers from a script, one per call, and remembers the bearer of each call.
    #[derive(Default)]
    struct FakeUps {
        script: Mutex<VecDeque<Result<(u16, &'static str), Failure>>>,
        bearers: Mutex<Vec<String>>,
        envs: Mutex<Vec<Environment>>,
    }

    #[async_trait::async_trait]
    impl RestApi for FakeUps {
        async fn exchange(
            &self,
            env: Environment,
            _call: &RestCall,
            _body: Option<Bytes>,
            bearer: &HeaderValue,
            _trans_id: &str,
        ) -> Result<RestAnswer, Failure> {
            self.envs.lock().unwrap().push(env);
            self.bearers
                .lock()
                .unwrap()
                .push(bearer.to_str().unwrap().to_string());
            let next = self.script.lock().unwrap().pop_front();
            let (status, body) = next.expect("a UPS call the test did not script")?;
            Ok(RestAnswer {
                status,
                body: Bytes::from_static(body.as_bytes()),
            })
        }
        fn request_timeout(&self) -> Duration {
            Duration::from_millis(1234)
        }
    }

    /// Hands out t1, t2, … (or fails), counting requests and invalidations.
    #[derive(Default)]
    struct FakeTokens {
        fail: bool,
        issued: AtomicUsize,
        invalidated: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Tokens for FakeTokens {
        async fn token(
            &self,
            _: &Arc<Account>,
            _: Environment,
        ) -> Result<Arc<CachedToken>, TokenError> {
            if self.fail {
                return Err(TokenError::Unreachable("connection refused".into()));
            }
            let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Arc::new(CachedToken::bearer(
                &format!("t{n}"),
                Duration::from_secs(3600),
            )))
        }
        fn invalidate(&self, _: &Account, _: Environment, _: &Arc<CachedToken>) {
            self.invalidated.fetch_add(1, Ordering::SeqCst);
        }
        fn note_api_error(&self, _: &str, _: Option<String>) {}
        fn note_negotiated_rates(&self, _: &str, _: bool, _: bool) {}
    }

    struct Bench {
        _dir: tempfile::TempDir,
        pipeline: Arc<Pipeline>,
        ups: Arc<FakeUps>,
        tokens: Arc<FakeTokens>,
    }

    /// The pipeline for the account of benches/compare/ (its request bodies are reused).
    async fn bench(ups: FakeUps, tokens: FakeTokens) -> Bench {
        bench_with(ups, tokens, HostPolicy::Account).await
    }

    async fn bench_with(ups: FakeUps, tokens: FakeTokens, host_policy: HostPolicy) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let map = dir.path().join("accounts.toml");
        let hash = crate::accounts::password::hash("bench-pass-Q7").unwrap();
        std::fs::write(
            &map,
            format!(
                "[[account]]\nname = \"bench\"\nups_account_number = \"9Y9Y9Y\"\naccess_license_number = \"BENCHKEY0001\"\nuser_id = \"benchuser\"\npassword_hash = \"{hash}\"\nclient_id = \"c\"\nclient_secret_env = \"UPSBRIDGE_PIPELINE_TEST_SECRET\"\n"
            ),
        )
        .unwrap();
        // SAFETY: every test sets the same value; nothing reads it concurrently otherwise.
        unsafe { std::env::set_var("UPSBRIDGE_PIPELINE_TEST_SECRET", "s") };
        let store = crate::store::Store::open(&dir.path().join("store"))
            .await
            .unwrap();
        let accounts = Arc::new(Accounts::open(&map, store.clone()).await.unwrap());
        let (ups, tokens) = (Arc::new(ups), Arc::new(tokens));
        let pipeline = Arc::new(Pipeline {
            accounts,
            tokens: tokens.clone(),
            rest: ups.clone(),
            metrics: Arc::new(Metrics::new()),
            max_body_bytes: 1 << 20,
            digests: Arc::new(
                ShipDigests::open(store.clone(), Duration::from_secs(60))
                    .await
                    .unwrap(),
            ),
            replays: Arc::new(Replays::new(
                store,
                crate::oauth::vault::Vault::from_key(&[7; 32]),
                Duration::from_secs(60),
            )),
            host_policy,
            default_env: Environment::Production,
        });
        Bench {
            _dir: dir,
            pipeline,
            ups,
            tokens,
        }
    }

    /// Every body dialect's rate request: (path, body, what a success answer contains).
    fn dialects() -> [(&'static str, &'static str, &'static str); 3] {
        [
            (
                "/rest/Rate",
                include_str!("../../benches/compare/rate_legacy.json"),
                "\"RateResponse\"",
            ),
            (
                "/webservices/Rate",
                include_str!("../../benches/compare/rate_soap.xml"),
                "RateResponse",
            ),
            (
                "/ups.app/xml/Rate",
                include_str!("../../benches/compare/rate_xml.xml"),
                "<RatingServiceSelectionResponse",
            ),
        ]
    }

    /// The HTTP status a dialect gives a failure: SOAP 1.1 answers every fault with 500, old
    /// XML every error with 200 (as UPS did), legacy JSON with the failure's own status.
    fn failure_status(path: &str, own: u16) -> u16 {
        match path {
            p if p.starts_with("/webservices/") => 500,
            p if p.starts_with("/ups.app/xml/") => 200,
            _ => own,
        }
    }

    /// One request through the pipeline, recorded as the transport records it.
    async fn send(b: &Bench, path: &str, body: &str) -> Answer {
        send_calling(b, path, body, None).await
    }

    /// The same, from a client that called `called`'s UPS host.
    async fn send_calling(
        b: &Bench,
        path: &str,
        body: &str,
        called: Option<Environment>,
    ) -> Answer {
        let mut ex = Exchange::new(None);
        ex.called = called;
        let (method, uri, headers) = (Method::POST, path.parse().unwrap(), Fields::Raw(&[]));
        let head = Head {
            method: &method,
            uri: &uri,
            headers,
        };
        let route = b.pipeline.route(path, headers, &mut ex).unwrap();
        let answer = b
            .pipeline
            .answer_whole(&route, &head, Ok(Bytes::from(body.to_string())), &mut ex)
            .await;
        b.pipeline.answering(&mut ex, &answer);
        b.pipeline.finish(ex, true);
        answer
    }

    fn text(a: &Answer) -> &str {
        std::str::from_utf8(&a.body).unwrap()
    }

    #[tokio::test]
    async fn wrong_credentials_are_refused_in_dialect_and_nothing_reaches_ups_or_the_broker() {
        for (path, body, _) in dialects() {
            let b = bench(FakeUps::default(), FakeTokens::default()).await;
            let answer = send(&b, path, &body.replace("bench-pass-Q7", "guess")).await;
            assert_eq!(answer.error_kind, Some("auth"), "{path}: {}", text(&answer));
            assert!(
                text(&answer).contains("250002"),
                "{path}: {}",
                text(&answer)
            );
            assert!(!text(&answer).contains("guess"), "{path}");
            assert!(b.ups.bearers.lock().unwrap().is_empty(), "{path}");
            assert_eq!(b.tokens.issued.load(Ordering::SeqCst), 0, "{path}");
        }
    }

    #[tokio::test]
    async fn a_token_failure_is_a_transient_error_in_dialect_and_nothing_reaches_ups() {
        for (path, body, _) in dialects() {
            let b = bench(
                FakeUps::default(),
                FakeTokens {
                    fail: true,
                    ..FakeTokens::default()
                },
            )
            .await;
            let answer = send(&b, path, body).await;
            assert_eq!(answer.status, failure_status(path, 503), "{path}");
            assert!(
                text(&answer).contains("could not get a UPS OAuth token"),
                "{path}: {}",
                text(&answer)
            );
            assert!(b.ups.bearers.lock().unwrap().is_empty(), "{path}");
        }
    }

    #[tokio::test]
    async fn a_401_renews_the_token_and_retries_once_in_every_body_dialect() {
        for (path, body, success) in dialects() {
            let ups = FakeUps::default();
            ups.script.lock().unwrap().extend([
                Ok((401, r#"{"response":{"errors":[{"code":"250002","message":"Invalid Authentication Information."}]}}"#)),
                Ok((200, RATE_ANSWER)),
            ]);
            let b = bench(ups, FakeTokens::default()).await;
            let answer = send(&b, path, body).await;
            assert_eq!(answer.status, 200, "{path}: {}", text(&answer));
            assert!(text(&answer).contains(success), "{path}: {}", text(&answer));
            assert_eq!(
                *b.ups.bearers.lock().unwrap(),
                ["Bearer t1", "Bearer t2"],
                "{path}"
            );
            assert_eq!(b.tokens.invalidated.load(Ordering::SeqCst), 1, "{path}");
        }
    }

    #[tokio::test]
    async fn a_second_401_is_reported_not_retried_again() {
        let ups = FakeUps::default();
        ups.script
            .lock()
            .unwrap()
            .extend([Ok((401, "{}")), Ok((401, "{}"))]);
        let b = bench(ups, FakeTokens::default()).await;
        let (path, body, _) = dialects()[0];
        let answer = send(&b, path, body).await;
        assert_eq!(
            answer.error_kind,
            Some("upstream_auth"),
            "{}",
            text(&answer)
        );
        assert_eq!(b.ups.bearers.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn an_upstream_timeout_names_the_real_timeout() {
        for (path, body, _) in dialects() {
            let ups = FakeUps::default();
            ups.script
                .lock()
                .unwrap()
                .push_back(Err(Failure::UpstreamTimeout(Duration::from_millis(1234))));
            let b = bench(ups, FakeTokens::default()).await;
            let answer = send(&b, path, body).await;
            assert_eq!(answer.status, failure_status(path, 504), "{path}");
            assert_eq!(answer.error_kind, Some("upstream_timeout"), "{path}");
            assert!(
                text(&answer).contains("1.234s"),
                "{path}: {}",
                text(&answer)
            );
        }
    }

    #[tokio::test]
    async fn each_request_is_counted_exactly_once() {
        let ups = FakeUps::default();
        ups.script
            .lock()
            .unwrap()
            .extend([Ok((200, RATE_ANSWER)), Ok((200, RATE_ANSWER))]);
        let b = bench(ups, FakeTokens::default()).await;
        let (path, body, _) = dialects()[0];
        send(&b, path, body).await;
        send(&b, path, &body.replace("bench-pass-Q7", "guess")).await;
        send(&b, path, body).await;
        let text = b.pipeline.metrics.render("");
        let count = |outcome: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with("upsbridge_requests_total")
                        && l.contains("dialect=\"legacy_json\"")
                        && l.contains(&format!("outcome=\"{outcome}\""))
                })
                .and_then(|l| l.rsplit(' ').next())
                .map(|n| n.parse::<u64>().unwrap())
        };
        assert_eq!(count("ok"), Some(2), "{text}");
        assert_eq!(count("auth"), Some(1), "{text}");
    }

    #[tokio::test]
    async fn a_client_calling_the_other_environment_goes_where_host_policy_says_and_is_counted() {
        let (path, body, _) = dialects()[0];
        for (policy, expected) in [
            (HostPolicy::Account, Environment::Production),
            (HostPolicy::Client, Environment::Cie),
        ] {
            let ups = FakeUps::default();
            ups.script.lock().unwrap().extend([
                Ok((200, RATE_ANSWER)),
                Ok((200, RATE_ANSWER)),
                Ok((200, RATE_ANSWER)),
            ]);
            let b = bench_with(ups, FakeTokens::default(), policy).await;
            send_calling(&b, path, body, None).await;
            send_calling(&b, path, body, Some(Environment::Production)).await;
            send_calling(&b, path, body, Some(Environment::Cie)).await;
            assert_eq!(
                *b.ups.envs.lock().unwrap(),
                [Environment::Production, Environment::Production, expected],
                "{policy:?}"
            );
            let text = b.pipeline.metrics.render("");
            let line = format!(
                "upsbridge_host_mismatch_total{{account=\"bench\",called=\"cie\",sent_to=\"{expected}\"}} 1"
            );
            assert!(text.contains(&line), "{policy:?}: {text}");
            assert_eq!(b.pipeline.metrics.host_mismatches_of("bench"), 1);
        }
    }

    #[test]
    fn a_needle_is_found_across_chunks() {
        let text = b"{\"ShipmentRatingOptions\":{\"NegotiatedRatesIndicator\":\"\"}}";
        for split in 0..=text.len() {
            let (a, b) = text.split_at(split);
            let mut n = Needle::new(&ASKED);
            n.feed(a);
            n.feed(b);
            assert!(n.found, "split at {split}");
        }
        let mut n = Needle::new(&ASKED);
        for c in b"NegotiatedRates Indicator".chunks(3) {
            n.feed(c);
        }
        assert!(!n.found);
        // Every chunking of texts with the needle at every place, or cut short: the stream's
        // verdict is the whole text's.
        for at in 0..12 {
            for cut in [0, 1, 23] {
                let mut text = vec![b'x'; at];
                text.extend_from_slice(&NEGOTIATED_ASKED[cut..]);
                text.extend_from_slice(b"yy");
                let whole = memchr::memmem::find(&text, NEGOTIATED_ASKED).is_some();
                assert_eq!(whole, cut == 0);
                for size in 1..=text.len() {
                    let mut n = Needle::new(&ASKED);
                    for c in text.chunks(size) {
                        n.feed(c);
                    }
                    assert_eq!(n.found, whole, "at {at}, cut {cut}, chunks of {size}");
                }
            }
        }
    }

    /// What a header-style client sends, as UPS gets it: credentials and hop-by-hop headers
    /// gone, UPS's host in the client's `Host` place, the rest in the client's order, then the
    /// bearer and a transaction id and source only where the client gave none.
    #[test]
    fn ups_gets_the_clients_headers_without_its_credentials() {
        let seen = |client: Fields<'_>| {
            let host = HeaderValue::from_static("onlinetools.ups.com");
            let headers = UpsHeaders {
                client,
                dialect: &crate::dialect::header::HeaderJson,
                host: &host,
                authorization: {
                    let mut bearer = HeaderValue::from_static("Bearer t0k");
                    bearer.set_sensitive(true);
                    bearer
                },
                trans_id: "ub0123",
            };
            let mut written = Vec::new();
            headers.each(|n, v| {
                written.push(format!(
                    "{}: {}",
                    String::from_utf8_lossy(n).to_ascii_lowercase(),
                    String::from_utf8_lossy(v)
                ))
            });
            let map = headers.to_map();
            let mapped: Vec<String> = map
                .iter()
                .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
                .collect();
            assert_eq!(written, mapped, "the map holds what is written, in order");
            assert!(map[http::header::AUTHORIZATION].is_sensitive());
            written
        };
        // The same fields from hyper's map and from the express lane's read buffer.
        let head = |pairs: &[(&str, &str)]| {
            let mut map = http::HeaderMap::new();
            for (name, value) in pairs {
                map.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            let raw: Vec<(&[u8], &[u8])> = pairs
                .iter()
                .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
                .collect();
            let written = seen(Fields::Raw(&raw));
            assert_eq!(written, seen(Fields::Map(&map)));
            written
        };
        let client = head(&[
            ("Host", "proxy.local:8080"),
            ("AccessLicenseNumber", "KEY"),
            ("Content-Type", "application/json"),
            ("Username", "user"),
            ("Password", "secret"),
            ("Authorization", "Basic c2VjcmV0"),
            ("Cookie", "s=1"),
            ("Connection", "keep-alive"),
            ("X-Custom", "a"),
            ("x-custom", "b"),
            ("transId", "client-7"),
        ]);
        assert_eq!(
            client,
            [
                "host: onlinetools.ups.com",
                "content-type: application/json",
                "x-custom: a",
                "x-custom: b",
                "transid: client-7",
                "authorization: Bearer t0k",
                "transactionsrc: upsbridge",
            ]
        );
        // No Host from the client (HTTP/1.0): UPS's still goes first of ours.
        assert_eq!(
            head(&[("Password", "secret"), ("TransactionSrc", "erp")]),
            [
                "transactionsrc: erp",
                "host: onlinetools.ups.com",
                "authorization: Bearer t0k",
                "transid: ub0123",
            ]
        );
    }
}

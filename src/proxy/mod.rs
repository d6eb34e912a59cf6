//! The pingora service: recognise the dialect, authenticate against the
//! account map, get the account's token, and send the request to UPS.
//!
//! Two paths, chosen per request in `request_filter`:
//! - header-style JSON streams through pingora's proxy loop: only headers and
//!   path change, the body is never buffered;
//! - body dialects (legacy JSON) must be read whole before anything is
//!   forwarded (their credentials are inside), so the request is translated,
//!   sent with one buffered exchange and answered here.
//!
//! Nothing is forwarded for a request whose credentials did not verify, and no
//! credential, token or secret is logged.

pub mod digest;
pub mod replay;
pub mod upstream;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::ErrorType;
use tracing::{error, info, warn};

use crate::accounts::{Account, Accounts, LegacyCredentials};
use crate::dialect::services::{AnswerShape, RestCall};
use crate::dialect::{
    self, header, legacy_json, oldxml, soap, Answer, BodyDialect, Dialect, Failure, Plan, Route,
};
use crate::metrics::Metrics;
use crate::oauth::{CachedToken, TokenBroker};
use digest::{Accept, ShipDigests};
use replay::{Begin, Replays};
use upstream::{RestAnswer, Upstream};

/// Headers a legacy client may send that must never reach UPS.
const STRIPPED_HEADERS: [&str; 5] = [
    "accesslicensenumber",
    "username",
    "password",
    "authorization",
    "cookie",
];

pub struct UpsProxy {
    pub accounts: Arc<Accounts>,
    pub broker: TokenBroker,
    pub upstream: Arc<Upstream>,
    pub metrics: Arc<Metrics>,
    pub max_body_bytes: usize,
    /// Old-XML ShipConfirm digests (two-phase shipping).
    pub digests: Arc<ShipDigests>,
    /// Answers kept for retried shipments.
    pub replays: Arc<Replays>,
}

/// An effectful call's answer, to keep if the client does not get it.
struct Keep {
    ticket: Option<replay::Ticket>,
    key: replay::Key,
    account: String,
    method: http::Method,
    status: u16,
    body: Bytes,
}

/// Per-request state.
pub struct RequestCtx {
    id: String,
    started: Instant,
    dialect: Option<Dialect>,
    service: &'static str,
    account: Option<Arc<Account>>,
    /// Header style: where the request goes and with which token.
    target: Option<header::RestTarget>,
    token: Option<Arc<CachedToken>>,
    /// Set when upsbridge answered with its own error.
    error_kind: Option<&'static str>,
    status: u16,
    /// Header style: UPS's error answer, kept (capped) to diagnose it; the client gets it as is.
    error_body: Option<BytesMut>,
    /// Reading the request body failed (bad chunk size, early close, too large): the
    /// connection is closed after the answer.
    framing_error: bool,
    /// An effectful call's answer, kept if the client is gone.
    keep: Option<Keep>,
    /// This answer is a kept one, replayed (forgotten once delivered).
    replayed: Option<(replay::Key, http::Method)>,
    /// Header-style rate: did the request ask for negotiated rates, did UPS give them?
    negotiated: Option<NegotiatedScan>,
}

/// What a streamed rate request asked for and what its answer gave (both scanned in
/// passing, chunk by chunk; nothing is buffered).
struct NegotiatedScan {
    asked: Needle,
    given: Needle,
}

const NEGOTIATED_ASKED: &[u8] = b"NegotiatedRatesIndicator";
const NEGOTIATED_GIVEN: &[u8] = b"NegotiatedRateCharges";

/// Finds a byte string in a stream of chunks, across chunk boundaries.
struct Needle {
    needle: &'static [u8],
    tail: Vec<u8>,
    found: bool,
}

impl Needle {
    fn new(needle: &'static [u8]) -> Needle {
        Needle {
            needle,
            tail: Vec::new(),
            found: false,
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        if self.found {
            return;
        }
        let keep = self.needle.len() - 1;
        let head = &chunk[..chunk.len().min(keep)];
        let mut seam = std::mem::take(&mut self.tail);
        seam.extend_from_slice(head);
        self.found = memchr::memmem::find(&seam, self.needle).is_some()
            || memchr::memmem::find(chunk, self.needle).is_some();
        let from = if chunk.len() >= keep {
            seam.clear();
            &chunk[chunk.len() - keep..]
        } else {
            let drop = seam.len().saturating_sub(keep);
            seam.drain(..drop);
            &[][..]
        };
        seam.extend_from_slice(from);
        self.tail = seam;
    }
}

impl UpsProxy {
    /// Answer the client directly.
    async fn write_answer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        answer: Answer,
    ) -> Result<bool> {
        ctx.status = answer.status;
        ctx.error_kind = answer.error_kind;
        if answer.dropped_fields > 0 {
            let dialect = ctx.dialect.map(Dialect::as_str).unwrap_or("unknown");
            self.metrics
                .count_dropped_fields(dialect, ctx.service, answer.dropped_fields);
        }
        let mut resp = ResponseHeader::build(answer.status, Some(4))?;
        resp.insert_header("content-type", answer.content_type)?;
        resp.insert_header("content-length", answer.body.len())?;
        resp.insert_header("x-upsbridge-request-id", ctx.id.as_str())?;
        if let Some(kind) = answer.error_kind {
            resp.insert_header("x-upsbridge-error", kind)?;
        }
        if !session.is_body_done() || ctx.framing_error {
            // The client's body was not read (refused early) or its framing was broken: the
            // next bytes on this connection cannot be trusted to start a request (smuggling).
            session.set_keepalive(None);
        }
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(answer.body), true).await?;
        Ok(true)
    }

    /// The implementation of a body dialect (`None` for header style, which streams).
    fn body_dialect(dialect: Dialect) -> Option<&'static dyn BodyDialect> {
        match dialect {
            Dialect::HeaderJson => None,
            Dialect::LegacyJson => Some(&legacy_json::LegacyJson),
            Dialect::Soap => Some(&soap::Soap),
            Dialect::Xml => Some(&oldxml::OldXml),
        }
    }

    fn refusal(route: &Route, shape: Option<&AnswerShape>, failure: &Failure) -> Answer {
        match Self::body_dialect(route.dialect) {
            None => header::refusal(failure),
            Some(d) => d.refusal(route, shape, failure),
        }
    }

    /// Log a refusal in terms ops can act on.
    fn log_refusal(ctx: &RequestCtx, failure: &Failure) {
        let account = ctx.account.as_ref().map(|a| a.name()).unwrap_or("-");
        warn!(request_id = %ctx.id, dialect = ctx.dialect.map(Dialect::as_str).unwrap_or("-"),
              service = ctx.service, account, kind = failure.kind(), "refused: {failure}");
    }

    async fn authenticate(
        &self,
        session: &Session,
        creds: &LegacyCredentials,
    ) -> std::result::Result<Arc<Account>, Failure> {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        match self.accounts.authenticate(creds, peer).await {
            Ok(a) => Ok(a),
            Err(e) => {
                // Who tried what, from where (never the password): what ops need to act.
                let peer = peer.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
                warn!(peer = %peer, access_key = %creds.access_key, user = %creds.user_id,
                      reason = e.reason(), "legacy credentials refused: {e}");
                self.metrics.count_auth_refusal(e.reason());
                // Wrong password or disabled for a known login: shown on that account's view.
                if let Some(name) = self.accounts.name_for(&creds.access_key, &creds.user_id) {
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

    /// Read the whole request body, refusing more than `max_body_bytes`.
    async fn read_body(&self, session: &mut Session) -> std::result::Result<Bytes, Failure> {
        let declared = session
            .req_header()
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.max_body_bytes) {
            return Err(Failure::TooLarge(self.max_body_bytes));
        }
        let mut buf = BytesMut::with_capacity(declared.unwrap_or(4096).min(self.max_body_bytes));
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if buf.len() + chunk.len() > self.max_body_bytes {
                        return Err(Failure::TooLarge(self.max_body_bytes));
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(buf.freeze()),
                Err(e) => {
                    return Err(Failure::Malformed(format!(
                        "request body: {}",
                        e.etype().as_str()
                    )))
                }
            }
        }
    }

    /// Body dialects: read, authenticate, translate, call UPS, translate back.
    /// `shape` is filled in as soon as the request is understood, for the refusal's shape.
    async fn body_dialect_request(
        &self,
        dialect: &dyn BodyDialect,
        route: &Route,
        session: &mut Session,
        ctx: &mut RequestCtx,
        shape: &mut Option<AnswerShape>,
    ) -> std::result::Result<Answer, Failure> {
        let body = self
            .read_body(session)
            .await
            .inspect_err(|_| ctx.framing_error = true)?;
        let parsed = dialect.parse(route, &body)?;
        if let Ok((_, s)) = &parsed.plan {
            // Lets a refusal echo the client's own CustomerContext (old XML); nothing more.
            *shape = Some(s.clone());
        }
        let account = self.authenticate(session, &parsed.credentials).await?;
        ctx.account = Some(account.clone());
        let (plan, answer_shape) = parsed.plan?;
        ctx.service = answer_shape.service.name();
        let answer_shape = shape.insert(answer_shape);
        let token = self.broker.token(&account).await?;
        match plan {
            Plan::Call { call, body } => {
                let answer = if replay::is_effectful(&call.method, &call.path_and_query) {
                    self.effectful_call(session, &account, token, &call, body, ctx)
                        .await?
                } else {
                    self.call_ups(&account, token, &call, body, ctx).await?
                };
                self.metrics.observe_upstream(ctx.started.elapsed());
                Ok(dialect.answer(answer_shape, answer.status, answer.body))
            }
            Plan::ShipConfirm {
                rate,
                rate_body,
                ship,
                ship_body,
            } => {
                ctx.service = "ship_confirm";
                let answer = self
                    .call_ups(&account, token, &rate, Some(rate_body), ctx)
                    .await?;
                self.metrics.observe_upstream(ctx.started.elapsed());
                if (200..300).contains(&answer.status) {
                    let digest = self
                        .digests
                        .create(account.name(), &ship, &ship_body)
                        .await?;
                    answer_shape.xml.digest = Some(digest);
                }
                Ok(dialect.answer(answer_shape, answer.status, answer.body))
            }
            Plan::ShipAccept { digest } => {
                ctx.service = "ship_accept";
                // A concurrent retry of an accept in progress waits for it, then gets its answer.
                let started = Instant::now();
                let accept = loop {
                    match self.digests.begin(&digest, account.name()).await {
                        Err(Failure::DigestBusy)
                            if started.elapsed() < self.upstream.request_timeout() =>
                        {
                            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        }
                        other => break other?,
                    }
                };
                match accept {
                    Accept::Cached { status, body } => {
                        // The same digest is the same shipment: a retried accept gets the
                        // first accept's answer (label included) and never ships twice.
                        let shipped: serde_json::Value =
                            serde_json::from_slice(&body).unwrap_or_default();
                        let id = dialect::json_text(shipped.pointer(
                            "/ShipmentResponse/ShipmentResults/ShipmentIdentificationNumber",
                        ));
                        info!(request_id = %ctx.id, shipment = %id, "ShipAccept repeated: the first accept's answer replayed, not shipped again");
                        Ok(dialect.answer(answer_shape, status, body))
                    }
                    Accept::Ship { key, call, body } => {
                        let outcome = self.call_ups(&account, token, &call, Some(body), ctx).await;
                        self.metrics.observe_upstream(ctx.started.elapsed());
                        match outcome {
                            Ok(answer) if (200..300).contains(&answer.status) => {
                                self.digests
                                    .finish(&key, answer.status, &answer.body)
                                    .await?;
                                Ok(dialect.answer(answer_shape, answer.status, answer.body))
                            }
                            other => {
                                self.digests.release(&key).await?;
                                let answer = other?;
                                Ok(dialect.answer(answer_shape, answer.status, answer.body))
                            }
                        }
                    }
                }
            }
        }
    }

    /// A call that creates or destroys something (ship, void, pickup): answered from a kept
    /// answer when this is the retry of a call whose client had gone, else made once and
    /// run to completion even if the client leaves; the answer goes to `ctx.keep` so that
    /// the writer keeps it when the client did not get it (see [`replay`]).
    async fn effectful_call(
        &self,
        session: &mut Session,
        account: &Arc<Account>,
        token: Arc<CachedToken>,
        call: &RestCall,
        body: Option<Bytes>,
        ctx: &mut RequestCtx,
    ) -> std::result::Result<RestAnswer, Failure> {
        let key = Replays::key(account.name(), call, body.as_deref());
        if let Some(kept) = self.kept_answer(&key, account, call, ctx)? {
            return Ok(kept);
        }
        let ticket = match self.replays.begin(key).await {
            Begin::Call(t) => Some(t),
            Begin::Answered(status, body) => {
                info!(request_id = %ctx.id, account = account.name(), "a retry that waited for the identical call in flight gets its answer (not sent to UPS again)");
                self.metrics.count_replay();
                ctx.replayed = Some((key, call.method.clone()));
                return Ok(RestAnswer { status, body });
            }
            Begin::Separate => {
                if let Some(kept) = self.kept_answer(&key, account, call, ctx)? {
                    return Ok(kept);
                }
                None
            }
        };
        let answer = {
            let exchange = self.call_ups(account, token, call, body, ctx);
            tokio::pin!(exchange);
            let mut watching = true;
            loop {
                tokio::select! {
                    a = &mut exchange => break a,
                    // The body is read: the next event on the client connection is its close.
                    r = session.downstream_session.read_body_or_idle(true), if watching => {
                        watching = false;
                        if r.is_err() {
                            if let Some(t) = &ticket {
                                t.client_gone();
                            }
                            warn!(request_id = %ctx.id, "the client left while UPS was working; the call runs on and its answer is kept for the client's retry");
                        }
                    }
                }
            }
        };
        let answer = answer?;
        ctx.keep = Some(Keep {
            ticket,
            key,
            account: account.name().to_string(),
            method: call.method.clone(),
            status: answer.status,
            body: answer.body.clone(),
        });
        Ok(answer)
    }

    fn kept_answer(
        &self,
        key: &replay::Key,
        account: &Account,
        call: &RestCall,
        ctx: &mut RequestCtx,
    ) -> std::result::Result<Option<RestAnswer>, Failure> {
        Ok(self.replays.kept(key, account.name())?.map(|(status, body)| {
            info!(request_id = %ctx.id, account = account.name(), "a retried call answered with the answer its first attempt's client never got (not sent to UPS again)");
            self.metrics.count_replay();
            ctx.replayed = Some((*key, call.method.clone()));
            RestAnswer { status, body }
        }))
    }

    /// After the answer was written (or not): keep an effectful call's answer the client did
    /// not get, forget a replayed one it did get.
    async fn settle(&self, ctx: &mut RequestCtx, delivered: bool) {
        if let Some((key, method)) = ctx.replayed.take() {
            if delivered {
                self.replays.delivered_replay(&key, &method);
            }
        }
        let Some(keep) = ctx.keep.take() else { return };
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
                    warn!(request_id = %ctx.id, account = %keep.account, "answer not delivered (the client had gone): kept for its retry");
                    self.metrics.count_kept_answer();
                    replay::Outcome::Kept(keep.status, keep.body.clone())
                }
                Err(e) => {
                    error!(request_id = %ctx.id, error = %e, "could not keep an undelivered answer");
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
    async fn call_ups(
        &self,
        account: &Arc<Account>,
        token: Arc<CachedToken>,
        call: &RestCall,
        body: Option<Bytes>,
        ctx: &RequestCtx,
    ) -> std::result::Result<RestAnswer, Failure> {
        let asks_negotiated = body
            .as_deref()
            .is_some_and(|b| memchr::memmem::find(b, NEGOTIATED_ASKED).is_some());
        let mut answer = self
            .upstream
            .exchange(call, body.clone(), &Self::authorization(&token)?, &ctx.id)
            .await?;
        if answer.status == 401 {
            warn!(request_id = %ctx.id, account = account.name(), "UPS refused the token (401); renewing it and retrying once");
            self.broker.invalidate(account.name(), &token);
            let token = self.broker.token(account).await?;
            answer = self
                .upstream
                .exchange(call, body, &Self::authorization(&token)?, &ctx.id)
                .await?;
            if answer.status == 401 {
                return Err(Failure::UpstreamAuth(account.name().to_string()));
            }
        }
        self.diagnose(account.name(), ctx.service, answer.status, &answer.body);
        if (200..300).contains(&answer.status) && matches!(ctx.service, "rate" | "ship") {
            let got = memchr::memmem::find(&answer.body, NEGOTIATED_GIVEN).is_some();
            self.broker
                .note_negotiated_rates(account.name(), asks_negotiated, got);
        }
        Ok(answer)
    }

    fn authorization(token: &CachedToken) -> std::result::Result<http::HeaderValue, Failure> {
        token
            .authorization()
            .ok_or_else(|| Failure::UpstreamGarbled("UPS token is not a valid header value".into()))
    }

    /// Keep the account's last UPS error (and its fix) for the ops page.
    fn diagnose(&self, account: &str, service: &str, status: u16, body: &[u8]) {
        if (200..300).contains(&status) {
            if service == "rate" || service == "ship" {
                self.broker.note_api_error(account, None);
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
            self.broker.note_api_error(account, Some(message));
        }
    }

    /// Header style: authenticate and pick the target; pingora streams the rest.
    async fn header_style(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> std::result::Result<(), Failure> {
        let req = session.req_header();
        let has_body = req.headers.get("content-length").is_some_and(|v| v != "0")
            || req.headers.get("transfer-encoding").is_some();
        let target = header::map(&req.method, req.uri.path(), req.uri.query(), has_body)
            .ok_or_else(|| Failure::UnknownService(req.uri.path().to_string()))?;
        ctx.service = service_label(&target.path_and_query);
        if let Some(h) = header::repeated_credential_header(&req.headers) {
            return Err(Failure::Malformed(format!("the {h} header is sent twice")));
        }
        let creds = header::credentials(&req.headers);
        let account = self.authenticate(session, &creds).await?;
        ctx.account = Some(account.clone());
        ctx.token = Some(self.broker.token(&account).await?);
        if ctx.service == "rate" {
            ctx.negotiated = Some(NegotiatedScan {
                asked: Needle::new(NEGOTIATED_ASKED),
                given: Needle::new(NEGOTIATED_GIVEN),
            });
        }
        ctx.target = Some(target);
        Ok(())
    }
}

impl UpsProxy {
    /// Header style, a call that creates or destroys something: read whole, sent once,
    /// UPS's answer passed back as it is (and kept if the client is gone).
    async fn header_style_effectful(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> std::result::Result<Answer, Failure> {
        let (Some(target), Some(token), Some(account)) =
            (ctx.target.clone(), ctx.token.clone(), ctx.account.clone())
        else {
            return Err(Failure::Store(
                "header-style request without its target".into(),
            ));
        };
        let body = self
            .read_body(session)
            .await
            .inspect_err(|_| ctx.framing_error = true)?;
        let call = RestCall {
            method: target.method.clone(),
            path_and_query: target.path_and_query.clone(),
            body: crate::dialect::services::RestBody::Unchanged,
            headers: vec![],
        };
        let body = (!body.is_empty()).then_some(body);
        let answer = self
            .effectful_call(session, &account, token, &call, body, ctx)
            .await?;
        self.metrics.observe_upstream(ctx.started.elapsed());
        Ok(Answer {
            status: answer.status,
            content_type: "application/json",
            body: answer.body,
            error_kind: None,
            dropped_fields: 0,
        })
    }
}

/// Has the client closed its connection (its request body is read, so the next event on
/// the connection is its close)? Never waits.
fn client_gone_now(session: &mut Session) -> bool {
    use futures::FutureExt;
    matches!(
        session
            .downstream_session
            .read_body_or_idle(true)
            .now_or_never(),
        Some(Err(_)) | Some(Ok(None))
    )
}

/// `/api/rating/v2409/Rate` → `rating` (a bounded label for logs and metrics).
fn service_label(path: &str) -> &'static str {
    let p = path.trim_start_matches("/api/");
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
        if p.starts_with(prefix) {
            return match (label, p.contains("/void/"), p.contains("/transittimes")) {
                ("ship", true, _) => "void",
                ("ship", _, true) => "time_in_transit",
                ("ship", _, _) if p.contains("/pickup/") => "pickup",
                _ => label,
            };
        }
    }
    "other"
}

#[async_trait]
impl ProxyHttp for UpsProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            id: format!("ub{:016x}", rand::random::<u64>()),
            started: Instant::now(),
            dialect: None,
            service: "-",
            account: None,
            target: None,
            token: None,
            error_kind: None,
            status: 0,
            error_body: None,
            framing_error: false,
            keep: None,
            replayed: None,
            negotiated: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let req = session.req_header();
        let has_key = req.headers.contains_key("accesslicensenumber");
        let Some(route) = dialect::detect(req.uri.path(), has_key) else {
            let failure = Failure::UnknownService(req.uri.path().to_string());
            Self::log_refusal(ctx, &failure);
            return self
                .write_answer(session, ctx, header::refusal(&failure))
                .await;
        };
        ctx.dialect = Some(route.dialect);
        if dialect::has_dot_segment(req.uri.path()) {
            let failure = Failure::Malformed("a `.` or `..` path segment".into());
            Self::log_refusal(ctx, &failure);
            let answer = Self::refusal(&route, None, &failure);
            return self.write_answer(session, ctx, answer).await;
        }
        let mut shape = None;
        let outcome = match Self::body_dialect(route.dialect) {
            None => match self.header_style(session, ctx).await {
                // A call that creates or destroys something is buffered (its answer may have
                // to be kept for a retry); everything else streams through pingora.
                Ok(())
                    if ctx
                        .target
                        .as_ref()
                        .is_some_and(|t| replay::is_effectful(&t.method, &t.path_and_query)) =>
                {
                    self.header_style_effectful(session, ctx).await
                }
                Ok(()) => return Ok(false),
                Err(f) => Err(f),
            },
            Some(d) => {
                self.body_dialect_request(d, &route, session, ctx, &mut shape)
                    .await
            }
        };
        let answer = match outcome {
            Ok(answer) => answer,
            Err(failure) => {
                Self::log_refusal(ctx, &failure);
                Self::refusal(&route, shape.as_ref(), &failure)
            }
        };
        // An answer that may have to be kept is only given to a client that is still there:
        // a write into a connection the client closed can succeed and lose the answer.
        let gone = (ctx.keep.is_some() || ctx.replayed.is_some()) && client_gone_now(session);
        let written = if gone {
            session.set_keepalive(None);
            Ok(true)
        } else {
            self.write_answer(session, ctx, answer).await
        };
        self.settle(ctx, written.is_ok() && !gone).await;
        written
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.upstream.peer()))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let (Some(target), Some(token)) = (&ctx.target, &ctx.token) else {
            // request_filter lets only authenticated header-style requests get here.
            return Error::e_explain(
                ErrorType::InternalError,
                "request reached upstream without authentication",
            );
        };
        upstream.set_method(target.method.clone());
        let uri = target
            .path_and_query
            .parse()
            .map_err(|_| Error::explain(ErrorType::InternalError, "mapped path is not a URI"))?;
        upstream.set_uri(uri);
        for h in STRIPPED_HEADERS {
            upstream.remove_header(h);
        }
        let authorization = token.authorization().ok_or_else(|| {
            Error::explain(
                ErrorType::InvalidHTTPHeader,
                "UPS token is not a valid header value",
            )
        })?;
        upstream.insert_header("host", self.upstream.host_header())?;
        upstream.insert_header("authorization", authorization)?;
        if !upstream.headers.contains_key("transid") {
            upstream.insert_header("transid", ctx.id.as_str())?;
        }
        if !upstream.headers.contains_key("transactionsrc") {
            upstream.insert_header("transactionsrc", "upsbridge")?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let status = upstream.status.as_u16();
        ctx.status = status;
        if status == 401 {
            // The token is dead at UPS: drop it so the client's next request gets a new one.
            // (This request's body was streamed and cannot be replayed.)
            if let (Some(a), Some(t)) = (&ctx.account, &ctx.token) {
                self.broker.invalidate(a.name(), t);
            }
        }
        if status >= 400 {
            ctx.error_body = Some(BytesMut::new());
        } else if let Some(a) = &ctx.account {
            self.diagnose(a.name(), ctx.service, status, &[]);
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        const KEEP: usize = 64 * 1024;
        if let (Some(buf), Some(chunk)) = (ctx.error_body.as_mut(), body.as_ref()) {
            let room = KEEP.saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        if let (Some(scan), Some(chunk)) = (ctx.negotiated.as_mut(), body.as_ref()) {
            scan.given.feed(chunk);
        }
        if end_of_stream {
            if let (Some(buf), Some(a)) = (ctx.error_body.take(), &ctx.account) {
                self.diagnose(a.name(), ctx.service, ctx.status, &buf);
            }
            if let (Some(scan), Some(a)) = (ctx.negotiated.take(), &ctx.account) {
                if (200..300).contains(&ctx.status) {
                    self.broker
                        .note_negotiated_rates(a.name(), scan.asked.found, scan.given.found);
                }
            }
        }
        Ok(None)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let (Some(scan), Some(chunk)) = (ctx.negotiated.as_mut(), body.as_ref()) {
            scan.asked.feed(chunk);
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let failure = match e.etype() {
            ErrorType::ReadTimedout | ErrorType::WriteTimedout | ErrorType::ConnectTimedout => {
                Failure::UpstreamTimeout(self.upstream.request_timeout())
            }
            other => Failure::UpstreamUnreachable(other.as_str().to_string()),
        };
        let code = match e.esource() {
            // The client went away or sent garbage: nothing useful to answer.
            pingora::ErrorSource::Downstream => 0,
            _ => {
                Self::log_refusal(ctx, &failure);
                // Only header-style requests are proxied by pingora, so refuse in that shape.
                let answer = header::refusal(&failure);
                let status = answer.status;
                if self.write_answer(session, ctx, answer).await.is_err() {
                    0
                } else {
                    status
                }
            }
        };
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(ctx.status);
        let dialect = ctx.dialect.map(Dialect::as_str).unwrap_or("unknown");
        let outcome = match (ctx.error_kind, status) {
            (Some(kind), _) => kind,
            (None, 200..=299) => "ok",
            (None, _) => "ups_error",
        };
        self.metrics.count_request(dialect, ctx.service, outcome);
        if ctx.dialect == Some(Dialect::HeaderJson) && ctx.error_kind.is_none() {
            self.metrics.observe_upstream(ctx.started.elapsed());
        }
        if let Some(a) = &ctx.account {
            let error = outcome != "ok";
            self.metrics.traffic.record(
                a.name(),
                dialect,
                ctx.service,
                error,
                ctx.started.elapsed(),
            );
            if let Some(kind) = ctx.error_kind {
                self.metrics.traffic.refused(
                    a.name(),
                    dialect,
                    ctx.service,
                    kind.replace('_', " "),
                );
            }
        }
        let account = ctx.account.as_ref().map(|a| a.name()).unwrap_or("-");
        info!(
            request_id = %ctx.id,
            dialect,
            service = ctx.service,
            account,
            status,
            outcome,
            error = e.map(|e| e.etype().as_str()).unwrap_or("-"),
            ms = ctx.started.elapsed().as_millis() as u64,
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_needle_is_found_across_chunks() {
        for split in 0..30 {
            let text = b"{\"ShipmentRatingOptions\":{\"NegotiatedRatesIndicator\":\"\"}}";
            let (a, b) = text.split_at(split.min(text.len()));
            let mut n = Needle::new(NEGOTIATED_ASKED);
            n.feed(a);
            n.feed(b);
            assert!(n.found, "split at {split}");
        }
        let mut n = Needle::new(NEGOTIATED_ASKED);
        for c in b"NegotiatedRates Indicator".chunks(3) {
            n.feed(c);
        }
        assert!(!n.found);
        let mut n = Needle::new(NEGOTIATED_ASKED);
        for c in b"xxNegotiatedRatesIndicator".chunks(1) {
            n.feed(c);
        }
        assert!(n.found, "one byte at a time");
    }
}

//! The proxy listener: a pingora service (listeners, process lifecycle, signals,
//! graceful shutdown) whose connections are served by hyper, moving bytes between
//! the client, [`crate::pipeline`] and UPS. Nothing here knows a dialect.
//!
//! Connections start in the express lane (`express`): header-style calls exchanged with
//! UPS in one write each way on httparse, body dialects' translated by the pipeline and
//! answered in one write. The first request it does not take hands the connection to hyper
//! for the rest of its life. Both talk to UPS by hand on pooled connections (`h1`) for
//! calls that change nothing there, and through hyper's client for the rest.
//!
//! Two shapes of exchange on hyper:
//! - streamed: a streaming-mode request's body goes to UPS as it arrives and UPS's answer comes
//!   back as it arrives; only headers and the path change;
//! - answered: the pipeline reads the whole body and produces the whole answer.
//!
//! Why hyper and not pingora's proxy loop: measured in one run against nginx, the
//! loop alone cost about twice nginx's CPU per request (docs/performance.md).

mod body;
mod express;
mod h1;
mod tunnel;
pub mod upstream;

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use std::time::Duration;

use async_trait::async_trait;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::config::Environment;
use crate::dialect::Fields;
use crate::error::Failure;
use crate::pipeline::{Answer, Head, Route};
use crate::pipeline::{Exchange, Pipeline, Scan};
use body::AnswerBody;
pub use tunnel::Entry;
use upstream::Payload;

/// Yield before a body dialect's write (its REST call to UPS, its answer to the client), so
/// the requests that are ready translate back to back and their writes follow together.
/// tokio wakes a yielded task only once its ready tasks have run and the driver was polled.
///
/// Why: a translation that runs straight after the kernel's send path (on loopback, the
/// peer's receive too) runs at about half its speed in process, its code and data evicted.
/// Batched this way, a SOAP or old-XML request took about 9-10 % less CPU and the proxy
/// answered 9-12 % more of them (medians of 14 runs, the same binary both ways in each:
/// docs/performance.md, thirty-ninth session).
/// With nothing else ready it costs one more poll of the driver.
async fn yield_to_ready_requests() {
    tokio::task::yield_now().await;
}

/// Downstream limits of the proxy listeners.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

pub struct ProxyApp {
    pipeline: Arc<Pipeline>,
    /// Where streamed requests go (production's or CIE's UPS).
    upstreams: Arc<upstream::Upstreams>,
    limits: Limits,
    entry: Entry,
    /// Shared by every listener: the cap is on the process.
    slots: Arc<Semaphore>,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-upsbridge-request-id");

impl ProxyApp {
    pub fn new(
        pipeline: Arc<Pipeline>,
        upstreams: Arc<upstream::Upstreams>,
        limits: Limits,
        entry: Entry,
        slots: Arc<Semaphore>,
    ) -> ProxyApp {
        ProxyApp {
            pipeline,
            upstreams,
            limits,
            entry,
            slots,
        }
    }

    /// Serve HTTP/1.1 on one connection (plain, TLS, or inside a CONNECT tunnel).
    /// `called`: the UPS environment the TLS server name (SNI) named, if any.
    async fn serve<I>(
        self: &Arc<Self>,
        io: I,
        peer: Option<IpAddr>,
        called: Option<Environment>,
        shutdown: &ShutdownWatch,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        use hyper_util::rt::{TokioIo, TokioTimer};
        let app = self.clone();
        let on_shutdown = shutdown.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let app = app.clone();
            // A CONNECT tunnel outlives this connection's serve: it gets its own watch.
            let tunnel_shutdown =
                (req.method() == http::Method::CONNECT).then(|| on_shutdown.clone());
            async move {
                Ok::<_, Infallible>(match tunnel_shutdown {
                    Some(shutdown) => app.connect(req, peer, shutdown),
                    None => app.handle(req, peer, called).await,
                })
            }
        });
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            // `Content-Type`, as UPS writes it: some old clients match header names exactly.
            .title_case_headers(true);
        let conn = http
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(conn);
        let mut shutdown = shutdown.clone();
        let ended = tokio::select! {
            r = conn.as_mut() => r,
            _ = shutdown.changed() => {
                // Finish the request in flight, then close.
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = ended {
            debug!(?peer, error = %e, "client connection ended");
        }
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: Option<IpAddr>,
        called: Option<Environment>,
    ) -> Response<AnswerBody> {
        let mut ex = Exchange::new(peer);
        let (parts, body) = req.into_parts();
        let fields = Fields::Map(&parts.headers);
        ex.called = called.or_else(|| tunnel::called_by_host(&parts.uri, fields));
        let route = match self.pipeline.route(parts.uri.path(), fields, &mut ex) {
            Ok(route) => route,
            Err(answer) => return self.answer(ex, answer, !body.is_end_stream()),
        };
        let head = Head {
            method: &parts.method,
            uri: &parts.uri,
            headers: fields,
        };
        if Pipeline::reads_whole_body(&route) {
            let body = body::read_whole(body, &parts.headers, self.pipeline.max_body_bytes).await;
            let answer = self
                .pipeline
                .answer_whole(&route, &head, body, &mut ex)
                .await;
            return self.answer(ex, answer, false);
        }
        let p = &self.pipeline;
        let failure =
            match p.authorize_stream(&route, &head, &mut ex).await {
                Ok(auth) if !auth.is_effectful() => {
                    let upstream = match self.upstreams.of(auth.env) {
                        Ok(u) => u,
                        Err(f) => return self.refuse(&route, ex, f),
                    };
                    let scan = p.scan(&auth, &ex);
                    let host = upstream.host_header();
                    let headers = match p.headers_for_ups(&auth, fields, host, &ex) {
                        Ok(headers) => headers.to_map(),
                        Err(f) => return self.refuse(&route, ex, f),
                    };
                    let mut up = Request::new(Payload::Stream {
                        body,
                        tap: scan.request_tap(),
                    });
                    *up.method_mut() = auth.target.method.clone();
                    *up.headers_mut() = headers;
                    match upstream.uri(&auth.target.path_and_query) {
                        Ok(uri) => *up.uri_mut() = uri,
                        Err(f) => return self.refuse(&route, ex, f),
                    }
                    match upstream.send(up).await {
                        Ok(resp) => return self.stream(ex, scan, resp),
                        Err(f) => f,
                    }
                }
                Ok(auth) => {
                    let answer =
                        match body::read_whole(body, &parts.headers, self.pipeline.max_body_bytes)
                            .await
                        {
                            Ok(body) => p.answer_effectful(auth, body, &mut ex).await,
                            Err(f) => {
                                ex.framing_error = true;
                                Err(f)
                            }
                        };
                    match answer {
                        Ok(answer) => return self.answer(ex, answer, false),
                        Err(f) => f,
                    }
                }
                Err(f) => f,
            };
        self.refuse(&route, ex, failure)
    }

    fn refuse(&self, route: &Route, ex: Exchange, failure: Failure) -> Response<AnswerBody> {
        let answer = self.pipeline.stream_refusal(route, &ex, &failure);
        self.answer(ex, answer, true)
    }

    /// Our own answer. `close`: the client's body was not read, or its framing was broken,
    /// so the next bytes on this connection cannot be trusted to start a request.
    fn answer(&self, mut ex: Exchange, answer: Answer, close: bool) -> Response<AnswerBody> {
        self.pipeline.answering(&mut ex, &answer);
        let mut head = Response::new(());
        *head.status_mut() =
            http::StatusCode::from_u16(answer.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
        let h = head.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(answer.content_type),
        );
        if let Some(kind) = answer.error_kind {
            h.insert("x-upsbridge-error", HeaderValue::from_static(kind));
        }
        if close || ex.framing_error {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        self.respond(head, Payload::Full(Some(answer.body)), Some(ex), None)
    }

    /// UPS's answer, streamed back as it comes.
    fn stream(
        &self,
        mut ex: Exchange,
        mut scan: Scan,
        resp: Response<Incoming>,
    ) -> Response<AnswerBody> {
        let (mut parts, body) = resp.into_parts();
        self.pipeline
            .stream_answered(&mut scan, parts.status.as_u16(), &mut ex);
        for h in [header::CONNECTION, HeaderName::from_static("keep-alive")] {
            parts.headers.remove(h);
        }
        let head = Response::from_parts(parts, ());
        self.respond(
            head,
            Payload::Stream { body, tap: None },
            Some(ex),
            Some(scan),
        )
    }

    /// The answer to write: `head` with `payload`, recording `ex` (if any) once written.
    fn respond(
        &self,
        mut head: Response<()>,
        payload: Payload,
        ex: Option<Exchange>,
        scan: Option<Scan>,
    ) -> Response<AnswerBody> {
        if let Some(ex) = &ex {
            let id = HeaderValue::from_str(&ex.id).expect("hex is a header value");
            head.headers_mut().insert(REQUEST_ID, id);
        }
        head.map(|()| AnswerBody::new(payload, self.pipeline.clone(), ex, scan))
    }
}

#[async_trait]
impl ServerApp for ProxyApp {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let Ok(_slot) = self.slots.clone().try_acquire_owned() else {
            warn!(max = self.limits.max_connections, "client connection refused: too many open; raise [proxy] max_connections if this is legitimate");
            self.pipeline.metrics.count_connection_refused("proxy");
            return None;
        };
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        match &self.entry.tls {
            None => self.serve_express(stream, peer, None, shutdown).await,
            Some(config) => {
                if let Some(tls) = self.accept_tls(config.clone(), stream, peer).await {
                    let called = tunnel::called_by_sni(&tls);
                    self.serve_express(tls, peer, called, shutdown).await;
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    /// What the batching relies on (tokio does not promise an order): on a current-thread
    /// runtime, as pingora runs each proxy thread without work stealing, every request that
    /// is ready does its work before the first of them writes.
    #[test]
    fn ready_requests_work_before_any_of_them_writes() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        rt.block_on(async {
            let requests: Vec<_> = (0..3)
                .map(|request| {
                    let log = Arc::clone(&log);
                    tokio::spawn(async move {
                        log.lock().unwrap().push(("translate", request));
                        super::yield_to_ready_requests().await;
                        log.lock().unwrap().push(("write", request));
                    })
                })
                .collect();
            for request in requests {
                request.await.unwrap();
            }
        });
        let log = log.lock().unwrap();
        let steps: Vec<&str> = log.iter().map(|(step, _)| *step).collect();
        assert_eq!(
            steps,
            [
                "translate",
                "translate",
                "translate",
                "write",
                "write",
                "write"
            ],
            "{log:?}"
        );
    }
}

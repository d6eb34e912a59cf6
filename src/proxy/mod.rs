//! The proxy listener: a pingora service (listeners, process lifecycle, signals,
//! graceful shutdown) whose connections are served by hyper, moving bytes between
//! the client, [`crate::pipeline`] and UPS. Nothing here knows a dialect.
//!
//! Two shapes of exchange:
//! - streamed: header style's body goes to UPS as it arrives and UPS's answer comes
//!   back as it arrives; only headers and the path change;
//! - answered: the pipeline reads the whole body and produces the whole answer.
//!
//! Why hyper and not pingora's proxy loop: measured in one run against nginx, the
//! loop alone cost about twice nginx's CPU per request (docs/performance.md).

pub mod digest;
pub mod replay;
pub mod upstream;

use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::dialect::{header::refusal, Answer, Failure};
use crate::pipeline::{Exchange, Pipeline, Scan};
use upstream::UpstreamBody;

/// Headers a client may send that must never reach UPS: its legacy credentials, anything
/// that authenticates elsewhere, and hop-by-hop headers of its own connection.
const STRIPPED_HEADERS: [HeaderName; 11] = [
    HeaderName::from_static("accesslicensenumber"),
    HeaderName::from_static("username"),
    HeaderName::from_static("password"),
    header::AUTHORIZATION,
    header::COOKIE,
    header::PROXY_AUTHORIZATION,
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::UPGRADE,
    header::EXPECT,
];

/// Downstream limits of the proxy listeners.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// One listener's way in: plain HTTP (optionally with `CONNECT` tunnels to UPS's names),
/// or TLS.
#[derive(Clone, Default)]
pub struct Entry {
    /// Terminate TLS on every connection (the TLS listener).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Accept `CONNECT <UPS name>:443` and terminate TLS inside with this config.
    pub connect: Option<Arc<rustls::ServerConfig>>,
    /// The host names a CONNECT may name (UPS's, and the names the CA was made for).
    pub connect_names: Arc<[String]>,
}

pub struct ProxyApp {
    pipeline: Arc<Pipeline>,
    /// Where header style streams to.
    upstream: Arc<upstream::Upstream>,
    limits: Limits,
    entry: Entry,
    /// Shared by every listener: the cap is on the process.
    slots: Arc<Semaphore>,
    request_id: HeaderName,
}

impl ProxyApp {
    pub fn new(
        pipeline: Arc<Pipeline>,
        upstream: Arc<upstream::Upstream>,
        limits: Limits,
        entry: Entry,
        slots: Arc<Semaphore>,
    ) -> ProxyApp {
        ProxyApp {
            pipeline,
            upstream,
            limits,
            entry,
            slots,
            request_id: HeaderName::from_static("x-upsbridge-request-id"),
        }
    }

    /// Serve HTTP/1.1 on one connection (plain, TLS, or inside a CONNECT tunnel).
    async fn serve<I>(self: &Arc<Self>, io: I, peer: Option<IpAddr>, shutdown: &ShutdownWatch)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        use hyper_util::rt::{TokioIo, TokioTimer};
        let app = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.handle(req, peer).await) }
        });
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout);
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

    /// The TLS handshake, within the header-read deadline.
    async fn accept_tls<I>(
        &self,
        config: Arc<rustls::ServerConfig>,
        io: I,
        peer: Option<IpAddr>,
    ) -> Option<tokio_rustls::server::TlsStream<I>>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let handshake = tokio_rustls::TlsAcceptor::from(config).accept(io);
        match tokio::time::timeout(self.limits.header_read_timeout, handshake).await {
            Ok(Ok(tls)) => Some(tls),
            Ok(Err(e)) => {
                // Most often: the client does not trust the CA, or speaks no TLS 1.2.
                warn!(?peer, error = %e, "TLS handshake failed (does the client trust upsbridge's CA? see docs/tls.md)");
                None
            }
            Err(_) => {
                debug!(?peer, "TLS handshake timed out");
                None
            }
        }
    }

    /// `CONNECT host:443`: only to UPS's names, then TLS as that name inside the tunnel.
    /// Anything else is refused: upsbridge is never an open proxy.
    fn connect(
        self: &Arc<Self>,
        mut req: Request<Incoming>,
        peer: Option<IpAddr>,
    ) -> Response<AnswerBody> {
        let target = req
            .uri()
            .authority()
            .map(|a| (a.host().to_ascii_lowercase(), a.port_u16()));
        let allowed = match (&self.entry.connect, &target) {
            (Some(config), Some((host, Some(443))))
                if self.entry.connect_names.iter().any(|n| n == host) =>
            {
                Some(config.clone())
            }
            _ => None,
        };
        let Some(config) = allowed else {
            let shown = req
                .uri()
                .authority()
                .map(|a| a.as_str())
                .unwrap_or("-")
                .to_string();
            warn!(?peer, target = %shown, "CONNECT refused: upsbridge tunnels only to UPS's host names on port 443, and only with [proxy] connect_proxy = true");
            self.pipeline.metrics.count_connect_refused();
            let mut resp = self.bare(Some(Bytes::from_static(
                b"upsbridge tunnels only to onlinetools.ups.com:443 and wwwcie.ups.com:443\n",
            )));
            *resp.status_mut() = http::StatusCode::FORBIDDEN;
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
            return resp;
        };
        let upgrade = hyper::upgrade::on(&mut req);
        let app = self.clone();
        tokio::spawn(async move {
            let tunnel = match upgrade.await {
                Ok(u) => hyper_util::rt::TokioIo::new(u),
                Err(e) => return debug!(?peer, error = %e, "CONNECT tunnel not opened"),
            };
            if let Some(tls) = app.accept_tls(config, tunnel, peer).await {
                // The tunnel lives as long as its client connection; shutdown closes that.
                let (_keep, never) = tokio::sync::watch::channel(false);
                app.serve(tls, peer, &never).await;
            }
        });
        self.bare(None)
    }

    /// An answer that is not a request of ours (CONNECT's): nothing is recorded for it.
    fn bare(&self, body: Option<Bytes>) -> Response<AnswerBody> {
        Response::new(AnswerBody::new(
            Inner::Full(body),
            Done {
                pipeline: self.pipeline.clone(),
                ex: None,
                scan: None,
                delivered: false,
            },
        ))
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: Option<IpAddr>,
    ) -> Response<AnswerBody> {
        if req.method() == http::Method::CONNECT {
            return self.connect(req, peer);
        }
        let mut ex = Exchange::new(peer);
        let (parts, body) = req.into_parts();
        let has_key = parts.headers.contains_key("accesslicensenumber");
        let route = match self.pipeline.route(parts.uri.path(), has_key, &mut ex) {
            Ok(route) => route,
            Err(answer) => return self.answer(ex, answer, !body.is_end_stream()),
        };
        if Pipeline::is_body_dialect(&route) {
            let body = self.read_body(body, &parts.headers).await;
            let answer = self.pipeline.body_dialect(&route, body, &mut ex).await;
            return self.answer(ex, answer, false);
        }
        let p = &self.pipeline;
        let failure = match p
            .header_style(&parts.method, &parts.uri, &parts.headers, &mut ex)
            .await
        {
            Ok(auth) if !auth.is_effectful() => {
                let scan = p.scan(&auth, &ex);
                let mut headers = parts.headers;
                for h in &STRIPPED_HEADERS {
                    headers.remove(h);
                }
                headers.insert(header::HOST, self.upstream.host_header());
                let Some(bearer) = auth.token.authorization() else {
                    let f =
                        Failure::UpstreamGarbled("UPS token is not a valid header value".into());
                    return self.refuse(ex, f);
                };
                headers.insert(header::AUTHORIZATION, bearer);
                if !headers.contains_key("transid") {
                    headers.insert("transid", HeaderValue::from_str(&ex.id).expect("hex id"));
                }
                if !headers.contains_key("transactionsrc") {
                    headers.insert("transactionsrc", HeaderValue::from_static("upsbridge"));
                }
                let mut up = Request::new(UpstreamBody::Stream {
                    body,
                    tap: scan.request_tap(),
                });
                *up.method_mut() = auth.target.method.clone();
                *up.headers_mut() = headers;
                match self.upstream.uri(&auth.target.path_and_query) {
                    Ok(uri) => *up.uri_mut() = uri,
                    Err(f) => return self.refuse(ex, f),
                }
                match self.upstream.send(up).await {
                    Ok(resp) => return self.stream(ex, scan, resp),
                    Err(f) => f,
                }
            }
            Ok(auth) => {
                let answer = match self.read_body(body, &parts.headers).await {
                    Ok(body) => p.header_style_effectful(auth, body, &mut ex).await,
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
        self.refuse(ex, failure)
    }

    /// Read a whole request body, refusing more than the configured maximum.
    async fn read_body(&self, body: Incoming, headers: &HeaderMap) -> Result<Bytes, Failure> {
        let max = self.pipeline.max_body_bytes;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > max) {
            return Err(Failure::TooLarge(max));
        }
        match http_body_util::Limited::new(body, max).collect().await {
            Ok(b) => Ok(b.to_bytes()),
            Err(e) => match e.downcast::<hyper::Error>() {
                Ok(e) => Err(Failure::Malformed(format!("request body: {e}"))),
                Err(_) => Err(Failure::TooLarge(max)),
            },
        }
    }

    fn refuse(&self, ex: Exchange, failure: Failure) -> Response<AnswerBody> {
        self.pipeline.log_refusal(&ex, &failure);
        self.answer(ex, refusal(&failure), true)
    }

    /// Our own answer. `close`: the client's body was not read, or its framing was broken,
    /// so the next bytes on this connection cannot be trusted to start a request.
    fn answer(&self, mut ex: Exchange, answer: Answer, close: bool) -> Response<AnswerBody> {
        self.pipeline.answering(&mut ex, &answer);
        let mut resp = Response::new(AnswerBody::new(
            Inner::Full(Some(answer.body)),
            Done {
                pipeline: self.pipeline.clone(),
                ex: None,
                scan: None,
                delivered: false,
            },
        ));
        *resp.status_mut() =
            http::StatusCode::from_u16(answer.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
        let h = resp.headers_mut();
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
        self.finish_head(resp, ex, None)
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
            .header_style_answered(&mut scan, parts.status.as_u16(), &mut ex);
        for h in [header::CONNECTION, HeaderName::from_static("keep-alive")] {
            parts.headers.remove(h);
        }
        let body = AnswerBody::new(
            Inner::Stream(body),
            Done {
                pipeline: self.pipeline.clone(),
                ex: None,
                scan: None,
                delivered: false,
            },
        );
        self.finish_head(Response::from_parts(parts, body), ex, Some(scan))
    }

    fn finish_head(
        &self,
        mut resp: Response<AnswerBody>,
        ex: Exchange,
        scan: Option<Scan>,
    ) -> Response<AnswerBody> {
        if let Ok(v) = HeaderValue::from_str(&ex.id) {
            resp.headers_mut().insert(self.request_id.clone(), v);
        }
        let done = &mut resp.body_mut().done;
        done.ex = Some(ex);
        done.scan = scan;
        resp
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
            None => self.serve(stream, peer, shutdown).await,
            Some(config) => {
                if let Some(tls) = self.accept_tls(config.clone(), stream, peer).await {
                    self.serve(tls, peer, shutdown).await;
                }
            }
        }
        None
    }
}

/// The body of every answer: ours, in memory, or UPS's, streamed. When hyper drops it
/// (written, or the connection gone) the request is recorded, once.
pub struct AnswerBody {
    inner: Inner,
    done: Done,
}

enum Inner {
    Full(Option<Bytes>),
    Stream(Incoming),
}

struct Done {
    pipeline: Arc<Pipeline>,
    ex: Option<Exchange>,
    scan: Option<Scan>,
    /// The last byte was handed to the connection.
    delivered: bool,
}

impl Drop for Done {
    fn drop(&mut self) {
        let Some(ex) = self.ex.take() else { return };
        if let Some(scan) = self.scan.take() {
            self.pipeline.header_style_done(scan, &ex);
        }
        self.pipeline.finish(ex, self.delivered);
    }
}

impl AnswerBody {
    fn new(inner: Inner, done: Done) -> AnswerBody {
        AnswerBody { inner, done }
    }
}

impl Body for AnswerBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = match &mut this.inner {
            Inner::Full(b) => b.take().map(|b| Ok(Frame::data(b))),
            Inner::Stream(s) => std::task::ready!(Pin::new(s).poll_frame(cx)),
        };
        match &frame {
            Some(Ok(f)) => {
                if let (Some(chunk), Some(scan)) = (f.data_ref(), this.done.scan.as_mut()) {
                    scan.answer_chunk(chunk);
                }
                this.done.delivered = this.is_end_stream();
            }
            None => this.done.delivered = true,
            Some(Err(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(b) => b.is_none(),
            Inner::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Inner::Full(None) => SizeHint::with_exact(0),
            Inner::Stream(s) => s.size_hint(),
        }
    }
}

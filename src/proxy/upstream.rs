//! The UPS origins: where REST calls go (production, CIE or the simulator), each with
//! the pooled hyper client that reaches it (TLS with SNI and certificate checks
//! when `https`). Two ways to call it: [`Upstream::send`] streams (a streaming-mode dialect)
//! and [`Upstream::exchange`] buffers (the dialects whose answers are translated).
//!
//! UPS's address is resolved here, at start and every 30 s in the background,
//! so no request ever waits on DNS.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tracing::{debug, error, warn};

use super::h1::{self, Connections, RawConn};
use crate::clock::Tick;
use crate::config::{Environment, UpsConfig};
use crate::error::Failure;
use crate::pipeline::{replay, RestAnswer, RestApi, Tap};
use crate::rest::RestCall;

/// Largest UPS answer we buffer for translation (labels are base64 images; 50 MiB is ample).
const MAX_ANSWER_BYTES: usize = 50 * 1024 * 1024;

/// A body in memory, or one streamed through from the other side (the client's on its way
/// to UPS, with a tap that sees each chunk; UPS's on its way back).
pub enum Payload {
    Full(Option<Bytes>),
    Stream { body: Incoming, tap: Option<Tap> },
}

impl Body for Payload {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Payload::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Payload::Stream { body, tap } => {
                let frame = std::task::ready!(Pin::new(body).poll_frame(cx));
                if let (Some(Ok(f)), Some(tap)) = (&frame, tap.as_mut()) {
                    if let Some(chunk) = f.data_ref() {
                        tap(chunk);
                    }
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Payload::Full(b) => b.is_none(),
            Payload::Stream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Payload::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Payload::Full(None) => SizeHint::with_exact(0),
            Payload::Stream { body, .. } => body.size_hint(),
        }
    }
}

/// Resolves UPS's host to the address kept in [`Upstream`] (never blocks, never waits).
#[derive(Clone)]
struct PinnedResolver(Arc<ArcSwap<SocketAddr>>);

impl tower::Service<Name> for PinnedResolver {
    type Response = std::iter::Once<SocketAddr>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Name) -> Self::Future {
        std::future::ready(Ok(std::iter::once(**self.0.load())))
    }
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector<PinnedResolver>>;

pub struct Upstream {
    host: String,
    host_header: HeaderValue,
    port: u16,
    /// `http://host:port` or `https://host`, the front of every URI sent.
    origin: String,
    addr: Arc<ArcSwap<SocketAddr>>,
    /// `[ups] resolve` pins the address: DNS is never asked.
    pinned: bool,
    /// upsbridge's own listeners: UPS is never "found" there (a hosts file pointing the UPS
    /// names at this machine must not make upsbridge call itself).
    own: Vec<SocketAddr>,
    /// Each proxy thread gets its own client (and so its own pool) from this connector:
    /// a connection opened by one thread's runtime and reused by another's woke the first
    /// thread on every request (one `write(2)` to its eventfd and a context switch).
    connector: Connector,
    /// Which per-thread clients are this upstream's (see [`THREAD_CLIENTS`]).
    id: usize,
    request_timeout: Duration,
}

type UpsClient = Client<Connector, Payload>;

/// How long an idle connection is kept for reuse (as the hyper client's pool).
const IDLE_FOR: Duration = Duration::from_secs(55);
/// Idle connections kept per upstream per thread.
const MAX_IDLE: usize = 256;

struct Idle {
    conn: RawConn,
    /// When it went idle, to the kernel's tick: its age is weighed against `IDLE_FOR`.
    since: Tick,
}

thread_local! {
    /// This thread's UPS clients, by [`Upstream::id`] (one or two per process).
    static THREAD_CLIENTS: std::cell::RefCell<Vec<(usize, UpsClient)>> =
        const { std::cell::RefCell::new(Vec::new()) };
    /// This thread's idle express-lane connections, by [`Upstream::id`], newest last.
    static THREAD_IDLE: std::cell::RefCell<Vec<(usize, Vec<Idle>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl Upstream {
    /// Resolve the UPS host of `base` (blocking: call at startup, not on the proxy runtime).
    /// Refuses an address that is one of `own` listeners unless it is pinned on purpose.
    pub fn new(
        ups: &UpsConfig,
        base: &url::Url,
        own: &[SocketAddr],
    ) -> Result<Upstream, UpstreamError> {
        let tls = base.scheme() == "https";
        let host = base.host_str().unwrap_or_default().to_string();
        let port = base
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        let pin = ups.resolve.get(&host.to_ascii_lowercase());
        let first = match pin {
            Some(ips) => SocketAddr::new(ips[0], port),
            None => {
                let addrs =
                    resolve_blocking(&host, port).map_err(|source| UpstreamError::Resolve {
                        host: host.clone(),
                        source,
                    })?;
                if let Some(a) = addrs.iter().find(|a| is_own(a, own)) {
                    return Err(UpstreamError::Loop { host, addr: *a });
                }
                addrs[0]
            }
        };
        let addr = Arc::new(ArcSwap::from_pointee(first));
        let authority = match (tls, port) {
            (true, 443) | (false, 80) => host.clone(),
            _ => format!("{host}:{port}"),
        };
        let host_header =
            HeaderValue::from_str(&authority).map_err(|_| UpstreamError::Resolve {
                host: host.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{authority} is not a valid Host header"),
                ),
            })?;
        let mut http = HttpConnector::new_with_resolver(PinnedResolver(addr.clone()));
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(ups.connect_timeout));
        let builder = || {
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
        };
        let tls_config = hyper_rustls::ConfigBuilderExt::with_native_roots(builder())
            .unwrap_or_else(|e| {
                warn!(error = %e, "no system CA certificates; trusting the Mozilla roots built in");
                builder().with_root_certificates(rustls::RootCertStore::from_iter(
                    webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
                ))
            })
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        static IDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        Ok(Upstream {
            origin: format!("{}://{authority}", if tls { "https" } else { "http" }),
            host,
            host_header,
            port,
            addr,
            pinned: pin.is_some(),
            own: own.to_vec(),
            connector,
            id: IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            request_timeout: ups.request_timeout,
        })
    }

    /// Send `req` on this thread's client, made on first use.
    fn request(&self, req: Request<Payload>) -> hyper_util::client::legacy::ResponseFuture {
        THREAD_CLIENTS.with(|clients| {
            let mut clients = clients.borrow_mut();
            let at = match clients.iter().position(|(id, _)| *id == self.id) {
                Some(at) => at,
                None => {
                    let client = Client::builder(TokioExecutor::new())
                        .pool_idle_timeout(Duration::from_secs(55))
                        .pool_max_idle_per_host(256)
                        .build(self.connector.clone());
                    clients.push((self.id, client));
                    clients.len() - 1
                }
            };
            clients[at].1.request(req)
        })
    }

    /// `Host` header value for UPS (built once).
    pub fn host_header(&self) -> &HeaderValue {
        &self.host_header
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The absolute URI of a REST path on UPS.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, Failure> {
        let mut s = String::with_capacity(self.origin.len() + path_and_query.len());
        s.push_str(&self.origin);
        s.push_str(path_and_query);
        Uri::try_from(s).map_err(|_| Failure::Malformed("request path".into()))
    }

    /// Re-resolve UPS's host now and then, so a DNS change is followed without a restart.
    pub async fn keep_resolving(self: Arc<Self>) {
        if self.pinned {
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_secs(30)).await;
            match tokio::net::lookup_host((self.host.as_str(), self.port)).await {
                Ok(addrs) => {
                    let addrs: Vec<SocketAddr> = addrs.collect();
                    if let Some(own) = addrs.iter().find(|a| is_own(a, &self.own)) {
                        error!(host = %self.host, addr = %own, "UPS's host name now resolves to upsbridge itself (a hosts file or DNS change); keeping the last real address. Pin UPS's addresses: [ups] resolve = {{ \"{}\" = [\"IP\"] }}", self.host);
                        continue;
                    }
                    if let Some(&a) = addrs.first() {
                        if a != **self.addr.load() {
                            debug!(host = %self.host, addr = %a, "UPS address changed");
                            self.addr.store(Arc::new(a));
                        }
                    }
                }
                Err(e) => {
                    warn!(host = %self.host, error = %e, "cannot re-resolve UPS host; keeping the last address")
                }
            }
        }
    }

    /// Send one request; the answer's head within the request timeout, its body streamed.
    /// A pooled connection UPS had closed is retried on a fresh one by the client (nothing
    /// reached UPS in that case).
    pub async fn send(&self, req: Request<Payload>) -> Result<Response<Incoming>, Failure> {
        match tokio::time::timeout(self.request_timeout, self.request(req)).await {
            Err(_) => Err(Failure::UpstreamTimeout(self.request_timeout)),
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(classify(&e)),
        }
    }

    /// One REST call with a fully buffered answer, all within the request timeout. A call
    /// that changes nothing at UPS is one write on this thread's pooled connections
    /// (`h1::exchange_whole`); one that changes something goes through hyper's client,
    /// which never sends a request twice.
    pub async fn exchange(
        &self,
        call: &RestCall,
        body: Option<Bytes>,
        bearer: &HeaderValue,
        trans_id: &str,
    ) -> Result<RestAnswer, Failure> {
        if !replay::is_effectful(&call.method, &call.path_and_query) {
            super::yield_to_ready_requests().await;
            let mut buffers = h1::WholeBuffers::take();
            let (host, body) = (&self.host_header, body.as_deref());
            put_rest_request(&mut buffers.request, host, call, body, bearer, trans_id)?;
            let exchange = h1::exchange_whole(self, &mut buffers, &call.method, MAX_ANSWER_BYTES);
            let answered = match tokio::time::timeout(self.request_timeout, exchange).await {
                Ok(Ok((status, body))) => Ok(RestAnswer { status, body }),
                Ok(Err(f)) => Err(f),
                Err(_) => Err(Failure::UpstreamTimeout(self.request_timeout)),
            };
            buffers.keep();
            return answered;
        }
        let mut req = Request::builder()
            .method(call.method.clone())
            .uri(self.uri(&call.path_and_query)?);
        let Some(headers) = req.headers_mut() else {
            return Err(Failure::Malformed("request to UPS".into()));
        };
        let body_len = body.as_ref().map(Bytes::len);
        rest_fields(
            &self.host_header,
            call,
            body_len,
            bearer,
            trans_id,
            |k, v| {
                // Checked by `rest_fields`; names are the tables' own.
                if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k), HeaderValue::from_bytes(v)) {
                    headers.append(k, v);
                }
            },
        )?;
        let req = req
            .body(Payload::Full(body))
            .map_err(|e| Failure::Malformed(format!("request to UPS: {e}")))?;
        let exchange = async {
            let resp = self.request(req).await.map_err(|e| classify(&e))?;
            let status = resp.status().as_u16();
            let body = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| match e.downcast::<hyper::Error>() {
                    Ok(e) => Failure::UpstreamUnreachable(format!("reading the answer: {e}")),
                    Err(_) => Failure::UpstreamGarbled("answer larger than 50 MiB".into()),
                })?
                .to_bytes();
            Ok(RestAnswer { status, body })
        };
        tokio::time::timeout(self.request_timeout, exchange)
            .await
            .unwrap_or(Err(Failure::UpstreamTimeout(self.request_timeout)))
    }
}

/// UPS's two environments, each an [`Upstream`] (one shared when both are the same place,
/// as with a simulator). The default environment's must work at start; the other one's
/// problem (no DNS, or its name pointing at upsbridge without a pin) is logged at start and
/// answers its calls with that problem, so a production-only site need not pin CIE.
pub struct Upstreams {
    default: Environment,
    upstreams: [Result<Arc<Upstream>, String>; 2],
}

/// This thread's pool of the connections [`h1`] writes and reads itself.
impl Connections for Upstream {
    /// The newest idle express-lane connection of this thread, if one is young enough.
    fn idle_connection(&self) -> Option<RawConn> {
        THREAD_IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            let (_, conns) = idle.iter_mut().find(|(id, _)| *id == self.id)?;
            let newest = conns.pop()?;
            // Connections idle too long may be closed by UPS at any moment: let them go
            // (when the newest is too old, so are all the others).
            if Tick::now().since(newest.since) >= IDLE_FOR {
                conns.clear();
                return None;
            }
            Some(newest.conn)
        })
    }

    /// Keep a connection whose last exchange ended cleanly, for this thread's next request.
    fn put_back(&self, conn: RawConn) {
        THREAD_IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            let at = match idle.iter().position(|(id, _)| *id == self.id) {
                Some(at) => at,
                None => {
                    idle.push((self.id, Vec::new()));
                    idle.len() - 1
                }
            };
            let conns = &mut idle[at].1;
            let now = Tick::now();
            // Oldest first: when the oldest is stale, close the stale ones (no clock reads
            // but this one).
            if conns
                .first()
                .is_some_and(|c| now.since(c.since) >= IDLE_FOR)
            {
                conns.retain(|c| now.since(c.since) < IDLE_FOR);
            }
            if conns.len() < MAX_IDLE {
                conns.push(Idle { conn, since: now });
            }
        })
    }

    /// A new connection for the express lane (TLS with SNI and certificate checks when
    /// `https`), within `[ups] connect_timeout`.
    async fn connect(&self) -> Result<RawConn, Failure> {
        use tower::ServiceExt;
        let uri = Uri::try_from(self.origin.as_str())
            .map_err(|_| Failure::UpstreamUnreachable(format!("bad origin {}", self.origin)))?;
        match self.connector.clone().oneshot(uri).await {
            Ok(stream) => Ok(Box::new(TokioIo::new(stream))),
            Err(e) => Err(Failure::UpstreamUnreachable(format!("cannot connect: {e}"))),
        }
    }
}

/// A REST call's request as it goes on the wire, head and body, into `out` (emptied first).
fn put_rest_request(
    out: &mut Vec<u8>,
    host: &HeaderValue,
    call: &RestCall,
    body: Option<&[u8]>,
    bearer: &HeaderValue,
    trans_id: &str,
) -> Result<(), Failure> {
    let path = http::uri::PathAndQuery::try_from(call.path_and_query.as_str())
        .map_err(|_| Failure::Malformed("request path".into()))?;
    out.clear();
    out.reserve(512 + body.map_or(0, <[u8]>::len));
    h1::put_request_line(out, &call.method, path.as_str());
    let body_len = body.map(<[u8]>::len);
    rest_fields(host, call, body_len, bearer, trans_id, |k, v| {
        h1::put_field(out, k, v)
    })?;
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.unwrap_or_default());
    Ok(())
}

/// The header fields of a REST call to UPS, in order, for either way of sending it. Values
/// are checked first, as `HeaderValue` checks them (no control character but tab), so no
/// line break ever reaches UPS.
fn rest_fields(
    host: &HeaderValue,
    call: &RestCall,
    body_len: Option<usize>,
    bearer: &HeaderValue,
    trans_id: &str,
    mut field: impl FnMut(&[u8], &[u8]),
) -> Result<(), Failure> {
    let valid = |v: &str| v.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f));
    if !valid(trans_id) {
        return Err(Failure::Malformed("transId header value".into()));
    }
    if let Some((k, _)) = call.headers.iter().find(|(_, v)| !valid(v)) {
        return Err(Failure::Malformed(format!("{k} header value")));
    }
    field(b"host", host.as_bytes());
    field(b"authorization", bearer.as_bytes());
    field(b"accept", b"application/json");
    field(b"transid", trans_id.as_bytes());
    field(b"transactionsrc", b"upsbridge");
    for (k, v) in &call.headers {
        field(k.as_bytes(), v.as_bytes());
    }
    if let Some(n) = body_len {
        field(b"content-type", b"application/json");
        field(b"content-length", itoa::Buffer::new().format(n).as_bytes());
    }
    Ok(())
}

impl Upstreams {
    pub fn new(ups: &UpsConfig, own: &[SocketAddr]) -> Result<Upstreams, UpstreamError> {
        let default = ups.default_environment();
        let first = Arc::new(Upstream::new(ups, ups.base_of(default), own)?);
        let other_env = Environment::ALL
            .into_iter()
            .find(|e| *e != default)
            .expect("two environments");
        let other = if ups.base_of(other_env) == ups.base_of(default) {
            Ok(first.clone())
        } else {
            Upstream::new(ups, ups.base_of(other_env), own)
                .map(Arc::new)
                .map_err(|e| {
                    warn!(environment = %other_env, error = %e, "accounts of this environment cannot reach UPS until this is fixed");
                    e.to_string()
                })
        };
        let mut upstreams = [Ok(first.clone()), Ok(first)];
        upstreams[other_env.index()] = other;
        Ok(Upstreams { default, upstreams })
    }

    /// The origin of an environment, or why it cannot be reached.
    pub fn of(&self, env: Environment) -> Result<&Arc<Upstream>, Failure> {
        self.upstreams[env.index()]
            .as_ref()
            .map_err(|why| Failure::UpstreamUnreachable(why.clone()))
    }

    /// The default environment's origin.
    pub fn default_upstream(&self) -> &Arc<Upstream> {
        self.of(self.default)
            .expect("the default environment's upstream is built at start")
    }

    /// Keep each distinct origin's address fresh.
    pub fn keep_resolving(&self) -> Vec<impl std::future::Future<Output = ()>> {
        let mut seen: Vec<&Arc<Upstream>> = Vec::new();
        for u in self.upstreams.iter().flatten() {
            if !seen.iter().any(|s| Arc::ptr_eq(s, u)) {
                seen.push(u);
            }
        }
        seen.into_iter()
            .map(|u| u.clone().keep_resolving())
            .collect()
    }
}

/// What a failed UPS call means, in one place.
fn classify(e: &hyper_util::client::legacy::Error) -> Failure {
    use std::error::Error as _;
    if e.is_connect() {
        let why = e.source().map(|s| s.to_string()).unwrap_or_default();
        return Failure::UpstreamUnreachable(format!("cannot connect: {why}"));
    }
    let mut cause = e.source();
    while let Some(c) = cause {
        if let Some(h) = c.downcast_ref::<hyper::Error>() {
            if h.is_user() {
                // Our side of the exchange failed: the client's body broke off mid-way.
                return Failure::Malformed("request body broke off".into());
            }
            return Failure::UpstreamUnreachable(if h.is_incomplete_message() {
                "connection closed before the answer".into()
            } else {
                h.to_string()
            });
        }
        cause = c.source();
    }
    Failure::UpstreamUnreachable(e.to_string())
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error(
        "cannot resolve UPS host {host} ([ups] base_url, cie_url or production_url): {source}"
    )]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("UPS host {host} resolves to {addr}, which is upsbridge's own listener (a hosts file or DNS entry pointing the UPS names here); upsbridge would call itself. Pin UPS's real addresses in the config: [ups] resolve = {{ \"{host}\" = [\"IP\", …] }} (find them with `dig +short {host} @1.1.1.1` from a machine without the override)")]
    Loop { host: String, addr: SocketAddr },
}

/// Is `a` one of upsbridge's own listeners (the same port on the same address, or on any
/// local address when the listener is on the unspecified address)?
pub fn is_own(a: &SocketAddr, own: &[SocketAddr]) -> bool {
    own.iter().any(|o| {
        o.port() == a.port()
            && (o.ip() == a.ip()
                || (o.ip().is_unspecified() && (a.ip().is_loopback() || is_local(a))))
    })
}

/// Is this address one of this machine's (bindable here)?
fn is_local(a: &SocketAddr) -> bool {
    std::net::TcpListener::bind(SocketAddr::new(a.ip(), 0)).is_ok()
}

fn resolve_blocking(host: &str, port: u16) -> Result<Vec<SocketAddr>, std::io::Error> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    if addrs.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host} has no address"),
        ));
    }
    Ok(addrs)
}

#[async_trait::async_trait]
impl RestApi for Upstreams {
    async fn exchange(
        &self,
        env: Environment,
        call: &RestCall,
        body: Option<Bytes>,
        bearer: &HeaderValue,
        trans_id: &str,
    ) -> Result<RestAnswer, Failure> {
        self.of(env)?.exchange(call, body, bearer, trans_id).await
    }

    fn request_timeout(&self) -> Duration {
        self.default_upstream().request_timeout()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rest::RestBody;

    fn call(path: &str, headers: Vec<(&'static str, String)>) -> RestCall {
        RestCall {
            method: http::Method::POST,
            path_and_query: path.into(),
            body: RestBody::Unchanged,
            headers,
        }
    }

    fn rest_request(
        host: &HeaderValue,
        call: &RestCall,
        body: Option<&[u8]>,
        bearer: &HeaderValue,
        trans_id: &str,
    ) -> Result<Vec<u8>, Failure> {
        // A buffer kept from an earlier request: nothing of it may remain.
        let mut out = b"POST /api/earlier HTTP/1.1\r\n".to_vec();
        put_rest_request(&mut out, host, call, body, bearer, trans_id).map(|()| out)
    }

    #[test]
    fn a_rest_request_is_one_buffer_and_no_line_break_reaches_ups() {
        let host = HeaderValue::from_static("ups");
        let bearer = HeaderValue::from_static("Bearer t");
        let ok = rest_request(
            &host,
            &call("/api/x?a=1", vec![("AccountNumber", "9Y9Y9Y".into())]),
            Some(b"{}"),
            &bearer,
            "ub1",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(ok).unwrap(),
            "POST /api/x?a=1 HTTP/1.1\r\nhost: ups\r\nauthorization: Bearer t\r\naccept: application/json\r\ntransid: ub1\r\ntransactionsrc: upsbridge\r\nAccountNumber: 9Y9Y9Y\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
        );
        let injected = call("/api/x", vec![("AccountNumber", "1\r\nX-Evil: 1".into())]);
        assert!(rest_request(&host, &injected, None, &bearer, "ub1").is_err());
        assert!(rest_request(&host, &call("/api/x y", vec![]), None, &bearer, "ub1").is_err());
        assert!(rest_request(&host, &call("/api/x", vec![]), None, &bearer, "ub\n1").is_err());
    }
}

//! The express lane of the proxy listeners (plain and TLS; a CONNECT tunnel's inner
//! connection stays with hyper). A request that has arrived whole (HTTP/1.1,
//! `Content-Length` framing, nothing unusual in its head) is taken: a header-style call that
//! changes nothing at UPS is exchanged with UPS in one write of head and body and answered in
//! one write; a body dialect's is translated by the pipeline as before and answered in one
//! write. The first request on a connection that the lane does not take (a header-style
//! shipment or cancellation, chunked framing, `Expect`, an upgrade, HTTP/1.0, a large body, a
//! head httparse cannot read…) hands the connection, with the bytes already read, to hyper
//! ([`ProxyApp::serve`]) for the rest of its life: the lane never answers what it does not
//! understand. (`upsbridge_connections_handed_to_hyper_total{reason}` counts hand-overs.)
//!
//! Why: measured beside nginx in one run (docs/performance.md), hyper's connection
//! machinery alone costs about what nginx costs for the whole exchange, while a one-write
//! exchange on httparse (`benches/floors/raw_floor.rs`) costs 0.6× nginx.

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, Uri};
use pingora::server::ShutdownWatch;
use smallvec::SmallVec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

use super::h1::{
    put_header, put_request_head, put_status_line, send, ChunkWalk, ClientHead, Connections,
    Framing, RawConn, MAX_HEADERS, READ_CHUNK,
};
use super::upstream::Upstream;
use super::{tunnel, ProxyApp, REQUEST_ID};
use crate::config::Environment;
use crate::dialect::Fields;
use crate::error::Failure;
use crate::pipeline::{Answer, Exchange, Head, Pipeline, Route, Scan};

/// The largest request the lane buffers, head and body (larger: hyper streams it).
const MAX_REQUEST: usize = 64 * 1024;

/// What became of one request.
enum Step {
    /// Answered (at this instant); the connection may carry the next request.
    Next(std::time::Instant),
    /// Answered (or not deliverable); close the connection.
    Close,
    /// Not the lane's: hyper serves the connection from this request on (why, for the
    /// metric).
    Hyper(&'static str),
}

/// A connection's state between requests: its timer and reused buffers.
struct Lane {
    /// The request to UPS, or our own answer.
    out: Vec<u8>,
    /// UPS's answer as the client gets it.
    reply: Vec<u8>,
    /// What is read from UPS.
    answer: BytesMut,
    alarm: Alarm,
    /// The UPS environment the TLS server name named, if any.
    called: Option<Environment>,
    /// Bytes of the next request read while a body dialect's call was in flight.
    early: BytesMut,
}

/// A request head the lane takes, located in the read buffer: its target and fields are
/// taken from the request's own bytes once they leave the buffer ([`Arrived::uri`],
/// [`Arrived::fields`]), so no header value and no path is copied.
struct Arrived {
    method: Method,
    /// Where the request target is.
    target: Span,
    /// Where each field's name and value are. (Offsets, not `HeaderName`s: this is moved
    /// a few times per request, and 16 names would make it three times the size.)
    fields: SmallVec<[(Span, Span); 16]>,
    head_len: usize,
    body_len: usize,
}

/// Where a part of the head is in the read buffer: start and length.
#[derive(Clone, Copy)]
struct Span(u32, u32);

impl Span {
    fn of(part: &[u8], buf: &[u8]) -> Span {
        // The head is within `MAX_REQUEST` bytes of the buffer's start.
        Span(
            (part.as_ptr() as usize - buf.as_ptr() as usize) as u32,
            part.len() as u32,
        )
    }

    fn range(self) -> std::ops::Range<usize> {
        self.0 as usize..(self.0 + self.1) as usize
    }
}

impl Arrived {
    /// The request target, sharing `request`'s bytes (the buffer the offsets were taken in).
    /// `None`: a target `http` refuses (hyper reads the request, and refuses it).
    fn uri(&self, request: &Bytes) -> Option<Uri> {
        Uri::from_maybe_shared(request.slice(self.target.range())).ok()
    }

    /// The header fields, borrowed from `request`.
    fn fields<'r>(&self, request: &'r [u8]) -> SmallVec<[(&'r [u8], &'r [u8]); 16]> {
        self.fields
            .iter()
            .map(|(name, value)| (&request[name.range()], &request[value.range()]))
            .collect()
    }
}

// Returned once per parse and moved once: a box would be an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Parse {
    /// More bytes are needed.
    Partial,
    Arrived(Arrived),
    /// Not the lane's (hyper reads it, and refuses it if it is broken).
    Hyper(&'static str),
}

impl ProxyApp {
    /// Serve a connection (plain, or TLS: `called` is the UPS environment its server name
    /// named): the express lane while it can, then hyper.
    pub(super) async fn serve_express<I>(
        self: &Arc<Self>,
        mut io: I,
        peer: Option<IpAddr>,
        called: Option<Environment>,
        shutdown: &ShutdownWatch,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // Per-connection buffers, reused by every request on it.
        let mut inbound = BytesMut::with_capacity(READ_CHUNK);
        let head_limit = self.limits.header_read_timeout;
        let mut lane = Lane {
            out: Vec::with_capacity(READ_CHUNK),
            reply: Vec::with_capacity(READ_CHUNK),
            answer: BytesMut::new(),
            alarm: Alarm::new(head_limit.min(self.upstreams.default_upstream().request_timeout())),
            called,
            early: BytesMut::new(),
        };
        let mut stop = shutdown.clone();
        let mut closing = false;
        // The request-head deadline, also the keep-alive idle timeout (as hyper's
        // `header_read_timeout`), runs from here: the connection's start, then the end of
        // each request (the instant its log line was timed at).
        let mut waiting_since = Instant::now();
        loop {
            let arrived = loop {
                match parse_request(&inbound) {
                    Parse::Arrived(a) if inbound.len() >= a.head_len + a.body_len => break Ok(a),
                    Parse::Hyper(why) => break Err(why),
                    Parse::Arrived(_) | Parse::Partial => {}
                }
                if inbound.len() >= MAX_REQUEST {
                    break Err("size");
                }
                inbound.reserve(READ_CHUNK);
                let read = tokio::select! {
                    biased;
                    read = lane.alarm.within(waiting_since, head_limit, io.read_buf(&mut inbound)) => read,
                    _ = stop.changed(), if !closing => {
                        closing = true;
                        if inbound.is_empty() {
                            return;
                        }
                        continue;
                    }
                };
                match read {
                    Some(Ok(0) | Err(_)) => return,
                    Some(Ok(_)) => {}
                    // Idle past the keep-alive timeout, or a head still incomplete: close,
                    // as hyper does (handing a slow head over would restart its deadline).
                    None if !matches!(parse_request(&inbound), Parse::Arrived(_)) => return,
                    // A body still coming: hyper reads it (it has no deadline for bodies).
                    None => break Err("slow"),
                }
            };
            let arrived = match arrived {
                Ok(arrived) => arrived,
                Err(why) => {
                    return self
                        .hand_to_hyper(why, inbound, io, peer, called, shutdown)
                        .await
                }
            };
            // The request leaves the buffer without a copy; its head and body are shared
            // from it.
            let request = inbound
                .split_to(arrived.head_len + arrived.body_len)
                .freeze();
            let body = request.slice(arrived.head_len..);
            let step = match arrived.uri(&request) {
                Some(uri) => {
                    let fields = arrived.fields(&request);
                    let head = Head {
                        method: &arrived.method,
                        uri: &uri,
                        headers: Fields::Raw(&fields),
                    };
                    self.express(&mut io, head, body, peer, &mut lane).await
                }
                None => Step::Hyper("head"),
            };
            match step {
                Step::Next(ended) => {
                    waiting_since = Instant::from_std(ended);
                    if !lane.early.is_empty() {
                        inbound.extend_from_slice(&lane.early);
                        lane.early.clear();
                    }
                }
                Step::Close => return,
                Step::Hyper(why) => {
                    // Hyper reads the request again, then whatever followed it.
                    let mut read = BytesMut::with_capacity(request.len() + inbound.len());
                    read.extend_from_slice(&request);
                    read.extend_from_slice(&inbound);
                    return self
                        .hand_to_hyper(why, read, io, peer, called, shutdown)
                        .await;
                }
            }
            if closing || *shutdown.borrow() {
                return;
            }
        }
    }

    async fn hand_to_hyper<I>(
        self: &Arc<Self>,
        why: &'static str,
        read: BytesMut,
        io: I,
        peer: Option<IpAddr>,
        called: Option<Environment>,
        shutdown: &ShutdownWatch,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.pipeline.metrics.count_handed_to_hyper(why);
        let io = Prefixed {
            read: read.freeze(),
            io,
        };
        self.serve(io, peer, called, shutdown).await
    }

    /// One request of the lane, `body` whole.
    async fn express<I>(
        self: &Arc<Self>,
        io: &mut I,
        head: Head<'_>,
        body: Bytes,
        peer: Option<IpAddr>,
        lane: &mut Lane,
    ) -> Step
    where
        I: AsyncRead + AsyncWrite + Unpin,
    {
        let Lane {
            out,
            reply,
            answer,
            alarm,
            called,
            early,
        } = lane;
        let p = &self.pipeline;
        let mut ex = Exchange::new(peer);
        ex.called = called.or_else(|| tunnel::called_by_host(head.uri, head.headers));
        let route = match p.route(head.uri.path(), head.headers, &mut ex) {
            Ok(route) => route,
            Err(refusal) => return self.answer_express(io, ex, refusal, out).await,
        };
        if Pipeline::reads_whole_body(&route) {
            // A body dialect: translated both ways by the pipeline, answered in one write.
            let body = if body.len() > p.max_body_bytes {
                Err(Failure::TooLarge(p.max_body_bytes))
            } else {
                Ok(body)
            };
            let answered = {
                let work = p.answer_whole(&route, &head, body, &mut ex);
                tokio::pin!(work);
                let mut watching = true;
                loop {
                    tokio::select! {
                        biased;
                        answered = &mut work => break answered,
                        // A client that leaves while UPS works drops the call, as hyper's
                        // dispatcher does: a shipment's answer is then kept for its retry.
                        read = io.read_buf(early), if watching => match read {
                            Ok(0) | Err(_) => return Step::Close,
                            // Its next request, early: kept for after this answer.
                            Ok(_) => watching = false,
                        },
                    }
                }
            };
            super::yield_to_ready_requests().await;
            return self.answer_express(io, ex, answered, out).await;
        }
        let planned = match Pipeline::plan_stream(&route, &head) {
            // Shipments: hyper's path keeps their answers for a client that is gone.
            Ok(planned) if planned.is_effectful() => return Step::Hyper("effectful"),
            Ok(planned) => planned,
            Err(f) => return self.refuse_express(io, &route, ex, f, out).await,
        };
        let auth = match p.authorize_planned(&route, planned, &mut ex).await {
            Ok(auth) => auth,
            Err(f) => return self.refuse_express(io, &route, ex, f, out).await,
        };
        let upstream = match self.upstreams.of(auth.env) {
            Ok(u) => u.clone(),
            Err(f) => return self.refuse_express(io, &route, ex, f, out).await,
        };
        let headers = match p.headers_for_ups(&auth, head.headers, upstream.host_header(), &ex) {
            Ok(headers) => headers,
            Err(f) => return self.refuse_express(io, &route, ex, f, out).await,
        };
        let mut scan = p.scan(&auth, &ex);
        scan.request_seen(&body);
        out.clear();
        put_request_head(
            out,
            &auth.target.method,
            &auth.target.path_and_query,
            &headers,
        );
        out.extend_from_slice(&body);
        let timeout = upstream.request_timeout();
        let sent = alarm
            .within(
                Instant::now(),
                timeout,
                send(
                    &*upstream,
                    out,
                    answer,
                    Some(ClientHead {
                        out: reply,
                        request_id: &ex.id,
                    }),
                ),
            )
            .await;
        let (conn, ups) = match sent {
            Some(Ok(sent)) => sent,
            Some(Err(f)) => return self.refuse_express(io, &route, ex, f, out).await,
            None => {
                let f = Failure::UpstreamTimeout(timeout);
                return self.refuse_express(io, &route, ex, f, out).await;
            }
        };
        p.stream_answered(&mut scan, ups.status, &mut ex);
        let framing = if auth.target.method == Method::HEAD {
            Framing::Empty
        } else {
            ups.framing
        };
        answer.advance(ups.head_len);
        let relayed = relay(
            io,
            conn,
            &upstream,
            framing,
            ups.keep_alive,
            answer,
            reply,
            (scan, &|scan| p.stream_done(scan, &ex)),
        )
        .await;
        let delivered = matches!(relayed, Relayed::Keep | Relayed::Close);
        let ended = p.finish(ex, delivered);
        match relayed {
            Relayed::Keep => Step::Next(ended),
            Relayed::Close | Relayed::Broken => Step::Close,
        }
    }

    async fn refuse_express<I: AsyncWrite + Unpin>(
        &self,
        io: &mut I,
        route: &Route,
        ex: Exchange,
        failure: Failure,
        out: &mut Vec<u8>,
    ) -> Step {
        let answer = self.pipeline.stream_refusal(route, &ex, &failure);
        self.answer_express(io, ex, answer, out).await
    }

    /// Our own answer, in one write. (The request's body was read: the connection stays.)
    async fn answer_express<I: AsyncWrite + Unpin>(
        &self,
        io: &mut I,
        mut ex: Exchange,
        answer: Answer,
        out: &mut Vec<u8>,
    ) -> Step {
        self.pipeline.answering(&mut ex, &answer);
        let status =
            http::StatusCode::from_u16(answer.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
        out.clear();
        put_status_line(
            out,
            status.as_u16(),
            status.canonical_reason().unwrap_or("").as_bytes(),
        );
        put_header(out, b"content-type", answer.content_type.as_bytes());
        if let Some(kind) = answer.error_kind {
            put_header(out, b"x-upsbridge-error", kind.as_bytes());
        }
        put_header(out, REQUEST_ID.as_str().as_bytes(), ex.id.as_bytes());
        put_content_length(out, answer.body.len());
        put_date(out);
        let close = ex.framing_error;
        if close {
            put_header(out, b"connection", b"close");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&answer.body);
        let delivered = deliver(io, out).await.is_ok();
        let ended = self.pipeline.finish(ex, delivered);
        if delivered && !close {
            Step::Next(ended)
        } else {
            Step::Close
        }
    }
}

/// The connection's one timer, for both of its deadlines (the request head's, UPS's
/// answer's). It is not re-armed per request: it fires at least every `period` (the shorter
/// limit), and only then is the running wait's own deadline checked and the timer re-armed.
/// Re-arming a timer per request and per UPS call was two timer-wheel updates per request.
struct Alarm {
    sleep: Pin<Box<tokio::time::Sleep>>,
    period: std::time::Duration,
}

impl Alarm {
    fn new(period: std::time::Duration) -> Alarm {
        Alarm {
            sleep: Box::pin(tokio::time::sleep(period)),
            period,
        }
    }

    /// `work`'s output, or `None` once `limit` has passed since `since`.
    async fn within<F: std::future::Future>(
        &mut self,
        since: Instant,
        limit: std::time::Duration,
        work: F,
    ) -> Option<F::Output> {
        let deadline = since + limit;
        // A wait may be shorter than the period; the timer then must not fire later than it.
        if self.sleep.deadline() > deadline {
            self.sleep.as_mut().reset(deadline);
        }
        tokio::pin!(work);
        loop {
            tokio::select! {
                biased;
                out = &mut work => return Some(out),
                () = self.sleep.as_mut() => {
                    let now = Instant::now();
                    if now >= deadline {
                        self.sleep.as_mut().reset(now + self.period);
                        return None;
                    }
                    self.sleep.as_mut().reset(deadline.min(now + self.period));
                }
            }
        }
    }
}

/// Parse what has arrived of a request; only what the lane can answer exactly as hyper
/// would is `Arrived`.
fn parse_request(buf: &[u8]) -> Parse {
    if buf.is_empty() {
        return Parse::Partial;
    }
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parse::Partial,
        Err(_) => return Parse::Hyper("head"),
    };
    if req.version != Some(1) {
        return Parse::Hyper("head");
    }
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Parse::Hyper("head");
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parse::Hyper("head");
    };
    if method == Method::CONNECT || !path.starts_with('/') {
        return Parse::Hyper("head");
    }
    let target = Span::of(path.as_bytes(), buf);
    let mut fields = SmallVec::new();
    let mut body_len = None;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        // Byte literals: a `HeaderName`'s `as_str` per comparison cost more than the compare.
        let is = |known: &[u8]| name.eq_ignore_ascii_case(known);
        if is(b"content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok());
            match (n, body_len) {
                (Some(n), None) => body_len = Some(n),
                _ => return Parse::Hyper("head"), // unreadable or repeated: hyper's to refuse
            }
        } else if is(b"transfer-encoding")
            || is(b"expect")
            || is(b"upgrade")
            || (is(b"connection") && !h.value.eq_ignore_ascii_case(b"keep-alive"))
        {
            return Parse::Hyper("head");
        }
        fields.push((Span::of(h.name.as_bytes(), buf), Span::of(h.value, buf)));
    }
    let body_len = body_len.unwrap_or(0);
    if head_len + body_len > MAX_REQUEST {
        return Parse::Hyper("size");
    }
    Parse::Arrived(Arrived {
        method,
        target,
        fields,
        head_len,
        body_len,
    })
}

/// How relaying UPS's answer ended.
enum Relayed {
    /// Delivered whole; the client connection can carry the next request.
    Keep,
    /// Delivered whole, but the client connection ends with it (UPS's body ended by close).
    Close,
    /// Not delivered whole (client or UPS gone mid-way).
    Broken,
}

/// Write the answer head in `out` and UPS's body after it to the client: head and body in
/// one write when the body has arrived with the head. `answer` holds what was read after
/// UPS's head. The UPS connection goes back to the pool if its answer ended cleanly.
#[allow(clippy::too_many_arguments)]
async fn relay<I: AsyncWrite + Unpin>(
    io: &mut I,
    mut conn: RawConn,
    upstream: &Upstream,
    framing: Framing,
    ups_keep_alive: bool,
    answer: &mut BytesMut,
    out: &mut Vec<u8>,
    (scan, done): (Scan, &(dyn Fn(Scan) + Sync)),
) -> Relayed {
    // The answer is recorded (ops page, metrics) before its last bytes leave, so a client
    // that asks the ops page right after its answer sees it; `Seen` records it once.
    struct Seen<'a>(Option<Scan>, &'a (dyn Fn(Scan) + Sync));
    impl Drop for Seen<'_> {
        fn drop(&mut self) {
            if let Some(scan) = self.0.take() {
                (self.1)(scan);
            }
        }
    }
    let mut seen = Seen(Some(scan), done);
    let mut chunks = ChunkWalk::default();
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => usize::MAX,
    };
    loop {
        // What of the body is in `answer` now, and whether it ends there.
        let (take, ended) = match framing {
            Framing::Empty => (0, true),
            Framing::Length(_) => {
                let take = answer.len().min(left);
                left -= take;
                (take, left == 0)
            }
            Framing::Chunked => match chunks.walk(answer, |data| {
                if let Some(scan) = seen.0.as_mut() {
                    scan.answer_chunk(data)
                }
            }) {
                Ok(r) => r,
                Err(()) => return Relayed::Broken,
            },
            Framing::UntilClose => (answer.len(), false),
        };
        if framing != Framing::Chunked {
            if let Some(scan) = seen.0.as_mut() {
                scan.answer_chunk(&answer[..take]);
            }
        }
        out.extend_from_slice(&answer[..take]);
        answer.advance(take);
        if ended {
            drop(seen);
            if deliver(io, out).await.is_err() {
                return Relayed::Broken;
            }
            if ups_keep_alive && answer.is_empty() {
                upstream.put_back(conn);
            }
            return Relayed::Keep;
        }
        if out.len() >= READ_CHUNK {
            if deliver(io, out).await.is_err() {
                return Relayed::Broken;
            }
            out.clear();
        }
        answer.reserve(READ_CHUNK);
        match conn.read_buf(answer).await {
            Ok(0) if framing == Framing::UntilClose => {
                drop(seen);
                return match deliver(io, out).await {
                    Ok(()) => Relayed::Close,
                    Err(_) => Relayed::Broken,
                };
            }
            Ok(0) | Err(_) => {
                // UPS went away mid-answer: the client sees the answer cut short, as it
                // would on hyper's path.
                let _ = deliver(io, out).await;
                return Relayed::Broken;
            }
            Ok(_) => {}
        }
    }
}

/// Write `bytes` to the client and flush them (a TLS stream may hold records until
/// flushed; a plain one has nothing to flush).
async fn deliver<I: AsyncWrite + Unpin>(io: &mut I, bytes: &[u8]) -> io::Result<()> {
    io.write_all(bytes).await?;
    io.flush().await
}

/// `Content-Length: n`, without a `String` per answer.
fn put_content_length(out: &mut Vec<u8>, n: usize) {
    put_header(
        out,
        b"content-length",
        itoa::Buffer::new().format(n).as_bytes(),
    );
}

/// The `Date` header, formatted once a second per thread (as hyper does).
fn put_date(out: &mut Vec<u8>) {
    thread_local! {
        static DATE: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((0, String::new())) };
    }
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|date| {
        let mut date = date.borrow_mut();
        if date.0 != secs || date.1.is_empty() {
            *date = (secs, httpdate::fmt_http_date(now));
        }
        put_header(out, b"date", date.1.as_bytes());
    })
}

/// A connection hyper takes over: the bytes the lane had read come first.
struct Prefixed<I> {
    read: Bytes,
    io: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            buf.put_slice(&self.read[..n]);
            self.read.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrived(raw: &[u8]) -> Arrived {
        match parse_request(raw) {
            Parse::Arrived(a) => a,
            Parse::Partial => panic!("partial: {}", String::from_utf8_lossy(raw)),
            Parse::Hyper(_) => panic!("hyper's: {}", String::from_utf8_lossy(raw)),
        }
    }

    fn is_hypers(raw: &[u8]) -> bool {
        matches!(parse_request(raw), Parse::Hyper(_))
    }

    #[test]
    fn a_plain_header_style_request_is_the_lanes_with_its_body_located() {
        let raw = b"POST /ship/v2409/rating/Rate?additionalinfo=x HTTP/1.1\r\nHost: p\r\nAccessLicenseNumber: K\r\nPassWORD: p w\r\nX-Other: o\r\nContent-Length: 4\r\nConnection: keep-alive\r\n\r\nbody";
        let a = arrived(raw);
        let (head_len, body_len) = (a.head_len, a.body_len);
        assert_eq!(&raw[head_len..head_len + body_len], b"body");
        let request = Bytes::from_static(raw);
        let uri = a.uri(&request).expect("a target http takes");
        assert_eq!(a.method, Method::POST);
        assert_eq!(uri.path(), "/ship/v2409/rating/Rate");
        assert_eq!(uri.query(), Some("additionalinfo=x"));
        let fields = a.fields(&request);
        let fields = Fields::Raw(&fields);
        assert_eq!(fields.get("accesslicensenumber"), Some(&b"K"[..]));
        assert_eq!(fields.get("password"), Some(&b"p w"[..]));
        assert_eq!(fields.get("x-other"), Some(&b"o"[..]));
        assert_eq!(fields.get("content-length"), Some(&b"4"[..]));
        assert_eq!(fields.len(), 6);
        // The head arrives in pieces: partial until its blank line.
        assert!(matches!(parse_request(&raw[..20]), Parse::Partial));
        // The body may still be coming: the head says how much.
        let a = arrived(&raw[..raw.len() - 2]);
        assert_eq!(a.body_len, 4);
    }

    #[test]
    fn anything_unusual_goes_to_hyper() {
        let cases: [&[u8]; 10] = [
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /x HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nbody",
            b"POST /x HTTP/1.1\r\nContent-Length: +4\r\n\r\nbody",
            b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
            b"GET /x HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n",
            b"GET /x HTTP/1.0\r\n\r\n",
            b"CONNECT onlinetools.ups.com:443 HTTP/1.1\r\n\r\n",
            b"GET http://onlinetools.ups.com/x HTTP/1.1\r\n\r\n",
            b"GET /x HTTP/1.1\r\nBad Header: x\r\n\r\n",
        ];
        for raw in cases {
            assert!(is_hypers(raw), "{}", String::from_utf8_lossy(raw));
        }
        let big = format!(
            "POST /x HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_REQUEST
        );
        assert!(is_hypers(big.as_bytes()));
    }

    #[tokio::test]
    async fn hyper_reads_the_bytes_the_lane_had_read_first() {
        let (mut near, far) = tokio::io::duplex(64);
        let mut io = Prefixed {
            read: Bytes::from_static(b"GET / HT"),
            io: far,
        };
        near.write_all(b"TP/1.1\r\n\r\n").await.unwrap();
        let mut got = vec![0u8; 18];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"GET / HTTP/1.1\r\n\r\n");
        io.write_all(b"ok").await.unwrap();
        let mut back = [0u8; 2];
        near.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"ok");
    }
}

//! HTTP/1.1 written and read by hand on this thread's pooled UPS connections
//! ([`RawConn`]): one write of head and body, UPS's answer head parsed once with httparse.
//! The express lane relays answers through it; the translated dialects' calls that change
//! nothing at UPS (rates, tracking, address checks…) read theirs whole with
//! [`exchange_whole`]. Calls that change something at UPS (shipments, pickups, voids) stay
//! on hyper's client, which never sends a request twice.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use http::Method;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::REQUEST_ID;
use crate::error::Failure;
use crate::pipeline::UpsHeaders;

/// A connection to UPS written and read by hand (TLS or plain). Boxed: the TLS state is over
/// a kilobyte, and the connection moves (pool, call, pool) per request.
pub type RawConn = Box<TokioIo<hyper_rustls::MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>>>;

/// Where connections come from and go back to: an origin's per-thread pool
/// ([`super::upstream::Upstream`]).
pub(super) trait Connections {
    /// The newest idle connection of this thread, if one is young enough.
    fn idle_connection(&self) -> Option<RawConn>;
    /// Keep a connection whose last exchange ended cleanly, for this thread's next request.
    fn put_back(&self, conn: RawConn);
    /// A new connection.
    fn connect(&self) -> impl std::future::Future<Output = Result<RawConn, Failure>>;
}

/// Headers in a head we read (more: the head is refused).
pub(super) const MAX_HEADERS: usize = 64;
/// The largest head we read.
const MAX_HEAD: usize = 64 * 1024;
/// How much is read at a time.
pub(super) const READ_CHUNK: usize = 8 * 1024;

/// How UPS's answer body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Length(usize),
    Chunked,
    /// Until UPS closes the connection.
    UntilClose,
    Empty,
}

/// UPS's answer head (it is the start of the answer buffer).
pub(super) struct UpsHead {
    pub status: u16,
    pub head_len: usize,
    pub framing: Framing,
    pub keep_alive: bool,
}

/// The client's answer head, written while UPS's is read (the express lane relays UPS's
/// answer): UPS's status and headers but its hop-by-hop ones, and our request id.
pub(super) struct ClientHead<'a> {
    pub out: &'a mut Vec<u8>,
    pub request_id: &'a str,
}

/// Send `request` on a pooled connection of this thread's, or a new one, and read the
/// answer's head into `answer` (and the client's into `client`, if given). A pooled
/// connection that ends before a byte of answer was closed by UPS while idle: the request
/// goes again on the next one. Only calls that change nothing at UPS come here.
pub(super) async fn send(
    upstream: &impl Connections,
    request: &[u8],
    answer: &mut BytesMut,
    mut client: Option<ClientHead<'_>>,
) -> Result<(RawConn, UpsHead), Failure> {
    loop {
        let (mut conn, pooled) = match upstream.idle_connection() {
            Some(conn) => (conn, true),
            None => (upstream.connect().await?, false),
        };
        answer.clear();
        let written = conn.write_all(request).await;
        let head = match written {
            Ok(()) => read_answer_head(&mut conn, answer, client.as_mut()).await,
            Err(e) => Err(e),
        };
        match head {
            Ok(head) => return Ok((conn, head)),
            Err(_) if pooled && answer.is_empty() => continue,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(Failure::UpstreamGarbled(e.to_string()))
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(Failure::UpstreamUnreachable(
                    "connection closed before the answer".into(),
                ))
            }
            Err(e) => return Err(Failure::UpstreamUnreachable(e.to_string())),
        }
    }
}

/// Read until UPS's answer head is complete (skipping `1xx` interim answers).
async fn read_answer_head(
    conn: &mut RawConn,
    answer: &mut BytesMut,
    mut client: Option<&mut ClientHead<'_>>,
) -> io::Result<UpsHead> {
    loop {
        if let Some(head) = parse_answer_head(answer, client.as_deref_mut())? {
            if (100..200).contains(&head.status) {
                answer.advance(head.head_len);
                continue;
            }
            return Ok(head);
        }
        if answer.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "UPS's answer head is too large",
            ));
        }
        answer.reserve(READ_CHUNK);
        if conn.read_buf(answer).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// UPS's answer head, if complete; a final answer's head is also written for the client if
/// asked. (A body that ends when UPS closes ends the client's connection too.)
pub(super) fn parse_answer_head(
    buf: &[u8],
    mut client: Option<&mut ClientHead<'_>>,
) -> io::Result<Option<UpsHead>> {
    let garbled = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_string());
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut slots);
    let head_len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(garbled(&format!("UPS's answer head: {e}"))),
    };
    let status = res.code.unwrap_or(0);
    let interim = (100..200).contains(&status);
    if let Some(c) = client.as_deref_mut() {
        c.out.clear();
        put_status_line(c.out, status, res.reason.unwrap_or("").as_bytes());
    }
    let mut keep_alive = res.version == Some(1);
    let mut length = None;
    let mut chunked = false;
    for h in res.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| garbled("UPS's Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(garbled("UPS sent two Content-Lengths"));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            if !chunked {
                return Err(garbled("UPS's Transfer-Encoding"));
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = h.value;
            if contains_token(v, b"close") {
                keep_alive = false;
            } else if contains_token(v, b"keep-alive") {
                keep_alive = true;
            }
            continue;
        }
        if let Some(c) = client.as_deref_mut() {
            if !h.name.eq_ignore_ascii_case("keep-alive")
                && !h.name.eq_ignore_ascii_case(REQUEST_ID.as_str())
            {
                put_header(c.out, h.name.as_bytes(), h.value);
            }
        }
    }
    let framing = if status == 204 || status == 304 || interim {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        keep_alive = false;
        Framing::UntilClose
    };
    if let Some(c) = client.filter(|_| !interim) {
        put_header(
            c.out,
            REQUEST_ID.as_str().as_bytes(),
            c.request_id.as_bytes(),
        );
        if framing == Framing::UntilClose {
            put_header(c.out, b"connection", b"close");
        }
        c.out.extend_from_slice(b"\r\n");
    }
    Ok(Some(UpsHead {
        status,
        head_len,
        framing,
        keep_alive,
    }))
}

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// The buffers of a whole exchange: the request's bytes as written, and UPS's answer as
/// read (its body is handed on as a view of it). A thread keeps one pair from one exchange
/// to the next ([`WholeBuffers::take`], [`WholeBuffers::keep`]): allocated per exchange,
/// they were two blocks of several KiB in memory not touched for a while, on every
/// translated request. The answer's block is written again once the body handed on before
/// is gone (`BytesMut::reserve` takes it back when nothing else holds it).
#[derive(Default)]
pub(super) struct WholeBuffers {
    pub request: Vec<u8>,
    answer: BytesMut,
}

impl WholeBuffers {
    /// Most bytes of each buffer a thread keeps: a rare large answer or request is not held.
    const KEPT: usize = 64 * 1024;

    thread_local! {
        static SPARE: std::cell::Cell<Option<WholeBuffers>> = const { std::cell::Cell::new(None) };
    }

    /// This thread's buffers, emptied; new ones when another exchange of the thread (waiting
    /// on UPS) has them.
    pub fn take() -> WholeBuffers {
        let mut buffers = Self::SPARE.take().unwrap_or_default();
        buffers.request.clear();
        buffers.answer.clear();
        buffers
    }

    /// Keep these buffers for this thread's next exchange.
    pub fn keep(self) {
        if self.request.capacity() <= Self::KEPT && self.answer.capacity() <= Self::KEPT {
            Self::SPARE.set(Some(self));
        }
    }

    /// A block that took a large answer goes with that answer's body. (What is left of the
    /// answer is a view at the block's end, whose capacity does not show the block's size.)
    fn let_go_if_large(answer: &mut BytesMut, body: &Bytes) {
        if body.len() > Self::KEPT {
            *answer = BytesMut::new();
        }
    }
}

/// One call that changes nothing at UPS (`buffers.request`: its head and body), the answer
/// read whole (at most `max` bytes of body) into `buffers.answer`. The connection goes back
/// to this thread's pool if the answer ended cleanly.
pub(super) async fn exchange_whole(
    upstream: &impl Connections,
    buffers: &mut WholeBuffers,
    method: &Method,
    max: usize,
) -> Result<(u16, Bytes), Failure> {
    let too_large = || Failure::UpstreamGarbled(format!("answer larger than {} MiB", max >> 20));
    let cut_short = |e: io::Error| Failure::UpstreamUnreachable(format!("reading the answer: {e}"));
    let WholeBuffers { request, answer } = buffers;
    // From the block's start when the last answer read into it is gone.
    answer.reserve(READ_CHUNK);
    let (mut conn, head) = send(upstream, request, answer, None).await?;
    answer.advance(head.head_len);
    let framing = if *method == Method::HEAD {
        Framing::Empty
    } else {
        head.framing
    };
    let body = match framing {
        Framing::Empty => Bytes::new(),
        Framing::Length(n) => {
            if n > max {
                return Err(too_large());
            }
            answer.reserve(n.saturating_sub(answer.len()));
            while answer.len() < n {
                if conn.read_buf(answer).await.map_err(cut_short)? == 0 {
                    return Err(cut_short(io::ErrorKind::UnexpectedEof.into()));
                }
            }
            answer.split_to(n).freeze()
        }
        Framing::Chunked => {
            let mut walk = ChunkWalk::default();
            let mut data = BytesMut::new();
            loop {
                let (n, ended) = walk
                    .walk(answer, |d| data.extend_from_slice(d))
                    .map_err(|()| Failure::UpstreamGarbled("UPS's chunked answer".into()))?;
                answer.advance(n);
                if ended {
                    break;
                }
                if data.len() > max {
                    return Err(too_large());
                }
                answer.reserve(READ_CHUNK);
                if conn.read_buf(answer).await.map_err(cut_short)? == 0 {
                    return Err(cut_short(io::ErrorKind::UnexpectedEof.into()));
                }
            }
            data.freeze()
        }
        Framing::UntilClose => {
            loop {
                if answer.len() > max {
                    return Err(too_large());
                }
                answer.reserve(READ_CHUNK);
                if conn.read_buf(answer).await.map_err(cut_short)? == 0 {
                    break;
                }
            }
            // The connection ends with the answer.
            let body = answer.split().freeze();
            WholeBuffers::let_go_if_large(answer, &body);
            return Ok((head.status, body));
        }
    };
    if head.keep_alive && answer.is_empty() {
        upstream.put_back(conn);
    }
    WholeBuffers::let_go_if_large(answer, &body);
    Ok((head.status, body))
}

/// Where a chunked body is, across reads: the bytes pass through unchanged; the walk finds
/// the end and shows the data to the scan.
#[derive(Default)]
pub(super) struct ChunkWalk {
    /// Data bytes left in the current chunk, then its CRLF.
    data_left: usize,
    crlf_left: usize,
    /// In the trailer section (after the last chunk).
    trailers: bool,
}

impl ChunkWalk {
    /// How many bytes of `buf` can go to the client, and whether the body ends with them.
    /// `seen` is shown the data bytes.
    pub fn walk(&mut self, buf: &[u8], mut seen: impl FnMut(&[u8])) -> Result<(usize, bool), ()> {
        let mut at = 0;
        loop {
            if self.data_left > 0 {
                let n = self.data_left.min(buf.len() - at);
                seen(&buf[at..at + n]);
                self.data_left -= n;
                at += n;
                if self.data_left > 0 {
                    return Ok((at, false));
                }
            }
            if self.crlf_left > 0 {
                let n = self.crlf_left.min(buf.len() - at);
                self.crlf_left -= n;
                at += n;
                if self.crlf_left > 0 {
                    return Ok((at, false));
                }
            }
            let rest = &buf[at..];
            if self.trailers {
                // Trailer lines until an empty one.
                let Some(eol) = memchr::memchr(b'\n', rest) else {
                    return Ok((at, false));
                };
                at += eol + 1;
                if eol == 0 || (eol == 1 && rest[0] == b'\r') {
                    return Ok((at, true));
                }
                continue;
            }
            match httparse::parse_chunk_size(rest) {
                Ok(httparse::Status::Complete((n, size))) => {
                    at += n;
                    if size == 0 {
                        self.trailers = true;
                    } else {
                        self.data_left = usize::try_from(size).map_err(|_| ())?;
                        self.crlf_left = 2;
                    }
                }
                Ok(httparse::Status::Partial) => return Ok((at, false)),
                Err(_) => return Err(()),
            }
        }
    }
}

pub(super) fn put_status_line(out: &mut Vec<u8>, status: u16, reason: &[u8]) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa3(status).as_slice());
    out.push(b' ');
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
}

fn itoa3(n: u16) -> [u8; 3] {
    let n = n.min(999);
    [
        b'0' + (n / 100) as u8,
        b'0' + (n / 10 % 10) as u8,
        b'0' + (n % 10) as u8,
    ]
}

/// One header line, its name in title case (`Content-Type`), as hyper writes ours: some old
/// clients match header names exactly.
pub(super) fn put_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.reserve(name.len() + value.len() + 4);
    put_title_case(out, name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `name` in title case: a letter first or after a `-` upper case, any other lower. Each
/// byte is decided from itself and the one before it in `name`, with no branch on the data,
/// so the loop runs many bytes at a time (a flag carried from byte to byte cost about 8
/// instructions a byte, 1.3k per answer head).
fn put_title_case(out: &mut Vec<u8>, name: &[u8]) {
    let start = out.len();
    out.resize(start + name.len(), 0);
    let dst = &mut out[start..];
    let Some((&first, rest)) = name.split_first() else {
        return;
    };
    dst[0] = title_case_byte(first, b'-');
    for ((d, &b), &prev) in dst[1..].iter_mut().zip(rest).zip(name) {
        *d = title_case_byte(b, prev);
    }
}

fn title_case_byte(b: u8, prev: u8) -> u8 {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let case_bit = u8::from(letter) << 5;
    if prev == b'-' {
        b & !case_bit
    } else {
        b | case_bit
    }
}

/// A request's head to UPS: the request line, then `headers` (their names as they are).
pub(super) fn put_request_head(
    out: &mut Vec<u8>,
    method: &Method,
    path_and_query: &str,
    headers: &UpsHeaders<'_>,
) {
    put_request_line(out, method, path_and_query);
    headers.each(|name, value| put_field(out, name, value));
    out.extend_from_slice(b"\r\n");
}

pub(super) fn put_request_line(out: &mut Vec<u8>, method: &Method, path_and_query: &str) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path_and_query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
}

/// One header line of a request to UPS, its name as given.
pub(super) fn put_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One connection to a local listener that answers each request with the next of
    /// `bodies` (kept alive), then closes.
    struct OneConnection {
        addr: std::net::SocketAddr,
        idle: std::sync::Mutex<Option<RawConn>>,
    }

    impl OneConnection {
        async fn answering(bodies: &'static [&'static str]) -> OneConnection {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                let (mut tcp, _) = listener.accept().await.unwrap();
                let mut read = vec![0u8; 4096];
                for body in bodies {
                    let mut got = Vec::new();
                    while !got.ends_with(b"\r\n\r\n") {
                        let n = tcp.read(&mut read).await.unwrap();
                        assert!(n > 0, "the request ends with its head");
                        got.extend_from_slice(&read[..n]);
                    }
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    tcp.write_all(answer.as_bytes()).await.unwrap();
                }
            });
            let idle = std::sync::Mutex::new(None);
            OneConnection { addr, idle }
        }
    }

    impl Connections for OneConnection {
        fn idle_connection(&self) -> Option<RawConn> {
            self.idle.lock().unwrap().take()
        }
        fn put_back(&self, conn: RawConn) {
            *self.idle.lock().unwrap() = Some(conn);
        }
        async fn connect(&self) -> Result<RawConn, Failure> {
            let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
            let stream = hyper_rustls::MaybeHttpsStream::Http(TokioIo::new(tcp));
            Ok(Box::new(TokioIo::new(stream)))
        }
    }

    #[tokio::test]
    async fn a_threads_answer_buffer_is_written_again_only_once_the_body_read_into_it_is_gone() {
        let large: &'static str = Box::leak("x".repeat(100_000).into_boxed_str());
        let bodies = Box::leak(Box::new(["first", "second", "third", large]));
        let ups = OneConnection::answering(bodies).await;
        let exchange = |ups: &'static OneConnection| async move {
            let mut buffers = WholeBuffers::take();
            buffers
                .request
                .extend_from_slice(b"GET /x HTTP/1.1\r\nhost: ups\r\n\r\n");
            let (status, body) = exchange_whole(ups, &mut buffers, &Method::GET, 1 << 20)
                .await
                .unwrap();
            buffers.keep();
            assert_eq!(status, 200);
            body
        };
        let ups: &'static OneConnection = Box::leak(Box::new(ups));
        let first = exchange(ups).await;
        // Read while the first body is still held: into a block of its own.
        let second = exchange(ups).await;
        assert_eq!((&first[..], &second[..]), (&b"first"[..], &b"second"[..]));
        let kept = second.as_ptr();
        drop((first, second));
        // Both gone: the kept block is read into from its start again (the heads are the
        // same length, so the third body starts where the second did).
        let third = exchange(ups).await;
        assert_eq!(&third[..], b"third");
        assert_eq!(third.as_ptr(), kept, "the kept block is reused");
        assert!(!third.is_unique(), "the thread keeps the rest of its block");
        // A large answer's block is not kept: its body is all that holds it.
        let large = exchange(ups).await;
        assert_eq!(large.len(), 100_000);
        assert!(
            large.is_unique(),
            "the thread let go of the large answer's block"
        );
    }

    #[test]
    fn ups_answer_heads_say_how_their_body_ends() {
        let head = |raw: &[u8]| parse_answer_head(raw, None).unwrap().unwrap();
        let h = head(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(
            (h.status, h.framing, h.keep_alive),
            (200, Framing::Length(12), true)
        );
        let h = head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, false));
        let h = head(b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let h = head(b"HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Empty, true));
        let h = head(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n");
        assert!(!h.keep_alive);
        assert!(parse_answer_head(b"HTTP/1.1 200 OK\r\nContent-", None)
            .unwrap()
            .is_none());
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"NOT HTTP\r\n\r\n",
        ] {
            let e = parse_answer_head(bad, None).err().expect("garbled");
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        }
    }

    #[test]
    fn the_clients_head_is_upss_without_hop_by_hop_headers_and_with_our_request_id() {
        let id = "ub1";
        let mut reply = Vec::new();
        let raw = b"HTTP/1.1 200 Fine\r\ncontent-type: application/json\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-Upsbridge-Request-Id: forged\r\nContent-Length: 2\r\n\r\n{}";
        let h = parse_answer_head(
            raw,
            Some(&mut ClientHead {
                out: &mut reply,
                request_id: id,
            }),
        )
        .unwrap()
        .unwrap();
        assert_eq!(&raw[h.head_len..], b"{}");
        assert_eq!(
            String::from_utf8(reply.clone()).unwrap(),
            "HTTP/1.1 200 Fine\r\nContent-Type: application/json\r\nContent-Length: 2\r\nX-Upsbridge-Request-Id: ub1\r\n\r\n"
        );
        // No length: the client's connection ends with the body, and is told so.
        parse_answer_head(
            b"HTTP/1.1 200 OK\r\n\r\n",
            Some(&mut ClientHead {
                out: &mut reply,
                request_id: id,
            }),
        )
        .unwrap();
        assert!(reply.ends_with(b"Connection: close\r\n\r\n"));
        // An interim answer writes nothing for the client.
        reply.clear();
        parse_answer_head(
            b"HTTP/1.1 100 Continue\r\n\r\n",
            Some(&mut ClientHead {
                out: &mut reply,
                request_id: id,
            }),
        )
        .unwrap();
        assert!(!reply.ends_with(b"\r\n\r\n"));
    }

    #[test]
    fn a_chunked_body_is_walked_to_its_end_in_any_pieces() {
        let body = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: t\r\n\r\nNEXT";
        let whole = body.len() - 4;
        for split in 0..=whole {
            let mut walk = ChunkWalk::default();
            let mut data = Vec::new();
            let mut buf = body[..split].to_vec();
            let mut passed = 0;
            let mut fed = split;
            let ended = loop {
                let (take, ended) = walk.walk(&buf, |d| data.extend_from_slice(d)).unwrap();
                passed += take;
                buf.drain(..take);
                if ended {
                    break true;
                }
                if fed == body.len() {
                    break false;
                }
                buf.push(body[fed]);
                fed += 1;
            };
            assert!(ended, "split at {split}");
            assert_eq!(passed, whole, "split at {split}");
            assert_eq!(data, b"hello, world", "split at {split}");
        }
        let mut walk = ChunkWalk::default();
        assert!(walk.walk(b"zz\r\n", |_| {}).is_err());
    }

    #[test]
    fn header_names_are_written_in_title_case_as_hyper_writes_them() {
        let mut out = Vec::new();
        put_header(&mut out, b"content-TYPE", b"application/json");
        put_header(&mut out, b"x-upsbridge-request-id", b"ub1");
        assert_eq!(
            out,
            b"Content-Type: application/json\r\nX-Upsbridge-Request-Id: ub1\r\n"
        );
        let mut out = Vec::new();
        put_status_line(&mut out, 404, b"Not Found");
        assert_eq!(out, b"HTTP/1.1 404 Not Found\r\n");
        // Every byte, first and after a `-` or a letter: as ASCII's own case mapping.
        for prev in [None, Some(b'-'), Some(b'a'), Some(b'Z')] {
            for b in 0..=255u8 {
                let name: Vec<u8> = prev.into_iter().chain([b]).collect();
                let upper = prev.is_none_or(|p| p == b'-');
                let want = if upper {
                    b.to_ascii_uppercase()
                } else {
                    b.to_ascii_lowercase()
                };
                let mut out = Vec::new();
                put_title_case(&mut out, &name);
                assert_eq!(out.last(), Some(&want), "{name:?}");
            }
        }
    }
}

//! The floor of a one-write exchange without an HTTP library's connection machinery: httparse
//! for the heads, one `write` of head and body to the upstream, the upstream's answer written
//! back to the client as read. Content-Length framing only (what the bench sends and gets), so
//! it is a measuring stick, not a proxy: it answers the question "what would a hand-written
//! HTTP/1 data path on tokio cost on this machine" before anyone writes one.
//! benches/compare.sh runs it beside nginx, hyper_floor and pingora_floor.
//! Env: CANDIDATE_PORT, UPSTREAM_PORT, BENCH_TOKEN.
use std::sync::Mutex;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DROPPED: [&str; 3] = ["accesslicensenumber", "username", "password"];

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// Idle upstream connections, shared by the connections of the one runtime thread.
static POOL: Mutex<Vec<TcpStream>> = Mutex::new(Vec::new());

fn content_length(headers: &[httparse::Header<'_>]) -> usize {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
        .unwrap_or(0)
}

/// Reads into `buf` until `parse` says how long the whole message is; returns that length.
async fn read_message(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    parse: impl Fn(&[u8]) -> Option<usize>,
) -> Option<usize> {
    loop {
        if let Some(total) = parse(buf) {
            while buf.len() < total {
                read_some(stream, buf).await?;
            }
            return Some(total);
        }
        read_some(stream, buf).await?;
    }
}

async fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    buf.reserve(8192);
    match stream.read_buf(buf).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(()),
    }
}

fn request_len(bytes: &[u8]) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(bytes) {
        Ok(httparse::Status::Complete(head)) => Some(head + content_length(req.headers)),
        _ => None,
    }
}

fn response_len(bytes: &[u8]) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut headers);
    match res.parse(bytes) {
        Ok(httparse::Status::Complete(head)) => Some(head + content_length(res.headers)),
        _ => None,
    }
}

async fn serve(mut client: TcpStream, upstream: &str, auth: &[u8]) -> Option<()> {
    let mut inbound = Vec::with_capacity(8192);
    let mut outbound = Vec::with_capacity(8192);
    let mut answer = Vec::with_capacity(8192);
    let pooled = POOL.lock().ok()?.pop();
    let mut up = match pooled {
        Some(up) => up,
        None => {
            let up = TcpStream::connect(upstream).await.ok()?;
            up.set_nodelay(true).ok()?;
            up
        }
    };
    let result = async {
        loop {
            let total = read_message(&mut client, &mut inbound, request_len).await?;
            {
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut req = httparse::Request::new(&mut headers);
                let head = match req.parse(&inbound[..total]).ok()? {
                    httparse::Status::Complete(head) => head,
                    httparse::Status::Partial => return None,
                };
                outbound.clear();
                outbound.extend_from_slice(req.method?.as_bytes());
                outbound.push(b' ');
                let path = req.path?;
                let path = path.replace("/ship/v2409/rating/", "/api/rating/v2409/");
                outbound.extend_from_slice(path.as_bytes());
                outbound.extend_from_slice(b" HTTP/1.1\r\n");
                for h in req.headers.iter() {
                    if DROPPED.iter().any(|d| h.name.eq_ignore_ascii_case(d)) {
                        continue;
                    }
                    outbound.extend_from_slice(h.name.as_bytes());
                    outbound.extend_from_slice(b": ");
                    outbound.extend_from_slice(h.value);
                    outbound.extend_from_slice(b"\r\n");
                }
                outbound.extend_from_slice(auth);
                outbound.extend_from_slice(&inbound[head..total]);
            }
            inbound.drain(..total);
            up.write_all(&outbound).await.ok()?;
            answer.clear();
            let len = read_message(&mut up, &mut answer, response_len).await?;
            client.write_all(&answer[..len]).await.ok()?;
        }
    }
    .await;
    if let Ok(mut pool) = POOL.lock() {
        pool.push(up);
    }
    result
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let upstream: &'static str =
            Box::leak(format!("127.0.0.1:{}", env("UPSTREAM_PORT")).into_boxed_str());
        let auth: &'static [u8] = Box::leak(
            format!("Authorization: Bearer {}\r\n\r\n", env("BENCH_TOKEN"))
                .into_bytes()
                .into_boxed_slice(),
        );
        let listener =
            tokio::net::TcpListener::bind(format!("127.0.0.1:{}", env("CANDIDATE_PORT")))
                .await
                .expect("bind");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            stream.set_nodelay(true).ok();
            tokio::spawn(serve(stream, upstream, auth));
        }
    });
}

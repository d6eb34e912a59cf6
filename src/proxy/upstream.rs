//! The UPS origin: where REST calls go (production, CIE or the simulator), the
//! pingora peer that reaches it (TLS with SNI and certificate checks when
//! `https`), and one buffered exchange for the dialects whose answers must be
//! translated. Both paths share pingora's connection pooling.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::v1::client::{http_req_header_to_wire, HttpSession as HttpSessionV1};
use pingora::upstreams::peer::HttpPeer;
use pingora::ErrorType;
use tokio::io::AsyncWriteExt;
use tracing::{debug, warn};

use crate::config::UpsConfig;
use crate::dialect::services::RestCall;
use crate::dialect::Failure;

/// Largest UPS answer we buffer for translation (labels are base64 images; 50 MiB is ample).
const MAX_ANSWER_BYTES: usize = 50 * 1024 * 1024;

/// An answer from UPS, fully read.
pub struct RestAnswer {
    pub status: u16,
    pub body: Bytes,
}

pub struct Upstream {
    host: String,
    host_header: HeaderValue,
    port: u16,
    tls: bool,
    addr: ArcSwap<SocketAddr>,
    connector: Connector,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl Upstream {
    /// Resolve the configured UPS host (blocking: call at startup, not on the proxy runtime).
    pub fn new(ups: &UpsConfig) -> Result<Upstream, std::io::Error> {
        let (host, port, tls) = ups.authority();
        let addr = resolve_blocking(&host, port)?;
        let authority = match (tls, port) {
            (true, 443) | (false, 80) => host.clone(),
            _ => format!("{host}:{port}"),
        };
        let host_header = HeaderValue::from_str(&authority).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{authority} is not a valid Host header"),
            )
        })?;
        Ok(Upstream {
            host,
            host_header,
            port,
            tls,
            addr: ArcSwap::from_pointee(addr),
            connector: Connector::new(None),
            connect_timeout: ups.connect_timeout,
            request_timeout: ups.request_timeout,
        })
    }

    /// `Host` header value for UPS (built once; cloning it is a reference count).
    pub fn host_header(&self) -> HeaderValue {
        self.host_header.clone()
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The peer for one request (cheap; addresses are re-resolved in the background).
    pub fn peer(&self) -> HttpPeer {
        let mut peer = HttpPeer::new(**self.addr.load(), self.tls, self.host.clone());
        let o = &mut peer.options;
        o.connection_timeout = Some(self.connect_timeout);
        o.total_connection_timeout = Some(self.connect_timeout * 2);
        o.read_timeout = Some(self.request_timeout);
        o.write_timeout = Some(self.request_timeout);
        o.idle_timeout = Some(Duration::from_secs(55));
        peer
    }

    /// Re-resolve UPS's host now and then, so a DNS change is followed without a restart.
    pub async fn keep_resolving(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_secs(30)).await;
            match tokio::net::lookup_host((self.host.as_str(), self.port)).await {
                Ok(mut addrs) => {
                    if let Some(a) = addrs.next() {
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

    /// One REST call with a fully buffered answer. A stale pooled connection is retried once
    /// on a fresh one (nothing reached UPS in that case).
    pub async fn exchange(
        &self,
        call: &RestCall,
        body: Option<Bytes>,
        bearer: &HeaderValue,
        trans_id: &str,
    ) -> Result<RestAnswer, Failure> {
        let attempt = async {
            match self
                .attempt(call, body.clone(), bearer, trans_id, true)
                .await
            {
                Err(Attempt::Stale) => self
                    .attempt(call, body.clone(), bearer, trans_id, false)
                    .await
                    .map_err(Attempt::into_failure),
                other => other.map_err(Attempt::into_failure),
            }
        };
        tokio::time::timeout(self.request_timeout, attempt)
            .await
            .unwrap_or(Err(Failure::UpstreamTimeout(self.request_timeout)))
    }

    async fn attempt(
        &self,
        call: &RestCall,
        body: Option<Bytes>,
        bearer: &HeaderValue,
        trans_id: &str,
        may_reuse: bool,
    ) -> Result<RestAnswer, Attempt> {
        let peer = self.peer();
        let (session, reused) = self.connector.get_http_session(&peer).await.map_err(|e| {
            Attempt::Failed(Failure::UpstreamUnreachable(e.etype().as_str().into()))
        })?;
        let HttpSession::H1(mut h1) = session else {
            // The peer offers only HTTP/1.1 in ALPN; anything else is not UPS as we know it.
            return Err(Attempt::Failed(Failure::UpstreamGarbled(
                "UPS did not speak HTTP/1.1".into(),
            )));
        };
        if reused && !may_reuse {
            // Fresh connection wanted; this one came from the pool: let it go.
            h1.shutdown().await;
            return Err(Attempt::Stale);
        }
        let stale_or = |e: Box<pingora::Error>| {
            if reused {
                Attempt::Stale
            } else {
                Attempt::from_pingora(&e)
            }
        };
        let mut req =
            RequestHeader::build(call.method.clone(), call.path_and_query.as_bytes(), None)
                .map_err(|e| Attempt::Failed(Failure::UpstreamGarbled(e.to_string())))?;
        let garbled =
            |e: &dyn std::fmt::Display| Attempt::Failed(Failure::UpstreamGarbled(e.to_string()));
        let headers = [
            ("host", self.host_header()),
            ("authorization", bearer.clone()),
            ("accept", HeaderValue::from_static("application/json")),
            (
                "transid",
                HeaderValue::from_str(trans_id).map_err(|e| garbled(&e))?,
            ),
            ("transactionsrc", HeaderValue::from_static("upsbridge")),
        ];
        for (k, v) in headers {
            req.insert_header(k, v).map_err(|e| garbled(&e))?;
        }
        for (k, v) in &call.headers {
            req.insert_header(*k, v.as_str())
                .map_err(|_| Attempt::Failed(Failure::Malformed(format!("{k} header value"))))?;
        }
        if let Some(b) = &body {
            req.insert_header("content-type", "application/json")
                .and_then(|_| req.insert_header("content-length", b.len()))
                .map_err(|e| Attempt::Failed(Failure::UpstreamGarbled(e.to_string())))?;
        }
        // Head and body leave in one write: pingora's client session flushes the head on its
        // own, and on loopback or a LAN every extra send costs about as much as parsing.
        let mut wire = http_req_header_to_wire(&req).ok_or_else(|| {
            Attempt::Failed(Failure::Malformed("request line or header value".into()))
        })?;
        if let Some(b) = &body {
            wire.extend_from_slice(b);
        }
        let mut stream = h1.into_inner();
        let sent = async {
            stream.write_all(&wire).await?;
            stream.flush().await
        };
        if let Err(e) = sent.await {
            return Err(if reused {
                Attempt::Stale
            } else {
                Attempt::Failed(Failure::UpstreamUnreachable(format!("sending: {e}")))
            });
        }
        let mut session = HttpSession::H1(HttpSessionV1::new_with_options(stream, &peer));
        session.read_response_header().await.map_err(stale_or)?;
        let status = session
            .response_header()
            .map(|h| h.status.as_u16())
            .unwrap_or(502);
        let mut buf = BytesMut::new();
        while let Some(chunk) = session
            .read_response_body()
            .await
            .map_err(|e| Attempt::from_pingora(&e))?
        {
            if buf.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(Attempt::Failed(Failure::UpstreamGarbled(
                    "answer larger than 50 MiB".into(),
                )));
            }
            buf.extend_from_slice(&chunk);
        }
        if session.response_done() {
            self.connector
                .release_http_session(session, &peer, peer.options.idle_timeout)
                .await;
        }
        Ok(RestAnswer {
            status,
            body: buf.freeze(),
        })
    }
}

enum Attempt {
    /// A pooled connection turned out dead before UPS answered.
    Stale,
    Failed(Failure),
}

impl Attempt {
    fn from_pingora(e: &pingora::Error) -> Attempt {
        Attempt::Failed(match e.etype() {
            ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                Failure::UpstreamTimeout(Duration::ZERO)
            }
            other => Failure::UpstreamUnreachable(other.as_str().to_string()),
        })
    }

    fn into_failure(self) -> Failure {
        match self {
            Attempt::Stale => Failure::UpstreamUnreachable("connection closed".into()),
            Attempt::Failed(f) => f,
        }
    }
}

fn resolve_blocking(host: &str, port: u16) -> Result<SocketAddr, std::io::Error> {
    use std::net::ToSocketAddrs;
    (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host} has no address"),
        )
    })
}

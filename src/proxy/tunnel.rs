//! TLS on the proxy's connections: the TLS listener's handshake, `CONNECT` tunnels to
//! UPS's names for programs that honour `HTTPS_PROXY`, and which UPS environment a client
//! named (its TLS server name, or its `Host`). upsbridge is never an open proxy:
//! a tunnel is opened only to UPS's names on port 443, and TLS is terminated inside it.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;
use tracing::{debug, warn};

use super::body::AnswerBody;
use super::upstream::Payload;
use pingora::server::ShutdownWatch;

use super::ProxyApp;
use crate::config::Environment;
use crate::dialect::fields::{self, Fields};

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

impl ProxyApp {
    /// The TLS handshake, within the header-read deadline.
    pub(super) async fn accept_tls<I>(
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
            // A TLS-level failure (an alert such as unknown_ca, no common version or suite):
            // most often the client does not trust the CA, or speaks no TLS 1.2.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                warn!(?peer, error = %e, "TLS handshake failed (does the client trust upsbridge's CA? see docs/tls.md)");
                None
            }
            // The client hung up (health checks and TLS probes do, right after the handshake,
            // while TLS 1.3's session tickets are still being sent): nothing is wrong.
            Ok(Err(e)) => {
                debug!(?peer, error = %e, "client closed the connection during the TLS handshake");
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
    pub(super) fn connect(
        self: &Arc<Self>,
        mut req: Request<Incoming>,
        peer: Option<IpAddr>,
        shutdown: ShutdownWatch,
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
            // Host and port only: an authority may carry `user:password@`.
            let shown = match (req.uri().host(), req.uri().port_u16()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_string(),
                _ => "-".into(),
            };
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
        // The tunnel is a connection of its own for the cap (the client's CONNECT connection
        // ends its HTTP life once upgraded).
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            warn!(?peer, "CONNECT refused: too many connections open; raise [proxy] max_connections if this is legitimate");
            self.pipeline.metrics.count_connection_refused("proxy");
            let mut resp = self.bare(None);
            *resp.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return resp;
        };
        let upgrade = hyper::upgrade::on(&mut req);
        let app = self.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let tunnel = match upgrade.await {
                Ok(u) => hyper_util::rt::TokioIo::new(u),
                Err(e) => return debug!(?peer, error = %e, "CONNECT tunnel not opened"),
            };
            if let Some(tls) = app.accept_tls(config, tunnel, peer).await {
                let called = called_by_sni(&tls);
                app.serve(tls, peer, called, &shutdown).await;
            }
        });
        self.bare(None)
    }

    /// An answer that is not a request of ours (CONNECT's): nothing is recorded for it.
    fn bare(&self, body: Option<Bytes>) -> Response<AnswerBody> {
        self.respond(Response::new(()), Payload::Full(body), None, None)
    }
}

/// The UPS environment a TLS client named (its SNI).
pub(super) fn called_by_sni<I>(tls: &tokio_rustls::server::TlsStream<I>) -> Option<Environment> {
    tls.get_ref().1.server_name().and_then(Environment::of_host)
}

/// The UPS environment a plain request's `Host` (or absolute URI) names.
pub(super) fn called_by_host(uri: &http::Uri, headers: Fields<'_>) -> Option<Environment> {
    let host = uri.host().or_else(|| {
        let h = fields::text(headers.get("host")?)?;
        Some(h.rsplit_once(':').map_or(h, |(name, _)| name))
    })?;
    Environment::of_host(host)
}

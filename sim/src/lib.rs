//! A UPS simulator: a faithful stand-in for UPS's OAuth and REST API, used by
//! end-to-end tests, benchmarks and the demo (design §6).
//!
//! It serves the same paths as UPS (`/security/v1/oauth/*`, `/api/*`), answers
//! UPS-shaped bodies and errors, records every request for inspection
//! (`/__sim/requests`, `/__sim/stats`, `/__sim/tokens`) and injects faults on
//! demand (`/__sim/faults`).
//!
//! It must never panic on request-derived input: anything malformed is
//! answered with a UPS-shaped error. It never logs a secret or a token.

mod api;
mod dates;
mod dispatch;
mod inspect;
mod oauth;
mod reply;
mod services;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use state::Sim;

/// Default access-token lifetime (what UPS answers in `expires_in`).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(14399);
/// Default refresh-token lifetime (what UPS answers in `refresh_token_expires_in`).
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(5183999);

/// How the simulator is set up.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Registered API clients: `(client_id, client_secret)`.
    pub clients: Vec<(String, String)>,
    /// Access-token lifetime (default 14399 s, as UPS).
    pub token_ttl: Duration,
    /// Refresh-token lifetime (default 5183999 s, as UPS).
    pub refresh_ttl: Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            clients: Vec::new(),
            token_ttl: DEFAULT_TOKEN_TTL,
            refresh_ttl: DEFAULT_REFRESH_TTL,
        }
    }
}

/// Parse `ID:SECRET` (the `--client` CLI flag). The secret may contain `:`;
/// the id may not be empty, nor may the secret.
pub fn parse_client(s: &str) -> Result<(String, String), String> {
    let Some((id, secret)) = s.split_once(':') else {
        return Err(format!(
            "client must be ID:SECRET, found no ':' in {:?}",
            redact(s)
        ));
    };
    if id.trim().is_empty() {
        return Err("client must be ID:SECRET, the ID before ':' is empty".to_string());
    }
    if secret.is_empty() {
        return Err(format!(
            "client must be ID:SECRET, the SECRET after '{id}:' is empty"
        ));
    }
    Ok((id.to_string(), secret.to_string()))
}

/// Show at most the part of a malformed `--client` value that cannot be a secret.
fn redact(s: &str) -> String {
    let shown: String = s.chars().take(4).collect();
    if shown.len() < s.len() {
        format!("{shown}…")
    } else {
        shown
    }
}

/// A simulator serving on a tokio task; [`RunningSim::shutdown`] stops it.
pub struct RunningSim {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningSim {
    /// The bound address (the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT` of the simulator, e.g. `http://127.0.0.1:40123`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop accepting connections and end every connection task.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "simulator accept loop ended abnormally");
        }
    }
}

/// Bind `listen` (port 0 allowed) and serve on the current tokio runtime (spawned task).
pub async fn start(listen: SocketAddr, opts: SimOptions) -> std::io::Result<RunningSim> {
    let listener = bind(listen)?;
    let addr = listener.local_addr()?;
    let sim = Arc::new(Sim::new(opts));
    let router = dispatch::router(sim.clone());
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, sim, router, stop_rx));
    tracing::info!(%addr, "UPS simulator listening");
    Ok(RunningSim { addr, stop, task })
}

/// The listening socket, with a deep accept queue: a proxy renewing its pool after idle sends
/// a thousand connects at once, and UPS's front ends take them. At tokio's default (1,024), a
/// loaded test machine overflowed the queue and the dropped SYNs were retried after 1 s, past
/// the proxy's connect timeout.
fn bind(listen: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if listen.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(listen)?;
    socket.listen(4096)
}

async fn accept_loop(
    listener: TcpListener,
    sim: Arc<Sim>,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Typically EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "simulator accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                if sim.reset_connections() {
                    // SO_LINGER 0 then drop: the kernel answers with RST.
                    if let Err(e) = stream.set_zero_linger() {
                        tracing::warn!(error = %e, "could not set SO_LINGER 0");
                    }
                    tracing::debug!(%peer, "fault reset_connections: resetting connection");
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(router.clone());
                conns.spawn(async move {
                    let builder = Builder::new(TokioExecutor::new());
                    if let Err(e) = builder.serve_connection(TokioIo::new(stream), service).await {
                        tracing::debug!(%peer, error = %e, "simulator connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    conns.shutdown().await;
    tracing::info!("UPS simulator stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_client_accepts_id_and_secret() {
        assert_eq!(
            parse_client("abc:s3:cr3t"),
            Ok(("abc".to_string(), "s3:cr3t".to_string()))
        );
    }

    #[test]
    fn parse_client_says_what_is_wrong() {
        let e = parse_client("abcdefgh").unwrap_err();
        assert!(e.contains("no ':'"), "{e}");
        assert!(!e.contains("efgh"), "must not echo a possible secret: {e}");
        assert!(parse_client(":x")
            .unwrap_err()
            .contains("ID before ':' is empty"));
        assert!(parse_client("id:")
            .unwrap_err()
            .contains("SECRET after 'id:' is empty"));
    }
}

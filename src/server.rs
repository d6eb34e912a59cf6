//! Assembles one `upsbridge serve` process from a validated [`Config`]:
//! the store, the account map, the token broker, the UPS upstream, the admin
//! listener and the pingora proxy service, then runs until SIGTERM/SIGINT.
//!
//! Runtimes: pingora runs the proxy on its own runtime; everything else
//! (token requests, the admin listener, the map watcher, DNS refresh) runs on
//! one small "control" runtime, so the token client's connections never
//! depend on which proxy thread asked first.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use pingora::listeners::{ListenerConfig, TcpSocketOptions};
use pingora::protocols::l4::stream::L4BufferSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::{ExecutionPhase, RunArgs, Server};
use pingora::services::listening::Service as ListeningService;
use tracing::{error, info, warn};

use crate::accounts::{Accounts, ReloadError};
use crate::admin::onboarding::Onboarding;
use crate::admin::{self, AdminState};
use crate::config::{Config, Environment, StoreBackend};
use crate::metrics::Metrics;
use crate::oauth::rotate::Rotator;
use crate::oauth::vault::Vault;
use crate::oauth::TokenBroker;
use crate::pipeline::digest::ShipDigests;
use crate::pipeline::replay::Replays;
use crate::pipeline::Pipeline;
use crate::proxy::upstream::Upstreams;
use crate::proxy::{Entry, Limits, ProxyApp};
use crate::store::{Store, StoreError};
use crate::tls::{Certificates, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the account map is invalid, not starting:\n{0}")]
    Map(crate::accounts::MapError),
    #[error("{0}")]
    Upstream(#[from] crate::proxy::upstream::UpstreamError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("cannot start: {0}")]
    Start(String),
    #[error("token key: {0}")]
    Key(String),
}

impl From<ReloadError> for ServeError {
    fn from(e: ReloadError) -> Self {
        match e {
            ReloadError::Map(m) => ServeError::Map(m),
            ReloadError::Store(s) => ServeError::Store(s),
        }
    }
}

/// Where rotation helpers journal new refresh tokens (beside the store).
pub fn rotation_journal_dir(config: &Config) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("{}.rotation", config.store.path.display()))
}

/// The token-sealing key; refuses a key that does not open the store.
pub async fn open_vault(config: &Config, store: &Store) -> Result<Vault, ServeError> {
    let check = store.key_check().await?;
    let has_data = check.is_some() || store.has_tokens().await?;
    let (vault, source) = Vault::load(&config.store.key_file, has_data)
        .map_err(|e| ServeError::Key(e.to_string()))?;
    match check {
        Some(c) => vault
            .verify_check(&c, &source)
            .map_err(|e| ServeError::Key(e.to_string()))?,
        None => store.set_key_check(vault.check_value()).await?,
    }
    Ok(vault)
}

/// Holds the proxy's port from start to exit so nothing else can take it before pingora
/// binds it (pingora binds by address string, later, on its own runtime).
///
/// The reservation is bound but never listens, so every connection goes to pingora's
/// listener. Both carry `SO_REUSEPORT`, which lets pingora bind next to it; a program
/// already listening there without that option makes the reservation fail, which is
/// the clear "address in use" error ops need at start, instead of pingora retrying
/// and giving up while the process stays up. Port 0 never shares: the kernel picks a
/// port no one holds.
struct PortReservation {
    addr: SocketAddr,
    _socket: socket2::Socket,
}

impl PortReservation {
    fn take(addr: SocketAddr) -> Result<PortReservation, ServeError> {
        let err = |source| ServeError::Listen { addr, source };
        // Another upsbridge (also SO_REUSEPORT) would otherwise silently share the port.
        if addr.port() != 0 && std::net::TcpStream::connect(addr).is_ok() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another program is already listening there",
            )));
        }
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )
        .map_err(err)?;
        socket.set_reuse_port(true).map_err(err)?;
        socket.bind(&addr.into()).map_err(err)?;
        let bound = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .ok_or_else(|| err(std::io::Error::other("bound socket has no address")))?;
        Ok(PortReservation {
            addr: bound,
            _socket: socket,
        })
    }
}

/// Run the proxy and admin listeners until a shutdown signal. Prints the bound addresses
/// on stdout (`proxy listening on http://…`, `admin listening on http://…`).
pub fn serve(config: Config) -> Result<(), ServeError> {
    serve_with(config, |_, _| {})
}

/// [`serve`], calling `on_listening(proxy, admin)` once the addresses are known.
pub fn serve_with(
    mut config: Config,
    on_listening: impl FnOnce(SocketAddr, SocketAddr),
) -> Result<(), ServeError> {
    // Every file serve and its rotation helpers create (store, journal, key) is private.
    // SAFETY: umask only sets this process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("upsbridge-control")
        .enable_all()
        .build()
        .map_err(|e| ServeError::Start(e.to_string()))?;

    // The proxy port first: with the host name it names this instance among those sharing a
    // PostgreSQL store (nothing is accepted on it yet).
    let proxy_port = PortReservation::take(config.proxy.listen)?;
    let proxy_addr = proxy_port.addr;
    let instance = config.instance_name(proxy_addr.port());
    if let StoreBackend::Postgres(pg) = &mut config.store.backend {
        pg.instance = Some(instance.clone());
    }

    // Store, key and map before anything listens; on PostgreSQL this connects (the pool's
    // connections live on the control runtime).
    let store = control.block_on(Store::open(&config.store))?;
    match store.postgres() {
        Some(pg) => {
            info!(backend = "postgres", database = %pg.target(), instance = %instance, "store opened")
        }
        None => info!(backend = "sled", path = %config.store.path.display(), "store opened"),
    }
    let vault = control.block_on(open_vault(&config, &store))?;
    let replay_vault = vault.clone();
    let flow_vault = vault.clone();
    let accounts =
        Arc::new(control.block_on(Accounts::open(&config.accounts.file, store.clone()))?);
    info!(accounts = accounts.snapshot().len(), file = %config.accounts.file.display(), "account map loaded");
    let exe =
        std::env::current_exe().map_err(|e| ServeError::Start(format!("own executable: {e}")))?;
    let rotator = Rotator {
        exe,
        journal_dir: rotation_journal_dir(&config),
        timeout: config.ups.token_timeout,
        pins: config.ups.pins(),
        shared: match &config.store.backend {
            StoreBackend::Postgres(pg) => Some((**pg).clone()),
            StoreBackend::Sled => None,
        },
    };
    let names: Vec<String> = accounts
        .snapshot()
        .iter()
        .map(|a| a.name().to_string())
        .collect();
    control.block_on(rotator.import(&vault, &store, &names))?;
    let broker = TokenBroker::new(
        &config.ups,
        control.handle().clone(),
        store.clone(),
        vault,
        rotator,
    )
    .map_err(|e| ServeError::Start(format!("HTTP client for UPS OAuth: {e}")))?;
    {
        let _in_runtime = control.enter();
        crate::accounts::watch::spawn(
            accounts.clone(),
            broker.clone(),
            config.accounts.file.clone(),
        );
    }
    let metrics = Arc::new(Metrics::new());
    metrics.register(Box::new(broker.counters().requests.clone()));
    metrics.register(Box::new(broker.counters().failures.clone()));
    metrics.register(Box::new(crate::accounts::MapMetrics::new(accounts.clone())));
    for collector in store.metrics().collectors() {
        metrics.register(collector);
    }

    let tls_port = config
        .proxy
        .tls_listen
        .map(PortReservation::take)
        .transpose()?;
    let tls_addr = tls_port.as_ref().map(|p| p.addr);
    // TLS (the listener, CONNECT tunnels): the certificates must be there before we listen.
    let certificates = if tls_addr.is_some() || config.proxy.connect_proxy {
        let certs = Certificates::load(&config.tls)?;
        control.spawn(certs.clone().keep_fresh(std::time::Duration::from_secs(2)));
        Some(certs)
    } else {
        None
    };
    let own: Vec<SocketAddr> = std::iter::once(proxy_addr).chain(tls_addr).collect();
    let upstreams = Arc::new(Upstreams::new(&config.ups, &own)?);
    for resolving in upstreams.keep_resolving() {
        control.spawn(resolving);
    }
    let admin_listener = control
        .block_on(tokio::net::TcpListener::bind(config.admin.listen))
        .map_err(|source| ServeError::Listen {
            addr: config.admin.listen,
            source,
        })?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|e| ServeError::Start(e.to_string()))?;
    let onboarding = Arc::new(Onboarding::new(
        &config.ups,
        config.redirect_uri(admin_addr),
        store.clone(),
        flow_vault,
    ));
    let redirect = config.redirect_uri(admin_addr);
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()];
    if !admin_addr.ip().is_unspecified() {
        hosts.push(match admin_addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        });
    }
    hosts.extend(redirect.host_str().map(str::to_string));
    hosts.extend(config.admin.hosts.iter().cloned());
    if config.admin.password_hash.is_none() {
        tracing::warn!("no [admin] password_hash: the admin listener answers only /healthz and /readyz until one is set (printf '%s' PASSWORD | upsbridge accounts hash-password)");
    }
    let state = AdminState {
        accounts: accounts.clone(),
        store: store.clone(),
        store_probe: Arc::new(admin::ready::StoreProbe::new(store.clone())),
        broker: broker.clone(),
        metrics: metrics.clone(),
        onboarding,
        negotiated_threshold: config.ups.negotiated_missing_threshold,
        map_writable: config.admin.map_writable,
        ups: Arc::new(config.ups.clone()),
        auth: Arc::new(admin::auth::AdminAuth::new(
            config.admin.password_hash.clone(),
            hosts,
            config.admin.metrics_public,
        )),
    };
    let admin_slots = Arc::new(tokio::sync::Semaphore::new(config.admin.max_connections));
    let (admin_stop, admin_stopping) = tokio::sync::watch::channel(false);
    control.spawn(admin::serve(
        admin_listener,
        state,
        admin::Limits {
            header_read_timeout: config.admin.header_read_timeout,
            max_connections: config.admin.max_connections,
        },
        admin::Drain {
            slots: admin_slots.clone(),
            stop: admin_stopping,
        },
    ));

    let conf = ServerConf {
        threads: config.proxy.threads,
        // One single-threaded runtime per proxy thread (pingora places each accepted connection
        // on one at random): a connection never migrates, so its wakeups stay thread-local.
        work_stealing: false,
        // pingora wraps each accepted connection's handshake in a 60 s timeout. On its own
        // "fast" timer that starts a clock thread at the first connection which then ticks
        // every 10 ms for the life of the process, idle or not (100 wake-ups a second);
        // tokio's timer costs nothing until a handshake actually waits.
        fast_timeout_to_tokio_threshold_seconds: Some(0),
        grace_period_seconds: Some(config.proxy.shutdown_grace.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.proxy.shutdown_grace.as_secs().max(1)),
        // Per-process files so several instances (tests, blue/green) never collide.
        pid_file: std::env::temp_dir()
            .join(format!("upsbridge-{}.pid", std::process::id()))
            .display()
            .to_string(),
        upgrade_sock: std::env::temp_dir()
            .join(format!("upsbridge-{}.sock", std::process::id()))
            .display()
            .to_string(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let pipeline = Pipeline {
        accounts: accounts.clone(),
        tokens: Arc::new(broker),
        rest: upstreams.clone(),
        metrics,
        max_body_bytes: config.ups.max_body_bytes,
        digests: Arc::new(
            control.block_on(ShipDigests::open(store.clone(), config.ups.digest_ttl))?,
        ),
        replays: Arc::new(
            Replays::new(store.clone(), replay_vault, config.proxy.replay_window)
                .with_call_bound(config.ups.request_timeout),
        ),
        host_policy: config.ups.host_policy,
        default_env: config.ups.default_environment(),
    };
    let pipeline = Arc::new(pipeline);
    let limits = Limits {
        header_read_timeout: config.proxy.header_read_timeout,
        max_connections: config.proxy.max_connections,
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let tls_config = certificates
        .as_ref()
        .map(|c| c.server_config())
        .transpose()?;
    let connect_names: Arc<[String]> = crate::tls::connect_names(&config.tls).into();
    let plain = Entry {
        tls: None,
        connect: tls_config.clone().filter(|_| config.proxy.connect_proxy),
        connect_names: connect_names.clone(),
    };
    let listeners = [
        (Some(proxy_addr), plain, "upsbridge proxy"),
        (
            tls_addr,
            Entry {
                tls: tls_config.clone(),
                connect: None,
                connect_names,
            },
            "upsbridge tls",
        ),
    ];
    for (addr, entry, name) in listeners {
        let Some(addr) = addr else { continue };
        // hyper buffers each connection itself. pingora's default L4 read buffer in front of
        // it (64 KiB per connection) cost about 60 KB of RSS per client connection under load;
        // none at all cost 4-7 % more CPU per request (same-run A/B); 8 KiB costs neither
        // (docs/performance.md). The TLS listener keeps pingora's defaults: rustls reads
        // records in small pieces.
        let l4_buffer = if entry.tls.is_some() {
            L4BufferSettings::default()
        } else {
            L4BufferSettings {
                read: Some(8 * 1024),
                write: Some(0),
            }
        };
        let app = ProxyApp::new(
            pipeline.clone(),
            upstreams.clone(),
            limits,
            entry,
            slots.clone(),
        );
        let mut service = ListeningService::new(name.to_string(), app);
        let mut socket_options = TcpSocketOptions::default();
        socket_options.so_reuseport = Some(true); // beside the PortReservation
        service.add_listener(
            ListenerConfig::tcp(addr.to_string())
                .tcp_socket_options(socket_options)
                .l4_buffer(l4_buffer),
        );
        server.add_service(service);
    }

    info!(%proxy_addr, %admin_addr, tls = ?tls_addr, production = %config.ups.base_of(Environment::Production),
          cie = %config.ups.base_of(Environment::Cie), default_environment = %config.ups.default_environment(),
          host_policy = config.ups.host_policy.as_str(), "upsbridge starting");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "proxy listening on http://{proxy_addr}");
    let _ = writeln!(out, "admin listening on http://{admin_addr}");
    if let Some(addr) = tls_addr {
        let _ = writeln!(out, "tls listening on https://{addr}");
    }
    let _ = out.flush();
    drop(out);
    on_listening(proxy_addr, admin_addr);

    exit_once_drained(
        control.handle().clone(),
        server.watch_execution_phase(),
        [
            (slots, limits.max_connections),
            (admin_slots, config.admin.max_connections),
        ],
        admin_stop,
        store.clone(),
    );
    server.run(RunArgs::default());
    drop(proxy_port);
    drop(tls_port);

    control.block_on(flush_store(&store));
    control.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(())
}

/// The last of `serve`: the store's pending writes reach the disk.
async fn flush_store(store: &Store) {
    info!("shutting down: flushing the store");
    if let Err(e) = store.flush().await {
        error!(error = %e, "store flush at shutdown failed");
    }
}

/// Ends the process as soon as every client connection, the proxy's and the admin
/// listener's, has closed after SIGTERM (or a graceful upgrade's hand-over), as `serve` would
/// at the grace period's end.
///
/// Why: pingora sleeps out the whole grace period (`grace_period_seconds`) even with nothing
/// in flight, so `systemctl stop` took `shutdown_grace_secs` (10 s) on an idle proxy. Each
/// gate is a semaphore and its size: every open proxy connection (TLS and tunnels included)
/// holds a permit of the first, every open admin connection one of the second. When the
/// period starts, pingora has closed the proxy's listeners and asked its connections to
/// finish; `admin_stop` does the same for the admin listener (the control runtime it runs on
/// would otherwise live on, and a save or an OAuth callback in progress be cut). Holding all
/// the permits means nothing is in flight. Whatever is still open at the period's end is
/// left to pingora and `serve`, which end it as before; this thread then stands down.
fn exit_once_drained<const N: usize>(
    control: tokio::runtime::Handle,
    mut phases: tokio::sync::broadcast::Receiver<ExecutionPhase>,
    gates: [(Arc<tokio::sync::Semaphore>, usize); N],
    admin_stop: tokio::sync::watch::Sender<bool>,
    store: Store,
) {
    use tokio::sync::broadcast::error::RecvError;
    let no_watcher = "no drain watcher: SIGTERM waits out the whole grace period";
    // `acquire_many` counts in u32: a gate larger than that cannot be taken whole.
    let Ok(gates) = gates
        .into_iter()
        .map(|(gate, size)| u32::try_from(size).map(|all| (gate, all)))
        .collect::<Result<Vec<_>, _>>()
    else {
        warn!("{no_watcher}: max_connections is above 4,294,967,295");
        return;
    };
    let drain = move || {
        control.block_on(async move {
            loop {
                match phases.recv().await {
                    Ok(ExecutionPhase::ShutdownGracePeriod) => break,
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    // The server is gone without a grace period (SIGINT): serve finishes.
                    Err(RecvError::Closed) => return,
                }
            }
            let _ = admin_stop.send(true);
            let drained = async {
                let mut held = Vec::with_capacity(gates.len());
                for (gate, all) in &gates {
                    held.push(gate.acquire_many(*all).await);
                }
                held
            };
            // Kept until the exit: nothing new starts meanwhile.
            let _held = tokio::select! {
                biased;
                // The period is over: pingora is ending what is left, and serve finishes.
                _ = phases.recv() => return,
                held = drained => held,
            };
            info!(
                "shutting down: every client connection has closed, before the grace period's end"
            );
            flush_store(&store).await;
            crate::logbuf::flush();
            std::process::exit(0);
        })
    };
    if let Err(e) = std::thread::Builder::new()
        .name("upsbridge-drain".into())
        .spawn(drain)
    {
        warn!(error = %e, "{no_watcher}");
    }
}

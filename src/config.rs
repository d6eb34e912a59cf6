//! The TOML config file, validated once into typed structs.
//!
//! Nothing outside this module sees raw TOML: `Config::load` turns the file into
//! [`Config`] or into a [`ConfigError`] that names `FILE:LINE` and what to fix.
//! Unknown keys are errors (a typo must not silently fall back to a default).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

/// A problem with the config file; `Display` is the message ops read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config file: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: String,
        line: usize,
        message: String,
    },
}

/// The validated configuration of one `upsbridge serve` process.
#[derive(Debug, Clone)]
pub struct Config {
    pub proxy: ProxyConfig,
    pub admin: AdminConfig,
    pub store: StoreConfig,
    pub accounts: AccountsConfig,
    pub ups: UpsConfig,
    pub tls: TlsConfig,
}

/// The TLS listener's certificates (`upsbridge tls init` writes them).
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// `ca.pem`, `ca.key`, `leaf.pem`, `leaf.key`, and `certs/NAME.pem` + `certs/NAME.key`
    /// for extra certificates chosen by SNI.
    pub dir: PathBuf,
    /// Lifetime of a leaf `tls init` or the renewal issues.
    pub leaf_validity: Duration,
    /// `serve` renews the leaf (when the CA key is here) this long before it expires.
    pub renew_before: Duration,
}

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where legacy clients connect (port 0 = pick a free one).
    pub listen: SocketAddr,
    /// Proxy worker threads.
    pub threads: usize,
    /// How long SIGTERM waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// How long an answer a client was gone for is kept for its retry.
    pub replay_window: Duration,
    /// A request head (or a kept-alive connection's next one) within this, else closed.
    pub header_read_timeout: Duration,
    /// Client connections at once; more are closed at accept.
    pub max_connections: usize,
    /// A TLS listener, for programs that call `https://onlinetools.ups.com` itself.
    pub tls_listen: Option<SocketAddr>,
    /// Accept `CONNECT onlinetools.ups.com:443` (and the CIE host) on the plain listener,
    /// for programs that honour `HTTPS_PROXY`.
    pub connect_proxy: bool,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// argon2 hash of the admin password; without it only /healthz and /readyz answer.
    pub password_hash: Option<String>,
    /// Extra host names the admin listener is reached by (behind a reverse proxy).
    pub hosts: Vec<String>,
    /// Serve /metrics without the admin password.
    pub metrics_public: bool,
    /// May the New-account form write the map file? `None`: when the file is writable.
    pub map_writable: Option<bool>,
    /// A request head (or a kept-alive connection's next one) within this, else closed.
    pub header_read_timeout: Duration,
    /// Admin connections at once.
    pub max_connections: usize,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Where the store lives: sled (one process) or PostgreSQL (several instances).
    pub backend: StoreBackend,
    /// The sled directory; whatever the backend, the rotation journal (`<path>.rotation`)
    /// and the default key file (`<path>.key`) sit beside it.
    pub path: PathBuf,
    /// The AEAD key for tokens at rest (the same for both backends).
    pub key_file: PathBuf,
}

/// `[store] backend`.
#[derive(Debug, Clone)]
pub enum StoreBackend {
    Sled,
    Postgres(Box<PostgresConfig>),
}

/// `[store] backend = "postgres"`: how to reach the database. `Debug` never shows a password
/// (tokio-postgres redacts one the URL carries).
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// `[store] url`, parsed (what `tokio_postgres::Config::from_str` accepts).
    pub connect: tokio_postgres::Config,
    /// `[store] url` as written (it may hold a password: secret), for the rotation helper,
    /// which opens the store itself.
    pub url: secrecy::SecretString,
    /// `[store] password_file`; `UPSBRIDGE_STORE_PASSWORD` overrides it, and either
    /// overrides a password in the URL.
    pub password_file: Option<PathBuf>,
    pub tls: PostgresTls,
    /// Bound on every store operation (pool wait, connect, query): a dead database is an
    /// error after this, never a hang.
    pub timeout: Duration,
    /// `[store] instance`: this upsbridge's name among those sharing the database (on the
    /// ops page, in lease holders and per-instance map records). Default: host name and
    /// proxy port ([`Config::instance_name`]).
    pub instance: Option<String>,
}

/// `[store] tls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostgresTls {
    Disable,
    /// TLS with the server's certificate checked against the web PKI roots and, when
    /// given, `[store] ca_file`.
    Require {
        ca_file: Option<PathBuf>,
    },
}

impl From<PostgresConfig> for StoreBackend {
    fn from(p: PostgresConfig) -> StoreBackend {
        StoreBackend::Postgres(Box::new(p))
    }
}

impl PostgresConfig {
    /// The database as messages name it: hosts, ports and database, never a password.
    pub fn target(&self) -> String {
        describe_postgres(&self.connect)
    }
}

/// A PostgreSQL URL as tokio-postgres reads it (`postgres://USER@HOST:PORT/DB`, a unix
/// socket as `postgres://USER@%2Fsocket%2Fdir/DB`, or `host=/dir user=USER dbname=DB`).
/// The error says why in words and never quotes the text (it may hold a password).
pub fn parse_postgres_url(text: &str) -> Result<tokio_postgres::Config, String> {
    let connect = text.parse::<tokio_postgres::Config>().map_err(|e| {
        format!("is not a PostgreSQL URL (postgres://USER@HOST:PORT/DB, postgres://USER@%2Fsocket%2Fdir/DB or host=/dir user=USER dbname=DB): {e}")
    })?;
    if connect.get_user().is_none() {
        return Err("names no user: postgres://USER@HOST:PORT/DB".into());
    }
    Ok(connect)
}

/// `HOST:PORT/DB` (or `unix socket DIR:PORT/DB`) of a PostgreSQL connection config.
pub fn describe_postgres(c: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let ports = c.get_ports();
    let hosts: Vec<String> = c
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match h {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(dir) => format!("unix socket {}:{port}", dir.display()),
            }
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost:5432".to_string()
    } else {
        hosts.join(",")
    };
    let db = c.get_dbname().or(c.get_user()).unwrap_or("?");
    format!("{hosts}/{db}")
}

#[derive(Debug, Clone)]
pub struct AccountsConfig {
    /// The account map file ops edit.
    pub file: PathBuf,
}

#[derive(Debug, Clone)]
pub struct UpsConfig {
    /// `https://onlinetools.ups.com`, `https://wwwcie.ups.com` or a simulator's `http://…`.
    pub base_url: Url,
    /// Where UPS sends the account owner back after authorizing.
    pub redirect_uri: Option<Url>,
    /// TCP (+TLS) connect timeout to UPS.
    pub connect_timeout: Duration,
    /// Whole-answer timeout for one UPS API call.
    pub request_timeout: Duration,
    /// Timeout for one token request.
    pub token_timeout: Duration,
    /// Renew a token this long before it expires (capped at half its lifetime).
    pub token_refresh_margin: Duration,
    /// After a failed token request, answer from the failure this long before asking UPS again.
    pub token_failure_backoff: Duration,
    /// Largest request body accepted from a legacy client.
    pub max_body_bytes: usize,
    /// How long an old-XML ShipConfirm digest can be accepted.
    pub digest_ttl: Duration,
    /// Rate/ship answers in a row without asked-for negotiated rates before the ops page
    /// diagnoses an unverified shipper account.
    pub negotiated_missing_threshold: u32,
    /// Addresses pinned per host name (lower case), like `curl --resolve`: UPS is reached
    /// there whatever DNS or a hosts file says (needed when the UPS names point at upsbridge).
    pub resolve: std::collections::BTreeMap<String, Vec<std::net::IpAddr>>,
    /// Where CIE accounts' calls go when that is not where `base_url` points.
    pub cie_url: Option<Url>,
    /// Where production accounts' calls go when that is not where `base_url` points.
    pub production_url: Option<Url>,
    /// What wins when the UPS host a client called disagrees with its account's environment.
    pub host_policy: HostPolicy,
}

/// One of UPS's two worlds: each has its own API host and its own OAuth server, and a
/// token of one is worthless on the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    Production,
    Cie,
}

impl Environment {
    pub const ALL: [Environment; 2] = [Environment::Production, Environment::Cie];

    /// UPS's host name for this environment.
    pub fn ups_host(self) -> &'static str {
        match self {
            Environment::Production => "onlinetools.ups.com",
            Environment::Cie => "wwwcie.ups.com",
        }
    }

    /// The environment a UPS host name belongs to (`None`: not a UPS name).
    pub fn of_host(host: &str) -> Option<Environment> {
        let host = host.trim_end_matches('.');
        Environment::ALL
            .into_iter()
            .find(|e| host.eq_ignore_ascii_case(e.ups_host()))
    }

    /// Its place in a per-environment array (in `ALL`'s order).
    pub fn index(self) -> usize {
        self as usize
    }

    /// `production` or `cie`, as the account map spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Production => "production",
            Environment::Cie => "cie",
        }
    }

    pub fn parse(text: &str) -> Option<Environment> {
        Environment::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[ups] host_policy`: a client that called `wwwcie.ups.com` with a production account's
/// credentials (or the other way round) goes where its account says (`account`) or where
/// it called (`client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostPolicy {
    #[default]
    Account,
    Client,
}

impl HostPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            HostPolicy::Account => "account",
            HostPolicy::Client => "client",
        }
    }
}

impl UpsConfig {
    /// `host:port` to connect to and whether it is TLS.
    pub fn authority(&self) -> (String, u16, bool) {
        let tls = self.base_url.scheme() == "https";
        let host = self.base_url.host_str().unwrap_or_default().to_string();
        let port = self
            .base_url
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        (host, port, tls)
    }

    /// `[ups] resolve` as (host, addresses) for an HTTP client's DNS override (port 0: the
    /// URL's port is used).
    pub fn pins(&self) -> Vec<(String, Vec<SocketAddr>)> {
        self.resolve
            .iter()
            .map(|(h, ips)| {
                (
                    h.clone(),
                    ips.iter().map(|ip| SocketAddr::new(*ip, 0)).collect(),
                )
            })
            .collect()
    }

    /// A URL under the configured UPS base, e.g. `/security/v1/oauth/token`.
    pub fn url(&self, path: &str) -> Url {
        join(&self.base_url, path)
    }

    /// The environment of accounts whose map entry names none: the one `base_url` is
    /// (production for a simulator or any other host).
    pub fn default_environment(&self) -> Environment {
        self.base_url
            .host_str()
            .and_then(Environment::of_host)
            .unwrap_or(Environment::Production)
    }

    /// Where an environment's API and OAuth server are: `cie_url`/`production_url` when
    /// set; else `base_url` for the default environment, and for the other one UPS's own
    /// host when `base_url` is UPS, or `base_url` again when it is not (a simulator).
    pub fn base_of(&self, env: Environment) -> &Url {
        let set = match env {
            Environment::Production => self.production_url.as_ref(),
            Environment::Cie => self.cie_url.as_ref(),
        };
        if let Some(url) = set {
            return url;
        }
        if env == self.default_environment() {
            return &self.base_url;
        }
        static UPS: std::sync::OnceLock<[Url; 2]> = std::sync::OnceLock::new();
        let [production, cie] = UPS.get_or_init(|| {
            Environment::ALL
                .map(|e| Url::parse(&format!("https://{}", e.ups_host())).expect("static url"))
        });
        match self.base_url.host_str().and_then(Environment::of_host) {
            Some(_) if env == Environment::Production => production,
            Some(_) => cie,
            None => &self.base_url,
        }
    }

    /// A URL under an environment's base.
    pub fn url_in(&self, env: Environment, path: &str) -> Url {
        join(self.base_of(env), path)
    }
}

fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = url.path().trim_end_matches('/').to_string();
    url.set_path(&format!("{prefix}{path}"));
    url
}

impl Default for UpsConfig {
    fn default() -> Self {
        UpsConfig {
            base_url: Url::parse("https://wwwcie.ups.com").expect("static url"),
            redirect_uri: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            token_timeout: Duration::from_secs(10),
            token_refresh_margin: Duration::from_secs(300),
            token_failure_backoff: Duration::from_secs(1),
            max_body_bytes: 10 * 1024 * 1024,
            digest_ttl: Duration::from_secs(24 * 3600),
            negotiated_missing_threshold: 3,
            resolve: Default::default(),
            cie_url: None,
            production_url: None,
            host_policy: HostPolicy::Account,
        }
    }
}

// ---- raw TOML shapes (private) -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    proxy: RawProxy,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    store: RawStore,
    accounts: RawAccounts,
    ups: RawUps,
    #[serde(default)]
    tls: RawTls,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    listen: Option<toml::Spanned<String>>,
    threads: Option<usize>,
    shutdown_grace_secs: Option<u64>,
    replay_window_secs: Option<u64>,
    header_read_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    tls_listen: Option<toml::Spanned<String>>,
    #[serde(default)]
    connect_proxy: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTls {
    dir: Option<String>,
    leaf_validity_days: Option<u64>,
    /// Seconds; for tests of the renewal (not in the README).
    leaf_validity_secs: Option<u64>,
    renew_before_days: Option<u64>,
    renew_before_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<toml::Spanned<String>>,
    password_hash: Option<toml::Spanned<String>>,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    metrics_public: bool,
    map_writable: Option<bool>,
    header_read_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    backend: Option<toml::Spanned<String>>,
    path: Option<String>,
    key_file: Option<String>,
    url: Option<toml::Spanned<String>>,
    password_file: Option<toml::Spanned<String>>,
    tls: Option<toml::Spanned<String>>,
    ca_file: Option<toml::Spanned<String>>,
    timeout_ms: Option<toml::Spanned<u64>>,
    instance: Option<toml::Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccounts {
    file: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUps {
    base_url: toml::Spanned<String>,
    redirect_uri: Option<toml::Spanned<String>>,
    connect_timeout_ms: Option<u64>,
    request_timeout_ms: Option<u64>,
    token_timeout_ms: Option<u64>,
    token_refresh_margin_secs: Option<u64>,
    token_failure_backoff_ms: Option<u64>,
    max_body_bytes: Option<usize>,
    digest_ttl_secs: Option<u64>,
    negotiated_missing_threshold: Option<u32>,
    #[serde(default)]
    resolve: std::collections::BTreeMap<String, Vec<toml::Spanned<String>>>,
    cie_url: Option<toml::Spanned<String>>,
    production_url: Option<toml::Spanned<String>>,
    host_policy: Option<toml::Spanned<String>>,
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl Config {
    /// This instance's name among those sharing a PostgreSQL store: `[store] instance`, or
    /// the host name and the proxy port it listens on (stable across restarts of the same
    /// instance).
    pub fn instance_name(&self, proxy_port: u16) -> String {
        if let StoreBackend::Postgres(pg) = &self.store.backend {
            if let Some(name) = &pg.instance {
                return name.clone();
            }
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        format!("{host}:{proxy_port}")
    }

    /// Read and validate a config file. Relative paths inside it are relative to its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, &path.display().to_string(), dir)
    }

    /// Validate config text; `name` is used in messages, `dir` anchors relative paths.
    pub fn parse(text: &str, name: &str, dir: &Path) -> Result<Config, ConfigError> {
        let invalid = |offset: usize, message: String| ConfigError::Invalid {
            path: name.to_string(),
            line: line_of(text, offset),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            invalid(offset, e.message().to_string())
        })?;

        let addr = |field: &Option<toml::Spanned<String>>, default: &str, what: &str| match field {
            None => Ok(default.parse().expect("static default address")),
            Some(s) => s.get_ref().parse::<SocketAddr>().map_err(|_| {
                invalid(
                    s.span().start,
                    format!("{what}: `{}` is not an IP:PORT address", s.get_ref()),
                )
            }),
        };
        let resolve = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            }
        };

        let proxy = ProxyConfig {
            listen: addr(&raw.proxy.listen, "127.0.0.1:8080", "proxy.listen")?,
            threads: raw.proxy.threads.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
            }),
            shutdown_grace: Duration::from_secs(raw.proxy.shutdown_grace_secs.unwrap_or(10)),
            replay_window: Duration::from_secs(raw.proxy.replay_window_secs.unwrap_or(600).max(1)),
            // Legacy clients pool connections for up to a minute or two (.NET: 100 s idle);
            // closing an idle one sooner only costs them a reconnect.
            header_read_timeout: Duration::from_secs(
                raw.proxy.header_read_timeout_secs.unwrap_or(30).max(1),
            ),
            max_connections: raw.proxy.max_connections.unwrap_or(4096).max(1),
            tls_listen: match &raw.proxy.tls_listen {
                None => None,
                Some(_) => Some(addr(
                    &raw.proxy.tls_listen,
                    "127.0.0.1:443",
                    "proxy.tls_listen",
                )?),
            },
            connect_proxy: raw.proxy.connect_proxy,
        };
        if proxy.threads == 0 {
            return Err(invalid(0, "proxy.threads must be at least 1".into()));
        }
        let password_hash = match &raw.admin.password_hash {
            None => None,
            Some(h) => {
                crate::accounts::password::check_hash(h.get_ref()).map_err(|why| {
                    invalid(
                        h.span().start,
                        format!("admin.password_hash {why}; make one with `printf '%s' PASSWORD | upsbridge accounts hash-password`"),
                    )
                })?;
                Some(h.get_ref().clone())
            }
        };
        let admin = AdminConfig {
            listen: addr(&raw.admin.listen, "127.0.0.1:9090", "admin.listen")?,
            password_hash,
            hosts: raw.admin.hosts.clone(),
            metrics_public: raw.admin.metrics_public,
            map_writable: raw.admin.map_writable,
            header_read_timeout: Duration::from_secs(
                raw.admin.header_read_timeout_secs.unwrap_or(10).max(1),
            ),
            max_connections: raw.admin.max_connections.unwrap_or(64).max(1),
        };
        let store_path = resolve(raw.store.path.as_deref().unwrap_or("data/upsbridge.sled"));
        let key_file = match &raw.store.key_file {
            Some(k) => resolve(k),
            None => PathBuf::from(format!("{}.key", store_path.display())),
        };
        let backend = match raw
            .store
            .backend
            .as_ref()
            .map(|b| (b.get_ref().as_str(), b))
        {
            None | Some(("sled", _)) => {
                let postgres_only = [
                    raw.store.url.as_ref().map(|v| ("url", v.span().start)),
                    raw.store
                        .password_file
                        .as_ref()
                        .map(|v| ("password_file", v.span().start)),
                    raw.store.tls.as_ref().map(|v| ("tls", v.span().start)),
                    raw.store
                        .ca_file
                        .as_ref()
                        .map(|v| ("ca_file", v.span().start)),
                    raw.store
                        .timeout_ms
                        .as_ref()
                        .map(|v| ("timeout_ms", v.span().start)),
                ];
                if let Some((key, at)) = postgres_only.into_iter().flatten().next() {
                    return Err(invalid(
                        at,
                        format!("store.{key} is for backend = \"postgres\", but the backend is sled; add backend = \"postgres\" or remove {key}"),
                    ));
                }
                StoreBackend::Sled
            }
            Some(("postgres", b)) => {
                let url = raw.store.url.as_ref().ok_or_else(|| {
                    invalid(
                        b.span().start,
                        "store.backend = \"postgres\" needs store.url, e.g. url = \"postgres://upsbridge@db.example.com:5432/upsbridge\"".into(),
                    )
                })?;
                let connect = parse_postgres_url(url.get_ref())
                    .map_err(|why| invalid(url.span().start, format!("store.url {why}")))?;
                let tls = match raw.store.tls.as_ref().map(|t| (t.get_ref().as_str(), t)) {
                    None | Some(("disable", _)) => {
                        if let Some(ca) = &raw.store.ca_file {
                            return Err(invalid(
                                ca.span().start,
                                "store.ca_file needs tls = \"require\"".into(),
                            ));
                        }
                        PostgresTls::Disable
                    }
                    Some(("require", _)) => PostgresTls::Require {
                        ca_file: raw.store.ca_file.as_ref().map(|c| resolve(c.get_ref())),
                    },
                    Some((other, t)) => {
                        return Err(invalid(
                            t.span().start,
                            format!("store.tls: `{other}` is neither `disable` nor `require`"),
                        ))
                    }
                };
                PostgresConfig {
                    connect,
                    url: url.get_ref().clone().into(),
                    password_file: raw
                        .store
                        .password_file
                        .as_ref()
                        .map(|p| resolve(p.get_ref())),
                    tls,
                    instance: raw.store.instance.as_ref().map(|i| i.get_ref().clone()),
                    timeout: Duration::from_millis(
                        raw.store
                            .timeout_ms
                            .as_ref()
                            .map_or(2000, |t| *t.get_ref())
                            .max(1),
                    ),
                }
                .into()
            }
            Some((other, b)) => {
                return Err(invalid(
                    b.span().start,
                    format!("store.backend: `{other}` is neither `sled` nor `postgres`"),
                ))
            }
        };
        let store = StoreConfig {
            backend,
            path: store_path,
            key_file,
        };
        let accounts = AccountsConfig {
            file: resolve(&raw.accounts.file),
        };

        let ups_url = |key: &str, text: &toml::Spanned<String>| {
            Url::parse(text.get_ref())
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                .ok_or_else(|| {
                    invalid(
                        text.span().start,
                        format!(
                            "ups.{key}: `{}` is not an http(s) URL such as https://onlinetools.ups.com",
                            text.get_ref()
                        ),
                    )
                })
        };
        let base_url = ups_url("base_url", &raw.ups.base_url)?;
        let cie_url = raw
            .ups
            .cie_url
            .as_ref()
            .map(|u| ups_url("cie_url", u))
            .transpose()?;
        let production_url = raw
            .ups
            .production_url
            .as_ref()
            .map(|u| ups_url("production_url", u))
            .transpose()?;
        let host_policy = match raw.ups.host_policy.as_ref() {
            None => HostPolicy::Account,
            Some(p) => match p.get_ref().as_str() {
                "account" => HostPolicy::Account,
                "client" => HostPolicy::Client,
                other => {
                    return Err(invalid(
                        p.span().start,
                        format!("ups.host_policy: `{other}` is neither `account` nor `client`"),
                    ))
                }
            },
        };
        let redirect_uri = match &raw.ups.redirect_uri {
            None => None,
            Some(s) => Some(Url::parse(s.get_ref()).map_err(|_| {
                invalid(
                    s.span().start,
                    format!("ups.redirect_uri: `{}` is not a URL", s.get_ref()),
                )
            })?),
        };
        let mut pins = std::collections::BTreeMap::new();
        for (host, ips) in &raw.ups.resolve {
            let mut addrs = Vec::new();
            for ip in ips {
                addrs.push(ip.get_ref().parse::<std::net::IpAddr>().map_err(|_| {
                    invalid(
                        ip.span().start,
                        format!(
                            "ups.resolve.\"{host}\": `{}` is not an IP address",
                            ip.get_ref()
                        ),
                    )
                })?);
            }
            if addrs.is_empty() {
                return Err(invalid(
                    0,
                    format!("ups.resolve.\"{host}\" lists no address"),
                ));
            }
            pins.insert(host.to_ascii_lowercase(), addrs);
        }
        let tls = TlsConfig {
            dir: resolve(raw.tls.dir.as_deref().unwrap_or("tls")),
            leaf_validity: match (raw.tls.leaf_validity_secs, raw.tls.leaf_validity_days) {
                (Some(s), _) => Duration::from_secs(s.max(60)),
                (None, d) => Duration::from_secs(d.unwrap_or(90).max(1) * 86400),
            },
            renew_before: match (raw.tls.renew_before_secs, raw.tls.renew_before_days) {
                (Some(s), _) => Duration::from_secs(s),
                (None, d) => Duration::from_secs(d.unwrap_or(30) * 86400),
            },
        };
        let d = UpsConfig::default();
        let ms =
            |v: Option<u64>, default: Duration| v.map(Duration::from_millis).unwrap_or(default);
        let ups = UpsConfig {
            base_url,
            redirect_uri,
            connect_timeout: ms(raw.ups.connect_timeout_ms, d.connect_timeout),
            request_timeout: ms(raw.ups.request_timeout_ms, d.request_timeout),
            token_timeout: ms(raw.ups.token_timeout_ms, d.token_timeout),
            token_refresh_margin: raw
                .ups
                .token_refresh_margin_secs
                .map(Duration::from_secs)
                .unwrap_or(d.token_refresh_margin),
            token_failure_backoff: ms(raw.ups.token_failure_backoff_ms, d.token_failure_backoff),
            max_body_bytes: raw.ups.max_body_bytes.unwrap_or(d.max_body_bytes),
            digest_ttl: raw
                .ups
                .digest_ttl_secs
                .map(|s| Duration::from_secs(s.max(1)))
                .unwrap_or(d.digest_ttl),
            negotiated_missing_threshold: raw
                .ups
                .negotiated_missing_threshold
                .unwrap_or(d.negotiated_missing_threshold)
                .max(1),
            resolve: pins,
            cie_url,
            production_url,
            host_policy,
        };
        Ok(Config {
            proxy,
            admin,
            store,
            accounts,
            ups,
            tls,
        })
    }

    /// The OAuth redirect URI: configured, or the admin listener's callback.
    pub fn redirect_uri(&self, admin_addr: SocketAddr) -> Url {
        self.ups.redirect_uri.clone().unwrap_or_else(|| {
            Url::parse(&format!("http://{admin_addr}/oauth/callback")).expect("valid callback url")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str =
        "[accounts]\nfile = \"accounts.toml\"\n[ups]\nbase_url = \"http://127.0.0.1:1\"\n";

    #[test]
    fn minimal_config_gets_defaults_and_relative_paths() {
        let c = Config::parse(MINIMAL, "t.toml", Path::new("/etc/ub")).unwrap();
        assert_eq!(c.accounts.file, PathBuf::from("/etc/ub/accounts.toml"));
        assert_eq!(c.store.path, PathBuf::from("/etc/ub/data/upsbridge.sled"));
        assert_eq!(
            c.store.key_file,
            PathBuf::from("/etc/ub/data/upsbridge.sled.key")
        );
        assert_eq!(c.ups.max_body_bytes, 10 * 1024 * 1024);
        assert_eq!(c.ups.authority(), ("127.0.0.1".into(), 1, false));
    }

    #[test]
    fn each_environment_has_a_base_and_the_default_follows_base_url() {
        let ups = |extra: &str, base: &str| {
            let text =
                format!("[accounts]\nfile = \"a.toml\"\n[ups]\nbase_url = \"{base}\"\n{extra}");
            Config::parse(&text, "t.toml", Path::new(".")).map(|c| c.ups)
        };
        let base = |u: &UpsConfig, e| u.base_of(e).as_str().trim_end_matches('/').to_string();
        // UPS itself: the other environment is UPS's other host.
        let u = ups("", "https://wwwcie.ups.com").unwrap();
        assert_eq!(u.default_environment(), Environment::Cie);
        assert_eq!(
            base(&u, Environment::Production),
            "https://onlinetools.ups.com"
        );
        assert_eq!(base(&u, Environment::Cie), "https://wwwcie.ups.com");
        assert_eq!(u.host_policy, HostPolicy::Account);
        // A simulator plays both, unless told otherwise.
        let u = ups("", "http://127.0.0.1:1").unwrap();
        assert_eq!(u.default_environment(), Environment::Production);
        assert_eq!(base(&u, Environment::Cie), "http://127.0.0.1:1");
        let u = ups(
            "cie_url = \"http://127.0.0.1:2\"\nhost_policy = \"client\"\n",
            "http://127.0.0.1:1",
        )
        .unwrap();
        assert_eq!(base(&u, Environment::Cie), "http://127.0.0.1:2");
        assert_eq!(base(&u, Environment::Production), "http://127.0.0.1:1");
        assert_eq!(u.host_policy, HostPolicy::Client);
        let e = ups("host_policy = \"sni\"\n", "http://127.0.0.1:1").unwrap_err();
        assert!(
            e.to_string().contains("neither `account` nor `client`"),
            "{e}"
        );
        let e = ups("cie_url = \"wwwcie\"\n", "http://127.0.0.1:1").unwrap_err();
        assert!(e.to_string().contains("ups.cie_url"), "{e}");
        assert_eq!(
            Environment::of_host("WWWCIE.ups.com."),
            Some(Environment::Cie)
        );
        assert_eq!(Environment::of_host("ups.com"), None);
    }

    #[test]
    fn unknown_key_is_reported_with_its_line() {
        let text = format!("{MINIMAL}[proxy]\nlisten = \"127.0.0.1:0\"\nthreadz = 4\n");
        let e = Config::parse(&text, "t.toml", Path::new(".")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("t.toml:7: "), "{msg}");
        assert!(msg.contains("threadz"), "{msg}");
    }

    #[test]
    fn the_store_is_sled_unless_postgres_is_asked_for() {
        let c = Config::parse(MINIMAL, "t.toml", Path::new("/etc/ub")).unwrap();
        assert!(matches!(c.store.backend, StoreBackend::Sled));
        let text = format!(
            "{MINIMAL}[store]\nbackend = \"postgres\"\nurl = \"postgres://ub@db.example.com:6432/upsbridge\"\npassword_file = \"pg.pw\"\ntls = \"require\"\nca_file = \"ca.pem\"\ntimeout_ms = 1500\n"
        );
        let c = Config::parse(&text, "t.toml", Path::new("/etc/ub")).unwrap();
        let StoreBackend::Postgres(pg) = &c.store.backend else {
            panic!("postgres")
        };
        assert_eq!(pg.target(), "db.example.com:6432/upsbridge");
        assert_eq!(pg.connect.get_user(), Some("ub"));
        assert_eq!(pg.password_file, Some(PathBuf::from("/etc/ub/pg.pw")));
        assert_eq!(
            pg.tls,
            PostgresTls::Require {
                ca_file: Some(PathBuf::from("/etc/ub/ca.pem"))
            }
        );
        assert_eq!(pg.timeout, Duration::from_millis(1500));
        // The journal and the key file stay beside [store] path, whatever the backend.
        assert_eq!(
            c.store.key_file,
            PathBuf::from("/etc/ub/data/upsbridge.sled.key")
        );
    }

    #[test]
    fn postgres_urls_of_every_form_tokio_postgres_reads_are_accepted() {
        let target = |url: &str| {
            let text = format!("{MINIMAL}[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n");
            match Config::parse(&text, "t.toml", Path::new(".")).map(|c| c.store.backend) {
                Ok(StoreBackend::Postgres(pg)) => {
                    assert_eq!(pg.timeout, Duration::from_secs(2));
                    assert_eq!(pg.tls, PostgresTls::Disable);
                    Ok(pg.target())
                }
                Ok(StoreBackend::Sled) => panic!("sled"),
                Err(e) => Err(e.to_string()),
            }
        };
        assert_eq!(
            target("postgres://ub@127.0.0.1:5433/ub").unwrap(),
            "127.0.0.1:5433/ub"
        );
        assert_eq!(
            target("postgres://ub@%2Ftmp%2Fpg/db").unwrap(),
            "unix socket /tmp/pg:5432/db"
        );
        assert_eq!(
            target("host=/run/postgresql port=5434 user=ub dbname=db").unwrap(),
            "unix socket /run/postgresql:5434/db"
        );
        let e = target("postgres://db.example.com/db").unwrap_err();
        assert!(e.starts_with("t.toml:7: store.url names no user"), "{e}");
        let e = target("postgres://ub@db:notaport/db").unwrap_err();
        assert!(
            e.starts_with("t.toml:7: store.url is not a PostgreSQL URL"),
            "{e}"
        );
    }

    #[test]
    fn a_password_in_the_url_is_accepted_but_never_shown() {
        let text = format!(
            "{MINIMAL}[store]\nbackend = \"postgres\"\nurl = \"postgres://ub:Sup3rSecret@db:5432/ub\"\n"
        );
        let c = Config::parse(&text, "t.toml", Path::new(".")).unwrap();
        let StoreBackend::Postgres(pg) = &c.store.backend else {
            panic!("postgres")
        };
        assert_eq!(pg.connect.get_password(), Some(&b"Sup3rSecret"[..]));
        for shown in [format!("{c:?}"), pg.target()] {
            assert!(!shown.contains("Sup3rSecret"), "{shown}");
        }
        // Nor in the error when the rest of the URL is wrong.
        let text = format!(
            "{MINIMAL}[store]\nbackend = \"postgres\"\nurl = \"postgres://ub:Sup3rSecret@db:99999/ub\"\n"
        );
        let e = Config::parse(&text, "t.toml", Path::new(".")).unwrap_err();
        assert!(!e.to_string().contains("Sup3rSecret"), "{e}");
    }

    #[test]
    fn store_mistakes_name_their_line() {
        let err = |store: &str| {
            let text = format!("{MINIMAL}[store]\n{store}");
            Config::parse(&text, "t.toml", Path::new("."))
                .unwrap_err()
                .to_string()
        };
        let e = err("backend = \"mysql\"\n");
        assert!(
            e.starts_with("t.toml:6: store.backend: `mysql` is neither"),
            "{e}"
        );
        let e = err("backend = \"postgres\"\n");
        assert!(
            e.starts_with("t.toml:6: store.backend = \"postgres\" needs store.url"),
            "{e}"
        );
        let e = err("path = \"s\"\nurl = \"postgres://ub@db/ub\"\n");
        assert!(
            e.starts_with("t.toml:7: store.url is for backend = \"postgres\""),
            "{e}"
        );
        let e = err("backend = \"postgres\"\nurl = \"postgres://ub@db/ub\"\ntls = \"prefer\"\n");
        assert!(
            e.starts_with("t.toml:8: store.tls: `prefer` is neither"),
            "{e}"
        );
        let e =
            err("backend = \"postgres\"\nurl = \"postgres://ub@db/ub\"\nca_file = \"ca.pem\"\n");
        assert!(
            e.starts_with("t.toml:8: store.ca_file needs tls = \"require\""),
            "{e}"
        );
    }

    #[test]
    fn bad_base_url_names_the_field() {
        let text = "[accounts]\nfile = \"a\"\n[ups]\nbase_url = \"ftp://x\"\n";
        let e = Config::parse(text, "t.toml", Path::new(".")).unwrap_err();
        assert!(e.to_string().starts_with("t.toml:4: ups.base_url"), "{e}");
    }
}

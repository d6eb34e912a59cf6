//! `upsbridge doctor`: the one command ops run after set-up. A checklist, one line per
//! item, with the fix for every line that failed; the exit status is non-zero when
//! something blocks traffic.
//!
//! It only reads and probes: it binds nothing it keeps, writes nothing, and never prints
//! a secret.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::config::Config;

/// How bad one line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Works now, needs attention.
    Warn,
    /// Blocks traffic.
    Fail,
}

/// One line of the checklist.
#[derive(Debug, Clone)]
pub struct Line {
    pub verdict: Verdict,
    pub item: String,
    /// What was found, and for anything not ok, what to do.
    pub detail: String,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = match self.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        };
        write!(f, "{tag}  {}: {}", self.item, self.detail)
    }
}

fn line(verdict: Verdict, item: impl Into<String>, detail: impl Into<String>) -> Line {
    Line {
        verdict,
        item: item.into(),
        detail: detail.into(),
    }
}

/// Run every check against the config at `path`.
pub fn run(path: &Path) -> Vec<Line> {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => return vec![line(Verdict::Fail, "config", format!("{e}; fix that line"))],
    };
    let mut out = vec![line(Verdict::Ok, "config", path.display().to_string())];
    out.push(match crate::accounts::load_map(&config.accounts.file) {
        Ok(a) => line(
            Verdict::Ok,
            "account map",
            format!("{}: {} accounts", config.accounts.file.display(), a.len()),
        ),
        Err(e) => line(
            Verdict::Fail,
            "account map",
            format!("{e}\n      fix each line above (`upsbridge accounts check FILE` lists them)"),
        ),
    });
    let running = admin_answers(&config);
    out.extend(listeners(&config, running));
    out.extend(tls(&config));
    out.extend(resolution(&config));
    out.extend(reachability_and_clock(&config));
    out.extend(accounts(&config, running));
    out
}

/// Does an upsbridge already answer on the configured admin address?
fn admin_answers(config: &Config) -> bool {
    if config.admin.listen.port() == 0 {
        return false;
    }
    std::net::TcpStream::connect_timeout(&config.admin.listen, Duration::from_secs(1)).is_ok()
}

fn listeners(config: &Config, running: bool) -> Vec<Line> {
    let mut addrs = vec![
        ("proxy listener", config.proxy.listen),
        ("admin listener", config.admin.listen),
    ];
    addrs.extend(config.proxy.tls_listen.map(|a| ("TLS listener", a)));
    addrs
        .into_iter()
        .map(|(item, addr)| match TcpListener::bind(addr) {
            Ok(_) => line(Verdict::Ok, item, format!("{addr} can be bound")),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && running => line(
                Verdict::Ok,
                item,
                format!("{addr} is in use, by the upsbridge that answers on the admin address"),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => line(
                Verdict::Fail,
                item,
                format!("{addr}: {e}; ports below 1024 need CAP_NET_BIND_SERVICE (AmbientCapabilities= in the systemd unit) or another port"),
            ),
            Err(e) => line(
                Verdict::Fail,
                item,
                format!("{addr}: {e}; stop what listens there or change the address"),
            ),
        })
        .collect()
}

fn tls(config: &Config) -> Vec<Line> {
    let wanted = config.proxy.tls_listen.is_some() || config.proxy.connect_proxy;
    if !wanted && !config.tls.dir.join("leaf.pem").exists() {
        return vec![line(
            Verdict::Ok,
            "TLS",
            "not configured (no tls_listen, no connect_proxy)",
        )];
    }
    let blocking = if wanted { Verdict::Fail } else { Verdict::Warn };
    let health = match crate::tls::health(&config.tls) {
        Ok(h) => h,
        Err(e) => {
            return vec![line(
                blocking,
                "TLS certificates",
                format!("{e}; run `upsbridge tls init --config FILE`"),
            )]
        }
    };
    let mut out = Vec::new();
    let now = SystemTime::now();
    let expiry = time::OffsetDateTime::from(health.leaf_not_after)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "?".into());
    out.push(match health.leaf_not_after.duration_since(now) {
        Err(_) => line(
            blocking,
            "TLS leaf",
            format!("expired on {expiry}; run `upsbridge tls init` (keeps the CA) or restore ca.key so serve renews it"),
        ),
        Ok(left) if left < config.tls.renew_before && !health.ca_key_present => line(
            Verdict::Warn,
            "TLS leaf",
            format!("expires on {expiry} and there is no ca.key to renew it; put ca.key back or install a new leaf"),
        ),
        Ok(left) => line(
            Verdict::Ok,
            "TLS leaf",
            format!("valid until {expiry} ({} days)", left.as_secs() / 86400),
        ),
    });
    out.push(if health.ca_key_present {
        line(Verdict::Ok, "TLS CA key", "present: serve renews the leaf before it expires")
    } else {
        line(
            Verdict::Warn,
            "TLS CA key",
            format!(
                "no ca.key in {}: the leaf cannot be renewed here; keep the CA key with upsbridge (0600)",
                config.tls.dir.display()
            ),
        )
    });
    for (name, verdict) in health.names {
        out.push(match verdict {
            Ok(()) => line(
                Verdict::Ok,
                format!("TLS name {name}"),
                "covered by the leaf, under the CA",
            ),
            Err(why) => line(
                blocking,
                format!("TLS name {name}"),
                format!("a client would refuse it ({why}); run `upsbridge tls init`"),
            ),
        });
    }
    out
}

/// How the UPS host resolves here, and whether that is upsbridge itself.
fn resolution(config: &Config) -> Vec<Line> {
    let (host, port, _) = config.ups.authority();
    if let Some(pins) = config.ups.resolve.get(&host.to_ascii_lowercase()) {
        let pins: Vec<String> = pins.iter().map(|p| p.to_string()).collect();
        return vec![line(
            Verdict::Ok,
            format!("UPS address of {host}"),
            format!("pinned by [ups] resolve to {}", pins.join(", ")),
        )];
    }
    let own: Vec<SocketAddr> = std::iter::once(config.proxy.listen)
        .chain(config.proxy.tls_listen)
        .collect();
    match (host.as_str(), port).to_socket_addrs() {
        Err(e) => vec![line(
            Verdict::Fail,
            format!("UPS address of {host}"),
            format!("does not resolve ({e}); check DNS, or pin it with [ups] resolve"),
        )],
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            match addrs.iter().find(|a| crate::proxy::upstream::is_own(a, &own)) {
                Some(a) => vec![line(
                    Verdict::Fail,
                    format!("UPS address of {host}"),
                    format!("resolves to {a}, upsbridge's own listener (hosts file or DNS points it here); pin UPS's real addresses: [ups] resolve = {{ \"{host}\" = [\"IP\"] }}"),
                )],
                None => vec![line(
                    Verdict::Ok,
                    format!("UPS address of {host}"),
                    format!("{} (not upsbridge itself)", shown.join(", ")),
                )],
            }
        }
    }
}

/// UPS answers over TLS from here, and this machine's clock agrees with UPS's.
fn reachability_and_clock(config: &Config) -> Vec<Line> {
    let url = config.ups.base_url.to_string();
    let probe = async {
        let http = crate::oauth::rotate::pinned(reqwest::Client::builder(), &config.ups.pins())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.ups.connect_timeout.max(Duration::from_secs(5)))
            .build()
            .map_err(|e| e.to_string())?;
        http.get(&url).send().await.map_err(|e| {
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why = format!("{why}: {s}");
                source = s.source();
            }
            why
        })
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return vec![line(Verdict::Fail, "UPS reachable", e.to_string())],
    };
    match rt.block_on(probe) {
        Err(why) => vec![line(
            Verdict::Fail,
            "UPS reachable",
            format!("{url}: {why}; check the network, the firewall (outbound 443) and any proxy between here and UPS"),
        )],
        Ok(r) => {
            let mut out = vec![line(
                Verdict::Ok,
                "UPS reachable",
                format!("{url} answered HTTP {}", r.status().as_u16()),
            )];
            let date = r
                .headers()
                .get(http::header::DATE)
                .and_then(|d| d.to_str().ok())
                .and_then(httpdate_to_system);
            out.push(match date {
                None => line(Verdict::Warn, "clock", "UPS sent no Date header to compare with"),
                Some(theirs) => {
                    let skew = match SystemTime::now().duration_since(theirs) {
                        Ok(d) => d,
                        Err(e) => e.duration(),
                    };
                    if skew > Duration::from_secs(60) {
                        line(
                            Verdict::Fail,
                            "clock",
                            format!("{} s off UPS's clock; token lifetimes and certificates depend on it: enable NTP (timedatectl set-ntp true)", skew.as_secs()),
                        )
                    } else {
                        line(Verdict::Ok, "clock", format!("within {} s of UPS's", skew.as_secs().max(1)))
                    }
                }
            });
            out
        }
    }
}

/// An HTTP date (`Sun, 29 Nov 2026 17:00:00 GMT`).
fn httpdate_to_system(s: &str) -> Option<SystemTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let t = time::PrimitiveDateTime::parse(s, format).ok()?.assume_utc();
    Some(SystemTime::from(t))
}

/// Each account's token: from the running server when there is one, else from the store.
fn accounts(config: &Config, running: bool) -> Vec<Line> {
    let sled = matches!(config.store.backend, crate::config::StoreBackend::Sled);
    if !running && sled && !config.store.path.exists() {
        return vec![line(
            Verdict::Warn,
            "accounts",
            format!(
                "no store at {} yet: start serve once (it imports the map), then run doctor again",
                config.store.path.display()
            ),
        )];
    }
    match crate::admin::list(config) {
        Err(e) => vec![line(Verdict::Warn, "accounts", e.to_string())],
        Ok(rows) if rows.is_empty() => vec![line(
            Verdict::Warn,
            "accounts",
            "no account imported yet: start serve once (it imports the map), then run doctor again",
        )],
        Ok(rows) => rows
            .iter()
            .map(|row| {
                let cols: Vec<&str> = row.split('\t').collect();
                let (name, state) = (cols[0], cols.get(3).copied().unwrap_or(""));
                let item = format!("account {name}");
                if state.starts_with("needs_authorization") {
                    line(
                        Verdict::Fail,
                        item,
                        format!("not authorized at UPS; its owner must log in once: ops page → Authorize, or `upsbridge accounts authorize {name}`"),
                    )
                } else if state.starts_with("valid") || state.starts_with("stored token") {
                    line(Verdict::Ok, item, state.to_string())
                } else {
                    line(
                        Verdict::Warn,
                        item,
                        format!("{state}; its token is fetched on first use: check client_id and the client secret if requests fail"),
                    )
                }
            })
            .collect(),
    }
}

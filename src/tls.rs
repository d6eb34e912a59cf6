//! TLS for programs that call `https://onlinetools.ups.com` (or the CIE host) themselves
//! and cannot be given another URL: upsbridge answers as those names with a leaf issued
//! by a private CA that only ops trust.
//!
//! Rules:
//! - The CA carries X.509 name constraints: UPS's two names and the names or IPs ops add
//!   at `tls init`, nothing else. IP addresses not listed are excluded outright (RFC 5280
//!   leaves a name type without a permitted subtree unconstrained). Trusting the CA can
//!   therefore not be abused to impersonate any other site.
//! - `tls init` never replaces an existing CA: someone may already trust it.
//! - The listener picks a certificate by SNI (`certs/NAME.pem` + `certs/NAME.key`, else
//!   the leaf), reloads when the files change and, when the CA key is present, renews the
//!   leaf before it expires; connections in progress keep their certificate.
//!
//! Files in `[tls] dir`: `ca.pem`, `ca.key` (0600), `names`, `leaf.pem` (leaf then CA),
//! `leaf.key` (0600), and optional `certs/`.

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tracing::{error, info, warn};

use crate::config::TlsConfig;

/// The names legacy programs have hard-coded.
pub const UPS_NAMES: [&str; 2] = ["onlinetools.ups.com", "wwwcie.ups.com"];

const CA_VALIDITY_DAYS: i64 = 3650;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {why}", path.display())]
    Invalid { path: PathBuf, why: String },
    #[error("issuing a certificate: {0}")]
    Issue(#[from] rcgen::Error),
    #[error("the CA in {} was made for {have}; `{name}` is outside its name constraints. Keep using the CA (drop --name {name}), or move ca.pem and ca.key away, run `tls init` again and have every client trust the new CA", dir.display())]
    OutsideCa {
        dir: PathBuf,
        have: String,
        name: String,
    },
    #[error("no certificate in {}: run `upsbridge tls init --config FILE` first", dir.display())]
    Missing { dir: PathBuf },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

struct Paths {
    ca_pem: PathBuf,
    ca_key: PathBuf,
    names: PathBuf,
    leaf_pem: PathBuf,
    leaf_key: PathBuf,
    certs: PathBuf,
}

impl Paths {
    fn of(dir: &Path) -> Paths {
        Paths {
            ca_pem: dir.join("ca.pem"),
            ca_key: dir.join("ca.key"),
            names: dir.join("names"),
            leaf_pem: dir.join("leaf.pem"),
            leaf_key: dir.join("leaf.key"),
            certs: dir.join("certs"),
        }
    }
}

/// `upsbridge tls init`: make the CA (unless there is one) and a leaf for its names.
/// Returns the CA certificate's path, for ops to hand to the clients' trust stores.
pub fn init(cfg: &TlsConfig, extra: &[String]) -> Result<PathBuf, TlsError> {
    let p = Paths::of(&cfg.dir);
    create_private_dir(&cfg.dir)?;
    let names = if p.ca_pem.exists() && p.ca_key.exists() {
        let names = read_names(&p)?;
        if let Some(outside) = extra
            .iter()
            .map(|n| n.trim().to_ascii_lowercase())
            .find(|n| !names.contains(n))
        {
            return Err(TlsError::OutsideCa {
                dir: cfg.dir.clone(),
                have: names.join(", "),
                name: outside,
            });
        }
        info!(ca = %p.ca_pem.display(), "keeping the existing CA (clients may already trust it)");
        names
    } else {
        let mut names: Vec<String> = UPS_NAMES.iter().map(|n| n.to_string()).collect();
        for n in extra {
            let n = n.trim().to_ascii_lowercase();
            if !n.is_empty() && !names.contains(&n) {
                names.push(n);
            }
        }
        make_ca(&p, &names)?;
        names
    };
    issue_leaf(cfg, &p, &names)?;
    Ok(p.ca_pem)
}

/// The host names a CONNECT may name: UPS's, and the DNS names the CA was made for.
pub fn connect_names(cfg: &TlsConfig) -> Vec<String> {
    let mut names: Vec<String> = UPS_NAMES.iter().map(|n| n.to_string()).collect();
    if let Ok(more) = read_names(&Paths::of(&cfg.dir)) {
        for n in more {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    names
}

fn make_ca(p: &Paths, names: &[String]) -> Result<(), TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "upsbridge private CA (UPS names only)");
    dn.push(DnType::OrganizationName, "upsbridge");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(CA_VALIDITY_DAYS);
    params.name_constraints = Some(name_constraints(names));
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    write_private(&p.ca_key, key.serialize_pem().as_bytes())?;
    write_public(&p.ca_pem, cert.pem().as_bytes())?;
    write_public(&p.names, format!("{}\n", names.join("\n")).as_bytes())?;
    info!(ca = %p.ca_pem.display(), names = %names.join(", "), "made a private CA limited to these names");
    Ok(())
}

/// Permitted: exactly `names` (DNS names and IPs). Every other IP address is excluded.
pub fn name_constraints(names: &[String]) -> NameConstraints {
    let mut permitted = Vec::new();
    let mut has_v4 = false;
    let mut has_v6 = false;
    for n in names {
        match n.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => {
                has_v4 = true;
                permitted.push(GeneralSubtree::IpAddress(CidrSubnet::V4(
                    ip.octets(),
                    [255; 4],
                )));
            }
            Ok(IpAddr::V6(ip)) => {
                has_v6 = true;
                permitted.push(GeneralSubtree::IpAddress(CidrSubnet::V6(
                    ip.octets(),
                    [255; 16],
                )));
            }
            Err(_) => permitted.push(GeneralSubtree::DnsName(n.clone())),
        }
    }
    let mut excluded = Vec::new();
    if !has_v4 {
        excluded.push(GeneralSubtree::IpAddress(CidrSubnet::V4([0; 4], [0; 4])));
    }
    if !has_v6 {
        excluded.push(GeneralSubtree::IpAddress(CidrSubnet::V6([0; 16], [0; 16])));
    }
    NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: excluded,
    }
}

fn read_names(p: &Paths) -> Result<Vec<String>, TlsError> {
    let text = std::fs::read_to_string(&p.names).map_err(io_err(&p.names))?;
    let names: Vec<String> = text
        .lines()
        .map(|l| l.trim().to_ascii_lowercase())
        .filter(|l| !l.is_empty())
        .collect();
    if names.is_empty() {
        return Err(TlsError::Invalid {
            path: p.names.clone(),
            why: "lists no name".into(),
        });
    }
    Ok(names)
}

/// A new leaf for `names`, signed by the CA, written atomically (key first).
fn issue_leaf(cfg: &TlsConfig, p: &Paths, names: &[String]) -> Result<(), TlsError> {
    let ca_pem = std::fs::read_to_string(&p.ca_pem).map_err(io_err(&p.ca_pem))?;
    let ca_key_pem = std::fs::read_to_string(&p.ca_key).map_err(io_err(&p.ca_key))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|e| TlsError::Invalid {
        path: p.ca_key.clone(),
        why: e.to_string(),
    })?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key).map_err(|e| TlsError::Invalid {
        path: p.ca_pem.clone(),
        why: e.to_string(),
    })?;
    let mut params = CertificateParams::new(names.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names[0].clone());
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::seconds(cfg.leaf_validity.as_secs() as i64);
    let key = KeyPair::generate()?;
    let leaf = params.signed_by(&key, &issuer)?;
    write_private(&p.leaf_key, key.serialize_pem().as_bytes())?;
    write_public(&p.leaf_pem, format!("{}{}", leaf.pem(), ca_pem).as_bytes())?;
    info!(leaf = %p.leaf_pem.display(), not_after = %params.not_after, "issued a leaf certificate");
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io_err(dir))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    write_atomic(path, bytes, 0o600)
}

fn write_public(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    write_atomic(path, bytes, 0o644)
}

/// Write beside, fsync, rename: a reader never sees half a file.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// What `doctor` reports about `[tls] dir`.
pub struct Health {
    pub ca_key_present: bool,
    pub leaf_not_after: SystemTime,
    /// Each name the CA was made for, and whether the leaf verifies for it under the CA
    /// (rustls's WebPKI verifier: chain, validity, name constraints, name).
    pub names: Vec<(String, Result<(), String>)>,
}

/// Check the CA and the leaf the way a client would.
pub fn health(cfg: &TlsConfig) -> Result<Health, TlsError> {
    use rustls::client::danger::ServerCertVerifier;
    let p = Paths::of(&cfg.dir);
    if !p.leaf_pem.exists() || !p.ca_pem.exists() {
        return Err(TlsError::Missing {
            dir: cfg.dir.clone(),
        });
    }
    let (leaf, leaf_not_after) = certified_key(&p.leaf_pem, &p.leaf_key)?;
    let ca_bytes = std::fs::read(&p.ca_pem).map_err(io_err(&p.ca_pem))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca_bytes.as_slice()).flatten() {
        roots.add(c).map_err(|e| TlsError::Invalid {
            path: p.ca_pem.clone(),
            why: e.to_string(),
        })?;
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| TlsError::Invalid {
        path: p.ca_pem.clone(),
        why: e.to_string(),
    })?;
    let names =
        read_names(&p).unwrap_or_else(|_| UPS_NAMES.iter().map(|n| n.to_string()).collect());
    let now = rustls::pki_types::UnixTime::now();
    let names = names
        .into_iter()
        .map(|n| {
            let verdict = rustls::pki_types::ServerName::try_from(n.clone())
                .map_err(|e| e.to_string())
                .and_then(|name| {
                    verifier
                        .verify_server_cert(&leaf.cert[0], &leaf.cert[1..], &name, &[], now)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                });
            (n, verdict)
        })
        .collect();
    Ok(Health {
        ca_key_present: p.ca_key.exists(),
        leaf_not_after,
        names,
    })
}

// ---- serving ---------------------------------------------------------------------------

/// The certificates in use, swapped whole on reload.
#[derive(Debug)]
struct Loaded {
    default: Arc<CertifiedKey>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
    /// When the default leaf expires.
    leaf_not_after: SystemTime,
    /// Modification times of the files loaded, to notice a change.
    stamps: Vec<(PathBuf, Option<SystemTime>)>,
}

/// Picks the certificate by SNI; no SNI (very old clients) gets the leaf.
#[derive(Debug)]
pub struct Certificates {
    cfg: TlsConfig,
    loaded: ArcSwap<Loaded>,
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let loaded = self.loaded.load();
        let by_sni = hello
            .server_name()
            .and_then(|n| loaded.by_name.get(&n.to_ascii_lowercase()));
        Some(by_sni.unwrap_or(&loaded.default).clone())
    }
}

impl Certificates {
    /// Load `[tls] dir`; refuses to start without a leaf.
    pub fn load(cfg: &TlsConfig) -> Result<Arc<Certificates>, TlsError> {
        let loaded = load(cfg)?;
        Ok(Arc::new(Certificates {
            cfg: cfg.clone(),
            loaded: ArcSwap::from_pointee(loaded),
        }))
    }

    /// The rustls server config for the TLS listener and CONNECT tunnels: TLS 1.2 and 1.3,
    /// HTTP/1.1, resumption by session id and by ticket.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let invalid = |e: rustls::Error| TlsError::Invalid {
            path: self.cfg.dir.clone(),
            why: e.to_string(),
        };
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(invalid)?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        // HTTP/1.0 too: an old client offering only that must not get no_application_protocol.
        config.alpn_protocols = vec![b"http/1.1".to_vec(), b"http/1.0".to_vec()];
        config.session_storage = rustls::server::ServerSessionMemoryCache::new(16 * 1024);
        config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(invalid)?;
        Ok(Arc::new(config))
    }

    /// Reload on change and renew the leaf before it expires, every `every`.
    pub async fn keep_fresh(self: Arc<Self>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            let this = self.clone();
            let _ = tokio::task::spawn_blocking(move || this.refresh()).await;
        }
    }

    fn refresh(&self) {
        let p = Paths::of(&self.cfg.dir);
        let current = self.loaded.load();
        let due = SystemTime::now() + self.cfg.renew_before >= current.leaf_not_after;
        if due && p.ca_key.exists() {
            match read_names(&p).and_then(|names| issue_leaf(&self.cfg, &p, &names)) {
                Ok(()) => info!("leaf certificate renewed before expiry"),
                Err(e) => {
                    error!(error = %e, "cannot renew the leaf certificate; the current one stays until it expires. Fix the error or run `upsbridge tls init` again")
                }
            }
        } else if due {
            warn!(dir = %self.cfg.dir.display(), "the leaf certificate expires soon and there is no CA key here to renew it: put a new leaf.pem/leaf.key in place");
        }
        if stamps(&self.cfg.dir) == current.stamps {
            return;
        }
        match load(&self.cfg) {
            Ok(new) => {
                info!(dir = %self.cfg.dir.display(), "TLS certificates reloaded");
                self.loaded.store(Arc::new(new));
            }
            Err(e) => {
                error!(error = %e, "TLS certificates changed but cannot be loaded; the previous ones stay in use")
            }
        }
    }
}

/// The files a load depends on, with their modification times.
fn stamps(dir: &Path) -> Vec<(PathBuf, Option<SystemTime>)> {
    let p = Paths::of(dir);
    let mut files = vec![p.leaf_pem, p.leaf_key];
    if let Ok(entries) = std::fs::read_dir(&p.certs) {
        let mut extra: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        extra.sort();
        files.extend(extra);
    }
    files
        .into_iter()
        .map(|f| {
            let m = std::fs::metadata(&f).and_then(|m| m.modified()).ok();
            (f, m)
        })
        .collect()
}

fn load(cfg: &TlsConfig) -> Result<Loaded, TlsError> {
    let p = Paths::of(&cfg.dir);
    let stamps = stamps(&cfg.dir);
    if !p.leaf_pem.exists() {
        return Err(TlsError::Missing {
            dir: cfg.dir.clone(),
        });
    }
    let (default, leaf_not_after) = certified_key(&p.leaf_pem, &p.leaf_key)?;
    let mut by_name = HashMap::new();
    if let Ok(entries) = std::fs::read_dir(&p.certs) {
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "pem") {
                let name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().to_ascii_lowercase())
                    .unwrap_or_default();
                let (key, _) = certified_key(&path, &path.with_extension("key"))?;
                by_name.insert(name, key);
            }
        }
    }
    Ok(Loaded {
        default,
        by_name,
        leaf_not_after,
        stamps,
    })
}

/// A certificate chain and its key, and when the first certificate expires.
fn certified_key(pem: &Path, key: &Path) -> Result<(Arc<CertifiedKey>, SystemTime), TlsError> {
    let invalid = |path: &Path, why: String| TlsError::Invalid {
        path: path.to_path_buf(),
        why,
    };
    let pem_bytes = std::fs::read(pem).map_err(io_err(pem))?;
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem_bytes.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(pem, e.to_string()))?;
    let first = chain
        .first()
        .ok_or_else(|| invalid(pem, "no certificate in the file".into()))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(first)
        .map_err(|e| invalid(pem, format!("not an X.509 certificate: {e}")))?;
    let not_after = SystemTime::UNIX_EPOCH
        + Duration::from_secs(parsed.validity().not_after.timestamp().max(0) as u64);
    let key_bytes = std::fs::read(key).map_err(io_err(key))?;
    let key_der: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_bytes.as_slice())
        .map_err(|e| invalid(key, e.to_string()))?
        .ok_or_else(|| invalid(key, "no private key in the file".into()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| invalid(key, e.to_string()))?;
    Ok((Arc::new(CertifiedKey::new(chain, signing)), not_after))
}

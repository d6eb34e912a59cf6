//! Refresh-token rotation that survives a crash of `serve`.
//!
//! UPS invalidates the old refresh token the moment it issues a new one. If
//! the process that asked dies before the new one is on disk, the account is
//! locked out until a person logs in again. So rotation runs in a short-lived
//! helper process (`upsbridge internal-rotate`): it takes a per-account lock
//! file, refreshes, and writes the sealed new record to a journal file
//! (fsync'd, atomically renamed) before it answers. If `serve` is killed at any
//! point, the helper still finishes and the next `serve` imports the journal.
//! The lock makes a new `serve` wait for an orphaned helper instead of racing
//! it with the same refresh token.
//!
//! Secrets travel to the helper on its stdin, never in argv or the
//! environment, and come back sealed.
//!
//! On a PostgreSQL store shared by several instances the helper also holds the
//! account's token lease while it rotates, and commits the new record to the
//! database under it: if `serve` is killed, the lease stays with the helper until
//! the new refresh token is stored, so no other instance can rotate the old one.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{info, warn};

use super::grant::{self, AppCredentials, Grant};
use super::vault::{TokenRecord, Vault};
use super::TokenError;
use crate::store::Store;

/// What `serve` hands the helper (on stdin, as JSON).
#[derive(Serialize, Deserialize)]
struct HelperInput {
    account: String,
    refresh_url: String,
    client_id: String,
    client_secret: String,
    merchant: String,
    /// The newest record `serve` knows, sealed.
    current: String,
    journal_dir: PathBuf,
    key_b64: String,
    timeout_ms: u64,
    /// `[ups] resolve`: the helper reaches UPS where `serve` does.
    #[serde(default)]
    pins: Vec<(String, Vec<std::net::SocketAddr>)>,
    /// The shared store to rotate in, under the account's lease (PostgreSQL).
    #[serde(default)]
    shared: Option<SharedStore>,
}

/// How the helper opens the PostgreSQL store `serve` uses (its password comes from the
/// same file or the inherited `UPSBRIDGE_STORE_PASSWORD`).
#[derive(Serialize, Deserialize)]
struct SharedStore {
    url: String,
    password_file: Option<PathBuf>,
    tls_require: bool,
    ca_file: Option<PathBuf>,
    timeout_ms: u64,
    instance: Option<String>,
}

impl SharedStore {
    fn from_config(c: &crate::config::PostgresConfig) -> SharedStore {
        use secrecy::ExposeSecret;
        let (tls_require, ca_file) = match &c.tls {
            crate::config::PostgresTls::Disable => (false, None),
            crate::config::PostgresTls::Require { ca_file } => (true, ca_file.clone()),
        };
        SharedStore {
            url: c.url.expose_secret().to_string(),
            password_file: c.password_file.clone(),
            tls_require,
            ca_file,
            timeout_ms: c.timeout.as_millis() as u64,
            instance: c.instance.clone(),
        }
    }

    fn config(&self) -> Result<crate::config::PostgresConfig, TokenError> {
        let connect = crate::config::parse_postgres_url(&self.url)
            .map_err(|why| TokenError::Store(format!("[store] url {why}")))?;
        Ok(crate::config::PostgresConfig {
            connect,
            url: self.url.clone().into(),
            password_file: self.password_file.clone(),
            tls: if self.tls_require {
                crate::config::PostgresTls::Require {
                    ca_file: self.ca_file.clone(),
                }
            } else {
                crate::config::PostgresTls::Disable
            },
            timeout: Duration::from_millis(self.timeout_ms),
            instance: self.instance.as_ref().map(|i| format!("{i}/rotate")),
        })
    }
}

/// What the helper answers (one JSON line on stdout).
#[derive(Serialize, Deserialize)]
enum HelperOutput {
    /// The new (or a newer, already journaled) record, sealed, base64.
    Record(String),
    Failed(TokenError),
}

fn journal_file(dir: &Path, account: &str, generation: u64) -> PathBuf {
    dir.join(format!("{account}.{generation:020}.sealed"))
}

fn lock_file(dir: &Path, account: &str) -> PathBuf {
    dir.join(format!("{account}.lock"))
}

/// Journal records of `account`, newest first.
fn journaled(dir: &Path, account: &str, vault: &Vault) -> Vec<(PathBuf, TokenRecord)> {
    let prefix = format!("{account}.");
    let mut out: Vec<(PathBuf, TokenRecord)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix(&prefix)?.strip_suffix(".sealed")?;
            rest.parse::<u64>().ok()?;
            let sealed = std::fs::read(e.path()).ok()?;
            let record = vault.open_record(account, &sealed).ok()?;
            Some((e.path(), record))
        })
        .collect();
    out.sort_by_key(|(_, r)| std::cmp::Reverse(r.generation));
    out
}

/// Write a file durably: temp file, fsync, rename, fsync the directory.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// `upsbridge internal-rotate`: the helper's whole life. Exit code 0 with an answer line.
pub fn helper_main() -> std::process::ExitCode {
    let mut text = String::new();
    if std::io::stdin().read_to_string(&mut text).is_err() {
        return std::process::ExitCode::FAILURE;
    }
    let Ok(input) = serde_json::from_str::<HelperInput>(&text) else {
        return std::process::ExitCode::FAILURE;
    };
    let out = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(helper(&input)),
        Err(e) => HelperOutput::Failed(TokenError::BadAnswer(format!("helper runtime: {e}"))),
    };
    let line = serde_json::to_string(&out).expect("helper output serializes");
    // The parent may be gone (that is the point); the journal already holds the result.
    let _ = writeln!(std::io::stdout(), "{line}");
    std::process::ExitCode::SUCCESS
}

async fn helper(input: &HelperInput) -> HelperOutput {
    match helper_inner(input).await {
        Ok(sealed) => HelperOutput::Record(STANDARD.encode(sealed)),
        Err(e) => HelperOutput::Failed(e),
    }
}

async fn helper_inner(input: &HelperInput) -> Result<Vec<u8>, TokenError> {
    let io = |what: &str, e: std::io::Error| {
        TokenError::BadAnswer(format!("rotation journal {what}: {e}"))
    };
    let vault = Vault::from_b64(&input.key_b64)
        .ok_or_else(|| TokenError::BadAnswer("helper key".into()))?;
    crate::store::private_dir(&input.journal_dir).map_err(|e| io("directory", e))?;
    // One rotation per account at a time, across processes (a killed serve's helper included).
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_file(&input.journal_dir, &input.account))
        .map_err(|e| io("lock", e))?;
    lock.lock().map_err(|e| io("lock", e))?;

    let sealed = STANDARD
        .decode(&input.current)
        .map_err(|_| TokenError::BadAnswer("helper input".into()))?;
    let mut current = vault
        .open_record(&input.account, &sealed)
        .map_err(|_| TokenError::BadAnswer("helper input does not open".into()))?;
    // The shared store's lease: held until the new record is committed (or this process
    // dies, which closes its connection).
    let mut lease = None;
    if let Some(shared) = &input.shared {
        let store_error = |e: crate::store::StoreError| TokenError::Store(e.to_string());
        let store = Store::open(&shared.config()?).await.map_err(store_error)?;
        let wait = Duration::from_millis(input.timeout_ms);
        let mut held = store
            .token_lease(&input.account, wait)
            .await
            .map_err(store_error)?;
        if let Some(stored) = held.token().await.map_err(store_error)? {
            if let Ok(stored) = vault.open_record(&input.account, &stored) {
                if stored.generation > current.generation {
                    // Another instance (or a killed serve's helper) rotated already.
                    if stored.access_expires_at > crate::clock::unix_now() + 30 {
                        held.release().await;
                        return Ok(vault.seal_record(&input.account, &stored));
                    }
                    current = stored;
                }
            }
        }
        lease = Some(held);
    }
    // A helper of a killed serve may have rotated already: its record is the truth.
    if let Some((_, newer)) = journaled(&input.journal_dir, &input.account, &vault)
        .into_iter()
        .next()
        .filter(|(_, r)| r.generation > current.generation)
    {
        return Ok(vault.seal_record(&input.account, &newer));
    }
    let refresh = current
        .refresh_token
        .as_deref()
        .ok_or_else(|| TokenError::NeedsAuthorization(input.account.clone()))?;
    let http = pinned(reqwest::Client::builder(), &input.pins)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_millis(input.timeout_ms))
        .build()
        .map_err(|e| TokenError::Unreachable(e.to_string()))?;
    let secret = SecretString::from(input.client_secret.clone());
    let app = AppCredentials {
        account: &input.account,
        client_id: &input.client_id,
        client_secret: &secret,
        merchant: &input.merchant,
    };
    let url = oauth2::TokenUrl::new(input.refresh_url.clone())
        .map_err(|e| TokenError::BadAnswer(format!("refresh URL: {e}")))?;
    let mut record = grant::request(
        &http,
        &url,
        &app,
        Grant::Refresh {
            refresh_token: refresh,
        },
        current.generation + 1,
    )
    .await?;
    // UPS may omit a new refresh token; then the old one stays valid.
    if record.refresh_token.is_none() {
        record.refresh_token = current.refresh_token.clone();
        record.refresh_expires_at = current.refresh_expires_at;
    }
    let sealed = vault.seal_record(&input.account, &record);
    write_durably(
        &journal_file(&input.journal_dir, &input.account, record.generation),
        &sealed,
    )
    .map_err(|e| io("write", e))?;
    if let Some(held) = lease {
        held.commit_token(sealed.clone())
            .await
            .map_err(|e| TokenError::Store(e.to_string()))?;
    }
    Ok(sealed)
}

/// The parent side: run one rotation through a helper process.
pub struct Rotator {
    pub exe: PathBuf,
    pub journal_dir: PathBuf,
    pub timeout: Duration,
    /// `[ups] resolve`, handed to the helper.
    pub pins: Vec<(String, Vec<std::net::SocketAddr>)>,
    /// The PostgreSQL store the helper rotates in under the account's lease (`None`: sled,
    /// where `serve` stores what the helper journaled).
    pub shared: Option<crate::config::PostgresConfig>,
}

/// An HTTP client that reaches the pinned hosts at their pinned addresses.
pub fn pinned(
    mut builder: reqwest::ClientBuilder,
    pins: &[(String, Vec<std::net::SocketAddr>)],
) -> reqwest::ClientBuilder {
    for (host, addrs) in pins {
        builder = builder.resolve_to_addrs(host, addrs);
    }
    builder
}

impl Rotator {
    /// Whether the helper holds the shared store's lease and stores the record itself.
    pub fn stores_itself(&self) -> bool {
        self.shared.is_some()
    }

    /// Rotate `current` for `app`; the answer is already journaled when this returns (and,
    /// on a shared store, committed there).
    pub async fn rotate(
        &self,
        vault: &Vault,
        app: &AppCredentials<'_>,
        current: &TokenRecord,
        refresh_url: &str,
    ) -> Result<TokenRecord, TokenError> {
        use secrecy::ExposeSecret;
        let input = HelperInput {
            account: app.account.to_string(),
            refresh_url: refresh_url.to_string(),
            client_id: app.client_id.to_string(),
            client_secret: app.client_secret.expose_secret().to_string(),
            merchant: app.merchant.to_string(),
            current: STANDARD.encode(vault.seal_record(app.account, current)),
            journal_dir: self.journal_dir.clone(),
            key_b64: vault.key_b64().to_string(),
            timeout_ms: self.timeout.as_millis() as u64,
            pins: self.pins.clone(),
            shared: self.shared.as_ref().map(SharedStore::from_config),
        };
        let fail = |e: std::io::Error| TokenError::BadAnswer(format!("rotation helper: {e}"));
        let mut child = tokio::process::Command::new(&self.exe)
            .arg("internal-rotate")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            // If serve dies, the helper must live on and finish the journal.
            .kill_on_drop(false)
            .spawn()
            .map_err(fail)?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(&serde_json::to_vec(&input).expect("input serializes"))
            .await
            .map_err(fail)?;
        drop(stdin);
        let mut out = String::new();
        child
            .stdout
            .take()
            .expect("piped stdout")
            .read_to_string(&mut out)
            .await
            .map_err(fail)?;
        let _ = child.wait().await;
        match serde_json::from_str::<HelperOutput>(out.trim()) {
            Ok(HelperOutput::Record(b64)) => {
                let sealed = STANDARD
                    .decode(b64)
                    .map_err(|_| TokenError::BadAnswer("rotation helper answer".into()))?;
                vault.open_record(app.account, &sealed).map_err(|_| {
                    TokenError::BadAnswer("rotation helper answer does not open".into())
                })
            }
            Ok(HelperOutput::Failed(e)) => Err(e),
            Err(_) => Err(TokenError::BadAnswer(
                "rotation helper gave no answer".into(),
            )),
        }
    }

    /// Journal files at or below `generation` are in the store now: remove them.
    pub fn forget_up_to(&self, vault: &Vault, account: &str, generation: u64) {
        for (path, r) in journaled(&self.journal_dir, account, vault) {
            if r.generation <= generation {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// At startup: move journaled records newer than the store's into the store.
    pub async fn import(
        &self,
        vault: &Vault,
        store: &Store,
        accounts: &[String],
    ) -> Result<usize, crate::store::StoreError> {
        let mut imported = 0;
        for account in accounts {
            let Some((_, newest)) = journaled(&self.journal_dir, account, vault)
                .into_iter()
                .next()
            else {
                continue;
            };
            let stored_generation = store
                .token(account)
                .await?
                .and_then(|s| vault.open_record(account, &s).ok())
                .map(|r| r.generation);
            if stored_generation.is_none_or(|g| g < newest.generation) {
                store
                    .put_token_durably(account, vault.seal_record(account, &newest))
                    .await?;
                imported += 1;
                info!(
                    account,
                    generation = newest.generation,
                    "imported a rotated token from the journal (a previous run ended mid-rotation)"
                );
            }
            self.forget_up_to(vault, account, newest.generation);
        }
        if imported > 0 {
            warn!(
                imported,
                "recovered refresh tokens rotated by a previous run"
            );
        }
        Ok(imported)
    }
}

//! Accounts: the map file, imported into the store, served from an in-memory
//! index keyed by (access key, user id).
//!
//! A reload builds a complete new index and swaps it in atomically, so a
//! request sees either the old map or the new one, never a mix; an invalid map
//! is rejected whole and the old one stays in force. Never logs a password or
//! a client secret.

pub mod add;
pub mod credentials;
pub mod guard;
pub mod map;
pub mod password;
pub mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustc_hash::FxHashMap;
use secrecy::SecretString;

pub use credentials::{AccessKey, LegacyCredentials, Password, UserId};
pub use map::{AccountRecord, Grant, MapError, MapProblem, SecretSource};
use password::PasswordTag;

use crate::clock::unix_now;
use crate::store::{Store, StoreError};

/// The account map's state as metrics, read at each scrape.
pub struct MapMetrics {
    accounts: Arc<Accounts>,
    descs: Vec<prometheus::core::Desc>,
}

impl MapMetrics {
    const METRICS: [(&'static str, &'static str); 3] = [
        ("upsbridge_accounts", "Accounts in the map in force"),
        (
            "upsbridge_map_reloads_total",
            "Successful account map reloads",
        ),
        (
            "upsbridge_map_rejections_total",
            "Rejected account map versions (the previous one stayed in force)",
        ),
    ];

    pub fn new(accounts: Arc<Accounts>) -> MapMetrics {
        let descs = Self::METRICS
            .iter()
            .map(|(name, help)| {
                prometheus::core::Desc::new(
                    name.to_string(),
                    help.to_string(),
                    vec![],
                    Default::default(),
                )
                .expect("valid metric")
            })
            .collect();
        MapMetrics { accounts, descs }
    }
}

impl prometheus::core::Collector for MapMetrics {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let status = self.accounts.status();
        let [(a, ah), (r, rh), (j, jh)] = Self::METRICS;
        let gauge = prometheus::IntGauge::new(a, ah).expect("valid metric");
        gauge.set(status.accounts as i64);
        let reloads = prometheus::IntCounter::new(r, rh).expect("valid metric");
        reloads.inc_by(status.reloads);
        let rejections = prometheus::IntCounter::new(j, jh).expect("valid metric");
        rejections.inc_by(status.rejections);
        [gauge.collect(), reloads.collect(), rejections.collect()]
            .into_iter()
            .flatten()
            .collect()
    }
}

/// Why a legacy client was refused. Each maps to the UPS code old clients handle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no access license number was sent")]
    MissingAccessKey,
    #[error("no user id or password was sent")]
    MissingUserOrPassword,
    #[error("the access license number is not in the account map")]
    UnknownAccessKey,
    #[error("user id or password does not match the account map")]
    BadUserOrPassword,
    /// Refused unchecked: this address failed too often for this login.
    #[error(
        "{0}; this address failed too often for this login, so it is refused unchecked for a while"
    )]
    BackingOff(Box<AuthError>),
    /// The credentials verified, but ops disabled the account on the ops page.
    #[error("account `{0}` is disabled on the ops page")]
    Disabled(String),
    /// This failure started (or lengthened) a backoff.
    #[error("{0}; refusing this login from this address unchecked for {1:?}")]
    NowBackingOff(Box<AuthError>, std::time::Duration),
}

impl AuthError {
    /// The refusal the client sees (a backoff answers as the failure that caused it).
    pub fn cause(&self) -> &AuthError {
        match self {
            AuthError::BackingOff(e) | AuthError::NowBackingOff(e, _) => e.cause(),
            other => other,
        }
    }

    /// Metrics label.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingAccessKey => "missing_access_key",
            AuthError::MissingUserOrPassword => "missing_user_or_password",
            AuthError::UnknownAccessKey => "unknown_access_key",
            AuthError::BadUserOrPassword => "bad_user_or_password",
            AuthError::BackingOff(_) => "backing_off",
            AuthError::Disabled(_) => "disabled",
            AuthError::NowBackingOff(e, _) => e.reason(),
        }
    }
}

/// One account as the proxy uses it.
pub struct Account {
    pub record: AccountRecord,
    pub client_secret: SecretString,
    /// Tag of the password that last verified against `record.password_hash`.
    verified: Mutex<Option<PasswordTag>>,
}

impl Account {
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// Whether a password other than `tag`'s has verified. Read under one lock: the right
    /// password may verify (by a concurrent request) after this request's own `cached`
    /// check, and must not then count as another one.
    fn verified_other(&self, tag: &PasswordTag) -> bool {
        let verified = self.verified.lock().expect("verified tag lock");
        verified.as_ref().is_some_and(|v| !v.matches(tag))
    }

    fn cached(&self, tag: &PasswordTag) -> bool {
        let verified = self.verified.lock().expect("verified tag lock");
        verified.as_ref().is_some_and(|v| v.matches(tag))
    }
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.record.name)
            .finish_non_exhaustive()
    }
}

/// An immutable snapshot of the map, indexed for the hot path.
#[derive(Default)]
pub struct AccountIndex {
    /// access key → user id → account: two levels so lookups borrow `&str`, no allocation.
    /// Fx, not SipHash: the keys are the map file's, never the client's, so there is no
    /// collision flood to defend against, and every request looks up twice.
    by_login: FxHashMap<String, FxHashMap<String, Arc<Account>>>,
    by_name: HashMap<String, Arc<Account>>,
}

impl AccountIndex {
    pub fn build(accounts: Vec<Account>) -> AccountIndex {
        let mut index = AccountIndex::default();
        for a in accounts {
            let a = Arc::new(a);
            index
                .by_login
                .entry(a.record.access_license_number.clone())
                .or_default()
                .insert(a.record.user_id.clone(), a.clone());
            index.by_name.insert(a.record.name.clone(), a);
        }
        index
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The account for these credentials, before the password check.
    pub fn lookup(&self, access_key: &str, user_id: &str) -> Result<&Arc<Account>, AuthError> {
        if access_key.is_empty() {
            return Err(AuthError::MissingAccessKey);
        }
        let users = self
            .by_login
            .get(access_key)
            .ok_or(AuthError::UnknownAccessKey)?;
        if user_id.is_empty() {
            return Err(AuthError::MissingUserOrPassword);
        }
        users.get(user_id).ok_or(AuthError::BadUserOrPassword)
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<Account>> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Account>> {
        self.by_name.values()
    }
}

/// Turn validated records into accounts by reading each client secret from its source.
/// A missing secret rejects the map (with the record's line), like any other problem.
pub fn resolve(records: Vec<AccountRecord>, file: &str) -> Result<Vec<Account>, MapError> {
    let mut problems = Vec::new();
    let mut accounts = Vec::new();
    for record in records {
        let secret = match &record.client_secret {
            SecretSource::Env(var) => std::env::var(var).map_err(|_| {
                format!("client_secret_env `{var}` of account `{}` is not set in upsbridge's environment", record.name)
            }),
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
                .map_err(|e| {
                    format!(
                        "client_secret_file {} of account `{}` cannot be read: {e}",
                        path.display(),
                        record.name
                    )
                }),
        };
        match secret {
            Ok(s) if !s.is_empty() => accounts.push(Account {
                record,
                client_secret: SecretString::from(s),
                verified: Mutex::new(None),
            }),
            Ok(_) => problems.push(MapProblem {
                line: record.line,
                message: format!("the client secret of account `{}` is empty", record.name),
            }),
            Err(message) => problems.push(MapProblem {
                line: record.line,
                message,
            }),
        }
    }
    if problems.is_empty() {
        Ok(accounts)
    } else {
        Err(MapError {
            file: file.to_string(),
            problems,
        })
    }
}

/// [`load_map`] on a blocking-pool thread, then give back what parsing freed: the TOML tree of
/// a large map is about ten times the file, and an idle pool thread would otherwise keep its
/// pages resident until it next allocates.
fn load_map_and_let_go(path: &Path) -> Result<Vec<Account>, MapError> {
    let loaded = load_map(path);
    crate::memory::return_freed_memory();
    loaded
}

/// Load a map file completely (parse, validate, resolve secrets).
pub fn load_map(path: &Path) -> Result<Vec<Account>, MapError> {
    let records = map::load(path)?;
    resolve(records, &path.display().to_string())
}

/// Wait (briefly) until two reads of the file agree, so a writer still writing is not read
/// half-way. Gives up after about a second and lets validation judge what is there.
/// Returns a digest of what was read last.
fn wait_until_stable(path: &Path) -> Option<[u8; 32]> {
    let mut last = std::fs::read(path).ok();
    for _ in 0..10 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = std::fs::read(path).ok();
        if now == last {
            break;
        }
        last = now;
    }
    last.map(|bytes| content_digest(&bytes))
}

/// Run file reads and parsing on a blocking thread (a panic there is re-raised here).
async fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("blocking task ended: {e}"),
    }
}

fn content_digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// The new map is in force; these accounts were removed.
    Applied { removed: Vec<String> },
    /// The file holds what was last loaded (or rejected): nothing to do.
    Unchanged,
}

/// State of the map file as ops see it on the admin page.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MapStatus {
    pub file: String,
    pub accounts: usize,
    pub loaded_at: Option<u64>,
    /// Problems of the last rejected version (empty when the last load succeeded).
    pub rejected: Vec<String>,
    pub rejected_at: Option<u64>,
    pub reloads: u64,
    pub rejections: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Map(#[from] MapError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The live account map: index + store + file status.
pub struct Accounts {
    index: ArcSwap<AccountIndex>,
    store: Store,
    file: PathBuf,
    status: Mutex<MapStatus>,
    /// Digest of the map text last loaded or rejected. File events also fire when the file
    /// is only read (the reload itself reads it), so a reload that would read the same text
    /// is skipped rather than looping.
    last_seen: Mutex<Option<[u8; 32]>>,
    /// Password checks: dummy work for unknown logins, backoff, one argon2 at a time.
    guard: guard::LoginGuard,
    /// Accounts ops disabled (kept in the map, refused at the proxy); persisted in the store.
    disabled: dashmap::DashSet<String>,
}

impl Accounts {
    /// Load the map file into the store and the index; refuses an invalid map.
    pub async fn open(file: &Path, store: Store) -> Result<Accounts, ReloadError> {
        let path = file.to_path_buf();
        let accounts = off_runtime(move || load_map_and_let_go(&path)).await?;
        let records: Vec<AccountRecord> = accounts.iter().map(|a| a.record.clone()).collect();
        store.replace_accounts(&records).await?;
        let disabled = store.disabled_accounts().await?;
        let status = MapStatus {
            file: file.display().to_string(),
            accounts: accounts.len(),
            loaded_at: Some(unix_now()),
            ..MapStatus::default()
        };
        let opened = Accounts {
            index: ArcSwap::from_pointee(AccountIndex::build(accounts)),
            store: store.clone(),
            file: file.to_path_buf(),
            status: Mutex::new(status),
            last_seen: Mutex::new(std::fs::read(file).ok().map(|b| content_digest(&b))),
            guard: guard::LoginGuard::new(),
            disabled: disabled.into_iter().collect(),
        };
        // Parsing a large map churns through several times its final size.
        crate::memory::return_freed_memory();
        Ok(opened)
    }

    /// Re-read the map file. On success the new map is in force and the names of removed
    /// accounts are returned; on failure the old map stays and the problems are recorded.
    /// Unless `force`d (SIGHUP: ops asked, and secret files may have changed), a file that
    /// holds the text last seen is left alone.
    /// The file is read and parsed on a blocking thread; the store is written from here.
    pub async fn reload(&self, force: bool) -> Result<Reloaded, ReloadError> {
        let file = self.file.clone();
        let digest = off_runtime(move || wait_until_stable(&file)).await;
        {
            let mut last = self.last_seen.lock().expect("last seen lock");
            if !force && digest.is_some() && *last == digest {
                return Ok(Reloaded::Unchanged);
            }
            *last = digest;
        }
        let file = self.file.clone();
        let result = match off_runtime(move || load_map_and_let_go(&file)).await {
            Err(e) => Err(ReloadError::from(e)),
            Ok(accounts) => {
                let records: Vec<AccountRecord> =
                    accounts.iter().map(|a| a.record.clone()).collect();
                match self.store.replace_accounts(&records).await {
                    Ok(removed) => Ok((accounts, removed)),
                    Err(e) => {
                        // The text is fine, the store was not: the next event tries again.
                        *self.last_seen.lock().expect("last seen lock") = None;
                        Err(ReloadError::from(e))
                    }
                }
            }
        };
        let mut status = self.status.lock().expect("map status lock");
        match result {
            Ok((accounts, removed)) => {
                self.carry_verified_passwords(&accounts);
                status.accounts = accounts.len();
                status.loaded_at = Some(unix_now());
                status.rejected.clear();
                status.reloads += 1;
                self.index.store(Arc::new(AccountIndex::build(accounts)));
                crate::memory::return_freed_memory();
                Ok(Reloaded::Applied { removed })
            }
            Err(e) => {
                status.rejected = e.to_string().lines().map(str::to_string).collect();
                status.rejected_at = Some(unix_now());
                status.rejections += 1;
                Err(e)
            }
        }
    }

    /// A reload must not make every account pay argon2 again: keep the verified-password
    /// cache of accounts whose password hash did not change.
    fn carry_verified_passwords(&self, new: &[Account]) {
        let old = self.index.load();
        for a in new {
            if let Some(prev) = old.by_name(&a.record.name) {
                if prev.record.password_hash == a.record.password_hash {
                    let tag = *prev.verified.lock().expect("verified tag lock");
                    *a.verified.lock().expect("verified tag lock") = tag;
                }
            }
        }
    }

    /// The current snapshot (cheap; hold it only for the length of a lookup).
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<AccountIndex>> {
        self.index.load()
    }

    pub fn status(&self) -> MapStatus {
        self.status.lock().expect("map status lock").clone()
    }

    /// Disable (or enable) an account: its requests are refused in their dialect, nothing
    /// is forwarded, the account stays in the map. Survives restarts.
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<(), StoreError> {
        self.store.set_disabled(name, disabled).await?;
        if disabled {
            self.disabled.insert(name.to_string());
        } else {
            self.disabled.remove(name);
        }
        Ok(())
    }

    /// The account a legacy login names, if the map has it.
    pub fn name_for(&self, access_key: &str, user_id: &str) -> Option<String> {
        self.index
            .load()
            .lookup(access_key, user_id)
            .ok()
            .map(|a| a.name().to_string())
    }

    /// The account map file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    pub fn is_disabled(&self, name: &str) -> bool {
        self.disabled.contains(name)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A verified account, unless ops disabled it (checked only after the password verified,
    /// so a disabled account cannot be told apart by a guesser).
    fn unless_disabled(&self, account: &Arc<Account>) -> Result<Arc<Account>, AuthError> {
        if self.is_disabled(account.name()) {
            Err(AuthError::Disabled(account.name().to_string()))
        } else {
            Ok(account.clone())
        }
    }

    /// Find and verify the account for these legacy credentials, sent from `peer`.
    ///
    /// The refusal for an unknown user and for a wrong password costs the same argon2 run
    /// (see [`guard`]), and a login that failed [`guard::FREE_FAILURES`] times from one
    /// address is refused unchecked for a while ([`AuthError::BackingOff`]).
    pub async fn authenticate(
        &self,
        creds: &LegacyCredentials,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Arc<Account>, AuthError> {
        let index = self.index.load();
        let found = index.lookup(creds.access_key.as_str(), creds.user_id.as_str());
        let password = creds.password.expose();
        match found {
            Err(AuthError::MissingAccessKey) => return Err(AuthError::MissingAccessKey),
            Err(AuthError::MissingUserOrPassword) => return Err(AuthError::MissingUserOrPassword),
            _ if password.is_empty() => return Err(AuthError::MissingUserOrPassword),
            _ => {}
        }
        let tag = PasswordTag::of(password);
        if let Ok(account) = found {
            if account.cached(&tag) {
                return self.unless_disabled(account);
            }
        }
        // Unknown logins are counted under what was attempted (never the password).
        let login = match found {
            Ok(a) => a.name().to_string(),
            Err(_) => format!("{}\u{0}{}", creds.access_key, creds.user_id),
        };
        let refusal = match &found {
            Err(e) => e.clone(),
            Ok(_) => AuthError::BadUserOrPassword,
        };
        if self.guard.gate(&login, peer) == guard::Gate::BackingOff {
            return Err(AuthError::BackingOff(Box::new(refusal)));
        }
        // The map's hash accepts one password; if another one already verified against it,
        // this one cannot: refused without argon2 (a guess flood costs no argon2 at all for
        // an account in use).
        let known_other = found.as_ref().is_ok_and(|a| a.verified_other(&tag));
        let phc = found
            .as_ref()
            .ok()
            .filter(|_| !known_other)
            .map(|a| a.record.password_hash.as_str());
        if known_other {
            self.guard.pretend().await;
            return Err(match self.guard.failed(&login, peer) {
                Some(wait) => AuthError::NowBackingOff(Box::new(refusal), wait),
                None => refusal,
            });
        }
        // Concurrent first requests of one client queue for argon2; once one verified, the
        // rest find the tag and skip the work.
        let already = || found.as_ref().is_ok_and(|a| a.cached(&tag));
        if self.guard.argon2(phc, password, already).await {
            let account = found
                .expect("argon2 succeeds only for a known account")
                .clone();
            *account.verified.lock().expect("verified tag lock") = Some(tag);
            self.guard.succeeded(&login, peer);
            return self.unless_disabled(&account);
        }
        match self.guard.failed(&login, peer) {
            Some(wait) => Err(AuthError::NowBackingOff(Box::new(refusal), wait)),
            None => Err(refusal),
        }
    }
}

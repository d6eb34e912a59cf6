//! The store: the imported account map, (sealed) tokens, ops' per-account switches, the
//! ShipConfirm digests of the old-XML dialect with their MAC secret, and the answers kept
//! for retried shipments. [`Store`] is one cheap-to-clone handle over one of two backends:
//!
//! - sled ([`sled`]): an embedded database in `[store] path`, one process at a time;
//! - PostgreSQL ([`postgres`]): one table shared by several upsbridge instances.
//!
//! Both hold the same five trees (`accounts`, `tokens`, `meta`, `digests`, `replays`) of
//! byte keys and byte values, with the same meaning:
//! - a method named `…_durably` returns only once the write survives a crash (sled: flushed;
//!   PostgreSQL: committed);
//! - [`Store::secret`] creates a random 32-byte secret once, and every handle (every
//!   instance) gets that same one;
//! - [`Store::swap_digest_durably`] is a compare-and-swap: of two racing callers one wins.
//!
//! This module never sees a secret in clear: token records and kept answers arrive sealed
//! by `oauth::vault` (the same AEAD and the same key whatever the backend), and neither
//! backend puts a value or a database password in an error or a log line.
//!
//! Every method that could touch the network on PostgreSQL is `async` for both backends;
//! on PostgreSQL each is bounded by `[store] timeout_ms` and fails with a [`StoreError`]
//! that says what to check, never hangs. sled calls are quick and run inline.
//!
//! Every public method call is counted and timed once ([`observe`]), under a short static
//! operation name (`token_get`, `digest_swap`, …), by `Store::observed`.

pub mod migrate;
pub mod observe;
pub mod postgres;
pub mod sled;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use observe::{Outcome, StoreMetrics};

use crate::accounts::map::AccountRecord;
use crate::clock::unix_now;
use crate::config::{PostgresConfig, StoreBackend, StoreConfig};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source} (is another upsbridge using it?)")]
    Open {
        path: PathBuf,
        source: ::sled::Error,
    },
    #[error("store I/O failed: {0}; check the disk under [store] path")]
    Io(#[from] ::sled::Error),
    #[error("store record `{key}` is unreadable: {detail}")]
    Corrupt { key: String, detail: String },
    /// No connection to PostgreSQL could be had (refused, unknown host, authentication, TLS).
    #[error("cannot connect to PostgreSQL at {target} to {op}: {}; is PostgreSQL up at {target}, and do [store] url, the password (password_file or UPSBRIDGE_STORE_PASSWORD) and tls match it?", causes(source))]
    PgConnect {
        op: &'static str,
        target: String,
        #[source]
        source: deadpool_postgres::PoolError,
    },
    /// PostgreSQL answered with an error, or the connection broke during the query.
    #[error("PostgreSQL at {target} failed to {op}: {}; is PostgreSQL up at {target}? (its log says more)", causes(source))]
    PgQuery {
        op: &'static str,
        target: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("PostgreSQL at {target} did not answer within {} ms to {op}; is it up, reachable and not overloaded? ([store] timeout_ms)", after.as_millis())]
    PgTimeout {
        op: &'static str,
        target: String,
        after: Duration,
    },
    #[error("cannot read the PostgreSQL password from [store] password_file {path}: {source}")]
    PgPassword {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("[store] tls = \"require\": {0}")]
    PgTls(String),
    #[error("the database at {target} has upsbridge schema version {found}, newer than this upsbridge knows ({known}); run the newer upsbridge")]
    PgSchema {
        target: String,
        found: i32,
        known: i32,
    },
    #[error("cannot set up the PostgreSQL connection pool: {0}")]
    PgPool(#[source] deadpool_postgres::BuildError),
}

/// An error and its causes, `: `-separated (the driver says "db error" and puts what the
/// server said in its source). Server messages name users and objects, never a password.
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        next = cause.source();
    }
    text
}

/// A tree's (key, value) pairs, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// The five trees every backend holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tree {
    /// Account name → the imported map record (JSON).
    Accounts,
    /// Account name → sealed token record.
    Tokens,
    /// `key_check`, secrets (`digest_mac_key`), `disabled/NAME`.
    Meta,
    /// ShipConfirm digest key → record (JSON).
    Digests,
    /// Replay key → sealed kept answer.
    Replays,
}

impl Tree {
    pub const ALL: [Tree; 5] = [
        Tree::Accounts,
        Tree::Tokens,
        Tree::Meta,
        Tree::Digests,
        Tree::Replays,
    ];

    /// Its name: the sled tree's, and the `tree` column on PostgreSQL.
    pub fn name(self) -> &'static str {
        match self {
            Tree::Accounts => "accounts",
            Tree::Tokens => "tokens",
            Tree::Meta => "meta",
            Tree::Digests => "digests",
            Tree::Replays => "replays",
        }
    }
}

/// Where [`Store::open`] opens: a sled directory or a PostgreSQL database.
#[derive(Debug, Clone, Copy)]
pub enum Location<'a> {
    Sled(&'a Path),
    Postgres(&'a PostgresConfig),
}

impl<'a> From<&'a Path> for Location<'a> {
    fn from(p: &'a Path) -> Self {
        Location::Sled(p)
    }
}

impl<'a> From<&'a PathBuf> for Location<'a> {
    fn from(p: &'a PathBuf) -> Self {
        Location::Sled(p)
    }
}

impl<'a> From<&'a PostgresConfig> for Location<'a> {
    fn from(p: &'a PostgresConfig) -> Self {
        Location::Postgres(p)
    }
}

impl<'a> From<&'a StoreConfig> for Location<'a> {
    fn from(c: &'a StoreConfig) -> Self {
        match &c.backend {
            StoreBackend::Sled => Location::Sled(&c.path),
            StoreBackend::Postgres(p) => Location::Postgres(p.as_ref()),
        }
    }
}

#[derive(Clone)]
enum Backend {
    Sled(sled::SledStore),
    Postgres(postgres::PgStore),
}

/// Handle to the open store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// Shared by every clone of this handle.
    metrics: StoreMetrics,
}

/// Run the same call on whichever backend this is.
macro_rules! on_backend {
    ($self:ident, $s:ident => $call:expr) => {
        match &$self.backend {
            Backend::Sled($s) => $call,
            Backend::Postgres($s) => $call,
        }
    };
}

const KEY_CHECK: &[u8] = b"key_check";
const DISABLED: &str = "disabled/";
/// `meta` keys of effectful calls in flight at some instance (`inflight/<replay key>`).
const INFLIGHT: &[u8] = b"inflight/";
/// `meta` keys of authorization flows in progress (`flow/<hash of state or ticket>`).
const FLOW: &str = "flow/";

/// How an account record is stored (the same bytes on both backends).
fn account_value(r: &AccountRecord) -> Vec<u8> {
    serde_json::to_vec(r).expect("account record serializes")
}

impl Store {
    /// Open the store: a sled directory (`Store::open(&path)`: created if missing, blocks
    /// briefly, so at startup only) or PostgreSQL (`Store::open(&config.store)`: connects,
    /// and applies the schema migrations this version knows under an advisory lock).
    pub async fn open<'a>(at: impl Into<Location<'a>>) -> Result<Store, StoreError> {
        let backend = match at.into() {
            Location::Sled(path) => Backend::Sled(sled::SledStore::open(path)?),
            Location::Postgres(config) => Backend::Postgres(postgres::PgStore::open(config).await?),
        };
        Ok(Store {
            backend,
            metrics: StoreMetrics::new(),
        })
    }

    /// This store's metrics, for the server's registry ([`StoreMetrics::collectors`]).
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    /// Run one store call, counted by outcome and timed under `op` (a short static name,
    /// never a key or a value). Every public method goes through here once.
    async fn observed<T>(
        &self,
        op: &'static str,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = std::time::Instant::now();
        let result = work.await;
        self.metrics.record(
            self.backend_name(),
            op,
            Outcome::of(&result),
            started.elapsed(),
        );
        result
    }

    /// Does the store answer now? PostgreSQL: a `SELECT 1` within `[store] timeout_ms`;
    /// sled lives in this process and always does. Sets `upsbridge_store_up`. The readiness
    /// probe calls it (and caches the answer: it is not for every request).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let result = self
            .observed("ping", async {
                match &self.backend {
                    Backend::Sled(_) => Ok(()),
                    Backend::Postgres(s) => s.ping().await,
                }
            })
            .await;
        self.metrics.set_up(self.backend_name(), result.is_ok());
        result
    }

    /// `sled` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Sled(_) => "sled",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// The PostgreSQL backend, for what only it can do (cluster-wide locks, notifications).
    pub fn postgres(&self) -> Option<&postgres::PgStore> {
        match &self.backend {
            Backend::Postgres(p) => Some(p),
            Backend::Sled(_) => None,
        }
    }

    /// Make the stored accounts exactly `records`; drops the tokens of removed accounts.
    /// Returns the names removed. Durable before returning (PostgreSQL: one transaction).
    ///
    /// PostgreSQL: several instances share the accounts, each importing its own map file;
    /// an account is removed (tokens included) only when no instance's map lists it.
    pub async fn replace_accounts(
        &self,
        records: &[AccountRecord],
    ) -> Result<Vec<String>, StoreError> {
        self.observed("accounts_replace", async {
            match &self.backend {
                Backend::Sled(s) => s.replace_accounts(records).await,
                Backend::Postgres(s) => {
                    let map = InstanceMap::of(records);
                    s.replace_accounts(s.instance(), &map, records).await
                }
            }
        })
        .await
    }

    /// What each instance sharing this store last imported (PostgreSQL; sled has one).
    /// Which of `accounts` are being renewed right now, and by which instance (PostgreSQL;
    /// sled: one process, nothing to show).
    pub async fn lease_holders(
        &self,
        accounts: &[String],
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.observed("lease_holders_get", async {
            match &self.backend {
                Backend::Sled(_) => Ok(vec![]),
                Backend::Postgres(s) => s.lease_holders(accounts).await,
            }
        })
        .await
    }

    pub async fn instance_maps(&self) -> Result<Vec<(String, InstanceMap)>, StoreError> {
        self.observed("instance_maps_get", async {
            match &self.backend {
                Backend::Sled(_) => Ok(vec![]),
                Backend::Postgres(s) => s.instance_maps().await,
            }
        })
        .await
    }

    /// Take `account`'s token lease before asking UPS for a new token: on PostgreSQL one
    /// instance at a time holds it (the others wait up to `wait`, then read what it stored);
    /// on sled this process is the only one, so the lease is only a view of the store.
    pub async fn token_lease(
        &self,
        account: &str,
        wait: Duration,
    ) -> Result<TokenLease, StoreError> {
        let held = self
            .observed("token_lease", async {
                Ok(match &self.backend {
                    Backend::Sled(_) => Held::Alone,
                    Backend::Postgres(s) => Held::Postgres(Box::new(s.lease(account, wait).await?)),
                })
            })
            .await?;
        Ok(TokenLease {
            account: account.to_string(),
            store: self.clone(),
            held,
        })
    }

    /// The accounts as last imported.
    pub async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        self.observed("accounts_get", async {
            on_backend!(self, s => s.entries(Tree::Accounts).await)
        })
        .await?
        .into_iter()
        .map(|(k, v)| {
            serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                detail: e.to_string(),
            })
        })
        .collect()
    }

    async fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        on_backend!(self, s => s.get(tree, key).await)
    }

    async fn put_durably(&self, tree: Tree, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        on_backend!(self, s => s.put_durably(tree, key, value).await)
    }

    async fn remove(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        on_backend!(self, s => s.remove(tree, key).await)
    }

    /// Every (key, value) of a tree, in key order (`store migrate`, `accounts`).
    pub async fn entries(&self, tree: Tree) -> Result<Entries, StoreError> {
        self.observed("entries_get", async {
            on_backend!(self, s => s.entries(tree).await)
        })
        .await
    }

    /// Make the given trees hold exactly these entries, durably (`store migrate`; on
    /// PostgreSQL one transaction).
    pub async fn replace_all(&self, trees: &[(Tree, Entries)]) -> Result<(), StoreError> {
        self.observed("entries_replace", async {
            on_backend!(self, s => s.replace_all(trees).await)
        })
        .await
    }

    /// A sealed token record of an account, if any.
    pub async fn token(&self, account: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.observed("token_get", self.get(Tree::Tokens, account.as_bytes()))
            .await
    }

    /// Store a sealed token record, durable before returning: a rotated refresh token must
    /// survive a crash before the old one could be needed again.
    pub async fn put_token_durably(
        &self,
        account: &str,
        sealed: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.observed(
            "token_put",
            self.put_durably(Tree::Tokens, account.as_bytes(), sealed),
        )
        .await
    }

    /// Whether any sealed token is stored (then the key must be the one that sealed it).
    pub async fn has_tokens(&self) -> Result<bool, StoreError> {
        self.observed("tokens_any", async {
            on_backend!(self, s => s.is_empty(Tree::Tokens).await.map(|empty| !empty))
        })
        .await
    }

    /// The sealed key-check value, if the store has one.
    pub async fn key_check(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.observed("key_check_get", self.get(Tree::Meta, KEY_CHECK))
            .await
    }

    /// Keep the sealed key-check value (durable).
    pub async fn set_key_check(&self, sealed: Vec<u8>) -> Result<(), StoreError> {
        self.observed(
            "key_check_put",
            self.put_durably(Tree::Meta, KEY_CHECK, sealed),
        )
        .await
    }

    /// Make everything written so far durable (sled: flush; PostgreSQL: already committed).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.observed("flush", async {
            match &self.backend {
                Backend::Sled(s) => s.flush().await,
                Backend::Postgres(_) => Ok(()),
            }
        })
        .await
    }

    /// Names of the accounts ops disabled on the ops page.
    pub async fn disabled_accounts(&self) -> Result<Vec<String>, StoreError> {
        let keys = self
            .observed("disabled_get", async {
                on_backend!(self, s => s.keys_with_prefix(Tree::Meta, DISABLED.as_bytes()).await)
            })
            .await?;
        Ok(keys
            .iter()
            .map(|k| String::from_utf8_lossy(&k[DISABLED.len()..]).into_owned())
            .collect())
    }

    /// Disable or enable an account (durable before returning).
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<(), StoreError> {
        let key = format!("{DISABLED}{name}");
        self.observed("disabled_put", async {
            if disabled {
                self.put_durably(Tree::Meta, key.as_bytes(), b"1".to_vec())
                    .await
            } else {
                on_backend!(self, s => s.remove_durably(Tree::Meta, key.as_bytes()).await)
            }
        })
        .await
    }

    /// A 32-byte secret named `name` in the `meta` tree, created (random) on first use and
    /// durable before it is returned, so it never changes under a stored MAC. Every handle,
    /// in every instance, gets the same one.
    pub async fn secret(&self, name: &str) -> Result<[u8; 32], StoreError> {
        let corrupt = |detail: &str| StoreError::Corrupt {
            key: format!("meta/{name}"),
            detail: detail.to_string(),
        };
        let v = self
            .observed("secret_get", async {
                on_backend!(self, s => s.secret(name).await)
            })
            .await?
            .ok_or_else(|| corrupt("vanished"))?;
        <[u8; 32]>::try_from(v.as_slice()).map_err(|_| corrupt("not 32 bytes"))
    }

    /// Keep an authorization flow in progress (`flow/KEY` in `meta`, sealed), durable: the
    /// owner's callback may come back to another instance.
    pub async fn put_flow(&self, key: &str, sealed: Vec<u8>) -> Result<(), StoreError> {
        self.put_durably(Tree::Meta, format!("{FLOW}{key}").as_bytes(), sealed)
            .await
    }

    /// Take an authorization flow (single use: of two instances taking it, one gets it).
    pub async fn take_flow(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = format!("{FLOW}{key}");
        on_backend!(self, s => s.take_durably(Tree::Meta, key.as_bytes()).await)
    }

    /// Another instance sharing this store may be making the same effectful call right now:
    /// mark it as ours (PostgreSQL; `meta` `inflight/<key>` → expiry, unix seconds). `Ok(None)`
    /// when the mark is ours (or there is nobody to share with: sled), `Ok(Some(expiry))` when
    /// another instance holds it.
    pub async fn claim_call(
        &self,
        key: &[u8],
        expires_unix: u64,
    ) -> Result<Option<u64>, StoreError> {
        let Backend::Postgres(s) = &self.backend else {
            return Ok(None);
        };
        let key = [INFLIGHT, key].concat();
        self.observed("inflight_claim", async {
            let value = expires_unix.to_be_bytes().to_vec();
            if s.create(Tree::Meta, &key, value.clone()).await? {
                return Ok(None);
            }
            match mark_until(s.get(Tree::Meta, &key).await?) {
                // Left by an instance that died mid-call (or already released): take it over.
                Some(t) if t > unix_now() => Ok(Some(t)),
                _ => {
                    s.put_durably(Tree::Meta, &key, value).await?;
                    Ok(None)
                }
            }
        })
        .await
    }

    /// Whether another instance still marks the call as in flight (see [`Store::claim_call`]).
    pub async fn call_in_flight(&self, key: &[u8]) -> Result<bool, StoreError> {
        let Backend::Postgres(s) = &self.backend else {
            return Ok(false);
        };
        let key = [INFLIGHT, key].concat();
        self.observed("inflight_get", async {
            Ok(mark_until(s.get(Tree::Meta, &key).await?).is_some_and(|t| t > unix_now()))
        })
        .await
    }

    /// The call is over (its answer kept, delivered or failed): remove its mark.
    pub async fn release_call(&self, key: &[u8]) -> Result<(), StoreError> {
        let Backend::Postgres(s) = &self.backend else {
            return Ok(());
        };
        let key = [INFLIGHT, key].concat();
        self.observed("inflight_release", s.remove(Tree::Meta, &key))
            .await
    }

    /// A ShipConfirm digest record.
    pub async fn digest(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.observed("digest_get", self.get(Tree::Digests, key))
            .await
    }

    /// Write a digest record, durable before returning (the client gets the digest next).
    pub async fn put_digest_durably(&self, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        self.observed("digest_put", self.put_durably(Tree::Digests, key, value))
            .await
    }

    /// Replace a digest record only if it still is `old` (durable); false if it changed.
    pub async fn swap_digest_durably(
        &self,
        key: &[u8],
        old: &[u8],
        new: Vec<u8>,
    ) -> Result<bool, StoreError> {
        self.observed("digest_swap", async {
            on_backend!(self, s => s.swap_durably(Tree::Digests, key, old, new).await)
        })
        .await
    }

    pub async fn remove_digest(&self, key: &[u8]) -> Result<(), StoreError> {
        self.observed("digest_remove", self.remove(Tree::Digests, key))
            .await
    }

    /// A kept answer (sealed).
    pub async fn replay(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.observed("replay_get", self.get(Tree::Replays, key))
            .await
    }

    /// Keep an answer, durable before returning (a kill -9 right after must not lose it).
    pub async fn put_replay_durably(&self, key: &[u8], sealed: Vec<u8>) -> Result<(), StoreError> {
        self.observed("replay_put", self.put_durably(Tree::Replays, key, sealed))
            .await
    }

    pub async fn remove_replay(&self, key: &[u8]) -> Result<(), StoreError> {
        self.observed("replay_remove", self.remove(Tree::Replays, key))
            .await
    }

    /// How many answers are kept.
    pub async fn replays_kept(&self) -> Result<usize, StoreError> {
        self.observed("replays_count", async {
            on_backend!(self, s => s.len(Tree::Replays).await)
        })
        .await
    }
}

pub use postgres::InstanceMap;

impl InstanceMap {
    /// The record of importing `records` now.
    pub fn of(records: &[AccountRecord]) -> InstanceMap {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        let mut sorted: Vec<&AccountRecord> = records.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        for r in &sorted {
            hash.update(account_value(r));
        }
        InstanceMap {
            accounts: sorted.iter().map(|r| r.name.clone()).collect(),
            digest: hash.finalize().iter().map(|b| format!("{b:02x}")).collect(),
            imported_at_unix: unix_now(),
        }
    }
}

/// The right to renew one account's token ([`Store::token_lease`]).
pub struct TokenLease {
    account: String,
    store: Store,
    held: Held,
}

enum Held {
    /// sled: one process owns the store.
    Alone,
    Postgres(Box<postgres::PgLease>),
}

impl TokenLease {
    /// The account's sealed token record as stored now (another instance may have renewed
    /// it while this one waited for the lease).
    pub async fn token(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        let (store, account, held) = (&self.store, &self.account, &mut self.held);
        store
            .observed("lease_token_get", async {
                match held {
                    Held::Alone => store.get(Tree::Tokens, account.as_bytes()).await,
                    Held::Postgres(lease) => lease.get(Tree::Tokens, account.as_bytes()).await,
                }
            })
            .await
    }

    /// Store the renewed record (durable) and end the lease.
    pub async fn commit_token(self, sealed: Vec<u8>) -> Result<(), StoreError> {
        let TokenLease {
            account,
            store,
            held,
        } = self;
        store
            .observed("lease_token_put", async {
                match held {
                    Held::Alone => {
                        store
                            .put_durably(Tree::Tokens, account.as_bytes(), sealed)
                            .await
                    }
                    Held::Postgres(lease) => {
                        lease
                            .commit_put(Tree::Tokens, account.as_bytes(), sealed)
                            .await
                    }
                }
            })
            .await
    }

    /// End the lease without storing anything.
    pub async fn release(self) {
        if let Held::Postgres(lease) = self.held {
            lease.release().await
        }
    }
}

/// Make `dir` (created if missing) readable by this user only: 0700, and its files 0600.
/// The store holds argon2 hashes, access keys, sealed tokens and ShipConfirm records; files
/// created later are private too (serve runs with umask 077).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    fn tighten(dir: &Path, depth: usize) -> std::io::Result<()> {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() && depth > 0 {
                tighten(&entry.path(), depth - 1)?;
            } else if kind.is_file() {
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
            }
        }
        Ok(())
    }
    tighten(dir, 2)
}

/// The expiry (unix seconds) an in-flight mark holds.
fn mark_until(value: Option<Vec<u8>>) -> Option<u64> {
    value
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map(u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each public call is counted once under its own name (a call built on another one
    /// is not counted twice), and the ping sets the up gauge.
    #[tokio::test]
    async fn every_call_is_counted_once_by_operation_and_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s")).await.unwrap();
        let m = store.metrics().clone();
        store
            .put_token_durably("east", b"sealed".to_vec())
            .await
            .unwrap();
        assert_eq!(store.token("east").await.unwrap(), Some(b"sealed".to_vec()));
        let mut lease = store
            .token_lease("east", Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(lease.token().await.unwrap(), Some(b"sealed".to_vec()));
        lease.commit_token(b"renewed".to_vec()).await.unwrap();
        store.accounts().await.unwrap();
        store.ping().await.unwrap();
        for op in [
            "token_put",
            "token_get",
            "token_lease",
            "lease_token_get",
            "lease_token_put",
            "accounts_get",
            "ping",
        ] {
            assert_eq!(m.count("sled", op, Outcome::Ok), 1, "{op}");
        }
        assert_eq!(m.count("sled", "entries_get", Outcome::Ok), 0);
        let text = {
            let registry = prometheus::Registry::new();
            for c in m.collectors() {
                registry.register(c).unwrap();
            }
            let mut out = vec![];
            prometheus::Encoder::encode(
                &prometheus::TextEncoder::new(),
                &registry.gather(),
                &mut out,
            )
            .unwrap();
            String::from_utf8(out).unwrap()
        };
        assert!(
            text.contains("upsbridge_store_up{backend=\"sled\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "upsbridge_store_operation_seconds_count{backend=\"sled\",op=\"token_get\"} 1"
            ),
            "{text}"
        );
        assert!(!text.contains("east"), "no key in a label: {text}");
    }

    #[test]
    fn a_postgres_timeout_is_its_own_outcome() {
        let timeout: Result<(), StoreError> = Err(StoreError::PgTimeout {
            op: "read a record",
            target: "db:5432/upsbridge".into(),
            after: Duration::from_millis(10),
        });
        assert_eq!(Outcome::of(&timeout), Outcome::Timeout);
        let corrupt: Result<(), StoreError> = Err(StoreError::Corrupt {
            key: "k".into(),
            detail: "d".into(),
        });
        assert_eq!(Outcome::of(&corrupt), Outcome::Error);
        assert_eq!(Outcome::of(&Ok::<_, StoreError>(())), Outcome::Ok);
    }
}

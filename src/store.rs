//! The sled store: the imported account map, (encrypted) tokens, and the
//! ShipConfirm digests of the old-XML dialect (tree `digests`, with their MAC
//! secret in tree `meta`).
//!
//! sled allows one process per store; `serve` holds it. Writes that must
//! survive a crash are followed by a flush. This module never sees a secret in
//! clear: token values arrive here already sealed by `oauth::vault`.

use std::path::{Path, PathBuf};

use crate::accounts::map::AccountRecord;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source} (is another upsbridge using it?)")]
    Open { path: PathBuf, source: sled::Error },
    #[error("store I/O failed: {0}")]
    Io(#[from] sled::Error),
    #[error("store record `{key}` is unreadable: {detail}")]
    Corrupt { key: String, detail: String },
}

/// Handle to the open store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    accounts: sled::Tree,
    tokens: sled::Tree,
    meta: sled::Tree,
    digests: sled::Tree,
    /// Sealed answers kept for retried shipments (`pipeline::replay`).
    replays: sled::Tree,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        private_dir(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source: sled::Error::Io(source),
        })?;
        let db = sled::Config::new()
            .path(path)
            .open()
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Store {
            accounts: db.open_tree("accounts")?,
            tokens: db.open_tree("tokens")?,
            meta: db.open_tree("meta")?,
            digests: db.open_tree("digests")?,
            replays: db.open_tree("replays")?,
            db,
        })
    }

    /// Make the stored accounts exactly `records`; drops the tokens of removed accounts.
    /// Returns the names removed. Flushed before returning.
    pub fn replace_accounts(&self, records: &[AccountRecord]) -> Result<Vec<String>, StoreError> {
        let keep: std::collections::HashSet<&str> =
            records.iter().map(|r| r.name.as_str()).collect();
        let mut removed = Vec::new();
        for key in self.accounts.iter().keys() {
            let key = key?;
            let name = String::from_utf8_lossy(&key).into_owned();
            if !keep.contains(name.as_str()) {
                self.accounts.remove(&key)?;
                self.tokens.remove(&key)?;
                removed.push(name);
            }
        }
        for r in records {
            let value = serde_json::to_vec(r).expect("account record serializes");
            self.accounts.insert(r.name.as_bytes(), value)?;
        }
        self.db.flush()?;
        Ok(removed)
    }

    /// The accounts as last imported.
    pub fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        self.accounts
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    detail: e.to_string(),
                })
            })
            .collect()
    }

    /// A sealed token record of an account, if any.
    pub fn token(&self, account: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tokens.get(account.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Store a sealed token record and flush it to disk before returning: a rotated
    /// refresh token must be durable before the old one could be needed again.
    pub async fn put_token_durably(
        &self,
        account: &str,
        sealed: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.tokens.insert(account.as_bytes(), sealed)?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// [`Store::put_token_durably`] for blocking contexts (startup).
    pub fn put_token_blocking(&self, account: &str, sealed: Vec<u8>) -> Result<(), StoreError> {
        self.tokens.insert(account.as_bytes(), sealed)?;
        self.db.flush()?;
        Ok(())
    }

    /// Whether any sealed token is stored (then the key must be the one that sealed it).
    pub fn has_tokens(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The sealed key-check value, if the store has one.
    pub fn key_check(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get("key_check")?.map(|v| v.to_vec()))
    }

    pub fn set_key_check(&self, sealed: Vec<u8>) -> Result<(), StoreError> {
        self.meta.insert("key_check", sealed)?;
        self.db.flush()?;
        Ok(())
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Names of the accounts ops disabled on the ops page.
    pub fn disabled_accounts(&self) -> Result<Vec<String>, StoreError> {
        let mut out = vec![];
        for key in self.meta.scan_prefix("disabled/").keys() {
            let key = key?;
            out.push(String::from_utf8_lossy(&key["disabled/".len()..]).into_owned());
        }
        Ok(out)
    }

    /// Disable or enable an account (flushed before returning).
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<(), StoreError> {
        let key = format!("disabled/{name}");
        if disabled {
            self.meta.insert(key, &b"1"[..])?;
        } else {
            self.meta.remove(key)?;
        }
        self.db.flush_async().await?;
        Ok(())
    }

    /// A 32-byte secret named `name` in the `meta` tree, created (random) on first use
    /// and flushed before it is returned, so it never changes under a stored MAC.
    pub fn secret(&self, name: &str) -> Result<[u8; 32], StoreError> {
        let corrupt = |detail: &str| StoreError::Corrupt {
            key: format!("meta/{name}"),
            detail: detail.to_string(),
        };
        if self.meta.get(name.as_bytes())?.is_none() {
            let fresh: [u8; 32] = rand::random();
            // Another thread may win the race; then its secret is the one.
            let _ = self
                .meta
                .compare_and_swap(name.as_bytes(), None::<&[u8]>, Some(&fresh[..]))?;
            self.db.flush()?;
        }
        let v = self
            .meta
            .get(name.as_bytes())?
            .ok_or_else(|| corrupt("vanished"))?;
        <[u8; 32]>::try_from(v.as_ref()).map_err(|_| corrupt("not 32 bytes"))
    }

    /// A ShipConfirm digest record.
    pub fn digest(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.digests.get(key)?.map(|v| v.to_vec()))
    }

    /// Write a digest record and flush before returning (the client gets the digest next).
    pub async fn put_digest_durably(&self, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        self.digests.insert(key, value)?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// Replace a digest record only if it still is `old` (flushed); false if it changed.
    pub async fn swap_digest_durably(
        &self,
        key: &[u8],
        old: &[u8],
        new: Vec<u8>,
    ) -> Result<bool, StoreError> {
        let swapped = self
            .digests
            .compare_and_swap(key, Some(old), Some(new))?
            .is_ok();
        if swapped {
            self.db.flush_async().await?;
        }
        Ok(swapped)
    }

    pub fn remove_digest(&self, key: &[u8]) -> Result<(), StoreError> {
        self.digests.remove(key)?;
        Ok(())
    }

    /// A kept answer (sealed).
    pub fn replay(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.replays.get(key)?.map(|v| v.to_vec()))
    }

    /// Keep an answer and flush before returning (a kill -9 right after must not lose it).
    pub async fn put_replay_durably(&self, key: &[u8], sealed: Vec<u8>) -> Result<(), StoreError> {
        self.replays.insert(key, sealed)?;
        self.db.flush_async().await?;
        Ok(())
    }

    pub fn remove_replay(&self, key: &[u8]) -> Result<(), StoreError> {
        self.replays.remove(key)?;
        Ok(())
    }

    /// How many answers are kept.
    pub fn replays_kept(&self) -> usize {
        self.replays.len()
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

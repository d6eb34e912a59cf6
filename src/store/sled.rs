//! The sled backend: one embedded database in a directory, one process at a time (sled
//! locks it; `serve` holds it). "Durable" means flushed to disk before returning; flushes
//! from async code go through `flush_async`, which runs on sled's own threads.

use std::path::Path;

use super::{private_dir, Entries, StoreError, Tree};
use crate::accounts::map::AccountRecord;

#[derive(Clone)]
pub struct SledStore {
    db: ::sled::Db,
    accounts: ::sled::Tree,
    tokens: ::sled::Tree,
    meta: ::sled::Tree,
    digests: ::sled::Tree,
    /// Sealed answers kept for retried shipments (`pipeline::replay`).
    replays: ::sled::Tree,
}

/// sled's page cache: small, since requests read the store only for effectful calls
/// (ShipConfirm digests, kept answers), and pages it evicted come back from the OS's cache.
const SLED_CACHE_BYTES: u64 = 2 << 20;

impl SledStore {
    /// Open (or create, private to this user) the store in `path`. Blocking: startup only.
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        private_dir(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source: ::sled::Error::Io(source),
        })?;
        let db = ::sled::Config::new()
            .path(path)
            // sled's page cache defaults to 1 GiB and keeps every page it has read.
            .cache_capacity(SLED_CACHE_BYTES)
            .open()
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(SledStore {
            accounts: db.open_tree("accounts")?,
            tokens: db.open_tree("tokens")?,
            meta: db.open_tree("meta")?,
            digests: db.open_tree("digests")?,
            replays: db.open_tree("replays")?,
            db,
        })
    }

    fn tree(&self, tree: Tree) -> &::sled::Tree {
        match tree {
            Tree::Accounts => &self.accounts,
            Tree::Tokens => &self.tokens,
            Tree::Meta => &self.meta,
            Tree::Digests => &self.digests,
            Tree::Replays => &self.replays,
        }
    }

    pub async fn replace_accounts(
        &self,
        records: &[AccountRecord],
    ) -> Result<Vec<String>, StoreError> {
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
            self.accounts
                .insert(r.name.as_bytes(), super::account_value(r))?;
        }
        self.db.flush_async().await?;
        Ok(removed)
    }

    pub async fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree(tree).get(key)?.map(|v| v.to_vec()))
    }

    /// Insert and flush before returning.
    pub async fn put_durably(
        &self,
        tree: Tree,
        key: &[u8],
        value: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.tree(tree).insert(key, value)?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// Remove (not flushed: a removal lost in a crash only leaves a record that expires).
    pub async fn remove(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.tree(tree).remove(key)?;
        Ok(())
    }

    pub async fn remove_durably(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.tree(tree).remove(key)?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// Remove a record and return it (atomic: of two takers one gets it), durably.
    pub async fn take_durably(
        &self,
        tree: Tree,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let old = self.tree(tree).remove(key)?;
        if old.is_some() {
            self.db.flush_async().await?;
        }
        Ok(old.map(|v| v.to_vec()))
    }

    pub async fn is_empty(&self, tree: Tree) -> Result<bool, StoreError> {
        Ok(self.tree(tree).is_empty())
    }

    pub async fn len(&self, tree: Tree) -> Result<usize, StoreError> {
        Ok(self.tree(tree).len())
    }

    pub async fn keys_with_prefix(
        &self,
        tree: Tree,
        prefix: &[u8],
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = vec![];
        for key in self.tree(tree).scan_prefix(prefix).keys() {
            out.push(key?.to_vec());
        }
        Ok(out)
    }

    /// Every (key, value) of a tree, in key order.
    pub async fn entries(&self, tree: Tree) -> Result<Entries, StoreError> {
        self.tree(tree)
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    }

    /// Make every tree exactly `trees` (flushed). Used by `store migrate`.
    pub async fn replace_all(&self, trees: &[(Tree, Entries)]) -> Result<(), StoreError> {
        for (tree, entries) in trees {
            let t = self.tree(*tree);
            t.clear()?;
            for (k, v) in entries {
                t.insert(k.as_slice(), v.as_slice())?;
            }
        }
        self.db.flush_async().await?;
        Ok(())
    }

    pub async fn secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if self.meta.get(name.as_bytes())?.is_none() {
            let fresh: [u8; 32] = rand::random();
            // Another thread may win the race; then its secret is the one.
            let _ = self
                .meta
                .compare_and_swap(name.as_bytes(), None::<&[u8]>, Some(&fresh[..]))?;
            self.db.flush_async().await?;
        }
        Ok(self.meta.get(name.as_bytes())?.map(|v| v.to_vec()))
    }

    pub async fn swap_durably(
        &self,
        tree: Tree,
        key: &[u8],
        old: &[u8],
        new: Vec<u8>,
    ) -> Result<bool, StoreError> {
        let swapped = self
            .tree(tree)
            .compare_and_swap(key, Some(old), Some(new))?
            .is_ok();
        if swapped {
            self.db.flush_async().await?;
        }
        Ok(swapped)
    }

    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }
}

//! `upsbridge store migrate`: copy every tree of one store into another (sled into
//! PostgreSQL, or back), bytes unchanged: tokens stay sealed with the same key, so they keep
//! working without authorizing again. The target's trees become exactly the source's; a
//! target that already holds tokens is refused unless forced. Only counts are reported,
//! never a key or a value.

use std::path::PathBuf;
use std::time::Duration;

use super::{Location, Store, StoreError, Tree};
use crate::config::{PostgresConfig, PostgresTls};

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the target store already holds tokens; refusing to replace them (pass --force to make the target an exact copy of the source, dropping what it holds)")]
    TargetHasTokens,
    #[error("{0}")]
    Usage(String),
    #[error("cannot start: {0}")]
    Runtime(#[source] std::io::Error),
}

/// `store migrate`'s arguments.
#[derive(Debug, Clone)]
pub struct Options {
    /// `sled:PATH` or `postgres:URL`.
    pub from: String,
    pub to: String,
    /// For a `postgres:` end: as `[store] password_file`, `tls`, `ca_file`, `timeout_ms`.
    pub password_file: Option<PathBuf>,
    pub tls: PostgresTls,
    pub timeout: Duration,
    pub force: bool,
}

/// One end of a migration.
enum End {
    Sled(PathBuf),
    Postgres(Box<PostgresConfig>),
}

impl End {
    fn parse(which: &str, text: &str, o: &Options) -> Result<End, MigrateError> {
        if let Some(path) = text.strip_prefix("sled:") {
            return Ok(End::Sled(PathBuf::from(path)));
        }
        if let Some(url) = text.strip_prefix("postgres:") {
            // `postgres:postgres://…` and `postgres:host=/dir …`; the URL is never echoed.
            let connect = crate::config::parse_postgres_url(url)
                .map_err(|why| MigrateError::Usage(format!("--{which}: the URL {why}")))?;
            return Ok(End::Postgres(Box::new(PostgresConfig {
                connect,
                url: url.to_string().into(),
                password_file: o.password_file.clone(),
                tls: o.tls.clone(),
                timeout: o.timeout,
                instance: Some("store-migrate".into()),
            })));
        }
        Err(MigrateError::Usage(format!(
            "--{which} must be sled:PATH or postgres:URL (postgres:postgres://USER@HOST:PORT/DB)"
        )))
    }

    async fn open(&self, source: bool) -> Result<Store, MigrateError> {
        match self {
            End::Sled(path) => {
                if source && !path.join("db").exists() {
                    return Err(MigrateError::Usage(format!(
                        "no sled store at {}",
                        path.display()
                    )));
                }
                Ok(Store::open(Location::Sled(path)).await?)
            }
            End::Postgres(config) => Ok(Store::open(Location::Postgres(config)).await?),
        }
    }
}

/// `upsbridge store migrate`: open both ends (a sled store that `serve` holds is refused by
/// sled's own lock), copy, and report the counts.
pub fn run(o: &Options) -> Result<Copied, MigrateError> {
    let from = End::parse("from", &o.from, o)?;
    let to = End::parse("to", &o.to, o)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(MigrateError::Runtime)?;
    rt.block_on(async {
        let source = from.open(true).await?;
        let target = to.open(false).await?;
        let copied = copy(&source, &target, o.force).await?;
        target.flush().await?;
        Ok(copied)
    })
}

/// What was copied: entries per tree, and what `meta` held.
#[derive(Debug, Clone, Default)]
pub struct Copied {
    pub trees: Vec<(Tree, usize)>,
    /// `meta` had the key-check value.
    pub key_check: bool,
    /// `meta` entries that are secrets (e.g. the digest MAC key).
    pub secrets: usize,
    /// Accounts ops had disabled.
    pub disabled: usize,
    /// Entries the target held before, now replaced.
    pub replaced: usize,
}

impl std::fmt::Display for Copied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (tree, n) in &self.trees {
            write!(f, "{}: {n}", tree.name())?;
            if *tree == Tree::Meta {
                write!(
                    f,
                    " (key check: {}, secrets: {}, disabled accounts: {})",
                    if self.key_check { "yes" } else { "no" },
                    self.secrets,
                    self.disabled
                )?;
            }
            writeln!(f)?;
        }
        write!(
            f,
            "entries the target held before, replaced: {}",
            self.replaced
        )
    }
}

/// Copy `from` into `to`. `force`: even when `to` already holds tokens.
pub async fn copy(from: &Store, to: &Store, force: bool) -> Result<Copied, MigrateError> {
    if to.has_tokens().await? && !force {
        return Err(MigrateError::TargetHasTokens);
    }
    let mut replaced = 0;
    for tree in Tree::ALL {
        replaced += to.entries(tree).await?.len();
    }
    let mut trees = Vec::with_capacity(Tree::ALL.len());
    for tree in Tree::ALL {
        trees.push((tree, from.entries(tree).await?));
    }
    let mut copied = Copied {
        replaced,
        ..Copied::default()
    };
    for (tree, entries) in &trees {
        copied.trees.push((*tree, entries.len()));
        if *tree == Tree::Meta {
            for (k, _) in entries {
                if k.as_slice() == super::KEY_CHECK {
                    copied.key_check = true;
                } else if k.starts_with(super::DISABLED.as_bytes()) {
                    copied.disabled += 1;
                } else {
                    copied.secrets += 1;
                }
            }
        }
    }
    to.replace_all(&trees).await?;
    Ok(copied)
}

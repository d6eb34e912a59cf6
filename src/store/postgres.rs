//! The PostgreSQL backend: the five trees in one table, so several upsbridge instances
//! share accounts, tokens, digests and kept answers.
//!
//! - Schema: `upsbridge_kv(tree, key, value, updated_at)` keyed by `(tree, key)`, and
//!   `upsbridge_schema(version, applied_at)`. [`MIGRATIONS`] are applied at open, in one
//!   transaction that first takes `pg_advisory_xact_lock(`[`MIGRATION_LOCK`]`)`: two instances
//!   starting at once apply each version once (the second waits, then finds it applied; the
//!   version's primary key refuses a second row anyway). The transaction-scoped lock is
//!   released by commit or rollback, so no pooled connection is ever left holding it.
//! - "Durable" means committed (with the server's default `synchronous_commit`).
//! - Compare-and-swap is `UPDATE … WHERE tree AND key AND value = old`; a secret is
//!   `INSERT … ON CONFLICT DO NOTHING` then `SELECT`, so every instance reads the winner's.
//! - Every operation (waiting for a pooled connection, connecting, the query) is bounded by
//!   `[store] timeout_ms`; a connection whose query timed out is closed, not pooled again.
//!   After PostgreSQL restarts, the pool drops the broken connections and makes new ones;
//!   an idempotent operation that met a connection closed under it is tried once more.
//! - Neither the password nor the URL is ever in a message: the target is `HOST:PORT/DB`.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::{Entries, StoreError, Tree};
use crate::accounts::map::AccountRecord;
use crate::config::{PostgresConfig, PostgresTls};

/// The advisory lock migrations run under (an arbitrary constant, "upsbrdg" in ASCII).
pub const MIGRATION_LOCK: i64 = 0x0075_7073_6272_6467;

/// Schema versions in order; never edit an applied one, add the next.
pub const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "CREATE TABLE upsbridge_kv (
         tree text NOT NULL,
         key bytea NOT NULL,
         value bytea NOT NULL,
         updated_at timestamptz NOT NULL DEFAULT now(),
         PRIMARY KEY (tree, key)
     )",
)];

/// The advisory lock the account-map import runs under (one instance at a time).
const ACCOUNTS_LOCK: i64 = 0x0075_7073_6163_6374;

/// An account's token lease: its advisory lock, held by the transaction that renews it.
const LEASE: &str = "SELECT pg_advisory_xact_lock(hashtextextended('upsbridge-token/' || $1, 0))";

/// The holders of token leases: a bigint advisory lock is `classid` (high 32 bits) and
/// `objid` (low 32 bits) in `pg_locks`.
const LEASE_HOLDERS: &str = "SELECT a.name, coalesce(s.application_name, '')
     FROM unnest($1::text[]) AS a(name)
     JOIN pg_locks l ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND ((l.classid::int8 << 32) | l.objid::int8) = hashtextextended('upsbridge-token/' || a.name, 0)
     JOIN pg_stat_activity s ON s.pid = l.pid
     ORDER BY a.name";

/// Per-instance map records in `meta`: `map/<instance>` → [`InstanceMap`] (JSON).
const MAP_PREFIX: &[u8] = b"map/";

/// The environment variable that holds the database password (overrides `password_file`).
pub const PASSWORD_ENV: &str = "UPSBRIDGE_STORE_PASSWORD";

const PING: &str = "SELECT 1";
const GET: &str = "SELECT value FROM upsbridge_kv WHERE tree = $1 AND key = $2";
const PUT: &str = "INSERT INTO upsbridge_kv (tree, key, value) VALUES ($1, $2, $3)
     ON CONFLICT (tree, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()";
const CREATE_RETURNING: &str = "INSERT INTO upsbridge_kv (tree, key, value) VALUES ($1, $2, $3)
     ON CONFLICT (tree, key) DO NOTHING RETURNING 1";
const TAKE: &str = "DELETE FROM upsbridge_kv WHERE tree = $1 AND key = $2 RETURNING value";
const REMOVE: &str = "DELETE FROM upsbridge_kv WHERE tree = $1 AND key = $2";
const SWAP: &str = "UPDATE upsbridge_kv SET value = $4, updated_at = now()
     WHERE tree = $1 AND key = $2 AND value = $3 RETURNING 1";
const ANY: &str = "SELECT EXISTS (SELECT 1 FROM upsbridge_kv WHERE tree = $1)";
const COUNT: &str = "SELECT count(*) FROM upsbridge_kv WHERE tree = $1";
const ENTRIES: &str = "SELECT key, value FROM upsbridge_kv WHERE tree = $1 ORDER BY key";
const PREFIX: &str = "SELECT key FROM upsbridge_kv
     WHERE tree = $1 AND substr(key, 1, length($2::bytea)) = $2::bytea ORDER BY key";
const PREFIX_VALUES: &str = "SELECT key, value FROM upsbridge_kv
     WHERE tree = $1 AND substr(key, 1, length($2::bytea)) = $2::bytea ORDER BY key";
const CREATE: &str = "INSERT INTO upsbridge_kv (tree, key, value) VALUES ($1, $2, $3)
     ON CONFLICT (tree, key) DO NOTHING";
/// Upsert many rows of one tree in one statement (only changed values are rewritten).
const PUT_MANY: &str = "INSERT INTO upsbridge_kv (tree, key, value)
     SELECT $1, k, v FROM unnest($2::bytea[], $3::bytea[]) AS t (k, v)
     ON CONFLICT (tree, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
     WHERE upsbridge_kv.value IS DISTINCT FROM EXCLUDED.value";

/// May an operation be tried again on a fresh connection when its connection was found
/// closed (PostgreSQL restarted)? Only when doing it twice is the same as doing it once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Again {
    IfClosed,
    Never,
}

/// Handle to the pool; cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    timeout: Duration,
    /// `HOST:PORT/DB`, for messages (no password, no URL).
    target: Arc<str>,
    /// This instance's name among those sharing the database.
    instance: Arc<str>,
}

impl PgStore {
    /// Connect, and bring the schema to this version's.
    pub async fn open(config: &PostgresConfig) -> Result<PgStore, StoreError> {
        let mut connect = config.connect.clone();
        if let Some(password) = password(config)? {
            connect.password(password.expose_secret().as_bytes());
        }
        connect.connect_timeout(config.timeout);
        if connect.get_application_name().is_none() {
            // Names the lease holder in pg_stat_activity (and on the ops page).
            let name = match &config.instance {
                Some(instance) => format!("upsbridge/{instance}"),
                None => "upsbridge".into(),
            };
            connect.application_name(&name);
        }
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &config.tls {
            PostgresTls::Disable => {
                connect.ssl_mode(tokio_postgres::config::SslMode::Disable);
                Manager::from_config(connect, tokio_postgres::NoTls, manager_config)
            }
            PostgresTls::Require { ca_file } => {
                connect.ssl_mode(tokio_postgres::config::SslMode::Require);
                let tls =
                    tokio_postgres_rustls::MakeRustlsConnect::new(client_tls(ca_file.as_deref())?);
                Manager::from_config(connect, tls, manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(8)
            .build()
            .map_err(StoreError::PgPool)?;
        let store = PgStore {
            pool,
            timeout: config.timeout,
            target: config.target().into(),
            instance: config.instance.as_deref().unwrap_or("upsbridge").into(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The connection pool, for what goes beyond the key-value trees (advisory locks held
    /// for a token refresh, LISTEN/NOTIFY). Bound what you do with [`PgStore::timeout`].
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// `[store] timeout_ms`.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `HOST:PORT/DB` (never a password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// This instance's name among those sharing the database (`[store] instance`).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    fn timed_out(&self, op: &'static str) -> StoreError {
        StoreError::PgTimeout {
            op,
            target: self.target.to_string(),
            after: self.timeout,
        }
    }

    fn failed(&self, op: &'static str, source: tokio_postgres::Error) -> StoreError {
        StoreError::PgQuery {
            op,
            target: self.target.to_string(),
            source,
        }
    }

    /// A pooled connection before `deadline`.
    async fn client(&self, op: &'static str, deadline: Instant) -> Result<Object, StoreError> {
        match tokio::time::timeout_at(deadline, self.pool.get()).await {
            Err(_) => Err(self.timed_out(op)),
            Ok(Err(source)) => Err(StoreError::PgConnect {
                op,
                target: self.target.to_string(),
                source,
            }),
            Ok(Ok(client)) => Ok(client),
        }
    }

    /// One statement, within the timeout.
    async fn rows(
        &self,
        op: &'static str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        again: Again,
    ) -> Result<Vec<Row>, StoreError> {
        let deadline = Instant::now() + self.timeout;
        let mut tries = 0;
        loop {
            tries += 1;
            let client = self.client(op, deadline).await?;
            let result = tokio::time::timeout_at(deadline, async {
                let statement = client.prepare_cached(sql).await?;
                client.query(&statement, params).await
            })
            .await;
            match result {
                Ok(Ok(rows)) => return Ok(rows),
                Ok(Err(e)) if again == Again::IfClosed && tries == 1 && client.is_closed() => {
                    // The connection died under us (PostgreSQL restarted): the pool drops
                    // it, and the operation goes to a fresh one.
                    tracing::debug!(op, error = %e, "PostgreSQL connection was closed; trying once more");
                    continue;
                }
                Ok(Err(e)) => return Err(self.failed(op, e)),
                Err(_) => {
                    // Its answer may still come: never give this connection to anyone else.
                    drop(Object::take(client));
                    return Err(self.timed_out(op));
                }
            }
        }
    }

    /// A query as cheap as there is (`SELECT 1`), within the timeout: is the database there?
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.rows("answer a ping", PING, &[], Again::IfClosed)
            .await
            .map(drop)
    }

    pub async fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = self
            .rows("read a record", GET, &[&tree.name(), &key], Again::IfClosed)
            .await?;
        Ok(rows.first().map(|r| r.get::<_, Vec<u8>>(0)))
    }

    pub async fn put_durably(
        &self,
        tree: Tree,
        key: &[u8],
        value: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.rows(
            "write a record",
            PUT,
            &[&tree.name(), &key, &value],
            Again::IfClosed,
        )
        .await?;
        Ok(())
    }

    pub async fn remove(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.rows(
            "remove a record",
            REMOVE,
            &[&tree.name(), &key],
            Again::IfClosed,
        )
        .await?;
        Ok(())
    }

    pub async fn remove_durably(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.remove(tree, key).await
    }

    /// Create a record only if there is none; true if this call created it.
    pub async fn create(&self, tree: Tree, key: &[u8], value: Vec<u8>) -> Result<bool, StoreError> {
        // Not tried again: a create whose answer was lost may have happened.
        let rows = self
            .rows(
                "create a record",
                CREATE_RETURNING,
                &[&tree.name(), &key, &value],
                Again::Never,
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// Remove a record and return it (atomic: of two takers one gets it).
    pub async fn take_durably(
        &self,
        tree: Tree,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        // Not tried again: a take whose answer was lost did happen.
        let rows = self
            .rows("take a record", TAKE, &[&tree.name(), &key], Again::Never)
            .await?;
        Ok(rows.first().map(|r| r.get::<_, Vec<u8>>(0)))
    }

    pub async fn is_empty(&self, tree: Tree) -> Result<bool, StoreError> {
        let rows = self
            .rows("look for records", ANY, &[&tree.name()], Again::IfClosed)
            .await?;
        Ok(!rows.first().is_some_and(|r| r.get::<_, bool>(0)))
    }

    pub async fn len(&self, tree: Tree) -> Result<usize, StoreError> {
        let rows = self
            .rows("count records", COUNT, &[&tree.name()], Again::IfClosed)
            .await?;
        Ok(rows
            .first()
            .map_or(0, |r| usize::try_from(r.get::<_, i64>(0)).unwrap_or(0)))
    }

    pub async fn keys_with_prefix(
        &self,
        tree: Tree,
        prefix: &[u8],
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let rows = self
            .rows(
                "list records",
                PREFIX,
                &[&tree.name(), &prefix],
                Again::IfClosed,
            )
            .await?;
        Ok(rows.iter().map(|r| r.get::<_, Vec<u8>>(0)).collect())
    }

    pub async fn entries(&self, tree: Tree) -> Result<Entries, StoreError> {
        let rows = self
            .rows("read records", ENTRIES, &[&tree.name()], Again::IfClosed)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let fresh: [u8; 32] = rand::random();
        let key = name.as_bytes();
        self.rows(
            "create a secret",
            CREATE,
            &[&Tree::Meta.name(), &key, &&fresh[..]],
            Again::IfClosed,
        )
        .await?;
        // Whoever inserted first, this reads the one stored.
        self.get(Tree::Meta, key).await
    }

    pub async fn swap_durably(
        &self,
        tree: Tree,
        key: &[u8],
        old: &[u8],
        new: Vec<u8>,
    ) -> Result<bool, StoreError> {
        // Not tried again: a swap whose answer was lost may have happened.
        let rows = self
            .rows(
                "swap a record",
                SWAP,
                &[&tree.name(), &key, &old, &new],
                Again::Never,
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// This instance's map becomes `records`: recorded under `map/<instance>`, the account
    /// records written, and the accounts (with their tokens) that no instance's map has any
    /// more removed. An account only another instance's map still lists keeps its tokens.
    pub async fn replace_accounts(
        &self,
        instance: &str,
        map: &InstanceMap,
        records: &[AccountRecord],
    ) -> Result<Vec<String>, StoreError> {
        const OP: &str = "replace the accounts";
        let deadline = Instant::now() + self.timeout;
        let mut client = self.client(OP, deadline).await?;
        let keys: Vec<Vec<u8>> = records.iter().map(|r| r.name.as_bytes().to_vec()).collect();
        let values: Vec<Vec<u8>> = records.iter().map(super::account_value).collect();
        let map_key = [MAP_PREFIX, instance.as_bytes()].concat();
        let map_value = serde_json::to_vec(map).expect("instance map serializes");
        let work = async {
            let tx = client.transaction().await?;
            // One import at a time, so two instances reloading at once do not interleave.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ACCOUNTS_LOCK])
                .await?;
            tx.execute(PUT, &[&Tree::Meta.name(), &map_key, &map_value])
                .await?;
            let mut listed: std::collections::HashSet<Vec<u8>> = keys.iter().cloned().collect();
            for row in tx
                .query(PREFIX_VALUES, &[&Tree::Meta.name(), &MAP_PREFIX])
                .await?
            {
                if let Ok(other) = serde_json::from_slice::<InstanceMap>(&row.get::<_, Vec<u8>>(1))
                {
                    listed.extend(other.accounts.into_iter().map(String::into_bytes));
                }
            }
            let listed: Vec<Vec<u8>> = listed.into_iter().collect();
            let removed: Vec<Vec<u8>> = tx
                .query(
                    "SELECT key FROM upsbridge_kv WHERE tree = $1 AND NOT (key = ANY($2))",
                    &[&Tree::Accounts.name(), &listed],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            tx.execute(
                "DELETE FROM upsbridge_kv WHERE tree = ANY($1) AND key = ANY($2)",
                &[
                    &[Tree::Accounts.name(), Tree::Tokens.name()].as_slice(),
                    &removed,
                ],
            )
            .await?;
            tx.execute(PUT_MANY, &[&Tree::Accounts.name(), &keys, &values])
                .await?;
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(removed)
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(Ok(removed)) => Ok(removed
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect()),
            Ok(Err(e)) => Err(self.failed(OP, e)),
            Err(_) => {
                drop(Object::take(client));
                Err(self.timed_out(OP))
            }
        }
    }

    /// Every instance's last imported map, by instance name.
    pub async fn instance_maps(&self) -> Result<Vec<(String, InstanceMap)>, StoreError> {
        let rows = self
            .rows(
                "read the instances' maps",
                PREFIX_VALUES,
                &[&Tree::Meta.name(), &MAP_PREFIX],
                Again::IfClosed,
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let key: Vec<u8> = r.get(0);
                let map = serde_json::from_slice(&r.get::<_, Vec<u8>>(1)).ok()?;
                let name = String::from_utf8_lossy(&key[MAP_PREFIX.len()..]).into_owned();
                Some((name, map))
            })
            .collect())
    }

    /// Which of `accounts` have their token lease held right now (a renewal in progress),
    /// and by which instance (its connection's `application_name`, `upsbridge/<instance>`).
    pub async fn lease_holders(
        &self,
        accounts: &[String],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = self
            .rows(
                "list the token leases held",
                LEASE_HOLDERS,
                &[&accounts],
                Again::IfClosed,
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let holder: String = r.get(1);
                let holder = holder.strip_prefix("upsbridge/").unwrap_or(&holder);
                (r.get(0), holder.to_string())
            })
            .collect())
    }

    /// Take `account`'s token lease, waiting at most `wait` for another instance to release
    /// it (it holds it only while it renews that token).
    pub async fn lease(&self, account: &str, wait: Duration) -> Result<PgLease, StoreError> {
        const OP: &str = "take the account's token lease";
        let deadline = Instant::now() + self.timeout + wait;
        let client = self.client(OP, deadline).await?;
        let lease = PgLease {
            client: Some(client),
            store: self.clone(),
            deadline,
        };
        let wait_ms = wait.as_millis().clamp(1, i32::MAX as u128);
        let work = async {
            let c = lease
                .client
                .as_ref()
                .expect("a new lease holds its connection");
            c.batch_execute(&format!("BEGIN; SET LOCAL lock_timeout = {wait_ms}"))
                .await?;
            c.execute(LEASE, &[&account]).await?;
            Ok::<_, tokio_postgres::Error>(())
        };
        // On any failure the lease is dropped, which closes its connection.
        match tokio::time::timeout_at(deadline, work).await {
            Ok(Ok(())) => Ok(lease),
            Ok(Err(e)) => Err(self.failed(OP, e)),
            Err(_) => Err(self.timed_out(OP)),
        }
    }

    /// Make the given trees hold exactly these entries, in one transaction.
    pub async fn replace_all(&self, trees: &[(Tree, Entries)]) -> Result<(), StoreError> {
        const OP: &str = "copy the store in";
        // A copy can be large: allow it ten times the per-query bound.
        let deadline = Instant::now() + self.timeout * 10;
        let mut client = self.client(OP, deadline).await?;
        let work = async {
            let tx = client.transaction().await?;
            for (tree, entries) in trees {
                tx.execute("DELETE FROM upsbridge_kv WHERE tree = $1", &[&tree.name()])
                    .await?;
                let keys: Vec<&[u8]> = entries.iter().map(|(k, _)| k.as_slice()).collect();
                let values: Vec<&[u8]> = entries.iter().map(|(_, v)| v.as_slice()).collect();
                tx.execute(PUT_MANY, &[&tree.name(), &keys, &values])
                    .await?;
            }
            tx.commit().await
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.failed(OP, e)),
            Err(_) => {
                drop(Object::take(client));
                Err(self.timed_out(OP))
            }
        }
    }

    /// Apply the migrations this version knows and the database lacks.
    async fn migrate(&self) -> Result<(), StoreError> {
        const OP: &str = "apply the schema";
        let deadline = Instant::now() + self.timeout;
        let mut client = self.client(OP, deadline).await?;
        let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        let work = async {
            let tx = client.transaction().await?;
            tx.batch_execute(&format!(
                "SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
                 CREATE TABLE IF NOT EXISTS upsbridge_schema (
                     version int PRIMARY KEY,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 )"
            ))
            .await?;
            let found: i32 = tx
                .query_one(
                    "SELECT coalesce(max(version), 0) FROM upsbridge_schema",
                    &[],
                )
                .await?
                .get(0);
            if found > known {
                return Ok(Err(found));
            }
            let mut applied = vec![];
            for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
                tx.batch_execute(sql).await?;
                tx.execute(
                    "INSERT INTO upsbridge_schema (version, applied_at) VALUES ($1, now())",
                    &[version],
                )
                .await?;
                applied.push(*version);
            }
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(Ok(applied))
        };
        let result = tokio::time::timeout_at(deadline, work).await;
        // A connection that ran DDL keeps no cached statements worth keeping: close it.
        drop(Object::take(client));
        match result {
            Ok(Ok(Ok(applied))) => {
                if !applied.is_empty() {
                    tracing::info!(target = %self.target, ?applied, "PostgreSQL store schema migrated");
                }
                Ok(())
            }
            Ok(Ok(Err(found))) => Err(StoreError::PgSchema {
                target: self.target.to_string(),
                found,
                known,
            }),
            Ok(Err(e)) => Err(self.failed(OP, e)),
            Err(_) => Err(self.timed_out(OP)),
        }
    }
}

/// The password: `UPSBRIDGE_STORE_PASSWORD`, else `[store] password_file` (one line), else
/// none here (the URL's own, if it has one).
fn password(config: &PostgresConfig) -> Result<Option<SecretString>, StoreError> {
    if let Some(p) = std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty()) {
        return Ok(Some(SecretString::from(p)));
    }
    let Some(path) = &config.password_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|source| StoreError::PgPassword {
        path: path.clone(),
        source,
    })?;
    Ok(Some(SecretString::from(
        text.trim_end_matches(['\r', '\n']).to_string(),
    )))
}

/// TLS to PostgreSQL: the server's certificate checked against the web PKI roots and the
/// CA certificates in `ca_file`.
fn client_tls(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, StoreError> {
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            StoreError::PgTls(format!("cannot read ca_file {}: {e}", path.display()))
        })?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert =
                cert.map_err(|e| StoreError::PgTls(format!("ca_file {}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| StoreError::PgTls(format!("ca_file {}: {e}", path.display())))?;
            added += 1;
        }
        if added == 0 {
            return Err(StoreError::PgTls(format!(
                "ca_file {} holds no PEM certificate",
                path.display()
            )));
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| StoreError::PgTls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// What one instance last imported from its map file (`meta` `map/<instance>`): instances
/// whose maps differ show it on the ops page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InstanceMap {
    pub accounts: Vec<String>,
    /// SHA-256 (hex) of the imported records, for comparing instances.
    pub digest: String,
    pub imported_at_unix: u64,
}

/// An account's token lease (see [`PgStore::lease`]): an open transaction holding the
/// account's advisory lock. Ended by [`PgLease::commit_put`] or [`PgLease::release`]; if
/// dropped (its holder failed or was cancelled), its connection is closed, so PostgreSQL
/// ends the transaction and frees the lock.
pub struct PgLease {
    client: Option<Object>,
    store: PgStore,
    deadline: Instant,
}

impl PgLease {
    fn client(&self) -> &Object {
        self.client
            .as_ref()
            .expect("a live lease holds its connection")
    }

    /// A record as it is now (read under the lease).
    pub async fn get(&mut self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        const OP: &str = "read a record under a token lease";
        let name = tree.name();
        let params: [&(dyn ToSql + Sync); 2] = [&name, &key];
        let work = self.client().query(GET, &params);
        match tokio::time::timeout_at(self.deadline + self.store.timeout, work).await {
            Ok(Ok(rows)) => Ok(rows.first().map(|r| r.get::<_, Vec<u8>>(0))),
            Ok(Err(e)) => Err(self.store.failed(OP, e)),
            Err(_) => Err(self.store.timed_out(OP)),
        }
    }

    /// Write a record and commit: durable, and the lease ends.
    pub async fn commit_put(
        mut self,
        tree: Tree,
        key: &[u8],
        value: Vec<u8>,
    ) -> Result<(), StoreError> {
        const OP: &str = "store a renewed token";
        let deadline = Instant::now() + self.store.timeout;
        let work = async {
            let c = self.client();
            c.execute(PUT, &[&tree.name(), &key, &value]).await?;
            c.batch_execute("COMMIT").await
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(Ok(())) => {
                // Back to the pool: its transaction is over.
                drop(self.client.take());
                Ok(())
            }
            Ok(Err(e)) => Err(self.store.failed(OP, e)),
            Err(_) => Err(self.store.timed_out(OP)),
        }
    }

    /// End the lease without writing.
    pub async fn release(mut self) {
        let deadline = Instant::now() + self.store.timeout;
        if let Ok(Ok(())) =
            tokio::time::timeout_at(deadline, self.client().batch_execute("ROLLBACK")).await
        {
            drop(self.client.take());
        }
    }
}

impl Drop for PgLease {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Mid-transaction: never pooled again; closing it ends the transaction.
            drop(Object::take(client));
        }
    }
}

//! The SQLite backend: pool settings, the writer queue, migrations and transactions.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flowstore_core::migrate::{self, MigrationStatus};
use flowstore_core::model::engine::{AttemptRef, ClaimRequest, ClaimedTask, Transition};
use flowstore_core::store::KeySource;
use flowstore_core::{Backend, BackendKind, StoreError, StoreResult, Tx};
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::error::map_err;
use crate::group::{Done, GroupWriter, Op, WriteAccess};
use crate::migrations::{self as mig, MIGRATIONS};

/// How to open a SQLite database.
#[derive(Clone, Debug)]
pub struct SqliteSettings {
    /// `sqlite://path`, `sqlite:path` or `sqlite::memory:`.
    pub url: String,
    /// Most connections in the pool (reads run in parallel; writes queue).
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long to wait for a free connection or for another process's lock.
    pub busy_timeout: Duration,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
    /// Whether a missing database file is created; when not, opening one that does
    /// not exist fails and names the path (read-only commands must not leave an
    /// empty database at a mistyped path).
    pub create: bool,
}

/// The file a SQLite URL names; `None` for an in-memory database or a URL that is
/// not SQLite's.
pub fn database_file(url: &str) -> Option<std::path::PathBuf> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    SqliteConnectOptions::from_str(url)
        .ok()
        .map(|o| o.get_filename().to_path_buf())
}

impl Default for SqliteSettings {
    fn default() -> Self {
        SqliteSettings {
            url: "sqlite://flowstore.db".into(),
            max_connections: 8,
            min_connections: 1,
            busy_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(600),
            create: true,
        }
    }
}

/// A SQLite database behind flowstore.
pub struct SqliteBackend {
    pool: SqlitePool,
    /// Serialises writers in this process: SQLite allows one writer at a time, and
    /// queueing here keeps "database is locked" from reaching callers.
    pub(crate) writer: Arc<Mutex<()>>,
    keys: Arc<KeySource>,
    /// Where `claim_now` and its siblings send their transitions (see `group.rs`).
    group: GroupWriter,
    /// Checkpoints the write-ahead log in the background (file databases only).
    _checkpointer: Option<crate::checkpoint::Checkpointer>,
}

/// One SQLite transaction with every repository operation.
pub struct SqliteTx {
    pub(crate) tx: Transaction<'static, Sqlite>,
    pub(crate) keys: Arc<KeySource>,
    /// The writer lock, held by write transactions; `None` for `begin_read`'s.
    writer: Option<OwnedMutexGuard<()>>,
}

impl SqliteBackend {
    /// Opens (creating when missing) the database at `settings.url`.
    pub async fn connect(settings: &SqliteSettings, keys: Arc<KeySource>) -> StoreResult<Self> {
        let memory = settings.url.contains(":memory:") || settings.url.contains("mode=memory");
        let url = if memory {
            // Each in-memory database gets a unique shared name, so that every
            // connection of this pool sees the same data and other stores do not.
            format!(
                "sqlite:file:flowstore-{}?mode=memory&cache=shared",
                uuid::Uuid::new_v4().simple()
            )
        } else {
            settings.url.clone()
        };
        if !settings.create {
            if let Some(file) = database_file(&url).filter(|f| !f.exists()) {
                return Err(StoreError::invalid(
                    "DATABASE_URL",
                    format!(
                        "there is no SQLite database at {}; this command does not create one",
                        file.display()
                    ),
                ));
            }
        }
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(|e| StoreError::invalid("DATABASE_URL", format!("is not a SQLite URL: {e}")))?
            .create_if_missing(settings.create)
            .foreign_keys(true)
            .busy_timeout(settings.busy_timeout)
            .synchronous(SqliteSynchronous::Normal)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-16000");
        let options = if memory {
            options.journal_mode(SqliteJournalMode::Memory)
        } else {
            options.journal_mode(SqliteJournalMode::Wal).pragma(
                "wal_autocheckpoint",
                crate::checkpoint::AUTO_CHECKPOINT_PAGES,
            )
        };
        // Shared-cache memory databases lock whole tables; one connection avoids that.
        let max = if memory {
            1
        } else {
            settings.max_connections.max(1)
        };
        let pool = flowstore_core::pool::ping_long_idle(SqlitePoolOptions::new())
            .max_connections(max)
            .min_connections(
                settings
                    .min_connections
                    .min(max)
                    .max(if memory { 1 } else { 0 }),
            )
            .acquire_timeout(settings.busy_timeout)
            .idle_timeout(if memory {
                None
            } else {
                Some(settings.idle_timeout)
            })
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", settings.url)))?;
        let checkpointer = (!memory).then(|| crate::checkpoint::spawn(pool.clone()));
        let writer = Arc::new(Mutex::new(()));
        let group = GroupWriter::spawn(WriteAccess {
            pool: pool.clone(),
            writer: writer.clone(),
            keys: keys.clone(),
        });
        Ok(SqliteBackend {
            pool,
            writer,
            keys,
            group,
            _checkpointer: checkpointer,
        })
    }

    /// The pool, for code in this crate's tests and for tools that need raw access.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// What a writer needs to begin a write transaction.
    fn write_access(&self) -> WriteAccess {
        WriteAccess {
            pool: self.pool.clone(),
            writer: self.writer.clone(),
            keys: self.keys.clone(),
        }
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Sqlite
    }

    fn pool_status(&self) -> flowstore_core::store::PoolStatus {
        flowstore_core::store::PoolStatus {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        }
    }

    async fn begin(&self) -> StoreResult<Box<dyn Tx>> {
        let access = self.write_access();
        // The writer lock and `BEGIN IMMEDIATE` are taken in a task of their own, which
        // runs to the end even when the caller goes away (a client that disconnects
        // drops its request). Cancelled just after SQLite ran the `BEGIN IMMEDIATE`,
        // sqlx loses track of it: the connection went back to the pool inside a write
        // transaction and every other writer then failed with "database is locked".
        // Finished here, a transaction nobody takes is dropped, which rolls it back.
        let tx = tokio::spawn(async move { access.begin_immediate().await })
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("could not begin a transaction: {e}"))
            })??;
        Ok(Box::new(tx))
    }

    async fn claim_now(&self, request: &ClaimRequest) -> StoreResult<Vec<ClaimedTask>> {
        match self.group.submit(Op::Claim(request.clone())).await? {
            Done::Claimed(claimed) => Ok(claimed),
            _ => Err(unexpected()),
        }
    }

    async fn complete_now(&self, attempt: AttemptRef, output: Value) -> StoreResult<Transition> {
        match self.group.submit(Op::Complete(attempt, output)).await? {
            Done::Completed(transition) => Ok(transition),
            _ => Err(unexpected()),
        }
    }

    async fn complete_many_now(
        &self,
        items: Vec<(AttemptRef, Value)>,
    ) -> StoreResult<Vec<StoreResult<Transition>>> {
        match self.group.submit(Op::CompleteMany(items)).await? {
            Done::CompletedMany(results) => Ok(results),
            _ => Err(unexpected()),
        }
    }

    async fn begin_read(&self) -> StoreResult<Box<dyn Tx>> {
        let tx = self.pool.begin().await.map_err(map_err)?;
        Ok(Box::new(SqliteTx {
            tx,
            keys: self.keys.clone(),
            writer: None,
        }))
    }

    async fn migrate_up(&self, to: Option<i64>) -> StoreResult<Vec<i64>> {
        let _guard = self.writer.lock().await;
        mig::ensure_table(&self.pool).await?;
        let applied = mig::applied(&self.pool).await?;
        migrate::verify(MIGRATIONS, &applied)?;
        let mut done = Vec::new();
        for m in MIGRATIONS {
            if to.is_some_and(|t| m.version > t) {
                break;
            }
            // Another process may be migrating the same file: `apply` re-checks under
            // SQLite's write lock and skips a version that process applied first.
            if mig::apply(&self.pool, m, &self.keys).await? {
                done.push(m.version);
            }
        }
        Ok(done)
    }

    async fn migrate_down(&self, to: i64) -> StoreResult<Vec<i64>> {
        let _guard = self.writer.lock().await;
        mig::ensure_table(&self.pool).await?;
        let applied = mig::applied(&self.pool).await?;
        migrate::verify(MIGRATIONS, &applied)?;
        let mut done = Vec::new();
        for m in MIGRATIONS.iter().rev() {
            if m.version <= to {
                break;
            }
            if applied.iter().any(|a| a.version == m.version) {
                mig::revert(&self.pool, m).await?;
                done.push(m.version);
            }
        }
        Ok(done)
    }

    async fn migration_status(&self) -> StoreResult<Vec<MigrationStatus>> {
        let applied = mig::applied(&self.pool).await?;
        Ok(migrate::status(MIGRATIONS, &applied))
    }

    async fn check_schema(&self) -> StoreResult<()> {
        let applied = mig::applied(&self.pool).await?;
        migrate::require_current(MIGRATIONS, &applied)
    }

    async fn schema_catalog(&self) -> StoreResult<Vec<String>> {
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT type, name, sql FROM sqlite_master
             WHERE name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'
             ORDER BY type, name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(rows
            .into_iter()
            .map(|(t, n, sql)| format!("{t} {n}: {}", sql.unwrap_or_default()))
            .collect())
    }

    async fn execute_raw(&self, sql: &str) -> StoreResult<u64> {
        let _guard = self.writer.lock().await;
        let done = sqlx::raw_sql(sql)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn admin(&self) -> &dyn flowstore_core::admin::AdminBackend {
        self
    }

    fn archive(&self) -> &dyn flowstore_core::archive::ArchiveBackend {
        self
    }
}

impl WriteAccess {
    /// Takes the process's writer lock, then begins `BEGIN IMMEDIATE` under it; the
    /// transaction holds the lock until it ends. Every write transaction starts here,
    /// the group writer's included, so the two kinds of writers take turns.
    pub(crate) async fn begin_immediate(&self) -> StoreResult<SqliteTx> {
        let guard = self.writer.clone().lock_owned().await;
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        Ok(SqliteTx {
            tx,
            keys: self.keys.clone(),
            writer: Some(guard),
        })
    }
}

impl SqliteTx {
    /// Commits, for callers that hold the transaction by value.
    pub(crate) async fn commit_inner(self) -> StoreResult<()> {
        self.tx.commit().await.map_err(map_err)
    }

    /// Rolls back, for callers that hold the transaction by value. A failed rollback
    /// is left to sqlx, which rolls back a dropped transaction before the
    /// connection's next use.
    pub(crate) async fn rollback_inner(self) {
        let _ = self.tx.rollback().await;
    }

    /// Runs one statement without parameters or results (savepoints).
    pub(crate) async fn execute_plain(&mut self, sql: &str) -> StoreResult<()> {
        sqlx::query(sql)
            .execute(&mut *self.tx)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}

#[async_trait]
impl Tx for SqliteTx {
    async fn commit(self: Box<Self>) -> StoreResult<()> {
        self.tx.commit().await.map_err(map_err)
    }

    async fn rollback(self: Box<Self>) -> StoreResult<()> {
        if self.writer.is_none() {
            // A read changed nothing, so nobody needs to wait for its end. Dropped,
            // the transaction queues its ROLLBACK on the connection's thread, which
            // runs it before the ping sqlx makes while giving the connection back to
            // the pool. A write transaction is waited for: the writer lock is
            // released only once its rollback has run.
            drop(self.tx);
            return Ok(());
        }
        self.tx.rollback().await.map_err(map_err)
    }
}

/// The group writer answers each kind of transition with the same kind; anything
/// else is a bug, reported rather than panicking a worker.
fn unexpected() -> StoreError {
    StoreError::Unavailable("the SQLite writer answered with another kind of result".into())
}

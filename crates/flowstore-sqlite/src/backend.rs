//! The SQLite backend: pool settings, the writer queue, migrations and transactions.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flowstore_core::engine::shortcut::{answer_rest, fits_one_statement, ClaimedRunTasks};
use flowstore_core::migrate::{self, MigrationStatus};
use flowstore_core::model::engine::{
    AttemptRef, ClaimRequest, ClaimedTask, EngineSettings, Transition,
};
use flowstore_core::store::KeySource;
use flowstore_core::{Backend, BackendKind, StoreError, StoreResult, Tx};
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::direct::{Answer, Ask, DirectWriter};
use crate::feed::FeedHandle;
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
    /// When a commit is durable: [`Synchronous::Full`] (the default) syncs the log at
    /// every commit, so an acknowledged write survives a power loss;
    /// [`Synchronous::Normal`] syncs only at checkpoints, faster, but a power loss
    /// (not a crash of the process) can undo the last commits.
    pub synchronous: Synchronous,
    /// Statements running at least this long are reported as slow (see
    /// `flowstore_core::slow`); `None` reports none.
    pub slow_statements: Option<Duration>,
    /// What the engine writes besides what its guarantees need.
    pub engine: EngineSettings,
}

/// How SQLite syncs commits to disk (its `synchronous` setting in WAL mode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// Every commit is on disk before it is acknowledged.
    #[default]
    Full,
    /// Commits are synced at checkpoints; a power loss may undo the newest ones.
    Normal,
}

impl std::str::FromStr for Synchronous {
    type Err = StoreError;

    fn from_str(s: &str) -> StoreResult<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "full" => Ok(Synchronous::Full),
            "normal" => Ok(Synchronous::Normal),
            other => Err(StoreError::invalid(
                "sqlite_synchronous",
                format!("{other:?} is not full or normal"),
            )),
        }
    }
}

/// The settings, besides foreign keys, the busy timeout and `synchronous`, that
/// every connection gets: the pool's, and the writer thread's (`direct.rs`).
pub(crate) const CONNECTION_PRAGMAS: [(&str, &str); 2] =
    [("temp_store", "memory"), ("cache_size", "-16000")];

/// The settings of the write-ahead log that every connection to a file gets.
pub(crate) const LOG_PRAGMAS: [(&str, &str); 2] = [
    (
        "wal_autocheckpoint",
        crate::checkpoint::AUTO_CHECKPOINT_PAGES,
    ),
    ("journal_size_limit", crate::checkpoint::LOG_SIZE_LIMIT),
];

impl Synchronous {
    /// The value of SQLite's `synchronous` setting.
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
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
            synchronous: Synchronous::Full,
            slow_statements: Some(flowstore_core::slow::DEFAULT_THRESHOLD),
            engine: EngineSettings::default(),
        }
    }
}

/// Why the database at `url` could not be opened, in words: a missing or read-only
/// directory, a read-only file or disk, permission denied; SQLite's own "unable to
/// open database file" says none of that.
fn cannot_open(url: &str, e: sqlx::Error) -> StoreError {
    let Some(file) = database_file(url) else {
        return StoreError::unavailable(format!("cannot open {url}: {e}"));
    };
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let why = if !dir.is_dir() {
        format!("the directory {} does not exist", dir.display())
    } else if let Err(io) = crate::space::writable(if file.exists() { &file } else { &dir }) {
        format!("{}: {}", file.display(), crate::space::describe(&io))
    } else {
        match StoreError::from(e) {
            StoreError::Internal(m) | StoreError::Unavailable(m) => m.to_string(),
            other => other.to_string(),
        }
    };
    StoreError::unavailable(format!(
        "cannot open the SQLite database {}: {why}",
        file.display()
    ))
}

/// Longest a health check waits for its connection and its answer.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// A SQLite database behind flowstore.
pub struct SqliteBackend {
    pool: SqlitePool,
    /// Serialises writers in this process: SQLite allows one writer at a time, and
    /// queueing here keeps "database is locked" from reaching callers.
    pub(crate) writer: Arc<Mutex<()>>,
    keys: Arc<KeySource>,
    /// What the engine writes besides what its guarantees need.
    engine: EngineSettings,
    /// Where `claim_now` and its siblings send their transitions (see `group.rs`).
    group: GroupWriter,
    /// Where they go first when it can take them: the writer's own thread, for file
    /// databases (see `direct.rs`).
    direct: Option<DirectWriter>,
    /// Tasks of runs claimed here, whose completions go to `group` at once.
    run_tasks: ClaimedRunTasks,
    /// Checkpoints the write-ahead log in the background (file databases only).
    _checkpointer: Option<crate::checkpoint::Checkpointer>,
    /// One connection kept for health checks, so that a pool taken up by slow work
    /// does not make a live database look dead.
    health: SqlitePool,
    /// The database file, for the checks of its disk (`None` in memory).
    file: Option<std::path::PathBuf>,
    /// Writers waiting for the writer lock.
    waits: Arc<flowstore_core::store::WaitBoard>,
    /// Where this backend's write commits are told to the others on its file.
    feed: FeedHandle,
}

/// One SQLite transaction with every repository operation.
pub struct SqliteTx {
    pub(crate) tx: Transaction<'static, Sqlite>,
    pub(crate) keys: Arc<KeySource>,
    pub(crate) engine: EngineSettings,
    /// The writer lock, held by write transactions; `None` for `begin_read`'s.
    writer: Option<OwnedMutexGuard<()>>,
    /// Told of the commit of a write transaction.
    feed: Option<FeedHandle>,
}

impl SqliteBackend {
    /// What migrating up or down starts with: the writer lock (held until the
    /// migration ends), a connection, and the migrations applied so far, refused
    /// unless they are a history this build knows.
    async fn migrating(
        &self,
    ) -> StoreResult<(
        tokio::sync::MutexGuard<'_, ()>,
        sqlx::pool::PoolConnection<Sqlite>,
        Vec<migrate::AppliedMigration>,
    )> {
        let guard = self.writer.lock().await;
        let mut conn = self.pool.acquire().await?;
        mig::ensure_table(&mut conn).await?;
        let applied = mig::applied(&mut conn).await?;
        migrate::verify(MIGRATIONS, &applied)?;
        Ok((guard, conn, applied))
    }

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
            .synchronous(match settings.synchronous {
                Synchronous::Full => SqliteSynchronous::Full,
                Synchronous::Normal => SqliteSynchronous::Normal,
            });
        let options = CONNECTION_PRAGMAS
            .iter()
            .fold(options, |o, (name, value)| o.pragma(*name, *value));
        let options = flowstore_core::slow::report_slow(options, settings.slow_statements);
        let options = if memory {
            options.journal_mode(SqliteJournalMode::Memory)
        } else {
            LOG_PRAGMAS.iter().fold(
                options.journal_mode(SqliteJournalMode::Wal),
                |o, (name, value)| o.pragma(*name, *value),
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
            .connect_with(options.clone())
            .await
            .map_err(|e| cannot_open(&settings.url, e))?;
        // An in-memory database keeps its one connection: a second one to the shared
        // cache would meet its table locks.
        let health = if memory {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(0)
                .acquire_timeout(HEALTH_TIMEOUT)
                .connect_lazy_with(options.clone().create_if_missing(false))
        };
        let checkpointer = (!memory).then(|| crate::checkpoint::spawn(pool.clone()));
        let writer = Arc::new(Mutex::new(()));
        let waits = Arc::new(flowstore_core::store::WaitBoard::default());
        let file = database_file(&url);
        let feed = FeedHandle::open(file.as_deref());
        let group = GroupWriter::spawn(WriteAccess {
            pool: pool.clone(),
            writer: writer.clone(),
            keys: keys.clone(),
            engine: settings.engine,
            waits: waits.clone(),
            feed: feed.clone(),
        });
        // Should the writer's own connection not open (its directory unreadable, say),
        // every transition takes the engine's way through the pool, as in memory.
        let direct = match &file {
            Some(file) if !memory => DirectWriter::start(
                file,
                crate::direct::Pragmas {
                    busy_timeout: settings.busy_timeout,
                    synchronous: settings.synchronous.pragma(),
                },
                crate::direct::Shared {
                    writer: writer.clone(),
                    waits: waits.clone(),
                    feed: feed.clone(),
                    slow: settings.slow_statements,
                    engine: settings.engine,
                },
            )
            .inspect_err(|e| tracing::warn!(error = %e, "transitions go through the pool"))
            .ok(),
            _ => None,
        };
        Ok(SqliteBackend {
            pool,
            writer,
            keys,
            engine: settings.engine,
            group,
            direct,
            run_tasks: ClaimedRunTasks::default(),
            _checkpointer: checkpointer,
            health,
            file,
            waits,
            feed,
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
            engine: self.engine,
            waits: self.waits.clone(),
            feed: self.feed.clone(),
        }
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Sqlite
    }

    fn listen(&self, sink: Arc<dyn flowstore_core::change::ChangeSink>) -> bool {
        self.feed.listen(sink);
        true
    }

    fn capabilities(&self) -> flowstore_core::store::Capabilities {
        // Events are numbered as they are inserted, under the one writer.
        flowstore_core::store::Capabilities {
            sequences_events: false,
        }
    }

    fn migrations(&self) -> &'static [flowstore_core::migrate::Migration] {
        MIGRATIONS
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
                StoreError::unavailable(format!("could not begin a transaction: {e}"))
            })??;
        Ok(Box::new(tx))
    }

    async fn claim_now(&self, request: &ClaimRequest) -> StoreResult<Vec<ClaimedTask>> {
        if let Some(direct) = &self.direct {
            // Stopped (`Err`) or `Answer::Engine`: the group writer claims.
            if let Ok(answer) = direct.ask(Ask::Claim(request.clone())).await {
                if let Answer::Claimed(claimed) = answer? {
                    self.run_tasks.remember(&claimed);
                    return Ok(claimed);
                }
            }
        }
        match self.group.submit(Op::Claim(request.clone())).await? {
            Done::Claimed(claimed) => {
                self.run_tasks.remember(&claimed);
                Ok(claimed)
            }
            _ => Err(unexpected()),
        }
    }

    async fn complete_now(&self, attempt: AttemptRef, output: Value) -> StoreResult<Transition> {
        let mut results = self.complete_many_now(vec![(attempt, output)]).await?;
        match (results.pop(), results.is_empty()) {
            (Some(result), true) => result,
            _ => Err(unexpected()),
        }
    }

    async fn complete_many_now(
        &self,
        items: Vec<(AttemptRef, Value)>,
    ) -> StoreResult<Vec<StoreResult<Transition>>> {
        let of_a_run = self.run_tasks.forget(&items);
        let items = match &self.direct {
            Some(direct) if !of_a_run && fits_one_statement(&items) => {
                match direct.ask(Ask::Complete(items)).await {
                    Ok(answer) => match answer? {
                        Answer::Completed(each) => {
                            return answer_rest(each, |rest| self.complete_in_group(rest)).await
                        }
                        _ => return Err(unexpected()),
                    },
                    Err(Ask::Complete(items)) => items,
                    Err(_) => return Err(unexpected()),
                }
            }
            _ => items,
        };
        self.complete_in_group(items).await
    }

    async fn heartbeat_now(
        &self,
        attempt: AttemptRef,
        lease: std::time::Duration,
    ) -> StoreResult<flowstore_core::model::engine::Heartbeat> {
        if let Some(direct) = &self.direct {
            if let Ok(answer) = direct.ask(Ask::Heartbeat(attempt, lease)).await {
                if let Answer::Heartbeat(Some(heartbeat)) = answer? {
                    return Ok(heartbeat);
                }
            }
        }
        match self.group.submit(Op::Heartbeat(attempt, lease)).await? {
            Done::Heartbeat(heartbeat) => Ok(heartbeat),
            _ => Err(unexpected()),
        }
    }

    async fn fail_now(
        &self,
        attempt: AttemptRef,
        error: Value,
        retryable: bool,
    ) -> StoreResult<Transition> {
        match self
            .group
            .submit(Op::Fail(attempt, error, retryable))
            .await?
        {
            Done::Failed(transition) => Ok(transition),
            _ => Err(unexpected()),
        }
    }

    async fn begin_read(&self) -> StoreResult<Box<dyn Tx>> {
        let tx = self.pool.begin().await?;
        Ok(Box::new(SqliteTx {
            tx,
            keys: self.keys.clone(),
            engine: self.engine,
            writer: None,
            feed: None,
        }))
    }

    async fn migrate_up(&self, to: Option<i64>) -> StoreResult<Vec<i64>> {
        let (_guard, mut conn, _) = self.migrating().await?;
        let mut done = Vec::new();
        for m in MIGRATIONS {
            if to.is_some_and(|t| m.version > t) {
                break;
            }
            // Another process may be migrating the same file: `apply` re-checks under
            // SQLite's write lock and skips a version that process applied first.
            if mig::apply(&mut conn, m, &self.keys).await? {
                done.push(m.version);
            }
        }
        Ok(done)
    }

    async fn migrate_down(&self, to: i64) -> StoreResult<Vec<i64>> {
        let (_guard, mut conn, applied) = self.migrating().await?;
        let mut done = Vec::new();
        for m in MIGRATIONS.iter().rev() {
            if m.version <= to {
                break;
            }
            if applied.iter().any(|a| a.version == m.version) {
                mig::revert(&mut conn, m).await?;
                done.push(m.version);
            }
        }
        Ok(done)
    }

    async fn migration_status(&self) -> StoreResult<Vec<MigrationStatus>> {
        let applied = applied_migrations(&self.pool).await?;
        Ok(migrate::status(MIGRATIONS, &applied))
    }

    async fn check_schema(&self) -> StoreResult<()> {
        let applied = applied_migrations(&self.pool).await?;
        migrate::require_current(MIGRATIONS, &applied)
    }

    async fn schema_catalog(&self) -> StoreResult<Vec<String>> {
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT type, name, sql FROM sqlite_master
             WHERE name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'
             ORDER BY type, name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(t, n, sql)| format!("{t} {n}: {}", sql.unwrap_or_default()))
            .collect())
    }

    async fn execute_raw(&self, sql: &str) -> StoreResult<u64> {
        let _guard = self.writer.lock().await;
        let done = sqlx::raw_sql(sql).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn readiness(&self) -> StoreResult<()> {
        let applied = tokio::time::timeout(HEALTH_TIMEOUT, applied_migrations(&self.health))
            .await
            .map_err(|_| {
                StoreError::TimedOut("the database did not answer the health check".into())
            })??;
        migrate::require_current(MIGRATIONS, &applied)?;
        if let Some(file) = self.file.clone() {
            tokio::task::spawn_blocking(move || crate::space::check(&file))
                .await
                .map_err(|e| StoreError::internal(format!("disk check: {e}")))??;
        }
        Ok(())
    }

    async fn lock_waits(&self) -> StoreResult<flowstore_core::store::LockWaits> {
        Ok(self.waits.now())
    }

    async fn close(&self) {
        // The writer's thread first: what it holds is answered, its connection closed,
        // and what comes after goes to the closed pool.
        if let Some(direct) = &self.direct {
            direct.close().await;
        }
        self.health.close().await;
        self.pool.close().await;
    }

    fn admin(&self) -> &dyn flowstore_core::admin::AdminBackend {
        self
    }

    fn archive(&self) -> &dyn flowstore_core::archive::ArchiveBackend {
        self
    }
}

/// The migrations applied to the database `pool` opens, read on one of its connections.
async fn applied_migrations(pool: &SqlitePool) -> StoreResult<Vec<migrate::AppliedMigration>> {
    let mut conn = pool.acquire().await?;
    mig::applied(&mut conn).await
}

impl WriteAccess {
    /// Takes the process's writer lock, then begins `BEGIN IMMEDIATE` under it; the
    /// transaction holds the lock until it ends. Every write transaction starts here,
    /// the group writer's included, so the two kinds of writers take turns.
    pub(crate) async fn begin_immediate(&self) -> StoreResult<SqliteTx> {
        let guard = match self.writer.clone().try_lock_owned() {
            Ok(guard) => guard,
            Err(_) => {
                // Only a wait is registered, so the uncontended path stays as it was.
                let _waiting = self.waits.wait();
                self.writer.clone().lock_owned().await
            }
        };
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(SqliteTx {
            tx,
            keys: self.keys.clone(),
            engine: self.engine,
            writer: Some(guard),
            feed: Some(self.feed.clone()),
        })
    }
}

impl SqliteTx {
    /// Commits, for callers that hold the transaction by value.
    pub(crate) async fn commit_inner(self) -> StoreResult<()> {
        self.tx.commit().await?;
        if let Some(feed) = &self.feed {
            feed.committed();
        }
        Ok(())
    }

    /// Rolls back, for callers that hold the transaction by value. A failed rollback
    /// is left to sqlx, which rolls back a dropped transaction before the
    /// connection's next use.
    pub(crate) async fn rollback_inner(self) {
        let _ = self.tx.rollback().await;
    }

    /// Runs one statement without parameters or results (savepoints).
    pub(crate) async fn execute_plain(&mut self, sql: &str) -> StoreResult<()> {
        sqlx::query(sql).execute(&mut *self.tx).await?;
        Ok(())
    }
}

#[async_trait]
impl Tx for SqliteTx {
    async fn commit(self: Box<Self>) -> StoreResult<()> {
        self.commit_inner().await
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
        Ok(self.tx.rollback().await?)
    }
}

impl SqliteBackend {
    /// Completions the engine answers, through the group writer: a single one alone
    /// (its refusal its answer), several as a batch.
    async fn complete_in_group(
        &self,
        mut items: Vec<(AttemptRef, Value)>,
    ) -> StoreResult<Vec<StoreResult<Transition>>> {
        let single = items.len() == 1;
        let op = match single {
            true => Op::Complete(items.remove(0)),
            false => Op::CompleteMany(items),
        };
        match self.group.submit(op).await {
            Ok(Done::Completed(transition)) => Ok(vec![Ok(transition)]),
            Ok(Done::CompletedMany(results)) => Ok(results),
            Ok(_) => Err(unexpected()),
            // A single completion's refusal is its own answer, as in a batch; a fault
            // of the database stays the call's, as a batch's does.
            Err(e) if single && !e.is_transient() => Ok(vec![Err(e)]),
            Err(e) => Err(e),
        }
    }
}

/// The group writer answers each kind of transition with the same kind; anything
/// else is a bug, reported rather than panicking a worker.
fn unexpected() -> StoreError {
    StoreError::unavailable("the SQLite writer answered with another kind of result")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer queued behind another write transaction shows in `lock_waits`, and
    /// `readiness` answers on its own connection meanwhile.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_writers_are_counted_and_readiness_still_answers() {
        let dir = tempfile::tempdir().unwrap();
        let settings = SqliteSettings {
            url: format!("sqlite://{}", dir.path().join("waits.db").display()),
            ..SqliteSettings::default()
        };
        let backend = Arc::new(
            SqliteBackend::connect(&settings, Arc::new(KeySource::none()))
                .await
                .unwrap(),
        );
        backend.migrate_up(None).await.unwrap();
        let held = backend.begin().await.unwrap();
        let queued = {
            let backend = backend.clone();
            tokio::spawn(async move { backend.begin().await.map(drop) })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while backend.lock_waits().await.unwrap().waiting == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the queued writer is counted"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        backend.readiness().await.unwrap();
        held.rollback().await.unwrap();
        queued.await.unwrap().unwrap();
        assert_eq!(backend.lock_waits().await.unwrap().waiting, 0);
    }
}

//! The storage traits. A [`Backend`] owns a connection pool and hands out
//! transactions; a [`Tx`] carries every repository operation. The caller owns the
//! transaction: one business operation opens one `Tx`, calls as many operations as it
//! needs and commits once, so it is all written or none of it is.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use async_trait::async_trait;
use serde::Serialize;

use crate::crypto::{Key, Keyring};
use crate::migrate::MigrationStatus;
use crate::model::audit::AuditRepo;
use crate::model::engine::{AttemptRef, ClaimRequest, ClaimedTask, Heartbeat, Transition};
use crate::model::summary::SummaryRepo;
use crate::model::{
    engine::EngineRepo,
    identity::{ApiKeyRepo, NotificationRepo, SessionRepo, TeamRepo, UserRepo},
    integration::{CredentialRepo, DeliveryRepo, SealedRepo, WebhookRepo},
    ops::OpsRepo,
    project::ProjectRepo,
    registry::RegistryRepo,
    run::{AttemptRepo, MetricRepo, RunRepo},
    task::{PullRequestRepo, TaskRepo},
    trigger::TriggerRepo,
    workflow::WorkflowRepo,
};
use crate::{StoreError, StoreResult};

/// Which database a backend speaks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// SQLite, in a file or in memory.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl BackendKind {
    /// The name printed and written into archives: `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Sqlite => "sqlite",
            BackendKind::Postgres => "postgres",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a backend does its own way, asked by the code above the storage crates
/// instead of branching on which database it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Events get their gap-free `seq` after they commit, from
    /// [`crate::model::engine::EngineRepo::sequence_events`] (PostgreSQL, whose
    /// concurrent writers would otherwise commit numbers out of order). When false,
    /// events are numbered as they are inserted and there is nothing to sequence.
    pub sequences_events: bool,
}

/// Work waiting for a database lock at one instant: how many waits, and how long the
/// oldest has waited. Reported by `/metrics`, so that a lock held too long shows
/// before the pool runs dry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LockWaits {
    /// Statements or transactions waiting for a lock now.
    pub waiting: u64,
    /// How long the oldest of them has waited, in milliseconds.
    pub longest_ms: u64,
}

/// The waits for an in-process lock, for [`LockWaits`]: each waiter registers while it
/// waits and is removed when it has the lock (or gives up).
#[derive(Debug, Default)]
pub struct WaitBoard {
    next: std::sync::atomic::AtomicU64,
    waiting: std::sync::Mutex<std::collections::BTreeMap<u64, std::time::Instant>>,
}

/// One registered wait; removed from its board when dropped.
pub struct Waiting<'a> {
    board: &'a WaitBoard,
    id: u64,
}

impl WaitBoard {
    /// Registers a wait starting now.
    pub fn wait(&self) -> Waiting<'_> {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, std::time::Instant::now());
        Waiting { board: self, id }
    }

    /// The waits now.
    pub fn now(&self) -> LockWaits {
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        LockWaits {
            waiting: waiting.len() as u64,
            longest_ms: waiting
                .values()
                .next()
                .map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0),
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.board
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// The connections of a backend's pool at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PoolStatus {
    /// Connections open, in use or idle.
    pub size: u32,
    /// Of which idle.
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}

impl PoolStatus {
    /// Connections in use (open and not idle).
    pub fn in_use(&self) -> u32 {
        self.size.saturating_sub(self.idle)
    }
}

/// A database behind flowstore: pool, migrations and transactions.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Which database this is.
    fn kind(&self) -> BackendKind;

    /// What this backend does its own way.
    fn capabilities(&self) -> Capabilities;

    /// Starts delivering the changes committed by other servers or backends on the
    /// same database to `sink` (see [`crate::change`]), until it returns `false`.
    /// Returns whether this backend has such a feed; without one, the caller polls.
    fn listen(&self, sink: std::sync::Arc<dyn crate::change::ChangeSink>) -> bool {
        let _ = sink;
        false
    }

    /// Tells the other servers on this database that work or events were committed
    /// here (see [`crate::change`]), in a transaction of its own: the hot
    /// transactions themselves never notify, as notifying transactions commit one
    /// at a time. A server calls it at most once per few milliseconds after its own
    /// commits. Nothing to do where the backend tells its peers otherwise.
    async fn announce(&self) -> StoreResult<()> {
        Ok(())
    }

    /// Every migration this backend knows, oldest first.
    fn migrations(&self) -> &'static [crate::migrate::Migration];

    /// Opens a transaction that may write. On SQLite it takes the writer's place
    /// (writers queue in the process instead of failing with "database is locked").
    async fn begin(&self) -> StoreResult<Box<dyn Tx>>;

    /// Opens a transaction for reads only, which never waits for writers.
    async fn begin_read(&self) -> StoreResult<Box<dyn Tx>>;

    /// Opens a transaction for reads that tolerate replication lag (lists,
    /// statistics, dashboards, exports): on a replica when the backend has one,
    /// else (and while the replica cannot be reached) as [`Backend::begin_read`].
    /// A caller that must see its own latest writes reads with `begin_read`.
    async fn begin_lagging_read(&self) -> StoreResult<Box<dyn Tx>> {
        self.begin_read().await
    }

    /// Opens a write transaction for one of the engine's worker transitions: claim,
    /// heartbeat, complete, fail and the reaper's. Their statements find rows by key
    /// or walk a fixed index, so their best plan does not depend on the values bound;
    /// PostgreSQL therefore plans each of them once per connection instead of on
    /// every call (measured in BENCHMARKS.md). Elsewhere the same as [`Backend::begin`].
    async fn begin_transition(&self) -> StoreResult<Box<dyn Tx>> {
        self.begin().await
    }

    /// Claims ready tasks as [`EngineRepo::claim`] does, in a transaction of its own
    /// that is committed before this returns. A backend may commit it together with
    /// other workers' transitions: SQLite runs the ones queued while its writer was
    /// busy in one transaction, each undoing only its own writes on error; PostgreSQL
    /// lets the transitions of one kind that arrive together share a statement (or,
    /// for failures, a transaction) and a commit. Each caller is answered its own
    /// outcome, once it is durable. Must not be called while the same task holds a
    /// write transaction (it would wait for that transaction forever).
    async fn claim_now(&self, request: &ClaimRequest) -> StoreResult<Vec<ClaimedTask>>;

    /// Completes one attempt as [`EngineRepo::complete`] does, in a transaction of its
    /// own that is committed before this returns (see [`Backend::claim_now`]).
    async fn complete_now(
        &self,
        attempt: AttemptRef,
        output: serde_json::Value,
    ) -> StoreResult<Transition>;

    /// Completes many attempts as [`EngineRepo::complete_many`] does, in a transaction
    /// of its own that is committed before this returns (see [`Backend::claim_now`]).
    async fn complete_many_now(
        &self,
        items: Vec<(AttemptRef, serde_json::Value)>,
    ) -> StoreResult<Vec<StoreResult<Transition>>>;

    /// Extends a lease as [`EngineRepo::heartbeat`] does, in a transaction of its own
    /// that is committed before this returns (see [`Backend::claim_now`]).
    async fn heartbeat_now(
        &self,
        attempt: AttemptRef,
        lease: std::time::Duration,
    ) -> StoreResult<Heartbeat>;

    /// Fails an attempt as [`EngineRepo::fail`] does, in a transaction of its own that
    /// is committed before this returns (see [`Backend::claim_now`]).
    async fn fail_now(
        &self,
        attempt: AttemptRef,
        error: serde_json::Value,
        retryable: bool,
    ) -> StoreResult<Transition>;

    /// Applies pending migrations up to `to` (all when `None`); returns the versions
    /// applied. Safe to run from several processes at once.
    async fn migrate_up(&self, to: Option<i64>) -> StoreResult<Vec<i64>>;

    /// Reverts applied migrations above `to`, newest first; returns the versions
    /// reverted.
    async fn migrate_down(&self, to: i64) -> StoreResult<Vec<i64>>;

    /// Where each migration stands.
    async fn migration_status(&self) -> StoreResult<Vec<MigrationStatus>>;

    /// Refuses a schema this binary must not use: newer, edited or not migrated.
    async fn check_schema(&self) -> StoreResult<()>;

    /// A description of the schema (tables, columns, indexes, constraints, triggers,
    /// views), one sorted line per object, for comparing two schemas.
    async fn schema_catalog(&self) -> StoreResult<Vec<String>>;

    /// Runs one SQL statement outside the repositories, for operators and tests;
    /// returns the number of rows it changed.
    async fn execute_raw(&self, sql: &str) -> StoreResult<u64>;

    /// Answers when the database is reachable.
    async fn ping(&self) -> StoreResult<()>;

    /// Whether this server can do its work now, asked on a connection kept for health
    /// checks (a pool taken up by slow work does not hide a live database): the
    /// database answers within two seconds, its schema is the one this binary needs,
    /// and it can take writes (its disk has room and is writable; it is not a
    /// read-only replica). The error says which of these failed.
    async fn readiness(&self) -> StoreResult<()>;

    /// Work waiting for database locks now.
    async fn lock_waits(&self) -> StoreResult<LockWaits>;

    /// How many connections the pool holds now, how many of them are idle, and
    /// how many it may hold.
    fn pool_status(&self) -> PoolStatus;

    /// Closes the pool, waiting for connections to be returned.
    async fn close(&self);

    /// Whole-database operations: integrity checks, statistics, vacuum, retention.
    fn admin(&self) -> &dyn crate::admin::AdminBackend;

    /// Portable backup and restore: snapshots read and rows loaded by the catalog.
    fn archive(&self) -> &dyn crate::archive::ArchiveBackend;
}

/// One transaction, with every repository operation: the union of the repository
/// traits, one per topic. Dropping it without [`Tx::commit`] rolls it back.
#[async_trait]
pub trait Tx:
    UserRepo
    + TeamRepo
    + SessionRepo
    + ApiKeyRepo
    + NotificationRepo
    + ProjectRepo
    + WorkflowRepo
    + TaskRepo
    + PullRequestRepo
    + RunRepo
    + AttemptRepo
    + MetricRepo
    + RegistryRepo
    + OpsRepo
    + EngineRepo
    + CredentialRepo
    + WebhookRepo
    + DeliveryRepo
    + SealedRepo
    + TriggerRepo
    + SummaryRepo
    + AuditRepo
    + Send
{
    /// Makes every change of the transaction durable.
    async fn commit(self: Box<Self>) -> StoreResult<()>;

    /// Discards every change of the transaction.
    async fn rollback(self: Box<Self>) -> StoreResult<()>;
}

/// Where the encryption key comes from: given (from `ENCRYPTION_KEY`), or a key file
/// that is read, or created with mode 0600 the first time a value is sealed.
#[derive(Debug)]
pub struct KeySource {
    given: Option<Keyring>,
    file: Option<PathBuf>,
    loaded: OnceLock<Keyring>,
    creating: Mutex<()>,
}

impl KeySource {
    /// A source that always uses `keyring`.
    pub fn given(keyring: Keyring) -> Self {
        KeySource {
            given: Some(keyring),
            file: None,
            loaded: OnceLock::new(),
            creating: Mutex::new(()),
        }
    }

    /// A source backed by the key file at `path`.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        KeySource {
            given: None,
            file: Some(path.into()),
            loaded: OnceLock::new(),
            creating: Mutex::new(()),
        }
    }

    /// A source with no key: sealing fails with a message that says how to set one.
    pub fn none() -> Self {
        KeySource {
            given: None,
            file: None,
            loaded: OnceLock::new(),
            creating: Mutex::new(()),
        }
    }

    /// The keyring, loading or creating the key file on first use.
    pub fn keyring(&self) -> StoreResult<&Keyring> {
        if let Some(k) = &self.given {
            return Ok(k);
        }
        if let Some(k) = self.loaded.get() {
            return Ok(k);
        }
        let path = self.file.as_ref().ok_or_else(|| {
            StoreError::invalid(
                "ENCRYPTION_KEY",
                "no encryption key is configured: set ENCRYPTION_KEY or a key file",
            )
        })?;
        let _guard = self.creating.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = self.loaded.get() {
            return Ok(k);
        }
        let key = Key::load_or_create_file(path)?;
        Ok(self.loaded.get_or_init(|| Keyring::new(key)))
    }
}

#[cfg(test)]
mod tests {
    use super::WaitBoard;

    #[test]
    fn a_wait_board_counts_the_waits_under_way() {
        let board = WaitBoard::default();
        assert_eq!(board.now().waiting, 0);
        let first = board.wait();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let second = board.wait();
        let now = board.now();
        assert_eq!(now.waiting, 2);
        assert!(now.longest_ms >= 20, "the oldest wait is reported: {now:?}");
        drop(first);
        assert_eq!(board.now().waiting, 1);
        drop(second);
        assert_eq!(board.now(), super::LockWaits::default());
    }
}

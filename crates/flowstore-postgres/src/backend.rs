//! The PostgreSQL backend: pool settings, migrations and transactions.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flowstore_core::migrate::{self, MigrationStatus};
use flowstore_core::model::engine::{
    AttemptRef, ClaimRequest, ClaimedTask, EngineSettings, Heartbeat, Transition,
};
use flowstore_core::store::KeySource;
use flowstore_core::{Backend, BackendKind, StoreError, StoreResult, Tx};
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Executor, Postgres, Transaction};

use crate::migrations::{self as mig, MIGRATIONS};

/// The advisory lock key that migrators share ("flowstor" in ASCII).
const LOCK_KEY: i64 = 0x666c_6f77_7374_6f72;

/// How to connect to PostgreSQL.
#[derive(Clone, Debug)]
pub struct PgSettings {
    /// A `postgres://` URL.
    pub url: String,
    /// TLS as the settings ask for it, weighed with the URL's `sslmode` and
    /// `sslrootcert` when connecting (see [`crate::tls`]).
    pub tls: crate::tls::TlsSettings,
    /// Most connections open at once, shared out between the main pool and the
    /// worker transitions' pool (half each, at least one each).
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
    /// Longest a statement may run before the server cancels it.
    pub statement_timeout: Duration,
    /// Longest a statement may wait for a lock before it gives up (503, type
    /// `timeout`), so that work queued behind a lock held too long frees its
    /// connection instead of taking the pool with it.
    pub lock_timeout: Duration,
    /// The `application_name` the server shows for our sessions.
    pub application_name: String,
    /// Log every statement at debug level (`DB_DEBUG`).
    pub log_statements: bool,
    /// Statements running at least this long are reported as slow (a `WARN` event
    /// of target `sqlx::query`, which `flowstore_core::slow` counts); `None` reports
    /// none.
    pub slow_statements: Option<Duration>,
    /// Whether `url` reaches PostgreSQL through a connection pooler, and which kind.
    pub pooler: Pooler,
    /// A URL that reaches the primary without a pooler: migrations, `LISTEN` and the
    /// whole-database tools (backup, maintenance) use it. Required behind a
    /// transaction pooler, where session state does not survive a transaction.
    pub direct_url: Option<String>,
    /// A URL of a replica, read by the reads that tolerate lag
    /// ([`flowstore_core::Backend::begin_lagging_read`]).
    pub read_url: Option<String>,
    /// What the engine writes besides what its guarantees need.
    pub engine: EngineSettings,
}

/// How the connections of [`PgSettings::url`] reach PostgreSQL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pooler {
    /// Directly: session settings travel as startup options.
    #[default]
    None,
    /// Through a pooler that lends one server connection per client connection
    /// (PgBouncer's `pool_mode = session`). Poolers refuse or drop startup
    /// options, so the session settings are sent once each connection is made.
    Session,
    /// Through a pooler that lends a server connection for one transaction
    /// (PgBouncer's `pool_mode = transaction`). Nothing may rely on a session:
    /// every statement runs inside a transaction that begins by setting what the
    /// session would have (`SET LOCAL`) and dropping prepared statements another
    /// client left behind, statements are not cached across transactions, and
    /// migrations, `LISTEN` and the tools go to [`PgSettings::direct_url`].
    Transaction,
}

impl Pooler {
    /// Reads `none`, `session` or `transaction`; `field` names the setting in errors.
    pub fn parse(field: &str, text: &str) -> StoreResult<Pooler> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "none" | "off" => Ok(Pooler::None),
            "session" => Ok(Pooler::Session),
            "transaction" => Ok(Pooler::Transaction),
            other => Err(StoreError::invalid(
                field,
                format!("{other:?} is not a pooler mode: none, session or transaction"),
            )),
        }
    }
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings {
            url: "postgres://localhost/flowstore".into(),
            tls: Default::default(),
            max_connections: 10,
            min_connections: 0,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(600),
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(5),
            application_name: "flowstore".into(),
            log_statements: false,
            slow_statements: Some(flowstore_core::slow::DEFAULT_THRESHOLD),
            pooler: Pooler::None,
            direct_url: None,
            read_url: None,
            engine: EngineSettings::default(),
        }
    }
}

/// A PostgreSQL database behind flowstore.
pub struct PostgresBackend {
    pool: PgPool,
    /// The worker transitions' own connections, whose sessions plan every statement
    /// once (generic plans) and never by sequential scan; see `begin_transition`.
    pub(crate) transitions: PgPool,
    /// Tasks of runs claimed here and not yet reported (see `transitions`).
    pub(crate) run_tasks: flowstore_core::engine::shortcut::ClaimedRunTasks,
    /// Single completions waiting to share a statement and a commit.
    pub(crate) completions: crate::transitions::CompletionGroup,
    /// Claims waiting to share a statement.
    pub(crate) claims: crate::transitions::ClaimGroup,
    /// Single heartbeats waiting to share a statement and a commit.
    pub(crate) heartbeats: crate::transitions::HeartbeatGroup,
    /// Failures waiting to share a commit.
    pub(crate) failures: crate::transitions::FailureGroup,
    /// What this backend's announcements carry, so that its own listener passes
    /// over them: its server woke its own waiters when it made the change.
    origin: String,
    keys: Arc<KeySource>,
    /// What the engine writes besides what its guarantees need.
    engine: EngineSettings,
    /// One connection kept for health checks and lock metrics, so that a pool taken
    /// up by slow work does not make a live database look dead.
    health: PgPool,
    /// How the pools connect, to say why when they cannot.
    options: PgConnectOptions,
    /// Connections that reach the primary without a pooler (the main pool itself
    /// when no `direct_url` is set): migrations, `LISTEN` and the tools.
    direct: PgPool,
    /// How `direct` connects, for `LISTEN`.
    direct_options: PgConnectOptions,
    /// A replica's connections, for the reads that tolerate lag.
    replica: Option<PgPool>,
    /// Until when the replica is left alone after it could not be read, so that a
    /// replica that is down costs one wait for a connection, not one per read.
    replica_resting: std::sync::Mutex<Option<std::time::Instant>>,
    /// What begins a transaction on the main pool and on the transitions' pool.
    begins: Begins,
    /// How the connections reach PostgreSQL.
    pub(crate) pooler: Pooler,
    /// The URL that reaches the primary directly, for `pg_dump`.
    pub(crate) url: String,
}

/// The statements that begin a transaction: a plain `BEGIN`, or behind a
/// transaction pooler one that also drops what another client prepared on the
/// server connection it was lent and sets what a session would have.
struct Begins {
    general: String,
    transition: String,
}

/// The session settings every connection runs with, as `(name, value)`.
fn session_settings(settings: &PgSettings) -> Vec<(&'static str, String)> {
    vec![
        (
            "statement_timeout",
            format!("{}ms", settings.statement_timeout.as_millis()),
        ),
        (
            "lock_timeout",
            format!("{}ms", settings.lock_timeout.as_millis()),
        ),
        // flowstore's statements are short, and a plan costed high on estimates (a
        // generic plan over a large table) would otherwise be compiled on every
        // execution: 1.5 s for the claim at 200 000 tasks, against 1 ms interpreted.
        ("jit", "off".to_string()),
    ]
}

/// What the worker transitions' sessions add: see `connect`.
const TRANSITION_SETTINGS: [(&str, &str); 2] = [
    ("plan_cache_mode", "force_generic_plan"),
    ("enable_seqscan", "off"),
];

/// `SET name = 'value'; …` (with `LOCAL` when `local`), sent as one simple query.
fn set_statements(settings: &[(&str, String)], local: bool) -> String {
    settings
        .iter()
        .map(|(name, value)| {
            format!(
                "SET {}{name} = '{}'",
                if local { "LOCAL " } else { "" },
                value.replace('\'', "''")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The general and the transitions' settings, in that order.
fn with_transition_settings(general: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut all = general.to_vec();
    all.extend(TRANSITION_SETTINGS.iter().map(|(k, v)| (*k, v.to_string())));
    all
}

/// One PostgreSQL transaction with every repository operation.
pub struct PostgresTx {
    pub(crate) tx: Conn,
    pub(crate) keys: Arc<KeySource>,
    pub(crate) engine: EngineSettings,
    /// Opened by `begin_read`: nothing to undo, so its rollback is not waited for.
    read_only: bool,
}

/// How long an unreachable replica is left alone before it is tried again.
const REPLICA_REST: Duration = Duration::from_secs(10);

/// Longest a health check waits for its connection and its answer.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// `host:port` (or the socket directory) the options connect to.
fn address(options: &PgConnectOptions) -> String {
    format!("{}:{}", options.get_host(), options.get_port())
}

/// Why a connection to the database failed, naming its address: "cannot connect to
/// 127.0.0.1:1: connection refused".
fn cannot_connect(options: &PgConnectOptions, e: &sqlx::Error) -> StoreError {
    let reason = match e {
        sqlx::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
            std::io::ErrorKind::TimedOut => "the connection timed out".to_string(),
            std::io::ErrorKind::NotFound => "no such socket".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => io.to_string(),
        },
        sqlx::Error::Database(db) => db.message().to_string(),
        sqlx::Error::Tls(t) => format!("TLS: {t}"),
        sqlx::Error::PoolTimedOut => "no connection could be made in time".to_string(),
        other => other.to_string(),
    };
    match e {
        // Wrong password, unknown database or role: not something waiting fixes.
        sqlx::Error::Database(db)
            if db
                .code()
                .is_some_and(|c| c.starts_with("28") || c == "3D000") =>
        {
            StoreError::invalid(
                "DATABASE_URL",
                format!("{} refused the connection: {reason}", address(options)),
            )
        }
        _ => StoreError::unavailable(format!("cannot connect to {}: {reason}", address(options))),
    }
}

impl PostgresBackend {
    /// A pool's error, with the reason a fresh connection fails when the pool gave up
    /// waiting (sqlx reports only "pool timed out" then, whether the database is down
    /// or every connection is busy).
    pub(crate) async fn diagnose(&self, e: sqlx::Error) -> StoreError {
        if !matches!(e, sqlx::Error::PoolTimedOut) {
            return StoreError::from(e);
        }
        let attempt =
            tokio::time::timeout(HEALTH_TIMEOUT, sqlx::ConnectOptions::connect(&self.options))
                .await;
        match attempt {
            Ok(Err(e)) => cannot_connect(&self.options, &e),
            Err(_) => StoreError::unavailable(format!(
                "cannot connect to {}: no answer within {} ms",
                address(&self.options),
                HEALTH_TIMEOUT.as_millis()
            )),
            Ok(Ok(conn)) => {
                let _ = sqlx::Connection::close(conn).await;
                StoreError::unavailable(format!(
                    "no database connection became free in time: all {} are in use",
                    self.pool.options().get_max_connections()
                ))
            }
        }
    }
}

/// A connection that the TLS mode refused: the server offers no TLS, or its
/// certificate does not verify. Waiting fixes neither, so it is the setting that
/// asked for the mode that is named.
fn tls_refused(
    options: &PgConnectOptions,
    tls: &crate::tls::Tls,
    mode: crate::tls::SslMode,
    e: &sqlx::Error,
) -> StoreError {
    let reason = match e {
        sqlx::Error::Tls(t) => t.to_string(),
        sqlx::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    };
    StoreError::invalid(
        tls.mode_from,
        format!(
            "cannot connect to {} with sslmode {mode}: {reason}",
            address(options)
        ),
    )
}

/// Shares `max` connections out between the main pool and the worker transitions'
/// pool: half each, the main pool taking the odd one, at least one each.
fn split_connections(max: u32) -> (u32, u32) {
    let transitions = (max / 2).max(1);
    (max.saturating_sub(transitions).max(1), transitions)
}

/// The options of one URL of the settings (`field` names it in errors): TLS,
/// `application_name`, statement logging and the slow-statement report; no session
/// settings (see `connect`).
fn connect_options(settings: &PgSettings, url: &str, field: &str) -> StoreResult<PgConnectOptions> {
    let mut options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::invalid(field, format!("is not a PostgreSQL URL: {e}")))?
        .application_name(&settings.application_name);
    if settings.pooler != Pooler::None {
        // PgBouncer refuses startup parameters it does not know, this one among them;
        // results travel in binary, which it does not affect.
        options = options.extra_float_digits(None);
    }
    let tls = settings.tls.resolve(url)?;
    options = tls.apply(options)?;
    if !settings.log_statements {
        options = sqlx::ConnectOptions::disable_statement_logging(options);
    }
    Ok(flowstore_core::slow::report_slow(
        options,
        settings.slow_statements,
    ))
}

/// Makes the first connection alone, so that a database that cannot be reached is
/// reported with its address and the reason, not as a pool that timed out.
async fn first_connection(settings: &PgSettings, options: &PgConnectOptions) -> StoreResult<()> {
    let tls = settings.tls.resolve(&settings.url)?;
    let first = tokio::time::timeout(
        settings.connect_timeout,
        sqlx::ConnectOptions::connect(options),
    )
    .await
    .map_err(|_| {
        StoreError::unavailable(format!(
            "cannot connect to {}: no answer within {} ms",
            address(options),
            settings.connect_timeout.as_millis()
        ))
    })?
    .map_err(|e| match (&e, tls.mode) {
        // A server without TLS, or a certificate that does not verify, is not
        // something waiting fixes: say which setting asked for TLS.
        (sqlx::Error::Tls(_), Some(mode)) if mode.requires_tls() => {
            tls_refused(options, &tls, mode, &e)
        }
        // A certificate that does not verify reaches sqlx as the TLS stream's
        // I/O error of kind `InvalidData`.
        (sqlx::Error::Io(io), Some(mode))
            if mode.requires_tls() && io.kind() == std::io::ErrorKind::InvalidData =>
        {
            tls_refused(options, &tls, mode, &e)
        }
        _ => cannot_connect(options, &e),
    })?;
    let _ = sqlx::Connection::close(first).await;
    Ok(())
}

/// Where a [`PostgresTx`] runs its statements.
pub(crate) enum Conn {
    /// Inside a transaction, which commit or rollback ends.
    Tx(Transaction<'static, Postgres>),
    /// On a pooled connection outside any transaction: each statement commits on its
    /// own. Only the worker transitions that are one statement run so (see
    /// `transitions`); such a session is never handed out as a [`Tx`].
    Autocommit(PoolConnection<Postgres>),
}

impl std::ops::Deref for Conn {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match self {
            Conn::Tx(tx) => tx,
            Conn::Autocommit(conn) => conn,
        }
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            Conn::Tx(tx) => tx,
            Conn::Autocommit(conn) => conn,
        }
    }
}

impl PostgresBackend {
    /// Begins a transaction on `pool` with `statement` (a `BEGIN`, sent as one simple
    /// query); `read_only` for `begin_read`.
    async fn begin_with(
        &self,
        pool: &PgPool,
        statement: &str,
        read_only: bool,
    ) -> StoreResult<Box<dyn Tx>> {
        Ok(Box::new(self.begin_on(pool, statement, read_only).await?))
    }

    /// A transition transaction (`begin_transition`), as the transaction type itself.
    pub(crate) async fn begin_transition_tx(&self) -> StoreResult<PostgresTx> {
        self.begin_on(&self.transitions, &self.begins.transition, false)
            .await
    }

    /// [`Self::begin_with`], as the transaction type itself.
    async fn begin_on(
        &self,
        pool: &PgPool,
        statement: &str,
        read_only: bool,
    ) -> StoreResult<PostgresTx> {
        let pool = pool.clone();
        let statement = statement.to_string();
        // The statement runs in a task of its own, to the end even when the caller goes
        // away (a client that disconnects drops its request): cancelled while waiting
        // for the server's answer, sqlx would return the connection to the pool inside
        // a transaction it does not know about. Finished here, a transaction nobody
        // takes is dropped, which rolls it back.
        let begun = tokio::spawn(async move { pool.begin_with(statement).await })
            .await
            .map_err(|e| StoreError::unavailable(format!("could not begin a transaction: {e}")))?;
        let tx = match begun {
            Ok(tx) => tx,
            Err(e) => return Err(self.diagnose(e).await),
        };
        Ok(PostgresTx {
            tx: Conn::Tx(tx),
            keys: self.keys.clone(),
            engine: self.engine,
            read_only,
        })
    }

    /// A session outside any transaction on a connection of the transitions' pool,
    /// for a transition that is one statement; [`PostgresTx::settle`] ends it. Behind
    /// a transaction pooler, where a statement outside a transaction may be parsed on
    /// one server connection and run on another, it is a transaction.
    pub(crate) async fn autocommit(&self) -> StoreResult<PostgresTx> {
        if self.pooler == Pooler::Transaction {
            return self
                .begin_on(&self.transitions, &self.begins.transition, false)
                .await;
        }
        let conn = match self.transitions.acquire().await {
            Ok(conn) => conn,
            Err(e) => return Err(self.diagnose(e).await),
        };
        Ok(PostgresTx {
            tx: Conn::Autocommit(conn),
            keys: self.keys.clone(),
            engine: self.engine,
            read_only: false,
        })
    }

    /// Connects to the database at `settings.url`.
    pub async fn connect(settings: &PgSettings, keys: Arc<KeySource>) -> StoreResult<Self> {
        if settings.pooler == Pooler::Transaction && settings.direct_url.is_none() {
            return Err(StoreError::invalid(
                "DATABASE_DIRECT_URL",
                "is required with DB_POOLER=transaction: migrations, LISTEN and the tools \
                 need a session, which a transaction pooler does not keep; give a URL that \
                 reaches PostgreSQL without the pooler",
            ));
        }
        let general = session_settings(settings);
        let options = connect_options(settings, &settings.url, "DATABASE_URL")?;
        // Directly, the session settings travel as startup options. Poolers refuse
        // startup parameters they do not know (or drop them): behind one they are
        // sent once a connection is made (session pooler) or at the start of every
        // transaction (transaction pooler). A transaction pooler may also lend each
        // transaction another server connection, so no statement is kept prepared
        // across transactions.
        let pooled = |options: PgConnectOptions| match settings.pooler {
            Pooler::None => options.options(general.clone()),
            Pooler::Session => options,
            Pooler::Transaction => options.statement_cache_capacity(0),
        };
        let options = pooled(options);
        let transition_options = match settings.pooler {
            Pooler::None => options.clone().options(TRANSITION_SETTINGS),
            _ => options.clone(),
        };
        let begins = match settings.pooler {
            Pooler::Transaction => Begins {
                general: format!("BEGIN; DEALLOCATE ALL; {}", set_statements(&general, true)),
                transition: format!(
                    "BEGIN; DEALLOCATE ALL; {}",
                    set_statements(&with_transition_settings(&general), true)
                ),
            },
            _ => Begins {
                general: "BEGIN".into(),
                transition: "BEGIN".into(),
            },
        };
        let after_connect = |sql: Option<String>| {
            move |opts: PgPoolOptions| match sql.clone() {
                None => opts,
                Some(sql) => opts.after_connect(move |conn, _| {
                    let sql = sql.clone();
                    Box::pin(async move {
                        conn.execute(sql.as_str()).await?;
                        Ok(())
                    })
                }),
            }
        };
        let (general_set, transition_set) = match settings.pooler {
            Pooler::Session => (
                Some(set_statements(&general, false)),
                Some(set_statements(&with_transition_settings(&general), false)),
            ),
            _ => (None, None),
        };
        // `max_connections` is shared out between the two pools (at least one each),
        // so that the server never holds more than it was given.
        let (general_max, transition_max) = split_connections(settings.max_connections);
        let pool_options = |max: u32| {
            flowstore_core::pool::ping_long_idle(PgPoolOptions::new())
                .max_connections(max)
                .acquire_timeout(settings.connect_timeout)
                .idle_timeout(Some(settings.idle_timeout))
        };
        first_connection(settings, &options).await?;
        let pool = after_connect(general_set.clone())(pool_options(general_max))
            .min_connections(settings.min_connections.min(general_max))
            .connect_with(options.clone())
            .await
            .map_err(|e| cannot_connect(&options, &e))?;
        let health = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(HEALTH_TIMEOUT)
            .idle_timeout(Some(settings.idle_timeout))
            .connect_lazy_with(
                options
                    .clone()
                    .application_name(&format!("{} (health)", settings.application_name)),
            );
        // Planning the claim alone took 0.6 ms of its 1.5 ms when PostgreSQL chose a
        // fresh plan for every call, as it does for statements whose plan it cannot
        // prove independent of the values bound; the worker transitions' statements
        // find rows by key or walk a fixed index, so their connections plan each of
        // them once. A generic plan is kept for the connection's life (until the
        // tables are analysed again), so one made while a table was nearly empty must
        // not be a sequential scan: at 10 000 tasks such a plan of the dependents'
        // promotion took 40-60 ms per call. Other statements (listings, aggregates)
        // keep the main pool's per-call plans. Its connections open when first used.
        let transitions = after_connect(transition_set)(pool_options(transition_max))
            .connect_lazy_with(transition_options);
        // Without a pooler the main pool is direct already.
        let (direct, direct_options, url) = match &settings.direct_url {
            Some(url) => {
                let direct_options =
                    connect_options(settings, url, "DATABASE_DIRECT_URL")?.options(general.clone());
                let direct = pool_options(2).connect_lazy_with(direct_options.clone());
                (direct, direct_options, url.clone())
            }
            None => (pool.clone(), options.clone(), settings.url.clone()),
        };
        let replica = match &settings.read_url {
            // Reached the way the primary is (through the same kind of pooler, if
            // any), with the same session settings.
            Some(url) => Some(
                after_connect(general_set.clone())(pool_options(general_max)).connect_lazy_with(
                    pooled(connect_options(settings, url, "DATABASE_READ_URL")?),
                ),
            ),
            None => None,
        };
        Ok(PostgresBackend {
            pool,
            transitions,
            run_tasks: Default::default(),
            completions: Default::default(),
            claims: Default::default(),
            heartbeats: Default::default(),
            failures: Default::default(),
            origin: format!("origin-{}", uuid::Uuid::new_v4().simple()),
            keys,
            engine: settings.engine,
            health,
            options,
            direct,
            direct_options,
            replica,
            replica_resting: Default::default(),
            begins,
            pooler: settings.pooler,
            url,
        })
    }

    /// The pool for tools that need raw access (whole-database maintenance,
    /// backups, migrations): connections that reach the primary without a pooler.
    pub fn direct_pool(&self) -> &PgPool {
        &self.direct
    }

    /// Runs `f` on one connection while holding the migration advisory lock.
    async fn with_migration_lock<T>(
        &self,
        f: impl for<'c> FnOnce(
                &'c mut sqlx::PgConnection,
            ) -> futures::future::BoxFuture<'c, StoreResult<T>>
            + Send,
    ) -> StoreResult<T> {
        let mut conn = self.direct.acquire().await?;
        // Another process may hold the migration lock for as long as its migrations
        // take: waiting for it is not a lock held too long.
        sqlx::query("SET lock_timeout = 0")
            .execute(&mut *conn)
            .await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(LOCK_KEY)
            .execute(&mut *conn)
            .await?;
        let result = f(&mut conn).await;
        let unlock = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOCK_KEY)
            .execute(&mut *conn)
            .await;
        let reset = sqlx::query("RESET lock_timeout").execute(&mut *conn).await;
        if unlock.is_err() || reset.is_err() {
            // A connection that may still hold the lock must not go back to the pool.
            conn.detach();
        }
        result
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Postgres
    }

    fn capabilities(&self) -> flowstore_core::store::Capabilities {
        flowstore_core::store::Capabilities {
            sequences_events: true,
        }
    }

    fn migrations(&self) -> &'static [flowstore_core::migrate::Migration] {
        MIGRATIONS
    }

    fn listen(&self, sink: Arc<dyn flowstore_core::change::ChangeSink>) -> bool {
        crate::listen::spawn(self.direct_options.clone(), sink, self.origin.clone());
        true
    }

    async fn announce(&self) -> StoreResult<()> {
        // Number the events committed here first, so that the streams the
        // notification wakes (sent by the numbering itself) can read them.
        let mut tx = self.begin().await?;
        tx.sequence_events().await?;
        tx.commit().await?;
        // A simple query: one message, whatever a pooler does between statements.
        // The origin is hex digits after a fixed word, so it needs no quoting.
        self.pool
            .execute(format!("SELECT pg_notify('flowstore_work', '{}')", self.origin).as_str())
            .await?;
        Ok(())
    }

    fn pool_status(&self) -> flowstore_core::store::PoolStatus {
        // Both pools: the main one and the worker transitions'.
        let pools = [&self.pool, &self.transitions];
        flowstore_core::store::PoolStatus {
            size: pools.iter().map(|p| p.size()).sum(),
            idle: pools
                .iter()
                .map(|p| u32::try_from(p.num_idle()).unwrap_or(u32::MAX))
                .fold(0, u32::saturating_add),
            max: pools
                .iter()
                .map(|p| p.options().get_max_connections())
                .sum(),
        }
    }

    async fn begin(&self) -> StoreResult<Box<dyn Tx>> {
        self.begin_with(&self.pool, &self.begins.general, false)
            .await
    }

    async fn begin_read(&self) -> StoreResult<Box<dyn Tx>> {
        self.begin_with(&self.pool, &self.begins.general, true)
            .await
    }

    async fn begin_lagging_read(&self) -> StoreResult<Box<dyn Tx>> {
        let resting = || {
            let until = self
                .replica_resting
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            until.is_some_and(|t| std::time::Instant::now() < t)
        };
        if let Some(replica) = self.replica.as_ref().filter(|_| !resting()) {
            match self.begin_with(replica, &self.begins.general, true).await {
                Ok(tx) => return Ok(tx),
                // A replica that cannot be reached is not a reason to fail a read the
                // primary can answer; it is tried again after a rest.
                Err(e) => {
                    tracing::warn!(error = %e, "the replica cannot be read; reading the primary for 10 s");
                    *self
                        .replica_resting
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) =
                        Some(std::time::Instant::now() + REPLICA_REST);
                }
            }
        }
        self.begin_read().await
    }

    async fn begin_transition(&self) -> StoreResult<Box<dyn Tx>> {
        // On the transitions' pool, whose sessions plan each statement once and never
        // by sequential scan (see `connect`).
        Ok(Box::new(self.begin_transition_tx().await?))
    }

    async fn claim_now(&self, request: &ClaimRequest) -> StoreResult<Vec<ClaimedTask>> {
        crate::transitions::claim_now(self, request).await
    }

    async fn complete_now(&self, attempt: AttemptRef, output: Value) -> StoreResult<Transition> {
        crate::transitions::complete_now(self, attempt, output).await
    }

    async fn complete_many_now(
        &self,
        items: Vec<(AttemptRef, Value)>,
    ) -> StoreResult<Vec<StoreResult<Transition>>> {
        crate::transitions::complete_many_now(self, items).await
    }

    async fn heartbeat_now(
        &self,
        attempt: AttemptRef,
        lease: std::time::Duration,
    ) -> StoreResult<Heartbeat> {
        crate::transitions::heartbeat_now(self, attempt, lease).await
    }

    async fn fail_now(
        &self,
        attempt: AttemptRef,
        error: Value,
        retryable: bool,
    ) -> StoreResult<Transition> {
        crate::transitions::fail_now(self, attempt, error, retryable).await
    }

    async fn migrate_up(&self, to: Option<i64>) -> StoreResult<Vec<i64>> {
        let keys = self.keys.clone();
        self.with_migration_lock(|conn| {
            Box::pin(async move {
                mig::ensure_table(conn).await?;
                let applied = mig::applied(conn).await?;
                migrate::verify(MIGRATIONS, &applied)?;
                let mut done = Vec::new();
                for m in MIGRATIONS {
                    if to.is_some_and(|t| m.version > t) {
                        break;
                    }
                    if applied.iter().any(|a| a.version == m.version) {
                        continue;
                    }
                    if mig::apply(conn, m, &keys).await? {
                        done.push(m.version);
                    }
                }
                Ok(done)
            })
        })
        .await
    }

    async fn migrate_down(&self, to: i64) -> StoreResult<Vec<i64>> {
        self.with_migration_lock(|conn| {
            Box::pin(async move {
                mig::ensure_table(conn).await?;
                let applied = mig::applied(conn).await?;
                migrate::verify(MIGRATIONS, &applied)?;
                let mut done = Vec::new();
                for m in MIGRATIONS.iter().rev() {
                    if m.version <= to {
                        break;
                    }
                    if applied.iter().any(|a| a.version == m.version) {
                        mig::revert(conn, m).await?;
                        done.push(m.version);
                    }
                }
                Ok(done)
            })
        })
        .await
    }

    async fn migration_status(&self) -> StoreResult<Vec<MigrationStatus>> {
        let mut conn = self.direct.acquire().await?;
        let applied = mig::applied(&mut conn).await?;
        Ok(migrate::status(MIGRATIONS, &applied))
    }

    async fn check_schema(&self) -> StoreResult<()> {
        let mut conn = self.direct.acquire().await?;
        let applied = mig::applied(&mut conn).await?;
        migrate::require_current(MIGRATIONS, &applied)
    }

    async fn schema_catalog(&self) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' ||
                    is_nullable || ' ' || coalesce(column_default, '')
               FROM information_schema.columns WHERE table_schema = current_schema()
                 AND table_name <> 'schema_migrations'
             UNION ALL
             SELECT 'index ' || indexname || ': ' || indexdef FROM pg_indexes
              WHERE schemaname = current_schema() AND tablename <> 'schema_migrations'
             UNION ALL
             SELECT 'constraint ' || conrelid::regclass::text || '.' || conname || ': ' ||
                    pg_get_constraintdef(oid)
               FROM pg_constraint WHERE connamespace = current_schema()::regnamespace
                AND conrelid::regclass::text <> 'schema_migrations'
             UNION ALL
             SELECT 'trigger ' || tgrelid::regclass::text || '.' || tgname || ': ' ||
                    pg_get_triggerdef(oid)
               FROM pg_trigger WHERE NOT tgisinternal
             UNION ALL
             SELECT 'view ' || viewname || ': ' || definition FROM pg_views
              WHERE schemaname = current_schema()
             UNION ALL
             SELECT 'function ' || proname || ': ' || md5(prosrc) FROM pg_proc
              WHERE pronamespace = current_schema()::regnamespace
             ORDER BY 1",
        )
        .fetch_all(&self.direct)
        .await?;
        Ok(rows.into_iter().map(|(l,)| l).collect())
    }

    async fn execute_raw(&self, sql: &str) -> StoreResult<u64> {
        let done = self.direct.execute(sql).await?;
        Ok(done.rows_affected())
    }

    async fn ping(&self) -> StoreResult<()> {
        self.pool.execute("SELECT 1").await?;
        Ok(())
    }

    async fn readiness(&self) -> StoreResult<()> {
        let check = async {
            let mut conn = match self.health.begin_with(self.begins.general.clone()).await {
                Ok(conn) => conn,
                Err(e) => return Err(self.diagnose(e).await),
            };
            let applied = mig::applied(&mut conn).await?;
            migrate::require_current(MIGRATIONS, &applied)?;
            let (recovery, read_only): (bool, String) = sqlx::query_as(
                "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only')",
            )
            .fetch_one(&mut *conn)
            .await?;
            if recovery {
                return Err(StoreError::ReadOnly(
                    "read-only transaction: the server is a replica in recovery".into(),
                ));
            }
            if read_only == "on" {
                return Err(StoreError::ReadOnly(
                    "read-only transaction: default_transaction_read_only is on".into(),
                ));
            }
            Ok(())
        };
        tokio::time::timeout(HEALTH_TIMEOUT, check)
            .await
            .map_err(|_| {
                StoreError::TimedOut("the database did not answer the health check".into())
            })?
    }

    async fn lock_waits(&self) -> StoreResult<flowstore_core::store::LockWaits> {
        let query = sqlx::query_as::<_, (i64, f64)>(
            "SELECT count(*), coalesce(max(extract(epoch FROM clock_timestamp() - state_change)), 0)::float8
               FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'
                AND application_name LIKE $1",
        )
        .bind(format!("{}%", self.options.get_application_name().unwrap_or("flowstore")));
        let read = async {
            let mut tx = self.health.begin_with(self.begins.general.clone()).await?;
            query.fetch_one(&mut *tx).await
        };
        let (waiting, longest) = match tokio::time::timeout(HEALTH_TIMEOUT, read).await {
            Err(_) => {
                return Err(StoreError::TimedOut(
                    "the lock statistics did not come in time".into(),
                ))
            }
            Ok(Err(e)) => return Err(self.diagnose(e).await),
            Ok(Ok(row)) => row,
        };
        Ok(flowstore_core::store::LockWaits {
            waiting: u64::try_from(waiting).unwrap_or(0),
            longest_ms: (longest * 1000.0) as u64,
        })
    }

    async fn close(&self) {
        self.health.close().await;
        self.transitions.close().await;
        self.pool.close().await;
        self.direct.close().await;
        if let Some(replica) = &self.replica {
            replica.close().await;
        }
    }

    fn admin(&self) -> &dyn flowstore_core::admin::AdminBackend {
        self
    }

    fn archive(&self) -> &dyn flowstore_core::archive::ArchiveBackend {
        self
    }
}

#[async_trait]
impl Tx for PostgresTx {
    async fn commit(self: Box<Self>) -> StoreResult<()> {
        match self.tx {
            Conn::Tx(tx) => Ok(tx.commit().await?),
            // Each statement committed when it ran.
            Conn::Autocommit(_) => Ok(()),
        }
    }

    async fn rollback(self: Box<Self>) -> StoreResult<()> {
        let tx = match self.tx {
            Conn::Tx(tx) => tx,
            // Never handed out as a `Tx`, so never asked to undo what it committed.
            Conn::Autocommit(_) => return Ok(()),
        };
        if self.read_only {
            // A read changed nothing, so nobody needs to wait for its end. Dropped,
            // the transaction queues its ROLLBACK, which sqlx sends with the ping it
            // makes while giving the connection back to the pool; the connection is
            // handed out again only after both were answered. One round trip less on
            // every read (measured in BENCHMARKS.md).
            drop(tx);
            return Ok(());
        }
        Ok(tx.rollback().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::split_connections;

    #[test]
    fn connections_are_shared_out_without_exceeding_the_maximum() {
        assert_eq!(split_connections(10), (5, 5));
        assert_eq!(split_connections(11), (6, 5));
        assert_eq!(split_connections(2), (1, 1));
        // Below two, each pool still needs one.
        assert_eq!(split_connections(1), (1, 1));
        assert_eq!(split_connections(0), (1, 1));
    }
}

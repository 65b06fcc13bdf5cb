//! `flowstore bench`: measured speed of the engine and the queries, each beside a
//! floor of minimal hand-written SQL on the same backend and the same pool.
//!
//! Every workload runs on a database made for the run (a temporary SQLite file, or a
//! new PostgreSQL database created through the given server and dropped afterwards),
//! never on live data. Each workload also checks its own result (every task done
//! exactly once, counts right) and fails when the check does not hold, so the smoke
//! tests can run it at tiny sizes.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use flowstore_core::model::engine::EngineSettings;
use flowstore_core::store::KeySource;
use flowstore_core::{Backend, BackendKind, StoreError, StoreResult};
use flowstore_postgres::{PgSettings, PostgresBackend};
use flowstore_sqlite::{SqliteBackend, SqliteSettings};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use sqlx::{PgPool, SqlitePool};

mod claim;
mod claim_min;
mod claim_rows;
mod dag;
mod driver;
mod fleet;
mod http;
mod pages;
mod pickup;
mod query;
mod query_load;
mod start;
mod table_writes;

/// The workloads `flowstore bench` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Claim and complete ready tasks through the library, beside the raw-SQL floor.
    Claim,
    /// The same cycle through the HTTP API (`flowstore serve` in process).
    Http,
    /// Runs of a five-step diamond workflow driven to completion.
    Dag,
    /// Reads over a bulk-loaded database of runs, metrics and tasks, and the
    /// dashboard's pages over HTTP on it.
    Query,
    /// Three servers in this process on one database, each with its own
    /// connections: how soon one hears what another commits.
    Fleet,
    /// Runs started through the HTTP API, one per request and 1,000 per request.
    Start,
    /// Enqueue to start: runs started at 100 a second, claimed by waiting workers.
    Pickup,
}

impl Workload {
    /// Parses `claim,http,dag,query`.
    pub fn parse_list(text: &str) -> StoreResult<Vec<Workload>> {
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let w = match part.to_ascii_lowercase().as_str() {
                "claim" => Workload::Claim,
                "http" => Workload::Http,
                "dag" => Workload::Dag,
                "query" => Workload::Query,
                "fleet" => Workload::Fleet,
                "start" => Workload::Start,
                "pickup" => Workload::Pickup,
                other => {
                    return Err(StoreError::invalid(
                        "workloads",
                        format!(
                            "unknown workload {other:?} (claim, http, dag, query, fleet, start, pickup)"
                        ),
                    ))
                }
            };
            if !out.contains(&w) {
                out.push(w);
            }
        }
        if out.is_empty() {
            return Err(StoreError::invalid(
                "workloads",
                "name at least one workload",
            ));
        }
        Ok(out)
    }
}

/// What to run, and how big.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// The server or file to run on; a temporary SQLite file when `None`.
    pub database_url: Option<String>,
    /// Which workloads.
    pub workloads: Vec<Workload>,
    /// Ready tasks per claim round (claim and http).
    pub tasks: u32,
    /// Concurrent workers.
    pub workers: u32,
    /// Rounds; medians are reported.
    pub rounds: u32,
    /// Runs of the diamond workflow (dag).
    pub dag_runs: u32,
    /// Runs loaded for the query workload.
    pub runs: u64,
    /// Calls per query measured.
    pub query_calls: u32,
    /// Use a SQLite file that is not empty.
    pub force: bool,
    /// Draw progress bars (only ever on a terminal).
    pub progress: bool,
    /// SQLite's commit durability (the floors' connections get the same).
    pub sqlite_synchronous: flowstore_sqlite::Synchronous,
    /// What flowstore's engine writes besides what its guarantees need (the floor of
    /// flowstore's rows writes the same).
    pub engine: EngineSettings,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            database_url: None,
            workloads: vec![
                Workload::Claim,
                Workload::Http,
                Workload::Dag,
                Workload::Query,
            ],
            tasks: 20_000,
            workers: 8,
            rounds: 3,
            dag_runs: 2_000,
            runs: 1_000_000,
            query_calls: 1_000,
            force: false,
            progress: false,
            sqlite_synchronous: flowstore_sqlite::Synchronous::Full,
            engine: EngineSettings::default(),
        }
    }
}

/// One measured line of the report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Row {
    /// `claim`, `http`, `dag` or `query`.
    pub workload: String,
    /// What was measured, such as `flowstore B=64` or `get by execution_id`.
    pub variant: String,
    /// Throughput (median over rounds), in `rate_unit`.
    pub rate: Option<f64>,
    /// `tasks/s` or `runs/s`.
    pub rate_unit: Option<String>,
    /// This line's throughput over the raw-SQL floor's.
    pub ratio_to_floor: Option<f64>,
    /// Median latency of the operation (claim, or the query), ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency of the operation, ms.
    pub p99_ms: Option<f64>,
    /// Median latency of a completion, ms.
    pub complete_p50_ms: Option<f64>,
    /// 99th percentile latency of a completion, ms.
    pub complete_p99_ms: Option<f64>,
    /// Tasks, runs or calls done (and checked) in the last round.
    pub items: u64,
    /// Peak resident memory of this process, MB (http).
    pub peak_memory_mb: Option<f64>,
    /// Anything the number needs to be read right.
    pub note: Option<String>,
}

/// The whole result of `flowstore bench`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Where it ran (the temporary database; passwords redacted).
    pub database: String,
    /// Logical cores of this machine.
    pub cores: usize,
    /// The sizes used.
    pub tasks: u32,
    /// Workers.
    pub workers: u32,
    /// Rounds.
    pub rounds: u32,
    /// Diamond runs.
    pub dag_runs: u32,
    /// Runs loaded for the query workload.
    pub query_runs: u64,
    /// The measurements.
    pub rows: Vec<Row>,
    /// Set-up times and other remarks.
    pub notes: Vec<String>,
}

/// The raw side of the backend: its own pool, for the floor and the bulk loads.
#[derive(Clone)]
pub(crate) enum Raw {
    Sqlite {
        pool: SqlitePool,
        /// Serialises raw writers as flowstore's writer queue serialises its own.
        writer: Arc<tokio::sync::Mutex<()>>,
    },
    Postgres(PgPool),
}

/// A database made for the run.
pub(crate) struct Target {
    pub backend: Arc<dyn Backend>,
    pub raw: Raw,
    pub description: String,
    cleanup: Cleanup,
    /// How to open another backend on the same database, as another server would.
    reopen: Reopen,
}

enum Reopen {
    Sqlite(SqliteSettings, Arc<KeySource>),
    Postgres(PgSettings, Arc<KeySource>),
}

enum Cleanup {
    Nothing,
    RemoveDir(std::path::PathBuf),
    DropDatabase { admin_url: String, name: String },
}

impl Target {
    pub fn kind(&self) -> BackendKind {
        self.backend.kind()
    }

    /// Another backend on this database, with connections of its own.
    pub async fn another_backend(&self) -> StoreResult<Arc<dyn Backend>> {
        Ok(match &self.reopen {
            Reopen::Sqlite(s, keys) => Arc::new(SqliteBackend::connect(s, keys.clone()).await?),
            Reopen::Postgres(s, keys) => Arc::new(PostgresBackend::connect(s, keys.clone()).await?),
        })
    }
}

/// A random key: the bench never reads or writes the key file of the directory it
/// runs in.
fn bench_keys() -> Arc<KeySource> {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let key = flowstore_core::crypto::Key::parse(&hex::encode(bytes)).expect("64 hex digits");
    Arc::new(KeySource::given(flowstore_core::crypto::Keyring::new(key)))
}

async fn open_target(opts: &BenchOptions) -> StoreResult<Target> {
    let mut target = open_database(opts).await?;
    if !opts.engine.claim_events {
        target.description.push_str("; claims write no events");
    }
    Ok(target)
}

async fn open_database(opts: &BenchOptions) -> StoreResult<Target> {
    let pool_max = opts.workers.max(1) + 4;
    let keys = bench_keys();
    let url = opts.database_url.as_deref().map(str::trim);
    match url {
        None => {
            let dir = std::env::temp_dir()
                .join(format!("flowstore-bench-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).map_err(|e| {
                StoreError::unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
            let url = format!("sqlite://{}", dir.join("bench.db").display());
            let mut t = open_sqlite(&url, pool_max, keys, opts).await?;
            t.cleanup = Cleanup::RemoveDir(dir);
            Ok(t)
        }
        Some(u) if u.starts_with("sqlite:") => {
            if u.contains(":memory:") || u.contains("mode=memory") {
                return Err(StoreError::invalid(
                    "database_url",
                    "the bench needs a file (an in-memory database has one connection)",
                ));
            }
            let path = u
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            let path = path.split('?').next().unwrap_or(path);
            let used = std::fs::metadata(path)
                .map(|m| m.len() > 0)
                .unwrap_or(false);
            if used && !opts.force {
                return Err(StoreError::invalid(
                    "database_url",
                    format!("{path} exists and is not empty: the bench writes and measures on a database of its own; give a new file, or --force"),
                ));
            }
            open_sqlite(u, pool_max, keys, opts).await
        }
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
            // The PostgreSQL backend shares its connections out between its main pool
            // (the floors' too) and its worker transitions' pool, half each: each
            // gets the workers plus four.
            let fleet = opts.workloads.contains(&Workload::Fleet);
            open_postgres(u, 2 * pool_max, keys, fleet, opts.engine).await
        }
        Some(_) => Err(StoreError::invalid(
            "database_url",
            "must start with sqlite: or postgres://",
        )),
    }
}

async fn open_sqlite(
    url: &str,
    pool_max: u32,
    keys: Arc<KeySource>,
    opts: &BenchOptions,
) -> StoreResult<Target> {
    let settings = SqliteSettings {
        url: url.to_string(),
        max_connections: pool_max,
        min_connections: 1,
        busy_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(600),
        create: true,
        synchronous: opts.sqlite_synchronous,
        slow_statements: Some(flowstore_core::slow::DEFAULT_THRESHOLD),
        engine: opts.engine,
    };
    let backend = Arc::new(SqliteBackend::connect(&settings, keys.clone()).await?);
    backend.migrate_up(None).await?;
    let raw = Raw::Sqlite {
        pool: backend.pool().clone(),
        writer: Arc::new(tokio::sync::Mutex::new(())),
    };
    Ok(Target {
        backend,
        raw,
        description: url.to_string(),
        cleanup: Cleanup::Nothing,
        reopen: Reopen::Sqlite(settings, keys),
    })
}

async fn open_postgres(
    url: &str,
    pool_max: u32,
    keys: Arc<KeySource>,
    fleet: bool,
    engine: EngineSettings,
) -> StoreResult<Target> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| StoreError::unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
    // The connections the server has left for ordinary sessions: a pool larger than
    // that (64 workers ask for 136) would have its new connections refused mid-run
    // ("too many clients"), measuring the server's limit rather than flowstore.
    // Sessions of other roles may show no backend type to this one; they count too.
    let free: i64 = sqlx::query_scalar(
        "SELECT current_setting('max_connections')::bigint
              - current_setting('superuser_reserved_connections')::bigint
              - coalesce(current_setting('reserved_connections', true)::bigint, 0)
              - (SELECT count(*) FROM pg_stat_activity
                  WHERE backend_type = 'client backend' OR backend_type IS NULL)",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(|e| StoreError::unavailable(format!("cannot read PostgreSQL's limits: {e}")))?;
    // Eight kept aside for the change feed's listener and the health check; the
    // fleet workload runs three more servers, each with a backend of its own.
    let backends = if fleet { 4 } else { 1 };
    let room = (u32::try_from(free - 8).unwrap_or(0) / backends).max(4);
    let capped = pool_max > room;
    let pool_max = pool_max.min(room);
    let name = format!("flowstore_bench_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .map_err(|e| {
            StoreError::unavailable(format!(
                "cannot create a database for the bench (it never runs on an existing one): {e}"
            ))
        })?;
    let _ = conn.close().await;
    let mut bench_url = url::Url::parse(url)
        .map_err(|e| StoreError::invalid("database_url", format!("is not a URL: {e}")))?;
    bench_url.set_path(&name);
    let settings = PgSettings {
        url: bench_url.to_string(),
        max_connections: pool_max,
        min_connections: 1,
        connect_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(600),
        statement_timeout: Duration::from_secs(600),
        application_name: "flowstore-bench".into(),
        log_statements: false,
        engine,
        ..PgSettings::default()
    };
    let cleanup = Cleanup::DropDatabase {
        admin_url: url.to_string(),
        name: name.clone(),
    };
    let backend = match PostgresBackend::connect(&settings, keys.clone()).await {
        Ok(b) => Arc::new(b),
        Err(e) => {
            drop_database(url, &name).await;
            return Err(e);
        }
    };
    if let Err(e) = backend.migrate_up(None).await {
        backend.close().await;
        drop_database(url, &name).await;
        return Err(e);
    }
    let raw = Raw::Postgres(backend.direct_pool().clone());
    Ok(Target {
        backend,
        raw,
        description: if capped {
            format!(
                "{}, {pool_max} connections: the server had {free} free",
                flowstore::config::redact_url(bench_url.as_str())
            )
        } else {
            flowstore::config::redact_url(bench_url.as_str())
        },
        cleanup,
        reopen: Reopen::Postgres(settings, keys),
    })
}

async fn drop_database(admin_url: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin_url).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
    }
}

async fn close_target(t: Target) {
    t.backend.close().await;
    match t.cleanup {
        Cleanup::Nothing => {}
        Cleanup::RemoveDir(dir) => {
            let _ = std::fs::remove_dir_all(dir);
        }
        Cleanup::DropDatabase { admin_url, name } => drop_database(&admin_url, &name).await,
    }
}

/// Runs the workloads asked for and returns the report (the caller prints it).
pub async fn run(opts: &BenchOptions) -> StoreResult<Report> {
    if opts.workers == 0 || opts.tasks == 0 || opts.rounds == 0 {
        return Err(StoreError::invalid(
            "workers",
            "--workers, --tasks and --rounds must be at least 1",
        ));
    }
    let target = open_target(opts).await?;
    let result = run_on(&target, opts).await;
    close_target(target).await;
    result
}

async fn run_on(target: &Target, opts: &BenchOptions) -> StoreResult<Report> {
    let mut report = Report {
        backend: target.kind().as_str().into(),
        database: target.description.clone(),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        tasks: opts.tasks,
        workers: opts.workers,
        rounds: opts.rounds,
        dag_runs: opts.dag_runs,
        query_runs: opts.runs,
        rows: Vec::new(),
        notes: Vec::new(),
    };
    for w in &opts.workloads {
        match w {
            Workload::Claim => claim::run(target, opts, &mut report).await?,
            Workload::Http => http::run(target, opts, &mut report).await?,
            Workload::Dag => dag::run(target, opts, &mut report).await?,
            Workload::Query => query::run(target, opts, &mut report).await?,
            Workload::Fleet => fleet::run(target, opts, &mut report).await?,
            Workload::Start => start::run(target, opts, &mut report).await?,
            Workload::Pickup => pickup::run(target, opts, &mut report).await?,
        }
    }
    Ok(report)
}

/// A new admin API key on the target's database, for the workloads over HTTP.
pub(crate) async fn admin_key(target: &Target, name: &str) -> StoreResult<String> {
    use flowstore_core::model::identity::Role;
    use flowstore_core::model::identity_access::NewApiKey;
    let mut tx = target.backend.begin().await?;
    let key = tx
        .create_api_key(NewApiKey {
            name: name.into(),
            role: Some(Role::Admin),
            ..NewApiKey::default()
        })
        .await?;
    tx.commit().await?;
    Ok(key.key.expose().to_string())
}

/// `flowstore serve` in this process on 127.0.0.1:0 over a backend, with the
/// per-key rate limit lifted (the bench measures the server, not the limit).
pub(crate) struct InProcess {
    /// `http://127.0.0.1:port/api/v1`.
    pub base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl InProcess {
    pub async fn start(backend: Arc<dyn Backend>) -> StoreResult<InProcess> {
        use flowstore_server::{AppState, ServerConfig};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| fail(format!("cannot listen on 127.0.0.1:0: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| fail(format!("listener address: {e}")))?;
        let state = AppState::with_config(
            backend,
            ServerConfig {
                rate_per_second: 1e9,
                rate_burst: 1e9,
                ..ServerConfig::default()
            },
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(flowstore_server::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Ok(InProcess {
            base: format!("http://{addr}/api/v1"),
            stop,
            task,
        })
    }

    /// Stops it, waiting up to 10 s for its requests in flight.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// A progress bar on stderr, hidden unless asked for and stderr is a terminal.
pub(crate) fn bar(opts: &BenchOptions, len: u64, message: String) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(
        Some(len),
        if opts.progress && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) = ProgressStyle::with_template("{msg:32} [{bar:30}] {pos}/{len} {per_sec}") {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(message);
    pb
}

/// Latency samples.
#[derive(Default, Clone, Debug)]
pub(crate) struct Samples(pub Vec<Duration>);

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d)
    }
    pub fn extend(&mut self, other: Samples) {
        self.0.extend(other.0)
    }
    /// The `q`-quantile (nearest rank), ms.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.0.is_empty() {
            return None;
        }
        let mut v = self.0.clone();
        v.sort_unstable();
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        Some(v[rank - 1].as_secs_f64() * 1000.0)
    }
}

/// The median of some numbers.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

pub(crate) fn fail(what: impl std::fmt::Display) -> StoreError {
    StoreError::internal(format!("bench check failed: {what}"))
}

pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    StoreError::internal(format!("bench SQL: {e}"))
}

/// The report as a table.
pub fn render_table(r: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "flowstore bench on {} ({}), {} cores; tasks={} workers={} rounds={} dag-runs={} query-runs={}",
        r.backend, r.database, r.cores, r.tasks, r.workers, r.rounds, r.dag_runs, r.query_runs
    );
    let f = |v: Option<f64>, prec: usize| match v {
        Some(x) => format!("{x:.prec$}"),
        None => "-".into(),
    };
    let _ = writeln!(
        out,
        "{:<6} {:<48} {:>12} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "load", "variant", "rate", "x floor", "p50 ms", "p99 ms", "cmpl p50", "cmpl p99", "items"
    );
    for row in &r.rows {
        let rate = match (&row.rate, &row.rate_unit) {
            (Some(v), Some(u)) => format!(
                "{v:.0} {}",
                u.trim_end_matches("/s").chars().next().unwrap_or(' ')
            ),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "{:<6} {:<48} {:>12} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
            row.workload,
            row.variant,
            rate,
            f(row.ratio_to_floor, 2),
            f(row.p50_ms, 3),
            f(row.p99_ms, 3),
            f(row.complete_p50_ms, 3),
            f(row.complete_p99_ms, 3),
            row.items
        );
        if let Some(m) = row.peak_memory_mb {
            let _ = writeln!(
                out,
                "{:<6} peak memory (VmHWM of this process): {m:.1} MB",
                ""
            );
        }
        if let Some(n) = &row.note {
            let _ = writeln!(out, "{:<6} note: {n}", "");
        }
    }
    let _ = writeln!(
        out,
        "rate: t = tasks/s, r = runs/s (medians over rounds), x = database transactions/s"
    );
    for n in &r.notes {
        let _ = writeln!(out, "- {n}");
    }
    out
}

/// Peak resident set of this process (VmHWM), MB, where /proc says it.
pub(crate) fn peak_memory_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

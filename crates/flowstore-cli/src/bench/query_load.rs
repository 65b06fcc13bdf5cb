//! The bulk load of the `query` workload: ten stored workflows (made through the
//! store, as the API makes them), then runs of them, metrics and tasks made by SQL on
//! the server side (`generate_series` on PostgreSQL, a recursive CTE on SQLite), then
//! fresh planner statistics. The hourly rollups are filled as the metrics are
//! inserted, by the database's trigger (migration 0016).
//!
//! Identifiers are UUIDv7-shaped, as flowstore's own are: a millisecond timestamp
//! that grows with the load order, then random bits. Random identifiers would land
//! all over every index keyed by `id` and make the load several times slower than
//! what a live store, which writes its rows in identifier order, ever sees.

use std::time::{Duration, Instant};

use flowstore_core::ids::WorkflowId;
use flowstore_core::model::identity::NewUser;
use flowstore_core::model::workflow::{NewWorkflow, Visibility, WorkflowStatus};
use flowstore_core::StoreResult;
use sqlx::Connection;

use super::{bar, db_err, BenchOptions, Raw, Target};

/// Runs per loading statement (and transaction) on SQLite.
const SQLITE_CHUNK: u64 = 50_000;
/// Runs per loading statement (and transaction) on PostgreSQL. Each run bumps its
/// workflow's counter row (`workflow_stats`, by trigger), and every bump in one
/// transaction leaves a row version the next has to step over until the transaction
/// ends: the cost grows with the square of the runs per transaction. At 5 000 a
/// transaction, inserting runs takes about 40% of its time at 50 000.
const PG_CHUNK: u64 = 5_000;

/// Runs per loading statement (and transaction) on this backend.
pub(crate) fn chunk(target: &Target) -> u64 {
    match target.raw {
        Raw::Postgres(_) => PG_CHUNK,
        Raw::Sqlite { .. } => SQLITE_CHUNK,
    }
}
/// SQLite page cache of the loading connection, KiB: the indexes of a million runs
/// and ten million metrics do not fit the pool's default, and each miss re-reads a
/// page. The connection is closed after the load, so the pool keeps its own size.
const SQLITE_LOAD_CACHE_KIB: u64 = 1_000_000;
/// Session settings of the PostgreSQL loading connection (closed afterwards): the
/// load does not need to wait for the flush of each of its commits, and the tasks'
/// join and the rollups' grouping get memory to work in.
const PG_LOAD_SETTINGS: &[&str] = &["SET synchronous_commit = off", "SET work_mem = '256MB'"];

/// A UUIDv7 of the millisecond `ts` (PostgreSQL 15 has no `uuidv7()`): 12 hex digits
/// of time, the version digit, then the last 19 digits of a random v4 UUID (whose
/// first digit carries the RFC 4122 variant).
pub(crate) fn pg_v7(ts: &str) -> String {
    format!(
        "(lpad(to_hex({ts}), 12, '0') || '7' || substr(replace(gen_random_uuid()::text, '-', ''), 14))::uuid"
    )
}

/// A UUIDv7 of the millisecond `ts` as 16 bytes: 48 bits of time, the version digit
/// and 12 random bits, then the variant bits and 62 random bits.
pub(crate) fn sq_v7(ts: &str) -> String {
    format!(
        "unhex(printf('%012x7%03x%016x', {ts}, random() & 4095, \
         (random() & 0x3fffffffffffffff) | 0x8000000000000000))"
    )
}

/// Workflows loaded; run `i` runs workflow `i % WORKFLOWS`.
pub(crate) const WORKFLOWS: usize = 10;

/// The ID (as text) of the stored workflow run `i` runs, in SQL.
fn workflow_of_run(workflows: &[WorkflowId]) -> String {
    let arms: String = workflows
        .iter()
        .enumerate()
        .map(|(k, id)| format!(" WHEN {k} THEN '{id}'"))
        .collect();
    format!("CASE i % {}{arms} END", workflows.len())
}

fn pg_runs(workflows: &[WorkflowId]) -> String {
    let wf = workflow_of_run(workflows);
    format!(
        "INSERT INTO workflow_executions (id, execution_id, workflow_id, workflow_ref, workflow_version,
            workflow_name, status, strategy, start_time, end_time, actual_duration, created_at, updated_at)
         SELECT {}, 'bench-run-' || i, {wf}, ({wf})::uuid, '1', 'bench', st, 'parallel', t0,
                CASE WHEN st = 'running' THEN NULL ELSE t0 + d * interval '1 millisecond' END,
                CASE WHEN st IN ('completed', 'failed') THEN d END, t0, t0
           FROM (SELECT i,
                        CASE WHEN i % 20 < 14 THEN 'completed' WHEN i % 20 < 16 THEN 'failed'
                             WHEN i % 20 < 18 THEN 'running' WHEN i % 20 = 18 THEN 'cancelled'
                             ELSE 'timed_out' END AS st,
                        now() - (i % 30) * interval '1 day' - (i % 86400) * interval '1 second' AS t0,
                        ((i * 37) % 60000)::int AS d
                   FROM generate_series($1::bigint, $2::bigint) AS i) s",
        pg_v7("$3::bigint + i")
    )
}

fn pg_metrics() -> String {
    format!(
        "INSERT INTO workflow_metrics (id, execution_id, metric_name, metric_value, metric_unit,
            metric_type, recorded_at)
         SELECT {}, 'bench-run-' || i, 'metric_' || m, ((i * 7 + m * 13) % 1000) / 10.0, 'ms',
                (ARRAY['performance', 'resource', 'quality', 'custom'])[1 + m % 4],
                now() - (i % 30) * interval '1 day' - ((i * (m + 1)) % 86400) * interval '1 second'
           FROM generate_series($1::bigint, $2::bigint) AS i, generate_series(0, 9) AS m",
        pg_v7("$3::bigint + i")
    )
}

fn pg_tasks() -> String {
    format!(
        "INSERT INTO tasks (id, run_id, title, description, status, handler_type, requirements)
         SELECT {}, r.id,
                (ARRAY['deploy', 'build', 'test', 'release'])[1 + (i / 10) % 4] || ' service ' || i,
                'bench task for run ' || i, 'completed', 'bench-query',
                jsonb_build_object('os', CASE WHEN i % 20 = 0 THEN 'linux' ELSE 'macos' END,
                                   'tier', CASE WHEN i % 40 = 0 THEN 'gold' ELSE 'silver' END)
           FROM generate_series($1::bigint, $2::bigint) AS i
           JOIN workflow_executions r ON r.execution_id = 'bench-run-' || i
          WHERE i % 10 = 0",
        pg_v7("$3::bigint + i")
    )
}

const SQ_SERIES: &str =
    "WITH RECURSIVE s(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM s WHERE i < ?2)";

fn sq_runs(workflows: &[WorkflowId]) -> String {
    let wf = workflow_of_run(workflows);
    format!(
        "INSERT INTO workflow_executions (id, execution_id, workflow_id, workflow_ref,
            workflow_version, workflow_name, status, strategy, start_time, end_time,
            actual_duration, created_at, updated_at)
         {SQ_SERIES}, v AS (
            SELECT i,
                   CASE WHEN i % 20 < 14 THEN 'completed' WHEN i % 20 < 16 THEN 'failed'
                        WHEN i % 20 < 18 THEN 'running' WHEN i % 20 = 18 THEN 'cancelled'
                        ELSE 'timed_out' END AS st,
                   '-' || (i % 30) || ' days' AS dd, '-' || (i % 86400) || ' seconds' AS ds,
                   (i * 37) % 60000 AS d
              FROM s)
         SELECT {}, 'bench-run-' || i, {wf}, unhex(replace({wf}, '-', '')), '1', 'bench', st,
                'parallel', strftime('%Y-%m-%dT%H:%M:%f', 'now', dd, ds) || '000Z',
                CASE WHEN st = 'running' THEN NULL
                     ELSE strftime('%Y-%m-%dT%H:%M:%f', 'now', dd, ds, '+' || (d / 1000.0) || ' seconds') || '000Z' END,
                CASE WHEN st IN ('completed', 'failed') THEN d END,
                strftime('%Y-%m-%dT%H:%M:%f', 'now', dd, ds) || '000Z',
                strftime('%Y-%m-%dT%H:%M:%f', 'now', dd, ds) || '000Z'
           FROM v",
        sq_v7("?3 + i")
    )
}

fn sq_metrics() -> String {
    format!(
        "INSERT INTO workflow_metrics (id, execution_id, metric_name, metric_value, metric_unit,
            metric_type, recorded_at)
         {SQ_SERIES}, m(m) AS (VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9))
         SELECT {}, 'bench-run-' || i, 'metric_' || m, ((i * 7 + m * 13) % 1000) / 10.0, 'ms',
                CASE m % 4 WHEN 0 THEN 'performance' WHEN 1 THEN 'resource'
                           WHEN 2 THEN 'quality' ELSE 'custom' END,
                strftime('%Y-%m-%dT%H:%M:%f', 'now', '-' || (i % 30) || ' days',
                         '-' || ((i * (m + 1)) % 86400) || ' seconds') || '000Z'
           FROM s, m",
        sq_v7("?3 + i")
    )
}

fn sq_tasks() -> String {
    format!(
        "INSERT INTO tasks (id, run_id, title, description, status, handler_type, requirements)
         {SQ_SERIES}
         SELECT {}, r.id,
                CASE (i / 10) % 4 WHEN 0 THEN 'deploy' WHEN 1 THEN 'build' WHEN 2 THEN 'test'
                                  ELSE 'release' END || ' service ' || i,
                'bench task for run ' || i, 'completed', 'bench-query',
                json_object('os', CASE WHEN i % 20 = 0 THEN 'linux' ELSE 'macos' END,
                            'tier', CASE WHEN i % 40 = 0 THEN 'gold' ELSE 'silver' END)
           FROM s JOIN workflow_executions r ON r.execution_id = 'bench-run-' || i
          WHERE i % 10 = 0",
        sq_v7("?3 + i")
    )
}

/// How the load is cut: runs 1 to `n` in transactions of `size` runs, begun with
/// `begin`, with identifiers from the millisecond `base`.
struct Chunks {
    n: u64,
    size: u64,
    base: i64,
    begin: &'static str,
}

impl Chunks {
    /// Runs each of `statements` (which read the chunk's first and last run and the
    /// base as `$1`, `$2`, `$3`) chunk by chunk, a transaction a chunk, on either
    /// database.
    async fn load<DB>(
        &self,
        conn: &mut DB::Connection,
        statements: &[String],
        pb: &indicatif::ProgressBar,
    ) -> StoreResult<()>
    where
        DB: sqlx::Database,
        for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
        for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    {
        let mut from = 1u64;
        while from <= self.n {
            let to = (from + self.size - 1).min(self.n);
            let mut tx = conn.begin_with(self.begin).await.map_err(db_err)?;
            for sql in statements {
                sqlx::query(sql)
                    .bind(from as i64)
                    .bind(to as i64)
                    .bind(self.base)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            tx.commit().await.map_err(db_err)?;
            pb.set_position(to);
            from = to + 1;
        }
        Ok(())
    }
}

/// What [`load`] made.
pub(crate) struct Loaded {
    /// How long the load took.
    pub took: Duration,
    /// The stored workflows, `bench-wf-0` first; run `i` runs `workflows[i % WORKFLOWS]`.
    pub workflows: Vec<WorkflowId>,
}

/// Whether workflow `k` has an owner, and its visibility: a third of the workflows
/// belong to no one, a third are another user's and public, a third are theirs and
/// private, so that a reader who is not an admin sees some runs and not others, as
/// on a shared installation.
fn sharing(k: usize) -> (bool, Visibility) {
    match k % 3 {
        0 => (false, Visibility::Private),
        1 => (true, Visibility::Public),
        _ => (true, Visibility::Private),
    }
}

/// Whether a user who owns nothing may read workflow `k` and its runs.
pub(crate) fn visible_to_others(k: usize) -> bool {
    let (owned, visibility) = sharing(k);
    !owned || visibility == Visibility::Public
}

/// Makes the [`WORKFLOWS`] stored workflows the runs belong to, each with a
/// definition of two steps, through the store.
async fn workflows(target: &Target) -> StoreResult<Vec<WorkflowId>> {
    let mut tx = target.backend.begin().await?;
    let owner = tx
        .create_user(NewUser {
            email: "bench-owner@example.com".into(),
            ..NewUser::default()
        })
        .await?;
    let definition = serde_json::json!({"steps": [
        {"key": "build", "handler": "bench-query"},
        {"key": "test", "handler": "bench-query", "depends_on": ["build"]}
    ]});
    let mut ids = Vec::with_capacity(WORKFLOWS);
    for k in 0..WORKFLOWS {
        let (owned, visibility) = sharing(k);
        let w = tx
            .create_workflow(NewWorkflow {
                name: format!("bench-wf-{k}"),
                status: Some(WorkflowStatus::Active),
                definition: Some(definition.clone()),
                visibility: Some(visibility),
                owner_id: owned.then_some(owner.id),
                ..NewWorkflow::default()
            })
            .await?;
        ids.push(w.id);
    }
    tx.commit().await?;
    Ok(ids)
}

/// Loads the workflows and `opts.runs` runs of them with their metrics and tasks
/// (the rollups follow by trigger) and analyses.
pub(crate) async fn load(target: &Target, opts: &BenchOptions) -> StoreResult<Loaded> {
    let n = opts.runs;
    let t = Instant::now();
    let workflows = workflows(target).await?;
    // Run i's identifiers carry the millisecond base + i: increasing in load order
    // and ending about now.
    let base = chrono::Utc::now().timestamp_millis() - n as i64;
    let pb = bar(opts, n, "query: loading runs".into());
    match &target.raw {
        Raw::Postgres(pool) => {
            let mut conn = pool.acquire().await.map_err(db_err)?;
            // The session settings must not leak into the pool.
            conn.close_on_drop();
            for sql in PG_LOAD_SETTINGS {
                sqlx::query(sql).execute(&mut *conn).await.map_err(db_err)?;
            }
            let statements = [pg_runs(&workflows), pg_metrics(), pg_tasks()];
            let chunks = Chunks {
                n,
                size: PG_CHUNK,
                base,
                begin: "BEGIN",
            };
            chunks
                .load::<sqlx::Postgres>(&mut *conn, &statements, &pb)
                .await?;
            // Leave the database at rest before the reads are timed, as a database
            // of this size in service would be, rather than freshly loaded: the
            // counter bumps left a dead version per run behind the few live rows,
            // autovacuum would otherwise start on the ten million new samples (its
            // insert threshold) and the checkpointer would still be writing the load
            // out, both while the queries run. `CHECKPOINT` needs superuser or
            // pg_checkpoint; without it the checkpointer's own schedule stays.
            sqlx::query("VACUUM (ANALYZE)")
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
            if let Err(e) = sqlx::query("CHECKPOINT").execute(&mut *conn).await {
                tracing::debug!("bench: no CHECKPOINT after the load: {e}");
            }
        }
        Raw::Sqlite { pool, writer } => {
            let _g = writer.lock().await;
            let mut conn = pool.acquire().await.map_err(db_err)?;
            // Its large page cache must not stay in the pool.
            conn.close_on_drop();
            sqlx::query(&format!("PRAGMA cache_size = -{SQLITE_LOAD_CACHE_KIB}"))
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
            let statements = [sq_runs(&workflows), sq_metrics(), sq_tasks()];
            let begin = "BEGIN IMMEDIATE";
            let chunks = Chunks {
                n,
                size: SQLITE_CHUNK,
                base,
                begin,
            };
            chunks
                .load::<sqlx::Sqlite>(&mut *conn, &statements, &pb)
                .await?;
            sqlx::query("ANALYZE")
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
            // The load leaves most of the database in the write-ahead log, which the
            // background checkpointer goes on copying into the file after the load:
            // the first lookups measured then took 7-118 ms (at 200 000 runs) while
            // the rest took 0.3 ms. The queries are meant for a database at rest, so
            // the load ends with the log copied in and emptied.
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
        }
    }
    pb.finish_and_clear();
    Ok(Loaded {
        took: t.elapsed(),
        workflows,
    })
}

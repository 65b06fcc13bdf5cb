//! The `claim` workload: N ready tasks, W workers claiming B at a time and completing
//! each, through the library and through minimal hand-written SQL (the floor).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowstore_core::model::engine::{AttemptRef, ClaimRequest};
use flowstore_core::StoreResult;
use serde_json::json;
use uuid::Uuid;

use super::table_writes::TableWrites;
use super::{
    bar, claim_min, claim_rows, db_err, fail, median, BenchOptions, Raw, Report, Row, Samples,
    Target,
};

/// The batch sizes measured.
pub(crate) const BATCHES: [u32; 2] = [1, 64];

/// How a batch size completes its tasks: at B=1 each task in its own transaction
/// (`complete`), above that the whole claimed batch in one (`complete_many`, and
/// one statement in the floor).
pub(crate) fn completion_mode(batch: u32) -> &'static str {
    if batch > 1 {
        "cmpl=batch"
    } else {
        "cmpl=each"
    }
}

/// SQLite's text form of an instant, as flowstore writes it.
pub(crate) const SQLITE_NOW: &str = "strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')";

/// The SQLite floor's claim: `?1` handler type, `?2` worker, `?3` batch size.
pub(crate) fn sqlite_claim_sql() -> String {
    format!(
        "UPDATE tasks SET status = 'running', attempt = attempt + 1, lease_owner = ?2,
                lease_expires_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now', '+10 minutes'),
                started_at = {SQLITE_NOW}
          WHERE id IN (SELECT id FROM tasks
                        WHERE status = 'ready' AND handler_type = ?1
                        ORDER BY priority DESC, id LIMIT ?3)
          RETURNING id, attempt"
    )
}

/// The SQLite floor's completion of one task: `?1` id, `?2` attempt, `?3` output.
pub(crate) fn sqlite_complete_sql() -> String {
    format!(
        "UPDATE tasks SET status = 'completed', result = ?3, completed_at = {SQLITE_NOW},
                lease_owner = NULL, lease_expires_at = NULL
          WHERE id = ?1 AND attempt = ?2 AND status = 'running'"
    )
}

/// The SQLite floor's completion of a batch: `?1` a JSON array of `[hex id, attempt]`,
/// `?2` the output.
pub(crate) fn sqlite_complete_batch_sql() -> String {
    format!(
        "UPDATE tasks SET status = 'completed', result = ?2, completed_at = {SQLITE_NOW},
                lease_owner = NULL, lease_expires_at = NULL
           FROM (SELECT unhex(value ->> '$[0]') AS id, value ->> '$[1]' AS attempt
                   FROM json_each(?1)) AS u
          WHERE tasks.id = u.id AND tasks.attempt = u.attempt AND tasks.status = 'running'"
    )
}

/// What one round of one variant did.
pub(crate) struct RoundResult {
    pub elapsed: Duration,
    pub done: Vec<(Uuid, i32)>,
    pub claim: Samples,
    pub complete: Samples,
}

/// What one worker of a round did: the (task, attempt) pairs it completed, its claim
/// latencies and its completion latencies.
pub(crate) type Worked = (Vec<(Uuid, i32)>, Samples, Samples);

impl RoundResult {
    pub fn rate(&self) -> f64 {
        self.done.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The round that took `elapsed`, its workers' results added up.
    pub fn of_workers(elapsed: Duration, workers: impl IntoIterator<Item = Worked>) -> RoundResult {
        let mut round = RoundResult {
            elapsed,
            done: Vec::new(),
            claim: Samples::default(),
            complete: Samples::default(),
        };
        for (done, claim, complete) in workers {
            round.done.extend(done);
            round.claim.extend(claim);
            round.complete.extend(complete);
        }
        round
    }
}

/// The round of the worker tasks `handles`, once all of them have finished: its time
/// is counted from `start` to the last one's end.
pub(crate) async fn join_round(
    start: Instant,
    handles: Vec<tokio::task::JoinHandle<StoreResult<Worked>>>,
) -> StoreResult<RoundResult> {
    let mut workers = Vec::with_capacity(handles.len());
    for h in handles {
        workers.push(
            h.await
                .map_err(|e| fail(format!("a worker panicked: {e}")))??,
        );
    }
    Ok(RoundResult::of_workers(start.elapsed(), workers))
}

/// Inserts `n` ready tasks of handler type `handler`, without a run, in one statement.
/// Their IDs are UUIDv7 a millisecond apart from now on, as flowstore gives every
/// task it creates a time-ordered ID: tasks made one after the other sit side by
/// side in the table and its indexes, as they do in use. (Random IDs, which this
/// workload used before, scatter the tasks a claim takes in priority and ID order
/// over as many pages as tasks.)
pub(crate) async fn insert_ready_tasks(raw: &Raw, handler: &str, n: u32) -> StoreResult<()> {
    let ms = format!("{} + i", chrono::Utc::now().timestamp_millis());
    let pg = format!(
        "{}, 'bench task ' || i, 'ready', $1",
        super::query_load::pg_v7(&ms)
    );
    let sq = format!(
        "{}, 'bench task ' || i, 'ready', ?1",
        super::query_load::sq_v7(&ms)
    );
    insert_series(
        raw,
        "tasks (id, title, status, handler_type)",
        [&pg, &sq],
        handler,
        n,
    )
    .await
}

/// `INSERT INTO {into}` one row per number `i` from 1 to `n`, in one statement:
/// `each` is the row's values on PostgreSQL and on SQLite, `value` bound as `$1`
/// (`?1`). The numbers come from `generate_series` on PostgreSQL and a recursive
/// CTE on SQLite, under the writer lock there.
pub(crate) async fn insert_series(
    raw: &Raw,
    into: &str,
    each: [&str; 2],
    value: &str,
    n: u32,
) -> StoreResult<()> {
    match raw {
        Raw::Postgres(pool) => {
            let sql = format!(
                "INSERT INTO {into} SELECT {} FROM generate_series(1, $2) AS i",
                each[0]
            );
            sqlx::query(&sql)
                .bind(value)
                .bind(i64::from(n))
                .execute(pool)
                .await
                .map(drop)
        }
        Raw::Sqlite { pool, writer } => {
            let sql = format!(
                "INSERT INTO {into}
                 WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?2)
                 SELECT {} FROM s",
                each[1]
            );
            let _g = writer.lock().await;
            sqlx::query(&sql)
                .bind(value)
                .bind(i64::from(n))
                .execute(pool)
                .await
                .map(drop)
        }
    }
    .map_err(db_err)?;
    Ok(())
}

/// Counts the tasks of `handler` in `status`.
pub(crate) async fn count_tasks(raw: &Raw, handler: &str, status: &str) -> StoreResult<i64> {
    count(
        raw,
        "SELECT count(*) FROM tasks WHERE handler_type = $1 AND status = $2",
        &[handler, status],
    )
    .await
}

/// The count `sql` (PostgreSQL's spelling, `$n` parameters; rewritten for SQLite)
/// answers with the texts `binds`.
pub(crate) async fn count(raw: &Raw, sql: &str, binds: &[&str]) -> StoreResult<i64> {
    match raw {
        Raw::Postgres(pool) => {
            let mut q = sqlx::query_scalar(sql);
            for b in binds {
                q = q.bind(*b);
            }
            q.fetch_one(pool).await
        }
        Raw::Sqlite { pool, .. } => {
            let sql = flowstore_core::dialect::to_sqlite(sql);
            let mut q = sqlx::query_scalar(&sql);
            for b in binds {
                q = q.bind(*b);
            }
            q.fetch_one(pool).await
        }
    }
    .map_err(db_err)
}

/// Checks that each of `n` items (tasks or jobs) was done exactly once, by its first
/// attempt: `what` names them in the error.
pub(crate) fn check_each_once(what: &str, n: u32, done: &[(Uuid, i32)]) -> StoreResult<()> {
    let distinct: HashSet<Uuid> = done.iter().map(|(t, _)| *t).collect();
    if done.len() != n as usize || distinct.len() != n as usize {
        return Err(fail(format!(
            "{what}: {} completions of {} distinct items, expected {n} of {n}",
            done.len(),
            distinct.len()
        )));
    }
    if let Some((t, a)) = done.iter().find(|(_, a)| *a != 1) {
        return Err(fail(format!("{what}: {t} needed attempt {a}")));
    }
    Ok(())
}

/// Checks that every one of `n` tasks was done exactly once, by its first attempt,
/// and that the database agrees.
pub(crate) async fn check_done(
    raw: &Raw,
    handler: &str,
    n: u32,
    done: &[(Uuid, i32)],
) -> StoreResult<()> {
    check_each_once(handler, n, done)?;
    let completed = count_tasks(raw, handler, "completed").await?;
    if completed != i64::from(n) {
        return Err(fail(format!(
            "{handler}: {completed} tasks completed in the database, expected {n}"
        )));
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Library,
    /// flowstore with a heartbeat before each completion (one task at a time only).
    LibraryBeat,
    RawSql,
    /// The floor through rusqlite (SQLite only; see `driver`).
    RawRusqlite,
    /// Hand-written SQL writing flowstore's rows (PostgreSQL only; see `claim_rows`).
    RawRows,
    /// A minimal job table (see `claim_min`).
    MinTable,
}

impl Mode {
    fn tag(self) -> &'static str {
        match self {
            Mode::Library => "lib",
            Mode::LibraryBeat => "beat",
            Mode::RawSql => "raw",
            Mode::RawRusqlite => "rusqlite",
            Mode::RawRows => "rows",
            Mode::MinTable => "min",
        }
    }
}

/// What `drive` runs its workers through: flowstore, the floor's SQL over sqlx, or
/// the SQL of flowstore's rows (the rusqlite floor has its own driver,
/// `super::driver`).
#[derive(Clone, Copy)]
enum Through {
    Library,
    /// flowstore, each task's lease extended once (`heartbeat_now`) before it is
    /// completed.
    LibraryBeat,
    RawSql,
    RawRows,
    MinTable,
}

/// The PostgreSQL pool behind `raw`, for the floor that only PostgreSQL runs.
fn postgres(raw: &Raw) -> StoreResult<&sqlx::PgPool> {
    match raw {
        Raw::Postgres(pool) => Ok(pool),
        Raw::Sqlite { .. } => Err(fail("the floor of flowstore's rows runs on PostgreSQL")),
    }
}

async fn drive(
    target: &Target,
    through: Through,
    handler: &str,
    batch: u32,
    workers: u32,
    n: u32,
    opts: &BenchOptions,
) -> StoreResult<RoundResult> {
    let label = match through {
        Through::Library => format!("claim flowstore B={batch}"),
        Through::LibraryBeat => format!("claim flowstore, heartbeats, B={batch}"),
        Through::RawSql => format!("claim raw SQL B={batch}"),
        Through::RawRows => format!("claim raw SQL, flowstore's rows B={batch}"),
        Through::MinTable => format!("claim minimal table B={batch}"),
    };
    let pb = bar(opts, u64::from(n), label);
    let start = Instant::now();
    let mut handles = Vec::new();
    for w in 0..workers {
        let backend = target.backend.clone();
        let raw = target.raw.clone();
        let handler = handler.to_string();
        let pb = pb.clone();
        let events = opts.engine.claim_events;
        handles.push(tokio::spawn(async move {
            let worker = format!("bench-{w}");
            let mut done = Vec::new();
            let mut claim_lat = Samples::default();
            let mut complete_lat = Samples::default();
            loop {
                let t0 = Instant::now();
                let claimed: Vec<(Uuid, i32)> = match through {
                    Through::Library | Through::LibraryBeat => {
                        let request = ClaimRequest {
                            worker_id: worker.clone(),
                            handler_types: vec![handler.clone()],
                            limit: batch,
                            lease: Duration::from_secs(600),
                            executor: None,
                        };
                        let c = backend.claim_now(&request).await?;
                        c.into_iter().map(|c| (c.task_id.0, c.attempt)).collect()
                    }
                    Through::RawSql => raw_claim(&raw, &handler, &worker, batch).await?,
                    Through::RawRows => {
                        claim_rows::claim(postgres(&raw)?, &handler, &worker, batch, events).await?
                    }
                    Through::MinTable => claim_min::claim(&raw, &handler, &worker, batch).await?,
                };
                if claimed.is_empty() {
                    break;
                }
                claim_lat.push(t0.elapsed());
                if batch > 1 {
                    // The claimed batch is reported at once, in one transaction.
                    let t1 = Instant::now();
                    match through {
                        Through::Library | Through::LibraryBeat => {
                            let items = claimed
                                .iter()
                                .map(|(task, attempt)| {
                                    let attempt = AttemptRef {
                                        task_id: flowstore_core::ids::TaskId(*task),
                                        attempt: *attempt,
                                    };
                                    (attempt, json!({"ok": true}))
                                })
                                .collect();
                            let results = backend.complete_many_now(items).await?;
                            if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
                                return Err(fail(format!("batch completion refused one: {e}")));
                            }
                        }
                        Through::RawSql => raw_complete_batch(&raw, &claimed).await?,
                        Through::RawRows => claim_rows::complete(postgres(&raw)?, &claimed).await?,
                        Through::MinTable => claim_min::complete(&raw, &claimed).await?,
                    }
                    complete_lat.push(t1.elapsed());
                    pb.inc(claimed.len() as u64);
                    done.extend(claimed);
                    continue;
                }
                for (task, attempt) in claimed {
                    let t1 = Instant::now();
                    let attempt_ref = AttemptRef {
                        task_id: flowstore_core::ids::TaskId(task),
                        attempt,
                    };
                    match through {
                        Through::Library => {
                            backend
                                .complete_now(attempt_ref, json!({"ok": true}))
                                .await?;
                        }
                        Through::LibraryBeat => {
                            let lease = Duration::from_secs(600);
                            backend.heartbeat_now(attempt_ref, lease).await?;
                            backend
                                .complete_now(attempt_ref, json!({"ok": true}))
                                .await?;
                        }
                        Through::RawSql => raw_complete(&raw, task, attempt).await?,
                        Through::RawRows => {
                            claim_rows::complete(postgres(&raw)?, &[(task, attempt)]).await?
                        }
                        Through::MinTable => claim_min::complete(&raw, &[(task, attempt)]).await?,
                    }
                    complete_lat.push(t1.elapsed());
                    done.push((task, attempt));
                    pb.inc(1);
                }
            }
            StoreResult::Ok((done, claim_lat, complete_lat))
        }));
    }
    let result = join_round(start, handles).await?;
    pb.finish_and_clear();
    Ok(result)
}

async fn raw_claim(
    raw: &Raw,
    handler: &str,
    worker: &str,
    batch: u32,
) -> StoreResult<Vec<(Uuid, i32)>> {
    match raw {
        Raw::Postgres(pool) => {
            let rows: Vec<(Uuid, i32)> = sqlx::query_as(
                "UPDATE tasks SET status = 'running', attempt = attempt + 1, lease_owner = $2,
                        lease_expires_at = now() + interval '10 minutes', started_at = now()
                  WHERE id IN (SELECT id FROM tasks
                                WHERE status = 'ready' AND handler_type = $1
                                ORDER BY priority DESC, id LIMIT $3
                                FOR UPDATE SKIP LOCKED)
                  RETURNING id, attempt",
            )
            .bind(handler)
            .bind(worker)
            .bind(i64::from(batch))
            .fetch_all(pool)
            .await
            .map_err(db_err)?;
            Ok(rows)
        }
        Raw::Sqlite { pool, writer } => {
            let _g = writer.lock().await;
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
            let rows: Vec<(Vec<u8>, i32)> = sqlx::query_as(&sqlite_claim_sql())
                .bind(handler)
                .bind(worker)
                .bind(i64::from(batch))
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            rows.into_iter()
                .map(|(id, a)| {
                    Uuid::from_slice(&id)
                        .map(|u| (u, a))
                        .map_err(|e| fail(format!("task id: {e}")))
                })
                .collect()
        }
    }
}

async fn raw_complete(raw: &Raw, task: Uuid, attempt: i32) -> StoreResult<()> {
    let changed = match raw {
        Raw::Postgres(pool) => {
            let statement = sqlx::query(
                "UPDATE tasks SET status = 'completed', result = $3, completed_at = now(),
                        lease_owner = NULL, lease_expires_at = NULL
                  WHERE id = $1 AND attempt = $2 AND status = 'running'",
            )
            .bind(task)
            .bind(attempt);
            pg_write(pool, statement).await?
        }
        Raw::Sqlite { pool, writer } => {
            let sql = sqlite_complete_sql();
            let statement = sqlx::query(&sql)
                .bind(task.as_bytes().to_vec())
                .bind(attempt)
                .bind("{\"ok\":true}");
            sqlite_write(pool, writer, statement).await?
        }
    };
    if changed != 1 {
        return Err(fail(format!(
            "raw completion of {task} changed {changed} rows"
        )));
    }
    Ok(())
}

/// Runs the completion `statement` on the PostgreSQL floor with its result (`$3`,
/// `{"ok": true}`) bound, as one statement in a transaction of its own, and answers
/// how many rows it changed.
async fn pg_write<'q>(
    pool: &sqlx::PgPool,
    statement: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
) -> StoreResult<u64> {
    Ok(statement
        .bind(json!({"ok": true}))
        .execute(pool)
        .await
        .map_err(db_err)?
        .rows_affected())
}

/// Runs `statement` on the SQLite floor in a write transaction of its own, one writer
/// at a time as flowstore's writer queue does, and answers how many rows it changed.
async fn sqlite_write<'q>(
    pool: &sqlx::SqlitePool,
    writer: &tokio::sync::Mutex<()>,
    statement: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
) -> StoreResult<u64> {
    let _g = writer.lock().await;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
    let changed = statement
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
    tx.commit().await.map_err(db_err)?;
    Ok(changed)
}

/// The floor's batch completion: one statement for the whole claimed batch, guarded
/// by attempt and status like the single one.
async fn raw_complete_batch(raw: &Raw, claimed: &[(Uuid, i32)]) -> StoreResult<()> {
    let changed = match raw {
        Raw::Postgres(pool) => {
            let statement = sqlx::query(
                "UPDATE tasks t SET status = 'completed', result = $3, completed_at = now(),
                        lease_owner = NULL, lease_expires_at = NULL
                   FROM UNNEST($1::uuid[], $2::int[]) AS u(id, attempt)
                  WHERE t.id = u.id AND t.attempt = u.attempt AND t.status = 'running'",
            )
            .bind(claimed.iter().map(|c| c.0).collect::<Vec<_>>())
            .bind(claimed.iter().map(|c| c.1).collect::<Vec<_>>());
            pg_write(pool, statement).await?
        }
        Raw::Sqlite { pool, writer } => {
            let list: Vec<serde_json::Value> = claimed
                .iter()
                .map(|(t, a)| json!([t.simple().to_string(), a]))
                .collect();
            let sql = sqlite_complete_batch_sql();
            let statement = sqlx::query(&sql)
                .bind(serde_json::Value::Array(list).to_string())
                .bind("{\"ok\":true}");
            sqlite_write(pool, writer, statement).await?
        }
    };
    if changed != claimed.len() as u64 {
        return Err(fail(format!(
            "raw batch completion of {} tasks changed {changed} rows",
            claimed.len()
        )));
    }
    Ok(())
}

/// The rates and latencies of one variant over its rounds.
#[derive(Default)]
struct Variant {
    rates: Vec<f64>,
    claim: Samples,
    complete: Samples,
    /// What its last round wrote per task, where the database counts it.
    writes: Option<String>,
}

impl Variant {
    fn add(&mut self, r: RoundResult) {
        self.rates.push(r.rate());
        self.claim.extend(r.claim);
        self.complete.extend(r.complete);
    }

    fn row(&self, variant: String, floor: Option<f64>, items: u64) -> Row {
        let rate = median(&self.rates);
        Row {
            workload: "claim".into(),
            variant,
            rate,
            rate_unit: Some("tasks/s".into()),
            ratio_to_floor: match (rate, floor) {
                (Some(r), Some(f)) if f > 0.0 => Some(r / f),
                _ => None,
            },
            p50_ms: self.claim.quantile_ms(0.5),
            p99_ms: self.claim.quantile_ms(0.99),
            complete_p50_ms: self.complete.quantile_ms(0.5),
            complete_p99_ms: self.complete.quantile_ms(0.99),
            items,
            note: self.writes.clone(),
            ..Row::default()
        }
    }
}

pub(crate) async fn run(
    target: &Target,
    opts: &BenchOptions,
    report: &mut Report,
) -> StoreResult<()> {
    let n = opts.tasks;
    let w = opts.workers;
    // On SQLite the floor also runs through rusqlite, to measure the driver's share.
    let rusqlite_path = match &target.raw {
        Raw::Sqlite { pool, .. } => super::driver::sqlite_path(pool),
        Raw::Postgres(_) => None,
    };
    let mut modes = vec![
        Mode::RawSql,
        Mode::Library,
        Mode::LibraryBeat,
        Mode::MinTable,
    ];
    if rusqlite_path.is_some() {
        modes.push(Mode::RawRusqlite);
    }
    // On PostgreSQL, where the target is a ratio to the floor, the rows flowstore
    // writes are also written by hand, to measure what they cost apart from flowstore.
    if matches!(target.raw, Raw::Postgres(_)) {
        modes.push(Mode::RawRows);
    }
    let (mut beside_rows, mut beside_min) = (Vec::new(), Vec::new());
    let mut setup = Duration::ZERO;
    let mut sets = 0;
    for batch in BATCHES {
        let mut results: Vec<Variant> = modes.iter().map(|_| Variant::default()).collect();
        let mut items = 0;
        for round in 0..opts.rounds {
            for (mode, result) in modes.iter().zip(results.iter_mut()) {
                if *mode == Mode::LibraryBeat && batch > 1 {
                    continue;
                }
                let handler = format!("bench-claim-{}-b{batch}-r{round}", mode.tag());
                let t = Instant::now();
                if *mode == Mode::MinTable {
                    claim_min::insert(&target.raw, &handler, n).await?;
                } else {
                    insert_ready_tasks(&target.raw, &handler, n).await?;
                }
                setup += t.elapsed();
                sets += 1;
                let r = match mode {
                    Mode::Library => {
                        // flowstore's rows, counted in its last round.
                        let last = round + 1 == opts.rounds;
                        let before = TableWrites::before(&target.raw, last).await?;
                        let r =
                            drive(target, Through::Library, &handler, batch, w, n, opts).await?;
                        let items = r.done.len() as u64;
                        if let Some(writes) =
                            TableWrites::since(before, &target.raw, items, "task").await?
                        {
                            result.writes = Some(writes);
                        }
                        r
                    }
                    Mode::LibraryBeat => {
                        drive(target, Through::LibraryBeat, &handler, batch, w, n, opts).await?
                    }
                    Mode::RawSql => {
                        drive(target, Through::RawSql, &handler, batch, w, n, opts).await?
                    }
                    Mode::RawRows => {
                        drive(target, Through::RawRows, &handler, batch, w, n, opts).await?
                    }
                    Mode::MinTable => {
                        drive(target, Through::MinTable, &handler, batch, w, n, opts).await?
                    }
                    Mode::RawRusqlite => {
                        let path = rusqlite_path
                            .clone()
                            .ok_or_else(|| fail("the rusqlite floor needs a SQLite file"))?;
                        super::driver::drive(
                            path,
                            handler.clone(),
                            batch,
                            w,
                            opts.sqlite_synchronous,
                        )
                        .await?
                    }
                };
                if *mode == Mode::MinTable {
                    claim_min::check_done(&target.raw, &handler, n, &r.done).await?;
                } else {
                    check_done(&target.raw, &handler, n, &r.done).await?;
                }
                items = r.done.len() as u64;
                result.add(r);
            }
        }
        let floor = median(&results[0].rates);
        let cmpl = completion_mode(batch);
        for (mode, result) in modes.iter().zip(&results) {
            if result.rates.is_empty() {
                continue;
            }
            let variant = match mode {
                Mode::RawSql => format!("raw SQL floor B={batch} W={w} {cmpl}"),
                Mode::Library => format!("flowstore B={batch} W={w} {cmpl}"),
                Mode::LibraryBeat => format!("flowstore B={batch} W={w} {cmpl} +heartbeat"),
                Mode::RawRusqlite => format!("floor via rusqlite B={batch} W={w} {cmpl}"),
                Mode::RawRows => format!("raw SQL, flowstore's rows B={batch} W={w} {cmpl}"),
                Mode::MinTable => format!("minimal job table B={batch} W={w} {cmpl}"),
            };
            report.rows.push(result.row(variant, floor, items));
        }
        let rate_of = |wanted: Mode| {
            modes
                .iter()
                .position(|m| *m == wanted)
                .and_then(|i| median(&results[i].rates))
        };
        if let (Some(lib), Some(rows)) = (rate_of(Mode::Library), rate_of(Mode::RawRows)) {
            beside_rows.push(format!("B={batch} {:.2}x", lib / rows.max(1e-9)));
        }
        if let (Some(lib), Some(min)) = (rate_of(Mode::Library), rate_of(Mode::MinTable)) {
            beside_min.push(format!("B={batch} {:.2}x", lib / min.max(1e-9)));
        }
    }
    report.notes.push(format!(
        "claim: {} ready tasks per round inserted in one statement each, with time-ordered IDs as flowstore gives its tasks ({sets} sets, {:.1} s in all, not measured); p50/p99 are of claims, cmpl of completions, pooled over rounds; flowstore goes through claim_now, complete_now and complete_many_now (on SQLite, claims, completions of tasks without a run and heartbeats queued while the writer is busy run on its own thread and share one commit, each kind as one statement; the rest goes through the group writer); cmpl=each: every task completed on its own (complete_now; the floor one UPDATE each, in its own transaction), cmpl=batch: the claimed batch completed at once (complete_many_now; the floor one UPDATE for the batch); +heartbeat (B=1 only): each task's lease extended once (heartbeat_now, 10 minutes) before its completion, both in the cmpl latencies",
        n,
        setup.as_secs_f64()
    ));
    if !beside_rows.is_empty() {
        report.notes.push(format!(
            "claim: \"raw SQL, flowstore's rows\" writes by hand, in one autocommit statement per transition, the rows a flowstore transition writes (task, attempt row, event; for the claim and for the completion); its ratio is to the minimal floor; flowstore against it: {}",
            beside_rows.join(", ")
        ));
    }
    report.notes.push(format!(
        "claim: \"minimal job table\" is the least a durable queue writes: one narrow row per job in a table of its own (ID, queue, attempt, holder, time taken) with one partial index over the jobs not taken, claimed by one UPDATE (SKIP LOCKED on PostgreSQL) and completed by deleting the row, each in its own transaction as the floor's are; its ratio is to the floor on flowstore's tasks table; flowstore against it: {}",
        beside_min.join(", ")
    ));
    if rusqlite_path.is_some() {
        report.notes.push(
            "claim: \"floor via rusqlite\" runs the floor's statements, transactions and writer lock unchanged through the rusqlite driver (calls on the worker's own thread, one connection per worker) instead of sqlx; its ratio is to the sqlx floor".into(),
        );
    }
    Ok(())
}

/// Shared counter type used by the HTTP and DAG workloads.
pub(crate) type Counter = Arc<std::sync::atomic::AtomicU64>;

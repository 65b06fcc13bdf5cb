//! SQLite's hot statements of the execution engine ([`HotPath`]; the rest of the
//! engine's SQL is shared, in `crates/storage/engine.rs`). SQLite has one writer at a
//! time (the backend queues writers), so a claim is a plain `UPDATE … RETURNING` on
//! the ready rows and events take their gap-free sequence number as they are
//! inserted.

use async_trait::async_trait;
use flowstore_core::ids::{AttemptId, RunId, TaskId};
use flowstore_core::model::engine::{
    AttemptRef, ClaimRequest, ClaimedTask, CompletedAttempt, ExtendedLease, HotPath, NewEvent,
    Promotion, RunState, SharedClaim,
};
use flowstore_core::time::Timestamp;
use flowstore_core::StoreResult;
use serde_json::Value;
use sqlx::Row;

use crate::backend::SqliteTx;
use crate::util::ts;

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// Microseconds since the epoch of a timestamp as flowstore writes it
/// (`YYYY-MM-DDTHH:MM:SS.ffffffZ`), so that durations are computed in SQL exactly as
/// [`duration_ms`] computes them.
macro_rules! micros {
    ($x:literal) => {
        concat!(
            "(CAST(strftime('%s', ",
            $x,
            ") AS INTEGER) * 1000000 + CAST(substr(",
            $x,
            ", 21, 6) AS INTEGER))"
        )
    };
}

/// Extends, in one call of two statements, the leases listed in `?1` (a JSON array of
/// `{"t": task hex, "a": attempt, "u": the lease's new end}`) whose attempt is its
/// task's current running one, at `?2`: the attempt rows first, for exactly the tasks
/// the second statement then updates (the writer lock is held). Returns each task
/// extended with its run's status and whether its cancellation was asked for.
pub(crate) const EXTEND_LEASES: &str = "UPDATE task_executions
        SET lease_expires_at = j.until, heartbeat_at = ?2, updated_at = ?2
       FROM (SELECT t.id, t.attempt, j.value ->> '$.u' AS until
               FROM json_each(?1) j
               JOIN tasks t ON t.id = unhex(j.value ->> '$.t') AND t.attempt = j.value ->> '$.a'
                           AND t.status = 'running') AS j
      WHERE task_executions.task_id = j.id AND task_executions.attempt = j.attempt;
     UPDATE tasks SET lease_expires_at = j.until, updated_at = ?2
       FROM (SELECT unhex(value ->> '$.t') AS id, value ->> '$.a' AS attempt,
                    value ->> '$.u' AS until
               FROM json_each(?1)) AS j
      WHERE tasks.id = j.id AND tasks.attempt = j.attempt AND tasks.status = 'running'
     RETURNING id AS task_id,
               (SELECT r.status FROM workflow_executions r WHERE r.id = tasks.run_id)
                   AS run_status,
               coalesce((SELECT r.cancel_requested_at IS NOT NULL FROM workflow_executions r
                          WHERE r.id = tasks.run_id), 0) AS run_cancel_requested";

/// Rows bound as numbered parameters and read as the table `j` of a `VALUES` list,
/// `j.k` numbering them from 1. A list given as one JSON argument costs SQLite a
/// parse of each row's object for each field read from it (a fifth of the writer
/// thread's time in batches, measured); bound values cost nothing to read. The rows
/// are padded with NULLs to a power of two, which match no task and are skipped, so
/// that a statement is prepared once per size class rather than once per length.
pub(crate) struct Rows {
    /// `WITH j(k, …) AS (VALUES …)`, put before each statement that reads `j`.
    with: String,
    /// The rows' values in order, bound from the first parameter given on.
    args: Vec<Arg>,
}

/// The most rows one statement takes: longer lists are written in chunks of this
/// many (SQLite takes at most 32,766 parameters a statement).
pub(crate) const MAX_ROWS: usize = 256;

impl Rows {
    /// `rows` (each with a value per column, at most [`MAX_ROWS`]) bound from
    /// parameter `first` on.
    fn new(columns: &[&str], first: usize, rows: Vec<Vec<Arg>>) -> Self {
        let width = columns.len();
        let size = rows.len().max(1).next_power_of_two();
        let mut args = Vec::with_capacity(size * width);
        let mut values = Vec::with_capacity(size);
        let mut rows = rows.into_iter();
        for i in 0..size {
            let p = first + i * width;
            let params: Vec<String> = (p..p + width).map(|n| format!("?{n}")).collect();
            values.push(format!("({}, {})", i + 1, params.join(", ")));
            match rows.next() {
                Some(row) => args.extend(row),
                None => args.extend((0..width).map(|_| Arg::Blob(None))),
            }
        }
        Rows {
            with: format!(
                "WITH j(k, {}) AS (VALUES {})",
                columns.join(", "),
                values.join(", ")
            ),
            args,
        }
    }
}

/// A task's ID as the tables store it.
fn id_arg(id: uuid::Uuid) -> Arg {
    Arg::Blob(Some(id.as_bytes().to_vec()))
}

/// Completes, in one call of three statements, the attempts in `items` (at most
/// [`MAX_ROWS`]) that are their task's current running one, at `now`; `runless`
/// narrows them to tasks without a run (the shortcut of `direct.rs`, which writes
/// nothing a run would need). The event and attempt rows are written first, for
/// exactly the tasks the last statement then updates: the writer lock is held, so the
/// condition reads the same rows in all three. Returns the SQL and its arguments; its
/// rows are each completed task's ID, attempt and run.
pub(crate) fn complete_running(
    items: &[(AttemptRef, &Value)],
    now: Timestamp,
    runless: bool,
) -> (String, Vec<Arg>) {
    let rows = Rows::new(
        &["id", "attempt", "output"],
        2,
        items
            .iter()
            .map(|(a, o)| {
                vec![
                    id_arg(a.task_id.0),
                    Arg::Int(a.attempt.into()),
                    Arg::Text(o.to_string()),
                ]
            })
            .collect(),
    );
    // The unary `+` keeps SQLite from walking the index on `(run_id, step_key)`
    // through every task without a run instead of looking up the ones listed; on
    // `j`'s columns it keeps the list the outer loop (tasks looked up by ID): given
    // some hundred rows, SQLite would otherwise scan every task against an index it
    // builds on `j` (measured: 50–170 ms a statement at 256 rows on 60,000 tasks).
    let only = if runless {
        " AND +t.run_id IS NULL"
    } else {
        ""
    };
    let with = &rows.with;
    let sql = format!(
        "{with}
     INSERT INTO events (seq, event_type, run_id, task_id, workflow_id, payload, created_at)
     SELECT (SELECT coalesce(max(seq), 0) FROM events) + row_number() OVER (ORDER BY j.k),
            'task.completed', t.run_id, t.id,
            (SELECT r.workflow_id FROM workflow_executions r WHERE r.id = t.run_id),
            json_object('attempt', t.attempt), ?1
       FROM j JOIN tasks t ON t.id = +j.id AND t.attempt = +j.attempt
                          AND t.status = 'running'{only}
      ORDER BY j.k;
     {with}
     UPDATE task_executions
        SET execution_status = 'completed', output_results = c.output, completed_at = ?1,
            duration_ms = CASE WHEN started_at IS NULL THEN NULL
                ELSE max(0, ({now_us} - {started_us}) / 1000) END,
            lease_expires_at = NULL, updated_at = ?1
       FROM (SELECT t.id, t.attempt, j.output
               FROM j JOIN tasks t ON t.id = +j.id AND t.attempt = +j.attempt
                                  AND t.status = 'running'{only}) AS c
      WHERE task_executions.task_id = c.id AND task_executions.attempt = c.attempt;
     {with}
     UPDATE tasks AS t
        SET status = 'completed', result = j.output, error_message = NULL, completed_at = ?1,
            actual_duration = (SELECT min(2147483647, max(0, ({now_us} - {at_us}) / 1000))
                 FROM (SELECT coalesce((SELECT a.started_at FROM task_executions a
                                         WHERE a.task_id = t.id AND a.attempt = t.attempt),
                                       t.started_at) AS at) s
                WHERE s.at IS NOT NULL),
            lease_owner = NULL, lease_expires_at = NULL, updated_at = ?1
       FROM j
      WHERE t.id = +j.id AND t.attempt = +j.attempt AND t.status = 'running'{only}
     RETURNING id, attempt, run_id",
        now_us = micros!("?1"),
        started_us = micros!("started_at"),
        at_us = micros!("s.at"),
    );
    let mut args = vec![Arg::Text(ts(&now))];
    args.extend(rows.args);
    (sql, args)
}

/// Promotes the dependents of the `[run hex, task hex]` pairs in `?1` at `?2` (see
/// `promote_dependents`): the events first, for exactly the tasks the update then
/// makes ready, and last the runs that still have open tasks (promotion moves tasks
/// from one open status to another, so it does not change that answer).
const PROMOTE_DEPENDENTS: &str = "INSERT INTO events (seq, event_type, run_id, task_id, workflow_id, payload, created_at)
     SELECT (SELECT coalesce(max(seq), 0) FROM events) + row_number() OVER (ORDER BY t.run_id, t.id),
            'task.ready', t.run_id, t.id,
            (SELECT r.workflow_id FROM workflow_executions r WHERE r.id = t.run_id), '{}', ?2
       FROM tasks t
      WHERE t.id IN (SELECT x.task_id FROM task_dependencies x
                      WHERE x.depends_on_id IN (SELECT unhex(value ->> '$[1]') FROM json_each(?1)))
        AND t.status = 'pending' AND NOT EXISTS (SELECT 1 FROM task_dependencies d
              JOIN tasks p ON p.id = d.depends_on_id
             WHERE d.task_id = t.id AND p.status <> 'completed')
      ORDER BY t.run_id, t.id;
     UPDATE tasks AS t SET status = 'ready', updated_at = ?2
      WHERE t.id IN (SELECT x.task_id FROM task_dependencies x
                      WHERE x.depends_on_id IN (SELECT unhex(value ->> '$[1]') FROM json_each(?1)))
        AND t.status = 'pending' AND NOT EXISTS (SELECT 1 FROM task_dependencies d
              JOIN tasks p ON p.id = d.depends_on_id
             WHERE d.task_id = t.id AND p.status <> 'completed')
     RETURNING 'ready' AS kind, run_id, id;
     SELECT 'open' AS kind, r.run_id AS run_id, NULL AS id
       FROM (SELECT DISTINCT unhex(value ->> '$[0]') AS run_id FROM json_each(?1)) r
      WHERE EXISTS (SELECT 1 FROM tasks o WHERE o.run_id = r.run_id
                      AND o.status IN ('pending', 'ready', 'running'))";

/// The argument `?1` of [`EXTEND_LEASES`] for `items`.
pub(crate) fn lease_list(items: &[(AttemptRef, Timestamp)]) -> String {
    let list: Vec<Value> = items
        .iter()
        .map(
            |(a, until)| serde_json::json!({"t": hex(a.task_id.0), "a": a.attempt, "u": ts(until)}),
        )
        .collect();
    Value::Array(list).to_string()
}

fn hex(id: uuid::Uuid) -> String {
    id.simple().to_string()
}

/// A value bound to a hot statement, for either driver that runs them: sqlx on the
/// pool's connections, rusqlite on the writer's own thread (`direct.rs`).
pub(crate) enum Arg {
    Int(i64),
    Text(String),
    Blob(Option<Vec<u8>>),
}

/// Binds `args` in order to `query`.
fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    args: &'q [Arg],
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    for arg in args {
        query = match arg {
            Arg::Int(i) => query.bind(*i),
            Arg::Text(t) => query.bind(t.as_str()),
            Arg::Blob(b) => query.bind(b.as_deref()),
        };
    }
    query
}

/// Writes, in one call of two statements, the attempt rows and the events of the
/// tasks a claim took (`rows`, at most [`MAX_ROWS`], made by [`Claim::records`]):
/// `?1` now, `?2` the leases' end.
fn claim_records(rows: &Rows) -> String {
    let with = &rows.with;
    format!(
        "{with}
     INSERT INTO task_executions (id, task_id, run_id, attempt, agent_type, worker_id,
        execution_status, started_at, lease_expires_at, heartbeat_at, created_at, updated_at)
     SELECT j.id, j.task, j.run, j.attempt, j.handler, j.worker, 'running', ?1, ?2, ?1, ?1, ?1
       FROM j WHERE j.id IS NOT NULL ORDER BY j.k;
     {with}
     INSERT INTO events (seq, event_type, run_id, task_id, workflow_id, payload, created_at)
     SELECT (SELECT coalesce(max(seq), 0) FROM events) + j.k, 'task.claimed', j.run, j.task,
            (SELECT r.workflow_id FROM workflow_executions r WHERE r.id = j.run),
            json_object('attempt', j.attempt, 'worker_id', j.worker), ?1
       FROM j WHERE j.id IS NOT NULL ORDER BY j.k"
    )
}

/// One claim statement for requests that share it ([`SharedClaim`]), the same for
/// both drivers: its SQL and arguments, and what makes the claimed rows answers.
pub(crate) struct Claim<'a> {
    pub sql: String,
    pub args: Vec<Arg>,
    shared: SharedClaim<'a>,
    now: String,
    until: String,
    pub lease_until: Timestamp,
}

impl<'a> Claim<'a> {
    /// The claim of `requests` at `now`; `None` when there is no request.
    pub(crate) fn new(requests: &'a [&'a ClaimRequest], now: Timestamp) -> Option<Self> {
        let shared = SharedClaim::new(requests)?;
        let (first, lease_until) = (shared.first(), shared.lease_until(now));
        let (restrict, me) = crate::visibility::binds(&first.executor);
        let types = distinct(&first.handler_types);
        let shares: Vec<Value> = shared
            .shares()
            .into_iter()
            .map(|(w, lo, hi)| serde_json::json!({"w": w, "lo": lo, "hi": hi}))
            .collect();
        // One branch per handler type, each walking the claim index in priority order
        // and stopping after `limit` rows; an `IN (list)` on the index's first column
        // would make SQLite read and sort every ready task of those types instead.
        // The predicate is written once for both databases, in PostgreSQL's spelling.
        let visible = crate::dialect::sql_owned(crate::visibility::claimable("t", "$5", "$6"));
        let branches: Vec<String> = (0..types.len())
            .map(|i| {
                format!(
                    "SELECT * FROM (SELECT t.id, t.priority FROM tasks t
                      WHERE t.status = 'ready' AND t.handler_type = ?{}
                        AND (t.run_after IS NULL OR t.run_after <= ?2){visible}
                      ORDER BY t.priority DESC, t.id LIMIT ?1)",
                    7 + i
                )
            })
            .collect();
        let sql = format!(
            "UPDATE tasks
                SET status = 'running', attempt = attempt + 1, lease_owner = p.worker,
                    lease_expires_at = ?4, run_after = NULL,
                    started_at = coalesce(started_at, ?2), updated_at = ?2
               FROM (SELECT c.id, s.value ->> '$.w' AS worker
                       FROM (SELECT id, row_number() OVER (ORDER BY priority DESC, id) AS rank
                               FROM (SELECT * FROM ({}) ORDER BY priority DESC, id LIMIT ?1)) c
                       JOIN json_each(?3) s
                         ON c.rank > s.value ->> '$.lo' AND c.rank <= s.value ->> '$.hi') AS p
              WHERE tasks.id = p.id
             RETURNING id, attempt, run_id, step_key, handler_type, parameters, lease_owner",
            branches.join(" UNION ALL ")
        );
        let (now, until) = (ts(&now), ts(&lease_until));
        let mut args = vec![
            Arg::Int(shared.total()),
            Arg::Text(now.clone()),
            Arg::Text(Value::Array(shares).to_string()),
            Arg::Text(until.clone()),
            Arg::Int(i64::from(restrict)),
            Arg::Blob(me.map(|u| u.0.as_bytes().to_vec())),
        ];
        args.extend(types.into_iter().map(|t| Arg::Text(t.to_string())));
        Some(Claim {
            sql,
            args,
            shared,
            now,
            until,
            lease_until,
        })
    }

    /// The statements that write the attempt rows and events of the tasks claimed
    /// (each with the worker its lease went to), which it puts in task order: SQL and
    /// arguments for each chunk of at most [`MAX_ROWS`] tasks; none when no task was
    /// claimed.
    pub(crate) fn records(
        &self,
        claimed: &mut [(ClaimedTask, String)],
        attempt_ids: &[AttemptId],
    ) -> Vec<(String, Vec<Arg>)> {
        for ((task, _), id) in claimed.iter_mut().zip(attempt_ids) {
            task.attempt_id = *id;
        }
        // Attempts and events in task order.
        claimed.sort_by_key(|(c, _)| c.task_id);
        claimed
            .chunks(MAX_ROWS)
            .map(|chunk| {
                let rows = Rows::new(
                    &["id", "task", "run", "attempt", "handler", "worker"],
                    3,
                    chunk
                        .iter()
                        .map(|(task, owner)| {
                            vec![
                                id_arg(task.attempt_id.0),
                                id_arg(task.task_id.0),
                                Arg::Blob(task.run_id.map(|r| r.0.as_bytes().to_vec())),
                                Arg::Int(task.attempt.into()),
                                Arg::Text(task.handler_type.clone()),
                                Arg::Text(owner.clone()),
                            ]
                        })
                        .collect(),
                );
                let mut args = vec![Arg::Text(self.now.clone()), Arg::Text(self.until.clone())];
                let sql = claim_records(&rows);
                args.extend(rows.args);
                (sql, args)
            })
            .collect()
    }

    /// Each request's share of the tasks claimed.
    pub(crate) fn share_out(&self, claimed: Vec<(ClaimedTask, String)>) -> Vec<Vec<ClaimedTask>> {
        self.shared.share_out(claimed)
    }
}

#[async_trait]
impl HotPath for SqliteTx {
    async fn claim_ready(
        &mut self,
        requests: &[&ClaimRequest],
        now: Timestamp,
        attempt_ids: &[AttemptId],
    ) -> StoreResult<Vec<Vec<ClaimedTask>>> {
        let Some(claim) = Claim::new(requests, now) else {
            return Ok(Vec::new());
        };
        let rows = bind_all(sqlx::query(&claim.sql), &claim.args)
            .fetch_all(&mut *self.tx)
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let owner: String = row.try_get("lease_owner")?;
            let task = ClaimedTask {
                task_id: row.try_get("id")?,
                attempt_id: AttemptId(uuid::Uuid::nil()),
                attempt: row.try_get("attempt")?,
                run_id: row.try_get("run_id")?,
                step_key: row.try_get("step_key")?,
                handler_type: row.try_get("handler_type")?,
                parameters: row.try_get("parameters")?,
                lease_expires_at: claim.lease_until,
            };
            claimed.push((task, owner));
        }
        // The attempt rows and the events of the whole claim in one call of two
        // statements (the driver's cost is per call).
        for (sql, args) in claim.records(&mut claimed, attempt_ids) {
            bind_all(sqlx::query(&sql), &args)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(claim.share_out(claimed))
    }

    async fn complete_running(
        &mut self,
        items: &[(AttemptRef, &Value)],
        now: Timestamp,
    ) -> StoreResult<Vec<CompletedAttempt>> {
        let mut rows: Vec<(TaskId, i32, Option<RunId>)> = Vec::with_capacity(items.len());
        for chunk in items.chunks(MAX_ROWS) {
            let (sql, args) = complete_running(chunk, now, false);
            for r in bind_all(sqlx::query(&sql), &args)
                .fetch_all(&mut *self.tx)
                .await?
            {
                rows.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
            }
        }
        let mut runs: Vec<RunId> = rows.iter().filter_map(|r| r.2).collect();
        runs.sort();
        runs.dedup();
        let mut states = std::collections::HashMap::new();
        if !runs.is_empty() {
            let ids: Vec<String> = runs.iter().map(|r| hex(r.0)).collect();
            let found: Vec<RunState> = sqlx::query_as(
                "SELECT id, execution_id, workflow_id, status, strategy, failure_strategy,
                        start_time, end_time, actual_duration, error_data, deadline_at,
                        cancel_requested_at
                   FROM workflow_executions
                  WHERE id IN (SELECT unhex(value) FROM json_each(?1))",
            )
            .bind(json_list(&ids))
            .fetch_all(&mut *self.tx)
            .await?;
            states.extend(found.into_iter().map(|r| (r.id, r)));
        }
        // In the order the attempts were given.
        let order: std::collections::HashMap<TaskId, usize> = items
            .iter()
            .enumerate()
            .map(|(i, (a, _))| (a.task_id, i))
            .collect();
        let mut done: Vec<CompletedAttempt> = rows
            .into_iter()
            .map(|(task_id, attempt, run)| CompletedAttempt {
                task_id,
                attempt,
                run: run.and_then(|r| states.get(&r).cloned()),
            })
            .collect();
        done.sort_by_key(|c| order.get(&c.task_id).copied().unwrap_or(usize::MAX));
        Ok(done)
    }

    async fn extend_leases(
        &mut self,
        items: &[(AttemptRef, Timestamp)],
        now: Timestamp,
    ) -> StoreResult<Vec<ExtendedLease>> {
        Ok(sqlx::query_as(EXTEND_LEASES)
            .bind(lease_list(items))
            .bind(ts(&now))
            .fetch_all(&mut *self.tx)
            .await?)
    }

    async fn promote_dependents(
        &mut self,
        done: &[(RunId, TaskId)],
        now: Timestamp,
    ) -> StoreResult<Promotion> {
        let pairs: Vec<Value> = done
            .iter()
            .map(|(r, t)| serde_json::json!([hex(r.0), hex(t.0)]))
            .collect();
        let rows: Vec<(String, RunId, Option<TaskId>)> = sqlx::query_as(PROMOTE_DEPENDENTS)
            .bind(Value::Array(pairs).to_string())
            .bind(ts(&now))
            .fetch_all(&mut *self.tx)
            .await?;
        let mut promotion = Promotion::default();
        for (kind, run, task) in rows {
            match (kind.as_str(), task) {
                ("ready", Some(task)) => promotion.ready.push((run, task)),
                _ => promotion.open_runs.push(run),
            }
        }
        promotion.ready.sort();
        Ok(promotion)
    }

    async fn insert_events(&mut self, events: &[NewEvent], now: Timestamp) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        // Writers are serialised, so the numbers after the highest are free and stay
        // gap-free: a rolled-back transaction takes its numbers with it. One statement
        // for all the events (the driver's cost is per statement).
        let list: Vec<Value> = events
            .iter()
            .map(|e| {
                serde_json::json!({
                    "type": e.event_type,
                    "run": e.run_id.map(|r| hex(r.0)),
                    "task": e.task_id.map(|t| hex(t.0)),
                    "wf": e.workflow_id,
                    "payload": e.payload,
                })
            })
            .collect();
        sqlx::query(
            "INSERT INTO events (seq, event_type, run_id, task_id, workflow_id, payload, created_at)
             SELECT (SELECT coalesce(max(seq), 0) FROM events) + j.key + 1, j.value ->> '$.type',
                    unhex(j.value ->> '$.run'), unhex(j.value ->> '$.task'),
                    coalesce(j.value ->> '$.wf', (SELECT r.workflow_id FROM workflow_executions r
                                                   WHERE r.id = unhex(j.value ->> '$.run'))),
                    j.value -> '$.payload', ?2
               FROM json_each(?1) j ORDER BY j.key",
        )
        .bind(Value::Array(list).to_string())
        .bind(ts(&now))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn assign_event_seqs(&mut self) -> StoreResult<u64> {
        Ok(0)
    }
}

/// The handler types of a claim without repeats, in the order given.
fn distinct(types: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::with_capacity(types.len());
    for t in types {
        if !out.contains(&t.as_str()) {
            out.push(t);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{SqliteBackend, SqliteSettings};
    use flowstore_core::store::KeySource;
    use flowstore_core::Backend;
    use std::sync::Arc;

    /// The completion looks up each listed task by its ID, whatever the list's
    /// length: with a few hundred rows SQLite once chose to scan every task against an
    /// index it built on the list, a plan whose time grows with the table.
    #[tokio::test]
    async fn completions_look_up_the_listed_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plan.db");
        let settings = SqliteSettings {
            url: format!("sqlite://{}", file.display()),
            ..SqliteSettings::default()
        };
        let backend = SqliteBackend::connect(&settings, Arc::new(KeySource::none()))
            .await
            .unwrap();
        backend.migrate_up(None).await.unwrap();
        backend.close().await;
        let conn = rusqlite::Connection::open(&file).unwrap();
        for n in [1, 64, MAX_ROWS] {
            let outputs: Vec<Value> = (0..n).map(|i| serde_json::json!({ "i": i })).collect();
            let items: Vec<(AttemptRef, &Value)> = outputs
                .iter()
                .map(|o| {
                    let a = AttemptRef {
                        task_id: TaskId::new(),
                        attempt: 1,
                    };
                    (a, o)
                })
                .collect();
            for runless in [false, true] {
                let (sql, args) = complete_running(&items, flowstore_core::time::now(), runless);
                for text in sql.split(';') {
                    let mut plan = conn.prepare(&format!("EXPLAIN QUERY PLAN {text}")).unwrap();
                    for (k, arg) in args.iter().enumerate().take(plan.parameter_count()) {
                        match arg {
                            Arg::Int(i) => plan.raw_bind_parameter(k + 1, i),
                            Arg::Text(t) => plan.raw_bind_parameter(k + 1, t),
                            Arg::Blob(b) => plan.raw_bind_parameter(k + 1, b),
                        }
                        .unwrap();
                    }
                    let mut rows = plan.raw_query();
                    let mut steps = Vec::new();
                    while let Some(row) = rows.next().unwrap() {
                        steps.push(row.get::<_, String>(3).unwrap());
                    }
                    assert!(
                        steps.iter().any(|s| s.starts_with("SEARCH t USING INDEX")),
                        "{n} rows: tasks looked up by ID: {steps:?}"
                    );
                    assert!(
                        !steps.iter().any(|s| s == "SCAN t"
                            || s.contains("ON j")
                            || s.starts_with("SEARCH j")),
                        "{n} rows: no scan of the tasks against the list: {steps:?}"
                    );
                }
            }
        }
    }
}

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

/// Completes, in one call of three statements, the attempts listed in `?1` (a JSON
/// array of `{"t": task hex, "a": attempt, "o": output}`) that are their task's
/// current running one, at `?2`; `$runless` narrows them to tasks without a run (the
/// shortcut of `direct.rs`, which writes nothing a run would need). The event and
/// attempt rows are written first, for exactly the tasks the last statement then
/// updates: the writer lock is held, so the condition reads the same rows in all three.
macro_rules! complete_running {
    ($runless:literal) => {
        concat!(
            "INSERT INTO events (seq, event_type, run_id, task_id, workflow_id, payload, created_at)
     SELECT (SELECT coalesce(max(seq), 0) FROM events) + row_number() OVER (ORDER BY j.key),
            'task.completed', t.run_id, t.id,
            (SELECT r.workflow_id FROM workflow_executions r WHERE r.id = t.run_id),
            json_object('attempt', t.attempt), ?2
       FROM json_each(?1) j
       JOIN tasks t ON t.id = unhex(j.value ->> '$.t') AND t.attempt = j.value ->> '$.a'
                   AND t.status = 'running'",
            $runless,
            "
      ORDER BY j.key;
     UPDATE task_executions
        SET execution_status = 'completed', output_results = j.output, completed_at = ?2,
            duration_ms = CASE WHEN started_at IS NULL THEN NULL
                ELSE max(0, (",
            micros!("?2"),
            " - ",
            micros!("started_at"),
            ") / 1000) END,
            lease_expires_at = NULL, updated_at = ?2
       FROM (SELECT t.id, t.attempt, j.value -> '$.o' AS output
               FROM json_each(?1) j
               JOIN tasks t ON t.id = unhex(j.value ->> '$.t') AND t.attempt = j.value ->> '$.a'
                           AND t.status = 'running'",
            $runless,
            ") AS j
      WHERE task_executions.task_id = j.id AND task_executions.attempt = j.attempt;
     UPDATE tasks AS t
        SET status = 'completed', result = j.output, error_message = NULL, completed_at = ?2,
            actual_duration = (SELECT min(2147483647, max(0, (",
            micros!("?2"),
            " - ",
            micros!("s.at"),
            ") / 1000))
                 FROM (SELECT coalesce((SELECT a.started_at FROM task_executions a
                                         WHERE a.task_id = t.id AND a.attempt = t.attempt),
                                       t.started_at) AS at) s
                WHERE s.at IS NOT NULL),
            lease_owner = NULL, lease_expires_at = NULL, updated_at = ?2
       FROM (SELECT unhex(value ->> '$.t') AS id, value ->> '$.a' AS attempt,
                    value -> '$.o' AS output
               FROM json_each(?1)) AS j
      WHERE t.id = j.id AND t.attempt = j.attempt AND t.status = 'running'",
            $runless,
            "
     RETURNING id, attempt, run_id"
        )
    };
}

/// [`complete_running!`] for every task.
const COMPLETE_RUNNING: &str = complete_running!("");
/// [`complete_running!`] for tasks without a run.
/// (The unary `+` keeps SQLite from walking the index on `(run_id, step_key)` through
/// every task without a run instead of looking up the ones listed.)
pub(crate) const COMPLETE_RUNLESS: &str = complete_running!(" AND +t.run_id IS NULL");

/// The argument `?1` of [`complete_running!`] for `items`.
pub(crate) fn completion_list(items: &[(AttemptRef, &Value)]) -> String {
    let list: Vec<Value> = items
        .iter()
        .map(|(a, o)| serde_json::json!({"t": hex(a.task_id.0), "a": a.attempt, "o": o}))
        .collect();
    Value::Array(list).to_string()
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
/// tasks a claim took: `?1` the list made by [`Claim::records`], `?2` now, `?3` the
/// leases' end, `?4` whether claims write events at all
/// ([`flowstore_core::model::engine::EngineSettings::claim_events`]).
pub(crate) const CLAIM_RECORDS: &str =
    "INSERT INTO task_executions (id, task_id, run_id, attempt, agent_type, worker_id,
        execution_status, started_at, lease_expires_at, heartbeat_at, created_at, updated_at)
     SELECT unhex(value ->> '$.id'), unhex(value ->> '$.t'), unhex(value ->> '$.r'),
            value ->> '$.a', value ->> '$.h', value ->> '$.w', 'running', ?2, ?3, ?2, ?2, ?2
       FROM json_each(?1) ORDER BY key;
     INSERT INTO events (seq, event_type, run_id, task_id, workflow_id, payload, created_at)
     SELECT (SELECT coalesce(max(seq), 0) FROM events) + j.key + 1, 'task.claimed',
            unhex(j.value ->> '$.r'), unhex(j.value ->> '$.t'),
            (SELECT r.workflow_id FROM workflow_executions r
              WHERE r.id = unhex(j.value ->> '$.r')),
            json_object('attempt', j.value ->> '$.a', 'worker_id', j.value ->> '$.w'), ?2
       FROM json_each(?1) j WHERE ?4 ORDER BY j.key";

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

    /// The arguments of [`CLAIM_RECORDS`] for the tasks claimed (each with the worker
    /// its lease went to), which it puts in task order; `None` when none was.
    pub(crate) fn records(
        &self,
        claimed: &mut [(ClaimedTask, String)],
        attempt_ids: &[AttemptId],
        events: bool,
    ) -> Option<[Arg; 4]> {
        for ((task, _), id) in claimed.iter_mut().zip(attempt_ids) {
            task.attempt_id = *id;
        }
        // Attempts and events in task order.
        claimed.sort_by_key(|(c, _)| c.task_id);
        let list: Vec<Value> = claimed
            .iter()
            .map(|(task, owner)| {
                serde_json::json!({
                    "id": hex(task.attempt_id.0),
                    "t": hex(task.task_id.0),
                    "r": task.run_id.map(|r| hex(r.0)),
                    "a": task.attempt,
                    "h": task.handler_type,
                    "w": owner,
                })
            })
            .collect();
        (!list.is_empty()).then(|| {
            [
                Arg::Text(Value::Array(list).to_string()),
                Arg::Text(self.now.clone()),
                Arg::Text(self.until.clone()),
                Arg::Int(i64::from(events)),
            ]
        })
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
        if let Some(args) = claim.records(&mut claimed, attempt_ids, self.engine.claim_events) {
            bind_all(sqlx::query(CLAIM_RECORDS), &args)
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
        let rows: Vec<(TaskId, i32, Option<RunId>)> = sqlx::query_as(COMPLETE_RUNNING)
            .bind(completion_list(items))
            .bind(ts(&now))
            .fetch_all(&mut *self.tx)
            .await?;
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

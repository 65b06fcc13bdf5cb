//! PostgreSQL's hot statements of the execution engine ([`HotPath`]; the rest of the
//! engine's SQL is shared, in `crates/storage/engine.rs`). Claims take ready rows with
//! `FOR UPDATE SKIP LOCKED`, so concurrent workers never wait on, or take, the same
//! task; bulk inserts go through `UNNEST` in one round trip.

use async_trait::async_trait;
use flowstore_core::ids::{AttemptId, RunId, TaskId};
use flowstore_core::model::engine::{
    AttemptRef, ClaimRequest, ClaimedTask, CompletedAttempt, ExtendedLease, HotPath, NewEvent,
    Promotion, RunState, SharedClaim,
};
use flowstore_core::time::Timestamp;
use flowstore_core::StoreResult;
use serde_json::Value;
use sqlx::{FromRow, Row};
use uuid::Uuid;

use crate::backend::PostgresTx;

/// The advisory lock that keeps event sequencing to one transaction at a time.
const SEQUENCER_LOCK: i64 = 0x666c_6f77_7365_7100;

/// Completes the attempts given as arrays ($1 task IDs, $2 attempts, $3 outputs, at
/// $4) that are their task's current running one, only of tasks without a run when
/// $5 is true; see `complete_running`.
///
/// The tasks are found by key (`id = ANY($1)`), and the status test is written
/// `(…) IS TRUE` so it cannot become an index condition: a generic plan made while
/// few tasks were running otherwise read every running task through the status index
/// and joined (30 ms per completion at 10 000 tasks). Rows are locked `FOR NO KEY
/// UPDATE`, as an UPDATE locks them, so that other transactions' foreign-key checks
/// (an attempt or event referencing the run) do not wait for this one to commit.
const COMPLETE_RUNNING: &str = "WITH input AS (
        SELECT * FROM UNNEST($1::uuid[], $2::int[], $3::jsonb[]) WITH ORDINALITY
            AS u(task_id, attempt, output, n)
     ), done AS (
        UPDATE tasks t
           SET status = 'completed', result = i.output, error_message = NULL, completed_at = $4,
               actual_duration = (SELECT least(2147483647, greatest(0,
                        floor(extract(epoch FROM ($4 - s.at)) * 1000)))::int
                     FROM (SELECT coalesce((SELECT a.started_at FROM task_executions a
                                             WHERE a.task_id = t.id AND a.attempt = t.attempt),
                                           t.started_at) AS at) s
                    WHERE s.at IS NOT NULL),
               lease_owner = NULL, lease_expires_at = NULL, updated_at = $4
          FROM input i
         WHERE t.id = ANY ($1::uuid[]) AND t.id = i.task_id AND t.attempt = i.attempt
           AND (t.status = 'running') IS TRUE AND (NOT $5::bool OR t.run_id IS NULL)
        RETURNING t.id, t.attempt, t.run_id, i.output, i.n
     ), attempts AS (
        UPDATE task_executions e
           SET execution_status = 'completed', output_results = d.output, completed_at = $4,
               duration_ms = CASE WHEN e.started_at IS NULL THEN NULL
                   ELSE greatest(0, floor(extract(epoch FROM ($4 - e.started_at)) * 1000))::bigint END,
               lease_expires_at = NULL, updated_at = $4
          FROM done d
         WHERE e.task_id = d.id AND e.attempt = d.attempt
     ), runs AS (
        SELECT id, execution_id, workflow_id, status, strategy, failure_strategy, start_time,
               end_time, actual_duration, error_data, deadline_at, cancel_requested_at
          FROM workflow_executions
         WHERE id IN (SELECT run_id FROM done)
         ORDER BY id
           FOR NO KEY UPDATE
     ), events AS (
        INSERT INTO events (event_type, run_id, task_id, workflow_id, payload, created_at)
        SELECT 'task.completed', d.run_id, d.id, r.workflow_id,
               jsonb_build_object('attempt', d.attempt), $4
          FROM done d LEFT JOIN runs r ON r.id = d.run_id
         ORDER BY d.n
     )
     SELECT d.id AS done_task_id, d.attempt AS done_attempt, r.*
       FROM done d LEFT JOIN runs r ON r.id = d.run_id
      ORDER BY d.n";

/// Extends the leases given as arrays ($1 task IDs, $2 attempts, $3 the leases' new
/// ends, at $4) whose attempt is its task's current running one: the task row and the
/// attempt row, in one statement. Tasks are found by key, the status test kept out of
/// the index conditions, as in [`COMPLETE_RUNNING`]. Returns each task extended with
/// its run's status and whether its cancellation was asked for (read, not locked).
const EXTEND_LEASES: &str = "WITH input AS (
        SELECT * FROM UNNEST($1::uuid[], $2::int[], $3::timestamptz[]) AS u(task_id, attempt, until)
     ), done AS (
        UPDATE tasks t SET lease_expires_at = i.until, updated_at = $4
          FROM input i
         WHERE t.id = ANY ($1::uuid[]) AND t.id = i.task_id AND t.attempt = i.attempt
           AND (t.status = 'running') IS TRUE
        RETURNING t.id, t.attempt, t.run_id, i.until
     ), attempts AS (
        UPDATE task_executions e
           SET lease_expires_at = d.until, heartbeat_at = $4, updated_at = $4
          FROM done d
         WHERE e.task_id = d.id AND e.attempt = d.attempt
     )
     SELECT d.id AS task_id, r.status AS run_status,
            r.cancel_requested_at IS NOT NULL AS run_cancel_requested
       FROM done d LEFT JOIN workflow_executions r ON r.id = d.run_id";

fn uuids<T: Copy>(ids: &[T], f: impl Fn(T) -> Uuid) -> Vec<Uuid> {
    ids.iter().map(|i| f(*i)).collect()
}

#[async_trait]
impl HotPath for PostgresTx {
    async fn claim_ready(
        &mut self,
        requests: &[&ClaimRequest],
        now: Timestamp,
        attempt_ids: &[AttemptId],
    ) -> StoreResult<Vec<Vec<ClaimedTask>>> {
        let Some(shared) = SharedClaim::new(requests) else {
            return Ok(Vec::new());
        };
        let (first, lease_until) = (shared.first(), shared.lease_until(now));
        let (restrict, me) = crate::visibility::binds(&first.executor);
        let shares = shared.shares();
        let workers: Vec<&str> = shares.iter().map(|s| s.0).collect();
        let los: Vec<i64> = shares.iter().map(|s| s.1).collect();
        let his: Vec<i64> = shares.iter().map(|s| s.2).collect();
        // Each handler type walks the claim index in priority order and stops after
        // `limit` rows; `handler_type = ANY($1)` would read and sort every ready task
        // of those types, since an index scan over several values of its first column
        // does not come out in priority order. With several types, the rows a type
        // locked but that lost to another type's higher priority stay locked (and
        // skipped by other claimers) until this transaction ends.
        let rows = sqlx::query(&format!(
            "WITH picked AS (
                SELECT c.id, row_number() OVER (ORDER BY c.priority DESC, c.id) AS rank
                  FROM (SELECT c.id, c.priority
                          FROM (SELECT DISTINCT unnest($1::text[]) AS handler_type) h
                         CROSS JOIN LATERAL (
                            SELECT t.id, t.priority FROM tasks t
                             WHERE t.status = 'ready' AND t.handler_type = h.handler_type
                               AND (t.run_after IS NULL OR t.run_after <= $3){}
                             ORDER BY t.priority DESC, t.id
                             LIMIT $2
                             FOR NO KEY UPDATE SKIP LOCKED) c
                         ORDER BY c.priority DESC, c.id
                         LIMIT $2) c
             ), shared AS (
                SELECT p.id, s.worker FROM picked p
                  JOIN UNNEST($4::text[], $9::bigint[], $10::bigint[]) AS s(worker, lo, hi)
                    ON p.rank > s.lo AND p.rank <= s.hi
             ), claimed AS (
                UPDATE tasks t
                   SET status = 'running', attempt = t.attempt + 1, lease_owner = s.worker,
                       lease_expires_at = $5, run_after = NULL,
                       started_at = coalesce(t.started_at, $3), updated_at = $3
                  FROM shared s
                 -- By key through an array: joined to `picked` alone, a plan made
                 -- without the limit's value expects many rows and hashes the whole
                 -- table.
                 WHERE t.id = ANY (ARRAY(SELECT id FROM shared)) AND t.id = s.id
                RETURNING t.id, t.attempt, t.run_id, t.step_key, t.handler_type, t.parameters,
                          t.lease_owner
             ), numbered AS (
                SELECT c.*, row_number() OVER (ORDER BY c.id) AS n FROM claimed c
             ), attempts AS (
                INSERT INTO task_executions (id, task_id, run_id, attempt, agent_type, worker_id,
                    execution_status, started_at, lease_expires_at, heartbeat_at, created_at, updated_at)
                SELECT ($6::uuid[])[n], id, run_id, attempt, handler_type, lease_owner, 'running',
                       $3, $5, $3, $3, $3
                  FROM numbered
                RETURNING id, task_id
             ), events AS (
                INSERT INTO events (event_type, run_id, task_id, workflow_id, payload, created_at)
                SELECT 'task.claimed', n.run_id, n.id, r.workflow_id,
                       jsonb_build_object('attempt', n.attempt, 'worker_id', n.lease_owner), $3
                  FROM numbered n LEFT JOIN workflow_executions r ON r.id = n.run_id
                 WHERE $11::bool
                 ORDER BY n.n
             )
             SELECT n.id, n.attempt, n.run_id, n.step_key, n.handler_type, n.parameters,
                    n.lease_owner, a.id AS attempt_id
               FROM numbered n JOIN attempts a ON a.task_id = n.id
              ORDER BY n.id",
            crate::visibility::claimable("t", "$7", "$8")
        ))
        .bind(&first.handler_types)
        .bind(shared.total())
        .bind(now)
        .bind(&workers)
        .bind(lease_until)
        .bind(uuids(attempt_ids, |a| a.0))
        .bind(restrict)
        .bind(me)
        .bind(&los)
        .bind(&his)
        .bind(self.engine.claim_events)
        .fetch_all(&mut *self.tx)
        .await?;
        let claimed = rows
            .into_iter()
            .map(|r| {
                let task = ClaimedTask {
                    task_id: r.try_get("id")?,
                    attempt_id: r.try_get("attempt_id")?,
                    attempt: r.try_get("attempt")?,
                    run_id: r.try_get("run_id")?,
                    step_key: r.try_get("step_key")?,
                    handler_type: r.try_get("handler_type")?,
                    parameters: r.try_get("parameters")?,
                    lease_expires_at: lease_until,
                };
                Ok((task, r.try_get("lease_owner")?))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(shared.share_out(claimed))
    }

    async fn complete_running(
        &mut self,
        items: &[(AttemptRef, &Value)],
        now: Timestamp,
    ) -> StoreResult<Vec<CompletedAttempt>> {
        self.complete_running_of(items, now, false).await
    }

    async fn extend_leases(
        &mut self,
        items: &[(AttemptRef, Timestamp)],
        now: Timestamp,
    ) -> StoreResult<Vec<ExtendedLease>> {
        Ok(sqlx::query_as(EXTEND_LEASES)
            .bind(items.iter().map(|(a, _)| a.task_id.0).collect::<Vec<_>>())
            .bind(items.iter().map(|(a, _)| a.attempt).collect::<Vec<_>>())
            .bind(items.iter().map(|(_, until)| *until).collect::<Vec<_>>())
            .bind(now)
            .fetch_all(&mut *self.tx)
            .await?)
    }

    async fn promote_dependents(
        &mut self,
        done: &[(RunId, TaskId)],
        now: Timestamp,
    ) -> StoreResult<Promotion> {
        // This statement starts after the runs were locked, so it sees every
        // completion committed before; the open check counts the promoted tasks, which
        // were pending (open) in its snapshot too. The status tests are written
        // `(…) IS TRUE` so that they cannot be index conditions: when the statistics
        // were taken with few pending tasks, the planner otherwise scanned every
        // pending (or open) task of every run through a status index and joined,
        // instead of looking up the few dependents and runs by key. The dependents
        // are taken by key through an array for the same reason: as `id IN (…)`, a
        // generic plan made on a small table walked every pending task instead.
        let row = sqlx::query(
            "WITH done AS (
                SELECT * FROM UNNEST($1::uuid[], $2::uuid[]) AS d(run_id, task_id)
             ), promoted AS (
                UPDATE tasks t SET status = 'ready', updated_at = $3
                 WHERE t.id = ANY (ARRAY(SELECT x.task_id FROM task_dependencies x
                                          JOIN done ON x.depends_on_id = done.task_id))
                   AND (t.status = 'pending') IS TRUE AND NOT EXISTS (
                        SELECT 1 FROM task_dependencies d JOIN tasks p ON p.id = d.depends_on_id
                         WHERE d.task_id = t.id AND p.status <> 'completed')
                RETURNING t.id, t.run_id
             ), events AS (
                INSERT INTO events (event_type, run_id, task_id, workflow_id, payload, created_at)
                SELECT 'task.ready', p.run_id, p.id, r.workflow_id, '{}'::jsonb, $3
                  FROM promoted p LEFT JOIN workflow_executions r ON r.id = p.run_id
                 ORDER BY p.run_id, p.id
             )
             SELECT coalesce((SELECT array_agg(p.run_id ORDER BY p.run_id, p.id) FROM promoted p), '{}') AS ready_runs,
                    coalesce((SELECT array_agg(p.id ORDER BY p.run_id, p.id) FROM promoted p), '{}') AS ready_tasks,
                    coalesce((SELECT array_agg(r.run_id) FROM (SELECT DISTINCT run_id FROM done) r
                               WHERE EXISTS (SELECT 1 FROM tasks o WHERE o.run_id = r.run_id
                                               AND (o.status IN ('pending', 'ready', 'running')) IS TRUE)), '{}') AS open_runs",
        )
        .bind(done.iter().map(|(r, _)| r.0).collect::<Vec<_>>())
        .bind(done.iter().map(|(_, t)| t.0).collect::<Vec<_>>())
        .bind(now)
        .fetch_one(&mut *self.tx)
        .await?;
        let runs: Vec<Uuid> = row.try_get("ready_runs")?;
        let tasks: Vec<Uuid> = row.try_get("ready_tasks")?;
        let open: Vec<Uuid> = row.try_get("open_runs")?;
        Ok(Promotion {
            ready: runs
                .into_iter()
                .zip(tasks)
                .map(|(r, t)| (RunId(r), TaskId(t)))
                .collect(),
            open_runs: open.into_iter().map(RunId).collect(),
        })
    }

    async fn insert_events(&mut self, events: &[NewEvent], now: Timestamp) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO events (event_type, run_id, task_id, workflow_id, payload, created_at)
             SELECT u.event_type, u.run_id, u.task_id,
                    coalesce(u.workflow_id, (SELECT r.workflow_id FROM workflow_executions r WHERE r.id = u.run_id)),
                    u.payload, $6
               FROM UNNEST($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::jsonb[])
                 AS u(event_type, run_id, task_id, workflow_id, payload)",
        )
        .bind(events.iter().map(|e| e.event_type).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.run_id.map(|r| r.0)).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.task_id.map(|t| t.0)).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.workflow_id.clone()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.payload.clone()).collect::<Vec<Value>>())
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn assign_event_seqs(&mut self) -> StoreResult<u64> {
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(SEQUENCER_LOCK)
            .fetch_one(&mut *self.tx)
            .await?;
        if !locked {
            return Ok(0);
        }
        // One statement, one snapshot: only committed events are numbered, after the
        // highest number already given, in insertion order. The rows are updated by
        // the place they were read at (events have no key but their number; nobody
        // else updates an unnumbered event, and the lock keeps other sequencers
        // out). Numbering anything tells every server's streams, once (a
        // notification per row would cost a trigger call each).
        let done: i64 = sqlx::query_scalar(
            "WITH base AS (SELECT coalesce(max(seq), 0) AS m FROM events),
                  todo AS (SELECT ctid AS at, row_number() OVER (ORDER BY id) AS rn FROM events
                            WHERE seq IS NULL ORDER BY id LIMIT 10000),
                  done AS (UPDATE events e SET seq = base.m + todo.rn FROM base, todo
                            WHERE e.ctid = todo.at RETURNING 1)
             SELECT c.n FROM (SELECT count(*) AS n FROM done) c
               LEFT JOIN LATERAL (SELECT pg_notify('flowstore_events', '') WHERE c.n > 0) told
                 ON true",
        )
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(done as u64)
    }
}

impl PostgresTx {
    /// Completes the running attempts given, only of tasks without a run when
    /// `standalone_only`; see [`HotPath::complete_running`]. One statement for the
    /// whole batch: the guarded task update, the attempt rows, the run locks (in run
    /// ID order, after the tasks, as every transition takes them) and the events, in
    /// the order the attempts were given. Being one statement, it is a transition of
    /// its own outside a transaction when `standalone_only` (see `transitions`).
    pub(crate) async fn complete_running_of(
        &mut self,
        items: &[(AttemptRef, &Value)],
        now: Timestamp,
        standalone_only: bool,
    ) -> StoreResult<Vec<CompletedAttempt>> {
        let rows = sqlx::query(COMPLETE_RUNNING)
            .bind(items.iter().map(|(a, _)| a.task_id.0).collect::<Vec<_>>())
            .bind(items.iter().map(|(a, _)| a.attempt).collect::<Vec<_>>())
            .bind(
                items
                    .iter()
                    .map(|(_, o)| (*o).clone())
                    .collect::<Vec<Value>>(),
            )
            .bind(now)
            .bind(standalone_only)
            .fetch_all(&mut *self.tx)
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let run_id: Option<RunId> = r.try_get("id")?;
                Ok(CompletedAttempt {
                    task_id: r.try_get("done_task_id")?,
                    attempt: r.try_get("done_attempt")?,
                    run: match run_id {
                        Some(_) => Some(RunState::from_row(r)?),
                        None => None,
                    },
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?)
    }
}

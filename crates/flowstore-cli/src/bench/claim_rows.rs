//! A second floor for the `claim` workload on PostgreSQL: hand-written SQL that writes
//! the rows a flowstore transition writes (the task, its attempt row and an outbox
//! event, for the claim and again for the completion), one autocommit statement per
//! transition. Set against the minimal floor it measures what those rows cost on
//! their own; set against flowstore, what flowstore adds beyond them.

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::{db_err, fail};
use flowstore_core::StoreResult;

/// Claims up to `$3` ready tasks of handler type `$1` for worker `$2`: the task rows,
/// an attempt row each and, when `$4`, a `task.claimed` event each, as flowstore's
/// claim does.
const CLAIM: &str = "WITH claimed AS (
        UPDATE tasks SET status = 'running', attempt = attempt + 1, lease_owner = $2,
               lease_expires_at = now() + interval '10 minutes', run_after = NULL,
               started_at = coalesce(started_at, now()), updated_at = now()
         WHERE id IN (SELECT id FROM tasks
                       WHERE status = 'ready' AND handler_type = $1
                       ORDER BY priority DESC, id LIMIT $3
                       FOR NO KEY UPDATE SKIP LOCKED)
        RETURNING id, attempt, run_id, handler_type
     ), attempts AS (
        INSERT INTO task_executions (id, task_id, run_id, attempt, agent_type, worker_id,
            execution_status, started_at, lease_expires_at, heartbeat_at, created_at, updated_at)
        SELECT gen_random_uuid(), id, run_id, attempt, handler_type, $2, 'running', now(),
               now() + interval '10 minutes', now(), now(), now()
          FROM claimed
     ), events AS (
        INSERT INTO events (event_type, run_id, task_id, payload, created_at)
        SELECT 'task.claimed', run_id, id,
               jsonb_build_object('attempt', attempt, 'worker_id', $2::text), now()
          FROM claimed
         WHERE $4::bool
     )
     SELECT id, attempt FROM claimed";

/// Completes the running attempts given as arrays (`$1` task IDs, `$2` attempts) with
/// output `$3`: the task rows, their attempt rows and a `task.completed` event each,
/// as flowstore's completion of a task without a run does.
const COMPLETE: &str = "WITH done AS (
        UPDATE tasks t SET status = 'completed', result = $3, error_message = NULL,
               completed_at = now(),
               actual_duration = floor(extract(epoch FROM (now() - t.started_at)) * 1000)::int,
               lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
          FROM UNNEST($1::uuid[], $2::int[]) AS u(id, attempt)
         WHERE t.id = u.id AND t.attempt = u.attempt AND t.status = 'running'
        RETURNING t.id, t.attempt, t.run_id
     ), attempts AS (
        UPDATE task_executions e
           SET execution_status = 'completed', output_results = $3, completed_at = now(),
               duration_ms = greatest(0, floor(extract(epoch FROM (now() - e.started_at)) * 1000))::bigint,
               lease_expires_at = NULL, updated_at = now()
          FROM done d
         WHERE e.task_id = d.id AND e.attempt = d.attempt
     ), events AS (
        INSERT INTO events (event_type, run_id, task_id, payload, created_at)
        SELECT 'task.completed', run_id, id, jsonb_build_object('attempt', attempt), now()
          FROM done
     )
     SELECT count(*) FROM done";

/// Claims up to `batch` tasks of `handler` for `worker`, with their events when
/// `events`.
pub(crate) async fn claim(
    pool: &PgPool,
    handler: &str,
    worker: &str,
    batch: u32,
    events: bool,
) -> StoreResult<Vec<(Uuid, i32)>> {
    sqlx::query_as(CLAIM)
        .bind(handler)
        .bind(worker)
        .bind(i64::from(batch))
        .bind(events)
        .fetch_all(pool)
        .await
        .map_err(db_err)
}

/// Completes the claimed attempts in one statement; every one must still be running.
pub(crate) async fn complete(pool: &PgPool, claimed: &[(Uuid, i32)]) -> StoreResult<()> {
    let changed: i64 = sqlx::query_scalar(COMPLETE)
        .bind(claimed.iter().map(|c| c.0).collect::<Vec<_>>())
        .bind(claimed.iter().map(|c| c.1).collect::<Vec<_>>())
        .bind(json!({"ok": true}))
        .fetch_one(pool)
        .await
        .map_err(db_err)?;
    if changed != claimed.len() as i64 {
        return Err(fail(format!(
            "completion of {} tasks with their rows changed {changed}",
            claimed.len()
        )));
    }
    Ok(())
}

//! SQLite primitives of the execution engine. SQLite has one writer at a time (the
//! backend queues writers), so a claim is a plain `UPDATE … RETURNING` on the ready
//! rows and events take their gap-free sequence number as they are inserted.

use async_trait::async_trait;
use flowstore_core::ids::{AttemptId, RunId, TaskId, WorkflowId};
use flowstore_core::model::engine::{
    AttemptRef, ClaimRequest, ClaimedTask, EngineStore, Event, EventFilter, NewEvent, QueueDepth,
    RunState, RunTask, RunTaskCounts, StepTask, TaskState,
};
use flowstore_core::model::run::{
    AttemptStatus, ExecutionStatistics, RunStatus, WorkflowExecution,
};
use flowstore_core::time::{duration_ms, Timestamp};
use flowstore_core::StoreResult;
use serde_json::Value;
use sqlx::Row;

use crate::backend::SqliteTx;
use crate::error::map_err;
use crate::util::{ts, ts_opt};

const TASK_STATE: &str = "SELECT t.id, t.run_id, t.status, t.attempt, t.retry_count, t.max_retries,
        t.timeout_seconds, t.result, t.error_message, t.lease_owner, t.lease_expires_at,
        t.run_after, t.started_at, t.completed_at, t.actual_duration,
        (SELECT e.started_at FROM task_executions e
          WHERE e.task_id = t.id AND e.attempt = t.attempt) AS attempt_started_at
   FROM tasks t WHERE t.id = ?1";

const RUN_STATE: &str = "SELECT id, execution_id, workflow_id, status, strategy, failure_strategy,
        start_time, end_time, actual_duration, error_data, deadline_at, cancel_requested_at
   FROM workflow_executions WHERE id = ?1";

const DEPENDENCIES_DONE: &str = "NOT EXISTS (SELECT 1 FROM task_dependencies d
        JOIN tasks p ON p.id = d.depends_on_id
        WHERE d.task_id = t.id AND p.status <> 'completed')";

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

#[async_trait]
impl EngineStore for SqliteTx {
    async fn active_handler_types(&mut self, types: &[String]) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT handler_type FROM handler_registry
              WHERE handler_type IN (SELECT value FROM json_each(?1)) AND is_active",
        )
        .bind(json_list(types))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)
    }

    async fn insert_step_tasks(
        &mut self,
        run: &WorkflowExecution,
        workflow_id: WorkflowId,
        tasks: &[StepTask],
        edges: &[(TaskId, TaskId)],
    ) -> StoreResult<()> {
        let created = ts(&run.created_at);
        for t in tasks {
            sqlx::query(
                "INSERT INTO tasks (id, workflow_id, run_id, step_key, title, status, priority,
                    handler_type, parameters, execution_order, timeout_seconds, max_retries,
                    created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)",
            )
            .bind(t.id)
            .bind(workflow_id)
            .bind(run.id)
            .bind(&t.step_key)
            .bind(&t.title)
            .bind(t.status)
            .bind(t.priority)
            .bind(&t.handler_type)
            .bind(&t.parameters)
            .bind(t.execution_order)
            .bind(t.timeout_seconds)
            .bind(t.max_retries)
            .bind(&created)
            .execute(&mut *self.tx)
            .await
            .map_err(map_err)?;
        }
        for (task, dep) in edges {
            sqlx::query("INSERT INTO task_dependencies (task_id, depends_on_id) VALUES (?1, ?2)")
                .bind(task)
                .bind(dep)
                .execute(&mut *self.tx)
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    async fn claim_ready(
        &mut self,
        request: &ClaimRequest,
        now: Timestamp,
        attempt_ids: &[AttemptId],
    ) -> StoreResult<Vec<ClaimedTask>> {
        let lease_until = now + chrono::Duration::from_std(request.lease).unwrap_or_default();
        let (now_s, until_s) = (ts(&now), ts(&lease_until));
        let (restrict, me) = crate::visibility::binds(&request.executor);
        let rows = sqlx::query(&format!(
            "UPDATE tasks
                SET status = 'running', attempt = attempt + 1, lease_owner = ?4,
                    lease_expires_at = ?5, run_after = NULL,
                    started_at = coalesce(started_at, ?3), updated_at = ?3
              WHERE id IN (SELECT t.id FROM tasks t
                            WHERE t.status = 'ready'
                              AND t.handler_type IN (SELECT value FROM json_each(?1))
                              AND (t.run_after IS NULL OR t.run_after <= ?3){}
                            ORDER BY t.priority DESC, t.id LIMIT ?2)
             RETURNING id, attempt, run_id, step_key, handler_type, parameters",
            crate::visibility::claimable("t", "?6", "?7")
        ))
        .bind(json_list(&request.handler_types))
        .bind(i64::from(request.limit))
        .bind(&now_s)
        .bind(&request.worker_id)
        .bind(&until_s)
        .bind(restrict)
        .bind(me)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        let mut claimed = Vec::with_capacity(rows.len());
        for (row, attempt_id) in rows.into_iter().zip(attempt_ids) {
            let c = ClaimedTask {
                task_id: row.try_get("id").map_err(map_err)?,
                attempt_id: *attempt_id,
                attempt: row.try_get("attempt").map_err(map_err)?,
                run_id: row.try_get("run_id").map_err(map_err)?,
                step_key: row.try_get("step_key").map_err(map_err)?,
                handler_type: row.try_get("handler_type").map_err(map_err)?,
                parameters: row.try_get("parameters").map_err(map_err)?,
                lease_expires_at: lease_until,
            };
            sqlx::query(
                "INSERT INTO task_executions (id, task_id, run_id, attempt, agent_type, worker_id,
                    execution_status, started_at, lease_expires_at, heartbeat_at, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, ?8, ?7, ?7, ?7)",
            )
            .bind(c.attempt_id)
            .bind(c.task_id)
            .bind(c.run_id)
            .bind(c.attempt)
            .bind(&c.handler_type)
            .bind(&request.worker_id)
            .bind(&now_s)
            .bind(&until_s)
            .execute(&mut *self.tx)
            .await
            .map_err(map_err)?;
            claimed.push(c);
        }
        let events: Vec<NewEvent> = claimed
            .iter()
            .map(|c| NewEvent {
                event_type: "task.claimed",
                run_id: c.run_id,
                task_id: Some(c.task_id),
                workflow_id: None,
                payload: serde_json::json!({"attempt": c.attempt, "worker_id": request.worker_id}),
            })
            .collect();
        self.insert_events(&events, now).await?;
        claimed.sort_by_key(|c| c.task_id);
        Ok(claimed)
    }

    async fn lock_task(&mut self, id: TaskId) -> StoreResult<Option<TaskState>> {
        sqlx::query_as(TASK_STATE)
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)
    }

    async fn save_task(&mut self, t: &TaskState, now: Timestamp) -> StoreResult<()> {
        sqlx::query(
            "UPDATE tasks SET status = ?2, retry_count = ?3, result = ?4, error_message = ?5,
                lease_owner = ?6, lease_expires_at = ?7, run_after = ?8, started_at = ?9,
                completed_at = ?10, actual_duration = ?11, updated_at = ?12
              WHERE id = ?1",
        )
        .bind(t.id)
        .bind(t.status)
        .bind(t.retry_count)
        .bind(&t.result)
        .bind(&t.error_message)
        .bind(&t.lease_owner)
        .bind(ts_opt(&t.lease_expires_at))
        .bind(ts_opt(&t.run_after))
        .bind(ts_opt(&t.started_at))
        .bind(ts_opt(&t.completed_at))
        .bind(t.actual_duration)
        .bind(ts(&now))
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn finish_task_attempt(
        &mut self,
        task: TaskId,
        attempt: i32,
        status: AttemptStatus,
        output: Option<&Value>,
        error: Option<&Value>,
        now: Timestamp,
    ) -> StoreResult<()> {
        let started: Option<Option<chrono::DateTime<chrono::Utc>>> = sqlx::query_scalar(
            "SELECT started_at FROM task_executions WHERE task_id = ?1 AND attempt = ?2",
        )
        .bind(task)
        .bind(attempt)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(map_err)?;
        let duration = started.flatten().map(|s| i64::from(duration_ms(s, now)));
        sqlx::query(
            "UPDATE task_executions
                SET execution_status = ?3, output_results = coalesce(?4, output_results),
                    error_details = coalesce(?5, error_details), completed_at = ?6,
                    duration_ms = ?7, lease_expires_at = NULL, updated_at = ?6
              WHERE task_id = ?1 AND attempt = ?2",
        )
        .bind(task)
        .bind(attempt)
        .bind(status)
        .bind(output)
        .bind(error)
        .bind(ts(&now))
        .bind(duration)
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn extend_lease(
        &mut self,
        attempt: AttemptRef,
        until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE tasks SET lease_expires_at = ?3, updated_at = ?4
              WHERE id = ?1 AND attempt = ?2 AND status = 'running'",
        )
        .bind(attempt.task_id)
        .bind(attempt.attempt)
        .bind(ts(&until))
        .bind(ts(&now))
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE task_executions SET lease_expires_at = ?3, heartbeat_at = ?4, updated_at = ?4
              WHERE task_id = ?1 AND attempt = ?2",
        )
        .bind(attempt.task_id)
        .bind(attempt.attempt)
        .bind(ts(&until))
        .bind(ts(&now))
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(true)
    }

    async fn promote_ready(
        &mut self,
        run: RunId,
        sequential: bool,
        now: Timestamp,
    ) -> StoreResult<Vec<TaskId>> {
        let sql = if sequential {
            format!(
                "UPDATE tasks SET status = 'ready', updated_at = ?2
                  WHERE id = (SELECT t.id FROM tasks t
                               WHERE t.run_id = ?1 AND t.status = 'pending' AND {DEPENDENCIES_DONE}
                                 AND NOT EXISTS (SELECT 1 FROM tasks o WHERE o.run_id = ?1
                                                   AND o.status IN ('ready', 'running'))
                               ORDER BY t.execution_order, t.id LIMIT 1)
                 RETURNING id"
            )
        } else {
            format!(
                "UPDATE tasks AS t SET status = 'ready', updated_at = ?2
                  WHERE t.run_id = ?1 AND t.status = 'pending' AND {DEPENDENCIES_DONE}
                 RETURNING id"
            )
        };
        sqlx::query_scalar(&sql)
            .bind(run)
            .bind(ts(&now))
            .fetch_all(&mut *self.tx)
            .await
            .map_err(map_err)
    }

    async fn cancel_open_tasks(
        &mut self,
        run: RunId,
        only: Option<&[TaskId]>,
        now: Timestamp,
    ) -> StoreResult<Vec<TaskId>> {
        // IDs are BLOBs; compare their hex form with the UUIDs' simple text form.
        let only: Option<String> = only.map(|ids| {
            json_list(
                &ids.iter()
                    .map(|t| t.0.simple().to_string())
                    .collect::<Vec<_>>(),
            )
        });
        sqlx::query_scalar(
            "UPDATE tasks SET status = 'cancelled', completed_at = ?2, run_after = NULL, updated_at = ?2
              WHERE run_id = ?1 AND status IN ('pending', 'ready')
                AND (?3 IS NULL OR lower(hex(id)) IN (SELECT value FROM json_each(?3)))
             RETURNING id",
        )
        .bind(run)
        .bind(ts(&now))
        .bind(only)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)
    }

    async fn dependents_of(&mut self, task: TaskId) -> StoreResult<Vec<TaskId>> {
        sqlx::query_scalar(
            "WITH RECURSIVE d(id) AS (
                SELECT task_id FROM task_dependencies WHERE depends_on_id = ?1
                UNION
                SELECT x.task_id FROM task_dependencies x JOIN d ON x.depends_on_id = d.id
             ) SELECT id FROM d",
        )
        .bind(task)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)
    }

    async fn run_task_counts(&mut self, run: RunId) -> StoreResult<RunTaskCounts> {
        sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status IN ('pending', 'ready', 'running')) AS open,
                    count(*) FILTER (WHERE status = 'completed') AS completed,
                    count(*) FILTER (WHERE status IN ('failed', 'timed_out')) AS failed,
                    count(*) FILTER (WHERE status = 'cancelled') AS cancelled
               FROM tasks WHERE run_id = ?1",
        )
        .bind(run)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(map_err)
    }

    async fn lock_run(&mut self, id: RunId) -> StoreResult<Option<RunState>> {
        sqlx::query_as(RUN_STATE)
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)
    }

    async fn save_run(&mut self, r: &RunState, now: Timestamp) -> StoreResult<()> {
        sqlx::query(
            "UPDATE workflow_executions SET status = ?2, end_time = ?3, actual_duration = ?4,
                error_data = ?5, deadline_at = ?6, cancel_requested_at = ?7, updated_at = ?8
              WHERE id = ?1",
        )
        .bind(r.id)
        .bind(r.status)
        .bind(ts_opt(&r.end_time))
        .bind(r.actual_duration)
        .bind(&r.error_data)
        .bind(ts_opt(&r.deadline_at))
        .bind(ts_opt(&r.cancel_requested_at))
        .bind(ts(&now))
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn insert_events(&mut self, events: &[NewEvent], now: Timestamp) -> StoreResult<()> {
        let now = ts(&now);
        for e in events {
            // Writers are serialised, so the next number after the highest is free and
            // stays gap-free: a rolled-back transaction takes its numbers with it.
            sqlx::query(
                "INSERT INTO events (seq, event_type, run_id, task_id, workflow_id, payload, created_at)
                 VALUES ((SELECT coalesce(max(seq), 0) + 1 FROM events), ?1, ?2, ?3,
                         coalesce(?4, (SELECT r.workflow_id FROM workflow_executions r WHERE r.id = ?2)),
                         ?5, ?6)",
            )
            .bind(e.event_type)
            .bind(e.run_id)
            .bind(e.task_id)
            .bind(&e.workflow_id)
            .bind(&e.payload)
            .bind(&now)
            .execute(&mut *self.tx)
            .await
            .map_err(map_err)?;
        }
        Ok(())
    }

    async fn expired_leases(&mut self, now: Timestamp, limit: u32) -> StoreResult<Vec<TaskId>> {
        sqlx::query_scalar(
            "SELECT id FROM tasks WHERE status = 'running' AND lease_expires_at < ?1
              ORDER BY lease_expires_at LIMIT ?2",
        )
        .bind(ts(&now))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)
    }

    async fn overdue_tasks(&mut self, now: Timestamp, limit: u32) -> StoreResult<Vec<TaskId>> {
        let rows: Vec<(TaskId, i32, Option<chrono::DateTime<chrono::Utc>>)> = sqlx::query_as(
            "SELECT t.id, t.timeout_seconds, e.started_at FROM tasks t
               JOIN task_executions e ON e.task_id = t.id AND e.attempt = t.attempt
              WHERE t.status = 'running' AND t.timeout_seconds IS NOT NULL",
        )
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(rows
            .into_iter()
            .filter(|(_, secs, started)| {
                started.is_some_and(|s| s + chrono::Duration::seconds((*secs).into()) < now)
            })
            .map(|(id, _, _)| id)
            .take(limit as usize)
            .collect())
    }

    async fn overdue_runs(&mut self, now: Timestamp, limit: u32) -> StoreResult<Vec<RunId>> {
        sqlx::query_scalar(
            "SELECT id FROM workflow_executions
              WHERE status IN ('pending', 'running') AND deadline_at < ?1 LIMIT ?2",
        )
        .bind(ts(&now))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)
    }

    async fn select_run_tasks(&mut self, run: RunId) -> StoreResult<Vec<RunTask>> {
        sqlx::query_as(
            "SELECT id, step_key, status, handler_type, attempt, retry_count FROM tasks
              WHERE run_id = ?1 ORDER BY execution_order, id",
        )
        .bind(run)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)
    }

    async fn select_workflow_statistics(
        &mut self,
        workflow_id: &str,
        status: Option<RunStatus>,
    ) -> StoreResult<ExecutionStatistics> {
        let row = sqlx::query(
            "SELECT coalesce(sum(s.executions), 0) AS total,
                    coalesce(sum(s.executions) FILTER (WHERE s.status = 'completed'), 0) AS completed,
                    coalesce(sum(s.executions) FILTER (WHERE s.status = 'failed'), 0) AS failed,
                    CAST(coalesce(sum(s.duration_sum), 0) AS REAL) AS duration_sum,
                    coalesce(sum(s.duration_count), 0) AS duration_count,
                    min((SELECT min(e.actual_duration) FROM workflow_executions e
                          WHERE e.workflow_id = s.workflow_id AND e.status = s.status)) AS min_duration,
                    max((SELECT max(e.actual_duration) FROM workflow_executions e
                          WHERE e.workflow_id = s.workflow_id AND e.status = s.status)) AS max_duration
               FROM workflow_stats s
              WHERE s.workflow_id = ?1 AND s.executions > 0 AND (?2 IS NULL OR s.status = ?2)",
        )
        .bind(workflow_id)
        .bind(status.map(|s| s.as_str()))
        .fetch_one(&mut *self.tx)
        .await
        .map_err(map_err)?;
        let count: i64 = row.try_get("duration_count").map_err(map_err)?;
        let sum: f64 = row.try_get("duration_sum").map_err(map_err)?;
        Ok(ExecutionStatistics {
            total_executions: row.try_get("total").map_err(map_err)?,
            completed_executions: row.try_get("completed").map_err(map_err)?,
            failed_executions: row.try_get("failed").map_err(map_err)?,
            average_duration: (count > 0).then(|| sum / count as f64),
            min_duration: row.try_get("min_duration").map_err(map_err)?,
            max_duration: row.try_get("max_duration").map_err(map_err)?,
        })
    }

    async fn select_queue_depth(&mut self) -> StoreResult<Vec<QueueDepth>> {
        sqlx::query_as(
            "SELECT handler_type, status, count(*) AS tasks FROM tasks
              WHERE status IN ('ready', 'running') AND handler_type IS NOT NULL
              GROUP BY handler_type, status ORDER BY handler_type, status",
        )
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)
    }

    async fn select_events_after(
        &mut self,
        after_seq: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> StoreResult<Vec<Event>> {
        sqlx::query_as(
            "SELECT seq, event_type, run_id, task_id, workflow_id, payload, created_at FROM events
              WHERE seq > ?1 AND (?2 IS NULL OR run_id = ?2)
                AND (?3 IS NULL OR workflow_id = ?3) AND (?4 IS NULL OR event_type = ?4)
              ORDER BY seq LIMIT ?5",
        )
        .bind(after_seq)
        .bind(filter.run_id)
        .bind(&filter.workflow_id)
        .bind(&filter.event_type)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)
    }

    async fn assign_event_seqs(&mut self) -> StoreResult<u64> {
        Ok(0)
    }
}

flowstore_core::impl_engine_repo!(SqliteTx);

//! The engine's primitives written once for both backends ([`EngineStore`]): the
//! statements of the transitions that read and write one task, attempt or run at a
//! time. The hot statements (claiming, completing in batches, promoting dependents,
//! appending and numbering events) differ between the dialects and live in each
//! backend's `hot_path.rs`.

use async_trait::async_trait;
use flowstore_core::ids::{RunId, TaskId};
use flowstore_core::model::engine::{
    AttemptRecord, AttemptRef, EngineStore, Event, EventFilter, QueueDepth, RunState, RunTask,
    RunTaskCounts, StepTask, TaskState,
};
use flowstore_core::model::metric::started_metric;
use flowstore_core::model::run::{
    AttemptStatus, ExecutionStatistics, RunStatus, WorkflowExecution,
};
use flowstore_core::time::Timestamp;
use flowstore_core::StoreResult;
use serde_json::Value;
use sqlx::{QueryBuilder, Row};

use crate::dialect::{
    elapsed_ms, id_list, in_id_list, in_text_list, seconds_passed, sql, sql_fmt, sql_owned,
    text_list, ts, ts_opt, Db, Tx,
};
use crate::visibility;

/// The engine's view of a task, with its current attempt's start, locked until the
/// transaction ends (`FOR NO KEY UPDATE`, as an UPDATE locks it, so that other
/// transactions' foreign-key checks on the task do not wait for this one).
const TASK_STATE: &str = "SELECT t.id, t.run_id, t.status, t.attempt, t.retry_count, t.max_retries,
        t.timeout_seconds, t.result, t.error_message, t.lease_owner, t.lease_expires_at,
        t.run_after, t.started_at, t.completed_at, t.actual_duration,
        (SELECT e.started_at FROM task_executions e
          WHERE e.task_id = t.id AND e.attempt = t.attempt) AS attempt_started_at
   FROM tasks t WHERE t.id = $1 FOR NO KEY UPDATE OF t";

/// The engine's view of a run, locked until the transaction ends.
const RUN_STATE: &str = "SELECT id, execution_id, workflow_id, status, strategy, failure_strategy,
        start_time, end_time, actual_duration, error_data, deadline_at, cancel_requested_at
   FROM workflow_executions WHERE id = $1 FOR NO KEY UPDATE";

/// Pending tasks whose dependencies have all completed (`t` is the task).
const DEPENDENCIES_DONE: &str = "NOT EXISTS (SELECT 1 FROM task_dependencies d
        JOIN tasks p ON p.id = d.depends_on_id
        WHERE d.task_id = t.id AND p.status <> 'completed')";

#[async_trait]
impl EngineStore for Tx {
    async fn insert_runs(&mut self, runs: &[WorkflowExecution]) -> StoreResult<()> {
        self.insert_execution_rows(runs).await?;
        let metrics = runs
            .iter()
            .map(|r| started_metric(r).into_row(r.created_at))
            .collect::<StoreResult<Vec<_>>>()?;
        self.insert_metric_rows(&metrics).await
    }

    async fn insert_step_tasks(
        &mut self,
        created_at: Timestamp,
        tasks: &[StepTask],
        edges: &[(TaskId, TaskId)],
    ) -> StoreResult<()> {
        // 14 parameters a task.
        for chunk in tasks.chunks(1000) {
            let mut qb = QueryBuilder::<Db>::new(
                "INSERT INTO tasks (id, workflow_id, run_id, step_key, title, status, priority,
                    handler_type, parameters, execution_order, timeout_seconds, max_retries,
                    created_at, updated_at) ",
            );
            qb.push_values(chunk, |mut b, t| {
                b.push_bind(t.id)
                    .push_bind(t.workflow_id)
                    .push_bind(t.run_id)
                    .push_bind(&t.step_key)
                    .push_bind(&t.title)
                    .push_bind(t.status)
                    .push_bind(t.priority)
                    .push_bind(&t.handler_type)
                    .push_bind(&t.parameters)
                    .push_bind(t.execution_order)
                    .push_bind(t.timeout_seconds)
                    .push_bind(t.max_retries)
                    .push_bind(ts(&created_at))
                    .push_bind(ts(&created_at));
            });
            qb.build().execute(&mut *self.tx).await?;
        }
        for chunk in edges.chunks(1000) {
            let mut qb =
                QueryBuilder::<Db>::new("INSERT INTO task_dependencies (task_id, depends_on_id) ");
            qb.push_values(chunk, |mut b, (task, dep)| {
                b.push_bind(*task).push_bind(*dep);
            });
            qb.build().execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    async fn task_exists(&mut self, id: TaskId) -> StoreResult<bool> {
        let found: Option<i32> = sqlx::query_scalar(sql!("SELECT 1 FROM tasks WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(found.is_some())
    }

    async fn active_handler_types(&mut self, types: &[String]) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(sql_fmt!(
            "SELECT handler_type FROM handler_registry WHERE {types} AND is_active",
            types = in_text_list("handler_type", "$1")
        ))
        .bind(text_list(types))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn lock_task(&mut self, id: TaskId) -> StoreResult<Option<TaskState>> {
        Ok(sqlx::query_as(sql_fmt!("{TASK_STATE}"))
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?)
    }

    async fn save_task(&mut self, t: &TaskState, now: Timestamp) -> StoreResult<()> {
        sqlx::query(sql!(
            "UPDATE tasks SET status = $2, retry_count = $3, result = $4, error_message = $5,
                lease_owner = $6, lease_expires_at = $7, run_after = $8, started_at = $9,
                completed_at = $10, actual_duration = $11, updated_at = $12
              WHERE id = $1"
        ))
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
        .await?;
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
        sqlx::query(sql_fmt!(
            "UPDATE task_executions
                SET execution_status = $3, output_results = coalesce($4, output_results),
                    error_details = coalesce($5, error_details), completed_at = $6,
                    duration_ms = CASE WHEN started_at IS NULL THEN NULL ELSE {duration} END,
                    lease_expires_at = NULL, updated_at = $6
              WHERE task_id = $1 AND attempt = $2",
            duration = elapsed_ms("started_at", "$6")
        ))
        .bind(task)
        .bind(attempt)
        .bind(status)
        .bind(output)
        .bind(error)
        .bind(ts(&now))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn attempt_record(
        &mut self,
        task: TaskId,
        attempt: i32,
    ) -> StoreResult<Option<AttemptRecord>> {
        Ok(sqlx::query_as(sql!(
            "SELECT execution_status AS status, output_results AS output,
                    error_details AS error, outcome
               FROM task_executions WHERE task_id = $1 AND attempt = $2"
        ))
        .bind(task)
        .bind(attempt)
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    async fn record_outcome(
        &mut self,
        task: TaskId,
        attempt: i32,
        outcome: &Value,
    ) -> StoreResult<()> {
        sqlx::query(sql!(
            "UPDATE task_executions SET outcome = $3 WHERE task_id = $1 AND attempt = $2"
        ))
        .bind(task)
        .bind(attempt)
        .bind(outcome)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn extend_lease(
        &mut self,
        attempt: AttemptRef,
        until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let done = sqlx::query(sql!(
            "UPDATE tasks SET lease_expires_at = $3, updated_at = $4
              WHERE id = $1 AND attempt = $2 AND status = 'running'"
        ))
        .bind(attempt.task_id)
        .bind(attempt.attempt)
        .bind(ts(&until))
        .bind(ts(&now))
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(sql!(
            "UPDATE task_executions SET lease_expires_at = $3, heartbeat_at = $4, updated_at = $4
              WHERE task_id = $1 AND attempt = $2"
        ))
        .bind(attempt.task_id)
        .bind(attempt.attempt)
        .bind(ts(&until))
        .bind(ts(&now))
        .execute(&mut *self.tx)
        .await?;
        Ok(true)
    }

    async fn promote_ready(
        &mut self,
        run: RunId,
        sequential: bool,
        now: Timestamp,
    ) -> StoreResult<Vec<TaskId>> {
        let sql = if sequential {
            sql_fmt!(
                "UPDATE tasks SET status = 'ready', updated_at = $2
                  WHERE id = (SELECT t.id FROM tasks t
                               WHERE t.run_id = $1 AND t.status = 'pending' AND {DEPENDENCIES_DONE}
                                 AND NOT EXISTS (SELECT 1 FROM tasks o WHERE o.run_id = $1
                                                   AND o.status IN ('ready', 'running'))
                               ORDER BY t.execution_order, t.id LIMIT 1)
                 RETURNING id"
            )
        } else {
            sql_fmt!(
                "UPDATE tasks AS t SET status = 'ready', updated_at = $2
                  WHERE t.run_id = $1 AND t.status = 'pending' AND {DEPENDENCIES_DONE}
                 RETURNING id"
            )
        };
        Ok(sqlx::query_scalar(sql)
            .bind(run)
            .bind(ts(&now))
            .fetch_all(&mut *self.tx)
            .await?)
    }

    async fn reopen_tasks(&mut self, run: RunId, now: Timestamp) -> StoreResult<Vec<TaskId>> {
        Ok(sqlx::query_scalar(sql!(
            "UPDATE tasks SET status = 'pending', retry_count = 0, result = NULL,
                    error_message = NULL, lease_owner = NULL, lease_expires_at = NULL,
                    run_after = NULL, completed_at = NULL, actual_duration = NULL, updated_at = $2
              WHERE run_id = $1 AND status IN ('failed', 'timed_out', 'cancelled')
             RETURNING id"
        ))
        .bind(run)
        .bind(ts(&now))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn cancel_open_tasks(
        &mut self,
        run: RunId,
        only: Option<&[TaskId]>,
        now: Timestamp,
    ) -> StoreResult<Vec<TaskId>> {
        Ok(sqlx::query_scalar(sql_fmt!(
            "UPDATE tasks SET status = 'cancelled', completed_at = $2, run_after = NULL, updated_at = $2
              WHERE run_id = $1 AND status IN ('pending', 'ready')
                AND ($3::uuid[] IS NULL OR {only})
             RETURNING id",
            only = in_id_list("id", "$3")
        ))
        .bind(run)
        .bind(ts(&now))
        .bind(only.map(|ids| id_list(ids.iter().map(|t| t.0))))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn dependents_of(&mut self, task: TaskId) -> StoreResult<Vec<TaskId>> {
        Ok(sqlx::query_scalar(sql!(
            "WITH RECURSIVE d(id) AS (
                SELECT task_id FROM task_dependencies WHERE depends_on_id = $1
                UNION
                SELECT x.task_id FROM task_dependencies x JOIN d ON x.depends_on_id = d.id
             ) SELECT id FROM d"
        ))
        .bind(task)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn run_task_counts(&mut self, run: RunId) -> StoreResult<RunTaskCounts> {
        Ok(sqlx::query_as(sql!(
            "SELECT count(*) FILTER (WHERE status IN ('pending', 'ready', 'running')) AS open,
                    count(*) FILTER (WHERE status = 'completed') AS completed,
                    count(*) FILTER (WHERE status IN ('failed', 'timed_out')) AS failed,
                    count(*) FILTER (WHERE status = 'cancelled') AS cancelled
               FROM tasks WHERE run_id = $1"
        ))
        .bind(run)
        .fetch_one(&mut *self.tx)
        .await?)
    }

    async fn lock_run(&mut self, id: RunId) -> StoreResult<Option<RunState>> {
        Ok(sqlx::query_as(sql_fmt!("{RUN_STATE}"))
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?)
    }

    async fn save_run(&mut self, r: &RunState, now: Timestamp) -> StoreResult<()> {
        sqlx::query(sql!(
            "UPDATE workflow_executions SET status = $2, end_time = $3, actual_duration = $4,
                error_data = $5, deadline_at = $6, cancel_requested_at = $7, updated_at = $8
              WHERE id = $1"
        ))
        .bind(r.id)
        .bind(r.status)
        .bind(ts_opt(&r.end_time))
        .bind(r.actual_duration)
        .bind(&r.error_data)
        .bind(ts_opt(&r.deadline_at))
        .bind(ts_opt(&r.cancel_requested_at))
        .bind(ts(&now))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn expired_leases(&mut self, now: Timestamp, limit: u32) -> StoreResult<Vec<TaskId>> {
        Ok(sqlx::query_scalar(sql!(
            "SELECT id FROM tasks WHERE status = 'running' AND lease_expires_at < $1
              ORDER BY lease_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED"
        ))
        .bind(ts(&now))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn overdue_tasks(&mut self, now: Timestamp, limit: u32) -> StoreResult<Vec<TaskId>> {
        Ok(sqlx::query_scalar(sql_fmt!(
            "SELECT t.id FROM tasks t
               JOIN task_executions e ON e.task_id = t.id AND e.attempt = t.attempt
              WHERE t.status = 'running' AND t.timeout_seconds IS NOT NULL
                AND {overdue}
              LIMIT $2 FOR UPDATE OF t SKIP LOCKED",
            overdue = seconds_passed("e.started_at", "t.timeout_seconds", "$1")
        ))
        .bind(ts(&now))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn overdue_runs(&mut self, now: Timestamp, limit: u32) -> StoreResult<Vec<RunId>> {
        Ok(sqlx::query_scalar(sql!(
            "SELECT id FROM workflow_executions
              WHERE status IN ('pending', 'running') AND deadline_at < $1
              LIMIT $2 FOR UPDATE SKIP LOCKED"
        ))
        .bind(ts(&now))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn select_run_tasks(&mut self, run: RunId) -> StoreResult<Vec<RunTask>> {
        Ok(sqlx::query_as(sql!(
            "SELECT id, step_key, status, handler_type, attempt, retry_count FROM tasks
              WHERE run_id = $1 ORDER BY execution_order, id"
        ))
        .bind(run)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn select_workflow_statistics(
        &mut self,
        workflow_id: &str,
        status: Option<RunStatus>,
    ) -> StoreResult<ExecutionStatistics> {
        let row = sqlx::query(sql!(
            "SELECT coalesce(sum(s.executions), 0)::bigint AS total,
                    coalesce(sum(s.executions) FILTER (WHERE s.status = 'completed'), 0)::bigint AS completed,
                    coalesce(sum(s.executions) FILTER (WHERE s.status = 'failed'), 0)::bigint AS failed,
                    CAST(coalesce(sum(s.duration_sum), 0) AS double precision) AS duration_sum,
                    coalesce(sum(s.duration_count), 0)::bigint AS duration_count,
                    min((SELECT min(e.actual_duration) FROM workflow_executions e
                          WHERE e.workflow_id = s.workflow_id AND e.status = s.status)) AS min_duration,
                    max((SELECT max(e.actual_duration) FROM workflow_executions e
                          WHERE e.workflow_id = s.workflow_id AND e.status = s.status)) AS max_duration
               FROM (SELECT workflow_id, status, sum(executions) AS executions,
                            sum(duration_count) AS duration_count, sum(duration_sum) AS duration_sum
                       FROM workflow_stats
                      WHERE workflow_id = $1 AND ($2::text IS NULL OR status = $2)
                      GROUP BY workflow_id, status HAVING sum(executions) > 0) s"
        ))
        .bind(workflow_id)
        .bind(status.map(|s| s.as_str()))
        .fetch_one(&mut *self.tx)
        .await?;
        let count: i64 = row.try_get("duration_count")?;
        let sum: f64 = row.try_get("duration_sum")?;
        Ok(ExecutionStatistics {
            total_executions: row.try_get("total")?,
            completed_executions: row.try_get("completed")?,
            failed_executions: row.try_get("failed")?,
            average_duration: (count > 0).then(|| sum / count as f64),
            min_duration: row.try_get("min_duration")?,
            max_duration: row.try_get("max_duration")?,
        })
    }

    async fn select_queue_depth(&mut self) -> StoreResult<Vec<QueueDepth>> {
        Ok(sqlx::query_as(sql!(
            "SELECT handler_type, status, count(*) AS tasks FROM tasks
              WHERE status IN ('ready', 'running') AND handler_type IS NOT NULL
              GROUP BY handler_type, status ORDER BY handler_type, status"
        ))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn select_events_after(
        &mut self,
        after_seq: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> StoreResult<Vec<Event>> {
        let (restricted, me) = visibility::binds(&filter.viewer);
        Ok(sqlx::query_as(&sql_owned(format!(
            "SELECT seq, event_type, run_id, task_id, workflow_id, payload, created_at FROM events e
              WHERE seq > $1 AND ($2::uuid IS NULL OR run_id = $2)
                AND ($3::text IS NULL OR workflow_id = $3) AND ($4::text IS NULL OR event_type = $4){}
              ORDER BY seq LIMIT $5",
            visibility::clause("$6", "$7", &visibility::event("e"))
        )))
        .bind(after_seq)
        .bind(filter.run_id)
        .bind(&filter.workflow_id)
        .bind(&filter.event_type)
        .bind(i64::from(limit))
        .bind(restricted)
        .bind(me)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn select_newest_event_seq(&mut self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar(sql!("SELECT COALESCE(max(seq), 0) FROM events"))
                .fetch_one(&mut *self.tx)
                .await?,
        )
    }
}

//! Storage for runs (seed 000's workflow executions, [`RunRepo`]) and task attempts
//! ([`AttemptRepo`]); metrics ([`MetricRepo`]) are in `metric.rs`.

use async_trait::async_trait;
use flowstore_core::ids::{AttemptId, RunId, TaskId};
use flowstore_core::model::metric::{duration_metric, started_metric};
use flowstore_core::model::run::{
    AgentSummary, AttemptOutcome, ExecutionPatch, ExecutionStatistics, NewAttempt, NewExecution,
    RunFilter, RunStatus, StatsFilter, TaskAttempt, Usage, WorkflowExecution,
};
use flowstore_core::model::run::{AttemptRepo, MetricRepo, RunRepo};
use flowstore_core::{time, Page, PageRequest, StoreError, StoreResult};

use crate::dialect::{
    ensure_exists, in_text_list, sql, sql_fmt, sql_owned, text_list, ts, ts_opt, Db, Tx,
};
use crate::rows;
use crate::visibility;
use sqlx::QueryBuilder;

const COLUMNS: &str = "id, execution_id, workflow_id, workflow_name, workflow_version, task_id, \
     user_id, status, strategy, priority, estimated_duration, actual_duration, start_time, \
     end_time, result_data, error_data, metadata, created_at, updated_at, workflow_ref, \
     workflow_version_id, failure_strategy, input, deadline_at, cancel_requested_at";

/// How [`Tx::runs_where`] takes a list's text filter.
enum RunText<'a> {
    /// No text filter.
    Any,
    /// The run with this ID or execution ID.
    Exact {
        id: Option<uuid::Uuid>,
        execution_id: &'a str,
    },
    /// Runs whose workflow name matches this LIKE pattern.
    Name(String),
    /// Runs whose workflow name is one of these.
    Names(Vec<String>),
}

/// How many distinct workflow names of runs the name search looks through before it
/// gives up on finding the matching names first and walks the runs instead.
const NAME_WALK: i64 = 1000;

const ATTEMPT_COLUMNS: &str = "id, task_id, run_id, attempt, agent_type, worker_id, \
     execution_status, input_context, output_results, error_details, started_at, completed_at, \
     lease_expires_at, heartbeat_at, duration_ms, memory_usage_mb, cpu_time_ms, created_at, \
     updated_at";

impl Tx {
    /// A page of runs matching `filter` (its text as `text` says), newest by
    /// creation first, after `after`.
    async fn runs_where(
        &mut self,
        filter: &RunFilter,
        text: RunText<'_>,
        limit: u32,
        after: Option<(flowstore_core::time::Timestamp, uuid::Uuid)>,
    ) -> StoreResult<Page<WorkflowExecution>> {
        let (restricted, me) = visibility::binds(&filter.viewer);
        // Each filter and the cursor enter the text only when given (else their
        // parameter is tested for NULL, which it is), so that the plan walks the index
        // that fits ((status,) created_at, id) from the cursor on instead of testing
        // `$n IS NULL OR …` on every row.
        let cond = |given: bool, yes: &str, no: &str| if given { yes } else { no }.to_string();
        let (id, execution_id, pattern, names) = match &text {
            RunText::Any => (None, None, None, None),
            RunText::Exact { id, execution_id } => (*id, Some(*execution_id), None, None),
            RunText::Name(p) => (None, None, Some(p.as_str()), None),
            RunText::Names(n) => (None, None, None, Some(text_list(n))),
        };
        let conds = [
            cond(
                filter.workflow_id.is_some(),
                " AND r.workflow_id = $1",
                " AND $1::text IS NULL",
            ),
            cond(
                filter.status.is_some(),
                " AND r.status = $2",
                " AND $2::text IS NULL",
            ),
            cond(
                filter.since.is_some(),
                " AND r.created_at >= $3",
                " AND $3::timestamptz IS NULL",
            ),
            cond(
                filter.until.is_some(),
                " AND r.created_at < $4",
                " AND $4::timestamptz IS NULL",
            ),
            cond(
                execution_id.is_some(),
                " AND (r.id = $5 OR r.execution_id = $6)",
                " AND $5::uuid IS NULL AND $6::text IS NULL",
            ),
            cond(
                pattern.is_some(),
                " AND lower(r.workflow_name) LIKE $7 ESCAPE '\\'",
                " AND $7::text IS NULL",
            ),
            cond(
                after.is_some(),
                " AND (r.created_at, r.id) < ($8, $9)",
                " AND $8::timestamptz IS NULL AND $9::uuid IS NULL",
            ),
            if names.is_some() {
                format!(" AND {}", in_text_list("r.workflow_name", "$13"))
            } else {
                " AND $13::text[] IS NULL".to_string()
            },
        ]
        .concat();
        let rows: Vec<WorkflowExecution> = sqlx::query_as(&sql_owned(format!(
            "SELECT {COLUMNS} FROM workflow_executions r
             WHERE 1 = 1{conds}{}
             ORDER BY r.created_at DESC, r.id DESC LIMIT $10",
            visibility::clause("$11", "$12", &visibility::run("r"))
        )))
        .bind(filter.workflow_id.as_deref())
        .bind(filter.status)
        .bind(filter.since.as_ref().map(ts))
        .bind(filter.until.as_ref().map(ts))
        .bind(id)
        .bind(execution_id)
        .bind(pattern)
        .bind(after.as_ref().map(|(t, _)| ts(t)))
        .bind(after.map(|(_, id)| id))
        .bind(i64::from(limit) + 1)
        .bind(restricted)
        .bind(me)
        .bind(names)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(Page::from_timed_rows(rows, limit, |r| {
            (r.created_at, r.id.0)
        }))
    }

    /// The distinct workflow names of runs that match the LIKE `pattern`, found by a
    /// walk of the name index (one probe per distinct name); `None` when runs carry
    /// more than [`NAME_WALK`] distinct names, for which the walk would cost more
    /// than it saves.
    async fn matching_run_names(&mut self, pattern: &str) -> StoreResult<Option<Vec<String>>> {
        let names: Vec<(String, bool)> = sqlx::query_as(sql!(
            "WITH RECURSIVE names(name, n) AS (
                 SELECT min(workflow_name), 1 FROM workflow_executions
                 UNION ALL
                 SELECT (SELECT min(w.workflow_name) FROM workflow_executions w
                          WHERE w.workflow_name > names.name), n + 1
                   FROM names WHERE names.name IS NOT NULL AND n <= $2)
             SELECT name, lower(name) LIKE $1 ESCAPE '\\' AS hit
               FROM names WHERE name IS NOT NULL"
        ))
        .bind(pattern)
        .bind(NAME_WALK)
        .fetch_all(&mut *self.tx)
        .await?;
        if names.len() as i64 > NAME_WALK {
            return Ok(None);
        }
        Ok(Some(
            names
                .into_iter()
                .filter_map(|(name, hit)| hit.then_some(name))
                .collect(),
        ))
    }

    /// The size and starting position of a page of runs, newest by creation first
    /// (an ID-only cursor gets its run's creation time).
    async fn run_page(
        &mut self,
        page: &PageRequest,
    ) -> StoreResult<(u32, Option<(flowstore_core::time::Timestamp, uuid::Uuid)>)> {
        let (limit, after) = page.time_parts()?;
        let after = rows::time_key(
            &mut self.tx,
            sql!("SELECT created_at FROM workflow_executions WHERE id = $1"),
            after,
        )
        .await?;
        Ok((limit, after))
    }

    async fn insert_execution(&mut self, r: &WorkflowExecution) -> StoreResult<()> {
        ensure_exists(&mut self.tx, "tasks", "task_id", r.task_id.map(|t| t.0)).await?;
        ensure_exists(
            &mut self.tx,
            "workflows",
            "workflow_ref",
            r.workflow_ref.map(|t| t.0),
        )
        .await?;
        ensure_exists(
            &mut self.tx,
            "workflow_versions",
            "workflow_version_id",
            r.workflow_version_id.map(|t| t.0),
        )
        .await?;
        self.insert_execution_rows(std::slice::from_ref(r)).await
    }

    /// Inserts runs whose references the caller has checked, many a statement.
    pub(crate) async fn insert_execution_rows(
        &mut self,
        runs: &[WorkflowExecution],
    ) -> StoreResult<()> {
        // 25 parameters a run: 400 runs a statement stay well under both databases'
        // limit on parameters.
        for chunk in runs.chunks(400) {
            let mut qb =
                QueryBuilder::<Db>::new(format!("INSERT INTO workflow_executions ({COLUMNS}) "));
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(r.id)
                    .push_bind(&r.execution_id)
                    .push_bind(&r.workflow_id)
                    .push_bind(&r.workflow_name)
                    .push_bind(&r.workflow_version)
                    .push_bind(r.task_id)
                    .push_bind(&r.user_id)
                    .push_bind(r.status)
                    .push_bind(r.strategy)
                    .push_bind(r.priority)
                    .push_bind(r.estimated_duration)
                    .push_bind(r.actual_duration)
                    .push_bind(ts_opt(&r.start_time))
                    .push_bind(ts_opt(&r.end_time))
                    .push_bind(&r.result_data)
                    .push_bind(&r.error_data)
                    .push_bind(&r.metadata)
                    .push_bind(ts(&r.created_at))
                    .push_bind(ts(&r.updated_at))
                    .push_bind(r.workflow_ref)
                    .push_bind(r.workflow_version_id)
                    .push_bind(r.failure_strategy)
                    .push_bind(&r.input)
                    .push_bind(ts_opt(&r.deadline_at))
                    .push_bind(ts_opt(&r.cancel_requested_at));
            });
            qb.build().execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// Writes the fields seed 000's update may change, and nothing else.
    async fn write_execution_patch(&mut self, r: &WorkflowExecution) -> StoreResult<()> {
        sqlx::query(sql!(
            "UPDATE workflow_executions SET status = $2, start_time = $3, end_time = $4,
                actual_duration = $5, result_data = $6, error_data = $7, metadata = $8,
                estimated_duration = $9, strategy = $10, priority = $11, updated_at = $12
             WHERE id = $1"
        ))
        .bind(r.id)
        .bind(r.status)
        .bind(ts_opt(&r.start_time))
        .bind(ts_opt(&r.end_time))
        .bind(r.actual_duration)
        .bind(&r.result_data)
        .bind(&r.error_data)
        .bind(&r.metadata)
        .bind(r.estimated_duration)
        .bind(r.strategy)
        .bind(r.priority)
        .bind(ts(&r.updated_at))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn get_attempt(&mut self, id: AttemptId) -> StoreResult<TaskAttempt> {
        rows::one(
            &mut self.tx,
            sql_fmt!("SELECT {ATTEMPT_COLUMNS} FROM task_executions WHERE id = $1 FOR UPDATE"),
            "task attempt",
            id,
        )
        .await
    }
}

#[async_trait]
impl RunRepo for Tx {
    async fn create_execution(&mut self, new: NewExecution) -> StoreResult<WorkflowExecution> {
        let row = new.into_row(time::now())?;
        self.insert_execution(&row).await?;
        self.record_metric(started_metric(&row)).await?;
        Ok(row)
    }

    async fn get_execution(&mut self, id: RunId) -> StoreResult<WorkflowExecution> {
        rows::one(
            &mut self.tx,
            sql_fmt!("SELECT {COLUMNS} FROM workflow_executions WHERE id = $1"),
            "run",
            id,
        )
        .await
    }

    async fn find_by_execution_id(&mut self, execution_id: &str) -> StoreResult<WorkflowExecution> {
        rows::one(
            &mut self.tx,
            sql_fmt!("SELECT {COLUMNS} FROM workflow_executions WHERE execution_id = $1"),
            "run",
            execution_id,
        )
        .await
    }

    async fn update_execution(
        &mut self,
        execution_id: &str,
        patch: ExecutionPatch,
    ) -> StoreResult<WorkflowExecution> {
        // Read-modify-write: the row stays locked until the caller commits.
        let current: WorkflowExecution = rows::one(
            &mut self.tx,
            sql_fmt!(
                "SELECT {COLUMNS} FROM workflow_executions WHERE execution_id = $1 FOR UPDATE"
            ),
            "run",
            execution_id,
        )
        .await?;
        let row = patch.apply(&current, time::now())?;
        self.write_execution_patch(&row).await?;
        if let Some(metric) = duration_metric(&current, &row) {
            self.record_metric(metric).await?;
        }
        Ok(row)
    }

    async fn list_by_workflow(
        &mut self,
        workflow_id: &str,
        status: Option<RunStatus>,
        page: &PageRequest,
    ) -> StoreResult<Page<WorkflowExecution>> {
        // Newest first by creation time, the ID breaking ties: seed 000's clients
        // insert runs with random (v4) IDs, whose order means nothing.
        let (limit, after) = self.run_page(page).await?;
        // Separate statements rather than `($2 IS NULL OR status = $2)` and
        // `($3 IS NULL OR …)`, so that each one walks its own index
        // (workflow_id[, status], created_at, id) backwards and starts at the cursor
        // instead of stepping over every run before it (a generic plan cannot drop
        // the OR).
        let status_cond = if status.is_some() {
            "AND status = $2"
        } else {
            "AND $2::text IS NULL"
        };
        let after_cond = if after.is_some() {
            "AND (created_at, id) < ($3, $4::uuid)"
        } else {
            "AND $3::timestamptz IS NULL AND $4::uuid IS NULL"
        };
        let rows: Vec<WorkflowExecution> = sqlx::query_as(&sql_owned(format!(
            "SELECT {COLUMNS} FROM workflow_executions
             WHERE workflow_id = $1 {status_cond} {after_cond}
             ORDER BY created_at DESC, id DESC LIMIT $5"
        )))
        .bind(workflow_id)
        .bind(status)
        .bind(ts_opt(&after.map(|(at, _)| at)))
        .bind(after.map(|(_, id)| id))
        .bind(i64::from(limit) + 1)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(Page::from_timed_rows(rows, limit, |r| {
            (r.created_at, r.id.0)
        }))
    }

    async fn list_runs(
        &mut self,
        filter: &RunFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<WorkflowExecution>> {
        filter.check()?;
        let (limit, after) = self.run_page(page).await?;
        let Some(text) = filter.text.as_deref().map(str::trim) else {
            return self.runs_where(filter, RunText::Any, limit, after).await;
        };
        // A run's ID or execution ID is looked up by its index first; only text that
        // names no run that way is searched for in workflow names, a walk of the
        // newest runs until a page is full.
        let exact = RunText::Exact {
            id: uuid::Uuid::try_parse(text).ok(),
            execution_id: text,
        };
        let found = self.runs_where(filter, exact, limit, after).await?;
        if !found.items.is_empty() {
            return Ok(found);
        }
        let escaped = text
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = format!("%{escaped}%");
        // Matching names are looked for among the few distinct names first, so that
        // a text no run carries costs a walk of the names rather than of every run.
        let name = match self.matching_run_names(&pattern).await? {
            Some(names) if names.is_empty() => {
                return Ok(Page::from_timed_rows(
                    Vec::new(),
                    limit,
                    |r: &WorkflowExecution| (r.created_at, r.id.0),
                ))
            }
            Some(names) => RunText::Names(names),
            None => RunText::Name(pattern),
        };
        self.runs_where(filter, name, limit, after).await
    }

    async fn find_by_task(&mut self, task_id: TaskId) -> StoreResult<Vec<WorkflowExecution>> {
        Ok(sqlx::query_as(sql_fmt!(
            "SELECT {COLUMNS} FROM workflow_executions WHERE task_id = $1
             ORDER BY created_at DESC, id DESC"
        ))
        .bind(task_id)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn execution_statistics(
        &mut self,
        filter: &StatsFilter,
    ) -> StoreResult<ExecutionStatistics> {
        // One workflow's statistics come from the counters the triggers keep (a few
        // rows, whatever the number of runs) instead of a scan of its runs; they
        // count the same rows, so the answer is the same.
        if let Some(workflow_id) = &filter.workflow_id {
            return flowstore_core::model::engine::EngineStore::select_workflow_statistics(
                self,
                workflow_id,
                filter.status,
            )
            .await;
        }
        // The mean is the exact integer sum divided once, so both backends return the
        // same double (AVG would return NUMERIC on PostgreSQL).
        Ok(sqlx::query_as(sql!("SELECT count(*) AS total_executions,
                    count(CASE WHEN status = 'completed' THEN 1 END) AS completed_executions,
                    count(CASE WHEN status = 'failed' THEN 1 END) AS failed_executions,
                    CAST(sum(actual_duration) AS double precision) / NULLIF(count(actual_duration), 0)
                        AS average_duration,
                    min(actual_duration) AS min_duration,
                    max(actual_duration) AS max_duration
             FROM workflow_executions
             WHERE ($1::text IS NULL OR workflow_id = $1) AND ($2::text IS NULL OR status = $2)"))
        .bind(&filter.workflow_id)
        .bind(filter.status)
        .fetch_one(&mut *self.tx)
        .await?)
    }

    async fn delete_execution(&mut self, execution_id: &str) -> StoreResult<()> {
        let done = sqlx::query(sql!(
            "DELETE FROM workflow_executions WHERE execution_id = $1"
        ))
        .bind(execution_id)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("run", execution_id));
        }
        Ok(())
    }
}

#[async_trait]
impl AttemptRepo for Tx {
    async fn record_attempt(&mut self, new: NewAttempt) -> StoreResult<TaskAttempt> {
        let a = new.into_row(time::now())?;
        ensure_exists(&mut self.tx, "tasks", "task_id", Some(a.task_id.0)).await?;
        ensure_exists(
            &mut self.tx,
            "workflow_executions",
            "run_id",
            a.run_id.map(|r| r.0),
        )
        .await?;
        sqlx::query(sql_fmt!(
            "INSERT INTO task_executions ({ATTEMPT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, \
             $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
        ))
        .bind(a.id)
        .bind(a.task_id)
        .bind(a.run_id)
        .bind(a.attempt)
        .bind(&a.agent_type)
        .bind(&a.worker_id)
        .bind(a.execution_status)
        .bind(&a.input_context)
        .bind(&a.output_results)
        .bind(&a.error_details)
        .bind(ts_opt(&a.started_at))
        .bind(ts_opt(&a.completed_at))
        .bind(ts_opt(&a.lease_expires_at))
        .bind(ts_opt(&a.heartbeat_at))
        .bind(a.duration_ms)
        .bind(a.memory_usage_mb)
        .bind(a.cpu_time_ms)
        .bind(ts(&a.created_at))
        .bind(ts(&a.updated_at))
        .execute(&mut *self.tx)
        .await?;
        Ok(a)
    }

    async fn finish_attempt(
        &mut self,
        id: AttemptId,
        outcome: AttemptOutcome,
    ) -> StoreResult<TaskAttempt> {
        let current = self.get_attempt(id).await?;
        let a = outcome.apply(&current, time::now())?;
        sqlx::query(sql!(
            "UPDATE task_executions SET execution_status = $2, output_results = $3,
                error_details = $4, completed_at = $5, duration_ms = $6, memory_usage_mb = $7,
                cpu_time_ms = $8, updated_at = $9
             WHERE id = $1"
        ))
        .bind(a.id)
        .bind(a.execution_status)
        .bind(&a.output_results)
        .bind(&a.error_details)
        .bind(ts_opt(&a.completed_at))
        .bind(a.duration_ms)
        .bind(a.memory_usage_mb)
        .bind(a.cpu_time_ms)
        .bind(ts(&a.updated_at))
        .execute(&mut *self.tx)
        .await?;
        Ok(a)
    }

    async fn list_attempts(&mut self, task_id: TaskId) -> StoreResult<Vec<TaskAttempt>> {
        Ok(sqlx::query_as(sql_fmt!(
            "SELECT {ATTEMPT_COLUMNS} FROM task_executions WHERE task_id = $1 ORDER BY attempt"
        ))
        .bind(task_id)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn list_run_attempts(&mut self, run_id: RunId) -> StoreResult<Vec<TaskAttempt>> {
        Ok(sqlx::query_as(sql_fmt!(
            "SELECT {ATTEMPT_COLUMNS} FROM task_executions WHERE run_id = $1
             ORDER BY created_at, task_id, attempt"
        ))
        .bind(run_id)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn record_usage(
        &mut self,
        task_id: TaskId,
        attempt: i32,
        usage: Usage,
    ) -> StoreResult<()> {
        usage.check()?;
        let done = sqlx::query(sql!(
            "UPDATE task_executions
                SET memory_usage_mb = coalesce($3, memory_usage_mb),
                    cpu_time_ms = coalesce($4, cpu_time_ms)
              WHERE task_id = $1 AND attempt = $2"
        ))
        .bind(task_id)
        .bind(attempt)
        .bind(usage.memory_usage_mb)
        .bind(usage.cpu_time_ms)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found(
                "attempt",
                format!("{task_id}/{attempt}"),
            ));
        }
        Ok(())
    }

    async fn task_execution_summary(&mut self) -> StoreResult<Vec<AgentSummary>> {
        Ok(sqlx::query_as(sql!(
            "SELECT agent_type, total_executions, completed_executions, failed_executions,
                    average_duration_ms, average_memory_mb, average_cpu_time_ms
             FROM task_execution_summary ORDER BY agent_type COLLATE \"C\""
        ))
        .fetch_all(&mut *self.tx)
        .await?)
    }
}

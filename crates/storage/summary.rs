//! Summaries and time-ranged queries (`SummaryRepo`).

use async_trait::async_trait;
use chrono::{DurationRound, TimeDelta};
use flowstore_core::ids::{ProjectId, WorkflowId};
use flowstore_core::model::registry::SystemMetric;
use flowstore_core::model::run::RunStatus;
use flowstore_core::model::summary::{
    Bucket, RunBucket, RunCounts, RunRollupRow, RunSeriesFilter, SummaryRepo, SystemMetricFilter,
    WorkerSeen,
};
use flowstore_core::model::task::query::TaskProgress;
use flowstore_core::model::task::TaskStatus;
use flowstore_core::model::viewer::Viewer;
use flowstore_core::time::Timestamp;
use flowstore_core::{Page, PageRequest, StoreError, StoreResult};
use uuid::Uuid;

use crate::dialect::{day_bucket, greatest, sql, sql_owned, ts, Db, Tx};
use crate::rows;
use crate::visibility;

impl Tx {
    /// A page of one of seed 003's views of a project's rows, newest ID first, with
    /// only the rows `viewer` may read: `select` reads the view as `v` joined to the
    /// table its rows come from, under the alias the condition `visible` names (see
    /// [`visibility`]); `project_id` keeps one project's rows.
    pub(crate) async fn project_view_page<T>(
        &mut self,
        select: &str,
        visible: &str,
        project_id: Option<ProjectId>,
        viewer: &Option<Viewer>,
        page: &PageRequest,
        id_of: impl Fn(&T) -> Uuid,
    ) -> StoreResult<Page<T>>
    where
        T: for<'r> sqlx::FromRow<'r, <Db as sqlx::Database>::Row> + Send + Unpin,
    {
        let (restricted, me) = visibility::binds(viewer);
        rows::page_with(
            &mut self.tx,
            &sql_owned(format!(
                "{select}
              WHERE ($1::uuid IS NULL OR v.project_id = $1) AND ($2::uuid IS NULL OR v.id < $2){}
              ORDER BY v.id DESC LIMIT $3",
                visibility::clause("$4", "$5", visible)
            )),
            page,
            |q, after, limit| {
                q.bind(project_id)
                    .bind(after)
                    .bind(limit)
                    .bind(restricted)
                    .bind(me)
            },
            id_of,
        )
        .await
    }
}

#[async_trait]
impl SummaryRepo for Tx {
    async fn project_progress(&mut self, project_id: ProjectId) -> StoreResult<TaskProgress> {
        let found: Option<i32> = sqlx::query_scalar(sql!("SELECT 1 FROM projects WHERE id = $1"))
            .bind(project_id)
            .fetch_optional(&mut *self.tx)
            .await?;
        if found.is_none() {
            return Err(StoreError::not_found("project", project_id));
        }
        let rows: Vec<(TaskStatus, i64)> = sqlx::query_as(sql!(
            "SELECT status, count(*) FROM tasks WHERE project_id = $1 GROUP BY status"
        ))
        .bind(project_id)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(TaskProgress::from_counts(&rows))
    }

    async fn run_counts(&mut self, workflow_id: &str) -> StoreResult<RunCounts> {
        let rows: Vec<(RunStatus, i64)> = sqlx::query_as(sql!(
            "SELECT status, sum(executions)::bigint FROM workflow_stats
              WHERE workflow_id = $1 GROUP BY status HAVING sum(executions) > 0"
        ))
        .bind(workflow_id)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(RunCounts::from_counts(&rows))
    }

    async fn workflow_has_runs(&mut self, id: WorkflowId) -> StoreResult<bool> {
        let found: Option<i32> = sqlx::query_scalar(sql!(
            "SELECT 1 FROM workflow_executions WHERE workflow_ref = $1
             UNION ALL SELECT 1 FROM workflow_executions WHERE workflow_id = $2 LIMIT 1"
        ))
        .bind(id)
        .bind(id.to_string())
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(found.is_some())
    }

    async fn run_series(&mut self, filter: &RunSeriesFilter) -> StoreResult<Vec<RunBucket>> {
        filter.check()?;
        let (width, point) = match filter.bucket {
            Bucket::Hour => (TimeDelta::hours(1), "bucket_start".to_string()),
            Bucket::Day => (TimeDelta::days(1), day_bucket("bucket_start")),
        };
        let since = filter.since.duration_trunc(width).unwrap_or(filter.since);
        let (restricted, me) = visibility::binds(&filter.viewer);
        let rows: Vec<RunRollupRow> = sqlx::query_as(&sql_owned(format!(
            "SELECT {point} AS at, status, sum(runs)::bigint, sum(duration_count)::bigint,
                    sum(duration_sum)::bigint, min(duration_min)::bigint,
                    max(duration_max)::bigint
               FROM run_rollups rr
              WHERE bucket_start >= $1 AND bucket_start < $2
                AND ($3::text IS NULL OR workflow_id = $3){}
              GROUP BY 1, 2 ORDER BY 1",
            visibility::clause("$4", "$5", &visibility::workflow_named("rr.workflow_id"))
        )))
        .bind(ts(&since))
        .bind(ts(&filter.until))
        .bind(filter.workflow_id.as_deref())
        .bind(restricted)
        .bind(me)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(RunBucket::fold(rows))
    }

    async fn recent_durations(&mut self, workflow_id: &str, limit: u32) -> StoreResult<Vec<i64>> {
        // The newest completed runs by the (workflow_id, status, created_at, id)
        // index; those without a duration are left out after the walk.
        Ok(sqlx::query_scalar(sql!(
            "SELECT CAST(actual_duration AS BIGINT) FROM (
                 SELECT actual_duration FROM workflow_executions
                  WHERE workflow_id = $1 AND status = 'completed'
                  ORDER BY created_at DESC, id DESC LIMIT $2) recent
              WHERE actual_duration IS NOT NULL"
        ))
        .bind(workflow_id)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn workers_seen(&mut self, since: Timestamp, limit: u32) -> StoreResult<Vec<WorkerSeen>> {
        // Attempts made by the engine have time-ordered (v7) IDs: the ID bound reads
        // the window as a range of the primary key, with no index of its own that
        // every attempt would have to keep up; `created_at` keeps out rows of other
        // clients whose random IDs fall in that range.
        let lowest = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            since.timestamp().max(0) as u64,
            0,
        ));
        let seen = greatest(
            &greatest("created_at", "coalesce(heartbeat_at, created_at)"),
            "coalesce(completed_at, created_at)",
        );
        Ok(sqlx::query_as(&sql_owned(format!(
            "SELECT worker_id, max({seen}) AS last_seen_at,
                    sum(CASE WHEN execution_status = 'running' THEN 1 ELSE 0 END)::bigint AS running,
                    sum(CASE WHEN execution_status = 'completed' THEN 1 ELSE 0 END)::bigint
                        AS completed,
                    sum(CASE WHEN execution_status IN ('failed', 'timed_out', 'lease_expired')
                             THEN 1 ELSE 0 END)::bigint AS failed,
                    sum(CASE WHEN execution_status = 'lease_expired' THEN 1 ELSE 0 END)::bigint
                        AS lease_expired
               FROM task_executions
              WHERE worker_id IS NOT NULL
                AND ((id >= $1 AND created_at >= $2) OR execution_status = 'running')
              GROUP BY worker_id ORDER BY last_seen_at DESC, worker_id LIMIT $3"
        )))
        .bind(lowest)
        .bind(ts(&since))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn page_system_metrics(
        &mut self,
        filter: &SystemMetricFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<SystemMetric>> {
        filter.check()?;
        rows::page_with(
            &mut self.tx,
            sql!(
                "SELECT id, metric_name, metric_value, metric_unit, component, labels, recorded_at
               FROM system_metrics
              WHERE ($1::text IS NULL OR metric_name = $1)
                AND ($2::text IS NULL OR component = $2)
                AND ($3::timestamptz IS NULL OR recorded_at >= $3)
                AND ($4::timestamptz IS NULL OR recorded_at < $4)
                AND ($5::uuid IS NULL OR id < $5)
              ORDER BY id DESC LIMIT $6"
            ),
            page,
            |q, after, limit| {
                q.bind(filter.name.as_deref().map(str::trim))
                    .bind(filter.component.as_deref().map(str::trim))
                    .bind(filter.since.as_ref().map(ts))
                    .bind(filter.until.as_ref().map(ts))
                    .bind(after)
                    .bind(limit)
            },
            |m: &SystemMetric| m.id.0,
        )
        .await
    }
}

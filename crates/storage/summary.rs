//! Summaries and time-ranged queries (`SummaryRepo`).

use async_trait::async_trait;
use flowstore_core::ids::{ProjectId, WorkflowId};
use flowstore_core::model::registry::SystemMetric;
use flowstore_core::model::run::RunStatus;
use flowstore_core::model::summary::{RunCounts, SummaryRepo, SystemMetricFilter};
use flowstore_core::model::task::query::TaskProgress;
use flowstore_core::model::task::TaskStatus;
use flowstore_core::{Page, PageRequest, StoreError, StoreResult};

use crate::dialect::{sql, ts, Tx};

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

    async fn page_system_metrics(
        &mut self,
        filter: &SystemMetricFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<SystemMetric>> {
        filter.check()?;
        let (limit, after) = page.parts()?;
        let rows: Vec<SystemMetric> = sqlx::query_as(sql!(
            "SELECT id, metric_name, metric_value, metric_unit, component, labels, recorded_at
               FROM system_metrics
              WHERE ($1::text IS NULL OR metric_name = $1)
                AND ($2::text IS NULL OR component = $2)
                AND ($3::timestamptz IS NULL OR recorded_at >= $3)
                AND ($4::timestamptz IS NULL OR recorded_at < $4)
                AND ($5::uuid IS NULL OR id < $5)
              ORDER BY id DESC LIMIT $6"
        ))
        .bind(filter.name.as_deref().map(str::trim))
        .bind(filter.component.as_deref().map(str::trim))
        .bind(filter.since.as_ref().map(ts))
        .bind(filter.until.as_ref().map(ts))
        .bind(after)
        .bind(i64::from(limit) + 1)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(Page::from_rows(rows, limit, |m| m.id.0))
    }
}

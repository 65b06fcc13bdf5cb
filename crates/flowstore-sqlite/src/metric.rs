//! SQLite storage for seed 000's workflow metrics and their hourly rollups.

use flowstore_core::model::metric::{
    hour_bucket, metric_limit, rollup_type, AggregateFilter, MetricAggregate, MetricType,
    NewMetric, WorkflowMetric,
};
use flowstore_core::{time, StoreError, StoreResult};

use crate::backend::SqliteTx;
use crate::error::map_err;
use crate::util::{ts, ts_opt};

const COLUMNS: &str = "id, execution_id, metric_name, metric_value, metric_unit, metric_type, \
                       metadata, recorded_at";

impl SqliteTx {
    /// Inserts a sample and, when it has a value, folds it into its hour's rollup, in
    /// the caller's transaction so the rollup never disagrees with the samples.
    pub(crate) async fn insert_metric(&mut self, new: NewMetric) -> StoreResult<WorkflowMetric> {
        let m = new.into_row(time::now())?;
        if let Some(e) = &m.execution_id {
            // The reference is by execution_id, not by row ID, so util's check does
            // not apply.
            let found: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM workflow_executions WHERE execution_id = ?1")
                    .bind(e)
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err(map_err)?;
            if found.is_none() {
                return Err(StoreError::invalid(
                    "execution_id",
                    format!("refers to no existing run ({e})"),
                ));
            }
        }
        sqlx::query(&format!(
            "INSERT INTO workflow_metrics ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ))
        .bind(m.id)
        .bind(&m.execution_id)
        .bind(&m.metric_name)
        .bind(m.metric_value)
        .bind(&m.metric_unit)
        .bind(m.metric_type)
        .bind(&m.metadata)
        .bind(ts(&m.recorded_at))
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        if let Some(v) = m.metric_value {
            sqlx::query(
                "INSERT INTO metric_rollups (bucket_start, metric_name, metric_type,
                    sample_count, value_sum, value_min, value_max)
                 VALUES (?1, ?2, ?3, 1, ?4, ?4, ?4)
                 ON CONFLICT (metric_name, metric_type, bucket_start, shard) DO UPDATE SET
                    sample_count = sample_count + 1,
                    value_sum = value_sum + excluded.value_sum,
                    value_min = min(coalesce(value_min, excluded.value_min), excluded.value_min),
                    value_max = max(coalesce(value_max, excluded.value_max), excluded.value_max)",
            )
            .bind(ts(&hour_bucket(m.recorded_at)))
            .bind(&m.metric_name)
            .bind(rollup_type(m.metric_type))
            .bind(v)
            .execute(&mut *self.tx)
            .await
            .map_err(map_err)?;
        }
        Ok(m)
    }

    pub(crate) async fn select_metrics(
        &mut self,
        execution_id: &str,
        metric_type: Option<MetricType>,
        limit: Option<u32>,
    ) -> StoreResult<Vec<WorkflowMetric>> {
        let limit = metric_limit(limit)?;
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM workflow_metrics
             WHERE execution_id = ?1 AND (?2 IS NULL OR metric_type = ?2)
             ORDER BY recorded_at DESC, id DESC LIMIT ?3"
        ))
        .bind(execution_id)
        .bind(metric_type)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)
    }

    pub(crate) async fn aggregate_raw(
        &mut self,
        f: &AggregateFilter,
    ) -> StoreResult<Vec<MetricAggregate>> {
        // NULL kinds sort last, as PostgreSQL sorts them.
        sqlx::query_as(
            "SELECT metric_name, metric_type, avg(metric_value) AS average_value,
                    min(metric_value) AS min_value, max(metric_value) AS max_value,
                    count(*) AS count
             FROM workflow_metrics
             WHERE (?1 IS NULL OR metric_name = ?1) AND (?2 IS NULL OR metric_type = ?2)
               AND (?3 IS NULL OR recorded_at >= ?3)
             GROUP BY metric_name, metric_type
             ORDER BY metric_name, metric_type IS NULL, metric_type",
        )
        .bind(&f.metric_name)
        .bind(f.metric_type)
        .bind(ts_opt(&f.since))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)
    }

    pub(crate) async fn aggregate_rollups(
        &mut self,
        f: &AggregateFilter,
    ) -> StoreResult<Vec<MetricAggregate>> {
        // Buckets that start at or after `since`: exact when `since` is on the hour.
        sqlx::query_as(
            "SELECT metric_name, NULLIF(metric_type, '') AS metric_type,
                    sum(value_sum) / sum(sample_count) AS average_value,
                    min(value_min) AS min_value, max(value_max) AS max_value,
                    sum(sample_count) AS count
             FROM metric_rollups
             WHERE (?1 IS NULL OR metric_name = ?1) AND (?2 IS NULL OR metric_type = ?2)
               AND (?3 IS NULL OR bucket_start >= ?3)
             GROUP BY metric_name, metric_type
             ORDER BY metric_name, metric_type = '', metric_type",
        )
        .bind(&f.metric_name)
        .bind(f.metric_type)
        .bind(ts_opt(&f.since))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)
    }
}

//! Storage for seed 000's workflow metrics and their hourly rollups.

use async_trait::async_trait;
use flowstore_core::model::metric::{
    metric_limit, AggregateFilter, MetricAggregate, MetricType, NewMetric, WorkflowMetric,
};
use flowstore_core::model::run::MetricRepo;
use flowstore_core::{time, StoreError, StoreResult};

use crate::dialect::{sql, sql_fmt, ts, ts_opt, Db, Tx};
use sqlx::QueryBuilder;

/// Columns inserted, in order.
const INSERT_COLUMNS: &str = "id, execution_id, metric_name, metric_value, metric_unit, \
                              metric_type, metadata, recorded_at";
/// Columns read: the NUMERIC value comes back as a double.
const COLUMNS: &str = "id, execution_id, metric_name, metric_value::float8 AS metric_value, \
                       metric_unit, metric_type, metadata, recorded_at";

impl Tx {
    /// Inserts samples whose run the caller has checked, many a statement (each
    /// folded into its hour's rollup by the database, as `record_metric` says).
    pub(crate) async fn insert_metric_rows(
        &mut self,
        metrics: &[WorkflowMetric],
    ) -> StoreResult<()> {
        // 8 parameters a sample.
        for chunk in metrics.chunks(1000) {
            let mut qb = QueryBuilder::<Db>::new(format!(
                "INSERT INTO workflow_metrics ({INSERT_COLUMNS}) "
            ));
            qb.push_values(chunk, |mut b, m| {
                b.push_bind(m.id)
                    .push_bind(&m.execution_id)
                    .push_bind(&m.metric_name)
                    .push_bind(m.metric_value)
                    .push_bind(&m.metric_unit)
                    .push_bind(m.metric_type)
                    .push_bind(&m.metadata)
                    .push_bind(ts(&m.recorded_at));
            });
            qb.build().execute(&mut *self.tx).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl MetricRepo for Tx {
    /// Inserts a sample. The database folds a sample with a value into its hour's
    /// rollup (a trigger of migration 0016), in the same transaction, so that samples
    /// other clients insert directly (seed 000's `recordMetric`) are counted too.
    async fn record_metric(&mut self, new: NewMetric) -> StoreResult<WorkflowMetric> {
        let m = new.into_row(time::now())?;
        if let Some(e) = &m.execution_id {
            // The reference is by execution_id, not by row ID, so util's check does
            // not apply.
            let found: Option<i32> = sqlx::query_scalar(sql!(
                "SELECT 1 FROM workflow_executions WHERE execution_id = $1"
            ))
            .bind(e)
            .fetch_optional(&mut *self.tx)
            .await?;
            if found.is_none() {
                return Err(StoreError::invalid(
                    "execution_id",
                    format!("refers to no existing run ({e})"),
                ));
            }
        }
        self.insert_metric_rows(std::slice::from_ref(&m)).await?;
        Ok(m)
    }

    async fn metrics_for_execution(
        &mut self,
        execution_id: &str,
        metric_type: Option<MetricType>,
        limit: Option<u32>,
    ) -> StoreResult<Vec<WorkflowMetric>> {
        let limit = metric_limit(limit)?;
        Ok(sqlx::query_as(sql_fmt!(
            "SELECT {COLUMNS} FROM workflow_metrics
             WHERE execution_id = $1 AND ($2::text IS NULL OR metric_type = $2)
             ORDER BY recorded_at DESC, id DESC LIMIT $3"
        ))
        .bind(execution_id)
        .bind(metric_type)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn aggregated_metrics(
        &mut self,
        f: &AggregateFilter,
    ) -> StoreResult<Vec<MetricAggregate>> {
        // Byte order of names, as SQLite sorts them; NULL kinds last.
        Ok(sqlx::query_as(sql!(
            "SELECT metric_name, metric_type, avg(metric_value)::float8 AS average_value,
                    min(metric_value)::float8 AS min_value,
                    max(metric_value)::float8 AS max_value,
                    count(*) AS count
             FROM workflow_metrics
             WHERE ($1::text IS NULL OR metric_name = $1) AND ($2::text IS NULL OR metric_type = $2)
               AND ($3::timestamptz IS NULL OR recorded_at >= $3)
             GROUP BY metric_name, metric_type
             ORDER BY metric_name COLLATE \"C\", metric_type IS NULL, metric_type"
        ))
        .bind(&f.metric_name)
        .bind(f.metric_type)
        .bind(ts_opt(&f.since))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn aggregated_metrics_from_rollups(
        &mut self,
        f: &AggregateFilter,
    ) -> StoreResult<Vec<MetricAggregate>> {
        // Buckets that start at or after `since`: exact when `since` is on the hour.
        Ok(sqlx::query_as(sql!(
            "SELECT metric_name, NULLIF(metric_type, '') AS metric_type,
                    sum(value_sum) / sum(sample_count)::float8 AS average_value,
                    min(value_min) AS min_value, max(value_max) AS max_value,
                    sum(sample_count)::int8 AS count
             FROM metric_rollups
             WHERE ($1::text IS NULL OR metric_name = $1) AND ($2::text IS NULL OR metric_type = $2)
               AND ($3::timestamptz IS NULL OR bucket_start >= $3)
             GROUP BY metric_name, metric_type
             ORDER BY metric_name COLLATE \"C\", metric_type = '', metric_type"
        ))
        .bind(&f.metric_name)
        .bind(f.metric_type)
        .bind(ts_opt(&f.since))
        .fetch_all(&mut *self.tx)
        .await?)
    }
}

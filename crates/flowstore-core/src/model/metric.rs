//! Seed 000's workflow metrics: samples recorded against runs (or none), their hourly
//! rollups and the aggregate answers over either.

use chrono::{DurationRound, TimeDelta};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::MetricId;
use crate::model::run::{RunStatus, WorkflowExecution};
use crate::time::{self, Timestamp};
use crate::{text_enum, validate, StoreError, StoreResult};

text_enum!(
    /// What a metric measures (seed 000's `metric_type`).
    MetricType, "metric_type" {
        /// Speed and counts of work.
        Performance => "performance",
        /// Use of memory, CPU and the like.
        Resource => "resource",
        /// How good the output is.
        Quality => "quality",
        /// Anything else.
        Custom => "custom",
    }
);

/// The largest magnitude PostgreSQL's `DECIMAL(15, 4)` column holds (exclusive).
pub const MAX_METRIC_VALUE: f64 = 1e11;
/// How many samples [`crate::model::run::RunRepo::metrics_for_execution`] returns unless
/// told otherwise.
pub const DEFAULT_METRIC_LIMIT: u32 = 100;
/// The most samples one call returns.
pub const MAX_METRIC_LIMIT: u32 = 1000;

/// A metric sample as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowMetric {
    /// Its ID.
    pub id: MetricId,
    /// The run it measures, by `execution_id`.
    pub execution_id: Option<String>,
    /// What is measured.
    pub metric_name: String,
    /// The value, rounded to 4 decimals.
    pub metric_value: Option<f64>,
    /// Its unit.
    pub metric_unit: Option<String>,
    /// Its kind.
    pub metric_type: Option<MetricType>,
    /// Free-form details (a JSON object).
    pub metadata: Option<Value>,
    /// When it was measured.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub recorded_at: Timestamp,
}

/// What a caller gives to record a metric (seed 000's `recordMetric`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewMetric {
    /// The run measured; must exist when given.
    pub execution_id: Option<String>,
    /// What is measured; required, at most 255 characters.
    pub metric_name: String,
    /// The value: finite, below 10^11 in magnitude, kept to 4 decimals.
    pub metric_value: Option<f64>,
    /// The unit, at most 50 characters.
    pub metric_unit: Option<String>,
    /// The kind.
    pub metric_type: Option<MetricType>,
    /// Details (a JSON object); `{}` when absent, as in seed 000.
    pub metadata: Option<Value>,
    /// When it was measured; now when absent.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub recorded_at: Option<Timestamp>,
}

/// Filters of seed 000's `getAggregatedMetrics`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AggregateFilter {
    /// Only this metric.
    pub metric_name: Option<String>,
    /// Only this kind.
    pub metric_type: Option<MetricType>,
    /// Only samples recorded at or after this instant.
    pub since: Option<Timestamp>,
}

/// One group of seed 000's aggregated metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricAggregate {
    /// The metric.
    pub metric_name: String,
    /// The kind.
    pub metric_type: Option<MetricType>,
    /// Mean of the values present.
    pub average_value: Option<f64>,
    /// Smallest value.
    pub min_value: Option<f64>,
    /// Largest value.
    pub max_value: Option<f64>,
    /// Samples counted (from raw samples, also those without a value).
    pub count: i64,
}

impl NewMetric {
    /// Checks every field and builds the row to insert, stamped `now` unless it says
    /// when it was measured. The value is rounded to the 4 decimals PostgreSQL keeps,
    /// so both backends store and return the same number.
    pub fn into_row(self, now: Timestamp) -> StoreResult<WorkflowMetric> {
        let execution_id = match self.execution_id {
            Some(e) => Some(validate::required_text("execution_id", &e, 255)?),
            None => None,
        };
        let metric_value = match self.metric_value {
            Some(v) if !v.is_finite() => {
                return Err(StoreError::invalid(
                    "metric_value",
                    "must be a finite number",
                ))
            }
            // Checked after rounding: a value just below the bound can round up to it.
            Some(v) if round4(v).abs() >= MAX_METRIC_VALUE => {
                return Err(StoreError::invalid(
                    "metric_value",
                    "must be below 10^11 in magnitude",
                ))
            }
            Some(v) => Some(round4(v)),
            None => None,
        };
        let metadata = validate::object_or_empty("metadata", self.metadata)?;
        Ok(WorkflowMetric {
            id: MetricId::new(),
            execution_id,
            metric_name: validate::required_text("metric_name", &self.metric_name, 255)?,
            metric_value,
            metric_unit: validate::optional_text("metric_unit", self.metric_unit.as_deref(), 50)?,
            metric_type: self.metric_type,
            metadata: Some(metadata),
            recorded_at: self.recorded_at.map(time::truncate).unwrap_or(now),
        })
    }
}

/// `v` rounded to 4 decimals, half away from zero, as PostgreSQL rounds into
/// `DECIMAL(15, 4)`.
fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

/// The page size asked for, checked.
pub fn metric_limit(limit: Option<u32>) -> StoreResult<u32> {
    let limit = limit.unwrap_or(DEFAULT_METRIC_LIMIT);
    if limit == 0 || limit > MAX_METRIC_LIMIT {
        return Err(StoreError::invalid(
            "limit",
            format!("{limit} is outside 1..={MAX_METRIC_LIMIT}"),
        ));
    }
    Ok(limit)
}

/// The start of the hour holding `t`: the rollup bucket of a sample.
pub fn hour_bucket(t: Timestamp) -> Timestamp {
    t.duration_trunc(TimeDelta::hours(1)).unwrap_or(t)
}

/// The rollup key's kind: the empty string stands for "no kind", since the key
/// cannot hold NULL.
pub fn rollup_type(t: Option<MetricType>) -> &'static str {
    t.map(|t| t.as_str()).unwrap_or("")
}

/// Seed 000's `execution_started` metric, recorded with every new run.
pub fn started_metric(run: &WorkflowExecution) -> NewMetric {
    NewMetric {
        execution_id: Some(run.execution_id.clone()),
        metric_name: "execution_started".into(),
        metric_value: Some(1.0),
        metric_unit: Some("count".into()),
        metric_type: Some(MetricType::Performance),
        metadata: Some(serde_json::json!({"status": "started"})),
        recorded_at: Some(run.created_at),
    }
}

/// Seed 000's `execution_duration` metric, due when an update moves a run into
/// `completed` and its duration is known. As in seed 000's `updateExecution`, only a
/// completed run records it: the metric's aggregates then mean "how long a successful
/// run takes", and a failed, cancelled or timed-out run's duration stays in its
/// `actual_duration` and in the statistics per status.
pub fn duration_metric(before: &WorkflowExecution, after: &WorkflowExecution) -> Option<NewMetric> {
    let finishing = after.status == RunStatus::Completed && after.status != before.status;
    let duration = after.actual_duration?;
    finishing.then(|| NewMetric {
        execution_id: Some(after.execution_id.clone()),
        metric_name: "execution_duration".into(),
        metric_value: Some(f64::from(duration)),
        metric_unit: Some("milliseconds".into()),
        metric_type: Some(MetricType::Performance),
        metadata: Some(serde_json::json!({"status": after.status.as_str()})),
        recorded_at: Some(after.updated_at),
    })
}

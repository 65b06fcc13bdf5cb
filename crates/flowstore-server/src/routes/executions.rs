//! Seed 000's execution repository over HTTP, its metrics, and the handler registry.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use flowstore_core::model::metric::{AggregateFilter, MetricAggregate, MetricType, WorkflowMetric};
use flowstore_core::model::run::{
    ExecutionPatch, ExecutionStatistics, NewExecution, RunStatus, StatsFilter, WorkflowExecution,
};
use flowstore_core::time::Timestamp;
use flowstore_core::Page;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access;
use crate::auth::Caller;
use crate::error::{ApiResult, Json, Path, Problem, Query};
use crate::openapi as doc;
use crate::state::AppState;
use flowstore_core::model::workflow::SharePermission;

/// This module's routes with their OpenAPI paths, each declared once, on its handler
/// (the layers they run under are [`crate::app`]'s).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update))
        .routes(routes!(statistics))
        .routes(routes!(metrics))
        .routes(routes!(aggregate))
}

/// Filters and page of `GET /executions`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListExecutions {
    /// The workflow whose executions to list (required).
    pub workflow_id: Option<String>,
    /// Only executions in this status.
    pub status: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1..=1000.
    pub limit: Option<u32>,
}

/// Filters of `GET /executions/statistics`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Only executions of this workflow.
    pub workflow_id: Option<String>,
    /// Only executions in this status.
    pub status: Option<String>,
}

/// Filters of `GET /executions/{execution_id}/metrics`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// Only metrics of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub metric_type: Option<String>,
    /// Most samples (100 when absent, at most 1000).
    pub limit: Option<u32>,
}

/// Filters of `GET /metrics/aggregate`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AggregateQuery {
    /// Only this metric.
    pub name: Option<String>,
    /// Only this metric type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub metric_type: Option<String>,
    /// Only samples at or after this instant (RFC 3339).
    pub since: Option<String>,
}

/// Creates an execution (seed 000's `create`).
#[utoipa::path(post, path = "/api/v1/executions", tag = "executions", request_body = doc::NewExecution,
    responses((status = 201, body = doc::Run),
        (status = 404, body = Problem, description = "the workflow it names is not visible to the caller"),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewExecution>,
) -> ApiResult<impl IntoResponse> {
    let mut tx = state.backend().begin().await?;
    access::check_workflow_named(
        &mut *tx,
        &caller,
        &new.workflow_id,
        SharePermission::Execute,
    )
    .await?;
    if let Some(w) = new.workflow_ref {
        access::workflow(&mut *tx, &caller, w, SharePermission::Execute).await?;
    }
    let run = tx.create_execution(new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, AxumJson(run)))
}

/// The execution with this `execution_id`.
#[utoipa::path(get, path = "/api/v1/executions/{execution_id}", tag = "executions",
    params(("execution_id" = String, Path)),
    responses((status = 200, body = doc::Run), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(execution_id): Path<String>,
) -> ApiResult<AxumJson<WorkflowExecution>> {
    let mut tx = state.backend().begin_read().await?;
    let run = tx.find_by_execution_id(&execution_id).await?;
    access::check_run(&mut *tx, &caller, &run, SharePermission::Read).await?;
    Ok(AxumJson(run))
}

/// Changes an execution (seed 000's `update`).
#[utoipa::path(patch, path = "/api/v1/executions/{execution_id}", tag = "executions",
    request_body = doc::ExecutionPatch, params(("execution_id" = String, Path)),
    responses((status = 200, body = doc::Run), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(execution_id): Path<String>,
    Json(patch): Json<ExecutionPatch>,
) -> ApiResult<AxumJson<WorkflowExecution>> {
    let mut tx = state.backend().begin().await?;
    let run = tx.find_by_execution_id(&execution_id).await?;
    access::check_run(&mut *tx, &caller, &run, SharePermission::Execute).await?;
    let run = tx.update_execution(&execution_id, patch).await?;
    tx.commit().await?;
    Ok(AxumJson(run))
}

/// A page of a workflow's executions, newest first.
#[utoipa::path(get, path = "/api/v1/executions", tag = "executions", params(ListExecutions),
    responses((status = 200, body = doc::RunPage), (status = 422, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListExecutions>,
) -> ApiResult<AxumJson<Page<WorkflowExecution>>> {
    let workflow_id = q
        .workflow_id
        .filter(|w| !w.trim().is_empty())
        .ok_or_else(|| Problem::invalid("workflow_id", "workflow_id is required"))?;
    let status = super::parse_opt::<RunStatus>("status", q.status.as_deref())?;
    let mut tx = state.backend().begin_read().await?;
    access::check_workflow_named(&mut *tx, &caller, &workflow_id, SharePermission::Read).await?;
    Ok(AxumJson(
        tx.list_by_workflow(&workflow_id, status, &super::page(q.cursor, q.limit))
            .await?,
    ))
}

/// Seed 000's statistics over the executions matched.
#[utoipa::path(get, path = "/api/v1/executions/statistics", tag = "executions", params(StatsQuery),
    responses((status = 200, body = doc::ExecutionStatistics), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn statistics(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<StatsQuery>,
) -> ApiResult<AxumJson<ExecutionStatistics>> {
    // Statistics over every workflow are an admin's; others name a workflow.
    let filter = StatsFilter {
        workflow_id: q.workflow_id,
        status: super::parse_opt::<RunStatus>("status", q.status.as_deref())?,
    };
    let mut tx = state.backend().begin_read().await?;
    match filter.workflow_id.as_deref() {
        Some(w) => {
            access::check_workflow_named(&mut *tx, &caller, w, SharePermission::Read).await?
        }
        None => caller.require(flowstore_core::model::identity::Role::Admin)?,
    }
    Ok(AxumJson(tx.execution_statistics(&filter).await?))
}

/// An execution's metrics, newest first.
#[utoipa::path(get, path = "/api/v1/executions/{execution_id}/metrics", tag = "executions",
    params(("execution_id" = String, Path), MetricsQuery),
    responses((status = 200, body = [doc::Metric]), (status = 404, body = Problem)))]
pub async fn metrics(
    State(state): State<AppState>,
    caller: Caller,
    Path(execution_id): Path<String>,
    Query(q): Query<MetricsQuery>,
) -> ApiResult<AxumJson<Vec<WorkflowMetric>>> {
    let kind = super::parse_opt::<MetricType>("type", q.metric_type.as_deref())?;
    let mut tx = state.backend().begin_read().await?;
    let run = tx.find_by_execution_id(&execution_id).await?;
    access::check_run(&mut *tx, &caller, &run, SharePermission::Read).await?;
    Ok(AxumJson(
        tx.metrics_for_execution(&execution_id, kind, q.limit)
            .await?,
    ))
}

/// Seed 000's aggregated metrics (admin only: they span every workflow).
#[utoipa::path(get, path = "/api/v1/metrics/aggregate", tag = "executions", params(AggregateQuery),
    responses((status = 200, body = [doc::MetricAggregate]), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn aggregate(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AggregateQuery>,
) -> ApiResult<AxumJson<Vec<MetricAggregate>>> {
    // Aggregates span every workflow: an admin's.
    caller.require(flowstore_core::model::identity::Role::Admin)?;
    let since = match q.since.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            s.parse::<Timestamp>()
                .map_err(|e| Problem::invalid("since", format!("not an RFC 3339 instant: {e}")))?,
        ),
    };
    let filter = AggregateFilter {
        metric_name: q.name,
        metric_type: super::parse_opt::<MetricType>("type", q.metric_type.as_deref())?,
        since,
    };
    let mut tx = state.backend().begin_read().await?;
    Ok(AxumJson(tx.aggregated_metrics(&filter).await?))
}

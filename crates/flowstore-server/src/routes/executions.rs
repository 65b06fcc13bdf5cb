//! Seed 000's execution repository over HTTP, its metrics, and the handler registry.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use flowstore_core::model::identity::Role;
use flowstore_core::model::metric::{AggregateFilter, MetricAggregate, MetricType, WorkflowMetric};
use flowstore_core::model::run::{
    ExecutionPatch, ExecutionStatistics, NewExecution, RunStatus, StatsFilter, WorkflowExecution,
};
use flowstore_core::{Page, Tx};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access;
use crate::auth::Caller;
use crate::error::{ApiResult, Json, Path, Problem, Query};
use crate::openapi as doc;
use crate::routes::in_path;
use crate::routes::Api;
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

paged_query_params! {
    /// Filters and page of `GET /executions`.
    pub struct ListExecutions {
        /// The workflow whose executions to list (required).
        pub workflow_id: Option<String>,
        /// Only executions in this status.
        pub status: Option<String>,
    }
}

query_params! {
    /// Filters of `GET /executions/statistics`.
    pub struct StatsQuery {
        /// Only executions of this workflow.
        pub workflow_id: Option<String>,
        /// Only executions in this status.
        pub status: Option<String>,
    }
}

query_params! {
    /// Filters of `GET /executions/{execution_id}/metrics`.
    pub struct MetricsQuery {
        /// Only metrics of this type.
        #[serde(rename = "type")]
        #[param(rename = "type")]
        pub metric_type: Option<String>,
        /// Most samples (100 when absent, at most 1000).
        pub limit: Option<u32>,
    }
}

query_params! {
    /// Filters of `GET /metrics/aggregate`.
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
}

/// Creates an execution (seed 000's `create`).
#[utoipa::path(post, path = "/api/v1/executions", tag = "executions", request_body = doc::NewExecution,
    responses((status = 201, body = doc::Run),
        (status = 404, body = Problem, description = "the workflow it names is not visible to the caller"),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(api: Api, Json(new): Json<NewExecution>) -> ApiResult<impl IntoResponse> {
    let mut tx = api.write().await?;
    access::check_workflow_named(
        &mut *tx,
        &api.caller,
        &new.workflow_id,
        SharePermission::Execute,
    )
    .await?;
    if let Some(w) = new.workflow_ref {
        access::workflow(&mut *tx, &api.caller, w, SharePermission::Execute).await?;
    }
    let run = tx.create_execution(new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, AxumJson(run)))
}

/// The execution with this `execution_id`.
#[utoipa::path(get, path = "/api/v1/executions/{execution_id}", tag = "executions",
    params(in_path::Execution),
    responses((status = 200, body = doc::Run), (status = 404, body = Problem)))]
pub async fn get(
    api: Api,
    Path(execution_id): Path<String>,
) -> ApiResult<AxumJson<WorkflowExecution>> {
    let mut tx = api.read().await?;
    Ok(AxumJson(
        execution(&mut *tx, &api.caller, &execution_id, SharePermission::Read).await?,
    ))
}

/// Changes an execution (seed 000's `update`).
#[utoipa::path(patch, path = "/api/v1/executions/{execution_id}", tag = "executions",
    request_body = doc::ExecutionPatch, params(in_path::Execution),
    responses((status = 200, body = doc::Run), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn update(
    api: Api,
    Path(execution_id): Path<String>,
    Json(patch): Json<ExecutionPatch>,
) -> ApiResult<AxumJson<WorkflowExecution>> {
    let mut tx = api.write().await?;
    execution(
        &mut *tx,
        &api.caller,
        &execution_id,
        SharePermission::Execute,
    )
    .await?;
    let run = tx.update_execution(&execution_id, patch).await?;
    tx.commit().await?;
    Ok(AxumJson(run))
}

/// A page of a workflow's executions, newest first.
#[utoipa::path(get, path = "/api/v1/executions", tag = "executions", params(ListExecutions),
    responses((status = 200, body = doc::RunPage), (status = 422, body = Problem)))]
pub async fn list(
    api: Api,
    Query(q): Query<ListExecutions>,
) -> ApiResult<AxumJson<Page<WorkflowExecution>>> {
    let page = super::page(q.cursor, q.limit);
    super::runs::workflow_runs(&api, q.workflow_id, q.status.as_deref(), page).await
}

/// Seed 000's statistics over the executions matched.
#[utoipa::path(get, path = "/api/v1/executions/statistics", tag = "executions", params(StatsQuery),
    responses((status = 200, body = doc::ExecutionStatistics), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn statistics(
    api: Api,
    Query(q): Query<StatsQuery>,
) -> ApiResult<AxumJson<ExecutionStatistics>> {
    // Statistics over every workflow are an admin's; others name a workflow.
    let filter = StatsFilter {
        workflow_id: q.workflow_id,
        status: super::parse_opt::<RunStatus>("status", q.status.as_deref())?,
    };
    let mut tx = api.read().await?;
    match filter.workflow_id.as_deref() {
        Some(w) => {
            access::check_workflow_named(&mut *tx, &api.caller, w, SharePermission::Read).await?
        }
        None => api.caller.require(Role::Admin)?,
    }
    Ok(AxumJson(tx.execution_statistics(&filter).await?))
}

/// An execution's metrics, newest first.
#[utoipa::path(get, path = "/api/v1/executions/{execution_id}/metrics", tag = "executions",
    params(in_path::Execution, MetricsQuery),
    responses((status = 200, body = [doc::Metric]), (status = 404, body = Problem)))]
pub async fn metrics(
    api: Api,
    Path(execution_id): Path<String>,
    Query(q): Query<MetricsQuery>,
) -> ApiResult<AxumJson<Vec<WorkflowMetric>>> {
    let kind = super::parse_opt::<MetricType>("type", q.metric_type.as_deref())?;
    let mut tx = api.read().await?;
    execution(&mut *tx, &api.caller, &execution_id, SharePermission::Read).await?;
    Ok(AxumJson(
        tx.metrics_for_execution(&execution_id, kind, q.limit)
            .await?,
    ))
}

/// Seed 000's aggregated metrics (admin only: they span every workflow).
#[utoipa::path(get, path = "/api/v1/metrics/aggregate", tag = "executions", params(AggregateQuery),
    responses((status = 200, body = [doc::MetricAggregate]), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn aggregate(
    api: Api,
    Query(q): Query<AggregateQuery>,
) -> ApiResult<AxumJson<Vec<MetricAggregate>>> {
    // Aggregates span every workflow: an admin's.
    api.caller.require(Role::Admin)?;
    let since = super::instant("since", q.since.as_deref())?;
    let filter = AggregateFilter {
        metric_name: q.name,
        metric_type: super::parse_opt::<MetricType>("type", q.metric_type.as_deref())?,
        since,
    };
    let mut tx = api.read().await?;
    Ok(AxumJson(tx.aggregated_metrics(&filter).await?))
}

/// The execution with this `execution_id`, if the caller may do `needed` with its
/// run.
async fn execution(
    tx: &mut dyn Tx,
    caller: &Caller,
    execution_id: &str,
    needed: SharePermission,
) -> ApiResult<WorkflowExecution> {
    let run = tx.find_by_execution_id(execution_id).await?;
    access::check_run(tx, caller, &run, needed).await?;
    Ok(run)
}

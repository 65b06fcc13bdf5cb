//! System metrics (record: admin; read: every key, over a time range, newest first,
//! by cursor) and changes to a registered component (user keys, as registering is).

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use flowstore_core::model::identity::Role;
use flowstore_core::model::registry::SystemMetric;
use flowstore_core::model::registry::{Component, ComponentPatch, NewSystemMetric};
use flowstore_core::model::summary::SystemMetricFilter;
use flowstore_core::Page;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiResult, Json, Path, Problem, Query};
use crate::openapi as doc;
use crate::routes::in_path;
use crate::routes::Api;
use crate::state::AppState;

/// This module's routes with their OpenAPI paths, each declared once, on its handler
/// (the layers they run under are [`crate::app`]'s).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(record, list))
        .routes(routes!(patch_component))
}

paged_query_params! {
    /// Filters and page of `GET /system-metrics`.
    pub struct ListSystemMetrics {
        /// Only samples of this metric.
        pub name: Option<String>,
        /// Only samples of this component.
        pub component: Option<String>,
        /// Only samples recorded at or after this instant (RFC 3339).
        pub since: Option<String>,
        /// Only samples recorded before this instant (RFC 3339).
        pub until: Option<String>,
    }
}

/// Records a system metric sample, measured now (admin only).
#[utoipa::path(post, path = "/api/v1/system-metrics", tag = "system-metrics", request_body = NewSystemMetric,
    responses((status = 201, body = SystemMetric), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn record(api: Api, Json(new): Json<NewSystemMetric>) -> ApiResult<impl IntoResponse> {
    api.caller.require(Role::Admin)?;
    let mut tx = api.write().await?;
    let m = tx.record_system_metric(new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, AxumJson(m)))
}

/// A page of system metric samples, newest first, optionally of one metric or
/// component and within `[since, until)`.
#[utoipa::path(get, path = "/api/v1/system-metrics", tag = "system-metrics", params(ListSystemMetrics),
    responses((status = 200, body = doc::SystemMetricPage), (status = 422, body = Problem)))]
pub async fn list(
    api: Api,
    Query(q): Query<ListSystemMetrics>,
) -> ApiResult<AxumJson<Page<SystemMetric>>> {
    // Host and component figures are for operators, not for read-only keys.
    api.caller.require(Role::User)?;
    let filter = SystemMetricFilter {
        name: q.name,
        component: q.component,
        since: super::instant("since", q.since.as_deref())?,
        until: super::instant("until", q.until.as_deref())?,
    };
    let mut tx = api.read().await?;
    Ok(AxumJson(
        tx.page_system_metrics(&filter, &super::page(q.cursor, q.limit))
            .await?,
    ))
}

/// Changes a component, by ID or name.
#[utoipa::path(patch, path = "/api/v1/components/{which}", tag = "components", request_body = ComponentPatch,
    params(in_path::Component),
    responses((status = 200, body = doc::Component), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn patch_component(
    api: Api,
    Path(which): Path<String>,
    Json(patch): Json<ComponentPatch>,
) -> ApiResult<AxumJson<Component>> {
    // Components belong to the installation, not to a user: only admins change
    // what one is (a component's own key reports its heartbeats).
    api.caller.require(Role::Admin)?;
    let mut tx = api.write().await?;
    let before = tx.get_component(super::ops::component_ref(&which)).await?;
    let c = tx.update_component(before.id, patch).await?;
    api.commit_change(tx, "component.update", c.id, &before, &c)
        .await?;
    Ok(AxumJson(c))
}

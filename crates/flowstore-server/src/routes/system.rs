//! System metrics (record: admin; read: every key, over a time range, newest first,
//! by cursor) and changes to a registered component (user keys, as registering is).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use flowstore_core::ids::ComponentId;
use flowstore_core::model::identity::Role;
use flowstore_core::model::registry::SystemMetric;
use flowstore_core::model::registry::{Component, ComponentPatch, ComponentRef, NewSystemMetric};
use flowstore_core::model::summary::SystemMetricFilter;
use flowstore_core::time::Timestamp;
use flowstore_core::Page;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiResult, Json, Path, Problem, Query};
use crate::openapi as doc;
use crate::state::AppState;

/// This module's routes with their OpenAPI paths, each declared once, on its handler
/// (the layers they run under are [`crate::app`]'s).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(record, list))
        .routes(routes!(patch_component))
}

/// Filters and page of `GET /system-metrics`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListSystemMetrics {
    /// Only samples of this metric.
    pub name: Option<String>,
    /// Only samples of this component.
    pub component: Option<String>,
    /// Only samples recorded at or after this instant (RFC 3339).
    pub since: Option<String>,
    /// Only samples recorded before this instant (RFC 3339).
    pub until: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1..=1000.
    pub limit: Option<u32>,
}

fn instant(field: &str, v: Option<&str>) -> ApiResult<Option<Timestamp>> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse::<Timestamp>()
            .map(Some)
            .map_err(|e| Problem::invalid(field, format!("not an RFC 3339 instant: {e}"))),
    }
}

/// Records a system metric sample, measured now (admin only).
#[utoipa::path(post, path = "/api/v1/system-metrics", tag = "system-metrics", request_body = NewSystemMetric,
    responses((status = 201, body = SystemMetric), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn record(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewSystemMetric>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Role::Admin)?;
    let mut tx = state.backend().begin().await?;
    let m = tx.record_system_metric(new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, AxumJson(m)))
}

/// A page of system metric samples, newest first, optionally of one metric or
/// component and within `[since, until)`.
#[utoipa::path(get, path = "/api/v1/system-metrics", tag = "system-metrics", params(ListSystemMetrics),
    responses((status = 200, body = doc::SystemMetricPage), (status = 422, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListSystemMetrics>,
) -> ApiResult<AxumJson<Page<SystemMetric>>> {
    // Host and component figures are for operators, not for read-only keys.
    caller.require(Role::User)?;
    let filter = SystemMetricFilter {
        name: q.name,
        component: q.component,
        since: instant("since", q.since.as_deref())?,
        until: instant("until", q.until.as_deref())?,
    };
    let mut tx = state.backend().begin_read().await?;
    Ok(AxumJson(
        tx.page_system_metrics(&filter, &super::page(q.cursor, q.limit))
            .await?,
    ))
}

/// Changes a component, by ID or name.
#[utoipa::path(patch, path = "/api/v1/components/{which}", tag = "components", request_body = ComponentPatch,
    params(("which" = String, Path, description = "component ID or name")),
    responses((status = 200, body = doc::Component), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn patch_component(
    State(state): State<AppState>,
    caller: Caller,
    Path(which): Path<String>,
    Json(patch): Json<ComponentPatch>,
) -> ApiResult<AxumJson<Component>> {
    // Components belong to the installation, not to a user: only admins change
    // what one is (a component's own key reports its heartbeats).
    caller.require(Role::Admin)?;
    let which = match which.parse::<ComponentId>() {
        Ok(id) => ComponentRef::Id(id),
        Err(_) => ComponentRef::Name(which),
    };
    let mut tx = state.backend().begin().await?;
    let before = tx.get_component(which).await?;
    let c = tx.update_component(before.id, patch).await?;
    let (b, a) = (audit::json(&before), audit::json(&c));
    audit::record(
        &mut *tx,
        &caller,
        "component.update",
        "component",
        c.id,
        b,
        a,
    )
    .await?;
    tx.commit().await?;
    Ok(AxumJson(c))
}

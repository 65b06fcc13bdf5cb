//! Components (register and heartbeat: user keys, as workers do; read: everyone;
//! delete: admin), logs (append: user keys; query: an admin, or anyone about a run
//! they may read) and configurations (admin only; sensitive values never leave the
//! core in clear).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use flowstore_core::ids::{ComponentId, RunId, TaskId};
use flowstore_core::model::identity::Role;
use flowstore_core::model::ops::{
    ConfigType, Configuration, LogEntry, LogFilter, LogLevel, NewLogEntry, SetConfiguration,
};
use flowstore_core::model::registry::{
    Component, ComponentHealth, ComponentRef, Heartbeat, NewComponent,
};
use flowstore_core::model::workflow::SharePermission;
use flowstore_core::{Page, StoreError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access;
use crate::audit;
use crate::error::{ApiResult, Json, Path, Problem, Query};
use crate::openapi as doc;
use crate::routes::in_path;
use crate::routes::Api;
use crate::state::AppState;

/// This module's routes with their OpenAPI paths, each declared once, on its handler
/// (the layers they run under are [`crate::app`]'s).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_component, list_components))
        .routes(routes!(component_health))
        .routes(routes!(get_component, delete_component))
        .routes(routes!(heartbeat_component))
        .routes(routes!(append_logs, query_logs))
        .routes(routes!(set_configuration, list_configurations))
        .routes(routes!(get_configuration, delete_configuration))
}

query_params! {
    /// How `GET /components/health` judges staleness.
    pub struct HealthQuery {
        /// Seconds without a heartbeat after which a component is stale (60 when absent).
        pub stale_after_secs: Option<u64>,
    }
}

/// A component named by its ID or, when that does not parse as one, its name.
pub(super) fn component_ref(which: &str) -> ComponentRef {
    match which.parse::<ComponentId>() {
        Ok(id) => ComponentRef::Id(id),
        Err(_) => ComponentRef::Name(which.to_string()),
    }
}

/// Registers a component (a taken name is 409).
#[utoipa::path(post, path = "/api/v1/components", tag = "components", request_body = doc::NewComponent,
    responses((status = 201, body = doc::Component), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn register_component(
    api: Api,
    Json(new): Json<NewComponent>,
) -> ApiResult<impl IntoResponse> {
    let mut tx = api.write().await?;
    let c = tx.register_component(new).await?;
    let after = audit::json(&c);
    api.commit(tx, "component.register", c.id, None, after)
        .await?;
    Ok((StatusCode::CREATED, AxumJson(c)))
}

/// A page of components, newest first.
#[utoipa::path(get, path = "/api/v1/components", tag = "components", params(super::PageQuery),
    responses((status = 200, body = doc::ComponentPage)))]
pub async fn list_components(
    api: Api,
    Query(q): Query<super::PageQuery>,
) -> ApiResult<AxumJson<Page<Component>>> {
    // A component's configuration and endpoints are for operators, not for
    // read-only keys (its health is for everyone: `/components/health`).
    api.caller.require(Role::User)?;
    let mut tx = api.lagging_read().await?;
    Ok(AxumJson(
        tx.list_components(&super::page(q.cursor, q.limit)).await?,
    ))
}

/// Every component with its effective health.
#[utoipa::path(get, path = "/api/v1/components/health", tag = "components", params(HealthQuery),
    responses((status = 200, body = [doc::ComponentHealth])))]
pub async fn component_health(
    State(state): State<AppState>,
    Query(q): Query<HealthQuery>,
) -> ApiResult<AxumJson<Vec<ComponentHealth>>> {
    let stale = Duration::from_secs(q.stale_after_secs.unwrap_or(60));
    let mut tx = state.backend().begin_read().await?;
    Ok(AxumJson(tx.component_health(stale).await?))
}

/// One component, by ID or name.
#[utoipa::path(get, path = "/api/v1/components/{which}", tag = "components",
    params(in_path::Component),
    responses((status = 200, body = doc::Component), (status = 404, body = Problem)))]
pub async fn get_component(api: Api, Path(which): Path<String>) -> ApiResult<AxumJson<Component>> {
    api.caller.require(Role::User)?;
    let mut tx = api.read().await?;
    Ok(AxumJson(tx.get_component(component_ref(&which)).await?))
}

/// Records a component's heartbeat.
#[utoipa::path(post, path = "/api/v1/components/{which}/heartbeat", tag = "components",
    request_body = doc::ComponentHeartbeat,
    params(in_path::Component),
    responses((status = 200, body = doc::Component), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn heartbeat_component(
    State(state): State<AppState>,
    Path(which): Path<String>,
    Json(beat): Json<Heartbeat>,
) -> ApiResult<AxumJson<Component>> {
    let mut tx = state.backend().begin().await?;
    let c = tx.heartbeat_component(component_ref(&which), beat).await?;
    tx.commit().await?;
    Ok(AxumJson(c))
}

/// Deletes a component (admin only).
#[utoipa::path(delete, path = "/api/v1/components/{which}", tag = "components",
    params(in_path::Component),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_component(api: Api, Path(which): Path<String>) -> ApiResult<StatusCode> {
    api.caller.require(Role::Admin)?;
    let mut tx = api.write().await?;
    let c = tx.get_component(component_ref(&which)).await?;
    tx.delete_component(c.id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

paged_query_params! {
    /// Filters and page of `GET /logs`.
    pub struct LogQuery {
        /// Only entries of this run (a non-admin must give it, for a run they may read).
        pub execution_id: Option<String>,
        /// Only entries of this task.
        pub task_id: Option<String>,
        /// Only entries of this component.
        pub component_name: Option<String>,
        /// Only entries at least this severe.
        pub min_level: Option<String>,
        /// Only entries at or after this instant (RFC 3339).
        pub since: Option<String>,
        /// Only entries before this instant (RFC 3339).
        pub until: Option<String>,
    }
}

/// Appends log entries (one object or an array); those of a run need execute
/// access to it.
#[utoipa::path(post, path = "/api/v1/logs", tag = "logs", request_body = doc::NewLogEntries,
    responses((status = 201, body = [doc::LogEntry]), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn append_logs(
    api: Api,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<impl IntoResponse> {
    let entries: Vec<NewLogEntry> = match body {
        serde_json::Value::Array(_) => {
            crate::error::decode(&serde_json::to_vec(&body).unwrap_or_default())?
        }
        other => vec![crate::error::decode(
            &serde_json::to_vec(&other).unwrap_or_default(),
        )?],
    };
    let mut tx = api.write().await?;
    // A log line names only runs and tasks its writer may work on; one it may not
    // see answers 404, as one that does not exist does.
    for run in entries.iter().filter_map(|e| e.execution_id) {
        access::run(&mut *tx, &api.caller, run, SharePermission::Execute).await?;
    }
    for task in entries.iter().filter_map(|e| e.task_id) {
        access::task(&mut *tx, &api.caller, task, SharePermission::Execute).await?;
    }
    let written = tx.append_logs(entries).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, AxumJson(written)))
}

/// A page of log entries, newest first.
#[utoipa::path(get, path = "/api/v1/logs", tag = "logs", params(LogQuery),
    responses((status = 200, body = doc::LogEntryPage), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn query_logs(
    api: Api,
    Query(q): Query<LogQuery>,
) -> ApiResult<AxumJson<Page<LogEntry>>> {
    let filter = LogFilter {
        execution_id: super::parse_opt::<RunId>("execution_id", q.execution_id.as_deref())?,
        task_id: super::parse_opt::<TaskId>("task_id", q.task_id.as_deref())?,
        component_name: q.component_name,
        min_level: super::parse_opt::<LogLevel>("min_level", q.min_level.as_deref())?,
        since: super::instant("since", q.since.as_deref())?,
        until: super::instant("until", q.until.as_deref())?,
    };
    let mut tx = api.read().await?;
    match filter.execution_id {
        Some(run) => {
            access::run(&mut *tx, &api.caller, run, SharePermission::Read).await?;
        }
        None => api.caller.require(Role::Admin).map_err(|_| {
            Problem::forbidden("only an admin may query every log; name an execution_id")
        })?,
    }
    Ok(AxumJson(
        tx.query_logs(&filter, &super::page(q.cursor, q.limit))
            .await?,
    ))
}

paged_query_params! {
    /// Which configurations `GET /configurations` lists.
    pub struct ConfigQuery {
        /// Only entries of this type.
        #[serde(rename = "type")]
        #[param(rename = "type")]
        pub config_type: Option<String>,
    }
}

/// Sets a configuration entry (admin only). A sensitive value is sealed and never
/// shown again.
#[utoipa::path(put, path = "/api/v1/configurations", tag = "configurations", request_body = doc::SetConfiguration,
    responses((status = 200, body = doc::Configuration), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn set_configuration(
    api: Api,
    Json(set): Json<SetConfiguration>,
) -> ApiResult<AxumJson<Configuration>> {
    api.caller.require(Role::Admin)?;
    let mut tx = api.write().await?;
    let before = match tx.get_configuration(&set.key).await {
        Ok(c) => Some(c),
        // A new key (or a bad one, which set_configuration refuses below).
        Err(StoreError::NotFound { .. } | StoreError::Invalid { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let c = tx.set_configuration(set).await?;
    // As the API shows them: a sensitive value is hidden, the entry says it was set.
    let (b, a) = (before.as_ref().and_then(audit::json), audit::json(&c));
    api.commit(tx, "configuration.set", &c.key, b, a).await?;
    Ok(AxumJson(c))
}

/// A page of configuration entries (admin only); sensitive values are hidden.
#[utoipa::path(get, path = "/api/v1/configurations", tag = "configurations", params(ConfigQuery),
    responses((status = 200, body = doc::ConfigurationPage), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_configurations(
    api: Api,
    Query(q): Query<ConfigQuery>,
) -> ApiResult<AxumJson<Page<Configuration>>> {
    api.caller.require(Role::Admin)?;
    let kind = super::parse_opt::<ConfigType>("type", q.config_type.as_deref())?;
    let mut tx = api.read().await?;
    Ok(AxumJson(
        tx.list_configurations(kind, &super::page(q.cursor, q.limit))
            .await?,
    ))
}

/// One configuration entry (admin only); a sensitive value is hidden.
#[utoipa::path(get, path = "/api/v1/configurations/{key}", tag = "configurations",
    params(in_path::Configuration),
    responses((status = 200, body = doc::Configuration), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_configuration(
    api: Api,
    Path(key): Path<String>,
) -> ApiResult<AxumJson<Configuration>> {
    api.caller.require(Role::Admin)?;
    let mut tx = api.read().await?;
    Ok(AxumJson(tx.get_configuration(&key).await?))
}

/// Deletes a configuration entry (admin only).
#[utoipa::path(delete, path = "/api/v1/configurations/{key}", tag = "configurations",
    params(in_path::Configuration),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_configuration(api: Api, Path(key): Path<String>) -> ApiResult<StatusCode> {
    api.caller.require(Role::Admin)?;
    let mut tx = api.write().await?;
    let before = audit::json(&tx.get_configuration(&key).await?);
    tx.delete_configuration(&key).await?;
    api.commit(tx, "configuration.delete", &key, before, None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

//! The routes of a workflow's life, a task's links, summaries, system metrics and
//! component changes, merged into the API by [`crate::app`] (paths shared with
//! other route groups gain methods here; axum merges them).

use axum::routing::{delete, get, patch, post};
use axum::Router;

use super::{system, task_links, workflow_life};
use crate::state::AppState;

/// The routes of this group.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/workflows/{id}", delete(workflow_life::delete))
        .route(
            "/api/v1/workflows/{id}/archive",
            post(workflow_life::archive),
        )
        .route(
            "/api/v1/workflows/{id}/duplicate",
            post(workflow_life::duplicate),
        )
        .route(
            "/api/v1/workflows/{id}/versions/{version}",
            get(workflow_life::version),
        )
        .route(
            "/api/v1/workflows/{id}/summary",
            get(workflow_life::summary),
        )
        .route("/api/v1/tasks/{id}", delete(task_links::delete))
        .route(
            "/api/v1/tasks/{id}/dependencies",
            get(task_links::dependencies),
        )
        .route("/api/v1/tasks/{id}/children", get(task_links::children))
        .route(
            "/api/v1/projects/{id}/summary",
            get(task_links::project_summary),
        )
        .route(
            "/api/v1/system-metrics",
            post(system::record).get(system::list),
        )
        .route("/api/v1/components/{which}", patch(system::patch_component))
}

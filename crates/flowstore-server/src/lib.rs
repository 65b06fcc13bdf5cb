//! The HTTP API of flowstore (`flowstore serve`): REST resources under `/api/v1`,
//! the worker protocol, server-sent events of the outbox, an OpenAPI document
//! generated from the handlers, Prometheus metrics, and health checks.
//!
//! The server holds an `Arc<dyn Backend>` and knows nothing of which database is
//! behind it. [`app`] builds the router (for tests, in process); [`serve`] runs it on
//! a listener with graceful shutdown and the maintenance task.

use std::future::Future;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use flowstore_core::model::identity::Role;
use flowstore_core::model::identity_access::NewApiKey;
use flowstore_core::{Backend, BackendKind, StoreResult};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

pub mod auth;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod state;

pub use error::Problem;
pub use state::{AppState, ServerConfig};

use routes::{apikeys, events, executions, health, projects, runs, worker, workflows};

/// The router of the whole API.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route(
            "/api/v1/projects",
            post(projects::create).get(projects::list),
        )
        .route(
            "/api/v1/projects/{id}",
            get(projects::get)
                .patch(projects::update)
                .delete(projects::delete),
        )
        .route(
            "/api/v1/workflows",
            post(workflows::create).get(workflows::list),
        )
        .route(
            "/api/v1/workflows/{id}",
            get(workflows::get).patch(workflows::update),
        )
        .route("/api/v1/workflows/{id}/versions", get(workflows::versions))
        .route("/api/v1/workflows/{id}/runs", post(runs::start))
        .route("/api/v1/runs", get(runs::list))
        .route("/api/v1/runs/{id}", get(runs::get))
        .route("/api/v1/runs/{id}/cancel", post(runs::cancel))
        .route("/api/v1/runs/{id}/tasks", get(runs::tasks))
        .route("/api/v1/runs/{id}/progress", get(runs::progress))
        .route(
            "/api/v1/executions",
            post(executions::create).get(executions::list),
        )
        .route("/api/v1/executions/statistics", get(executions::statistics))
        .route(
            "/api/v1/executions/{execution_id}",
            get(executions::get).patch(executions::update),
        )
        .route(
            "/api/v1/executions/{execution_id}/metrics",
            get(executions::metrics),
        )
        .route("/api/v1/metrics/aggregate", get(executions::aggregate))
        .route(
            "/api/v1/handlers",
            post(executions::register_handler).get(executions::active_handlers),
        )
        .route("/api/v1/worker/claim", post(worker::claim))
        .route("/api/v1/worker/heartbeat", post(worker::heartbeat))
        .route("/api/v1/worker/complete", post(worker::complete))
        .route("/api/v1/worker/fail", post(worker::fail))
        .route("/api/v1/apikeys", post(apikeys::create))
        .route(
            "/api/v1/apikeys/{id}",
            axum::routing::delete(apikeys::revoke),
        )
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            state.config().request_timeout,
        ));
    // The event stream is long-lived: no request timeout.
    let streams = Router::new().route("/api/v1/events", get(events::stream));
    let authenticated = api
        .merge(streams)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::scrape))
        .route("/api/v1/openapi.json", get(openapi_json))
        .merge(authenticated)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(state.config().body_limit))
        .layer(CatchPanicLayer::custom(|_| {
            Problem::internal(&"a handler panicked").into_response()
        }))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

async fn openapi_json() -> impl IntoResponse {
    axum::Json(openapi::ApiDoc::openapi())
}

async fn not_found() -> Problem {
    Problem::not_found("no such route")
}

/// Serves `state`'s API on `listener` until `shutdown` completes; then stops
/// accepting, ends event streams and long polls, and waits for requests in flight.
/// A maintenance task reaps expired leases, enforces timeouts and (on PostgreSQL)
/// numbers events while the server runs.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let maintenance = tokio::spawn(maintain(state.clone()));
    let signal_state = state.clone();
    let result = axum::serve(listener, app(state.clone()))
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing requests in flight");
            signal_state.begin_shutdown();
        })
        .await;
    maintenance.abort();
    result
}

/// Runs [`maintenance_tick`] every `maintenance_interval` until shutdown.
async fn maintain(state: AppState) {
    let mut shutdown = state.shutdown_signal();
    let mut every = tokio::time::interval(state.config().maintenance_interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.changed() => return,
        }
        if state.shutting_down() {
            return;
        }
        if let Err(e) = maintenance_tick(&state).await {
            tracing::warn!(error = %e, "maintenance failed; retrying on the next tick");
        }
    }
}

/// One round of maintenance: expired leases, timeouts, event numbering.
pub async fn maintenance_tick(state: &AppState) -> StoreResult<()> {
    let mut tx = state.backend().begin().await?;
    let reaped = tx.reap_expired_leases(500).await?;
    tx.commit().await?;
    let mut tx = state.backend().begin().await?;
    let timed_out = tx.enforce_timeouts(500).await?;
    tx.commit().await?;
    let m = state.metrics();
    m.leases_expired
        .fetch_add(reaped.len() as u64, Ordering::Relaxed);
    m.timed_out.fetch_add(timed_out, Ordering::Relaxed);
    let mut sequenced = 0;
    if state.backend().kind() == BackendKind::Postgres {
        let mut tx = state.backend().begin().await?;
        sequenced = tx.sequence_events().await?;
        tx.commit().await?;
    }
    if !reaped.is_empty() || timed_out > 0 || sequenced > 0 {
        state.notify_changed();
    }
    Ok(())
}

/// When the database holds no API key at all, creates an admin key and returns it
/// (to be printed once); otherwise returns `None`.
///
/// The repositories have no way to count keys across users, so the check is one
/// statement that changes nothing and reports whether a key exists: it rewrites the
/// newest `schema_migrations` row with its own value only if `api_keys` has a row.
pub async fn bootstrap_admin_key(backend: &Arc<dyn Backend>) -> StoreResult<Option<String>> {
    let exists = backend
        .execute_raw(
            "UPDATE schema_migrations SET version = version \
             WHERE version = (SELECT MAX(version) FROM schema_migrations) \
             AND EXISTS (SELECT 1 FROM api_keys)",
        )
        .await?;
    if exists > 0 {
        return Ok(None);
    }
    let mut tx = backend.begin().await?;
    let created = tx
        .create_api_key(NewApiKey {
            name: "bootstrap admin".into(),
            role: Some(Role::Admin),
            ..NewApiKey::default()
        })
        .await?;
    tx.commit().await?;
    Ok(Some(created.key.expose().to_string()))
}

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
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{delete, get, patch, post, put};
use axum::Router;
use flowstore_core::model::identity::Role;
use flowstore_core::model::identity_access::NewApiKey;
use flowstore_core::{Backend, StoreResult};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub mod access;
pub mod audit;
pub mod auth;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod signin;
pub mod state;
pub mod webhooks;

pub use error::Problem;
pub use signin::SignInLimits;
pub use state::{AppState, ServerConfig};

use routes::{
    apikeys, events, executions, handlers, health, ops, people, projects, pull_requests, runs,
    sessions, tasks, worker, workflows,
};

/// The router of the whole API.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .merge(core_routes())
        .merge(resource_routes())
        .merge(routes::extra::routes())
        .merge(trust_routes())
        .layer(middleware::from_fn_with_state(state.clone(), timeout));
    // The event stream is long-lived: no request timeout.
    let streams = Router::new().route("/api/v1/events", get(events::stream));
    let authenticated = api
        .merge(streams)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    // Signing in is how a client gets a token: it cannot need one.
    let sign_in = Router::new()
        .route("/api/v1/sessions", post(sessions::login))
        .layer(middleware::from_fn_with_state(state.clone(), timeout));
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::scrape))
        .route("/api/v1/openapi.json", get(openapi::document))
        .merge(authenticated)
        .merge(sign_in)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(state.config().body_limit))
        // Answers carry tokens, keys and other users' data: no cache may keep them,
        // and no browser may guess their type.
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(CatchPanicLayer::custom(|_| {
            Problem::internal(&"a handler panicked").into_response()
        }))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// Projects, workflows, runs, executions, the worker protocol.
fn core_routes() -> Router<AppState> {
    Router::new()
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
        .route(
            "/api/v1/workflows/{id}/shares",
            post(workflows::share).get(workflows::shares),
        )
        .route(
            "/api/v1/workflows/{id}/shares/{share_id}",
            delete(workflows::unshare),
        )
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
        .route("/api/v1/worker/claim", post(worker::claim))
        .route("/api/v1/worker/heartbeat", post(worker::heartbeat))
        .route("/api/v1/worker/complete", post(worker::complete))
        .route(
            "/api/v1/worker/complete-batch",
            post(worker::complete_batch),
        )
        .route("/api/v1/worker/fail", post(worker::fail))
}

/// Tasks, pull requests, handlers, components, logs, configurations, people, keys.
fn resource_routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tasks", post(tasks::create).get(tasks::list))
        .route("/api/v1/tasks/{id}", get(tasks::get).patch(tasks::update))
        .route(
            "/api/v1/pull-requests",
            post(pull_requests::create).get(pull_requests::list),
        )
        .route("/api/v1/pull-requests/{id}", get(pull_requests::get))
        .route(
            "/api/v1/pull-requests/{id}/status",
            post(pull_requests::set_status),
        )
        .route(
            "/api/v1/pull-requests/{id}/validation",
            put(pull_requests::set_validation),
        )
        .route(
            "/api/v1/handlers",
            post(handlers::register).get(handlers::list),
        )
        .route(
            "/api/v1/handlers/{handler_type}",
            get(handlers::get).patch(handlers::update),
        )
        .route(
            "/api/v1/handlers/{handler_type}/deactivate",
            post(handlers::deactivate),
        )
        .route(
            "/api/v1/components",
            post(ops::register_component).get(ops::list_components),
        )
        .route("/api/v1/components/health", get(ops::component_health))
        .route(
            "/api/v1/components/{which}",
            get(ops::get_component).delete(ops::delete_component),
        )
        .route(
            "/api/v1/components/{which}/heartbeat",
            post(ops::heartbeat_component),
        )
        .route("/api/v1/logs", post(ops::append_logs).get(ops::query_logs))
        .route(
            "/api/v1/configurations",
            put(ops::set_configuration).get(ops::list_configurations),
        )
        .route(
            "/api/v1/configurations/{key}",
            get(ops::get_configuration).delete(ops::delete_configuration),
        )
        .route(
            "/api/v1/users",
            post(people::create_user).get(people::list_users),
        )
        .route("/api/v1/users/me", get(people::me))
        .route("/api/v1/users/{id}", get(people::get_user))
        .route(
            "/api/v1/teams",
            post(people::create_team).get(people::list_teams),
        )
        .route(
            "/api/v1/teams/{id}/members",
            post(people::add_member).get(people::members),
        )
        .route("/api/v1/notifications", get(people::notifications))
        .route(
            "/api/v1/notifications/read-all",
            post(people::mark_all_read),
        )
        .route("/api/v1/notifications/{id}/read", post(people::mark_read))
        .route("/api/v1/apikeys", post(apikeys::create).get(apikeys::list))
        .route("/api/v1/apikeys/{id}", delete(apikeys::revoke))
        .merge(integration_routes())
}

/// Credentials and webhooks.
fn integration_routes() -> Router<AppState> {
    use routes::integration as i;
    Router::new()
        .route(
            "/api/v1/credentials",
            post(i::create_credential).get(i::list_credentials),
        )
        .route(
            "/api/v1/credentials/{id}",
            get(i::get_credential)
                .patch(i::update_credential)
                .delete(i::delete_credential),
        )
        .route(
            "/api/v1/credentials/{id}/reveal",
            post(i::reveal_credential),
        )
        .route(
            "/api/v1/webhooks",
            post(i::create_webhook).get(i::list_webhooks),
        )
        .route(
            "/api/v1/webhooks/{id}",
            get(i::get_webhook)
                .patch(i::update_webhook)
                .delete(i::delete_webhook),
        )
        .route("/api/v1/webhooks/{id}/deliveries", get(i::deliveries))
        .route("/api/v1/webhooks/{id}/test", post(i::send_test))
}

/// Sessions, the rest of users, teams and notifications, and the audit log.
fn trust_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/sessions/current",
            get(sessions::current).delete(sessions::logout),
        )
        .route(
            "/api/v1/users/{id}",
            patch(people::update_user).delete(people::delete_user),
        )
        .route("/api/v1/users/{id}/unlock", post(people::unlock_user))
        .route("/api/v1/teams/{id}", delete(people::delete_team))
        .route(
            "/api/v1/teams/{id}/members/{user_id}",
            patch(people::update_member).delete(people::remove_member),
        )
        .route(
            "/api/v1/notifications/unread-count",
            get(people::unread_count),
        )
        .route(
            "/api/v1/notifications/{id}",
            delete(people::delete_notification),
        )
        .route("/api/v1/audit", get(routes::audit::list))
        .route("/api/v1/audit/verify", get(routes::audit::verify))
}

async fn not_found() -> Problem {
    Problem::not_found("no such route")
}

/// Serves `state`'s API on `listener` until `shutdown` completes; then stops
/// accepting, ends event streams and long polls, and waits for requests in flight.
/// Connections that send no complete request head within the configured
/// `header_timeout` (idle or trickling clients) are closed.
/// A maintenance task reaps expired leases, enforces timeouts and (on PostgreSQL)
/// numbers events while the server runs; the webhook dispatcher ([`webhooks`])
/// delivers events to webhooks.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let maintenance = tokio::spawn(maintain(state.clone()));
    let dispatcher = tokio::spawn(webhooks::run(state.clone()));
    let result = accept(listener, state.clone(), shutdown).await;
    maintenance.abort();
    dispatcher.abort();
    result
}

/// Accepts connections until `shutdown`, each served over HTTP/1.1 with a timer:
/// a client must send a whole request head within `header_timeout` of connecting or
/// of its previous answer (so idle and trickling connections are closed; a request
/// body is bounded by the request timeout). Then stops accepting, ends streams and
/// long polls, and waits for the answers in flight.
async fn accept(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;

    let header_timeout = state.config().header_timeout;
    let router = app(state.clone());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let service = router.clone().map_request(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        );
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(
                TokioIo::new(stream),
                hyper_util::service::TowerToHyperService::new(service),
            );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    tracing::info!("shutting down: finishing requests in flight");
    state.begin_shutdown();
    graceful.shutdown().await;
    Ok(())
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
    let mut tx = state.backend().begin_transition().await?;
    let reaped = tx.reap_expired_leases(500).await?;
    tx.commit().await?;
    let mut tx = state.backend().begin_transition().await?;
    let timed_out = tx.enforce_timeouts(500).await?;
    tx.commit().await?;
    let m = state.metrics();
    m.leases_expired
        .fetch_add(reaped.len() as u64, Ordering::Relaxed);
    m.timed_out.fetch_add(timed_out, Ordering::Relaxed);
    let mut sequenced = 0;
    if state.backend().capabilities().sequences_events {
        let mut tx = state.backend().begin().await?;
        sequenced = tx.sequence_events().await?;
        tx.commit().await?;
    }
    if !reaped.is_empty() || timed_out > 0 || sequenced > 0 {
        state.notify_changed();
    }
    Ok(())
}

/// When the database holds no API key at all (revoked ones count), creates an admin
/// key and returns it (to be printed once); otherwise returns `None`.
pub async fn bootstrap_admin_key(backend: &Arc<dyn Backend>) -> StoreResult<Option<String>> {
    let mut tx = backend.begin().await?;
    if tx.count_api_keys().await? > 0 {
        tx.rollback().await?;
        return Ok(None);
    }
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

/// Ends a request that takes longer than `request_timeout` with a 503 problem.
async fn timeout(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let limit = state.config().request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than the {} ms allowed",
                limit.as_millis()
            ),
        )
        .into_response(),
    }
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this resource does not answer this method",
    )
}

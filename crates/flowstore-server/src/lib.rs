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
use axum::{Extension, Router};
use flowstore_core::model::identity::Role;
use flowstore_core::model::identity_access::NewApiKey;
use flowstore_core::{Backend, StoreResult};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

pub mod access;
pub mod audit;
pub mod auth;
pub mod dashboard;
pub mod error;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod signin;
pub mod start_group;
pub mod state;
pub mod webhooks;

pub use error::Problem;
pub use mail::MailConfig;
pub use signin::SignInLimits;
pub use state::{AppState, ServerConfig};

use routes::{
    account, analytics, apikeys, events, executions, handlers, health, integration, ops, people,
    projects, pull_requests, runs, sessions, system, task_links, tasks, triggers, worker,
    workflow_life, workflows,
};

/// The router of the whole API, and the OpenAPI document of its routes (served at
/// `/api/v1/openapi.json`, built here once from the same routers).
pub fn app(state: AppState) -> Router {
    let (routes, paths) = api(&state).split_for_parts();
    let document = openapi::Document::new(paths);
    let request_id = HeaderName::from_static("x-request-id");
    routes
        .merge(dashboard::router().layer(middleware::from_fn_with_state(state.clone(), timeout)))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(document))
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

/// Every route of the API with its OpenAPI path, from the routers of the modules
/// that hold the handlers, each under the layers its group needs: the health checks,
/// the metrics and the document are public and untimed; signing in is public and
/// timed; the rest needs a key or a session, and all of it but the event stream is
/// timed. (Routers that share a path, such as `/api/v1/workflows/{id}`, are merged
/// method by method, each method keeping its own layers.)
fn api(state: &AppState) -> OpenApiRouter<AppState> {
    let timed = || middleware::from_fn_with_state(state.clone(), timeout);
    let api = OpenApiRouter::new()
        // Projects, workflows, runs, executions, the worker protocol.
        .merge(projects::router())
        .merge(workflows::router())
        .merge(workflow_life::router())
        .merge(runs::router())
        .merge(executions::router())
        .merge(worker::router())
        // Tasks, pull requests, handlers, components, logs, configurations, system
        // metrics.
        .merge(tasks::router())
        .merge(task_links::router())
        .merge(pull_requests::router())
        .merge(handlers::router())
        .merge(ops::router())
        .merge(system::router())
        // People, keys, credentials and webhooks, sessions, the audit log.
        .merge(people::router())
        .merge(apikeys::router())
        .merge(integration::router())
        .merge(sessions::router())
        .merge(routes::audit::router())
        .merge(analytics::router())
        .merge(triggers::router())
        .merge(account::router())
        .layer(timed());
    // The event stream is long-lived: no request timeout.
    let authenticated = api
        .merge(events::router())
        .merge(people::stream_router())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    // Signing in is how a client gets a token: it cannot need one.
    let sign_in = sessions::sign_in_router()
        .merge(account::public_router())
        .layer(timed());
    // A trigger's URL is its credential (and its signature, when it requires one).
    let hooks = triggers::hooks_router().layer(timed());
    OpenApiRouter::new()
        .merge(health::router())
        .merge(metrics::router())
        .merge(openapi::router())
        .merge(authenticated)
        .merge(sign_in)
        .merge(hooks)
}

/// The detail of the 404 of a path no route matches.
const NO_SUCH_ROUTE: &str = "no such route";

async fn not_found() -> Problem {
    Problem::not_found(NO_SUCH_ROUTE)
}

/// Serves `state`'s API on `listener` until `shutdown` completes; then stops
/// accepting, ends event streams and long polls, and waits for requests in flight.
/// Connections that send no complete request head within the configured
/// `header_timeout` (idle or trickling clients) are closed.
/// A maintenance task reaps expired leases, enforces timeouts, links queued audit
/// entries and (on PostgreSQL) numbers events while the server runs; the audit
/// linker ([`audit::linker`]) links queued entries as their changes commit; the webhook dispatcher ([`webhooks`])
/// delivers events to webhooks.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    state.listen_for_changes();
    let maintenance = tokio::spawn(maintain(state.clone()));
    let dispatcher = tokio::spawn(webhooks::run(state.clone()));
    let linker = tokio::spawn(audit::linker(state.clone()));
    let result = accept(listener, state.clone(), shutdown).await;
    maintenance.abort();
    dispatcher.abort();
    linker.abort();
    // The requests in flight have finished: their audit entries are linked now
    // rather than by whichever server runs next.
    if let Err(e) = audit::link(&state).await {
        tracing::warn!(error = %e, "could not link the last audit entries");
    }
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

/// How often the maintenance task looks for credentials about to expire.
const EXPIRY_NOTICE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs [`maintenance_tick`] every `maintenance_interval`, and [`expiry_notices`]
/// every minute, until shutdown.
async fn maintain(state: AppState) {
    let mut shutdown = state.shutdown_signal();
    let mut every = tokio::time::interval(state.config().maintenance_interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_notices: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.changed() => return,
        }
        if state.shutting_down() {
            return;
        }
        let notices_due = last_notices.is_none_or(|t| t.elapsed() >= EXPIRY_NOTICE_INTERVAL);
        let mut result = maintenance_tick(&state).await;
        if notices_due && result.is_ok() {
            last_notices = Some(std::time::Instant::now());
            result = expiry_notices(&state).await.map(|_| ());
        }
        if let Err(e) = result {
            state
                .metrics()
                .maintenance_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "maintenance failed; retrying on the next tick");
        }
    }
}

/// One round of maintenance: expired leases, timeouts, event numbering, queued
/// audit entries, expired
/// trigger receipts, and the slow statements recorded since the last round written
/// down.
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
    // Trigger receipts past their window (idempotency keys after 24 hours,
    // signatures once their timestamp can no longer pass).
    let mut tx = state.backend().begin().await?;
    tx.prune_trigger_receipts(flowstore_core::time::now(), 1000)
        .await?;
    tx.commit().await?;
    // Slow statements seen since the last tick, for `flowstore stats` (another
    // process) to list.
    flowstore_core::slow::flush(state.backend()).await?;
    // Audit entries queued by changes whose server did not link them (it stopped
    // first, or linking failed). Linking fails for as long as the head's key is not
    // configured, which must not hold up the rest of maintenance nor the expiry
    // notices that follow a successful round.
    audit::link_or_log(state).await;
    Ok(())
}

/// Tells the owners of credentials that expire within a week, once per credential
/// and expiry (a notice written by one server is not written again by another);
/// returns how many credentials were noted.
pub async fn expiry_notices(state: &AppState) -> StoreResult<u64> {
    let mut tx = state.backend().begin().await?;
    let now = flowstore_core::time::now();
    let told = flowstore_core::model::notify::credentials_expiring(&mut *tx, now, 100).await?;
    tx.commit().await?;
    Ok(told)
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Method, Request};
    use flowstore_core::crypto::{Key, Keyring};
    use flowstore_core::store::KeySource;
    use flowstore_sqlite::{SqliteBackend, SqliteSettings};
    use http_body_util::BodyExt;
    use serde_json::Value;
    use tower::ServiceExt;

    /// The methods the API may route; HEAD (answered by every GET) and OPTIONS are
    /// axum's, never documented.
    const METHODS: [Method; 5] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];

    async fn backend() -> Arc<dyn Backend> {
        let key = Key::parse(&"ab".repeat(32)).unwrap();
        let keys = Arc::new(KeySource::given(Keyring::new(key)));
        let settings = SqliteSettings {
            url: "sqlite::memory:".into(),
            ..SqliteSettings::default()
        };
        let b: Arc<dyn Backend> = Arc::new(SqliteBackend::connect(&settings, keys).await.unwrap());
        b.migrate_up(None).await.unwrap();
        b
    }

    async fn call(router: &Router, method: Method, uri: &str, key: &str) -> (StatusCode, Value) {
        let sends_body = [Method::POST, Method::PUT, Method::PATCH].contains(&method);
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(if sends_body { "{}" } else { "" }))
            .unwrap();
        let res = router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// The router and the document come from the same declarations, and this holds
    /// them to it: on every documented path, each method the document lists is routed
    /// (answers something other than the fallback's 404 or a 405), and each method it
    /// does not list is not; so the routed operations are exactly the documented ones.
    /// Requests carry an admin key, so that no refusal of the caller stands in for an
    /// answer of the route.
    #[tokio::test]
    async fn the_router_serves_exactly_the_documented_operations() {
        let backend = backend().await;
        let key = bootstrap_admin_key(&backend).await.unwrap().unwrap();
        let router = app(AppState::new(backend));
        let (status, doc) = call(&router, Method::GET, "/api/v1/openapi.json", &key).await;
        assert_eq!(status, StatusCode::OK);
        let paths = doc["paths"].as_object().unwrap();
        let zero = "00000000-0000-0000-0000-000000000000";
        let (mut documented, mut routed) = (0, 0);
        for (path, item) in paths {
            let mut uri = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { zero } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            // The event stream never ends: ask it something it refuses at once.
            if path == "/api/v1/events" {
                uri.push_str("?after=x");
            }
            for method in METHODS {
                let listed = item.get(method.as_str().to_lowercase()).is_some();
                let (status, body) = call(&router, method.clone(), &uri, &key).await;
                let answered = status != StatusCode::METHOD_NOT_ALLOWED
                    && !(status == StatusCode::NOT_FOUND && body["detail"] == NO_SUCH_ROUTE);
                assert_eq!(
                    answered, listed,
                    "{method} {path}: documented {listed}, answered {status} {body}"
                );
                documented += usize::from(listed);
                routed += usize::from(answered);
            }
        }
        let operations: usize = paths
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        assert_eq!(documented, operations, "only these methods are documented");
        assert_eq!(routed, documented);
        // Not vacuously: the whole API is there.
        assert!(operations >= 100, "{operations} operations");
        // A path no route declares falls through to the fallback.
        let (status, body) = call(&router, Method::GET, "/api/v1/nowhere", &key).await;
        assert_eq!(
            (status, &body["detail"]),
            (StatusCode::NOT_FOUND, &NO_SUCH_ROUTE.into())
        );
    }
}

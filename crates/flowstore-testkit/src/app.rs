//! [`TestApp`]: the HTTP API in process (the router of `flowstore_server::app`,
//! called through tower's `oneshot`), with an API key of each role, and a method per
//! endpoint the tests call.
//!
//! A request is made by a [`Caller`] (`app.admin()`, `app.user()`, `app.viewer()`,
//! `app.by(key)` or `app.anonymous()`) and answers an [`Answer`]: status, headers and
//! the body as JSON. [`Answer::want`] checks the status (and that an error is
//! problem+json) and gives the body.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use flowstore_server::{app, AppState, ServerConfig};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::fixtures::api_key;

/// The server in process and a key of each role.
pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub backend: Arc<dyn Backend>,
    pub admin: String,
    pub user: String,
    pub viewer: String,
}

/// An answer: status, headers and the body parsed as JSON (`Null` when empty, a
/// string when it is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub method: String,
    pub path: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub content_type: String,
    pub body: Value,
}

impl Answer {
    /// Asserts the status is `status` (and an error is problem+json); the body.
    #[track_caller]
    pub fn want(self, status: u16) -> Value {
        let (method, path) = (&self.method, &self.path);
        assert_eq!(
            self.status.as_u16(),
            status,
            "{method} {path}: {}",
            self.body
        );
        if status >= 400 {
            assert!(
                self.content_type.starts_with("application/problem+json"),
                "{method} {path}"
            );
        }
        self.body
    }

    /// [`Answer::want`], then the body's `id` as a string.
    #[track_caller]
    pub fn want_id(self, status: u16) -> String {
        let body = self.want(status);
        body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("an id in {body}"))
            .to_string()
    }

    /// The status as a number.
    pub fn code(&self) -> u16 {
        self.status.as_u16()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

impl TestApp {
    /// The app on `backend`, with an admin's, a user's and a viewer's key.
    pub async fn new(backend: Arc<dyn Backend>) -> TestApp {
        TestApp::with_state(AppState::new(backend.clone()), backend).await
    }

    /// The app with a server configuration of its own.
    pub async fn with_config(backend: Arc<dyn Backend>, config: ServerConfig) -> TestApp {
        TestApp::with_state(AppState::with_config(backend.clone(), config), backend).await
    }

    /// The app on `state` (whose backend is `backend`).
    pub async fn with_state(state: AppState, backend: Arc<dyn Backend>) -> TestApp {
        TestApp {
            router: app(state.clone()),
            state,
            admin: api_key(&backend, Role::Admin).await,
            user: api_key(&backend, Role::User).await,
            viewer: api_key(&backend, Role::Viewer).await,
            backend,
        }
    }

    /// Sends a request with `key` (none when `None`) and a raw body.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b)
            }
            None => Body::empty(),
        };
        self.send_request(req.body(body).unwrap()).await
    }

    /// POSTs `body` to a trigger's URL (`path`, such as `/hooks/fstrg_…`) without a
    /// key, with the headers given (`Content-Type: application/json` unless given).
    pub async fn hook(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Answer {
        let mut req = Request::builder().method("POST").uri(path);
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send_request(req.body(Body::from(body.to_vec())).unwrap())
            .await
    }

    /// Sends a request built by the test.
    pub async fn send_request(&self, req: Request<Body>) -> Answer {
        let (method, path) = (req.method().to_string(), req.uri().to_string());
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let content_type = headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Answer {
            method,
            path,
            status,
            headers,
            content_type,
            body,
        }
    }

    /// Opens the event stream (`GET /api/v1/events?{query}`) with `key` and reads its
    /// events (each the `data` of a frame, the event as JSON) until one satisfies
    /// `until`, which is the last one returned. Panics when the stream does not open
    /// or `until` is not met within 15 s.
    pub async fn events(
        &self,
        key: &str,
        query: &str,
        until: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let req = Request::builder()
            .uri(format!("/api/v1/events?{query}"))
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "GET /api/v1/events?{query}");
        let mut body = res.into_body();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        let (mut text, mut out) = (String::new(), Vec::new());
        loop {
            let frame = tokio::time::timeout_at(deadline, body.frame())
                .await
                .unwrap_or_else(|_| panic!("no event ended the wait; got {out:?}"))
                .expect("the stream stays open")
                .unwrap();
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            text.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = text.find("\n\n") {
                let sse: String = text.drain(..end + 2).collect();
                let Some(data) = sse.lines().find_map(|l| l.strip_prefix("data:")) else {
                    continue; // a keep-alive comment
                };
                let ev: Value = serde_json::from_str(data.trim()).unwrap();
                let done = until(&ev);
                out.push(ev);
                if done {
                    return out;
                }
            }
        }
    }

    /// Sends JSON with `key`.
    pub async fn call(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> Answer {
        self.by(key).send(method, path, body).await
    }

    /// Requests made with `key`.
    pub fn by<'a>(&'a self, key: &str) -> Caller<'a> {
        Caller {
            app: self,
            key: Some(key.to_string()),
        }
    }

    /// Requests made with no key.
    pub fn anonymous(&self) -> Caller<'_> {
        Caller {
            app: self,
            key: None,
        }
    }

    /// Requests made with the admin's key.
    pub fn admin(&self) -> Caller<'_> {
        self.by(&self.admin)
    }

    /// Requests made with the user's key.
    pub fn user(&self) -> Caller<'_> {
        self.by(&self.user)
    }

    /// Requests made with the viewer's key.
    pub fn viewer(&self) -> Caller<'_> {
        self.by(&self.viewer)
    }
}

/// Requests made with one key (or none).
pub struct Caller<'a> {
    app: &'a TestApp,
    key: Option<String>,
}

/// Declares methods of [`Caller`] for endpoints: `name(args) => METHOD "path"`,
/// the path a `format!` string of the arguments; a trailing `body` takes the JSON body.
macro_rules! endpoints {
    ($($(#[$doc:meta])* $name:ident($($arg:ident),*) => $method:literal $path:literal $(, $body:ident)?;)*) => {
        impl Caller<'_> {
            $(
                $(#[$doc])*
                pub async fn $name(&self, $($arg: impl std::fmt::Display + Copy,)* $($body: Value)?) -> Answer {
                    #[allow(unused_mut, unused_assignments)]
                    let mut json: Option<Value> = None;
                    $(json = Some($body);)?
                    self.send($method, &format!($path), json).await
                }
            )*
        }
    };
}

impl Caller<'_> {
    /// Sends `body` (none when `None`) as JSON.
    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.app
            .raw(
                method,
                path,
                self.key.as_deref(),
                body.map(|b| serde_json::to_vec(&b).unwrap()),
            )
            .await
    }

    /// Sends raw bytes as the body.
    pub async fn send_bytes(&self, method: &str, path: &str, body: Vec<u8>) -> Answer {
        self.app
            .raw(method, path, self.key.as_deref(), Some(body))
            .await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send("DELETE", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send("POST", path, Some(body)).await
    }

    /// A POST with no body.
    pub async fn post_empty(&self, path: &str) -> Answer {
        self.send("POST", path, None).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.send("PATCH", path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.send("PUT", path, Some(body)).await
    }
}

endpoints! {
    // projects
    create_project() => "POST" "/api/v1/projects", body;
    get_project(id) => "GET" "/api/v1/projects/{id}";
    project_summary(id) => "GET" "/api/v1/projects/{id}/summary";
    // workflows
    create_workflow() => "POST" "/api/v1/workflows", body;
    list_workflows() => "GET" "/api/v1/workflows";
    get_workflow(id) => "GET" "/api/v1/workflows/{id}";
    update_workflow(id) => "PATCH" "/api/v1/workflows/{id}", body;
    delete_workflow(id) => "DELETE" "/api/v1/workflows/{id}";
    archive_workflow(id) => "POST" "/api/v1/workflows/{id}/archive";
    duplicate_workflow(id) => "POST" "/api/v1/workflows/{id}/duplicate", body;
    share_workflow(id) => "POST" "/api/v1/workflows/{id}/shares", body;
    workflow_summary(id) => "GET" "/api/v1/workflows/{id}/summary";
    workflow_version(id, version) => "GET" "/api/v1/workflows/{id}/versions/{version}";
    // runs
    start_run(workflow) => "POST" "/api/v1/workflows/{workflow}/runs", body;
    start_runs(workflow) => "POST" "/api/v1/workflows/{workflow}/runs/batch", body;
    get_run(id) => "GET" "/api/v1/runs/{id}";
    run_tasks(id) => "GET" "/api/v1/runs/{id}/tasks";
    run_progress(id) => "GET" "/api/v1/runs/{id}/progress";
    cancel_run(id) => "POST" "/api/v1/runs/{id}/cancel";
    rerun(id) => "POST" "/api/v1/runs/{id}/rerun";
    retry_run(id) => "POST" "/api/v1/runs/{id}/retry";
    run_attempts(id) => "GET" "/api/v1/runs/{id}/attempts";
    task_attempts(id) => "GET" "/api/v1/tasks/{id}/attempts";
    // analytics (the ones with a query string go through `get`)
    queues() => "GET" "/api/v1/queues";
    workers() => "GET" "/api/v1/workers";
    agent_summary() => "GET" "/api/v1/summaries/agents";
    // tasks
    create_task() => "POST" "/api/v1/tasks", body;
    get_task(id) => "GET" "/api/v1/tasks/{id}";
    update_task(id) => "PATCH" "/api/v1/tasks/{id}", body;
    delete_task(id) => "DELETE" "/api/v1/tasks/{id}";
    task_dependencies(id) => "GET" "/api/v1/tasks/{id}/dependencies";
    add_task_dependency(id) => "POST" "/api/v1/tasks/{id}/dependencies", body;
    remove_task_dependency(id, dep) => "DELETE" "/api/v1/tasks/{id}/dependencies/{dep}";
    // pull requests
    create_pull_request() => "POST" "/api/v1/pull-requests", body;
    get_pull_request(id) => "GET" "/api/v1/pull-requests/{id}";
    set_pull_request_status(id) => "POST" "/api/v1/pull-requests/{id}/status", body;
    // the worker protocol
    claim() => "POST" "/api/v1/worker/claim", body;
    complete() => "POST" "/api/v1/worker/complete", body;
    complete_batch() => "POST" "/api/v1/worker/complete-batch", body;
    fail() => "POST" "/api/v1/worker/fail", body;
    heartbeat() => "POST" "/api/v1/worker/heartbeat", body;
    // the registry and components
    create_handler() => "POST" "/api/v1/handlers", body;
    list_handlers() => "GET" "/api/v1/handlers";
    create_component() => "POST" "/api/v1/components", body;
    list_components() => "GET" "/api/v1/components";
    // people, sessions and keys
    create_user() => "POST" "/api/v1/users", body;
    list_users() => "GET" "/api/v1/users";
    get_user(id) => "GET" "/api/v1/users/{id}";
    update_user(id) => "PATCH" "/api/v1/users/{id}", body;
    delete_user(id) => "DELETE" "/api/v1/users/{id}";
    me() => "GET" "/api/v1/users/me";
    create_team() => "POST" "/api/v1/teams", body;
    delete_team(id) => "DELETE" "/api/v1/teams/{id}";
    add_team_member(team) => "POST" "/api/v1/teams/{team}/members", body;
    team_members(team) => "GET" "/api/v1/teams/{team}/members";
    sign_in() => "POST" "/api/v1/sessions", body;
    current_session() => "GET" "/api/v1/sessions/current";
    sign_out() => "DELETE" "/api/v1/sessions/current";
    create_api_key() => "POST" "/api/v1/apikeys", body;
    list_api_keys() => "GET" "/api/v1/apikeys";
    delete_api_key(id) => "DELETE" "/api/v1/apikeys/{id}";
    list_notifications() => "GET" "/api/v1/notifications";
    // integrations
    create_credential() => "POST" "/api/v1/credentials", body;
    list_credentials() => "GET" "/api/v1/credentials";
    create_webhook() => "POST" "/api/v1/webhooks", body;
    list_webhooks() => "GET" "/api/v1/webhooks";
    webhook_deliveries(id) => "GET" "/api/v1/webhooks/{id}/deliveries";
    // incoming webhook triggers (firing one is `TestApp::hook`)
    create_trigger(workflow) => "POST" "/api/v1/workflows/{workflow}/triggers", body;
    list_triggers(workflow) => "GET" "/api/v1/workflows/{workflow}/triggers";
    get_trigger(id) => "GET" "/api/v1/triggers/{id}";
    update_trigger(id) => "PATCH" "/api/v1/triggers/{id}", body;
    delete_trigger(id) => "DELETE" "/api/v1/triggers/{id}";
    rotate_trigger(id) => "POST" "/api/v1/triggers/{id}/rotate";
    // operations
    set_configuration() => "PUT" "/api/v1/configurations", body;
    write_log() => "POST" "/api/v1/logs", body;
    record_metrics() => "POST" "/api/v1/system-metrics", body;
    list_audit() => "GET" "/api/v1/audit";
    verify_audit() => "GET" "/api/v1/audit/verify";
}

impl Answer {
    /// Asserts the answer is a problem of `status` whose `field` is `field`.
    #[track_caller]
    pub fn want_field(&self, status: u16, field: &str) {
        assert_eq!(
            (self.status.as_u16(), self.body["field"].as_str()),
            (status, Some(field)),
            "{} {}: {}",
            self.method,
            self.path,
            self.body
        );
    }
}

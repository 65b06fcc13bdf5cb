//! The OpenAPI document against the server's real answers, on SQLite and
//! PostgreSQL: every documented path is routed; and for real requests on every
//! resource (create, list, get, change, the worker protocol, errors) each answer's
//! status is documented for its operation, its media type is documented for that
//! status, and its body validates against the documented schema (as does each
//! accepted request body against the documented request schema).

#[macro_use]
mod common;
#[path = "openapi/validate.rs"]
mod validate;

use std::sync::Arc;

use common::{user_key, Client};
use flowstore_core::model::identity::Role;
use flowstore_core::model::identity_access::NewNotification;
use flowstore_core::Backend;
use serde_json::{json, Value};
use validate::Validator;

both_backends!(answers_match_the_document, every_documented_path_is_routed);

/// A client that checks every answer against the document.
struct Checked {
    c: Client,
    doc: Value,
}

/// `template` with each `{…}` replaced by the next of `args`.
fn fill(template: &str, args: &[&str]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').unwrap() + open;
        out.push_str(&rest[..open]);
        out.push_str(args.next().expect("an argument for each placeholder"));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

impl Checked {
    async fn new(b: Arc<dyn Backend>) -> Checked {
        let c = Client::new(b).await;
        let doc = c.raw("GET", "/api/v1/openapi.json", None, None).await.body;
        Checked { c, doc }
    }

    /// The documented operation of `method` on `template` (path part only).
    fn operation(&self, method: &str, template: &str) -> &Value {
        let path = template.split('?').next().unwrap();
        let op = &self.doc["paths"][path][method.to_lowercase()];
        assert!(op.is_object(), "{method} {path} is not documented");
        op
    }

    /// Sends the request, asserts the status, checks the answer against the
    /// document and returns its body.
    async fn call(
        &self,
        method: &str,
        template: &str,
        args: &[&str],
        key: Option<&str>,
        body: Option<Value>,
        want: u16,
    ) -> Value {
        let url = fill(template, args);
        let raw = body.as_ref().map(|b| serde_json::to_vec(b).unwrap());
        let r = self.c.raw(method, &url, key, raw).await;
        let status = r.status.as_u16();
        assert_eq!(status, want, "{method} {url}: {}", r.body);
        self.check(
            method,
            template,
            body.as_ref(),
            status,
            &r.content_type,
            &r.body,
        );
        r.body
    }

    fn check(
        &self,
        method: &str,
        template: &str,
        request: Option<&Value>,
        status: u16,
        content_type: &str,
        body: &Value,
    ) {
        let op = self.operation(method, template);
        let v = Validator::new(&self.doc);
        let strict = Validator::strict(&self.doc);
        let what = format!("{method} {template} → {status}");
        if let (Some(req), true) = (request, (200..300).contains(&status)) {
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            assert!(
                schema.is_object(),
                "{what}: the request body is not documented"
            );
            let errors = v.errors(schema, req);
            assert!(
                errors.is_empty(),
                "{what}: the accepted request {req} breaks its schema: {errors:#?}"
            );
        }
        let response = &op["responses"][status.to_string()];
        let shown = short(body);
        assert!(
            response.is_object(),
            "{what}: status not documented: {shown}"
        );
        if body.is_null() {
            return;
        }
        let media = content_type.split(';').next().unwrap().trim();
        let content = &response["content"][media];
        assert!(
            content.is_object(),
            "{what}: {media} not documented ({}): {shown}",
            response["content"]
        );
        if media.ends_with("json") {
            let schema = &content["schema"];
            assert!(schema.is_object(), "{what}: no schema for the body {shown}");
            let errors = strict.errors(schema, body);
            assert!(
                errors.is_empty(),
                "{what}: the body breaks its schema: {errors:#?}\n{shown}"
            );
        }
    }

    /// Asserts that the documented request schema refuses `body` too (the server
    /// refused it with 422 for an unknown field).
    fn schema_refuses(&self, method: &str, template: &str, body: &Value) {
        let op = self.operation(method, template);
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        let errors = Validator::new(&self.doc).errors(schema, body);
        assert!(
            !errors.is_empty(),
            "{method} {template}: the schema accepts {body}"
        );
    }
}

/// A body cut short for a failure message.
fn short(body: &Value) -> String {
    let text = body.to_string();
    match text.char_indices().nth(600) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

fn id(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_string()
}

async fn answers_match_the_document(b: Arc<dyn Backend>) {
    let t = Checked::new(b.clone()).await;
    let (admin, user, viewer) = (t.c.admin.clone(), t.c.user.clone(), t.c.viewer.clone());
    let (a_id, a) = user_key(&b, Role::User, "a@x.io").await;
    let (a, admin, user, viewer) = (
        Some(a.as_str()),
        Some(admin.as_str()),
        Some(user.as_str()),
        Some(viewer.as_str()),
    );

    // operations and the document itself
    t.call("GET", "/healthz", &[], None, None, 200).await;
    t.call("GET", "/readyz", &[], None, None, 200).await;
    t.call("GET", "/metrics", &[], None, None, 200).await;
    t.call("GET", "/api/v1/openapi.json", &[], None, None, 200)
        .await;

    // generic errors: no key, a viewer writing, malformed and unknown fields, too big
    t.call("GET", "/api/v1/projects", &[], None, None, 401)
        .await;
    t.call(
        "POST",
        "/api/v1/projects",
        &[],
        viewer,
        Some(json!({"name": "v"})),
        403,
    )
    .await;
    let r =
        t.c.raw("POST", "/api/v1/projects", a, Some(b"{\"name\": ".to_vec()))
            .await;
    assert_eq!(r.status, 400);
    t.check(
        "POST",
        "/api/v1/projects",
        None,
        400,
        &r.content_type,
        &r.body,
    );
    let unknown = json!({"name": "p", "colour": "red"});
    t.call(
        "POST",
        "/api/v1/projects",
        &[],
        a,
        Some(unknown.clone()),
        422,
    )
    .await;
    t.schema_refuses("POST", "/api/v1/projects", &unknown);
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let r =
        t.c.raw("POST", "/api/v1/projects", a, Some(huge.into_bytes()))
            .await;
    assert_eq!(r.status, 413);
    t.check(
        "POST",
        "/api/v1/projects",
        None,
        413,
        &r.content_type,
        &r.body,
    );
    t.call("GET", "/api/v1/projects?limit=100000", &[], a, None, 422)
        .await;

    // projects
    let p = t.call("POST", "/api/v1/projects", &[], a, Some(json!({"name": "site", "repository_url": "https://git.example/site", "settings": {"k": 1}})), 201).await;
    let pid = id(&p);
    t.call(
        "POST",
        "/api/v1/projects",
        &[],
        a,
        Some(json!({"name": "site"})),
        409,
    )
    .await;
    t.call("GET", "/api/v1/projects", &[], a, None, 200).await;
    t.call("GET", "/api/v1/projects/{id}", &[&pid], a, None, 200)
        .await;
    t.call(
        "GET",
        "/api/v1/projects/{id}",
        &["0190b6a0-0000-7000-8000-000000000000"],
        a,
        None,
        404,
    )
    .await;
    t.call(
        "PATCH",
        "/api/v1/projects/{id}",
        &[&pid],
        a,
        Some(json!({"description": "the site", "repository_name": null})),
        200,
    )
    .await;

    // handlers, workflows, versions, shares
    for h in ["shell", "docker"] {
        t.call(
            "POST",
            "/api/v1/handlers",
            &[],
            admin,
            Some(json!({"handler_type": h, "handler_name": h, "capabilities": ["exec"]})),
            201,
        )
        .await;
    }
    t.call("GET", "/api/v1/handlers", &[], viewer, None, 200)
        .await;
    t.call("GET", "/api/v1/handlers?all=true", &[], viewer, None, 200)
        .await;
    t.call(
        "GET",
        "/api/v1/handlers/{handler_type}",
        &["shell"],
        viewer,
        None,
        200,
    )
    .await;
    t.call(
        "PATCH",
        "/api/v1/handlers/{handler_type}",
        &["shell"],
        admin,
        Some(json!({"handler_name": "Shell"})),
        200,
    )
    .await;
    t.call(
        "POST",
        "/api/v1/handlers/{handler_type}/deactivate",
        &["docker"],
        admin,
        None,
        200,
    )
    .await;
    let steps = json!([{"key": "build", "handler": "shell"}, {"key": "test", "handler": "shell", "depends_on": ["build"], "max_retries": 1}]);
    let wf = t.call("POST", "/api/v1/workflows", &[], a, Some(json!({"name": "ci", "status": "active", "project_id": pid, "tags": ["ci"], "definition": {"steps": steps}})), 201).await;
    let wid = id(&wf);
    t.call("POST", "/api/v1/workflows", &[], a, Some(json!({"name": "bad", "definition": {"steps": [{"key": "a", "handler": "shell", "depends_on": ["zz"]}]}})), 422).await;
    t.call("GET", "/api/v1/workflows", &[], a, None, 200).await;
    t.call("GET", "/api/v1/workflows/{id}", &[&wid], a, None, 200)
        .await;
    t.call(
        "PATCH",
        "/api/v1/workflows/{id}",
        &[&wid],
        a,
        Some(json!({"description": "builds and tests"})),
        200,
    )
    .await;
    t.call(
        "GET",
        "/api/v1/workflows/{id}/versions",
        &[&wid],
        a,
        None,
        200,
    )
    .await;
    let share = t
        .call(
            "POST",
            "/api/v1/workflows/{id}/shares",
            &[&wid],
            a,
            Some(json!({"user_id": a_id, "permission": "read"})),
            201,
        )
        .await;
    t.call(
        "GET",
        "/api/v1/workflows/{id}/shares",
        &[&wid],
        a,
        None,
        200,
    )
    .await;
    t.call(
        "DELETE",
        "/api/v1/workflows/{id}/shares/{share_id}",
        &[&wid, &id(&share)],
        a,
        None,
        204,
    )
    .await;

    // runs and the worker protocol
    let started = t
        .call(
            "POST",
            "/api/v1/workflows/{id}/runs",
            &[&wid],
            a,
            Some(json!({"input": {"branch": "main"}})),
            201,
        )
        .await;
    let rid = started["run"]["id"].as_str().unwrap().to_string();
    t.call("GET", "/api/v1/runs/{id}", &[&rid], a, None, 200)
        .await;
    t.call("GET", "/api/v1/runs?workflow_id={}", &[&wid], a, None, 200)
        .await;
    t.call("GET", "/api/v1/runs/{id}/tasks", &[&rid], a, None, 200)
        .await;
    t.call("GET", "/api/v1/runs/{id}/progress", &[&rid], a, None, 200)
        .await;
    let claim =
        json!({"worker_id": "w1", "handler_types": ["shell"], "limit": 5, "lease_ms": 30000});
    let claimed = t
        .call(
            "POST",
            "/api/v1/worker/claim",
            &[],
            a,
            Some(claim.clone()),
            200,
        )
        .await;
    let task = &claimed[0];
    let (tid, attempt) = (task["task_id"].clone(), task["attempt"].clone());
    t.call(
        "POST",
        "/api/v1/worker/heartbeat",
        &[],
        a,
        Some(json!({"task_id": tid, "attempt": attempt, "lease_ms": 30000})),
        200,
    )
    .await;
    t.call(
        "POST",
        "/api/v1/worker/complete",
        &[],
        a,
        Some(json!({"task_id": tid, "attempt": 99, "output": {}})),
        409,
    )
    .await;
    t.call(
        "POST",
        "/api/v1/worker/complete",
        &[],
        a,
        Some(json!({"task_id": tid, "attempt": attempt, "output": {"ok": true}})),
        200,
    )
    .await;
    let next = t
        .call(
            "POST",
            "/api/v1/worker/claim",
            &[],
            a,
            Some(claim.clone()),
            200,
        )
        .await;
    let (tid, attempt) = (next[0]["task_id"].clone(), next[0]["attempt"].clone());
    t.call(
        "POST",
        "/api/v1/worker/fail",
        &[],
        a,
        Some(json!({"task_id": tid, "attempt": attempt, "error": {"exit": 1}, "retryable": true})),
        200,
    )
    .await;
    t.call(
        "POST",
        "/api/v1/worker/claim",
        &[],
        a,
        Some(json!({"worker_id": "w1", "handler_types": [], "limit": 1, "lease_ms": 30000})),
        422,
    )
    .await;
    t.call("POST", "/api/v1/runs/{id}/cancel", &[&rid], a, None, 200)
        .await;

    // seed 000's executions and metrics
    let exec = json!({"execution_id": "exec-1", "workflow_id": "wf-legacy", "workflow_name": "legacy", "status": "running", "metadata": {"k": "v"}});
    t.call(
        "POST",
        "/api/v1/executions",
        &[],
        admin,
        Some(exec.clone()),
        201,
    )
    .await;
    t.call("POST", "/api/v1/executions", &[], admin, Some(exec), 409)
        .await;
    t.call(
        "GET",
        "/api/v1/executions/{execution_id}",
        &["exec-1"],
        admin,
        None,
        200,
    )
    .await;
    t.call(
        "PATCH",
        "/api/v1/executions/{execution_id}",
        &["exec-1"],
        admin,
        Some(json!({"status": "completed"})),
        200,
    )
    .await;
    t.call(
        "GET",
        "/api/v1/executions?workflow_id={}",
        &["wf-legacy"],
        admin,
        None,
        200,
    )
    .await;
    t.call(
        "GET",
        "/api/v1/executions/statistics?workflow_id={}",
        &["wf-legacy"],
        admin,
        None,
        200,
    )
    .await;
    t.call(
        "GET",
        "/api/v1/executions/{execution_id}/metrics",
        &["exec-1"],
        admin,
        None,
        200,
    )
    .await;
    t.call("GET", "/api/v1/metrics/aggregate", &[], admin, None, 200)
        .await;

    // tasks and pull requests
    let task = t.call("POST", "/api/v1/tasks", &[], a, Some(json!({"title": "parser", "project_id": pid, "tags": ["rust"], "requirements": {"lang": "rust"}})), 201).await;
    let task_id = id(&task);
    t.call("GET", "/api/v1/tasks/{id}", &[&task_id], a, None, 200)
        .await;
    t.call(
        "PATCH",
        "/api/v1/tasks/{id}",
        &[&task_id],
        a,
        Some(json!({"priority": 3, "status": "ready"})),
        200,
    )
    .await;
    t.call("GET", "/api/v1/tasks?tag=rust", &[], a, None, 200)
        .await;
    let pr = t.call("POST", "/api/v1/pull-requests", &[], a, Some(json!({"project_id": pid, "task_id": task_id, "pr_number": 7, "repository_url": "https://git.example/site", "branch_name": "feat", "title": "Parser"})), 201).await;
    let prid = id(&pr);
    t.call("GET", "/api/v1/pull-requests/{id}", &[&prid], a, None, 200)
        .await;
    t.call(
        "POST",
        "/api/v1/pull-requests/{id}/status",
        &[&prid],
        a,
        Some(json!({"status": "open"})),
        200,
    )
    .await;
    t.call(
        "PUT",
        "/api/v1/pull-requests/{id}/validation",
        &[&prid],
        a,
        Some(json!({"validation_results": {"tests": "passed"}})),
        200,
    )
    .await;
    t.call(
        "GET",
        "/api/v1/pull-requests?project_id={}",
        &[&pid],
        a,
        None,
        200,
    )
    .await;

    // components, logs, configurations
    t.call("POST", "/api/v1/components", &[], admin, Some(json!({"name": "worker-1", "type": "worker", "endpoints": {"http": "http://127.0.0.1:1"}})), 201).await;
    t.call(
        "POST",
        "/api/v1/components/{which}/heartbeat",
        &["worker-1"],
        admin,
        Some(json!({"health_status": "healthy"})),
        200,
    )
    .await;
    t.call("GET", "/api/v1/components", &[], viewer, None, 200)
        .await;
    t.call("GET", "/api/v1/components/health", &[], viewer, None, 200)
        .await;
    t.call(
        "GET",
        "/api/v1/components/{which}",
        &["worker-1"],
        viewer,
        None,
        200,
    )
    .await;
    t.call(
        "DELETE",
        "/api/v1/components/{which}",
        &["worker-1"],
        admin,
        None,
        204,
    )
    .await;
    t.call("POST", "/api/v1/logs", &[], admin, Some(json!([{"level": "info", "message": "hello", "component_name": "w"}, {"level": "error", "message": "boom"}])), 201).await;
    t.call(
        "POST",
        "/api/v1/logs",
        &[],
        admin,
        Some(json!({"level": "warn", "message": "one"})),
        201,
    )
    .await;
    t.call("GET", "/api/v1/logs?min_level=info", &[], admin, None, 200)
        .await;
    t.call(
        "PUT",
        "/api/v1/configurations",
        &[],
        admin,
        Some(json!({"key": "smtp.password", "value": "hunter2", "is_sensitive": true})),
        200,
    )
    .await;
    t.call(
        "PUT",
        "/api/v1/configurations",
        &[],
        admin,
        Some(json!({"key": "ui.theme", "value": {"mode": "dark"}})),
        200,
    )
    .await;
    t.call("GET", "/api/v1/configurations", &[], admin, None, 200)
        .await;
    t.call(
        "GET",
        "/api/v1/configurations/{key}",
        &["smtp.password"],
        admin,
        None,
        200,
    )
    .await;
    t.call(
        "DELETE",
        "/api/v1/configurations/{key}",
        &["ui.theme"],
        admin,
        None,
        204,
    )
    .await;

    // people, notifications, keys
    let u = t
        .call(
            "POST",
            "/api/v1/users",
            &[],
            admin,
            Some(json!({"email": "New@X.io", "display_name": "N", "role": "viewer"})),
            201,
        )
        .await;
    t.call("GET", "/api/v1/users", &[], admin, None, 200).await;
    t.call("GET", "/api/v1/users/me", &[], a, None, 200).await;
    t.call("GET", "/api/v1/users/{id}", &[&id(&u)], admin, None, 200)
        .await;
    let team = t
        .call(
            "POST",
            "/api/v1/teams",
            &[],
            admin,
            Some(json!({"name": "core"})),
            201,
        )
        .await;
    let team_id = id(&team);
    t.call(
        "POST",
        "/api/v1/teams/{id}/members",
        &[&team_id],
        admin,
        Some(json!({"user_id": id(&u), "role": "member"})),
        201,
    )
    .await;
    t.call(
        "GET",
        "/api/v1/teams/{id}/members",
        &[&team_id],
        admin,
        None,
        200,
    )
    .await;
    t.call("GET", "/api/v1/teams", &[], admin, None, 200).await;
    let mut tx = b.begin().await.unwrap();
    let n = tx
        .create_notification(NewNotification {
            user_id: a_id.parse().unwrap(),
            kind: "info".parse().unwrap(),
            title: "done".into(),
            message: None,
            data: None,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    t.call("GET", "/api/v1/notifications", &[], a, None, 200)
        .await;
    t.call(
        "POST",
        "/api/v1/notifications/{id}/read",
        &[&n.id.to_string()],
        a,
        None,
        200,
    )
    .await;
    t.call("POST", "/api/v1/notifications/read-all", &[], a, None, 200)
        .await;
    let key = t
        .call(
            "POST",
            "/api/v1/apikeys",
            &[],
            admin,
            Some(json!({"name": "ci", "role": "user"})),
            201,
        )
        .await;
    t.call("GET", "/api/v1/apikeys", &[], a, None, 200).await;
    t.call(
        "GET",
        "/api/v1/apikeys?user_id={}",
        &[&a_id],
        admin,
        None,
        200,
    )
    .await;
    t.call(
        "DELETE",
        "/api/v1/apikeys/{id}",
        &[&id(&key["api_key"])],
        admin,
        None,
        204,
    )
    .await;

    // deleting last, so that everything above had something to point at
    t.call("DELETE", "/api/v1/projects/{id}", &[&pid], a, None, 204)
        .await;
    let _ = user;
}

/// Every documented path and method is routed (never the fallback's 404 or a 405),
/// and whatever it answers to a request with placeholder IDs and an empty body is a
/// documented status whose body validates.
async fn every_documented_path_is_routed(b: Arc<dyn Backend>) {
    let t = Checked::new(b).await;
    let paths = t.doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 50, "{} paths", paths.len());
    let zero = "00000000-0000-0000-0000-000000000000";
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let concrete: String = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { zero } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            // the event stream never ends: ask it something it refuses at once
            let concrete = if path == "/api/v1/events" {
                format!("{concrete}?after=x")
            } else {
                concrete
            };
            let body = (method != "get" && method != "delete").then(|| b"{}".to_vec());
            let r =
                t.c.raw(&method.to_uppercase(), &concrete, Some(&t.c.admin), body)
                    .await;
            assert_ne!(r.status, 405, "{method} {path} is routed");
            assert!(r.status.as_u16() < 500, "{method} {path}: {}", r.body);
            if r.status == 404 {
                assert_ne!(
                    r.body["detail"], "no such route",
                    "{method} {path} is routed"
                );
            }
            t.check(
                method,
                path,
                None,
                r.status.as_u16(),
                &r.content_type,
                &r.body,
            );
        }
    }
}

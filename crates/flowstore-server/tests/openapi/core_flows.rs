//! The flows of `answers_match_the_document` for operations, generic errors,
//! projects, handlers, workflows, runs, the worker protocol and seed 000's
//! executions.

use std::sync::Arc;

use flowstore_core::Backend;
use serde_json::json;

use super::{id, Checked, Keys, TestApp};

/// Returns the ID of the project the other flows hang their objects on.
pub async fn operations_to_executions(t: &Checked, b: &Arc<dyn Backend>, k: &Keys) -> String {
    let (a, admin, viewer) = (
        Some(k.a.as_str()),
        Some(k.admin.as_str()),
        Some(k.viewer.as_str()),
    );
    let a_id = k.a_id.clone();

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
    t.check("POST", "/api/v1/projects", None, &r);
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
    t.check("POST", "/api/v1/projects", None, &r);
    t.call("GET", "/api/v1/projects?limit=100000", &[], a, None, 422)
        .await;
    // a key over its rate: 429 with Retry-After
    let config = flowstore_server::ServerConfig {
        rate_per_second: 0.5,
        rate_burst: 1.0,
        ..Default::default()
    };
    let state = flowstore_server::AppState::with_config(b.clone(), config);
    let tight = Checked {
        c: TestApp {
            router: flowstore_server::app(state),
            ..TestApp::new(b.clone()).await
        },
        doc: t.doc.clone(),
    };
    let v = Some(tight.c.viewer.as_str());
    tight
        .call("GET", "/api/v1/handlers", &[], v, None, 200)
        .await;
    tight
        .call("GET", "/api/v1/handlers", &[], v, None, 429)
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
        Some(json!({"task_id": tid, "attempt": attempt, "output": "built: any JSON is an output"})),
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
    pid
}

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
    walk!(t;
        None GET "/healthz" [] => 200;
        None GET "/readyz" [] => 200;
        None GET "/metrics" [] => 200;
        None GET "/api/v1/openapi.json" [] => 200;
    );

    // generic errors: no key, a viewer writing, malformed and unknown fields, too big
    walk!(t;
        None GET "/api/v1/projects" [] => 401;
        viewer POST "/api/v1/projects" [] with {"name": "v"} => 403;
    );
    let r =
        t.c.raw("POST", "/api/v1/projects", a, Some(b"{\"name\": ".to_vec()))
            .await;
    assert_eq!(r.status, 400);
    t.check("POST", "/api/v1/projects", None, &r);
    let unknown = json!({"name": "p", "colour": "red"});
    walk!(t;
        a POST "/api/v1/projects" [] with (unknown.clone()) => 422;
    );
    t.schema_refuses("POST", "/api/v1/projects", &unknown);
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let r =
        t.c.raw("POST", "/api/v1/projects", a, Some(huge.into_bytes()))
            .await;
    assert_eq!(r.status, 413);
    t.check("POST", "/api/v1/projects", None, &r);
    walk!(t;
        a GET "/api/v1/projects?limit=100000" [] => 422;
    );
    // a key over its rate: 429 with Retry-After
    let config = flowstore_server::ServerConfig {
        rate_per_second: 0.5,
        rate_burst: 1.0,
        ..Default::default()
    };
    let tight = Checked {
        c: TestApp::with_config(b.clone(), config).await,
        doc: t.doc.clone(),
    };
    let v = Some(tight.c.viewer.as_str());
    walk!(tight;
        v GET "/api/v1/handlers" [] => 200;
        v GET "/api/v1/handlers" [] => 429;
    );

    // projects
    let p = t.call("POST", "/api/v1/projects", &[], a, Some(json!({"name": "site", "repository_url": "https://git.example/site", "settings": {"k": 1}})), 201).await;
    let pid = id(&p);
    walk!(t;
        a POST "/api/v1/projects" [] with {"name": "site"} => 409;
        a GET "/api/v1/projects" [] => 200;
        a GET "/api/v1/projects/{id}" [&pid] => 200;
        a GET "/api/v1/projects/{id}" ["0190b6a0-0000-7000-8000-000000000000"] => 404;
        a PATCH "/api/v1/projects/{id}" [&pid] with {"description": "the site", "repository_name": null} => 200;
    );

    // handlers, workflows, versions, shares
    for h in ["shell", "docker"] {
        walk!(t;
            admin POST "/api/v1/handlers" [] with {"handler_type": h, "handler_name": h, "capabilities": ["exec"]} => 201;
        );
    }
    walk!(t;
        viewer GET "/api/v1/handlers" [] => 200;
        viewer GET "/api/v1/handlers?all=true" [] => 200;
        viewer GET "/api/v1/handlers/{handler_type}" ["shell"] => 200;
        admin PATCH "/api/v1/handlers/{handler_type}" ["shell"] with {"handler_name": "Shell"} => 200;
        admin POST "/api/v1/handlers/{handler_type}/deactivate" ["docker"] => 200;
    );
    let steps = json!([{"key": "build", "handler": "shell"}, {"key": "test", "handler": "shell", "depends_on": ["build"], "max_retries": 1}]);
    let wf = t.call("POST", "/api/v1/workflows", &[], a, Some(json!({"name": "ci", "status": "active", "project_id": pid, "tags": ["ci"], "definition": {"steps": steps}})), 201).await;
    let wid = id(&wf);
    walk!(t;
        a POST "/api/v1/workflows" [] with {"name": "bad", "definition": {"steps": [{"key": "a", "handler": "shell", "depends_on": ["zz"]}]}} => 422;
        a GET "/api/v1/workflows" [] => 200;
        a GET "/api/v1/workflows/{id}" [&wid] => 200;
        a PATCH "/api/v1/workflows/{id}" [&wid] with {"description": "builds and tests"} => 200;
        a GET "/api/v1/workflows/{id}/versions" [&wid] => 200;
    );
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
    walk!(t;
        a GET "/api/v1/workflows/{id}/shares" [&wid] => 200;
        a DELETE "/api/v1/workflows/{id}/shares/{share_id}" [&wid, &id(&share)] => 204;
    );

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
    walk!(t;
        a GET "/api/v1/runs/{id}" [&rid] => 200;
        a GET "/api/v1/runs?workflow_id={}" [&wid] => 200;
        a GET "/api/v1/runs/{id}/tasks" [&rid] => 200;
        a GET "/api/v1/runs/{id}/progress" [&rid] => 200;
    );
    let claim =
        json!({"worker_id": "w1", "handler_types": ["shell"], "limit": 5, "lease_ms": 30000});
    let claim_one = || {
        t.call(
            "POST",
            "/api/v1/worker/claim",
            &[],
            a,
            Some(claim.clone()),
            200,
        )
    };
    let claimed = claim_one().await;
    let task = &claimed[0];
    let (tid, attempt) = (task["task_id"].clone(), task["attempt"].clone());
    walk!(t;
        a POST "/api/v1/worker/heartbeat" [] with {"task_id": tid, "attempt": attempt, "lease_ms": 30000} => 200;
        a POST "/api/v1/worker/complete" [] with {"task_id": tid, "attempt": 99, "output": {}} => 409;
        a POST "/api/v1/worker/complete" [] with {"task_id": tid, "attempt": attempt, "output": "built: any JSON is an output"} => 200;
    );
    let next = claim_one().await;
    let (tid, attempt) = (next[0]["task_id"].clone(), next[0]["attempt"].clone());
    walk!(t;
        a POST "/api/v1/worker/fail" [] with {"task_id": tid, "attempt": attempt, "error": {"exit": 1}, "retryable": true} => 200;
        a POST "/api/v1/worker/claim" [] with {"worker_id": "w1", "handler_types": [], "limit": 1, "lease_ms": 30000} => 422;
        a POST "/api/v1/runs/{id}/cancel" [&rid] => 200;
    );

    // seed 000's executions and metrics
    let exec = json!({"execution_id": "exec-1", "workflow_id": "wf-legacy", "workflow_name": "legacy", "status": "running", "metadata": {"k": "v"}});
    walk!(t;
        admin POST "/api/v1/executions" [] with (exec.clone()) => 201;
        admin POST "/api/v1/executions" [] with (exec) => 409;
        admin GET "/api/v1/executions/{execution_id}" ["exec-1"] => 200;
        admin PATCH "/api/v1/executions/{execution_id}" ["exec-1"] with {"status": "completed"} => 200;
        admin GET "/api/v1/executions?workflow_id={}" ["wf-legacy"] => 200;
        admin GET "/api/v1/executions/statistics?workflow_id={}" ["wf-legacy"] => 200;
        admin GET "/api/v1/executions/{execution_id}/metrics" ["exec-1"] => 200;
        admin GET "/api/v1/metrics/aggregate" [] => 200;
    );
    pid
}

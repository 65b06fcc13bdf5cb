//! The API in process (tower's `oneshot`), on SQLite and PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flowstore_core::Backend;
use flowstore_testkit::{both_backends, TestApp};
use serde_json::{json, Value};

both_backends!(
    a_run_completes_through_the_worker_protocol,
    errors_are_problem_details,
    claims_wait_for_work,
    nul_characters_are_refused_everywhere,
    answers_are_never_cached_or_sniffed
);

async fn setup(c: &TestApp, steps: Value) -> String {
    c.shell_handler().await;
    let body = json!({"name": "build", "status": "active", "definition": {"steps": steps}});
    c.user().create_workflow(body).await.want_id(201)
}

fn claim_body(wait_ms: u64) -> Value {
    json!({"worker_id": "w1", "handler_types": ["shell"], "limit": 10, "lease_ms": 30000, "wait_ms": wait_ms})
}

async fn a_run_completes_through_the_worker_protocol(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    let p = c.user().create_project(json!({"name": "p1"})).await;
    assert_eq!(p.status, 201, "{}", p.body);
    let pid = p.body["id"].as_str().unwrap();
    let got = c.viewer().get_project(pid).await;
    assert_eq!(
        (got.status.as_u16(), got.body["name"].clone()),
        (200, json!("p1"))
    );
    c.user().create_project(json!({"name": "p2"})).await;
    let page = c.viewer().get("/api/v1/projects?limit=1").await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 1);
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let page2 = c
        .viewer()
        .get(&format!("/api/v1/projects?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(page2.body["items"].as_array().unwrap().len(), 1);
    assert_ne!(page.body["items"][0]["id"], page2.body["items"][0]["id"]);
    let over = c.viewer().get("/api/v1/projects?limit=5000").await;
    assert_eq!(
        (over.status.as_u16(), over.body["field"].clone()),
        (422, json!("limit"))
    );

    let wf = setup(
        &c,
        json!([{"key": "a", "handler": "shell"}, {"key": "b", "handler": "shell", "depends_on": ["a"]}]),
    )
    .await;
    let started = c.user().start_run(&wf, json!({"input": {"n": 1}})).await;
    assert_eq!(started.status, 201, "{}", started.body);
    let run = started.body["run"]["id"].as_str().unwrap().to_string();
    let mut completed = 0;
    for _ in 0..10 {
        let claimed = c.user().claim(claim_body(0)).await;
        assert_eq!(claimed.status, 200, "{}", claimed.body);
        for t in claimed.body.as_array().unwrap() {
            let hb = c
                .user()
                .heartbeat(
                    json!({"task_id": t["task_id"], "attempt": t["attempt"], "lease_ms": 30000}),
                )
                .await;
            assert_eq!(hb.status, 200, "{}", hb.body);
            let done = c.user().complete(json!({"task_id": t["task_id"], "attempt": t["attempt"], "output": {"ok": true}}))
                .await;
            assert_eq!(done.status, 200, "{}", done.body);
            completed += 1;
        }
        if completed == 2 {
            break;
        }
    }
    assert_eq!(completed, 2);
    let r = c.viewer().get_run(&run).await;
    assert_eq!(r.body["status"], "completed", "{}", r.body);
    let tasks = c.viewer().run_tasks(&run).await;
    assert!(tasks
        .body
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["status"] == "completed"));
    let progress = c.viewer().run_progress(&run).await;
    assert_eq!(progress.status, 200, "{}", progress.body);
    let runs = c
        .viewer()
        .get(&format!("/api/v1/runs?workflow_id={wf}&status=completed"))
        .await;
    assert_eq!(
        runs.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        runs.body
    );
    let stats = c
        .viewer()
        .get(&format!("/api/v1/executions/statistics?workflow_id={wf}"))
        .await;
    assert_eq!(stats.body["completed_executions"], 1, "{}", stats.body);
    let versions = c
        .viewer()
        .get(&format!("/api/v1/workflows/{wf}/versions"))
        .await;
    assert_eq!(versions.body.as_array().unwrap().len(), 1);

    let metrics = c.raw("GET", "/metrics", None, None).await;
    let text = metrics.body.as_str().unwrap().to_string();
    assert!(text.contains("flowstore_http_requests_total{route=\"/api/v1/worker/claim\",method=\"POST\",status=\"200\"}"), "{text}");
    assert!(text.contains("flowstore_tasks_claimed_total 2"), "{text}");
    assert!(
        text.contains("flowstore_http_request_duration_seconds_bucket"),
        "{text}"
    );
    let doc = c.raw("GET", "/api/v1/openapi.json", None, None).await;
    assert!(doc.body["paths"]["/api/v1/worker/claim"]["post"].is_object());
    assert_eq!(c.raw("GET", "/readyz", None, None).await.status, 200);
}

async fn errors_are_problem_details(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    let problem = |a: &flowstore_testkit::Answer, status: u16| {
        assert_eq!(a.status.as_u16(), status, "{}", a.body);
        assert_eq!(a.content_type, "application/problem+json");
        assert_eq!(a.body["status"], status);
        assert!(
            a.body["type"].is_string()
                && a.body["title"].is_string()
                && a.body["detail"].is_string()
        );
    };
    let a = c
        .raw(
            "POST",
            "/api/v1/projects",
            Some(&c.user),
            Some(b"{\"name\": \"x\",\n  oops}".to_vec()),
        )
        .await;
    problem(&a, 400);
    assert!(
        a.body["detail"].as_str().unwrap().contains("line 2"),
        "{}",
        a.body
    );
    let a = c
        .user()
        .create_project(json!({"name": "x", "colour": "red"}))
        .await;
    problem(&a, 422);
    assert_eq!(a.body["field"], "colour");
    let a = c
        .user()
        .create_project(json!({"description": "no name"}))
        .await;
    problem(&a, 422);
    assert_eq!(a.body["field"], "name");
    let a = c.user().create_project(json!({"name": " "})).await;
    problem(&a, 422);
    assert_eq!(a.body["field"], "name");
    let a = c.raw("GET", "/api/v1/projects", None, None).await;
    problem(&a, 401);
    let a = c
        .raw("GET", "/api/v1/projects", Some("fsk_nope_nope"), None)
        .await;
    problem(&a, 401);
    let a = c.viewer().create_project(json!({"name": "x"})).await;
    problem(&a, 403);
    let a = c.user().create_api_key(json!({"name": "k"})).await;
    problem(&a, 403);
    let a = c.viewer().get_project(uuid::Uuid::now_v7()).await;
    problem(&a, 404);
    let a = c.viewer().get("/api/v1/projects/not-a-uuid").await;
    problem(&a, 404);
    let a = c.viewer().get("/api/v1/nothing-here").await;
    problem(&a, 404);
    let a = c.user().create_project(json!({"name": "dup"})).await;
    assert_eq!(a.status, 201);
    let a = c.user().create_project(json!({"name": "dup"})).await;
    problem(&a, 409);
    let big = json!({"name": "x".repeat(2 * 1024 * 1024)});
    let a = c.user().create_project(big).await;
    problem(&a, 413);

    let wf = setup(&c, json!([{"key": "a", "handler": "shell"}])).await;
    let a = c.user().start_run(&wf, json!({"user_id": "me"})).await;
    problem(&a, 422);
    assert_eq!(a.body["field"], "user_id");
    c.user().start_run(&wf, json!({})).await;
    let claimed = c.user().claim(claim_body(0)).await;
    let t = claimed.body[0].clone();
    let stale = t["attempt"].as_i64().unwrap() + 1;
    let a = c
        .user()
        .complete(json!({"task_id": t["task_id"], "attempt": stale, "output": {}}))
        .await;
    problem(&a, 409);
    assert_eq!(a.body["field"], "attempt");
    let a = c.viewer().claim(claim_body(0)).await;
    problem(&a, 403);
    let a = c.user().claim(json!({"worker_id": "w", "handler_types": ["shell"], "limit": 1, "lease_ms": 1, "wait_ms": 0}))
        .await;
    problem(&a, 422);
    assert_eq!(a.body["field"], "lease_ms");
    let a = c.viewer().get("/api/v1/runs?limit=0").await;
    problem(&a, 422);
    assert_eq!(a.body["field"], "limit");
    let a = c
        .viewer()
        .get("/api/v1/runs?workflow_id=x&status=sleeping")
        .await;
    problem(&a, 422);
    assert_eq!(a.body["field"], "status");
}

async fn claims_wait_for_work(b: Arc<dyn Backend>) {
    let c = Arc::new(TestApp::new(b).await);
    let wf = setup(&c, json!([{"key": "a", "handler": "shell"}])).await;
    let empty = Instant::now();
    let a = c.user().claim(claim_body(300)).await;
    assert_eq!(a.body, json!([]));
    assert!(empty.elapsed() >= Duration::from_millis(300));
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let a = c.user().claim(claim_body(10_000)).await;
            (a.body, start.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = c.user().start_run(&wf, json!({})).await;
    assert_eq!(s.status, 201);
    let (body, waited) = waiter.await.unwrap();
    assert_eq!(body.as_array().unwrap().len(), 1, "{body}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

/// A NUL character in a query parameter, a path parameter or anywhere in a JSON
/// body is refused with 422 naming where it is, on both backends (PostgreSQL cannot
/// store one), before any SQL runs.
async fn nul_characters_are_refused_everywhere(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    for (path, field) in [
        ("/api/v1/tasks?tag=%00", "tag"),
        ("/api/v1/tasks?q=a%00b", "q"),
        ("/api/v1/events?event_type=%00&run_id=x", "event_type"),
        ("/api/v1/audit?actor=%00", "actor"),
        ("/api/v1/workflows?name=%00", "name"),
        ("/api/v1/logs?component=%00", "component"),
        ("/api/v1/executions/%00", "execution_id"),
        ("/api/v1/executions/a%00b/metrics", "execution_id"),
        ("/api/v1/configurations/%00", "key"),
        ("/api/v1/components/x%00", "which"),
        ("/api/v1/handlers/%00", "handler_type"),
    ] {
        let r = c.admin().get(path).await;
        assert_eq!(r.status, 422, "GET {path}: {}", r.body);
        assert_eq!(r.body["field"], field, "GET {path}: {}", r.body);
        assert!(r.content_type.starts_with("application/problem+json"));
    }
    for (method, path, body, field) in [
        (
            "POST",
            "/api/v1/projects",
            json!({"name": "p", "settings": {"a": ["x", "\u{0}"]}}),
            "settings.a[1]",
        ),
        (
            "PUT",
            "/api/v1/configurations",
            json!({"key": "k\u{0}", "value": 1}),
            "key",
        ),
        (
            "POST",
            "/api/v1/logs",
            json!({"level": "info", "message": "m", "context": {"k\u{0}": 1}}),
            "context.k\\u0000",
        ),
    ] {
        let r = c.admin().send(method, path, Some(body)).await;
        assert_eq!(r.status, 422, "{method} {path}: {}", r.body);
        assert_eq!(r.body["field"], field, "{method} {path}: {}", r.body);
    }
}

/// Every answer says it must not be stored by a cache (some carry keys, tokens or
/// secrets) and that its type must not be guessed.
async fn answers_are_never_cached_or_sniffed(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    let created = c.admin().create_api_key(json!({"name": "k"})).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let missing = c.admin().get("/api/v1/nothing-here").await;
    let health = c.raw("GET", "/healthz", None, None).await;
    for r in [&created, &missing, &health] {
        assert_eq!(r.headers["cache-control"], "no-store");
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
    }
}

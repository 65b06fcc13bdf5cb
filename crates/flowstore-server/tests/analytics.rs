//! What the dashboard reads over HTTP, on SQLite and PostgreSQL: runs across
//! workflows with filters and pages, the attempts of runs and tasks with what
//! workers report they cost, re-running a run, finished runs per hour or day, and
//! the admin views (queues, workers, agents) beside seed 003's summaries; each
//! leaving out what the caller may not read.

use std::collections::HashSet;
use std::sync::Arc;

use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use flowstore_testkit::fixtures::diamond;
use flowstore_testkit::{both_backends, requests, TestApp};
use serde_json::{json, Value};

both_backends!(
    runs_across_workflows_show_only_what_the_caller_may_read,
    attempts_carry_what_workers_report,
    a_rerun_starts_the_same_version_again,
    finished_runs_per_hour_and_day,
    admin_views_and_seed_summaries,
    a_failed_run_is_retried_from_its_failures,
);

/// Starts a run of `wf` with `input` as the holder of `key`: its ID.
async fn start(c: &TestApp, key: &str, wf: &str, input: Value) -> String {
    c.started_run(key, wf, json!({ "input": input })).await
}

/// Claims one `shell` task as `key` (worker `worker`): (task ID, attempt).
async fn claim(c: &TestApp, key: &str, worker: &str) -> (String, i64) {
    let got = c
        .by(key)
        .claim(
            json!({"worker_id": worker, "handler_types": ["shell"], "limit": 1, "lease_ms": 30000}),
        )
        .await
        .want(200);
    let t = &got.as_array().unwrap()[0];
    (
        t["task_id"].as_str().unwrap().to_string(),
        t["attempt"].as_i64().unwrap(),
    )
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

async fn runs_across_workflows_show_only_what_the_caller_may_read(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    c.shell_handler().await;
    let (_, a) = c.user_key(Role::User, "a@x.io").await;
    let (_, bk) = c.user_key(Role::User, "b@x.io").await;
    let (_, admin) = c.user_key(Role::Admin, "root@x.io").await;
    let mine = c.shell_workflow(&a, "alpha build").await;
    let theirs = c.shell_workflow(&bk, "beta deploy").await;
    let mut a_runs = Vec::new();
    for i in 0..3 {
        a_runs.push(start(&c, &a, &mine, json!({ "i": i })).await);
    }
    let b_run = start(&c, &bk, &theirs, json!({})).await;
    c.by(&a).cancel_run(&a_runs[0]).await.want(200);

    // A sees only A's runs, newest first, and pages through them without repeats.
    let page = c.by(&a).get("/api/v1/runs?limit=2").await.want(200);
    assert_eq!(ids(&page), [a_runs[2].clone(), a_runs[1].clone()]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = c
        .by(&a)
        .get(&format!("/api/v1/runs?limit=2&cursor={cursor}"))
        .await
        .want(200);
    assert_eq!(ids(&rest), [a_runs[0].clone()]);
    assert!(rest["next_cursor"].is_null());
    // The admin sees every run.
    let all = c.by(&admin).get("/api/v1/runs").await.want(200);
    assert_eq!(ids(&all).len(), 4);
    // Filters.
    let cancelled = c
        .by(&a)
        .get("/api/v1/runs?status=cancelled")
        .await
        .want(200);
    assert_eq!(ids(&cancelled), [a_runs[0].clone()]);
    let by_name = c.by(&admin).get("/api/v1/runs?q=DEPLOY").await.want(200);
    assert_eq!(ids(&by_name), std::slice::from_ref(&b_run));
    let by_id = c
        .by(&a)
        .get(&format!("/api/v1/runs?q={b_run}"))
        .await
        .want(200);
    assert!(ids(&by_id).is_empty(), "B's run is not A's to find");
    let of_wf = c
        .by(&a)
        .get(&format!("/api/v1/runs?workflow_id={mine}"))
        .await
        .want(200);
    assert_eq!(ids(&of_wf).len(), 3);
    // B's private workflow named explicitly: as if it did not exist.
    c.by(&a)
        .get(&format!("/api/v1/runs?workflow_id={theirs}"))
        .await
        .want(404);
    let future = c
        .by(&a)
        .get("/api/v1/runs?since=2999-01-01T00:00:00Z")
        .await
        .want(200);
    assert!(ids(&future).is_empty());
    // Bad input names its field.
    for (query, field) in [
        ("status=paused-ish", "status"),
        ("since=yesterday", "since"),
        ("cursor=garbage", "cursor"),
        (
            "since=2025-01-02T00:00:00Z&until=2025-01-01T00:00:00Z",
            "until",
        ),
    ] {
        let path = format!("/api/v1/runs?{query}");
        c.by(&a).get(&path).await.want_field(422, field);
    }
}

async fn attempts_carry_what_workers_report(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    c.shell_handler().await;
    let (_, a) = c.user_key(Role::User, "a@x.io").await;
    let (_, bk) = c.user_key(Role::User, "b@x.io").await;
    let wf = c
        .by(&a)
        .create_workflow(json!({"name": "retrying", "status": "active", "definition":
            {"steps": [{"key": "a", "handler": "shell", "max_retries": 1}]}}))
        .await
        .want_id(201);
    let run = start(&c, &a, &wf, json!({})).await;

    let (task, attempt) = claim(&c, &a, "w-1").await;
    // Negative figures are refused before anything changes.
    c.by(&a)
        .fail(
            json!({"task_id": task, "attempt": attempt, "error": {"m": "x"}, "retryable": true,
                     "usage": {"memory_usage_mb": -5}}),
        )
        .await
        .want_field(422, "usage.memory_usage_mb");
    c.by(&a)
        .fail(
            json!({"task_id": task, "attempt": attempt, "error": {"m": "boom"}, "retryable": true,
                     "usage": {"memory_usage_mb": 64, "cpu_time_ms": 10}}),
        )
        .await
        .want(200);
    // The retry becomes ready after its backoff: wait for it.
    let mut second = None;
    for _ in 0..100 {
        let got = c
            .by(&a)
            .claim(json!({"worker_id": "w-2", "handler_types": ["shell"], "limit": 1, "lease_ms": 30000}))
            .await
            .want(200);
        if let Some(t) = got.as_array().unwrap().first() {
            second = Some(t["attempt"].as_i64().unwrap());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let second = second.expect("the retry became ready");
    c.by(&a)
        .complete(
            json!({"task_id": task, "attempt": second, "output": {"ok": true},
                         "usage": {"memory_usage_mb": 128, "cpu_time_ms": 2500}}),
        )
        .await
        .want(200);

    for got in [
        c.by(&a).run_attempts(&run).await.want(200),
        c.by(&a).task_attempts(&task).await.want(200),
    ] {
        let rows = got.as_array().unwrap();
        assert_eq!(rows.len(), 2, "{got}");
        assert_eq!(rows[0]["execution_status"], "failed");
        assert_eq!(rows[0]["worker_id"], "w-1");
        assert_eq!(rows[0]["error_details"]["m"], "boom");
        assert_eq!(
            (
                rows[0]["memory_usage_mb"].as_i64(),
                rows[0]["cpu_time_ms"].as_i64()
            ),
            (Some(64), Some(10))
        );
        assert_eq!(rows[1]["execution_status"], "completed");
        assert_eq!(rows[1]["worker_id"], "w-2");
        assert_eq!(rows[1]["output_results"]["ok"], true);
        assert_eq!(
            (
                rows[1]["memory_usage_mb"].as_i64(),
                rows[1]["cpu_time_ms"].as_i64()
            ),
            (Some(128), Some(2500))
        );
        assert!(rows[1]["duration_ms"].as_i64().is_some());
    }
    // Not B's to read.
    c.by(&bk).run_attempts(&run).await.want(404);
    c.by(&bk).task_attempts(&task).await.want(404);
}

async fn a_rerun_starts_the_same_version_again(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    c.shell_handler().await;
    let (_, a) = c.user_key(Role::User, "a@x.io").await;
    let (_, bk) = c.user_key(Role::User, "b@x.io").await;
    let (_, viewer) = c.user_key(Role::Viewer, "v@x.io").await;
    let wf = c.shell_workflow(&a, "again").await;
    let first = start(&c, &a, &wf, json!({"branch": "main"})).await;
    // A new version does not change what a re-run runs.
    c.by(&a)
        .update_workflow(&wf, json!({"definition": {"steps": [
            {"key": "a", "handler": "shell"}, {"key": "b", "handler": "shell", "depends_on": ["a"]}]}}))
        .await
        .want(200);
    let again = c.by(&a).rerun(&first).await.want(201);
    assert_ne!(again["run"]["id"].as_str().unwrap(), first);
    assert_eq!(again["run"]["input"], json!({"branch": "main"}));
    assert_eq!(again["run"]["workflow_version"], "1");
    assert_eq!(again["run"]["metadata"]["rerun_of"], first.as_str());
    assert_eq!(again["tasks"].as_array().unwrap().len(), 1);
    let audit = c.admin().list_audit().await.want(200);
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "run.rerun"),
        "{audit}"
    );
    // Others: B cannot see it, a viewer may not execute.
    c.by(&bk).rerun(&first).await.want(404);
    c.by(&viewer).rerun(&first).await.want(403);
    // A seed 000 run names no stored workflow version.
    let seed = c
        .by(&a)
        .post(
            "/api/v1/executions",
            json!({"execution_id": "e-1", "workflow_id": "w", "workflow_name": "w"}),
        )
        .await
        .want(201);
    c.by(&a)
        .rerun(seed["id"].as_str().unwrap())
        .await
        .want_field(409, "workflow_ref");
}

async fn finished_runs_per_hour_and_day(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    c.shell_handler().await;
    let (_, a) = c.user_key(Role::User, "a@x.io").await;
    let (_, bk) = c.user_key(Role::User, "b@x.io").await;
    let mine = c.shell_workflow(&a, "counted").await;
    let theirs = c.shell_workflow(&bk, "private").await;
    for _ in 0..2 {
        start(&c, &a, &mine, json!({})).await;
        let (task, attempt) = claim(&c, &a, "w").await;
        c.by(&a)
            .complete(json!({"task_id": task, "attempt": attempt}))
            .await
            .want(200);
    }
    let failing = start(&c, &a, &mine, json!({})).await;
    let (task, attempt) = claim(&c, &a, "w").await;
    c.by(&a)
        .fail(json!({"task_id": task, "attempt": attempt, "error": {"m": "no"}}))
        .await
        .want(200);
    assert_eq!(
        c.by(&a).get_run(&failing).await.want(200)["status"],
        "failed"
    );
    start(&c, &bk, &theirs, json!({})).await;
    let (task, attempt) = claim(&c, &bk, "w").await;
    c.by(&bk)
        .complete(json!({"task_id": task, "attempt": attempt}))
        .await
        .want(200);

    // Counted per day (a test running across an hour's end would split the hours).
    let days = c
        .by(&a)
        .get("/api/v1/analytics/runs?bucket=day")
        .await
        .want(200);
    let points = days.as_array().unwrap();
    assert_eq!(points.len(), 1, "{days}");
    let p = &points[0];
    assert_eq!(
        (
            p["total"].as_i64(),
            p["completed"].as_i64(),
            p["failed"].as_i64()
        ),
        (Some(3), Some(2), Some(1)),
        "B's run is not A's: {p}"
    );
    assert!((p["failure_rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    let hours = c.by(&a).get("/api/v1/analytics/runs").await.want(200);
    let total: i64 = hours
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["total"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 3, "{hours}");
    let all = c
        .admin()
        .get("/api/v1/analytics/runs?bucket=day")
        .await
        .want(200);
    assert_eq!(all[0]["total"], 4, "{all}");
    let one = c
        .by(&bk)
        .get(&format!(
            "/api/v1/analytics/runs?workflow_id={theirs}&bucket=day"
        ))
        .await
        .want(200);
    assert_eq!(one[0]["total"], 1);
    requests!(c;
        GET "/api/v1/analytics/runs?workflow_id={theirs}" by a => 404;
    );
    c.by(&a)
        .get("/api/v1/analytics/runs?bucket=week")
        .await
        .want_field(422, "bucket");
    // Durations of the completed runs only (the failed one is not counted).
    let d = c
        .by(&a)
        .get(&format!("/api/v1/workflows/{mine}/durations"))
        .await
        .want(200);
    assert_eq!(d["runs"], 2, "{d}");
    assert!(
        d["p50_ms"].as_i64().is_some() && d["p99_ms"].as_i64() <= d["max_ms"].as_i64(),
        "{d}"
    );
    requests!(c;
        GET "/api/v1/workflows/{theirs}/durations" by a => 404;
    );
    for (path, field) in [
        (
            format!("/api/v1/workflows/{mine}/durations?limit=0"),
            "limit",
        ),
        (
            "/api/v1/analytics/runs?since=2020-01-01T00:00:00Z&until=2026-01-01T00:00:00Z".into(),
            "since",
        ),
        (
            "/api/v1/analytics/runs?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z".into(),
            "until",
        ),
    ] {
        c.by(&a).get(&path).await.want_field(422, field);
    }
}

async fn admin_views_and_seed_summaries(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    c.shell_handler().await;
    let (_, a) = c.user_key(Role::User, "a@x.io").await;
    let (_, bk) = c.user_key(Role::User, "b@x.io").await;
    let (_, admin) = c.user_key(Role::Admin, "root@x.io").await;
    let wf = c.shell_workflow(&a, "queued").await;
    start(&c, &a, &wf, json!({})).await;
    start(&c, &a, &wf, json!({})).await;
    claim(&c, &a, "worker-7").await;

    let queues = c.by(&admin).queues().await.want(200);
    let depth: HashSet<(String, String, i64)> = queues
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["handler_type"].as_str().unwrap().into(),
                q["status"].as_str().unwrap().into(),
                q["tasks"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        depth,
        HashSet::from([
            ("shell".into(), "ready".into(), 1),
            ("shell".into(), "running".into(), 1)
        ])
    );
    let workers = c
        .by(&admin)
        .get("/api/v1/workers?window_s=60")
        .await
        .want(200);
    assert_eq!(workers[0]["worker_id"], "worker-7", "{workers}");
    assert_eq!(workers[0]["running"], 1);
    assert_eq!(workers[0]["lease_expired"], 0);
    // A worker that stops heartbeating: its lease expires and is counted.
    c.by(&a)
        .claim(json!({"worker_id": "worker-8", "handler_types": ["shell"], "limit": 1, "lease_ms": 100}))
        .await
        .want(200);
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let mut tx = c.backend.begin_transition().await.unwrap();
    assert_eq!(tx.reap_expired_leases(100).await.unwrap().len(), 1);
    tx.commit().await.unwrap();
    let workers = c.by(&admin).workers().await.want(200);
    let lost = workers
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["worker_id"] == "worker-8")
        .unwrap_or_else(|| panic!("{workers}"));
    assert_eq!(
        (&lost["lease_expired"], &lost["failed"], &lost["running"]),
        (&json!(1), &json!(1), &json!(0)),
        "{workers}"
    );
    c.by(&admin)
        .get("/api/v1/workers?window_s=0")
        .await
        .want_field(422, "window_s");
    c.by(&admin).agent_summary().await.want(200);
    for path in [
        "/api/v1/queues",
        "/api/v1/workers",
        "/api/v1/summaries/agents",
    ] {
        let r = c.by(&a).get(path).await;
        assert_eq!(r.code(), 403, "{path}: {}", r.body);
    }

    // Seed 003's views leave out what the caller may not read.
    let pa = c.project(&a, "pa").await;
    let pb = c.project(&bk, "pb").await;
    for (key, project, title) in [(&a, &pa, "mine"), (&bk, &pb, "theirs")] {
        c.by(key)
            .create_task(json!({"title": title, "project_id": project}))
            .await
            .want(201);
        c.by(key)
            .create_pull_request(
                json!({"project_id": project, "repository_url": "https://git.example/r",
                "branch_name": format!("b-{title}"), "title": title,
                "validation_results": {"status": "passed"}}),
            )
            .await
            .want(201);
    }
    let active = c
        .by(&a)
        .get("/api/v1/summaries/active-tasks")
        .await
        .want(200);
    let titles: HashSet<&str> = active["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert!(
        titles.contains("mine") && !titles.contains("theirs"),
        "{active}"
    );
    let prs = c
        .by(&a)
        .get("/api/v1/summaries/pull-requests")
        .await
        .want(200);
    let items = prs["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{prs}");
    assert_eq!(
        (
            items[0]["title"].as_str(),
            items[0]["validation_status"].as_str()
        ),
        (Some("mine"), Some("passed"))
    );
    c.by(&a)
        .get(&format!("/api/v1/summaries/pull-requests?project_id={pb}"))
        .await
        .want(404);
    c.by(&a)
        .get("/api/v1/summaries/active-tasks?project_id=nope")
        .await
        .want_field(422, "project_id");
    let theirs = c
        .by(&bk)
        .get(&format!("/api/v1/summaries/active-tasks?project_id={pb}"))
        .await
        .want(200);
    assert_eq!(theirs["items"][0]["title"], "theirs");
}

async fn a_failed_run_is_retried_from_its_failures(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    c.shell_handler().await;
    let (_, a) = c.user_key(Role::User, "a@x.io").await;
    let (_, bk) = c.user_key(Role::User, "b@x.io").await;
    let (_, viewer) = c.user_key(Role::Viewer, "v@x.io").await;
    let definition = diamond(["a", "b", "c", "d"]);
    let wf = c
        .by(&a)
        .create_workflow(json!({"name": "diamond", "status": "active", "definition": definition}))
        .await
        .want_id(201);
    let run = start(&c, &a, &wf, json!({})).await;
    // A still running run is not retried.
    c.by(&a).retry_run(&run).await.want_field(409, "status");
    let (first, attempt) = claim(&c, &a, "w").await;
    c.by(&a)
        .complete(json!({"task_id": first, "attempt": attempt, "output": {"a": 1}}))
        .await
        .want(200);
    // b fails for good; fail-fast cancels c and d.
    let (failing, attempt) = claim(&c, &a, "w").await;
    c.by(&a)
        .fail(json!({"task_id": failing, "attempt": attempt, "error": {"m": "no"}}))
        .await
        .want(200);
    assert_eq!(c.by(&a).get_run(&run).await.want(200)["status"], "failed");

    c.by(&bk).retry_run(&run).await.want(404);
    c.by(&viewer).retry_run(&run).await.want(403);
    let again = c.by(&a).retry_run(&run).await.want(200);
    assert_eq!(again["status"], "running");
    assert!(again["end_time"].is_null());
    let tasks = c.by(&a).run_tasks(&run).await.want(200);
    let by_step = |k: &str| {
        tasks
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["step_key"] == k)
            .unwrap()
            .clone()
    };
    assert_eq!(by_step("a")["status"], "completed", "a keeps its result");
    assert_eq!(
        (
            by_step("b")["status"].as_str(),
            by_step("c")["status"].as_str()
        ),
        (Some("ready"), Some("ready"))
    );
    assert_eq!(by_step("d")["status"], "pending");
    // A report from b's failed attempt stays stale.
    c.by(&a)
        .complete(json!({"task_id": failing, "attempt": attempt, "output": {}}))
        .await
        .want_field(409, "attempt");
    // The rest runs to the end.
    for _ in 0..3 {
        loop {
            let got = c
                .by(&a)
                .claim(json!({"worker_id": "w", "handler_types": ["shell"], "limit": 5, "lease_ms": 30000}))
                .await
                .want(200);
            let got = got.as_array().unwrap().clone();
            if got.is_empty() {
                break;
            }
            for t in got {
                c.by(&a)
                    .complete(json!({"task_id": t["task_id"], "attempt": t["attempt"]}))
                    .await
                    .want(200);
            }
        }
    }
    assert_eq!(
        c.by(&a).get_run(&run).await.want(200)["status"],
        "completed"
    );
    let attempts = c.by(&a).run_attempts(&run).await.want(200);
    assert_eq!(
        attempts.as_array().unwrap().len(),
        5,
        "a, b twice, c and d: {attempts}"
    );
    // A completed run has nothing to retry.
    c.by(&a).retry_run(&run).await.want_field(409, "status");
    let audit = c.admin().list_audit().await.want(200);
    assert!(audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "run.retry"));
}

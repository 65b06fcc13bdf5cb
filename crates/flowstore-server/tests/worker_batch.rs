//! `POST /api/v1/worker/complete-batch` on SQLite and PostgreSQL: many attempts in one
//! request, each reported on its own (a stale or unknown one does not stop the
//! others), repeated reports changing nothing, and the run moved as single
//! completions would move it.

use std::sync::Arc;

use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use flowstore_testkit::{both_backends, fixtures, Caller, TestApp};
use serde_json::{json, Value};

both_backends!(
    a_batch_completes_a_diamond_and_reports_each_attempt,
    a_batch_is_checked_before_anything_is_written,
    a_batch_refuses_in_place_what_the_key_may_not_execute,
    a_batch_records_the_usage_its_items_report
);

async fn diamond(c: &TestApp) -> String {
    c.new_shell_handler().await;
    let definition = fixtures::diamond(["a", "b", "c", "d"]);
    let wf = c
        .user()
        .create_workflow(json!({"name": "diamond", "status": "active", "definition": definition}))
        .await;
    assert_eq!(wf.status, 201, "{}", wf.body);
    let wf = wf.body["id"].as_str().unwrap().to_string();
    let started = c.user().start_run(&wf, json!({})).await;
    assert_eq!(started.status, 201, "{}", started.body);
    started.body["run"]["id"].as_str().unwrap().to_string()
}

async fn claim(c: &TestApp, want: usize) -> Vec<Value> {
    claim_as(c.user(), want).await
}

/// Claims up to 10 `shell` tasks as `by`, which must get `want` of them.
async fn claim_as(by: Caller<'_>, want: usize) -> Vec<Value> {
    let r = by
        .claim(
            json!({"worker_id": "w1", "handler_types": ["shell"], "limit": 10, "lease_ms": 30000}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let claimed = r.body.as_array().unwrap().clone();
    assert_eq!(claimed.len(), want, "{}", r.body);
    claimed
}

fn item(t: &Value, attempt: i64, output: Value) -> Value {
    json!({"task_id": t["task_id"], "attempt": attempt, "output": output})
}

async fn batch(c: &TestApp, items: Vec<Value>) -> Vec<Value> {
    let r = c.user().complete_batch(json!({ "items": items })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["results"].as_array().unwrap().clone()
}

async fn a_batch_completes_a_diamond_and_reports_each_attempt(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    let run = diamond(&c).await;

    let a = claim(&c, 1).await.remove(0);
    let first = batch(&c, vec![item(&a, 1, json!({"step": "a"}))]).await;
    let got = &first;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["transition"]["status"], "completed", "{got:?}");
    assert_eq!(
        got[0]["transition"]["newly_ready"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "b and c became ready: {got:?}"
    );

    let bc = claim(&c, 2).await;
    let unknown = json!({"task_id": uuid::Uuid::now_v7(), "attempt": 1, "output": {}});
    let got = batch(
        &c,
        vec![
            item(&bc[0], 1, json!({"n": 0})),
            item(&bc[1], 2, json!({"n": 1})),
            unknown,
            item(&bc[1], 1, json!({"n": 1})),
            item(&a, 1, json!({"step": "a"})),
            item(&a, 1, json!({"step": "other"})),
        ],
    )
    .await;
    assert_eq!(got.len(), 6, "{got:?}");
    assert_eq!(got[0]["transition"]["status"], "completed", "{got:?}");
    assert_eq!(got[0]["task_id"], bc[0]["task_id"]);
    // A stale attempt is refused in its place, and the others go through.
    assert_eq!(got[1]["problem"]["status"], 409, "{got:?}");
    assert_eq!(got[1]["problem"]["field"], "attempt");
    assert!(got[1]["transition"].is_null());
    assert_eq!(got[2]["problem"]["status"], 404, "{got:?}");
    assert_eq!(got[3]["transition"]["status"], "completed", "{got:?}");
    // The dependent of both is reported once, on the last completion of its run.
    let ready: Vec<&Value> = got[..4]
        .iter()
        .filter_map(|r| r["transition"]["newly_ready"].as_array())
        .flatten()
        .collect();
    assert_eq!(ready.len(), 1, "d became ready once: {got:?}");
    assert_eq!(
        got[3]["transition"]["newly_ready"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // A repeated report with the same output changes nothing and gets the first
    // answer again (b and c made ready); another output is refused.
    assert_eq!(got[4]["transition"], first[0]["transition"], "{got:?}");
    assert_eq!(got[5]["problem"]["status"], 409, "{got:?}");
    assert_eq!(got[5]["problem"]["field"], "output");

    let d = claim(&c, 1).await.remove(0);
    let got = batch(
        &c,
        vec![
            item(&d, 1, json!({"end": true})),
            item(&d, 1, json!({"end": true})),
        ],
    )
    .await;
    assert_eq!(got[0]["transition"]["run_status"], "completed", "{got:?}");
    assert_eq!(
        got[1]["transition"], got[0]["transition"],
        "the repeat is told the run ended, as the first report was: {got:?}"
    );

    let r = c.viewer().get_run(&run).await;
    assert_eq!(r.body["status"], "completed", "{}", r.body);
    let tasks = c.viewer().run_tasks(&run).await;
    let tasks = tasks.body.as_array().cloned().unwrap_or_default();
    assert_eq!(tasks.len(), 4);
    for t in &tasks {
        assert_eq!(t["status"], "completed", "{t}");
        assert_eq!(t["attempt"], 1, "every task ran once: {t}");
    }
    // Nothing is left to claim.
    claim(&c, 0).await;
}

async fn a_batch_is_checked_before_anything_is_written(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    let _run = diamond(&c).await;
    let a = claim(&c, 1).await.remove(0);
    for body in [
        json!({"items": []}),
        json!({"items": (0..1001).map(|_| item(&a, 1, json!({}))).collect::<Vec<_>>()}),
    ] {
        let r = c.user().complete_batch(body).await;
        assert_eq!(r.status, 422, "{}", r.body);
        assert_eq!(r.body["field"], "items", "{}", r.body);
    }
    let r = c
        .user()
        .complete_batch(json!({"items": [item(&a, 1, json!({}))], "extra": 1}))
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = c
        .raw(
            "POST",
            "/api/v1/worker/complete-batch",
            None,
            Some(br#"{"items":[]}"#.to_vec()),
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    // Nothing was completed: the attempt is still running and completes now.
    let got = batch(&c, vec![item(&a, 1, json!({}))]).await;
    assert_eq!(got[0]["transition"]["status"], "completed", "{got:?}");
    let doc = c.raw("GET", "/api/v1/openapi.json", None, None).await;
    assert!(
        doc.body["paths"]["/api/v1/worker/complete-batch"]["post"].is_object(),
        "documented in the OpenAPI"
    );
}

/// A one-step workflow of `key`'s (private), started once; its task's ID.
async fn private_task(c: &TestApp, key: &str) -> String {
    let body = json!({"name": "one", "status": "active",
        "definition": {"steps": [{"key": "a", "handler": "shell"}]}});
    let wf = c.by(key).create_workflow(body).await;
    assert_eq!(wf.status, 201, "{}", wf.body);
    let id = wf.body["id"].as_str().unwrap();
    let run = c.by(key).start_run(id, json!({})).await;
    assert_eq!(run.status, 201, "{}", run.body);
    run.body["tasks"][0]["id"].as_str().unwrap().to_string()
}

async fn a_batch_refuses_in_place_what_the_key_may_not_execute(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (_, a) = c.user_key(Role::User, "a@x.io").await;
    let (_, bk) = c.user_key(Role::User, "b@x.io").await;
    c.new_shell_handler().await;
    let mine = private_task(&c, &a).await;
    let theirs = private_task(&c, &bk).await;
    // A second run of B's workflow: a batch naming two tasks of one workflow has
    // each refused.
    let task = c.admin().get(&format!("/api/v1/tasks/{theirs}")).await;
    assert_eq!(task.status, 200, "{}", task.body);
    let wf = task.body["workflow_id"].as_str().unwrap().to_string();
    let run = c.by(&bk).start_run(&wf, json!({})).await;
    assert_eq!(run.status, 201, "{}", run.body);
    let also_theirs = run.body["tasks"][0]["id"].as_str().unwrap().to_string();
    // The admin claims all three; A reports on them in one batch, with a task that
    // does not exist.
    let claimed = claim_as(c.admin(), 3).await;
    let attempt = |task: &str| -> i64 {
        claimed.iter().find(|t| t["task_id"] == task).unwrap()["attempt"]
            .as_i64()
            .unwrap()
    };
    let no_one = "00000000-0000-4000-8000-000000000000".to_string();
    let items = json!({"items": [
        {"task_id": theirs, "attempt": attempt(&theirs), "output": {}},
        {"task_id": mine, "attempt": attempt(&mine), "output": {}},
        {"task_id": also_theirs, "attempt": attempt(&also_theirs), "output": {}},
        {"task_id": no_one, "attempt": 1, "output": {}}
    ]});
    let r = c.by(&a).complete_batch(items).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = r.body["results"].as_array().unwrap();
    assert_eq!(got.len(), 4, "{got:?}");
    for (i, task) in [(0, &theirs), (2, &also_theirs), (3, &no_one)] {
        assert_eq!(
            got[i]["problem"]["status"], 404,
            "B's private tasks are hidden, as a task of no one: {got:?}"
        );
        // The same words for each, so that A cannot tell B's tasks from none.
        assert_eq!(
            got[i]["problem"]["detail"],
            format!("no task {task}"),
            "{got:?}"
        );
        assert!(got[i]["transition"].is_null(), "{got:?}");
    }
    assert_eq!(got[1]["transition"]["status"], "completed", "{got:?}");
    // B's other task is running still, for B to complete.
    let items = json!({"items": [{"task_id": also_theirs, "attempt": attempt(&also_theirs), "output": {}}]});
    let r = c.by(&bk).complete_batch(items).await;
    assert_eq!(
        r.body["results"][0]["transition"]["status"], "completed",
        "{}",
        r.body
    );
    // B's task is still running under the admin's claim, and completes for B.
    let items = json!({"items": [{"task_id": theirs, "attempt": attempt(&theirs), "output": {}}]});
    let r = c.by(&bk).complete_batch(items).await;
    assert_eq!(
        r.body["results"][0]["transition"]["status"], "completed",
        "{}",
        r.body
    );
}

async fn a_batch_records_the_usage_its_items_report(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    let run = diamond(&c).await;
    let a = claim(&c, 1).await.remove(0);
    batch(&c, vec![item(&a, 1, json!({}))]).await;
    let bc = claim(&c, 2).await;
    // One item reports what it cost, the other nothing: the batch is written in one
    // transaction with the usage, and a stale item beside them is refused alone.
    let mut costly = item(&bc[0], 1, json!({"n": 0}));
    costly["usage"] = json!({"memory_usage_mb": 96, "cpu_time_ms": 700});
    let got = batch(
        &c,
        vec![
            costly,
            item(&bc[1], 7, json!({})),
            item(&bc[1], 1, json!({"n": 1})),
        ],
    )
    .await;
    assert_eq!(got[0]["transition"]["status"], "completed", "{got:?}");
    assert_eq!(got[1]["problem"]["status"], 409, "{got:?}");
    assert_eq!(got[2]["transition"]["status"], "completed", "{got:?}");
    // Negative figures are refused, naming the item, before anything is written.
    let d = claim(&c, 1).await.remove(0);
    let mut bad = item(&d, 1, json!({}));
    bad["usage"] = json!({"cpu_time_ms": -1});
    let r = c.user().complete_batch(json!({ "items": [bad] })).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.body["field"], "items[0].usage", "{}", r.body);

    let attempts = c.viewer().run_attempts(&run).await;
    assert_eq!(attempts.status, 200, "{}", attempts.body);
    let rows = attempts.body.as_array().unwrap();
    let of = |t: &Value| {
        rows.iter()
            .find(|r| r["task_id"] == t["task_id"])
            .unwrap_or_else(|| panic!("an attempt of {t} in {rows:?}"))
    };
    let (costly, plain) = (of(&bc[0]), of(&bc[1]));
    assert_eq!(costly["execution_status"], "completed", "{costly}");
    assert_eq!(
        (
            costly["memory_usage_mb"].as_i64(),
            costly["cpu_time_ms"].as_i64()
        ),
        (Some(96), Some(700)),
        "{costly}"
    );
    assert_eq!(plain["execution_status"], "completed", "{plain}");
    assert!(plain["cpu_time_ms"].is_null(), "{plain}");
    // The item refused for its figures is still running.
    let got = batch(&c, vec![item(&d, 1, json!({}))]).await;
    assert_eq!(got[0]["transition"]["run_status"], "completed", "{got:?}");
}

//! A workflow's life (archive, delete, duplicate, one version, summary): success and
//! failure, and another user's workflows. On SQLite and PostgreSQL.

use std::sync::Arc;

use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use flowstore_testkit::fixtures::one_step;
use flowstore_testkit::{both_backends, requests, TestApp};
use serde_json::{json, Value};

both_backends!(
    workflow_life,
    many_runs_start_in_one_batch,
    single_starts_arriving_together_are_answered_each_alone
);

async fn workflow_life(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (a_id, a) = c.user_key(Role::User, "a@x.io").await;
    let (b_id, bk) = c.user_key(Role::User, "b@x.io").await;
    let (_, reader) = c.user_key(Role::User, "r@x.io").await;
    let reader_id = c.by(&reader).me().await.body["id"].clone();
    for h in ["shell", "python"] {
        let body = json!({"handler_type": h, "handler_name": h});
        c.admin().create_handler(body).await.want(201);
    }
    let body = json!({"name": "build", "status": "active", "definition": one_step("shell"),
        "configuration": {"retries": 1}});
    let id = c.by(&a).create_workflow(body).await.want_id(201);
    let share = json!({"user_id": reader_id, "permission": "read"});
    c.by(&a).share_workflow(&id, share).await.want(201);

    // one version: version 1, then 2 after a new definition; others are 404
    let v1 = c.by(&a).workflow_version(&id, "1").await.want(200);
    assert_eq!(v1["definition"], one_step("shell"));
    let patch = json!({"definition": one_step("python"), "change_note": "python now"});
    c.by(&a).update_workflow(&id, patch).await.want(200);
    let v2 = c.by(&reader).workflow_version(&id, "2").await.want(200);
    assert_eq!(
        (v2["definition"].clone(), v2["change_note"].clone()),
        (one_step("python"), json!("python now"))
    );
    requests!(c;
        GET "/api/v1/workflows/{id}/versions/3" by a => 404;
        GET "/api/v1/workflows/{id}/versions/one" by a => 404;
        GET "/api/v1/workflows/{id}/versions/1" by bk => 404;
    );

    // duplicate: anyone who may read it; the copy is the caller's private draft
    let dup = |name: Value| json!({"name": name});
    let copy = c
        .by(&reader)
        .duplicate_workflow(&id, dup(json!("mine")))
        .await
        .want(201);
    assert_eq!(copy["name"], "mine");
    assert_eq!(copy["owner_id"], reader_id);
    assert_eq!(copy["parent_workflow_id"], json!(id));
    assert_eq!(
        (copy["status"].as_str(), copy["visibility"].as_str()),
        (Some("draft"), Some("private"))
    );
    assert_eq!(
        (copy["version"].clone(), copy["definition"].clone()),
        (json!(1), one_step("python"))
    );
    assert_eq!(copy["configuration"], json!({"retries": 1}));
    let copy_id = copy["id"].as_str().unwrap();
    requests!(c;
        GET "/api/v1/workflows/{copy_id}" by a => 404;
        POST "/api/v1/workflows/{id}/duplicate" with (dup(json!("x"))) by bk => 404;
    );
    let e = c
        .by(&a)
        .duplicate_workflow(&id, dup(json!(" ")))
        .await
        .want(422);
    assert_eq!(e["field"], "name");
    let extra = json!({"name": "x", "owner_id": b_id});
    requests!(c;
        POST "/api/v1/workflows/{id}/duplicate" with (extra) by a => 422;
        POST "/api/v1/workflows/{id}/duplicate" with (dup(json!("x"))) by c.viewer => 403;
    );

    // summary: runs by status, statistics from the counters, tasks by status
    for _ in 0..2 {
        c.by(&a).start_run(&id, json!({})).await.want(201);
    }
    let s = c.by(&reader).workflow_summary(&id).await.want(200);
    assert_eq!(
        (s["runs"]["total"].clone(), s["runs"]["running"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(s["runs"]["completed"], 0);
    assert_eq!(s["statistics"]["total_executions"], 2);
    assert_eq!(
        (s["tasks"]["total"].clone(), s["tasks"]["ready"].clone()),
        (json!(2), json!(2))
    );
    c.by(&bk).workflow_summary(&id).await.want(404);
    let s = c.by(&reader).workflow_summary(copy_id).await.want(200);
    assert_eq!(
        (s["runs"]["total"].clone(), s["tasks"]["total"].clone()),
        (json!(0), json!(0))
    );

    // delete: refused while it has runs (archive instead); hidden from others; a
    // reader may not; the owner may delete one that never ran
    let e = c.by(&a).delete_workflow(&id).await.want(409);
    assert_eq!(e["field"], "workflow");
    requests!(c;
        POST "/api/v1/workflows/{id}/archive" by reader => 403;
        POST "/api/v1/workflows/{id}/archive" by bk => 404;
    );
    let archived = c.by(&a).archive_workflow(&id).await.want(200);
    assert_eq!(archived["status"], "archived");
    assert!(archived["archived_at"].is_string());
    let again = c.by(&a).archive_workflow(&id).await.want(200);
    assert_eq!(
        again["archived_at"], archived["archived_at"],
        "archiving twice keeps the first time"
    );
    requests!(c;
        GET "/api/v1/workflows/{id}" by a => 200;
        DELETE "/api/v1/workflows/{copy_id}" by a => 404;
        DELETE "/api/v1/workflows/{copy_id}" by c.viewer => 403;
        DELETE "/api/v1/workflows/{copy_id}" by reader => 204;
        GET "/api/v1/workflows/{copy_id}" by reader => 404;
        GET "/api/v1/workflows/{copy_id}/versions/1" by c.admin => 404;
        DELETE "/api/v1/workflows/{copy_id}" by c.admin => 404;
    );
    // a seed 000 execution that refers to a workflow by `workflow_ref` only counts too
    let other = json!({"name": "other"});
    let other = c.by(&a).create_workflow(other).await.want(201);
    let other = other["id"].as_str().unwrap();
    let exec = json!({"execution_id": "e-1", "workflow_id": "legacy-name",
        "workflow_name": "legacy", "workflow_ref": other});
    c.by(&a).post("/api/v1/executions", exec).await.want(201);
    let path = format!("/api/v1/workflows/{other}");
    c.by(&a).delete(&path).await.want(409);
    let _ = a_id;
}

/// `POST /workflows/{id}/runs/batch` starts every run it is given in one transaction,
/// each claimable at once, with one audit entry naming them; a batch with one run
/// refused starts none and names the run and field; the size is bounded; a reader
/// of the workflow may not start runs of it.
async fn many_runs_start_in_one_batch(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    c.shell_handler().await;
    let (_, a) = c.user_key(Role::User, "a@x.io").await;
    let (reader_id, reader) = c.user_key(Role::User, "r@x.io").await;
    let wf = c.shell_workflow(&a, "batch").await;
    c.by(&a)
        .share_workflow(&wf, json!({"user_id": reader_id, "permission": "read"}))
        .await
        .want(201);
    let body = json!({"runs": [
        {"input": {"n": 1}},
        {"input": {"n": 2}, "execution_id": "batch-two", "priority": 5},
        {}
    ]});
    let started = c.by(&a).start_runs(&wf, body).await.want(201);
    let runs = started["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "{started}");
    assert_eq!(runs[1]["execution_id"], "batch-two");
    let ids: Vec<&str> = runs.iter().map(|r| r["id"].as_str().unwrap()).collect();
    for (id, n) in ids.iter().zip([json!(1), json!(2), Value::Null]) {
        let run = c.by(&a).get_run(id).await.want(200);
        assert_eq!(run["input"]["n"], n, "{run}");
    }
    let claimed = c
        .by(&a)
        .claim(
            json!({"worker_id": "w", "handler_types": ["shell"], "limit": 10, "lease_ms": 30000}),
        )
        .await
        .want(200);
    let mut claimed_runs: Vec<&str> = claimed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["run_id"].as_str().unwrap())
        .collect();
    claimed_runs.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(claimed_runs, want, "each run's first step is ready at once");
    let entry = c.audit_entry("run.start_batch", &wf).await;
    assert_eq!(entry["after"]["runs"], json!(ids), "{entry}");

    // All or none: a taken execution_id, or a bad input, refuses the whole batch.
    let before = runs_of(&c, &a, &wf).await;
    let taken = json!({"runs": [{}, {"execution_id": "batch-two"}]});
    c.by(&a)
        .start_runs(&wf, taken)
        .await
        .want_field(409, "runs[1].execution_id");
    let bad = json!({"runs": [{}, {}, {"input": [1, 2]}]});
    c.by(&a)
        .start_runs(&wf, bad)
        .await
        .want_field(422, "runs[2].input");
    assert_eq!(
        runs_of(&c, &a, &wf).await,
        before,
        "nothing of a refused batch is written"
    );

    // Bounds, unknown fields, and who may.
    c.by(&a)
        .start_runs(&wf, json!({"runs": []}))
        .await
        .want_field(422, "runs");
    let many: Vec<Value> = (0..1001).map(|_| json!({})).collect();
    c.by(&a)
        .start_runs(&wf, json!({ "runs": many }))
        .await
        .want_field(422, "runs");
    assert_eq!(
        c.by(&a)
            .start_runs(&wf, json!({"runs": [{"colour": "red"}]}))
            .await
            .status,
        422
    );
    assert_eq!(
        c.by(&reader)
            .start_runs(&wf, json!({"runs": [{}]}))
            .await
            .status,
        403
    );
    assert_eq!(runs_of(&c, &a, &wf).await, before);
}

/// How many runs of `wf` the holder of `key` sees.
async fn runs_of(c: &TestApp, key: &str, wf: &str) -> usize {
    let page = c
        .by(key)
        .get(&format!("/api/v1/runs?workflow_id={wf}&limit=100"))
        .await
        .want(200);
    page["items"].as_array().unwrap().len()
}

/// Single starts that arrive together are written in groups, and each caller is
/// answered what its start alone would get: its own run (its task ready at once, its
/// audit entry under its caller), or its own refusal (an `execution_id` taken or
/// chosen twice, a caller who may only read the workflow, one who cannot see it, a
/// bad input), while the others start.
async fn single_starts_arriving_together_are_answered_each_alone(b: Arc<dyn Backend>) {
    use std::sync::atomic::Ordering::Relaxed;
    let c = TestApp::new(b.clone()).await;
    c.shell_handler().await;
    let (a_id, a) = c.user_key(Role::User, "a@x.io").await;
    let (reader_id, reader) = c.user_key(Role::User, "r@x.io").await;
    let (_, stranger) = c.user_key(Role::User, "s@x.io").await;
    let wf = c.shell_workflow(&a, "together").await;
    c.by(&a)
        .share_workflow(&wf, json!({"user_id": reader_id, "permission": "read"}))
        .await
        .want(201);
    c.by(&a)
        .start_run(&wf, json!({"execution_id": "taken"}))
        .await
        .want(201);
    // Each key known to the server, so that every request reaches the group at once.
    for key in [&reader, &stranger] {
        c.by(key).me().await.want(200);
    }
    let metrics = c.state.metrics();

    // Forty at once: each its own run, in groups.
    let answers = futures::future::join_all((0..40).map(|n| {
        let (c, a, wf) = (&c, &a, &wf);
        async move { c.by(a).start_run(wf, json!({"input": {"n": n}})).await }
    }))
    .await;
    let mut ids = std::collections::HashSet::new();
    for (n, answer) in answers.into_iter().enumerate() {
        let started = answer.want(201);
        assert_eq!(started["run"]["input"]["n"], n, "{started}");
        assert_eq!(started["tasks"][0]["status"], "ready", "{started}");
        let id = started["run"]["id"].as_str().unwrap().to_string();
        let entry = c.audit_entry("run.start", &id).await;
        assert_eq!(entry["actor_id"], json!(a_id), "{entry}");
        assert_eq!(entry["after"]["input"]["n"], n, "{entry}");
        ids.insert(id);
    }
    assert_eq!(ids.len(), 40, "forty runs");
    assert!(
        metrics.grouped_starts.load(Relaxed) > 0,
        "some were grouped"
    );
    let claimed = c
        .by(&a)
        .claim(
            json!({"worker_id": "w", "handler_types": ["shell"], "limit": 100, "lease_ms": 30000}),
        )
        .await
        .want(200);
    assert_eq!(
        claimed.as_array().map(Vec::len),
        Some(41),
        "each ready once"
    );

    // Refusals mixed in, five of each: each is answered its own.
    let refused_before = metrics.start_groups_refused.load(Relaxed);
    let mut calls = Vec::new();
    for i in 0..5 {
        let twice = format!("twice-{i}");
        calls.push((&a, json!({"input": {"i": i}}), 201));
        calls.push((&a, json!({"execution_id": "taken"}), 409));
        calls.push((&a, json!({"execution_id": twice}), 0));
        calls.push((&reader, json!({}), 403));
        calls.push((&stranger, json!({}), 404));
        calls.push((&a, json!({"input": [1, 2]}), 422));
        calls.push((&a, json!({"execution_id": twice}), 0));
    }
    let answers = futures::future::join_all(calls.iter().map(|(key, body, _)| {
        let (c, wf) = (&c, &wf);
        async move { c.by(key).start_run(wf, body.clone()).await }
    }))
    .await;
    let mut chosen_twice = std::collections::HashMap::<String, Vec<u16>>::new();
    for ((_, body, want), answer) in calls.iter().zip(answers) {
        match want {
            0 => chosen_twice
                .entry(body["execution_id"].as_str().unwrap().into())
                .or_default()
                .push(answer.code()),
            409 => answer.want_field(409, "execution_id"),
            422 => answer.want_field(422, "input"),
            201 => assert_eq!(answer.want(201)["run"]["input"], body["input"]),
            _ => assert_eq!(answer.code(), *want, "{body}"),
        }
    }
    for (id, mut codes) in chosen_twice {
        codes.sort();
        assert_eq!(codes, [201, 409], "{id}: one start takes it");
    }
    assert!(
        metrics.start_groups_refused.load(Relaxed) > refused_before,
        "groups with a refusal were written again alone"
    );
    // 1 + 40 before; 5 good and 5 execution IDs chosen twice now.
    assert_eq!(runs_of(&c, &a, &wf).await, 51);
}

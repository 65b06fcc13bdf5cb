//! The authorization matrix: each role against each operation class, and user A
//! against user B's workflows (private, shared read, shared execute, team, public)
//! and the runs that inherit their access. On SQLite and PostgreSQL.

use std::sync::Arc;

use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use flowstore_testkit::fixtures::item_texts;
use flowstore_testkit::fixtures::{merged, one_step};
use flowstore_testkit::{both_backends, TestApp};
use serde_json::{json, Value};

both_backends!(
    roles_against_operation_classes,
    user_a_against_user_b_objects,
    webhooks_get_only_what_their_owner_may_read,
    event_streams_carry_only_what_the_reader_may_read,
    key_scopes_limit_every_route,
    references_name_only_visible_objects,
    installation_wide_objects,
);

fn steps() -> Value {
    one_step("shell")
}

async fn workflow(c: &TestApp, key: &str, extra: Value) -> String {
    let body = json!({"name": "wf", "status": "active", "definition": steps()});
    c.by(key)
        .create_workflow(merged(body, extra))
        .await
        .want_id(201)
}

/// `(status of each key in order)` for one request, `None` = no key.
async fn statuses(
    c: &TestApp,
    keys: &[Option<&str>],
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Vec<u16> {
    let mut out = Vec::new();
    for k in keys {
        let r = c
            .raw(
                method,
                path,
                *k,
                body.as_ref().map(|b| serde_json::to_vec(b).unwrap()),
            )
            .await;
        if r.status.as_u16() >= 400 {
            assert!(
                r.content_type.starts_with("application/problem+json"),
                "{method} {path}: {} {}",
                r.status,
                r.content_type
            );
        }
        out.push(r.status.as_u16());
    }
    out
}

async fn roles_against_operation_classes(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    c.shell_handler().await;
    let (_, admin) = c.user_key(Role::Admin, "admin@x.io").await;
    let (_, user) = c.user_key(Role::User, "a@x.io").await;
    let (_, viewer) = c.user_key(Role::Viewer, "v@x.io").await;
    let (_, other) = c.user_key(Role::User, "b@x.io").await;
    let keys = [
        Some(admin.as_str()),
        Some(user.as_str()),
        Some(viewer.as_str()),
        None,
    ];
    let unowned = workflow(&c, &c.user, json!({})).await;
    let others = workflow(&c, &other, json!({})).await;

    // read: every role; no key is 401
    let read = statuses(
        &c,
        &keys,
        "GET",
        &format!("/api/v1/workflows/{unowned}"),
        None,
    )
    .await;
    assert_eq!(read, [200, 200, 200, 401], "read");
    // write own
    let new = json!({"name": "mine", "definition": steps()});
    let own = statuses(&c, &keys, "POST", "/api/v1/workflows", Some(new)).await;
    assert_eq!(own, [201, 201, 403, 401], "write own");
    // write another user's (private) object: an admin may; a user does not see it;
    // a viewer may not write at all
    let path = format!("/api/v1/workflows/{others}");
    let w = statuses(&c, &keys, "PATCH", &path, Some(json!({"description": "x"}))).await;
    assert_eq!(w, [200, 404, 403, 401], "write another's");
    // worker protocol
    let claim = json!({"worker_id": "w", "handler_types": ["shell"], "limit": 1, "lease_ms": 1000});
    let wp = statuses(&c, &keys, "POST", "/api/v1/worker/claim", Some(claim)).await;
    assert_eq!(wp, [200, 200, 403, 401], "worker protocol");
    // API key management: creating is an admin's; listing one's own is anyone's
    let create = statuses(
        &c,
        &keys,
        "POST",
        "/api/v1/apikeys",
        Some(json!({"name": "k"})),
    )
    .await;
    assert_eq!(create, [201, 403, 403, 401], "create key");
    let list = statuses(&c, &keys, "GET", "/api/v1/apikeys", None).await;
    assert_eq!(list, [200, 200, 200, 401], "list own keys");
    // admin-only areas
    let cfg = statuses(&c, &keys, "GET", "/api/v1/configurations", None).await;
    assert_eq!(cfg, [200, 403, 403, 401], "configurations");
    let users = statuses(&c, &keys, "GET", "/api/v1/users", None).await;
    assert_eq!(users, [200, 403, 403, 401], "users");
    // one's own notifications: every role chooses which it wants, follows them and
    // asks to confirm its address; no key is 401
    let prefs = "/api/v1/users/me/notification-preferences";
    let got = statuses(&c, &keys, "GET", prefs, None).await;
    assert_eq!(got, [200, 200, 200, 401], "notification preferences");
    let got = statuses(&c, &keys, "PATCH", prefs, Some(json!({"info": false}))).await;
    assert_eq!(got, [200, 200, 200, 401], "change notification preferences");
    let verify = "/api/v1/users/me/email-verification";
    let got = statuses(&c, &keys, "POST", verify, None).await;
    assert_eq!(got, [202, 202, 202, 401], "ask to confirm one's address");
    // resetting a password and confirming an address need no key: whoever holds
    // the token (the answers are the same with any key or none)
    let reset = Some(json!({"email": "a@x.io"}));
    let got = statuses(&c, &keys, "POST", "/api/v1/password-resets", reset).await;
    assert_eq!(got, [202, 202, 202, 202], "ask for a password reset");
    let bad = Some(json!({"token": "nope", "password": "violet tractor lighthouse"}));
    let got = statuses(&c, &keys, "POST", "/api/v1/password-resets/confirm", bad).await;
    assert_eq!(got, [422, 422, 422, 422], "reset with a wrong token");
    for path in [
        "/api/v1/queues",
        "/api/v1/workers",
        "/api/v1/summaries/agents",
    ] {
        let got = statuses(&c, &keys, "GET", path, None).await;
        assert_eq!(got, [200, 403, 403, 401], "{path}");
    }
    // dashboard reads of one's own scope: every role; no key is 401
    for path in [
        "/api/v1/runs",
        "/api/v1/analytics/runs",
        "/api/v1/summaries/active-tasks",
        "/api/v1/summaries/pull-requests",
    ] {
        let got = statuses(&c, &keys, "GET", path, None).await;
        assert_eq!(got, [200, 200, 200, 401], "{path}");
    }
    // re-running a run executes its workflow: not a viewer's, and another user's
    // private one is not seen
    let run = c.by(&other).start_run(&others, json!({})).await.want(201)["run"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let rerun = statuses(
        &c,
        &keys,
        "POST",
        &format!("/api/v1/runs/{run}/rerun"),
        None,
    )
    .await;
    assert_eq!(rerun, [201, 404, 403, 401], "rerun another's");
    let attempts = statuses(
        &c,
        &keys,
        "GET",
        &format!("/api/v1/runs/{run}/attempts"),
        None,
    )
    .await;
    assert_eq!(attempts, [200, 404, 404, 401], "attempts of another's run");
    // incoming webhook triggers: managed by whoever may change the workflow (another
    // user's private one is not seen; a viewer changes nothing); fired by whoever
    // holds the URL, with or without a key
    let triggers = format!("/api/v1/workflows/{others}/triggers");
    let body = Some(json!({"name": "t"}));
    let t = statuses(&c, &keys, "POST", &triggers, body).await;
    assert_eq!(t, [201, 404, 403, 401], "create a trigger");
    let t = statuses(&c, &keys, "GET", &triggers, None).await;
    assert_eq!(t, [200, 404, 404, 401], "list triggers");
    let made = c
        .by(&other)
        .create_trigger(&others, json!({"name": "theirs"}))
        .await
        .want(201);
    let one = format!(
        "/api/v1/triggers/{}",
        made["trigger"]["id"].as_str().unwrap()
    );
    let hook = made["url"].as_str().unwrap();
    let t = statuses(&c, &keys, "GET", &one, None).await;
    assert_eq!(t, [200, 404, 404, 401], "read a trigger");
    let t = statuses(&c, &keys, "PATCH", &one, Some(json!({"name": "x"}))).await;
    assert_eq!(t, [200, 404, 403, 401], "change a trigger");
    let t = statuses(&c, &keys, "POST", hook, Some(json!({}))).await;
    assert_eq!(t, [202, 202, 202, 202], "fire a trigger");
    let t = statuses(&c, &keys, "POST", &format!("{one}/rotate"), None).await;
    assert_eq!(t, [200, 404, 403, 401], "rotate a trigger");
    let t = statuses(&c, &keys, "DELETE", &one, None).await;
    assert_eq!(t, [204, 404, 403, 401], "delete a trigger");
    let h = statuses(&c, &keys, "POST", "/api/v1/handlers/shell/deactivate", None).await;
    assert_eq!(h, [200, 403, 403, 401], "handler deactivate");
    // a task's dependencies: changing them is writing the task (another user's
    // standalone task is hidden from a user; a viewer changes nothing)
    let first = c
        .by(&other)
        .create_task(json!({"title": "first"}))
        .await
        .want_id(201);
    let then = c
        .by(&other)
        .create_task(json!({"title": "then"}))
        .await
        .want_id(201);
    let add = format!("/api/v1/tasks/{then}/dependencies");
    let body = Some(json!({"depends_on": first}));
    let d = statuses(&c, &keys, "POST", &add, body).await;
    assert_eq!(d, [201, 404, 403, 401], "add a dependency");
    let d = statuses(&c, &keys, "GET", &add, None).await;
    assert_eq!(d, [200, 404, 404, 401], "list dependencies");
    let remove = format!("/api/v1/tasks/{then}/dependencies/{first}");
    let d = statuses(&c, &keys, "DELETE", &remove, None).await;
    assert_eq!(d, [204, 404, 403, 401], "remove a dependency");
}

async fn user_a_against_user_b_objects(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    c.shell_handler().await;
    let (a_id, a) = c.user_key(Role::User, "a@x.io").await;
    let (b_id, bk) = c.user_key(Role::User, "b@x.io").await;
    let (_, admin) = c.user_key(Role::Admin, "root@x.io").await;
    // B puts a workflow in the team, so B must be in it too
    let team_id = c.team_with(&admin, "t1", &[&a_id, &b_id]).await;

    let private = workflow(&c, &bk, json!({})).await;
    let shared_read = workflow(&c, &bk, json!({})).await;
    let shared_exec = workflow(&c, &bk, json!({})).await;
    let team_wf = workflow(&c, &bk, json!({"visibility": "team", "team_id": team_id})).await;
    let public = workflow(&c, &bk, json!({"visibility": "public"})).await;
    let own = workflow(&c, &a, json!({})).await;
    for (wf, perm) in [(&shared_read, "read"), (&shared_exec, "execute")] {
        let s = c
            .by(&bk)
            .share_workflow(wf, json!({"user_id": a_id, "permission": perm}))
            .await;
        assert_eq!(s.status, 201, "{}", s.body);
    }
    // A may not share B's workflow, nor see that a private one exists
    let s = c
        .by(&a)
        .share_workflow(
            &shared_read,
            json!({"user_id": a_id, "permission": "write"}),
        )
        .await;
    assert_eq!(s.status, 403, "{}", s.body);

    //                      get  patch run  batch
    let cases = [
        (&private, [404, 404, 404, 404]),
        (&shared_read, [200, 403, 403, 403]),
        (&shared_exec, [200, 403, 201, 201]),
        (&team_wf, [200, 403, 403, 403]),
        (&public, [200, 403, 403, 403]),
        (&own, [200, 200, 201, 201]),
    ];
    for (wf, want) in cases {
        let got = [
            c.by(&a).get_workflow(wf).await,
            c.by(&a)
                .update_workflow(wf, json!({"description": "by a"}))
                .await,
            c.by(&a).start_run(wf, json!({})).await,
            c.by(&a).start_runs(wf, json!({"runs": [{}]})).await,
        ];
        let got: Vec<u16> = got.iter().map(|r| r.status.as_u16()).collect();
        assert_eq!(got, want, "workflow {wf}");
    }

    // A's list shows what A may read, not B's private one
    let list = c.by(&a).get("/api/v1/workflows?limit=100").await;
    let ids = item_texts(&list.body, "id");
    assert!(!ids.contains(&private.as_str()), "{ids:?}");
    for wf in [&shared_read, &shared_exec, &team_wf, &public, &own] {
        assert!(ids.contains(&wf.as_str()), "{wf} in {ids:?}");
    }

    // runs inherit: B's run of the private workflow is hidden from A; of the
    // read-shared one, visible but not cancellable
    for (wf, read, cancel) in [(&private, 404, 404), (&shared_read, 200, 403)] {
        let r = c.by(&bk).start_run(wf, json!({})).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let run = r.body["run"]["id"].as_str().unwrap().to_string();
        let exec = r.body["run"]["execution_id"].as_str().unwrap().to_string();
        for path in [
            format!("/api/v1/runs/{run}"),
            format!("/api/v1/runs/{run}/tasks"),
            format!("/api/v1/runs/{run}/progress"),
            format!("/api/v1/runs?workflow_id={wf}"),
            format!("/api/v1/executions/{exec}"),
            format!("/api/v1/executions/{exec}/metrics"),
            format!("/api/v1/logs?execution_id={run}"),
        ] {
            let got = c.by(&a).get(&path).await;
            assert_eq!(got.status, read, "{path}: {}", got.body);
        }
        let got = c.by(&a).cancel_run(&run).await;
        assert_eq!(got.status, cancel, "cancel: {}", got.body);
        let got = c.by(&admin).get_run(&run).await;
        assert_eq!(got.status, 200, "an admin sees every run");
        // the run's tasks, by the standalone task routes, inherit as well
        let tasks = c.by(&bk).run_tasks(&run).await;
        let task = tasks.body[0]["id"].as_str().unwrap();
        let got = c.by(&a).get_task(task).await;
        assert_eq!(got.status, read, "task of the run: {}", got.body);
    }
    // B cancels their own run
    let r = c.by(&bk).start_run(&private, json!({})).await;
    let run = r.body["run"]["id"].as_str().unwrap();
    let got = c.by(&bk).cancel_run(run).await;
    assert_eq!(got.status, 200, "{}", got.body);
}

/// Numbers the events (PostgreSQL numbers them after commit) and fans them out to
/// the webhooks, as the dispatcher's round does.
async fn fan_out(c: &TestApp) {
    let mut tx = c.backend.begin().await.unwrap();
    tx.sequence_events().await.unwrap();
    tx.commit().await.unwrap();
    loop {
        let mut tx = c.backend.begin().await.unwrap();
        let f = tx.fan_out_events(100).await.unwrap();
        tx.commit().await.unwrap();
        if f.events == 0 {
            break;
        }
    }
}

async fn webhook(c: &TestApp, key: &str, name: &str) -> String {
    let r = c.by(key).create_webhook(json!({"name": name, "url": format!("https://hooks.example.com/{name}"), "events": ["*"]}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["webhook"]["id"].as_str().unwrap().to_string()
}

/// The run IDs (and whole bodies) of a webhook's deliveries.
async fn delivered(c: &TestApp, key: &str, hook: &str) -> (Vec<String>, String) {
    let r = c
        .by(key)
        .get(&format!("/api/v1/webhooks/{hook}/deliveries?limit=200"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let runs = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["payload"]["run_id"].as_str().map(str::to_string))
        .collect();
    (runs, r.body.to_string())
}

/// Starts a run of `wf` with `key` and fails its task with `error`; the run's ID.
async fn failed_run(c: &TestApp, key: &str, wf: &str, error: &str) -> String {
    let r = c.by(key).start_run(wf, json!({})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let run = r.body["run"]["id"].as_str().unwrap().to_string();
    let claim =
        json!({"worker_id": "w", "handler_types": ["shell"], "limit": 10, "lease_ms": 60000});
    let got = c.by(key).claim(claim).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let task = got
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["run_id"] == run.as_str())
        .unwrap_or_else(|| panic!("the run's task was claimed: {}", got.body))
        .clone();
    let fail = json!({"task_id": task["task_id"], "attempt": task["attempt"],
                      "error": error, "retryable": false});
    let f = c.by(key).fail(fail).await;
    assert_eq!(f.status, 200, "{}", f.body);
    run
}

/// The event that ends `run` as failed.
fn run_failed(run: &str) -> impl Fn(&Value) -> bool {
    let run = run.to_string();
    move |e| e["run_id"] == run.as_str() && e["event_type"] == "run.failed"
}

/// An event stream naming no run or workflow carries for a user only the events
/// they may read, by the rule webhooks follow; an admin's carries all; naming a run
/// one may not read is refused; `tail=true` starts with what happens after the
/// stream opened.
async fn event_streams_carry_only_what_the_reader_may_read(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    c.shell_handler().await;
    let (_, a) = c.user_key(Role::User, "a@x.io").await;
    let (_, bk) = c.user_key(Role::User, "b@x.io").await;
    let a_wf = workflow(&c, &a, json!({})).await;
    let b_wf = workflow(&c, &bk, json!({})).await;
    let a_run = failed_run(&c, &a, &a_wf, "a-private-error-text").await;
    let b_run = failed_run(&c, &bk, &b_wf, "b-own-error").await;

    let seen = c.events(&bk, "", run_failed(&b_run)).await;
    assert!(
        seen.iter()
            .any(|e| e["run_id"] == b_run.as_str() && e["event_type"] == "run.started"),
        "B hears its own run from the start: {seen:?}"
    );
    assert!(
        seen.iter().all(|e| e["run_id"] == b_run.as_str()),
        "B hears nothing of A's private run, nor of what belongs to no run: {seen:?}"
    );
    let all = c.events(&c.admin, "", run_failed(&b_run)).await;
    assert!(
        all.iter().any(|e| e["run_id"] == a_run.as_str()),
        "the admin hears every run: {all:?}"
    );
    assert_eq!(
        c.by(&a)
            .get(&format!("/api/v1/events?run_id={b_run}"))
            .await
            .status,
        404,
        "naming another's private run"
    );

    // From now on: a later run of B's, and nothing of what came before.
    let (later, tail) = tokio::join!(
        async {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            failed_run(&c, &bk, &b_wf, "later").await
        },
        c.events(&bk, "tail=true", |e| e["event_type"] == "run.failed")
    );
    assert!(
        !tail.is_empty() && tail.iter().all(|e| e["run_id"] == later.as_str()),
        "only the run started after the stream opened: {tail:?}"
    );
}

/// A webhook receives only events about objects its owner may read at fan-out
/// time: not another user's private runs (nor the error text their worker
/// reported), its own runs, runs of a workflow shared with it while the share
/// lasts, nothing once its owner is switched off; an admins' webhook everything.
async fn webhooks_get_only_what_their_owner_may_read(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    c.shell_handler().await;
    let (_, a) = c.user_key(Role::User, "a@x.io").await;
    let (b_id, bk) = c.user_key(Role::User, "b@x.io").await;
    let b_hook = webhook(&c, &bk, "b").await;
    let admin_hook = webhook(&c, &c.admin, "ops").await;

    let a_wf = workflow(&c, &a, json!({})).await;
    let b_wf = workflow(&c, &bk, json!({})).await;
    let a_run = failed_run(&c, &a, &a_wf, "a-private-error-text").await;
    let b_run = failed_run(&c, &bk, &b_wf, "b-own-error").await;
    fan_out(&c).await;

    let (runs, body) = delivered(&c, &bk, &b_hook).await;
    assert!(runs.contains(&b_run), "B gets its own run's events: {body}");
    assert!(
        !runs.contains(&a_run),
        "B gets none of A's private run: {body}"
    );
    assert!(!body.contains("a-private-error-text"), "{body}");
    let (runs, _) = delivered(&c, &c.admin, &admin_hook).await;
    assert!(runs.contains(&a_run) && runs.contains(&b_run), "{runs:?}");

    // shared with B: B's webhook gets the runs that happen while it is shared
    let s = c
        .by(&a)
        .share_workflow(&a_wf, json!({"user_id": b_id, "permission": "read"}))
        .await;
    assert_eq!(s.status, 201, "{}", s.body);
    let shared_run = failed_run(&c, &a, &a_wf, "shared-error").await;
    fan_out(&c).await;
    let (runs, body) = delivered(&c, &bk, &b_hook).await;
    assert!(runs.contains(&shared_run), "{body}");

    // the share removed before the fan-out: the next run is not B's to see
    let share = s.body["id"].as_str().unwrap();
    let un = c
        .by(&a)
        .delete(&format!("/api/v1/workflows/{a_wf}/shares/{share}"))
        .await;
    assert_eq!(un.status, 204, "{}", un.body);
    let unshared_run = failed_run(&c, &a, &a_wf, "unshared-error").await;
    fan_out(&c).await;
    let (runs, body) = delivered(&c, &bk, &b_hook).await;
    assert!(!runs.contains(&unshared_run), "{body}");

    // B switched off: its webhook gets nothing more, not even B's own runs
    let b_run2 = failed_run(&c, &bk, &b_wf, "late").await;
    let off = c
        .admin()
        .update_user(&b_id, json!({"status": "inactive"}))
        .await;
    assert_eq!(off.status, 200, "{}", off.body);
    fan_out(&c).await;
    let (runs, _) = delivered(&c, &c.admin, &b_hook).await;
    assert!(!runs.contains(&b_run2), "{runs:?}");
    let (runs, _) = delivered(&c, &c.admin, &admin_hook).await;
    assert!(runs.contains(&unshared_run) && runs.contains(&b_run2));
}

/// An API key with scopes may make only the requests they grant, on every route:
/// `read` reads, `write` changes objects, `execute` starts runs and speaks the
/// worker protocol, `admin` does admin operations; a key without scopes is limited
/// by its role alone. The OpenAPI document names each operation's scope.
async fn key_scopes_limit_every_route(b: Arc<dyn Backend>) {
    use flowstore_core::model::identity_access::NewApiKey;
    let c = TestApp::new(b.clone()).await;
    c.shell_handler().await;
    let scoped = |role: Role, scopes: &[&str]| {
        let b = b.clone();
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        async move {
            let mut tx = b.begin().await.unwrap();
            let k = tx
                .create_api_key(NewApiKey {
                    name: format!("{scopes:?}"),
                    role: Some(role),
                    scopes,
                    ..NewApiKey::default()
                })
                .await
                .unwrap();
            tx.commit().await.unwrap();
            k.key.expose().to_string()
        }
    };
    let read = scoped(Role::User, &["read"]).await;
    let write = scoped(Role::User, &["write"]).await;
    let exec = scoped(Role::User, &["execute"]).await;
    let admin_read = scoped(Role::Admin, &["read"]).await;
    let admin_all = scoped(Role::Admin, &["admin"]).await;
    let keys = [
        Some(read.as_str()),
        Some(write.as_str()),
        Some(exec.as_str()),
        Some(c.user.as_str()),
    ];
    let wf = workflow(&c, &c.user, json!({})).await;
    let body = json!({"name": "scoped", "definition": steps()});
    let w = statuses(&c, &keys, "POST", "/api/v1/workflows", Some(body)).await;
    assert_eq!(w, [403, 201, 403, 201], "create a workflow");
    let path = format!("/api/v1/workflows/{wf}");
    let g = statuses(&c, &keys, "GET", &path, None).await;
    assert_eq!(g, [200, 200, 200, 200], "read");
    let path = format!("/api/v1/workflows/{wf}/runs");
    let r = statuses(&c, &keys, "POST", &path, Some(json!({}))).await;
    assert_eq!(r, [403, 403, 201, 201], "start a run");
    let path = format!("/api/v1/workflows/{wf}/runs/batch");
    let r = statuses(&c, &keys, "POST", &path, Some(json!({"runs": [{}]}))).await;
    assert_eq!(r, [403, 403, 201, 201], "start runs in a batch");
    let claim =
        json!({"worker_id": "w", "handler_types": ["nothing"], "limit": 1, "lease_ms": 1000});
    let wp = statuses(&c, &keys, "POST", "/api/v1/worker/claim", Some(claim)).await;
    assert_eq!(wp, [403, 403, 200, 200], "worker protocol");
    let mut p = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let body = json!({"name": format!("p{i}")});
        p.extend(statuses(&c, &[*k], "POST", "/api/v1/projects", Some(body)).await);
    }
    assert_eq!(p, [403, 201, 403, 201], "create a project");

    // admin operations need the admin scope as well as the role
    let admins = [Some(admin_read.as_str()), Some(admin_all.as_str())];
    let cfg = statuses(&c, &admins, "GET", "/api/v1/configurations", None).await;
    assert_eq!(cfg, [403, 200], "admin read");
    let k = statuses(
        &c,
        &admins,
        "POST",
        "/api/v1/apikeys",
        Some(json!({"name": "n"})),
    )
    .await;
    assert_eq!(k, [403, 201], "create a key");
    let denied = c.by(&read).create_project(json!({"name": "q"})).await;
    assert!(
        denied.body["detail"].as_str().unwrap().contains("write"),
        "{}",
        denied.body
    );

    // unknown scopes are refused when a key is made, naming the field
    let bad = c
        .admin()
        .create_api_key(json!({"name": "n", "scopes": ["workflows:read"]}))
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(bad.body["field"], "scopes");

    // the document says which scope each operation needs
    let doc = c.user().get("/api/v1/openapi.json").await;
    let scope = |path: &str, method: &str| {
        doc.body["paths"][path][method]["security"][0]["bearer"][0].clone()
    };
    assert_eq!(scope("/api/v1/workflows", "get"), "read");
    assert_eq!(scope("/api/v1/workflows", "post"), "write");
    assert_eq!(scope("/api/v1/workflows/{id}/runs", "post"), "execute");
    assert_eq!(
        scope("/api/v1/workflows/{id}/runs/batch", "post"),
        "execute"
    );
    assert_eq!(scope("/api/v1/worker/complete", "post"), "execute");
    assert_eq!(scope("/api/v1/worker/complete-batch", "post"), "execute");
    assert_eq!(scope("/api/v1/apikeys", "post"), "admin");
    assert!(doc.body["paths"]["/api/v1/sessions"]["post"]["security"][0]
        .as_object()
        .is_some_and(|o| o.is_empty()));
}

/// A body may name another object only when the caller may see it: a parent task,
/// a dependency, a log line's task, a workflow's team. A hidden one answers as a
/// missing one does, and hidden dependencies are left out of lists.
async fn references_name_only_visible_objects(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (_, a) = c.user_key(Role::User, "a@x.io").await;
    let (_, bk) = c.user_key(Role::User, "b@x.io").await;
    let task = |key: &str, extra: Value| {
        let mut body = json!({"title": "t"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let key = key.to_string();
        let c = &c;
        async move { c.by(&key).create_task(body).await }
    };
    let a_task = task(&a, json!({})).await;
    assert_eq!(a_task.status, 201, "{}", a_task.body);
    let a_task = a_task.body["id"].as_str().unwrap().to_string();
    let missing = uuid::Uuid::now_v7().to_string();
    for (field, hidden, absent) in [
        (
            "parent_task_id",
            json!({"parent_task_id": a_task}),
            json!({"parent_task_id": missing}),
        ),
        (
            "depends_on",
            json!({"depends_on": [a_task]}),
            json!({"depends_on": [missing]}),
        ),
    ] {
        let h = task(&bk, hidden).await;
        let m = task(&bk, absent).await;
        assert_eq!(
            (h.status.as_u16(), m.status.as_u16()),
            (422, 422),
            "{field}: {} / {}",
            h.body,
            m.body
        );
        assert_eq!(h.body["field"], field, "{}", h.body);
    }
    let b_task = task(&bk, json!({})).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let p = c
        .by(&bk)
        .update_task(&b_task, json!({"parent_task_id": a_task}))
        .await;
    assert_eq!(p.status, 422, "{}", p.body);
    // A's own task may depend on it; B may not read that dependency
    let dep = task(&a, json!({"depends_on": [a_task]})).await;
    assert_eq!(dep.status, 201, "{}", dep.body);
    // the same after creation: B's task may not gain A's hidden task (422 as for a
    // missing one), and A's task is hidden from B whichever way it is named
    let later = |who: &str, id: &str, dep: &str| {
        let (who, path) = (who.to_string(), format!("/api/v1/tasks/{id}/dependencies"));
        let body = json!({"depends_on": dep});
        let c = &c;
        async move { c.by(&who).post(&path, body).await }
    };
    for (who, id, dep, want) in [
        (&bk, &b_task, &a_task, 422),
        (&bk, &b_task, &missing, 422),
        (&bk, &a_task, &b_task, 404),
        (&a, &a_task, &b_task, 422),
        (&a, &b_task, &a_task, 404),
    ] {
        let r = later(who, id, dep).await;
        assert_eq!(r.status, want, "{who} {id} -> {dep}: {}", r.body);
        if want == 422 {
            assert_eq!(r.body["field"], "depends_on", "{}", r.body);
        }
    }
    let dep_id = dep.body["id"].as_str().unwrap().to_string();
    let r = c
        .by(&bk)
        .delete(&format!("/api/v1/tasks/{dep_id}/dependencies/{a_task}"))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = c
        .by(&bk)
        .delete(&format!("/api/v1/tasks/{b_task}/dependencies/{a_task}"))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    // a log line about A's task
    let log = json!({"level": "info", "message": "x", "task_id": a_task});
    let l = c.by(&bk).write_log(log.clone()).await;
    assert_eq!(l.status, 404, "{}", l.body);
    let l = c.by(&a).write_log(log).await;
    assert_eq!(l.status, 201, "{}", l.body);
    // a team B is not in
    let team = c.admin().create_team(json!({"name": "t"})).await;
    let team = team.body["id"].as_str().unwrap().to_string();
    let w = c
        .by(&bk)
        .create_workflow(json!({"name": "w", "definition": steps(), "team_id": team}))
        .await;
    assert_eq!(w.status, 422, "{}", w.body);
    assert_eq!(w.body["field"], "team_id");

    // a name taken by a hidden project answers exactly as one taken by a visible
    // one: the field, never who holds it or what it is
    let p = c.by(&a).create_project(json!({"name": "secret"})).await;
    assert_eq!(p.status, 201, "{}", p.body);
    let id = p.body["id"].as_str().unwrap();
    let hidden = c.by(&bk).create_project(json!({"name": "secret"})).await;
    let visible = c.by(&a).create_project(json!({"name": "secret"})).await;
    assert_eq!(hidden.status, 409, "{}", hidden.body);
    assert_eq!(hidden.body, visible.body);
    assert!(!hidden.body.to_string().contains(id), "{}", hidden.body);
}

/// Objects of the installation: components are changed by admins only (and read
/// by users and admins), system metrics are read by users and admins, a viewer
/// sees component health only.
async fn installation_wide_objects(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let keys = [
        Some(c.admin.as_str()),
        Some(c.user.as_str()),
        Some(c.viewer.as_str()),
    ];
    let r = c
        .user()
        .create_component(
            json!({"name": "svc", "type": "service", "configuration": {"dsn": "internal"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let patch = Some(json!({"configuration": {"dsn": "elsewhere"}}));
    let p = statuses(
        &c,
        &keys[1..],
        "PATCH",
        "/api/v1/components/svc",
        patch.clone(),
    )
    .await;
    assert_eq!(p, [403, 403], "change a component");
    let p = statuses(&c, &keys[..1], "PATCH", "/api/v1/components/svc", patch).await;
    assert_eq!(p, [200], "an admin changes it");
    let g = statuses(&c, &keys, "GET", "/api/v1/components/svc", None).await;
    assert_eq!(g, [200, 200, 403], "read a component");
    let g = statuses(&c, &keys, "GET", "/api/v1/components", None).await;
    assert_eq!(g, [200, 200, 403], "list components");
    let h = statuses(&c, &keys, "GET", "/api/v1/components/health", None).await;
    assert_eq!(h, [200, 200, 200], "component health");
    let m = statuses(&c, &keys, "GET", "/api/v1/system-metrics", None).await;
    assert_eq!(m, [200, 200, 403], "system metrics");
}

//! The worker protocol scoped per workflow: a key other than an admin's claims only
//! tasks of workflows it may execute (its own, unowned, shared for execute) and may
//! not report on others (404 hidden, 403 read only). On SQLite and PostgreSQL.

use std::collections::BTreeSet;
use std::sync::Arc;

use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use flowstore_testkit::{both_backends, requests, TestApp};
use serde_json::{json, Value};

both_backends!(workers_take_only_what_they_may_execute);

/// Starts a run of a new one-step workflow made by `key` with `extra` settings;
/// returns (workflow ID, the step's task ID).
async fn started(c: &TestApp, key: &str, extra: Value) -> (String, String) {
    let mut body = json!({"name": "wf", "status": "active",
        "definition": {"steps": [{"key": "a", "handler": "shell"}]}});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let id = c.by(key).create_workflow(body).await.want_id(201);
    let run = c.by(key).start_run(&id, json!({})).await.want(201);
    let run_id = run["run"]["id"].as_str().unwrap();
    let tasks = c.by(key).run_tasks(run_id).await.want(200);
    (id, tasks[0]["id"].as_str().unwrap().to_string())
}

fn claim() -> Option<Value> {
    Some(json!({"worker_id": "w", "handler_types": ["shell"], "limit": 10, "lease_ms": 60000}))
}

async fn workers_take_only_what_they_may_execute(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (a_id, a) = c.user_key(Role::User, "a@x.io").await;
    let (r_id, reader) = c.user_key(Role::User, "r@x.io").await;
    let (_, bk) = c.user_key(Role::User, "b@x.io").await;
    let handler = json!({"handler_type": "shell", "handler_name": "shell"});
    c.admin().create_handler(handler).await.want(201);

    let (_, own) = started(&c, &a, json!({})).await;
    let (_, unowned) = started(&c, &c.user, json!({})).await;
    let (shared_wf, shared) = started(&c, &bk, json!({})).await;
    let (_, private) = started(&c, &bk, json!({})).await;
    let (_, public) = started(&c, &bk, json!({"visibility": "public"})).await;
    for (user, perm) in [(&a_id, "execute"), (&r_id, "read")] {
        let share = json!({"user_id": user, "permission": perm});
        c.by(&bk).share_workflow(&shared_wf, share).await.want(201);
    }

    // A key of no user takes only the unowned workflow's task; A takes its own and
    // the one shared with it for execute, not B's private or public (read-only) ones
    let got = c
        .user()
        .send("POST", "/api/v1/worker/claim", claim())
        .await
        .want(200);
    let ids = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t["task_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&got), BTreeSet::from([unowned.clone()]));
    let mine = c
        .by(&a)
        .send("POST", "/api/v1/worker/claim", claim())
        .await
        .want(200);
    assert_eq!(ids(&mine), BTreeSet::from([own.clone(), shared.clone()]));
    let none = c
        .by(&reader)
        .send("POST", "/api/v1/worker/claim", claim())
        .await
        .want(200);
    assert!(
        ids(&none).is_empty(),
        "a read share does not let a worker claim"
    );
    // an admin takes the rest
    let rest = c
        .admin()
        .send("POST", "/api/v1/worker/claim", claim())
        .await
        .want(200);
    assert_eq!(
        ids(&rest),
        BTreeSet::from([private.clone(), public.clone()])
    );

    let attempt = |list: &Value, task: &str| -> i64 {
        list.as_array()
            .unwrap()
            .iter()
            .find(|t| t["task_id"] == task)
            .unwrap()["attempt"]
            .as_i64()
            .unwrap()
    };
    // A may not report on B's tasks: hidden (private) is 404, read-only (public) 403
    for (task, want) in [(&private, 404), (&public, 403)] {
        let n = attempt(&rest, task);
        let hb = json!({"task_id": task, "attempt": n, "lease_ms": 60000});
        c.by(&a).heartbeat(hb).await.want(want);
        let done = json!({"task_id": task, "attempt": n, "output": {}});
        c.by(&a).complete(done).await.want(want);
        let failed = json!({"task_id": task, "attempt": n, "error": "no"});
        c.by(&a).fail(failed).await.want(want);
    }
    // the reader sees the shared workflow but may not execute it
    let n = attempt(&mine, &shared);
    let done = json!({"task_id": shared, "attempt": n, "output": {}});
    c.by(&reader).complete(done.clone()).await.want(403);
    // A reports on what it took; the admin on the rest
    let hb = json!({"task_id": own, "attempt": attempt(&mine, &own), "lease_ms": 60000});
    requests!(c;
        POST "/api/v1/worker/heartbeat" with (hb) by a => 200;
        POST "/api/v1/worker/complete" with (done) by a => 200;
    );
    let failed = json!({"task_id": own, "attempt": attempt(&mine, &own), "error": "boom"});
    c.by(&a).fail(failed).await.want(200);
    let done = json!({"task_id": private, "attempt": attempt(&rest, &private), "output": {}});
    c.admin().complete(done).await.want(200);
    let done = json!({"task_id": unowned, "attempt": attempt(&got, &unowned), "output": {}});
    c.user().complete(done).await.want(200);
}

//! The worker protocol scoped per workflow: a key other than an admin's claims only
//! tasks of workflows it may execute (its own, unowned, shared for execute) and may
//! not report on others (404 hidden, 403 read only). On SQLite and PostgreSQL.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::{ok, user_key, Client};
use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use serde_json::{json, Value};

both_backends!(workers_take_only_what_they_may_execute);

/// Starts a run of a new one-step workflow made by `key` with `extra` settings;
/// returns (workflow ID, the step's task ID).
async fn started(c: &Client, key: &str, extra: Value) -> (String, String) {
    let mut body = json!({"name": "wf", "status": "active",
        "definition": {"steps": [{"key": "a", "handler": "shell"}]}});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let wf = ok(c, "POST", "/api/v1/workflows", key, Some(body), 201).await;
    let id = wf["id"].as_str().unwrap().to_string();
    let run = ok(
        c,
        "POST",
        &format!("/api/v1/workflows/{id}/runs"),
        key,
        Some(json!({})),
        201,
    )
    .await;
    let run_id = run["run"]["id"].as_str().unwrap();
    let tasks = ok(
        c,
        "GET",
        &format!("/api/v1/runs/{run_id}/tasks"),
        key,
        None,
        200,
    )
    .await;
    (id, tasks[0]["id"].as_str().unwrap().to_string())
}

fn claim() -> Option<Value> {
    Some(json!({"worker_id": "w", "handler_types": ["shell"], "limit": 10, "lease_ms": 60000}))
}

async fn workers_take_only_what_they_may_execute(b: Arc<dyn Backend>) {
    let c = Client::new(b.clone()).await;
    let (a_id, a) = user_key(&b, Role::User, "a@x.io").await;
    let (r_id, reader) = user_key(&b, Role::User, "r@x.io").await;
    let (_, bk) = user_key(&b, Role::User, "b@x.io").await;
    let handler = json!({"handler_type": "shell", "handler_name": "shell"});
    ok(&c, "POST", "/api/v1/handlers", &c.admin, Some(handler), 201).await;

    let (_, own) = started(&c, &a, json!({})).await;
    let (_, unowned) = started(&c, &c.user, json!({})).await;
    let (shared_wf, shared) = started(&c, &bk, json!({})).await;
    let (_, private) = started(&c, &bk, json!({})).await;
    let (_, public) = started(&c, &bk, json!({"visibility": "public"})).await;
    for (user, perm) in [(&a_id, "execute"), (&r_id, "read")] {
        let share = json!({"user_id": user, "permission": perm});
        ok(
            &c,
            "POST",
            &format!("/api/v1/workflows/{shared_wf}/shares"),
            &bk,
            Some(share),
            201,
        )
        .await;
    }

    // A key of no user takes only the unowned workflow's task; A takes its own and
    // the one shared with it for execute, not B's private or public (read-only) ones
    let got = ok(&c, "POST", "/api/v1/worker/claim", &c.user, claim(), 200).await;
    let ids = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t["task_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&got), BTreeSet::from([unowned.clone()]));
    let mine = ok(&c, "POST", "/api/v1/worker/claim", &a, claim(), 200).await;
    assert_eq!(ids(&mine), BTreeSet::from([own.clone(), shared.clone()]));
    let none = ok(&c, "POST", "/api/v1/worker/claim", &reader, claim(), 200).await;
    assert!(
        ids(&none).is_empty(),
        "a read share does not let a worker claim"
    );
    // an admin takes the rest
    let rest = ok(&c, "POST", "/api/v1/worker/claim", &c.admin, claim(), 200).await;
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
        ok(&c, "POST", "/api/v1/worker/heartbeat", &a, Some(hb), want).await;
        let done = json!({"task_id": task, "attempt": n, "output": {}});
        ok(&c, "POST", "/api/v1/worker/complete", &a, Some(done), want).await;
        let failed = json!({"task_id": task, "attempt": n, "error": "no"});
        ok(&c, "POST", "/api/v1/worker/fail", &a, Some(failed), want).await;
    }
    // the reader sees the shared workflow but may not execute it
    let n = attempt(&mine, &shared);
    let done = json!({"task_id": shared, "attempt": n, "output": {}});
    ok(
        &c,
        "POST",
        "/api/v1/worker/complete",
        &reader,
        Some(done.clone()),
        403,
    )
    .await;
    // A reports on what it took; the admin on the rest
    let hb = json!({"task_id": own, "attempt": attempt(&mine, &own), "lease_ms": 60000});
    ok(&c, "POST", "/api/v1/worker/heartbeat", &a, Some(hb), 200).await;
    ok(&c, "POST", "/api/v1/worker/complete", &a, Some(done), 200).await;
    let failed = json!({"task_id": own, "attempt": attempt(&mine, &own), "error": "boom"});
    ok(&c, "POST", "/api/v1/worker/fail", &a, Some(failed), 200).await;
    let done = json!({"task_id": private, "attempt": attempt(&rest, &private), "output": {}});
    ok(
        &c,
        "POST",
        "/api/v1/worker/complete",
        &c.admin,
        Some(done),
        200,
    )
    .await;
    let done = json!({"task_id": unowned, "attempt": attempt(&got, &unowned), "output": {}});
    ok(
        &c,
        "POST",
        "/api/v1/worker/complete",
        &c.user,
        Some(done),
        200,
    )
    .await;
}

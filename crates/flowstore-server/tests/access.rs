//! The authorization matrix: each role against each operation class, and user A
//! against user B's workflows (private, shared read, shared execute, team, public)
//! and the runs that inherit their access. On SQLite and PostgreSQL.

#[macro_use]
mod common;

use std::sync::Arc;

use common::{user_key, Client};
use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use serde_json::{json, Value};

both_backends!(
    roles_against_operation_classes,
    user_a_against_user_b_objects
);

fn steps() -> Value {
    json!({"steps": [{"key": "a", "handler": "shell"}]})
}

async fn handler(c: &Client) {
    let r = c
        .call(
            "POST",
            "/api/v1/handlers",
            &c.admin,
            Some(json!({"handler_type": "shell", "handler_name": "shell"})),
        )
        .await;
    assert!(r.status == 201 || r.status == 409, "{}", r.body);
}

async fn workflow(c: &Client, key: &str, extra: Value) -> String {
    let mut body = json!({"name": "wf", "status": "active", "definition": steps()});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = c.call("POST", "/api/v1/workflows", key, Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

/// `(status of each key in order)` for one request, `None` = no key.
async fn statuses(
    c: &Client,
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
    let c = Client::new(b.clone()).await;
    handler(&c).await;
    let (_, admin) = user_key(&b, Role::Admin, "admin@x.io").await;
    let (_, user) = user_key(&b, Role::User, "a@x.io").await;
    let (_, viewer) = user_key(&b, Role::Viewer, "v@x.io").await;
    let (_, other) = user_key(&b, Role::User, "b@x.io").await;
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
    let h = statuses(&c, &keys, "POST", "/api/v1/handlers/shell/deactivate", None).await;
    assert_eq!(h, [200, 403, 403, 401], "handler deactivate");
}

async fn user_a_against_user_b_objects(b: Arc<dyn Backend>) {
    let c = Client::new(b.clone()).await;
    handler(&c).await;
    let (a_id, a) = user_key(&b, Role::User, "a@x.io").await;
    let (_, bk) = user_key(&b, Role::User, "b@x.io").await;
    let (_, admin) = user_key(&b, Role::Admin, "root@x.io").await;
    let team = c
        .call("POST", "/api/v1/teams", &admin, Some(json!({"name": "t1"})))
        .await;
    assert_eq!(team.status, 201, "{}", team.body);
    let team_id = team.body["id"].as_str().unwrap().to_string();
    let m = c
        .call(
            "POST",
            &format!("/api/v1/teams/{team_id}/members"),
            &admin,
            Some(json!({"user_id": a_id})),
        )
        .await;
    assert_eq!(m.status, 201, "{}", m.body);

    let private = workflow(&c, &bk, json!({})).await;
    let shared_read = workflow(&c, &bk, json!({})).await;
    let shared_exec = workflow(&c, &bk, json!({})).await;
    let team_wf = workflow(&c, &bk, json!({"visibility": "team", "team_id": team_id})).await;
    let public = workflow(&c, &bk, json!({"visibility": "public"})).await;
    let own = workflow(&c, &a, json!({})).await;
    for (wf, perm) in [(&shared_read, "read"), (&shared_exec, "execute")] {
        let s = c
            .call(
                "POST",
                &format!("/api/v1/workflows/{wf}/shares"),
                &bk,
                Some(json!({"user_id": a_id, "permission": perm})),
            )
            .await;
        assert_eq!(s.status, 201, "{}", s.body);
    }
    // A may not share B's workflow, nor see that a private one exists
    let s = c
        .call(
            "POST",
            &format!("/api/v1/workflows/{shared_read}/shares"),
            &a,
            Some(json!({"user_id": a_id, "permission": "write"})),
        )
        .await;
    assert_eq!(s.status, 403, "{}", s.body);

    //                      get  patch run
    let cases = [
        (&private, [404, 404, 404]),
        (&shared_read, [200, 403, 403]),
        (&shared_exec, [200, 403, 201]),
        (&team_wf, [200, 403, 403]),
        (&public, [200, 403, 403]),
        (&own, [200, 200, 201]),
    ];
    for (wf, want) in cases {
        let got = [
            c.call("GET", &format!("/api/v1/workflows/{wf}"), &a, None)
                .await,
            c.call(
                "PATCH",
                &format!("/api/v1/workflows/{wf}"),
                &a,
                Some(json!({"description": "by a"})),
            )
            .await,
            c.call(
                "POST",
                &format!("/api/v1/workflows/{wf}/runs"),
                &a,
                Some(json!({})),
            )
            .await,
        ];
        let got: Vec<u16> = got.iter().map(|r| r.status.as_u16()).collect();
        assert_eq!(got, want, "workflow {wf}");
    }

    // A's list shows what A may read, not B's private one
    let list = c.call("GET", "/api/v1/workflows?limit=100", &a, None).await;
    let ids: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&private.as_str()), "{ids:?}");
    for wf in [&shared_read, &shared_exec, &team_wf, &public, &own] {
        assert!(ids.contains(&wf.as_str()), "{wf} in {ids:?}");
    }

    // runs inherit: B's run of the private workflow is hidden from A; of the
    // read-shared one, visible but not cancellable
    for (wf, read, cancel) in [(&private, 404, 404), (&shared_read, 200, 403)] {
        let r = c
            .call(
                "POST",
                &format!("/api/v1/workflows/{wf}/runs"),
                &bk,
                Some(json!({})),
            )
            .await;
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
            let got = c.call("GET", &path, &a, None).await;
            assert_eq!(got.status, read, "{path}: {}", got.body);
        }
        let got = c
            .call("POST", &format!("/api/v1/runs/{run}/cancel"), &a, None)
            .await;
        assert_eq!(got.status, cancel, "cancel: {}", got.body);
        let got = c
            .call("GET", &format!("/api/v1/runs/{run}"), &admin, None)
            .await;
        assert_eq!(got.status, 200, "an admin sees every run");
        // the run's tasks, by the standalone task routes, inherit as well
        let tasks = c
            .call("GET", &format!("/api/v1/runs/{run}/tasks"), &bk, None)
            .await;
        let task = tasks.body[0]["id"].as_str().unwrap();
        let got = c
            .call("GET", &format!("/api/v1/tasks/{task}"), &a, None)
            .await;
        assert_eq!(got.status, read, "task of the run: {}", got.body);
    }
    // B cancels their own run
    let r = c
        .call(
            "POST",
            &format!("/api/v1/workflows/{private}/runs"),
            &bk,
            Some(json!({})),
        )
        .await;
    let run = r.body["run"]["id"].as_str().unwrap();
    let got = c
        .call("POST", &format!("/api/v1/runs/{run}/cancel"), &bk, None)
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
}

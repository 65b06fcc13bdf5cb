//! A task's links (dependencies, children, delete) and a project's summary: success
//! and failure, and another user's tasks. On SQLite and PostgreSQL.

#[macro_use]
mod common;

use std::sync::Arc;

use common::{ok, user_key, Client};
use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use serde_json::{json, Value};

both_backends!(task_links_and_project_summary);

fn steps(handler: &str) -> Value {
    json!({"steps": [{"key": "a", "handler": handler}]})
}

async fn task_links_and_project_summary(b: Arc<dyn Backend>) {
    let c = Client::new(b.clone()).await;
    let (_, a) = user_key(&b, Role::User, "a@x.io").await;
    let (_, bk) = user_key(&b, Role::User, "b@x.io").await;
    let p = ok(
        &c,
        "POST",
        "/api/v1/projects",
        &a,
        Some(json!({"name": "p"})),
        201,
    )
    .await;
    let pid = p["id"].as_str().unwrap().to_string();
    let task = |title: &str, extra: Value| {
        let mut t = json!({"title": title, "project_id": pid});
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        Some(t)
    };
    let first = ok(
        &c,
        "POST",
        "/api/v1/tasks",
        &a,
        task("first", json!({})),
        201,
    )
    .await;
    let first = first["id"].as_str().unwrap().to_string();
    let parent = ok(
        &c,
        "POST",
        "/api/v1/tasks",
        &a,
        task("parent", json!({"depends_on": [first]})),
        201,
    )
    .await;
    let parent = parent["id"].as_str().unwrap().to_string();
    let mut kids = Vec::new();
    for i in 0..3 {
        let k = ok(
            &c,
            "POST",
            "/api/v1/tasks",
            &a,
            task(&format!("kid {i}"), json!({"parent_task_id": parent})),
            201,
        )
        .await;
        kids.push(k["id"].as_str().unwrap().to_string());
    }

    // dependencies
    let deps = ok(
        &c,
        "GET",
        &format!("/api/v1/tasks/{parent}/dependencies"),
        &a,
        None,
        200,
    )
    .await;
    assert_eq!(deps, json!([first]));
    let none = ok(
        &c,
        "GET",
        &format!("/api/v1/tasks/{first}/dependencies"),
        &a,
        None,
        200,
    )
    .await;
    assert_eq!(none, json!([]));
    ok(
        &c,
        "GET",
        &format!("/api/v1/tasks/{parent}/dependencies"),
        &bk,
        None,
        404,
    )
    .await;
    let missing = "0190f2a4-0000-7000-8000-000000000000";
    ok(
        &c,
        "GET",
        &format!("/api/v1/tasks/{missing}/dependencies"),
        &a,
        None,
        404,
    )
    .await;

    // children, by page, newest first
    let page = ok(
        &c,
        "GET",
        &format!("/api/v1/tasks/{parent}/children?limit=2"),
        &a,
        None,
        200,
    )
    .await;
    let got: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [kids[2].as_str(), kids[1].as_str()]);
    let cur = page["next_cursor"].as_str().unwrap();
    let last = ok(
        &c,
        "GET",
        &format!("/api/v1/tasks/{parent}/children?limit=2&cursor={cur}"),
        &a,
        None,
        200,
    )
    .await;
    assert_eq!(last["items"][0]["id"], json!(kids[0]));
    assert!(last["next_cursor"].is_null());
    ok(
        &c,
        "GET",
        &format!("/api/v1/tasks/{parent}/children"),
        &bk,
        None,
        404,
    )
    .await;
    ok(
        &c,
        "GET",
        &format!("/api/v1/tasks/{parent}/children?limit=0"),
        &a,
        None,
        422,
    )
    .await;
    ok(
        &c,
        "GET",
        &format!("/api/v1/tasks/{parent}/children?bogus=1"),
        &a,
        None,
        422,
    )
    .await;

    // project summary
    ok(
        &c,
        "PATCH",
        &format!("/api/v1/tasks/{first}"),
        &a,
        Some(json!({"status": "completed"})),
        200,
    )
    .await;
    let s = ok(
        &c,
        "GET",
        &format!("/api/v1/projects/{pid}/summary"),
        &a,
        None,
        200,
    )
    .await;
    assert_eq!(
        (
            s["total"].clone(),
            s["completed"].clone(),
            s["pending"].clone()
        ),
        (json!(5), json!(1), json!(4))
    );
    assert_eq!(s["percent_complete"], 20.0);
    ok(
        &c,
        "GET",
        &format!("/api/v1/projects/{pid}/summary"),
        &bk,
        None,
        404,
    )
    .await;
    ok(
        &c,
        "GET",
        &format!("/api/v1/projects/{missing}/summary"),
        &c.admin,
        None,
        404,
    )
    .await;

    // delete: another user's is hidden; a step of a run is kept (409); the owner
    // deletes a standalone task with its dependencies
    ok(
        &c,
        "DELETE",
        &format!("/api/v1/tasks/{first}"),
        &bk,
        None,
        404,
    )
    .await;
    ok(
        &c,
        "DELETE",
        &format!("/api/v1/tasks/{first}"),
        &c.viewer,
        None,
        403,
    )
    .await;
    ok(
        &c,
        "DELETE",
        &format!("/api/v1/tasks/{first}"),
        &a,
        None,
        204,
    )
    .await;
    ok(&c, "GET", &format!("/api/v1/tasks/{first}"), &a, None, 404).await;
    let deps = ok(
        &c,
        "GET",
        &format!("/api/v1/tasks/{parent}/dependencies"),
        &a,
        None,
        200,
    )
    .await;
    assert_eq!(deps, json!([]));
    ok(
        &c,
        "DELETE",
        &format!("/api/v1/tasks/{first}"),
        &a,
        None,
        404,
    )
    .await;
    ok(
        &c,
        "POST",
        "/api/v1/handlers",
        &c.admin,
        Some(json!({"handler_type": "shell", "handler_name": "shell"})),
        201,
    )
    .await;
    let wf = json!({"name": "w", "status": "active", "definition": steps("shell")});
    let wf = ok(&c, "POST", "/api/v1/workflows", &a, Some(wf), 201).await;
    let started = ok(
        &c,
        "POST",
        &format!("/api/v1/workflows/{}/runs", wf["id"].as_str().unwrap()),
        &a,
        Some(json!({})),
        201,
    )
    .await;
    let run = started["run"]["id"].as_str().unwrap();
    let tasks = ok(
        &c,
        "GET",
        &format!("/api/v1/runs/{run}/tasks"),
        &a,
        None,
        200,
    )
    .await;
    let step = tasks[0]["id"].as_str().unwrap();
    let e = ok(
        &c,
        "DELETE",
        &format!("/api/v1/tasks/{step}"),
        &a,
        None,
        409,
    )
    .await;
    assert_eq!(e["field"], "run_id");
    ok(&c, "GET", &format!("/api/v1/tasks/{step}"), &a, None, 200).await;
}

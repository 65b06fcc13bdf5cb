//! Standalone tasks and pull requests over HTTP: create, read, change, filters,
//! search, status moves and validation, and who may do what with them. On SQLite
//! and PostgreSQL.

#[macro_use]
mod common;

use std::sync::Arc;

use common::{ok, user_key, Client};
use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use serde_json::{json, Value};

both_backends!(tasks_and_pull_requests);

async fn tasks_and_pull_requests(b: Arc<dyn Backend>) {
    let c = Client::new(b.clone()).await;
    let (_, a) = user_key(&b, Role::User, "a@x.io").await;
    let (_, other) = user_key(&b, Role::User, "b@x.io").await;
    let p = ok(
        &c,
        "POST",
        "/api/v1/projects",
        &a,
        Some(json!({"name": "p"})),
        201,
    )
    .await;
    let pid = p["id"].as_str().unwrap();
    let t1 = ok(
        &c,
        "POST",
        "/api/v1/tasks",
        &a,
        Some(json!({"title": "build the parser", "project_id": pid,
        "tags": ["rust"], "requirements": {"gpu": true}})),
        201,
    )
    .await;
    ok(
        &c,
        "POST",
        "/api/v1/tasks",
        &a,
        Some(json!({"title": "write docs", "tags": ["docs"]})),
        201,
    )
    .await;
    let id = t1["id"].as_str().unwrap();
    assert_eq!(
        ok(&c, "GET", &format!("/api/v1/tasks/{id}"), &a, None, 200).await["title"],
        "build the parser"
    );
    // A's private project hides its tasks from other users and from keys of no user
    for key in [&c.viewer, &other] {
        ok(&c, "GET", &format!("/api/v1/tasks/{id}"), key, None, 404).await;
    }
    let patched = ok(
        &c,
        "PATCH",
        &format!("/api/v1/tasks/{id}"),
        &a,
        Some(json!({"priority": 7, "status": "ready"})),
        200,
    )
    .await;
    assert_eq!(
        (patched["priority"].clone(), patched["status"].clone()),
        (json!(7), json!("ready"))
    );
    // nor change them
    ok(
        &c,
        "PATCH",
        &format!("/api/v1/tasks/{id}"),
        &other,
        Some(json!({"priority": 1})),
        404,
    )
    .await;
    let count = |v: &Value| v["items"].as_array().unwrap().len();
    assert_eq!(
        count(&ok(&c, "GET", "/api/v1/tasks?tag=rust", &a, None, 200).await),
        1
    );
    assert_eq!(
        count(&ok(&c, "GET", "/api/v1/tasks?status=ready", &a, None, 200).await),
        1
    );
    let req = "%7B%22gpu%22%3Atrue%7D";
    assert_eq!(
        count(
            &ok(
                &c,
                "GET",
                &format!("/api/v1/tasks?requirements={req}"),
                &a,
                None,
                200
            )
            .await
        ),
        1
    );
    let found = ok(&c, "GET", "/api/v1/tasks?q=parser", &a, None, 200).await;
    assert_eq!(found["items"][0]["id"], t1["id"]);
    let bad = ok(&c, "GET", "/api/v1/tasks?requirements=nope", &a, None, 422).await;
    assert_eq!(bad["field"], "requirements");
    ok(&c, "GET", "/api/v1/tasks?status=bogus", &a, None, 422).await;

    let new_pr = json!({"project_id": pid, "task_id": id, "pr_number": 12, "repository_url": "https://git.example/r",
        "branch_name": "feat", "title": "Parser"});
    let pr = ok(
        &c,
        "POST",
        "/api/v1/pull-requests",
        &a,
        Some(new_pr.clone()),
        201,
    )
    .await;
    ok(&c, "POST", "/api/v1/pull-requests", &a, Some(new_pr), 409).await;
    let prid = pr["id"].as_str().unwrap();
    ok(
        &c,
        "GET",
        &format!("/api/v1/pull-requests/{prid}"),
        &c.viewer,
        None,
        404,
    )
    .await;
    ok(
        &c,
        "GET",
        &format!("/api/v1/pull-requests/{prid}"),
        &c.admin,
        None,
        200,
    )
    .await;
    let moved = ok(
        &c,
        "POST",
        &format!("/api/v1/pull-requests/{prid}/status"),
        &a,
        Some(json!({"status": "open"})),
        200,
    )
    .await;
    assert_eq!(moved["status"], "open");
    ok(
        &c,
        "POST",
        &format!("/api/v1/pull-requests/{prid}/status"),
        &other,
        Some(json!({"status": "merged"})),
        404,
    )
    .await;
    ok(
        &c,
        "POST",
        &format!("/api/v1/pull-requests/{prid}/status"),
        &a,
        Some(json!({"status": "bogus"})),
        422,
    )
    .await;
    let v = ok(
        &c,
        "PUT",
        &format!("/api/v1/pull-requests/{prid}/validation"),
        &a,
        Some(json!({"validation_results": {"tests": "passed"}})),
        200,
    )
    .await;
    assert_eq!(v["validation_results"]["tests"], "passed");
    let l = ok(
        &c,
        "GET",
        &format!("/api/v1/pull-requests?project_id={pid}&status=open"),
        &a,
        None,
        200,
    )
    .await;
    assert_eq!(count(&l), 1);
}

//! Standalone tasks and pull requests over HTTP: create, read, change, filters,
//! search, status moves and validation, and who may do what with them. On SQLite
//! and PostgreSQL.

use std::sync::Arc;

use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use flowstore_testkit::{both_backends, requests, TestApp};
use serde_json::{json, Value};

both_backends!(tasks_and_pull_requests);

async fn tasks_and_pull_requests(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (_, a) = c.user_key(Role::User, "a@x.io").await;
    let (_, other) = c.user_key(Role::User, "b@x.io").await;
    let pid = c.project(&a, "p").await;
    let t1 = c.by(&a).create_task(json!({"title": "build the parser", "project_id": pid, "tags": ["rust"], "requirements": {"gpu": true}})).await.want(201);
    c.by(&a)
        .create_task(json!({"title": "write docs", "tags": ["docs"]}))
        .await
        .want(201);
    let id = t1["id"].as_str().unwrap();
    assert_eq!(
        c.by(&a).get_task(id).await.want(200)["title"],
        "build the parser"
    );
    // A's private project hides its tasks from other users and from keys of no user
    for key in [&c.viewer, &other] {
        c.by(key).get_task(id).await.want(404);
    }
    let patched = c
        .by(&a)
        .update_task(id, json!({"priority": 7, "status": "ready"}))
        .await
        .want(200);
    assert_eq!(
        (patched["priority"].clone(), patched["status"].clone()),
        (json!(7), json!("ready"))
    );
    // nor change them
    c.by(&other)
        .update_task(id, json!({"priority": 1}))
        .await
        .want(404);
    let count = |v: &Value| v["items"].as_array().unwrap().len();
    assert_eq!(
        count(&c.by(&a).get("/api/v1/tasks?tag=rust").await.want(200)),
        1
    );
    assert_eq!(
        count(&c.by(&a).get("/api/v1/tasks?status=ready").await.want(200)),
        1
    );
    let req = "%7B%22gpu%22%3Atrue%7D";
    assert_eq!(
        count(
            &c.by(&a)
                .get(&format!("/api/v1/tasks?requirements={req}"))
                .await
                .want(200)
        ),
        1
    );
    let found = c.by(&a).get("/api/v1/tasks?q=parser").await.want(200);
    assert_eq!(found["items"][0]["id"], t1["id"]);
    let bad = c
        .by(&a)
        .get("/api/v1/tasks?requirements=nope")
        .await
        .want(422);
    assert_eq!(bad["field"], "requirements");
    c.by(&a).get("/api/v1/tasks?status=bogus").await.want(422);

    let new_pr = json!({"project_id": pid, "task_id": id, "pr_number": 12, "repository_url": "https://git.example/r",
        "branch_name": "feat", "title": "Parser"});
    let pr = c.by(&a).create_pull_request(new_pr.clone()).await.want(201);
    c.by(&a).create_pull_request(new_pr).await.want(409);
    let prid = pr["id"].as_str().unwrap();
    requests!(c;
        GET "/api/v1/pull-requests/{prid}" by c.viewer => 404;
        GET "/api/v1/pull-requests/{prid}" by c.admin => 200;
    );
    let moved = c
        .by(&a)
        .set_pull_request_status(prid, json!({"status": "open"}))
        .await
        .want(200);
    assert_eq!(moved["status"], "open");
    requests!(c;
        POST "/api/v1/pull-requests/{prid}/status" with {"status": "merged"} by other => 404;
        POST "/api/v1/pull-requests/{prid}/status" with {"status": "bogus"} by a => 422;
    );
    let v = c
        .by(&a)
        .put(
            &format!("/api/v1/pull-requests/{prid}/validation"),
            json!({"validation_results": {"tests": "passed"}}),
        )
        .await
        .want(200);
    assert_eq!(v["validation_results"]["tests"], "passed");
    let l = c
        .by(&a)
        .get(&format!(
            "/api/v1/pull-requests?project_id={pid}&status=open"
        ))
        .await
        .want(200);
    assert_eq!(count(&l), 1);
}

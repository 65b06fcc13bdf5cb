//! A task's links (dependencies, children, delete) and a project's summary: success
//! and failure, and another user's tasks. On SQLite and PostgreSQL.

use std::sync::Arc;

use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use flowstore_testkit::fixtures::item_texts;
use flowstore_testkit::fixtures::merged;
use flowstore_testkit::{both_backends, requests, TestApp};
use serde_json::{json, Value};

both_backends!(
    task_links_and_project_summary,
    dependencies_change_after_creation
);

async fn task_links_and_project_summary(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (_, a) = c.user_key(Role::User, "a@x.io").await;
    let (_, bk) = c.user_key(Role::User, "b@x.io").await;
    let pid = c.project(&a, "p").await;
    let task =
        |title: &str, extra: Value| merged(json!({"title": title, "project_id": pid}), extra);
    let first = c
        .by(&a)
        .create_task(task("first", json!({})))
        .await
        .want_id(201);
    let parent = c
        .by(&a)
        .create_task(task("parent", json!({"depends_on": [first]})))
        .await
        .want_id(201);
    let mut kids = Vec::new();
    for i in 0..3 {
        let k = c
            .by(&a)
            .create_task(task(&format!("kid {i}"), json!({"parent_task_id": parent})))
            .await
            .want(201);
        kids.push(k["id"].as_str().unwrap().to_string());
    }

    // dependencies
    let deps = c.by(&a).task_dependencies(&parent).await.want(200);
    assert_eq!(deps, json!([first]));
    let none = c.by(&a).task_dependencies(&first).await.want(200);
    assert_eq!(none, json!([]));
    c.by(&bk).task_dependencies(&parent).await.want(404);
    let missing = "0190f2a4-0000-7000-8000-000000000000";
    c.by(&a).task_dependencies(missing).await.want(404);

    // children, by page, newest first
    let page = c
        .by(&a)
        .get(&format!("/api/v1/tasks/{parent}/children?limit=2"))
        .await
        .want(200);
    let got = item_texts(&page, "id");
    assert_eq!(got, [kids[2].as_str(), kids[1].as_str()]);
    let cur = page["next_cursor"].as_str().unwrap();
    let last = c
        .by(&a)
        .get(&format!(
            "/api/v1/tasks/{parent}/children?limit=2&cursor={cur}"
        ))
        .await
        .want(200);
    assert_eq!(last["items"][0]["id"], json!(kids[0]));
    assert!(last["next_cursor"].is_null());
    requests!(c;
        GET "/api/v1/tasks/{parent}/children" by bk => 404;
        GET "/api/v1/tasks/{parent}/children?limit=0" by a => 422;
        GET "/api/v1/tasks/{parent}/children?bogus=1" by a => 422;
    );

    // project summary
    c.by(&a)
        .update_task(&first, json!({"status": "completed"}))
        .await
        .want(200);
    let s = c.by(&a).project_summary(&pid).await.want(200);
    assert_eq!(
        (
            s["total"].clone(),
            s["completed"].clone(),
            s["pending"].clone()
        ),
        (json!(5), json!(1), json!(4))
    );
    assert_eq!(s["percent_complete"], 20.0);
    requests!(c;
        GET "/api/v1/projects/{pid}/summary" by bk => 404;
        GET "/api/v1/projects/{missing}/summary" by c.admin => 404;
    );

    // delete: another user's is hidden; a step of a run is kept (409); the owner
    // deletes a standalone task with its dependencies
    requests!(c;
        DELETE "/api/v1/tasks/{first}" by bk => 404;
        DELETE "/api/v1/tasks/{first}" by c.viewer => 403;
        DELETE "/api/v1/tasks/{first}" by a => 204;
        GET "/api/v1/tasks/{first}" by a => 404;
    );
    let deps = c.by(&a).task_dependencies(&parent).await.want(200);
    assert_eq!(deps, json!([]));
    requests!(c;
        DELETE "/api/v1/tasks/{first}" by a => 404;
        POST "/api/v1/handlers" with {"handler_type": "shell", "handler_name": "shell"} by c.admin => 201;
    );
    let wf = c.shell_workflow(&a, "w").await;
    let run = c.started_run(&a, &wf, json!({})).await;
    let tasks = c.by(&a).run_tasks(&run).await.want(200);
    let step = tasks[0]["id"].as_str().unwrap();
    let e = c.by(&a).delete_task(step).await.want(409);
    assert_eq!(e["field"], "run_id");
    c.by(&a).get_task(step).await.want(200);
}

/// `POST /tasks/{id}/dependencies` and `DELETE /tasks/{id}/dependencies/{dep}`: the
/// answers, the cycle and self refusals naming `depends_on`, a ready task sent back
/// to pending, a run's step kept as its definition made it, another user's tasks
/// hidden, and the audit entries.
async fn dependencies_change_after_creation(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (_, a) = c.user_key(Role::User, "a@x.io").await;
    let (_, bk) = c.user_key(Role::User, "b@x.io").await;
    let new = |key: &str, title: &str| {
        let key = key.to_string();
        let title = title.to_string();
        let c = &c;
        async move {
            c.by(&key)
                .create_task(json!({"title": title}))
                .await
                .want_id(201)
        }
    };
    let build = new(&a, "build").await;
    let test = new(&a, "test").await;
    let deploy = new(&a, "deploy").await;
    let b_task = new(&bk, "b's").await;

    // deploy -> test -> build; the answer is the task's dependency list
    let deps = c
        .by(&a)
        .add_task_dependency(&test, json!({"depends_on": build}))
        .await
        .want(201);
    assert_eq!(deps, json!([build]));
    c.by(&a)
        .update_task(&deploy, json!({"status": "ready"}))
        .await
        .want(200);
    let deps = c
        .by(&a)
        .add_task_dependency(&deploy, json!({"depends_on": test}))
        .await
        .want(201);
    assert_eq!(deps, json!([test]));
    let t = c.by(&a).get_task(&deploy).await.want(200);
    assert_eq!(t["status"], "pending", "a ready task waits again");
    let entry = c.audit_entry("task.dependency_add", &deploy).await;
    assert_eq!(entry["before"]["status"], "ready", "{entry}");
    assert_eq!(entry["after"]["status"], "pending", "{entry}");
    assert_eq!(entry["after"]["depends_on"], json!([test]), "{entry}");
    // again: nothing changes, nothing is audited twice
    c.by(&a)
        .add_task_dependency(&deploy, json!({"depends_on": test}))
        .await
        .want(201);
    c.audit_entry("task.dependency_add", &deploy).await;

    // build -> deploy would close build -> deploy -> test -> build
    let e = c
        .by(&a)
        .add_task_dependency(&build, json!({"depends_on": deploy}))
        .await
        .want(422);
    assert_eq!(e["field"], "depends_on");
    let detail = e["detail"].as_str().unwrap();
    for t in [&build, &test, &deploy] {
        assert!(detail.contains(t.as_str()), "the cycle names {t}: {detail}");
    }
    let e = c
        .by(&a)
        .add_task_dependency(&build, json!({"depends_on": build}))
        .await
        .want(422);
    assert_eq!(e["field"], "depends_on");
    let missing = "0190f2a4-0000-7000-8000-000000000000";
    // unknown or hidden dependencies look alike; a hidden task is missing
    for dep in [missing, b_task.as_str()] {
        let e = c
            .by(&a)
            .add_task_dependency(&build, json!({"depends_on": dep}))
            .await
            .want(422);
        assert_eq!(e["field"], "depends_on");
    }
    requests!(c;
        POST "/api/v1/tasks/{build}/dependencies" with {"depends_on": "nope"} by a => 422;
        POST "/api/v1/tasks/{build}/dependencies" with {"depends_on": test, "x": 1} by a => 422;
        POST "/api/v1/tasks/{build}/dependencies" with {} by a => 422;
        POST "/api/v1/tasks/{missing}/dependencies" with {"depends_on": test} by a => 404;
        POST "/api/v1/tasks/{b_task}/dependencies" with {"depends_on": test} by a => 404;
        POST "/api/v1/tasks/{test}/dependencies" with {"depends_on": b_task} by bk => 404;
        POST "/api/v1/tasks/{build}/dependencies" with {"depends_on": test} by c.viewer => 403;
        DELETE "/api/v1/tasks/{deploy}/dependencies/{test}" by bk => 404;
        DELETE "/api/v1/tasks/{deploy}/dependencies/{test}" by c.viewer => 403;
        DELETE "/api/v1/tasks/{deploy}/dependencies/{build}" by a => 404;
        DELETE "/api/v1/tasks/{deploy}/dependencies/{b_task}" by a => 404;
        DELETE "/api/v1/tasks/{deploy}/dependencies/{missing}" by a => 404;
        DELETE "/api/v1/tasks/{deploy}/dependencies/nope" by a => 404;
    );
    c.by(&a)
        .remove_task_dependency(&deploy, &test)
        .await
        .want(204);
    let deps = c.by(&a).task_dependencies(&deploy).await.want(200);
    assert_eq!(deps, json!([]));
    let t = c.by(&a).get_task(&deploy).await.want(200);
    assert_eq!(t["status"], "pending", "removing changes no status");
    let entry = c.audit_entry("task.dependency_remove", &deploy).await;
    assert_eq!(entry["before"]["depends_on"], json!([test]), "{entry}");
    assert_eq!(entry["after"]["depends_on"], json!([]), "{entry}");
    // now build -> deploy closes nothing
    c.by(&a)
        .add_task_dependency(&build, json!({"depends_on": deploy}))
        .await
        .want(201);

    // a finished task keeps its record
    c.by(&a)
        .update_task(&test, json!({"status": "completed"}))
        .await
        .want(200);
    let e = c
        .by(&a)
        .add_task_dependency(&test, json!({"depends_on": deploy}))
        .await
        .want(409);
    assert_eq!(e["field"], "status");
    let e = c
        .by(&a)
        .remove_task_dependency(&test, &build)
        .await
        .want(409);
    assert_eq!(e["field"], "status");

    // a step of a run keeps the dependencies of its run's definition
    requests!(c;
        POST "/api/v1/handlers" with {"handler_type": "shell", "handler_name": "shell"} by c.admin => 201;
    );
    let wf = c.shell_workflow(&a, "w").await;
    let run = c.started_run(&a, &wf, json!({})).await;
    let tasks = c.by(&a).run_tasks(&run).await.want(200);
    let step = tasks[0]["id"].as_str().unwrap();
    let e = c
        .by(&a)
        .add_task_dependency(step, json!({"depends_on": build}))
        .await
        .want(409);
    assert_eq!(e["field"], "run_id");
    let t = c.by(&a).get_task(step).await.want(200);
    assert_eq!(t["status"], "ready", "nothing was written");
}

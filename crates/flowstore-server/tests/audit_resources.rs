//! The audit log for projects, pull requests, standalone tasks, handlers,
//! components, credentials and webhooks: each change made through the API leaves one entry naming who made it,
//! with the entity before and after, written in the change's own transaction. On
//! SQLite and PostgreSQL.

use std::sync::Arc;

use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use flowstore_testkit::fixtures::changed;
use flowstore_testkit::{both_backends, TestApp};
use serde_json::{json, Value};

both_backends!(
    projects_pull_requests_and_tasks_are_audited,
    handlers_and_components_are_audited,
    credentials_and_webhooks_are_audited_without_secrets,
);

fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_string()
}

async fn projects_pull_requests_and_tasks_are_audited(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (uid, a) = c.user_key(Role::User, "a@x.io").await;
    let (_, other) = c.user_key(Role::User, "b@x.io").await;

    let pid = c.project(&a, "shop").await;
    let e = c.audit_entry("project.create", &pid).await;
    assert_eq!(
        (e["actor_type"].as_str(), e["actor_id"].as_str()),
        (Some("user"), Some(uid.as_str()))
    );
    assert_eq!(
        (e["before"].clone(), e["after"]["name"].clone()),
        (Value::Null, json!("shop"))
    );
    let path = format!("/api/v1/projects/{pid}");
    let patch = Some(json!({"description": "the shop"}));
    c.by(&a).send("PATCH", &path, patch).await.want(200);
    let e = c.audit_entry("project.update", &pid).await;
    assert_eq!(changed(&e, "description"), (Value::Null, json!("the shop")));

    let pr = c.by(&a).create_pull_request(json!({"project_id": pid, "repository_url": "https://git.example/shop", "branch_name": "fix", "title": "Fix checkout"})).await.want(201);
    let prid = id(&pr);
    assert_eq!(
        c.audit_entry("pull_request.create", &prid).await["after"]["title"],
        "Fix checkout"
    );
    let status = Some(json!({"status": "open"}));
    c.by(&a)
        .send(
            "POST",
            &format!("/api/v1/pull-requests/{prid}/status"),
            status,
        )
        .await
        .want(200);
    let e = c.audit_entry("pull_request.status", &prid).await;
    assert_eq!(e["after"]["status"], "open");
    assert_ne!(e["before"]["status"], e["after"]["status"]);
    let results = json!({"validation_results": {"tests": "passed"}});
    c.by(&a)
        .put(&format!("/api/v1/pull-requests/{prid}/validation"), results)
        .await
        .want(200);
    let e = c.audit_entry("pull_request.validation", &prid).await;
    assert_eq!(e["after"]["validation_results"], json!({"tests": "passed"}));

    let t = c
        .by(&a)
        .create_task(json!({"title": "write tests", "project_id": pid}))
        .await
        .want(201);
    let tid = id(&t);
    assert_eq!(
        c.audit_entry("task.create", &tid).await["after"]["title"],
        "write tests"
    );
    let tpath = format!("/api/v1/tasks/{tid}");
    c.by(&a)
        .patch(&tpath, json!({"title": "write more tests"}))
        .await
        .want(200);
    let e = c.audit_entry("task.update", &tid).await;
    assert_eq!(
        changed(&e, "title"),
        (json!("write tests"), json!("write more tests"))
    );

    // Someone who may not change them leaves no entry behind.
    let r = c.by(&other).delete(&tpath).await;
    assert_eq!(r.status, 404, "{}", r.body);
    c.by(&a).delete(&tpath).await.want(204);
    let e = c.audit_entry("task.delete", &tid).await;
    assert_eq!(
        (e["before"]["id"].as_str(), e["after"].clone()),
        (Some(tid.as_str()), Value::Null)
    );
    c.by(&a).delete(&path).await.want(204);
    assert_eq!(
        c.audit_entry("project.delete", &pid).await["before"]["name"],
        "shop"
    );
    let verify = c.admin().verify_audit().await.want(200);
    assert!(verify["first_broken"].is_null(), "{verify}");
    // Nine changes were made above; every one of them is in the chain.
    assert_eq!(verify["checked"].as_u64(), Some(9), "{verify}");
}

async fn handlers_and_components_are_audited(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let body = json!({"handler_type": "shell", "handler_name": "Shell"});
    c.admin().create_handler(body).await.want(201);
    let e = c.audit_entry("handler.register", "shell").await;
    assert_eq!(e["after"]["handler_name"], "Shell");
    let patch = json!({"handler_name": "Shell runner"});
    c.admin()
        .patch("/api/v1/handlers/shell", patch)
        .await
        .want(200);
    let e = c.audit_entry("handler.update", "shell").await;
    assert_eq!(
        changed(&e, "handler_name"),
        (json!("Shell"), json!("Shell runner"))
    );
    c.admin()
        .post_empty("/api/v1/handlers/shell/deactivate")
        .await
        .want(200);
    let e = c.audit_entry("handler.deactivate", "shell").await;
    assert_eq!(changed(&e, "is_active"), (json!(true), json!(false)));

    let body = json!({"name": "scheduler", "type": "service"});
    let comp = c.admin().create_component(body).await.want(201);
    let cid = id(&comp);
    assert_eq!(
        c.audit_entry("component.register", &cid).await["after"]["name"],
        "scheduler"
    );
    let patch = Some(json!({"version": "2.0.0"}));
    c.admin()
        .send("PATCH", "/api/v1/components/scheduler", patch)
        .await
        .want(200);
    let e = c.audit_entry("component.update", &cid).await;
    assert_eq!(changed(&e, "version"), (Value::Null, json!("2.0.0")));
}

async fn credentials_and_webhooks_are_audited_without_secrets(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (uid, a) = c.user_key(Role::User, "a@x.io").await;
    let body = json!({"name": "registry", "type": "basic_auth",
        "data": {"user": "ci", "password": "hunter2-audit"}});
    let cred = c.by(&a).create_credential(body).await.want(201);
    let cid = id(&cred);
    let e = c.audit_entry("credential.create", &cid).await;
    assert_eq!(e["actor_id"].as_str(), Some(uid.as_str()));
    assert_eq!(e["after"]["name"], "registry");
    let path = format!("/api/v1/credentials/{cid}");
    let rotate = json!({"data": {"user": "ci", "password": "hunter3-audit"}});
    c.by(&a).patch(&path, rotate).await.want(200);
    let e = c.audit_entry("credential.update", &cid).await;
    assert!(e["before"]["rotated_at"].is_null() && !e["after"]["rotated_at"].is_null());
    let revealed = c
        .by(&a)
        .post_empty(&format!("{path}/reveal"))
        .await
        .want(200);
    assert_eq!(revealed["data"]["password"], "hunter3-audit");
    let e = c.audit_entry("credential.reveal", &cid).await;
    assert_eq!(
        (e["before"].clone(), e["after"].clone()),
        (Value::Null, Value::Null)
    );
    c.by(&a).delete(&path).await.want(204);
    c.audit_entry("credential.delete", &cid).await;

    let body = json!({"name": "ci", "url": "https://hooks.example.com/ci", "events": ["run.*"]});
    let created = c.by(&a).create_webhook(body).await.want(201);
    let secret = created["secret"].as_str().unwrap().to_string();
    let wid = id(&created["webhook"]);
    assert_eq!(
        c.audit_entry("webhook.create", &wid).await["after"]["url"],
        "https://hooks.example.com/ci"
    );
    let wpath = format!("/api/v1/webhooks/{wid}");
    c.by(&a)
        .patch(&wpath, json!({"active": false}))
        .await
        .want(200);
    let e = c.audit_entry("webhook.update", &wid).await;
    assert_eq!(changed(&e, "active"), (json!(true), json!(false)));
    c.by(&a).delete(&wpath).await.want(204);
    c.audit_entry("webhook.delete", &wid).await;

    // No secret, in clear, anywhere in the log.
    let log = c
        .admin()
        .get("/api/v1/audit?limit=100")
        .await
        .want(200)
        .to_string();
    for secret in ["hunter2-audit", "hunter3-audit", secret.as_str()] {
        assert!(!log.contains(secret), "the audit log holds a secret: {log}");
    }
}

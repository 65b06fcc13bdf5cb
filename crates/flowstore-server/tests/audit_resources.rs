//! The audit log for projects, pull requests, standalone tasks, handlers,
//! components, credentials and webhooks: each change made through the API leaves one entry naming who made it,
//! with the entity before and after, written in the change's own transaction. On
//! SQLite and PostgreSQL.

#[macro_use]
mod common;

use std::sync::Arc;

use common::{ok, user_key, Client};
use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use serde_json::{json, Value};

both_backends!(
    projects_pull_requests_and_tasks_are_audited,
    handlers_and_components_are_audited,
    credentials_and_webhooks_are_audited_without_secrets,
);

/// The one entry of `action` about `entity_id`.
async fn entry(c: &Client, action: &str, entity_id: &str) -> Value {
    let page = ok(
        c,
        "GET",
        &format!("/api/v1/audit?action={action}&entity_id={entity_id}"),
        &c.admin,
        None,
        200,
    )
    .await;
    let found = page["items"].as_array().unwrap();
    assert_eq!(found.len(), 1, "one {action} of {entity_id}: {found:?}");
    found[0].clone()
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_string()
}

async fn projects_pull_requests_and_tasks_are_audited(b: Arc<dyn Backend>) {
    let c = Client::new(b.clone()).await;
    let (uid, a) = user_key(&b, Role::User, "a@x.io").await;
    let (_, other) = user_key(&b, Role::User, "b@x.io").await;

    let p = ok(
        &c,
        "POST",
        "/api/v1/projects",
        &a,
        Some(json!({"name": "shop"})),
        201,
    )
    .await;
    let pid = id(&p);
    let e = entry(&c, "project.create", &pid).await;
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
    ok(&c, "PATCH", &path, &a, patch, 200).await;
    let e = entry(&c, "project.update", &pid).await;
    assert_eq!(
        (
            e["before"]["description"].clone(),
            e["after"]["description"].clone()
        ),
        (Value::Null, json!("the shop"))
    );

    let pr = ok(
        &c,
        "POST",
        "/api/v1/pull-requests",
        &a,
        Some(
            json!({"project_id": pid, "repository_url": "https://git.example/shop",
            "branch_name": "fix", "title": "Fix checkout"}),
        ),
        201,
    )
    .await;
    let prid = id(&pr);
    assert_eq!(
        entry(&c, "pull_request.create", &prid).await["after"]["title"],
        "Fix checkout"
    );
    let status = Some(json!({"status": "open"}));
    ok(
        &c,
        "POST",
        &format!("/api/v1/pull-requests/{prid}/status"),
        &a,
        status,
        200,
    )
    .await;
    let e = entry(&c, "pull_request.status", &prid).await;
    assert_eq!(e["after"]["status"], "open");
    assert_ne!(e["before"]["status"], e["after"]["status"]);
    let results = Some(json!({"validation_results": {"tests": "passed"}}));
    ok(
        &c,
        "PUT",
        &format!("/api/v1/pull-requests/{prid}/validation"),
        &a,
        results,
        200,
    )
    .await;
    let e = entry(&c, "pull_request.validation", &prid).await;
    assert_eq!(e["after"]["validation_results"], json!({"tests": "passed"}));

    let t = ok(
        &c,
        "POST",
        "/api/v1/tasks",
        &a,
        Some(json!({"title": "write tests", "project_id": pid})),
        201,
    )
    .await;
    let tid = id(&t);
    assert_eq!(
        entry(&c, "task.create", &tid).await["after"]["title"],
        "write tests"
    );
    let tpath = format!("/api/v1/tasks/{tid}");
    ok(
        &c,
        "PATCH",
        &tpath,
        &a,
        Some(json!({"title": "write more tests"})),
        200,
    )
    .await;
    let e = entry(&c, "task.update", &tid).await;
    assert_eq!(
        (e["before"]["title"].clone(), e["after"]["title"].clone()),
        (json!("write tests"), json!("write more tests"))
    );

    // Someone who may not change them leaves no entry behind.
    let r = c.call("DELETE", &tpath, &other, None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    ok(&c, "DELETE", &tpath, &a, None, 204).await;
    let e = entry(&c, "task.delete", &tid).await;
    assert_eq!(
        (e["before"]["id"].as_str(), e["after"].clone()),
        (Some(tid.as_str()), Value::Null)
    );
    ok(&c, "DELETE", &path, &a, None, 204).await;
    assert_eq!(
        entry(&c, "project.delete", &pid).await["before"]["name"],
        "shop"
    );
    let verify = ok(&c, "GET", "/api/v1/audit/verify", &c.admin, None, 200).await;
    assert!(verify["first_broken"].is_null(), "{verify}");
    // Nine changes were made above; every one of them is in the chain.
    assert_eq!(verify["checked"].as_u64(), Some(9), "{verify}");
}

async fn handlers_and_components_are_audited(b: Arc<dyn Backend>) {
    let c = Client::new(b.clone()).await;
    let body = Some(json!({"handler_type": "shell", "handler_name": "Shell"}));
    ok(&c, "POST", "/api/v1/handlers", &c.admin, body, 201).await;
    let e = entry(&c, "handler.register", "shell").await;
    assert_eq!(e["after"]["handler_name"], "Shell");
    let patch = Some(json!({"handler_name": "Shell runner"}));
    ok(&c, "PATCH", "/api/v1/handlers/shell", &c.admin, patch, 200).await;
    let e = entry(&c, "handler.update", "shell").await;
    assert_eq!(
        (
            e["before"]["handler_name"].clone(),
            e["after"]["handler_name"].clone()
        ),
        (json!("Shell"), json!("Shell runner"))
    );
    ok(
        &c,
        "POST",
        "/api/v1/handlers/shell/deactivate",
        &c.admin,
        None,
        200,
    )
    .await;
    let e = entry(&c, "handler.deactivate", "shell").await;
    assert_eq!(
        (
            e["before"]["is_active"].clone(),
            e["after"]["is_active"].clone()
        ),
        (json!(true), json!(false))
    );

    let body = Some(json!({"name": "scheduler", "type": "service"}));
    let comp = ok(&c, "POST", "/api/v1/components", &c.admin, body, 201).await;
    let cid = id(&comp);
    assert_eq!(
        entry(&c, "component.register", &cid).await["after"]["name"],
        "scheduler"
    );
    let patch = Some(json!({"version": "2.0.0"}));
    ok(
        &c,
        "PATCH",
        "/api/v1/components/scheduler",
        &c.admin,
        patch,
        200,
    )
    .await;
    let e = entry(&c, "component.update", &cid).await;
    assert_eq!(
        (
            e["before"]["version"].clone(),
            e["after"]["version"].clone()
        ),
        (Value::Null, json!("2.0.0"))
    );
}

async fn credentials_and_webhooks_are_audited_without_secrets(b: Arc<dyn Backend>) {
    let c = Client::new(b.clone()).await;
    let (uid, a) = user_key(&b, Role::User, "a@x.io").await;
    let body = json!({"name": "registry", "type": "basic_auth",
        "data": {"user": "ci", "password": "hunter2-audit"}});
    let cred = ok(&c, "POST", "/api/v1/credentials", &a, Some(body), 201).await;
    let cid = id(&cred);
    let e = entry(&c, "credential.create", &cid).await;
    assert_eq!(e["actor_id"].as_str(), Some(uid.as_str()));
    assert_eq!(e["after"]["name"], "registry");
    let path = format!("/api/v1/credentials/{cid}");
    let rotate = Some(json!({"data": {"user": "ci", "password": "hunter3-audit"}}));
    ok(&c, "PATCH", &path, &a, rotate, 200).await;
    let e = entry(&c, "credential.update", &cid).await;
    assert!(e["before"]["rotated_at"].is_null() && !e["after"]["rotated_at"].is_null());
    let revealed = ok(&c, "POST", &format!("{path}/reveal"), &a, None, 200).await;
    assert_eq!(revealed["data"]["password"], "hunter3-audit");
    let e = entry(&c, "credential.reveal", &cid).await;
    assert_eq!(
        (e["before"].clone(), e["after"].clone()),
        (Value::Null, Value::Null)
    );
    ok(&c, "DELETE", &path, &a, None, 204).await;
    entry(&c, "credential.delete", &cid).await;

    let body = json!({"name": "ci", "url": "https://hooks.example.com/ci", "events": ["run.*"]});
    let created = ok(&c, "POST", "/api/v1/webhooks", &a, Some(body), 201).await;
    let secret = created["secret"].as_str().unwrap().to_string();
    let wid = id(&created["webhook"]);
    assert_eq!(
        entry(&c, "webhook.create", &wid).await["after"]["url"],
        "https://hooks.example.com/ci"
    );
    let wpath = format!("/api/v1/webhooks/{wid}");
    ok(&c, "PATCH", &wpath, &a, Some(json!({"active": false})), 200).await;
    let e = entry(&c, "webhook.update", &wid).await;
    assert_eq!(
        (e["before"]["active"].clone(), e["after"]["active"].clone()),
        (json!(true), json!(false))
    );
    ok(&c, "DELETE", &wpath, &a, None, 204).await;
    entry(&c, "webhook.delete", &wid).await;

    // No secret, in clear, anywhere in the log.
    let log = ok(&c, "GET", "/api/v1/audit?limit=100", &c.admin, None, 200)
        .await
        .to_string();
    for secret in ["hunter2-audit", "hunter3-audit", secret.as_str()] {
        assert!(!log.contains(secret), "the audit log holds a secret: {log}");
    }
}

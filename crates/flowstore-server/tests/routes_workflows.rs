//! A workflow's life (archive, delete, duplicate, one version, summary): success and
//! failure, and another user's workflows. On SQLite and PostgreSQL.

#[macro_use]
mod common;

use std::sync::Arc;

use common::{ok, user_key, Client};
use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use serde_json::{json, Value};

both_backends!(workflow_life);

fn steps(handler: &str) -> Value {
    json!({"steps": [{"key": "a", "handler": handler}]})
}

async fn workflow_life(b: Arc<dyn Backend>) {
    let c = Client::new(b.clone()).await;
    let (a_id, a) = user_key(&b, Role::User, "a@x.io").await;
    let (b_id, bk) = user_key(&b, Role::User, "b@x.io").await;
    let (_, reader) = user_key(&b, Role::User, "r@x.io").await;
    let reader_id = c.call("GET", "/api/v1/users/me", &reader, None).await.body["id"].clone();
    for h in ["shell", "python"] {
        let body = json!({"handler_type": h, "handler_name": h});
        ok(&c, "POST", "/api/v1/handlers", &c.admin, Some(body), 201).await;
    }
    let body = json!({"name": "build", "status": "active", "definition": steps("shell"),
        "configuration": {"retries": 1}});
    let wf = ok(&c, "POST", "/api/v1/workflows", &a, Some(body), 201).await;
    let id = wf["id"].as_str().unwrap().to_string();
    let share = json!({"user_id": reader_id, "permission": "read"});
    ok(
        &c,
        "POST",
        &format!("/api/v1/workflows/{id}/shares"),
        &a,
        Some(share),
        201,
    )
    .await;

    // one version: version 1, then 2 after a new definition; others are 404
    let v1 = ok(
        &c,
        "GET",
        &format!("/api/v1/workflows/{id}/versions/1"),
        &a,
        None,
        200,
    )
    .await;
    assert_eq!(v1["definition"], steps("shell"));
    let patch = json!({"definition": steps("python"), "change_note": "python now"});
    ok(
        &c,
        "PATCH",
        &format!("/api/v1/workflows/{id}"),
        &a,
        Some(patch),
        200,
    )
    .await;
    let v2 = ok(
        &c,
        "GET",
        &format!("/api/v1/workflows/{id}/versions/2"),
        &reader,
        None,
        200,
    )
    .await;
    assert_eq!(
        (v2["definition"].clone(), v2["change_note"].clone()),
        (steps("python"), json!("python now"))
    );
    ok(
        &c,
        "GET",
        &format!("/api/v1/workflows/{id}/versions/3"),
        &a,
        None,
        404,
    )
    .await;
    ok(
        &c,
        "GET",
        &format!("/api/v1/workflows/{id}/versions/one"),
        &a,
        None,
        404,
    )
    .await;
    ok(
        &c,
        "GET",
        &format!("/api/v1/workflows/{id}/versions/1"),
        &bk,
        None,
        404,
    )
    .await;

    // duplicate: anyone who may read it; the copy is the caller's private draft
    let dup = |name: Value| Some(json!({"name": name}));
    let copy = ok(
        &c,
        "POST",
        &format!("/api/v1/workflows/{id}/duplicate"),
        &reader,
        dup(json!("mine")),
        201,
    )
    .await;
    assert_eq!(copy["name"], "mine");
    assert_eq!(copy["owner_id"], reader_id);
    assert_eq!(copy["parent_workflow_id"], json!(id));
    assert_eq!(
        (copy["status"].as_str(), copy["visibility"].as_str()),
        (Some("draft"), Some("private"))
    );
    assert_eq!(
        (copy["version"].clone(), copy["definition"].clone()),
        (json!(1), steps("python"))
    );
    assert_eq!(copy["configuration"], json!({"retries": 1}));
    let copy_id = copy["id"].as_str().unwrap();
    ok(
        &c,
        "GET",
        &format!("/api/v1/workflows/{copy_id}"),
        &a,
        None,
        404,
    )
    .await;
    ok(
        &c,
        "POST",
        &format!("/api/v1/workflows/{id}/duplicate"),
        &bk,
        dup(json!("x")),
        404,
    )
    .await;
    let e = ok(
        &c,
        "POST",
        &format!("/api/v1/workflows/{id}/duplicate"),
        &a,
        dup(json!(" ")),
        422,
    )
    .await;
    assert_eq!(e["field"], "name");
    let extra = Some(json!({"name": "x", "owner_id": b_id}));
    ok(
        &c,
        "POST",
        &format!("/api/v1/workflows/{id}/duplicate"),
        &a,
        extra,
        422,
    )
    .await;
    ok(
        &c,
        "POST",
        &format!("/api/v1/workflows/{id}/duplicate"),
        &c.viewer,
        dup(json!("x")),
        403,
    )
    .await;

    // summary: runs by status, statistics from the counters, tasks by status
    for _ in 0..2 {
        ok(
            &c,
            "POST",
            &format!("/api/v1/workflows/{id}/runs"),
            &a,
            Some(json!({})),
            201,
        )
        .await;
    }
    let s = ok(
        &c,
        "GET",
        &format!("/api/v1/workflows/{id}/summary"),
        &reader,
        None,
        200,
    )
    .await;
    assert_eq!(
        (s["runs"]["total"].clone(), s["runs"]["running"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(s["runs"]["completed"], 0);
    assert_eq!(s["statistics"]["total_executions"], 2);
    assert_eq!(
        (s["tasks"]["total"].clone(), s["tasks"]["ready"].clone()),
        (json!(2), json!(2))
    );
    ok(
        &c,
        "GET",
        &format!("/api/v1/workflows/{id}/summary"),
        &bk,
        None,
        404,
    )
    .await;
    let s = ok(
        &c,
        "GET",
        &format!("/api/v1/workflows/{copy_id}/summary"),
        &reader,
        None,
        200,
    )
    .await;
    assert_eq!(
        (s["runs"]["total"].clone(), s["tasks"]["total"].clone()),
        (json!(0), json!(0))
    );

    // delete: refused while it has runs (archive instead); hidden from others; a
    // reader may not; the owner may delete one that never ran
    let e = ok(
        &c,
        "DELETE",
        &format!("/api/v1/workflows/{id}"),
        &a,
        None,
        409,
    )
    .await;
    assert_eq!(e["field"], "workflow");
    ok(
        &c,
        "POST",
        &format!("/api/v1/workflows/{id}/archive"),
        &reader,
        None,
        403,
    )
    .await;
    ok(
        &c,
        "POST",
        &format!("/api/v1/workflows/{id}/archive"),
        &bk,
        None,
        404,
    )
    .await;
    let archived = ok(
        &c,
        "POST",
        &format!("/api/v1/workflows/{id}/archive"),
        &a,
        None,
        200,
    )
    .await;
    assert_eq!(archived["status"], "archived");
    assert!(archived["archived_at"].is_string());
    let again = ok(
        &c,
        "POST",
        &format!("/api/v1/workflows/{id}/archive"),
        &a,
        None,
        200,
    )
    .await;
    assert_eq!(
        again["archived_at"], archived["archived_at"],
        "archiving twice keeps the first time"
    );
    ok(&c, "GET", &format!("/api/v1/workflows/{id}"), &a, None, 200).await;
    ok(
        &c,
        "DELETE",
        &format!("/api/v1/workflows/{copy_id}"),
        &a,
        None,
        404,
    )
    .await;
    ok(
        &c,
        "DELETE",
        &format!("/api/v1/workflows/{copy_id}"),
        &c.viewer,
        None,
        403,
    )
    .await;
    ok(
        &c,
        "DELETE",
        &format!("/api/v1/workflows/{copy_id}"),
        &reader,
        None,
        204,
    )
    .await;
    ok(
        &c,
        "GET",
        &format!("/api/v1/workflows/{copy_id}"),
        &reader,
        None,
        404,
    )
    .await;
    ok(
        &c,
        "GET",
        &format!("/api/v1/workflows/{copy_id}/versions/1"),
        &c.admin,
        None,
        404,
    )
    .await;
    ok(
        &c,
        "DELETE",
        &format!("/api/v1/workflows/{copy_id}"),
        &c.admin,
        None,
        404,
    )
    .await;
    // a seed 000 execution that refers to a workflow by `workflow_ref` only counts too
    let other = json!({"name": "other"});
    let other = ok(&c, "POST", "/api/v1/workflows", &a, Some(other), 201).await;
    let other = other["id"].as_str().unwrap();
    let exec = json!({"execution_id": "e-1", "workflow_id": "legacy-name",
        "workflow_name": "legacy", "workflow_ref": other});
    ok(&c, "POST", "/api/v1/executions", &a, Some(exec), 201).await;
    let path = format!("/api/v1/workflows/{other}");
    ok(&c, "DELETE", &path, &a, None, 409).await;
    let _ = a_id;
}

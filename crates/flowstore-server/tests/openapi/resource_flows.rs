//! The flows of `answers_match_the_document` for tasks, pull requests, components,
//! logs, configurations, people, notifications and API keys.

use std::sync::Arc;

use flowstore_core::model::identity_access::NewNotification;
use flowstore_core::Backend;
use serde_json::json;

use super::{id, Checked, Keys};

/// Everything else, on the project `pid`; deletes it last.
pub async fn tasks_to_keys(t: &Checked, b: &Arc<dyn Backend>, k: &Keys, pid: &str) {
    let (a, admin, viewer) = (
        Some(k.a.as_str()),
        Some(k.admin.as_str()),
        Some(k.viewer.as_str()),
    );
    let a_id = k.a_id.clone();
    let pid = pid.to_string();

    // tasks and pull requests
    let task = t.call("POST", "/api/v1/tasks", &[], a, Some(json!({"title": "parser", "project_id": pid, "tags": ["rust"], "requirements": {"lang": "rust"}})), 201).await;
    let task_id = id(&task);
    t.call("GET", "/api/v1/tasks/{id}", &[&task_id], a, None, 200)
        .await;
    t.call(
        "PATCH",
        "/api/v1/tasks/{id}",
        &[&task_id],
        a,
        Some(json!({"priority": 3, "status": "ready"})),
        200,
    )
    .await;
    t.call("GET", "/api/v1/tasks?tag=rust", &[], a, None, 200)
        .await;
    let pr = t.call("POST", "/api/v1/pull-requests", &[], a, Some(json!({"project_id": pid, "task_id": task_id, "pr_number": 7, "repository_url": "https://git.example/site", "branch_name": "feat", "title": "Parser"})), 201).await;
    let prid = id(&pr);
    t.call("GET", "/api/v1/pull-requests/{id}", &[&prid], a, None, 200)
        .await;
    t.call(
        "POST",
        "/api/v1/pull-requests/{id}/status",
        &[&prid],
        a,
        Some(json!({"status": "open"})),
        200,
    )
    .await;
    t.call(
        "PUT",
        "/api/v1/pull-requests/{id}/validation",
        &[&prid],
        a,
        Some(json!({"validation_results": {"tests": "passed"}})),
        200,
    )
    .await;
    t.call(
        "GET",
        "/api/v1/pull-requests?project_id={}",
        &[&pid],
        a,
        None,
        200,
    )
    .await;

    // components, logs, configurations
    t.call("POST", "/api/v1/components", &[], admin, Some(json!({"name": "worker-1", "type": "worker", "endpoints": {"http": "http://127.0.0.1:1"}})), 201).await;
    t.call(
        "POST",
        "/api/v1/components/{which}/heartbeat",
        &["worker-1"],
        admin,
        Some(json!({"health_status": "healthy"})),
        200,
    )
    .await;
    t.call("GET", "/api/v1/components", &[], a, None, 200).await;
    t.call("GET", "/api/v1/components", &[], viewer, None, 403)
        .await;
    t.call("GET", "/api/v1/components/health", &[], viewer, None, 200)
        .await;
    t.call(
        "GET",
        "/api/v1/components/{which}",
        &["worker-1"],
        a,
        None,
        200,
    )
    .await;
    t.call(
        "DELETE",
        "/api/v1/components/{which}",
        &["worker-1"],
        admin,
        None,
        204,
    )
    .await;
    t.call("POST", "/api/v1/logs", &[], admin, Some(json!([{"level": "info", "message": "hello", "component_name": "w"}, {"level": "error", "message": "boom"}])), 201).await;
    t.call(
        "POST",
        "/api/v1/logs",
        &[],
        admin,
        Some(json!({"level": "warn", "message": "one"})),
        201,
    )
    .await;
    t.call("GET", "/api/v1/logs?min_level=info", &[], admin, None, 200)
        .await;
    t.call(
        "PUT",
        "/api/v1/configurations",
        &[],
        admin,
        Some(json!({"key": "smtp.password", "value": "hunter2", "is_sensitive": true})),
        200,
    )
    .await;
    t.call(
        "PUT",
        "/api/v1/configurations",
        &[],
        admin,
        Some(json!({"key": "ui.theme", "value": {"mode": "dark"}})),
        200,
    )
    .await;
    t.call("GET", "/api/v1/configurations", &[], admin, None, 200)
        .await;
    t.call(
        "GET",
        "/api/v1/configurations/{key}",
        &["smtp.password"],
        admin,
        None,
        200,
    )
    .await;
    t.call(
        "DELETE",
        "/api/v1/configurations/{key}",
        &["ui.theme"],
        admin,
        None,
        204,
    )
    .await;

    // people, notifications, keys
    let u = t
        .call(
            "POST",
            "/api/v1/users",
            &[],
            admin,
            Some(json!({"email": "New@X.io", "display_name": "N", "role": "viewer"})),
            201,
        )
        .await;
    t.call("GET", "/api/v1/users", &[], admin, None, 200).await;
    t.call("GET", "/api/v1/users/me", &[], a, None, 200).await;
    t.call("GET", "/api/v1/users/{id}", &[&id(&u)], admin, None, 200)
        .await;
    t.call(
        "POST",
        "/api/v1/users/{id}/unlock",
        &[&id(&u)],
        admin,
        None,
        200,
    )
    .await;
    let team = t
        .call(
            "POST",
            "/api/v1/teams",
            &[],
            admin,
            Some(json!({"name": "core"})),
            201,
        )
        .await;
    let team_id = id(&team);
    t.call(
        "POST",
        "/api/v1/teams/{id}/members",
        &[&team_id],
        admin,
        Some(json!({"user_id": id(&u), "role": "member"})),
        201,
    )
    .await;
    t.call(
        "GET",
        "/api/v1/teams/{id}/members",
        &[&team_id],
        admin,
        None,
        200,
    )
    .await;
    t.call("GET", "/api/v1/teams", &[], admin, None, 200).await;
    let mut tx = b.begin().await.unwrap();
    let n = tx
        .create_notification(NewNotification {
            user_id: a_id.parse().unwrap(),
            kind: "info".parse().unwrap(),
            title: "done".into(),
            message: None,
            data: None,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    t.call("GET", "/api/v1/notifications", &[], a, None, 200)
        .await;
    t.call(
        "POST",
        "/api/v1/notifications/{id}/read",
        &[&n.id.to_string()],
        a,
        None,
        200,
    )
    .await;
    t.call("POST", "/api/v1/notifications/read-all", &[], a, None, 200)
        .await;
    let key = t
        .call(
            "POST",
            "/api/v1/apikeys",
            &[],
            admin,
            Some(json!({"name": "ci", "role": "user"})),
            201,
        )
        .await;
    t.call("GET", "/api/v1/apikeys", &[], a, None, 200).await;
    t.call(
        "GET",
        "/api/v1/apikeys?user_id={}",
        &[&a_id],
        admin,
        None,
        200,
    )
    .await;
    t.call(
        "DELETE",
        "/api/v1/apikeys/{id}",
        &[&id(&key["api_key"])],
        admin,
        None,
        204,
    )
    .await;

    // deleting last, so that everything above had something to point at
    t.call("DELETE", "/api/v1/projects/{id}", &[&pid], a, None, 204)
        .await;
}

//! The flows of `answers_match_the_document` for tasks, pull requests, components,
//! logs, configurations, people, notifications and API keys.

use std::sync::Arc;

use flowstore_core::Backend;
use flowstore_testkit::fixtures;
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
    walk!(t;
        a GET "/api/v1/tasks/{id}" [&task_id] => 200;
        a PATCH "/api/v1/tasks/{id}" [&task_id] with {"priority": 3, "status": "ready"} => 200;
        a GET "/api/v1/tasks?tag=rust" [] => 200;
    );
    let pr = t.call("POST", "/api/v1/pull-requests", &[], a, Some(json!({"project_id": pid, "task_id": task_id, "pr_number": 7, "repository_url": "https://git.example/site", "branch_name": "feat", "title": "Parser"})), 201).await;
    let prid = id(&pr);
    walk!(t;
        a GET "/api/v1/pull-requests/{id}" [&prid] => 200;
        a POST "/api/v1/pull-requests/{id}/status" [&prid] with {"status": "open"} => 200;
        a PUT "/api/v1/pull-requests/{id}/validation" [&prid] with {"validation_results": {"tests": "passed"}} => 200;
        a GET "/api/v1/pull-requests?project_id={}" [&pid] => 200;
    );

    // components, logs, configurations
    walk!(t;
        admin POST "/api/v1/components" [] with {"name": "worker-1", "type": "worker", "endpoints": {"http": "http://127.0.0.1:1"}} => 201;
        admin POST "/api/v1/components/{which}/heartbeat" ["worker-1"] with {"health_status": "healthy"} => 200;
        a GET "/api/v1/components" [] => 200;
        viewer GET "/api/v1/components" [] => 403;
        viewer GET "/api/v1/components/health" [] => 200;
        a GET "/api/v1/components/{which}" ["worker-1"] => 200;
        admin DELETE "/api/v1/components/{which}" ["worker-1"] => 204;
        admin POST "/api/v1/logs" [] with [{"level": "info", "message": "hello", "component_name": "w"}, {"level": "error", "message": "boom"}] => 201;
        admin POST "/api/v1/logs" [] with {"level": "warn", "message": "one"} => 201;
        admin GET "/api/v1/logs?min_level=info" [] => 200;
        admin PUT "/api/v1/configurations" [] with {"key": "smtp.password", "value": "hunter2", "is_sensitive": true} => 200;
        admin PUT "/api/v1/configurations" [] with {"key": "ui.theme", "value": {"mode": "dark"}} => 200;
        admin GET "/api/v1/configurations" [] => 200;
        admin GET "/api/v1/configurations/{key}" ["smtp.password"] => 200;
        admin DELETE "/api/v1/configurations/{key}" ["ui.theme"] => 204;
    );

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
    walk!(t;
        admin GET "/api/v1/users" [] => 200;
        a GET "/api/v1/users/me" [] => 200;
        admin GET "/api/v1/users/{id}" [&id(&u)] => 200;
        admin POST "/api/v1/users/{id}/unlock" [&id(&u)] => 200;
    );
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
    walk!(t;
        admin POST "/api/v1/teams/{id}/members" [&team_id] with {"user_id": id(&u), "role": "member"} => 201;
        admin GET "/api/v1/teams/{id}/members" [&team_id] => 200;
        admin GET "/api/v1/teams" [] => 200;
    );
    let mut tx = b.begin().await.unwrap();
    let n = fixtures::notification(&mut tx, a_id.parse().unwrap(), "done").await;
    tx.commit().await.unwrap();
    walk!(t;
        a GET "/api/v1/notifications" [] => 200;
        a POST "/api/v1/notifications/{id}/read" [&n.id.to_string()] => 200;
        a POST "/api/v1/notifications/read-all" [] => 200;
        a GET "/api/v1/users/me/notification-preferences" [] => 200;
        a PATCH "/api/v1/users/me/notification-preferences" [] with {"info": false} => 200;
        a PATCH "/api/v1/users/me/notification-preferences" [] with {"security_alert": false} => 422;
        a POST "/api/v1/users/me/email-verification" [] => 202;
        None POST "/api/v1/password-resets" [] with {"email": "nobody@x.io"} => 202;
        None POST "/api/v1/password-resets" [] with {"email": "not an address"} => 422;
        None POST "/api/v1/password-resets/confirm" [] with {"token": "nope", "password": "violet tractor lighthouse"} => 422;
        None POST "/api/v1/email-verifications/confirm" [] with {"token": "nope"} => 422;
    );
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
    walk!(t;
        a GET "/api/v1/apikeys" [] => 200;
        admin GET "/api/v1/apikeys?user_id={}" [&a_id] => 200;
        admin DELETE "/api/v1/apikeys/{id}" [&id(&key["api_key"])] => 204;
    );

    // deleting last, so that everything above had something to point at
    walk!(t;
        a DELETE "/api/v1/projects/{id}" [&pid] => 204;
    );
}

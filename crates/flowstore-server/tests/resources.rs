//! The resources beyond workflows and runs, and errors as problem details. On
//! SQLite and PostgreSQL. (The OpenAPI document is checked in `openapi.rs`.)

#[macro_use]
mod common;

use std::sync::Arc;

use common::{ok, user_key, Client};
use flowstore_core::model::identity::Role;
use flowstore_core::model::identity_access::NewNotification;
use flowstore_core::Backend;
use serde_json::json;

both_backends!(
    registry_logs_and_configurations,
    people_notifications_and_keys,
    errors_405_and_timeout_are_problems,
    bootstrap_counts_keys,
    several_servers_starting_at_once_make_one_bootstrap_key
);

async fn registry_logs_and_configurations(b: Arc<dyn Backend>) {
    let c = Client::new(b).await;
    ok(
        &c,
        "POST",
        "/api/v1/handlers",
        &c.admin,
        Some(json!({"handler_type": "shell", "handler_name": "shell"})),
        201,
    )
    .await;
    let h = ok(
        &c,
        "PATCH",
        "/api/v1/handlers/shell",
        &c.admin,
        Some(json!({"handler_name": "Shell v2"})),
        200,
    )
    .await;
    assert_eq!(h["handler_name"], "Shell v2");
    ok(
        &c,
        "PATCH",
        "/api/v1/handlers/shell",
        &c.user,
        Some(json!({"handler_name": "x"})),
        403,
    )
    .await;
    ok(
        &c,
        "POST",
        "/api/v1/handlers/shell/deactivate",
        &c.admin,
        None,
        200,
    )
    .await;
    let active = ok(&c, "GET", "/api/v1/handlers", &c.viewer, None, 200).await;
    assert_eq!(active.as_array().unwrap().len(), 0);
    let all = ok(&c, "GET", "/api/v1/handlers?all=true", &c.viewer, None, 200).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    ok(&c, "GET", "/api/v1/handlers/nope", &c.viewer, None, 404).await;

    let comp = ok(
        &c,
        "POST",
        "/api/v1/components",
        &c.user,
        Some(json!({"name": "worker-1", "type": "worker"})),
        201,
    )
    .await;
    ok(
        &c,
        "POST",
        "/api/v1/components",
        &c.user,
        Some(json!({"name": "worker-1", "type": "worker"})),
        409,
    )
    .await;
    ok(
        &c,
        "POST",
        "/api/v1/components/worker-1/heartbeat",
        &c.user,
        Some(json!({"health_status": "healthy"})),
        200,
    )
    .await;
    let cid = comp["id"].as_str().unwrap();
    ok(
        &c,
        "GET",
        &format!("/api/v1/components/{cid}"),
        &c.user,
        None,
        200,
    )
    .await;
    ok(&c, "GET", "/api/v1/components", &c.viewer, None, 403).await;
    let list = ok(&c, "GET", "/api/v1/components", &c.user, None, 200).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let health = ok(&c, "GET", "/api/v1/components/health", &c.viewer, None, 200).await;
    assert_eq!(health[0]["effective_health"], "healthy", "{health}");
    ok(
        &c,
        "DELETE",
        "/api/v1/components/worker-1",
        &c.user,
        None,
        403,
    )
    .await;
    ok(
        &c,
        "DELETE",
        "/api/v1/components/worker-1",
        &c.admin,
        None,
        204,
    )
    .await;

    let logs = ok(
        &c,
        "POST",
        "/api/v1/logs",
        &c.user,
        Some(
            json!([{"level": "info", "message": "hello", "component_name": "w"},
        {"level": "error", "message": "boom", "component_name": "w"}]),
        ),
        201,
    )
    .await;
    assert_eq!(logs.as_array().unwrap().len(), 2);
    ok(
        &c,
        "POST",
        "/api/v1/logs",
        &c.user,
        Some(json!({"level": "warn", "message": "one"})),
        201,
    )
    .await;
    ok(
        &c,
        "POST",
        "/api/v1/logs",
        &c.user,
        Some(json!({"level": "loud", "message": "x"})),
        422,
    )
    .await;
    let q = ok(
        &c,
        "GET",
        "/api/v1/logs?component_name=w&min_level=error",
        &c.admin,
        None,
        200,
    )
    .await;
    assert_eq!(q["items"].as_array().unwrap().len(), 1);
    ok(&c, "GET", "/api/v1/logs", &c.user, None, 403).await;

    ok(
        &c,
        "PUT",
        "/api/v1/configurations",
        &c.admin,
        Some(json!({"key": "smtp.password", "value": "hunter2", "is_sensitive": true})),
        200,
    )
    .await;
    ok(
        &c,
        "PUT",
        "/api/v1/configurations",
        &c.admin,
        Some(json!({"key": "ui.theme", "value": "dark"})),
        200,
    )
    .await;
    ok(
        &c,
        "PUT",
        "/api/v1/configurations",
        &c.user,
        Some(json!({"key": "x", "value": 1})),
        403,
    )
    .await;
    let one = c
        .call(
            "GET",
            "/api/v1/configurations/smtp.password",
            &c.admin,
            None,
        )
        .await;
    assert_eq!(one.status, 200);
    let listed = c
        .call("GET", "/api/v1/configurations", &c.admin, None)
        .await;
    for text in [one.body.to_string(), listed.body.to_string()] {
        assert!(
            !text.contains("hunter2"),
            "a sensitive value is never shown: {text}"
        );
    }
    assert!(listed.body.to_string().contains("dark"));
    ok(
        &c,
        "GET",
        "/api/v1/configurations/ui.theme",
        &c.viewer,
        None,
        403,
    )
    .await;
    ok(
        &c,
        "DELETE",
        "/api/v1/configurations/ui.theme",
        &c.admin,
        None,
        204,
    )
    .await;
    ok(
        &c,
        "GET",
        "/api/v1/configurations/ui.theme",
        &c.admin,
        None,
        404,
    )
    .await;
}

async fn people_notifications_and_keys(b: Arc<dyn Backend>) {
    let c = Client::new(b.clone()).await;
    let (a_id, a) = user_key(&b, Role::User, "a@x.io").await;
    let (b_id, bk) = user_key(&b, Role::User, "b@x.io").await;
    let u = ok(
        &c,
        "POST",
        "/api/v1/users",
        &c.admin,
        Some(json!({"email": "New@X.io", "display_name": "N"})),
        201,
    )
    .await;
    assert!(u.get("password_hash").is_none());
    ok(
        &c,
        "POST",
        "/api/v1/users",
        &c.admin,
        Some(json!({"email": "new@x.io"})),
        409,
    )
    .await;
    ok(
        &c,
        "POST",
        "/api/v1/users",
        &a,
        Some(json!({"email": "c@x.io"})),
        403,
    )
    .await;
    let users = ok(&c, "GET", "/api/v1/users", &c.admin, None, 200).await;
    assert_eq!(users["items"].as_array().unwrap().len(), 3);
    assert_eq!(
        ok(&c, "GET", "/api/v1/users/me", &a, None, 200).await["id"],
        json!(a_id)
    );
    ok(&c, "GET", "/api/v1/users/me", &c.user, None, 403).await; // a key of no user
    ok(&c, "GET", &format!("/api/v1/users/{a_id}"), &a, None, 200).await;
    ok(&c, "GET", &format!("/api/v1/users/{b_id}"), &a, None, 404).await;
    let t = ok(
        &c,
        "POST",
        "/api/v1/teams",
        &c.admin,
        Some(json!({"name": "core"})),
        201,
    )
    .await;
    let tid = t["id"].as_str().unwrap();
    ok(
        &c,
        "POST",
        &format!("/api/v1/teams/{tid}/members"),
        &c.admin,
        Some(json!({"user_id": a_id, "role": "member"})),
        201,
    )
    .await;
    ok(
        &c,
        "GET",
        &format!("/api/v1/teams/{tid}/members"),
        &a,
        None,
        200,
    )
    .await;
    ok(
        &c,
        "GET",
        &format!("/api/v1/teams/{tid}/members"),
        &bk,
        None,
        404,
    )
    .await;
    assert_eq!(
        ok(&c, "GET", "/api/v1/teams", &c.admin, None, 200).await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // notifications: one's own only
    let mut tx = b.begin().await.unwrap();
    let n = tx
        .create_notification(NewNotification {
            user_id: a_id.parse().unwrap(),
            kind: "info".parse().unwrap(),
            title: "hello".into(),
            message: None,
            data: None,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        ok(
            &c,
            "GET",
            "/api/v1/notifications?unread_only=true",
            &a,
            None,
            200
        )
        .await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        ok(&c, "GET", "/api/v1/notifications", &bk, None, 200).await["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    ok(
        &c,
        "POST",
        &format!("/api/v1/notifications/{}/read", n.id),
        &bk,
        None,
        404,
    )
    .await;
    let read = ok(
        &c,
        "POST",
        &format!("/api/v1/notifications/{}/read", n.id),
        &a,
        None,
        200,
    )
    .await;
    assert_eq!(read["read"], true);
    assert_eq!(
        ok(&c, "POST", "/api/v1/notifications/read-all", &a, None, 200).await["marked"],
        0
    );

    // keys: one's own; an admin lists anyone's; last_used_at is recorded
    let mine = ok(&c, "GET", "/api/v1/apikeys", &a, None, 200).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    assert!(mine["items"][0]["last_used_at"].is_string(), "{mine}");
    ok(
        &c,
        "GET",
        &format!("/api/v1/apikeys?user_id={b_id}"),
        &a,
        None,
        403,
    )
    .await;
    let theirs = ok(
        &c,
        "GET",
        &format!("/api/v1/apikeys?user_id={b_id}"),
        &c.admin,
        None,
        200,
    )
    .await;
    let b_key = theirs["items"][0]["id"].as_str().unwrap().to_string();
    ok(
        &c,
        "DELETE",
        &format!("/api/v1/apikeys/{b_key}"),
        &a,
        None,
        404,
    )
    .await;
    ok(
        &c,
        "DELETE",
        &format!("/api/v1/apikeys/{b_key}"),
        &bk,
        None,
        204,
    )
    .await;
    // revoked through the server: refused at once despite the cache
    ok(&c, "GET", "/api/v1/apikeys", &bk, None, 401).await;
    // keys exist, so no bootstrap key is made
    assert!(flowstore_server::bootstrap_admin_key(&b)
        .await
        .unwrap()
        .is_none());
}

async fn errors_405_and_timeout_are_problems(b: Arc<dyn Backend>) {
    let c = Client::new(b.clone()).await;
    let r = c.call("DELETE", "/api/v1/workflows", &c.admin, None).await;
    assert_eq!(r.status, 405);
    assert!(
        r.content_type.starts_with("application/problem+json"),
        "{}",
        r.content_type
    );
    assert_eq!(r.body["status"], 405);

    let cfg = flowstore_server::ServerConfig {
        request_timeout: std::time::Duration::from_millis(200),
        max_claim_wait: std::time::Duration::from_secs(5),
        rate_per_second: 1.0,
        rate_burst: 2.0,
        ..Default::default()
    };
    let state = flowstore_server::AppState::with_config(b.clone(), cfg);
    let c2 = Client {
        router: flowstore_server::app(state.clone()),
        state,
        ..c
    };
    let claim = json!({"worker_id": "w", "handler_types": ["none"], "limit": 1, "lease_ms": 1000, "wait_ms": 2000});
    let r = c2
        .call("POST", "/api/v1/worker/claim", &c2.user, Some(claim))
        .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.content_type.starts_with("application/problem+json"));
    assert_eq!(r.body["type"], "https://flowstore.dev/problems/timeout");
    // the configured rate limit applies (burst 2, both used above by the admin? no: per key)
    let mut last = 0;
    for _ in 0..3 {
        last = c2
            .call("GET", "/api/v1/handlers", &c2.viewer, None)
            .await
            .status
            .as_u16();
    }
    assert_eq!(last, 429);
}

/// Several servers starting at once on one empty database: exactly one of them makes
/// (and prints) the bootstrap key.
async fn several_servers_starting_at_once_make_one_bootstrap_key(b: Arc<dyn Backend>) {
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { flowstore_server::bootstrap_admin_key(&b).await })
        })
        .collect();
    let mut made = 0;
    for s in starts {
        if s.await.unwrap().unwrap().is_some() {
            made += 1;
        }
    }
    assert_eq!(made, 1, "one bootstrap key among 8 concurrent starts");
    let mut tx = b.begin_read().await.unwrap();
    assert_eq!(tx.count_api_keys().await.unwrap(), 1);
}

async fn bootstrap_counts_keys(b: Arc<dyn Backend>) {
    let mut tx = b.begin_read().await.unwrap();
    assert_eq!(tx.count_api_keys().await.unwrap(), 0);
    drop(tx);
    let key = flowstore_server::bootstrap_admin_key(&b).await.unwrap();
    assert!(key.is_some(), "an empty database gets an admin key");
    assert!(flowstore_server::bootstrap_admin_key(&b)
        .await
        .unwrap()
        .is_none());
    let mut tx = b.begin_read().await.unwrap();
    assert_eq!(tx.count_api_keys().await.unwrap(), 1);
}

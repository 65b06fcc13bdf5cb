//! The resources beyond workflows and runs, and errors as problem details. On
//! SQLite and PostgreSQL. (The OpenAPI document is checked in `openapi.rs`.)

use std::sync::Arc;

use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use flowstore_testkit::fixtures;
use flowstore_testkit::{both_backends, requests, TestApp};
use serde_json::json;

both_backends!(
    registry_logs_and_configurations,
    people_notifications_and_keys,
    errors_405_and_timeout_are_problems,
    bootstrap_counts_keys,
    several_servers_starting_at_once_make_one_bootstrap_key
);

async fn registry_logs_and_configurations(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    c.admin()
        .create_handler(json!({"handler_type": "shell", "handler_name": "shell"}))
        .await
        .want(201);
    let h = c
        .admin()
        .patch(
            "/api/v1/handlers/shell",
            json!({"handler_name": "Shell v2"}),
        )
        .await
        .want(200);
    assert_eq!(h["handler_name"], "Shell v2");
    requests!(c;
        PATCH "/api/v1/handlers/shell" with {"handler_name": "x"} by c.user => 403;
        POST "/api/v1/handlers/shell/deactivate" by c.admin => 200;
    );
    let active = c.viewer().list_handlers().await.want(200);
    assert_eq!(active.as_array().unwrap().len(), 0);
    let all = c.viewer().get("/api/v1/handlers?all=true").await.want(200);
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    c.viewer().get("/api/v1/handlers/nope").await.want(404);

    let comp = c
        .user()
        .create_component(json!({"name": "worker-1", "type": "worker"}))
        .await
        .want(201);
    requests!(c;
        POST "/api/v1/components" with {"name": "worker-1", "type": "worker"} by c.user => 409;
        POST "/api/v1/components/worker-1/heartbeat" with {"health_status": "healthy"} by c.user => 200;
    );
    let cid = comp["id"].as_str().unwrap();
    requests!(c;
        GET "/api/v1/components/{cid}" by c.user => 200;
        GET "/api/v1/components" by c.viewer => 403;
    );
    let list = c.user().list_components().await.want(200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let health = c.viewer().get("/api/v1/components/health").await.want(200);
    assert_eq!(health[0]["effective_health"], "healthy", "{health}");
    requests!(c;
        DELETE "/api/v1/components/worker-1" by c.user => 403;
        DELETE "/api/v1/components/worker-1" by c.admin => 204;
    );

    let logs = c.user().write_log(json!([{"level": "info", "message": "hello", "component_name": "w"}, {"level": "error", "message": "boom", "component_name": "w"}])).await.want(201);
    assert_eq!(logs.as_array().unwrap().len(), 2);
    requests!(c;
        POST "/api/v1/logs" with {"level": "warn", "message": "one"} by c.user => 201;
        POST "/api/v1/logs" with {"level": "loud", "message": "x"} by c.user => 422;
    );
    let q = c
        .admin()
        .get("/api/v1/logs?component_name=w&min_level=error")
        .await
        .want(200);
    assert_eq!(q["items"].as_array().unwrap().len(), 1);
    c.user().get("/api/v1/logs").await.want(403);

    requests!(c;
        PUT "/api/v1/configurations" with {"key": "smtp.password", "value": "hunter2", "is_sensitive": true} by c.admin => 200;
        PUT "/api/v1/configurations" with {"key": "ui.theme", "value": "dark"} by c.admin => 200;
        PUT "/api/v1/configurations" with {"key": "x", "value": 1} by c.user => 403;
    );
    let one = c.admin().get("/api/v1/configurations/smtp.password").await;
    assert_eq!(one.status, 200);
    let listed = c.admin().get("/api/v1/configurations").await;
    for text in [one.body.to_string(), listed.body.to_string()] {
        assert!(
            !text.contains("hunter2"),
            "a sensitive value is never shown: {text}"
        );
    }
    assert!(listed.body.to_string().contains("dark"));
    requests!(c;
        GET "/api/v1/configurations/ui.theme" by c.viewer => 403;
        DELETE "/api/v1/configurations/ui.theme" by c.admin => 204;
        GET "/api/v1/configurations/ui.theme" by c.admin => 404;
    );
}

async fn people_notifications_and_keys(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (a_id, a) = c.user_key(Role::User, "a@x.io").await;
    let (b_id, bk) = c.user_key(Role::User, "b@x.io").await;
    let u = c
        .admin()
        .create_user(json!({"email": "New@X.io", "display_name": "N"}))
        .await
        .want(201);
    assert!(u.get("password_hash").is_none());
    requests!(c;
        POST "/api/v1/users" with {"email": "new@x.io"} by c.admin => 409;
        POST "/api/v1/users" with {"email": "c@x.io"} by a => 403;
    );
    let users = c.admin().list_users().await.want(200);
    assert_eq!(users["items"].as_array().unwrap().len(), 3);
    assert_eq!(c.by(&a).me().await.want(200)["id"], json!(a_id));
    c.user().me().await.want(403); // a key of no user
    requests!(c;
        GET "/api/v1/users/{a_id}" by a => 200;
        GET "/api/v1/users/{b_id}" by a => 404;
    );
    let tid = c.team("core").await;
    requests!(c;
        POST "/api/v1/teams/{tid}/members" with {"user_id": a_id, "role": "member"} by c.admin => 201;
        GET "/api/v1/teams/{tid}/members" by a => 200;
        GET "/api/v1/teams/{tid}/members" by bk => 404;
    );
    assert_eq!(
        c.admin().get("/api/v1/teams").await.want(200)["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // notifications: one's own only
    let mut tx = b.begin().await.unwrap();
    let n = fixtures::notification(&mut tx, a_id.parse().unwrap(), "hello").await;
    tx.commit().await.unwrap();
    assert_eq!(
        c.by(&a)
            .get("/api/v1/notifications?unread_only=true")
            .await
            .want(200)["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        c.by(&bk).list_notifications().await.want(200)["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    c.by(&bk)
        .post_empty(&format!("/api/v1/notifications/{}/read", n.id))
        .await
        .want(404);
    let read = c
        .by(&a)
        .post_empty(&format!("/api/v1/notifications/{}/read", n.id))
        .await
        .want(200);
    assert_eq!(read["read"], true);
    assert_eq!(
        c.by(&a)
            .post_empty("/api/v1/notifications/read-all")
            .await
            .want(200)["marked"],
        0
    );

    // keys: one's own; an admin lists anyone's; last_used_at is recorded
    let mine = c.by(&a).list_api_keys().await.want(200);
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    assert!(mine["items"][0]["last_used_at"].is_string(), "{mine}");
    c.by(&a)
        .get(&format!("/api/v1/apikeys?user_id={b_id}"))
        .await
        .want(403);
    let theirs = c
        .admin()
        .get(&format!("/api/v1/apikeys?user_id={b_id}"))
        .await
        .want(200);
    let b_key = theirs["items"][0]["id"].as_str().unwrap().to_string();
    requests!(c;
        DELETE "/api/v1/apikeys/{b_key}" by a => 404;
        DELETE "/api/v1/apikeys/{b_key}" by bk => 204;
    );
    // revoked through the server: refused at once despite the cache
    c.by(&bk).list_api_keys().await.want(401);
    // keys exist, so no bootstrap key is made
    assert!(flowstore_server::bootstrap_admin_key(&b)
        .await
        .unwrap()
        .is_none());
}

async fn errors_405_and_timeout_are_problems(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let r = c.admin().delete("/api/v1/workflows").await;
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
    let c2 = TestApp {
        router: flowstore_server::app(state.clone()),
        state,
        ..c
    };
    let claim = json!({"worker_id": "w", "handler_types": ["none"], "limit": 1, "lease_ms": 1000, "wait_ms": 2000});
    let r = c2.user().claim(claim).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.content_type.starts_with("application/problem+json"));
    assert_eq!(r.body["type"], "https://flowstore.dev/problems/timeout");
    // the configured rate limit applies (burst 2, both used above by the admin? no: per key)
    let mut last = 0;
    for _ in 0..3 {
        last = c2.viewer().list_handlers().await.status.as_u16();
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

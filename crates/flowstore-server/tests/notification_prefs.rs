//! Which notifications a user wants, credentials about to expire, and the stream of
//! one's own notifications (never anyone else's). On SQLite and PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use flowstore_testkit::fixtures::one_step;
use flowstore_testkit::{both_backends, TestApp};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

both_backends!(
    preferences_decide_what_is_written,
    owners_hear_once_of_credentials_about_to_expire,
    a_stream_carries_ones_own_notifications_only,
);

const PREFS: &str = "/api/v1/users/me/notification-preferences";

async fn notes(c: &TestApp, key: &str) -> Vec<Value> {
    c.by(key).list_notifications().await.want(200)["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn workflow(c: &TestApp, key: &str, name: &str) -> String {
    c.by(key)
        .create_workflow(json!({"name": name, "status": "active", "definition": one_step("shell")}))
        .await
        .want_id(201)
}

async fn preferences_decide_what_is_written(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    let (a_id, a) = c.user_key(Role::User, "a@x.io").await;
    let (_, bk) = c.user_key(Role::User, "b@x.io").await;
    let (_, viewer) = c.user_key(Role::Viewer, "v@x.io").await;
    let all_on = c.by(&a).get(PREFS).await.want(200);
    assert_eq!(
        all_on,
        json!({"execution_completed": true, "execution_failed": true, "workflow_shared": true,
               "team_invite": true, "system_alert": true, "security_alert": true, "info": true})
    );
    // Switched off: shares are no longer told; other kinds stay as they were.
    let after = c
        .by(&a)
        .patch(PREFS, json!({"workflow_shared": false}))
        .await
        .want(200);
    assert_eq!(after["workflow_shared"], false);
    assert_eq!(after["execution_failed"], true);
    assert_eq!(c.by(&a).get(PREFS).await.want(200), after);
    let theirs = workflow(&c, &bk, "theirs").await;
    c.by(&bk)
        .share_workflow(&theirs, json!({"user_id": a_id, "permission": "read"}))
        .await
        .want(201);
    assert!(notes(&c, &a).await.is_empty());
    // Switched on again: told.
    c.by(&a)
        .patch(PREFS, json!({"workflow_shared": true}))
        .await
        .want(200);
    let other = workflow(&c, &bk, "other").await;
    c.by(&bk)
        .share_workflow(&other, json!({"user_id": a_id, "permission": "read"}))
        .await
        .want(201);
    let got = notes(&c, &a).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["type"], "workflow_shared");
    // Security alerts cannot be switched off; unknown kinds are refused.
    c.by(&a)
        .patch(PREFS, json!({"security_alert": false}))
        .await
        .want_field(422, "security_alert");
    c.by(&a)
        .patch(PREFS, json!({"security_alert": true, "info": false}))
        .await
        .want(200);
    c.by(&a)
        .patch(PREFS, json!({"newsletter": false}))
        .await
        .want(422);
    // Each user has their own; a viewer chooses theirs too; a key of no user has
    // none.
    assert_eq!(c.by(&bk).get(PREFS).await.want(200), all_on);
    c.by(&viewer)
        .patch(PREFS, json!({"info": false}))
        .await
        .want(200);
    c.admin().get(PREFS).await.want(403);
    // Each change is audited (three by A), before and after.
    let changes = c
        .audit_entries("user.notification_preferences", &a_id)
        .await;
    assert_eq!(changes.len(), 3, "{changes:?}");
    let first = &changes[2];
    assert_eq!(first["before"]["workflow_shared"], true);
    assert_eq!(first["after"]["workflow_shared"], false);
}

async fn owners_hear_once_of_credentials_about_to_expire(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    let (_, a) = c.user_key(Role::User, "a@x.io").await;
    let in_days = |d: i64| (flowstore_core::time::now() + chrono::TimeDelta::days(d)).to_rfc3339();
    let soon = c
        .by(&a)
        .create_credential(json!({"name": "soon", "type": "api_key", "data": "s3cret-1", "expires_at": in_days(3)}))
        .await
        .want_id(201);
    c.by(&a)
        .create_credential(json!({"name": "later", "type": "api_key", "data": "s3cret-2", "expires_at": in_days(30)}))
        .await
        .want_id(201);
    c.by(&a)
        .create_credential(json!({"name": "never", "type": "api_key", "data": "s3cret-3"}))
        .await
        .want_id(201);
    assert_eq!(flowstore_server::expiry_notices(&c.state).await.unwrap(), 1);
    // Once per expiry, however often the pass runs.
    assert_eq!(flowstore_server::expiry_notices(&c.state).await.unwrap(), 0);
    let got = notes(&c, &a).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["type"], "system_alert");
    assert_eq!(got[0]["data"]["reason"], "credential_expiring");
    assert_eq!(got[0]["data"]["credential_id"], soon.as_str());
    assert!(got[0]["title"].as_str().unwrap().contains("soon"));
    // A new expiry is told again when it nears.
    c.by(&a)
        .patch(
            &format!("/api/v1/credentials/{soon}"),
            json!({"expires_at": in_days(5)}),
        )
        .await
        .want(200);
    assert_eq!(flowstore_server::expiry_notices(&c.state).await.unwrap(), 1);
    assert_eq!(notes(&c, &a).await.len(), 2);
    // Switched off, the notice is kept without a notification.
    c.by(&a)
        .patch(PREFS, json!({"system_alert": false}))
        .await
        .want(200);
    c.by(&a)
        .patch(
            &format!("/api/v1/credentials/{soon}"),
            json!({"expires_at": in_days(6)}),
        )
        .await
        .want(200);
    assert_eq!(flowstore_server::expiry_notices(&c.state).await.unwrap(), 1);
    assert_eq!(notes(&c, &a).await.len(), 2);
}

/// Opens the notification stream of `key` (after `last` when given).
async fn open_stream(c: &TestApp, key: &str, last: Option<&str>) -> (u16, Body) {
    let mut req = Request::builder()
        .uri("/api/v1/notifications/stream")
        .header("authorization", format!("Bearer {key}"));
    if let Some(id) = last {
        req = req.header("last-event-id", id);
    }
    let res = c
        .router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    (res.status().as_u16(), res.into_body())
}

/// The notifications a stream sends within `wait`: `(id, type, data)`.
async fn read_for(body: &mut Body, wait: Duration) -> Vec<(String, String, Value)> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut text = String::new();
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    let mut out = Vec::new();
    for frame in text.split("\n\n") {
        let (mut id, mut kind, mut data) = (None, None, None);
        for line in frame.lines() {
            if let Some(v) = line.strip_prefix("id:") {
                id = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("event:") {
                kind = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("data:") {
                data = serde_json::from_str(v.trim()).ok();
            }
        }
        if let (Some(id), Some(kind), Some(data)) = (id, kind, data) {
            out.push((id, kind, data));
        }
    }
    out
}

async fn a_stream_carries_ones_own_notifications_only(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    let (a_id, a) = c.user_key(Role::User, "a@x.io").await;
    let (b_id, bk) = c.user_key(Role::User, "b@x.io").await;
    let (_, admin) = c.user_key(Role::Admin, "root@x.io").await;
    let mine = workflow(&c, &a, "mine").await;
    let theirs = workflow(&c, &bk, "theirs").await;
    // Told before the stream opens: not sent.
    c.by(&bk)
        .share_workflow(&theirs, json!({"user_id": a_id, "permission": "read"}))
        .await
        .want(201);
    let (status, mut stream) = open_stream(&c, &a, None).await;
    assert_eq!(status, 200);
    // The admin's stream is the admin's own too.
    let (status, mut admins) = open_stream(&c, &admin, None).await;
    assert_eq!(status, 200);
    // One for B (A shares with B), one for A (B shares with A).
    c.by(&a)
        .share_workflow(&mine, json!({"user_id": b_id, "permission": "read"}))
        .await
        .want(201);
    let other = workflow(&c, &bk, "other").await;
    c.by(&bk)
        .share_workflow(&other, json!({"user_id": a_id, "permission": "write"}))
        .await
        .want(201);
    let got = read_for(&mut stream, Duration::from_secs(3)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let (id, kind, data) = &got[0];
    assert_eq!(kind, "workflow_shared");
    assert_eq!(data["user_id"], a_id.as_str());
    assert_eq!(data["data"]["workflow_id"], other.as_str());
    assert_eq!(data["id"], id.as_str());
    assert!(read_for(&mut admins, Duration::from_millis(300))
        .await
        .is_empty());

    // Resumed after that one: only what came since.
    let third = workflow(&c, &bk, "third").await;
    c.by(&bk)
        .share_workflow(&third, json!({"user_id": a_id, "permission": "read"}))
        .await
        .want(201);
    let (status, mut resumed) = open_stream(&c, &a, Some(id)).await;
    assert_eq!(status, 200);
    let got = read_for(&mut resumed, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].2["data"]["workflow_id"], third.as_str());
    // Resuming after another user's notification is refused.
    let bs = notes(&c, &bk).await;
    let (status, _) = open_stream(&c, &a, bs[0]["id"].as_str()).await;
    assert_eq!(status, 422);
    // A key of no user has no stream.
    let (status, _) = open_stream(&c, &c.admin, None).await;
    assert_eq!(status, 403);
    let (status, _) = open_stream(&c, "nope", None).await;
    assert_eq!(status, 401);
}

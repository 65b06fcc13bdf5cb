//! Signing in and out, session tokens as credentials (per role, ending when the
//! account is switched off or deleted, but not when its sign-in is throttled: see
//! `signin.rs` for the throttles), and the people routes that go with
//! them: a user changing themself, an admin changing or deleting anyone but the last
//! admin, teams and notifications. On SQLite and PostgreSQL.

#[macro_use]
mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use common::{ok, Client};
use flowstore_core::model::identity_access::NewNotification;
use flowstore_core::Backend;
use serde_json::{json, Value};
use tower::ServiceExt;

both_backends!(
    signing_in_right_wrong_unknown_throttled_and_disabled,
    sessions_act_with_their_users_role,
    signing_out_and_deleting_end_sessions,
    users_change_themselves_and_admins_change_anyone,
    the_last_admin_stays,
    teams_and_notifications,
);

const PASSWORD: &str = "correct horse battery";

/// Creates a user with a password through the API: their ID.
async fn user(c: &Client, email: &str, role: &str) -> String {
    let body = json!({"email": email, "password": PASSWORD, "role": role});
    let u = ok(c, "POST", "/api/v1/users", &c.admin, Some(body), 201).await;
    u["id"].as_str().unwrap().to_string()
}

/// Signs in: (status, body, Retry-After).
async fn sign_in(c: &Client, email: &str, password: &str) -> (u16, Value, Option<String>) {
    let body = json!({"email": email, "password": password}).to_string();
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/sessions")
        .header("content-type", "application/json")
        .header("user-agent", "flowstore-tests/1")
        .body(Body::from(body))
        .unwrap();
    let res = c.router.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body, retry)
}

/// Signs in and returns the session token.
async fn token(c: &Client, email: &str) -> String {
    let (status, body, _) = sign_in(c, email, PASSWORD).await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_string()
}

async fn signing_in_right_wrong_unknown_throttled_and_disabled(b: Arc<dyn Backend>) {
    let c = Client::new(b).await;
    let id = user(&c, "ada@x.io", "user").await;

    let (status, body, _) = sign_in(&c, "ADA@x.io", PASSWORD).await;
    assert_eq!(status, 201, "{body}");
    let session_token = body["token"].as_str().unwrap().to_string();
    assert!(session_token.len() >= 40);
    assert_eq!(body["user"]["id"], json!(id));
    assert!(body["user"].get("password_hash").is_none());
    assert_eq!(body["session"]["user_agent"], "flowstore-tests/1");
    assert!(body["session"].get("token_hash").is_none());
    assert!(body["session"]["expires_at"].is_string());

    // A wrong password and an unknown email get the same answer.
    let (wrong, wrong_body, _) = sign_in(&c, "ada@x.io", "not the password").await;
    let (unknown, unknown_body, _) = sign_in(&c, "nobody@x.io", "not the password").await;
    let (garbage, garbage_body, _) = sign_in(&c, "not an email", "x").await;
    assert_eq!((wrong, unknown, garbage), (401, 401, 401));
    assert_eq!(wrong_body, unknown_body);
    assert_eq!(wrong_body, garbage_body);

    // Malformed and unknown fields are the client's mistakes, not sign-in failures.
    let r = c
        .raw(
            "POST",
            "/api/v1/sessions",
            None,
            Some(b"{\"email\":".to_vec()),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = c
        .raw(
            "POST",
            "/api/v1/sessions",
            None,
            Some(
                json!({"email": "ada@x.io", "password": PASSWORD, "remember": true})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body["field"].clone()),
        (422, json!("remember"))
    );

    // Five wrong passwords in a row (one above) throttle sign-in to the account, even
    // with the right password, for a while; the session opened before keeps working.
    for _ in 0..4 {
        assert_eq!(sign_in(&c, "ada@x.io", "still wrong").await.0, 401);
    }
    let (status, body, retry) = sign_in(&c, "ada@x.io", PASSWORD).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["field"], "email");
    assert_eq!(
        body["type"],
        "https://flowstore.dev/problems/sign-in-throttled"
    );
    let secs: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!(secs > 0 && secs <= 30, "{secs}");
    let r = c
        .call("GET", "/api/v1/sessions/current", &session_token, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The count is shown to admins.
    let ada = ok(
        &c,
        "GET",
        &format!("/api/v1/users/{id}"),
        &c.admin,
        None,
        200,
    )
    .await;
    assert_eq!(ada["failed_login_count"], 5);
    assert!(ada["locked_until"].is_string(), "{ada}");

    // An account without a password matches none.
    ok(
        &c,
        "POST",
        "/api/v1/users",
        &c.admin,
        Some(json!({"email": "nopw@x.io"})),
        201,
    )
    .await;
    let (status, nopw_body, _) = sign_in(&c, "nopw@x.io", PASSWORD).await;
    assert_eq!((status, &nopw_body), (401, &wrong_body));

    // A switched-off account: the right password is refused with 403, a wrong one
    // is just wrong.
    user(&c, "bob@x.io", "user").await;
    let bob = token(&c, "bob@x.io").await;
    let bob_id = ok(&c, "GET", "/api/v1/sessions/current", &bob, None, 200).await["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Bob's API key works while he is active (used once so that it is cached).
    let bob_key = ok(
        &c,
        "POST",
        "/api/v1/apikeys",
        &c.admin,
        Some(json!({"name": "bob's worker", "role": "user", "user_id": bob_id})),
        201,
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&c, "GET", "/api/v1/workflows", &bob_key, None, 200).await;
    ok(
        &c,
        "PATCH",
        &format!("/api/v1/users/{bob_id}"),
        &c.admin,
        Some(json!({"status": "suspended"})),
        200,
    )
    .await;
    // Switching a user off switches off their API keys at once, cache or not.
    let r = c.call("GET", "/api/v1/workflows", &bob_key, None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let (status, body, _) = sign_in(&c, "bob@x.io", PASSWORD).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(sign_in(&c, "bob@x.io", "wrong").await.0, 401);
    assert_eq!(
        c.call("GET", "/api/v1/sessions/current", &bob, None)
            .await
            .status,
        401
    );
    // Switched on again, the old session stays ended (it was revoked); a new one works.
    ok(
        &c,
        "PATCH",
        &format!("/api/v1/users/{bob_id}"),
        &c.admin,
        Some(json!({"status": "active"})),
        200,
    )
    .await;
    assert_eq!(
        c.call("GET", "/api/v1/sessions/current", &bob, None)
            .await
            .status,
        401
    );
    token(&c, "bob@x.io").await;
    // His key was never revoked: it works again.
    ok(&c, "GET", "/api/v1/workflows", &bob_key, None, 200).await;
}

async fn sessions_act_with_their_users_role(b: Arc<dyn Backend>) {
    let c = Client::new(b).await;
    let admin_id = user(&c, "admin@x.io", "admin").await;
    let user_id = user(&c, "user@x.io", "user").await;
    user(&c, "viewer@x.io", "viewer").await;
    let admin = token(&c, "admin@x.io").await;
    let usr = token(&c, "user@x.io").await;
    let viewer = token(&c, "viewer@x.io").await;

    let me = ok(&c, "GET", "/api/v1/sessions/current", &usr, None, 200).await;
    assert_eq!(me["credential"], "session");
    assert_eq!(me["role"], "user");
    assert_eq!(me["user"]["id"], json!(user_id));
    assert!(me["session"]["id"].is_string());
    assert!(me["api_key"].is_null());
    let me = ok(&c, "GET", "/api/v1/sessions/current", &c.user, None, 200).await;
    assert_eq!(
        (me["credential"].as_str(), me["user"].is_null()),
        (Some("api_key"), true)
    );

    let wf = json!({"name": "w", "definition": {"steps": []}});
    ok(&c, "GET", "/api/v1/workflows", &viewer, None, 200).await;
    ok(
        &c,
        "POST",
        "/api/v1/workflows",
        &viewer,
        Some(wf.clone()),
        403,
    )
    .await;
    let created = ok(&c, "POST", "/api/v1/workflows", &usr, Some(wf.clone()), 201).await;
    assert_eq!(
        created["owner_id"],
        json!(user_id),
        "owned by the session's user"
    );
    ok(&c, "GET", "/api/v1/users", &usr, None, 403).await;
    ok(&c, "GET", "/api/v1/audit", &usr, None, 403).await;
    ok(&c, "GET", "/api/v1/users", &admin, None, 200).await;
    ok(&c, "GET", "/api/v1/audit", &admin, None, 200).await;
    let me = ok(&c, "GET", "/api/v1/users/me", &admin, None, 200).await;
    assert_eq!(me["id"], json!(admin_id));

    // A role change applies to live sessions at once.
    ok(
        &c,
        "PATCH",
        &format!("/api/v1/users/{user_id}"),
        &admin,
        Some(json!({"role": "viewer"})),
        200,
    )
    .await;
    ok(&c, "POST", "/api/v1/workflows", &usr, Some(wf), 403).await;
    assert_eq!(
        ok(&c, "GET", "/api/v1/sessions/current", &usr, None, 200).await["role"],
        "viewer"
    );

    // A made-up token is not a session; API keys keep working beside sessions.
    assert_eq!(
        c.call(
            "GET",
            "/api/v1/workflows",
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
            None
        )
        .await
        .status,
        401
    );
    ok(&c, "GET", "/api/v1/workflows", &c.viewer, None, 200).await;
}

async fn signing_out_and_deleting_end_sessions(b: Arc<dyn Backend>) {
    let c = Client::new(b).await;
    let id = user(&c, "ada@x.io", "viewer").await;
    let first = token(&c, "ada@x.io").await;
    let second = token(&c, "ada@x.io").await;
    // A viewer may sign out (a DELETE).
    ok(&c, "DELETE", "/api/v1/sessions/current", &first, None, 204).await;
    ok(&c, "GET", "/api/v1/sessions/current", &first, None, 401).await;
    ok(&c, "DELETE", "/api/v1/sessions/current", &first, None, 401).await;
    ok(&c, "GET", "/api/v1/sessions/current", &second, None, 200).await;
    // An API key has no session to end.
    ok(&c, "DELETE", "/api/v1/sessions/current", &c.user, None, 404).await;

    ok(
        &c,
        "DELETE",
        &format!("/api/v1/users/{id}"),
        &c.admin,
        None,
        204,
    )
    .await;
    ok(&c, "GET", "/api/v1/sessions/current", &second, None, 401).await;
    ok(
        &c,
        "GET",
        &format!("/api/v1/users/{id}"),
        &c.admin,
        None,
        404,
    )
    .await;
    ok(
        &c,
        "DELETE",
        &format!("/api/v1/users/{id}"),
        &c.admin,
        None,
        404,
    )
    .await;
}

async fn users_change_themselves_and_admins_change_anyone(b: Arc<dyn Backend>) {
    let c = Client::new(b).await;
    let ada = user(&c, "ada@x.io", "user").await;
    let bob = user(&c, "bob@x.io", "viewer").await;
    let ada_t = token(&c, "ada@x.io").await;
    let ada_other = token(&c, "ada@x.io").await;
    let bob_t = token(&c, "bob@x.io").await;
    let me = format!("/api/v1/users/{ada}");

    let u = ok(
        &c,
        "PATCH",
        &me,
        &ada_t,
        Some(json!({"display_name": "Ada"})),
        200,
    )
    .await;
    assert_eq!(u["display_name"], "Ada");
    let u = ok(
        &c,
        "PATCH",
        &me,
        &ada_t,
        Some(json!({"display_name": null})),
        200,
    )
    .await;
    assert!(u["display_name"].is_null());
    // A viewer changes their own name too.
    ok(
        &c,
        "PATCH",
        &format!("/api/v1/users/{bob}"),
        &bob_t,
        Some(json!({"display_name": "B"})),
        200,
    )
    .await;
    // Not someone else, not one's role or status, not read-only or unknown fields.
    ok(
        &c,
        "PATCH",
        &format!("/api/v1/users/{bob}"),
        &ada_t,
        Some(json!({"display_name": "x"})),
        404,
    )
    .await;
    let r = c
        .call("PATCH", &me, &ada_t, Some(json!({"role": "admin"})))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body["field"].clone()),
        (403, json!("role"))
    );
    ok(
        &c,
        "PATCH",
        &me,
        &ada_t,
        Some(json!({"status": "inactive"})),
        403,
    )
    .await;
    for field in [
        "email",
        "id",
        "created_at",
        "failed_login_count",
        "password_hash",
    ] {
        let r = c
            .call("PATCH", &me, &ada_t, Some(json!({field: "x"})))
            .await;
        assert_eq!(
            (r.status.as_u16(), r.body["field"].as_str()),
            (422, Some(field)),
            "{field}"
        );
    }
    let r = c
        .call("PATCH", &me, &c.admin, Some(json!({"role": "boss"})))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body["field"].as_str()),
        (422, Some("role"))
    );
    ok(
        &c,
        "PATCH",
        &me,
        &c.admin,
        Some(json!({"display_name": "x".repeat(201)})),
        422,
    )
    .await;

    // One's own password needs the current one.
    let r = c
        .call(
            "PATCH",
            &me,
            &ada_t,
            Some(json!({"password": "a new password"})),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body["field"].as_str()),
        (422, Some("current_password"))
    );
    let wrong = json!({"password": "a new password", "current_password": "nope nope"});
    let r = c.call("PATCH", &me, &ada_t, Some(wrong)).await;
    assert_eq!(
        (r.status.as_u16(), r.body["field"].as_str()),
        (422, Some("current_password"))
    );
    let short = json!({"password": "short", "current_password": PASSWORD});
    let r = c.call("PATCH", &me, &ada_t, Some(short)).await;
    assert_eq!(
        (r.status.as_u16(), r.body["field"].as_str()),
        (422, Some("password"))
    );
    let good = json!({"password": "a new password", "current_password": PASSWORD});
    ok(&c, "PATCH", &me, &ada_t, Some(good), 200).await;
    assert_eq!(sign_in(&c, "ada@x.io", PASSWORD).await.0, 401);
    assert_eq!(sign_in(&c, "ada@x.io", "a new password").await.0, 201);
    // The session that changed it stays; the other one ended.
    ok(&c, "GET", "/api/v1/sessions/current", &ada_t, None, 200).await;
    ok(&c, "GET", "/api/v1/sessions/current", &ada_other, None, 401).await;

    // An admin sets anyone's role, status and password.
    let u = ok(
        &c,
        "PATCH",
        &format!("/api/v1/users/{bob}"),
        &c.admin,
        Some(json!({"role": "user", "password": "set by the admin"})),
        200,
    )
    .await;
    assert_eq!(u["role"], "user");
    assert_eq!(sign_in(&c, "bob@x.io", "set by the admin").await.0, 201);
    ok(&c, "GET", "/api/v1/sessions/current", &bob_t, None, 401).await;
    // Deleting is for admins.
    ok(&c, "DELETE", &me, &ada_t, None, 403).await;
}

async fn the_last_admin_stays(b: Arc<dyn Backend>) {
    let c = Client::new(b).await;
    let first = user(&c, "first@x.io", "admin").await;
    let t = token(&c, "first@x.io").await;
    let path = format!("/api/v1/users/{first}");
    let r = c
        .call("PATCH", &path, &t, Some(json!({"role": "user"})))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body["field"].as_str()),
        (409, Some("role"))
    );
    let r = c
        .call("PATCH", &path, &t, Some(json!({"status": "inactive"})))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body["field"].as_str()),
        (409, Some("status"))
    );
    ok(&c, "DELETE", &path, &t, None, 409).await;
    // Nothing changed.
    let u = ok(&c, "GET", &path, &t, None, 200).await;
    assert_eq!(
        (u["role"].as_str(), u["status"].as_str()),
        (Some("admin"), Some("active"))
    );

    // With a second admin, the first may go.
    let second = user(&c, "second@x.io", "admin").await;
    ok(&c, "DELETE", &path, &t, None, 204).await;
    ok(
        &c,
        "DELETE",
        &format!("/api/v1/users/{second}"),
        &c.admin,
        None,
        409,
    )
    .await;
}

async fn teams_and_notifications(b: Arc<dyn Backend>) {
    let c = Client::new(b.clone()).await;
    let ada = user(&c, "ada@x.io", "user").await;
    let bob = user(&c, "bob@x.io", "user").await;
    let ada_t = token(&c, "ada@x.io").await;
    let bob_t = token(&c, "bob@x.io").await;

    let team = ok(
        &c,
        "POST",
        "/api/v1/teams",
        &c.admin,
        Some(json!({"name": "core"})),
        201,
    )
    .await;
    let tid = team["id"].as_str().unwrap();
    let members = format!("/api/v1/teams/{tid}/members");
    ok(
        &c,
        "POST",
        &members,
        &c.admin,
        Some(json!({"user_id": ada})),
        201,
    )
    .await;
    let m = ok(
        &c,
        "PATCH",
        &format!("{members}/{ada}"),
        &c.admin,
        Some(json!({"role": "owner"})),
        200,
    )
    .await;
    assert_eq!(m["role"], "owner");
    ok(
        &c,
        "PATCH",
        &format!("{members}/{ada}"),
        &c.admin,
        Some(json!({"role": "chief"})),
        422,
    )
    .await;
    ok(
        &c,
        "PATCH",
        &format!("{members}/{ada}"),
        &ada_t,
        Some(json!({"role": "member"})),
        403,
    )
    .await;
    ok(
        &c,
        "PATCH",
        &format!("{members}/{bob}"),
        &c.admin,
        Some(json!({"role": "member"})),
        404,
    )
    .await;
    ok(
        &c,
        "DELETE",
        &format!("{members}/{bob}"),
        &c.admin,
        None,
        404,
    )
    .await;
    ok(&c, "GET", &members, &ada_t, None, 200).await;
    ok(
        &c,
        "DELETE",
        &format!("{members}/{ada}"),
        &c.admin,
        None,
        204,
    )
    .await;
    ok(&c, "GET", &members, &ada_t, None, 404).await;
    ok(
        &c,
        "DELETE",
        &format!("/api/v1/teams/{tid}"),
        &ada_t,
        None,
        403,
    )
    .await;
    ok(
        &c,
        "DELETE",
        &format!("/api/v1/teams/{tid}"),
        &c.admin,
        None,
        204,
    )
    .await;
    ok(
        &c,
        "DELETE",
        &format!("/api/v1/teams/{tid}"),
        &c.admin,
        None,
        404,
    )
    .await;
    ok(&c, "GET", &members, &c.admin, None, 404).await;

    let mut tx = b.begin().await.unwrap();
    let mut ids = Vec::new();
    for title in ["one", "two"] {
        let n = tx
            .create_notification(NewNotification {
                user_id: ada.parse().unwrap(),
                kind: flowstore_core::model::identity_access::NotificationType::Info,
                title: title.into(),
                message: None,
                data: None,
            })
            .await
            .unwrap();
        ids.push(n.id.to_string());
    }
    tx.commit().await.unwrap();
    let count = "/api/v1/notifications/unread-count";
    assert_eq!(
        ok(&c, "GET", count, &ada_t, None, 200).await,
        json!({"unread": 2})
    );
    assert_eq!(
        ok(&c, "GET", count, &bob_t, None, 200).await,
        json!({"unread": 0})
    );
    ok(&c, "GET", count, &c.user, None, 403).await; // a key of no user
    ok(
        &c,
        "POST",
        &format!("/api/v1/notifications/{}/read", ids[0]),
        &bob_t,
        None,
        404,
    )
    .await;
    ok(
        &c,
        "POST",
        &format!("/api/v1/notifications/{}/read", ids[0]),
        &ada_t,
        None,
        200,
    )
    .await;
    assert_eq!(ok(&c, "GET", count, &ada_t, None, 200).await["unread"], 1);
    ok(
        &c,
        "DELETE",
        &format!("/api/v1/notifications/{}", ids[1]),
        &bob_t,
        None,
        404,
    )
    .await;
    ok(
        &c,
        "DELETE",
        &format!("/api/v1/notifications/{}", ids[1]),
        &ada_t,
        None,
        204,
    )
    .await;
    ok(
        &c,
        "DELETE",
        &format!("/api/v1/notifications/{}", ids[1]),
        &ada_t,
        None,
        404,
    )
    .await;
    assert_eq!(ok(&c, "GET", count, &ada_t, None, 200).await["unread"], 0);
    let list = ok(&c, "GET", "/api/v1/notifications", &ada_t, None, 200).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

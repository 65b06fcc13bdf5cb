//! Signing in and out, session tokens as credentials (per role, ending when the
//! account is switched off or deleted, but not when its sign-in is throttled: see
//! `signin.rs` for the throttles), and the people routes that go with
//! them: a user changing themself, an admin changing or deleting anyone but the last
//! admin, teams and notifications. On SQLite and PostgreSQL.

use std::sync::Arc;

use flowstore_core::model::identity_access::NewNotification;
use flowstore_core::Backend;
use flowstore_testkit::fixtures::PASSWORD;
use flowstore_testkit::{both_backends, requests, TestApp};
use serde_json::{json, Value};

both_backends!(
    signing_in_right_wrong_unknown_throttled_and_disabled,
    sessions_act_with_their_users_role,
    signing_out_and_deleting_end_sessions,
    users_change_themselves_and_admins_change_anyone,
    the_last_admin_stays,
    teams_and_notifications,
);

/// Signs in: (status, body, Retry-After).
async fn sign_in(c: &TestApp, email: &str, password: &str) -> (u16, Value, Option<String>) {
    let a = c.sign_in_from(email, password, None).await;
    let retry = a.header("retry-after").map(str::to_string);
    (a.code(), a.body, retry)
}

async fn signing_in_right_wrong_unknown_throttled_and_disabled(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    let id = c.password_user("ada@x.io", "user").await;

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
    let r = c.by(&session_token).current_session().await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The count is shown to admins.
    let ada = c.admin().get_user(&id).await.want(200);
    assert_eq!(ada["failed_login_count"], 5);
    assert!(ada["locked_until"].is_string(), "{ada}");

    // An account without a password matches none.
    c.admin()
        .create_user(json!({"email": "nopw@x.io"}))
        .await
        .want(201);
    let (status, nopw_body, _) = sign_in(&c, "nopw@x.io", PASSWORD).await;
    assert_eq!((status, &nopw_body), (401, &wrong_body));

    // A switched-off account: the right password is refused with 403, a wrong one
    // is just wrong.
    c.password_user("bob@x.io", "user").await;
    let bob = c.session_token("bob@x.io").await;
    let bob_id = c.by(&bob).current_session().await.want(200)["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Bob's API key works while he is active (used once so that it is cached).
    let bob_key = c.user_api_key(&bob_id, "bob's worker").await;
    requests!(c;
        GET "/api/v1/workflows" by bob_key => 200;
        PATCH "/api/v1/users/{bob_id}" with {"status": "suspended"} by c.admin => 200;
    );
    // Switching a user off switches off their API keys at once, cache or not.
    let r = c.by(&bob_key).list_workflows().await;
    assert_eq!(r.status, 401, "{}", r.body);
    let (status, body, _) = sign_in(&c, "bob@x.io", PASSWORD).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(sign_in(&c, "bob@x.io", "wrong").await.0, 401);
    assert_eq!(c.by(&bob).current_session().await.status, 401);
    // Switched on again, the old session stays ended (it was revoked); a new one works.
    c.admin()
        .update_user(&bob_id, json!({"status": "active"}))
        .await
        .want(200);
    assert_eq!(c.by(&bob).current_session().await.status, 401);
    c.session_token("bob@x.io").await;
    // His key was never revoked: it works again.
    c.by(&bob_key).list_workflows().await.want(200);
}

async fn sessions_act_with_their_users_role(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    let admin_id = c.password_user("admin@x.io", "admin").await;
    let user_id = c.password_user("user@x.io", "user").await;
    c.password_user("viewer@x.io", "viewer").await;
    let admin = c.session_token("admin@x.io").await;
    let usr = c.session_token("user@x.io").await;
    let viewer = c.session_token("viewer@x.io").await;

    let me = c.by(&usr).current_session().await.want(200);
    assert_eq!(me["credential"], "session");
    assert_eq!(me["role"], "user");
    assert_eq!(me["user"]["id"], json!(user_id));
    assert!(me["session"]["id"].is_string());
    assert!(me["api_key"].is_null());
    let me = c.user().current_session().await.want(200);
    assert_eq!(
        (me["credential"].as_str(), me["user"].is_null()),
        (Some("api_key"), true)
    );

    let wf = json!({"name": "w", "definition": {"steps": []}});
    requests!(c;
        GET "/api/v1/workflows" by viewer => 200;
        POST "/api/v1/workflows" with (wf.clone()) by viewer => 403;
    );
    let created = c.by(&usr).create_workflow(wf.clone()).await.want(201);
    assert_eq!(
        created["owner_id"],
        json!(user_id),
        "owned by the session's user"
    );
    requests!(c;
        GET "/api/v1/users" by usr => 403;
        GET "/api/v1/audit" by usr => 403;
        GET "/api/v1/users" by admin => 200;
        GET "/api/v1/audit" by admin => 200;
    );
    let me = c.by(&admin).me().await.want(200);
    assert_eq!(me["id"], json!(admin_id));

    // A role change applies to live sessions at once.
    requests!(c;
        PATCH "/api/v1/users/{user_id}" with {"role": "viewer"} by admin => 200;
        POST "/api/v1/workflows" with (wf) by usr => 403;
    );
    assert_eq!(
        c.by(&usr).current_session().await.want(200)["role"],
        "viewer"
    );

    // A made-up token is not a session; API keys keep working beside sessions.
    assert_eq!(
        c.by("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
            .list_workflows()
            .await
            .status,
        401
    );
    c.viewer().list_workflows().await.want(200);
}

async fn signing_out_and_deleting_end_sessions(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    let id = c.password_user("ada@x.io", "viewer").await;
    let first = c.session_token("ada@x.io").await;
    let second = c.session_token("ada@x.io").await;
    // A viewer may sign out (a DELETE).
    requests!(c;
        DELETE "/api/v1/sessions/current" by first => 204;
        GET "/api/v1/sessions/current" by first => 401;
        DELETE "/api/v1/sessions/current" by first => 401;
        GET "/api/v1/sessions/current" by second => 200;
    );
    // An API key has no session to end.
    c.user().sign_out().await.want(404);

    requests!(c;
        DELETE "/api/v1/users/{id}" by c.admin => 204;
        GET "/api/v1/sessions/current" by second => 401;
        GET "/api/v1/users/{id}" by c.admin => 404;
        DELETE "/api/v1/users/{id}" by c.admin => 404;
    );
}

async fn users_change_themselves_and_admins_change_anyone(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    let ada = c.password_user("ada@x.io", "user").await;
    let bob = c.password_user("bob@x.io", "viewer").await;
    let ada_t = c.session_token("ada@x.io").await;
    let ada_other = c.session_token("ada@x.io").await;
    let bob_t = c.session_token("bob@x.io").await;
    let me = format!("/api/v1/users/{ada}");

    let u = c
        .by(&ada_t)
        .patch(&me, json!({"display_name": "Ada"}))
        .await
        .want(200);
    assert_eq!(u["display_name"], "Ada");
    let u = c
        .by(&ada_t)
        .patch(&me, json!({"display_name": null}))
        .await
        .want(200);
    assert!(u["display_name"].is_null());
    // A viewer changes their own name too.
    c.by(&bob_t)
        .update_user(&bob, json!({"display_name": "B"}))
        .await
        .want(200);
    // Not someone else, not one's role or status, not read-only or unknown fields.
    c.by(&ada_t)
        .update_user(&bob, json!({"display_name": "x"}))
        .await
        .want(404);
    let r = c.by(&ada_t).patch(&me, json!({"role": "admin"})).await;
    assert_eq!(
        (r.status.as_u16(), r.body["field"].clone()),
        (403, json!("role"))
    );
    c.by(&ada_t)
        .patch(&me, json!({"status": "inactive"}))
        .await
        .want(403);
    for field in [
        "email",
        "id",
        "created_at",
        "failed_login_count",
        "password_hash",
    ] {
        let r = c.by(&ada_t).patch(&me, json!({field: "x"})).await;
        assert_eq!(
            (r.status.as_u16(), r.body["field"].as_str()),
            (422, Some(field)),
            "{field}"
        );
    }
    let r = c.admin().patch(&me, json!({"role": "boss"})).await;
    r.want_field(422, "role");
    c.admin()
        .patch(&me, json!({"display_name": "x".repeat(201)}))
        .await
        .want(422);

    // One's own password needs the current one.
    let r = c
        .by(&ada_t)
        .patch(&me, json!({"password": "a new password"}))
        .await;
    r.want_field(422, "current_password");
    let wrong = json!({"password": "a new password", "current_password": "nope nope"});
    let r = c.by(&ada_t).patch(&me, wrong).await;
    r.want_field(422, "current_password");
    let short = json!({"password": "short", "current_password": PASSWORD});
    let r = c.by(&ada_t).patch(&me, short).await;
    r.want_field(422, "password");
    let good = json!({"password": "a new password", "current_password": PASSWORD});
    c.by(&ada_t).patch(&me, good).await.want(200);
    assert_eq!(sign_in(&c, "ada@x.io", PASSWORD).await.0, 401);
    assert_eq!(sign_in(&c, "ada@x.io", "a new password").await.0, 201);
    // The session that changed it stays; the other one ended.
    requests!(c;
        GET "/api/v1/sessions/current" by ada_t => 200;
        GET "/api/v1/sessions/current" by ada_other => 401;
    );

    // An admin sets anyone's role, status and password.
    let u = c
        .admin()
        .update_user(
            &bob,
            json!({"role": "user", "password": "set by the admin"}),
        )
        .await
        .want(200);
    assert_eq!(u["role"], "user");
    assert_eq!(sign_in(&c, "bob@x.io", "set by the admin").await.0, 201);
    c.by(&bob_t).current_session().await.want(401);
    // Deleting is for admins.
    c.by(&ada_t).delete(&me).await.want(403);
}

async fn the_last_admin_stays(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    let first = c.password_user("first@x.io", "admin").await;
    let t = c.session_token("first@x.io").await;
    let path = format!("/api/v1/users/{first}");
    let r = c.by(&t).patch(&path, json!({"role": "user"})).await;
    r.want_field(409, "role");
    let r = c.by(&t).patch(&path, json!({"status": "inactive"})).await;
    r.want_field(409, "status");
    c.by(&t).delete(&path).await.want(409);
    // Nothing changed.
    let u = c.by(&t).get(&path).await.want(200);
    assert_eq!(
        (u["role"].as_str(), u["status"].as_str()),
        (Some("admin"), Some("active"))
    );

    // With a second admin, the first may go.
    let second = c.password_user("second@x.io", "admin").await;
    c.by(&t).delete(&path).await.want(204);
    c.admin().delete_user(&second).await.want(409);
}

async fn teams_and_notifications(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let ada = c.password_user("ada@x.io", "user").await;
    let bob = c.password_user("bob@x.io", "user").await;
    let ada_t = c.session_token("ada@x.io").await;
    let bob_t = c.session_token("bob@x.io").await;

    let tid = c.team("core").await;
    let members = format!("/api/v1/teams/{tid}/members");
    c.admin()
        .post(&members, json!({"user_id": ada}))
        .await
        .want(201);
    let m = c
        .admin()
        .patch(&format!("{members}/{ada}"), json!({"role": "owner"}))
        .await
        .want(200);
    assert_eq!(m["role"], "owner");
    requests!(c;
        PATCH "{members}/{ada}" with {"role": "chief"} by c.admin => 422;
        PATCH "{members}/{ada}" with {"role": "member"} by ada_t => 403;
        PATCH "{members}/{bob}" with {"role": "member"} by c.admin => 404;
        DELETE "{members}/{bob}" by c.admin => 404;
    );
    c.by(&ada_t).get(&members).await.want(200);
    c.admin()
        .delete(&format!("{members}/{ada}"))
        .await
        .want(204);
    c.by(&ada_t).get(&members).await.want(404);
    requests!(c;
        DELETE "/api/v1/teams/{tid}" by ada_t => 403;
        DELETE "/api/v1/teams/{tid}" by c.admin => 204;
        DELETE "/api/v1/teams/{tid}" by c.admin => 404;
    );
    c.admin().get(&members).await.want(404);

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
        c.by(&ada_t).get(count).await.want(200),
        json!({"unread": 2})
    );
    assert_eq!(
        c.by(&bob_t).get(count).await.want(200),
        json!({"unread": 0})
    );
    c.user().get(count).await.want(403); // a key of no user
    let (first, second) = (&ids[0], &ids[1]);
    requests!(c;
        POST "/api/v1/notifications/{first}/read" by bob_t => 404;
        POST "/api/v1/notifications/{first}/read" by ada_t => 200;
    );
    assert_eq!(c.by(&ada_t).get(count).await.want(200)["unread"], 1);
    requests!(c;
        DELETE "/api/v1/notifications/{second}" by bob_t => 404;
        DELETE "/api/v1/notifications/{second}" by ada_t => 204;
        DELETE "/api/v1/notifications/{second}" by ada_t => 404;
    );
    assert_eq!(c.by(&ada_t).get(count).await.want(200)["unread"], 0);
    let list = c.by(&ada_t).list_notifications().await.want(200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

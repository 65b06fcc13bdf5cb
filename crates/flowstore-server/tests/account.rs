//! Password reset and email verification over HTTP, with mail through a small SMTP
//! receiver of the test's own; the password policy wherever a password is set. On
//! SQLite and PostgreSQL.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use flowstore_core::ids::UserId;
use flowstore_core::Backend;
use flowstore_server::{AppState, MailConfig, ServerConfig};
use flowstore_testkit::fixtures::PASSWORD;
use flowstore_testkit::smtp::SmtpSink;
use flowstore_testkit::{both_backends, TestApp};
use serde_json::{json, Value};

both_backends!(
    a_password_is_reset_by_mail_once,
    reset_requests_tell_no_one_which_accounts_exist,
    an_email_address_is_confirmed_by_mail,
    the_password_policy_applies_wherever_a_password_is_set,
);

const NEW_PASSWORD: &str = "violet tractor lighthouse";

fn mail_to(url: String) -> Option<MailConfig> {
    Some(MailConfig {
        smtp_url: url,
        from: "Flowstore <flowstore@example.com>".into(),
        public_url: "https://flowstore.example.com".into(),
    })
}

async fn app_with_mail(b: Arc<dyn Backend>, smtp_url: Option<String>) -> TestApp {
    let config = ServerConfig {
        mail: smtp_url.and_then(mail_to),
        ..ServerConfig::default()
    };
    TestApp::with_state(AppState::with_config(b.clone(), config), b).await
}

async fn request_reset(c: &TestApp, email: &str) -> Value {
    c.anonymous()
        .post("/api/v1/password-resets", json!({ "email": email }))
        .await
        .want(202)
}

async fn a_password_is_reset_by_mail_once(b: Arc<dyn Backend>) {
    let mut smtp = SmtpSink::start().await;
    let c = app_with_mail(b.clone(), Some(smtp.url())).await;
    let ada = c.password_user("ada@x.io", "user").await;
    let session = c.session_token("ada@x.io").await;
    let key = c.user_api_key(&ada, "ada's key").await;

    request_reset(&c, "Ada@X.io").await;
    let mail = smtp.next().await;
    assert_eq!(mail.to, ["ada@x.io"]);
    assert_eq!(mail.from, "flowstore@example.com");
    assert!(
        mail.text()
            .contains("https://flowstore.example.com/#/reset-password?token="),
        "{}",
        mail.text()
    );
    let token = mail.token();
    assert_eq!(token.len(), 43, "{token}");

    // A wrong token is refused, and so is a password the policy refuses (the token
    // stays good).
    let confirm = |token: &str, password: &str| json!({"token": token, "password": password});
    let a = c.anonymous();
    a.post(
        "/api/v1/password-resets/confirm",
        confirm("not-the-token", NEW_PASSWORD),
    )
    .await
    .want_field(422, "token");
    a.post(
        "/api/v1/password-resets/confirm",
        confirm(&token, "password123"),
    )
    .await
    .want_field(422, "password");
    a.post(
        "/api/v1/password-resets/confirm",
        confirm(&token, NEW_PASSWORD),
    )
    .await
    .want(204);
    // Once only.
    a.post(
        "/api/v1/password-resets/confirm",
        confirm(&token, "another fine passphrase"),
    )
    .await
    .want_field(422, "token");

    // The old password and every session are gone; API keys keep working.
    assert_eq!(c.sign_in_from("ada@x.io", PASSWORD, None).await.code(), 401);
    assert_eq!(
        c.sign_in_from("ada@x.io", NEW_PASSWORD, None).await.code(),
        201
    );
    c.by(&session)
        .get("/api/v1/sessions/current")
        .await
        .want(401);
    c.by(&key).get("/api/v1/users/me").await.want(200);
    // Ada is told, and the audit log has both steps.
    let notes = c.by(&key).list_notifications().await.want(200);
    let changed: Vec<&Value> = notes["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["data"]["reason"] == "password_changed")
        .collect();
    assert_eq!(changed.len(), 1, "{notes}");
    assert_eq!(changed[0]["type"], "security_alert");
    c.audit_entry("user.password_reset_request", &ada).await;
    let done = c.audit_entry("user.password_reset", &ada).await;
    assert_eq!(done["actor_id"], ada.as_str());

    // A token past its hour is refused.
    let id = UserId(ada.parse().unwrap());
    let mut tx = b.begin().await.unwrap();
    let old = tx
        .issue_reset_token(id, flowstore_core::time::now() - TimeDelta::minutes(61))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    a.post(
        "/api/v1/password-resets/confirm",
        confirm(&old, "yet another fine passphrase"),
    )
    .await
    .want_field(422, "token");
    assert_eq!(
        c.sign_in_from("ada@x.io", NEW_PASSWORD, None).await.code(),
        201,
        "nothing changed"
    );
}

async fn reset_requests_tell_no_one_which_accounts_exist(b: Arc<dyn Backend>) {
    // Mail that works: only the active account gets a message, and every answer is
    // the same.
    let mut smtp = SmtpSink::start().await;
    let c = app_with_mail(b.clone(), Some(smtp.url())).await;
    c.password_user("ada@x.io", "user").await;
    let off = c.password_user("off@x.io", "user").await;
    c.admin()
        .patch(
            &format!("/api/v1/users/{off}"),
            json!({"status": "inactive"}),
        )
        .await
        .want(200);
    let known = request_reset(&c, "ada@x.io").await;
    let unknown = request_reset(&c, "nobody@x.io").await;
    let inactive = request_reset(&c, "off@x.io").await;
    assert_eq!(known, unknown);
    assert_eq!(known, inactive);
    assert_eq!(smtp.next().await.to, ["ada@x.io"]);
    assert!(
        smtp.next_within(Duration::from_millis(500)).await.is_none(),
        "no message for an unknown or inactive account"
    );
    // Three messages at once, then one a minute, per address: the answer stays.
    for _ in 0..3 {
        assert_eq!(request_reset(&c, "ada@x.io").await, known);
    }
    for _ in 0..2 {
        assert_eq!(smtp.next().await.to, ["ada@x.io"]);
    }
    assert!(
        smtp.next_within(Duration::from_millis(500)).await.is_none(),
        "the fourth request within a minute sends nothing"
    );
    // Not an email address at all: 422, whatever the accounts.
    c.anonymous()
        .post(
            "/api/v1/password-resets",
            json!({"email": "not an address"}),
        )
        .await
        .want_field(422, "email");

    // A mail server that refuses: the same answer, the failure counted.
    let refusing = SmtpSink::refusing().await;
    let c = app_with_mail(b.clone(), Some(refusing.url())).await;
    assert_eq!(request_reset(&c, "ada@x.io").await, unknown);
    let failed = &c.state.metrics().mail_failed;
    for _ in 0..100 {
        if failed.load(Ordering::Relaxed) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(failed.load(Ordering::Relaxed), 1);
    let metrics = c.anonymous().get("/metrics").await;
    assert!(
        metrics
            .body
            .as_str()
            .unwrap()
            .contains("flowstore_mail_failed_total 1"),
        "{}",
        metrics.body
    );

    // No mail configured: the same answer again.
    let c = app_with_mail(b, None).await;
    assert_eq!(request_reset(&c, "ada@x.io").await, unknown);
    assert_eq!(request_reset(&c, "nobody@x.io").await, unknown);
}

async fn an_email_address_is_confirmed_by_mail(b: Arc<dyn Backend>) {
    let mut smtp = SmtpSink::start().await;
    let c = app_with_mail(b.clone(), Some(smtp.url())).await;
    let ada = c.password_user("ada@x.io", "user").await;
    let session = c.session_token("ada@x.io").await;
    let me = c.by(&session);
    assert_eq!(
        me.get("/api/v1/users/me").await.want(200)["email_verified_at"],
        Value::Null
    );
    me.post_empty("/api/v1/users/me/email-verification")
        .await
        .want(202);
    let mail = smtp.next().await;
    assert_eq!(mail.to, ["ada@x.io"]);
    assert!(
        mail.text().contains("/#/verify-email?token="),
        "{}",
        mail.data
    );
    let token = mail.token();
    let confirm = |token: &str| json!({ "token": token });
    let a = c.anonymous();
    a.post("/api/v1/email-verifications/confirm", confirm("1-nope"))
        .await
        .want_field(422, "token");
    a.post("/api/v1/email-verifications/confirm", confirm(&token))
        .await
        .want(204);
    a.post("/api/v1/email-verifications/confirm", confirm(&token))
        .await
        .want_field(422, "token");
    let after = me.get("/api/v1/users/me").await.want(200);
    assert!(after["email_verified_at"].is_string(), "{after}");
    c.audit_entry("user.verification_request", &ada).await;
    c.audit_entry("user.email_verified", &ada).await;
    // Confirmed already: nothing more to ask for.
    me.post_empty("/api/v1/users/me/email-verification")
        .await
        .want_field(409, "email_verified_at");
    // A key that acts for no user has no address to confirm.
    c.admin()
        .post_empty("/api/v1/users/me/email-verification")
        .await
        .want(403);

    // A user created pending verification is mailed the link at once; confirming
    // it activates the account.
    let new = json!({"email": "cy@x.io", "password": PASSWORD, "status": "pending_verification"});
    let cy = c.admin().create_user(new).await.want_id(201);
    assert_eq!(c.sign_in_from("cy@x.io", PASSWORD, None).await.code(), 403);
    let mail = smtp.next().await;
    assert_eq!(mail.to, ["cy@x.io"]);
    a.post(
        "/api/v1/email-verifications/confirm",
        confirm(&mail.token()),
    )
    .await
    .want(204);
    let cy = c
        .admin()
        .get(&format!("/api/v1/users/{cy}"))
        .await
        .want(200);
    assert_eq!(cy["status"], "active");
    assert_eq!(c.sign_in_from("cy@x.io", PASSWORD, None).await.code(), 201);

    // A token past its day is refused.
    let bob = c.password_user("bob@x.io", "user").await;
    let mut tx = b.begin().await.unwrap();
    let old = tx
        .issue_verification_token(
            UserId(bob.parse().unwrap()),
            flowstore_core::time::now() - TimeDelta::hours(25),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    a.post("/api/v1/email-verifications/confirm", confirm(&old))
        .await
        .want_field(422, "token");
}

async fn the_password_policy_applies_wherever_a_password_is_set(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    let admin = c.admin();
    // Creating a user: too short, common, too easy to guess.
    for (password, reason) in [
        ("short", "at least 8 characters"),
        ("Password1", "most common passwords"),
        ("iloveyou2", "most common passwords"),
        ("aaaaaaaaaaaa", "too easy to guess"),
    ] {
        let r = admin
            .create_user(json!({"email": "new@x.io", "password": password}))
            .await;
        r.want_field(422, "password");
        assert!(
            r.body["detail"].as_str().unwrap().contains(reason),
            "{password}: {}",
            r.body
        );
    }
    let ada = c.password_user("ada@x.io", "user").await;
    // Changing one's own password, and an admin setting one.
    let session = c.session_token("ada@x.io").await;
    let path = format!("/api/v1/users/{ada}");
    c.by(&session)
        .patch(
            &path,
            json!({"password": "qwerty123", "current_password": PASSWORD}),
        )
        .await
        .want_field(422, "password");
    admin
        .patch(&path, json!({"password": "abcdefgh1234"}))
        .await
        .want_field(422, "password");
    c.by(&session)
        .patch(
            &path,
            json!({"password": NEW_PASSWORD, "current_password": PASSWORD}),
        )
        .await
        .want(200);
}

//! Sign-in throttling: per email address (existing or not, answered alike), per client
//! address, without ending the sessions and API keys of a throttled account; an
//! admin's unlock; and the audit entries of each. On SQLite and PostgreSQL.

use std::sync::Arc;

use flowstore_core::Backend;
use flowstore_server::{serve, AppState, ServerConfig, SignInLimits};
use flowstore_testkit::fixtures::PASSWORD;
use flowstore_testkit::{both_backends, TestApp};
use serde_json::{json, Value};

both_backends!(
    unknown_and_existing_emails_are_throttled_alike,
    a_throttled_account_keeps_its_sessions_and_keys,
    an_admin_unlock_lets_the_owner_in_at_once,
    only_admins_unlock,
    sign_in_is_limited_per_client_address,
    wrong_passwords_from_one_address_are_delayed,
    guessing_the_current_password_is_throttled_too,
    a_flood_over_tcp_is_cut_off_at_the_address_burst,
);

/// One answer to a sign-in: status, body and Retry-After.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    body: Value,
    retry: Option<u64>,
}

/// Signs in, from `from` when given (as a server with connection info would see it).
async fn sign_in(c: &TestApp, email: &str, password: &str, from: Option<&str>) -> Answer {
    let a = c.sign_in_from(email, password, from).await;
    Answer {
        status: a.code(),
        retry: a.header("retry-after").map(|v| v.parse().unwrap()),
        body: a.body,
    }
}

/// A client whose server has `limits`.
async fn client(b: Arc<dyn Backend>, limits: SignInLimits) -> TestApp {
    let cfg = ServerConfig {
        sign_in: limits,
        ..ServerConfig::default()
    };
    TestApp::with_config(b, cfg).await
}

/// Sends wrong passwords for `email` until it is throttled: the answers.
async fn throttle(c: &TestApp, email: &str) -> Vec<Answer> {
    let mut answers = Vec::new();
    for i in 0..7 {
        answers.push(sign_in(c, email, &format!("wrong password {i}"), None).await);
    }
    answers
}

/// The audit entries with `action`, newest first.
async fn audit(c: &TestApp, action: &str) -> Vec<Value> {
    let page = c
        .admin()
        .get(&format!("/api/v1/audit?action={action}"))
        .await
        .want(200);
    page["items"].as_array().unwrap().clone()
}

async fn unknown_and_existing_emails_are_throttled_alike(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    let id = c.password_user("ada@x.io", "admin").await;
    let real = throttle(&c, "ada@x.io").await;
    let unknown = throttle(&c, "ghost@x.io").await;
    // Five wrong passwords answer 401, then the throttle answers 429 with the time to
    // wait; an unknown email gets exactly the same answers (bodies included), so the
    // throttle does not tell which emails have accounts.
    let statuses: Vec<u16> = real.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429]);
    for (r, u) in real.iter().zip(&unknown) {
        assert_eq!((r.status, &r.body), (u.status, &u.body));
        assert_eq!(r.retry.is_some(), u.retry.is_some());
        if let (Some(r), Some(u)) = (r.retry, u.retry) {
            assert!((1..=30).contains(&r) && (1..=30).contains(&u), "{r} {u}");
        }
    }
    assert_eq!(real[5].body["field"], "email");
    // The right password waits its turn too.
    let right = sign_in(&c, "ada@x.io", PASSWORD, None).await;
    assert_eq!((right.status, &right.body), (429, &real[6].body));
    // Other accounts are untouched.
    c.password_user("bob@x.io", "user").await;
    c.session_token("bob@x.io").await;

    // The throttle engaging is written once for each email (not for every refused
    // attempt), besides each wrong password.
    let throttled = audit(&c, "session.throttled").await;
    assert_eq!(throttled.len(), 2, "{throttled:?}");
    let (ghost, ada) = (&throttled[0], &throttled[1]);
    assert_eq!(ada["entity_id"], json!(id));
    assert_eq!(ada["actor_type"], "system");
    assert_eq!(
        (
            ada["after"]["scope"].as_str(),
            ada["after"]["email"].as_str()
        ),
        (Some("account"), Some("ada@x.io"))
    );
    assert_eq!(ada["after"]["failures"], 5);
    assert!(ghost["entity_id"].is_null());
    assert_eq!(ghost["after"]["email"], "ghost@x.io");
    assert_eq!(audit(&c, "session.login_failed").await.len(), 10);
}

async fn a_throttled_account_keeps_its_sessions_and_keys(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    let id = c.password_user("ada@x.io", "user").await;
    let session = c.session_token("ada@x.io").await;
    let key = c.user_api_key(&id, "ada's worker").await;
    let answers = throttle(&c, "ada@x.io").await;
    assert_eq!(answers.last().unwrap().status, 429);
    // Strangers' wrong passwords do not sign the owner out.
    let me = c.by(&session).current_session().await.want(200);
    assert_eq!(me["user"]["id"], json!(id));
    assert!(me["user"]["locked_until"].is_string());
    c.by(&key).list_workflows().await.want(200);
    let wf = json!({"name": "w", "definition": {"steps": []}});
    c.by(&session).create_workflow(wf).await.want(201);
    // The owner is told, once for the throttle engaging, not for every refusal.
    let notes = c.by(&session).list_notifications().await.want(200);
    let alerts: Vec<&Value> = notes["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["data"]["reason"] == "sign_in_throttled")
        .collect();
    assert_eq!(alerts.len(), 1, "{notes}");
    assert_eq!(alerts[0]["type"], "security_alert");
    assert!(alerts[0]["data"]["until"].is_string(), "{notes}");
}

async fn an_admin_unlock_lets_the_owner_in_at_once(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    let id = c.password_user("ada@x.io", "admin").await;
    throttle(&c, "ada@x.io").await;
    assert_eq!(sign_in(&c, "ada@x.io", PASSWORD, None).await.status, 429);

    let path = format!("/api/v1/users/{id}/unlock");
    let u = c.admin().post_empty(&path).await.want(200);
    assert_eq!(u["failed_login_count"], 0);
    assert!(u["locked_until"].is_null());
    assert!(u.get("password_hash").is_none());
    let signed_in = sign_in(&c, "ada@x.io", PASSWORD, None).await;
    assert_eq!(signed_in.status, 201, "{}", signed_in.body);
    // Unlocking starts the count afresh: five more wrong passwords before a delay.
    for _ in 0..5 {
        assert_eq!(sign_in(&c, "ada@x.io", "wrong", None).await.status, 401);
    }
    assert_eq!(sign_in(&c, "ada@x.io", PASSWORD, None).await.status, 429);

    let entries = audit(&c, "user.unlock").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["entity_id"], json!(id));
    assert_eq!(entries[0]["before"]["failed_login_count"], 5);
    assert_eq!(entries[0]["after"]["failed_login_count"], 0);
    assert_eq!(entries[0]["actor_type"], "api_key");

    // An unknown user is 404.
    let nobody = format!(
        "/api/v1/users/{}/unlock",
        flowstore_core::ids::UserId::new()
    );
    c.admin().post_empty(&nobody).await.want(404);
    c.admin()
        .post_empty("/api/v1/users/nope/unlock")
        .await
        .want(404);
}

async fn only_admins_unlock(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    let id = c.password_user("ada@x.io", "user").await;
    c.password_user("vic@x.io", "viewer").await;
    let ada = c.session_token("ada@x.io").await;
    let vic = c.session_token("vic@x.io").await;
    throttle(&c, "ada@x.io").await;
    let path = format!("/api/v1/users/{id}/unlock");
    // Not even one's own account: whoever holds a session could otherwise lift the
    // throttle that protects the password.
    for k in [&ada, &vic, &c.user, &c.viewer] {
        c.by(k).post_empty(&path).await.want(403);
    }
    assert_eq!(sign_in(&c, "ada@x.io", PASSWORD, None).await.status, 429);
    assert!(audit(&c, "user.unlock").await.is_empty());
}

async fn sign_in_is_limited_per_client_address(b: Arc<dyn Backend>) {
    let limits = SignInLimits {
        address_burst: 3,
        address_per_minute: 0.1,
        ..SignInLimits::default()
    };
    let c = client(b, limits).await;
    c.password_user("ada@x.io", "user").await;
    // Every attempt counts, right or wrong, for any email.
    assert_eq!(
        sign_in(&c, "ada@x.io", PASSWORD, Some("10.0.0.1"))
            .await
            .status,
        201
    );
    assert_eq!(
        sign_in(&c, "a@x.io", "wrong", Some("10.0.0.1"))
            .await
            .status,
        401
    );
    assert_eq!(
        sign_in(&c, "b@x.io", "wrong", Some("10.0.0.1"))
            .await
            .status,
        401
    );
    let refused = sign_in(&c, "ada@x.io", PASSWORD, Some("10.0.0.1")).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(
        refused.body["type"],
        "https://flowstore.dev/problems/sign-in-throttled"
    );
    assert!(refused.body.get("field").is_none());
    assert!(refused.retry.is_some_and(|s| s >= 1), "{refused:?}");
    // Refused before any work: no audit entry for it.
    assert_eq!(audit(&c, "session.login_failed").await.len(), 2);
    // Other addresses, and the router called in process, are not affected.
    assert_eq!(
        sign_in(&c, "ada@x.io", PASSWORD, Some("10.0.0.2"))
            .await
            .status,
        201
    );
    assert_eq!(
        sign_in(&c, "ada@x.io", PASSWORD, Some("::1")).await.status,
        201
    );
    assert_eq!(sign_in(&c, "ada@x.io", PASSWORD, None).await.status, 201);
    // A session opened from an address notes it.
    let s = sign_in(&c, "ada@x.io", PASSWORD, Some("10.0.0.3")).await;
    assert_eq!(s.body["session"]["ip_address"], "10.0.0.3");
}

async fn wrong_passwords_from_one_address_are_delayed(b: Arc<dyn Backend>) {
    let limits = SignInLimits {
        address_free_failures: 3,
        ..SignInLimits::default()
    };
    let c = client(b, limits).await;
    c.password_user("ada@x.io", "user").await;
    // Wrong passwords for different emails (none of them throttled by itself) add up
    // for the address that sends them.
    for n in 0..3 {
        let email = format!("guess{n}@x.io");
        let a = sign_in(&c, &email, PASSWORD, Some("10.0.0.9")).await;
        assert_eq!(a.status, 401, "{}", a.body);
    }
    let refused = sign_in(&c, "ada@x.io", PASSWORD, Some("10.0.0.9")).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(
        refused.retry.is_some_and(|s| (1..=30).contains(&s)),
        "{refused:?}"
    );
    assert_eq!(
        sign_in(&c, "ada@x.io", PASSWORD, Some("10.0.0.8"))
            .await
            .status,
        201
    );
    let throttled = audit(&c, "session.throttled").await;
    assert_eq!(throttled.len(), 1, "{throttled:?}");
    assert_eq!(throttled[0]["entity_type"], "client_address");
    assert_eq!(throttled[0]["after"]["scope"], "address");
    assert_eq!(throttled[0]["after"]["ip_address"], "10.0.0.9");
    assert_eq!(throttled[0]["ip_address"], "10.0.0.9");
}

async fn guessing_the_current_password_is_throttled_too(b: Arc<dyn Backend>) {
    let c = TestApp::new(b).await;
    let id = c.password_user("ada@x.io", "user").await;
    let ada = c.session_token("ada@x.io").await;
    let me = format!("/api/v1/users/{id}");
    for n in 0..5 {
        let guess = json!({"password": "a new password", "current_password": format!("guess {n}")});
        let r = c.by(&ada).patch(&me, guess).await;
        assert_eq!(
            (r.status.as_u16(), r.body["field"].as_str()),
            (422, Some("current_password")),
            "{}",
            r.body
        );
    }
    let right = json!({"password": "a new password", "current_password": PASSWORD});
    let r = c.by(&ada).patch(&me, right.clone()).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.body["field"], "current_password");
    // Signing in is throttled as well: the guesses were at the same password.
    assert_eq!(sign_in(&c, "ada@x.io", PASSWORD, None).await.status, 429);
    assert_eq!(audit(&c, "session.throttled").await.len(), 1);
    // After an admin's unlock, the right password changes it, and the new one signs in.
    c.admin()
        .post_empty(&format!("{me}/unlock"))
        .await
        .want(200);
    c.by(&ada).patch(&me, right).await.want(200);
    assert_eq!(
        sign_in(&c, "ada@x.io", "a new password", None).await.status,
        201
    );
}

async fn a_flood_over_tcp_is_cut_off_at_the_address_burst(b: Arc<dyn Backend>) {
    // A real server sees the client's address on the connection: eight clients on one
    // address sending wrong passwords for ever-new emails get the address's burst of
    // password checks, then 429 before any work is done.
    let limits = SignInLimits {
        address_burst: 10,
        address_per_minute: 0.01,
        ..SignInLimits::default()
    };
    let cfg = ServerConfig {
        sign_in: limits,
        ..ServerConfig::default()
    };
    let state = AppState::with_config(b.clone(), cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/sessions", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let clients = (0..8).map(|client| {
        let (http, url) = (http.clone(), url.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for attempt in 0..5 {
                let body = json!({"email": format!("c{client}a{attempt}@x.io"), "password": "wrong password"});
                let r = http.post(&url).json(&body).send().await.unwrap();
                let retry = r.headers().get("retry-after").is_some();
                answers.push((r.status().as_u16(), retry));
            }
            answers
        })
    });
    let mut answers = Vec::new();
    for c in clients.collect::<Vec<_>>() {
        answers.extend(c.await.unwrap());
    }
    let checked = answers.iter().filter(|(s, _)| *s == 401).count();
    let refused = answers.iter().filter(|(s, r)| *s == 429 && *r).count();
    assert_eq!((checked, refused), (10, 30), "{answers:?}");

    // Only the checked attempts reached the database.
    let mut tx = b.begin_read().await.unwrap();
    let page = tx
        .list_audit(
            &flowstore_core::model::audit::AuditFilter {
                action: Some("session.login_failed".into()),
                ..Default::default()
            },
            &flowstore_core::PageRequest::first(100),
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 10);
    assert!(page
        .items
        .iter()
        .all(|e| e.ip_address.as_deref() == Some("127.0.0.1")));
    drop(tx);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

//! Credentials and webhooks over HTTP, on SQLite and PostgreSQL: success and
//! failure cases, secrets never in answers except the explicit reveal (and the
//! webhook secret once, at creation), per-object access (another user's object is
//! 404), unknown fields refused, keyset pages, deliveries and the test event.

use std::sync::Arc;

use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use flowstore_testkit::{both_backends, TestApp};
use serde_json::json;

both_backends!(
    credentials_over_http,
    an_expired_credential_is_not_revealed,
    webhooks_over_http
);

async fn credentials_over_http(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (ada_id, ada) = c.user_key(Role::User, "ada@example.com").await;
    let (_, bob) = c.user_key(Role::User, "bob@example.com").await;
    let (_, viewer) = c.user_key(Role::Viewer, "vic@example.com").await;

    let body = json!({"name": "registry", "type": "basic_auth",
        "data": {"user": "ci", "password": "hunter2-http"}, "description": "login"});
    let r = c.by(&ada).create_credential(body.clone()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(!r.body.to_string().contains("hunter2"), "{}", r.body);
    assert_eq!(r.body["owner_id"], ada_id);
    assert_eq!(r.body["type"], "basic_auth");
    let id = r.body["id"].as_str().unwrap().to_string();
    let one = format!("/api/v1/credentials/{id}");

    // Refusals: duplicate, unknown field, missing or bad fields, a key with no user.
    let r = c.by(&ada).create_credential(body.clone()).await;
    r.want_field(409, "name");
    let mut extra = body.clone();
    extra["owner_id"] = json!(ada_id);
    let r = c.by(&ada).create_credential(extra).await;
    assert_eq!(
        r.status, 422,
        "owner_id is not the client's to set: {}",
        r.body
    );
    let r = c
        .by(&ada)
        .create_credential(json!({"name": "x", "type": "jwt"}))
        .await;
    assert_eq!(r.status, 422);
    let r = c
        .by(&ada)
        .create_credential(json!({"name": "x", "type": "jwt", "data": null}))
        .await;
    r.want_field(422, "data");
    let r = c
        .by(&ada)
        .create_credential(json!({"name": "x", "type": "telepathy", "data": "s"}))
        .await;
    assert_eq!(r.status, 422);
    let r = c
        .user()
        .create_credential(json!({"name": "x", "type": "jwt", "data": "s"}))
        .await;
    assert_eq!(r.status, 403, "a key with no user owns nothing: {}", r.body);
    let r = c.by(&viewer).create_credential(body.clone()).await;
    assert_eq!(r.status, 403);

    // Reading: metadata only; the reveal gives the data to its owner and admins.
    let r = c.by(&ada).get(&one).await;
    assert_eq!(r.status, 200);
    assert!(!r.body.to_string().contains("hunter2"));
    let r = c.by(&ada).post_empty(&format!("{one}/reveal")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["password"], "hunter2-http");
    assert!(r.body["credential"]["last_used_at"].is_string());
    let r = c.admin().post_empty(&format!("{one}/reveal")).await;
    assert_eq!(r.status, 200);

    // Another user: the credential does not exist for them.
    for (method, path) in [
        ("GET", one.clone()),
        ("POST", format!("{one}/reveal")),
        ("DELETE", one.clone()),
    ] {
        let r = c.by(&bob).send(method, &path, None).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
    }
    let r = c.by(&bob).patch(&one, json!({"name": "mine"})).await;
    assert_eq!(r.status, 404);
    let r = c.by(&ada).get("/api/v1/credentials/not-a-uuid").await;
    assert_eq!(r.status, 404);

    // Lists: one's own; an admin everyone's or one user's; pages by cursor.
    for i in 0..3 {
        let r = c
            .by(&bob)
            .create_credential(json!({"name": format!("b{i}"), "type": "api_key", "data": "t"}))
            .await;
        assert_eq!(r.status, 201);
    }
    let r = c.by(&ada).list_credentials().await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = c
        .by(&bob)
        .get(&format!("/api/v1/credentials?owner_id={ada_id}"))
        .await;
    assert_eq!(r.status, 403);
    let r = c.admin().get("/api/v1/credentials?limit=2").await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    let next = r.body["next_cursor"].as_str().unwrap().to_string();
    let r = c
        .admin()
        .get(&format!("/api/v1/credentials?limit=2&cursor={next}"))
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    assert!(r.body["next_cursor"].is_null());
    let r = c
        .admin()
        .get(&format!(
            "/api/v1/credentials?owner_id={ada_id}&type=basic_auth"
        ))
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    for bad in ["?limit=100000", "?type=nope", "?owner_id=x", "?bogus=1"] {
        let r = c.admin().get(&format!("/api/v1/credentials{bad}")).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
    }
    assert!(!c
        .admin()
        .list_credentials()
        .await
        .body
        .to_string()
        .contains("hunter2"));

    // Changes: rename, rotate the data, refuse unknown fields; delete.
    let r = c
        .by(&ada)
        .patch(
            &one,
            json!({"data": {"password": "rotated"}, "description": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["rotated_at"].is_string() && r.body["description"].is_null());
    assert!(!r.body.to_string().contains("rotated\""));
    let r = c.by(&ada).post_empty(&format!("{one}/reveal")).await;
    assert_eq!(r.body["data"]["password"], "rotated");
    let r = c
        .by(&ada)
        .patch(&one, json!({"encryption_key_id": "x"}))
        .await;
    assert_eq!(r.status, 422);
    let r = c.by(&ada).patch(&one, json!({"name": "b0"})).await;
    assert_eq!(r.status, 200, "names are unique per owner: {}", r.body);
    let r = c.by(&ada).delete(&one).await;
    assert_eq!(r.status, 204);
    let r = c.by(&ada).get(&one).await;
    assert_eq!(r.status, 404);
}

async fn an_expired_credential_is_not_revealed(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (_, ada) = c.user_key(Role::User, "ada@example.com").await;
    let r = c.by(&ada).create_credential(json!({"name": "old", "type": "api_key", "data": "s3cret-expired", "expires_at": "2001-01-01T00:00:00Z"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let one = format!("/api/v1/credentials/{}", r.body["id"].as_str().unwrap());
    let reveal = format!("{one}/reveal");

    // Neither its owner nor an admin gets the data of an expired credential.
    for key in [&ada, &c.admin] {
        let r = c.by(key).post_empty(&reveal).await;
        assert_eq!(
            (r.status.as_u16(), r.body["field"].as_str()),
            (409, Some("expires_at")),
            "{}",
            r.body
        );
        assert!(
            r.body["type"]
                .as_str()
                .unwrap()
                .ends_with("/credential-expired"),
            "{}",
            r.body
        );
        assert!(r.body["detail"].as_str().unwrap().contains("2001-01-01"));
        assert!(!r.body.to_string().contains("s3cret"), "{}", r.body);
    }
    // A refused reveal is not a use.
    let r = c.by(&ada).get(&one).await;
    assert!(r.body["last_used_at"].is_null(), "{}", r.body);

    // Given a later expiry, it can be used again.
    let r = c
        .by(&ada)
        .patch(&one, json!({"expires_at": "2999-01-01T00:00:00Z"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c.by(&ada).post_empty(&reveal).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"], "s3cret-expired");
}

async fn webhooks_over_http(b: Arc<dyn Backend>) {
    let c = TestApp::new(b.clone()).await;
    let (ada_id, ada) = c.user_key(Role::User, "ada@example.com").await;
    let (_, bob) = c.user_key(Role::User, "bob@example.com").await;

    let r = c.by(&ada).create_webhook(json!({ "name": "deploys", "url": "https://hooks.example.com/in", "events": ["run.completed", "task.*"], "headers": {"X-Team": "ops"}}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let secret = r.body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(r.body["webhook"]["owner_id"], ada_id);
    let id = r.body["webhook"]["id"].as_str().unwrap().to_string();
    let one = format!("/api/v1/webhooks/{id}");
    let r = c.by(&ada).get(&one).await;
    assert_eq!(r.status, 200);
    assert!(
        !r.body.to_string().contains(&secret),
        "the secret is shown once"
    );
    assert_eq!(r.body["events"], json!(["run.completed", "task.*"]));

    for (body, field) in [
        (
            json!({"name": "x", "url": "ftp://x.example.com", "events": ["*"]}),
            "url",
        ),
        (
            json!({"name": "x", "url": "https://u:p@x.example.com", "events": ["*"]}),
            "url",
        ),
        (
            json!({"name": "x", "url": "https://x.example.com", "events": []}),
            "events",
        ),
        (
            json!({"name": "x", "url": "https://x.example.com", "events": ["*"], "secret": "short"}),
            "secret",
        ),
        (
            json!({"name": "x", "url": "https://x.example.com", "events": ["*"], "headers": {"Host": "h"}}),
            "headers",
        ),
        (
            json!({"name": "", "url": "https://x.example.com", "events": ["*"]}),
            "name",
        ),
        (
            json!({"name": "x", "url": "https://x.example.com", "events": ["*"],
            "workflow_id": "01900000-0000-7000-8000-000000000000"}),
            "workflow_id",
        ),
    ] {
        let r = c.by(&ada).create_webhook(body.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.body["field"].as_str()),
            (422, Some(field)),
            "{body}: {}",
            r.body
        );
    }
    let r = c.by(&ada).create_webhook(json!({ "name": "x", "url": "https://x.example.com", "events": ["*"], "failure_count": 0}))
        .await;
    assert_eq!(r.status, 422);
    let r = c
        .by(&ada)
        .create_webhook(
            json!({ "name": "again", "url": "https://hooks.example.com/in", "events": ["*"]}),
        )
        .await;
    r.want_field(409, "url");

    // Bob sees none of it.
    for (method, path) in [
        ("GET", one.clone()),
        ("DELETE", one.clone()),
        ("GET", format!("{one}/deliveries")),
        ("POST", format!("{one}/test")),
    ] {
        let r = c.by(&bob).send(method, &path, None).await;
        assert_eq!(r.status, 404, "{method} {path}");
    }
    let r = c.by(&bob).list_webhooks().await;
    assert_eq!(r.body["items"], json!([]));
    let r = c.by(&ada).get("/api/v1/webhooks?active=true").await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = c.admin().get("/api/v1/webhooks?active=false").await;
    assert_eq!(r.body["items"], json!([]));

    // A test event is queued as a pending delivery, listed with the others.
    let r = c.by(&ada).post_empty(&format!("{one}/test")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["event_type"], "webhook.test");
    assert_eq!(r.body["status"], "pending");
    let r = c
        .by(&ada)
        .get(&format!("{one}/deliveries?status=pending"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = c
        .by(&ada)
        .get(&format!("{one}/deliveries?status=lost"))
        .await;
    r.want_field(422, "status");

    let r = c
        .by(&ada)
        .patch(
            &one,
            json!({"active": false, "events": ["*"], "secret": "a-brand-new-secret-value"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["active"].as_bool(), r.body["events"].clone()),
        (Some(false), json!(["*"]))
    );
    assert!(!r.body.to_string().contains("a-brand-new-secret-value"));
    let r = c
        .by(&ada)
        .patch(&one, json!({"url": "mailto:x@example.com"}))
        .await;
    r.want_field(422, "url");
    let r = c.by(&ada).delete(&one).await;
    assert_eq!(r.status, 204);
    let r = c.by(&ada).get(&format!("{one}/deliveries")).await;
    assert_eq!(r.status, 404);
}

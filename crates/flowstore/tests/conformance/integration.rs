//! Conformance tests for the integration area: credentials and webhooks (round
//! trips, secrets sealed at rest and hidden in memory, wrong keys, validation,
//! duplicates). Deliveries and the dispatcher's queue are in
//! `integration_deliveries.rs`.

use chrono::TimeDelta;
use flowstore::ids::{UserId, WorkflowId};
use flowstore::model::integration::{
    CredentialFilter, CredentialPatch, CredentialType, NewCredential, NewWebhook, SealedKind,
    WebhookFilter, WebhookPatch,
};
use flowstore::model::ops::SecretValue;
use flowstore::{time, BackendKind, PageRequest, Store, StoreError};
use flowstore_core::crypto::SecretString;
use flowstore_testkit::fixtures::execute;
use flowstore_testkit::fixtures::user_id;
use serde_json::json;

use crate::conformance::raw::uuid_lit;

conformance!(
    credentials_round_trip,
    secrets_are_sealed_at_rest_and_hidden,
    a_wrong_or_missing_key_fails_clearly,
    bad_input_names_the_field,
    duplicates_conflict,
    webhooks_round_trip,
);

pub fn credential(name: &str, owner: Option<UserId>, data: serde_json::Value) -> NewCredential {
    NewCredential {
        name: name.into(),
        credential_type: CredentialType::ApiKey,
        data: SecretValue::new(data),
        description: None,
        expires_at: None,
        owner_id: owner,
    }
}

pub fn webhook(url: &str, owner: Option<UserId>, events: &[&str]) -> NewWebhook {
    NewWebhook {
        name: "hook".into(),
        url: url.into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        owner_id: owner,
        ..Default::default()
    }
}

/// How many rows of `table` match `condition`, counted by a no-op UPDATE (the one
/// raw statement the backend runs for tests).
pub async fn count_where(store: &Store, table: &str, condition: &str) -> u64 {
    let set = match table {
        "credentials" | "webhooks" => "name = name",
        _ => "event_type = event_type",
    };
    execute(
        store,
        &format!("UPDATE {table} SET {set} WHERE {condition}"),
    )
    .await
}

async fn credentials_round_trip(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let ada = user_id(&mut tx, "ada@example.com").await;
    let bob = user_id(&mut tx, "bob@example.com").await;
    let expires = time::now() + TimeDelta::days(30);
    let c = tx
        .create_credential(NewCredential {
            credential_type: CredentialType::BasicAuth,
            description: Some(" registry login ".into()),
            expires_at: Some(expires),
            ..credential(
                " registry ",
                Some(ada),
                json!({"user": "ci", "password": "pw-1"}),
            )
        })
        .await
        .unwrap();
    assert_eq!(c.name, "registry");
    assert_eq!(c.description.as_deref(), Some("registry login"));
    assert_eq!(c.credential_type, CredentialType::BasicAuth);
    assert_eq!(c.owner_id, Some(ada));
    assert_eq!(c.expires_at, Some(time::truncate(expires)));
    assert_eq!((c.last_used_at, c.rotated_at), (None, None));
    tx.create_credential(credential("token", Some(bob), json!("t-1")))
        .await
        .unwrap();
    tx.create_credential(credential("shared", None, json!("t-2")))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.get_credential(c.id).await.unwrap(), c);
    let (meta, data) = tx.reveal_credential(c.id).await.unwrap();
    assert_eq!(data.reveal(), &json!({"user": "ci", "password": "pw-1"}));
    assert!(meta.last_used_at.is_some(), "a reveal is recorded");

    let all = tx
        .list_credentials(&CredentialFilter::default(), &PageRequest::first(2))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2);
    let rest = tx
        .list_credentials(
            &CredentialFilter::default(),
            &PageRequest::after(all.next_cursor.unwrap(), 2),
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.next_cursor, None);
    assert_eq!(rest.items[0].id, c.id, "newest first");
    let adas = tx
        .list_credentials(
            &CredentialFilter {
                owner_id: Some(ada),
                ..Default::default()
            },
            &PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(adas.items.len(), 1);
    let basic = tx
        .list_credentials(
            &CredentialFilter {
                credential_type: Some(CredentialType::ApiKey),
                ..Default::default()
            },
            &PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(basic.items.len(), 2);

    // Renaming keeps the secret; new data is a rotation.
    let renamed = tx
        .update_credential(
            c.id,
            CredentialPatch {
                name: Some("registry-2".into()),
                description: Some(None),
                expires_at: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "registry-2");
    assert_eq!((renamed.description, renamed.expires_at), (None, None));
    assert_eq!(renamed.rotated_at, None);
    assert_eq!(
        tx.reveal_credential(c.id).await.unwrap().1.reveal()["password"],
        "pw-1"
    );
    let rotated = tx
        .update_credential(
            c.id,
            CredentialPatch {
                data: Some(SecretValue::new(json!({"user": "ci", "password": "pw-2"}))),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(rotated.rotated_at.is_some());
    assert_eq!(
        tx.reveal_credential(c.id).await.unwrap().1.reveal()["password"],
        "pw-2"
    );

    tx.delete_credential(c.id).await.unwrap();
    assert_err!(tx.get_credential(c.id).await, NotFound);
    assert_err!(tx.reveal_credential(c.id).await, NotFound);
    assert_err!(tx.delete_credential(c.id).await, NotFound);
    assert_err!(
        tx.update_credential(c.id, CredentialPatch::default()).await,
        NotFound
    );
    tx.commit().await.unwrap();
}

async fn secrets_are_sealed_at_rest_and_hidden(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let c = tx
        .create_credential(credential("db", None, json!({"password": "hunter2-cred"})))
        .await
        .unwrap();
    let h = tx
        .create_webhook(NewWebhook {
            secret: Some(SecretString::new("hunter2-webhook-secret")),
            ..webhook("https://hooks.example.com/a", None, &["*"])
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(h.secret.expose(), "hunter2-webhook-secret");

    // The raw columns hold neither secret, and carry the sealing key's ID.
    let contains = |column: &str| match store.kind() {
        BackendKind::Sqlite => format!("instr({column}, CAST('hunter2' AS BLOB)) > 0"),
        BackendKind::Postgres => format!("position(convert_to('hunter2', 'UTF8') in {column}) > 0"),
    };
    let sealed = count_where(
        &store,
        "credentials",
        &format!(
            "length(encrypted_data) > 12 AND encryption_key_id = '{}' AND NOT ({})",
            c.encryption_key_id,
            contains("encrypted_data")
        ),
    )
    .await;
    assert_eq!(sealed, 1, "the credential is stored only sealed");
    let sealed = count_where(
        &store,
        "webhooks",
        &format!(
            "encryption_key_id = '{}' AND NOT ({})",
            h.webhook.encryption_key_id,
            contains("secret_encrypted")
        ),
    )
    .await;
    assert_eq!(sealed, 1, "the webhook secret is stored only sealed");
    let anywhere = count_where(
        &store,
        "webhooks",
        "url LIKE '%hunter2%' OR name LIKE '%hunter2%' OR CAST(headers AS TEXT) LIKE '%hunter2%'",
    )
    .await;
    assert_eq!(anywhere, 0);

    // Decrypted values print and serialise as <redacted>; metadata carries none.
    let mut tx = store.begin().await.unwrap();
    let (meta, data) = tx.reveal_credential(c.id).await.unwrap();
    let shown = format!(
        "{meta:?} {data:?} {}",
        serde_json::to_string(&meta).unwrap()
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    assert_eq!(serde_json::to_value(&data).unwrap(), json!("<redacted>"));
    let secret = tx.webhook_secret(h.webhook.id).await.unwrap();
    assert_eq!(secret.expose(), "hunter2-webhook-secret");
    assert_eq!(format!("{secret:?}"), "<redacted>");
    let hook = tx.get_webhook(h.webhook.id).await.unwrap();
    assert!(!serde_json::to_string(&hook).unwrap().contains("hunter2"));
    // With one key, nothing is stale and a re-seal does nothing.
    assert_eq!(tx.stale_secrets().await.unwrap().total(), 0);
    for kind in SealedKind::ALL {
        assert_eq!(tx.reseal_batch(kind, 10).await.unwrap(), 0);
    }
    tx.commit().await.unwrap();
}

async fn a_wrong_or_missing_key_fails_clearly(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let c = tx
        .create_credential(credential("a", None, json!("s3cret")))
        .await
        .unwrap();
    let d = tx
        .create_credential(credential("b", None, json!("s3cret")))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // A value sealed by a key this store does not have.
    execute(
        &store,
        &format!(
            "UPDATE credentials SET encryption_key_id = 'feedfacefeedface' WHERE id = {}",
            uuid_lit(&store, c.id.0)
        ),
    )
    .await;
    let mut tx = store.begin().await.unwrap();
    match tx.reveal_credential(c.id).await {
        Err(e @ StoreError::KeyMissing(_)) => {
            let msg = e.to_string();
            assert!(
                matches!(&e, StoreError::KeyMissing(id) if id == "feedfacefeedface"),
                "{e:?}"
            );
            assert!(msg.contains("not configured"), "{msg}");
            assert!(msg.contains("ENCRYPTION_KEY"), "{msg}");
        }
        other => panic!("expected a clear failure, got {other:?}"),
    }
    drop(tx);
    // Bytes that the key did not seal (or that were altered) fail authentication.
    let junk = match store.kind() {
        BackendKind::Sqlite => "randomblob(40)",
        BackendKind::Postgres => "decode(md5('a') || md5('b'), 'hex')",
    };
    execute(
        &store,
        &format!(
            "UPDATE credentials SET encrypted_data = {junk} WHERE id = {}",
            uuid_lit(&store, d.id.0)
        ),
    )
    .await;
    let mut tx = store.begin().await.unwrap();
    match tx.reveal_credential(d.id).await {
        Err(StoreError::Internal(msg)) => {
            assert!(msg.contains("failed authentication"), "{msg}")
        }
        other => panic!("expected a clear failure, got {other:?}"),
    }
    // Metadata stays readable.
    assert_eq!(tx.get_credential(d.id).await.unwrap().name, "b");
}

async fn bad_input_names_the_field(store: Store) {
    let mut tx = store.begin().await.unwrap();
    for name in ["", "   ", "a\0b"] {
        assert_err!(
            tx.create_credential(credential(name, None, json!("x")))
                .await,
            Invalid,
            "name"
        );
    }
    assert_err!(
        tx.create_credential(credential(&"n".repeat(256), None, json!("x")))
            .await,
        Invalid,
        "name"
    );
    for data in [json!(null), json!(""), json!("a\u{0}b")] {
        assert_err!(
            tx.create_credential(credential("n", None, data)).await,
            Invalid,
            "data"
        );
    }
    assert_err!(
        tx.create_credential(credential("n", Some(UserId::new()), json!("x")))
            .await,
        Invalid,
        "owner_id"
    );
    for url in [
        "ftp://example.com/",
        "javascript:alert(1)",
        "https://user:pw@example.com/",
        "https://example.com/\r\nX-Injected: 1",
        "http://",
        "https://example.com/a b",
        "not a url",
    ] {
        assert_err!(
            tx.create_webhook(webhook(url, None, &["*"])).await,
            Invalid,
            "url"
        );
    }
    for events in [
        &[][..],
        &["run"][..],
        &["RUN.completed"][..],
        &["run.*", "run.*"][..],
    ] {
        assert_err!(
            tx.create_webhook(webhook("https://example.com/", None, events))
                .await,
            Invalid,
            "events"
        );
    }
    for (bad, field) in [
        (
            NewWebhook {
                headers: Some(json!({"Host": "evil.example.com"})),
                ..webhook("https://example.com/", None, &["*"])
            },
            "headers",
        ),
        (
            NewWebhook {
                secret: Some(SecretString::new("short")),
                ..webhook("https://example.com/", None, &["*"])
            },
            "secret",
        ),
        (
            NewWebhook {
                workflow_id: Some(WorkflowId::new()),
                ..webhook("https://example.com/", None, &["*"])
            },
            "workflow_id",
        ),
    ] {
        assert_err!(tx.create_webhook(bad).await, Invalid, field);
    }
    assert_err!(
        tx.list_webhooks(&WebhookFilter::default(), &PageRequest::after("zz", 10))
            .await,
        Invalid,
        "cursor"
    );
    let h = tx
        .create_webhook(webhook("https://example.com/", None, &["*"]))
        .await
        .unwrap();
    assert_err!(
        tx.update_webhook(
            h.webhook.id,
            WebhookPatch {
                url: Some("gopher://example.com".into()),
                ..Default::default()
            }
        )
        .await,
        Invalid,
        "url"
    );
    assert_eq!(
        tx.get_webhook(h.webhook.id).await.unwrap().url,
        "https://example.com/",
        "a refused patch changes nothing"
    );
}

async fn duplicates_conflict(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let ada = user_id(&mut tx, "ada@example.com").await;
    let bob = user_id(&mut tx, "bob@example.com").await;
    tx.create_credential(credential("token", Some(ada), json!("1")))
        .await
        .unwrap();
    assert_err!(
        tx.create_credential(credential("token", Some(ada), json!("2")))
            .await,
        Conflict,
        "name"
    );
    tx.create_credential(credential("token", Some(bob), json!("3")))
        .await
        .unwrap();
    tx.create_credential(credential("token", None, json!("4")))
        .await
        .unwrap();
    assert_err!(
        tx.create_credential(credential("token", None, json!("5")))
            .await,
        Conflict,
        "name"
    );
    let other = tx
        .create_credential(credential("other", Some(ada), json!("6")))
        .await
        .unwrap();
    assert_err!(
        tx.update_credential(
            other.id,
            CredentialPatch {
                name: Some("token".into()),
                ..Default::default()
            }
        )
        .await,
        Conflict,
        "name"
    );

    tx.create_webhook(webhook("https://hooks.example.com/x", Some(ada), &["*"]))
        .await
        .unwrap();
    // The same endpoint written with another case is the same URL.
    assert_err!(
        tx.create_webhook(webhook(
            "HTTPS://Hooks.Example.com/x",
            Some(ada),
            &["run.*"]
        ))
        .await,
        Conflict,
        "url"
    );
    tx.create_webhook(webhook("https://hooks.example.com/x", Some(bob), &["*"]))
        .await
        .unwrap();
    tx.create_webhook(webhook("https://hooks.example.com/x", None, &["*"]))
        .await
        .unwrap();
    assert_err!(
        tx.create_webhook(webhook("https://hooks.example.com/x", None, &["*"]))
            .await,
        Conflict,
        "url"
    );
    tx.commit().await.unwrap();
}

async fn webhooks_round_trip(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let ada = user_id(&mut tx, "ada@example.com").await;
    let wf = tx
        .create_workflow(flowstore::model::workflow::NewWorkflow {
            name: "deploy".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let created = tx
        .create_webhook(NewWebhook {
            name: " deploys ".into(),
            headers: Some(json!({"X-Team": "ops"})),
            workflow_id: Some(wf.id),
            ..webhook(
                "https://hooks.example.com/deploy",
                Some(ada),
                &["run.completed", "task.*"],
            )
        })
        .await
        .unwrap();
    let h = created.webhook.clone();
    assert!(
        created.secret.expose().starts_with("whsec_"),
        "a secret is made"
    );
    assert_eq!(h.name, "deploys");
    assert_eq!(h.events, vec!["run.completed", "task.*"]);
    assert_eq!(h.headers, json!({"X-Team": "ops"}));
    assert!(h.active);
    assert_eq!((h.failure_count, h.workflow_id), (0, Some(wf.id)));
    assert_eq!(
        tx.webhook_secret(h.id).await.unwrap().expose(),
        created.secret.expose()
    );
    let off = tx
        .create_webhook(NewWebhook {
            active: Some(false),
            ..webhook("http://localhost:9000/all", None, &["*"])
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.get_webhook(h.id).await.unwrap(), h);
    let active = tx
        .list_webhooks(
            &WebhookFilter {
                active: Some(true),
                ..Default::default()
            },
            &PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(
        active.items.iter().map(|w| w.id).collect::<Vec<_>>(),
        vec![h.id]
    );
    let inactive = tx
        .list_webhooks(
            &WebhookFilter {
                active: Some(false),
                ..Default::default()
            },
            &PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(inactive.items[0].id, off.webhook.id);
    for f in [
        WebhookFilter {
            owner_id: Some(ada),
            ..Default::default()
        },
        WebhookFilter {
            workflow_id: Some(wf.id),
            ..Default::default()
        },
    ] {
        let got = tx.list_webhooks(&f, &PageRequest::first(10)).await.unwrap();
        assert_eq!(got.items.len(), 1, "{f:?}");
    }
    let all = tx
        .list_webhooks(&WebhookFilter::default(), &PageRequest::first(1))
        .await
        .unwrap();
    assert_eq!(all.items[0].id, off.webhook.id, "newest first");
    assert!(all.next_cursor.is_some());

    let changed = tx
        .update_webhook(
            h.id,
            WebhookPatch {
                url: Some("https://hooks.example.com/v2".into()),
                events: Some(vec!["*".into()]),
                active: Some(false),
                workflow_id: Some(None),
                secret: Some(SecretString::new("a-new-secret-of-enough-length")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.url, "https://hooks.example.com/v2");
    assert_eq!(changed.events, vec!["*"]);
    assert!(!changed.active);
    assert_eq!(changed.workflow_id, None);
    assert_eq!(changed.headers, json!({"X-Team": "ops"}), "untouched");
    assert_eq!(
        tx.webhook_secret(h.id).await.unwrap().expose(),
        "a-new-secret-of-enough-length"
    );
    tx.delete_webhook(h.id).await.unwrap();
    assert_err!(tx.get_webhook(h.id).await, NotFound);
    assert_err!(tx.delete_webhook(h.id).await, NotFound);
    assert_err!(tx.webhook_secret(h.id).await, NotFound);
    tx.commit().await.unwrap();
}

//! `flowstore keys rotate` through the binary, on SQLite and PostgreSQL: values
//! sealed with key A (a sensitive configuration value, a credential, a webhook
//! secret) read back after rotating to key B, and with A removed; the credentials
//! re-sealed are marked rotated; the audit log's head, signed with A, is signed with
//! B and keeps verifying; a second run does nothing; without the old key the
//! rotation fails clearly and changes nothing.

use std::process::{Command, Output};

use flowstore::config::Settings;
use flowstore::ids::{CredentialId, WebhookId};
use flowstore::model::audit::{ActorType, NewAuditEntry};
use flowstore::model::integration::NewWebhook;
use flowstore::model::ops::SetConfiguration;
use flowstore::{Store, StoreError};
use flowstore_core::crypto::SecretString;
use serde_json::json;

use flowstore_testkit::fixtures;
use flowstore_testkit::ENCRYPTION_KEY as KEY_A;
const KEY_B: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

per_database!(rotation);

async fn store(url: &str, key: &str, previous: &[&str]) -> Store {
    let settings = Settings {
        database_url: url.to_string(),
        pool_max: 4,
        encryption_key: Some(key.to_string()),
        previous_keys: previous.iter().map(|k| k.to_string()).collect(),
        ..Settings::default()
    };
    Store::connect(&settings).await.unwrap()
}

fn rotate(url: &str, key: &str, previous: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowstore"));
    cmd.args(["--database-url", url, "keys", "rotate", "--batch", "2"])
        .env("ENCRYPTION_KEY", key)
        .env_remove("ENCRYPTION_KEY_PREVIOUS");
    if let Some(p) = previous {
        cmd.env("ENCRYPTION_KEY_PREVIOUS", p);
    }
    cmd.output().expect("the binary runs")
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Reads back every sealed value; all must be the originals.
async fn read_back(s: &Store, creds: &[CredentialId], hook: WebhookId) -> Result<(), StoreError> {
    let mut tx = s.begin().await?;
    for i in 0..3 {
        let c = tx.get_configuration(&format!("smtp.password.{i}")).await?;
        assert_eq!(c.value.reveal(), Some(&json!(format!("pw-{i}"))));
    }
    for (i, id) in creds.iter().enumerate() {
        let (_, data) = tx.reveal_credential(*id).await?;
        assert_eq!(data.reveal(), &json!({"token": format!("t-{i}")}));
    }
    assert_eq!(
        tx.webhook_secret(hook).await?.expose(),
        "a-webhook-secret-0123456789"
    );
    tx.commit().await
}

async fn rotation(url: String) {
    let a = store(&url, KEY_A, &[]).await;
    a.backend().migrate_up(None).await.unwrap();
    let mut tx = a.begin().await.unwrap();
    for i in 0..3 {
        tx.set_configuration(SetConfiguration::sensitive(
            format!("smtp.password.{i}"),
            json!(format!("pw-{i}")),
        ))
        .await
        .unwrap();
    }
    tx.set_configuration(SetConfiguration::plain("plain", json!(1)))
        .await
        .unwrap();
    let mut creds = Vec::new();
    for i in 0..5 {
        let secret = json!({"token": format!("t-{i}")});
        let c = fixtures::credential(&mut tx, &format!("c{i}"), secret, None).await;
        creds.push(c.id);
    }
    let hook = tx
        .create_webhook(NewWebhook {
            name: "h".into(),
            url: "https://hooks.example.com/".into(),
            events: vec!["*".into()],
            secret: Some(SecretString::new("a-webhook-secret-0123456789")),
            ..Default::default()
        })
        .await
        .unwrap()
        .webhook
        .id;
    for id in &creds[..3] {
        tx.append_audit(NewAuditEntry::new(
            ActorType::System,
            None,
            "credential.create",
            "credential",
            Some(id.to_string()),
        ))
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let mut tx = a.begin().await.unwrap();
    for id in &creds {
        assert!(tx.get_credential(*id).await.unwrap().rotated_at.is_none());
    }
    assert!(tx.verify_audit_chain().await.unwrap().is_intact());
    drop(tx);
    a.close().await;
    let before_rotation = flowstore::time::now();

    // Without the old key nothing can be opened: the rotation fails, naming the key.
    let refused = rotate(&url, KEY_B, None);
    assert!(!refused.status.success(), "{}", out(&refused));
    assert!(
        out(&refused).contains("not configured"),
        "{}",
        out(&refused)
    );
    let still_a = store(&url, KEY_A, &[]).await;
    read_back(&still_a, &creds, hook).await.unwrap();
    still_a.close().await;

    let done = rotate(&url, KEY_B, Some(KEY_A));
    assert!(done.status.success(), "{}", out(&done));
    assert!(
        out(&done)
            .contains("re-sealed 3 configuration value(s), 5 credential(s), 1 webhook secret(s)"),
        "{}",
        out(&done)
    );
    assert!(
        out(&done).contains("the audit log's head is now signed with key"),
        "{}",
        out(&done)
    );
    let again = rotate(&url, KEY_B, Some(KEY_A));
    assert!(again.status.success(), "{}", out(&again));
    assert!(
        out(&again)
            .contains("re-sealed 0 configuration value(s), 0 credential(s), 0 webhook secret(s)"),
        "{}",
        out(&again)
    );

    // B alone opens everything; A alone opens nothing any more.
    let only_b = store(&url, KEY_B, &[]).await;
    read_back(&only_b, &creds, hook).await.unwrap();
    let mut tx = only_b.begin().await.unwrap();
    assert_eq!(tx.stale_secrets().await.unwrap().total(), 0);
    // Every credential re-sealed counts as rotated, at the rotation.
    for id in &creds {
        let c = tx.get_credential(*id).await.unwrap();
        let at = c.rotated_at.expect("keys rotate sets rotated_at");
        assert!(at >= before_rotation, "{at} before {before_rotation}");
    }
    // The head, signed with A before, verifies with B alone and the log grows.
    let v = tx.verify_audit_chain().await.unwrap();
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.last_seq, 3);
    let next = tx
        .append_audit(NewAuditEntry::new(
            ActorType::System,
            None,
            "keys.rotated",
            "keys",
            None,
        ))
        .await
        .unwrap();
    assert_eq!(next.seq, 4);
    tx.commit().await.unwrap();
    let mut tx = only_b.begin_read().await.unwrap();
    assert!(tx.verify_audit_chain().await.unwrap().is_intact());
    drop(tx);
    only_b.close().await;
    let only_a = store(&url, KEY_A, &[]).await;
    match read_back(&only_a, &creds, hook).await {
        Err(e @ StoreError::KeyMissing(_)) => {
            assert!(e.to_string().contains("not configured"), "{e}")
        }
        other => panic!("key A should open nothing now: {other:?}"),
    }
    // Nor can A check the head B signed, nor sign a new one after it.
    let mut tx = only_a.begin().await.unwrap();
    let m = tx
        .verify_audit_chain()
        .await
        .unwrap()
        .head_mismatch
        .unwrap();
    assert!(m.reason.contains("not configured"), "{}", m.reason);
    match tx
        .append_audit(NewAuditEntry::new(ActorType::System, None, "x", "y", None))
        .await
    {
        Err(StoreError::Internal(msg)) => assert!(msg.contains("not configured"), "{msg}"),
        other => panic!("an append must not go past a head it cannot check: {other:?}"),
    }
    drop(tx);
    only_a.close().await;
}

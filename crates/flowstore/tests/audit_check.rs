//! `flowstore check` through the binary on a tampered audit log, on both backends:
//! an entry edited by someone who dropped the append-only trigger makes check fail
//! and name the entry, and `--fix` leaves the evidence as it is.

#[path = "conformance/common.rs"]
#[macro_use]
#[allow(dead_code, unused_macros)]
mod common;

use flowstore::model::audit::{ActorType, NewAuditEntry};
use flowstore::BackendKind;
use serde_json::json;

fn cli(url: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_flowstore"))
        .arg("--database-url")
        .arg(url)
        .args(args)
        .env(
            "ENCRYPTION_KEY",
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        )
        .output()
        .expect("the binary runs")
}

async fn tampering_fails_check(url: String) {
    assert!(cli(&url, &["migrate", "up"]).status.success());
    let store = flowstore::Store::open(&url).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    for i in 1..=3 {
        let mut e = NewAuditEntry::new(
            ActorType::User,
            Some("someone".into()),
            "workflow.update",
            "workflow",
            Some(format!("w{i}")),
        );
        e.after = Some(json!({"description": format!("v{i}"), "priority": 1.5}));
        tx.append_audit(e).await.unwrap();
    }
    tx.commit().await.unwrap();
    let clean = cli(&url, &["check"]);
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );

    let b = store.backend();
    match store.kind() {
        BackendKind::Sqlite => b.execute_raw("DROP TRIGGER trg_audit_log_no_update"),
        BackendKind::Postgres => {
            b.execute_raw("DROP TRIGGER trg_audit_log_append_only ON audit_log")
        }
    }
    .await
    .unwrap();
    b.execute_raw("UPDATE audit_log SET actor_id = 'someone else' WHERE seq = 2")
        .await
        .unwrap();
    store.close().await;

    let out = cli(&url, &["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("broken_audit_chain"), "{text}");
    assert!(text.contains("seq 2"), "{text}");

    let fixed = cli(&url, &["check", "--fix", "--json"]);
    assert!(!fixed.status.success(), "an audit chain is never repaired");
    let report: serde_json::Value = serde_json::from_slice(&fixed.stdout).unwrap();
    let remaining = report["remaining"].as_array().unwrap();
    assert!(
        remaining
            .iter()
            .any(|f| f["kind"] == "broken_audit_chain" && f["table"] == "audit_log"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_tampering_fails_check() {
    let dir = std::env::temp_dir().join("flowstore-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("audit-{}.db", uuid::Uuid::new_v4().simple()));
    tampering_fails_check(format!("sqlite://{}", path.display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tampering_fails_check() {
    tampering_fails_check(common::fresh_pg_database().await).await;
}

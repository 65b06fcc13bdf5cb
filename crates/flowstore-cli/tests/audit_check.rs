//! The audit log beyond one database, on both backends: `flowstore check` through
//! the binary fails on an entry edited by someone who dropped the append-only
//! trigger, or on the newest entries removed, names it, and `--fix` leaves the
//! evidence as it is; a chain moved by backup and restore from one backend to the
//! other still verifies (its signed head with it) and grows, a cut one stays cut,
//! and an archive without a head gets the restoring operator's.

use flowstore::model::audit::{ActorType, NewAuditEntry};
use flowstore::{BackendKind, Store};
use serde_json::json;

use crate::binary::flowstore as cli;
use flowstore_testkit::ENCRYPTION_KEY as KEY;

per_database!(tampering_fails_check, a_cut_tail_fails_check);

/// `check` fails on a broken audit chain, saying `what`.
fn check_finds_a_broken_chain(url: &str, what: &str) {
    let out = cli(url, &["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("broken_audit_chain"), "{text}");
    assert!(text.contains(what), "{text}");
}

/// `check --fix --json` fails (`why`): its report.
fn fix_fails(url: &str, why: &str) -> serde_json::Value {
    let fixed = cli(url, &["check", "--fix", "--json"]);
    assert!(!fixed.status.success(), "{why}");
    serde_json::from_slice(&fixed.stdout).unwrap()
}

/// The store the binary sees: same database, same key (the head is signed with it).
async fn open(url: &str) -> Store {
    let settings = flowstore::config::Settings {
        database_url: url.to_string(),
        encryption_key: Some(KEY.into()),
        ..flowstore::config::Settings::default()
    };
    Store::connect(&settings).await.unwrap()
}

async fn tampering_fails_check(url: String) {
    assert!(cli(&url, &["migrate", "up"]).status.success());
    let store = open(&url).await;
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
    drop_append_only_trigger(&store, "trg_audit_log_no_update").await;
    b.execute_raw("UPDATE audit_log SET actor_id = 'someone else' WHERE seq = 2")
        .await
        .unwrap();
    store.close().await;

    check_finds_a_broken_chain(&url, "seq 2");
    let report = fix_fails(&url, "an audit chain is never repaired");
    let remaining = report["remaining"].as_array().unwrap();
    assert!(
        remaining
            .iter()
            .any(|f| f["kind"] == "broken_audit_chain" && f["table"] == "audit_log"),
        "{report}"
    );
}

/// Drops the trigger that keeps the audit log append-only: on SQLite the one named
/// (one per statement kind), on PostgreSQL the one for all.
async fn drop_append_only_trigger(store: &Store, sqlite_trigger: &str) {
    let sql = match store.kind() {
        BackendKind::Sqlite => format!("DROP TRIGGER {sqlite_trigger}"),
        BackendKind::Postgres => "DROP TRIGGER trg_audit_log_append_only ON audit_log".into(),
    };
    store.backend().execute_raw(&sql).await.unwrap();
}

/// Removes the newest entries as someone who can write to the database (but has no
/// key) could: the triggers dropped, then a plain DELETE.
async fn cut_tail(store: &Store, from_seq: i64) {
    let b = store.backend();
    drop_append_only_trigger(store, "trg_audit_log_no_delete").await;
    b.execute_raw(&format!("DELETE FROM audit_log WHERE seq >= {from_seq}"))
        .await
        .unwrap();
}

async fn a_cut_tail_fails_check(url: String) {
    assert!(cli(&url, &["migrate", "up"]).status.success());
    let store = open(&url).await;
    awkward_entries(&store).await;
    awkward_entries(&store).await;
    let clean = cli(&url, &["check"]);
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );
    cut_tail(&store, 5).await;
    assert!(
        verify(&store).await.first_broken.is_none(),
        "the rest chains"
    );
    store.close().await;

    check_finds_a_broken_chain(&url, "seq 5..=6 missing");
    let report = fix_fails(&url, "a cut log is never repaired");
    assert!(
        report["remaining"].as_array().unwrap().iter().any(|f| {
            f["kind"] == "broken_audit_chain" && f["table"] == "audit_head" && f["count"] == 2
        }),
        "{report}"
    );
}

fn quiet(_: &str, _: u64) {}

/// Entries whose JSON the backends store differently: key order, integral and tiny
/// floats, large integers, negative zero, escapes and non-ASCII text.
async fn awkward_entries(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    let values = [
        json!({"z": 1, "a": {"y": [3.0, 1e16, -0.0, 1.5e-7], "b": "é\"\n\u{1}"}, "n": null}),
        json!({"big": 1e20, "i": -9007199254740993i64, "u": u64::MAX, "t": true}),
        json!([{"b": 2, "a": 1}, "x", 0.1, 12345678.875]),
    ];
    for (i, v) in values.into_iter().enumerate() {
        let mut e = NewAuditEntry::new(
            ActorType::ApiKey,
            Some(format!("key{i}")),
            "configuration.set",
            "configuration",
            Some(format!("k{i}")),
        );
        e.before = Some(v.clone());
        e.after = Some(json!({"value": v}));
        e.request_id = Some(format!("req-{i}"));
        tx.append_audit(e).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn verify(store: &Store) -> flowstore::model::audit::ChainVerification {
    let mut tx = store.begin().await.unwrap();
    let v = tx.verify_audit_chain().await.unwrap();
    tx.rollback().await.unwrap();
    v
}

/// Backs `source` up to `file` and restores it into `target` (over what is there
/// when `replace`).
async fn copy(source: &Store, target: &Store, file: &std::path::Path, replace: bool) {
    flowstore_cli::archive::backup(source, file, None, &quiet)
        .await
        .unwrap();
    flowstore_cli::archive::restore(target, file, replace, &quiet)
        .await
        .unwrap();
}

async fn chain_survives_backup_and_restore(source: Store, target: Store) {
    awkward_entries(&source).await;
    assert!(verify(&source).await.is_intact());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.fsa");
    copy(&source, &target, &file, false).await;
    let v = verify(&target).await;
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(
        (v.checked, v.last_hash.clone()),
        (3, verify(&source).await.last_hash)
    );
    // The restored chain grows from where it was.
    let mut tx = target.begin().await.unwrap();
    let next = tx
        .append_audit(NewAuditEntry::new(
            ActorType::System,
            None,
            "restore.check",
            "audit_log",
            None,
        ))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((next.seq, next.prev_hash), (4, v.last_hash));
    assert!(verify(&target).await.is_intact());

    // A cut log is archived and restored as it is: still cut, still reported.
    cut_tail(&source, 3).await;
    let cut = dir.path().join("cut.fsa");
    copy(&source, &target, &cut, true).await;
    let m = verify(&target)
        .await
        .head_mismatch
        .expect("the cut travels");
    assert_eq!((m.missing_from, m.missing_to), (Some(3), Some(3)));
}

/// An archive without the head (made before there was one, or of some tables only):
/// the restore signs the newest restored entry with the restoring key.
async fn an_archive_without_a_head_gets_one(source: Store, target: Store) {
    awkward_entries(&source).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("log-only.fsa");
    flowstore_cli::archive::backup(&source, &file, Some(&["audit_log".to_string()]), &quiet)
        .await
        .unwrap();
    flowstore_cli::archive::restore(&target, &file, false, &quiet)
        .await
        .unwrap();
    let v = verify(&target).await;
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.last_seq, 3);
}

two_stores! {
    chain_moves_from_sqlite_to_postgres: chain_survives_backup_and_restore(sqlite, postgres);
    chain_moves_from_postgres_to_sqlite: chain_survives_backup_and_restore(postgres, sqlite);
    an_archive_without_a_head_gets_one_sqlite: an_archive_without_a_head_gets_one(sqlite, sqlite);
    an_archive_without_a_head_gets_one_postgres: an_archive_without_a_head_gets_one(postgres, postgres);
}

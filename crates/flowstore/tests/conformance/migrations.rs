//! Conformance tests for migrations: idempotence, down then up, refusal of newer or
//! edited schemas, and concurrent migrators.

use flowstore::migrate::MigrationState;
use flowstore::{Store, StoreError};

conformance!(
    applying_twice_is_a_no_op,
    down_then_up_gives_the_same_schema,
    newer_or_edited_schema_is_refused,
    concurrent_migrators_are_safe,
);

async fn applying_twice_is_a_no_op(store: Store) {
    let again = store.backend().migrate_up(None).await.unwrap();
    assert!(again.is_empty(), "nothing left to apply: {again:?}");
    let status = store.backend().migration_status().await.unwrap();
    assert!(!status.is_empty());
    assert!(status
        .iter()
        .all(|s| s.state == MigrationState::Applied && s.applied_at.is_some()));
    store.backend().check_schema().await.unwrap();
}

async fn down_then_up_gives_the_same_schema(store: Store) {
    let before = store.backend().schema_catalog().await.unwrap();
    assert!(
        before.len() > 50,
        "the catalog describes the schema ({} lines)",
        before.len()
    );
    let newest = store
        .backend()
        .migration_status()
        .await
        .unwrap()
        .last()
        .unwrap()
        .version;
    let reverted = store.backend().migrate_down(0).await.unwrap();
    assert_eq!(
        reverted.len() as i64,
        newest,
        "every migration was reverted"
    );
    assert!(
        store.backend().schema_catalog().await.unwrap().is_empty(),
        "nothing is left"
    );
    assert!(matches!(
        store.backend().check_schema().await,
        Err(StoreError::Migration(_))
    ));
    // Partial up, then the rest.
    assert_eq!(
        store.backend().migrate_up(Some(2)).await.unwrap(),
        vec![1, 2]
    );
    store.backend().migrate_up(None).await.unwrap();
    assert_eq!(store.backend().schema_catalog().await.unwrap(), before);
}

async fn newer_or_edited_schema_is_refused(store: Store) {
    store
        .backend()
        .execute_raw("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (9999, 'future', 'x', '2030-01-01T00:00:00.000000Z')")
        .await
        .unwrap();
    let e = store.backend().check_schema().await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Migration(m) if m.contains("upgrade flowstore")),
        "{e}"
    );
    assert!(store.backend().migrate_up(None).await.is_err());
    store
        .backend()
        .execute_raw("DELETE FROM schema_migrations WHERE version = 9999")
        .await
        .unwrap();
    store
        .backend()
        .execute_raw("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        .await
        .unwrap();
    let e = store.backend().check_schema().await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Migration(m) if m.contains("changed after")),
        "{e}"
    );
    let status = store.backend().migration_status().await.unwrap();
    assert_eq!(status[0].state, MigrationState::Edited);
}

async fn concurrent_migrators_are_safe(store: Store) {
    store.backend().migrate_down(0).await.unwrap();
    let a = store.clone();
    let b = store.clone();
    let (ra, rb) = tokio::join!(
        tokio::spawn(async move { a.backend().migrate_up(None).await }),
        tokio::spawn(async move { b.backend().migrate_up(None).await }),
    );
    let (ra, rb) = (ra.unwrap().unwrap(), rb.unwrap().unwrap());
    let mut all: Vec<i64> = ra.iter().chain(rb.iter()).copied().collect();
    all.sort();
    let newest = store
        .backend()
        .migration_status()
        .await
        .unwrap()
        .last()
        .unwrap()
        .version;
    assert_eq!(
        all,
        (1..=newest).collect::<Vec<_>>(),
        "each migration applied exactly once"
    );
    store.backend().check_schema().await.unwrap();
}

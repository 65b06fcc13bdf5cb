//! Conformance tests for migrations: idempotence, down then up, refusal of newer or
//! edited schemas, and concurrent migrators.

use chrono::{TimeZone, Utc};
use flowstore::migrate::MigrationState;
use flowstore::model::metric::{AggregateFilter, NewMetric};
use flowstore::model::run::{ExecutionPatch, NewExecution, RunStatus};
use flowstore::{Store, StoreError};
use flowstore_core::admin::FindingKind;
use flowstore_testkit::fixtures::{execute, problems};

conformance!(
    applying_twice_is_a_no_op,
    down_then_up_gives_the_same_schema,
    newer_or_edited_schema_is_refused,
    concurrent_migrators_are_safe,
    run_counters_add_up_over_shards_and_migrations,
    metric_rollups_merge_over_shards_and_migrations,
);

/// Runs raw SQL on the store's database.
/// The version of the newest migration.
async fn newest_version(store: &Store) -> i64 {
    let status = store.backend().migration_status().await.unwrap();
    status.last().unwrap().version
}

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
    let newest = newest_version(&store).await;
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
    execute(&store, "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (9999, 'future', 'x', '2030-01-01T00:00:00.000000Z')").await;
    let e = store.backend().check_schema().await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Migration(m) if m.contains("upgrade flowstore")),
        "{e}"
    );
    assert!(store.backend().migrate_up(None).await.is_err());
    execute(&store, "DELETE FROM schema_migrations WHERE version = 9999").await;
    execute(
        &store,
        "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1",
    )
    .await;
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
    let newest = newest_version(&store).await;
    assert_eq!(
        all,
        (1..=newest).collect::<Vec<_>>(),
        "each migration applied exactly once"
    );
    store.backend().check_schema().await.unwrap();
}

/// Total, completed and failed runs of `wf`, from the counters; both readers of the
/// counters (statistics and the per-status counts) must agree.
async fn counted(store: &Store, wf: &str) -> (i64, i64, i64) {
    let mut tx = store.begin_read().await.unwrap();
    let s = tx.workflow_statistics(wf, None).await.unwrap();
    let c = tx.run_counts(wf).await.unwrap();
    assert_eq!(
        (c.total, c.completed, c.failed, c.pending),
        (
            s.total_executions,
            s.completed_executions,
            s.failed_executions,
            s.total_executions - s.completed_executions - s.failed_executions
        ),
        "per-status counts agree with the statistics"
    );
    (
        s.total_executions,
        s.completed_executions,
        s.failed_executions,
    )
}

/// The counter probes only: on a schema migrated down they run as well, where the
/// rest of `check` (the audit log's signed head) needs tables that are not there.
async fn no_counter_drift(store: &Store) {
    let findings = problems(store).await;
    assert!(
        !findings.iter().any(|f| matches!(
            f.kind,
            FindingKind::WorkflowStatsDrift | FindingKind::MetricRollupDrift
        )),
        "{findings:?}"
    );
}

/// The run counters may be spread over shards (one per PostgreSQL connection, some
/// negative): readers and the integrity check add them up, the counting triggers
/// upsert into a shard that has no row yet, and migrating down folds the shards
/// into one row without changing a total.
async fn run_counters_add_up_over_shards_and_migrations(store: Store) {
    let mut tx = store.begin().await.unwrap();
    for i in 0..4 {
        tx.create_execution(NewExecution {
            execution_id: format!("shard-run-{i}"),
            workflow_id: "wf-shards".into(),
            workflow_name: "shards".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(counted(&store, "wf-shards").await, (4, 0, 0));

    // Spread the four pending runs over three shards, one of them negative. The
    // shards added are chosen apart from the one the runs were counted in (on
    // PostgreSQL the writing session's, which may be any of them).
    execute(
        &store,
        "UPDATE workflow_stats SET executions = executions - 3
              WHERE workflow_id = 'wf-shards' AND status = 'pending'",
    )
    .await;
    execute(
        &store,
        "INSERT INTO workflow_stats (workflow_id, status, shard, executions, duration_count,
                 duration_sum)
             SELECT 'wf-shards', 'pending', (s.shard + d.n) % 64, d.executions, 0, 0
               FROM (SELECT shard FROM workflow_stats
                      WHERE workflow_id = 'wf-shards' AND status = 'pending') s,
                    (SELECT 5 AS n, 5 AS executions UNION ALL SELECT 9, -2) d",
    )
    .await;
    assert_eq!(counted(&store, "wf-shards").await, (4, 0, 0));
    no_counter_drift(&store).await;

    // Transitions still count, into whichever shard the connection writes.
    let mut tx = store.begin().await.unwrap();
    for (i, status) in [(0, "completed"), (1, "failed")] {
        tx.update_execution(
            &format!("shard-run-{i}"),
            serde_json::from_value::<ExecutionPatch>(serde_json::json!({"status": status}))
                .unwrap(),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(counted(&store, "wf-shards").await, (4, 1, 1));
    no_counter_drift(&store).await;

    // Runs of two workflows and three statuses inserted by one statement (as a
    // batch of starts is) count once each, with their durations.
    let rows: Vec<String> = [
        ("wf-shards", "completed", "100"),
        ("wf-shards", "completed", "300"),
        ("wf-shards", "pending", "NULL"),
        ("wf-other", "failed", "50"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (wf, status, ms))| {
        format!(
            "({}, 'together-{i}', '{wf}', 'together', '{status}', {ms})",
            super::raw::uuid_lit(&store, uuid::Uuid::new_v4())
        )
    })
    .collect();
    let inserted = store
        .backend()
        .execute_raw(&format!(
            "INSERT INTO workflow_executions (id, execution_id, workflow_id, workflow_name,
                 status, actual_duration) VALUES {}",
            rows.join(", ")
        ))
        .await
        .unwrap();
    assert_eq!(inserted, 4);
    assert_eq!(counted(&store, "wf-shards").await, (7, 3, 1));
    assert_eq!(counted(&store, "wf-other").await, (1, 0, 1));
    let mut tx = store.begin_read().await.unwrap();
    let s = tx
        .workflow_statistics("wf-shards", Some(RunStatus::Completed))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(s.average_duration, Some(200.0));
    no_counter_drift(&store).await;

    store.backend().migrate_down(9).await.unwrap();
    assert_eq!(counted(&store, "wf-shards").await, (7, 3, 1));
    no_counter_drift(&store).await;
    store.backend().migrate_up(None).await.unwrap();
    assert_eq!(counted(&store, "wf-shards").await, (7, 3, 1));
    no_counter_drift(&store).await;
}

/// (count, average, least, greatest) of metric `m-shard`, from the rollups.
async fn rolled_up(store: &Store) -> (i64, Option<f64>, Option<f64>, Option<f64>) {
    let mut tx = store.begin_read().await.unwrap();
    let all = tx
        .aggregated_metrics_from_rollups(&AggregateFilter {
            metric_name: Some("m-shard".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    let a = &all[0];
    (a.count, a.average_value, a.min_value, a.max_value)
}

/// A metric's hourly rollup may be spread over shards: readers and the integrity
/// check merge them, and migrating down folds them into one row.
async fn metric_rollups_merge_over_shards_and_migrations(store: Store) {
    let mut tx = store.begin().await.unwrap();
    for v in [2.0, 4.0] {
        tx.record_metric(NewMetric {
            metric_name: "m-shard".into(),
            metric_value: Some(v),
            // Both in one hour, so one rollup row.
            recorded_at: Some(Utc.with_ymd_and_hms(2024, 3, 1, 10, 0, 0).unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let whole = (2, Some(3.0), Some(2.0), Some(4.0));
    assert_eq!(rolled_up(&store).await, whole);

    // Move the second sample into a shard of its own, as a second connection would
    // have written it. Shard 64: a connection's own is its process ID modulo 64, so
    // this one is never the shard the samples above went to.
    execute(
        &store,
        "INSERT INTO metric_rollups (bucket_start, metric_name, metric_type, shard,
                 sample_count, value_sum, value_min, value_max)
             SELECT bucket_start, metric_name, metric_type, 64, 1, 4.0, 4.0, 4.0
               FROM metric_rollups WHERE metric_name = 'm-shard'",
    )
    .await;
    execute(
        &store,
        "UPDATE metric_rollups SET sample_count = 1, value_sum = 2.0, value_max = 2.0
              WHERE metric_name = 'm-shard' AND shard <> 64",
    )
    .await;
    assert_eq!(rolled_up(&store).await, whole);
    no_counter_drift(&store).await;

    store.backend().migrate_down(9).await.unwrap();
    assert_eq!(rolled_up(&store).await, whole);
    no_counter_drift(&store).await;
    store.backend().migrate_up(None).await.unwrap();
    assert_eq!(rolled_up(&store).await, whole);
    no_counter_drift(&store).await;
}

//! `check`, `stats`, `vacuum` and retention on both backends: corruption planted
//! with raw SQL is found and repaired, cleanup deletes exactly what is old and
//! finished, and the statistics are sane; expired and soon expiring credentials are
//! reported and left to their owners.

use crate::binary::flowstore as cli;
use flowstore_testkit::fixtures;
use flowstore_testkit::fixtures::execute;
use std::collections::HashSet;
use std::time::Duration;

use flowstore::ids::{RunId, WorkflowId};
use flowstore::model::engine::{AttemptRef, ClaimRequest, ClaimedTask, StartRun};
use flowstore::model::identity::NewUser;
use flowstore::model::identity_access::NewSession;
use flowstore::{BackendKind, Store};
use flowstore_core::admin::{self, FindingKind, RetentionPolicy};
use serde_json::json;

/// The commands through the binary, on a database of each backend.
mod binary {
    use super::commands_through_the_binary;

    per_database!(commands_through_the_binary);
}

/// Checks beside writers on a pool of one connection.
mod tiny_pool {
    use super::check_beside_writers_on_a_pool_of_one;

    flowstore_testkit::__per_backend!(pooled; db => &db; check_beside_writers_on_a_pool_of_one);
}

conformance!(
    check_finds_and_fixes_planted_corruption,
    cleanup_deletes_only_old_finished_runs,
    cleanup_deletes_old_events_by_number,
    stats_and_vacuum_report_sane_numbers,
    check_reports_expired_and_expiring_credentials,
    check_reports_migration_drift_and_keys_are_never_null,
);

const PAST: &str = "'2000-01-01T00:00:00.000000Z'";

/// A UUID as a literal of the backend's SQL.
fn lit(store: &Store, id: uuid::Uuid) -> String {
    match store.kind() {
        BackendKind::Sqlite => format!("X'{}'", id.simple()),
        BackendKind::Postgres => format!("'{id}'"),
    }
}

fn random_id(store: &Store) -> &'static str {
    match store.kind() {
        BackendKind::Sqlite => "randomblob(16)",
        BackendKind::Postgres => "gen_random_uuid()",
    }
}

async fn setup(store: &Store, steps: serde_json::Value) -> WorkflowId {
    let mut tx = store.begin().await.unwrap();
    fixtures::handler(&mut tx, "shell").await;
    let wf = fixtures::active_workflow(&mut tx, "wf", json!({ "steps": steps })).await;
    tx.commit().await.unwrap();
    wf.id
}

async fn start(store: &Store, wf: WorkflowId) -> RunId {
    let mut tx = store.begin().await.unwrap();
    let run = tx
        .start_run(StartRun {
            workflow_id: wf,
            ..Default::default()
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    run.run.id
}

async fn claim_one(store: &Store) -> ClaimedTask {
    let mut tx = store.begin().await.unwrap();
    let mut c = tx
        .claim(&ClaimRequest {
            worker_id: "w".into(),
            handler_types: vec!["shell".into()],
            limit: 1,
            lease: Duration::from_secs(60),
            executor: None,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    c.pop().expect("a ready task")
}

async fn complete(store: &Store, c: &ClaimedTask) {
    let mut tx = store.begin().await.unwrap();
    tx.complete(
        AttemptRef {
            task_id: c.task_id,
            attempt: c.attempt,
        },
        json!({}),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

fn kinds(findings: &[admin::Finding]) -> HashSet<FindingKind> {
    findings.iter().map(|f| f.kind).collect()
}

async fn check_finds_and_fixes_planted_corruption(store: Store) {
    let wf = setup(
        &store,
        json!([
            {"key": "a", "handler": "shell"},
            {"key": "b", "handler": "shell", "depends_on": ["a"]}
        ]),
    )
    .await;
    let clean = admin::check(store.backend(), false).await.unwrap();
    assert!(clean.is_clean(), "a fresh database is clean: {clean:?}");

    // Lost promotion: `a` completed, then `b` put back to pending.
    start(&store, wf).await;
    let a1 = claim_one(&store).await;
    complete(&store, &a1).await;
    let b1 = claim_one(&store).await;
    execute(
        &store,
        &format!(
            "UPDATE tasks SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL
              WHERE id = {}",
            lit(&store, b1.task_id.0)
        ),
    )
    .await;
    // Expired lease.
    start(&store, wf).await;
    let a2 = claim_one(&store).await;
    execute(
        &store,
        &format!(
            "UPDATE tasks SET lease_expires_at = {PAST} WHERE id = {}",
            lit(&store, a2.task_id.0)
        ),
    )
    .await;
    // A finished run with open tasks.
    let r3 = start(&store, wf).await;
    execute(
        &store,
        &format!(
            "UPDATE workflow_executions SET status = 'failed' WHERE id = {}",
            lit(&store, r3.0)
        ),
    )
    .await;
    // Counter drift.
    execute(
        &store,
        "UPDATE workflow_stats SET executions = executions + 7",
    )
    .await;
    execute(
        &store,
        "UPDATE metric_rollups SET value_sum = value_sum + 1000",
    )
    .await;
    // An expired session and a lock that has run out.
    let mut tx = store.begin().await.unwrap();
    let user = tx
        .create_user(NewUser {
            email: "ops@example.com".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    tx.create_session(NewSession {
        user_id: user.id,
        expires_at: chrono::Utc::now() + chrono::TimeDelta::hours(1),
        ip_address: None,
        user_agent: None,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    execute(
        &store,
        &format!("UPDATE user_sessions SET expires_at = {PAST}"),
    )
    .await;
    execute(&store, &format!("UPDATE users SET locked_until = {PAST}")).await;
    // Orphans: an event of a run that does not exist (no foreign key there) and, on
    // SQLite, a log row written with foreign keys off.
    let id = random_id(&store);
    execute(
        &store,
        &format!("INSERT INTO events (event_type, run_id) VALUES ('task.ready', {id})"),
    )
    .await;
    if store.kind() == BackendKind::Sqlite {
        execute(
            &store,
            "PRAGMA foreign_keys = OFF;
             INSERT INTO logs (id, level, execution_id, message)
             VALUES (randomblob(16), 'info', randomblob(16), 'orphan');
             PRAGMA foreign_keys = ON;",
        )
        .await;
    }

    // The search loses a task, as when a raw writer switches its triggers off.
    if store.kind() == BackendKind::Sqlite {
        execute(
            &store,
            "INSERT INTO tasks_fts (tasks_fts, rowid, title, description)
             SELECT 'delete', rowid, title, description FROM tasks ORDER BY rowid LIMIT 1",
        )
        .await;
    } else {
        execute(
            &store,
            "DELETE FROM task_search WHERE task_id = (SELECT id FROM tasks ORDER BY id LIMIT 1)",
        )
        .await;
    }

    let found = admin::check(store.backend(), false).await.unwrap();
    let got = kinds(&found.findings);
    for k in [
        FindingKind::SearchDrift,
        FindingKind::LostPromotion,
        FindingKind::ExpiredLease,
        FindingKind::TerminalRunOpenTasks,
        FindingKind::WorkflowStatsDrift,
        FindingKind::MetricRollupDrift,
        FindingKind::ExpiredSession,
        FindingKind::StaleLock,
        FindingKind::Orphan,
    ] {
        assert!(got.contains(&k), "{k:?} found in {:#?}", found.findings);
    }
    if store.kind() == BackendKind::Sqlite {
        assert!(found
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::Orphan && f.table == "logs"));
    }
    let lost = found
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::LostPromotion)
        .unwrap();
    assert_eq!(lost.count, 1);
    assert_eq!(lost.examples, vec![b1.task_id.0.to_string()]);
    assert!(!found.is_clean());

    let fixed = admin::check(store.backend(), true).await.unwrap();
    assert!(fixed.is_clean(), "repairs leave nothing: {fixed:#?}");
    assert!(fixed.repairs.iter().all(|r| r.fixed > 0), "{fixed:#?}");
    let again = admin::check(store.backend(), false).await.unwrap();
    assert!(again.is_clean(), "a second check is clean: {again:#?}");

    // The promoted task can be claimed again; the session is gone.
    let mut tx = store.begin_read().await.unwrap();
    let b = tx.get_task(b1.task_id).await.unwrap();
    assert_eq!(b.status.as_str(), "ready");
    drop(tx);
}

async fn cleanup_deletes_only_old_finished_runs(store: Store) {
    let wf = setup(&store, json!([{"key": "a", "handler": "shell"}])).await;
    let old = start(&store, wf).await;
    complete(&store, &claim_one(&store).await).await;
    let recent = start(&store, wf).await;
    complete(&store, &claim_one(&store).await).await;
    let running = start(&store, wf).await;
    execute(&store,
        &format!(
            "UPDATE workflow_executions SET start_time = {PAST}, end_time = '2000-01-02T00:00:00.000000Z'
              WHERE id = {}",
            lit(&store, old.0)
        ),
    )
    .await;
    execute(
        &store,
        &format!(
            "UPDATE workflow_executions SET start_time = {PAST} WHERE id = {}",
            lit(&store, running.0)
        ),
    )
    .await;
    // Bulk that belongs to the old run, so that the file has something to give back.
    let old_lit = lit(&store, old.0);
    let id = random_id(&store);
    let bulk = match store.kind() {
        BackendKind::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
             INSERT INTO logs (id, level, execution_id, message)
             SELECT randomblob(16), 'info', {old_lit}, hex(randomblob(400)) FROM n"
        ),
        BackendKind::Postgres => format!(
            "INSERT INTO logs (id, level, execution_id, message)
             SELECT gen_random_uuid(), 'info', {old_lit}, repeat(md5(random()::text), 25)
               FROM generate_series(1, 3000)"
        ),
    };
    execute(&store, &bulk).await;
    execute(
        &store,
        &format!(
            "INSERT INTO system_metrics (id, metric_name, metric_value, recorded_at)
             VALUES ({id}, 'cpu', 1, {PAST}), ({id}, 'cpu', 2, '2999-01-01T00:00:00.000000Z')"
        ),
    )
    .await;

    assert!(matches!(
        admin::cleanup(store.backend(), Duration::ZERO, 10, true, &|_| {}).await,
        Err(flowstore::StoreError::Invalid { ref field, .. }) if field == "--older-than"
    ));
    let day = Duration::from_secs(86_400);
    let dry = admin::cleanup(store.backend(), day, 1, true, &|_| {})
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.deleted.get("workflow_executions"), Some(&1), "{dry:?}");
    assert_eq!(dry.deleted.get("tasks"), Some(&1));
    assert_eq!(dry.deleted.get("logs"), Some(&3000));
    assert_eq!(dry.deleted.get("system_metrics"), Some(&1));
    assert!(dry.deleted.get("task_executions").is_some_and(|n| *n >= 1));

    // Dry runs change nothing.
    let mut tx = store.begin_read().await.unwrap();
    tx.get_execution(old)
        .await
        .expect("still there after a dry run");
    drop(tx);

    let report = admin::cleanup(store.backend(), day, 1, false, &|_| {})
        .await
        .unwrap();
    assert_eq!(report.deleted, dry.deleted, "deleted what the dry run said");
    assert!(report.batches >= 3, "one run per batch: {report:?}");
    let mut tx = store.begin_read().await.unwrap();
    assert!(tx.get_execution(old).await.is_err(), "the old run is gone");
    tx.get_execution(recent)
        .await
        .expect("the recent run stays");
    tx.get_execution(running)
        .await
        .expect("the running run stays");
    drop(tx);
    if store.kind() == BackendKind::Sqlite {
        assert!(
            report.bytes_after < report.bytes_before,
            "the file shrinks: {report:?}"
        );
    }
    // Counters follow the deletes; nothing points at the deleted run.
    let after = admin::check(store.backend(), false).await.unwrap();
    let k = kinds(&after.remaining);
    assert!(!k.contains(&FindingKind::WorkflowStatsDrift), "{after:#?}");
    assert!(!k.contains(&FindingKind::Orphan), "{after:#?}");
    assert!(!k.contains(&FindingKind::SearchDrift), "{after:#?}");

    // A second pass (as the policy would run it) finds nothing more.
    let policy = RetentionPolicy {
        older_than: day,
        interval: Duration::from_secs(3600),
    };
    let again = admin::run_retention(store.backend(), &policy)
        .await
        .unwrap();
    assert!(again.deleted.is_empty(), "{again:?}");
    let text = serde_json::to_value(&policy).unwrap();
    assert_eq!(text, json!({"older_than": "1d", "interval": "1h"}));
}

/// Events without a run are deleted by number from the oldest, up to the first one
/// not older than the cutoff, and only once numbered: an older event numbered after
/// a newer one waits for a later pass, and an unnumbered one (no reader has seen it)
/// stays whatever its age.
async fn cleanup_deletes_old_events_by_number(store: Store) {
    const LATER: &str = "'2999-01-01T00:00:00.000000Z'";
    for (seq, at) in [(1, PAST), (2, PAST), (3, LATER), (4, PAST)] {
        execute(
            &store,
            &format!(
                "INSERT INTO events (seq, event_type, payload, created_at)
                 VALUES ({seq}, 'test.numbered', '{{}}', {at})"
            ),
        )
        .await;
    }
    execute(
        &store,
        &format!(
            "INSERT INTO events (event_type, payload, created_at)
             VALUES ('test.unnumbered', '{{}}', {PAST})"
        ),
    )
    .await;

    let day = Duration::from_secs(86_400);
    let dry = admin::cleanup(store.backend(), day, 1, true, &|_| {})
        .await
        .unwrap();
    assert_eq!(dry.deleted.get("events"), Some(&2), "{dry:?}");
    let report = admin::cleanup(store.backend(), day, 1, false, &|_| {})
        .await
        .unwrap();
    assert_eq!(report.deleted, dry.deleted, "deleted what the dry run said");
    let mut tx = store.begin_read().await.unwrap();
    let left: Vec<i64> = tx
        .events_after(0, &Default::default(), 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    drop(tx);
    assert_eq!(
        left,
        [3, 4],
        "the two oldest went, the one behind a newer stays"
    );
    let again = admin::cleanup(store.backend(), day, 1, false, &|_| {})
        .await
        .unwrap();
    assert_eq!(
        again.deleted.get("events").copied().unwrap_or(0),
        0,
        "{again:?}"
    );

    // Once the newer event is old too, the next pass takes both.
    execute(
        &store,
        &format!("UPDATE events SET created_at = {PAST} WHERE seq = 3"),
    )
    .await;
    let last = admin::cleanup(store.backend(), day, 1, false, &|_| {})
        .await
        .unwrap();
    assert_eq!(last.deleted.get("events"), Some(&2), "{last:?}");
}

/// A check that runs while writers come and go, on a pool of a single connection,
/// finishes and lets every writer finish: it takes the writer's place and the
/// connection in the order the writers take them.
async fn check_beside_writers_on_a_pool_of_one(db: &flowstore_testkit::TestDb) {
    let store = db.store_with(|s| s.pool_max = 1).await;
    let work = async {
        let writers = (0..4).map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..15 {
                    let mut tx = store.begin().await.unwrap();
                    fixtures::handler(&mut tx, &format!("h{w}-{i}")).await;
                    tx.commit().await.unwrap();
                }
            })
        });
        let writers: Vec<_> = writers.collect();
        for _ in 0..5 {
            let report = admin::check(store.backend(), false).await.unwrap();
            assert!(
                !kinds(&report.remaining).contains(&FindingKind::SearchDrift),
                "{report:#?}"
            );
        }
        for w in writers {
            w.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(60), work)
        .await
        .expect("checks and writers on one connection all finish");
    let mut tx = store.begin_read().await.unwrap();
    let handlers = tx
        .list_handlers(&flowstore_core::page::PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(
        handlers.items.len(),
        60,
        "every writer's handlers were written"
    );
}

async fn stats_and_vacuum_report_sane_numbers(store: Store) {
    let wf = setup(&store, json!([{"key": "a", "handler": "shell"}])).await;
    start(&store, wf).await;
    let s = store.backend().admin().stats().await.unwrap();
    assert!(s.database_bytes > 0);
    let runs = s
        .tables
        .iter()
        .find(|t| t.name == "workflow_executions")
        .expect("runs are listed");
    assert_eq!(runs.rows, 1);
    assert!(s.tables.iter().any(|t| t.name == "tasks" && t.rows == 1));
    assert!(!s.indexes.is_empty());
    assert!(s.connections.pool_size >= 1);
    assert!(!s.notes.is_empty(), "says what it cannot tell");
    match store.kind() {
        BackendKind::Sqlite => assert!(s.freelist_pages.is_some()),
        BackendKind::Postgres => {
            assert!(s.dead_rows.is_some());
            assert!(s.indexes.iter().all(|i| i.scans.is_some()));
            assert!(!s.connections.server_by_state.is_empty());
        }
    }
    let v = admin::vacuum(store.backend()).await.unwrap();
    assert!(v.bytes_before > 0 && v.bytes_after > 0);
    assert!(v.steps.iter().any(|s| s.contains("VACUUM")));
    assert_eq!(v.reclaimed, v.bytes_before.saturating_sub(v.bytes_after));
}

async fn check_reports_expired_and_expiring_credentials(store: Store) {
    let now = flowstore::time::now();
    let mut tx = store.begin().await.unwrap();
    let mut ids = Vec::new();
    for (name, days) in [("gone", -1), ("soon", 3), ("later", 30)] {
        let expires_at = Some(now + chrono::TimeDelta::days(days));
        let c = fixtures::credential(&mut tx, name, json!("t"), expires_at).await;
        ids.push(c.id.to_string());
    }
    fixtures::credential(&mut tx, "forever", json!("t"), None).await;
    tx.commit().await.unwrap();

    let report = admin::check(store.backend(), true).await.unwrap();
    let of = |kind| {
        report
            .findings
            .iter()
            .find(|f| f.kind == kind)
            .unwrap_or_else(|| panic!("{kind:?} reported: {report:?}"))
    };
    let expired = of(FindingKind::ExpiredCredential);
    assert_eq!((expired.table.as_str(), expired.count), ("credentials", 1));
    assert_eq!(expired.examples, vec![ids[0].clone()]);
    let expiring = of(FindingKind::ExpiringCredential);
    assert_eq!(expiring.count, 1);
    assert_eq!(expiring.examples, vec![ids[1].clone()]);
    // Only the owner can give a new secret: --fix leaves both and says why.
    for kind in [
        FindingKind::ExpiredCredential,
        FindingKind::ExpiringCredential,
    ] {
        let r = report.repairs.iter().find(|r| r.kind == kind).unwrap();
        assert!(r.note.as_deref().unwrap().contains("expires_at"), "{r:?}");
        assert!(report.remaining.iter().any(|f| f.kind == kind));
    }
    assert_eq!(kinds(&report.findings).len(), 2, "{report:?}");
}

/// The four commands through the binary: JSON out, exit codes, refused input.
async fn commands_through_the_binary(url: String) {
    assert!(cli(&url, &["migrate", "up"]).status.success());
    let check = cli(&url, &["check", "--json"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(report["remaining"], json!([]));
    for cmd in [&["stats", "--json"][..], &["vacuum", "--json"][..]] {
        let out = cli(&url, cmd);
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v.is_object());
    }
    let dry = cli(
        &url,
        &["cleanup", "--older-than", "90d", "--dry-run", "--json"],
    );
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(v["dry_run"], json!(true));
    for bad in ["0d", "soon", "90"] {
        let out = cli(&url, &["cleanup", "--older-than", bad]);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--older-than"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A problem makes check fail until --fix repairs it.
    let store = flowstore::Store::open(&url).await.unwrap();
    execute(
        &store,
        "UPDATE workflow_stats SET executions = executions + 1",
    )
    .await;
    execute(&store,
        "INSERT INTO workflow_stats (workflow_id, status, executions) VALUES ('ghost', 'completed', 3)",
    )
    .await;
    store.close().await;
    assert!(!cli(&url, &["check"]).status.success());
    let fixed = cli(&url, &["check", "--fix"]);
    assert!(
        fixed.status.success(),
        "{}",
        String::from_utf8_lossy(&fixed.stdout)
    );
    assert!(cli(&url, &["check"]).status.success());
}

/// A migration edited after it was applied, and one applied by a newer flowstore,
/// are reported by `check`; a row with a NULL key is refused by both backends (SQLite
/// by triggers, its keys being nullable by nature), and one left from before is
/// reported.
async fn check_reports_migration_drift_and_keys_are_never_null(store: Store) {
    let report = admin::check(store.backend(), false).await.unwrap();
    assert!(
        !report
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::MigrationDrift),
        "{report:?}"
    );
    execute(
        &store,
        "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1",
    )
    .await;
    execute(&store, "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (9999, 'future', 'x', '2030-01-01T00:00:00.000000Z')").await;
    let report = admin::check(store.backend(), true).await.unwrap();
    let drift: Vec<_> = report
        .remaining
        .iter()
        .filter(|f| f.kind == FindingKind::MigrationDrift)
        .collect();
    assert_eq!(drift.len(), 2, "edited and unknown: {drift:?}");
    assert!(drift
        .iter()
        .any(|f| f.examples == ["1 identity"] && f.detail.contains("edited")));
    assert!(drift
        .iter()
        .any(|f| f.examples == ["9999 future"] && f.detail.contains("newer")));
    assert!(
        report
            .repairs
            .iter()
            .any(|r| r.kind == FindingKind::MigrationDrift && r.note.is_some()),
        "drift is not repaired behind the operator's back: {report:?}"
    );
    let by_hand = store
        .backend()
        .execute_raw("INSERT INTO logs (id, level, message) VALUES (NULL, 'info', 'no key')")
        .await;
    assert!(
        matches!(&by_hand, Err(flowstore::StoreError::Invalid { field, .. }) if field == "id"),
        "a NULL key is refused, naming id: {by_hand:?}"
    );
    if store.kind() == BackendKind::Sqlite {
        // A row written before the triggers existed.
        execute(&store, "DROP TRIGGER trg_logs_id_not_null_insert").await;
        execute(
            &store,
            "INSERT INTO logs (id, level, message) VALUES (NULL, 'info', 'no key')",
        )
        .await;
        let report = admin::check(store.backend(), false).await.unwrap();
        let null = report
            .findings
            .iter()
            .find(|f| f.kind == FindingKind::NullKey)
            .expect("a row without a key is reported");
        assert_eq!((null.table.as_str(), null.count), ("logs", 1), "{null:?}");
    }
}

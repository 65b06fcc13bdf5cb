//! Seed 000's own clients against this schema: rows inserted with plain SQL, random
//! (v4) IDs and the `paused` status; lists ordered by time; rollups kept for samples
//! that did not go through flowstore.

use std::time::Duration;

use flowstore::ids::TaskId;
use flowstore::model::engine::ClaimRequest;
use flowstore::model::metric::AggregateFilter;
use flowstore::model::run::RunStatus;
use flowstore::model::task::{NewTask, TaskPatch};
use flowstore::{PageRequest, Store};
use flowstore_core::admin::FindingKind;
use flowstore_testkit::fixtures::{execute, problems};
use uuid::Uuid;

conformance!(
    runs_inserted_by_seed_000_list_by_time,
    metrics_inserted_by_seed_000_keep_rollups,
    a_paused_run_is_not_claimed,
);

fn sqlite(store: &Store) -> bool {
    format!("{:?}", store.kind()) == "Sqlite"
}

/// A random (v4) UUID as a literal, as seed 000's clients make them.
fn v4(store: &Store) -> (Uuid, String) {
    let u = Uuid::new_v4();
    let lit = if sqlite(store) {
        format!("X'{}'", u.simple())
    } else {
        format!("'{u}'")
    };
    (u, lit)
}

/// The instant 2024-03-01 10:`minute` UTC as each backend stores it.
fn at(store: &Store, minute: u32) -> String {
    if sqlite(store) {
        format!("'2024-03-01T10:{minute:02}:00.000000Z'")
    } else {
        format!("'2024-03-01T10:{minute:02}:00Z'")
    }
}

/// A run inserted as seed 000's `create` does (plus the id SQLite cannot default).
async fn insert_run(store: &Store, execution_id: &str, status: &str, minute: u32) -> Uuid {
    let (id, lit) = v4(store);
    execute(
        store,
        &format!(
            "INSERT INTO workflow_executions (id, execution_id, workflow_id, workflow_name,
                 status, priority, created_at, updated_at)
             VALUES ({lit}, '{execution_id}', 'seed-wf', 'seed', '{status}', 1, {t}, {t})",
            t = at(store, minute)
        ),
    )
    .await;
    id
}

/// Runs with random IDs come back newest first by creation time, page after page,
/// `paused` among them; a cursor of the older ID-only form still pages.
async fn runs_inserted_by_seed_000_list_by_time(store: Store) {
    let mut made = Vec::new();
    for (i, status) in [
        "pending",
        "running",
        "paused",
        "completed",
        "failed",
        "paused",
    ]
    .iter()
    .enumerate()
    {
        made.push(insert_run(&store, &format!("seed-{i}"), status, i as u32).await);
    }
    // Two runs of one instant are ordered by ID.
    let twin = insert_run(&store, "seed-twin", "running", 5).await;
    let mut want: Vec<(u32, Uuid)> = made
        .iter()
        .enumerate()
        .map(|(i, id)| (i as u32, *id))
        .collect();
    want.push((5, twin));
    want.sort_by(|a, b| b.cmp(a));
    let want: Vec<Uuid> = want.into_iter().map(|(_, id)| id).collect();

    let mut tx = store.begin_read().await.unwrap();
    let mut got = Vec::new();
    let mut page = PageRequest::first(2);
    loop {
        let p = tx.list_by_workflow("seed-wf", None, &page).await.unwrap();
        got.extend(p.items.iter().map(|r| r.id.0));
        match p.next_cursor {
            Some(c) => page = PageRequest::after(c, 2),
            None => break,
        }
    }
    assert_eq!(got, want, "newest first by time, then by ID");

    let paused = tx
        .list_by_workflow("seed-wf", Some(RunStatus::Paused), &PageRequest::first(10))
        .await
        .unwrap();
    let ids: Vec<Uuid> = paused.items.iter().map(|r| r.id.0).collect();
    assert_eq!(ids, vec![made[5], made[2]]);
    assert!(paused.items.iter().all(|r| r.status == RunStatus::Paused));

    // An ID-only cursor (the form issued before) continues after that run.
    let old = flowstore_core::page::encode_cursor(want[1]);
    let p = tx
        .list_by_workflow("seed-wf", None, &PageRequest::after(old, 2))
        .await
        .unwrap();
    let ids: Vec<Uuid> = p.items.iter().map(|r| r.id.0).collect();
    assert_eq!(ids, want[2..4].to_vec());
    // One of a run that is gone, or garbage, is a bad cursor, not an error of ours.
    let gone = flowstore_core::page::encode_cursor(Uuid::new_v4());
    for bad in [gone.as_str(), "t12.zz", "garbage"] {
        assert_err!(
            tx.list_by_workflow("seed-wf", None, &PageRequest::after(bad, 2))
                .await,
            Invalid,
            "cursor"
        );
    }
}

/// Seed 000's `recordMetric` inserts straight into `workflow_metrics`: the rollups
/// follow, so `flowstore check` finds no drift and the rollups agree with the
/// samples.
async fn metrics_inserted_by_seed_000_keep_rollups(store: Store) {
    insert_run(&store, "seed-m", "running", 0).await;
    for (minute, value) in [(1, "1.5"), (2, "4"), (3, "NULL"), (70, "10")] {
        let (_, lit) = v4(&store);
        execute(
            &store,
            &format!(
                "INSERT INTO workflow_metrics (id, execution_id, metric_name, metric_value,
                     metric_unit, metric_type, metadata, recorded_at)
                 VALUES ({lit}, 'seed-m', 'seed_latency', {value}, 'ms', 'performance', '{{}}',
                         {})",
                if minute < 60 {
                    at(&store, minute)
                } else {
                    at(&store, 0).replace("10:00", "11:10")
                }
            ),
        )
        .await;
    }
    // Several rows in one statement, as a bulk load writes them.
    let ((_, a), (_, b)) = (v4(&store), v4(&store));
    execute(
        &store,
        &format!(
            "INSERT INTO workflow_metrics (id, execution_id, metric_name, metric_value, recorded_at)
             VALUES ({a}, 'seed-m', 'seed_count', 2, {t}), ({b}, NULL, 'seed_count', 3, {t})",
            t = at(&store, 5)
        ),
    )
    .await;

    let findings = problems(&store).await;
    assert!(
        !findings
            .iter()
            .any(|f| f.kind == FindingKind::MetricRollupDrift),
        "{findings:?}"
    );
    let mut tx = store.begin_read().await.unwrap();
    let all = AggregateFilter::default();
    let raw = tx.aggregated_metrics(&all).await.unwrap();
    let rolled = tx.aggregated_metrics_from_rollups(&all).await.unwrap();
    let sums = |v: &[flowstore::model::metric::MetricAggregate]| {
        v.iter()
            .filter(|m| m.metric_name.starts_with("seed_"))
            .map(|m| (m.metric_name.clone(), m.count, m.min_value, m.max_value))
            .collect::<Vec<_>>()
    };
    // The sample without a value is counted by the raw aggregation only.
    assert_eq!(
        sums(&raw),
        vec![
            ("seed_count".to_string(), 2, Some(2.0), Some(3.0)),
            ("seed_latency".to_string(), 4, Some(1.5), Some(10.0)),
        ]
    );
    assert_eq!(
        sums(&rolled),
        vec![
            ("seed_count".to_string(), 2, Some(2.0), Some(3.0)),
            ("seed_latency".to_string(), 3, Some(1.5), Some(10.0)),
        ]
    );
}

/// A run that seed 000's client pauses keeps its ready tasks from workers until it
/// is running again.
async fn a_paused_run_is_not_claimed(store: Store) {
    let run = insert_run(&store, "seed-p", "running", 0).await;
    let mut tx = store.begin().await.unwrap();
    let t = tx
        .create_task(NewTask {
            title: "step".into(),
            run_id: Some(flowstore::ids::RunId(run)),
            handler_type: Some("seed-h".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let ready: TaskPatch = serde_json::from_value(serde_json::json!({"status": "ready"})).unwrap();
    tx.update_task(t.id, ready).await.unwrap();
    tx.commit().await.unwrap();
    let lit = if sqlite(&store) {
        format!("X'{}'", run.simple())
    } else {
        format!("'{run}'")
    };
    execute(
        &store,
        &format!("UPDATE workflow_executions SET status = 'paused' WHERE id = {lit}"),
    )
    .await;
    let claim = || ClaimRequest {
        worker_id: "w".into(),
        handler_types: vec!["seed-h".into()],
        limit: 5,
        lease: Duration::from_secs(30),
        executor: None,
    };
    let got = store.backend().claim_now(&claim()).await.unwrap();
    assert!(got.is_empty(), "a paused run's task was claimed: {got:?}");
    execute(
        &store,
        &format!("UPDATE workflow_executions SET status = 'running' WHERE id = {lit}"),
    )
    .await;
    let got = store.backend().claim_now(&claim()).await.unwrap();
    let ids: Vec<TaskId> = got.iter().map(|c| c.task_id).collect();
    assert_eq!(ids, vec![t.id]);
}

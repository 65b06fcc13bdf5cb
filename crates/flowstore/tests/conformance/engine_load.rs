//! The engine under load: many workers claiming and completing many tasks at once,
//! and transactions cut off half-way.

use flowstore_testkit::fixtures;
use flowstore_testkit::fixtures::execute;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use flowstore::ids::TaskId;
use flowstore::model::engine::{AttemptRef, ClaimRequest, StartRun};
use flowstore::model::registry::NewHandler;
use flowstore::model::run::{RunStatus, StatsFilter};
use flowstore::Store;
use serde_json::json;

conformance!(
    sixteen_workers_complete_every_task_exactly_once,
    a_transaction_cut_off_leaves_no_trace,
    begins_abandoned_half_way_leave_no_transaction_open
);

const RUNS: usize = 200;
const STEPS: usize = 100;
const WORKERS: usize = 16;

async fn sixteen_workers_complete_every_task_exactly_once(store: Store) {
    let mut tx = store.begin().await.unwrap();
    fixtures::handler(&mut tx, "load").await;
    // A wide workflow: ten roots, each with nine dependents, so that completions keep
    // making new work ready while workers race for it.
    let steps: Vec<_> = (0..STEPS)
        .map(|i| {
            let deps = if i % 10 == 0 {
                vec![]
            } else {
                vec![format!("s{}", i - i % 10)]
            };
            json!({"key": format!("s{i}"), "handler": "load", "depends_on": deps})
        })
        .collect();
    let wf = fixtures::active_workflow(&mut tx, "load", json!({ "steps": steps })).await;
    tx.commit().await.unwrap();
    for chunk in 0..RUNS / 20 {
        let mut tx = store.begin().await.unwrap();
        for i in 0..20 {
            tx.start_run(StartRun {
                workflow_id: wf.id,
                execution_id: Some(format!("load-{chunk}-{i}")),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }

    let completed = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for w in 0..WORKERS {
        let store = store.clone();
        let completed = completed.clone();
        handles.push(tokio::spawn(async move {
            let mut seen: Vec<(TaskId, i32)> = Vec::new();
            let mut idle = 0;
            while completed.load(Ordering::SeqCst) < RUNS * STEPS {
                let request = ClaimRequest {
                    worker_id: format!("worker-{w}"),
                    handler_types: vec!["load".into()],
                    limit: 4,
                    lease: Duration::from_secs(600),
                    executor: None,
                };
                // Half the workers go through the `_now` transitions (on SQLite the
                // group writer), half through transactions of their own, so the two
                // kinds of writers take turns under load.
                let claimed = if w % 2 == 1 {
                    store.backend().claim_now(&request).await.unwrap()
                } else {
                    let mut tx = store.begin().await.unwrap();
                    let claimed = tx.claim(&request).await.unwrap();
                    tx.commit().await.unwrap();
                    claimed
                };
                if claimed.is_empty() {
                    idle += 1;
                    assert!(idle < 20_000, "worker {w} starved: work is left behind");
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                idle = 0;
                for c in claimed {
                    let attempt = AttemptRef {
                        task_id: c.task_id,
                        attempt: c.attempt,
                    };
                    if w % 2 == 1 {
                        store
                            .backend()
                            .complete_now(attempt, json!({"by": w}))
                            .await
                            .unwrap();
                    } else {
                        let mut tx = store.begin().await.unwrap();
                        tx.complete(attempt, json!({"by": w})).await.unwrap();
                        tx.commit().await.unwrap();
                    }
                    seen.push((c.task_id, c.attempt));
                    completed.fetch_add(1, Ordering::SeqCst);
                }
            }
            seen
        }));
    }
    let mut all: Vec<(TaskId, i32)> = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    assert_eq!(all.len(), RUNS * STEPS, "every task completed once");
    let distinct: HashSet<TaskId> = all.iter().map(|(t, _)| *t).collect();
    assert_eq!(distinct.len(), RUNS * STEPS, "no task was handed out twice");
    assert!(
        all.iter().all(|(_, a)| *a == 1),
        "no task needed a second attempt"
    );

    let mut tx = store.begin_read().await.unwrap();
    assert!(
        tx.queue_depth().await.unwrap().is_empty(),
        "nothing is left ready or running"
    );
    let counted = tx
        .workflow_statistics(&wf.id.to_string(), None)
        .await
        .unwrap();
    let recount = tx
        .execution_statistics(&StatsFilter {
            workflow_id: Some(wf.id.to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(counted.total_executions, RUNS as i64);
    assert_eq!(counted.completed_executions, RUNS as i64);
    assert_eq!(counted.total_executions, recount.total_executions);
    assert_eq!(counted.completed_executions, recount.completed_executions);
    assert_eq!(counted.failed_executions, recount.failed_executions);
    assert_eq!(
        (counted.min_duration, counted.max_duration),
        (recount.min_duration, recount.max_duration)
    );
    let (a, b) = (
        counted.average_duration.unwrap(),
        recount.average_duration.unwrap(),
    );
    assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    let completed_status = tx
        .execution_statistics(&StatsFilter {
            workflow_id: Some(wf.id.to_string()),
            status: Some(RunStatus::Completed),
        })
        .await
        .unwrap();
    assert_eq!(completed_status.total_executions, RUNS as i64);
}

async fn a_transaction_cut_off_leaves_no_trace(store: Store) {
    let mut tx = store.begin().await.unwrap();
    fixtures::handler(&mut tx, "h").await;
    let wf = fixtures::active_workflow(
        &mut tx,
        "cut",
        json!({"steps": [{"key": "a", "handler": "h"}]}),
    )
    .await;
    tx.commit().await.unwrap();

    // Start a run and cut the transaction off before it commits: the connection goes
    // away mid-transaction (the server kills the session on PostgreSQL; on SQLite the
    // transaction is abandoned without a commit, as when the process dies).
    let mut tx = store.begin().await.unwrap();
    tx.start_run(StartRun {
        workflow_id: wf.id,
        execution_id: Some("cut-off".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    if store.kind() == flowstore::BackendKind::Postgres {
        execute(&store, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            tx.commit().await.is_err(),
            "the cut-off transaction cannot commit"
        );
    } else {
        drop(tx);
    }
    let mut tx = store.begin().await.unwrap();
    assert_err!(tx.find_by_execution_id("cut-off").await, NotFound);
    assert!(
        tx.queue_depth().await.unwrap().is_empty(),
        "no task of the cut-off run exists"
    );
    // The store keeps working afterwards.
    tx.start_run(StartRun {
        workflow_id: wf.id,
        execution_id: Some("after".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// A caller may give up on `begin` at any moment (a client that disconnects drops its
/// request). Begins abandoned after many different delays must not leave a pooled
/// connection inside a transaction: on SQLite it would hold the write lock, and the
/// next writer would wait out the busy timeout and fail with "database is locked".
async fn begins_abandoned_half_way_leave_no_transaction_open(store: Store) {
    for i in 0..1000u64 {
        let wait = Duration::from_micros((i * 37) % 400);
        // Every other one begins as a worker transition does (on PostgreSQL a BEGIN
        // with a setting, sent as one simple query).
        if i % 2 == 0 {
            let _ = tokio::time::timeout(wait, store.begin()).await;
        } else {
            let _ = tokio::time::timeout(wait, store.begin_transition()).await;
        }
    }
    let mut tx = tokio::time::timeout(Duration::from_secs(5), store.begin())
        .await
        .expect("a writer is not locked out after abandoned begins")
        .unwrap();
    tx.register_handler(NewHandler {
        handler_type: "after-abandoned-begins".into(),
        handler_name: "after".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin_read().await.unwrap();
    assert!(tx.get_handler("after-abandoned-begins").await.is_ok());
}

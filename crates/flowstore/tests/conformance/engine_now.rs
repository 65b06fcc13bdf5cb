//! Worker transitions in transactions of their own (`claim_now`, `complete_now`,
//! `complete_many_now`, `heartbeat_now`, `fail_now`): on SQLite the ones queued while
//! the writer is busy are committed together (completions and heartbeats as one batch
//! each, claims together in one savepoint and again one by one when one of them
//! fails); on PostgreSQL completions, claims and heartbeats that arrive together share
//! a statement, failures a transaction. Either way each must answer and persist
//! exactly as if it were alone.

use flowstore_testkit::fixtures;
use std::collections::HashSet;
use std::time::Duration;

use flowstore::ids::TaskId;
use flowstore::model::engine::{AttemptRef, ClaimRequest, ClaimedTask, EventFilter};
use flowstore::model::task::{NewTask, TaskPatch, TaskStatus};
use flowstore::{BackendKind, Store, StoreError};
use flowstore_testkit::TestDb;
use serde_json::json;

conformance!(
    queued_transitions_answer_each_on_its_own,
    concurrent_workers_through_now_take_each_task_once,
    queued_claims_answer_each_on_its_own,
    queued_heartbeats_and_failures_answer_each_on_its_own,
    grouped_heartbeats_and_failures_answer_each_on_its_own,
    large_claims_and_batches_are_written_whole,
    a_database_error_fails_only_its_own_transition,
);

/// Stores opened with settings of their own.
mod configured {
    use super::claims_without_events_write_their_attempts_alone;

    flowstore_testkit::__per_backend!(pooled; db => &db; claims_without_events_write_their_attempts_alone);
}

/// Reports of a run's tasks through a store that did not claim them (another process
/// on one database): they must still go the engine's way and advance the run.
mod elsewhere {
    use super::reports_through_another_store_advance_the_run;

    flowstore_testkit::__per_backend!(pooled; db => &db; reports_through_another_store_advance_the_run);
}

async fn ready_tasks(store: &Store, handler: &str, n: usize) -> Vec<TaskId> {
    let mut tx = store.begin().await.unwrap();
    fixtures::handler(&mut tx, handler).await;
    tx.commit().await.unwrap();
    standalone_ready(store, handler, n).await
}

/// `n` tasks without a run, created ready for the registered `handler`.
pub(super) async fn standalone_ready(store: &Store, handler: &str, n: usize) -> Vec<TaskId> {
    let mut tx = store.begin().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let t = tx
            .create_task(NewTask {
                title: format!("{handler} {i}"),
                handler_type: Some(handler.into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let patch: TaskPatch = serde_json::from_value(json!({"status": "ready"})).unwrap();
        tx.update_task(t.id, patch).await.unwrap();
        ids.push(t.id);
    }
    tx.commit().await.unwrap();
    ids
}

fn request(worker: &str, handler: &str, limit: u32) -> ClaimRequest {
    ClaimRequest {
        worker_id: worker.into(),
        handler_types: vec![handler.into()],
        limit,
        lease: Duration::from_secs(600),
        executor: None,
    }
}

fn attempt(c: &ClaimedTask) -> AttemptRef {
    AttemptRef {
        task_id: c.task_id,
        attempt: c.attempt,
    }
}

async fn status(store: &Store, id: TaskId) -> TaskStatus {
    let mut tx = store.begin_read().await.unwrap();
    tx.get_task(id).await.unwrap().status
}

/// Transitions that queue while another writer holds the database or their rows (on
/// SQLite: one group in one transaction; on PostgreSQL: the single completions
/// waiting while the groups running are held share one statement and one commit)
/// each get their own answer: a refused one (a stale attempt, an unknown task, a
/// conflicting repeat, an empty batch) undoes nothing of the others, a task completed twice at once
/// with one output is answered twice as done, every accepted one is durable once
/// answered, and each task keeps its own output.
async fn queued_transitions_answer_each_on_its_own(store: Store) {
    const TASKS: usize = 12;
    let ids = ready_tasks(&store, "grouped", TASKS).await;
    let claimed = store
        .backend()
        .claim_now(&request("w", "grouped", TASKS as u32))
        .await
        .unwrap();
    assert_eq!(claimed.len(), TASKS);

    // Hold a write transaction on every claimed task, so that the transitions below
    // queue behind it (SQLite: the writer; PostgreSQL: the rows' locks).
    let mut holder = store.begin().await.unwrap();
    for c in &claimed {
        let patch: TaskPatch =
            serde_json::from_value(json!({"title": "held while the transitions queue"})).unwrap();
        holder.update_task(c.task_id, patch).await.unwrap();
    }
    let backend = store.backend_arc();
    let mut handles = Vec::new();
    // 0: completed alone; 1: stale attempt; 2: unknown task; 3 and 4: one batch with a
    // stale item inside; 5: completed, then repeated with another output (refused);
    // 6 twice with one output; 7 to 11: completed alone.
    let mut jobs: Vec<(usize, Vec<(AttemptRef, serde_json::Value)>)> = vec![
        (0, vec![(attempt(&claimed[0]), json!({"n": 0}))]),
        (
            1,
            vec![(
                AttemptRef {
                    task_id: claimed[1].task_id,
                    attempt: claimed[1].attempt + 1,
                },
                json!({}),
            )],
        ),
        (
            2,
            vec![(
                AttemptRef {
                    task_id: TaskId::new(),
                    attempt: 1,
                },
                json!({}),
            )],
        ),
        (
            3,
            vec![
                (attempt(&claimed[3]), json!({"n": 3})),
                (
                    AttemptRef {
                        task_id: claimed[4].task_id,
                        attempt: claimed[4].attempt + 7,
                    },
                    json!({}),
                ),
            ],
        ),
        (5, vec![(attempt(&claimed[5]), json!({"n": 5}))]),
        (6, vec![(attempt(&claimed[6]), json!({"n": 6}))]),
        (6, vec![(attempt(&claimed[6]), json!({"n": 6}))]),
    ];
    for (i, c) in claimed.iter().enumerate().skip(7) {
        jobs.push((i, vec![(attempt(c), json!({"n": i}))]));
    }
    // 99: an empty batch, refused as a whole (on SQLite its group, tried first
    // without savepoints, runs again with them; the others must not notice).
    jobs.push((99, Vec::new()));
    for (i, items) in jobs {
        let backend = backend.clone();
        handles.push(tokio::spawn(async move {
            let answer = if items.len() == 1 {
                let (a, out) = items.into_iter().next().unwrap();
                backend.complete_now(a, out).await.map(|t| vec![Ok(t)])
            } else {
                backend.complete_many_now(items).await
            };
            (i, answer)
        }));
    }
    let claim_more = {
        let backend = backend.clone();
        tokio::spawn(async move { backend.claim_now(&request("w2", "grouped", 5)).await })
    };
    // Give the transitions time to queue, then let them through.
    tokio::time::sleep(Duration::from_millis(200)).await;
    holder.commit().await.unwrap();

    for h in handles {
        let (i, answer) = h.await.unwrap();
        match i {
            0 | 5..=11 => {
                let results = answer.unwrap();
                let done = results[0]
                    .as_ref()
                    .unwrap_or_else(|e| panic!("job {i}: {e:?}"));
                assert_eq!(
                    done.task_id, claimed[i].task_id,
                    "job {i} answered for its task"
                );
                assert_eq!(done.status, TaskStatus::Completed, "job {i}");
            }
            1 => assert!(
                matches!(answer, Err(StoreError::Conflict { .. })),
                "a stale attempt is refused: {answer:?}"
            ),
            2 => assert!(
                matches!(answer, Err(StoreError::NotFound { .. })),
                "an unknown task is refused: {answer:?}"
            ),
            3 => {
                let results = answer.unwrap();
                assert!(results[0].is_ok(), "{:?}", results[0]);
                assert!(
                    matches!(results[1], Err(StoreError::Conflict { .. })),
                    "{:?}",
                    results[1]
                );
            }
            99 => assert!(
                matches!(&answer, Err(StoreError::Invalid { field, .. }) if field == "items"),
                "an empty batch is refused: {answer:?}"
            ),
            _ => unreachable!(),
        }
    }
    assert!(
        claim_more.await.unwrap().unwrap().is_empty(),
        "every task was already claimed"
    );
    let repeat = backend
        .complete_now(attempt(&claimed[5]), json!({"n": "other"}))
        .await;
    assert!(
        matches!(repeat, Err(StoreError::Conflict { .. })),
        "a repeat with another output is refused: {repeat:?}"
    );

    let running = [1, 2, 4];
    for (i, c) in claimed.iter().enumerate() {
        let mut tx = store.begin_read().await.unwrap();
        let task = tx.get_task(c.task_id).await.unwrap();
        if running.contains(&i) {
            assert_eq!(task.status, TaskStatus::Running, "task {i}");
        } else {
            assert_eq!(task.status, TaskStatus::Completed, "task {i}");
            assert_eq!(
                task.result,
                Some(json!({"n": i})),
                "task {i} keeps its own output"
            );
        }
    }
    let mut all: Vec<TaskId> = claimed.iter().map(|c| c.task_id).collect();
    all.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(all, want);
}

/// Claims that queue together, one of them refused: the refused one is told why and
/// takes nothing, and every other gets its own tasks, none given twice.
async fn queued_claims_answer_each_on_its_own(store: Store) {
    const TASKS: usize = 6;
    let ids = ready_tasks(&store, "claimed-together", TASKS).await;
    let elsewhere = ready_tasks(&store, "not-claimed", 1).await;
    // A writer holds the database (SQLite) while the claims queue; on PostgreSQL it
    // holds only a row no claim wants, and the claims do not wait.
    let mut holder = store.begin().await.unwrap();
    let patch: TaskPatch = serde_json::from_value(json!({"title": "held"})).unwrap();
    holder.update_task(elsewhere[0], patch).await.unwrap();
    let backend = store.backend_arc();
    let mut handles = Vec::new();
    for (worker, limit) in [("a", 2), ("b", 2), ("refused", 0), ("c", 2), ("d", 1)] {
        let backend = backend.clone();
        handles.push(tokio::spawn(async move {
            let answer = backend
                .claim_now(&request(worker, "claimed-together", limit))
                .await;
            (worker, limit, answer)
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    holder.commit().await.unwrap();

    let mut taken = Vec::new();
    for h in handles {
        let (worker, limit, answer) = h.await.unwrap();
        if worker == "refused" {
            assert!(
                matches!(&answer, Err(e) if e.field() == Some("limit")),
                "a claim of 0 tasks is refused naming its limit: {answer:?}"
            );
            continue;
        }
        let tasks = answer.unwrap_or_else(|e| panic!("worker {worker}: {e:?}"));
        assert!(tasks.len() <= limit as usize, "{worker}: {tasks:?}");
        for t in &tasks {
            assert_eq!(t.attempt, 1, "{worker}");
            assert_eq!(status(&store, t.task_id).await, TaskStatus::Running);
            // The attempt is recorded as this worker's, under the ID it was told.
            let mut tx = store.begin_read().await.unwrap();
            let attempts = tx.list_attempts(t.task_id).await.unwrap();
            assert_eq!(attempts.len(), 1, "{worker}");
            assert_eq!(attempts[0].id, t.attempt_id, "{worker}");
            assert_eq!(attempts[0].worker_id.as_deref(), Some(worker));
            taken.push(t.task_id);
        }
    }
    // Seven asked for, six there: every task is taken, once.
    assert_eq!(taken.len(), TASKS, "{taken:?}");
    let distinct: HashSet<TaskId> = taken.iter().copied().collect();
    assert_eq!(distinct.len(), TASKS, "no task is given twice");
    let want: HashSet<TaskId> = ids.into_iter().collect();
    assert_eq!(distinct, want);
}

/// Heartbeats and failures that queue behind a writer, stale and unknown ones among
/// them: each is answered as if it were alone, and only the current ones change
/// their task.
async fn queued_heartbeats_and_failures_answer_each_on_its_own(store: Store) {
    let ids = ready_tasks(&store, "reported", 4).await;
    let backend = store.backend_arc();
    let claimed = backend
        .claim_now(&request("w", "reported", 4))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 4);
    let mut holder = store.begin().await.unwrap();
    for c in &claimed {
        let patch: TaskPatch = serde_json::from_value(json!({"title": "held"})).unwrap();
        holder.update_task(c.task_id, patch).await.unwrap();
    }
    let stale = |c: &ClaimedTask| AttemptRef {
        task_id: c.task_id,
        attempt: c.attempt + 1,
    };
    let lease = Duration::from_secs(3600);
    let before = flowstore::time::now();
    let beat = {
        let (b, a) = (backend.clone(), attempt(&claimed[0]));
        tokio::spawn(async move { b.heartbeat_now(a, lease).await })
    };
    let stale_beat = {
        let (b, a) = (backend.clone(), stale(&claimed[1]));
        tokio::spawn(async move { b.heartbeat_now(a, lease).await })
    };
    let failure = {
        let (b, a) = (backend.clone(), attempt(&claimed[2]));
        tokio::spawn(async move { b.fail_now(a, json!({"why": "broken"}), false).await })
    };
    let stale_failure = {
        let (b, a) = (backend.clone(), stale(&claimed[3]));
        tokio::spawn(async move { b.fail_now(a, json!({}), true).await })
    };
    let unknown_beat = {
        let b = backend.clone();
        let a = AttemptRef {
            task_id: TaskId::new(),
            attempt: 1,
        };
        tokio::spawn(async move { b.heartbeat_now(a, lease).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    holder.commit().await.unwrap();

    let beat = beat.await.unwrap().unwrap();
    assert!(
        beat.lease_expires_at > before + chrono::Duration::minutes(59),
        "the lease runs an hour from the heartbeat: {beat:?}"
    );
    assert!(!beat.cancel_requested);
    let stale_beat = stale_beat.await.unwrap();
    assert!(
        matches!(stale_beat, Err(StoreError::Conflict { .. })),
        "{stale_beat:?}"
    );
    let failure = failure.await.unwrap().unwrap();
    assert_eq!(failure.task_id, claimed[2].task_id);
    assert_eq!(failure.status, TaskStatus::Failed);
    let stale_failure = stale_failure.await.unwrap();
    assert!(
        matches!(stale_failure, Err(StoreError::Conflict { .. })),
        "{stale_failure:?}"
    );
    let unknown_beat = unknown_beat.await.unwrap();
    assert!(
        matches!(unknown_beat, Err(StoreError::NotFound { .. })),
        "{unknown_beat:?}"
    );
    for (i, c) in claimed.iter().enumerate() {
        let want = if i == 2 {
            TaskStatus::Failed
        } else {
            TaskStatus::Running
        };
        assert_eq!(status(&store, c.task_id).await, want, "task {i}");
    }
    // The claim took exactly the tasks made.
    let mut all: Vec<TaskId> = claimed.iter().map(|c| c.task_id).collect();
    all.sort();
    let mut want = ids;
    want.sort();
    assert_eq!(all, want);
}

/// Eight workers claiming and completing through the `_now` transitions, with
/// refused reports mixed in: every task is handed out once and completed once.
async fn concurrent_workers_through_now_take_each_task_once(store: Store) {
    const TASKS: usize = 240;
    let ids = ready_tasks(&store, "now", TASKS).await;
    let mut handles = Vec::new();
    for w in 0..8u32 {
        let backend = store.backend_arc();
        handles.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let claimed = backend
                    .claim_now(&request(&format!("w{w}"), "now", 1 + w % 4))
                    .await
                    .unwrap();
                if claimed.is_empty() {
                    return seen;
                }
                // A stale report first: refused, and it must not disturb the rest.
                let stale = AttemptRef {
                    task_id: claimed[0].task_id,
                    attempt: claimed[0].attempt + 1,
                };
                assert!(backend.complete_now(stale, json!({})).await.is_err());
                if w % 2 == 0 {
                    for c in &claimed {
                        backend
                            .complete_now(attempt(c), json!({"w": w}))
                            .await
                            .unwrap();
                    }
                } else {
                    let items = claimed
                        .iter()
                        .map(|c| (attempt(c), json!({"w": w})))
                        .collect();
                    for r in backend.complete_many_now(items).await.unwrap() {
                        r.unwrap();
                    }
                }
                seen.extend(claimed.iter().map(|c| (c.task_id, c.attempt)));
            }
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    assert_eq!(all.len(), TASKS, "every task was handed out once");
    let distinct: HashSet<TaskId> = all.iter().map(|(t, _)| *t).collect();
    assert_eq!(distinct.len(), TASKS);
    assert!(all.iter().all(|(_, a)| *a == 1));
    for id in ids {
        assert_eq!(status(&store, id).await, TaskStatus::Completed);
    }
}

/// More heartbeats and failures at once than groups run at once (on PostgreSQL the
/// ones waiting share a statement or a transaction; on SQLite the heartbeats of a
/// group are one batch): each is answered as if it were alone. Current leases are
/// extended on the task and its attempt row, a run's cancellation reaches its
/// worker, a task named twice is answered twice, a lease out of bounds is refused by
/// name, and only the current failures end their task.
async fn grouped_heartbeats_and_failures_answer_each_on_its_own(store: Store) {
    // A run's first step, running, whose run is then cancelled.
    let (_, run) = super::engine::started_diamond(&store).await;
    let backend = store.backend_arc();
    let step = backend.claim_now(&request("w", "shell", 1)).await.unwrap();
    assert_eq!(step.len(), 1);
    let mut tx = store.begin().await.unwrap();
    tx.cancel_run(run).await.unwrap();
    tx.commit().await.unwrap();
    ready_tasks(&store, "report", 10).await;
    let claimed = backend
        .claim_now(&request("w", "report", 10))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 10);
    let mut holder = store.begin().await.unwrap();
    for c in claimed.iter().chain(&step) {
        let patch: TaskPatch = serde_json::from_value(json!({"title": "held"})).unwrap();
        holder.update_task(c.task_id, patch).await.unwrap();
    }
    let hour = Duration::from_secs(3600);
    let before = flowstore::time::now();
    let stale = |c: &ClaimedTask| AttemptRef {
        task_id: c.task_id,
        attempt: c.attempt + 1,
    };
    let unknown = AttemptRef {
        task_id: TaskId::new(),
        attempt: 1,
    };
    // Heartbeats: tasks 0 to 4 (task 0 twice), a stale attempt of task 5, an unknown
    // task, a lease out of bounds for task 1, the cancelled run's step.
    let beats = [
        (attempt(&claimed[0]), hour),
        (attempt(&claimed[1]), hour),
        (attempt(&claimed[2]), hour),
        (attempt(&claimed[0]), hour),
        (attempt(&claimed[3]), hour),
        (attempt(&claimed[4]), hour),
        (stale(&claimed[5]), hour),
        (unknown, hour),
        (attempt(&claimed[1]), Duration::from_secs(365 * 24 * 3600)),
        (attempt(&step[0]), hour),
    ];
    // Failures: task 6, task 7 twice with one error, a stale attempt of task 8, task 9.
    let failures = [
        (attempt(&claimed[6]), json!({"why": 6}), true),
        (attempt(&claimed[7]), json!({"why": 7}), false),
        (attempt(&claimed[7]), json!({"why": 7}), false),
        (stale(&claimed[8]), json!({}), false),
        (attempt(&claimed[9]), json!({"why": 9}), false),
    ];
    let beat_handles: Vec<_> = beats
        .iter()
        .map(|&(a, lease)| {
            let b = backend.clone();
            tokio::spawn(async move { b.heartbeat_now(a, lease).await })
        })
        .collect();
    let fail_handles: Vec<_> = failures
        .iter()
        .cloned()
        .map(|(a, error, retryable)| {
            let b = backend.clone();
            tokio::spawn(async move { b.fail_now(a, error, retryable).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    holder.commit().await.unwrap();

    let mut answers = Vec::new();
    for h in beat_handles {
        answers.push(h.await.unwrap());
    }
    for i in [0, 1, 2, 3, 4, 5, 9] {
        let beat = answers[i]
            .as_ref()
            .unwrap_or_else(|e| panic!("heartbeat {i}: {e:?}"));
        assert!(
            beat.lease_expires_at > before + chrono::Duration::minutes(59),
            "heartbeat {i}: the lease runs an hour from it: {beat:?}"
        );
        assert_eq!(beat.cancel_requested, i == 9, "heartbeat {i}");
    }
    assert!(
        matches!(answers[6], Err(StoreError::Conflict { .. })),
        "{:?}",
        answers[6]
    );
    assert!(
        matches!(answers[7], Err(StoreError::NotFound { .. })),
        "{:?}",
        answers[7]
    );
    match &answers[8] {
        Err(StoreError::Invalid { field, .. }) => assert_eq!(field, "lease"),
        other => panic!("a year's lease: {other:?}"),
    }
    // Each current lease is on its attempt row too, with the heartbeat's time.
    for c in claimed.iter().take(5).chain(&step) {
        let mut tx = store.begin_read().await.unwrap();
        let attempts = tx.list_attempts(c.task_id).await.unwrap();
        let row = attempts.iter().find(|a| a.attempt == c.attempt).unwrap();
        assert!(
            row.lease_expires_at
                .is_some_and(|l| l > before + chrono::Duration::minutes(59)),
            "{row:?}"
        );
        assert!(row.heartbeat_at.is_some_and(|h| h >= before), "{row:?}");
    }
    let mut failed = Vec::new();
    for h in fail_handles {
        failed.push(h.await.unwrap());
    }
    for i in [0, 1, 2, 4] {
        let t = failed[i]
            .as_ref()
            .unwrap_or_else(|e| panic!("failure {i}: {e:?}"));
        assert_eq!(t.task_id, failures[i].0.task_id, "failure {i}");
        assert_eq!(t.status, TaskStatus::Failed, "failure {i}");
    }
    assert_eq!(
        failed[1].as_ref().unwrap(),
        failed[2].as_ref().unwrap(),
        "a repeated failure is answered as the first"
    );
    assert!(
        matches!(failed[3], Err(StoreError::Conflict { .. })),
        "{:?}",
        failed[3]
    );
    for (i, c) in claimed.iter().enumerate() {
        let want = if [6, 7, 9].contains(&i) {
            TaskStatus::Failed
        } else {
            TaskStatus::Running
        };
        assert_eq!(status(&store, c.task_id).await, want, "task {i}");
    }
    assert_eq!(status(&store, step[0].task_id).await, TaskStatus::Running);
}

async fn reports_through_another_store_advance_the_run(db: &flowstore_testkit::TestDb) {
    let (one, other) = (db.store().await, db.store().await);
    let (_, run) = super::engine::started_diamond(&one).await;
    let shell = |worker: &str| request(worker, "shell", 10);
    // Each step claimed through one store and reported through the other, in turn.
    let (mut claimer, mut reporter) = (&one, &other);
    let mut seen = Vec::new();
    loop {
        let claimed = claimer.backend().claim_now(&shell("w")).await.unwrap();
        if claimed.is_empty() {
            break;
        }
        for c in &claimed {
            seen.push(c.step_key.clone().unwrap());
            reporter
                .backend()
                .heartbeat_now(attempt(c), Duration::from_secs(60))
                .await
                .unwrap();
        }
        let items = claimed
            .iter()
            .map(|c| (attempt(c), json!({"step": c.step_key})))
            .collect();
        for (c, t) in claimed
            .iter()
            .zip(reporter.backend().complete_many_now(items).await.unwrap())
        {
            let t = t.unwrap_or_else(|e| panic!("{:?}: {e:?}", c.step_key));
            assert_eq!(t.status, TaskStatus::Completed);
        }
        std::mem::swap(&mut claimer, &mut reporter);
    }
    seen.sort();
    assert_eq!(
        seen,
        ["a", "b", "c", "d"],
        "each step ran once, after its dependencies"
    );
    let mut tx = other.begin_read().await.unwrap();
    let execution = tx.get_execution(run).await.unwrap();
    assert_eq!(
        execution.status,
        flowstore::model::run::RunStatus::Completed
    );
    for task in tx.run_tasks(run).await.unwrap() {
        assert_eq!(task.status, TaskStatus::Completed, "{:?}", task.step_key);
    }
}

/// A claim and a batch of hundreds of tasks at once (more than a group of single
/// transitions ever holds): every task is claimed once, its attempt row and its
/// events are written once each with gap-free numbers, and each completion keeps its
/// own output; through the transitions' own path and inside a transaction alike.
async fn large_claims_and_batches_are_written_whole(store: Store) {
    const TASKS: usize = 600;
    let mut ids = ready_tasks(&store, "large", TASKS).await;
    ids.extend(standalone_ready(&store, "large", TASKS).await);
    let backend = store.backend_arc();

    // One claim of 600 and one batch of 600, each committed on its own.
    let first = backend
        .claim_now(&request("w-now", "large", TASKS as u32))
        .await
        .unwrap();
    assert_eq!(first.len(), TASKS);
    let items = first
        .iter()
        .enumerate()
        .map(|(i, c)| (attempt(c), json!({"i": i, "w": "now"})))
        .collect();
    for r in backend.complete_many_now(items).await.unwrap() {
        assert_eq!(r.unwrap().status, TaskStatus::Completed);
    }

    // The same in one transaction.
    let mut tx = store.begin().await.unwrap();
    let second = tx
        .claim(&request("w-tx", "large", TASKS as u32))
        .await
        .unwrap();
    assert_eq!(second.len(), TASKS);
    let items = second
        .iter()
        .enumerate()
        .map(|(i, c)| (attempt(c), json!({"i": i, "w": "tx"})))
        .collect();
    for r in tx.complete_many(items).await.unwrap() {
        assert_eq!(r.unwrap().status, TaskStatus::Completed);
    }
    tx.commit().await.unwrap();

    let claimed: HashSet<TaskId> = first.iter().chain(&second).map(|c| c.task_id).collect();
    assert_eq!(
        claimed,
        ids.iter().copied().collect(),
        "each task claimed once"
    );
    let mut tx = store.begin().await.unwrap();
    for (worker, batch) in [("now", &first), ("tx", &second)] {
        for (i, c) in batch.iter().enumerate() {
            assert_eq!(c.attempt, 1);
            let task = tx.get_task(c.task_id).await.unwrap();
            assert_eq!(task.status, TaskStatus::Completed);
            let attempts = tx.list_attempts(c.task_id).await.unwrap();
            assert_eq!(attempts.len(), 1, "one attempt row for {}", c.task_id);
            assert_eq!(attempts[0].id, c.attempt_id);
            assert_eq!(
                attempts[0].worker_id.as_deref(),
                Some(format!("w-{worker}").as_str())
            );
            assert_eq!(attempts[0].output_results, json!({"i": i, "w": worker}));
        }
    }
    tx.sequence_events().await.unwrap();
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = tx
            .events_after(after, &EventFilter::default(), 1000)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        events.extend(page);
    }
    tx.commit().await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "event numbers are gap-free"
    );
    for kind in ["task.claimed", "task.completed"] {
        let tasks = tasks_of(&events, kind);
        assert_eq!(tasks.len(), 2 * TASKS, "{kind} once per task");
        assert_eq!(
            tasks.iter().copied().collect::<HashSet<_>>(),
            claimed,
            "{kind} of every task"
        );
    }
}

/// Makes the database refuse, by trigger, the completion of any task titled
/// `poison`: a fault of the database itself, not a refusal flowstore makes.
/// PostgreSQL's trigger counts the statements it fails in a sequence (which a
/// rollback does not undo); SQLite's cannot count.
async fn poison_completions(store: &Store) {
    let statements: &[&str] = match store.kind() {
        BackendKind::Postgres => &[
            "CREATE SEQUENCE fs_test_poison_hits",
            "CREATE FUNCTION fs_test_poison() RETURNS trigger AS $$
             BEGIN
                 PERFORM nextval('fs_test_poison_hits');
                 RAISE EXCEPTION 'injected fault';
             END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER fs_test_poison BEFORE UPDATE ON tasks FOR EACH ROW
             WHEN (NEW.title = 'poison' AND NEW.status = 'completed')
             EXECUTE FUNCTION fs_test_poison()",
        ],
        BackendKind::Sqlite => &["CREATE TRIGGER fs_test_poison BEFORE UPDATE ON tasks
             FOR EACH ROW WHEN NEW.title = 'poison' AND NEW.status = 'completed'
             BEGIN SELECT RAISE(ABORT, 'injected fault'); END"],
    };
    for sql in statements {
        store.backend().execute_raw(sql).await.unwrap();
    }
}

/// How many statements the poison failed, where the database can tell (PostgreSQL:
/// a `SELECT` of that many rows).
async fn poison_hits(store: &Store) -> Option<u64> {
    match store.kind() {
        BackendKind::Postgres => Some(
            store
                .backend()
                .execute_raw(
                    "SELECT n FROM generate_series(1, (SELECT CASE WHEN is_called
                        THEN last_value ELSE 0 END FROM fs_test_poison_hits)) n",
                )
                .await
                .unwrap(),
        ),
        BackendKind::Sqlite => None,
    }
}

/// A fault of the database in one transition of a group (a trigger that fails one
/// task's completion) fails the statement or transaction the group shares; every
/// caller's transition is then tried again on its own. The poisoned completion
/// alone answers the fault; every other completion, a batch beside them and a
/// heartbeat on the poisoned task are answered and written exactly once, and the
/// poisoned task, still running, completes once the fault is gone.
async fn a_database_error_fails_only_its_own_transition(store: Store) {
    const TASKS: usize = 10;
    let ids = ready_tasks(&store, "faulty", TASKS).await;
    let backend = store.backend_arc();
    let claimed = backend
        .claim_now(&request("w", "faulty", TASKS as u32))
        .await
        .unwrap();
    assert_eq!(claimed.len(), TASKS);
    let poisoned = claimed[4].clone();
    let mut tx = store.begin().await.unwrap();
    let patch: TaskPatch = serde_json::from_value(json!({"title": "poison"})).unwrap();
    tx.update_task(poisoned.task_id, patch).await.unwrap();
    tx.commit().await.unwrap();
    poison_completions(&store).await;

    // Hold every task (SQLite: the writer; PostgreSQL: the rows' locks), so that the
    // first completions wait, each alone (PostgreSQL runs two groups of a kind at
    // once), and the others queue up behind them, the poisoned one among them.
    let mut holder = store.begin().await.unwrap();
    for c in &claimed {
        let patch: TaskPatch =
            serde_json::from_value(json!({"description": "held while reports queue"})).unwrap();
        holder.update_task(c.task_id, patch).await.unwrap();
    }
    let complete = |i: usize| {
        let backend = backend.clone();
        let a = attempt(&claimed[i]);
        tokio::spawn(async move { (i, backend.complete_now(a, json!({"n": i})).await) })
    };
    let mut singles: Vec<_> = [0, 1].into_iter().map(complete).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    singles.extend([2, 3, 5, 6, 7].into_iter().map(complete));
    // The poisoned one queues last, so that the first caller to lead after the
    // held ones takes it into its group.
    tokio::time::sleep(Duration::from_millis(50)).await;
    singles.push(complete(4));
    let batch = {
        let backend = backend.clone();
        let items = (8..TASKS)
            .map(|i| (attempt(&claimed[i]), json!({"n": i})))
            .collect();
        tokio::spawn(async move { backend.complete_many_now(items).await })
    };
    let heartbeat = {
        let backend = backend.clone();
        let a = attempt(&poisoned);
        tokio::spawn(async move { backend.heartbeat_now(a, Duration::from_secs(900)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    holder.commit().await.unwrap();

    for h in singles {
        let (i, answer) = h.await.unwrap();
        if i == 4 {
            assert!(answer.is_err(), "the poisoned completion fails: {answer:?}");
        } else {
            let done = answer.unwrap_or_else(|e| panic!("completion {i}: {e:?}"));
            assert_eq!(
                (done.task_id, done.status),
                (claimed[i].task_id, TaskStatus::Completed),
                "completion {i}"
            );
        }
    }
    for r in batch.await.unwrap().unwrap() {
        assert_eq!(r.unwrap().status, TaskStatus::Completed);
    }
    heartbeat
        .await
        .unwrap()
        .expect("a heartbeat on the poisoned task is not a completion");
    // Whether it also failed inside a group first (two failures, as it does when
    // the scheduler keeps to the order above) is left unasserted: the answers above
    // are what must hold however the callers were grouped.
    if let Some(hits) = poison_hits(&store).await {
        assert!(hits >= 1, "the trigger failed the poisoned completion");
    }

    let mut tx = store.begin().await.unwrap();
    for (i, c) in claimed.iter().enumerate() {
        let task = tx.get_task(c.task_id).await.unwrap();
        let attempts = tx.list_attempts(c.task_id).await.unwrap();
        assert_eq!(attempts.len(), 1, "one attempt row for task {i}");
        if i == 4 {
            assert_eq!(task.status, TaskStatus::Running);
            assert_eq!(attempts[0].output_results, json!({}), "{:?}", attempts[0]);
        } else {
            assert_eq!(task.status, TaskStatus::Completed, "task {i}");
            assert_eq!(attempts[0].output_results, json!({"n": i}), "task {i}");
        }
    }
    tx.commit().await.unwrap();
    let events = all_events(&store).await;
    let completed = tasks_of(&events, "task.completed");
    let others: HashSet<TaskId> = ids
        .iter()
        .copied()
        .filter(|t| *t != poisoned.task_id)
        .collect();
    assert_eq!(completed.len(), TASKS - 1, "one completion event each");
    assert_eq!(completed.into_iter().collect::<HashSet<_>>(), others);

    // Without the fault, the poisoned task completes as any other.
    let drop = match store.kind() {
        BackendKind::Postgres => "DROP TRIGGER fs_test_poison ON tasks",
        BackendKind::Sqlite => "DROP TRIGGER fs_test_poison",
    };
    store.backend().execute_raw(drop).await.unwrap();
    let done = backend
        .complete_now(attempt(&poisoned), json!({"n": 4}))
        .await
        .unwrap();
    assert_eq!(done.status, TaskStatus::Completed);
}

/// The tasks that events of `kind` name, in event order.
fn tasks_of(events: &[flowstore::model::engine::Event], kind: &str) -> Vec<TaskId> {
    events
        .iter()
        .filter(|e| e.event_type == kind)
        .filter_map(|e| e.task_id)
        .collect()
}

/// Every event of the store, numbered first, after checking the numbers have no gap.
async fn all_events(store: &Store) -> Vec<flowstore::model::engine::Event> {
    let mut tx = store.begin().await.unwrap();
    tx.sequence_events().await.unwrap();
    let events = tx
        .events_after(0, &EventFilter::default(), 1000)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "event numbers are gap-free: {seqs:?}"
    );
    events
}

/// With claim events switched off (`[engine] claim_events = false`), claims through
/// the transitions' own path (two at once, grouped where the backend groups them) and
/// inside a transaction record each task's attempt, running, and write no
/// `task.claimed` event; completions write their events as before. A store on the
/// same database with the default writes claim events again.
async fn claims_without_events_write_their_attempts_alone(db: &TestDb) {
    let store = db.store_with(|s| s.engine.claim_events = false).await;
    let ids = ready_tasks(&store, "quiet", 6).await;
    let backend = store.backend_arc();
    let (ra, rb) = (request("w-a", "quiet", 2), request("w-b", "quiet", 2));
    let (a, b) = tokio::join!(backend.claim_now(&ra), backend.claim_now(&rb));
    let mut tx = store.begin().await.unwrap();
    let c = tx.claim(&request("w-c", "quiet", 2)).await.unwrap();
    tx.commit().await.unwrap();
    let claimed: Vec<ClaimedTask> = a.unwrap().into_iter().chain(b.unwrap()).chain(c).collect();
    assert_eq!(
        claimed.iter().map(|c| c.task_id).collect::<HashSet<_>>(),
        ids.iter().copied().collect(),
        "each task claimed once"
    );
    assert_eq!(claimed.len(), ids.len());

    let mut tx = store.begin_read().await.unwrap();
    for c in &claimed {
        let attempts = tx.list_attempts(c.task_id).await.unwrap();
        assert_eq!(attempts.len(), 1, "one attempt row for {}", c.task_id);
        assert_eq!(attempts[0].id, c.attempt_id);
        assert_eq!(
            attempts[0].execution_status,
            flowstore::model::run::AttemptStatus::Running
        );
        assert!(attempts[0]
            .worker_id
            .as_deref()
            .is_some_and(|w| w.starts_with("w-")));
        assert_eq!(
            tx.get_task(c.task_id).await.unwrap().status,
            TaskStatus::Running
        );
    }
    drop(tx);
    let events = all_events(&store).await;
    assert!(
        events.iter().all(|e| e.event_type != "task.claimed"),
        "no claim events: {:?}",
        events.iter().map(|e| &e.event_type).collect::<Vec<_>>()
    );

    let items = claimed
        .iter()
        .map(|c| (attempt(c), json!({"ok": 1})))
        .collect();
    for r in backend.complete_many_now(items).await.unwrap() {
        assert_eq!(r.unwrap().status, TaskStatus::Completed);
    }
    let events = all_events(&store).await;
    let completed = tasks_of(&events, "task.completed");
    assert_eq!(completed.len(), ids.len(), "one completion event per task");
    assert_eq!(
        completed.into_iter().collect::<HashSet<_>>(),
        ids.iter().copied().collect()
    );
    assert!(events.iter().all(|e| e.event_type != "task.claimed"));

    // The default, on the same database.
    let noisy = db.store().await;
    let more = standalone_ready(&noisy, "quiet", 1).await;
    let taken = noisy
        .backend()
        .claim_now(&request("w-d", "quiet", 1))
        .await
        .unwrap();
    assert_eq!(taken.iter().map(|c| c.task_id).collect::<Vec<_>>(), more);
    let claims = tasks_of(&all_events(&noisy).await, "task.claimed");
    assert_eq!(claims, more, "the default store writes its claim's event");
}

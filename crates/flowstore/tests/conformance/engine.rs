//! Conformance tests for the execution engine: runs, claims, leases, retries,
//! failure strategies, cancellation, timeouts and the outbox, on both backends.

use flowstore_testkit::fixtures;
use std::collections::HashSet;
use std::time::Duration;

use flowstore::ids::{RunId, WorkflowId};
use flowstore::model::engine::{
    AttemptRef, ClaimRequest, ClaimedTask, EventFilter, StartRun, Transition,
};
use flowstore::model::run::RunStatus;
use flowstore::model::task::TaskStatus;
use flowstore::model::workflow::{ExecutionStrategy, FailureStrategy, NewWorkflow, WorkflowStatus};
use flowstore::Store;
use serde_json::{json, Value};

conformance!(
    a_diamond_runs_to_completion,
    bad_starts_are_refused_before_anything_is_written,
    many_runs_start_at_once,
    stale_and_repeated_reports,
    a_repeated_report_gets_the_first_answer,
    a_late_failure_after_the_reaper_is_refused,
    an_expired_lease_moves_the_task_to_another_worker,
    retries_back_off_then_fail,
    fail_fast_stops_the_run,
    continue_runs_the_independent_branches,
    cancel_stops_what_has_not_started,
    task_and_run_timeouts,
    sequential_runs_one_step_at_a_time,
    events_are_gap_free_and_filterable,
    events_follow_their_objects_visibility,
    claims_are_validated,
    a_claim_over_several_handler_types_takes_the_highest_priorities,
    a_mixed_batch_is_answered_item_by_item,
);

async fn register(store: &Store, handlers: &[&str]) {
    let mut tx = store.begin().await.unwrap();
    for h in handlers {
        fixtures::handler(&mut tx, h).await;
    }
    tx.commit().await.unwrap();
}

async fn workflow(
    store: &Store,
    steps: Value,
    strategy: ExecutionStrategy,
    failure: FailureStrategy,
    timeout: Option<i32>,
) -> WorkflowId {
    let mut tx = store.begin().await.unwrap();
    let wf = tx
        .create_workflow(NewWorkflow {
            name: format!("wf-{}", uuid::Uuid::new_v4().simple()),
            status: Some(WorkflowStatus::Active),
            definition: Some(json!({ "steps": steps })),
            execution_strategy: Some(strategy),
            failure_strategy: Some(failure),
            timeout_seconds: timeout,
            ..Default::default()
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    wf.id
}

/// A parallel, fail-fast workflow of `steps` with no timeout.
async fn fail_fast(store: &Store, steps: Value) -> WorkflowId {
    workflow(
        store,
        steps,
        ExecutionStrategy::Parallel,
        FailureStrategy::FailFast,
        None,
    )
    .await
}

/// Registers `shell` and starts a run of a parallel, fail-fast workflow of `steps`.
async fn shell_run(store: &Store, steps: Value) -> RunId {
    register(store, &["shell"]).await;
    let wf = fail_fast(store, steps).await;
    start(store, wf).await
}

fn diamond() -> Value {
    json!([
        {"key": "a", "handler": "shell"},
        {"key": "b", "handler": "shell", "depends_on": ["a"]},
        {"key": "c", "handler": "shell", "depends_on": ["a"], "max_retries": 2},
        {"key": "d", "handler": "shell", "depends_on": ["b", "c"]}
    ])
}

async fn start(store: &Store, wf: WorkflowId) -> RunId {
    let mut tx = store.begin().await.unwrap();
    let started = tx
        .start_run(StartRun {
            workflow_id: wf,
            input: Some(json!({"n": 1})),
            ..Default::default()
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    started.run.id
}

/// Registers `shell` and starts a run of a new fail-fast parallel diamond workflow.
pub(super) async fn started_diamond(store: &Store) -> (WorkflowId, RunId) {
    register(store, &["shell"]).await;
    let wf = workflow(
        store,
        diamond(),
        ExecutionStrategy::Parallel,
        FailureStrategy::FailFast,
        None,
    )
    .await;
    (wf, start(store, wf).await)
}

fn claim_req(worker: &str, limit: u32, lease_ms: u64) -> ClaimRequest {
    ClaimRequest {
        worker_id: worker.into(),
        handler_types: vec!["shell".into()],
        limit,
        lease: Duration::from_millis(lease_ms),
        executor: None,
    }
}

async fn claim(store: &Store, worker: &str, limit: u32) -> Vec<ClaimedTask> {
    claim_with_lease(store, worker, limit, 30_000).await
}

async fn claim_with_lease(
    store: &Store,
    worker: &str,
    limit: u32,
    lease_ms: u64,
) -> Vec<ClaimedTask> {
    // Worker transitions run as workers run them (on PostgreSQL with plans made once,
    // without the values bound; on SQLite through the group writer), so every test
    // below also checks that path.
    store
        .backend()
        .claim_now(&claim_req(worker, limit, lease_ms))
        .await
        .unwrap()
}

fn r(c: &ClaimedTask) -> AttemptRef {
    AttemptRef {
        task_id: c.task_id,
        attempt: c.attempt,
    }
}

/// Reports the attempt `a` failed, in a transaction of its own.
async fn fail(store: &Store, a: AttemptRef, error: Value, retryable: bool) -> Transition {
    let mut tx = store.begin().await.unwrap();
    let t = tx.fail(a, error, retryable).await.unwrap();
    tx.commit().await.unwrap();
    t
}

async fn complete(store: &Store, c: &ClaimedTask) -> flowstore::model::engine::Transition {
    store
        .backend()
        .complete_now(r(c), json!({"ok": c.step_key}))
        .await
        .unwrap()
}

async fn run_status(store: &Store, run: RunId) -> RunStatus {
    let mut tx = store.begin_read().await.unwrap();
    tx.get_execution(run).await.unwrap().status
}

async fn statuses(store: &Store, run: RunId) -> Vec<(String, TaskStatus)> {
    let mut tx = store.begin_read().await.unwrap();
    tx.run_tasks(run)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.step_key.unwrap(), t.status))
        .collect()
}

async fn a_diamond_runs_to_completion(store: Store) {
    let (wf, run) = started_diamond(&store).await;
    let s = statuses(&store, run).await;
    assert_eq!(s[0], ("a".into(), TaskStatus::Ready));
    assert!(s[1..].iter().all(|(_, st)| *st == TaskStatus::Pending));

    let first = claim(&store, "w1", 10).await;
    assert_eq!(first.len(), 1, "only the root is ready");
    assert_eq!(first[0].attempt, 1);
    assert!(
        claim(&store, "w2", 10).await.is_empty(),
        "a claimed task is not handed out twice"
    );
    let t = complete(&store, &first[0]).await;
    assert_eq!(t.newly_ready.len(), 2, "b and c become ready together");

    let mid = claim(&store, "w1", 10).await;
    assert_eq!(mid.len(), 2);
    complete(&store, &mid[0]).await;
    assert!(
        claim(&store, "w1", 10).await.is_empty(),
        "d waits for both b and c"
    );
    let t = complete(&store, &mid[1]).await;
    assert_eq!(t.newly_ready.len(), 1);
    let last = claim(&store, "w1", 10).await;
    assert_eq!(last[0].step_key.as_deref(), Some("d"));
    let t = complete(&store, &last[0]).await;
    assert_eq!(t.run_status, Some(RunStatus::Completed));
    assert_eq!(run_status(&store, run).await, RunStatus::Completed);

    let mut tx = store.begin_read().await.unwrap();
    let exec = tx.get_execution(run).await.unwrap();
    assert!(exec.end_time.is_some() && exec.actual_duration.is_some());
    let metrics = tx
        .metrics_for_execution(&exec.execution_id, None, None)
        .await
        .unwrap();
    let names: HashSet<String> = metrics.iter().map(|m| m.metric_name.clone()).collect();
    assert!(
        names.contains("execution_started") && names.contains("execution_duration"),
        "{names:?}"
    );
    let stats = tx.workflow_statistics(&wf.to_string(), None).await.unwrap();
    assert_eq!(
        (
            stats.total_executions,
            stats.completed_executions,
            stats.failed_executions
        ),
        (1, 1, 0)
    );
    assert_eq!(stats.min_duration, exec.actual_duration);
    let attempts = tx.list_attempts(first[0].task_id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].execution_status.as_str(), "completed");
    assert!(tx.queue_depth().await.unwrap().is_empty());
}

async fn bad_starts_are_refused_before_anything_is_written(store: Store) {
    register(&store, &["shell"]).await;
    let wf = fail_fast(&store, json!([{"key": "a", "handler": "shell"}, {"key": "b", "handler": "docker", "depends_on": ["a"]}])).await;
    let mut tx = store.begin().await.unwrap();
    let e = tx
        .start_run(StartRun {
            workflow_id: wf,
            ..Default::default()
        })
        .await;
    assert_err!(e, Invalid, "definition.steps[1].handler");
    assert_err!(
        tx.start_run(StartRun {
            workflow_id: WorkflowId::new(),
            ..Default::default()
        })
        .await,
        NotFound
    );
    assert_err!(
        tx.start_run(StartRun {
            workflow_id: wf,
            version: Some(9),
            ..Default::default()
        })
        .await,
        NotFound
    );
    assert_err!(
        tx.start_run(StartRun {
            workflow_id: wf,
            input: Some(json!([1])),
            ..Default::default()
        })
        .await,
        Invalid,
        "input"
    );
    assert_err!(
        tx.start_run(StartRun {
            workflow_id: wf,
            execution_id: Some(" ".into()),
            ..Default::default()
        })
        .await,
        Invalid,
        "execution_id"
    );
    drop(tx);
    register(&store, &["docker"]).await;
    let mut tx = store.begin().await.unwrap();
    tx.start_run(StartRun {
        workflow_id: wf,
        execution_id: Some("once".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let dup = tx
        .start_run(StartRun {
            workflow_id: wf,
            execution_id: Some("once".into()),
            ..Default::default()
        })
        .await;
    assert_err!(dup, Conflict, "execution_id");
    drop(tx);
    let mut tx = store.begin_read().await.unwrap();
    assert!(
        tx.queue_depth().await.unwrap().is_empty(),
        "refused and rolled-back starts left no task"
    );
}

async fn stale_and_repeated_reports(store: Store) {
    register(&store, &["shell"]).await;
    let wf = fail_fast(
        &store,
        json!([{"key": "a", "handler": "shell"}, {"key": "b", "handler": "shell"}]),
    )
    .await;
    start(&store, wf).await;
    let c = claim(&store, "w1", 1).await.remove(0);
    let mut tx = store.begin().await.unwrap();
    let stale = AttemptRef {
        task_id: c.task_id,
        attempt: c.attempt + 1,
    };
    assert_err!(tx.complete(stale, json!({})).await, Conflict, "attempt");
    assert_err!(
        tx.heartbeat(stale, Duration::from_secs(5)).await,
        Conflict,
        "attempt"
    );
    assert_err!(tx.fail(stale, json!("x"), true).await, Conflict, "attempt");
    assert_err!(
        tx.heartbeat(r(&c), Duration::from_secs(99_999)).await,
        Invalid,
        "lease"
    );
    let hb = tx.heartbeat(r(&c), Duration::from_secs(60)).await.unwrap();
    assert!(!hb.cancel_requested);
    let first = tx.complete(r(&c), json!({"v": 1})).await.unwrap();
    let again = tx.complete(r(&c), json!({"v": 1})).await.unwrap();
    assert_eq!(
        (again.status, again.attempt),
        (first.status, first.attempt),
        "a repeated completion is a no-op"
    );
    assert_err!(
        tx.complete(r(&c), json!({"v": 2})).await,
        Conflict,
        "output"
    );
    assert_err!(
        tx.heartbeat(r(&c), Duration::from_secs(5)).await,
        Conflict,
        "attempt"
    );
    tx.commit().await.unwrap();
}

/// A worker whose answer was lost reports again: it gets the answer the first report
/// got (the retry time, the tasks made ready, the run's end), even after the task has
/// moved on; the same attempt reported with another error or output is refused.
async fn a_repeated_report_gets_the_first_answer(store: Store) {
    register(&store, &["shell"]).await;
    let wf = fail_fast(
        &store,
        json!([{"key": "a", "handler": "shell", "max_retries": 1},
               {"key": "b", "handler": "shell", "depends_on": ["a"]}]),
    )
    .await;
    let run = start(&store, wf).await;
    let c1 = claim(&store, "w", 1).await.remove(0);
    let first = fail(&store, r(&c1), json!({"message": "flaky"}), true).await;
    assert_eq!(first.status, TaskStatus::Ready);
    assert!(first.retry_at.is_some());
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.fail(r(&c1), json!({"message": "flaky"}), true)
            .await
            .unwrap(),
        first,
        "a repeated retryable failure answers as the first time"
    );
    assert_err!(
        tx.fail(r(&c1), json!({"message": "other"}), true).await,
        Conflict,
        "error"
    );
    assert_err!(tx.complete(r(&c1), json!({})).await, Conflict, "attempt");
    tx.commit().await.unwrap();
    // The retry is claimed: the first report's repeat still gets its answer.
    let wait = (first.retry_at.unwrap() - flowstore::time::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(50)).await;
    let c2 = claim(&store, "w", 1).await.remove(0);
    assert_eq!((c2.task_id, c2.attempt), (c1.task_id, c1.attempt + 1));
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.fail(r(&c1), json!({"message": "flaky"}), true)
            .await
            .unwrap(),
        first,
        "the repeat's answer does not depend on what happened since"
    );
    tx.commit().await.unwrap();
    // A completion that made a task ready: its repeat names that task again.
    let done_a = complete(&store, &c2).await;
    assert_eq!(done_a.newly_ready.len(), 1, "{done_a:?}");
    let again = store
        .backend()
        .complete_now(r(&c2), json!({"ok": c2.step_key}))
        .await
        .unwrap();
    assert_eq!(again, done_a);
    // A completion that ended the run: its repeat says so.
    let b = claim(&store, "w", 1).await.remove(0);
    let done_b = complete(&store, &b).await;
    assert_eq!(done_b.run_status, Some(RunStatus::Completed));
    let again = store
        .backend()
        .complete_now(r(&b), json!({"ok": b.step_key}))
        .await
        .unwrap();
    assert_eq!(again, done_b);
    let mut tx = store.begin().await.unwrap();
    assert_err!(
        tx.complete(r(&b), json!({"other": true})).await,
        Conflict,
        "output"
    );
    assert_err!(
        tx.fail(r(&b), json!("boom"), false).await,
        Conflict,
        "attempt"
    );
    tx.commit().await.unwrap();
    assert_eq!(run_status(&store, run).await, RunStatus::Completed);
    // A failure that ended the run: its repeat says so.
    let wf = fail_fast(&store, json!([{"key": "a", "handler": "shell"}])).await;
    start(&store, wf).await;
    let c = claim(&store, "w", 1).await.remove(0);
    let ended = fail(&store, r(&c), json!("boom"), false).await;
    assert_eq!(ended.run_status, Some(RunStatus::Failed));
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.fail(r(&c), json!("boom"), false).await.unwrap(), ended);
    tx.commit().await.unwrap();
}

/// A failure reported after the lease reaper ended the attempt wrote nothing, so it is
/// refused like a late completion or heartbeat, whether the task failed for good or
/// waits for its retry.
async fn a_late_failure_after_the_reaper_is_refused(store: Store) {
    register(&store, &["shell"]).await;
    for retries in [0, 1] {
        let wf = fail_fast(
            &store,
            json!([{"key": "a", "handler": "shell", "max_retries": retries}]),
        )
        .await;
        start(&store, wf).await;
        let lost = claim_with_lease(&store, "slow", 1, 100).await.remove(0);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut tx = store.begin_transition().await.unwrap();
        assert_eq!(
            tx.reap_expired_leases(100).await.unwrap(),
            vec![lost.task_id]
        );
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        assert_err!(
            tx.fail(r(&lost), json!("too late"), true).await,
            Conflict,
            "attempt"
        );
        let attempts = tx.list_attempts(lost.task_id).await.unwrap();
        assert_eq!(
            attempts[0].execution_status.as_str(),
            "lease_expired",
            "the refused report changed nothing (retries: {retries})"
        );
        tx.commit().await.unwrap();
    }
}

async fn an_expired_lease_moves_the_task_to_another_worker(store: Store) {
    let run = shell_run(
        &store,
        json!([{"key": "a", "handler": "shell", "max_retries": 3}]),
    )
    .await;
    let lost = claim_with_lease(&store, "slow", 1, 100).await.remove(0);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let mut tx = store.begin_transition().await.unwrap();
    assert_eq!(
        tx.reap_expired_leases(100).await.unwrap(),
        vec![lost.task_id]
    );
    tx.commit().await.unwrap();
    let taken = claim(&store, "fast", 1).await.remove(0);
    assert_eq!(taken.task_id, lost.task_id);
    assert_eq!(
        taken.attempt,
        lost.attempt + 1,
        "the new claim carries a new fencing token"
    );
    let mut tx = store.begin().await.unwrap();
    assert_err!(tx.complete(r(&lost), json!({})).await, Conflict, "attempt");
    assert_err!(
        tx.heartbeat(r(&lost), Duration::from_secs(5)).await,
        Conflict,
        "attempt"
    );
    tx.complete(r(&taken), json!({})).await.unwrap();
    let attempts = tx.list_attempts(lost.task_id).await.unwrap();
    assert_eq!(
        attempts
            .iter()
            .map(|a| a.execution_status.as_str())
            .collect::<Vec<_>>(),
        vec!["lease_expired", "completed"]
    );
    tx.commit().await.unwrap();
    assert_eq!(run_status(&store, run).await, RunStatus::Completed);
}

async fn retries_back_off_then_fail(store: Store) {
    register(&store, &["shell"]).await;
    let wf = fail_fast(
        &store,
        json!([{"key": "a", "handler": "shell", "max_retries": 1}]),
    )
    .await;
    let run = start(&store, wf).await;
    let c = claim(&store, "w", 1).await.remove(0);
    let t = fail(&store, r(&c), json!({"message": "flaky"}), true).await;
    assert_eq!(t.status, TaskStatus::Ready);
    let retry_at = t.retry_at.expect("a retry is scheduled");
    assert!(
        retry_at > flowstore::time::now(),
        "the retry waits for its backoff"
    );
    assert!(
        claim(&store, "w", 1).await.is_empty(),
        "not claimable before its time"
    );
    tokio::time::sleep(
        (retry_at - flowstore::time::now())
            .to_std()
            .unwrap_or_default()
            + Duration::from_millis(50),
    )
    .await;
    let c2 = claim(&store, "w", 1).await.remove(0);
    assert_eq!(c2.attempt, 2);
    let mut tx = store.begin().await.unwrap();
    let t = tx
        .fail(r(&c2), json!({"message": "still flaky"}), true)
        .await
        .unwrap();
    assert_eq!(t.status, TaskStatus::Failed, "retries are spent");
    assert_eq!(t.run_status, Some(RunStatus::Failed));
    let again = tx
        .fail(r(&c2), json!({"message": "still flaky"}), true)
        .await
        .unwrap();
    assert_eq!(
        again.status,
        TaskStatus::Failed,
        "a repeated failure is a no-op"
    );
    tx.commit().await.unwrap();
    assert_eq!(run_status(&store, run).await, RunStatus::Failed);
    // A non-retryable error fails at once even with retries left.
    let wf = fail_fast(
        &store,
        json!([{"key": "a", "handler": "shell", "max_retries": 5}]),
    )
    .await;
    start(&store, wf).await;
    let c = claim(&store, "w", 1).await.remove(0);
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.fail(r(&c), json!("bad input"), false)
            .await
            .unwrap()
            .status,
        TaskStatus::Failed
    );
}

async fn fail_fast_stops_the_run(store: Store) {
    register(&store, &["shell"]).await;
    let wf = fail_fast(&store, json!([{"key": "a", "handler": "shell"}, {"key": "b", "handler": "shell"}, {"key": "c", "handler": "shell", "depends_on": ["b"]}])).await;
    let run = start(&store, wf).await;
    let got = claim(&store, "w", 1).await.remove(0);
    let t = fail(&store, r(&got), json!("boom"), false).await;
    assert_eq!(t.run_status, Some(RunStatus::Failed));
    let s = statuses(&store, run).await;
    assert_eq!(
        s.iter()
            .filter(|(_, st)| *st == TaskStatus::Cancelled)
            .count(),
        2,
        "{s:?}"
    );
    assert!(claim(&store, "w", 10).await.is_empty());
}

async fn continue_runs_the_independent_branches(store: Store) {
    register(&store, &["shell"]).await;
    let wf = workflow(&store, json!([{"key": "a", "handler": "shell"}, {"key": "b", "handler": "shell", "depends_on": ["a"]}, {"key": "x", "handler": "shell"}, {"key": "y", "handler": "shell", "depends_on": ["x"]}]), ExecutionStrategy::Parallel, FailureStrategy::Continue, None).await;
    let run = start(&store, wf).await;
    let roots = claim(&store, "w", 10).await;
    let (a, x): (Vec<_>, Vec<_>) = roots
        .into_iter()
        .partition(|c| c.step_key.as_deref() == Some("a"));
    let mut tx = store.begin().await.unwrap();
    let t = tx.fail(r(&a[0]), json!("boom"), false).await.unwrap();
    assert_eq!(t.run_status, None, "the other branch still runs");
    tx.commit().await.unwrap();
    complete(&store, &x[0]).await;
    let y = claim(&store, "w", 10).await;
    assert_eq!(y.len(), 1);
    assert_eq!(y[0].step_key.as_deref(), Some("y"));
    let t = complete(&store, &y[0]).await;
    assert_eq!(
        t.run_status,
        Some(RunStatus::Failed),
        "a run with a failed step ends failed"
    );
    let s = statuses(&store, run).await;
    assert!(s.contains(&("b".into(), TaskStatus::Cancelled)), "{s:?}");
    assert!(s.contains(&("y".into(), TaskStatus::Completed)), "{s:?}");
}

async fn cancel_stops_what_has_not_started(store: Store) {
    let (_, run) = started_diamond(&store).await;
    let a = claim(&store, "w", 1).await.remove(0);
    let mut tx = store.begin().await.unwrap();
    let cancelled = tx.cancel_run(run).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert!(cancelled.cancel_requested_at.is_some());
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert_err!(tx.cancel_run(run).await, Conflict, "status");
    let hb = tx.heartbeat(r(&a), Duration::from_secs(5)).await.unwrap();
    assert!(
        hb.cancel_requested,
        "the running attempt learns of the cancel"
    );
    let t = tx.complete(r(&a), json!({})).await.unwrap();
    assert!(
        t.newly_ready.is_empty(),
        "nothing new starts in a cancelled run"
    );
    tx.commit().await.unwrap();
    let s = statuses(&store, run).await;
    assert_eq!(
        s.iter()
            .filter(|(_, st)| *st == TaskStatus::Cancelled)
            .count(),
        3
    );
    assert_eq!(run_status(&store, run).await, RunStatus::Cancelled);
    assert!(claim(&store, "w", 10).await.is_empty());
}

async fn task_and_run_timeouts(store: Store) {
    let run = shell_run(
        &store,
        json!([{"key": "a", "handler": "shell", "timeout_seconds": 1}]),
    )
    .await;
    let c = claim(&store, "w", 1).await.remove(0);
    let slow_run_wf = workflow(&store, json!([{"key": "a", "handler": "shell"}, {"key": "b", "handler": "shell", "depends_on": ["a"]}]), ExecutionStrategy::Parallel, FailureStrategy::FailFast, Some(1)).await;
    let slow_run = start(&store, slow_run_wf).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.enforce_timeouts(100).await.unwrap(),
        2,
        "one attempt and one run timed out"
    );
    tx.commit().await.unwrap();
    assert_eq!(statuses(&store, run).await[0].1, TaskStatus::TimedOut);
    assert_eq!(run_status(&store, run).await, RunStatus::Failed);
    let mut tx = store.begin().await.unwrap();
    assert_err!(tx.complete(r(&c), json!({})).await, Conflict, "attempt");
    drop(tx);
    assert_eq!(run_status(&store, slow_run).await, RunStatus::TimedOut);
    assert!(statuses(&store, slow_run)
        .await
        .iter()
        .all(|(_, s)| *s == TaskStatus::Cancelled));
}

async fn sequential_runs_one_step_at_a_time(store: Store) {
    register(&store, &["shell"]).await;
    let steps = json!([
        {"key": "third", "handler": "shell", "execution_order": 3},
        {"key": "first", "handler": "shell", "execution_order": 1},
        {"key": "second", "handler": "shell", "execution_order": 2}
    ]);
    let wf = workflow(
        &store,
        steps,
        ExecutionStrategy::Sequential,
        FailureStrategy::FailFast,
        None,
    )
    .await;
    let run = start(&store, wf).await;
    let mut order = Vec::new();
    loop {
        let got = claim(&store, "w", 10).await;
        if got.is_empty() {
            break;
        }
        assert_eq!(got.len(), 1, "never more than one step at a time");
        order.push(got[0].step_key.clone().unwrap());
        complete(&store, &got[0]).await;
    }
    assert_eq!(order, vec!["first", "second", "third"]);
    assert_eq!(run_status(&store, run).await, RunStatus::Completed);
}

async fn events_are_gap_free_and_filterable(store: Store) {
    let (wf, run) = started_diamond(&store).await;
    // A rolled-back transition leaves no event and no hole.
    let mut tx = store.begin().await.unwrap();
    tx.claim(&claim_req("w", 1, 30_000)).await.unwrap();
    tx.rollback().await.unwrap();
    loop {
        let got = claim(&store, "w", 10).await;
        if got.is_empty() {
            break;
        }
        for c in &got {
            complete(&store, c).await;
        }
    }
    let mut tx = store.begin().await.unwrap();
    tx.sequence_events().await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin_read().await.unwrap();
    let all = tx
        .events_after(0, &EventFilter::default(), 1000)
        .await
        .unwrap();
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=all.len() as i64).collect::<Vec<_>>(),
        "gap-free from 1"
    );
    let kinds: Vec<&str> = all.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"run.started"));
    assert_eq!(kinds.last(), Some(&"run.completed"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "task.completed").count(), 4);
    assert_eq!(
        kinds.iter().filter(|k| **k == "task.claimed").count(),
        4,
        "the rolled-back claim left nothing"
    );
    let resumed = tx
        .events_after(seqs[2], &EventFilter::default(), 1000)
        .await
        .unwrap();
    assert_eq!(resumed.first().map(|e| e.seq), Some(seqs[3]));
    let only = tx
        .events_after(
            0,
            &EventFilter {
                event_type: Some("task.completed".into()),
                run_id: Some(run),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(only.len(), 4);
    assert!(only
        .iter()
        .all(|e| e.workflow_id.as_deref() == Some(wf.to_string().as_str())));
    assert_err!(
        tx.events_after(0, &EventFilter::default(), 0).await,
        Invalid,
        "limit"
    );
}

/// `events_after` with a viewer returns exactly the events `may_read_event` lets
/// that viewer read (the rule of every per-object check and of webhooks): a private
/// workflow's runs for its owner, a public one's for all, nothing of someone else's;
/// and `newest_event_seq` is the last event's.
async fn events_follow_their_objects_visibility(store: Store) {
    use flowstore::model::viewer::{may_read_event, Viewer};
    use flowstore::model::workflow::Visibility;
    let (_, open_run) = started_diamond(&store).await;
    let mut tx = store.begin().await.unwrap();
    let a = fixtures::user_id(&mut tx, "a@x.io").await;
    let b = fixtures::user_id(&mut tx, "b@x.io").await;
    let mut owned = Vec::new();
    for (owner, visibility) in [(a, Visibility::Private), (b, Visibility::Public)] {
        let wf = tx
            .create_workflow(NewWorkflow {
                name: format!("wf-{}", uuid::Uuid::new_v4().simple()),
                status: Some(WorkflowStatus::Active),
                definition: Some(json!({"steps": [{"key": "a", "handler": "shell"}]})),
                owner_id: Some(owner),
                visibility: Some(visibility),
                ..Default::default()
            })
            .await
            .unwrap();
        owned.push(wf.id);
    }
    tx.commit().await.unwrap();
    let private_run = start(&store, owned[0]).await;
    let public_run = start(&store, owned[1]).await;
    for c in claim(&store, "w", 10).await {
        complete(&store, &c).await;
    }
    let mut tx = store.begin().await.unwrap();
    tx.sequence_events().await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin_read().await.unwrap();
    let all = tx
        .events_after(0, &EventFilter::default(), 1000)
        .await
        .unwrap();
    assert_eq!(
        tx.newest_event_seq().await.unwrap(),
        all.last().unwrap().seq
    );
    let runs_of = |evs: &[flowstore::model::engine::Event]| -> HashSet<RunId> {
        evs.iter().filter_map(|e| e.run_id).collect()
    };
    assert!(runs_of(&all).is_superset(&[open_run, private_run, public_run].into()));
    let viewers = [
        Viewer {
            user_id: Some(a),
            admin: false,
        },
        Viewer {
            user_id: Some(b),
            admin: false,
        },
        Viewer {
            user_id: None,
            admin: false,
        },
        Viewer {
            user_id: Some(b),
            admin: true,
        },
    ];
    for viewer in viewers {
        let filter = EventFilter {
            viewer: Some(viewer.clone()),
            ..Default::default()
        };
        let got = tx.events_after(0, &filter, 1000).await.unwrap();
        let mut want = Vec::new();
        for e in &all {
            if may_read_event(&mut *tx, &viewer, e).await.unwrap() {
                want.push(e.clone());
            }
        }
        assert_eq!(got, want, "{viewer:?}");
        let runs = runs_of(&got);
        assert!(
            runs.contains(&open_run) && runs.contains(&public_run),
            "{viewer:?}"
        );
        assert_eq!(
            runs.contains(&private_run),
            viewer.admin || viewer.user_id == Some(a),
            "{viewer:?}"
        );
    }
    let _ = tx.rollback().await;
}

/// `start_runs` starts runs of several versions in one transaction, in order, each
/// as `start_run` would (its first steps ready, its events written); a refused one
/// names its place, and the caller's rollback leaves nothing.
async fn many_runs_start_at_once(store: Store) {
    let (wf, first) = started_diamond(&store).await;
    let mut tx = store.begin().await.unwrap();
    let patch = serde_json::from_value(json!({"definition": {"steps": [
        {"key": "only", "handler": "shell"}]}}))
    .unwrap();
    tx.update_workflow(wf, patch).await.unwrap();
    let start = |version: Option<i32>, execution_id: &str| StartRun {
        workflow_id: wf,
        version,
        execution_id: Some(execution_id.into()),
        ..Default::default()
    };
    let runs = tx
        .start_runs(vec![
            start(Some(1), "v1-a"),
            start(None, "v2-a"),
            start(Some(1), "v1-b"),
        ])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Each run with its tasks as written: the ready ones are what a wake-up names.
    let ready: Vec<usize> = runs
        .iter()
        .map(|r| {
            r.tasks
                .iter()
                .filter(|t| t.status == TaskStatus::Ready)
                .count()
        })
        .collect();
    assert_eq!(ready, [1, 1, 1]);
    assert_eq!(runs[0].tasks.len(), 4);
    let runs: Vec<_> = runs.into_iter().map(|s| s.run).collect();
    let names: Vec<&str> = runs.iter().map(|r| r.execution_id.as_str()).collect();
    assert_eq!(names, ["v1-a", "v2-a", "v1-b"]);
    let mut tx = store.begin_read().await.unwrap();
    for (run, version, steps, ready) in [
        (&runs[0], "1", 4, 1),
        (&runs[1], "2", 1, 1),
        (&runs[2], "1", 4, 1),
    ] {
        assert_eq!(run.status, RunStatus::Running);
        assert_eq!(run.workflow_version.as_deref(), Some(version));
        let tasks = tx.run_tasks(run.id).await.unwrap();
        assert_eq!(tasks.len(), steps, "{}", run.execution_id);
        let ready_now = tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Ready)
            .count();
        assert_eq!(ready_now, ready, "{}", run.execution_id);
        let filter = EventFilter {
            run_id: Some(run.id),
            ..Default::default()
        };
        let _ = tx.rollback().await;
        let mut seq = store.begin().await.unwrap();
        seq.sequence_events().await.unwrap();
        seq.commit().await.unwrap();
        tx = store.begin_read().await.unwrap();
        let kinds: Vec<String> = tx
            .events_after(0, &filter, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect();
        assert_eq!(kinds, ["run.started", "task.ready"], "{}", run.execution_id);
    }
    let _ = tx.rollback().await;

    // A taken execution ID names its place; a version that does not exist is not
    // found; either way the caller's rollback leaves nothing of the batch.
    let mut tx = store.begin().await.unwrap();
    let err = tx
        .start_runs(vec![start(None, "fresh"), start(None, "v1-a")])
        .await
        .unwrap_err();
    let _ = tx.rollback().await;
    assert_eq!(err.field(), Some("runs[1].execution_id"), "{err:?}");
    let mut tx = store.begin().await.unwrap();
    assert_err!(tx.start_runs(vec![start(Some(9), "nine")]).await, NotFound);
    let _ = tx.rollback().await;
    // None at all writes nothing, and is no error (a group of starts whose callers
    // were all refused).
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.start_runs(Vec::new()).await.unwrap(), Vec::new());
    assert_eq!(tx.queue_audits(Vec::new()).await.unwrap(), Vec::new());
    tx.commit().await.unwrap();
    let mut tx = store.begin_read().await.unwrap();
    assert_err!(tx.find_by_execution_id("fresh").await, NotFound);
    assert!(tx.get_execution(first).await.is_ok());
}

async fn claims_are_validated(store: Store) {
    let mut tx = store.begin().await.unwrap();
    assert_err!(
        tx.claim(&ClaimRequest {
            limit: 0,
            ..claim_req("w", 1, 1000)
        })
        .await,
        Invalid,
        "limit"
    );
    assert_err!(
        tx.claim(&ClaimRequest {
            handler_types: vec![],
            ..claim_req("w", 1, 1000)
        })
        .await,
        Invalid,
        "handler_types"
    );
    assert_err!(
        tx.claim(&claim_req("", 1, 1000)).await,
        Invalid,
        "worker_id"
    );
    assert_err!(tx.claim(&claim_req("w", 1, 5)).await, Invalid, "lease");
    let bad: Result<ClaimRequest, _> = serde_json::from_value(
        json!({"worker_id": "w", "handler_types": ["a"], "limit": 1, "lease": 1000, "extra": 1}),
    );
    assert!(bad.is_err());
}

async fn a_claim_over_several_handler_types_takes_the_highest_priorities(store: Store) {
    register(&store, &["alpha", "beta", "gamma"]).await;
    // Two runs of five parallel steps: priorities interleave across handler types,
    // and the second run's tasks rank 100 higher.
    let steps = json!([
        {"key": "a1", "handler": "alpha", "priority": 5},
        {"key": "a2", "handler": "alpha", "priority": 1},
        {"key": "b1", "handler": "beta", "priority": 4},
        {"key": "b2", "handler": "beta", "priority": 2},
        {"key": "g1", "handler": "gamma", "priority": 9}
    ]);
    let wf = fail_fast(&store, steps).await;
    for priority in [0, 100] {
        let mut tx = store.begin().await.unwrap();
        tx.start_run(StartRun {
            workflow_id: wf,
            priority: Some(priority),
            ..Default::default()
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let request = |limit| ClaimRequest {
        // A type named twice is claimed from once.
        handler_types: vec!["beta".into(), "alpha".into(), "beta".into()],
        ..claim_req("w", limit, 30_000)
    };
    let mut tx = store.begin().await.unwrap();
    let first = tx.claim(&request(3)).await.unwrap();
    tx.commit().await.unwrap();
    let mut keys: Vec<_> = first.iter().map(|c| c.step_key.clone().unwrap()).collect();
    keys.sort();
    // The three highest of alpha and beta (105, 104, 102), never gamma's 109.
    assert_eq!(keys, ["a1", "b1", "b2"], "{first:?}");
    assert!(first.iter().all(|c| c.handler_type != "gamma"));

    let mut tx = store.begin().await.unwrap();
    let rest = tx.claim(&request(10)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(rest.len(), 5, "a2 of the second run and four of the first");
    let all: HashSet<_> = first.iter().chain(&rest).map(|c| c.task_id).collect();
    assert_eq!(all.len(), 8, "no task claimed twice");
    let mut tx = store.begin().await.unwrap();
    assert!(tx.claim(&request(10)).await.unwrap().is_empty());
    tx.commit().await.unwrap();

    // The most handler types a claim may name (one index walk each) still works.
    let mut tx = store.begin().await.unwrap();
    let many = ClaimRequest {
        handler_types: (0..100).map(|i| format!("type-{i}")).collect(),
        ..claim_req("w", 10, 30_000)
    };
    assert!(tx.claim(&many).await.unwrap().is_empty());
    tx.commit().await.unwrap();
}

/// One `complete_many_now` batch mixing a run's task, tasks without a run and a stale
/// report (on PostgreSQL the tasks without a run complete in one statement outside a
/// transaction, the rest in a transaction after it; claimed through `claim_now`, the
/// run's task sends such a batch to a transaction at once, as the diamond tests
/// above do), then one naming a task twice:
/// each item is answered as the engine answers it, the run's completion promotes its
/// dependents, and every completion leaves its attempt row and its event.
async fn a_mixed_batch_is_answered_item_by_item(store: Store) {
    let (_, run) = started_diamond(&store).await;
    let solo = super::engine_now::standalone_ready(&store, "shell", 3).await;
    // Claimed in a transaction of the test's own rather than through `claim_now`,
    // which on PostgreSQL remembers the run's task and sends its completion straight
    // to a transaction: here the batch first tries its one statement.
    let mut tx = store.begin().await.unwrap();
    let claimed = tx.claim(&claim_req("w", 10, 30_000)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(claimed.len(), 4, "step a and the three tasks without a run");
    let of = |id| claimed.iter().find(|c| c.task_id == id).unwrap();
    let step_a = claimed.iter().find(|c| c.run_id == Some(run)).unwrap();
    let stale = AttemptRef {
        task_id: solo[1],
        attempt: of(solo[1]).attempt + 1,
    };
    let backend = store.backend();
    let results = backend
        .complete_many_now(vec![
            (r(of(solo[0])), json!({"n": 0})),
            (r(step_a), json!({"ok": "a"})),
            (stale, json!({})),
            (r(of(solo[2])), json!({"n": 2})),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 4);
    let first = results[0].as_ref().unwrap();
    assert_eq!(
        (first.task_id, first.status),
        (solo[0], TaskStatus::Completed)
    );
    let a = results[1].as_ref().unwrap();
    assert_eq!(a.task_id, step_a.task_id);
    assert_eq!(a.newly_ready.len(), 2, "b and c became ready: {a:?}");
    assert!(
        matches!(results[2], Err(flowstore::StoreError::Conflict { .. })),
        "{:?}",
        results[2]
    );
    assert_eq!(results[3].as_ref().unwrap().task_id, solo[2]);

    // A task named twice, the second time as a repeat of the same report; and a
    // report already answered, repeated with the same output: no-ops that succeed.
    let results = backend
        .complete_many_now(vec![
            (r(of(solo[1])), json!({"n": 1})),
            (r(of(solo[1])), json!({"n": 1})),
            (r(of(solo[0])), json!({"n": 0})),
        ])
        .await
        .unwrap();
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let other = backend
        .complete_now(r(of(solo[2])), json!({"n": "other"}))
        .await;
    assert!(
        matches!(other, Err(flowstore::StoreError::Conflict { .. })),
        "{other:?}"
    );

    let mut tx = store.begin().await.unwrap();
    tx.sequence_events().await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin_read().await.unwrap();
    let events = tx
        .events_after(0, &EventFilter::default(), 1000)
        .await
        .unwrap();
    for (i, id) in solo.iter().enumerate() {
        let attempts = tx.list_attempts(*id).await.unwrap();
        assert_eq!(attempts.len(), 1, "task {i}: one attempt");
        assert_eq!(attempts[0].output_results, json!({"n": i}), "task {i}");
        assert!(attempts[0].completed_at.is_some());
        assert_eq!(
            tx.get_task(*id).await.unwrap().status,
            TaskStatus::Completed
        );
        let completions = events
            .iter()
            .filter(|e| e.task_id == Some(*id) && e.event_type == "task.completed")
            .count();
        assert_eq!(completions, 1, "task {i}: one completion event");
    }
    assert!(events
        .iter()
        .any(|e| e.task_id == Some(step_a.task_id) && e.event_type == "task.completed"));
    let states = statuses(&store, run).await;
    assert_eq!(
        states
            .iter()
            .filter(|(_, s)| *s == TaskStatus::Ready)
            .count(),
        2,
        "{states:?}"
    );
}

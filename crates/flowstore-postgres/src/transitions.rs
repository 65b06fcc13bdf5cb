//! Worker transitions that are one statement, run outside a transaction.
//!
//! A transaction costs two round trips of its own (`BEGIN` and `COMMIT`) besides its
//! statements; a claim or the completion of a task without a run is one statement,
//! which PostgreSQL makes a transaction of its own. Measured with pgbench (8 clients,
//! this machine, claim and completion of one task): flowstore's two statements ran
//! 1 198 tasks/s inside transactions and 1 667 on their own (BENCHMARKS.md).
//!
//! A completion of a task that belongs to a run must promote the run's next tasks
//! and perhaps end the run in the same transaction; those, and every report that is
//! not simply the current attempt of a running task (a repeat, a stale attempt, an
//! unknown task), go the general way: `begin_transition`, the engine, `COMMIT`.
//! The tasks of runs claimed through this backend are remembered until they are
//! reported, so that their completion goes the general way at once instead of first
//! trying the one statement, which would complete none of them.

use std::collections::HashSet;
use std::sync::Mutex;

use flowstore_core::ids::TaskId;
use flowstore_core::model::engine::{
    AttemptRef, ClaimRequest, ClaimedTask, EngineRepo, Transition, MAX_CLAIM,
};
use flowstore_core::model::task::TaskStatus;
use flowstore_core::{time, Backend, StoreResult, Tx};
use serde_json::Value;

use crate::backend::PostgresBackend;

/// Claims as [`EngineRepo::claim`] does, on a session outside any transaction: the
/// claim is one statement (`claim_ready`), so it commits as it runs. A caller that
/// goes away while it runs leaves what it claimed to the lease reaper, as a worker
/// that dies after claiming does.
pub(crate) async fn claim_now(
    backend: &PostgresBackend,
    request: &ClaimRequest,
) -> StoreResult<Vec<ClaimedTask>> {
    let mut session = backend.autocommit().await?;
    let claimed = EngineRepo::claim(&mut session, request).await?;
    Tx::commit(Box::new(session)).await?;
    backend.run_tasks.remember(&claimed);
    Ok(claimed)
}

/// Tasks of runs claimed through this backend and not reported since. Only a hint:
/// a task claimed elsewhere (another process) is not in it, and its completion tries
/// the one statement first, which leaves it to the general way.
#[derive(Default)]
pub(crate) struct ClaimedRunTasks(Mutex<HashSet<TaskId>>);

impl ClaimedRunTasks {
    /// The most tasks remembered; past it the set starts again empty (tasks whose
    /// workers never report would otherwise pile up).
    const CAPACITY: usize = 65_536;

    fn remember(&self, claimed: &[ClaimedTask]) {
        let mut tasks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if tasks.len() + claimed.len() > Self::CAPACITY {
            tasks.clear();
        }
        tasks.extend(
            claimed
                .iter()
                .filter(|c| c.run_id.is_some())
                .map(|c| c.task_id),
        );
    }

    /// Forgets the tasks of `items`; whether any of them was a remembered run task.
    fn forget(&self, items: &[(AttemptRef, Value)]) -> bool {
        let mut tasks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        items
            .iter()
            .fold(false, |any, (a, _)| tasks.remove(&a.task_id) || any)
    }
}

/// Completes attempts as [`EngineRepo::complete_many`] does, one answer per item in
/// order. The current attempts of running tasks without a run complete in one
/// statement outside a transaction; the rest, if any, in one transaction after it.
pub(crate) async fn complete_many_now(
    backend: &PostgresBackend,
    items: Vec<(AttemptRef, Value)>,
) -> StoreResult<Vec<StoreResult<Transition>>> {
    let of_a_run = backend.run_tasks.forget(&items);
    if of_a_run || !fits_one_statement(&items) {
        return in_transaction(backend, items).await;
    }
    let now = time::now();
    // Concurrent batches lock their tasks in one order, as the engine's do.
    let mut sorted: Vec<(AttemptRef, &Value)> = items.iter().map(|(a, o)| (*a, o)).collect();
    sorted.sort_by_key(|(a, _)| a.task_id);
    let completed = {
        let mut session = backend.autocommit().await?;
        let completed = session.complete_running_of(&sorted, now, true).await?;
        Tx::commit(Box::new(session)).await?;
        completed
    };
    let done: HashSet<TaskId> = completed.iter().map(|c| c.task_id).collect();
    let rest: Vec<(usize, (AttemptRef, Value))> = items
        .iter()
        .enumerate()
        .filter(|(_, (a, _))| !done.contains(&a.task_id))
        .map(|(i, item)| (i, item.clone()))
        .collect();
    let mut results: Vec<Option<StoreResult<Transition>>> = items
        .iter()
        .map(|(a, _)| {
            done.contains(&a.task_id).then(|| {
                Ok(Transition {
                    task_id: a.task_id,
                    attempt: a.attempt,
                    status: TaskStatus::Completed,
                    retry_at: None,
                    newly_ready: vec![],
                    run_status: None,
                })
            })
        })
        .collect();
    if !rest.is_empty() {
        let (indexes, rest_items): (Vec<usize>, Vec<_>) = rest.into_iter().unzip();
        for (i, result) in indexes
            .into_iter()
            .zip(in_transaction(backend, rest_items).await?)
        {
            results[i] = Some(result);
        }
    }
    Ok(results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(flowstore_core::StoreError::invalid(
                    "items",
                    "not processed",
                ))
            })
        })
        .collect())
}

/// Whether the one-statement path may take `items`: a batch the engine accepts, each
/// task named once, every output within limits. Anything else goes the general way,
/// whose answers (errors included) are the engine's.
fn fits_one_statement(items: &[(AttemptRef, Value)]) -> bool {
    let mut seen = HashSet::new();
    !items.is_empty()
        && items.len() <= MAX_CLAIM as usize
        && items.iter().all(|(a, output)| {
            seen.insert(a.task_id) && flowstore_core::validate::json_size("output", output).is_ok()
        })
}

/// The general way: the engine's completion in a transition transaction.
async fn in_transaction(
    backend: &PostgresBackend,
    items: Vec<(AttemptRef, Value)>,
) -> StoreResult<Vec<StoreResult<Transition>>> {
    let mut tx = backend.begin_transition().await?;
    let results = tx.complete_many(items).await?;
    tx.commit().await?;
    Ok(results)
}

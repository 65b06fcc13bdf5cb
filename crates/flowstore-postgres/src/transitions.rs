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
//!
//! Completions that arrive together share one statement and one commit
//! ([`CompletionGroup`]), as SQLite's group writer shares one transaction: each
//! caller is still answered its own outcome.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use flowstore_core::ids::TaskId;
use flowstore_core::model::engine::{
    AttemptRef, ClaimRequest, ClaimedTask, EngineRepo, Transition, MAX_CLAIM,
};
use flowstore_core::model::task::TaskStatus;
use flowstore_core::{time, Backend, StoreError, StoreResult, Tx};
use serde_json::Value;
use tokio::sync::oneshot;

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

    /// Whether `task` is a remembered run task.
    fn holds(&self, task: TaskId) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&task)
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
        .map(|r| r.unwrap_or_else(|| Err(StoreError::invalid("items", "not processed"))))
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

/// Group commit of single completions on PostgreSQL.
///
/// A worker that completes one task at a time pays a statement, a round trip and a
/// commit for it, and with many workers those commits queue behind one another. Here
/// at most [`CompletionGroup::RUNNING`] groups run at once; a completion that arrives
/// while they all run waits, and the next group takes every completion waiting by
/// then (at most [`MAX_CLAIM`]) into one call of [`complete_many_now`]: one
/// statement and one commit for the tasks without a run. Nobody is answered before
/// that commit. A lone completion on an idle backend runs at once, as before.
///
/// No task of its own runs the groups: the caller that finds a free place leads a
/// group, and when it is done hands the lead ([`Lead`]) to the first caller still
/// waiting. Were a leader to go away mid-group (its request dropped), or its group
/// to fail as a whole, the callers it took complete their own attempt again, alone:
/// a completion is idempotent (a repeat with the same output answers as the first
/// did), so each caller gets the answer of a completion that happened once.
#[derive(Default)]
pub(crate) struct CompletionGroup(Arc<Mutex<Queue>>);

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Waiting>,
    /// Groups running now, each on a connection of its own.
    running: usize,
}

struct Waiting {
    item: (AttemptRef, Value),
    reply: oneshot::Sender<Reply>,
}

enum Reply {
    /// Lead the next group, with this caller's own completion in it.
    Lead(Lead),
    /// The outcome of this caller's completion, committed.
    Done(StoreResult<Transition>),
}

/// The right to run one group. However it is dropped (the group done, or the caller
/// that held it or was about to receive it gone), the lead passes on to the next
/// caller waiting, or the place is freed: a lead is never lost.
struct Lead(Option<Arc<Mutex<Queue>>>);

impl Drop for Lead {
    fn drop(&mut self) {
        let Some(queue) = self.0.take() else { return };
        let mut guard = queue.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(w) = guard.waiting.pop_front() {
            match w.reply.send(Reply::Lead(Lead(Some(queue.clone())))) {
                Ok(()) => return,
                // That caller is gone: disarm the lead it was not given (dropping it
                // armed would take this lock again), and try the next.
                Err(Reply::Lead(mut unsent)) => unsent.0 = None,
                Err(Reply::Done(_)) => {}
            }
        }
        guard.running -= 1;
    }
}

impl CompletionGroup {
    /// How many groups run at once. More would let completions run beside each other
    /// on more connections instead of sharing a commit; one would leave the database
    /// idle while a group's answer travels back.
    const RUNNING: usize = 2;

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the callers waiting now (at most `MAX_CLAIM - 1`, each task once, the
    /// ones still waiting for an answer) to join a group beside `own`.
    fn take(&self, own: TaskId) -> Vec<Waiting> {
        let mut queue = self.queue();
        let mut tasks = HashSet::from([own]);
        let mut taken = Vec::new();
        let mut kept = VecDeque::new();
        while let Some(w) = queue.waiting.pop_front() {
            if w.reply.is_closed() {
                continue;
            }
            if taken.len() + 1 < MAX_CLAIM as usize && tasks.insert(w.item.0.task_id) {
                taken.push(w);
            } else {
                kept.push_back(w);
            }
        }
        queue.waiting = kept;
        taken
    }
}

/// Completes one attempt as [`EngineRepo::complete`] does, in a group with the
/// completions that arrive meanwhile (see [`CompletionGroup`]).
pub(crate) async fn complete_now(
    backend: &PostgresBackend,
    attempt: AttemptRef,
    output: Value,
) -> StoreResult<Transition> {
    let group = &backend.completions;
    if backend.run_tasks.holds(attempt.task_id) {
        // A run's task goes the general way, which a group would only delay.
        return alone(backend, attempt, output).await;
    }
    let waiting = {
        let mut queue = group.queue();
        if queue.running < CompletionGroup::RUNNING {
            queue.running += 1;
            Ok(Lead(Some(group.0.clone())))
        } else {
            let (reply, answer) = oneshot::channel();
            queue.waiting.push_back(Waiting {
                item: (attempt, output.clone()),
                reply,
            });
            Err(answer)
        }
    };
    let _lead = match waiting {
        Ok(lead) => lead,
        Err(answer) => match answer.await {
            Ok(Reply::Done(result)) => return result,
            Ok(Reply::Lead(lead)) => lead,
            // The group's leader went away, or its group failed as a whole.
            Err(_) => return alone(backend, attempt, output).await,
        },
    };
    let others = group.take(attempt.task_id);
    if others.is_empty() {
        return alone(backend, attempt, output).await;
    }
    let mut items = Vec::with_capacity(others.len() + 1);
    items.push((attempt, output.clone()));
    let mut replies = Vec::with_capacity(others.len());
    for w in others {
        items.push(w.item);
        replies.push(w.reply);
    }
    match complete_many_now(backend, items).await {
        Ok(results) => {
            let mut results = results.into_iter();
            let own = results
                .next()
                .unwrap_or_else(|| Err(StoreError::not_found("task", attempt.task_id)));
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Reply::Done(result));
            }
            own
        }
        // Part of the group may have been written before the error: every caller of
        // it, this one too (the others when their answer channels drop here),
        // completes its own attempt again alone and gets its own outcome.
        Err(_) => {
            drop(replies);
            alone(backend, attempt, output).await
        }
    }
}

/// One completion on its own.
async fn alone(
    backend: &PostgresBackend,
    attempt: AttemptRef,
    output: Value,
) -> StoreResult<Transition> {
    complete_many_now(backend, vec![(attempt, output)])
        .await?
        .pop()
        .unwrap_or_else(|| Err(StoreError::not_found("task", attempt.task_id)))
}

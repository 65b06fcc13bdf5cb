//! Completing attempts, one or many in the caller's transaction.
//!
//! The common case (the attempt is its task's current running one) is written by
//! the backend in as few statements as it allows ([`HotPath::complete_running`]:
//! one for a whole batch on PostgreSQL), and only the completed tasks' dependents are
//! looked at afterwards. Only what that fast path did not complete (a stale,
//! repeated or unknown attempt) is read back, without writing, to say why.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use super::{advance_run, end_run, keep_outcome, repeated, EngineTx, Report};
use crate::ids::{RunId, TaskId};
use crate::model::engine::{
    run_outcome, AttemptRef, CompletedAttempt, RunState, Transition, MAX_CLAIM,
};
use crate::model::run::RunStrategy;
use crate::time::{self, Timestamp};
use crate::{StoreError, StoreResult};

/// Completes an attempt (see [`crate::model::engine::EngineRepo::complete`]).
pub async fn complete<T: EngineTx + ?Sized>(
    tx: &mut T,
    attempt: AttemptRef,
    output: Value,
) -> StoreResult<Transition> {
    complete_one(tx, &(attempt, output)).await
}

/// Completes one attempt given by reference and output, borrowed (see
/// [`complete_many`]).
pub async fn complete_one<T: EngineTx + ?Sized>(
    tx: &mut T,
    item: &(AttemptRef, Value),
) -> StoreResult<Transition> {
    complete_many(tx, std::slice::from_ref(item))
        .await?
        .pop()
        .unwrap_or_else(|| Err(StoreError::not_found("task", item.0.task_id)))
}

/// Completes many attempts (see [`crate::model::engine::EngineRepo::complete_many`]).
/// The items are borrowed, so that a caller that may have to run them again (a group
/// writer after its group failed) keeps them.
pub async fn complete_many<T: EngineTx + ?Sized>(
    tx: &mut T,
    items: &[(AttemptRef, Value)],
) -> StoreResult<Vec<StoreResult<Transition>>> {
    if items.is_empty() || items.len() > MAX_CLAIM as usize {
        return Err(StoreError::invalid(
            "items",
            format!(
                "{} attempts given; 1..={MAX_CLAIM} are allowed",
                items.len()
            ),
        ));
    }
    let now = time::now();
    let mut results: Vec<Option<StoreResult<Transition>>> = items.iter().map(|_| None).collect();
    // The first report of each task goes to the batch; a task named again is looked at
    // afterwards.
    let mut fast = Vec::new();
    let mut again = Vec::new();
    let mut seen = HashSet::new();
    for (i, (attempt, output)) in items.iter().enumerate() {
        if let Err(e) = crate::validate::json_size("output", output) {
            results[i] = Some(Err(e));
        } else if seen.insert(attempt.task_id) {
            fast.push(i);
        } else {
            again.push(i);
        }
    }
    let firsts: Vec<(AttemptRef, &Value)> =
        fast.iter().map(|&i| (items[i].0, &items[i].1)).collect();
    for (&i, result) in fast.iter().zip(complete_distinct(tx, &firsts, now).await?) {
        results[i] = Some(result);
    }
    // A task named again is handled after the first report of it, as if it came in
    // its own call: a repeat, or the current attempt after a stale one.
    for &i in &again {
        let one = [(items[i].0, &items[i].1)];
        results[i] = complete_distinct(tx, &one, now).await?.pop();
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(StoreError::invalid("items", "not processed"))))
        .collect())
}

/// Completes attempts of distinct tasks (outputs already checked); one result per
/// item, in order.
async fn complete_distinct<T: EngineTx + ?Sized>(
    tx: &mut T,
    items: &[(AttemptRef, &Value)],
    now: Timestamp,
) -> StoreResult<Vec<StoreResult<Transition>>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    // Concurrent batches lock their tasks in one order.
    let mut batch = items.to_vec();
    batch.sort_by_key(|(a, _)| a.task_id);
    let completed = tx.complete_running(&batch, now).await?;
    let done: HashMap<TaskId, &CompletedAttempt> =
        completed.iter().map(|c| (c.task_id, c)).collect();

    let mut transitions: HashMap<TaskId, Transition> = HashMap::new();
    for c in &completed {
        let attempt = AttemptRef {
            task_id: c.task_id,
            attempt: c.attempt,
        };
        transitions.insert(c.task_id, Transition::completed(attempt));
    }
    // The runs touched, each with its completed tasks in the order they were given.
    let mut runs: BTreeMap<RunId, (RunState, Vec<TaskId>)> = BTreeMap::new();
    for (attempt, _) in items {
        if let Some(run) = done.get(&attempt.task_id).and_then(|c| c.run.as_ref()) {
            runs.entry(run.id)
                .or_insert_with(|| (run.clone(), Vec::new()))
                .1
                .push(attempt.task_id);
        }
    }
    advance_runs(tx, runs, now, &mut transitions).await?;
    // An answer that says more than "completed" is kept for a repeat of the report.
    for t in transitions.values() {
        if !t.newly_ready.is_empty() || t.run_status.is_some() {
            keep_outcome(tx, t).await?;
        }
    }

    let mut results = Vec::with_capacity(items.len());
    for (attempt, output) in items {
        results.push(match transitions.remove(&attempt.task_id) {
            Some(t) => Ok(t),
            None => settled(tx, *attempt, output).await?,
        });
    }
    Ok(results)
}

/// After tasks of live runs completed: makes their dependents ready and ends the
/// runs that have nothing left open. What several completions of one run did
/// together is reported on the last of them.
async fn advance_runs<T: EngineTx + ?Sized>(
    tx: &mut T,
    runs: BTreeMap<RunId, (RunState, Vec<TaskId>)>,
    now: Timestamp,
    transitions: &mut HashMap<TaskId, Transition>,
) -> StoreResult<()> {
    let mut events = Vec::new();
    let mut parallel = Vec::new();
    let mut pairs = Vec::new();
    for (run_id, (run, tasks)) in runs {
        let Some(&last) = tasks.last() else { continue };
        if run.status.is_terminal() || run.cancel_requested_at.is_some() {
            continue;
        }
        if run.strategy == Some(RunStrategy::Sequential) {
            // One step of a sequential run runs at a time; the next is found by order.
            if let Some(t) = transitions.get_mut(&last) {
                advance_run(tx, run, now, t, &mut events).await?;
            }
            continue;
        }
        pairs.extend(tasks.iter().map(|t| (run_id, *t)));
        parallel.push((run, last));
    }
    if !pairs.is_empty() {
        let promotion = tx.promote_dependents(&pairs, now).await?;
        for (run, last) in parallel {
            let ready: Vec<TaskId> = promotion
                .ready
                .iter()
                .filter(|(r, _)| *r == run.id)
                .map(|(_, t)| *t)
                .collect();
            let open = promotion.open_runs.contains(&run.id);
            let Some(t) = transitions.get_mut(&last) else {
                continue;
            };
            t.newly_ready = ready;
            if !open {
                let counts = tx.run_task_counts(run.id).await?;
                if let Some(status) = run_outcome(counts) {
                    end_run(tx, run, status, now, &mut events).await?;
                    t.run_status = Some(status);
                }
            }
        }
    }
    tx.insert_events(&events, now).await
}

/// Why an attempt the fast path did not complete was not completed, read without
/// writing: a repeated completion (the same output again gets the first answer), a
/// stale attempt, or an unknown task. The outer result is a database error.
async fn settled<T: EngineTx + ?Sized>(
    tx: &mut T,
    attempt: AttemptRef,
    output: &Value,
) -> StoreResult<StoreResult<Transition>> {
    let Some(task) = tx.lock_task(attempt.task_id).await? else {
        return Ok(Err(StoreError::not_found("task", attempt.task_id)));
    };
    match repeated(tx, &task, attempt, Report::Completion(output)).await {
        Err(e @ (StoreError::Conflict { .. } | StoreError::NotFound { .. })) => Ok(Err(e)),
        other => other.map(Ok),
    }
}

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
//! Completions, claims and heartbeats that arrive together share one statement and
//! one commit ([`Group`]), failures one commit, as SQLite's group writer shares one
//! transaction: each caller is still answered its own outcome.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowstore_core::engine::extend_current;
use flowstore_core::engine::shortcut::{answer_rest, fits_one_statement};
use flowstore_core::ids::{AttemptId, TaskId};
use flowstore_core::model::engine::{
    check_lease, AttemptRef, ClaimRequest, ClaimedTask, EngineRepo, Heartbeat, HotPath, Transition,
    MAX_CLAIM,
};
use flowstore_core::{time, Backend, StoreError, StoreResult, Tx};
use serde_json::Value;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::backend::PostgresBackend;

/// Claims as [`EngineRepo::claim`] does, on a session outside any transaction: the
/// claim is one statement (`claim_ready`), so it commits as it runs. Claims that
/// arrive together and ask for the same handler types, under the same key and lease,
/// share that statement (see [`Group`]): one of them runs it for all, each worker
/// getting its own share of the tasks. A claim of more than [`ClaimGroup::MOST`]
/// tasks runs alone at once. A caller that goes away while its claim runs
/// leaves what it claimed to the lease reaper, as a worker that dies after claiming
/// does.
pub(crate) async fn claim_now(
    backend: &PostgresBackend,
    request: &ClaimRequest,
) -> StoreResult<Vec<ClaimedTask>> {
    request.check()?;
    let group = &backend.claims;
    let claimed = if request.limit > ClaimGroup::MOST {
        // A claim of many tasks is a batch already: it runs at once, beside others,
        // rather than waiting for a place in a group.
        claim_alone(backend, request).await?
    } else {
        match group.join(|| request.clone()).await {
            Turn::Done(result) => result?,
            // The group this claim was in failed as a whole: its one statement claimed
            // nothing.
            Turn::Alone => claim_alone(backend, request).await?,
            Turn::Lead(lead) => {
                let mut room = MAX_CLAIM.saturating_sub(request.limit);
                let others = group
                    .gather(|other| {
                        let fits = other.handler_types == request.handler_types
                            && other.executor == request.executor
                            && other.lease == request.lease
                            && other.limit <= room;
                        if fits {
                            room -= other.limit;
                        }
                        fits
                    })
                    .await;
                if others.is_empty() {
                    claim_alone(backend, request).await?
                } else {
                    let session = backend.autocommit().await?;
                    tokio::spawn(claim_together(session, lead, request.clone(), others))
                        .await
                        .map_err(|_| StoreError::internal("a group of claims stopped"))??
                }
            }
        }
    };
    backend.run_tasks.remember(&claimed);
    Ok(claimed)
}

/// One claim on its own.
async fn claim_alone(
    backend: &PostgresBackend,
    request: &ClaimRequest,
) -> StoreResult<Vec<ClaimedTask>> {
    let mut session = backend.autocommit().await?;
    let claimed = EngineRepo::claim(&mut session, request).await?;
    Tx::commit(Box::new(session)).await?;
    Ok(claimed)
}

/// Runs a group of claims in one statement and answers each waiting caller its
/// share; returns the leader's own. It runs in a task of its own, so that a leader
/// that goes away does not stop the statement half-way with the others' tasks
/// claimed and nobody told. Should the statement fail, the waiting callers' answer
/// channels drop and each claims again alone: the one statement claimed nothing.
async fn claim_together(
    mut session: crate::backend::PostgresTx,
    _lead: Lead<ClaimRequest, Vec<ClaimedTask>>,
    own: ClaimRequest,
    others: Vec<Waiting<ClaimRequest, Vec<ClaimedTask>>>,
) -> StoreResult<Vec<ClaimedTask>> {
    let (items, replies): (Vec<ClaimRequest>, Vec<_>) =
        others.into_iter().map(|w| (w.item, w.reply)).unzip();
    let mut requests = vec![&own];
    requests.extend(items.iter());
    let wanted: u32 = requests.iter().map(|r| r.limit).sum();
    let ids: Vec<AttemptId> = (0..wanted).map(|_| AttemptId::new()).collect();
    let each = session.claim_ready(&requests, time::now(), &ids).await?;
    Tx::commit(Box::new(session)).await?;
    let mut each = each.into_iter();
    let mine = each.next().unwrap_or_default();
    for (reply, share) in replies.into_iter().zip(each) {
        let _ = reply.send(Reply::Done(Ok(share)));
    }
    Ok(mine)
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
    let each = items
        .into_iter()
        .map(|(a, output)| match done.contains(&a.task_id) {
            true => Ok(Transition::completed(a)),
            false => Err((a, output)),
        })
        .collect();
    answer_rest(each, |rest| in_transaction(backend, rest)).await
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

/// Group commit of worker transitions on PostgreSQL: callers of one kind (single
/// completions, claims, heartbeats, failures) that arrive together share one
/// statement (failures: one transaction) and one commit.
///
/// A worker that completes or claims one task at a time pays a statement, a round
/// trip and a commit for it, and with many workers those commits queue behind one
/// another. Here at most [`Group::RUNNING`] groups of a kind run at once; a caller
/// that arrives while they all run waits, and the next group takes the callers
/// waiting by then that fit with it into one statement. Nobody is answered before
/// that statement's commit. A lone caller on an idle backend runs at once, as before
/// (after at most a few yields, should the last group have been larger; see
/// [`Group::gather`]).
///
/// No task of its own runs the groups: the caller that finds a free place leads a
/// group, and when it is done hands the lead ([`Lead`]) to the first caller still
/// waiting. Were a leader to go away mid-group, or its group to fail as a whole, the
/// callers it took run their own transition again, alone ([`Turn::Alone`]): a
/// completion is idempotent (a repeat with the same output answers as the first
/// did), and a claim group's statement runs in a task of its own that answers its
/// callers even when its leader is gone, and claims nothing when it fails.
pub(crate) struct Group<I, O>(Arc<Mutex<Queue<I, O>>>);

impl<I, O> Default for Group<I, O> {
    fn default() -> Self {
        Group(Arc::new(Mutex::new(Queue {
            waiting: VecDeque::new(),
            running: 0,
            last: 1,
        })))
    }
}

/// A worker's report of one attempt, as a group holds it.
trait Report: Clone {
    /// The task reported on.
    fn task(&self) -> TaskId;
}

impl<X: Clone> Report for (AttemptRef, X) {
    fn task(&self) -> TaskId {
        self.0.task_id
    }
}

impl Report for (AttemptRef, Value, bool) {
    fn task(&self) -> TaskId {
        self.0.task_id
    }
}

/// Single completions waiting to share a statement and a commit.
pub(crate) type CompletionGroup = Group<(AttemptRef, Value), Transition>;
/// Claims waiting to share a statement.
pub(crate) type ClaimGroup = Group<ClaimRequest, Vec<ClaimedTask>>;
/// Single heartbeats waiting to share a statement and a commit.
pub(crate) type HeartbeatGroup = Group<(AttemptRef, Duration), Heartbeat>;
/// Failures waiting to share a commit (each is several statements: its attempt, its
/// task's retry or end, its run's failure strategy).
pub(crate) type FailureGroup = Group<(AttemptRef, Value, bool), Transition>;

impl FailureGroup {
    /// The most failures in one transaction, which holds every one's locks until it
    /// commits.
    const MOST: usize = 64;
}

impl ClaimGroup {
    /// The most tasks a claim may ask for and still join a group. Groups run at most
    /// [`Group::RUNNING`] at a time, so batches, which gain little from sharing a
    /// statement, would lose the concurrency they had: measured with 16 HTTP workers
    /// claiming 64 tasks at a time, grouping them all cost about a sixth of the
    /// throughput.
    const MOST: u32 = 8;
}

struct Queue<I, O> {
    waiting: VecDeque<Waiting<I, O>>,
    /// Groups running now, each on a connection of its own.
    running: usize,
    /// How many callers the last group of this kind answered.
    last: usize,
}

/// A caller waiting for its answer or for the lead.
struct Waiting<I, O> {
    item: I,
    reply: oneshot::Sender<Reply<I, O>>,
}

enum Reply<I, O> {
    /// Lead the next group, with this caller's own transition in it.
    Lead(Lead<I, O>),
    /// The outcome of this caller's transition, committed.
    Done(StoreResult<O>),
}

/// How a caller's turn came.
enum Turn<I, O> {
    /// It leads a group.
    Lead(Lead<I, O>),
    /// Another caller's group ran its transition.
    Done(StoreResult<O>),
    /// The group that took it went away or failed as a whole: it runs alone.
    Alone,
}

/// The right to run one group. However it is dropped (the group done, or the caller
/// that held it or was about to receive it gone), the lead passes on to the next
/// caller waiting, or the place is freed: a lead is never lost.
struct Lead<I, O>(Option<Arc<Mutex<Queue<I, O>>>>);

impl<I, O> Drop for Lead<I, O> {
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

impl<I, O> Group<I, O> {
    /// How many groups of a kind run at once. More would let transitions run beside
    /// each other on more connections instead of sharing a commit; one would leave
    /// the database idle while a group's answer travels back.
    const RUNNING: usize = 2;
    /// How many times a leader lets other tasks run while it gathers its group.
    const GATHER_YIELDS: usize = 8;

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue<I, O>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Leads at once when a place is free; else waits (with the item `item` makes)
    /// for an answer or for the lead.
    async fn join(&self, item: impl FnOnce() -> I) -> Turn<I, O> {
        let waiting = {
            let mut queue = self.queue();
            if queue.running < Self::RUNNING {
                queue.running += 1;
                Ok(Lead(Some(self.0.clone())))
            } else {
                let (reply, answer) = oneshot::channel();
                queue.waiting.push_back(Waiting {
                    item: item(),
                    reply,
                });
                Err(answer)
            }
        };
        match waiting {
            Ok(lead) => Turn::Lead(lead),
            Err(answer) => match answer.await {
                Ok(Reply::Done(result)) => Turn::Done(result),
                Ok(Reply::Lead(lead)) => Turn::Lead(lead),
                Err(_) => Turn::Alone,
            },
        }
    }

    /// Runs the report `item` in a group (see [`Group`]): leads one, with the reports
    /// waiting by then of other tasks (each task once, `most` in all), or is answered
    /// by another caller's group. `many` runs a group's items, first this caller's,
    /// and answers each in order; should it fail as a whole, this caller's item runs
    /// again alone, as do the others' (their answer channels dropped).
    async fn run<F>(&self, item: I, most: usize, many: impl Fn(Vec<I>) -> F) -> StoreResult<O>
    where
        I: Report,
        F: std::future::Future<Output = StoreResult<Vec<StoreResult<O>>>>,
    {
        let _lead = match self.join(|| item.clone()).await {
            Turn::Done(result) => return result,
            Turn::Alone => return first(many(vec![item]).await?),
            Turn::Lead(lead) => lead,
        };
        let mut tasks = HashSet::from([item.task()]);
        let others = self
            .gather(|other| tasks.len() < most && tasks.insert(other.task()))
            .await;
        if others.is_empty() {
            return first(many(vec![item]).await?);
        }
        let mut items = Vec::with_capacity(others.len() + 1);
        items.push(item.clone());
        let mut replies = Vec::with_capacity(others.len());
        for w in others {
            items.push(w.item);
            replies.push(w.reply);
        }
        match many(items).await {
            Ok(results) => {
                let mut results = results.into_iter();
                let own = results
                    .next()
                    .unwrap_or_else(|| Err(StoreError::internal("a transition was not answered")));
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(Reply::Done(result));
                }
                own
            }
            // Part of the group may have been written before the error: every caller
            // of it, this one too, runs its own transition again alone and gets its
            // own outcome (a completion, heartbeat or failure repeated is answered as
            // the first was).
            Err(_) => {
                drop(replies);
                first(many(vec![item]).await?)
            }
        }
    }

    /// Takes the callers waiting now that `fits` accepts, as [`Group::take`] does; when
    /// they are fewer than the last group of this kind answered, lets the other tasks
    /// of this thread run, up to [`Group::GATHER_YIELDS`] times, and takes again: the
    /// workers the last group answered are sending their next reports, and one
    /// statement and commit then takes what would have been several. Records the
    /// group's size.
    async fn gather(&self, mut fits: impl FnMut(&I) -> bool) -> Vec<Waiting<I, O>> {
        let mut taken = self.take(&mut fits);
        let last = self.queue().last;
        for _ in 0..Self::GATHER_YIELDS {
            if taken.len() + 1 >= last {
                break;
            }
            tokio::task::yield_now().await;
            taken.extend(self.take(&mut fits));
        }
        self.queue().last = taken.len() + 1;
        taken
    }

    /// Takes the callers waiting now, still waiting for an answer, that `fits`
    /// accepts (asked in arrival order) to join a group; the others keep their place.
    fn take(&self, mut fits: impl FnMut(&I) -> bool) -> Vec<Waiting<I, O>> {
        let mut queue = self.queue();
        let mut taken = Vec::new();
        let mut kept = VecDeque::new();
        while let Some(w) = queue.waiting.pop_front() {
            if w.reply.is_closed() {
                continue;
            }
            if fits(&w.item) {
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
    if backend.run_tasks.holds(attempt.task_id) {
        // A run's task goes the general way, which a group would only delay.
        return first(complete_many_now(backend, vec![(attempt, output)]).await?);
    }
    let most = MAX_CLAIM as usize;
    let run = |items| complete_many_now(backend, items);
    backend.completions.run((attempt, output), most, run).await
}

/// Extends a lease as [`EngineRepo::heartbeat`] does, in a group with the heartbeats
/// that arrive meanwhile (see [`HeartbeatGroup`]): the current attempts' leases in one
/// statement outside a transaction, any other the general way after it.
pub(crate) async fn heartbeat_now(
    backend: &PostgresBackend,
    attempt: AttemptRef,
    lease: Duration,
) -> StoreResult<Heartbeat> {
    check_lease(lease)?;
    let most = MAX_CLAIM as usize;
    let run = |items| heartbeat_many_now(backend, items);
    backend.heartbeats.run((attempt, lease), most, run).await
}

/// Extends many leases, one answer per item in order: the current attempts of distinct
/// tasks in one statement outside a transaction; each of the rest (a stale or unknown
/// attempt, for its own answer) in a transaction of its own after it, so that a
/// statement failing for one cannot undo another's answered extension.
async fn heartbeat_many_now(
    backend: &PostgresBackend,
    items: Vec<(AttemptRef, Duration)>,
) -> StoreResult<Vec<StoreResult<Heartbeat>>> {
    let mut results = {
        let mut session = backend.autocommit().await?;
        let results = extend_current(&mut session, &items).await?;
        Tx::commit(Box::new(session)).await?;
        results
    };
    for (result, &(attempt, lease)) in results.iter_mut().zip(&items) {
        if result.is_none() {
            *result = Some(heartbeat_alone(backend, attempt, lease).await);
        }
    }
    Ok(results.into_iter().flatten().collect())
}

/// One heartbeat in a transition transaction, committed when accepted.
async fn heartbeat_alone(
    backend: &PostgresBackend,
    attempt: AttemptRef,
    lease: Duration,
) -> StoreResult<Heartbeat> {
    let mut tx = backend.begin_transition_tx().await?;
    let heartbeat = EngineRepo::heartbeat(&mut tx, attempt, lease).await?;
    Tx::commit(Box::new(tx)).await?;
    Ok(heartbeat)
}

/// Fails an attempt as [`EngineRepo::fail`] does, in a group with the failures that
/// arrive meanwhile (see [`FailureGroup`]).
pub(crate) async fn fail_now(
    backend: &PostgresBackend,
    attempt: AttemptRef,
    error: Value,
    retryable: bool,
) -> StoreResult<Transition> {
    let run = |items| fail_many_now(backend, items);
    backend
        .failures
        .run((attempt, error, retryable), FailureGroup::MOST, run)
        .await
}

/// Fails attempts of distinct tasks, each as [`EngineRepo::fail`] does, in one
/// transaction: the tasks are locked first in ID order and then their runs in ID
/// order, the order every transition takes them in, and each failure runs in a
/// savepoint of its own, so that one's error undoes only its own writes.
async fn fail_many_now(
    backend: &PostgresBackend,
    items: Vec<(AttemptRef, Value, bool)>,
) -> StoreResult<Vec<StoreResult<Transition>>> {
    let mut tx = backend.begin_transition_tx().await?;
    if items.len() == 1 {
        let (attempt, error, retryable) = items.into_iter().next().expect("one item");
        let result = EngineRepo::fail(&mut tx, attempt, error, retryable).await;
        if result.is_ok() {
            Tx::commit(Box::new(tx)).await?;
        }
        return Ok(vec![result]);
    }
    let tasks: Vec<Uuid> = items.iter().map(|(a, _, _)| a.task_id.0).collect();
    let runs: Vec<Option<Uuid>> = sqlx::query_scalar(
        "SELECT run_id FROM tasks WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
    )
    .bind(&tasks)
    .fetch_all(&mut *tx.tx)
    .await?;
    let runs: Vec<Uuid> = runs.into_iter().flatten().collect();
    if !runs.is_empty() {
        sqlx::query(
            "SELECT 1 FROM workflow_executions WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
        )
        .bind(&runs)
        .execute(&mut *tx.tx)
        .await?;
    }
    let mut results = Vec::with_capacity(items.len());
    for (attempt, error, retryable) in items {
        sqlx::query("SAVEPOINT flowstore_failure")
            .execute(&mut *tx.tx)
            .await?;
        let result = EngineRepo::fail(&mut tx, attempt, error, retryable).await;
        if result.is_err() {
            sqlx::query("ROLLBACK TO flowstore_failure")
                .execute(&mut *tx.tx)
                .await?;
        }
        sqlx::query("RELEASE flowstore_failure")
            .execute(&mut *tx.tx)
            .await?;
        results.push(result);
    }
    Tx::commit(Box::new(tx)).await?;
    Ok(results)
}

/// The one answer a list of answers holds.
fn first<O>(results: Vec<StoreResult<O>>) -> StoreResult<O> {
    results
        .into_iter()
        .next()
        .unwrap_or_else(|| Err(StoreError::internal("a transition was not answered")))
}

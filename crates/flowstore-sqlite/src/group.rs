//! Group commit of worker transitions.
//!
//! SQLite has one writer at a time, so concurrent workers' claims and completions
//! queue for it, and each pays for a transaction of its own: `BEGIN IMMEDIATE`, the
//! pages it changes written to the log, `COMMIT`. Most of those pages (the claim
//! index, the task table's leaves) are the same ones for every transition. Here the
//! transitions submitted through [`Backend::claim_now`] and its siblings go to one
//! task that takes every transition queued by the time the writer is free, runs them
//! in one transaction, in as few statements as their kinds allow (see [`Plan`]),
//! and commits once: a transition's error undoes its own writes only, and none is
//! answered before the commit that makes it durable.
//!
//! [`Backend::claim_now`]: flowstore_core::Backend::claim_now

use std::sync::Arc;
use std::time::Duration;

use flowstore_core::engine::{complete_many, complete_one, heartbeat_many};
use flowstore_core::ids::AttemptId;
use flowstore_core::model::engine::{
    AttemptRef, ClaimRequest, ClaimedTask, EngineRepo, EngineSettings, Heartbeat, HotPath,
    Transition,
};
use flowstore_core::store::KeySource;
use flowstore_core::time;
use flowstore_core::{StoreError, StoreResult};
use serde_json::Value;
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::backend::SqliteTx;

/// The most transitions committed together. A bound keeps one transaction's work
/// (and the wait of the transitions queued behind it) short.
const MAX_GROUP: usize = 64;

/// A worker transition waiting for the group writer.
pub(crate) enum Op {
    Claim(ClaimRequest),
    /// One attempt's completion: its reference and output.
    Complete((AttemptRef, Value)),
    CompleteMany(Vec<(AttemptRef, Value)>),
    /// A lease to extend, for how long.
    Heartbeat(AttemptRef, Duration),
    /// An attempt that failed: the error and whether it may be retried.
    Fail(AttemptRef, Value, bool),
}

/// What a transition returned, by kind.
pub(crate) enum Done {
    Claimed(Vec<ClaimedTask>),
    Completed(Transition),
    CompletedMany(Vec<StoreResult<Transition>>),
    Heartbeat(Heartbeat),
    /// Several heartbeats' answers, in order (a batch the group made).
    Heartbeats(Vec<StoreResult<Heartbeat>>),
    Failed(Transition),
}

impl Done {
    /// The answers of a batch the group made, one per item; any other result is one
    /// answer.
    fn each(self) -> Vec<StoreResult<Done>> {
        match self {
            Done::CompletedMany(each) => each.into_iter().map(|r| r.map(Done::Completed)).collect(),
            Done::Heartbeats(each) => each.into_iter().map(|r| r.map(Done::Heartbeat)).collect(),
            done => vec![Ok(done)],
        }
    }
}

struct Job {
    op: Op,
    reply: oneshot::Sender<StoreResult<Done>>,
}

/// The handle through which transitions reach the group writer task. The task ends
/// when the handle is dropped (with the backend).
pub(crate) struct GroupWriter {
    jobs: mpsc::UnboundedSender<Job>,
}

/// Where the writer task begins its transactions: the same pool and writer lock as
/// [`flowstore_core::Backend::begin`], so the two kinds of writers take turns.
pub(crate) struct WriteAccess {
    pub pool: SqlitePool,
    pub writer: Arc<Mutex<()>>,
    pub keys: Arc<KeySource>,
    /// What the engine writes besides what its guarantees need.
    pub engine: EngineSettings,
    /// Where waits for the writer lock are counted.
    pub waits: Arc<flowstore_core::store::WaitBoard>,
    /// Told of each write commit (see `feed.rs`).
    pub feed: crate::feed::FeedHandle,
}

impl GroupWriter {
    /// Starts the writer task.
    pub(crate) fn spawn(access: WriteAccess) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(access, queue));
        GroupWriter { jobs }
    }

    /// Runs `op` in the next group and returns its result once the group committed.
    pub(crate) async fn submit(&self, op: Op) -> StoreResult<Done> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { op, reply })
            .map_err(|_| StoreError::unavailable("the SQLite writer has stopped"))?;
        answer
            .await
            .map_err(|_| StoreError::unavailable("the SQLite writer stopped before answering"))?
    }
}

async fn run(access: WriteAccess, mut queue: mpsc::UnboundedReceiver<Job>) {
    let access = Arc::new(access);
    while let Some(first) = queue.recv().await {
        // Take the writer first: transitions that arrive while it is busy join this
        // group instead of waiting for one more commit.
        let tx = access.begin_immediate().await;
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        match tx {
            // A group runs in a task of its own: were a transition to panic, its
            // group's callers would get an error (their replies dropped, the
            // transaction rolled back) and the writer would go on with the next.
            Ok(tx) => {
                let _ = tokio::spawn(run_group(access.clone(), tx, jobs)).await;
            }
            Err(e) => answer_all(jobs, e),
        }
    }
}

/// Runs `jobs` in `tx` and commits once, then answers each.
///
/// A group runs first without savepoints ([`Plan::run_at_once`]): each kind's batch
/// answers every item for itself and writes nothing for one it refuses, so a
/// savepoint matters only when a statement fails as a whole, which is rare. Should
/// one fail, the group's transaction is rolled back (none of it was answered) and
/// the group runs again in a new one with savepoints ([`Plan::run_carefully`]).
/// Each savepoint and its release were a call to the driver's connection thread, a
/// third of a group's calls.
async fn run_group(access: Arc<WriteAccess>, mut tx: SqliteTx, mut jobs: Vec<Job>) {
    if jobs.len() == 1 {
        // Alone: no savepoint needed, an error rolls the transaction back.
        let job = jobs.remove(0);
        let result = match apply(&mut tx, job.op.step()).await {
            Ok(done) => tx.commit_inner().await.map(|()| done),
            Err(e) => {
                // Rolled back before the writer lock is let go, so the next writer
                // does not find this transaction still open.
                tx.rollback_inner().await;
                Err(e)
            }
        };
        let _ = job.reply.send(result);
        return;
    }
    let (ops, replies): (Vec<Op>, Vec<_>) = jobs.into_iter().map(|j| (j.op, j.reply)).unzip();
    let plan = Plan::new(ops);
    let outcome = match plan.run_at_once(&mut tx).await {
        Ok(results) => tx.commit_inner().await.map(|()| results),
        Err(e) => {
            tracing::debug!(error = %e, "a group's statement failed; its transitions run again, each kind in a savepoint");
            tx.rollback_inner().await;
            match access.begin_immediate().await {
                Ok(mut tx) => match plan.run_carefully(&mut tx).await {
                    Ok(results) => tx.commit_inner().await.map(|()| results),
                    Err(e) => {
                        tx.rollback_inner().await;
                        Err(e)
                    }
                },
                Err(e) => Err(e),
            }
        }
    };
    match outcome {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            let message = e.to_string();
            for reply in replies {
                let _ = reply.send(Err(StoreError::unavailable(format!(
                    "the group of transitions was not committed: {message}"
                ))));
            }
        }
    }
}

/// A group's transitions sorted by kind, each kept at its place in the group, so
/// that the group can run twice: at once, and carefully should that fail.
struct Plan {
    len: usize,
    claims: Vec<(usize, ClaimRequest)>,
    /// Places of the single completions, and their items in the same order.
    completions: Vec<usize>,
    items: Vec<(AttemptRef, Value)>,
    /// Places of the heartbeats, and their leases in the same order.
    heartbeats: Vec<usize>,
    leases: Vec<(AttemptRef, Duration)>,
    /// Batch completions and failures, run one by one.
    others: Vec<(usize, Op)>,
}

/// Each transition's answer by place in the group, once it has one.
type Answers = Vec<Option<StoreResult<Done>>>;

impl Plan {
    fn new(ops: Vec<Op>) -> Plan {
        let mut plan = Plan {
            len: ops.len(),
            claims: Vec::new(),
            completions: Vec::new(),
            items: Vec::new(),
            heartbeats: Vec::new(),
            leases: Vec::new(),
            others: Vec::new(),
        };
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Claim(request) => plan.claims.push((i, request)),
                Op::Complete(item) => {
                    plan.completions.push(i);
                    plan.items.push(item);
                }
                Op::Heartbeat(attempt, lease) => {
                    plan.heartbeats.push(i);
                    plan.leases.push((attempt, lease));
                }
                op => plan.others.push((i, op)),
            }
        }
        plan
    }

    fn answers(&self) -> Answers {
        (0..self.len).map(|_| None).collect()
    }

    /// Runs the group with no savepoint: the completions as one batch, the heartbeats
    /// as one, the claims together, then the others. `Err` as soon as any statement
    /// fails, leaving the transaction for the caller to roll back whole.
    async fn run_at_once(&self, tx: &mut SqliteTx) -> StoreResult<Vec<StoreResult<Done>>> {
        let mut answers = self.answers();
        if !self.items.is_empty() {
            let done = Done::CompletedMany(complete_many(tx, &self.items).await?);
            place(&mut answers, &self.completions, done);
        }
        if !self.leases.is_empty() {
            let done = Done::Heartbeats(heartbeat_many(tx, &self.leases).await?);
            place(&mut answers, &self.heartbeats, done);
        }
        if !self.claims.is_empty() {
            for ((i, _), answer) in self
                .claims
                .iter()
                .zip(claim_together(tx, &self.claims).await?)
            {
                answers[*i] = Some(answer.map(Done::Claimed));
            }
        }
        for (i, op) in &self.others {
            answers[*i] = Some(Ok(apply(tx, op.step()).await?));
        }
        Ok(finish(answers))
    }

    /// Runs the group in as few statements as its kinds allow, each transition's own
    /// error undoing only its own writes; `Err` when the transaction itself failed.
    ///
    /// The completions go as one batch (the engine's `complete_many`) and so do the
    /// heartbeats (`heartbeat_many`), each in a savepoint, and should a batch fail
    /// as a whole, each of its items runs alone in a savepoint of its own for its own
    /// answer. Claims run together inside one savepoint (those asking for the same
    /// handler types under the same key and lease as one statement) and, should a
    /// statement fail, that savepoint is rolled back and they run again each in a
    /// savepoint of its own. Batch completions and failures keep a savepoint each.
    async fn run_carefully(&self, tx: &mut SqliteTx) -> StoreResult<Vec<StoreResult<Done>>> {
        let mut answers = self.answers();
        let each = |k| Step::Complete(&self.items[k]);
        together(
            tx,
            &self.completions,
            Step::CompleteMany(&self.items),
            each,
            &mut answers,
        )
        .await?;
        let each = |k: usize| Step::Heartbeat(self.leases[k].0, self.leases[k].1);
        together(
            tx,
            &self.heartbeats,
            Step::Heartbeats(&self.leases),
            each,
            &mut answers,
        )
        .await?;
        if !self.claims.is_empty() {
            tx.execute_plain("SAVEPOINT flowstore_claims").await?;
            match claim_together(tx, &self.claims).await {
                Ok(claimed) => {
                    tx.execute_plain("RELEASE flowstore_claims").await?;
                    for ((i, _), answer) in self.claims.iter().zip(claimed) {
                        answers[*i] = Some(answer.map(Done::Claimed));
                    }
                }
                Err(_) => {
                    tx.execute_plain("ROLLBACK TO flowstore_claims").await?;
                    tx.execute_plain("RELEASE flowstore_claims").await?;
                    for (i, request) in &self.claims {
                        answers[*i] = Some(in_savepoint(tx, Step::Claim(request)).await?);
                    }
                }
            }
        }
        for (i, op) in &self.others {
            answers[*i] = Some(in_savepoint(tx, op.step()).await?);
        }
        Ok(finish(answers))
    }
}

/// Gives each item of a batch's answer (`done`) to the transition at its place.
fn place(answers: &mut Answers, positions: &[usize], done: Done) {
    for (&i, answer) in positions.iter().zip(done.each()) {
        answers[i] = Some(answer);
    }
}

fn finish(answers: Answers) -> Vec<StoreResult<Done>> {
    answers
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(StoreError::internal("a transition was not run"))))
        .collect()
}

/// Runs the transitions of one kind at `positions` (of the group) as one batch in a
/// savepoint (`batch`, which answers each item for itself), or, should the batch fail
/// as a whole, each alone in a savepoint of its own (`each`, by place in the batch), to
/// get its own outcome.
async fn together<'s>(
    tx: &mut SqliteTx,
    positions: &[usize],
    batch: Step<'s>,
    each: impl Fn(usize) -> Step<'s>,
    results: &mut Answers,
) -> StoreResult<()> {
    if positions.len() == 1 {
        results[positions[0]] = Some(in_savepoint(tx, each(0)).await?);
    } else if positions.len() > 1 {
        match in_savepoint(tx, batch).await? {
            Ok(done) => place(results, positions, done),
            Err(_) => {
                for (k, &i) in positions.iter().enumerate() {
                    results[i] = Some(in_savepoint(tx, each(k)).await?);
                }
            }
        }
    }
    Ok(())
}

/// Runs a group's claims: a refused request is answered at once (it writes nothing),
/// and the others, by handler types, key and lease, each set of them in one
/// statement for all its workers (`HotPath::claim_ready`). `Err` when a statement failed:
/// the caller rolls back what the claims wrote.
async fn claim_together(
    tx: &mut SqliteTx,
    claims: &[(usize, ClaimRequest)],
) -> StoreResult<Vec<StoreResult<Vec<ClaimedTask>>>> {
    let mut answers: Vec<Option<StoreResult<Vec<ClaimedTask>>>> =
        claims.iter().map(|_| None).collect();
    // Positions in `claims` of the requests that go together.
    let mut sets: Vec<Vec<usize>> = Vec::new();
    for (k, (_, request)) in claims.iter().enumerate() {
        if let Err(e) = request.check() {
            answers[k] = Some(Err(e));
            continue;
        }
        let alike = |set: &Vec<usize>| {
            let other = &claims[set[0]].1;
            other.handler_types == request.handler_types
                && other.executor == request.executor
                && other.lease == request.lease
        };
        match sets.iter_mut().find(|set| alike(set)) {
            Some(set) => set.push(k),
            None => sets.push(vec![k]),
        }
    }
    for set in sets {
        let requests: Vec<&ClaimRequest> = set.iter().map(|&k| &claims[k].1).collect();
        let wanted: u32 = requests.iter().map(|r| r.limit).sum();
        let ids: Vec<AttemptId> = (0..wanted).map(|_| AttemptId::new()).collect();
        let each = HotPath::claim_ready(tx, &requests, time::now(), &ids).await?;
        for (&k, claimed) in set.iter().zip(each) {
            answers[k] = Some(Ok(claimed));
        }
    }
    Ok(answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err(StoreError::internal("a claim was not run"))))
        .collect())
}

/// One transition to run, borrowed from its [`Op`] (or from a group's batch), so that
/// it can run again after its group's first try was rolled back.
enum Step<'a> {
    Claim(&'a ClaimRequest),
    Complete(&'a (AttemptRef, Value)),
    CompleteMany(&'a [(AttemptRef, Value)]),
    Heartbeat(AttemptRef, Duration),
    /// Several heartbeats, answered each (the engine's `heartbeat_many`).
    Heartbeats(&'a [(AttemptRef, Duration)]),
    Fail(AttemptRef, &'a Value, bool),
}

impl Op {
    fn step(&self) -> Step<'_> {
        match self {
            Op::Claim(request) => Step::Claim(request),
            Op::Complete(item) => Step::Complete(item),
            Op::CompleteMany(items) => Step::CompleteMany(items),
            Op::Heartbeat(attempt, lease) => Step::Heartbeat(*attempt, *lease),
            Op::Fail(attempt, error, retryable) => Step::Fail(*attempt, error, *retryable),
        }
    }
}

/// Runs `step` inside a savepoint: its own error (`Ok(Err(..))`) undoes only its
/// writes; a failure of the savepoint itself (`Err`) leaves the transaction unusable.
async fn in_savepoint(tx: &mut SqliteTx, step: Step<'_>) -> StoreResult<StoreResult<Done>> {
    tx.execute_plain("SAVEPOINT flowstore_transition").await?;
    let result = apply(tx, step).await;
    if result.is_err() {
        tx.execute_plain("ROLLBACK TO flowstore_transition").await?;
    }
    tx.execute_plain("RELEASE flowstore_transition").await?;
    Ok(result)
}

async fn apply(tx: &mut SqliteTx, step: Step<'_>) -> StoreResult<Done> {
    Ok(match step {
        Step::Claim(request) => Done::Claimed(EngineRepo::claim(tx, request).await?),
        Step::Complete(item) => Done::Completed(complete_one(tx, item).await?),
        Step::CompleteMany(items) => Done::CompletedMany(complete_many(tx, items).await?),
        Step::Heartbeat(attempt, lease) => Done::Heartbeat(tx.heartbeat(attempt, lease).await?),
        Step::Heartbeats(items) => Done::Heartbeats(heartbeat_many(tx, items).await?),
        Step::Fail(attempt, error, retryable) => {
            Done::Failed(tx.fail(attempt, error.clone(), retryable).await?)
        }
    })
}

fn answer_all(jobs: Vec<Job>, error: StoreError) {
    let message = error.to_string();
    let mut error = Some(error);
    for job in jobs {
        let e = error
            .take()
            .unwrap_or_else(|| StoreError::unavailable(message.clone()));
        let _ = job.reply.send(Err(e));
    }
}

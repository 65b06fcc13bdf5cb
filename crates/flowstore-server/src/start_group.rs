//! Single starts that arrive together share one transaction and one commit.
//!
//! `POST /workflows/{id}/runs` hands its start to the [`StartGroup`]. A request that
//! finds a turn free takes every start queued so far (its own among them, up to
//! [`MOST`]) and writes them as one group: each caller's right to execute is
//! checked, the runs, their tasks and first events are written by one statement
//! each (`EngineRepo::start_runs`), the runs' audit entries (each with its caller's
//! name) by one more, and the group commits once. Each caller is answered its own
//! run.
//! Up to [`TURNS`] groups are written at a time, so that one group's statements run
//! while another's commit is being flushed; what arrives meanwhile waits for the
//! next turn. A lone request is a group of one, written as before.
//!
//! Grouping changes no answer. A caller refused the workflow is answered so (403 or
//! 404, by the same check as alone) and left out of the group. When anything else in
//! a group is refused before it commits (a taken `execution_id`, a bad reference, a
//! workflow without an active handler), nothing of it has been written and every
//! start of the group is written again alone, in its own transaction, and answered
//! as if it had never been grouped. A failed commit is never retried (it may have committed): every
//! caller of the group is answered its error, as a lone start's caller would be.
//!
//! The groups are written by spawned tasks, so a caller that goes away does not
//! cancel the starts of the others.

use std::sync::{Arc, Mutex};

use flowstore_core::ids::WorkflowId;
use flowstore_core::model::engine::{StartRun, StartedRun};
use flowstore_core::model::workflow::SharePermission;
use flowstore_core::store::Tx;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::auth::Credential;
use crate::error::{ApiResult, Problem};
use crate::routes::Api;
use crate::state::AppState;
use crate::{access, audit};

/// The most starts one group writes.
pub const MOST: usize = 64;

/// How many groups are written at a time.
pub const TURNS: usize = 2;

/// One start waiting for its group.
struct Pending {
    api: Api,
    workflow: WorkflowId,
    start: StartRun,
    answer: oneshot::Sender<ApiResult<StartedRun>>,
}

/// The starts waiting for a turn, oldest first.
type Queue = Arc<Mutex<Vec<Pending>>>;

/// The starts waiting for a turn, and the turns (see the module's documentation).
pub struct StartGroup {
    queue: Queue,
    turns: Arc<Semaphore>,
}

impl Default for StartGroup {
    fn default() -> Self {
        StartGroup {
            queue: Queue::default(),
            turns: Arc::new(Semaphore::new(TURNS)),
        }
    }
}

impl StartGroup {
    /// Starts a run of `workflow` for `api`'s caller, in a group with the starts
    /// that arrive meanwhile; answers what a start in a transaction of its own
    /// would.
    pub async fn start(
        &self,
        api: Api,
        workflow: WorkflowId,
        start: StartRun,
    ) -> ApiResult<StartedRun> {
        let (answer, mut answered) = oneshot::channel();
        lock(&self.queue).push(Pending {
            api,
            workflow,
            start,
            answer,
        });
        tokio::select! {
            biased;
            // Written by a group another request's turn took.
            done = &mut answered => return settled(done),
            turn = self.turns.clone().acquire_owned() => {
                let turn = turn.map_err(|e| Problem::internal(&e))?;
                tokio::spawn(take_turn(self.queue.clone(), turn));
            }
        }
        settled(answered.await)
    }
}

fn lock(queue: &Queue) -> std::sync::MutexGuard<'_, Vec<Pending>> {
    queue.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a waiting caller is answered: its start's outcome, or an internal error if
/// the task writing its group ended without answering (it panicked).
fn settled(
    done: Result<ApiResult<StartedRun>, oneshot::error::RecvError>,
) -> ApiResult<StartedRun> {
    done.unwrap_or_else(|e| Err(Problem::internal(&e)))
}

/// Writes groups of what is queued until the queue is empty, then gives the turn
/// back. Looking again before giving it back is what ensures every start queued is
/// written: one queued while all turns are taken is taken by a turn's next look, or
/// its own request takes the turn given back.
async fn take_turn(queue: Queue, turn: OwnedSemaphorePermit) {
    loop {
        let group: Vec<Pending> = {
            let mut q = lock(&queue);
            let n = q.len().min(MOST);
            q.drain(..n).collect()
        };
        if group.is_empty() {
            break;
        }
        write_group(group).await;
    }
    drop(turn);
}

/// Writes a group (see the module's documentation) and answers each of its callers.
async fn write_group(group: Vec<Pending>) {
    if group.len() > 1 {
        let Some(state) = group.first().map(|p| p.api.state.clone()) else {
            return;
        };
        let counted = |c: &std::sync::atomic::AtomicU64, n: usize| {
            c.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed)
        };
        match together(&state, &group).await {
            Together::Committed(answers) => {
                state.audit_queued();
                let started = answers.iter().filter(|a| a.is_ok()).count();
                counted(&state.metrics().grouped_starts, started);
                for (p, answer) in group.into_iter().zip(answers) {
                    if let Ok(s) = &answer {
                        crate::routes::runs::wake_for(&p.api, s);
                    }
                    let _ = p.answer.send(answer);
                }
                return;
            }
            Together::CommitFailed(problem) => {
                for p in group {
                    let _ = p.answer.send(Err(problem.clone()));
                }
                return;
            }
            Together::NotWritten => counted(&state.metrics().start_groups_refused, 1),
        };
    }
    for p in group {
        let answer = crate::routes::runs::start_alone(&p.api, p.workflow, p.start).await;
        let _ = p.answer.send(answer);
    }
}

/// How a group written together ended.
enum Together {
    /// Committed: each start's answer, in the group's order (its run, or the
    /// refusal of a caller without the right to execute the workflow).
    Committed(Vec<ApiResult<StartedRun>>),
    /// Refused or failed before the commit: nothing of the group was written.
    NotWritten,
    /// The commit failed: whether it took effect is unknown.
    CommitFailed(Problem),
}

/// Writes the group in one transaction.
async fn together(state: &AppState, group: &[Pending]) -> Together {
    let (tx, answers) = match written(state, group).await {
        Ok(written) => written,
        Err(e) => {
            tracing::debug!(error = ?e, starts = group.len(), "a group of starts was refused; each is written alone");
            return Together::NotWritten;
        }
    };
    match tx.commit().await {
        Ok(()) => Together::Committed(answers),
        Err(e) => Together::CommitFailed(e.into()),
    }
}

/// Whether `a` and `b` ask the same of the same caller: one workflow, and one key
/// or session acting for one user with one role.
fn same_check(a: &Pending, b: &Pending) -> bool {
    let (x, y) = (&a.api.caller.0, &b.api.caller.0);
    let same_credential = match (&x.credential, &y.credential) {
        (Credential::ApiKey(k), Credential::ApiKey(l)) => k.id == l.id,
        (Credential::Session(s), Credential::Session(t)) => s.id == t.id,
        _ => false,
    };
    a.workflow == b.workflow && same_credential && x.user_id == y.user_id && x.role == y.role
}

/// Everything of the group up to its commit. A caller refused the workflow (403 or
/// 404, as alone) is answered so and left out; any other failure fails the group.
async fn written(
    state: &AppState,
    group: &[Pending],
) -> Result<(Box<dyn Tx>, Vec<ApiResult<StartedRun>>), Problem> {
    let mut tx = state.backend().begin().await?;
    let mut refused: Vec<Option<Problem>> = Vec::with_capacity(group.len());
    for (i, p) in group.iter().enumerate() {
        p.api.wrote();
        // The same caller starting the same workflow again in this group gets the
        // answer its earlier start got.
        if let Some(j) = group[..i].iter().position(|q| same_check(p, q)) {
            let earlier = refused[j].clone();
            refused.push(earlier);
            continue;
        }
        let allowed = access::workflow(
            &mut *tx,
            &p.api.caller,
            p.workflow,
            SharePermission::Execute,
        )
        .await;
        refused.push(match allowed {
            Ok(_) => None,
            Err(p) if p.status == 403 || p.status == 404 => Some(p),
            Err(p) => return Err(p),
        });
    }
    let starts: Vec<StartRun> = group
        .iter()
        .zip(&refused)
        .filter(|(_, r)| r.is_none())
        .map(|(p, _)| p.start.clone())
        .collect();
    // None of them, when every caller was refused: then nothing is written.
    let mut started = tx.start_runs(starts).await?.into_iter();
    let mut answers = Vec::with_capacity(group.len());
    let mut entries = Vec::with_capacity(group.len());
    for (p, refusal) in group.iter().zip(refused) {
        answers.push(match refusal {
            Some(problem) => Err(problem),
            None => {
                let s = started
                    .next()
                    .ok_or_else(|| Problem::internal(&"a grouped start was not written"))?;
                let after = audit::json(&s.run);
                entries.push(audit::entry(
                    &p.api.caller,
                    crate::routes::runs::START_ACTION,
                    s.run.id,
                    None,
                    after,
                ));
                Ok(s)
            }
        });
    }
    tx.queue_audits(entries).await?;
    Ok((tx, answers))
}

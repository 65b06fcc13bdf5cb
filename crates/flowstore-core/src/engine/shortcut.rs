//! What the backends' shortcuts for worker reports share: the reports that a single
//! statement may take without the engine (the current attempt of a running task
//! that has no run), and the tasks of runs claimed through a backend, whose reports
//! go the engine's way at once.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;

use serde_json::Value;

use crate::ids::TaskId;
use crate::model::engine::{AttemptRef, ClaimedTask, Transition, MAX_CLAIM};
use crate::{StoreError, StoreResult};

/// One report after a shortcut: its answer, or the report handed back for the engine.
pub type Shortcut = Result<Transition, (AttemptRef, Value)>;

/// The answers to a batch a shortcut took, in order: what it completed, and what it
/// handed back answered by `engine` (the engine's way, in one call) in its place.
pub async fn answer_rest<F, Fut>(
    each: Vec<Shortcut>,
    engine: F,
) -> StoreResult<Vec<StoreResult<Transition>>>
where
    F: FnOnce(Vec<(AttemptRef, Value)>) -> Fut,
    Fut: Future<Output = StoreResult<Vec<StoreResult<Transition>>>>,
{
    let mut results: Vec<Option<StoreResult<Transition>>> = Vec::with_capacity(each.len());
    let (mut places, mut rest) = (Vec::new(), Vec::new());
    for (i, answer) in each.into_iter().enumerate() {
        match answer {
            Ok(transition) => results.push(Some(Ok(transition))),
            Err(item) => {
                results.push(None);
                places.push(i);
                rest.push(item);
            }
        }
    }
    if !rest.is_empty() {
        for (i, result) in places.into_iter().zip(engine(rest).await?) {
            results[i] = Some(result);
        }
    }
    Ok(results
        .into_iter()
        // The engine answers each item it is given; a missing answer is a bug, not
        // the caller's mistake.
        .map(|r| r.unwrap_or_else(|| Err(StoreError::internal("a completion was not answered"))))
        .collect())
}

/// Whether a shortcut may take `items`: a batch the engine accepts, each task named
/// once, every output within limits. Anything else goes the engine's way, whose
/// answers (errors included) are the ones callers get.
pub fn fits_one_statement(items: &[(AttemptRef, Value)]) -> bool {
    let mut seen = HashSet::new();
    !items.is_empty()
        && items.len() <= MAX_CLAIM as usize
        && items.iter().all(|(a, output)| {
            seen.insert(a.task_id) && crate::validate::json_size("output", output).is_ok()
        })
}

/// Tasks of runs claimed through one backend and not reported since. Only a hint: a
/// task claimed elsewhere (another process) is not in it, and its completion tries the
/// shortcut first, which leaves it to the engine's way.
#[derive(Default)]
pub struct ClaimedRunTasks(Mutex<HashSet<TaskId>>);

impl ClaimedRunTasks {
    /// The most tasks remembered; past it the set starts again empty (tasks whose
    /// workers never report would otherwise pile up).
    const CAPACITY: usize = 65_536;

    /// Remembers the claimed tasks that belong to a run.
    pub fn remember(&self, claimed: &[ClaimedTask]) {
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
    pub fn holds(&self, task: TaskId) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&task)
    }

    /// Forgets the tasks of `items`; whether any of them was a remembered run task.
    pub fn forget(&self, items: &[(AttemptRef, Value)]) -> bool {
        let mut tasks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        items
            .iter()
            .fold(false, |any, (a, _)| tasks.remove(&a.task_id) || any)
    }
}

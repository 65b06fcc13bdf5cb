//! The primitives each backend provides to the execution engine, and the rows they
//! exchange with it. The engine's logic (in [`crate::engine`]) is written once on top
//! of [`EngineStore`]; backends implement it in native SQL.

use async_trait::async_trait;
use serde_json::Value;

use crate::ids::{AttemptId, RunId, TaskId, WorkflowId};
use crate::model::engine::{
    AttemptRef, ClaimRequest, ClaimedTask, Event, EventFilter, QueueDepth, RunTask, RunTaskCounts,
};
use crate::model::run::{ExecutionStatistics, FailureStrategy, RunStatus, WorkflowExecution};
use crate::model::task::TaskStatus;
use crate::time::Timestamp;
use crate::StoreResult;

/// The engine's view of one task, read under a row lock by [`EngineStore::lock_task`]
/// and written back whole by [`EngineStore::save_task`].
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct TaskState {
    /// The task.
    pub id: TaskId,
    /// Its run.
    pub run_id: Option<RunId>,
    /// Where it stands.
    pub status: TaskStatus,
    /// The current attempt number (the fencing token).
    pub attempt: i32,
    /// Retries made.
    pub retry_count: i32,
    /// Retries allowed.
    pub max_retries: i32,
    /// How long one attempt may take.
    pub timeout_seconds: Option<i32>,
    /// The output of the completed attempt.
    pub result: Option<Value>,
    /// The error of the last failed attempt.
    pub error_message: Option<String>,
    /// Who holds the lease.
    pub lease_owner: Option<String>,
    /// When the lease ends.
    pub lease_expires_at: Option<Timestamp>,
    /// When a retry may be claimed.
    pub run_after: Option<Timestamp>,
    /// When it first started.
    pub started_at: Option<Timestamp>,
    /// When it reached a terminal status.
    pub completed_at: Option<Timestamp>,
    /// How long its last attempt took (ms).
    pub actual_duration: Option<i32>,
    /// When the current attempt started.
    pub attempt_started_at: Option<Timestamp>,
}

/// The engine's view of one run.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct RunState {
    /// The run.
    pub id: RunId,
    /// Its caller-facing identifier (metrics refer to it).
    pub execution_id: String,
    /// Its workflow, as text.
    pub workflow_id: String,
    /// Where it stands.
    pub status: RunStatus,
    /// `parallel` or `sequential`.
    pub strategy: Option<crate::model::run::RunStrategy>,
    /// What a failed step does to it.
    pub failure_strategy: FailureStrategy,
    /// When it started.
    pub start_time: Option<Timestamp>,
    /// When it ended.
    pub end_time: Option<Timestamp>,
    /// How long it took (ms).
    pub actual_duration: Option<i32>,
    /// Why it failed.
    pub error_data: Option<Value>,
    /// When it must be over.
    pub deadline_at: Option<Timestamp>,
    /// When a cancel was asked for.
    pub cancel_requested_at: Option<Timestamp>,
}

/// A task to create for a step of a starting run.
#[derive(Clone, Debug, PartialEq)]
pub struct StepTask {
    /// The new task's ID.
    pub id: TaskId,
    /// Its run.
    pub run_id: RunId,
    /// Its workflow.
    pub workflow_id: WorkflowId,
    /// The step's key.
    pub step_key: String,
    /// Its title (the step's name, or its key).
    pub title: String,
    /// Its handler.
    pub handler_type: String,
    /// Its parameters.
    pub parameters: Value,
    /// Its place in the run's sequential order (1-based).
    pub execution_order: i32,
    /// Its priority.
    pub priority: i32,
    /// Its attempt timeout.
    pub timeout_seconds: Option<i32>,
    /// Its retries.
    pub max_retries: i32,
    /// `ready` or `pending`.
    pub status: TaskStatus,
}

/// An event to append to the outbox.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// What happened.
    pub event_type: &'static str,
    /// The run concerned.
    pub run_id: Option<RunId>,
    /// The task concerned.
    pub task_id: Option<TaskId>,
    /// The workflow concerned.
    pub workflow_id: Option<String>,
    /// Details.
    pub payload: Value,
}

/// An attempt that [`HotPath::complete_running`] completed.
#[derive(Clone, Debug, PartialEq)]
pub struct CompletedAttempt {
    /// The task.
    pub task_id: TaskId,
    /// The attempt completed.
    pub attempt: i32,
    /// The task's run, read after the run row was locked (locks are taken in run ID
    /// order, after every task of the batch).
    pub run: Option<RunState>,
}

/// A lease that [`HotPath::extend_leases`] extended.
#[derive(Clone, Copy, Debug, PartialEq, sqlx::FromRow)]
pub struct ExtendedLease {
    /// The task.
    pub task_id: TaskId,
    /// Its run's status, when it has a run (read, not locked: a heartbeat only tells
    /// the worker to stop, and the next one sees a later change).
    pub run_status: Option<RunStatus>,
    /// Its run's cancellation was asked for.
    pub run_cancel_requested: bool,
}

impl ExtendedLease {
    /// Whether the worker should stop: the run was cancelled or is over.
    pub fn cancel_requested(&self) -> bool {
        self.run_cancel_requested || self.run_status.is_some_and(|s| s.is_terminal())
    }
}

/// What [`HotPath::promote_dependents`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Promotion {
    /// The tasks made ready, with their run.
    pub ready: Vec<(RunId, TaskId)>,
    /// The runs asked about that still have tasks pending, ready or running.
    pub open_runs: Vec<RunId>,
}

/// One attempt as recorded, read to tell a repeated report from a stale one.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct AttemptRecord {
    /// How the attempt ended (or `running`/`queued`).
    pub status: crate::model::run::AttemptStatus,
    /// What a completion reported.
    pub output: Option<Value>,
    /// What a failure reported.
    pub error: Option<Value>,
    /// The answer given to the report that ended it, when a report did.
    pub outcome: Option<Value>,
}

/// The primitives of the engine written once for both backends (in
/// `crates/storage/engine.rs`): small statements, each on the caller's transaction.
/// The engine's logic (in [`crate::engine`]) is written once on top of them and of
/// [`HotPath`], so both backends move tasks and runs by the same rules.
#[async_trait]
pub trait EngineStore: Send {
    /// Writes runs the engine starts and their `execution_started` metrics, many
    /// rows a statement. Their workflow and version were read in this transaction and
    /// their subject task checked, so no reference is looked up again.
    async fn insert_runs(&mut self, runs: &[WorkflowExecution]) -> StoreResult<()>;
    /// Inserts starting runs' tasks, created at `created_at`, and their dependency
    /// edges `(task, depends_on)`, many rows a statement.
    async fn insert_step_tasks(
        &mut self,
        created_at: Timestamp,
        tasks: &[StepTask],
        edges: &[(TaskId, TaskId)],
    ) -> StoreResult<()>;
    /// Whether the task exists.
    async fn task_exists(&mut self, id: TaskId) -> StoreResult<bool>;
    /// The handler types among `types` that are registered and active.
    async fn active_handler_types(&mut self, types: &[String]) -> StoreResult<Vec<String>>;
    /// Reads a task with its current attempt's start, locking it until the end of
    /// the transaction.
    async fn lock_task(&mut self, id: TaskId) -> StoreResult<Option<TaskState>>;
    /// Writes back the engine columns of a task.
    async fn save_task(&mut self, task: &TaskState, now: Timestamp) -> StoreResult<()>;
    /// Closes the task's attempt number `attempt` with a status and its output or error.
    async fn finish_task_attempt(
        &mut self,
        task: TaskId,
        attempt: i32,
        status: crate::model::run::AttemptStatus,
        output: Option<&Value>,
        error: Option<&Value>,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// What was recorded of the task's attempt number `attempt`: its status, the output
    /// or error it ended with and the answer its report was given, if it has ended.
    async fn attempt_record(
        &mut self,
        task: TaskId,
        attempt: i32,
    ) -> StoreResult<Option<AttemptRecord>>;
    /// Keeps the answer given to the report that ended the attempt (a
    /// [`crate::model::engine::Transition`] as JSON), so that a repeat gets it again.
    async fn record_outcome(
        &mut self,
        task: TaskId,
        attempt: i32,
        outcome: &Value,
    ) -> StoreResult<()>;
    /// Extends the lease of a running attempt; `false` when the attempt is not the
    /// task's current running one.
    async fn extend_lease(
        &mut self,
        attempt: AttemptRef,
        until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Makes ready the pending tasks of `run` whose dependencies are all complete
    /// (`parallel`), or the first such task by order when nothing of the run is ready
    /// or running (`sequential`). Returns the tasks made ready.
    async fn promote_ready(
        &mut self,
        run: RunId,
        sequential: bool,
        now: Timestamp,
    ) -> StoreResult<Vec<TaskId>>;
    /// Cancels the run's pending and ready tasks (all of them, or those in `only`).
    async fn cancel_open_tasks(
        &mut self,
        run: RunId,
        only: Option<&[TaskId]>,
        now: Timestamp,
    ) -> StoreResult<Vec<TaskId>>;
    /// Puts the run's tasks that ended without completing (failed, timed out or
    /// cancelled) back to pending, with their retries counted afresh; their attempt
    /// numbers go on, so a report from an earlier attempt stays stale. Returns them.
    async fn reopen_tasks(&mut self, run: RunId, now: Timestamp) -> StoreResult<Vec<TaskId>>;
    /// Every task that depends on `task`, directly or not.
    async fn dependents_of(&mut self, task: TaskId) -> StoreResult<Vec<TaskId>>;
    /// Counts of the run's tasks.
    async fn run_task_counts(&mut self, run: RunId) -> StoreResult<RunTaskCounts>;
    /// Reads a run, locking it until the end of the transaction.
    async fn lock_run(&mut self, id: RunId) -> StoreResult<Option<RunState>>;
    /// Writes back the engine columns of a run.
    async fn save_run(&mut self, run: &RunState, now: Timestamp) -> StoreResult<()>;
    /// Running tasks whose lease ended before `now` (skipping rows other
    /// transactions hold), at most `limit`.
    async fn expired_leases(&mut self, now: Timestamp, limit: u32) -> StoreResult<Vec<TaskId>>;
    /// Running tasks whose current attempt started more than `timeout_seconds` ago.
    async fn overdue_tasks(&mut self, now: Timestamp, limit: u32) -> StoreResult<Vec<TaskId>>;
    /// Live runs past their deadline.
    async fn overdue_runs(&mut self, now: Timestamp, limit: u32) -> StoreResult<Vec<RunId>>;
    /// The tasks of a run, in their order.
    async fn select_run_tasks(&mut self, run: RunId) -> StoreResult<Vec<RunTask>>;
    /// Statistics from the counters (see [`EngineRepo::workflow_statistics`]).
    async fn select_workflow_statistics(
        &mut self,
        workflow_id: &str,
        status: Option<RunStatus>,
    ) -> StoreResult<ExecutionStatistics>;
    /// Ready and running tasks by handler type.
    async fn select_queue_depth(&mut self) -> StoreResult<Vec<QueueDepth>>;
    /// Sequenced events after `after_seq`.
    async fn select_events_after(
        &mut self,
        after_seq: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> StoreResult<Vec<Event>>;
    /// The newest event's `seq` (see [`EngineRepo::newest_event_seq`]).
    async fn select_newest_event_seq(&mut self) -> StoreResult<i64>;
}

/// The engine's hot statements, written for each database because the two dialects
/// really differ there: PostgreSQL claims with `FOR UPDATE SKIP LOCKED` and moves
/// whole batches through `UNNEST`, numbering events after commit; SQLite's single
/// writer updates in place and numbers events as they are inserted.
#[async_trait]
pub trait HotPath: Send {
    /// Claims ready tasks as [`EngineRepo::claim`] describes, recording an attempt and,
    /// unless the store's [`EngineSettings::claim_events`] is off, a `task.claimed`
    /// event for each, using `attempt_ids` for the new attempt rows,
    /// for one or several requests at once (see [`SharedClaim`]: the same handler
    /// types, key and lease; each its own worker and limit), in one statement where
    /// the backend allows. One list per request, in order, each in task order.
    ///
    /// [`SharedClaim`]: crate::model::engine::SharedClaim
    /// [`EngineSettings::claim_events`]: crate::model::engine::EngineSettings::claim_events
    async fn claim_ready(
        &mut self,
        requests: &[&ClaimRequest],
        now: Timestamp,
        attempt_ids: &[AttemptId],
    ) -> StoreResult<Vec<Vec<ClaimedTask>>>;
    /// Completes each attempt of `items` that is its task's current running one, in
    /// as few statements as the backend allows: the task row (guarded by its attempt
    /// and status, so a stale or repeated report changes nothing), the attempt row and
    /// a `task.completed` event. Then it locks the runs of the completed tasks, in run
    /// ID order, and returns them. Attempts that were not current are left untouched
    /// and are not returned. `items` names distinct tasks.
    async fn complete_running(
        &mut self,
        items: &[(AttemptRef, &Value)],
        now: Timestamp,
    ) -> StoreResult<Vec<CompletedAttempt>>;
    /// Extends the lease of each attempt of `items` (the attempt, the lease's new end)
    /// that is its task's current running one, in as few statements as the backend
    /// allows: the task row and the attempt row (its lease and heartbeat time), both
    /// guarded by the attempt and status, so a stale report changes nothing. Returns
    /// the leases extended, in no particular order; attempts that were not current are
    /// left untouched and are not returned. `items` names distinct tasks.
    async fn extend_leases(
        &mut self,
        items: &[(AttemptRef, Timestamp)],
        now: Timestamp,
    ) -> StoreResult<Vec<ExtendedLease>>;
    /// For each `(run, task)` just completed in a `parallel` run that is still live:
    /// makes ready the pending tasks that depend on `task` and whose dependencies are
    /// now all complete, appends a `task.ready` event for each, and tells which of
    /// these runs still have open tasks. Only the completed tasks' dependents are
    /// looked at, not the whole run.
    async fn promote_dependents(
        &mut self,
        done: &[(RunId, TaskId)],
        now: Timestamp,
    ) -> StoreResult<Promotion>;
    /// Appends events to the outbox.
    async fn insert_events(&mut self, events: &[NewEvent], now: Timestamp) -> StoreResult<()>;
    /// Numbers committed events (PostgreSQL); a no-op where events are numbered on
    /// insert (SQLite).
    async fn assign_event_seqs(&mut self) -> StoreResult<u64>;
}

//! Starting a run: validation of the definition and its handlers, then the run, one
//! task per step and the first events, in the caller's transaction.

use serde_json::json;

use super::{ev, EngineTx};
use crate::ids::TaskId;
use crate::model::dag::WorkflowDefinition;
use crate::model::engine::{RunTask, StartRun, StartedRun, StepTask};
use crate::model::run::{NewExecution, RunStatus, RunStrategy, WorkflowExecution};
use crate::model::task::TaskStatus;
use crate::model::workflow::Workflow;
use crate::time;
use crate::{StoreError, StoreResult};

/// What every run of one workflow version shares, read and checked once: the
/// workflow, the version and its definition's steps in order, whose handlers are
/// active.
struct Plan {
    workflow: Workflow,
    version_no: i32,
    version_id: crate::ids::WorkflowVersionId,
    /// The definition's steps in the order they run, sorted once for every run.
    order: Vec<crate::model::dag::StepDefinition>,
}

/// Reads and checks the version `version` (the current one when `None`) of
/// `workflow_id` for starting runs of it.
async fn plan<T: EngineTx + ?Sized>(
    tx: &mut T,
    workflow_id: crate::ids::WorkflowId,
    version: Option<i32>,
) -> StoreResult<Plan> {
    let workflow = tx.get_workflow(workflow_id).await?;
    if workflow.status == crate::model::workflow::WorkflowStatus::Archived {
        return Err(StoreError::conflict(
            "status",
            "an archived workflow cannot run",
        ));
    }
    let version_no = version.unwrap_or(workflow.version);
    let version = tx.get_workflow_version(workflow.id, version_no).await?;
    let definition = WorkflowDefinition::parse(&version.definition, true)?;
    let order = definition
        .topological_order()?
        .into_iter()
        .cloned()
        .collect();

    let mut handlers: Vec<String> = definition.steps.iter().map(|s| s.handler.clone()).collect();
    handlers.sort();
    handlers.dedup();
    let active = tx.active_handler_types(&handlers).await?;
    if let Some((i, step)) = definition
        .steps
        .iter()
        .enumerate()
        .find(|(_, s)| !active.contains(&s.handler))
    {
        return Err(StoreError::invalid(
            format!("definition.steps[{i}].handler"),
            format!(
                "handler type {:?} is not registered or not active",
                step.handler
            ),
        ));
    }
    Ok(Plan {
        workflow,
        version_no,
        version_id: version.id,
        order,
    })
}

/// A run ready to be written: its row, its tasks and edges, its first events.
struct Prepared {
    run: WorkflowExecution,
    tasks: Vec<StepTask>,
    edges: Vec<(TaskId, TaskId)>,
    events: Vec<crate::model::engine::NewEvent>,
}

/// Makes one run of `plan` (the run row, one task per step, the deadline, its first
/// events) without writing it. The caller has checked `start`.
fn prepare(plan: &Plan, start: StartRun, now: time::Timestamp) -> StoreResult<Prepared> {
    let workflow = &plan.workflow;
    let order = &plan.order;
    let sequential = workflow.execution_strategy == RunStrategy::Sequential;
    let run_priority = start.priority.unwrap_or(0);
    let execution_id = start
        .execution_id
        .unwrap_or_else(|| format!("run-{}", uuid::Uuid::now_v7().simple()));
    let run = NewExecution {
        execution_id,
        workflow_id: workflow.id.to_string(),
        workflow_name: workflow.name.clone(),
        workflow_version: Some(plan.version_no.to_string()),
        task_id: start.subject_task_id,
        user_id: start.user_id,
        status: Some(RunStatus::Running),
        strategy: Some(workflow.execution_strategy),
        priority: Some(start.priority.unwrap_or(1)),
        start_time: Some(now),
        metadata: start.metadata,
        workflow_ref: Some(workflow.id),
        workflow_version_id: Some(plan.version_id),
        failure_strategy: Some(workflow.failure_strategy),
        input: start.input,
        deadline_at: workflow
            .timeout_seconds
            .map(|secs| now + chrono::Duration::seconds(secs.into())),
        ..Default::default()
    }
    .into_row(now)?;
    let run_id = run.id;

    let ids: std::collections::HashMap<&str, TaskId> = plan
        .order
        .iter()
        .map(|s| (s.key.as_str(), TaskId::new()))
        .collect();
    let mut tasks = Vec::with_capacity(order.len());
    let mut edges = Vec::new();
    for (position, step) in order.iter().enumerate() {
        let id = ids[step.key.as_str()];
        for dep in &step.depends_on {
            edges.push((id, ids[dep.as_str()]));
        }
        let root = step.depends_on.is_empty();
        let ready = if sequential { position == 0 } else { root };
        tasks.push(StepTask {
            id,
            run_id,
            workflow_id: workflow.id,
            step_key: step.key.clone(),
            title: step.name.clone().unwrap_or_else(|| step.key.clone()),
            handler_type: step.handler.clone(),
            parameters: step.parameters.clone().unwrap_or_else(|| json!({})),
            execution_order: position as i32 + 1,
            priority: step.priority.unwrap_or(0).saturating_add(run_priority),
            timeout_seconds: step.timeout_seconds.map(|t| t.min(i32::MAX as i64) as i32),
            max_retries: step.max_retries.unwrap_or(0),
            status: if ready {
                TaskStatus::Ready
            } else {
                TaskStatus::Pending
            },
        });
    }
    let wf = workflow.id.to_string();
    let mut events = vec![ev(
        "run.started",
        Some(run_id),
        None,
        Some(&wf),
        json!({"execution_id": run.execution_id, "tasks": tasks.len()}),
    )];
    events.extend(
        tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Ready)
            .map(|t| {
                ev(
                    "task.ready",
                    Some(run_id),
                    Some(t.id),
                    Some(&wf),
                    json!({"step": t.step_key}),
                )
            }),
    );
    Ok(Prepared {
        run,
        tasks,
        edges,
        events,
    })
}

/// What a start refers to that the plan did not read: the subject task, and an
/// execution ID the client chose, which must be free (and not chosen twice in one
/// batch: `given` holds the IDs of the runs before this one).
async fn check_references<T: EngineTx + ?Sized>(
    tx: &mut T,
    run: &WorkflowExecution,
    given: &mut std::collections::HashSet<String>,
    chosen: bool,
) -> StoreResult<()> {
    if let Some(task) = run.task_id {
        if !tx.task_exists(task).await? {
            return Err(StoreError::invalid(
                "task_id",
                format!("refers to no existing row ({task})"),
            ));
        }
    }
    if chosen {
        let taken = !given.insert(run.execution_id.clone())
            || match tx.find_by_execution_id(&run.execution_id).await {
                Ok(_) => true,
                Err(StoreError::NotFound { .. }) => false,
                Err(e) => return Err(e),
            };
        if taken {
            return Err(StoreError::conflict(
                "execution_id",
                format!("a run with execution ID {:?} exists", run.execution_id),
            ));
        }
    }
    Ok(())
}

/// Writes prepared runs: all runs and their metrics, all tasks and edges, all first
/// events, each kind in as few statements as the database takes. Returns each run
/// with its tasks as written (in execution order, as a read would list them):
/// nothing of them is changed by the database on insert.
async fn write<T: EngineTx + ?Sized>(
    tx: &mut T,
    prepared: Vec<Prepared>,
    now: time::Timestamp,
) -> StoreResult<Vec<StartedRun>> {
    let mut started = Vec::with_capacity(prepared.len());
    let mut runs = Vec::with_capacity(prepared.len());
    let (mut tasks, mut edges, mut events) = (Vec::new(), Vec::new(), Vec::new());
    for p in prepared {
        started.push(
            p.tasks
                .iter()
                .map(|t| RunTask {
                    id: t.id,
                    step_key: Some(t.step_key.clone()),
                    status: t.status,
                    handler_type: Some(t.handler_type.clone()),
                    attempt: 0,
                    retry_count: 0,
                })
                .collect::<Vec<_>>(),
        );
        runs.push(p.run);
        tasks.extend(p.tasks);
        edges.extend(p.edges);
        events.extend(p.events);
    }
    tx.insert_runs(&runs).await?;
    tx.insert_step_tasks(now, &tasks, &edges).await?;
    tx.insert_events(&events, now).await?;
    Ok(runs
        .into_iter()
        .zip(started)
        .map(|(run, tasks)| StartedRun { run, tasks })
        .collect())
}

/// Starts a run (see [`crate::model::engine::EngineRepo::start_run`]).
pub async fn start_run<T: EngineTx + ?Sized>(
    tx: &mut T,
    start: StartRun,
) -> StoreResult<StartedRun> {
    start.check()?;
    let now = time::now();
    let plan = plan(tx, start.workflow_id, start.version).await?;
    let chosen = start.execution_id.is_some();
    let prepared = prepare(&plan, start, now)?;
    check_references(tx, &prepared.run, &mut Default::default(), chosen).await?;
    write(tx, vec![prepared], now)
        .await?
        .pop()
        .ok_or_else(|| StoreError::internal("a started run was not written"))
}

/// Starts runs (see [`crate::model::engine::EngineRepo::start_runs`]): each version
/// named is read and checked once, each run is made and checked, then all are written
/// together, each kind of row in as few statements as the database takes.
pub async fn start_runs<T: EngineTx + ?Sized>(
    tx: &mut T,
    starts: Vec<StartRun>,
) -> StoreResult<Vec<StartedRun>> {
    let now = time::now();
    let mut plans: Vec<((crate::ids::WorkflowId, Option<i32>), Plan)> = Vec::new();
    let mut prepared = Vec::with_capacity(starts.len());
    let mut given = std::collections::HashSet::new();
    for (i, start) in starts.into_iter().enumerate() {
        let at = format!("runs[{i}]");
        start.check().map_err(|e| e.within(&at))?;
        let key = (start.workflow_id, start.version);
        let known = plans.iter().position(|(k, _)| *k == key);
        let p = match known {
            Some(p) => p,
            None => {
                let made = plan(tx, key.0, key.1).await.map_err(|e| e.within(&at))?;
                plans.push((key, made));
                plans.len() - 1
            }
        };
        let chosen = start.execution_id.is_some();
        let run = prepare(&plans[p].1, start, now).map_err(|e| e.within(&at))?;
        check_references(tx, &run.run, &mut given, chosen)
            .await
            .map_err(|e| e.within(&at))?;
        prepared.push(run);
    }
    write(tx, prepared, now).await
}

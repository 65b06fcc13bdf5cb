//! Starting a run: validation of the definition and its handlers, then the run, one
//! task per step and the first events, in the caller's transaction.

use serde_json::json;

use super::{ev, EngineTx};
use crate::ids::TaskId;
use crate::model::dag::WorkflowDefinition;
use crate::model::engine::{StartRun, StartedRun, StepTask};
use crate::model::run::{NewExecution, RunStatus, RunStrategy, WorkflowExecution};
use crate::model::task::TaskStatus;
use crate::model::workflow::Workflow;
use crate::time;
use crate::{StoreError, StoreResult};

/// What every run of one workflow version shares, read and checked once: the
/// workflow, the version and its parsed definition, whose handlers are active.
struct Plan {
    workflow: Workflow,
    version_no: i32,
    version_id: crate::ids::WorkflowVersionId,
    definition: WorkflowDefinition,
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
    definition.topological_order()?;

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
        definition,
    })
}

/// Writes one run of `plan` (the run, one task per step, the deadline) and adds its
/// first events to `events`, which the caller writes: the run as created. The caller
/// has checked `start`.
async fn create<T: EngineTx + ?Sized>(
    tx: &mut T,
    plan: &Plan,
    start: StartRun,
    now: time::Timestamp,
    events: &mut Vec<crate::model::engine::NewEvent>,
) -> StoreResult<WorkflowExecution> {
    let workflow = &plan.workflow;
    let order = plan.definition.topological_order()?;
    let sequential = workflow.execution_strategy == RunStrategy::Sequential;
    let run_priority = start.priority.unwrap_or(0);
    let execution_id = start
        .execution_id
        .unwrap_or_else(|| format!("run-{}", uuid::Uuid::now_v7().simple()));
    let mut created = tx
        .create_execution(NewExecution {
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
            ..Default::default()
        })
        .await?;
    let run_id = created.id;

    let ids: std::collections::HashMap<&str, TaskId> = plan
        .definition
        .steps
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
    tx.insert_step_tasks(&created, workflow.id, &tasks, &edges)
        .await?;

    if let Some(secs) = workflow.timeout_seconds {
        let mut run_state = tx
            .lock_run(run_id)
            .await?
            .ok_or_else(|| StoreError::not_found("run", run_id))?;
        run_state.deadline_at = Some(now + chrono::Duration::seconds(secs.into()));
        tx.save_run(&run_state, now).await?;
        created.deadline_at = run_state.deadline_at;
    }
    let wf = workflow.id.to_string();
    events.push(ev(
        "run.started",
        Some(run_id),
        None,
        Some(&wf),
        json!({"execution_id": created.execution_id, "tasks": tasks.len()}),
    ));
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
    Ok(created)
}

/// Starts a run (see [`crate::model::engine::EngineRepo::start_run`]).
pub async fn start_run<T: EngineTx + ?Sized>(
    tx: &mut T,
    start: StartRun,
) -> StoreResult<StartedRun> {
    start.check()?;
    let now = time::now();
    let plan = plan(tx, start.workflow_id, start.version).await?;
    let mut events = Vec::new();
    let created = create(tx, &plan, start, now, &mut events).await?;
    tx.insert_events(&events, now).await?;
    let run = tx.get_execution(created.id).await?;
    let tasks = tx.select_run_tasks(created.id).await?;
    Ok(StartedRun { run, tasks })
}

/// Starts runs (see [`crate::model::engine::EngineRepo::start_runs`]): each version
/// named is read and checked once, the runs and their tasks are written one by one
/// and their first events by one statement for all.
pub async fn start_runs<T: EngineTx + ?Sized>(
    tx: &mut T,
    starts: Vec<StartRun>,
) -> StoreResult<Vec<WorkflowExecution>> {
    let now = time::now();
    let mut plans: Vec<((crate::ids::WorkflowId, Option<i32>), Plan)> = Vec::new();
    let mut events = Vec::new();
    let mut runs = Vec::with_capacity(starts.len());
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
        let run = create(tx, &plans[p].1, start, now, &mut events)
            .await
            .map_err(|e| e.within(&at))?;
        runs.push(run);
    }
    tx.insert_events(&events, now).await?;
    Ok(runs)
}

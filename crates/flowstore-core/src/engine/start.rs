//! Starting a run: validation of the definition and its handlers, then the run, one
//! task per step and the first events, in the caller's transaction.

use serde_json::json;

use super::{ev, EngineTx};
use crate::ids::TaskId;
use crate::model::dag::WorkflowDefinition;
use crate::model::engine::{StartRun, StartedRun, StepTask};
use crate::model::run::{NewExecution, RunStatus, RunStrategy};
use crate::model::task::TaskStatus;
use crate::time;
use crate::{StoreError, StoreResult};

/// Starts a run (see [`crate::model::engine::EngineRepo::start_run`]).
pub async fn start_run<T: EngineTx + ?Sized>(
    tx: &mut T,
    start: StartRun,
) -> StoreResult<StartedRun> {
    start.check()?;
    let now = time::now();
    let workflow = tx.get_workflow(start.workflow_id).await?;
    if workflow.status == crate::model::workflow::WorkflowStatus::Archived {
        return Err(StoreError::conflict(
            "status",
            "an archived workflow cannot run",
        ));
    }
    let version_no = start.version.unwrap_or(workflow.version);
    let version = tx.get_workflow_version(workflow.id, version_no).await?;
    let definition = WorkflowDefinition::parse(&version.definition, true)?;
    let order = definition.topological_order()?;

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

    let sequential = workflow.execution_strategy == RunStrategy::Sequential;
    let run_priority = start.priority.unwrap_or(0);
    let execution_id = start
        .execution_id
        .clone()
        .unwrap_or_else(|| format!("run-{}", uuid::Uuid::now_v7().simple()));
    let strategy: RunStrategy = workflow.execution_strategy;
    let failure_strategy = workflow.failure_strategy;
    let created = tx
        .create_execution(NewExecution {
            execution_id,
            workflow_id: workflow.id.to_string(),
            workflow_name: workflow.name.clone(),
            workflow_version: Some(version_no.to_string()),
            task_id: start.subject_task_id,
            user_id: start.user_id.clone(),
            status: Some(RunStatus::Running),
            strategy: Some(strategy),
            priority: Some(start.priority.unwrap_or(1)),
            start_time: Some(now),
            metadata: start.metadata.clone(),
            workflow_ref: Some(workflow.id),
            workflow_version_id: Some(version.id),
            failure_strategy: Some(failure_strategy),
            input: start.input.clone(),
            ..Default::default()
        })
        .await?;
    let run_id = created.id;

    let ids: std::collections::HashMap<&str, TaskId> = definition
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

    let mut run_state = tx
        .lock_run(run_id)
        .await?
        .ok_or_else(|| StoreError::not_found("run", run_id))?;
    if let Some(secs) = workflow.timeout_seconds {
        run_state.deadline_at = Some(now + chrono::Duration::seconds(secs.into()));
        tx.save_run(&run_state, now).await?;
    }
    let wf = workflow.id.to_string();
    let mut events = vec![ev(
        "run.started",
        Some(run_id),
        None,
        Some(&wf),
        json!({"execution_id": created.execution_id, "tasks": tasks.len()}),
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
    tx.insert_events(&events, now).await?;
    let run = tx.get_execution(run_id).await?;
    let tasks = tx.select_run_tasks(run_id).await?;
    Ok(StartedRun { run, tasks })
}

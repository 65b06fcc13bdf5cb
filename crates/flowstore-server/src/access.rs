//! Per-object access checks. The role (checked by [`crate::auth`]) says what kind of
//! request a key may make; these say which objects it may make it on.
//!
//! Workflows: an admin may do anything; the owner may do anything; others get what
//! [`flowstore_core::model::workflow::can_access`] grants (public and team
//! visibility for reading, shares for read, execute or write). A workflow without an
//! owner belongs to no one: every key may use it as its role allows. A workflow the
//! caller may not even read answers 404, so that its existence is not revealed; one
//! it may read but not change (or run) answers 403.
//!
//! Runs, their tasks, metrics and events inherit their workflow's access (a run of a
//! free-text seed 000 workflow ID that names no stored workflow is unowned). Tasks
//! of a workflow or run inherit it too; standalone tasks and pull requests may be
//! read by every key and changed by their creator, their project's owner or an
//! admin.

use flowstore_core::ids::{RunId, UserId, WorkflowId};
use flowstore_core::model::run::WorkflowExecution;
use flowstore_core::model::task::Task;
use flowstore_core::model::workflow::{SharePermission, Visibility, Workflow};
use flowstore_core::{StoreError, Tx};

use crate::auth::Caller;
use crate::error::{ApiResult, Problem};

/// Whether `caller` may do `needed` with `wf`.
pub async fn allowed(
    tx: &mut dyn Tx,
    caller: &Caller,
    wf: &Workflow,
    needed: SharePermission,
) -> ApiResult<bool> {
    if caller.is_admin() {
        return Ok(true);
    }
    Ok(match (wf.owner_id, caller.0.user_id) {
        (None, _) => true,
        (Some(owner), Some(me)) if owner == me => true,
        (Some(_), Some(me)) => tx.workflow_access(wf.id, me, needed).await?,
        (Some(_), None) => needed == SharePermission::Read && wf.visibility == Visibility::Public,
    })
}

/// Refuses unless `caller` may do `needed` with `wf`: 404 when it may not even read
/// it, 403 when it may read but not do `needed`.
pub async fn check_workflow(
    tx: &mut dyn Tx,
    caller: &Caller,
    wf: &Workflow,
    needed: SharePermission,
) -> ApiResult<()> {
    if allowed(tx, caller, wf, needed).await? {
        return Ok(());
    }
    if needed != SharePermission::Read && allowed(tx, caller, wf, SharePermission::Read).await? {
        return Err(Problem::forbidden(format!(
            "this workflow is not yours and is not shared with you for {needed}"
        )));
    }
    Err(hidden("workflow", wf.id))
}

/// The workflow with `id`, if `caller` may do `needed` with it.
pub async fn workflow(
    tx: &mut dyn Tx,
    caller: &Caller,
    id: WorkflowId,
    needed: SharePermission,
) -> ApiResult<Workflow> {
    let wf = tx.get_workflow(id).await?;
    check_workflow(tx, caller, &wf, needed).await?;
    Ok(wf)
}

/// The stored workflow a run's free-text `workflow_id` names, if any.
pub async fn workflow_named(tx: &mut dyn Tx, workflow_id: &str) -> ApiResult<Option<Workflow>> {
    let Ok(id) = workflow_id.trim().parse::<WorkflowId>() else {
        return Ok(None);
    };
    match tx.get_workflow(id).await {
        Ok(w) => Ok(Some(w)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Refuses unless `caller` may do `needed` with the workflow named by a run's
/// (or a list's) `workflow_id`; a name of no stored workflow is unowned.
pub async fn check_workflow_named(
    tx: &mut dyn Tx,
    caller: &Caller,
    workflow_id: &str,
    needed: SharePermission,
) -> ApiResult<()> {
    match workflow_named(tx, workflow_id).await? {
        Some(wf) => check_workflow(tx, caller, &wf, needed)
            .await
            .map_err(|p| rename(p, "run", workflow_id)),
        None => Ok(()),
    }
}

/// Refuses unless `caller` may do `needed` with `run`'s workflow.
pub async fn check_run(
    tx: &mut dyn Tx,
    caller: &Caller,
    run: &WorkflowExecution,
    needed: SharePermission,
) -> ApiResult<()> {
    match workflow_named(tx, &run.workflow_id).await? {
        Some(wf) => check_workflow(tx, caller, &wf, needed)
            .await
            .map_err(|p| rename(p, "run", run.id)),
        None => Ok(()),
    }
}

/// The run with `id`, if `caller` may do `needed` with it.
pub async fn run(
    tx: &mut dyn Tx,
    caller: &Caller,
    id: RunId,
    needed: SharePermission,
) -> ApiResult<WorkflowExecution> {
    let r = tx.get_execution(id).await?;
    check_run(tx, caller, &r, needed).await?;
    Ok(r)
}

/// Refuses unless `caller` may do `needed` with `task`: a task of a workflow or run
/// inherits its access; a standalone one may be read by all and changed by its
/// creator, its project's owner or an admin.
pub async fn check_task(
    tx: &mut dyn Tx,
    caller: &Caller,
    task: &Task,
    needed: SharePermission,
) -> ApiResult<()> {
    if caller.is_admin() {
        return Ok(());
    }
    if let Some(w) = task.workflow_id {
        match tx.get_workflow(w).await {
            Ok(wf) => {
                return check_workflow(tx, caller, &wf, needed)
                    .await
                    .map_err(|p| rename(p, "task", task.id))
            }
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(r) = task.run_id {
        match tx.get_execution(r).await {
            Ok(run) => {
                return check_run(tx, caller, &run, needed)
                    .await
                    .map_err(|p| rename(p, "task", task.id))
            }
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if needed == SharePermission::Read {
        return Ok(());
    }
    let project_owner = match task.project_id {
        Some(p) => tx.get_project(p).await?.owner_id,
        None => None,
    };
    owner_or_admin(caller, &[task.created_by, project_owner], "task")
}

/// Refuses a change unless the caller is an admin or one of `owners` (or no one
/// owns the object).
pub fn owner_or_admin(caller: &Caller, owners: &[Option<UserId>], what: &str) -> ApiResult<()> {
    let owned: Vec<UserId> = owners.iter().flatten().copied().collect();
    if caller.is_admin()
        || owned.is_empty()
        || caller.0.user_id.is_some_and(|me| owned.contains(&me))
    {
        Ok(())
    } else {
        Err(Problem::forbidden(format!(
            "this {what} belongs to another user"
        )))
    }
}

/// The user the key acts for; a key of no user cannot use per-user resources.
pub fn me(caller: &Caller) -> ApiResult<UserId> {
    caller.0.user_id.ok_or_else(|| {
        Problem::forbidden("this API key acts for no user; per-user resources need a user's key")
    })
}

fn hidden(what: &str, id: impl std::fmt::Display) -> Problem {
    Problem::not_found(format!("no {what} {id}"))
}

/// A 404 about a workflow, reworded for the object that inherits its access.
fn rename(p: Problem, what: &str, id: impl std::fmt::Display) -> Problem {
    if p.status == 404 {
        hidden(what, id)
    } else {
        p
    }
}

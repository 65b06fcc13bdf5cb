//! Per-object access checks. The role (checked by [`crate::auth`]) says what kind of
//! request a key may make; these say which objects it may make it on. Lists apply
//! the same rules in their SQL (see [`flowstore_core::model::viewer`]), so that a
//! page is never shortened by rows filtered out after it was read.
//!
//! Workflows: an admin may do anything; the owner may do anything; others get what
//! [`flowstore_core::model::workflow::can_access`] grants (public and team
//! visibility for reading, shares for read, execute or write). A workflow without an
//! owner belongs to no one: every key may use it as its role allows. A workflow the
//! caller may not even read answers 404, so that its existence is not revealed; one
//! it may read but not change (or run) answers 403.
//!
//! Runs, their tasks, metrics and events inherit their workflow's access (a run whose
//! workflow is no stored workflow is unowned). Projects are read by their owner,
//! admins, every key when unowned, and whoever may read one of their workflows; they
//! are changed by their owner and admins (anyone when unowned). Pull requests inherit
//! their project's access. A standalone task is read by its creator and by whoever
//! may read its project (a task of no project: its creator, or everyone when no one
//! created it), and changed by its creator, its project's owner and admins.

use flowstore_core::ids::{ProjectId, PullRequestId, RunId, TaskId, TeamId, UserId, WorkflowId};
use flowstore_core::model::project::Project;
use flowstore_core::model::pull_request::PullRequest;
use flowstore_core::model::run::WorkflowExecution;
use flowstore_core::model::task::Task;
use flowstore_core::model::viewer::{self, run_workflow_id, workflow_id_of_text};
use flowstore_core::model::workflow::{SharePermission, Workflow};
use flowstore_core::Tx;

use crate::auth::Caller;
use crate::error::{ApiResult, Problem};

/// Whether `caller` may do `needed` with `wf` (by [`viewer::may_use_workflow`]).
pub async fn allowed(
    tx: &mut dyn Tx,
    caller: &Caller,
    wf: &Workflow,
    needed: SharePermission,
) -> ApiResult<bool> {
    Ok(viewer::may_use_workflow(tx, &caller.viewer(), wf, needed).await?)
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

/// The stored workflow a run's free-text `workflow_id` names, if any (by
/// [`workflow_id_of_text`], the rule the lists' SQL follows too).
pub async fn workflow_named(tx: &mut dyn Tx, workflow_id: &str) -> ApiResult<Option<Workflow>> {
    Ok(viewer::stored_workflow(tx, workflow_id_of_text(workflow_id)).await?)
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
    match viewer::stored_workflow(tx, run_workflow_id(run)).await? {
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
/// inherits its access; a standalone one is read by its creator and whoever may
/// read its project (a task of no project: its creator, or all when no one created
/// it), and changed by its creator, its project's owner or an admin.
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
        let wf = tx.get_workflow(w).await?;
        return check_workflow(tx, caller, &wf, needed)
            .await
            .map_err(|p| rename(p, "task", task.id));
    }
    if let Some(r) = task.run_id {
        let run = tx.get_execution(r).await?;
        return check_run(tx, caller, &run, needed)
            .await
            .map_err(|p| rename(p, "task", task.id));
    }
    let readable = viewer::may_read_task(tx, &caller.viewer(), task).await?;
    if !readable {
        return Err(hidden("task", task.id));
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

/// The task with `id`, if `caller` may do `needed` with it.
pub async fn task(
    tx: &mut dyn Tx,
    caller: &Caller,
    id: TaskId,
    needed: SharePermission,
) -> ApiResult<Task> {
    let t = tx.get_task(id).await?;
    check_task(tx, caller, &t, needed).await?;
    Ok(t)
}

/// Whether `caller` may read `project`: its owner, admins, everyone when it has no
/// owner, and whoever may read one of its workflows.
pub async fn project_visible(
    tx: &mut dyn Tx,
    caller: &Caller,
    project: &Project,
) -> ApiResult<bool> {
    Ok(viewer::may_read_project(tx, &caller.viewer(), project).await?)
}

/// Refuses unless `caller` may do `needed` with `project`: 404 when it may not read
/// it, 403 when it may read but not change it (only its owner and admins may, or
/// anyone when it has no owner).
pub async fn check_project(
    tx: &mut dyn Tx,
    caller: &Caller,
    project: &Project,
    needed: SharePermission,
) -> ApiResult<()> {
    if !project_visible(tx, caller, project).await? {
        return Err(hidden("project", project.id));
    }
    if needed == SharePermission::Read {
        return Ok(());
    }
    owner_or_admin(caller, &[project.owner_id], "project")
}

/// The project with `id`, if `caller` may do `needed` with it.
pub async fn project(
    tx: &mut dyn Tx,
    caller: &Caller,
    id: ProjectId,
    needed: SharePermission,
) -> ApiResult<Project> {
    let p = tx.get_project(id).await?;
    check_project(tx, caller, &p, needed).await?;
    Ok(p)
}

/// The project named by the `field` of a request body, if `caller` may do `needed`
/// with it. One it may not read (or that does not exist) is invalid `field`, so that
/// a body cannot tell hidden projects from missing ones; one it may read but not
/// change is a 403.
pub async fn project_field(
    tx: &mut dyn Tx,
    caller: &Caller,
    field: &str,
    id: ProjectId,
    needed: SharePermission,
) -> ApiResult<Project> {
    match project(tx, caller, id, needed).await {
        Err(p) if p.status == 404 => Err(Problem::invalid(field, "no such project")),
        other => other,
    }
}

/// The task named by the `field` of a request body, if `caller` may do `needed`
/// with it. One it may not read (or that does not exist) is invalid `field`, so that
/// a body cannot tell hidden tasks from missing ones; one it may read but not use
/// that way is a 403.
pub async fn task_field(
    tx: &mut dyn Tx,
    caller: &Caller,
    field: &str,
    id: TaskId,
    needed: SharePermission,
) -> ApiResult<Task> {
    match task(tx, caller, id, needed).await {
        Err(p) if p.status == 404 => Err(Problem::invalid(field, format!("no such task {id}"))),
        other => other,
    }
}

/// Refuses a team named by the `field` of a request body unless the caller is an
/// admin or a member of it: a workflow may be put only in a team of its writer's
/// (a team the caller is not in answers as if it did not exist).
pub async fn team_field(
    tx: &mut dyn Tx,
    caller: &Caller,
    field: &str,
    team: TeamId,
) -> ApiResult<()> {
    if caller.is_admin() {
        return Ok(());
    }
    let member = match caller.0.user_id {
        Some(me) => tx.list_user_teams(me).await?.iter().any(|t| t.id == team),
        None => false,
    };
    if member {
        Ok(())
    } else {
        Err(Problem::invalid(
            field,
            format!("no team {team} that the caller belongs to"),
        ))
    }
}

/// The pull request with `id`, if `caller` may do `needed` with its project.
pub async fn pull_request(
    tx: &mut dyn Tx,
    caller: &Caller,
    id: PullRequestId,
    needed: SharePermission,
) -> ApiResult<PullRequest> {
    let pr = tx.get_pull_request(id).await?;
    let project = tx.get_project(pr.project_id).await?;
    check_project(tx, caller, &project, needed)
        .await
        .map_err(|p| rename(p, "pull request", id))?;
    Ok(pr)
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

//! Who is reading a list, so that the backends can leave out, in the list's own SQL,
//! the rows the reader may not see. Filtering in the query (rather than after a page
//! has been read) keeps every page full unless it is the last.
//!
//! The rules, the same in both backends' SQL and in the server's per-object checks:
//!
//! - An admin, and a list without a viewer (library callers), see everything.
//! - A **workflow** is visible when it has no owner, is the viewer's, is public, is
//!   team-visible in one of the viewer's teams, or is shared (any permission) with the
//!   viewer or one of their teams.
//! - A **run** is visible when the stored workflow it runs (see [`run_workflow_id`])
//!   is, or when it names no stored workflow.
//! - A **project** is visible when it has no owner, is the viewer's, or has a
//!   workflow visible to the viewer (working on a project's workflow shows the
//!   project).
//! - A **pull request** is visible when its project is.
//! - A **task** of a workflow is visible when its workflow is; else a task of a run
//!   when its run is; else a task of a project when the viewer created it or its
//!   project is visible; else (a task alone) when the viewer created it or no one did.
//!
//! A viewer with no user (an API key of no user) sees only what belongs to no one and
//! what is public.
//!
//! The per-object checks ([`may_use_workflow`], [`may_read_run`], [`may_read_task`],
//! [`may_read_project`], [`may_read_event`]) are written here once, over any
//! transaction: the server's access checks and the webhook fan-out (which sends a
//! webhook only the events its owner may read, as the owner is at fan-out time) both
//! call them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{UserId, WorkflowId};
use crate::model::engine::Event;
use crate::model::identity::{Role, User, UserStatus};
use crate::model::project::Project;
use crate::model::run::WorkflowExecution;
use crate::model::task::Task;
use crate::model::workflow::{SharePermission, Visibility, Workflow, WorkflowFilter};
use crate::{PageRequest, StoreError, StoreResult, Tx};

/// The reader of a list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewer {
    /// The user reading, if the key acts for one.
    pub user_id: Option<UserId>,
    /// Whether the reader is an admin (who sees everything).
    pub admin: bool,
}

impl Viewer {
    /// Whether rows must be filtered for this viewer (everyone but admins).
    pub fn restricted(&self) -> bool {
        !self.admin
    }
}

impl Viewer {
    /// The viewer a user is now: an admin sees everything; a user who is not active
    /// sees nothing (`None`).
    pub fn of_user(user: &User) -> Option<Viewer> {
        (user.status == UserStatus::Active).then_some(Viewer {
            user_id: Some(user.id),
            admin: user.role == Role::Admin,
        })
    }
}

/// Whether `viewer` (when given) limits what a list returns.
pub fn restricts(viewer: &Option<Viewer>) -> bool {
    viewer.as_ref().is_some_and(Viewer::restricted)
}

/// The stored workflow a run belongs to, for access: its `workflow_ref` when set,
/// else its free-text `workflow_id` when that is a UUID written in the usual 36
/// characters (8-4-4-4-12 hex digits with hyphens). Both backends compute the same
/// in SQL, which is why other spellings of a UUID are not taken as a reference.
pub fn run_workflow_id(run: &WorkflowExecution) -> Option<WorkflowId> {
    run.workflow_ref
        .or_else(|| workflow_id_of_text(&run.workflow_id))
}

/// The workflow ID a run's free-text `workflow_id` names, by the rule of
/// [`run_workflow_id`].
pub fn workflow_id_of_text(text: &str) -> Option<WorkflowId> {
    let t = text.trim_matches(' ');
    if t.len() != 36 {
        return None;
    }
    let hex = t.replace('-', "");
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Uuid::try_parse(&hex).ok().map(WorkflowId)
}

/// Whether `viewer` may do what `needed` asks with `wf`: admins and the owner may do
/// anything, a workflow of no owner is everyone's, a viewer of no user may only read
/// public ones, and a user gets what [`crate::model::workflow::can_access`] grants.
pub async fn may_use_workflow(
    tx: &mut dyn Tx,
    viewer: &Viewer,
    wf: &Workflow,
    needed: SharePermission,
) -> StoreResult<bool> {
    if viewer.admin {
        return Ok(true);
    }
    Ok(match (wf.owner_id, viewer.user_id) {
        (None, _) => true,
        (Some(owner), Some(me)) if owner == me => true,
        (Some(_), Some(me)) => tx.workflow_access(wf.id, me, needed).await?,
        (Some(_), None) => needed == SharePermission::Read && wf.visibility == Visibility::Public,
    })
}

/// The stored workflow with `id`, if there is one.
pub async fn stored_workflow(
    tx: &mut dyn Tx,
    id: Option<WorkflowId>,
) -> StoreResult<Option<Workflow>> {
    let Some(id) = id else {
        return Ok(None);
    };
    match tx.get_workflow(id).await {
        Ok(w) => Ok(Some(w)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `viewer` may read `run`: when its workflow (see [`run_workflow_id`]) is
/// readable, or when it runs no stored workflow.
pub async fn may_read_run(
    tx: &mut dyn Tx,
    viewer: &Viewer,
    run: &WorkflowExecution,
) -> StoreResult<bool> {
    match stored_workflow(tx, run_workflow_id(run)).await? {
        Some(wf) => may_use_workflow(tx, viewer, &wf, SharePermission::Read).await,
        None => Ok(true),
    }
}

/// Whether `viewer` may read `project`: its owner, admins, everyone when it has no
/// owner, and whoever may read one of its workflows.
pub async fn may_read_project(
    tx: &mut dyn Tx,
    viewer: &Viewer,
    project: &Project,
) -> StoreResult<bool> {
    if viewer.admin || project.owner_id.is_none() || project.owner_id == viewer.user_id {
        return Ok(true);
    }
    let through_workflow = WorkflowFilter {
        project_id: Some(project.id),
        viewer: Some(viewer.clone()),
        ..WorkflowFilter::default()
    };
    Ok(!tx
        .list_workflows(&through_workflow, &PageRequest::first(1))
        .await?
        .items
        .is_empty())
}

/// Whether `viewer` may read `task`: a task of a workflow or run inherits its
/// access; a standalone one is read by its creator and whoever may read its project
/// (a task of no project: its creator, or everyone when no one created it).
pub async fn may_read_task(tx: &mut dyn Tx, viewer: &Viewer, task: &Task) -> StoreResult<bool> {
    if viewer.admin {
        return Ok(true);
    }
    if let Some(w) = task.workflow_id {
        return match stored_workflow(tx, Some(w)).await? {
            Some(wf) => may_use_workflow(tx, viewer, &wf, SharePermission::Read).await,
            None => Ok(false),
        };
    }
    if let Some(r) = task.run_id {
        return match tx.get_execution(r).await {
            Ok(run) => may_read_run(tx, viewer, &run).await,
            Err(StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        };
    }
    if task.created_by.is_some() && task.created_by == viewer.user_id {
        return Ok(true);
    }
    match task.project_id {
        Some(p) => {
            let project = tx.get_project(p).await?;
            may_read_project(tx, viewer, &project).await
        }
        None => Ok(task.created_by.is_none()),
    }
}

/// Whether `viewer` may read an outbox event: one about a run follows the run, one
/// about a task alone follows the task, one naming only a workflow follows that
/// workflow. An event about an object that is gone, or about nothing, is for admins
/// only.
pub async fn may_read_event(tx: &mut dyn Tx, viewer: &Viewer, ev: &Event) -> StoreResult<bool> {
    if viewer.admin {
        return Ok(true);
    }
    let gone = |r: StoreResult<bool>| match r {
        Err(StoreError::NotFound { .. }) => Ok(false),
        other => other,
    };
    if let Some(run) = ev.run_id {
        return gone(match tx.get_execution(run).await {
            Ok(run) => may_read_run(tx, viewer, &run).await,
            Err(e) => Err(e),
        });
    }
    if let Some(task) = ev.task_id {
        return gone(match tx.get_task(task).await {
            Ok(task) => may_read_task(tx, viewer, &task).await,
            Err(e) => Err(e),
        });
    }
    if let Some(w) = ev.workflow_id.as_deref() {
        return match stored_workflow(tx, workflow_id_of_text(w)).await? {
            Some(wf) => may_use_workflow(tx, viewer, &wf, SharePermission::Read).await,
            None => Ok(true),
        };
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_workflow_text() {
        let id = WorkflowId::new();
        assert_eq!(workflow_id_of_text(&id.to_string()), Some(id));
        assert_eq!(workflow_id_of_text(&format!(" {id} ")), Some(id));
        assert_eq!(
            workflow_id_of_text(&id.to_string().to_uppercase()),
            Some(id)
        );
        assert_eq!(workflow_id_of_text(&id.0.simple().to_string()), None);
        assert_eq!(workflow_id_of_text("deploy-service"), None);
        assert_eq!(workflow_id_of_text(&"g".repeat(36)), None);
    }
}

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

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{UserId, WorkflowId};
use crate::model::run::WorkflowExecution;

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

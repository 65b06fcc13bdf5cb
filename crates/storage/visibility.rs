//! The visibility predicates of lists (see `flowstore_core::model::viewer` for the
//! rules). Each function returns a SQL condition on the row aliased as its argument
//! that refers to the viewer's user ID as `v.me`; [`clause`] wraps one so that the
//! viewer's ID is bound once, in a one-row derived table `v`. A viewer without a user
//! binds NULL: every comparison with it is then unknown, which counts as false, so
//! only what belongs to no one or is public passes. The conditions use no NOT over a
//! nullable comparison, so unknown never turns into true.

use flowstore_core::ids::UserId;
use flowstore_core::model::viewer::{restricts, Viewer};

use crate::dialect::{uuid_from_text, Db, UUID_CAST};

/// The workflow `w` is the viewer's, public, team-visible to one of their teams, or
/// shared with them or one of their teams.
fn workflow_granted(w: &str) -> String {
    format!(
        "({w}.owner_id = v.me OR {w}.visibility = 'public'
          OR ({w}.visibility = 'team' AND {w}.team_id IN
              (SELECT tm.team_id FROM team_members tm WHERE tm.user_id = v.me))
          OR EXISTS (SELECT 1 FROM workflow_shares ws WHERE ws.workflow_id = {w}.id
              AND (ws.user_id = v.me OR ws.team_id IN
                  (SELECT tm2.team_id FROM team_members tm2 WHERE tm2.user_id = v.me))))"
    )
}

/// The workflow `w` is visible: unowned or granted.
pub(crate) fn workflow(w: &str) -> String {
    format!("({w}.owner_id IS NULL OR {})", workflow_granted(w))
}

/// The run `r` is visible: it names no stored workflow, or a visible one.
pub(crate) fn run(r: &str) -> String {
    named(&run_workflow(r))
}

/// A row naming a workflow by seed 000's free text in `col` (as runs and their
/// rollups do) is visible: the text names no stored workflow, or a visible one.
pub(crate) fn workflow_named(col: &str) -> String {
    named(&uuid_from_text(col))
}

/// The stored workflow whose ID is `wf` (an expression) does not exist or is visible.
fn named(wf: &str) -> String {
    format!(
        "(NOT EXISTS (SELECT 1 FROM workflows rw WHERE rw.id = {wf})
          OR EXISTS (SELECT 1 FROM workflows rw2 WHERE rw2.id = {wf} AND {}))",
        workflow("rw2")
    )
}

/// The project `p` is visible: unowned, the viewer's, or with a visible workflow.
pub(crate) fn project(p: &str) -> String {
    format!(
        "({p}.owner_id IS NULL OR {p}.owner_id = v.me
          OR EXISTS (SELECT 1 FROM workflows pw WHERE pw.project_id = {p}.id AND {}))",
        workflow("pw")
    )
}

/// The pull request `pr` is visible: its project is.
pub(crate) fn pull_request(pr: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM projects pp WHERE pp.id = {pr}.project_id AND {})",
        project("pp")
    )
}

/// The task `t` is visible: by its workflow, else its run, else its project or its
/// creator, else its creator (or no one's).
pub(crate) fn task(t: &str) -> String {
    format!(
        "(CASE WHEN {t}.workflow_id IS NOT NULL THEN
                EXISTS (SELECT 1 FROM workflows tw WHERE tw.id = {t}.workflow_id AND {})
               WHEN {t}.run_id IS NOT NULL THEN
                EXISTS (SELECT 1 FROM workflow_executions tr WHERE tr.id = {t}.run_id AND {})
               WHEN {t}.project_id IS NOT NULL THEN
                ({t}.created_by = v.me
                 OR EXISTS (SELECT 1 FROM projects tp WHERE tp.id = {t}.project_id AND {}))
               ELSE ({t}.created_by IS NULL OR {t}.created_by = v.me) END)",
        workflow("tw"),
        run("tr"),
        project("tp")
    )
}

/// The event `e` is visible, by `flowstore_core::model::viewer::may_read_event`: an
/// event about a run follows the run, one about a task alone the task, one naming
/// only a workflow that workflow; one about nothing is for admins only.
pub(crate) fn event(e: &str) -> String {
    format!(
        "(CASE WHEN {e}.run_id IS NOT NULL THEN
                EXISTS (SELECT 1 FROM workflow_executions er WHERE er.id = {e}.run_id AND {})
               WHEN {e}.task_id IS NOT NULL THEN
                EXISTS (SELECT 1 FROM tasks et WHERE et.id = {e}.task_id AND {})
               WHEN {e}.workflow_id IS NOT NULL THEN {}
               ELSE 1 = 0 END)",
        run("er"),
        task("et"),
        workflow_named(&format!("{e}.workflow_id"))
    )
}

/// The viewer's user ID to bind, and whether the predicate applies at all.
pub(crate) fn binds(viewer: &Option<Viewer>) -> (bool, Option<UserId>) {
    (restricts(viewer), viewer.as_ref().and_then(|v| v.user_id))
}

/// The stored workflow ID of run `r`, by `flowstore_core::model::viewer::run_workflow_id`:
/// its `workflow_ref`, else its text `workflow_id` when that is a 36-character UUID.
fn run_workflow(r: &str) -> String {
    format!(
        "COALESCE({r}.workflow_ref, {})",
        uuid_from_text(&format!("{r}.workflow_id"))
    )
}

/// ` AND (NOT {restrict} OR EXISTS (… v WHERE pred))`, for a statement that binds the
/// flag of [`binds`] as `restrict` and the user ID as `me` (both `$n` placeholders;
/// the statement goes through the dialect's `sql_owned`).
pub(crate) fn clause(restrict: &str, me: &str, pred: &str) -> String {
    format!(
        " AND (NOT {restrict}::bool OR EXISTS (SELECT 1 FROM (SELECT {me}::uuid AS me) v WHERE {pred}))"
    )
}

/// Appends the predicate to a query being built, when the viewer restricts it.
pub(crate) fn push(qb: &mut sqlx::QueryBuilder<'_, Db>, viewer: &Option<Viewer>, pred: &str) {
    let (restricted, me) = binds(viewer);
    if restricted {
        qb.push(" AND EXISTS (SELECT 1 FROM (SELECT ")
            .push_bind(me)
            .push(UUID_CAST)
            .push(" AS me) v WHERE ")
            .push(pred)
            .push(")");
    }
}

/// ` AND …`: the task `t` belongs to a workflow the claiming key may execute (no
/// workflow, an unowned one, its own, or one shared with it or its teams for execute
/// or write), unless `restrict` is false. `restrict` and `me` are placeholders bound
/// from [`binds`] of the request's executor (in PostgreSQL's spelling, as [`clause`]).
///
/// It also leaves out the tasks of a paused run (seed 000's `paused`, which its
/// clients write directly): they are claimed once the run is running again. A
/// lookup by key, for claimed candidates of a run only.
pub(crate) fn claimable(t: &str, restrict: &str, me: &str) -> String {
    format!(
        " AND ({t}.run_id IS NULL OR NOT EXISTS (SELECT 1 FROM workflow_executions pr
                WHERE pr.id = {t}.run_id AND pr.status = 'paused'))
          AND (NOT {restrict}::bool OR {t}.workflow_id IS NULL OR EXISTS (
            SELECT 1 FROM workflows cw WHERE cw.id = {t}.workflow_id
               AND (cw.owner_id IS NULL OR cw.owner_id = {me}::uuid OR EXISTS (
                   SELECT 1 FROM workflow_shares cs WHERE cs.workflow_id = cw.id
                      AND cs.permission IN ('execute', 'write')
                      AND (cs.user_id = {me}::uuid OR cs.team_id IN
                          (SELECT ctm.team_id FROM team_members ctm WHERE ctm.user_id = {me}::uuid))))))"
    )
}

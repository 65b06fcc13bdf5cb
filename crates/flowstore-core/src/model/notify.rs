//! The notifications flowstore produces for what a user must know, each written in
//! the transaction of the change it is about: a run of their workflow failed or
//! timed out, a workflow was shared with them (or their team), their API key was
//! revoked by someone else, wrong passwords made their sign-in wait. Written once here over any transaction, so the engine,
//! the server and library callers produce the same ones.

use serde_json::json;

use crate::ids::UserId;
use crate::model::identity::{NotificationRepo, TeamRepo};
use crate::model::identity_access::{ApiKey, NewNotification, NotificationType};
use crate::model::run::RunStatus;
use crate::model::viewer::workflow_id_of_text;
use crate::model::workflow::{Workflow, WorkflowRepo, WorkflowShare};
use crate::{StoreError, StoreResult};

async fn send<T: NotificationRepo + ?Sized>(
    tx: &mut T,
    user_id: UserId,
    kind: NotificationType,
    title: String,
    data: serde_json::Value,
) -> StoreResult<()> {
    tx.create_notification(NewNotification {
        user_id,
        kind,
        title,
        message: None,
        data: Some(data),
    })
    .await?;
    Ok(())
}

/// Tells the owner of the stored workflow a run belongs to (by seed 000's
/// `workflow_id` text) that it ended `failed` or `timed_out`; other endings and
/// runs of no owned workflow tell no one.
pub async fn run_ended<T: NotificationRepo + WorkflowRepo + ?Sized>(
    tx: &mut T,
    run_id: crate::ids::RunId,
    execution_id: &str,
    workflow_id: &str,
    status: RunStatus,
) -> StoreResult<()> {
    if !matches!(status, RunStatus::Failed | RunStatus::TimedOut) {
        return Ok(());
    }
    let Some(id) = workflow_id_of_text(workflow_id) else {
        return Ok(());
    };
    let workflow = match tx.get_workflow(id).await {
        Ok(w) => w,
        Err(StoreError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    let Some(owner) = workflow.owner_id else {
        return Ok(());
    };
    let verb = if status == RunStatus::Failed {
        "failed"
    } else {
        "timed out"
    };
    send(
        tx,
        owner,
        NotificationType::ExecutionFailed,
        format!("A run of {} {verb}", workflow.name),
        json!({"run_id": run_id, "execution_id": execution_id, "workflow_id": id, "status": status}),
    )
    .await
}

/// Tells the user a workflow was shared with, or every member of the team it was
/// shared with, except whoever shared it.
pub async fn workflow_shared<T: NotificationRepo + TeamRepo + ?Sized>(
    tx: &mut T,
    workflow: &Workflow,
    share: &WorkflowShare,
) -> StoreResult<()> {
    let mut to: Vec<UserId> = share.user_id.into_iter().collect();
    if let Some(team) = share.team_id {
        to.extend(
            tx.list_team_members(team)
                .await?
                .into_iter()
                .map(|m| m.user_id),
        );
    }
    to.retain(|u| Some(*u) != share.created_by && Some(*u) != workflow.owner_id);
    for user in to {
        send(
            tx,
            user,
            NotificationType::WorkflowShared,
            format!("{} was shared with you ({})", workflow.name, share.permission),
            json!({"workflow_id": workflow.id, "share_id": share.id, "permission": share.permission}),
        )
        .await?;
    }
    Ok(())
}

/// Tells a user that wrong passwords for their account made sign-in wait (until
/// `until`, when known): someone may be guessing it.
pub async fn sign_in_throttled<T: NotificationRepo + ?Sized>(
    tx: &mut T,
    user: UserId,
    until: Option<crate::time::Timestamp>,
) -> StoreResult<()> {
    send(
        tx,
        user,
        NotificationType::SecurityAlert,
        "Wrong passwords for your account: signing in waits a while".into(),
        json!({"reason": "sign_in_throttled", "until": until}),
    )
    .await
}

/// Tells a key's user that someone else revoked it.
pub async fn key_revoked<T: NotificationRepo + ?Sized>(
    tx: &mut T,
    key: &ApiKey,
    by: Option<UserId>,
) -> StoreResult<()> {
    match key.user_id {
        Some(user) if Some(user) != by => {
            send(
                tx,
                user,
                NotificationType::SecurityAlert,
                format!("Your API key {} was revoked", key.name),
                json!({"api_key_id": key.id, "prefix": key.prefix}),
            )
            .await
        }
        _ => Ok(()),
    }
}

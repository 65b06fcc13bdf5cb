//! The notifications flowstore produces for what a user must know, each written in
//! the transaction of the change it is about: a run of their workflow failed or
//! timed out, a workflow was shared with them (or their team), their API key was
//! revoked by someone else, wrong passwords made their sign-in wait, their password
//! was changed or reset, a credential of theirs expires soon (told by the server's
//! maintenance pass, once per credential and expiry). Written once here over any
//! transaction, so the engine, the server and library callers produce the same ones.
//! A kind the user switched off ([`NotificationRepo::wants_notification`]) is not
//! written; security alerts always are.

use serde_json::json;

use crate::ids::UserId;
use crate::model::identity::{NotificationRepo, TeamRepo};
use crate::model::identity_access::{ApiKey, NewNotification, NotificationType};
use crate::model::integration::CredentialRepo;
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
    if !tx.wants_notification(user_id, kind).await? {
        return Ok(());
    }
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

/// Tells a user that their password was changed (by a reset, by themself or by an
/// admin): if they did not, someone else holds their account.
pub async fn password_changed<T: NotificationRepo + ?Sized>(
    tx: &mut T,
    user: UserId,
    how: &str,
) -> StoreResult<()> {
    send(
        tx,
        user,
        NotificationType::SecurityAlert,
        "Your password was changed".into(),
        json!({"reason": "password_changed", "how": how}),
    )
    .await
}

/// How long before a credential expires its owner is told.
pub const CREDENTIAL_EXPIRY_NOTICE: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// Tells the owners of credentials that expire within [`CREDENTIAL_EXPIRY_NOTICE`]
/// of `now` (`system_alert`, reason `credential_expiring`), at most `limit` of them:
/// once per credential and expiry, whoever runs it and however often (a credential
/// given a new expiry is told again when that one nears). A credential of no owner
/// is noted without telling anyone. Returns how many were noted.
pub async fn credentials_expiring<T: CredentialRepo + NotificationRepo + ?Sized>(
    tx: &mut T,
    now: crate::time::Timestamp,
    limit: u32,
) -> StoreResult<u64> {
    let soon = tx
        .credentials_expiring_untold(now, now + CREDENTIAL_EXPIRY_NOTICE, limit)
        .await?;
    let mut told = 0;
    for c in soon {
        let Some(expires_at) = c.expires_at else {
            continue;
        };
        if !tx.note_expiry_told(c.id, expires_at, now).await? {
            continue;
        }
        told += 1;
        if let Some(owner) = c.owner_id {
            send(
                tx,
                owner,
                NotificationType::SystemAlert,
                format!("Your credential {} expires soon", c.name),
                json!({"reason": "credential_expiring", "credential_id": c.id,
                       "expires_at": expires_at}),
            )
            .await?;
        }
    }
    Ok(told)
}

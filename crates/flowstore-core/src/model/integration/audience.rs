//! Which webhooks receive an outbox event: those subscribed to its type (and its
//! workflow, when they name one), created before it happened, and whose owner may
//! read what it is about, by the rules of [`crate::model::viewer`] as the owner is
//! now. Access can change between an event and its fan-out (a share removed, a user
//! demoted or switched off), so it is decided at fan-out time, not when the webhook
//! was made. A webhook of no owner is managed by admins only and receives every
//! event it subscribes to.

use std::collections::HashMap;

use crate::ids::{RunId, TaskId, UserId};
use crate::model::engine::Event;
use crate::model::integration::Webhook;
use crate::model::viewer::{may_read_event, Viewer};
use crate::{StoreError, StoreResult, Tx};

/// Decides, for one fan-out, which webhooks receive which events; remembers each
/// owner's viewer and each owner's answer per subject, so a batch of events about
/// one run asks the database once per owner.
#[derive(Default)]
pub struct Audience {
    viewers: HashMap<UserId, Option<Viewer>>,
    answers: HashMap<(UserId, Subject), bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Subject {
    Run(RunId),
    Task(TaskId),
    Workflow(String),
    Nothing,
}

impl Subject {
    fn of(ev: &Event) -> Subject {
        match (ev.run_id, ev.task_id, &ev.workflow_id) {
            (Some(r), _, _) => Subject::Run(r),
            (None, Some(t), _) => Subject::Task(t),
            (None, None, Some(w)) => Subject::Workflow(w.clone()),
            (None, None, None) => Subject::Nothing,
        }
    }
}

impl Audience {
    /// Whether `hook` receives `ev`.
    pub async fn receives(
        &mut self,
        tx: &mut dyn Tx,
        hook: &Webhook,
        ev: &Event,
    ) -> StoreResult<bool> {
        // A webhook gets the events that happened after it was created.
        if hook.created_at > ev.created_at
            || !hook.matches(&ev.event_type, ev.workflow_id.as_deref())
        {
            return Ok(false);
        }
        let Some(owner) = hook.owner_id else {
            return Ok(true);
        };
        let key = (owner, Subject::of(ev));
        if let Some(known) = self.answers.get(&key) {
            return Ok(*known);
        }
        let viewer = match self.viewers.get(&owner) {
            Some(v) => v.clone(),
            None => {
                let v = match tx.get_user(owner).await {
                    Ok(user) => Viewer::of_user(&user),
                    Err(StoreError::NotFound { .. }) => None,
                    Err(e) => return Err(e),
                };
                self.viewers.insert(owner, v.clone());
                v
            }
        };
        let readable = match viewer {
            Some(v) => may_read_event(tx, &v, ev).await?,
            None => false,
        };
        self.answers.insert(key, readable);
        Ok(readable)
    }
}

//! Writing the audit log from handlers. A handler that changes something on a
//! person's behalf calls [`record`] on the transaction that makes the change, just
//! before committing it, so the entry is written if and only if the change is (and
//! the lock that serialises appenders is held as briefly as possible).

use std::fmt::Display;

use flowstore_core::model::audit::NewAuditEntry;
use flowstore_core::Tx;
use serde::Serialize;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::ApiResult;

/// An entity as the audit log keeps it: its JSON as the API shows it (so secrets the
/// API hides stay hidden here too).
pub fn json<T: Serialize>(entity: &T) -> Option<Value> {
    serde_json::to_value(entity).ok()
}

/// Appends an entry for what `caller` did: `action` (such as `workflow.update`, whose
/// first part names the entity's type) on the entity `entity_id`, with the entity
/// before and after.
pub async fn record(
    tx: &mut dyn Tx,
    caller: &Caller,
    action: &str,
    entity_id: impl Display,
    before: Option<Value>,
    after: Option<Value>,
) -> ApiResult<()> {
    let (actor_type, actor_id) = caller.actor();
    let entity_type = action.split_once('.').map_or(action, |(kind, _)| kind);
    let mut entry = NewAuditEntry::new(
        actor_type,
        actor_id,
        action,
        entity_type,
        Some(entity_id.to_string()),
    );
    entry.before = before;
    entry.after = after;
    entry.ip_address = caller.0.ip_address.clone();
    entry.request_id = caller.0.request_id.clone();
    tx.append_audit(entry).await?;
    Ok(())
}

//! Writing the audit log from handlers. A handler that changes something on a
//! person's behalf calls [`record`] on the transaction that makes the change, so the
//! entry is written if and only if the change is. The entry is queued, not chained:
//! changes commit side by side instead of taking turns at the chain's end, and
//! [`link`] (run by the server's audit linker after such commits, by maintenance,
//! and by the log's readers first) chains the committed entries many at a time.

use std::fmt::Display;

use flowstore_core::model::audit::NewAuditEntry;
use flowstore_core::{StoreResult, Tx};
use serde::Serialize;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::AppState;

/// An entity as the audit log keeps it: its JSON as the API shows it (so secrets the
/// API hides stay hidden here too).
pub fn json<T: Serialize>(entity: &T) -> Option<Value> {
    serde_json::to_value(entity).ok()
}

/// Queues an entry for what `caller` did (after the commit, tell the linker with
/// `AppState::audit_queued`): `action` (such as `workflow.update`, whose
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
    tx.queue_audit(entry(caller, action, entity_id, before, after))
        .await?;
    Ok(())
}

/// The audit entry of what `caller` did: `action` (`kind.verb`, whose kind is the
/// entity's type) to `entity_id`, shown `before` and `after`, with the request's
/// ID and the client's address.
pub fn entry(
    caller: &Caller,
    action: &str,
    entity_id: impl Display,
    before: Option<Value>,
    after: Option<Value>,
) -> NewAuditEntry {
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
    entry
}

/// Links the queued entries that have committed into the chain; returns how many.
pub async fn link(state: &AppState) -> StoreResult<u64> {
    flowstore_core::model::audit::link_queued(state.backend()).await
}

/// Links queued entries whenever changes that queued them commit, until shutdown;
/// the changes committed while a round runs are linked together by the next one.
/// A failed round is logged and counted, and its entries are linked by the next.
pub(crate) async fn linker(state: AppState) {
    let mut shutdown = state.shutdown_signal();
    loop {
        tokio::select! {
            _ = state.audit_notify().notified() => {}
            _ = shutdown.changed() => return,
        }
        link_or_log(&state).await;
        // What commits meanwhile waits for the next round (the wake-up is kept):
        // under load, rounds of many entries rather than many rounds, each of which
        // takes the chain's lock and reads the queue through.
        tokio::select! {
            _ = tokio::time::sleep(LINK_GAP) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The least time between two rounds of the audit linker.
pub const LINK_GAP: std::time::Duration = std::time::Duration::from_millis(20);

/// [`link`], a failure logged and counted (in `maintenance_errors`) rather than
/// returned, as 0: the entries stay queued for the next round, and what runs beside
/// it (the rest of maintenance, a read of the log) goes on.
pub(crate) async fn link_or_log(state: &AppState) -> u64 {
    match link(state).await {
        Ok(n) => n,
        Err(e) => {
            state
                .metrics()
                .maintenance_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(error = %e, "linking audit entries failed; they stay queued for the next round");
            0
        }
    }
}

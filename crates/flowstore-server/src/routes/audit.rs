//! The audit log, for admins only: entries newest first with filters, and a walk of
//! the hash chain that reports the first entry that does not verify. Both link the
//! queued entries of committed changes first, so they show every committed change.

use axum::Json as AxumJson;
use flowstore_core::model::audit::{AuditEntry, AuditFilter, ChainVerification};
use flowstore_core::model::identity::Role;
use flowstore_core::time::Timestamp;
use flowstore_core::Page;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiResult, Problem, Query};
use crate::openapi as doc;
use crate::routes::Api;
use crate::state::AppState;

/// This module's routes with their OpenAPI paths, each declared once, on its handler
/// (the layers they run under are [`crate::app`]'s).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(verify))
}

paged_query_params! {
    /// Filters and page of `GET /audit`.
    pub struct ListAudit {
        /// Only entries of this actor (a user ID, or an API key's ID for a key of no user).
        pub actor: Option<String>,
        /// Only entries about this kind of entity (user, team, session, api_key,
        /// configuration, workflow, run).
        pub entity_type: Option<String>,
        /// Only entries about this entity.
        pub entity_id: Option<String>,
        /// Only entries of this action, such as `workflow.update`.
        pub action: Option<String>,
        /// Only entries written at or after this instant (RFC 3339).
        pub since: Option<String>,
    }
}

fn text(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// A page of the audit log, newest first (admin only).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(ListAudit),
    responses((status = 200, body = doc::AuditEntryPage),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list(api: Api, Query(q): Query<ListAudit>) -> ApiResult<AxumJson<Page<AuditEntry>>> {
    api.caller.require(Role::Admin)?;
    let since =
        match text(q.since) {
            None => None,
            Some(s) => Some(s.parse::<Timestamp>().map_err(|_| {
                Problem::invalid("since", format!("{s:?} is not an RFC 3339 instant"))
            })?),
        };
    let filter = AuditFilter {
        actor_id: text(q.actor),
        entity_type: text(q.entity_type),
        entity_id: text(q.entity_id),
        action: text(q.action),
        since,
    };
    // Committed changes whose entries are still queued are shown too; a replica
    // would not have the entries just linked yet.
    // A failure to link (the head's key not configured) leaves the linked entries
    // to read.
    let mut tx = if crate::audit::link_or_log(&api.state).await > 0 {
        api.read().await?
    } else {
        api.lagging_read().await?
    };
    Ok(AxumJson(
        tx.list_audit(&filter, &super::page(q.cursor, q.limit))
            .await?,
    ))
}

/// Walks the whole hash chain (admin only): `first_broken` names the first entry
/// that was changed, or follows a removed one; null when the chain is intact.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, body = doc::ChainVerification), (status = 403, body = Problem)))]
pub async fn verify(api: Api) -> ApiResult<AxumJson<ChainVerification>> {
    api.caller.require(Role::Admin)?;
    crate::audit::link_or_log(&api.state).await;
    let mut tx = api.read().await?;
    Ok(AxumJson(tx.verify_audit_chain().await?))
}

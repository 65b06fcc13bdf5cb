//! The handlers, one module per area. Each module owns its routes and their OpenAPI
//! paths, declared once in its `router()` (utoipa-axum), which [`crate::app`] merges.
//!
//! What the handlers share is here, written once: the [`Api`] extractor (the state
//! and the caller, with the transactions and the audited commit), the
//! `query_params!` declaration of a route's query parameters, the documented path
//! parameters ([`in_path`]) and the parsing of query values.

/// Declares the query parameters of a route as a struct that is read from the query
/// string (an unknown parameter is refused) and documented as query parameters.
macro_rules! query_params {
    ($(#[$meta:meta])* pub struct $name:ident { $($fields:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
        #[serde(deny_unknown_fields)]
        #[into_params(parameter_in = Query)]
        pub struct $name { $($fields)* }
    };
}

/// [`query_params!`] of a route that answers a page: after the route's own
/// parameters, `cursor` and `limit`.
macro_rules! paged_query_params {
    ($(#[$meta:meta])* pub struct $name:ident { $($fields:tt)* }) => {
        query_params! {
            $(#[$meta])*
            pub struct $name {
                $($fields)*
                /// The `next_cursor` of the previous page.
                pub cursor: Option<String>,
                /// Page size, 1..=1000.
                pub limit: Option<u32>,
            }
        }
    };
}

pub mod account;
pub mod analytics;
pub mod apikeys;
pub mod audit;
pub mod events;
pub mod executions;
pub mod handlers;
pub mod health;
pub mod in_path;
pub mod integration;
pub mod ops;
pub mod people;
pub mod projects;
pub mod pull_requests;
pub mod runs;
pub mod sessions;
pub mod system;
pub mod task_links;
pub mod tasks;
pub mod triggers;
pub mod worker;
pub mod workflow_life;
pub mod workflows;

use std::fmt::Display;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use flowstore_core::ids::UserId;
use flowstore_core::time::Timestamp;
use flowstore_core::{PageRequest, Tx};
use serde::Serialize;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::{ApiResult, Problem};
use crate::state::AppState;

paged_query_params! {
    /// A page: `cursor` and `limit`.
    pub struct PageQuery {}
}

/// `cursor` and `limit` of a list, checked by the store (`limit` at most
/// [`flowstore_core::page::MAX_PAGE_SIZE`]).
pub(crate) fn page(cursor: Option<String>, limit: Option<u32>) -> PageRequest {
    PageRequest { cursor, limit }
}

/// Parses an enum or ID given as a query parameter, naming the parameter on error.
pub(crate) fn parse_opt<T>(field: &str, v: Option<&str>) -> ApiResult<Option<T>>
where
    T: std::str::FromStr<Err = flowstore_core::StoreError>,
{
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|e: flowstore_core::StoreError| Problem::invalid(field, e.to_string())),
    }
}

/// What a handler of an authenticated route works with: the shared state and the
/// caller, taken from the request together.
#[derive(Clone)]
pub struct Api {
    /// The state every handler shares.
    pub state: AppState,
    /// Who made the request.
    pub caller: Caller,
}

impl FromRequestParts<AppState> for Api {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let caller = Caller::from_request_parts(parts, state).await?;
        Ok(Api {
            state: state.clone(),
            caller,
        })
    }
}

impl Api {
    /// A read-only transaction.
    pub async fn read(&self) -> ApiResult<Box<dyn Tx>> {
        Ok(self.state.backend().begin_read().await?)
    }

    /// A read-only transaction for lists, statistics and exports, which tolerate
    /// replication lag: on the replica when the backend has one, unless the caller
    /// wrote through this server lately (so that it reads its own writes).
    pub async fn lagging_read(&self) -> ApiResult<Box<dyn Tx>> {
        if self.state.wrote_lately(&self.writer()) {
            return self.read().await;
        }
        Ok(self.state.backend().begin_lagging_read().await?)
    }

    /// A read-write transaction.
    pub async fn write(&self) -> ApiResult<Box<dyn Tx>> {
        self.wrote();
        Ok(self.state.backend().begin().await?)
    }

    /// Notes that the caller writes now, so that its next lists read its writes.
    pub(crate) fn wrote(&self) {
        self.state.wrote(self.writer());
    }

    /// Who the caller is for reading its own writes: its user, or its key or
    /// session when it acts for no user.
    fn writer(&self) -> String {
        match (&self.caller.0.user_id, &self.caller.0.credential) {
            (Some(user), _) => format!("user {user}"),
            (None, crate::auth::Credential::ApiKey(k)) => format!("key {}", k.id),
            (None, crate::auth::Credential::Session(s)) => format!("session {}", s.id),
        }
    }

    /// Queues the audit entry of what the caller did (see [`crate::audit::record`]) in
    /// `tx` and commits it: the entry is written if and only if the change is. The
    /// audit linker then links it into the chain.
    pub async fn commit(
        &self,
        mut tx: Box<dyn Tx>,
        action: &str,
        entity_id: impl Display,
        before: Option<Value>,
        after: Option<Value>,
    ) -> ApiResult<()> {
        crate::audit::record(&mut *tx, &self.caller, action, entity_id, before, after).await?;
        tx.commit().await?;
        self.state.audit_queued();
        Ok(())
    }

    /// [`Api::commit`] of a change to an entity, shown before and after it as the
    /// API shows it.
    pub async fn commit_change<B: Serialize, A: Serialize>(
        &self,
        tx: Box<dyn Tx>,
        action: &str,
        entity_id: impl Display,
        before: &B,
        after: &A,
    ) -> ApiResult<()> {
        let (before, after) = (crate::audit::json(before), crate::audit::json(after));
        self.commit(tx, action, entity_id, before, after).await
    }
}

/// Parses an instant given as a query parameter (RFC 3339), naming the parameter on
/// error.
pub(crate) fn instant(field: &str, v: Option<&str>) -> ApiResult<Option<Timestamp>> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse::<Timestamp>()
            .map(Some)
            .map_err(|e| Problem::invalid(field, format!("not an RFC 3339 instant: {e}"))),
    }
}

/// Refuses a body that names an owner other than the caller, unless the caller is an
/// admin (or acts for no user): `what` is the object created.
pub(crate) fn check_owner(caller: &Caller, owner: Option<UserId>, what: &str) -> ApiResult<()> {
    match (owner, caller.0.user_id) {
        (Some(o), Some(me)) if o != me && !caller.is_admin() => Err(Problem::forbidden(format!(
            "this {what} belongs to another user"
        ))),
        _ => Ok(()),
    }
}

/// Refuses a body that sets `field`, which the server sets from the caller.
pub(crate) fn set_by_server<T>(field: &str, given: &Option<T>) -> ApiResult<()> {
    match given {
        Some(_) => Err(Problem::invalid(
            field,
            "is set by the server from the API key",
        )),
        None => Ok(()),
    }
}

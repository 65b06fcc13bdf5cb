//! The handlers, one module per area. Each module owns its routes and their OpenAPI
//! paths, declared once in its `router()` (utoipa-axum), which [`crate::app`] merges.

pub mod apikeys;
pub mod audit;
pub mod events;
pub mod executions;
pub mod handlers;
pub mod health;
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
pub mod worker;
pub mod workflow_life;
pub mod workflows;

use flowstore_core::PageRequest;

/// `cursor` and `limit` of a list, checked by the store (`limit` at most
/// [`flowstore_core::page::MAX_PAGE_SIZE`]).
pub(crate) fn page(cursor: Option<String>, limit: Option<u32>) -> PageRequest {
    PageRequest { cursor, limit }
}

/// Parses an enum or ID given as a query parameter, naming the parameter on error.
pub(crate) fn parse_opt<T>(field: &str, v: Option<&str>) -> crate::error::ApiResult<Option<T>>
where
    T: std::str::FromStr<Err = flowstore_core::StoreError>,
{
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|e: flowstore_core::StoreError| {
                crate::error::Problem::invalid(field, e.to_string())
            }),
    }
}

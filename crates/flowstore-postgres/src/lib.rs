//! The PostgreSQL backend of flowstore: its migrations and its native SQL.
//!
//! Several flowstore servers may share one database: migrations take an advisory
//! lock, and claims use `FOR UPDATE SKIP LOCKED`.

mod admin;
mod archive;
mod audit;
mod backend;
mod engine;
mod error;
mod identity;
mod identity_access;
mod integration;
mod integration_dispatch;
mod metric;
mod migrations;
mod ops;
mod project;
mod pull_request;
mod registry;
mod run;
mod summary;
mod task;
mod transitions;
mod util;
mod visibility;
mod workflow;

pub use backend::{PgSettings, PostgresBackend, PostgresTx};
pub use migrations::MIGRATIONS;

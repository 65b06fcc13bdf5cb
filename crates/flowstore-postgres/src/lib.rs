//! The PostgreSQL backend of flowstore: its migrations and its native SQL.
//!
//! Several flowstore servers may share one database: migrations take an advisory
//! lock, and claims use `FOR UPDATE SKIP LOCKED`.

mod admin;
#[path = "../../storage/archive.rs"]
mod archive;
mod archive_native;
#[path = "../../storage/archive_rows.rs"]
mod archive_rows;
#[path = "../../storage/audit.rs"]
mod audit;
mod backend;
mod dialect;
#[path = "../../storage/engine.rs"]
mod engine;
mod error;
mod hot_path;
#[path = "../../storage/identity.rs"]
mod identity;
#[path = "../../storage/identity_access.rs"]
mod identity_access;
#[path = "../../storage/integration.rs"]
mod integration;
#[path = "../../storage/integration_dispatch.rs"]
mod integration_dispatch;
#[path = "../../storage/metric.rs"]
mod metric;
#[path = "../../storage/migrations.rs"]
mod migrations;
#[path = "../../storage/ops.rs"]
mod ops;
#[path = "../../storage/project.rs"]
mod project;
#[path = "../../storage/pull_request.rs"]
mod pull_request;
#[path = "../../storage/reference.rs"]
mod reference;
#[path = "../../storage/registry.rs"]
mod registry;
#[path = "../../storage/run.rs"]
mod run;
#[path = "../../storage/summary.rs"]
mod summary;
#[path = "../../storage/task.rs"]
mod task;
mod task_query;
mod transitions;
#[path = "../../storage/visibility.rs"]
mod visibility;
#[path = "../../storage/workflow.rs"]
mod workflow;

pub use backend::{PgSettings, PostgresBackend, PostgresTx};
pub use migrations::MIGRATIONS;

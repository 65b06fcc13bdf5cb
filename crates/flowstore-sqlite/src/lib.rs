//! The SQLite backend of flowstore: its migrations and its native SQL.
//!
//! Conventions of this backend (the migrations say the same): UUIDs are 16-byte
//! BLOBs, instants are UTC text in the fixed form `YYYY-MM-DDTHH:MM:SS.ffffffZ` so that
//! text order is time order, JSON is checked text and booleans are 0 or 1. Writers
//! are serialised inside the process, so "database is locked" never reaches a caller.

mod admin;
#[path = "../../storage/archive.rs"]
mod archive;
mod archive_native;
#[path = "../../storage/archive_rows.rs"]
mod archive_rows;
#[path = "../../storage/audit.rs"]
mod audit;
mod backend;
mod checkpoint;
mod dialect;
#[path = "../../storage/engine.rs"]
mod engine;
mod error;
mod group;
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
mod space;
#[path = "../../storage/summary.rs"]
mod summary;
#[path = "../../storage/task.rs"]
mod task;
mod task_query;
mod util;
#[path = "../../storage/visibility.rs"]
mod visibility;
#[path = "../../storage/workflow.rs"]
mod workflow;

pub use backend::{database_file, SqliteBackend, SqliteSettings, SqliteTx, Synchronous};
pub use migrations::MIGRATIONS;

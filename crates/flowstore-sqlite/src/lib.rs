//! The SQLite backend of flowstore: its migrations and its native SQL.
//!
//! Conventions of this backend (the migrations say the same): UUIDs are 16-byte
//! BLOBs, instants are UTC text in the fixed form `YYYY-MM-DDTHH:MM:SS.ffffffZ` so that
//! text order is time order, JSON is checked text and booleans are 0 or 1. Writers
//! are serialised inside the process, so "database is locked" never reaches a caller.

mod admin;
mod archive;
mod audit;
mod backend;
mod checkpoint;
mod engine;
mod error;
mod group;
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
mod space;
mod summary;
mod task;
mod util;
mod visibility;
mod workflow;

pub use backend::{database_file, SqliteBackend, SqliteSettings, SqliteTx, Synchronous};
pub use migrations::MIGRATIONS;

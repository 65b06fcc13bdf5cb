//! The SQLite backend of flowstore: its migrations and its native SQL.
//!
//! Conventions of this backend (the migrations say the same): UUIDs are 16-byte
//! BLOBs, instants are UTC text in the fixed form `YYYY-MM-DDTHH:MM:SS.ffffffZ` so that
//! text order is time order, JSON is checked text and booleans are 0 or 1. Writers
//! are serialised inside the process, so "database is locked" never reaches a caller.

mod admin;
// The repositories written once for both backends (`crates/storage/`).
#[path = "../../storage/mod.rs"]
mod storage;
use storage::*;
mod archive_native;
mod backend;
mod checkpoint;
mod dialect;
mod direct;
mod feed;
mod group;
mod hot_path;
mod space;
mod task_query;
mod util;

pub use backend::{database_file, SqliteBackend, SqliteSettings, SqliteTx, Synchronous};
pub use migrations::MIGRATIONS;

//! The PostgreSQL backend of flowstore: its migrations and its native SQL.
//!
//! Several flowstore servers may share one database: migrations take an advisory
//! lock, and claims use `FOR UPDATE SKIP LOCKED`.

mod admin;
// The repositories written once for both backends (`crates/storage/`).
#[path = "../../storage/mod.rs"]
mod storage;
use storage::*;
mod archive_native;
mod backend;
mod dialect;
mod hot_path;
mod listen;
mod task_query;
pub mod tls;
mod transitions;

pub use backend::{PgSettings, Pooler, PostgresBackend, PostgresTx};
pub use migrations::MIGRATIONS;
pub use tls::{SslMode, TlsSettings};

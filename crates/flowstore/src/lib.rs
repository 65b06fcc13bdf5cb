//! flowstore: a durable state store for workflow and task orchestration, on SQLite
//! (embedded, zero set-up) or PostgreSQL (production), with the same behaviour.
//!
//! ```no_run
//! # async fn demo() -> flowstore::StoreResult<()> {
//! use flowstore::model::project::NewProject;
//! let store = flowstore::Store::open("sqlite::memory:").await?;
//! let mut tx = store.begin().await?;
//! let project = tx.create_project(NewProject { name: "website".into(), ..Default::default() }).await?;
//! tx.commit().await?;
//! # let _ = project; Ok(()) }
//! ```
//!
//! This crate is the library: `Store` and its settings, over the two backends. The
//! `flowstore` command (server, migrations, backups, demo data, benchmarks) is the
//! `flowstore-cli` crate, so that a library user compiles none of its dependencies.

pub mod config;
mod store;
#[cfg(test)]
mod tidy;

pub use flowstore_core::{
    ids, migrate, model, time, BackendKind, Page, PageRequest, StoreError, StoreResult, Tx,
};
pub use store::Store;

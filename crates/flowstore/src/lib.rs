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

pub mod archive;
pub mod bench;
pub mod cli;
pub mod config;
pub mod demo;
mod store;
#[cfg(test)]
mod tidy;

pub use flowstore_core::{
    ids, migrate, model, time, BackendKind, Page, PageRequest, StoreError, StoreResult, Tx,
};
pub use store::Store;

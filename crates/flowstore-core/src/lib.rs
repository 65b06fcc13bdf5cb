//! The core of flowstore: domain types, validated newtypes, the storage traits that
//! every backend implements, and the storage error type.
//!
//! Nothing in this crate talks to a database ([`pool`] only tells sqlx's pools how
//! to check their connections). The backends (`flowstore-sqlite`,
//! `flowstore-postgres`) implement [`store::Backend`] and [`store::Tx`]; the
//! `flowstore` crate picks one from the URL.

pub mod admin;
pub mod archive;
pub mod change;
pub mod crypto;
pub mod dialect;
pub mod engine;
pub mod error;
pub mod ids;
pub mod migrate;
pub mod model;
pub mod page;
pub mod pool;
pub mod slow;
pub mod store;
pub mod text_enum;
pub mod time;
pub mod validate;

pub use error::{Cause, StoreError, StoreResult};
pub use page::{Page, PageRequest};
pub use store::{Backend, BackendKind, Tx};

//! The repository code written once for both backends. Each backend includes this
//! folder as its `storage` module (`#[path = "../../storage/mod.rs"]`); the files
//! name what they need of their backend through `crate::dialect`.

pub(crate) mod archive;
pub(crate) mod archive_rows;
pub(crate) mod audit;
pub(crate) mod check;
pub(crate) mod engine;
pub(crate) mod identity;
pub(crate) mod identity_access;
pub(crate) mod integration;
pub(crate) mod integration_dispatch;
pub(crate) mod metric;
pub(crate) mod migrations;
pub(crate) mod ops;
pub(crate) mod project;
pub(crate) mod pull_request;
pub(crate) mod reference;
pub(crate) mod registry;
pub(crate) mod retention;
pub(crate) mod rows;
pub(crate) mod run;
pub(crate) mod summary;
pub(crate) mod task;
pub(crate) mod trigger;
pub(crate) mod visibility;
pub(crate) mod workflow;

//! The integration tests of the `flowstore` command: one binary, a module per area.
//! They drive the command's library (`flowstore_cli`), the `flowstore` binary and
//! the example worker end to end, most of them on both backends. Databases, the
//! per-backend macros and the shared fixtures come from `flowstore-testkit`.

#[macro_use]
extern crate flowstore_testkit;

mod admin;
mod audit_check;
mod backup;
mod backup_ops;
mod bench;
mod binary;
mod cli;
mod demo;
mod example_worker;
mod faults;
mod fleet;
mod keys;
mod slow_stats;
mod walkthrough;

/// The example worker (`examples/worker/`), driven by `example_worker` and
/// `walkthrough`.
#[path = "../examples/worker/worker.rs"]
#[allow(dead_code)]
mod worker;

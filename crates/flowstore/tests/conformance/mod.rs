//! The conformance suite: the same test bodies run against SQLite and PostgreSQL,
//! each test on a fresh database. Every area has one module; `conformance!` turns
//! each `async fn name(store: Store)` into one test per backend.

mod analytics;
mod audit;
mod engine;
mod engine_load;
mod engine_model;
mod engine_now;

mod identity;
mod integration;
mod integration_deliveries;
mod migrations;
mod ops;
mod projects;
mod raw;
mod registry;
mod runs;
mod seed_compat;
mod sessions;
mod tasks;
mod workflows;

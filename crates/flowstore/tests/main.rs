//! The integration tests of the `flowstore` library: the conformance suite
//! (`conformance/`) runs each test body on SQLite and on PostgreSQL
//! (`conformance!`). Databases, the per-backend macros and the shared fixtures come
//! from `flowstore-testkit`; the `flowstore` command's own tests are in
//! `flowstore-cli`.

#[macro_use]
extern crate flowstore_testkit;

mod conformance;
mod db_config;

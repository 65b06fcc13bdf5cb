//! The test kit of flowstore's integration tests, shared by the `flowstore` and
//! `flowstore-server` crates (a dev-dependency only; never published).
//!
//! - [`db`]: databases made for one test: a SQLite file in a temporary directory and
//!   a PostgreSQL database on the server named by `FLOWSTORE_TEST_PG`, named with the
//!   run's prefix (`FLOWSTORE_TEST_DB_PREFIX`) and dropped when the test ends, passed
//!   or failed. Without a reachable PostgreSQL the tests fail; they never skip.
//! - [`conformance!`] and [`both_backends!`]: each named test body becomes one test
//!   per backend, on a database of its own.
//! - [`fixtures`]: the users, keys, teams and definitions many tests start from.
//! - [`app`]: [`TestApp`], the server in process (`flowstore_server::app`) with a
//!   method per endpoint the tests call.
//! - [`served`]: [`Served`], the server as a process serves it, on a loopback port.
//! - [`serial`]: a lock for the few tests that must not run beside each other.
//! - [`pooler`]: a PgBouncer of the test's own in front of the tests' server;
//!   `TestDb::pgbouncer` is a database reached through one.
//! - [`tls`]: a throwaway PostgreSQL cluster that speaks TLS, with test
//!   certificates; [`record_slow_statements`] installs the slow-statement layer.

pub mod app;
pub mod db;
pub mod fixtures;
mod macros;
pub mod pooler;
pub mod served;
pub mod smtp;
pub mod tls;

pub use app::{Answer, Caller, TestApp};
pub use db::{pg_admin_url, PgDatabase, SqliteDatabase, TestDb, TestStore, ENCRYPTION_KEY};
pub use served::Served;

/// What the macros name through `$crate`.
#[doc(hidden)]
pub mod reexport {
    pub use flowstore::{PageRequest, StoreError};
    pub use serde_json::json;
}

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Held by a test that must not run beside another holder (the suite of each crate
/// is one binary whose tests run on parallel threads).
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// [`serial`] for a test outside any runtime.
pub fn serial_blocking() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.blocking_lock()
}

/// Installs, once per test process, a `tracing` subscriber holding flowstore's
/// slow-statement layer (`flowstore_core::slow::layer`), as the `flowstore`
/// command does, so that the slow statements of stores opened with a threshold are
/// recorded.
pub fn record_slow_statements() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use tracing_subscriber::prelude::*;
        let subscriber = tracing_subscriber::registry().with(flowstore_core::slow::layer());
        // Another subscriber set first would take the events instead: say so.
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global tracing subscriber is installed by the tests");
    });
}

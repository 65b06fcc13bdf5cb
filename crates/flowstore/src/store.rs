//! [`Store`]: the entry point of the library. It picks the backend once, from the
//! URL, and hands out transactions.

use std::sync::Arc;

use flowstore_core::{Backend, BackendKind, StoreError, StoreResult, Tx};
use flowstore_postgres::{PgSettings, PostgresBackend};
use flowstore_sqlite::{SqliteBackend, SqliteSettings};

use crate::config::Settings;

/// A flowstore database, on SQLite or PostgreSQL. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend.kind())
            .finish()
    }
}

impl Store {
    /// Opens the database at `url` with default settings and brings its schema up to
    /// date: `sqlite://path`, `sqlite::memory:` or `postgres://…`. The encryption key
    /// comes from `ENCRYPTION_KEY` or the key file `flowstore.key`.
    pub async fn open(url: &str) -> StoreResult<Store> {
        let settings = Settings {
            database_url: url.to_string(),
            ..Settings::from_env()?
        };
        let store = Store::connect(&settings).await?;
        store.backend.migrate_up(None).await?;
        Ok(store)
    }

    /// Connects with `settings` without touching the schema; a SQLite file that does
    /// not exist yet is created.
    pub async fn connect(settings: &Settings) -> StoreResult<Store> {
        Store::connect_with(settings, true).await
    }

    /// Connects to a database that must exist already: a missing SQLite file is an
    /// error naming its path, and nothing is created.
    pub async fn connect_existing(settings: &Settings) -> StoreResult<Store> {
        Store::connect_with(settings, false).await
    }

    /// The file that holds the database `url` names, when it is one (a SQLite file);
    /// `None` for a server database or an in-memory one.
    pub fn local_file(url: &str) -> Option<std::path::PathBuf> {
        let url = url.trim();
        if url.starts_with("sqlite:") {
            flowstore_sqlite::database_file(url)
        } else {
            None
        }
    }

    async fn connect_with(settings: &Settings, create: bool) -> StoreResult<Store> {
        settings.check_tls()?;
        let keys = Arc::new(settings.key_source()?);
        let url = settings.database_url.trim();
        let backend: Arc<dyn Backend> = if url.starts_with("sqlite:") {
            let s = SqliteSettings {
                url: url.to_string(),
                max_connections: settings.pool_max,
                min_connections: settings.pool_min,
                busy_timeout: settings.connect_timeout,
                idle_timeout: settings.idle_timeout,
                create,
                synchronous: settings.sqlite_synchronous,
                slow_statements: settings.slow_query_threshold,
                engine: settings.engine,
            };
            Arc::new(SqliteBackend::connect(&s, keys).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let s = PgSettings {
                url: url.to_string(),
                tls: settings.tls.clone(),
                max_connections: settings.pool_max,
                min_connections: settings.pool_min,
                connect_timeout: settings.connect_timeout,
                idle_timeout: settings.idle_timeout,
                statement_timeout: settings.statement_timeout,
                lock_timeout: settings.lock_timeout,
                application_name: "flowstore".into(),
                log_statements: settings.db_debug,
                slow_statements: settings.slow_query_threshold,
                pooler: settings.pooler,
                direct_url: settings.direct_url.clone(),
                read_url: settings.read_url.clone(),
                engine: settings.engine,
            };
            Arc::new(PostgresBackend::connect(&s, keys).await?)
        } else {
            return Err(StoreError::invalid(
                "DATABASE_URL",
                "must start with sqlite: or postgres:// (for example sqlite://flowstore.db)",
            ));
        };
        Ok(Store { backend })
    }

    /// Which database this store uses.
    pub fn kind(&self) -> BackendKind {
        self.backend.kind()
    }

    /// The backend, for migrations and operations.
    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// The backend, shared: what the HTTP server holds.
    pub fn backend_arc(&self) -> Arc<dyn Backend> {
        self.backend.clone()
    }

    /// Opens a transaction that may write.
    pub async fn begin(&self) -> StoreResult<Box<dyn Tx>> {
        self.backend.begin().await
    }

    /// Opens a write transaction for a worker transition (claim, heartbeat, complete,
    /// fail, reaping); see [`Backend::begin_transition`].
    pub async fn begin_transition(&self) -> StoreResult<Box<dyn Tx>> {
        self.backend.begin_transition().await
    }

    /// Opens a transaction for reads.
    pub async fn begin_read(&self) -> StoreResult<Box<dyn Tx>> {
        self.backend.begin_read().await
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.backend.close().await
    }
}

//! Databases made for one test.
//!
//! SQLite: a new file in a temporary directory, removed with it. PostgreSQL: a new
//! database on the server whose admin URL is `FLOWSTORE_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), named with the prefix in
//! `FLOWSTORE_TEST_DB_PREFIX` (default `fs_test_`) and a random part, and dropped
//! (`WITH (FORCE)`, on a thread of its own) when its [`PgDatabase`] is dropped, which
//! is when the test ends, passed or failed. When that server cannot be reached the
//! test fails with a message saying so: it never passes without running.

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flowstore::config::Settings;
use flowstore::Store;
use flowstore_core::crypto::{Key, Keyring};
use flowstore_core::store::KeySource;
use flowstore_core::Backend;
use flowstore_postgres::{PgSettings, Pooler, PostgresBackend};
use flowstore_sqlite::{SqliteBackend, SqliteSettings};
use sqlx::Connection;

/// The encryption key of every test database.
pub const ENCRYPTION_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// The admin URL of the PostgreSQL server used by the tests.
pub fn pg_admin_url() -> String {
    std::env::var("FLOWSTORE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// The prefix of this run's database names. `scripts/test.sh` gives each run one of
/// its own and drops only the databases with it, so two runs on one server never
/// touch each other's databases.
fn db_prefix() -> String {
    std::env::var("FLOWSTORE_TEST_DB_PREFIX")
        .ok()
        .filter(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
        .unwrap_or_else(|| "fs_test_".to_string())
}

/// The directory of the tests' key files and of anything else they share.
fn shared_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("flowstore-tests");
    std::fs::create_dir_all(&dir).expect("temporary directory is writable");
    dir
}

async fn admin_connection(admin: &str) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(admin).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is required for these tests and could not be reached at {admin}: {e}. \
             Run the tests with scripts/test.sh, which starts a throwaway server when none is running."
        )
    })
}

/// An empty PostgreSQL database made for one test; dropped with this value.
pub struct PgDatabase {
    name: String,
    url: String,
    admin: String,
}

impl PgDatabase {
    /// Creates the database (an empty one: no migrations).
    pub async fn create() -> PgDatabase {
        let admin = pg_admin_url();
        let mut conn = admin_connection(&admin).await;
        let name = format!("{}{}", db_prefix(), uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("the test role may create databases");
        let _ = conn.close().await;
        let mut url = url::Url::parse(&admin).expect("FLOWSTORE_TEST_PG is a URL");
        url.set_path(&name);
        PgDatabase {
            name,
            url: url.to_string(),
            admin,
        }
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // On a thread of its own with its own runtime: a drop may happen inside the
        // test's runtime (which must not block on itself) or outside any runtime.
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = conn.close().await;
                Ok(())
            })
        })
        .join()
        .unwrap_or_else(|_| Err("the dropping thread panicked".into()));
        if let Err(e) = dropped {
            if !std::thread::panicking() {
                panic!("the test database {} could not be dropped: {e}", self.name);
            }
        }
    }
}

/// A SQLite file in a temporary directory of its own, removed with this value.
pub struct SqliteDatabase {
    url: String,
    _dir: tempfile::TempDir,
}

impl SqliteDatabase {
    /// Names a new file (SQLite creates it when it is opened with `create`).
    pub fn create() -> SqliteDatabase {
        let dir = tempfile::Builder::new()
            .prefix("flowstore-test-")
            .tempdir()
            .expect("temporary directory is writable");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        SqliteDatabase { url, _dir: dir }
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// A database of either backend made for one test.
pub enum TestDb {
    Sqlite(SqliteDatabase),
    Postgres(PgDatabase),
    /// A PostgreSQL database reached through a PgBouncer of its own.
    Pooled(PooledDatabase),
}

/// A PostgreSQL database and the PgBouncer in front of it, in one pooling mode.
pub struct PooledDatabase {
    /// Declared first: the bouncer stops before the database is dropped.
    bouncer: crate::pooler::Bouncer,
    database: PgDatabase,
    url: String,
    mode: Pooler,
}

impl PooledDatabase {
    /// A new database behind a new bouncer pooling in `mode`.
    pub async fn create(mode: Pooler) -> PooledDatabase {
        let database = PgDatabase::create().await;
        // Starting it waits for its port: on a thread that may block.
        let admin = pg_admin_url();
        let bouncer =
            tokio::task::spawn_blocking(move || crate::pooler::Bouncer::start(mode, &admin))
                .await
                .expect("pgbouncer starts");
        let url = bouncer.url_for(database.url());
        PooledDatabase {
            bouncer,
            database,
            url,
            mode,
        }
    }

    /// The URL through the bouncer.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of the database itself, without the bouncer.
    pub fn direct_url(&self) -> &str {
        self.database.url()
    }

    /// The pooling mode.
    pub fn mode(&self) -> Pooler {
        self.mode
    }

    /// The bouncer, to reach another database through it.
    pub fn bouncer(&self) -> &crate::pooler::Bouncer {
        &self.bouncer
    }
}

fn keys() -> Arc<KeySource> {
    Arc::new(KeySource::given(Keyring::new(
        Key::parse(ENCRYPTION_KEY).unwrap(),
    )))
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        TestDb::Sqlite(SqliteDatabase::create())
    }

    pub async fn postgres() -> TestDb {
        TestDb::Postgres(PgDatabase::create().await)
    }

    /// A PostgreSQL database reached through PgBouncer in transaction pooling mode,
    /// with the direct URL for migrations and `LISTEN`.
    pub async fn pgbouncer() -> TestDb {
        TestDb::Pooled(PooledDatabase::create(Pooler::Transaction).await)
    }

    /// A new database of the same backend as this one.
    pub async fn another(&self) -> TestDb {
        match self {
            TestDb::Sqlite(_) => TestDb::sqlite().await,
            TestDb::Postgres(_) => TestDb::postgres().await,
            TestDb::Pooled(d) => TestDb::Pooled(PooledDatabase::create(d.mode()).await),
        }
    }

    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite(d) => d.url(),
            TestDb::Postgres(d) => d.url(),
            TestDb::Pooled(d) => d.url(),
        }
    }

    /// The settings a test store opens this database with.
    pub fn settings(&self) -> Settings {
        Settings {
            database_url: self.url().to_string(),
            pool_max: 8,
            key_file: shared_dir().join("test.key"),
            encryption_key: Some(ENCRYPTION_KEY.into()),
            pooler: match self {
                TestDb::Pooled(d) => d.mode(),
                _ => Pooler::None,
            },
            direct_url: match self {
                TestDb::Pooled(d) => Some(d.direct_url().to_string()),
                _ => None,
            },
            ..Settings::default()
        }
    }

    /// A migrated [`Store`] on this database, opened with the tests' settings as
    /// `adjust` changes them.
    pub async fn store_with(&self, adjust: impl FnOnce(&mut Settings)) -> Store {
        let mut settings = self.settings();
        adjust(&mut settings);
        let store = Store::connect(&settings)
            .await
            .expect("test database opens");
        store
            .backend()
            .migrate_up(None)
            .await
            .expect("migrations apply");
        store
    }

    /// A migrated [`Store`] on this database (`flowstore::Store::connect`).
    pub async fn store(&self) -> Store {
        self.store_with(|_| {}).await
    }

    /// A migrated backend on this PostgreSQL database whose lagging reads go to
    /// `read_url` (a replica, or what a test makes stand for one).
    pub async fn backend_reading(&self, read_url: &str) -> Arc<dyn Backend> {
        let s = PgSettings {
            url: self.url().to_string(),
            read_url: Some(read_url.to_string()),
            max_connections: 6,
            connect_timeout: Duration::from_secs(2),
            ..PgSettings::default()
        };
        let b: Arc<dyn Backend> = Arc::new(PostgresBackend::connect(&s, keys()).await.unwrap());
        b.migrate_up(None).await.expect("migrations apply");
        b
    }

    /// A migrated backend on this database, opened directly with the settings of
    /// the server's tests.
    pub async fn backend(&self) -> Arc<dyn Backend> {
        let b: Arc<dyn Backend> = match self {
            TestDb::Sqlite(d) => {
                let s = SqliteSettings {
                    url: d.url().to_string(),
                    max_connections: 8,
                    min_connections: 0,
                    busy_timeout: Duration::from_secs(5),
                    idle_timeout: Duration::from_secs(60),
                    create: true,
                    ..SqliteSettings::default()
                };
                Arc::new(SqliteBackend::connect(&s, keys()).await.unwrap())
            }
            TestDb::Postgres(_) | TestDb::Pooled(_) => {
                let (pooler, direct_url) = match self {
                    TestDb::Pooled(d) => (d.mode(), Some(d.direct_url().to_string())),
                    _ => (Pooler::None, None),
                };
                let s = PgSettings {
                    url: self.url().to_string(),
                    pooler,
                    direct_url,
                    max_connections: 8,
                    min_connections: 0,
                    connect_timeout: Duration::from_secs(5),
                    idle_timeout: Duration::from_secs(60),
                    statement_timeout: Duration::from_secs(30),
                    application_name: "flowstore-server-tests".into(),
                    log_statements: false,
                    ..PgSettings::default()
                };
                Arc::new(PostgresBackend::connect(&s, keys()).await.unwrap())
            }
        };
        b.migrate_up(None).await.expect("migrations apply");
        b
    }
}

/// A migrated store and the database under it: the database goes when this does.
/// Dereferences to the [`Store`]; [`TestStore::store`] is a handle to pass on (a
/// clone), valid while this lives.
pub struct TestStore {
    store: Store,
    db: TestDb,
}

impl TestStore {
    pub async fn sqlite() -> TestStore {
        TestStore::on(TestDb::sqlite().await).await
    }

    pub async fn postgres() -> TestStore {
        TestStore::on(TestDb::postgres().await).await
    }

    /// A new store on the same backend as this one.
    pub async fn another(&self) -> TestStore {
        TestStore::on(self.db.another().await).await
    }

    /// A migrated store on `db`.
    pub async fn on(db: TestDb) -> TestStore {
        TestStore {
            store: db.store().await,
            db,
        }
    }

    /// A handle on the store (valid while this lives).
    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        self.db.url()
    }

    /// The database.
    pub fn db(&self) -> &TestDb {
        &self.db
    }
}

impl Deref for TestStore {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.store
    }
}

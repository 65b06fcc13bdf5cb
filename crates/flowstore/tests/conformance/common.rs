//! Fresh databases for the conformance suite.
//!
//! SQLite tests get a new file in a temporary directory. PostgreSQL tests get a new
//! database on the server named by `FLOWSTORE_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); when that server cannot be reached
//! the test fails with a message saying so. It never passes without running.

use flowstore::config::Settings;
use flowstore::Store;

/// A migrated store on a new SQLite file.
pub async fn sqlite() -> Store {
    let dir = std::env::temp_dir().join("flowstore-tests");
    std::fs::create_dir_all(&dir).expect("temporary directory is writable");
    let path = dir.join(format!("{}.db", uuid::Uuid::new_v4().simple()));
    open(format!("sqlite://{}", path.display()), &dir).await
}

/// The admin URL of the PostgreSQL server used by the tests.
pub fn pg_admin_url() -> String {
    std::env::var("FLOWSTORE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A migrated store on a new PostgreSQL database (left for `scripts/test.sh` to drop;
/// the `conformance!` tests drop theirs).
#[allow(dead_code)] // the conformance binary uses postgres_named; the others this
pub async fn postgres() -> Store {
    postgres_named().await.0
}

/// A migrated store on a new PostgreSQL database, and that database's URL (for
/// [`drop_pg_database`] when the test is over).
pub async fn postgres_named() -> (Store, String) {
    let url = fresh_pg_database().await;
    let store = open(url.clone(), &std::env::temp_dir().join("flowstore-tests")).await;
    (store, url)
}

/// Drops the database a test made (its connections are ended first). A test that
/// fails leaves its database to `scripts/test.sh`, which drops what its run made.
pub async fn drop_pg_database(url: &str) {
    use sqlx::Connection;
    let name = url::Url::parse(url)
        .expect("a test database URL")
        .path()
        .trim_start_matches('/')
        .to_string();
    let mut conn = sqlx::PgConnection::connect(&pg_admin_url())
        .await
        .expect("the test server answers");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .expect("the test role drops what it made");
    let _ = conn.close().await;
}

/// Creates an empty PostgreSQL database and returns its URL.
pub async fn fresh_pg_database() -> String {
    use sqlx::Connection;
    let admin = pg_admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is required for the conformance suite and could not be reached at {admin}: {e}. \
             Run the tests with scripts/test.sh, which starts a throwaway server when none is running."
        )
    });
    // scripts/test.sh gives each run a prefix of its own, and drops only the
    // databases with that prefix, so two runs on one server never touch each
    // other's databases.
    let prefix = std::env::var("FLOWSTORE_TEST_DB_PREFIX")
        .ok()
        .filter(|p| {
            p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
        .unwrap_or_else(|| "fs_test_".to_string());
    let name = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("the test role may create databases");
    let _ = conn.close().await;
    let mut url = url::Url::parse(&admin).expect("FLOWSTORE_TEST_PG is a URL");
    url.set_path(&name);
    url.to_string()
}

async fn open(url: String, key_dir: &std::path::Path) -> Store {
    let settings = Settings {
        database_url: url,
        pool_max: 8,
        key_file: key_dir.join("test.key"),
        encryption_key: Some(
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff".into(),
        ),
        ..Settings::default()
    };
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

/// Declares each named `async fn(Store)` as a test on SQLite and on PostgreSQL.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, url) = $crate::common::postgres_named().await;
                    super::$name(store).await;
                    $crate::common::drop_pg_database(&url).await;
                }
            )*
        }
    };
}

/// Asserts that a result is the storage error variant given, naming `field`.
#[allow(unused_macros)]
macro_rules! assert_err {
    ($result:expr, $variant:ident, $field:expr) => {{
        match $result {
            Err(flowstore::StoreError::$variant { ref field, .. }) => {
                assert_eq!(field, $field, "error names the field at fault");
            }
            other => panic!(
                "expected {} on {:?}, got {:?}",
                stringify!($variant),
                $field,
                other
            ),
        }
    }};
    ($result:expr, NotFound) => {{
        match $result {
            Err(flowstore::StoreError::NotFound { .. }) => {}
            other => panic!("expected NotFound, got {:?}", other),
        }
    }};
}

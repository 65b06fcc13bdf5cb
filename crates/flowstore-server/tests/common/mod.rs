//! Fresh databases and an in-process client for the server's tests.
//!
//! Adapted from `crates/flowstore/tests/conformance/common.rs`: SQLite tests get a
//! new file; PostgreSQL tests get a new database on `FLOWSTORE_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and fail loudly when it cannot be
//! reached. The backends are opened directly (as `flowstore::Store::connect` does),
//! which keeps this crate's tests free of a dependency cycle on `flowstore`.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use flowstore_core::crypto::{Key, Keyring};
use flowstore_core::model::identity::Role;
use flowstore_core::model::identity_access::NewApiKey;
use flowstore_core::store::KeySource;
use flowstore_core::Backend;
use flowstore_postgres::{PgSettings, PostgresBackend};
use flowstore_server::{app, AppState};
use flowstore_sqlite::{SqliteBackend, SqliteSettings};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn keys() -> Arc<KeySource> {
    Arc::new(KeySource::given(Keyring::new(Key::parse(KEY).unwrap())))
}

/// A migrated backend on a new SQLite file.
pub async fn sqlite() -> Arc<dyn Backend> {
    let dir = std::env::temp_dir().join("flowstore-tests");
    std::fs::create_dir_all(&dir).expect("temporary directory is writable");
    let path = dir.join(format!("{}.db", uuid::Uuid::new_v4().simple()));
    let s = SqliteSettings {
        url: format!("sqlite://{}", path.display()),
        max_connections: 8,
        min_connections: 0,
        busy_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(60),
        create: true,
        ..SqliteSettings::default()
    };
    let b: Arc<dyn Backend> = Arc::new(SqliteBackend::connect(&s, keys()).await.unwrap());
    b.migrate_up(None).await.expect("migrations apply");
    b
}

/// The admin URL of the PostgreSQL server used by the tests.
pub fn pg_admin_url() -> String {
    std::env::var("FLOWSTORE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A migrated backend on a new PostgreSQL database.
pub async fn postgres() -> Arc<dyn Backend> {
    postgres_named().await.0
}

/// A migrated backend on a new PostgreSQL database, and that database's name (for
/// [`drop_pg_database`] when the test is over).
pub async fn postgres_named() -> (Arc<dyn Backend>, String) {
    use sqlx::Connection;
    let admin = pg_admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is required for these tests and could not be reached at {admin}: {e}. \
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
    let s = PgSettings {
        url: url.to_string(),
        require_tls: false,
        max_connections: 8,
        min_connections: 0,
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(60),
        statement_timeout: Duration::from_secs(30),
        application_name: "flowstore-server-tests".into(),
        log_statements: false,
        ..PgSettings::default()
    };
    let b: Arc<dyn Backend> = Arc::new(PostgresBackend::connect(&s, keys()).await.unwrap());
    b.migrate_up(None).await.expect("migrations apply");
    (b, name)
}

/// Drops the database a test made (its connections are ended first). A test that
/// fails leaves its database to `scripts/test.sh`, which drops what its run made.
pub async fn drop_pg_database(name: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&pg_admin_url())
        .await
        .expect("the test server answers");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .expect("the test role drops what it made");
    let _ = conn.close().await;
}

/// Creates an API key with `role` directly in the database.
pub async fn key(backend: &Arc<dyn Backend>, role: Role) -> String {
    let mut tx = backend.begin().await.unwrap();
    let k = tx
        .create_api_key(NewApiKey {
            name: format!("test {role}"),
            role: Some(role),
            ..NewApiKey::default()
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    k.key.expose().to_string()
}

/// An in-process client of the router.
pub struct Client {
    pub router: Router,
    pub state: AppState,
    pub backend: Arc<dyn Backend>,
    pub admin: String,
    pub user: String,
    pub viewer: String,
}

/// An answer: status, headers and the body parsed as JSON (`Null` when empty).
pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub content_type: String,
    pub body: Value,
}

impl Client {
    pub async fn new(backend: Arc<dyn Backend>) -> Client {
        let state = AppState::new(backend.clone());
        Client {
            router: app(state.clone()),
            state,
            admin: key(&backend, Role::Admin).await,
            user: key(&backend, Role::User).await,
            viewer: key(&backend, Role::Viewer).await,
            backend,
        }
    }

    /// Sends a request with `key` (none when `None`) and a raw body.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b)
            }
            None => Body::empty(),
        };
        let res = self
            .router
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let content_type = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Answer {
            status,
            headers,
            content_type,
            body,
        }
    }

    /// Sends JSON with `key`.
    pub async fn call(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> Answer {
        self.raw(
            method,
            path,
            Some(key),
            body.map(|b| serde_json::to_vec(&b).unwrap()),
        )
        .await
    }
}

/// Calls the API and checks the status is `want` (and an error is problem+json);
/// returns the body.
pub async fn ok(
    c: &Client,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
    want: u16,
) -> Value {
    let r = c.call(method, path, key, body).await;
    assert_eq!(r.status.as_u16(), want, "{method} {path}: {}", r.body);
    if want >= 400 {
        assert!(
            r.content_type.starts_with("application/problem+json"),
            "{method} {path}"
        );
    }
    r.body
}

/// Declares each named `async fn(Arc<dyn Backend>)` as a test on both backends.
macro_rules! both_backends {
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
                    let (backend, name) = $crate::common::postgres_named().await;
                    super::$name(backend).await;
                    $crate::common::drop_pg_database(&name).await;
                }
            )*
        }
    };
}

/// Creates a user with `role` and a key of that role acting for them: (user ID, key).
pub async fn user_key(backend: &Arc<dyn Backend>, role: Role, email: &str) -> (String, String) {
    use flowstore_core::model::identity::NewUser;
    let mut tx = backend.begin().await.unwrap();
    let u = tx
        .create_user(NewUser {
            email: email.to_string(),
            role: Some(role),
            ..NewUser::default()
        })
        .await
        .unwrap();
    let k = tx
        .create_api_key(NewApiKey {
            name: format!("{email} {role}"),
            role: Some(role),
            user_id: Some(u.id),
            ..NewApiKey::default()
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (u.id.to_string(), k.key.expose().to_string())
}

//! Database settings on both backends: TLS to PostgreSQL (and its refusal with a
//! SQLite URL), and the slow-statement report. The TLS cluster tests start a
//! PostgreSQL of their own that speaks TLS (`flowstore_testkit::tls`).

use std::time::Duration;

use flowstore::config::Settings;
use flowstore::{Store, StoreError};
use flowstore_core::slow;
use flowstore_postgres::{SslMode, TlsSettings};
use flowstore_testkit::fixtures::execute;
use flowstore_testkit::{record_slow_statements, tls, TestDb};

per_database!(
    tls_modes_that_ask_for_no_tls_connect,
    tls_verification_never_falls_back_to_plain,
    slow_statements_are_counted_listed_and_written_down,
);

/// The tests' settings for `url`, with `tls`.
fn with_tls(url: &str, tls: TlsSettings) -> Settings {
    Settings {
        database_url: url.to_string(),
        encryption_key: Some(flowstore_testkit::ENCRYPTION_KEY.into()),
        tls,
        ..Settings::default()
    }
}

fn mode(m: SslMode) -> TlsSettings {
    TlsSettings {
        mode: Some(m),
        ..Default::default()
    }
}

/// `disable` and `prefer` connect to the tests' PostgreSQL (which has no TLS) and
/// are accepted, as meaningless, with a SQLite URL.
async fn tls_modes_that_ask_for_no_tls_connect(url: String) {
    let plain = [
        mode(SslMode::Disable),
        mode(SslMode::Prefer),
        TlsSettings {
            ssl: Some(false),
            reject_unauthorized: Some(true),
            ..Default::default()
        },
    ];
    for tls in plain {
        let store = Store::connect(&with_tls(&url, tls.clone()))
            .await
            .unwrap_or_else(|e| panic!("{tls:?} connects: {e}"));
        store.backend().migrate_up(None).await.unwrap();
        assert_eq!(execute(&store, "DELETE FROM projects").await, 0);
        store.close().await;
    }
}

/// verify-ca and verify-full with the test CA against the tests' PostgreSQL (which
/// offers no TLS, or a certificate the test CA did not sign) fail with an error
/// naming the setting and the mode, never connecting unverified; with a SQLite URL
/// they are refused (there is no connection to protect). The TLS cluster test
/// checks a server without TLS for certain.
async fn tls_verification_never_falls_back_to_plain(url: String) {
    for m in [SslMode::VerifyCa, SslMode::VerifyFull] {
        let tls = TlsSettings {
            root_cert: Some(tls::ca_file()),
            ..mode(m)
        };
        let e = Store::connect(&with_tls(&url, tls))
            .await
            .expect_err("nothing the test CA signed: no connection");
        let message = e.to_string();
        assert!(message.contains(m.as_str()), "{message}");
        assert_err!(Err::<(), _>(e), Invalid, "DB_SSL_MODE");
    }
    let e = Store::connect(&with_tls(
        &url,
        TlsSettings {
            ssl: Some(false),
            mode: Some(SslMode::VerifyFull),
            ..Default::default()
        },
    ))
    .await
    .expect_err("DB_SSL=false contradicts verify-full");
    assert_err!(Err::<(), _>(e), Invalid, "DB_SSL");
}

/// A statement over the threshold is counted (`flowstore_slow_queries_total`),
/// listed by the process with its normalised text, written down by `slow::flush`
/// and listed from the database by `slow::recorded` (what `flowstore stats` shows).
async fn slow_statements_are_counted_listed_and_written_down(url: String) {
    record_slow_statements();
    slow::keep_for_flush();
    let settings = Settings {
        slow_query_threshold: Some(Duration::from_millis(1)),
        ..with_tls(&url, TlsSettings::default())
    };
    let store = Store::connect(&settings).await.unwrap();
    store.backend().migrate_up(None).await.unwrap();
    let since = flowstore::time::now();
    let before = slow::total();
    // A million steps of a recursive CTE: well over a millisecond on either
    // database. The alias tells this test's statement from any other's.
    let alias = format!("slow_{}", uuid::Uuid::new_v4().simple());
    let sql = format!(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) \
         SELECT count(*) AS {alias} FROM c"
    );
    execute(&store, &sql).await;
    let normalised = format!(
        "WITH RECURSIVE c(x) AS (SELECT ? UNION ALL SELECT x + ? FROM c WHERE x < ?) \
         SELECT count(*) AS {alias} FROM c"
    );
    assert!(slow::total() > before, "the slow statement is counted");
    let listed = slow::slowest(usize::MAX)
        .into_iter()
        .find(|s| s.query == normalised)
        .unwrap_or_else(|| panic!("{normalised} is listed: {:?}", slow::slowest(20)));
    assert_eq!(listed.calls, 1);
    assert!(listed.max_ms.is_some_and(|ms| ms > 0.0) && listed.total_ms > 0.0);
    let recorded = slow::recorded(store.backend(), since, usize::MAX)
        .await
        .unwrap();
    let row = recorded
        .iter()
        .find(|s| s.query == normalised)
        .unwrap_or_else(|| panic!("{normalised} is written down: {recorded:?}"));
    assert_eq!(row.calls, 1);
    store.close().await;
}

/// With the report off (`FLOWSTORE_SLOW_QUERY_MS=off`) nothing is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_statements_off_records_nothing() {
    record_slow_statements();
    let db = TestDb::sqlite().await;
    let settings = Settings {
        slow_query_threshold: flowstore::config::parse_threshold("FLOWSTORE_SLOW_QUERY_MS", "off")
            .unwrap(),
        ..with_tls(db.url(), TlsSettings::default())
    };
    assert_eq!(settings.slow_query_threshold, None);
    let store = Store::connect(&settings).await.unwrap();
    let alias = format!("unreported_{}", uuid::Uuid::new_v4().simple());
    execute(
        &store,
        &format!(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) \
             SELECT count(*) AS {alias} FROM c"
        ),
    )
    .await;
    assert!(
        !slow::slowest(usize::MAX)
            .iter()
            .any(|s| s.query.contains(&alias)),
        "nothing is recorded with the report off"
    );
    store.close().await;
}

/// A CA file that does not exist is named, with its setting, before any attempt to
/// connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_ca_file_is_named() {
    let db = TestDb::postgres().await;
    let missing = "/nonexistent/flowstore-test-ca.pem";
    let e = Store::connect(&with_tls(
        db.url(),
        TlsSettings {
            root_cert: Some(missing.into()),
            ..mode(SslMode::VerifyFull)
        },
    ))
    .await
    .expect_err("the CA file is missing");
    assert!(e.to_string().contains(missing), "{e}");
    assert_err!(Err::<(), _>(e), Invalid, "DB_SSL_CA");
    // In the URL, it is the URL that is named.
    let url = format!("{}?sslmode=verify-ca&sslrootcert={missing}", db.url());
    let e = Store::connect(&with_tls(&url, TlsSettings::default()))
        .await
        .expect_err("the CA file is missing");
    assert!(e.to_string().contains(missing), "{e}");
    assert_err!(Err::<(), _>(e), Invalid, "DATABASE_URL");
}

/// Against a PostgreSQL that speaks TLS with a certificate for `localhost` signed
/// by the test CA: verify-full connects with that CA and not with another, nor to
/// an address the certificate is not for; verify-ca checks the chain;
/// `DB_SSL=true` verifies (against the public roots, which do not know the test CA)
/// unless `DB_SSL_REJECT_UNAUTHORIZED=false`. Restarted without TLS, the same
/// server refuses verify-full (no fallback to plain) and takes `prefer`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_needs_the_right_ca_and_host() {
    let server = tokio::task::spawn_blocking(tls::TlsPostgres::start)
        .await
        .unwrap();
    let connects = |url: String, tls: TlsSettings| async move {
        let store = Store::connect(&with_tls(&url, tls)).await?;
        store.backend().migrate_up(None).await?;
        store.close().await;
        Ok::<(), StoreError>(())
    };
    let verify = |m: SslMode, ca: std::path::PathBuf| TlsSettings {
        root_cert: Some(ca),
        ..mode(m)
    };
    connects(
        server.url("localhost"),
        verify(SslMode::VerifyFull, tls::ca_file()),
    )
    .await
    .expect("verify-full with the CA that signed the certificate connects");
    let e = connects(
        server.url("localhost"),
        verify(SslMode::VerifyFull, tls::other_ca_file()),
    )
    .await
    .expect_err("another CA does not verify the certificate");
    assert!(e.to_string().contains("verify-full"), "{e}");
    assert_err!(Err::<(), _>(e), Invalid, "DB_SSL_MODE");
    let e = connects(
        server.url("127.0.0.1"),
        verify(SslMode::VerifyFull, tls::ca_file()),
    )
    .await
    .expect_err("the certificate is not for 127.0.0.1");
    assert_err!(Err::<(), _>(e), Invalid, "DB_SSL_MODE");
    // verify-ca checks the chain: the right CA connects, another does not. (It
    // should also take an address the certificate is not for, as libpq's does;
    // sqlx 0.8.6 with rustls 0.23.24+ checks the name too, sqlx issue #3793, so
    // that case is not tested here: it fails closed.)
    connects(
        server.url("localhost"),
        verify(SslMode::VerifyCa, tls::ca_file()),
    )
    .await
    .expect("verify-ca with the CA that signed the certificate connects");
    let e = connects(
        server.url("localhost"),
        verify(SslMode::VerifyCa, tls::other_ca_file()),
    )
    .await
    .expect_err("verify-ca checks the chain");
    assert!(e.to_string().contains("verify-ca"), "{e}");
    assert_err!(Err::<(), _>(e), Invalid, "DB_SSL_MODE");
    // The URL's own parameters do the same.
    connects(
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            server.url("localhost"),
            tls::ca_file().display()
        ),
        TlsSettings::default(),
    )
    .await
    .expect("sslmode and sslrootcert in the URL verify");
    let e = connects(
        server.url("localhost"),
        TlsSettings {
            ssl: Some(true),
            ..Default::default()
        },
    )
    .await
    .expect_err("DB_SSL=true verifies, and no public CA signed the test certificate");
    assert_err!(Err::<(), _>(e), Invalid, "DB_SSL");
    connects(
        server.url("127.0.0.1"),
        TlsSettings {
            ssl: Some(true),
            reject_unauthorized: Some(false),
            ..Default::default()
        },
    )
    .await
    .expect("DB_SSL_REJECT_UNAUTHORIZED=false takes any certificate");
    let server = tokio::task::spawn_blocking(move || {
        server.restart_without_tls();
        server
    })
    .await
    .unwrap();
    let e = connects(
        server.url("localhost"),
        verify(SslMode::VerifyFull, tls::ca_file()),
    )
    .await
    .expect_err("a server without TLS is refused");
    let message = e.to_string();
    assert!(
        message.contains("verify-full") && message.contains("does not support TLS"),
        "{message}"
    );
    assert_err!(Err::<(), _>(e), Invalid, "DB_SSL_MODE");
    for m in [SslMode::Prefer, SslMode::Disable] {
        connects(server.url("localhost"), mode(m))
            .await
            .unwrap_or_else(|e| panic!("{m} connects without TLS: {e}"));
    }
    tokio::task::spawn_blocking(move || drop(server))
        .await
        .unwrap();
}

/// Behind PgBouncer (session and transaction pooling) the session settings still
/// hold: a transaction waiting on a row lock gives up after `lock_timeout` as it
/// does on a direct connection, instead of waiting for ever as it would if the
/// setting were lost (a pooler refuses or drops startup options).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooler_keeps_the_session_settings() {
    use flowstore_core::model::project::{NewProject, ProjectPatch};
    use flowstore_postgres::Pooler;
    use flowstore_testkit::db::PooledDatabase;

    for mode in [Pooler::Session, Pooler::Transaction] {
        let db = PooledDatabase::create(mode).await;
        let settings = Settings {
            database_url: db.url().to_string(),
            pooler: mode,
            direct_url: Some(db.direct_url().to_string()),
            lock_timeout: Duration::from_millis(300),
            encryption_key: Some(flowstore_testkit::ENCRYPTION_KEY.into()),
            ..Settings::default()
        };
        let store = Store::connect(&settings).await.unwrap();
        store.backend().migrate_up(None).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        let project = tx
            .create_project(NewProject {
                name: format!("locked {mode:?}"),
                ..NewProject::default()
            })
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let rename = |name: &str| ProjectPatch {
            name: Some(name.to_string()),
            ..ProjectPatch::default()
        };
        let mut holder = store.begin().await.unwrap();
        holder
            .update_project(project.id, rename("held"))
            .await
            .unwrap();
        let mut waiter = store.begin().await.unwrap();
        let started = std::time::Instant::now();
        let waited = tokio::time::timeout(
            Duration::from_secs(20),
            waiter.update_project(project.id, rename("waited")),
        )
        .await
        .unwrap_or_else(|_| panic!("{mode:?}: lock_timeout was lost: the update still waits"));
        assert!(
            matches!(waited, Err(StoreError::TimedOut(_))),
            "{mode:?}: {waited:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10), "{mode:?}");
        drop(waiter);
        holder.commit().await.unwrap();
        store.close().await;
    }
}

/// A transaction pooler without a direct URL is refused, naming the setting; the
/// pooler settings are refused with a SQLite URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooler_settings_are_checked() {
    use flowstore_postgres::Pooler;
    let db = TestDb::postgres().await;
    let settings = Settings {
        pooler: Pooler::Transaction,
        ..db.settings()
    };
    let Err(e) = Store::connect(&settings).await else {
        panic!("a transaction pooler without a direct URL is refused")
    };
    assert_err!(Err::<(), _>(e), Invalid, "DATABASE_DIRECT_URL");
    let sqlite = TestDb::sqlite().await;
    for (setting, adjusted) in [
        (
            "DB_POOLER",
            Settings {
                pooler: Pooler::Session,
                ..sqlite.settings()
            },
        ),
        (
            "DATABASE_READ_URL",
            Settings {
                read_url: Some(db.url().to_string()),
                ..sqlite.settings()
            },
        ),
    ] {
        let Err(e) = Store::connect(&adjusted).await else {
            panic!("{setting} is refused with a SQLite URL")
        };
        assert_err!(Err::<(), _>(e), Invalid, setting);
    }
}

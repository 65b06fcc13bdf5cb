//! The per-backend test macros. A test body is an `async fn` over what a backend
//! gives (a [`flowstore::Store`], an `Arc<dyn Backend>` or a database URL); the
//! macro declares it once
//! in a module `sqlite` and once in a module `postgres`, each test on a database of
//! its own that is dropped when the test ends.

/// Declares each named `async fn(store: Store)` as a test on SQLite, on PostgreSQL
/// and on PostgreSQL through PgBouncer in transaction pooling mode (modules
/// `sqlite`, `postgres` and `pgbouncer` of the calling module).
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $crate::__per_backend!(pooled; db => db.store().await; $($name),*);
    };
}

/// Declares each named `async fn(backend: Arc<dyn Backend>)` as a test on SQLite and
/// on PostgreSQL (modules `sqlite` and `postgres` of the calling module).
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $crate::__per_backend!(db => db.backend().await; $($name),*);
    };
}

/// Declares each named `async fn(url: String)` as a test on a new SQLite file and on
/// a new PostgreSQL database (empty: no migrations), for tests of the binary and of
/// opening a database (modules `sqlite` and `postgres` of the calling module).
#[macro_export]
macro_rules! per_database {
    ($($name:ident),* $(,)?) => {
        $crate::__per_backend!(db => db.url().to_string(); $($name),*);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __per_backend {
    // With `pooled;`, also a module `pgbouncer`: PostgreSQL through PgBouncer in
    // transaction pooling mode.
    (pooled; $db:ident => $arg:expr; $($name:ident),*) => {
        $crate::__per_backend!($db => $arg; $($name),*);
        mod pgbouncer {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $db = $crate::TestDb::pgbouncer().await;
                    super::$name($arg).await;
                }
            )*
        }
    };
    ($db:ident => $arg:expr; $($name:ident),*) => {
        mod sqlite {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $db = $crate::TestDb::sqlite().await;
                    super::$name($arg).await;
                }
            )*
        }
        mod postgres {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $db = $crate::TestDb::postgres().await;
                    super::$name($arg).await;
                }
            )*
        }
    };
}

/// Asserts that a result is the storage error variant given, naming `field`.
#[macro_export]
macro_rules! assert_err {
    ($result:expr, $variant:ident, $field:expr) => {{
        match $result {
            Err($crate::reexport::StoreError::$variant { ref field, .. }) => {
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
            Err($crate::reexport::StoreError::NotFound { .. }) => {}
            other => panic!("expected NotFound, got {:?}", other),
        }
    }};
}

/// Declares tests of an `async fn(source: Store, target: Store)` on two new stores of
/// the backends named: `test_name: body(sqlite, postgres);`.
#[macro_export]
macro_rules! two_stores {
    ($($test:ident: $body:ident($from:ident, $to:ident);)*) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let (a, b) = ($crate::TestStore::$from().await, $crate::TestStore::$to().await);
                $body(a.store(), b.store()).await;
            }
        )*
    };
}

/// Sends each request of the list through a [`crate::TestApp`] and asserts its status
/// with [`crate::Answer::want`] (an error must be problem+json too), for requests
/// whose answer is only checked, one line each:
/// `METHOD "path" (with BODY)? (by KEY)? => status;`. The path is a `format!`
/// string (it may name variables: `"/api/v1/tasks/{id}"`), BODY a JSON literal or a
/// parenthesised expression, KEY the key to send (none when `by` is left out).
#[macro_export]
macro_rules! requests {
    ($app:expr; $($method:ident $path:literal $(with $body:tt)? $(by $key:expr)? => $status:literal;)*) => {
        $(
            $crate::__caller!($app $(, $key)?)
                .send(stringify!($method), &format!($path), $crate::__body!($($body)?))
                .await
                .want($status);
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __caller {
    ($app:expr) => {
        $app.anonymous()
    };
    ($app:expr, $key:expr) => {
        $app.by(&$key)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __body {
    () => {
        None
    };
    ($body:tt) => {
        Some(::serde_json::json!($body))
    };
}

/// Every item of a keyset-paged list, first page to last, `size` at a time: `$fetch`
/// reads the page `$page` (a `PageRequest`); each page holds at most `size` items.
#[macro_export]
macro_rules! all_pages {
    ($size:expr, |$page:ident| $fetch:expr) => {{
        let size: u32 = $size;
        let mut items = Vec::new();
        let mut $page = $crate::reexport::PageRequest::first(size);
        loop {
            let got = $fetch.await.unwrap();
            assert!(
                got.items.len() <= size as usize,
                "a page holds at most its limit"
            );
            items.extend(got.items);
            match got.next_cursor {
                Some(c) => $page = $crate::reexport::PageRequest::after(c, size),
                None => break,
            }
        }
        items
    }};
}

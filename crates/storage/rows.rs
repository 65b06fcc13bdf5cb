//! The statement shapes every repository repeats, written once: the one row a key
//! names (else `NotFound` naming the object), a delete that must remove one row, the
//! check that a unique value is free, and a page of rows in keyset order. Each takes
//! the statement text from its caller, so the SQL stays where the table is described.

use std::fmt::Display;

use flowstore_core::page::TimeKey;
use flowstore_core::time::Timestamp;
use flowstore_core::{Page, PageRequest, StoreError, StoreResult};
use uuid::Uuid;

use crate::dialect::{ts_opt, Conn, Db};

/// A row as the driver hands it over.
type Row = <Db as sqlx::Database>::Row;

/// The row `statement` finds for `key`, its one parameter (`$1`), else `NotFound`
/// naming `noun` and the key.
pub(crate) async fn one<'q, T, K>(
    conn: &mut Conn,
    statement: &'q str,
    noun: &'static str,
    key: K,
) -> StoreResult<T>
where
    T: for<'r> sqlx::FromRow<'r, Row> + Send + Unpin,
    K: sqlx::Encode<'q, Db> + sqlx::Type<Db> + Send + Copy + Display + 'q,
{
    sqlx::query_as(statement)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::not_found(noun, key))
}

/// Runs the delete `statement` for `key` (`$1`); `NotFound` naming `noun` and the key
/// when it removed nothing.
pub(crate) async fn delete_one<'q, K>(
    conn: &mut Conn,
    statement: &'q str,
    noun: &'static str,
    key: K,
) -> StoreResult<()>
where
    K: sqlx::Encode<'q, Db> + sqlx::Type<Db> + Send + Copy + Display + 'q,
{
    let done = sqlx::query(statement).bind(key).execute(&mut *conn).await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::not_found(noun, key));
    }
    Ok(())
}

/// Refuses `value` (`$2`) when `statement` finds another row holding it in `scope`
/// (`$1`), a row other than `except` (`$3`, NULL for none): a conflict on `field`
/// saying `message`. Repositories check before a UNIQUE constraint would refuse the
/// value, so that both backends name the same field (and NULL scopes, which the
/// constraint cannot see, are held to it too).
pub(crate) async fn ensure_free<'q, S, V, E>(
    conn: &mut Conn,
    statement: &'q str,
    (scope, value, except): (S, V, Option<E>),
    field: &'static str,
    message: impl std::fmt::Display,
) -> StoreResult<()>
where
    S: sqlx::Encode<'q, Db> + sqlx::Type<Db> + Send + 'q,
    V: sqlx::Encode<'q, Db> + sqlx::Type<Db> + Send + 'q,
    E: sqlx::Encode<'q, Db> + sqlx::Type<Db> + Send + 'q,
{
    let taken: Option<i32> = sqlx::query_scalar(statement)
        .bind(scope)
        .bind(value)
        .bind(except)
        .fetch_optional(&mut *conn)
        .await?;
    match taken {
        Some(_) => Err(StoreError::conflict(field, message)),
        None => Ok(()),
    }
}

/// One page of `statement`'s rows, newest id first: the statement reads the cursor's
/// id as `$1` (rows with a smaller id follow it) and one row more than the page
/// holds as `$2`, which tells whether another page follows.
pub(crate) async fn page<T>(
    conn: &mut Conn,
    statement: &str,
    page: &PageRequest,
    id_of: impl Fn(&T) -> Uuid,
) -> StoreResult<Page<T>>
where
    T: for<'r> sqlx::FromRow<'r, Row> + Send + Unpin,
{
    page_with(
        conn,
        statement,
        page,
        |q, after, n| q.bind(after).bind(n),
        id_of,
    )
    .await
}

/// A query whose rows decode as `T`, handed to a caller to bind its parameters.
pub(crate) type QueryAs<'q, T> =
    sqlx::query::QueryAs<'q, Db, T, <Db as sqlx::Database>::Arguments<'q>>;

/// [`page`] of a statement with parameters of its own: `bind` binds them all, in the
/// statement's order, and is handed the two of the page: the cursor's id (rows with
/// a smaller id follow it) and how many rows to read (one more than the page holds,
/// which tells whether another page follows).
pub(crate) async fn page_with<'q, T>(
    conn: &mut Conn,
    statement: &'q str,
    page: &PageRequest,
    bind: impl FnOnce(QueryAs<'q, T>, Option<Uuid>, i64) -> QueryAs<'q, T>,
    id_of: impl Fn(&T) -> Uuid,
) -> StoreResult<Page<T>>
where
    T: for<'r> sqlx::FromRow<'r, Row> + Send + Unpin,
{
    let (limit, after) = page.parts()?;
    let rows: Vec<T> = bind(sqlx::query_as(statement), after, i64::from(limit) + 1)
        .fetch_all(&mut *conn)
        .await?;
    Ok(Page::from_rows(rows, limit, id_of))
}

/// The time and ID after which a time-ordered page starts. A cursor of the ID-only
/// form (issued before the list was ordered by time) gets its row's time from
/// `time_of` (which reads it by ID, `$1`); one whose row is gone is refused, since
/// its place in the order is no longer known.
pub(crate) async fn time_key(
    conn: &mut Conn,
    time_of: &str,
    key: Option<TimeKey>,
) -> StoreResult<Option<(Timestamp, Uuid)>> {
    let Some(key) = key else { return Ok(None) };
    if let Some(at) = key.at {
        return Ok(Some((at, key.id)));
    }
    let at: Option<Timestamp> = sqlx::query_scalar(time_of)
        .bind(key.id)
        .fetch_optional(&mut *conn)
        .await?;
    match at {
        Some(at) => Ok(Some((at, key.id))),
        None => Err(StoreError::invalid(
            "cursor",
            "names a row that no longer exists; start again from the first page",
        )),
    }
}

/// One page of `statement`'s rows, newest first by time, then by ID: the statement
/// reads the cursor's time and ID as `$1` and `$2` (both NULL on the first page;
/// rows before that position follow it, `(time, id) < ($1, $2)`) and one row more
/// than the page holds as `$3`. `time_of` reads a row's time by its ID (see
/// [`time_key`]).
pub(crate) async fn timed_page<T>(
    conn: &mut Conn,
    statement: &str,
    time_of: &str,
    page: &PageRequest,
    key_of: impl Fn(&T) -> (Timestamp, Uuid),
) -> StoreResult<Page<T>>
where
    T: for<'r> sqlx::FromRow<'r, Row> + Send + Unpin,
{
    let (limit, after) = page.time_parts()?;
    let after = time_key(&mut *conn, time_of, after).await?;
    let rows: Vec<T> = sqlx::query_as(statement)
        .bind(ts_opt(&after.map(|(at, _)| at)))
        .bind(after.map(|(_, id)| id))
        .bind(i64::from(limit) + 1)
        .fetch_all(&mut *conn)
        .await?;
    Ok(Page::from_timed_rows(rows, limit, key_of))
}

//! Small helpers shared by this backend's repositories.

use chrono::{DateTime, Utc};
use flowstore_core::{StoreError, StoreResult};
use sqlx::SqliteConnection;
use uuid::Uuid;

use crate::error::map_err;

/// An instant in the fixed text form this backend stores, so that comparisons in SQL
/// order by time.
pub fn ts(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// [`ts`] for an optional instant.
pub fn ts_opt(t: &Option<DateTime<Utc>>) -> Option<String> {
    t.as_ref().map(ts)
}

/// Refuses a reference to a row that does not exist, naming the field, before an
/// INSERT or UPDATE would fail on the foreign key (SQLite's message names no column).
pub async fn ensure_exists(
    conn: &mut SqliteConnection,
    table: &'static str,
    field: &'static str,
    id: Option<Uuid>,
) -> StoreResult<()> {
    let Some(id) = id else { return Ok(()) };
    let sql = format!("SELECT 1 FROM {table} WHERE id = ?1");
    let found: Option<i64> = sqlx::query_scalar(&sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::invalid(
            field,
            format!("refers to no existing row ({id})"),
        )),
    }
}

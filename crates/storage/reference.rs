//! References checked before they are written.

use flowstore_core::{StoreError, StoreResult};
use uuid::Uuid;

use crate::dialect::{sql_owned, Conn};

/// Refuses a reference to a row that does not exist, naming the field, before the
/// statement that would fail on the foreign key (whose message names no column on
/// SQLite). Both backends check this way, so both name the same field.
pub(crate) async fn ensure_exists(
    conn: &mut Conn,
    table: &'static str,
    field: &'static str,
    id: Option<Uuid>,
) -> StoreResult<()> {
    let Some(id) = id else { return Ok(()) };
    let found: Option<i32> =
        sqlx::query_scalar(&sql_owned(format!("SELECT 1 FROM {table} WHERE id = $1")))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::invalid(
            field,
            format!("refers to no existing row ({id})"),
        )),
    }
}

//! Small helpers shared by this backend's repositories.

use flowstore_core::{StoreError, StoreResult};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::map_err;

/// Refuses a reference to a row that does not exist, naming the field, before the
/// statement that would fail on the foreign key. Both backends check this way, so
/// both name the same field.
pub async fn ensure_exists(
    conn: &mut PgConnection,
    table: &'static str,
    field: &'static str,
    id: Option<Uuid>,
) -> StoreResult<()> {
    let Some(id) = id else { return Ok(()) };
    let sql = format!("SELECT 1 FROM {table} WHERE id = $1");
    let found: Option<i32> = sqlx::query_scalar(&sql)
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

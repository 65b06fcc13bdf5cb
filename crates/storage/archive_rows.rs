//! Rows of a statement given at run time, in the portable encoding of backups: what
//! the checks of a partial restore read from the database they restore into.

use flowstore_core::archive::{Column, ColumnType, Row};
use flowstore_core::StoreResult;
use serde_json::Value;

use crate::archive::{bind, decode};
use crate::dialect::{sql_owned, Conn};

/// Runs `sql` (in PostgreSQL's spelling) with `params` bound in order, each encoded
/// as its portable type, and decodes each result row as `columns` say.
pub(crate) async fn select(
    conn: &mut Conn,
    sql: &str,
    params: &[(ColumnType, Value)],
    columns: &[ColumnType],
) -> StoreResult<Vec<Row>> {
    let statement = sql_owned(sql.to_string());
    let mut query = sqlx::query(&statement);
    for (i, (ty, v)) in params.iter().enumerate() {
        let c = Column {
            name: format!("${}", i + 1),
            ty: *ty,
        };
        query = bind(query, &c, v)?;
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let columns: Vec<Column> = columns
        .iter()
        .enumerate()
        .map(|(i, ty)| Column {
            name: format!("result column {}", i + 1),
            ty: *ty,
        })
        .collect();
    rows.iter()
        .map(|row| {
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| decode(row, i, c))
                .collect()
        })
        .collect()
}

//! Portable backup and restore, written once for both backends: reading a table of a
//! snapshot in key order, the statements a load runs, and how a value is bound from
//! and read into its portable form. Each backend's `archive_native.rs` gives what
//! its database does its own way: how a snapshot and a load begin, the types its
//! booleans, JSON documents and instants are read as, how a load empties and locks
//! tables and what it settles before it commits.

use async_trait::async_trait;
use flowstore_core::archive::{
    quote as q, value, Column, ColumnType, Row, RowLoader, RowSink, SnapshotReader, Table,
};
use flowstore_core::{StoreError, StoreResult};
use futures::TryStreamExt;
use serde_json::Value;
use sqlx::{Row as _, Transaction};
use uuid::Uuid;

use crate::archive_native::{self as native, LoadGuard};
use crate::dialect::{sql, sql_owned, ts, Db, Query};

/// Bound values per INSERT: well under SQLite's limit of 32766 (PostgreSQL's is
/// 65535).
const MAX_BINDS: usize = 30_000;

/// A consistent read-only snapshot: one transaction, rolled back at the end.
pub(crate) struct Snapshot {
    tx: Transaction<'static, Db>,
}

impl Snapshot {
    pub(crate) fn new(tx: Transaction<'static, Db>) -> Self {
        Snapshot { tx }
    }
}

/// The one transaction a restore loads in, with what its backend holds besides.
pub(crate) struct Loader {
    tx: Transaction<'static, Db>,
    _guard: LoadGuard,
}

impl Loader {
    pub(crate) fn new(tx: Transaction<'static, Db>, guard: LoadGuard) -> Self {
        Loader { tx, _guard: guard }
    }
}

/// The select expression of a column: integers widened, decimals as doubles, so
/// that one Rust type decodes each portable type (the casts vanish on SQLite, whose
/// values need none).
fn read_expr(c: &Column) -> String {
    let name = q(&c.name);
    match c.ty {
        ColumnType::Int => format!("{name}::int8"),
        ColumnType::Float | ColumnType::Decimal => format!("{name}::float8"),
        ColumnType::Text => format!("{name}::text"),
        _ => name,
    }
}

/// Column `i` of `row`, read as `c` says, in its portable form.
pub(crate) fn decode(
    row: &<Db as sqlx::Database>::Row,
    i: usize,
    c: &Column,
) -> StoreResult<Value> {
    let err = |e: sqlx::Error| StoreError::internal(format!("reading column {}: {e}", c.name));
    Ok(match c.ty {
        ColumnType::Uuid => row
            .try_get::<Option<Uuid>, _>(i)
            .map_err(err)?
            .map_or(Value::Null, |u| Value::String(u.to_string())),
        ColumnType::Text => row
            .try_get::<Option<String>, _>(i)
            .map_err(err)?
            .map_or(Value::Null, Value::String),
        ColumnType::Int => row
            .try_get::<Option<i64>, _>(i)
            .map_err(err)?
            .map_or(Value::Null, Value::from),
        ColumnType::Float | ColumnType::Decimal => row
            .try_get::<Option<f64>, _>(i)
            .map_err(err)?
            .map_or(Value::Null, value::float),
        ColumnType::Bool => row
            .try_get::<Option<native::Bool>, _>(i)
            .map_err(err)?
            .map_or(Value::Null, |b| Value::Bool(native::bool_value(b))),
        ColumnType::Json => match row.try_get::<Option<native::Json>, _>(i).map_err(err)? {
            None => Value::Null,
            Some(j) => native::json_value(j, &c.name)?,
        },
        ColumnType::Timestamp => match row.try_get::<Option<native::Instant>, _>(i).map_err(err)? {
            None => Value::Null,
            Some(t) => native::instant_value(t, &c.name)?,
        },
        ColumnType::Bytes => row
            .try_get::<Option<Vec<u8>>, _>(i)
            .map_err(err)?
            .map_or(Value::Null, |b| value::bytes(&b)),
    })
}

/// `query` with the portable value `v` of column `c` bound as its next parameter.
pub(crate) fn bind<'q>(query: Query<'q>, c: &Column, v: &Value) -> StoreResult<Query<'q>> {
    let n = c.name.as_str();
    Ok(match c.ty {
        ColumnType::Uuid => query.bind(value::to_uuid(v, n)?),
        ColumnType::Text => query.bind(value::to_text(v, n)?),
        ColumnType::Int => query.bind(value::to_int(v, n)?),
        ColumnType::Float | ColumnType::Decimal => query.bind(value::to_float(v, n)?),
        ColumnType::Bool => query.bind(value::to_bool(v, n)?),
        ColumnType::Json => query.bind(value::to_json(v)),
        ColumnType::Timestamp => query.bind(value::to_timestamp(v, n)?.map(|t| ts(&t))),
        ColumnType::Bytes => query.bind(value::to_bytes(v, n)?),
    })
}

#[async_trait]
impl SnapshotReader for Snapshot {
    async fn schema_version(&mut self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(sql!(
            "SELECT coalesce(max(version), 0)::int8 FROM schema_migrations"
        ))
        .fetch_one(&mut *self.tx)
        .await?)
    }

    async fn read_table(&mut self, table: &Table, sink: &mut RowSink<'_>) -> StoreResult<u64> {
        let cols: Vec<String> = table.columns.iter().map(read_expr).collect();
        // Text keys in byte order, the order SQLite's BINARY collation gives, so
        // both backends write a table's rows in the same order.
        let keys: Vec<String> = table
            .key
            .iter()
            .map(|k| match table.column(k).map(|c| c.ty) {
                Some(ColumnType::Text) => format!("{} COLLATE \"C\"", q(k)),
                _ => q(k),
            })
            .collect();
        let sql = sql_owned(format!(
            "SELECT {} FROM {} ORDER BY {}",
            cols.join(", "),
            q(table.name),
            keys.join(", ")
        ));
        let mut rows = sqlx::query(&sql).fetch(&mut *self.tx);
        let mut n = 0;
        while let Some(row) = rows.try_next().await? {
            let mut out = Vec::with_capacity(table.columns.len());
            for (i, c) in table.columns.iter().enumerate() {
                out.push(decode(&row, i, c)?);
            }
            sink(out)?;
            n += 1;
        }
        Ok(n)
    }

    async fn finish(self: Box<Self>) -> StoreResult<()> {
        Ok(self.tx.rollback().await?)
    }
}

#[async_trait]
impl RowLoader for Loader {
    async fn count(&mut self, table: &Table) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", q(table.name)))
            .fetch_one(&mut *self.tx)
            .await?;
        Ok(n as u64)
    }

    async fn find_id(
        &mut self,
        table: &Table,
        column: &Column,
        value: &Value,
    ) -> StoreResult<Option<Uuid>> {
        let sql = sql_owned(format!(
            "SELECT id FROM {} WHERE {} = $1 LIMIT 1",
            q(table.name),
            q(&column.name)
        ));
        let query = bind(sqlx::query(&sql), column, value)?;
        let row = query.fetch_optional(&mut *self.tx).await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(r.try_get::<Uuid, _>(0)?)),
        }
    }

    async fn clear(&mut self, tables: &[&Table]) -> StoreResult<()> {
        native::clear(&mut self.tx, tables).await
    }

    async fn lock(&mut self, tables: &[&Table]) -> StoreResult<()> {
        native::lock(&mut self.tx, tables).await
    }

    async fn insert(&mut self, table: &Table, columns: &[Column], rows: &[Row]) -> StoreResult<()> {
        let names: Vec<String> = columns.iter().map(|c| q(&c.name)).collect();
        let per = (MAX_BINDS / columns.len().max(1)).clamp(1, 500);
        for chunk in rows.chunks(per) {
            let mut tuples = Vec::with_capacity(chunk.len());
            let mut n = 0;
            for _ in chunk {
                let ps: Vec<String> = (0..columns.len())
                    .map(|_| {
                        n += 1;
                        format!("${n}")
                    })
                    .collect();
                tuples.push(format!("({})", ps.join(", ")));
            }
            let sql = sql_owned(format!(
                "INSERT INTO {} ({}) VALUES {}",
                q(table.name),
                names.join(", "),
                tuples.join(", ")
            ));
            let mut query = sqlx::query(&sql);
            for row in chunk {
                for (c, v) in columns.iter().zip(row) {
                    query = bind(query, c, v)?;
                }
            }
            query.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    async fn update(
        &mut self,
        table: &Table,
        columns: &[Column],
        set: &[&str],
        row: &Row,
    ) -> StoreResult<()> {
        let at = |name: &str| columns.iter().position(|c| c.name == name);
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        let sets: Vec<String> = set
            .iter()
            .map(|c| format!("{} = ${}", q(c), next()))
            .collect();
        let wheres: Vec<String> = table
            .key
            .iter()
            .map(|k| format!("{} = ${}", q(k), next()))
            .collect();
        let sql = sql_owned(format!(
            "UPDATE {} SET {} WHERE {}",
            q(table.name),
            sets.join(", "),
            wheres.join(" AND ")
        ));
        let mut query = sqlx::query(&sql);
        for name in set.iter().chain(table.key.iter()) {
            let i = at(name).ok_or_else(|| {
                StoreError::invalid("archive", format!("{}.{name} is missing", table.name))
            })?;
            query = bind(query, &columns[i], &row[i])?;
        }
        query.execute(&mut *self.tx).await?;
        Ok(())
    }

    async fn select(
        &mut self,
        sql: &str,
        params: &[(ColumnType, Value)],
        columns: &[ColumnType],
    ) -> StoreResult<Vec<Row>> {
        crate::archive_rows::select(&mut self.tx, sql, params, columns).await
    }

    async fn commit(mut self: Box<Self>) -> StoreResult<()> {
        native::settle_load(&mut self.tx).await?;
        Ok(self.tx.commit().await?)
    }
}

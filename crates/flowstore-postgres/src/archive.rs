//! Portable backup and restore on PostgreSQL: a snapshot is one REPEATABLE READ READ
//! ONLY transaction, a load is one transaction; neither has a statement timeout,
//! since a large table may take longer than an ordinary statement may.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use flowstore_core::archive::{
    self, value, ArchiveBackend, Column, ColumnType, Row, RowLoader, RowSink, SnapshotReader, Table,
};
use flowstore_core::{StoreError, StoreResult};
use futures::TryStreamExt;
use serde_json::Value;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{Postgres, Row as _, Transaction};
use uuid::Uuid;

use crate::error::map_err;
use crate::PostgresBackend;

/// Bound values per INSERT: well under PostgreSQL's limit of 65535.
const MAX_BINDS: usize = 30_000;

fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

struct Snapshot {
    tx: Transaction<'static, Postgres>,
}

struct Loader {
    tx: Transaction<'static, Postgres>,
}

#[async_trait]
impl ArchiveBackend for PostgresBackend {
    async fn snapshot(&self) -> StoreResult<Box<dyn SnapshotReader>> {
        let mut tx = self
            .pool()
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(map_err)?;
        sqlx::query("SET LOCAL statement_timeout = 0")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        Ok(Box::new(Snapshot { tx }))
    }

    async fn loader(&self) -> StoreResult<Box<dyn RowLoader>> {
        let mut tx = self.pool().begin().await.map_err(map_err)?;
        sqlx::query("SET LOCAL statement_timeout = 0")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        Ok(Box::new(Loader { tx }))
    }

    async fn native_columns(&self) -> StoreResult<Vec<(String, String, String)>> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT c.table_name::text, c.column_name::text, c.data_type::text
               FROM information_schema.columns c
               JOIN information_schema.tables t USING (table_schema, table_name)
              WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
                AND c.is_generated = 'NEVER' AND c.table_name <> 'schema_migrations'
              ORDER BY c.table_name, c.ordinal_position",
        )
        .fetch_all(self.pool())
        .await
        .map_err(map_err)?;
        Ok(rows)
    }
}

/// The select expression of a column: integers widened, decimals as doubles, so
/// that one Rust type decodes each portable type.
fn select_expr(c: &Column) -> String {
    let name = q(&c.name);
    match c.ty {
        ColumnType::Int => format!("{name}::int8"),
        ColumnType::Float | ColumnType::Decimal => format!("{name}::float8"),
        ColumnType::Text => format!("{name}::text"),
        _ => name,
    }
}

pub(crate) fn decode(row: &sqlx::postgres::PgRow, i: usize, c: &Column) -> StoreResult<Value> {
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
            .try_get::<Option<bool>, _>(i)
            .map_err(err)?
            .map_or(Value::Null, Value::Bool),
        ColumnType::Json => row
            .try_get::<Option<Value>, _>(i)
            .map_err(err)?
            .map_or(Value::Null, value::canonical_json),
        ColumnType::Timestamp => row
            .try_get::<Option<DateTime<Utc>>, _>(i)
            .map_err(err)?
            .map_or(Value::Null, value::timestamp),
        ColumnType::Bytes => row
            .try_get::<Option<Vec<u8>>, _>(i)
            .map_err(err)?
            .map_or(Value::Null, |b| value::bytes(&b)),
    })
}

pub(crate) fn bind<'q>(
    query: Query<'q, Postgres, PgArguments>,
    c: &Column,
    v: &Value,
) -> StoreResult<Query<'q, Postgres, PgArguments>> {
    let n = c.name.as_str();
    Ok(match c.ty {
        ColumnType::Uuid => query.bind(value::to_uuid(v, n)?),
        ColumnType::Text => query.bind(value::to_text(v, n)?),
        ColumnType::Int => query.bind(value::to_int(v, n)?),
        ColumnType::Float | ColumnType::Decimal => query.bind(value::to_float(v, n)?),
        ColumnType::Bool => query.bind(value::to_bool(v, n)?),
        ColumnType::Json => query.bind(value::to_json(v)),
        ColumnType::Timestamp => query.bind(value::to_timestamp(v, n)?),
        ColumnType::Bytes => query.bind(value::to_bytes(v, n)?),
    })
}

#[async_trait]
impl SnapshotReader for Snapshot {
    async fn schema_version(&mut self) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT coalesce(max(version), 0)::int8 FROM schema_migrations")
            .fetch_one(&mut *self.tx)
            .await
            .map_err(map_err)
    }

    async fn read_table(&mut self, table: &Table, sink: &mut RowSink<'_>) -> StoreResult<u64> {
        let cols: Vec<String> = table.columns.iter().map(select_expr).collect();
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
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            cols.join(", "),
            q(table.name),
            keys.join(", ")
        );
        let mut rows = sqlx::query(&sql).fetch(&mut *self.tx);
        let mut n = 0;
        while let Some(row) = rows.try_next().await.map_err(map_err)? {
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
        self.tx.rollback().await.map_err(map_err)
    }
}

#[async_trait]
impl RowLoader for Loader {
    async fn count(&mut self, table: &Table) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", q(table.name)))
            .fetch_one(&mut *self.tx)
            .await
            .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn find_id(
        &mut self,
        table: &Table,
        column: &Column,
        value: &Value,
    ) -> StoreResult<Option<Uuid>> {
        let sql = format!(
            "SELECT id FROM {} WHERE {} = $1 LIMIT 1",
            q(table.name),
            q(&column.name)
        );
        let query = bind(sqlx::query(&sql), column, value)?;
        let row = query.fetch_optional(&mut *self.tx).await.map_err(map_err)?;
        match row {
            None => Ok(None),
            Some(r) => r.try_get::<Uuid, _>(0).map(Some).map_err(map_err),
        }
    }

    async fn clear(&mut self, tables: &[&Table]) -> StoreResult<()> {
        if tables.is_empty() {
            return Ok(());
        }
        // TRUNCATE fires no row triggers, so the append-only audit log empties too.
        // PostgreSQL refuses it for a table that a table outside the statement
        // references (however empty): those tables (of a restore of some tables
        // only) are emptied row by row instead, after the rest, in reverse insert
        // order; their foreign keys then act as declared.
        let closed = archive::closed_under_references(tables);
        if !closed.is_empty() {
            let names: Vec<String> = closed.iter().rev().map(|t| q(t.name)).collect();
            sqlx::query(&format!("TRUNCATE {}", names.join(", ")))
                .execute(&mut *self.tx)
                .await
                .map_err(map_err)?;
        }
        for t in tables.iter().rev() {
            if !closed.iter().any(|c| c.name == t.name) {
                sqlx::query(&format!("DELETE FROM {}", q(t.name)))
                    .execute(&mut *self.tx)
                    .await
                    .map_err(map_err)?;
            }
        }
        Ok(())
    }

    async fn lock(&mut self, tables: &[&Table]) -> StoreResult<()> {
        if tables.is_empty() {
            return Ok(());
        }
        // Blocks every other writer of these tables (and a second restore), not
        // their readers, until this transaction ends.
        let names: Vec<String> = tables.iter().map(|t| q(t.name)).collect();
        sqlx::query(&format!(
            "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
            names.join(", ")
        ))
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(())
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
            let sql = format!(
                "INSERT INTO {} ({}) VALUES {}",
                q(table.name),
                names.join(", "),
                tuples.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for row in chunk {
                for (c, v) in columns.iter().zip(row) {
                    query = bind(query, c, v)?;
                }
            }
            query.execute(&mut *self.tx).await.map_err(map_err)?;
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
        let sql = format!(
            "UPDATE {} SET {} WHERE {}",
            q(table.name),
            sets.join(", "),
            wheres.join(" AND ")
        );
        let mut query = sqlx::query(&sql);
        for name in set.iter().chain(table.key.iter()) {
            let i = at(name).ok_or_else(|| {
                StoreError::invalid("archive", format!("{}.{name} is missing", table.name))
            })?;
            query = bind(query, &columns[i], &row[i])?;
        }
        query.execute(&mut *self.tx).await.map_err(map_err)?;
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
        // Serial keys were loaded as given: move their sequences past the highest.
        let serials: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT c.table_name::text, c.column_name::text,
                    pg_get_serial_sequence(quote_ident(c.table_name), c.column_name)
               FROM information_schema.columns c
              WHERE c.table_schema = current_schema()
                AND pg_get_serial_sequence(quote_ident(c.table_name), c.column_name) IS NOT NULL",
        )
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        for (table, column, seq) in serials {
            let sql = format!(
                "SELECT setval($1::regclass, coalesce(max({c}), 1), max({c}) IS NOT NULL) FROM {t}",
                c = q(&column),
                t = q(&table)
            );
            sqlx::query(&sql)
                .bind(seq)
                .execute(&mut *self.tx)
                .await
                .map_err(map_err)?;
        }
        self.tx.commit().await.map_err(map_err)
    }
}

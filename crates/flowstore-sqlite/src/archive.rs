//! Portable backup and restore on SQLite: a snapshot is one read transaction (WAL
//! keeps it stable while writers go on), a load is one `BEGIN IMMEDIATE` transaction
//! holding the writer's place.

use async_trait::async_trait;
use flowstore_core::archive::{
    value, ArchiveBackend, Column, ColumnType, Row, RowLoader, RowSink, SnapshotReader, Table,
};
use flowstore_core::{StoreError, StoreResult};
use futures::TryStreamExt;
use serde_json::Value;
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Row as _, Sqlite, Transaction};
use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

use crate::error::map_err;
use crate::util::ts;
use crate::SqliteBackend;

/// Rows per INSERT: well under SQLite's limit of 32766 bound values.
const MAX_BINDS: usize = 30_000;

fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

struct Snapshot {
    tx: Transaction<'static, Sqlite>,
}

struct Loader {
    tx: Transaction<'static, Sqlite>,
    _writer: OwnedMutexGuard<()>,
}

#[async_trait]
impl ArchiveBackend for SqliteBackend {
    async fn snapshot(&self) -> StoreResult<Box<dyn SnapshotReader>> {
        let mut tx = self.pool().begin().await.map_err(map_err)?;
        // A deferred transaction takes its snapshot at the first read: take it now.
        sqlx::query("SELECT count(*) FROM sqlite_master")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        Ok(Box::new(Snapshot { tx }))
    }

    async fn loader(&self) -> StoreResult<Box<dyn RowLoader>> {
        let guard = self.writer.clone().lock_owned().await;
        let tx = self
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        Ok(Box::new(Loader { tx, _writer: guard }))
    }

    async fn native_columns(&self) -> StoreResult<Vec<(String, String, String)>> {
        // pragma_table_list tells virtual (FTS) and shadow tables apart from ours.
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT t.name, c.name, upper(c.type)
               FROM pragma_table_list AS t, pragma_table_info(t.name) AS c
              WHERE t.schema = 'main' AND t.type = 'table'
                AND t.name NOT LIKE 'sqlite_%' AND t.name <> 'schema_migrations'
              ORDER BY t.name, c.cid",
        )
        .fetch_all(self.pool())
        .await
        .map_err(map_err)?;
        Ok(rows)
    }
}

pub(crate) fn decode(row: &sqlx::sqlite::SqliteRow, i: usize, c: &Column) -> StoreResult<Value> {
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
            .try_get::<Option<i64>, _>(i)
            .map_err(err)?
            .map_or(Value::Null, |b| Value::Bool(b != 0)),
        ColumnType::Json => match row.try_get::<Option<String>, _>(i).map_err(err)? {
            None => Value::Null,
            Some(s) => value::json_text(&s, &c.name)?,
        },
        ColumnType::Timestamp => match row.try_get::<Option<String>, _>(i).map_err(err)? {
            None => Value::Null,
            Some(s) => match value::to_timestamp(&Value::String(s), &c.name)? {
                Some(t) => value::timestamp(t),
                None => Value::Null,
            },
        },
        ColumnType::Bytes => row
            .try_get::<Option<Vec<u8>>, _>(i)
            .map_err(err)?
            .map_or(Value::Null, |b| value::bytes(&b)),
    })
}

pub(crate) fn bind<'q>(
    query: Query<'q, Sqlite, SqliteArguments<'q>>,
    c: &Column,
    v: &Value,
) -> StoreResult<Query<'q, Sqlite, SqliteArguments<'q>>> {
    let n = c.name.as_str();
    Ok(match c.ty {
        ColumnType::Uuid => query.bind(value::to_uuid(v, n)?),
        ColumnType::Text => query.bind(value::to_text(v, n)?),
        ColumnType::Int => query.bind(value::to_int(v, n)?),
        ColumnType::Float | ColumnType::Decimal => query.bind(value::to_float(v, n)?),
        ColumnType::Bool => query.bind(value::to_bool(v, n)?),
        ColumnType::Json => query.bind(value::to_json(v).map(|j| j.to_string())),
        ColumnType::Timestamp => query.bind(value::to_timestamp(v, n)?.map(|t| ts(&t))),
        ColumnType::Bytes => query.bind(value::to_bytes(v, n)?),
    })
}

#[async_trait]
impl SnapshotReader for Snapshot {
    async fn schema_version(&mut self) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM schema_migrations")
            .fetch_one(&mut *self.tx)
            .await
            .map_err(map_err)
    }

    async fn read_table(&mut self, table: &Table, sink: &mut RowSink<'_>) -> StoreResult<u64> {
        let cols: Vec<String> = table.columns.iter().map(|c| q(&c.name)).collect();
        let keys: Vec<String> = table.key.iter().map(|k| q(k)).collect();
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
            "SELECT id FROM {} WHERE {} = ? LIMIT 1",
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
        for t in tables.iter().rev() {
            // Lift for the moment the triggers that make a table append-only (DDL is
            // transactional on SQLite, so they come back on rollback too).
            let guards: Vec<(String, String)> = sqlx::query_as(
                "SELECT name, sql FROM sqlite_master
                  WHERE type = 'trigger' AND tbl_name = ?1 AND upper(sql) LIKE '%BEFORE DELETE%'",
            )
            .bind(t.name)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(map_err)?;
            for (name, _) in &guards {
                sqlx::query(&format!("DROP TRIGGER {}", q(name)))
                    .execute(&mut *self.tx)
                    .await
                    .map_err(map_err)?;
            }
            sqlx::query(&format!("DELETE FROM {}", q(t.name)))
                .execute(&mut *self.tx)
                .await
                .map_err(map_err)?;
            for (_, sql) in guards {
                sqlx::query(&sql)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(map_err)?;
            }
        }
        Ok(())
    }

    async fn insert(&mut self, table: &Table, columns: &[Column], rows: &[Row]) -> StoreResult<()> {
        let names: Vec<String> = columns.iter().map(|c| q(&c.name)).collect();
        let one = format!("({})", vec!["?"; columns.len()].join(", "));
        let per = (MAX_BINDS / columns.len().max(1)).clamp(1, 500);
        for chunk in rows.chunks(per) {
            let sql = format!(
                "INSERT INTO {} ({}) VALUES {}",
                q(table.name),
                names.join(", "),
                vec![one.as_str(); chunk.len()].join(", ")
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
        let sets: Vec<String> = set.iter().map(|c| format!("{} = ?", q(c))).collect();
        let wheres: Vec<String> = table.key.iter().map(|k| format!("{} = ?", q(k))).collect();
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

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        self.tx.commit().await.map_err(map_err)
    }
}

//! Storage for logs and configurations.

use async_trait::async_trait;
use flowstore_core::model::ops::{
    config_key, ConfigType, Configuration, ConfigurationRow, LogEntry, LogFilter, NewLogEntry,
    OpsRepo, SetConfiguration, LEVEL_RANK_SQL,
};
use flowstore_core::{time, Page, PageRequest, StoreError, StoreResult};

use crate::dialect::{ensure_exists, sql, sql_fmt, ts, ts_opt, Tx};
use crate::rows;

const LOG_COLUMNS: &str =
    "id, level, component_name, execution_id, task_id, message, context, timestamp";

const CONFIG_COLUMNS: &str = "id, key, value, value_encrypted, encryption_key_id, type, \
     description, is_sensitive, created_at, updated_at";

impl Tx {
    async fn insert_log(&mut self, e: &LogEntry) -> StoreResult<()> {
        ensure_exists(
            &mut self.tx,
            "workflow_executions",
            "execution_id",
            e.execution_id.map(|r| r.0),
        )
        .await?;
        ensure_exists(&mut self.tx, "tasks", "task_id", e.task_id.map(|t| t.0)).await?;
        sqlx::query(sql!(
            "INSERT INTO logs (id, level, component_name, execution_id, task_id, message,
                context, timestamp)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(e.id)
        .bind(e.level)
        .bind(&e.component_name)
        .bind(e.execution_id)
        .bind(e.task_id)
        .bind(&e.message)
        .bind(&e.context)
        .bind(ts(&e.timestamp))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn config_row(&mut self, key: &str) -> StoreResult<ConfigurationRow> {
        rows::one(
            &mut self.tx,
            sql_fmt!("SELECT {CONFIG_COLUMNS} FROM configurations WHERE key = $1"),
            "configuration",
            key,
        )
        .await
    }
}

#[async_trait]
impl OpsRepo for Tx {
    async fn append_log(&mut self, new: NewLogEntry) -> StoreResult<LogEntry> {
        let row = new.into_row(time::now())?;
        self.insert_log(&row).await?;
        Ok(row)
    }

    async fn append_logs(&mut self, entries: Vec<NewLogEntry>) -> StoreResult<Vec<LogEntry>> {
        let now = time::now();
        let rows = entries
            .into_iter()
            .map(|e| e.into_row(now))
            .collect::<StoreResult<Vec<_>>>()?;
        for row in &rows {
            self.insert_log(row).await?;
        }
        Ok(rows)
    }

    async fn query_logs(
        &mut self,
        filter: &LogFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<LogEntry>> {
        rows::page_with(
            &mut self.tx,
            sql_fmt!(
                "SELECT {LOG_COLUMNS} FROM logs
             WHERE ($1::uuid IS NULL OR execution_id = $1)
               AND ($2::uuid IS NULL OR task_id = $2)
               AND ($3::text IS NULL OR component_name = $3)
               AND ($4::int8 IS NULL OR {LEVEL_RANK_SQL} >= $4)
               AND ($5::timestamptz IS NULL OR timestamp >= $5)
               AND ($6::timestamptz IS NULL OR timestamp < $6)
               AND ($7::uuid IS NULL OR id < $7)
             ORDER BY id DESC LIMIT $8"
            ),
            page,
            |q, after, limit| {
                q.bind(filter.execution_id)
                    .bind(filter.task_id)
                    .bind(&filter.component_name)
                    .bind(filter.min_level.map(|l| l.rank()))
                    .bind(ts_opt(&filter.since))
                    .bind(ts_opt(&filter.until))
                    .bind(after)
                    .bind(limit)
            },
            |e: &LogEntry| e.id.0,
        )
        .await
    }

    async fn set_configuration(&mut self, set: SetConfiguration) -> StoreResult<Configuration> {
        let keys = self.keys.clone();
        let w = set.prepare(|| keys.keyring(), time::now())?;
        // One statement inserts or replaces, so the CHECK that keeps plain and sealed
        // values apart holds at every moment; the ID and created_at of an existing key
        // stay.
        sqlx::query(sql!(
            "INSERT INTO configurations (id, key, value, value_encrypted, encryption_key_id,
                type, description, is_sensitive, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                value_encrypted = excluded.value_encrypted,
                encryption_key_id = excluded.encryption_key_id, type = excluded.type,
                description = excluded.description, is_sensitive = excluded.is_sensitive,
                updated_at = excluded.updated_at"
        ))
        .bind(w.id)
        .bind(&w.key)
        .bind(&w.value)
        .bind(w.sealed.as_ref().map(|s| s.bytes.clone()))
        .bind(w.sealed.as_ref().map(|s| s.key_id.clone()))
        .bind(w.config_type)
        .bind(&w.description)
        .bind(w.is_sensitive)
        .bind(ts(&w.now))
        .execute(&mut *self.tx)
        .await?;
        self.get_configuration(&w.key).await
    }

    async fn get_configuration(&mut self, key: &str) -> StoreResult<Configuration> {
        let row = self.config_row(key).await?;
        let keys = self.keys.clone();
        let ring = if row.is_sensitive {
            Some(keys.keyring()?)
        } else {
            None
        };
        row.into_configuration(ring)
    }

    async fn list_configurations(
        &mut self,
        config_type: Option<ConfigType>,
        page: &PageRequest,
    ) -> StoreResult<Page<Configuration>> {
        let (limit, after) = page.parts()?;
        let rows: Vec<ConfigurationRow> = sqlx::query_as(sql_fmt!(
            "SELECT {CONFIG_COLUMNS} FROM configurations
             WHERE ($1::text IS NULL OR type = $1) AND ($2::uuid IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(config_type)
        .bind(after)
        .bind(i64::from(limit) + 1)
        .fetch_all(&mut *self.tx)
        .await?;
        let items = rows
            .into_iter()
            .map(|r| r.into_configuration(None))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_rows(items, limit, |c| c.id.0))
    }

    async fn delete_configuration(&mut self, key: &str) -> StoreResult<()> {
        let key = config_key(key)?;
        let done = sqlx::query(sql!("DELETE FROM configurations WHERE key = $1"))
            .bind(&key)
            .execute(&mut *self.tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("configuration", key));
        }
        Ok(())
    }

    async fn reseal_configurations(&mut self) -> StoreResult<u64> {
        let rows: Vec<ConfigurationRow> = sqlx::query_as(sql_fmt!(
            "SELECT {CONFIG_COLUMNS} FROM configurations WHERE is_sensitive ORDER BY id FOR UPDATE"
        ))
        .fetch_all(&mut *self.tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let keys = self.keys.clone();
        let ring = keys.keyring()?;
        let now = time::now();
        let mut count = 0;
        for row in rows {
            let value = row.open(ring)?;
            let sealed = ring.seal(value.to_string().as_bytes())?;
            sqlx::query(sql!(
                "UPDATE configurations SET value_encrypted = $2, encryption_key_id = $3,
                    updated_at = $4
                 WHERE id = $1"
            ))
            .bind(row.id)
            .bind(sealed.bytes)
            .bind(sealed.key_id)
            .bind(ts(&now))
            .execute(&mut *self.tx)
            .await?;
            count += 1;
        }
        Ok(count)
    }
}

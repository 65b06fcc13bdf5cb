//! SQLite storage for the audit log. Appends are serialised by the writer lock every
//! write transaction holds (`BEGIN IMMEDIATE`), so the last entry read is still the
//! last when the next one is inserted.

use async_trait::async_trait;
use flowstore_core::model::audit::{
    audit_cursor, audit_page, AuditEntry, AuditFilter, AuditRepo, NewAuditEntry,
};
use flowstore_core::{time, Page, PageRequest, StoreResult};

use crate::backend::SqliteTx;
use crate::error::map_err;
use crate::util::{ts, ts_opt};

const COLUMNS: &str = "seq, id, actor_type, actor_id, action, entity_type, entity_id, before, \
                       after, ip_address, request_id, created_at, prev_hash, hash";

#[async_trait]
impl AuditRepo for SqliteTx {
    async fn append_audit(&mut self, new: NewAuditEntry) -> StoreResult<AuditEntry> {
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *self.tx)
                .await
                .map_err(map_err)?;
        let e = new.into_entry(last.as_ref().map(|(s, h)| (*s, h.as_str())), time::now())?;
        sqlx::query(
            "INSERT INTO audit_log (seq, id, actor_type, actor_id, action, entity_type,
                entity_id, before, after, ip_address, request_id, created_at, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )
        .bind(e.seq)
        .bind(e.id)
        .bind(e.actor_type)
        .bind(&e.actor_id)
        .bind(&e.action)
        .bind(&e.entity_type)
        .bind(&e.entity_id)
        .bind(&e.before)
        .bind(&e.after)
        .bind(&e.ip_address)
        .bind(&e.request_id)
        .bind(ts(&e.created_at))
        .bind(&e.prev_hash)
        .bind(&e.hash)
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(e)
    }

    async fn list_audit(
        &mut self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<AuditEntry>> {
        let limit = page.limit()?;
        let before = audit_cursor(page)?;
        let rows: Vec<AuditEntry> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM audit_log
             WHERE (?1 IS NULL OR actor_id = ?1)
               AND (?2 IS NULL OR entity_type = ?2)
               AND (?3 IS NULL OR entity_id = ?3)
               AND (?4 IS NULL OR action = ?4)
               AND (?5 IS NULL OR created_at >= ?5)
               AND (?6 IS NULL OR seq < ?6)
             ORDER BY seq DESC LIMIT ?7"
        ))
        .bind(&filter.actor_id)
        .bind(&filter.entity_type)
        .bind(&filter.entity_id)
        .bind(&filter.action)
        .bind(ts_opt(&filter.since))
        .bind(before)
        .bind(i64::from(limit) + 1)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(audit_page(rows, limit))
    }

    async fn audit_chain_after(
        &mut self,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        ))
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)
    }
}

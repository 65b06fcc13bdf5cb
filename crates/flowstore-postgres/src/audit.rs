//! PostgreSQL storage for the audit log. Appends are serialised by a transaction
//! advisory lock, taken before the last entry is read and held until commit, so two
//! transactions never chain onto the same entry.

use async_trait::async_trait;
use flowstore_core::model::audit::{
    audit_cursor, audit_page, AuditEntry, AuditFilter, AuditRepo, NewAuditEntry,
};
use flowstore_core::{time, Page, PageRequest, StoreResult};

use crate::backend::PostgresTx;
use crate::error::map_err;

/// The advisory lock that keeps appends to the audit log to one transaction at a
/// time ("flowaudt" in ASCII).
const AUDIT_LOCK: i64 = 0x666c_6f77_6175_6474;

const COLUMNS: &str = "seq, id, actor_type, actor_id, action, entity_type, entity_id, before, \
                       after, ip_address, request_id, created_at, prev_hash, hash";

#[async_trait]
impl AuditRepo for PostgresTx {
    async fn append_audit(&mut self, new: NewAuditEntry) -> StoreResult<AuditEntry> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(AUDIT_LOCK)
            .execute(&mut *self.tx)
            .await
            .map_err(map_err)?;
        // Read committed: this statement's snapshot is taken after the lock, so it
        // sees the entry of whoever held the lock before.
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *self.tx)
                .await
                .map_err(map_err)?;
        let e = new.into_entry(last.as_ref().map(|(s, h)| (*s, h.as_str())), time::now())?;
        sqlx::query(
            "INSERT INTO audit_log (seq, id, actor_type, actor_id, action, entity_type,
                entity_id, before, after, ip_address, request_id, created_at, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
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
        .bind(e.created_at)
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
             WHERE ($1::text IS NULL OR actor_id = $1)
               AND ($2::text IS NULL OR entity_type = $2)
               AND ($3::text IS NULL OR entity_id = $3)
               AND ($4::text IS NULL OR action = $4)
               AND ($5::timestamptz IS NULL OR created_at >= $5)
               AND ($6::bigint IS NULL OR seq < $6)
             ORDER BY seq DESC LIMIT $7"
        ))
        .bind(&filter.actor_id)
        .bind(&filter.entity_type)
        .bind(&filter.entity_id)
        .bind(&filter.action)
        .bind(filter.since)
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
            "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)
    }
}

//! Storage for the audit log, its queue and its signed head; the append, link,
//! verification and head logic is `flowstore_core::model::audit`'s. Appends and links
//! are serialised by the dialect's `exclusive` lock (an advisory lock on PostgreSQL;
//! the writer lock every SQLite write transaction holds), taken before the last entry
//! and the head are read and held until commit, so two transactions never chain onto
//! the same entry. Queueing an entry takes no lock.

use std::sync::Arc;

use async_trait::async_trait;
use flowstore_core::ids::AuditEntryId;
use flowstore_core::model::audit::{
    self as audit, audit_cursor, audit_page, AuditEntry, AuditFilter, AuditRepo, AuditStore,
    ChainVerification, NewAuditEntry, QueuedAuditEntry,
};
use flowstore_core::model::audit_head::{AuditHead, HeadResign};
use flowstore_core::store::KeySource;
use flowstore_core::time::Timestamp;
use flowstore_core::{Page, PageRequest, StoreResult};

use crate::dialect::{exclusive, sql, sql_fmt, sql_owned, ts, ts_opt, Conn, Tx};

/// The key of the lock that keeps appends to the audit log to one transaction at a
/// time ("flowaudt" in ASCII).
const AUDIT_LOCK: i64 = 0x666c_6f77_6175_6474;

const COLUMNS: &str = "seq, id, actor_type, actor_id, action, entity_type, entity_id, before, \
                       after, ip_address, request_id, created_at, prev_hash, hash";

/// Binds what an entry describes, from `actor_type` to `request_id` in the order of
/// [`COLUMNS`], which the log and the queue share.
macro_rules! bind_described {
    ($q:expr, $e:expr) => {
        $q.bind($e.actor_type)
            .bind(&$e.actor_id)
            .bind(&$e.action)
            .bind(&$e.entity_type)
            .bind(&$e.entity_id)
            .bind(&$e.before)
            .bind(&$e.after)
            .bind(&$e.ip_address)
            .bind(&$e.request_id)
    };
}

/// The most entries one statement inserts (at most 14 parameters each, far below
/// either database's limit).
const INSERT_ROWS: usize = 64;

/// The columns of the queue's rows that an insert gives.
const QUEUED_COLUMNS: &str = "entry_id, actor_type, actor_id, action, entity_type, entity_id, \
                              before, after, ip_address, request_id, created_at";

/// The insert statements of 1, 2, 4, … [`INSERT_ROWS`] entries into the log and
/// into the queue, made once each.
static INSERT_SQL: [std::sync::OnceLock<String>; 7] = [const { std::sync::OnceLock::new() }; 7];
static QUEUE_SQL: [std::sync::OnceLock<String>; 7] = [const { std::sync::OnceLock::new() }; 7];

/// `INSERT INTO {table} ({columns})` of `n` rows of `width` values, in this
/// database's spelling.
fn insert_sql(table: &str, columns: &str, width: usize, n: usize) -> String {
    let rows: Vec<String> = (0..n)
        .map(|r| {
            let params: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    sql_owned(format!(
        "INSERT INTO {table} ({columns}) VALUES {}",
        rows.join(", ")
    ))
}

/// Splits `rows` into statements of a power of two rows, up to [`INSERT_ROWS`], so
/// that a connection caches a few statements, not one per size: each chunk with
/// the text of its size from `texts` (made by `make` on first use).
fn chunks<'r, T>(
    rows: &'r [T],
    texts: &'static [std::sync::OnceLock<String>; 7],
    make: impl Fn(usize) -> String,
) -> impl Iterator<Item = (&'static str, &'r [T])> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = INSERT_ROWS.min(1 << rest.len().ilog2());
        let (chunk, after) = rest.split_at(n);
        rest = after;
        let text = texts[n.ilog2() as usize].get_or_init(|| make(n));
        Some((text.as_str(), chunk))
    })
}

/// Takes the append lock until the transaction ends.
pub(crate) async fn lock(c: &mut Conn) -> StoreResult<()> {
    exclusive(c, AUDIT_LOCK).await
}

pub(crate) async fn tail(c: &mut Conn) -> StoreResult<Option<(i64, String)>> {
    Ok(sqlx::query_as(sql!(
        "SELECT seq, hash::text FROM audit_log ORDER BY seq DESC LIMIT 1"
    ))
    .fetch_optional(c)
    .await?)
}

/// The signed head, if any.
pub(crate) async fn head(c: &mut Conn) -> StoreResult<Option<AuditHead>> {
    Ok(sqlx::query_as(sql!(
        "SELECT seq, hash::text AS hash, key_id, mac FROM audit_head WHERE id = 1"
    ))
    .fetch_optional(c)
    .await?)
}

/// Writes the one head row.
pub(crate) async fn write_head(c: &mut Conn, h: &AuditHead) -> StoreResult<()> {
    sqlx::query(sql!(
        "INSERT INTO audit_head (id, seq, hash, key_id, mac, signed_at)
         VALUES (1, $1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
             key_id = excluded.key_id, mac = excluded.mac, signed_at = excluded.signed_at"
    ))
    .bind(h.seq)
    .bind(&h.hash)
    .bind(&h.key_id)
    .bind(&h.mac)
    .bind(ts(&flowstore_core::time::now()))
    .execute(c)
    .await?;
    Ok(())
}

#[async_trait]
impl AuditStore for Tx {
    fn audit_keys(&self) -> Arc<KeySource> {
        self.keys.clone()
    }

    async fn lock_audit_log(&mut self) -> StoreResult<()> {
        lock(&mut self.tx).await
    }

    // Read committed: a statement after the lock takes its snapshot after the lock,
    // so it sees the entry and head of whoever held the lock before.
    async fn audit_tail(&mut self) -> StoreResult<Option<(i64, String)>> {
        tail(&mut self.tx).await
    }

    async fn audit_head(&mut self) -> StoreResult<Option<AuditHead>> {
        head(&mut self.tx).await
    }

    async fn write_audit_head(&mut self, h: &AuditHead) -> StoreResult<()> {
        write_head(&mut self.tx, h).await
    }

    async fn insert_audit_entries(&mut self, entries: &[AuditEntry]) -> StoreResult<()> {
        for (text, chunk) in chunks(entries, &INSERT_SQL, |n| {
            insert_sql("audit_log", COLUMNS, 14, n)
        }) {
            let mut q = sqlx::query(text);
            for e in chunk {
                q = bind_described!(q.bind(e.seq).bind(e.id), e)
                    .bind(ts(&e.created_at))
                    .bind(&e.prev_hash)
                    .bind(&e.hash);
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    async fn insert_queued_audit(
        &mut self,
        created_at: Timestamp,
        entries: &[(AuditEntryId, NewAuditEntry)],
    ) -> StoreResult<()> {
        for (text, chunk) in chunks(entries, &QUEUE_SQL, |n| {
            insert_sql("audit_queue", QUEUED_COLUMNS, 11, n)
        }) {
            let mut q = sqlx::query(text);
            for (id, e) in chunk {
                q = bind_described!(q.bind(*id), e).bind(ts(&created_at));
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    // By the key's index: the queue's heap is mostly rows already linked and not
    // yet vacuumed, which a scan would step over one by one.
    async fn has_queued_audit(&mut self) -> StoreResult<bool> {
        Ok(
            sqlx::query_scalar::<_, i64>(sql!("SELECT id FROM audit_queue ORDER BY id LIMIT 1"))
                .fetch_optional(&mut *self.tx)
                .await?
                .is_some(),
        )
    }

    // One statement reads and removes the same rows: an entry whose change commits
    // between a read and a removal by ID range would be removed unlinked.
    async fn take_queued_audit(&mut self, limit: u32) -> StoreResult<Vec<QueuedAuditEntry>> {
        let mut rows: Vec<QueuedAuditEntry> = sqlx::query_as(sql!(
            "DELETE FROM audit_queue
              WHERE id IN (SELECT id FROM audit_queue ORDER BY id LIMIT $1)
             RETURNING id, entry_id, actor_type, actor_id, action, entity_type, entity_id,
                       before, after, ip_address, request_id, created_at"
        ))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await?;
        rows.sort_by_key(|q| q.id);
        Ok(rows)
    }
}

#[async_trait]
impl AuditRepo for Tx {
    async fn append_audit(&mut self, new: NewAuditEntry) -> StoreResult<AuditEntry> {
        audit::append_entry(self, new).await
    }

    async fn queue_audit(&mut self, new: NewAuditEntry) -> StoreResult<AuditEntryId> {
        audit::queue_entry(self, new).await
    }

    async fn queue_audits(&mut self, new: Vec<NewAuditEntry>) -> StoreResult<Vec<AuditEntryId>> {
        audit::queue_entries(self, new).await
    }

    async fn link_audit(&mut self) -> StoreResult<u64> {
        audit::link_entries(self).await
    }

    async fn verify_audit_chain(&mut self) -> StoreResult<ChainVerification> {
        audit::verify_chain(self).await
    }

    async fn resign_audit_head(&mut self) -> StoreResult<HeadResign> {
        audit::resign_audit_head(self).await
    }

    async fn adopt_audit_head(&mut self) -> StoreResult<bool> {
        audit::adopt_audit_head(self).await
    }

    async fn list_audit(
        &mut self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<AuditEntry>> {
        let limit = page.limit()?;
        let before = audit_cursor(page)?;
        let rows: Vec<AuditEntry> = sqlx::query_as(sql_fmt!(
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
        .bind(ts_opt(&filter.since))
        .bind(before)
        .bind(i64::from(limit) + 1)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(audit_page(rows, limit))
    }

    async fn audit_chain_after(
        &mut self,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>> {
        Ok(sqlx::query_as(sql_fmt!(
            "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await?)
    }
}

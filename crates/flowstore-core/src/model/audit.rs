//! The audit log (seeds 003 and 004): who did what to which entity, with the entity
//! before and after. The log is append-only (triggers refuse UPDATE and DELETE in
//! both backends) and hash-chained: each entry's hash covers the previous entry's hash
//! and the entry itself ([`crate::model::audit_chain`]), so an entry edited or removed
//! by someone who bypassed the triggers breaks the chain where it stood.
//!
//! The chain cannot show its newest entries removed, since what is left is still a
//! valid chain; the signed head ([`crate::model::audit_head`]) does: every append
//! signs the new newest entry's `seq` and hash with a key derived from the encryption
//! key, and verification compares the newest stored entry with it.
//!
//! An entry is appended in the caller's transaction, so it is written if and only if
//! the change it describes is, together with its head. Appenders are serialised
//! (PostgreSQL: a transaction advisory lock; SQLite: the writer lock every write
//! transaction holds), so two concurrent appends never fork the chain nor sign
//! different heads.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::AuditEntryId;
use crate::model::audit_chain::{entry_hash, ChainVerifier, GENESIS_HASH};
use crate::model::audit_head::{
    compare_head, missing_head, next_link, resign_head, AuditHead, HeadResign,
};
use crate::store::KeySource;
use crate::text_enum;
use crate::time::Timestamp;
use crate::validate;
use crate::{Page, PageRequest, StoreError, StoreResult};

pub use crate::model::audit_chain::{BrokenLink, ChainVerification};
pub use crate::model::audit_head::HeadMismatch;

text_enum!(
    /// Whom `actor_id` identifies.
    ActorType, "actor_type" {
        /// A user (signed in with a session, or through an API key of theirs).
        User => "user",
        /// An API key that acts for no user (such as the bootstrap admin key).
        ApiKey => "api_key",
        /// flowstore itself, or a client not yet identified (a failed sign-in).
        System => "system",
    }
);

/// Longest action and entity type accepted, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// One entry of the audit log as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Its place in the chain, from 1 without gaps.
    pub seq: i64,
    /// Its ID.
    pub id: AuditEntryId,
    /// Whom `actor_id` identifies.
    pub actor_type: ActorType,
    /// Who acted: a user ID, an API key ID, or none.
    pub actor_id: Option<String>,
    /// What was done, such as `workflow.update`.
    pub action: String,
    /// The kind of entity, such as `workflow`.
    pub entity_type: String,
    /// Which entity.
    pub entity_id: Option<String>,
    /// The entity before the change (none for a creation).
    pub before: Option<Value>,
    /// The entity after the change (none for a deletion).
    pub after: Option<Value>,
    /// The client's address, when known.
    pub ip_address: Option<String>,
    /// The request that made the change, to find its logs.
    pub request_id: Option<String>,
    /// When it was written.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// The hash of the entry before it ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// SHA-256 over `prev_hash` and the canonical form of this entry.
    pub hash: String,
}

/// What a caller gives to append an entry; the store adds `seq`, the ID, the time
/// and the hashes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(deny_unknown_fields)]
pub struct NewAuditEntry {
    /// Whom `actor_id` identifies.
    pub actor_type: ActorType,
    /// Who acted; at most 255 characters.
    pub actor_id: Option<String>,
    /// What was done; 1 to 100 characters.
    pub action: String,
    /// The kind of entity; 1 to 100 characters.
    pub entity_type: String,
    /// Which entity; at most 255 characters.
    pub entity_id: Option<String>,
    /// The entity before the change; at most 1 MiB of JSON.
    pub before: Option<Value>,
    /// The entity after the change; at most 1 MiB of JSON.
    pub after: Option<Value>,
    /// The client's address; at most 64 characters.
    pub ip_address: Option<String>,
    /// The request's ID; at most 128 characters.
    pub request_id: Option<String>,
}

impl NewAuditEntry {
    /// An entry with no before, after, address or request.
    pub fn new(
        actor_type: ActorType,
        actor_id: Option<String>,
        action: impl Into<String>,
        entity_type: impl Into<String>,
        entity_id: Option<String>,
    ) -> Self {
        NewAuditEntry {
            actor_type,
            actor_id,
            action: action.into(),
            entity_type: entity_type.into(),
            entity_id,
            before: None,
            after: None,
            ip_address: None,
            request_id: None,
        }
    }

    /// Checks every field; the entry as it will be stored (texts trimmed).
    pub fn checked(self) -> StoreResult<Self> {
        for (field, v) in [("before", &self.before), ("after", &self.after)] {
            if let Some(v) = v {
                validate::json_size(field, v)?;
            }
        }
        Ok(NewAuditEntry {
            actor_type: self.actor_type,
            actor_id: validate::optional_text("actor_id", self.actor_id.as_deref(), 255)?,
            action: validate::required_text("action", &self.action, MAX_NAME_CHARS)?,
            entity_type: validate::required_text("entity_type", &self.entity_type, MAX_NAME_CHARS)?,
            entity_id: validate::optional_text("entity_id", self.entity_id.as_deref(), 255)?,
            before: self.before,
            after: self.after,
            ip_address: validate::optional_text("ip_address", self.ip_address.as_deref(), 64)?,
            request_id: validate::optional_text("request_id", self.request_id.as_deref(), 128)?,
        })
    }

    /// Checks every field and builds the entry that follows `prev` (`None` when the
    /// log is empty), hashes included.
    pub fn into_entry(self, prev: Option<(i64, &str)>, now: Timestamp) -> StoreResult<AuditEntry> {
        Ok(self
            .checked()?
            .link(AuditEntryId::new(), crate::time::truncate(now), prev))
    }

    /// The entry, already checked, as the one that follows `prev`, hashes included.
    fn link(
        self,
        id: AuditEntryId,
        created_at: Timestamp,
        prev: Option<(i64, &str)>,
    ) -> AuditEntry {
        let (prev_seq, prev_hash) = prev.unwrap_or((0, GENESIS_HASH));
        let mut e = AuditEntry {
            seq: prev_seq + 1,
            id,
            actor_type: self.actor_type,
            actor_id: self.actor_id,
            action: self.action,
            entity_type: self.entity_type,
            entity_id: self.entity_id,
            before: self.before,
            after: self.after,
            ip_address: self.ip_address,
            request_id: self.request_id,
            created_at,
            prev_hash: prev_hash.to_string(),
            hash: String::new(),
        };
        e.hash = entry_hash(&e);
        e
    }
}

/// An entry queued by the change it describes ([`AuditRepo::queue_audit`]), not yet
/// linked into the chain.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct QueuedAuditEntry {
    /// Its place in the queue: entries are linked in this order.
    pub id: i64,
    /// The ID the entry keeps in the log.
    pub entry_id: AuditEntryId,
    /// When it was queued, which the log keeps as its time.
    pub created_at: Timestamp,
    /// The entry, checked when it was queued.
    #[sqlx(flatten)]
    pub entry: NewAuditEntry,
}

/// Filters for listing the audit log; every one given must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    /// Only entries of this actor (a user or API key ID).
    pub actor_id: Option<String>,
    /// Only entries about this kind of entity.
    pub entity_type: Option<String>,
    /// Only entries about this entity.
    pub entity_id: Option<String>,
    /// Only entries of this action.
    pub action: Option<String>,
    /// Only entries written at or after this instant.
    pub since: Option<Timestamp>,
}

/// The `seq` a page of the audit log starts below, from its cursor (the `seq` of
/// the last entry of the previous page, in decimal).
pub fn audit_cursor(page: &PageRequest) -> StoreResult<Option<i64>> {
    match page.cursor.as_deref() {
        None | Some("") => Ok(None),
        Some(c) => c
            .parse::<i64>()
            .ok()
            .filter(|s| *s >= 1)
            .map(Some)
            .ok_or_else(|| StoreError::invalid("cursor", "is not a cursor this server issued")),
    }
}

/// Builds a page of the audit log from up to `limit + 1` rows, newest first.
pub fn audit_page(mut rows: Vec<AuditEntry>, limit: u32) -> Page<AuditEntry> {
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|e| e.seq.to_string())
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}

/// Entries read per round when verifying the chain.
pub const VERIFY_BATCH: u32 = 1000;

/// Storage operations on the audit log. Every method runs on the caller's
/// transaction.
#[async_trait]
pub trait AuditRepo: Send {
    /// Appends an entry after the last one, in this transaction, and signs the head
    /// over it. Concurrent appenders wait for each other until the first commits,
    /// so keep the append near the end of the transaction. Fails when the head is
    /// signed with a key that is not configured (the error names it).
    async fn append_audit(&mut self, new: NewAuditEntry) -> StoreResult<AuditEntry>;

    /// Checks an entry and queues it in this transaction, to be linked into the
    /// chain after the transaction commits ([`AuditRepo::link_audit`]); returns the
    /// ID the entry will have. Unlike [`AuditRepo::append_audit`] it waits for no
    /// other appender, so concurrent changes commit side by side. The entry is
    /// written if and only if the change is; until it is linked, the log's readers
    /// do not show it and the chain does not protect it.
    async fn queue_audit(&mut self, new: NewAuditEntry) -> StoreResult<AuditEntryId>;

    /// Queues many entries as [`AuditRepo::queue_audit`] queues one, in order,
    /// several to a statement; an entry refused names its place (`entries[i]`).
    async fn queue_audits(&mut self, new: Vec<NewAuditEntry>) -> StoreResult<Vec<AuditEntryId>>;

    /// Links every queued entry that has committed into the chain, in the order
    /// they were queued, and signs the head over the last; returns how many it
    /// linked. Holds the append lock until the transaction ends.
    async fn link_audit(&mut self) -> StoreResult<u64>;

    /// A page of entries, newest first, keyset-paged by `seq`.
    async fn list_audit(
        &mut self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<AuditEntry>>;

    /// Up to `limit` entries with `seq` above `after_seq`, oldest first, as stored
    /// (hashes included): what verification reads.
    async fn audit_chain_after(
        &mut self,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>>;

    /// Walks the whole chain from the first entry and reports the first entry whose
    /// place, link or hash is wrong, then compares the newest entry with the signed
    /// head and reports entries removed from the end (see [`verify_chain`]).
    async fn verify_audit_chain(&mut self) -> StoreResult<ChainVerification>;

    /// Signs the head again with the current key when it verifies with an older
    /// one (what `flowstore keys rotate` does, so that the old key can go).
    async fn resign_audit_head(&mut self) -> StoreResult<HeadResign>;

    /// Signs the newest entry as the head of a log that has entries and no head;
    /// returns whether it did. For a restore from an archive without a head (made
    /// before there was one, or of some tables only), run by an operator holding
    /// the key; the migration that added the head does the same. Never part of an
    /// append: there, a missing head is evidence that the end of the log was cut.
    async fn adopt_audit_head(&mut self) -> StoreResult<bool>;
}

/// The statements under [`AuditRepo`]'s operations, which are written once on top of
/// them ([`append_entry`], [`verify_chain`], [`resign_audit_head`]). Not for callers:
/// writing a head or an entry directly bypasses the chain.
#[async_trait]
pub trait AuditStore: Send {
    /// Where the keys that sign the head come from.
    fn audit_keys(&self) -> Arc<KeySource>;

    /// Takes the lock that serialises appenders until the transaction ends (on
    /// SQLite the writer lock every write transaction holds already is that lock).
    async fn lock_audit_log(&mut self) -> StoreResult<()>;

    /// The `seq` and hash of the newest stored entry.
    async fn audit_tail(&mut self) -> StoreResult<Option<(i64, String)>>;

    /// The signed head, if there is one.
    async fn audit_head(&mut self) -> StoreResult<Option<AuditHead>>;

    /// Writes the head (there is one head row).
    async fn write_audit_head(&mut self, head: &AuditHead) -> StoreResult<()>;

    /// Inserts entries as they are, in order.
    async fn insert_audit_entries(&mut self, entries: &[AuditEntry]) -> StoreResult<()>;

    /// Inserts entries, already checked, into the queue, in order, as queued at
    /// `created_at`.
    async fn insert_queued_audit(
        &mut self,
        created_at: Timestamp,
        entries: &[(AuditEntryId, NewAuditEntry)],
    ) -> StoreResult<()>;

    /// Whether the queue holds any entry this transaction can see.
    async fn has_queued_audit(&mut self) -> StoreResult<bool>;

    /// Removes up to `limit` of the oldest committed entries from the queue (and any
    /// this transaction queued) and returns them, oldest first.
    async fn take_queued_audit(&mut self, limit: u32) -> StoreResult<Vec<QueuedAuditEntry>>;
}

/// Queued entries linked per statement.
pub const LINK_BATCH: u32 = 1000;

/// [`AuditRepo::append_audit`] on top of the backend's statements: under the lock,
/// the entry is queued and linked with every committed entry queued before it
/// ([`link_locked`]), so the chain keeps one order.
pub async fn append_entry<S: AuditStore + ?Sized>(
    store: &mut S,
    new: NewAuditEntry,
) -> StoreResult<AuditEntry> {
    // The keyring before the lock: its first use may read (or create) the key file,
    // which other appenders need not wait for.
    let keys = store.audit_keys();
    let ring = keys.keyring()?;
    store.lock_audit_log().await?;
    let id = queue_entry(store, new).await?;
    let (_, entry) = link_locked(store, ring, Some(id)).await?;
    entry.ok_or_else(|| StoreError::internal("an appended audit entry was not linked"))
}

/// [`AuditRepo::queue_audit`]: checks the entry and queues it.
pub async fn queue_entry<S: AuditStore + ?Sized>(
    store: &mut S,
    new: NewAuditEntry,
) -> StoreResult<AuditEntryId> {
    let new = new.checked()?;
    let id = AuditEntryId::new();
    store
        .insert_queued_audit(crate::time::truncate(crate::time::now()), &[(id, new)])
        .await?;
    Ok(id)
}

/// [`AuditRepo::queue_audits`]: checks every entry, then queues them together.
pub async fn queue_entries<S: AuditStore + ?Sized>(
    store: &mut S,
    new: Vec<NewAuditEntry>,
) -> StoreResult<Vec<AuditEntryId>> {
    let entries = new
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            e.checked()
                .map(|e| (AuditEntryId::new(), e))
                .map_err(|err| err.within(&format!("entries[{i}]")))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    store
        .insert_queued_audit(crate::time::truncate(crate::time::now()), &entries)
        .await?;
    Ok(entries.into_iter().map(|(id, _)| id).collect())
}

/// [`AuditRepo::link_audit`] on top of the backend's statements.
pub async fn link_entries<S: AuditStore + ?Sized>(store: &mut S) -> StoreResult<u64> {
    // Looked at before the lock, which an idle server's linker and the log's
    // readers then do not wait for.
    if !store.has_queued_audit().await? {
        return Ok(0);
    }
    let keys = store.audit_keys();
    let ring = keys.keyring()?;
    store.lock_audit_log().await?;
    Ok(link_locked(store, ring, None).await?.0)
}

/// Under the append lock: links the queued entries after what [`next_link`] says
/// (the signed head, as a rule), oldest first, and signs the head over the last in
/// the same transaction. Returns how many it linked and, among them, the entry
/// `wanted`. Read after the lock: whoever held it before has committed its entries
/// and head.
async fn link_locked<S: AuditStore + ?Sized>(
    store: &mut S,
    ring: &crate::crypto::Keyring,
    wanted: Option<AuditEntryId>,
) -> StoreResult<(u64, Option<AuditEntry>)> {
    let tail = store.audit_tail().await?;
    let head = store.audit_head().await?;
    let link = next_link(ring, tail, head.as_ref())?;
    let mut last = link.after;
    let (mut linked, mut found) = (0, None);
    loop {
        let batch = store.take_queued_audit(LINK_BATCH).await?;
        let full = batch.len() == LINK_BATCH as usize;
        let mut entries = Vec::with_capacity(batch.len());
        for q in batch {
            let e = q.entry.link(
                q.entry_id,
                q.created_at,
                last.as_ref().map(|(s, h)| (*s, h.as_str())),
            );
            last = Some((e.seq, e.hash.clone()));
            entries.push(e);
        }
        store.insert_audit_entries(&entries).await?;
        linked += entries.len() as u64;
        if let Some(w) = wanted {
            found = found.or_else(|| entries.into_iter().find(|e| e.id == w));
        }
        if !full {
            break;
        }
    }
    if let (true, true, Some((seq, hash))) = (link.sign, linked > 0, &last) {
        store
            .write_audit_head(&AuditHead::sign(ring, *seq, hash))
            .await?;
    }
    Ok((linked, found))
}

/// Links the queued audit entries that have committed, in a transaction of its own
/// ([`AuditRepo::link_audit`]); returns how many. What the log's readers call
/// first, so that they show every committed change, and what a server does after
/// changes that queued their entries.
pub async fn link_queued(backend: &dyn crate::store::Backend) -> StoreResult<u64> {
    let mut tx = backend.begin().await?;
    let linked = tx.link_audit().await?;
    tx.commit().await?;
    Ok(linked)
}

/// [`AuditRepo::verify_audit_chain`]: walks the chain in batches, then compares the
/// newest stored entry (wherever the walk stopped) with the signed head.
pub async fn verify_chain<S: AuditRepo + AuditStore + ?Sized>(
    store: &mut S,
) -> StoreResult<ChainVerification> {
    let mut v = ChainVerifier::default();
    let mut after = 0;
    'walk: loop {
        let batch = store.audit_chain_after(after, VERIFY_BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        let full = batch.len() as u32 == VERIFY_BATCH;
        for e in &batch {
            if !v.push(e) {
                break 'walk;
            }
        }
        if !full {
            break;
        }
    }
    let mut result = v.finish();
    let tail = store.audit_tail().await?;
    let tail = tail.as_ref().map(|(s, h)| (*s, h.as_str()));
    result.head_mismatch = match store.audit_head().await? {
        None => missing_head(tail),
        Some(head) => {
            let keys = store.audit_keys();
            compare_head(keys.keyring()?, tail, &head)
        }
    };
    Ok(result)
}

/// [`AuditRepo::resign_audit_head`]: under the append lock, signs a head that
/// verifies with an older key again with the current one ([`resign_head`]).
pub async fn resign_audit_head<S: AuditStore + ?Sized>(store: &mut S) -> StoreResult<HeadResign> {
    let keys = store.audit_keys();
    let ring = keys.keyring()?;
    store.lock_audit_log().await?;
    let Some(head) = store.audit_head().await? else {
        return Ok(HeadResign::Absent);
    };
    let (what, new) = resign_head(ring, &head)?;
    if let Some(new) = new {
        store.write_audit_head(&new).await?;
    }
    Ok(what)
}

/// [`AuditRepo::adopt_audit_head`] on top of the backend's statements.
pub async fn adopt_audit_head<S: AuditStore + ?Sized>(store: &mut S) -> StoreResult<bool> {
    store.lock_audit_log().await?;
    let head = store.audit_head().await?;
    let tail = store.audit_tail().await?;
    let keys = store.audit_keys();
    match adopted_head(&keys, tail, head.as_ref())? {
        Some(h) => {
            store.write_audit_head(&h).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// The head to write for a log that has entries but no head: its newest entry,
/// signed with the current key. `None` when the log is empty or has a head (the key
/// is then not even loaded).
pub fn adopted_head(
    keys: &KeySource,
    tail: Option<(i64, String)>,
    head: Option<&AuditHead>,
) -> StoreResult<Option<AuditHead>> {
    match (tail, head) {
        (Some((seq, hash)), None) => Ok(Some(AuditHead::sign(keys.keyring()?, seq, &hash))),
        _ => Ok(None),
    }
}

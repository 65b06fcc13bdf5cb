//! Operations on a whole database: integrity checks and repairs, statistics, vacuum
//! and retention. Each backend implements [`AdminBackend`] with its own SQL; the
//! functions here run the parts that are the same on both (the order of repairs,
//! batching, the reaper through the engine) so both backends behave alike.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::store::{Backend, BackendKind};
use crate::time::{now, Timestamp};
use crate::{StoreError, StoreResult};

/// Rows per table, by table name.
pub type TableCounts = BTreeMap<String, u64>;

/// What a finding of `check` is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A row whose parent row is gone.
    Orphan,
    /// A task depending on a task of another run.
    CrossRunDependency,
    /// A running task whose lease has expired.
    ExpiredLease,
    /// A terminal run that still has pending, ready or running tasks.
    TerminalRunOpenTasks,
    /// A ready, running or completed task with a dependency not completed.
    PrematureTask,
    /// A pending task of a live run whose dependencies are all completed.
    LostPromotion,
    /// `workflow_stats` disagrees with a recount of `workflow_executions`.
    WorkflowStatsDrift,
    /// `metric_rollups` disagrees with a recount of `workflow_metrics`.
    MetricRollupDrift,
    /// The full-text search disagrees with the tasks: a task missing from it or
    /// found by words it no longer has, or an entry left by a deleted task.
    SearchDrift,
    /// A session past its expiry that is still stored.
    ExpiredSession,
    /// An account lock whose time has passed.
    StaleLock,
    /// The database's own integrity check failed (corrupt pages, broken b-trees).
    Corruption,
    /// An index PostgreSQL marked invalid (a failed concurrent build).
    InvalidIndex,
    /// An entry of the audit log that does not verify against the hash chain, or
    /// an end of the log that does not match its signed head.
    BrokenAuditChain,
    /// A credential past its `expires_at` (revealing it is refused).
    ExpiredCredential,
    /// A credential that expires within [`CREDENTIAL_EXPIRY_NOTICE_DAYS`].
    ExpiringCredential,
    /// A migration applied from other SQL than this binary carries, applied by a
    /// newer flowstore, or not applied.
    MigrationDrift,
    /// A row whose key is NULL (written by another client where SQLite let it):
    /// flowstore cannot address it.
    NullKey,
}

/// How many days ahead `check` reports credentials about to expire.
pub const CREDENTIAL_EXPIRY_NOTICE_DAYS: u32 = 7;

impl FindingKind {
    /// The order repairs run in: leases first (reaping changes task states), then the
    /// rows that others depend on, counters last (they recount what the rest left).
    pub const REPAIR_ORDER: [FindingKind; 18] = [
        FindingKind::ExpiredLease,
        FindingKind::Orphan,
        FindingKind::CrossRunDependency,
        FindingKind::TerminalRunOpenTasks,
        FindingKind::PrematureTask,
        FindingKind::LostPromotion,
        FindingKind::ExpiredSession,
        FindingKind::StaleLock,
        FindingKind::InvalidIndex,
        FindingKind::Corruption,
        FindingKind::WorkflowStatsDrift,
        FindingKind::MetricRollupDrift,
        FindingKind::SearchDrift,
        FindingKind::BrokenAuditChain,
        FindingKind::ExpiredCredential,
        FindingKind::ExpiringCredential,
        FindingKind::MigrationDrift,
        FindingKind::NullKey,
    ];

    /// The kind's name as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Orphan => "orphan",
            FindingKind::CrossRunDependency => "cross_run_dependency",
            FindingKind::ExpiredLease => "expired_lease",
            FindingKind::TerminalRunOpenTasks => "terminal_run_open_tasks",
            FindingKind::PrematureTask => "premature_task",
            FindingKind::LostPromotion => "lost_promotion",
            FindingKind::WorkflowStatsDrift => "workflow_stats_drift",
            FindingKind::MetricRollupDrift => "metric_rollup_drift",
            FindingKind::SearchDrift => "search_drift",
            FindingKind::ExpiredSession => "expired_session",
            FindingKind::StaleLock => "stale_lock",
            FindingKind::Corruption => "corruption",
            FindingKind::InvalidIndex => "invalid_index",
            FindingKind::BrokenAuditChain => "broken_audit_chain",
            FindingKind::ExpiredCredential => "expired_credential",
            FindingKind::ExpiringCredential => "expiring_credential",
            FindingKind::MigrationDrift => "migration_drift",
            FindingKind::NullKey => "null_key",
        }
    }
}

/// One problem `check` found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// What kind of problem.
    pub kind: FindingKind,
    /// The table concerned.
    pub table: String,
    /// How many rows (or objects) are affected.
    pub count: u64,
    /// A few of the affected IDs, for a human to look at.
    pub examples: Vec<String>,
    /// What exactly is wrong.
    pub detail: String,
}

/// What `--fix` did for one kind of finding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Repair {
    /// The kind repaired.
    pub kind: FindingKind,
    /// Rows changed or deleted by the repair.
    pub fixed: u64,
    /// Why nothing was done, when the kind cannot be repaired safely.
    pub note: Option<String>,
}

/// The result of `check`, with repairs when asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Which database.
    pub backend: BackendKind,
    /// What the first pass found.
    pub findings: Vec<Finding>,
    /// What the repairs did (empty without `--fix`).
    pub repairs: Vec<Repair>,
    /// What a second pass still finds after the repairs (the findings without `--fix`).
    pub remaining: Vec<Finding>,
    /// What this backend could not check, and why.
    pub notes: Vec<String>,
}

impl CheckReport {
    /// True when no problem remains.
    pub fn is_clean(&self) -> bool {
        self.remaining.is_empty()
    }
}

/// Size and row count of one table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableStat {
    /// The table.
    pub name: String,
    /// Its rows (an exact count).
    pub rows: u64,
    /// Its bytes with indexes, when the backend can tell.
    pub bytes: Option<u64>,
    /// Dead row versions waiting for vacuum (PostgreSQL).
    pub dead_rows: Option<u64>,
}

/// Use of one index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexStat {
    /// The index.
    pub name: String,
    /// Its table.
    pub table: String,
    /// Scans since statistics were reset, when the backend counts them.
    pub scans: Option<u64>,
    /// Its size in bytes, when the backend can tell.
    pub bytes: Option<u64>,
}

/// Connections to the database.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionStats {
    /// Connections this process's pool holds.
    pub pool_size: u32,
    /// Of those, idle ones.
    pub pool_idle: u32,
    /// Sessions on the server for this database by state (PostgreSQL).
    pub server_by_state: BTreeMap<String, u64>,
}

/// One statement from `pg_stat_statements`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlowStatement {
    /// The normalised statement.
    pub query: String,
    /// How often it ran.
    pub calls: u64,
    /// Mean time per call in milliseconds.
    pub mean_ms: f64,
    /// Total time in milliseconds.
    pub total_ms: f64,
    /// Longest run in milliseconds, when known (flowstore's own records).
    #[serde(default)]
    pub max_ms: Option<f64>,
}

/// What `stats` reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DbStats {
    /// Which database.
    pub backend: BackendKind,
    /// The database's size in bytes.
    pub database_bytes: u64,
    /// Each table.
    pub tables: Vec<TableStat>,
    /// Each index.
    pub indexes: Vec<IndexStat>,
    /// Indexes never scanned (PostgreSQL; empty when the backend cannot tell).
    pub unused_indexes: Vec<String>,
    /// Connections.
    pub connections: ConnectionStats,
    /// The slowest statements by mean time (PostgreSQL with pg_stat_statements);
    /// flowstore's own records of slow statements are `slow::recorded`.
    pub slow_statements: Vec<SlowStatement>,
    /// Free pages in the file (SQLite), space a vacuum gives back.
    pub freelist_pages: Option<u64>,
    /// Dead row versions over all tables (PostgreSQL).
    pub dead_rows: Option<u64>,
    /// What the backend cannot tell, and why.
    pub notes: Vec<String>,
}

/// What `vacuum` did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VacuumReport {
    /// Which database.
    pub backend: BackendKind,
    /// The database's size before.
    pub bytes_before: u64,
    /// The database's size after.
    pub bytes_after: u64,
    /// `bytes_before - bytes_after`, 0 when it grew.
    pub reclaimed: u64,
    /// The statements run, in order.
    pub steps: Vec<String>,
}

/// What a retention pass deleted (or, dry, would delete).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CleanupReport {
    /// Rows older than this were eligible.
    pub cutoff: Timestamp,
    /// Nothing was deleted.
    pub dry_run: bool,
    /// Rows deleted (or that would be) per table.
    pub deleted: TableCounts,
    /// Transactions used.
    pub batches: u64,
    /// The database's size before.
    pub bytes_before: u64,
    /// The database's size after (after the space was reclaimed).
    pub bytes_after: u64,
    /// `bytes_before - bytes_after`, 0 when it did not shrink.
    pub bytes_freed: u64,
}

/// A retention policy: delete finished runs and loose history older than
/// `older_than`, every `interval`. `serve` runs it on its schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// Age beyond which finished work is deleted, such as `90d`.
    #[serde(with = "duration_text")]
    pub older_than: Duration,
    /// How often to run, such as `1h`.
    #[serde(with = "duration_text")]
    pub interval: Duration,
}

/// The database-specific half of `flowstore check`: finding problems and repairing
/// them.
#[async_trait]
pub trait AdminBackend: Maintenance + Send + Sync {
    /// Finds every problem of every kind as of `now`; returns the findings and notes
    /// on what could not be checked.
    async fn find_problems(&self, now: Timestamp) -> StoreResult<(Vec<Finding>, Vec<String>)>;

    /// Repairs every problem of `kind` in one transaction; returns rows changed, or
    /// `Ok(None)` when the kind cannot be repaired safely here.
    async fn repair(&self, kind: FindingKind, now: Timestamp) -> StoreResult<Option<u64>>;
}

/// One pass of retention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetentionPass {
    /// Counts what the two deleting passes would delete, deleting nothing.
    Plan,
    /// Deletes up to this many finished runs with everything that belongs to them.
    Runs(u32),
    /// Deletes up to this many rows of each run-less history table.
    Loose(u32),
}

/// The database-specific half of the maintenance operations: statistics, vacuum,
/// retention and native backups.
#[async_trait]
pub trait Maintenance: Send + Sync {
    /// Sizes, counts, index use, connections and dead rows.
    async fn stats(&self) -> StoreResult<DbStats>;

    /// The database's size in bytes (for SQLite the file and its WAL).
    async fn database_bytes(&self) -> StoreResult<u64>;

    /// Writes the database's own backup to `path` (which must not exist): `VACUUM
    /// INTO` on SQLite, `pg_dump --format=custom` on PostgreSQL.
    async fn native_backup(&self, path: &std::path::Path) -> StoreResult<()>;

    /// Vacuums and analyses; with `full`, also reindexes (PostgreSQL) or optimises
    /// (SQLite). Returns the statements run.
    async fn vacuum_pass(&self, full: bool) -> StoreResult<Vec<String>>;

    /// Runs one retention pass (see [`RetentionPass`]) with `cutoff`; returns rows
    /// counted or deleted per table.
    async fn retention_pass(
        &self,
        cutoff: Timestamp,
        pass: RetentionPass,
    ) -> StoreResult<TableCounts>;

    /// Vacuums, analyses and reindexes; returns the statements run.
    async fn vacuum(&self) -> StoreResult<Vec<String>> {
        self.vacuum_pass(true).await
    }

    /// Counts what a retention pass with `cutoff` would delete, per table.
    async fn cleanup_plan(&self, cutoff: Timestamp) -> StoreResult<TableCounts> {
        self.retention_pass(cutoff, RetentionPass::Plan).await
    }

    /// Deletes up to `limit` finished runs older than `cutoff` with everything that
    /// belongs to them, in one short transaction; returns rows deleted per table.
    async fn cleanup_runs(&self, cutoff: Timestamp, limit: u32) -> StoreResult<TableCounts> {
        self.retention_pass(cutoff, RetentionPass::Runs(limit))
            .await
    }

    /// Deletes up to `limit` rows of each run-less history table (events, logs,
    /// system metrics) older than `cutoff`, in one short transaction.
    async fn cleanup_loose(&self, cutoff: Timestamp, limit: u32) -> StoreResult<TableCounts> {
        self.retention_pass(cutoff, RetentionPass::Loose(limit))
            .await
    }

    /// Gives freed space back to the file system after deletes (SQLite); PostgreSQL
    /// makes it reusable with a plain VACUUM.
    async fn reclaim(&self) -> StoreResult<()> {
        self.vacuum_pass(false).await.map(|_| ())
    }
}

/// Runs `check`: finds problems and, with `fix`, repairs each kind in its own
/// transaction, then checks again to report what remains.
pub async fn check(backend: &dyn Backend, fix: bool) -> StoreResult<CheckReport> {
    let admin = backend.admin();
    let (mut findings, notes) = admin.find_problems(now()).await?;
    findings.extend(audit_chain_finding(backend).await?);
    findings.extend(migration_findings(backend).await?);
    let mut repairs = Vec::new();
    let remaining = if fix && !findings.is_empty() {
        for kind in FindingKind::REPAIR_ORDER {
            if !findings.iter().any(|f| f.kind == kind) {
                continue;
            }
            let done = if kind == FindingKind::ExpiredLease {
                // Exactly what the engine's reaper does, through the engine itself.
                let mut tx = backend.begin().await?;
                let mut n = 0u64;
                loop {
                    let reaped = tx.reap_expired_leases(500).await?;
                    if reaped.is_empty() {
                        break;
                    }
                    n += reaped.len() as u64;
                }
                tx.commit().await?;
                Some(n)
            } else {
                admin.repair(kind, now()).await?
            };
            repairs.push(match done {
                Some(fixed) => Repair {
                    kind,
                    fixed,
                    note: None,
                },
                None => Repair {
                    kind,
                    fixed: 0,
                    note: Some(unrepairable(kind).into()),
                },
            });
        }
        let mut remaining = admin.find_problems(now()).await?.0;
        remaining.extend(audit_chain_finding(backend).await?);
        remaining.extend(migration_findings(backend).await?);
        // A kind that is still found after its repair was (partly) left on purpose.
        for r in &mut repairs {
            if r.note.is_none() && remaining.iter().any(|f| f.kind == r.kind) {
                r.note = Some(unrepairable(r.kind).into());
            }
        }
        remaining
    } else {
        findings.clone()
    };
    Ok(CheckReport {
        backend: backend.kind(),
        findings,
        repairs,
        remaining,
        notes,
    })
}

/// Migrations that differ from what this binary carries: edited after they were
/// applied, applied by a newer flowstore, or not applied. One finding per state.
async fn migration_findings(backend: &dyn Backend) -> StoreResult<Vec<Finding>> {
    use crate::migrate::MigrationState;
    let status = backend.migration_status().await?;
    let mut out = Vec::new();
    for (state, detail) in [
        (
            MigrationState::Edited,
            "applied from other SQL than this binary carries (edited after it was applied)",
        ),
        (
            MigrationState::Unknown,
            "applied by a newer flowstore: this binary does not know it",
        ),
        (
            MigrationState::Pending,
            "not applied: run `flowstore migrate up`",
        ),
    ] {
        let hits: Vec<&crate::migrate::MigrationStatus> =
            status.iter().filter(|m| m.state == state).collect();
        if !hits.is_empty() {
            out.push(Finding {
                kind: FindingKind::MigrationDrift,
                table: "schema_migrations".into(),
                count: hits.len() as u64,
                examples: hits
                    .iter()
                    .take(5)
                    .map(|m| format!("{} {}", m.version, m.name))
                    .collect(),
                detail: detail.into(),
            });
        }
    }
    Ok(out)
}

/// Walks the audit log's hash chain and compares its end with the signed head; a
/// finding for the first entry that does not verify and one for entries missing at
/// the end (or a head removed or forged). The walk is the same on both backends, so
/// it lives here rather than in [`AdminBackend::find_problems`]. The queued entries
/// of committed changes are linked first, so every committed entry is checked.
async fn audit_chain_finding(backend: &dyn Backend) -> StoreResult<Vec<Finding>> {
    // A link that fails (the head's key not configured) leaves the linked entries
    // to walk; the walk reports what is wrong with the head.
    if let Err(e) = crate::model::audit::link_queued(backend).await {
        tracing::warn!(error = %e, "could not link the queued audit entries before the walk");
    }
    let mut tx = backend.begin_read().await?;
    let verified = tx.verify_audit_chain().await;
    let _ = tx.rollback().await;
    let verified = verified?;
    let mut out = Vec::new();
    if let Some(b) = verified.first_broken {
        out.push(Finding {
            kind: FindingKind::BrokenAuditChain,
            table: "audit_log".into(),
            count: 1,
            examples: vec![format!("seq {} ({})", b.seq, b.id)],
            detail: format!("the hash chain breaks at seq {}: {}", b.seq, b.reason),
        });
    }
    if let Some(m) = verified.head_mismatch {
        let (count, examples) = match (m.missing_from, m.missing_to) {
            (Some(from), Some(to)) => (
                (to - from + 1).max(1) as u64,
                vec![format!("seq {from}..={to} missing")],
            ),
            _ => (
                1,
                vec![match m.head_seq {
                    Some(seq) => format!("head at seq {seq}"),
                    None => "no head".into(),
                }],
            ),
        };
        out.push(Finding {
            kind: FindingKind::BrokenAuditChain,
            table: "audit_head".into(),
            count,
            examples,
            detail: format!(
                "the end of the audit log does not match its signed head: {}",
                m.reason
            ),
        });
    }
    Ok(out)
}

fn unrepairable(kind: FindingKind) -> &'static str {
    match kind {
        FindingKind::BrokenAuditChain => {
            "the audit log is evidence and is never rewritten: compare it with a backup to see what was changed"
        }
        FindingKind::Corruption => {
            "corrupt pages cannot be repaired in place: restore from a backup or dump what is readable"
        }
        FindingKind::ExpiredCredential | FindingKind::ExpiringCredential => {
            "a secret cannot be renewed here: give the credential new data and expires_at (PATCH /api/v1/credentials/ID), or delete it"
        }
        FindingKind::PrematureTask => {
            "ready tasks were returned to pending; running or completed tasks are left for an operator"
        }
        FindingKind::MigrationDrift => {
            "pending migrations apply with `flowstore migrate up`; an edited or unknown one needs the flowstore that applied it, or a restore"
        }
        FindingKind::NullKey => {
            "rows without a key are not deleted automatically: look at them (rowid given) and delete or re-key them by hand"
        }
        _ => "not repaired automatically",
    }
}

/// Runs `vacuum` and measures the size before and after.
pub async fn vacuum(backend: &dyn Backend) -> StoreResult<VacuumReport> {
    let admin = backend.admin();
    let bytes_before = admin.database_bytes().await?;
    let steps = admin.vacuum().await?;
    let bytes_after = admin.database_bytes().await?;
    Ok(VacuumReport {
        backend: backend.kind(),
        bytes_before,
        bytes_after,
        reclaimed: bytes_before.saturating_sub(bytes_after),
        steps,
    })
}

/// Deletes finished runs and loose history older than `older_than`, `batch_size`
/// runs (or rows) per transaction; `dry_run` only counts. `progress` is told the
/// running total after each batch.
pub async fn cleanup(
    backend: &dyn Backend,
    older_than: Duration,
    batch_size: u32,
    dry_run: bool,
    progress: &(dyn Fn(&TableCounts) + Send + Sync),
) -> StoreResult<CleanupReport> {
    if older_than.is_zero() {
        return Err(StoreError::invalid("--older-than", "must be more than 0"));
    }
    if batch_size == 0 || batch_size > 100_000 {
        return Err(StoreError::invalid(
            "--batch-size",
            format!("{batch_size} is outside 1..=100000"),
        ));
    }
    let delta = chrono::TimeDelta::from_std(older_than)
        .map_err(|_| StoreError::invalid("--older-than", "is too long"))?;
    let cutoff = now()
        .checked_sub_signed(delta)
        .ok_or_else(|| StoreError::invalid("--older-than", "is too long"))?;
    let admin = backend.admin();
    let bytes_before = admin.database_bytes().await?;
    let mut deleted = TableCounts::new();
    let mut batches = 0;
    if dry_run {
        deleted = admin.cleanup_plan(cutoff).await?;
        batches = 1;
    } else {
        for runs in [true, false] {
            loop {
                let done = if runs {
                    admin.cleanup_runs(cutoff, batch_size).await?
                } else {
                    admin.cleanup_loose(cutoff, batch_size).await?
                };
                batches += 1;
                let rows: u64 = done.values().sum();
                for (t, n) in done {
                    *deleted.entry(t).or_default() += n;
                }
                progress(&deleted);
                if rows == 0 {
                    break;
                }
            }
        }
        admin.reclaim().await?;
    }
    deleted.retain(|_, n| *n > 0);
    let bytes_after = admin.database_bytes().await?;
    Ok(CleanupReport {
        cutoff,
        dry_run,
        deleted,
        batches,
        bytes_before,
        bytes_after,
        bytes_freed: bytes_before.saturating_sub(bytes_after),
    })
}

/// One pass of a retention policy, for a scheduler (`serve`) to call every
/// `policy.interval`.
pub async fn run_retention(
    backend: &dyn Backend,
    policy: &RetentionPolicy,
) -> StoreResult<CleanupReport> {
    cleanup(backend, policy.older_than, 500, false, &|_| {}).await
}

/// Parses a duration such as `90d`, `12h`, `30m`, `45s` or `250ms`; refuses zero
/// and anything else, naming `field`.
pub fn parse_duration(field: &str, text: &str) -> StoreResult<Duration> {
    let t = text.trim();
    let bad = || {
        StoreError::invalid(
            field,
            format!("{text:?} is not a duration such as 90d, 12h, 30m, 45s or 250ms"),
        )
    };
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let millis = match unit {
        "d" => n.checked_mul(86_400_000),
        "h" => n.checked_mul(3_600_000),
        "m" => n.checked_mul(60_000),
        "s" => n.checked_mul(1_000),
        "ms" => Some(n),
        _ => return Err(bad()),
    }
    .filter(|ms| *ms <= 100 * 365 * 86_400_000)
    .ok_or_else(|| StoreError::invalid(field, format!("{text:?} is too long")))?;
    if millis == 0 {
        return Err(StoreError::invalid(field, "must be more than 0"));
    }
    Ok(Duration::from_millis(millis))
}

/// Formats a duration the way [`parse_duration`] reads it.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

mod duration_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration("retention", &text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_refuse_garbage() {
        assert_eq!(
            parse_duration("x", "90d").unwrap(),
            Duration::from_secs(90 * 86_400)
        );
        assert_eq!(
            parse_duration("x", "12h").unwrap(),
            Duration::from_secs(43_200)
        );
        assert_eq!(
            parse_duration("x", "30m").unwrap(),
            Duration::from_secs(1_800)
        );
        assert_eq!(
            parse_duration("x", "250ms").unwrap(),
            Duration::from_millis(250)
        );
        for bad in [
            "0d",
            "0ms",
            "",
            "d",
            "90",
            "90x",
            "-1d",
            "1.5h",
            "99999999999d",
        ] {
            let e = parse_duration("--older-than", bad).unwrap_err();
            assert!(
                matches!(e, StoreError::Invalid { ref field, .. } if field == "--older-than"),
                "{bad}: {e:?}"
            );
        }
        assert_eq!(format_duration(Duration::from_secs(90 * 86_400)), "90d");
    }
}

//! Portable backup and restore, and the export and import of workflow definitions.
//!
//! A backup reads every table of the catalog ([`flowstore_core::archive`]) inside one
//! read snapshot and streams it into an archive ([`format`]); a restore checks the
//! whole archive before it writes anything, then loads it in one transaction. An
//! archive written from SQLite restores into PostgreSQL and the other way round.
//!
//! A backup of some tables only is a partial archive ([`Manifest::partial`]): it
//! restores beside what the database holds, once the restore has checked that
//! every row it points at is there and that nothing it would replace is pointed at
//! (the `partial` module).

pub mod crypt;
pub mod dir;
pub mod export;
pub mod format;
mod partial;

use std::path::Path;

use flowstore_core::archive::{self as catalog, Column, Row, Table};
use serde::Serialize;

pub use crypt::Secret;
use flowstore::{Store, StoreError, StoreResult};
pub use format::{verify, ArchiveSource, Manifest, TableEntry};

/// Rows handed to the database per insert batch.
const BATCH: usize = 500;

/// Told how far a backup or restore has got: the table and its rows so far.
pub type Progress<'a> = &'a (dyn Fn(&str, u64) + Send + Sync);

/// What a backup wrote.
#[derive(Clone, Debug, Serialize)]
pub struct BackupSummary {
    /// The archive.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Rows written, over all tables.
    pub rows: u64,
    /// The manifest.
    pub manifest: Manifest,
    /// For a partial archive, the tables its rows may point at that it does not
    /// hold: a restore needs their rows in the target database.
    pub references_outside: Vec<String>,
}

/// What a restore loaded.
#[derive(Clone, Debug, Serialize)]
pub struct RestoreSummary {
    /// The backend the archive came from.
    pub from: String,
    /// When the archive's snapshot was taken (RFC 3339).
    pub created_at: String,
    /// The database it was taken of, when the archive says (older ones do not).
    pub source: Option<ArchiveSource>,
    /// Whether the archive was encrypted.
    pub encrypted: bool,
    /// Its schema version.
    pub schema_version: i64,
    /// Rows loaded per table, in load order.
    pub tables: Vec<(String, u64)>,
    /// Rows loaded in all.
    pub rows: u64,
    /// Whether the archive held some tables only: then the other tables were left
    /// as they were (and `--replace` emptied only the archive's tables).
    pub partial: bool,
}

/// The highest migration this binary knows for `store`'s backend.
pub fn known_schema_version(store: &Store) -> i64 {
    store
        .backend()
        .migrations()
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// How a backup is made beyond its tables.
#[derive(Debug, Default)]
pub struct BackupOptions<'a> {
    /// Only these tables (all when `None`).
    pub tables: Option<&'a [String]>,
    /// Add the tables the chosen rows point at.
    pub with_references: bool,
    /// The database, recorded in the manifest (see [`ArchiveSource::from_url`]).
    pub source: Option<ArchiveSource>,
    /// Encrypt the archive with this passphrase or key.
    pub secret: Option<&'a Secret>,
}

/// Writes a portable archive of `tables` (all when `None`) to `path`, from one
/// consistent snapshot, in constant memory. On any failure no file named `path`
/// is left, nor any partial file. See [`backup_tables`].
pub async fn backup(
    store: &Store,
    path: &Path,
    tables: Option<&[String]>,
    progress: Progress<'_>,
) -> StoreResult<BackupSummary> {
    backup_tables(store, path, tables, false, progress).await
}

/// Like [`backup`]; with `with_references`, the chosen tables come with every table
/// their rows may point at (and so on), so that the archive restores into any
/// database. A backup of less than every table is a partial archive: its manifest
/// names the tables asked for, and a table the database derives from others
/// (`workflow_stats`) is refused in it.
pub async fn backup_tables(
    store: &Store,
    path: &Path,
    tables: Option<&[String]>,
    with_references: bool,
    progress: Progress<'_>,
) -> StoreResult<BackupSummary> {
    let options = BackupOptions {
        tables,
        with_references,
        ..BackupOptions::default()
    };
    backup_with(store, path, &options, progress).await
}

/// A backup as [`backup_tables`] makes it, with the source recorded and the
/// archive encrypted as `options` say.
pub async fn backup_with(
    store: &Store,
    path: &Path,
    options: &BackupOptions<'_>,
    progress: Progress<'_>,
) -> StoreResult<BackupSummary> {
    let (tables, with_references) = (options.tables, options.with_references);
    let chosen = catalog::select(tables, "--tables")?;
    let selected = if with_references {
        catalog::with_references(&chosen)
    } else {
        chosen.clone()
    };
    let partial = (selected.len() < catalog::catalog().len()).then(|| {
        chosen
            .iter()
            .map(|t| t.name.to_string())
            .collect::<Vec<_>>()
    });
    if partial.is_some() {
        if let Some(t) = selected.iter().find(|t| t.derived) {
            return Err(StoreError::invalid(
                "--tables",
                format!(
                    "{} is kept by the database itself from the rows of other tables and cannot be backed up on its own; back up the tables it is made from instead, and a restore rebuilds it",
                    t.name
                ),
            ));
        }
    }
    let references_outside: Vec<String> = if partial.is_some() {
        catalog::with_references(&selected)
            .iter()
            .filter(|t| !selected.iter().any(|s| s.name == t.name))
            .map(|t| t.name.to_string())
            .collect()
    } else {
        Vec::new()
    };
    let mut writer = format::ArchiveWriter::create_with(path, options.secret)?;
    let mut snapshot = store.backend().archive().snapshot().await?;
    let schema_version = snapshot.schema_version().await?;
    let created_at = catalog::value::timestamp(chrono::Utc::now());
    let mut entries = Vec::with_capacity(selected.len());
    let mut total = 0;
    for t in &selected {
        writer.begin_table();
        let mut seen = 0u64;
        let mut report_at = 1000u64;
        let mut sink = |row: Row| -> StoreResult<()> {
            writer.row(t.name, &row)?;
            seen += 1;
            if seen == report_at {
                progress(t.name, seen);
                report_at += 1000;
            }
            Ok(())
        };
        snapshot.read_table(t, &mut sink).await?;
        let (rows, sha256) = writer.end_table();
        progress(t.name, rows);
        total += rows;
        entries.push(TableEntry {
            name: t.name.to_string(),
            columns: t.columns.clone(),
            rows,
            sha256,
        });
    }
    snapshot.finish().await?;
    let manifest = Manifest {
        format: format::FORMAT.into(),
        format_version: format::FORMAT_VERSION,
        flowstore_version: env!("CARGO_PKG_VERSION").into(),
        schema_version,
        backend: store.kind().as_str().into(),
        created_at: created_at.as_str().unwrap_or_default().to_string(),
        tables: entries,
        partial,
        source: options.source.clone(),
    };
    let bytes = writer.finish(&manifest)?;
    Ok(BackupSummary {
        path: path.display().to_string(),
        bytes,
        rows: total,
        manifest,
        references_outside,
    })
}

/// Where a manifest table lands: our catalog's table and the archive's columns.
struct Plan {
    table: &'static Table,
    columns: Vec<Column>,
    rows: u64,
    /// Indexes (in `columns`) of the deferred columns, and of `updated_at`.
    deferred: Vec<usize>,
    updated_at: Option<usize>,
}

fn plan(manifest: &Manifest) -> StoreResult<Vec<Plan>> {
    let mut plans = Vec::new();
    let mut last = 0;
    for entry in &manifest.tables {
        let table = catalog::table(&entry.name, "archive")?;
        let pos = catalog::catalog()
            .iter()
            .position(|t| t.name == table.name)
            .unwrap_or(0);
        if pos < last {
            return Err(StoreError::invalid(
                "archive",
                format!("table {} is out of insert order", entry.name),
            ));
        }
        last = pos;
        for c in &entry.columns {
            match table.column(&c.name) {
                Some(ours) if ours.ty == c.ty => {}
                _ => {
                    return Err(StoreError::invalid(
                        "archive",
                        format!(
                            "column {}.{} ({:?}) is not in this schema",
                            entry.name, c.name, c.ty
                        ),
                    ))
                }
            }
        }
        let at = |n: &str| entry.columns.iter().position(|c| c.name == n);
        plans.push(Plan {
            table,
            columns: entry.columns.clone(),
            rows: entry.rows,
            deferred: table.deferred.iter().filter_map(|d| at(d)).collect(),
            updated_at: at("updated_at"),
        });
    }
    Ok(plans)
}

/// A value `updated_at` never holds, given on insert to rows whose deferred columns
/// are set later, so that the later UPDATE sets `updated_at` to a different value
/// and the database's "touch updated_at" triggers leave it as archived.
const PLACEHOLDER_TIME: &str = "1970-01-01T00:00:00.000000Z";

/// Restores the archive at `path` into `store`: checks the whole archive first,
/// migrates, refuses a non-empty database unless `replace` (which empties every
/// table in the same transaction), loads everything in one transaction and checks
/// the counts before committing.
///
/// A partial archive ([`Manifest::partial`]) is loaded beside what the database
/// holds instead. Before anything is written, the restore refuses (naming table,
/// column and value) a row that points at a row neither the archive nor the
/// database holds (Invalid), and, without `replace`, a row whose key the database
/// already holds (Conflict). With `replace` it empties only the archive's tables,
/// and refuses (Conflict) when rows of other tables point at theirs, since the
/// foreign keys would delete or blank those rows with them.
pub async fn restore(
    store: &Store,
    path: &Path,
    replace: bool,
    progress: Progress<'_>,
) -> StoreResult<RestoreSummary> {
    restore_with(store, path, replace, None, progress).await
}

/// [`restore`] of an archive that may be encrypted with `secret` (an encrypted one
/// without it is refused, naming what to give).
pub async fn restore_with(
    store: &Store,
    path: &Path,
    replace: bool,
    secret: Option<&Secret>,
    progress: Progress<'_>,
) -> StoreResult<RestoreSummary> {
    let manifest = format::verify_with(path, secret)?;
    let encrypted = matches!(format::probe(path)?, format::Probe::Encrypted(_));
    let known = known_schema_version(store);
    if manifest.schema_version > known {
        return Err(StoreError::invalid(
            "archive",
            format!(
                "its schema version {} is newer than this binary's ({known}); restore it with a newer flowstore",
                manifest.schema_version
            ),
        ));
    }
    let plans = plan(&manifest)?;
    let is_partial = manifest.is_partial();
    if is_partial {
        partial::check_archive(&plans)?;
    }
    store.backend().migrate_up(None).await?;
    let mut loader = store.backend().archive().loader().await?;
    // What each table held before: the rows a partial restore loads come on top.
    let mut before = vec![0u64; plans.len()];
    if is_partial {
        before = partial::check(&mut *loader, path, secret, &plans, replace).await?;
        if replace {
            let tables: Vec<&Table> = plans.iter().map(|p| p.table).collect();
            loader.clear(&tables).await?;
            before = vec![0; plans.len()];
        }
    } else {
        let all: Vec<&Table> = catalog::catalog().iter().collect();
        for t in &all {
            let n = loader.count(t).await?;
            if n > 0 && !replace {
                return Err(StoreError::conflict(
                    "database",
                    format!(
                        "is not empty (table {} has {n} rows); restore into an empty database or pass --replace",
                        t.name
                    ),
                ));
            }
        }
        if replace {
            loader.clear(&all).await?;
        }
    }
    // Load errors of a partial restore name the table, and say what to do.
    let context = |p: &Plan, e: StoreError| {
        if is_partial {
            partial::in_table(p.table.name, &plans, replace, e)
        } else {
            e
        }
    };

    // Load every row; deferred references go in as NULL.
    let (mut reader, _) = format::ArchiveReader::open_with(path, secret)?;
    let mut current: Option<usize> = None;
    let mut entered = 0usize;
    let mut batch: Vec<Row> = Vec::with_capacity(BATCH);
    let mut any_deferred = false;
    let mut loaded = 0u64;
    while let Some((row, _)) = reader.next_row()? {
        if current.is_none_or(|i| plans[i].table.name != row.t) {
            if let Some(i) = current {
                flush(&mut *loader, &plans[i], &mut batch, &mut loaded, progress)
                    .await
                    .map_err(|e| context(&plans[i], e))?;
            }
            let i = entered
                + plans[entered..]
                    .iter()
                    .position(|p| p.table.name == row.t)
                    .ok_or_else(|| StoreError::invalid("archive", "rows are out of order"))?;
            // A derived table was rebuilt by triggers while the tables before it were
            // loaded: its archived rows replace what the triggers made.
            for p in plans[entered..=i].iter().filter(|p| p.table.derived) {
                loader.clear(&[p.table]).await?;
            }
            entered = i + 1;
            current = Some(i);
            loaded = 0;
        }
        let p = &plans[current.unwrap_or(0)];
        let mut values = row.r;
        if p.deferred.iter().any(|&i| !values[i].is_null()) {
            any_deferred = true;
            for &i in &p.deferred {
                values[i] = serde_json::Value::Null;
            }
            if let Some(u) = p.updated_at {
                values[u] = serde_json::Value::String(PLACEHOLDER_TIME.into());
            }
        }
        batch.push(values);
        if batch.len() == BATCH {
            flush(&mut *loader, p, &mut batch, &mut loaded, progress)
                .await
                .map_err(|e| context(p, e))?;
        }
    }
    if let Some(i) = current {
        flush(&mut *loader, &plans[i], &mut batch, &mut loaded, progress)
            .await
            .map_err(|e| context(&plans[i], e))?;
    }
    for p in plans[entered..].iter().filter(|p| p.table.derived) {
        loader.clear(&[p.table]).await?;
    }

    // Now that every row is in, set the deferred references (and updated_at back).
    if any_deferred {
        let (mut reader, _) = format::ArchiveReader::open_with(path, secret)?;
        while let Some((row, _)) = reader.next_row()? {
            let Some(p) = plans.iter().find(|p| p.table.name == row.t) else {
                continue;
            };
            if !p.deferred.iter().any(|&i| !row.r[i].is_null()) {
                continue;
            }
            let mut set: Vec<&str> = p
                .deferred
                .iter()
                .map(|&i| p.columns[i].name.as_str())
                .collect();
            if let Some(u) = p.updated_at {
                set.push(p.columns[u].name.as_str());
            }
            loader
                .update(p.table, &p.columns, &set, &row.r)
                .await
                .map_err(|e| context(p, e))?;
        }
    }

    let mut tables = Vec::with_capacity(plans.len());
    let mut rows = 0;
    for (p, held) in plans.iter().zip(&before) {
        let total = loader.count(p.table).await?;
        let n = total.saturating_sub(*held);
        if total != held + p.rows {
            return Err(StoreError::internal(format!(
                "restore loaded {n} rows into {} but the archive holds {}; nothing was committed",
                p.table.name, p.rows
            )));
        }
        rows += n;
        tables.push((p.table.name.to_string(), n));
    }
    loader.commit().await?;
    // An archive without the audit log's head (made before there was one, or of some
    // tables only) gets its newest entry signed as the head, by this operator's key.
    // An archive that has the head keeps it as it is: an empty head table beside
    // entries, or a head that does not match them, stays visible to verification.
    // A partial archive without the log leaves the log and its head alone: a head
    // missing there is evidence of a cut log, not something a restore should sign.
    let has = |name: &str| manifest.tables.iter().any(|t| t.name == name);
    if !has("audit_head") && (!is_partial || has("audit_log")) {
        let mut tx = store.begin().await?;
        tx.adopt_audit_head().await?;
        tx.commit().await?;
    }
    Ok(RestoreSummary {
        from: manifest.backend,
        created_at: manifest.created_at,
        source: manifest.source,
        encrypted,
        schema_version: manifest.schema_version,
        tables,
        rows,
        partial: is_partial,
    })
}

async fn flush(
    loader: &mut dyn catalog::RowLoader,
    p: &Plan,
    batch: &mut Vec<Row>,
    loaded: &mut u64,
    progress: Progress<'_>,
) -> StoreResult<()> {
    if batch.is_empty() {
        return Ok(());
    }
    loader.insert(p.table, &p.columns, batch).await?;
    *loaded += batch.len() as u64;
    progress(p.table.name, *loaded);
    batch.clear();
    Ok(())
}

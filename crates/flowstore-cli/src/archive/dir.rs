//! A directory of archives: what `backup list` shows, what `backup prune` and the
//! server's scheduled backups delete, and the scheduled backup itself.
//!
//! A file counts as an archive when its first bytes say so: a plain archive's
//! manifest or an encrypted archive's header. Anything else (and any file still
//! being written, `*.partial`) is listed apart and never deleted. Archives are
//! ordered by the creation time they record, then by name.

use std::path::{Path, PathBuf};

use serde::Serialize;

use flowstore::{Store, StoreError, StoreResult};

use super::crypt::{Kdf, Secret};
use super::format::{self, ArchiveSource, Probe};
use super::{BackupOptions, BackupSummary};

/// One archive of a directory.
#[derive(Clone, Debug, Serialize)]
pub struct Listed {
    /// Its file name.
    pub file: String,
    /// Its path.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// When its snapshot was taken (RFC 3339).
    pub created_at: String,
    /// The backend it came from.
    pub backend: String,
    /// The database it came from, when recorded.
    pub source: Option<ArchiveSource>,
    /// Its schema version.
    pub schema_version: i64,
    /// How many tables it holds.
    pub tables: usize,
    /// How many rows it holds.
    pub rows: u64,
    /// Whether it holds some tables only.
    pub partial: bool,
    /// `None`, `"passphrase"` or `"key file"`.
    pub encrypted: Option<String>,
    /// With `--verify`: `"ok"` or why it does not verify.
    pub verified: Option<String>,
}

/// A file of the directory that is not an archive (or not yet one).
#[derive(Clone, Debug, Serialize)]
pub struct Other {
    /// Its file name.
    pub file: String,
    /// Why it is not counted.
    pub reason: String,
}

/// What a directory holds.
#[derive(Clone, Debug, Serialize)]
pub struct Listing {
    /// The directory.
    pub dir: String,
    /// Its archives, oldest first.
    pub archives: Vec<Listed>,
    /// Its other files, left alone by prune.
    pub other: Vec<Other>,
}

fn read_dir(dir: &Path) -> StoreResult<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| StoreError::invalid("--dir", format!("cannot read {}: {e}", dir.display())))?;
    let mut files = Vec::new();
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The archives of `dir` and its other files; with `verify`, each archive is read
/// whole and checked (an encrypted one with `secret`).
pub fn list(dir: &Path, verify: bool, secret: Option<&Secret>) -> StoreResult<Listing> {
    let mut archives = Vec::new();
    let mut other = Vec::new();
    for path in read_dir(dir)? {
        let file = name_of(&path);
        if file.ends_with(".partial") {
            other.push(Other {
                file,
                reason: "an archive being written (or left by an interrupted backup)".into(),
            });
            continue;
        }
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut listed = match format::probe(&path) {
            Ok(Probe::Plain(m)) => Listed {
                file,
                path: path.display().to_string(),
                bytes,
                created_at: m.created_at.clone(),
                backend: m.backend.clone(),
                source: m.source.clone(),
                schema_version: m.schema_version,
                tables: m.tables.len(),
                rows: m.tables.iter().map(|t| t.rows).sum(),
                partial: m.is_partial(),
                encrypted: None,
                verified: None,
            },
            Ok(Probe::Encrypted(h)) => {
                let s = h.summary.clone().unwrap_or_default();
                Listed {
                    file,
                    path: path.display().to_string(),
                    bytes,
                    created_at: s.created_at,
                    backend: s.backend,
                    source: s.source,
                    schema_version: s.schema_version,
                    tables: s.tables,
                    rows: s.rows,
                    partial: s.partial,
                    encrypted: Some(
                        match h.kdf {
                            Kdf::Argon2id { .. } => "passphrase",
                            Kdf::KeyFile => "key file",
                        }
                        .into(),
                    ),
                    verified: None,
                }
            }
            Err(e) => {
                other.push(Other {
                    file,
                    reason: format!("not a flowstore archive ({e})"),
                });
                continue;
            }
        };
        if verify {
            listed.verified = Some(match format::verify_with(&path, secret) {
                Ok(_) => "ok".into(),
                Err(e) => e.to_string(),
            });
        }
        archives.push(listed);
    }
    archives.sort_by(|a, b| (&a.created_at, &a.file).cmp(&(&b.created_at, &b.file)));
    Ok(Listing {
        dir: dir.display().to_string(),
        archives,
        other,
    })
}

/// What a prune did (or, dry, would do).
#[derive(Clone, Debug, Serialize)]
pub struct Pruned {
    /// The archives kept, oldest first.
    pub kept: Vec<String>,
    /// The archives deleted (or that would be), oldest first.
    pub deleted: Vec<String>,
    /// Files left alone because they are not archives.
    pub other: Vec<Other>,
    /// Whether nothing was deleted because it was a dry run.
    pub dry_run: bool,
}

/// Deletes all but the newest `keep` archives of `dir` (by their recorded creation
/// time); files that are not archives are never deleted.
pub fn prune(dir: &Path, keep: usize, dry_run: bool) -> StoreResult<Pruned> {
    if keep == 0 {
        return Err(StoreError::invalid(
            "--keep",
            "must be at least 1: prune never deletes every archive",
        ));
    }
    let listing = list(dir, false, None)?;
    let cut = listing.archives.len().saturating_sub(keep);
    let (old, new) = listing.archives.split_at(cut);
    let mut deleted = Vec::new();
    for a in old {
        if !dry_run {
            std::fs::remove_file(&a.path)
                .map_err(|e| StoreError::unavailable(format!("cannot delete {}: {e}", a.path)))?;
        }
        deleted.push(a.file.clone());
    }
    Ok(Pruned {
        kept: new.iter().map(|a| a.file.clone()).collect(),
        deleted,
        other: listing.other,
        dry_run,
    })
}

/// The name of a scheduled archive made at `at`: `flowstore-YYYYMMDDTHHMMSS.mmmZ.fsa`
/// (UTC), so names sort by time.
pub fn archive_name(at: chrono::DateTime<chrono::Utc>) -> String {
    format!("flowstore-{}.fsa", at.format("%Y%m%dT%H%M%S%.3fZ"))
}

/// What one scheduled backup did.
#[derive(Debug)]
pub struct Scheduled {
    /// The archive written.
    pub backup: BackupSummary,
    /// The prune after it.
    pub pruned: Pruned,
}

/// How the server backs up on its schedule.
#[derive(Debug)]
pub struct Schedule {
    /// The directory the archives go to (created when missing).
    pub dir: PathBuf,
    /// How many archives to keep.
    pub keep: usize,
    /// The database, recorded in each archive.
    pub source: Option<ArchiveSource>,
    /// The secret to encrypt with.
    pub secret: Option<Secret>,
}

/// One scheduled backup: a whole archive into the directory, named by its UTC
/// creation time (written under a temporary name and renamed, as every backup is),
/// then the directory pruned to the newest `keep` archives.
pub async fn scheduled(store: &Store, schedule: &Schedule) -> StoreResult<Scheduled> {
    std::fs::create_dir_all(&schedule.dir).map_err(|e| {
        StoreError::unavailable(format!(
            "cannot create the backup directory {}: {e}",
            schedule.dir.display()
        ))
    })?;
    let path = schedule.dir.join(archive_name(chrono::Utc::now()));
    let options = BackupOptions {
        source: schedule.source.clone(),
        secret: schedule.secret.as_ref(),
        ..BackupOptions::default()
    };
    let backup = super::backup_with(store, &path, &options, &|_, _| {}).await?;
    let pruned = prune(&schedule.dir, schedule.keep, false)?;
    Ok(Scheduled { backup, pruned })
}

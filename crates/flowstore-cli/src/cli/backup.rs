//! `flowstore backup | restore | export | import`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::archive::{self, dir, export, ArchiveSource, Secret};
use flowstore::config::Settings;
use flowstore::{Store, StoreError};

/// The secret of an encrypted archive, as flags.
#[derive(Debug, Default, Args)]
pub struct SecretArgs {
    /// The passphrase (first line of FILE) that encrypts the archive, or opens an
    /// encrypted one [env: FLOWSTORE_BACKUP_PASSPHRASE (the passphrase itself),
    /// FLOWSTORE_BACKUP_PASSPHRASE_FILE] [toml: [backup] passphrase_file]
    #[arg(long, value_name = "FILE", conflicts_with = "key_file")]
    pub passphrase_file: Option<PathBuf>,
    /// A 32-byte key in FILE (64 hex characters or base64: `openssl rand -hex 32`)
    /// instead of a passphrase [env: FLOWSTORE_BACKUP_KEY_FILE] [toml: [backup]
    /// key_file]
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

/// The secret of the flags, else of the settings (environment, then file); `None`
/// when none is given.
pub fn secret(
    passphrase_file: Option<&Path>,
    key_file: Option<&Path>,
    settings: &Settings,
) -> Result<Option<Secret>, StoreError> {
    if let Some(f) = passphrase_file {
        return Secret::passphrase_file(f, "--passphrase-file").map(Some);
    }
    if let Some(f) = key_file {
        return Secret::key_file(f, "--key-file").map(Some);
    }
    let b = &settings.backup;
    if let Some(p) = &b.passphrase {
        return Secret::passphrase(p, "FLOWSTORE_BACKUP_PASSPHRASE").map(Some);
    }
    if let Some(f) = &b.passphrase_file {
        return Secret::passphrase_file(f, "FLOWSTORE_BACKUP_PASSPHRASE_FILE").map(Some);
    }
    if let Some(f) = &b.key_file {
        return Secret::key_file(f, "FLOWSTORE_BACKUP_KEY_FILE").map(Some);
    }
    Ok(None)
}

/// `flowstore backup list|prune`.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// List the archives of a directory: creation time, source, size, tables, rows,
    /// encryption, and with --verify whether each one verifies.
    #[command(
        after_help = "Files that are not flowstore archives are listed apart (and never pruned). An encrypted archive's time, source and counts come from its header, which is authenticated only when it is read with its secret (--verify).\n\nExample:\n  flowstore backup list --dir /var/backups/flowstore\n  flowstore backup list --dir /var/backups/flowstore --verify --passphrase-file /etc/flowstore/backup.pass --json"
    )]
    List(ListArgs),
    /// Delete all but the newest N archives of a directory (by the creation time
    /// they record). Files that are not flowstore archives are never deleted.
    #[command(
        after_help = "Example:\n  flowstore backup prune --keep 14 --dir /var/backups/flowstore --dry-run\n  flowstore backup prune --keep 14 --dir /var/backups/flowstore"
    )]
    Prune(PruneArgs),
}

/// `flowstore backup list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The directory [env: FLOWSTORE_BACKUP_DIR] [toml: [backup] dir]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Read every archive whole and check it (counts, checksums, and for an
    /// encrypted one every chunk, which needs its secret).
    #[arg(long)]
    pub verify: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub secret: SecretArgs,
}

/// `flowstore backup prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// How many archives to keep (at least 1) [env: FLOWSTORE_BACKUP_KEEP] [toml:
    /// [backup] keep]
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// The directory [env: FLOWSTORE_BACKUP_DIR] [toml: [backup] dir]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Say what would be deleted, and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `flowstore backup FILE`
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "An archive is encrypted when a passphrase or key file is given (--passphrase-file, --key-file, FLOWSTORE_BACKUP_PASSPHRASE, FLOWSTORE_BACKUP_KEY_FILE): AES-256-GCM in 64 KiB chunks, under a key derived from the passphrase with argon2id (or from the key file with HMAC-SHA256) and a random salt kept in the archive's header. Restoring it needs the same secret.\n\nA backup of some tables (--tables) is a partial archive. `flowstore restore` loads it beside what the target database holds, once it has checked that every row the archive's rows point at (a workflow's owner, team, project, ...) is in the archive or in that database; --with-references adds those tables, so that it restores anywhere.\n\nExample:\n  flowstore backup --output /var/backups/flowstore-2024-06-01.fsa\n  flowstore backup --tables workflows,workflow_versions defs.fsa\n  flowstore backup --tables workflows,workflow_versions --with-references defs-with-owners.fsa\n  flowstore backup --native nightly.dump\n  flowstore backup --passphrase-file /etc/flowstore/backup.pass nightly.fsa\n  flowstore backup list --dir /var/backups/flowstore\n  flowstore backup prune --keep 14 --dir /var/backups/flowstore"
)]
pub struct BackupArgs {
    /// `list` or `prune` the archives of a directory.
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
    /// The archive to write (refused when it exists); `--output FILE` says the same.
    #[arg(
        value_name = "FILE",
        required_unless_present = "output",
        conflicts_with = "output"
    )]
    pub file: Option<PathBuf>,
    /// The archive to write, as a flag.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Only these tables (comma-separated): a partial archive, which restores into a
    /// database holding the rows its rows point at (see below).
    #[arg(long, value_delimiter = ',')]
    pub tables: Option<Vec<String>>,
    /// With --tables: add every table the chosen rows point at (users, teams,
    /// projects, ...), and what those point at, whole.
    #[arg(long, requires = "tables")]
    pub with_references: bool,
    /// The database's own format instead: `pg_dump -Fc` on PostgreSQL, `VACUUM INTO`
    /// on SQLite. Restore it with that database's tools.
    #[arg(long, conflicts_with_all = ["tables", "passphrase_file", "key_file"])]
    pub native: bool,
    /// Print a JSON summary.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub secret: SecretArgs,
}

/// `flowstore restore FILE`
#[derive(Debug, Args)]
#[command(
    after_help = "Before it restores, it names the archive's creation time and the database it was taken of. An encrypted archive needs its passphrase or key file (--passphrase-file, --key-file, or FLOWSTORE_BACKUP_PASSPHRASE, FLOWSTORE_BACKUP_KEY_FILE); a wrong one, or an archive altered since it was written, is refused before anything is written.\n\nA full archive restores into an empty database (or, with --replace, instead of everything it holds). A partial archive (backup --tables) restores beside what the database holds: before writing anything it refuses a row that points at a row neither the archive nor the database holds, naming the table, column and value, and, without --replace, a row whose key the database already holds. Its --replace empties only the archive's tables, and is refused while rows of other tables point at theirs (emptying them would delete or blank those rows). Everything happens in one transaction: a refused or failed restore writes nothing.\n\nExample:\n  flowstore --database-url postgres://localhost/flowstore restore backup.fsa\n  flowstore restore --replace backup.fsa\n  flowstore restore --replace defs.fsa    # a partial archive: only its tables are replaced"
)]
pub struct RestoreArgs {
    /// The archive to restore (written by `flowstore backup` from either backend).
    pub file: PathBuf,
    /// Empty the archive's tables first, in the same transaction: every table for a
    /// full archive, only its own for a partial one (refused while other tables'
    /// rows point at them).
    #[arg(long)]
    pub replace: bool,
    /// Print a JSON summary.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub secret: SecretArgs,
}

/// `flowstore export`
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  flowstore export --workflows 0190c6d2-…,0190c6d3-… --output defs.json\n  flowstore export --all > defs.json"
)]
pub struct ExportArgs {
    /// The workflows to export (comma-separated IDs).
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub workflows: Option<Vec<String>>,
    /// Export every workflow.
    #[arg(long)]
    pub all: bool,
    /// Write here instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// `flowstore import FILE`
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  flowstore import defs.json\n  flowstore import --skip-existing defs.json"
)]
pub struct ImportArgs {
    /// A file written by `flowstore export`.
    pub file: PathBuf,
    /// Keep rows that already exist instead of refusing the import.
    #[arg(long)]
    pub skip_existing: bool,
    /// Print a JSON summary.
    #[arg(long)]
    pub json: bool,
}

fn bar() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if !std::io::stdout().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed} {msg}") {
        bar.set_style(style);
    }
    bar
}

fn json<T: serde::Serialize>(v: &T) -> Result<(), StoreError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| StoreError::internal(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// Runs `flowstore backup`.
pub async fn backup(
    store: &Store,
    settings: &Settings,
    args: BackupArgs,
) -> Result<(), StoreError> {
    // clap guarantees exactly one of the positional FILE and --output.
    let file = args
        .file
        .clone()
        .or_else(|| args.output.clone())
        .ok_or_else(|| StoreError::invalid("--output", "name the archive to write"))?;
    if args.native {
        native(store, &file).await?;
        if args.json {
            return json(&serde_json::json!({ "path": file, "native": true }));
        }
        println!("wrote {} (native)", file.display());
        return Ok(());
    }
    let bar = bar();
    let progress = |t: &str, n: u64| bar.set_message(format!("{t}: {n} rows"));
    let secret = secret(
        args.secret.passphrase_file.as_deref(),
        args.secret.key_file.as_deref(),
        settings,
    )?;
    let options = archive::BackupOptions {
        tables: args.tables.as_deref(),
        with_references: args.with_references,
        source: Some(ArchiveSource::from_url(&settings.database_url)),
        secret: secret.as_ref(),
    };
    let result = archive::backup_with(store, &file, &options, &progress).await;
    bar.finish_and_clear();
    let summary = result?;
    if args.json {
        return json(&summary);
    }
    println!(
        "wrote {} ({} rows in {} tables, {} bytes, schema version {}{})",
        summary.path,
        summary.rows,
        summary.manifest.tables.len(),
        summary.bytes,
        summary.manifest.schema_version,
        match &secret {
            Some(s) => format!(", encrypted with a {}", s.describe()),
            None => String::new(),
        }
    );
    if let Some(chosen) = &summary.manifest.partial {
        let added: Vec<&str> = summary
            .manifest
            .tables
            .iter()
            .map(|t| t.name.as_str())
            .filter(|t| !chosen.iter().any(|c| c == t))
            .collect();
        if added.is_empty() {
            println!("a partial archive of {}", chosen.join(", "));
        } else {
            println!(
                "a partial archive of {}, with the tables their rows point at: {}",
                chosen.join(", "),
                added.join(", ")
            );
        }
        if !summary.references_outside.is_empty() {
            println!(
                "its rows may point at rows of {}: restore it into a database that holds them, or back up with --with-references",
                summary.references_outside.join(", ")
            );
        }
    }
    Ok(())
}

/// Runs `flowstore restore`.
pub async fn restore(
    store: &Store,
    settings: &Settings,
    args: RestoreArgs,
) -> Result<(), StoreError> {
    let secret = secret(
        args.secret.passphrase_file.as_deref(),
        args.secret.key_file.as_deref(),
        settings,
    )?;
    // Name the archive before restoring it (from its header when encrypted: the
    // restore then authenticates it as it verifies it).
    if !args.json {
        match archive::format::probe(&args.file)? {
            archive::format::Probe::Plain(m) => println!(
                "restoring {}: taken {} from {} database {} (schema version {})",
                args.file.display(),
                m.created_at,
                m.backend,
                source_text(m.source.as_ref()),
                m.schema_version
            ),
            archive::format::Probe::Encrypted(h) => {
                let s = h.summary.unwrap_or_default();
                println!(
                    "restoring {} (encrypted): taken {} from {} database {} (schema version {})",
                    args.file.display(),
                    s.created_at,
                    s.backend,
                    source_text(s.source.as_ref()),
                    s.schema_version
                )
            }
        }
    }
    let bar = bar();
    let progress = |t: &str, n: u64| bar.set_message(format!("{t}: {n} rows"));
    let result =
        archive::restore_with(store, &args.file, args.replace, secret.as_ref(), &progress).await;
    bar.finish_and_clear();
    let summary = result?;
    if args.json {
        return json(&summary);
    }
    for (t, n) in &summary.tables {
        println!("{t:<22} {n:>10}");
    }
    if summary.partial {
        println!(
            "restored {} rows from a partial {} archive (schema version {}); {} other tables were left as they were",
            summary.rows,
            summary.from,
            summary.schema_version,
            if args.replace { "only its tables were replaced," } else { "its rows were added;" }
        );
    } else {
        println!(
            "restored {} rows from a {} archive (schema version {})",
            summary.rows, summary.from, summary.schema_version
        );
    }
    println!(
        "the archive was taken {} from {} database {}",
        summary.created_at,
        summary.from,
        source_text(summary.source.as_ref())
    );
    Ok(())
}

fn source_text(source: Option<&ArchiveSource>) -> String {
    match source {
        Some(s) => s.to_string(),
        None => "(not recorded by this archive)".into(),
    }
}

fn backup_dir(given: Option<PathBuf>, settings: &Settings) -> Result<PathBuf, StoreError> {
    given
        .or_else(|| settings.backup.dir.clone())
        .ok_or_else(|| {
            StoreError::invalid(
                "--dir",
                "name the directory of archives: --dir DIR or FLOWSTORE_BACKUP_DIR",
            )
        })
}

/// Runs `flowstore backup list|prune` (no database needed).
pub fn directory(settings: &Settings, cmd: BackupCommand) -> Result<(), StoreError> {
    match cmd {
        BackupCommand::List(args) => {
            let dir = backup_dir(args.dir, settings)?;
            let secret = if args.verify {
                secret(
                    args.secret.passphrase_file.as_deref(),
                    args.secret.key_file.as_deref(),
                    settings,
                )?
            } else {
                None
            };
            let listing = dir::list(&dir, args.verify, secret.as_ref())?;
            if args.json {
                return json(&listing);
            }
            if listing.archives.is_empty() {
                println!("no flowstore archives in {}", listing.dir);
            }
            for a in &listing.archives {
                println!(
                    "{}  {}  {} {}  {} bytes  {} tables  {} rows{}{}{}",
                    a.file,
                    a.created_at,
                    a.backend,
                    source_text(a.source.as_ref()),
                    a.bytes,
                    a.tables,
                    a.rows,
                    if a.partial { "  partial" } else { "" },
                    match &a.encrypted {
                        Some(how) => format!("  encrypted ({how})"),
                        None => "  not encrypted".into(),
                    },
                    match &a.verified {
                        Some(v) if v == "ok" => "  verified".to_string(),
                        Some(v) => format!("  DOES NOT VERIFY: {v}"),
                        None => String::new(),
                    }
                );
            }
            for o in &listing.other {
                println!("{}  (skipped: {})", o.file, o.reason);
            }
            if args.verify
                && listing
                    .archives
                    .iter()
                    .any(|a| a.verified.as_deref() != Some("ok"))
            {
                return Err(StoreError::invalid(
                    "archive",
                    "some archives do not verify (see above)",
                ));
            }
            Ok(())
        }
        BackupCommand::Prune(args) => {
            let dir = backup_dir(args.dir, settings)?;
            let keep = args.keep.or(settings.backup.keep).ok_or_else(|| {
                StoreError::invalid("--keep", "say how many archives to keep: --keep N")
            })?;
            let pruned = dir::prune(&dir, keep, args.dry_run)?;
            if args.json {
                return json(&pruned);
            }
            let verb = if pruned.dry_run {
                "would delete"
            } else {
                "deleted"
            };
            for f in &pruned.deleted {
                println!("{verb} {f}");
            }
            for f in &pruned.kept {
                println!("kept {f}");
            }
            for o in &pruned.other {
                println!("left alone {} ({})", o.file, o.reason);
            }
            Ok(())
        }
    }
}

/// Runs `flowstore export`.
pub async fn export(store: &Store, args: ExportArgs) -> Result<(), StoreError> {
    store.backend().check_schema().await?;
    let ids = if args.all {
        None
    } else {
        args.workflows.as_deref()
    };
    let doc = export::export(store, ids).await?;
    let text =
        serde_json::to_string_pretty(&doc).map_err(|e| StoreError::internal(e.to_string()))?;
    match &args.output {
        Some(path) => std::fs::write(path, text + "\n").map_err(|e| {
            StoreError::unavailable(format!("cannot write {}: {e}", path.display()))
        })?,
        None => println!("{text}"),
    }
    Ok(())
}

/// Runs `flowstore import`.
pub async fn import(store: &Store, args: ImportArgs) -> Result<(), StoreError> {
    let text = std::fs::read_to_string(&args.file).map_err(|e| {
        StoreError::invalid("FILE", format!("cannot read {}: {e}", args.file.display()))
    })?;
    let doc: export::Export = serde_json::from_str(&text)
        .map_err(|e| StoreError::invalid("FILE", format!("is not a flowstore export: {e}")))?;
    let summary = export::import(store, &doc, args.skip_existing).await?;
    if args.json {
        return json(&summary);
    }
    for ((t, n), (_, s)) in summary.imported.iter().zip(&summary.skipped) {
        println!("{t:<18} imported {n:>6}  skipped {s:>6}");
    }
    Ok(())
}

/// `--native`: the database's own backup, written to FILE.partial and renamed.
async fn native(store: &Store, file: &Path) -> Result<(), StoreError> {
    if file.exists() {
        return Err(StoreError::conflict(
            "FILE",
            format!("{} already exists", file.display()),
        ));
    }
    let mut partial = file.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let _ = std::fs::remove_file(&partial);
    let result = store.backend().admin().native_backup(&partial).await;
    let result = result.and_then(|()| {
        std::fs::rename(&partial, file)
            .map_err(|e| StoreError::unavailable(format!("cannot write {}: {e}", file.display())))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

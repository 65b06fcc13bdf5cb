//! `flowstore backup | restore | export | import`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::archive::{self, export};
use flowstore::{Store, StoreError};

/// `flowstore backup FILE`
#[derive(Debug, Args)]
#[command(
    after_help = "A backup of some tables (--tables) is a partial archive. `flowstore restore` loads it beside what the target database holds, once it has checked that every row the archive's rows point at (a workflow's owner, team, project, ...) is in the archive or in that database; --with-references adds those tables, so that it restores anywhere.\n\nExample:\n  flowstore backup --output /var/backups/flowstore-2024-06-01.fsa\n  flowstore backup --tables workflows,workflow_versions defs.fsa\n  flowstore backup --tables workflows,workflow_versions --with-references defs-with-owners.fsa\n  flowstore backup --native nightly.dump"
)]
pub struct BackupArgs {
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
    #[arg(long, conflicts_with = "tables")]
    pub native: bool,
    /// Print a JSON summary.
    #[arg(long)]
    pub json: bool,
}

/// `flowstore restore FILE`
#[derive(Debug, Args)]
#[command(
    after_help = "A full archive restores into an empty database (or, with --replace, instead of everything it holds). A partial archive (backup --tables) restores beside what the database holds: before writing anything it refuses a row that points at a row neither the archive nor the database holds, naming the table, column and value, and, without --replace, a row whose key the database already holds. Its --replace empties only the archive's tables, and is refused while rows of other tables point at theirs (emptying them would delete or blank those rows). Everything happens in one transaction: a refused or failed restore writes nothing.\n\nExample:\n  flowstore --database-url postgres://localhost/flowstore restore backup.fsa\n  flowstore restore --replace backup.fsa\n  flowstore restore --replace defs.fsa    # a partial archive: only its tables are replaced"
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
pub async fn backup(store: &Store, args: BackupArgs) -> Result<(), StoreError> {
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
    let result = archive::backup_tables(
        store,
        &file,
        args.tables.as_deref(),
        args.with_references,
        &progress,
    )
    .await;
    bar.finish_and_clear();
    let summary = result?;
    if args.json {
        return json(&summary);
    }
    println!(
        "wrote {} ({} rows in {} tables, {} bytes, schema version {})",
        summary.path,
        summary.rows,
        summary.manifest.tables.len(),
        summary.bytes,
        summary.manifest.schema_version
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
pub async fn restore(store: &Store, args: RestoreArgs) -> Result<(), StoreError> {
    let bar = bar();
    let progress = |t: &str, n: u64| bar.set_message(format!("{t}: {n} rows"));
    let result = archive::restore(store, &args.file, args.replace, &progress).await;
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
    Ok(())
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

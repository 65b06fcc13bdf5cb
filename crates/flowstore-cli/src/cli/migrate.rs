//! `flowstore migrate up | down | status`.

use clap::Subcommand;
use flowstore_core::migrate::MigrationState;

use flowstore::config::{redact_url, Settings};
use flowstore::{Store, StoreError};

/// `flowstore migrate …`
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Apply pending migrations (all, or up to --to).
    #[command(
        after_help = "Example:\n  DATABASE_URL=postgres://localhost/flowstore flowstore migrate up"
    )]
    Up {
        /// Stop after this version.
        #[arg(long)]
        to: Option<i64>,
    },
    /// Revert migrations above --to, newest first.
    #[command(after_help = "Example:\n  flowstore migrate down --to 3")]
    ///
    /// Reverting drops the tables and columns that later migrations added, with
    /// the rows they hold: on a database that holds data it is refused unless
    /// `--yes` is given.
    Down {
        /// Keep this version and those below it (0 reverts everything).
        #[arg(long)]
        to: i64,
        /// Revert even though the database holds data that the reverted
        /// migrations' tables and columns may carry away.
        #[arg(long)]
        yes: bool,
    },
    /// Show each migration and whether it is applied.
    #[command(after_help = "Example:\n  flowstore migrate status --json")]
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one `migrate` subcommand.
pub async fn run(
    store: &Store,
    settings: &Settings,
    cmd: MigrateCommand,
) -> Result<(), StoreError> {
    let where_ = redact_url(&settings.database_url);
    match cmd {
        MigrateCommand::Up { to } => {
            let applied = store.backend().migrate_up(to).await?;
            if applied.is_empty() {
                println!("{where_}: already up to date");
            } else {
                println!("{where_}: applied {}", list(&applied));
            }
        }
        MigrateCommand::Down { to, yes } => {
            if to < 0 {
                return Err(StoreError::invalid("--to", "must be 0 or more"));
            }
            let above = store
                .backend()
                .migration_status()
                .await?
                .iter()
                .any(|m| m.version > to && m.state != MigrationState::Pending);
            if above && !yes {
                if let Some(held) = held_data(store).await {
                    return Err(StoreError::invalid(
                        "--yes",
                        format!(
                            "the database holds data ({held}); migrating down to {to} drops \
                             what later migrations added, with its rows: pass --yes to revert anyway"
                        ),
                    ));
                }
            }
            let reverted = store.backend().migrate_down(to).await?;
            if reverted.is_empty() {
                println!("{where_}: nothing to revert");
            } else {
                println!("{where_}: reverted {}", list(&reverted));
            }
        }
        MigrateCommand::Status { json } => {
            let status = store.backend().migration_status().await?;
            if json {
                let text = serde_json::to_string_pretty(&status)
                    .map_err(|e| StoreError::internal(e.to_string()))?;
                println!("{text}");
            } else {
                println!("{:<8} {:<22} {:<8} applied at", "version", "name", "state");
                for s in &status {
                    let state = match s.state {
                        MigrationState::Applied => "applied",
                        MigrationState::Pending => "pending",
                        MigrationState::Edited => "EDITED",
                        MigrationState::Unknown => "UNKNOWN",
                    };
                    let at = s
                        .applied_at
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_else(|| "-".into());
                    println!("{:<8} {:<22} {:<8} {at}", s.version, s.name, state);
                }
            }
        }
    }
    Ok(())
}

/// The first table that holds rows, as "table T has N rows"; also something to
/// report when a table cannot be counted (an older schema), so that nothing is
/// reverted on a guess.
async fn held_data(store: &Store) -> Option<String> {
    let mut loader = match store.backend().archive().loader().await {
        Ok(l) => l,
        Err(e) => return Some(format!("its tables could not be counted: {e}")),
    };
    for t in flowstore_core::archive::catalog() {
        match loader.count(t).await {
            Ok(0) => {}
            Ok(n) => return Some(format!("table {} has {n} rows", t.name)),
            Err(e) => return Some(format!("table {} could not be counted: {e}", t.name)),
        }
    }
    None
}

fn list(versions: &[i64]) -> String {
    versions
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

//! The `flowstore` command line. `main.rs` only calls [`run`]; every command lives
//! here, on top of the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use flowstore_core::migrate::MigrationState;

use crate::config::{redact_url, Settings};
use crate::{Store, StoreError};

/// A durable state store for workflow and task orchestration.
#[derive(Debug, Parser)]
#[command(name = "flowstore", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes. Flags override the environment, which overrides
/// `flowstore.toml`.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Database URL: sqlite://PATH, sqlite::memory: or postgres://… [env: DATABASE_URL]
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Configuration file (TOML); `flowstore.toml` is read when present.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Most database connections in the pool [env: DB_POOL_MAX, DATABASE_POOL_MAX]
    #[arg(long, global = true)]
    pub pool_max: Option<u32>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply, revert or inspect schema migrations.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Fill the database with demonstration data.
    #[command(after_help = "Example:\n  flowstore seed --demo")]
    Seed {
        /// Load the realistic demo data set (projects, workflows, runs in every state,
        /// attempts, 30 days of metrics, pull requests, components, logs).
        #[arg(long, required = true)]
        demo: bool,
        /// How many runs to create.
        #[arg(long, default_value_t = 200)]
        runs: u32,
    },
}

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
    Down {
        /// Keep this version and those below it (0 reverts everything).
        #[arg(long)]
        to: i64,
    },
    /// Show each migration and whether it is applied.
    #[command(after_help = "Example:\n  flowstore migrate status --json")]
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Parses the command line and runs it; the exit code says whether it worked.
pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the settings: file, then environment, then flags.
pub fn settings(global: &GlobalArgs) -> Result<Settings, StoreError> {
    let default_file = PathBuf::from("flowstore.toml");
    let file = match &global.config {
        Some(path) => Some(path.clone()),
        None => default_file.exists().then_some(default_file),
    };
    let mut s = Settings::load(file.as_deref(), &|k| std::env::var(k).ok())?;
    if let Some(url) = &global.database_url {
        s.database_url = url.clone();
    }
    if let Some(max) = global.pool_max {
        s.pool_max = max;
    }
    s.check()?;
    Ok(s)
}

async fn execute(cli: Cli) -> Result<(), StoreError> {
    let settings = settings(&cli.global)?;
    let store = Store::connect(&settings).await?;
    let result = match cli.command {
        Command::Migrate(cmd) => migrate(&store, &settings, cmd).await,
        Command::Seed { runs, .. } => {
            store.backend().check_schema().await?;
            let summary = crate::demo::seed(&store, runs).await?;
            println!("{summary}");
            Ok(())
        }
    };
    store.close().await;
    result
}

async fn migrate(
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
        MigrateCommand::Down { to } => {
            if to < 0 {
                return Err(StoreError::invalid("--to", "must be 0 or more"));
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
                    .map_err(|e| StoreError::Internal(e.to_string()))?;
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

fn list(versions: &[i64]) -> String {
    versions
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

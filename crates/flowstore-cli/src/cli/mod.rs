//! The `flowstore` command line. `main.rs` only calls [`run`]; every command lives
//! here, on top of the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub mod admin;
mod backup;
mod bench;
pub mod keys;
mod migrate;
mod serve;
mod users;

use flowstore::config::Settings;
use flowstore::{Store, StoreError};
pub use migrate::MigrateCommand;

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
    /// Database URL: sqlite://PATH, sqlite::memory: or postgres://…; TLS to
    /// PostgreSQL from its sslmode and sslrootcert or DB_SSL_MODE, DB_SSL_CA, DB_SSL
    /// and DB_SSL_REJECT_UNAUTHORIZED, which must agree [env: DATABASE_URL]
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Configuration file (TOML); `flowstore.toml` is read when present.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Most database connections in the pool [env: DB_POOL_MAX, DB_MAX_CONNECTIONS,
    /// DATABASE_POOL_MAX]
    #[arg(long, global = true)]
    pub pool_max: Option<u32>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a portable backup archive, optionally encrypted (or, with --native, the
    /// database's own dump); `backup list` and `backup prune` manage a directory of
    /// archives.
    Backup(backup::BackupArgs),
    /// Restore a backup archive, from either backend, into this database.
    Restore(backup::RestoreArgs),
    /// Export workflow definitions (with versions, projects, handlers) as JSON.
    Export(backup::ExportArgs),
    /// Import workflow definitions written by `flowstore export`.
    Import(backup::ImportArgs),
    /// Apply, revert or inspect schema migrations.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Find (and with --fix repair) integrity problems; fails while any remain.
    Check(admin::CheckArgs),
    /// Sizes, row counts, index use, connections, slow statements and dead rows.
    Stats(admin::StatsArgs),
    /// Vacuum, analyse and reindex, and report the space reclaimed.
    Vacuum(admin::VacuumArgs),
    /// Delete finished runs and history older than a cut-off, in small batches.
    Cleanup(admin::CleanupArgs),
    /// Serve the HTTP API. Takes the port, then waits for the database (a failure to
    /// reach it is logged with the address and the reason, and tried again with
    /// pauses growing from 0.5 s to 30 s), migrates it unless --no-migrate, and
    /// serves. Writes on a full disk answer 507, on a read-only database 503.
    Serve(Box<serve::ServeArgs>),
    /// Create, list or revoke API keys of the HTTP API.
    #[command(subcommand)]
    Apikeys(serve::ApiKeysCommand),
    /// Create, list and change the users who sign in: role, switch off and on,
    /// unlock, new password.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Manage the encryption key: `keys rotate` re-seals every secret under the
    /// current key.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Measure claim, HTTP, DAG and query speed on a database made for the run, beside
    /// a raw-SQL floor.
    #[command(
        after_help = "Examples:\n  flowstore bench\n  flowstore bench --database-url postgres://postgres@127.0.0.1:5432/postgres --workloads claim,dag --json"
    )]
    Bench(bench::BenchArgs),
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
    // The bench makes its own database; it never opens the configured one.
    if let Command::Bench(args) = cli.command {
        return bench::run(cli.global.database_url, args).await;
    }
    let mut settings = settings(&cli.global)?;
    // `backup list|prune` read a directory; they need no database.
    if let Command::Backup(backup::BackupArgs {
        command: Some(cmd), ..
    }) = cli.command
    {
        return backup::directory(&settings, cmd);
    }
    // The server waits for its database (and keeps waiting through restarts of it)
    // instead of exiting when it cannot connect at once.
    if let Command::Serve(args) = cli.command {
        if let Some(v) = &args.slow_query_ms {
            settings.slow_query_threshold =
                flowstore::config::parse_threshold("--slow-query-ms", v)?;
        }
        return serve::serve(&settings, *args).await;
    }
    if let Command::Keys(keys::KeysCommand::Rotate(args)) = &cli.command {
        keys::prepare(&mut settings, args)?;
    }
    // Only the commands that make a database may create a SQLite file; the others
    // (reads, checks, backups) fail naming the path instead of leaving an empty
    // database at a mistyped one.
    let creates = matches!(
        cli.command,
        Command::Serve(_)
            | Command::Restore(_)
            | Command::Migrate(migrate::MigrateCommand::Up { .. })
    );
    let new_file = Store::local_file(&settings.database_url).filter(|f| creates && !f.exists());
    let store = if creates {
        Store::connect(&settings).await?
    } else {
        Store::connect_existing(&settings).await?
    };
    let restoring = matches!(cli.command, Command::Restore(_));
    let result = match cli.command {
        Command::Migrate(cmd) => migrate::run(&store, &settings, cmd).await,
        Command::Check(args) => admin::check(&store, args).await,
        Command::Stats(args) => admin::stats(&store, args).await,
        Command::Vacuum(args) => admin::vacuum(&store, args).await,
        Command::Cleanup(args) => admin::cleanup(&store, args).await,
        Command::Backup(args) => backup::backup(&store, &settings, args).await,
        Command::Restore(args) => backup::restore(&store, &settings, args).await,
        Command::Export(args) => backup::export(&store, args).await,
        Command::Import(args) => backup::import(&store, args).await,
        Command::Serve(_) => unreachable!("handled before connecting"),
        Command::Apikeys(cmd) => serve::apikeys(&store, cmd).await,
        Command::Users(cmd) => users::run(&store, cmd).await,
        Command::Keys(keys::KeysCommand::Rotate(args)) => {
            keys::rotate(&store, &settings, args).await
        }
        Command::Bench(_) => unreachable!("handled before connecting"),
        Command::Seed { runs, .. } => {
            store.backend().check_schema().await?;
            let summary = crate::demo::seed(&store, runs).await?;
            println!("{summary}");
            Ok(())
        }
    };
    store.close().await;
    if let (true, Err(_), Some(file)) = (restoring, &result, &new_file) {
        // A restore that failed into a database it created leaves nothing behind.
        for suffix in ["", "-wal", "-shm"] {
            let mut path = file.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
    result
}

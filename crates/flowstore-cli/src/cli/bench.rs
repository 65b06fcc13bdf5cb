//! `flowstore bench`: see [`crate::bench`].

use clap::Args;

use crate::bench::{render_table, BenchOptions, Workload};
use flowstore::StoreError;
use flowstore_core::model::engine::EngineSettings;

/// Options of `flowstore bench`. The database comes from the global
/// `--database-url` only (never from the environment or `flowstore.toml`): by
/// default a temporary SQLite file; for a PostgreSQL URL, a new database created on
/// that server and dropped afterwards.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Workloads to run, comma-separated: claim, http, dag, query, fleet (three
    /// servers on one database: how soon one hears another's commits), start (runs
    /// started over HTTP, one and 1,000 per request), pickup (enqueue to start: runs
    /// started at 100 a second, claimed by waiting workers).
    #[arg(long, default_value = "claim,http,dag,query")]
    pub workloads: String,
    /// Ready tasks per claim round (claim and http), runs started per round (start;
    /// pickup at most 1,000).
    #[arg(long, default_value_t = 20_000)]
    pub tasks: u32,
    /// Concurrent workers.
    #[arg(long, default_value_t = 8)]
    pub workers: u32,
    /// Rounds per measurement; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Runs of the five-step diamond workflow (dag).
    #[arg(long, default_value_t = 2_000)]
    pub dag_runs: u32,
    /// Runs bulk-loaded for the query workload (ten metrics each).
    #[arg(long, default_value_t = 1_000_000)]
    pub runs: u64,
    /// Calls per query measured (at most 20 s per query).
    #[arg(long, default_value_t = 1_000)]
    pub query_calls: u32,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Use a SQLite file that already holds data.
    #[arg(long)]
    pub force: bool,
    /// SQLite's commit durability for the run: full (flowstore's default) or normal.
    #[arg(long, default_value = "full")]
    pub sqlite_synchronous: String,
    /// Claims write no `task.claimed` events (`FLOWSTORE_CLAIM_EVENTS=false`).
    #[arg(long)]
    pub no_claim_events: bool,
}

pub async fn run(database_url: Option<String>, args: BenchArgs) -> Result<(), StoreError> {
    let opts = BenchOptions {
        database_url,
        workloads: Workload::parse_list(&args.workloads)?,
        tasks: args.tasks,
        workers: args.workers,
        rounds: args.rounds,
        dag_runs: args.dag_runs,
        runs: args.runs,
        query_calls: args.query_calls,
        force: args.force,
        progress: !args.json,
        sqlite_synchronous: args.sqlite_synchronous.parse()?,
        engine: EngineSettings {
            claim_events: !args.no_claim_events,
        },
    };
    if !args.json {
        eprintln!(
            "flowstore bench: {} cores; workloads {:?}",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            opts.workloads
        );
    }
    let report = crate::bench::run(&opts).await?;
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| StoreError::internal(format!("report: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", render_table(&report));
    }
    Ok(())
}

//! An example flowstore worker over plain HTTP (see `worker.rs`).
//!
//! ```sh
//! cargo run -p flowstore --example worker -- --url http://127.0.0.1:8080 --key "$KEY" \
//!     --handlers shell,docker,http,llm
//! ```
//!
//! It runs until Ctrl-C, then finishes the tasks in hand.

mod worker;

use clap::Parser;

/// Claims tasks of the given handler types from a flowstore server and runs them.
#[derive(Debug, Parser)]
struct Args {
    /// The server.
    #[arg(long, env = "FLOWSTORE_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An API key of role user or admin.
    #[arg(long, env = "FLOWSTORE_API_KEY")]
    key: String,
    /// The handler types to serve, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "shell,docker,http,llm")]
    handlers: Vec<String>,
    /// The name recorded on each attempt.
    #[arg(long, default_value = "example-worker")]
    worker_id: String,
    /// Most tasks worked on at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// The lease to ask for, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    lease_ms: u64,
}

#[tokio::main]
async fn main() -> Result<(), worker::WorkerError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("stopping: finishing the tasks in hand");
        let _ = stop.send(true);
    });
    let config = worker::Config {
        url: args.url,
        key: args.key,
        worker_id: args.worker_id,
        handler_types: args.handlers,
        concurrency: args.concurrency.max(1),
        lease_ms: args.lease_ms,
        wait_ms: 10_000,
    };
    let report = worker::run(config, stopped).await?;
    println!(
        "completed {} tasks, failed {} attempts, lost {} leases",
        report.completed.values().sum::<u32>(),
        report.failed.len(),
        report.lost
    );
    Ok(())
}

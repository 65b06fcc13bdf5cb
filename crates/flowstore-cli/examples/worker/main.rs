//! An example flowstore worker over plain HTTP (see `worker.rs`).
//!
//! ```sh
//! cargo run -p flowstore-cli --example worker -- --url http://127.0.0.1:8080 --key "$KEY" \
//!     --handlers shell,docker,http,llm
//! ```
//!
//! It runs until Ctrl-C, then finishes the tasks in hand (a second Ctrl-C leaves at
//! once). An unavailable, restarting or busy server does not stop it: every call is
//! retried with backoff, honouring `Retry-After`.

mod worker;

use clap::Parser;

/// Claims tasks of the given handler types from a flowstore server and runs them.
///
/// Each claimed task is heartbeated while it runs (every third of the lease) and
/// reported as completed or failed. The worker rides out a server that is down,
/// restarting or busy: every call that gets no answer, or 408, 429 or a 5xx, is
/// retried after a delay of 100 ms doubling up to 10 s (each drawn at random
/// between half and all of it), or after the server's Retry-After when it sends
/// one. Each failure is logged; the worker goes on when the server is back. A task
/// whose lease was lost (409) is dropped, its work stopped, and not reported. Only
/// a claim refused with another 4xx (such as a revoked key) ends the worker, after
/// the tasks in hand.
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
        tracing::info!("stopping: finishing the tasks in hand (Ctrl-C again to leave now)");
        let _ = stop.send(true);
        // Finishing may wait for a server that is down; the tasks left unreported
        // are handed out again when their leases expire.
        let _ = tokio::signal::ctrl_c().await;
        tracing::warn!("leaving now; unreported tasks go back when their leases expire");
        std::process::exit(130);
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
        "completed {} tasks, failed {} attempts, lost {} leases, dropped {} refused tasks, \
         retried {} calls",
        report.completed.values().sum::<u32>(),
        report.failed.len(),
        report.lost,
        report.refused,
        report.retries
    );
    Ok(())
}

//! `flowstore check | stats | vacuum | cleanup`: integrity, statistics, vacuum and
//! retention, on top of [`flowstore_core::admin`].

use std::io::IsTerminal;

use clap::Args;
use flowstore_core::admin::{self, CheckReport, CleanupReport, RetentionPolicy};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use flowstore::{Store, StoreError};

/// `flowstore check`
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  flowstore check --fix --json")]
pub struct CheckArgs {
    /// Repair what is safe to repair, one transaction per kind of problem.
    #[arg(long)]
    pub fix: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `flowstore stats`
#[derive(Debug, Args)]
#[command(
    after_help = "Slow statements: besides pg_stat_statements (PostgreSQL, when installed), \
                  the slowest statements that flowstore servers on this database recorded \
                  (over FLOWSTORE_SLOW_QUERY_MS, default 1000 ms), normalised, with their \
                  count, longest and total time, written down on every maintenance tick.\n\n\
                  Example:\n  flowstore stats --json --slow-since 24h"
)]
pub struct StatsArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// How far back to look for recorded slow statements: 7d, 24h, 30m.
    #[arg(long, default_value = "7d")]
    pub slow_since: String,
    /// How many recorded slow statements to list.
    #[arg(long, default_value_t = 10)]
    pub slow_limit: usize,
}

/// What `stats --json` prints: the database's statistics and the slow statements
/// flowstore recorded.
#[derive(Serialize)]
struct StatsOutput {
    #[serde(flatten)]
    stats: admin::DbStats,
    /// The slowest normalised statements recorded by flowstore, slowest first.
    recorded_slow_statements: Vec<admin::SlowStatement>,
}

/// `flowstore vacuum`
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  flowstore vacuum")]
pub struct VacuumArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `flowstore cleanup`
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  flowstore cleanup --older-than 90d --dry-run")]
pub struct CleanupArgs {
    /// Delete finished runs and history older than this: 90d, 12h, 30m or 45s.
    #[arg(long)]
    pub older_than: String,
    /// Report what would be deleted and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Runs (or rows) per transaction; small batches keep locks short.
    #[arg(long, default_value_t = 500)]
    pub batch_size: u32,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One pass of a retention policy on `store`; `serve` calls it every
/// `policy.interval`.
pub async fn run_retention(
    store: &Store,
    policy: &RetentionPolicy,
) -> Result<CleanupReport, StoreError> {
    admin::run_retention(store.backend(), policy).await
}

fn spinner(msg: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if !std::io::stdout().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed} {msg}") {
        bar.set_style(style);
    }
    bar.set_message(msg.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

fn print_json<T: Serialize>(value: &T) -> Result<(), StoreError> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| StoreError::internal(e.to_string()))?;
    println!("{text}");
    Ok(())
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / 1_048_576.0)
}

/// Runs `check`; fails (non-zero exit) when problems remain.
pub async fn check(store: &Store, args: CheckArgs) -> Result<(), StoreError> {
    let bar = spinner("checking");
    let report = admin::check(store.backend(), args.fix).await;
    bar.finish_and_clear();
    let report = report?;
    if args.json {
        print_json(&report)?;
    } else {
        print_check(&report, args.fix);
    }
    if report.is_clean() {
        Ok(())
    } else {
        let n: u64 = report.remaining.iter().map(|f| f.count).sum();
        Err(StoreError::conflict(
            "check",
            format!(
                "{n} problem(s) remain in {} finding(s)",
                report.remaining.len()
            ),
        ))
    }
}

fn print_check(r: &CheckReport, fix: bool) {
    if r.findings.is_empty() {
        println!("no problems found");
    }
    for f in &r.findings {
        println!(
            "{:<24} {:<20} {:>6}  {} (e.g. {})",
            f.kind.as_str(),
            f.table,
            f.count,
            f.detail,
            f.examples.join(", ")
        );
    }
    if fix {
        for rep in &r.repairs {
            match &rep.note {
                Some(note) => println!(
                    "fixed {:<20} {:>6}; left: {note}",
                    rep.kind.as_str(),
                    rep.fixed
                ),
                None => println!("fixed {:<20} {:>6}", rep.kind.as_str(), rep.fixed),
            }
        }
        for f in &r.remaining {
            println!(
                "remains {:<22} {:<20} {:>6}",
                f.kind.as_str(),
                f.table,
                f.count
            );
        }
    }
    for n in &r.notes {
        println!("note: {n}");
    }
}

/// Runs `stats`.
pub async fn stats(store: &Store, args: StatsArgs) -> Result<(), StoreError> {
    let since = admin::parse_duration("--slow-since", &args.slow_since)?;
    let since = flowstore_core::time::now()
        - chrono::Duration::from_std(since)
            .map_err(|_| StoreError::invalid("--slow-since", "is too long"))?;
    let s = store.backend().admin().stats().await?;
    let recorded = flowstore_core::slow::recorded(store.backend(), since, args.slow_limit).await?;
    if args.json {
        return print_json(&StatsOutput {
            stats: s,
            recorded_slow_statements: recorded,
        });
    }
    println!("database: {}", mib(s.database_bytes));
    println!(
        "{:<28} {:>12} {:>12} {:>10}",
        "table", "rows", "bytes", "dead"
    );
    for t in &s.tables {
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        println!(
            "{:<28} {:>12} {:>12} {:>10}",
            t.name,
            t.rows,
            opt(t.bytes),
            opt(t.dead_rows)
        );
    }
    if !s.unused_indexes.is_empty() {
        println!("unused indexes: {}", s.unused_indexes.join(", "));
    }
    println!(
        "connections: pool {} ({} idle){}",
        s.connections.pool_size,
        s.connections.pool_idle,
        s.connections
            .server_by_state
            .iter()
            .map(|(k, v)| format!(", {k} {v}"))
            .collect::<String>()
    );
    for q in &s.slow_statements {
        println!("slow: {:>10.2} ms x{} {}", q.mean_ms, q.calls, q.query);
    }
    for q in &recorded {
        println!(
            "slow (recorded): max {:>10.2} ms, total {:>10.2} ms x{} {}",
            q.max_ms.unwrap_or(q.mean_ms),
            q.total_ms,
            q.calls,
            q.query
        );
    }
    if let Some(f) = s.freelist_pages {
        println!("free pages: {f}");
    }
    if let Some(d) = s.dead_rows {
        println!("dead rows: {d}");
    }
    for n in &s.notes {
        println!("note: {n}");
    }
    Ok(())
}

/// Runs `vacuum`.
pub async fn vacuum(store: &Store, args: VacuumArgs) -> Result<(), StoreError> {
    let bar = spinner("vacuuming");
    let r = admin::vacuum(store.backend()).await;
    bar.finish_and_clear();
    let r = r?;
    if args.json {
        return print_json(&r);
    }
    for s in &r.steps {
        println!("ran {s}");
    }
    println!(
        "before {}, after {}, reclaimed {}",
        mib(r.bytes_before),
        mib(r.bytes_after),
        mib(r.reclaimed)
    );
    Ok(())
}

/// Runs `cleanup`.
pub async fn cleanup(store: &Store, args: CleanupArgs) -> Result<(), StoreError> {
    let older_than = admin::parse_duration("--older-than", &args.older_than)?;
    let bar = spinner("deleting");
    let progress_bar = bar.clone();
    let progress = move |done: &admin::TableCounts| {
        progress_bar.set_message(format!("deleted {} rows", done.values().sum::<u64>()));
    };
    let r = admin::cleanup(
        store.backend(),
        older_than,
        args.batch_size,
        args.dry_run,
        &progress,
    )
    .await;
    bar.finish_and_clear();
    let r = r?;
    if args.json {
        return print_json(&r);
    }
    let verb = if r.dry_run { "would delete" } else { "deleted" };
    println!("cut-off {}", r.cutoff.to_rfc3339());
    if r.deleted.is_empty() {
        println!("nothing to delete");
    }
    for (t, n) in &r.deleted {
        println!("{verb} {n:>10} from {t}");
    }
    println!(
        "size before {}, after {}, freed {}",
        mib(r.bytes_before),
        mib(r.bytes_after),
        mib(r.bytes_freed)
    );
    Ok(())
}

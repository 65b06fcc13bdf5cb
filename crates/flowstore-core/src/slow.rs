//! Slow statements: counted, listed and logged with a normalised text, on either
//! backend, without `pg_stat_statements`.
//!
//! Both backends' connections are set up with [`report_slow`], so that sqlx itself
//! times every statement it runs (it does so for its own logging anyway, on every
//! connection, whoever runs the statement) and reports one that took at least the
//! threshold as a `WARN` event of target `sqlx::query`. [`layer`] is the
//! `tracing` layer that turns those events into records of this module's registry:
//! a process-wide count ([`total`], `flowstore_slow_queries_total` in `/metrics`),
//! the slowest normalised statements since the process started ([`slowest`]) and
//! a log line of its own (target `flowstore::slow`, the normalised text and the
//! duration). Statements under the threshold cost nothing more than sqlx's own
//! timing: no event is built for them.
//!
//! A process only sees its own statements. A process that calls [`keep_for_flush`]
//! (the server does) keeps them until [`flush`] writes them to the database as
//! system metrics named [`METRIC`] (the server does it on every maintenance tick),
//! so that `flowstore stats`, another process, lists them with [`recorded`]. Other
//! processes (the one-shot commands, programs embedding the library) keep nothing
//! for a flush: a backup must not write into the database it copies.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::admin::SlowStatement;
use crate::model::registry::NewSystemMetric;
use crate::{Backend, StoreResult};

/// The threshold when none is configured: seed 002's alert on queries over 1 s.
pub const DEFAULT_THRESHOLD: Duration = Duration::from_millis(1000);

/// The system metric each slow statement is written as by [`flush`]: its value is
/// the duration in milliseconds, its label `statement` the normalised text.
pub const METRIC: &str = "flowstore.slow_statement_ms";

/// The target of sqlx's statement events.
const SQLX_TARGET: &str = "sqlx::query";

/// Distinct normalised statements kept in memory; past it the one of least total
/// time is forgotten (its count stays in [`total`]).
const MAX_DISTINCT: usize = 256;

/// Slow statements kept for the next [`flush`]; past it the newest are dropped
/// (and still counted), so that a database too slow to take them bounds memory.
const MAX_PENDING: usize = 1000;

/// Longest normalised text kept, in characters.
const MAX_TEXT: usize = 2000;

static TOTAL: AtomicU64 = AtomicU64::new(0);

static KEEP: AtomicBool = AtomicBool::new(false);

/// From now on, keeps the slow statements this process records until [`flush`]
/// writes them down (the server calls it at start).
pub fn keep_for_flush() {
    KEEP.store(true, Ordering::Relaxed);
}

/// One normalised statement's slow executions: how many, their total and the
/// longest.
#[derive(Default)]
struct Entry {
    count: u64,
    total: Duration,
    max: Duration,
}

impl Entry {
    /// Counts one more execution that took `elapsed`.
    fn add(&mut self, elapsed: Duration) {
        self.count += 1;
        self.total += elapsed;
        self.max = self.max.max(elapsed);
    }
}

#[derive(Default)]
struct Registry {
    by_text: HashMap<String, Entry>,
    pending: Vec<(String, Duration)>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn with_registry<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    // A panic while the lock was held leaves figures that are still figures.
    let mut guard = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(Registry::default))
}

/// Sets sqlx's slow-statement report on `options`: a statement taking at least
/// `threshold` becomes the `WARN` event [`layer`] records; `None` reports none.
/// Set it after anything else that touches sqlx's logging
/// (`disable_statement_logging` switches the report off too).
pub fn report_slow<O: sqlx::ConnectOptions>(options: O, threshold: Option<Duration>) -> O {
    match threshold {
        Some(threshold) => options.log_slow_statements(log::LevelFilter::Warn, threshold),
        None => options.log_slow_statements(log::LevelFilter::Off, Duration::MAX),
    }
}

/// Records one slow statement: counts it, keeps it for [`slowest`] and [`flush`],
/// and logs it with its normalised text and duration.
pub fn record(sql: &str, elapsed: Duration) {
    TOTAL.fetch_add(1, Ordering::Relaxed);
    let text = normalise(sql);
    let ms = elapsed.as_secs_f64() * 1000.0;
    tracing::warn!(
        target: "flowstore::slow",
        duration_ms = ms,
        statement = %text,
        "slow statement"
    );
    with_registry(|r| {
        if KEEP.load(Ordering::Relaxed) && r.pending.len() < MAX_PENDING {
            r.pending.push((text.clone(), elapsed));
        }
        if !r.by_text.contains_key(&text) && r.by_text.len() >= MAX_DISTINCT {
            let least = r
                .by_text
                .iter()
                .min_by_key(|(_, e)| e.total)
                .map(|(k, _)| k.clone());
            if let Some(k) = least {
                r.by_text.remove(&k);
            }
        }
        r.by_text.entry(text).or_default().add(elapsed);
    })
}

/// Slow statements recorded by this process since it started.
pub fn total() -> u64 {
    TOTAL.load(Ordering::Relaxed)
}

/// The `n` slowest normalised statements this process has recorded, slowest (by
/// longest run) first.
pub fn slowest(n: usize) -> Vec<SlowStatement> {
    let mut all: Vec<SlowStatement> = with_registry(|r| {
        r.by_text
            .iter()
            .map(|(text, e)| summary(text.clone(), e.count, e.total, e.max))
            .collect()
    });
    sort(&mut all);
    all.truncate(n);
    all
}

fn summary(query: String, calls: u64, total: Duration, max: Duration) -> SlowStatement {
    let total_ms = total.as_secs_f64() * 1000.0;
    SlowStatement {
        query,
        calls,
        mean_ms: total_ms / calls.max(1) as f64,
        total_ms,
        max_ms: Some(max.as_secs_f64() * 1000.0),
    }
}

fn sort(list: &mut [SlowStatement]) {
    list.sort_by(|a, b| {
        b.max_ms
            .unwrap_or(0.0)
            .total_cmp(&a.max_ms.unwrap_or(0.0))
            .then_with(|| a.query.cmp(&b.query))
    });
}

/// Writes the slow statements recorded since the last flush to the database, as
/// system metrics named [`METRIC`], in one transaction. Statements that could not
/// be written are not tried again: this is a report, not a ledger.
pub async fn flush(backend: &dyn Backend) -> StoreResult<usize> {
    let pending = with_registry(|r| std::mem::take(&mut r.pending));
    if pending.is_empty() {
        return Ok(0);
    }
    let mut tx = backend.begin().await?;
    for (text, elapsed) in &pending {
        tx.record_system_metric(NewSystemMetric {
            metric_name: METRIC.into(),
            metric_value: elapsed.as_secs_f64() * 1000.0,
            metric_unit: Some("ms".into()),
            component: Some("flowstore".into()),
            labels: Some(json!({ "statement": text })),
        })
        .await?;
    }
    tx.commit().await?;
    Ok(pending.len())
}

/// The `n` slowest normalised statements written by [`flush`] (by any process on
/// this database) since `since`, after flushing this process's, slowest first.
pub async fn recorded(
    backend: &dyn Backend,
    since: crate::time::Timestamp,
    n: usize,
) -> StoreResult<Vec<SlowStatement>> {
    flush(backend).await?;
    // Pages of the oldest first; a row at a page's last instant may come again on
    // the next page, so rows are told apart by ID. At most 50 pages are read.
    let mut rows = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut from = since;
    let mut tx = backend.begin_read().await?;
    for _ in 0..50 {
        let page = tx.list_system_metrics(METRIC, from, 1000).await?;
        let full = page.len() == 1000;
        let before = rows.len();
        for row in page {
            if seen.insert(row.id) {
                from = row.recorded_at;
                rows.push(row);
            }
        }
        if !full || rows.len() == before {
            break;
        }
    }
    tx.rollback().await?;
    let mut by_text: HashMap<String, Entry> = HashMap::new();
    for row in rows {
        let Some(text) = row.labels.get("statement").and_then(|v| v.as_str()) else {
            continue;
        };
        let elapsed = Duration::from_secs_f64(row.metric_value.max(0.0) / 1000.0);
        by_text.entry(text.to_string()).or_default().add(elapsed);
    }
    let mut all: Vec<SlowStatement> = by_text
        .into_iter()
        .map(|(text, e)| summary(text, e.count, e.total, e.max))
        .collect();
    sort(&mut all);
    all.truncate(n);
    Ok(all)
}

/// A statement's text with its literals replaced by `?`, comments dropped and
/// white space collapsed, so that runs with different values count as one:
/// `SELECT * FROM t WHERE a = 'x' AND b > 42` → `SELECT * FROM t WHERE a = ? AND b > ?`.
/// Bound parameters (`$1`, `?1`) are kept as they are.
pub fn normalise(sql: &str) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len().min(MAX_TEXT));
    let mut i = 0;
    // Whether the previous character written belongs to a word (an identifier, a
    // parameter such as `$1`), in which case digits continue it.
    let mut in_word = false;
    while i < chars.len() && out.len() < MAX_TEXT {
        let c = chars[i];
        match c {
            '\'' => {
                // A string literal, with '' as an escaped quote; E'..' and the like
                // keep their prefix letter, which is harmless.
                i += 1;
                while i < chars.len() {
                    if chars[i] == '\'' {
                        if chars.get(i + 1) == Some(&'\'') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                out.push('?');
                in_word = false;
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                push_space(&mut out);
                in_word = false;
                continue;
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 1;
                push_space(&mut out);
                in_word = false;
            }
            c if c.is_ascii_digit() && !in_word => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                out.push('?');
                in_word = false;
                continue;
            }
            c if c.is_whitespace() => {
                push_space(&mut out);
                in_word = false;
            }
            '"' => {
                // A quoted identifier is kept whole.
                out.push('"');
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    out.push(chars[i]);
                    i += 1;
                }
                out.push('"');
                in_word = false;
            }
            c => {
                out.push(c);
                in_word = c.is_alphanumeric() || c == '_' || c == '$' || c == '?';
            }
        }
        i += 1;
    }
    out.trim().to_string()
}

fn push_space(out: &mut String) {
    if !out.is_empty() && !out.ends_with(' ') {
        out.push(' ');
    }
}

/// The `tracing` layer that records sqlx's slow-statement events. Add it to the
/// process's subscriber (`tracing_subscriber::registry().with(slow::layer())`);
/// it looks at nothing else, so it enables no other event.
pub fn layer<S>() -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    SlowLayer.with_filter(SlowEvents)
}

/// Whether an event is one of sqlx's slow-statement reports (a `WARN` of target
/// `sqlx::query`; sqlx logs ordinary statements at `DEBUG`), which a log output
/// that shows [`record`]'s normalised line instead may leave out.
pub fn is_driver_report(meta: &tracing::Metadata<'_>) -> bool {
    meta.target() == SQLX_TARGET && *meta.level() == tracing::Level::WARN
}

struct SlowEvents;

impl<S> Filter<S> for SlowEvents {
    fn enabled(&self, meta: &tracing::Metadata<'_>, _: &Context<'_, S>) -> bool {
        is_driver_report(meta)
    }

    fn callsite_enabled(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if is_driver_report(meta) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }
}

struct SlowLayer;

impl<S: tracing::Subscriber> Layer<S> for SlowLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut v = SqlxFields::default();
        event.record(&mut v);
        // sqlx puts the whole statement in `db.statement` unless it is short
        // enough to be its own summary.
        let sql = if v.statement.trim().is_empty() {
            v.summary
        } else {
            v.statement
        };
        if let Some(secs) = v.elapsed_secs {
            record(sql.trim(), Duration::from_secs_f64(secs.max(0.0)));
        }
    }
}

#[derive(Default)]
struct SqlxFields {
    summary: String,
    statement: String,
    elapsed_secs: Option<f64>,
}

impl Visit for SqlxFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_string(),
            "db.statement" => self.statement = value.to_string(),
            _ => {}
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = Some(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // Strings come through `record_str`; this keeps a summary given otherwise.
        if field.name() == "summary" && self.summary.is_empty() {
            self.summary = format!("{value:?}").trim_matches('"').to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_replaced() {
        assert_eq!(
            normalise("SELECT *  FROM t\n WHERE a = 'it''s' AND b > 42 -- note\n LIMIT 10"),
            "SELECT * FROM t WHERE a = ? AND b > ? LIMIT ?"
        );
        assert_eq!(
            normalise("select pg_sleep(0.05), x1 from \"T 2\" where id = $1 /* c */"),
            "select pg_sleep(?), x1 from \"T 2\" where id = $1"
        );
        assert_eq!(normalise("SELECT ?1, -3.5e2"), "SELECT ?1, -?");
    }

    #[test]
    fn records_are_summed_per_text() {
        let before = total();
        record("SELECT 'normalise-me-a' || 1", Duration::from_millis(30));
        record("SELECT 'normalise-me-b' || 2", Duration::from_millis(10));
        assert!(total() >= before + 2);
        let found = slowest(MAX_DISTINCT)
            .into_iter()
            .find(|s| s.query == "SELECT ? || ?")
            .expect("the two statements are one normalised text");
        assert!(found.calls >= 2);
        assert!(found.max_ms.unwrap() >= 30.0);
    }
}

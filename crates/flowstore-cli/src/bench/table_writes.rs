//! What a measured phase wrote, table by table, from PostgreSQL's statistics
//! (`pg_stat_user_tables`): rows inserted, updated (and of those, updated in place,
//! "HOT", with no new index entries) and deleted, per task or per run. SQLite keeps
//! no such counts.

use std::collections::BTreeMap;
use std::time::Duration;

use flowstore_core::StoreResult;

use super::{db_err, Raw};

/// How long a connection may keep what it wrote from the statistics: a busy one
/// reports at most once a second, an idle one within ten seconds.
const REPORTED_WITHIN: Duration = Duration::from_secs(11);

/// Rows written so far by table: inserted, updated, updated in place (HOT), deleted.
pub(crate) struct TableWrites(BTreeMap<String, [i64; 4]>);

impl TableWrites {
    /// The counts once every connection has reported what it wrote until now;
    /// `None` on SQLite.
    pub(crate) async fn read(raw: &Raw) -> StoreResult<Option<TableWrites>> {
        let Raw::Postgres(pool) = raw else {
            return Ok(None);
        };
        tokio::time::sleep(REPORTED_WITHIN).await;
        let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT relname::text, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del
               FROM pg_stat_user_tables",
        )
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
        Ok(Some(TableWrites(
            rows.into_iter()
                .map(|(t, i, u, h, d)| (t, [i, u, h, d]))
                .collect(),
        )))
    }

    /// The counts before a phase that is to be measured (`measure`); `None` when it
    /// is not, or on SQLite.
    pub(crate) async fn before(raw: &Raw, measure: bool) -> StoreResult<Option<TableWrites>> {
        match measure {
            true => TableWrites::read(raw).await,
            false => Ok(None),
        }
    }

    /// The note on what the phase read `before` wrote per one of `items`, once it
    /// has ended; `None` when it was not measured.
    pub(crate) async fn since(
        before: Option<TableWrites>,
        raw: &Raw,
        items: u64,
        unit: &str,
    ) -> StoreResult<Option<String>> {
        let Some(before) = before else {
            return Ok(None);
        };
        Ok(TableWrites::read(raw)
            .await?
            .map(|after| after.per_item(&before, items, unit)))
    }

    /// What was written since `before`, per one of `items`, table by table (the
    /// tables written to alone), with the rows written in all per item.
    fn per_item(&self, before: &TableWrites, items: u64, unit: &str) -> String {
        let items = items.max(1) as f64;
        let mut total = 0.0;
        let mut parts = Vec::new();
        for (table, now) in &self.0 {
            let was = before.0.get(table).copied().unwrap_or_default();
            let d: Vec<f64> = (0..4).map(|k| (now[k] - was[k]) as f64 / items).collect();
            let (ins, upd, hot, del) = (d[0], d[1], d[2], d[3]);
            if ins + upd + del < 0.005 {
                continue;
            }
            total += ins + upd + del;
            let mut what = Vec::new();
            if ins >= 0.005 {
                what.push(format!("{ins:.2} ins"));
            }
            if upd >= 0.005 {
                what.push(format!("{upd:.2} upd ({hot:.2} HOT)"));
            }
            if del >= 0.005 {
                what.push(format!("{del:.2} del"));
            }
            parts.push(format!("{table} {}", what.join(" ")));
        }
        format!(
            "rows written per {unit} (PostgreSQL's table counters): {total:.2} in all; {}",
            parts.join("; ")
        )
    }
}

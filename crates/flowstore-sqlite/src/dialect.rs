//! SQLite's side of the repositories written once for both backends
//! (`crates/storage/`): the transaction type they are implemented on, how their
//! SQL (PostgreSQL's spelling) becomes SQLite's, how instants are bound, and the
//! fragments the two databases spell differently.

pub(crate) use crate::backend::SqliteTx as Tx;
pub(crate) use crate::reference::ensure_exists;
pub(crate) use crate::util::{ts, ts_opt};

/// A statement of the shared SQL, in SQLite's spelling; converted once per place it
/// is written (`$text` is a literal).
macro_rules! sql {
    ($text:literal) => {{
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        SQL.get_or_init(|| flowstore_core::dialect::to_sqlite($text))
            .as_str()
    }};
}
pub(crate) use sql;

/// A statement of the shared SQL put together with `format!` from fragments that
/// never change at run time, converted once per place it is written.
macro_rules! sql_fmt {
    ($($arg:tt)*) => {{
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        SQL.get_or_init(|| flowstore_core::dialect::to_sqlite(&format!($($arg)*)))
            .as_str()
    }};
}
pub(crate) use sql_fmt;

/// A statement of the shared SQL built at run time, in SQLite's spelling.
pub(crate) fn sql_owned(text: String) -> String {
    flowstore_core::dialect::to_sqlite(&text)
}

/// The connection the shared repositories run their statements on.
pub(crate) type Conn = sqlx::SqliteConnection;

/// Holds other transactions that ask for the same `key` off until this one ends:
/// nothing to do here, where a write transaction holds the whole database.
pub(crate) async fn exclusive(_c: &mut Conn, _key: i64) -> flowstore_core::StoreResult<()> {
    Ok(())
}

/// The greater of two values, NULL only when both are.
pub(crate) fn greatest(a: &str, b: &str) -> String {
    format!("max(coalesce({a}, {b}), coalesce({b}, {a}))")
}

/// Whether the JSON array in `column` holds the text `value` (a parameter).
pub(crate) fn json_array_contains(column: &str, value: &str) -> String {
    format!("EXISTS (SELECT 1 FROM json_each({column}) t WHERE t.value = {value})")
}

/// A list of texts bound as one parameter: a JSON array here.
pub(crate) fn text_list(items: &[String]) -> String {
    serde_json::Value::from(items).to_string()
}

/// Whether `column` is one of the texts of the list bound at `param`.
pub(crate) fn in_text_list(column: &str, param: &str) -> String {
    format!("{column} IN (SELECT value FROM json_each({param}))")
}

/// A list of UUIDs bound as one parameter: a JSON array of their hex digits here.
pub(crate) fn id_list(ids: impl Iterator<Item = uuid::Uuid>) -> String {
    serde_json::Value::from_iter(ids.map(|id| id.simple().to_string())).to_string()
}

/// Whether `column` is one of the UUIDs of the list bound at `param`.
pub(crate) fn in_id_list(column: &str, param: &str) -> String {
    format!("{column} IN (SELECT unhex(value) FROM json_each({param}))")
}

/// Microseconds since the epoch of an instant as flowstore writes it
/// (`YYYY-MM-DDTHH:MM:SS.ffffffZ`).
fn micros(expr: &str) -> String {
    format!(
        "(CAST(strftime('%s', {expr}) AS INTEGER) * 1000000 + CAST(substr({expr}, 21, 6) AS INTEGER))"
    )
}

/// Whole milliseconds from the instant `from` to the instant `to`, never negative,
/// truncated as [`flowstore_core::time::duration_ms`] truncates.
pub(crate) fn elapsed_ms(from: &str, to: &str) -> String {
    format!("max(0, ({} - {}) / 1000)", micros(to), micros(from))
}

/// Whether more than `seconds` seconds lie between the instants `start` and `now`.
pub(crate) fn seconds_passed(start: &str, seconds: &str, now: &str) -> String {
    format!("{} + {seconds} * 1000000 < {}", micros(start), micros(now))
}

/// The database, for the types the shared repositories name.
pub(crate) type Db = sqlx::Sqlite;

/// A statement with its parameters bound.
pub(crate) type Query<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>;

/// How a bound parameter is read as a UUID where nothing else says its type, in SQL
/// a query builder writes (the shared statements spell `::uuid`, which `sql!`
/// drops): nothing here, where a UUID is its 16 bytes.
pub(crate) const UUID_CAST: &str = "";

/// The UUID written as text in `expr` (36 characters with dashes), else NULL
/// (`unhex` gives NULL for anything but hex digits).
pub(crate) fn uuid_from_text(expr: &str) -> String {
    format!(
        "CASE WHEN length(trim({expr}, ' ')) = 36
            AND length(replace(trim({expr}, ' '), '-', '')) = 32
            THEN unhex(replace(trim({expr}, ' '), '-', '')) END"
    )
}

/// A UUID column shown in its usual text form (here a 16-byte BLOB).
pub(crate) fn id_text(col: &str) -> String {
    format!(
        "lower(substr(hex({col}),1,8)||'-'||substr(hex({col}),9,4)||'-'||substr(hex({col}),13,4)
          ||'-'||substr(hex({col}),17,4)||'-'||substr(hex({col}),21))"
    )
}

/// The whole UTC hour of the instant in `col`, as instants are stored.
pub(crate) fn hour_bucket(col: &str) -> String {
    format!("substr({col}, 1, 13) || ':00:00.000000Z'")
}

/// The whole UTC day of the instant in `col`, as instants are stored.
pub(crate) fn day_bucket(col: &str) -> String {
    format!("substr({col}, 1, 10) || 'T00:00:00.000000Z'")
}

/// The instant `days` days after the instant `t`, as instants are stored (text
/// order is time order).
pub(crate) fn plus_days(t: &str, days: u32) -> String {
    format!("strftime('%Y-%m-%dT%H:%M:%f000Z', {t}, '+{days} days')")
}

/// The schema of this connection's temporary tables.
pub(crate) const TEMP: &str = "temp";

/// The column type of a UUID.
pub(crate) const UUID_TYPE: &str = "BLOB";

/// How a migration's transaction begins: IMMEDIATE, so that it holds SQLite's write
/// lock before it checks whether another migrator applied its version first.
pub(crate) const MIGRATION_BEGIN: &str = "BEGIN IMMEDIATE";

/// The bookkeeping table's version and time columns (see `storage/migrations.rs`);
/// the runner writes the time itself.
pub(crate) const MIGRATION_COLUMNS: [&str; 2] = ["INTEGER", "TEXT NOT NULL"];

/// Whether the migrations' bookkeeping table exists.
pub(crate) const MIGRATIONS_TABLE_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM sqlite_master
    WHERE type = 'table' AND name = 'schema_migrations')";

#[cfg(test)]
mod tests {
    /// Every instant the shared repositories bind goes through `ts`/`ts_opt`: bound
    /// raw, SQLite would get it in another text form than the one stored, and text
    /// comparisons with stored instants would no longer follow time.
    #[test]
    fn shared_repositories_bind_instants_through_ts() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../storage");
        let mut raw = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (at, _) in text.match_indices(".bind(") {
                let arg: String = text[at + 6..]
                    .chars()
                    .scan(1i32, |depth, c| {
                        *depth += match c {
                            '(' => 1,
                            ')' => -1,
                            _ => 0,
                        };
                        (*depth > 0).then_some(c)
                    })
                    .collect();
                let arg = arg.trim();
                let name = arg
                    .trim_start_matches(['&', '*'])
                    .rsplit(['.', ' '])
                    .next()
                    .unwrap_or_default();
                let instant = name.ends_with("_at")
                    || matches!(name, "now" | "until" | "since" | "cutoff" | "timestamp");
                if instant && !arg.starts_with("ts(") && !arg.starts_with("ts_opt(") {
                    raw.push(format!("{}: .bind({arg})", path.display()));
                }
            }
        }
        assert!(raw.is_empty(), "instants bound raw: {raw:#?}");
    }
}

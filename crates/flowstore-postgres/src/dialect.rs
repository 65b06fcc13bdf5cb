//! PostgreSQL's side of the repositories written once for both backends
//! (`crates/storage/`): the transaction type they are implemented on, their SQL
//! (already in PostgreSQL's spelling), how instants are bound, and the fragments the
//! two databases spell differently.

use chrono::{DateTime, Utc};

pub(crate) use crate::backend::PostgresTx as Tx;
pub(crate) use crate::reference::ensure_exists;

/// A statement of the shared SQL: written in this database's spelling already.
macro_rules! sql {
    ($text:literal) => {
        $text
    };
}
pub(crate) use sql;

/// A statement of the shared SQL put together with `format!` from fragments that
/// never change at run time, formatted once per place it is written.
macro_rules! sql_fmt {
    ($($arg:tt)*) => {{
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        SQL.get_or_init(|| format!($($arg)*)).as_str()
    }};
}
pub(crate) use sql_fmt;

/// A statement of the shared SQL built at run time.
pub(crate) fn sql_owned(text: String) -> String {
    text
}

/// An instant as bound: PostgreSQL takes it as it is.
pub(crate) fn ts(t: &DateTime<Utc>) -> DateTime<Utc> {
    *t
}

/// [`ts`] for an optional instant.
pub(crate) fn ts_opt(t: &Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    *t
}

/// The connection the shared repositories run their statements on.
pub(crate) type Conn = sqlx::PgConnection;

/// Holds other transactions that ask for the same `key` off until this one ends (a
/// transaction advisory lock).
pub(crate) async fn exclusive(c: &mut Conn, key: i64) -> flowstore_core::StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(key)
        .execute(c)
        .await?;
    Ok(())
}

/// The greater of two values, NULL only when both are.
pub(crate) fn greatest(a: &str, b: &str) -> String {
    format!("GREATEST({a}, {b})")
}

/// Whether the JSON array in `column` holds the text `value` (a parameter).
pub(crate) fn json_array_contains(column: &str, value: &str) -> String {
    format!("{column} @> jsonb_build_array({value})")
}

/// A list of texts bound as one parameter: an array here.
pub(crate) fn text_list(items: &[String]) -> &[String] {
    items
}

/// Whether `column` is one of the texts of the list bound at `param`.
pub(crate) fn in_text_list(column: &str, param: &str) -> String {
    format!("{column} = ANY({param}::text[])")
}

/// A list of UUIDs bound as one parameter: an array here.
pub(crate) fn id_list(ids: impl Iterator<Item = uuid::Uuid>) -> Vec<uuid::Uuid> {
    ids.collect()
}

/// Whether `column` is one of the UUIDs of the list bound at `param`.
pub(crate) fn in_id_list(column: &str, param: &str) -> String {
    format!("{column} = ANY({param}::uuid[])")
}

/// Whole milliseconds from the instant `from` to the instant `to`, never negative.
pub(crate) fn elapsed_ms(from: &str, to: &str) -> String {
    format!("greatest(0, floor(extract(epoch FROM ({to} - {from})) * 1000))::bigint")
}

/// Whether more than `seconds` seconds lie between the instants `start` and `now`.
pub(crate) fn seconds_passed(start: &str, seconds: &str, now: &str) -> String {
    format!("{start} + make_interval(secs => {seconds}) < {now}")
}

/// The database, for the types the shared repositories name.
pub(crate) type Db = sqlx::Postgres;

/// A statement with its parameters bound.
pub(crate) type Query<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>;

/// How a bound parameter is read as a UUID where nothing else says its type, in SQL
/// a query builder writes.
pub(crate) const UUID_CAST: &str = "::uuid";

/// The UUID written as text in `expr` (36 characters with dashes), else NULL.
pub(crate) fn uuid_from_text(expr: &str) -> String {
    format!(
        "CASE WHEN length(trim({expr})) = 36
            AND replace(trim({expr}), '-', '') ~ '^[0-9a-fA-F]{{32}}$'
            THEN replace(trim({expr}), '-', '')::uuid END"
    )
}

/// A UUID column shown in its usual text form.
pub(crate) fn id_text(col: &str) -> String {
    format!("CAST({col} AS text)")
}

/// The whole UTC hour of the instant in `col`, whatever the session's time zone.
pub(crate) fn hour_bucket(col: &str) -> String {
    format!("date_trunc('hour', {col} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'")
}

/// The whole UTC day of the instant in `col`, whatever the session's time zone.
pub(crate) fn day_bucket(col: &str) -> String {
    format!("date_trunc('day', {col} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'")
}

/// The instant `days` days after the instant `t`.
pub(crate) fn plus_days(t: &str, days: u32) -> String {
    format!("{t} + interval '{days} days'")
}

/// The schema of this connection's temporary tables.
pub(crate) const TEMP: &str = "pg_temp";

/// The column type of a UUID.
pub(crate) const UUID_TYPE: &str = "UUID";

/// How a migration's transaction begins: the session advisory lock the runner holds
/// already keeps other migrators out.
pub(crate) const MIGRATION_BEGIN: &str = "BEGIN";

/// The bookkeeping table's version and time columns (see `storage/migrations.rs`).
pub(crate) const MIGRATION_COLUMNS: [&str; 2] = ["BIGINT", "TIMESTAMPTZ NOT NULL DEFAULT now()"];

/// Whether the migrations' bookkeeping table exists.
pub(crate) const MIGRATIONS_TABLE_EXISTS: &str =
    "SELECT to_regclass('schema_migrations') IS NOT NULL";

//! Portable backups: the catalog of tables and columns, the portable encoding of
//! their values, and the traits a backend implements to read a consistent snapshot
//! and to load rows back.
//!
//! A portable row is a JSON array with one value per column, in catalog order (or
//! the archive's column order): `null` for SQL NULL, UUIDs as canonical text,
//! instants as RFC 3339 with microseconds and `Z`, bytes as base64, JSON as JSON with
//! sorted keys, numbers as numbers. The same row read from SQLite or PostgreSQL
//! encodes to the same text, so checksums compare across backends.

mod catalog;

use std::sync::OnceLock;

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{StoreError, StoreResult};

/// The portable type of a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// A UUID (PostgreSQL `UUID`, SQLite 16-byte BLOB).
    Uuid,
    /// Text of any length.
    Text,
    /// A 64-bit integer.
    Int,
    /// A double.
    Float,
    /// A boolean (SQLite 0/1).
    Bool,
    /// A JSON document (PostgreSQL `JSONB`, SQLite checked text).
    Json,
    /// An instant with microseconds (PostgreSQL `TIMESTAMPTZ`, SQLite fixed text).
    Timestamp,
    /// Raw bytes (encrypted values stay encrypted).
    Bytes,
    /// A decimal (PostgreSQL `NUMERIC`, SQLite REAL), carried as a number.
    Decimal,
}

impl ColumnType {
    fn parse(s: &str) -> Option<ColumnType> {
        Some(match s {
            "uuid" => ColumnType::Uuid,
            "text" => ColumnType::Text,
            "int" => ColumnType::Int,
            "float" => ColumnType::Float,
            "bool" => ColumnType::Bool,
            "json" => ColumnType::Json,
            "timestamp" => ColumnType::Timestamp,
            "bytes" => ColumnType::Bytes,
            "decimal" => ColumnType::Decimal,
            _ => return None,
        })
    }
}

/// One column of a [`Table`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its portable type.
    #[serde(rename = "type")]
    pub ty: ColumnType,
}

/// What deleting a referenced row does to the rows that point at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDelete {
    /// They are deleted with it (`ON DELETE CASCADE`).
    Cascade,
    /// Their reference is blanked (`ON DELETE SET NULL`).
    SetNull,
}

impl OnDelete {
    /// The SQL words for it.
    pub fn sql(self) -> &'static str {
        match self {
            OnDelete::Cascade => "CASCADE",
            OnDelete::SetNull => "SET NULL",
        }
    }
}

/// A foreign key of a [`Table`]: `column` holds a value of `target`'s
/// `target_column`, or NULL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The referencing column, in the table that holds this reference.
    pub column: &'static str,
    /// The table pointed at.
    pub target: &'static str,
    /// The column pointed at (a key or unique column of `target`).
    pub target_column: &'static str,
    /// What deleting the row pointed at does to the row pointing at it.
    pub on_delete: OnDelete,
}

/// One table of the catalog.
#[derive(Clone, Debug)]
pub struct Table {
    /// Its name.
    pub name: &'static str,
    /// The primary key columns: the order rows are read in.
    pub key: Vec<&'static str>,
    /// Columns that may point at rows loaded later (self-references and the
    /// runs ↔ tasks cycle): loaded as NULL, set once every table is in.
    pub deferred: Vec<&'static str>,
    /// Kept by triggers from other tables: emptied just before its rows are loaded.
    pub derived: bool,
    /// The columns, in the order the backup writes them.
    pub columns: Vec<Column>,
    /// Its foreign keys, in column order.
    pub references: Vec<Reference>,
}

impl Table {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Every table, in foreign-key-safe insert order.
pub fn catalog() -> &'static [Table] {
    static TABLES: OnceLock<Vec<Table>> = OnceLock::new();
    TABLES.get_or_init(|| parse_spec(catalog::SPEC))
}

/// The table called `name`, or Invalid naming `field` and the unknown table.
pub fn table(name: &str, field: &str) -> StoreResult<&'static Table> {
    catalog()
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| StoreError::invalid(field, format!("no table is called {name:?}")))
}

/// Every foreign key that points at `table`, with the table that holds it, in
/// catalog order.
pub fn referencing(table: &str) -> impl Iterator<Item = (&'static Table, &'static Reference)> + '_ {
    catalog().iter().flat_map(move |t| {
        t.references
            .iter()
            .filter(move |r| r.target == table)
            .map(move |r| (t, r))
    })
}

/// `tables` and every table their rows may point at, and what those point at in
/// turn, in catalog order: what a backup needs so that a restore finds every
/// reference inside the archive.
pub fn with_references(tables: &[&Table]) -> Vec<&'static Table> {
    let mut wanted: Vec<&str> = tables.iter().map(|t| t.name).collect();
    let mut i = 0;
    while i < wanted.len() {
        if let Some(t) = catalog().iter().find(|t| t.name == wanted[i]) {
            for r in &t.references {
                if !wanted.contains(&r.target) {
                    wanted.push(r.target);
                }
            }
        }
        i += 1;
    }
    catalog()
        .iter()
        .filter(|t| wanted.contains(&t.name))
        .collect()
}

/// The largest part of `tables` that no table outside it points at: what
/// PostgreSQL lets a single `TRUNCATE` empty (it refuses one for a table that a
/// table left out of the statement references, whatever that table holds).
pub fn closed_under_references<'a>(tables: &[&'a Table]) -> Vec<&'a Table> {
    let mut closed: Vec<&Table> = tables.to_vec();
    loop {
        let before = closed.len();
        let names: Vec<&str> = closed.iter().map(|t| t.name).collect();
        closed.retain(|t| referencing(t.name).all(|(from, _)| names.contains(&from.name)));
        if closed.len() == before {
            return closed;
        }
    }
}

/// A table or column name quoted for SQL (the same on both backends).
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The select expression for `column` in a [`RowLoader::select`] query: integers
/// and floats cast to the widths the backends decode, the rest as stored.
pub fn select_expr(column: &Column) -> String {
    let name = quote(&column.name);
    match column.ty {
        ColumnType::Int => format!("CAST({name} AS BIGINT)"),
        ColumnType::Float | ColumnType::Decimal => format!("CAST({name} AS DOUBLE PRECISION)"),
        _ => name,
    }
}

/// The tables named in `names` (all when `None`), in catalog order.
pub fn select(names: Option<&[String]>, field: &str) -> StoreResult<Vec<&'static Table>> {
    let Some(names) = names else {
        return Ok(catalog().iter().collect());
    };
    for n in names {
        table(n.trim(), field)?;
    }
    Ok(catalog()
        .iter()
        .filter(|t| names.iter().any(|n| n.trim() == t.name))
        .collect())
}

fn parse_spec(spec: &'static str) -> Vec<Table> {
    let mut tables: Vec<Table> = Vec::new();
    for line in spec.lines().filter(|l| !l.trim().is_empty()) {
        if !line.starts_with(' ') {
            let mut parts = line.split_whitespace();
            let name = parts.next().expect("a table name");
            let mut t = Table {
                name,
                key: Vec::new(),
                deferred: Vec::new(),
                derived: false,
                columns: Vec::new(),
                references: Vec::new(),
            };
            for p in parts {
                if let Some(k) = p.strip_prefix("key=") {
                    t.key = k.split(',').collect();
                } else if let Some(d) = p.strip_prefix("deferred=") {
                    t.deferred = d.split(',').filter(|c| *c != "-").collect();
                } else if p == "derived" {
                    t.derived = true;
                }
            }
            tables.push(t);
        } else {
            let t = tables.last_mut().expect("columns follow a table");
            for c in line.split_whitespace() {
                let (name, ty) = c.split_once(':').expect("column:type");
                let (ty, reference) = match ty.split_once('>') {
                    None => (ty, None),
                    Some((ty, r)) => (ty, Some(r)),
                };
                if let Some(r) = reference {
                    let (target, action) = r.split_once('/').expect("table/action");
                    let (target, target_column) = target.split_once('.').unwrap_or((target, "id"));
                    t.references.push(Reference {
                        column: name,
                        target,
                        target_column,
                        on_delete: match action {
                            "cascade" => OnDelete::Cascade,
                            "null" => OnDelete::SetNull,
                            other => panic!("unknown ON DELETE action {other}"),
                        },
                    });
                }
                t.columns.push(Column {
                    name: name.to_string(),
                    ty: ColumnType::parse(ty).expect("a known column type"),
                });
            }
        }
    }
    tables
}

/// The native column types a backend may use for a portable type, as SQLite's
/// declared type or PostgreSQL's `information_schema.columns.data_type`.
pub fn native_types(ty: ColumnType, sqlite: bool) -> &'static [&'static str] {
    use ColumnType::*;
    match (ty, sqlite) {
        (Uuid | Bytes, true) => &["BLOB"],
        (Text | Json | Timestamp, true) => &["TEXT"],
        (Int | Bool, true) => &["INTEGER"],
        (Float | Decimal, true) => &["REAL"],
        (Uuid, false) => &["uuid"],
        (Text, false) => &["text", "character varying", "character"],
        (Int, false) => &["integer", "bigint", "smallint"],
        (Float, false) => &["double precision", "real"],
        (Decimal, false) => &["numeric"],
        (Bool, false) => &["boolean"],
        (Json, false) => &["jsonb", "json"],
        (Timestamp, false) => &["timestamp with time zone"],
        (Bytes, false) => &["bytea"],
    }
}

/// A row in portable form: one JSON value per column.
pub type Row = Vec<Value>;

/// Portable encoding and decoding of single values, shared by both backends.
pub mod value {
    use super::*;

    /// An instant as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    pub fn timestamp(t: DateTime<Utc>) -> Value {
        Value::String(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
    }

    /// Bytes as standard base64.
    pub fn bytes(b: &[u8]) -> Value {
        Value::String(base64::engine::general_purpose::STANDARD.encode(b))
    }

    /// A float as a JSON number; NaN and infinities as their names.
    pub fn float(f: f64) -> Value {
        serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string()))
    }

    /// JSON with object keys sorted at every level, so that JSONB (which reorders
    /// keys) and SQLite text (which keeps them) encode the same.
    pub fn canonical_json(v: Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut entries: Vec<(String, Value)> = map.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k, canonical_json(v)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.into_iter().map(canonical_json).collect()),
            other => other,
        }
    }

    /// JSON text (as SQLite stores it) in canonical form.
    pub fn json_text(s: &str, column: &str) -> StoreResult<Value> {
        serde_json::from_str(s)
            .map(canonical_json)
            .map_err(|e| StoreError::internal(format!("column {column} holds invalid JSON: {e}")))
    }

    fn bad(column: &str, want: &str, v: &Value) -> StoreError {
        let mut shown = v.to_string();
        shown.truncate(80);
        StoreError::invalid(
            "archive",
            format!("column {column} expects {want}, found {shown}"),
        )
    }

    /// `None` for JSON `null`; otherwise what `read` makes of `v`, or an error saying
    /// the column expects `want`.
    fn decode<T>(
        v: &Value,
        column: &str,
        want: &str,
        read: impl FnOnce(&Value) -> Option<T>,
    ) -> StoreResult<Option<T>> {
        if v.is_null() {
            return Ok(None);
        }
        read(v).map(Some).ok_or_else(|| bad(column, want, v))
    }

    /// A UUID from its text form.
    pub fn to_uuid(v: &Value, column: &str) -> StoreResult<Option<Uuid>> {
        decode(v, column, "a UUID", |v| Uuid::parse_str(v.as_str()?).ok())
    }

    /// Text.
    pub fn to_text(v: &Value, column: &str) -> StoreResult<Option<String>> {
        decode(v, column, "text", |v| v.as_str().map(str::to_string))
    }

    /// An integer.
    pub fn to_int(v: &Value, column: &str) -> StoreResult<Option<i64>> {
        decode(v, column, "an integer", Value::as_i64)
    }

    /// A float (also for decimals); NaN and infinities from their names.
    pub fn to_float(v: &Value, column: &str) -> StoreResult<Option<f64>> {
        decode(v, column, "a number", |v| match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.parse::<f64>().ok().filter(|f| !f.is_finite()),
            _ => None,
        })
    }

    /// A boolean.
    pub fn to_bool(v: &Value, column: &str) -> StoreResult<Option<bool>> {
        decode(v, column, "a boolean", Value::as_bool)
    }

    /// A JSON document; `null` is SQL NULL.
    pub fn to_json(v: &Value) -> Option<Value> {
        (!v.is_null()).then(|| v.clone())
    }

    /// An instant from RFC 3339 text.
    pub fn to_timestamp(v: &Value, column: &str) -> StoreResult<Option<DateTime<Utc>>> {
        decode(v, column, "an RFC 3339 instant", |v| {
            DateTime::parse_from_rfc3339(v.as_str()?)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        })
    }

    /// Bytes from base64.
    pub fn to_bytes(v: &Value, column: &str) -> StoreResult<Option<Vec<u8>>> {
        decode(v, column, "base64 bytes", |v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str()?)
                .ok()
        })
    }

    /// Checks that `v` decodes as `ty`, so a restore refuses a bad value before it
    /// writes anything.
    pub fn check(ty: ColumnType, v: &Value, column: &str) -> StoreResult<()> {
        match ty {
            ColumnType::Uuid => to_uuid(v, column).map(drop),
            ColumnType::Text => to_text(v, column).map(drop),
            ColumnType::Int => to_int(v, column).map(drop),
            ColumnType::Float | ColumnType::Decimal => to_float(v, column).map(drop),
            ColumnType::Bool => to_bool(v, column).map(drop),
            ColumnType::Json => Ok(()),
            ColumnType::Timestamp => to_timestamp(v, column).map(drop),
            ColumnType::Bytes => to_bytes(v, column).map(drop),
        }
    }
}

/// Receives each row a [`SnapshotReader`] reads.
pub type RowSink<'a> = dyn FnMut(Row) -> StoreResult<()> + Send + 'a;

/// One consistent read-only snapshot of the whole database.
#[async_trait]
pub trait SnapshotReader: Send {
    /// The highest applied migration, as seen by the snapshot.
    async fn schema_version(&mut self) -> StoreResult<i64>;

    /// Streams every row of `table` in primary-key order (text keys in byte order)
    /// into `sink`, encoded portably in `table.columns` order; returns the count.
    async fn read_table(&mut self, table: &Table, sink: &mut RowSink<'_>) -> StoreResult<u64>;

    /// Ends the snapshot.
    async fn finish(self: Box<Self>) -> StoreResult<()>;
}

/// One write transaction that loads portable rows.
#[async_trait]
pub trait RowLoader: Send {
    /// How many rows `table` holds.
    async fn count(&mut self, table: &Table) -> StoreResult<u64>;

    /// The `id` (a UUID) of a row whose `column` equals `value`, if there is one.
    async fn find_id(
        &mut self,
        table: &Table,
        column: &Column,
        value: &Value,
    ) -> StoreResult<Option<Uuid>>;

    /// Deletes every row of `tables` (given in insert order; emptied in reverse),
    /// append-only tables included.
    async fn clear(&mut self, tables: &[&Table]) -> StoreResult<()>;

    /// Inserts `rows`, each holding a value for every column of `columns`.
    async fn insert(&mut self, table: &Table, columns: &[Column], rows: &[Row]) -> StoreResult<()>;

    /// Sets the `set` columns of the row whose primary key is in `row` (laid out as
    /// `columns`), without triggers touching anything else.
    async fn update(
        &mut self,
        table: &Table,
        columns: &[Column],
        set: &[&str],
        row: &Row,
    ) -> StoreResult<()>;

    /// Keeps other transactions from changing `tables` until this one ends (they
    /// may still read them), so that what a restore checked stays true while it
    /// writes. The default does nothing, for a backend whose write transaction
    /// already excludes every other writer (SQLite).
    async fn lock(&mut self, tables: &[&Table]) -> StoreResult<()> {
        let _ = tables;
        Ok(())
    }

    /// Runs `sql`, one query written for both backends (parameters `$1`, `$2`, …,
    /// names quoted with [`quote`], values selected with [`select_expr`]), with
    /// `params` bound by their portable types, and returns its rows decoded as
    /// `columns` says. What a restore asks the database before it writes, in the
    /// same transaction it then writes in.
    async fn select(
        &mut self,
        sql: &str,
        params: &[(ColumnType, Value)],
        columns: &[ColumnType],
    ) -> StoreResult<Vec<Row>>;

    /// Brings sequences up to the loaded rows and commits.
    async fn commit(self: Box<Self>) -> StoreResult<()>;
}

/// What a backend offers for portable backups.
#[async_trait]
pub trait ArchiveBackend: Send + Sync {
    /// Opens a consistent read-only snapshot (PostgreSQL: REPEATABLE READ READ ONLY;
    /// SQLite: one read transaction).
    async fn snapshot(&self) -> StoreResult<Box<dyn SnapshotReader>>;

    /// Opens the one transaction a restore loads in.
    async fn loader(&self) -> StoreResult<Box<dyn RowLoader>>;

    /// Every base table's columns as `(table, column, native type)`, for comparing
    /// the catalog with the real schema (generated and internal ones left out).
    async fn native_columns(&self) -> StoreResult<Vec<(String, String, String)>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_parses_in_insert_order() {
        let names: Vec<&str> = catalog().iter().map(|t| t.name).collect();
        assert_eq!(names.first(), Some(&"users"));
        assert_eq!(names.last(), Some(&"workflow_stats"));
        assert_eq!(names.len(), 36);
        for t in catalog() {
            assert!(!t.columns.is_empty(), "{} has columns", t.name);
            for k in t.key.iter().chain(&t.deferred) {
                assert!(t.column(k).is_some(), "{}.{k} is a column", t.name);
            }
        }
    }

    #[test]
    fn references_point_at_columns_loaded_before() {
        let names: Vec<&str> = catalog().iter().map(|t| t.name).collect();
        for (i, t) in catalog().iter().enumerate() {
            for r in &t.references {
                assert!(
                    t.column(r.column).is_some(),
                    "{}.{} is a column",
                    t.name,
                    r.column
                );
                let target = table(r.target, "test").unwrap();
                assert!(target.column(r.target_column).is_some());
                let at = names.iter().position(|n| *n == r.target).unwrap();
                assert!(
                    at < i || t.deferred.contains(&r.column),
                    "{}.{} points at a table loaded later and is not deferred",
                    t.name,
                    r.column
                );
            }
        }
        let wf = table("workflows", "test").unwrap();
        let owner = &wf.references[0];
        assert_eq!(
            (owner.column, owner.target, owner.target_column),
            ("owner_id", "users", "id")
        );
        assert_eq!(owner.on_delete, OnDelete::SetNull);
        let metrics = table("workflow_metrics", "test").unwrap();
        assert_eq!(metrics.references[0].target_column, "execution_id");
    }

    #[test]
    fn references_close_over_what_rows_point_at() {
        let chosen = select(Some(&["workflows".into(), "workflow_versions".into()]), "t").unwrap();
        let names: Vec<&str> = with_references(&chosen).iter().map(|t| t.name).collect();
        assert_eq!(
            names,
            [
                "users",
                "teams",
                "projects",
                "workflows",
                "workflow_versions"
            ]
        );
        let closed: Vec<&str> = closed_under_references(&chosen)
            .iter()
            .map(|t| t.name)
            .collect();
        assert!(
            closed.is_empty(),
            "runs and tasks point at both: {closed:?}"
        );
        let all: Vec<&Table> = catalog().iter().collect();
        assert_eq!(closed_under_references(&all).len(), all.len());
        let hooks = select(Some(&["webhooks".into(), "webhook_deliveries".into()]), "t").unwrap();
        assert_eq!(closed_under_references(&hooks).len(), 2);
    }

    #[test]
    fn select_names_the_unknown_table() {
        let err = select(Some(&["users".into(), "nope".into()]), "--tables").unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        assert_eq!(
            select(Some(&["tasks".into()]), "--tables").unwrap().len(),
            1
        );
    }

    #[test]
    fn json_is_canonical() {
        let a = value::json_text(r#"{"b":1,"a":{"d":2,"c":[{"y":1,"x":2}]}}"#, "c").unwrap();
        assert_eq!(a.to_string(), r#"{"a":{"c":[{"x":2,"y":1}],"d":2},"b":1}"#);
    }
}

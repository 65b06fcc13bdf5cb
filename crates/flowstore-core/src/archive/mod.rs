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
            .map_err(|e| StoreError::Internal(format!("column {column} holds invalid JSON: {e}")))
    }

    fn bad(column: &str, want: &str, v: &Value) -> StoreError {
        let mut shown = v.to_string();
        shown.truncate(80);
        StoreError::invalid(
            "archive",
            format!("column {column} expects {want}, found {shown}"),
        )
    }

    /// A UUID from its text form.
    pub fn to_uuid(v: &Value, column: &str) -> StoreResult<Option<Uuid>> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) => Uuid::parse_str(s)
                .map(Some)
                .map_err(|_| bad(column, "a UUID", v)),
            _ => Err(bad(column, "a UUID", v)),
        }
    }

    /// Text.
    pub fn to_text(v: &Value, column: &str) -> StoreResult<Option<String>> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            _ => Err(bad(column, "text", v)),
        }
    }

    /// An integer.
    pub fn to_int(v: &Value, column: &str) -> StoreResult<Option<i64>> {
        match v {
            Value::Null => Ok(None),
            Value::Number(n) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| bad(column, "an integer", v)),
            _ => Err(bad(column, "an integer", v)),
        }
    }

    /// A float (also for decimals).
    pub fn to_float(v: &Value, column: &str) -> StoreResult<Option<f64>> {
        match v {
            Value::Null => Ok(None),
            Value::Number(n) => n
                .as_f64()
                .map(Some)
                .ok_or_else(|| bad(column, "a number", v)),
            Value::String(s) => s
                .parse::<f64>()
                .ok()
                .filter(|f| !f.is_finite())
                .map(Some)
                .ok_or_else(|| bad(column, "a number", v)),
            _ => Err(bad(column, "a number", v)),
        }
    }

    /// A boolean.
    pub fn to_bool(v: &Value, column: &str) -> StoreResult<Option<bool>> {
        match v {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(*b)),
            _ => Err(bad(column, "a boolean", v)),
        }
    }

    /// A JSON document; `null` is SQL NULL.
    pub fn to_json(v: &Value) -> Option<Value> {
        (!v.is_null()).then(|| v.clone())
    }

    /// An instant from RFC 3339 text.
    pub fn to_timestamp(v: &Value, column: &str) -> StoreResult<Option<DateTime<Utc>>> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) => DateTime::parse_from_rfc3339(s)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|_| bad(column, "an RFC 3339 instant", v)),
            _ => Err(bad(column, "an RFC 3339 instant", v)),
        }
    }

    /// Bytes from base64.
    pub fn to_bytes(v: &Value, column: &str) -> StoreResult<Option<Vec<u8>>> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map(Some)
                .map_err(|_| bad(column, "base64 bytes", v)),
            _ => Err(bad(column, "base64 bytes", v)),
        }
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
        assert_eq!(names.len(), 30);
        for t in catalog() {
            assert!(!t.columns.is_empty(), "{} has columns", t.name);
            for k in t.key.iter().chain(&t.deferred) {
                assert!(t.column(k).is_some(), "{}.{k} is a column", t.name);
            }
        }
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

//! Maps SQLite's errors to the storage error, naming the field at fault.

use flowstore_core::StoreError;

/// Converts a driver error into a [`StoreError`]. Constraint violations become
/// conflicts or invalid input naming the column; lock and I/O trouble becomes
/// "unavailable"; the rest is internal.
pub fn map_err(e: sqlx::Error) -> StoreError {
    classify(&e).caused_by(e)
}

/// The storage error a driver error means; [`map_err`] keeps the driver error as the
/// cause of an internal or unavailable one.
fn classify(e: &sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::RowNotFound => StoreError::internal("expected a row, found none"),
        sqlx::Error::PoolTimedOut => {
            StoreError::unavailable("no database connection became free in time")
        }
        sqlx::Error::PoolClosed => StoreError::unavailable("the connection pool is closed"),
        sqlx::Error::Io(_) => StoreError::unavailable("I/O error"),
        sqlx::Error::Database(db) => {
            let msg = db.message();
            let code = db
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .unwrap_or_default();
            if let Some(fault) = fault(code, msg) {
                return fault;
            }
            if let Some(cols) = msg.strip_prefix("UNIQUE constraint failed: ") {
                return StoreError::conflict(columns(cols), "is already taken");
            }
            if let Some(cols) = msg.strip_prefix("NOT NULL constraint failed: ") {
                return StoreError::invalid(columns(cols), "is required");
            }
            if let Some(check) = msg.strip_prefix("CHECK constraint failed: ") {
                return StoreError::invalid(check_field(check), "is outside the allowed values");
            }
            if msg.starts_with("FOREIGN KEY constraint failed") {
                return StoreError::invalid("reference", "refers to a row that does not exist");
            }
            if msg.contains("are immutable") {
                return StoreError::conflict("row", "this record is immutable");
            }
            if msg.contains("database is locked") || msg.contains("database is busy") {
                return StoreError::TimedOut(
                    "the database stayed locked by another process longer than the busy timeout"
                        .into(),
                );
            }
            StoreError::internal("sqlite")
        }
        _ => StoreError::internal("unexpected sqlite error"),
    }
}

/// SQLite's result codes for the faults of the file and its disk, by their primary
/// code (the low byte of the extended one).
const SQLITE_BUSY: i32 = 5;
const SQLITE_READONLY: i32 = 8;
const SQLITE_IOERR: i32 = 10;
const SQLITE_FULL: i32 = 13;
const SQLITE_CANTOPEN: i32 = 14;
/// `SQLITE_READONLY_DIRECTORY`: the directory holding the database is read-only.
const SQLITE_READONLY_DIRECTORY: i32 = SQLITE_READONLY | (6 << 8);

/// The storage fault an extended result code means, if any: a full disk, a
/// read-only file or directory, an I/O error, a file that cannot be opened.
fn fault(code: i32, msg: &str) -> Option<StoreError> {
    Some(match code & 0xff {
        SQLITE_FULL => StoreError::StorageFull(format!("sqlite: {msg}")),
        SQLITE_READONLY if code == SQLITE_READONLY_DIRECTORY => StoreError::ReadOnly(format!(
            "read-only directory: the directory holding the database cannot be written (sqlite: {msg})"
        )),
        SQLITE_READONLY => StoreError::ReadOnly(format!(
            "read-only file: the database file or its disk cannot be written (sqlite: {msg})"
        )),
        SQLITE_IOERR => StoreError::unavailable(format!("I/O error on the database file: {msg}")),
        SQLITE_CANTOPEN => StoreError::unavailable(format!("cannot open the database file: {msg}")),
        SQLITE_BUSY => StoreError::TimedOut(
            "the database stayed locked by another process longer than the busy timeout".into(),
        ),
        _ => return None,
    })
}

/// `projects.name, projects.owner_id` becomes `name, owner_id`.
fn columns(list: &str) -> String {
    list.split(',')
        .map(|c| c.trim().rsplit('.').next().unwrap_or("").to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first identifier of a CHECK expression, which is the column it checks in
/// every CHECK of this backend's schema.
fn check_field(expr: &str) -> String {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .find(|w| !w.is_empty() && !w.chars().all(|c| c.is_ascii_digit()) && !is_sql_word(w))
        .unwrap_or("value")
        .to_string()
}

fn is_sql_word(w: &str) -> bool {
    matches!(
        w.to_ascii_lowercase().as_str(),
        "length" | "json_valid" | "json_type" | "lower" | "not" | "and" | "or" | "is" | "null"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_columns() {
        assert_eq!(
            columns("workflow_shares.workflow_id, workflow_shares.user_id"),
            "workflow_id, user_id"
        );
        assert_eq!(check_field("length(title) BETWEEN 1 AND 500"), "title");
        assert_eq!(check_field("status IN ('a')"), "status");
    }
}

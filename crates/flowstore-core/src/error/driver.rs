//! A driver error as a storage error: `impl From<sqlx::Error> for StoreError`, so that
//! `?` converts what sqlx returns wherever a storage operation runs SQL.
//!
//! This crate does not know which database answered, and need not: it reads a
//! database's error through sqlx's driver-independent [`DatabaseError`] (`kind`,
//! `code`, `constraint`, `table`, `message`). The two databases' codes do not
//! overlap: PostgreSQL's SQLSTATE is always five characters, SQLite's extended result
//! code a decimal number of at most four digits. So one table, [`CODES`], holds the
//! errors of both that their code alone tells (a full disk, a read-only database,
//! a timeout, an unreachable server, an immutable row, a value of the wrong form).
//!
//! A constraint violation names its field. PostgreSQL names the constraint, and
//! [`super::constraints`] gives the field(s) of each one the migrations declare.
//! SQLite names no constraint for a UNIQUE or NOT NULL violation, and its CHECKs are
//! unnamed: its message (`UNIQUE constraint failed: t.a, t.b`, `CHECK constraint
//! failed: <expression>`) is all it gives, and the columns are read from it.

use sqlx::error::{DatabaseError, ErrorKind};

use super::{constraints, StoreError};

/// Classifies the driver error and keeps it as the cause (for the logs) of an
/// [`StoreError::Internal`] or [`StoreError::Unavailable`]. Constraint violations
/// become conflicts or invalid input naming the field; faults of the database or its
/// host become unavailable, storage-full, read-only or timed-out; the rest is
/// internal.
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        classify(&e).caused_by(e)
    }
}

/// The storage error a driver error means.
fn classify(e: &sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::RowNotFound => StoreError::internal("expected a row, found none"),
        sqlx::Error::PoolTimedOut => {
            StoreError::unavailable("no database connection became free in time")
        }
        sqlx::Error::PoolClosed => StoreError::unavailable("the connection pool is closed"),
        sqlx::Error::Io(_) => StoreError::unavailable("I/O error"),
        sqlx::Error::Tls(_) => StoreError::unavailable("TLS error"),
        sqlx::Error::Database(db) => database(db.as_ref()),
        _ => StoreError::internal("unexpected database error"),
    }
}

/// The storage error an error the database answered means.
fn database(db: &dyn DatabaseError) -> StoreError {
    let code = db.code();
    let code = code.as_deref().unwrap_or_default();
    let message = db.message();
    if let Some((_, means)) = CODES.iter().find(|(c, _)| c.matches(code)) {
        return known(*means, code, message);
    }
    let postgres = is_sqlstate(code);
    let kind = match db.kind() {
        // A SQLite trigger that refuses a row with the message SQLite gives for the
        // constraint (migration 0014's NOT NULL keys) answers with a trigger's code.
        ErrorKind::Other if !postgres => kind_in_message(message),
        kind => kind,
    };
    match kind {
        ErrorKind::UniqueViolation => StoreError::conflict(
            if postgres {
                constraint_field(db, "value")
            } else {
                sqlite_columns(message, UNIQUE_FAILED)
            },
            "is already taken",
        ),
        ErrorKind::NotNullViolation => StoreError::invalid(
            if postgres {
                not_null_column(message)
            } else {
                sqlite_columns(message, NOT_NULL_FAILED)
            },
            "is required",
        ),
        ErrorKind::CheckViolation => StoreError::invalid(
            if postgres {
                constraint_field(db, "value")
            } else {
                sqlite_check_field(message)
            },
            "is outside the allowed values",
        ),
        ErrorKind::ForeignKeyViolation => StoreError::invalid(
            if postgres {
                constraint_field(db, "reference")
            } else {
                // SQLite names neither the constraint nor the column.
                "reference".to_string()
            },
            "refers to a row that does not exist",
        ),
        _ if postgres => StoreError::internal(format!("postgres {code}")),
        _ => sqlite_other(message),
    }
}

/// Whether `code` is a PostgreSQL SQLSTATE (five characters) rather than a SQLite
/// result code (a decimal number of at most four digits).
fn is_sqlstate(code: &str) -> bool {
    code.len() == 5
}

/// A code of [`CODES`].
#[derive(Clone, Copy, Debug)]
enum Code {
    /// One PostgreSQL SQLSTATE.
    Sqlstate(&'static str),
    /// Every SQLSTATE of a class (their first two characters).
    SqlstateClass(&'static str),
    /// A SQLite primary result code, and every extended code built on it (whose low
    /// byte it is).
    Sqlite(i32),
    /// One SQLite extended result code.
    SqliteExtended(i32),
}

impl Code {
    fn matches(self, code: &str) -> bool {
        let sqlite = || {
            if is_sqlstate(code) {
                None
            } else {
                code.parse::<i32>().ok()
            }
        };
        match self {
            Code::Sqlstate(s) => code == s,
            Code::SqlstateClass(class) => is_sqlstate(code) && code.starts_with(class),
            Code::Sqlite(primary) => sqlite().is_some_and(|c| c & 0xff == primary),
            Code::SqliteExtended(extended) => sqlite() == Some(extended),
        }
    }
}

/// What an error of a code of [`CODES`] is. In the texts, `{code}` stands for the
/// database's code and `{message}` for its message.
#[derive(Clone, Copy, Debug)]
enum Means {
    StorageFull(&'static str),
    ReadOnly(&'static str),
    TimedOut(&'static str),
    Unavailable(&'static str),
    Conflict(&'static str, &'static str),
    Invalid(&'static str, &'static str),
}

/// What an error of a code of [`CODES`] becomes.
fn known(means: Means, code: &str, message: &str) -> StoreError {
    let text = |t: &str| t.replace("{code}", code).replace("{message}", message);
    match means {
        Means::StorageFull(t) => StoreError::StorageFull(text(t)),
        Means::ReadOnly(t) => StoreError::ReadOnly(text(t)),
        Means::TimedOut(t) => StoreError::TimedOut(text(t)),
        Means::Unavailable(t) => StoreError::unavailable(text(t)),
        Means::Conflict(field, t) => StoreError::conflict(field, text(t)),
        Means::Invalid(field, t) => StoreError::invalid(field, text(t)),
    }
}

/// SQLite's primary result codes for the faults of the file and its disk.
const SQLITE_BUSY: i32 = 5;
const SQLITE_READONLY: i32 = 8;
const SQLITE_IOERR: i32 = 10;
const SQLITE_FULL: i32 = 13;
const SQLITE_CANTOPEN: i32 = 14;
/// `SQLITE_READONLY_DIRECTORY`: the directory holding the database is read-only.
const SQLITE_READONLY_DIRECTORY: i32 = SQLITE_READONLY | (6 << 8);

const BUSY_TIMEOUT: &str =
    "the database stayed locked by another process longer than the busy timeout";
const RETRY: &str = "a concurrent change conflicted; retry";

/// The errors of either database that their code alone tells. The first match wins,
/// so a code comes before its class and an extended code before its primary one.
const CODES: &[(Code, Means)] = {
    use Code::*;
    use Means::*;
    &[
        // PostgreSQL. `flowstore_refuse_change()` refuses a change to the rows of an
        // append-only or immutable table with `restrict_violation`.
        (
            Sqlstate("23001"),
            Conflict("row", "this record is immutable"),
        ),
        // A value of the wrong form or out of range: invalid text representation,
        // invalid parameter value, invalid datetime format, datetime field overflow,
        // numeric value out of range.
        (Sqlstate("22P02"), Invalid("value", "{message}")),
        (Sqlstate("22023"), Invalid("value", "{message}")),
        (Sqlstate("22007"), Invalid("value", "{message}")),
        (Sqlstate("22008"), Invalid("value", "{message}")),
        (Sqlstate("22003"), Invalid("value", "{message}")),
        (
            Sqlstate("57014"),
            TimedOut("the statement ran past statement_timeout ({message})"),
        ),
        (
            Sqlstate("55P03"),
            TimedOut("a lock was not granted in time ({message})"),
        ),
        (Sqlstate("53100"), StorageFull("postgres: {message}")),
        // A hot standby and a database set read-only answer alike.
        (
            Sqlstate("25006"),
            ReadOnly("read-only transaction: {message}"),
        ),
        // Serialization failure, deadlock.
        (Sqlstate("40001"), Conflict("row", RETRY)),
        (Sqlstate("40P01"), Conflict("row", RETRY)),
        // Connection exception, insufficient resources, operator intervention.
        (SqlstateClass("08"), Unavailable("database error {code}")),
        (SqlstateClass("53"), Unavailable("database error {code}")),
        (SqlstateClass("57"), Unavailable("database error {code}")),
        // SQLite.
        (Sqlite(SQLITE_FULL), StorageFull("sqlite: {message}")),
        (
            SqliteExtended(SQLITE_READONLY_DIRECTORY),
            ReadOnly(
                "read-only directory: the directory holding the database cannot be \
                 written (sqlite: {message})",
            ),
        ),
        (
            Sqlite(SQLITE_READONLY),
            ReadOnly(
                "read-only file: the database file or its disk cannot be written \
                 (sqlite: {message})",
            ),
        ),
        (
            Sqlite(SQLITE_IOERR),
            Unavailable("I/O error on the database file: {message}"),
        ),
        (
            Sqlite(SQLITE_CANTOPEN),
            Unavailable("cannot open the database file: {message}"),
        ),
        (Sqlite(SQLITE_BUSY), TimedOut(BUSY_TIMEOUT)),
    ]
};

/// The field(s) of the constraint a PostgreSQL error names: from the table of the
/// schema's constraints, else guessed from the name PostgreSQL gives an unnamed
/// constraint (`<table>_<column>_check`); `none` when the error names no constraint.
fn constraint_field(db: &dyn DatabaseError, none: &str) -> String {
    let constraint = db.constraint().unwrap_or_default();
    if constraint.is_empty() {
        return none.to_string();
    }
    if let Some(field) = constraints::field(constraint) {
        return field.to_string();
    }
    let c = constraint
        .strip_prefix(db.table().unwrap_or_default())
        .map(|c| c.trim_start_matches('_'))
        .unwrap_or(constraint);
    let c = c
        .strip_suffix("_check")
        .or_else(|| c.strip_suffix("_key"))
        .or_else(|| c.strip_suffix("_fkey"))
        .unwrap_or(c);
    if c.is_empty() {
        none.to_string()
    } else {
        c.to_string()
    }
}

/// The column a PostgreSQL NOT NULL violation names: `null value in column "id" of
/// relation "logs" violates not-null constraint`. A not-null constraint has no name
/// to look up, and sqlx's driver-independent error does not carry the column.
fn not_null_column(message: &str) -> String {
    message
        .strip_prefix("null value in column \"")
        .and_then(|rest| rest.split_once('"'))
        .map(|(column, _)| column)
        .filter(|c| !c.is_empty())
        .unwrap_or("value")
        .to_string()
}

const UNIQUE_FAILED: &str = "UNIQUE constraint failed: ";
const NOT_NULL_FAILED: &str = "NOT NULL constraint failed: ";
const CHECK_FAILED: &str = "CHECK constraint failed: ";
const FOREIGN_KEY_FAILED: &str = "FOREIGN KEY constraint failed";

/// The constraint a SQLite message names, for an error whose code does not tell it.
fn kind_in_message(message: &str) -> ErrorKind {
    if message.starts_with(UNIQUE_FAILED) {
        ErrorKind::UniqueViolation
    } else if message.starts_with(NOT_NULL_FAILED) {
        ErrorKind::NotNullViolation
    } else if message.starts_with(CHECK_FAILED) {
        ErrorKind::CheckViolation
    } else if message.starts_with(FOREIGN_KEY_FAILED) {
        ErrorKind::ForeignKeyViolation
    } else {
        ErrorKind::Other
    }
}

/// The columns a SQLite message lists after `prefix`: `UNIQUE constraint failed:
/// projects.name, projects.owner_id` gives `name, owner_id`.
fn sqlite_columns(message: &str, prefix: &str) -> String {
    match message.strip_prefix(prefix) {
        Some(list) => list
            .split(',')
            .map(|c| c.trim().rsplit('.').next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join(", "),
        None => "value".to_string(),
    }
}

/// The field of a SQLite CHECK violation: a named constraint's from the table of the
/// schema's constraints; for an unnamed one, whose expression the message gives, the
/// first identifier of the expression (the column it checks in every CHECK of the
/// schema).
fn sqlite_check_field(message: &str) -> String {
    let check = message.strip_prefix(CHECK_FAILED).unwrap_or(message);
    if let Some(field) = constraints::field(check) {
        return field.to_string();
    }
    check
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
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

/// A SQLite error that is no constraint violation and whose code [`CODES`] does not
/// list: the append-only triggers' refusal (`rows of audit_log are immutable`, with a
/// trigger's code), a lock reported without the busy code, or internal.
fn sqlite_other(message: &str) -> StoreError {
    if message.contains("are immutable") {
        return StoreError::conflict("row", "this record is immutable");
    }
    if message.contains("database is locked") || message.contains("database is busy") {
        return StoreError::TimedOut(BUSY_TIMEOUT.into());
    }
    StoreError::internal("sqlite")
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::fmt;

    use super::*;

    /// A database error as sqlx's drivers give one.
    #[derive(Debug, Default)]
    struct Db {
        code: &'static str,
        message: &'static str,
        constraint: Option<&'static str>,
        table: Option<&'static str>,
        kind: Option<ErrorKind>,
    }

    impl fmt::Display for Db {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.message)
        }
    }

    impl std::error::Error for Db {}

    impl DatabaseError for Db {
        fn message(&self) -> &str {
            self.message
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(self.code.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn constraint(&self) -> Option<&str> {
            self.constraint
        }
        fn table(&self) -> Option<&str> {
            self.table
        }
        fn kind(&self) -> ErrorKind {
            match self.kind {
                Some(ErrorKind::UniqueViolation) => ErrorKind::UniqueViolation,
                Some(ErrorKind::NotNullViolation) => ErrorKind::NotNullViolation,
                Some(ErrorKind::CheckViolation) => ErrorKind::CheckViolation,
                Some(ErrorKind::ForeignKeyViolation) => ErrorKind::ForeignKeyViolation,
                _ => ErrorKind::Other,
            }
        }
    }

    fn from(db: Db) -> StoreError {
        StoreError::from(sqlx::Error::Database(Box::new(db)))
    }

    /// The error of a driver that reports only a code and a message.
    fn coded(code: &'static str, message: &'static str) -> StoreError {
        from(Db {
            code,
            message,
            ..Db::default()
        })
    }

    /// A violation of a named constraint of `table`, as PostgreSQL reports them.
    fn named(
        code: &'static str,
        kind: ErrorKind,
        table: &'static str,
        constraint: &'static str,
    ) -> StoreError {
        from(Db {
            code,
            kind: Some(kind),
            table: Some(table),
            constraint: Some(constraint),
            ..Db::default()
        })
    }

    /// A constraint violation reported with its kind but no constraint's name, as
    /// SQLite reports them.
    fn violated(code: &'static str, message: &'static str, kind: ErrorKind) -> StoreError {
        from(Db {
            code,
            message,
            kind: Some(kind),
            ..Db::default()
        })
    }

    #[test]
    fn postgres_constraints_name_their_fields() {
        let e = from(Db {
            code: "23505",
            message: "duplicate key value violates unique constraint \"team_members_pkey\"",
            constraint: Some("team_members_pkey"),
            table: Some("team_members"),
            kind: Some(ErrorKind::UniqueViolation),
        });
        assert_eq!(
            e.to_string(),
            "conflict on team_id, user_id: is already taken"
        );
        let e = named(
            "23514",
            ErrorKind::CheckViolation,
            "workflows",
            "workflows_status_check",
        );
        assert_eq!(
            e.to_string(),
            "invalid status: is outside the allowed values"
        );
        let e = named(
            "23503",
            ErrorKind::ForeignKeyViolation,
            "tasks",
            "tasks_project_id_fkey",
        );
        assert_eq!(
            e.to_string(),
            "invalid project_id: refers to a row that does not exist"
        );
        let e = from(Db {
            code: "23502",
            message:
                "null value in column \"id\" of relation \"logs\" violates not-null constraint",
            table: Some("logs"),
            kind: Some(ErrorKind::NotNullViolation),
            ..Db::default()
        });
        assert_eq!(e.to_string(), "invalid id: is required");
        // A constraint the migrations do not declare: named from its name.
        let e = named(
            "23514",
            ErrorKind::CheckViolation,
            "extra",
            "extra_colour_check",
        );
        assert_eq!(e.field(), Some("colour"));
    }

    #[test]
    fn sqlite_messages_name_their_columns() {
        let e = violated(
            "2067",
            "UNIQUE constraint failed: workflow_shares.workflow_id, workflow_shares.user_id",
            ErrorKind::UniqueViolation,
        );
        assert_eq!(e.field(), Some("workflow_id, user_id"));
        // Migration 0014's triggers refuse a NULL key with NOT NULL's message.
        let e = coded("1811", "NOT NULL constraint failed: logs.id");
        assert_eq!(e.to_string(), "invalid id: is required");
        let e = violated(
            "275",
            "CHECK constraint failed: length(title) BETWEEN 1 AND 500",
            ErrorKind::CheckViolation,
        );
        assert_eq!(e.field(), Some("title"));
        let e = violated(
            "275",
            "CHECK constraint failed: status IN ('a')",
            ErrorKind::CheckViolation,
        );
        assert_eq!(e.field(), Some("status"));
        let e = coded("1811", "rows of audit_log are immutable");
        assert_eq!(e.to_string(), "conflict on row: this record is immutable");
    }

    #[test]
    fn codes_of_both_databases_tell_faults() {
        let e = coded("13", "database or disk is full");
        assert_eq!(
            e.to_string(),
            "storage full: sqlite: database or disk is full"
        );
        let e = coded("1544", "attempt to write a readonly database");
        assert_eq!(
            e.to_string(),
            "database read-only: read-only directory: the directory holding the database \
             cannot be written (sqlite: attempt to write a readonly database)"
        );
        let e = coded("8", "attempt to write a readonly database");
        assert_eq!(
            e.to_string(),
            "database read-only: read-only file: the database file or its disk cannot be \
             written (sqlite: attempt to write a readonly database)"
        );
        // SQLITE_BUSY_SNAPSHOT is a busy database.
        let e = coded("517", "database is locked");
        assert!(matches!(e, StoreError::TimedOut(_)), "{e:?}");
        // An extended I/O code is an I/O error.
        let e = coded("3338", "disk I/O error");
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
        let e = coded(
            "57P01",
            "terminating connection due to administrator command",
        );
        let StoreError::Unavailable(cause) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(cause.message(), "database error 57P01");
        assert!(cause.source().is_some(), "the driver error is kept");
        let e = coded("57014", "canceling statement due to statement timeout");
        assert_eq!(
            e.to_string(),
            "database timeout: the statement ran past statement_timeout \
             (canceling statement due to statement timeout)"
        );
        // A SQLSTATE is never read as a SQLite code, nor the reverse.
        assert!(!Code::Sqlite(SQLITE_FULL).matches("00013"));
        assert!(!Code::SqlstateClass("13").matches("13"));
    }

    #[test]
    fn anything_else_is_internal_with_its_cause() {
        let e = coded("42P01", "relation \"nope\" does not exist");
        let StoreError::Internal(cause) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(cause.message(), "postgres 42P01");
        assert_eq!(
            cause.source().map(|s| s.to_string()).as_deref(),
            Some("error returned from database: relation \"nope\" does not exist")
        );
        let e = coded("1", "no such table: nope");
        assert!(matches!(e, StoreError::Internal(ref c) if c.message() == "sqlite"));
        let e = StoreError::from(sqlx::Error::PoolTimedOut);
        assert!(matches!(e, StoreError::Unavailable(_)));
    }
}

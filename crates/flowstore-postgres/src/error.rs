//! Maps PostgreSQL's errors to the storage error, naming the field at fault.

use flowstore_core::StoreError;

/// Converts a driver error into a [`StoreError`], by SQLSTATE: unique violations
/// become conflicts naming the key's columns, other constraint violations invalid
/// input naming the column, connection trouble and timeouts "unavailable".
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
        sqlx::Error::Tls(_) => StoreError::unavailable("TLS error"),
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            let pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>();
            let detail = pg.and_then(|p| p.detail()).unwrap_or_default();
            let column = pg.and_then(|p| p.column()).map(str::to_string);
            let constraint = db.constraint().unwrap_or_default().to_string();
            let table = db.table().unwrap_or_default().to_string();
            match code.as_ref() {
                "23505" => StoreError::conflict(
                    key_columns(detail).unwrap_or_else(|| constraint_field(&constraint, &table)),
                    "is already taken",
                ),
                "23502" => {
                    StoreError::invalid(column.unwrap_or_else(|| "value".into()), "is required")
                }
                "23514" => StoreError::invalid(
                    constraint_field(&constraint, &table),
                    "is outside the allowed values",
                ),
                "23503" => StoreError::invalid(
                    key_columns(detail).unwrap_or_else(|| "reference".into()),
                    "refers to a row that does not exist",
                ),
                "23001" => StoreError::conflict("row", "this record is immutable"),
                "22P02" | "22023" | "22007" | "22008" | "22003" => {
                    StoreError::invalid("value", db.message())
                }
                "57014" => StoreError::TimedOut(format!(
                    "the statement ran past statement_timeout ({})",
                    db.message()
                )),
                "55P03" => StoreError::TimedOut(format!(
                    "a lock was not granted in time ({})",
                    db.message()
                )),
                "53100" => StoreError::StorageFull(format!("postgres: {}", db.message())),
                // A hot standby and a database set read-only answer alike.
                "25006" => StoreError::ReadOnly(format!("read-only transaction: {}", db.message())),
                "40001" | "40P01" => {
                    StoreError::conflict("row", "a concurrent change conflicted; retry")
                }
                c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57") => {
                    StoreError::unavailable(format!("database error {c}"))
                }
                _ => StoreError::internal(format!("postgres {code}")),
            }
        }
        _ => StoreError::internal("unexpected postgres error"),
    }
}

/// `Key (workflow_id, user_id)=(…) already exists.` gives `workflow_id, user_id`.
fn key_columns(detail: &str) -> Option<String> {
    let rest = detail.strip_prefix("Key (")?;
    let end = rest.find(")=")?;
    Some(rest[..end].to_string())
}

/// `workflows_status_check` on table `workflows` gives `status`.
fn constraint_field(constraint: &str, table: &str) -> String {
    let c = constraint
        .strip_prefix(table)
        .map(|c| c.trim_start_matches('_'))
        .unwrap_or(constraint);
    let c = c
        .strip_suffix("_check")
        .or_else(|| c.strip_suffix("_key"))
        .or_else(|| c.strip_suffix("_fkey"))
        .unwrap_or(c);
    if c.is_empty() {
        "value".into()
    } else {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fields() {
        assert_eq!(
            key_columns("Key (name)=(x) already exists.").as_deref(),
            Some("name")
        );
        assert_eq!(
            constraint_field("workflows_status_check", "workflows"),
            "status"
        );
        assert_eq!(constraint_field("projects_name_key", "projects"), "name");
    }
}

//! Versioned migrations: what a backend knows, what a database has applied, and the
//! rules that decide whether a binary may run on that database.

use serde::Serialize;

use crate::crypto::sha256_hex;
use crate::time::Timestamp;
use crate::{StoreError, StoreResult};

/// One migration, with its up and down SQL, embedded in the binary.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// The version, increasing from 1 with no gaps.
    pub version: i64,
    /// A short name, such as `identity`.
    pub name: &'static str,
    /// SQL that applies it.
    pub up: &'static str,
    /// SQL that reverts it.
    pub down: &'static str,
}

impl Migration {
    /// The checksum recorded when the migration is applied: SHA-256 of its up SQL.
    pub fn checksum(&self) -> String {
        sha256_hex(self.up)
    }
}

/// A row of the `schema_migrations` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Its version.
    pub version: i64,
    /// Its name when applied.
    pub name: String,
    /// Its checksum when applied.
    pub checksum: String,
    /// When it was applied.
    pub applied_at: Timestamp,
}

/// Where one migration stands on a database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    /// Applied, and the file is unchanged since.
    Applied,
    /// Known to this binary but not applied.
    Pending,
    /// Applied, but the SQL this binary carries differs from what was applied.
    Edited,
    /// Applied by a newer binary: this one does not know it.
    Unknown,
}

/// One line of `flowstore migrate status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MigrationStatus {
    /// The version.
    pub version: i64,
    /// The name.
    pub name: String,
    /// Where it stands.
    pub state: MigrationState,
    /// When it was applied, if it was.
    pub applied_at: Option<Timestamp>,
}

/// Compares what a binary knows with what a database has applied.
pub fn status(known: &[Migration], applied: &[AppliedMigration]) -> Vec<MigrationStatus> {
    let mut out: Vec<MigrationStatus> = known
        .iter()
        .map(|m| match applied.iter().find(|a| a.version == m.version) {
            Some(a) => MigrationStatus {
                version: m.version,
                name: m.name.to_string(),
                state: if a.checksum == m.checksum() {
                    MigrationState::Applied
                } else {
                    MigrationState::Edited
                },
                applied_at: Some(a.applied_at),
            },
            None => MigrationStatus {
                version: m.version,
                name: m.name.to_string(),
                state: MigrationState::Pending,
                applied_at: None,
            },
        })
        .collect();
    for a in applied {
        if !known.iter().any(|m| m.version == a.version) {
            out.push(MigrationStatus {
                version: a.version,
                name: a.name.clone(),
                state: MigrationState::Unknown,
                applied_at: Some(a.applied_at),
            });
        }
    }
    out.sort_by_key(|s| s.version);
    out
}

/// Refuses a database this binary must not touch: one migrated by a newer binary, or
/// one whose applied migration differs from the file this binary carries.
pub fn verify(known: &[Migration], applied: &[AppliedMigration]) -> StoreResult<()> {
    for s in status(known, applied) {
        match s.state {
            MigrationState::Unknown => {
                let newest = known.iter().map(|m| m.version).max().unwrap_or(0);
                return Err(StoreError::Migration(format!(
                    "the database has migration {} ({}) applied, but this flowstore knows only up to \
                     {newest}: upgrade flowstore, or run `flowstore migrate down --to {newest}` with \
                     the newer binary",
                    s.version, s.name
                )));
            }
            MigrationState::Edited => {
                return Err(StoreError::Migration(format!(
                    "migration {} ({}) was changed after it was applied to this database: restore \
                     the original migration, or restore the database from a backup made with the \
                     same flowstore version",
                    s.version, s.name
                )));
            }
            MigrationState::Applied | MigrationState::Pending => {}
        }
    }
    Ok(())
}

/// Refuses a database that still has pending migrations, telling how to apply them.
pub fn require_current(known: &[Migration], applied: &[AppliedMigration]) -> StoreResult<()> {
    verify(known, applied)?;
    let pending: Vec<String> = status(known, applied)
        .into_iter()
        .filter(|s| s.state == MigrationState::Pending)
        .map(|s| format!("{} ({})", s.version, s.name))
        .collect();
    if pending.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Migration(format!(
            "the database is not migrated (pending: {}): run `flowstore migrate up`",
            pending.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &[Migration] = &[
        Migration {
            version: 1,
            name: "a",
            up: "CREATE TABLE a (x INT)",
            down: "DROP TABLE a",
        },
        Migration {
            version: 2,
            name: "b",
            up: "CREATE TABLE b (x INT)",
            down: "DROP TABLE b",
        },
    ];

    fn applied(version: i64, up: &str) -> AppliedMigration {
        AppliedMigration {
            version,
            name: "x".into(),
            checksum: sha256_hex(up),
            applied_at: crate::time::now(),
        }
    }

    #[test]
    fn pending_and_applied() {
        let s = status(M, &[applied(1, M[0].up)]);
        assert_eq!(s[0].state, MigrationState::Applied);
        assert_eq!(s[1].state, MigrationState::Pending);
        assert!(verify(M, &[applied(1, M[0].up)]).is_ok());
        assert!(require_current(M, &[applied(1, M[0].up)]).is_err());
    }

    #[test]
    fn newer_and_edited_are_refused() {
        let newer = verify(
            M,
            &[applied(1, M[0].up), applied(2, M[1].up), applied(3, "x")],
        );
        assert!(matches!(newer, Err(StoreError::Migration(m)) if m.contains("upgrade flowstore")));
        let edited = verify(M, &[applied(1, "CREATE TABLE a (y INT)")]);
        assert!(matches!(edited, Err(StoreError::Migration(m)) if m.contains("changed after")));
    }
}

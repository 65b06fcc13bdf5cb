//! SQL written once for both backends.
//!
//! The repositories' SQL is written in PostgreSQL's spelling: numbered parameters
//! (`$1`), casts where PostgreSQL cannot infer a parameter's type (`$1::uuid IS
//! NULL`), `FOR UPDATE` on the rows a read-modify-write reads and `COLLATE "C"` where
//! text must sort by its bytes. [`to_sqlite`] turns such a statement into SQLite's:
//! `?1` for `$1`; the casts dropped, since SQLite's columns carry no such types (a
//! cast to an unknown type name would even convert a UUID's bytes to a number);
//! `FOR UPDATE` dropped, since a SQLite write transaction holds the whole database
//! from its start; `COLLATE "C"` dropped, since SQLite sorts text by its bytes
//! already. Division is written with a `CAST(… AS double precision)` where it must
//! not be an integer one: both databases read that type name. What the two databases
//! truly spell differently (locking, full-text search, JSON containment, the
//! greatest of two values, …) is not rewritten: each backend's `dialect` module
//! gives it as a fragment, so the difference is named where the SQL is written.

/// `sql` with `$N` parameters as SQLite's `?N` and `::type` casts removed. Text in
/// single quotes, quoted identifiers and comments are left as they are.
pub fn to_sqlite(sql: &str) -> String {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\'' | b'"' => {
                // A quoted string or identifier, with its doubled quotes.
                let start = i;
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == c {
                        if bytes.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i = (i + 1).min(bytes.len());
                out.push_str(&sql[start..i]);
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                let end = sql[i..].find('\n').map_or(bytes.len(), |n| i + n);
                out.push_str(&sql[i..end]);
                i = end;
            }
            b' ' if row_lock(&sql[i..]).is_some() => {
                i += row_lock(&sql[i..]).unwrap_or_default();
                // `OF alias`, then `SKIP LOCKED` or `NOWAIT`, belong to the lock.
                let rest = &sql[i..];
                let trimmed = rest.trim_start();
                if let Some(of) = trimmed.strip_prefix("OF ") {
                    let name = of.trim_start();
                    let len = name
                        .bytes()
                        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                        .count();
                    i += rest.len() - name.len() + len;
                }
                let rest = &sql[i..];
                let trimmed = rest.trim_start();
                for tail in ["SKIP LOCKED", "NOWAIT"] {
                    if trimmed.starts_with(tail) {
                        i += rest.len() - trimmed.len() + tail.len();
                        break;
                    }
                }
            }
            b' ' if sql[i..].starts_with(" COLLATE \"C\"") => {
                i += " COLLATE \"C\"".len();
            }
            b'$' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                out.push('?');
                i += 1;
            }
            b':' if bytes.get(i + 1) == Some(&b':') => {
                // `::type`, `::type[]`, `::double precision` is not used.
                i += 2;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                if sql[i..].starts_with("[]") {
                    i += 2;
                }
            }
            _ => {
                let ch = sql[i..].chars().next().unwrap_or_default();
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

/// The length of the row-lock clause `sql` starts with (` FOR UPDATE`, ` FOR NO KEY
/// UPDATE`), without its `OF` and wait parts.
fn row_lock(sql: &str) -> Option<usize> {
    [" FOR UPDATE", " FOR NO KEY UPDATE"]
        .into_iter()
        .find(|lock| sql.starts_with(lock) && !word_char(sql.as_bytes().get(lock.len())))
        .map(str::len)
}

fn word_char(b: Option<&u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

#[cfg(test)]
mod tests {
    use super::to_sqlite;

    #[test]
    fn parameters_and_casts() {
        assert_eq!(
            to_sqlite("SELECT a FROM t WHERE ($1::uuid IS NULL OR a = $1) LIMIT $12"),
            "SELECT a FROM t WHERE (?1 IS NULL OR a = ?1) LIMIT ?12"
        );
        assert_eq!(
            to_sqlite("SELECT v::float8 AS v, $2::uuid[] FROM t"),
            "SELECT v AS v, ?2 FROM t"
        );
    }

    #[test]
    fn row_locks_and_byte_order() {
        assert_eq!(
            to_sqlite("SELECT a FROM t x WHERE id = $1 FOR NO KEY UPDATE OF x"),
            "SELECT a FROM t x WHERE id = ?1"
        );
        assert_eq!(
            to_sqlite("SELECT a FROM t WHERE id = $1 FOR UPDATE"),
            "SELECT a FROM t WHERE id = ?1"
        );
        assert_eq!(
            to_sqlite(
                "WITH d AS (SELECT x.id FROM t x LIMIT $2 FOR UPDATE OF x SKIP LOCKED) SELECT 1"
            ),
            "WITH d AS (SELECT x.id FROM t x LIMIT ?2) SELECT 1"
        );
        assert_eq!(
            to_sqlite("SELECT a FROM t ORDER BY a COLLATE \"C\", b FOR UPDATED"),
            "SELECT a FROM t ORDER BY a, b FOR UPDATED"
        );
    }

    #[test]
    fn quoted_text_and_comments_are_kept() {
        assert_eq!(
            to_sqlite("SELECT '$1::x', \"a::b\" -- $3::int\nFROM t WHERE x = $1"),
            "SELECT '$1::x', \"a::b\" -- $3::int\nFROM t WHERE x = ?1"
        );
        assert_eq!(to_sqlite("SELECT 'it''s $1'"), "SELECT 'it''s $1'");
    }
}

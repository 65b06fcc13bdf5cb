//! What SQLite's tasks queries spell in its own features: a tag among the JSON tags,
//! the requirement terms with `json_type`/`json_extract`, and the full-text search
//! through the `tasks_fts` FTS5 table, ranked by `bm25`.

use flowstore_core::model::task::query::{fts5_query, ReqTerm, Scalar};
use serde_json::{Map, Value};
use sqlx::QueryBuilder;

use crate::dialect::Db;

/// ` AND` the task's tags hold `tag`.
pub(crate) fn push_tag(qb: &mut QueryBuilder<'_, Db>, tag: &str) {
    qb.push(" AND EXISTS (SELECT 1 FROM json_each(t.tags) WHERE value = ")
        .push_bind(tag.to_string())
        .push(")");
}

/// ` AND` the task's requirements hold every term (each path's value equal, or each
/// listed item in the array at the path).
pub(crate) fn push_requirements(
    qb: &mut QueryBuilder<'_, Db>,
    _requirements: &Map<String, Value>,
    terms: &[ReqTerm],
) {
    for term in terms {
        let path = term.json_path();
        match term {
            ReqTerm::Equals(_, s) => {
                qb.push(" AND json_type(t.requirements, ")
                    .push_bind(path.clone())
                    .push(")");
                push_scalar(qb, s, |qb| {
                    qb.push("json_extract(t.requirements, ")
                        .push_bind(path.clone())
                        .push(")");
                });
            }
            ReqTerm::Contains(_, items) => {
                qb.push(" AND json_type(t.requirements, ")
                    .push_bind(path.clone())
                    .push(") = 'array'");
                for s in items {
                    qb.push(" AND EXISTS (SELECT 1 FROM json_each(t.requirements, ")
                        .push_bind(path.clone())
                        .push(") j WHERE j.type");
                    push_scalar(qb, s, |qb| {
                        qb.push("j.value");
                    });
                    qb.push(")");
                }
            }
        }
    }
}

/// Continues an expression that yields a JSON type name with a check that the type
/// matches `s` and, unless `s` is a boolean (whose type says it all), that the value
/// written by `value` equals it. Checking the type keeps `true` from matching `1`, as
/// PostgreSQL's containment does.
fn push_scalar(
    qb: &mut QueryBuilder<'_, Db>,
    s: &Scalar,
    value: impl Fn(&mut QueryBuilder<'_, Db>),
) {
    match s {
        Scalar::Bool(b) => {
            qb.push(if *b { " = 'true'" } else { " = 'false'" });
        }
        Scalar::Text(t) => {
            qb.push(" = 'text' AND ");
            value(qb);
            qb.push(" = ").push_bind(t.clone());
        }
        Scalar::Int(i) => {
            qb.push(" IN ('integer', 'real') AND ");
            value(qb);
            qb.push(" = ").push_bind(*i);
        }
        Scalar::Real(r) => {
            qb.push(" IN ('integer', 'real') AND ");
            value(qb);
            qb.push(" = ").push_bind(*r);
        }
    }
}

/// `SELECT {columns}` of the tasks (`t`) that hold every word of `words`.
pub(crate) fn search<'a>(columns: &str, words: &[String]) -> QueryBuilder<'a, Db> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {columns} FROM tasks_fts JOIN tasks t ON t.rowid = tasks_fts.rowid
         WHERE tasks_fts MATCH "
    ));
    qb.push_bind(fts5_query(words));
    qb
}

/// ` ORDER BY` the best match first (more order keys may follow).
pub(crate) fn push_rank(qb: &mut QueryBuilder<'_, Db>, _words: &[String]) {
    qb.push(" ORDER BY bm25(tasks_fts)");
}

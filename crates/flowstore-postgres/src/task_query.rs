//! What PostgreSQL's tasks queries spell in its own features: a tag among the JSON
//! tags and the requirements by containment (both on GIN indexes), and the full-text
//! search on `task_search` (the tasks' search vectors, kept by triggers), ranked by
//! `ts_rank`.

use flowstore_core::model::task::query::ReqTerm;
use serde_json::{Map, Value};
use sqlx::QueryBuilder;

use crate::dialect::Db;

/// ` AND` the task's tags hold `tag` (`?` uses the GIN index idx_tasks_tags, which
/// holds only tasks with tags: the filter says so, as the planner cannot tell it from
/// `?`).
pub(crate) fn push_tag(qb: &mut QueryBuilder<'_, Db>, tag: &str) {
    qb.push(" AND t.tags <> '[]'::jsonb AND t.tags ? ")
        .push_bind(tag.to_string());
}

/// ` AND` the task's requirements contain `requirements` (the terms are what
/// `TaskFilter::check` made of them; containment says the same here and uses the
/// GIN index idx_tasks_requirements, which holds only tasks with requirements: a
/// filter naming any says so, as the planner cannot tell it from `@>`; an empty one
/// matches every task).
pub(crate) fn push_requirements(
    qb: &mut QueryBuilder<'_, Db>,
    requirements: &Map<String, Value>,
    _terms: &[ReqTerm],
) {
    if !requirements.is_empty() {
        qb.push(" AND t.requirements <> '{}'::jsonb");
    }
    qb.push(" AND t.requirements @> ")
        .push_bind(Value::Object(requirements.clone()))
        .push("::jsonb");
}

/// `SELECT {columns}` of the tasks (`t`) that hold every word of `words`
/// (`plainto_tsquery` ANDs them, as SQLite's search does).
pub(crate) fn search<'a>(columns: &str, words: &[String]) -> QueryBuilder<'a, Db> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {columns} FROM tasks t JOIN task_search s ON s.task_id = t.id
          WHERE s.search_vector @@ plainto_tsquery('english', "
    ));
    qb.push_bind(words.join(" ")).push(")");
    qb
}

/// ` ORDER BY` the best match first (more order keys may follow).
pub(crate) fn push_rank(qb: &mut QueryBuilder<'_, Db>, words: &[String]) {
    qb.push(" ORDER BY ts_rank(s.search_vector, plainto_tsquery('english', ")
        .push_bind(words.join(" "))
        .push(")) DESC");
}

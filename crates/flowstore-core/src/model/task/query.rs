//! Task queries: filters, the words of a full-text search, progress counts and the
//! rows of seed 003's summary views. The checks here make both backends accept the
//! same filters and so give the same answers.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::TaskStatus;
use crate::ids::{ProjectId, PullRequestId, RunId, TaskId, WorkflowId};
use crate::model::pull_request::PullRequestStatus;
use crate::model::viewer::Viewer;
use crate::time::Timestamp;
use crate::validate;
use crate::{StoreError, StoreResult};

/// Filters for listing and searching tasks; every filter given must match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskFilter {
    /// Only tasks of this project.
    pub project_id: Option<ProjectId>,
    /// Only tasks of this workflow.
    pub workflow_id: Option<WorkflowId>,
    /// Only tasks of this run.
    pub run_id: Option<RunId>,
    /// Only tasks in this status.
    pub status: Option<TaskStatus>,
    /// Only tasks assigned to this agent.
    pub assigned_agent: Option<String>,
    /// Only sub-tasks of this task.
    pub parent_task_id: Option<TaskId>,
    /// Only tasks with this tag.
    pub tag: Option<String>,
    /// Only tasks whose requirements contain this object (see [`ReqTerm`]).
    pub requirements: Option<Map<String, Value>>,
    /// Only tasks this viewer may see (see [`crate::model::viewer`]).
    #[serde(skip)]
    pub viewer: Option<Viewer>,
}

/// A scalar accepted in a requirements filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    /// A JSON string.
    Text(String),
    /// A JSON number that fits an integer.
    Int(i64),
    /// Any other JSON number.
    Real(f64),
    /// A JSON boolean.
    Bool(bool),
}

/// One top-level key of a requirements filter, in the shapes both backends evaluate
/// alike: the stored value equals a scalar, or is an array holding every element given.
#[derive(Clone, Debug, PartialEq)]
pub enum ReqTerm {
    /// `key` holds exactly this scalar.
    Equals(String, Scalar),
    /// `key` holds an array containing each of these scalars.
    Contains(String, Vec<Scalar>),
}

impl ReqTerm {
    /// The key, checked to be usable in a quoted JSON path (`$."key"`).
    pub fn key(&self) -> &str {
        match self {
            ReqTerm::Equals(k, _) | ReqTerm::Contains(k, _) => k,
        }
    }

    /// The SQLite JSON path of the key.
    pub fn json_path(&self) -> String {
        format!("$.\"{}\"", self.key())
    }
}

fn scalar(v: &Value) -> Option<Scalar> {
    match v {
        Value::String(s) => Some(Scalar::Text(s.clone())),
        Value::Bool(b) => Some(Scalar::Bool(*b)),
        Value::Number(n) => n
            .as_i64()
            .map(Scalar::Int)
            .or_else(|| n.as_f64().map(Scalar::Real)),
        _ => None,
    }
}

impl TaskFilter {
    /// Checks the filter: a non-empty tag and agent, and requirements whose values are
    /// scalars or arrays of scalars (deeper values are refused, because the backends
    /// would not agree on them). Returns the requirement terms.
    pub fn check(&self) -> StoreResult<Vec<ReqTerm>> {
        if let Some(tag) = &self.tag {
            validate::required_text("tag", tag, 100)?;
        }
        if let Some(a) = &self.assigned_agent {
            validate::required_text("assigned_agent", a, 100)?;
        }
        let Some(req) = &self.requirements else {
            return Ok(Vec::new());
        };
        validate::json_size("requirements", &Value::Object(req.clone()))?;
        let bad = |why: String| StoreError::invalid("requirements", why);
        let mut terms = Vec::with_capacity(req.len());
        for (k, v) in req {
            if k.is_empty() || k.contains(['"', '\\']) || k.chars().any(char::is_control) {
                return Err(bad(format!(
                    "key {k:?} must be non-empty, without quotes, backslashes or control characters"
                )));
            }
            let term = match v {
                Value::Array(items) => ReqTerm::Contains(
                    k.clone(),
                    items
                        .iter()
                        .map(|i| {
                            scalar(i).ok_or_else(|| {
                                bad(format!(
                                    "{k:?}: array elements must be strings, numbers or booleans"
                                ))
                            })
                        })
                        .collect::<StoreResult<_>>()?,
                ),
                other => ReqTerm::Equals(
                    k.clone(),
                    scalar(other).ok_or_else(|| {
                        bad(format!(
                            "{k:?} must be a string, number, boolean or array of them"
                        ))
                    })?,
                ),
            };
            terms.push(term);
        }
        Ok(terms)
    }
}

/// The words of a full-text query, each at least one letter or digit, in order and
/// without repeats. An empty query (or one with no words) is invalid `query`.
pub fn search_words(query: &str) -> StoreResult<Vec<String>> {
    validate::bounded("query", query, 1000)?;
    let mut words: Vec<String> = Vec::new();
    for w in query.split(|c: char| !c.is_alphanumeric()) {
        let w = w.to_lowercase();
        if !w.is_empty() && !words.contains(&w) {
            words.push(w);
        }
    }
    if words.is_empty() {
        return Err(StoreError::invalid(
            "query",
            "must contain at least one word",
        ));
    }
    Ok(words)
}

/// An FTS5 query matching every word: each double-quoted (quotes doubled, though
/// [`search_words`] leaves none) and joined with AND.
pub fn fts5_query(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The limit of a search, 1..=1000.
pub fn search_limit(limit: u32) -> StoreResult<u32> {
    validate::range_i64("limit", limit.into(), 1, crate::page::MAX_PAGE_SIZE.into())?;
    Ok(limit)
}

/// The dependency path from `from` to `to` along `edges` (task, depends_on), if any,
/// `from` first. Backends fetch the edges reachable from `from` with a recursive
/// query and use this to name the cycle a new dependency would close.
pub fn dependency_path(edges: &[(Uuid, Uuid)], from: Uuid, to: Uuid) -> Option<Vec<Uuid>> {
    let mut prev: HashMap<Uuid, Uuid> = HashMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(n) = queue.pop_front() {
        if n == to {
            let mut path = vec![to];
            let mut cur = to;
            while cur != from {
                cur = *prev.get(&cur)?;
                path.push(cur);
            }
            path.reverse();
            return Some(path);
        }
        for (a, b) in edges {
            if *a == n && *b != from && !prev.contains_key(b) {
                prev.insert(*b, n);
                queue.push_back(*b);
            }
        }
    }
    None
}

/// The refusal of a dependency `task → depends_on` that closes the cycle `path`
/// (from `depends_on` back to `task`).
pub fn cycle_error(task: TaskId, path: &[Uuid]) -> StoreError {
    let mut names = vec![task.0.to_string()];
    names.extend(path.iter().map(Uuid::to_string));
    StoreError::invalid(
        "depends_on",
        format!("would close a dependency cycle: {}", names.join(" -> ")),
    )
}

/// How far a set of tasks has got: a count per status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskProgress {
    /// Every task.
    pub total: i64,
    /// Tasks pending.
    pub pending: i64,
    /// Tasks ready.
    pub ready: i64,
    /// Tasks running.
    pub running: i64,
    /// Tasks completed.
    pub completed: i64,
    /// Tasks failed.
    pub failed: i64,
    /// Tasks cancelled.
    pub cancelled: i64,
    /// Tasks timed out.
    pub timed_out: i64,
    /// Completed tasks as a percentage of all (0 when there are none).
    pub percent_complete: f64,
}

impl TaskProgress {
    /// Folds the rows of a `GROUP BY status` count.
    pub fn from_counts(rows: &[(TaskStatus, i64)]) -> Self {
        let mut p = TaskProgress::default();
        for (s, n) in rows {
            let slot = match s {
                TaskStatus::Pending => &mut p.pending,
                TaskStatus::Ready => &mut p.ready,
                TaskStatus::Running => &mut p.running,
                TaskStatus::Completed => &mut p.completed,
                TaskStatus::Failed => &mut p.failed,
                TaskStatus::Cancelled => &mut p.cancelled,
                TaskStatus::TimedOut => &mut p.timed_out,
            };
            *slot += n;
            p.total += n;
        }
        if p.total > 0 {
            p.percent_complete = p.completed as f64 * 100.0 / p.total as f64;
        }
        p
    }
}

/// A row of seed 003's `active_tasks` view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActiveTask {
    /// The task.
    pub id: TaskId,
    /// Its project.
    pub project_id: Option<ProjectId>,
    /// Its project's name.
    pub project_name: Option<String>,
    /// Its title.
    pub title: String,
    /// Its status: pending, ready or running.
    pub status: TaskStatus,
    /// Its priority.
    pub priority: i32,
    /// Its agent.
    pub assigned_agent: Option<String>,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// How many attempts it has had.
    pub execution_count: i64,
}

/// A row of seed 003's `pr_validation_status` view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrValidation {
    /// The pull request.
    pub id: PullRequestId,
    /// Its project.
    pub project_id: ProjectId,
    /// Its task.
    pub task_id: Option<TaskId>,
    /// Its number.
    pub pr_number: Option<i32>,
    /// Its title.
    pub title: String,
    /// Its status.
    pub status: PullRequestStatus,
    /// `validation_results.status`, as text.
    pub validation_status: Option<String>,
    /// When it last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requirement_filters_are_shallow() {
        let f = |v: Value| TaskFilter {
            requirements: v.as_object().cloned(),
            ..Default::default()
        };
        assert_eq!(
            f(json!({"a": 1, "b": ["x", true]})).check().unwrap().len(),
            2
        );
        assert!(f(json!({"a": {"b": 1}})).check().is_err());
        assert!(f(json!({"a": [[1]]})).check().is_err());
        assert!(f(json!({"a": null})).check().is_err());
        assert!(f(json!({"a\"": 1})).check().is_err());
    }

    #[test]
    fn words_and_paths() {
        assert_eq!(
            search_words("Deploy the  'api'!").unwrap(),
            ["deploy", "the", "api"]
        );
        assert!(search_words(" ... ").is_err());
        assert_eq!(fts5_query(&["a".into(), "b".into()]), "\"a\" AND \"b\"");
        let [a, b, c] = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
        assert_eq!(
            dependency_path(&[(a, b), (b, c)], a, c),
            Some(vec![a, b, c])
        );
        assert_eq!(dependency_path(&[(a, b)], b, a), None);
    }
}

//! Pull requests (seed 003): the code changes made for a project's tasks, with the
//! results of their validation. Their operations are part of
//! [`crate::model::task::TaskRepo`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{ProjectId, PullRequestId, TaskId};
use crate::model::viewer::Viewer;
use crate::time::Timestamp;
use crate::validate;
use crate::{text_enum, StoreError, StoreResult};

text_enum!(
    /// Where a pull request stands.
    PullRequestStatus, "status" {
        /// Being prepared.
        Draft => "draft",
        /// Open for review.
        Open => "open",
        /// Under review.
        Review => "review",
        /// Merged: final.
        Merged => "merged",
        /// Closed without merging: final.
        Closed => "closed",
    }
);

impl PullRequestStatus {
    /// Whether a pull request may move from this status to `to`: draft→open/closed,
    /// open→review/merged/closed, review→open/merged/closed; merged and closed are final.
    pub fn can_move_to(&self, to: PullRequestStatus) -> bool {
        use PullRequestStatus::*;
        matches!(
            (self, to),
            (Draft, Open | Closed)
                | (Open, Review | Merged | Closed)
                | (Review, Open | Merged | Closed)
        )
    }

    /// The pull request after moving it to `to` at `now`, or a conflict on `status`
    /// when the rules refuse the move. Merging stamps `merged_at`, closing `closed_at`.
    pub fn move_to(
        pr: &PullRequest,
        to: PullRequestStatus,
        now: Timestamp,
    ) -> StoreResult<PullRequest> {
        if !pr.status.can_move_to(to) {
            return Err(StoreError::conflict(
                "status",
                format!("a {} pull request cannot become {to}", pr.status),
            ));
        }
        let mut p = pr.clone();
        p.status = to;
        match to {
            PullRequestStatus::Merged => p.merged_at = Some(now),
            PullRequestStatus::Closed => p.closed_at = Some(now),
            _ => {}
        }
        p.updated_at = now;
        Ok(p)
    }
}

/// A pull request as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullRequest {
    /// Its ID.
    pub id: PullRequestId,
    /// The project it belongs to.
    pub project_id: ProjectId,
    /// The task it was made for.
    pub task_id: Option<TaskId>,
    /// Its number in the repository.
    pub pr_number: Option<i32>,
    /// The repository's URL.
    pub repository_url: String,
    /// The branch with the changes.
    pub branch_name: String,
    /// The branch it merges into.
    pub base_branch: Option<String>,
    /// Its title.
    pub title: String,
    /// Its description.
    pub description: Option<String>,
    /// Where it stands.
    pub status: PullRequestStatus,
    /// The results of its validation (a JSON object, such as
    /// `{"status": "passed", "checks": [...]}`).
    pub validation_results: Value,
    /// When it was merged.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub merged_at: Option<Timestamp>,
    /// When it was closed.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub closed_at: Option<Timestamp>,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When it last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// What a caller gives to create a pull request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewPullRequest {
    /// The project; must exist.
    pub project_id: ProjectId,
    /// The task; must exist when given.
    pub task_id: Option<TaskId>,
    /// Its number; more than 0.
    pub pr_number: Option<i32>,
    /// An http(s) URL of at most 500 characters.
    pub repository_url: String,
    /// The branch; required, at most 255 characters.
    pub branch_name: String,
    /// The base branch, at most 255 characters.
    pub base_branch: Option<String>,
    /// The title; required, at most 500 characters.
    pub title: String,
    /// The description.
    pub description: Option<String>,
    /// `draft` (the default) or `open`.
    pub status: Option<PullRequestStatus>,
    /// Validation results; `{}` when absent.
    pub validation_results: Option<Value>,
}

/// Filters for listing pull requests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PullRequestFilter {
    /// Only this project's.
    pub project_id: Option<ProjectId>,
    /// Only those in this status.
    pub status: Option<PullRequestStatus>,
    /// Only this task's.
    pub task_id: Option<TaskId>,
    /// Only pull requests this viewer may see (see [`crate::model::viewer`]).
    #[serde(skip)]
    pub viewer: Option<Viewer>,
}

impl NewPullRequest {
    /// Checks every field and builds the row to insert, stamped `now`.
    pub fn into_row(self, now: Timestamp) -> StoreResult<PullRequest> {
        if let Some(n) = self.pr_number {
            validate::range_i64("pr_number", n.into(), 1, i32::MAX.into())?;
        }
        let status = self.status.unwrap_or(PullRequestStatus::Draft);
        if !matches!(status, PullRequestStatus::Draft | PullRequestStatus::Open) {
            return Err(StoreError::invalid(
                "status",
                "a pull request starts as draft or open",
            ));
        }
        let validation_results =
            validate::object_or_empty("validation_results", self.validation_results)?;
        Ok(PullRequest {
            id: PullRequestId::new(),
            project_id: self.project_id,
            task_id: self.task_id,
            pr_number: self.pr_number,
            repository_url: validate::http_url("repository_url", &self.repository_url, 500)?,
            branch_name: validate::required_text("branch_name", &self.branch_name, 255)?,
            base_branch: validate::optional_text("base_branch", self.base_branch.as_deref(), 255)?,
            title: validate::required_text("title", &self.title, 500)?,
            description: validate::free_text("description", self.description.as_deref())?,
            status,
            validation_results,
            merged_at: None,
            closed_at: None,
            created_at: now,
            updated_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::PullRequestStatus::*;

    #[test]
    fn transitions() {
        assert!(Draft.can_move_to(Open));
        assert!(!Draft.can_move_to(Merged));
        assert!(Review.can_move_to(Open));
        assert!(!Merged.can_move_to(Open));
        assert!(!Closed.can_move_to(Closed));
    }
}

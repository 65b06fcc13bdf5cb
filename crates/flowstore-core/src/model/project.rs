//! Projects (seed 003): the top level that tasks and pull requests belong to.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{ProjectId, UserId};
use crate::model::nullable;
use crate::model::viewer::Viewer;
use crate::time::Timestamp;
use crate::validate;
use crate::{Page, PageRequest, StoreResult};

/// A project as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Project {
    /// Its ID.
    pub id: ProjectId,
    /// Its name, unique across the installation.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// Where its code lives.
    pub repository_url: Option<String>,
    /// The repository's short name, such as `owner/repo`.
    pub repository_name: Option<String>,
    /// The branch work starts from.
    pub default_branch: String,
    /// Free-form settings (a JSON object).
    pub settings: Value,
    /// The user who owns it.
    pub owner_id: Option<UserId>,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When it last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// What a caller gives to create a project.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    /// The name; required, unique, at most 255 characters.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// An http(s) URL of its repository.
    pub repository_url: Option<String>,
    /// The repository's short name.
    pub repository_name: Option<String>,
    /// The default branch; `main` when absent.
    pub default_branch: Option<String>,
    /// Settings; `{}` when absent.
    pub settings: Option<Value>,
    /// The owner.
    pub owner_id: Option<UserId>,
}

patch_struct! {
    /// Changes to a project: absent fields stay as they are; `null` clears a nullable one.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct ProjectPatch {
        /// A new name.
        pub name: Option<String>,
        /// A new description, or `null` to clear it.
        #[serde(deserialize_with = "nullable")]
        pub description: Option<Option<String>>,
        /// A new repository URL, or `null` to clear it.
        #[serde(deserialize_with = "nullable")]
        pub repository_url: Option<Option<String>>,
        /// A new repository name, or `null` to clear it.
        #[serde(deserialize_with = "nullable")]
        pub repository_name: Option<Option<String>>,
        /// A new default branch.
        pub default_branch: Option<String>,
        /// New settings (replacing the old ones).
        pub settings: Option<Value>,
        /// A new owner, or `null` for none.
        #[serde(deserialize_with = "nullable")]
        pub owner_id: Option<Option<UserId>>,
    }
}

/// Filters for listing projects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectFilter {
    /// Only projects owned by this user.
    pub owner_id: Option<UserId>,
    /// Only projects this viewer may see (see [`crate::model::viewer`]).
    #[serde(skip)]
    pub viewer: Option<Viewer>,
}

impl NewProject {
    /// Checks every field and builds the row to insert, stamped `now`.
    pub fn into_row(self, now: Timestamp) -> StoreResult<Project> {
        let row = Project {
            id: ProjectId::new(),
            name: String::new(),
            description: None,
            repository_url: None,
            repository_name: None,
            default_branch: "main".into(),
            settings: Value::Object(Default::default()),
            owner_id: self.owner_id,
            created_at: now,
            updated_at: now,
        };
        ProjectPatch {
            name: Some(self.name),
            description: Some(self.description),
            repository_url: Some(self.repository_url),
            repository_name: Some(self.repository_name),
            default_branch: self.default_branch,
            settings: self.settings,
            owner_id: None,
        }
        .apply(&row, now)
    }
}

impl ProjectPatch {
    /// The project as it is after this patch, every changed field checked.
    pub fn apply(self, current: &Project, now: Timestamp) -> StoreResult<Project> {
        let mut p = current.clone();
        if let Some(name) = self.name {
            p.name = validate::required_text("name", &name, 255)?;
        }
        if let Some(d) = self.description {
            p.description = validate::free_text("description", d.as_deref())?;
        }
        if let Some(url) = self.repository_url {
            p.repository_url = validate::optional_http_url("repository_url", url.as_deref(), 500)?;
        }
        if let Some(r) = self.repository_name {
            p.repository_name = validate::optional_text("repository_name", r.as_deref(), 255)?;
        }
        if let Some(b) = self.default_branch {
            p.default_branch = validate::required_text("default_branch", &b, 100)?;
        }
        if let Some(s) = self.settings {
            p.settings = validate::object("settings", s)?;
        }
        if let Some(o) = self.owner_id {
            p.owner_id = o;
        }
        p.updated_at = now;
        Ok(p)
    }
}

/// Storage operations on projects.
#[async_trait]
pub trait ProjectRepo: Send {
    /// Creates a project. A taken name is a conflict on `name`; an unknown owner is
    /// invalid `owner_id`.
    async fn create_project(&mut self, new: NewProject) -> StoreResult<Project>;
    /// The project with this ID.
    async fn get_project(&mut self, id: ProjectId) -> StoreResult<Project>;
    /// The project with this name.
    async fn get_project_by_name(&mut self, name: &str) -> StoreResult<Project>;
    /// Applies a patch and returns the project as stored.
    async fn update_project(&mut self, id: ProjectId, patch: ProjectPatch) -> StoreResult<Project>;
    /// Deletes a project with its tasks and pull requests.
    async fn delete_project(&mut self, id: ProjectId) -> StoreResult<()>;
    /// A page of projects, newest first.
    async fn list_projects(
        &mut self,
        filter: &ProjectFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Project>>;
}

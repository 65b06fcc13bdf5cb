//! Storage for projects.

use async_trait::async_trait;
use flowstore_core::ids::ProjectId;
use flowstore_core::model::project::{
    NewProject, Project, ProjectFilter, ProjectPatch, ProjectRepo,
};
use flowstore_core::{time, Page, PageRequest, StoreResult};

use crate::dialect::{ensure_exists, sql, sql_fmt, sql_owned, ts, Tx};
use crate::rows;
use crate::visibility;

const COLUMNS: &str = "id, name, description, repository_url, repository_name, default_branch, \
                       settings, owner_id, created_at, updated_at";

impl Tx {
    async fn write_project(&mut self, p: &Project, insert: bool) -> StoreResult<()> {
        ensure_exists(&mut self.tx, "users", "owner_id", p.owner_id.map(|u| u.0)).await?;
        let statement = if insert {
            sql!(
                "INSERT INTO projects (id, name, description, repository_url, repository_name,
                    default_branch, settings, owner_id, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            )
        } else {
            sql!(
                "UPDATE projects SET name = $2, description = $3, repository_url = $4,
                    repository_name = $5, default_branch = $6, settings = $7, owner_id = $8,
                    updated_at = $10
                 WHERE id = $1"
            )
        };
        sqlx::query(statement)
            .bind(p.id)
            .bind(&p.name)
            .bind(&p.description)
            .bind(&p.repository_url)
            .bind(&p.repository_name)
            .bind(&p.default_branch)
            .bind(&p.settings)
            .bind(p.owner_id)
            .bind(ts(&p.created_at))
            .bind(ts(&p.updated_at))
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl ProjectRepo for Tx {
    async fn create_project(&mut self, new: NewProject) -> StoreResult<Project> {
        let row = new.into_row(time::now())?;
        self.write_project(&row, true).await?;
        Ok(row)
    }

    async fn get_project(&mut self, id: ProjectId) -> StoreResult<Project> {
        rows::one(
            &mut self.tx,
            sql_fmt!("SELECT {COLUMNS} FROM projects WHERE id = $1"),
            "project",
            id,
        )
        .await
    }

    async fn get_project_by_name(&mut self, name: &str) -> StoreResult<Project> {
        rows::one(
            &mut self.tx,
            sql_fmt!("SELECT {COLUMNS} FROM projects WHERE name = $1"),
            "project",
            name,
        )
        .await
    }

    async fn update_project(&mut self, id: ProjectId, patch: ProjectPatch) -> StoreResult<Project> {
        let current = self.get_project(id).await?;
        let row = patch.apply(&current, time::now())?;
        self.write_project(&row, false).await?;
        Ok(row)
    }

    async fn delete_project(&mut self, id: ProjectId) -> StoreResult<()> {
        rows::delete_one(
            &mut self.tx,
            sql!("DELETE FROM projects WHERE id = $1"),
            "project",
            id,
        )
        .await
    }

    async fn list_projects(
        &mut self,
        filter: &ProjectFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Project>> {
        let (restricted, me) = visibility::binds(&filter.viewer);
        rows::page_with(
            &mut self.tx,
            &sql_owned(format!(
                "SELECT {COLUMNS} FROM projects p
             WHERE ($1::uuid IS NULL OR owner_id = $1) AND ($2::uuid IS NULL OR id < $2){}
             ORDER BY id DESC LIMIT $3",
                visibility::clause("$4", "$5", &visibility::project("p"))
            )),
            page,
            |q, after, limit| {
                q.bind(filter.owner_id)
                    .bind(after)
                    .bind(limit)
                    .bind(restricted)
                    .bind(me)
            },
            |p: &Project| p.id.0,
        )
        .await
    }
}

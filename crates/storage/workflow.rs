//! Storage for workflows, their immutable versions and their shares.

use async_trait::async_trait;
use flowstore_core::ids::{ShareId, TeamId, UserId, WorkflowId};
use flowstore_core::model::workflow::{
    can_access, NewShare, NewWorkflow, SharePermission, Workflow, WorkflowFilter, WorkflowPatch,
    WorkflowRepo, WorkflowShare, WorkflowStatus, WorkflowVersion,
};
use flowstore_core::{time, Page, PageRequest, StoreError, StoreResult};
use serde_json::Value;

use crate::dialect::{ensure_exists, json_array_contains, sql, sql_fmt, sql_owned, ts, ts_opt, Tx};
use crate::rows;
use crate::visibility;

const COLUMNS: &str = "id, name, description, type, status, priority, definition, configuration, \
                       environment_variables, tags, metadata, visibility, execution_strategy, \
                       failure_strategy, timeout_seconds, version, owner_id, team_id, project_id, \
                       parent_workflow_id, archived_at, created_at, updated_at";

const VERSION_COLUMNS: &str =
    "id, workflow_id, version, definition, configuration, change_note, created_by, created_at";

const SHARE_COLUMNS: &str = "id, workflow_id, user_id, team_id, permission, created_by, created_at";

/// Prefixes each column of [`COLUMNS`] with `w.`, for queries that join.
fn qualified() -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("w.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Tx {
    async fn write_workflow(&mut self, w: &Workflow, insert: bool) -> StoreResult<()> {
        ensure_exists(&mut self.tx, "users", "owner_id", w.owner_id.map(|u| u.0)).await?;
        ensure_exists(&mut self.tx, "teams", "team_id", w.team_id.map(|u| u.0)).await?;
        ensure_exists(
            &mut self.tx,
            "projects",
            "project_id",
            w.project_id.map(|u| u.0),
        )
        .await?;
        let statement = if insert {
            sql!(
                "INSERT INTO workflows (id, name, description, type, status, priority, definition,
                configuration, environment_variables, tags, metadata, visibility,
                execution_strategy, failure_strategy, timeout_seconds, version, owner_id,
                team_id, project_id, parent_workflow_id, archived_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                $17, $18, $19, $20, $21, $22, $23)"
            )
        } else {
            sql!(
                "UPDATE workflows SET name = $2, description = $3, type = $4, status = $5,
                priority = $6, definition = $7, configuration = $8, environment_variables = $9,
                tags = $10, metadata = $11, visibility = $12, execution_strategy = $13,
                failure_strategy = $14, timeout_seconds = $15, version = $16, owner_id = $17,
                team_id = $18, project_id = $19, parent_workflow_id = $20, archived_at = $21,
                updated_at = $23
             WHERE id = $1"
            )
        };
        sqlx::query(statement)
            .bind(w.id)
            .bind(&w.name)
            .bind(&w.description)
            .bind(&w.workflow_type)
            .bind(w.status)
            .bind(w.priority)
            .bind(&w.definition)
            .bind(&w.configuration)
            .bind(&w.environment_variables)
            .bind(Value::from(w.tags.clone()))
            .bind(&w.metadata)
            .bind(w.visibility)
            .bind(w.execution_strategy)
            .bind(w.failure_strategy)
            .bind(w.timeout_seconds)
            .bind(w.version)
            .bind(w.owner_id)
            .bind(w.team_id)
            .bind(w.project_id)
            .bind(w.parent_workflow_id)
            .bind(ts_opt(&w.archived_at))
            .bind(ts(&w.created_at))
            .bind(ts(&w.updated_at))
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn insert_version(&mut self, v: &WorkflowVersion) -> StoreResult<()> {
        sqlx::query(sql!(
            "INSERT INTO workflow_versions (id, workflow_id, version, definition, configuration,
                change_note, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(v.id)
        .bind(v.workflow_id)
        .bind(v.version)
        .bind(&v.definition)
        .bind(&v.configuration)
        .bind(&v.change_note)
        .bind(v.created_by)
        .bind(ts(&v.created_at))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn user_team_ids(&mut self, user_id: UserId) -> StoreResult<Vec<TeamId>> {
        Ok(
            sqlx::query_scalar(sql!("SELECT team_id FROM team_members WHERE user_id = $1"))
                .bind(user_id)
                .fetch_all(&mut *self.tx)
                .await?,
        )
    }
}

#[async_trait]
impl WorkflowRepo for Tx {
    async fn create_workflow(&mut self, new: NewWorkflow) -> StoreResult<Workflow> {
        let row = new.into_row(time::now())?;
        self.write_workflow(&row, true).await?;
        self.insert_version(&row.version_row(None, row.owner_id))
            .await?;
        Ok(row)
    }

    async fn get_workflow(&mut self, id: WorkflowId) -> StoreResult<Workflow> {
        rows::one(
            &mut self.tx,
            sql_fmt!("SELECT {COLUMNS} FROM workflows WHERE id = $1"),
            "workflow",
            id,
        )
        .await
    }

    async fn update_workflow(
        &mut self,
        id: WorkflowId,
        patch: WorkflowPatch,
    ) -> StoreResult<Workflow> {
        // Locked until commit, so two concurrent patches cannot both make version n+1
        // from the same version n.
        let current: Workflow = rows::one(
            &mut self.tx,
            sql_fmt!("SELECT {COLUMNS} FROM workflows WHERE id = $1 FOR UPDATE"),
            "workflow",
            id,
        )
        .await?;
        let note = patch.change_note.clone();
        let by = patch.changed_by;
        // Checked before anything is written, so a refused patch leaves no trace.
        ensure_exists(&mut self.tx, "users", "changed_by", by.map(|u| u.0)).await?;
        let (row, new_version) = patch.apply(&current, time::now())?;
        self.write_workflow(&row, false).await?;
        if new_version {
            self.insert_version(&row.version_row(note, by)).await?;
        }
        Ok(row)
    }

    async fn archive_workflow(&mut self, id: WorkflowId) -> StoreResult<Workflow> {
        self.update_workflow(
            id,
            WorkflowPatch {
                status: Some(WorkflowStatus::Archived),
                ..Default::default()
            },
        )
        .await
    }

    async fn delete_workflow(&mut self, id: WorkflowId) -> StoreResult<()> {
        rows::delete_one(
            &mut self.tx,
            sql!("DELETE FROM workflows WHERE id = $1"),
            "workflow",
            id,
        )
        .await
    }

    async fn list_workflows(
        &mut self,
        filter: &WorkflowFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Workflow>> {
        let (restricted, me) = visibility::binds(&filter.viewer);
        rows::page_with(
            &mut self.tx,
            &sql_owned(format!(
                "SELECT {COLUMNS} FROM workflows w
             WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR owner_id = $2)
               AND ($3::uuid IS NULL OR team_id = $3) AND ($4::uuid IS NULL OR project_id = $4)
               AND ($5::text IS NULL OR {})
               AND ($6::uuid IS NULL OR id < $6){}
             ORDER BY id DESC LIMIT $7",
                json_array_contains("w.tags", "$5::text"),
                visibility::clause("$8", "$9", &visibility::workflow("w"))
            )),
            page,
            |q, after, limit| {
                q.bind(filter.status)
                    .bind(filter.owner_id)
                    .bind(filter.team_id)
                    .bind(filter.project_id)
                    .bind(filter.tag.as_deref())
                    .bind(after)
                    .bind(limit)
                    .bind(restricted)
                    .bind(me)
            },
            |w: &Workflow| w.id.0,
        )
        .await
    }

    async fn list_active_workflows(&mut self) -> StoreResult<Vec<Workflow>> {
        Ok(sqlx::query_as(sql_fmt!(
            "SELECT {COLUMNS} FROM workflows WHERE status = 'active'
             ORDER BY priority DESC, id DESC"
        ))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn get_workflow_version(
        &mut self,
        workflow_id: WorkflowId,
        version: i32,
    ) -> StoreResult<WorkflowVersion> {
        sqlx::query_as(sql_fmt!(
            "SELECT {VERSION_COLUMNS} FROM workflow_versions
             WHERE workflow_id = $1 AND version = $2"
        ))
        .bind(workflow_id)
        .bind(version)
        .fetch_optional(&mut *self.tx)
        .await?
        .ok_or_else(|| {
            StoreError::not_found("workflow version", format!("{workflow_id} v{version}"))
        })
    }

    async fn list_workflow_versions(
        &mut self,
        workflow_id: WorkflowId,
    ) -> StoreResult<Vec<WorkflowVersion>> {
        self.get_workflow(workflow_id).await?;
        Ok(sqlx::query_as(sql_fmt!(
            "SELECT {VERSION_COLUMNS} FROM workflow_versions WHERE workflow_id = $1
             ORDER BY version"
        ))
        .bind(workflow_id)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn duplicate_workflow(
        &mut self,
        id: WorkflowId,
        new_name: &str,
        owner: Option<UserId>,
    ) -> StoreResult<Workflow> {
        let source = self.get_workflow(id).await?;
        let copy = source.duplicate(new_name, owner, time::now())?;
        self.write_workflow(&copy, true).await?;
        let note = format!("duplicated from {} version {}", source.id, source.version);
        self.insert_version(&copy.version_row(Some(note), owner))
            .await?;
        Ok(copy)
    }

    async fn share_workflow(
        &mut self,
        workflow_id: WorkflowId,
        share: NewShare,
    ) -> StoreResult<WorkflowShare> {
        let row = share.into_row(workflow_id, time::now())?;
        self.get_workflow(workflow_id).await?;
        ensure_exists(&mut self.tx, "users", "user_id", row.user_id.map(|u| u.0)).await?;
        ensure_exists(&mut self.tx, "teams", "team_id", row.team_id.map(|u| u.0)).await?;
        ensure_exists(
            &mut self.tx,
            "users",
            "created_by",
            row.created_by.map(|u| u.0),
        )
        .await?;
        sqlx::query(sql!(
            "INSERT INTO workflow_shares (id, workflow_id, user_id, team_id, permission,
                created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(row.id)
        .bind(row.workflow_id)
        .bind(row.user_id)
        .bind(row.team_id)
        .bind(row.permission)
        .bind(row.created_by)
        .bind(ts(&row.created_at))
        .execute(&mut *self.tx)
        .await?;
        Ok(row)
    }

    async fn list_workflow_shares(
        &mut self,
        workflow_id: WorkflowId,
    ) -> StoreResult<Vec<WorkflowShare>> {
        Ok(sqlx::query_as(sql_fmt!(
            "SELECT {SHARE_COLUMNS} FROM workflow_shares WHERE workflow_id = $1 ORDER BY id"
        ))
        .bind(workflow_id)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn remove_workflow_share(&mut self, share_id: ShareId) -> StoreResult<()> {
        rows::delete_one(
            &mut self.tx,
            sql!("DELETE FROM workflow_shares WHERE id = $1"),
            "workflow share",
            share_id,
        )
        .await
    }

    async fn workflow_access(
        &mut self,
        workflow_id: WorkflowId,
        user_id: UserId,
        needed: SharePermission,
    ) -> StoreResult<bool> {
        let workflow = self.get_workflow(workflow_id).await?;
        let shares = self.list_workflow_shares(workflow_id).await?;
        let teams = self.user_team_ids(user_id).await?;
        Ok(can_access(&workflow, user_id, &teams, &shares, needed))
    }

    async fn list_visible_workflows(
        &mut self,
        user_id: UserId,
        page: &PageRequest,
    ) -> StoreResult<Page<Workflow>> {
        rows::page_with(
            &mut self.tx,
            &sql_owned(format!(
                "SELECT {} FROM workflows w
             WHERE (w.owner_id = $1
                OR w.visibility = 'public'
                OR (w.visibility = 'team' AND w.team_id IN
                    (SELECT team_id FROM team_members WHERE user_id = $1))
                OR EXISTS (SELECT 1 FROM workflow_shares s WHERE s.workflow_id = w.id
                    AND (s.user_id = $1 OR s.team_id IN
                        (SELECT team_id FROM team_members WHERE user_id = $1))))
               AND ($2::uuid IS NULL OR w.id < $2)
             ORDER BY w.id DESC LIMIT $3",
                qualified()
            )),
            page,
            |q, after, limit| q.bind(user_id).bind(after).bind(limit),
            |w: &Workflow| w.id.0,
        )
        .await
    }
}

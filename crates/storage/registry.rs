//! Storage for the handler registry, components and system metrics.

use std::time::Duration;

use async_trait::async_trait;
use flowstore_core::ids::ComponentId;
use flowstore_core::model::registry::{
    Component, ComponentHealth, ComponentPatch, ComponentRef, Handler, HandlerPatch, Heartbeat,
    NewComponent, NewHandler, NewSystemMetric, RegistryRepo, SystemMetric,
};
use flowstore_core::{time, Page, PageRequest, StoreError, StoreResult};

use crate::dialect::{sql, sql_fmt, sql_owned, ts, ts_opt, Tx};
use crate::rows;

const HANDLER_COLUMNS: &str = "id, handler_type, handler_name, handler_class, handler_path, \
     version, description, capabilities, configuration, is_active, registered_at, updated_at";

const COMPONENT_COLUMNS: &str = "id, name, type, status, version, configuration, endpoints, \
     health_check_url, health_status, last_health_check, performance_metrics, dependencies, \
     created_at, updated_at";

const METRIC_COLUMNS: &str =
    "id, metric_name, metric_value, metric_unit, component, labels, recorded_at";

impl Tx {
    /// The handler for `handler_type`; `lock` is `""` or `"FOR UPDATE"`, the latter
    /// for a read-modify-write so that concurrent patches do not lose each other.
    async fn handler_row(&mut self, handler_type: &str, lock: &str) -> StoreResult<Handler> {
        rows::one(
            &mut self.tx,
            &sql_owned(format!(
                "SELECT {HANDLER_COLUMNS} FROM handler_registry WHERE handler_type = $1 {lock}"
            )),
            "handler",
            handler_type,
        )
        .await
    }

    /// The component named by `which`; `lock` as for [`Self::handler_row`].
    async fn component_row(&mut self, which: ComponentRef, lock: &str) -> StoreResult<Component> {
        let query = match &which {
            ComponentRef::Id(id) => {
                sqlx::query_as(&sql_owned(format!(
                    "SELECT {COMPONENT_COLUMNS} FROM components WHERE id = $1 {lock}"
                )))
                .bind(*id)
                .fetch_optional(&mut *self.tx)
                .await
            }
            ComponentRef::Name(name) => {
                sqlx::query_as(&sql_owned(format!(
                    "SELECT {COMPONENT_COLUMNS} FROM components WHERE name = $1 {lock}"
                )))
                .bind(name)
                .fetch_optional(&mut *self.tx)
                .await
            }
        };
        query?.ok_or_else(|| StoreError::not_found("component", which))
    }

    async fn write_handler(&mut self, h: &Handler, insert: bool) -> StoreResult<()> {
        let statement = if insert {
            sql!(
                "INSERT INTO handler_registry (id, handler_type, handler_name, handler_class,
                handler_path, version, description, capabilities, configuration, is_active,
                registered_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            )
        } else {
            sql!(
                "UPDATE handler_registry SET handler_type = $2, handler_name = $3,
                handler_class = $4, handler_path = $5, version = $6, description = $7,
                capabilities = $8, configuration = $9, is_active = $10, updated_at = $12
             WHERE id = $1"
            )
        };
        sqlx::query(statement)
            .bind(h.id)
            .bind(&h.handler_type)
            .bind(&h.handler_name)
            .bind(&h.handler_class)
            .bind(&h.handler_path)
            .bind(&h.version)
            .bind(&h.description)
            .bind(&h.capabilities)
            .bind(&h.configuration)
            .bind(h.is_active)
            .bind(ts(&h.registered_at))
            .bind(ts(&h.updated_at))
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn write_component(&mut self, c: &Component, insert: bool) -> StoreResult<()> {
        let statement = if insert {
            sql!(
                "INSERT INTO components (id, name, type, status, version, configuration, endpoints,
                health_check_url, health_status, last_health_check, performance_metrics,
                dependencies, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
            )
        } else {
            sql!(
                "UPDATE components SET name = $2, type = $3, status = $4, version = $5,
                configuration = $6, endpoints = $7, health_check_url = $8, health_status = $9,
                last_health_check = $10, performance_metrics = $11, dependencies = $12,
                updated_at = $14
             WHERE id = $1"
            )
        };
        sqlx::query(statement)
            .bind(c.id)
            .bind(&c.name)
            .bind(&c.component_type)
            .bind(c.status)
            .bind(&c.version)
            .bind(&c.configuration)
            .bind(&c.endpoints)
            .bind(&c.health_check_url)
            .bind(c.health_status)
            .bind(ts_opt(&c.last_health_check))
            .bind(&c.performance_metrics)
            .bind(sqlx::types::Json(&c.dependencies))
            .bind(ts(&c.created_at))
            .bind(ts(&c.updated_at))
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl RegistryRepo for Tx {
    async fn register_handler(&mut self, new: NewHandler) -> StoreResult<Handler> {
        let row = new.into_row(time::now())?;
        self.write_handler(&row, true).await?;
        Ok(row)
    }

    async fn get_handler(&mut self, handler_type: &str) -> StoreResult<Handler> {
        self.handler_row(handler_type, "").await
    }

    async fn update_handler(
        &mut self,
        handler_type: &str,
        patch: HandlerPatch,
    ) -> StoreResult<Handler> {
        let current = self.handler_row(handler_type, "FOR UPDATE").await?;
        let row = patch.apply(&current, time::now())?;
        self.write_handler(&row, false).await?;
        Ok(row)
    }

    async fn deactivate_handler(&mut self, handler_type: &str) -> StoreResult<Handler> {
        let patch = HandlerPatch {
            is_active: Some(false),
            ..Default::default()
        };
        self.update_handler(handler_type, patch).await
    }

    async fn list_active_handlers(&mut self) -> StoreResult<Vec<Handler>> {
        Ok(sqlx::query_as(sql_fmt!(
            "SELECT {HANDLER_COLUMNS} FROM handler_registry WHERE is_active
             ORDER BY handler_type"
        ))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn list_handlers(&mut self, page: &PageRequest) -> StoreResult<Page<Handler>> {
        // By registration time: seed 000's clients register handlers with random IDs.
        rows::timed_page(
            &mut self.tx,
            sql_fmt!(
                "SELECT {HANDLER_COLUMNS} FROM handler_registry
             WHERE ($1::timestamptz IS NULL OR (registered_at, id) < ($1, $2::uuid))
             ORDER BY registered_at DESC, id DESC LIMIT $3"
            ),
            sql!("SELECT registered_at FROM handler_registry WHERE id = $1"),
            page,
            |h: &Handler| (h.registered_at, h.id.0),
        )
        .await
    }

    async fn register_component(&mut self, new: NewComponent) -> StoreResult<Component> {
        let row = new.into_row(time::now())?;
        self.write_component(&row, true).await?;
        Ok(row)
    }

    async fn get_component(&mut self, which: ComponentRef) -> StoreResult<Component> {
        self.component_row(which, "").await
    }

    async fn update_component(
        &mut self,
        id: ComponentId,
        patch: ComponentPatch,
    ) -> StoreResult<Component> {
        let current = self
            .component_row(ComponentRef::Id(id), "FOR UPDATE")
            .await?;
        let row = patch.apply(&current, time::now())?;
        self.write_component(&row, false).await?;
        Ok(row)
    }

    async fn heartbeat_component(
        &mut self,
        which: ComponentRef,
        beat: Heartbeat,
    ) -> StoreResult<Component> {
        let current = self.component_row(which, "FOR UPDATE").await?;
        let row = beat.apply(&current, time::now())?;
        self.write_component(&row, false).await?;
        Ok(row)
    }

    async fn component_health(
        &mut self,
        stale_after: Duration,
    ) -> StoreResult<Vec<ComponentHealth>> {
        let rows: Vec<Component> = sqlx::query_as(sql_fmt!(
            "SELECT {COMPONENT_COLUMNS} FROM components ORDER BY name"
        ))
        .fetch_all(&mut *self.tx)
        .await?;
        let now = time::now();
        Ok(rows
            .into_iter()
            .map(|c| ComponentHealth::assess(c, now, stale_after))
            .collect())
    }

    async fn list_components(&mut self, page: &PageRequest) -> StoreResult<Page<Component>> {
        rows::page(
            &mut self.tx,
            sql_fmt!(
                "SELECT {COMPONENT_COLUMNS} FROM components
             WHERE ($1::uuid IS NULL OR id < $1) ORDER BY id DESC LIMIT $2"
            ),
            page,
            |c: &Component| c.id.0,
        )
        .await
    }

    async fn delete_component(&mut self, id: ComponentId) -> StoreResult<()> {
        rows::delete_one(
            &mut self.tx,
            sql!("DELETE FROM components WHERE id = $1"),
            "component",
            id,
        )
        .await
    }

    async fn record_system_metric(&mut self, new: NewSystemMetric) -> StoreResult<SystemMetric> {
        let m = new.into_row(time::now())?;
        sqlx::query(sql!(
            "INSERT INTO system_metrics (id, metric_name, metric_value, metric_unit, component,
                labels, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(m.id)
        .bind(&m.metric_name)
        .bind(m.metric_value)
        .bind(&m.metric_unit)
        .bind(&m.component)
        .bind(&m.labels)
        .bind(ts(&m.recorded_at))
        .execute(&mut *self.tx)
        .await?;
        Ok(m)
    }

    async fn list_system_metrics(
        &mut self,
        name: &str,
        since: time::Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<SystemMetric>> {
        // The same bounds as a page size, so a caller cannot ask for everything.
        let limit = PageRequest::first(limit).limit()?;
        Ok(sqlx::query_as(sql_fmt!(
            "SELECT {METRIC_COLUMNS} FROM system_metrics
             WHERE metric_name = $1 AND recorded_at >= $2
             ORDER BY recorded_at, id LIMIT $3"
        ))
        .bind(name)
        .bind(ts(&since))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await?)
    }
}

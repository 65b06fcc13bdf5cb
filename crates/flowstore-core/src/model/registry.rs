//! The handler registry (seed 000), components with their health (seed 002) and
//! system metrics (their types are in `registry/component.rs`).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{ComponentId, HandlerId};
use crate::model::nullable;
use crate::time::Timestamp;
use crate::validate;
use crate::{Page, PageRequest, StoreResult};

mod component;

pub use component::{
    Component, ComponentHealth, ComponentPatch, ComponentRef, ComponentStatus, HealthStatus,
    Heartbeat, NewComponent, NewSystemMetric, SystemMetric,
};

/// A registered task handler, with seed 000's columns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Handler {
    /// Its ID.
    pub id: HandlerId,
    /// The task type it handles; unique.
    pub handler_type: String,
    /// Its human name.
    pub handler_name: String,
    /// The class that implements it.
    pub handler_class: Option<String>,
    /// Where its code lives.
    pub handler_path: Option<String>,
    /// Its version.
    pub version: Option<String>,
    /// What it does.
    pub description: Option<String>,
    /// What it can do (any JSON).
    pub capabilities: Option<Value>,
    /// Its settings (a JSON object).
    pub configuration: Option<Value>,
    /// Whether it takes work.
    pub is_active: bool,
    /// When it was registered.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub registered_at: Timestamp,
    /// When it last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// What a caller gives to register a handler.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewHandler {
    /// The task type; required, unique, at most 255 characters.
    pub handler_type: String,
    /// The human name; required, at most 255 characters.
    pub handler_name: String,
    /// The implementing class, at most 255 characters.
    pub handler_class: Option<String>,
    /// The code path, at most 500 characters.
    pub handler_path: Option<String>,
    /// The version, at most 50 characters.
    pub version: Option<String>,
    /// What it does.
    pub description: Option<String>,
    /// Capabilities (any JSON).
    pub capabilities: Option<Value>,
    /// Settings (a JSON object).
    pub configuration: Option<Value>,
    /// Whether it takes work; `true` when absent.
    pub is_active: Option<bool>,
}

patch_struct! {
    /// Changes to a handler: absent fields stay; `null` clears a nullable one.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct HandlerPatch {
        /// A new human name.
        pub handler_name: Option<String>,
        /// A new class, or `null`.
        #[serde(deserialize_with = "nullable")]
        pub handler_class: Option<Option<String>>,
        /// A new path, or `null`.
        #[serde(deserialize_with = "nullable")]
        pub handler_path: Option<Option<String>>,
        /// A new version, or `null`.
        #[serde(deserialize_with = "nullable")]
        pub version: Option<Option<String>>,
        /// A new description, or `null`.
        #[serde(deserialize_with = "nullable")]
        pub description: Option<Option<String>>,
        /// New capabilities, or `null`.
        #[serde(deserialize_with = "nullable")]
        pub capabilities: Option<Option<Value>>,
        /// New settings, or `null`.
        #[serde(deserialize_with = "nullable")]
        pub configuration: Option<Option<Value>>,
        /// Active or not.
        pub is_active: Option<bool>,
    }
}

impl NewHandler {
    /// Checks every field and builds the row to insert, stamped `now`.
    pub fn into_row(self, now: Timestamp) -> StoreResult<Handler> {
        let row = Handler {
            id: HandlerId::new(),
            handler_type: validate::required_text("handler_type", &self.handler_type, 255)?,
            handler_name: String::new(),
            handler_class: None,
            handler_path: None,
            version: None,
            description: None,
            capabilities: None,
            configuration: None,
            is_active: true,
            registered_at: now,
            updated_at: now,
        };
        HandlerPatch {
            handler_name: Some(self.handler_name),
            handler_class: Some(self.handler_class),
            handler_path: Some(self.handler_path),
            version: Some(self.version),
            description: Some(self.description),
            capabilities: Some(self.capabilities),
            configuration: Some(self.configuration),
            is_active: self.is_active,
        }
        .apply(&row, now)
    }
}

impl HandlerPatch {
    /// The handler as it is after this patch, every changed field checked.
    pub fn apply(self, current: &Handler, now: Timestamp) -> StoreResult<Handler> {
        let mut h = current.clone();
        if let Some(n) = self.handler_name {
            h.handler_name = validate::required_text("handler_name", &n, 255)?;
        }
        if let Some(c) = self.handler_class {
            h.handler_class = validate::optional_text("handler_class", c.as_deref(), 255)?;
        }
        if let Some(p) = self.handler_path {
            h.handler_path = validate::optional_text("handler_path", p.as_deref(), 500)?;
        }
        if let Some(v) = self.version {
            h.version = validate::optional_text("version", v.as_deref(), 50)?;
        }
        if let Some(d) = self.description {
            h.description = validate::free_text("description", d.as_deref())?;
        }
        if let Some(c) = self.capabilities {
            h.capabilities = validate::optional_json("capabilities", c)?;
        }
        if let Some(c) = self.configuration {
            h.configuration = validate::optional_object("configuration", c)?;
        }
        if let Some(a) = self.is_active {
            h.is_active = a;
        }
        h.updated_at = now;
        Ok(h)
    }
}

/// Storage operations on the handler registry, components and system metrics.
#[async_trait]
pub trait RegistryRepo: Send {
    /// Registers a handler. A taken `handler_type` is a conflict on `handler_type`.
    async fn register_handler(&mut self, new: NewHandler) -> StoreResult<Handler>;
    /// The handler for this task type.
    async fn get_handler(&mut self, handler_type: &str) -> StoreResult<Handler>;
    /// Applies a patch to the handler for this task type.
    async fn update_handler(
        &mut self,
        handler_type: &str,
        patch: HandlerPatch,
    ) -> StoreResult<Handler>;
    /// Marks the handler for this task type inactive.
    async fn deactivate_handler(&mut self, handler_type: &str) -> StoreResult<Handler>;
    /// Every active handler, ordered by task type.
    async fn list_active_handlers(&mut self) -> StoreResult<Vec<Handler>>;
    /// A page of every handler, newest first.
    async fn list_handlers(&mut self, page: &PageRequest) -> StoreResult<Page<Handler>>;

    /// Registers a component. A taken name is a conflict on `name`.
    async fn register_component(&mut self, new: NewComponent) -> StoreResult<Component>;
    /// The component with this ID or name.
    async fn get_component(&mut self, which: ComponentRef) -> StoreResult<Component>;
    /// Applies a patch to a component.
    async fn update_component(
        &mut self,
        id: ComponentId,
        patch: ComponentPatch,
    ) -> StoreResult<Component>;
    /// Records a heartbeat: the reported health, stamped now.
    async fn heartbeat_component(
        &mut self,
        which: ComponentRef,
        beat: Heartbeat,
    ) -> StoreResult<Component>;
    /// Every component, by name, with its effective health: a heartbeat older than
    /// `stale_after`, or none, counts as `unknown`.
    async fn component_health(
        &mut self,
        stale_after: Duration,
    ) -> StoreResult<Vec<ComponentHealth>>;
    /// A page of components, newest first.
    async fn list_components(&mut self, page: &PageRequest) -> StoreResult<Page<Component>>;
    /// Deletes a component.
    async fn delete_component(&mut self, id: ComponentId) -> StoreResult<()>;

    /// Records one system metric sample.
    async fn record_system_metric(&mut self, new: NewSystemMetric) -> StoreResult<SystemMetric>;
    /// Samples of `name` recorded at or after `since`, oldest first, at most `limit`
    /// (1..=1000).
    async fn list_system_metrics(
        &mut self,
        name: &str,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<SystemMetric>>;
}

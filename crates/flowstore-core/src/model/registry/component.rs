//! Components with their health (seed 002) and system metrics: the types of the
//! registry area beside handlers.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{ComponentId, MetricId};
use crate::model::nullable;
use crate::text_enum;
use crate::time::Timestamp;
use crate::validate;
use crate::{StoreError, StoreResult};

text_enum!(
    /// Whether a component is in service.
    ComponentStatus, "status" {
        /// In service.
        Active => "active",
        /// Out of service on purpose.
        Inactive => "inactive",
        /// Being worked on.
        Maintenance => "maintenance",
        /// Out of service because of a fault.
        Error => "error",
    }
);

text_enum!(
    /// How healthy a component says it is.
    HealthStatus, "health_status" {
        /// Working normally.
        Healthy => "healthy",
        /// Working, but not fully.
        Degraded => "degraded",
        /// Not working.
        Unhealthy => "unhealthy",
        /// Not known: never reported, or the last report is too old.
        Unknown => "unknown",
    }
);

/// A component of the system, with its last reported health.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Component {
    /// Its ID.
    pub id: ComponentId,
    /// Its name; unique.
    pub name: String,
    /// What kind of component it is.
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub component_type: String,
    /// Whether it is in service.
    pub status: ComponentStatus,
    /// Its version.
    pub version: Option<String>,
    /// Its settings (a JSON object).
    pub configuration: Value,
    /// Where it can be reached (a JSON object).
    pub endpoints: Value,
    /// Where its health can be checked.
    pub health_check_url: Option<String>,
    /// The health it last reported.
    pub health_status: HealthStatus,
    /// When it last reported (its last heartbeat).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_health_check: Option<Timestamp>,
    /// Figures it last reported (a JSON object).
    pub performance_metrics: Value,
    /// Names of the components it needs.
    #[sqlx(json)]
    pub dependencies: Vec<String>,
    /// When it was registered.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When it last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// What a caller gives to register a component.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewComponent {
    /// The name; required, unique, at most 255 characters.
    pub name: String,
    /// The kind; required, at most 100 characters.
    #[serde(rename = "type")]
    pub component_type: String,
    /// The status; `active` when absent.
    pub status: Option<ComponentStatus>,
    /// The version, at most 50 characters.
    pub version: Option<String>,
    /// Settings; `{}` when absent.
    pub configuration: Option<Value>,
    /// Endpoints; `{}` when absent.
    pub endpoints: Option<Value>,
    /// An http(s) URL to check its health.
    pub health_check_url: Option<String>,
    /// Names of the components it needs.
    #[serde(default)]
    pub dependencies: Vec<String>,
}

patch_struct! {
    /// Changes to a component: absent fields stay; `null` clears a nullable one.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct ComponentPatch {
        /// A new status.
        pub status: Option<ComponentStatus>,
        /// A new version, or `null`.
        #[serde(deserialize_with = "nullable")]
        pub version: Option<Option<String>>,
        /// New settings.
        pub configuration: Option<Value>,
        /// New endpoints.
        pub endpoints: Option<Value>,
        /// A new health check URL, or `null`.
        #[serde(deserialize_with = "nullable")]
        pub health_check_url: Option<Option<String>>,
        /// New dependencies (replacing the old ones).
        pub dependencies: Option<Vec<String>>,
    }
}

/// What a component reports when it checks in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ComponentHeartbeat))]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Its health now.
    pub health_status: HealthStatus,
    /// Its figures now (a JSON object); the old ones stay when absent.
    pub performance_metrics: Option<Value>,
}

/// Names a component by ID or by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ComponentRef {
    /// By ID.
    Id(ComponentId),
    /// By unique name.
    Name(String),
}

impl From<ComponentId> for ComponentRef {
    fn from(id: ComponentId) -> Self {
        ComponentRef::Id(id)
    }
}

impl From<&str> for ComponentRef {
    fn from(name: &str) -> Self {
        ComponentRef::Name(name.to_string())
    }
}

impl std::fmt::Display for ComponentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComponentRef::Id(id) => id.fmt(f),
            ComponentRef::Name(n) => f.write_str(n),
        }
    }
}

/// A component with the health it should be taken to have now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ComponentHealth {
    /// The component as stored.
    #[serde(flatten)]
    pub component: Component,
    /// Its reported health, or `unknown` when its last heartbeat is too old.
    pub effective_health: HealthStatus,
    /// Whether its last heartbeat is missing or older than the limit.
    pub stale: bool,
}

impl ComponentHealth {
    /// Judges `component` at `now`: a heartbeat older than `stale_after` (or none)
    /// means nothing is known, whatever it last said.
    pub fn assess(component: Component, now: Timestamp, stale_after: Duration) -> Self {
        let limit = chrono::TimeDelta::from_std(stale_after).unwrap_or(chrono::TimeDelta::MAX);
        let stale = match component.last_health_check {
            None => true,
            Some(t) => now.signed_duration_since(t) > limit,
        };
        let effective_health = if stale {
            HealthStatus::Unknown
        } else {
            component.health_status
        };
        ComponentHealth {
            component,
            effective_health,
            stale,
        }
    }
}

/// Checks a list of dependency names: each a valid name, no repeats, not `own`.
fn dependencies(own: &str, deps: Vec<String>) -> StoreResult<Vec<String>> {
    if deps.len() > 100 {
        return Err(StoreError::invalid(
            "dependencies",
            "at most 100 are allowed",
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(deps.len());
    for d in deps {
        let d = validate::required_text("dependencies", &d, 255)?;
        if d == own {
            return Err(StoreError::invalid(
                "dependencies",
                "a component cannot depend on itself",
            ));
        }
        if out.contains(&d) {
            return Err(StoreError::invalid(
                "dependencies",
                format!("{d:?} is repeated"),
            ));
        }
        out.push(d);
    }
    Ok(out)
}

impl NewComponent {
    /// Checks every field and builds the row to insert, stamped `now`.
    pub fn into_row(self, now: Timestamp) -> StoreResult<Component> {
        let row = Component {
            id: ComponentId::new(),
            name: validate::required_text("name", &self.name, 255)?,
            component_type: validate::required_text("type", &self.component_type, 100)?,
            status: ComponentStatus::Active,
            version: None,
            configuration: Value::Object(Default::default()),
            endpoints: Value::Object(Default::default()),
            health_check_url: None,
            health_status: HealthStatus::Unknown,
            last_health_check: None,
            performance_metrics: Value::Object(Default::default()),
            dependencies: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        ComponentPatch {
            status: self.status,
            version: Some(self.version),
            configuration: self.configuration,
            endpoints: self.endpoints,
            health_check_url: Some(self.health_check_url),
            dependencies: Some(self.dependencies),
        }
        .apply(&row, now)
    }
}

impl ComponentPatch {
    /// The component as it is after this patch, every changed field checked.
    pub fn apply(self, current: &Component, now: Timestamp) -> StoreResult<Component> {
        let mut c = current.clone();
        if let Some(s) = self.status {
            c.status = s;
        }
        if let Some(v) = self.version {
            c.version = validate::optional_text("version", v.as_deref(), 50)?;
        }
        if let Some(v) = self.configuration {
            c.configuration = validate::object("configuration", v)?;
        }
        if let Some(v) = self.endpoints {
            c.endpoints = validate::object("endpoints", v)?;
        }
        if let Some(u) = self.health_check_url {
            c.health_check_url =
                validate::optional_http_url("health_check_url", u.as_deref(), 1000)?;
        }
        if let Some(d) = self.dependencies {
            c.dependencies = dependencies(&c.name, d)?;
        }
        c.updated_at = now;
        Ok(c)
    }
}

impl Heartbeat {
    /// The component after this heartbeat, received at `now`.
    pub fn apply(self, current: &Component, now: Timestamp) -> StoreResult<Component> {
        let mut c = current.clone();
        if let Some(m) = self.performance_metrics {
            c.performance_metrics = validate::object("performance_metrics", m)?;
        }
        c.health_status = self.health_status;
        c.last_health_check = Some(now);
        c.updated_at = now;
        Ok(c)
    }
}

/// One sample of a system-wide metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SystemMetric {
    /// Its ID.
    pub id: MetricId,
    /// What is measured.
    pub metric_name: String,
    /// The value measured.
    pub metric_value: f64,
    /// Its unit.
    pub metric_unit: Option<String>,
    /// The component it concerns.
    pub component: Option<String>,
    /// Labels (a JSON object).
    pub labels: Value,
    /// When it was measured.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub recorded_at: Timestamp,
}

/// What a caller gives to record a system metric.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewSystemMetric {
    /// What is measured; required, at most 255 characters.
    pub metric_name: String,
    /// The value; must be finite.
    pub metric_value: f64,
    /// The unit, at most 50 characters.
    pub metric_unit: Option<String>,
    /// The component it concerns, at most 255 characters.
    pub component: Option<String>,
    /// Labels; `{}` when absent.
    pub labels: Option<Value>,
}

impl NewSystemMetric {
    /// Checks every field and builds the row to insert, measured at `now`.
    pub fn into_row(self, now: Timestamp) -> StoreResult<SystemMetric> {
        if !self.metric_value.is_finite() {
            return Err(StoreError::invalid(
                "metric_value",
                "must be a finite number",
            ));
        }
        let labels = validate::object_or_empty("labels", self.labels)?;
        Ok(SystemMetric {
            id: MetricId::new(),
            metric_name: validate::required_text("metric_name", &self.metric_name, 255)?,
            metric_value: self.metric_value,
            metric_unit: validate::optional_text("metric_unit", self.metric_unit.as_deref(), 50)?,
            component: validate::optional_text("component", self.component.as_deref(), 255)?,
            labels,
            recorded_at: now,
        })
    }
}

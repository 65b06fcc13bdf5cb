//! Typed identifiers. Each entity has its own ID type so that a task ID cannot be
//! passed where a project ID is expected. New IDs are time-ordered UUIDv7, which also
//! makes "order by id" mean "order by creation" for keyset pagination.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered identifier.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The UUID inside.
            pub fn uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        // In the OpenAPI document an ID is a UUID string, named after its type.
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .format(Some(utoipa::openapi::schema::SchemaFormat::Custom(
                        "uuid".into(),
                    )))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl FromStr for $name {
            type Err = crate::StoreError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| crate::StoreError::invalid(stringify!($name), format!("{s:?} is not a UUID")))
            }
        }
    };
}

id_type!(
    /// Identifies a user.
    UserId
);
id_type!(
    /// Identifies a team.
    TeamId
);
id_type!(
    /// Identifies a user session.
    SessionId
);
id_type!(
    /// Identifies an API key.
    ApiKeyId
);
id_type!(
    /// Identifies a notification.
    NotificationId
);
id_type!(
    /// Identifies a project.
    ProjectId
);
id_type!(
    /// Identifies a workflow.
    WorkflowId
);
id_type!(
    /// Identifies an immutable workflow version.
    WorkflowVersionId
);
id_type!(
    /// Identifies a workflow share.
    ShareId
);
id_type!(
    /// Identifies a run: a row of `workflow_executions`.
    RunId
);
id_type!(
    /// Identifies a task.
    TaskId
);
id_type!(
    /// Identifies one attempt at a task: a row of `task_executions`.
    AttemptId
);
id_type!(
    /// Identifies a metric sample.
    MetricId
);
id_type!(
    /// Identifies a handler registration.
    HandlerId
);
id_type!(
    /// Identifies a component.
    ComponentId
);
id_type!(
    /// Identifies a pull request.
    PullRequestId
);
id_type!(
    /// Identifies a log entry.
    LogId
);
id_type!(
    /// Identifies a configuration entry.
    ConfigurationId
);
id_type!(
    /// Identifies a credential.
    CredentialId
);
id_type!(
    /// Identifies a webhook.
    WebhookId
);
id_type!(
    /// Identifies an incoming webhook trigger.
    TriggerId
);
id_type!(
    /// Identifies a webhook delivery.
    DeliveryId
);
id_type!(
    /// Identifies an entry of the audit log.
    AuditEntryId
);

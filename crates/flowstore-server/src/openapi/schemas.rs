//! The schemas of the document's bodies, under the names the handlers' annotations
//! use (`doc::Project`, `doc::ProjectPage`, …). The model types derive
//! `utoipa::ToSchema` in flowstore-core (its `openapi` feature), so each schema is
//! generated from the very struct the handler serialises or deserialises: its
//! fields, their types, which are required, the accepted values of every enum, and
//! `additionalProperties: false` where unknown fields are refused.

use std::borrow::Cow;

use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

pub use flowstore_core::model::audit::{AuditEntry, ChainVerification};
pub use flowstore_core::model::engine::{ClaimedTask, Heartbeat, RunTask, StartedRun, Transition};
pub use flowstore_core::model::identity::{NewTeam, NewUser, Team, TeamMember, User};
pub use flowstore_core::model::identity_access::{ApiKey, NewApiKey, Notification, Session};
pub use flowstore_core::model::integration::{
    Credential, CredentialPatch, NewCredential, NewWebhook, Webhook, WebhookDelivery, WebhookPatch,
};
pub use flowstore_core::model::metric::{MetricAggregate, WorkflowMetric as Metric};
pub use flowstore_core::model::ops::{Configuration, LogEntry, NewLogEntry, SetConfiguration};
pub use flowstore_core::model::project::{NewProject, Project, ProjectPatch};
pub use flowstore_core::model::pull_request::{NewPullRequest, PullRequest};
pub use flowstore_core::model::registry::{
    Component, ComponentHealth, Handler, HandlerPatch, Heartbeat as ComponentHeartbeat,
    NewComponent, NewHandler,
};
pub use flowstore_core::model::run::{
    ExecutionPatch, ExecutionStatistics, NewExecution, WorkflowExecution as Run,
};
pub use flowstore_core::model::task::query::TaskProgress;
pub use flowstore_core::model::task::{NewTask, Task, TaskPatch};
pub use flowstore_core::model::trigger::{NewTrigger, Trigger, TriggerPatch};
pub use flowstore_core::model::workflow::{
    NewShare, NewWorkflow, Workflow, WorkflowPatch, WorkflowShare, WorkflowVersion,
};

/// Declares one named page schema per item type: `{items: [Item], next_cursor}`,
/// generated from `flowstore_core::Page<Item>` itself.
macro_rules! page_schemas {
    ($($name:ident => $item:ty),* $(,)?) => {
        $(
            #[doc = concat!("A page of `", stringify!($item), "`: its items and the cursor of the next page (null on the last).")]
            pub struct $name;
            impl PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    <flowstore_core::Page<$item> as PartialSchema>::schema()
                }
            }
            impl ToSchema for $name {
                fn name() -> Cow<'static, str> {
                    Cow::Borrowed(stringify!($name))
                }
                fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
                    <flowstore_core::Page<$item> as ToSchema>::schemas(out);
                }
            }
        )*
    };
}

page_schemas! {
    ProjectPage => Project,
    WorkflowPage => Workflow,
    RunPage => Run,
    TaskPage => Task,
    PullRequestPage => PullRequest,
    HandlerPage => Handler,
    ComponentPage => Component,
    LogEntryPage => LogEntry,
    ConfigurationPage => Configuration,
    UserPage => User,
    TeamPage => Team,
    NotificationPage => Notification,
    ApiKeyPage => ApiKey,
    CredentialPage => Credential,
    WebhookPage => Webhook,
    DeliveryPage => WebhookDelivery,
    TriggerPage => Trigger,
    ActiveTaskPage => flowstore_core::model::task::query::ActiveTask,
    PrValidationPage => flowstore_core::model::task::query::PrValidation,
    SystemMetricPage => flowstore_core::model::registry::SystemMetric,
    AuditEntryPage => AuditEntry,
}

/// Declares a schema written by hand for a body that has no Rust type of its own
/// (a `json!` answer, or one object or an array of them).
macro_rules! hand_schemas {
    ($($(#[$doc:meta])* $name:ident => $schema:expr),* $(,)?) => {
        $(
            $(#[$doc])*
            pub struct $name;
            impl PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    $schema
                }
            }
            impl ToSchema for $name {
                fn name() -> Cow<'static, str> {
                    Cow::Borrowed(stringify!($name))
                }
            }
        )*
    };
}

/// `{"field": <type>}` with the field required and no other.
fn one_field(field: &str, ty: Type, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .property(field, ObjectBuilder::new().schema_type(ty))
        .required(field)
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .description(Some(description))
        .into()
}

hand_schemas! {
    /// One log entry or an array of them (`NewLogEntry` is registered by the document).
    NewLogEntries => OneOfBuilder::new()
        .item(NewLogEntry::schema_ref())
        .item(ArrayBuilder::new().items(NewLogEntry::schema_ref()))
        .description(Some("One log entry, or an array of them."))
        .into(),
    /// The active handlers (an array), or with `all=true` a page of every handler
    /// (`HandlerPage` is registered by the document).
    HandlerList => OneOfBuilder::new()
        .item(ArrayBuilder::new().items(Handler::schema_ref()))
        .item(HandlerPage::schema_ref())
        .description(Some("The active handlers, or with `all=true` a page of every handler."))
        .into(),
    /// An OpenAPI 3.1 document (this one).
    OpenApiDocument => ObjectBuilder::new()
        .property("openapi", ObjectBuilder::new().schema_type(Type::String))
        .property("info", ObjectBuilder::new().schema_type(Type::Object))
        .property("paths", ObjectBuilder::new().schema_type(Type::Object))
        .required("openapi")
        .required("info")
        .required("paths")
        .additional_properties(Some(AdditionalProperties::FreeForm(true)))
        .description(Some("An OpenAPI 3.1 document."))
        .into(),
    /// `{"marked": n}`.
    Marked => one_field("marked", Type::Integer, "How many notifications were marked read."),
}

/// A `$ref` to a named schema.
trait SchemaRef: ToSchema {
    fn schema_ref() -> RefOr<Schema> {
        utoipa::openapi::Ref::from_schema_name(Self::name()).into()
    }
}

impl<T: ToSchema> SchemaRef for T {}

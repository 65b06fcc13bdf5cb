//! The path parameters that the handlers' OpenAPI annotations name, each declared
//! once: `params(in_path::Workflow)` documents `{id}` as a workflow ID. They only
//! document; the handlers extract the values with [`crate::error::Path`].

use utoipa::IntoParams;

/// Declares a path parameter `$param` (a string, described by `$description` when
/// given) as the IntoParams type `$name`.
macro_rules! path_param {
    ($(#[$meta:meta])* $name:ident { $param:ident $(: $description:literal)? }) => {
        $(#[$meta])*
        #[derive(IntoParams)]
        #[into_params(parameter_in = Path)]
        pub struct $name {
            $(#[doc = $description])?
            pub $param: String,
        }
    };
}

path_param!(
    /// `{id}`: a workflow.
    Workflow { id: "workflow ID" }
);
path_param!(
    /// `{id}`: a run.
    Run { id: "run ID" }
);
path_param!(
    /// `{id}`: a task.
    Task { id: "task ID" }
);
path_param!(
    /// `{id}`: a project.
    Project { id: "project ID" }
);
path_param!(
    /// `{id}`: a pull request.
    PullRequest { id: "pull request ID" }
);
path_param!(
    /// `{id}`: a team.
    Team { id: "team ID" }
);
path_param!(
    /// `{id}`: a user.
    User { id: "user ID" }
);
path_param!(
    /// `{id}`: a notification.
    Notification { id: "notification ID" }
);
path_param!(
    /// `{id}`: an API key.
    ApiKey { id: "API key ID" }
);
path_param!(
    /// `{which}`: a component, by ID or name.
    Component { which: "component ID or name" }
);
path_param!(
    /// `{id}`: a credential or a webhook.
    Id { id }
);
path_param!(
    /// `{handler_type}`: a handler.
    Handler { handler_type }
);
path_param!(
    /// `{execution_id}`: an execution (the caller's identifier of a run).
    Execution { execution_id }
);
path_param!(
    /// `{key}`: a configuration entry.
    Configuration { key }
);
path_param!(
    /// `{user_id}`: a member of a team.
    Member { user_id: "user ID" }
);
path_param!(
    /// `{id}`: an incoming webhook trigger.
    Trigger { id: "trigger ID" }
);
path_param!(
    /// `{token}`: a trigger's token, the secret last segment of its URL.
    HookToken { token: "the trigger's token" }
);

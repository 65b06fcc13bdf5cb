//! Sessions, API keys and notifications: the rest of the identity area (the trait is
//! [`crate::model::identity::SessionRepo`], [`crate::model::identity::ApiKeyRepo`] and
//! [`crate::model::identity::NotificationRepo`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crypto::{sha256_hex, SecretString};
use crate::ids::{ApiKeyId, NotificationId, SessionId, UserId};
use crate::model::identity::{random_alphanumeric, random_token, Role};
use crate::time::Timestamp;
use crate::validate;
use crate::{text_enum, StoreError, StoreResult};

text_enum!(
    /// What a notification is about.
    NotificationType, "type" {
        /// A run finished successfully.
        ExecutionCompleted => "execution_completed",
        /// A run failed.
        ExecutionFailed => "execution_failed",
        /// Someone shared a workflow with the user.
        WorkflowShared => "workflow_shared",
        /// The user was invited to a team.
        TeamInvite => "team_invite",
        /// Something the operators announce.
        SystemAlert => "system_alert",
        /// Something touching the account's security, such as a lockout.
        SecurityAlert => "security_alert",
        /// Anything else.
        Info => "info",
    }
);

/// A sign-in session as stored. The token's hash is never read into this type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    /// Its ID.
    pub id: SessionId,
    /// Whose session it is.
    pub user_id: UserId,
    /// The client's address when it signed in.
    pub ip_address: Option<String>,
    /// The client's user agent when it signed in.
    pub user_agent: Option<String>,
    /// When it stops being valid.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: Timestamp,
    /// When it was revoked.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub revoked_at: Option<Timestamp>,
    /// When it was last used.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_seen_at: Option<Timestamp>,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// What a caller gives to open a session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    /// Whose session it is; must exist.
    pub user_id: UserId,
    /// When it stops being valid; must be in the future.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: Timestamp,
    /// The client's address; at most 64 characters.
    pub ip_address: Option<String>,
    /// The client's user agent; at most 512 characters.
    pub user_agent: Option<String>,
}

/// A session just opened, with its token: the only time the token is available.
#[derive(Clone, Debug, PartialEq)]
pub struct CreatedSession {
    /// The bearer token to give the client.
    pub token: SecretString,
    /// The session as stored.
    pub session: Session,
}

impl NewSession {
    /// Checks every field and builds the row, a new token and the token's hash.
    pub fn into_parts(self, now: Timestamp) -> StoreResult<(Session, SecretString, String)> {
        if self.expires_at <= now {
            return Err(StoreError::invalid("expires_at", "must be in the future"));
        }
        let token = random_token();
        let hash = sha256_hex(&token);
        let row = Session {
            id: SessionId::new(),
            user_id: self.user_id,
            ip_address: validate::optional_text("ip_address", self.ip_address.as_deref(), 64)?,
            user_agent: validate::optional_text("user_agent", self.user_agent.as_deref(), 512)?,
            expires_at: crate::time::truncate(self.expires_at),
            revoked_at: None,
            last_seen_at: None,
            created_at: now,
        };
        Ok((row, SecretString::new(token), hash))
    }
}

text_enum!(
    /// What kind of request an API key may make, on top of its role. A key with no
    /// scopes may make every request its role allows; a key with scopes may make only
    /// the requests one of them grants (see [`Scope::grants`]).
    Scope, "scopes" {
        /// Reads (`GET`), the event stream included.
        Read => "read",
        /// Creates, changes and deletes objects; reads too.
        Write => "write",
        /// Starts and cancels runs and speaks the worker protocol; reads too.
        Execute => "execute",
        /// Admin-only operations; everything else too.
        Admin => "admin",
    }
);

impl Scope {
    /// Whether holding `self` allows a request that needs `needed`.
    pub fn grants(self, needed: Scope) -> bool {
        self == needed
            || self == Scope::Admin
            || (needed == Scope::Read && matches!(self, Scope::Write | Scope::Execute))
    }
}

/// The text every API key starts with.
pub const API_KEY_PREFIX: &str = "fsk_";

/// An API key as stored. The key's hash is never read into this type; `prefix` is the
/// visible part that lets people tell their keys apart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKey {
    /// Its ID.
    pub id: ApiKeyId,
    /// The user it acts for, if any.
    pub user_id: Option<UserId>,
    /// A name to recognise it by.
    pub name: String,
    /// The 8 random characters after `fsk_`, shown in lists.
    pub prefix: String,
    /// What the key may do.
    pub role: Role,
    /// What kinds of request it may make (`read`, `write`, `execute`, `admin`);
    /// empty: every request its role allows.
    #[sqlx(json)]
    pub scopes: Vec<String>,
    /// When it stops being valid, if ever.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<Timestamp>,
    /// When it was last used.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub revoked_at: Option<Timestamp>,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When it last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// What a caller gives to create an API key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// The user it acts for; must exist when given.
    pub user_id: Option<UserId>,
    /// A name; required, at most 200 characters.
    pub name: String,
    /// What it may do; `user` when absent.
    pub role: Option<Role>,
    /// What kinds of request it may make: any of `read`, `write`, `execute` and
    /// `admin`, no repeats; empty or absent: every request its role allows.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Scope>))]
    pub scopes: Vec<String>,
    /// When it stops being valid; must be in the future when given.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<Timestamp>,
}

/// Checks that every scope is one of [`Scope`]'s, without repeats.
fn check_scopes(scopes: &[String]) -> StoreResult<Vec<String>> {
    let scopes = validate::tags("scopes", scopes)?;
    for s in &scopes {
        s.parse::<Scope>()?;
    }
    Ok(scopes)
}

impl ApiKey {
    /// Whether the key's scopes allow a request that needs `needed`. A key without
    /// scopes is limited by its role alone; a scope no longer known grants nothing.
    pub fn allows(&self, needed: Scope) -> bool {
        self.scopes.is_empty()
            || self
                .scopes
                .iter()
                .filter_map(|s| s.parse::<Scope>().ok())
                .any(|s| s.grants(needed))
    }
}

/// An API key just created, with the key itself: the only time it is available.
#[derive(Clone, Debug, PartialEq)]
pub struct CreatedApiKey {
    /// The key to give the client: `fsk_<prefix>_<secret>`.
    pub key: SecretString,
    /// The key as stored.
    pub api_key: ApiKey,
}

impl NewApiKey {
    /// Checks every field and builds the row, a new key and the key's hash.
    pub fn into_parts(self, now: Timestamp) -> StoreResult<(ApiKey, SecretString, String)> {
        if matches!(self.expires_at, Some(t) if t <= now) {
            return Err(StoreError::invalid("expires_at", "must be in the future"));
        }
        let prefix = random_alphanumeric(8);
        let key = format!("{API_KEY_PREFIX}{prefix}_{}", random_alphanumeric(40));
        let hash = sha256_hex(&key);
        let row = ApiKey {
            id: ApiKeyId::new(),
            user_id: self.user_id,
            name: validate::required_text("name", &self.name, 200)?,
            prefix,
            role: self.role.unwrap_or(Role::User),
            scopes: check_scopes(&self.scopes)?,
            expires_at: self.expires_at.map(crate::time::truncate),
            last_used_at: None,
            revoked_at: None,
            created_at: now,
            updated_at: now,
        };
        Ok((row, SecretString::new(key), hash))
    }
}

/// A notification as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Notification {
    /// Its ID.
    pub id: NotificationId,
    /// Whom it is for.
    pub user_id: UserId,
    /// What it is about (the `type` column).
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: NotificationType,
    /// Its title.
    pub title: String,
    /// Its body.
    pub message: Option<String>,
    /// Details for the client (a JSON object).
    pub data: Value,
    /// Whether the user has read it.
    pub read: bool,
    /// When the user read it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub read_at: Option<Timestamp>,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// What a caller gives to create a notification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewNotification {
    /// Whom it is for; must exist.
    pub user_id: UserId,
    /// What it is about.
    #[serde(rename = "type")]
    pub kind: NotificationType,
    /// Its title; required, at most 500 characters.
    pub title: String,
    /// Its body.
    pub message: Option<String>,
    /// Details (a JSON object); `{}` when absent.
    pub data: Option<Value>,
}

impl NewNotification {
    /// Checks every field and builds the row to insert.
    pub fn into_row(self, now: Timestamp) -> StoreResult<Notification> {
        let data = validate::object_or_empty("data", self.data)?;
        Ok(Notification {
            id: NotificationId::new(),
            user_id: self.user_id,
            kind: self.kind,
            title: validate::required_text("title", &self.title, 500)?,
            message: validate::free_text("message", self.message.as_deref())?,
            data,
            read: false,
            read_at: None,
            created_at: now,
        })
    }
}

/// Filters for listing a user's notifications.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationFilter {
    /// Only those not read yet.
    #[serde(default)]
    pub unread_only: bool,
}

/// Which kinds of notification a user wants (`true`: told), one field per
/// [`NotificationType`]. A kind nobody chose for is wanted; security alerts always
/// are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationPreferences {
    /// A run of one's workflow finished successfully.
    pub execution_completed: bool,
    /// A run of one's workflow failed or timed out.
    pub execution_failed: bool,
    /// A workflow was shared with one or one's team.
    pub workflow_shared: bool,
    /// An invitation to a team.
    pub team_invite: bool,
    /// What the operators announce, and a credential of one's about to expire.
    pub system_alert: bool,
    /// The account's security (wrong passwords, a key revoked by someone else, the
    /// password changed): always `true`, it cannot be switched off.
    pub security_alert: bool,
    /// Anything else.
    pub info: bool,
}

impl NotificationPreferences {
    /// The preferences of a user who switched `off` off.
    pub fn with_off(off: &[NotificationType]) -> Self {
        let on = |k: NotificationType| k == NotificationType::SecurityAlert || !off.contains(&k);
        NotificationPreferences {
            execution_completed: on(NotificationType::ExecutionCompleted),
            execution_failed: on(NotificationType::ExecutionFailed),
            workflow_shared: on(NotificationType::WorkflowShared),
            team_invite: on(NotificationType::TeamInvite),
            system_alert: on(NotificationType::SystemAlert),
            security_alert: true,
            info: on(NotificationType::Info),
        }
    }
}

/// Changes to a user's notification preferences: absent kinds stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NotificationPreferencesPatch {
    /// Whether to be told of runs that finished successfully.
    pub execution_completed: Option<bool>,
    /// Whether to be told of runs that failed or timed out.
    pub execution_failed: Option<bool>,
    /// Whether to be told of workflows shared with one.
    pub workflow_shared: Option<bool>,
    /// Whether to be told of team invitations.
    pub team_invite: Option<bool>,
    /// Whether to be told of announcements and credentials about to expire.
    pub system_alert: Option<bool>,
    /// Only `true` is accepted: security alerts cannot be switched off.
    pub security_alert: Option<bool>,
    /// Whether to be told of anything else.
    pub info: Option<bool>,
}

impl NotificationPreferencesPatch {
    /// The kinds this patch sets, each with whether it is wanted; refuses switching
    /// security alerts off (invalid `security_alert`).
    pub fn changes(&self) -> StoreResult<Vec<(NotificationType, bool)>> {
        if self.security_alert == Some(false) {
            return Err(StoreError::invalid(
                "security_alert",
                "security alerts cannot be switched off",
            ));
        }
        Ok([
            (
                NotificationType::ExecutionCompleted,
                self.execution_completed,
            ),
            (NotificationType::ExecutionFailed, self.execution_failed),
            (NotificationType::WorkflowShared, self.workflow_shared),
            (NotificationType::TeamInvite, self.team_invite),
            (NotificationType::SystemAlert, self.system_alert),
            (NotificationType::SecurityAlert, self.security_alert),
            (NotificationType::Info, self.info),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect())
    }
}

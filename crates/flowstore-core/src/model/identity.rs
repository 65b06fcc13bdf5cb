//! The area of users, teams and their members, sessions, API keys and notifications
//! (seeds 002 and 004). Users and teams live here, with the repository trait; sessions,
//! API keys and notifications in [`crate::model::identity_access`].
//!
//! Secrets never travel in clear beyond the call that creates them: passwords are kept
//! as argon2id hashes, and reset/verification tokens, session tokens and API keys as
//! SHA-256 hashes, so a copy of the database does not let anyone sign in.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use async_trait::async_trait;
use chrono::TimeDelta;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::ids::{ApiKeyId, NotificationId, SessionId, TeamId, UserId};
use crate::model::identity_access::{
    ApiKey, CreatedApiKey, CreatedSession, NewApiKey, NewNotification, NewSession, Notification,
    NotificationFilter, NotificationType, Session,
};
use crate::model::nullable;
use crate::time::Timestamp;
use crate::validate;
use crate::{text_enum, Page, PageRequest, StoreError, StoreResult};

text_enum!(
    /// What a user (or an API key) may do across the installation.
    Role, "role" {
        /// Everything, including managing users.
        Admin => "admin",
        /// Create and run their own workflows.
        User => "user",
        /// Read only.
        Viewer => "viewer",
    }
);

impl Role {
    /// The role's place in the order viewer < user < admin.
    pub fn rank(self) -> u8 {
        match self {
            Role::Viewer => 0,
            Role::User => 1,
            Role::Admin => 2,
        }
    }

    /// This role, lowered to `cap` when `cap` is lesser: an API key acts with its
    /// own role, but never beyond its user's current one.
    pub fn at_most(self, cap: Role) -> Role {
        if cap.rank() < self.rank() {
            cap
        } else {
            self
        }
    }
}

text_enum!(
    /// Whether an account may sign in.
    UserStatus, "status" {
        /// May sign in.
        Active => "active",
        /// Switched off by its owner or an administrator.
        Inactive => "inactive",
        /// Switched off for cause.
        Suspended => "suspended",
        /// Created but the email address is not confirmed yet.
        PendingVerification => "pending_verification",
    }
);

text_enum!(
    /// A member's role within a team.
    TeamRole, "role" {
        /// Owns the team.
        Owner => "owner",
        /// Manages members.
        Admin => "admin",
        /// Works in the team.
        Member => "member",
        /// Reads only.
        Viewer => "viewer",
    }
);

/// How long a password-reset token stays usable.
pub const RESET_TOKEN_TTL: TimeDelta = TimeDelta::hours(1);
/// How long an email-verification token stays usable.
pub const VERIFICATION_TOKEN_TTL: TimeDelta = TimeDelta::hours(24);

/// A new email-verification token expiring at `expires_at`: the expiry in Unix
/// seconds, `-`, then a random token. Only the SHA-256 of the whole text is stored,
/// so the expiry cannot be changed without making the token unknown.
pub fn verification_token(expires_at: Timestamp) -> String {
    format!("{}-{}", expires_at.timestamp(), random_token())
}

/// Whether a verification token made by [`verification_token`] is still within its
/// expiry at `now`; one without a readable expiry never is.
pub fn verification_token_live(token: &str, now: Timestamp) -> bool {
    token
        .split_once('-')
        .and_then(|(secs, _)| secs.parse::<i64>().ok())
        .is_some_and(|secs| now.timestamp() < secs)
}
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted: hashing is deliberately slow, so the input is bounded.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// A user as stored. The password hash is never serialised; token hashes are not even
/// read into this type.
#[derive(Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// Its ID.
    pub id: UserId,
    /// The email address, trimmed and lowercased; unique.
    pub email: String,
    /// The name shown to others.
    pub display_name: Option<String>,
    /// The argon2id hash (PHC string) of the password, if one is set.
    #[serde(skip_serializing, default)]
    pub password_hash: Option<String>,
    /// What the user may do.
    pub role: Role,
    /// Whether the user may sign in.
    pub status: UserStatus,
    /// Wrong passwords in a row since the last successful sign-in (or unlock).
    pub failed_login_count: i32,
    /// Until when sign-in to the account is throttled, as last noted by a server that
    /// counted a wrong password. For information: the server's own throttle decides,
    /// and sessions and API keys keep working meanwhile.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub locked_until: Option<Timestamp>,
    /// When the email address was confirmed.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub email_verified_at: Option<Timestamp>,
    /// When the user last signed in.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_login_at: Option<Timestamp>,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When it last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

impl std::fmt::Debug for User {
    // Written by hand so that logs never carry the password hash.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("status", &self.status)
            .field("failed_login_count", &self.failed_login_count)
            .field("locked_until", &self.locked_until)
            .finish_non_exhaustive()
    }
}

/// What a caller gives to create a user.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// The email address; trimmed and lowercased, unique.
    pub email: String,
    /// The name shown to others; at most 200 characters.
    pub display_name: Option<String>,
    /// The password, as a caller gives it; none for accounts that sign in otherwise.
    /// [`NewUser::hashed`] turns it into [`NewUser::password_hash`] before the
    /// transaction opens: the store refuses a password still in clear.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Password))]
    pub password: Option<crate::crypto::SecretString>,
    /// The password's hash, as stored.
    #[serde(skip)]
    pub password_hash: Option<HashedPassword>,
    /// The role; `user` when absent.
    pub role: Option<Role>,
    /// The status; `active` when absent.
    pub status: Option<UserStatus>,
}

patch_struct! {
    /// Changes to a user: absent fields stay as they are; `null` clears a nullable one.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct UserPatch {
        /// A new display name, or `null` to clear it.
        #[serde(deserialize_with = "nullable")]
        pub display_name: Option<Option<String>>,
        /// A new role.
        pub role: Option<Role>,
        /// A new status.
        pub status: Option<UserStatus>,
    }
}

/// Filters for listing users.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserFilter {
    /// Only users with this role.
    pub role: Option<Role>,
    /// Only users with this status.
    pub status: Option<UserStatus>,
}

/// Checks and normalises an email address: trimmed, lowercased, one `@` between a
/// non-empty local part and a dotted domain, no whitespace, at most 320 characters.
pub fn normalize_email(email: &str) -> StoreResult<String> {
    let email = validate::required_text("email", email, 320)?.to_lowercase();
    let bad = || StoreError::invalid("email", "is not an email address");
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    let plausible = !local.is_empty()
        && local.chars().count() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if plausible {
        Ok(email)
    } else {
        Err(bad())
    }
}

/// An argon2id hash of a password: a PHC string carrying its salt and parameters.
/// Making one is slow on purpose (the crate's defaults: 19 MiB, 2 passes), so it is
/// made before a transaction opens, on a thread that may block; the store only
/// copies it.
#[derive(Clone, PartialEq, Eq)]
pub struct HashedPassword(String);

impl HashedPassword {
    /// Checks the password against the policy ([`crate::model::password_policy`]:
    /// length, common passwords, strength) and hashes it with a fresh random salt.
    pub fn new(password: &str) -> StoreResult<Self> {
        crate::model::password_policy::check(password)?;
        let mut salt = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt)
            .map_err(|e| StoreError::internal(format!("password salt: {e}")))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| HashedPassword(h.to_string()))
            .map_err(|e| StoreError::internal(format!("password hashing: {e}")))
    }

    /// The PHC string, as stored in `users.password_hash`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for HashedPassword {
    // Even a hash is kept out of logs: it can be attacked offline.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashedPassword(<redacted>)")
    }
}

/// Whether `password` matches the stored hash. Without a stored hash (an unknown
/// email, an account without a password) or with an unreadable one, it answers no
/// after the same work as a real check, so that the time taken does not tell which.
/// Slow on purpose: call it where blocking is allowed, outside any transaction.
pub fn check_password(stored: Option<&str>, password: &str) -> bool {
    // A hash made once per process; what it hashes is irrelevant.
    static DUMMY: std::sync::OnceLock<Option<HashedPassword>> = std::sync::OnceLock::new();
    let dummy = || {
        DUMMY
            .get_or_init(|| HashedPassword::new(&random_token()).ok())
            .as_ref()
            .map(|h| h.0.clone())
    };
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return false;
    }
    let parsed = stored.and_then(|h| PasswordHash::new(h).ok());
    match parsed {
        Some(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        None => {
            if let Some(d) = dummy() {
                if let Ok(parsed) = PasswordHash::new(&d) {
                    let _ = Argon2::default().verify_password(password.as_bytes(), &parsed);
                }
            }
            false
        }
    }
}

/// A new random token of 43 alphanumeric characters (about 256 bits).
pub fn random_token() -> String {
    random_alphanumeric(43)
}

/// `len` random ASCII letters and digits.
pub fn random_alphanumeric(len: usize) -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::thread_rng(), len)
}

impl User {
    /// Refuses a sign-in to an account that is not active (conflict on `status`).
    pub fn check_active(&self) -> StoreResult<()> {
        if self.status == UserStatus::Active {
            Ok(())
        } else {
            Err(StoreError::conflict(
                "status",
                format!("the account is {}", self.status),
            ))
        }
    }
}

impl NewUser {
    /// The same user with its clear password (if any) checked and hashed into
    /// `password_hash`. Slow on purpose: call it before the transaction opens, where
    /// blocking is allowed.
    pub fn hashed(mut self) -> StoreResult<Self> {
        if let Some(p) = self.password.take() {
            self.password_hash = Some(HashedPassword::new(p.expose())?);
        }
        Ok(self)
    }

    /// Checks every field and builds the row to insert. A password still in clear
    /// is refused: hashing it here would hold the transaction for its whole length.
    pub fn into_row(self, now: Timestamp) -> StoreResult<User> {
        if self.password.is_some() {
            return Err(StoreError::internal(
                "a new user's password must be hashed (NewUser::hashed) before the transaction",
            ));
        }
        let row = User {
            id: UserId::new(),
            email: normalize_email(&self.email)?,
            display_name: None,
            password_hash: self.password_hash.map(|h| h.0),
            role: Role::User,
            status: UserStatus::Active,
            failed_login_count: 0,
            locked_until: None,
            email_verified_at: None,
            last_login_at: None,
            created_at: now,
            updated_at: now,
        };
        UserPatch {
            display_name: Some(self.display_name),
            role: self.role,
            status: self.status,
        }
        .apply(&row, now)
    }
}

impl UserPatch {
    /// The user as it is after this patch, every changed field checked.
    pub fn apply(self, current: &User, now: Timestamp) -> StoreResult<User> {
        let mut u = current.clone();
        if let Some(d) = self.display_name {
            u.display_name = validate::optional_text("display_name", d.as_deref(), 200)?;
        }
        if let Some(r) = self.role {
            u.role = r;
        }
        if let Some(s) = self.status {
            u.status = s;
        }
        u.updated_at = now;
        Ok(u)
    }
}

/// A team as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Team {
    /// Its ID.
    pub id: TeamId,
    /// Its name, unique across the installation.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// The user who created it.
    pub created_by: Option<UserId>,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When it last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// What a caller gives to create a team.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewTeam {
    /// The name; required, unique, at most 200 characters.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// The user creating it.
    pub created_by: Option<UserId>,
}

impl NewTeam {
    /// Checks every field and builds the row to insert.
    pub fn into_row(self, now: Timestamp) -> StoreResult<Team> {
        Ok(Team {
            id: TeamId::new(),
            name: validate::required_text("name", &self.name, 200)?,
            description: validate::free_text("description", self.description.as_deref())?,
            created_by: self.created_by,
            created_at: now,
            updated_at: now,
        })
    }
}

/// A user's membership of a team.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TeamMember {
    /// The team.
    pub team_id: TeamId,
    /// The user.
    pub user_id: UserId,
    /// The user's role in the team.
    pub role: TeamRole,
    /// When the user joined.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// Storage operations on users: accounts, sign-in bookkeeping, passwords and their
/// reset and verification tokens. Every method runs on the caller's transaction.
#[async_trait]
pub trait UserRepo: Send {
    /// Creates a user. A taken email (whatever its case) is a conflict on `email`.
    async fn create_user(&mut self, new: NewUser) -> StoreResult<User>;
    /// The user with this ID.
    async fn get_user(&mut self, id: UserId) -> StoreResult<User>;
    /// The user with this email address (compared after normalising it).
    async fn get_user_by_email(&mut self, email: &str) -> StoreResult<User>;
    /// Applies a patch and returns the user as stored.
    async fn update_user(&mut self, id: UserId, patch: UserPatch) -> StoreResult<User>;
    /// Deletes a user with their memberships, sessions, API keys and notifications.
    async fn delete_user(&mut self, id: UserId) -> StoreResult<()>;
    /// A page of users, newest first.
    async fn list_users(
        &mut self,
        filter: &UserFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<User>>;
    /// Records a successful sign-in at `now`: the failure counter and `locked_until`
    /// are cleared and `last_login_at` set. Returns the user as stored.
    async fn record_login_success(&mut self, id: UserId, now: Timestamp) -> StoreResult<User>;
    /// Records one more wrong password at `now` (the counter grows in the database,
    /// so concurrent failures all count) and sets `locked_until` to
    /// `throttled_until` (none clears it). Returns the user as stored.
    async fn record_login_failure(
        &mut self,
        id: UserId,
        throttled_until: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreResult<User>;
    /// Clears the failure counter and `locked_until` (an admin lifting a throttle);
    /// sessions are untouched. Returns the user as stored.
    async fn unlock_user(&mut self, id: UserId, now: Timestamp) -> StoreResult<User>;
    /// Sets a new password (hashed beforehand), clears the failure counter and
    /// lock, and revokes every live session of the user but `keep` (the session
    /// that asked for the change, which stays signed in).
    async fn set_password(
        &mut self,
        id: UserId,
        new_password: &HashedPassword,
        keep: Option<SessionId>,
        now: Timestamp,
    ) -> StoreResult<User>;
    /// How many active admin users there are. On PostgreSQL their rows stay locked
    /// until the transaction ends, so that two transactions cannot each demote or
    /// remove one of the last two admins.
    async fn count_active_admins(&mut self) -> StoreResult<u64>;
    /// Issues a password-reset token valid for [`RESET_TOKEN_TTL`] from `now`,
    /// replacing any earlier one. Only its hash is stored; the token is returned once.
    async fn issue_reset_token(&mut self, id: UserId, now: Timestamp) -> StoreResult<String>;
    /// Sets a new password (hashed beforehand) with a reset token, which is
    /// consumed. An unknown, used or expired token is invalid `token`. The account is
    /// unlocked and every session of the user is revoked.
    async fn reset_password(
        &mut self,
        token: &str,
        new_password: &HashedPassword,
        now: Timestamp,
    ) -> StoreResult<User>;
    /// Issues an email-verification token valid for [`VERIFICATION_TOKEN_TTL`] from
    /// `now`, replacing any earlier one; returned once, only its hash is stored. The
    /// token carries its expiry ([`verification_token`]), which the hash covers.
    async fn issue_verification_token(&mut self, id: UserId, now: Timestamp)
        -> StoreResult<String>;
    /// Confirms the email address with a verification token, which is consumed; a
    /// pending account becomes active. An unknown, used or expired token is invalid
    /// `token`.
    async fn verify_email(&mut self, token: &str, now: Timestamp) -> StoreResult<User>;
}

/// Storage operations on teams and their members.
#[async_trait]
pub trait TeamRepo: Send {
    /// Creates a team. A taken name is a conflict on `name`.
    async fn create_team(&mut self, new: NewTeam) -> StoreResult<Team>;
    /// The team with this ID.
    async fn get_team(&mut self, id: TeamId) -> StoreResult<Team>;
    /// A page of teams, newest first.
    async fn list_teams(&mut self, page: &PageRequest) -> StoreResult<Page<Team>>;
    /// Deletes a team and its memberships.
    async fn delete_team(&mut self, id: TeamId) -> StoreResult<()>;
    /// Adds a user to a team. Already a member is a conflict on `team_id, user_id`.
    async fn add_team_member(
        &mut self,
        team_id: TeamId,
        user_id: UserId,
        role: TeamRole,
    ) -> StoreResult<TeamMember>;
    /// Changes a member's role.
    async fn update_team_member(
        &mut self,
        team_id: TeamId,
        user_id: UserId,
        role: TeamRole,
    ) -> StoreResult<TeamMember>;
    /// Removes a user from a team.
    async fn remove_team_member(&mut self, team_id: TeamId, user_id: UserId) -> StoreResult<()>;
    /// The members of a team, in the order they joined.
    async fn list_team_members(&mut self, team_id: TeamId) -> StoreResult<Vec<TeamMember>>;
    /// The teams a user belongs to, by name.
    async fn list_user_teams(&mut self, user_id: UserId) -> StoreResult<Vec<Team>>;
}

/// Storage operations on sign-in sessions (only their tokens' hashes are stored).
#[async_trait]
pub trait SessionRepo: Send {
    /// Opens a session; the token is returned once and only its hash is stored.
    async fn create_session(&mut self, new: NewSession) -> StoreResult<CreatedSession>;
    /// The session this token opens, if it is neither expired at `now` nor revoked.
    async fn find_session(&mut self, token: &str, now: Timestamp) -> StoreResult<Session>;
    /// Records that the session was used at `now`.
    async fn touch_session(&mut self, id: SessionId, now: Timestamp) -> StoreResult<()>;
    /// Revokes a session (revoking it again keeps the first instant).
    async fn revoke_session(&mut self, id: SessionId, now: Timestamp) -> StoreResult<()>;
    /// Revokes every live session of a user; returns how many.
    async fn revoke_user_sessions(&mut self, user_id: UserId, now: Timestamp) -> StoreResult<u64>;
    /// Deletes sessions that can no longer be used (expired at `now` or revoked);
    /// returns how many.
    async fn delete_expired_sessions(&mut self, now: Timestamp) -> StoreResult<u64>;
}

/// Storage operations on API keys (only their secrets' hashes are stored).
#[async_trait]
pub trait ApiKeyRepo: Send {
    /// Creates an API key; the key is returned once and only its hash is stored.
    async fn create_api_key(&mut self, new: NewApiKey) -> StoreResult<CreatedApiKey>;
    /// The API key with this ID (revoked or not).
    async fn get_api_key(&mut self, id: ApiKeyId) -> StoreResult<ApiKey>;
    /// The key presented by a client, if it is neither revoked nor expired at `now`
    /// and its user (if it has one) is active: switching a user off switches off
    /// their keys too.
    async fn find_api_key(&mut self, presented: &str, now: Timestamp) -> StoreResult<ApiKey>;
    /// A page of a user's API keys, newest first.
    async fn list_api_keys(
        &mut self,
        user_id: UserId,
        page: &PageRequest,
    ) -> StoreResult<Page<ApiKey>>;
    /// Revokes an API key (revoking it again keeps the first instant).
    async fn revoke_api_key(&mut self, id: ApiKeyId, now: Timestamp) -> StoreResult<()>;
    /// Records that the key was used at `now`.
    async fn touch_api_key(&mut self, id: ApiKeyId, now: Timestamp) -> StoreResult<()>;
    /// How many API keys exist, revoked and expired ones included (the server
    /// creates a bootstrap admin key only when there are none). Other transactions'
    /// counts and key writes wait until this transaction ends, so that of several
    /// servers starting at once on an empty database exactly one makes the key
    /// (SQLite's single writer gives that by itself).
    async fn count_api_keys(&mut self) -> StoreResult<u64>;
}

/// Storage operations on users' notifications.
#[async_trait]
pub trait NotificationRepo: Send {
    /// Creates a notification for an existing user (else invalid `user_id`).
    async fn create_notification(&mut self, new: NewNotification) -> StoreResult<Notification>;
    /// A page of a user's notifications, newest first.
    async fn list_notifications(
        &mut self,
        user_id: UserId,
        filter: &NotificationFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Notification>>;
    /// Marks a notification read at `now` (already read keeps its first instant).
    async fn mark_notification_read(
        &mut self,
        id: NotificationId,
        now: Timestamp,
    ) -> StoreResult<Notification>;
    /// Marks every unread notification of a user read; returns how many.
    async fn mark_all_notifications_read(
        &mut self,
        user_id: UserId,
        now: Timestamp,
    ) -> StoreResult<u64>;
    /// How many unread notifications a user has.
    async fn unread_notification_count(&mut self, user_id: UserId) -> StoreResult<u64>;
    /// The notification with this ID.
    async fn get_notification(&mut self, id: NotificationId) -> StoreResult<Notification>;
    /// Deletes a notification.
    async fn delete_notification(&mut self, id: NotificationId) -> StoreResult<()>;
    /// The notification types a user switched off, by name.
    async fn notification_types_off(
        &mut self,
        user_id: UserId,
    ) -> StoreResult<Vec<NotificationType>>;
    /// Records whether a user wants notifications of `kind`. Security alerts cannot
    /// be switched off (invalid `security_alert`); an unknown user is invalid
    /// `user_id`.
    async fn set_notification_preference(
        &mut self,
        user_id: UserId,
        kind: NotificationType,
        enabled: bool,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Whether a user wants notifications of `kind`: yes unless they switched that
    /// kind off; security alerts always. The producers of [`crate::model::notify`]
    /// ask before they write one.
    async fn wants_notification(
        &mut self,
        user_id: UserId,
        kind: NotificationType,
    ) -> StoreResult<bool>;
    /// A user's notifications created at `since` or later with IDs above `after`,
    /// oldest first by ID, at most `limit`: what a user's stream reads.
    async fn notifications_since(
        &mut self,
        user_id: UserId,
        since: Timestamp,
        after: Option<NotificationId>,
        limit: u32,
    ) -> StoreResult<Vec<Notification>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_tokens_carry_their_expiry() {
        let now = crate::time::now();
        let token = verification_token(now + VERIFICATION_TOKEN_TTL);
        assert!(verification_token_live(&token, now));
        assert!(verification_token_live(&token, now + TimeDelta::hours(23)));
        assert!(!verification_token_live(&token, now + TimeDelta::hours(25)));
        assert!(!verification_token_live("no-expiry", now));
        assert!(!verification_token_live(&random_token(), now));
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(normalize_email(" A@X.io ").unwrap(), "a@x.io");
        for bad in [
            "", "plain", "@x.io", "a@", "a@x", "a@.io", "a b@x.io", "a@x..io",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?} is refused");
        }
    }

    #[test]
    fn passwords_hash_and_verify() {
        let hash = HashedPassword::new("correct horse battery").unwrap();
        assert!(hash.as_str().starts_with("$argon2id$"));
        assert!(check_password(Some(hash.as_str()), "correct horse battery"));
        assert!(!check_password(Some(hash.as_str()), "wrong horse battery"));
        assert!(HashedPassword::new("short").is_err());
        assert!(HashedPassword::new("password1").is_err());
        assert!(!check_password(Some("garbage"), "x"));
        assert!(!check_password(None, "correct horse battery"));
        assert_eq!(format!("{hash:?}"), "HashedPassword(<redacted>)");
    }

    #[test]
    fn a_new_user_is_hashed_before_it_is_stored() {
        let new = NewUser {
            email: "a@x.io".into(),
            password: Some(crate::crypto::SecretString::new("correct horse battery")),
            ..Default::default()
        };
        let now = crate::time::now();
        assert!(matches!(
            new.clone().into_row(now),
            Err(StoreError::Internal(_))
        ));
        let row = new.hashed().unwrap().into_row(now).unwrap();
        assert!(check_password(
            row.password_hash.as_deref(),
            "correct horse battery"
        ));
        let short = NewUser {
            email: "a@x.io".into(),
            password: Some(crate::crypto::SecretString::new("short")),
            ..Default::default()
        };
        assert!(
            matches!(short.hashed(), Err(StoreError::Invalid { field, .. }) if field == "password")
        );
    }
}

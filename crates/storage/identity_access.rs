//! Storage for sign-in sessions ([`SessionRepo`]), API keys ([`ApiKeyRepo`]) and
//! notifications ([`NotificationRepo`]).

use async_trait::async_trait;
use flowstore_core::crypto::sha256_hex;
use flowstore_core::ids::{ApiKeyId, NotificationId, SessionId, UserId};
use flowstore_core::model::identity::{ApiKeyRepo, NotificationRepo, Role, SessionRepo};
use flowstore_core::model::identity_access::{
    ApiKey, CreatedApiKey, CreatedSession, NewApiKey, NewNotification, NewSession, Notification,
    NotificationFilter, NotificationType, Session,
};
use flowstore_core::time::Timestamp;
use flowstore_core::{time, Page, PageRequest, StoreError, StoreResult};
use sqlx::types::Json;

use crate::dialect::{ensure_exists, exclusive, sql, sql_fmt, sql_owned, ts, ts_opt, Tx};
use crate::rows;

const SESSION_COLUMNS: &str =
    "id, user_id, ip_address, user_agent, expires_at, revoked_at, last_seen_at, created_at";
const API_KEY_COLUMNS: &str = "id, user_id, name, prefix, role, scopes, expires_at, \
                               last_used_at, revoked_at, created_at, updated_at";
const NOTIFICATION_COLUMNS: &str =
    "id, user_id, type, title, message, data, read, read_at, created_at";

/// The key of the lock that makes one bootstrap key of concurrent starts ("fsapikey").
const API_KEYS_LOCK: i64 = 0x6673_6170_696b_6579;

impl Tx {
    /// Sets one instant column of a session (`assignment` uses `$2` for `now`).
    pub(crate) async fn set_session_time(
        &mut self,
        id: SessionId,
        assignment: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        let done = sqlx::query(&sql_owned(format!(
            "UPDATE user_sessions SET {assignment} WHERE id = $1"
        )))
        .bind(id)
        .bind(ts(&now))
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("session", id));
        }
        Ok(())
    }

    /// Sets one instant column of an API key (`assignment` uses `$2` for `now`), and
    /// `updated_at`, so that the trigger does not stamp the database's clock instead.
    pub(crate) async fn set_api_key_time(
        &mut self,
        id: ApiKeyId,
        assignment: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        let done = sqlx::query(&sql_owned(format!(
            "UPDATE api_keys SET {assignment}, updated_at = $2 WHERE id = $1"
        )))
        .bind(id)
        .bind(ts(&now))
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("API key", id));
        }
        Ok(())
    }
}

#[async_trait]
impl SessionRepo for Tx {
    async fn create_session(&mut self, new: NewSession) -> StoreResult<CreatedSession> {
        let (s, token, hash) = new.into_parts(time::now())?;
        ensure_exists(&mut self.tx, "users", "user_id", Some(s.user_id.0)).await?;
        sqlx::query(sql!(
            "INSERT INTO user_sessions (id, user_id, token_hash, ip_address, user_agent,
                expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(s.id)
        .bind(s.user_id)
        .bind(&hash)
        .bind(&s.ip_address)
        .bind(&s.user_agent)
        .bind(ts(&s.expires_at))
        .bind(ts(&s.created_at))
        .execute(&mut *self.tx)
        .await?;
        Ok(CreatedSession { token, session: s })
    }

    async fn find_session(&mut self, token: &str, now: Timestamp) -> StoreResult<Session> {
        sqlx::query_as(sql_fmt!(
            "SELECT {SESSION_COLUMNS} FROM user_sessions
             WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2"
        ))
        .bind(sha256_hex(token))
        .bind(ts(&now))
        .fetch_optional(&mut *self.tx)
        .await?
        // The token itself never goes into an error message.
        .ok_or_else(|| StoreError::not_found("session", "for the token presented"))
    }

    async fn revoke_user_sessions(&mut self, user_id: UserId, now: Timestamp) -> StoreResult<u64> {
        let done = sqlx::query(sql!(
            "UPDATE user_sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL"
        ))
        .bind(user_id)
        .bind(ts(&now))
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected())
    }

    async fn delete_expired_sessions(&mut self, now: Timestamp) -> StoreResult<u64> {
        let done = sqlx::query(sql!(
            "DELETE FROM user_sessions WHERE expires_at <= $1 OR revoked_at IS NOT NULL"
        ))
        .bind(ts(&now))
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected())
    }

    async fn touch_session(&mut self, id: SessionId, now: Timestamp) -> StoreResult<()> {
        self.set_session_time(id, "last_seen_at = $2", now).await
    }

    async fn revoke_session(&mut self, id: SessionId, now: Timestamp) -> StoreResult<()> {
        self.set_session_time(id, "revoked_at = COALESCE(revoked_at, $2)", now)
            .await
    }
}

#[async_trait]
impl ApiKeyRepo for Tx {
    async fn create_api_key(&mut self, new: NewApiKey) -> StoreResult<CreatedApiKey> {
        let (k, key, hash) = new.into_parts(time::now())?;
        ensure_exists(&mut self.tx, "users", "user_id", k.user_id.map(|u| u.0)).await?;
        sqlx::query(sql!(
            "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, role, scopes,
                expires_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(k.id)
        .bind(k.user_id)
        .bind(&k.name)
        .bind(&k.prefix)
        .bind(&hash)
        .bind(k.role)
        .bind(Json(&k.scopes))
        .bind(ts_opt(&k.expires_at))
        .bind(ts(&k.created_at))
        .bind(ts(&k.updated_at))
        .execute(&mut *self.tx)
        .await?;
        Ok(CreatedApiKey { key, api_key: k })
    }

    async fn get_api_key(&mut self, id: ApiKeyId) -> StoreResult<ApiKey> {
        rows::one(
            &mut self.tx,
            sql_fmt!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = $1"),
            "API key",
            id,
        )
        .await
    }

    async fn find_api_key(&mut self, presented: &str, now: Timestamp) -> StoreResult<ApiKey> {
        let mut key: ApiKey = sqlx::query_as(sql_fmt!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys
             WHERE key_hash = $1 AND revoked_at IS NULL
               AND (expires_at IS NULL OR expires_at > $2)
               AND (user_id IS NULL OR EXISTS (
                    SELECT 1 FROM users u WHERE u.id = api_keys.user_id AND u.status = 'active'))"
        ))
        .bind(sha256_hex(presented))
        .bind(ts(&now))
        .fetch_optional(&mut *self.tx)
        .await?
        // The key itself never goes into an error message.
        .ok_or_else(|| StoreError::not_found("API key", "for the key presented"))?;
        if let Some(user) = key.user_id {
            // A key never does more than its user may do now (a demoted user's admin
            // key acts as the user's new role).
            let role: Role = sqlx::query_scalar(sql!("SELECT role FROM users WHERE id = $1"))
                .bind(user)
                .fetch_one(&mut *self.tx)
                .await?;
            key.role = key.role.at_most(role);
        }
        Ok(key)
    }

    async fn list_api_keys(
        &mut self,
        user_id: UserId,
        page: &PageRequest,
    ) -> StoreResult<Page<ApiKey>> {
        rows::page_with(
            &mut self.tx,
            sql_fmt!(
                "SELECT {API_KEY_COLUMNS} FROM api_keys
             WHERE user_id = $1 AND ($2::uuid IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3"
            ),
            page,
            |q, after, limit| q.bind(user_id).bind(after).bind(limit),
            |k: &ApiKey| k.id.0,
        )
        .await
    }

    async fn count_api_keys(&mut self) -> StoreResult<u64> {
        // Held to the end of the transaction: two servers starting at once on an
        // empty database would otherwise both count none and both make a bootstrap
        // key.
        exclusive(&mut self.tx, API_KEYS_LOCK).await?;
        let n: i64 = sqlx::query_scalar(sql!("SELECT COUNT(*) FROM api_keys"))
            .fetch_one(&mut *self.tx)
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn revoke_api_key(&mut self, id: ApiKeyId, now: Timestamp) -> StoreResult<()> {
        self.set_api_key_time(id, "revoked_at = COALESCE(revoked_at, $2)", now)
            .await
    }

    async fn touch_api_key(&mut self, id: ApiKeyId, now: Timestamp) -> StoreResult<()> {
        self.set_api_key_time(id, "last_used_at = $2", now).await
    }
}

#[async_trait]
impl NotificationRepo for Tx {
    async fn create_notification(&mut self, new: NewNotification) -> StoreResult<Notification> {
        let n = new.into_row(time::now())?;
        ensure_exists(&mut self.tx, "users", "user_id", Some(n.user_id.0)).await?;
        sqlx::query(sql!(
            "INSERT INTO notifications (id, user_id, type, title, message, data, read, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(n.id)
        .bind(n.user_id)
        .bind(n.kind)
        .bind(&n.title)
        .bind(&n.message)
        .bind(&n.data)
        .bind(n.read)
        .bind(ts(&n.created_at))
        .execute(&mut *self.tx)
        .await?;
        Ok(n)
    }

    async fn list_notifications(
        &mut self,
        user_id: UserId,
        filter: &NotificationFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Notification>> {
        rows::page_with(
            &mut self.tx,
            sql_fmt!(
                "SELECT {NOTIFICATION_COLUMNS} FROM notifications
             WHERE user_id = $1 AND ($2 = false OR NOT read) AND ($3::uuid IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4"
            ),
            page,
            |q, after, limit| {
                q.bind(user_id)
                    .bind(filter.unread_only)
                    .bind(after)
                    .bind(limit)
            },
            |n: &Notification| n.id.0,
        )
        .await
    }

    async fn mark_notification_read(
        &mut self,
        id: NotificationId,
        now: Timestamp,
    ) -> StoreResult<Notification> {
        sqlx::query(sql!(
            "UPDATE notifications SET read = $2, read_at = COALESCE(read_at, $3) WHERE id = $1"
        ))
        .bind(id)
        .bind(true)
        .bind(ts(&now))
        .execute(&mut *self.tx)
        .await?;
        self.get_notification(id).await
    }

    async fn mark_all_notifications_read(
        &mut self,
        user_id: UserId,
        now: Timestamp,
    ) -> StoreResult<u64> {
        let done = sqlx::query(sql!(
            "UPDATE notifications SET read = $2, read_at = $3 WHERE user_id = $1 AND NOT read"
        ))
        .bind(user_id)
        .bind(true)
        .bind(ts(&now))
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected())
    }

    async fn unread_notification_count(&mut self, user_id: UserId) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(sql!(
            "SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND NOT read"
        ))
        .bind(user_id)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(n.max(0) as u64)
    }

    async fn get_notification(&mut self, id: NotificationId) -> StoreResult<Notification> {
        rows::one(
            &mut self.tx,
            sql_fmt!("SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE id = $1"),
            "notification",
            id,
        )
        .await
    }

    async fn delete_notification(&mut self, id: NotificationId) -> StoreResult<()> {
        rows::delete_one(
            &mut self.tx,
            sql!("DELETE FROM notifications WHERE id = $1"),
            "notification",
            id,
        )
        .await
    }

    async fn notification_types_off(
        &mut self,
        user_id: UserId,
    ) -> StoreResult<Vec<NotificationType>> {
        Ok(sqlx::query_scalar(sql!(
            "SELECT type FROM notification_preferences WHERE user_id = $1 AND enabled = $2
             ORDER BY type"
        ))
        .bind(user_id)
        .bind(false)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn set_notification_preference(
        &mut self,
        user_id: UserId,
        kind: NotificationType,
        enabled: bool,
        now: Timestamp,
    ) -> StoreResult<()> {
        if kind == NotificationType::SecurityAlert && !enabled {
            return Err(StoreError::invalid(
                "security_alert",
                "security alerts cannot be switched off",
            ));
        }
        ensure_exists(&mut self.tx, "users", "user_id", Some(user_id.0)).await?;
        sqlx::query(sql!(
            "INSERT INTO notification_preferences (user_id, type, enabled, updated_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, type)
             DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at"
        ))
        .bind(user_id)
        .bind(kind)
        .bind(enabled)
        .bind(ts(&now))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn wants_notification(
        &mut self,
        user_id: UserId,
        kind: NotificationType,
    ) -> StoreResult<bool> {
        if kind == NotificationType::SecurityAlert {
            return Ok(true);
        }
        let enabled: Option<bool> = sqlx::query_scalar(sql!(
            "SELECT enabled FROM notification_preferences WHERE user_id = $1 AND type = $2"
        ))
        .bind(user_id)
        .bind(kind)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(enabled.unwrap_or(true))
    }

    async fn notifications_since(
        &mut self,
        user_id: UserId,
        since: Timestamp,
        after: Option<NotificationId>,
        limit: u32,
    ) -> StoreResult<Vec<Notification>> {
        // Notifications have time-ordered (v7) IDs: the lowest ID of `since`'s second
        // makes the window a range of the user's index; `created_at` keeps it exact.
        let lowest = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            since.timestamp().max(0) as u64,
            0,
        ));
        let floor = match after {
            Some(a) if a.0 > lowest => a.0,
            _ => lowest,
        };
        Ok(sqlx::query_as(sql_fmt!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications
             WHERE user_id = $1 AND id > $2 AND created_at >= $3
             ORDER BY id LIMIT $4"
        ))
        .bind(user_id)
        .bind(floor)
        .bind(ts(&since))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await?)
    }
}

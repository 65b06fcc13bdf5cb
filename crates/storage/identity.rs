//! Storage for users ([`UserRepo`]) and teams ([`TeamRepo`]); sessions, API keys and
//! notifications are in `identity_access.rs`.

use async_trait::async_trait;
use flowstore_core::crypto::sha256_hex;
use flowstore_core::ids::{SessionId, TeamId, UserId};
use flowstore_core::model::identity::{
    normalize_email, random_token, verification_token, verification_token_live, HashedPassword,
    NewTeam, NewUser, Role, Team, TeamMember, TeamRole, User, UserFilter, UserPatch, UserStatus,
    RESET_TOKEN_TTL, VERIFICATION_TOKEN_TTL,
};
use flowstore_core::model::identity::{SessionRepo, TeamRepo, UserRepo};
use flowstore_core::time::Timestamp;
use flowstore_core::{time, Page, PageRequest, StoreError, StoreResult};

use crate::dialect::{ensure_exists, sql, sql_fmt, sql_owned, ts, ts_opt, Query, Tx};
use crate::rows;

const USER_COLUMNS: &str = "id, email, display_name, password_hash, role, status, \
                            failed_login_count, locked_until, email_verified_at, last_login_at, \
                            created_at, updated_at";
const TEAM_COLUMNS: &str = "id, name, description, created_by, created_at, updated_at";
const MEMBER_COLUMNS: &str = "team_id, user_id, role, created_at";

impl Tx {
    async fn user_where(&mut self, clause: &str, value: &str) -> StoreResult<Option<User>> {
        Ok(sqlx::query_as(&sql_owned(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {clause}"
        )))
        .bind(value)
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    /// Runs an UPDATE on one user and refuses an unknown ID.
    async fn update_user_row<'q>(&mut self, id: UserId, query: Query<'q>) -> StoreResult<()> {
        let done = query.execute(&mut *self.tx).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("user", id));
        }
        Ok(())
    }

    async fn get_member(&mut self, team_id: TeamId, user_id: UserId) -> StoreResult<TeamMember> {
        sqlx::query_as(sql_fmt!(
            "SELECT {MEMBER_COLUMNS} FROM team_members WHERE team_id = $1 AND user_id = $2"
        ))
        .bind(team_id)
        .bind(user_id)
        .fetch_optional(&mut *self.tx)
        .await?
        .ok_or_else(|| StoreError::not_found("team member", format!("{team_id}/{user_id}")))
    }
}

#[async_trait]
impl UserRepo for Tx {
    async fn create_user(&mut self, new: NewUser) -> StoreResult<User> {
        let u = new.into_row(time::now())?;
        sqlx::query(sql!(
            "INSERT INTO users (id, email, display_name, password_hash, role, status,
                failed_login_count, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8)"
        ))
        .bind(u.id)
        .bind(&u.email)
        .bind(&u.display_name)
        .bind(&u.password_hash)
        .bind(u.role)
        .bind(u.status)
        .bind(ts(&u.created_at))
        .bind(ts(&u.updated_at))
        .execute(&mut *self.tx)
        .await?;
        Ok(u)
    }

    async fn get_user(&mut self, id: UserId) -> StoreResult<User> {
        rows::one(
            &mut self.tx,
            sql_fmt!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"),
            "user",
            id,
        )
        .await
    }

    async fn get_user_by_email(&mut self, email: &str) -> StoreResult<User> {
        let email = normalize_email(email)?;
        self.user_where("email = $1", &email)
            .await?
            .ok_or_else(|| StoreError::not_found("user", email))
    }

    async fn update_user(&mut self, id: UserId, patch: UserPatch) -> StoreResult<User> {
        let current: User = rows::one(
            &mut self.tx,
            sql_fmt!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 FOR UPDATE"),
            "user",
            id,
        )
        .await?;
        let u = patch.apply(&current, time::now())?;
        let q = sqlx::query(sql!(
            "UPDATE users SET display_name = $2, role = $3, status = $4, updated_at = $5
             WHERE id = $1"
        ))
        .bind(id)
        .bind(&u.display_name)
        .bind(u.role)
        .bind(u.status)
        .bind(ts(&u.updated_at));
        self.update_user_row(id, q).await?;
        Ok(u)
    }

    async fn delete_user(&mut self, id: UserId) -> StoreResult<()> {
        let q = sqlx::query(sql!("DELETE FROM users WHERE id = $1")).bind(id);
        self.update_user_row(id, q).await
    }

    async fn list_users(
        &mut self,
        filter: &UserFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<User>> {
        rows::page_with(
            &mut self.tx,
            sql_fmt!(
                "SELECT {USER_COLUMNS} FROM users
             WHERE ($1::text IS NULL OR role = $1) AND ($2::text IS NULL OR status = $2)
               AND ($3::uuid IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4"
            ),
            page,
            |q, after, limit| {
                q.bind(filter.role)
                    .bind(filter.status)
                    .bind(after)
                    .bind(limit)
            },
            |u: &User| u.id.0,
        )
        .await
    }

    async fn record_login_success(&mut self, id: UserId, now: Timestamp) -> StoreResult<User> {
        let q = sqlx::query(sql!(
            "UPDATE users SET failed_login_count = 0, locked_until = NULL, last_login_at = $2,
                updated_at = $2
             WHERE id = $1"
        ))
        .bind(id)
        .bind(ts(&now));
        self.update_user_row(id, q).await?;
        self.get_user(id).await
    }

    async fn record_login_failure(
        &mut self,
        id: UserId,
        throttled_until: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreResult<User> {
        let q = sqlx::query(sql!(
            "UPDATE users SET failed_login_count = failed_login_count + 1, locked_until = $2,
                updated_at = $3
             WHERE id = $1"
        ))
        .bind(id)
        .bind(ts_opt(&throttled_until))
        .bind(ts(&now));
        self.update_user_row(id, q).await?;
        self.get_user(id).await
    }

    async fn unlock_user(&mut self, id: UserId, now: Timestamp) -> StoreResult<User> {
        let q = sqlx::query(sql!(
            "UPDATE users SET failed_login_count = 0, locked_until = NULL, updated_at = $2
             WHERE id = $1"
        ))
        .bind(id)
        .bind(ts(&now));
        self.update_user_row(id, q).await?;
        self.get_user(id).await
    }

    async fn set_password(
        &mut self,
        id: UserId,
        new_password: &HashedPassword,
        keep: Option<SessionId>,
        now: Timestamp,
    ) -> StoreResult<User> {
        let q = sqlx::query(sql!(
            "UPDATE users SET password_hash = $2, failed_login_count = 0, locked_until = NULL,
                updated_at = $3
             WHERE id = $1"
        ))
        .bind(id)
        .bind(new_password.as_str())
        .bind(ts(&now));
        self.update_user_row(id, q).await?;
        // A new password ends every other session opened with the old one.
        sqlx::query(sql!(
            "UPDATE user_sessions SET revoked_at = $2
             WHERE user_id = $1 AND revoked_at IS NULL AND ($3::uuid IS NULL OR id <> $3)"
        ))
        .bind(id)
        .bind(ts(&now))
        .bind(keep)
        .execute(&mut *self.tx)
        .await?;
        self.get_user(id).await
    }

    async fn count_active_admins(&mut self) -> StoreResult<u64> {
        let ids: Vec<UserId> = sqlx::query_scalar(sql!(
            "SELECT id FROM users WHERE role = $1 AND status = $2 FOR UPDATE"
        ))
        .bind(Role::Admin)
        .bind(UserStatus::Active)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(ids.len() as u64)
    }

    async fn issue_reset_token(&mut self, id: UserId, now: Timestamp) -> StoreResult<String> {
        let token = random_token();
        let q = sqlx::query(sql!(
            "UPDATE users SET reset_token_hash = $2, reset_token_expires_at = $3, updated_at = $4
             WHERE id = $1"
        ))
        .bind(id)
        .bind(sha256_hex(&token))
        .bind(ts(&(now + RESET_TOKEN_TTL)))
        .bind(ts(&now));
        self.update_user_row(id, q).await?;
        Ok(token)
    }

    async fn reset_password(
        &mut self,
        token: &str,
        new_password: &HashedPassword,
        now: Timestamp,
    ) -> StoreResult<User> {
        let id: Option<UserId> = sqlx::query_scalar(sql!(
            "SELECT id FROM users WHERE reset_token_hash = $1 AND reset_token_expires_at > $2
             FOR UPDATE"
        ))
        .bind(sha256_hex(token))
        .bind(ts(&now))
        .fetch_optional(&mut *self.tx)
        .await?;
        let id = id.ok_or_else(|| StoreError::invalid("token", "is unknown, used or expired"))?;
        let q = sqlx::query(sql!(
            "UPDATE users SET password_hash = $2, reset_token_hash = NULL,
                reset_token_expires_at = NULL, failed_login_count = 0, locked_until = NULL,
                updated_at = $3
             WHERE id = $1"
        ))
        .bind(id)
        .bind(new_password.as_str())
        .bind(ts(&now));
        self.update_user_row(id, q).await?;
        // A new password ends every session opened with the old one.
        self.revoke_user_sessions(id, now).await?;
        self.get_user(id).await
    }

    async fn issue_verification_token(
        &mut self,
        id: UserId,
        now: Timestamp,
    ) -> StoreResult<String> {
        let token = verification_token(now + VERIFICATION_TOKEN_TTL);
        let q = sqlx::query(sql!(
            "UPDATE users SET verification_token_hash = $2 WHERE id = $1"
        ))
        .bind(id)
        .bind(sha256_hex(&token));
        self.update_user_row(id, q).await?;
        Ok(token)
    }

    async fn verify_email(&mut self, token: &str, now: Timestamp) -> StoreResult<User> {
        if !verification_token_live(token, now) {
            return Err(StoreError::invalid("token", "is unknown, used or expired"));
        }
        let id: Option<UserId> = sqlx::query_scalar(sql!(
            "SELECT id FROM users WHERE verification_token_hash = $1 FOR UPDATE"
        ))
        .bind(sha256_hex(token))
        .fetch_optional(&mut *self.tx)
        .await?;
        let id = id.ok_or_else(|| StoreError::invalid("token", "is unknown, used or expired"))?;
        let q = sqlx::query(sql!(
            "UPDATE users SET verification_token_hash = NULL, email_verified_at = $2,
                status = CASE WHEN status = $3 THEN $4 ELSE status END, updated_at = $2
             WHERE id = $1"
        ))
        .bind(id)
        .bind(ts(&now))
        .bind(UserStatus::PendingVerification)
        .bind(UserStatus::Active);
        self.update_user_row(id, q).await?;
        self.get_user(id).await
    }
}

#[async_trait]
impl TeamRepo for Tx {
    async fn create_team(&mut self, new: NewTeam) -> StoreResult<Team> {
        let t = new.into_row(time::now())?;
        ensure_exists(
            &mut self.tx,
            "users",
            "created_by",
            t.created_by.map(|u| u.0),
        )
        .await?;
        sqlx::query(sql!(
            "INSERT INTO teams (id, name, description, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(t.id)
        .bind(&t.name)
        .bind(&t.description)
        .bind(t.created_by)
        .bind(ts(&t.created_at))
        .bind(ts(&t.updated_at))
        .execute(&mut *self.tx)
        .await?;
        Ok(t)
    }

    async fn get_team(&mut self, id: TeamId) -> StoreResult<Team> {
        rows::one(
            &mut self.tx,
            sql_fmt!("SELECT {TEAM_COLUMNS} FROM teams WHERE id = $1"),
            "team",
            id,
        )
        .await
    }

    async fn list_teams(&mut self, page: &PageRequest) -> StoreResult<Page<Team>> {
        rows::page(
            &mut self.tx,
            sql_fmt!(
                "SELECT {TEAM_COLUMNS} FROM teams WHERE ($1::uuid IS NULL OR id < $1)
             ORDER BY id DESC LIMIT $2"
            ),
            page,
            |t: &Team| t.id.0,
        )
        .await
    }

    async fn delete_team(&mut self, id: TeamId) -> StoreResult<()> {
        rows::delete_one(
            &mut self.tx,
            sql!("DELETE FROM teams WHERE id = $1"),
            "team",
            id,
        )
        .await
    }

    async fn add_team_member(
        &mut self,
        team_id: TeamId,
        user_id: UserId,
        role: TeamRole,
    ) -> StoreResult<TeamMember> {
        ensure_exists(&mut self.tx, "teams", "team_id", Some(team_id.0)).await?;
        ensure_exists(&mut self.tx, "users", "user_id", Some(user_id.0)).await?;
        let m = TeamMember {
            team_id,
            user_id,
            role,
            created_at: time::now(),
        };
        sqlx::query(sql!(
            "INSERT INTO team_members (team_id, user_id, role, created_at)
             VALUES ($1, $2, $3, $4)"
        ))
        .bind(m.team_id)
        .bind(m.user_id)
        .bind(m.role)
        .bind(ts(&m.created_at))
        .execute(&mut *self.tx)
        .await?;
        Ok(m)
    }

    async fn update_team_member(
        &mut self,
        team_id: TeamId,
        user_id: UserId,
        role: TeamRole,
    ) -> StoreResult<TeamMember> {
        sqlx::query(sql!(
            "UPDATE team_members SET role = $3 WHERE team_id = $1 AND user_id = $2"
        ))
        .bind(team_id)
        .bind(user_id)
        .bind(role)
        .execute(&mut *self.tx)
        .await?;
        self.get_member(team_id, user_id).await
    }

    async fn remove_team_member(&mut self, team_id: TeamId, user_id: UserId) -> StoreResult<()> {
        let done = sqlx::query(sql!(
            "DELETE FROM team_members WHERE team_id = $1 AND user_id = $2"
        ))
        .bind(team_id)
        .bind(user_id)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found(
                "team member",
                format!("{team_id}/{user_id}"),
            ));
        }
        Ok(())
    }

    async fn list_team_members(&mut self, team_id: TeamId) -> StoreResult<Vec<TeamMember>> {
        self.get_team(team_id).await?;
        Ok(sqlx::query_as(sql_fmt!(
            "SELECT {MEMBER_COLUMNS} FROM team_members WHERE team_id = $1
             ORDER BY created_at, user_id"
        ))
        .bind(team_id)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn list_user_teams(&mut self, user_id: UserId) -> StoreResult<Vec<Team>> {
        Ok(sqlx::query_as(sql!(
            "SELECT t.id, t.name, t.description, t.created_by, t.created_at, t.updated_at
             FROM teams t JOIN team_members m ON m.team_id = t.id
             WHERE m.user_id = $1 ORDER BY t.name"
        ))
        .bind(user_id)
        .fetch_all(&mut *self.tx)
        .await?)
    }
}

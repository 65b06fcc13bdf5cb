//! Storage for webhook deliveries: the fan-out of outbox events past the dispatcher's cursor, claims of
//! due deliveries, their outcomes, and the re-sealing of secrets after a key
//! rotation. Several servers may share a PostgreSQL database: fan-outs queue on the
//! cursor row's lock, and claims take due rows with `FOR UPDATE SKIP LOCKED`, so two
//! dispatchers never take the same delivery; on SQLite every write transaction holds
//! the writer lock, which serialises them as well.

use async_trait::async_trait;
use flowstore_core::model::integration::{DeliveryRepo, SealedRepo, WebhookRepo};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use flowstore_core::crypto::{Sealed, SecretString};
use flowstore_core::ids::{DeliveryId, WebhookId};
use flowstore_core::model::engine::{EngineRepo, EventFilter};
use flowstore_core::model::integration::{
    open_clearly, AttemptResult, Audience, ClaimedDelivery, DeliveryBacklog, DeliveryStatus,
    FanOut, NewDelivery, RetryPolicy, SealedKind, StaleSecrets, Webhook, WebhookDelivery,
};
use flowstore_core::{time, Page, PageRequest, StoreError, StoreResult};
use uuid::Uuid;

use crate::dialect::{ensure_exists, sql, sql_fmt, sql_owned, ts, ts_opt, Tx};
use crate::integration::WEBHOOK_COLUMNS;
use crate::rows;

const DELIVERY_COLUMNS: &str = "id, webhook_id, event_seq, event_type, payload, status, \
     attempts, next_attempt_at, last_attempt_at, response_code, response_body, error, \
     created_at, updated_at";

impl Tx {
    /// Inserts a pending delivery due now; with `ON CONFLICT` an event already queued
    /// for the webhook is skipped (returns `None`).
    async fn queue(&mut self, new: &NewDelivery) -> StoreResult<Option<DeliveryId>> {
        new.check()?;
        let id = DeliveryId::new();
        let now = time::now();
        let done = sqlx::query(sql!(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_seq, event_type, payload,
                status, attempts, next_attempt_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $6)
             ON CONFLICT (webhook_id, event_seq) DO NOTHING"
        ))
        .bind(id)
        .bind(new.webhook_id)
        .bind(new.event_seq)
        .bind(new.event_type.trim())
        .bind(&new.payload)
        .bind(ts(&now))
        .execute(&mut *self.tx)
        .await?;
        Ok((done.rows_affected() == 1).then_some(id))
    }
}

#[async_trait]
impl DeliveryRepo for Tx {
    async fn record_delivery(&mut self, new: NewDelivery) -> StoreResult<WebhookDelivery> {
        ensure_exists(
            &mut self.tx,
            "webhooks",
            "webhook_id",
            Some(new.webhook_id.0),
        )
        .await?;
        match self.queue(&new).await? {
            Some(id) => self.get_delivery(id).await,
            None => Err(StoreError::conflict(
                "event_seq",
                "this event is already queued for this webhook",
            )),
        }
    }

    async fn get_delivery(&mut self, id: DeliveryId) -> StoreResult<WebhookDelivery> {
        rows::one(
            &mut self.tx,
            sql_fmt!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1"),
            "delivery",
            id,
        )
        .await
    }

    async fn list_deliveries(
        &mut self,
        webhook_id: WebhookId,
        status: Option<DeliveryStatus>,
        page: &PageRequest,
    ) -> StoreResult<Page<WebhookDelivery>> {
        let (limit, after) = page.parts()?;
        self.get_webhook(webhook_id).await?;
        let rows: Vec<WebhookDelivery> = sqlx::query_as(sql_fmt!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
             WHERE webhook_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::uuid IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4"))
        .bind(webhook_id)
        .bind(status)
        .bind(after)
        .bind(i64::from(limit) + 1)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(Page::from_rows(rows, limit, |d| d.id.0))
    }

    async fn fan_out_events(&mut self, limit: u32) -> StoreResult<FanOut> {
        sqlx::query(sql!(
            "INSERT INTO webhook_dispatch (id, last_seq, updated_at) VALUES (1, 0, $1)
             ON CONFLICT (id) DO NOTHING"
        ))
        .bind(ts(&time::now()))
        .execute(&mut *self.tx)
        .await?;
        // The row lock makes concurrent fan-outs (other servers) wait their turn, so
        // each event is read past the cursor by one of them only.
        let cursor: i64 = sqlx::query_scalar(sql!(
            "SELECT last_seq FROM webhook_dispatch WHERE id = 1 FOR UPDATE"
        ))
        .fetch_one(&mut *self.tx)
        .await?;
        let events = self
            .events_after(cursor, &EventFilter::default(), limit)
            .await?;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(FanOut {
                cursor,
                ..FanOut::default()
            });
        };
        let hooks: Vec<Webhook> = sqlx::query_as(sql_fmt!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE active ORDER BY id"
        ))
        .fetch_all(&mut *self.tx)
        .await?;
        let mut deliveries = 0;
        let mut audience = Audience::default();
        for ev in &events {
            for h in &hooks {
                if audience.receives(self, h, ev).await?
                    && self
                        .queue(&NewDelivery::of_event(h.id, ev))
                        .await?
                        .is_some()
                {
                    deliveries += 1;
                }
            }
        }
        sqlx::query(sql!(
            "UPDATE webhook_dispatch SET last_seq = $1, updated_at = $2 WHERE id = 1"
        ))
        .bind(last)
        .bind(ts(&time::now()))
        .execute(&mut *self.tx)
        .await?;
        Ok(FanOut {
            events: events.len() as u64,
            deliveries,
            cursor: last,
        })
    }

    async fn claim_deliveries(
        &mut self,
        limit: u32,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let now = time::now();
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(5));
        // The claimed rows' columns are named unqualified: SQLite's RETURNING may name
        // only the updated table's, and the CTE's column has another name so that
        // PostgreSQL finds them unambiguous.
        let claimed: Vec<WebhookDelivery> = sqlx::query_as(sql_fmt!("WITH due AS (
                SELECT d.id AS due_id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
                 WHERE d.status IN ('pending', 'failed') AND d.next_attempt_at <= $1 AND w.active
                 ORDER BY d.next_attempt_at, d.id LIMIT $2
                 FOR UPDATE OF d SKIP LOCKED
             )
             UPDATE webhook_deliveries AS d SET attempts = d.attempts + 1, last_attempt_at = $1,
                    next_attempt_at = $3, response_code = NULL, response_body = NULL,
                    error = NULL
               FROM due WHERE d.id = due.due_id
             RETURNING {DELIVERY_COLUMNS}"))
        .bind(ts(&now))
        .bind(i64::from(limit))
        .bind(ts(&until))
        .fetch_all(&mut *self.tx)
        .await?;
        let mut out = Vec::with_capacity(claimed.len());
        let mut hooks: HashMap<WebhookId, (String, BTreeMap<String, String>, SecretString)> =
            HashMap::new();
        for delivery in claimed {
            if !hooks.contains_key(&delivery.webhook_id) {
                let h = self.get_webhook(delivery.webhook_id).await?;
                let secret = self.webhook_secret(h.id).await?;
                hooks.insert(h.id, (h.url.clone(), h.header_map(), secret));
            }
            let (url, headers, secret) = hooks[&delivery.webhook_id].clone();
            out.push(ClaimedDelivery {
                delivery,
                url,
                headers,
                secret,
            });
        }
        Ok(out)
    }

    async fn finish_delivery(
        &mut self,
        id: DeliveryId,
        attempt: i32,
        result: AttemptResult,
        policy: &RetryPolicy,
    ) -> StoreResult<WebhookDelivery> {
        let result = result.normalised();
        let now = time::now();
        let (status, next) = policy.resolve(attempt, &result, now);
        let done: Option<WebhookDelivery> = sqlx::query_as(sql_fmt!(
            "UPDATE webhook_deliveries SET status = $3, next_attempt_at = $4,
                response_code = $5, response_body = $6, error = $7, updated_at = $8
             WHERE id = $1 AND attempts = $2 AND status IN ('pending', 'failed')
               AND error IS NULL
             RETURNING {DELIVERY_COLUMNS}"
        ))
        .bind(id)
        .bind(attempt)
        .bind(status)
        .bind(ts_opt(&next))
        .bind(result.response_code.map(i32::from))
        .bind(&result.response_body)
        .bind(&result.error)
        .bind(ts(&now))
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some(d) = done else {
            self.get_delivery(id).await?;
            return Err(StoreError::conflict(
                "attempt",
                format!("attempt {attempt} is no longer this delivery's latest"),
            ));
        };
        sqlx::query(sql!(
            "UPDATE webhooks SET last_triggered_at = $2,
                failure_count = CASE WHEN $3 THEN 0 ELSE failure_count + 1 END
             WHERE id = $1"
        ))
        .bind(d.webhook_id)
        .bind(ts(&now))
        .bind(result.succeeded())
        .execute(&mut *self.tx)
        .await?;
        Ok(d)
    }

    async fn webhook_cursor(&mut self) -> StoreResult<i64> {
        let seq: Option<i64> =
            sqlx::query_scalar(sql!("SELECT last_seq FROM webhook_dispatch WHERE id = 1"))
                .fetch_optional(&mut *self.tx)
                .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn delivery_backlog(&mut self) -> StoreResult<DeliveryBacklog> {
        let (pending, dead, oldest): (i64, i64, Option<time::Timestamp>) = sqlx::query_as(sql!(
            "SELECT count(*) FILTER (WHERE status = 'pending'),
                    count(*) FILTER (WHERE status = 'dead'),
                    min(created_at) FILTER (WHERE status = 'pending')
               FROM webhook_deliveries WHERE status IN ('pending', 'dead')"
        ))
        .fetch_one(&mut *self.tx)
        .await?;
        let (unnumbered, oldest_unnumbered): (i64, Option<time::Timestamp>) = sqlx::query_as(sql!(
            "SELECT count(*), min(created_at) FROM events WHERE seq IS NULL"
        ))
        .fetch_one(&mut *self.tx)
        .await?;
        let cursor = self.webhook_cursor().await?;
        let undispatched: i64 = sqlx::query_scalar(sql!(
            "SELECT count(*) FROM (SELECT 1 FROM events WHERE seq > $1 LIMIT 100000) behind"
        ))
        .bind(cursor)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(DeliveryBacklog {
            pending: pending as u64,
            dead: dead as u64,
            oldest_pending: oldest,
            events_unnumbered: unnumbered as u64,
            oldest_unnumbered,
            events_undispatched: undispatched as u64,
        })
    }
}

#[async_trait]
impl SealedRepo for Tx {
    async fn stale_secrets(&mut self) -> StoreResult<StaleSecrets> {
        let keys = self.keys.clone();
        let current = keys.keyring()?.current_id().to_string();
        let (configurations, credentials, webhooks, triggers): (i64, i64, i64, i64) =
            sqlx::query_as(sql!(
                "SELECT
                (SELECT count(*) FROM configurations
                  WHERE is_sensitive AND encryption_key_id <> $1),
                (SELECT count(*) FROM credentials WHERE encryption_key_id <> $1),
                (SELECT count(*) FROM webhooks WHERE encryption_key_id <> $1),
                (SELECT count(*) FROM webhook_triggers
                  WHERE secret_encrypted IS NOT NULL AND encryption_key_id <> $1)"
            ))
            .bind(&current)
            .fetch_one(&mut *self.tx)
            .await?;
        Ok(StaleSecrets {
            configurations: configurations as u64,
            credentials: credentials as u64,
            webhooks: webhooks as u64,
            triggers: triggers as u64,
        })
    }

    async fn unknown_key_ids(&mut self) -> StoreResult<Vec<String>> {
        let keys = self.keys.clone();
        let ring = keys.keyring()?;
        let used: Vec<String> = sqlx::query_scalar(sql!(
            "SELECT encryption_key_id FROM configurations WHERE is_sensitive
             UNION SELECT encryption_key_id FROM credentials
             UNION SELECT encryption_key_id FROM webhooks
             UNION SELECT encryption_key_id FROM webhook_triggers
                    WHERE secret_encrypted IS NOT NULL
             ORDER BY 1"
        ))
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(used.into_iter().filter(|id| !ring.has_key(id)).collect())
    }

    async fn reseal_batch(&mut self, kind: SealedKind, limit: u32) -> StoreResult<u64> {
        let (table, column, only) = match kind {
            SealedKind::Configurations => ("configurations", "value_encrypted", "is_sensitive AND"),
            SealedKind::Credentials => ("credentials", "encrypted_data", ""),
            SealedKind::Webhooks => ("webhooks", "secret_encrypted", ""),
            SealedKind::Triggers => (
                "webhook_triggers",
                "secret_encrypted",
                "secret_encrypted IS NOT NULL AND",
            ),
        };
        // A credential re-sealed under a new key counts as rotated (`rotated_at`):
        // its secret is now protected by another key, which is what a rotation is.
        let rotated = match kind {
            SealedKind::Credentials => ", rotated_at = $4",
            _ => "",
        };
        let now = time::now();
        let keys = self.keys.clone();
        let ring = keys.keyring()?;
        let rows: Vec<(Uuid, Vec<u8>, String)> = sqlx::query_as(&sql_owned(format!(
            "SELECT id, {column}, encryption_key_id FROM {table}
              WHERE {only} encryption_key_id <> $1 ORDER BY id LIMIT $2 FOR UPDATE"
        )))
        .bind(ring.current_id())
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await?;
        for (id, bytes, key_id) in &rows {
            let plain = open_clearly(
                ring,
                &Sealed {
                    bytes: bytes.clone(),
                    key_id: key_id.clone(),
                },
                &format!("{table} row {id}"),
            )?;
            let sealed = ring.seal(&plain)?;
            let statement = sql_owned(format!(
                "UPDATE {table} SET {column} = $2, encryption_key_id = $3{rotated} WHERE id = $1"
            ));
            let mut q = sqlx::query(&statement)
                .bind(id)
                .bind(sealed.bytes)
                .bind(sealed.key_id);
            if !rotated.is_empty() {
                q = q.bind(ts(&now));
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(rows.len() as u64)
    }
}

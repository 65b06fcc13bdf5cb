//! The state every handler shares: the backend, settings, metrics, the per-key rate
//! limiter, and the signals that wake long polls and end streams at shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowstore_core::change::{Change, ChangeSink};
use flowstore_core::ids::{ApiKeyId, UserId};
use flowstore_core::model::identity_access::ApiKey;
use flowstore_core::Backend;
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use crate::metrics::Metrics;

/// Settings of the HTTP server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Requests per second each API key may make, on average.
    pub rate_per_second: f64,
    /// Requests a key may make at once before the rate applies.
    pub rate_burst: f64,
    /// Longest a claim may wait for work.
    pub max_claim_wait: Duration,
    /// How often waiting claims and event streams look at the database while the
    /// database's change feed is down (or the backend has none).
    pub poll_interval: Duration,
    /// How often they look while the change feed is live, which wakes them as soon
    /// as work or events are committed on any server: a safety net only.
    pub safety_poll_interval: Duration,
    /// Longest a request other than a stream may take, its body's upload included.
    pub request_timeout: Duration,
    /// Longest a client may take to send a request's head, counted from when it
    /// connected or got its previous answer: idle and trickling connections are
    /// closed after it.
    pub header_timeout: Duration,
    /// How often the maintenance task reaps leases and enforces timeouts.
    pub maintenance_interval: Duration,
    /// How long a looked-up API key is trusted without asking the database again.
    /// A key revoked through this server is dropped from the cache at once; one
    /// revoked elsewhere (CLI, another server) stops working within this time.
    pub key_cache_ttl: Duration,
    /// Least time between two `last_used_at` updates of one key (or `last_seen_at`
    /// updates of one session).
    pub touch_interval: Duration,
    /// The webhook dispatcher's settings.
    pub webhooks: crate::webhooks::WebhookConfig,
    /// How long a session opened by signing in stays valid.
    pub session_ttl: Duration,
    /// How signing in is throttled per client address and per account.
    pub sign_in: crate::signin::SignInLimits,
    /// The SMTP server and addresses of password-reset and verification mail; none:
    /// no mail is sent (the operator hands tokens out with `flowstore users`).
    pub mail: Option<crate::mail::MailConfig>,
    /// How long after a caller's own write its lists and statistics are still read
    /// from the primary rather than a replica (`Backend::begin_lagging_read`), so
    /// that it sees what it just wrote: longer than the replica's usual lag.
    pub read_own_writes_for: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            body_limit: 1024 * 1024,
            rate_per_second: 100.0,
            rate_burst: 200.0,
            max_claim_wait: Duration::from_secs(30),
            poll_interval: Duration::from_millis(500),
            safety_poll_interval: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(30),
            maintenance_interval: Duration::from_secs(1),
            key_cache_ttl: Duration::from_secs(10),
            touch_interval: Duration::from_secs(60),
            webhooks: crate::webhooks::WebhookConfig::default(),
            session_ttl: Duration::from_secs(12 * 3600),
            sign_in: crate::signin::SignInLimits::default(),
            mail: None,
            read_own_writes_for: Duration::from_secs(5),
        }
    }
}

/// What the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn Backend>,
    config: ServerConfig,
    metrics: Metrics,
    limiter: RateLimiter,
    keys: KeyCache,
    sign_in: crate::signin::SignInGuard,
    work: Notify,
    /// The claims waiting here for work, longest waiting first (see
    /// [`AppState::notify_ready`]).
    waiting: std::sync::Mutex<Waiting>,
    events: Notify,
    /// Whether the database's change feed is live (see [`AppState::listen_for_changes`]).
    feed_live: AtomicBool,
    /// Wakes the task that announces this server's commits to the other servers.
    announce: Arc<Notify>,
    /// Wakes the task that links queued audit entries into the chain.
    audit: Notify,
    shutdown: watch::Sender<bool>,
    /// When each caller (user, or key or session without one) last wrote here.
    writers: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Single starts waiting to be written together.
    starts: crate::start_group::StartGroup,
}

impl AppState {
    /// State over `backend` with default settings.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self::with_config(backend, ServerConfig::default())
    }

    /// State over `backend` with `config`.
    pub fn with_config(backend: Arc<dyn Backend>, config: ServerConfig) -> Self {
        let limiter = RateLimiter::new(config.rate_per_second, config.rate_burst);
        let sign_in = crate::signin::SignInGuard::new(&config.sign_in);
        AppState {
            inner: Arc::new(Inner {
                backend,
                config,
                metrics: Metrics::default(),
                limiter,
                keys: KeyCache::default(),
                sign_in,
                work: Notify::new(),
                waiting: Default::default(),
                events: Notify::new(),
                feed_live: AtomicBool::new(false),
                announce: Arc::new(Notify::new()),
                audit: Notify::new(),
                shutdown: watch::channel(false).0,
                writers: Default::default(),
                starts: Default::default(),
            }),
        }
    }

    /// The database.
    pub fn backend(&self) -> &dyn Backend {
        &*self.inner.backend
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// Single starts written together (see [`crate::start_group`]).
    pub fn start_group(&self) -> &crate::start_group::StartGroup {
        &self.inner.starts
    }

    /// The counters behind `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn limiter(&self) -> &RateLimiter {
        &self.inner.limiter
    }

    pub(crate) fn keys(&self) -> &KeyCache {
        &self.inner.keys
    }

    /// Sign-in throttles and the password pool.
    pub(crate) fn sign_in(&self) -> &crate::signin::SignInGuard {
        &self.inner.sign_in
    }

    /// Notes that `who` is writing now (see [`ServerConfig::read_own_writes_for`]).
    pub(crate) fn wrote(&self, who: String) {
        let now = std::time::Instant::now();
        let keep = self.inner.config.read_own_writes_for;
        let mut writers = self.inner.writers.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded by the writers of the last few seconds.
        if writers.len() > 10_000 {
            writers.retain(|_, at| now.duration_since(*at) < keep);
        }
        writers.insert(who, now);
    }

    /// Whether `who` wrote here within [`ServerConfig::read_own_writes_for`].
    pub(crate) fn wrote_lately(&self, who: &str) -> bool {
        let writers = self.inner.writers.lock().unwrap_or_else(|p| p.into_inner());
        writers
            .get(who)
            .is_some_and(|at| at.elapsed() < self.inner.config.read_own_writes_for)
    }

    /// Tells waiting claims and event streams that something changed.
    pub fn notify_changed(&self) {
        self.inner.work.notify_waiters();
        self.notify_unclaimable();
    }

    /// Tells event streams and the other servers of a change that made nothing
    /// claimable (a completion that readied no task, say): no waiting claim is woken
    /// to look for work that is not there.
    pub fn notify_unclaimable(&self) {
        self.inner.events.notify_waiters();
        // A permit is kept when the announcer is busy, so no change goes untold.
        self.inner.announce.notify_one();
    }

    /// Tells of tasks that became ready here, one handler type per task: each wakes
    /// the claim waiting longest among those that take its type and were not woken
    /// for another of them, instead of every waiting claim (which would all look,
    /// and all but one find nothing). A claim woken so that finds nothing (the task
    /// was not visible to its caller, or another claim took it first) wakes every
    /// waiting claim, so a task never waits for the next poll because the wrong
    /// claim was woken. Event streams and other servers are told as
    /// [`Self::notify_changed`] tells them.
    pub fn notify_ready<'a>(&self, handler_types: impl IntoIterator<Item = &'a str>) {
        {
            let mut waiting = self.inner.waiting.lock().unwrap_or_else(|p| p.into_inner());
            for handler_type in handler_types {
                waiting.wake_one(handler_type);
            }
        }
        self.notify_unclaimable();
    }

    /// Enters a claim for `handler_types` among the waiting ones, until the returned
    /// place is dropped.
    pub(crate) fn wait_for_work(&self, handler_types: &[String]) -> WaitingClaim<'_> {
        let mut waiting = self.inner.waiting.lock().unwrap_or_else(|p| p.into_inner());
        waiting.next += 1;
        let place = Place {
            id: waiting.next,
            handler_types: handler_types.to_vec(),
            wake: Arc::new(Notify::new()),
            targeted: Arc::new(AtomicBool::new(false)),
        };
        let claim = WaitingClaim {
            state: self,
            id: place.id,
            wake: place.wake.clone(),
            targeted: place.targeted.clone(),
        };
        waiting.places.push_back(place);
        claim
    }

    /// Starts hearing what other servers (or other backends of this process) commit
    /// to the database, when the backend can tell: waiting claims and event streams
    /// then wake at once and look at the database only every
    /// `safety_poll_interval` otherwise, and the key cache forgets what changed
    /// elsewhere. Without a feed, or while it is down, they poll every
    /// `poll_interval` and a key revoked elsewhere lasts up to `key_cache_ttl`.
    pub fn listen_for_changes(&self) {
        let sink = Arc::new(StateSink(Arc::downgrade(&self.inner)));
        if self.inner.backend.listen(sink) {
            tokio::spawn(announce(
                Arc::downgrade(&self.inner),
                self.inner.announce.clone(),
            ));
        }
    }

    /// Whether the database's change feed is live.
    pub fn feed_live(&self) -> bool {
        self.inner.feed_live.load(Ordering::Relaxed)
    }

    /// How long a waiting claim or event stream sleeps before looking again when
    /// nothing woke it.
    pub(crate) fn wait_interval(&self) -> Duration {
        if self.feed_live() {
            self.inner.config.safety_poll_interval
        } else {
            self.inner.config.poll_interval
        }
    }

    pub(crate) fn work_notify(&self) -> &Notify {
        &self.inner.work
    }

    /// Wakes when something changed (event streams and the webhook dispatcher wait
    /// on it).
    pub(crate) fn event_notify(&self) -> &Notify {
        &self.inner.events
    }

    /// Tells the audit linker that a change which queued its audit entry has
    /// committed. A permit is kept while the linker is busy, so the entries
    /// committed meanwhile are linked together by its next round.
    pub(crate) fn audit_queued(&self) {
        self.inner.audit.notify_one();
    }

    /// Wakes when a queued audit entry committed (the audit linker waits on it).
    pub(crate) fn audit_notify(&self) -> &Notify {
        &self.inner.audit
    }

    /// Ends event streams and long polls: called when the server starts shutting
    /// down, so that graceful shutdown does not wait for them forever.
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        self.notify_changed();
    }

    /// Whether shutdown has begun.
    pub fn shutting_down(&self) -> bool {
        *self.inner.shutdown.borrow()
    }

    /// A receiver that changes when shutdown begins.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }
}

/// How long the announcer gathers this server's commits before telling the other
/// servers of them in one notification.
const ANNOUNCE_EVERY: Duration = Duration::from_millis(5);

/// Tells the other servers of this server's commits (`Backend::announce`), at most
/// once per [`ANNOUNCE_EVERY`], until the state is dropped.
async fn announce(inner: std::sync::Weak<Inner>, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        tokio::time::sleep(ANNOUNCE_EVERY).await;
        let Some(backend) = inner.upgrade().map(|i| i.backend.clone()) else {
            return;
        };
        if let Err(e) = backend.announce().await {
            tracing::debug!(error = %e, "could not announce this server's changes");
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Lets the announcer see that the state is gone.
        self.announce.notify_one();
    }
}

/// Where the backend delivers the database's changes: it holds the state weakly, so
/// that a dropped state ends the backend's listening.
struct StateSink(std::sync::Weak<Inner>);

impl ChangeSink for StateSink {
    fn changed(&self, change: Change) -> bool {
        let Some(inner) = self.0.upgrade() else {
            return false;
        };
        match change {
            Change::Work { at: None } => inner.work.notify_waiters(),
            Change::Work { at: Some(at) } => {
                // A retry's backoff: wake the claims when it ends.
                let wait = (at - flowstore_core::time::now())
                    .to_std()
                    .unwrap_or_default();
                let weak = self.0.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    if let Some(inner) = weak.upgrade() {
                        inner.work.notify_waiters();
                    }
                });
            }
            Change::Events => inner.events.notify_waiters(),
            Change::Access => inner.keys.clear(),
            Change::Listening | Change::Lost => {
                if change == Change::Lost {
                    inner.metrics.feed_lost.fetch_add(1, Ordering::Relaxed);
                }
                // Either way, what happened while nobody listened is unknown.
                inner
                    .feed_live
                    .store(change == Change::Listening, Ordering::Relaxed);
                inner.keys.clear();
                inner.work.notify_waiters();
                inner.events.notify_waiters();
            }
        }
        true
    }

    fn is_closed(&self) -> bool {
        self.0.strong_count() == 0
    }
}

/// API keys already looked up, by the SHA-256 of the key presented (the key itself
/// is not kept), and when each key's `last_used_at` (or session's `last_seen_at`)
/// was last written.
#[derive(Default)]
pub(crate) struct KeyCache {
    found: Mutex<HashMap<String, (ApiKey, Instant)>>,
    touched: Mutex<HashMap<Uuid, Instant>>,
}

impl KeyCache {
    /// The key cached under `hash` if it was looked up less than `ttl` ago.
    pub(crate) fn get(&self, hash: &str, ttl: Duration) -> Option<ApiKey> {
        let found = self.found.lock().unwrap_or_else(|p| p.into_inner());
        found
            .get(hash)
            .filter(|(_, at)| at.elapsed() < ttl)
            .map(|(k, _)| k.clone())
    }

    pub(crate) fn put(&self, hash: String, key: ApiKey, ttl: Duration) {
        let mut found = self.found.lock().unwrap_or_else(|p| p.into_inner());
        if found.len() > 10_000 {
            found.retain(|_, (_, at)| at.elapsed() < ttl);
        }
        found.insert(hash, (key, Instant::now()));
    }

    /// Forgets every key (something changed elsewhere).
    pub(crate) fn clear(&self) {
        self.found.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Forgets a key (revoked through this server).
    pub(crate) fn forget(&self, id: ApiKeyId) {
        let mut found = self.found.lock().unwrap_or_else(|p| p.into_inner());
        found.retain(|_, (k, _)| k.id != id);
    }

    /// Forgets every key of a user (deleted through this server).
    pub(crate) fn forget_user(&self, user: UserId) {
        let mut found = self.found.lock().unwrap_or_else(|p| p.into_inner());
        found.retain(|_, (k, _)| k.user_id != Some(user));
    }

    /// Whether the `last_used_at` of key (or session) `id` is due to be written; if
    /// so, notes it as written now.
    pub(crate) fn touch_due(&self, id: Uuid, every: Duration) -> bool {
        let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
        if touched.len() > 100_000 {
            touched.retain(|_, at| at.elapsed() < every);
        }
        match touched.get(&id) {
            Some(at) if at.elapsed() < every => false,
            _ => {
                touched.insert(id, Instant::now());
                true
            }
        }
    }
}

/// A token bucket per caller (an API key, a session's user, or a client address
/// signing in), in memory.
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<Uuid, (f64, Instant)>>,
}

impl RateLimiter {
    pub(crate) fn new(rate: f64, burst: f64) -> Self {
        RateLimiter {
            rate: rate.max(0.001),
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`, or says how many seconds until one is available.
    pub(crate) fn check(&self, key: Uuid) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            buckets.retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(600));
        }
        let (tokens, at) = buckets.entry(key).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_empty_and_refill() {
        let l = RateLimiter::new(1.0, 2.0);
        let k = ApiKeyId::new().0;
        assert!(l.check(k).is_ok());
        assert!(l.check(k).is_ok());
        assert_eq!(l.check(k), Err(1));
        assert!(l.check(ApiKeyId::new().0).is_ok());
    }
}

/// The claims waiting for work, longest waiting first.
#[derive(Default)]
struct Waiting {
    next: u64,
    places: std::collections::VecDeque<Place>,
}

struct Place {
    id: u64,
    handler_types: Vec<String>,
    wake: Arc<Notify>,
    /// Set when this claim was woken for one task in particular.
    targeted: Arc<AtomicBool>,
}

impl Waiting {
    /// Wakes the claim waiting longest that takes `handler_type`, and puts it last.
    fn wake_one(&mut self, handler_type: &str) {
        let Some(i) = self
            .places
            .iter()
            .position(|p| p.handler_types.iter().any(|t| t == handler_type))
        else {
            return;
        };
        if let Some(place) = self.places.remove(i) {
            place.targeted.store(true, Ordering::Relaxed);
            // A permit is kept when the claim is looking rather than waiting.
            place.wake.notify_one();
            self.places.push_back(place);
        }
    }
}

/// A claim's place among the waiting ones (see [`AppState::wait_for_work`]).
pub(crate) struct WaitingClaim<'a> {
    state: &'a AppState,
    id: u64,
    /// Woken for a task of one of its handler types.
    pub wake: Arc<Notify>,
    targeted: Arc<AtomicBool>,
}

impl WaitingClaim<'_> {
    /// Whether the claim was woken for a task in particular since last asked.
    pub fn was_targeted(&self) -> bool {
        self.targeted.swap(false, Ordering::Relaxed)
    }
}

impl Drop for WaitingClaim<'_> {
    fn drop(&mut self) {
        self.state
            .inner
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .places
            .retain(|p| p.id != self.id);
        // Woken for a task while it was still looking, and gone with what it found
        // before: the task it was woken for is left to every other claim.
        if self.targeted.load(Ordering::Relaxed) {
            self.state.inner.work.notify_waiters();
        }
    }
}

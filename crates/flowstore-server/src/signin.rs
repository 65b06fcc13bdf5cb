//! Sign-in throttling and the pool that hashes and checks passwords.
//!
//! Throttling replaces the old hard lock, which anyone could trigger with five
//! anonymous wrong passwords, which ended the account's sessions and which told
//! existing emails from unknown ones. Now:
//!
//! - Per client address: a token bucket of attempts ([`SignInLimits::address_burst`],
//!   [`SignInLimits::address_per_minute`]), checked before any work, and a backoff on
//!   the wrong passwords sent from it (see below, with
//!   [`SignInLimits::address_free_failures`]). Requests without an address (the router
//!   called in process, not over the network) have no address limits.
//! - Per account, keyed by the normalised email whether or not an account has it (so
//!   that an unknown email is answered exactly like an existing one): after
//!   [`SignInLimits::account_free_failures`] wrong passwords in a row, sign-in to it is
//!   refused for a window that starts at [`SignInLimits::first_delay`] and doubles with
//!   every further wrong password, up to [`SignInLimits::max_delay`]. The right
//!   password once the window has passed, or an admin's unlock, clears it. Live
//!   sessions and API keys of the account keep working throughout.
//!
//! The state is kept in this server's memory: it never costs a database write on a
//! refused attempt, and it covers unknown emails as well as existing ones. Several
//! servers behind one address each keep their own (an attacker gets as many windows as
//! there are servers), and a restart forgets it.
//!
//! Argon2 is slow on purpose, so it runs on tokio's blocking pool, at most as many
//! checks at once as there are cores ([`PasswordPool`]), and never inside a
//! transaction.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use flowstore_core::crypto::SecretString;
use flowstore_core::model::identity::{check_password, normalize_email, HashedPassword, NewUser};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::error::{ApiResult, Problem};
use crate::state::RateLimiter;

/// The limits on signing in (see the module documentation and README.md).
#[derive(Clone, Debug)]
pub struct SignInLimits {
    /// Sign-in attempts one client address may make at once.
    pub address_burst: u32,
    /// Sign-in attempts one client address may make per minute after its burst.
    pub address_per_minute: f64,
    /// Wrong passwords one client address may send (to any accounts) before its
    /// attempts are delayed like an account's.
    pub address_free_failures: u32,
    /// Wrong passwords in a row an account takes before its sign-in is delayed.
    pub account_free_failures: u32,
    /// The first delay, doubled by every further wrong password.
    pub first_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// How long a count of wrong passwords is kept after the last one (for an
    /// account; an address's is kept for a twenty-fourth of it).
    pub forget_after: Duration,
}

impl Default for SignInLimits {
    fn default() -> Self {
        SignInLimits {
            address_burst: 10,
            address_per_minute: 10.0,
            address_free_failures: 30,
            account_free_failures: 5,
            first_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// A wrong password just counted against a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counted {
    /// Wrong passwords in a row, this one included.
    pub failures: u32,
    /// How long the key is now refused, if it is.
    pub blocked_for: Option<Duration>,
    /// Whether this failure is the one that engaged the throttle (the first delay of
    /// a streak): the moment written to the audit log.
    pub engaged: bool,
}

#[derive(Clone, Copy, Debug)]
struct Streak {
    failures: u32,
    blocked_until: Option<Instant>,
    last: Instant,
}

/// Exponential backoff on wrong passwords, per key, in memory.
pub(crate) struct Backoff {
    free: u32,
    first: Duration,
    max: Duration,
    forget: Duration,
    streaks: Mutex<HashMap<String, Streak>>,
}

/// Keys kept before idle ones are dropped.
const MAX_KEYS: usize = 100_000;

impl Backoff {
    pub(crate) fn new(free: u32, first: Duration, max: Duration, forget: Duration) -> Self {
        Backoff {
            free: free.max(1),
            first: first.max(Duration::from_millis(1)),
            max: max.max(first),
            forget,
            streaks: Mutex::new(HashMap::new()),
        }
    }

    fn delay(&self, failures: u32) -> Option<Duration> {
        let over = failures.checked_sub(self.free)?;
        let factor = 1u32 << over.min(20);
        Some(self.first.saturating_mul(factor).min(self.max))
    }

    /// The streak of `key` at `now`, a stale one forgotten.
    fn streak<'m>(
        &self,
        map: &'m mut HashMap<String, Streak>,
        key: &str,
        now: Instant,
    ) -> &'m mut Streak {
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            // Idle keys first; then any key not refused right now.
            map.retain(|_, s| now.duration_since(s.last) < self.forget);
            if map.len() >= MAX_KEYS {
                map.retain(|_, s| s.blocked_until.is_some_and(|b| b > now));
            }
        }
        let s = map.entry(key.to_string()).or_insert(Streak {
            failures: 0,
            blocked_until: None,
            last: now,
        });
        let blocked = s.blocked_until.is_some_and(|b| b > now);
        if !blocked && now.duration_since(s.last) >= self.forget {
            *s = Streak {
                failures: 0,
                blocked_until: None,
                last: now,
            };
        }
        s
    }

    /// How long `key` is still refused at `now`, if it is.
    pub(crate) fn blocked(&self, key: &str, now: Instant) -> Option<Duration> {
        let map = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .and_then(|s| s.blocked_until)
            .filter(|b| *b > now)
            .map(|b| b - now)
    }

    /// Counts a wrong password for `key` at `now`.
    pub(crate) fn fail(&self, key: &str, now: Instant) -> Counted {
        let mut map = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        let s = self.streak(&mut map, key, now);
        s.failures = s.failures.saturating_add(1);
        s.last = now;
        let blocked_for = self.delay(s.failures);
        if let Some(d) = blocked_for {
            s.blocked_until = Some(now + d);
        }
        Counted {
            failures: s.failures,
            blocked_for,
            engaged: s.failures == self.free,
        }
    }

    /// Starts an attempt on `key` at `now`: refused with the time left while the key
    /// is blocked, else counted at once as a wrong password, so that attempts made
    /// at the same moment cannot all slip in before the first failure is counted.
    /// [`Backoff::clear`] (right password) or [`Backoff::undo`] (no verdict) follow.
    pub(crate) fn begin(&self, key: &str, now: Instant) -> Result<Counted, Duration> {
        if let Some(left) = self.blocked(key, now) {
            return Err(left);
        }
        Ok(self.fail(key, now))
    }

    /// Takes back the failure counted by [`Backoff::begin`] when the attempt ended
    /// without a verdict on the password (the database failed): a delay it started
    /// is lifted with it while the streak is under the free failures again.
    pub(crate) fn undo(&self, key: &str) {
        let mut map = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = map.get_mut(key) {
            s.failures = s.failures.saturating_sub(1);
            if s.failures < self.free {
                s.blocked_until = None;
            }
        }
    }

    /// Forgets `key`'s streak (the right password, or an admin's unlock).
    pub(crate) fn clear(&self, key: &str) {
        let mut map = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(key);
    }
}

/// Seconds for `Retry-After`: rounded up, at least one.
pub fn retry_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// The key an email is throttled under: the normalised address, or the text as given
/// (trimmed, lowercased, cut to 320 characters) when it is not one, so that every
/// answer depends only on what the client sent.
pub fn account_key(email: &str) -> String {
    normalize_email(email)
        .unwrap_or_else(|_| email.trim().to_lowercase().chars().take(320).collect())
}

/// Argon2 work off the async workers: on tokio's blocking pool, at most `size` at once
/// (the rest wait their turn without holding a worker or a transaction).
pub(crate) struct PasswordPool {
    permits: Arc<Semaphore>,
}

impl PasswordPool {
    pub(crate) fn new(size: usize) -> Self {
        PasswordPool {
            permits: Arc::new(Semaphore::new(size.max(1))),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> ApiResult<T> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Problem::internal(&e))?;
        tokio::task::spawn_blocking(move || {
            // Held until the work is done, even if the request was dropped meanwhile.
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| Problem::internal(&e))
    }

    /// Checks and hashes a new password (a bad one is 422 on `password`).
    pub(crate) async fn hash(&self, password: SecretString) -> ApiResult<HashedPassword> {
        Ok(self
            .run(move || HashedPassword::new(password.expose()))
            .await??)
    }

    /// A new user with its password hashed, ready for the transaction.
    pub(crate) async fn hash_user(&self, new: NewUser) -> ApiResult<NewUser> {
        if new.password.is_none() {
            return Ok(new);
        }
        Ok(self.run(move || new.hashed()).await??)
    }

    /// Whether `password` matches `stored`; as slow when there is nothing stored.
    pub(crate) async fn check(
        &self,
        stored: Option<String>,
        password: SecretString,
    ) -> ApiResult<bool> {
        self.run(move || check_password(stored.as_deref(), password.expose()))
            .await
    }
}

/// Everything signing in shares: the limits, the throttles and the password pool.
pub(crate) struct SignInGuard {
    addresses: RateLimiter,
    address_failures: Backoff,
    accounts: Backoff,
    passwords: PasswordPool,
    /// Password-reset messages per email address: 3 at once, then 1 a minute, so
    /// that nobody floods someone's mailbox through the reset form.
    reset_mails: RateLimiter,
}

impl SignInGuard {
    pub(crate) fn new(limits: &SignInLimits) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        SignInGuard {
            addresses: RateLimiter::new(
                limits.address_per_minute / 60.0,
                f64::from(limits.address_burst),
            ),
            address_failures: Backoff::new(
                limits.address_free_failures,
                limits.first_delay,
                limits.max_delay,
                limits.forget_after / 24,
            ),
            accounts: Backoff::new(
                limits.account_free_failures,
                limits.first_delay,
                limits.max_delay,
                limits.forget_after,
            ),
            passwords: PasswordPool::new(cores),
            reset_mails: RateLimiter::new(1.0 / 60.0, 3.0),
        }
    }

    /// The password pool.
    pub(crate) fn passwords(&self) -> &PasswordPool {
        &self.passwords
    }

    /// The per-account backoff.
    pub(crate) fn accounts(&self) -> &Backoff {
        &self.accounts
    }

    /// The per-address backoff on wrong passwords.
    pub(crate) fn address_failures(&self) -> &Backoff {
        &self.address_failures
    }

    /// Whether a password-reset message may go to `email` now (known or not: the
    /// limit is kept alike for every address).
    pub(crate) fn admit_reset_mail(&self, email: &str) -> bool {
        let mut h = DefaultHasher::new();
        ("reset-mail", email).hash(&mut h);
        self.reset_mails
            .check(Uuid::from_u64_pair(h.finish(), 0))
            .is_ok()
    }

    /// Admits an attempt from `address` at `now` (its bucket, then its backoff), or
    /// says how long to wait.
    pub(crate) fn admit_address(&self, address: &str, now: Instant) -> Result<(), u64> {
        let mut h = DefaultHasher::new();
        ("sign-in", address).hash(&mut h);
        self.addresses.check(Uuid::from_u64_pair(h.finish(), 0))?;
        match self.address_failures.blocked(address, now) {
            Some(left) => Err(retry_secs(left)),
            None => Ok(()),
        }
    }
}

/// 429 for an email address whose sign-in is throttled. The same for every address,
/// known or not: the time to wait is in `Retry-After` only.
pub fn account_throttled(left: Duration) -> Problem {
    let mut p = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "sign-in-throttled",
        "too many wrong passwords for this email address: try again after the time in \
         Retry-After, or ask an admin to unlock the account",
    )
    .with_field("email");
    p.retry_after = Some(retry_secs(left));
    p
}

/// 429 for a client address that made too many attempts.
pub fn address_throttled(secs: u64) -> Problem {
    let mut p = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "sign-in-throttled",
        format!("too many sign-in attempts from this address; retry in {secs} s"),
    );
    p.retry_after = Some(secs);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff::new(
            3,
            Duration::from_secs(10),
            Duration::from_secs(60),
            Duration::from_secs(3600),
        )
    }

    #[test]
    fn delays_start_after_the_free_failures_double_and_stop_at_the_cap() {
        let b = backoff();
        let t0 = Instant::now();
        for n in 1..=2 {
            let c = b.begin("a@x.io", t0).unwrap();
            assert_eq!((c.failures, c.blocked_for, c.engaged), (n, None, false));
        }
        let c = b.begin("a@x.io", t0).unwrap();
        assert_eq!(c.blocked_for, Some(Duration::from_secs(10)));
        assert!(c.engaged);
        assert_eq!(
            b.begin("a@x.io", t0 + Duration::from_secs(4)),
            Err(Duration::from_secs(6))
        );
        // Refused attempts are not counted; the next one after the window is, and
        // doubles the delay, which engages only once per streak.
        let mut t = t0 + Duration::from_secs(10);
        let mut delays = Vec::new();
        for _ in 0..5 {
            let c = b.begin("a@x.io", t).unwrap();
            assert!(!c.engaged);
            let d = c.blocked_for.unwrap();
            delays.push(d.as_secs());
            t += d;
        }
        assert_eq!(delays, [20, 40, 60, 60, 60]);
        // Other keys are untouched.
        assert!(b.begin("b@x.io", t0).unwrap().blocked_for.is_none());
    }

    #[test]
    fn clear_undo_and_forgetting() {
        let b = backoff();
        let t0 = Instant::now();
        for _ in 0..3 {
            b.begin("a@x.io", t0).unwrap();
        }
        assert!(b.blocked("a@x.io", t0).is_some());
        // An attempt without a verdict is taken back, with the delay it started.
        b.undo("a@x.io");
        assert_eq!(b.blocked("a@x.io", t0), None);
        assert_eq!(b.begin("a@x.io", t0).unwrap().failures, 3);
        b.clear("a@x.io");
        assert_eq!(b.blocked("a@x.io", t0), None);
        assert_eq!(b.begin("a@x.io", t0).unwrap().failures, 1);
        // A streak idle for longer than `forget` starts again.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(b.fail("a@x.io", later).failures, 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn password_work_runs_off_the_async_thread_a_bounded_number_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let pool = Arc::new(PasswordPool::new(2));
        let here = std::thread::current().id();
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let jobs = (0..8).map(|_| {
            let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
            tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                    std::thread::current().id()
                })
                .await
                .unwrap()
            })
        });
        for job in jobs.collect::<Vec<_>>() {
            assert_ne!(job.await.unwrap(), here, "not on the runtime's own thread");
        }
        assert!(
            most.load(Ordering::SeqCst) <= 2,
            "at most the pool's size at once"
        );
        // A bad password is the caller's mistake; a good one is hashed.
        let p = pool.hash(SecretString::new("short")).await.unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (422, Some("password")));
        let h = pool
            .hash(SecretString::new("long enough, surely"))
            .await
            .unwrap();
        assert!(pool
            .check(
                Some(h.as_str().into()),
                SecretString::new("long enough, surely")
            )
            .await
            .unwrap());
        assert!(!pool
            .check(None, SecretString::new("long enough, surely"))
            .await
            .unwrap());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_secs(Duration::from_secs(30)), 30);
        assert_eq!(retry_secs(Duration::from_millis(30_001)), 31);
        assert_eq!(retry_secs(Duration::ZERO), 1);
    }

    #[test]
    fn keys_are_normalised_emails_or_the_text_given() {
        assert_eq!(account_key(" Ada@X.io "), "ada@x.io");
        assert_eq!(account_key(" Not An Email "), "not an email");
    }
}

//! Settings, from (in rising precedence) defaults, an optional `flowstore.toml`, the
//! environment (flowstore's own variables and those of seeds 002 and 004) and
//! command-line flags. Every default lives here, in [`Settings::default`].
//!
//! One rule decides between sources: a later layer replaces what an earlier one
//! said, and nothing else is silently overridden. Two names of one setting in the
//! environment (`DB_POOL_MAX` and `DB_MAX_CONNECTIONS`, say) must agree; the TLS
//! settings must agree with each other and with the URL's own `sslmode` and
//! `sslrootcert` (see `flowstore_postgres::tls`). A disagreement is an error naming
//! the setting.

use std::path::{Path, PathBuf};
use std::time::Duration;

use flowstore_core::admin::{parse_duration, RetentionPolicy};
use flowstore_core::crypto::{Key, Keyring};
use flowstore_core::model::engine::EngineSettings;
use flowstore_core::model::integration::Destinations;
use flowstore_core::store::KeySource;
use flowstore_core::{StoreError, StoreResult};
use serde::Deserialize;

/// Everything flowstore needs to reach its database.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// The database URL; the backend follows from it.
    pub database_url: String,
    /// Connections kept open when idle.
    pub pool_min: u32,
    /// Most connections in the pool.
    pub pool_max: u32,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
    /// How long to wait for a connection (and, on SQLite, for a lock).
    pub connect_timeout: Duration,
    /// Longest a statement may run (PostgreSQL).
    pub statement_timeout: Duration,
    /// Longest a statement may wait for a lock (PostgreSQL).
    pub lock_timeout: Duration,
    /// When a SQLite commit is durable: `full` (every commit synced, the default) or
    /// `normal` (synced at checkpoints; a power loss may undo the newest commits).
    pub sqlite_synchronous: flowstore_sqlite::Synchronous,
    /// TLS to PostgreSQL (`DB_SSL`, `DB_SSL_MODE`, `DB_SSL_REJECT_UNAUTHORIZED`,
    /// `DB_SSL_CA`), weighed with the URL's `sslmode`/`sslrootcert` on connecting.
    /// SQLite has no connection to protect: a setting that asks for TLS with a
    /// SQLite URL is refused by [`Settings::check`].
    pub tls: flowstore_postgres::TlsSettings,
    /// Statements running at least this long are logged, counted and listed as slow
    /// (`FLOWSTORE_SLOW_QUERY_MS`); `None` (`0` or `off`) disables the report.
    pub slow_query_threshold: Option<Duration>,
    /// Log every statement.
    pub db_debug: bool,
    /// Whether `database_url` goes through a connection pooler such as PgBouncer,
    /// and in which mode (`DB_POOLER`: `none`, `session` or `transaction`).
    pub pooler: flowstore_postgres::Pooler,
    /// A URL that reaches PostgreSQL without the pooler, for migrations, `LISTEN`
    /// and the tools (`DATABASE_DIRECT_URL`); required with a transaction pooler.
    pub direct_url: Option<String>,
    /// A replica's URL, for the reads that tolerate lag (`DATABASE_READ_URL`).
    pub read_url: Option<String>,
    /// The encryption key (64 hex characters or base64 of 32 bytes). Never printed.
    pub encryption_key: Option<String>,
    /// Older keys that may still open values sealed before a rotation.
    pub previous_keys: Vec<String>,
    /// The key file used when no key is given; created with mode 0600 on first use.
    pub key_file: PathBuf,
    /// Delete finished work older than this, on a schedule, while `serve` runs; off
    /// when `None`.
    pub retention: Option<RetentionPolicy>,
    /// Webhook destinations allowed beyond public addresses: CIDRs, addresses,
    /// host names or `*.domain` (see `Destinations` in flowstore-core).
    pub webhook_allow: Vec<String>,
    /// Backups: the directory and schedule of `serve`'s, and the secret archives
    /// are encrypted with.
    pub backup: BackupSettings,
    /// Password-reset and verification mail (see [`MailSettings`]).
    pub mail: MailSettings,
    /// What the engine writes besides what its guarantees need
    /// (`FLOWSTORE_CLAIM_EVENTS`, `[engine] claim_events`).
    pub engine: EngineSettings,
}

/// Where and how often `serve` writes backup archives, how many it keeps, and the
/// secret that encrypts archives (`FLOWSTORE_BACKUP_*`, `[backup]`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BackupSettings {
    /// How often `serve` writes an archive; off when `None`.
    pub interval: Option<Duration>,
    /// The directory of scheduled archives (and of `backup list|prune`).
    pub dir: Option<PathBuf>,
    /// How many archives the schedule keeps (default 7).
    pub keep: Option<usize>,
    /// The passphrase archives are encrypted with (environment only). Never printed.
    pub passphrase: Option<String>,
    /// A file whose first line is that passphrase.
    pub passphrase_file: Option<PathBuf>,
    /// A file holding a 32-byte key (64 hex characters or base64) instead.
    pub key_file: Option<PathBuf>,
}

impl std::fmt::Debug for BackupSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupSettings")
            .field("interval", &self.interval)
            .field("dir", &self.dir)
            .field("keep", &self.keep)
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "<redacted>"),
            )
            .field("passphrase_file", &self.passphrase_file)
            .field("key_file", &self.key_file)
            .finish()
    }
}

/// The `[backup]` part of `flowstore.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBackup {
    interval: Option<String>,
    dir: Option<PathBuf>,
    keep: Option<usize>,
    passphrase_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &redact_url(&self.database_url))
            .field("pool_min", &self.pool_min)
            .field("pool_max", &self.pool_max)
            .field("idle_timeout", &self.idle_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .field("sqlite_synchronous", &self.sqlite_synchronous)
            .field("tls", &self.tls)
            .field("slow_query_threshold", &self.slow_query_threshold)
            .field("db_debug", &self.db_debug)
            .field("pooler", &self.pooler)
            .field("direct_url", &self.direct_url.as_deref().map(redact_url))
            .field("read_url", &self.read_url.as_deref().map(redact_url))
            .field(
                "encryption_key",
                &self.encryption_key.as_ref().map(|_| "<redacted>"),
            )
            .field("key_file", &self.key_file)
            .field("retention", &self.retention)
            .field("webhook_allow", &self.webhook_allow)
            .field("backup", &self.backup)
            .field("mail", &self.mail)
            .field("engine", &self.engine)
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_url: "sqlite://flowstore.db".into(),
            pool_min: 1,
            pool_max: 10,
            idle_timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(5),
            sqlite_synchronous: flowstore_sqlite::Synchronous::Full,
            tls: Default::default(),
            slow_query_threshold: Some(flowstore_core::slow::DEFAULT_THRESHOLD),
            db_debug: false,
            pooler: flowstore_postgres::Pooler::None,
            direct_url: None,
            read_url: None,
            encryption_key: None,
            previous_keys: Vec::new(),
            key_file: PathBuf::from("flowstore.key"),
            retention: None,
            webhook_allow: Vec::new(),
            backup: BackupSettings::default(),
            mail: MailSettings::default(),
            engine: EngineSettings::default(),
        }
    }
}

/// The `[database]` part of `flowstore.toml`; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDatabase {
    url: Option<String>,
    pool_min: Option<u32>,
    pool_max: Option<u32>,
    idle_timeout_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
    statement_timeout_ms: Option<u64>,
    lock_timeout_ms: Option<u64>,
    sqlite_synchronous: Option<String>,
    ssl: Option<bool>,
    ssl_mode: Option<String>,
    ssl_reject_unauthorized: Option<bool>,
    ssl_ca: Option<PathBuf>,
    /// Milliseconds, or `"off"`.
    slow_query_ms: Option<toml::Value>,
    debug: Option<bool>,
    key_file: Option<PathBuf>,
    pooler: Option<String>,
    direct_url: Option<String>,
    read_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    #[serde(default)]
    database: FileDatabase,
    /// `[retention] older_than = "90d"`, `interval = "1h"`.
    #[serde(default)]
    retention: Option<RetentionPolicy>,
    /// `[webhooks] allow = ["10.1.0.0/16", "hooks.corp.internal"]`.
    #[serde(default)]
    webhooks: FileWebhooks,
    /// `[backup] interval = "6h"`, `dir`, `keep`, `passphrase_file`, `key_file`.
    #[serde(default)]
    backup: FileBackup,
    /// `[mail] smtp_url`, `from`, `public_url`.
    #[serde(default)]
    mail: MailSettings,
    /// `[engine] claim_events = false`.
    #[serde(default)]
    engine: FileEngine,
}

/// The `[engine]` part of `flowstore.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEngine {
    claim_events: Option<bool>,
}

/// The `[webhooks]` part of `flowstore.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWebhooks {
    allow: Option<Vec<String>>,
}

impl Settings {
    /// Defaults, then `flowstore.toml` if present in the working directory, then the
    /// process environment.
    pub fn from_env() -> StoreResult<Settings> {
        let file = Path::new("flowstore.toml");
        Settings::load(file.exists().then_some(file), &|k| std::env::var(k).ok())
    }

    /// Defaults, then the TOML file `file`, then the variables `env` returns.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> StoreResult<Settings> {
        let mut s = Settings::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                StoreError::invalid("config", format!("cannot read {}: {e}", path.display()))
            })?;
            let f: FileSettings = toml::from_str(&text).map_err(|e| {
                StoreError::invalid("config", format!("{}: {}", path.display(), e.message()))
            })?;
            s.retention = f.retention;
            s.mail = f.mail;
            if let Some(v) = f.engine.claim_events {
                s.engine.claim_events = v;
            }
            if let Some(v) = f.webhooks.allow {
                s.webhook_allow = v;
            }
            let b = f.backup;
            if let Some(v) = b.interval {
                s.backup.interval = Some(parse_duration("[backup] interval", &v)?);
            }
            s.backup.dir = b.dir.or(s.backup.dir);
            s.backup.keep = b.keep.or(s.backup.keep);
            s.backup.passphrase_file = b.passphrase_file.or(s.backup.passphrase_file);
            s.backup.key_file = b.key_file.or(s.backup.key_file);
            let d = f.database;
            if let Some(v) = d.url {
                s.database_url = v;
            }
            if let Some(v) = d.pool_min {
                s.pool_min = v;
            }
            if let Some(v) = d.pool_max {
                s.pool_max = v;
            }
            if let Some(v) = d.idle_timeout_ms {
                s.idle_timeout = Duration::from_millis(v);
            }
            if let Some(v) = d.connect_timeout_ms {
                s.connect_timeout = Duration::from_millis(v);
            }
            if let Some(v) = d.statement_timeout_ms {
                s.statement_timeout = Duration::from_millis(v);
            }
            if let Some(v) = d.lock_timeout_ms {
                s.lock_timeout = Duration::from_millis(v);
            }
            if let Some(v) = d.sqlite_synchronous {
                s.sqlite_synchronous = v.parse()?;
            }
            if let Some(v) = d.ssl {
                s.tls.ssl = Some(v);
            }
            if let Some(v) = d.ssl_mode {
                s.tls.mode = Some(flowstore_postgres::SslMode::parse("ssl_mode", &v)?);
            }
            if let Some(v) = d.ssl_reject_unauthorized {
                s.tls.reject_unauthorized = Some(v);
            }
            if let Some(v) = d.ssl_ca {
                s.tls.root_cert = Some(v);
            }
            if let Some(v) = d.slow_query_ms {
                let text = match v {
                    toml::Value::String(t) => t,
                    toml::Value::Integer(n) => n.to_string(),
                    _ => {
                        return Err(StoreError::invalid(
                            "slow_query_ms",
                            "must be a number of milliseconds or \"off\"",
                        ))
                    }
                };
                s.slow_query_threshold = parse_threshold("slow_query_ms", &text)?;
            }
            if let Some(v) = d.debug {
                s.db_debug = v;
            }
            if let Some(v) = d.key_file {
                s.key_file = v;
            }
            if let Some(v) = d.pooler {
                s.pooler = flowstore_postgres::Pooler::parse("pooler", &v)?;
            }
            s.direct_url = d.direct_url.or(s.direct_url);
            s.read_url = d.read_url.or(s.read_url);
        }
        s.apply_env(env)?;
        s.mail.apply_env(env);
        // The TLS settings are weighed with the URL once the flags have had their
        // say on it (`check`, and again on connecting).
        s.check_values()?;
        Ok(s)
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> StoreResult<()> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        if let Some(url) = get("DATABASE_URL") {
            self.database_url = url;
        } else if get("DB_HOST").is_some() || get("DB_NAME").is_some() {
            self.database_url = postgres_url_from_parts(&get);
        }
        // Seeds 002, 003 and 004 name the pool sizes differently; every name is
        // honoured, and two that disagree are an error.
        if let Some(v) = aliased(
            &get,
            &["DB_POOL_MIN", "DB_MIN_CONNECTIONS", "DATABASE_POOL_MIN"],
            parse_num,
        )? {
            self.pool_min = v;
        }
        if let Some(v) = aliased(
            &get,
            &["DB_POOL_MAX", "DB_MAX_CONNECTIONS", "DATABASE_POOL_MAX"],
            parse_num,
        )? {
            self.pool_max = v;
        }
        if let Some(v) = get("DB_IDLE_TIMEOUT") {
            self.idle_timeout = parse_ms("DB_IDLE_TIMEOUT", &v)?;
        }
        if let Some(v) = get("DB_CONNECTION_TIMEOUT") {
            self.connect_timeout = parse_ms("DB_CONNECTION_TIMEOUT", &v)?;
        }
        if let Some(v) = aliased(
            &get,
            &["DB_STATEMENT_TIMEOUT", "DB_QUERY_TIMEOUT"],
            parse_ms,
        )? {
            self.statement_timeout = v;
        }
        if let Some(v) = get("DB_LOCK_TIMEOUT") {
            self.lock_timeout = parse_ms("DB_LOCK_TIMEOUT", &v)?;
        }
        if let Some(v) = get("FLOWSTORE_SQLITE_SYNCHRONOUS") {
            self.sqlite_synchronous = v.parse()?;
        }
        if let Some(v) = get("DB_SSL") {
            self.tls.ssl = Some(parse_bool("DB_SSL", &v)?);
        }
        if let Some(v) = get("DB_SSL_MODE") {
            self.tls.mode = Some(flowstore_postgres::SslMode::parse("DB_SSL_MODE", &v)?);
        }
        if let Some(v) = get("DB_SSL_REJECT_UNAUTHORIZED") {
            self.tls.reject_unauthorized = Some(parse_bool("DB_SSL_REJECT_UNAUTHORIZED", &v)?);
        }
        if let Some(v) = get("DB_SSL_CA") {
            self.tls.root_cert = Some(PathBuf::from(v));
        }
        if let Some(v) = get("FLOWSTORE_SLOW_QUERY_MS") {
            self.slow_query_threshold = parse_threshold("FLOWSTORE_SLOW_QUERY_MS", &v)?;
        }
        if let Some(v) = get("DB_DEBUG") {
            self.db_debug = parse_bool("DB_DEBUG", &v)?;
        }
        if let Some(v) = get("FLOWSTORE_CLAIM_EVENTS") {
            self.engine.claim_events = parse_bool("FLOWSTORE_CLAIM_EVENTS", &v)?;
        }
        if let Some(v) = get("DB_POOLER") {
            self.pooler = flowstore_postgres::Pooler::parse("DB_POOLER", &v)?;
        }
        if let Some(v) = get("DATABASE_DIRECT_URL") {
            self.direct_url = Some(v);
        }
        if let Some(v) = get("DATABASE_READ_URL") {
            self.read_url = Some(v);
        }
        if let Some(v) = get("ENCRYPTION_KEY") {
            self.encryption_key = Some(v);
        }
        if let Some(v) = get("ENCRYPTION_KEY_PREVIOUS") {
            self.previous_keys = split_list(&v);
        }
        if let Some(v) = get("FLOWSTORE_KEY_FILE") {
            self.key_file = PathBuf::from(v);
        }
        if let Some(v) = get("FLOWSTORE_WEBHOOK_ALLOW") {
            self.webhook_allow = split_list(&v);
        }
        if let Some(v) = get("FLOWSTORE_BACKUP_INTERVAL") {
            self.backup.interval = Some(parse_duration("FLOWSTORE_BACKUP_INTERVAL", &v)?);
        }
        if let Some(v) = get("FLOWSTORE_BACKUP_DIR") {
            self.backup.dir = Some(PathBuf::from(v));
        }
        if let Some(v) = get("FLOWSTORE_BACKUP_KEEP") {
            self.backup.keep = Some(parse_num("FLOWSTORE_BACKUP_KEEP", &v)? as usize);
        }
        // The passphrase or key file of the environment replaces the file's, whichever
        // the file named: the secret is one setting.
        let passphrase = env("FLOWSTORE_BACKUP_PASSPHRASE").filter(|v| !v.is_empty());
        let passphrase_file = get("FLOWSTORE_BACKUP_PASSPHRASE_FILE").map(PathBuf::from);
        let key_file = get("FLOWSTORE_BACKUP_KEY_FILE").map(PathBuf::from);
        let given = [
            passphrase.is_some(),
            passphrase_file.is_some(),
            key_file.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(StoreError::invalid(
                "FLOWSTORE_BACKUP_PASSPHRASE",
                "give one of FLOWSTORE_BACKUP_PASSPHRASE, FLOWSTORE_BACKUP_PASSPHRASE_FILE and FLOWSTORE_BACKUP_KEY_FILE",
            ));
        }
        if given.contains(&true) {
            self.backup.passphrase = passphrase;
            self.backup.passphrase_file = passphrase_file;
            self.backup.key_file = key_file;
        }
        if let Some(v) = get("FLOWSTORE_RETENTION") {
            let older_than = parse_duration("FLOWSTORE_RETENTION", &v)?;
            let interval = match get("FLOWSTORE_RETENTION_INTERVAL") {
                Some(i) => parse_duration("FLOWSTORE_RETENTION_INTERVAL", &i)?,
                None => Duration::from_secs(3600),
            };
            self.retention = Some(RetentionPolicy {
                older_than,
                interval,
            });
        }
        Ok(())
    }

    /// Refuses settings that cannot work, naming the setting.
    pub fn check(&self) -> StoreResult<()> {
        self.check_values()?;
        self.check_tls()
    }

    /// [`Settings::check`] but for what depends on the URL.
    fn check_values(&self) -> StoreResult<()> {
        if self.backup.passphrase_file.is_some() && self.backup.key_file.is_some() {
            return Err(StoreError::invalid(
                "[backup] key_file",
                "give a passphrase file or a key file, not both",
            ));
        }
        if self.backup.keep == Some(0) {
            return Err(StoreError::invalid(
                "FLOWSTORE_BACKUP_KEEP",
                "must be at least 1",
            ));
        }
        if self.pool_max == 0 {
            return Err(StoreError::invalid("pool_max", "must be at least 1"));
        }
        if self.pool_min > self.pool_max {
            return Err(StoreError::invalid(
                "pool_min",
                format!("{} is above pool_max {}", self.pool_min, self.pool_max),
            ));
        }
        if let Some(k) = &self.encryption_key {
            Key::parse(k)?;
        }
        Destinations::new(&self.webhook_allow)?;
        self.mail.check()?;
        Ok(())
    }

    /// Refuses TLS settings that contradict each other or the URL, and any that asks
    /// for TLS with a SQLite URL: such a database has no connection to protect, and
    /// a deployment that believes it requires TLS should hear that it gets none.
    pub fn check_tls(&self) -> StoreResult<()> {
        let url = self.database_url.trim();
        // Settings that contradict each other are refused whatever the database.
        self.tls.resolve(url)?;
        if url.starts_with("sqlite:") {
            let postgres_only = [
                ("DB_POOLER", self.pooler != flowstore_postgres::Pooler::None),
                ("DATABASE_DIRECT_URL", self.direct_url.is_some()),
                ("DATABASE_READ_URL", self.read_url.is_some()),
            ];
            if let Some((setting, _)) = postgres_only.iter().find(|(_, set)| *set) {
                return Err(StoreError::invalid(
                    *setting,
                    "is a PostgreSQL setting, and DATABASE_URL names a SQLite database",
                ));
            }
            if let Some((setting, said)) = self.tls.asks_for_tls() {
                return Err(StoreError::invalid(
                    setting,
                    format!(
                        "{said} asks for TLS, which only a PostgreSQL connection has: \
                         DATABASE_URL names a SQLite database (unset the TLS settings for it)"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Where the encryption key comes from under these settings.
    pub fn key_source(&self) -> StoreResult<KeySource> {
        match &self.encryption_key {
            Some(k) => {
                let mut ring = Keyring::new(Key::parse(k)?);
                for old in &self.previous_keys {
                    ring = ring.with_previous(Key::parse(old)?);
                }
                Ok(KeySource::given(ring))
            }
            None => Ok(KeySource::file(self.key_file.clone())),
        }
    }
}

fn postgres_url_from_parts(get: &dyn Fn(&str) -> Option<String>) -> String {
    let host = get("DB_HOST").unwrap_or_else(|| "localhost".into());
    let port = get("DB_PORT").unwrap_or_else(|| "5432".into());
    let name = get("DB_NAME").unwrap_or_else(|| "flowstore".into());
    let user = get("DB_USER").unwrap_or_else(|| "postgres".into());
    let mut url = url::Url::parse("postgres://localhost/").expect("static URL parses");
    let _ = url.set_host(Some(&host));
    let _ = url.set_port(port.parse().ok());
    let _ = url.set_username(&user);
    if let Some(pw) = get("DB_PASSWORD") {
        let _ = url.set_password(Some(&pw));
    }
    url.set_path(&name);
    url.to_string()
}

/// A comma-separated list, entries trimmed, blanks dropped.
fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

fn parse_num(name: &str, v: &str) -> StoreResult<u32> {
    v.trim()
        .parse()
        .map_err(|_| StoreError::invalid(name, format!("{v:?} is not a whole number")))
}

fn parse_ms(name: &str, v: &str) -> StoreResult<Duration> {
    v.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| StoreError::invalid(name, format!("{v:?} is not a number of milliseconds")))
}

/// The value of the first of `names` that is set, parsed; another of them set to
/// a different value is an error naming both, since they are one setting.
fn aliased<T: PartialEq + std::fmt::Debug>(
    get: &dyn Fn(&str) -> Option<String>,
    names: &[&str],
    parse: fn(&str, &str) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    let mut found: Option<(&str, String, T)> = None;
    for name in names {
        let Some(raw) = get(name) else { continue };
        let value = parse(name, &raw)?;
        match &found {
            Some((first, first_raw, v)) if *v != value => {
                return Err(StoreError::invalid(
                    *name,
                    format!("{raw:?} contradicts {first}={first_raw:?}: both name one setting"),
                ))
            }
            Some(_) => {}
            None => found = Some((name, raw, value)),
        }
    }
    Ok(found.map(|(_, _, v)| v))
}

/// A slow-statement threshold in milliseconds; `0` or `off` switches the report off.
pub fn parse_threshold(name: &str, v: &str) -> StoreResult<Option<Duration>> {
    let v = v.trim();
    if v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    match v.parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(ms) => Ok(Some(Duration::from_millis(ms))),
        Err(_) => Err(StoreError::invalid(
            name,
            format!("{v:?} is not a number of milliseconds or off"),
        )),
    }
}

fn parse_bool(name: &str, v: &str) -> StoreResult<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(StoreError::invalid(
            name,
            format!("{v:?} is not true or false"),
        )),
    }
}

/// The URL with any password replaced by `***`, for messages and logs.
/// Password-reset and email-verification mail: the SMTP server, the sender and
/// the public address of the dashboard that links point at (`FLOWSTORE_SMTP_URL`,
/// `FLOWSTORE_MAIL_FROM`, `FLOWSTORE_PUBLIC_URL`; `[mail] smtp_url`, `from`,
/// `public_url`; `serve --smtp-url`, `--mail-from`, `--public-url`). Without an SMTP
/// URL no mail is sent. The SMTP URL may carry a password: never printed.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    /// `smtp://[user:password@]host[:port]` (plain; `?tls=required` for STARTTLS)
    /// or `smtps://…` (TLS).
    pub smtp_url: Option<String>,
    /// The sender's address.
    pub from: Option<String>,
    /// Where people reach the dashboard, such as `https://flowstore.example.com`.
    pub public_url: Option<String>,
}

impl std::fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSettings")
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("from", &self.from)
            .field("public_url", &self.public_url)
            .finish()
    }
}

impl MailSettings {
    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("FLOWSTORE_SMTP_URL") {
            self.smtp_url = Some(v);
        }
        if let Some(v) = get("FLOWSTORE_MAIL_FROM") {
            self.from = Some(v);
        }
        if let Some(v) = get("FLOWSTORE_PUBLIC_URL") {
            self.public_url = Some(v);
        }
    }

    /// Refuses an SMTP URL that says neither `smtp://` nor `smtps://` (checked as the
    /// settings load; flags may still add what [`MailSettings::check_complete`]
    /// requires).
    pub fn check(&self) -> StoreResult<()> {
        match &self.smtp_url {
            Some(smtp) if !(smtp.starts_with("smtp://") || smtp.starts_with("smtps://")) => {
                Err(StoreError::invalid(
                    "FLOWSTORE_SMTP_URL",
                    format!("{} is not an smtp:// or smtps:// URL", redact_url(smtp)),
                ))
            }
            _ => Ok(()),
        }
    }

    /// [`MailSettings::check`], and with an SMTP URL the sender and the public URL
    /// are required too (the server checks the rest of their form when it starts).
    pub fn check_complete(&self) -> StoreResult<()> {
        self.check()?;
        if self.smtp_url.is_none() {
            return Ok(());
        }
        if self.from.is_none() {
            return Err(StoreError::invalid(
                "FLOWSTORE_MAIL_FROM",
                "is required with FLOWSTORE_SMTP_URL: the address mail is sent from",
            ));
        }
        if self.public_url.is_none() {
            return Err(StoreError::invalid(
                "FLOWSTORE_PUBLIC_URL",
                "is required with FLOWSTORE_SMTP_URL: where the links of mail point",
            ));
        }
        Ok(())
    }
}

pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn defaults_are_sqlite() {
        let s = Settings::load(None, &env(&[])).unwrap();
        assert_eq!(s.database_url, "sqlite://flowstore.db");
    }

    #[test]
    fn seed_002_variables_build_a_postgres_url() {
        let s = Settings::load(
            None,
            &env(&[
                ("DB_HOST", "db"),
                ("DB_NAME", "tm"),
                ("DB_USER", "u"),
                ("DB_PASSWORD", "p w"),
                ("DB_POOL_MAX", "20"),
                ("DB_STATEMENT_TIMEOUT", "5000"),
                ("DB_SSL", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(s.database_url, "postgres://u:p%20w@db:5432/tm");
        assert_eq!(s.pool_max, 20);
        assert_eq!(s.statement_timeout, Duration::from_secs(5));
        assert_eq!(s.tls.ssl, Some(true));
        assert!(!format!("{s:?}").contains("p%20w"));
    }

    #[test]
    fn seed_004_variables_and_precedence() {
        let dir = std::env::temp_dir().join(format!("fs-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("flowstore.toml");
        std::fs::write(
            &file,
            "[database]\nurl = \"sqlite://from-file.db\"\npool_max = 3\n",
        )
        .unwrap();
        let s = Settings::load(Some(&file), &env(&[("DATABASE_POOL_MAX", "7")])).unwrap();
        assert_eq!(s.database_url, "sqlite://from-file.db");
        assert_eq!(s.pool_max, 7);
        std::fs::write(
            &file,
            "[retention]\nolder_than = \"90d\"\ninterval = \"6h\"\n",
        )
        .unwrap();
        let s = Settings::load(Some(&file), &env(&[])).unwrap();
        let r = s.retention.expect("retention read from the file");
        assert_eq!(r.older_than, Duration::from_secs(90 * 86_400));
        assert_eq!(r.interval, Duration::from_secs(6 * 3600));
        let s = Settings::load(None, &env(&[("FLOWSTORE_RETENTION", "30d")])).unwrap();
        assert_eq!(s.retention.unwrap().interval, Duration::from_secs(3600));
        assert!(Settings::load(None, &env(&[("FLOWSTORE_RETENTION", "soon")])).is_err());
        std::fs::write(&file, "[database]\nbogus = 1\n").unwrap();
        assert!(Settings::load(Some(&file), &env(&[])).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn claim_events_come_from_the_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("flowstore.toml");
        assert!(Settings::load(None, &env(&[])).unwrap().engine.claim_events);
        std::fs::write(&file, "[engine]\nclaim_events = false\n").unwrap();
        let s = Settings::load(Some(&file), &env(&[])).unwrap();
        assert!(!s.engine.claim_events);
        let s = Settings::load(Some(&file), &env(&[("FLOWSTORE_CLAIM_EVENTS", "on")])).unwrap();
        assert!(s.engine.claim_events, "the environment wins over the file");
        let s = Settings::load(None, &env(&[("FLOWSTORE_CLAIM_EVENTS", "false")])).unwrap();
        assert!(!s.engine.claim_events);
        let e = Settings::load(None, &env(&[("FLOWSTORE_CLAIM_EVENTS", "sometimes")])).unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid { field, .. } if field == "FLOWSTORE_CLAIM_EVENTS"),
            "{e:?}"
        );
        std::fs::write(&file, "[engine]\nclaim_event = false\n").unwrap();
        let e = Settings::load(Some(&file), &env(&[])).unwrap_err();
        assert!(e.to_string().contains("claim_event"), "{e}");
    }

    #[test]
    fn mail_comes_from_the_file_or_the_environment_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("flowstore.toml");
        std::fs::write(
            &file,
            "[mail]\nsmtp_url = \"smtp://u:pw@mail.example.com:2525\"\nfrom = \"fs@example.com\"\npublic_url = \"https://fs.example.com\"\n",
        )
        .unwrap();
        let s = Settings::load(Some(&file), &env(&[])).unwrap();
        assert_eq!(s.mail.from.as_deref(), Some("fs@example.com"));
        assert!(
            !format!("{s:?}").contains("pw@"),
            "the password is not printed"
        );
        let s = Settings::load(
            Some(&file),
            &env(&[("FLOWSTORE_MAIL_FROM", "other@example.com")]),
        )
        .unwrap();
        assert_eq!(s.mail.from.as_deref(), Some("other@example.com"));
        // The flags of `serve` may still complete the settings: the sender and the
        // public URL are required once they have had their say.
        let s = Settings::load(None, &env(&[("FLOWSTORE_SMTP_URL", "smtp://localhost")])).unwrap();
        let e = s.mail.check_complete().unwrap_err();
        assert_eq!(e.field(), Some("FLOWSTORE_MAIL_FROM"));
        let e =
            Settings::load(None, &env(&[("FLOWSTORE_SMTP_URL", "http://localhost")])).unwrap_err();
        assert_eq!(e.field(), Some("FLOWSTORE_SMTP_URL"));
        assert_eq!(
            Settings::load(None, &env(&[])).unwrap().mail,
            MailSettings::default()
        );
    }

    #[test]
    fn webhook_allow_comes_from_the_file_or_the_environment() {
        let dir = std::env::temp_dir().join(format!("fs-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("flowstore.toml");
        assert!(Settings::load(None, &env(&[]))
            .unwrap()
            .webhook_allow
            .is_empty());
        std::fs::write(
            &file,
            "[webhooks]\nallow = [\"10.1.0.0/16\", \"hooks.corp.internal\"]\n",
        )
        .unwrap();
        let s = Settings::load(Some(&file), &env(&[])).unwrap();
        assert_eq!(s.webhook_allow, ["10.1.0.0/16", "hooks.corp.internal"]);
        let s = Settings::load(
            Some(&file),
            &env(&[("FLOWSTORE_WEBHOOK_ALLOW", "127.0.0.1/32, ::1 ,")]),
        )
        .unwrap();
        assert_eq!(s.webhook_allow, ["127.0.0.1/32", "::1"]);
        let e =
            Settings::load(None, &env(&[("FLOWSTORE_WEBHOOK_ALLOW", "10.0.0.0/99")])).unwrap_err();
        assert_eq!(e.field(), Some("webhook_allow"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = Settings::load(None, &env(&[("DB_POOL_MAX", "lots")])).unwrap_err();
        assert_eq!(e.field(), Some("DB_POOL_MAX"));
        let e = Settings::load(None, &env(&[("ENCRYPTION_KEY", "short")])).unwrap_err();
        assert_eq!(e.field(), Some("ENCRYPTION_KEY"));
        let e =
            Settings::load(None, &env(&[("DB_POOL_MIN", "5"), ("DB_POOL_MAX", "2")])).unwrap_err();
        assert_eq!(e.field(), Some("pool_min"));
    }

    #[test]
    fn seed_003_names_are_aliases_that_must_agree() {
        let s = Settings::load(
            None,
            &env(&[
                ("DB_MIN_CONNECTIONS", "5"),
                ("DB_MAX_CONNECTIONS", "20"),
                ("DB_QUERY_TIMEOUT", "30000"),
                ("DB_STATEMENT_TIMEOUT", "30000"),
            ]),
        )
        .unwrap();
        assert_eq!((s.pool_min, s.pool_max), (5, 20));
        assert_eq!(s.statement_timeout, Duration::from_secs(30));
        let s = Settings::load(None, &env(&[("DB_QUERY_TIMEOUT", "250")])).unwrap();
        assert_eq!(s.statement_timeout, Duration::from_millis(250));
        let e = Settings::load(
            None,
            &env(&[("DB_POOL_MAX", "20"), ("DB_MAX_CONNECTIONS", "30")]),
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("DB_MAX_CONNECTIONS"));
        assert!(e.to_string().contains("DB_POOL_MAX"), "{e}");
        let e = Settings::load(
            None,
            &env(&[
                ("DB_STATEMENT_TIMEOUT", "1000"),
                ("DB_QUERY_TIMEOUT", "2000"),
            ]),
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("DB_QUERY_TIMEOUT"));
        let e = Settings::load(None, &env(&[("DB_MIN_CONNECTIONS", "few")])).unwrap_err();
        assert_eq!(e.field(), Some("DB_MIN_CONNECTIONS"));
    }

    #[test]
    fn tls_settings_are_read_and_checked_with_the_url() {
        use flowstore_postgres::SslMode;
        let pg = [("DATABASE_URL", "postgres://db/x")];
        let s = Settings::load(
            None,
            &env(&[
                pg[0],
                ("DB_SSL_MODE", "verify-ca"),
                ("DB_SSL_CA", "/etc/ssl/db-ca.pem"),
                ("DB_SSL_REJECT_UNAUTHORIZED", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(s.tls.mode, Some(SslMode::VerifyCa));
        assert_eq!(
            s.tls.root_cert.as_deref(),
            Some(Path::new("/etc/ssl/db-ca.pem"))
        );
        s.check().unwrap();
        let e = Settings::load(None, &env(&[pg[0], ("DB_SSL_MODE", "sometimes")])).unwrap_err();
        assert_eq!(e.field(), Some("DB_SSL_MODE"));
        let e = Settings::load(
            None,
            &env(&[pg[0], ("DB_SSL_REJECT_UNAUTHORIZED", "maybe")]),
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("DB_SSL_REJECT_UNAUTHORIZED"));
        // DB_SSL=false with verify-full: refused, naming DB_SSL.
        let s = Settings::load(
            None,
            &env(&[pg[0], ("DB_SSL", "false"), ("DB_SSL_MODE", "verify-full")]),
        )
        .unwrap();
        let e = s.check().unwrap_err();
        assert_eq!(e.field(), Some("DB_SSL"));
        assert!(e.to_string().contains("verify-full"), "{e}");
        // The URL's sslmode and DB_SSL_MODE must agree.
        let s = Settings::load(
            None,
            &env(&[
                ("DATABASE_URL", "postgres://db/x?sslmode=disable"),
                ("DB_SSL_MODE", "verify-full"),
            ]),
        )
        .unwrap();
        assert_eq!(s.check().unwrap_err().field(), Some("DB_SSL_MODE"));
        // The file's names.
        let dir = std::env::temp_dir().join(format!("fs-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("flowstore.toml");
        std::fs::write(
            &file,
            "[database]\nurl = \"postgres://db/x\"\nssl_mode = \"verify-full\"\nssl_ca = \"/ca.pem\"\nslow_query_ms = 250\n",
        )
        .unwrap();
        let s = Settings::load(Some(&file), &env(&[])).unwrap();
        assert_eq!(s.tls.mode, Some(SslMode::VerifyFull));
        assert_eq!(s.slow_query_threshold, Some(Duration::from_millis(250)));
        std::fs::write(&file, "[database]\nslow_query_ms = \"off\"\n").unwrap();
        let s = Settings::load(Some(&file), &env(&[])).unwrap();
        assert_eq!(s.slow_query_threshold, None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn sqlite_refuses_settings_that_ask_for_tls() {
        for (k, v) in [
            ("DB_SSL", "true"),
            ("DB_SSL_MODE", "verify-full"),
            ("DB_SSL_CA", "/ca.pem"),
        ] {
            let s = Settings::load(None, &env(&[(k, v)])).unwrap();
            let e = s.check().unwrap_err();
            assert_eq!(e.field(), Some(k), "{e}");
            assert!(e.to_string().contains("SQLite"), "{e}");
        }
        // Seed 002's own example: TLS off, verification asked for if it were on.
        let s = Settings::load(
            None,
            &env(&[("DB_SSL", "false"), ("DB_SSL_REJECT_UNAUTHORIZED", "true")]),
        )
        .unwrap();
        s.check().unwrap();
        let s = Settings::load(None, &env(&[("DB_SSL_MODE", "prefer")])).unwrap();
        s.check().unwrap();
    }

    #[test]
    fn backup_settings_come_from_the_file_or_the_environment() {
        let dir = std::env::temp_dir().join(format!("fs-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("flowstore.toml");
        std::fs::write(
            &file,
            "[backup]\ninterval = \"6h\"\ndir = \"/var/backups/fs\"\nkeep = 3\npassphrase_file = \"/etc/fs/pass\"\n",
        )
        .unwrap();
        let s = Settings::load(Some(&file), &env(&[])).unwrap();
        assert_eq!(s.backup.interval, Some(Duration::from_secs(6 * 3600)));
        assert_eq!(s.backup.dir, Some(PathBuf::from("/var/backups/fs")));
        assert_eq!(s.backup.keep, Some(3));
        assert_eq!(
            s.backup.passphrase_file,
            Some(PathBuf::from("/etc/fs/pass"))
        );
        // The environment's secret replaces the file's, and is never printed.
        let s = Settings::load(
            Some(&file),
            &env(&[
                ("FLOWSTORE_BACKUP_PASSPHRASE", "sekrit words"),
                ("FLOWSTORE_BACKUP_KEEP", "9"),
                ("FLOWSTORE_BACKUP_INTERVAL", "30m"),
            ]),
        )
        .unwrap();
        assert_eq!(s.backup.passphrase.as_deref(), Some("sekrit words"));
        assert_eq!(s.backup.passphrase_file, None);
        assert_eq!(s.backup.keep, Some(9));
        assert_eq!(s.backup.interval, Some(Duration::from_secs(1800)));
        assert!(!format!("{s:?}").contains("sekrit"));
        let e = Settings::load(
            None,
            &env(&[
                ("FLOWSTORE_BACKUP_PASSPHRASE", "x"),
                ("FLOWSTORE_BACKUP_KEY_FILE", "/k"),
            ]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("FLOWSTORE_BACKUP_KEY_FILE"), "{e}");
        let e = Settings::load(None, &env(&[("FLOWSTORE_BACKUP_INTERVAL", "often")])).unwrap_err();
        assert!(e.to_string().contains("FLOWSTORE_BACKUP_INTERVAL"), "{e}");
        let e = Settings::load(None, &env(&[("FLOWSTORE_BACKUP_KEEP", "0")])).unwrap_err();
        assert!(e.to_string().contains("FLOWSTORE_BACKUP_KEEP"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_slow_query_threshold() {
        let s = Settings::load(None, &env(&[])).unwrap();
        assert_eq!(s.slow_query_threshold, Some(Duration::from_millis(1000)));
        for (v, want) in [
            ("250", Some(Duration::from_millis(250))),
            ("0", None),
            ("off", None),
            (" OFF ", None),
        ] {
            let s = Settings::load(None, &env(&[("FLOWSTORE_SLOW_QUERY_MS", v)])).unwrap();
            assert_eq!(s.slow_query_threshold, want, "{v}");
        }
        let e = Settings::load(None, &env(&[("FLOWSTORE_SLOW_QUERY_MS", "1s")])).unwrap_err();
        assert_eq!(e.field(), Some("FLOWSTORE_SLOW_QUERY_MS"));
    }
}

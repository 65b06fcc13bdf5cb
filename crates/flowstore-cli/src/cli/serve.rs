//! `flowstore serve` (the HTTP API of `flowstore-server`) and `flowstore apikeys`.

use clap::{Args, Subcommand, ValueEnum};
use flowstore_core::ids::{ApiKeyId, UserId};
use flowstore_core::model::identity::Role;
use flowstore_core::model::identity_access::NewApiKey;
use flowstore_core::PageRequest;
use flowstore_server::AppState;

use flowstore::{Store, StoreError};

/// How log lines are written.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// Options of `flowstore serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Log, count (`flowstore_slow_queries_total` in /metrics) and keep for
    /// `flowstore stats` every statement taking at least this many milliseconds;
    /// 0 or `off` switches it off. Replaces the environment's and the file's value
    /// [env: FLOWSTORE_SLOW_QUERY_MS] [toml: [database] slow_query_ms] [default: 1000]
    #[arg(long, value_name = "MS|off")]
    pub slow_query_ms: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "FLOWSTORE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Do not apply pending migrations at start (the schema must then be current).
    #[arg(long)]
    pub no_migrate: bool,
    /// Log format; the level comes from RUST_LOG (default `info`).
    #[arg(
        long,
        value_enum,
        env = "FLOWSTORE_LOG_FORMAT",
        default_value = "plain"
    )]
    pub log_format: LogFormat,
    /// Requests per second each API key may make, on average.
    #[arg(long, env = "FLOWSTORE_RATE_PER_SECOND", default_value_t = 100.0)]
    pub rate_per_second: f64,
    /// Requests a key may make at once before the rate applies.
    #[arg(long, env = "FLOWSTORE_RATE_BURST", default_value_t = 200.0)]
    pub rate_burst: f64,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "FLOWSTORE_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub body_limit: usize,
    /// Longest a request (other than an event stream) may take, in seconds.
    #[arg(long, env = "FLOWSTORE_REQUEST_TIMEOUT", default_value_t = 60)]
    pub request_timeout_secs: u64,
    /// Longest a client may take to send a request's head, in seconds, counted from
    /// when it connected or got its previous answer; idle and trickling connections
    /// are closed after it.
    #[arg(long, env = "FLOWSTORE_HEADER_TIMEOUT", default_value_t = 30)]
    pub header_timeout_secs: u64,
    /// How long a sign-in session lasts, such as 12h, 30m or 7d.
    #[arg(long, env = "FLOWSTORE_SESSION_TTL", default_value = "12h")]
    pub session_ttl: String,
    /// How often waiting claims and event streams look at the database while the
    /// change feed is down (or the database has none), such as 500ms or 2s.
    #[arg(long, env = "FLOWSTORE_POLL_INTERVAL", default_value = "500ms")]
    pub poll_interval: String,
    /// How often they look while the change feed is live (it wakes them when
    /// work or events are committed on any server): a safety net only.
    #[arg(long, env = "FLOWSTORE_SAFETY_POLL_INTERVAL", default_value = "10s")]
    pub safety_poll_interval: String,
    /// How long an API key looked up is trusted without asking the database; a
    /// change made on another server reaches this one through the change feed at
    /// once, or within this time while the feed is down.
    #[arg(long, env = "FLOWSTORE_KEY_CACHE_TTL", default_value = "10s")]
    pub key_cache_ttl: String,
    /// Longest a worker's claim may wait for work (its `wait_ms`).
    #[arg(long, env = "FLOWSTORE_MAX_CLAIM_WAIT", default_value = "30s")]
    pub max_claim_wait: String,
    /// How often expired leases are reaped, timeouts enforced and (PostgreSQL)
    /// events numbered.
    #[arg(long, env = "FLOWSTORE_MAINTENANCE_INTERVAL", default_value = "1s")]
    pub maintenance_interval: String,
    /// With a replica (DATABASE_READ_URL): how long after a caller's own write
    /// its lists and statistics are still read from the primary, so that it sees
    /// what it wrote; longer than the replica's usual lag.
    #[arg(long, env = "FLOWSTORE_READ_OWN_WRITES_FOR", default_value = "5s")]
    pub read_own_writes_for: String,
    /// Whether this server delivers webhooks (`false` leaves them to the other
    /// servers on the database; any one that does delivers each once).
    #[arg(long, env = "FLOWSTORE_WEBHOOK_DISPATCH", default_value_t = true, action = clap::ArgAction::Set)]
    pub webhook_dispatch: bool,
    /// Longest pause of the webhook dispatcher between two rounds when no event
    /// wakes it.
    #[arg(long, env = "FLOWSTORE_WEBHOOK_INTERVAL", default_value = "1s")]
    pub webhook_interval: String,
    /// Longest a webhook receiver may take to answer; a claimed delivery is kept
    /// from other dispatchers for six times this (at least a minute).
    #[arg(long, env = "FLOWSTORE_WEBHOOK_TIMEOUT", default_value = "10s")]
    pub webhook_timeout: String,
    /// Webhook destinations allowed besides public addresses, comma-separated:
    /// CIDRs (10.1.0.0/16, 127.0.0.1/32), addresses, host names or *.domain.
    /// Loopback, private, link-local, unique-local, CGNAT, multicast and metadata
    /// destinations are refused otherwise. Replaces the list from the environment
    /// or the file [env: FLOWSTORE_WEBHOOK_ALLOW] [toml: [webhooks] allow]
    #[arg(long, value_delimiter = ',', value_name = "CIDR|HOST")]
    pub webhook_allow: Option<Vec<String>>,
    /// Write a backup archive this often (such as 6h or 30m) into --backup-dir, named
    /// by its UTC creation time, then delete all but the newest --backup-keep. The
    /// first is due one interval after the newest archive already there. Failures are
    /// logged and counted (`flowstore_backups_total{result}` in /metrics) and never
    /// stop the server [env: FLOWSTORE_BACKUP_INTERVAL] [toml: [backup] interval]
    /// [default: off]
    #[arg(long, value_name = "DURATION")]
    pub backup_interval: Option<String>,
    /// The directory of scheduled archives, created when missing
    /// [env: FLOWSTORE_BACKUP_DIR] [toml: [backup] dir]
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<std::path::PathBuf>,
    /// How many archives of --backup-dir to keep; files that are not flowstore
    /// archives are never deleted [env: FLOWSTORE_BACKUP_KEEP] [toml: [backup] keep]
    /// [default: 7]
    #[arg(long, value_name = "N")]
    pub backup_keep: Option<usize>,
    /// Encrypt scheduled archives with the passphrase on the first line of FILE
    /// [env: FLOWSTORE_BACKUP_PASSPHRASE (the passphrase itself),
    /// FLOWSTORE_BACKUP_PASSPHRASE_FILE] [toml: [backup] passphrase_file]
    #[arg(long, value_name = "FILE", conflicts_with = "backup_key_file")]
    pub backup_passphrase_file: Option<std::path::PathBuf>,
    /// Encrypt scheduled archives with the 32-byte key in FILE (64 hex characters or
    /// base64) [env: FLOWSTORE_BACKUP_KEY_FILE] [toml: [backup] key_file]
    #[arg(long, value_name = "FILE")]
    pub backup_key_file: Option<std::path::PathBuf>,
    /// The SMTP server of password-reset and verification mail:
    /// smtp://[user:password@]host[:port] (add ?tls=required for STARTTLS) or
    /// smtps://… (TLS); without it no mail is sent [env: FLOWSTORE_SMTP_URL]
    /// [toml: [mail] smtp_url]
    #[arg(long, value_name = "URL")]
    pub smtp_url: Option<String>,
    /// The address mail is sent from [env: FLOWSTORE_MAIL_FROM] [toml: [mail] from]
    #[arg(long, value_name = "ADDRESS")]
    pub mail_from: Option<String>,
    /// Where people reach the dashboard, for the links of mail, such as
    /// https://flowstore.example.com [env: FLOWSTORE_PUBLIC_URL]
    /// [toml: [mail] public_url]
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
}

/// `flowstore apikeys …`.
#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// Create a key and print it (the only time it is shown).
    Create {
        /// A name to recognise it by (default: "<role> key (command line)").
        #[arg(long)]
        name: Option<String>,
        /// admin, user or viewer.
        #[arg(long, default_value = "user")]
        role: String,
        /// The user it acts for.
        #[arg(long)]
        user_id: Option<String>,
        /// What kinds of request it may make, comma-separated: read, write,
        /// execute, admin (default: everything its role allows).
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
    },
    /// List a user's keys (prefixes, roles, state; never the keys).
    List {
        /// Whose keys.
        #[arg(long)]
        user_id: String,
    },
    /// Revoke a key by its ID.
    Revoke {
        /// The key's ID.
        id: String,
    },
}

fn init_logs(format: LogFormat) {
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let output = match format {
        LogFormat::Plain => tracing_subscriber::fmt::layer().boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().json().boxed(),
    };
    // sqlx's own report of a slow statement (raw text) is left out: the slow layer
    // logs it again normalised, with its duration (target `flowstore::slow`).
    let output = output
        .with_filter(filter)
        .with_filter(filter_fn(|m| !flowstore_core::slow::is_driver_report(m)));
    let _ = tracing_subscriber::registry()
        .with(output)
        .with(flowstore_core::slow::layer())
        .try_init();
    flowstore_core::slow::keep_for_flush();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Runs the HTTP API until SIGTERM or Ctrl-C.
///
/// The port is taken first. Then the database is opened (created when it is a new
/// SQLite file), migrated unless `--no-migrate` and checked; while it cannot be
/// reached (PostgreSQL down or restarting, a disk not yet mounted), each failure is
/// logged with the reason and tried again with growing pauses (0.5 s doubling to
/// 30 s), so the server becomes ready when the database is. Errors that waiting
/// cannot fix (a bad URL, a wrong password, a schema from a newer flowstore) end it.
pub async fn serve(
    settings: &flowstore::config::Settings,
    args: ServeArgs,
) -> Result<(), StoreError> {
    // The flag wins over the environment and the file (already in the settings).
    let webhook_allow = args
        .webhook_allow
        .clone()
        .unwrap_or_else(|| settings.webhook_allow.clone());
    let destinations = flowstore_core::model::integration::Destinations::new(&webhook_allow)?;
    let mut timings = timings(&args)?;
    timings.mail = mail_config(settings, &args)?;
    let schedule = backup_schedule(settings, &args)?;
    init_logs(args.log_format);
    // The port first: a server that cannot listen must not make (and print) the one
    // bootstrap key and then exit, leaving the next start with none to show.
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| {
            StoreError::invalid("listen", format!("cannot listen on {}: {e}", args.listen))
        })?;
    let mut shutdown = Box::pin(shutdown_signal());
    let store = tokio::select! {
        store = open_when_reachable(settings, args.no_migrate) => store?,
        _ = &mut shutdown => {
            tracing::info!("stopped before the database could be reached");
            return Ok(());
        }
    };
    let result = run(
        &store,
        listener,
        args,
        settings,
        destinations,
        webhook_allow,
        timings,
        schedule,
        shutdown,
    )
    .await;
    store.close().await;
    result
}

/// Refuses to serve a database holding values sealed with keys this server does not
/// hold (another server's key): its credentials, webhooks and sensitive settings
/// would fail on every use. Named with the setting to fix.
async fn refuse_unknown_keys(backend: &dyn flowstore_core::Backend) -> Result<(), StoreError> {
    let mut tx = backend.begin_read().await?;
    let unknown = tx.unknown_key_ids().await;
    let _ = tx.rollback().await;
    let unknown = unknown?;
    if unknown.is_empty() {
        return Ok(());
    }
    Err(StoreError::invalid(
        "ENCRYPTION_KEY",
        format!(
            "this database holds values sealed with key(s) {} which this server does not \
             hold: give every server the same key (ENCRYPTION_KEY, or the same key file \
             in FLOWSTORE_KEY_FILE), with the keys a rotation replaced in \
             ENCRYPTION_KEY_PREVIOUS",
            unknown.join(", ")
        ),
    ))
}

/// The server's durations from the flags, each refused by name when it is not a
/// duration; the rest of the settings at their defaults.
fn timings(args: &ServeArgs) -> Result<flowstore_server::ServerConfig, StoreError> {
    use flowstore_core::admin::parse_duration;
    Ok(flowstore_server::ServerConfig {
        session_ttl: parse_duration("--session-ttl", &args.session_ttl)?,
        poll_interval: parse_duration("--poll-interval", &args.poll_interval)?,
        safety_poll_interval: parse_duration("--safety-poll-interval", &args.safety_poll_interval)?,
        key_cache_ttl: parse_duration("--key-cache-ttl", &args.key_cache_ttl)?,
        max_claim_wait: parse_duration("--max-claim-wait", &args.max_claim_wait)?,
        maintenance_interval: parse_duration("--maintenance-interval", &args.maintenance_interval)?,
        read_own_writes_for: parse_duration("--read-own-writes-for", &args.read_own_writes_for)?,
        webhooks: {
            let timeout = parse_duration("--webhook-timeout", &args.webhook_timeout)?;
            flowstore_server::webhooks::WebhookConfig {
                enabled: args.webhook_dispatch,
                interval: parse_duration("--webhook-interval", &args.webhook_interval)?,
                timeout,
                lease: (timeout * 6).max(std::time::Duration::from_secs(60)),
                ..Default::default()
            }
        },
        ..flowstore_server::ServerConfig::default()
    })
}

/// The mail settings, the flags winning over the environment and the file; none
/// without an SMTP URL. Each setting that cannot work is refused by name.
fn mail_config(
    settings: &flowstore::config::Settings,
    args: &ServeArgs,
) -> Result<Option<flowstore_server::MailConfig>, StoreError> {
    let mut mail = settings.mail.clone();
    let flags = [
        (&args.smtp_url, &mut mail.smtp_url),
        (&args.mail_from, &mut mail.from),
        (&args.public_url, &mut mail.public_url),
    ];
    for (flag, setting) in flags {
        if let Some(v) = flag {
            *setting = Some(v.clone());
        }
    }
    mail.check_complete()?;
    let Some(smtp_url) = mail.smtp_url else {
        return Ok(None);
    };
    let config = flowstore_server::MailConfig {
        smtp_url,
        from: mail.from.unwrap_or_default(),
        public_url: mail.public_url.unwrap_or_default(),
    };
    config
        .check()
        .map_err(|(field, message)| StoreError::invalid(field, message))?;
    Ok(Some(config))
}

/// Opens, migrates and checks the database, trying again while it cannot be reached.
async fn open_when_reachable(
    settings: &flowstore::config::Settings,
    no_migrate: bool,
) -> Result<Store, StoreError> {
    let mut pause = std::time::Duration::from_millis(500);
    loop {
        let attempt = async {
            let store = Store::connect(settings).await?;
            let ready = async {
                if !no_migrate {
                    let applied = store.backend().migrate_up(None).await?;
                    if !applied.is_empty() {
                        tracing::info!(?applied, "migrations applied");
                    }
                }
                store.backend().check_schema().await
            }
            .await;
            match ready {
                Ok(()) => Ok(store),
                Err(e) => {
                    store.close().await;
                    Err(e)
                }
            }
        }
        .await;
        match attempt {
            Ok(store) => return Ok(store),
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "database not reachable; trying again");
                eprintln!("flowstore: {e}; trying again in {} ms", pause.as_millis());
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(30));
            }
            Err(e) => return Err(e),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    store: &Store,
    listener: tokio::net::TcpListener,
    args: ServeArgs,
    settings: &flowstore::config::Settings,
    destinations: flowstore_core::model::integration::Destinations,
    webhook_allow: Vec<String>,
    timings: flowstore_server::ServerConfig,
    schedule: Option<(std::time::Duration, crate::archive::dir::Schedule)>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StoreError> {
    let backend = store.backend_arc();
    refuse_unknown_keys(&*backend).await?;
    let first_start = match flowstore_server::bootstrap_admin_key(&backend).await? {
        Some(key) => {
            println!("No API key existed, so an admin key was created. It is shown only now:");
            println!("  {key}");
            println!("Send it as: Authorization: Bearer <key>");
            true
        }
        None => false,
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or(args.listen);
    tracing::info!(%addr, backend = ?store.kind(), "flowstore serving");
    if !destinations.is_default() {
        tracing::info!(allow = ?webhook_allow, "webhook destinations allowed besides public addresses");
    }
    // On stdout, whatever the log format, so that people and scripts (with
    // `--listen 127.0.0.1:0`) learn the address.
    println!("flowstore is listening on http://{addr}");
    if first_start {
        // The dashboard signs people in, not keys: say how to make the first one.
        println!(
            "The dashboard is at http://{addr}/ ; sign in there as a user, made with \
             `flowstore users create --email you@example.com --role admin` (password on \
             standard input)"
        );
    }
    let retention = settings
        .retention
        .clone()
        .map(|policy| tokio::spawn(retain(backend.clone(), policy)));
    let config = flowstore_server::ServerConfig {
        rate_per_second: args.rate_per_second,
        rate_burst: args.rate_burst,
        body_limit: args.body_limit,
        request_timeout: std::time::Duration::from_secs(args.request_timeout_secs.max(1)),
        header_timeout: std::time::Duration::from_secs(args.header_timeout_secs.max(1)),
        webhooks: flowstore_server::webhooks::WebhookConfig {
            destinations,
            ..timings.webhooks.clone()
        },
        ..timings
    };
    let state = AppState::with_config(backend, config);
    let backups = schedule.map(|(interval, schedule)| {
        tracing::info!(dir = %schedule.dir.display(), keep = schedule.keep, every = ?interval, encrypted = schedule.secret.is_some(), "scheduled backups");
        tokio::spawn(back_up(store.clone(), interval, schedule, state.clone()))
    });
    let served = flowstore_server::serve(listener, state, shutdown).await;
    if let Some(task) = retention {
        task.abort();
    }
    if let Some(task) = backups {
        // A backup cut off here leaves only its temporary files, which it removes.
        task.abort();
        let _ = task.await;
    }
    served.map_err(|e| StoreError::internal(format!("server: {e}")))?;
    tracing::info!("stopped");
    Ok(())
}

/// Applies the retention policy every `policy.interval` while the server runs: the
/// same batched, short-transaction deletion as `flowstore cleanup`.
async fn retain(
    backend: std::sync::Arc<dyn flowstore_core::Backend>,
    policy: flowstore_core::admin::RetentionPolicy,
) {
    let mut every = tokio::time::interval(policy.interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match flowstore_core::admin::run_retention(&*backend, &policy).await {
            Ok(report) => tracing::info!(?report, "retention applied"),
            Err(e) => tracing::warn!(error = %e, "retention failed; retrying on the next tick"),
        }
    }
}

/// The backup schedule of the flags and settings (flags first), checked before the
/// server starts: a schedule needs a directory, and its secret must be readable.
fn backup_schedule(
    settings: &flowstore::config::Settings,
    args: &ServeArgs,
) -> Result<Option<(std::time::Duration, crate::archive::dir::Schedule)>, StoreError> {
    let b = &settings.backup;
    let interval = match &args.backup_interval {
        Some(v) => Some(flowstore_core::admin::parse_duration(
            "--backup-interval",
            v,
        )?),
        None => b.interval,
    };
    let Some(interval) = interval else {
        return Ok(None);
    };
    let dir = args
        .backup_dir
        .clone()
        .or_else(|| b.dir.clone())
        .ok_or_else(|| {
            StoreError::invalid(
                "--backup-dir",
                "scheduled backups need a directory: --backup-dir DIR or FLOWSTORE_BACKUP_DIR",
            )
        })?;
    let keep = args.backup_keep.or(b.keep).unwrap_or(7);
    if keep == 0 {
        return Err(StoreError::invalid("--backup-keep", "must be at least 1"));
    }
    let secret = super::backup::secret(
        args.backup_passphrase_file.as_deref(),
        args.backup_key_file.as_deref(),
        settings,
    )?;
    Ok(Some((
        interval,
        crate::archive::dir::Schedule {
            dir,
            keep,
            source: Some(crate::archive::ArchiveSource::from_url(
                &settings.database_url,
            )),
            secret,
        },
    )))
}

/// Writes a backup every `interval` while the server runs, the first one interval
/// after the newest archive already in the directory (at once when that is past).
/// A failure is logged and counted, and the next is tried an interval later.
async fn back_up(
    store: Store,
    interval: std::time::Duration,
    schedule: crate::archive::dir::Schedule,
    state: AppState,
) {
    use crate::archive::dir;
    let metrics = &state.metrics().backups;
    metrics
        .scheduled
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let newest = dir::list(&schedule.dir, false, None)
        .ok()
        .and_then(|l| l.archives.last().map(|a| a.created_at.clone()))
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok());
    let first_wait = newest
        .and_then(|t| {
            let due = t.with_timezone(&chrono::Utc) + chrono::Duration::from_std(interval).ok()?;
            (due - chrono::Utc::now()).to_std().ok()
        })
        .unwrap_or_default()
        .min(interval);
    let mut next = tokio::time::Instant::now() + first_wait;
    loop {
        tokio::time::sleep_until(next).await;
        let started = tokio::time::Instant::now();
        next = started + interval;
        match dir::scheduled(&store, &schedule).await {
            Ok(done) => {
                let now = chrono::Utc::now().timestamp().max(0) as u64;
                metrics.success(now, done.backup.bytes, started.elapsed());
                tracing::info!(
                    path = %done.backup.path,
                    bytes = done.backup.bytes,
                    rows = done.backup.rows,
                    pruned = ?done.pruned.deleted,
                    "backup written"
                );
            }
            Err(e) => {
                metrics.failure();
                tracing::warn!(error = %e, dir = %schedule.dir.display(), "scheduled backup failed; trying again at the next interval");
            }
        }
    }
}

/// Runs an `apikeys` command.
pub async fn apikeys(store: &Store, cmd: ApiKeysCommand) -> Result<(), StoreError> {
    store.backend().check_schema().await?;
    match cmd {
        ApiKeysCommand::Create {
            name,
            role,
            user_id,
            scopes,
        } => {
            let role: Role = role.parse()?;
            let user_id = user_id.as_deref().map(str::parse::<UserId>).transpose()?;
            let name = name.unwrap_or_else(|| format!("{role} key (command line)"));
            let mut tx = store.begin().await?;
            let created = tx
                .create_api_key(NewApiKey {
                    name,
                    role: Some(role),
                    user_id,
                    scopes,
                    ..NewApiKey::default()
                })
                .await?;
            tx.commit().await?;
            println!("{}", created.key.expose());
            eprintln!(
                "created key {} ({}, role {}); it is not shown again",
                created.api_key.id, created.api_key.prefix, created.api_key.role
            );
        }
        ApiKeysCommand::List { user_id } => {
            let user: UserId = user_id.parse()?;
            let mut tx = store.begin_read().await?;
            let mut page = PageRequest::first(flowstore_core::page::MAX_PAGE_SIZE);
            loop {
                let keys = tx.list_api_keys(user, &page).await?;
                for k in &keys.items {
                    let state = if k.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!(
                        "{}\tfsk_{}\t{}\t{}\t{}",
                        k.id, k.prefix, k.role, state, k.name
                    );
                }
                match keys.next_cursor {
                    Some(c) => page = PageRequest::after(c, flowstore_core::page::MAX_PAGE_SIZE),
                    None => break,
                }
            }
        }
        ApiKeysCommand::Revoke { id } => {
            let id: ApiKeyId = id.parse()?;
            let mut tx = store.begin().await?;
            tx.revoke_api_key(id, flowstore_core::time::now()).await?;
            tx.commit().await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}

//! Faults of the database and its disk, met as an operator meets them: a full disk
//! and a read-only disk under a running SQLite server (a small tmpfs mounted by the
//! test), a PostgreSQL that is down when the server starts, a database set
//! read-only, and a lock held too long on one table. Each is reported with its own
//! problem type and recovered from without a restart, and `/readyz` tells the truth
//! meanwhile. The mounts need root; where they cannot be made the tests fail.

use flowstore_testkit::PgDatabase;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use flowstore_testkit::ENCRYPTION_KEY as KEY;

/// A tmpfs of `mb` MiB mounted for one test, unmounted (lazily) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(mb: u32) -> Tmpfs {
        let dir = std::env::temp_dir().join(format!("fs-fault-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "the fault tests mount a small tmpfs at {} and need root (mount -t tmpfs) to do so",
            dir.display()
        );
        Tmpfs(dir)
    }

    fn remount(&self, mode: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {mode} of {}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Fills the disk holding `path` with a file of that name; returns it.
fn fill(path: &Path) -> PathBuf {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    // The last partial pages too.
    while f.write_all(&[0u8; 512]).is_ok() {}
    let _ = f.sync_all();
    path.to_path_buf()
}

/// `flowstore serve` on port 0, its lines on stdout and stderr collected.
pub(crate) struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    pub(crate) fn start(database_url: &str, dir: &Path) -> Served {
        Served::start_with(database_url, dir, &[])
    }

    pub(crate) fn start_with(database_url: &str, dir: &Path, env: &[(&str, &str)]) -> Served {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowstore"));
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env("DATABASE_URL", database_url)
            .env("ENCRYPTION_KEY", KEY)
            .env("DB_CONNECTION_TIMEOUT", "2000")
            .env("DB_LOCK_TIMEOUT", "1000")
            .env_remove("FLOWSTORE_LISTEN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    let _ = tx.send(line);
                }
            });
        }
        Served {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line for which `pick` gives something.
    pub(crate) fn wait_for<T>(&mut self, what: &str, pick: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let got = pick(&line);
                    self.seen.push(line);
                    if let Some(got) = got {
                        return got;
                    }
                }
                Err(_) => panic!("serve never printed {what}: {:#?}", self.seen),
            }
        }
    }

    /// The bootstrap key and the address, once it serves.
    /// Kills the server at once (SIGKILL), as a crash or an OOM kill would.
    pub(crate) fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub(crate) fn ready(&mut self) -> (String, String) {
        let key = self.wait_for("the bootstrap key", |l| {
            l.trim().starts_with("fsk_").then(|| l.trim().to_string())
        });
        let url = self.wait_for("its address", |l| {
            l.strip_prefix("flowstore is listening on ")
                .map(str::to_string)
        });
        (key, url)
    }
}

pub(crate) async fn call(
    url: &str,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let http = reqwest::Client::new();
    let mut req = http
        .request(method.parse().unwrap(), format!("{url}{path}"))
        .bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A project whose description is `size` bytes that do not compress (PostgreSQL
/// would store a repeated letter in a few bytes).
fn project(size: usize) -> Value {
    let description: String = (0..size.div_ceil(32))
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect();
    json!({
        "name": format!("p-{}", uuid::Uuid::new_v4().simple()),
        "description": &description[..size],
    })
}

/// Writes large projects (at most `tries`) until the disk is full: each answers 201
/// until one answers 507 `storage-full`; none answers 500.
async fn write_until_full(url: &str, key: &str, tries: usize) {
    let mut full = None;
    for _ in 0..tries {
        let (status, body) =
            call(url, key, "POST", "/api/v1/projects", Some(project(200_000))).await;
        assert_ne!(status, 500, "a full disk is not an internal error: {body}");
        if status == 507 {
            full = Some(body);
            break;
        }
        assert_eq!(status, 201, "{body}");
    }
    let full = full.expect("a write on a full disk is refused");
    assert_eq!(
        full["type"], "https://flowstore.dev/problems/storage-full",
        "{full}"
    );
}

/// A full disk: writes answer 507 `storage-full` (never 500), `/readyz` says so, and
/// once space is freed writes resume by themselves, many in a row (a connection left
/// inside a transaction by the failure would refuse every later one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_full_disk_is_reported_and_recovered_from() {
    let disk = Tmpfs::mount(16);
    let db = disk.0.join("flowstore.db");
    let mut server = Served::start(&format!("sqlite://{}", db.display()), &disk.0);
    let (key, url) = server.ready();
    let (status, _) = call(&url, &key, "POST", "/api/v1/projects", Some(project(10))).await;
    assert_eq!(status, 201);

    let filler = fill(&disk.0.join("filler"));
    write_until_full(&url, &key, 200).await;
    let (status, ready) = call(&url, &key, "GET", "/readyz", None).await;
    assert_eq!(status, 507, "/readyz tells the disk is full: {ready}");
    assert_eq!(ready["type"], "https://flowstore.dev/problems/storage-full");
    // Reads still answer.
    let (status, _) = call(&url, &key, "GET", "/api/v1/projects", None).await;
    assert_eq!(status, 200);

    std::fs::remove_file(filler).unwrap();
    let (status, ready) = call(&url, &key, "GET", "/readyz", None).await;
    assert_eq!(status, 200, "ready again once space is freed: {ready}");
    for _ in 0..20 {
        let (status, body) =
            call(&url, &key, "POST", "/api/v1/projects", Some(project(1000))).await;
        assert_eq!(status, 201, "writes resume without a restart: {body}");
    }
}

/// A server started on a read-only disk says "read-only file system" (not SQLite's
/// "unable to open database file"), keeps trying, and serves once the disk is
/// writable again; `/readyz` checks that the database's file and directory can be
/// written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_read_only_disk_is_reported_and_recovered_from() {
    let disk = Tmpfs::mount(16);
    disk.remount("ro");
    let db = disk.0.join("flowstore.db");
    let elsewhere = std::env::temp_dir();
    let mut server = Served::start(&format!("sqlite://{}", db.display()), &elsewhere);
    let said = server.wait_for("why it cannot open the database", |l| {
        l.contains("read-only file system").then(|| l.to_string())
    });
    assert!(!said.contains("unable to open database file"), "{said}");
    server.wait_for("a second try", |l| {
        l.contains("read-only file system").then_some(())
    });
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "it keeps trying"
    );
    disk.remount("rw");
    let (key, url) = server.ready();
    let (status, ready) = call(&url, &key, "GET", "/readyz", None).await;
    assert_eq!(status, 200, "{ready}");
    let (status, body) = call(&url, &key, "POST", "/api/v1/projects", Some(project(10))).await;
    assert_eq!(status, 201, "{body}");
}

/// Copies bytes both ways between two sockets.
async fn forward(listener: tokio::net::TcpListener, to: String) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            return;
        };
        let to = to.clone();
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

/// `serve` with PostgreSQL down: it names the address and the reason, keeps trying
/// with growing pauses, and serves once the database is reachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_waits_for_postgres_and_says_why() {
    let db = PgDatabase::create().await;
    let real = url::Url::parse(db.url()).unwrap();
    // A port with nothing behind it yet; later a relay to the real server.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut url = real.clone();
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(port)).unwrap();
    let dir = std::env::temp_dir();
    let mut server = Served::start(url.as_str(), &dir);
    let expected = format!("cannot connect to 127.0.0.1:{port}: connection refused");
    server.wait_for(&expected, |l| l.contains(&expected).then_some(()));
    server.wait_for("a second try", |l| l.contains(&expected).then_some(()));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "it keeps trying"
    );

    let relay = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let target = format!(
        "{}:{}",
        real.host_str().unwrap(),
        real.port().unwrap_or(5432)
    );
    let relaying = tokio::spawn(forward(relay, target));
    let (key, url) = server.ready();
    let (status, ready) = call(&url, &key, "GET", "/readyz", None).await;
    assert_eq!(status, 200, "{ready}");
    relaying.abort();
}

/// A PostgreSQL database set read-only answers 503 `read-only` to writes and makes
/// `/readyz` say so; a lock held too long on one table makes its writers give up
/// with 503 `timeout` after the lock timeout, while `/readyz`, unrelated reads and
/// `/metrics` (which counts the lock waits) keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_read_only_and_long_locks() {
    use sqlx::Connection;
    let pg = PgDatabase::create().await;
    let db = pg.url().to_string();
    let dir = std::env::temp_dir();
    let mut server = Served::start(&db, &dir);
    let (key, url) = server.ready();

    let mut holder = sqlx::PgConnection::connect(&db).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("LOCK TABLE projects IN ACCESS EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .unwrap();
    let writer = {
        let (url, key) = (url.clone(), key.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let answer = call(&url, &key, "POST", "/api/v1/projects", Some(project(10))).await;
            (answer, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, metrics) = call(&url, &key, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap().to_string();
    let waiting: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("flowstore_db_lock_waits "))
        .expect("/metrics reports lock waits")
        .parse()
        .unwrap();
    assert!(waiting >= 1.0, "the blocked write is counted: {metrics}");
    let (status, ready) = call(&url, &key, "GET", "/readyz", None).await;
    assert_eq!(status, 200, "health does not wait behind the lock: {ready}");
    let (status, _) = call(&url, &key, "GET", "/api/v1/handlers", None).await;
    assert_eq!(status, 200, "an unrelated read answers");
    let ((status, body), took) = writer.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["type"], "https://flowstore.dev/problems/timeout",
        "{body}"
    );
    assert!(
        took < Duration::from_secs(10),
        "given up after the lock timeout: {took:?}"
    );
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();

    let name = url::Url::parse(&db)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string();
    sqlx::query(&format!(
        "ALTER DATABASE {name} SET default_transaction_read_only = on"
    ))
    .execute(&mut holder)
    .await
    .unwrap();
    // Sessions take the setting when they open: end the server's.
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
        .bind(&name)
        .execute(&mut holder)
        .await
        .unwrap();
    let mut refused = None;
    for _ in 0..20 {
        let (status, body) = call(&url, &key, "POST", "/api/v1/projects", Some(project(10))).await;
        assert_ne!(status, 500, "{body}");
        if body["type"] == "https://flowstore.dev/problems/read-only" {
            refused = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(refused, Some(503), "a write to a read-only database");
    let (status, ready) = call(&url, &key, "GET", "/readyz", None).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["type"], "https://flowstore.dev/problems/read-only");
    sqlx::query(&format!(
        "ALTER DATABASE {name} SET default_transaction_read_only = off"
    ))
    .execute(&mut holder)
    .await
    .unwrap();
    let _ = holder.close().await;
}

/// A full disk under PostgreSQL (the test database in a tablespace on a small tmpfs):
/// writes answer 507 `storage-full`, never 500, and resume once space is freed; a
/// statement past the statement timeout answers 503 `timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_full_disk_and_statement_timeout() {
    use sqlx::Connection;
    let disk = Tmpfs::mount(64);
    let admin_url = flowstore_testkit::pg_admin_url();
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    // The tablespace directory must belong to the user the server runs as (postgres,
    // or whoever a throwaway cluster runs as): read it off the server's process.
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("the PostgreSQL server of the fault tests runs on this machine");
    let id_of = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .unwrap()
            .to_string()
    };
    let owner = format!("{}:{}", id_of("Uid:"), id_of("Gid:"));
    let ok = Command::new("chown")
        .arg(&owner)
        .arg(&disk.0)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "the tablespace directory could not be given to {owner}");
    let pg = PgDatabase::create().await;
    let db_url = pg.url().to_string();
    let name = url::Url::parse(&db_url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string();
    let space = format!("{name}_space");
    sqlx::query(&format!(
        "CREATE TABLESPACE {space} LOCATION '{}'",
        disk.0.display()
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    sqlx::query(&format!("ALTER DATABASE {name} SET TABLESPACE {space}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let (mount, db) = (disk.0.clone(), db_url.clone());
    let outcome = async move {
        let (db_url, dir) = (db, std::env::temp_dir());
        let mut server = Served::start(&db_url, &dir);
        let (key, url) = server.ready();
        let (status, body) = call(&url, &key, "POST", "/api/v1/projects", Some(project(10))).await;
        assert_eq!(status, 201, "{body}");
        let filler = fill(&mount.join("filler"));
        write_until_full(&url, &key, 400).await;
        std::fs::remove_file(filler).unwrap();
        for _ in 0..5 {
            let (status, body) =
                call(&url, &key, "POST", "/api/v1/projects", Some(project(1000))).await;
            assert_eq!(status, 201, "writes resume without a restart: {body}");
        }
        drop(server);

        // A statement that runs past the statement timeout: a write waiting on a lock
        // held by another session, with a lock timeout longer than the statement's.
        let mut server = Served::start_with(
            &db_url,
            &dir,
            &[
                ("DB_STATEMENT_TIMEOUT", "500"),
                ("DB_LOCK_TIMEOUT", "30000"),
            ],
        );
        let url = server.wait_for("its address", |l| {
            l.strip_prefix("flowstore is listening on ")
                .map(str::to_string)
        });
        let mut holder = sqlx::PgConnection::connect(&db_url).await.unwrap();
        sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
        sqlx::query("LOCK TABLE projects IN ACCESS EXCLUSIVE MODE")
            .execute(&mut holder)
            .await
            .unwrap();
        let (status, body) = call(&url, &key, "POST", "/api/v1/projects", Some(project(10))).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(
            body["type"], "https://flowstore.dev/problems/timeout",
            "{body}"
        );
        sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
        let _ = holder.close().await;
    };
    // The tablespace is the server's, not the database's: it goes whatever happened.
    let result = tokio::spawn(outcome).await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
    let _ = sqlx::query(&format!("DROP TABLESPACE IF EXISTS {space}"))
        .execute(&mut admin)
        .await;
    let _ = admin.close().await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

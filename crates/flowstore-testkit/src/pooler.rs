//! A PgBouncer of the test's own, in front of the tests' PostgreSQL server.
//!
//! Each [`Bouncer`] is a `pgbouncer` process with README's example configuration
//! (`docs/pgbouncer.ini`) in a temporary directory, listening on a free loopback port (no Unix socket, so that several
//! can run at once), trusting the user of `FLOWSTORE_TEST_PG` and passing every
//! database name through to that server. It is stopped when the value is dropped.
//! `scripts/test.sh` installs PgBouncer where it is missing; a test that needs one
//! and cannot start it fails saying so.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flowstore_postgres::Pooler;

/// A running PgBouncer, stopped on drop.
pub struct Bouncer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("pgbouncer"))
        .find(|p| p.is_file());
    on_path
        .or_else(|| Some(PathBuf::from("/usr/sbin/pgbouncer")).filter(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!(
                "PgBouncer is required for the pooler tests and was not found \
                 (install Debian's `pgbouncer`; scripts/test.sh does)"
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Bouncer {
    /// Starts a PgBouncer in `mode` (session or transaction pooling) in front of the
    /// server of `admin_url`, and waits until it accepts connections.
    pub fn start(mode: Pooler, admin_url: &str) -> Bouncer {
        let server = url::Url::parse(admin_url).expect("FLOWSTORE_TEST_PG is a URL");
        let host = server.host_str().unwrap_or("127.0.0.1").to_string();
        let server_port = server.port().unwrap_or(5432);
        let user = match server.username() {
            "" => "postgres".to_string(),
            u => u.to_string(),
        };
        let pool_mode = match mode {
            Pooler::Session => "session",
            Pooler::Transaction => "transaction",
            Pooler::None => panic!("a bouncer pools in session or transaction mode"),
        };
        let dir = tempfile::Builder::new()
            .prefix("flowstore-pgbouncer-")
            .tempdir()
            .expect("temporary directory is writable");
        // PgBouncer may run as another user (see `is_root`): it must read these.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                .expect("temporary directory permissions");
        }
        let port = free_port();
        let users = dir.path().join("users.txt");
        std::fs::write(&users, format!("\"{user}\" \"\"\n")).expect("users file");
        // README's example configuration, with what is this machine's set.
        let set = |key: &str| -> Option<String> {
            Some(match key {
                "*" => format!("* = host={host} port={server_port}"),
                "listen_addr" => "listen_addr = 127.0.0.1".into(),
                "listen_port" => format!("listen_port = {port}"),
                // None: several bouncers may run at once.
                "unix_socket_dir" => "unix_socket_dir =".into(),
                "auth_type" => "auth_type = trust".into(),
                "auth_file" => format!("auth_file = {}", users.display()),
                "pool_mode" => format!("pool_mode = {pool_mode}"),
                _ => return None,
            })
        };
        let example = include_str!("../../../docs/pgbouncer.ini");
        let mut text = String::new();
        for line in example.lines() {
            let key = line.split('=').next().unwrap_or("").trim();
            let marked = line.contains("; set by the tests");
            match set(key) {
                Some(ours) if marked => text.push_str(&ours),
                Some(_) => panic!("docs/pgbouncer.ini: {key} is set by the tests but not marked"),
                None if marked => panic!("docs/pgbouncer.ini: the tests do not set {key}"),
                None => text.push_str(line),
            }
            text.push('\n');
        }
        let config = dir.path().join("pgbouncer.ini");
        std::fs::write(&config, text).expect("pgbouncer.ini");
        let mut command = Command::new(binary());
        // PgBouncer refuses to run as root: it is then told to switch users.
        if crate::tls::is_root() {
            command.args(["-u", "postgres"]);
        }
        let mut child = command
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pgbouncer starts");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut said = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = err.read_to_string(&mut said);
                }
                panic!("pgbouncer exited ({status}) before listening on port {port}: {said}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("pgbouncer did not listen on port {port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Bouncer {
            child,
            port,
            _dir: dir,
        }
    }

    /// `url` (a database on the tests' server) as reached through this bouncer.
    pub fn url_for(&self, url: &str) -> String {
        let mut through = url::Url::parse(url).expect("a database URL");
        through.set_host(Some("127.0.0.1")).expect("a host");
        through.set_port(Some(self.port)).expect("a port");
        through.to_string()
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! A throwaway PostgreSQL cluster that speaks TLS, for the tests of `DB_SSL_MODE`
//! verify-ca and verify-full: `initdb` in a temporary directory, started on a free
//! port with the committed test certificates (`tls/`, written by
//! `scripts/test-certs.sh`: a CA, a server certificate it signs for the name
//! `localhost` only, and another CA), stopped and removed when dropped. It needs the
//! PostgreSQL server binaries (as `scripts/test.sh` does for its throwaway cluster),
//! not openssl; without them the test fails saying so.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory of the committed test certificates.
pub fn certs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tls")
}

/// The CA that signed the test server's certificate.
pub fn ca_file() -> PathBuf {
    certs_dir().join("ca.pem")
}

/// A CA that signed nothing the test server shows.
pub fn other_ca_file() -> PathBuf {
    certs_dir().join("other-ca.pem")
}

/// A running TLS-enabled PostgreSQL cluster of one test.
pub struct TlsPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    owner: Option<String>,
    port: u16,
}

fn find_bin() -> PathBuf {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        }
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("bin")).collect();
        versions.sort();
        candidates.extend(versions.into_iter().rev());
    }
    candidates.extend(
        ["/usr/local/pgsql/bin", "/usr/local/bin", "/usr/bin"]
            .iter()
            .map(PathBuf::from),
    );
    candidates
        .into_iter()
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        .unwrap_or_else(|| {
            panic!(
                "the TLS tests start a PostgreSQL cluster of their own and need its \
                 binaries (initdb, pg_ctl): install PostgreSQL 14+"
            )
        })
}

/// Whether this process runs as root, whom initdb and postgres refuse.
pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Appends `text` to the file at `path` (a configuration file the cluster's owner
/// keeps: its owner and mode stay).
fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    f.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TlsPostgres {
    /// Creates and starts the cluster; every role may connect without a password
    /// (`trust`), over TLS or not.
    pub fn start() -> TlsPostgres {
        let bin = find_bin();
        let dir = tempfile::Builder::new()
            .prefix("flowstore-tls-pg")
            .tempdir()
            .expect("a temporary directory");
        // initdb and postgres refuse root: as root, the cluster belongs to an
        // unprivileged user, as in scripts/test.sh.
        let owner = is_root().then(|| {
            let has_postgres = Command::new("id")
                .arg("postgres")
                .output()
                .is_ok_and(|o| o.status.success());
            if has_postgres { "postgres" } else { "nobody" }.to_string()
        });
        for name in ["server.pem", "server.key"] {
            std::fs::copy(certs_dir().join(name), dir.path().join(name))
                .expect("the test certificates are readable");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // postgres refuses a key others may read.
            std::fs::set_permissions(
                dir.path().join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .expect("chmod server.key");
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                .expect("chmod the cluster's directory");
        }
        if let Some(owner) = &owner {
            run(
                Command::new("chown").args(["-R", owner]).arg(dir.path()),
                "chown",
            );
        }
        let as_owner = |program: &Path| -> Command {
            match &owner {
                Some(user) => {
                    let mut c = Command::new("runuser");
                    c.args(["-u", user, "--"]).arg(program);
                    c
                }
                None => Command::new(program),
            }
        };
        let data = dir.path().join("data");
        run(
            as_owner(&bin.join("initdb"))
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "-D",
                ])
                .arg(&data),
            "initdb",
        );
        // A free port: taken from the system, then given back for postgres.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // TLS in the configuration file (not on the command line), so that
        // `restart_without_tls` can switch it off.
        let conf = format!(
            "\nssl = on\nssl_cert_file = '{cert}'\nssl_key_file = '{key}'\n",
            cert = dir.path().join("server.pem").display(),
            key = dir.path().join("server.key").display(),
        );
        append(&data.join("postgresql.conf"), &conf);
        let options = format!(
            "-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off",
            sock = dir.path().display(),
        );
        run(
            as_owner(&bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .args(["-o", &options, "-l"])
                .arg(dir.path().join("log"))
                .args(["-w", "start"]),
            "pg_ctl start",
        );
        TlsPostgres {
            dir,
            bin,
            owner,
            port,
        }
    }

    /// Restarts the cluster with TLS off: a server that offers none.
    pub fn restart_without_tls(&self) {
        append(
            &self.dir.path().join("data").join("postgresql.conf"),
            "\nssl = off\n",
        );
        run(
            self.pg_ctl()
                .arg("-D")
                .arg(self.dir.path().join("data"))
                // The log file again: without it the new server would write to
                // (and hold open) this command's output, which is waited for.
                .args(["-m", "fast", "-l"])
                .arg(self.dir.path().join("log"))
                .args(["-w", "restart"]),
            "pg_ctl restart",
        );
    }

    fn pg_ctl(&self) -> Command {
        let pg_ctl = self.bin.join("pg_ctl");
        match &self.owner {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&pg_ctl);
                c
            }
            None => Command::new(&pg_ctl),
        }
    }

    /// A URL of its `postgres` database at `host` (`localhost`, the name its
    /// certificate is for, or `127.0.0.1`, which it is not for).
    pub fn url(&self, host: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres", self.port)
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = self
            .pg_ctl()
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

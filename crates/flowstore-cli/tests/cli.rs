//! The `flowstore` binary end to end: migrate up, status, down and the refusal of a
//! bad URL, on SQLite and on PostgreSQL.

use crate::binary::flowstore;
use std::process::{Command, Output};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn migrate_round_trip(url: &str) {
    let up = flowstore(url, &["migrate", "up"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert!(
        stdout(&up).contains("applied 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15"),
        "{}",
        stdout(&up)
    );
    let again = flowstore(url, &["migrate", "up"]);
    assert!(stdout(&again).contains("already up to date"));
    let status = flowstore(url, &["migrate", "status", "--json"]);
    let parsed: serde_json::Value =
        serde_json::from_slice(&status.stdout).expect("status --json is JSON");
    assert!(parsed
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["state"] == "applied"));
    let down = flowstore(url, &["migrate", "down", "--to", "2"]);
    assert!(
        stdout(&down).contains(
            "reverted 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3"
        ),
        "{}",
        stdout(&down)
    );
    let status = flowstore(url, &["migrate", "status"]);
    assert!(stdout(&status).contains("pending"));
}

per_database!(
    migrate_commands,
    operator_commands,
    serve_refuses_values_sealed_with_a_key_it_lacks,
    serve_refuses_mail_settings_that_cannot_work,
    users_commands
);

/// A command-line round trip, off the runtime's threads.
async fn blocking(url: String, round_trip: fn(&str)) {
    tokio::task::spawn_blocking(move || round_trip(&url))
        .await
        .unwrap();
}

async fn migrate_commands(url: String) {
    blocking(url, migrate_round_trip).await;
}

async fn operator_commands(url: String) {
    blocking(url, operator_round_trip).await;
}

#[test]
fn a_bad_url_fails_with_a_clear_message() {
    let out = flowstore("mysql://x", &["migrate", "status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("DATABASE_URL") && err.contains("sqlite:"),
        "{err}"
    );
}

#[test]
fn serve_refuses_a_timing_that_is_not_a_duration() {
    let path = std::env::temp_dir().join(format!("fs-cli-{}.db", uuid::Uuid::new_v4().simple()));
    let url = format!("sqlite://{}", path.display());
    for flag in [
        "--poll-interval",
        "--safety-poll-interval",
        "--key-cache-ttl",
        "--max-claim-wait",
        "--maintenance-interval",
        "--read-own-writes-for",
        "--webhook-interval",
        "--webhook-timeout",
    ] {
        for bad in ["soon", "0ms"] {
            let out = flowstore(&url, &["serve", "--listen", "127.0.0.1:0", flag, bad]);
            assert!(!out.status.success(), "{flag} {bad} was accepted");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(flag), "{flag} {bad}: {err}");
        }
    }
}

#[test]
fn serve_refuses_a_malformed_webhook_allow_list() {
    let path = std::env::temp_dir().join(format!("fs-cli-{}.db", uuid::Uuid::new_v4().simple()));
    let url = format!("sqlite://{}", path.display());
    let out = flowstore(
        &url,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--webhook-allow",
            "127.0.0.1/32,10.0.0.0/99",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("webhook_allow") && err.contains("10.0.0.0/99"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_flowstore"))
        .args(["--database-url", &url, "serve"])
        .env("FLOWSTORE_WEBHOOK_ALLOW", "not a host")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("webhook_allow"), "{err}");
    let help = Command::new(env!("CARGO_BIN_EXE_flowstore"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = stdout(&help);
    assert!(
        help.contains("--webhook-allow") && help.contains("FLOWSTORE_WEBHOOK_ALLOW"),
        "{help}"
    );
}

/// The operator's commands as README gives them: `apikeys create --role admin`
/// (no name needed) prints a key; a command whose reader goes away ends without a
/// panic; `serve` on a busy port fails before it makes the one bootstrap key.
fn operator_round_trip(url: &str) {
    let up = flowstore(url, &["migrate", "up"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );

    // a busy port: serve fails, prints no key, and makes none
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let served = flowstore(url, &["serve", "--listen", &addr]);
    assert!(!served.status.success());
    assert!(!stdout(&served).contains("fsk_"), "{}", stdout(&served));
    let err = String::from_utf8_lossy(&served.stderr);
    assert!(err.contains("cannot listen"), "{err}");

    let made = flowstore(url, &["apikeys", "create", "--role", "admin"]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let key = stdout(&made).lines().last().unwrap_or_default().to_string();
    assert!(key.starts_with("fsk_"), "{key}");
    let scoped = flowstore(url, &["apikeys", "create", "--scopes", "read,write"]);
    assert!(
        scoped.status.success(),
        "{}",
        String::from_utf8_lossy(&scoped.stderr)
    );
    let bad = flowstore(url, &["apikeys", "create", "--scopes", "everything"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("scopes"));

    // the reader of stdout is gone before the command writes
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_flowstore"))
        .args(["--database-url", url, "stats", "--json"])
        .env(
            "ENCRYPTION_KEY",
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");

    // the database's own backup, asked of the backend (VACUUM INTO, pg_dump)
    let dump = std::env::temp_dir().join(format!("fs-native-{}", uuid::Uuid::new_v4().simple()));
    let native = flowstore(
        url,
        &["backup", "--native", "--output", dump.to_str().unwrap()],
    );
    assert!(
        native.status.success(),
        "{}",
        String::from_utf8_lossy(&native.stderr)
    );
    let size = std::fs::metadata(&dump).map(|m| m.len()).unwrap_or(0);
    assert!(size > 0, "the native backup wrote {size} bytes");
    let _ = std::fs::remove_file(&dump);

    // the database holds keys now: migrating down needs --yes
    let down = flowstore(url, &["migrate", "down", "--to", "2"]);
    assert!(!down.status.success(), "{}", stdout(&down));
    let err = String::from_utf8_lossy(&down.stderr);
    assert!(err.contains("--yes") && err.contains("rows"), "{err}");
    let status = flowstore(url, &["migrate", "status"]);
    assert!(!stdout(&status).contains("pending"), "nothing was reverted");
    let down = flowstore(url, &["migrate", "down", "--to", "2", "--yes"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(
        stdout(&down)
            .contains("reverted 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11"),
        "{}",
        stdout(&down)
    );
}

/// Commands that read, check or copy a database do not create one at a mistyped
/// path, and a restore that fails into a new file leaves nothing behind. (Only a
/// SQLite file can be made by opening it; a PostgreSQL database never is.)
#[test]
fn mistyped_paths_stay_missing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo.db");
    let url = format!("sqlite://{}", missing.display());
    for args in [
        &["stats"][..],
        &["check"],
        &["migrate", "status"],
        &[
            "apikeys",
            "list",
            "--user-id",
            "0190c6d2-0000-7000-8000-000000000000",
        ],
        &["backup", "--output", "x.fsa"],
    ] {
        let out = flowstore(&url, args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no SQLite database at"), "{args:?}: {err}");
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
    }
    let garbage = dir.path().join("garbage.fsa");
    std::fs::write(&garbage, b"not an archive").unwrap();
    let out = flowstore(&url, &["restore", garbage.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(!missing.exists(), "a failed restore left a database file");
    assert!(!dir.path().join("typo.db-wal").exists());
}

/// A server given another key than the one that sealed the database's credentials
/// refuses to start, naming the key it lacks and the setting, instead of answering
/// 500 on every use of them.
async fn serve_refuses_values_sealed_with_a_key_it_lacks(url: String) {
    let store = flowstore::Store::connect(&flowstore::config::Settings {
        database_url: url.clone(),
        encryption_key: Some(flowstore_testkit::ENCRYPTION_KEY.into()),
        ..Default::default()
    })
    .await
    .unwrap();
    store.backend().migrate_up(None).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let secret = serde_json::json!("s3cret");
    flowstore_testkit::fixtures::credential(&mut tx, "deploy", secret, None).await;
    tx.commit().await.unwrap();
    store.close().await;
    let sealed_with = flowstore_core::crypto::Key::parse(flowstore_testkit::ENCRYPTION_KEY)
        .unwrap()
        .id()
        .to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_flowstore"))
            .args(["--database-url", &url, "serve", "--listen", "127.0.0.1:0"])
            .env(
                "ENCRYPTION_KEY",
                "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100",
            )
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&sealed_with) && err.contains("ENCRYPTION_KEY"),
        "{err}"
    );
    assert!(!stdout(&out).contains("listening"), "{}", stdout(&out));
}

/// `serve` refuses mail settings that cannot send, naming the setting, before it
/// listens: flags, environment and file are one setting each.
/// One refused start: flags, environment, and the setting the refusal names.
type MailCase<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

async fn serve_refuses_mail_settings_that_cannot_work(url: String) {
    let cases: [MailCase; 4] = [
        (
            &["--smtp-url", "smtp://127.0.0.1:2525"],
            &[],
            "FLOWSTORE_MAIL_FROM",
        ),
        (
            &[
                "--mail-from",
                "not an address",
                "--public-url",
                "https://fs.example.com",
            ],
            &[("FLOWSTORE_SMTP_URL", "smtp://127.0.0.1:2525")],
            "mail_from",
        ),
        (
            &[
                "--smtp-url",
                "smtp://127.0.0.1:2525",
                "--public-url",
                "fs.example.com",
            ],
            &[("FLOWSTORE_MAIL_FROM", "fs@example.com")],
            "public_url",
        ),
        (
            &[
                "--smtp-url",
                "imap://127.0.0.1",
                "--mail-from",
                "fs@example.com",
            ],
            &[("FLOWSTORE_PUBLIC_URL", "https://fs.example.com")],
            "FLOWSTORE_SMTP_URL",
        ),
    ];
    for (flags, env, setting) in cases {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowstore"));
        cmd.args(["--database-url", &url, "serve", "--listen", "127.0.0.1:0"])
            .args(flags)
            .env("ENCRYPTION_KEY", flowstore_testkit::ENCRYPTION_KEY);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        failed_naming(&out, setting);
        assert!(!stdout(&out).contains("listening"), "{}", stdout(&out));
    }
}

/// `flowstore URL ARGS…` with `input` on its standard input.
fn flowstore_with_input(url: &str, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowstore"))
        .arg("--database-url")
        .arg(url)
        .args(args)
        .env("ENCRYPTION_KEY", flowstore_testkit::ENCRYPTION_KEY)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn failed_naming(o: &Output, field: &str) {
    assert!(!o.status.success(), "{}", stdout(o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(field), "{field}: {err}");
}

/// `flowstore users`: create (with a password from standard input), list, change
/// the role, switch off and on, unlock and set a new password; the last admin is
/// kept, and bad input is refused naming what is wrong.
fn users_round_trip(url: &str) {
    crate::binary::succeeded(&flowstore(url, &["migrate", "up"]));
    let ada = flowstore_with_input(
        url,
        &[
            "users",
            "create",
            "--email",
            "Ada@Example.com",
            "--name",
            "Ada",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "correct horse battery\n",
    );
    let ada_id = crate::binary::succeeded(&ada).trim().to_string();
    assert!(ada_id.parse::<uuid::Uuid>().is_ok(), "{ada_id}");
    crate::binary::succeeded(&flowstore(
        url,
        &["users", "create", "--email", "bob@example.com"],
    ));
    let listed = crate::binary::succeeded(&flowstore(url, &["users", "list"]));
    assert!(
        listed.contains(&format!("{ada_id}\tada@example.com\tadmin\tactive\tAda"))
            && listed.contains("bob@example.com\tuser\tactive"),
        "{listed}"
    );
    // Ada is the only admin: she may be neither demoted nor switched off.
    failed_naming(
        &flowstore(url, &["users", "set-role", "ada@example.com", "user"]),
        "role",
    );
    failed_naming(&flowstore(url, &["users", "disable", &ada_id]), "status");
    let bob = crate::binary::succeeded(&flowstore(
        url,
        &["users", "set-role", "bob@example.com", "admin"],
    ));
    assert_eq!(bob.trim(), "bob@example.com\tadmin\tactive");
    let off = crate::binary::succeeded(&flowstore(url, &["users", "disable", "ada@example.com"]));
    assert_eq!(off.trim(), "ada@example.com\tadmin\tinactive");
    let inactive =
        crate::binary::succeeded(&flowstore(url, &["users", "list", "--status", "inactive"]));
    assert_eq!(inactive.lines().count(), 1, "{inactive}");
    crate::binary::succeeded(&flowstore(url, &["users", "enable", "ada@example.com"]));
    crate::binary::succeeded(&flowstore(url, &["users", "unlock", "ada@example.com"]));
    let reset = flowstore_with_input(
        url,
        &["users", "reset-password", "ada@example.com"],
        "another long one\n",
    );
    assert!(crate::binary::succeeded(&reset).contains("ada@example.com"));
    // Mistakes name what is wrong and change nothing.
    failed_naming(
        &flowstore_with_input(
            url,
            &["users", "reset-password", "ada@example.com"],
            "short\n",
        ),
        "password",
    );
    failed_naming(
        &flowstore_with_input(url, &["users", "reset-password", "ada@example.com"], ""),
        "password",
    );
    // The password policy: a common password, one too easy to guess.
    for weak in ["password1\n", "abcdefgh1234\n"] {
        failed_naming(
            &flowstore_with_input(
                url,
                &[
                    "users",
                    "create",
                    "--email",
                    "eve@example.com",
                    "--password-stdin",
                ],
                weak,
            ),
            "password",
        );
    }
    failed_naming(
        &flowstore(url, &["users", "reset-token", "nobody@example.com"]),
        "user",
    );
    failed_naming(
        &flowstore(url, &["users", "set-role", "bob@example.com", "owner"]),
        "role",
    );
    failed_naming(
        &flowstore(url, &["users", "disable", "nobody@example.com"]),
        "user",
    );
    failed_naming(
        &flowstore(url, &["users", "create", "--email", "not an address"]),
        "email",
    );
    failed_naming(
        &flowstore(url, &["users", "create", "--email", "bob@example.com"]),
        "email",
    );
    let all = crate::binary::succeeded(&flowstore(url, &["users", "list", "--role", "admin"]));
    assert_eq!(all.lines().count(), 2, "{all}");
}

async fn users_commands(url: String) {
    blocking(url.clone(), users_round_trip).await;
    // Each change was written to the audit log, as the command line's, and the
    // chain still verifies.
    use flowstore_core::model::audit::AuditFilter;
    let store = flowstore::Store::connect(&flowstore::config::Settings {
        database_url: url.clone(),
        encryption_key: Some(flowstore_testkit::ENCRYPTION_KEY.into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut tx = store.begin_read().await.unwrap();
    let entries = tx
        .list_audit(
            &AuditFilter {
                entity_type: Some("user".into()),
                ..AuditFilter::default()
            },
            &flowstore::PageRequest::first(100),
        )
        .await
        .unwrap()
        .items;
    let mut actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    actions.sort();
    assert_eq!(
        actions,
        [
            "user.create",
            "user.create",
            "user.password_change",
            "user.unlock",
            "user.update",
            "user.update",
            "user.update"
        ],
        "{entries:?}"
    );
    assert!(entries
        .iter()
        .all(|e| e.actor_id.as_deref() == Some("command line")));
    assert!(tx.verify_audit_chain().await.unwrap().is_intact());
    drop(tx);
    // For when no mail is sent: the operator hands out tokens, which confirm as
    // they would over HTTP.
    let u = url.clone();
    let (reset, verify) = tokio::task::spawn_blocking(move || {
        let r = flowstore(&u, &["users", "reset-token", "ada@example.com"]);
        let v = flowstore(&u, &["users", "verification-token", "bob@example.com"]);
        (
            crate::binary::succeeded(&r).trim().to_string(),
            crate::binary::succeeded(&v).trim().to_string(),
        )
    })
    .await
    .unwrap();
    assert_eq!(reset.len(), 43, "{reset}");
    let now = flowstore_core::time::now();
    let fresh =
        flowstore_core::model::identity::HashedPassword::new("violet tractor lighthouse").unwrap();
    let mut tx = store.begin().await.unwrap();
    let ada = tx.reset_password(&reset, &fresh, now).await.unwrap();
    assert_eq!(ada.email, "ada@example.com");
    let bob = tx.verify_email(&verify, now).await.unwrap();
    assert_eq!(bob.email, "bob@example.com");
    assert_eq!(bob.email_verified_at, Some(now));
    tx.commit().await.unwrap();
    let mut tx = store.begin_read().await.unwrap();
    for action in ["user.password_reset_request", "user.verification_request"] {
        let found = tx
            .list_audit(
                &AuditFilter {
                    action: Some(action.into()),
                    ..AuditFilter::default()
                },
                &flowstore::PageRequest::first(10),
            )
            .await
            .unwrap()
            .items;
        assert_eq!(found.len(), 1, "{action}: {found:?}");
    }
    drop(tx);
    store.close().await;
}

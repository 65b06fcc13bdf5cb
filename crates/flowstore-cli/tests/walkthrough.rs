//! The README's walk-through ("Run it"), run as written against the real binary on
//! SQLite and on PostgreSQL: `flowstore serve` on a free port in an empty directory,
//! the bootstrap key it prints, then every command of the README's walk-through in
//! order, taken from README.md itself (the curl calls with their JSON bodies, the
//! `jq` results its comments promise, the event stream, the example worker), until
//! the run has completed. A command this test does not know fails it, so the README
//! and the test cannot drift apart.

use flowstore_testkit::PgDatabase;
use std::collections::HashMap;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::worker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    walk(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let db = PgDatabase::create().await;
    walk(Some(db.url().to_string())).await;
}

/// The walk-through's shell commands, continuation lines joined, comments kept apart.
fn commands() -> Vec<(String, Option<String>)> {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("<!-- walkthrough:start -->")
        .expect("README marks the walk-through");
    let end = readme
        .find("<!-- walkthrough:end -->")
        .expect("README marks its end");
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in readme[start..end].lines() {
        if line.trim_start().starts_with("```") {
            in_sh = line.trim() == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        pending.push_str(line.trim_end_matches('\\'));
        if line.ends_with('\\') {
            pending.push(' ');
            continue;
        }
        if pending.matches('\'').count() % 2 == 1 {
            pending.push('\n'); // a quoted body goes on on the next line
            continue;
        }
        out.push(split_comment(&pending));
        pending.clear();
    }
    out
}

/// `(command, comment)`: a comment starts at a `#` after blank space, outside quotes.
fn split_comment(line: &str) -> (String, Option<String>) {
    let (mut single, mut double, mut prev) = (false, false, ' ');
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => {
                return (
                    line[..i].trim().to_string(),
                    Some(line[i + 1..].trim().to_string()),
                );
            }
            _ => {}
        }
        prev = c;
    }
    (line.trim().to_string(), None)
}

/// Splits a command into words as a shell would for these commands: quotes, and
/// `$NAME` expanded outside single quotes.
fn words(cmd: &str, vars: &HashMap<String, String>) -> Vec<String> {
    let (mut out, mut word, mut started) = (Vec::new(), String::new(), false);
    let (mut single, mut double) = (false, false);
    let mut chars = cmd.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if !double => (single, started) = (!single, true),
            '"' if !single => (double, started) = (!double, true),
            '$' if !single => {
                let mut name = String::new();
                while let Some(&n) = chars
                    .peek()
                    .filter(|n| n.is_ascii_alphanumeric() || **n == '_')
                {
                    name.push(n);
                    chars.next();
                }
                word.push_str(
                    vars.get(&name)
                        .unwrap_or_else(|| panic!("${name} is not set")),
                );
                started = true;
            }
            c if c.is_whitespace() && !single && !double => {
                if started {
                    out.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => (word.push(c), started = true).1,
        }
    }
    if started {
        out.push(word);
    }
    out
}

/// Runs a `curl` command with reqwest: `(-d body → POST, else GET)`, its headers.
async fn curl(http: &reqwest::Client, words: &[String]) -> Value {
    assert_eq!(words[0], "curl");
    let (mut headers, mut body, mut url) = (Vec::new(), None, None);
    let mut it = words[1..].iter();
    while let Some(w) = it.next() {
        match w.as_str() {
            "-s" | "-N" => {}
            "-H" => headers.push(it.next().unwrap().clone()),
            "-d" => body = Some(it.next().unwrap().clone()),
            u if u.starts_with("http") => url = Some(u.to_string()),
            other => panic!("the walk-through test does not know curl's {other}"),
        }
    }
    let url = url.expect("curl is given a URL");
    let mut req = match &body {
        Some(b) => {
            let json: Value = serde_json::from_str(b)
                .unwrap_or_else(|e| panic!("README body is not JSON ({e}): {b}"));
            http.post(&url).body(json.to_string())
        }
        None => http.get(&url),
    };
    for h in headers {
        let (k, v) = h.split_once(':').unwrap();
        req = req.header(k.trim(), v.trim());
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {text}"))
}

/// `jq -r .a.b`.
fn jq(value: &Value, path: &str) -> String {
    let v = path
        .trim_start_matches('.')
        .split('.')
        .fold(value, |v, k| &v[k]);
    v.as_str()
        .map(String::from)
        .unwrap_or_else(|| v.to_string())
}

/// The server process, stopped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `flowstore serve` on a free port in an empty directory; returns it with
/// the bootstrap key and the address it printed.
fn serve(database_url: Option<&str>, dir: &std::path::Path) -> (Server, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowstore"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir);
    for var in [
        "DATABASE_URL",
        "FLOWSTORE_LISTEN",
        "ENCRYPTION_KEY",
        "FLOWSTORE_KEY_FILE",
        "DB_HOST",
        "DB_NAME",
    ] {
        cmd.env_remove(var);
    }
    if let Some(url) = database_url {
        cmd.env("DATABASE_URL", url);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let (mut key, mut url, mut printed) = (None, None, Vec::new());
    while url.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("serve printed {printed:#?}"));
        if line.trim().starts_with("fsk_") {
            key = Some(line.trim().to_string());
        }
        if let Some(u) = line.strip_prefix("flowstore is listening on ") {
            url = Some(u.to_string());
        }
        printed.push(line);
    }
    for expected in [
        "No API key existed, so an admin key was created. It is shown only now:",
        "Send it as: Authorization: Bearer <key>",
    ] {
        assert!(
            printed.iter().any(|l| l == expected),
            "README shows {expected:?}: {printed:#?}"
        );
    }
    (
        server,
        key.expect("the bootstrap key is printed"),
        url.unwrap(),
    )
}

async fn walk(database_url: Option<String>) {
    let dir =
        std::env::temp_dir().join(format!("flowstore-walk-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_server, key, url) = serve(database_url.as_deref(), &dir);
    let http = reqwest::Client::new();
    let mut vars: HashMap<String, String> = HashMap::new();
    let mut events: Option<tokio::task::JoinHandle<Vec<String>>> = None;
    let mut served_by_worker = None;
    let mut last_status = String::new();
    for (cmd, comment) in commands() {
        if cmd.starts_with("createdb ")
            || cmd.ends_with("cargo run --release -p flowstore-cli -- serve")
        {
            continue; // the server is already running, on a database made for the test
        }
        if let Some(assign) = cmd.strip_prefix("export ") {
            let (name, value) = assign.split_once('=').unwrap();
            let value = match name {
                "KEY" => key.clone(),
                "FLOWSTORE" => {
                    assert_eq!(value, "http://127.0.0.1:8080", "the default address");
                    url.clone()
                }
                other => panic!("the walk-through test does not know ${other}"),
            };
            vars.insert(name.to_string(), value);
            continue;
        }
        if cmd.starts_with("cargo run --release -p flowstore-cli --example worker -- ") {
            let w = words(&cmd, &vars);
            let arg = |flag: &str| w.iter().position(|x| x == flag).map(|i| w[i + 1].clone());
            assert_eq!(arg("--url").as_deref(), Some(url.as_str()));
            assert_eq!(arg("--key").as_deref(), Some(key.as_str()));
            let handlers: Vec<String> = arg("--handlers")
                .unwrap()
                .split(',')
                .map(String::from)
                .collect();
            served_by_worker = Some(start_worker(&url, &key, handlers));
            // watch it finish the run: the event stream ends with run.completed
            let seen = tokio::time::timeout(
                Duration::from_secs(120),
                events.take().expect("events are followed first"),
            )
            .await
            .expect("the run completes within two minutes")
            .unwrap();
            assert!(seen.iter().any(|e| e == "task.completed"), "{seen:?}");
            continue;
        }
        let (assign, cmd) = match cmd.split_once("=$(") {
            Some((name, rest)) => (
                Some(name.to_string()),
                rest.strip_suffix(')').unwrap().to_string(),
            ),
            None => (None, cmd),
        };
        let (cmd, path) = match cmd.split_once(" | jq -r ") {
            Some((c, p)) => (c.to_string(), Some(p.trim().to_string())),
            None => (cmd, None),
        };
        let w = words(&cmd, &vars);
        if w.iter().any(|x| x == "-N") {
            events = Some(tokio::spawn(follow(http.clone(), w)));
            continue;
        }
        let answer = curl(&http, &w).await;
        let Some(path) = path else { continue };
        let value = jq(&answer, &path);
        match (assign, comment) {
            (Some(name), _) => {
                vars.insert(name, value);
            }
            (None, Some(expected)) => {
                // the comment's first word is the value the README promises
                let promised = expected.split([':', ' ']).next().unwrap();
                assert_eq!(
                    value, promised,
                    "{cmd}: the README's comment says {expected}"
                );
                last_status = value;
            }
            (None, None) => {}
        }
    }
    assert_eq!(
        last_status, "completed",
        "the walk-through ends with a completed run"
    );
    let (stop, worker) = served_by_worker.expect("the walk-through runs the worker");
    stop.send(true).unwrap();
    let report = worker.await.unwrap().expect("the worker stops cleanly");
    assert_eq!(
        report.completed.len(),
        2,
        "build and test, once each: {report:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

type Worker = tokio::task::JoinHandle<Result<worker::Report, worker::WorkerError>>;

fn start_worker(
    url: &str,
    key: &str,
    handler_types: Vec<String>,
) -> (tokio::sync::watch::Sender<bool>, Worker) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let config = worker::Config {
        url: url.to_string(),
        key: key.to_string(),
        worker_id: "example-worker".into(),
        handler_types,
        concurrency: 4,
        lease_ms: 30_000,
        wait_ms: 1_000,
    };
    (stop, tokio::spawn(worker::run(config, stopped)))
}

/// Follows a server-sent event stream (the README's `curl -N`) until `run.completed`;
/// returns the event types seen.
async fn follow(http: reqwest::Client, words: Vec<String>) -> Vec<String> {
    let url = words.iter().find(|w| w.starts_with("http")).unwrap();
    let auth = words
        .iter()
        .find(|w| w.starts_with("Authorization:"))
        .unwrap();
    let mut res = http
        .get(url)
        .header("authorization", auth.split_once(':').unwrap().1.trim())
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{url}: {}", res.status());
    let (mut seen, mut buffer) = (Vec::new(), String::new());
    while let Some(chunk) = res.chunk().await.unwrap() {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(i) = buffer.find('\n') {
            let line: String = buffer.drain(..=i).collect();
            if let Some(kind) = line.trim().strip_prefix("event:") {
                seen.push(kind.trim().to_string());
                if kind.trim() == "run.completed" {
                    return seen;
                }
            }
        }
    }
    panic!("the event stream ended before run.completed: {seen:?}")
}

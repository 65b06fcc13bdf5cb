//! The dashboard in a real browser, on SQLite and PostgreSQL: headless Chromium
//! (Debian's `chromium`, driven through its `chromedriver`; `scripts/test.sh`
//! installs both) against a server listening on a port of its own. A user signs in,
//! reads the overview, filters runs through the URL, opens a run and watches it
//! complete live while a worker finishes it over the API, cancels a run, retries it
//! and re-runs it, and signs out. The views are saved as screenshots in `target/screenshots/`
//! (README's come from there).
//!
//! Chromium and chromedriver are found on the PATH or through `FLOWSTORE_CHROMIUM`
//! and `FLOWSTORE_CHROMEDRIVER`; without them the test fails and says how to get
//! them.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use flowstore_core::Backend;
use flowstore_testkit::fixtures::{diamond, PASSWORD};
use flowstore_testkit::{both_backends, Served, TestApp};
use serde_json::{json, Value};

both_backends!(a_user_follows_and_steers_runs_in_the_browser);

/// A program by its environment variable, else the first of `names` on the PATH.
fn program(var: &str, names: &[&str]) -> PathBuf {
    if let Ok(p) = std::env::var(var) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for n in names {
            let candidate = dir.join(n);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "{} not found: install Debian's chromium and chromium-driver (scripts/test.sh does) \
         or set {var}",
        names[0]
    );
}

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(program("FLOWSTORE_CHROMEDRIVER", &["chromedriver"]))
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    let d = Driver { child, url };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on {port}");
}

async fn browser(d: &Driver, profile: &std::path::Path) -> Client {
    let chromium = program("FLOWSTORE_CHROMIUM", &["chromium", "chromium-browser"]);
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&d.url)
        .await
        .expect("a Chromium session")
}

/// Waits (up to 15 s) for an element matching `css` whose text contains `text`.
async fn until_text(b: &Client, css: &str, text: &str) {
    for _ in 0..150 {
        if let Ok(found) = b.find_all(Locator::Css(css)).await {
            for e in found {
                if e.text().await.unwrap_or_default().contains(text) {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = b.source().await.unwrap_or_default();
    panic!(
        "no {css} with {text:?} on the page:\n{}",
        &page[..page.len().min(4000)]
    );
}

/// The text of the element whose ID is `id`.
async fn text_of(b: &Client, id: &str) -> String {
    b.find(Locator::Id(id)).await.unwrap().text().await.unwrap()
}

/// Clicks the element `xpath` finds and, when `confirm`, accepts the dialog it
/// opens; again if the view was redrawn under it (a live page re-renders on events).
async fn click(b: &Client, xpath: &str, confirm: bool) {
    let mut last = None;
    for _ in 0..50 {
        let clicked = match b.find(Locator::XPath(xpath)).await {
            Ok(e) => e.click().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match clicked {
            Ok(()) if !confirm => return,
            Ok(()) => {
                for _ in 0..50 {
                    if b.accept_alert().await.is_ok() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                last = Some("no dialog opened".to_string());
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not click {xpath}: {last:?}");
}

/// The WebDriver code of the Tab key, and of Enter.
const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";

/// Sends `key` to the element that has the focus (the page when none has); an error
/// when the page replaced that element meanwhile (live pages re-render as events
/// arrive).
async fn try_press(b: &Client, key: &str) -> Result<(), String> {
    let focused = b.active_element().await.map_err(|e| e.to_string())?;
    focused.send_keys(key).await.map_err(|e| e.to_string())
}

/// [`try_press`] until the key reaches a focused element; fails after 20 tries.
async fn press(b: &Client, key: &str) {
    let mut last = String::new();
    for _ in 0..20 {
        match try_press(b, key).await {
            Ok(()) => return,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("could not press {key:?}: {last}");
}

/// Tabs to the control whose text is `text` and presses Enter on it, as a keyboard
/// user does; again from the Tab walk when the page replaced the control in between.
async fn enter_on(b: &Client, text: &str) {
    let mut last = String::new();
    for _ in 0..10 {
        tab_to(b, text).await;
        match try_press(b, ENTER).await {
            Ok(()) => return,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not press Enter on {text:?}: {last}");
}

/// Presses Enter on the control `text` ([`enter_on`]) and accepts the confirmation
/// it must ask for; true once one was accepted. When no dialog opens, the live page
/// replaced the control between the key and its handler (nothing happened without
/// the confirmation), so the keyboard user walks to it and presses again.
async fn enter_and_confirm(b: &Client, text: &str) -> bool {
    for _ in 0..5 {
        enter_on(b, text).await;
        for _ in 0..50 {
            if b.accept_alert().await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    false
}

/// Presses Tab until the focused control's text is `text`, as a keyboard user walks
/// the page; fails after 80 presses.
async fn tab_to(b: &Client, text: &str) {
    let mut walked = Vec::new();
    for _ in 0..80 {
        let focused = b
            .execute(
                "return document.activeElement ? document.activeElement.textContent.trim() : ''",
                vec![],
            )
            .await
            .unwrap();
        if focused == text {
            return;
        }
        walked.push(focused);
        press(b, TAB).await;
    }
    panic!("Tab never reached {text:?}; it went through {walked:?}");
}

async fn screenshot(b: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = b.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Claims and completes every ready `shell` task as a worker would.
async fn work(c: &TestApp) -> usize {
    let got = c
        .admin()
        .claim(json!({"worker_id": "browser-worker", "handler_types": ["shell"], "limit": 10, "lease_ms": 30000}))
        .await
        .want(200);
    let tasks = got.as_array().unwrap().clone();
    for t in &tasks {
        c.admin()
            .complete(
                json!({"task_id": t["task_id"], "attempt": t["attempt"], "output": {"ok": true},
                             "usage": {"memory_usage_mb": 42, "cpu_time_ms": 120}}),
            )
            .await
            .want(200);
    }
    tasks.len()
}

async fn a_user_follows_and_steers_runs_in_the_browser(backend: Arc<dyn Backend>) {
    let c = TestApp::new(backend).await;
    c.password_user("ops@x.io", "admin").await;
    c.shell_handler().await;
    let definition = diamond(["build", "test", "lint", "ship"]);
    let wf = c
        .admin()
        .create_workflow(json!({"name": "release", "status": "active", "definition": definition}))
        .await
        .want_id(201);
    let start = |input: Value| {
        let c = &c;
        let wf = wf.clone();
        async move {
            let r = c
                .admin()
                .start_run(&wf, json!({ "input": input }))
                .await
                .want(201);
            (
                r["run"]["id"].as_str().unwrap().to_string(),
                r["run"]["execution_id"].as_str().unwrap().to_string(),
            )
        }
    };
    // One run finished earlier, for the overview's chart.
    start(json!({"n": 0})).await;
    while work(&c).await > 0 {}

    let served = Served::start(c.state.clone()).await;
    let base = served.base.clone();
    let d = driver().await;
    let profile = tempfile_dir();
    let b = browser(&d, &profile).await;

    // Sign in.
    b.goto(&base).await.unwrap();
    until_text(&b, "h1", "Sign in").await;
    b.find(Locator::Css("input[name=email]"))
        .await
        .unwrap()
        .send_keys("ops@x.io")
        .await
        .unwrap();
    b.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    b.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_text(&b, "h1", "Overview").await;
    until_text(&b, ".card", "Runs finished").await;
    until_text(&b, ".card", "Lease expirations").await;
    // The first run's four tasks, done within the quarter hour: 4 / 15 a minute.
    assert_eq!(text_of(&b, "throughput").await, "0.3");
    assert_eq!(text_of(&b, "expirations").await, "0");
    until_text(&b, "#who", "ops@x.io").await;
    screenshot(&b, "overview").await;

    // The runs list follows the event stream: a run started while it is open shows
    // up without a reload (the page does not poll).
    b.goto(&format!("{base}/#/runs")).await.unwrap();
    until_text(&b, "h1", "Runs").await;
    until_text(&b, "table", "completed").await;
    let mut open = Value::Null;
    for _ in 0..100 {
        open = b
            .execute("return live && live.readyState", vec![])
            .await
            .unwrap();
        if open == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open, 1, "the runs list listens to the event stream");
    let (run, execution) = start(json!({"branch": "main"})).await;
    until_text(&b, "table", &execution).await;

    // The run in progress, found by the filters in the URL, then reached and opened
    // with the keyboard alone, its focus visible.
    b.goto(&format!("{base}/#/runs?status=running"))
        .await
        .unwrap();
    until_text(&b, "table", &execution).await;
    screenshot(&b, "runs").await;
    tab_to(&b, &execution).await;
    let outline = b
        .execute(
            "return getComputedStyle(document.activeElement).outlineStyle",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(outline, "solid", "the focused link shows its focus");
    enter_on(&b, &execution).await;

    // Its page: the steps, then live progress as a worker finishes it.
    until_text(&b, "h1", "running").await;
    assert!(
        b.current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with(&format!("#/runs/{run}")),
        "Enter opened the run"
    );
    until_text(&b, "svg.dag", "build · ready").await;
    while work(&c).await > 0 {}
    until_text(&b, "h1", "completed").await;
    until_text(&b, "svg.dag", "ship · completed").await;
    until_text(&b, "table", "browser-worker").await;
    until_text(&b, "table", "42 MB").await;
    until_text(&b, "ol.events", "run.completed").await;
    screenshot(&b, "run").await;

    // The workflow: its figures, its steps and what its new version changed.
    c.admin()
        .update_workflow(
            &wf,
            json!({"definition": {"steps": [
            {"key": "build", "handler": "shell"},
            {"key": "test", "handler": "shell", "depends_on": ["build"]},
            {"key": "lint", "handler": "shell", "depends_on": ["build"]},
            {"key": "ship", "handler": "shell", "depends_on": ["test", "lint"]},
            {"key": "notify", "handler": "shell", "depends_on": ["ship"]}]}}),
        )
        .await
        .want(200);
    b.goto(&format!("{base}/#/workflows")).await.unwrap();
    until_text(&b, "table", "release").await;
    click(&b, "//a[text()='release']", false).await;
    until_text(&b, "h1", "release").await;
    until_text(&b, ".card", "Median duration").await;
    until_text(&b, "svg.dag", "notify").await;
    until_text(&b, "pre.diff span.add", "notify").await;
    screenshot(&b, "workflow").await;

    // Cancel another run, then re-run it, each after confirming.
    let (other, _) = start(json!({"branch": "next"})).await;
    b.goto(&format!("{base}/#/runs/{other}")).await.unwrap();
    until_text(&b, "h1", "running").await;
    // Cancelled with the keyboard: Tab to the button, Enter, then confirm.
    assert!(
        enter_and_confirm(&b, "Cancel").await,
        "Cancel asks for confirmation"
    );
    until_text(&b, "h1", "cancelled").await;
    click(&b, "//button[text()='Retry']", true).await;
    until_text(&b, "h1", "running").await;
    until_text(&b, "ol.events", "run.retried").await;
    click(&b, "//button[text()='Re-run']", true).await;
    let mut moved = false;
    for _ in 0..150 {
        let url = b.current_url().await.unwrap().to_string();
        if url.contains("#/runs/") && !url.contains(&other) {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(moved, "the re-run's page opens");
    until_text(&b, "h1", "running").await;
    let retried = c.admin().get_run(&other).await.want(200);
    assert_eq!(
        retried["status"], "running",
        "retried, then re-run as another run"
    );

    // A project's board, the handlers and the admin pages.
    let project = c
        .admin()
        .create_project(json!({"name": "website"}))
        .await
        .want_id(201);
    for (title, ready) in [("write copy", false), ("ship page", true)] {
        let t = c
            .admin()
            .create_task(json!({"title": title, "project_id": project}))
            .await
            .want_id(201);
        if ready {
            c.admin()
                .update_task(&t, json!({"status": "ready"}))
                .await
                .want(200);
        }
    }
    b.goto(&format!("{base}/#/projects")).await.unwrap();
    click(&b, "//a[text()='website']", false).await;
    until_text(&b, "section[aria-label=pending]", "write copy").await;
    until_text(&b, "section[aria-label=ready]", "ship page").await;
    screenshot(&b, "project").await;
    b.goto(&format!("{base}/#/handlers")).await.unwrap();
    until_text(&b, "table", "shell").await;
    b.goto(&format!("{base}/#/admin")).await.unwrap();
    until_text(&b, "table", "ops@x.io").await;
    until_text(&b, "p[role=status]", "The chain verifies").await;
    until_text(&b, "table", "run.retry").await;
    screenshot(&b, "admin").await;

    // Notifications: the count in the navigation, the list, marking them read.
    let mut tx = c.backend.begin().await.unwrap();
    let ops = tx.get_user_by_email("ops@x.io").await.unwrap();
    tx.create_notification(flowstore_core::model::identity_access::NewNotification {
        user_id: ops.id,
        kind: flowstore_core::model::identity_access::NotificationType::WorkflowShared,
        title: "release was shared with you (read)".into(),
        message: None,
        data: Some(json!({"workflow_id": wf})),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    b.goto(&format!("{base}/#/notifications")).await.unwrap();
    until_text(&b, "#notes-link", "Notifications (1)").await;
    until_text(&b, "table", "release was shared with you").await;
    click(&b, "//button[text()='Mark all read']", false).await;
    for _ in 0..100 {
        if text_of(&b, "notes-link").await == "Notifications" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = text_of(&b, "notes-link").await;
    assert_eq!(text, "Notifications", "marked read");

    // On a phone's width the tables scroll inside the page, and the keyboard reaches
    // the navigation first.
    b.set_window_size(390, 844).await.unwrap();
    b.goto(&format!("{base}/#/runs/{run}")).await.unwrap();
    until_text(&b, "h1", "completed").await;
    let overflow = b
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        overflow.as_i64().unwrap_or(1) <= 0,
        "the page is wider than the phone: {overflow}"
    );
    screenshot(&b, "phone").await;
    b.set_window_size(1280, 1000).await.unwrap();
    // Every control is reachable by keyboard, and Tab moves between them.
    let unreachable = b
        .execute(
            "return [...document.querySelectorAll('a, button, input, select')]
                .filter((e) => !e.hidden && e.tabIndex < 0).length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(unreachable, 0, "controls out of the tab order");
    b.find(Locator::Css("#nav a"))
        .await
        .unwrap()
        .send_keys(TAB)
        .await
        .unwrap();
    let focused = b
        .execute("return document.activeElement.textContent", vec![])
        .await
        .unwrap();
    assert_eq!(focused, "Runs", "Tab moves from the first link to the next");

    // The theme switch and signing out.
    b.find(Locator::Id("theme"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let theme = b
        .execute("return document.documentElement.dataset.theme", vec![])
        .await
        .unwrap();
    assert!(theme == "dark" || theme == "light", "{theme}");
    click(&b, "//button[@id='signout']", false).await;
    until_text(&b, "h1", "Sign in").await;
    b.goto(&format!("{base}/#/runs")).await.unwrap();
    until_text(&b, "h1", "Sign in").await;

    // A forgotten password: the request answers the same for any address; the
    // link of the message (here a token handed out as `flowstore users reset-token`
    // does) chooses a new one, and the link of a verification message confirms the
    // address. No sign-in is needed for either.
    click(&b, "//a[text()='Forgot your password?']", false).await;
    until_text(&b, "h1", "Forgot your password?").await;
    b.find(Locator::Css("input[name=email]"))
        .await
        .unwrap()
        .send_keys("nobody@x.io")
        .await
        .unwrap();
    click(&b, "//button[text()='Send me a link']", false).await;
    until_text(
        &b,
        "p[role=status]",
        "if the address belongs to an active account",
    )
    .await;
    let now = flowstore_core::time::now();
    let mut tx = c.backend.begin().await.unwrap();
    let ops = tx.get_user_by_email("ops@x.io").await.unwrap();
    let reset = tx.issue_reset_token(ops.id, now).await.unwrap();
    let verify = tx.issue_verification_token(ops.id, now).await.unwrap();
    tx.commit().await.unwrap();
    b.goto(&format!("{base}/#/reset-password?token={reset}"))
        .await
        .unwrap();
    until_text(&b, "h1", "Choose a new password").await;
    let field = b.find(Locator::Css("input[name=password]")).await.unwrap();
    field.send_keys("password1").await.unwrap();
    click(&b, "//button[text()='Set the password']", false).await;
    until_text(&b, "p[role=alert]", "most common passwords").await;
    screenshot(&b, "reset-password").await;
    field.clear().await.unwrap();
    field.send_keys("violet tractor lighthouse").await.unwrap();
    click(&b, "//button[text()='Set the password']", false).await;
    until_text(&b, "p[role=alert]", "Your password is changed").await;
    b.goto(&format!("{base}/#/verify-email?token={verify}"))
        .await
        .unwrap();
    until_text(&b, "p[role=status]", "Your email address is confirmed").await;
    let mut tx = c.backend.begin().await.unwrap();
    let ops = tx.get_user(ops.id).await.unwrap();
    tx.commit().await.unwrap();
    assert!(ops.email_verified_at.is_some());
    assert!(flowstore_core::model::identity::check_password(
        ops.password_hash.as_deref(),
        "violet tractor lighthouse"
    ));

    b.close().await.unwrap();
    drop(d);
    served.stop().await;
    let _ = std::fs::remove_dir_all(profile);
}

/// A fresh directory for the browser's profile.
fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowstore-chromium-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

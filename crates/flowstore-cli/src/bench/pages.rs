//! The dashboard's whole pages over HTTP, in the `query` workload: `flowstore serve`
//! in this process on the loaded database, read by a client that makes the
//! requests the dashboard's script (`crates/flowstore-server/ui/app.js`) makes for
//! each page, at once where the script awaits them together (`Promise.all`) and one
//! after the other where it awaits them in turn. One sample is one whole page: from
//! its first request sent to its last answer read.
//!
//! Each page is read by a signed-in admin and by a signed-in user who owns nothing
//! (who sees the workflows of no one and the public ones, through the visibility
//! predicates of the lists' SQL), with the session cookie the dashboard's sign-in
//! sets, as a browser does: an API key of no user cannot read the notifications every
//! page asks for. Every answer must be a 2xx and is checked against what the load
//! made; the bytes counted are those the answers took on the wire (status line,
//! headers and body; the server compresses nothing).

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::DurationRound;
use flowstore_core::ids::WorkflowId;
use flowstore_core::model::identity::{NewUser, Role};
use flowstore_core::StoreResult;
use serde_json::{json, Value};

use super::query::repeat;
use super::query_load::{visible_to_others, WORKFLOWS};
use super::{fail, InProcess, Samples, Target};

/// The unread count, which the script asks for on opening any page, alongside it.
const UNREAD: &str = "/api/v1/notifications/unread-count";

/// The dashboard's pages (`route()` in the script).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Page {
    Overview,
    Runs,
    Run,
    Workflows,
    Workflow,
    Projects,
    Handlers,
    Notifications,
    Admin,
}

impl Page {
    const ALL: [Page; 9] = [
        Page::Overview,
        Page::Runs,
        Page::Run,
        Page::Workflows,
        Page::Workflow,
        Page::Projects,
        Page::Handlers,
        Page::Notifications,
        Page::Admin,
    ];

    fn name(self) -> &'static str {
        match self {
            Page::Overview => "overview",
            Page::Runs => "runs",
            Page::Run => "a run",
            Page::Workflows => "workflows",
            Page::Workflow => "a workflow",
            Page::Projects => "projects",
            Page::Handlers => "handlers",
            Page::Notifications => "notifications",
            Page::Admin => "admin",
        }
    }
}

/// What one opening of a page took on the wire.
#[derive(Clone, Copy)]
struct Transfer {
    /// Requests made.
    requests: u64,
    /// Bytes of their answers: status lines, headers and bodies.
    bytes: u64,
}

impl std::ops::Add for Transfer {
    type Output = Transfer;
    fn add(self, other: Transfer) -> Transfer {
        Transfer {
            requests: self.requests + other.requests,
            bytes: self.bytes + other.bytes,
        }
    }
}

/// A signed-in browser: the session cookie its sign-in set, and who it is.
#[derive(Clone)]
struct Browser {
    client: reqwest::Client,
    /// `http://127.0.0.1:port`.
    origin: String,
    cookie: String,
    admin: bool,
}

impl Browser {
    /// Makes a user of `role` and signs in as the dashboard does (`POST /ui/session`).
    async fn sign_in(
        target: &Target,
        client: &reqwest::Client,
        origin: &str,
        role: Role,
    ) -> StoreResult<Browser> {
        let email = format!("bench-{role}@example.com");
        let password = uuid::Uuid::new_v4().simple().to_string();
        let new = NewUser {
            email: email.clone(),
            password: Some(flowstore_core::crypto::SecretString::new(password.clone())),
            role: Some(role),
            ..NewUser::default()
        };
        // Hashing is slow on purpose: off the runtime's threads.
        let new = tokio::task::spawn_blocking(move || new.hashed())
            .await
            .map_err(|e| fail(format!("hashing: {e}")))??;
        let mut tx = target.backend.begin().await?;
        tx.create_user(new).await?;
        tx.commit().await?;
        let answer = client
            .post(format!("{origin}/ui/session"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .map_err(|e| fail(format!("sign-in: {e}")))?;
        if !answer.status().is_success() {
            return Err(fail(format!("sign-in answered {}", answer.status())));
        }
        // The cookies as the browser sends them back: `name=value` of each.
        let cookie = answer
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .collect::<Vec<_>>()
            .join("; ");
        if cookie.is_empty() {
            return Err(fail("the sign-in set no cookie"));
        }
        Ok(Browser {
            client: client.clone(),
            origin: origin.to_string(),
            cookie,
            admin: role == Role::Admin,
        })
    }

    fn who(&self) -> &'static str {
        if self.admin {
            "admin"
        } else {
            "user"
        }
    }

    /// GETs `path`; fails unless it answers a 2xx. The body, and what the answer took
    /// on the wire.
    async fn get(&self, path: impl Into<String>, accept: &str) -> StoreResult<(Vec<u8>, Transfer)> {
        let path = path.into();
        let answer = self
            .client
            .get(format!("{}{path}", self.origin))
            .header(reqwest::header::ACCEPT, accept)
            .header(reqwest::header::COOKIE, &self.cookie)
            .send()
            .await
            .map_err(|e| fail(format!("GET {path}: {e}")))?;
        let status = answer.status();
        // The status line, each header line and the blank line, as HTTP/1.1 sends them.
        let head = format!("{:?} {status}\r\n", answer.version()).len()
            + answer
                .headers()
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len() + 4)
                .sum::<usize>()
            + 2;
        let body = answer
            .bytes()
            .await
            .map_err(|e| fail(format!("GET {path}: {e}")))?;
        if !status.is_success() {
            return Err(fail(format!(
                "GET {path} answered {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        let sent = Transfer {
            requests: 1,
            bytes: (head + body.len()) as u64,
        };
        Ok((body.to_vec(), sent))
    }

    /// GETs an API path as the script's `api()` does, as JSON.
    async fn api(&self, path: impl Into<String>) -> StoreResult<(Value, Transfer)> {
        let path = path.into();
        let (body, sent) = self.get(path.as_str(), "application/json").await?;
        let value = serde_json::from_slice(&body)
            .map_err(|e| fail(format!("GET {path} answered no JSON: {e}")))?;
        Ok((value, sent))
    }
}

/// A page's answer's `items` (a list page), or the answer itself (a plain array).
fn items(v: &Value) -> &[Value] {
    v.get("items")
        .unwrap_or(v)
        .as_array()
        .map_or(&[], Vec::as_slice)
}

/// Fails the bench, saying `what`, unless `ok`.
fn check(ok: bool, what: impl FnOnce() -> String) -> StoreResult<()> {
    if ok {
        Ok(())
    } else {
        Err(fail(what()))
    }
}

/// What the load made that one reader may see, and the objects their pages open.
struct Seen {
    /// Runs (all of them for an admin).
    runs: u64,
    /// Failed runs.
    failed: u64,
    /// Runs of the workflow opened, and those of them completed.
    wf_runs: u64,
    wf_completed: u64,
    /// The workflow its page opens, picked from the workflows page.
    workflow: String,
    /// The run its page opens, picked from the runs page, and its tasks (the load's
    /// runs have no attempts).
    run: String,
    run_tasks: usize,
    /// The IDs of the loaded workflows this reader may not see.
    hidden: Vec<String>,
    /// Whether the rollups have finished runs in the last day and month.
    finished_lately: bool,
}

/// The load's runs `1..=n` and `workflows` as a reader sees them (an admin, or a
/// user who owns nothing); the workflow opened and its run still to pick.
fn seen(n: u64, admin: bool, workflows: &[WorkflowId], workflow: usize) -> Seen {
    let hidden = |k: usize| !admin && !visible_to_others(k);
    let mut s = Seen {
        runs: 0,
        failed: 0,
        wf_runs: 0,
        wf_completed: 0,
        workflow: String::new(),
        run: String::new(),
        run_tasks: 0,
        hidden: (0..WORKFLOWS)
            .filter(|&k| hidden(k))
            .map(|k| workflows[k].to_string())
            .collect(),
        finished_lately: n >= 1000,
    };
    for i in 1..=n {
        let k = (i % WORKFLOWS as u64) as usize;
        if hidden(k) {
            continue;
        }
        s.runs += 1;
        // The load's statuses: completed below 14 of 20, failed 14 and 15.
        let status = i % 20;
        if status == 14 || status == 15 {
            s.failed += 1;
        }
        if k == workflow {
            s.wf_runs += 1;
            if status < 14 {
                s.wf_completed += 1;
            }
        }
    }
    s
}

/// Opens `page` once, as the script does after a first load; answers what it
/// transferred.
async fn open(b: &Browser, page: Page, seen: &Seen) -> StoreResult<Transfer> {
    let (unread, sent) = tokio::try_join!(b.api(UNREAD), requests(b, page, seen))?;
    check(unread.0["unread"].is_u64(), || {
        format!("the unread count answered {}", unread.0)
    })?;
    Ok(unread.1 + sent)
}

/// The requests of `page`, as its function in the script makes them.
async fn requests(b: &Browser, page: Page, seen: &Seen) -> StoreResult<Transfer> {
    // A full page unless the reader may see fewer (other workloads' runs may add some).
    let full = |list: &Value, total: u64, page: u64| {
        let len = items(list).len() as u64;
        len >= total.min(page) && len <= page
    };
    match page {
        Page::Overview => {
            // The 24 hours up to this one, from the start of the hour 23 hours ago.
            let now = flowstore_core::time::now();
            let since = (now - chrono::TimeDelta::hours(23))
                .duration_trunc(chrono::TimeDelta::hours(1))
                .map_err(|e| fail(format!("since: {e}")))?
                .format("%Y-%m-%dT%H:%M:%S%.3fZ");
            let ((points, a), (failed, c)) = tokio::try_join!(
                b.api(format!("/api/v1/analytics/runs?bucket=hour&since={since}")),
                b.api("/api/v1/runs?status=failed&limit=10"),
            )?;
            check(!seen.finished_lately || !items(&points).is_empty(), || {
                "the overview's chart has no finished run".into()
            })?;
            check(full(&failed, seen.failed, 10), || {
                format!("the overview lists {} failed runs", items(&failed).len())
            })?;
            let mut sent = a + c;
            if b.admin {
                let ((queues, q), (workers, w)) =
                    tokio::try_join!(b.api("/api/v1/queues"), b.api("/api/v1/workers"))?;
                check(queues.is_array() && workers.is_array(), || {
                    "queues or workers answered no list".into()
                })?;
                sent = sent + q + w;
            }
            Ok(sent)
        }
        Page::Runs => {
            let (runs, sent) = b.api("/api/v1/runs?limit=50").await?;
            check(full(&runs, seen.runs, 50), || {
                format!("the runs page lists {} runs", items(&runs).len())
            })?;
            check(
                items(&runs)
                    .iter()
                    .all(|r| !seen.hidden.iter().any(|h| r["workflow_id"] == h.as_str())),
                || "the runs page shows a run the reader may not see".into(),
            )?;
            Ok(sent)
        }
        Page::Run => {
            let id = &seen.run;
            let (run, a) = b.api(format!("/api/v1/runs/{id}")).await?;
            check(run["id"] == id.as_str(), || {
                format!("GET /runs/{id} answered {run}")
            })?;
            let ((tasks, t), (attempts, c)) = tokio::try_join!(
                b.api(format!("/api/v1/runs/{id}/tasks")),
                b.api(format!("/api/v1/runs/{id}/attempts")),
            )?;
            check(
                items(&tasks).len() == seen.run_tasks && attempts.is_array(),
                || format!("run {id} has tasks {tasks} and attempts {attempts}"),
            )?;
            let mut sent = a + t + c;
            if let (Some(w), Some(v)) = (
                run["workflow_ref"].as_str(),
                run["workflow_version"].as_str(),
            ) {
                let (version, d) = b.api(format!("/api/v1/workflows/{w}/versions/{v}")).await?;
                check(version["definition"]["steps"].is_array(), || {
                    format!("version {v} of {w} answered {version}")
                })?;
                sent = sent + d;
            }
            Ok(sent)
        }
        Page::Workflows => {
            let (list, sent) = b.api("/api/v1/workflows?limit=50").await?;
            let names: Vec<&str> = items(&list)
                .iter()
                .filter_map(|w| w["name"].as_str())
                .collect();
            for k in 0..WORKFLOWS {
                let shown = names.contains(&format!("bench-wf-{k}").as_str());
                check(shown == (b.admin || visible_to_others(k)), || {
                    format!("the workflows page shows {names:?}")
                })?;
            }
            Ok(sent)
        }
        Page::Workflow => {
            let id = &seen.workflow;
            let ((w, a), (summary, c), (durations, d), (versions, e), (days, f), (recent, g)) = tokio::try_join!(
                b.api(format!("/api/v1/workflows/{id}")),
                b.api(format!("/api/v1/workflows/{id}/summary")),
                b.api(format!("/api/v1/workflows/{id}/durations")),
                b.api(format!("/api/v1/workflows/{id}/versions")),
                b.api(format!(
                    "/api/v1/analytics/runs?bucket=day&workflow_id={id}"
                )),
                b.api(format!("/api/v1/runs?limit=10&workflow_id={id}")),
            )?;
            check(w["id"] == id.as_str(), || {
                format!("GET /workflows/{id} answered {w}")
            })?;
            check(summary["runs"]["total"] == seen.wf_runs, || {
                format!(
                    "the summary counts {}, expected {}",
                    summary["runs"], seen.wf_runs
                )
            })?;
            check(durations["runs"] == seen.wf_completed.min(1000), || {
                format!("the durations answered {durations}")
            })?;
            check(!items(&versions).is_empty(), || {
                "the workflow has no version".into()
            })?;
            check(!seen.finished_lately || !items(&days).is_empty(), || {
                "the workflow's runs per day are empty".into()
            })?;
            check(full(&recent, seen.wf_runs, 10), || {
                format!(
                    "the workflow's page lists {} recent runs",
                    items(&recent).len()
                )
            })?;
            Ok(a + c + d + e + f + g)
        }
        Page::Projects => {
            let (list, sent) = b.api("/api/v1/projects?limit=100").await?;
            check(list["items"].is_array(), || {
                format!("the projects answered {list}")
            })?;
            Ok(sent)
        }
        Page::Handlers => {
            let ((handlers, a), (health, c)) = tokio::try_join!(
                b.api("/api/v1/handlers?limit=200"),
                b.api("/api/v1/components/health"),
            )?;
            check(handlers.is_array() && health.is_array(), || {
                "handlers or component health answered no list".into()
            })?;
            Ok(a + c)
        }
        Page::Notifications => {
            let (list, sent) = b.api("/api/v1/notifications?limit=100").await?;
            check(list["items"].is_array(), || {
                format!("the notifications answered {list}")
            })?;
            Ok(sent)
        }
        Page::Admin => {
            let (
                (users, a),
                (teams, c),
                (keys, d),
                (hooks, e),
                (audit, f),
                (verify, g),
                (configs, h),
            ) = tokio::try_join!(
                b.api("/api/v1/users?limit=100"),
                b.api("/api/v1/teams?limit=100"),
                b.api("/api/v1/apikeys?limit=100"),
                b.api("/api/v1/webhooks?limit=100"),
                b.api("/api/v1/audit?limit=50"),
                b.api("/api/v1/audit/verify"),
                b.api("/api/v1/configurations?limit=100"),
            )?;
            // The load's owner and the two readers at least; their sign-ins audited.
            check(
                items(&users).len() >= 3 && !items(&audit).is_empty(),
                || "the admin page lists too few users or audit entries".into(),
            )?;
            check(
                verify["first_broken"].is_null() && verify["head_mismatch"].is_null(),
                || format!("the audit chain does not verify: {verify}"),
            )?;
            for list in [&teams, &keys, &hooks, &configs] {
                check(list["items"].is_array(), || {
                    format!("the admin page got {list}")
                })?;
            }
            Ok(a + c + d + e + f + g + h)
        }
    }
}

/// The first load of the dashboard: the page, then what it links (its script and
/// style, at once), then who is signed in, then the unread count.
async fn shell(b: &Browser) -> StoreResult<Transfer> {
    let (html, mut sent) = b.get("/", "text/html").await?;
    let html = String::from_utf8_lossy(&html);
    let linked = linked(&html);
    check(linked.len() >= 2, || format!("the page links {linked:?}"))?;
    let mut assets = tokio::task::JoinSet::new();
    for path in linked {
        let b = b.clone();
        assets.spawn(async move { b.get(path, "*/*").await });
    }
    while let Some(asset) = assets.join_next().await {
        let (body, t) = asset.map_err(|e| fail(format!("asset: {e}")))??;
        check(!body.is_empty(), || "an asset of the page is empty".into())?;
        sent = sent + t;
    }
    let (who, t) = b.api("/api/v1/sessions/current").await?;
    check(who["role"] == b.who(), || format!("signed in as {who}"))?;
    let (_, u) = b.api(UNREAD).await?;
    Ok(sent + t + u)
}

/// The same-origin paths the page's `src` and `href` attributes name (its script and
/// style; the `#/...` links are the page's own views).
fn linked(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (at, _) in html.match_indices(attr) {
            let rest = &html[at + attr.len()..];
            let value = rest.split('"').next().unwrap_or("");
            if value.starts_with('/') && !value.starts_with("//") {
                out.push(value.to_string());
            }
        }
    }
    out
}

/// Measures every page for an admin and for a user who owns nothing, adding a row
/// (variant, samples, note) for each to `rows`.
pub(crate) async fn measure(
    target: &Target,
    workflows: &[WorkflowId],
    workflow: usize,
    n: u64,
    calls: u32,
    rows: &mut Vec<(String, Samples, String)>,
) -> StoreResult<()> {
    let server = InProcess::start(target.backend.clone()).await?;
    let result = measure_on(&server, target, workflows, workflow, n, calls, rows).await;
    server.stop().await;
    result
}

async fn measure_on(
    server: &InProcess,
    target: &Target,
    workflows: &[WorkflowId],
    workflow: usize,
    n: u64,
    calls: u32,
    rows: &mut Vec<(String, Samples, String)>,
) -> StoreResult<()> {
    let origin = server.base.trim_end_matches("/api/v1").to_string();
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| fail(format!("HTTP client: {e}")))?;
    // Both sign in first, so that the admin page lists both.
    let browsers = [
        Browser::sign_in(target, &client, &origin, Role::Admin).await?,
        Browser::sign_in(target, &client, &origin, Role::User).await?,
    ];
    for b in browsers {
        let mut seen = seen(n, b.admin, workflows, workflow);
        let first = shell(&b).await?;
        let s = repeat(calls, |_| {
            let b = &b;
            async move { shell(b).await.map(|_| ()) }
        })
        .await?;
        rows.push((
            format!("page over HTTP: first load ({})", b.who()),
            s,
            format!(
                "/, what it links, sessions/current, the unread count: {} requests, {:.1} KB",
                first.requests,
                first.bytes as f64 / 1024.0
            ),
        ));
        // The objects the pages open, as a reader reaches them: the workflow from the
        // workflows page, the run from the runs page (the newest loaded one with a
        // task, which the load gives every tenth run, or else the newest loaded one).
        let (list, _) = b.api("/api/v1/workflows?limit=50").await?;
        let name = format!("bench-wf-{workflow}");
        seen.workflow = items(&list)
            .iter()
            .find(|w| w["name"] == name.as_str())
            .and_then(|w| w["id"].as_str())
            .ok_or_else(|| fail(format!("the workflows page does not show {name}")))?
            .to_string();
        check(seen.workflow == workflows[workflow].to_string(), || {
            format!("{name} is listed with the ID {}", seen.workflow)
        })?;
        let (list, _) = b.api("/api/v1/runs?limit=50").await?;
        let loaded: Vec<(u64, &str)> = items(&list)
            .iter()
            .filter_map(|r| {
                let i = r["execution_id"].as_str()?.strip_prefix("bench-run-")?;
                Some((i.parse().ok()?, r["id"].as_str()?))
            })
            .collect();
        let (i, id) = loaded
            .iter()
            .find(|(i, _)| i % 10 == 0)
            .or(loaded.first())
            .ok_or_else(|| fail("the runs page shows no loaded run"))?;
        seen.run = id.to_string();
        seen.run_tasks = usize::from(i % 10 == 0);
        for page in Page::ALL {
            if page == Page::Admin && !b.admin {
                continue;
            }
            let (largest, requests) = (AtomicU64::new(0), AtomicU64::new(0));
            let s = repeat(calls, |_| {
                let (b, seen, largest, requests) = (&b, &seen, &largest, &requests);
                async move {
                    let t = open(b, page, seen).await?;
                    largest.fetch_max(t.bytes, Ordering::Relaxed);
                    requests.store(t.requests, Ordering::Relaxed);
                    Ok(())
                }
            })
            .await?;
            let (bytes, requests) = (largest.into_inner(), requests.into_inner());
            rows.push((
                format!("page over HTTP: {} ({})", page.name(), b.who()),
                s,
                format!(
                    "{requests} requests with the unread count, {:.1} KB ({:.1} KB with the first load)",
                    bytes as f64 / 1024.0,
                    (bytes + first.bytes) as f64 / 1024.0
                ),
            ));
        }
    }
    Ok(())
}

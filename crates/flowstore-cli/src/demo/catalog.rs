//! The fixed part of the demo data set: people and their team, projects, handler
//! types, components, workflows and configuration entries.

use serde_json::{json, Value};

use flowstore::ids::{TeamId, UserId, WorkflowId};
use flowstore::model::identity::{NewTeam, NewUser, Role, TeamRole};
use flowstore::model::ops::{ConfigType, SetConfiguration};
use flowstore::model::project::{NewProject, Project};
use flowstore::model::registry::{
    ComponentRef, ComponentStatus, HealthStatus, Heartbeat, NewComponent, NewHandler,
    NewSystemMetric,
};
use flowstore::model::workflow::{
    ExecutionStrategy, FailureStrategy, NewShare, NewWorkflow, SharePermission, Visibility,
    WorkflowStatus,
};
use flowstore::{StoreError, StoreResult, Tx};

/// The handler types every demo workflow runs on.
pub(super) const HANDLER_TYPES: [&str; 4] = ["shell", "docker", "http", "llm"];

/// What the workflow is for, which decides how its runs are driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Ci,
    Data,
    Agent,
    Release,
    /// The smoke check whose one-second deadline makes its runs time out.
    Smoke,
}

/// A demo workflow and the steps the run driver treats specially.
#[derive(Clone, Debug)]
pub(super) struct DemoWorkflow {
    pub id: WorkflowId,
    pub name: String,
    pub kind: Kind,
    /// The step that fails in runs meant to fail.
    pub fail_step: &'static str,
    /// The step whose first attempt fails (and is retried) in some completed runs; it
    /// has `max_retries` ≥ 1.
    pub retry_step: &'static str,
}

/// What [`seed`] created, for the other parts and the summary.
pub(super) struct Catalog {
    /// Admin, user and viewer, in that order.
    pub users: Vec<UserId>,
    pub projects: Vec<Project>,
    pub handlers: usize,
    pub components: usize,
    pub workflows: Vec<DemoWorkflow>,
    pub configurations: usize,
}

impl Catalog {
    pub fn admin(&self) -> UserId {
        self.users[0]
    }

    pub fn user(&self) -> UserId {
        self.users[1]
    }

    pub fn workflow(&self, kind: Kind) -> &DemoWorkflow {
        self.workflows
            .iter()
            .find(|w| w.kind == kind)
            .expect("the catalog has one workflow of each kind")
    }
}

/// Writes the fixed part of the data set.
pub(super) async fn seed(tx: &mut dyn Tx) -> StoreResult<Catalog> {
    let (users, team) = people(tx).await?;
    let projects = projects(tx, users[0]).await?;
    let handlers = handlers(tx).await?;
    let components = components(tx).await?;
    let workflows = workflows(tx, &users, team, &projects).await?;
    let configurations = configurations(tx).await?;
    Ok(Catalog {
        users,
        projects,
        handlers,
        components,
        workflows,
        configurations,
    })
}

async fn people(tx: &mut dyn Tx) -> StoreResult<(Vec<UserId>, TeamId)> {
    // No passwords: argon2 hashing is deliberately slow, and demo accounts that can
    // sign in with a published password would be a liability on a shared server.
    let mut users = Vec::new();
    for (email, name, role) in [
        ("ada.admin@demo.flowstore.dev", "Ada Admin", Role::Admin),
        ("uma.user@demo.flowstore.dev", "Uma User", Role::User),
        ("vic.viewer@demo.flowstore.dev", "Vic Viewer", Role::Viewer),
    ] {
        let u = tx
            .create_user(NewUser {
                email: email.into(),
                display_name: Some(name.into()),
                role: Some(role),
                ..Default::default()
            })
            .await?;
        users.push(u.id);
    }
    let team = tx
        .create_team(NewTeam {
            name: "Demo Platform Team".into(),
            description: Some("Owns CI, data and agent workflows of the demo".into()),
            created_by: Some(users[0]),
        })
        .await?;
    for (user, role) in users
        .iter()
        .zip([TeamRole::Owner, TeamRole::Member, TeamRole::Viewer])
    {
        tx.add_team_member(team.id, *user, role).await?;
    }
    Ok((users, team.id))
}

async fn projects(tx: &mut dyn Tx, owner: UserId) -> StoreResult<Vec<Project>> {
    let mut out = Vec::new();
    for (name, description, repo, branch) in [
        (
            super::DEMO_PROJECT,
            "The online shop's web front end",
            "acme/storefront",
            "main",
        ),
        (
            "demo-data-platform",
            "Nightly ingestion and reporting",
            "acme/data-platform",
            "main",
        ),
        (
            "demo-agent-lab",
            "AI agents that review and fix code",
            "acme/agent-lab",
            "develop",
        ),
    ] {
        out.push(
            tx.create_project(NewProject {
                name: name.into(),
                description: Some(description.into()),
                repository_url: Some(format!("https://github.com/{repo}")),
                repository_name: Some(repo.into()),
                default_branch: Some(branch.into()),
                settings: Some(json!({"auto_merge": false, "required_checks": ["ci"]})),
                owner_id: Some(owner),
            })
            .await?,
        );
    }
    Ok(out)
}

/// Registers the demo's handler types; one that already exists and is active is
/// reused (the demo must not fight a real installation's registry).
async fn handlers(tx: &mut dyn Tx) -> StoreResult<usize> {
    let mut registered = 0;
    for (kind, name, caps) in [
        ("shell", "Shell commands", json!(["exec", "env"])),
        ("docker", "Docker containers", json!(["image", "volumes"])),
        ("http", "HTTP calls", json!(["get", "post", "webhook"])),
        ("llm", "LLM agent", json!(["chat", "tools", "review"])),
    ] {
        match tx.get_handler(kind).await {
            Ok(h) if h.is_active => continue,
            Ok(_) => {
                return Err(StoreError::conflict(
                    "handler_type",
                    format!(
                        "handler type {kind:?} exists but is inactive; the demo needs it active"
                    ),
                ))
            }
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        tx.register_handler(NewHandler {
            handler_type: kind.into(),
            handler_name: name.into(),
            handler_class: Some(format!("flowstore.handlers.{kind}")),
            version: Some("1.4.0".into()),
            description: Some(format!("{name} (demo)")),
            capabilities: Some(caps),
            configuration: Some(json!({"concurrency": 4})),
            ..Default::default()
        })
        .await?;
        registered += 1;
    }
    Ok(registered)
}

async fn components(tx: &mut dyn Tx) -> StoreResult<usize> {
    let list: [(&str, &str, HealthStatus, &[&str]); 5] = [
        ("demo-api-gateway", "gateway", HealthStatus::Healthy, &[]),
        (
            "demo-scheduler",
            "scheduler",
            HealthStatus::Healthy,
            &["demo-api-gateway"],
        ),
        (
            "demo-worker-docker",
            "worker",
            HealthStatus::Healthy,
            &["demo-scheduler"],
        ),
        (
            "demo-worker-llm",
            "worker",
            HealthStatus::Degraded,
            &["demo-scheduler"],
        ),
        (
            "demo-metrics-exporter",
            "exporter",
            HealthStatus::Unhealthy,
            &[],
        ),
    ];
    for (name, kind, health, deps) in list {
        tx.register_component(NewComponent {
            name: name.into(),
            component_type: kind.into(),
            status: Some(ComponentStatus::Active),
            version: Some("2.3.1".into()),
            endpoints: Some(json!({"health": format!("http://{name}:8080/health")})),
            health_check_url: Some(format!("http://{name}:8080/health")),
            dependencies: deps.iter().map(|d| d.to_string()).collect(),
            ..Default::default()
        })
        .await?;
        let figures = match health {
            HealthStatus::Healthy => json!({"cpu_percent": 23.5, "queue_depth": 3}),
            HealthStatus::Degraded => json!({"cpu_percent": 91.0, "p99_latency_ms": 5400}),
            _ => json!({"cpu_percent": 0.0, "last_error": "connection refused"}),
        };
        tx.heartbeat_component(
            ComponentRef::Name(name.into()),
            Heartbeat {
                health_status: health,
                performance_metrics: Some(figures.clone()),
            },
        )
        .await?;
        // System metrics are stamped now by the store; they show the current load.
        for (metric, unit) in [("cpu_percent", "percent"), ("queue_depth", "tasks")] {
            if let Some(v) = figures.get(metric).and_then(Value::as_f64) {
                tx.record_system_metric(NewSystemMetric {
                    metric_name: metric.into(),
                    metric_value: v,
                    metric_unit: Some(unit.into()),
                    component: Some(name.into()),
                    labels: Some(json!({"demo": true})),
                })
                .await?;
            }
        }
    }
    Ok(list.len())
}

/// One step of a definition.
fn step(key: &str, handler: &str, deps: &[&str], retries: i32) -> Value {
    json!({
        "key": key,
        "name": key.replace('_', " "),
        "handler": handler,
        "depends_on": deps,
        "max_retries": retries,
        "timeout_seconds": 900,
        "parameters": {"command": format!("run-{key}")},
    })
}

async fn workflows(
    tx: &mut dyn Tx,
    users: &[UserId],
    team: TeamId,
    projects: &[Project],
) -> StoreResult<Vec<DemoWorkflow>> {
    struct Spec {
        kind: Kind,
        name: &'static str,
        description: &'static str,
        project: usize,
        steps: Vec<Value>,
        sequential: bool,
        fail_fast: bool,
        visibility: Visibility,
        timeout: Option<i32>,
        fail_step: &'static str,
        retry_step: &'static str,
        tags: &'static [&'static str],
    }
    let specs = vec![
        Spec {
            kind: Kind::Ci,
            name: "CI pipeline",
            description: "checkout, build, test and lint in parallel, deploy",
            project: 0,
            steps: vec![
                step("checkout", "shell", &[], 0),
                step("build", "docker", &["checkout"], 1),
                step("test", "docker", &["build"], 2),
                step("lint", "shell", &["build"], 0),
                step("deploy", "http", &["test", "lint"], 1),
            ],
            sequential: false,
            fail_fast: true,
            visibility: Visibility::Team,
            timeout: Some(3600),
            fail_step: "test",
            retry_step: "build",
            tags: &["ci", "web"],
        },
        Spec {
            kind: Kind::Data,
            name: "Nightly data pipeline",
            description: "extract, validate, transform and load, then report; one step at a time",
            project: 1,
            steps: vec![
                step("extract", "http", &[], 2),
                step("validate", "shell", &["extract"], 0),
                step("transform", "docker", &["validate"], 1),
                step("load", "docker", &["transform"], 0),
                step("report", "http", &["validate"], 0),
            ],
            sequential: true,
            fail_fast: false,
            visibility: Visibility::Private,
            timeout: Some(7200),
            fail_step: "transform",
            retry_step: "extract",
            tags: &["data", "nightly"],
        },
        Spec {
            kind: Kind::Agent,
            name: "AI code review agent",
            description: "an LLM reviews a pull request's diff and posts its findings",
            project: 2,
            steps: vec![
                step("fetch_diff", "http", &[], 1),
                step("analyze", "llm", &["fetch_diff"], 2),
                step("summarize", "llm", &["analyze"], 1),
                step("security_scan", "llm", &["analyze"], 0),
                step("post_review", "http", &["summarize", "security_scan"], 1),
            ],
            sequential: false,
            fail_fast: false,
            visibility: Visibility::Public,
            timeout: None,
            fail_step: "security_scan",
            retry_step: "analyze",
            tags: &["ai", "agent", "review"],
        },
        Spec {
            kind: Kind::Release,
            name: "Release train",
            description: "build, sign and SBOM in parallel, publish",
            project: 0,
            steps: vec![
                step("build_image", "docker", &[], 0),
                step("sign", "shell", &["build_image"], 0),
                step("sbom", "shell", &["build_image"], 0),
                step("publish", "http", &["sign", "sbom"], 2),
            ],
            sequential: false,
            fail_fast: true,
            visibility: Visibility::Team,
            timeout: Some(1800),
            fail_step: "sign",
            retry_step: "publish",
            tags: &["release"],
        },
        Spec {
            kind: Kind::Smoke,
            name: "Smoke check (1 s deadline)",
            description: "pings production; its one-second deadline demonstrates timed-out runs",
            project: 0,
            steps: vec![
                step("ping", "http", &[], 0),
                step("verify", "shell", &["ping"], 0),
            ],
            sequential: false,
            fail_fast: true,
            visibility: Visibility::Private,
            timeout: Some(1),
            fail_step: "verify",
            retry_step: "ping",
            tags: &["smoke"],
        },
    ];
    let mut out = Vec::new();
    for s in specs {
        let w = tx
            .create_workflow(NewWorkflow {
                name: s.name.into(),
                description: Some(s.description.into()),
                workflow_type: Some(format!("{:?}", s.kind).to_lowercase()),
                status: Some(WorkflowStatus::Active),
                priority: Some(if s.kind == Kind::Ci { 10 } else { 0 }),
                definition: Some(json!({ "steps": s.steps })),
                configuration: Some(json!({"notify": "#demo-alerts"})),
                environment_variables: Some(json!({"RUST_LOG": "info"})),
                tags: s.tags.iter().map(|t| t.to_string()).collect(),
                visibility: Some(s.visibility),
                execution_strategy: Some(if s.sequential {
                    ExecutionStrategy::Sequential
                } else {
                    ExecutionStrategy::Parallel
                }),
                failure_strategy: Some(if s.fail_fast {
                    FailureStrategy::FailFast
                } else {
                    FailureStrategy::Continue
                }),
                timeout_seconds: s.timeout,
                owner_id: Some(users[if s.kind == Kind::Agent { 1 } else { 0 }]),
                team_id: Some(team),
                project_id: Some(projects[s.project].id),
                ..Default::default()
            })
            .await?;
        out.push(DemoWorkflow {
            id: w.id,
            name: w.name,
            kind: s.kind,
            fail_step: s.fail_step,
            retry_step: s.retry_step,
        });
    }
    // Shares: the viewer may read the private data pipeline, and the team may run it.
    let data = out[1].id;
    tx.share_workflow(
        data,
        NewShare {
            user_id: Some(users[2]),
            permission: Some(SharePermission::Read),
            created_by: Some(users[0]),
            ..Default::default()
        },
    )
    .await?;
    tx.share_workflow(
        data,
        NewShare {
            team_id: Some(team),
            permission: Some(SharePermission::Execute),
            created_by: Some(users[0]),
            ..Default::default()
        },
    )
    .await?;
    Ok(out)
}

async fn configurations(tx: &mut dyn Tx) -> StoreResult<usize> {
    let entries = vec![
        SetConfiguration {
            config_type: Some(ConfigType::System),
            description: Some("Runs the scheduler starts at once".into()),
            ..SetConfiguration::plain("demo.scheduler.max_parallel_runs", json!(16))
        },
        SetConfiguration {
            config_type: Some(ConfigType::System),
            description: Some("Days of metrics kept before rollup-only".into()),
            ..SetConfiguration::plain("demo.retention.metrics_days", json!(30))
        },
        SetConfiguration {
            config_type: Some(ConfigType::User),
            description: Some("Dashboard theme".into()),
            ..SetConfiguration::plain("demo.ui.theme", json!({"mode": "dark"}))
        },
        SetConfiguration {
            config_type: Some(ConfigType::Integration),
            description: Some("Slack webhook for failure alerts (sealed at rest)".into()),
            ..SetConfiguration::sensitive(
                "demo.notifications.slack_webhook",
                json!("https://hooks.slack.com/services/T000/B000/demo-not-a-real-secret"),
            )
        },
    ];
    let n = entries.len();
    for e in entries {
        tx.set_configuration(e).await?;
    }
    Ok(n)
}

//! Conformance tests for the `tasks` area: tasks, dependencies and their cycles,
//! parents, filters, full-text search, progress, pull requests and the seed 003
//! summaries.

use std::collections::BTreeSet;
use std::time::Duration;

use flowstore::ids::{ProjectId, RunId, TaskId, WorkflowId};
use flowstore::model::engine::ClaimRequest;
use flowstore::model::project::NewProject;
use flowstore::model::pull_request::{NewPullRequest, PullRequestFilter, PullRequestStatus};
use flowstore::model::task::query::TaskFilter;
use flowstore::model::task::{NewTask, TaskPatch, TaskStatus};
use flowstore::{PageRequest, Store, StoreError, Tx};
use serde_json::{json, Value};

use crate::conformance::raw::{self, insert_one, uuid_lit};

conformance!(
    standalone_task_round_trip,
    the_workflows_of_many_tasks_in_one_read,
    bad_task_input_is_refused,
    dependencies_and_runnable_tasks,
    dependency_cycles_are_refused_and_nothing_written,
    dependencies_change_after_creation,
    parents_children_and_parent_cycles,
    terminal_status_is_final,
    filters_tags_requirements_and_search,
    keyset_pages_of_tasks,
    progress_counts_by_status,
    pull_request_lifecycle,
    pull_request_bad_input,
    summaries_from_views,
);

/// A workflow row, written with raw SQL so that these tests do not depend on the
/// workflows area.
async fn workflow(store: &Store) -> WorkflowId {
    let id = WorkflowId::new();
    let sql = format!(
        "INSERT INTO workflows (id, name) VALUES ({}, 'wf')",
        uuid_lit(store, id.0)
    );
    insert_one(store, &sql).await;
    id
}

async fn project(store: &Store, name: &str) -> ProjectId {
    let mut tx = store.begin().await.unwrap();
    let p = tx
        .create_project(NewProject {
            name: name.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    p.id
}

fn titled(title: &str) -> NewTask {
    NewTask {
        title: title.into(),
        ..Default::default()
    }
}

fn patch(v: Value) -> TaskPatch {
    serde_json::from_value(v).unwrap()
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> TaskId) -> BTreeSet<TaskId> {
    items.iter().map(id).collect()
}

async fn standalone_task_round_trip(store: Store) {
    let p = project(&store, "site").await;
    let mut tx = store.begin().await.unwrap();
    let t = tx
        .create_task(NewTask {
            project_id: Some(p),
            description: Some("build the login page".into()),
            task_type: Some("feature".into()),
            priority: Some(5),
            requirements: Some(json!({"language": "rust", "skills": ["sql", "http"]})),
            context: Some(json!({"ticket": 12})),
            tags: Some(vec![" backend ".into(), "auth".into()]),
            assigned_agent: Some("coder".into()),
            ..titled(" Login page ")
        })
        .await
        .unwrap();
    assert_eq!(t.title, "Login page");
    assert_eq!(t.tags, vec!["backend".to_string(), "auth".to_string()]);
    assert_eq!(t.status, TaskStatus::Pending);
    assert_eq!(
        tx.get_task(t.id).await.unwrap(),
        t,
        "read back equals written"
    );

    let u = tx
        .update_task(
            t.id,
            patch(json!({"description": null, "priority": 9, "tags": ["x"], "status": "ready"})),
        )
        .await
        .unwrap();
    assert_eq!(u.description, None);
    assert_eq!((u.priority, u.status), (9, TaskStatus::Ready));
    assert_eq!(u.requirements, t.requirements);
    assert_eq!(tx.get_task(t.id).await.unwrap(), u);
    tx.delete_task(t.id).await.unwrap();
    assert_err!(tx.get_task(t.id).await, NotFound);
    assert_err!(tx.delete_task(t.id).await, NotFound);
    assert_err!(tx.update_task(t.id, TaskPatch::default()).await, NotFound);
    tx.commit().await.unwrap();
}

/// `task_workflows`: each existing task once with its workflow (or none), an
/// unknown ID left out, a repeated one answered once, an empty list answered empty.
async fn the_workflows_of_many_tasks_in_one_read(store: Store) {
    let wf = workflow(&store).await;
    let mut tx = store.begin().await.unwrap();
    let of_wf = tx
        .create_task(NewTask {
            workflow_id: Some(wf),
            ..titled("of a workflow")
        })
        .await
        .unwrap();
    let alone = tx.create_task(titled("alone")).await.unwrap();
    let unknown = TaskId::new();
    let mut got = tx
        .task_workflows(&[alone.id, unknown, of_wf.id, alone.id])
        .await
        .unwrap();
    got.sort_by_key(|(t, _)| *t);
    let mut want = vec![(of_wf.id, Some(wf)), (alone.id, None)];
    want.sort_by_key(|(t, _)| *t);
    assert_eq!(got, want);
    assert_eq!(tx.task_workflows(&[]).await.unwrap(), vec![]);
    tx.rollback().await.unwrap();
}

async fn bad_task_input_is_refused(store: Store) {
    let mut tx = store.begin().await.unwrap();
    assert_err!(tx.create_task(titled("  ")).await, Invalid, "title");
    assert_err!(
        tx.create_task(titled(&"x".repeat(501))).await,
        Invalid,
        "title"
    );
    assert!(tx.create_task(titled(&"x".repeat(500))).await.is_ok());
    let bad = |f: fn(&mut NewTask)| {
        let mut n = titled("t");
        f(&mut n);
        n
    };
    type Change = fn(&mut NewTask);
    let changes: [(Change, &str); 10] = [
        (|n| n.requirements = Some(json!(["gpu"])), "requirements"),
        (|n| n.context = Some(json!("text")), "context"),
        (|n| n.tags = Some(vec!["a".into(), " a".into()]), "tags"),
        (|n| n.project_id = Some(ProjectId::new()), "project_id"),
        (|n| n.workflow_id = Some(WorkflowId::new()), "workflow_id"),
        (|n| n.parent_task_id = Some(TaskId::new()), "parent_task_id"),
        (|n| n.timeout_seconds = Some(-5), "timeout_seconds"),
        (|n| n.timeout_seconds = Some(0), "timeout_seconds"),
        (|n| n.max_retries = Some(101), "max_retries"),
        (|n| n.depends_on = vec![TaskId::new()], "depends_on"),
    ];
    for (change, field) in changes {
        assert_err!(tx.create_task(bad(change)).await, Invalid, field);
    }
    // An unknown status or field cannot even be expressed.
    assert!(serde_json::from_value::<TaskPatch>(json!({"status": "done"})).is_err());
    assert!(serde_json::from_value::<NewTask>(json!({"title": "t", "bogus": 1})).is_err());
    assert!("done".parse::<TaskStatus>().is_err());
    assert!(serde_json::from_value::<PullRequestStatus>(json!("approved")).is_err());
    // Nothing of the refused inputs was written: only the 500-character task exists.
    let page = tx
        .list_tasks(&TaskFilter::default(), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    tx.commit().await.unwrap();
}

async fn dependencies_and_runnable_tasks(store: Store) {
    let wf = workflow(&store).await;
    let mut tx = store.begin().await.unwrap();
    let step = |title: &str, order: i32, deps: Vec<TaskId>| NewTask {
        workflow_id: Some(wf),
        handler_type: Some("shell".into()),
        command: Some(format!("echo {title}")),
        environment: Some(json!({"CI": "1"})),
        execution_order: Some(order),
        timeout_seconds: Some(60),
        max_retries: Some(2),
        depends_on: deps,
        ..titled(title)
    };
    let build = tx.create_task(step("build", 1, vec![])).await.unwrap();
    let lint = tx.create_task(step("lint", 2, vec![])).await.unwrap();
    let test = tx
        .create_task(step("test", 3, vec![build.id, lint.id]))
        .await
        .unwrap();
    let deploy = tx
        .create_task(step("deploy", 4, vec![test.id]))
        .await
        .unwrap();
    assert_eq!(deploy.status, TaskStatus::Pending);
    let mut deps = tx.task_dependencies(test.id).await.unwrap();
    deps.sort();
    let mut want = vec![build.id, lint.id];
    want.sort();
    assert_eq!(deps, want);

    let runnable =
        |v: Vec<flowstore::model::task::Task>| v.iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(
        runnable(tx.get_runnable_tasks(wf).await.unwrap()),
        vec![build.id, lint.id]
    );
    tx.update_task(build.id, patch(json!({"status": "completed"})))
        .await
        .unwrap();
    assert_eq!(
        runnable(tx.get_runnable_tasks(wf).await.unwrap()),
        vec![lint.id]
    );
    tx.update_task(lint.id, patch(json!({"status": "completed"})))
        .await
        .unwrap();
    assert_eq!(
        runnable(tx.get_runnable_tasks(wf).await.unwrap()),
        vec![test.id]
    );
    tx.update_task(test.id, patch(json!({"status": "failed"})))
        .await
        .unwrap();
    assert!(
        tx.get_runnable_tasks(wf).await.unwrap().is_empty(),
        "a failed dependency blocks"
    );

    tx.remove_task_dependency(deploy.id, test.id).await.unwrap();
    assert_err!(
        tx.remove_task_dependency(deploy.id, test.id).await,
        NotFound
    );
    assert_eq!(
        runnable(tx.get_runnable_tasks(wf).await.unwrap()),
        vec![deploy.id]
    );
    assert!(tx
        .get_runnable_tasks(WorkflowId::new())
        .await
        .unwrap()
        .is_empty());
    tx.commit().await.unwrap();
}

async fn dependency_cycles_are_refused_and_nothing_written(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let a = tx.create_task(titled("a")).await.unwrap();
    let b = tx
        .create_task(NewTask {
            depends_on: vec![a.id],
            ..titled("b")
        })
        .await
        .unwrap();
    let c = tx
        .create_task(NewTask {
            depends_on: vec![b.id],
            ..titled("c")
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let err = tx.add_task_dependency(a.id, c.id).await;
    match &err {
        Err(StoreError::Invalid { field, reason }) => {
            assert_eq!(field, "depends_on");
            for t in [&a, &b, &c] {
                assert!(
                    reason.contains(&t.id.to_string()),
                    "the path names {}: {reason}",
                    t.title
                );
            }
        }
        other => panic!("expected a refused cycle, got {other:?}"),
    }
    assert_err!(
        tx.add_task_dependency(a.id, a.id).await,
        Invalid,
        "depends_on"
    );
    assert_err!(
        tx.add_task_dependency(a.id, TaskId::new()).await,
        Invalid,
        "depends_on"
    );
    assert_err!(tx.add_task_dependency(TaskId::new(), a.id).await, NotFound);
    assert!(
        tx.task_dependencies(a.id).await.unwrap().is_empty(),
        "nothing was written"
    );
    // A diamond is not a cycle; adding an existing edge changes nothing.
    tx.add_task_dependency(c.id, a.id).await.unwrap();
    tx.add_task_dependency(c.id, a.id).await.unwrap();
    assert_eq!(tx.task_dependencies(c.id).await.unwrap().len(), 2);
    tx.commit().await.unwrap();
}

/// Dependencies added and removed after creation: a ready task that gains an
/// unfinished dependency goes back to pending (and is not claimed), a completed
/// dependency leaves it ready; a step of a run, a running task and a finished one
/// refuse the change with a conflict naming why, before anything is written.
async fn dependencies_change_after_creation(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let dep = tx.create_task(titled("dep")).await.unwrap();
    let done = tx.create_task(titled("done")).await.unwrap();
    tx.update_task(done.id, patch(json!({"status": "completed"})))
        .await
        .unwrap();
    let ready = |title: &str| NewTask {
        handler_type: Some("deps-shell".into()),
        ..titled(title)
    };
    let waiting = tx.create_task(ready("waiting")).await.unwrap();
    tx.update_task(waiting.id, patch(json!({"status": "ready"})))
        .await
        .unwrap();
    let free = tx.create_task(ready("free")).await.unwrap();
    tx.update_task(free.id, patch(json!({"status": "ready"})))
        .await
        .unwrap();

    // A completed dependency keeps the task ready; an unfinished one sends it back.
    let t = tx.add_task_dependency(free.id, done.id).await.unwrap();
    assert_eq!(t.status, TaskStatus::Ready);
    let t = tx.add_task_dependency(waiting.id, dep.id).await.unwrap();
    assert_eq!(t.status, TaskStatus::Pending);
    assert_eq!(
        tx.get_task(waiting.id).await.unwrap().status,
        TaskStatus::Pending
    );
    assert_eq!(
        tx.task_dependencies(waiting.id).await.unwrap(),
        vec![dep.id]
    );
    tx.commit().await.unwrap();

    // Only the task still ready is claimed.
    let claimed = store
        .backend()
        .claim_now(&ClaimRequest {
            worker_id: "w".into(),
            handler_types: vec!["deps-shell".into()],
            limit: 10,
            lease: Duration::from_secs(30),
            executor: None,
        })
        .await
        .unwrap();
    let claimed: Vec<TaskId> = claimed.iter().map(|c| c.task_id).collect();
    assert_eq!(claimed, vec![free.id]);

    let r = raw::run(&store).await;
    let mut tx = store.begin().await.unwrap();
    // A running task may lose a dependency but not gain one.
    assert_err!(
        tx.add_task_dependency(free.id, dep.id).await,
        Conflict,
        "status"
    );
    tx.remove_task_dependency(free.id, done.id).await.unwrap();
    // A finished task's dependencies are its record.
    assert_err!(
        tx.add_task_dependency(done.id, dep.id).await,
        Conflict,
        "status"
    );
    tx.update_task(waiting.id, patch(json!({"status": "cancelled"})))
        .await
        .unwrap();
    assert_err!(
        tx.remove_task_dependency(waiting.id, dep.id).await,
        Conflict,
        "status"
    );
    // A step of a run keeps the dependencies its definition gave it.
    let step = tx
        .create_task(NewTask {
            run_id: Some(r),
            depends_on: vec![dep.id],
            ..titled("step")
        })
        .await
        .unwrap();
    assert_err!(
        tx.add_task_dependency(step.id, done.id).await,
        Conflict,
        "run_id"
    );
    assert_err!(
        tx.remove_task_dependency(step.id, dep.id).await,
        Conflict,
        "run_id"
    );
    assert_err!(
        tx.remove_task_dependency(TaskId::new(), dep.id).await,
        NotFound
    );
    assert_eq!(tx.task_dependencies(step.id).await.unwrap(), vec![dep.id]);
    assert_eq!(tx.task_dependencies(free.id).await.unwrap(), vec![]);
    assert_eq!(tx.task_dependencies(done.id).await.unwrap(), vec![]);
    tx.commit().await.unwrap();
}

async fn parents_children_and_parent_cycles(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let a = tx.create_task(titled("epic")).await.unwrap();
    let b = tx
        .create_task(NewTask {
            parent_task_id: Some(a.id),
            ..titled("story")
        })
        .await
        .unwrap();
    let c = tx
        .create_task(NewTask {
            parent_task_id: Some(b.id),
            ..titled("subtask")
        })
        .await
        .unwrap();
    let kids = tx.list_task_children(a.id).await.unwrap();
    assert_eq!(kids.iter().map(|t| t.id).collect::<Vec<_>>(), vec![b.id]);
    assert_err!(tx.list_task_children(TaskId::new()).await, NotFound);
    assert_err!(
        tx.update_task(a.id, patch(json!({"parent_task_id": c.id})))
            .await,
        Invalid,
        "parent_task_id"
    );
    assert_err!(
        tx.update_task(a.id, patch(json!({"parent_task_id": a.id})))
            .await,
        Invalid,
        "parent_task_id"
    );
    assert_err!(
        tx.update_task(a.id, patch(json!({"parent_task_id": TaskId::new()})))
            .await,
        Invalid,
        "parent_task_id"
    );
    assert_eq!(tx.get_task(a.id).await.unwrap().parent_task_id, None);
    // Moving c under a is fine; clearing a parent is too.
    tx.update_task(c.id, patch(json!({"parent_task_id": a.id})))
        .await
        .unwrap();
    assert_eq!(tx.list_task_children(a.id).await.unwrap().len(), 2);
    tx.update_task(c.id, patch(json!({"parent_task_id": null})))
        .await
        .unwrap();
    assert!(tx.list_task_children(b.id).await.unwrap().is_empty());
    tx.commit().await.unwrap();
}

async fn terminal_status_is_final(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let t = tx.create_task(titled("t")).await.unwrap();
    assert_err!(
        tx.update_task(t.id, patch(json!({"status": "running"})))
            .await,
        Invalid,
        "status"
    );
    let done = tx
        .update_task(t.id, patch(json!({"status": "cancelled"})))
        .await
        .unwrap();
    assert!(done.completed_at.is_some());
    assert!(TaskStatus::Cancelled.is_terminal() && !TaskStatus::Ready.is_terminal());
    assert_err!(
        tx.update_task(t.id, patch(json!({"status": "pending"})))
            .await,
        Conflict,
        "status"
    );
    assert_eq!(
        tx.get_task(t.id).await.unwrap().status,
        TaskStatus::Cancelled
    );
    tx.commit().await.unwrap();
}

async fn filters_tags_requirements_and_search(store: Store) {
    let p = project(&store, "corpus").await;
    let mut tx = store.begin().await.unwrap();
    let mk = |title: &str, desc: &str, tags: &[&str], req: Value| NewTask {
        project_id: Some(p),
        description: Some(desc.into()),
        tags: Some(tags.iter().map(|s| s.to_string()).collect()),
        requirements: Some(req),
        ..titled(title)
    };
    let t1 = tx
        .create_task(mk(
            "Deploy the api server",
            "Roll out the new release to production",
            &["backend", "ops"],
            json!({"language": "rust", "gpu": false, "memory": 4, "skills": ["docker", "sql"]}),
        ))
        .await
        .unwrap();
    let t2 = tx
        .create_task(mk(
            "Write deployment docs",
            "Explain how deploying works",
            &["docs"],
            json!({"language": "english", "gpu": false, "skills": ["writing"]}),
        ))
        .await
        .unwrap();
    let t3 = tx
        .create_task(mk(
            "Train the ranking model",
            "Needs a large server with graphics cards",
            &["ml", "backend"],
            json!({"language": "python", "gpu": true, "memory": 64.5, "skills": ["docker"]}),
        ))
        .await
        .unwrap();
    let t4 = tx
        .create_task(mk(
            "Unrelated",
            "nothing here",
            &[],
            json!({"gpu": 1, "memory": "4"}),
        ))
        .await
        .unwrap();
    // No tags and no requirements: in no tag or requirements index, yet found by
    // every filter that does not ask for one.
    let t5 = tx
        .create_task(mk("Bare", "nothing asked", &[], json!({})))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin_read().await.unwrap();
    let f = |tag: Option<&str>, req: Option<Value>| TaskFilter {
        project_id: Some(p),
        tag: tag.map(str::to_string),
        requirements: req.and_then(|v| v.as_object().cloned()),
        ..Default::default()
    };
    let page = PageRequest::first(100);
    let set = |v: &[TaskId]| v.iter().copied().collect::<BTreeSet<_>>();
    assert_eq!(
        list(&mut tx, f(Some("backend"), None)).await,
        set(&[t1.id, t3.id])
    );
    assert_eq!(list(&mut tx, f(Some("nope"), None)).await, set(&[]));
    assert_eq!(
        list(&mut tx, f(None, Some(json!({"gpu": true})))).await,
        set(&[t3.id])
    );
    assert_eq!(
        list(&mut tx, f(None, Some(json!({"gpu": false})))).await,
        set(&[t1.id, t2.id])
    );
    assert_eq!(
        list(&mut tx, f(None, Some(json!({"memory": 4})))).await,
        set(&[t1.id])
    );
    assert_eq!(
        list(&mut tx, f(None, Some(json!({"memory": 64.5})))).await,
        set(&[t3.id])
    );
    assert_eq!(
        list(&mut tx, f(None, Some(json!({"language": "rust"})))).await,
        set(&[t1.id])
    );
    assert_eq!(
        list(&mut tx, f(None, Some(json!({"skills": ["docker"]})))).await,
        set(&[t1.id, t3.id])
    );
    assert_eq!(
        list(&mut tx, f(None, Some(json!({"skills": ["docker", "sql"]})))).await,
        set(&[t1.id])
    );
    assert_eq!(
        list(&mut tx, f(None, Some(json!({"skills": "docker"})))).await,
        set(&[])
    );
    assert_eq!(
        list(&mut tx, f(None, Some(json!({"skills": []})))).await,
        set(&[t1.id, t2.id, t3.id])
    );
    assert_eq!(
        list(
            &mut tx,
            f(
                Some("backend"),
                Some(json!({"skills": ["docker"], "gpu": false}))
            )
        )
        .await,
        set(&[t1.id])
    );
    assert_eq!(
        list(&mut tx, f(None, Some(json!({})))).await,
        set(&[t1.id, t2.id, t3.id, t4.id, t5.id])
    );
    assert_eq!(
        list(&mut tx, f(None, None)).await,
        set(&[t1.id, t2.id, t3.id, t4.id, t5.id])
    );

    for bad in [
        json!({"a": {"b": 1}}),
        json!({"a": [[1]]}),
        json!({"a": null}),
    ] {
        assert_err!(
            tx.list_tasks(&f(None, Some(bad)), &page).await,
            Invalid,
            "requirements"
        );
    }
    assert_err!(
        tx.list_tasks(&f(Some(" "), None), &page).await,
        Invalid,
        "tag"
    );

    let all = TaskFilter::default();
    assert_eq!(
        search(&mut tx, "deploying", &all).await,
        set(&[t1.id, t2.id])
    );
    assert_eq!(search(&mut tx, "server", &all).await, set(&[t1.id, t3.id]));
    assert_eq!(
        search(&mut tx, "Server, production!", &all).await,
        set(&[t1.id])
    );
    assert_eq!(search(&mut tx, "graphics cards", &all).await, set(&[t3.id]));
    assert_eq!(search(&mut tx, "quantum", &all).await, set(&[]));
    assert_eq!(
        search(&mut tx, "server", &f(Some("ml"), None)).await,
        set(&[t3.id])
    );
    assert_eq!(search(&mut tx, "\"release\"", &all).await, set(&[t1.id]));
    assert_eq!(
        search(&mut tx, "release NEAR", &all).await,
        set(&[]),
        "operators are plain words"
    );
    assert_err!(tx.search_tasks("  ", &all, 10).await, Invalid, "query");
    assert_err!(tx.search_tasks("\"\"", &all, 10).await, Invalid, "query");
    assert_err!(tx.search_tasks("server", &all, 0).await, Invalid, "limit");
    drop(tx);

    // The index follows edits.
    let mut tx = store.begin().await.unwrap();
    tx.update_task(t4.id, patch(json!({"title": "Deploy the cache"})))
        .await
        .unwrap();
    assert_eq!(
        search(&mut tx, "deploy", &all).await,
        set(&[t1.id, t2.id, t4.id])
    );
    // A task given tags and requirements is found by them from then on.
    tx.update_task(
        t5.id,
        patch(json!({"tags": ["ml"], "requirements": {"gpu": true}})),
    )
    .await
    .unwrap();
    assert_eq!(
        list(&mut tx, f(Some("ml"), None)).await,
        set(&[t3.id, t5.id])
    );
    assert_eq!(
        list(&mut tx, f(None, Some(json!({"gpu": true})))).await,
        set(&[t3.id, t5.id])
    );
    tx.delete_task(t1.id).await.unwrap();
    assert_eq!(search(&mut tx, "deploy", &all).await, set(&[t2.id, t4.id]));
    tx.commit().await.unwrap();
}

async fn keyset_pages_of_tasks(store: Store) {
    let p = project(&store, "pages").await;
    let mut tx = store.begin().await.unwrap();
    let mut made = Vec::new();
    for i in 0..7 {
        let t = tx
            .create_task(NewTask {
                project_id: Some(p),
                assigned_agent: Some(if i % 2 == 0 { "even" } else { "odd" }.into()),
                ..titled(&format!("task {i}"))
            })
            .await
            .unwrap();
        made.push(t.id);
    }
    tx.create_task(titled("elsewhere")).await.unwrap();
    let filter = TaskFilter {
        project_id: Some(p),
        ..Default::default()
    };
    let seen: Vec<_> = all_pages!(3, |page| tx.list_tasks(&filter, &page))
        .iter()
        .map(|t| t.id)
        .collect();
    made.reverse();
    assert_eq!(seen, made, "newest first, each once");
    let odd = TaskFilter {
        assigned_agent: Some("odd".into()),
        ..filter.clone()
    };
    assert_eq!(
        tx.list_tasks(&odd, &PageRequest::first(50))
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    let ready = TaskFilter {
        status: Some(TaskStatus::Ready),
        ..filter
    };
    assert!(tx
        .list_tasks(&ready, &PageRequest::first(50))
        .await
        .unwrap()
        .items
        .is_empty());
    assert_err!(
        tx.list_tasks(&TaskFilter::default(), &PageRequest::after("garbage", 3))
            .await,
        Invalid,
        "cursor"
    );
    tx.commit().await.unwrap();
}

async fn progress_counts_by_status(store: Store) {
    let wf = workflow(&store).await;
    let r = raw::run(&store).await;
    let mut tx = store.begin().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..4 {
        let t = tx
            .create_task(NewTask {
                workflow_id: Some(wf),
                run_id: Some(r),
                step_key: Some(format!("s{i}")),
                ..titled(&format!("step {i}"))
            })
            .await
            .unwrap();
        tasks.push(t.id);
    }
    tx.update_task(tasks[0], patch(json!({"status": "completed"})))
        .await
        .unwrap();
    tx.update_task(tasks[1], patch(json!({"status": "failed"})))
        .await
        .unwrap();
    tx.update_task(tasks[2], patch(json!({"status": "ready"})))
        .await
        .unwrap();
    let p = tx.workflow_progress(wf).await.unwrap();
    assert_eq!(
        (p.total, p.completed, p.failed, p.ready, p.pending),
        (4, 1, 1, 1, 1)
    );
    assert!((p.percent_complete - 25.0).abs() < 1e-9);
    assert_eq!(tx.run_progress(r).await.unwrap(), p);
    assert_err!(tx.workflow_progress(WorkflowId::new()).await, NotFound);
    assert_err!(tx.run_progress(RunId::new()).await, NotFound);
    tx.commit().await.unwrap();

    // A duplicate step key within a run is a conflict (in a transaction of its own,
    // which PostgreSQL aborts).
    let mut tx = store.begin().await.unwrap();
    assert_err!(
        tx.create_task(NewTask {
            run_id: Some(r),
            step_key: Some("s0".into()),
            ..titled("dup")
        })
        .await,
        Conflict,
        "run_id, step_key"
    );
    drop(tx);
}

async fn list(tx: &mut Box<dyn Tx>, filter: TaskFilter) -> BTreeSet<TaskId> {
    let got = tx
        .list_tasks(&filter, &PageRequest::first(100))
        .await
        .unwrap();
    ids(&got.items, |t| t.id)
}

async fn search(tx: &mut Box<dyn Tx>, q: &str, filter: &TaskFilter) -> BTreeSet<TaskId> {
    ids(&tx.search_tasks(q, filter, 100).await.unwrap(), |t| t.id)
}

fn pr(project: ProjectId, number: i32) -> NewPullRequest {
    NewPullRequest {
        project_id: project,
        pr_number: Some(number),
        repository_url: "https://git.example.com/site".into(),
        branch_name: format!("feature/{number}"),
        title: format!("Change {number}"),
        ..Default::default()
    }
}

async fn pull_request_lifecycle(store: Store) {
    let p = project(&store, "prs").await;
    let mut tx = store.begin().await.unwrap();
    let task = tx
        .create_task(NewTask {
            project_id: Some(p),
            ..titled("t")
        })
        .await
        .unwrap();
    let a = tx
        .create_pull_request(NewPullRequest {
            task_id: Some(task.id),
            ..pr(p, 1)
        })
        .await
        .unwrap();
    assert_eq!(a.status, PullRequestStatus::Draft);
    assert_eq!(tx.get_pull_request(a.id).await.unwrap(), a);
    assert_err!(
        tx.update_pull_request_status(a.id, PullRequestStatus::Merged)
            .await,
        Conflict,
        "status"
    );
    let o = tx
        .update_pull_request_status(a.id, PullRequestStatus::Open)
        .await
        .unwrap();
    assert_eq!(o.status, PullRequestStatus::Open);
    let r = tx
        .update_pull_request_status(a.id, PullRequestStatus::Review)
        .await
        .unwrap();
    assert_eq!(r.merged_at, None);
    let m = tx
        .update_pull_request_status(a.id, PullRequestStatus::Merged)
        .await
        .unwrap();
    assert!(m.merged_at.is_some() && m.closed_at.is_none());
    assert_err!(
        tx.update_pull_request_status(a.id, PullRequestStatus::Open)
            .await,
        Conflict,
        "status"
    );
    assert_eq!(tx.get_pull_request(a.id).await.unwrap(), m);

    let b = tx.create_pull_request(pr(p, 2)).await.unwrap();
    let c = tx
        .update_pull_request_status(b.id, PullRequestStatus::Closed)
        .await
        .unwrap();
    assert!(c.closed_at.is_some() && c.merged_at.is_none());
    assert_err!(
        tx.update_pull_request_status(b.id, PullRequestStatus::Closed)
            .await,
        Conflict,
        "status"
    );

    let results = json!({"status": "passed", "checks": [{"name": "ci", "ok": true}]});
    let v = tx
        .set_pull_request_validation(a.id, results.clone())
        .await
        .unwrap();
    assert_eq!(v.validation_results, results);
    assert_err!(
        tx.set_pull_request_validation(a.id, json!([1])).await,
        Invalid,
        "validation_results"
    );

    let mine = PullRequestFilter {
        project_id: Some(p),
        ..Default::default()
    };
    let all = tx
        .list_pull_requests(&mine, &PageRequest::first(1))
        .await
        .unwrap();
    assert_eq!(all.items[0].id, b.id, "newest first");
    let next = tx
        .list_pull_requests(&mine, &PageRequest::after(all.next_cursor.unwrap(), 1))
        .await
        .unwrap();
    assert_eq!(next.items[0].id, a.id);
    assert!(next.next_cursor.is_none());
    let merged = PullRequestFilter {
        status: Some(PullRequestStatus::Merged),
        ..Default::default()
    };
    let by_status = tx
        .list_pull_requests(&merged, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(
        by_status.items.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![a.id]
    );
    let by_task = PullRequestFilter {
        task_id: Some(task.id),
        ..Default::default()
    };
    assert_eq!(
        tx.list_pull_requests(&by_task, &PageRequest::first(10))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_err!(
        tx.get_pull_request(flowstore::ids::PullRequestId::new())
            .await,
        NotFound
    );
    tx.commit().await.unwrap();

    // A duplicate aborts the transaction on PostgreSQL, so it gets one of its own.
    let mut tx = store.begin().await.unwrap();
    assert_err!(
        tx.create_pull_request(pr(p, 1)).await,
        Conflict,
        "repository_url, pr_number"
    );
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    let other_repo = NewPullRequest {
        repository_url: "https://git.example.com/api".into(),
        ..pr(p, 1)
    };
    tx.create_pull_request(other_repo).await.unwrap();
    tx.commit().await.unwrap();
}

async fn pull_request_bad_input(store: Store) {
    let p = project(&store, "bad-prs").await;
    let mut tx = store.begin().await.unwrap();
    assert_err!(
        tx.create_pull_request(pr(ProjectId::new(), 1)).await,
        Invalid,
        "project_id"
    );
    assert_err!(
        tx.create_pull_request(NewPullRequest {
            task_id: Some(TaskId::new()),
            ..pr(p, 1)
        })
        .await,
        Invalid,
        "task_id"
    );
    assert_err!(tx.create_pull_request(pr(p, 0)).await, Invalid, "pr_number");
    assert_err!(
        tx.create_pull_request(pr(p, -3)).await,
        Invalid,
        "pr_number"
    );
    for (bad, field) in [
        (
            NewPullRequest {
                repository_url: "ftp://x".into(),
                ..pr(p, 1)
            },
            "repository_url",
        ),
        (
            NewPullRequest {
                branch_name: " ".into(),
                ..pr(p, 1)
            },
            "branch_name",
        ),
        (
            NewPullRequest {
                title: "x".repeat(501),
                ..pr(p, 1)
            },
            "title",
        ),
        (
            NewPullRequest {
                status: Some(PullRequestStatus::Merged),
                ..pr(p, 1)
            },
            "status",
        ),
        (
            NewPullRequest {
                validation_results: Some(json!("passed")),
                ..pr(p, 1)
            },
            "validation_results",
        ),
    ] {
        assert_err!(tx.create_pull_request(bad).await, Invalid, field);
    }
    let page = tx
        .list_pull_requests(&PullRequestFilter::default(), &PageRequest::first(10))
        .await
        .unwrap();
    assert!(page.items.is_empty(), "nothing was written");
    tx.commit().await.unwrap();
}

async fn summaries_from_views(store: Store) {
    let p = project(&store, "views").await;
    let other = project(&store, "other").await;
    let mut tx = store.begin().await.unwrap();
    let open = tx
        .create_task(NewTask {
            project_id: Some(p),
            priority: Some(3),
            assigned_agent: Some("coder".into()),
            ..titled("open")
        })
        .await
        .unwrap();
    let done = tx
        .create_task(NewTask {
            project_id: Some(p),
            ..titled("done")
        })
        .await
        .unwrap();
    tx.update_task(done.id, patch(json!({"status": "completed"})))
        .await
        .unwrap();
    let elsewhere = tx
        .create_task(NewTask {
            project_id: Some(other),
            ..titled("x")
        })
        .await
        .unwrap();

    let active = tx
        .active_tasks_summary(Some(p), &None, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(active.items.len(), 1);
    let row = &active.items[0];
    assert_eq!((row.id, row.priority, row.execution_count), (open.id, 3, 0));
    assert_eq!(row.project_name.as_deref(), Some("views"));
    assert_eq!(row.assigned_agent.as_deref(), Some("coder"));
    assert_eq!(row.created_at, open.created_at);
    let everywhere = tx
        .active_tasks_summary(None, &None, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(
        ids(&everywhere.items, |t| t.id),
        [open.id, elsewhere.id].into_iter().collect()
    );

    let a = tx
        .create_pull_request(NewPullRequest {
            task_id: Some(open.id),
            validation_results: Some(json!({"status": "passed", "checks": []})),
            ..pr(p, 7)
        })
        .await
        .unwrap();
    let b = tx.create_pull_request(pr(p, 8)).await.unwrap();
    tx.create_pull_request(pr(other, 9)).await.unwrap();
    let rows = tx
        .pr_validation_status(Some(p), &None, &PageRequest::first(10))
        .await
        .unwrap()
        .items;
    assert_eq!(
        rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![b.id, a.id]
    );
    assert_eq!(rows[1].validation_status.as_deref(), Some("passed"));
    assert_eq!(rows[1].task_id, Some(open.id));
    assert_eq!(rows[0].validation_status, None);
    assert_eq!(rows[0].pr_number, Some(8));
    tx.commit().await.unwrap();
}

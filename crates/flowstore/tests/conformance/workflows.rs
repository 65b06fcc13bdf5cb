//! Conformance tests for workflows: definitions as DAGs, immutable versions,
//! duplication, shares and visibility.

use flowstore::ids::{TeamId, UserId, WorkflowId};
use flowstore::model::identity::{NewTeam, TeamRole};
use flowstore::model::workflow::{
    NewShare, NewWorkflow, SharePermission, Visibility, WorkflowFilter, WorkflowPatch,
    WorkflowStatus,
};
use flowstore::{PageRequest, Store, Tx};
use flowstore_testkit::fixtures::user_id;
use serde_json::{json, Value};

conformance!(
    create_get_update_archive_delete,
    definition_change_bumps_version_and_nothing_else_does,
    versions_are_immutable_in_the_database,
    cycles_and_unknown_dependencies_are_refused_with_nothing_written,
    bad_input_is_refused_with_the_field,
    dangling_references_are_invalid,
    filters_tags_and_pages,
    active_workflows_highest_priority_first,
    duplicate_makes_a_private_draft_with_its_own_history,
    shares_are_unique_and_removable,
    visibility_rules_decide_who_sees_what,
);

fn new(name: &str) -> NewWorkflow {
    NewWorkflow {
        name: name.into(),
        ..Default::default()
    }
}

fn pipeline() -> Value {
    json!({"steps": [
        {"key": "checkout", "handler": "git", "parameters": {"ref": "main"}},
        {"key": "build", "name": "Build", "handler": "shell", "depends_on": ["checkout"],
         "timeout_seconds": 600, "max_retries": 2, "execution_order": 1, "priority": 0},
        {"key": "test", "handler": "shell", "depends_on": ["build"]}
    ]})
}

fn patch(v: Value) -> WorkflowPatch {
    serde_json::from_value(v).expect("a well-formed patch")
}

/// Whether `user` may use `wf` with `permission`.
async fn may(
    tx: &mut Box<dyn Tx>,
    wf: WorkflowId,
    user: UserId,
    permission: SharePermission,
) -> bool {
    tx.workflow_access(wf, user, permission).await.unwrap()
}

/// A share with the user `u`, of the default permission.
fn to_user(u: UserId) -> NewShare {
    NewShare {
        user_id: Some(u),
        ..Default::default()
    }
}

/// A share with the team `t`, of the default permission.
fn to_team(t: TeamId) -> NewShare {
    NewShare {
        team_id: Some(t),
        ..Default::default()
    }
}

async fn team(tx: &mut Box<dyn Tx>, name: &str, members: &[UserId]) -> TeamId {
    let t = tx
        .create_team(NewTeam {
            name: name.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    for m in members {
        tx.add_team_member(t, *m, TeamRole::Member).await.unwrap();
    }
    t
}

async fn count(tx: &mut Box<dyn Tx>, f: &WorkflowFilter) -> usize {
    tx.list_workflows(f, &PageRequest::first(100))
        .await
        .unwrap()
        .items
        .len()
}

async fn visible(tx: &mut Box<dyn Tx>, who: UserId) -> Vec<WorkflowId> {
    let page = tx
        .list_visible_workflows(who, &PageRequest::first(100))
        .await
        .unwrap();
    page.items.iter().map(|w| w.id).collect()
}

async fn create_get_update_archive_delete(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let owner = user_id(&mut tx, "owner@example.com").await;
    let created = tx
        .create_workflow(NewWorkflow {
            name: " ci ".into(),
            description: Some("build and test".into()),
            workflow_type: Some("ci".into()),
            status: Some(WorkflowStatus::Active),
            priority: Some(10),
            definition: Some(pipeline()),
            configuration: Some(json!({"concurrency": 2})),
            environment_variables: Some(json!({"RUST_LOG": "info"})),
            tags: vec!["rust".into(), " ci ".into()],
            timeout_seconds: Some(3600),
            owner_id: Some(owner),
            ..Default::default()
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(created.name, "ci");
    assert_eq!(created.tags, ["rust", "ci"]);
    assert_eq!(created.version, 1);
    assert_eq!(created.visibility, Visibility::Private);

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.get_workflow(created.id).await.unwrap(), created);
    let v1 = tx.get_workflow_version(created.id, 1).await.unwrap();
    assert_eq!(v1.definition, pipeline());
    assert_eq!(v1.configuration, json!({"concurrency": 2}));
    assert_eq!(v1.created_by, Some(owner));

    let updated = tx
        .update_workflow(
            created.id,
            patch(
                json!({"description": null, "priority": -5, "type": "deploy",
                         "timeout_seconds": null, "tags": ["x"]}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(updated.description, None);
    assert_eq!(updated.priority, -5);
    assert_eq!(updated.workflow_type, "deploy");
    assert_eq!(updated.timeout_seconds, None);
    assert_eq!(updated.tags, ["x"]);
    assert_eq!(tx.get_workflow(created.id).await.unwrap(), updated);

    let archived = tx.archive_workflow(created.id).await.unwrap();
    assert_eq!(archived.status, WorkflowStatus::Archived);
    let stamp = archived.archived_at.expect("archiving stamps archived_at");
    let again = tx.archive_workflow(created.id).await.unwrap();
    assert_eq!(
        again.archived_at,
        Some(stamp),
        "archiving twice keeps the stamp"
    );
    assert_eq!(tx.get_workflow(created.id).await.unwrap(), again);
    let revived = tx
        .update_workflow(created.id, patch(json!({"status": "inactive"})))
        .await
        .unwrap();
    assert_eq!(revived.archived_at, None);

    tx.delete_workflow(created.id).await.unwrap();
    assert_err!(tx.get_workflow(created.id).await, NotFound);
    assert_err!(tx.get_workflow_version(created.id, 1).await, NotFound);
    assert_err!(tx.delete_workflow(created.id).await, NotFound);
    assert_err!(
        tx.update_workflow(created.id, patch(json!({}))).await,
        NotFound
    );
    tx.commit().await.unwrap();
}

async fn definition_change_bumps_version_and_nothing_else_does(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let w = tx
        .create_workflow(NewWorkflow {
            definition: Some(pipeline()),
            ..new("versioned")
        })
        .await
        .unwrap();
    let same = tx
        .update_workflow(
            w.id,
            patch(json!({"name": "renamed", "metadata": {"a": 1}, "definition": pipeline()})),
        )
        .await
        .unwrap();
    assert_eq!(
        same.version, 1,
        "an unchanged definition is not a new version"
    );

    let mut def = pipeline();
    def["steps"][2]["depends_on"] = json!(["build", "checkout"]);
    let v2 = tx
        .update_workflow(
            w.id,
            patch(json!({"definition": def, "change_note": "test after checkout too"})),
        )
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    let v3 = tx
        .update_workflow(w.id, patch(json!({"configuration": {"retries": 3}})))
        .await
        .unwrap();
    assert_eq!(v3.version, 3);

    let versions = tx.list_workflow_versions(w.id).await.unwrap();
    let numbers: Vec<i32> = versions.iter().map(|v| v.version).collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(versions[0].definition, pipeline(), "version 1 is unchanged");
    assert_eq!(versions[1].definition, def);
    assert_eq!(
        versions[1].change_note.as_deref(),
        Some("test after checkout too")
    );
    assert_eq!(versions[2].configuration, json!({"retries": 3}));
    assert_eq!(versions[2].definition, def);
    assert_err!(tx.get_workflow_version(w.id, 4).await, NotFound);
    assert_err!(tx.list_workflow_versions(WorkflowId::new()).await, NotFound);
    tx.commit().await.unwrap();
}

async fn versions_are_immutable_in_the_database(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let w = tx
        .create_workflow(NewWorkflow {
            definition: Some(pipeline()),
            ..new("frozen")
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let refused = store
        .backend()
        .execute_raw("UPDATE workflow_versions SET change_note = 'rewritten'")
        .await;
    assert_err!(refused, Conflict, "row");
    let mut tx = store.begin_read().await.unwrap();
    let v1 = tx.get_workflow_version(w.id, 1).await.unwrap();
    assert_eq!(v1.change_note, None);
    assert_eq!(v1.definition, pipeline());
}

async fn cycles_and_unknown_dependencies_are_refused_with_nothing_written(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let cyclic = json!({"steps": [
        {"key": "a", "handler": "h", "depends_on": ["c"]},
        {"key": "b", "handler": "h", "depends_on": ["a"]},
        {"key": "c", "handler": "h", "depends_on": ["b"]}
    ]});
    let err = tx
        .create_workflow(NewWorkflow {
            definition: Some(cyclic.clone()),
            ..new("cyclic")
        })
        .await;
    match &err {
        Err(flowstore::StoreError::Invalid { field, reason }) => {
            assert!(field.starts_with("definition.steps["), "{field}");
            assert!(reason.contains("a -> c -> b -> a"), "{reason}");
        }
        other => panic!("expected a refused cycle, got {other:?}"),
    }
    let unknown = json!({"steps": [{"key": "a", "handler": "h"},
                                   {"key": "b", "handler": "h", "depends_on": ["nope"]}]});
    assert_err!(
        tx.create_workflow(NewWorkflow {
            definition: Some(unknown),
            ..new("unknown")
        })
        .await,
        Invalid,
        "definition.steps[1].depends_on"
    );
    let selfish = json!({"steps": [{"key": "a", "handler": "h", "depends_on": ["a"]}]});
    assert_err!(
        tx.create_workflow(NewWorkflow {
            definition: Some(selfish),
            ..new("selfish")
        })
        .await,
        Invalid,
        "definition.steps[0].depends_on"
    );
    let page = tx
        .list_workflows(&WorkflowFilter::default(), &PageRequest::first(10))
        .await
        .unwrap();
    assert!(page.items.is_empty(), "refused workflows were not written");

    // An update to a cycle is refused too, leaving the stored version alone.
    let w = tx
        .create_workflow(NewWorkflow {
            definition: Some(pipeline()),
            ..new("ok")
        })
        .await
        .unwrap();
    assert!(tx
        .update_workflow(w.id, patch(json!({"definition": cyclic})))
        .await
        .is_err());
    let after = tx.get_workflow(w.id).await.unwrap();
    assert_eq!((after.version, after.definition), (1, pipeline()));
    assert_eq!(tx.list_workflow_versions(w.id).await.unwrap().len(), 1);
    tx.commit().await.unwrap();
}

async fn bad_input_is_refused_with_the_field(store: Store) {
    let mut tx = store.begin().await.unwrap();
    assert_err!(tx.create_workflow(new("  ")).await, Invalid, "name");
    assert_err!(
        tx.create_workflow(new(&"x".repeat(256))).await,
        Invalid,
        "name"
    );
    let with = |v: Value| -> NewWorkflow {
        let mut base = json!({"name": "w"});
        base.as_object_mut()
            .unwrap()
            .extend(v.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    };
    let cases = [
        (json!({"configuration": [1]}), "configuration"),
        (json!({"metadata": "x"}), "metadata"),
        (
            json!({"environment_variables": {"A": 1}}),
            "environment_variables",
        ),
        (json!({"priority": 1001}), "priority"),
        (json!({"priority": -1001}), "priority"),
        (json!({"timeout_seconds": 0}), "timeout_seconds"),
        (json!({"tags": ["a", "a"]}), "tags"),
        (json!({"type": ""}), "type"),
        (json!({"definition": []}), "definition"),
        (json!({"definition": {"steps": "no"}}), "definition"),
        (json!({"definition": {"stages": []}}), "definition"),
        (json!({"status": "active"}), "definition.steps"),
        (json!({"visibility": "team"}), "team_id"),
        (
            json!({"definition": {"steps": [{"key": "", "handler": "h"}]}}),
            "definition.steps[0].key",
        ),
        (
            json!({"definition": {"steps": [{"key": "k".repeat(201), "handler": "h"}]}}),
            "definition.steps[0].key",
        ),
        (
            json!({"definition": {"steps": [{"key": "a", "handler": "h"}, {"key": "a", "handler": "h"}]}}),
            "definition.steps[1].key",
        ),
        (
            json!({"definition": {"steps": [{"key": "a", "handler": ""}]}}),
            "definition.steps[0].handler",
        ),
        (
            json!({"definition": {"steps": [{"key": "a", "handler": "h", "timeout_seconds": -1}]}}),
            "definition.steps[0].timeout_seconds",
        ),
        (
            json!({"definition": {"steps": [{"key": "a", "handler": "h", "max_retries": 101}]}}),
            "definition.steps[0].max_retries",
        ),
    ];
    for (input, field) in cases {
        assert_err!(tx.create_workflow(with(input)).await, Invalid, field);
    }
    assert!(serde_json::from_value::<NewWorkflow>(json!({"name": "w", "status": "done"})).is_err());
    assert!(serde_json::from_value::<NewWorkflow>(json!({"name": "w", "bogus": 1})).is_err());
    assert!(serde_json::from_value::<WorkflowPatch>(json!({"version": 7})).is_err());
    assert!(serde_json::from_value::<WorkflowPatch>(json!({"visibility": "world"})).is_err());

    let w = tx.create_workflow(new("w")).await.unwrap();
    for (p, field) in [
        (json!({"name": ""}), "name"),
        (json!({"priority": 5000}), "priority"),
        (json!({"configuration": 3}), "configuration"),
        (json!({"status": "active"}), "definition.steps"),
    ] {
        assert_err!(tx.update_workflow(w.id, patch(p)).await, Invalid, field);
    }
    assert_eq!(tx.get_workflow(w.id).await.unwrap(), w, "nothing changed");
    assert_err!(
        tx.list_workflows(&WorkflowFilter::default(), &PageRequest::first(0))
            .await,
        Invalid,
        "limit"
    );
    tx.commit().await.unwrap();
}

async fn dangling_references_are_invalid(store: Store) {
    let mut tx = store.begin().await.unwrap();
    for (bad, field) in [
        (
            NewWorkflow {
                owner_id: Some(UserId::new()),
                ..new("w")
            },
            "owner_id",
        ),
        (
            NewWorkflow {
                team_id: Some(TeamId::new()),
                ..new("w")
            },
            "team_id",
        ),
        (
            NewWorkflow {
                project_id: Some(flowstore::ids::ProjectId::new()),
                ..new("w")
            },
            "project_id",
        ),
    ] {
        assert_err!(tx.create_workflow(bad).await, Invalid, field);
    }
    let w = tx.create_workflow(new("w")).await.unwrap();
    assert_err!(
        tx.update_workflow(w.id, patch(json!({"project_id": uuid::Uuid::now_v7()})))
            .await,
        Invalid,
        "project_id"
    );
    assert_err!(
        tx.update_workflow(
            w.id,
            patch(json!({"definition": pipeline(), "changed_by": uuid::Uuid::now_v7()}))
        )
        .await,
        Invalid,
        "changed_by"
    );
    let unchanged = tx.get_workflow(w.id).await.unwrap();
    assert_eq!((unchanged.version, unchanged.definition), (1, json!({})));
    assert_err!(
        tx.duplicate_workflow(w.id, "copy", Some(UserId::new()))
            .await,
        Invalid,
        "owner_id"
    );
    assert_err!(
        tx.duplicate_workflow(WorkflowId::new(), "copy", None).await,
        NotFound
    );
    tx.commit().await.unwrap();
}

async fn filters_tags_and_pages(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let alice = user_id(&mut tx, "alice@example.com").await;
    let ops = team(&mut tx, "ops", &[]).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let w = tx
            .create_workflow(NewWorkflow {
                tags: if i % 3 == 0 {
                    vec!["nightly".into()]
                } else {
                    vec![]
                },
                owner_id: (i % 2 == 0).then_some(alice),
                team_id: (i % 4 == 0).then_some(ops),
                status: (i == 5).then_some(WorkflowStatus::Inactive),
                ..new(&format!("w{i}"))
            })
            .await
            .unwrap();
        ids.push(w.id);
    }
    tx.commit().await.unwrap();
    let mut tx = store.begin_read().await.unwrap();
    let tag = WorkflowFilter {
        tag: Some("nightly".into()),
        ..Default::default()
    };
    assert_eq!(count(&mut tx, &tag).await, 4);
    let mine = WorkflowFilter {
        owner_id: Some(alice),
        ..Default::default()
    };
    assert_eq!(count(&mut tx, &mine).await, 6);
    let both = WorkflowFilter {
        owner_id: Some(alice),
        team_id: Some(ops),
        tag: Some("nightly".into()),
        ..Default::default()
    };
    assert_eq!(count(&mut tx, &both).await, 1, "filters combine: only w0");
    let inactive = WorkflowFilter {
        status: Some(WorkflowStatus::Inactive),
        ..Default::default()
    };
    let got = tx
        .list_workflows(&inactive, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(got.items.iter().map(|w| w.id).collect::<Vec<_>>(), [ids[5]]);

    let seen: Vec<_> = all_pages!(5, |page| tx
        .list_workflows(&WorkflowFilter::default(), &page))
    .iter()
    .map(|w| w.id)
    .collect();
    ids.reverse();
    assert_eq!(seen, ids, "newest first, every workflow exactly once");
}

async fn active_workflows_highest_priority_first(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let make = |name: &'static str, status: WorkflowStatus, priority: i32| NewWorkflow {
        status: Some(status),
        priority: Some(priority),
        definition: Some(pipeline()),
        ..new(name)
    };
    let low = tx
        .create_workflow(make("low", WorkflowStatus::Active, 1))
        .await
        .unwrap();
    tx.create_workflow(make("draft", WorkflowStatus::Draft, 50))
        .await
        .unwrap();
    let high = tx
        .create_workflow(make("high", WorkflowStatus::Active, 9))
        .await
        .unwrap();
    tx.create_workflow(make("off", WorkflowStatus::Inactive, 99))
        .await
        .unwrap();
    let active = tx.list_active_workflows().await.unwrap();
    let got: Vec<WorkflowId> = active.iter().map(|w| w.id).collect();
    assert_eq!(got, [high.id, low.id]);
    tx.archive_workflow(high.id).await.unwrap();
    assert_eq!(tx.list_active_workflows().await.unwrap().len(), 1);
}

async fn duplicate_makes_a_private_draft_with_its_own_history(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let a = user_id(&mut tx, "a@example.com").await;
    let b = user_id(&mut tx, "b@example.com").await;
    let src = tx
        .create_workflow(NewWorkflow {
            status: Some(WorkflowStatus::Active),
            visibility: Some(Visibility::Public),
            definition: Some(pipeline()),
            configuration: Some(json!({"k": 1})),
            tags: vec!["t".into()],
            owner_id: Some(a),
            ..new("source")
        })
        .await
        .unwrap();
    let src = tx
        .update_workflow(src.id, patch(json!({"configuration": {"k": 2}})))
        .await
        .unwrap();
    assert_eq!(src.version, 2);
    let copy = tx
        .duplicate_workflow(src.id, " copy ", Some(b))
        .await
        .unwrap();
    assert_ne!(copy.id, src.id);
    assert_eq!(copy.name, "copy");
    assert_eq!(copy.status, WorkflowStatus::Draft);
    assert_eq!(copy.visibility, Visibility::Private);
    assert_eq!(copy.parent_workflow_id, Some(src.id));
    assert_eq!(copy.owner_id, Some(b));
    assert_eq!(copy.version, 1);
    assert_eq!(copy.definition, src.definition);
    assert_eq!(copy.configuration, json!({"k": 2}));
    assert_eq!(copy.tags, src.tags);
    assert_eq!(tx.get_workflow(copy.id).await.unwrap(), copy);
    let versions = tx.list_workflow_versions(copy.id).await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].configuration, json!({"k": 2}));
    assert_eq!(tx.list_workflow_versions(src.id).await.unwrap().len(), 2);
    assert_err!(
        tx.duplicate_workflow(src.id, "", None).await,
        Invalid,
        "name"
    );
    // Deleting the source leaves the copy, no longer pointing anywhere.
    tx.delete_workflow(src.id).await.unwrap();
    assert_eq!(
        tx.get_workflow(copy.id).await.unwrap().parent_workflow_id,
        None
    );
    tx.commit().await.unwrap();
}

async fn shares_are_unique_and_removable(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let a = user_id(&mut tx, "a@example.com").await;
    let b = user_id(&mut tx, "b@example.com").await;
    let t = team(&mut tx, "builders", &[b]).await;
    let w = tx
        .create_workflow(NewWorkflow {
            owner_id: Some(a),
            ..new("shared")
        })
        .await
        .unwrap();
    let to_b = tx
        .share_workflow(
            w.id,
            NewShare {
                user_id: Some(b),
                permission: Some(SharePermission::Execute),
                created_by: Some(a),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(to_b.permission, SharePermission::Execute);
    let to_t = tx.share_workflow(w.id, to_team(t)).await.unwrap();
    assert_eq!(to_t.permission, SharePermission::Read, "read by default");
    assert_err!(
        tx.share_workflow(w.id, to_user(b)).await,
        Conflict,
        "workflow_id, user_id"
    );
    drop(tx);

    let mut tx = store.begin().await.unwrap();
    let w = tx.create_workflow(new("shared")).await.unwrap();
    let t = team(&mut tx, "builders", &[]).await;
    tx.share_workflow(w.id, to_team(t)).await.unwrap();
    assert_err!(
        tx.share_workflow(w.id, to_team(t)).await,
        Conflict,
        "workflow_id, team_id"
    );
    drop(tx);

    let mut tx = store.begin().await.unwrap();
    let w = tx.create_workflow(new("w")).await.unwrap();
    let b = user_id(&mut tx, "b@example.com").await;
    let t = team(&mut tx, "builders", &[]).await;
    let both = NewShare {
        user_id: Some(b),
        team_id: Some(t),
        ..Default::default()
    };
    assert_err!(tx.share_workflow(w.id, both).await, Invalid, "user_id");
    assert_err!(
        tx.share_workflow(w.id, NewShare::default()).await,
        Invalid,
        "user_id"
    );
    assert_err!(
        tx.share_workflow(
            w.id,
            NewShare {
                user_id: Some(UserId::new()),
                ..Default::default()
            }
        )
        .await,
        Invalid,
        "user_id"
    );
    assert_err!(
        tx.share_workflow(WorkflowId::new(), to_user(b)).await,
        NotFound
    );
    assert!(serde_json::from_value::<NewShare>(json!({"permission": "admin"})).is_err());
    let s1 = tx.share_workflow(w.id, to_user(b)).await.unwrap();
    let s2 = tx.share_workflow(w.id, to_team(t)).await.unwrap();
    assert_eq!(
        tx.list_workflow_shares(w.id).await.unwrap(),
        [s1.clone(), s2.clone()]
    );
    tx.remove_workflow_share(s1.id).await.unwrap();
    assert_err!(tx.remove_workflow_share(s1.id).await, NotFound);
    assert_eq!(tx.list_workflow_shares(w.id).await.unwrap(), [s2]);
    // Deleting the workflow takes its shares with it.
    tx.delete_workflow(w.id).await.unwrap();
    assert!(tx.list_workflow_shares(w.id).await.unwrap().is_empty());
    tx.commit().await.unwrap();
}

async fn visibility_rules_decide_who_sees_what(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let a = user_id(&mut tx, "a@example.com").await;
    let b = user_id(&mut tx, "b@example.com").await;
    let c = user_id(&mut tx, "c@example.com").await;
    let team_ac = team(&mut tx, "ac", &[a, c]).await;
    let team_b = team(&mut tx, "b-only", &[b]).await;
    let mk = |name: &str, owner: UserId, vis: Visibility, team: Option<TeamId>| NewWorkflow {
        owner_id: Some(owner),
        visibility: Some(vis),
        team_id: team,
        ..new(name)
    };
    let b_private = tx
        .create_workflow(mk("bp", b, Visibility::Private, None))
        .await
        .unwrap();
    let b_public = tx
        .create_workflow(mk("bpub", b, Visibility::Public, None))
        .await
        .unwrap();
    let c_team = tx
        .create_workflow(mk("ct", c, Visibility::Team, Some(team_ac)))
        .await
        .unwrap();
    let b_team = tx
        .create_workflow(mk("bt", b, Visibility::Team, Some(team_b)))
        .await
        .unwrap();
    let a_own = tx
        .create_workflow(mk("ao", a, Visibility::Private, None))
        .await
        .unwrap();

    // A sees their own, the public one and their team's; not B's private or B's team's.
    let seen = visible(&mut tx, a).await;
    assert_eq!(seen, [a_own.id, c_team.id, b_public.id]);
    let read = SharePermission::Read;
    assert!(!may(&mut tx, b_private.id, a, read).await);
    assert!(may(&mut tx, b_public.id, a, read).await);
    assert!(
        !may(&mut tx, b_public.id, a, SharePermission::Execute).await,
        "public is read only"
    );
    assert!(may(&mut tx, c_team.id, a, read).await);
    assert!(!may(&mut tx, b_team.id, a, read).await);
    assert!(may(&mut tx, b_private.id, b, SharePermission::Write).await);

    // Shared with A: now visible, with exactly the permission granted.
    tx.share_workflow(
        b_private.id,
        NewShare {
            permission: Some(SharePermission::Execute),
            ..to_user(a)
        },
    )
    .await
    .unwrap();
    assert!(visible(&mut tx, a).await.contains(&b_private.id));
    assert!(may(&mut tx, b_private.id, a, SharePermission::Execute).await);
    assert!(!may(&mut tx, b_private.id, a, SharePermission::Write).await);

    // Shared with a team A belongs to: visible through the team.
    tx.share_workflow(
        b_team.id,
        NewShare {
            permission: Some(SharePermission::Write),
            ..to_team(team_ac)
        },
    )
    .await
    .unwrap();
    assert!(visible(&mut tx, a).await.contains(&b_team.id));
    assert!(may(&mut tx, b_team.id, c, SharePermission::Write).await);
    // B sees their own three and nothing of A's or C's.
    let seen_b = visible(&mut tx, b).await;
    assert_eq!(seen_b, [b_team.id, b_public.id, b_private.id]);
    // Turning C's workflow private hides it from A again.
    tx.update_workflow(c_team.id, patch(json!({"visibility": "private"})))
        .await
        .unwrap();
    assert!(!visible(&mut tx, a).await.contains(&c_team.id));
    assert!(!may(&mut tx, c_team.id, a, read).await);
    tx.commit().await.unwrap();
}

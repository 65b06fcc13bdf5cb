//! Conformance tests for the audit log: the hash chain, filters and pages, the
//! append-only triggers, concurrent appenders, entries queued and linked later, and
//! tampering found by verification
//! and by `check`: entries edited or removed, the newest entries cut (seen through
//! the signed head), the head removed or forged.

use flowstore::model::audit::{
    ActorType, AuditEntry, AuditFilter, ChainVerification, NewAuditEntry,
};
use flowstore::model::audit_chain::GENESIS_HASH;
use flowstore::{BackendKind, PageRequest, Store};
use flowstore_core::admin::{self, FindingKind};
use flowstore_testkit::fixtures::execute;
use serde_json::json;

conformance!(
    entries_chain_from_the_genesis_hash,
    bad_entries_are_refused,
    a_rolled_back_append_leaves_no_gap,
    lists_filter_and_page_newest_first,
    rows_refuse_update_and_delete,
    concurrent_appends_keep_one_chain,
    queued_entries_are_linked_after_their_change_commits,
    concurrent_queues_and_links_keep_one_chain,
    a_long_queue_is_linked_in_order,
    a_failed_link_leaves_every_entry_queued,
    an_edited_entry_is_found_by_verify_and_check,
    a_removed_entry_is_found_by_verify_and_check,
    a_cut_tail_is_found_by_verify_and_check,
    a_removed_or_forged_head_is_found,
    the_head_migration_signs_an_existing_log,
);

fn entry(actor: &str, action: &str, entity: &str, id: &str) -> NewAuditEntry {
    NewAuditEntry::new(
        ActorType::User,
        Some(actor.into()),
        action,
        entity,
        Some(id.into()),
    )
}

async fn append(store: &Store, new: NewAuditEntry) -> AuditEntry {
    let mut tx = store.begin().await.unwrap();
    let e = tx.append_audit(new).await.unwrap();
    tx.commit().await.unwrap();
    e
}

async fn verify(store: &Store) -> ChainVerification {
    let mut tx = store.begin().await.unwrap();
    let v = tx.verify_audit_chain().await.unwrap();
    tx.rollback().await.unwrap();
    v
}

/// Three entries whose before/after hold the JSON that backends store differently
/// (key order, integral floats, large numbers, negative zero, unicode).
async fn three(store: &Store) -> Vec<AuditEntry> {
    let mut out = Vec::new();
    for i in 1..=3 {
        let mut n = entry("u1", "workflow.update", "workflow", &format!("w{i}"));
        n.before = Some(json!({"z": 1, "a": {"y": [3.0, 1e16, -0.0], "b": "é\"\n"}, "n": null}));
        n.after = Some(json!({"big": 1e20, "small": 1.5e-7, "i": -9007199254740993i64}));
        n.ip_address = Some("127.0.0.1".into());
        n.request_id = Some(format!("req-{i}"));
        out.push(append(store, n).await);
    }
    out
}

async fn entries_chain_from_the_genesis_hash(store: Store) {
    let empty = verify(&store).await;
    assert!(empty.is_intact());
    assert_eq!((empty.checked, empty.last_hash.as_str()), (0, GENESIS_HASH));

    let written = three(&store).await;
    assert_eq!(
        written.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(written[0].prev_hash, GENESIS_HASH);
    assert_eq!(written[1].prev_hash, written[0].hash);
    assert_eq!(written[2].prev_hash, written[1].hash);
    assert_eq!(written[0].hash.len(), 64);

    // What is read back is what was written, hashes included, and it verifies.
    let mut tx = store.begin().await.unwrap();
    let stored = tx.audit_chain_after(0, 10).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(stored.len(), 3);
    for (s, w) in stored.iter().zip(&written) {
        assert_eq!(s.hash, w.hash);
        assert_eq!(s.created_at, w.created_at);
        assert_eq!(s.request_id, w.request_id);
    }
    let v = verify(&store).await;
    assert!(v.is_intact(), "{v:?}");
    assert_eq!((v.checked, v.last_seq), (3, 3));
    assert_eq!(v.last_hash, written[2].hash);
}

async fn bad_entries_are_refused(store: Store) {
    let mut tx = store.begin().await.unwrap();
    assert_err!(
        tx.append_audit(entry("u", " ", "workflow", "w")).await,
        Invalid,
        "action"
    );
    assert_err!(
        tx.append_audit(entry("u", "x", &"e".repeat(101), "w"))
            .await,
        Invalid,
        "entity_type"
    );
    let mut n = entry("u", "x", "workflow", "w");
    n.after = Some(json!({"bad": "a\u{0}b"}));
    assert_err!(tx.append_audit(n).await, Invalid, "after");
    let mut n = entry("u", "x", "workflow", "w");
    n.ip_address = Some("1".repeat(65));
    assert_err!(tx.append_audit(n).await, Invalid, "ip_address");
    tx.rollback().await.unwrap();
    assert_eq!(verify(&store).await.checked, 0, "nothing was written");
}

async fn a_rolled_back_append_leaves_no_gap(store: Store) {
    let mut tx = store.begin().await.unwrap();
    tx.append_audit(entry("u", "user.create", "user", "a"))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let e = append(&store, entry("u", "user.create", "user", "b")).await;
    assert_eq!((e.seq, e.prev_hash.as_str()), (1, GENESIS_HASH));

    // Two appends in one transaction chain onto each other.
    let mut tx = store.begin().await.unwrap();
    let a = tx
        .append_audit(entry("u", "team.create", "team", "t"))
        .await
        .unwrap();
    let b = tx
        .append_audit(entry("u", "team.member_add", "team", "t"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((a.seq, b.seq), (2, 3));
    assert_eq!(b.prev_hash, a.hash);
    assert!(verify(&store).await.is_intact());
}

async fn lists_filter_and_page_newest_first(store: Store) {
    append(&store, entry("alice", "workflow.create", "workflow", "w1")).await;
    let cut = flowstore::time::now();
    append(&store, entry("bob", "workflow.update", "workflow", "w1")).await;
    append(&store, entry("alice", "user.update", "user", "u9")).await;
    append(&store, entry("alice", "workflow.update", "workflow", "w2")).await;

    let mut tx = store.begin().await.unwrap();
    let all = tx
        .list_audit(&AuditFilter::default(), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        all.items.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![4, 3, 2, 1]
    );
    assert!(all.next_cursor.is_none());

    let seqs = |p: flowstore::Page<AuditEntry>| p.items.iter().map(|e| e.seq).collect::<Vec<_>>();
    let alice = AuditFilter {
        actor_id: Some("alice".into()),
        ..Default::default()
    };
    assert_eq!(
        seqs(
            tx.list_audit(&alice, &PageRequest::default())
                .await
                .unwrap()
        ),
        vec![4, 3, 1]
    );
    let w1 = AuditFilter {
        entity_type: Some("workflow".into()),
        entity_id: Some("w1".into()),
        ..Default::default()
    };
    assert_eq!(
        seqs(tx.list_audit(&w1, &PageRequest::default()).await.unwrap()),
        vec![2, 1]
    );
    let updates = AuditFilter {
        action: Some("workflow.update".into()),
        since: Some(cut),
        ..Default::default()
    };
    assert_eq!(
        seqs(
            tx.list_audit(&updates, &PageRequest::default())
                .await
                .unwrap()
        ),
        vec![4, 2]
    );

    // Keyset pages of two: 4 3 | 2 1, then nothing repeats or goes missing.
    let first = tx
        .list_audit(&AuditFilter::default(), &PageRequest::first(2))
        .await
        .unwrap();
    let cursor = first.next_cursor.clone().expect("a second page");
    assert_eq!(seqs(first), vec![4, 3]);
    let second = tx
        .list_audit(&AuditFilter::default(), &PageRequest::after(cursor, 2))
        .await
        .unwrap();
    assert_eq!(seqs(second.clone()), vec![2, 1]);
    assert!(second.next_cursor.is_none());

    assert_err!(
        tx.list_audit(&AuditFilter::default(), &PageRequest::after("nope", 2))
            .await,
        Invalid,
        "cursor"
    );
    assert_err!(
        tx.list_audit(&AuditFilter::default(), &PageRequest::first(5000))
            .await,
        Invalid,
        "limit"
    );
}

async fn rows_refuse_update_and_delete(store: Store) {
    three(&store).await;
    let b = store.backend();
    assert!(b
        .execute_raw("UPDATE audit_log SET action = 'x' WHERE seq = 2")
        .await
        .is_err());
    assert!(b
        .execute_raw("DELETE FROM audit_log WHERE seq = 3")
        .await
        .is_err());
    assert!(b.execute_raw("DELETE FROM audit_log").await.is_err());
    let v = verify(&store).await;
    assert!(v.is_intact());
    assert_eq!(v.checked, 3);
}

async fn concurrent_appends_keep_one_chain(store: Store) {
    let mut handles = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            for j in 0..5 {
                let mut tx = store.begin().await.unwrap();
                tx.append_audit(entry(&format!("w{i}"), "run.start", "run", &format!("{j}")))
                    .await
                    .unwrap();
                // Work after the append keeps the lock held a while.
                tx.list_audit(&AuditFilter::default(), &PageRequest::first(1))
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let v = verify(&store).await;
    assert!(v.is_intact(), "{v:?}");
    assert_eq!((v.checked, v.last_seq), (40, 40));
}

async fn actions(store: &Store) -> Vec<String> {
    let mut tx = store.begin_read().await.unwrap();
    let page = tx
        .list_audit(&AuditFilter::default(), &PageRequest::first(100))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    page.items.into_iter().rev().map(|e| e.action).collect()
}

async fn link(store: &Store) -> u64 {
    let mut tx = store.begin().await.unwrap();
    let n = tx.link_audit().await.unwrap();
    tx.commit().await.unwrap();
    n
}

async fn queued_entries_are_linked_after_their_change_commits(store: Store) {
    append(&store, entry("u", "a.first", "a", "1")).await;
    // Refused as an append is, naming the field; nothing is queued.
    let mut tx = store.begin().await.unwrap();
    assert_err!(
        tx.queue_audit(entry("u", " ", "workflow", "w")).await,
        Invalid,
        "action"
    );
    let mut huge = entry("u", "a.huge", "a", "1");
    huge.ip_address = Some("x".repeat(65));
    assert_err!(tx.queue_audit(huge).await, Invalid, "ip_address");
    // Queued by a change that rolls back: never linked.
    tx.queue_audit(entry("u", "a.undone", "a", "1"))
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let id = tx
        .queue_audit(entry("u", "a.second", "a", "2"))
        .await
        .unwrap();
    let mut third = entry("u", "a.third", "a", "3");
    third.after = Some(json!({"z": 1, "a": [1.0, "é"]}));
    tx.queue_audit(third).await.unwrap();
    // Not in the log before they are linked, not even for their own transaction.
    let listed = tx
        .list_audit(&AuditFilter::default(), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    tx.commit().await.unwrap();
    assert_eq!(actions(&store).await, ["a.first"]);
    assert_eq!(link(&store).await, 2);
    assert_eq!(link(&store).await, 0, "each entry is linked once");
    assert_eq!(actions(&store).await, ["a.first", "a.second", "a.third"]);
    let mut tx = store.begin_read().await.unwrap();
    let stored = tx.audit_chain_after(1, 10).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(stored[0].id, id, "the entry keeps the ID queueing gave it");
    assert_eq!(stored[1].after, Some(json!({"z": 1, "a": [1.0, "é"]})));

    // An append links what was queued before it first: the chain keeps one order.
    let mut tx = store.begin().await.unwrap();
    tx.queue_audit(entry("u", "a.fourth", "a", "4"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let e = append(&store, entry("u", "a.fifth", "a", "5")).await;
    assert_eq!(e.seq, 5);
    assert_eq!(
        actions(&store).await,
        ["a.first", "a.second", "a.third", "a.fourth", "a.fifth"]
    );
    let v = verify(&store).await;
    assert!(v.is_intact(), "{v:?}");
    assert_eq!((v.checked, v.last_seq), (5, 5));

    // Queued rows are never changed; `check` links what is queued before it walks.
    assert!(
        store
            .backend()
            .execute_raw("UPDATE audit_queue SET action = 'x'")
            .await
            .is_ok(),
        "no queued row to refuse yet"
    );
    let mut tx = store.begin().await.unwrap();
    tx.queue_audit(entry("u", "a.sixth", "a", "6"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(store
        .backend()
        .execute_raw("UPDATE audit_queue SET action = 'x'")
        .await
        .is_err());
    let report = admin::check(store.backend(), false).await.unwrap();
    assert!(
        !report
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::BrokenAuditChain),
        "{report:?}"
    );
    assert_eq!(
        actions(&store).await.last().map(String::as_str),
        Some("a.sixth")
    );
    assert!(verify(&store).await.is_intact());
}

async fn concurrent_queues_and_links_keep_one_chain(store: Store) {
    let mut handles = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            for j in 0..10 {
                let mut tx = store.begin().await.unwrap();
                let new = entry(&format!("w{i}"), "run.start", "run", &format!("{j}"));
                // Some changes append, most queue; a few roll back; every worker
                // links now and then, while others queue.
                match j % 5 {
                    0 => {
                        tx.append_audit(new).await.unwrap();
                    }
                    4 => {
                        tx.queue_audit(new).await.unwrap();
                        tx.rollback().await.unwrap();
                        continue;
                    }
                    _ => {
                        tx.queue_audit(new).await.unwrap();
                    }
                }
                tx.commit().await.unwrap();
                if j % 3 == 0 {
                    link(&store).await;
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    link(&store).await;
    let v = verify(&store).await;
    assert!(v.is_intact(), "{v:?}");
    // 8 workers × 10 changes, 2 of each 10 rolled back.
    assert_eq!((v.checked, v.last_seq), (64, 64));
    let mut tx = store.begin_read().await.unwrap();
    let stored = tx.audit_chain_after(0, 100).await.unwrap();
    tx.rollback().await.unwrap();
    let mut seen: Vec<(String, String)> = stored
        .iter()
        .map(|e| (e.actor_id.clone().unwrap(), e.entity_id.clone().unwrap()))
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 64, "every committed entry once");
    assert!(seen
        .iter()
        .all(|(_, j)| !j.ends_with('4') && !j.ends_with('9')));
}

/// Queues the entries of `n` run starts (entities "0" to "n - 1") one by one, in one
/// transaction.
async fn queue_starts(store: &Store, n: usize) {
    let mut tx = store.begin().await.unwrap();
    for i in 0..n {
        tx.queue_audit(entry("u", "run.start", "run", &i.to_string()))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

/// More entries than one round of linking takes and one statement inserts, queued
/// one by one and many at a time.
async fn a_long_queue_is_linked_in_order(store: Store) {
    let n = flowstore::model::audit::LINK_BATCH as usize + 77;
    queue_starts(&store, 500).await;
    // Many at once: refused whole when one entry is bad, naming it.
    let mut tx = store.begin().await.unwrap();
    let bad = vec![
        entry("u", "run.start", "run", "x"),
        entry("u", "", "run", "y"),
    ];
    assert_err!(tx.queue_audits(bad).await, Invalid, "entries[1].action");
    let many: Vec<_> = (500..n)
        .map(|i| entry("u", "run.start", "run", &i.to_string()))
        .collect();
    let ids = tx.queue_audits(many).await.unwrap();
    assert_eq!(ids.len(), n - 500);
    tx.commit().await.unwrap();
    assert_eq!(link(&store).await, n as u64);
    let v = verify(&store).await;
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.last_seq, n as i64);
    let mut stored = Vec::new();
    let mut tx = store.begin_read().await.unwrap();
    loop {
        let after = stored.last().map_or(0, |e: &AuditEntry| e.seq);
        let page = tx.audit_chain_after(after, 300).await.unwrap();
        if page.is_empty() {
            break;
        }
        stored.extend(page);
    }
    tx.rollback().await.unwrap();
    let order: Vec<String> = stored.into_iter().filter_map(|e| e.entity_id).collect();
    let queued: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    assert_eq!(order, queued, "linked in the order they were queued");
}

/// Drops the append-only triggers, as someone with the database's credentials could.
/// A link that fails, whether before it writes (the head signed with a key this
/// server does not have) or part-way through its inserts, leaves every entry queued
/// and the chain as it was; once the cause is mended, the next link takes them all,
/// in the order they were queued.
async fn a_failed_link_leaves_every_entry_queued(store: Store) {
    append(&store, entry("u", "a.first", "a", "first")).await;
    queue_starts(&store, 100).await;

    // The head's key is not configured: linking and appending refuse, naming it.
    execute(&store, "UPDATE audit_head SET key_id = 'retired' || key_id").await;
    let mut tx = store.begin().await.unwrap();
    let e = tx
        .link_audit()
        .await
        .expect_err("the head's key is unknown");
    assert!(e.to_string().contains("retired"), "{e}");
    tx.rollback().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let e = tx
        .append_audit(entry("u", "a.append", "a", "append"))
        .await
        .expect_err("an append cannot link either");
    assert!(e.to_string().contains("not configured"), "{e}");
    tx.rollback().await.unwrap();
    execute(&store, "UPDATE audit_head SET key_id = substr(key_id, 8)").await;

    // An entry whose ID is already in the log, queued last: the round inserts the
    // 100 before it (64, then 32, then 4 a statement) and fails on it.
    execute(
        &store,
        "INSERT INTO audit_queue (entry_id, actor_type, action, entity_type, created_at)
         SELECT id, 'system', 'a.clash', 'a', created_at FROM audit_log WHERE seq = 1",
    )
    .await;
    let mut tx = store.begin().await.unwrap();
    tx.link_audit()
        .await
        .expect_err("the clash fails the round");
    tx.rollback().await.unwrap();
    assert_eq!(actions(&store).await, ["a.first"], "nothing was linked");
    let v = verify(&store).await;
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.last_seq, 1);

    execute(&store, "DELETE FROM audit_queue WHERE action = 'a.clash'").await;
    assert_eq!(link(&store).await, 100, "every entry stayed queued");
    let v = verify(&store).await;
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.last_seq, 101);
    let mut tx = store.begin_read().await.unwrap();
    let stored = tx.audit_chain_after(1, 200).await.unwrap();
    tx.rollback().await.unwrap();
    let order: Vec<String> = stored.into_iter().filter_map(|e| e.entity_id).collect();
    let queued: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    assert_eq!(order, queued, "linked in the order they were queued");
}

async fn drop_triggers(store: &Store) {
    let b = store.backend();
    match b.kind() {
        BackendKind::Sqlite => {
            b.execute_raw("DROP TRIGGER trg_audit_log_no_update")
                .await
                .unwrap();
            b.execute_raw("DROP TRIGGER trg_audit_log_no_delete")
                .await
                .unwrap();
        }
        BackendKind::Postgres => {
            b.execute_raw("DROP TRIGGER trg_audit_log_append_only ON audit_log")
                .await
                .unwrap();
        }
    }
}

async fn broken_finding(store: &Store) -> Option<flowstore_core::admin::Finding> {
    let report = admin::check(store.backend(), true).await.unwrap();
    let found = report
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::BrokenAuditChain)
        .cloned();
    if found.is_some() {
        // Reported, never repaired: the finding remains after --fix.
        assert!(report
            .remaining
            .iter()
            .any(|f| f.kind == FindingKind::BrokenAuditChain));
        assert!(report
            .repairs
            .iter()
            .any(|r| r.kind == FindingKind::BrokenAuditChain && r.note.is_some()));
    }
    found
}

async fn an_edited_entry_is_found_by_verify_and_check(store: Store) {
    three(&store).await;
    assert!(
        broken_finding(&store).await.is_none(),
        "a clean chain is clean"
    );
    drop_triggers(&store).await;
    let changed = execute(
        &store,
        "UPDATE audit_log SET entity_id = 'w9' WHERE seq = 2",
    )
    .await;
    assert_eq!(changed, 1);

    let v = verify(&store).await;
    let broken = v.first_broken.expect("the edit is found");
    assert_eq!(broken.seq, 2);
    assert!(broken.reason.contains("changed"), "{}", broken.reason);
    assert_eq!(v.last_seq, 1);

    let f = broken_finding(&store).await.expect("check reports it");
    assert_eq!(f.table, "audit_log");
    assert!(f.detail.contains("seq 2"), "{}", f.detail);
}

async fn a_removed_entry_is_found_by_verify_and_check(store: Store) {
    three(&store).await;
    drop_triggers(&store).await;
    execute(&store, "DELETE FROM audit_log WHERE seq = 2").await;
    let broken = verify(&store).await.first_broken.expect("the gap is found");
    assert_eq!(broken.seq, 3);
    assert!(broken.reason.contains("missing"), "{}", broken.reason);
    assert!(broken_finding(&store).await.is_some());

    // Rewriting the rest of the chain over the gap is caught by the hashes.
    execute(&store, "UPDATE audit_log SET seq = 2 WHERE seq = 3").await;
    let broken = verify(&store).await.first_broken.expect("still broken");
    assert_eq!(broken.seq, 2);
}

/// The findings of `check` about the audit log's head.
async fn head_findings(store: &Store) -> Vec<flowstore_core::admin::Finding> {
    let report = admin::check(store.backend(), false).await.unwrap();
    report
        .findings
        .into_iter()
        .filter(|f| f.kind == FindingKind::BrokenAuditChain && f.table == "audit_head")
        .collect()
}

async fn a_cut_tail_is_found_by_verify_and_check(store: Store) {
    let written = three(&store).await;
    append(&store, entry("u2", "team.create", "team", "t")).await;
    append(&store, entry("u2", "team.delete", "team", "t")).await;
    let v = verify(&store).await;
    assert!(v.is_intact(), "{v:?}");
    assert!(
        head_findings(&store).await.is_empty(),
        "an intact log is clean"
    );

    // Removing the newest two leaves a chain that verifies entry by entry.
    drop_triggers(&store).await;
    let cut = execute(&store, "DELETE FROM audit_log WHERE seq >= 4").await;
    assert_eq!(cut, 2);
    let v = verify(&store).await;
    assert!(v.first_broken.is_none(), "{v:?}");
    assert!(!v.is_intact());
    assert_eq!(
        (v.last_seq, v.last_hash.as_str()),
        (3, written[2].hash.as_str())
    );
    let m = v.head_mismatch.expect("the signed head shows the cut");
    assert_eq!(
        (m.head_seq, m.newest_seq, m.missing_from, m.missing_to),
        (Some(5), 3, Some(4), Some(5))
    );
    assert!(m.reason.contains("4..=5"), "{}", m.reason);

    let found = head_findings(&store).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].count, 2);
    assert_eq!(found[0].examples, vec!["seq 4..=5 missing".to_string()]);
    let report = admin::check(store.backend(), true).await.unwrap();
    assert!(
        report
            .remaining
            .iter()
            .any(|f| f.kind == FindingKind::BrokenAuditChain && f.table == "audit_head"),
        "never repaired: {report:?}"
    );

    // Appending goes on from the head, over the gap, which the chain now shows.
    let next = append(&store, entry("u3", "team.create", "team", "t2")).await;
    assert_eq!(next.seq, 6);
    let v = verify(&store).await;
    assert!(v.head_mismatch.is_none(), "{v:?}");
    let broken = v.first_broken.expect("the gap stays visible");
    assert_eq!(broken.seq, 6);
    assert!(broken.reason.contains("missing"), "{}", broken.reason);

    // Cutting everything is found too.
    execute(&store, "DELETE FROM audit_log").await;
    let m = verify(&store).await.head_mismatch.expect("all gone");
    assert_eq!((m.missing_from, m.missing_to), (Some(1), Some(6)));
}

async fn a_removed_or_forged_head_is_found(store: Store) {
    let written = three(&store).await;
    drop_triggers(&store).await;
    let b = store.backend();

    // A head rewritten without the key: cut the newest entry and point the head at
    // the one before, keeping the old MAC.
    b.execute_raw("DELETE FROM audit_log WHERE seq = 3")
        .await
        .unwrap();
    b.execute_raw(&format!(
        "UPDATE audit_head SET seq = 2, hash = '{}'",
        written[1].hash
    ))
    .await
    .unwrap();
    let m = verify(&store)
        .await
        .head_mismatch
        .expect("the forgery is found");
    assert!(m.reason.contains("does not verify"), "{}", m.reason);
    // Appends go on, but a forged head is never signed over: it stays visible.
    append(&store, entry("u", "team.create", "team", "t")).await;
    let m = verify(&store).await.head_mismatch.expect("still found");
    assert!(m.reason.contains("does not verify"), "{}", m.reason);
    assert_eq!(head_findings(&store).await.len(), 1);

    // Removing the head row as well is no way out: a log with entries needs one.
    b.execute_raw("DELETE FROM audit_head").await.unwrap();
    let m = verify(&store)
        .await
        .head_mismatch
        .expect("the missing head is found");
    assert_eq!(m.head_seq, None);
    assert!(m.reason.contains("no signed head"), "{}", m.reason);
    append(&store, entry("u", "team.delete", "team", "t")).await;
    assert!(
        verify(&store).await.head_mismatch.is_some(),
        "an append does not sign a head that went missing"
    );
    let found = head_findings(&store).await;
    assert_eq!(found[0].examples, vec!["no head".to_string()]);
}

async fn the_head_migration_signs_an_existing_log(store: Store) {
    three(&store).await;
    let b = store.backend();
    // Back to the schema before the head, then forward: the migration signs the
    // log that is already there, so an upgraded database verifies at once.
    assert_eq!(
        b.migrate_down(10).await.unwrap(),
        vec![26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11]
    );
    assert_eq!(
        b.migrate_up(None).await.unwrap(),
        vec![11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26]
    );
    let v = verify(&store).await;
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.last_seq, 3);
    let e = append(&store, entry("u", "team.create", "team", "t")).await;
    assert_eq!(e.seq, 4);
    assert!(verify(&store).await.is_intact());
}

//! Conformance tests for the `identity` area: users and sign-in, teams, sessions, API
//! keys and notifications.

use chrono::TimeDelta;
use flowstore::ids::{TeamId, UserId};
use flowstore::model::identity::{
    check_password, HashedPassword, NewTeam, NewUser, Role, TeamRole, UserFilter, UserPatch,
    UserStatus,
};
use flowstore::model::identity_access::{
    NewApiKey, NewNotification, NewSession, NotificationFilter, NotificationType,
};
use flowstore::{time, PageRequest, Store, Tx};
use flowstore_core::crypto::{sha256_hex, SecretString};
use flowstore_testkit::fixtures::execute;
use flowstore_testkit::fixtures::user;
use serde_json::json;

conformance!(
    users_create_get_update_delete,
    bad_user_input_is_refused,
    duplicate_email_is_a_conflict_whatever_its_case,
    users_filter_and_page,
    sign_in_outcomes_are_recorded,
    accounts_that_are_not_active_are_refused,
    reset_tokens_are_single_use_and_expire,
    email_verification_activates_pending_accounts,
    teams_and_members,
    sessions_live_until_expired_or_revoked,
    api_keys_are_shown_once_and_found_by_hash,
    notifications_are_read_counted_and_deleted,
);

const PASSWORD: &str = "correct horse battery";

/// The hash of [`PASSWORD`], made once (hashing is slow on purpose).
fn password_hash() -> HashedPassword {
    static HASH: std::sync::OnceLock<HashedPassword> = std::sync::OnceLock::new();
    HASH.get_or_init(|| HashedPassword::new(PASSWORD).unwrap())
        .clone()
}

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: email.into(),
        password_hash: Some(password_hash()),
        ..Default::default()
    }
}

/// Whether `password` is the stored password of the user with this email.
async fn signs_in(tx: &mut Box<dyn Tx>, email: &str, password: &str) -> bool {
    let u = tx.get_user_by_email(email).await.unwrap();
    check_password(u.password_hash.as_deref(), password)
}

async fn users_create_get_update_delete(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let created = tx
        .create_user(NewUser {
            display_name: Some(" Ada ".into()),
            role: Some(Role::Admin),
            ..new_user("  Ada@Example.COM ")
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(created.email, "ada@example.com");
    assert_eq!(created.display_name.as_deref(), Some("Ada"));
    assert_eq!(created.status, UserStatus::Active);
    let hash = created.password_hash.clone().expect("a password was given");
    assert!(hash.starts_with("$argon2id$") && !hash.contains(PASSWORD));
    let shown = serde_json::to_string(&created).unwrap();
    assert!(
        !shown.contains("password") && !shown.contains("argon2"),
        "{shown}"
    );
    assert!(!format!("{created:?}").contains("argon2"));

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.get_user(created.id).await.unwrap(), created);
    assert_eq!(
        tx.get_user_by_email("ADA@example.com").await.unwrap().id,
        created.id
    );
    let patch: UserPatch = serde_json::from_value(
        json!({"display_name": null, "role": "viewer", "status": "inactive"}),
    )
    .unwrap();
    let updated = tx.update_user(created.id, patch).await.unwrap();
    assert_eq!(updated.display_name, None);
    assert_eq!(updated.role, Role::Viewer);
    assert_eq!(updated.status, UserStatus::Inactive);
    assert_eq!(updated.password_hash, created.password_hash);
    assert_eq!(tx.get_user(created.id).await.unwrap(), updated);

    tx.delete_user(created.id).await.unwrap();
    assert_err!(tx.get_user(created.id).await, NotFound);
    assert_err!(tx.delete_user(created.id).await, NotFound);
    assert_err!(
        tx.update_user(created.id, UserPatch::default()).await,
        NotFound
    );
    tx.commit().await.unwrap();
}

async fn bad_user_input_is_refused(store: Store) {
    let mut tx = store.begin().await.unwrap();
    for bad in [
        "", "   ", "plain", "a@b", "@x.io", "a@x..io", "a b@x.io", "a\0@x.io",
    ] {
        assert_err!(tx.create_user(new_user(bad)).await, Invalid, "email");
    }
    let long = format!("{}@x.io", "a".repeat(320));
    assert_err!(tx.create_user(new_user(&long)).await, Invalid, "email");
    let short = NewUser {
        password: Some(SecretString::new("short")),
        ..new_user("p@x.io")
    };
    assert_err!(short.clone().hashed(), Invalid, "password");
    // A password still in clear is never hashed inside the transaction.
    assert!(matches!(
        tx.create_user(short).await,
        Err(flowstore::StoreError::Internal(_))
    ));
    assert_err!(
        tx.create_user(NewUser {
            display_name: Some("n".repeat(201)),
            ..new_user("d@x.io")
        })
        .await,
        Invalid,
        "display_name"
    );
    assert!(serde_json::from_value::<NewUser>(json!({"email": "r@x.io", "role": "god"})).is_err());
    assert!(serde_json::from_value::<NewUser>(json!({"email": "r@x.io", "admin": true})).is_err());
    assert!(serde_json::from_value::<UserPatch>(json!({"status": "asleep"})).is_err());
    let page = tx
        .list_users(&UserFilter::default(), &PageRequest::first(10))
        .await
        .unwrap();
    assert!(page.items.is_empty(), "nothing was written");
}

async fn duplicate_email_is_a_conflict_whatever_its_case(store: Store) {
    let mut tx = store.begin().await.unwrap();
    tx.create_user(new_user("A@x.io")).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert_err!(tx.create_user(new_user("a@x.io")).await, Conflict, "email");
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    assert_err!(tx.create_user(new_user(" A@X.IO")).await, Conflict, "email");
}

async fn users_filter_and_page(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..7 {
        let u = tx
            .create_user(NewUser {
                email: format!("u{i}@x.io"),
                role: Some(if i % 3 == 0 { Role::Admin } else { Role::User }),
                status: Some(if i == 1 {
                    UserStatus::Suspended
                } else {
                    UserStatus::Active
                }),
                ..Default::default()
            })
            .await
            .unwrap();
        ids.push(u.id);
    }
    tx.commit().await.unwrap();
    let mut tx = store.begin_read().await.unwrap();
    let admins = tx
        .list_users(
            &UserFilter {
                role: Some(Role::Admin),
                status: None,
            },
            &PageRequest::first(50),
        )
        .await
        .unwrap();
    assert_eq!(
        admins.items.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![ids[6], ids[3], ids[0]]
    );
    let suspended = tx
        .list_users(
            &UserFilter {
                role: None,
                status: Some(UserStatus::Suspended),
            },
            &PageRequest::first(50),
        )
        .await
        .unwrap();
    assert_eq!(suspended.items.len(), 1);
    assert_eq!(suspended.items[0].id, ids[1]);
    let seen: Vec<_> = all_pages!(3, |page| tx.list_users(&UserFilter::default(), &page))
        .iter()
        .map(|u| u.id)
        .collect();
    ids.reverse();
    assert_eq!(seen, ids, "newest first, every user exactly once");
}

async fn sign_in_outcomes_are_recorded(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let u = tx.create_user(new_user("lock@x.io")).await.unwrap();
    tx.commit().await.unwrap();
    let now = time::now();
    for attempt in 1..=4 {
        // Each failure is committed on its own, as a server would.
        let mut tx = store.begin().await.unwrap();
        let after = tx.record_login_failure(u.id, None, now).await.unwrap();
        assert_eq!(
            (after.failed_login_count, after.locked_until),
            (attempt, None)
        );
        tx.commit().await.unwrap();
        let mut tx = store.begin_read().await.unwrap();
        assert_eq!(tx.get_user(u.id).await.unwrap().failed_login_count, attempt);
    }
    // Failures recorded at the same time all count (the counter grows in the
    // database, not from a value read before).
    let (a, b, id) = (store.clone(), store.clone(), u.id);
    let fail = |s: Store| async move {
        let mut tx = s.begin().await.unwrap();
        tx.record_login_failure(id, None, now).await.unwrap();
        tx.commit().await.unwrap();
    };
    tokio::join!(fail(a), fail(b));
    let until = now + TimeDelta::minutes(15);
    let mut tx = store.begin().await.unwrap();
    let after = tx
        .record_login_failure(u.id, Some(until), now)
        .await
        .unwrap();
    assert_eq!(
        (after.failed_login_count, after.locked_until),
        (7, Some(until))
    );
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.get_user(u.id).await.unwrap().locked_until, Some(until));
    // An admin's unlock clears the count and the throttle, and nothing else.
    let unlocked = tx.unlock_user(u.id, now).await.unwrap();
    assert_eq!(
        (unlocked.failed_login_count, unlocked.locked_until),
        (0, None)
    );
    assert_eq!(unlocked.last_login_at, None);
    assert_eq!(unlocked.password_hash, u.password_hash);

    // A success resets the counter and notes the time.
    tx.record_login_failure(u.id, Some(until), now)
        .await
        .unwrap();
    let later = now + TimeDelta::minutes(16);
    let user = tx.record_login_success(u.id, later).await.unwrap();
    assert_eq!(user.failed_login_count, 0);
    assert_eq!(user.locked_until, None);
    assert_eq!(user.last_login_at, Some(later));
    tx.commit().await.unwrap();
    let mut tx = store.begin_read().await.unwrap();
    let stored = tx.get_user(u.id).await.unwrap();
    assert_eq!(stored.last_login_at, Some(later));
    assert_eq!(stored.failed_login_count, 0);
    drop(tx);

    let mut tx = store.begin().await.unwrap();
    let nobody = UserId::new();
    assert_err!(tx.record_login_failure(nobody, None, now).await, NotFound);
    assert_err!(tx.record_login_success(nobody, now).await, NotFound);
    assert_err!(tx.unlock_user(nobody, now).await, NotFound);
}

async fn accounts_that_are_not_active_are_refused(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let sus = tx
        .create_user(NewUser {
            status: Some(UserStatus::Suspended),
            ..new_user("sus@x.io")
        })
        .await
        .unwrap();
    let nopw = user(&mut tx, "nopw@x.io").await;
    assert_err!(sus.check_active(), Conflict, "status");
    assert!(tx.get_user(nopw.id).await.unwrap().check_active().is_ok());
    // The password of a suspended account is still known (a server says 403 to the
    // right one and 401 to a wrong one).
    assert!(signs_in(&mut tx, "sus@x.io", PASSWORD).await);
    assert!(!signs_in(&mut tx, "sus@x.io", "not the password").await);
    // What a server reads to sign someone in: an unknown or malformed email names no
    // one, and an account without a password matches none.
    assert_err!(tx.get_user_by_email("nobody@x.io").await, NotFound);
    assert_err!(tx.get_user_by_email("not an email").await, Invalid, "email");
    assert!(!signs_in(&mut tx, "nopw@x.io", "").await);
    assert!(!signs_in(&mut tx, "nopw@x.io", PASSWORD).await);
}

async fn reset_tokens_are_single_use_and_expire(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let u = tx.create_user(new_user("reset@x.io")).await.unwrap();
    let now = time::now();
    let session = tx
        .create_session(NewSession {
            user_id: u.id,
            expires_at: now + TimeDelta::hours(1),
            ip_address: None,
            user_agent: None,
        })
        .await
        .unwrap();
    for _ in 0..5 {
        tx.record_login_failure(u.id, Some(now + TimeDelta::minutes(15)), now)
            .await
            .unwrap();
    }
    let token = tx.issue_reset_token(u.id, now).await.unwrap();
    assert!(token.len() >= 32);
    tx.commit().await.unwrap();

    // Only the token's hash is stored.
    let found = execute(
        &store,
        &format!(
            "UPDATE users SET display_name = 'hashed' WHERE reset_token_hash = '{}'",
            sha256_hex(&token)
        ),
    )
    .await;
    assert_eq!(found, 1);

    let mut tx = store.begin().await.unwrap();
    assert_err!(HashedPassword::new("short"), Invalid, "password");
    let new_password = HashedPassword::new("a fresh password after reset").unwrap();
    assert_err!(
        tx.reset_password("not-the-token", &new_password, now).await,
        Invalid,
        "token"
    );
    let after = tx.reset_password(&token, &new_password, now).await.unwrap();
    assert_eq!(after.failed_login_count, 0, "a reset unlocks the account");
    assert_eq!(after.locked_until, None);
    assert_err!(tx.find_session(session.token.expose(), now).await, NotFound);
    assert_err!(
        tx.reset_password(&token, &password_hash(), now).await,
        Invalid,
        "token"
    );
    assert!(signs_in(&mut tx, "reset@x.io", "a fresh password after reset").await);
    assert!(!signs_in(&mut tx, "reset@x.io", PASSWORD).await);

    let expiring = tx.issue_reset_token(u.id, now).await.unwrap();
    assert_err!(
        tx.reset_password(&expiring, &password_hash(), now + TimeDelta::hours(2))
            .await,
        Invalid,
        "token"
    );
    assert_err!(tx.issue_reset_token(UserId::new(), now).await, NotFound);
}

async fn email_verification_activates_pending_accounts(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let u = tx
        .create_user(NewUser {
            status: Some(UserStatus::PendingVerification),
            ..new_user("new@x.io")
        })
        .await
        .unwrap();
    let now = time::now();
    let token = tx.issue_verification_token(u.id, now).await.unwrap();
    // A day later the token no longer works, and nothing changed.
    assert_err!(
        tx.verify_email(&token, now + TimeDelta::hours(25)).await,
        Invalid,
        "token"
    );
    assert_eq!(tx.get_user(u.id).await.unwrap().email_verified_at, None);
    // A token with its expiry altered is unknown.
    let (_, rest) = token.split_once('-').unwrap();
    let forged = format!("{}-{rest}", (now + TimeDelta::days(30)).timestamp());
    assert_err!(tx.verify_email(&forged, now).await, Invalid, "token");
    let verified = tx.verify_email(&token, now).await.unwrap();
    assert_eq!(verified.status, UserStatus::Active);
    assert_eq!(verified.email_verified_at, Some(now));
    assert_err!(tx.verify_email(&token, now).await, Invalid, "token");
    assert_err!(
        tx.issue_verification_token(UserId::new(), now).await,
        NotFound
    );
}

async fn teams_and_members(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let owner = user(&mut tx, "owner@x.io").await;
    let member = user(&mut tx, "member@x.io").await;
    let team = tx
        .create_team(NewTeam {
            name: " core ".into(),
            description: Some("the core team".into()),
            created_by: Some(owner.id),
        })
        .await
        .unwrap();
    assert_eq!(team.name, "core");
    assert_eq!(tx.get_team(team.id).await.unwrap(), team);
    let other = tx
        .create_team(NewTeam {
            name: "other".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let team_named = |name: String| NewTeam {
        name,
        ..Default::default()
    };
    assert_err!(
        tx.create_team(team_named("  ".into())).await,
        Invalid,
        "name"
    );
    assert_err!(
        tx.create_team(team_named("t".repeat(201))).await,
        Invalid,
        "name"
    );
    assert_err!(
        tx.create_team(NewTeam {
            created_by: Some(UserId::new()),
            ..team_named("ghost".into())
        })
        .await,
        Invalid,
        "created_by"
    );

    let m = tx
        .add_team_member(team.id, owner.id, TeamRole::Owner)
        .await
        .unwrap();
    assert_eq!(m.role, TeamRole::Owner);
    tx.add_team_member(team.id, member.id, TeamRole::Member)
        .await
        .unwrap();
    tx.add_team_member(other.id, member.id, TeamRole::Viewer)
        .await
        .unwrap();
    assert_err!(
        tx.add_team_member(team.id, UserId::new(), TeamRole::Member)
            .await,
        Invalid,
        "user_id"
    );
    assert_err!(
        tx.add_team_member(TeamId::new(), member.id, TeamRole::Member)
            .await,
        Invalid,
        "team_id"
    );
    let updated = tx
        .update_team_member(team.id, member.id, TeamRole::Admin)
        .await
        .unwrap();
    assert_eq!(updated.role, TeamRole::Admin);
    assert_err!(
        tx.update_team_member(team.id, UserId::new(), TeamRole::Admin)
            .await,
        NotFound
    );
    let members = tx.list_team_members(team.id).await.unwrap();
    assert_eq!(
        members
            .iter()
            .map(|m| (m.user_id, m.role))
            .collect::<Vec<_>>(),
        vec![(owner.id, TeamRole::Owner), (member.id, TeamRole::Admin)]
    );
    let teams = tx.list_user_teams(member.id).await.unwrap();
    assert_eq!(
        teams.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        vec!["core", "other"]
    );
    let page = tx.list_teams(&PageRequest::first(1)).await.unwrap();
    assert_eq!(page.items[0].id, other.id, "newest first");
    let next = tx
        .list_teams(&PageRequest::after(page.next_cursor.unwrap(), 1))
        .await
        .unwrap();
    assert_eq!(next.items[0].id, team.id);
    assert!(next.next_cursor.is_none());

    tx.remove_team_member(team.id, member.id).await.unwrap();
    assert_err!(tx.remove_team_member(team.id, member.id).await, NotFound);
    assert_eq!(tx.list_team_members(team.id).await.unwrap().len(), 1);
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_err!(
        tx.add_team_member(team.id, owner.id, TeamRole::Member)
            .await,
        Conflict,
        "team_id, user_id"
    );
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    assert_err!(
        tx.create_team(team_named("core".into())).await,
        Conflict,
        "name"
    );
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    tx.delete_team(team.id).await.unwrap();
    assert_err!(tx.get_team(team.id).await, NotFound);
    assert_err!(tx.delete_team(team.id).await, NotFound);
    assert_eq!(tx.list_user_teams(owner.id).await.unwrap().len(), 0);
}

async fn sessions_live_until_expired_or_revoked(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let u = user(&mut tx, "s@x.io").await;
    let now = time::now();
    let open = |expires_at| NewSession {
        user_id: u.id,
        expires_at,
        ip_address: Some("10.0.0.1".into()),
        user_agent: Some("test".into()),
    };
    let a = tx
        .create_session(open(now + TimeDelta::hours(1)))
        .await
        .unwrap();
    let b = tx
        .create_session(open(now + TimeDelta::hours(2)))
        .await
        .unwrap();
    let short = tx
        .create_session(open(now + TimeDelta::minutes(1)))
        .await
        .unwrap();
    assert_ne!(a.token, b.token);
    assert!(
        !format!("{a:?}").contains(a.token.expose()),
        "the token is redacted"
    );
    let found = tx.find_session(a.token.expose(), now).await.unwrap();
    assert_eq!(found, a.session);
    assert_eq!(found.ip_address.as_deref(), Some("10.0.0.1"));
    assert_err!(tx.find_session("nope", now).await, NotFound);
    let hashed = sha256_hex(a.token.expose());
    assert_err!(tx.find_session(&hashed, now).await, NotFound);
    assert_err!(
        tx.find_session(short.token.expose(), now + TimeDelta::minutes(2))
            .await,
        NotFound
    );

    let seen = now + TimeDelta::seconds(5);
    tx.touch_session(a.session.id, seen).await.unwrap();
    let touched = tx.find_session(a.token.expose(), seen).await.unwrap();
    assert_eq!(touched.last_seen_at, Some(seen));

    tx.revoke_session(a.session.id, now).await.unwrap();
    assert_err!(tx.find_session(a.token.expose(), now).await, NotFound);
    assert_eq!(tx.revoke_user_sessions(u.id, now).await.unwrap(), 2);
    assert_err!(tx.find_session(b.token.expose(), now).await, NotFound);
    let c = tx
        .create_session(open(now + TimeDelta::hours(1)))
        .await
        .unwrap();
    assert_eq!(tx.delete_expired_sessions(now).await.unwrap(), 3);
    assert!(tx.find_session(c.token.expose(), now).await.is_ok());
    assert_eq!(
        tx.delete_expired_sessions(now + TimeDelta::hours(3))
            .await
            .unwrap(),
        1
    );
    assert_err!(tx.touch_session(c.session.id, now).await, NotFound);

    assert_err!(
        tx.create_session(NewSession {
            user_id: UserId::new(),
            ..open(now + TimeDelta::hours(1))
        })
        .await,
        Invalid,
        "user_id"
    );
    assert_err!(
        tx.create_session(open(now - TimeDelta::seconds(1))).await,
        Invalid,
        "expires_at"
    );
    assert_err!(
        tx.create_session(NewSession {
            user_agent: Some("u".repeat(513)),
            ..open(now + TimeDelta::hours(1))
        })
        .await,
        Invalid,
        "user_agent"
    );
}

async fn api_keys_are_shown_once_and_found_by_hash(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let u = user(&mut tx, "k@x.io").await;
    let now = time::now();
    let new_key = |name: &str| NewApiKey {
        user_id: Some(u.id),
        name: name.into(),
        role: Some(Role::Viewer),
        scopes: vec!["read".into()],
        expires_at: None,
    };
    let created = tx.create_api_key(new_key("ci")).await.unwrap();
    let key = created.key.expose().to_string();
    let parts: Vec<&str> = key.splitn(3, '_').collect();
    assert_eq!(parts[0], "fsk");
    assert_eq!(parts[1], created.api_key.prefix);
    assert_eq!(parts[1].len(), 8);
    assert!(parts[1].chars().all(|c| c.is_ascii_alphanumeric()));
    assert!(parts[2].len() >= 32);
    let shown = serde_json::to_string(&created.api_key).unwrap();
    assert!(!shown.contains(parts[2]) && !shown.contains(&sha256_hex(&key)));
    assert!(!format!("{created:?}").contains(parts[2]));

    let found = tx.find_api_key(&key, now).await.unwrap();
    assert_eq!(found, created.api_key);
    assert_eq!(found.scopes, vec!["read".to_string()]);
    assert_eq!(found.role, Role::Viewer);
    assert_err!(tx.find_api_key(&format!("{key}x"), now).await, NotFound);
    assert_err!(
        tx.find_api_key(&created.api_key.prefix, now).await,
        NotFound
    );

    let used = now + TimeDelta::seconds(3);
    tx.touch_api_key(found.id, used).await.unwrap();
    assert_eq!(
        tx.get_api_key(found.id).await.unwrap().last_used_at,
        Some(used)
    );
    tx.revoke_api_key(found.id, now).await.unwrap();
    assert_err!(tx.find_api_key(&key, now).await, NotFound);
    assert_eq!(
        tx.get_api_key(found.id).await.unwrap().revoked_at,
        Some(now)
    );

    let expiring = tx
        .create_api_key(NewApiKey {
            expires_at: Some(now + TimeDelta::hours(1)),
            ..new_key("short-lived")
        })
        .await
        .unwrap();
    assert!(tx.find_api_key(expiring.key.expose(), now).await.is_ok());
    assert_err!(
        tx.find_api_key(expiring.key.expose(), now + TimeDelta::hours(2))
            .await,
        NotFound
    );

    let third = tx.create_api_key(new_key("third")).await.unwrap();
    let page = tx
        .list_api_keys(u.id, &PageRequest::first(2))
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![third.api_key.id, expiring.api_key.id]
    );
    let rest = tx
        .list_api_keys(u.id, &PageRequest::after(page.next_cursor.unwrap(), 2))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert!(rest.next_cursor.is_none());
    assert!(tx
        .list_api_keys(UserId::new(), &PageRequest::first(5))
        .await
        .unwrap()
        .items
        .is_empty());

    assert_err!(
        tx.create_api_key(NewApiKey {
            user_id: Some(UserId::new()),
            ..new_key("dangling")
        })
        .await,
        Invalid,
        "user_id"
    );
    assert_err!(tx.create_api_key(new_key(" ")).await, Invalid, "name");
    assert_err!(
        tx.create_api_key(new_key(&"n".repeat(201))).await,
        Invalid,
        "name"
    );
    assert_err!(
        tx.create_api_key(NewApiKey {
            scopes: vec!["read".into(), "read".into()],
            ..new_key("dup scopes")
        })
        .await,
        Invalid,
        "scopes"
    );
    assert_err!(
        tx.create_api_key(NewApiKey {
            scopes: vec!["workflows:read".into()],
            ..new_key("unknown scope")
        })
        .await,
        Invalid,
        "scopes"
    );
    assert_err!(
        tx.create_api_key(NewApiKey {
            expires_at: Some(now - TimeDelta::seconds(1)),
            ..new_key("past")
        })
        .await,
        Invalid,
        "expires_at"
    );
    assert!(serde_json::from_value::<NewApiKey>(json!({"name": "x", "role": "root"})).is_err());
}

async fn notifications_are_read_counted_and_deleted(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let u = user(&mut tx, "n@x.io").await;
    let other = user(&mut tx, "o@x.io").await;
    let note = |title: &str| NewNotification {
        user_id: u.id,
        kind: NotificationType::ExecutionFailed,
        title: title.into(),
        message: Some("run 7 failed".into()),
        data: Some(json!({"run": 7})),
    };
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            tx.create_notification(note(&format!("n{i}")))
                .await
                .unwrap()
                .id,
        );
    }
    tx.create_notification(NewNotification {
        user_id: other.id,
        ..note("someone else's")
    })
    .await
    .unwrap();
    assert_eq!(tx.unread_notification_count(u.id).await.unwrap(), 4);

    let now = time::now();
    let read = tx.mark_notification_read(ids[1], now).await.unwrap();
    assert!(read.read);
    assert_eq!(read.read_at, Some(now));
    let again = tx
        .mark_notification_read(ids[1], now + TimeDelta::seconds(9))
        .await
        .unwrap();
    assert_eq!(again.read_at, Some(now), "the first reading is kept");
    assert_eq!(tx.unread_notification_count(u.id).await.unwrap(), 3);

    let unread = tx
        .list_notifications(
            u.id,
            &NotificationFilter { unread_only: true },
            &PageRequest::first(2),
        )
        .await
        .unwrap();
    assert_eq!(
        unread.items.iter().map(|n| n.id).collect::<Vec<_>>(),
        vec![ids[3], ids[2]]
    );
    let rest = tx
        .list_notifications(
            u.id,
            &NotificationFilter { unread_only: true },
            &PageRequest::after(unread.next_cursor.unwrap(), 2),
        )
        .await
        .unwrap();
    assert_eq!(
        rest.items.iter().map(|n| n.id).collect::<Vec<_>>(),
        vec![ids[0]]
    );
    let all = tx
        .list_notifications(
            u.id,
            &NotificationFilter::default(),
            &PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(all.items.len(), 4);
    assert_eq!(all.items[0].data, json!({"run": 7}));
    assert_eq!(all.items[0].kind, NotificationType::ExecutionFailed);
    assert_eq!(
        serde_json::to_value(&all.items[0]).unwrap()["type"],
        "execution_failed"
    );

    assert_eq!(tx.mark_all_notifications_read(u.id, now).await.unwrap(), 3);
    assert_eq!(tx.mark_all_notifications_read(u.id, now).await.unwrap(), 0);
    assert_eq!(tx.unread_notification_count(u.id).await.unwrap(), 0);
    assert_eq!(tx.unread_notification_count(other.id).await.unwrap(), 1);

    tx.delete_notification(ids[0]).await.unwrap();
    assert_err!(tx.delete_notification(ids[0]).await, NotFound);
    assert_err!(tx.mark_notification_read(ids[0], now).await, NotFound);

    assert_err!(
        tx.create_notification(NewNotification {
            user_id: UserId::new(),
            ..note("dangling")
        })
        .await,
        Invalid,
        "user_id"
    );
    assert_err!(tx.create_notification(note("")).await, Invalid, "title");
    assert_err!(
        tx.create_notification(note(&"t".repeat(501))).await,
        Invalid,
        "title"
    );
    assert_err!(
        tx.create_notification(NewNotification {
            data: Some(json!([1])),
            ..note("bad data")
        })
        .await,
        Invalid,
        "data"
    );
    assert!(serde_json::from_value::<NewNotification>(json!({
        "user_id": u.id, "type": "party", "title": "x"
    }))
    .is_err());
}

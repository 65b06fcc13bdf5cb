//! Conformance tests for what sign-in through the API needs from the identity area:
//! sessions found by token and ended by a password change (except the one that asked
//! for it), the count of active admins, and notifications read one by one.

use chrono::TimeDelta;
use flowstore::model::identity::{
    check_password, HashedPassword, Role, User, UserPatch, UserStatus,
};
use flowstore::model::identity_access::NewSession;
use flowstore::{time, Store, Tx};
use flowstore_testkit::fixtures::{notification, user_with_password, PASSWORD};

conformance!(
    a_password_change_ends_every_other_session,
    a_bad_new_password_changes_nothing,
    active_admins_are_counted,
    notifications_are_read_one_by_one,
);

/// Whether `password` is the stored password of the user with this email.
async fn signs_in(tx: &mut Box<dyn Tx>, email: &str, password: &str) -> bool {
    let u = tx.get_user_by_email(email).await.unwrap();
    check_password(u.password_hash.as_deref(), password)
}

async fn session(tx: &mut Box<dyn Tx>, u: &User) -> (String, flowstore::ids::SessionId) {
    let s = tx
        .create_session(NewSession {
            user_id: u.id,
            expires_at: time::now() + TimeDelta::hours(1),
            ip_address: None,
            user_agent: None,
        })
        .await
        .unwrap();
    (s.token.expose().to_string(), s.session.id)
}

async fn a_password_change_ends_every_other_session(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let u = user_with_password(&mut tx, "ada@example.com", Role::User).await;
    let (kept_token, kept) = session(&mut tx, &u).await;
    let (other_token, _) = session(&mut tx, &u).await;
    let other_user = user_with_password(&mut tx, "bob@example.com", Role::User).await;
    let (bobs_token, _) = session(&mut tx, &other_user).await;
    tx.commit().await.unwrap();

    let now = time::now();
    let mut tx = store.begin().await.unwrap();
    let newer = HashedPassword::new("a much newer password").unwrap();
    let changed = tx
        .set_password(u.id, &newer, Some(kept), now)
        .await
        .unwrap();
    assert_eq!(changed.id, u.id);
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.find_session(&kept_token, now).await.unwrap().id, kept);
    assert_err!(tx.find_session(&other_token, now).await, NotFound);
    assert!(
        tx.find_session(&bobs_token, now).await.is_ok(),
        "other users keep theirs"
    );
    assert!(!signs_in(&mut tx, "ada@example.com", PASSWORD).await);
    assert!(signs_in(&mut tx, "ada@example.com", "a much newer password").await);

    // Without a session to keep, every one ends; a failure counter and its throttle
    // are cleared.
    tx.record_login_failure(u.id, Some(now + TimeDelta::minutes(1)), now)
        .await
        .unwrap();
    let changed = tx.set_password(u.id, &newer, None, now).await.unwrap();
    assert_eq!(
        (changed.failed_login_count, changed.locked_until),
        (0, None)
    );
    assert_err!(tx.find_session(&kept_token, now).await, NotFound);
    assert_err!(
        tx.set_password(flowstore::ids::UserId::new(), &newer, None, now)
            .await,
        NotFound
    );
    tx.commit().await.unwrap();
}

async fn a_bad_new_password_changes_nothing(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let u = user_with_password(&mut tx, "ada@example.com", Role::User).await;
    let (token, _) = session(&mut tx, &u).await;
    let now = time::now();
    // A bad password is refused when it is hashed, before any transaction.
    assert_err!(HashedPassword::new("short"), Invalid, "password");
    assert!(tx.find_session(&token, now).await.is_ok());
    assert!(signs_in(&mut tx, "ada@example.com", PASSWORD).await);
    tx.commit().await.unwrap();
}

async fn active_admins_are_counted(store: Store) {
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.count_active_admins().await.unwrap(), 0);
    let a = user_with_password(&mut tx, "a@example.com", Role::Admin).await;
    user_with_password(&mut tx, "b@example.com", Role::Admin).await;
    user_with_password(&mut tx, "c@example.com", Role::User).await;
    assert_eq!(tx.count_active_admins().await.unwrap(), 2);
    tx.update_user(
        a.id,
        UserPatch {
            status: Some(UserStatus::Suspended),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(tx.count_active_admins().await.unwrap(), 1);
    tx.commit().await.unwrap();
}

async fn notifications_are_read_one_by_one(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let u = user_with_password(&mut tx, "ada@example.com", Role::User).await;
    let n = notification(&mut tx, u.id, "hello").await;
    let got = tx.get_notification(n.id).await.unwrap();
    assert_eq!(got, n);
    tx.delete_notification(n.id).await.unwrap();
    assert_err!(tx.get_notification(n.id).await, NotFound);
    tx.commit().await.unwrap();
}

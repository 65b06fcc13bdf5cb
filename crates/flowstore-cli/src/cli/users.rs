//! `flowstore users`: the accounts people sign in with, managed from the command line
//! (create, list, change the role, switch off and on, unlock, set a new password,
//! hand out a password-reset or email-verification token when no mail is sent).
//! The same rules as the HTTP API: the last active admin is never demoted or switched
//! off, a switched-off user's sessions end, a password is hashed before any
//! transaction opens, and each change is written to the audit log (as the system,
//! from the command line) in the transaction of the change.

use std::io::BufRead;

use clap::Subcommand;
use flowstore::{PageRequest, Store, StoreError};
use flowstore_core::crypto::SecretString;
use flowstore_core::ids::UserId;
use flowstore_core::model::audit::{ActorType, NewAuditEntry};
use flowstore_core::model::identity::{
    HashedPassword, NewUser, Role, User, UserFilter, UserPatch, UserStatus,
};
use flowstore_core::time;

/// `flowstore users …`.
#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// Create a user; with --password-stdin the first line of standard input is the
    /// password (otherwise the user has none and cannot sign in until one is set).
    Create {
        /// The email address (the sign-in name).
        #[arg(long)]
        email: String,
        /// A name to show.
        #[arg(long)]
        name: Option<String>,
        /// admin, user or viewer.
        #[arg(long, default_value = "user")]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users: ID, email, role, status, name.
    List {
        /// Only users with this role.
        #[arg(long)]
        role: Option<String>,
        /// Only users with this status (active, inactive, suspended,
        /// pending_verification).
        #[arg(long)]
        status: Option<String>,
    },
    /// Change a user's role (their API keys never do more than it allows).
    SetRole {
        /// The user's email address or ID.
        user: String,
        /// admin, user or viewer.
        role: String,
    },
    /// Switch a user off: they cannot sign in, their sessions end and their API keys
    /// stop working.
    Disable {
        /// The user's email address or ID.
        user: String,
    },
    /// Switch a user on again.
    Enable {
        /// The user's email address or ID.
        user: String,
    },
    /// Lift a sign-in lock left by wrong passwords.
    Unlock {
        /// The user's email address or ID.
        user: String,
    },
    /// Set a new password, read from the first line of standard input; the user's
    /// sessions end.
    ResetPassword {
        /// The user's email address or ID.
        user: String,
    },
    /// Make a password-reset token (usable once, for an hour, replacing an earlier
    /// one) and print it, for the user to choose a new password with
    /// `POST /api/v1/password-resets/confirm`; for when no mail is sent.
    ResetToken {
        /// The user's email address or ID.
        user: String,
    },
    /// Make an email-verification token (usable once, for a day, replacing an
    /// earlier one) and print it, for `POST /api/v1/email-verifications/confirm`;
    /// for when no mail is sent.
    VerificationToken {
        /// The user's email address or ID.
        user: String,
    },
}

/// Runs one `users` command.
pub async fn run(store: &Store, cmd: UsersCommand) -> Result<(), StoreError> {
    store.backend().check_schema().await?;
    match cmd {
        UsersCommand::Create {
            email,
            name,
            role,
            password_stdin,
        } => {
            let role: Role = role.parse()?;
            // Hashing is slow on purpose: done before the transaction opens.
            let password_hash = if password_stdin {
                Some(HashedPassword::new(read_password()?.expose())?)
            } else {
                None
            };
            let mut tx = store.begin().await?;
            let u = tx
                .create_user(NewUser {
                    email,
                    display_name: name,
                    password_hash,
                    role: Some(role),
                    ..NewUser::default()
                })
                .await?;
            audit(&mut tx, "user.create", &u, None, Some(&u)).await?;
            tx.commit().await?;
            println!("{}", u.id);
            eprintln!("created {} ({}, {})", u.email, u.role, u.status);
        }
        UsersCommand::List { role, status } => {
            let filter = UserFilter {
                role: role.as_deref().map(str::parse).transpose()?,
                status: status.as_deref().map(str::parse).transpose()?,
            };
            let mut tx = store.begin_read().await?;
            let mut page = PageRequest::first(flowstore_core::page::MAX_PAGE_SIZE);
            loop {
                let users = tx.list_users(&filter, &page).await?;
                for u in &users.items {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        u.id,
                        u.email,
                        u.role,
                        u.status,
                        u.display_name.as_deref().unwrap_or("")
                    );
                }
                match users.next_cursor {
                    Some(c) => page = PageRequest::after(c, flowstore_core::page::MAX_PAGE_SIZE),
                    None => break,
                }
            }
        }
        UsersCommand::SetRole { user, role } => {
            let role: Role = role.parse()?;
            change(
                store,
                &user,
                UserPatch {
                    role: Some(role),
                    ..UserPatch::default()
                },
            )
            .await?;
        }
        UsersCommand::Disable { user } => {
            change(
                store,
                &user,
                UserPatch {
                    status: Some(UserStatus::Inactive),
                    ..UserPatch::default()
                },
            )
            .await?;
        }
        UsersCommand::Enable { user } => {
            change(
                store,
                &user,
                UserPatch {
                    status: Some(UserStatus::Active),
                    ..UserPatch::default()
                },
            )
            .await?;
        }
        UsersCommand::Unlock { user } => {
            let mut tx = store.begin().await?;
            let before = find(&mut tx, &user).await?;
            let u = tx.unlock_user(before.id, time::now()).await?;
            audit(&mut tx, "user.unlock", &u, Some(&before), Some(&u)).await?;
            tx.commit().await?;
            println!("unlocked {}", u.email);
        }
        UsersCommand::ResetPassword { user } => {
            let hash = HashedPassword::new(read_password()?.expose())?;
            let mut tx = store.begin().await?;
            let u = find(&mut tx, &user).await?;
            let u = tx.set_password(u.id, &hash, None, time::now()).await?;
            audit(&mut tx, "user.password_change", &u, None, None).await?;
            flowstore_core::model::notify::password_changed(&mut *tx, u.id, "admin").await?;
            tx.commit().await?;
            println!("set a new password for {}; their sessions ended", u.email);
        }
        UsersCommand::ResetToken { user } => {
            let mut tx = store.begin().await?;
            let u = find(&mut tx, &user).await?;
            let token = tx.issue_reset_token(u.id, time::now()).await?;
            audit(&mut tx, "user.password_reset_request", &u, None, None).await?;
            tx.commit().await?;
            eprintln!(
                "a password-reset token for {}, usable once within an hour:",
                u.email
            );
            println!("{token}");
        }
        UsersCommand::VerificationToken { user } => {
            let mut tx = store.begin().await?;
            let u = find(&mut tx, &user).await?;
            let token = tx.issue_verification_token(u.id, time::now()).await?;
            audit(&mut tx, "user.verification_request", &u, None, None).await?;
            tx.commit().await?;
            eprintln!(
                "an email-verification token for {}, usable once within a day:",
                u.email
            );
            println!("{token}");
        }
    }
    Ok(())
}

/// The user named by an email address or an ID.
async fn find(tx: &mut Box<dyn flowstore_core::Tx>, user: &str) -> Result<User, StoreError> {
    match user.parse::<UserId>() {
        Ok(id) => tx.get_user(id).await,
        Err(_) => tx.get_user_by_email(user).await,
    }
}

/// Changes a user's role or status, refusing to demote or switch off the last active
/// admin; a user switched off loses their sessions.
async fn change(store: &Store, user: &str, patch: UserPatch) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    let before = find(&mut tx, user).await?;
    let demoted = patch.role.is_some_and(|r| r != Role::Admin)
        || patch.status.is_some_and(|s| s != UserStatus::Active);
    let active_admin = before.role == Role::Admin && before.status == UserStatus::Active;
    if active_admin && demoted && tx.count_active_admins().await? <= 1 {
        let field = if patch.role.is_some() {
            "role"
        } else {
            "status"
        };
        return Err(StoreError::conflict(
            field,
            "this is the last active admin: make another admin first",
        ));
    }
    let after = tx.update_user(before.id, patch).await?;
    if after.status != UserStatus::Active {
        tx.revoke_user_sessions(after.id, time::now()).await?;
    }
    audit(&mut tx, "user.update", &after, Some(&before), Some(&after)).await?;
    tx.commit().await?;
    println!("{}\t{}\t{}", after.email, after.role, after.status);
    Ok(())
}

/// Appends the audit entry of a change made from the command line.
async fn audit(
    tx: &mut Box<dyn flowstore_core::Tx>,
    action: &str,
    user: &User,
    before: Option<&User>,
    after: Option<&User>,
) -> Result<(), StoreError> {
    let mut entry = NewAuditEntry::new(
        ActorType::System,
        Some("command line".into()),
        action,
        "user",
        Some(user.id.to_string()),
    );
    entry.before = before.and_then(|u| serde_json::to_value(u).ok());
    entry.after = after.and_then(|u| serde_json::to_value(u).ok());
    tx.append_audit(entry).await?;
    Ok(())
}

/// The first line of standard input, without its line ending.
fn read_password() -> Result<SecretString, StoreError> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| StoreError::invalid("password", format!("cannot read standard input: {e}")))?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(StoreError::invalid(
            "password",
            "standard input held no password (give it on the first line)",
        ));
    }
    Ok(SecretString::new(password))
}

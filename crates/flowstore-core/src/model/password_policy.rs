//! What a new password must be, wherever one is set (a user created through the API
//! or the command line, a password changed, a password reset): long enough and not
//! too long, none of the 10,000 most common passwords (a list shipped in the binary,
//! `common_passwords.txt`, read once on first use), and hard enough to guess by
//! zxcvbn's estimate (a score of at least [`MIN_SCORE`] out of 4). A refusal is
//! invalid `password` with the reason, which the server answers 422.

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::model::identity::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
use crate::{validate, StoreError, StoreResult};

/// The least zxcvbn score a new password must reach: 3 is "safely unguessable",
/// about 10^10 guesses or more.
pub const MIN_SCORE: u8 = 3;

/// The common passwords, lowercased, one a line after a `#` header.
static LIST: &str = include_str!("common_passwords.txt");

fn common() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        LIST.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// Whether `password` (whatever its case) is one of the common passwords shipped
/// with flowstore.
pub fn is_common(password: &str) -> bool {
    common().contains(password.to_lowercase().as_str())
}

/// Refuses a password that breaks the policy, as invalid `password` with the reason.
/// Cheap beside hashing (zxcvbn reads at most the first 100 characters), but call it
/// where the hashing happens: before any transaction.
pub fn check(password: &str) -> StoreResult<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(StoreError::invalid(
            "password",
            format!("must be at least {MIN_PASSWORD_CHARS} characters long"),
        ));
    }
    validate::bounded("password", password, MAX_PASSWORD_CHARS)?;
    if is_common(password) {
        return Err(StoreError::invalid(
            "password",
            "is one of the most common passwords: choose another",
        ));
    }
    let estimate = zxcvbn::zxcvbn(password, &[]);
    let score = u8::from(estimate.score());
    if score < MIN_SCORE {
        let hint = estimate
            .feedback()
            .and_then(|f| f.warning())
            .map(|w| format!(" ({w})"))
            .unwrap_or_default();
        return Err(StoreError::invalid(
            "password",
            format!(
                "is too easy to guess{hint}: its strength is {score} of 4, at least \
                 {MIN_SCORE} is needed; a few unrelated words or a longer password will do"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(p: &str) -> String {
        match check(p) {
            Err(StoreError::Invalid { field, reason }) => {
                assert_eq!(field, "password");
                reason
            }
            other => panic!("{p:?} should be refused, got {other:?}"),
        }
    }

    #[test]
    fn the_list_is_read_once_and_whole() {
        assert_eq!(common().len(), 10_000);
        assert!(is_common("password1"));
        assert!(is_common("PassWord1"), "whatever the case");
        assert!(!is_common("correct horse battery"));
    }

    #[test]
    fn short_common_and_guessable_passwords_are_refused() {
        assert!(reason("short").contains("at least 8 characters"));
        assert!(reason("Password1").contains("most common"));
        assert!(reason("baseball").contains("most common"));
        assert!(reason("aaaaaaaaaaaa").contains("too easy to guess"));
        assert!(reason("abcdefgh1234").contains("too easy to guess"));
        assert!(reason(&"x".repeat(MAX_PASSWORD_CHARS + 1)).contains("1024"));
    }

    #[test]
    fn strong_passwords_pass() {
        for p in [
            "correct horse battery",
            "tangerine kettle orbit",
            "a much newer password",
            &"long and random enough: 7f3#Qz".repeat(30),
        ] {
            assert!(check(p).is_ok(), "{p:?} passes: {:?}", check(p));
        }
    }
}

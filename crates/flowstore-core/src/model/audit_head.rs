//! The signed head of the audit log: the `seq` and hash of the newest entry, with
//! an HMAC-SHA256 made with a key derived from the encryption key
//! ([`Keyring::sign_audit`]), which is never stored in the database.
//!
//! The hash chain alone shows an entry changed or removed in the middle of the log,
//! but not the newest entries removed: what is left is still a valid chain. The head
//! is rewritten with every append, in the same transaction and under the same lock,
//! so it always names the newest entry; verification compares the newest stored entry
//! with it. Someone who can write to the database but does not hold the key cannot
//! make a head that verifies, so removing the newest entries (with or without the
//! head row, which is required once the log has entries) is found.
//!
//! What it does not prove: whoever holds the key can sign any head; and a head read
//! earlier and written back after removing exactly the entries written since then
//! verifies (the database alone cannot tell an old state from the current one; keep
//! the `last_seq` and `last_hash` of a verification elsewhere to detect that).

use serde::{Deserialize, Serialize};

use crate::crypto::Keyring;
use crate::{StoreError, StoreResult};

/// The head row as stored (table `audit_head`, one row).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct AuditHead {
    /// The `seq` of the newest entry when the head was signed.
    pub seq: i64,
    /// That entry's hash.
    pub hash: String,
    /// The ID of the key whose MAC key signed it.
    pub key_id: String,
    /// HMAC-SHA256 (hex) over [`AuditHead::message`].
    pub mac: String,
}

/// What a head's signature says, checked with a keyring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadSignature {
    /// Signed with a key of the ring, and unchanged since.
    Valid,
    /// Signed with a key the ring does not hold: it cannot be checked.
    UnknownKey,
    /// The MAC is wrong: the head was written or changed without the key.
    Forged,
}

impl AuditHead {
    /// The text a head's MAC covers. Versioned, so that a later format cannot be
    /// confused with this one.
    fn message(seq: i64, hash: &str) -> String {
        format!("flowstore audit head v1\n{seq}\n{hash}")
    }

    /// A head for the entry `seq` with `hash`, signed with the ring's current key.
    pub fn sign(ring: &Keyring, seq: i64, hash: &str) -> AuditHead {
        let (key_id, mac) = ring.sign_audit(Self::message(seq, hash).as_bytes());
        AuditHead {
            seq,
            hash: hash.to_string(),
            key_id,
            mac,
        }
    }

    /// Checks the signature with `ring`.
    pub fn signature(&self, ring: &Keyring) -> HeadSignature {
        let message = Self::message(self.seq, &self.hash);
        match ring.verify_audit(&self.key_id, message.as_bytes(), &self.mac) {
            Some(true) => HeadSignature::Valid,
            Some(false) => HeadSignature::Forged,
            None => HeadSignature::UnknownKey,
        }
    }

    fn unknown_key(&self) -> StoreError {
        StoreError::internal(format!(
            "the audit log's head is signed with key {} but that key is not configured; \
             configure it (ENCRYPTION_KEY, or ENCRYPTION_KEY_PREVIOUS during a rotation) \
             and run `flowstore keys rotate` to sign the head with the current key",
            self.key_id
        ))
    }
}

/// Where the next entry chains from, and whether the head is signed again after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NextLink {
    /// The `seq` and hash the new entry follows (`None`: the genesis).
    pub after: Option<(i64, String)>,
    /// Sign the head over the new entry.
    pub sign: bool,
}

/// Decides how an append goes on, given the newest stored entry (`tail`) and the
/// head, read under the append lock.
///
/// - A head that verifies is where the chain goes on, even when entries after it
///   were removed: the new entry then follows a gap that verification reports for
///   good, instead of closing over it. The head is signed again over the new entry.
/// - Entries stored beyond a valid head were not written by flowstore: the new one
///   follows them but the head is left as it is, so verification keeps reporting them.
/// - A head that does not verify, or a missing head when the log has entries, is
///   evidence too: the entry follows the stored chain and the head stays as it is.
/// - A head signed with a key that is not configured cannot be checked: the append
///   fails with an error naming the key (as opening a value sealed with it does).
pub fn next_link(
    ring: &Keyring,
    tail: Option<(i64, String)>,
    head: Option<&AuditHead>,
) -> StoreResult<NextLink> {
    let Some(head) = head else {
        return Ok(NextLink {
            sign: tail.is_none(),
            after: tail,
        });
    };
    match head.signature(ring) {
        HeadSignature::UnknownKey => Err(head.unknown_key()),
        HeadSignature::Forged => Ok(NextLink {
            after: tail,
            sign: false,
        }),
        HeadSignature::Valid => match tail {
            Some((seq, hash)) if seq > head.seq => Ok(NextLink {
                after: Some((seq, hash)),
                sign: false,
            }),
            _ => Ok(NextLink {
                after: Some((head.seq, head.hash.clone())),
                sign: true,
            }),
        },
    }
}

/// What is wrong at the end of the log, according to its signed head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeadMismatch {
    /// The `seq` the head names as the newest entry; null when there is no head.
    pub head_seq: Option<i64>,
    /// The `seq` of the newest stored entry, 0 when none is stored.
    pub newest_seq: i64,
    /// The first `seq` the head proves was written and is no longer stored.
    pub missing_from: Option<i64>,
    /// The last such `seq` (the head's).
    pub missing_to: Option<i64>,
    /// What is wrong.
    pub reason: String,
}

/// What a log without a head row says: nothing when it is empty; when it has
/// entries, that the head was removed (the head is required once there are entries).
pub fn missing_head(tail: Option<(i64, &str)>) -> Option<HeadMismatch> {
    tail.map(|(seq, _)| HeadMismatch {
        head_seq: None,
        newest_seq: seq,
        missing_from: None,
        missing_to: None,
        reason: format!(
            "the log holds entries up to seq {seq} but no signed head: the head row was \
             removed, so entries after seq {seq} may have been removed with it"
        ),
    })
}

/// Compares the newest stored entry (`tail`) with the head; `None` when they agree.
pub fn compare_head(
    ring: &Keyring,
    tail: Option<(i64, &str)>,
    head: &AuditHead,
) -> Option<HeadMismatch> {
    let newest_seq = tail.map_or(0, |(s, _)| s);
    let mismatch = |head_seq, missing: Option<(i64, i64)>, reason: String| HeadMismatch {
        head_seq,
        newest_seq,
        missing_from: missing.map(|m| m.0),
        missing_to: missing.map(|m| m.1),
        reason,
    };
    let at = Some(head.seq);
    match head.signature(ring) {
        HeadSignature::UnknownKey => {
            return Some(mismatch(
                at,
                None,
                format!(
                    "the head is signed with key {}, which is not configured, so it cannot \
                     be checked; configure that key (ENCRYPTION_KEY_PREVIOUS) and run \
                     `flowstore keys rotate`",
                    head.key_id
                ),
            ))
        }
        HeadSignature::Forged => {
            return Some(mismatch(
                at,
                None,
                "the head's signature does not verify: it was written without the key, \
                 so the end of the log cannot be trusted"
                    .into(),
            ))
        }
        HeadSignature::Valid => {}
    }
    match tail {
        _ if newest_seq < head.seq => Some(mismatch(
            at,
            Some((newest_seq + 1, head.seq)),
            format!(
                "entries {}..={} are missing: the signed head names seq {} as the newest \
                 entry but the newest stored is seq {newest_seq}",
                newest_seq + 1,
                head.seq,
                head.seq
            ),
        )),
        Some((seq, _)) if seq > head.seq => Some(mismatch(
            at,
            None,
            format!(
                "entries {}..={seq} follow the signed head (seq {}) and were not written \
                 by flowstore",
                head.seq + 1,
                head.seq
            ),
        )),
        Some((_, hash)) if hash != head.hash => Some(mismatch(
            at,
            None,
            format!(
                "the newest entry (seq {}) is not the one the head signed: it was replaced",
                head.seq
            ),
        )),
        _ => None,
    }
}

/// What re-signing the head under the current key did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadResign {
    /// The log has no head (it is empty).
    Absent,
    /// The head was already signed with the current key.
    Current,
    /// The head verified with its old key and is now signed with the current one.
    Resigned,
    /// The head's signature does not verify: it was left as it is (`flowstore
    /// check` reports it).
    Forged,
}

/// The head `head` signed again with the current key when that is needed and safe:
/// only a head whose signature verifies is signed again, and its `seq` and hash are
/// kept as they are (so a mismatch with the log stays visible).
pub fn resign_head(
    ring: &Keyring,
    head: &AuditHead,
) -> StoreResult<(HeadResign, Option<AuditHead>)> {
    if head.key_id == ring.current_id() {
        return Ok((HeadResign::Current, None));
    }
    match head.signature(ring) {
        HeadSignature::Valid => Ok((
            HeadResign::Resigned,
            Some(AuditHead::sign(ring, head.seq, &head.hash)),
        )),
        HeadSignature::Forged => Ok((HeadResign::Forged, None)),
        HeadSignature::UnknownKey => Err(head.unknown_key()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Key;

    fn ring() -> Keyring {
        Keyring::new(Key::generate().0)
    }

    const H1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const H2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn an_intact_end_agrees_with_its_head() {
        let r = ring();
        let head = AuditHead::sign(&r, 2, H2);
        assert_eq!(compare_head(&r, Some((2, H2)), &head), None);
        assert_eq!(missing_head(None), None);
    }

    #[test]
    fn a_cut_tail_names_what_is_missing() {
        let r = ring();
        let head = AuditHead::sign(&r, 5, H2);
        let m = compare_head(&r, Some((3, H1)), &head).unwrap();
        assert_eq!((m.missing_from, m.missing_to), (Some(4), Some(5)));
        assert!(m.reason.contains("4..=5"), "{}", m.reason);
        let all = compare_head(&r, None, &head).unwrap();
        assert_eq!((all.missing_from, all.missing_to), (Some(1), Some(5)));
        let gone = missing_head(Some((3, H1))).unwrap();
        assert_eq!(gone.head_seq, None);
        assert!(gone.reason.contains("no signed head"));
    }

    #[test]
    fn a_forged_or_replaced_head_is_found() {
        let r = ring();
        let mut forged = AuditHead::sign(&r, 5, H2);
        forged.seq = 3;
        let m = compare_head(&r, Some((3, H2)), &forged).unwrap();
        assert!(m.reason.contains("does not verify"), "{}", m.reason);
        let other_key = AuditHead::sign(&ring(), 3, H2);
        assert_eq!(
            compare_head(&r, Some((3, H2)), &other_key)
                .unwrap()
                .missing_from,
            None
        );
        let head = AuditHead::sign(&r, 3, H2);
        assert!(compare_head(&r, Some((3, H1)), &head)
            .unwrap()
            .reason
            .contains("replaced"));
        assert!(compare_head(&r, Some((4, H1)), &head)
            .unwrap()
            .reason
            .contains("4..=4"));
    }

    #[test]
    fn appends_go_on_from_a_valid_head_only() {
        let r = ring();
        let empty = next_link(&r, None, None).unwrap();
        assert_eq!((empty.after, empty.sign), (None, true));
        let head = AuditHead::sign(&r, 5, H2);
        // After a cut the chain goes on from the head, over a gap that stays visible.
        let cut = next_link(&r, Some((3, H1.into())), Some(&head)).unwrap();
        assert_eq!((cut.after, cut.sign), (Some((5, H2.into())), true));
        let extra = next_link(&r, Some((7, H1.into())), Some(&head)).unwrap();
        assert_eq!((extra.after, extra.sign), (Some((7, H1.into())), false));
        let missing = next_link(&r, Some((3, H1.into())), None).unwrap();
        assert_eq!((missing.after, missing.sign), (Some((3, H1.into())), false));
        let mut forged = head.clone();
        forged.mac = "00".repeat(32);
        assert!(
            !next_link(&r, Some((5, H2.into())), Some(&forged))
                .unwrap()
                .sign
        );
        let foreign = AuditHead::sign(&ring(), 5, H2);
        match next_link(&r, Some((5, H2.into())), Some(&foreign)) {
            Err(StoreError::Internal(msg)) => assert!(msg.contains("not configured"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_rotation_signs_a_valid_head_again_and_keeps_its_place() {
        let old = Key::generate().0;
        let head = AuditHead::sign(&Keyring::new(old.clone()), 4, H1);
        let rotated = Keyring::new(Key::generate().0).with_previous(old);
        let (what, new) = resign_head(&rotated, &head).unwrap();
        let new = new.unwrap();
        assert_eq!(what, HeadResign::Resigned);
        assert_eq!((new.seq, new.hash.as_str()), (4, H1));
        assert_eq!(new.key_id, rotated.current_id());
        assert_eq!(new.signature(&rotated), HeadSignature::Valid);
        assert_eq!(resign_head(&rotated, &new).unwrap().0, HeadResign::Current);
        let mut forged = head.clone();
        forged.seq = 9;
        assert_eq!(
            resign_head(&rotated, &forged).unwrap(),
            (HeadResign::Forged, None)
        );
        assert!(resign_head(&ring(), &head).is_err());
    }
}

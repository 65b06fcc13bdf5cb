//! The hash chain of the audit log: the canonical form of an entry, its hash, and
//! the walk that verifies a chain.
//!
//! The canonical form must come out the same whichever backend the entry was read
//! from, after a backup moved it from one to the other, and whatever the version of
//! the JSON library. So it is built from values, never from stored text, and written
//! by this file alone: object keys are sorted, there is no whitespace, strings escape
//! only quotes, backslashes and control characters, instants have exactly six
//! fractional digits, and numbers are written without exponent, the way they read
//! back from PostgreSQL's JSONB (which keeps `1e16` as `10000000000000000` and `-0`
//! as `0`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crypto::sha256_hex;
use crate::model::audit::AuditEntry;
use crate::model::audit_head::HeadMismatch;

/// The `prev_hash` of the first entry: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The result of walking the chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainVerification {
    /// Entries checked (up to and including the first broken one).
    pub checked: u64,
    /// The `seq` of the last entry that verified, 0 when none did.
    pub last_seq: i64,
    /// The hash of the last entry that verified ([`GENESIS_HASH`] when none did).
    pub last_hash: String,
    /// The first entry where the chain breaks, if it does.
    pub first_broken: Option<BrokenLink>,
    /// What the signed head says is wrong at the end of the log (entries removed
    /// from the end, a head removed or written without the key), if anything.
    pub head_mismatch: Option<HeadMismatch>,
}

impl ChainVerification {
    /// True when every entry verified and the newest one is the signed head's.
    pub fn is_intact(&self) -> bool {
        self.first_broken.is_none() && self.head_mismatch.is_none()
    }
}

/// Where and why the chain breaks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BrokenLink {
    /// The `seq` of the first entry that does not verify.
    pub seq: i64,
    /// Its ID.
    pub id: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Walks entries in `seq` order, checking each against the one before.
#[derive(Debug)]
pub struct ChainVerifier {
    checked: u64,
    last_seq: i64,
    last_hash: String,
    broken: Option<BrokenLink>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            checked: 0,
            last_seq: 0,
            last_hash: GENESIS_HASH.to_string(),
            broken: None,
        }
    }
}

impl ChainVerifier {
    /// Checks the next entry; false once the chain is broken (later entries are not
    /// looked at: the first break is what an operator needs).
    pub fn push(&mut self, e: &AuditEntry) -> bool {
        if self.broken.is_some() {
            return false;
        }
        self.checked += 1;
        let reason = if e.seq != self.last_seq + 1 {
            Some(format!(
                "seq {} follows seq {}: entries are missing",
                e.seq, self.last_seq
            ))
        } else if e.prev_hash != self.last_hash {
            Some("prev_hash is not the hash of the entry before: an entry before it was changed or removed".to_string())
        } else if entry_hash(e) != e.hash {
            Some(
                "the entry does not match its hash: it was changed after it was written"
                    .to_string(),
            )
        } else {
            None
        };
        match reason {
            Some(reason) => {
                self.broken = Some(BrokenLink {
                    seq: e.seq,
                    id: e.id.to_string(),
                    reason,
                });
                false
            }
            None => {
                self.last_seq = e.seq;
                self.last_hash = e.hash.clone();
                true
            }
        }
    }

    /// The result so far.
    pub fn finish(self) -> ChainVerification {
        ChainVerification {
            checked: self.checked,
            last_seq: self.last_seq,
            last_hash: self.last_hash,
            first_broken: self.broken,
            head_mismatch: None,
        }
    }
}

/// SHA-256 (hex) over the entry's `prev_hash`, a newline and its canonical form.
pub fn entry_hash(e: &AuditEntry) -> String {
    let mut text = String::with_capacity(256);
    text.push_str(&e.prev_hash);
    text.push('\n');
    text.push_str(&canonical_entry(e));
    sha256_hex(&text)
}

/// The canonical form of every field but the hashes: a JSON array in a fixed order.
pub fn canonical_entry(e: &AuditEntry) -> String {
    let opt = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
    let fields = [
        Value::from(e.seq),
        Value::String(e.id.to_string()),
        Value::String(e.actor_type.as_str().to_string()),
        opt(&e.actor_id),
        Value::String(e.action.clone()),
        Value::String(e.entity_type.clone()),
        opt(&e.entity_id),
        e.before.clone().unwrap_or(Value::Null),
        e.after.clone().unwrap_or(Value::Null),
        opt(&e.ip_address),
        opt(&e.request_id),
        Value::String(e.created_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
    ];
    let mut out = String::new();
    canonical(&Value::Array(fields.to_vec()), &mut out);
    out
}

/// Writes `v` canonically: sorted keys, no whitespace, numbers as JSONB returns them.
pub fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::String(s) => string(s, out),
        Value::Number(n) => out.push_str(&canonical_number(n)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(k, out);
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
    }
}

/// A JSON string: `"` and `\` escaped, control characters as `\u00XX`, everything
/// else as it is.
fn string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Integers in decimal; floats in the shortest decimal that reads back the same,
/// without exponent (so `3.0` is `3` and `1e20` is 21 digits, as JSONB returns
/// them); negative zero as `0`.
fn canonical_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    match n.as_f64() {
        // Negative zero too: the pattern compares with ==.
        Some(0.0) => "0".to_string(),
        Some(f) => format!("{f}"),
        None => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::audit::{ActorType, NewAuditEntry};
    use serde_json::json;

    fn entry(prev: Option<(i64, &str)>) -> AuditEntry {
        let mut n = NewAuditEntry::new(
            ActorType::User,
            Some("u1".into()),
            "workflow.update",
            "workflow",
            Some("w1".into()),
        );
        n.before = Some(json!({"b": 1, "a": [1.5, null, "x"]}));
        n.after = Some(json!({"a": 2}));
        n.into_entry(prev, crate::time::now()).unwrap()
    }

    #[test]
    fn values_are_written_as_jsonb_returns_them() {
        let mut out = String::new();
        let v =
            json!({"z": 1e16, "a": -0.0, "m": 3.0, "f": 0.1, "big": 1e20, "s": "q\"b\\n\n\u{1}é"});
        canonical(&v, &mut out);
        assert_eq!(
            out,
            r#"{"a":0,"big":100000000000000000000,"f":0.1,"m":3,"s":"q\"b\\n\u000a\u0001é","z":10000000000000000}"#
        );
        // The same values as JSONB hands them back give the same canonical form.
        let back: Value = serde_json::from_str(
            r#"{"z": 10000000000000000, "a": 0, "m": 3.0, "f": 0.1,
                "big": 100000000000000000000, "s": "q\"b\\n\n\u0001\u00e9"}"#,
        )
        .unwrap();
        let mut again = String::new();
        canonical(&back, &mut again);
        assert_eq!(out, again);
    }

    #[test]
    fn a_chain_verifies_and_a_change_breaks_it() {
        let a = entry(None);
        let b = entry(Some((a.seq, &a.hash)));
        let mut v = ChainVerifier::default();
        assert!(v.push(&a) && v.push(&b));
        assert!(v.finish().is_intact());

        let mut changed = b.clone();
        changed.after = Some(json!({"a": 3}));
        let mut v = ChainVerifier::default();
        assert!(v.push(&a));
        assert!(!v.push(&changed));
        assert_eq!(v.finish().first_broken.unwrap().seq, 2);

        let mut v = ChainVerifier::default();
        assert!(!v.push(&b), "an entry after a missing one breaks the chain");
    }
}

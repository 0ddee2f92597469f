//! The tamper-evident audit log: one entry per security-relevant event, each carrying the hash of
//! the entry before it.
//!
//! The hash of an entry covers its sequence number, time, actor, action, subject, detail and the
//! previous entry's hash, so changing, deleting or reordering any stored entry breaks the chain
//! from that point on. The first entry's `prev_hash` is [`GENESIS_HASH`]. Whoever keeps the head
//! hash (the last entry's) somewhere else can later also detect entries cut off the end.
//!
//! Encoding hashed (SHA-256), with the building blocks of the catalog encoding (`u64`/`i64` 8
//! bytes big-endian; a string is its UTF-8 length as `u64` then the bytes; an absent subject is
//! the byte 0, a present one the byte 1 then the string):
//!
//! ```text
//! "lifeline/audit/v1\0", seq u64, at (Unix milliseconds) i64, actor, action, subject,
//! detail (compact JSON, object keys sorted), prev_hash (64 hex digits)
//! ```

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Domain tag of an audit entry hash.
const TAG: &[u8] = b"lifeline/audit/v1\0";

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit log entry as stored, listed and exported (one JSON object per line in
/// `audit export --format jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// 1, 2, 3, ... in the order the entries were appended.
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who did it: a user name, `machine:<id>` for an agent, `anonymous` for a caller that
    /// could not be identified, `collector` for the collector itself.
    pub actor: String,
    /// What happened, dotted: `run.request`, `catalog.publish`, `auth.failure`, ...
    pub action: String,
    /// What it happened to: `machine:<id>`, `run:<id>`, `user:<name>`, ...
    #[serde(default)]
    pub subject: Option<String>,
    /// Event details (a JSON object).
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEntry {
    /// The hash this entry must carry, given its fields and `prev_hash`.
    pub fn compute_hash(&self) -> String {
        entry_hash(
            self.seq,
            self.at,
            &self.actor,
            &self.action,
            self.subject.as_deref(),
            &self.detail,
            &self.prev_hash,
        )
    }
}

/// Unix milliseconds: the precision the hash covers (stored times are whole milliseconds).
pub fn unix_millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The hash of an entry with these fields.
pub fn entry_hash(
    seq: u64,
    at: OffsetDateTime,
    actor: &str,
    action: &str,
    subject: Option<&str>,
    detail: &serde_json::Value,
    prev_hash: &str,
) -> String {
    fn str(buf: &mut Vec<u8>, s: &str) {
        buf.extend_from_slice(&(s.len() as u64).to_be_bytes());
        buf.extend_from_slice(s.as_bytes());
    }
    let mut buf = TAG.to_vec();
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(&unix_millis(at).to_be_bytes());
    str(&mut buf, actor);
    str(&mut buf, action);
    match subject {
        None => buf.push(0),
        Some(s) => {
            buf.push(1);
            str(&mut buf, s);
        }
    }
    str(&mut buf, &canonical_json(detail));
    str(&mut buf, prev_hash);
    digest::digest(&digest::SHA256, &buf)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compact JSON with object keys sorted at every level, so a detail reads back from storage or
/// an export to the same text whatever order its keys arrive in.
pub fn canonical_json(value: &serde_json::Value) -> String {
    fn write(out: &mut String, value: &serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(key.clone()).to_string());
                    out.push(':');
                    if let Some(v) = map.get(key) {
                        write(out, v);
                    }
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(out, item);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(&mut out, value);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry() -> AuditEntry {
        let at = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
        let mut e = AuditEntry {
            seq: 1,
            at,
            actor: "alice".into(),
            action: "run.request".into(),
            subject: Some("run:7".into()),
            detail: json!({"b": 1, "a": "x"}),
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
        };
        e.hash = e.compute_hash();
        e
    }

    #[test]
    fn every_field_is_covered_by_the_hash() {
        let e = entry();
        assert_eq!(e.hash.len(), 64);
        let changed: Vec<AuditEntry> = vec![
            AuditEntry {
                seq: 2,
                ..e.clone()
            },
            AuditEntry {
                at: e.at + time::Duration::milliseconds(1),
                ..e.clone()
            },
            AuditEntry {
                actor: "mallory".into(),
                ..e.clone()
            },
            AuditEntry {
                action: "run.approve".into(),
                ..e.clone()
            },
            AuditEntry {
                subject: None,
                ..e.clone()
            },
            AuditEntry {
                detail: json!({"b": 2, "a": "x"}),
                ..e.clone()
            },
            AuditEntry {
                prev_hash: "1".repeat(64),
                ..e.clone()
            },
        ];
        for c in changed {
            assert_ne!(c.compute_hash(), e.hash, "{c:?}");
        }
    }

    #[test]
    fn the_hash_survives_a_json_round_trip() {
        let e = entry();
        let line = serde_json::to_string(&e).unwrap();
        let back: AuditEntry = serde_json::from_str(&line).unwrap();
        assert_eq!(back.compute_hash(), e.hash);
        assert_eq!(canonical_json(&back.detail), r#"{"a":"x","b":1}"#);
    }
}

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
//!
//! [`ChainVerifier`] checks a log as listed, entry by entry, and names the first altered,
//! missing, reordered or duplicated entry (its doc comment states the rules).

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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
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
    let body = hashed_body(at, actor, action, subject, detail, prev_hash);
    hex(digest_at(seq, &body).as_ref())
}

/// Everything an entry's hash covers after its sequence number. Kept apart so the verifier can
/// ask cheaply whether an entry's content belongs at another position.
fn hashed_body(
    at: OffsetDateTime,
    actor: &str,
    action: &str,
    subject: Option<&str>,
    detail: &serde_json::Value,
    prev_hash: &str,
) -> Vec<u8> {
    fn str(buf: &mut Vec<u8>, s: &str) {
        buf.extend_from_slice(&(s.len() as u64).to_be_bytes());
        buf.extend_from_slice(s.as_bytes());
    }
    let mut buf = Vec::new();
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
    buf
}

fn digest_at(seq: u64, body: &[u8]) -> digest::Digest {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(TAG);
    context.update(&seq.to_be_bytes());
    context.update(body);
    context.finish()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `text` has the form of an entry hash: 64 lowercase hexadecimal digits.
pub fn is_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    if !is_hash(text) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let digit = |b: u8| match b {
            b'0'..=b'9' => b - b'0',
            _ => b - b'a' + 10,
        };
        out[i] = (digit(pair[0]) << 4) | digit(pair[1]);
    }
    Some(out)
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

/// Most entries one `GET /api/v1/audit` returns; clients page with `after_seq`.
pub const LIST_LIMIT_MAX: u32 = 1000;
/// Entries one `GET /api/v1/audit` returns without `limit`.
pub const LIST_LIMIT_DEFAULT: u32 = 100;

/// Body of `GET /api/v1/audit/verify`: the collector's own verification of its log. A client
/// that does not trust the collector verifies the entries itself instead (`audit verify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainReport {
    pub intact: bool,
    /// Entries in the intact chain, or read before the verdict.
    pub entries: u64,
    /// The last entry's hash, when intact.
    pub head: Option<String>,
    /// The first problem, when not intact.
    pub problem: Option<ChainBreak>,
    /// The verdict in words.
    pub message: String,
}

impl ChainReport {
    /// The report of a verification that read `read` entries.
    pub fn new(verdict: Result<ChainSummary, ChainBreak>, read: u64) -> ChainReport {
        match verdict {
            Ok(summary) => ChainReport {
                intact: true,
                entries: summary.entries,
                message: format!(
                    "audit chain intact: {} entries; head {}",
                    summary.entries, summary.head
                ),
                head: Some(summary.head),
                problem: None,
            },
            Err(problem) => ChainReport {
                intact: false,
                entries: read,
                head: None,
                message: problem.to_string(),
                problem: Some(problem),
            },
        }
    }
}

/// Prefix of the `hash` the collector lists for a stored row it cannot read (a `detail` that is
/// not JSON, a NULL where text belongs, ...), followed by the unreadable columns. No content
/// hashes to such a value, so verification reports that entry as altered instead of failing.
pub const UNREADABLE_PREFIX: &str = "unreadable: ";

/// What an intact chain looks like: how many entries, and the last one's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainSummary {
    pub entries: u64,
    /// The last entry's hash; [`GENESIS_HASH`] for an empty log.
    pub head: String,
}

/// The first problem [`ChainVerifier`] found. `Display` says it in plain words, naming the entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChainBreak {
    /// The entry's hash does not match its content, and the content belongs at no other
    /// position: a field was changed (or the stored row cannot be read: `unreadable` names the
    /// columns).
    #[error("entry {seq} was altered: {}", altered_reason(.unreadable.as_deref()))]
    Altered {
        seq: u64,
        unreadable: Option<String>,
    },
    /// Entries `seq..=last` are absent, and none of them is stored elsewhere in the log.
    #[error("{}", missing_message(*.seq, *.last))]
    Missing { seq: u64, last: u64 },
    /// The entry is intact at its position but was not chained to the entry before it: an
    /// entry between them was removed (and the rest renumbered), or the one before it was
    /// rewritten with a freshly computed hash.
    #[error("{}", unlinked_message(*.seq))]
    Unlinked { seq: u64 },
    /// Position `seq` holds, intact, the entry whose hash was computed for position
    /// `belongs_at`: sequence numbers were swapped or changed.
    #[error(
        "entry {seq} is out of order: the entry stored as {seq} belongs at position \
         {belongs_at} (entries were reordered)"
    )]
    Reordered { seq: u64, belongs_at: u64 },
    /// The entry for position `seq` is missing from its place but stored, intact, as
    /// `stored_as`.
    #[error("entry {seq} was moved: it is stored as entry {stored_as} (entries were reordered)")]
    Moved { seq: u64, stored_as: u64 },
    /// A second entry for a position already taken: the entry stored as `seq` is a copy of (or
    /// was written for) position `of`.
    #[error("{}", duplicate_message(*.seq, *.of))]
    Duplicate { seq: u64, of: u64 },
    /// The list is not in sequence order (only a hand-edited export can be): `seq` comes after
    /// `after`, or first while it is not 1.
    #[error("{}", out_of_order_message(*.seq, *.after))]
    OutOfOrder { seq: u64, after: Option<u64> },
    /// The chain is intact, but the head hash kept from earlier is not one of its entries:
    /// entries were cut off the end, or the whole log was rewritten.
    #[error("{}", head_not_found_message(.head, *.entries))]
    HeadNotFound { head: String, entries: u64 },
}

fn altered_reason(unreadable: Option<&str>) -> String {
    match unreadable {
        Some(columns) => format!("its stored {columns} cannot be read"),
        None => "its hash does not match its content".to_owned(),
    }
}

fn missing_message(seq: u64, last: u64) -> String {
    let before = seq.saturating_sub(1);
    let after = last.saturating_add(1);
    if seq == last {
        format!("entry {seq} is missing: entry {before} is followed by entry {after}")
    } else {
        format!("entries {seq} to {last} are missing: entry {before} is followed by entry {after}")
    }
}

fn unlinked_message(seq: u64) -> String {
    if seq <= 1 {
        format!(
            "entry {seq} does not start the chain: its previous-entry hash is not the genesis hash"
        )
    } else {
        format!(
            "entry {seq} does not follow entry {}: its previous-entry hash does not match (an \
             entry was removed, or the one before it was rewritten)",
            seq - 1
        )
    }
}

fn head_not_found_message(head: &str, entries: u64) -> String {
    let what = if entries == 0 {
        "the log is empty, but".to_owned()
    } else {
        format!("the chain of {entries} entries is intact, but")
    };
    format!(
        "{what} the head {head} kept from earlier is not in it: entries were cut off the end \
         or the log was rewritten"
    )
}

fn duplicate_message(seq: u64, of: u64) -> String {
    if seq == of {
        format!("entry {seq} appears more than once")
    } else {
        format!(
            "entry {seq} is a duplicate: its content belongs at position {of}, which is already taken"
        )
    }
}

fn out_of_order_message(seq: u64, after: Option<u64>) -> String {
    match after {
        Some(after) => format!("entry {seq} is out of order: it comes after entry {after}"),
        None => format!("entry {seq} is out of order: the log must start with entry 1"),
    }
}

impl ChainBreak {
    /// The entry (position) the problem is reported at; `None` for a missing head.
    pub fn seq(&self) -> Option<u64> {
        match self {
            ChainBreak::Altered { seq, .. }
            | ChainBreak::Missing { seq, .. }
            | ChainBreak::Unlinked { seq }
            | ChainBreak::Reordered { seq, .. }
            | ChainBreak::Moved { seq, .. }
            | ChainBreak::Duplicate { seq, .. }
            | ChainBreak::OutOfOrder { seq, .. } => Some(*seq),
            ChainBreak::HeadNotFound { .. } => None,
        }
    }
}

/// Where an entry's content belongs: its hashed body once, so trying another position costs one
/// SHA-256 over that body.
#[derive(Debug)]
struct Placement {
    body: Vec<u8>,
    /// The stored hash, `None` when it is not a well-formed hash (then it fits nowhere).
    hash: Option<[u8; 32]>,
}

impl Placement {
    fn of(entry: &AuditEntry) -> Placement {
        Placement {
            body: hashed_body(
                entry.at,
                &entry.actor,
                &entry.action,
                entry.subject.as_deref(),
                &entry.detail,
                &entry.prev_hash,
            ),
            hash: parse_hash(&entry.hash),
        }
    }

    /// Whether the stored hash is the hash of this content at position `seq`.
    fn fits(&self, seq: u64) -> bool {
        self.hash
            .is_some_and(|hash| digest_at(seq, &self.body).as_ref() == hash.as_slice())
    }
}

/// How many earlier positions a misfit entry is tried at (nearest first) before it is called
/// altered rather than a duplicate; bounds the work of one verification.
const EARLIER_PROBES: u64 = 1_000_000;

/// Checks an audit log entry by entry, in the order the store lists it (by `seq`), with memory
/// that does not grow with the log.
///
/// The rules, applied to the first entry that is not exactly the next link of the chain:
/// - its `seq` is not above the previous one's: the same entry again is a **duplicate**,
///   otherwise the list is **out of order**;
/// - its `seq` skips positions (a gap starting at position `k`): if an entry later in the log
///   has content whose hash was computed for position `k`, entry `k` was **moved** there
///   (reordering); if a later entry has a `seq` not above one already seen, the list is **out
///   of order**; otherwise the entries of the gap are **missing**;
/// - its stored hash is not the hash of its content at its own position: its content is tried
///   at other positions. If it fits an earlier position (already taken by an intact entry) it
///   is a **duplicate**; if it fits the position of a later entry, or the position right after
///   the entry its `prev_hash` names, it was **reordered** (two rows whose `seq` values were
///   swapped fit exactly each other's position); if it fits nowhere, it was **altered**.
///   Because the hash covers `seq`, a swap and an edit are told apart by whether the unchanged
///   content still hashes right somewhere else;
/// - its hash is right but its `prev_hash` is not the previous entry's hash: it is
///   **unlinked** (an entry was removed and the rest renumbered, or the previous entry was
///   rewritten with a recomputed hash).
///
/// Classifying a misfit or a gap needs the rest of the log, so the verdict comes from
/// [`ChainVerifier::finish`]; [`ChainVerifier::is_decided`] says when more input would not
/// change it. With an expected head (a hash kept from an earlier verification), an intact chain
/// must contain an entry with that hash (entries appended since are fine); an empty log then
/// fails too.
///
/// What it cannot see: the chain is not keyed, so someone who can write the database can
/// rewrite the log from some entry on with fresh hashes. Only a head hash kept elsewhere
/// catches that.
#[derive(Debug)]
pub struct ChainVerifier {
    expected_head: Option<String>,
    head_found: bool,
    /// The intact prefix ends with this entry (`0` and [`GENESIS_HASH`] before the first).
    last_seq: u64,
    last_hash: String,
    phase: Phase,
}

#[derive(Debug)]
enum Phase {
    Intact,
    /// The entry at `seq` does not hash right; looking for where its content belongs.
    Misfit {
        seq: u64,
        placement: Box<Placement>,
        prev_hash: String,
        /// Highest position seen so far.
        seen: u64,
    },
    /// Positions `first..=last` are absent; looking for entry `first` further on.
    Gap {
        first: u64,
        last: u64,
        seen: u64,
    },
    Decided(ChainBreak),
}

impl ChainVerifier {
    /// A verifier; `expected_head` is a head hash kept from an earlier verification.
    pub fn new(expected_head: Option<&str>) -> ChainVerifier {
        ChainVerifier {
            expected_head: expected_head.map(str::to_owned),
            head_found: expected_head == Some(GENESIS_HASH),
            last_seq: 0,
            last_hash: GENESIS_HASH.to_owned(),
            phase: Phase::Intact,
        }
    }

    /// Whether the verdict is settled: reading further entries would not change it.
    pub fn is_decided(&self) -> bool {
        matches!(self.phase, Phase::Decided(_))
    }

    /// The next entry, in the order the store lists them.
    pub fn push(&mut self, entry: &AuditEntry) {
        let decided = match &mut self.phase {
            Phase::Decided(_) => return,
            Phase::Intact => {
                self.check(entry);
                return;
            }
            Phase::Misfit {
                seq,
                placement,
                prev_hash,
                seen,
            } => {
                let mut found = None;
                if entry.seq > *seen {
                    *seen = entry.seq;
                    if placement.fits(entry.seq) {
                        found = Some(entry.seq);
                    }
                }
                // The entry this one was chained to: its content belongs right after it.
                if found.is_none() && entry.hash == *prev_hash {
                    let next = entry.seq.saturating_add(1);
                    if placement.fits(next) {
                        found = Some(next);
                    }
                }
                found.map(|belongs_at| ChainBreak::Reordered {
                    seq: *seq,
                    belongs_at,
                })
            }
            Phase::Gap { first, seen, .. } => {
                if entry.seq <= *seen {
                    // An export whose lines were shuffled: the "gap" was only out of order.
                    Some(ChainBreak::OutOfOrder {
                        seq: entry.seq,
                        after: Some(*seen),
                    })
                } else {
                    *seen = entry.seq;
                    let placement = Placement::of(entry);
                    (!placement.fits(entry.seq) && placement.fits(*first)).then_some(
                        ChainBreak::Moved {
                            seq: *first,
                            stored_as: entry.seq,
                        },
                    )
                }
            }
        };
        if let Some(found) = decided {
            self.phase = Phase::Decided(found);
        }
    }

    /// The intact phase: is `entry` exactly the next link?
    fn check(&mut self, entry: &AuditEntry) {
        let next = self.last_seq.saturating_add(1);
        if entry.seq < next {
            let found = if self.last_seq > 0 && entry.seq == self.last_seq {
                ChainBreak::Duplicate {
                    seq: entry.seq,
                    of: entry.seq,
                }
            } else {
                ChainBreak::OutOfOrder {
                    seq: entry.seq,
                    after: (self.last_seq > 0).then_some(self.last_seq),
                }
            };
            self.phase = Phase::Decided(found);
            return;
        }
        let placement = Placement::of(entry);
        if entry.seq > next {
            self.phase = if !placement.fits(entry.seq) && placement.fits(next) {
                Phase::Decided(ChainBreak::Moved {
                    seq: next,
                    stored_as: entry.seq,
                })
            } else {
                Phase::Gap {
                    first: next,
                    last: entry.seq - 1,
                    seen: entry.seq,
                }
            };
            return;
        }
        if let Some(columns) = entry.hash.strip_prefix(UNREADABLE_PREFIX) {
            self.phase = Phase::Decided(ChainBreak::Altered {
                seq: next,
                unreadable: Some(columns.to_owned()),
            });
            return;
        }
        if !placement.fits(next) {
            let earlier = (1..next)
                .rev()
                .take(EARLIER_PROBES as usize)
                .find(|&t| placement.fits(t));
            self.phase = match earlier {
                Some(of) => Phase::Decided(ChainBreak::Duplicate { seq: next, of }),
                None => Phase::Misfit {
                    seq: next,
                    placement: Box::new(placement),
                    prev_hash: entry.prev_hash.clone(),
                    seen: next,
                },
            };
            return;
        }
        if entry.prev_hash != self.last_hash {
            self.phase = Phase::Decided(ChainBreak::Unlinked { seq: next });
            return;
        }
        self.last_seq = next;
        self.last_hash.clone_from(&entry.hash);
        if self.expected_head.as_deref() == Some(entry.hash.as_str()) {
            self.head_found = true;
        }
    }

    /// The verdict once every entry was pushed: the first problem, or what the chain holds.
    pub fn finish(self) -> Result<ChainSummary, ChainBreak> {
        match self.phase {
            Phase::Decided(found) => Err(found),
            Phase::Misfit { seq, .. } => Err(ChainBreak::Altered {
                seq,
                unreadable: None,
            }),
            Phase::Gap { first, last, .. } => Err(ChainBreak::Missing { seq: first, last }),
            Phase::Intact => match self.expected_head {
                Some(head) if !self.head_found => Err(ChainBreak::HeadNotFound {
                    head,
                    entries: self.last_seq,
                }),
                _ => Ok(ChainSummary {
                    entries: self.last_seq,
                    head: self.last_hash,
                }),
            },
        }
    }
}

/// Verifies a whole log (see [`ChainVerifier`] for the rules), stopping early once the
/// verdict is settled.
pub fn verify_chain(
    entries: impl IntoIterator<Item = AuditEntry>,
    expected_head: Option<&str>,
) -> Result<ChainSummary, ChainBreak> {
    let mut verifier = ChainVerifier::new(expected_head);
    for entry in entries {
        verifier.push(&entry);
        if verifier.is_decided() {
            break;
        }
    }
    verifier.finish()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
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
    /// A valid chain of `n` entries, seq 1..=n.
    fn chain(n: u64) -> Vec<AuditEntry> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let mut e = AuditEntry {
                    seq,
                    at: OffsetDateTime::from_unix_timestamp(1_790_000_000 + seq as i64).unwrap(),
                    actor: if seq % 2 == 0 { "alice" } else { "bob" }.into(),
                    action: "user.add".into(),
                    subject: (seq % 3 != 0).then(|| format!("user:u{seq}")),
                    detail: json!({"n": seq, "role": "technician"}),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = e.compute_hash();
                prev.clone_from(&e.hash);
                e
            })
            .collect()
    }

    /// What the store would list: ordered by seq.
    fn listed(mut entries: Vec<AuditEntry>) -> Vec<AuditEntry> {
        entries.sort_by_key(|e| e.seq);
        entries
    }

    fn verify(entries: Vec<AuditEntry>) -> Result<ChainSummary, ChainBreak> {
        verify_chain(entries, None)
    }

    fn swap_seq(entries: &mut [AuditEntry], a: u64, b: u64) {
        entries[a as usize - 1].seq = b;
        entries[b as usize - 1].seq = a;
    }

    #[test]
    fn an_intact_chain_reports_its_length_and_head() {
        let entries = chain(7);
        let head = entries[6].hash.clone();
        assert_eq!(
            verify(entries.clone()),
            Ok(ChainSummary {
                entries: 7,
                head: head.clone()
            })
        );
        assert!(verify_chain(entries, Some(&head)).is_ok());
    }

    #[test]
    fn an_empty_log_is_intact_with_the_genesis_head() {
        assert_eq!(
            verify(Vec::new()),
            Ok(ChainSummary {
                entries: 0,
                head: GENESIS_HASH.to_owned()
            })
        );
        assert!(verify_chain(Vec::new(), Some(GENESIS_HASH)).is_ok());
    }

    #[test]
    fn an_empty_log_with_an_expected_head_fails() {
        let head = chain(3)[2].hash.clone();
        let err = verify_chain(Vec::new(), Some(&head)).unwrap_err();
        assert_eq!(
            err,
            ChainBreak::HeadNotFound {
                head: head.clone(),
                entries: 0
            }
        );
        assert!(
            err.to_string()
                .starts_with("the log is empty, but the head"),
            "{err}"
        );
        assert_eq!(err.seq(), None);
    }

    #[test]
    fn a_changed_detail_is_an_alteration_of_that_entry() {
        let mut entries = chain(9);
        entries[6].detail = json!({"n": 7, "role": "admin"});
        let err = verify(entries).unwrap_err();
        assert_eq!(
            err,
            ChainBreak::Altered {
                seq: 7,
                unreadable: None
            }
        );
        assert_eq!(
            err.to_string(),
            "entry 7 was altered: its hash does not match its content"
        );
    }

    #[test]
    fn a_changed_hash_or_prev_hash_is_an_alteration() {
        let mut entries = chain(5);
        entries[2].hash = "f".repeat(64);
        assert_eq!(verify(entries).unwrap_err().seq(), Some(3));
        let mut entries = chain(5);
        entries[3].prev_hash = "e".repeat(64);
        assert_eq!(
            verify(entries).unwrap_err(),
            ChainBreak::Altered {
                seq: 4,
                unreadable: None
            }
        );
    }

    #[test]
    fn an_unreadable_row_is_an_alteration_that_names_the_columns() {
        let mut entries = chain(4);
        entries[1].hash = format!("{UNREADABLE_PREFIX}detail");
        let err = verify(entries).unwrap_err();
        assert_eq!(
            err,
            ChainBreak::Altered {
                seq: 2,
                unreadable: Some("detail".into())
            }
        );
        assert_eq!(
            err.to_string(),
            "entry 2 was altered: its stored detail cannot be read"
        );
    }

    #[test]
    fn a_deleted_entry_is_missing() {
        let mut entries = chain(8);
        entries.remove(4);
        let err = verify(entries).unwrap_err();
        assert_eq!(err, ChainBreak::Missing { seq: 5, last: 5 });
        assert_eq!(
            err.to_string(),
            "entry 5 is missing: entry 4 is followed by entry 6"
        );
        let mut entries = chain(8);
        entries.drain(1..4);
        assert_eq!(
            verify(entries).unwrap_err().to_string(),
            "entries 2 to 4 are missing: entry 1 is followed by entry 5"
        );
    }

    #[test]
    fn a_deleted_first_entry_is_missing() {
        let mut entries = chain(3);
        entries.remove(0);
        assert_eq!(
            verify(entries).unwrap_err(),
            ChainBreak::Missing { seq: 1, last: 1 }
        );
    }

    #[test]
    fn swapped_sequence_numbers_are_a_reordering_not_an_alteration() {
        let mut entries = chain(9);
        swap_seq(&mut entries, 3, 6);
        let err = verify(listed(entries)).unwrap_err();
        assert_eq!(
            err,
            ChainBreak::Reordered {
                seq: 3,
                belongs_at: 6
            }
        );
        assert_eq!(
            err.to_string(),
            "entry 3 is out of order: the entry stored as 3 belongs at position 6 (entries were \
             reordered)"
        );
    }

    #[test]
    fn swapped_neighbours_and_a_swap_with_the_last_entry_are_reorderings() {
        let mut entries = chain(6);
        swap_seq(&mut entries, 4, 5);
        assert_eq!(
            verify(listed(entries)).unwrap_err(),
            ChainBreak::Reordered {
                seq: 4,
                belongs_at: 5
            }
        );
        let mut entries = chain(6);
        swap_seq(&mut entries, 1, 6);
        assert_eq!(
            verify(listed(entries)).unwrap_err(),
            ChainBreak::Reordered {
                seq: 1,
                belongs_at: 6
            }
        );
    }

    #[test]
    fn an_entry_renumbered_past_the_end_was_moved() {
        let mut entries = chain(6);
        entries[2].seq = 40;
        let err = verify(listed(entries)).unwrap_err();
        assert_eq!(
            err,
            ChainBreak::Moved {
                seq: 3,
                stored_as: 40
            }
        );
        assert_eq!(
            err.to_string(),
            "entry 3 was moved: it is stored as entry 40 (entries were reordered)"
        );
    }

    #[test]
    fn an_entry_moved_into_the_gap_of_a_deleted_one_is_a_reordering() {
        // DELETE entry 3, then UPDATE seq = 3 WHERE seq = 6: position 3 holds entry 6, whose
        // own position is now empty.
        let mut entries = chain(6);
        entries.remove(2);
        let last = entries.len() - 1;
        entries[last].seq = 3;
        assert_eq!(
            verify(listed(entries)).unwrap_err(),
            ChainBreak::Reordered {
                seq: 3,
                belongs_at: 6
            }
        );
    }

    #[test]
    fn a_copy_of_an_earlier_entry_is_a_duplicate() {
        let mut entries = chain(5);
        let mut copy = entries[1].clone();
        copy.seq = 6;
        entries.push(copy);
        let err = verify(entries).unwrap_err();
        assert_eq!(err, ChainBreak::Duplicate { seq: 6, of: 2 });
        assert!(
            err.to_string().starts_with("entry 6 is a duplicate"),
            "{err}"
        );
    }

    #[test]
    fn a_repeated_line_is_a_duplicate_and_shuffled_lines_are_out_of_order() {
        let mut entries = chain(4);
        entries.insert(2, entries[1].clone());
        assert_eq!(
            verify(entries).unwrap_err().to_string(),
            "entry 2 appears more than once"
        );
        let mut entries = chain(4);
        entries.swap(1, 2);
        assert_eq!(
            verify(entries).unwrap_err(),
            ChainBreak::OutOfOrder {
                seq: 2,
                after: Some(3)
            }
        );
        let mut entries = chain(2);
        entries[0].seq = 0;
        assert_eq!(
            verify(entries).unwrap_err().to_string(),
            "entry 0 is out of order: the log must start with entry 1"
        );
    }

    #[test]
    fn an_entry_rewritten_with_a_fresh_hash_unlinks_the_next_one() {
        let mut entries = chain(5);
        entries[2].detail = json!({"n": 3, "role": "admin"});
        entries[2].hash = entries[2].compute_hash();
        let err = verify(entries).unwrap_err();
        assert_eq!(err, ChainBreak::Unlinked { seq: 4 });
        assert!(
            err.to_string()
                .starts_with("entry 4 does not follow entry 3"),
            "{err}"
        );
    }

    #[test]
    fn the_first_problem_wins() {
        let mut entries = chain(9);
        entries[1].actor = "mallory".into();
        entries.remove(5);
        assert_eq!(verify(entries).unwrap_err().seq(), Some(2));

        let mut entries = chain(9);
        entries[6].actor = "mallory".into();
        entries.remove(2);
        assert_eq!(
            verify(entries).unwrap_err(),
            ChainBreak::Missing { seq: 3, last: 3 }
        );

        let mut entries = chain(9);
        entries[7].detail = json!({});
        swap_seq(&mut entries, 2, 4);
        assert_eq!(
            verify(listed(entries)).unwrap_err(),
            ChainBreak::Reordered {
                seq: 2,
                belongs_at: 4
            }
        );
    }

    #[test]
    fn the_head_must_still_be_in_the_chain() {
        let entries = chain(6);
        let old_head = entries[5].hash.clone();
        // Appended since: fine.
        assert!(verify_chain(entries.clone(), Some(&entries[3].hash)).is_ok());
        // The last entry cut off: the rest is intact, only the head shows it.
        let mut cut = entries.clone();
        cut.pop();
        assert!(verify(cut.clone()).is_ok());
        let err = verify_chain(cut, Some(&old_head)).unwrap_err();
        assert_eq!(
            err,
            ChainBreak::HeadNotFound {
                head: old_head.clone(),
                entries: 5
            }
        );
        assert!(err.to_string().contains("cut off the end"), "{err}");
    }

    #[test]
    fn a_log_rewritten_with_fresh_hashes_is_caught_only_by_the_head() {
        let original = chain(5);
        let head = original[4].hash.clone();
        let mut rewritten = original.clone();
        let mut prev = GENESIS_HASH.to_owned();
        for e in &mut rewritten {
            e.actor = "mallory".into();
            e.prev_hash = prev;
            e.hash = e.compute_hash();
            prev = e.hash.clone();
        }
        assert!(verify(rewritten.clone()).is_ok());
        assert!(matches!(
            verify_chain(rewritten, Some(&head)),
            Err(ChainBreak::HeadNotFound { .. })
        ));
    }

    #[test]
    fn the_verifier_is_decided_as_soon_as_more_input_cannot_matter() {
        let entries = chain(5);
        let mut v = ChainVerifier::new(None);
        v.push(&entries[0]);
        v.push(&entries[0]);
        assert!(v.is_decided());
        let mut v = ChainVerifier::new(None);
        let mut altered = entries[1].clone();
        altered.action = "user.revoke".into();
        v.push(&entries[0]);
        v.push(&altered);
        // An alteration might still turn out to be a reordering: not decided yet.
        assert!(!v.is_decided());
    }

    #[test]
    fn breaks_serialise_with_their_kind() {
        let value = serde_json::to_value(ChainBreak::Missing { seq: 4, last: 4 }).unwrap();
        assert_eq!(value, json!({"kind": "missing", "seq": 4, "last": 4}));
        assert!(is_hash(GENESIS_HASH));
        assert!(!is_hash(&"A".repeat(64)));
        assert!(!is_hash("abc"));
    }

    /// One field of one entry, changed.
    #[derive(Debug, Clone)]
    enum Change {
        Seq(u64),
        At(i64),
        Actor(String),
        Action(String),
        Subject(Option<String>),
        Detail(String),
        PrevHash(String),
        Hash(String),
    }

    fn change() -> impl Strategy<Value = Change> {
        let text = "[a-z.:0-9]{0,12}";
        prop_oneof![
            (0u64..40).prop_map(Change::Seq),
            (-5_000i64..5_000).prop_map(Change::At),
            text.prop_map(Change::Actor),
            text.prop_map(Change::Action),
            proptest::option::of(text).prop_map(Change::Subject),
            text.prop_map(Change::Detail),
            "[0-9a-f]{64}".prop_map(Change::PrevHash),
            "[0-9a-f]{64}|[a-z]{0,8}".prop_map(Change::Hash),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_single_field_change_of_any_entry_is_detected(
            n in 1u64..12,
            pick in 0usize..64,
            change in change(),
        ) {
            let original = chain(n);
            let index = pick % original.len();
            let mut entries = original.clone();
            let e = &mut entries[index];
            match change {
                Change::Seq(seq) => e.seq = seq,
                Change::At(ms) => e.at += time::Duration::milliseconds(ms),
                Change::Actor(v) => e.actor = v,
                Change::Action(v) => e.action = v,
                Change::Subject(v) => e.subject = v,
                Change::Detail(v) => e.detail = json!({"note": v}),
                Change::PrevHash(v) => e.prev_hash = v,
                Change::Hash(v) => e.hash = v,
            }
            prop_assume!(entries[index] != original[index]);
            let err = verify(listed(entries)).unwrap_err();
            let seq = err.seq().expect("a chain problem names an entry");
            prop_assert!(seq <= index as u64 + 1, "{err} for entry {}", index + 1);
        }
    }
}

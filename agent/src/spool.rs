//! The offline spool: tickets wait here, durably, until the collector has acknowledged them.
//!
//! # On-disk format
//! One directory; one file per ticket, `<idempotency key>.json`, holding a [`Entry`]. A file is
//! written to `.<key>.tmp`, fsynced, renamed into place, and the directory fsynced, so after a
//! crash (even `kill -9` mid-write) a ticket is either fully there or not there, never torn. A
//! temporary file left by a crash is removed on the next open.
//!
//! # Invariants
//! - A ticket is removed only after the collector acknowledged it ([`Spool::acknowledge`]); the
//!   idempotency key makes a resend of an already-stored ticket harmless, so delivery is
//!   exactly-once even when an answer is lost.
//! - A file that does not parse is moved to `quarantine/` with a warning, never deleted and never
//!   fatal.
//! - The spool stays under its byte bound: when a new ticket does not fit, the snapshot payloads
//!   of the oldest tickets are dropped first (the ticket text stays, marked `snapshot_trimmed`);
//!   only when no payload is left to drop are the oldest tickets themselves dropped, and every
//!   drop is reported to the caller.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use lifeline_shared::v1::snapshot::Snapshot;

/// Default byte bound of the spool directory's tickets.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
const QUARANTINE: &str = "quarantine";
const DELIVERED: &str = "delivered.log";
/// How many deliveries are remembered for `spool list` and the help window.
pub const DELIVERED_KEPT: usize = 50;
const EXTENSION: &str = "json";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("spool: cannot encode ticket {key}: {source}")]
    Encode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("spool: a ticket of {size} bytes cannot fit in the spool's bound of {max} bytes")]
    TooLarge { size: u64, max: u64 },
    #[error("spool: invalid idempotency key {0:?}")]
    BadKey(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// An idempotency key: 32 lowercase hex digits (128 random bits). Also the file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        IdempotencyKey(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The short reference users see, e.g. `LL-7KQ2-M9XD`: the key's first 40 bits in Crockford
    /// base32 (no I, L, O, U), so it can be read over the phone.
    pub fn reference(&self) -> String {
        const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let bits = u64::from_str_radix(&self.0[..10], 16).unwrap_or(0);
        let chars: String = (0..8)
            .rev()
            .map(|i| ALPHABET[((bits >> (i * 5)) & 31) as usize] as char)
            .collect();
        format!("LL-{}-{}", &chars[..4], &chars[4..])
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = SpoolError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(IdempotencyKey(s))
        } else {
            Err(SpoolError::BadKey(s))
        }
    }
}

impl From<IdempotencyKey> for String {
    fn from(k: IdempotencyKey) -> String {
        k.0
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One queued ticket. `T` is the ticket's text (description, urgency...), which is never trimmed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry<T> {
    pub key: IdempotencyKey,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub ticket: T,
    /// The snapshot taken when the ticket was filed; `None` once trimmed to respect the bound.
    pub snapshot: Option<Snapshot>,
    #[serde(default)]
    pub snapshot_trimmed: bool,
    /// The screenshot the user attached (base64 PNG); trimmed together with the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screenshot_png: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    #[serde(default)]
    pub last_error: Option<String>,
}

impl<T> Entry<T> {
    pub fn new(key: IdempotencyKey, ticket: T, snapshot: Snapshot, now: OffsetDateTime) -> Self {
        Entry {
            key,
            created_at: now,
            ticket,
            snapshot: Some(snapshot),
            snapshot_trimmed: false,
            screenshot_png: None,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
        }
    }

    pub fn reference(&self) -> String {
        self.key.reference()
    }
}

/// A ticket the collector acknowledged: its reference and the collector's number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    pub reference: String,
    pub number: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub delivered_at: OffsetDateTime,
}

/// Something the spool did that the user should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A file that did not parse was moved aside.
    Quarantined { file: PathBuf, reason: String },
    /// The snapshot of this ticket was dropped to stay within the bound; its text is kept.
    SnapshotTrimmed { reference: String },
    /// This whole ticket was dropped to stay within the bound.
    TicketDropped { reference: String },
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::Quarantined { file, reason } => {
                write!(
                    f,
                    "moved unreadable spool file {} aside: {reason}",
                    file.display()
                )
            }
            Notice::SnapshotTrimmed { reference } => write!(
                f,
                "spool full: dropped the diagnostics snapshot (and any screenshot) of queued ticket {reference} (its text is kept)"
            ),
            Notice::TicketDropped { reference } => {
                write!(f, "spool full: dropped queued ticket {reference}")
            }
        }
    }
}

/// The spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
}

impl Spool {
    /// Opens (creating it 0700 if needed) the spool in `dir` and removes leftovers of
    /// interrupted writes.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> Result<Spool, SpoolError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        restrict(&dir, 0o700)?;
        for entry in fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(Spool { dir, max_bytes })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, key: &IdempotencyKey) -> PathBuf {
        self.dir.join(format!("{key}.{EXTENSION}"))
    }

    /// Writes `entry` durably, making room first if the bound requires it.
    pub fn push<T: Serialize + DeserializeOwned>(
        &self,
        entry: &Entry<T>,
    ) -> Result<Vec<Notice>, SpoolError> {
        let bytes = encode(entry)?;
        let size = bytes.len() as u64;
        let mut notices = Vec::new();
        let mut used = self.used_bytes(&entry.key)?;
        if used + size > self.max_bytes {
            let (mut others, quarantined) = self.load::<T>()?;
            notices.extend(quarantined);
            others.retain(|e| e.key != entry.key);
            others.sort_by_key(|e| e.created_at);
            // First pass: drop snapshot (and screenshot) payloads, oldest first.
            for other in others
                .iter_mut()
                .filter(|e| e.snapshot.is_some() || e.screenshot_png.is_some())
            {
                if used + size <= self.max_bytes {
                    break;
                }
                let before = fs::metadata(self.path_of(&other.key)).map_or(0, |m| m.len());
                other.snapshot = None;
                other.screenshot_png = None;
                other.snapshot_trimmed = true;
                let after = self.write(other)?;
                used = used.saturating_sub(before.saturating_sub(after));
                notices.push(Notice::SnapshotTrimmed {
                    reference: other.reference(),
                });
            }
            // Last resort: drop whole tickets, oldest first.
            for other in &others {
                if used + size <= self.max_bytes {
                    break;
                }
                let path = self.path_of(&other.key);
                let len = fs::metadata(&path).map_or(0, |m| m.len());
                fs::remove_file(&path).map_err(io(&path))?;
                used = used.saturating_sub(len);
                notices.push(Notice::TicketDropped {
                    reference: other.reference(),
                });
            }
            if used + size > self.max_bytes {
                return Err(SpoolError::TooLarge {
                    size,
                    max: self.max_bytes,
                });
            }
        }
        self.write_bytes(&entry.key, &bytes)?;
        Ok(notices)
    }

    /// Records a failed delivery attempt and when to try next.
    pub fn record_failure<T: Serialize>(
        &self,
        entry: &mut Entry<T>,
        error: &str,
        next_attempt_at: OffsetDateTime,
    ) -> Result<(), SpoolError> {
        entry.attempts = entry.attempts.saturating_add(1);
        entry.last_error = Some(error.to_owned());
        entry.next_attempt_at = next_attempt_at;
        self.write(entry).map(|_| ())
    }

    /// Removes a ticket the collector has acknowledged. Removing one already gone is fine.
    pub fn acknowledge(&self, key: &IdempotencyKey) -> Result<(), SpoolError> {
        let path = self.path_of(key);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Remembers that `reference` became ticket `number` (newest last, bounded).
    pub fn record_delivered(
        &self,
        reference: &str,
        number: u64,
        now: OffsetDateTime,
    ) -> Result<(), SpoolError> {
        let mut log = self.delivered();
        log.retain(|d| d.reference != reference);
        log.push(Delivered {
            reference: reference.to_owned(),
            number,
            delivered_at: now,
        });
        let excess = log.len().saturating_sub(DELIVERED_KEPT);
        log.drain(..excess);
        let bytes = serde_json::to_vec(&log).map_err(|source| SpoolError::Encode {
            key: reference.to_owned(),
            source,
        })?;
        let tmp = self.dir.join(".delivered.tmp");
        let path = self.dir.join(DELIVERED);
        fs::write(&tmp, bytes).map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Recent deliveries, oldest first. An unreadable log is treated as empty: it is a
    /// convenience, the tickets themselves are at the collector.
    pub fn delivered(&self) -> Vec<Delivered> {
        fs::read(self.dir.join(DELIVERED))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Every queued ticket, oldest first, plus notices for files moved to quarantine.
    pub fn load<T: DeserializeOwned>(&self) -> Result<(Vec<Entry<T>>, Vec<Notice>), SpoolError> {
        let mut entries = Vec::new();
        let mut notices = Vec::new();
        for dirent in fs::read_dir(&self.dir).map_err(io(&self.dir))?.flatten() {
            let path = dirent.path();
            if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) || !path.is_file() {
                continue;
            }
            let parsed = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Entry<T>>(&b).map_err(|e| e.to_string()))
                .and_then(|e| {
                    // The file name is the key; a mismatch means the file was tampered with.
                    let expected = format!("{}.{EXTENSION}", e.key);
                    if dirent.file_name().to_string_lossy() == expected {
                        Ok(e)
                    } else {
                        Err(format!("file name does not match its key {}", e.key))
                    }
                });
            match parsed {
                Ok(entry) => entries.push(entry),
                Err(reason) => notices.push(self.quarantine(&path, reason)?),
            }
        }
        entries.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.key.cmp(&b.key)));
        Ok((entries, notices))
    }

    fn quarantine(&self, path: &Path, reason: String) -> Result<Notice, SpoolError> {
        let qdir = self.dir.join(QUARANTINE);
        fs::create_dir_all(&qdir).map_err(io(&qdir))?;
        let name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
        let target = qdir.join(name);
        fs::rename(path, &target).map_err(io(path))?;
        sync_dir(&self.dir)?;
        Ok(Notice::Quarantined {
            file: target,
            reason,
        })
    }

    /// Bytes used by queued tickets other than `except`.
    fn used_bytes(&self, except: &IdempotencyKey) -> Result<u64, SpoolError> {
        let skip = format!("{except}.{EXTENSION}");
        Ok(fs::read_dir(&self.dir)
            .map_err(io(&self.dir))?
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.ends_with(".json") && name != skip
            })
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum())
    }

    fn write<T: Serialize>(&self, entry: &Entry<T>) -> Result<u64, SpoolError> {
        let bytes = encode(entry)?;
        self.write_bytes(&entry.key, &bytes)?;
        Ok(bytes.len() as u64)
    }

    /// temp file, fsync, rename, fsync the directory.
    fn write_bytes(&self, key: &IdempotencyKey, bytes: &[u8]) -> Result<(), SpoolError> {
        let tmp = self.dir.join(format!(".{key}.tmp"));
        let mut file = File::create(&tmp).map_err(io(&tmp))?;
        restrict(&tmp, 0o600)?;
        file.write_all(bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        let path = self.path_of(key);
        fs::rename(&tmp, &path).map_err(io(&path))?;
        sync_dir(&self.dir)
    }
}

fn encode<T: Serialize>(entry: &Entry<T>) -> Result<Vec<u8>, SpoolError> {
    serde_json::to_vec(entry).map_err(|source| SpoolError::Encode {
        key: entry.key.to_string(),
        source,
    })
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

fn restrict(path: &Path, mode: u32) -> Result<(), SpoolError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io(path))
}

/// Delay before delivery attempt `attempts + 1`: exponential from 5 s, capped at 10 minutes, with
/// "full jitter" (`jitter` in 0..=1 picks a point in the window) so a fleet coming back online
/// does not retry in lockstep.
pub fn backoff(attempts: u32, jitter: f64) -> Duration {
    let base = Duration::from_secs(5);
    let cap = Duration::from_secs(600);
    let window = base
        .saturating_mul(2u32.saturating_pow(attempts.min(16)))
        .min(cap);
    let jitter = jitter.clamp(0.0, 1.0);
    // At least a second, so a broken collector is never hammered.
    Duration::from_secs(1).max(window.mul_f64(jitter))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-23 09:00 UTC);

    fn key(n: u8) -> IdempotencyKey {
        IdempotencyKey::from_bytes([n; 16])
    }

    fn snapshot_of(size: usize) -> Snapshot {
        let mut s = Snapshot::empty(T0, "test");
        s.agent_version = "x".repeat(size);
        s
    }

    fn entry(n: u8, text: &str, snapshot_bytes: usize) -> Entry<String> {
        let at = T0 + time::Duration::seconds(i64::from(n));
        Entry::new(key(n), text.to_owned(), snapshot_of(snapshot_bytes), at)
    }

    #[test]
    fn references_are_short_readable_and_stable() {
        let k = IdempotencyKey::try_from("7f3a9c00112233445566778899aabbcc".to_owned()).unwrap();
        let r = k.reference();
        assert_eq!(r, k.reference());
        assert_eq!(r.len(), "LL-XXXX-XXXX".len());
        assert!(r.starts_with("LL-"));
        // Crockford base32: no I, L, O or U to misread.
        assert!(
            r[3..]
                .chars()
                .all(|c| c == '-' || "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c))
        );
        assert_ne!(r, key(1).reference());
        assert!(IdempotencyKey::try_from("../../etc/passwd".to_owned()).is_err());
    }

    #[test]
    fn pushed_tickets_survive_reopening_and_ack_removes_them() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
        spool.push(&entry(1, "printer jammed", 10)).unwrap();
        spool.push(&entry(2, "no wifi", 10)).unwrap();
        let spool = Spool::open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
        let (entries, notices) = spool.load::<String>().unwrap();
        assert!(notices.is_empty());
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].ticket, "printer jammed");
        spool.acknowledge(&entries[0].key).unwrap();
        spool.acknowledge(&entries[0].key).unwrap(); // twice is fine
        let (entries, _) = spool.load::<String>().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].ticket, "no wifi");
    }

    #[test]
    fn garbage_and_truncated_files_are_quarantined_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
        spool.push(&entry(1, "good", 10)).unwrap();
        let good = fs::read(spool.path_of(&key(1))).unwrap();
        fs::write(
            dir.path().join(format!("{}.json", key(2))),
            &good[..good.len() / 2],
        )
        .unwrap();
        fs::write(dir.path().join("garbage.json"), b"\x00\xffnot json").unwrap();
        fs::write(dir.path().join(format!(".{}.tmp", key(3))), b"half written").unwrap();
        let spool = Spool::open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
        let (entries, notices) = spool.load::<String>().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(notices.len(), 2, "{notices:?}");
        assert!(dir.path().join("quarantine/garbage.json").exists());
        assert!(!dir.path().join(format!(".{}.tmp", key(3))).exists());
        // Nothing is quarantined twice.
        assert!(spool.load::<String>().unwrap().1.is_empty());
    }

    #[test]
    fn a_full_spool_trims_oldest_snapshots_before_dropping_text() {
        let dir = tempfile::tempdir().unwrap();
        let one = encode(&entry(1, "t", 4000)).unwrap().len() as u64;
        let spool = Spool::open(dir.path(), one * 3 + 1000).unwrap();
        for n in 1..=3 {
            assert!(spool.push(&entry(n, "t", 4000)).unwrap().is_empty());
        }
        let notices = spool.push(&entry(4, "t", 4000)).unwrap();
        assert_eq!(
            notices,
            [Notice::SnapshotTrimmed {
                reference: key(1).reference()
            }]
        );
        let (entries, _) = spool.load::<String>().unwrap();
        assert_eq!(entries.len(), 4, "no ticket text was dropped");
        assert!(entries[0].snapshot_trimmed && entries[0].snapshot.is_none());
        assert!(entries[1].snapshot.is_some());
    }

    #[test]
    fn deliveries_are_remembered_newest_last_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
        for n in 0..(DELIVERED_KEPT as u64 + 5) {
            spool.record_delivered(&format!("LL-{n}"), n, T0).unwrap();
        }
        let log = spool.delivered();
        assert_eq!(log.len(), DELIVERED_KEPT);
        assert_eq!(log.last().unwrap().number, DELIVERED_KEPT as u64 + 4);
        // The log is not a queued ticket.
        assert!(spool.load::<String>().unwrap().0.is_empty());
    }

    #[test]
    fn a_ticket_larger_than_the_bound_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1000).unwrap();
        let err = spool.push(&entry(1, "t", 5000)).unwrap_err();
        assert!(matches!(err, SpoolError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn backoff_grows_is_capped_and_never_zero() {
        assert_eq!(backoff(0, 1.0), Duration::from_secs(5));
        assert_eq!(backoff(3, 1.0), Duration::from_secs(40));
        assert_eq!(backoff(30, 1.0), Duration::from_secs(600));
        assert_eq!(backoff(3, 0.0), Duration::from_secs(1));
        assert!(backoff(3, 0.5) <= Duration::from_secs(20));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(usize),
        AckOldest,
        AckNewest,
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0usize..3000).prop_map(Op::Push),
            1 => Just(Op::AckOldest),
            1 => Just(Op::AckNewest),
            1 => Just(Op::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// The spool behaves like a queue: same tickets, same order, text never lost while the
        /// bound is large enough for all of them.
        #[test]
        fn spool_matches_a_queue_model(ops in proptest::collection::vec(op(), 1..30)) {
            let dir = tempfile::tempdir().unwrap();
            let mut spool = Spool::open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
            let mut model: VecDeque<(u8, String)> = VecDeque::new();
            for (n, op) in ops.into_iter().enumerate() {
                let n = u8::try_from(n).unwrap();
                match op {
                    Op::Push(size) => {
                        let text = format!("ticket {n}");
                        spool.push(&entry(n, &text, size)).unwrap();
                        model.push_back((n, text));
                    }
                    Op::AckOldest => if let Some((k, _)) = model.pop_front() {
                        spool.acknowledge(&key(k)).unwrap();
                    },
                    Op::AckNewest => if let Some((k, _)) = model.pop_back() {
                        spool.acknowledge(&key(k)).unwrap();
                    },
                    Op::Reopen => spool = Spool::open(dir.path(), DEFAULT_MAX_BYTES).unwrap(),
                }
                let (entries, notices) = spool.load::<String>().unwrap();
                prop_assert!(notices.is_empty());
                let got: Vec<String> = entries.into_iter().map(|e| e.ticket).collect();
                let want: Vec<String> = model.iter().map(|(_, t)| t.clone()).collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}

//! What this agent trusts about remote actions, kept in `catalog-trust.json` in the agent
//! directory: the catalog signing keys it pinned, the highest catalog version it has verified,
//! and the run ids it has recently received.
//!
//! The collector only relays; it can never change what the agent trusts:
//! - Keys are pinned at enrollment, from `--catalog-key KEY.pub` ([`TrustStore::pin`]), or, without
//!   it, taken from the collector once, when no key is trusted yet ([`TrustStore::trust_on_first_use`],
//!   which returns the fingerprints to print). After that a new key is only accepted when an
//!   already-trusted key endorsed it ([`TrustStore::accept_endorsement`]).
//! - Pinning replaces what was trusted on first use: afterwards only pinned keys, and keys they
//!   endorsed (directly or through other endorsed keys), are trusted.
//! - A person at the machine may remove a key ([`TrustStore::remove`], `lifeline-agent trust
//!   remove`); keys trusted only through its endorsement go with it, and endorsements of a
//!   removed key are refused from then on (until it is pinned again), so the collector cannot
//!   bring it back. Without any key, every action is refused.
//! - The catalog version only moves forward ([`TrustStore::accept_catalog_version`]).
//! - Each run id is accepted once ([`TrustStore::record_run`]). An id is remembered until the
//!   expiry it arrived with, at most [`SEEN_RUNS_MAX`] at a time; when that many unexpired runs are
//!   remembered, new runs are refused rather than forgetting one early.
//!
//! File format (JSON, mode 0600; unknown fields are errors, so an older agent never silently
//! ignores a newer rule):
//!
//! ```json
//! {
//!   "format": "lifeline-catalog-trust/1",
//!   "keys": [{"key_id": "<hex>", "public_key": "<base64>", "origin": "pinned",
//!             "added_at": "2026-11-23T09:00:00Z"}],
//!   "catalog_version": 3,
//!   "seen_runs": [{"run_id": "<32 hex>", "expires_at": "2026-11-23T10:00:00Z"}],
//!   "removed": ["<hex>"]
//! }
//! ```
//!
//! `catalog_version` is one number for every key: catalogs share one version sequence (the
//! collector publishes versions in order, whoever signed them), so an older catalog is refused
//! even when a different trusted key signed it. `removed` is written only when not empty.
//!
//! `origin` is `pinned`, `first_use`, or `endorsed` (then with `endorsed_by`, a key id). Every
//! change is read-modify-write under a lock (in-process and on a `.lock` file beside it, for a
//! second agent process such as `enroll`) and written crash-safely: temporary file, fsync,
//! rename, fsync of the directory. A change that cannot be written is not made.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use lifeline_shared::v1::catalog::{
    KeyEndorsement, KeyError, KeyId, PublicKey, RollbackError, VerifyError, VersionStep,
    accept_catalog_version, accept_endorsed_key,
};
use lifeline_shared::v1::run::RunId;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::AgentDir;

/// File name of the trust store, in [`AgentDir::root`].
pub const TRUST_FILE: &str = "catalog-trust.json";
/// `format` of the trust store file.
pub const TRUST_FORMAT: &str = "lifeline-catalog-trust/1";
/// Most run ids remembered at once.
pub const SEEN_RUNS_MAX: usize = 10_000;
/// Largest trust store file read.
const TRUST_FILE_MAX_LEN: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error("{}: {source}", path.display())]
    KeyFile {
        path: PathBuf,
        #[source]
        source: KeyError,
    },
    #[error("the collector offered no catalog signing key to trust")]
    NoKeysOffered,
    #[error(
        "this agent already trusts catalog key(s) {trusted}; the collector cannot add key(s) \
         {offered}: pin a key with --catalog-key KEY.pub, or have a trusted key endorse it"
    )]
    AlreadyPinned { trusted: String, offered: String },
    #[error("key endorsement refused: {0}")]
    Endorsement(#[source] VerifyError),
    #[error(transparent)]
    Rollback(#[from] RollbackError),
    #[error("run {run_id} was already received: refusing to run it again")]
    Replay { run_id: RunId },
    #[error(
        "{count} recent runs are remembered (at most {SEEN_RUNS_MAX}): refusing new runs until \
         some expire"
    )]
    TooManyRuns { count: usize },
    #[error(
        "catalog key {key_id} was removed from this machine; only pinning it again \
         (--catalog-key) trusts it"
    )]
    Removed { key_id: KeyId },
    #[error(
        "no trusted catalog key has the fingerprint {given:?} (see `lifeline-agent trust list`)"
    )]
    UnknownKey { given: String },
    #[error(
        "{given:?} is the start of {count} trusted keys' fingerprints: give more of it (see \
         `lifeline-agent trust list`)"
    )]
    AmbiguousKey { given: String, count: usize },
    #[error(
        "{given:?} is not a fingerprint: expected hex digits, at least {FINGERPRINT_PREFIX_MIN} of them"
    )]
    BadFingerprint { given: String },
}

/// Fewest hex digits of a fingerprint `trust remove` accepts.
pub const FINGERPRINT_PREFIX_MIN: usize = 8;

/// What [`TrustStore::pin`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    /// The fingerprints of the pinned keys.
    pub keys: Vec<KeyId>,
    /// Keys no longer trusted: trusted on first use, or endorsed only through such a key.
    pub untrusted: Vec<TrustedKey>,
}

/// What [`TrustStore::remove`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The key asked for, then the keys trusted only through its endorsement.
    pub removed: Vec<TrustedKey>,
    /// Keys still trusted.
    pub remaining: usize,
}

/// How a key came to be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "origin", rename_all = "snake_case")]
pub enum KeyOrigin {
    /// Given to `enroll --catalog-key` by whoever set up this machine.
    Pinned,
    /// Offered by the collector at enrollment when nothing was pinned (trust on first use).
    FirstUse,
    /// Endorsed by a key that was already trusted.
    Endorsed { endorsed_by: KeyId },
}

/// One trusted catalog signing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedKey {
    pub key_id: KeyId,
    pub public_key: PublicKey,
    #[serde(flatten)]
    pub origin: KeyOrigin,
    #[serde(with = "time::serde::rfc3339")]
    pub added_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeenRun {
    run_id: RunId,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

/// The file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustFile {
    format: String,
    keys: Vec<TrustedKey>,
    catalog_version: Option<u64>,
    seen_runs: Vec<SeenRun>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    removed: Vec<KeyId>,
}

/// The checked content, as the operations use it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct State {
    keys: Vec<TrustedKey>,
    catalog_version: Option<u64>,
    /// Run id → expiry.
    seen_runs: BTreeMap<RunId, OffsetDateTime>,
    /// Keys a person removed: their endorsements are refused.
    removed: Vec<KeyId>,
}

impl State {
    fn is_trusted(&self, id: &KeyId) -> bool {
        self.keys.iter().any(|k| k.key_id == *id)
    }

    fn add(&mut self, key: PublicKey, origin: KeyOrigin, now: OffsetDateTime) -> bool {
        if self.is_trusted(&key.id()) {
            return false;
        }
        self.keys.push(TrustedKey {
            key_id: key.id(),
            public_key: key,
            origin,
            added_at: now,
        });
        true
    }

    fn public_keys(&self) -> Vec<PublicKey> {
        self.keys.iter().map(|k| k.public_key).collect()
    }

    /// Drops every endorsed key whose chain of endorsements no longer reaches a key that
    /// `is_root` accepts; returns the dropped keys.
    fn keep_rooted(&mut self, is_root: impl Fn(&TrustedKey) -> bool) -> Vec<TrustedKey> {
        let mut rooted: Vec<KeyId> = self
            .keys
            .iter()
            .filter(|k| is_root(k))
            .map(|k| k.key_id)
            .collect();
        loop {
            let more: Vec<KeyId> = self
                .keys
                .iter()
                .filter(|k| !rooted.contains(&k.key_id))
                .filter(|k| {
                    matches!(k.origin, KeyOrigin::Endorsed { endorsed_by } if rooted.contains(&endorsed_by))
                })
                .map(|k| k.key_id)
                .collect();
            if more.is_empty() {
                break;
            }
            rooted.extend(more);
        }
        let (kept, dropped) = std::mem::take(&mut self.keys)
            .into_iter()
            .partition(|k| rooted.contains(&k.key_id));
        self.keys = kept;
        dropped
    }

    /// Forgets runs that have expired: an expired run is refused for its expiry anyway.
    fn prune(&mut self, now: OffsetDateTime) -> bool {
        let before = self.seen_runs.len();
        self.seen_runs.retain(|_, expires_at| *expires_at > now);
        self.seen_runs.len() != before
    }
}

/// The agent's catalog trust store. Cheap to share between threads: every operation reads the
/// file, and changes are written before they return.
#[derive(Debug)]
pub struct TrustStore {
    path: PathBuf,
    lock: Mutex<()>,
}

impl TrustStore {
    /// The store in the agent directory. A missing file is an empty store (nothing trusted);
    /// a damaged one is an error.
    pub fn open(dir: &AgentDir) -> Result<TrustStore, TrustError> {
        TrustStore::open_file(dir.root.join(TRUST_FILE))
    }

    /// The store at `path` (see [`TrustStore::open`]).
    pub fn open_file(path: impl Into<PathBuf>) -> Result<TrustStore, TrustError> {
        let store = TrustStore {
            path: path.into(),
            lock: Mutex::new(()),
        };
        store.read(|_| ())?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The trusted keys, in the order they were added.
    pub fn keys(&self) -> Result<Vec<TrustedKey>, TrustError> {
        self.read(|state| state.keys.clone())
    }

    /// The trusted public keys, for [`SignedAction::verify`](lifeline_shared::v1::catalog::SignedAction::verify).
    pub fn public_keys(&self) -> Result<Vec<PublicKey>, TrustError> {
        self.read(State::public_keys)
    }

    /// The highest catalog version verified so far.
    pub fn catalog_version(&self) -> Result<Option<u64>, TrustError> {
        self.read(|state| state.catalog_version)
    }

    /// Keys a person removed ([`TrustStore::remove`]); endorsements of them are refused.
    pub fn removed_keys(&self) -> Result<Vec<KeyId>, TrustError> {
        self.read(|state| state.removed.clone())
    }

    /// Pins keys chosen by whoever set up this machine (`enroll --catalog-key`, `trust pin`).
    /// Pinned keys replace what the collector offered on first use: afterwards only pinned
    /// keys and the keys they endorsed are trusted; the others are returned in
    /// [`Pinned::untrusted`]. A key trusted before in another way becomes pinned.
    pub fn pin(&self, keys: &[PublicKey], now: OffsetDateTime) -> Result<Pinned, TrustError> {
        self.update(|state| {
            let mut changed = false;
            for key in keys {
                let id = key.id();
                if let Some(known) = state.keys.iter_mut().find(|k| k.key_id == id) {
                    if known.origin != KeyOrigin::Pinned {
                        known.origin = KeyOrigin::Pinned;
                        known.added_at = now;
                        changed = true;
                    }
                } else {
                    changed |= state.add(*key, KeyOrigin::Pinned, now);
                }
                if let Some(at) = state.removed.iter().position(|r| *r == id) {
                    state.removed.remove(at);
                    changed = true;
                }
            }
            let untrusted = state.keep_rooted(|k| k.origin == KeyOrigin::Pinned);
            changed |= !untrusted.is_empty();
            let pinned = Pinned {
                keys: keys.iter().map(PublicKey::id).collect(),
                untrusted,
            };
            Ok((pinned, changed))
        })
    }

    /// Stops trusting the key whose fingerprint is, or starts with, `given` (at least
    /// [`FINGERPRINT_PREFIX_MIN`] hex digits), and the keys trusted only through its
    /// endorsement. Its endorsements are refused from then on; pinning it again undoes that.
    pub fn remove(&self, given: &str) -> Result<Removed, TrustError> {
        let wanted = given.trim().to_ascii_lowercase();
        if wanted.len() < FINGERPRINT_PREFIX_MIN
            || wanted.len() > 64
            || !wanted.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(TrustError::BadFingerprint {
                given: given.to_owned(),
            });
        }
        self.update(|state| {
            let matching: Vec<KeyId> = state
                .keys
                .iter()
                .map(|k| k.key_id)
                .filter(|id| id.to_string().starts_with(&wanted))
                .collect();
            let key_id = match matching.as_slice() {
                [] => {
                    return Err(TrustError::UnknownKey {
                        given: given.to_owned(),
                    });
                }
                [one] => *one,
                more => {
                    return Err(TrustError::AmbiguousKey {
                        given: given.to_owned(),
                        count: more.len(),
                    });
                }
            };
            let at = state
                .keys
                .iter()
                .position(|k| k.key_id == key_id)
                .ok_or_else(|| TrustError::UnknownKey {
                    given: given.to_owned(),
                })?;
            let mut removed = vec![state.keys.remove(at)];
            removed.extend(state.keep_rooted(|k| !matches!(k.origin, KeyOrigin::Endorsed { .. })));
            for key in &removed {
                if !state.removed.contains(&key.key_id) {
                    state.removed.push(key.key_id);
                }
            }
            let answer = Removed {
                removed,
                remaining: state.keys.len(),
            };
            Ok((answer, true))
        })
    }

    /// Reads a `lifeline-catalog.pub` file and pins its key (see [`TrustStore::pin`]).
    pub fn pin_key_file(&self, path: &Path, now: OffsetDateTime) -> Result<Pinned, TrustError> {
        let io = |source| TrustError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(file, 64 * 1024), &mut text)
            .map_err(io)?;
        let key = PublicKey::from_pem(&text).map_err(|source| TrustError::KeyFile {
            path: path.to_owned(),
            source,
        })?;
        self.pin(&[key], now)
    }

    /// Trust on first use: when no key is trusted yet, trusts the keys the collector offers and
    /// returns their fingerprints, which the caller must print so a person can compare them.
    /// Once keys are trusted, the collector can offer only those same keys again.
    pub fn trust_on_first_use(
        &self,
        offered: &[PublicKey],
        now: OffsetDateTime,
    ) -> Result<Vec<KeyId>, TrustError> {
        if offered.is_empty() {
            return Err(TrustError::NoKeysOffered);
        }
        self.update(|state| {
            let ids: Vec<KeyId> = offered.iter().map(PublicKey::id).collect();
            if state.keys.is_empty() {
                for key in offered {
                    state.add(*key, KeyOrigin::FirstUse, now);
                }
                return Ok((ids, true));
            }
            let new: Vec<String> = ids
                .iter()
                .filter(|id| !state.is_trusted(id))
                .map(ToString::to_string)
                .collect();
            if new.is_empty() {
                return Ok((ids, false));
            }
            Err(TrustError::AlreadyPinned {
                trusted: fingerprints(state.keys.iter().map(|k| &k.key_id)),
                offered: new.join(", "),
            })
        })
    }

    /// Adds a key that an already-trusted key endorsed; the only way the collector can bring in
    /// a new key. Returns its fingerprint.
    pub fn accept_endorsement(
        &self,
        endorsement: &KeyEndorsement,
        now: OffsetDateTime,
    ) -> Result<KeyId, TrustError> {
        self.update(|state| {
            let key = accept_endorsed_key(&state.public_keys(), endorsement)
                .map_err(TrustError::Endorsement)?;
            if state.removed.contains(&key.id()) && !state.is_trusted(&key.id()) {
                return Err(TrustError::Removed { key_id: key.id() });
            }
            let origin = KeyOrigin::Endorsed {
                endorsed_by: *endorsement.endorsed_by(),
            };
            let changed = state.add(key, origin, now);
            Ok((key.id(), changed))
        })
    }

    /// Applies the version rule to a verified catalog version and remembers it when it is the
    /// highest so far. An older version is [`TrustError::Rollback`].
    pub fn accept_catalog_version(&self, version: u64) -> Result<VersionStep, TrustError> {
        self.update(|state| {
            let step = accept_catalog_version(state.catalog_version, version)?;
            let changed = step != VersionStep::Same;
            if changed {
                state.catalog_version = Some(version);
            }
            Ok((step, changed))
        })
    }

    /// Whether `run_id` was received and has not expired yet.
    pub fn has_seen_run(&self, run_id: &RunId, now: OffsetDateTime) -> Result<bool, TrustError> {
        self.read(|state| {
            state
                .seen_runs
                .get(run_id)
                .is_some_and(|expires_at| *expires_at > now)
        })
    }

    /// Remembers `run_id` until `expires_at`, or refuses it when it was already received
    /// ([`TrustError::Replay`]). Check and record are one step, so two deliveries of one run at
    /// the same time cannot both pass.
    pub fn record_run(
        &self,
        run_id: &RunId,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), TrustError> {
        self.update(|state| {
            state.prune(now);
            if state.seen_runs.contains_key(run_id) {
                return Err(TrustError::Replay {
                    run_id: run_id.clone(),
                });
            }
            if state.seen_runs.len() >= SEEN_RUNS_MAX {
                return Err(TrustError::TooManyRuns {
                    count: state.seen_runs.len(),
                });
            }
            state.seen_runs.insert(run_id.clone(), expires_at);
            Ok(((), true))
        })
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> Result<T, TrustError> {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(f(&self.load()?))
    }

    /// Read-modify-write under both locks. `f` returns its answer and whether it changed the
    /// state; nothing is written when it fails or changed nothing.
    fn update<T>(
        &self,
        f: impl FnOnce(&mut State) -> Result<(T, bool), TrustError>,
    ) -> Result<T, TrustError> {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.create_dir()?;
        let _file_lock = self.lock_file()?;
        let mut state = self.load()?;
        let (answer, changed) = f(&mut state)?;
        if changed {
            self.save(&state)?;
        }
        Ok(answer)
    }

    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> TrustError {
        let path = path.to_owned();
        move |source| TrustError::Io { path, source }
    }

    fn corrupt(&self, message: impl Into<String>) -> TrustError {
        TrustError::Corrupt {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    fn dir(&self) -> &Path {
        self.path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }

    fn create_dir(&self) -> Result<(), TrustError> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(self.dir()).map_err(self.io(self.dir()))
    }

    /// An exclusive lock on `<file>.lock`, held until the returned file is dropped.
    fn lock_file(&self) -> Result<File, TrustError> {
        let path = sibling(&self.path, ".lock");
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&path).map_err(self.io(&path))?;
        file.lock().map_err(self.io(&path))?;
        Ok(file)
    }

    fn load(&self) -> Result<State, TrustError> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(source) => return Err(self.io(&self.path)(source)),
        };
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(file, TRUST_FILE_MAX_LEN + 1),
            &mut text,
        )
        .map_err(self.io(&self.path))?;
        if text.len() as u64 > TRUST_FILE_MAX_LEN {
            return Err(self.corrupt(format!(
                "larger than {TRUST_FILE_MAX_LEN} bytes; this is not a trust store"
            )));
        }
        let file: TrustFile =
            serde_json::from_str(&text).map_err(|e| self.corrupt(e.to_string()))?;
        if file.format != TRUST_FORMAT {
            return Err(self.corrupt(format!(
                "unsupported format {:?} (expected {TRUST_FORMAT:?})",
                file.format
            )));
        }
        for key in &file.keys {
            if key.public_key.id() != key.key_id {
                return Err(self.corrupt(format!(
                    "key {} does not match its public key (fingerprint {})",
                    key.key_id,
                    key.public_key.id()
                )));
            }
        }
        Ok(State {
            keys: file.keys,
            catalog_version: file.catalog_version,
            seen_runs: file
                .seen_runs
                .into_iter()
                .map(|seen| (seen.run_id, seen.expires_at))
                .collect(),
            removed: file.removed,
        })
    }

    /// Temporary file (0600), fsync, rename over the old file, fsync the directory.
    fn save(&self, state: &State) -> Result<(), TrustError> {
        let mut seen_runs: Vec<SeenRun> = state
            .seen_runs
            .iter()
            .map(|(run_id, expires_at)| SeenRun {
                run_id: run_id.clone(),
                expires_at: *expires_at,
            })
            .collect();
        seen_runs.sort_by(|a, b| (a.expires_at, &a.run_id).cmp(&(b.expires_at, &b.run_id)));
        let file = TrustFile {
            format: TRUST_FORMAT.to_owned(),
            keys: state.keys.clone(),
            catalog_version: state.catalog_version,
            seen_runs,
            removed: state.removed.clone(),
        };
        let mut json = serde_json::to_vec_pretty(&file).map_err(|e| self.corrupt(e.to_string()))?;
        json.push(b'\n');

        let tmp = sibling(&self.path, ".tmp");
        let _ = fs::remove_file(&tmp);
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut out = options.open(&tmp).map_err(self.io(&tmp))?;
        let written = out.write_all(&json).and_then(|()| out.sync_all());
        drop(out);
        if let Err(source) = written {
            let _ = fs::remove_file(&tmp);
            return Err(self.io(&tmp)(source));
        }
        if let Err(source) = fs::rename(&tmp, &self.path) {
            let _ = fs::remove_file(&tmp);
            return Err(self.io(&self.path)(source));
        }
        sync_dir(self.dir()).map_err(self.io(self.dir()))
    }
}

// ---------------------------------------------------------------------------------------------
// What `enroll` and `lifeline-agent trust` print

/// How a key came to be trusted, in words.
pub fn origin_text(origin: &KeyOrigin) -> String {
    match origin {
        KeyOrigin::Pinned => "pinned".to_owned(),
        KeyOrigin::FirstUse => "first use".to_owned(),
        KeyOrigin::Endorsed { endorsed_by } => format!("endorsed by {endorsed_by}"),
    }
}

fn since(at: OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| at.to_string())
}

/// One line per key that pinning stopped trusting.
pub fn untrusted_lines(untrusted: &[TrustedKey]) -> Vec<String> {
    untrusted
        .iter()
        .map(|k| {
            format!(
                "No longer trusting catalog key {} ({}): only pinned keys and the keys they \
                 endorse are trusted now.",
                k.key_id,
                origin_text(&k.origin)
            )
        })
        .collect()
}

/// What no trusted key means, for people.
pub const NOTHING_TRUSTED: &str = "No catalog signing key is trusted: this agent refuses every \
     remote action. Pin the admins' key with `lifeline-agent trust pin lifeline-catalog.pub`.";

/// `lifeline-agent trust list`.
pub fn list_text(keys: &[TrustedKey], catalog_version: Option<u64>, removed: &[KeyId]) -> String {
    let mut out = String::new();
    if keys.is_empty() {
        out.push_str(NOTHING_TRUSTED);
        out.push('\n');
    } else {
        out.push_str("Trusted catalog signing keys:\n");
        for k in keys {
            out.push_str(&format!(
                "  {}  {}, since {}\n",
                k.key_id,
                origin_text(&k.origin),
                since(k.added_at)
            ));
        }
    }
    match catalog_version {
        Some(v) => out.push_str(&format!(
            "Newest catalog version verified: {v} (actions of older versions are refused).\n"
        )),
        None => out.push_str("No catalog version verified yet.\n"),
    }
    if !removed.is_empty() {
        out.push_str("Removed here (their endorsements are refused until pinned again):\n");
        for id in removed {
            out.push_str(&format!("  {id}\n"));
        }
    }
    out
}

/// `lifeline-agent trust remove`.
pub fn removed_text(removed: &Removed) -> String {
    let mut out = String::new();
    for (i, k) in removed.removed.iter().enumerate() {
        out.push_str(&format!(
            "Removed catalog key {} ({}){}.\n",
            k.key_id,
            origin_text(&k.origin),
            if i == 0 {
                ""
            } else {
                ", trusted only through the removed key's endorsement"
            }
        ));
    }
    if removed.remaining == 0 {
        out.push_str(NOTHING_TRUSTED);
        out.push('\n');
    } else {
        out.push_str(&format!(
            "{} key(s) still trusted (see `lifeline-agent trust list`).\n",
            removed.remaining
        ));
    }
    out
}

/// `path` with `suffix` added to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(suffix);
    path.with_file_name(name)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

fn fingerprints<'a>(ids: impl Iterator<Item = &'a KeyId>) -> String {
    ids.map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use lifeline_shared::v1::catalog::SigningKey;
    use time::Duration;
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-11-23 10:00 UTC);

    fn store() -> (tempfile::TempDir, TrustStore) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = AgentDir::single(tmp.path().join("agent"));
        let store = TrustStore::open(&dir).unwrap();
        (tmp, store)
    }

    fn key() -> SigningKey {
        SigningKey::generate().unwrap()
    }

    fn run_id(n: u32) -> RunId {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&n.to_be_bytes());
        RunId::from_bytes(bytes)
    }

    #[test]
    fn a_new_store_trusts_nothing_and_writes_nothing() {
        let (_tmp, store) = store();
        assert!(store.keys().unwrap().is_empty());
        assert_eq!(store.catalog_version().unwrap(), None);
        assert!(!store.path().exists());
        assert!(store.path().ends_with(TRUST_FILE));
    }

    #[test]
    fn pinned_keys_survive_reopening_in_a_private_file() {
        let (_tmp, store) = store();
        let (a, b) = (key(), key());
        let pinned = store.pin(&[a.public_key()], NOW).unwrap();
        assert_eq!(pinned.keys, [a.public_key().id()]);
        assert!(pinned.untrusted.is_empty());
        store.pin(&[a.public_key(), b.public_key()], NOW).unwrap();
        let reopened = TrustStore::open_file(store.path()).unwrap();
        assert_eq!(
            reopened.public_keys().unwrap(),
            [a.public_key(), b.public_key()]
        );
        let keys = reopened.keys().unwrap();
        assert_eq!(keys[0].origin, KeyOrigin::Pinned);
        assert_eq!(keys[0].added_at, NOW);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(store.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!sibling(store.path(), ".tmp").exists());
    }

    #[test]
    fn a_key_file_is_pinned_by_its_fingerprint() {
        let (tmp, store) = store();
        let signing = key();
        let path = tmp.path().join("lifeline-catalog.pub");
        fs::write(&path, signing.public_key().to_pem()).unwrap();
        assert_eq!(
            store.pin_key_file(&path, NOW).unwrap().keys,
            [signing.public_key().id()]
        );
        assert_eq!(store.public_keys().unwrap(), [signing.public_key()]);

        // A private key where the public one belongs is refused, and nothing is pinned.
        let private = tmp.path().join("lifeline-catalog.key");
        fs::write(&private, key().to_pem()).unwrap();
        let err = store.pin_key_file(&private, NOW).unwrap_err().to_string();
        assert!(err.contains("lifeline-catalog.key: public key"), "{err}");
        assert!(err.contains("this is a private key"), "{err}");
        let err = store
            .pin_key_file(&tmp.path().join("missing.pub"), NOW)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.pub"), "{err}");
        assert_eq!(store.public_keys().unwrap().len(), 1);
    }

    #[test]
    fn trust_on_first_use_happens_once() {
        let (_tmp, store) = store();
        let (first, other) = (key(), key());
        assert!(matches!(
            store.trust_on_first_use(&[], NOW),
            Err(TrustError::NoKeysOffered)
        ));
        let printed = store
            .trust_on_first_use(&[first.public_key()], NOW)
            .unwrap();
        assert_eq!(printed, [first.public_key().id()]);
        assert_eq!(store.keys().unwrap()[0].origin, KeyOrigin::FirstUse);

        // The same key again (a re-enrollment) is fine; a different one is not.
        assert!(store.trust_on_first_use(&[first.public_key()], NOW).is_ok());
        let err = store
            .trust_on_first_use(&[first.public_key(), other.public_key()], NOW)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&other.public_key().id().to_string()), "{err}");
        assert!(err.contains("--catalog-key"), "{err}");
        assert_eq!(store.public_keys().unwrap(), [first.public_key()]);
    }

    #[test]
    fn only_a_trusted_key_can_bring_in_a_new_one() {
        let (_tmp, store) = store();
        let (trusted, new, stranger) = (key(), key(), key());
        store.pin(&[trusted.public_key()], NOW).unwrap();

        let forged = stranger.endorse(&new.public_key()).unwrap();
        let err = store.accept_endorsement(&forged, NOW).unwrap_err();
        assert!(matches!(err, TrustError::Endorsement(_)), "{err}");
        assert!(err.to_string().contains("not trusted"), "{err}");
        assert_eq!(store.public_keys().unwrap().len(), 1);

        let genuine = trusted.endorse(&new.public_key()).unwrap();
        assert_eq!(
            store.accept_endorsement(&genuine, NOW).unwrap(),
            new.public_key().id()
        );
        let keys = store.keys().unwrap();
        assert_eq!(
            keys[1].origin,
            KeyOrigin::Endorsed {
                endorsed_by: trusted.public_key().id()
            }
        );
        // Accepting it twice changes nothing.
        store.accept_endorsement(&genuine, NOW).unwrap();
        assert_eq!(store.keys().unwrap().len(), 2);
    }

    #[test]
    fn pinning_replaces_keys_trusted_on_first_use() {
        let (_tmp, store) = store();
        let (offered, rotated, pinned) = (key(), key(), key());
        store
            .trust_on_first_use(&[offered.public_key()], NOW)
            .unwrap();
        store
            .accept_endorsement(&offered.endorse(&rotated.public_key()).unwrap(), NOW)
            .unwrap();
        assert_eq!(store.keys().unwrap().len(), 2);

        let later = NOW + Duration::hours(1);
        let result = store.pin(&[pinned.public_key()], later).unwrap();
        assert_eq!(result.keys, [pinned.public_key().id()]);
        let gone: Vec<KeyId> = result.untrusted.iter().map(|k| k.key_id).collect();
        assert_eq!(
            gone,
            [offered.public_key().id(), rotated.public_key().id()],
            "the first-use key and the key it endorsed"
        );
        let reopened = TrustStore::open_file(store.path()).unwrap();
        assert_eq!(reopened.public_keys().unwrap(), [pinned.public_key()]);

        // What a pinned key endorses stays when another key is pinned.
        let endorsed = key();
        store
            .accept_endorsement(&pinned.endorse(&endorsed.public_key()).unwrap(), later)
            .unwrap();
        assert!(
            store
                .pin(&[key().public_key()], later)
                .unwrap()
                .untrusted
                .is_empty()
        );
        assert_eq!(store.keys().unwrap().len(), 3);

        // Pinning a key that was trusted on first use makes it pinned, since now.
        let (_tmp2, other) = self::store();
        other
            .trust_on_first_use(&[offered.public_key()], NOW)
            .unwrap();
        assert!(
            other
                .pin(&[offered.public_key()], later)
                .unwrap()
                .untrusted
                .is_empty()
        );
        let keys = other.keys().unwrap();
        assert_eq!(
            (keys[0].origin, keys[0].added_at),
            (KeyOrigin::Pinned, later)
        );
    }

    #[test]
    fn a_removed_key_takes_what_it_endorsed_along_and_does_not_come_back() {
        let (_tmp, store) = store();
        let (first, second, endorsed) = (key(), key(), key());
        store
            .pin(&[first.public_key(), second.public_key()], NOW)
            .unwrap();
        let endorsement = first.endorse(&endorsed.public_key()).unwrap();
        store.accept_endorsement(&endorsement, NOW).unwrap();

        for (given, expected) in [
            ("abc", "not a fingerprint"),
            ("zzzzzzzzzz", "not a fingerprint"),
            (
                "0123456789abcdef",
                "no trusted catalog key has the fingerprint",
            ),
        ] {
            let err = store.remove(given).unwrap_err().to_string();
            assert!(err.contains(expected), "{given}: {err}");
            assert!(err.contains(given), "{err}");
        }
        assert_eq!(store.keys().unwrap().len(), 3);

        // By a prefix, in capitals: the key and what it endorsed.
        let prefix = first.public_key().id().to_string()[..12].to_ascii_uppercase();
        let removed = store.remove(&prefix).unwrap();
        let ids: Vec<KeyId> = removed.removed.iter().map(|k| k.key_id).collect();
        assert_eq!(ids, [first.public_key().id(), endorsed.public_key().id()]);
        assert_eq!(removed.remaining, 1);
        assert_eq!(store.public_keys().unwrap(), [second.public_key()]);

        // The collector relays the endorsement again: refused, even signed by a trusted key.
        let err = store.accept_endorsement(&endorsement, NOW).unwrap_err();
        assert!(matches!(err, TrustError::Endorsement(_)), "{err}");
        let again = second.endorse(&endorsed.public_key()).unwrap();
        let err = store.accept_endorsement(&again, NOW).unwrap_err();
        assert!(matches!(err, TrustError::Removed { .. }), "{err}");
        assert!(err.to_string().contains("--catalog-key"), "{err}");

        // The last key: nothing is trusted, and that survives reopening.
        let last = store.remove(&second.public_key().id().to_string()).unwrap();
        assert_eq!(last.remaining, 0);
        let reopened = TrustStore::open_file(store.path()).unwrap();
        assert!(reopened.public_keys().unwrap().is_empty());
        assert_eq!(reopened.removed_keys().unwrap().len(), 3);

        // Pinning a removed key again trusts it again.
        store.pin(&[endorsed.public_key()], NOW).unwrap();
        assert_eq!(store.public_keys().unwrap(), [endorsed.public_key()]);
        assert_eq!(store.removed_keys().unwrap().len(), 2);
    }

    #[test]
    fn the_catalog_version_never_goes_back() {
        let (_tmp, store) = store();
        assert_eq!(store.accept_catalog_version(3).unwrap(), VersionStep::First);
        assert_eq!(store.accept_catalog_version(3).unwrap(), VersionStep::Same);
        assert_eq!(
            store.accept_catalog_version(5).unwrap(),
            VersionStep::Forward
        );
        let err = store.accept_catalog_version(4).unwrap_err().to_string();
        assert!(err.contains("refusing to roll back"), "{err}");
        let reopened = TrustStore::open_file(store.path()).unwrap();
        assert_eq!(reopened.catalog_version().unwrap(), Some(5));
    }

    #[test]
    fn a_run_id_is_accepted_once_until_it_expires() {
        let (_tmp, store) = store();
        let id = run_id(1);
        let expires = NOW + Duration::minutes(10);
        assert!(!store.has_seen_run(&id, NOW).unwrap());
        store.record_run(&id, expires, NOW).unwrap();
        assert!(store.has_seen_run(&id, NOW).unwrap());
        let err = store.record_run(&id, expires, NOW).unwrap_err();
        assert!(matches!(err, TrustError::Replay { .. }), "{err}");
        assert!(err.to_string().contains(id.as_str()));

        // Remembered across restarts.
        let reopened = TrustStore::open_file(store.path()).unwrap();
        assert!(reopened.record_run(&id, expires, NOW).is_err());

        // Pruned once expired (an expired run is refused for its expiry anyway).
        let later = expires + Duration::seconds(1);
        store
            .record_run(&run_id(2), later + Duration::minutes(1), later)
            .unwrap();
        assert!(!store.has_seen_run(&id, later).unwrap());
        let text = fs::read_to_string(store.path()).unwrap();
        assert!(!text.contains(id.as_str()));
    }

    #[test]
    fn the_run_memory_is_bounded_and_fails_closed() {
        let (_tmp, store) = store();
        // Fill the file directly: recording 10,000 runs one by one would rewrite it each time.
        let state = State {
            seen_runs: (0..SEEN_RUNS_MAX as u32)
                .map(|n| (run_id(n), NOW + Duration::minutes(1 + i64::from(n % 50))))
                .collect(),
            ..State::default()
        };
        store.create_dir().unwrap();
        store.save(&state).unwrap();
        let err = store
            .record_run(&run_id(u32::MAX), NOW + Duration::hours(1), NOW)
            .unwrap_err();
        assert!(matches!(err, TrustError::TooManyRuns { .. }), "{err}");
        // Once some expire there is room again.
        let later = NOW + Duration::minutes(2) + Duration::seconds(1);
        store
            .record_run(&run_id(u32::MAX), later + Duration::hours(1), later)
            .unwrap();
        assert!(store.read(|s| s.seen_runs.len()).unwrap() < SEEN_RUNS_MAX);
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let (_tmp, store) = store();
        store.pin(&[key().public_key()], NOW).unwrap();
        let good = fs::read_to_string(store.path()).unwrap();
        let cases = [
            (String::new(), "EOF"),
            (
                good.replace(TRUST_FORMAT, "lifeline-catalog-trust/9"),
                "unsupported format",
            ),
            (
                good.replacen('{', "{\"extra\": 1,", 1),
                "unknown field `extra`",
            ),
        ];
        for (text, expected) in cases {
            fs::write(store.path(), &text).unwrap();
            let err = TrustStore::open_file(store.path()).unwrap_err().to_string();
            assert!(
                err.starts_with(&store.path().display().to_string()),
                "{err}"
            );
            assert!(err.contains(expected), "{err:?} lacks {expected:?}");
            // And no operation changes it.
            assert!(store.pin(&[key().public_key()], NOW).is_err());
            assert_eq!(fs::read_to_string(store.path()).unwrap(), text);
        }
    }

    #[test]
    fn a_key_listed_under_another_fingerprint_is_refused() {
        let (_tmp, store) = store();
        let (a, b) = (key(), key());
        store.pin(&[a.public_key()], NOW).unwrap();
        let text = fs::read_to_string(store.path()).unwrap().replace(
            &a.public_key().id().to_string(),
            &b.public_key().id().to_string(),
        );
        fs::write(store.path(), text).unwrap();
        let err = TrustStore::open_file(store.path()).unwrap_err().to_string();
        assert!(err.contains("does not match its public key"), "{err}");
    }

    #[test]
    fn concurrent_deliveries_of_one_run_pass_once() {
        let (_tmp, store) = store();
        let id = run_id(7);
        let passed = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| store.record_run(&id, NOW + Duration::minutes(5), NOW)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(Result::is_ok)
                .count()
        });
        assert_eq!(passed, 1);
    }
}

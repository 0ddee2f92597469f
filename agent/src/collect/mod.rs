//! Takes a diagnostics snapshot: every section in parallel, each within its own time budget.
//!
//! Sections run on their own threads and report back over a channel. The CPU sample (two readings
//! 200 ms apart) is the floor of a snapshot's wall time, so it runs while the other sections are
//! collected rather than before them. A section that fails, panics or overruns its budget is
//! reported as an error entry in the document; it never fails the snapshot. A thread that overruns
//! is left to finish on its own (its child processes are bounded by `exec::runner`), and its late
//! answer is dropped.

pub mod hardware;
pub mod logs;
pub mod network;
pub mod sampled;
pub mod services;
pub mod software;
pub mod storage;
pub mod system;
pub mod user;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use lifeline_shared::findings;
use lifeline_shared::v1::snapshot::{self as wire, Section, SectionName, Snapshot};
use time::OffsetDateTime;

use crate::anonymize::{Anonymizer, Identities};

/// What to collect and how long each part may take.
#[derive(Debug, Clone)]
pub struct Options {
    /// Sections to include; empty means all.
    pub sections: BTreeSet<SectionName>,
    /// Replace user names, host names and addresses with pseudonyms.
    pub anonymize: bool,
    /// How long CPU usage is sampled.
    pub cpu_sample: Duration,
    /// Names the DNS check resolves through the system resolver (besides querying each server).
    pub dns_probe_names: Vec<String>,
    /// The collector this agent reports to, for the reachability check: `host:port`.
    pub collector: Option<String>,
    /// Where slow-to-compute facts (pending updates) are cached; `None` disables caching.
    pub cache_dir: Option<PathBuf>,
    /// Time budget of every section but the slower ones below.
    pub budget: Duration,
    /// Budget of the software section (a cold pending-updates check runs the package manager).
    pub software_budget: Duration,
    /// How long the software section waits for the pending-updates count (less than
    /// `software_budget`, so the rest of the section arrives even when the count is slow).
    pub pending_updates_wait: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sections: BTreeSet::new(),
            anonymize: false,
            cpu_sample: Duration::from_millis(200),
            dns_probe_names: Vec::new(),
            collector: None,
            cache_dir: default_cache_dir(),
            budget: Duration::from_secs(3),
            software_budget: Duration::from_secs(8),
            pending_updates_wait: Duration::from_secs(5),
        }
    }
}

impl Options {
    fn wants(&self, name: SectionName) -> bool {
        // Findings read every section, so asking for findings alone collects everything.
        self.sections.is_empty()
            || self.sections.contains(&name)
            || self.sections == BTreeSet::from([SectionName::Findings])
    }

    fn budget_of(&self, name: SectionName) -> Duration {
        match name {
            SectionName::Software => self.software_budget,
            SectionName::Cpu | SectionName::Memory | SectionName::Processes => {
                self.budget + self.cpu_sample
            }
            _ => self.budget,
        }
    }
}

/// `$LIFELINE_AGENT_DIR/cache`, else the user's cache directory.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("LIFELINE_AGENT_DIR") {
        return Some(PathBuf::from(dir).join("cache"));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("lifeline"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/lifeline"))
}

/// Problems a section ran into while still producing data.
pub type Problems = Vec<String>;

/// A section's answer, sent back from its thread.
enum Collected {
    System(Section<wire::System>),
    Cpu(Section<wire::Cpu>),
    Memory(Section<wire::Memory>),
    Processes(Section<wire::Processes>),
    Storage(Section<wire::Storage>),
    Network(Section<wire::Network>),
    Services(Section<wire::Services>),
    Software(Section<wire::Software>),
    Logs(Section<wire::Logs>),
    Hardware(Section<wire::Hardware>),
    User(Section<wire::User>),
}

/// Takes a snapshot now, stamped with the current time.
pub fn take(options: &Options) -> Snapshot {
    take_at(options, OffsetDateTime::now_utc())
}

/// Takes a snapshot stamped with `now`.
pub fn take_at(options: &Options, now: OffsetDateTime) -> Snapshot {
    let started = Instant::now();
    let (tx, rx) = mpsc::channel::<(SectionName, Collected)>();
    let mut pending: BTreeMap<SectionName, Instant> = BTreeMap::new();

    let sampled: Vec<SectionName> = [
        SectionName::Cpu,
        SectionName::Memory,
        SectionName::Processes,
    ]
    .into_iter()
    .filter(|s| options.wants(*s))
    .collect();
    if !sampled.is_empty() {
        for name in &sampled {
            pending.insert(*name, started + options.budget_of(*name));
        }
        let tx = tx.clone();
        let sample = options.cpu_sample;
        spawn_section("sampled", move || {
            let out = sampled::collect(sample, &sampled);
            if let Some(s) = out.cpu {
                let _ = tx.send((SectionName::Cpu, Collected::Cpu(s)));
            }
            if let Some(s) = out.memory {
                let _ = tx.send((SectionName::Memory, Collected::Memory(s)));
            }
            if let Some(s) = out.processes {
                let _ = tx.send((SectionName::Processes, Collected::Processes(s)));
            }
        });
    }

    macro_rules! section {
        ($name:expr, $variant:ident, $collect:expr) => {
            if options.wants($name) {
                pending.insert($name, started + options.budget_of($name));
                let tx = tx.clone();
                let options = options.clone();
                spawn_section($name.as_str(), move || {
                    let t0 = Instant::now();
                    let run = AssertUnwindSafe(|| $collect(&options));
                    let section = match catch_unwind(run) {
                        Ok((data, problems)) => Section::ok(data, problems, elapsed_ms(t0)),
                        Err(_) => {
                            Section::failed(format!("{} collection crashed", $name), elapsed_ms(t0))
                        }
                    };
                    let _ = tx.send(($name, Collected::$variant(section)));
                });
            }
        };
    }
    section!(SectionName::System, System, system::collect);
    section!(SectionName::Storage, Storage, storage::collect);
    section!(SectionName::Network, Network, network::collect);
    section!(SectionName::Services, Services, services::collect);
    section!(SectionName::Software, Software, software::collect);
    section!(SectionName::Logs, Logs, logs::collect);
    section!(SectionName::Hardware, Hardware, hardware::collect);
    section!(SectionName::User, User, user::collect);
    drop(tx);

    let mut snapshot = Snapshot::empty(now, env!("CARGO_PKG_VERSION"));
    while let Some(deadline) = pending.values().min().copied() {
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok((name, collected)) => {
                if pending.remove(&name).is_some() {
                    store(&mut snapshot, collected);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                let overdue: Vec<SectionName> = pending
                    .iter()
                    .filter(|(_, d)| **d <= now)
                    .map(|(n, _)| *n)
                    .collect();
                for name in overdue {
                    pending.remove(&name);
                    let budget = options.budget_of(name);
                    mark_failed(
                        &mut snapshot,
                        name,
                        format!(
                            "{name} did not finish within its {} ms budget",
                            budget.as_millis()
                        ),
                        elapsed_ms(started),
                    );
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // A thread died without answering (its catch_unwind failed to run): say so.
                for name in std::mem::take(&mut pending).into_keys() {
                    mark_failed(
                        &mut snapshot,
                        name,
                        format!("{name} collection stopped without an answer"),
                        elapsed_ms(started),
                    );
                }
            }
        }
    }

    snapshot.findings = findings::evaluate(&snapshot);
    if options.sections == BTreeSet::from([SectionName::Findings]) {
        // Only the findings were asked for: the sections were collected to compute them.
        snapshot = Snapshot {
            findings: std::mem::take(&mut snapshot.findings),
            ..Snapshot::empty(now, env!("CARGO_PKG_VERSION"))
        };
    }
    if options.anonymize {
        let ids = Identities::from_snapshot(&snapshot);
        match Anonymizer::new(&ids).snapshot(&snapshot) {
            Ok(anonymized) => snapshot = anonymized,
            Err(e) => {
                // Never send a document we failed to clean: keep only the findings' ids.
                warn(&format!("anonymizing failed: {e}"));
                let mut bare = Snapshot::empty(now, env!("CARGO_PKG_VERSION"));
                bare.anonymized = true;
                snapshot = bare;
            }
        }
    }
    snapshot
}

fn warn(message: &str) {
    eprintln!("warning: {message}");
}

fn spawn_section(name: &str, work: impl FnOnce() + Send + 'static) {
    let spawned = thread::Builder::new()
        .name(format!("collect-{name}"))
        .spawn(work);
    if let Err(e) = spawned {
        // The receiver sees the sender dropped and reports the section as failed.
        warn(&format!("cannot start the {name} collector: {e}"));
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn store(snapshot: &mut Snapshot, collected: Collected) {
    match collected {
        Collected::System(s) => snapshot.system = Some(s),
        Collected::Cpu(s) => snapshot.cpu = Some(s),
        Collected::Memory(s) => snapshot.memory = Some(s),
        Collected::Processes(s) => snapshot.processes = Some(s),
        Collected::Storage(s) => snapshot.storage = Some(s),
        Collected::Network(s) => snapshot.network = Some(s),
        Collected::Services(s) => snapshot.services = Some(s),
        Collected::Software(s) => snapshot.software = Some(s),
        Collected::Logs(s) => snapshot.logs = Some(s),
        Collected::Hardware(s) => snapshot.hardware = Some(s),
        Collected::User(s) => snapshot.user = Some(s),
    }
}

fn mark_failed(snapshot: &mut Snapshot, name: SectionName, error: String, elapsed: u64) {
    match name {
        SectionName::System => snapshot.system = Some(Section::failed(error, elapsed)),
        SectionName::Cpu => snapshot.cpu = Some(Section::failed(error, elapsed)),
        SectionName::Memory => snapshot.memory = Some(Section::failed(error, elapsed)),
        SectionName::Storage => snapshot.storage = Some(Section::failed(error, elapsed)),
        SectionName::Network => snapshot.network = Some(Section::failed(error, elapsed)),
        SectionName::Processes => snapshot.processes = Some(Section::failed(error, elapsed)),
        SectionName::Services => snapshot.services = Some(Section::failed(error, elapsed)),
        SectionName::Software => snapshot.software = Some(Section::failed(error, elapsed)),
        SectionName::Logs => snapshot.logs = Some(Section::failed(error, elapsed)),
        SectionName::Hardware => snapshot.hardware = Some(Section::failed(error, elapsed)),
        SectionName::User => snapshot.user = Some(Section::failed(error, elapsed)),
        SectionName::Findings => {}
    }
}

/// Reads a small text file, trimmed; `None` when absent or unreadable.
pub(crate) fn read_trimmed(path: impl AsRef<std::path::Path>) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_pending_updates_count_leaves_the_rest_of_the_software_section() {
        // Debian machines (these tests run on one): the package list is read at once, the
        // simulated upgrade cannot finish in no time and is reported as not counted.
        let options = Options {
            sections: BTreeSet::from([SectionName::Software]),
            pending_updates_wait: Duration::ZERO,
            cache_dir: None,
            ..Options::default()
        };
        let snap = take(&options);
        let software = snap.software.unwrap();
        let data = software.data.unwrap();
        assert!(data.package_count > 0);
        assert_eq!(data.pending_updates, None);
        assert!(
            software
                .errors
                .iter()
                .any(|e| e.contains("pending updates not counted")),
            "{:?}",
            software.errors
        );
    }

    #[test]
    fn a_section_that_overruns_its_budget_is_reported_and_the_rest_kept() {
        // A zero budget cannot be met by any section that reads the system; sampling is skipped.
        let options = Options {
            sections: BTreeSet::from([SectionName::Software, SectionName::Storage]),
            budget: Duration::from_secs(5),
            software_budget: Duration::ZERO,
            cache_dir: None,
            ..Options::default()
        };
        let snap = take(&options);
        let software = snap.software.unwrap();
        assert!(software.data.is_none());
        assert!(
            software.errors[0].contains("did not finish within its 0 ms budget"),
            "{:?}",
            software.errors
        );
        assert!(snap.storage.unwrap().data.is_some());
        assert!(snap.cpu.is_none(), "sections not asked for are absent");
    }
}

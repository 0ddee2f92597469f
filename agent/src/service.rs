//! `lifeline-agent run`: the background service.
//!
//! Three threads, each a plain loop with its own cadence, so one slow part never holds up another:
//! - **heartbeat**: sends vitals every interval and learns the collector's clock;
//! - **delivery**: sends queued tickets when they are due, with exponential backoff and jitter;
//! - **work**: keeps one long-poll open for work (live inspections, action runs) and answers it;
//!   each run gets a thread of its own ([`crate::exec::remote`]), at most
//!   [`CONCURRENT_RUNS_MAX`] at once: a further run is refused at once with a reason the
//!   technician sees, rather than queued here, because the collector counts a delivered run's
//!   time from its delivery (a run waiting on the agent could be failed as "silent"), and
//!   because a collector must not be able to pile up threads and processes on a workstation.
//!   Every answer is fitted into one request the collector accepts ([`crate::work_result`]).
//!
//! Every failure is logged and retried after a backoff; nothing here exits on a network error,
//! so the service reconnects by itself after the collector restarts. A lock file makes sure only
//! one service runs per agent directory; `status` reads it, and `state.json` records the last
//! contact for `lifeline-agent status`. Idle, the service sleeps in blocking calls: no busy loops.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use lifeline_shared::v1::run::{RunOutcome, RunResult};
use lifeline_shared::v1::work::{
    CONCURRENT_RUNS_MAX, Heartbeat, HeartbeatAck, MAX_WAIT_SECS, WorkBatch, WorkItem, WorkKind,
    WorkResult,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::collect;
use crate::config::{AgentDir, ConfigError};
use crate::desktop::hotkey::Hotkey;
use crate::report::{self, EnrolledClient, ReportError};
use crate::spool::{self, Spool, SpoolError};
use crate::transport;
use crate::vitals::VitalsReader;
use crate::work_result;

/// File that is locked while the service runs.
pub const LOCK_FILE: &str = "service.lock";
/// What the service last heard from the collector.
pub const STATE_FILE: &str = "state.json";

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the service is already running for {0} (its lock is held)")]
    AlreadyRunning(PathBuf),
}

/// How often things happen.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    pub heartbeat: Duration,
    /// How long one long-poll waits for work.
    pub poll_wait: Duration,
    /// How often the spool is looked at for tickets written by `report`.
    pub spool_check: Duration,
}

impl Default for Cadence {
    fn default() -> Self {
        Cadence {
            heartbeat: Duration::from_secs(60),
            poll_wait: Duration::from_secs(25),
            spool_check: Duration::from_secs(5),
        }
    }
}

/// The service's view of the collector, shared by its threads and saved for `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceState {
    pub pid: u32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_contact: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    /// Collector clock minus ours, from the last heartbeat.
    pub clock_offset_ms: Option<i64>,
}

impl ServiceState {
    pub fn load(dir: &AgentDir) -> Option<ServiceState> {
        let bytes = std::fs::read(dir.state.join(STATE_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Whether a service holds the lock of `dir` right now.
pub fn is_running(dir: &AgentDir) -> bool {
    let path = dir.state.join(LOCK_FILE);
    let Ok(file) = File::options().read(true).write(true).open(&path) else {
        return false;
    };
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            let _ = rustix::fs::flock(&file, rustix::fs::FlockOperation::Unlock);
            false
        }
        Err(_) => true,
    }
}

struct Shared {
    dir: AgentDir,
    state: Mutex<ServiceState>,
    /// Runs being carried out now (see [`RunSlot`]).
    runs: AtomicUsize,
}

/// One of the [`CONCURRENT_RUNS_MAX`] places for a run; given back when dropped.
struct RunSlot(Arc<Shared>);

impl RunSlot {
    fn take(shared: &Arc<Shared>) -> Option<RunSlot> {
        shared
            .runs
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < CONCURRENT_RUNS_MAX).then_some(n + 1)
            })
            .ok()
            .map(|_| RunSlot(Arc::clone(shared)))
    }
}

impl Drop for RunSlot {
    fn drop(&mut self) {
        self.0.runs.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a run that found every place taken is refused with.
pub fn busy_reason() -> String {
    format!(
        "{CONCURRENT_RUNS_MAX} actions are already running on this machine (at most \
         {CONCURRENT_RUNS_MAX} at once); nothing was started: run it again once one has finished"
    )
}

impl Shared {
    fn contact(&self, ok: Result<(), String>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        match ok {
            Ok(()) => {
                state.last_contact = Some(OffsetDateTime::now_utc());
                state.last_error = None;
            }
            Err(e) => state.last_error = Some(e),
        }
        let snapshot = state.clone();
        drop(state);
        let path = self.dir.state.join(STATE_FILE);
        if let Ok(bytes) = serde_json::to_vec_pretty(&snapshot) {
            let tmp = path.with_extension("tmp");
            let _ = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, &path));
        }
    }

    fn set_offset(&self, offset_ms: i64) {
        if let Ok(mut state) = self.state.lock() {
            state.clock_offset_ms = Some(offset_ms);
        }
    }

    fn offset(&self) -> Option<i64> {
        self.state.lock().ok().and_then(|s| s.clock_offset_ms)
    }
}

/// Runs the service until the process is stopped. Returns only on a setup error. With a
/// `hotkey`, a desktop session also gets the help hotkey (see [`crate::desktop::hotkey`]).
pub fn run(dir: AgentDir, cadence: Cadence, hotkey: Option<Hotkey>) -> Result<(), ServiceError> {
    // Fail early, and clearly, when not enrolled.
    dir.load()?;
    std::fs::create_dir_all(&dir.state).map_err(|source| ServiceError::Io {
        path: dir.state.clone(),
        source,
    })?;
    let lock = take_lock(&dir.state)?;
    let spool = Spool::open(dir.spool_path(), spool::DEFAULT_MAX_BYTES)?;
    let shared = Arc::new(Shared {
        state: Mutex::new(ServiceState {
            pid: std::process::id(),
            started_at: Some(OffsetDateTime::now_utc()),
            ..ServiceState::load(&dir).unwrap_or_default()
        }),
        dir,
        runs: AtomicUsize::new(0),
    });
    eprintln!(
        "lifeline-agent: service started for {} (heartbeat every {} s)",
        shared.dir.root.display(),
        cadence.heartbeat.as_secs()
    );
    let threads = [
        spawn("heartbeat", {
            let shared = shared.clone();
            move || heartbeat_loop(&shared, cadence)
        }),
        spawn("delivery", {
            let shared = shared.clone();
            let spool = spool.clone();
            move || delivery_loop(&shared, &spool, cadence)
        }),
        spawn("work", {
            let shared = shared.clone();
            move || work_loop(&shared, cadence)
        }),
    ];
    // The help hotkey: its own thread, only when a display answers; windows are processes of
    // their own, so nothing of the GUI lives in the service.
    if let Some(hotkey) = hotkey {
        crate::desktop::hotkey::start_listener(hotkey);
    }
    for t in threads.into_iter().flatten() {
        let _ = t.join();
    }
    drop(lock);
    Ok(())
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Option<thread::JoinHandle<()>> {
    match thread::Builder::new().name(name.to_owned()).spawn(f) {
        Ok(handle) => Some(handle),
        Err(e) => {
            eprintln!("lifeline-agent: cannot start the {name} thread: {e}");
            None
        }
    }
}

fn take_lock(root: &Path) -> Result<File, ServiceError> {
    let path = root.join(LOCK_FILE);
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| ServiceError::Io {
            path: path.clone(),
            source,
        })?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(|_| ServiceError::AlreadyRunning(root.to_owned()))?;
    Ok(file)
}

/// Opens a client, renewing the certificate first when it is due.
fn connect(shared: &Shared) -> Result<EnrolledClient, String> {
    match crate::enroll::renew_if_due(&shared.dir, OffsetDateTime::now_utc()) {
        Ok(Some(_)) => eprintln!("lifeline-agent: client certificate renewed"),
        Ok(None) => {}
        Err(e) => eprintln!("lifeline-agent: warning: certificate renewal failed: {e}"),
    }
    EnrolledClient::open(&shared.dir).map_err(|e| e.to_string())
}

/// Sleeps for the backoff of `failures` consecutive failures.
fn pause_after_failure(failures: u32) {
    thread::sleep(spool::backoff(failures.saturating_sub(1), report::jitter()));
}

fn heartbeat_loop(shared: &Shared, cadence: Cadence) {
    let mut reader = VitalsReader::new();
    let mut client: Option<EnrolledClient> = None;
    let mut failures = 0u32;
    loop {
        let started = Instant::now();
        let result = (|| -> Result<(), String> {
            if client.is_none() {
                client = Some(connect(shared)?);
            }
            let c = client.as_ref().ok_or("no client")?;
            let body = Heartbeat {
                vitals: reader.read(),
            };
            let url = c.collector.url(paths::HEARTBEAT);
            let sent_at = OffsetDateTime::now_utc();
            let response = c.collector.post(paths::HEARTBEAT).send_json(&body);
            let ack: HeartbeatAck = transport::finish(&url, response).map_err(|e| e.to_string())?;
            // The server read its clock about halfway through the round trip.
            let midpoint = sent_at + (OffsetDateTime::now_utc() - sent_at) / 2;
            let offset: time::Duration = ack.server_time - midpoint;
            let offset = offset.whole_milliseconds();
            shared.set_offset(i64::try_from(offset).unwrap_or(i64::MAX));
            Ok(())
        })();
        match &result {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                client = None;
                eprintln!("lifeline-agent: heartbeat failed: {e}");
            }
        }
        shared.contact(result);
        let wait = if failures == 0 {
            cadence.heartbeat.saturating_sub(started.elapsed())
        } else {
            spool::backoff(failures - 1, report::jitter()).min(cadence.heartbeat)
        };
        thread::sleep(wait);
    }
}

fn delivery_loop(shared: &Shared, spool: &Spool, cadence: Cadence) {
    let mut client: Option<EnrolledClient> = None;
    // Parsing the queue means reading every queued snapshot, so it is re-read only when the
    // directory changed (a new report, a delivery) or the earliest retry time has come.
    let mut seen_change: Option<std::time::SystemTime> = None;
    let mut next_attempt: Option<OffsetDateTime> = None;
    loop {
        let now = OffsetDateTime::now_utc();
        let changed = std::fs::metadata(spool.dir())
            .and_then(|m| m.modified())
            .ok();
        let look = changed != seen_change || next_attempt.is_some_and(|t| t <= now);
        let due = look
            && match spool.load::<report::Report>() {
                Ok((entries, notices)) => {
                    for n in notices {
                        eprintln!("lifeline-agent: warning: {n}");
                    }
                    seen_change = changed;
                    next_attempt = entries.iter().map(|e| e.next_attempt_at).min();
                    next_attempt.is_some_and(|t| t <= now)
                }
                Err(e) => {
                    eprintln!("lifeline-agent: cannot read the spool: {e}");
                    false
                }
            };
        if due {
            if client.is_none() {
                client = connect(shared)
                    .map_err(|e| eprintln!("lifeline-agent: delivery: {e}"))
                    .ok();
            }
            if let Some(c) = &client {
                match report::flush(c, spool, None, now) {
                    Ok(flushed) => {
                        for (reference, number) in &flushed.delivered {
                            eprintln!("lifeline-agent: delivered {reference} as ticket #{number}");
                        }
                        if !flushed.delivered.is_empty() {
                            shared.contact(Ok(()));
                        }
                        if let Some(e) = flushed.unreachable {
                            eprintln!(
                                "lifeline-agent: {} report(s) still queued: {e}",
                                flushed.waiting
                            );
                            client = None;
                        }
                    }
                    Err(e) => eprintln!("lifeline-agent: delivery failed: {e}"),
                }
            }
        }
        thread::sleep(cadence.spool_check);
    }
}

fn work_loop(shared: &Arc<Shared>, cadence: Cadence) {
    let mut client: Option<EnrolledClient> = None;
    let mut failures = 0u32;
    let wait_secs = cadence.poll_wait.as_secs().clamp(1, MAX_WAIT_SECS);
    loop {
        let result = (|| -> Result<Vec<WorkItem>, String> {
            if client.is_none() {
                client = Some(connect(shared)?);
            }
            let c = client.as_ref().ok_or("no client")?;
            let path = format!("{}?wait_secs={wait_secs}", paths::WORK);
            let url = c.collector.url(&path);
            let response = c.collector.get(&path).call();
            let batch: WorkBatch = transport::finish(&url, response).map_err(|e| e.to_string())?;
            Ok(batch.items)
        })();
        match result {
            Ok(items) => {
                failures = 0;
                shared.contact(Ok(()));
                if let Some(c) = &client {
                    for item in items {
                        answer(shared, c, item);
                    }
                }
            }
            Err(e) => {
                failures += 1;
                client = None;
                eprintln!("lifeline-agent: waiting for work failed: {e}");
                pause_after_failure(failures);
            }
        }
    }
}

/// Does one piece of work and reports the result. A run goes to a thread of its own, so a long
/// action never holds up inspections or other runs.
fn answer(shared: &Arc<Shared>, client: &EnrolledClient, item: WorkItem) {
    let result = match item.kind {
        WorkKind::Run { request } => {
            let id = item.id;
            let Some(slot) = RunSlot::take(shared) else {
                eprintln!(
                    "lifeline-agent: run {id}: refused, {CONCURRENT_RUNS_MAX} runs are going on"
                );
                let refused = WorkResult::Run {
                    run: RunOutcome {
                        run_id: request.run_id.clone(),
                        result: RunResult::refused(busy_reason()),
                    },
                    before: None,
                    after: None,
                };
                send_result(client, id, refused);
                return;
            };
            let shared = Arc::clone(shared);
            spawn(&format!("run-{id}"), move || {
                let _slot = slot;
                let client = match EnrolledClient::open(&shared.dir) {
                    Ok(client) => client,
                    Err(e) => {
                        eprintln!("lifeline-agent: cannot answer run {id}: {e}");
                        return;
                    }
                };
                eprintln!(
                    "lifeline-agent: run {id}: action {} requested by {}",
                    request.action.id(),
                    request.requested_by
                );
                let result = crate::exec::remote::handle(&shared.dir, &client, id, &request);
                send_result(&client, id, result);
            });
            return;
        }
        WorkKind::Inspect => {
            let options = collect::Options {
                collector: client.collector.authority(),
                ..collect::Options::default()
            };
            let mut snapshot = collect::take(&options);
            if let Some(system) = snapshot.system.as_mut().and_then(|s| s.data.as_mut()) {
                system.clock_offset_ms = shared.offset();
            }
            WorkResult::Snapshot {
                snapshot: Box::new(snapshot),
            }
        }
        WorkKind::Unsupported => WorkResult::Failed {
            error: format!(
                "this agent (version {}) does not know this kind of work",
                env!("CARGO_PKG_VERSION")
            ),
        },
    };
    send_result(client, item.id, result);
}

/// Sends the result of work `id`, cut to fit one request (see [`crate::work_result`]).
fn send_result(client: &EnrolledClient, id: u64, mut result: WorkResult) {
    let path = paths::work_result(id);
    let url = client.collector.url(&path);
    let sent = work_result::encode(&mut result, work_result::Limits::COLLECTOR).and_then(|body| {
        let response = client
            .collector
            .post(&path)
            .header("content-type", "application/json")
            .header("content-encoding", "zstd")
            .send(&body[..]);
        transport::finish::<serde_json::Value>(&url, response).map_err(ReportError::from)
    });
    match sent {
        Ok(_) => eprintln!("lifeline-agent: answered work {id}"),
        Err(e) => eprintln!("lifeline-agent: could not send the result of work {id}: {e}"),
    }
}

/// Paths of the agent's work API.
mod paths {
    pub const HEARTBEAT: &str = lifeline_shared::v1::api::paths::AGENT_HEARTBEAT;
    pub const WORK: &str = lifeline_shared::v1::api::paths::AGENT_WORK;

    pub fn work_result(id: u64) -> String {
        lifeline_shared::v1::api::paths::AGENT_WORK_RESULT.replace("{id}", &id.to_string())
    }
}

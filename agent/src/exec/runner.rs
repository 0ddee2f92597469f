//! Starts a program directly (never through a shell) with a deadline and bounded captured output.
//!
//! Every process the agent starts goes through [`run`] or [`run_with`]: diagnostics probes
//! (`systemctl`, `journalctl`) and approved remote actions. On Unix the child leads a process
//! group of its own, and the whole group is killed at the deadline, so a program that started
//! helpers (`sh -c 'sleep 30 & sleep 30'`) cannot leave them running; when the program exits in
//! time, whatever it left behind in its group is killed as well. Only a process that deliberately
//! leaves the group (`setsid`, a daemon) escapes; cgroups would be needed to catch those.
//!
//! The leader is only reaped after its group was killed: while it is an unreaped zombie its
//! process-group id cannot be handed to another process, so the kill never hits a stranger.
//! Output is read on one thread per pipe and kept up to the limits; more is read and dropped so
//! the child never blocks on a full pipe, and the result says it was truncated.

use std::ffi::OsStr;
use std::io::Read;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// `PATH` for every child: system directories only.
const SAFE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How long to wait for the output pipes to close once the group was killed. A process that left
/// the group may hold them open; its output is then cut off here.
const PIPE_GRACE: Duration = Duration::from_millis(500);

/// Bounds for one run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    /// Bytes kept from stdout; more output is read and discarded so the child never blocks.
    pub max_stdout: usize,
    pub max_stderr: usize,
}

impl Limits {
    pub fn new(timeout: Duration, max_stdout: usize) -> Self {
        Limits {
            timeout,
            max_stdout,
            max_stderr: 16 * 1024,
        }
    }
}

/// The environment a child gets. It never inherits the agent's own environment (which may hold
/// secrets or proxy settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Environment {
    /// Diagnostics probes: `PATH`, `LC_ALL=C.UTF-8`, no systemd pager or colours, so the output
    /// is stable English text we can parse.
    #[default]
    Probe,
    /// Approved remote actions: only `PATH` and `LANG=C.UTF-8`, working directory `/`.
    Action,
    /// Programs of the user's desktop session (the help and consent windows, `gsettings`):
    /// `PATH` plus the session variables in [`DESKTOP_VARIABLES`] that are set, so they reach
    /// the display, the session bus and the agent's own files. Nothing else is inherited.
    Desktop,
}

/// What a desktop-session child inherits: where the display, the session bus and the user's
/// files are, the locale, and the agent's own directory settings. None of these hold secrets
/// (`XAUTHORITY` names the cookie file, it does not contain it).
pub const DESKTOP_VARIABLES: &[&str] = &[
    "DISPLAY",
    "XAUTHORITY",
    "WAYLAND_DISPLAY",
    "XDG_RUNTIME_DIR",
    "XDG_SESSION_TYPE",
    "XDG_CURRENT_DESKTOP",
    "DBUS_SESSION_BUS_ADDRESS",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "XDG_CONFIG_HOME",
    "XDG_STATE_HOME",
    "XDG_CACHE_HOME",
    "LIFELINE_AGENT_DIR",
    "LIFELINE_LOG",
];

impl Environment {
    fn apply(self, command: &mut std::process::Command) {
        command.env_clear().env("PATH", SAFE_PATH);
        match self {
            Environment::Probe => {
                command
                    .env("LC_ALL", "C.UTF-8")
                    .env("SYSTEMD_PAGER", "")
                    .env("SYSTEMD_COLORS", "0");
            }
            Environment::Action => {
                command.env("LANG", "C.UTF-8");
                // The agent's own working directory is no business of an action.
                #[cfg(unix)]
                command.current_dir("/");
            }
            Environment::Desktop => {
                for name in DESKTOP_VARIABLES {
                    if let Some(value) = std::env::var_os(name) {
                        command.env(name, value);
                    }
                }
            }
        }
    }
}

/// Everything that shapes one run.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub limits: Limits,
    /// Most bytes kept of stdout and stderr together, on top of the per-stream limits.
    pub max_total: Option<usize>,
    pub environment: Environment,
}

impl Options {
    /// A diagnostics probe: [`Environment::Probe`], per-stream limits only.
    pub fn probe(limits: Limits) -> Options {
        Options {
            limits,
            max_total: None,
            environment: Environment::Probe,
        }
    }

    /// A program of the desktop session: [`Environment::Desktop`], per-stream limits only.
    pub fn desktop(limits: Limits) -> Options {
        Options {
            limits,
            max_total: None,
            environment: Environment::Desktop,
        }
    }

    /// A remote action: [`Environment::Action`], at most `output_limit` bytes of stdout and
    /// stderr together (a catalog's `output_limit_bytes`).
    pub fn action(timeout: Duration, output_limit: usize) -> Options {
        Options {
            limits: Limits {
                timeout,
                max_stdout: output_limit,
                max_stderr: output_limit,
            },
            max_total: Some(output_limit),
            environment: Environment::Action,
        }
    }
}

/// What a finished run produced.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// The deadline passed before the program and its pipes were done, and its process group
    /// was killed. [`run`] turns this into [`RunError::TimedOut`]; [`run_with`] returns it.
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl Output {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// The first line of stderr, for error messages.
    pub fn stderr_line(&self) -> String {
        String::from_utf8_lossy(&self.stderr)
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_owned()
    }

    /// The exit code, when the program exited by itself.
    pub fn exit_code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The signal that ended the program, when one did.
    pub fn signal(&self) -> Option<i32> {
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            self.status.signal()
        }
        #[cfg(not(unix))]
        {
            None
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{program} is not installed")]
    NotFound { program: String },
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} did not finish within {} ms and was stopped", timeout.as_millis())]
    TimedOut { program: String, timeout: Duration },
    #[error("waiting for {program}: {source}")]
    Wait {
        program: String,
        source: std::io::Error,
    },
}

/// Runs a probe: `program` with `args`, no shell, stdin closed, [`Environment::Probe`]. Running
/// past the deadline is an error ([`RunError::TimedOut`]).
pub fn run(program: &str, args: &[&str], limits: Limits) -> Result<Output, RunError> {
    let output = run_with(program, args, &Options::probe(limits))?;
    if output.timed_out {
        return Err(RunError::TimedOut {
            program: program.to_owned(),
            timeout: limits.timeout,
        });
    }
    Ok(output)
}

/// Runs `program` with `args`, no shell, stdin closed, in its own process group, as `options`
/// say. Running past the deadline is a result ([`Output::timed_out`], with the output so far),
/// not an error.
pub fn run_with<S: AsRef<OsStr>>(
    program: &str,
    args: &[S],
    options: &Options,
) -> Result<Output, RunError> {
    run_inner(program, args, options, None)
}

/// Like [`run_with`], with `input` written to the program's stdin (then closed) instead of an
/// empty stdin: how structured data reaches a child without a shell or its command line.
pub fn run_with_input<S: AsRef<OsStr>>(
    program: &str,
    args: &[S],
    options: &Options,
    input: Vec<u8>,
) -> Result<Output, RunError> {
    run_inner(program, args, options, Some(input))
}

fn run_inner<S: AsRef<OsStr>>(
    program: &str,
    args: &[S],
    options: &Options,
    input: Option<Vec<u8>>,
) -> Result<Output, RunError> {
    let started = Instant::now();
    let deadline = started + options.limits.timeout;
    #[allow(clippy::disallowed_methods)] // This is the one place allowed to start processes.
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    options.environment.apply(&mut command);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let mut child = command.spawn().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            RunError::NotFound {
                program: program.to_owned(),
            }
        } else {
            RunError::Spawn {
                program: program.to_owned(),
                source,
            }
        }
    })?;

    // Written on its own thread: a child that does not read its stdin must not block us. A
    // child that exits early closes the pipe, and the write error is of no interest.
    if let (Some(input), Some(mut pipe)) = (input, child.stdin.take()) {
        thread::spawn(move || {
            use std::io::Write;
            let _ = pipe.write_all(&input);
        });
    }
    let budget = Arc::new(AtomicUsize::new(options.max_total.unwrap_or(usize::MAX)));
    let stdout = child
        .stdout
        .take()
        .map(|pipe| Capture::start(pipe, options.limits.max_stdout, Arc::clone(&budget)));
    let stderr = child
        .stderr
        .take()
        .map(|pipe| Capture::start(pipe, options.limits.max_stderr, Arc::clone(&budget)));
    let captures = [&stdout, &stderr];

    let timed_out = match wait_for_leader(&mut child, deadline) {
        // Exited in time: let the pipes drain, but not past the deadline (something the program
        // started in the background may hold them open).
        Ok(true) => !wait_for_captures(&captures, deadline),
        Ok(false) => true,
        Err(source) => {
            kill_group(&mut child);
            let _ = child.wait();
            return Err(RunError::Wait {
                program: program.to_owned(),
                source,
            });
        }
    };
    // The program after a timeout, and in any case whatever it left behind in its group.
    kill_group(&mut child);
    let status = child.wait().map_err(|source| RunError::Wait {
        program: program.to_owned(),
        source,
    })?;
    wait_for_captures(&captures, Instant::now() + PIPE_GRACE);
    let (stdout, stdout_truncated) = stdout.map(Capture::take).unwrap_or_default();
    let (stderr, stderr_truncated) = stderr.map(Capture::take).unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
        stdout_truncated,
        stderr_truncated,
        timed_out,
        elapsed: started.elapsed(),
    })
}

/// Bytes read from one pipe so far.
#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    truncated: bool,
}

/// A pipe being read to its end on its own thread.
#[derive(Debug)]
struct Capture {
    reader: thread::JoinHandle<()>,
    captured: Arc<Mutex<Captured>>,
}

impl Capture {
    /// Keeps at most `limit` bytes, and only while `budget` (shared with the other pipe) lasts.
    fn start(mut pipe: impl Read + Send + 'static, limit: usize, budget: Arc<AtomicUsize>) -> Self {
        let captured = Arc::new(Mutex::new(Captured::default()));
        let shared = Arc::clone(&captured);
        let reader = thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let n = match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                let mut captured = shared.lock().unwrap_or_else(PoisonError::into_inner);
                let room = limit.saturating_sub(captured.bytes.len());
                let kept = claim(&budget, n.min(room));
                if kept < n {
                    captured.truncated = true;
                }
                captured.bytes.extend_from_slice(&buf[..kept]);
            }
        });
        Capture { reader, captured }
    }

    fn is_done(&self) -> bool {
        self.reader.is_finished()
    }

    /// What was read so far. A reader still blocked (a process outside the group holds the pipe)
    /// is left behind; it ends when that process closes the pipe.
    fn take(self) -> (Vec<u8>, bool) {
        let mut captured = self.captured.lock().unwrap_or_else(PoisonError::into_inner);
        let truncated = captured.truncated || !self.reader.is_finished();
        (std::mem::take(&mut captured.bytes), truncated)
    }
}

/// Takes up to `wanted` bytes from `budget`; returns how many it got.
fn claim(budget: &AtomicUsize, wanted: usize) -> usize {
    let mut granted = 0;
    let _ = budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
        granted = wanted.min(left);
        Some(left - granted)
    });
    granted
}

/// Sleeps a little longer each round: short programs finish in a few milliseconds.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(Duration::from_millis(1))
    }

    /// Sleeps until the next poll, or returns false when `deadline` has passed.
    fn pause(&mut self, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        thread::sleep(self.0.min(deadline - now));
        self.0 = (self.0 * 2).min(Duration::from_millis(20));
        true
    }
}

/// Whether every pipe reached its end before `deadline`.
fn wait_for_captures(captures: &[&Option<Capture>], deadline: Instant) -> bool {
    let mut backoff = Backoff::new();
    loop {
        if captures
            .iter()
            .all(|c| c.as_ref().is_none_or(Capture::is_done))
        {
            return true;
        }
        if !backoff.pause(deadline) {
            return false;
        }
    }
}

/// Polls until the child exits (`Ok(true)`) or the deadline passes (`Ok(false)`). On Unix the
/// child is not reaped here (see the module docs).
fn wait_for_leader(child: &mut Child, deadline: Instant) -> std::io::Result<bool> {
    let mut backoff = Backoff::new();
    loop {
        if leader_exited(child)? {
            return Ok(true);
        }
        if !backoff.pause(deadline) {
            return Ok(false);
        }
    }
}

#[cfg(unix)]
fn leader_exited(child: &mut Child) -> std::io::Result<bool> {
    use rustix::process::{Pid, WaitId, WaitIdOptions, waitid};
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    loop {
        match waitid(WaitId::Pid(Pid::from_child(child)), options) {
            Ok(status) => return Ok(status.is_some()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(errno) => return Err(errno.into()),
        }
    }
}

#[cfg(not(unix))]
fn leader_exited(child: &mut Child) -> std::io::Result<bool> {
    Ok(child.try_wait()?.is_some())
}

/// Kills the child's whole process group (on Unix; elsewhere the child alone). Before the
/// leader is reaped, so the group id still belongs to us.
#[cfg(unix)]
fn kill_group(child: &mut Child) {
    use rustix::process::{Pid, Signal, kill_process_group};
    // ESRCH (all gone) is the normal case after a clean exit.
    let _ = kill_process_group(Pid::from_child(child), Signal::KILL);
}

#[cfg(not(unix))]
fn kill_group(child: &mut Child) {
    let _ = child.kill();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_exit_status() {
        let out = run(
            "printf",
            &["a;b $HOME"],
            Limits::new(Duration::from_secs(5), 1024),
        )
        .unwrap();
        assert!(out.status.success());
        // No shell: the argument reaches the program verbatim.
        assert_eq!(out.stdout_text(), "a;b $HOME");
    }

    #[test]
    fn output_is_bounded() {
        let out = run(
            "seq",
            &["1", "100000"],
            Limits::new(Duration::from_secs(5), 100),
        )
        .unwrap();
        assert_eq!(out.stdout.len(), 100);
        assert!(out.stdout_truncated);
    }

    #[test]
    fn a_hung_program_is_killed_at_the_deadline() {
        let started = Instant::now();
        let err = run(
            "sleep",
            &["30"],
            Limits::new(Duration::from_millis(100), 100),
        )
        .unwrap_err();
        assert!(matches!(err, RunError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(err.to_string().contains("did not finish within 100 ms"));
    }

    #[test]
    fn a_missing_program_says_it_is_not_installed() {
        let err = run(
            "lifeline-no-such-program",
            &[],
            Limits::new(Duration::from_secs(1), 10),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "lifeline-no-such-program is not installed");
    }

    #[test]
    fn the_environment_is_not_inherited() {
        let out = run("env", &[], Limits::new(Duration::from_secs(5), 4096)).unwrap();
        let text = out.stdout_text();
        assert!(text.contains("LC_ALL=C.UTF-8"));
        assert!(!text.contains("HOME="));
    }

    #[test]
    fn actions_get_only_path_and_lang_and_run_in_the_root_directory() {
        let options = Options::action(Duration::from_secs(5), 4096);
        let out = run_with("/usr/bin/env", &[] as &[&str], &options).unwrap();
        let mut vars: Vec<String> = out.stdout_text().lines().map(str::to_owned).collect();
        vars.sort();
        assert_eq!(
            vars,
            ["LANG=C.UTF-8".to_owned(), format!("PATH={SAFE_PATH}")]
        );
        let out = run_with("/bin/pwd", &[] as &[&str], &options).unwrap();
        assert_eq!(out.stdout_text(), "/\n");
    }

    /// Whether `pid` still runs. A zombie is dead: it only waits for its new parent (init, or a
    /// container's PID 1 that may never reap) to collect it.
    fn is_running(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => false,
            Ok(stat) => {
                let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
                !matches!(state.and_then(|s| s.chars().next()), Some('Z' | 'X'))
            }
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_timeout_kills_the_whole_process_tree() {
        // Tests may use a shell to build a process tree; production never does.
        let options = Options::action(Duration::from_millis(500), 4096);
        let started = Instant::now();
        let out = run_with("/bin/sh", &["-c", "sleep 30 & echo $!; sleep 30"], &options).unwrap();
        assert!(out.timed_out);
        assert_eq!(out.signal(), Some(9));
        assert_eq!(out.exit_code(), None);
        assert!(started.elapsed() < Duration::from_secs(10));
        let grandchild: u32 = out.stdout_text().trim().parse().unwrap();
        let gone_by = Instant::now() + Duration::from_secs(5);
        while is_running(grandchild) && Instant::now() < gone_by {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(
            !is_running(grandchild),
            "the background sleep {grandchild} survived the timeout"
        );
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn helpers_left_behind_are_killed_and_do_not_hold_the_run() {
        // The program exits at once but leaves a sleeper holding stdout: the run ends at the
        // deadline, the sleeper is killed, and the output so far comes back.
        let options = Options::action(Duration::from_millis(500), 4096);
        let started = Instant::now();
        let out = run_with("/bin/sh", &["-c", "sleep 30 & echo $!"], &options).unwrap();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(out.exit_code(), Some(0));
        assert!(out.timed_out);
        let helper: u32 = out.stdout_text().trim().parse().unwrap();
        let gone_by = Instant::now() + Duration::from_secs(5);
        while is_running(helper) && Instant::now() < gone_by {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(!is_running(helper), "helper {helper} survived");

        // A helper that let go of the pipes does not delay the run, and is killed too.
        let out = run_with(
            "/bin/sh",
            &["-c", "sleep 30 >/dev/null 2>&1 & echo $!"],
            &Options::action(Duration::from_secs(20), 4096),
        )
        .unwrap();
        assert!(!out.timed_out);
        let helper: u32 = out.stdout_text().trim().parse().unwrap();
        let gone_by = Instant::now() + Duration::from_secs(5);
        while is_running(helper) && Instant::now() < gone_by {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(!is_running(helper), "helper {helper} survived");
    }

    #[test]
    fn a_timed_out_run_keeps_the_output_so_far() {
        let options = Options::action(Duration::from_millis(300), 4096);
        let out = run_with("/bin/sh", &["-c", "echo started; sleep 30"], &options).unwrap();
        assert!(out.timed_out);
        assert_eq!(out.stdout_text(), "started\n");
    }

    #[test]
    fn action_output_over_the_limit_is_truncated_and_marked() {
        let options = Options::action(Duration::from_secs(5), 1000);
        let out = run_with("/usr/bin/seq", &["1", "100000"], &options).unwrap();
        assert!(out.status.success());
        assert!(!out.timed_out);
        assert_eq!(out.stdout.len(), 1000);
        assert!(out.stdout_truncated);
        assert!(out.stdout_text().starts_with("1\n2\n3\n"));

        // The limit covers stdout and stderr together.
        let out = run_with("/bin/sh", &["-c", "seq 1 1000 >&2; seq 1 1000"], &options).unwrap();
        assert_eq!(out.stdout.len() + out.stderr.len(), 1000);
        assert!(out.stdout_truncated);
        assert!(out.stderr_truncated || out.stderr.len() < 1000);

        // Under the limit nothing is marked.
        let out = run_with("/usr/bin/seq", &["1", "3"], &options).unwrap();
        assert_eq!(out.stdout_text(), "1\n2\n3\n");
        assert!(!out.stdout_truncated && !out.stderr_truncated);
    }

    #[test]
    fn input_reaches_the_program_on_stdin() {
        let options = Options::probe(Limits::new(Duration::from_secs(5), 1024));
        let out = run_with_input("cat", &[] as &[&str], &options, b"{\"a\": 1}".to_vec()).unwrap();
        assert_eq!(out.stdout_text(), "{\"a\": 1}");
    }

    #[test]
    fn desktop_children_get_only_the_session_variables() {
        let options = Options::desktop(Limits::new(Duration::from_secs(5), 64 * 1024));
        let out = run_with("/usr/bin/env", &[] as &[&str], &options).unwrap();
        for line in out.stdout_text().lines() {
            let name = line.split('=').next().unwrap();
            assert!(
                name == "PATH" || DESKTOP_VARIABLES.contains(&name),
                "{name} was inherited"
            );
        }
    }

    #[test]
    fn the_shared_budget_never_hands_out_more_than_it_has() {
        let budget = AtomicUsize::new(10);
        assert_eq!(claim(&budget, 4), 4);
        assert_eq!(claim(&budget, 8), 6);
        assert_eq!(claim(&budget, 1), 0);
    }
}

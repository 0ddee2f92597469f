//! Starts a program directly (never through a shell) with a deadline and bounded captured output.
//!
//! Every process the agent starts goes through [`run`]: diagnostics probes (`systemctl`,
//! `journalctl`) today, approved remote actions later. A child that outlives its deadline is killed
//! and reaped, so a hung probe can never hang the agent or leave a zombie behind.

use std::io::Read;
use std::process::{Child, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

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

/// What a finished run produced.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub elapsed: Duration,
}

impl Output {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
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

/// Runs `program` with `args`, no shell, stdin closed, a minimal fixed environment.
pub fn run(program: &str, args: &[&str], limits: Limits) -> Result<Output, RunError> {
    let started = Instant::now();
    #[allow(clippy::disallowed_methods)] // This is the one place allowed to start processes.
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Probes must not inherit secrets from our environment, and their output must be stable
        // (English, no pager, no colour) so we can parse it.
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LC_ALL", "C.UTF-8")
        .env("SYSTEMD_PAGER", "")
        .env("SYSTEMD_COLORS", "0");
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

    let stdout = child.stdout.take().map(|s| drain(s, limits.max_stdout));
    let stderr = child.stderr.take().map(|s| drain(s, limits.max_stderr));

    let status = match wait_until(&mut child, started + limits.timeout) {
        Ok(Some(status)) => status,
        Ok(None) => {
            // Kill and reap; the readers finish once the pipes close.
            let _ = child.kill();
            let _ = child.wait();
            return Err(RunError::TimedOut {
                program: program.to_owned(),
                timeout: limits.timeout,
            });
        }
        Err(source) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RunError::Wait {
                program: program.to_owned(),
                source,
            });
        }
    };
    let (stdout, stdout_truncated) = stdout.map(join_reader).unwrap_or_default();
    let (stderr, _) = stderr.map(join_reader).unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
        stdout_truncated,
        elapsed: started.elapsed(),
    })
}

type Reader = thread::JoinHandle<(Vec<u8>, bool)>;

/// Reads a pipe to its end on its own thread, keeping at most `limit` bytes.
fn drain(mut pipe: impl Read + Send + 'static, limit: usize) -> Reader {
    thread::spawn(move || {
        let mut kept = Vec::new();
        let mut truncated = false;
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = limit.saturating_sub(kept.len());
                    if n > room {
                        truncated = true;
                    }
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        (kept, truncated)
    })
}

fn join_reader(reader: Reader) -> (Vec<u8>, bool) {
    reader.join().unwrap_or_default()
}

/// Polls the child until it exits or the deadline passes (`Ok(None)`).
fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    // Short probes finish in a few milliseconds: poll fast first, then back off.
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
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
}

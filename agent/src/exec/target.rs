//! The processes a `pid` parameter may not name: the ones whose end ends the machine's sessions.
//!
//! A `pid` value is checked twice: its type (a positive integer) on both sides, and here, on the
//! machine, against the live process table, which only the agent sees. Refused: PID 1, kernel
//! threads, the agent itself and every process it runs under, a login session's leader as
//! systemd-logind records it, and the processes desktop sessions run on
//! ([`SESSION_PROCESSES`]: display servers, session and login managers, the system bus). Killing
//! one of those ends what the catalog's `reboot` action guards with approval and consent, so a
//! medium-risk `kill-process` must not reach it. `catalog sign`'s lint relies on this check.

use std::path::Path;

use lifeline_shared::v1::catalog::is_session_process;

/// Where systemd-logind keeps one file per login session, with its leader's pid.
pub const LOGIND_SESSIONS: &str = "/run/systemd/sessions";

/// Why a process may not be the target of an action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtectedProcess {
    #[error("process {0} is PID 1, the init system")]
    Init(u32),
    #[error("process {0} is a kernel thread")]
    KernelThread(u32),
    #[error("process {0} is the Lifeline agent or a process it runs under")]
    Agent(u32),
    #[error("process {pid} is the leader of login session {session}; ending it ends that session")]
    SessionLeader { pid: u32, session: String },
    #[error("process {pid} is {name}, which desktop or login sessions run on")]
    SessionProcess { pid: u32, name: String },
}

/// Checks that `pid` is not a process whose end ends the machine's sessions, reading the process
/// table of `/proc` and logind's sessions in [`LOGIND_SESSIONS`]. A pid that does not exist is
/// not refused: the program reports it.
pub fn check_pid(pid: u32) -> Result<(), ProtectedProcess> {
    check_pid_in(pid, Path::new("/proc"), Path::new(LOGIND_SESSIONS))
}

/// [`check_pid`] with the places to read passed in.
pub fn check_pid_in(pid: u32, proc: &Path, sessions: &Path) -> Result<(), ProtectedProcess> {
    if pid == 1 {
        return Err(ProtectedProcess::Init(pid));
    }
    if agent_lineage(proc).contains(&pid) {
        return Err(ProtectedProcess::Agent(pid));
    }
    if let Some(stat) = read_stat(proc, pid) {
        if pid == 2 || stat.ppid == 2 {
            return Err(ProtectedProcess::KernelThread(pid));
        }
        if is_session_process(&stat.comm) {
            return Err(ProtectedProcess::SessionProcess {
                pid,
                name: stat.comm,
            });
        }
    }
    if let Some(session) = logind_session_led_by(sessions, pid) {
        return Err(ProtectedProcess::SessionLeader { pid, session });
    }
    Ok(())
}

/// The fields of `/proc/PID/stat` this check reads.
struct Stat {
    comm: String,
    ppid: u32,
}

fn read_stat(proc: &Path, pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(proc.join(pid.to_string()).join("stat")).ok()?;
    // `PID (COMM) STATE PPID ...`; COMM may itself hold spaces and parentheses.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let mut rest = text.get(close + 1..)?.split_ascii_whitespace();
    let _state = rest.next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some(Stat { comm, ppid })
}

/// This process and its ancestors, up to (not including) PID 1.
fn agent_lineage(proc: &Path) -> Vec<u32> {
    let mut lineage = Vec::new();
    let mut pid = std::process::id();
    // Bounded: a cycle in a hostile /proc must not hang the agent.
    while pid > 1 && lineage.len() < 64 {
        lineage.push(pid);
        match read_stat(proc, pid) {
            Some(stat) => pid = stat.ppid,
            None => break,
        }
    }
    lineage
}

/// The logind session whose leader is `pid`, if any: each file in `sessions` is one session,
/// named by its id, with a `LEADER=PID` line.
fn logind_session_led_by(sessions: &Path, pid: u32) -> Option<String> {
    let wanted = pid.to_string();
    std::fs::read_dir(sessions)
        .ok()?
        .flatten()
        .take(4096)
        .find_map(|entry| {
            let text = std::fs::read_to_string(entry.path()).ok()?;
            let leader = text.lines().find_map(|line| line.strip_prefix("LEADER="))?;
            (leader.trim() == wanted).then(|| entry.file_name().to_string_lossy().into_owned())
        })
}

#[cfg(all(test, target_os = "linux"))]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
mod tests {
    use std::process::{Child, Command};

    use super::*;

    /// A child that sleeps, killed when dropped.
    struct Sleeper(Child);

    impl Sleeper {
        // A process of the test's own to name; the rule for production code is about the agent.
        #[allow(clippy::disallowed_methods)]
        fn start(program: &Path) -> Sleeper {
            Sleeper(Command::new(program).arg("30").spawn().unwrap())
        }

        fn pid(&self) -> u32 {
            self.0.id()
        }
    }

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn sleep_binary() -> &'static Path {
        ["/usr/bin/sleep", "/bin/sleep"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists())
            .expect("sleep is installed")
    }

    #[test]
    fn an_ordinary_process_may_be_named() {
        let child = Sleeper::start(sleep_binary());
        assert_eq!(check_pid(child.pid()), Ok(()));
        // One that does not exist is left to the program to report.
        assert_eq!(check_pid(4_194_304), Ok(()));
    }

    #[test]
    fn init_the_agent_and_its_ancestors_are_refused() {
        assert_eq!(check_pid(1), Err(ProtectedProcess::Init(1)));
        let me = std::process::id();
        assert_eq!(check_pid(me), Err(ProtectedProcess::Agent(me)));
        let parent = read_stat(Path::new("/proc"), me).unwrap().ppid;
        if parent > 1 {
            assert_eq!(check_pid(parent), Err(ProtectedProcess::Agent(parent)));
        }
    }

    #[test]
    fn a_process_desktop_sessions_run_on_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let disguised = dir.path().join("Xwayland");
        std::fs::copy(sleep_binary(), &disguised).unwrap();
        let child = Sleeper::start(&disguised);
        let err = check_pid(child.pid()).unwrap_err();
        assert_eq!(
            err,
            ProtectedProcess::SessionProcess {
                pid: child.pid(),
                name: "Xwayland".into()
            }
        );
        assert!(err.to_string().contains("Xwayland"), "{err}");
    }

    #[test]
    fn a_login_sessions_leader_is_refused() {
        let child = Sleeper::start(sleep_binary());
        let sessions = tempfile::tempdir().unwrap();
        std::fs::write(
            sessions.path().join("7"),
            format!(
                "# This is private data. Do not parse.\nUID=1000\nLEADER={}\n",
                child.pid()
            ),
        )
        .unwrap();
        std::fs::write(sessions.path().join("8"), "UID=1001\nLEADER=1\n").unwrap();
        let err = check_pid_in(child.pid(), Path::new("/proc"), sessions.path()).unwrap_err();
        assert_eq!(
            err,
            ProtectedProcess::SessionLeader {
                pid: child.pid(),
                session: "7".into()
            }
        );
        assert!(err.to_string().contains("login session 7"), "{err}");
    }

    #[test]
    fn kernel_threads_are_refused() {
        // kthreadd is PID 2 on a host; in a container it may be absent, then there is nothing
        // to refuse.
        if let Some(stat) = read_stat(Path::new("/proc"), 2)
            && stat.comm == "kthreadd"
        {
            assert_eq!(check_pid(2), Err(ProtectedProcess::KernelThread(2)));
        }
    }
}

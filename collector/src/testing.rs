//! Test fixtures shared by the collector's unit tests and the end-to-end tests: a throwaway
//! PostgreSQL cluster.
//!
//! [`PgCluster::start`] runs `initdb` and `pg_ctl start` in a fresh temporary directory, on a
//! free 127.0.0.1 port, with its socket in that directory; dropping it stops the server at once
//! and removes the directory. The binaries come from PATH, else from the highest
//! `/usr/lib/postgresql/*/bin`. `initdb` refuses to run as root, so under root (as in CI) the
//! directory is handed to the `postgres` user and the binaries run through
//! `runuser -u postgres --`. Without PostgreSQL the fixture fails with a message saying to
//! install it: tests that need it fail rather than skip.
//!
//! [`PgCluster::start_with_tls`] starts one that accepts TLS connections only, with a server
//! certificate for 127.0.0.1 and `localhost` from a CA of its own ([`PgCluster::tls_root_cert`]).

// A test fixture, not production code: it starts the PostgreSQL server processes itself.
#![allow(clippy::disallowed_methods)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where the Debian/Ubuntu packages put each major version's server binaries.
const DEBIAN_PG_ROOT: &str = "/usr/lib/postgresql";
/// How long `pg_ctl start -w` may wait for the server to accept connections.
const START_TIMEOUT_SECS: &str = "60";
/// How each cluster's directory name starts.
const DIR_PREFIX: &str = "lifeline-pg";
/// In each cluster's directory: the process id of the test process that started it.
const OWNER_FILE: &str = "owner.pid";
/// How long a sweep waits for an abandoned server to exit.
const SWEEP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Attempts at starting on a fresh free port (another process may take the port in between).
const START_ATTEMPTS: usize = 3;

/// A PostgreSQL server of its own, for one test.
#[derive(Debug)]
pub struct PgCluster {
    /// Holds the data directory, the socket and the log; removed on drop.
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Run the binaries as the `postgres` user (we are root).
    as_postgres: bool,
    port: u16,
    /// `Some(ca.pem)` when the server accepts TLS connections only.
    tls_root_cert: Option<PathBuf>,
}

impl PgCluster {
    /// Creates and starts a cluster with trust authentication for the superuser `postgres`.
    pub fn start() -> Result<PgCluster, String> {
        PgCluster::start_inner(false)
    }

    /// Like [`PgCluster::start`], but TCP connections must use TLS (`hostssl` in `pg_hba.conf`;
    /// a plain one is refused). The server's certificate, for 127.0.0.1 and `localhost`, is
    /// signed by a CA made for this cluster: [`PgCluster::tls_root_cert`].
    pub fn start_with_tls() -> Result<PgCluster, String> {
        PgCluster::start_inner(true)
    }

    fn start_inner(tls: bool) -> Result<PgCluster, String> {
        let bin = find_binaries(std::env::var_os("PATH"), Path::new(DEBIAN_PG_ROOT))?;
        let as_postgres = rustix::process::geteuid().is_root();
        // Under root the server runs as `postgres`, who must reach the directory: /tmp is
        // open to everyone, a root-only TMPDIR may not be.
        let parent = if as_postgres {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        sweep_abandoned(&parent);
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in(&parent)
            .map_err(|e| format!("cannot create a directory for PostgreSQL: {e}"))?;
        let owner = dir.path().join(OWNER_FILE);
        std::fs::write(&owner, std::process::id().to_string())
            .map_err(|e| format!("cannot write {}: {e}", owner.display()))?;
        if as_postgres {
            let (uid, gid) = postgres_user()?;
            rustix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| format!("cannot hand {} to postgres: {e}", dir.path().display()))?;
        }
        let mut cluster = PgCluster {
            dir,
            bin,
            as_postgres,
            port: 0,
            tls_root_cert: None,
        };
        let data = cluster.data_dir();
        let out = cluster.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        check("initdb", &out)?;
        if tls {
            cluster.require_tls()?;
        }
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            cluster.port = free_port()?;
            match cluster.pg_ctl_start() {
                Ok(()) => return Ok(cluster),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// The CA certificate (PEM file) that signed the server's certificate, when the cluster was
    /// started with [`PgCluster::start_with_tls`].
    pub fn tls_root_cert(&self) -> Option<&Path> {
        self.tls_root_cert.as_deref()
    }

    /// Stops the server (as an outage would), keeping its data for [`PgCluster::start_again`].
    pub fn stop(&self) -> Result<(), String> {
        let data = self.data_dir();
        let out = self.run(
            "pg_ctl",
            &[
                "stop".as_ref(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-w".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
            ],
        )?;
        check("pg_ctl stop", &out)
    }

    /// Starts the stopped server again on the same port.
    pub fn start_again(&self) -> Result<(), String> {
        self.pg_ctl_start()
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` as the superuser (no password: trust authentication).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `name` (letters, digits and `_` only) and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, String> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(format!(
                "database name {name:?}: use lower-case letters, digits and _"
            ));
        }
        let port = self.port.to_string();
        let out = self.run(
            "createdb",
            &[
                "-h".as_ref(),
                "127.0.0.1".as_ref(),
                "-p".as_ref(),
                port.as_ref(),
                "-U".as_ref(),
                "postgres".as_ref(),
                name.as_ref(),
            ],
        )?;
        check("createdb", &out)?;
        Ok(self.url(name))
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// Writes a CA, a server certificate and key into the data directory, turns `ssl` on and
    /// lets TCP clients in over TLS only.
    fn require_tls(&mut self) -> Result<(), String> {
        let now = time::OffsetDateTime::now_utc();
        let (ca, ca_pair) = crate::pki::CertificateAuthority::generate(
            now,
            &["127.0.0.1".to_owned(), "localhost".to_owned()],
        )
        .map_err(|e| format!("cannot make a CA for PostgreSQL: {e}"))?;
        let server = ca
            .issue_server_cert(&["127.0.0.1".to_owned(), "localhost".to_owned()], now)
            .map_err(|e| format!("cannot make PostgreSQL's certificate: {e}"))?;
        let data = self.data_dir();
        let ca_path = self.dir.path().join("ca.pem");
        let hba = "# Unix socket for pg_ctl and createdb; TCP over TLS only.\n\
                   local all all trust\n\
                   hostssl all all 127.0.0.1/32 trust\n";
        let files = [
            (ca_path.clone(), ca_pair.cert_pem.as_str(), 0o644),
            (data.join("server.crt"), server.cert_pem.as_str(), 0o644),
            // The server refuses a key others can read.
            (data.join("server.key"), server.key_pem.as_str(), 0o600),
            (data.join("pg_hba.conf"), hba, 0o600),
        ];
        let owner = if self.as_postgres {
            Some(postgres_user()?)
        } else {
            None
        };
        for (path, contents, mode) in files {
            std::fs::write(&path, contents)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            let mode = rustix::fs::Mode::from_raw_mode(mode);
            rustix::fs::chmod(&path, mode)
                .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))?;
            if let Some((uid, gid)) = owner {
                rustix::fs::chown(&path, Some(uid), Some(gid))
                    .map_err(|e| format!("cannot hand {} to postgres: {e}", path.display()))?;
            }
        }
        self.tls_root_cert = Some(ca_path);
        Ok(())
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let data = self.data_dir();
        let log = self.log_file();
        // pg_ctl hands -o to the server through a shell: the temporary path has no spaces.
        let mut server_options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        if self.tls_root_cert.is_some() {
            // Relative to the data directory.
            server_options
                .push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        let out = self.run(
            "pg_ctl",
            &[
                "start".as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                START_TIMEOUT_SECS.as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                server_options.as_ref(),
            ],
        )?;
        check("pg_ctl start", &out).map_err(|error| {
            let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
            format!("{error}\nserver log:\n{log}")
        })
    }

    /// Runs one of the PostgreSQL binaries (as `postgres` when we are root).
    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<Output, String> {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("PGDATA")
            .output()
            .map_err(|e| {
                if self.as_postgres {
                    format!(
                        "cannot run runuser (util-linux) for {}: {e}",
                        path.display()
                    )
                } else {
                    format!("cannot run {}: {e}", path.display())
                }
            })
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.port == 0 {
            return;
        }
        let data = self.data_dir();
        let _ = self.run(
            "pg_ctl",
            &[
                "stop".as_ref(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
            ],
        );
    }
}

/// Stops and removes the clusters in `parent` whose test process is gone without having dropped
/// them (killed by a timeout or SIGKILL), so abandoned servers do not pile up on a developer's
/// machine. A directory without an owner file, or whose owner still runs, is left alone.
fn sweep_abandoned(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let is_cluster = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(DIR_PREFIX));
        let dir = entry.path();
        if !is_cluster {
            continue;
        }
        let Some(owner) = read_pid(&dir.join(OWNER_FILE)) else {
            continue;
        };
        if is_running(owner) {
            continue;
        }
        // The postmaster's pid is the first line of postmaster.pid while it runs.
        if let Some(server) = read_pid(&dir.join("data").join("postmaster.pid"))
            && std::fs::read_to_string(format!("/proc/{server}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
            && let Some(pid) = rustix::process::Pid::from_raw(server)
        {
            // SIGQUIT: immediate shutdown, as `pg_ctl stop -m immediate` sends.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::QUIT);
            let deadline = std::time::Instant::now() + SWEEP_WAIT;
            while is_running(server) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The process id on the first line of `path`.
fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Whether process `pid` exists and has not exited (a zombie nobody reaped has).
fn is_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // pid (comm) STATE ...: the command may hold spaces and parentheses.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

fn check(what: &str, out: &Output) -> Result<(), String> {
    if out.status.success() {
        return Ok(());
    }
    let said = [&out.stderr, &out.stdout]
        .iter()
        .map(|bytes| String::from_utf8_lossy(bytes).trim().to_owned())
        .filter(|text| !text.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    Err(format!("{what} failed ({}): {said}", out.status))
}

/// The directory holding `initdb` and `pg_ctl`: on `path` (PATH) first, then the highest
/// version under `debian_root` (`/usr/lib/postgresql/VERSION/bin`).
fn find_binaries(path: Option<std::ffi::OsString>, debian_root: &Path) -> Result<PathBuf, String> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = path {
        for dir in std::env::split_paths(&path) {
            if has_both(&dir) {
                // A symlink on PATH (/usr/local/bin/initdb) points at the real bin directory,
                // where the other binaries (createdb) are too.
                let real = std::fs::canonicalize(dir.join("initdb"))
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                    .filter(|d| has_both(d));
                return Ok(real.unwrap_or(dir));
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(debian_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has_both(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        format!(
            "PostgreSQL server binaries (initdb, pg_ctl) are not on PATH nor in \
             {}/*/bin: install the `postgresql` package (apt-get install postgresql) to run \
             the PostgreSQL tests",
            debian_root.display()
        )
    })
}

/// The `postgres` user's uid and gid, from /etc/passwd.
fn postgres_user() -> Result<(rustix::fs::Uid, rustix::fs::Gid), String> {
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| format!("cannot read /etc/passwd: {e}"))?;
    passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            if fields.next()? != "postgres" {
                return None;
            }
            let uid = fields.nth(1)?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            Some((
                rustix::fs::Uid::from_raw(uid),
                rustix::fs::Gid::from_raw(gid),
            ))
        })
        .ok_or_else(|| {
            "initdb refuses to run as root and there is no `postgres` user to run it as: \
             install the `postgresql` package (it creates the user)"
                .to_owned()
        })
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_whose_test_process_died_is_stopped_and_removed_by_the_next_start() {
        let cluster = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
        let dir = cluster.dir.path().to_owned();
        let server = read_pid(&dir.join("data").join("postmaster.pid")).unwrap();
        assert!(is_running(server));
        // A process that has exited stands in for a test process killed by a timeout, which
        // never dropped its cluster.
        let mut gone = Command::new("true").spawn().unwrap();
        let dead = gone.id();
        gone.wait().unwrap();
        std::fs::write(dir.join(OWNER_FILE), dead.to_string()).unwrap();
        std::mem::forget(cluster);

        // Another cluster in the same place, whose owner (this process) runs, is left alone.
        let alive = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
        sweep_abandoned(dir.parent().unwrap());
        assert!(!is_running(server), "the abandoned server was stopped");
        assert!(!dir.exists(), "its directory was removed");
        assert!(alive.dir.path().exists());
        alive.create_database("still_here").unwrap();
    }

    #[test]
    fn binaries_come_from_the_highest_version_and_their_absence_says_what_to_install() {
        let root = tempfile::tempdir().unwrap();
        let err = find_binaries(None, root.path()).unwrap_err();
        assert!(err.contains("install the `postgresql` package"), "{err}");
        for version in ["9", "15", "13", "16-broken"] {
            let bin = root.path().join(version).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::write(bin.join("initdb"), "").unwrap();
            std::fs::write(bin.join("pg_ctl"), "").unwrap();
        }
        let empty_path = Some(std::ffi::OsString::from(root.path().join("nothing-here")));
        assert_eq!(
            find_binaries(empty_path, root.path()).unwrap(),
            root.path().join("15/bin")
        );
        let on_path = Some(std::ffi::OsString::from(root.path().join("9/bin")));
        assert_eq!(
            find_binaries(on_path, root.path()).unwrap(),
            root.path().join("9/bin")
        );
    }
}

//! Test harness for collector scenarios: a real collector on a free port with a temporary data
//! directory and real TLS, agents with their own `LIFELINE_AGENT_DIR`, and a raw HTTPS client.
//!
//! Child processes are killed when their owner is dropped, so a failing test never leaves a
//! collector running.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use lifeline_collector::bootstrap::{CA_CERT_FILE, LISTEN_ADDR_FILE};
use lifeline_shared::v1::api::{IDEMPOTENCY_KEY_HEADER, NewTicket, Urgency, paths};
use lifeline_shared::v1::snapshot::Snapshot;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tempfile::TempDir;
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig, TlsProvider};

use crate::binaries;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Installs the process-wide TLS provider once (tests build rustls clients).
pub fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A running `lifeline-collector serve`.
#[derive(Debug)]
pub struct TestCollector {
    child: Child,
    dir: Arc<TempDir>,
    /// `https://127.0.0.1:PORT`
    pub url: String,
    pub admin_token: String,
    pub enrollment_token: String,
    /// Everything this start printed on stdout.
    pub stdout: Arc<Mutex<String>>,
    /// The CA that signed the server certificate, when it is not the collector's own.
    server_ca: Option<PathBuf>,
}

impl TestCollector {
    /// A collector on a fresh data directory.
    pub fn spawn() -> TestCollector {
        Self::spawn_with(&[])
    }

    /// A collector on a fresh data directory, with extra `serve` flags.
    pub fn spawn_with(extra: &[&str]) -> TestCollector {
        Self::spawn_trusting(extra, None)
    }

    /// Like [`TestCollector::spawn_with`]; `server_ca` is the CA that signed the server's
    /// certificate when it is not the collector's own (`--tls-cert`).
    pub fn spawn_trusting(extra: &[&str], server_ca: Option<&Path>) -> TestCollector {
        install_crypto();
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let (child, url, stdout) = start(&data_dir(&dir), "127.0.0.1:0", extra, server_ca);
        let printed = eventually("first-start secrets", STARTUP_TIMEOUT, || {
            let text = stdout.lock().unwrap().clone();
            let admin = token_after(&text, "LIFELINE_TOKEN=")?;
            let enroll = token_after(&text, "--token ")?;
            Some((admin, enroll))
        });
        TestCollector {
            child,
            dir,
            url,
            admin_token: printed.0,
            enrollment_token: printed.1,
            stdout,
            server_ca: server_ca.map(Path::to_path_buf),
        }
    }

    /// Stops this collector and starts a new one on the same data directory and address
    /// (enrolled agents keep the collector URL they enrolled with).
    pub fn restart(mut self) -> TestCollector {
        self.stop();
        let addr = self.url.trim_start_matches("https://").to_owned();
        let (child, url, stdout) =
            start(&data_dir(&self.dir), &addr, &[], self.server_ca.as_deref());
        TestCollector {
            child,
            dir: Arc::clone(&self.dir),
            url,
            admin_token: self.admin_token.clone(),
            enrollment_token: self.enrollment_token.clone(),
            stdout,
            server_ca: self.server_ca.clone(),
        }
    }

    /// Stops the collector process (its data directory stays; [`TestCollector::restart`]).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn data_dir(&self) -> PathBuf {
        data_dir(&self.dir)
    }

    /// The CA clients pin: the collector's own `ca.pem`, or the operator's CA with `--tls-cert`.
    pub fn ca_path(&self) -> PathBuf {
        self.server_ca
            .clone()
            .unwrap_or_else(|| self.data_dir().join(CA_CERT_FILE))
    }

    /// Runs a client subcommand of `lifeline-collector` with the admin token.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_as(&self.admin_token, args)
    }

    /// Runs a client subcommand with `token`, connection settings from the environment.
    pub fn cli_as(&self, token: &str, args: &[&str]) -> Output {
        Command::new(binaries::collector())
            .args(args)
            .env("LIFELINE_SERVER", &self.url)
            .env("LIFELINE_CA", self.ca_path())
            .env("LIFELINE_TOKEN", token)
            .env_remove("LIFELINE_LOG")
            .output()
            .expect("run lifeline-collector")
    }

    /// Runs a client subcommand that must succeed, and returns its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert_success(&out, &format!("lifeline-collector {}", args.join(" ")));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a client subcommand with `--json` that must succeed, parsed.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.cli_ok(&all)).expect("--json output is JSON")
    }

    /// A raw HTTPS client that trusts this collector's CA, without a client certificate.
    pub fn http(&self) -> Http {
        Http::new(&self.url, &self.ca_path(), None)
    }

    /// Moves the collector's clock forward by `secs` seconds (it reads the offset at every use).
    pub fn advance_clock(&self, secs: i64) {
        let file = clock_file(&self.data_dir());
        let now: i64 = fs::read_to_string(&file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        fs::write(&file, (now + secs).to_string()).expect("write the clock offset");
    }

    /// The collector's log so far (stderr), for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.data_dir().join("collector.log")).unwrap_or_default()
    }
}

impl Drop for TestCollector {
    fn drop(&mut self) {
        self.stop();
    }
}

fn data_dir(dir: &TempDir) -> PathBuf {
    dir.path().join("data")
}

/// The offset file the test collector's clock follows (see [`TestCollector::advance_clock`]).
fn clock_file(data_dir: &Path) -> PathBuf {
    data_dir.with_file_name("clock-offset")
}

fn token_after(text: &str, marker: &str) -> Option<String> {
    let start = text.find(marker)? + marker.len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (token.len() > 10).then_some(token)
}

fn start(
    data_dir: &Path,
    listen: &str,
    extra: &[&str],
    server_ca: Option<&Path>,
) -> (Child, String, Arc<Mutex<String>>) {
    let listen_file = data_dir.join(LISTEN_ADDR_FILE);
    let _ = fs::remove_file(&listen_file);
    fs::create_dir_all(data_dir).expect("create data dir");
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data_dir.join("collector.log"))
        .expect("open collector log");
    let mut child = Command::new(binaries::collector())
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--test-clock-file")
        .arg(clock_file(data_dir))
        .args(["--listen", listen])
        .args(extra)
        .env("LIFELINE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start lifeline-collector serve");
    let stdout = Arc::new(Mutex::new(String::new()));
    if let Some(pipe) = child.stdout.take() {
        let sink = Arc::clone(&stdout);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
    }
    let addr = eventually("the collector to listen", STARTUP_TIMEOUT, || {
        if let Ok(Some(status)) = child.try_wait() {
            let log = fs::read_to_string(data_dir.join("collector.log")).unwrap_or_default();
            panic!("collector exited with {status} during start:\n{log}");
        }
        fs::read_to_string(&listen_file)
            .ok()
            .filter(|a| !a.trim().is_empty())
    });
    let url = format!("https://{}", addr.trim());
    // Ready means answering: wait for /healthz over TLS.
    let trusted = server_ca.map_or_else(|| data_dir.join(CA_CERT_FILE), Path::to_path_buf);
    let http = Http::new(&url, &trusted, None);
    eventually("/healthz", STARTUP_TIMEOUT, || {
        (http.get(paths::HEALTHZ, None).status == 200).then_some(())
    });
    (child, url, stdout)
}

/// An enrolled agent with its own directory.
#[derive(Debug)]
pub struct TestAgent {
    dir: TempDir,
    pub machine_id: String,
}

impl TestAgent {
    /// Enrolls a new agent with `collector`'s first enrollment token.
    pub fn enrolled(collector: &TestCollector) -> TestAgent {
        Self::enrolled_with(collector, &[]).0
    }

    /// Enrolls a new agent with extra `enroll` flags; also returns what `enroll` printed.
    pub fn enrolled_with(collector: &TestCollector, extra: &[&str]) -> (TestAgent, String) {
        let dir = tempfile::tempdir().expect("agent dir");
        let agent = TestAgent {
            dir,
            machine_id: String::new(),
        };
        let out = agent.enroll_with(
            collector,
            &collector.enrollment_token,
            &collector.ca_path(),
            extra,
        );
        assert_success(&out, "lifeline-agent enroll");
        let printed = String::from_utf8_lossy(&out.stdout).into_owned();
        let config: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(agent.dir.path().join("agent.json")).unwrap())
                .unwrap();
        let agent = TestAgent {
            machine_id: config["machine_id"]
                .as_str()
                .expect("machine_id")
                .to_owned(),
            ..agent
        };
        (agent, printed)
    }

    /// An agent directory with nothing in it (not enrolled).
    pub fn unenrolled() -> TestAgent {
        TestAgent {
            dir: tempfile::tempdir().expect("agent dir"),
            machine_id: String::new(),
        }
    }

    /// Runs `lifeline-agent enroll` against `collector` with `token`, pinning the CA file
    /// `ca`; the output, whether it worked or not.
    pub fn enroll(&self, collector: &TestCollector, token: &str, ca: &Path) -> Output {
        self.enroll_with(collector, token, ca, &[])
    }

    /// [`TestAgent::enroll`] with extra `enroll` flags.
    pub fn enroll_with(
        &self,
        collector: &TestCollector,
        token: &str,
        ca: &Path,
        extra: &[&str],
    ) -> Output {
        let mut args = vec![
            "enroll",
            "--server",
            &collector.url,
            "--token",
            token,
            "--ca",
            ca.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `lifeline-agent` with this agent's directory.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(binaries::agent())
            .args(args)
            .env("LIFELINE_AGENT_DIR", self.dir.path())
            .env_remove("LIFELINE_ENROLLMENT_TOKEN")
            .output()
            .expect("run lifeline-agent")
    }

    /// A raw HTTPS client presenting this agent's client certificate.
    pub fn http(&self, collector: &TestCollector) -> Http {
        let cert = fs::read(self.dir.path().join("client.pem")).unwrap();
        let key = fs::read(self.dir.path().join("client.key")).unwrap();
        Http::new(&collector.url, &collector.ca_path(), Some((cert, key)))
    }
}

/// A running `lifeline-agent run` with short cadences, killed on drop. Its stderr goes to
/// `service.log` in the agent's directory ([`AgentService::log`]).
#[derive(Debug)]
pub struct AgentService {
    child: Child,
    log: PathBuf,
}

impl AgentService {
    pub fn start(agent: &TestAgent) -> AgentService {
        Self::start_with_env(agent, &[])
    }

    /// Like [`AgentService::start`], with extra environment variables (a `DISPLAY`, say). The
    /// test's own `DISPLAY` is never inherited.
    pub fn start_with_env(agent: &TestAgent, env: &[(&str, &str)]) -> AgentService {
        let log = agent.dir().join("service.log");
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open service log");
        let child = Command::new(binaries::agent())
            .args([
                "run",
                "--heartbeat-secs",
                "1",
                "--poll-secs",
                "2",
                "--spool-secs",
                "1",
            ])
            .env("LIFELINE_AGENT_DIR", agent.dir())
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start lifeline-agent run");
        AgentService { child, log }
    }

    /// What the service printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the service now.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentService {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Asserts a process succeeded, showing its output otherwise.
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    /// Response headers, names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Answer {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    /// The `error` of a JSON error body.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error field in {}", self.body))
            .to_owned()
    }
}

/// A raw HTTPS client for requests the CLIs never make (bad input, role checks).
#[derive(Debug)]
pub struct Http {
    agent: ureq::Agent,
    base: String,
}

impl Http {
    pub fn new(base: &str, ca: &Path, identity: Option<(Vec<u8>, Vec<u8>)>) -> Http {
        install_crypto();
        let pem = fs::read(ca).expect("read CA");
        let roots: Vec<Certificate<'static>> = CertificateDer::pem_slice_iter(&pem)
            .map(|c| Certificate::from_der(c.unwrap().as_ref()).to_owned())
            .collect();
        let client_cert = identity.map(|(cert, key)| {
            let certs: Vec<Certificate<'static>> = CertificateDer::pem_slice_iter(&cert)
                .map(|c| Certificate::from_der(c.unwrap().as_ref()).to_owned())
                .collect();
            ClientCert::new_with_certs(&certs, PrivateKey::from_pem(&key).unwrap())
        });
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(RootCerts::new_with_certs(&roots))
            .client_cert(client_cert)
            .unversioned_rustls_crypto_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .allow_non_standard_methods(true)
            // A fresh connection per request: the server closes a connection whose request body
            // it refused to read, and a pooled POST must not land on such a connection.
            .max_idle_connections(0)
            // Redirects (the console's) are answers to look at, not to follow.
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        Http {
            agent,
            base: base.to_owned(),
        }
    }

    /// Sends `body` (if any) with `headers`; `token` becomes a bearer token.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Answer {
        self.try_request(method, path, token, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: HTTP exchange failed: {e}"))
    }

    /// Like [`Http::request`], but a failed exchange (TLS refusal, reset) is returned.
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Answer, ureq::Error> {
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(body.unwrap_or_default().to_vec()).unwrap();
        let mut response = self.agent.run(request)?;
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        Ok(Answer {
            status: response.status().as_u16(),
            headers,
            body: response
                .body_mut()
                .with_config()
                .limit(64 * 1024 * 1024)
                .read_to_string()?,
        })
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.request("GET", path, token, &[], None)
    }

    /// A `GET` whose answer is not text: status, headers (names lower-case) and body bytes.
    pub fn get_bytes(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut request = self.agent.get(format!("{}{}", self.base, path));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let mut response = request
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: HTTP exchange failed: {e}"));
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    value.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .unwrap();
        (response.status().as_u16(), headers, body)
    }

    /// POST/PATCH of a JSON value.
    pub fn send_json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> Answer {
        let bytes = serde_json::to_vec(body).unwrap();
        self.request(
            method,
            path,
            token,
            &[("content-type", "application/json")],
            Some(&bytes),
        )
    }

    /// Signs in to the web console with a user token; returns the `Cookie` header value and the
    /// session's CSRF token (read from the queue page's forms).
    pub fn console_login(&self, token: &str) -> (String, String) {
        let body = format!("token={token}");
        let answer = self.request(
            "POST",
            "/login",
            None,
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(body.as_bytes()),
        );
        assert_eq!(answer.status, 303, "sign-in refused: {}", answer.body);
        let set_cookie = answer.header("set-cookie").expect("a session cookie");
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        let page = self.request("GET", "/", None, &[("cookie", &cookie)], None);
        assert_eq!(page.status, 200, "{}", page.body);
        let marker = "name=\"csrf\" value=\"";
        let start = page.body.find(marker).expect("a CSRF field") + marker.len();
        let csrf = page.body[start..].split('"').next().unwrap().to_owned();
        (cookie, csrf)
    }

    /// Files a ticket as an agent (this client must carry an agent's certificate).
    pub fn file_ticket(&self, description: &str, idempotency_key: &str) -> Answer {
        self.file_ticket_with(description, idempotency_key, None)
    }

    /// Files a ticket as an agent with `screenshot_png` (base64) as given, valid or not.
    pub fn file_ticket_with(
        &self,
        description: &str,
        idempotency_key: &str,
        screenshot_png: Option<String>,
    ) -> Answer {
        let ticket = NewTicket {
            description: description.to_owned(),
            urgency: Urgency::Normal,
            os_user: Some("tester".to_owned()),
            snapshot: Some(Snapshot::empty(time::OffsetDateTime::now_utc(), "e2e")),
            screenshot_png,
        };
        let body = zstd::encode_all(&serde_json::to_vec(&ticket).unwrap()[..], 3).unwrap();
        self.request(
            "POST",
            paths::AGENT_TICKETS,
            None,
            &[
                ("content-type", "application/json"),
                ("content-encoding", "zstd"),
                (IDEMPOTENCY_KEY_HEADER, idempotency_key),
            ],
            Some(&body),
        )
    }
}

// PostgreSQL store (issue 8): a restart that passes the same `serve` flags again (the
// `--database` URL, a `--config` file).
impl TestCollector {
    /// Like [`TestCollector::restart`], with extra `serve` flags.
    pub fn restart_with(mut self, extra: &[&str]) -> TestCollector {
        self.stop();
        let addr = self.url.trim_start_matches("https://").to_owned();
        let (child, url, stdout) = start(
            &data_dir(&self.dir),
            &addr,
            extra,
            self.server_ca.as_deref(),
        );
        TestCollector {
            child,
            dir: Arc::clone(&self.dir),
            url,
            admin_token: self.admin_token.clone(),
            enrollment_token: self.enrollment_token.clone(),
            stdout,
            server_ca: self.server_ca.clone(),
        }
    }
}

// Several collectors on one database (issue 8, second part): instances that join a database
// another instance bootstrapped (they print no secrets), two first starts at once, and an
// agent service with a long long-poll (so only a wake-up delivers work quickly).
impl TestCollector {
    /// Another instance on `first`'s database (`extra` names it: `--database URL`), with its
    /// own data directory and port; it uses `first`'s tokens.
    pub fn join(first: &TestCollector, extra: &[&str]) -> TestCollector {
        install_crypto();
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let (child, url, stdout) = start(&data_dir(&dir), "127.0.0.1:0", extra, None);
        TestCollector {
            child,
            dir,
            url,
            admin_token: first.admin_token.clone(),
            enrollment_token: first.enrollment_token.clone(),
            stdout,
            server_ca: None,
        }
    }

    /// Two first starts at the same moment on one database; also returns how many of them
    /// printed first-start secrets.
    pub fn spawn_pair(extra: &[&str]) -> (TestCollector, TestCollector, usize) {
        install_crypto();
        let dirs = [
            Arc::new(tempfile::tempdir().expect("temp dir")),
            Arc::new(tempfile::tempdir().expect("temp dir")),
        ];
        let started: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = dirs
                .iter()
                .map(|dir| {
                    let path = data_dir(dir);
                    scope.spawn(move || start(&path, "127.0.0.1:0", extra, None))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // The one that bootstrapped printed before it listened.
        let tokens: Vec<Option<(String, String)>> = started
            .iter()
            .map(|(_, _, stdout)| {
                let text = stdout.lock().unwrap().clone();
                Some((
                    token_after(&text, "LIFELINE_TOKEN=")?,
                    token_after(&text, "--token ")?,
                ))
            })
            .collect();
        let printed = tokens.iter().flatten().count();
        let (admin_token, enrollment_token) =
            tokens.into_iter().flatten().next().unwrap_or_default();
        let mut both = started
            .into_iter()
            .zip(dirs)
            .map(|((child, url, stdout), dir)| TestCollector {
                child,
                dir,
                url,
                admin_token: admin_token.clone(),
                enrollment_token: enrollment_token.clone(),
                stdout,
                server_ca: None,
            });
        let a = both.next().unwrap();
        let b = both.next().unwrap();
        (a, b, printed)
    }
}

impl TestAgent {
    /// Points this agent at another collector URL (one more instance behind the same CA).
    pub fn use_server(&self, url: &str) {
        let path = self.dir.path().join("agent.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        config["server"] = serde_json::Value::String(url.to_owned());
        fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    }
}

impl AgentService {
    /// Like [`AgentService::start`], but each long-poll waits `poll_secs` on the collector.
    pub fn start_polling(agent: &TestAgent, poll_secs: u64) -> AgentService {
        let log = agent.dir().join("service.log");
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open service log");
        let child = Command::new(binaries::agent())
            .args(["run", "--heartbeat-secs", "1", "--spool-secs", "1"])
            .arg("--poll-secs")
            .arg(poll_secs.to_string())
            .env("LIFELINE_AGENT_DIR", agent.dir())
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start lifeline-agent run");
        AgentService { child, log }
    }
}

//! The web console in a real headless Chromium (Debian `chromium` + `chromium-driver`), driven
//! over WebDriver with fantoccini: signing in, the queue, a ticket, comments, running and
//! approving actions, CSRF refusals, and agent-supplied markup that must never run.
//!
//! The browser trusts exactly the test collector's server key
//! (`--ignore-certificate-errors-spki-list`), not every certificate. With
//! `LIFELINE_SCREENSHOTS=DIR` set, the flow test saves `console-queue.png` and
//! `console-ticket.png` there (that is how `docs/` got its pictures).

use std::future::Future;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use fantoccini::{Client, ClientBuilder, Locator};
use lifeline_collector::bootstrap::SERVER_CERT_FILE;
use lifeline_shared::v1::api::{EnrollResponse, IDEMPOTENCY_KEY_HEADER, NewTicket, Urgency, paths};
use lifeline_shared::v1::snapshot::{Section, Snapshot, System};
use lifeline_shared::v1::vitals::{DiskUse, Vitals};
use lifeline_shared::v1::work::Heartbeat;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::actions::Site;
use crate::harness::{Http, TestCollector, eventually, install_crypto};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// A headless Chromium session through its own chromedriver, closed on drop.
struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    base: String,
    _profile: TempDir,
}

fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: the browser tests need Debian's `{package}` package \
         (apt-get install -y chromium chromium-driver; .ci/run installs it)"
    );
}

/// A port nobody listens on right now (chromedriver has no `--port=0`).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The base64 SHA-256 of the server certificate's public key: what Chromium's
/// `--ignore-certificate-errors-spki-list` takes, so only this server's key is accepted.
fn server_spki_hash(collector: &TestCollector) -> String {
    let pem = std::fs::read(collector.data_dir().join(SERVER_CERT_FILE)).unwrap();
    let der = CertificateDer::pem_slice_iter(&pem)
        .next()
        .unwrap()
        .unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        cert.tbs_certificate.subject_pki.raw,
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

impl Browser {
    fn start(collector: &TestCollector) -> Browser {
        require(CHROMIUM, "chromium");
        require(CHROMEDRIVER, "chromium-driver");
        install_crypto();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let spki = server_spki_hash(collector);
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut driver = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver");
            let deadline = Instant::now() + Duration::from_secs(20);
            while TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let args = vec![
                "--headless".to_owned(),
                "--no-sandbox".to_owned(),
                "--disable-gpu".to_owned(),
                "--disable-quic".to_owned(),
                "--no-first-run".to_owned(),
                "--disable-background-networking".to_owned(),
                "--disable-component-update".to_owned(),
                "--disable-sync".to_owned(),
                "--disable-dev-shm-usage".to_owned(),
                "--window-size=1440,1000".to_owned(),
                format!("--user-data-dir={}", profile.path().display()),
                format!("--ignore-certificate-errors-spki-list={spki}"),
            ];
            let mut caps = serde_json::Map::new();
            caps.insert(
                "goog:chromeOptions".to_owned(),
                json!({ "binary": CHROMIUM, "args": args }),
            );
            let connected = rt.block_on(async {
                ClientBuilder::rustls()
                    .expect("rustls connector")
                    .capabilities(caps)
                    .connect(&format!("http://127.0.0.1:{port}"))
                    .await
            });
            match connected {
                Ok(client) => {
                    return Browser {
                        rt,
                        client: Some(client),
                        driver,
                        base: collector.url.clone(),
                        _profile: profile,
                    };
                }
                Err(error) => {
                    last_error = error.to_string();
                    let _ = driver.kill();
                    let _ = driver.wait();
                }
            }
        }
        panic!("could not start headless Chromium through chromedriver: {last_error}");
    }

    fn run<F: Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.run(self.client().goto(&url))
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// The path of the page shown now.
    fn path(&self) -> String {
        let url = self.run(self.client().current_url()).unwrap();
        let mut path = url.path().to_owned();
        if let Some(query) = url.query() {
            path.push('?');
            path.push_str(query);
        }
        path
    }

    fn fill(&self, css: &str, text: &str) {
        let element = self
            .run(self.client().find(Locator::Css(css)))
            .unwrap_or_else(|e| panic!("no {css} on {}: {e}", self.path()));
        self.run(element.send_keys(text)).unwrap();
    }

    /// Clicks a link or a submit button and waits for the next page to have loaded.
    fn click(&self, css: &str) {
        let element = self
            .run(self.client().find(Locator::Css(css)))
            .unwrap_or_else(|e| panic!("no {css} on {}: {e}\n{}", self.path(), self.text()));
        self.script("window.__leaving = true; return 0;");
        self.run(element.click()).unwrap();
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            let loaded = self
                .run(self.client().execute(
                    "return window.__leaving === undefined && document.readyState === 'complete';",
                    Vec::new(),
                ))
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            if loaded {
                return;
            }
            assert!(Instant::now() < deadline, "clicking {css} loaded no page");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The visible text of the page.
    fn text(&self) -> String {
        // The page may be reloading itself (a run in progress): an empty answer, then retry.
        match self.run(self.client().find(Locator::Css("body"))) {
            Ok(body) => self.run(body.text()).unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    fn script(&self, js: &str) -> Value {
        self.run(self.client().execute(js, Vec::new()))
            .unwrap_or_else(|e| panic!("script {js}: {e}"))
    }

    /// Waits until the page (which may reload itself) shows `text`, in any letter case
    /// (badges are upper-cased by the stylesheet).
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            let shown = self.text();
            if shown.to_lowercase().contains(&text.to_lowercase()) {
                return shown;
            }
            assert!(
                Instant::now() < deadline,
                "{} never showed {text:?}; it shows:\n{shown}",
                self.path()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn sign_in(&self, token: &str) {
        self.goto("/login");
        self.fill("#token", token);
        self.click("form[action='/login'] button");
        assert_eq!(self.path(), "/", "sign-in failed:\n{}", self.text());
    }

    fn sign_out(&self) {
        self.click("form.signout button");
        assert!(self.path().starts_with("/login"), "{}", self.path());
        assert!(self.text().contains("You have signed out."));
    }

    fn screenshot(&self, file: &Path) {
        let png = self.run(self.client().screenshot()).unwrap();
        std::fs::write(file, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.rt.block_on(client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn screenshot_dir() -> Option<PathBuf> {
    std::env::var_os("LIFELINE_SCREENSHOTS").map(PathBuf::from)
}

#[test]
fn a_technician_works_a_ticket_and_an_admin_approves_in_the_browser() {
    let site = Site::new();
    // A real report: a real snapshot with real findings.
    let report = site
        .agent
        .run(&["report", "Outlook will not start since this morning"]);
    crate::harness::assert_success(&report, "lifeline-agent report");
    // Heartbeats from the running service feed the vitals chart.
    eventually("two heartbeats", Duration::from_secs(30), || {
        let machine = site
            .collector
            .cli_json(&["machines", "show", &site.agent.machine_id]);
        (machine["recent_vitals"].as_array()?.len() >= 2).then_some(())
    });
    let browser = Browser::start(&site.collector);

    // Logged out, every console page sends the browser to the sign-in page.
    browser.goto("/tickets/1");
    assert_eq!(browser.path(), "/login");
    browser.goto("/login");
    browser.fill("#token", "llu_not-a-real-token");
    browser.click("form[action='/login'] button");
    browser.wait_for("unknown or has been revoked");

    browser.sign_in(&site.technician);
    let queue = browser.text();
    assert!(queue.contains("#1"), "{queue}");
    assert!(queue.contains("Outlook will not start"), "{queue}");
    assert!(
        !queue.contains("Approvals"),
        "technicians see no admin pages:\n{queue}"
    );
    if let Some(dir) = screenshot_dir() {
        browser.screenshot(&dir.join("console-queue.png"));
    }
    // Filters and search narrow the queue.
    browser.goto("/?q=no-such-words");
    assert!(browser.text().contains("No tickets match."));
    browser.goto("/?status=new&sort=priority");
    assert!(browser.text().contains("Outlook will not start"));

    // The ticket the agent filed.
    browser.goto("/");
    browser.click("a[href='/tickets/1']");
    assert_eq!(browser.path(), "/tickets/1");
    let ticket = browser.text();
    for expected in [
        "What the user said",
        "Reporter",
        "Diagnostics at report time",
        "Findings",
        "Vitals",
        "Timeline",
    ] {
        assert!(ticket.contains(expected), "{expected:?} missing:\n{ticket}");
    }
    assert!(
        browser
            .script("return document.querySelectorAll('svg polyline').length")
            .as_u64()
            .unwrap()
            >= 2,
        "no vitals chart"
    );

    // Comment, then change the ticket.
    browser.fill("#comment-body", "Looking into it now");
    browser.click("form[action='/tickets/1/comment'] button");
    assert_eq!(browser.path(), "/tickets/1");
    assert!(browser.text().contains("Looking into it now"));
    browser.script("document.querySelector('#u-status').value = 'in_progress'; return 0;");
    browser.click("form[action='/tickets/1/update'] button");
    assert!(browser.text().contains("In progress"));

    // Run an action from the form generated from its parameters and see its output.
    let say_form = "form[action='/tickets/1/run']:has(input[name='action'][value='say'])";
    browser.script(&format!(
        "document.querySelector(\"{say_form}\").closest('details').open = true; return 0;"
    ));
    browser.fill(
        &format!("{say_form} input[name='p.text']"),
        "hello from the console",
    );
    browser.click(&format!("{say_form} button"));
    assert!(browser.path().starts_with("/runs/"), "{}", browser.path());
    let run = browser.wait_for("Succeeded");
    assert!(
        run.contains("hello from the console"),
        "{run}\n{}",
        site.context()
    );
    browser.goto("/tickets/1");
    let ticket = browser.text();
    assert!(ticket.contains("hello from the console"), "{ticket}");
    if let Some(dir) = screenshot_dir() {
        browser.screenshot(&dir.join("console-ticket.png"));
    }

    // A form without its CSRF token is refused.
    browser.script(
        "document.querySelector(\"form[action='/tickets/1/comment'] input[name='csrf']\").remove(); return 0;",
    );
    browser.fill("#comment-body", "forged");
    browser.click("form[action='/tickets/1/comment'] button");
    let refused = browser.text();
    assert!(refused.contains("403"), "{refused}");
    assert!(refused.contains("CSRF"), "{refused}");
    browser.goto("/tickets/1");
    assert!(!browser.text().contains("forged"));

    // A high-risk action waits for an admin who is not the requester.
    let cycle = "form[action='/tickets/1/run']:has(input[name='action'][value='power-cycle'])";
    browser.script(&format!(
        "document.querySelector(\"{cycle}\").closest('details').open = true; return 0;"
    ));
    browser.fill(&format!("{cycle} input[name='reason']"), "frozen screen");
    browser.click(&format!("{cycle} button"));
    let waiting = browser.wait_for("Awaiting approval");
    let run_path = browser.path();
    assert!(waiting.contains("frozen screen"), "{waiting}");
    browser.goto("/admin/approvals");
    assert!(
        browser.text().contains("403"),
        "technicians may not approve"
    );
    browser.goto("/");
    browser.sign_out();
    browser.goto("/");
    assert_eq!(browser.path(), "/login", "signed out means signed out");

    browser.sign_in(&site.second_admin);
    browser.goto("/admin/approvals");
    let approvals = browser.text();
    assert!(approvals.contains("Power cycle (pretend)"), "{approvals}");
    browser.fill(
        "form[action$='/approve'] input[name='reason']",
        "ok, go ahead",
    );
    browser.click("form[action$='/approve'] button");
    assert_eq!(browser.path(), run_path);
    let done = browser.wait_for("Succeeded");
    assert!(done.contains("Approved by boss"), "{done}");
    browser.goto("/admin/approvals");
    assert!(
        browser
            .text()
            .contains("Nothing is waiting for an approval.")
    );
    for page in [
        "/machines",
        "/admin/users",
        "/admin/machines",
        "/admin/catalog",
    ] {
        browser.goto(page);
        assert_eq!(browser.path(), page);
        let text = browser.text();
        assert!(!text.contains("Internal Server Error"), "{page}: {text}");
    }
    assert!(browser.text().contains("Say something"));

    // The audit page reports the chain intact and lists what happened, filtered by actor.
    browser.goto("/admin/audit");
    let text = browser.text();
    assert!(
        text.contains("intact") && text.contains("audit chain intact"),
        "{text}"
    );
    assert!(
        text.contains("run.approve") && text.contains("console.login"),
        "{text}"
    );
    browser.goto("/admin/audit?actor=tina");
    let text = browser.text();
    assert!(text.contains("run.request"), "{text}");
    assert!(!text.contains("run.approve"), "only tina's entries: {text}");
}

/// Payloads that would run script if a page ever rendered them as markup.
const PAYLOADS: [&str; 4] = [
    "<script>window.__xss = 1; document.title = 'pwned';</script>",
    "<img src=x onerror=\"window.__xss = 2; document.title = 'pwned'\">",
    "\"><svg onload=\"window.__xss = 3\">",
    "</textarea></pre><script>window.__xss = 4</script>",
];

/// Enrolls a machine by hand, as a rogue agent would, with a hostile host name.
fn rogue_agent(collector: &TestCollector) -> Http {
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let answer = collector.http().send_json(
        "POST",
        paths::ENROLL,
        Some(&collector.enrollment_token),
        &json!({ "csr_pem": csr, "hostname": PAYLOADS[1] }),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let enrolled: EnrollResponse = serde_json::from_str(&answer.body).unwrap();
    Http::new(
        &collector.url,
        &collector.ca_path(),
        Some((
            enrolled.certificate_pem.into_bytes(),
            key.serialize_pem().into_bytes(),
        )),
    )
}

#[test]
fn markup_an_agent_sends_is_shown_as_text_and_never_runs() {
    let collector = TestCollector::spawn();
    let agent = rogue_agent(&collector);
    let mut snapshot = Snapshot::empty(time::OffsetDateTime::now_utc(), PAYLOADS[3]);
    snapshot.system = Some(Section::ok(
        System {
            hostname: Some(PAYLOADS[0].to_owned()),
            os_pretty_name: Some(PAYLOADS[1].to_owned()),
            kernel: Some(PAYLOADS[2].to_owned()),
            architecture: PAYLOADS[3].to_owned(),
            ..System::default()
        },
        vec![PAYLOADS[0].to_owned()],
        1,
    ));
    let ticket = NewTicket {
        description: PAYLOADS.join(" "),
        urgency: Urgency::High,
        os_user: Some(PAYLOADS[2].to_owned()),
        snapshot: Some(snapshot),
        screenshot_png: None,
    };
    let body = serde_json::to_vec(&ticket).unwrap();
    let filed = agent.request(
        "POST",
        paths::AGENT_TICKETS,
        None,
        &[
            ("content-type", "application/json"),
            (IDEMPOTENCY_KEY_HEADER, "xss-1"),
        ],
        Some(&body),
    );
    assert_eq!(filed.status, 200, "{}", filed.body);
    for _ in 0..2 {
        let beat = Heartbeat {
            vitals: Vitals {
                cpu_percent: 10.0,
                memory_percent: 20.0,
                busiest_disk: Some(DiskUse {
                    mount_point: PAYLOADS[0].to_owned(),
                    used_percent: 50.0,
                }),
                agent_version: "<b>1</b>".to_owned(),
                ..Vitals::default()
            },
        };
        let answer = agent.send_json(
            "POST",
            paths::AGENT_HEARTBEAT,
            None,
            &serde_json::to_value(&beat).unwrap(),
        );
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let machine_id = collector.cli_json(&["machines", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let browser = Browser::start(&collector);
    browser.sign_in(&collector.admin_token);
    let pages = [
        "/".to_owned(),
        "/tickets/1".to_owned(),
        "/machines".to_owned(),
        format!("/machines/{machine_id}"),
        "/admin/machines".to_owned(),
    ];
    for page in &pages {
        browser.goto(page);
        // Open every collapsible section so nothing stays unrendered.
        browser
            .script("document.querySelectorAll('details').forEach(d => d.open = true); return 0;");
        let state = browser.script(
            "return {
                xss: window.__xss === undefined ? null : window.__xss,
                title: document.title,
                scripts: document.querySelectorAll('script').length,
                handlers: document.querySelectorAll('[onerror],[onload]').length,
                injected: document.querySelectorAll('img, svg:not(.chart svg)').length
            };",
        );
        assert_eq!(state["xss"], Value::Null, "{page}: a payload ran: {state}");
        assert_ne!(state["title"], "pwned", "{page}: {state}");
        assert_eq!(
            state["scripts"], 0,
            "{page}: a <script> element was created: {state}"
        );
        assert_eq!(
            state["handlers"], 0,
            "{page}: an event handler attribute: {state}"
        );
        assert_eq!(state["injected"], 0, "{page}: injected elements: {state}");
        // The payloads are there, as text.
        let text = browser.text();
        assert!(
            text.contains("<img src=x onerror="),
            "{page} should show the host name as text:\n{text}"
        );
    }
    let ticket = {
        browser.goto("/tickets/1");
        browser
            .script("document.querySelectorAll('details').forEach(d => d.open = true); return 0;");
        browser.text()
    };
    for payload in PAYLOADS {
        assert!(
            ticket.contains(payload),
            "{payload:?} not shown as text:\n{ticket}"
        );
    }
}

#[test]
fn console_sessions_end_on_revocation_and_every_page_carries_the_security_headers() {
    let collector = TestCollector::spawn();
    let tech = collector.cli_json(&["users", "add", "tina", "--role", "technician"]);
    let http = collector.http();
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let signed_in = http.request(
        "POST",
        "/login",
        None,
        &form,
        Some(format!("token={}", tech["token"].as_str().unwrap()).as_bytes()),
    );
    let cookie = signed_in.header("set-cookie").unwrap().to_owned();
    for attribute in [
        "__Host-lifeline_session=",
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let queue = http.request("GET", "/", None, &[("cookie", &cookie)], None);
    assert_eq!(queue.status, 200);
    let csp = queue.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert_eq!(queue.header("x-frame-options"), Some("DENY"));
    assert_eq!(queue.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(queue.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(queue.header("cache-control"), Some("no-store"));
    // HSTS on the console and on every other answer, refusals included.
    assert_eq!(
        queue.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    for (path, status) in [("/login", 200), ("/api/v1/tickets", 401), ("/nothing", 404)] {
        let answer = http.request("GET", path, None, &[], None);
        assert_eq!(answer.status, status, "{path}");
        assert_eq!(
            answer.header("strict-transport-security"),
            Some("max-age=31536000"),
            "{path}"
        );
    }

    // A form from another site is refused even with a valid token in it.
    let (second, csrf) = http.console_login(tech["token"].as_str().unwrap());
    let cross = http.request(
        "POST",
        "/logout",
        None,
        &[
            ("cookie", &second),
            ("content-type", "application/x-www-form-urlencoded"),
            ("sec-fetch-site", "cross-site"),
        ],
        Some(format!("csrf={csrf}").as_bytes()),
    );
    assert_eq!(cross.status, 403, "{}", cross.body);
    assert!(cross.body.contains("another site"), "{}", cross.body);

    // Revoking the user ends their open sessions at once.
    collector.cli_ok(&["users", "revoke", "tina"]);
    let after = http.request("GET", "/", None, &[("cookie", &cookie)], None);
    assert_eq!(after.status, 303);
    assert_eq!(after.header("location"), Some("/login"));
}

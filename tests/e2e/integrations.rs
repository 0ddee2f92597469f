//! Satisfaction, webhooks and e-mail (issue 9): a real collector configured with a webhook to a
//! local HTTP listener and an SMTP relay that is a local sink, both started by the test on
//! 127.0.0.1:0. Retries are driven by the collector's test clock (`advance_clock`), never by
//! waiting for them.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{TestAgent, TestCollector, assert_success, eventually};

/// The webhook's signing key, as written to its secret file.
const SECRET: &str = "s3cret-shared-with-the-itsm";
const WAIT: Duration = Duration::from_secs(20);

/// One request the webhook listener received.
#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: String,
}

/// An HTTP listener that answers the first `fail_first` requests with 500, then 200.
/// A server of the test's own on a free 127.0.0.1 port: each connection goes to its session
/// function, which records what it received; it stops when dropped.
struct Sink<T> {
    port: u16,
    items: Arc<Mutex<Vec<T>>>,
    stop: Arc<AtomicBool>,
    /// What one item is, for the wait's failure message ("webhook request(s)").
    what: &'static str,
}

impl<T: Clone + Send + 'static> Sink<T> {
    fn start(
        what: &'static str,
        session: impl Fn(TcpStream, &Mutex<Vec<T>>) + Send + 'static,
    ) -> Sink<T> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let items = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sink, stopped) = (Arc::clone(&items), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        session(stream, &sink);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Sink {
            port,
            items,
            stop,
            what,
        }
    }

    fn received(&self) -> Vec<T> {
        self.items.lock().unwrap().clone()
    }

    fn wait_for(&self, count: usize) -> Vec<T> {
        eventually(&format!("{count} {}", self.what), WAIT, || {
            let all = self.received();
            (all.len() >= count).then_some(all)
        })
    }
}

impl<T> Drop for Sink<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A webhook receiver: answers 500 to the first `fail_first` requests, then 200.
fn webhook_sink(fail_first: usize) -> Sink<Received> {
    Sink::start("webhook request(s)", move |stream, received| {
        let request = read_request(&stream);
        let n = {
            let mut all = received.lock().unwrap();
            all.push(request);
            all.len()
        };
        let answer = if n <= fail_first {
            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 16\r\n\
             connection: close\r\n\r\nitsm is down now"
        } else {
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
        };
        let mut stream = stream;
        let _ = stream.write_all(answer.as_bytes());
    })
}

fn read_request(stream: &TcpStream) -> Received {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("POST /hook "), "request line {line:?}");
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap();
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let len: usize = headers["content-length"].parse().unwrap();
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    Received {
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}

/// A minimal SMTP server: 220, 250 to everything but DATA (354) and QUIT (221); keeps each
/// message's envelope and text.
fn smtp_sink() -> Sink<String> {
    Sink::start("e-mail(s)", smtp_session)
}

fn smtp_session(stream: TcpStream, messages: &Mutex<Vec<String>>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    writer.write_all(b"220 sink.test ESMTP\r\n").unwrap();
    let mut envelope = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let command = line.trim_end().to_ascii_uppercase();
        if command.starts_with("DATA") {
            writer.write_all(b"354 end with <CRLF>.<CRLF>\r\n").unwrap();
            let mut text = envelope.clone();
            loop {
                let mut data = String::new();
                reader.read_line(&mut data).unwrap();
                if data == ".\r\n" {
                    break;
                }
                text.push_str(&data);
            }
            messages.lock().unwrap().push(text);
            writer.write_all(b"250 queued\r\n").unwrap();
        } else if command.starts_with("QUIT") {
            let _ = writer.write_all(b"221 bye\r\n");
            return;
        } else {
            if command.starts_with("MAIL") || command.starts_with("RCPT") {
                envelope.push_str(&line);
            }
            writer.write_all(b"250 ok\r\n").unwrap();
        }
    }
}

/// A collector configured with the webhook sink and the SMTP sink.
fn collector_with(
    webhook: &Sink<Received>,
    smtp: &Sink<String>,
) -> (TestCollector, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hook.secret"), format!("{SECRET}\n")).unwrap();
    let config: PathBuf = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "public_url = \"https://helpdesk.example.org\"\n\
             [[webhooks]]\nname = \"itsm\"\nurl = \"http://127.0.0.1:{}/hook\"\n\
             secret_file = \"hook.secret\"\n\
             [smtp]\nhost = \"127.0.0.1\"\nport = {}\n\
             from = \"Lifeline <helpdesk@example.org>\"\ntls = \"none\"\n",
            webhook.port, smtp.port
        ),
    )
    .unwrap();
    let collector = TestCollector::spawn_with(&["--config", config.to_str().unwrap()]);
    (collector, dir)
}

/// `sha256=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`, computed here, not by the
/// collector's code.
fn expected_signature(secret: &str, timestamp: &str, body: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, format!("{timestamp}.{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn assert_signed(request: &Received, secret: &str) {
    let timestamp = &request.headers["x-lifeline-timestamp"];
    assert_eq!(
        request.headers["x-lifeline-signature"],
        expected_signature(secret, timestamp, &request.body),
        "signature of {request:?}"
    );
}

fn deliveries(collector: &TestCollector) -> Vec<Value> {
    collector
        .cli_json(&["webhooks", "deliveries"])
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_webhook_is_signed_retried_on_the_clock_after_a_failure_and_logged() {
    let hook = webhook_sink(1);
    let smtp = smtp_sink();
    let (collector, _config) = collector_with(&hook, &smtp);
    let agent = TestAgent::enrolled(&collector);
    let filed = agent
        .http(&collector)
        .file_ticket("Outlook won't start", "hook-1");
    assert_eq!(filed.status, 200, "{}", filed.body);

    // The first attempt arrives signed, and the listener fails it.
    let first = hook.wait_for(1).remove(0);
    assert_eq!(first.headers["x-lifeline-event"], "ticket.created");
    assert_eq!(first.headers["content-type"], "application/json");
    assert_signed(&first, SECRET);
    assert_ne!(
        first.headers["x-lifeline-signature"],
        expected_signature(
            "another secret",
            &first.headers["x-lifeline-timestamp"],
            &first.body
        ),
        "the check must be able to fail"
    );
    let payload: Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(payload["event"], "ticket.created");
    assert_eq!(payload["delivery"], first.headers["x-lifeline-delivery"]);
    assert_eq!(payload["ticket"]["number"], 1);
    assert_eq!(payload["ticket"]["description"], "Outlook won't start");
    assert_eq!(payload["ticket"]["status"], "new");
    assert_eq!(payload["ticket"]["machine_id"], agent.machine_id);
    assert_eq!(
        payload["ticket"]["url"],
        "https://helpdesk.example.org/tickets/1"
    );

    // The failure is logged, and the retry is due 10 s later by the collector's clock.
    let logged = eventually("the failed attempt in the log", WAIT, || {
        let list = deliveries(&collector);
        (list.len() == 1 && list[0]["history"].as_array().unwrap().len() == 1).then_some(list)
    });
    let delivery = &logged[0];
    assert_eq!(delivery["state"], "pending");
    assert_eq!(delivery["kind"], "webhook");
    assert_eq!(delivery["target"], "itsm");
    assert_eq!(delivery["history"][0]["status"], 500);
    let error = delivery["history"][0]["error"].as_str().unwrap();
    assert!(error.contains("HTTP 500: itsm is down now"), "{error}");
    let at = time::OffsetDateTime::parse(
        delivery["history"][0]["at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let next = time::OffsetDateTime::parse(
        delivery["next_attempt_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(
        (9..=11).contains(&(next - at).whole_seconds()),
        "retry at {next}, attempt at {at}"
    );
    assert_eq!(hook.received().len(), 1, "no retry before its time");

    // Moving the clock past the back-off brings the retry: same delivery, same body, signed.
    collector.advance_clock(11);
    let second = hook.wait_for(2).remove(1);
    assert_eq!(
        second.headers["x-lifeline-delivery"],
        first.headers["x-lifeline-delivery"]
    );
    assert_eq!(second.body, first.body);
    assert_signed(&second, SECRET);

    let done = eventually("the delivery to be logged as delivered", WAIT, || {
        let list = deliveries(&collector);
        (list[0]["state"] == "delivered").then_some(list)
    });
    let history = done[0]["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[1]["status"], 200);
    assert!(history[1]["error"].is_null());
    let table = collector.cli_ok(&["webhooks", "deliveries"]);
    assert!(
        table.contains("delivered") && table.contains("itsm"),
        "{table}"
    );
    assert!(
        collector
            .cli_json(&["webhooks", "deliveries", "--failed"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Resolving sends ticket.resolved; redelivering sends a delivery again, audited.
    collector.cli_ok(&["tickets", "update", "1", "--status", "resolved"]);
    let resolved = hook.wait_for(3).remove(2);
    assert_eq!(resolved.headers["x-lifeline-event"], "ticket.resolved");
    let payload: Value = serde_json::from_str(&resolved.body).unwrap();
    assert_eq!(payload["ticket"]["status"], "resolved");
    assert_eq!(payload["changes"], json!(["status"]));
    let first_id = done[0]["id"].as_u64().unwrap().to_string();
    let out = collector.cli_ok(&["webhooks", "redeliver", &first_id]);
    assert!(out.contains("queued again"), "{out}");
    let again = hook.wait_for(4).remove(3);
    assert_eq!(
        again.headers["x-lifeline-delivery"],
        first.headers["x-lifeline-delivery"]
    );
    let audit = collector.cli_ok(&["audit", "list"]);
    assert!(audit.contains("webhook.redeliver"), "{audit}");

    // The log is for admins; a bad id is a clear error.
    let token = collector.cli_json(&["users", "add", "tech", "--role", "technician"])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = collector
        .http()
        .get(lifeline_shared::v1::integrations::DELIVERIES, Some(&token));
    assert_eq!(answer.status, 403, "{}", answer.body);
    let out = collector.cli(&["webhooks", "redeliver", "999"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no delivery 999"),
        "{out:?}"
    );
}

#[test]
fn a_new_assignee_gets_an_email_through_smtp() {
    let hook = webhook_sink(0);
    let smtp = smtp_sink();
    let (collector, _config) = collector_with(&hook, &smtp);
    let added = collector.cli_json(&[
        "users",
        "add",
        "alice",
        "--role",
        "technician",
        "--email",
        "alice@example.org",
    ]);
    assert_eq!(added["name"], "alice");
    let users = collector.cli_ok(&["users", "list"]);
    assert!(users.contains("alice@example.org"), "{users}");
    let agent = TestAgent::enrolled(&collector);
    let filed = agent
        .http(&collector)
        .file_ticket("Printer jams on every page", "mail-1");
    assert_eq!(filed.status, 200, "{}", filed.body);

    collector.cli_ok(&[
        "tickets",
        "update",
        "1",
        "--assign",
        "alice",
        "--priority",
        "high",
    ]);
    let mail = smtp.wait_for(1).remove(0);
    assert!(mail.contains("RCPT TO:<alice@example.org>"), "{mail}");
    assert!(mail.contains("MAIL FROM:<helpdesk@example.org>"), "{mail}");
    assert!(
        mail.contains("Subject: [Lifeline] #1 assigned to you: Printer jams on every page"),
        "{mail}"
    );
    assert!(
        mail.contains("Ticket #1 has been assigned to you by admin."),
        "{mail}"
    );
    assert!(mail.contains("Priority:    high"), "{mail}");
    assert!(mail.contains("Printer jams on every page"), "{mail}");
    assert!(
        mail.contains("https://helpdesk.example.org/tickets/1"),
        "{mail}"
    );
    let logged = eventually("the e-mail in the delivery log", WAIT, || {
        deliveries(&collector)
            .into_iter()
            .find(|d| d["kind"] == "email" && d["state"] == "delivered")
    });
    assert_eq!(logged["target"], "alice@example.org");
    assert_eq!(logged["event"], "ticket.assigned");
    assert_eq!(logged["history"][0]["status"], 250);

    // Addresses are checked; a user without one gets nothing.
    let out = collector.cli(&["users", "set-email", "alice", "alice at example"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not valid"), "{stderr}");
    let refused = collector.http().send_json(
        "PUT",
        "/api/v1/users/alice/email",
        Some(&collector.admin_token),
        &json!({ "email": "a\r\nBcc: eve@example.org" }),
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
    let out = collector.cli_ok(&["users", "set-email", "alice", ""]);
    assert!(out.contains("no e-mail"), "{out}");
    collector.cli_ok(&["users", "add", "bob", "--role", "technician"]);
    collector.cli_ok(&["tickets", "update", "1", "--assign", "bob"]);
    collector.cli_ok(&["tickets", "update", "1", "--assign", "alice"]);
    hook.wait_for(4);
    assert_eq!(smtp.wait_for(1).len(), 1, "nobody else was mailed");
}

#[test]
fn no_reopens_the_ticket_yes_is_recorded_and_each_resolution_is_answered_once() {
    let hook = webhook_sink(0);
    let smtp = smtp_sink();
    let (mut collector, _config) = collector_with(&hook, &smtp);
    collector.cli_ok(&[
        "users",
        "add",
        "alice",
        "--role",
        "technician",
        "--email",
        "alice@example.org",
    ]);
    let mine = TestAgent::enrolled(&collector);
    let other = TestAgent::enrolled(&collector);
    for (key, text) in [
        ("fb-1", "Outlook crashes at start"),
        ("fb-2", "Wifi is slow"),
    ] {
        let filed = mine.http(&collector).file_ticket(text, key);
        assert_eq!(filed.status, 200, "{}\n{}", filed.body, collector.log());
    }
    let answer = |agent: &TestAgent, args: &[&str]| {
        let mut all = vec!["tickets", "feedback"];
        all.extend_from_slice(args);
        agent.run(&all)
    };
    let stderr = |out: &std::process::Output| String::from_utf8_lossy(&out.stderr).into_owned();

    // Nothing to answer before the resolution.
    let out = answer(&mine, &["1", "--no"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not resolved"), "{}", stderr(&out));
    assert!(stderr(&out).contains("was not sent"), "{}", stderr(&out));
    assert!(!answer(&mine, &["1"]).status.success(), "--yes or --no");

    collector.cli_ok(&[
        "tickets", "update", "1", "--status", "resolved", "--assign", "alice",
    ]);
    collector.cli_ok(&["tickets", "update", "2", "--status", "resolved"]);
    let listed: Value = serde_json::from_slice(&mine.run(&["tickets", "--json"]).stdout).unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["feedback_wanted"] == true),
        "{listed}"
    );
    let text = String::from_utf8_lossy(&mine.run(&["tickets"]).stdout).into_owned();
    assert!(
        text.contains("Did this fix it? Answer with: lifeline-agent tickets feedback 1"),
        "{text}"
    );

    // Another machine cannot answer for this one.
    let out = answer(&other, &["1", "--yes"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no ticket #1 from this machine"),
        "{}",
        stderr(&out)
    );

    // "No" reopens, with the comment in the timeline, the audit log and the assignee's mail.
    let out = answer(
        &mine,
        &[
            "1",
            "--no",
            "--comment",
            "Outlook still crashes after the update",
        ],
    );
    assert_success(&out, "tickets feedback 1 --no");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Ticket #1 is open again"),
        "{out:?}"
    );
    let ticket = collector.cli_json(&["tickets", "show", "1"]);
    assert_eq!(ticket["status"], "open");
    assert!(ticket["resolved_at"].is_null());
    assert_eq!(ticket["feedback"][0]["fixed"], false);
    assert_eq!(
        ticket["feedback"][0]["comment"],
        "Outlook still crashes after the update"
    );
    let notes: Vec<&str> = ticket["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["body"].as_str().unwrap())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains(": no. The ticket is open again.")
                && n.contains("\"Outlook still crashes after the update\"")),
        "{notes:?}"
    );
    let shown = collector.cli_ok(&["tickets", "show", "1"]);
    assert!(
        shown.contains("no (reopened): \"Outlook still crashes after the update\""),
        "{shown}"
    );
    let audit = collector.cli_json(&["audit", "list"]);
    let reopen = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "ticket.reopen")
        .unwrap_or_else(|| panic!("no ticket.reopen in {audit}"));
    assert_eq!(reopen["actor"], format!("machine:{}", mine.machine_id));
    assert_eq!(reopen["subject"], "ticket:1");
    let mail = smtp.wait_for(2).remove(1);
    assert!(mail.contains("#1 reopened"), "{mail}");
    assert!(
        mail.contains("> Outlook still crashes after the update"),
        "{mail}"
    );
    // created #1 and #2, resolved #1 and #2, then the answer.
    let events = hook.wait_for(5);
    let feedback_hook = events
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
        .find(|p| p["feedback"].is_object())
        .expect("a webhook with the answer");
    assert_eq!(feedback_hook["event"], "ticket.updated");
    assert_eq!(feedback_hook["ticket"]["status"], "open");
    assert_eq!(feedback_hook["feedback"]["fixed"], false);

    // The reopened ticket has nothing to answer; "yes" on #2 is recorded, once.
    let out = answer(&mine, &["1", "--yes"]);
    assert!(stderr(&out).contains("not resolved"), "{}", stderr(&out));
    let out = answer(&mine, &["2", "--yes", "--comment", "fast again"]);
    assert_success(&out, "tickets feedback 2 --yes");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("stays resolved"),
        "{out:?}"
    );
    let out = answer(&mine, &["2", "--no"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("answered already"),
        "{}",
        stderr(&out)
    );
    let two = collector.cli_json(&["tickets", "show", "2"]);
    assert_eq!(two["status"], "resolved");
    assert_eq!(two["feedback"][0]["fixed"], true);
    assert_eq!(two["feedback"].as_array().unwrap().len(), 1);
    // The help desk's summary counts answers of tickets resolved in its window: #1 was
    // reopened by its "no", so only #2's "yes" counts for now.
    let satisfaction =
        || collector.cli_json(&["reports", "summary", "--since", "7d"])["satisfaction"].clone();
    assert_eq!(
        satisfaction(),
        json!({ "answered": 1, "yes": 1, "no": 0, "yes_ratio": 1.0 })
    );

    // A new resolution asks again.
    collector.cli_ok(&["tickets", "update", "1", "--status", "resolved"]);
    assert_success(&answer(&mine, &["1", "--yes"]), "a second resolution");
    assert_eq!(
        collector.cli_json(&["tickets", "show", "1"])["feedback"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Its latest answer is the one that counts.
    assert_eq!(
        satisfaction(),
        json!({ "answered": 2, "yes": 2, "no": 0, "yes_ratio": 1.0 })
    );
    let text = collector.cli_ok(&["reports", "summary", "--since", "7d"]);
    assert!(text.contains("100% yes (2 of 2 answers)"), "{text}");

    // The console shows the answers; a long comment and a bearer token are refused.
    let http = collector.http();
    let (cookie, _) = http.console_login(&collector.admin_token);
    let page = http.request("GET", "/tickets/1", None, &[("cookie", &cookie)], None);
    assert!(page.body.contains("Did this fix it?"), "{}", page.body);
    assert!(
        page.body.contains("Outlook still crashes after the update"),
        "{}",
        page.body
    );
    let long = "x".repeat(2001);
    let out = answer(&mine, &["2", "--no", "--comment", &long]);
    assert!(stderr(&out).contains("limit is 2000"), "{}", stderr(&out));
    let refused = http.send_json(
        "POST",
        "/api/v1/agent/tickets/2/feedback",
        Some(&collector.admin_token),
        &json!({ "fixed": false }),
    );
    assert_eq!(refused.status, 403, "{}", refused.body);

    // Without the collector, the answer is not lost silently: the user is told to retry.
    collector.stop();
    let out = answer(&mine, &["2", "--no"]);
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(
        said.contains("was not sent") && said.contains("cannot reach the collector"),
        "{said}"
    );
}

#[test]
fn a_missing_or_empty_webhook_secret_stops_the_start_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\n[[webhooks]]\nurl = \"http://127.0.0.1:9/hook\"\n\
         secret_file = \"hook.secret\"\n",
    )
    .unwrap();
    let serve = || {
        std::process::Command::new(crate::binaries::collector())
            .args(["serve", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap()
    };
    let out = serve();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("webhook secret file") && stderr.contains("hook.secret"),
        "{stderr}"
    );
    std::fs::write(dir.path().join("hook.secret"), "  \n").unwrap();
    let out = serve();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the file is empty"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "nothing is created");
}

//! The main path: serve → enroll → report → technician reads, updates and comments; restart
//! keeps everything; idempotent retries; revocation.

use std::fs;

use crate::harness::{TestAgent, TestCollector, assert_success};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn agent_report_becomes_a_ticket_a_technician_can_read_and_work() {
    let collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);

    let out = agent.run(&["report", "Outlook won't start", "--urgency", "high"]);
    assert_success(&out, "lifeline-agent report");
    assert_eq!(stdout(&out).trim(), "#1");

    let bob = collector.cli_json(&["users", "add", "bob", "--role", "technician"]);
    let bob_token = bob["token"].as_str().unwrap().to_owned();

    let list = collector.cli_as(&bob_token, &["tickets", "list", "--json"]);
    assert_success(&list, "tickets list as technician");
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let tickets = list.as_array().unwrap();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0]["number"], 1);
    assert_eq!(tickets[0]["description"], "Outlook won't start");
    assert_eq!(tickets[0]["status"], "new");
    assert_eq!(tickets[0]["urgency"], "high");
    assert_eq!(tickets[0]["machine_id"], agent.machine_id.as_str());
    let priority = tickets[0]["priority"].as_str().unwrap();
    assert!(priority == "high" || priority == "critical", "{priority}");

    let table = collector.cli_as(&bob_token, &["tickets", "list"]);
    assert_success(&table, "tickets list table");
    assert!(stdout(&table).contains("Outlook won't start"));

    let page = collector.cli_as(&bob_token, &["tickets", "show", "1"]);
    assert_success(&page, "tickets show");
    let page = stdout(&page);
    let description = page.find("Outlook won't start").expect("description shown");
    let findings = page.find("Findings:").expect("findings shown");
    let sections = page.find("Snapshot 1").expect("snapshot sections shown");
    assert!(description < findings && findings < sections, "{page}");
    assert!(page.contains("[system]"), "{page}");

    let updated = collector.cli_as(
        &bob_token,
        &[
            "tickets",
            "update",
            "1",
            "--status",
            "in_progress",
            "--tier",
            "2",
            "--assign",
            "bob",
            "--priority",
            "normal",
            "--json",
        ],
    );
    assert_success(&updated, "tickets update");
    let updated: serde_json::Value = serde_json::from_slice(&updated.stdout).unwrap();
    assert_eq!(updated["status"], "in_progress");
    assert_eq!(updated["tier"], 2);
    assert_eq!(updated["assignee"], "bob");
    assert_eq!(updated["priority"], "normal");
    assert!(updated["first_response_at"].is_string());

    let commented = collector.cli_as(
        &bob_token,
        &["tickets", "comment", "1", "Restarted Outlook"],
    );
    assert_success(&commented, "tickets comment");
    let shown = collector.cli_json(&["tickets", "show", "1"]);
    // The timeline also holds Lifeline's note of bob's update (service levels, issue 9).
    let comment = shown["comments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["author"] == "bob")
        .expect("bob's comment");
    assert_eq!(comment["body"], "Restarted Outlook");
    assert_eq!(shown["snapshots"].as_array().unwrap().len(), 1);
    assert!(shown["os_user"].as_str().is_some());

    let resolved = collector.cli_json(&["tickets", "update", "1", "--status", "resolved"]);
    assert!(resolved["resolved_at"].is_string());
    let open = collector.cli_json(&["tickets", "list", "--status", "new"]);
    assert!(open.as_array().unwrap().is_empty());
    let by_machine = collector.cli_json(&["tickets", "list", "--machine", &agent.machine_id]);
    assert_eq!(by_machine.as_array().unwrap().len(), 1);

    let machines = collector.cli_json(&["machines", "list"]);
    assert_eq!(machines[0]["id"], agent.machine_id.as_str());
    assert_eq!(machines[0]["status"], "active");
    let machine = collector.cli_json(&["machines", "show", &agent.machine_id]);
    assert_eq!(machine["tickets"][0]["number"], 1);
    assert!(stdout(&collector.cli(&["machines", "list"])).contains(&agent.machine_id));
}

#[test]
fn restart_keeps_tickets_machines_and_tokens_and_prints_no_secrets() {
    let collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    assert_success(&agent.run(&["report", "Printer jammed"]), "report");
    let bob = collector.cli_json(&["users", "add", "bob", "--role", "technician"]);
    let bob_token = bob["token"].as_str().unwrap().to_owned();
    let ca_before = fs::read(collector.ca_path()).unwrap();
    let first_stdout = collector.stdout.lock().unwrap().clone();
    assert!(
        first_stdout.contains("lifeline-agent enroll --server"),
        "{first_stdout}"
    );
    assert!(first_stdout.contains("LIFELINE_TOKEN="), "{first_stdout}");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["ca.key", "server.key"] {
            let mode = fs::metadata(collector.data_dir().join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
        let mode = fs::metadata(agent.dir().join("client.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "agent key");
    }

    let collector = collector.restart();
    let second_stdout = collector.stdout.lock().unwrap().clone();
    assert!(
        !second_stdout.contains("llu_"),
        "second start printed a token: {second_stdout}"
    );
    assert!(
        !second_stdout.contains("lle_"),
        "second start printed a token: {second_stdout}"
    );
    assert_eq!(
        fs::read(collector.ca_path()).unwrap(),
        ca_before,
        "CA was replaced"
    );
    assert!(
        !collector.log().contains(&collector.admin_token),
        "admin token in the log"
    );

    let tickets = collector.cli_json(&["tickets", "list"]);
    assert_eq!(tickets[0]["description"], "Printer jammed");
    let as_bob = collector.cli_as(&bob_token, &["tickets", "show", "1", "--json"]);
    assert_success(&as_bob, "technician token after restart");

    // The agent's certificate and the enrollment token still work after the restart.
    let out = agent.run(&["report", "Still jammed"]);
    assert_success(&out, "report after restart");
    assert_eq!(stdout(&out).trim(), "#2");
    let second = TestAgent::enrolled(&collector);
    assert_ne!(second.machine_id, agent.machine_id);
}

#[test]
fn retry_with_the_same_idempotency_key_returns_the_same_ticket() {
    let collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    let http = agent.http(&collector);
    let first = http.file_ticket("Wi-Fi drops", "key-1");
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.json()["created"], true);
    let retry = http.file_ticket("Wi-Fi drops", "key-1");
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(retry.json()["number"], first.json()["number"]);
    assert_eq!(retry.json()["created"], false);
    let other = http.file_ticket("Wi-Fi drops again", "key-2");
    assert_eq!(other.json()["number"], 2);
    assert_eq!(
        collector
            .cli_json(&["tickets", "list"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn reenrolling_keeps_the_machine_id_and_retires_the_old_certificate() {
    let collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    let old_http = agent.http(&collector);
    assert_eq!(old_http.get("/api/v1/agent/machine", None).status, 200);

    let out = agent.enroll(
        &collector,
        &collector.enrollment_token,
        &collector.ca_path(),
    );
    assert_success(&out, "re-enroll");
    assert!(stdout(&out).contains(&agent.machine_id), "{}", stdout(&out));
    assert_eq!(
        collector
            .cli_json(&["machines", "list"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let stale = old_http.get("/api/v1/agent/machine", None);
    assert_eq!(stale.status, 401, "{}", stale.body);
    assert!(stale.error().contains("enroll again"), "{}", stale.body);
    let fresh = agent.http(&collector).get("/api/v1/agent/machine", None);
    assert_eq!(fresh.status, 200);
    assert_eq!(fresh.json()["id"], agent.machine_id.as_str());
}

#[test]
fn revoked_machine_is_refused_with_a_clear_message() {
    let collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    let bob = collector.cli_json(&["users", "add", "bob", "--role", "technician"]);
    let denied = collector.cli_as(
        bob["token"].as_str().unwrap(),
        &["machines", "revoke", &agent.machine_id],
    );
    assert!(!denied.status.success(), "a technician revoked a machine");
    assert!(stderr(&denied).contains("admin"), "{}", stderr(&denied));

    let revoked = collector.cli_json(&["machines", "revoke", &agent.machine_id]);
    assert_eq!(revoked["status"], "revoked");

    let out = agent.run(&["report", "Help"]);
    assert!(!out.status.success(), "revoked machine filed a ticket");
    let message = stderr(&out);
    assert!(message.contains("revoked"), "{message}");
    assert_eq!(message.trim().lines().count(), 1, "{message}");
    assert!(
        collector
            .cli_json(&["tickets", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Re-enrolling with the revoked certificate does not bring the machine back.
    let again = agent.enroll(
        &collector,
        &collector.enrollment_token,
        &collector.ca_path(),
    );
    assert!(!again.status.success());
    assert!(stderr(&again).contains("revoked"), "{}", stderr(&again));
}

#[test]
fn users_are_added_listed_and_revoked_by_admins() {
    let collector = TestCollector::spawn();
    let out = collector.cli(&["users", "add", "carol", "--role", "admin"]);
    assert_success(&out, "users add");
    let printed = stdout(&out);
    let token = printed
        .split_whitespace()
        .find(|w| w.starts_with("llu_"))
        .expect("token printed once")
        .to_owned();
    let users = collector.cli_json(&["users", "list"]);
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "carol"]);
    assert!(!stdout(&collector.cli(&["users", "list", "--json"])).contains("llu_"));

    let duplicate = collector.cli(&["users", "add", "carol", "--role", "technician"]);
    assert!(!duplicate.status.success());
    assert!(
        stderr(&duplicate).contains("already exists"),
        "{}",
        stderr(&duplicate)
    );

    assert_success(
        &collector.cli_as(&token, &["users", "list"]),
        "carol is admin",
    );
    let own = collector.cli(&["users", "revoke", "admin"]);
    assert!(!own.status.success(), "an admin revoked their own token");
    assert!(stderr(&own).contains("your own token"), "{}", stderr(&own));
    assert_success(
        &collector.cli(&["users", "revoke", "carol"]),
        "users revoke",
    );
    let refused = collector.cli_as(&token, &["users", "list"]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("401"), "{}", stderr(&refused));
}

#[test]
fn agent_renews_a_certificate_close_to_expiry_and_keeps_its_machine_id() {
    let collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    let old_http = agent.http(&collector);
    let config_path = agent.dir().join("agent.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&config_path).unwrap()).unwrap();
    let issued_until = config["certificate_not_after"].as_str().unwrap().to_owned();
    // Pretend the certificate runs out tomorrow: the next report renews it first.
    let soon = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    config["certificate_not_after"] = soon
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
        .into();
    fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();

    let out = agent.run(&["report", "After renewal"]);
    assert_success(&out, "report with renewal");
    assert_eq!(stdout(&out).trim(), "#1");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    let renewed: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&config_path).unwrap()).unwrap();
    assert_eq!(renewed["machine_id"], agent.machine_id.as_str());
    let parse = |text: &str| {
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
    };
    let renewed_until = parse(renewed["certificate_not_after"].as_str().unwrap());
    assert!(
        renewed_until >= parse(&issued_until),
        "{renewed_until} < {issued_until}"
    );
    let stale = old_http.get("/api/v1/agent/machine", None);
    assert_eq!(
        stale.status, 401,
        "old certificate still accepted: {}",
        stale.body
    );
    assert_eq!(
        collector
            .cli_json(&["machines", "list"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // An expired certificate is not renewed: the agent says to enroll again.
    let past = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    config = renewed;
    config["certificate_not_after"] = past
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
        .into();
    fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    let out = agent.run(&["report", "Too late"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("enroll again"), "{}", stderr(&out));
}

#[test]
fn an_admin_approves_a_pending_machine_in_the_console() {
    let collector = TestCollector::spawn_with(&["--enrollment", "approve"]);
    let agent = TestAgent::unenrolled();
    let out = agent.enroll(
        &collector,
        &collector.enrollment_token,
        &collector.ca_path(),
    );
    assert_success(&out, "enroll under approval");
    let machine = &collector.cli_json(&["machines", "list"])[0];
    assert_eq!(machine["status"], "pending");
    let (id, hostname) = (
        machine["id"].as_str().unwrap().to_owned(),
        machine["hostname"].as_str().unwrap().to_owned(),
    );

    let http = collector.http();
    let (cookie, csrf) = http.console_login(&collector.admin_token);
    let page = http.request("GET", "/admin/machines", None, &[("cookie", &cookie)], None);
    assert!(
        page.body.contains(&format!("Approve {hostname}")),
        "{}",
        page.body
    );
    let form = [
        ("cookie", cookie.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let body = format!("csrf={csrf}");
    let path = format!("/admin/machines/{id}/approve");
    let approved = http.request("POST", &path, None, &form, Some(body.as_bytes()));
    assert_eq!(approved.status, 303, "{}", approved.body);
    assert_eq!(approved.header("location"), Some("/admin/machines"));
    assert_eq!(
        collector.cli_json(&["machines", "list"])[0]["status"],
        "active"
    );
    let page = http.request("GET", "/admin/machines", None, &[("cookie", &cookie)], None);
    assert!(!page.body.contains("Approve "), "{}", page.body);
    let audit = collector.cli_ok(&["audit", "list"]);
    assert!(audit.contains("machine.approve"), "{audit}");
    assert_success(&agent.run(&["report", "Now approved"]), "report");
}

#[test]
fn approval_mode_holds_new_machines_until_an_admin_approves() {
    let collector = TestCollector::spawn_with(&["--enrollment", "approve"]);
    let agent = TestAgent::unenrolled();
    let out = agent.enroll(
        &collector,
        &collector.enrollment_token,
        &collector.ca_path(),
    );
    assert_success(&out, "enroll under approval");
    assert!(stdout(&out).contains("must approve"), "{}", stdout(&out));
    let machines = collector.cli_json(&["machines", "list"]);
    assert_eq!(machines[0]["status"], "pending");
    let machine_id = machines[0]["id"].as_str().unwrap().to_owned();

    let refused = agent.run(&["report", "Before approval"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("waiting for an administrator's approval"),
        "{}",
        stderr(&refused)
    );

    assert!(
        stderr(&refused).contains("kept in the spool"),
        "{}",
        stderr(&refused)
    );

    let approved = collector.cli_json(&["machines", "approve", &machine_id]);
    assert_eq!(approved["status"], "active");
    // The refused report waited in the spool and goes first.
    let out = agent.run(&["report", "After approval"]);
    assert_success(&out, "report after approval");
    let text = stdout(&out);
    assert!(text.contains("Delivered your earlier report"), "{text}");
    assert_eq!(text.trim().lines().last(), Some("#2"), "{text}");
    let first = collector.cli_json(&["tickets", "show", "1"]);
    assert_eq!(first["description"], "Before approval");

    // A revoked machine cannot be approved back.
    collector.cli_json(&["machines", "revoke", &machine_id]);
    let again = collector.cli(&["machines", "approve", &machine_id]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("revoked"), "{}", stderr(&again));
}

fn spooled_tickets(agent: &TestAgent) -> usize {
    match fs::read_dir(agent.dir().join("spool")) {
        Ok(dir) => dir
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .count(),
        Err(_) => 0,
    }
}

#[test]
fn report_is_spooled_while_the_collector_is_down_and_delivered_once_after_it_returns() {
    let mut collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    collector.stop();

    let out = agent.run(&["report", "Filed while offline"]);
    assert_success(&out, "report while the collector is down");
    let text = stdout(&out);
    // The agent names the saved report by its reference (`LL-XXXX-XXXX`) and says it is queued.
    assert!(
        text.contains("LL-") && text.contains("queued, will be delivered automatically"),
        "{text}"
    );
    assert_eq!(spooled_tickets(&agent), 1);

    let collector = collector.restart();
    let out = agent.run(&["report", "Filed after it came back"]);
    assert_success(&out, "report after the collector returned");
    let text = stdout(&out);
    assert!(text.contains("Delivered your earlier report LL-"), "{text}");
    assert!(text.contains("as #1"), "{text}");
    assert_eq!(text.trim().lines().last(), Some("#2"), "{text}");
    assert_eq!(spooled_tickets(&agent), 0);

    let out = agent.run(&["report", "Third"]);
    assert_success(&out, "third report");
    assert_eq!(
        stdout(&out).trim(),
        "#3",
        "the spooled ticket was delivered twice"
    );
    let tickets = collector.cli_json(&["tickets", "list"]);
    let descriptions: Vec<&str> = tickets
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["description"].as_str().unwrap())
        .collect();
    assert_eq!(
        descriptions,
        ["Third", "Filed after it came back", "Filed while offline"]
    );
    let offline = collector.cli_json(&["tickets", "show", "1"]);
    assert_eq!(offline["snapshots"].as_array().unwrap().len(), 1);
}

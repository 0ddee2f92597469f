//! Service levels and escalation (issue 9), with the real binaries and the collector's clock
//! moved forward (`advance_clock`) instead of waiting: due times and breach, the first response,
//! pauses while waiting on the user, automatic escalation once per target, manual escalation
//! with its reason, assignment to a person or a tier queue, and the console's card and form.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::binaries;
use crate::harness::{TestAgent, TestCollector, assert_success, eventually};

/// Normal tickets (what `file_ticket` files: normal urgency, no findings): 4 h to the first
/// response, 1 d to the resolution, at risk with 25% left.
const SETTINGS: &str = "[sla]\nat_risk = \"25%\"\n\
    [sla.targets.normal]\nfirst_response = \"4h\"\nresolution = \"1d\"\n\
    [sla.targets.high]\nfirst_response = \"1h\"\nresolution = \"8h\"\n";

/// A collector with [`SETTINGS`] and an agent that filed `tickets` tickets.
fn site(tickets: usize) -> (TestCollector, TestAgent, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("collector.toml");
    std::fs::write(&config, SETTINGS).unwrap();
    let collector = TestCollector::spawn_with(&["--config", config.to_str().unwrap()]);
    let agent = TestAgent::enrolled(&collector);
    let http = agent.http(&collector);
    for i in 0..tickets {
        let answer = http.file_ticket(&format!("problem {i}"), &format!("sla-{i}"));
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    (collector, agent, dir)
}

fn time_of(value: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(
        value.as_str().unwrap_or_else(|| panic!("no time: {value}")),
        &Rfc3339,
    )
    .unwrap()
}

fn show(collector: &TestCollector, n: u64) -> Value {
    collector.cli_json(&["tickets", "show", &n.to_string()])
}

fn notes(ticket: &Value) -> Vec<String> {
    ticket["comments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["author"] == "lifeline")
        .map(|c| c["body"].as_str().unwrap().to_owned())
        .collect()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn due_times_at_risk_breach_and_the_first_response_are_shown() {
    let (collector, _agent, _dir) = site(2);
    let one = show(&collector, 1);
    let created = time_of(&one["created_at"]);
    let sla = &one["sla"];
    assert_eq!(sla["first_response"]["state"], "ok");
    assert_eq!(sla["first_response"]["target_secs"], 4 * 3600);
    assert_eq!(
        time_of(&sla["first_response"]["due_at"]),
        created + time::Duration::hours(4)
    );
    assert_eq!(
        time_of(&sla["resolution"]["due_at"]),
        created + time::Duration::days(1)
    );
    let left = sla["first_response"]["left_secs"].as_i64().unwrap();
    assert!((4 * 3600 - 60..=4 * 3600).contains(&left), "{left}");
    let page = collector.cli_ok(&["tickets", "show", "1"]);
    assert!(page.contains("Service levels:"), "{page}");
    assert!(page.contains("first response  [ok] 3h 59m left"), "{page}");
    assert!(page.contains("target 4h"), "{page}");

    // A technician answers #1; #2 waits.
    collector.cli_ok(&["tickets", "comment", "1", "We are looking into it"]);
    let one = show(&collector, 1);
    assert_eq!(one["sla"]["first_response"]["state"], "met");
    assert!(one["first_response_at"].is_string());

    // 3 h 10 min later #2 has under an hour (25% of 4 h) left: at risk.
    collector.advance_clock(3 * 3600 + 600);
    let two = show(&collector, 2);
    assert_eq!(two["sla"]["first_response"]["state"], "at_risk", "{two}");
    let table = collector.cli_ok(&["tickets", "list"]);
    assert!(
        table.contains("at_risk first response: 49m left"),
        "{table}"
    );

    // Past 4 h: breached, and the answer comes too late to be met.
    collector.advance_clock(3600);
    let two = show(&collector, 2);
    assert_eq!(two["sla"]["first_response"]["state"], "breached");
    assert!(two["sla"]["first_response"]["left_secs"].as_i64().unwrap() < 0);
    let page = collector.cli_ok(&["tickets", "show", "2"]);
    assert!(page.contains("[breached] overdue by 10m"), "{page}");
    collector.cli_ok(&["tickets", "comment", "2", "Sorry for the wait"]);
    let two = show(&collector, 2);
    assert_eq!(two["sla"]["first_response"]["state"], "breached");
    assert!(
        collector
            .cli_ok(&["tickets", "show", "2"])
            .contains("met 10m late")
    );
    // #1 was met in time and stays met.
    assert_eq!(show(&collector, 1)["sla"]["first_response"]["state"], "met");
}

#[test]
fn waiting_on_the_user_pauses_the_clock_and_the_due_time_moves_by_the_pause() {
    let (collector, _agent, _dir) = site(1);
    let before = show(&collector, 1);
    let due = time_of(&before["sla"]["resolution"]["due_at"]);

    let waiting = collector.cli_json(&["tickets", "update", "1", "--status", "waiting_on_user"]);
    assert!(
        waiting["first_response_at"].is_string(),
        "a status change answers the user"
    );
    assert_eq!(waiting["sla"]["resolution"]["state"], "paused");
    assert!(waiting["sla"]["resolution"]["due_at"].is_null());
    assert!(waiting["sla"]["paused_since"].is_string());

    // Five hours waiting on the user: no breach, no escalation, the same time left.
    collector.advance_clock(5 * 3600);
    let paused = show(&collector, 1);
    assert_eq!(paused["sla"]["resolution"]["state"], "paused");
    assert_eq!(paused["tier"], 1);
    let page = collector.cli_ok(&["tickets", "show", "1"]);
    assert!(page.contains("(paused)"), "{page}");
    assert!(page.contains("clocks paused since"), "{page}");
    // Paused tickets sort after those with something due.
    let list = collector.cli_ok(&["tickets", "list", "--sort", "due"]);
    assert!(list.contains("paused"), "{list}");

    let running = collector.cli_json(&["tickets", "update", "1", "--status", "in_progress"]);
    let moved = time_of(&running["sla"]["resolution"]["due_at"]);
    let shift = (moved - due).whole_seconds();
    // Five hours plus the few real seconds between the two updates.
    assert!((5 * 3600..5 * 3600 + 60).contains(&shift), "{shift}");
    assert_eq!(running["sla"]["resolution"]["state"], "ok");
    let notes = notes(&running);
    assert!(
        notes.iter().any(|n| n
            .contains("admin changed status new → waiting_on_user (service-level clocks paused)")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("(service-level clocks running again)")),
        "{notes:?}"
    );
}

#[test]
fn a_ticket_about_to_breach_is_escalated_automatically_once_per_target() {
    let (collector, _agent, _dir) = site(1);
    // First response at risk (under 1 h of 4 h left).
    collector.advance_clock(3 * 3600 + 300);
    let ticket = eventually("the automatic escalation", Duration::from_secs(20), || {
        let t = show(&collector, 1);
        (t["tier"] == 2).then_some(t)
    });
    let notes_now = notes(&ticket);
    assert_eq!(notes_now.len(), 1, "{notes_now:?}");
    assert!(
        notes_now[0].starts_with("Automatically escalated to tier 2: first response due in 5"),
        "{notes_now:?}"
    );
    assert_eq!(ticket["sla"]["first_response"]["auto_escalated"], true);
    assert!(
        collector
            .cli_ok(&["tickets", "show", "1"])
            .contains("escalated automatically")
    );

    // Many ticks later the resolution target comes at risk (under 6 h of 1 d left): one more
    // tier for it, and still only one escalation for the first response.
    collector.advance_clock(15 * 3600);
    let ticket = eventually("the second escalation", Duration::from_secs(20), || {
        let t = show(&collector, 1);
        (t["tier"] == 3).then_some(t)
    });
    let notes_now = notes(&ticket);
    assert_eq!(notes_now.len(), 2, "{notes_now:?}");
    assert!(
        notes_now[1].starts_with("Automatically escalated to tier 3: resolution due in"),
        "{notes_now:?}"
    );
    collector.advance_clock(24 * 3600);
    let audit = collector.cli_json(&["audit", "list", "--actor", "collector"]);
    let escalations: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "ticket.auto_escalate")
        .collect();
    assert_eq!(escalations.len(), 2, "{audit}");
    assert_eq!(escalations[0]["subject"], "ticket:1");
    assert_eq!(escalations[0]["detail"]["to_tier"], 2);
    assert_eq!(show(&collector, 1)["tier"], 3, "tier 3 is the top");
}

#[test]
fn manual_escalation_records_the_reason_and_refuses_what_makes_no_sense() {
    let (collector, _agent, _dir) = site(1);
    let bob = collector.cli_json(&["users", "add", "bob", "--role", "technician"]);
    let bob_token = bob["token"].as_str().unwrap().to_owned();

    let out = collector.cli_as(
        &bob_token,
        &[
            "tickets",
            "escalate",
            "1",
            "--to-tier",
            "2",
            "--reason",
            "needs the network team",
        ],
    );
    assert_success(&out, "tickets escalate");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "#1 escalated to tier 2 (in the tier 2 queue)"
    );
    let ticket = show(&collector, 1);
    assert_eq!(ticket["tier"], 2);
    assert!(ticket["first_response_at"].is_null(), "not a response");
    assert!(
        notes(&ticket).contains(
            &"Escalated from tier 1 to tier 2 by bob (in the tier 2 queue): needs the network team"
                .to_owned()
        ),
        "{ticket}"
    );
    let audit = collector.cli_json(&["audit", "list", "--actor", "bob"]);
    let entry = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "ticket.escalate")
        .unwrap_or_else(|| panic!("{audit}"));
    assert_eq!(entry["detail"]["reason"], "needs the network team");
    assert_eq!(entry["detail"]["from_tier"], 1);

    // The tier 2 queue: tier 2, nobody assigned.
    let queue = collector.cli_json(&["tickets", "list", "--tier", "2", "--unassigned"]);
    assert_eq!(queue.as_array().unwrap().len(), 1);

    for (args, expected) in [
        (
            &["--to-tier", "1", "--reason", "x"][..],
            "only moves a ticket up",
        ),
        (&["--to-tier", "2", "--reason", "x"][..], "is at tier 2"),
        (&["--to-tier", "4", "--reason", "x"][..], "out of range"),
        (&["--to-tier", "3", "--reason", "   "][..], "needs a reason"),
        (
            &["--to-tier", "3", "--reason", "x", "--assign", "ghost"][..],
            "no such active user",
        ),
    ] {
        let mut all = vec!["tickets", "escalate", "1"];
        all.extend_from_slice(args);
        let out = collector.cli(&all);
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = stderr(&out);
        assert!(err.contains(expected), "{args:?}: {err}");
        if expected != "out of range" {
            // The collector's refusals are one line (clap adds a usage hint to its own).
            assert_eq!(err.trim().lines().count(), 1, "{err}");
        }
    }
    let missing = collector.cli(&["tickets", "escalate", "1", "--to-tier", "3"]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("--reason"));
    let nine = collector.cli(&[
        "tickets",
        "escalate",
        "9",
        "--to-tier",
        "3",
        "--reason",
        "x",
    ]);
    assert!(stderr(&nine).contains("no ticket #9"), "{}", stderr(&nine));

    // The API gives the same answers with its error body.
    let http = collector.http();
    let admin = collector.admin_token.clone();
    let path = "/api/v1/tickets/1/escalate";
    for (body, status, expected) in [
        (
            json!({"to_tier": 5, "reason": "x"}),
            400,
            "tier 5 is out of range",
        ),
        (json!({"to_tier": 3}), 400, "reason"),
        (
            json!({"to_tier": 3, "reason": "x", "priority": "high"}),
            400,
            "unknown field",
        ),
        (
            json!({"to_tier": 3, "reason": "x".repeat(3000)}),
            400,
            "at most 2000",
        ),
        (
            json!({"to_tier": 1, "reason": "x"}),
            409,
            "only moves a ticket up",
        ),
    ] {
        let answer = http.send_json("POST", path, Some(&admin), &body);
        assert_eq!(answer.status, status, "{body}: {}", answer.body);
        assert!(answer.error().contains(expected), "{body}: {}", answer.body);
    }
    assert_eq!(show(&collector, 1)["tier"], 2, "nothing refused changed it");

    // Escalating to a person of the higher tier; then back to that tier's queue.
    let assigned = collector.cli_json(&[
        "tickets",
        "escalate",
        "1",
        "--to-tier",
        "3",
        "--reason",
        "hardware fault",
        "--assign",
        "bob",
    ]);
    assert_eq!(assigned["tier"], 3);
    assert_eq!(assigned["assignee"], "bob");
    let assign_ghost = collector.cli(&["tickets", "update", "1", "--assign", "ghost"]);
    assert!(stderr(&assign_ghost).contains("no such active user"));
    let queued = collector.cli_json(&["tickets", "update", "1", "--unassign"]);
    assert!(queued["assignee"].is_null());
    let tier3 = collector.cli_json(&["tickets", "list", "--tier", "3", "--unassigned"]);
    assert_eq!(tier3[0]["number"], 1);

    // Resolved tickets are reopened, not escalated.
    collector.cli_ok(&[
        "tickets", "update", "1", "--status", "resolved", "--tier", "1",
    ]);
    let out = collector.cli(&[
        "tickets",
        "escalate",
        "1",
        "--to-tier",
        "2",
        "--reason",
        "x",
    ]);
    assert!(stderr(&out).contains("reopen it"), "{}", stderr(&out));
}

#[test]
fn the_console_shows_both_targets_sorts_by_due_and_escalates_with_a_reason() {
    let (collector, agent, _dir) = site(1);
    collector.advance_clock(3600);
    assert_eq!(
        agent
            .http(&collector)
            .file_ticket("later", "sla-later")
            .status,
        200
    );
    let http = collector.http();
    let (cookie, csrf) = http.console_login(&collector.admin_token);
    let get = |path: &str| http.request("GET", path, None, &[("cookie", &cookie)], None);

    let queue = get("/?sort=due");
    assert_eq!(queue.status, 200);
    assert!(queue.body.contains("Due soonest"), "{}", queue.body);
    let first = queue.body.find("href=\"/tickets/1\"").unwrap();
    let second = queue.body.find("href=\"/tickets/2\"").unwrap();
    assert!(first < second, "the ticket due first is listed first");
    assert!(queue.body.contains("sla sla-ok"), "{}", queue.body);

    let page = get("/tickets/1");
    assert!(page.body.contains("Service levels"), "{}", page.body);
    assert!(page.body.contains("First response"));
    assert!(page.body.contains("Resolution"));
    assert!(page.body.contains("action=\"/tickets/1/escalate\""));

    let form = |body: &str| {
        http.request(
            "POST",
            "/tickets/1/escalate",
            None,
            &[
                ("cookie", &cookie),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            Some(body.as_bytes()),
        )
    };
    let refused = form(&format!("csrf={csrf}&to_tier=2&reason="));
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("needs a reason"), "{}", refused.body);
    let forged = form("csrf=wrong&to_tier=2&reason=forged");
    assert_eq!(forged.status, 403);
    let done = form(&format!("csrf={csrf}&to_tier=2&reason=printer+team"));
    assert_eq!(done.status, 303, "{}", done.body);
    let ticket = show(&collector, 1);
    assert_eq!(ticket["tier"], 2);
    assert!(
        notes(&ticket).iter().any(|n| n.ends_with(": printer team")),
        "{ticket}"
    );
}

#[test]
fn broken_service_level_settings_stop_the_collector_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("collector.toml");
    std::fs::write(&config, "[sla.targets.high]\nresolution = \"4x\"\n").unwrap();
    let out = Command::new(binaries::collector())
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("collector.toml"), "{err}");
    assert!(err.contains("sla.targets.high.resolution"), "{err}");
    assert!(err.contains("\"4x\" is not a duration"), "{err}");
    assert!(!dir.path().join("data").exists());
}

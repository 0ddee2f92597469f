//! Recurring problems, the knowledge base and the help-desk figures (issue 9), with the real
//! binaries: tickets filed by agents with snapshots that make findings (a full disk, failing
//! DNS, a failed unit), resolved with notes, actions run on them by a real agent service; then
//! `tickets similar`, `reports recurring`, `kb search`, the console's pages, and `reports
//! summary` figures on a known set of tickets whose durations the collector's test clock makes
//! exact (`advance_clock`, no sleeps).

use std::process::Output;

use lifeline_shared::v1::api::{IDEMPOTENCY_KEY_HEADER, NewTicket, Urgency, paths};
use lifeline_shared::v1::snapshot::{
    Check, Filesystem, Network, Section, Services, Snapshot, Storage, Unit,
};

use crate::actions::Site;
use crate::harness::{Http, TestAgent, TestCollector, assert_success};

/// What a test ticket's snapshot shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    /// `/` 98% full: `disk.full:/` (critical).
    FullDisk,
    /// Every DNS check fails: `dns.fail` (critical).
    DnsFails,
    /// `cups.service` failed: `service.failed:cups.service` (warning).
    PrinterUnit,
}

fn snapshot(problems: &[Problem]) -> Snapshot {
    let mut snap = Snapshot::empty(time::OffsetDateTime::now_utc(), "e2e");
    for problem in problems {
        match problem {
            Problem::FullDisk => {
                let gib = 1024 * 1024 * 1024;
                snap.storage = Some(Section::ok(
                    Storage {
                        filesystems: vec![Filesystem {
                            mount_point: "/".into(),
                            device: "/dev/sda1".into(),
                            fs_type: "ext4".into(),
                            total_bytes: 100 * gib,
                            used_bytes: 98 * gib,
                            available_bytes: 2 * gib,
                            inodes_total: 1000,
                            inodes_free: 900,
                            ..Filesystem::default()
                        }],
                        ..Storage::default()
                    },
                    vec![],
                    3,
                ));
            }
            Problem::DnsFails => {
                snap.network = Some(Section::ok(
                    Network {
                        dns_checks: vec![Check {
                            target: "example.org".into(),
                            ok: false,
                            detail: "timed out".into(),
                            elapsed_ms: 2000,
                        }],
                        ..Network::default()
                    },
                    vec![],
                    3,
                ));
            }
            Problem::PrinterUnit => {
                snap.services = Some(Section::ok(
                    Services {
                        failed_units: vec![Unit {
                            name: "cups.service".into(),
                            description: "CUPS Scheduler".into(),
                            load: "loaded".into(),
                            active: "failed".into(),
                            sub: "failed".into(),
                        }],
                        ..Services::default()
                    },
                    vec![],
                    3,
                ));
            }
        }
    }
    snap
}

/// Files a ticket as the agent behind `http`; returns its number.
fn file(http: &Http, key: &str, description: &str, problems: &[Problem]) -> u64 {
    let ticket = NewTicket {
        description: description.to_owned(),
        urgency: Urgency::Normal,
        os_user: Some("tester".to_owned()),
        snapshot: Some(snapshot(problems)),
        screenshot_png: None,
    };
    let body = serde_json::to_vec(&ticket).unwrap();
    let answer = http.request(
        "POST",
        paths::AGENT_TICKETS,
        None,
        &[
            ("content-type", "application/json"),
            (IDEMPOTENCY_KEY_HEADER, key),
        ],
        Some(&body),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()["number"].as_u64().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The command failed, and the first line of its error says `expected`.
fn assert_fails(out: &Output, what: &str, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{what} should have failed: {}",
        stdout(out)
    );
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains(expected),
        "{what}: expected {expected:?} in the first line of:\n{stderr}"
    );
}

fn numbers(list: &serde_json::Value) -> Vec<u64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect()
}

#[test]
fn similar_tickets_recurring_problems_and_the_knowledge_base_come_from_findings_and_notes() {
    let site = Site::new();
    let c = &site.collector;
    let tech = |args: &[&str]| c.cli_as(&site.technician, args);
    let agent = site.agent.http(c);
    let other = TestAgent::enrolled(c);
    let other_http = other.http(c);

    let t1 = file(
        &agent,
        "kb-1",
        "Cannot save my report",
        &[Problem::FullDisk],
    );
    let t2 = file(&agent, "kb-2", "No web sites load", &[Problem::DnsFails]);
    let t3 = file(
        &other_http,
        "kb-3",
        "Everything is broken",
        &[Problem::FullDisk, Problem::DnsFails],
    );
    let t4 = file(&other_http, "kb-4", "Save fails", &[Problem::FullDisk]);
    let t5 = file(
        &agent,
        "kb-5",
        "Disk full and no internet",
        &[Problem::FullDisk, Problem::DnsFails],
    );
    let t6 = file(
        &agent,
        "kb-6",
        "Printer does nothing",
        &[Problem::PrinterUnit],
    );
    let t7 = file(&agent, "kb-7", "Mouse is slow", &[]);
    assert_eq!([t1, t2, t3, t4, t5, t6, t7], [1, 2, 3, 4, 5, 6, 7]);

    // The fingerprint is on the ticket.
    let shown = c.cli_json(&["tickets", "show", "5"]);
    assert_eq!(
        shown["fingerprints"],
        serde_json::json!(["disk.full:/", "dns.fail"])
    );
    let page = c.cli_ok(&["tickets", "show", "5"]);
    assert!(
        page.contains("Fingerprint: disk.full:/, dns.fail"),
        "{page}"
    );

    // Actions on the earlier tickets: one that works, one that times out.
    let machine = site.agent.machine_id.clone();
    let say = tech(&[
        "run",
        "say",
        "--machine",
        &machine,
        "--param",
        "text=freeing space",
        "--ticket",
        "1",
        "--wait",
    ]);
    assert_success(&say, &format!("run say\n{}", site.context()));
    let nap = tech(&[
        "run",
        "nap",
        "--machine",
        &machine,
        "--ticket",
        "2",
        "--wait",
    ]);
    assert!(!nap.status.success(), "{}", stdout(&nap));

    // Resolution notes: with resolving, kept on the ticket and in its timeline.
    let out = c.cli_ok(&[
        "tickets",
        "update",
        "1",
        "--status",
        "resolved",
        "--note",
        "Cleared the apt cache with clean-package-cache; 12 GiB free again",
    ]);
    assert!(out.contains("resolution note recorded"), "{out}");
    c.cli_ok(&["tickets", "update", "2", "--status", "resolved"]);
    // A note on a ticket that already is resolved.
    c.cli_ok(&[
        "tickets",
        "update",
        "2",
        "--note",
        "Restarted systemd-resolved and flushed the DNS cache",
    ]);
    let one = c.cli_json(&["tickets", "show", "1"]);
    assert_eq!(
        one["resolution_note"],
        "Cleared the apt cache with clean-package-cache; 12 GiB free again"
    );
    assert!(
        one["comments"].as_array().unwrap().iter().any(|c| c["body"]
            .as_str()
            .unwrap()
            .starts_with("Resolution: Cleared the apt cache")),
        "{one}"
    );
    assert!(
        c.cli_ok(&["tickets", "show", "1"])
            .contains("Resolution:\n  Cleared")
    );

    // A note needs resolving, is not blank, and has a size limit.
    assert_fails(
        &c.cli(&["tickets", "update", "3", "--note", "did something"]),
        "note on an open ticket",
        "a resolution note goes with status resolved or closed (ticket #3 would be new)",
    );
    assert_fails(
        &c.cli(&[
            "tickets", "update", "3", "--status", "resolved", "--note", "  ",
        ]),
        "blank note",
        "resolution_note must not be empty",
    );
    let long = "x".repeat(9000);
    assert_fails(
        &c.cli(&[
            "tickets", "update", "3", "--status", "closed", "--note", &long,
        ]),
        "long note",
        "resolution_note is 9000 characters; the limit is 8192",
    );
    assert_eq!(c.cli_json(&["tickets", "show", "3"])["status"], "new");

    // Similar tickets: earlier ones sharing a key; most shared keys first, then newest.
    let similar = c.cli_json(&["tickets", "similar", "5"]);
    assert_eq!(
        similar["keys"],
        serde_json::json!(["disk.full:/", "dns.fail"])
    );
    assert_eq!(numbers(&similar["similar"]), [3, 4, 2, 1], "{similar:#}");
    let s3 = &similar["similar"][0];
    assert_eq!(
        s3["shared_keys"],
        serde_json::json!(["disk.full:/", "dns.fail"])
    );
    assert_eq!(s3["machine_id"], other.machine_id.as_str());
    let s1 = &similar["similar"][3];
    assert_eq!(s1["shared_keys"], serde_json::json!(["disk.full:/"]));
    assert_eq!(s1["status"], "resolved");
    assert_eq!(s1["actions"][0]["action"], "say");
    assert_eq!(s1["actions"][0]["state"], "succeeded");
    let s2 = &similar["similar"][2];
    assert_eq!(s2["actions"][0]["action"], "nap");
    assert_eq!(s2["actions"][0]["state"], "failed");
    let text = c.cli_ok(&["tickets", "similar", "5"]);
    for expected in [
        "Ticket #5: fingerprint disk.full:/, dns.fail",
        "4 earlier tickets with the same problem, best match first:",
        "Resolution:  Cleared the apt cache with clean-package-cache",
        "Actions:     say (run 1): succeeded",
        "Actions:     nap (run 2): failed",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    assert!(
        text.find("#3 ").unwrap() < text.find("#4 ").unwrap()
            && text.find("#4 ").unwrap() < text.find("#1 ").unwrap(),
        "{text}"
    );
    let limited = c.cli_json(&["tickets", "similar", "5", "--limit", "1"]);
    assert_eq!(numbers(&limited["similar"]), [3]);
    // Only earlier tickets count; a ticket without findings has nothing to match.
    assert_eq!(
        numbers(&c.cli_json(&["tickets", "similar", "1"])["similar"]),
        [] as [u64; 0]
    );
    assert!(
        c.cli_ok(&["tickets", "similar", "7"])
            .contains("no warning or critical findings"),
    );
    assert_fails(
        &c.cli(&["tickets", "similar", "99"]),
        "similar of a missing ticket",
        "no ticket #99",
    );

    // Recurring problems: keys by tickets, machines; known-error candidates from 3 tickets.
    let report = c.cli_json(&["reports", "recurring", "--since", "30d"]);
    let problems = report["problems"].as_array().unwrap();
    let keys: Vec<&str> = problems
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["disk.full:/", "dns.fail", "service.failed:cups.service"]
    );
    let disk = &problems[0];
    assert_eq!(
        (&disk["tickets"], &disk["machines"], &disk["open"]),
        (
            &serde_json::json!(4),
            &serde_json::json!(2),
            &serde_json::json!(3)
        )
    );
    assert_eq!(disk["known_error_candidate"], true);
    assert_eq!(disk["example"]["ticket"], 1);
    assert!(
        disk["example"]["note"]
            .as_str()
            .unwrap()
            .starts_with("Cleared")
    );
    assert_eq!(problems[1]["tickets"], 3);
    assert_eq!(problems[1]["example"]["ticket"], 2);
    assert_eq!(problems[2]["tickets"], 1);
    assert_eq!(problems[2]["known_error_candidate"], false);
    assert_eq!(problems[2]["example"], serde_json::Value::Null);
    let text = c.cli_ok(&["reports", "recurring", "--since", "30d", "--limit", "2"]);
    assert!(
        text.contains("hint: disk.full:/ came back 4 times on 2 machines: a known-error candidate"),
        "{text}"
    );
    assert!(
        text.contains("hint: dns.fail came back 3 times on 2 machines"),
        "{text}"
    );
    assert!(!text.contains("cups"), "--limit 2: {text}");
    assert_fails(
        &c.cli(&["reports", "recurring", "--since", "5x"]),
        "bad window",
        "since: \"5x\" has no unit m, h or d (expected a window such as 30d, 12h or 90m)",
    );

    // The knowledge base: resolved tickets with a note; every word must match.
    let hits = c.cli_json(&["kb", "search", "cache"]);
    assert_eq!(numbers(&hits["hits"]), [2, 1], "{hits:#}");
    let hits = c.cli_json(&["kb", "search", "apt", "CACHE"]);
    assert_eq!(numbers(&hits["hits"]), [1]);
    assert_eq!(
        hits["hits"][0]["snippet"],
        "Cleared the apt cache with clean-package-cache; 12 GiB free again"
    );
    // A fingerprint key matches too.
    assert_eq!(
        numbers(&c.cli_json(&["kb", "search", "dns.fail"])["hits"]),
        [2]
    );
    // Unresolved tickets (#3 mentions "broken") and tickets without a note are not knowledge.
    assert_eq!(
        numbers(&c.cli_json(&["kb", "search", "broken"])["hits"]),
        [] as [u64; 0]
    );
    let text = c.cli_ok(&["kb", "search", "flushed dns"]);
    assert!(
        text.contains("1 resolved ticket matches \"flushed dns\""),
        "{text}"
    );
    assert!(text.contains("Restarted systemd-resolved"), "{text}");
    assert!(
        c.cli_ok(&["kb", "search", "zebra"])
            .contains("No resolved ticket")
    );
    let out = c.cli(&["kb", "search"]);
    assert!(!out.status.success());

    // The summary counts the runs that ended: `say` succeeded, `nap` timed out.
    let summary = c.cli_json(&["reports", "summary", "--since", "1d"]);
    assert_eq!(summary["actions"]["run"], 2);
    assert_eq!(summary["actions"]["success_ratio"], 0.5);
    assert_eq!(summary["actions"]["by_action"][1]["action"], "say");
    assert_eq!(summary["actions"]["by_action"][1]["success_ratio"], 1.0);
    let text = c.cli_ok(&["reports", "summary"]);
    assert!(
        text.contains("Actions:        2 run, 50% succeeded (1 failed, 0 refused)"),
        "{text}"
    );

    // The API refuses bad input with a clear error.
    let http = c.http();
    let token = Some(site.technician.as_str());
    for (path, expected) in [
        ("/api/v1/kb", "q: give at least one word to search for"),
        (
            "/api/v1/kb?q=a+b+c+d+e+f+g+h+i",
            "q has 9 words; at most 8 are allowed",
        ),
        (
            "/api/v1/kb?q=disk&limit=0",
            "limit 0 is out of range (1 to 100)",
        ),
        (
            "/api/v1/reports/recurring?since=400d",
            "is too long: at most 366d",
        ),
        ("/api/v1/reports/summary?since=0m", "at least 1m"),
        (
            "/api/v1/tickets/5/similar?limit=101",
            "limit 101 is out of range",
        ),
        ("/api/v1/tickets/5/similar?top=3", "unknown field"),
    ] {
        let answer = http.get(path, token);
        assert_eq!(answer.status, 400, "{path}: {}", answer.body);
        assert!(
            answer.error().contains(expected),
            "{path}: {}",
            answer.error()
        );
    }
    assert_eq!(http.get("/api/v1/tickets/99/similar", token).status, 404);

    // The console: resolve #4 with a note through the ticket form, then the reports page and
    // the ticket page's "Similar tickets".
    let (cookie, csrf) = http.console_login(&site.technician);
    let priority = c.cli_json(&["tickets", "show", "4"])["priority"]
        .as_str()
        .unwrap()
        .to_owned();
    let form = format!(
        "csrf={csrf}&status=resolved&priority={priority}&tier=1&assignee=&\
         resolution_note=Moved+old+logs+to+the+archive+share"
    );
    let answer = http.request(
        "POST",
        "/tickets/4/update",
        None,
        &[
            ("cookie", &cookie),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        Some(form.as_bytes()),
    );
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(
        numbers(&c.cli_json(&["kb", "search", "archive"])["hits"]),
        [4]
    );

    let reports = http.request(
        "GET",
        "/reports?q=apt+cache",
        None,
        &[("cookie", &cookie)],
        None,
    );
    assert_eq!(reports.status, 200, "{}", reports.body);
    for expected in [
        "<code>disk.full:/</code> <span class=\"tag warn\">known-error candidate</span>",
        "<code>service.failed:cups.service</code></td>",
        "Knowledge base: “apt cache”",
        "href=\"/tickets/1\"",
        "Tickets opened</dt><dd>7</dd>",
        "href=\"/reports\" aria-current=\"page\"",
    ] {
        assert!(
            reports.body.contains(expected),
            "{expected:?} missing from the reports page:\n{}",
            reports.body
        );
    }
    let bad = http.request(
        "GET",
        "/reports?since=soon",
        None,
        &[("cookie", &cookie)],
        None,
    );
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains("since: &#34;soon&#34;") || bad.body.contains("since: &quot;soon&quot;"),
        "{}",
        bad.body
    );

    let ticket = http.request("GET", "/tickets/5", None, &[("cookie", &cookie)], None);
    assert_eq!(ticket.status, 200);
    let similar = &ticket.body[ticket.body.find("<h2>Similar tickets</h2>").unwrap()..];
    for expected in [
        "<a href=\"/tickets/3\">#3</a>",
        "Cleared the apt cache with clean-package-cache",
        "say (run 1): succeeded",
    ] {
        assert!(
            similar.contains(expected),
            "{expected:?} missing:\n{similar}"
        );
    }
}

/// The seconds in `v` are `expected` plus the little real time the steps took (the test clock
/// is the system clock moved by `advance_clock`).
fn about(v: &serde_json::Value, expected: u64) -> bool {
    v.as_u64()
        .is_some_and(|secs| (expected..expected + 30).contains(&secs))
}

/// The value of the first `/metrics` sample of `name` with all of `labels`.
fn metric(text: &str, name: &str, labels: &[&str]) -> String {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{text}"))
        .to_owned()
}

#[test]
fn the_summary_figures_of_a_known_set_of_tickets_follow_the_clock() {
    let c = TestCollector::spawn();
    let agent = TestAgent::enrolled(&c);
    let http = agent.http(&c);
    // #1 and #3 are high priority (a critical finding), #2 normal.
    assert_eq!(file(&http, "s-1", "Disk full", &[Problem::FullDisk]), 1);
    assert_eq!(file(&http, "s-2", "Keyboard", &[]), 2);
    assert_eq!(file(&http, "s-3", "No DNS", &[Problem::DnsFails]), 3);

    c.advance_clock(600);
    c.cli_ok(&["tickets", "comment", "1", "looking at it"]);
    c.advance_clock(1200);
    c.cli_ok(&["tickets", "comment", "2", "which keys?"]);
    c.cli_ok(&[
        "tickets",
        "update",
        "3",
        "--status",
        "in_progress",
        "--tier",
        "2",
    ]);
    c.advance_clock(3600);
    c.cli_ok(&[
        "tickets",
        "update",
        "1",
        "--status",
        "resolved",
        "--note",
        "cleaned up /var/log",
    ]);
    c.advance_clock(7200);
    c.cli_ok(&["tickets", "update", "3", "--status", "closed"]);

    let s = c.cli_json(&["reports", "summary", "--since", "7d"]);
    assert_eq!(s["window"], "7d");
    assert_eq!(
        (s["opened"].as_u64(), s["resolved"].as_u64()),
        (Some(3), Some(2))
    );
    // First responses: #1 after 10 min, #2 and #3 after 30 min.
    let first = &s["first_response"];
    assert_eq!(first["all"]["count"], 3);
    assert!(about(&first["all"]["median_secs"], 1800), "{first:#}");
    assert!(about(&first["all"]["p90_secs"], 1800), "{first:#}");
    let high = &first["by_priority"][2];
    assert_eq!(
        (high["priority"].as_str(), high["count"].as_u64()),
        (Some("high"), Some(2))
    );
    assert!(about(&high["median_secs"], 600), "{high}");
    assert!(about(&high["p90_secs"], 1800), "{high}");
    let normal = &first["by_priority"][1];
    assert_eq!(normal["count"], 1);
    assert!(about(&normal["median_secs"], 1800), "{normal}");
    assert_eq!(
        first["by_priority"][0]["median_secs"],
        serde_json::Value::Null
    );
    let tier2 = &first["by_tier"][1];
    assert_eq!(
        (tier2["tier"].as_u64(), tier2["count"].as_u64()),
        (Some(2), Some(1))
    );
    // Resolutions: #1 after 1 h 30 min, #3 after 3 h 30 min.
    let resolution = &s["resolution"]["all"];
    assert_eq!(resolution["count"], 2);
    assert!(about(&resolution["median_secs"], 5400), "{resolution}");
    assert!(about(&resolution["p90_secs"], 12_600), "{resolution}");
    assert!(
        about(&s["resolution"]["by_tier"][1]["median_secs"], 12_600),
        "{s:#}"
    );
    let top: Vec<&str> = s["top_findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    assert_eq!(top, ["disk.full:/", "dns.fail"]);
    assert_eq!(s["actions"]["run"], 0);
    assert_eq!(s["actions"]["success_ratio"], serde_json::Value::Null);
    // Every first response came within its target and both resolutions within theirs; #2's
    // resolution is not due yet.
    assert_eq!(
        (&s["sla"]["all"]["met"], &s["sla"]["all"]["missed"]),
        (&serde_json::json!(5), &serde_json::json!(0)),
        "{s:#}"
    );
    assert_eq!(s["sla"]["all"]["ratio"], 1.0);
    assert_eq!(s["satisfaction"]["answered"], 0);

    let text = c.cli_ok(&["reports", "summary"]);
    for expected in [
        "Help desk, last 7d",
        "Tickets:        3 opened, 2 resolved",
        "SLA compliance: 100% on time (5 met, 0 missed)",
        "Actions:        none ended",
        "Did it fix it?  no answers",
        "disk.full:/",
        "priority high",
        "tier 2",
        "1 h 30 min",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }

    // A one-hour window sees only the last resolution.
    let hour = c.cli_json(&["reports", "summary", "--since", "60m"]);
    assert_eq!(
        (hour["opened"].as_u64(), hour["resolved"].as_u64()),
        (Some(0), Some(1))
    );
    assert!(
        about(&hour["resolution"]["all"]["median_secs"], 12_600),
        "{hour:#}"
    );

    // The same figures for Prometheus (a 7-day window).
    let http = c.http();
    let metrics = http.get(paths::METRICS, Some(&c.admin_token));
    assert_eq!(metrics.status, 200);
    let text = &metrics.body;
    assert_eq!(
        metric(text, "lifeline_tickets_opened", &["window=\"7d\""]),
        "3"
    );
    assert_eq!(
        metric(text, "lifeline_tickets_resolved", &["window=\"7d\""]),
        "2"
    );
    let median_high: f64 = metric(
        text,
        "lifeline_first_response_seconds",
        &["priority=\"high\"", "tier=\"all\"", "quantile=\"0.5\""],
    )
    .parse()
    .unwrap();
    assert!((600.0..630.0).contains(&median_high), "{median_high}");
    assert_eq!(
        metric(text, "lifeline_sla_compliance_ratio", &["target=\"all\""]),
        "1"
    );
    assert_eq!(
        metric(text, "lifeline_actions_run", &["window=\"7d\""]),
        "0"
    );

    // A week and a day later the window is empty; the gauges follow at the next scrape.
    c.advance_clock(8 * 86_400);
    let later = c.cli_json(&["reports", "summary"]);
    assert_eq!(
        (later["opened"].as_u64(), later["resolved"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(later["top_findings"], serde_json::json!([]));
    let metrics = http.get(paths::METRICS, Some(&c.admin_token));
    assert_eq!(
        metric(&metrics.body, "lifeline_tickets_opened", &["window=\"7d\""]),
        "0"
    );
    assert!(
        c.cli_json(&["reports", "recurring"])["problems"]
            .as_array()
            .unwrap()
            .len()
            == 2,
        "30 days still hold both keys"
    );
}

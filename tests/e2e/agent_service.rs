//! `lifeline-agent run`, `spool` and `status`: reports are never lost and delivered once.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::binaries;
use crate::harness::{
    AgentService as Service, TestAgent, TestCollector, assert_success, eventually,
};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ticket_count(collector: &TestCollector) -> usize {
    collector
        .cli_json(&["tickets", "list"])
        .as_array()
        .unwrap()
        .len()
}

fn spool_files(agent: &TestAgent) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(agent.dir().join("spool"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|x| x == "json"));
    files
}

fn reference_of(report_output: &str) -> String {
    report_output
        .split_whitespace()
        .find(|w| w.starts_with("LL-"))
        .map(|w| w.trim_end_matches([':', '.', ',']).to_owned())
        .unwrap_or_else(|| panic!("no reference in {report_output:?}"))
}

#[test]
fn the_service_delivers_a_queued_report_once_when_the_collector_returns() {
    let mut collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    collector.stop();

    let out = agent.run(&["report", "Printer on floor 2 is offline"]);
    assert_success(&out, "report while the collector is down");
    let text = stdout(&out);
    assert!(
        text.contains("queued, will be delivered automatically"),
        "{text}"
    );
    let reference = reference_of(&text);
    let listed = agent.run(&["spool", "list"]);
    assert!(stdout(&listed).contains(&reference), "{}", stdout(&listed));

    let _service = Service::start(&agent);
    let status = eventually(
        "service reported as running",
        Duration::from_secs(10),
        || {
            let out = agent.run(&["status", "--json"]);
            let s: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            (s["service_running"] == true).then_some(s)
        },
    );
    assert_eq!(status["enrolled"], true);
    assert_eq!(status["queued_reports"], 1);

    let collector = collector.restart();
    eventually("the queued report arrives", Duration::from_secs(60), || {
        (ticket_count(&collector) == 1).then_some(())
    });
    // Give the service several more rounds: it must not send it again.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ticket_count(&collector), 1);
    let tickets = collector.cli_json(&["tickets", "list"]);
    assert_eq!(tickets[0]["description"], "Printer on floor 2 is offline");
    assert!(spool_files(&agent).is_empty());

    let listing = agent.run(&["spool", "list", "--json"]);
    let listing: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap();
    assert_eq!(listing["queued"].as_array().unwrap().len(), 0);
    let delivered = listing["delivered"].as_array().unwrap();
    assert_eq!(delivered[0]["reference"], reference.as_str());
    assert_eq!(delivered[0]["number"], tickets[0]["number"]);
}

#[test]
fn a_resend_after_a_lost_answer_does_not_create_a_second_ticket() {
    let mut collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    collector.stop();
    assert_success(&agent.run(&["report", "VPN drops every hour"]), "report");
    let files = spool_files(&agent);
    assert_eq!(files.len(), 1);
    // The collector will store the ticket; pretend its answer never reached the agent by putting
    // the spool file back afterwards, exactly as if the agent died before removing it.
    let saved = fs::read(&files[0]).unwrap();
    let collector = collector.restart();

    let first = agent.run(&["spool", "flush"]);
    assert_success(&first, "first flush");
    assert!(stdout(&first).contains("as #1"), "{}", stdout(&first));
    fs::write(&files[0], &saved).unwrap();

    let again = agent.run(&["spool", "flush"]);
    assert_success(&again, "second flush");
    assert!(stdout(&again).contains("as #1"), "{}", stdout(&again));
    assert_eq!(ticket_count(&collector), 1);
    assert!(spool_files(&agent).is_empty());
}

#[test]
fn a_garbage_spool_file_is_quarantined_and_nothing_else_is_lost() {
    let mut collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    collector.stop();
    assert_success(&agent.run(&["report", "Screen flickers"]), "report");
    let spool = agent.dir().join("spool");
    fs::write(
        spool.join("0123456789abcdef0123456789abcdef.json"),
        b"{\"truncated",
    )
    .unwrap();

    let listed = agent.run(&["spool", "list", "--json"]);
    assert_success(&listed, "spool list");
    assert!(
        stderr(&listed).contains("moved unreadable spool file"),
        "{}",
        stderr(&listed)
    );
    let listing: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listing["queued"].as_array().unwrap().len(), 1);
    assert!(
        spool
            .join("quarantine/0123456789abcdef0123456789abcdef.json")
            .exists()
    );

    let collector = collector.restart();
    assert_success(&agent.run(&["spool", "flush"]), "flush");
    assert_eq!(ticket_count(&collector), 1);
}

#[test]
fn killing_reports_mid_write_never_leaves_a_corrupt_spool() {
    let mut collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    collector.stop();
    for (i, delay_ms) in [30u64, 90, 150, 220, 300, 420].into_iter().enumerate() {
        let mut child = Command::new(binaries::agent())
            .args(["report", &format!("crash test {i}")])
            .env("LIFELINE_AGENT_DIR", agent.dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    let listed = agent.run(&["spool", "list", "--json"]);
    assert_success(&listed, "spool list after kills");
    assert!(
        !stderr(&listed).contains("unreadable"),
        "a killed write left a torn file: {}",
        stderr(&listed)
    );
    let tmp_left = fs::read_dir(agent.dir().join("spool"))
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".tmp"));
    assert!(
        !tmp_left,
        "leftover temp files are cleaned when the spool opens"
    );
    let listing: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let queued = listing["queued"].as_array().unwrap().len();
    let collector = collector.restart();
    assert_success(&agent.run(&["spool", "flush"]), "flush");
    assert_eq!(ticket_count(&collector), queued);
}

#[test]
fn a_second_service_for_the_same_agent_is_refused() {
    let collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    let _service = Service::start(&agent);
    eventually("service holds its lock", Duration::from_secs(10), || {
        let out = agent.run(&["status", "--json"]);
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (s["service_running"] == true).then_some(())
    });
    let second = agent.run(&["run"]);
    assert!(!second.status.success());
    assert!(
        stderr(&second).contains("already running"),
        "{}",
        stderr(&second)
    );
}

#[test]
fn run_without_enrollment_says_what_to_do() {
    let agent = TestAgent::unenrolled();
    let out = agent.run(&["run"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("enroll"), "{}", stderr(&out));
}

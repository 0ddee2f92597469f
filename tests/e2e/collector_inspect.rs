//! Live inspection and heartbeats, collector side: the agent's part is driven by hand over mTLS
//! with the agent's own certificate, the technician's part with the real CLI.

use std::time::Duration;

use lifeline_shared::v1::api::paths;
use lifeline_shared::v1::snapshot::Snapshot;
use lifeline_shared::v1::vitals::Vitals;
use lifeline_shared::v1::work::{Heartbeat, WorkResult};

use crate::harness::{AgentService, Http, TestAgent, TestCollector, assert_success, eventually};

fn result_path(id: u64) -> String {
    paths::AGENT_WORK_RESULT.replace("{id}", &id.to_string())
}

fn post_result(http: &Http, id: u64, result: &WorkResult) -> crate::harness::Answer {
    let body = zstd::encode_all(&serde_json::to_vec(result).unwrap()[..], 3).unwrap();
    http.request(
        "POST",
        &result_path(id),
        None,
        &[
            ("content-type", "application/json"),
            ("content-encoding", "zstd"),
        ],
        Some(&body),
    )
}

fn snapshot_result() -> WorkResult {
    WorkResult::Snapshot {
        snapshot: Box::new(Snapshot::empty(time::OffsetDateTime::now_utc(), "e2e-live")),
    }
}

/// Long-polls until one work item arrives; returns its id.
fn next_work(http: &Http) -> u64 {
    eventually("work for the agent", Duration::from_secs(30), || {
        let answer = http.get(&format!("{}?wait_secs=5", paths::AGENT_WORK), None);
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json()["items"][0]["id"].as_u64()
    })
}

#[test]
fn inspect_round_trip_is_attached_to_the_ticket() {
    let collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    let http = agent.http(&collector);
    assert_eq!(http.file_ticket("slow laptop", "inspect-1").status, 200);

    std::thread::scope(|scope| {
        let cli = scope.spawn(|| {
            collector.cli(&[
                "machines",
                "inspect",
                &agent.machine_id,
                "--ticket",
                "1",
                "--timeout",
                "60",
            ])
        });
        let id = next_work(&http);
        let answer = post_result(&http, id, &snapshot_result());
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.json()["state"], "done");
        // A second answer for the same work is refused.
        assert_eq!(post_result(&http, id, &snapshot_result()).status, 409);
        let out = cli.join().unwrap();
        assert_success(&out, "machines inspect");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("Findings:"), "{stdout}");
        assert!(stdout.contains("Attached to ticket #1"), "{stdout}");
        let findings_at = stdout.find("Findings:").unwrap();
        let snapshot_at = stdout.find("Snapshot:").unwrap();
        assert!(findings_at < snapshot_at, "findings come first: {stdout}");
    });

    let ticket = collector.cli_json(&["tickets", "show", "1"]);
    assert_eq!(ticket["snapshots"].as_array().unwrap().len(), 2, "{ticket}");
    let comments = ticket["comments"].to_string();
    assert!(comments.contains("live inspection"), "{comments}");
}

#[test]
fn heartbeats_make_the_machine_online_with_vitals() {
    let collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    let http = agent.http(&collector);
    let beat = Heartbeat {
        vitals: Vitals {
            cpu_percent: 12.0,
            memory_percent: 55.0,
            uptime_secs: 3600,
            agent_version: "9.9.9".into(),
            ..Vitals::default()
        },
    };
    let answer = http.send_json(
        "POST",
        paths::AGENT_HEARTBEAT,
        None,
        &serde_json::to_value(&beat).unwrap(),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.json()["server_time"].is_string());

    let mut bad = serde_json::to_value(&beat).unwrap();
    bad["vitals"]["memory_percent"] = serde_json::json!(250.0);
    let answer = http.send_json("POST", paths::AGENT_HEARTBEAT, None, &bad);
    assert_eq!(answer.status, 400);
    assert!(answer.error().contains("memory_percent"), "{}", answer.body);

    let shown = collector.cli_json(&["machines", "show", &agent.machine_id]);
    assert_eq!(shown["online"], true, "{shown}");
    assert_eq!(shown["last_vitals"]["agent_version"], "9.9.9", "{shown}");
    assert_eq!(shown["recent_vitals"].as_array().unwrap().len(), 1);
    let list = collector.cli_json(&["machines", "list"]);
    assert_eq!(list[0]["online"], true, "{list}");
    let table = collector.cli_ok(&["machines", "show", &agent.machine_id]);
    assert!(table.contains("online"), "{table}");
}

#[test]
fn a_result_for_another_machines_work_is_refused() {
    let collector = TestCollector::spawn();
    let owner = TestAgent::enrolled(&collector);
    let other = TestAgent::enrolled(&collector);
    let queued = collector.http().send_json(
        "POST",
        &paths::MACHINE_INSPECT.replace("{id}", &owner.machine_id),
        Some(&collector.admin_token),
        &serde_json::json!({}),
    );
    assert_eq!(queued.status, 202, "{}", queued.body);
    let id = queued.json()["id"].as_u64().unwrap();

    let other_http = other.http(&collector);
    // The other machine neither sees the work nor may answer it.
    let batch = other_http.get(paths::AGENT_WORK, None).json();
    assert_eq!(batch["items"].as_array().unwrap().len(), 0);
    let answer = post_result(&other_http, id, &snapshot_result());
    assert_eq!(answer.status, 404, "{}", answer.body);

    let status = collector.cli_json(&["work", "show", &id.to_string()]);
    assert_eq!(status["state"], "queued", "{status}");
}

#[test]
fn inspect_refuses_unknown_tickets_and_revoked_machines() {
    let collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    let out = collector.cli(&["machines", "inspect", &agent.machine_id, "--ticket", "99"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no ticket 99"));
    collector.cli_ok(&["machines", "revoke", &agent.machine_id]);
    let out = collector.cli(&["machines", "inspect", &agent.machine_id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("revoked"));
}

#[test]
fn unanswered_inspection_times_out_with_the_work_id() {
    let collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    let out = collector.cli(&["machines", "inspect", &agent.machine_id, "--timeout", "1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("still queued"), "{stderr}");
    assert!(stderr.contains("work show 1"), "{stderr}");
}

#[test]
fn real_agent_service_heartbeats_and_answers_an_inspection() {
    let collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    assert_eq!(
        agent
            .http(&collector)
            .file_ticket("printer", "svc-1")
            .status,
        200
    );
    let _service = AgentService::start(&agent);
    eventually("a heartbeat with vitals", Duration::from_secs(30), || {
        let shown = collector.cli_json(&["machines", "show", &agent.machine_id]);
        shown["last_vitals"].is_object().then_some(())
    });
    let out = collector.cli(&[
        "machines",
        "inspect",
        &agent.machine_id,
        "--ticket",
        "1",
        "--timeout",
        "90",
        "--json",
    ]);
    assert_success(&out, "machines inspect against lifeline-agent run");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["state"], "done", "{status}");
    assert!(status["snapshot"]["system"].is_object(), "{status}");
    let ticket = collector.cli_json(&["tickets", "show", "1"]);
    assert_eq!(ticket["snapshots"].as_array().unwrap().len(), 2);
}

#[test]
fn an_offline_machine_is_reported_and_its_inspection_waits_for_its_return() {
    let collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    // No service runs: after OFFLINE_AFTER_SECS without contact the machine is offline.
    collector.advance_clock(lifeline_shared::v1::work::OFFLINE_AFTER_SECS + 3);
    let listed = collector.cli_json(&["machines", "list"]);
    assert_eq!(listed[0]["online"], false, "{listed}");

    let out = collector.cli(&["machines", "inspect", &agent.machine_id, "--timeout", "1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is offline (last seen"), "{stderr}");
    assert!(stderr.contains("the request waits until"), "{stderr}");

    // The machine comes back: the queued inspection is delivered and answered.
    let _service = AgentService::start(&agent);
    eventually(
        "the waiting inspection is answered",
        Duration::from_secs(60),
        || {
            let status = collector.cli_json(&["work", "show", "1"]);
            (status["state"] == "done").then_some(())
        },
    );
    let listed = collector.cli_json(&["machines", "list"]);
    assert_eq!(listed[0]["online"], true, "{listed}");
}

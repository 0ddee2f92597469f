//! `lifeline-collector migrate --from sqlite://... --to postgres://...`: a site moved from its
//! SQLite file to PostgreSQL keeps its tickets, users, audit chain and enrolled agents; a second
//! migration into the same database is refused.

use std::process::{Command, Output};

use lifeline_collector::bootstrap::DATABASE_FILE;
use lifeline_collector::testing::PgCluster;

use crate::binaries;
use crate::harness::{TestAgent, TestCollector, assert_success};

const PASSWORD: &str = "mig-Secret-42";

fn migrate(from: &str, to: &str) -> Output {
    Command::new(binaries::collector())
        .args(["migrate", "--from", from, "--to", to])
        .output()
        .unwrap()
}

#[test]
fn a_site_moved_to_postgresql_keeps_its_tickets_audit_chain_and_agents() {
    let cluster = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let url = cluster
        .create_database("moved")
        .unwrap()
        .replace("postgres@", &format!("postgres:{PASSWORD}@"));
    let mut collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    collector.cli_json(&["users", "add", "tina", "--role", "technician"]);
    for i in 0..3 {
        let out = agent.run(&["report", &format!("Problem number {i}")]);
        assert_success(&out, "report");
    }
    collector.cli_ok(&["tickets", "comment", "2", "Looking into it"]);
    collector.cli_ok(&["tickets", "update", "3", "--status", "resolved"]);
    let tickets_before = collector.cli_json(&["tickets", "list"]);
    let verify_before = collector.cli_json(&["audit", "verify"]);
    collector.stop();

    let from = format!(
        "sqlite://{}",
        collector.data_dir().join(DATABASE_FILE).display()
    );
    let out = migrate(&from, &url);
    assert_success(&out, "migrate");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("copied tickets: 3 rows"), "{printed}");
    assert!(printed.contains("the audit log verifies"), "{printed}");
    assert!(!printed.contains(PASSWORD), "{printed}");

    // The same data directory (its CA files go into the database), now on PostgreSQL.
    let collector = collector.restart_with(&["--database", &url]);
    let tickets_after = collector.cli_json(&["tickets", "list"]);
    // The same tickets with the same due times; only the time left has moved on since.
    let settled = |mut list: serde_json::Value| {
        for ticket in list.as_array_mut().unwrap() {
            for target in ["first_response", "resolution"] {
                ticket["sla"][target]
                    .as_object_mut()
                    .unwrap()
                    .remove("left_secs");
            }
        }
        list
    };
    assert_eq!(settled(tickets_before), settled(tickets_after));
    let shown = collector.cli_json(&["tickets", "show", "2"]);
    assert_eq!(shown["comments"][0]["body"], "Looking into it");
    assert!(
        shown["snapshots"][0]["snapshot"]["system"].is_object(),
        "the snapshot came along"
    );
    let verify_after = collector.cli_json(&["audit", "verify"]);
    assert_eq!(verify_after["intact"], true);
    assert_eq!(verify_before["head"], verify_after["head"]);
    let users = collector.cli_json(&["users", "list"]);
    assert!(users.to_string().contains("tina"), "{users}");
    // The agent keeps its certificate and goes on numbering.
    let out = agent.run(&["report", "After the move"]);
    assert_success(&out, "report after the move");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "#4");

    let again = migrate(&from, &url);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already holds data"), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "{stderr}");
}

//! The audit log: security events are recorded, listed, exported and verified by the real
//! binaries; tampering with the database file through `sqlite3` (an UPDATE, a DELETE, swapped
//! sequence numbers, a cut-off end) is found by `audit verify` and named.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lifeline_collector::bootstrap::DATABASE_FILE;
use lifeline_shared::v1::audit::AuditEntry;
use serde_json::{Value, json};

use crate::harness::{TestAgent, TestCollector, assert_success};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a command that must fail, and returns its stderr.
fn fails(out: Output, what: &str) -> String {
    assert!(
        !out.status.success(),
        "{what} should have failed\nstdout:\n{}",
        stdout(&out)
    );
    stderr(&out)
}

fn entries(collector: &TestCollector, args: &[&str]) -> Vec<AuditEntry> {
    serde_json::from_value(collector.cli_json(args)).expect("audit entries")
}

fn find<'a>(
    entries: &'a [AuditEntry],
    what: &str,
    test: impl Fn(&AuditEntry) -> bool,
) -> &'a AuditEntry {
    entries
        .iter()
        .find(|e| test(e))
        .unwrap_or_else(|| panic!("no audit entry for {what} in {entries:#?}"))
}

/// The head hash `audit verify` printed: "audit chain intact: N entries; head H".
fn verified_head(out: &str) -> (u64, String) {
    let line = out
        .lines()
        .find(|l| l.starts_with("audit chain intact: "))
        .unwrap_or_else(|| panic!("no verdict in {out}"));
    let rest = line.trim_start_matches("audit chain intact: ");
    let (count, head) = rest.split_once(" entries; head ").expect("verdict format");
    (count.parse().unwrap(), head.trim().to_owned())
}

#[test]
fn security_events_are_audited_listed_exported_and_verified() {
    let collector = TestCollector::spawn();
    let tina = collector.cli_json(&["users", "add", "tina", "--role", "technician"]);
    let tina_token = tina["token"].as_str().unwrap().to_owned();
    collector.cli_ok(&["users", "add", "olga", "--role", "admin"]);
    // A technician on an admin route, then the revoked token, then a made-up one.
    fails(
        collector.cli_as(&tina_token, &["users", "list"]),
        "users list as technician",
    );
    collector.cli_ok(&["users", "revoke", "tina"]);
    fails(
        collector.cli_as(&tina_token, &["tickets", "list"]),
        "revoked token",
    );
    let bogus = "llu_notarealtokenatall0000000000000000";
    fails(
        collector.cli_as(bogus, &["tickets", "list"]),
        "unknown token",
    );
    let bad_enroll = "lle_notarealenrollmenttoken00000000000";
    let answer = collector
        .http()
        .send_json("POST", "/api/v1/enroll", Some(bad_enroll), &json!({}));
    assert_eq!(answer.status, 401);
    let agent = TestAgent::enrolled(&collector);
    let created = collector.cli_json(&["enrollment-tokens", "create", "--max-uses", "2"]);

    let all = entries(&collector, &["audit", "list", "--limit", "1000"]);
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=all.len() as u64).collect::<Vec<_>>()
    );
    assert_eq!(
        (all[0].actor.as_str(), all[0].action.as_str()),
        ("collector", "enrollment_token.create")
    );
    assert_eq!(
        (all[1].actor.as_str(), all[1].action.as_str()),
        ("collector", "user.add")
    );
    assert_eq!(all[1].subject.as_deref(), Some("user:admin"));
    let added = find(&all, "adding tina", |e| {
        e.action == "user.add" && e.subject.as_deref() == Some("user:tina")
    });
    assert_eq!(
        (added.actor.as_str(), &added.detail),
        ("admin", &json!({"role": "technician"}))
    );
    find(&all, "tina above her role", |e| {
        e.action == "auth.forbidden" && e.actor == "tina"
    });
    find(&all, "revoking tina", |e| {
        e.action == "user.revoke" && e.actor == "admin" && e.subject.as_deref() == Some("user:tina")
    });
    let revoked = find(&all, "the revoked token", |e| {
        e.action == "auth.failure" && e.detail["reason"] == "revoked token"
    });
    assert_eq!(revoked.actor, "anonymous");
    assert_eq!(revoked.subject.as_deref(), Some("user:tina"));
    assert_eq!(revoked.detail["route"], "GET /api/v1/tickets");
    assert_eq!(revoked.detail["credential"], "user token");
    find(&all, "the unknown token", |e| {
        e.action == "auth.failure" && e.detail["reason"] == "unknown token"
    });
    find(&all, "the bad enrollment token", |e| {
        e.action == "auth.failure" && e.detail["credential"] == "enrollment token"
    });
    let machine = format!("machine:{}", agent.machine_id);
    let enrolled = find(&all, "the enrollment", |e| e.action == "machine.enroll");
    assert_eq!(
        (&enrolled.actor, enrolled.subject.as_ref()),
        (&machine, Some(&machine))
    );
    find(&all, "the new enrollment token", |e| {
        e.action == "enrollment_token.create" && e.actor == "admin" && e.detail["max_uses"] == 2
    });

    // Filters.
    let anonymous = entries(&collector, &["audit", "list", "--actor", "anonymous"]);
    assert!(anonymous.len() >= 3 && anonymous.iter().all(|e| e.actor == "anonymous"));
    let by_admin = entries(&collector, &["audit", "list", "--actor", "admin"]);
    assert!(!by_admin.is_empty() && by_admin.iter().all(|e| e.actor == "admin"));
    assert!(
        entries(
            &collector,
            &["audit", "list", "--since", "2100-01-01T00:00:00Z"]
        )
        .is_empty()
    );
    assert_eq!(
        entries(
            &collector,
            &["audit", "list", "--since", "1h", "--limit", "1000"]
        ),
        all
    );
    let two = collector.cli(&["audit", "list", "--limit", "2"]);
    assert_success(&two, "audit list --limit 2");
    assert!(
        stderr(&two).contains("more entries follow entry 2"),
        "{}",
        stderr(&two)
    );
    assert_eq!(
        entries(&collector, &["audit", "list", "--limit", "2"])
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        [1, 2]
    );
    let table = stdout(&collector.cli(&["audit", "list"]));
    assert!(
        table.contains("action") && table.contains("user.revoke"),
        "{table}"
    );
    let err = fails(
        collector.cli(&["audit", "list", "--since", "yesterday"]),
        "bad --since",
    );
    assert!(err.contains("RFC 3339"), "{err}");

    // Export: one entry per line, the same as the list.
    let export = collector.cli_ok(&["audit", "export", "--format", "jsonl"]);
    let exported: Vec<AuditEntry> = export
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(exported, all);
    let err = fails(
        collector.cli(&["audit", "export", "--format", "csv"]),
        "csv export",
    );
    assert!(err.contains("csv") && err.contains("jsonl"), "{err}");
    // Secrets never reach the log.
    for secret in [
        tina_token.as_str(),
        bogus,
        bad_enroll,
        collector.admin_token.as_str(),
        collector.enrollment_token.as_str(),
        created["token"].as_str().unwrap(),
    ] {
        assert!(!export.contains(secret), "a token is in the audit log");
    }

    // Verification, client-side and server-side.
    let verified = collector.cli_ok(&["audit", "verify"]);
    let (count, head) = verified_head(&verified);
    assert_eq!(count, all.len() as u64);
    assert_eq!(head, all.last().unwrap().hash);
    assert!(verified.contains("--head"), "{verified}");
    collector.cli_ok(&["audit", "verify", "--head", &head]);
    let err = fails(
        collector.cli(&["audit", "verify", "--head", "xyz"]),
        "bad --head",
    );
    assert!(err.contains("not an audit hash"), "{err}");
    let report = collector
        .http()
        .get(
            &format!("/api/v1/audit/verify?head={head}"),
            Some(&collector.admin_token),
        )
        .json();
    assert_eq!(report["intact"], true);
    assert_eq!(report["head"], head.as_str());

    for (query, expected) in [
        ("limit=5000", "limit"),
        ("since=yesterday", "RFC 3339"),
        ("after_seq=x", "after_seq"),
        ("colour=red", "colour"),
    ] {
        let answer = collector.http().get(
            &format!("/api/v1/audit?{query}"),
            Some(&collector.admin_token),
        );
        assert_eq!(answer.status, 400, "{query}: {}", answer.body);
        assert!(
            answer.error().contains(expected),
            "{query}: {}",
            answer.error()
        );
    }
    let answer = collector.http().get(
        "/api/v1/audit/verify?head=nothex",
        Some(&collector.admin_token),
    );
    assert_eq!(answer.status, 400);
}

/// Runs SQL on the collector's database with the sqlite3 command-line tool.
fn sqlite(db: &Path, sql: &str) {
    let out = Command::new("sqlite3")
        .args(["-bail", "-cmd", ".timeout 10000"])
        .arg(db)
        .arg(sql)
        .output()
        .expect("run sqlite3 (the sqlite3 package; .ci/run installs it)");
    assert_success(&out, &format!("sqlite3 {sql}"));
}

struct Tampered {
    collector: TestCollector,
    db: PathBuf,
}

impl Tampered {
    /// Runs `sql`, checks `audit verify` fails with `expected` in its message, then restores
    /// the log.
    fn verify_fails_after(&self, sql: &str, expected: &str) -> String {
        sqlite(&self.db, sql);
        let err = fails(self.collector.cli(&["audit", "verify"]), sql);
        assert!(err.contains(expected), "after {sql}: {err}");
        assert!(err.lines().count() == 1, "one line: {err}");
        err
    }

    fn restore(&self) {
        sqlite(
            &self.db,
            "BEGIN; DELETE FROM audit_log; INSERT INTO audit_log SELECT * FROM audit_backup; COMMIT;",
        );
        self.collector.cli_ok(&["audit", "verify"]);
    }
}

#[test]
fn audit_verify_names_an_update_a_delete_and_a_reordering_done_with_sqlite3() {
    let collector = TestCollector::spawn();
    for name in ["ann", "ben", "cat", "dan", "eve"] {
        collector.cli_ok(&["users", "add", name, "--role", "technician"]);
    }
    collector.cli_ok(&["users", "revoke", "ann"]);
    collector.cli_ok(&["users", "revoke", "ben"]);
    // 1 enrollment token, 2 admin, 3..=7 users added, 8 and 9 revoked.
    let (count, head) = verified_head(&collector.cli_ok(&["audit", "verify"]));
    assert_eq!(count, 9);
    let db = collector.data_dir().join(DATABASE_FILE);
    sqlite(&db, "CREATE TABLE audit_backup AS SELECT * FROM audit_log;");
    let t = Tampered { collector, db };

    t.verify_fails_after(
        r#"UPDATE audit_log SET detail = '{"role":"admin"}' WHERE seq = 4;"#,
        "entry 4 was altered: its hash does not match its content",
    );
    t.restore();

    // A row that is not even JSON any more: still an altered entry, never a server error.
    t.verify_fails_after(
        "UPDATE audit_log SET detail = 'oops' WHERE seq = 5;",
        "entry 5 was altered: its stored detail cannot be read",
    );
    let listed = t.collector.cli_json(&["audit", "list"]);
    assert_eq!(listed[4]["detail"], "oops");
    t.restore();

    t.verify_fails_after(
        "DELETE FROM audit_log WHERE seq = 6;",
        "entry 6 is missing: entry 5 is followed by entry 7",
    );
    t.restore();

    let swap = "UPDATE audit_log SET seq = -1 WHERE seq = 3; \
                UPDATE audit_log SET seq = 3 WHERE seq = 7; \
                UPDATE audit_log SET seq = 7 WHERE seq = -1;";
    t.verify_fails_after(
        swap,
        "entry 3 is out of order: the entry stored as 3 belongs at position 7",
    );
    let report = t
        .collector
        .http()
        .get("/api/v1/audit/verify", Some(&t.collector.admin_token))
        .json();
    assert_eq!(report["intact"], false);
    assert_eq!(
        report["problem"],
        json!({"kind": "reordered", "seq": 3, "belongs_at": 7})
    );
    t.restore();

    // Cutting off the end leaves an intact, shorter chain: only the kept head shows it.
    sqlite(&t.db, "DELETE FROM audit_log WHERE seq = 9;");
    let (count, shorter) = verified_head(&t.collector.cli_ok(&["audit", "verify"]));
    assert_eq!(count, 8);
    assert_ne!(shorter, head);
    let err = fails(
        t.collector.cli(&["audit", "verify", "--head", &head]),
        "verify with the old head",
    );
    assert!(
        err.contains(&head) && err.contains("cut off the end"),
        "{err}"
    );
    t.restore();
    t.collector.cli_ok(&["audit", "verify", "--head", &head]);

    // An empty log with a kept head fails too.
    sqlite(&t.db, "DELETE FROM audit_log;");
    let err = fails(
        t.collector.cli(&["audit", "verify", "--head", &head]),
        "verify an empty log",
    );
    assert!(err.contains("the log is empty"), "{err}");
    t.restore();
}

#[test]
fn audit_routes_are_for_admins_only() {
    let collector = TestCollector::spawn();
    let tech = collector.cli_json(&["users", "add", "tom", "--role", "technician"]);
    let token = tech["token"].as_str().unwrap();
    for args in [
        &["audit", "list"][..],
        &["audit", "verify"],
        &["audit", "export"],
    ] {
        let err = fails(collector.cli_as(token, args), "audit as technician");
        assert!(
            err.contains("403") && err.contains("needs an admin"),
            "{err}"
        );
    }
    let value: Value = collector.cli_json(&["audit", "list", "--actor", "tom"]);
    assert_eq!(value[0]["action"], "auth.forbidden");
}

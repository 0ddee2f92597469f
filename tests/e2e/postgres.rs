//! `lifeline-collector serve --database postgres://...`: the real collector on a throwaway
//! PostgreSQL cluster, through the whole path a help desk uses, and across a restart; bad
//! database URLs refused with the flag named and the password never shown.

use std::process::Command;
use std::time::{Duration, Instant};

use lifeline_collector::bootstrap::DATABASE_FILE;
use lifeline_collector::testing::PgCluster;
use lifeline_shared::v1::api::paths;

use crate::binaries;
use crate::harness::{TestAgent, TestCollector, assert_success};

/// Trust authentication ignores it, so it can stand in for a real one that must never show.
const PASSWORD: &str = "pg-Secret-4711";

fn cluster_with_database() -> (PgCluster, String) {
    let cluster = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let url = cluster.create_database("lifeline").unwrap();
    let with_password = url.replace("postgres@", &format!("postgres:{PASSWORD}@"));
    (cluster, with_password)
}

/// `serve` on `database`, for a start that is expected to fail: its output once it exits.
fn serve_once(data_dir: &std::path::Path, database: &str) -> std::process::Output {
    Command::new(binaries::collector())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(["--database", database])
        .env_remove("LIFELINE_DATABASE")
        .output()
        .unwrap()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_collector_on_postgresql_serves_the_help_desk_and_keeps_everything_across_a_restart() {
    let (_cluster, url) = cluster_with_database();
    let collector = TestCollector::spawn_with(&["--database", &url]);
    assert!(
        !collector.data_dir().join(DATABASE_FILE).exists(),
        "the data lives in PostgreSQL, not in an SQLite file"
    );
    let agent = TestAgent::enrolled(&collector);

    let out = agent.run(&["report", "Printer shows error 0x61", "--urgency", "high"]);
    assert_success(&out, "lifeline-agent report");
    assert_eq!(stdout(&out).trim(), "#1");
    let list = collector.cli_json(&["tickets", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["machine_id"], agent.machine_id.as_str());
    let shown = collector.cli_ok(&["tickets", "show", "1"]);
    assert!(shown.contains("Printer shows error 0x61"), "{shown}");
    assert!(
        shown.contains("[system]"),
        "the snapshot is stored: {shown}"
    );
    collector.cli_ok(&["tickets", "comment", "1", "Replacing the toner"]);
    collector.cli_ok(&["tickets", "update", "1", "--status", "in_progress"]);
    let machines = collector.cli_json(&["machines", "list"]);
    assert_eq!(machines[0]["id"], agent.machine_id.as_str());
    let verified = collector.cli_ok(&["audit", "verify"]);
    assert!(verified.contains("--head"), "{verified}");

    // Started again on the same database (here through the configuration file).
    let config = collector.data_dir().with_file_name("collector.toml");
    std::fs::write(&config, format!("database = \"{url}\"\n")).unwrap();
    let collector = collector.restart_with(&["--config", config.to_str().unwrap()]);
    let ticket = collector.cli_json(&["tickets", "show", "1"]);
    assert_eq!(ticket["status"], "in_progress");
    assert_eq!(ticket["comments"][0]["body"], "Replacing the toner");
    let out = agent.run(&["report", "Still no printing"]);
    assert_success(&out, "report after restart");
    assert_eq!(stdout(&out).trim(), "#2", "numbers go on where they were");
    collector.cli_ok(&["audit", "verify"]);
    let audit = collector.cli_json(&["audit", "list"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["enrollment_token.create", "user.add", "machine.enroll"],
        "first start and the enrollment, once"
    );

    let printed = format!("{}{}", collector.stdout.lock().unwrap(), collector.log());
    assert!(
        printed.contains("postgres://postgres:***@127.0.0.1"),
        "the log names the database: {printed}"
    );
    assert!(
        !printed.contains(PASSWORD),
        "the password leaked: {printed}"
    );
}

#[test]
fn a_bad_or_unreachable_database_is_refused_with_the_password_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |database: &str| serve_once(&dir.path().join("data"), database);

    let out = serve(&format!("mysql://admin:{PASSWORD}@db/lifeline"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--database") && stderr.contains("unknown database scheme `mysql`"),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "{stderr}");
    assert!(!dir.path().join("data").exists(), "nothing is created");

    // Nothing listens on this port (bound and released just now).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = serve(&format!(
        "postgres://lifeline:{PASSWORD}@127.0.0.1:{port}/lifeline"
    ));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot open the database postgres://lifeline:***@127.0.0.1:{port}/lifeline"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn a_collector_reaches_postgresql_over_verified_tls_and_refuses_a_server_it_cannot_verify() {
    let cluster = PgCluster::start_with_tls().unwrap_or_else(|e| panic!("{e}"));
    let url = cluster.create_database("lifeline").unwrap();
    let root = cluster
        .tls_root_cert()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let serve = |database: &str| serve_once(&dir.path().join("data"), database);

    // The server takes TLS connections only: a plain one is turned away by the server.
    let out = serve(&format!("{url}?sslmode=disable"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open the database") && stderr.contains("no encryption"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("no pg_hba.conf entry").count(),
        1,
        "the cause is said once: {stderr}"
    );

    // A certificate from a CA the collector was not told to trust is refused.
    let other_ca = dir.path().join("other-ca.pem");
    let (_, pair) = lifeline_collector::pki::CertificateAuthority::generate(
        time::OffsetDateTime::now_utc(),
        &["127.0.0.1".to_owned()],
    )
    .unwrap();
    std::fs::write(&other_ca, pair.cert_pem).unwrap();
    let out = serve(&format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        other_ca.display()
    ));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open the database") && stderr.contains("certificate"),
        "{stderr}"
    );

    // With the right CA the whole help desk works over the encrypted connection.
    let verified = format!("{url}?sslmode=verify-full&sslrootcert={root}");
    let collector = TestCollector::spawn_with(&["--database", &verified]);
    let agent = TestAgent::enrolled(&collector);
    let out = agent.run(&["report", "VPN drops every hour"]);
    assert_success(&out, "lifeline-agent report");
    assert_eq!(stdout(&out).trim(), "#1");
    let ticket = collector.cli_json(&["tickets", "show", "1"]);
    assert_eq!(ticket["description"], "VPN drops every hour");
}

#[test]
fn healthz_says_unavailable_while_the_database_is_down_and_ok_once_it_is_back() {
    let (cluster, url) = cluster_with_database();
    let collector = TestCollector::spawn_with(&["--database", &url]);
    let http = collector.http();
    let health = http.get(paths::HEALTHZ, None);
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.body.trim(), r#"{"status":"ok"}"#);

    // The pool keeps trying to reconnect; the check gives up after its two seconds.
    cluster.stop().unwrap();
    let health = http.get(paths::HEALTHZ, None);
    assert_eq!(health.status, 503, "{}", health.body);
    assert_eq!(
        health.body.trim(),
        r#"{"status":"unavailable","reason":"the database did not answer in time"}"#
    );

    cluster.start_again().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health = http.get(paths::HEALTHZ, None);
        if health.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {} after the database came back: {}",
            health.status,
            health.body
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // And it serves again: the technician's CLI reads the database.
    collector.cli_ok(&["tickets", "list"]);
    assert!(
        collector
            .log()
            .contains("health check: the database did not answer in time"),
        "the outage is logged"
    );
}

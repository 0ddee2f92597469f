//! Several collectors on one PostgreSQL database (issue 8): two real `lifeline-collector serve`
//! processes with their own data directories and ports. Work queued on one reaches an agent
//! long-polling the other at once and runs once; ticket numbers stay sequential; audit appends
//! from both form one chain; a revocation on one is enforced by the other at once; two first
//! starts at the same moment create one admin.

use std::time::{Duration, Instant};

use lifeline_collector::testing::PgCluster;

use crate::actions::{CATALOG, write_and_sign};
use crate::harness::{AgentService, TestAgent, TestCollector, assert_success};

fn database() -> (PgCluster, String) {
    let cluster = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let url = cluster.create_database("lifeline").unwrap();
    (cluster, url)
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_action_asked_on_one_collector_runs_once_on_an_agent_polling_the_other() {
    let (_cluster, url) = database();
    // The CA is constrained to the first start's names: the shared name is given there too.
    let a = TestCollector::spawn_with(&["--database", &url, "--san", "lb.example"]);
    let b = TestCollector::join(&a, &["--database", &url, "--san", "lb.example"]);
    assert!(
        !b.stdout.lock().unwrap().contains("LIFELINE_TOKEN="),
        "the second instance creates no secrets"
    );
    assert_eq!(
        std::fs::read(a.ca_path()).unwrap(),
        std::fs::read(b.ca_path()).unwrap(),
        "one CA for both"
    );
    assert!(
        !b.data_dir()
            .join(lifeline_collector::bootstrap::CA_KEY_FILE)
            .exists(),
        "the CA key stays in the database"
    );

    let keys = tempfile::tempdir().unwrap();
    let keydir = keys.path().to_str().unwrap();
    a.cli_ok(&["catalog", "keygen", "--out", keydir]);
    write_and_sign(
        &a,
        keys.path(),
        "catalog.toml",
        CATALOG,
        "lifeline-catalog.key",
    );
    let public = keys.path().join("lifeline-catalog.pub");
    a.cli_ok(&["catalog", "trust", public.to_str().unwrap()]);
    let signed = keys.path().join("catalog.toml.signed");
    a.cli_ok(&["catalog", "publish", signed.to_str().unwrap()]);
    let tech = a.cli_json(&["users", "add", "tina", "--role", "technician"]);
    let tech = tech["token"].as_str().unwrap().to_owned();

    // Enrolled through A, served by B, waiting 30 s per long-poll: only a wake-up that
    // crosses from A to B delivers the run quickly.
    let (agent, _) = TestAgent::enrolled_with(&a, &["--catalog-key", public.to_str().unwrap()]);
    agent.use_server(&b.url);
    let service = AgentService::start_polling(&agent, 30);
    // The service's first long-poll is parked on B once B has seen it.
    crate::harness::eventually("the agent polling B", Duration::from_secs(20), || {
        let machines = b.cli_json(&["machines", "list"]);
        machines[0]["last_seen_at"].is_string().then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));

    let started = Instant::now();
    let out = a.cli_as(
        &tech,
        &[
            "run",
            "say",
            "--machine",
            &agent.machine_id,
            "--param",
            "text=hello across instances",
            "--wait",
        ],
    );
    let took = started.elapsed();
    assert_success(
        &out,
        &format!(
            "run say --wait\n--- A ---\n{}\n--- B ---\n{}\n--- agent ---\n{}",
            a.log(),
            b.log(),
            service.log()
        ),
    );
    assert!(
        stdout(&out).contains("hello across instances"),
        "{}",
        stdout(&out)
    );
    assert!(
        took < Duration::from_secs(10),
        "the run took {took:?}: the wake-up did not cross to B"
    );
    for instance in [&a, &b] {
        let run = instance.cli_json(&["runs", "show", "1"]);
        assert_eq!(run["state"], "succeeded", "{run}");
        assert_eq!(run["result"]["exit_code"], 0);
    }
    let audit = b.cli_json(&["audit", "list", "--limit", "1000"]);
    let dispatched = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "run.dispatch")
        .count();
    assert_eq!(dispatched, 1, "delivered once: {audit}");
    let runs = a.cli_json(&["runs", "list"]);
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");

    // Tickets filed alternately through A and B: 1..=N, no gap, no duplicate.
    let through = [agent.http(&a), agent.http(&b)];
    let numbers: Vec<u64> = (0..6)
        .map(|i| {
            let answer = through[i % 2].file_ticket(&format!("problem {i}"), &format!("key-{i}"));
            assert_eq!(answer.status, 200, "{}", answer.body);
            answer.json()["number"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);

    // Concurrent audit appends on both instances: one chain, the same on both.
    std::thread::scope(|scope| {
        for (n, instance) in [&a, &b, &a, &b].into_iter().enumerate() {
            scope.spawn(move || {
                for i in 0..4 {
                    instance.cli_ok(&[
                        "users",
                        "add",
                        &format!("u{n}x{i}"),
                        "--role",
                        "technician",
                    ]);
                }
            });
        }
    });
    let reports: Vec<serde_json::Value> = [&a, &b]
        .iter()
        .map(|c| c.cli_json(&["audit", "verify"]))
        .collect();
    for report in &reports {
        assert_eq!(report["intact"], true, "{report}");
    }
    assert_eq!(reports[0]["entries"], reports[1]["entries"]);
    assert_eq!(reports[0]["head"], reports[1]["head"]);
    let audit = a.cli_json(&["audit", "list", "--limit", "1000"]);
    let entries = audit.as_array().unwrap();
    assert_eq!(reports[0]["entries"].as_u64(), Some(entries.len() as u64));
    let added = entries.iter().filter(|e| e["action"] == "user.add").count();
    assert_eq!(
        added,
        1 + 1 + 16,
        "first admin, tina, and the 16 added at once"
    );

    // B has the agent's identity cached (it just served it); a revocation on A reaches B's
    // cache with the NOTIFY that follows its commit (milliseconds; allowed a second here).
    drop(service);
    assert_eq!(
        agent.http(&b).get("/api/v1/agent/tickets", None).status,
        200
    );
    a.cli_ok(&["machines", "revoke", &agent.machine_id]);
    crate::harness::eventually(
        "B refusing the revoked agent",
        Duration::from_secs(1),
        || {
            let status = agent.http(&b).get("/api/v1/agent/tickets", None).status;
            (status == 401 || status == 403).then_some(())
        },
    );
}

#[test]
fn two_instances_starting_together_create_one_admin_and_one_ca() {
    let (_cluster, url) = database();
    let (a, b, printed) = TestCollector::spawn_pair(&["--database", &url]);
    assert_eq!(printed, 1, "exactly one instance bootstraps");
    assert_eq!(
        std::fs::read(a.ca_path()).unwrap(),
        std::fs::read(b.ca_path()).unwrap()
    );
    for instance in [&a, &b] {
        let users = instance.cli_json(&["users", "list"]);
        let admins = users
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["role"] == "admin")
            .count();
        assert_eq!(admins, 1, "{users}");
        let report = instance.cli_json(&["audit", "verify"]);
        assert_eq!(report["intact"], true);
        assert_eq!(
            report["entries"], 2,
            "one token and one admin created: {report}"
        );
    }
    // An agent enrolled through either instance is trusted by the other.
    let agent = TestAgent::enrolled(&b);
    assert_eq!(agent.http(&a).file_ticket("hello", "k1").status, 200);
}

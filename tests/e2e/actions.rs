//! Remote actions with the real binaries: a signed catalog published by an admin, runs relayed
//! to a real `lifeline-agent run`, approvals, and what a compromised database can and cannot do
//! (tampering is done with the real `sqlite3` tool on the collector's database file).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use lifeline_collector::bootstrap::DATABASE_FILE;
use tempfile::TempDir;

use crate::harness::{AgentService, TestAgent, TestCollector, assert_success, eventually};

/// Actions made for tests: each exercises one rule.
/// `nap` runs a script of tests/e2e/fixtures by its absolute path.
pub(crate) const CATALOG: &str = concat!(
    r#"
version = 1

[[action]]
id = "say"
title = "Say something"
description = "Prints its text."
program = "/usr/bin/echo"
args = ["{text}"]
timeout_secs = 30
output_limit_bytes = 4096
risk = "low"
consent = false
os = ["linux"]
recheck = ["storage"]

[action.params.text]
type = "string"
pattern = "[A-Za-z0-9 ,.!]*"
max_len = 64

[[action]]
id = "nap"
title = "Start two sleepers and wait"
description = "Forks a child that sleeps, then sleeps itself: both outlive the timeout."
program = ""#,
    env!("CARGO_MANIFEST_DIR"),
    r#"/e2e/fixtures/two-sleepers"
timeout_secs = 2
output_limit_bytes = 4096
risk = "low"
consent = false
os = ["linux"]

[[action]]
id = "flood"
title = "Count"
description = "Prints numbers, far more than the output limit."
program = "/usr/bin/seq"
args = ["1", "{n}"]
timeout_secs = 30
output_limit_bytes = 1000
risk = "low"
consent = false
os = ["linux"]

[action.params.n]
type = "integer"
min = 1
max = 1000000

[[action]]
id = "power-cycle"
title = "Power cycle (pretend)"
description = "High risk: needs a second person."
program = "/usr/bin/true"
timeout_secs = 10
output_limit_bytes = 1024
risk = "high"
consent = false
os = ["linux"]

[[action]]
id = "linger"
title = "Sleep a while"
description = "Sleeps 20 seconds, well within its timeout."
program = "/usr/bin/sleep"
args = ["20"]
timeout_secs = 60
output_limit_bytes = 1024
risk = "low"
consent = false
os = ["linux"]

[[action]]
id = "ask-first"
title = "Needs the user's consent"
description = "Refused while nobody can be asked."
program = "/usr/bin/true"
timeout_secs = 10
output_limit_bytes = 1024
risk = "low"
consent = true
os = ["linux"]
"#
);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn stdout(out: &Output) -> String {
    text(&out.stdout)
}

fn stderr(out: &Output) -> String {
    text(&out.stderr)
}

fn assert_failure(out: &Output, what: &str, expected: &str) {
    let all = format!("{}{}", stdout(out), stderr(out));
    assert!(!out.status.success(), "{what} should have failed:\n{all}");
    assert!(
        all.contains(expected),
        "{what}: expected {expected:?} in:\n{all}"
    );
}

/// A collector with a published catalog, a technician, a second admin, and an enrolled agent
/// that pinned the catalog key and runs its service.
pub(crate) struct Site {
    pub(crate) collector: TestCollector,
    keys: TempDir,
    pub(crate) technician: String,
    pub(crate) second_admin: String,
    pub(crate) agent: TestAgent,
    pub(crate) service: AgentService,
}

impl Site {
    pub(crate) fn new() -> Site {
        let collector = TestCollector::spawn();
        let keys = tempfile::tempdir().unwrap();
        let keydir = keys.path().to_str().unwrap().to_owned();
        let printed = collector.cli_ok(&["catalog", "keygen", "--out", &keydir]);
        assert!(printed.contains("fingerprint"), "{printed}");
        write_and_sign(
            &collector,
            keys.path(),
            "catalog.toml",
            CATALOG,
            "lifeline-catalog.key",
        );
        let public = keys.path().join("lifeline-catalog.pub");
        collector.cli_ok(&["catalog", "trust", public.to_str().unwrap()]);
        let signed = keys.path().join("catalog.toml.signed");
        let out = collector.cli_ok(&["catalog", "publish", signed.to_str().unwrap()]);
        assert!(
            out.contains("published catalog version 1 (6 actions"),
            "{out}"
        );

        let tech = collector.cli_json(&["users", "add", "tina", "--role", "technician"]);
        let boss = collector.cli_json(&["users", "add", "boss", "--role", "admin"]);
        let (agent, printed) =
            TestAgent::enrolled_with(&collector, &["--catalog-key", public.to_str().unwrap()]);
        assert!(printed.contains("Pinned catalog signing key"), "{printed}");
        let service = AgentService::start(&agent);
        Site {
            technician: tech["token"].as_str().unwrap().to_owned(),
            second_admin: boss["token"].as_str().unwrap().to_owned(),
            collector,
            keys,
            agent,
            service,
        }
    }

    fn tech(&self, args: &[&str]) -> Output {
        self.collector.cli_as(&self.technician, args)
    }

    fn run(&self, action: &str, extra: &[&str]) -> Output {
        let mut args = vec!["run", action, "--machine", &self.agent.machine_id];
        args.extend_from_slice(extra);
        self.tech(&args)
    }

    fn db(&self) -> PathBuf {
        self.collector.data_dir().join(DATABASE_FILE)
    }

    fn sql(&self, statement: &str) -> String {
        sqlite3(&self.db(), statement)
    }

    fn run_json(&self, id: u64) -> serde_json::Value {
        self.collector.cli_json(&["runs", "show", &id.to_string()])
    }

    fn audit_actions(&self) -> Vec<String> {
        self.sql("SELECT action FROM audit_log ORDER BY seq")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub(crate) fn context(&self) -> String {
        format!(
            "--- collector log ---\n{}\n--- agent service log ---\n{}",
            self.collector.log(),
            self.service.log()
        )
    }
}

/// Writes a catalog file into `dir` and signs it offline with `key`.
pub(crate) fn write_and_sign(
    collector: &TestCollector,
    dir: &Path,
    name: &str,
    catalog: &str,
    key: &str,
) {
    let file = dir.join(name);
    std::fs::write(&file, catalog).unwrap();
    let key = dir.join(key);
    let out = collector.cli_ok(&[
        "catalog",
        "sign",
        file.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(out.contains(".signed"), "{out}");
}

fn sqlite3(db: &Path, statement: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(statement)
        .output()
        .expect("the sqlite3 command-line tool is needed (Debian package sqlite3)");
    assert_success(&out, &format!("sqlite3 {statement}"));
    stdout(&out)
}

#[test]
fn a_run_shows_every_step_its_output_and_the_after_action_check_on_the_ticket() {
    let site = Site::new();
    assert_eq!(
        site.agent
            .http(&site.collector)
            .file_ticket("disk is full", "act-1")
            .status,
        200
    );
    let list = site.tech(&["actions", "list"]);
    assert_success(&list, "actions list");
    for id in ["say", "nap", "flood", "power-cycle", "ask-first"] {
        assert!(stdout(&list).contains(id), "{}", stdout(&list));
    }

    let out = site.run(
        "say",
        &[
            "--param",
            "text=hello from the help desk",
            "--ticket",
            "1",
            "--reason",
            "e2e",
            "--wait",
        ],
    );
    assert_success(&out, &format!("run say --wait\n{}", site.context()));
    let page = stdout(&out);
    for expected in [
        "Run 1: say (Say something)",
        "parameters: text=hello from the help desk",
        "requested by tina",
        "requested 20",
        "→ delivered +",
        "→ running +",
        "→ exit code 0 after",
        "--- output ---\nhello from the help desk\n",
        "After-action check (storage):",
    ] {
        assert!(
            page.contains(expected),
            "{expected:?} missing from:\n{page}"
        );
    }

    let run = site.run_json(1);
    assert_eq!(run["state"], "succeeded");
    assert_eq!(run["result"]["exit_code"], 0);
    assert_eq!(run["recheck"]["sections"], serde_json::json!(["storage"]));
    assert!(run["delivered_at"].is_string() && run["started_at"].is_string());

    let ticket = site.collector.cli_ok(&["tickets", "show", "1"]);
    assert!(
        ticket.contains("Action say (run 1)") && ticket.contains("requested by tina"),
        "{ticket}"
    );
    assert!(ticket.contains("exit code 0"), "{ticket}");
    assert!(ticket.contains("After-action check (storage)"), "{ticket}");

    let audit = site.audit_actions();
    for action in [
        "catalog.trust",
        "catalog.publish",
        "run.request",
        "run.dispatch",
        "run.result",
    ] {
        assert!(
            audit.iter().any(|a| a == action),
            "{action} not audited: {audit:?}"
        );
    }
    let verified = site.collector.cli_ok(&["audit", "verify"]);
    assert!(verified.contains("audit chain intact"), "{verified}");
}

#[test]
fn actions_altered_or_unsigned_in_the_database_are_refused_by_the_agent_and_audited() {
    let site = Site::new();
    // An attacker with the database turns `say` into something else.
    site.sql(
        "UPDATE catalog_actions SET signed = replace(signed, '/usr/bin/echo', '/usr/bin/id') \
         WHERE action_id = 'say'",
    );
    let out = site.run("say", &["--param", "text=hi", "--wait"]);
    assert_failure(&out, "altered action", "run 1 refused");
    assert_failure(&out, "altered action", "signature does not match");
    assert!(
        !stdout(&out).contains("uid="),
        "nothing may run: {}",
        stdout(&out)
    );

    // ... or inserts an action nobody signed.
    let zeros = format!("{}==", "A".repeat(86));
    site.sql(&format!(
        "INSERT INTO catalog_actions (action_id, catalog_version, signed) \
         SELECT 'evil', catalog_version, \
            json_set(signed, '$.action.id', 'evil', '$.signature', '{zeros}') \
         FROM catalog_actions WHERE action_id = 'flood'"
    ));
    let evil = site.tech(&["actions", "list"]);
    assert!(
        stdout(&evil).contains("evil"),
        "the collector relays it: {}",
        stdout(&evil)
    );
    let out = site.run("evil", &["--param", "n=1", "--wait"]);
    assert_failure(&out, "unsigned action", "run 2 refused");
    assert_failure(&out, "unsigned action", "signature does not match");

    // A row that is not even a signed action: the others stay usable, and it cannot run.
    site.sql(
        "INSERT INTO catalog_actions (action_id, catalog_version, signed) \
         SELECT 'garbage', catalog_version, '{\"program\": \"/bin/sh\"}' \
         FROM catalog_actions WHERE action_id = 'flood'",
    );
    let list = site.tech(&["actions", "list"]);
    assert_success(&list, "actions list with a garbage row");
    assert!(stdout(&list).contains("flood") && !stdout(&list).contains("garbage"));
    let out = site.run("garbage", &[]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert_eq!(
        site.collector
            .cli_json(&["runs", "list"])
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let audit = site.audit_actions();
    assert_eq!(
        audit.iter().filter(|a| *a == "run.refused").count(),
        2,
        "{audit:?}"
    );
    let refusals =
        site.sql("SELECT detail FROM audit_log WHERE action = 'run.refused' ORDER BY seq");
    assert!(refusals.contains("signature does not match"), "{refusals}");
}

#[test]
fn a_replayed_run_id_is_refused() {
    let mut site = Site::new();
    assert_success(
        &site.run("say", &["--param", "text=once", "--wait"]),
        "first run",
    );
    let first_id = site.run_json(1)["run_id"].as_str().unwrap().to_owned();

    // With the agent away, queue a second run and give it the first run's id in the database.
    site.service.stop();
    let queued = site.run("say", &["--param", "text=twice"]);
    assert_success(&queued, "second run queued");
    site.sql(&format!(
        "UPDATE runs SET run_id = '{}' WHERE id = 1; UPDATE runs SET run_id = '{first_id}' WHERE id = 2",
        "f".repeat(32)
    ));
    site.service = AgentService::start(&site.agent);
    let out = site.collector.cli_as(
        &site.technician,
        &["runs", "show", "2", "--wait", "--timeout", "60"],
    );
    assert_failure(
        &out,
        "replayed run",
        "was already received: refusing to run it again",
    );
}

#[test]
fn injection_attempts_in_parameters_are_rejected_before_anything_is_queued() {
    let site = Site::new();
    let long = "a".repeat(65);
    for (param, why) in [
        ("text=; rm -rf /", "semicolon"),
        ("text=$(id)", "command substitution"),
        ("text=a\nb", "newline"),
        ("text=../../etc/passwd", "path traversal"),
        (&format!("text={long}"), "too long"),
        ("program=/bin/sh", "unknown parameter"),
    ] {
        let out = site.run("say", &["--param", param]);
        assert_failure(&out, why, "nothing was queued");
    }
    for (param, why) in [
        ("n=1; reboot", "not an integer"),
        ("n=0", "below the range"),
        ("n=99999999", "above"),
    ] {
        let out = site.run("flood", &["--param", param]);
        assert_failure(&out, why, "nothing was queued");
    }
    let runs = site.collector.cli_json(&["runs", "list"]);
    assert_eq!(runs, serde_json::json!([]), "nothing may be queued");
}

fn sleepers() -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-af", "sleep 351[78]"])
        .output()
        .unwrap();
    stdout(&out).lines().map(str::to_owned).collect()
}

#[test]
fn a_program_past_its_timeout_is_killed_with_its_children() {
    let site = Site::new();
    let out = site.run("nap", &["--wait"]);
    assert_failure(
        &out,
        "nap",
        "it ran past the action's timeout and was killed",
    );
    assert!(
        stdout(&out).contains("timed out, killed after"),
        "{}",
        stdout(&out)
    );
    eventually("the sleepers to be gone", Duration::from_secs(10), || {
        sleepers().is_empty().then_some(())
    });
    assert_eq!(site.run_json(1)["result"]["timed_out"], true);
}

#[test]
fn output_over_the_limit_is_truncated_and_marked() {
    let site = Site::new();
    let out = site.run("flood", &["--param", "n=100000", "--wait"]);
    assert_success(&out, "flood");
    assert!(
        stdout(&out).contains("[output truncated at the action's limit]"),
        "{}",
        stdout(&out)
    );
    let run = site.run_json(1);
    assert_eq!(run["result"]["stdout_truncated"], true);
    assert!(run["result"]["stdout"].as_str().unwrap().len() <= 1000);
    assert!(
        run["result"]["stdout"]
            .as_str()
            .unwrap()
            .starts_with("1\n2\n3\n")
    );
}

#[test]
fn high_risk_runs_wait_for_an_admin_who_did_not_ask() {
    let site = Site::new();
    // A technician asks; the run waits.
    let asked = site.run("power-cycle", &["--reason", "frozen screen"]);
    assert_success(&asked, "request");
    assert!(
        stdout(&asked).contains("approval: pending"),
        "{}",
        stdout(&asked)
    );
    let pending = site.collector.cli_ok(&["requests", "list"]);
    assert!(
        pending.contains("power-cycle") && pending.contains("frozen screen"),
        "{pending}"
    );

    // Technicians cannot approve; nobody approves their own request.
    assert_failure(
        &site.tech(&["approve", "1"]),
        "technician approves",
        "needs an admin",
    );
    let own = site.collector.cli(&[
        "run",
        "power-cycle",
        "--machine",
        &site.agent.machine_id,
        "--reason",
        "mine",
    ]);
    assert_success(&own, "admin's own request");
    assert_failure(
        &site.collector.cli(&["approve", "2"]),
        "self-approval",
        "nobody approves their own request",
    );

    // Another admin approves the technician's request: it runs.
    let boss = |args: &[&str]| site.collector.cli_as(&site.second_admin, args);
    assert_success(&boss(&["approve", "1", "--reason", "ok"]), "approve");
    let done = site.tech(&["runs", "show", "1", "--wait", "--timeout", "60"]);
    assert_success(&done, &format!("approved run\n{}", site.context()));
    assert!(
        stdout(&done).contains("approval: approved by boss"),
        "{}",
        stdout(&done)
    );

    // A denial needs a reason, and a denied request never reaches the machine.
    let no_reason = boss(&["deny", "2"]);
    assert!(!no_reason.status.success());
    assert_success(
        &boss(&["deny", "2", "--reason", "not during office hours"]),
        "deny",
    );
    let denied = site.run_json(2);
    assert_eq!(denied["state"], "denied");
    assert_eq!(denied["decision_reason"], "not during office hours");
    assert!(denied["delivered_at"].is_null());
    assert_failure(
        &boss(&["approve", "2"]),
        "approve after deny",
        "already denied",
    );

    let audit = site.audit_actions();
    for action in ["run.approve", "run.deny", "run.self_approval_refused"] {
        assert!(audit.iter().any(|a| a == action), "{action}: {audit:?}");
    }
}

#[test]
fn requests_and_runs_for_offline_machines_expire() {
    let mut site = Site::new();
    assert_success(&site.run("power-cycle", &["--reason", "later"]), "request");
    site.service.stop();
    assert_success(&site.run("say", &["--param", "text=late"]), "queued run");
    assert_eq!(site.run_json(2)["state"], "queued");

    // An hour later the queued run has expired; a day later, the request too.
    site.collector
        .advance_clock(lifeline_shared::v1::actions::RUN_TTL_SECS + 1);
    assert_eq!(site.run_json(2)["state"], "expired");
    assert_eq!(site.run_json(1)["state"], "awaiting_approval");
    site.collector
        .advance_clock(lifeline_shared::v1::actions::APPROVAL_TTL_SECS);
    assert_eq!(site.run_json(1)["state"], "expired");
    let pending = site.collector.cli_ok(&["requests", "list"]);
    assert!(pending.contains("No run requests are waiting"), "{pending}");
    assert_failure(
        &site.collector.cli_as(&site.second_admin, &["approve", "1"]),
        "approve an expired request",
        "has expired",
    );

    // The machine comes back: nothing expired reaches it.
    site.service = AgentService::start(&site.agent);
    eventually("a heartbeat", Duration::from_secs(30), || {
        site.collector.cli_json(&["machines", "list"])[0]["online"]
            .as_bool()
            .filter(|online| *online)
    });
    assert_eq!(site.run_json(2)["state"], "expired");
    assert!(site.run_json(2)["delivered_at"].is_null());
}

#[test]
fn a_newer_catalog_expires_what_still_waits_and_agents_refuse_older_actions() {
    let mut site = Site::new();
    let dir = site.keys.path().to_owned();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    // A request waiting for an approval, and a run queued for a machine that is offline.
    assert_success(&site.run("power-cycle", &["--reason", "frozen"]), "request");
    site.service.stop();
    assert_success(&site.run("say", &["--param", "text=queued"]), "queued run");
    assert_eq!(site.run_json(2)["state"], "queued");

    let v2 = CATALOG.replacen("version = 1", "version = 2", 1);
    write_and_sign(
        &site.collector,
        &dir,
        "v2.toml",
        &v2,
        "lifeline-catalog.key",
    );
    let published = site
        .collector
        .cli_ok(&["catalog", "publish", &path("v2.toml.signed")]);
    assert!(
        published.contains("expired 2 waiting run request(s) or queued run(s)")
            && published.contains("1, 2"),
        "{published}"
    );

    // The technician sees why, wherever they look.
    for id in [1, 2] {
        let run = site.run_json(id);
        assert_eq!(run["state"], "expired", "{run}");
        assert_eq!(run["expired_reason"], "catalog version 1 replaced by 2");
        let page = stdout(&site.tech(&["runs", "show", &id.to_string()]));
        assert!(
            page.contains("expired: catalog version 1 replaced by 2"),
            "{page}"
        );
    }
    let list = stdout(&site.tech(&["runs", "list"]));
    assert!(list.contains("expired: catalog version 1"), "{list}");
    let requests = site.collector.cli_ok(&["requests", "list"]);
    assert!(
        requests.contains("No run requests are waiting")
            && requests.contains("Expired by a newer catalog")
            && requests.contains("frozen"),
        "{requests}"
    );
    assert_failure(
        &site.collector.cli_as(&site.second_admin, &["approve", "1"]),
        "approve a request of a replaced catalog",
        "has expired: catalog version 1 replaced by 2",
    );
    let expiries =
        site.sql("SELECT subject || ' ' || detail FROM audit_log WHERE action = 'run.expire'");
    assert_eq!(expiries.lines().count(), 2, "{expiries}");
    assert!(
        expiries.contains("run:1") && expiries.contains("\"replaced_by\":2"),
        "{expiries}"
    );

    // The machine comes back: nothing expired reaches it, and a run of version 2 does.
    site.service = AgentService::start(&site.agent);
    let out = site.run("say", &["--param", "text=fresh", "--wait"]);
    assert_success(&out, &format!("run of version 2\n{}", site.context()));
    assert!(site.run_json(2)["delivered_at"].is_null());

    // A compromised database hides version 2 and relays the older signed action: the agent,
    // which has seen version 2, refuses it, and the refusal is audited.
    site.sql(
        "DELETE FROM catalogs WHERE version = 2; \
         UPDATE catalog_actions SET catalog_version = 1, \
            signed = (SELECT signed_action FROM runs WHERE id = 2) WHERE action_id = 'say'",
    );
    let out = site.run("say", &["--param", "text=queued", "--wait"]);
    assert_failure(
        &out,
        "an action of an older catalog",
        "catalog version 1 is older than version 2, which is already in use",
    );
    let refusals = site.sql("SELECT detail FROM audit_log WHERE action = 'run.refused'");
    assert!(refusals.contains("refusing to roll back"), "{refusals}");
}

#[test]
fn output_too_large_for_one_request_is_cut_on_the_agent_and_marked() {
    let site = Site::new();
    let dir = site.keys.path().to_owned();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    // 16 MiB of random bytes, the most an action may capture: as JSON (invalid UTF-8 replaced,
    // control characters escaped) far more than one result body may carry.
    let dump = format!(
        "{}\n[[action]]\nid = \"dump\"\ntitle = \"Dump noise\"\n\
         description = \"Prints 16 MiB of random bytes.\"\nprogram = \"/usr/bin/head\"\n\
         args = [\"-c\", \"16777216\", \"/dev/urandom\"]\ntimeout_secs = 60\n\
         output_limit_bytes = 16777216\nrisk = \"low\"\nconsent = false\nos = [\"linux\"]\n",
        CATALOG.replacen("version = 1", "version = 2", 1)
    );
    write_and_sign(
        &site.collector,
        &dir,
        "v2.toml",
        &dump,
        "lifeline-catalog.key",
    );
    site.collector
        .cli_ok(&["catalog", "publish", &path("v2.toml.signed")]);

    let out = site.run("dump", &["--wait", "--timeout", "90"]);
    assert_success(&out, &format!("dump --wait\n{}", site.context()));
    let run = site.run_json(1);
    assert_eq!(run["state"], "succeeded", "{}", site.context());
    assert_eq!(run["result"]["stdout_truncated"], true);
    let stdout = run["result"]["stdout"].as_str().unwrap();
    let marker = stdout.lines().last().unwrap();
    assert!(
        marker.starts_with("[output cut: ") && marker.ends_with(" bytes not sent]"),
        "{marker}"
    );
    assert!(
        !site.service.log().contains("could not send the result"),
        "{}",
        site.service.log()
    );
}

#[test]
fn an_agent_runs_at_most_four_actions_at_once_and_says_why_it_refuses_a_fifth() {
    let site = Site::new();
    for _ in 0..5 {
        assert_success(&site.run("linger", &[]), "run linger");
    }
    // Each `linger` sleeps 20 s: the fifth arrives while four are running.
    let states = eventually("every run delivered", Duration::from_secs(30), || {
        let states: Vec<serde_json::Value> = (1..=5).map(|id| site.run_json(id)).collect();
        states
            .iter()
            .all(|s| s["state"] != "queued" && s["state"] != "delivered")
            .then_some(states)
    });
    let refused: Vec<&serde_json::Value> =
        states.iter().filter(|s| s["state"] == "refused").collect();
    assert_eq!(refused.len(), 1, "{states:?}\n{}", site.context());
    assert_eq!(
        states.iter().filter(|s| s["state"] == "running").count(),
        4,
        "{states:?}"
    );
    let id = refused[0]["id"].as_u64().unwrap().to_string();
    let page = stdout(&site.tech(&["runs", "show", &id]));
    assert!(
        page.contains("4 actions are already running on this machine (at most 4 at once)"),
        "{page}"
    );
}

#[test]
fn pinning_replaces_first_use_keys_and_removing_the_last_key_stops_every_action() {
    let site = Site::new();
    let c = &site.collector;
    let dir = site.keys.path();
    let collector_key = c.cli_json(&["catalog", "show"])["keys"][0]["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // An agent that trusted the collector's key on first use, then is enrolled again with the
    // admins' own key.
    let (agent, printed) = TestAgent::enrolled_with(c, &[]);
    assert!(printed.contains("on first use"), "{printed}");
    let own = dir.join("own");
    c.cli_ok(&["catalog", "keygen", "--out", own.to_str().unwrap()]);
    let own_pub = own.join("lifeline-catalog.pub");
    let out = agent.enroll_with(
        c,
        &c.enrollment_token,
        &c.ca_path(),
        &["--catalog-key", own_pub.to_str().unwrap()],
    );
    assert_success(&out, "enroll again with --catalog-key");
    let printed = stdout(&out);
    assert!(
        printed.contains(&format!(
            "No longer trusting catalog key {collector_key} (first use)"
        )),
        "{printed}"
    );
    let list = stdout(&agent.run(&["trust", "list"]));
    let own_key = list
        .lines()
        .find(|l| l.contains("pinned, since"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no pinned key in:\n{list}"))
        .to_owned();
    assert!(!list.contains(&collector_key), "{list}");
    let json: serde_json::Value =
        serde_json::from_slice(&agent.run(&["trust", "list", "--json"]).stdout).unwrap();
    assert_eq!(json["keys"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json["keys"][0]["origin"], "pinned");

    // The collector's key runs nothing here any more.
    let machine: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(agent.dir().join("agent.json")).unwrap())
            .unwrap();
    let machine = machine["machine_id"].as_str().unwrap().to_owned();
    let _service = AgentService::start(&agent);
    let run_say = || {
        site.tech(&[
            "run",
            "say",
            "--machine",
            &machine,
            "--param",
            "text=hi",
            "--wait",
            "--timeout",
            "60",
        ])
    };
    assert_failure(&run_say(), "the first-use key", "which is not trusted");

    // Removing: unknown fingerprints are clear errors; the last key leaves nothing trusted.
    let unknown = agent.run(&["trust", "remove", "0123456789abcdef"]);
    assert_failure(
        &unknown,
        "an unknown key",
        "no trusted catalog key has the fingerprint \"0123456789abcdef\"",
    );
    assert_failure(
        &agent.run(&["trust", "remove", "xyz"]),
        "not a fingerprint",
        "is not a fingerprint",
    );
    let removed = agent.run(&["trust", "remove", &own_key[..16]]);
    assert_success(&removed, "trust remove");
    assert!(
        stdout(&removed).contains(&format!("Removed catalog key {own_key} (pinned)"))
            && stdout(&removed).contains("this agent refuses every remote action"),
        "{}",
        stdout(&removed)
    );
    let list = stdout(&agent.run(&["trust", "list"]));
    assert!(list.contains("No catalog signing key is trusted"), "{list}");
    assert_failure(
        &run_say(),
        "no key at all",
        "no catalog signing key is trusted on this machine, so it refuses every action",
    );
}

#[test]
fn a_run_whose_agent_goes_silent_fails_after_its_timeout() {
    let mut site = Site::new();
    assert_success(&site.run("linger", &[]), "run linger");
    eventually("the run to start", Duration::from_secs(30), || {
        (site.run_json(1)["state"] == "running").then_some(())
    });
    site.service.stop();
    assert_eq!(site.run_json(1)["state"], "running");
    // Its 60 s timeout plus the grace for reporting pass without a word from the agent.
    site.collector.advance_clock(60 + 600 + 1);
    let out = site.tech(&["runs", "show", "1", "--wait", "--timeout", "5"]);
    assert_failure(
        &out,
        "silent agent",
        "the agent did not report how the run ended",
    );
    assert_eq!(site.run_json(1)["state"], "failed");
}

#[test]
fn the_user_at_the_machine_allows_or_denies_a_consent_action() {
    let x = crate::desktop::Xvfb::start();
    let mut site = Site::new();
    site.service.stop();
    site.service = AgentService::start_with_env(&site.agent, &[("DISPLAY", &x.display)]);
    let title = "Lifeline - Allow a remote action?";
    for (run, keys, allowed) in [
        (1, ["Tab", "Return"].as_slice(), true),
        (2, &["Return"], false),
    ] {
        assert_success(
            &site.run("ask-first", &["--reason", "printing hangs"]),
            "consent run queued",
        );
        let window = x.wait_for_window(title, Duration::from_secs(60));
        assert_eq!(site.run_json(run)["state"], "awaiting_consent");
        x.focus(&window);
        x.keys(keys);
        let out = site.tech(&[
            "runs",
            "show",
            &run.to_string(),
            "--wait",
            "--timeout",
            "60",
        ]);
        if allowed {
            assert_success(&out, &format!("allowed consent run\n{}", site.context()));
        } else {
            assert_failure(
                &out,
                "denied consent run",
                "the user at the machine denied the action",
            );
        }
    }
    let refusals = site.sql("SELECT detail FROM audit_log WHERE action = 'run.refused'");
    assert!(refusals.contains("denied the action"), "{refusals}");
}

#[test]
fn consent_actions_are_refused_while_nobody_can_be_asked() {
    let site = Site::new();
    let out = site.run("ask-first", &["--wait"]);
    assert_failure(&out, "consent", "no user available to consent");
}

#[test]
fn the_collector_publishes_only_trusted_catalogs_moving_forward() {
    let site = Site::new();
    let dir = site.keys.path();
    let c = &site.collector;
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();

    // Republishing the same signed file changes nothing.
    let again = c.cli_ok(&["catalog", "publish", &path("catalog.toml.signed")]);
    assert!(
        again.contains("already published; nothing changed"),
        "{again}"
    );

    // A key the collector does not trust cannot publish.
    let rogue = dir.join("rogue");
    c.cli_ok(&["catalog", "keygen", "--out", rogue.to_str().unwrap()]);
    let v2 = CATALOG.replacen("version = 1", "version = 2", 1);
    write_and_sign(c, dir, "v2.toml", &v2, "rogue/lifeline-catalog.key");
    assert_failure(
        &c.cli(&["catalog", "publish", &path("v2.toml.signed")]),
        "untrusted key",
        "which is not trusted",
    );

    // Same version, other content: refused. A technician cannot publish at all.
    let other = CATALOG.replacen("Prints its text.", "Prints its text, loudly.", 1);
    write_and_sign(c, dir, "other.toml", &other, "lifeline-catalog.key");
    assert_failure(
        &c.cli(&["catalog", "publish", &path("other.toml.signed")]),
        "same version",
        "already published with different content",
    );
    write_and_sign(c, dir, "v2.toml", &v2, "lifeline-catalog.key");
    assert_failure(
        &site.tech(&["catalog", "publish", &path("v2.toml.signed")]),
        "technician",
        "needs an admin",
    );
    let published = c.cli_ok(&["catalog", "publish", &path("v2.toml.signed")]);
    assert!(published.contains("version 2"), "{published}");
    // No rollback.
    assert_failure(
        &c.cli(&["catalog", "publish", &path("catalog.toml.signed")]),
        "rollback",
        "older than the published version 2",
    );

    // A broken file gets a clear error naming it.
    std::fs::write(dir.join("broken.signed"), "{ not json").unwrap();
    assert_failure(
        &c.cli(&["catalog", "publish", &path("broken.signed")]),
        "broken file",
        "broken.signed",
    );
    std::fs::write(
        dir.join("broken.toml"),
        "version = 3\n[[action]]\nid = \"x\"\n",
    )
    .unwrap();
    assert_failure(
        &c.cli(&[
            "catalog",
            "sign",
            &path("broken.toml"),
            "--key",
            &path("lifeline-catalog.key"),
        ]),
        "broken catalog",
        "broken.toml",
    );
    let show = c.cli_ok(&["catalog", "show"]);
    assert!(show.contains("Catalog version 2"), "{show}");
}

#[test]
fn first_use_trust_and_key_rotation_by_endorsement() {
    let site = Site::new();
    let c = &site.collector;
    let dir = site.keys.path();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();

    // An agent enrolled without --catalog-key trusts the collector's key and says which.
    let (tofu, printed) = TestAgent::enrolled_with(c, &[]);
    let fingerprint = c.cli_json(&["catalog", "show"])["keys"][0]["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        printed.contains("on first use") && printed.contains(&fingerprint),
        "{printed}"
    );
    let _service = AgentService::start(&tofu);
    let out = c.cli_as(
        &site.technician,
        &[
            "run",
            "say",
            "--machine",
            &tofu.machine_id,
            "--param",
            "text=tofu",
            "--wait",
        ],
    );
    assert_success(&out, "run on the first-use agent");

    // Rotation: a new key, endorsed offline by the old one, trusted with the endorsement.
    let next = dir.join("next");
    c.cli_ok(&["catalog", "keygen", "--out", next.to_str().unwrap()]);
    c.cli_ok(&[
        "catalog",
        "endorse",
        &path("next/lifeline-catalog.pub"),
        "--key",
        &path("lifeline-catalog.key"),
    ]);
    c.cli_ok(&[
        "catalog",
        "trust",
        &path("next/lifeline-catalog.pub"),
        "--endorsement",
        &path("next/lifeline-catalog.pub.endorsement"),
    ]);
    let v2 = CATALOG.replacen("version = 1", "version = 2", 1);
    write_and_sign(c, dir, "v2.toml", &v2, "next/lifeline-catalog.key");
    c.cli_ok(&["catalog", "publish", &path("v2.toml.signed")]);
    // Both agents accept the new key through the endorsement relayed with the run.
    for machine in [&site.agent.machine_id, &tofu.machine_id] {
        let out = c.cli_as(
            &site.technician,
            &[
                "run",
                "say",
                "--machine",
                machine,
                "--param",
                "text=rotated",
                "--wait",
            ],
        );
        assert_success(&out, &format!("run after rotation\n{}", site.context()));
    }

    // A key trusted without an endorsement publishes, but pinned agents refuse its actions.
    let stray = dir.join("stray");
    c.cli_ok(&["catalog", "keygen", "--out", stray.to_str().unwrap()]);
    c.cli_ok(&["catalog", "trust", &path("stray/lifeline-catalog.pub")]);
    let v3 = CATALOG.replacen("version = 1", "version = 3", 1);
    write_and_sign(c, dir, "v3.toml", &v3, "stray/lifeline-catalog.key");
    c.cli_ok(&["catalog", "publish", &path("v3.toml.signed")]);
    let out = site.run("say", &["--param", "text=stray", "--wait"]);
    assert_failure(&out, "unendorsed key", "which is not trusted");
}

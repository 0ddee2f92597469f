//! Bad input gets a clear error (JSON `{"error"}` with a 4xx, or one line and a non-zero exit)
//! and harms nothing already stored.

use lifeline_shared::v1::api::{
    IDEMPOTENCY_KEY_HEADER, PNG_SIGNATURE, SCREENSHOT_MAX_BYTES, encode_screenshot, paths,
};

use std::time::Duration;

use crate::harness::{Answer, Http, TestAgent, TestCollector, assert_success, eventually};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_error(answer: &Answer, status: u16, needle: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    let message = answer.error();
    assert!(
        message.to_lowercase().contains(&needle.to_lowercase()),
        "error {message:?} does not mention {needle:?}"
    );
}

/// A collector with one enrolled agent and one stored ticket (#1).
fn with_one_ticket() -> (TestCollector, TestAgent, Http) {
    let collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    let http = agent.http(&collector);
    let first = http.file_ticket("Original ticket", "original");
    assert_eq!(first.status, 200, "{}", first.body);
    (collector, agent, http)
}

fn assert_ticket_one_intact(collector: &TestCollector) {
    let tickets = collector.cli_json(&["tickets", "list"]);
    let tickets = tickets.as_array().unwrap();
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    assert_eq!(tickets[0]["description"], "Original ticket");
}

fn post_ticket(http: &Http, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    http.request("POST", paths::AGENT_TICKETS, None, headers, Some(body))
}

const JSON: (&str, &str) = ("content-type", "application/json");
const ZSTD: (&str, &str) = ("content-encoding", "zstd");
const KEY: (&str, &str) = (IDEMPOTENCY_KEY_HEADER, "bad-input");

#[test]
fn malformed_and_mistyped_ticket_bodies_are_refused() {
    let (collector, _agent, http) = with_one_ticket();
    assert_error(
        &post_ticket(&http, &[JSON, KEY], b"{not json"),
        400,
        "invalid JSON",
    );
    let wrong_type = br#"{"description": 42, "snapshot": {}}"#;
    assert_error(
        &post_ticket(&http, &[JSON, KEY], wrong_type),
        400,
        "invalid type",
    );
    let unknown = br#"{"description": "x", "machine_id": "m-evil", "snapshot": {"schema_version": 1, "collected_at": "2026-01-01T00:00:00Z"}}"#;
    assert_error(
        &post_ticket(&http, &[JSON, KEY], unknown),
        400,
        "machine_id",
    );
    let bad_urgency = br#"{"description": "x", "urgency": "asap", "snapshot": {"schema_version": 1, "collected_at": "2026-01-01T00:00:00Z"}}"#;
    assert_error(
        &post_ticket(&http, &[JSON, KEY], bad_urgency),
        400,
        "urgency",
    );
    let empty = br#"{"description": "  ", "snapshot": {"schema_version": 1, "collected_at": "2026-01-01T00:00:00Z"}}"#;
    assert_error(
        &post_ticket(&http, &[JSON, KEY], empty),
        400,
        "must not be empty",
    );
    assert_error(
        &post_ticket(&http, &[JSON], b"{}"),
        400,
        IDEMPOTENCY_KEY_HEADER,
    );
    assert_error(
        &post_ticket(&http, &[JSON, (IDEMPOTENCY_KEY_HEADER, "bad key!")], b"{}"),
        400,
        IDEMPOTENCY_KEY_HEADER,
    );
    assert_error(
        &post_ticket(&http, &[JSON, ZSTD, KEY], b"not zstd"),
        400,
        "zstd",
    );
    assert_ticket_one_intact(&collector);
}

#[test]
fn wrong_content_type_or_encoding_is_refused_with_415() {
    let (collector, _agent, http) = with_one_ticket();
    assert_error(
        &post_ticket(&http, &[("content-type", "text/plain"), KEY], b"{}"),
        415,
        "application/json",
    );
    assert_error(&post_ticket(&http, &[KEY], b"{}"), 415, "Content-Type");
    assert_error(
        &post_ticket(&http, &[JSON, ("content-encoding", "gzip"), KEY], b"{}"),
        415,
        "gzip",
    );
    let admin = collector.admin_token.clone();
    let form = collector.http().request(
        "POST",
        paths::USERS,
        Some(&admin),
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(b"name=x&role=admin"),
    );
    assert_error(&form, 415, "application/json");
    assert_ticket_one_intact(&collector);
}

#[test]
fn oversize_bodies_and_zstd_bombs_get_413() {
    let (collector, _agent, http) = with_one_ticket();
    // Compressed size over the wire limit (8 MiB): incompressible bytes.
    let mut noise = vec![0u8; 9 * 1024 * 1024];
    let mut x: u32 = 0x1234_5678;
    for byte in &mut noise {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *byte = x as u8;
    }
    assert_error(&post_ticket(&http, &[JSON, KEY], &noise), 413, "exceeds");
    // A zstd bomb: a few KiB that inflate to 64 MiB, past the 32 MiB decoded limit.
    let zeros = vec![b' '; 64 * 1024 * 1024];
    let bomb = zstd::encode_all(&zeros[..], 19).unwrap();
    assert!(bomb.len() < 64 * 1024, "bomb is {} bytes", bomb.len());
    assert_error(
        &post_ticket(&http, &[JSON, ZSTD, KEY], &bomb),
        413,
        "decompressed",
    );
    // Small routes have small limits.
    let admin = collector.admin_token.clone();
    let big_comment = serde_json::json!({ "body": "x".repeat(200 * 1024) });
    let answer = collector.http().send_json(
        "POST",
        "/api/v1/tickets/1/comments",
        Some(&admin),
        &big_comment,
    );
    assert_error(&answer, 413, "exceeds");
    assert_ticket_one_intact(&collector);
    assert_eq!(
        collector.cli_json(&["tickets", "show", "1"])["comments"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn unknown_revoked_and_used_up_tokens_are_refused() {
    let collector = TestCollector::spawn();
    let http = collector.http();
    let unknown = format!("llu_{}", "0".repeat(64));
    assert_error(
        &http.get(paths::TICKETS, Some(&unknown)),
        401,
        "unknown or revoked token",
    );
    assert_error(
        &http.get(paths::TICKETS, Some("garbage")),
        401,
        "unknown or revoked token",
    );
    let malformed = http.request(
        "GET",
        paths::TICKETS,
        None,
        &[("authorization", "Basic abc")],
        None,
    );
    assert_error(&malformed, 401, "Bearer");
    assert_error(&http.get(paths::TICKETS, None), 401, "token");

    let out = collector.cli_as(&unknown, &["tickets", "list"]);
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(message.contains("unknown or revoked token"), "{message}");
    assert_eq!(message.trim().lines().count(), 1, "{message}");

    // An enrollment token that allows one enrollment.
    let created = collector.cli_json(&["enrollment-tokens", "create", "--max-uses", "1"]);
    let once = created["token"].as_str().unwrap().to_owned();
    let ca = collector.ca_path();
    let enroll = |agent: &TestAgent, token: &str| agent.enroll(&collector, token, &ca);
    let first = TestAgent::unenrolled();
    assert_success(&enroll(&first, &once), "first use of a one-use token");
    let second = TestAgent::unenrolled();
    let out = enroll(&second, &once);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("used up"), "{}", stderr(&out));
    assert!(!second.dir().join("agent.json").exists());

    let out = enroll(&TestAgent::unenrolled(), &format!("lle_{}", "1".repeat(64)));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown enrollment token"),
        "{}",
        stderr(&out)
    );
    // A technician token is not an enrollment token.
    let out = enroll(&TestAgent::unenrolled(), &collector.admin_token);
    assert!(
        stderr(&out).contains("unknown enrollment token"),
        "{}",
        stderr(&out)
    );

    // An enrollment token that expires after a second.
    let created = collector.cli_json(&["enrollment-tokens", "create", "--expires-in", "1"]);
    let short = created["token"].as_str().unwrap().to_owned();
    assert!(created["expires_at"].is_string());
    let message = eventually("the token to expire", Duration::from_secs(10), || {
        let out = enroll(&TestAgent::unenrolled(), &short);
        (!out.status.success()).then(|| stderr(&out))
    });
    assert!(message.contains("expired"), "{message}");

    let bad = collector.cli(&["enrollment-tokens", "create", "--max-uses", "0"]);
    assert!(stderr(&bad).contains("max_uses"), "{}", stderr(&bad));
}

#[test]
fn agent_pinned_to_another_ca_refuses_the_collector_in_one_line() {
    let collector = TestCollector::spawn();
    let other = TestCollector::spawn();
    let agent = TestAgent::unenrolled();
    let out = agent.enroll(&collector, &collector.enrollment_token, &other.ca_path());
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(message.contains("not signed by the pinned CA"), "{message}");
    assert_eq!(message.trim().lines().count(), 1, "{message}");
    assert!(!agent.dir().join("agent.json").exists());

    // The technician CLI says the same kind of thing.
    let out = std::process::Command::new(crate::binaries::collector())
        .args(["tickets", "list"])
        .env("LIFELINE_SERVER", &collector.url)
        .env("LIFELINE_CA", other.ca_path())
        .env("LIFELINE_TOKEN", &collector.admin_token)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not signed by the pinned CA"),
        "{}",
        stderr(&out)
    );

    // A certificate from another collector's CA is refused in the TLS handshake.
    let foreign = TestAgent::enrolled(&other);
    let result =
        foreign
            .http(&collector)
            .try_request("GET", "/api/v1/agent/machine", None, &[], None);
    assert!(
        result.is_err(),
        "a foreign client certificate was accepted: {result:?}"
    );
}

#[test]
fn bad_cli_input_gets_one_line_and_a_non_zero_exit() {
    let collector = TestCollector::spawn();
    for args in [
        &["tickets", "update", "1", "--tier", "4"][..],
        &["tickets", "update", "1", "--status", "pending"][..],
        &["users", "add", "eve", "--role", "root"][..],
    ] {
        let out = collector.cli(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!stderr(&out).is_empty());
    }
    let missing = collector.cli(&["tickets", "show", "99"]);
    assert!(
        stderr(&missing).contains("no ticket #99"),
        "{}",
        stderr(&missing)
    );
    let nothing = collector.cli(&["tickets", "update", "99"]);
    assert!(
        stderr(&nothing).contains("nothing to update"),
        "{}",
        stderr(&nothing)
    );
    let bad_name = collector.cli(&["users", "add", "<script>", "--role", "technician"]);
    assert!(
        stderr(&bad_name).contains("not valid"),
        "{}",
        stderr(&bad_name)
    );
    let no_server = std::process::Command::new(crate::binaries::collector())
        .args(["tickets", "list"])
        .env_remove("LIFELINE_SERVER")
        .env_remove("LIFELINE_TOKEN")
        .env_remove("LIFELINE_CA")
        .output()
        .unwrap();
    assert!(
        stderr(&no_server).contains("--server"),
        "{}",
        stderr(&no_server)
    );

    let http = collector.http();
    let admin = collector.admin_token.clone();
    let tier = http.send_json(
        "PATCH",
        "/api/v1/tickets/1",
        Some(&admin),
        &serde_json::json!({"tier": 4}),
    );
    assert_error(&tier, 400, "tier 4");
    let path = http.get("/api/v1/tickets/abc", Some(&admin));
    assert_error(&path, 400, "\"abc\" is not a whole number");
    let query = http.get("/api/v1/tickets?status=pending", Some(&admin));
    assert_eq!(query.status, 400, "{}", query.body);
    let report = TestAgent::unenrolled().run(&["report", "help"]);
    assert!(!report.status.success());
    assert!(
        stderr(&report).contains("not enrolled"),
        "{}",
        stderr(&report)
    );
}

#[test]
fn screenshots_are_checked_at_ingest_and_served_to_staff_only() {
    let (collector, agent, http) = with_one_ticket();
    let png = [&PNG_SIGNATURE[..], b"the rest of a png"].concat();
    for (bad, key) in [
        ("not base64 at all!".to_owned(), "shot-bad-1"),
        (
            encode_screenshot(b"<html><script>alert(1)</script>"),
            "shot-bad-2",
        ),
        (
            encode_screenshot(&[&PNG_SIGNATURE[..], &vec![0; SCREENSHOT_MAX_BYTES]].concat()),
            "shot-bad-3",
        ),
    ] {
        let answer = http.file_ticket_with("Look at my screen", key, Some(bad));
        assert_error(&answer, 400, "screenshot_png");
    }
    assert_ticket_one_intact(&collector);

    // Ticket #1 has none: false, and the route answers 404.
    let shown = collector.cli_json(&["tickets", "show", "1"]);
    assert_eq!(shown["has_screenshot"], false, "{shown}");
    let path_of = |n: &str| paths::TICKET_SCREENSHOT.replace("{n}", n);
    let (status, _, _) = http.get_bytes(&path_of("1"), None);
    assert!(
        matches!(status, 401 | 403),
        "an agent must not read screenshots: {status}"
    );
    let staff = collector.http();
    let (status, _, _) = staff.get_bytes(&path_of("1"), Some(&collector.admin_token));
    assert_eq!(status, 404);
    let out = collector.cli(&["tickets", "screenshot", "1", "--out", "/nonexistent/x.png"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no screenshot"), "{}", stderr(&out));

    // A valid one is stored and served as a PNG download, never as something to render.
    let answer = http.file_ticket_with(
        "Look at my screen",
        "shot-ok",
        Some(encode_screenshot(&png)),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let number = answer.json()["number"].as_u64().unwrap().to_string();
    let shown = collector.cli_json(&["tickets", "show", &number]);
    assert_eq!(shown["has_screenshot"], true, "{shown}");
    let text = collector.cli_ok(&["tickets", "show", &number]);
    assert!(
        text.contains(&format!(
            "screenshot attached (lifeline-collector tickets screenshot {number} --out shot.png)"
        )),
        "{text}"
    );
    let (status, headers, body) = staff.get_bytes(&path_of(&number), Some(&collector.admin_token));
    assert_eq!(status, 200);
    assert_eq!(body, png);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(header("content-type"), "image/png");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(
        header("content-disposition"),
        format!("attachment; filename=\"ticket-{number}.png\"")
    );
    let (status, _, _) = staff.get_bytes(&path_of(&number), None);
    assert_eq!(status, 401, "anonymous callers must not read screenshots");
    let (status, _, _) = http.get_bytes(&path_of(&number), None);
    assert!(
        matches!(status, 401 | 403),
        "an agent must not read screenshots: {status}"
    );

    // The CLI saves it, and refuses to overwrite a file unless --force.
    let file = agent.dir().join("shot.png");
    let file_arg = file.to_str().unwrap();
    collector.cli_ok(&["tickets", "screenshot", &number, "--out", file_arg]);
    assert_eq!(std::fs::read(&file).unwrap(), png);
    std::fs::write(&file, b"keep me").unwrap();
    let out = collector.cli(&["tickets", "screenshot", &number, "--out", file_arg]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    collector.cli_ok(&[
        "tickets",
        "screenshot",
        &number,
        "--out",
        file_arg,
        "--force",
    ]);
    assert_eq!(std::fs::read(&file).unwrap(), png);
}

#[test]
fn a_json_array_is_not_an_object_body() {
    let collector = TestCollector::spawn();
    let admin = collector.admin_token.clone();
    let http = collector.http();
    let created = || {
        collector
            .cli_json(&["audit", "list"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "enrollment_token.create")
            .count()
    };
    let before = created();
    let answer = http.request(
        "POST",
        paths::ENROLLMENT_TOKENS,
        Some(&admin),
        &[JSON],
        Some(b"[null, null]"),
    );
    assert_error(&answer, 400, "JSON object");
    assert_eq!(created(), before, "the array made a token");
    let whole_float = http.request(
        "POST",
        paths::ENROLLMENT_TOKENS,
        Some(&admin),
        &[JSON],
        Some(br#"{"max_uses": 3.0}"#),
    );
    assert_eq!(whole_float.status, 200, "{}", whole_float.body);
    assert_eq!(whole_float.json()["max_uses"], 3);
    assert_eq!(created(), before + 1);
}

/// `assert_error` reads the `{"error"}` body: plain text fails it.
#[test]
fn malformed_path_and_query_values_get_the_json_error() {
    let collector = TestCollector::spawn();
    let admin = collector.admin_token.clone();
    let http = collector.http();
    for path in [
        "/api/v1/runs/null%2Cnull",
        "/api/v1/work/-1",
        "/api/v1/tickets/18446744073709551616",
    ] {
        assert_error(&http.get(path, Some(&admin)), 400, "path parameter");
    }
    assert_error(
        &http.get("/api/v1/work/1?wait_secs=-5", Some(&admin)),
        400,
        "wait_secs",
    );
    assert_error(
        &http.get("/api/v1/runs?limit=0", Some(&admin)),
        400,
        "limit",
    );
    assert_error(
        &http.get("/api/v1/tickets?nonsense=1", Some(&admin)),
        400,
        "nonsense",
    );
}

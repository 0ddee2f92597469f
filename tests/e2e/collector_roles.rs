//! The role matrix: every route of the API, called as every kind of caller.
//!
//! The expectations are written out here by hand and checked against the collector's own rule
//! table, so a route added without a test entry fails this test, and a rule that drifts from
//! what this file expects fails it too.

use lifeline_collector::http::auth::{Access, RULES};

use crate::harness::{Answer, Http, TestAgent, TestCollector};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    Agent,
    Enrollment,
    Technician,
    Admin,
    /// A technician signed in to the web console (session cookie plus CSRF token on forms).
    TechnicianSession,
    /// An admin signed in to the web console.
    AdminSession,
}

const CALLERS: [Caller; 7] = [
    Caller::Anonymous,
    Caller::Agent,
    Caller::Enrollment,
    Caller::Technician,
    Caller::Admin,
    Caller::TechnicianSession,
    Caller::AdminSession,
];

const EVERYONE: &[Caller] = &[
    Anonymous,
    Agent,
    Enrollment,
    Technician,
    Admin,
    TechnicianSession,
    AdminSession,
];

use Caller::*;

/// (method, route template, callers who may use it).
const EXPECTED: &[(&str, &str, &[Caller])] = &[
    ("GET", "/healthz", EVERYONE),
    ("GET", "/metrics", &[Technician, Admin]),
    ("POST", "/api/v1/enroll", &[Enrollment]),
    ("POST", "/api/v1/enrollment-tokens", &[Admin]),
    ("GET", "/api/v1/enrollment-tokens", &[Admin]),
    (
        "POST",
        "/api/v1/enrollment-tokens/{prefix}/revoke",
        &[Admin],
    ),
    ("POST", "/api/v1/agent/tickets", &[Agent]),
    ("GET", "/api/v1/agent/machine", &[Agent]),
    ("POST", "/api/v1/agent/renew", &[Agent]),
    ("GET", "/api/v1/tickets", &[Technician, Admin]),
    ("GET", "/api/v1/tickets/{n}", &[Technician, Admin]),
    ("PATCH", "/api/v1/tickets/{n}", &[Technician, Admin]),
    ("POST", "/api/v1/tickets/{n}/comments", &[Technician, Admin]),
    (
        "GET",
        "/api/v1/tickets/{n}/screenshot",
        &[Technician, Admin],
    ),
    ("GET", "/api/v1/machines", &[Technician, Admin]),
    ("GET", "/api/v1/machines/{id}", &[Technician, Admin]),
    ("POST", "/api/v1/machines/{id}/revoke", &[Admin]),
    ("POST", "/api/v1/machines/{id}/approve", &[Admin]),
    ("POST", "/api/v1/agent/heartbeat", &[Agent]),
    ("GET", "/api/v1/agent/work", &[Agent]),
    ("POST", "/api/v1/agent/work/{id}/result", &[Agent]),
    (
        "POST",
        "/api/v1/machines/{id}/inspect",
        &[Technician, Admin],
    ),
    ("GET", "/api/v1/work/{id}", &[Technician, Admin]),
    ("GET", "/api/v1/users", &[Admin]),
    ("POST", "/api/v1/users", &[Admin]),
    ("POST", "/api/v1/users/{name}/revoke", &[Admin]),
    ("GET", "/api/v1/catalog", &[Technician, Admin]),
    ("POST", "/api/v1/catalog", &[Admin]),
    ("GET", "/api/v1/catalog/keys", &[Technician, Admin]),
    ("POST", "/api/v1/catalog/keys", &[Admin]),
    ("GET", "/api/v1/actions", &[Technician, Admin]),
    ("PUT", "/api/v1/actions/{id}/approval", &[Admin]),
    ("POST", "/api/v1/runs", &[Technician, Admin]),
    ("GET", "/api/v1/runs", &[Technician, Admin]),
    ("GET", "/api/v1/runs/{id}", &[Technician, Admin]),
    ("POST", "/api/v1/runs/{id}/approve", &[Admin]),
    ("POST", "/api/v1/runs/{id}/deny", &[Admin]),
    ("POST", "/api/v1/agent/work/{id}/progress", &[Agent]),
    ("GET", "/api/v1/audit", &[Admin]),
    ("GET", "/api/v1/audit/verify", &[Admin]),
    ("GET", "/api/v1/agent/tickets", &[Agent]),
    ("GET", "/api/v1/openapi.json", EVERYONE),
    // Service levels and escalation (issue 9).
    ("POST", "/api/v1/tickets/{n}/escalate", &[Technician, Admin]),
    // Satisfaction, webhooks and e-mail (issue 9).
    ("POST", "/api/v1/agent/tickets/{n}/feedback", &[Agent]),
    ("GET", "/api/v1/webhooks/deliveries", &[Admin]),
    (
        "POST",
        "/api/v1/webhooks/deliveries/{id}/redeliver",
        &[Admin],
    ),
    ("PUT", "/api/v1/users/{name}/email", &[Admin]),
    // The web console: a session cookie, never a bearer token or a client certificate.
    ("GET", "/login", EVERYONE),
    ("POST", "/login", EVERYONE),
    ("GET", "/static/console.css", EVERYONE),
    ("GET", "/", &[TechnicianSession, AdminSession]),
    ("GET", "/tickets/{n}", &[TechnicianSession, AdminSession]),
    (
        "POST",
        "/tickets/{n}/comment",
        &[TechnicianSession, AdminSession],
    ),
    (
        "POST",
        "/tickets/{n}/update",
        &[TechnicianSession, AdminSession],
    ),
    (
        "POST",
        "/tickets/{n}/inspect",
        &[TechnicianSession, AdminSession],
    ),
    (
        "POST",
        "/tickets/{n}/run",
        &[TechnicianSession, AdminSession],
    ),
    ("GET", "/runs/{id}", &[TechnicianSession, AdminSession]),
    ("GET", "/machines", &[TechnicianSession, AdminSession]),
    ("GET", "/machines/{id}", &[TechnicianSession, AdminSession]),
    ("GET", "/admin/approvals", &[AdminSession]),
    ("POST", "/admin/approvals/{id}/approve", &[AdminSession]),
    ("POST", "/admin/approvals/{id}/deny", &[AdminSession]),
    ("GET", "/admin/users", &[AdminSession]),
    ("POST", "/admin/users", &[AdminSession]),
    ("POST", "/admin/users/{name}/revoke", &[AdminSession]),
    ("GET", "/admin/machines", &[AdminSession]),
    ("POST", "/admin/machines/{id}/approve", &[AdminSession]),
    ("POST", "/admin/machines/{id}/revoke", &[AdminSession]),
    (
        "POST",
        "/admin/enrollment-tokens/{prefix}/revoke",
        &[AdminSession],
    ),
    ("GET", "/admin/catalog", &[AdminSession]),
    ("GET", "/admin/audit", &[AdminSession]),
    // Service levels and escalation (issue 9).
    (
        "POST",
        "/tickets/{n}/escalate",
        &[TechnicianSession, AdminSession],
    ),
    // Recurring problems, knowledge search and help-desk metrics (issue 9).
    ("GET", "/api/v1/tickets/{n}/similar", &[Technician, Admin]),
    ("GET", "/api/v1/reports/recurring", &[Technician, Admin]),
    ("GET", "/api/v1/reports/summary", &[Technician, Admin]),
    ("GET", "/api/v1/kb", &[Technician, Admin]),
    ("GET", "/reports", &[TechnicianSession, AdminSession]),
    // Last: it ends the sessions the rows above use.
    ("POST", "/logout", &[TechnicianSession, AdminSession]),
];

fn callers_of(access: Access) -> Vec<Caller> {
    match access {
        Access::Public => CALLERS.to_vec(),
        Access::Session => vec![TechnicianSession, AdminSession],
        Access::SessionAdmin => vec![AdminSession],
        Access::Agent => vec![Agent],
        Access::Enrollment => vec![Enrollment],
        Access::Staff => vec![Technician, Admin],
        Access::Admin => vec![Admin],
    }
}

#[test]
fn rule_table_matches_the_expected_matrix() {
    assert_eq!(
        RULES.len(),
        EXPECTED.len(),
        "a route is missing from this test or the rules"
    );
    for (method, path, callers) in EXPECTED {
        let rule = RULES
            .iter()
            .find(|r| r.method == *method && r.path == *path)
            .unwrap_or_else(|| panic!("no rule for {method} {path}"));
        assert_eq!(&callers_of(rule.access), callers, "{method} {path}");
    }
}

struct World {
    collector: TestCollector,
    agent: Http,
    anonymous: Http,
    technician: String,
    /// (cookie, CSRF token) of a technician's and an admin's console session.
    technician_session: (String, String),
    admin_session: (String, String),
}

impl World {
    fn call(&self, caller: Caller, method: &str, path: &str, body: &serde_json::Value) -> Answer {
        let session = match caller {
            TechnicianSession => Some(&self.technician_session),
            AdminSession => Some(&self.admin_session),
            _ => None,
        };
        if let Some((cookie, csrf)) = session {
            let headers = [
                ("cookie", cookie.as_str()),
                ("content-type", "application/x-www-form-urlencoded"),
            ];
            let form = format!("csrf={csrf}");
            let body = (method != "GET").then_some(form.as_bytes());
            return self.anonymous.request(method, path, None, &headers, body);
        }
        let (http, token) = match caller {
            Anonymous => (&self.anonymous, None),
            Agent => (&self.agent, None),
            Enrollment => (
                &self.anonymous,
                Some(self.collector.enrollment_token.as_str()),
            ),
            Technician => (&self.anonymous, Some(self.technician.as_str())),
            Admin => (&self.anonymous, Some(self.collector.admin_token.as_str())),
            TechnicianSession | AdminSession => unreachable!("handled above"),
        };
        if method == "GET" {
            http.get(path, token)
        } else {
            http.send_json(method, path, token, body)
        }
    }
}

/// Concrete paths: real ticket 1, nonexistent targets for destructive routes so an allowed call
/// answers 404 instead of revoking something the matrix still needs.
fn concrete(path: &str) -> String {
    path.replace("{n}", "1")
        .replace("{id}", "m-does-not-exist")
        .replace("{name}", "nobody")
        .replace("{prefix}", "lle_nothing0")
}

#[test]
fn every_route_admits_exactly_its_roles() {
    let collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    let agent_http = agent.http(&collector);
    assert_eq!(agent_http.file_ticket("matrix", "matrix-1").status, 200);
    let tech = collector.cli_json(&["users", "add", "tina", "--role", "technician"]);
    let anonymous = collector.http();
    let technician = tech["token"].as_str().unwrap().to_owned();
    let world = World {
        technician_session: anonymous.console_login(&technician),
        admin_session: anonymous.console_login(&collector.admin_token),
        anonymous,
        agent: agent_http,
        technician,
        collector,
    };

    let mut failures = Vec::new();
    for (method, template, allowed) in EXPECTED {
        let path = concrete(template);
        for caller in CALLERS {
            // Bodies are deliberately empty objects: an admitted caller gets past authorization
            // and then a 2xx, 400, 404 or 415 from the handler, never 401/403.
            let answer = world.call(caller, method, &path, &serde_json::json!({}));
            // A console route refuses by sending the browser to the sign-in page.
            let to_login = answer.status == 303 && answer.header("location") == Some("/login");
            let admitted = !matches!(answer.status, 401 | 403) && !to_login;
            if admitted != allowed.contains(&caller) {
                failures.push(format!(
                    "{method} {path} as {caller:?}: {} {}",
                    answer.status, answer.body
                ));
            }
            if !admitted && template.starts_with("/api/") {
                assert!(
                    !answer.error().is_empty(),
                    "{method} {path} as {caller:?}: refusal without a message"
                );
            }
            assert!(
                !matches!(answer.status, 405 | 500),
                "{method} {path} as {caller:?}: {} {}",
                answer.status,
                answer.body
            );
        }
    }
    assert!(
        failures.is_empty(),
        "role matrix violations:\n{}",
        failures.join("\n")
    );

    // Routes that do not exist are 404 for everyone, with a JSON error.
    for caller in CALLERS {
        let answer = world.call(caller, "GET", "/api/v1/secrets", &serde_json::json!({}));
        assert_eq!(answer.status, 404, "{}", answer.body);
        assert!(answer.error().contains("no such route"));
    }
    let wrong_method = world.call(Admin, "DELETE", "/api/v1/tickets/1", &serde_json::json!({}));
    assert_eq!(wrong_method.status, 405, "{}", wrong_method.body);

    // The agent's own view shows only itself.
    let own = world.call(
        Agent,
        "GET",
        "/api/v1/agent/machine",
        &serde_json::json!({}),
    );
    assert_eq!(own.json()["id"], agent.machine_id.as_str());
}

#[test]
fn metrics_count_requests_by_route_and_tickets_received() {
    let collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    assert_eq!(
        agent.http(&collector).file_ticket("metrics", "m-1").status,
        200
    );
    let admin = collector.admin_token.clone();
    let metrics = collector.http().get("/metrics", Some(&admin));
    assert_eq!(metrics.status, 200);
    let text = metrics.body;
    assert!(text.contains("lifeline_tickets_received_total 1"), "{text}");
    assert!(text.contains("lifeline_machines_active 1"), "{text}");
    assert!(
        text.contains(r#"route="/api/v1/agent/tickets",status="200""#),
        "{text}"
    );
    assert!(
        text.contains("lifeline_http_request_duration_seconds_bucket"),
        "{text}"
    );
    let health = collector.http().get("/healthz", None);
    assert_eq!(health.json()["status"], "ok");
}

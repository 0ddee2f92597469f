//! Credentials and authority: enrollment tokens, the first token's lifetime, host names that
//! display as what they are, refusals that name someone, and the two-person rule.

use serde_json::json;

use crate::harness::{TestAgent, TestCollector};

#[test]
fn host_names_with_bidi_or_zero_width_characters_cannot_enroll() {
    let collector = TestCollector::spawn();
    let http = collector.http();
    for hostname in ["web\u{202E}moc.live", "db\u{200B}01", "ws\u{2066}7\u{2069}"] {
        // The host name is checked before anything else of the request (the CSR is not valid).
        let answer = http.send_json(
            "POST",
            "/api/v1/enroll",
            Some(&collector.enrollment_token),
            &json!({ "hostname": hostname, "csr_pem": "not a CSR" }),
        );
        assert_eq!(answer.status, 400, "{hostname:?}: {}", answer.body);
        assert!(
            answer.error().contains("invisible character U+"),
            "{hostname:?}: {}",
            answer.body
        );
    }
    let machines = collector.cli_json(&["machines", "list"]);
    assert_eq!(machines.as_array().unwrap().len(), 0, "{machines}");
}

#[test]
fn a_name_two_machines_share_is_refused_for_approval_and_revocation_with_both_ids() {
    let collector = TestCollector::spawn_with(&["--enrollment", "approve"]);
    // Both test agents enroll with this machine's host name.
    let first = TestAgent::enrolled(&collector);
    let second = TestAgent::enrolled(&collector);
    let machines = collector.cli_json(&["machines", "list"]);
    let hostname = machines[0]["hostname"].as_str().unwrap().to_owned();
    assert_eq!(machines[1]["hostname"], hostname.as_str());

    for verb in ["approve", "revoke"] {
        let refused = collector.cli(&["machines", verb, &hostname]);
        assert!(!refused.status.success(), "{verb} by a shared name worked");
        let message = String::from_utf8_lossy(&refused.stderr);
        for id in [&first.machine_id, &second.machine_id] {
            assert!(message.contains(id.as_str()), "{verb}: {message}");
        }
        assert!(message.contains("use the machine id"), "{verb}: {message}");
        // The API says the same.
        let answer = collector.http().send_json(
            "POST",
            &format!("/api/v1/machines/{hostname}/{verb}"),
            Some(&collector.admin_token),
            &json!({}),
        );
        assert_eq!(answer.status, 409, "{}", answer.body);
        assert!(answer.error().contains(first.machine_id.as_str()));
        assert!(answer.error().contains(second.machine_id.as_str()));
    }
    // Nothing changed; by id it works.
    let machines = collector.cli_json(&["machines", "list"]);
    assert!(
        machines
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["status"] == "pending"),
        "{machines}"
    );
    collector.cli_ok(&["machines", "approve", &first.machine_id]);
    collector.cli_ok(&["machines", "revoke", &second.machine_id]);
}

/// The `enrollment-tokens list --json` row named `prefix`.
fn listed(collector: &TestCollector, prefix: &str) -> serde_json::Value {
    let list = collector.cli_json(&["enrollment-tokens", "list"]);
    list.as_array()
        .unwrap()
        .iter()
        .find(|t| t["prefix"] == prefix)
        .cloned()
        .unwrap_or_else(|| panic!("{prefix} not listed: {list}"))
}

#[test]
fn enrollment_tokens_are_listed_by_prefix_and_a_revoked_one_enrolls_nobody() {
    let collector = TestCollector::spawn();
    let created = collector.cli_json(&["enrollment-tokens", "create", "--max-uses", "3"]);
    let token = created["token"].as_str().unwrap().to_owned();
    let prefix = created["prefix"].as_str().unwrap().to_owned();
    assert_eq!(prefix.len(), 12, "{created}");
    assert!(token.starts_with(&prefix), "{created}");
    let agent = TestAgent::unenrolled();
    let out = agent.enroll(&collector, &token, &collector.ca_path());
    assert!(out.status.success(), "{out:?}");

    // The list names each token by its prefix, never the token.
    let text = collector.cli_ok(&["enrollment-tokens", "list", "--json"]);
    assert!(!text.contains(&token), "the token itself is listed: {text}");
    assert!(!text.contains(&collector.enrollment_token));
    let row = listed(&collector, &prefix);
    assert_eq!(row["created_by"], "admin");
    assert_eq!(
        (row["uses"].as_u64(), row["max_uses"].as_u64()),
        (Some(1), Some(3))
    );
    assert!(
        row["revoked_at"].is_null() && row["expires_at"].is_null(),
        "{row}"
    );
    let first_prefix: String = collector.enrollment_token.chars().take(12).collect();
    assert_eq!(listed(&collector, &first_prefix)["created_by"], "collector");
    let table = collector.cli_ok(&["enrollment-tokens", "list"]);
    assert!(
        table.contains(&prefix) && table.contains("1 / 3"),
        "{table}"
    );

    // Revoked: it enrolls nobody, and says so; the machine it enrolled stays.
    let revoked = collector.cli_ok(&["enrollment-tokens", "revoke", &prefix]);
    assert!(revoked.contains("revoked"), "{revoked}");
    assert!(!listed(&collector, &prefix)["revoked_at"].is_null());
    let refused = TestAgent::unenrolled().enroll(&collector, &token, &collector.ca_path());
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("revoked"), "{message}");
    assert_eq!(
        collector
            .cli_json(&["machines", "list"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Twice, or an unknown name: a clear refusal.
    let again = collector.cli(&["enrollment-tokens", "revoke", &prefix]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already revoked"));
    let unknown = collector.cli(&["enrollment-tokens", "revoke", "lle_00000000"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no enrollment token"));

    // Technicians may neither list nor revoke.
    let tech = collector.cli_json(&["users", "add", "tina", "--role", "technician"]);
    let tech = tech["token"].as_str().unwrap();
    for args in [
        &["enrollment-tokens", "list"][..],
        &["enrollment-tokens", "revoke", &first_prefix][..],
    ] {
        let out = collector.cli_as(tech, args);
        assert!(!out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("needs an admin"));
    }

    // Audited: created and revoked, named by prefix.
    let audit = collector.cli_json(&["audit", "list"]);
    let entries = audit.as_array().unwrap();
    let subject = format!("enrollment_token:{prefix}");
    for action in ["enrollment_token.create", "enrollment_token.revoke"] {
        assert!(
            entries
                .iter()
                .any(|e| e["action"] == action && e["actor"] == "admin" && e["subject"] == subject),
            "{action}: {audit}"
        );
    }
    assert!(!audit.to_string().contains(&token));
}

#[test]
fn the_console_lists_enrollment_tokens_and_revokes_one_with_its_csrf_token() {
    let collector = TestCollector::spawn();
    let prefix: String = collector.enrollment_token.chars().take(12).collect();
    let http = collector.http();
    let (cookie, csrf) = http.console_login(&collector.admin_token);
    let page = http.request("GET", "/admin/machines", None, &[("cookie", &cookie)], None);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Enrollment tokens"), "{}", page.body);
    assert!(page.body.contains(&prefix), "{}", page.body);
    assert!(!page.body.contains(&collector.enrollment_token));
    let action = format!("/admin/enrollment-tokens/{prefix}/revoke");
    assert!(page.body.contains(&action), "{}", page.body);

    let form = [
        ("cookie", cookie.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    // Without the session's CSRF token: refused, nothing revoked.
    let forged = http.request("POST", &action, None, &form, Some(b"csrf=forged"));
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(listed(&collector, &prefix)["revoked_at"].is_null());
    let done = http.request(
        "POST",
        &action,
        None,
        &form,
        Some(format!("csrf={csrf}").as_bytes()),
    );
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(!listed(&collector, &prefix)["revoked_at"].is_null());
    let refused = TestAgent::unenrolled().enroll(
        &collector,
        &collector.enrollment_token,
        &collector.ca_path(),
    );
    assert!(!refused.status.success());
    let page = http.request("GET", "/admin/machines", None, &[("cookie", &cookie)], None);
    assert!(page.body.contains("revoked"), "{}", page.body);
}

#[test]
fn the_first_enrollment_token_expires_after_a_day_unless_the_admin_says_otherwise() {
    let collector = TestCollector::spawn();
    let printed = collector.stdout.lock().unwrap().clone();
    assert!(
        printed.contains("This enrollment token expires at"),
        "{printed}"
    );
    let prefix: String = collector.enrollment_token.chars().take(12).collect();
    let row = listed(&collector, &prefix);
    let created = time::OffsetDateTime::parse(
        row["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expires = time::OffsetDateTime::parse(
        row["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expires - created, time::Duration::hours(24));
    // Still good just before (the token is accepted; the request then fails on its CSR);
    // refused a day later. The agent itself is not used: its certificate would be issued for
    // the moved clock.
    collector.advance_clock(24 * 3600 - 60);
    assert_eq!(try_enroll(&collector).status, 400);
    collector.advance_clock(120);
    let late = try_enroll(&collector);
    assert_eq!(late.status, 401, "{}", late.body);
    assert!(late.error().contains("expired"), "{}", late.body);

    let week = TestCollector::spawn_with(&["--first-token-ttl", "7d"]);
    let row = listed(
        &week,
        &week.enrollment_token.chars().take(12).collect::<String>(),
    );
    assert!(row["expires_at"].is_string(), "{row}");
    week.advance_clock(6 * 86_400);
    assert_eq!(try_enroll(&week).status, 400);
    week.advance_clock(86_400);
    assert_eq!(try_enroll(&week).status, 401);

    let never = TestCollector::spawn_with(&["--first-token-ttl", "never"]);
    let printed = never.stdout.lock().unwrap().clone();
    assert!(printed.contains("never expires"), "{printed}");
    let row = listed(
        &never,
        &never.enrollment_token.chars().take(12).collect::<String>(),
    );
    assert!(row["expires_at"].is_null(), "{row}");
}

/// An enrollment with the first token and a CSR that is not one: 400 when the token is
/// accepted, 401 when it is refused.
fn try_enroll(collector: &TestCollector) -> crate::harness::Answer {
    collector.http().send_json(
        "POST",
        "/api/v1/enroll",
        Some(&collector.enrollment_token),
        &json!({ "hostname": "ws-1", "csr_pem": "not a CSR" }),
    )
}

#[test]
fn a_bad_first_token_lifetime_is_refused_with_the_flag_named() {
    for bad in ["soon", "0s", "-1h", "99999d"] {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(crate::binaries::collector())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .arg(format!("--first-token-ttl={bad}"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--first-token-ttl"), "{bad}: {stderr}");
        assert!(!dir.path().join("data").exists(), "{bad}");
    }
    // The configuration file takes the same values.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("collector.toml");
    std::fs::write(&config, "first_token_ttl = \"never\"\n").unwrap();
    let collector = TestCollector::spawn_with(&["--config", config.to_str().unwrap()]);
    let prefix: String = collector.enrollment_token.chars().take(12).collect();
    assert!(listed(&collector, &prefix)["expires_at"].is_null());
}

#[test]
fn an_admin_whose_account_the_requester_created_cannot_approve_the_request() {
    let site = crate::actions::Site::new();
    let collector = &site.collector;
    // `boss` was created by `admin`; `admin` asks for a high-risk run.
    let users = collector.cli_json(&["users", "list"]);
    let boss = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "boss")
        .unwrap();
    assert_eq!(boss["created_by"], "admin", "{users}");
    let asked = collector.cli(&[
        "run",
        "power-cycle",
        "--machine",
        &site.agent.machine_id,
        "--reason",
        "frozen",
    ]);
    assert!(asked.status.success(), "{asked:?}");
    let refused = collector.cli_as(&site.second_admin, &["approve", "1"]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("who created your account"), "{message}");
    assert_eq!(
        collector.cli_json(&["runs", "show", "1"])["state"],
        "awaiting_approval"
    );
    let audit = collector.cli_json(&["audit", "list"]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "run.self_approval_refused"
                && e["actor"] == "boss"
                && e["detail"]["reason"] == "approver_created_by_requester"),
        "{audit}"
    );
    // An admin `boss` created (not `admin`) may decide.
    let carol = collector.cli_as(
        &site.second_admin,
        &["users", "add", "carol", "--role", "admin", "--json"],
    );
    assert!(carol.status.success(), "{carol:?}");
    let carol: serde_json::Value = serde_json::from_slice(&carol.stdout).unwrap();
    let approved = collector.cli_as(carol["token"].as_str().unwrap(), &["approve", "1"]);
    assert!(approved.status.success(), "{approved:?}");
}

#[test]
fn refusals_that_name_someone_are_audited_even_after_a_flood_of_unknown_tokens() {
    let collector = TestCollector::spawn_with(&["--enrollment", "approve"]);
    let tech = collector.cli_json(&["users", "add", "tina", "--role", "technician"]);
    let tech = tech["token"].as_str().unwrap().to_owned();
    let gone = collector.cli_json(&["users", "add", "gone", "--role", "technician"]);
    let gone = gone["token"].as_str().unwrap().to_owned();
    collector.cli_ok(&["users", "revoke", "gone"]);
    let pending = TestAgent::enrolled(&collector);
    let http = collector.http();

    // Anonymous noise from this address, past the per-minute limit.
    let bogus = format!("llu_{}", "0".repeat(64));
    for _ in 0..75 {
        assert_eq!(http.get("/api/v1/tickets", Some(&bogus)).status, 401);
    }
    // Then three refusals that name someone: each is audited.
    assert_eq!(http.get("/api/v1/tickets", Some(&gone)).status, 401);
    assert_eq!(http.get("/api/v1/users", Some(&tech)).status, 403);
    let machine = pending.http(&collector).get("/api/v1/agent/machine", None);
    assert_eq!(machine.status, 403, "{}", machine.body);

    let audit = collector.cli_json(&["audit", "list", "--limit", "1000"]);
    let entries = audit.as_array().unwrap();
    let unknown = entries
        .iter()
        .filter(|e| e["detail"]["reason"] == "unknown token")
        .count();
    assert_eq!(unknown, 60, "anonymous refusals are limited per source");
    let named = |action: &str, subject: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action && e["subject"] == subject)
            .unwrap_or_else(|| panic!("no {action} about {subject}: {audit}"))
    };
    let revoked = named("auth.failure", "user:gone");
    assert_eq!(revoked["detail"]["reason"], "revoked token");
    assert_eq!(revoked["detail"]["source"], "127.0.0.1");
    let forbidden = named("auth.forbidden", "user:tina");
    assert_eq!(forbidden["detail"]["route"], "GET /api/v1/users");
    let waiting = named("auth.failure", &format!("machine:{}", pending.machine_id));
    assert_eq!(waiting["detail"]["reason"], "machine waiting for approval");

    // A technician on an admin console page is audited too.
    let (cookie, _) = http.console_login(&tech);
    let page = http.request("GET", "/admin/users", None, &[("cookie", &cookie)], None);
    assert_eq!(page.status, 403);
    let audit = collector.cli_json(&["audit", "list", "--limit", "1000"]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "auth.forbidden"
                && e["subject"] == "user:tina"
                && e["detail"]["route"] == "GET /admin/users"),
        "{audit}"
    );
}

/// The collector's certificate from `pem`, first of the file.
fn first_cert(pem: &[u8]) -> rustls_pki_types::CertificateDer<'static> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .next()
        .unwrap()
        .unwrap()
}

/// Checks `cert` for `name` as a client that trusts `ca.pem` alone does.
fn verify_for(ca: &[u8], cert: &[u8], name: &str) -> Result<(), rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(first_cert(ca)).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
            .build()
            .unwrap();
    let name = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
    rustls::client::danger::ServerCertVerifier::verify_server_cert(
        verifier.as_ref(),
        &first_cert(cert),
        &[],
        &name,
        &[],
        rustls_pki_types::UnixTime::now(),
    )
    .map(|_| ())
}

#[test]
fn the_collector_ca_vouches_for_the_collectors_own_names_only() {
    let mut collector = TestCollector::spawn_with(&["--san", "helpdesk.example.test"]);
    let dir = collector.data_dir();
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let ca_der = first_cert(&ca);
    let (_, parsed) = x509_parser::parse_x509_certificate(ca_der.as_ref()).unwrap();
    let constraints = parsed
        .extensions()
        .iter()
        .find(|e| e.oid == x509_parser::oid_registry::OID_X509_EXT_NAME_CONSTRAINTS)
        .expect("the CA is name-constrained");
    assert!(constraints.critical);

    // The collector's own certificate verifies for its names...
    let server = std::fs::read(dir.join("server.pem")).unwrap();
    for name in ["localhost", "127.0.0.1", "::1", "helpdesk.example.test"] {
        verify_for(&ca, &server, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // ...and a certificate for another site made with the CA's own key does not.
    let key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(dir.join("ca.key")).unwrap()).unwrap();
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(&String::from_utf8(ca.clone()).unwrap(), key).unwrap();
    for other in ["www.bank.example", "10.1.2.3"] {
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![other.to_owned()]).unwrap();
        let forged = params.signed_by(&leaf_key, &issuer).unwrap().pem();
        let refused = verify_for(&ca, forged.as_bytes(), other).unwrap_err();
        assert!(
            format!("{refused:?}").contains("NameConstraintViolation"),
            "{other}: {refused:?}"
        );
    }
    // Agents still enroll and talk over mutual TLS with certificates from this CA.
    let agent = TestAgent::enrolled(&collector);
    assert_eq!(agent.http(&collector).file_ticket("ca", "ca-1").status, 200);

    // A later start cannot add a name the CA does not cover; it says what to do instead.
    collector.stop();
    let out = std::process::Command::new(crate::binaries::collector())
        .args(["serve", "--listen", "127.0.0.1:0", "--san", "other.example"])
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--san other.example is outside the names")
            && stderr.contains("--tls-cert"),
        "{stderr}"
    );
}

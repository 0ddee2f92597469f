//! Who is calling, and may they call this route: authentication plus the access policy.
//!
//! The router denies by default: the `authorize` middleware looks up every matched route in
//! [`RULES`], and a route without a rule is refused (and logged, since it is a bug). Identities:
//! - an enrolled agent is its client certificate from the TLS handshake (never a body field);
//! - technicians and admins present `Authorization: Bearer llu_...`;
//! - enrollment presents `Authorization: Bearer lle_...`, plus the agent's current client
//!   certificate when it re-enrolls (so it keeps its machine id).
//!
//! Tokens are looked up by their SHA-256; no token or hash is ever logged. Refused credentials
//! are audited with the caller's address ([`crate::audit::record_refusal`]): a refusal that
//! names someone (a revoked user's token, a revoked or pending machine, staff calling above
//! their role) every time; anonymous ones (unknown tokens, malformed headers) rate-limited per
//! source. A missing credential is not a refusal worth a log entry.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_server::tls::TlsInfo;
use lifeline_shared::v1::api::{MachineStatus, Role, paths};
use lifeline_shared::v1::{feedback, integrations};
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use crate::audit;
use crate::secret::{Secret, TokenHash, TokenKind, certificate_fingerprint};
use crate::web::paths as console;
use lifeline_shared::v1::reports::paths as reports;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials.
    Public,
    /// An enrolled, non-revoked agent (client certificate).
    Agent,
    /// Someone holding a valid enrollment token.
    Enrollment,
    /// A technician or an admin.
    Staff,
    /// An admin.
    Admin,
    /// A technician or an admin signed in to the web console (session cookie; a form POST
    /// must also carry the session's CSRF token). Refused callers are sent to `/login`.
    Session,
    /// An admin signed in to the web console.
    SessionAdmin,
}

impl Access {
    /// Whether this is a web console rule (session cookie, not bearer token).
    pub fn is_session(self) -> bool {
        matches!(self, Access::Session | Access::SessionAdmin)
    }
}

/// One access rule: method, route template as registered in the router, who may call it.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

const fn rule(method: &'static str, path: &'static str, access: Access) -> Rule {
    Rule {
        method,
        path,
        access,
    }
}

/// Every route of the API and who may call it. A route missing here is refused to everyone.
pub const RULES: &[Rule] = &[
    rule("GET", paths::HEALTHZ, Access::Public),
    rule("GET", paths::METRICS, Access::Staff),
    rule("POST", paths::ENROLL, Access::Enrollment),
    rule("POST", paths::ENROLLMENT_TOKENS, Access::Admin),
    rule("GET", paths::ENROLLMENT_TOKENS, Access::Admin),
    rule("POST", paths::ENROLLMENT_TOKEN_REVOKE, Access::Admin),
    rule("POST", paths::AGENT_TICKETS, Access::Agent),
    rule("GET", paths::AGENT_MACHINE, Access::Agent),
    rule("POST", paths::AGENT_RENEW, Access::Agent),
    rule("GET", paths::TICKETS, Access::Staff),
    rule("GET", "/api/v1/tickets/{n}", Access::Staff),
    rule("PATCH", "/api/v1/tickets/{n}", Access::Staff),
    rule("POST", "/api/v1/tickets/{n}/comments", Access::Staff),
    rule("GET", paths::TICKET_SCREENSHOT, Access::Staff),
    rule("GET", paths::MACHINES, Access::Staff),
    rule("GET", "/api/v1/machines/{id}", Access::Staff),
    rule("POST", "/api/v1/machines/{id}/revoke", Access::Admin),
    rule("POST", "/api/v1/machines/{id}/approve", Access::Admin),
    rule("POST", paths::AGENT_HEARTBEAT, Access::Agent),
    rule("GET", paths::AGENT_WORK, Access::Agent),
    rule("POST", paths::AGENT_WORK_RESULT, Access::Agent),
    rule("POST", paths::MACHINE_INSPECT, Access::Staff),
    rule("GET", paths::WORK, Access::Staff),
    rule("GET", paths::USERS, Access::Admin),
    rule("POST", paths::USERS, Access::Admin),
    rule("POST", "/api/v1/users/{name}/revoke", Access::Admin),
    rule("GET", paths::CATALOG, Access::Staff),
    rule("POST", paths::CATALOG, Access::Admin),
    rule("GET", paths::CATALOG_KEYS, Access::Staff),
    rule("POST", paths::CATALOG_KEYS, Access::Admin),
    rule("GET", paths::ACTIONS, Access::Staff),
    rule("PUT", paths::ACTION_APPROVAL, Access::Admin),
    rule("POST", paths::RUNS, Access::Staff),
    rule("GET", paths::RUNS, Access::Staff),
    rule("GET", paths::RUN, Access::Staff),
    rule("POST", paths::RUN_APPROVE, Access::Admin),
    rule("POST", paths::RUN_DENY, Access::Admin),
    rule("POST", paths::AGENT_WORK_PROGRESS, Access::Agent),
    rule("GET", paths::AUDIT, Access::Admin),
    rule("GET", paths::AUDIT_VERIFY, Access::Admin),
    rule("GET", paths::AGENT_TICKETS, Access::Agent),
    rule("GET", paths::OPENAPI, Access::Public),
    // Service levels and escalation (issue 9).
    rule("POST", paths::TICKET_ESCALATE, Access::Staff),
    // Satisfaction, webhooks and e-mail (issue 9).
    rule("POST", feedback::AGENT_TICKET_FEEDBACK, Access::Agent),
    rule("GET", integrations::DELIVERIES, Access::Admin),
    rule("POST", integrations::REDELIVER, Access::Admin),
    rule("PUT", integrations::USER_EMAIL, Access::Admin),
    // The web console (crate::web).
    rule("GET", console::LOGIN, Access::Public),
    rule("POST", console::LOGIN, Access::Public),
    rule("GET", console::STYLESHEET, Access::Public),
    rule("POST", console::LOGOUT, Access::Session),
    rule("GET", console::QUEUE, Access::Session),
    rule("GET", console::TICKET, Access::Session),
    rule("POST", console::TICKET_COMMENT, Access::Session),
    rule("POST", console::TICKET_UPDATE, Access::Session),
    rule("POST", console::TICKET_INSPECT, Access::Session),
    rule("POST", console::TICKET_RUN, Access::Session),
    rule("GET", console::RUN, Access::Session),
    rule("GET", console::MACHINES, Access::Session),
    rule("GET", console::MACHINE, Access::Session),
    rule("GET", console::APPROVALS, Access::SessionAdmin),
    rule("POST", console::APPROVE, Access::SessionAdmin),
    rule("POST", console::DENY, Access::SessionAdmin),
    rule("GET", console::USERS, Access::SessionAdmin),
    rule("POST", console::USERS, Access::SessionAdmin),
    rule("POST", console::USER_REVOKE, Access::SessionAdmin),
    rule("GET", console::ADMIN_MACHINES, Access::SessionAdmin),
    rule("POST", console::MACHINE_APPROVE, Access::SessionAdmin),
    rule("POST", console::MACHINE_REVOKE, Access::SessionAdmin),
    rule(
        "POST",
        console::ENROLLMENT_TOKEN_REVOKE,
        Access::SessionAdmin,
    ),
    rule("GET", console::CATALOG, Access::SessionAdmin),
    rule("GET", console::AUDIT, Access::SessionAdmin),
    // Service levels and escalation (issue 9).
    rule("POST", console::TICKET_ESCALATE, Access::Session),
    // Recurring problems, knowledge search and help-desk metrics (issue 9).
    rule("GET", reports::TICKET_SIMILAR, Access::Staff),
    rule("GET", reports::REPORTS_RECURRING, Access::Staff),
    rule("GET", reports::REPORTS_SUMMARY, Access::Staff),
    rule("GET", reports::KB, Access::Staff),
    rule("GET", console::REPORTS, Access::Session),
];

fn access_for(method: &Method, path: &str) -> Option<Access> {
    RULES
        .iter()
        .find(|r| r.method == method.as_str() && r.path == path)
        .map(|r| r.access)
}

/// An authenticated agent: the machine id its certificate was issued for.
#[derive(Debug, Clone)]
pub struct AgentIdentity {
    pub machine_id: String,
}

/// An authenticated technician or admin.
#[derive(Debug, Clone)]
pub struct StaffIdentity {
    pub name: String,
    pub role: Role,
}

/// A valid enrollment token, plus the machine the caller already is (re-enrollment).
#[derive(Debug, Clone)]
pub struct EnrollmentGrant {
    pub token_hash: TokenHash,
    pub existing_machine: Option<String>,
}

/// Middleware: authenticates the caller as the route's rule requires, or refuses.
pub async fn authorize(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(path) = matched.as_ref().map(|m| m.as_str().to_owned()) else {
        return ApiError::NotFound("no such route".to_owned()).into_response();
    };
    let Some(access) = access_for(request.method(), &path) else {
        tracing::error!(method = %request.method(), route = %path, "route has no access rule");
        return ApiError::Forbidden("no access rule for this route".to_owned()).into_response();
    };
    if access.is_session() {
        return crate::web::session::admit(&state, access, request, next).await;
    }
    let route = format!("{} {path}", request.method());
    let source = peer_address(&request);
    match admit(&state, access, &route, source, &mut request).await {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// The caller's IP address, when the server recorded it (`ConnectInfo`; absent in tests that
/// call the router directly).
pub(crate) fn peer_address(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

async fn admit(
    state: &AppState,
    access: Access,
    route: &str,
    source: Option<IpAddr>,
    request: &mut Request,
) -> Result<(), ApiError> {
    if access == Access::Public {
        return Ok(());
    }
    let bearer = match bearer_token(request) {
        Ok(bearer) => bearer,
        Err(error) => {
            audit_failure(
                state,
                route,
                AUTHORIZATION_HEADER,
                "malformed",
                None,
                source,
            )
            .await;
            return Err(error);
        }
    };
    let client_cert = request
        .extensions()
        .get::<Arc<TlsInfo>>()
        .and_then(|info| info.peer_certificates.first().cloned());
    match access {
        Access::Public => Ok(()),
        Access::Session | Access::SessionAdmin => Err(ApiError::Forbidden(
            "this console page needs a session: sign in at /login".to_owned(),
        )),
        Access::Staff | Access::Admin => {
            let Some(token) = bearer else {
                return Err(ApiError::Unauthorized(
                    "this route needs a technician or admin token (Authorization: Bearer ...)"
                        .to_owned(),
                ));
            };
            let staff = staff_identity(state, route, &token, source).await?;
            if access == Access::Admin && staff.role != Role::Admin {
                let event = audit::Event::new(&staff.name, "auth.forbidden")
                    .subject(format!("user:{}", staff.name))
                    .detail(json!({ "route": route, "role": staff.role, "needs": Role::Admin }));
                audit::record_refusal(state, USER_TOKEN, event, source).await;
                return Err(ApiError::Forbidden(format!(
                    "user {:?} is a {}; this needs an admin",
                    staff.name, staff.role
                )));
            }
            request.extensions_mut().insert(staff);
            Ok(())
        }
        Access::Agent => {
            if bearer.is_some() && client_cert.is_none() {
                return Err(ApiError::Forbidden(
                    "this route is for enrolled agents (client certificate), not bearer tokens"
                        .to_owned(),
                ));
            }
            let Some(der) = client_cert else {
                return Err(ApiError::Unauthorized(
                    "this route needs an enrolled agent's client certificate".to_owned(),
                ));
            };
            let machine_id = agent_identity(state, route, &der, source).await?;
            request
                .extensions_mut()
                .insert(AgentIdentity { machine_id });
            Ok(())
        }
        Access::Enrollment => {
            let Some(token) = bearer else {
                return Err(ApiError::Unauthorized(
                    "enrollment needs an enrollment token (Authorization: Bearer lle_...)"
                        .to_owned(),
                ));
            };
            if TokenKind::of(token.expose()) != Some(TokenKind::Enrollment) {
                audit_failure(
                    state,
                    route,
                    ENROLLMENT_TOKEN,
                    "not an enrollment token",
                    None,
                    source,
                )
                .await;
                return Err(ApiError::Unauthorized(
                    "unknown enrollment token".to_owned(),
                ));
            }
            let token_hash = TokenHash::of(&token);
            let checked = state
                .store
                .check_enrollment_token(&token_hash, state.clock.now())
                .await?;
            if let Err(refusal) = checked {
                let reason = refusal.to_string();
                audit_failure(state, route, ENROLLMENT_TOKEN, &reason, None, source).await;
                return Err(ApiError::Unauthorized(reason));
            }
            // Re-enrollment: a known certificate keeps its machine id (pending or active); an
            // unknown one (a collector that lost its data) simply enrolls a new machine.
            let existing_machine = match client_cert {
                Some(der) => {
                    let fingerprint = certificate_fingerprint(&der);
                    match state.store.machine_by_fingerprint(&fingerprint).await? {
                        Some(machine) if machine.status == MachineStatus::Revoked => {
                            audit_revoked_machine(state, route, &machine.id, source).await;
                            return Err(revoked(&machine.id));
                        }
                        Some(machine) => Some(machine.id),
                        None => None,
                    }
                }
                None => None,
            };
            request.extensions_mut().insert(EnrollmentGrant {
                token_hash,
                existing_machine,
            });
            Ok(())
        }
    }
}

fn bearer_token(request: &Request) -> Result<Option<Secret>, ApiError> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header".to_owned()))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(Secret::new(token.trim())))
        }
        _ => Err(ApiError::Unauthorized(
            "malformed Authorization header: expected \"Bearer TOKEN\"".to_owned(),
        )),
    }
}

pub(crate) async fn staff_identity(
    state: &AppState,
    route: &str,
    token: &Secret,
    source: Option<IpAddr>,
) -> Result<StaffIdentity, ApiError> {
    const REFUSED: &str = "unknown or revoked token";
    if TokenKind::of(token.expose()) != Some(TokenKind::User) {
        audit_failure(state, route, USER_TOKEN, "not a user token", None, source).await;
        return Err(ApiError::Unauthorized(REFUSED.to_owned()));
    }
    let hash = TokenHash::of(token);
    let user = state.store.user_by_token(&hash).await?;
    match user {
        Some(user) if user.token_hash.matches(&hash) && !user.revoked => Ok(StaffIdentity {
            name: user.name,
            role: user.role,
        }),
        Some(user) if user.token_hash.matches(&hash) => {
            let subject = Some(format!("user:{}", user.name));
            audit_failure(state, route, USER_TOKEN, "revoked token", subject, source).await;
            Err(ApiError::Unauthorized(REFUSED.to_owned()))
        }
        _ => {
            audit_failure(state, route, USER_TOKEN, "unknown token", None, source).await;
            Err(ApiError::Unauthorized(REFUSED.to_owned()))
        }
    }
}

/// What a refused caller presented, as audited and counted.
const USER_TOKEN: &str = "user token";
const ENROLLMENT_TOKEN: &str = "enrollment token";
const CLIENT_CERTIFICATE: &str = "client certificate";
const AUTHORIZATION_HEADER: &str = "authorization header";

/// Audits a refused credential as `auth.failure` by `anonymous`: which kind of credential, why,
/// and the route. Never the token or its hash.
async fn audit_failure(
    state: &AppState,
    route: &str,
    credential: &'static str,
    reason: &str,
    subject: Option<String>,
    source: Option<IpAddr>,
) {
    let mut event = audit::Event::new(audit::ANONYMOUS, "auth.failure").detail(json!({
        "credential": credential,
        "reason": reason,
        "route": route,
    }));
    if let Some(subject) = subject {
        event = event.subject(subject);
    }
    audit::record_refusal(state, credential, event, source).await;
}

async fn audit_revoked_machine(
    state: &AppState,
    route: &str,
    machine_id: &str,
    source: Option<IpAddr>,
) {
    let subject = Some(audit::machine_actor(machine_id));
    audit_failure(
        state,
        route,
        CLIENT_CERTIFICATE,
        "machine revoked",
        subject,
        source,
    )
    .await;
}

fn revoked(machine_id: &str) -> ApiError {
    ApiError::Forbidden(format!(
        "machine {machine_id} has been revoked by an administrator"
    ))
}

async fn agent_identity(
    state: &AppState,
    route: &str,
    der: &[u8],
    source: Option<IpAddr>,
) -> Result<String, ApiError> {
    let fingerprint = certificate_fingerprint(der);
    match state.store.machine_by_fingerprint(&fingerprint).await? {
        Some(machine) if machine.status == MachineStatus::Revoked => {
            audit_revoked_machine(state, route, &machine.id, source).await;
            Err(revoked(&machine.id))
        }
        Some(machine) if machine.status == MachineStatus::Pending => {
            let subject = Some(audit::machine_actor(&machine.id));
            audit_failure(
                state,
                route,
                CLIENT_CERTIFICATE,
                "machine waiting for approval",
                subject,
                source,
            )
            .await;
            Err(ApiError::Forbidden(format!(
                "machine {} is waiting for an administrator's approval",
                machine.id
            )))
        }
        Some(machine) => {
            state
                .store
                .touch_machine(&machine.id, state.clock.now())
                .await?;
            Ok(machine.id)
        }
        None => {
            // A certificate our CA signed (the handshake checked that) but no longer current.
            let event = audit::Event::new(audit::ANONYMOUS, "auth.failure").detail(json!({
                "credential": CLIENT_CERTIFICATE,
                "reason": "certificate not registered",
                "route": route,
                "fingerprint": fingerprint,
            }));
            audit::record_refusal(state, CLIENT_CERTIFICATE, event, source).await;
            Err(ApiError::Unauthorized(
                "client certificate is not registered (replaced by a newer enrollment?): enroll \
                 again"
                    .to_owned(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_is_unique() {
        for (i, a) in RULES.iter().enumerate() {
            for b in &RULES[i + 1..] {
                assert!(!(a.method == b.method && a.path == b.path), "{a:?} twice");
            }
        }
    }

    #[test]
    fn unknown_routes_have_no_access() {
        assert_eq!(access_for(&Method::DELETE, paths::TICKETS), None);
        assert_eq!(access_for(&Method::GET, "/api/v1/secret"), None);
        assert_eq!(
            access_for(&Method::GET, paths::HEALTHZ),
            Some(Access::Public)
        );
    }
}

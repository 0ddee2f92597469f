//! Enrollment: an enrollment token plus a CSR in, a client certificate out; and the tokens
//! themselves (create, list, revoke; admins only).
//!
//! The agent generated its key pair itself; we sign only the public key. A machine that presents
//! its current client certificate while enrolling keeps its id (re-enrollment replaces the
//! certificate); anyone else becomes a new machine with a fresh random id.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Extension, Json, Router};
use lifeline_shared::v1::api::{
    EnrollRequest, EnrollResponse, EnrollmentTokenCreated, EnrollmentTokenInfo, MachineStatus,
    NewEnrollmentToken, RenewRequest, paths,
};
use lifeline_shared::v1::catalog::is_forbidden_char;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use super::AppState;
use super::auth::{AgentIdentity, EnrollmentGrant, StaffIdentity};
use super::body::{BodyLimits, read_json};
use super::error::ApiError;
use crate::audit::{self, Event, machine_actor};
use crate::secret::{TokenHash, TokenKind, generate_token, hex, random_bytes, token_prefix};
use crate::store::{Enrollment, EnrollmentTokenRecord};

/// Whether new machines may file tickets right after enrolling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnrollmentMode {
    /// A valid enrollment token is enough.
    #[default]
    Open,
    /// New machines wait until an admin runs `machines approve`.
    Approve,
}

/// Longest host name we record, in characters.
pub(crate) const HOSTNAME_MAX_LEN: usize = 253;
/// Longest life of an enrollment token: ten years.
pub(crate) const TOKEN_TTL_MAX_SECS: u64 = 10 * 365 * 86_400;

/// The host name an agent enrolls with, trimmed, or why it is refused: empty, too long, or
/// holding a character that makes it display differently from what it is. Admins approve, revoke
/// and run actions on machines by this name, so a name with a right-to-left override (displayed
/// reversed) or `db\u{200B}01` (displayed as `db01`, yet another name) must never reach them.
pub fn check_hostname(sent: &str) -> Result<&str, String> {
    // Checked as sent (the limits the OpenAPI document states), stored trimmed. The characters
    // refused are the ones the signed catalog refuses in names and values, for the same reason.
    let hostname = sent.trim();
    if hostname.is_empty() || sent.chars().count() > HOSTNAME_MAX_LEN {
        return Err(format!(
            "hostname must be 1 to {HOSTNAME_MAX_LEN} characters long"
        ));
    }
    match hostname.char_indices().find(|&(_, c)| is_forbidden_char(c)) {
        Some((at, c)) => Err(format!(
            "hostname contains the control or invisible character U+{:04X} at byte {at}; \
             host names must display as what they are",
            u32::from(c)
        )),
        None => Ok(hostname),
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::ENROLL, post(enroll))
        .route(
            paths::ENROLLMENT_TOKENS,
            post(create_enrollment_token).get(list_enrollment_tokens),
        )
        .route(
            paths::ENROLLMENT_TOKEN_REVOKE,
            post(revoke_enrollment_token),
        )
        .route(paths::AGENT_RENEW, post(renew))
}

async fn enroll(
    State(state): State<AppState>,
    Extension(grant): Extension<EnrollmentGrant>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<EnrollResponse>, ApiError> {
    let request: EnrollRequest = read_json(&headers, body, BodyLimits::SMALL).await?;
    let hostname = check_hostname(&request.hostname).map_err(ApiError::BadRequest)?;
    let reenrolled = grant.existing_machine.is_some();
    let machine_id = match grant.existing_machine {
        Some(id) => id,
        None => format!(
            "m-{}",
            hex(&random_bytes::<8>().map_err(ApiError::internal)?)
        ),
    };
    let now = state.clock.now();
    let issued = state
        .ca
        .sign_client_csr(&request.csr_pem, &machine_id, now)?;
    let status = state
        .store
        .enroll(
            &grant.token_hash,
            &Enrollment {
                machine_id: machine_id.clone(),
                hostname: hostname.to_owned(),
                cert_fingerprint: issued.fingerprint.clone(),
                cert_not_after: issued.not_after,
                initial_status: match state.enrollment {
                    EnrollmentMode::Open => MachineStatus::Active,
                    EnrollmentMode::Approve => MachineStatus::Pending,
                },
            },
            now,
        )
        .await?;
    tracing::info!(machine = %machine_id, reenrolled, %status, "machine enrolled");
    let action = if reenrolled {
        "machine.reenroll"
    } else {
        "machine.enroll"
    };
    let event = Event::new(machine_actor(&machine_id), action)
        .subject(machine_actor(&machine_id))
        .detail(json!({
            "hostname": hostname,
            "status": status,
            "certificate": issued.fingerprint,
            "not_after": rfc3339(issued.not_after),
        }));
    audit::record(&state, event).await?;
    if !reenrolled {
        metrics::counter!("lifeline_machines_enrolled_total").increment(1);
    }
    let active = state.store.count_active_machines().await?;
    metrics::gauge!("lifeline_machines_active").set(active as f64);
    Ok(Json(EnrollResponse {
        machine_id,
        certificate_pem: issued.cert_pem,
        not_after: issued.not_after,
        reenrolled,
        status,
        catalog_keys: super::actions::trusted_keys(&state).await?,
    }))
}

/// A new certificate for an enrolled agent's new key; the agent proves who it is with the
/// certificate it replaces.
async fn renew(
    State(state): State<AppState>,
    Extension(agent): Extension<AgentIdentity>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<EnrollResponse>, ApiError> {
    let request: RenewRequest = read_json(&headers, body, BodyLimits::SMALL).await?;
    let now = state.clock.now();
    let issued = state
        .ca
        .sign_client_csr(&request.csr_pem, &agent.machine_id, now)?;
    if !state
        .store
        .renew_certificate(
            &agent.machine_id,
            &issued.fingerprint,
            issued.not_after,
            now,
        )
        .await?
    {
        return Err(ApiError::Forbidden(format!(
            "machine {} is not active",
            agent.machine_id
        )));
    }
    tracing::info!(machine = %agent.machine_id, not_after = %issued.not_after, "certificate renewed");
    let event = Event::new(machine_actor(&agent.machine_id), "machine.renew")
        .subject(machine_actor(&agent.machine_id))
        .detail(json!({
            "certificate": issued.fingerprint,
            "not_after": rfc3339(issued.not_after),
        }));
    audit::record(&state, event).await?;
    Ok(Json(EnrollResponse {
        machine_id: agent.machine_id,
        certificate_pem: issued.cert_pem,
        not_after: issued.not_after,
        reenrolled: true,
        status: MachineStatus::Active,
        catalog_keys: super::actions::trusted_keys(&state).await?,
    }))
}

/// A time as audit details show it.
fn rfc3339(at: OffsetDateTime) -> Option<String> {
    at.format(&Rfc3339).ok()
}

async fn create_enrollment_token(
    State(state): State<AppState>,
    Extension(admin): Extension<StaffIdentity>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<EnrollmentTokenCreated>, ApiError> {
    let request: NewEnrollmentToken = read_json(&headers, body, BodyLimits::SMALL).await?;
    if request.max_uses == Some(0) {
        return Err(ApiError::BadRequest(
            "max_uses must be at least 1".to_owned(),
        ));
    }
    let now = state.clock.now();
    let expires_at = match request.expires_in_secs {
        Some(secs) => {
            let secs = Some(secs)
                .filter(|s| (1..=TOKEN_TTL_MAX_SECS).contains(s))
                .and_then(|s| i64::try_from(s).ok())
                .ok_or_else(|| {
                    ApiError::BadRequest(
                        "expires_in_secs must be between 1 and ten years".to_owned(),
                    )
                })?;
            Some(now + Duration::seconds(secs))
        }
        None => None,
    };
    let token = generate_token(TokenKind::Enrollment).map_err(ApiError::internal)?;
    let record = EnrollmentTokenRecord {
        token_hash: TokenHash::of(&token),
        prefix: token_prefix(&token),
        created_by: admin.name.clone(),
        expires_at,
        max_uses: request.max_uses,
    };
    state.store.add_enrollment_token(&record, now).await?;
    tracing::info!(by = %admin.name, prefix = %record.prefix, ?expires_at, max_uses = ?request.max_uses, "enrollment token created");
    audit::record(
        &state,
        audit::enrollment_token_created(&admin.name, &record, false),
    )
    .await?;
    Ok(Json(EnrollmentTokenCreated {
        token: token.expose().to_owned(),
        prefix: record.prefix,
        expires_at,
        max_uses: request.max_uses,
    }))
}

async fn list_enrollment_tokens(
    State(state): State<AppState>,
) -> Result<Json<Vec<EnrollmentTokenInfo>>, ApiError> {
    Ok(Json(state.store.list_enrollment_tokens().await?))
}

/// Revokes the token named by its prefix (or its id): it enrolls nobody from now on. Machines
/// it enrolled stay enrolled (revoke those with `machines revoke`).
pub(crate) async fn revoke_enrollment_token(
    State(state): State<AppState>,
    Extension(admin): Extension<StaffIdentity>,
    Path(name): Path<String>,
) -> Result<Json<Vec<EnrollmentTokenInfo>>, ApiError> {
    let tokens = state.store.list_enrollment_tokens().await?;
    let matching: Vec<&EnrollmentTokenInfo> = tokens
        .iter()
        .filter(|t| t.prefix.as_deref() == Some(name.as_str()) || t.id.to_string() == name)
        .collect();
    let token = match matching.as_slice() {
        [] => {
            return Err(ApiError::NotFound(format!(
                "no enrollment token {name:?}: name it by the prefix (or id) that \
                 `enrollment-tokens list` shows"
            )));
        }
        [one] => *one,
        many => {
            return Err(ApiError::Conflict(format!(
                "{} enrollment tokens start with {name:?} (ids {}): revoke by id",
                many.len(),
                many.iter()
                    .map(|t| t.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };
    let label = token.prefix.clone().unwrap_or_else(|| token.id.to_string());
    if !state
        .store
        .revoke_enrollment_token(token.id, state.clock.now())
        .await?
    {
        return Err(ApiError::Conflict(format!(
            "enrollment token {label} is already revoked"
        )));
    }
    tracing::info!(by = %admin.name, token = %label, "enrollment token revoked");
    let event = Event::new(&admin.name, "enrollment_token.revoke")
        .subject(format!("enrollment_token:{label}"))
        .detail(json!({ "id": token.id, "uses": token.uses }));
    audit::record(&state, event).await?;
    Ok(Json(state.store.list_enrollment_tokens().await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_with_bidi_or_invisible_characters_are_refused() {
        assert_eq!(check_hostname("  ws-042.example  "), Ok("ws-042.example"));
        assert_eq!(
            check_hostname("poste-comptabilité"),
            Ok("poste-comptabilité")
        );
        assert!(check_hostname("").is_err());
        assert!(check_hostname(&"a".repeat(254)).is_err());
        for hidden in [
            "web\u{202E}moc.live",
            "db\u{200B}01",
            "db\u{200C}01",
            "db\u{200D}01",
            "ws\u{2066}01\u{2069}",
            "ws\u{200F}01",
            "ws\u{061C}01",
            "ws\u{2060}01",
            "\u{FEFF}ws01",
            "ws\u{00AD}01",
            "ws\u{FE0F}01",
            "ws\u{E0041}01",
            "ws\u{3164}01",
            "ws\n01",
            "ws\u{1B}[31m01",
        ] {
            let refused = check_hostname(hidden).expect_err(hidden);
            assert!(refused.contains("invisible character U+"), "{refused}");
        }
    }
}

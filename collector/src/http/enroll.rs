//! Enrollment: an enrollment token plus a CSR in, a client certificate out.
//!
//! The agent generated its key pair itself; we sign only the public key. A machine that presents
//! its current client certificate while enrolling keeps its id (re-enrollment replaces the
//! certificate); anyone else becomes a new machine with a fresh random id.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Extension, Json, Router};
use lifeline_shared::v1::api::{
    EnrollRequest, EnrollResponse, EnrollmentTokenCreated, MachineStatus, NewEnrollmentToken,
    RenewRequest, paths,
};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use super::AppState;
use super::auth::{AgentIdentity, EnrollmentGrant, StaffIdentity};
use super::body::{BodyLimits, read_json};
use super::error::ApiError;
use crate::audit::{self, Event, machine_actor};
use crate::secret::{TokenHash, TokenKind, generate_token, hex, random_bytes};
use crate::store::Enrollment;

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

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::ENROLL, post(enroll))
        .route(paths::ENROLLMENT_TOKENS, post(create_enrollment_token))
        .route(paths::AGENT_RENEW, post(renew))
}

async fn enroll(
    State(state): State<AppState>,
    Extension(grant): Extension<EnrollmentGrant>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<EnrollResponse>, ApiError> {
    let request: EnrollRequest = read_json(&headers, body, BodyLimits::SMALL).await?;
    // Checked as sent (the limits the OpenAPI document states), stored trimmed.
    let hostname = request.hostname.trim();
    if hostname.is_empty()
        || request.hostname.chars().count() > HOSTNAME_MAX_LEN
        || request.hostname.chars().any(char::is_control)
    {
        return Err(ApiError::BadRequest(format!(
            "hostname must be 1 to {HOSTNAME_MAX_LEN} printable characters"
        )));
    }
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
    state
        .store
        .add_enrollment_token(&TokenHash::of(&token), expires_at, request.max_uses, now)
        .await?;
    tracing::info!(by = %admin.name, ?expires_at, max_uses = ?request.max_uses, "enrollment token created");
    let event = Event::new(&admin.name, "enrollment_token.create").detail(json!({
        "expires_at": expires_at.map(rfc3339),
        "max_uses": request.max_uses,
    }));
    audit::record(&state, event).await?;
    Ok(Json(EnrollmentTokenCreated {
        token: token.expose().to_owned(),
        expires_at,
        max_uses: request.max_uses,
    }))
}

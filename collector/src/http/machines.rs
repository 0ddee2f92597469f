//! Machines: the list and detail technicians see, an agent's view of itself, revocation.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use lifeline_shared::v1::api::{MachineDetail, MachineStatus, MachineSummary, VitalsSample, paths};
use lifeline_shared::v1::vitals::Vitals;
use serde_json::json;

use super::AppState;
use super::auth::{AgentIdentity, StaffIdentity};
use super::error::ApiError;
use super::extract::Path;
use super::work::is_online;
use crate::audit::{self, Event, machine_actor};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::AGENT_MACHINE, get(own_machine))
        .route(paths::MACHINES, get(list_machines))
        .route("/api/v1/machines/{id}", get(show_machine))
        .route("/api/v1/machines/{id}/revoke", post(revoke_machine))
        .route("/api/v1/machines/{id}/approve", post(approve_machine))
}

async fn own_machine(
    State(state): State<AppState>,
    Extension(agent): Extension<AgentIdentity>,
) -> Result<Json<MachineDetail>, ApiError> {
    find(&state, &agent.machine_id).await
}

async fn list_machines(
    State(state): State<AppState>,
) -> Result<Json<Vec<MachineSummary>>, ApiError> {
    let now = state.clock.now();
    let mut machines = state.store.list_machines().await?;
    for m in &mut machines {
        m.online = is_online(m.last_seen_at, now);
    }
    Ok(Json(machines))
}

/// Vitals rows returned with a machine's detail.
const VITALS_SHOWN: u32 = 60;

/// Adds what depends on "now" and the heartbeat history to a machine's detail.
pub(crate) async fn with_live_state(
    state: &AppState,
    mut machine: MachineDetail,
) -> Result<MachineDetail, ApiError> {
    machine.summary.online = is_online(machine.summary.last_seen_at, state.clock.now());
    let rows = state
        .store
        .vitals(&machine.summary.id, VITALS_SHOWN)
        .await?;
    let mut samples = Vec::with_capacity(rows.len());
    for (received_at, json) in rows {
        match serde_json::from_str::<Vitals>(&json) {
            Ok(vitals) => samples.push(VitalsSample {
                received_at,
                vitals,
            }),
            Err(e) => {
                tracing::warn!(machine = %machine.summary.id, error = %e, "unreadable vitals row")
            }
        }
    }
    machine.last_vitals = samples.first().map(|s| s.vitals.clone());
    machine.recent_vitals = samples;
    Ok(machine)
}

/// A machine by id, or by host name when exactly one machine has it.
pub async fn find(state: &AppState, key: &str) -> Result<Json<MachineDetail>, ApiError> {
    if let Some(machine) = state.store.machine(key, state.clock.now()).await? {
        return Ok(Json(machine));
    }
    let by_name: Vec<_> = state
        .store
        .list_machines()
        .await?
        .into_iter()
        .filter(|m| m.hostname == key)
        .collect();
    match by_name.as_slice() {
        [one] => state
            .store
            .machine(&one.id, state.clock.now())
            .await?
            .map(Json)
            .ok_or_else(|| ApiError::NotFound(format!("no machine {key:?}"))),
        [] => Err(ApiError::NotFound(format!("no machine {key:?}"))),
        // Never guess which one an admin meant: name them all, to be picked by id.
        many => Err(ApiError::Conflict(format!(
            "{} machines are named {key:?}: {}; use the machine id",
            many.len(),
            many.iter()
                .map(|m| format!("{} ({})", m.id, m.status))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

async fn show_machine(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<MachineDetail>, ApiError> {
    let Json(machine) = find(&state, &id).await?;
    Ok(Json(with_live_state(&state, machine).await?))
}

pub(crate) async fn approve_machine(
    State(state): State<AppState>,
    Extension(admin): Extension<StaffIdentity>,
    Path(id): Path<String>,
) -> Result<Json<MachineDetail>, ApiError> {
    let Json(machine) = find(&state, &id).await?;
    let id = machine.summary.id;
    match state.store.approve_machine(&id).await? {
        None => return Err(ApiError::NotFound(format!("no machine {id:?}"))),
        Some(MachineStatus::Revoked) => {
            return Err(ApiError::Conflict(format!(
                "machine {id} is revoked; it must enroll again"
            )));
        }
        Some(MachineStatus::Active) => {}
        Some(MachineStatus::Pending) => {
            tracing::info!(by = %admin.name, machine = %id, "machine approved");
            let event = Event::new(&admin.name, "machine.approve").subject(machine_actor(&id));
            audit::record(&state, event).await?;
        }
    }
    let active = state.store.count_active_machines().await?;
    metrics::gauge!("lifeline_machines_active").set(active as f64);
    find(&state, &id).await
}

pub(crate) async fn revoke_machine(
    State(state): State<AppState>,
    Extension(admin): Extension<StaffIdentity>,
    Path(id): Path<String>,
) -> Result<Json<MachineDetail>, ApiError> {
    let Json(machine) = find(&state, &id).await?;
    let id = machine.summary.id;
    state.store.revoke_machine(&id, state.clock.now()).await?;
    tracing::info!(by = %admin.name, machine = %id, "machine revoked");
    let event = Event::new(&admin.name, "machine.revoke")
        .subject(machine_actor(&id))
        .detail(json!({ "previous_status": machine.summary.status }));
    audit::record(&state, event).await?;
    let active = state.store.count_active_machines().await?;
    metrics::gauge!("lifeline_machines_active").set(active as f64);
    find(&state, &id).await
}

//! `GET /api/v1/agent/tickets`: an agent reads its own machine's tickets for its end user.
//!
//! The machine is the caller's client certificate (`AgentIdentity`), never a parameter, so an
//! agent sees only its own tickets. Only what the end user may see is returned: number,
//! description, status and the technicians' public replies; internal comments, findings and
//! snapshots stay with the help desk.

use axum::extract::State;
use axum::routing::get;
use axum::{Extension, Json, Router};
use lifeline_shared::v1::api::{MACHINE_TICKETS_LIMIT, MachineTicket, paths};

use super::AppState;
use super::auth::AgentIdentity;
use super::error::ApiError;

pub fn routes() -> Router<AppState> {
    Router::new().route(paths::AGENT_TICKETS, get(own_tickets))
}

async fn own_tickets(
    State(state): State<AppState>,
    Extension(agent): Extension<AgentIdentity>,
) -> Result<Json<Vec<MachineTicket>>, ApiError> {
    let tickets = state
        .store
        .machine_tickets(&agent.machine_id, MACHINE_TICKETS_LIMIT)
        .await?;
    Ok(Json(tickets))
}

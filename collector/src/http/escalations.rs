//! `POST /api/v1/tickets/{n}/escalate`: a technician moves a ticket up a tier, with a reason
//! that goes to its timeline and the audit log. Upward only; resolved and closed tickets are
//! reopened instead. Without an assignee the ticket waits in the new tier's queue.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Extension, Json, Router};
use lifeline_shared::v1::api::{TicketDetail, paths};
use lifeline_shared::v1::sla::{ESCALATION_REASON_MAX_LEN, EscalateRequest};
use serde_json::json;

use super::AppState;
use super::auth::StaffIdentity;
use super::body::{BodyLimits, read_json};
use super::error::ApiError;
use super::extract::Path;
use super::tickets::{check_assignee, ticket_detail};
use crate::audit::{self, Event};
use crate::store::{EscalateOutcome, Escalation};

pub fn routes() -> Router<AppState> {
    Router::new().route(paths::TICKET_ESCALATE, post(escalate))
}

/// The reason as sent (the limits the OpenAPI document states), then trimmed.
fn check_reason(reason: &str) -> Result<String, ApiError> {
    if reason.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "an escalation needs a reason (--reason TEXT): it goes to the ticket's timeline"
                .to_owned(),
        ));
    }
    let length = reason.chars().count();
    if length > ESCALATION_REASON_MAX_LEN {
        return Err(ApiError::BadRequest(format!(
            "reason is {length} characters long; at most {ESCALATION_REASON_MAX_LEN} are allowed"
        )));
    }
    if reason
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ApiError::BadRequest(
            "reason contains control characters".to_owned(),
        ));
    }
    Ok(reason.trim().to_owned())
}

pub(crate) async fn escalate(
    State(state): State<AppState>,
    Extension(staff): Extension<StaffIdentity>,
    Path(n): Path<u64>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TicketDetail>, ApiError> {
    let request: EscalateRequest = read_json(&headers, body, BodyLimits::SMALL).await?;
    let reason = check_reason(&request.reason)?;
    let assignee = request
        .assignee
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty());
    if let Some(name) = &assignee {
        check_assignee(&state, name).await?;
    }
    let escalation = Escalation {
        to_tier: request.to_tier,
        by: staff.name.clone(),
        reason,
        assignee,
    };
    let outcome = state
        .store
        .escalate_ticket(n, &escalation, state.clock.now())
        .await?;
    let from = match outcome {
        EscalateOutcome::Escalated { from } => from,
        EscalateOutcome::NotFound => return Err(ApiError::NotFound(format!("no ticket #{n}"))),
        EscalateOutcome::NotHigher { current } => {
            return Err(ApiError::Conflict(format!(
                "ticket #{n} is at tier {current}; escalation only moves a ticket up (to move \
                 it down, use: tickets update {n} --tier {})",
                escalation.to_tier
            )));
        }
        EscalateOutcome::Finished { status } => {
            return Err(ApiError::Conflict(format!(
                "ticket #{n} is {status}; reopen it (tickets update {n} --status open) before \
                 escalating"
            )));
        }
    };
    tracing::info!(by = %staff.name, number = n, from = from.get(), to = escalation.to_tier.get(), "ticket escalated");
    let event = Event::new(&staff.name, "ticket.escalate")
        .subject(format!("ticket:{n}"))
        .detail(json!({
            "from_tier": from,
            "to_tier": escalation.to_tier,
            "reason": escalation.reason,
            "assignee": escalation.assignee,
        }));
    audit::record(&state, event).await?;
    ticket_detail(&state, n).await
}

//! Tickets: agents file them (with a snapshot), technicians list, read, update and comment.
//!
//! Ingest answers only after the ticket and its snapshot are committed. Findings are computed
//! here from the snapshot's sections with the shared rules; the agent's own findings list is not
//! trusted. The idempotency key is scoped to the machine, so a retry returns the same number.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use lifeline_shared::findings;
use lifeline_shared::v1::api::{
    COMMENT_MAX_LEN, DESCRIPTION_MAX_LEN, IDEMPOTENCY_KEY_HEADER, IDEMPOTENCY_KEY_MAX_LEN,
    NewComment, NewTicket, TicketCreated, TicketDetail, TicketFilter, TicketSummary, TicketUpdate,
    decode_screenshot, paths,
};

use super::AppState;
use super::auth::{AgentIdentity, StaffIdentity};
use super::body::{BodyLimits, read_json};
use super::error::ApiError;
use super::extract::{Path, Query};
use crate::store::TicketRecord;

/// Longest OS user name we record, in characters.
pub(crate) const OS_USER_MAX_LEN: usize = 256;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::AGENT_TICKETS, post(file_ticket))
        .route(paths::TICKETS, get(list_tickets))
        .route("/api/v1/tickets/{n}", get(show_ticket).patch(update_ticket))
        .route("/api/v1/tickets/{n}/comments", post(add_comment))
        .route(paths::TICKET_SCREENSHOT, get(ticket_screenshot))
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let value = headers
        .get(IDEMPOTENCY_KEY_HEADER)
        .ok_or_else(|| ApiError::BadRequest(format!("missing {IDEMPOTENCY_KEY_HEADER} header")))?;
    let key = value
        .to_str()
        .ok()
        .filter(|k| {
            !k.is_empty()
                && k.len() <= IDEMPOTENCY_KEY_MAX_LEN
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{IDEMPOTENCY_KEY_HEADER} must be 1 to {IDEMPOTENCY_KEY_MAX_LEN} characters of \
                 letters, digits, '-' and '_'"
            ))
        })?;
    Ok(key.to_owned())
}

fn check_text(what: &str, text: &str, max: usize) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::BadRequest(format!("{what} must not be empty")));
    }
    // Characters, as the OpenAPI document's maxLength counts them.
    let length = text.chars().count();
    if length > max {
        return Err(ApiError::BadRequest(format!(
            "{what} is {length} characters; the limit is {max}"
        )));
    }
    Ok(())
}

async fn file_ticket(
    State(state): State<AppState>,
    Extension(agent): Extension<AgentIdentity>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TicketCreated>, ApiError> {
    let key = idempotency_key(&headers)?;
    let ticket: NewTicket = read_json(&headers, body, BodyLimits::TICKET).await?;
    check_text("description", &ticket.description, DESCRIPTION_MAX_LEN)?;
    if let Some(user) = ticket
        .os_user
        .as_ref()
        .filter(|u| u.chars().count() > OS_USER_MAX_LEN)
    {
        return Err(ApiError::BadRequest(format!(
            "os_user is {} characters; the limit is {OS_USER_MAX_LEN}",
            user.chars().count()
        )));
    }
    let computed = ticket
        .snapshot
        .as_ref()
        .map(findings::evaluate)
        .unwrap_or_default();
    let screenshot_png = ticket
        .screenshot_png
        .as_deref()
        .map(decode_screenshot)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let worst = computed.iter().map(|f| f.severity).max();
    let snapshot_json = ticket
        .snapshot
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(ApiError::internal)?;
    let record = TicketRecord {
        machine_id: agent.machine_id.clone(),
        idempotency_key: key,
        description: ticket.description.trim().to_owned(),
        urgency: ticket.urgency,
        os_user: ticket.os_user,
        findings: computed,
        worst_finding: worst,
        snapshot_json,
        screenshot_png,
    };
    let recorded = state
        .store
        .record_ticket(&record, state.clock.now())
        .await?;
    if recorded.created {
        metrics::counter!("lifeline_tickets_received_total").increment(1);
        tracing::info!(machine = %agent.machine_id, number = recorded.number, "ticket filed");
        // Issue 9: webhooks.
        let actor = crate::audit::machine_actor(&agent.machine_id);
        crate::integrations::ticket_created(&state, recorded.number, &actor).await;
    } else {
        tracing::info!(machine = %agent.machine_id, number = recorded.number, "ticket retry answered");
    }
    Ok(Json(TicketCreated {
        number: recorded.number,
        created: recorded.created,
    }))
}

async fn list_tickets(
    State(state): State<AppState>,
    Query(filter): Query<TicketFilter>,
) -> Result<Json<Vec<TicketSummary>>, ApiError> {
    Ok(Json(
        state.store.list_tickets(&filter, state.clock.now()).await?,
    ))
}

/// Ticket `n` as technicians see it, or 404.
pub(crate) async fn ticket_detail(
    state: &AppState,
    n: u64,
) -> Result<Json<TicketDetail>, ApiError> {
    state
        .store
        .ticket(n, state.clock.now())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no ticket #{n}")))
}

async fn show_ticket(
    State(state): State<AppState>,
    Path(n): Path<u64>,
) -> Result<Json<TicketDetail>, ApiError> {
    ticket_detail(&state, n).await
}

pub(crate) async fn update_ticket(
    State(state): State<AppState>,
    Extension(staff): Extension<StaffIdentity>,
    Path(n): Path<u64>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TicketDetail>, ApiError> {
    let update: TicketUpdate = read_json(&headers, body, BodyLimits::SMALL).await?;
    if update.is_empty() {
        return Err(ApiError::BadRequest(
            "nothing to update: give status, priority, tier, assignee or resolution_note"
                .to_owned(),
        ));
    }
    // Recurring problems and knowledge (issue 9): a note goes with resolving the ticket.
    let note = super::reports::resolution_note(&state, n, &update).await?;
    if let Some(assignee) = update.assignee.as_deref().filter(|a| !a.is_empty()) {
        check_assignee(&state, assignee).await?;
    }
    // Issue 9: how it was, for the webhooks and the assignee's e-mail.
    let before = state
        .store
        .ticket(n, state.clock.now())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no ticket #{n}")))?;
    state
        .store
        .update_ticket(n, &update, &staff.name, state.clock.now())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no ticket #{n}")))?;
    if let Some(note) = &note
        && !state
            .store
            .set_resolution_note(n, &staff.name, note, state.clock.now())
            .await?
    {
        return Err(ApiError::NotFound(format!("no ticket #{n}")));
    }
    tracing::info!(by = %staff.name, number = n, ?update, "ticket updated");
    crate::integrations::ticket_updated(&state, &before, &update, &staff.name).await;
    ticket_detail(&state, n).await
}

/// A ticket may only be assigned to an existing user who is not revoked; anyone else is 404.
pub(crate) async fn check_assignee(state: &AppState, assignee: &str) -> Result<(), ApiError> {
    let users = state.store.list_users().await?;
    if users
        .iter()
        .any(|u| u.name == assignee && u.revoked_at.is_none())
    {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!(
            "cannot assign to {assignee:?}: no such active user"
        )))
    }
}

pub(crate) async fn add_comment(
    State(state): State<AppState>,
    Extension(staff): Extension<StaffIdentity>,
    Path(n): Path<u64>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TicketDetail>, ApiError> {
    let comment: NewComment = read_json(&headers, body, BodyLimits::SMALL).await?;
    check_text("comment", &comment.body, COMMENT_MAX_LEN)?;
    let added = if comment.public {
        state
            .store
            .add_public_comment(n, &staff.name, &comment.body, state.clock.now())
            .await?
    } else {
        state
            .store
            .add_comment(n, &staff.name, &comment.body, state.clock.now())
            .await?
    };
    if !added {
        return Err(ApiError::NotFound(format!("no ticket #{n}")));
    }
    // Issue 9: webhooks.
    let added = lifeline_shared::v1::api::Comment {
        author: staff.name.clone(),
        body: comment.body,
        created_at: state.clock.now(),
        public: comment.public,
    };
    crate::integrations::comment_added(&state, n, added).await;
    ticket_detail(&state, n).await
}

/// `GET /api/v1/tickets/{n}/screenshot`: the PNG the user attached, as a download. The image
/// comes from an agent, so it is never to be sniffed or rendered as anything but a PNG file.
async fn ticket_screenshot(
    State(state): State<AppState>,
    Path(n): Path<u64>,
) -> Result<axum::response::Response, ApiError> {
    use axum::http::header;
    use axum::response::IntoResponse as _;
    let png = state
        .store
        .ticket_screenshot(n)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("ticket #{n} has no screenshot")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png".to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"ticket-{n}.png\""),
            ),
        ],
        png,
    )
        .into_response())
}

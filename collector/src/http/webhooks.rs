//! The delivery log of webhooks and e-mails (admin): list it, and send one again.
//!
//! `GET /api/v1/webhooks/deliveries[?failed=true&limit=N]`, newest first with every attempt;
//! `POST /api/v1/webhooks/deliveries/{id}/redeliver` makes a delivery pending again from its
//! first attempt (audited as `webhook.redeliver`). Payloads and secrets are never returned.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use lifeline_shared::v1::integrations::{
    DELIVERIES, DELIVERIES_LIMIT_MAX, Delivery, DeliveryFilter, REDELIVER,
};
use serde_json::json;

use super::AppState;
use super::auth::StaffIdentity;
use super::error::ApiError;
use super::extract::{Path, Query};
use crate::audit::{self, Event};

/// Deliveries listed when no limit is given.
const DEFAULT_LIMIT: u32 = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(DELIVERIES, get(list))
        .route(REDELIVER, post(redeliver))
}

async fn list(
    State(state): State<AppState>,
    Query(filter): Query<DeliveryFilter>,
) -> Result<Json<Vec<Delivery>>, ApiError> {
    let limit = filter.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=DELIVERIES_LIMIT_MAX).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {DELIVERIES_LIMIT_MAX}"
        )));
    }
    Ok(Json(state.store.deliveries(filter.failed, limit).await?))
}

async fn redeliver(
    State(state): State<AppState>,
    Extension(admin): Extension<StaffIdentity>,
    Path(id): Path<u64>,
) -> Result<Json<Delivery>, ApiError> {
    let delivery = state
        .store
        .redeliver(id, state.clock.now())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no delivery {id}")))?;
    let event = Event::new(&admin.name, "webhook.redeliver")
        .subject(format!("delivery:{id}"))
        .detail(json!({
            "kind": delivery.kind,
            "target": delivery.target,
            "event": delivery.event,
        }));
    audit::record(&state, event).await?;
    state.integrations.queued.notify_one();
    Ok(Json(delivery))
}

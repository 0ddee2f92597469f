//! Operator endpoints: `/healthz` for load balancers (503 when the database does not answer),
//! `/metrics` in Prometheus text format.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use lifeline_shared::v1::api::{Health, paths};

use super::AppState;
use super::error::ApiError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::HEALTHZ, get(healthz))
        .route(paths::METRICS, get(render_metrics))
}

/// How long `/healthz` waits for the database before calling this collector unavailable: well
/// under the few seconds load balancers give a health check.
const DATABASE_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// 200 when the database answers, else 503: a collector that cannot reach its database can
/// take no ticket, so a load balancer should send agents to another one.
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let reason = match tokio::time::timeout(DATABASE_PING_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(error)) => {
            tracing::warn!(%error, "health check: the database does not answer");
            Some("the database does not answer")
        }
        Err(_) => {
            tracing::warn!(
                timeout_secs = DATABASE_PING_TIMEOUT.as_secs(),
                "health check: the database did not answer in time"
            );
            Some("the database did not answer in time")
        }
    };
    match reason {
        None => (
            StatusCode::OK,
            Json(Health {
                status: "ok".to_owned(),
                reason: None,
            }),
        ),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable".to_owned(),
                reason: Some(reason.to_owned()),
            }),
        ),
    }
}

async fn render_metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let Some(handle) = &state.metrics else {
        return Err(ApiError::NotFound("metrics are not enabled".to_owned()));
    };
    // The help-desk summary gauges (issue 9), recomputed at most once a minute.
    super::reports::refresh_metrics(&state).await;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    ))
}

//! Operator endpoints: `/healthz` for load balancers, `/metrics` in Prometheus text format.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
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

async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
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

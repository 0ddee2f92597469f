//! The HTTPS API: shared state, the router, and the middleware every request passes.
//!
//! `router(state)` merges one `routes()` per area. Layers, outermost first: metrics (counts
//! every answer, including refusals), then `auth::authorize` on matched routes only, so the
//! access policy sees the route template. Unmatched paths get a JSON 404.

pub mod actions;
pub mod agent_tickets;
pub mod audit;
pub mod auth;
pub mod body;
pub mod enroll;
pub mod error;
pub mod extract;
// Service levels and escalation (issue 9).
pub mod escalations;
pub mod machines;
pub mod ops;
pub mod tickets;
pub mod users;
pub mod work;
// Recurring problems, knowledge search and help-desk metrics (issue 9).
pub mod reports;
// Satisfaction, webhooks and e-mail (issue 9).
pub mod feedback;
pub mod webhooks;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use tracing::Instrument;

use crate::clock::SharedClock;
use crate::pki::CertificateAuthority;
use crate::store::Store;
use error::ApiError;

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub ca: Arc<CertificateAuthority>,
    pub clock: SharedClock,
    /// Renders `/metrics`; `None` when no recorder is installed (library tests).
    pub metrics: Option<PrometheusHandle>,
    pub enrollment: enroll::EnrollmentMode,
    /// Long-poll wake-ups (per machine, per piece of work) within this collector.
    pub wakeups: Arc<crate::wakeup::Wakeups>,
    /// Webhooks and e-mail (issue 9); nothing configured by default.
    pub integrations: Arc<crate::integrations::Integrations>,
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(ops::routes())
        .merge(enroll::routes())
        .merge(tickets::routes())
        .merge(machines::routes())
        .merge(users::routes())
        .merge(work::routes())
        .merge(actions::routes())
        .merge(audit::routes())
        .merge(agent_tickets::routes())
        // Service levels and escalation (issue 9).
        .merge(escalations::routes())
        .merge(reports::routes())
        // Satisfaction, webhooks and e-mail (issue 9).
        .merge(feedback::routes())
        .merge(webhooks::routes())
        .merge(crate::web::routes())
        .route(
            lifeline_shared::v1::api::paths::OPENAPI,
            axum::routing::get(crate::openapi::serve),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(crate::web::security_headers))
        .layer(middleware::from_fn(track))
        .with_state(state)
}

async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(format!(
        "no such route: {} {}",
        request.method(),
        request.uri().path()
    ))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "method {} is not allowed on {}",
        request.method(),
        request.uri().path()
    ))
}

/// Counts requests by route and status and records their latency; logs one line per request.
async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!("request", %method, %route);
    let response = next.run(request).instrument(span).await.into_response();
    let status = response.status().as_u16().to_string();
    let elapsed = started.elapsed();
    metrics::counter!(
        "lifeline_http_requests_total",
        "method" => method.to_string(),
        "route" => route.clone(),
        "status" => status.clone()
    )
    .increment(1);
    metrics::histogram!(
        "lifeline_http_request_duration_seconds",
        "method" => method.to_string(),
        "route" => route.clone()
    )
    .record(elapsed.as_secs_f64());
    let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    if response.status().is_success() {
        tracing::debug!(%method, %route, %status, elapsed_ms, "request");
    } else {
        tracing::info!(%method, %route, %status, elapsed_ms, "request refused");
    }
    response
}

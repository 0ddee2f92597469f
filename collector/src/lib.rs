//! The Lifeline collector: HTTPS API, storage, enrollment CA, and the technician/admin client.
//!
//! `main.rs` is glue. [`serve`] runs the API on a listener the caller bound (tests bind port 0),
//! [`http::router`] builds the API, [`bootstrap::prepare`] readies the data directory, and
//! [`cli`] holds the client subcommands that talk to a running collector.

pub mod audit;
pub mod bootstrap;
pub mod cli;
pub mod clock;
pub mod config;
pub mod http;
pub mod integrations;
pub mod openapi;
pub mod pki;
pub mod secret;
// Service levels and escalation (issue 9).
pub mod escalation;
pub mod sla;
pub mod store;
pub mod tls;
pub mod wakeup;
pub mod web;
// Recurring problems, knowledge search and help-desk metrics (issue 9).
pub mod knowledge;
pub mod reports;

// PostgreSQL store (issue 8): the throwaway PostgreSQL cluster the unit and e2e tests share.
#[doc(hidden)]
pub mod testing;

// Several collectors on one database (issue 8, second part): moving a site to PostgreSQL.
pub mod migrate;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};

pub use http::{AppState, router};

/// How long a client has for the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to send its first request after the handshake.
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long in-flight requests may take to finish after shutdown is asked.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the API over TLS on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Some(metrics) = state.metrics.clone() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                metrics.run_upkeep();
            }
        });
    }
    // Satisfaction, webhooks and e-mail (issue 9): the outbox's deliverer, when there is
    // anything to deliver to.
    let integrations = &state.integrations;
    if !integrations.webhooks.is_empty() || integrations.smtp.is_some() {
        integrations::outbox::spawn(state.clone());
    }
    // Service levels (issue 9): automatic escalation while the API serves.
    let escalations = tokio::spawn(escalation::run(state.clone()));
    let served = serve_router(listener, tls, router(state), shutdown).await;
    escalations.abort();
    served
}

/// Serves any router with the collector's TLS stack and timeouts: [`serve`] uses it for the
/// API, the benchmarks for a bare endpoint measured side by side with the real one.
pub async fn serve_router(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handle = axum_server::Handle::new();
    let on_shutdown = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down");
        on_shutdown.graceful_shutdown(Some(DRAIN_TIMEOUT));
    });
    let acceptor =
        RustlsAcceptor::new(RustlsConfig::from_config(tls)).handshake_timeout(HANDSHAKE_TIMEOUT);
    axum_server::from_tcp(listener)?
        .acceptor(acceptor)
        .first_request_timeout(FIRST_REQUEST_TIMEOUT)
        .handle(handle)
        // The peer address reaches the handlers (`ConnectInfo`): refusals are audited and
        // rate-limited by source.
        .serve(router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .await
}

//! The technician web console: server-rendered pages on the collector's own HTTPS port.
//!
//! Pages are askama templates (`collector/templates/`, compiled into the binary and HTML-escaped
//! by default; nothing here marks agent data as safe) styled by one embedded stylesheet, with no
//! JavaScript. Access goes through the API's deny-by-default `http::auth::RULES`: console pages
//! are `Access::Session` or `Access::SessionAdmin` ([`session`]), and every form POST must carry
//! the session's CSRF token ([`csrf`]). [`security_headers`] puts a strict Content-Security-Policy
//! and the usual headers on every answer. Console handlers call the API's own handlers for every
//! change, so the console and the API share one set of checks and audit events.

pub mod chart;
pub mod csrf;
pub mod pages;
pub mod session;
pub mod snapshot_view;

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use lifeline_shared::v1::api::Role;
use serde::Serialize;

use crate::http::AppState;
use crate::http::error::ApiError;
use session::ConsoleUser;

/// Routes of the console. Each has a rule in `http::auth::RULES`.
pub mod paths {
    pub const LOGIN: &str = "/login";
    pub const LOGOUT: &str = "/logout";
    pub const STYLESHEET: &str = "/static/console.css";
    pub const QUEUE: &str = "/";
    pub const TICKET: &str = "/tickets/{n}";
    pub const TICKET_COMMENT: &str = "/tickets/{n}/comment";
    pub const TICKET_UPDATE: &str = "/tickets/{n}/update";
    pub const TICKET_INSPECT: &str = "/tickets/{n}/inspect";
    pub const TICKET_RUN: &str = "/tickets/{n}/run";
    pub const RUN: &str = "/runs/{id}";
    pub const MACHINES: &str = "/machines";
    pub const MACHINE: &str = "/machines/{id}";
    pub const APPROVALS: &str = "/admin/approvals";
    pub const APPROVE: &str = "/admin/approvals/{id}/approve";
    pub const DENY: &str = "/admin/approvals/{id}/deny";
    pub const USERS: &str = "/admin/users";
    pub const USER_REVOKE: &str = "/admin/users/{name}/revoke";
    pub const ADMIN_MACHINES: &str = "/admin/machines";
    pub const MACHINE_APPROVE: &str = "/admin/machines/{id}/approve";
    pub const MACHINE_REVOKE: &str = "/admin/machines/{id}/revoke";
    pub const ENROLLMENT_TOKEN_REVOKE: &str = "/admin/enrollment-tokens/{prefix}/revoke";
    pub const CATALOG: &str = "/admin/catalog";
    pub const AUDIT: &str = "/admin/audit";
    // Service levels and escalation (issue 9).
    pub const TICKET_ESCALATE: &str = "/tickets/{n}/escalate";
    // Recurring problems, knowledge search and help-desk metrics (issue 9).
    pub const REPORTS: &str = "/reports";
}

/// The one stylesheet, compiled into the binary.
const STYLESHEET: &str = include_str!("../../templates/console.css");

/// The Content-Security-Policy of every answer: nothing but this origin's stylesheet and forms;
/// no script at all, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; \
     img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// HSTS on every answer: the collector serves HTTPS only, so a browser that has seen it once
/// never tries plain HTTP to that name again (a downgrade on a hostile network). One year, without
/// `includeSubDomains`: the collector does not speak for other hosts under its name. Browsers
/// ignore it for IP addresses; for `localhost` it covers every port of that name.
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

pub fn routes() -> Router<AppState> {
    use pages::{admin, machines, queue, runs, ticket};
    Router::new()
        .route(paths::LOGIN, get(session::login_page).post(session::login))
        .route(paths::LOGOUT, post(session::logout))
        .route(paths::STYLESHEET, get(stylesheet))
        .route(paths::QUEUE, get(queue::page))
        .route(paths::TICKET, get(ticket::page))
        .route(paths::TICKET_COMMENT, post(ticket::comment))
        .route(paths::TICKET_UPDATE, post(ticket::update))
        .route(paths::TICKET_INSPECT, post(ticket::inspect))
        .route(paths::TICKET_RUN, post(ticket::run))
        .route(paths::RUN, get(runs::page))
        .route(paths::MACHINES, get(machines::list))
        .route(paths::MACHINE, get(machines::page))
        .route(paths::APPROVALS, get(admin::approvals))
        .route(paths::APPROVE, post(admin::approve))
        .route(paths::DENY, post(admin::deny))
        .route(paths::USERS, get(admin::users).post(admin::add_user))
        .route(paths::USER_REVOKE, post(admin::revoke_user))
        .route(paths::ADMIN_MACHINES, get(admin::machines))
        .route(paths::MACHINE_APPROVE, post(admin::approve_machine))
        .route(paths::MACHINE_REVOKE, post(admin::revoke_machine))
        .route(
            paths::ENROLLMENT_TOKEN_REVOKE,
            post(admin::revoke_enrollment_token),
        )
        .route(paths::CATALOG, get(admin::catalog))
        .route(paths::AUDIT, get(admin::audit))
        // Service levels and escalation (issue 9).
        .route(paths::TICKET_ESCALATE, post(pages::sla::escalate))
        .route(paths::REPORTS, get(pages::reports::page))
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// Middleware for every answer of the collector (console and API alike): the CSP, HSTS and the
/// usual hardening headers; `Cache-Control: no-store` unless the handler chose a cache policy.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(STRICT_TRANSPORT_SECURITY),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// What the page layout needs: who is signed in, their CSRF token, which section is shown.
#[derive(Debug, Clone)]
pub struct Nav {
    pub user: String,
    pub is_admin: bool,
    pub csrf: String,
    pub section: &'static str,
}

impl Nav {
    pub fn new(user: &ConsoleUser, section: &'static str) -> Nav {
        Nav {
            user: user.name.clone(),
            is_admin: user.role == Role::Admin,
            csrf: user.csrf_token.clone(),
            section,
        }
    }
}

/// Renders a template as an HTML answer with `status`.
pub fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; the collector log has the details",
            )
                .into_response()
        }
    }
}

/// A page that could not be shown, rendered as an error page.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> PageError {
        PageError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> PageError {
        PageError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> PageError {
        let status = error.status();
        let message = match error {
            ApiError::Internal(source) => {
                tracing::error!(error = %source, "console request failed");
                "internal error; the collector log has the details".to_owned()
            }
            other => other.to_string(),
        };
        PageError { status, message }
    }
}

impl From<crate::store::StoreError> for PageError {
    fn from(error: crate::store::StoreError) -> PageError {
        PageError::from(ApiError::from(error))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    reason: &'a str,
    message: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        render(
            self.status,
            &ErrorPage {
                status: self.status.as_u16(),
                reason: self.status.canonical_reason().unwrap_or("Error"),
                message: &self.message,
            },
        )
    }
}

/// A JSON request body for calling an API handler from a console handler.
pub fn json_body<T: Serialize>(value: &T) -> Result<(HeaderMap, Body), PageError> {
    let bytes = serde_json::to_vec(value).map_err(ApiError::internal)?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok((headers, Body::from(bytes)))
}

/// Reads a form the session middleware already checked, or a 400 page.
pub fn form<T>(
    form: Result<axum::Form<T>, axum::extract::rejection::FormRejection>,
) -> Result<T, PageError> {
    form.map(|axum::Form(value)| value)
        .map_err(|e| PageError::bad_request(format!("the form is incomplete: {}", e.body_text())))
}

/// `Some(text)` unless blank.
pub fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// "5 min ago", "3 h ago", "2 d ago".
pub fn ago(then: time::OffsetDateTime, now: time::OffsetDateTime) -> String {
    let secs = (now - then).whole_seconds().max(0);
    match secs {
        0..=59 => "just now".to_owned(),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// A time as `2026-11-03 14:05 UTC`.
pub fn when(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}

/// Shortens text for a table cell (on a character boundary).
pub fn clip(text: &str, max_chars: usize) -> String {
    let mut out: String = text.chars().take(max_chars).collect();
    if text.chars().count() > max_chars {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_and_ago_read_well() {
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("abc", 3), "abc");
        let t = time::OffsetDateTime::UNIX_EPOCH;
        assert_eq!(ago(t, t + time::Duration::minutes(5)), "5 min ago");
        assert_eq!(ago(t, t + time::Duration::hours(49)), "2 d ago");
        assert_eq!(when(t), "1970-01-01 00:00 UTC");
    }
}

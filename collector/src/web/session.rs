//! Console sessions: signing in with a technician/admin token, the session cookie, signing out.
//!
//! Signing in checks the token exactly as the API does (`http::auth::staff_identity`), then makes
//! a random 256-bit session id. The browser keeps the id in the cookie [`COOKIE`]
//! (`HttpOnly; Secure; SameSite=Strict; Path=/`, the `__Host-` prefix pins it to this origin);
//! the database keeps only its SHA-256, the user and the session's CSRF token. A session ends
//! at sign-out, after [`IDLE_TIMEOUT`] without use, [`ABSOLUTE_TIMEOUT`] after sign-in, or as
//! soon as its user is revoked (checked on every request, as the user's role is).

use std::time::Duration;

use askama::Template;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use lifeline_shared::v1::api::Role;
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use super::{PageError, csrf, paths, render};
use crate::audit::{self, Event};
use crate::http::AppState;
use crate::http::auth::{Access, StaffIdentity, peer_address, staff_identity};
use crate::http::error::ApiError;
use crate::secret::{Secret, TokenHash, hex, random_bytes};
use crate::store::{NewWebSession, WebSessionRecord};

/// The session cookie. `__Host-`: the browser only accepts it with `Secure`, `Path=/` and no
/// `Domain`, so no other host can set or shadow it.
pub const COOKIE: &str = "__Host-lifeline_session";
/// A session unused this long ends.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// A session ends this long after sign-in, however busy (one working shift).
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(8 * 60 * 60);
/// Last-use times are written at most this often per session.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The signed-in user of a console request (inserted by [`admit`]).
#[derive(Debug, Clone)]
pub struct ConsoleUser {
    pub name: String,
    pub role: Role,
    pub csrf_token: String,
}

impl ConsoleUser {
    /// The same identity the API's handlers take.
    pub fn staff(&self) -> StaffIdentity {
        StaffIdentity {
            name: self.name.clone(),
            role: self.role,
        }
    }
}

fn session_id(headers: &HeaderMap) -> Option<Secret> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(Secret::new)
}

fn idle_limit() -> time::Duration {
    time::Duration::try_from(IDLE_TIMEOUT).unwrap_or(time::Duration::HOUR)
}

fn is_live(session: &WebSessionRecord, now: OffsetDateTime) -> bool {
    !session.user_revoked && now < session.expires_at && now - session.last_seen_at < idle_limit()
}

fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-lifeline_session=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0",
    )
}

fn to_login(clear: bool) -> Response {
    let mut response = Redirect::to(paths::LOGIN).into_response();
    if clear {
        response
            .headers_mut()
            .insert(header::SET_COOKIE, clear_cookie());
    }
    response
}

/// The live session a request presents, if any.
async fn current(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(TokenHash, WebSessionRecord)>, ApiError> {
    let Some(id) = session_id(headers) else {
        return Ok(None);
    };
    let hash = TokenHash::of(&id);
    let now = state.clock.now();
    match state.store.web_session(&hash).await? {
        Some(session) if is_live(&session, now) => Ok(Some((hash, session))),
        Some(_) => {
            state.store.delete_web_session(&hash).await?;
            Ok(None)
        }
        None => Ok(None),
    }
}

/// The `Access::Session` / `Access::SessionAdmin` half of `http::auth::authorize`: a live
/// session, the right role, and on POST a valid CSRF token. Without a session the browser is
/// sent to the sign-in page.
pub async fn admit(state: &AppState, access: Access, request: Request, next: Next) -> Response {
    let had_cookie = session_id(request.headers()).is_some();
    let (hash, session) = match current(state, request.headers()).await {
        Ok(Some(found)) => found,
        Ok(None) => return to_login(had_cookie),
        Err(error) => return PageError::from(error).into_response(),
    };
    if access == Access::SessionAdmin && session.role != Role::Admin {
        // Someone named, above their role: audited every time, like the API's refusal.
        let route = format!("{} {}", request.method(), request.uri().path());
        let event = Event::new(&session.user, "auth.forbidden")
            .subject(format!("user:{}", session.user))
            .detail(json!({
                "route": route,
                "role": session.role,
                "needs": Role::Admin,
            }));
        audit::record_refusal(state, "console session", event, peer_address(&request)).await;
        return PageError::new(
            StatusCode::FORBIDDEN,
            format!(
                "{} is a {}; this page is for admins",
                session.user, session.role
            ),
        )
        .into_response();
    }
    let mut request = if request.method() == axum::http::Method::POST {
        match csrf::check(&session.csrf_token, request).await {
            Ok(request) => request,
            Err(refusal) => return refusal,
        }
    } else {
        request
    };
    let now = state.clock.now();
    if now - session.last_seen_at
        >= time::Duration::try_from(TOUCH_EVERY).unwrap_or(time::Duration::MINUTE)
        && let Err(error) = state.store.touch_web_session(&hash, now).await
    {
        return PageError::from(error).into_response();
    }
    request.extensions_mut().insert(ConsoleUser {
        name: session.user,
        role: session.role,
        csrf_token: session.csrf_token,
    });
    next.run(request).await
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    error: Option<&'a str>,
    signed_out: bool,
}

/// `?signed_out=1` after signing out.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    signed_out: Option<String>,
}

/// `GET /login`: the sign-in form, or the queue for someone already signed in.
pub async fn login_page(
    State(state): State<AppState>,
    query: Result<axum::extract::Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let signed_out = query.is_ok_and(|q| q.signed_out.is_some());
    match current(&state, &headers).await {
        Ok(Some(_)) => Redirect::to(paths::QUEUE).into_response(),
        Ok(None) => render(
            StatusCode::OK,
            &LoginPage {
                error: None,
                signed_out,
            },
        ),
        Err(error) => PageError::from(error).into_response(),
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginForm { token: *** }")
    }
}

/// `POST /login`: checks the token like the API does and starts a session.
pub async fn login(State(state): State<AppState>, request: Request) -> Result<Response, PageError> {
    if !csrf::same_origin(csrf::authority(&request).as_deref(), request.headers()) {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "this sign-in was sent from another site; it was refused",
        ));
    }
    let source = peer_address(&request);
    let form =
        <Form<LoginForm> as axum::extract::FromRequest<()>>::from_request(request, &()).await;
    let LoginForm { token } = super::form(form)?;
    let token = Secret::new(token.trim());
    let staff = match staff_identity(&state, "POST /login", &token, source).await {
        Ok(staff) => staff,
        Err(ApiError::Unauthorized(_)) => {
            return Ok(render(
                StatusCode::UNAUTHORIZED,
                &LoginPage {
                    error: Some("That token is unknown or has been revoked."),
                    signed_out: false,
                },
            ));
        }
        Err(other) => return Err(other.into()),
    };
    let now = state.clock.now();
    state
        .store
        .delete_stale_web_sessions(now, now - idle_limit())
        .await?;
    let id = Secret::new(hex(&random_bytes::<32>().map_err(ApiError::internal)?));
    let absolute = time::Duration::try_from(ABSOLUTE_TIMEOUT).unwrap_or(time::Duration::HOUR);
    state
        .store
        .create_web_session(&NewWebSession {
            id_hash: TokenHash::of(&id),
            user: staff.name.clone(),
            csrf_token: csrf::new_token().map_err(ApiError::internal)?,
            created_at: now,
            expires_at: now + absolute,
        })
        .await?;
    audit::record(
        &state,
        Event::new(&staff.name, "console.login").detail(
            json!({ "role": staff.role.as_str(), "expires_in_secs": ABSOLUTE_TIMEOUT.as_secs() }),
        ),
    )
    .await?;
    tracing::info!(user = %staff.name, "console sign-in");
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={}",
        id.expose(),
        ABSOLUTE_TIMEOUT.as_secs()
    );
    let mut response = Redirect::to(paths::QUEUE).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    Ok(response)
}

/// `POST /logout`: ends this session.
pub async fn logout(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    if let Some(id) = session_id(&headers) {
        state.store.delete_web_session(&TokenHash::of(&id)).await?;
    }
    audit::record(&state, Event::new(&user.name, "console.logout")).await?;
    let mut response = Redirect::to("/login?signed_out=1").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_cookie());
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others_and_must_look_like_an_id() {
        let id = "ab".repeat(32);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {COOKIE}={id}; x=y")).unwrap(),
        );
        assert_eq!(session_id(&headers).unwrap().expose(), id);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{COOKIE}=<script>")).unwrap(),
        );
        assert!(session_id(&headers).is_none());
    }

    #[test]
    fn sessions_end_when_idle_expired_or_revoked() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let session = WebSessionRecord {
            user: "tina".into(),
            role: Role::Technician,
            user_revoked: false,
            csrf_token: "x".into(),
            created_at: t0,
            last_seen_at: t0,
            expires_at: t0 + time::Duration::hours(8),
        };
        assert!(is_live(&session, t0 + time::Duration::minutes(59)));
        assert!(!is_live(&session, t0 + time::Duration::minutes(61)));
        let busy = WebSessionRecord {
            last_seen_at: t0 + time::Duration::hours(8),
            ..session.clone()
        };
        assert!(!is_live(&busy, t0 + time::Duration::hours(8)));
        let revoked = WebSessionRecord {
            user_revoked: true,
            ..session
        };
        assert!(!is_live(&revoked, t0));
    }
}

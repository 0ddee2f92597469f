//! Technician and admin accounts: add (the token is shown once), list, revoke.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use lifeline_shared::v1::api::{NewUser, UserCreated, UserSummary, paths};
use lifeline_shared::v1::integrations::{self, UserEmail, check_email};
use serde_json::json;

use super::AppState;
use super::auth::StaffIdentity;
use super::body::{BodyLimits, read_json};
use super::error::ApiError;
use super::extract::Path;
use crate::audit::{self, Event};
use crate::secret::{TokenHash, TokenKind, generate_token};

/// Longest user name.
pub(crate) const NAME_MAX_LEN: usize = 64;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::USERS, get(list_users).post(add_user))
        .route("/api/v1/users/{name}/revoke", post(revoke_user))
        .route(integrations::USER_EMAIL, put(set_email))
}

/// User names: 1–64 of letters, digits, `.`, `_`, `-`, starting with a letter or digit.
pub fn check_user_name(name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= NAME_MAX_LEN
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "user name {name:?} is not valid: use 1 to {NAME_MAX_LEN} letters, digits, '.', '_' \
             or '-', starting with a letter or digit"
        )))
    }
}

async fn list_users(State(state): State<AppState>) -> Result<Json<Vec<UserSummary>>, ApiError> {
    Ok(Json(state.store.list_users().await?))
}

pub(crate) async fn add_user(
    State(state): State<AppState>,
    Extension(admin): Extension<StaffIdentity>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UserCreated>, ApiError> {
    let request: NewUser = read_json(&headers, body, BodyLimits::SMALL).await?;
    check_user_name(&request.name)?;
    if let Some(email) = &request.email {
        check_email(email).map_err(ApiError::BadRequest)?;
    }
    let token = generate_token(TokenKind::User).map_err(ApiError::internal)?;
    state
        .store
        .add_user(
            &request.name,
            request.role,
            &TokenHash::of(&token),
            Some(&admin.name),
            state.clock.now(),
        )
        .await?;
    if let Some(email) = &request.email {
        state
            .store
            .set_user_email(&request.name, Some(email))
            .await?;
    }
    tracing::info!(by = %admin.name, user = %request.name, role = %request.role, "user added");
    let event = Event::new(&admin.name, "user.add")
        .subject(format!("user:{}", request.name))
        .detail(json!({ "role": request.role }));
    audit::record(&state, event).await?;
    Ok(Json(UserCreated {
        name: request.name,
        role: request.role,
        token: token.expose().to_owned(),
    }))
}

pub(crate) async fn revoke_user(
    State(state): State<AppState>,
    Extension(admin): Extension<StaffIdentity>,
    Path(name): Path<String>,
) -> Result<Json<Vec<UserSummary>>, ApiError> {
    if name == admin.name {
        return Err(ApiError::Conflict(
            "you cannot revoke your own token; ask another admin".to_owned(),
        ));
    }
    if !state.store.revoke_user(&name, state.clock.now()).await? {
        return Err(ApiError::NotFound(format!("no active user {name:?}")));
    }
    tracing::info!(by = %admin.name, user = %name, "user revoked");
    audit::record(
        &state,
        Event::new(&admin.name, "user.revoke").subject(format!("user:{name}")),
    )
    .await?;
    Ok(Json(state.store.list_users().await?))
}

/// `PUT /api/v1/users/{name}/email` (issue 9): where `name`'s notifications go; `null` stops
/// them. Audited as `user.email` (the address itself is not in the log).
async fn set_email(
    State(state): State<AppState>,
    Extension(admin): Extension<StaffIdentity>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Vec<UserSummary>>, ApiError> {
    let request: UserEmail = read_json(&headers, body, BodyLimits::SMALL).await?;
    let email = request.email.as_deref().map(str::trim);
    if let Some(email) = email {
        check_email(email).map_err(ApiError::BadRequest)?;
    }
    if !state.store.set_user_email(&name, email).await? {
        return Err(ApiError::NotFound(format!("no user {name:?}")));
    }
    tracing::info!(by = %admin.name, user = %name, set = email.is_some(), "user e-mail changed");
    let event = Event::new(&admin.name, "user.email")
        .subject(format!("user:{name}"))
        .detail(json!({ "set": email.is_some() }));
    audit::record(&state, event).await?;
    Ok(Json(state.store.list_users().await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_restricted() {
        assert!(check_user_name("alice").is_ok());
        assert!(check_user_name("a.b-c_1").is_ok());
        assert!(check_user_name("").is_err());
        assert!(check_user_name("-x").is_err());
        assert!(check_user_name("bob smith").is_err());
        assert!(check_user_name("<script>").is_err());
        assert!(check_user_name(&"a".repeat(65)).is_err());
    }
}

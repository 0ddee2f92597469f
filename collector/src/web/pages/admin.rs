//! Admin pages: the approval queue, users and their tokens, enrolled machines and enrollment
//! tokens, the catalog.
//!
//! Every change is the API handler's (`http::actions`, `http::users`, `http::machines`), so
//! "nobody approves their own request", "nobody revokes themselves" and the audit events hold
//! here exactly as on the API.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use lifeline_shared::v1::actions::Decision;
use lifeline_shared::v1::api::{EnrollmentTokenInfo, NewUser, Role};
use serde::Deserialize;

use super::runs::RunView;
use super::{Choice, label};
use crate::http::actions::run_status_of;
use crate::http::error::ApiError;
use crate::http::work::is_online;
use crate::http::{
    AppState, actions, audit as api_audit, enroll as api_enroll, machines as api_machines,
    users as api_users,
};
use crate::store::RunFilter;
use crate::web::session::ConsoleUser;
use crate::web::{Nav, PageError, ago, form, json_body, non_empty, paths, render, when};

#[derive(Template)]
#[template(path = "admin_approvals.html")]
struct ApprovalsPage {
    nav: Nav,
    requests: Vec<RunView>,
}

/// `GET /admin/approvals`: run requests waiting for an admin.
pub async fn approvals(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let records = state
        .store
        .runs(
            &RunFilter {
                awaiting_approval: true,
                limit: 500,
                ..RunFilter::default()
            },
            now,
        )
        .await?;
    let mut requests = Vec::with_capacity(records.len());
    for record in records {
        requests.push(RunView::of(&run_status_of(&state, record, now).await?));
    }
    Ok(render(
        StatusCode::OK,
        &ApprovalsPage {
            nav: Nav::new(&user, "approvals"),
            requests,
        },
    ))
}

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    reason: Option<String>,
}

fn run_id(
    path: Result<Path<u64>, axum::extract::rejection::PathRejection>,
) -> Result<u64, PageError> {
    path.map(|Path(id)| id)
        .map_err(|_| PageError::bad_request("a request number is a positive whole number"))
}

/// An admin's decision from the approvals page, through the API's own `decide` (the same
/// checks and audit entries: nobody approves their own request, a denial needs a reason).
async fn decide_form(
    state: AppState,
    user: ConsoleUser,
    path: Result<Path<u64>, axum::extract::rejection::PathRejection>,
    body: Result<Form<DecisionForm>, axum::extract::rejection::FormRejection>,
    approve: bool,
) -> Result<u64, PageError> {
    let id = run_id(path)?;
    let DecisionForm { reason } = form(body)?;
    let decision = Decision {
        reason: non_empty(reason),
    };
    let _status = actions::decide(state, user.staff(), id, approve, decision).await?;
    Ok(id)
}

/// `POST /admin/approvals/{id}/approve`.
pub async fn approve(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    path: Result<Path<u64>, axum::extract::rejection::PathRejection>,
    body: Result<Form<DecisionForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let id = decide_form(state, user, path, body, true).await?;
    Ok(Redirect::to(&format!("/runs/{id}")).into_response())
}

/// `POST /admin/approvals/{id}/deny` (a reason is required).
pub async fn deny(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    path: Result<Path<u64>, axum::extract::rejection::PathRejection>,
    body: Result<Form<DecisionForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    decide_form(state, user, path, body, false).await?;
    Ok(Redirect::to(paths::APPROVALS).into_response())
}

#[derive(Debug)]
struct UserRow {
    name: String,
    role: String,
    created: String,
    revoked: String,
    is_self: bool,
}

#[derive(Debug)]
struct NewToken {
    name: String,
    role: String,
    token: String,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    nav: Nav,
    users: Vec<UserRow>,
    roles: Vec<Choice>,
    created: Option<NewToken>,
}

async fn users_page(
    state: &AppState,
    user: &ConsoleUser,
    created: Option<NewToken>,
) -> Result<Response, PageError> {
    let users = state
        .store
        .list_users()
        .await?
        .into_iter()
        .map(|u| UserRow {
            is_self: u.name == user.name,
            role: label(u.role.as_str()),
            created: when(u.created_at),
            revoked: u.revoked_at.map(when).unwrap_or_default(),
            name: u.name,
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &UsersPage {
            nav: Nav::new(user, "users"),
            users,
            roles: Role::ALL
                .iter()
                .map(|r| Choice::new(r.as_str(), label(r.as_str()), *r == Role::Technician))
                .collect(),
            created,
        },
    ))
}

/// `GET /admin/users`.
pub async fn users(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
) -> Result<Response, PageError> {
    users_page(&state, &user, None).await
}

#[derive(Debug, Deserialize)]
pub struct NewUserForm {
    name: String,
    role: String,
}

/// `POST /admin/users`: adds a user and shows the token this once (the answer is not cached).
pub async fn add_user(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    body: Result<Form<NewUserForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let NewUserForm { name, role } = form(body)?;
    let role: Role = role
        .parse()
        .map_err(|e: lifeline_shared::v1::api::UnknownName| {
            PageError::bad_request(e.to_string())
        })?;
    let (headers, body) = json_body(&NewUser {
        email: None,
        name: name.trim().to_owned(),
        role,
    })?;
    let Json(created) =
        api_users::add_user(State(state.clone()), Extension(user.staff()), headers, body).await?;
    let token = NewToken {
        name: created.name,
        role: label(created.role.as_str()),
        token: created.token,
    };
    users_page(&state, &user, Some(token)).await
}

/// `POST /admin/users/{name}/revoke`.
pub async fn revoke_user(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let _answer = api_users::revoke_user(
        State(state),
        Extension(user.staff()),
        crate::http::extract::Path(name),
    )
    .await?;
    Ok(Redirect::to(paths::USERS).into_response())
}

#[derive(Debug)]
struct EnrolledRow {
    id: String,
    hostname: String,
    status: &'static str,
    online: bool,
    last_seen: String,
    enrolled: String,
    certificate_until: String,
}

/// An enrollment token as the machines page lists it (never the token itself).
#[derive(Debug)]
struct TokenRow {
    /// What names it in the revoke form: the prefix, or the id for tokens without one.
    name: String,
    /// False for a token named by its id.
    is_prefix: bool,
    created_by: String,
    created: String,
    expires: String,
    uses: String,
    /// `active`, `expired`, `used up` or `revoked`.
    state: &'static str,
}

impl TokenRow {
    fn of(t: &EnrollmentTokenInfo, now: time::OffsetDateTime) -> TokenRow {
        let state = if t.revoked_at.is_some() {
            "revoked"
        } else if t.expires_at.is_some_and(|at| at <= now) {
            "expired"
        } else if t.max_uses.is_some_and(|max| t.uses >= u64::from(max)) {
            "used up"
        } else {
            "active"
        };
        TokenRow {
            name: t.prefix.clone().unwrap_or_else(|| t.id.to_string()),
            is_prefix: t.prefix.is_some(),
            created_by: t.created_by.clone().unwrap_or_else(|| "-".to_owned()),
            created: when(t.created_at),
            expires: t.expires_at.map_or_else(|| "never".to_owned(), when),
            uses: match t.max_uses {
                Some(max) => format!("{} of {max}", t.uses),
                None => t.uses.to_string(),
            },
            state,
        }
    }
}

#[derive(Template)]
#[template(path = "admin_machines.html")]
struct EnrolledPage {
    nav: Nav,
    machines: Vec<EnrolledRow>,
    tokens: Vec<TokenRow>,
}

/// `GET /admin/machines`.
pub async fn machines(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let machines = state
        .store
        .list_machines()
        .await?
        .into_iter()
        .map(|m| EnrolledRow {
            online: is_online(m.last_seen_at, now),
            last_seen: ago(m.last_seen_at, now),
            status: m.status.as_str(),
            enrolled: when(m.enrolled_at),
            certificate_until: when(m.certificate_not_after),
            id: m.id,
            hostname: m.hostname,
        })
        .collect();
    let tokens = state
        .store
        .list_enrollment_tokens()
        .await?
        .iter()
        .rev()
        .map(|t| TokenRow::of(t, now))
        .collect();
    Ok(render(
        StatusCode::OK,
        &EnrolledPage {
            nav: Nav::new(&user, "admin-machines"),
            machines,
            tokens,
        },
    ))
}

/// `POST /admin/enrollment-tokens/{prefix}/revoke`: through the API's own handler (same
/// checks, same audit entry).
pub async fn revoke_enrollment_token(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    Path(prefix): Path<String>,
) -> Result<Response, PageError> {
    let _answer =
        api_enroll::revoke_enrollment_token(State(state), Extension(user.staff()), Path(prefix))
            .await?;
    Ok(Redirect::to(paths::ADMIN_MACHINES).into_response())
}

/// `POST /admin/machines/{id}/approve`: a machine enrolled under `--enrollment approve` may talk
/// to the collector from now on.
pub async fn approve_machine(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let _answer = api_machines::approve_machine(
        State(state),
        Extension(user.staff()),
        crate::http::extract::Path(id),
    )
    .await?;
    Ok(Redirect::to(paths::ADMIN_MACHINES).into_response())
}

/// `POST /admin/machines/{id}/revoke`.
pub async fn revoke_machine(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let _answer = api_machines::revoke_machine(
        State(state),
        Extension(user.staff()),
        crate::http::extract::Path(id),
    )
    .await?;
    Ok(Redirect::to(paths::ADMIN_MACHINES).into_response())
}

#[derive(Debug)]
struct CatalogSummary {
    version: u64,
    digest: String,
    key_id: String,
    actions: u64,
    published_by: String,
    published: String,
}

#[derive(Debug)]
struct KeyRow {
    key_id: String,
    added_by: String,
    added: String,
    endorsed_by: String,
}

#[derive(Debug)]
struct ActionRow {
    id: String,
    title: String,
    description: String,
    risk: String,
    requires_approval: bool,
    consent: bool,
    timeout_secs: u64,
    os: String,
    params: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "admin_catalog.html")]
struct CatalogPage {
    nav: Nav,
    catalog: Option<CatalogSummary>,
    keys: Vec<KeyRow>,
    actions: Vec<ActionRow>,
}

/// `GET /admin/catalog`: the published catalog, the keys trusted to sign it, its actions.
pub async fn catalog(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
) -> Result<Response, PageError> {
    let catalog = match actions::catalog_info(State(state.clone())).await {
        Ok(Json(info)) => Some(CatalogSummary {
            version: info.version,
            digest: info.digest,
            key_id: info.key_id.to_string(),
            actions: info.actions,
            published_by: info.published_by,
            published: when(info.published_at),
        }),
        Err(ApiError::NotFound(_)) => None,
        Err(other) => return Err(other.into()),
    };
    let Json(keys) = actions::list_keys(State(state.clone())).await?;
    let Json(list) = actions::list_actions(State(state)).await?;
    Ok(render(
        StatusCode::OK,
        &CatalogPage {
            nav: Nav::new(&user, "catalog"),
            catalog,
            keys: keys
                .into_iter()
                .map(|k| KeyRow {
                    key_id: k.key_id.to_string(),
                    added_by: k.added_by,
                    added: when(k.added_at),
                    endorsed_by: k.endorsed_by.map(|e| e.to_string()).unwrap_or_default(),
                })
                .collect(),
            actions: list
                .into_iter()
                .map(|a| ActionRow {
                    risk: a.risk.to_string(),
                    os: a.os.join(", "),
                    params: a
                        .params
                        .into_iter()
                        .map(|p| (p.name, p.kind, p.accepts))
                        .collect(),
                    id: a.id,
                    title: a.title,
                    description: a.description,
                    requires_approval: a.requires_approval,
                    consent: a.consent,
                    timeout_secs: a.timeout_secs,
                })
                .collect(),
        },
    ))
}

/// One audit entry as the page shows it.
#[derive(Debug)]
struct AuditRow {
    seq: u64,
    at: String,
    actor: String,
    action: String,
    subject: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    nav: Nav,
    intact: bool,
    verdict: String,
    actor: String,
    since: String,
    entries: Vec<AuditRow>,
    next: Option<String>,
}

/// `?actor=&since=&after_seq=`: the API's own audit filters; empty fields are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    after_seq: String,
}

/// Entries per page.
const AUDIT_PAGE: u32 = 100;

/// `GET /admin/audit`: the chain's verification by the collector, and the entries.
pub async fn audit(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    query: Result<axum::extract::Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let axum::extract::Query(q) =
        query.map_err(|e| ApiError::BadRequest(format!("bad filter: {}", e.body_text())))?;
    let mut api = serde_json::Map::new();
    for (key, value) in [
        ("actor", &q.actor),
        ("since", &q.since),
        ("after_seq", &q.after_seq),
    ] {
        if !value.trim().is_empty() {
            api.insert(key.to_owned(), value.trim().into());
        }
    }
    api.insert("limit".to_owned(), AUDIT_PAGE.to_string().into());
    let list_query: api_audit::ListQuery = serde_json::from_value(api.into())
        .map_err(|e| ApiError::BadRequest(format!("bad filter: {e}")))?;
    let Json(entries) = api_audit::list(
        State(state.clone()),
        crate::http::extract::Query(list_query),
    )
    .await?;
    let Json(report) = api_audit::verify(
        State(state),
        crate::http::extract::Query(api_audit::VerifyQuery::default()),
    )
    .await?;
    let next = (entries.len() == AUDIT_PAGE as usize)
        .then(|| entries.last().map(|e| e.seq))
        .flatten()
        .map(|last| {
            let mut url = format!("{}?after_seq={last}", paths::AUDIT);
            for (key, value) in [("actor", &q.actor), ("since", &q.since)] {
                if !value.trim().is_empty() {
                    url.push_str(&format!("&{key}={}", percent(value.trim())));
                }
            }
            url
        });
    Ok(render(
        StatusCode::OK,
        &AuditPage {
            nav: Nav::new(&user, "audit"),
            intact: report.intact,
            verdict: report.message,
            actor: q.actor,
            since: q.since,
            entries: entries
                .into_iter()
                .map(|e| AuditRow {
                    seq: e.seq,
                    at: when(e.at),
                    actor: e.actor,
                    action: e.action,
                    subject: e.subject.unwrap_or_default(),
                    detail: lifeline_shared::v1::audit::canonical_json(&e.detail),
                })
                .collect(),
            next,
        },
    ))
}

/// Percent-encodes a query value.
fn percent(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

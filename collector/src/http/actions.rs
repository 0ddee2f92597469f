//! Remote actions: the published catalog, run requests, approvals, and what agents report back.
//!
//! The collector relays; it never makes an action runnable. A catalog is published only when
//! its signatures check out against a key an admin trusted (`catalog trust`) and its version
//! moves forward. Each stored action is the admin's `SignedAction`, relayed byte for byte inside
//! the run request; the agent verifies it against the keys it pinned. Parameters are checked here
//! too, so a bad value is refused before anything is queued, and again on the agent.
//!
//! Approvals: a run of a high-risk action, of an action an admin marked, or one its requester
//! asked to be approved waits for an admin who is not the requester and whose account the
//! requester did not create. Requests expire after
//! [`APPROVAL_TTL_SECS`]; dispatched runs wait [`RUN_TTL_SECS`] for an offline machine.
//!
//! Publishing a newer catalog expires, in its transaction, every request still waiting for an
//! approval and every run still queued (not yet delivered) whose action came from an older
//! version; each is audited (`run.expire`) and its status says why ("catalog version 3 replaced
//! by 4"). Requests and approvals take the same catalog lock, so none slips past a publish.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use lifeline_shared::findings::{self, Finding};
use lifeline_shared::v1::actions::{
    APPROVAL_TTL_SECS, ActionInfo, Approval, ApprovalSetting, CatalogInfo, Decision, NewRun,
    ParamInfo, Published, REASON_MAX_LEN, RUN_TTL_SECS, Recheck, RunState, RunStatus, TrustKey,
    TrustedKeyInfo, WorkProgress,
};
use lifeline_shared::v1::api::{Role, paths};
use lifeline_shared::v1::catalog::{
    KeyEndorsement, PublicKey, Risk, SignedAction, SignedCatalog, accept_endorsed_key,
};
use lifeline_shared::v1::run::{RunId, RunOutcome, RunRequest, RunResult};
use lifeline_shared::v1::snapshot::Snapshot;
use lifeline_shared::v1::work::{MAX_WAIT_SECS, WorkState};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use super::AppState;
use super::auth::{AgentIdentity, StaffIdentity};
use super::body::{BodyLimits, read_json};
use super::error::ApiError;
use super::extract::{Path, Query};
use super::machines::find;
use super::work::{self, is_online};
use crate::audit::{self, Event, machine_actor};
use crate::secret::random_bytes;
use crate::store::{
    CatalogKeyRecord, CatalogRecord, NewCatalog, NewRunRecord, PublishOutcome, RunFilter,
    RunFinish, RunRecord, StoredAction,
};
use crate::wakeup::Wakeups;

/// Most runs one listing returns.
pub(crate) const LIST_LIMIT_MAX: u32 = 500;
/// Output shown in a ticket's timeline entry, per stream.
const NOTE_OUTPUT_MAX: usize = 2000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::CATALOG, get(catalog_info).post(publish))
        .route(paths::CATALOG_KEYS, get(list_keys).post(trust_key))
        .route(paths::ACTIONS, get(list_actions))
        .route(paths::ACTION_APPROVAL, put(set_approval))
        .route(paths::RUNS, post(create_run).get(list_runs))
        .route(paths::RUN, get(run_status))
        .route(paths::RUN_APPROVE, post(approve))
        .route(paths::RUN_DENY, post(deny))
        .route(paths::AGENT_WORK_PROGRESS, post(progress))
}

// ---------------------------------------------------------------------------------------------
// Catalog and keys

fn to_catalog_info(record: CatalogRecord) -> Result<CatalogInfo, ApiError> {
    Ok(CatalogInfo {
        version: record.version,
        digest: record.digest,
        key_id: record
            .key_id
            .parse()
            .map_err(|e| ApiError::internal(crate::store::StoreError::Corrupt(format!("{e}"))))?,
        actions: record.action_count,
        published_by: record.published_by,
        published_at: record.published_at,
    })
}

pub(crate) async fn catalog_info(
    State(state): State<AppState>,
) -> Result<Json<CatalogInfo>, ApiError> {
    let current = state.store.current_catalog().await?;
    current
        .map(to_catalog_info)
        .transpose()?
        .map(Json)
        .ok_or_else(|| {
            ApiError::NotFound(
                "no catalog has been published yet (see `lifeline-collector catalog publish`)"
                    .to_owned(),
            )
        })
}

/// The public keys the collector trusts to publish catalogs.
pub async fn trusted_keys(state: &AppState) -> Result<Vec<PublicKey>, ApiError> {
    let records = state.store.catalog_keys().await?;
    records
        .iter()
        .map(|r| {
            PublicKey::from_pem(&r.public_key).map_err(|e| {
                ApiError::internal(crate::store::StoreError::Corrupt(format!(
                    "stored catalog key {}: {e}",
                    r.key_id
                )))
            })
        })
        .collect()
}

/// Endorsements admins gave with the keys they trusted, relayed to agents with every run.
async fn endorsements(state: &AppState) -> Result<Vec<KeyEndorsement>, ApiError> {
    let records = state.store.catalog_keys().await?;
    Ok(records
        .iter()
        .filter_map(|r| r.endorsement.as_deref())
        .filter_map(|text| KeyEndorsement::from_json(text).ok())
        .collect())
}

fn key_info(record: CatalogKeyRecord) -> Result<TrustedKeyInfo, ApiError> {
    let corrupt = |what: String| ApiError::internal(crate::store::StoreError::Corrupt(what));
    let endorsed_by = record
        .endorsement
        .as_deref()
        .map(KeyEndorsement::from_json)
        .transpose()
        .map_err(|e| corrupt(format!("endorsement of key {}: {e}", record.key_id)))?
        .map(|e| *e.endorsed_by());
    Ok(TrustedKeyInfo {
        key_id: record
            .key_id
            .parse()
            .map_err(|e| corrupt(format!("key id {}: {e}", record.key_id)))?,
        public_key: record.public_key,
        added_by: record.added_by,
        added_at: record.added_at,
        endorsed_by,
    })
}

pub(crate) async fn list_keys(
    State(state): State<AppState>,
) -> Result<Json<Vec<TrustedKeyInfo>>, ApiError> {
    let records = state.store.catalog_keys().await?;
    records
        .into_iter()
        .map(key_info)
        .collect::<Result<_, _>>()
        .map(Json)
}

async fn trust_key(
    State(state): State<AppState>,
    Extension(admin): Extension<StaffIdentity>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<TrustedKeyInfo>), ApiError> {
    let request: TrustKey = read_json(&headers, body, BodyLimits::SMALL).await?;
    let key = PublicKey::from_pem(&request.public_key)
        .map_err(|e| ApiError::BadRequest(format!("public key: {e}")))?;
    let endorsement = match &request.endorsement {
        None => None,
        Some(endorsement) => {
            if endorsement.new_key() != &key {
                return Err(ApiError::BadRequest(format!(
                    "the endorsement is for key {}, not for key {}",
                    endorsement.new_key().id(),
                    key.id()
                )));
            }
            let trusted = trusted_keys(&state).await?;
            accept_endorsed_key(&trusted, endorsement).map_err(|e| {
                ApiError::BadRequest(format!(
                    "endorsement refused: {e} (it must be signed by a key the collector already \
                     trusts)"
                ))
            })?;
            Some(
                endorsement
                    .to_json()
                    .map_err(|e| ApiError::BadRequest(e.to_string()))?,
            )
        }
    };
    let record = CatalogKeyRecord {
        key_id: key.id().to_string(),
        public_key: key.to_pem(),
        endorsement,
        added_by: admin.name.clone(),
        added_at: state.clock.now(),
    };
    let added = state.store.trust_catalog_key(&record).await?;
    if added {
        audit::record(
            &state,
            Event::new(&admin.name, "catalog.trust")
                .subject(format!("key:{}", record.key_id))
                .detail(json!({
                    "key_id": record.key_id,
                    "endorsed": record.endorsement.is_some(),
                })),
        )
        .await?;
        tracing::info!(by = %admin.name, key = %record.key_id, "catalog key trusted");
    }
    let stored = state
        .store
        .catalog_keys()
        .await?
        .into_iter()
        .find(|k| k.key_id == record.key_id)
        .ok_or_else(|| ApiError::NotFound(format!("key {} vanished", record.key_id)))?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(key_info(stored)?)))
}

async fn publish(
    State(state): State<AppState>,
    Extension(admin): Extension<StaffIdentity>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    let value: serde_json::Value = read_json(&headers, body, BodyLimits::CATALOG).await?;
    let signed = SignedCatalog::from_json(&value.to_string())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let trusted = trusted_keys(&state).await?;
    let verified = match signed.verify(&trusted) {
        Ok(verified) => verified,
        Err(error) => {
            let message = if trusted.is_empty() {
                format!(
                    "{error}; the collector trusts no catalog key yet: trust the public key first \
                     with `lifeline-collector catalog trust lifeline-catalog.pub`"
                )
            } else {
                error.to_string()
            };
            audit::record(
                &state,
                Event::new(&admin.name, "catalog.publish_refused").detail(json!({
                    "version": signed.catalog_version(),
                    "key_id": signed.key_id().to_string(),
                    "reason": message,
                })),
            )
            .await?;
            return Err(ApiError::BadRequest(format!("catalog refused: {message}")));
        }
    };
    let catalog = verified.catalog();
    let actions = signed
        .actions()
        .iter()
        .map(|a| {
            a.to_json()
                .map(|json| (a.id().to_string(), json))
                .map_err(|e| ApiError::BadRequest(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let new = NewCatalog {
        version: catalog.version(),
        digest: catalog.digest(),
        key_id: verified.key_id().to_string(),
        document: signed
            .to_json()
            .map_err(|e| ApiError::BadRequest(e.to_string()))?,
        actions,
    };
    let outcome = state
        .store
        .publish_catalog(&new, &admin.name, state.clock.now())
        .await?;
    match outcome {
        PublishOutcome::Published {
            catalog: record,
            expired,
        } => {
            audit::record(
                &state,
                Event::new(&admin.name, "catalog.publish")
                    .subject(format!("catalog:{}", record.version))
                    .detail(json!({
                        "version": record.version,
                        "digest": record.digest,
                        "key_id": record.key_id,
                        "actions": record.action_count,
                        "expired_runs": expired.iter().map(|r| r.id).collect::<Vec<_>>(),
                    })),
            )
            .await?;
            // One entry per ended run, so each run's history in the audit log says what ended it.
            for run in &expired {
                audit::record(
                    &state,
                    Event::new(&admin.name, "run.expire")
                        .subject(format!("run:{}", run.id))
                        .detail(json!({
                            "action": run.action_id,
                            "machine": run.machine_id,
                            "catalog_version": run.catalog_version,
                            "replaced_by": record.version,
                            "was": if run.was_awaiting_approval {
                                "awaiting_approval"
                            } else {
                                "queued"
                            },
                            "reason": run.reason,
                        })),
                )
                .await?;
                state.wakeups.wake(&Wakeups::run(run.id));
            }
            tracing::info!(
                by = %admin.name,
                version = record.version,
                expired_runs = expired.len(),
                "catalog published"
            );
            Ok((
                StatusCode::CREATED,
                Json(Published {
                    catalog: to_catalog_info(record)?,
                    changed: true,
                    expired_runs: expired.iter().map(|r| r.id).collect(),
                }),
            ))
        }
        PublishOutcome::Unchanged(record) => Ok((
            StatusCode::OK,
            Json(Published {
                catalog: to_catalog_info(record)?,
                changed: false,
                expired_runs: Vec::new(),
            }),
        )),
        PublishOutcome::Rollback { current } => Err(ApiError::Conflict(format!(
            "catalog version {} is older than the published version {current}: catalogs only \
             move forward (raise `version` in the catalog file and sign it again)",
            new.version
        ))),
        PublishOutcome::VersionReused { version } => Err(ApiError::Conflict(format!(
            "catalog version {version} is already published with different content: one version \
             number must never name two catalogs (raise `version` and sign it again)"
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Actions

fn parse_stored(stored: &StoredAction) -> Result<SignedAction, ApiError> {
    SignedAction::from_json(&stored.signed).map_err(|e| {
        ApiError::internal(crate::store::StoreError::Corrupt(format!(
            "stored action {}: {e}",
            stored.action_id
        )))
    })
}

fn needs_approval(risk: Risk, marked: bool) -> bool {
    risk == Risk::High || marked
}

pub(crate) async fn list_actions(
    State(state): State<AppState>,
) -> Result<Json<Vec<ActionInfo>>, ApiError> {
    let stored = state.store.catalog_actions().await?;
    let mut out = Vec::with_capacity(stored.len());
    for s in &stored {
        // One unreadable row (a damaged or tampered database) must not hide every other action.
        let signed = match parse_stored(s) {
            Ok(signed) => signed,
            Err(error) => {
                tracing::error!(action = %s.action_id, %error, "stored action is unreadable");
                continue;
            }
        };
        let action = signed.unverified_action();
        out.push(ActionInfo {
            id: action.id().to_string(),
            title: action.title().to_owned(),
            description: action.description().to_owned(),
            risk: action.risk(),
            consent: action.consent(),
            requires_approval: needs_approval(action.risk(), s.require_approval),
            params: action
                .params()
                .iter()
                .map(|(name, ty)| ParamInfo::of(&name.to_string(), ty))
                .collect(),
            timeout_secs: action.timeout_secs(),
            os: action.os().iter().map(|o| o.as_str().to_owned()).collect(),
            catalog_version: signed.catalog_version(),
        });
    }
    Ok(Json(out))
}

async fn set_approval(
    State(state): State<AppState>,
    Extension(admin): Extension<StaffIdentity>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ActionInfo>, ApiError> {
    let setting: ApprovalSetting = read_json(&headers, body, BodyLimits::SMALL).await?;
    let Some(stored) = state.store.catalog_action(&id).await? else {
        return Err(no_action(&id));
    };
    let risk = parse_stored(&stored)?.unverified_action().risk();
    if !setting.required && risk == Risk::High {
        return Err(ApiError::Conflict(format!(
            "action {id} is high risk: every run needs an admin's approval"
        )));
    }
    state
        .store
        .set_action_approval(&id, setting.required, &admin.name, state.clock.now())
        .await?;
    audit::record(
        &state,
        Event::new(&admin.name, "action.approval_setting")
            .subject(format!("action:{id}"))
            .detail(json!({ "required": setting.required })),
    )
    .await?;
    let Json(all) = list_actions(State(state)).await?;
    all.into_iter()
        .find(|a| a.id == id)
        .map(Json)
        .ok_or_else(|| no_action(&id))
}

fn no_action(id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no action {id:?} in the published catalog (see `lifeline-collector actions list`)"
    ))
}

// ---------------------------------------------------------------------------------------------
// Runs

/// A reason as sent: at most [`REASON_MAX_LEN`] characters without control characters but tab
/// and newline (the limits the OpenAPI document states); blank means none.
fn check_reason(reason: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(reason) = reason else {
        return Ok(None);
    };
    let length = reason.chars().count();
    if length > REASON_MAX_LEN {
        return Err(ApiError::BadRequest(format!(
            "reason is {length} characters long; at most {REASON_MAX_LEN} are allowed"
        )));
    }
    if reason
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ApiError::BadRequest(
            "reason contains control characters".to_owned(),
        ));
    }
    let reason = reason.trim();
    Ok((!reason.is_empty()).then(|| reason.to_owned()))
}

pub(crate) async fn create_run(
    State(state): State<AppState>,
    Extension(staff): Extension<StaffIdentity>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<RunStatus>), ApiError> {
    let request: NewRun = read_json(&headers, body, BodyLimits::SMALL).await?;
    let reason = check_reason(request.reason.as_deref())?;
    let machine_id =
        work::target(&state, &request.machine, request.ticket, "run actions on").await?;
    let Some(stored) = state.store.catalog_action(&request.action).await? else {
        return Err(no_action(&request.action));
    };
    let signed = parse_stored(&stored)?;
    let action = signed.unverified_action();
    // Checked here so a bad value is refused before anything is queued; the agent checks again
    // against the action it verified.
    action
        .validate_params(&request.params)
        .map_err(|e| ApiError::BadRequest(format!("nothing was queued: {e}")))?;
    let approval =
        needs_approval(action.risk(), stored.require_approval) || request.require_approval;
    let now = state.clock.now();
    let run_id = RunId::from_bytes(random_bytes::<16>().map_err(ApiError::internal)?);
    let new = NewRunRecord {
        run_id: run_id.to_string(),
        machine_id: machine_id.clone(),
        action_id: stored.action_id.clone(),
        signed_action: stored.signed.clone(),
        params_json: serde_json::to_string(&request.params).map_err(ApiError::internal)?,
        requested_by: staff.name.clone(),
        reason: reason.clone(),
        ticket: request.ticket,
        risk: action.risk().to_string(),
        catalog_version: signed.catalog_version(),
        timeout_secs: action.timeout_secs(),
        approval_expires_at: approval.then(|| now + time::Duration::seconds(APPROVAL_TTL_SECS)),
        dispatch_expires_at: now + time::Duration::seconds(RUN_TTL_SECS),
    };
    let record = state.store.create_run(&new, now).await?;
    audit::record(
        &state,
        Event::new(&staff.name, "run.request")
            .subject(format!("run:{}", record.id))
            .detail(json!({
                "action": record.action_id,
                "machine": record.machine_id,
                "params": request.params,
                "reason": reason,
                "ticket": request.ticket,
                "run_id": record.run_id,
                "needs_approval": approval,
            })),
    )
    .await?;
    if approval {
        tracing::info!(by = %staff.name, run = record.id, action = %record.action_id, "run waits for approval");
    } else {
        state.wakeups.wake(&Wakeups::machine(&machine_id));
        tracing::info!(by = %staff.name, run = record.id, action = %record.action_id, "run queued");
    }
    Ok((
        StatusCode::CREATED,
        Json(run_status_of(&state, record, now).await?),
    ))
}

/// `?state=awaiting_approval&machine=M&limit=N`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    machine: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

async fn list_runs(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<RunStatus>>, ApiError> {
    let awaiting_approval = match q.state.as_deref() {
        None => false,
        Some("awaiting_approval") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "state {other:?} cannot be filtered on (only awaiting_approval)"
            )));
        }
    };
    let machine_id = match q.machine.as_deref() {
        Some(key) => Some(find(&state, key).await?.0.summary.id),
        None => None,
    };
    let filter = RunFilter {
        awaiting_approval,
        machine_id,
        limit: match q.limit {
            None => 100,
            Some(n) if (1..=LIST_LIMIT_MAX).contains(&n) => n,
            Some(n) => {
                return Err(ApiError::BadRequest(format!(
                    "limit {n} is out of range (1 to {LIST_LIMIT_MAX})"
                )));
            }
        },
    };
    let now = state.clock.now();
    let records = state.store.runs(&filter, now).await?;
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        out.push(run_status_of(&state, record, now).await?);
    }
    Ok(Json(out))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitQuery {
    #[serde(default)]
    wait_secs: Option<u64>,
}

async fn run_status(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    Query(q): Query<WaitQuery>,
) -> Result<Json<RunStatus>, ApiError> {
    let wait = Duration::from_secs(q.wait_secs.unwrap_or(0).min(MAX_WAIT_SECS));
    let load = |now| {
        let state = state.clone();
        async move {
            let record = state
                .store
                .run(id, now)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no run {id}")))?;
            run_status_of(&state, record, now).await
        }
    };
    work::long_poll(&state, Wakeups::run(id), wait, load, |s: &RunStatus| {
        (s.state.is_final(), s.expires_at)
    })
    .await
    .map(Json)
}

pub(crate) async fn decide(
    state: AppState,
    admin: StaffIdentity,
    id: u64,
    approve: bool,
    decision: Decision,
) -> Result<Json<RunStatus>, ApiError> {
    debug_assert_eq!(admin.role, Role::Admin);
    let reason = check_reason(decision.reason.as_deref())?;
    if !approve && reason.is_none() {
        return Err(ApiError::BadRequest(
            "a denial needs a reason (--reason TEXT): the requester sees it".to_owned(),
        ));
    }
    let now = state.clock.now();
    let Some(run) = state.store.run(id, now).await? else {
        return Err(ApiError::NotFound(format!("no run request {id}")));
    };
    if run.requested_by == admin.name {
        audit::record(
            &state,
            Event::new(&admin.name, "run.self_approval_refused").subject(format!("run:{id}")),
        )
        .await?;
        return Err(ApiError::Forbidden(format!(
            "nobody approves their own request: run {id} was requested by {}; another admin \
             must decide",
            run.requested_by
        )));
    }
    let not_pending = |run: Option<&RunRecord>| {
        let approval = run.map_or("gone", |r| r.approval.as_str());
        ApiError::Conflict(
            match (approval, run.and_then(|r| r.expired_reason.as_deref())) {
                ("not_needed", _) => format!("run {id} did not need an approval"),
                ("expired", Some(reason)) => {
                    format!("run request {id} has expired: {reason}; request the run again")
                }
                ("expired", None) => format!("run request {id} has expired; request the run again"),
                (other, _) => format!("run request {id} is already {other}"),
            },
        )
    };
    if run.approval != "pending" {
        return Err(not_pending(Some(&run)));
    }
    // Two people, not one person with two accounts: an admin whose account the requester
    // created may have been made for exactly this approval.
    if approve {
        let approver = state
            .store
            .list_users()
            .await?
            .into_iter()
            .find(|u| u.name == admin.name);
        if approver.and_then(|u| u.created_by).as_deref() == Some(run.requested_by.as_str()) {
            audit::record(
                &state,
                Event::new(&admin.name, "run.self_approval_refused")
                    .subject(format!("run:{id}"))
                    .detail(json!({ "reason": "approver_created_by_requester" })),
            )
            .await?;
            return Err(ApiError::Forbidden(format!(
                "run {id} was requested by {requester}, who created your account {name:?}; an \
                 admin whose account {requester} did not create must decide",
                requester = run.requested_by,
                name = admin.name
            )));
        }
    }
    let dispatch_expires = now + time::Duration::seconds(RUN_TTL_SECS);
    let Some(record) = state
        .store
        .decide_run(
            id,
            approve,
            &admin.name,
            reason.as_deref(),
            dispatch_expires,
            now,
        )
        .await?
    else {
        let run = state.store.run(id, now).await?;
        return Err(not_pending(run.as_ref()));
    };
    audit::record(
        &state,
        Event::new(
            &admin.name,
            if approve { "run.approve" } else { "run.deny" },
        )
        .subject(format!("run:{id}"))
        .detail(json!({
            "action": record.action_id,
            "machine": record.machine_id,
            "requested_by": record.requested_by,
            "reason": reason,
        })),
    )
    .await?;
    state.wakeups.wake(&Wakeups::run(id));
    if approve {
        state.wakeups.wake(&Wakeups::machine(&record.machine_id));
    }
    run_status_of(&state, record, now).await.map(Json)
}

async fn decision_body(headers: &HeaderMap, body: Body) -> Result<Decision, ApiError> {
    if headers.contains_key(axum::http::header::CONTENT_TYPE) {
        read_json(headers, body, BodyLimits::SMALL).await
    } else {
        Ok(Decision::default())
    }
}

pub(crate) async fn approve(
    State(state): State<AppState>,
    Extension(admin): Extension<StaffIdentity>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<RunStatus>, ApiError> {
    let decision = decision_body(&headers, body).await?;
    decide(state, admin, id, true, decision).await
}

pub(crate) async fn deny(
    State(state): State<AppState>,
    Extension(admin): Extension<StaffIdentity>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<RunStatus>, ApiError> {
    let decision = decision_body(&headers, body).await?;
    decide(state, admin, id, false, decision).await
}

/// Where a run stands, from its approval, its work and the agent's answer.
pub(crate) fn run_state(record: &RunRecord, result: Option<&RunResult>) -> RunState {
    match record.approval.as_str() {
        "pending" => return RunState::AwaitingApproval,
        "denied" => return RunState::Denied,
        "expired" => return RunState::Expired,
        _ => {}
    }
    match record.work_state {
        None | Some(WorkState::Queued) => RunState::Queued,
        Some(WorkState::Delivered) => match record.stage.as_deref() {
            Some("running") => RunState::Running,
            Some("awaiting_consent") => RunState::AwaitingConsent,
            _ => RunState::Delivered,
        },
        Some(WorkState::Expired) => RunState::Expired,
        Some(WorkState::Failed) => RunState::Failed,
        Some(WorkState::Done) => match result {
            Some(RunResult::Refused { .. }) => RunState::Refused,
            Some(r) if r.succeeded() => RunState::Succeeded,
            _ => RunState::Failed,
        },
    }
}

/// The technician's view of a stored run.
pub async fn run_status_of(
    state: &AppState,
    record: RunRecord,
    now: OffsetDateTime,
) -> Result<RunStatus, ApiError> {
    let corrupt = |what: String| ApiError::internal(crate::store::StoreError::Corrupt(what));
    let signed = SignedAction::from_json(&record.signed_action).ok();
    let action_title = signed.as_ref().map_or_else(
        || "(unreadable action)".to_owned(),
        |s| s.unverified_action().title().to_owned(),
    );
    let params: BTreeMap<String, String> = serde_json::from_str(&record.params_json)
        .map_err(|e| corrupt(format!("run {} params: {e}", record.id)))?;
    let result: Option<RunResult> = match &record.result {
        Some(text) => Some(
            serde_json::from_str(text)
                .map_err(|e| corrupt(format!("run {} result: {e}", record.id)))?,
        ),
        None => record
            .work_error
            .as_ref()
            .map(|e| RunResult::refused(e.clone())),
    };
    let recheck: Option<Recheck> = match &record.recheck {
        Some(text) => Some(
            serde_json::from_str(text)
                .map_err(|e| corrupt(format!("run {} recheck: {e}", record.id)))?,
        ),
        None => None,
    };
    let online = match state.store.machine(&record.machine_id, now).await? {
        Some(m) => is_online(m.summary.last_seen_at, now),
        None => false,
    };
    let run_state = run_state(&record, result.as_ref());
    let approval = record
        .approval
        .parse::<Approval>()
        .map_err(|e| corrupt(e.to_string()))?;
    let risk = match record.risk.as_str() {
        "low" => Risk::Low,
        "medium" => Risk::Medium,
        "high" => Risk::High,
        other => return Err(corrupt(format!("run {} risk {other:?}", record.id))),
    };
    let expires_at = match run_state {
        RunState::AwaitingApproval => record.approval_expires_at,
        RunState::Queued => record.work_expires_at,
        _ => None,
    };
    Ok(RunStatus {
        id: record.id,
        run_id: record.run_id,
        action: record.action_id,
        action_title,
        risk,
        machine_id: record.machine_id,
        hostname: record.hostname,
        params,
        requested_by: record.requested_by,
        reason: record.reason,
        ticket: record.ticket,
        approval,
        decided_by: record.decided_by,
        decision_reason: record.decision_reason,
        state: run_state,
        expired_reason: (run_state == RunState::Expired)
            .then_some(record.expired_reason)
            .flatten(),
        machine_online: online,
        created_at: record.created_at,
        expires_at,
        delivered_at: record.delivered_at,
        started_at: record.started_at,
        finished_at: record.finished_at,
        result,
        recheck,
    })
}

// ---------------------------------------------------------------------------------------------
// The agent's side

/// The run request for work `work_id`, as the agent receives it; `None` when the work is not a
/// run. A stored run that cannot even be read is finished as failed (and audited) here.
pub async fn run_request_for(
    state: &AppState,
    machine_id: &str,
    work_id: u64,
) -> Result<Option<RunRequest>, ApiError> {
    let Some(run) = state.store.run_by_work(work_id).await? else {
        return Ok(None);
    };
    let built = SignedAction::from_json(&run.signed_action)
        .map_err(|e| e.to_string())
        .and_then(|action| {
            let params = serde_json::from_str(&run.params_json).map_err(|e| e.to_string())?;
            Ok((action, params))
        });
    let (action, params) = match built {
        Ok(built) => built,
        Err(error) => {
            let error = format!(
                "the collector could not read stored run {}: {error}",
                run.id
            );
            let finish = RunFinish {
                result: None,
                work_error: Some(error.clone()),
                recheck: None,
                note: format!("Action {} (run {}) failed: {error}", run.action_id, run.id),
            };
            state
                .store
                .finish_run(machine_id, work_id, &finish, state.clock.now())
                .await?;
            audit::record(
                state,
                Event::new(audit::COLLECTOR, "run.failed")
                    .subject(format!("run:{}", run.id))
                    .detail(json!({ "error": error })),
            )
            .await?;
            state.wakeups.wake(&Wakeups::run(run.id));
            return Ok(None);
        }
    };
    let expires_at = run.work_expires_at.ok_or_else(|| {
        ApiError::internal(crate::store::StoreError::Corrupt(format!(
            "run {} has no work",
            run.id
        )))
    })?;
    audit::record(
        state,
        Event::new(machine_actor(machine_id), "run.dispatch")
            .subject(format!("run:{}", run.id))
            .detail(json!({ "action": run.action_id, "run_id": run.run_id })),
    )
    .await?;
    state.wakeups.wake(&Wakeups::run(run.id));
    Ok(Some(RunRequest {
        run_id: run.run_id,
        machine_id: run.machine_id,
        action,
        params,
        requested_by: run.requested_by,
        approved_by: (run.approval == "approved")
            .then_some(run.decided_by)
            .flatten(),
        reason: run.reason,
        ticket: run.ticket,
        expires_at,
        endorsements: endorsements(state).await?,
    }))
}

async fn progress(
    State(state): State<AppState>,
    Extension(agent): Extension<AgentIdentity>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let progress: WorkProgress = read_json(&headers, body, BodyLimits::SMALL).await?;
    let stage = progress.stage.as_str();
    if !state
        .store
        .run_progress(&agent.machine_id, id, stage, state.clock.now())
        .await?
    {
        return Err(ApiError::NotFound(format!(
            "no delivered run {id} for this machine"
        )));
    }
    let run = state.store.run_by_work(id).await?;
    if let Some(run) = &run {
        state.wakeups.wake(&Wakeups::run(run.id));
    }
    Ok(Json(json!({ "run": run.map(|r| r.id), "stage": stage })))
}

/// Records a run's outcome from the agent; `None` when work `work_id` is not an open run of
/// this machine.
pub async fn finish(
    state: &AppState,
    machine_id: &str,
    work_id: u64,
    outcome: RunOutcome,
    before: Option<Box<Snapshot>>,
    after: Option<Box<Snapshot>>,
) -> Result<Option<RunRecord>, ApiError> {
    let Some(run) = state.store.run_by_work(work_id).await? else {
        return Ok(None);
    };
    if run.machine_id != machine_id {
        return Ok(None);
    }
    if outcome.run_id != run.run_id {
        return Err(ApiError::BadRequest(format!(
            "this is the result of run id {}, but work {work_id} is run id {}",
            outcome.run_id, run.run_id
        )));
    }
    let result = bounded(outcome.result);
    let recheck = recheck(&run, &result, before, after);
    let note = timeline_note(&run, &result, recheck.as_ref());
    let finish = RunFinish {
        result: Some(serde_json::to_string(&result).map_err(ApiError::internal)?),
        work_error: None,
        recheck: recheck
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(ApiError::internal)?,
        note,
    };
    let Some(record) = state
        .store
        .finish_run(machine_id, work_id, &finish, state.clock.now())
        .await?
    else {
        return Ok(None);
    };
    let event = match &result {
        RunResult::Refused { reason } => Event::new(machine_actor(machine_id), "run.refused")
            .detail(json!({ "action": record.action_id, "reason": reason })),
        RunResult::Finished {
            exit_code,
            signal,
            timed_out,
            duration_ms,
            stdout_truncated,
            stderr_truncated,
            ..
        } => Event::new(machine_actor(machine_id), "run.result").detail(json!({
            "action": record.action_id,
            "exit_code": exit_code,
            "signal": signal,
            "timed_out": timed_out,
            "duration_ms": duration_ms,
            "output_truncated": *stdout_truncated || *stderr_truncated,
        })),
    };
    audit::record(state, event.subject(format!("run:{}", record.id))).await?;
    state.wakeups.wake(&Wakeups::run(record.id));
    tracing::info!(machine = %machine_id, run = record.id, action = %record.action_id, "run finished");
    Ok(Some(record))
}

/// Records that the agent could not handle run `work_id` at all (an older agent, say).
pub async fn fail(
    state: &AppState,
    machine_id: &str,
    work_id: u64,
    error: String,
) -> Result<Option<RunRecord>, ApiError> {
    let Some(run) = state.store.run_by_work(work_id).await? else {
        return Ok(None);
    };
    let finish = RunFinish {
        result: None,
        work_error: Some(error.clone()),
        recheck: None,
        note: format!(
            "Action {} (run {}) on {} failed on the agent: {error}",
            run.action_id, run.id, run.hostname
        ),
    };
    let Some(record) = state
        .store
        .finish_run(machine_id, work_id, &finish, state.clock.now())
        .await?
    else {
        return Ok(None);
    };
    audit::record(
        state,
        Event::new(machine_actor(machine_id), "run.failed")
            .subject(format!("run:{}", record.id))
            .detail(json!({ "action": record.action_id, "error": error })),
    )
    .await?;
    state.wakeups.wake(&Wakeups::run(record.id));
    Ok(Some(record))
}

/// Longest reason or output the collector keeps from an agent, per field.
const RESULT_TEXT_MAX: usize = 16 * 1024 * 1024;

fn cut(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut at = max;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    text.truncate(at);
    true
}

/// The agent's answer with every text bounded (an agent is untrusted input too). Public for the
/// fuzz targets in `fuzz/`.
pub fn bounded(result: RunResult) -> RunResult {
    match result {
        RunResult::Refused { mut reason } => {
            cut(&mut reason, 4096);
            RunResult::Refused { reason }
        }
        RunResult::Finished {
            exit_code,
            signal,
            timed_out,
            duration_ms,
            mut stdout,
            mut stderr,
            stdout_truncated,
            stderr_truncated,
        } => {
            let out_cut = cut(&mut stdout, RESULT_TEXT_MAX);
            let err_cut = cut(&mut stderr, RESULT_TEXT_MAX);
            RunResult::Finished {
                exit_code,
                signal,
                timed_out,
                duration_ms,
                stdout,
                stderr,
                stdout_truncated: stdout_truncated || out_cut,
                stderr_truncated: stderr_truncated || err_cut,
            }
        }
    }
}

/// Findings before and after the run, computed here from the agent's snapshots (the agent's own
/// findings are not trusted).
fn recheck(
    run: &RunRecord,
    result: &RunResult,
    before: Option<Box<Snapshot>>,
    after: Option<Box<Snapshot>>,
) -> Option<Recheck> {
    if matches!(result, RunResult::Refused { .. }) {
        return None;
    }
    let (before, after) = (before?, after?);
    let sections = SignedAction::from_json(&run.signed_action)
        .map(|a| {
            a.unverified_action()
                .recheck()
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect()
        })
        .unwrap_or_default();
    let before = findings::evaluate(&before);
    let after = findings::evaluate(&after);
    let changes = changes(&before, &after);
    Some(Recheck {
        sections,
        before,
        after,
        changes,
    })
}

/// One line per finding that changed between `before` and `after`.
pub fn changes(before: &[Finding], after: &[Finding]) -> Vec<String> {
    let label = |f: &Finding| match &f.subject {
        Some(subject) => format!("{} ({subject})", f.id),
        None => f.id.clone(),
    };
    let mut lines = Vec::new();
    for b in before {
        match after.iter().find(|a| a.fingerprint() == b.fingerprint()) {
            None => lines.push(format!("{}: {} → cleared", label(b), b.evidence)),
            Some(a) if a.evidence != b.evidence => {
                lines.push(format!("{}: {} → {}", label(b), b.evidence, a.evidence));
            }
            Some(_) => lines.push(format!("{}: unchanged ({})", label(b), b.evidence)),
        }
    }
    for a in after {
        if !before.iter().any(|b| b.fingerprint() == a.fingerprint()) {
            lines.push(format!("{}: new: {}", label(a), a.evidence));
        }
    }
    lines
}

fn excerpt(text: &str) -> String {
    let mut text = text.trim_end().to_owned();
    if cut(&mut text, NOTE_OUTPUT_MAX) {
        text.push_str(" […]");
    }
    text
}

/// The ticket timeline entry for a finished run.
fn timeline_note(run: &RunRecord, result: &RunResult, recheck: Option<&Recheck>) -> String {
    let mut note = format!(
        "Action {} (run {}) on {}, requested by {}",
        run.action_id, run.id, run.hostname, run.requested_by
    );
    if run.approval == "approved"
        && let Some(by) = &run.decided_by
    {
        note.push_str(&format!(", approved by {by}"));
    }
    note.push_str(": ");
    note.push_str(&result.ending());
    match result {
        RunResult::Refused { .. } => {}
        RunResult::Finished {
            stdout,
            stderr,
            stdout_truncated,
            stderr_truncated,
            ..
        } => {
            for (name, text, truncated) in [
                ("output", stdout, stdout_truncated),
                ("errors", stderr, stderr_truncated),
            ] {
                if !text.trim().is_empty() {
                    note.push_str(&format!("\n{name}:\n{}", excerpt(text)));
                    if *truncated {
                        note.push_str("\n[output truncated at the action's limit]");
                    }
                }
            }
        }
    }
    if let Some(recheck) = recheck {
        let (heading, lines) = recheck.summary();
        note.push_str(&format!("\n{heading}"));
        for line in lines {
            note.push_str(&format!("\n  {line}"));
        }
    }
    note
}

#[cfg(test)]
mod tests {
    use lifeline_shared::findings::Severity;

    use super::*;

    fn finding(id: &str, subject: Option<&str>, evidence: &str) -> Finding {
        Finding {
            id: id.into(),
            severity: Severity::Warning,
            title: id.into(),
            evidence: evidence.into(),
            subject: subject.map(Into::into),
            suggested_action: None,
        }
    }

    #[test]
    fn changes_name_what_cleared_changed_stayed_and_appeared() {
        let before = [
            finding("disk.full", Some("/"), "97% used"),
            finding("disk.full", Some("/var"), "95% used"),
            finding("units.failed", None, "3 failed units"),
        ];
        let after = [
            finding("disk.full", Some("/var"), "91% used"),
            finding("units.failed", None, "3 failed units"),
            finding("dns.fail", None, "example.org does not resolve"),
        ];
        assert_eq!(
            changes(&before, &after),
            [
                "disk.full (/): 97% used → cleared",
                "disk.full (/var): 95% used → 91% used",
                "units.failed: unchanged (3 failed units)",
                "dns.fail: new: example.org does not resolve",
            ]
        );
        assert!(changes(&[], &[]).is_empty());
    }

    #[test]
    fn agent_text_is_bounded_on_a_character_boundary() {
        let mut text = "é".repeat(10);
        assert!(cut(&mut text, 5));
        assert_eq!(text, "éé");
        let refused = bounded(RunResult::refused("x".repeat(10_000)));
        let RunResult::Refused { reason } = refused else {
            unreachable!()
        };
        assert_eq!(reason.len(), 4096);
    }
}

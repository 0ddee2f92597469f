//! Heartbeats, the agents' work long-poll and results, and live inspections technicians queue.
//!
//! An agent is its certificate: it only ever sees and answers its own work (another machine's
//! work id is "not found"). Long-polls park on a per-machine wake-up in [`crate::wakeup`] and
//! hold nothing else; expiry is applied lazily whenever work is read or fetched.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use lifeline_shared::findings;
use lifeline_shared::v1::api::MachineStatus;
use lifeline_shared::v1::api::paths;
use lifeline_shared::v1::snapshot::Snapshot;
use lifeline_shared::v1::work::{
    Heartbeat, HeartbeatAck, INSPECTION_TTL_SECS, InspectRequest, MAX_WAIT_SECS,
    OFFLINE_AFTER_SECS, WorkBatch, WorkItem, WorkKind, WorkResult, WorkStatus,
};
use serde::Deserialize;
use time::OffsetDateTime;

use super::AppState;
use super::actions;
use super::auth::{AgentIdentity, StaffIdentity};
use super::body::{BodyLimits, read_json};
use super::error::ApiError;
use super::extract::{Path, Query};
use super::machines::find;
use crate::store::{WorkOutcome, WorkRecord};
use crate::wakeup::Wakeups;

/// Longest error text an agent may report for failed work.
const WORK_ERROR_MAX_LEN: usize = 4096;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::AGENT_HEARTBEAT, post(heartbeat))
        .route(paths::AGENT_WORK, get(fetch_work))
        .route(paths::AGENT_WORK_RESULT, post(post_result))
        .route(paths::MACHINE_INSPECT, post(inspect))
        .route(paths::WORK, get(work_status))
}

/// `?wait_secs=N`, clamped to [`MAX_WAIT_SECS`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    #[serde(default)]
    wait_secs: Option<u64>,
}

impl WaitQuery {
    fn wait(&self) -> Duration {
        Duration::from_secs(self.wait_secs.unwrap_or(0).min(MAX_WAIT_SECS))
    }
}

/// Whether a machine last seen at `last_seen` counts as online at `now`.
pub fn is_online(last_seen: OffsetDateTime, now: OffsetDateTime) -> bool {
    now - last_seen <= time::Duration::seconds(OFFLINE_AFTER_SECS)
}

async fn heartbeat(
    State(state): State<AppState>,
    Extension(agent): Extension<AgentIdentity>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<HeartbeatAck>, ApiError> {
    let beat: Heartbeat = read_json(&headers, body, BodyLimits::SMALL).await?;
    beat.vitals
        .check()
        .map_err(|reason| ApiError::BadRequest(format!("invalid vitals: {reason}")))?;
    let json = serde_json::to_string(&beat.vitals).map_err(ApiError::internal)?;
    let now = state.clock.now();
    state
        .store
        .record_heartbeat(&agent.machine_id, &json, now)
        .await?;
    metrics::counter!("lifeline_heartbeats_total").increment(1);
    Ok(Json(HeartbeatAck { server_time: now }))
}

fn work_kind(name: &str) -> WorkKind {
    match name {
        "inspect" => WorkKind::Inspect,
        _ => WorkKind::Unsupported,
    }
}

async fn fetch_work(
    State(state): State<AppState>,
    Extension(agent): Extension<AgentIdentity>,
    Query(query): Query<WaitQuery>,
) -> Result<Json<WorkBatch>, ApiError> {
    let wait = query.wait();
    // Register before looking, so work queued in between still wakes us.
    let subscription = state.wakeups.subscribe(Wakeups::machine(&agent.machine_id));
    let notified = subscription.notify().notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    let mut items = take(&state, &agent.machine_id).await?;
    if items.is_empty() && !wait.is_zero() && tokio::time::timeout(wait, notified).await.is_ok() {
        items = take(&state, &agent.machine_id).await?;
    }
    Ok(Json(WorkBatch { items }))
}

async fn take(state: &AppState, machine_id: &str) -> Result<Vec<WorkItem>, ApiError> {
    let taken = state.store.take_work(machine_id, state.clock.now()).await?;
    let mut items = Vec::with_capacity(taken.len());
    for (id, kind) in taken {
        state.wakeups.wake(&Wakeups::work(id));
        let kind = match kind.as_str() {
            "run" => match actions::run_request_for(state, machine_id, id).await? {
                Some(request) => WorkKind::Run {
                    request: Box::new(request),
                },
                None => continue,
            },
            other => work_kind(other),
        };
        items.push(WorkItem { id, kind });
    }
    Ok(items)
}

async fn post_result(
    State(state): State<AppState>,
    Extension(agent): Extension<AgentIdentity>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let result: WorkResult = read_json(&headers, body, BodyLimits::WORK_RESULT).await?;
    let is_run = state.store.run_by_work(id).await?.is_some();
    let outcome = match result {
        WorkResult::Run { run, before, after } => {
            return match actions::finish(&state, &agent.machine_id, id, run, before, after).await? {
                Some(run) => Ok(Json(serde_json::json!({ "run": run.id })).into_response()),
                None => Err(not_open(&state, &agent.machine_id, id).await),
            };
        }
        WorkResult::Failed { error } if is_run => {
            let error = bounded_error(error);
            return match actions::fail(&state, &agent.machine_id, id, error).await? {
                Some(run) => Ok(Json(serde_json::json!({ "run": run.id })).into_response()),
                None => Err(not_open(&state, &agent.machine_id, id).await),
            };
        }
        WorkResult::Snapshot { mut snapshot } => {
            // The agent's own findings are not trusted: compute them here, as ingest does.
            snapshot.findings = findings::evaluate(&snapshot);
            WorkOutcome::Snapshot(serde_json::to_string(&snapshot).map_err(ApiError::internal)?)
        }
        WorkResult::Failed { error } => WorkOutcome::Failed(bounded_error(error)),
    };
    let now = state.clock.now();
    let Some(record) = state
        .store
        .finish_work(&agent.machine_id, id, &outcome, now)
        .await?
    else {
        return Err(not_open(&state, &agent.machine_id, id).await);
    };
    state.wakeups.wake(&Wakeups::work(id));
    tracing::info!(machine = %agent.machine_id, work = id, state = record.state.as_str(), "work finished");
    Ok(Json(status(&state, record, now).await?).into_response())
}

fn bounded_error(mut error: String) -> String {
    if error.len() > WORK_ERROR_MAX_LEN {
        let mut cut = WORK_ERROR_MAX_LEN;
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        error.truncate(cut);
    }
    error
}

/// Why a result for work `id` is not accepted: it is already finished, or not this machine's.
async fn not_open(state: &AppState, machine_id: &str, id: u64) -> ApiError {
    match state.store.work(id, state.clock.now()).await {
        Ok(Some(w)) if w.machine_id == machine_id => {
            ApiError::Conflict(format!("work {id} is already {}", w.state.as_str()))
        }
        Ok(_) => ApiError::NotFound(format!("no work {id} for this machine")),
        Err(e) => e.into(),
    }
}

pub(crate) async fn inspect(
    State(state): State<AppState>,
    Extension(staff): Extension<StaffIdentity>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<WorkStatus>), ApiError> {
    let request: InspectRequest = if headers.contains_key(axum::http::header::CONTENT_TYPE) {
        read_json(&headers, body, BodyLimits::SMALL).await?
    } else {
        InspectRequest::default()
    };
    let machine_id = target(&state, &key, request.ticket, "inspect").await?;
    let now = state.clock.now();
    let expires = now + time::Duration::seconds(INSPECTION_TTL_SECS);
    let id = state
        .store
        .queue_work(&machine_id, "inspect", request.ticket, expires, now)
        .await?;
    state.wakeups.wake(&Wakeups::machine(&machine_id));
    tracing::info!(by = %staff.name, machine = %machine_id, work = id, "inspection queued");
    let record = state
        .store
        .work(id, now)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no work {id}")))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(status(&state, record, now).await?),
    ))
}

/// The id of the active machine `key` names (id or host name) for staff who want to `what` it,
/// after checking that `ticket`, when given, exists.
pub async fn target(
    state: &AppState,
    key: &str,
    ticket: Option<u64>,
    what: &str,
) -> Result<String, ApiError> {
    let Json(machine) = find(state, key).await?;
    let machine_id = machine.summary.id;
    match machine.summary.status {
        MachineStatus::Active => {}
        MachineStatus::Revoked => {
            return Err(ApiError::Conflict(format!(
                "machine {machine_id} is revoked; nobody can {what} it"
            )));
        }
        MachineStatus::Pending => {
            return Err(ApiError::Conflict(format!(
                "machine {machine_id} is waiting for an administrator's approval; approve it first"
            )));
        }
    }
    if let Some(number) = ticket
        && state
            .store
            .ticket(number, state.clock.now())
            .await?
            .is_none()
    {
        return Err(ApiError::NotFound(format!("no ticket {number}")));
    }
    Ok(machine_id)
}

async fn work_status(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    Query(query): Query<WaitQuery>,
) -> Result<Json<WorkStatus>, ApiError> {
    let wait = query.wait();
    let load = |now| {
        let state = state.clone();
        async move {
            let record = state
                .store
                .work(id, now)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no work {id}")))?;
            status(&state, record, now).await
        }
    };
    long_poll(&state, Wakeups::work(id), wait, load, |s: &WorkStatus| {
        (s.state.is_final(), Some(s.expires_at))
    })
    .await
    .map(Json)
}

/// Loads something now and, unless it is `settled` or no wait was asked, once more after a
/// wake-up on `key`: at most `wait` later, and no later than just after the expiry `settled`
/// names, so the answer then says "expired". Registers for the wake-up before the first load,
/// so a change in between is not missed.
pub async fn long_poll<T, Fut>(
    state: &AppState,
    key: String,
    wait: Duration,
    load: impl Fn(OffsetDateTime) -> Fut,
    settled: impl Fn(&T) -> (bool, Option<OffsetDateTime>),
) -> Result<T, ApiError>
where
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let subscription = state.wakeups.subscribe(key);
    let notified = subscription.notify().notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    let now = state.clock.now();
    let first = load(now).await?;
    let (done, expires_at) = settled(&first);
    if done || wait.is_zero() {
        return Ok(first);
    }
    let until_expiry = expires_at
        .map(|at| (at - now).max(time::Duration::ZERO))
        .and_then(|d| Duration::try_from(d).ok())
        .unwrap_or(wait);
    let _ =
        tokio::time::timeout(wait.min(until_expiry + Duration::from_millis(50)), notified).await;
    load(state.clock.now()).await
}

async fn status(
    state: &AppState,
    record: WorkRecord,
    now: OffsetDateTime,
) -> Result<WorkStatus, ApiError> {
    let online = match state.store.machine(&record.machine_id, now).await? {
        Some(m) => is_online(m.summary.last_seen_at, now),
        None => false,
    };
    let snapshot = record
        .snapshot_json
        .as_deref()
        .map(serde_json::from_str::<Snapshot>)
        .transpose()
        .map_err(ApiError::internal)?
        .map(Box::new);
    Ok(WorkStatus {
        id: record.id,
        machine_id: record.machine_id,
        hostname: record.hostname,
        kind: work_kind(&record.kind),
        state: record.state,
        machine_online: online,
        ticket: record.ticket,
        created_at: record.created_at,
        expires_at: record.expires_at,
        delivered_at: record.delivered_at,
        finished_at: record.finished_at,
        error: record.error,
        snapshot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_machine_goes_offline_after_the_threshold() {
        let seen = OffsetDateTime::UNIX_EPOCH;
        let later = |secs| seen + time::Duration::seconds(secs);
        assert!(is_online(seen, later(OFFLINE_AFTER_SECS)));
        assert!(!is_online(seen, later(OFFLINE_AFTER_SECS + 1)));
    }

    #[test]
    fn waits_are_clamped_to_the_maximum() {
        let q = WaitQuery {
            wait_secs: Some(3600),
        };
        assert_eq!(q.wait(), Duration::from_secs(MAX_WAIT_SECS));
        assert_eq!(WaitQuery::default().wait(), Duration::ZERO);
    }
}

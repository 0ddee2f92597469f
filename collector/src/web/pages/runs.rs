//! A remote action run's page (where the run form leads), and the run view the ticket timeline
//! and the approval queue share.

use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use lifeline_shared::v1::actions::{RunState, RunStatus};
use lifeline_shared::v1::run::RunResult;

use super::{FindingView, label};
use crate::http::AppState;
use crate::http::actions::run_status_of;
use crate::web::session::ConsoleUser;
use crate::web::{Nav, PageError, render, when};

/// A run as pages show it.
#[derive(Debug, Clone)]
pub struct RunView {
    pub id: u64,
    pub action: String,
    pub title: String,
    pub risk: String,
    pub hostname: String,
    pub machine_id: String,
    pub params: Vec<(String, String)>,
    pub requested_by: String,
    pub reason: String,
    pub ticket: Option<u64>,
    pub approval: String,
    pub decided_by: String,
    pub decision_reason: String,
    /// `succeeded`, `failed`, ... for the CSS class.
    pub state: &'static str,
    pub state_label: String,
    pub is_final: bool,
    pub created: String,
    pub finished: String,
    /// What the agent said: exit code, signal, timeout, or why nothing ran.
    pub outcome: String,
    pub stdout: String,
    pub stderr: String,
    pub truncated: bool,
    pub has_result: bool,
    pub changes: Vec<String>,
    pub before: Vec<FindingView>,
    pub after: Vec<FindingView>,
    pub has_recheck: bool,
}

impl RunView {
    pub fn of(run: &RunStatus) -> RunView {
        let mut view = RunView {
            id: run.id,
            action: run.action.clone(),
            title: run.action_title.clone(),
            risk: run.risk.to_string(),
            hostname: run.hostname.clone(),
            machine_id: run.machine_id.clone(),
            params: run
                .params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            requested_by: run.requested_by.clone(),
            reason: run.reason.clone().unwrap_or_default(),
            ticket: run.ticket,
            approval: label(run.approval.as_str()),
            decided_by: run.decided_by.clone().unwrap_or_default(),
            decision_reason: run.decision_reason.clone().unwrap_or_default(),
            state: run.state.as_str(),
            state_label: match &run.expired_reason {
                // askama escapes it; the reason is the collector's own text anyway.
                Some(reason) => format!("{}: {reason}", label(run.state.as_str())),
                None => label(run.state.as_str()),
            },
            is_final: run.state.is_final(),
            created: when(run.created_at),
            finished: run.finished_at.map(when).unwrap_or_default(),
            outcome: String::new(),
            stdout: String::new(),
            stderr: String::new(),
            truncated: false,
            has_result: run.result.is_some(),
            changes: Vec::new(),
            before: Vec::new(),
            after: Vec::new(),
            has_recheck: run.recheck.is_some(),
        };
        if let Some(result) = &run.result {
            view.outcome = result.ending();
        }
        match &run.result {
            Some(RunResult::Refused { .. }) => {}
            Some(RunResult::Finished {
                stdout,
                stderr,
                stdout_truncated,
                stderr_truncated,
                ..
            }) => {
                view.stdout = stdout.clone();
                view.stderr = stderr.clone();
                view.truncated = *stdout_truncated || *stderr_truncated;
            }
            None => {}
        }
        if let Some(recheck) = &run.recheck {
            view.changes = recheck.changes.clone();
            view.before = recheck.before.iter().map(FindingView::of).collect();
            view.after = recheck.after.iter().map(FindingView::of).collect();
        }
        view
    }
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    nav: Nav,
    run: RunView,
    /// Seconds until the page reloads itself while the run is not finished.
    refresh: Option<u32>,
}

/// `GET /runs/{id}`: where a run stands; reloads itself until it is final.
pub async fn page(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    path: Result<Path<u64>, axum::extract::rejection::PathRejection>,
) -> Result<Response, PageError> {
    let Path(id) =
        path.map_err(|_| PageError::bad_request("a run number is a positive whole number"))?;
    let now = state.clock.now();
    let record = state
        .store
        .run(id, now)
        .await?
        .ok_or_else(|| PageError::new(StatusCode::NOT_FOUND, format!("no run {id}")))?;
    let status = run_status_of(&state, record, now).await?;
    let refresh = match status.state {
        s if s.is_final() => None,
        RunState::AwaitingApproval => Some(15),
        _ => Some(2),
    };
    Ok(render(
        StatusCode::OK,
        &RunPage {
            nav: Nav::new(&user, "queue"),
            run: RunView::of(&status),
            refresh,
        },
    ))
}

//! Recurring problems, the knowledge base and help-desk metrics (issue 9): `GET` routes for
//! technicians and admins, the resolution-note rule of `PATCH /api/v1/tickets/{n}`, and the
//! summary figures as Prometheus gauges.
//!
//! The figures themselves are computed by [`crate::reports::summarize`] from the facts the
//! store loads; knowledge matches are ranked by [`crate::knowledge::rank`].

use std::sync::Mutex;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use lifeline_shared::v1::actions::RunState;
use lifeline_shared::v1::api::{TicketStatus, TicketUpdate};
use lifeline_shared::v1::reports::{
    KNOWN_ERROR_MIN_TICKETS, KbResults, LIST_LIMIT_MAX, RECURRING_DEFAULT_WINDOW,
    RESOLUTION_NOTE_MAX_LEN, RecurringProblem, RecurringReport, ResolutionExample,
    SUMMARY_DEFAULT_WINDOW, SimilarTicket, SimilarTickets, Summary, TicketAction, TimeFigures,
    TimesBy, Window, paths,
};
use lifeline_shared::v1::run::RunResult;
use serde::Deserialize;
use time::OffsetDateTime;

use super::AppState;
use super::error::ApiError;
use super::extract::{Path, Query};
use crate::reports::{ReportFacts, RunFacts};
use crate::store::RunRecord;
use crate::{knowledge, reports};

/// Answers of `similar` when no `limit` is given.
pub const SIMILAR_DEFAULT_LIMIT: u32 = 10;
/// Answers of `recurring` and `kb` when no `limit` is given.
pub const LIST_DEFAULT_LIMIT: u32 = 20;
/// The window of the Prometheus gauges.
pub const METRICS_WINDOW: &str = "7d";
/// The gauges are recomputed at a scrape at most this often.
const METRICS_REFRESH: time::Duration = time::Duration::minutes(1);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::TICKET_SIMILAR, get(similar))
        .route(paths::REPORTS_RECURRING, get(recurring))
        .route(paths::REPORTS_SUMMARY, get(summary))
        .route(paths::KB, get(kb))
}

/// `limit`, from 1 to [`LIST_LIMIT_MAX`].
pub fn limit(given: Option<u32>, default: u32) -> Result<u32, ApiError> {
    match given {
        None => Ok(default),
        Some(n) if (1..=LIST_LIMIT_MAX).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::BadRequest(format!(
            "limit {n} is out of range (1 to {LIST_LIMIT_MAX})"
        ))),
    }
}

/// `since`, or `default` when absent.
pub fn window(given: Option<&str>, default: &str) -> Result<Window, ApiError> {
    given
        .unwrap_or(default)
        .parse()
        .map_err(|e: lifeline_shared::v1::reports::BadWindow| ApiError::BadRequest(e.to_string()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    #[serde(default)]
    limit: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowQuery {
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KbQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

/// Where a stored run ended up (an unreadable result counts as failed).
fn state_of(record: &RunRecord) -> RunState {
    let result: Option<RunResult> = record
        .result
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok());
    super::actions::run_state(record, result.as_ref())
}

/// Ticket `n`'s keys and the earlier tickets that share them.
pub async fn similar_of(state: &AppState, n: u64, limit: u32) -> Result<SimilarTickets, ApiError> {
    let answer = state
        .store
        .similar_tickets(n, limit, state.clock.now())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no ticket #{n}")))?;
    let similar = answer
        .similar
        .into_iter()
        .map(|s| SimilarTicket {
            number: s.summary.number,
            machine_id: s.summary.machine_id,
            hostname: s.summary.hostname,
            description: s.summary.description,
            status: s.summary.status,
            priority: s.summary.priority,
            created_at: s.summary.created_at,
            resolved_at: s.resolved_at,
            resolution_note: s.resolution_note,
            shared_keys: s.shared_keys,
            actions: s
                .runs
                .iter()
                .map(|r| TicketAction {
                    run: r.id,
                    action: r.action_id.clone(),
                    state: state_of(r),
                    finished_at: r.finished_at,
                })
                .collect(),
        })
        .collect();
    Ok(SimilarTickets {
        number: n,
        keys: answer.keys,
        similar,
    })
}

/// `GET /api/v1/tickets/{n}/similar?limit=N`.
async fn similar(
    State(state): State<AppState>,
    Path(n): Path<u64>,
    Query(q): Query<LimitQuery>,
) -> Result<Json<SimilarTickets>, ApiError> {
    let limit = limit(q.limit, SIMILAR_DEFAULT_LIMIT)?;
    Ok(Json(similar_of(&state, n, limit).await?))
}

/// Fingerprint keys of the tickets opened in `window` (ending now), ranked.
pub async fn recurring_report(
    state: &AppState,
    window: Window,
    limit: u32,
) -> Result<RecurringReport, ApiError> {
    let until = state.clock.now();
    let since = window.start(until);
    let problems = state
        .store
        .recurring_problems(since, until, limit)
        .await?
        .into_iter()
        .map(|r| RecurringProblem {
            known_error_candidate: r.tickets >= KNOWN_ERROR_MIN_TICKETS,
            key: r.key,
            tickets: r.tickets,
            machines: r.machines,
            open: r.open,
            first_seen: r.first_seen,
            last_seen: r.last_seen,
            example: r
                .example
                .map(|(ticket, note)| ResolutionExample { ticket, note }),
        })
        .collect();
    Ok(RecurringReport {
        window: window.to_string(),
        since,
        until,
        problems,
    })
}

/// `GET /api/v1/reports/recurring?since=30d&limit=N`.
async fn recurring(
    State(state): State<AppState>,
    Query(q): Query<WindowQuery>,
) -> Result<Json<RecurringReport>, ApiError> {
    let window = window(q.since.as_deref(), RECURRING_DEFAULT_WINDOW)?;
    let limit = limit(q.limit, LIST_DEFAULT_LIMIT)?;
    Ok(Json(recurring_report(&state, window, limit).await?))
}

/// Every summary figure for `window` ending now.
pub async fn summary_report(state: &AppState, window: Window) -> Result<Summary, ApiError> {
    let until = state.clock.now();
    let facts = state.store.report_facts(window.start(until), until).await?;
    let runs = facts
        .runs
        .iter()
        .filter_map(|r| {
            Some(RunFacts {
                action: r.action_id.clone(),
                state: state_of(r),
                finished_at: r.finished_at?,
            })
        })
        .collect();
    let facts = ReportFacts {
        tickets: facts.tickets,
        runs,
    };
    Ok(reports::summarize(window, until, &facts))
}

/// `GET /api/v1/reports/summary?since=7d`.
async fn summary(
    State(state): State<AppState>,
    Query(q): Query<WindowQuery>,
) -> Result<Json<Summary>, ApiError> {
    if q.limit.is_some() {
        return Err(ApiError::BadRequest(
            "limit is not a parameter of the summary".to_owned(),
        ));
    }
    let window = window(q.since.as_deref(), SUMMARY_DEFAULT_WINDOW)?;
    Ok(Json(summary_report(&state, window).await?))
}

/// Resolved tickets with a note matching every word of `q`, best first.
pub async fn kb_search(state: &AppState, q: &str, limit: u32) -> Result<KbResults, ApiError> {
    let words = knowledge::query_words(q).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let candidates = state.store.knowledge_candidates(&words).await?;
    let hits = knowledge::rank(&words, candidates, limit as usize);
    Ok(KbResults { words, hits })
}

/// `GET /api/v1/kb?q=TEXT&limit=N`.
async fn kb(
    State(state): State<AppState>,
    Query(q): Query<KbQuery>,
) -> Result<Json<KbResults>, ApiError> {
    let limit = limit(q.limit, LIST_DEFAULT_LIMIT)?;
    let text = q.q.unwrap_or_default();
    Ok(Json(kb_search(&state, &text, limit).await?))
}

/// The resolution note of a ticket update, checked: not blank, at most
/// [`RESOLUTION_NOTE_MAX_LEN`] bytes, and only when the update resolves or closes the ticket
/// or the ticket already is resolved or closed.
pub async fn resolution_note(
    state: &AppState,
    n: u64,
    update: &TicketUpdate,
) -> Result<Option<String>, ApiError> {
    let Some(note) = update.resolution_note.as_deref() else {
        return Ok(None);
    };
    if note.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "resolution_note must not be empty".to_owned(),
        ));
    }
    let length = note.chars().count();
    if length > RESOLUTION_NOTE_MAX_LEN {
        return Err(ApiError::BadRequest(format!(
            "resolution_note is {length} characters; the limit is {RESOLUTION_NOTE_MAX_LEN}"
        )));
    }
    let note = note.trim();
    let done = |s: TicketStatus| matches!(s, TicketStatus::Resolved | TicketStatus::Closed);
    let refusal = |status| {
        format!(
            "a resolution note goes with status resolved or closed (ticket #{n} would be {status})"
        )
    };
    match update.status {
        // The body contradicts itself (the OpenAPI document says so too).
        Some(status) if !done(status) => return Err(ApiError::BadRequest(refusal(status))),
        Some(_) => {}
        None => {
            let status = state
                .store
                .ticket(n, state.clock.now())
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no ticket #{n}")))?
                .summary
                .status;
            // A well-formed request that the ticket's state refuses.
            if !done(status) {
                return Err(ApiError::Conflict(refusal(status)));
            }
        }
    }
    Ok(Some(note.to_owned()))
}

/// When the gauges were last computed (the recorder they go to is process-wide too).
static METRICS_REFRESHED: Mutex<Option<OffsetDateTime>> = Mutex::new(None);

/// Recomputes the summary gauges for [`METRICS_WINDOW`] unless that was done less than a
/// minute ago (by the collector's clock). A failure is logged; the old values stay.
pub async fn refresh_metrics(state: &AppState) {
    let now = state.clock.now();
    {
        let mut last = METRICS_REFRESHED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|at| at <= now && now - at < METRICS_REFRESH) {
            return;
        }
        *last = Some(now);
    }
    let figures = match window(Some(METRICS_WINDOW), METRICS_WINDOW) {
        Ok(window) => summary_report(state, window).await,
        Err(error) => Err(error),
    };
    match figures {
        Ok(summary) => publish(&summary),
        Err(error) => tracing::warn!(%error, "cannot compute the summary metrics"),
    }
}

/// `NaN` when there is nothing to measure (Prometheus shows it as such).
fn gauge_value(value: Option<f64>) -> f64 {
    value.unwrap_or(f64::NAN)
}

fn publish(summary: &Summary) {
    let window = summary.window.clone();
    metrics::gauge!("lifeline_tickets_opened", "window" => window.clone())
        .set(summary.opened as f64);
    metrics::gauge!("lifeline_tickets_resolved", "window" => window.clone())
        .set(summary.resolved as f64);
    for (name, times) in [
        ("lifeline_first_response_seconds", &summary.first_response),
        ("lifeline_resolution_seconds", &summary.resolution),
    ] {
        publish_times(name, &window, times);
    }
    for (target, figures) in [
        ("first_response", summary.sla.first_response),
        ("resolution", summary.sla.resolution),
        ("all", summary.sla.all),
    ] {
        metrics::gauge!(
            "lifeline_sla_compliance_ratio",
            "window" => window.clone(),
            "target" => target
        )
        .set(gauge_value(figures.ratio));
    }
    metrics::gauge!("lifeline_actions_run", "window" => window.clone())
        .set(summary.actions.run as f64);
    metrics::gauge!("lifeline_actions_success_ratio", "window" => window.clone())
        .set(gauge_value(summary.actions.success_ratio));
    metrics::gauge!("lifeline_satisfaction_ratio", "window" => window)
        .set(gauge_value(summary.satisfaction.yes_ratio));
}

/// One gauge per group (`priority`/`tier` "all" for the overall figure) and quantile.
fn publish_times(name: &'static str, window: &str, times: &TimesBy) {
    let mut groups: Vec<(String, String, TimeFigures)> =
        vec![("all".to_owned(), "all".to_owned(), times.all)];
    groups.extend(
        times
            .by_priority
            .iter()
            .map(|p| (p.priority.to_string(), "all".to_owned(), p.figures)),
    );
    groups.extend(
        times
            .by_tier
            .iter()
            .map(|t| ("all".to_owned(), t.tier.to_string(), t.figures)),
    );
    for (priority, tier, figures) in groups {
        for (quantile, secs) in [("0.5", figures.median_secs), ("0.9", figures.p90_secs)] {
            metrics::gauge!(
                name,
                "window" => window.to_owned(),
                "priority" => priority.clone(),
                "tier" => tier.clone(),
                "quantile" => quantile
            )
            .set(gauge_value(secs.map(|s| s as f64)));
        }
    }
}

//! Reports (issue 9): the help desk's summary figures for a window, the recurring problems
//! (fingerprint keys ranked by tickets, with known-error candidates) and a knowledge-base
//! search of resolved tickets. Figures come from the same functions as the API's.

use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use lifeline_shared::v1::reports::{RECURRING_DEFAULT_WINDOW, SUMMARY_DEFAULT_WINDOW, TimeFigures};
use serde::Deserialize;

use crate::http::AppState;
use crate::http::reports::{
    LIST_DEFAULT_LIMIT, kb_search, recurring_report, summary_report, window,
};
use crate::reports::{actions_line, human_duration, percent, satisfaction_line, target_line};
use crate::web::session::ConsoleUser;
use crate::web::{Nav, PageError, clip, non_empty, render, when};

/// `?since=7d&recurring=30d&q=words`; blank fields take the defaults.
#[derive(Debug, Default, Deserialize)]
pub struct ReportsQuery {
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    recurring: Option<String>,
    #[serde(default)]
    q: Option<String>,
}

/// A row of the durations table: count, median and 90th percentile of each kind of time.
#[derive(Debug)]
struct TimeRow {
    label: String,
    first: Cells,
    resolution: Cells,
}

#[derive(Debug)]
struct Cells {
    count: String,
    median: String,
    p90: String,
}

#[derive(Debug)]
struct KeyRow {
    key: String,
    tickets: u64,
    machines: u64,
}

#[derive(Debug)]
struct ActionRow {
    action: String,
    run: u64,
    succeeded: u64,
    success: String,
}

#[derive(Debug)]
struct RecurringRow {
    key: String,
    tickets: u64,
    machines: u64,
    open: u64,
    first_seen: String,
    last_seen: String,
    example_ticket: Option<u64>,
    example_note: String,
    candidate: bool,
}

#[derive(Debug)]
struct KbRow {
    number: u64,
    hostname: String,
    resolved: String,
    description: String,
    snippet: String,
    keys: String,
}

#[derive(Template)]
#[template(path = "reports.html")]
struct ReportsPage {
    nav: Nav,
    since: String,
    recurring_since: String,
    period: String,
    q: String,
    opened: u64,
    resolved: u64,
    sla_all: String,
    sla_first: String,
    sla_resolution: String,
    actions_line: String,
    satisfaction: String,
    times: Vec<TimeRow>,
    top: Vec<KeyRow>,
    actions: Vec<ActionRow>,
    recurring: Vec<RecurringRow>,
    kb: Option<Vec<KbRow>>,
    known_error_min: u64,
}

fn cells(f: &TimeFigures) -> Cells {
    Cells {
        count: f.count.to_string(),
        median: f.median_secs.map_or_else(|| "–".to_owned(), human_duration),
        p90: f.p90_secs.map_or_else(|| "–".to_owned(), human_duration),
    }
}

/// `GET /reports`.
pub async fn page(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    query: Result<Query<ReportsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let query = query
        .map(|Query(q)| q)
        .map_err(|e| PageError::bad_request(e.body_text()))?;
    let since = non_empty(query.since).unwrap_or_else(|| SUMMARY_DEFAULT_WINDOW.to_owned());
    let recurring_since =
        non_empty(query.recurring).unwrap_or_else(|| RECURRING_DEFAULT_WINDOW.to_owned());
    let summary = summary_report(&state, window(Some(&since), SUMMARY_DEFAULT_WINDOW)?).await?;
    let recurring = recurring_report(
        &state,
        window(Some(&recurring_since), RECURRING_DEFAULT_WINDOW)?,
        LIST_DEFAULT_LIMIT,
    )
    .await?;
    let q = non_empty(query.q);
    let kb = match &q {
        Some(q) => Some(
            kb_search(&state, q, LIST_DEFAULT_LIMIT)
                .await?
                .hits
                .into_iter()
                .map(|h| KbRow {
                    number: h.number,
                    hostname: h.hostname,
                    resolved: h.resolved_at.map(when).unwrap_or_default(),
                    description: clip(&h.description, 120),
                    snippet: h.snippet,
                    keys: h.keys.join(", "),
                })
                .collect(),
        ),
        None => None,
    };

    let mut times = vec![TimeRow {
        label: "All tickets".to_owned(),
        first: cells(&summary.first_response.all),
        resolution: cells(&summary.resolution.all),
    }];
    for (first, resolution) in summary
        .first_response
        .by_priority
        .iter()
        .zip(&summary.resolution.by_priority)
    {
        times.push(TimeRow {
            label: format!("Priority {}", first.priority),
            first: cells(&first.figures),
            resolution: cells(&resolution.figures),
        });
    }
    for (first, resolution) in summary
        .first_response
        .by_tier
        .iter()
        .zip(&summary.resolution.by_tier)
    {
        times.push(TimeRow {
            label: format!("Tier {}", first.tier),
            first: cells(&first.figures),
            resolution: cells(&resolution.figures),
        });
    }
    let a = &summary.actions;
    let page = ReportsPage {
        nav: Nav::new(&user, "reports"),
        period: format!("{} to {}", when(summary.since), when(summary.until)),
        since: summary.window.clone(),
        recurring_since: recurring.window.clone(),
        q: q.unwrap_or_default(),
        opened: summary.opened,
        resolved: summary.resolved,
        sla_all: target_line(&summary.sla.all),
        sla_first: target_line(&summary.sla.first_response),
        sla_resolution: target_line(&summary.sla.resolution),
        actions_line: actions_line(a),
        satisfaction: satisfaction_line(&summary.satisfaction),
        times,
        top: summary
            .top_findings
            .iter()
            .map(|k| KeyRow {
                key: k.key.clone(),
                tickets: k.tickets,
                machines: k.machines,
            })
            .collect(),
        actions: a
            .by_action
            .iter()
            .map(|f| ActionRow {
                action: f.action.clone(),
                run: f.run,
                succeeded: f.succeeded,
                success: percent(f.success_ratio),
            })
            .collect(),
        recurring: recurring
            .problems
            .into_iter()
            .map(|p| RecurringRow {
                key: p.key,
                tickets: p.tickets,
                machines: p.machines,
                open: p.open,
                first_seen: when(p.first_seen),
                last_seen: when(p.last_seen),
                example_ticket: p.example.as_ref().map(|e| e.ticket),
                example_note: p.example.map(|e| clip(&e.note, 160)).unwrap_or_default(),
                candidate: p.known_error_candidate,
            })
            .collect(),
        kb,
        known_error_min: lifeline_shared::v1::reports::KNOWN_ERROR_MIN_TICKETS,
    };
    Ok(render(StatusCode::OK, &page))
}

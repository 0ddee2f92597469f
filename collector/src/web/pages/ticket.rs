//! A ticket: description, reporter, machine, findings first, snapshots, vitals chart, timeline,
//! and the forms that change it (comment, update, inspect, run an action).
//!
//! Every form hands its change to the API's handler (`http::tickets`, `http::work`,
//! `http::actions`), so the checks, the audit events and the wake-ups are the API's.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use lifeline_shared::v1::actions::{ActionInfo, NewRun};
use lifeline_shared::v1::api::{
    NewComment, Priority, TicketDetail, TicketStatus, TicketUpdate, Tier, VitalsSample,
};
use lifeline_shared::v1::vitals::Vitals;
use lifeline_shared::v1::work::InspectRequest;
use serde::Deserialize;

use super::runs::RunView;
use super::{Choice, FindingView, label, severity};
use crate::http::actions::run_status_of;
use crate::http::work::is_online;
use crate::http::{AppState, actions, tickets, work};
use crate::store::RunFilter;
use crate::web::chart::{self, VitalsChart};
use crate::web::session::ConsoleUser;
use crate::web::snapshot_view::SnapshotView;
use crate::web::{Nav, PageError, csrf, form, json_body, non_empty, render, when};

/// Heartbeats drawn in the chart.
const CHART_SAMPLES: u32 = 60;

#[derive(Debug)]
struct SnapshotBlock {
    title: String,
    received: String,
    view: SnapshotView,
    open: bool,
}

#[derive(Debug)]
struct TimelineEntry {
    when: String,
    /// `comment`, `note` (the collector's own entries) or `run`.
    kind: &'static str,
    author: String,
    body: String,
    run: Option<RunView>,
}

#[derive(Debug)]
struct ParamField {
    name: String,
    input_id: String,
    /// `select`, `number` or `text`.
    input: &'static str,
    values: Vec<String>,
    min: String,
    max: String,
    max_len: String,
    accepts: String,
}

#[derive(Debug)]
struct ActionForm {
    id: String,
    title: String,
    description: String,
    risk: String,
    requires_approval: bool,
    consent: bool,
    params: Vec<ParamField>,
}

impl ActionForm {
    fn of(action: &ActionInfo) -> ActionForm {
        ActionForm {
            id: action.id.clone(),
            title: action.title.clone(),
            description: action.description.clone(),
            risk: action.risk.to_string(),
            requires_approval: action.requires_approval,
            consent: action.consent,
            params: action
                .params
                .iter()
                .map(|p| ParamField {
                    name: p.name.clone(),
                    input_id: format!("run-{}-{}", action.id, p.name),
                    input: if !p.values.is_empty() {
                        "select"
                    } else if p.min.is_some() || p.max.is_some() {
                        "number"
                    } else {
                        "text"
                    },
                    values: p.values.clone(),
                    min: p.min.map(|v| v.to_string()).unwrap_or_default(),
                    max: p.max.map(|v| v.to_string()).unwrap_or_default(),
                    max_len: p.max_len.map(|v| v.to_string()).unwrap_or_default(),
                    accepts: p.accepts.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Debug)]
struct InspectionNotice {
    id: u64,
    state: String,
}

/// The end user's answer to "Did this fix it?" (issue 9).
#[derive(Debug)]
struct FeedbackView {
    when: String,
    fixed: bool,
    comment: String,
}

#[derive(Template)]
#[template(path = "ticket.html")]
struct TicketPage {
    nav: Nav,
    number: u64,
    description: String,
    reporter: String,
    hostname: String,
    machine_id: String,
    machine_online: bool,
    os: String,
    status: String,
    priority: &'static str,
    tier: u8,
    assignee: String,
    worst: &'static str,
    created: String,
    updated: String,
    findings: Vec<FindingView>,
    snapshots: Vec<SnapshotBlock>,
    chart: Option<VitalsChart>,
    chart_width: f64,
    chart_height: f64,
    timeline: Vec<TimelineEntry>,
    statuses: Vec<Choice>,
    priorities: Vec<Choice>,
    tiers: Vec<Choice>,
    assignees: Vec<Choice>,
    actions: Vec<ActionForm>,
    inspection: Option<InspectionNotice>,
    csrf_field: &'static str,
    // Service levels (issue 9).
    sla: Option<super::sla::SlaCard>,
    // Recurring problems and knowledge (issue 9).
    resolution_note: String,
    fingerprints: Vec<String>,
    similar: Vec<SimilarView>,
    feedback: Vec<FeedbackView>,
}

/// Earlier tickets listed under "Similar tickets".
const SIMILAR_ON_PAGE: u32 = 5;

/// An earlier ticket with the same problem, as the ticket page shows it.
#[derive(Debug)]
struct SimilarView {
    number: u64,
    hostname: String,
    status: String,
    opened: String,
    description: String,
    shared_keys: String,
    resolution_note: String,
    /// "action: state" of each run on it.
    actions: Vec<String>,
}

pub(super) fn ticket_number(
    path: Result<Path<u64>, axum::extract::rejection::PathRejection>,
) -> Result<u64, PageError> {
    path.map(|Path(n)| n)
        .map_err(|_| PageError::bad_request("a ticket number is a positive whole number"))
}

async fn load(state: &AppState, n: u64) -> Result<TicketDetail, PageError> {
    state
        .store
        .ticket(n, state.clock.now())
        .await?
        .ok_or_else(|| PageError::new(StatusCode::NOT_FOUND, format!("no ticket #{n}")))
}

/// `?inspection=ID` after "inspect now".
#[derive(Debug, Default, Deserialize)]
pub struct TicketQuery {
    #[serde(default)]
    inspection: Option<u64>,
}

/// `GET /tickets/{n}`.
pub async fn page(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    path: Result<Path<u64>, axum::extract::rejection::PathRejection>,
    query: Result<Query<TicketQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let n = ticket_number(path)?;
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let detail = load(&state, n).await?;
    let now = state.clock.now();
    let summary = &detail.summary;
    let machine = state.store.machine(&summary.machine_id, now).await?;
    let machine_online = machine
        .as_ref()
        .is_some_and(|m| is_online(m.summary.last_seen_at, now));

    let samples: Vec<VitalsSample> = state
        .store
        .vitals(&summary.machine_id, CHART_SAMPLES)
        .await?
        .into_iter()
        .filter_map(|(received_at, json)| {
            serde_json::from_str::<Vitals>(&json)
                .ok()
                .map(|vitals| VitalsSample {
                    received_at,
                    vitals,
                })
        })
        .collect();

    let os = detail
        .snapshots
        .iter()
        .rev()
        .filter_map(|s| s.snapshot.system.as_ref()?.data.as_ref())
        .find_map(|system| {
            system.os_pretty_name.clone().or_else(|| {
                system
                    .os_name
                    .as_ref()
                    .map(|name| format!("{name} {}", system.os_version.clone().unwrap_or_default()))
            })
        })
        .unwrap_or_default();

    let snapshots = detail
        .snapshots
        .iter()
        .enumerate()
        .map(|(i, s)| SnapshotBlock {
            title: if i == 0 {
                "Diagnostics at report time".to_owned()
            } else {
                format!("Live inspection {i}")
            },
            received: when(s.received_at),
            view: SnapshotView::of(&s.snapshot),
            open: i == 0,
        })
        .collect();

    // The timeline: comments and the collector's notes, and this ticket's action runs.
    let mut timeline: Vec<(time::OffsetDateTime, TimelineEntry)> = detail
        .comments
        .iter()
        .map(|c| {
            (
                c.created_at,
                TimelineEntry {
                    when: when(c.created_at),
                    kind: if c.author == "lifeline" {
                        "note"
                    } else {
                        "comment"
                    },
                    author: c.author.clone(),
                    body: c.body.clone(),
                    run: None,
                },
            )
        })
        .collect();
    let runs = state
        .store
        .runs(
            &RunFilter {
                machine_id: Some(summary.machine_id.clone()),
                limit: 500,
                ..RunFilter::default()
            },
            now,
        )
        .await?;
    for record in runs.into_iter().filter(|r| r.ticket == Some(n)) {
        let created = record.created_at;
        let status = run_status_of(&state, record, now).await?;
        timeline.push((
            created,
            TimelineEntry {
                when: when(created),
                kind: "run",
                author: status.requested_by.clone(),
                body: String::new(),
                run: Some(RunView::of(&status)),
            },
        ));
    }
    timeline.sort_by_key(|(at, _)| *at);

    let users = state.store.list_users().await?;
    let mut assignees = vec![Choice::new("", "Unassigned", summary.assignee.is_none())];
    assignees.extend(
        users
            .iter()
            .filter(|u| u.revoked_at.is_none() || summary.assignee.as_deref() == Some(&u.name))
            .map(|u| {
                Choice::new(
                    &u.name,
                    &u.name,
                    summary.assignee.as_deref() == Some(&u.name),
                )
            }),
    );
    let Json(catalog) = actions::list_actions(State(state.clone())).await?;
    let inspection = match query.inspection {
        Some(id) => state
            .store
            .work(id, now)
            .await?
            .filter(|w| w.ticket == Some(n))
            .map(|w| InspectionNotice {
                id,
                state: w.state.as_str().to_owned(),
            }),
        None => None,
    };

    let similar = crate::http::reports::similar_of(&state, n, SIMILAR_ON_PAGE)
        .await?
        .similar
        .into_iter()
        .map(|s| SimilarView {
            number: s.number,
            hostname: s.hostname,
            status: label(s.status.as_str()),
            opened: when(s.created_at),
            description: crate::web::clip(&s.description, 160),
            shared_keys: s.shared_keys.join(", "),
            resolution_note: s.resolution_note.unwrap_or_default(),
            actions: s
                .actions
                .iter()
                .map(|a| format!("{} (run {}): {}", a.action, a.run, a.state))
                .collect(),
        })
        .collect();

    let page = TicketPage {
        nav: Nav::new(&user, "queue"),
        number: n,
        description: summary.description.clone(),
        reporter: detail.os_user.clone().unwrap_or_default(),
        hostname: summary.hostname.clone(),
        machine_id: summary.machine_id.clone(),
        machine_online,
        os,
        status: label(summary.status.as_str()),
        priority: summary.priority.as_str(),
        tier: summary.tier.get(),
        assignee: summary.assignee.clone().unwrap_or_default(),
        worst: severity(summary.worst_finding),
        created: when(summary.created_at),
        updated: when(summary.updated_at),
        findings: detail.findings.iter().map(FindingView::of).collect(),
        snapshots,
        chart: chart::vitals(&samples),
        chart_width: chart::WIDTH,
        chart_height: chart::HEIGHT,
        timeline: timeline.into_iter().map(|(_, e)| e).collect(),
        statuses: TicketStatus::ALL
            .iter()
            .map(|s| Choice::new(s.as_str(), label(s.as_str()), *s == summary.status))
            .collect(),
        priorities: Priority::ALL
            .iter()
            .map(|p| Choice::new(p.as_str(), label(p.as_str()), *p == summary.priority))
            .collect(),
        tiers: (1..=3u8)
            .map(|t| Choice::new(t.to_string(), format!("Tier {t}"), t == summary.tier.get()))
            .collect(),
        assignees,
        actions: catalog.iter().map(ActionForm::of).collect(),
        inspection,
        csrf_field: csrf::FIELD,
        sla: super::sla::SlaCard::of(summary),
        resolution_note: detail.resolution_note.clone().unwrap_or_default(),
        fingerprints: detail.fingerprints.clone(),
        similar,
        feedback: detail
            .feedback
            .iter()
            .map(|f| FeedbackView {
                when: when(f.created_at),
                fixed: f.fixed,
                comment: f.comment.clone().unwrap_or_default(),
            })
            .collect(),
    };
    Ok(render(StatusCode::OK, &page))
}

pub(super) fn back_to(n: u64) -> Response {
    Redirect::to(&format!("/tickets/{n}")).into_response()
}

#[derive(Debug, Deserialize)]
pub struct CommentForm {
    body: String,
    /// The "visible to the user" checkbox: present when ticked.
    #[serde(default)]
    public: Option<String>,
}

/// `POST /tickets/{n}/comment`.
pub async fn comment(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    path: Result<Path<u64>, axum::extract::rejection::PathRejection>,
    body: Result<Form<CommentForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let n = ticket_number(path)?;
    let CommentForm { body, public } = form(body)?;
    let (headers, body) = json_body(&NewComment {
        body,
        public: public.is_some(),
    })?;
    let _answer = tickets::add_comment(
        State(state),
        Extension(user.staff()),
        crate::http::extract::Path(n),
        headers,
        body,
    )
    .await?;
    Ok(back_to(n))
}

#[derive(Debug, Deserialize)]
pub struct UpdateForm {
    status: String,
    priority: String,
    tier: String,
    #[serde(default)]
    assignee: String,
    /// How the problem was solved (issue 9); sent when not blank.
    #[serde(default)]
    resolution_note: String,
}

/// `POST /tickets/{n}/update`: sends only what changed.
pub async fn update(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    path: Result<Path<u64>, axum::extract::rejection::PathRejection>,
    body: Result<Form<UpdateForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let n = ticket_number(path)?;
    let update = form(body)?;
    let current = load(&state, n).await?.summary;
    let bad = |e: &dyn std::fmt::Display| PageError::bad_request(e.to_string());
    let status: TicketStatus = update.status.parse().map_err(|e| bad(&e))?;
    let priority: Priority = update.priority.parse().map_err(|e| bad(&e))?;
    let tier: Tier = update.tier.parse().map_err(|e: String| bad(&e))?;
    let assignee = update.assignee.trim().to_owned();
    let change = TicketUpdate {
        status: (status != current.status).then_some(status),
        priority: (priority != current.priority).then_some(priority),
        tier: (tier != current.tier).then_some(tier),
        assignee: (current.assignee.as_deref().unwrap_or("") != assignee).then_some(assignee),
        resolution_note: non_empty(Some(update.resolution_note)),
    };
    if change.is_empty() {
        return Ok(back_to(n));
    }
    let (headers, body) = json_body(&change)?;
    let _answer = tickets::update_ticket(
        State(state),
        Extension(user.staff()),
        crate::http::extract::Path(n),
        headers,
        body,
    )
    .await?;
    Ok(back_to(n))
}

/// `POST /tickets/{n}/inspect`: a live inspection of the ticket's machine, attached to it.
pub async fn inspect(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    path: Result<Path<u64>, axum::extract::rejection::PathRejection>,
) -> Result<Response, PageError> {
    let n = ticket_number(path)?;
    let machine = load(&state, n).await?.summary.machine_id;
    let (headers, body) = json_body(&InspectRequest { ticket: Some(n) })?;
    let (_, Json(queued)) = work::inspect(
        State(state),
        Extension(user.staff()),
        crate::http::extract::Path(machine),
        headers,
        body,
    )
    .await?;
    Ok(Redirect::to(&format!("/tickets/{n}?inspection={}", queued.id)).into_response())
}

/// Field names of the run form besides `p.NAME` parameters.
const PARAM_PREFIX: &str = "p.";

/// `POST /tickets/{n}/run`: requests a run of a catalog action on the ticket's machine.
pub async fn run(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    path: Result<Path<u64>, axum::extract::rejection::PathRejection>,
    body: Result<Form<Vec<(String, String)>>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let n = ticket_number(path)?;
    let fields = form(body)?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let action = non_empty(field("action"))
        .ok_or_else(|| PageError::bad_request("choose an action to run"))?;
    let params: BTreeMap<String, String> = fields
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(PARAM_PREFIX)?.to_owned(), v.clone())))
        .collect();
    let machine = load(&state, n).await?.summary.machine_id;
    let request = NewRun {
        action,
        machine,
        params,
        ticket: Some(n),
        reason: non_empty(field("reason")),
        require_approval: field("require_approval").is_some_and(|v| v == "on"),
    };
    let (headers, body) = json_body(&request)?;
    let (_, Json(run)) =
        actions::create_run(State(state), Extension(user.staff()), headers, body).await?;
    Ok(Redirect::to(&format!("/runs/{}", run.id)).into_response())
}

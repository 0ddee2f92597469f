//! The ticket queue: filters, sorting, search, counts per status.

use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use lifeline_shared::v1::api::{Priority, TicketFilter, TicketSort, TicketStatus, Tier};
use serde::Deserialize;

use super::{Choice, label, severity};
use crate::http::AppState;
use crate::web::session::ConsoleUser;
use crate::web::{Nav, PageError, ago, clip, non_empty, render};

/// The queue's query string; blank fields (a form's "any") mean no filter.
#[derive(Debug, Default, Deserialize)]
pub struct QueueQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    tier: Option<String>,
    #[serde(default)]
    assignee: Option<String>,
    #[serde(default)]
    machine: Option<String>,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    sort: Option<String>,
}

/// The value a filter field stands for: "" for unassigned tickets.
const UNASSIGNED: &str = "-";

impl QueueQuery {
    fn filter(&self) -> Result<TicketFilter, PageError> {
        let parse = |value: &Option<String>| non_empty(value.clone());
        let bad = |e: &dyn std::fmt::Display| PageError::bad_request(e.to_string());
        Ok(TicketFilter {
            status: parse(&self.status)
                .map(|s| s.parse::<TicketStatus>())
                .transpose()
                .map_err(|e| bad(&e))?,
            priority: parse(&self.priority)
                .map(|s| s.parse::<Priority>())
                .transpose()
                .map_err(|e| bad(&e))?,
            tier: parse(&self.tier)
                .map(|s| s.parse::<Tier>())
                .transpose()
                .map_err(|e| bad(&e))?,
            assignee: parse(&self.assignee).map(
                |a| {
                    if a == UNASSIGNED { String::new() } else { a }
                },
            ),
            machine: parse(&self.machine),
            q: parse(&self.q),
            sort: parse(&self.sort)
                .map(|s| s.parse::<TicketSort>())
                .transpose()
                .map_err(|e| bad(&e))?,
        })
    }
}

#[derive(Debug)]
struct Row {
    number: u64,
    hostname: String,
    description: String,
    status: String,
    priority: &'static str,
    tier: u8,
    assignee: String,
    worst: &'static str,
    age: String,
    // Service levels (issue 9).
    due: super::sla::DueCell,
}

#[derive(Debug)]
struct StatusCount {
    value: &'static str,
    label: String,
    count: u64,
    current: bool,
}

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage {
    nav: Nav,
    rows: Vec<Row>,
    counts: Vec<StatusCount>,
    total: u64,
    statuses: Vec<Choice>,
    priorities: Vec<Choice>,
    tiers: Vec<Choice>,
    assignees: Vec<Choice>,
    machines: Vec<Choice>,
    sorts: Vec<Choice>,
    q: String,
    filtered: bool,
}

fn choices<T: Copy>(
    all: &[T],
    name: impl Fn(T) -> &'static str,
    current: Option<T>,
    eq: impl Fn(T, T) -> bool,
) -> Vec<Choice> {
    all.iter()
        .map(|v| {
            Choice::new(
                name(*v),
                label(name(*v)),
                current.is_some_and(|c| eq(c, *v)),
            )
        })
        .collect()
}

/// `GET /`: the queue.
pub async fn page(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    query: Result<Query<QueueQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let Query(query) = query.map_err(|e| PageError::bad_request(e.body_text()))?;
    let filter = query.filter()?;
    let now = state.clock.now();
    let tickets = state.store.list_tickets(&filter, now).await?;
    let counted = state.store.ticket_status_counts().await?;
    let counts = TicketStatus::ALL
        .iter()
        .map(|s| StatusCount {
            value: s.as_str(),
            label: label(s.as_str()),
            count: counted
                .iter()
                .find(|(status, _)| status == s)
                .map_or(0, |(_, n)| *n),
            current: filter.status == Some(*s),
        })
        .collect();
    let total = counted.iter().map(|(_, n)| n).sum();
    let users = state.store.list_users().await?;
    let mut assignees = vec![Choice::new(
        UNASSIGNED,
        "Unassigned",
        filter.assignee.as_deref() == Some(""),
    )];
    assignees.extend(users.iter().filter(|u| u.revoked_at.is_none()).map(|u| {
        Choice::new(
            &u.name,
            &u.name,
            filter.assignee.as_deref() == Some(u.name.as_str()),
        )
    }));
    let machines = state
        .store
        .list_machines()
        .await?
        .into_iter()
        .map(|m| {
            let selected = filter
                .machine
                .as_deref()
                .is_some_and(|f| f == m.id || f == m.hostname);
            Choice::new(m.id, m.hostname, selected)
        })
        .collect();
    let rows = tickets
        .iter()
        .map(|t| Row {
            number: t.number,
            hostname: t.hostname.clone(),
            description: clip(&t.description, 120),
            status: label(t.status.as_str()),
            priority: t.priority.as_str(),
            tier: t.tier.get(),
            assignee: t.assignee.clone().unwrap_or_default(),
            worst: severity(t.worst_finding),
            age: ago(t.created_at, now),
            due: super::sla::DueCell::of(t.sla.as_ref()),
        })
        .collect();
    let page = QueuePage {
        nav: Nav::new(&user, "queue"),
        rows,
        counts,
        total,
        statuses: choices(
            TicketStatus::ALL,
            TicketStatus::as_str,
            filter.status,
            |a, b| a == b,
        ),
        priorities: choices(Priority::ALL, Priority::as_str, filter.priority, |a, b| {
            a == b
        }),
        tiers: (1..=3u8)
            .map(|t| {
                Choice::new(
                    t.to_string(),
                    format!("Tier {t}"),
                    filter.tier.map(Tier::get) == Some(t),
                )
            })
            .collect(),
        assignees,
        machines,
        sorts: TicketSort::ALL
            .iter()
            .map(|s| {
                let text = match s {
                    TicketSort::Newest => "Newest first",
                    TicketSort::Priority => "Highest priority first",
                    TicketSort::Age => "Oldest first",
                    TicketSort::Due => "Due soonest",
                };
                Choice::new(s.as_str(), text, filter.sort == Some(*s))
            })
            .collect(),
        q: filter.q.clone().unwrap_or_default(),
        filtered: filter != TicketFilter::default(),
    };
    Ok(render(StatusCode::OK, &page))
}

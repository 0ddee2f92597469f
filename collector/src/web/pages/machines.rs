//! Machines: online or offline, last seen, OS, open tickets; a machine with its latest snapshot.

use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use lifeline_shared::v1::snapshot::Snapshot;

use super::{FindingView, label};
use crate::http::AppState;
use crate::http::machines::{find, with_live_state};
use crate::http::work::is_online;
use crate::web::chart::{self, VitalsChart};
use crate::web::session::ConsoleUser;
use crate::web::snapshot_view::SnapshotView;
use crate::web::{Nav, PageError, ago, clip, render, when};

#[derive(Debug)]
struct MachineRow {
    id: String,
    hostname: String,
    status: String,
    online: bool,
    last_seen: String,
    os: String,
    open_tickets: u64,
}

#[derive(Template)]
#[template(path = "machines.html")]
struct MachinesPage {
    nav: Nav,
    rows: Vec<MachineRow>,
}

/// The OS line of a snapshot, when it has one.
fn os_of(snapshot: &Snapshot) -> String {
    let Some(system) = snapshot.system.as_ref().and_then(|s| s.data.as_ref()) else {
        return String::new();
    };
    system
        .os_pretty_name
        .clone()
        .or_else(|| {
            system
                .os_name
                .as_ref()
                .map(|name| format!("{name} {}", system.os_version.clone().unwrap_or_default()))
        })
        .unwrap_or_default()
}

async fn latest(state: &AppState, id: &str) -> Result<Option<(String, Snapshot)>, PageError> {
    let Some((at, json)) = state.store.latest_snapshot(id).await? else {
        return Ok(None);
    };
    match serde_json::from_str::<Snapshot>(&json) {
        Ok(snapshot) => Ok(Some((when(at), snapshot))),
        Err(error) => {
            tracing::warn!(machine = %id, %error, "unreadable stored snapshot");
            Ok(None)
        }
    }
}

/// `GET /machines`.
pub async fn list(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let machines = state.store.list_machines().await?;
    let mut rows = Vec::with_capacity(machines.len());
    for m in machines {
        let os = latest(&state, &m.id)
            .await?
            .map(|(_, s)| os_of(&s))
            .unwrap_or_default();
        rows.push(MachineRow {
            online: is_online(m.last_seen_at, now),
            last_seen: ago(m.last_seen_at, now),
            status: label(m.status.as_str()),
            open_tickets: m.open_tickets,
            os,
            id: m.id,
            hostname: m.hostname,
        });
    }
    Ok(render(
        StatusCode::OK,
        &MachinesPage {
            nav: Nav::new(&user, "machines"),
            rows,
        },
    ))
}

#[derive(Debug)]
struct TicketRow {
    number: u64,
    status: String,
    priority: &'static str,
    description: String,
}

#[derive(Template)]
#[template(path = "machine.html")]
struct MachinePage {
    nav: Nav,
    id: String,
    hostname: String,
    status: String,
    online: bool,
    last_seen: String,
    enrolled: String,
    certificate_until: String,
    os: String,
    tickets: Vec<TicketRow>,
    chart: Option<VitalsChart>,
    chart_width: f64,
    chart_height: f64,
    snapshot_received: String,
    findings: Vec<FindingView>,
    view: Option<SnapshotView>,
}

/// `GET /machines/{id}` (an id, or a host name only one machine has).
pub async fn page(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    Path(key): Path<String>,
) -> Result<Response, PageError> {
    let axum::Json(machine) = find(&state, &key).await?;
    let machine = with_live_state(&state, machine).await?;
    let now = state.clock.now();
    let summary = &machine.summary;
    let snapshot = latest(&state, &summary.id).await?;
    let page = MachinePage {
        nav: Nav::new(&user, "machines"),
        id: summary.id.clone(),
        hostname: summary.hostname.clone(),
        status: label(summary.status.as_str()),
        online: summary.online,
        last_seen: format!(
            "{} ({})",
            when(summary.last_seen_at),
            ago(summary.last_seen_at, now)
        ),
        enrolled: when(summary.enrolled_at),
        certificate_until: when(summary.certificate_not_after),
        os: snapshot.as_ref().map(|(_, s)| os_of(s)).unwrap_or_default(),
        tickets: machine
            .tickets
            .iter()
            .map(|t| TicketRow {
                number: t.number,
                status: label(t.status.as_str()),
                priority: t.priority.as_str(),
                description: clip(&t.description, 100),
            })
            .collect(),
        chart: chart::vitals(&machine.recent_vitals),
        chart_width: chart::WIDTH,
        chart_height: chart::HEIGHT,
        snapshot_received: snapshot
            .as_ref()
            .map(|(at, _)| at.clone())
            .unwrap_or_default(),
        findings: snapshot
            .as_ref()
            .map(|(_, s)| {
                lifeline_shared::findings::evaluate(s)
                    .iter()
                    .map(FindingView::of)
                    .collect()
            })
            .unwrap_or_default(),
        view: snapshot.as_ref().map(|(_, s)| SnapshotView::of(s)),
    };
    Ok(render(StatusCode::OK, &page))
}

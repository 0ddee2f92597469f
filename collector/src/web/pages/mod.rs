//! One module per console area; each page is a template struct plus the handler that fills it.

pub mod admin;
pub mod machines;
pub mod queue;
// Recurring problems, knowledge search and help-desk metrics (issue 9).
pub mod reports;
pub mod runs;
// Service levels and escalation (issue 9).
pub mod sla;
pub mod ticket;

use lifeline_shared::findings::{Finding, Severity};

/// One option of a `<select>`.
#[derive(Debug, Clone)]
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl Choice {
    pub fn new(value: impl Into<String>, label: impl Into<String>, selected: bool) -> Choice {
        Choice {
            value: value.into(),
            label: label.into(),
            selected,
        }
    }
}

/// `in_progress` → `In progress`.
pub fn label(name: &str) -> String {
    let spaced = name.replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A finding as pages show it: severity as a CSS class and as words.
#[derive(Debug, Clone)]
pub struct FindingView {
    pub severity: &'static str,
    pub title: String,
    pub evidence: String,
    pub suggested_action: Option<String>,
    pub id: String,
}

impl FindingView {
    pub fn of(finding: &Finding) -> FindingView {
        FindingView {
            severity: finding.severity.as_str(),
            title: finding.title.clone(),
            evidence: finding.evidence.clone(),
            suggested_action: finding.suggested_action.clone(),
            id: finding.id.clone(),
        }
    }
}

/// Severity name for a CSS class and a text label (`critical`, `warning`, `info`).
pub fn severity(severity: Option<Severity>) -> &'static str {
    severity.map_or("none", Severity::as_str)
}

//! Recurring problems, the knowledge base and help-desk metrics: paths, query limits, the
//! `--since` window and the answers of `tickets similar`, `reports recurring`, `kb search` and
//! `reports summary`.
//!
//! A ticket's *fingerprint* is the set of keys of its warning and critical findings
//! ([`crate::findings::Finding::fingerprint`], e.g. `disk.full:/`, `dns.fail`); tickets sharing
//! a key are the same problem, on any machine. Free text here (descriptions, resolution notes,
//! keys) came from agents or technicians and is escaped by whoever displays it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::v1::actions::RunState;
use crate::v1::api::{Priority, TicketStatus, Tier};

/// Paths of this area. `{n}` is a ticket number.
pub mod paths {
    /// `GET` earlier tickets with the same fingerprint keys: `?limit=N`.
    pub const TICKET_SIMILAR: &str = "/api/v1/tickets/{n}/similar";
    /// `GET` fingerprint keys ranked by ticket count: `?since=30d&limit=N`.
    pub const REPORTS_RECURRING: &str = "/api/v1/reports/recurring";
    /// `GET` help-desk figures for a window: `?since=7d`.
    pub const REPORTS_SUMMARY: &str = "/api/v1/reports/summary";
    /// `GET` resolved tickets with a resolution note matching every word: `?q=TEXT&limit=N`.
    pub const KB: &str = "/api/v1/kb";
}

/// Longest resolution note, in characters.
pub const RESOLUTION_NOTE_MAX_LEN: usize = 8 * 1024;
/// Longest knowledge-base query, in characters.
pub const KB_QUERY_MAX_LEN: usize = 256;
/// Most words a knowledge-base query may have (every one must match).
pub const KB_QUERY_MAX_WORDS: usize = 8;
/// Most answers of `kb`, `similar` and `recurring` (`limit` above it is refused).
pub const LIST_LIMIT_MAX: u32 = 100;
/// A fingerprint key with at least this many tickets in the window is a known-error candidate.
pub const KNOWN_ERROR_MIN_TICKETS: u64 = 3;
/// The window `reports recurring` uses when none is given.
pub const RECURRING_DEFAULT_WINDOW: &str = "30d";
/// The window `reports summary` (and the console) uses when none is given.
pub const SUMMARY_DEFAULT_WINDOW: &str = "7d";

/// A look-back window: a whole number of minutes (`90m`), hours (`12h`) or days (`30d`), from
/// one minute to 366 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    amount: u32,
    unit: WindowUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum WindowUnit {
    Minutes,
    Hours,
    Days,
}

impl WindowUnit {
    fn secs(self) -> i64 {
        match self {
            WindowUnit::Minutes => 60,
            WindowUnit::Hours => 3600,
            WindowUnit::Days => 86_400,
        }
    }

    fn suffix(self) -> char {
        match self {
            WindowUnit::Minutes => 'm',
            WindowUnit::Hours => 'h',
            WindowUnit::Days => 'd',
        }
    }
}

/// Longest window, in seconds (366 days).
const WINDOW_MAX_SECS: i64 = 366 * 86_400;

/// A `--since` value that is not a window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("since: {value:?} {problem} (expected a window such as 30d, 12h or 90m)")]
pub struct BadWindow {
    value: String,
    problem: &'static str,
}

impl Window {
    /// The window's length.
    pub fn duration(self) -> time::Duration {
        time::Duration::seconds(i64::from(self.amount) * self.unit.secs())
    }

    /// Where the window starts when it ends at `until`.
    pub fn start(self, until: OffsetDateTime) -> OffsetDateTime {
        until - self.duration()
    }
}

impl FromStr for Window {
    type Err = BadWindow;

    fn from_str(text: &str) -> Result<Window, BadWindow> {
        let bad = |problem| BadWindow {
            value: text.chars().take(40).collect(),
            problem,
        };
        let trimmed = text.trim();
        let Some(last) = trimmed.chars().last() else {
            return Err(bad("is empty"));
        };
        let unit = match last {
            'm' => WindowUnit::Minutes,
            'h' => WindowUnit::Hours,
            'd' => WindowUnit::Days,
            _ => return Err(bad("has no unit m, h or d")),
        };
        let digits = &trimmed[..trimmed.len() - 1];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("is not a whole number followed by m, h or d"));
        }
        let amount: u32 = digits.parse().map_err(|_| bad("is too long"))?;
        if amount == 0 {
            return Err(bad("is empty: it must be at least 1m"));
        }
        if i64::from(amount) * unit.secs() > WINDOW_MAX_SECS {
            return Err(bad("is too long: at most 366d"));
        }
        Ok(Window { amount, unit })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.unit.suffix())
    }
}

/// One run of an action on a ticket and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketAction {
    /// The run's number (`runs show N`).
    pub run: u64,
    pub action: String,
    pub state: RunState,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

/// An earlier ticket with the same problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SimilarTicket {
    pub number: u64,
    pub machine_id: String,
    pub hostname: String,
    pub description: String,
    pub status: TicketStatus,
    pub priority: Priority,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub resolution_note: Option<String>,
    /// The fingerprint keys it shares with the ticket asked about.
    pub shared_keys: Vec<String>,
    /// The actions that ran on it, oldest first.
    pub actions: Vec<TicketAction>,
}

/// `GET /api/v1/tickets/{n}/similar`: best match first (most shared keys, then newest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SimilarTickets {
    pub number: u64,
    /// The ticket's own fingerprint keys.
    pub keys: Vec<String>,
    pub similar: Vec<SimilarTicket>,
}

/// A resolved ticket's note, as an example of how a problem was fixed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResolutionExample {
    pub ticket: u64,
    pub note: String,
}

/// One fingerprint key and how often it came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecurringProblem {
    pub key: String,
    /// Tickets opened in the window with this key.
    pub tickets: u64,
    /// Distinct machines among them.
    pub machines: u64,
    /// How many of them are not resolved or closed.
    pub open: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// The newest resolution note of any resolved ticket with this key.
    #[serde(default)]
    pub example: Option<ResolutionExample>,
    /// At least [`KNOWN_ERROR_MIN_TICKETS`] tickets: worth a known-error entry.
    pub known_error_candidate: bool,
}

/// `GET /api/v1/reports/recurring`: keys ranked by tickets, then machines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecurringReport {
    /// The window as asked, e.g. `30d`.
    pub window: String,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    pub problems: Vec<RecurringProblem>,
}

/// A resolved ticket that matches a knowledge-base query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KbHit {
    pub number: u64,
    pub hostname: String,
    pub description: String,
    pub status: TicketStatus,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    pub resolution_note: String,
    pub keys: Vec<String>,
    /// One line around the first match (from the note if a word is in it, else the
    /// description or the keys).
    pub snippet: String,
    /// Higher is better: a word in the note counts 3, in a key 2, in the description 1.
    pub score: u32,
}

/// `GET /api/v1/kb`: best first (score, then most recently resolved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KbResults {
    /// The words searched for (lower case).
    pub words: Vec<String>,
    pub hits: Vec<KbHit>,
}

/// Median and 90th percentile of a set of durations (nearest rank: each is a real ticket's
/// time), in whole seconds; `None` without samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimeFigures {
    pub count: u64,
    #[serde(default)]
    pub median_secs: Option<u64>,
    #[serde(default)]
    pub p90_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PriorityTimes {
    pub priority: Priority,
    #[serde(flatten)]
    pub figures: TimeFigures,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TierTimes {
    pub tier: Tier,
    #[serde(flatten)]
    pub figures: TimeFigures,
}

/// Durations overall, per priority (every priority, low first) and per tier (1 to 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimesBy {
    pub all: TimeFigures,
    pub by_priority: Vec<PriorityTimes>,
    pub by_tier: Vec<TierTimes>,
}

/// Service-level targets decided in the window: met (done by the due time) or missed (done
/// late, or due in the window and still not done).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TargetFigures {
    pub met: u64,
    pub missed: u64,
    /// `met / (met + missed)`; `None` when nothing was decided.
    #[serde(default)]
    pub ratio: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SlaCompliance {
    pub first_response: TargetFigures,
    pub resolution: TargetFigures,
    /// Both kinds of target together.
    pub all: TargetFigures,
}

/// A fingerprint key among the tickets opened in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyCount {
    pub key: String,
    pub tickets: u64,
    pub machines: u64,
}

/// One action's runs that ended in the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionFigures {
    pub action: String,
    pub run: u64,
    pub succeeded: u64,
    #[serde(default)]
    pub success_ratio: Option<f64>,
}

/// Runs that ended in the window: succeeded (exit 0 in time), failed, or refused by the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionsSummary {
    pub run: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub refused: u64,
    #[serde(default)]
    pub success_ratio: Option<f64>,
    /// Most runs first.
    pub by_action: Vec<ActionFigures>,
}

/// "Did this fix it?" answers of tickets resolved in the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Satisfaction {
    pub answered: u64,
    pub yes: u64,
    pub no: u64,
    /// `yes / answered`; `None` without answers.
    #[serde(default)]
    pub yes_ratio: Option<f64>,
}

/// `GET /api/v1/reports/summary`: the help desk's figures for a window ending now.
///
/// Opened counts tickets created in the window; resolved, and the resolution times, count
/// tickets resolved in it; first-response times count tickets first answered in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Summary {
    pub window: String,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    pub opened: u64,
    pub resolved: u64,
    pub first_response: TimesBy,
    pub resolution: TimesBy,
    pub sla: SlaCompliance,
    /// Fingerprint keys of tickets opened in the window, most tickets first (at most 10).
    pub top_findings: Vec<KeyCount>,
    pub actions: ActionsSummary,
    pub satisfaction: Satisfaction,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_in_minutes_hours_and_days_and_print_as_given() {
        for (text, secs) in [("90m", 5400), ("12h", 43_200), ("30d", 2_592_000)] {
            let window: Window = text.parse().unwrap();
            assert_eq!(window.duration().whole_seconds(), secs);
            assert_eq!(window.to_string(), text);
        }
        assert_eq!(" 7d ".parse::<Window>().unwrap().to_string(), "7d");
    }

    #[test]
    fn bad_windows_say_what_is_wrong() {
        for (text, expected) in [
            ("", "is empty"),
            ("30", "has no unit"),
            ("d", "whole number"),
            ("-3d", "whole number"),
            ("1.5h", "whole number"),
            ("0m", "at least 1m"),
            ("367d", "at most 366d"),
            ("99999999999999d", "too long"),
            ("3w", "has no unit"),
        ] {
            let error = text.parse::<Window>().unwrap_err().to_string();
            assert!(error.starts_with("since: "), "{error}");
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(error.contains("30d, 12h or 90m"), "{error}");
        }
    }

    #[test]
    fn durations_flatten_next_to_their_group() {
        let row = PriorityTimes {
            priority: Priority::High,
            figures: TimeFigures {
                count: 2,
                median_secs: Some(60),
                p90_secs: Some(120),
            },
        };
        let json = serde_json::to_value(row).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"priority": "high", "count": 2, "median_secs": 60, "p90_secs": 120})
        );
    }
}

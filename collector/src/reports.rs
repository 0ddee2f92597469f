//! Help-desk figures: the facts the store loads for a window, and [`summarize`], the pure
//! function that turns them into every figure of `reports summary`, the console's reports page
//! and the Prometheus gauges.
//!
//! Definitions (also in the README):
//! - *opened*: tickets created in the window; *resolved*: tickets whose `resolved_at` is in it
//!   (a reopened ticket loses its `resolved_at`).
//! - *time to first response*: `first_response_at - created_at` of tickets first answered in
//!   the window (a comment, or any change a technician makes); *time to resolution*:
//!   `resolved_at - created_at` of tickets resolved in it. Median and 90th percentile by
//!   nearest rank (each figure is one real ticket's time), in whole seconds, overall, per
//!   (current) priority and per (current) tier.
//! - *SLA compliance*: a target is *met* when the work was done by its due time, *missed* when
//!   done later or when it fell due in the window and is still not done; targets decided
//!   before the window, or not yet due, do not count. Ratio = met / (met + missed).
//! - *top findings*: fingerprint keys of tickets opened in the window, by tickets then machines.
//! - *actions*: runs that ended in the window (succeeded, failed, or refused by the agent);
//!   success ratio = succeeded / run.
//! - *satisfaction*: "Did this fix it?" answers of tickets resolved in the window.

use std::collections::{BTreeMap, BTreeSet};

use lifeline_shared::v1::actions::RunState;
use lifeline_shared::v1::api::{Priority, Tier};
use lifeline_shared::v1::reports::{
    ActionFigures, ActionsSummary, KeyCount, PriorityTimes, Satisfaction, SlaCompliance, Summary,
    TargetFigures, TierTimes, TimeFigures, TimesBy, Window,
};
use time::OffsetDateTime;

/// Most keys listed under top findings.
pub const TOP_FINDINGS: usize = 10;

/// What the summary needs to know about one ticket. The store loads every ticket that was
/// created, first answered, resolved or still open in the window.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketFacts {
    pub number: u64,
    pub machine_id: String,
    pub priority: Priority,
    pub tier: Tier,
    pub created_at: OffsetDateTime,
    pub first_response_at: Option<OffsetDateTime>,
    pub resolved_at: Option<OffsetDateTime>,
    /// Service-level due times (set by the SLA feature; `None` when the ticket has none).
    pub first_response_due_at: Option<OffsetDateTime>,
    pub resolution_due_at: Option<OffsetDateTime>,
    /// The end user's "Did this fix it?" answer, when they gave one.
    pub fixed: Option<bool>,
    /// Fingerprint keys.
    pub keys: Vec<String>,
}

/// A run that ended in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFacts {
    pub action: String,
    pub state: RunState,
    pub finished_at: OffsetDateTime,
}

/// Everything [`summarize`] reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportFacts {
    pub tickets: Vec<TicketFacts>,
    pub runs: Vec<RunFacts>,
}

/// The window `[since, until]`.
#[derive(Debug, Clone, Copy)]
struct Span {
    since: OffsetDateTime,
    until: OffsetDateTime,
}

impl Span {
    fn holds(self, at: OffsetDateTime) -> bool {
        self.since <= at && at <= self.until
    }

    fn holds_opt(self, at: Option<OffsetDateTime>) -> bool {
        at.is_some_and(|at| self.holds(at))
    }
}

/// Every figure of the window `window` ending at `until`.
pub fn summarize(window: Window, until: OffsetDateTime, facts: &ReportFacts) -> Summary {
    let span = Span {
        since: window.start(until),
        until,
    };
    let tickets = &facts.tickets;
    let opened: Vec<&TicketFacts> = tickets
        .iter()
        .filter(|t| span.holds(t.created_at))
        .collect();
    let resolved: Vec<&TicketFacts> = tickets
        .iter()
        .filter(|t| span.holds_opt(t.resolved_at))
        .collect();

    let first_response = times_by(tickets.iter().filter_map(|t| {
        let at = t.first_response_at.filter(|at| span.holds(*at))?;
        Some((t.priority, t.tier, at - t.created_at))
    }));
    let resolution = times_by(
        resolved
            .iter()
            .filter_map(|t| Some((t.priority, t.tier, t.resolved_at? - t.created_at))),
    );

    let mut sla = SlaCompliance::default();
    for t in tickets {
        count_target(
            &mut sla.first_response,
            span,
            t.first_response_due_at,
            t.first_response_at,
        );
        count_target(
            &mut sla.resolution,
            span,
            t.resolution_due_at,
            t.resolved_at,
        );
    }
    sla.all = TargetFigures {
        met: sla.first_response.met + sla.resolution.met,
        missed: sla.first_response.missed + sla.resolution.missed,
        ratio: None,
    };
    for target in [&mut sla.first_response, &mut sla.resolution, &mut sla.all] {
        target.ratio = ratio(target.met, target.met + target.missed);
    }

    let mut satisfaction = Satisfaction::default();
    for fixed in resolved.iter().filter_map(|t| t.fixed) {
        satisfaction.answered += 1;
        if fixed {
            satisfaction.yes += 1;
        } else {
            satisfaction.no += 1;
        }
    }
    satisfaction.yes_ratio = ratio(satisfaction.yes, satisfaction.answered);

    Summary {
        window: window.to_string(),
        since: span.since,
        until,
        opened: opened.len() as u64,
        resolved: resolved.len() as u64,
        first_response,
        resolution,
        sla,
        top_findings: top_findings(&opened),
        actions: actions(span, &facts.runs),
        satisfaction,
    }
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Counts one service-level target: met or missed when it was decided in the window.
fn count_target(
    figures: &mut TargetFigures,
    span: Span,
    due: Option<OffsetDateTime>,
    done: Option<OffsetDateTime>,
) {
    let Some(due) = due else { return };
    match done {
        Some(done) if span.holds(done) => {
            if done <= due {
                figures.met += 1;
            } else {
                figures.missed += 1;
            }
        }
        Some(_) => {}
        None if span.holds(due) => figures.missed += 1,
        None => {}
    }
}

/// Median and 90th percentile (nearest rank) of `durations`.
pub fn figures(mut durations: Vec<time::Duration>) -> TimeFigures {
    durations.sort();
    let count = durations.len();
    let rank = |p: usize| -> Option<u64> {
        if count == 0 {
            return None;
        }
        // Nearest rank: the smallest value with at least p% of the samples at or below it.
        let index = (p * count).div_ceil(100).max(1) - 1;
        let secs = durations.get(index)?.whole_seconds();
        Some(u64::try_from(secs).unwrap_or(0))
    };
    TimeFigures {
        count: count as u64,
        median_secs: rank(50),
        p90_secs: rank(90),
    }
}

fn times_by(samples: impl Iterator<Item = (Priority, Tier, time::Duration)>) -> TimesBy {
    let samples: Vec<(Priority, Tier, time::Duration)> = samples
        .map(|(p, t, d)| (p, t, d.max(time::Duration::ZERO)))
        .collect();
    let pick = |keep: &dyn Fn(Priority, Tier) -> bool| {
        figures(
            samples
                .iter()
                .filter(|(p, t, _)| keep(*p, *t))
                .map(|(_, _, d)| *d)
                .collect(),
        )
    };
    TimesBy {
        all: pick(&|_, _| true),
        by_priority: Priority::ALL
            .iter()
            .map(|priority| PriorityTimes {
                priority: *priority,
                figures: pick(&|p, _| p == *priority),
            })
            .collect(),
        by_tier: (1..=3)
            .filter_map(|n| Tier::new(n).ok())
            .map(|tier| TierTimes {
                tier,
                figures: pick(&|_, t| t == tier),
            })
            .collect(),
    }
}

fn top_findings(opened: &[&TicketFacts]) -> Vec<KeyCount> {
    let mut by_key: BTreeMap<&str, (u64, BTreeSet<&str>)> = BTreeMap::new();
    for ticket in opened {
        for key in &ticket.keys {
            let entry = by_key.entry(key.as_str()).or_default();
            entry.0 += 1;
            entry.1.insert(ticket.machine_id.as_str());
        }
    }
    let mut counts: Vec<KeyCount> = by_key
        .into_iter()
        .map(|(key, (tickets, machines))| KeyCount {
            key: key.to_owned(),
            tickets,
            machines: machines.len() as u64,
        })
        .collect();
    counts.sort_by(|a, b| {
        b.tickets
            .cmp(&a.tickets)
            .then_with(|| b.machines.cmp(&a.machines))
            .then_with(|| a.key.cmp(&b.key))
    });
    counts.truncate(TOP_FINDINGS);
    counts
}

fn actions(span: Span, runs: &[RunFacts]) -> ActionsSummary {
    let mut summary = ActionsSummary {
        run: 0,
        succeeded: 0,
        failed: 0,
        refused: 0,
        success_ratio: None,
        by_action: Vec::new(),
    };
    let mut by_action: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for run in runs.iter().filter(|r| span.holds(r.finished_at)) {
        let succeeded = match run.state {
            RunState::Succeeded => {
                summary.succeeded += 1;
                true
            }
            RunState::Failed => {
                summary.failed += 1;
                false
            }
            RunState::Refused => {
                summary.refused += 1;
                false
            }
            // Denied, expired or unfinished runs never ran.
            _ => continue,
        };
        summary.run += 1;
        let entry = by_action.entry(run.action.as_str()).or_default();
        entry.0 += 1;
        entry.1 += u64::from(succeeded);
    }
    summary.success_ratio = ratio(summary.succeeded, summary.run);
    summary.by_action = by_action
        .into_iter()
        .map(|(action, (run, succeeded))| ActionFigures {
            action: action.to_owned(),
            run,
            succeeded,
            success_ratio: ratio(succeeded, run),
        })
        .collect();
    summary
        .by_action
        .sort_by(|a, b| b.run.cmp(&a.run).then_with(|| a.action.cmp(&b.action)));
    summary
}

/// A duration for people: `45 s`, `12 min`, `3 h 05 min`, `2 d 4 h`.
pub fn human_duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => format!("{} h {:02} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} d {} h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// A ratio as a whole percentage (`83%`), or `-` when there is none.
pub fn percent(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |r| format!("{:.0}%", r * 100.0))
}

/// Service-level targets for people: `67% on time (2 met, 1 missed)`.
pub fn target_line(figures: &TargetFigures) -> String {
    if figures.met + figures.missed == 0 {
        return "no targets fell due".to_owned();
    }
    format!(
        "{} on time ({} met, {} missed)",
        percent(figures.ratio),
        figures.met,
        figures.missed
    )
}

/// "Did this fix it?" answers for people: `67% yes (2 of 3 answers)`.
pub fn satisfaction_line(s: &Satisfaction) -> String {
    if s.answered == 0 {
        return "no answers".to_owned();
    }
    format!(
        "{} yes ({} of {} answers)",
        percent(s.yes_ratio),
        s.yes,
        s.answered
    )
}

/// Runs for people: `4 run, 50% succeeded (1 failed, 1 refused)`.
pub fn actions_line(a: &ActionsSummary) -> String {
    if a.run == 0 {
        return "none ended".to_owned();
    }
    format!(
        "{} run, {} succeeded ({} failed, {} refused)",
        a.run,
        percent(a.success_ratio),
        a.failed,
        a.refused
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::Duration;
    use time::macros::datetime;

    const UNTIL: OffsetDateTime = datetime!(2026-11-30 12:00 UTC);

    fn tier(n: u8) -> Tier {
        Tier::new(n).unwrap()
    }

    fn ticket(number: u64, machine: &str, priority: Priority, hours_ago: i64) -> TicketFacts {
        TicketFacts {
            number,
            machine_id: machine.to_owned(),
            priority,
            tier: tier(1),
            created_at: UNTIL - Duration::hours(hours_ago),
            first_response_at: None,
            resolved_at: None,
            first_response_due_at: None,
            resolution_due_at: None,
            fixed: None,
            keys: Vec::new(),
        }
    }

    fn after(t: &TicketFacts, minutes: i64) -> Option<OffsetDateTime> {
        Some(t.created_at + Duration::minutes(minutes))
    }

    fn window(text: &str) -> Window {
        text.parse().unwrap()
    }

    /// Six tickets: #1 is older than the 7-day window but resolved in it; #6 was created and
    /// answered before the window and is still open.
    fn facts() -> ReportFacts {
        let mut t1 = ticket(1, "pc-a", Priority::High, 24 * 9);
        t1.first_response_at = after(&t1, 10);
        t1.resolved_at = Some(UNTIL - Duration::hours(24));
        t1.keys = vec!["disk.full:/".to_owned()];

        let mut t2 = ticket(2, "pc-a", Priority::High, 48);
        t2.first_response_at = after(&t2, 30);
        t2.resolved_at = after(&t2, 120);
        t2.keys = vec!["disk.full:/".to_owned(), "dns.fail".to_owned()];
        t2.tier = tier(2);

        let mut t3 = ticket(3, "pc-b", Priority::High, 30);
        t3.first_response_at = after(&t3, 60);
        t3.resolved_at = after(&t3, 240);
        t3.keys = vec!["disk.full:/".to_owned()];

        let mut t4 = ticket(4, "pc-c", Priority::Normal, 20);
        t4.first_response_at = after(&t4, 5);
        t4.keys = vec!["dns.fail".to_owned()];

        let t5 = ticket(5, "pc-c", Priority::Low, 1);

        let mut t6 = ticket(6, "pc-d", Priority::Normal, 24 * 10);
        t6.first_response_at = after(&t6, 15);
        t6.keys = vec!["memory.low".to_owned()];

        ReportFacts {
            tickets: vec![t1, t2, t3, t4, t5, t6],
            runs: vec![
                RunFacts {
                    action: "clean-package-cache".to_owned(),
                    state: RunState::Succeeded,
                    finished_at: UNTIL - Duration::hours(40),
                },
                RunFacts {
                    action: "clean-package-cache".to_owned(),
                    state: RunState::Failed,
                    finished_at: UNTIL - Duration::hours(20),
                },
                RunFacts {
                    action: "flush-dns".to_owned(),
                    state: RunState::Succeeded,
                    finished_at: UNTIL - Duration::hours(10),
                },
                RunFacts {
                    action: "flush-dns".to_owned(),
                    state: RunState::Refused,
                    finished_at: UNTIL - Duration::hours(9),
                },
                RunFacts {
                    action: "reboot".to_owned(),
                    state: RunState::Expired,
                    finished_at: UNTIL - Duration::hours(9),
                },
                RunFacts {
                    action: "reboot".to_owned(),
                    state: RunState::Succeeded,
                    finished_at: UNTIL - Duration::days(8),
                },
            ],
        }
    }

    #[test]
    fn volumes_and_times_on_a_known_set_of_tickets() {
        let s = summarize(window("7d"), UNTIL, &facts());
        assert_eq!(s.window, "7d");
        assert_eq!(s.since, UNTIL - Duration::days(7));
        assert_eq!(s.opened, 4, "#2, #3, #4, #5");
        assert_eq!(s.resolved, 3, "#1, #2, #3");

        // First responses in the window: #2 30 min, #3 60 min, #4 5 min (#1 and #6 answered
        // before it).
        assert_eq!(
            s.first_response.all,
            TimeFigures {
                count: 3,
                median_secs: Some(30 * 60),
                p90_secs: Some(60 * 60)
            }
        );
        let high = &s.first_response.by_priority[2];
        assert_eq!(high.priority, Priority::High);
        assert_eq!(
            high.figures,
            TimeFigures {
                count: 2,
                median_secs: Some(30 * 60),
                p90_secs: Some(60 * 60)
            }
        );
        let low = &s.first_response.by_priority[0];
        assert_eq!((low.priority, low.figures.count), (Priority::Low, 0));
        assert_eq!(low.figures.median_secs, None);

        // Resolutions in the window: #1 8 days, #2 2 h, #3 4 h.
        assert_eq!(
            s.resolution.all,
            TimeFigures {
                count: 3,
                median_secs: Some(4 * 3600),
                p90_secs: Some(8 * 86_400)
            }
        );
        let tier2 = &s.resolution.by_tier[1];
        assert_eq!(tier2.tier, tier(2));
        assert_eq!(tier2.figures.median_secs, Some(2 * 3600));
        assert_eq!(s.resolution.by_tier.len(), 3);
        assert_eq!(s.resolution.by_priority.len(), Priority::ALL.len());
    }

    #[test]
    fn top_findings_count_tickets_opened_in_the_window_and_their_machines() {
        let s = summarize(window("7d"), UNTIL, &facts());
        let top: Vec<(&str, u64, u64)> = s
            .top_findings
            .iter()
            .map(|k| (k.key.as_str(), k.tickets, k.machines))
            .collect();
        // #1 (disk) and #6 (memory) were opened before the window.
        assert_eq!(top, [("disk.full:/", 2, 2), ("dns.fail", 2, 2)]);
    }

    #[test]
    fn actions_count_runs_that_ended_in_the_window() {
        let s = summarize(window("7d"), UNTIL, &facts());
        let a = &s.actions;
        assert_eq!((a.run, a.succeeded, a.failed, a.refused), (4, 2, 1, 1));
        assert_eq!(a.success_ratio, Some(0.5));
        assert_eq!(a.by_action.len(), 2, "{:?}", a.by_action);
        assert_eq!(a.by_action[0].action, "clean-package-cache");
        assert_eq!(a.by_action[1].success_ratio, Some(0.5));
    }

    #[test]
    fn sla_compliance_is_met_when_done_by_the_due_time() {
        let mut facts = facts();
        let due = |t: &TicketFacts, minutes: i64| after(t, minutes);
        // #2: answered after 30 min, due at 60 → met; resolved after 2 h, due at 1 h → missed.
        let t2 = &mut facts.tickets[1];
        t2.first_response_due_at = due(t2, 60);
        t2.resolution_due_at = due(t2, 60);
        // #3: answered after 60 min, due at 30 → missed; resolved after 4 h, due at 8 h → met.
        let t3 = &mut facts.tickets[2];
        t3.first_response_due_at = due(t3, 30);
        t3.resolution_due_at = due(t3, 480);
        // #4: answered in time; not resolved, resolution due 2 h after opening (in the window,
        // passed) → missed.
        let t4 = &mut facts.tickets[3];
        t4.first_response_due_at = due(t4, 15);
        t4.resolution_due_at = due(t4, 120);
        // #5: not answered, due in 2 h (not yet) → not counted.
        let t5 = &mut facts.tickets[4];
        t5.first_response_due_at = due(t5, 120);
        // #6: answered before the window (late) → decided earlier, not counted.
        let t6 = &mut facts.tickets[5];
        t6.first_response_due_at = due(t6, 5);

        let sla = summarize(window("7d"), UNTIL, &facts).sla;
        assert_eq!((sla.first_response.met, sla.first_response.missed), (2, 1));
        assert_eq!((sla.resolution.met, sla.resolution.missed), (1, 2));
        assert_eq!((sla.all.met, sla.all.missed), (3, 3));
        assert_eq!(sla.all.ratio, Some(0.5));
        let first = sla.first_response.ratio.unwrap();
        assert!((first - 2.0 / 3.0).abs() < 1e-9, "{first}");

        let none = summarize(window("7d"), UNTIL, &self::facts()).sla;
        assert_eq!(none.all, TargetFigures::default());
    }

    #[test]
    fn satisfaction_is_the_yes_share_of_answers_on_tickets_resolved_in_the_window() {
        let mut facts = facts();
        facts.tickets[0].fixed = Some(true);
        facts.tickets[1].fixed = Some(true);
        facts.tickets[2].fixed = Some(false);
        // Not resolved: its answer does not count.
        facts.tickets[3].fixed = Some(false);
        let s = summarize(window("7d"), UNTIL, &facts).satisfaction;
        assert_eq!((s.answered, s.yes, s.no), (3, 2, 1));
        let yes = s.yes_ratio.unwrap();
        assert!((yes - 2.0 / 3.0).abs() < 1e-9, "{yes}");
        assert_eq!(
            summarize(window("7d"), UNTIL, &self::facts())
                .satisfaction
                .yes_ratio,
            None
        );
    }

    #[test]
    fn a_shorter_window_sees_less() {
        let s = summarize(window("12h"), UNTIL, &facts());
        assert_eq!(s.opened, 1, "#5 only");
        assert_eq!(s.resolved, 0);
        assert_eq!(s.first_response.all.count, 0);
        assert_eq!(s.actions.run, 2, "both flush-dns runs");
        assert!(s.top_findings.is_empty());
    }

    #[test]
    fn durations_and_ratios_read_well() {
        assert_eq!(human_duration(45), "45 s");
        assert_eq!(human_duration(12 * 60 + 5), "12 min");
        assert_eq!(human_duration(3 * 3600 + 5 * 60), "3 h 05 min");
        assert_eq!(human_duration(2 * 86_400 + 4 * 3600 + 59), "2 d 4 h");
        assert_eq!(percent(Some(2.0 / 3.0)), "67%");
        assert_eq!(percent(None), "-");
        let mut sla = TargetFigures {
            met: 2,
            missed: 1,
            ratio: Some(2.0 / 3.0),
        };
        assert_eq!(target_line(&sla), "67% on time (2 met, 1 missed)");
        sla = TargetFigures::default();
        assert_eq!(target_line(&sla), "no targets fell due");
        assert_eq!(satisfaction_line(&Satisfaction::default()), "no answers");
        let s = summarize(window("7d"), UNTIL, &facts());
        assert_eq!(
            actions_line(&s.actions),
            "4 run, 50% succeeded (1 failed, 1 refused)"
        );
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let secs = |v: &[i64]| v.iter().map(|s| Duration::seconds(*s)).collect::<Vec<_>>();
        let f = figures(secs(&[40, 10, 30, 20]));
        assert_eq!((f.median_secs, f.p90_secs), (Some(20), Some(40)));
        let f = figures(secs(&(1..=10).collect::<Vec<_>>()));
        assert_eq!((f.median_secs, f.p90_secs), (Some(5), Some(9)));
        let f = figures(secs(&[7]));
        assert_eq!((f.count, f.median_secs, f.p90_secs), (1, Some(7), Some(7)));
        assert_eq!(figures(Vec::new()), TimeFigures::default());
    }
}

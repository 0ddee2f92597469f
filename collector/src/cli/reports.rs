//! `tickets similar`, `reports recurring|summary` and `kb search` (issue 9): the client side of
//! recurring problems, the knowledge base and the help-desk figures.

use clap::Subcommand;
use lifeline_shared::v1::reports::{
    KNOWN_ERROR_MIN_TICKETS, KbResults, RecurringReport, SimilarTickets, Summary, TimeFigures,
    Window, paths,
};

use super::client::ApiClient;
use super::output::{clean, clean_line, table, when};
use super::{CliError, Printer, encode};
use crate::reports::{actions_line, human_duration, percent, satisfaction_line, target_line};

#[derive(Debug, Clone, Subcommand)]
pub enum ReportsCommand {
    /// Problems that keep coming back: fingerprint keys ranked by tickets and machines
    Recurring {
        /// How far back to look: 30d, 12h, 90m (at most 366d)
        #[arg(long, default_value = "30d")]
        since: Window,
        /// Show at most this many keys (1 to 100) [default: 20]
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Help-desk figures: tickets opened and resolved, response and resolution times per
    /// priority and tier, SLA compliance, top findings, actions and satisfaction
    Summary {
        /// How far back to look: 7d, 12h, 90m (at most 366d)
        #[arg(long, default_value = "7d")]
        since: Window,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum KbCommand {
    /// Search resolved tickets that have a resolution note; every word must match the
    /// description, the note or a fingerprint key
    Search {
        /// Words to look for (e.g. `kb search disk full`)
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
        /// Show at most this many tickets (1 to 100) [default: 20]
        #[arg(long)]
        limit: Option<u32>,
    },
}

fn with_limit(path: String, limit: Option<u32>) -> String {
    match limit {
        Some(n) if path.contains('?') => format!("{path}&limit={n}"),
        Some(n) => format!("{path}?limit={n}"),
        None => path,
    }
}

/// `tickets similar N`.
pub(super) fn similar(
    client: &ApiClient,
    out: &Printer,
    number: u64,
    limit: Option<u32>,
) -> Result<(), CliError> {
    let path = paths::TICKET_SIMILAR.replace("{n}", &number.to_string());
    let answer: SimilarTickets = client.get(&with_limit(path, limit))?;
    out.show(&answer, similar_page)
}

pub(super) fn reports(
    client: &ApiClient,
    out: &Printer,
    command: &ReportsCommand,
) -> Result<(), CliError> {
    match command {
        ReportsCommand::Recurring { since, limit } => {
            let path = format!("{}?since={since}", paths::REPORTS_RECURRING);
            let report: RecurringReport = client.get(&with_limit(path, *limit))?;
            out.show(&report, recurring_page)
        }
        ReportsCommand::Summary { since } => {
            let summary: Summary =
                client.get(&format!("{}?since={since}", paths::REPORTS_SUMMARY))?;
            out.show(&summary, summary_page)
        }
    }
}

pub(super) fn kb(client: &ApiClient, out: &Printer, command: &KbCommand) -> Result<(), CliError> {
    match command {
        KbCommand::Search { text, limit } => {
            let q = text.join(" ");
            let path = format!("{}?q={}", paths::KB, encode(&q));
            let results: KbResults = client.get(&with_limit(path, *limit))?;
            out.show(&results, kb_page)
        }
    }
}

fn indented(out: &mut String, label: &str, text: &str) {
    let mut lines = clean(text).lines().map(str::to_owned).collect::<Vec<_>>();
    if lines.is_empty() {
        lines.push(String::new());
    }
    out.push_str(&format!("    {label}{}\n", lines[0]));
    let pad = " ".repeat(label.chars().count());
    for line in &lines[1..] {
        out.push_str(&format!("    {pad}{line}\n"));
    }
}

pub fn similar_page(answer: &SimilarTickets) -> String {
    let mut out = String::new();
    if answer.keys.is_empty() {
        return format!(
            "Ticket #{} has no warning or critical findings, so nothing to match it by.\n",
            answer.number
        );
    }
    let keys: Vec<String> = answer.keys.iter().map(|k| clean_line(k)).collect();
    out.push_str(&format!(
        "Ticket #{}: fingerprint {}\n",
        answer.number,
        keys.join(", ")
    ));
    if answer.similar.is_empty() {
        out.push_str("No earlier ticket has the same problem.\n");
        return out;
    }
    out.push_str(&format!(
        "{} earlier ticket{} with the same problem, best match first:\n",
        answer.similar.len(),
        if answer.similar.len() == 1 { "" } else { "s" }
    ));
    for s in &answer.similar {
        out.push_str(&format!(
            "\n#{}  [{}]  {}  opened {}{}\n",
            s.number,
            s.status,
            clean_line(&s.hostname),
            when(s.created_at),
            s.resolved_at
                .map(|at| format!(", resolved {}", when(at)))
                .unwrap_or_default()
        ));
        let shared: Vec<String> = s.shared_keys.iter().map(|k| clean_line(k)).collect();
        out.push_str(&format!("    Shares:      {}\n", shared.join(", ")));
        indented(&mut out, "Description: ", &s.description);
        match &s.resolution_note {
            Some(note) => indented(&mut out, "Resolution:  ", note),
            None => out.push_str("    Resolution:  (no note)\n"),
        }
        if s.actions.is_empty() {
            out.push_str("    Actions:     none\n");
        }
        for (i, a) in s.actions.iter().enumerate() {
            out.push_str(&format!(
                "    {}{} (run {}): {}\n",
                if i == 0 {
                    "Actions:     "
                } else {
                    "             "
                },
                clean_line(&a.action),
                a.run,
                a.state
            ));
        }
    }
    out
}

pub fn recurring_page(report: &RecurringReport) -> String {
    let mut out = format!(
        "Recurring problems, last {} ({} to {})\n",
        report.window,
        when(report.since),
        when(report.until)
    );
    if report.problems.is_empty() {
        out.push_str("No ticket in this window has a warning or critical finding.\n");
        return out;
    }
    let mut t = table(&[
        "key",
        "tickets",
        "machines",
        "open",
        "first seen",
        "last seen",
        "example resolution",
    ]);
    for p in &report.problems {
        t.add_row(vec![
            clean_line(&p.key),
            p.tickets.to_string(),
            p.machines.to_string(),
            p.open.to_string(),
            when(p.first_seen),
            when(p.last_seen),
            p.example
                .as_ref()
                .map(|e| format!("#{}: {}", e.ticket, shorten(&e.note, 60)))
                .unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    out.push_str(&t.to_string());
    out.push('\n');
    for p in report.problems.iter().filter(|p| p.known_error_candidate) {
        out.push_str(&format!(
            "hint: {} came back {} times on {} machine{}: a known-error candidate (at least {} \
             tickets); write up the fix once and resolve the next ones with it\n",
            clean_line(&p.key),
            p.tickets,
            p.machines,
            if p.machines == 1 { "" } else { "s" },
            KNOWN_ERROR_MIN_TICKETS
        ));
    }
    out
}

fn shorten(text: &str, max: usize) -> String {
    let line = clean_line(text);
    if line.chars().count() <= max {
        return line;
    }
    let mut short: String = line.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}

pub fn kb_page(results: &KbResults) -> String {
    let words: Vec<String> = results.words.iter().map(|w| clean_line(w)).collect();
    if results.hits.is_empty() {
        return format!(
            "No resolved ticket with a resolution note matches \"{}\".\n",
            words.join(" ")
        );
    }
    let mut out = format!(
        "{} resolved {} \"{}\", best first:\n",
        results.hits.len(),
        if results.hits.len() == 1 {
            "ticket matches"
        } else {
            "tickets match"
        },
        words.join(" ")
    );
    for hit in &results.hits {
        out.push_str(&format!(
            "\n#{}  [{}{}]  {}  score {}\n",
            hit.number,
            hit.status,
            hit.resolved_at
                .map(|at| format!(" {}", when(at)))
                .unwrap_or_default(),
            clean_line(&hit.hostname),
            hit.score
        ));
        out.push_str(&format!(
            "    Problem:    {}\n",
            shorten(&hit.description, 100)
        ));
        out.push_str(&format!("    Match:      {}\n", clean_line(&hit.snippet)));
        if !hit.keys.is_empty() {
            let keys: Vec<String> = hit.keys.iter().map(|k| clean_line(k)).collect();
            out.push_str(&format!("    Keys:       {}\n", keys.join(", ")));
        }
        indented(&mut out, "Resolution: ", &hit.resolution_note);
    }
    out
}

fn time_cells(f: &TimeFigures) -> [String; 3] {
    [
        f.count.to_string(),
        f.median_secs.map_or_else(|| "-".to_owned(), human_duration),
        f.p90_secs.map_or_else(|| "-".to_owned(), human_duration),
    ]
}

pub fn summary_page(s: &Summary) -> String {
    let mut out = format!(
        "Help desk, last {} ({} to {})\n\n",
        s.window,
        when(s.since),
        when(s.until)
    );
    out.push_str(&format!(
        "Tickets:        {} opened, {} resolved\n",
        s.opened, s.resolved
    ));
    out.push_str(&format!(
        "SLA compliance: {}\n  first response {}\n  resolution     {}\n",
        target_line(&s.sla.all),
        target_line(&s.sla.first_response),
        target_line(&s.sla.resolution)
    ));
    let a = &s.actions;
    out.push_str(&format!("Actions:        {}\n", actions_line(a)));
    out.push_str(&format!(
        "Did it fix it?  {}\n\n",
        satisfaction_line(&s.satisfaction)
    ));

    let mut t = table(&[
        "",
        "first responses",
        "median",
        "p90",
        "resolutions",
        "median",
        "p90",
    ]);
    let mut row = |label: String, first: &TimeFigures, resolution: &TimeFigures| {
        let mut cells = vec![label];
        cells.extend(time_cells(first));
        cells.extend(time_cells(resolution));
        t.add_row(cells);
    };
    row("all".to_owned(), &s.first_response.all, &s.resolution.all);
    for (first, resolution) in s
        .first_response
        .by_priority
        .iter()
        .zip(&s.resolution.by_priority)
    {
        row(
            format!("priority {}", first.priority),
            &first.figures,
            &resolution.figures,
        );
    }
    for (first, resolution) in s.first_response.by_tier.iter().zip(&s.resolution.by_tier) {
        row(
            format!("tier {}", first.tier),
            &first.figures,
            &resolution.figures,
        );
    }
    out.push_str(&t.to_string());
    out.push('\n');

    out.push_str("\nTop findings (tickets opened in the window):\n");
    if s.top_findings.is_empty() {
        out.push_str("  none\n");
    } else {
        let mut t = table(&["key", "tickets", "machines"]);
        for k in &s.top_findings {
            t.add_row(vec![
                clean_line(&k.key),
                k.tickets.to_string(),
                k.machines.to_string(),
            ]);
        }
        out.push_str(&t.to_string());
        out.push('\n');
    }
    if !a.by_action.is_empty() {
        out.push_str("\nActions that ran:\n");
        let mut t = table(&["action", "runs", "succeeded", "success"]);
        for f in &a.by_action {
            t.add_row(vec![
                clean_line(&f.action),
                f.run.to_string(),
                f.succeeded.to_string(),
                percent(f.success_ratio),
            ]);
        }
        out.push_str(&t.to_string());
        out.push('\n');
    }
    out
}

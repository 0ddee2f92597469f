//! Rendering API answers for people: tables and ticket pages, with untrusted text neutralised.
//!
//! Descriptions, host names and snapshot fields come from agents and are hostile input: control
//! characters (terminal escape sequences) are shown escaped, never sent to the terminal raw.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use lifeline_shared::v1::api::{
    EnrollmentTokenInfo, MachineDetail, MachineSummary, TicketDetail, TicketSummary, UserSummary,
};
use lifeline_shared::v1::sla::{SlaTarget, TicketSla};
use lifeline_shared::v1::snapshot::Snapshot;
use lifeline_shared::v1::work::WorkStatus;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Text safe to print: control characters (except newline and tab in long text) are escaped.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// One line of text: newlines and tabs become spaces too.
pub fn clean_line(text: &str) -> String {
    clean(text).replace(['\n', '\t'], " ")
}

fn shorten(text: &str, max: usize) -> String {
    let line = clean_line(text);
    if line.chars().count() <= max {
        line
    } else {
        let mut short: String = line.chars().take(max.saturating_sub(1)).collect();
        short.push('…');
        short
    }
}

pub fn when(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn when_opt(t: Option<OffsetDateTime>) -> String {
    t.map(when).unwrap_or_else(|| "-".to_owned())
}

pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    table
}

pub fn tickets_table(tickets: &[TicketSummary]) -> String {
    if tickets.is_empty() {
        return "no tickets".to_owned();
    }
    let mut t = table(&[
        "#",
        "status",
        "priority",
        "tier",
        "machine",
        "assignee",
        "findings",
        "due",
        "created",
        "description",
    ]);
    for ticket in tickets {
        t.add_row(vec![
            format!("#{}", ticket.number),
            ticket.status.to_string(),
            ticket.priority.to_string(),
            ticket.tier.to_string(),
            clean_line(&ticket.hostname),
            ticket
                .assignee
                .as_deref()
                .map(clean_line)
                .unwrap_or_else(|| "-".to_owned()),
            ticket
                .worst_finding
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".to_owned()),
            due_cell(ticket.sla.as_ref()),
            when(ticket.created_at),
            shorten(&ticket.description, 60),
        ]);
    }
    t.to_string()
}

pub fn ticket_page(ticket: &TicketDetail) -> String {
    let s = &ticket.summary;
    let mut out = String::new();
    out.push_str(&format!(
        "Ticket #{}  [{}]  priority {}  tier {}  urgency {}\n",
        s.number, s.status, s.priority, s.tier, s.urgency
    ));
    out.push_str(&format!(
        "Machine:   {} ({})\nReported:  {} by {}\nAssignee:  {}\nFirst response: {}   Resolved: {}\n",
        clean_line(&s.hostname),
        clean_line(&s.machine_id),
        when(s.created_at),
        ticket.os_user.as_deref().map(clean_line).unwrap_or_else(|| "unknown user".to_owned()),
        s.assignee.as_deref().map(clean_line).unwrap_or_else(|| "-".to_owned()),
        when_opt(ticket.first_response_at),
        when_opt(ticket.resolved_at),
    ));
    if let Some(sla) = &s.sla {
        out.push_str(&sla_lines(sla));
    }
    out.push_str("\nDescription:\n");
    for line in clean(&s.description).lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out.push_str("\nFindings:\n");
    out.push_str(&findings_lines(&ticket.findings));
    // Recurring problems and knowledge (issue 9).
    if !ticket.fingerprints.is_empty() {
        let keys: Vec<String> = ticket.fingerprints.iter().map(|k| clean_line(k)).collect();
        out.push_str(&format!(
            "Fingerprint: {}  (earlier tickets: lifeline-collector tickets similar {})\n",
            keys.join(", "),
            s.number
        ));
    }
    if let Some(note) = &ticket.resolution_note {
        out.push_str("\nResolution:\n");
        for line in clean(note).lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    if ticket.has_screenshot {
        out.push_str(&format!(
            "\nscreenshot attached (lifeline-collector tickets screenshot {} --out shot.png)\n",
            s.number
        ));
    }
    if !ticket.feedback.is_empty() {
        out.push_str("\nDid this fix it? (the user's answers):\n");
        for f in &ticket.feedback {
            out.push_str(&format!(
                "  {} {}{}\n",
                when(f.created_at),
                if f.fixed { "yes" } else { "no (reopened)" },
                f.comment
                    .as_deref()
                    .map(|c| format!(": \"{}\"", clean_line(c)))
                    .unwrap_or_default()
            ));
        }
    }
    if !ticket.comments.is_empty() {
        out.push_str("\nComments:\n");
        for c in &ticket.comments {
            out.push_str(&format!(
                "  {} {}{}:\n",
                when(c.created_at),
                clean_line(&c.author),
                if c.public { " (public)" } else { "" }
            ));
            for line in clean(&c.body).lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    for attached in &ticket.snapshots {
        out.push_str(&format!(
            "\nSnapshot {} (received {}):\n",
            attached.id,
            when(attached.received_at)
        ));
        out.push_str(&snapshot_sections(&attached.snapshot));
    }
    out
}

// Service levels (issue 9).

/// The queue's due column: the next target not yet met, its state and time left.
fn due_cell(sla: Option<&TicketSla>) -> String {
    match sla.and_then(TicketSla::pending) {
        Some((which, target)) => format!(
            "{} {}: {}",
            target.state,
            which.label(),
            crate::sla::describe(target)
        ),
        None => "-".to_owned(),
    }
}

/// Both targets of a ticket: state, time left, due time, target.
fn sla_lines(sla: &TicketSla) -> String {
    let mut out = format!(
        "Service levels{}:\n",
        if sla.business_hours {
            " (business hours)"
        } else {
            ""
        }
    );
    for which in [SlaTarget::FirstResponse, SlaTarget::Resolution] {
        let t = sla.target(which);
        out.push_str(&format!(
            "  {:<15} [{}] {}  (due {}, target {}){}\n",
            which.label(),
            t.state,
            crate::sla::describe(t),
            t.due_at
                .map_or_else(|| "moves while paused".to_owned(), when),
            crate::sla::human(i64::try_from(t.target_secs).unwrap_or(i64::MAX)),
            if t.auto_escalated {
                "  escalated automatically"
            } else {
                ""
            }
        ));
    }
    if let Some(since) = sla.paused_since {
        out.push_str(&format!("  clocks paused since {}\n", when(since)));
    }
    out
}

/// The sections of a snapshot as indented, pretty JSON, one heading per section.
fn snapshot_sections(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "  collected {} by agent {}\n",
        when(snapshot.collected_at),
        clean_line(&snapshot.agent_version)
    ));
    let Ok(serde_json::Value::Object(map)) = serde_json::to_value(snapshot) else {
        return out;
    };
    for (name, value) in map {
        if !value.is_object() || name == "findings" {
            continue;
        }
        out.push_str(&format!("  [{}]\n", clean_line(&name)));
        let pretty = serde_json::to_string_pretty(&value).unwrap_or_default();
        for line in clean(&pretty).lines() {
            out.push_str(&format!("    {line}\n"));
        }
    }
    out
}

pub fn machines_table(machines: &[MachineSummary]) -> String {
    if machines.is_empty() {
        return "no machines".to_owned();
    }
    let mut t = table(&[
        "id",
        "hostname",
        "status",
        "state",
        "open tickets",
        "last seen",
        "enrolled",
        "cert expires",
    ]);
    for m in machines {
        t.add_row(vec![
            clean_line(&m.id),
            clean_line(&m.hostname),
            m.status.to_string(),
            online(m.online).to_owned(),
            m.open_tickets.to_string(),
            when(m.last_seen_at),
            when(m.enrolled_at),
            when(m.certificate_not_after),
        ]);
    }
    t.to_string()
}

pub fn machine_page(machine: &MachineDetail) -> String {
    let m = &machine.summary;
    let mut out = format!(
        "Machine {} ({})  [{}]\nEnrolled:  {}\nLast seen: {} ({})\nCertificate expires: {}\nRevoked:   {}\n",
        clean_line(&m.hostname),
        clean_line(&m.id),
        m.status,
        when(m.enrolled_at),
        when(m.last_seen_at),
        online(m.online),
        when(m.certificate_not_after),
        when_opt(machine.revoked_at),
    );
    match &machine.last_vitals {
        Some(v) => {
            out.push_str(&format!(
                "Vitals:    cpu {:.0}%  memory {:.0}%  load {:.2}  up {}  agent {}\n",
                v.cpu_percent,
                v.memory_percent,
                v.load_one,
                uptime(v.uptime_secs),
                clean_line(&v.agent_version)
            ));
            if let Some(d) = &v.busiest_disk {
                out.push_str(&format!(
                    "           fullest disk {} {:.0}%\n",
                    clean_line(&d.mount_point),
                    d.used_percent
                ));
            }
        }
        None => out.push_str("Vitals:    no heartbeat yet\n"),
    }
    out.push('\n');
    out.push_str(&tickets_table(&machine.tickets));
    out
}

fn online(online: bool) -> &'static str {
    if online { "online" } else { "offline" }
}

fn uptime(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else {
        format!("{h}h {m}m")
    }
}

/// A finished inspection: findings first, then the snapshot's sections.
pub fn inspection_page(status: &WorkStatus) -> String {
    let mut out = format!(
        "Inspection {} of {} ({})  [{}]  finished {}\n",
        status.id,
        clean_line(&status.hostname),
        clean_line(&status.machine_id),
        status.state.as_str(),
        when_opt(status.finished_at),
    );
    if let Some(ticket) = status.ticket {
        out.push_str(&format!("Attached to ticket #{ticket}\n"));
    }
    if let Some(error) = &status.error {
        out.push_str(&format!("Error: {}\n", clean_line(error)));
    }
    let Some(snapshot) = &status.snapshot else {
        out.push_str(&format!(
            "no snapshot (machine {}, expires {})\n",
            if status.machine_online {
                "online"
            } else {
                "offline"
            },
            when(status.expires_at)
        ));
        return out;
    };
    out.push_str("\nFindings:\n");
    out.push_str(&findings_lines(&snapshot.findings));
    out.push_str("\nSnapshot:\n");
    out.push_str(&snapshot_sections(snapshot));
    out
}

fn findings_lines(findings: &[lifeline_shared::findings::Finding]) -> String {
    let mut out = String::new();
    if findings.is_empty() {
        out.push_str("  none\n");
    }
    for f in findings {
        out.push_str(&format!(
            "  [{}] {}: {}\n",
            f.severity,
            clean_line(&f.title),
            clean_line(&f.evidence)
        ));
        if let Some(action) = &f.suggested_action {
            out.push_str(&format!("      suggested action: {}\n", clean_line(action)));
        }
    }
    out
}

/// Enrollment tokens by prefix, with their state now.
pub fn enrollment_tokens_table(tokens: &[EnrollmentTokenInfo]) -> String {
    if tokens.is_empty() {
        return "no enrollment tokens".to_owned();
    }
    let mut t = table(&[
        "token",
        "created by",
        "created",
        "expires",
        "uses",
        "revoked",
    ]);
    for token in tokens {
        t.add_row(vec![
            token.prefix.as_deref().map_or_else(
                || format!("id {}", token.id),
                |p| format!("{}…", clean_line(p)),
            ),
            token
                .created_by
                .as_deref()
                .map(clean_line)
                .unwrap_or_else(|| "-".to_owned()),
            when(token.created_at),
            token.expires_at.map_or_else(|| "never".to_owned(), when),
            match token.max_uses {
                Some(max) => format!("{} / {max}", token.uses),
                None => format!("{} / unlimited", token.uses),
            },
            when_opt(token.revoked_at),
        ]);
    }
    t.to_string()
}

pub fn users_table(users: &[UserSummary]) -> String {
    if users.is_empty() {
        return "no users".to_owned();
    }
    let mut t = table(&["name", "role", "e-mail", "created", "revoked"]);
    for u in users {
        t.add_row(vec![
            clean_line(&u.name),
            u.role.to_string(),
            u.email
                .as_deref()
                .map(clean_line)
                .unwrap_or_else(|| "-".to_owned()),
            when(u.created_at),
            when_opt(u.revoked_at),
        ]);
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_from_agents_are_neutralised() {
        let hostile = "pwn\u{1b}[2J\u{7}ed";
        let shown = clean_line(hostile);
        assert!(!shown.contains('\u{1b}'));
        assert!(!shown.contains('\u{7}'));
        assert!(shown.contains("\\u{1b}"));
        assert_eq!(clean_line("a\nb"), "a b");
    }

    #[test]
    fn long_descriptions_are_shortened_in_tables() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
    }
}

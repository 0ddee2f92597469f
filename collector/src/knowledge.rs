//! Recurring problems and the knowledge base: which findings make a ticket's fingerprint, how a
//! knowledge-base query is read, and how its matches are ranked and quoted.
//!
//! Fingerprint rule: every finding of severity warning or critical contributes its
//! `Finding::fingerprint` (`id`, or `id:subject` for rules about one mount point, unit, battery
//! or sensor). Info findings (pending updates without security fixes, old segfaults) are left
//! out: they are on most machines and would make unrelated tickets look alike. Keys are
//! de-duplicated, sorted, and cut to [`KEY_MAX_CHARS`] characters (a subject comes from an
//! agent). The store computes them with [`fingerprint_keys`] when it records a ticket, and once
//! for tickets stored before fingerprints existed.

use lifeline_shared::findings::{Finding, Severity};
use lifeline_shared::v1::reports::{KB_QUERY_MAX_LEN, KB_QUERY_MAX_WORDS, KbHit};

/// Longest fingerprint key kept, in characters.
pub const KEY_MAX_CHARS: usize = 200;
/// Most keys one ticket contributes.
pub const KEYS_PER_TICKET_MAX: usize = 64;
/// Characters of context a snippet shows before the first match.
const SNIPPET_BEFORE: usize = 60;
/// Longest snippet, in characters (without the ellipses).
const SNIPPET_CHARS: usize = 200;

/// The fingerprint keys of a ticket with these findings.
pub fn fingerprint_keys(findings: &[Finding]) -> Vec<String> {
    let mut keys: Vec<String> = findings
        .iter()
        .filter(|f| f.severity >= Severity::Warning)
        .map(|f| f.fingerprint().chars().take(KEY_MAX_CHARS).collect())
        .collect();
    keys.sort();
    keys.dedup();
    keys.truncate(KEYS_PER_TICKET_MAX);
    keys
}

/// A knowledge-base query that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("q: give at least one word to search for")]
    Empty,
    #[error("q is {0} characters; the limit is {KB_QUERY_MAX_LEN}")]
    TooLong(usize),
    #[error("q has {0} words; at most {KB_QUERY_MAX_WORDS} are allowed")]
    TooManyWords(usize),
}

/// The words of a query: split on white space, lower case, duplicates dropped. The limits
/// apply to the query as sent (characters and words, as the OpenAPI document states them).
pub fn query_words(query: &str) -> Result<Vec<String>, QueryError> {
    let length = query.chars().count();
    if length > KB_QUERY_MAX_LEN {
        return Err(QueryError::TooLong(length));
    }
    let sent = query.split_whitespace().count();
    if sent > KB_QUERY_MAX_WORDS {
        return Err(QueryError::TooManyWords(sent));
    }
    let mut words: Vec<String> = Vec::new();
    for word in query.split_whitespace().map(str::to_lowercase) {
        if !words.contains(&word) {
            words.push(word);
        }
    }
    if words.is_empty() {
        return Err(QueryError::Empty);
    }
    Ok(words)
}

/// A `LIKE` pattern that finds `word` anywhere (`\` escapes `%`, `_` and itself).
pub fn like_pattern(word: &str) -> String {
    let mut out = String::with_capacity(word.len() + 2);
    out.push('%');
    for c in word.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// A resolved ticket with a note, as the store found it for a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub number: u64,
    pub hostname: String,
    pub description: String,
    pub status: lifeline_shared::v1::api::TicketStatus,
    pub resolved_at: Option<time::OffsetDateTime>,
    pub resolution_note: String,
    pub keys: Vec<String>,
}

/// Ranks candidates: only those where every word is found (in the note, a key or the
/// description) are kept; a word in the note counts 3, in a key 2, in the description 1; ties
/// go to the most recently resolved. At most `limit` hits.
pub fn rank(words: &[String], candidates: Vec<Candidate>, limit: usize) -> Vec<KbHit> {
    let mut hits: Vec<KbHit> = candidates
        .into_iter()
        .filter_map(|c| {
            let note = c.resolution_note.to_lowercase();
            let description = c.description.to_lowercase();
            let keys = c.keys.join(" ").to_lowercase();
            let mut score = 0u32;
            for word in words {
                let mut found = false;
                if note.contains(word.as_str()) {
                    score += 3;
                    found = true;
                }
                if keys.contains(word.as_str()) {
                    score += 2;
                    found = true;
                }
                if description.contains(word.as_str()) {
                    score += 1;
                    found = true;
                }
                if !found {
                    return None;
                }
            }
            let snippet = [&c.resolution_note, &c.description, &c.keys.join(" ")]
                .into_iter()
                .find_map(|text| snippet(text, words))
                .unwrap_or_else(|| snippet_from(&c.resolution_note, 0));
            Some(KbHit {
                number: c.number,
                hostname: c.hostname,
                description: c.description,
                status: c.status,
                resolved_at: c.resolved_at,
                resolution_note: c.resolution_note,
                keys: c.keys,
                snippet,
                score,
            })
        })
        .collect();
    hits.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then_with(|| b.resolved_at.cmp(&a.resolved_at))
            .then_with(|| b.number.cmp(&a.number))
    });
    hits.truncate(limit);
    hits
}

/// One line of `text` around the earliest match of any word; `None` when no word is in it.
pub fn snippet(text: &str, words: &[String]) -> Option<String> {
    let lower: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    // Lower-casing can change the number of characters; only then fall back to the start.
    let same_length = lower.len() == text.chars().count();
    let lower: String = lower.into_iter().collect();
    let first = words.iter().filter_map(|w| lower.find(w.as_str())).min()?;
    let at = if same_length {
        lower[..first].chars().count()
    } else {
        0
    };
    Some(snippet_from(text, at))
}

/// Up to [`SNIPPET_CHARS`] characters of `text` as one line, starting a little before
/// character `at`, with `…` where text was left out.
fn snippet_from(text: &str, at: usize) -> String {
    let chars: Vec<char> = text
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect();
    let start = at.saturating_sub(SNIPPET_BEFORE);
    let end = (start + SNIPPET_CHARS).min(chars.len());
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.extend(&chars[start..end]);
    if end < chars.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use lifeline_shared::v1::api::TicketStatus;
    use time::macros::datetime;

    fn finding(id: &str, severity: Severity, subject: Option<&str>) -> Finding {
        Finding {
            id: id.to_owned(),
            severity,
            title: String::new(),
            evidence: String::new(),
            subject: subject.map(str::to_owned),
            suggested_action: None,
        }
    }

    #[test]
    fn keys_come_from_warning_and_critical_findings_only() {
        let findings = [
            finding("disk.full", Severity::Critical, Some("/")),
            finding("dns.fail", Severity::Critical, None),
            finding("software.updates_pending", Severity::Info, None),
            finding("service.failed", Severity::Warning, Some("cups.service")),
            finding("disk.full", Severity::Critical, Some("/")),
        ];
        assert_eq!(
            fingerprint_keys(&findings),
            ["disk.full:/", "dns.fail", "service.failed:cups.service"]
        );
        let long = finding("service.failed", Severity::Warning, Some(&"x".repeat(500)));
        assert_eq!(fingerprint_keys(&[long])[0].chars().count(), KEY_MAX_CHARS);
    }

    #[test]
    fn queries_are_words_in_lower_case_with_limits() {
        assert_eq!(
            query_words("  Disk FULL disk ").unwrap(),
            ["disk".to_owned(), "full".to_owned()]
        );
        assert_eq!(query_words(" \t").unwrap_err(), QueryError::Empty);
        assert!(matches!(
            query_words(&"a ".repeat(200)),
            Err(QueryError::TooLong(_))
        ));
        let many = (0..9)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(query_words(&many).unwrap_err(), QueryError::TooManyWords(9));
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }

    fn candidate(number: u64, description: &str, note: &str, keys: &[&str]) -> Candidate {
        Candidate {
            number,
            hostname: "pc".to_owned(),
            description: description.to_owned(),
            status: TicketStatus::Resolved,
            resolved_at: Some(
                datetime!(2026-11-01 10:00 UTC) + time::Duration::hours(number as i64),
            ),
            resolution_note: note.to_owned(),
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    #[test]
    fn every_word_must_match_and_notes_weigh_most() {
        let words = query_words("disk cache").unwrap();
        let hits = rank(
            &words,
            vec![
                candidate(1, "disk is slow", "cleared the apt cache", &["disk.full:/"]),
                candidate(2, "cannot save", "cleared the disk cache", &["disk.full:/"]),
                candidate(3, "disk full", "rebooted", &["disk.full:/"]),
                candidate(4, "cache and disk", "nothing", &[]),
            ],
            10,
        );
        let numbers: Vec<u64> = hits.iter().map(|h| h.number).collect();
        // #3 lacks "cache" everywhere; #2 has both words in the note.
        assert_eq!(numbers, [2, 1, 4]);
        assert_eq!(hits[0].score, 3 + 2 + 3);
        assert_eq!(hits[0].snippet, "cleared the disk cache");
        assert_eq!(rank(&words, vec![], 10), vec![]);
    }

    #[test]
    fn snippets_are_one_line_around_the_first_match() {
        let text = format!(
            "{}\nthe disk was full\n{}",
            "a".repeat(100),
            "b".repeat(300)
        );
        let words = vec!["disk".to_owned()];
        let s = snippet(&text, &words).unwrap();
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.contains(" the disk was full "), "{s}");
        assert!(!s.contains('\n'));
        assert_eq!(snippet("nothing here", &words), None);
        assert_eq!(snippet("Ünïcode DISK", &words).unwrap(), "Ünïcode DISK");
    }
}

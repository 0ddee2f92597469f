//! The help prompt in a terminal, for `lifeline-agent help` without a display (SSH, a console,
//! a headless build): description, urgency, what will be sent, confirm, then the ticket
//! reference. Reads lines from any `BufRead`, so it works with piped input too.

use std::io::{BufRead, Write};

use lifeline_shared::v1::api::{DESCRIPTION_MAX_LEN, Urgency};

use super::help::{self, Collecting, HelpError};
use crate::config::AgentDir;

/// Wrong answers to one question before giving up.
const ATTEMPTS: usize = 3;

/// Reads one line; `None` at end of input.
fn read_line(input: &mut impl BufRead) -> Result<Option<String>, HelpError> {
    let mut line = String::new();
    // Bounded: a description longer than the limit is refused below anyway.
    let read =
        std::io::Read::take(&mut *input, DESCRIPTION_MAX_LEN as u64 * 4).read_line(&mut line)?;
    if read == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

fn parse_urgency(answer: &str) -> Option<Urgency> {
    match answer.trim().to_ascii_lowercase().as_str() {
        "" | "n" | "normal" => Some(Urgency::Normal),
        "l" | "low" => Some(Urgency::Low),
        "h" | "high" => Some(Urgency::High),
        _ => None,
    }
}

/// Asks, shows, confirms and files. Declining sends nothing and is not an error.
pub fn run(dir: &AgentDir, mut input: impl BufRead, mut out: impl Write) -> Result<(), HelpError> {
    let collecting = Collecting::start(dir);
    writeln!(
        out,
        "Lifeline: get help. Diagnostics of this machine are being collected while you type."
    )?;
    write!(out, "What's wrong? ")?;
    out.flush()?;
    let description = read_line(&mut input)?.unwrap_or_default();
    let description = description.trim().to_owned();
    if description.is_empty() {
        return Err(HelpError::Input(
            "no description given: nothing was sent".to_owned(),
        ));
    }
    if description.len() > DESCRIPTION_MAX_LEN {
        return Err(HelpError::Input(format!(
            "the description is {} bytes; the limit is {DESCRIPTION_MAX_LEN}: nothing was sent",
            description.len()
        )));
    }

    let mut urgency = None;
    for _ in 0..ATTEMPTS {
        write!(out, "How urgent is it? [l]ow, [N]ormal, [h]igh: ")?;
        out.flush()?;
        let Some(answer) = read_line(&mut input)? else {
            urgency = Some(Urgency::Normal);
            break;
        };
        urgency = parse_urgency(&answer);
        if urgency.is_some() {
            break;
        }
        writeln!(out, "Please answer low, normal or high.")?;
    }
    let Some(urgency) = urgency else {
        return Err(HelpError::Input(
            "no valid urgency given (low, normal or high): nothing was sent".to_owned(),
        ));
    };

    let snapshot = collecting.wait();
    let draft = help::draft(&description, urgency, &snapshot);
    draft.check()?;
    writeln!(out, "\nWhat will be sent to the help desk:\n")?;
    for line in help::preview(&draft, &snapshot, None).lines() {
        writeln!(out, "  {line}")?;
    }
    write!(out, "\nSend this? [Y/n] ")?;
    out.flush()?;
    let confirmed = match read_line(&mut input)? {
        None => false,
        Some(answer) => matches!(
            answer.trim().to_ascii_lowercase().as_str(),
            "" | "y" | "yes"
        ),
    };
    if !confirmed {
        writeln!(out, "\nCancelled: nothing was sent.")?;
        return Ok(());
    }
    let filed = help::send(dir, draft, snapshot, None)?;
    for (reference, number) in &filed.earlier {
        writeln!(
            out,
            "Delivered your earlier report {reference} as #{number}"
        )?;
    }
    writeln!(out, "\n{}", help::outcome(&filed))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urgency_answers() {
        assert_eq!(parse_urgency(""), Some(Urgency::Normal));
        assert_eq!(parse_urgency(" H "), Some(Urgency::High));
        assert_eq!(parse_urgency("low"), Some(Urgency::Low));
        assert_eq!(parse_urgency("soon"), None);
    }

    #[test]
    fn an_empty_or_oversize_description_sends_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = AgentDir::single(tmp.path().to_owned());
        let mut out = Vec::new();
        let err = run(&dir, &b"\n"[..], &mut out).unwrap_err();
        assert!(err.to_string().contains("no description"), "{err}");
        let long = format!("{}\n", "x".repeat(DESCRIPTION_MAX_LEN + 1));
        let err = run(&dir, long.as_bytes(), &mut out).unwrap_err();
        assert!(err.to_string().contains("the limit is"), "{err}");
        assert!(!dir.spool_path().exists());
    }
}

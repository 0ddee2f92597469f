//! Asking the logged-in user to allow a technician's action.
//!
//! [`ask`] is what the action runner calls. With no desktop session it answers
//! [`ConsentAnswer::NoDesktop`] at once. Otherwise it starts `lifeline-agent consent` (a hidden
//! subcommand) as a short-lived window process through [`crate::exec::runner`], hands it the
//! prompt as JSON on stdin (never on a command line, never through a shell), and reads one word
//! back on stdout: `allow`, `deny` or `timeout`. The window denies by itself when its countdown
//! ends; as a backstop the runner kills it shortly after the timeout, which is also a denial.
//! Anything unexpected (a crash, garbage on stdout) is a denial too: only an explicit Allow
//! ever allows.

use std::io::Read;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::exec::runner::{self, Limits};

/// Extra time the window process gets past the timeout before it is killed.
const KILL_GRACE: Duration = Duration::from_secs(3);
/// Largest prompt the window reads from stdin.
pub const PROMPT_MAX_BYTES: u64 = 64 * 1024;
/// Exit status of `lifeline-agent consent` when it cannot open a window.
pub const EXIT_NO_DESKTOP: i32 = 3;

/// What the user is asked to allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentPrompt {
    /// The technician who asked for the action.
    pub technician: String,
    pub action_title: String,
    pub action_description: String,
    /// Validated parameters, as (name, value).
    pub params: Vec<(String, String)>,
    pub reason: Option<String>,
    pub ticket: Option<u64>,
}

/// The user's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentAnswer {
    Allowed,
    Denied,
    /// Nobody answered within the timeout: a denial.
    TimedOut,
    /// No desktop session to ask in.
    NoDesktop,
}

impl ConsentAnswer {
    /// Whether the action may run.
    pub fn allows(self) -> bool {
        self == ConsentAnswer::Allowed
    }

    /// The word the window process prints.
    pub fn word(self) -> &'static str {
        match self {
            ConsentAnswer::Allowed => "allow",
            ConsentAnswer::Denied => "deny",
            ConsentAnswer::TimedOut => "timeout",
            ConsentAnswer::NoDesktop => "no-desktop",
        }
    }
}

/// Asks the user in a window; see the module docs. Blocks for at most `timeout` plus a few
/// seconds.
pub fn ask(prompt: &ConsentPrompt, timeout: Duration) -> ConsentAnswer {
    if !super::display_available() {
        return ConsentAnswer::NoDesktop;
    }
    let Ok(input) = serde_json::to_vec(prompt) else {
        return ConsentAnswer::Denied;
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe.to_string_lossy().into_owned(),
        Err(e) => {
            eprintln!("lifeline-agent: consent: cannot find this program's path: {e}");
            return ConsentAnswer::Denied;
        }
    };
    ask_with(&exe, prompt_timeout_args(timeout), input, timeout)
}

fn prompt_timeout_args(timeout: Duration) -> Vec<String> {
    vec![
        "consent".to_owned(),
        "--timeout-secs".to_owned(),
        timeout.as_secs().max(1).to_string(),
    ]
}

/// Runs the window process `program args` with `input` on stdin and reads its answer.
fn ask_with(program: &str, args: Vec<String>, input: Vec<u8>, timeout: Duration) -> ConsentAnswer {
    let options = runner::Options::desktop(Limits::new(timeout + KILL_GRACE, 256));
    match runner::run_with_input(program, &args, &options, input) {
        Ok(out) if out.timed_out => ConsentAnswer::TimedOut,
        Ok(out) if out.exit_code() == Some(EXIT_NO_DESKTOP) => ConsentAnswer::NoDesktop,
        Ok(out) => match out.stdout_text().trim() {
            "allow" if out.status.success() => ConsentAnswer::Allowed,
            "timeout" => ConsentAnswer::TimedOut,
            "deny" => ConsentAnswer::Denied,
            other => {
                eprintln!(
                    "lifeline-agent: consent window answered {other:?} ({}): taken as deny",
                    out.stderr_line()
                );
                ConsentAnswer::Denied
            }
        },
        Err(e) => {
            eprintln!("lifeline-agent: consent window: {e}: taken as deny");
            ConsentAnswer::Denied
        }
    }
}

/// `lifeline-agent consent` flags (hidden; the prompt comes as JSON on stdin).
#[derive(Debug, Clone, clap::Args)]
pub struct ConsentArgs {
    /// Seconds before the window denies by itself.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout_secs: u64,
    /// Which try this is at opening the window (see `desktop::is_transient_display_error`).
    #[arg(long, hide = true, default_value_t = 1)]
    pub attempt: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    #[error("cannot read the consent prompt from stdin: {0}")]
    Read(#[from] std::io::Error),
    #[error("the consent prompt is larger than {PROMPT_MAX_BYTES} bytes")]
    TooLarge,
    #[error("invalid consent prompt: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("no desktop session to ask in")]
    NoDesktop,
    #[error("the consent window failed: {0}")]
    Window(String),
}

/// Reads and checks a prompt (bounded).
pub fn read_prompt(input: impl Read) -> Result<ConsentPrompt, ConsentError> {
    let mut bytes = Vec::new();
    input.take(PROMPT_MAX_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > PROMPT_MAX_BYTES {
        return Err(ConsentError::TooLarge);
    }
    Ok(serde_json::from_slice(&bytes)?)
}

/// Runs `lifeline-agent consent`: reads the prompt, shows the window, returns the answer (the
/// caller prints its word).
pub fn run_window(args: &ConsentArgs) -> Result<ConsentAnswer, ConsentError> {
    let prompt = read_prompt(std::io::stdin().lock())?;
    if !super::display_available() {
        return Err(ConsentError::NoDesktop);
    }
    let timeout = Duration::from_secs(args.timeout_secs);
    let started = std::time::Instant::now();
    match show(&prompt, timeout) {
        // The X connection failed to set up: a fresh process tries again, within the time left.
        Err(ConsentError::Window(message))
            if super::is_transient_display_error(&message)
                && args.attempt < super::WINDOW_ATTEMPTS =>
        {
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Ok(ConsentAnswer::TimedOut);
            }
            let exe = std::env::current_exe()
                .map_err(|e| ConsentError::Window(e.to_string()))?
                .to_string_lossy()
                .into_owned();
            let mut args_again = prompt_timeout_args(left);
            args_again.extend(["--attempt".to_owned(), (args.attempt + 1).to_string()]);
            Ok(ask_with(
                &exe,
                args_again,
                serde_json::to_vec(&prompt)?,
                left,
            ))
        }
        other => other,
    }
}

#[cfg(feature = "desktop")]
fn show(prompt: &ConsentPrompt, timeout: Duration) -> Result<ConsentAnswer, ConsentError> {
    super::window::consent(prompt, timeout).map_err(ConsentError::Window)
}

#[cfg(not(feature = "desktop"))]
fn show(_prompt: &ConsentPrompt, _timeout: Duration) -> Result<ConsentAnswer, ConsentError> {
    Err(ConsentError::NoDesktop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt() -> ConsentPrompt {
        ConsentPrompt {
            technician: "alice".into(),
            action_title: "Restart the print spooler".into(),
            action_description: "Restarts cups.service".into(),
            params: vec![("unit".into(), "cups.service".into())],
            reason: Some("printer queue is stuck".into()),
            ticket: Some(7),
        }
    }

    #[test]
    fn prompts_round_trip_and_oversize_or_unknown_input_is_refused() {
        let json = serde_json::to_vec(&prompt()).unwrap();
        assert_eq!(read_prompt(&json[..]).unwrap(), prompt());
        let big = vec![b' '; PROMPT_MAX_BYTES as usize + 10];
        assert!(matches!(read_prompt(&big[..]), Err(ConsentError::TooLarge)));
        assert!(read_prompt(&br#"{"technician":"x"}"#[..]).is_err());
    }

    #[test]
    fn only_an_explicit_allow_allows() {
        let t = Duration::from_secs(5);
        let sh = |script: &str| {
            // Tests may use a shell to stand in for the window process; production never does.
            ask_with(
                "/bin/sh",
                vec!["-c".into(), script.into()],
                serde_json::to_vec(&prompt()).unwrap(),
                t,
            )
        };
        assert_eq!(sh("cat >/dev/null; echo allow"), ConsentAnswer::Allowed);
        assert_eq!(sh("cat >/dev/null; echo deny"), ConsentAnswer::Denied);
        assert_eq!(sh("echo timeout"), ConsentAnswer::TimedOut);
        assert_eq!(sh("echo allow; exit 1"), ConsentAnswer::Denied);
        assert_eq!(sh("echo sure"), ConsentAnswer::Denied);
        assert_eq!(sh("exit 3"), ConsentAnswer::NoDesktop);
        // The prompt really arrives on stdin.
        assert_eq!(
            sh("grep -q 'Restart the print spooler' && echo allow"),
            ConsentAnswer::Allowed
        );
    }

    #[test]
    fn a_window_that_never_answers_is_killed_and_times_out() {
        let started = std::time::Instant::now();
        let answer = ask_with(
            "/bin/sleep",
            vec!["30".into()],
            Vec::new(),
            Duration::from_millis(200),
        );
        assert_eq!(answer, ConsentAnswer::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn without_a_display_the_answer_is_no_desktop_at_once() {
        if std::env::var_os("DISPLAY").is_some() {
            return; // Only meaningful in a session without a display.
        }
        assert_eq!(
            ask(&prompt(), Duration::from_secs(60)),
            ConsentAnswer::NoDesktop
        );
    }
}

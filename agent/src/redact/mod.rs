//! Masks secrets before anything leaves the machine.
//!
//! Every text the agent sends that it did not write itself goes through here: process command
//! lines and titles ([`redact_command`]), log lines, proxy settings and mount sources
//! ([`redact_text`]), and the output of remote actions ([`redact_output`]). What is masked:
//!
//! - values of flags and keys whose name says "secret" (`--password X`, `--db-pass=X`,
//!   `PGPASSWORD=X`, `"password": "X"`, `<password>X</password>`; see [`names`]);
//! - per-tool short flags and positions (`sshpass -p X`, `mysql -pX`, `curl -u bob:X`,
//!   `smbclient -U bob%X`, `vault login X`, `htpasswd -b FILE USER X`; see [`command`]), also
//!   behind `sudo`/`env`/`nice`/`timeout`, inside `sh -c "..."` and in process titles that hold a
//!   whole command line in one argument;
//! - `Authorization`/`Cookie` headers, `Bearer`/`Basic` tokens, URL credentials in any scheme,
//!   private key blocks, and well-known token formats wherever they appear (see [`text`]).
//!
//! The rules err on the side of masking: a masked harmless value costs a technician a guess, a
//! leaked password costs an incident. Secrets typed as free text are caught by shape only.
//! Environment variables are never collected at all.

mod command;
mod names;
mod text;

#[cfg(test)]
mod tests;

use std::borrow::Cow;

/// What a masked value is replaced with.
pub const MASK: &str = "***";

/// Longest command line kept in a snapshot, in characters.
pub const MAX_COMMAND_CHARS: usize = 512;

/// Masks secrets in free text: a log line, a proxy setting, a mount source, one line of output.
pub fn redact_text(text: &str) -> String {
    let words = text::redact_words(text, false);
    text::redact_shapes(&words).into_owned()
}

/// Masks secrets in a command line written as one string (a process title, a `sh -c` script).
pub fn redact_command_line(line: &str) -> String {
    let words = text::redact_words(line, true);
    text::redact_shapes(&words).into_owned()
}

/// Masks secrets in an argument vector and joins it into one bounded display line.
pub fn redact_command(argv: &[String]) -> String {
    // Programs that rewrite their title leave empty arguments behind.
    let used = argv
        .iter()
        .rposition(|a| !a.is_empty())
        .map_or(0, |p| p + 1);
    let argv = argv.get(..used).unwrap_or_default();
    if argv
        .first()
        .is_some_and(|a| a.contains(char::is_whitespace))
    {
        // A whole command line in one argument: `myapp --password X --verbose`.
        return bound(
            redact_command_line(argv.join(" ").trim_end()),
            MAX_COMMAND_CHARS,
        );
    }
    let words: Vec<&str> = argv.iter().map(String::as_str).collect();
    let plan = command::plan(&words, true);
    let mut out: Vec<Cow<'_, str>> = Vec::with_capacity(argv.len());
    for (arg, mask) in words.iter().zip(plan) {
        out.push(match mask {
            Some(range) => Cow::Owned(format!(
                "{}{MASK}{}",
                arg.get(..range.start).unwrap_or(""),
                arg.get(range.end..).unwrap_or("")
            )),
            // `sh -c "app --password X"`: the argument is a command line of its own.
            None if arg.contains(char::is_whitespace) => Cow::Owned(redact_command_line(arg)),
            None => text::redact_shapes(arg),
        });
    }
    bound(out.join(" "), MAX_COMMAND_CHARS)
}

/// Masks secrets in a program's captured output, line by line; a private key block spanning
/// lines is masked from its BEGIN line to its END line.
pub fn redact_output(output: &str) -> String {
    let mut out = String::with_capacity(output.len());
    let mut in_private_key = false;
    for line in output.split_inclusive('\n') {
        let (body, ending) = match line.strip_suffix("\r\n") {
            Some(body) => (body, "\r\n"),
            None => match line.strip_suffix('\n') {
                Some(body) => (body, "\n"),
                None => (line, ""),
            },
        };
        let is_end = body.contains("-----END") && body.contains("PRIVATE KEY");
        if in_private_key {
            if is_end {
                in_private_key = false;
                out.push_str(body);
            } else {
                out.push_str(MASK);
            }
        } else {
            if body.contains("-----BEGIN") && body.contains("PRIVATE KEY") && !is_end {
                in_private_key = true;
            }
            out.push_str(&redact_text(body));
        }
        out.push_str(ending);
    }
    out
}

/// Cuts `text` to at most `max` characters, marking the cut.
pub fn bound(mut text: String, max: usize) -> String {
    if let Some((cut, _)) = text.char_indices().nth(max) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

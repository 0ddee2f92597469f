//! The redaction pass over everything that leaves the machine: process command lines
//! (`redact_command`) and free text such as log lines and action output (`redact_text`).
//!
//! Input: the arguments of one command line, separated by NUL bytes. Beyond "no panic":
//! - a command line's display is bounded ([`MAX_COMMAND_CHARS`] characters plus the cut mark);
//! - a value given to `--password` (as the next argument or as `--password=VALUE`) and a value
//!   after `password=` in free text never survives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeline_agent::redact::{MAX_COMMAND_CHARS, redact_command, redact_text};

/// A value the masking must hide wherever it is put: long enough not to be a substring of the
/// surrounding text by chance, and plain enough to be taken whole by every rule.
fn plantable(value: &str) -> bool {
    value.len() >= 8 && value.chars().all(|c| c.is_ascii_alphanumeric())
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let argv: Vec<String> = text.split('\0').map(str::to_owned).collect();

    let line = redact_command(&argv);
    assert!(
        line.chars().count() <= MAX_COMMAND_CHARS + 1,
        "command line display of {} characters",
        line.chars().count()
    );
    for arg in &argv {
        let _ = redact_text(arg);
    }

    // Planted secrets: the fuzzer's first argument as the value of well-known secret flags.
    let secret = &argv[0];
    if plantable(secret) && !"app --password *** password=".contains(secret.as_str()) {
        let flag_then_value = ["app".to_owned(), "--password".to_owned(), secret.clone()];
        let out = redact_command(&flag_then_value);
        assert!(
            !out.contains(secret.as_str()),
            "leaked by `--password VALUE`: {out}"
        );

        let joined = ["app".to_owned(), format!("--password={secret}")];
        let out = redact_command(&joined);
        assert!(
            !out.contains(secret.as_str()),
            "leaked by `--password=VALUE`: {out}"
        );

        let in_text = format!("connecting with password={secret} now");
        let out = redact_text(&in_text);
        assert!(
            !out.contains(secret.as_str()),
            "leaked from free text: {out}"
        );
    }
});

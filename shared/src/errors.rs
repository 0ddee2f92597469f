//! How the command-line tools print an error with its causes.

use std::error::Error;

/// `error: cause: cause ...` on one line, leaving out a cause whose text is already part of the
/// message (many errors repeat their source in their own text, so `{:#}` would print the same
/// words two or three times).
pub fn describe<'a>(chain: impl IntoIterator<Item = &'a (dyn Error + 'static)>) -> String {
    let mut message = String::new();
    for cause in chain {
        let text = cause.to_string();
        if text.is_empty() || message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open the database db: {0}")]
    struct Open(#[source] Refused);

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused")]
    struct Refused;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot prepare the data directory")]
    struct Prepare(#[source] Open);

    #[test]
    fn each_cause_is_said_once_and_causes_that_add_words_are_kept() {
        let error = Prepare(Open(Refused));
        let chain =
            std::iter::successors(Some(&error as &(dyn Error + 'static)), |e| (*e).source());
        assert_eq!(
            describe(chain),
            "cannot prepare the data directory: cannot open the database db: connection refused"
        );
        let alone = Refused;
        assert_eq!(
            describe([&alone as &(dyn Error + 'static)]),
            "connection refused"
        );
    }
}

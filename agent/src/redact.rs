//! Masks secret-looking values before anything leaves the machine.
//!
//! Command lines are the main leak: people pass `--password x`, `token=...` or `curl -H
//! "Authorization: Bearer ..."` on the command line, and process lists show them to anyone. The
//! rules here err on the side of masking: a masked harmless value costs a technician a guess, a
//! leaked password costs an incident. Environment variables are never collected at all.

use std::sync::LazyLock;

use regex::Regex;

/// What a masked value is replaced with.
pub const MASK: &str = "***";

/// Longest command line kept in a snapshot, in characters.
pub const MAX_COMMAND_CHARS: usize = 512;

/// Words that make a key name a secret when the key ends with one of them.
macro_rules! secret_words {
    () => {
        "password|passwd|passphrase|pwd|secret|token|apikey|api[-_]key|access[-_]key|auth|authorization|credentials?|private[-_]key|session[-_]?id|cookie"
    };
}

/// A key names a secret when it ends in one of the secret words (case-insensitive).
static SECRET_KEY: LazyLock<Regex> =
    LazyLock::new(|| regex(concat!(r"(?i)(", secret_words!(), r"|^-*pass)$")));

/// `secret_key=value` or `secret_key: value` inside a word (query strings, env-style
/// assignments, log messages).
static KEY_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r#"(?i)(?P<key>[A-Za-z0-9_.\-]*(?:"#,
        secret_words!(),
        r#")|\bpass)(?P<sep>=|:\s*)(?P<value>[^\s&;,"']+)"#
    ))
});

/// `Authorization: Bearer xyz`, `Proxy-Authorization: Basic ...`: everything after the scheme.
static AUTH_HEADER: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)(?P<head>(proxy-)?authorization\s*:\s*)(?P<value>.+)"));

/// `scheme://user:password@host`.
static URL_CREDENTIALS: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)(?P<value>[^@\s/]+)(?P<tail>@)")
});

/// Tokens recognisable by their shape wherever they appear.
static TOKEN_SHAPES: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(",
        r"gh[pousr]_[A-Za-z0-9]{20,}",     // GitHub
        r"|github_pat_[A-Za-z0-9_]{20,}",  // GitHub fine-grained
        r"|glpat-[A-Za-z0-9_\-]{20,}",     // GitLab
        r"|xox[abprs]-[A-Za-z0-9\-]{10,}", // Slack
        r"|AKIA[0-9A-Z]{16}",              // AWS access key id
        r"|sk-[A-Za-z0-9_\-]{20,}",        // API secret keys
        r"|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}", // JWT
        r")\b"
    ))
});

fn regex(pattern: &str) -> Regex {
    // The patterns are constants covered by the tests below; failing to compile one is a
    // programming error caught before release, never a runtime condition.
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("redaction pattern compiles")
}

fn is_secret_key(key: &str) -> bool {
    SECRET_KEY.is_match(key.trim_end_matches(':'))
}

/// Masks secrets in free text (one argument, a log line, a proxy setting).
pub fn redact_text(text: &str) -> String {
    let text = AUTH_HEADER.replace_all(text, |c: &regex::Captures<'_>| {
        format!("{}{MASK}", &c["head"])
    });
    let text = URL_CREDENTIALS.replace_all(&text, |c: &regex::Captures<'_>| {
        format!("{}{MASK}{}", &c["head"], &c["tail"])
    });
    let text = KEY_VALUE.replace_all(&text, |c: &regex::Captures<'_>| {
        format!("{}{}{MASK}", &c["key"], &c["sep"])
    });
    TOKEN_SHAPES.replace_all(&text, MASK).into_owned()
}

/// Masks secrets in an argument vector and joins it into one bounded display line.
pub fn redact_command(argv: &[String]) -> String {
    let program = argv
        .first()
        .map(|p| p.rsplit('/').next().unwrap_or(p))
        .unwrap_or("");
    let mysql_like = program.starts_with("mysql") || program.starts_with("mariadb");
    let mut out: Vec<String> = Vec::with_capacity(argv.len());
    let mut mask_next = false;
    for arg in argv {
        if mask_next {
            out.push(MASK.to_owned());
            mask_next = false;
            continue;
        }
        if arg.starts_with('-') && !arg.contains('=') && is_secret_key(arg) {
            // `--password hunter2`: the secret is the next argument.
            out.push(arg.clone());
            mask_next = true;
            continue;
        }
        if mysql_like && arg.len() > 2 && arg.starts_with("-p") && !arg.starts_with("--") {
            // mysql -pSECRET
            out.push(format!("-p{MASK}"));
            continue;
        }
        if let Some((key, _)) = arg
            .split_once('=')
            .filter(|(k, _)| k.starts_with('-') && is_secret_key(k))
        {
            out.push(format!("{key}={MASK}"));
            continue;
        }
        out.push(redact_text(arg));
    }
    bound(out.join(" "), MAX_COMMAND_CHARS)
}

/// Cuts `text` to at most `max` characters, marking the cut.
pub fn bound(mut text: String, max: usize) -> String {
    if let Some((cut, _)) = text.char_indices().nth(max) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits on `|` when present (arguments with spaces), else on spaces.
    fn argv(s: &str) -> Vec<String> {
        let sep = if s.contains('|') { '|' } else { ' ' };
        s.split(sep).map(str::to_owned).collect()
    }

    /// Planted secrets and where they appear; none may survive redaction.
    const PLANTED: &[(&str, &str)] = &[
        ("mysql -u admin --password hunter2 db", "hunter2"),
        ("mysql -uadmin -pS3cr3tPw db", "S3cr3tPw"),
        ("app --password=hunter3 --verbose", "hunter3"),
        ("app --api-key AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        ("app --client-secret=abc123def", "abc123def"),
        (
            "curl|-H|Authorization: Bearer abc.def.c2lnbmF0dXJl|https://x",
            "c2lnbmF0dXJl",
        ),
        (
            "app --jwt eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2QT4",
            "SflKxwRJSMeKKF2QT4",
        ),
        ("curl https://bob:pa55word@example.org/x", "pa55word"),
        (
            "wget http://example.org/dl?user=bob&token=tok_998877&x=1",
            "tok_998877",
        ),
        ("env PGPASSWORD=pgsecret psql", "pgsecret"),
        (
            "git push https://x-access-token:ghs_abcdefghijklmnopqrstuvwxyz012345@github.com/o/r",
            "ghs_abcdefghijklmnopqrstuvwxyz012345",
        ),
        (
            "python bot.py xoxb-123456789012-abcdefghijkl",
            "xoxb-123456789012-abcdefghijkl",
        ),
        ("node server.js --session-id 7f3a9c", "7f3a9c"),
        ("openssl genrsa -passout pass:topsecret", "topsecret"),
    ];

    #[test]
    fn planted_secrets_never_survive() {
        for (line, secret) in PLANTED {
            let redacted = redact_command(&argv(line));
            assert!(
                !redacted.contains(secret),
                "{secret:?} leaked from {line:?} as {redacted:?}"
            );
            assert!(redacted.contains(MASK), "{redacted}");
        }
    }

    #[test]
    fn harmless_command_lines_are_untouched() {
        for line in [
            "/usr/sbin/sshd -D",
            "firefox --new-window https://example.org/path?q=rust",
            "ls --color=auto /home",
            "vim passwords.txt",
            "ftp --passive example.org",
            "app --password-file /etc/app/secret.txt",
        ] {
            assert_eq!(redact_command(&argv(line)), line);
        }
    }

    #[test]
    fn url_user_name_is_kept_but_password_masked() {
        assert_eq!(
            redact_text("https://bob:pa55@example.org/"),
            "https://bob:***@example.org/"
        );
    }

    #[test]
    fn proxy_settings_lose_their_credentials() {
        assert_eq!(
            redact_text("http://proxyuser:Winter2026!@proxy.corp:3128"),
            "http://proxyuser:***@proxy.corp:3128"
        );
    }

    #[test]
    fn long_command_lines_are_bounded() {
        let long = vec!["x".repeat(2000)];
        let out = redact_command(&long);
        assert_eq!(out.chars().count(), MAX_COMMAND_CHARS + 1);
        assert!(out.ends_with('…'));
    }
}

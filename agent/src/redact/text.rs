//! Secrets in free text: shapes found wherever they appear, and the command rules applied to
//! the words of a line.
//!
//! The shapes: private key blocks, `Authorization`/`Cookie` headers, `Bearer`/`Basic` tokens,
//! credentials in URLs of any scheme, `name=value` / `name: value` / `"name": "value"` /
//! `<name>value</name>` pairs whose name says "secret" (see [`names`]), and token formats of
//! well-known services ([`TOKENS`]). Token shapes were learnt from the public rule sets of
//! gitleaks and detect-secrets; the rules here are our own and deliberately fewer.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};

use super::MASK;
use super::command;
use super::names::{self, NameKind, SecretClass};

fn regex(pattern: &str) -> Regex {
    // The patterns are constants covered by the corpus test; failing to compile one is a
    // programming error caught before release, never a runtime condition.
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("redaction pattern compiles")
}

/// `-----BEGIN ... PRIVATE KEY-----` to its END line, or to the end of the text.
static PRIVATE_KEY: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"(?s)(?P<begin>-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----)(?P<body>.*?)",
        r"(?P<end>-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----|\z)"
    ))
});

/// `Authorization: Bearer x`, `Proxy-Authorization: Basic x`, `Cookie: a=b; c=d`: everything
/// after the scheme, to the end of the quoted string or line.
static HEADER: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r#"(?i)\b(?P<head>(?:proxy-)?authorization|set-cookie|cookie)(?P<sep>["']?[ \t]*[:=][ \t]*["']?)"#,
        r"(?:(?P<scheme>basic|bearer|digest|negotiate|ntlm|token|aws4-hmac-sha256|apikey|sso-key|otp)[ \t]+)?",
        r#"(?P<value>[^"'\r\n]+)"#
    ))
});

/// `Bearer xyz` or `Basic dXNlcjpwdw==` on their own (a log line that lost the header name).
static SCHEME_TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"\b(?P<scheme>[Bb]earer|BEARER|[Bb]asic|BASIC|[Tt]oken)[ \t]+(?P<value>[A-Za-z0-9._~+/\-]{12,}=*)",
    )
});

/// `scheme://user:password@host` in any scheme; the password may hold `@` and `:`.
static URL_CREDENTIALS: LazyLock<Regex> = LazyLock::new(|| {
    regex(r#"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:@/?#"'<>]*:)(?P<value>[^\s/?#"'<>]*)@"#)
});

/// Webhook URLs whose path is the secret.
static WEBHOOK: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"(?P<head>hooks\.slack\.com/(?:services|workflows|triggers)/|",
        r"discord(?:app)?\.com/api/webhooks/[0-9]+/|webhook\.office\.com/webhookb2/)",
        r"(?P<value>[A-Za-z0-9+/_@\-]{16,})"
    ))
});

/// `name=value`, `name: value`, `"name": "value"`, `name = 'va lue'`, `'name' => 'value'`.
static KEY_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r#"(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)(?P<kq>["']?)(?P<sep>[ \t]*(?:=>|=|:)[ \t]*)"#,
        r#"(?P<value>"[^"]*"|'[^']*'|[^\s&;,"'<>(){}\[\]|]+)"#
    ))
});

/// `<password>value</password>`.
static XML_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"<(?P<open>[A-Za-z][A-Za-z0-9_.:\-]*)>(?P<value>[^<\s][^<]*)</(?P<close>[A-Za-z][A-Za-z0-9_.:\-]*)>",
    )
});

/// Token formats recognisable wherever they appear.
static TOKENS: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:",
        r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}", // AWS access key id
        r"|gh[pousr]_[A-Za-z0-9]{20,}",                     // GitHub
        r"|github_pat_[A-Za-z0-9_]{22,}",                   // GitHub fine-grained
        r"|gl(?:pat|dt|rt|ptt|cbt|imt|agent|oas|soat|ffct|ft)-[A-Za-z0-9_\-]{20,}", // GitLab
        r"|GR1348941[A-Za-z0-9_\-]{20,}",                   // GitLab runner registration
        r"|xox[abposre]-[A-Za-z0-9\-]{10,}",                // Slack
        r"|xapp-[0-9]-[A-Za-z0-9\-]{10,}",                  // Slack app-level
        r"|[sr]k_(?:live|test|prod)_[A-Za-z0-9]{10,}",      // Stripe-style secret/restricted
        r"|whsec_[A-Za-z0-9]{20,}",                         // webhook signing secrets
        r"|AIza[A-Za-z0-9_\-]{35}",                         // Google API key
        r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*", // JWT
        r"|sk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}", // OpenAI/Anthropic-style
        r"|npm_[A-Za-z0-9]{36}",                            // npm
        r"|pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}",        // PyPI
        r"|dckr_pat_[A-Za-z0-9_\-]{20,}",                   // Docker Hub
        r"|hv[sbr]\.[A-Za-z0-9_\-]{24,}",                   // HashiCorp Vault
        r"|do[opr]_v1_[a-f0-9]{64}",                        // DigitalOcean
        r"|SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}",   // SendGrid
        r"|hf_[A-Za-z]{34}",                                // Hugging Face
        r"|shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}",             // Shopify
        r"|AGE-SECRET-KEY-1[0-9A-Z]{58}",                   // age
        r"|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}",            // Grafana service account
        r"|glc_[A-Za-z0-9+/]{32,}={0,2}",                   // Grafana cloud
        r"|[0-9]{8,10}:AA[A-Za-z0-9_\-]{33}",               // Telegram bot
        r"|dapi[a-f0-9]{32}",                               // Databricks
        r"|PMAK-[a-f0-9]{24}-[a-f0-9]{34}",                 // Postman
        r"|ATATT3[A-Za-z0-9_\-=]{100,}",                    // Atlassian
        r"|sha256~[A-Za-z0-9_\-]{43}",                      // OpenShift
        r"|AKCp[A-Za-z0-9]{69}",                            // Artifactory
        r"|LTAI[A-Za-z0-9]{20}",                            // Alibaba Cloud
        r"|[a-zA-Z0-9_~.]{3}[0-9]Q~[a-zA-Z0-9_~.\-]{31,34}", // Azure AD client secret
        r")"
    ))
});

/// Whether `value` looks like a token rather than a word (`Bearer token` is prose).
fn looks_like_token(value: &str) -> bool {
    let digit = value.chars().any(|c| c.is_ascii_digit());
    let upper = value.chars().any(|c| c.is_ascii_uppercase());
    let lower = value.chars().any(|c| c.is_ascii_lowercase());
    let symbol = value.chars().any(|c| "._~+/-=".contains(c));
    [digit, upper, lower, symbol].iter().filter(|b| **b).count() >= 2 && (digit || upper)
}

fn mask_quoted(value: &str) -> String {
    match value.chars().next() {
        Some(q @ ('"' | '\'')) if value.len() >= 2 => format!("{q}{MASK}{q}"),
        _ => MASK.to_owned(),
    }
}

fn key_value(c: &Captures<'_>) -> String {
    let whole = &c[0];
    let key = &c["key"];
    let value = &c["value"];
    let unchanged = || whole.to_owned();
    let lower = key.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie"
    ) {
        return unchanged();
    }
    let Some(class) = names::secret_name(key, NameKind::Key) else {
        return unchanged();
    };
    let bare = value.trim_matches(|c| c == '"' || c == '\'');
    // `auth: Basic dXNl...`: the scheme is not the secret; the token after it is.
    if matches!(
        bare.to_ascii_lowercase().as_str(),
        "basic" | "bearer" | "digest" | "token"
    ) {
        return unchanged();
    }
    // `Token::new`, `auth::login`: a path in source code, not a pair.
    if c["sep"].trim() == ":" && value.starts_with(':') {
        return unchanged();
    }
    if names::is_placeholder(value) || (class == SecretClass::KeyOrFile && names::is_path(bare)) {
        return unchanged();
    }
    format!("{key}{}{}{}", &c["kq"], &c["sep"], mask_quoted(value))
}

/// Masks the values of secret `name=value` pairs. A pair whose name is not a secret gives back
/// its value for the next search (`app: secret: X` holds the pair `secret: X`).
fn key_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(c) = KEY_VALUE.captures_at(text, from) {
        let (Some(whole), Some(sep)) = (c.get(0), c.name("sep")) else {
            break;
        };
        let replaced = key_value(&c);
        if replaced != whole.as_str() {
            out.push_str(&text[copied..whole.start()]);
            out.push_str(&replaced);
            copied = whole.end();
            from = whole.end();
        } else {
            from = sep.start().max(from + 1);
        }
        if from >= text.len() {
            break;
        }
    }
    out.push_str(&text[copied..]);
    out
}

fn pass(out: &mut Cow<'_, str>, re: &Regex, f: &dyn Fn(&Captures<'_>) -> String) {
    if re.is_match(out) {
        *out = Cow::Owned(re.replace_all(out, |c: &Captures<'_>| f(c)).into_owned());
    }
}

/// Masks the shapes of secrets in `text`.
pub fn redact_shapes(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    // Cheap literal checks first: most arguments and log lines hold none of these, and a
    // snapshot redacts thousands of them.
    if text.contains("PRIVATE KEY") {
        pass(&mut out, &PRIVATE_KEY, &|c| {
            format!("{}{MASK}{}", &c["begin"], &c["end"])
        });
    }
    if text.contains([':', '=']) {
        pass(&mut out, &HEADER, &|c| {
            if names::is_placeholder(c["value"].trim()) {
                return c[0].to_owned();
            }
            let scheme = c
                .name("scheme")
                .map_or(String::new(), |s| format!("{} ", s.as_str()));
            format!("{}{}{scheme}{MASK}", &c["head"], &c["sep"])
        });
        if text.contains("://") {
            pass(&mut out, &URL_CREDENTIALS, &|c| {
                if names::is_placeholder(&c["value"]) {
                    return c[0].to_owned();
                }
                format!("{}{MASK}@", &c["head"])
            });
        }
        if KEY_VALUE.is_match(&out) {
            out = Cow::Owned(key_values(&out));
        }
    }
    if text.contains('/') {
        pass(&mut out, &WEBHOOK, &|c| format!("{}{MASK}", &c["head"]));
    }
    if text.contains("</") {
        pass(&mut out, &XML_VALUE, &|c| {
            let secret =
                c["open"] == c["close"] && names::secret_name(&c["open"], NameKind::Key).is_some();
            if secret && !names::is_placeholder(&c["value"]) {
                format!("<{}>{MASK}</{}>", &c["open"], &c["close"])
            } else {
                c[0].to_owned()
            }
        });
    }
    if text.contains(['B', 'b', 'T', 't']) {
        pass(&mut out, &SCHEME_TOKEN, &|c| {
            if looks_like_token(&c["value"]) {
                format!("{} {MASK}", &c["scheme"])
            } else {
                c[0].to_owned()
            }
        });
    }
    pass(&mut out, &TOKENS, &|_| MASK.to_owned());
    out
}

/// One word of a line: where its core (without quotes and brackets) lies.
struct Word<'a> {
    core: &'a str,
    start: usize,
}

/// Characters that surround a word without being part of it.
fn is_wrapping(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | '(' | ')' | '`' | '[' | ']' | '{' | '}' | ','
    )
}

/// Splits `text` at whitespace into word cores, with `;` for the shell's command boundaries
/// (`a; b`, `$(b)`, sudo's `COMMAND=b`).
fn split_words(text: &str) -> Vec<Word<'_>> {
    let mut words = Vec::new();
    let separator = Word {
        core: ";",
        start: usize::MAX,
    };
    let mut offset = 0;
    for raw in text.split_ascii_whitespace() {
        let start = text[offset..].find(raw).map_or(offset, |p| offset + p);
        offset = start + raw.len();
        let mut core = raw;
        let mut core_start = start;
        if let Some(rest) = core
            .strip_prefix("COMMAND=")
            .or_else(|| core.strip_prefix("$("))
        {
            words.push(Word { ..separator });
            core_start += core.len() - rest.len();
            core = rest;
        }
        let trimmed = core.trim_start_matches(is_wrapping);
        core_start += core.len() - trimmed.len();
        let ends_command = trimmed.ends_with(';');
        let trimmed = trimmed.trim_end_matches(is_wrapping).trim_end_matches(';');
        let trimmed = trimmed.trim_end_matches(is_wrapping);
        if !trimmed.is_empty() {
            words.push(Word {
                core: trimmed,
                start: core_start,
            });
        }
        if ends_command {
            words.push(Word { ..separator });
        }
    }
    words
}

/// Applies the command rules to the words of `text`.
pub fn redact_words(text: &str, starts_with_command: bool) -> Cow<'_, str> {
    if !starts_with_command && !text.contains(['-', '=', '/', ':', '\\', '%']) {
        // No flag, assignment, path or time column: no command rule can apply.
        return Cow::Borrowed(text);
    }
    let words = split_words(text);
    let cores: Vec<&str> = words.iter().map(|w| w.core).collect();
    let plan = command::plan(&cores, starts_with_command);
    if plan.iter().all(Option::is_none) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (word, mask) in words.iter().zip(plan) {
        let Some(range) = mask else { continue };
        let (from, to) = (word.start + range.start, word.start + range.end);
        if from < copied || to > text.len() {
            continue;
        }
        out.push_str(&text[copied..from]);
        out.push_str(MASK);
        copied = to;
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

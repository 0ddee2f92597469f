//! Which names (flags, keys, variables, JSON fields) say that their value is a secret.
//!
//! A name is split into lower-case words (`--db-pass` → `db pass`, `clientSecret` → `client
//! secret`, `PGPASSWORD` → `pgpassword`) and judged by its last word: `--password X` holds a
//! secret, `--password-file X` and `password_min_length=8` do not, because their last word says
//! the value is about the secret, not the secret itself.

/// Words that name a secret when they end a name.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "passwort",
    "pass",
    "pwd",
    "pw",
    "secret",
    "token",
    "apikey",
    "credential",
    "credentials",
    "creds",
    "cookie",
    "bearer",
    "auth",
    "authorization",
    "signature",
    "sessionid",
    "sessid",
    "psk",
    "otp",
];

/// Words that make a trailing `key` a secret key (`api key`, `secret key`, `AccountKey`).
const KEY_PREFIXES: &[&str] = &[
    "api",
    "access",
    "secret",
    "private",
    "priv",
    "master",
    "encryption",
    "enc",
    "signing",
    "client",
    "shared",
    "account",
    "app",
    "auth",
    "service",
    "license",
    "storage",
    "subscription",
    "consumer",
    "hmac",
    "session",
    "recovery",
];

/// Single words ending in a secret word that are not secrets (`bypass`, `keepass`).
const NOT_SECRET_COMPOUNDS: &[&str] = &[
    "bypass",
    "compass",
    "encompass",
    "overpass",
    "underpass",
    "trespass",
    "surpass",
    "keepass",
    "multipass",
    "firstpass",
    "onepass",
    "twopass",
    "singlepass",
    "nopass",
    "checkpass",
    "nosecret",
    "notoken",
    "noauth",
    "oauth",
    "sigauth",
];

/// First words that make a flag a switch about a secret (`--no-password`, `--ask-pass`).
const SWITCH_PREFIXES: &[&str] = &[
    "no", "without", "disable", "skip", "ask", "prompt", "allow", "enable", "use", "require",
    "read", "show", "hide", "forget", "save", "store",
];

/// Names that end in a secret word but take a file (`openvpn --auth-user-pass FILE`).
const FILE_NAMES: &[&str] = &["auth user pass", "auth nocache"];

/// Where a name was found: long flags may name switches (`--no-password`), keys may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Flag,
    Key,
}

/// What a secret name says about its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretClass {
    /// A password, token or secret: always masked.
    Value,
    /// A key or credentials, which tools often take as a file: a path is kept.
    KeyOrFile,
}

/// Splits a name into lower-case words at punctuation and camel-case boundaries.
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && previous_lower && !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            current.push(c.to_ascii_lowercase());
        } else {
            previous_lower = false;
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Whether one word (possibly a compound such as `dbpassword`) is a secret word.
fn is_secret_word(word: &str) -> Option<SecretClass> {
    if NOT_SECRET_COMPOUNDS.contains(&word) {
        return None;
    }
    if SECRET_WORDS.contains(&word) {
        let class = if matches!(word, "credential" | "credentials" | "creds") {
            SecretClass::KeyOrFile
        } else {
            SecretClass::Value
        };
        return Some(class);
    }
    // Compounds: `dbpassword`, `clientsecret`, `authtoken`, `storepass`, `apikey`, `secretkey`.
    for suffix in [
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "pass",
        "pwd",
    ] {
        if word.len() > suffix.len() + 1 && word.ends_with(suffix) {
            return Some(SecretClass::Value);
        }
    }
    if let Some(prefix) = word.strip_suffix("key")
        && KEY_PREFIXES.contains(&prefix)
    {
        return Some(SecretClass::KeyOrFile);
    }
    None
}

/// Whether `name` (a flag without its dashes, a key, a variable) names a secret, and which kind.
pub fn secret_name(name: &str, kind: NameKind) -> Option<SecretClass> {
    let words = words(name);
    let last = words.last()?;
    if kind == NameKind::Flag
        && words.len() > 1
        && words
            .first()
            .is_some_and(|w| SWITCH_PREFIXES.contains(&w.as_str()))
    {
        return None;
    }
    let joined = words.join(" ");
    if FILE_NAMES.contains(&joined.as_str()) {
        return None;
    }
    // The shell's working directory, in sudo's log lines and environment dumps.
    if matches!(name, "PWD" | "OLDPWD") {
        return None;
    }
    if last == "key" {
        let before = words.len().checked_sub(2).and_then(|i| words.get(i))?;
        return KEY_PREFIXES
            .contains(&before.as_str())
            .then_some(SecretClass::KeyOrFile);
    }
    // `pkcs11-tool --pin 1234`; as a key (`gpio pin=17`) it is usually hardware.
    if last == "pin" {
        return (kind == NameKind::Flag).then_some(SecretClass::Value);
    }
    if last == "id" && words.len() > 1 && words.get(words.len() - 2).is_some_and(|w| w == "session")
    {
        return Some(SecretClass::Value);
    }
    is_secret_word(last)
}

/// Whether a value is obviously not a secret: empty, a variable reference, already masked, a
/// placeholder or a switch word.
pub fn is_placeholder(value: &str) -> bool {
    let v = value.trim_matches(|c| c == '"' || c == '\'');
    v.is_empty()
        || v == "-"
        || v.chars().all(|c| c == '*' || c == 'x' || c == 'X')
        || v.starts_with("***")
        || (v.starts_with('$')
            && v[1..].starts_with(|c: char| c == '{' || c == '_' || c.is_ascii_alphabetic()))
        || v.starts_with("%(")
        || ["env:", "file:", "fd:"].iter().any(|p| v.starts_with(p))
        || v == "stdin"
        || v.starts_with("{{")
        || matches!(
            v.to_ascii_lowercase().as_str(),
            "true"
                | "false"
                | "null"
                | "none"
                | "yes"
                | "no"
                | "on"
                | "off"
                | "[redacted]"
                | "<redacted>"
        )
}

/// Whether a value looks like a file path (kept for keys and credentials, which tools take as
/// files: `--client-key /etc/pki/client.key`, `credentials=/root/.smbcred`).
pub fn is_path(value: &str) -> bool {
    value.starts_with('/')
        || value.starts_with("./")
        || value.starts_with("../")
        || value.starts_with("~/")
        || [
            ".pem", ".key", ".json", ".txt", ".cred", ".crt", ".p12", ".pfx", ".asc", ".gpg",
        ]
        .iter()
        .any(|ext| value.ends_with(ext))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_word_decides() {
        for name in [
            "password",
            "--password",
            "db-pass",
            "secret-key",
            "clientSecret",
            "PGPASSWORD",
            "MYSQL_PWD",
            "aws_secret_access_key",
            "X-Auth-Token",
            "AccountKey",
            "storepass",
            "session_id",
            "wifi-sec.psk",
            "api_key",
            "apikey",
        ] {
            assert!(secret_name(name, NameKind::Flag).is_some(), "{name}");
        }
        for name in [
            "password-file",
            "passwordfile",
            "no-password",
            "token-file",
            "passphrase-fd",
            "password_min_length",
            "secret_name",
            "keyboard",
            "bypass",
            "key",
            "api_key_id",
            "auth-type",
            "PWD",
            "auth-user-pass",
            "password-stdin",
        ] {
            assert!(secret_name(name, NameKind::Flag).is_none(), "{name}");
        }
    }
}

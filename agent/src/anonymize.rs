//! Replaces user names, host names, IP and MAC addresses with stable pseudonyms (`--anonymize`).
//!
//! Like `sos report --clean`, the same real value gets the same pseudonym everywhere in the
//! document, so a technician can still see that the address in the route table is the one on
//! `eth0`. Pseudonyms come from documentation ranges (192.0.2.0/24, 2001:db8::/32) and locally
//! administered MACs, so they can never be mistaken for a real peer. Loopback and unspecified
//! addresses carry no identity and are kept.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use lifeline_shared::v1::snapshot::Snapshot;
use regex::Regex;
use serde_json::Value;

static IPV4: LazyLock<Regex> = LazyLock::new(|| pattern(r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}"));
static IPV6_CANDIDATE: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}"));
static MAC: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"\b[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}\b"));

fn pattern(p: &str) -> Regex {
    // Constant patterns, exercised by the tests below.
    #[allow(clippy::expect_used)]
    Regex::new(p).expect("anonymizer pattern compiles")
}

/// Names that identify people or machines, gathered from the snapshot itself.
#[derive(Debug, Default)]
pub struct Identities {
    pub users: Vec<String>,
    pub hosts: Vec<String>,
}

impl Identities {
    /// Finds the host name and the human users that appear in `snapshot`.
    pub fn from_snapshot(snapshot: &Snapshot) -> Self {
        let mut ids = Identities::default();
        if let Some(host) = snapshot.system_data().and_then(|s| s.hostname.clone()) {
            if let Some((short, _)) = host.split_once('.') {
                ids.hosts.push(short.to_owned());
            }
            ids.hosts.push(host);
        }
        if let Some(user) = snapshot.user_data() {
            ids.users.extend(user.current_user.iter().cloned());
            ids.users
                .extend(user.sessions.iter().map(|s| s.user.clone()));
            ids.hosts
                .extend(user.sessions.iter().filter_map(|s| s.host.clone()));
        }
        ids.users.retain(|u| !u.is_empty() && u != "root");
        ids.hosts.retain(|h| !h.is_empty() && h != "localhost");
        ids
    }
}

/// Consistent real → pseudonym mapping for one document.
#[derive(Debug, Default)]
pub struct Anonymizer {
    /// Whole-word replacements, longest first so `alice.corp` wins over `alice`.
    words: Vec<(String, String)>,
    ips: HashMap<IpAddr, String>,
    macs: HashMap<String, String>,
}

impl Anonymizer {
    pub fn new(ids: &Identities) -> Self {
        let mut words = Vec::new();
        let mut add = |kind: &str, values: &[String]| {
            let mut n = 0;
            for value in values {
                if !words.iter().any(|(real, _)| real == value) {
                    n += 1;
                    words.push((value.clone(), format!("{kind}{n}")));
                }
            }
        };
        add("user", &ids.users);
        add("host", &ids.hosts);
        words.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        Anonymizer {
            words,
            ..Anonymizer::default()
        }
    }

    /// Anonymizes a whole snapshot and marks it as such.
    pub fn snapshot(&mut self, snapshot: &Snapshot) -> Result<Snapshot, serde_json::Error> {
        let mut value = serde_json::to_value(snapshot)?;
        self.value(&mut value, false);
        let mut out: Snapshot = serde_json::from_value(value)?;
        out.anonymized = true;
        Ok(out)
    }

    fn value(&mut self, value: &mut Value, in_packages: bool) {
        match value {
            Value::String(s) => *s = self.text(s, in_packages),
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v, in_packages)),
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    // Package versions look like addresses (1.2.3.4) and identify nobody.
                    self.value(v, in_packages || key == "packages");
                }
            }
            _ => {}
        }
    }

    /// Anonymizes one string.
    pub fn text(&mut self, text: &str, names_only: bool) -> String {
        let mut out = text.to_owned();
        for (real, fake) in &self.words {
            out = replace_word(&out, real, fake);
        }
        if names_only {
            return out;
        }
        out = self.replace_macs(&out);
        out = self.replace_ipv6(&out);
        self.replace_ipv4(&out)
    }

    fn replace_macs(&mut self, text: &str) -> String {
        MAC.replace_all(text, |c: &regex::Captures<'_>| {
            let real = c[0].to_ascii_lowercase();
            if real == "00:00:00:00:00:00" {
                return real;
            }
            let n = self.macs.len() + 1;
            self.macs
                .entry(real)
                .or_insert_with(|| format!("02:00:00:00:{:02x}:{:02x}", n >> 8 & 0xff, n & 0xff))
                .clone()
        })
        .into_owned()
    }

    fn replace_ipv4(&mut self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for m in IPV4.find_iter(text) {
            // Part of a longer dotted number (a version such as 1.2.3.4.5) is not an address.
            let glued = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit() || c == '.');
            if glued(text[..m.start()].chars().next_back()) || glued(text[m.end()..].chars().next())
            {
                continue;
            }
            let Ok(ip) = m.as_str().parse::<Ipv4Addr>() else {
                continue;
            };
            out.push_str(&text[last..m.start()]);
            out.push_str(
                &self
                    .ip(IpAddr::V4(ip))
                    .unwrap_or_else(|| m.as_str().to_owned()),
            );
            last = m.end();
        }
        out.push_str(&text[last..]);
        out
    }

    fn replace_ipv6(&mut self, text: &str) -> String {
        IPV6_CANDIDATE
            .replace_all(text, |c: &regex::Captures<'_>| {
                let candidate = &c[0];
                // Times ("09:00:00") and MAC pseudonyms never parse as IPv6 with a `::` or 8 groups.
                match candidate.parse::<Ipv6Addr>() {
                    Ok(ip) if candidate.contains("::") || candidate.matches(':').count() == 7 => {
                        self.ip(IpAddr::V6(ip))
                            .unwrap_or_else(|| candidate.to_owned())
                    }
                    _ => candidate.to_owned(),
                }
            })
            .into_owned()
    }

    /// The pseudonym of an address, or `None` for one that identifies nothing.
    fn ip(&mut self, ip: IpAddr) -> Option<String> {
        let keep = match ip {
            IpAddr::V4(v4) => v4.is_loopback() || v4.is_unspecified() || v4.is_broadcast(),
            IpAddr::V6(v6) => v6.is_loopback() || v6.is_unspecified(),
        };
        if keep {
            return None;
        }
        if let Some(fake) = self.ips.get(&ip) {
            return Some(fake.clone());
        }
        let n = self.ips.len() + 1;
        let fake = match ip {
            IpAddr::V4(_) if n < 255 => format!("192.0.2.{n}"),
            IpAddr::V4(_) => format!("100.64.{}.{}", n >> 8 & 0xff, n & 0xff),
            IpAddr::V6(_) => format!("2001:db8::{n:x}"),
        };
        self.ips.insert(ip, fake.clone());
        Some(fake)
    }
}

/// Replaces whole-word occurrences of `word` (not inside a longer name).
fn replace_word(text: &str, word: &str, with: &str) -> String {
    if word.is_empty() || !text.contains(word) {
        return text.to_owned();
    }
    let is_name_char = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(word) {
        let before = rest[..pos].chars().next_back();
        let after = rest[pos + word.len()..].chars().next();
        out.push_str(&rest[..pos]);
        if before.is_some_and(is_name_char) || after.is_some_and(is_name_char) {
            out.push_str(word);
        } else {
            out.push_str(with);
        }
        rest = &rest[pos + word.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anon() -> Anonymizer {
        Anonymizer::new(&Identities {
            users: vec!["alice".into(), "bob".into()],
            hosts: vec!["ws-042.corp.example".into(), "ws-042".into()],
        })
    }

    #[test]
    fn same_value_gets_same_pseudonym_everywhere() {
        let mut a = anon();
        let first = a.text("inet 10.1.2.3/24 on ws-042 for alice", false);
        let second = a.text(
            "gateway 10.1.2.1, peer 10.1.2.3, user alice@ws-042.corp.example",
            false,
        );
        assert_eq!(first, "inet 192.0.2.1/24 on host2 for user1");
        assert_eq!(
            second,
            "gateway 192.0.2.2, peer 192.0.2.1, user user1@host1"
        );
    }

    #[test]
    fn planted_identities_do_not_survive() {
        let mut a = anon();
        let text = "Accepted publickey for bob from 203.0.113.77 port 22; \
                    link/ether 52:54:00:ab:cd:ef fe80::5054:ff:feab:cdef/64 \
                    2a02:1810:4d02:2c00:5054:ff:feab:cdef /home/alice/.cache";
        let out = a.text(text, false);
        for planted in [
            "bob",
            "203.0.113.77",
            "52:54:00:ab:cd:ef",
            "fe80::5054",
            "2a02:1810",
            "alice",
        ] {
            assert!(!out.contains(planted), "{planted} survived in {out}");
        }
    }

    #[test]
    fn loopback_times_versions_and_longer_names_are_kept() {
        let mut a = anon();
        assert_eq!(
            a.text("127.0.0.1 ::1 at 09:12:33 alicex bobcat", false),
            "127.0.0.1 ::1 at 09:12:33 alicex bobcat"
        );
        // Inside package lists, dotted versions stay as they are.
        assert_eq!(a.text("1.2.3.4", true), "1.2.3.4");
        assert_eq!(a.text("version 5.10.0.1.2", false), "version 5.10.0.1.2");
        assert_eq!(a.text("8.8.8.8 9.9.9.9", false), "192.0.2.1 192.0.2.2");
    }
}

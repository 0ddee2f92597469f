//! The machine's own say over remote actions: `policy.toml` in the agent directory.
//!
//! Whoever administers the workstation can switch remote actions off, allow a few by id, or cap
//! their risk, whatever the catalog and the collector say:
//!
//! ```toml
//! actions = ["restart-unit", "flush-dns"]   # or "all" (the default) or "none"
//! max_risk = "medium"                       # optional: low | medium | high
//! ```
//!
//! Without the file every signed action may run. Unknown keys and bad values are errors naming
//! the file, the line and the key; the service refuses every action while the file is broken
//! rather than guessing what it meant.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use lifeline_shared::v1::catalog::{Action, ActionId, Risk};
use serde::Deserialize;
use toml::{Spanned, Value};

use crate::config::AgentDir;

/// File name of the policy, in [`AgentDir::root`].
pub const POLICY_FILE: &str = "policy.toml";

/// A policy file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} line {line}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// Which actions may run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AllowedActions {
    /// Every signed action (`actions = "all"`, or no policy file).
    #[default]
    All,
    /// None at all (`actions = "none"`).
    None,
    /// Only these ids (`actions = ["restart-unit", ...]`).
    Only(BTreeSet<ActionId>),
}

/// The local agent policy. [`Policy::default`] is what applies without a file: everything
/// allowed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    actions: AllowedActions,
    max_risk: Option<Risk>,
}

/// Why the local policy refuses an action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyRefusal {
    #[error("remote actions are switched off on this machine (local policy: actions = \"none\")")]
    Off,
    #[error("action {action} is not allowed by this machine's local policy (allowed: {allowed})")]
    NotAllowed { action: ActionId, allowed: String },
    #[error(
        "action {action} is {risk} risk; this machine's local policy allows at most {max_risk} risk"
    )]
    TooRisky {
        action: ActionId,
        risk: Risk,
        max_risk: Risk,
    },
}

/// The file as written, before any check. Values stay raw so each error can name its key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    actions: Option<Spanned<Value>>,
    #[serde(default)]
    max_risk: Option<Spanned<Value>>,
}

impl Policy {
    /// `policy.toml` in the agent directory, or the default policy when there is none.
    pub fn load(dir: &AgentDir) -> Result<Policy, PolicyError> {
        Policy::load_file(&dir.root.join(POLICY_FILE))
    }

    /// The policy file at `path`, or the default policy when it does not exist.
    pub fn load_file(path: &Path) -> Result<Policy, PolicyError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Policy::from_toml(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Policy::default()),
            Err(source) => Err(PolicyError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses the text of a policy file; `path` is for error messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Policy, PolicyError> {
        let invalid = |offset: usize, message: String| PolicyError::Invalid {
            path: path.to_owned(),
            line: line_of(text, offset),
            message: message.trim().replace('\n', " "),
        };
        let file: PolicyFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |span| span.start);
            invalid(offset, e.message().to_owned())
        })?;

        let actions = match file.actions {
            None => AllowedActions::All,
            Some(value) => {
                let at = value.span().start;
                parse_actions(value.into_inner())
                    .map_err(|problem| invalid(at, format!("actions: {problem}")))?
            }
        };
        let max_risk = match file.max_risk {
            None => None,
            Some(value) => {
                let at = value.span().start;
                Some(
                    parse_risk(value.into_inner())
                        .map_err(|problem| invalid(at, format!("max_risk: {problem}")))?,
                )
            }
        };
        Ok(Policy { actions, max_risk })
    }

    pub fn actions(&self) -> &AllowedActions {
        &self.actions
    }

    /// The highest risk allowed; `None` when the policy sets no cap.
    pub fn max_risk(&self) -> Option<Risk> {
        self.max_risk
    }

    /// Whether this machine lets `action` run.
    pub fn check(&self, action: &Action) -> Result<(), PolicyRefusal> {
        match &self.actions {
            AllowedActions::All => {}
            AllowedActions::None => return Err(PolicyRefusal::Off),
            AllowedActions::Only(ids) if ids.is_empty() => return Err(PolicyRefusal::Off),
            AllowedActions::Only(ids) if !ids.contains(action.id()) => {
                return Err(PolicyRefusal::NotAllowed {
                    action: action.id().clone(),
                    allowed: ids
                        .iter()
                        .map(ActionId::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            AllowedActions::Only(_) => {}
        }
        match self.max_risk {
            Some(max_risk) if action.risk() > max_risk => Err(PolicyRefusal::TooRisky {
                action: action.id().clone(),
                risk: action.risk(),
                max_risk,
            }),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for AllowedActions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowedActions::All => f.write_str("all"),
            AllowedActions::None => f.write_str("none"),
            AllowedActions::Only(ids) => {
                let ids: Vec<&str> = ids.iter().map(ActionId::as_str).collect();
                write!(f, "only {}", ids.join(", "))
            }
        }
    }
}

const ACTIONS_EXPECTED: &str = "expected \"all\", \"none\" or a list of action ids";

fn parse_actions(value: Value) -> Result<AllowedActions, String> {
    match value {
        Value::String(word) if word == "all" => Ok(AllowedActions::All),
        Value::String(word) if word == "none" => Ok(AllowedActions::None),
        Value::String(word) => Err(format!("{word:?} is not valid ({ACTIONS_EXPECTED})")),
        Value::Array(items) => {
            let mut ids = BTreeSet::new();
            for item in items {
                let Value::String(text) = item else {
                    return Err(format!(
                        "the list holds {}, not an action id",
                        a_type(&item)
                    ));
                };
                ids.insert(text.parse::<ActionId>().map_err(|e| e.to_string())?);
            }
            Ok(AllowedActions::Only(ids))
        }
        other => Err(format!("found {} ({ACTIONS_EXPECTED})", a_type(&other))),
    }
}

fn parse_risk(value: Value) -> Result<Risk, String> {
    const EXPECTED: &str = "expected low, medium or high";
    match value {
        Value::String(word) => match word.as_str() {
            "low" => Ok(Risk::Low),
            "medium" => Ok(Risk::Medium),
            "high" => Ok(Risk::High),
            _ => Err(format!("{word:?} is not a risk level ({EXPECTED})")),
        },
        other => Err(format!("found {} ({EXPECTED})", a_type(&other))),
    }
}

/// "an integer", "a boolean"...
fn a_type(value: &Value) -> String {
    let name = value.type_str();
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name}")
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use lifeline_shared::v1::catalog::Catalog;

    use super::*;

    const CATALOG: &str = r#"
version = 1

[[action]]
id = "flush-dns"
title = "Flush DNS"
description = "d"
program = "/usr/bin/resolvectl"
args = ["flush-caches"]
timeout_secs = 10
output_limit_bytes = 100
risk = "low"
consent = false
os = ["linux"]

[[action]]
id = "restart-unit"
title = "Restart"
description = "d"
program = "/usr/bin/systemctl"
args = ["restart", "{unit}"]
timeout_secs = 10
output_limit_bytes = 100
risk = "medium"
consent = false
os = ["linux"]

[action.params.unit]
type = "unit"

[[action]]
id = "reboot"
title = "Reboot"
description = "d"
program = "/usr/bin/systemctl"
args = ["reboot"]
timeout_secs = 10
output_limit_bytes = 100
risk = "high"
consent = true
os = ["linux"]
"#;

    fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::from_toml(text, Path::new("/etc/lifeline/policy.toml"))
    }

    fn verdicts(policy: &Policy) -> Vec<(String, Result<(), String>)> {
        let catalog = Catalog::from_toml(CATALOG).unwrap();
        catalog
            .actions()
            .iter()
            .map(|a| {
                (
                    a.id().to_string(),
                    policy.check(a).map_err(|e| e.to_string()),
                )
            })
            .collect()
    }

    fn allowed(policy: &Policy) -> Vec<String> {
        verdicts(policy)
            .into_iter()
            .filter(|(_, v)| v.is_ok())
            .map(|(id, _)| id)
            .collect()
    }

    #[test]
    fn without_a_file_everything_is_allowed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = AgentDir::single(tmp.path().to_owned());
        let policy = Policy::load(&dir).unwrap();
        assert_eq!(policy, Policy::default());
        assert_eq!(allowed(&policy), ["flush-dns", "reboot", "restart-unit"]);
        // An empty file is the default too.
        assert_eq!(parse("").unwrap(), Policy::default());
        assert_eq!(parse("actions = \"all\"").unwrap(), Policy::default());
    }

    #[test]
    fn none_switches_every_action_off() {
        let policy = parse("actions = \"none\"\n").unwrap();
        assert_eq!(allowed(&policy), Vec::<String>::new());
        let (_, verdict) = &verdicts(&policy)[0];
        assert_eq!(
            verdict.as_ref().unwrap_err(),
            "remote actions are switched off on this machine (local policy: actions = \"none\")"
        );
        // An empty list allows nothing either.
        assert_eq!(
            allowed(&parse("actions = []").unwrap()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_list_allows_only_its_actions() {
        let policy = parse("actions = [\"restart-unit\", \"flush-dns\"]").unwrap();
        assert_eq!(allowed(&policy), ["flush-dns", "restart-unit"]);
        let refusal = verdicts(&policy)
            .into_iter()
            .find(|(id, _)| id == "reboot")
            .unwrap()
            .1
            .unwrap_err();
        assert_eq!(
            refusal,
            "action reboot is not allowed by this machine's local policy (allowed: flush-dns, \
             restart-unit)"
        );
    }

    #[test]
    fn max_risk_caps_the_allowed_actions() {
        let policy = parse("max_risk = \"medium\"").unwrap();
        assert_eq!(policy.max_risk(), Some(Risk::Medium));
        assert_eq!(allowed(&policy), ["flush-dns", "restart-unit"]);
        let policy = parse("actions = [\"restart-unit\", \"reboot\"]\nmax_risk = \"low\"").unwrap();
        assert_eq!(allowed(&policy), Vec::<String>::new());
        let refusal = verdicts(&policy)
            .into_iter()
            .find(|(id, _)| id == "restart-unit")
            .unwrap()
            .1
            .unwrap_err();
        assert_eq!(
            refusal,
            "action restart-unit is medium risk; this machine's local policy allows at most low risk"
        );
        assert_eq!(allowed(&parse("max_risk = \"high\"").unwrap()).len(), 3);
    }

    #[test]
    fn mistakes_get_one_line_errors_naming_the_file_line_and_key() {
        let cases: &[(&str, &str)] = &[
            (
                "actions = \"some\"",
                "/etc/lifeline/policy.toml line 1: actions: \"some\" is not valid (expected \
                 \"all\", \"none\" or a list of action ids)",
            ),
            (
                "# comment\nactions = [\"Restart Unit\"]",
                "/etc/lifeline/policy.toml line 2: actions: \"Restart Unit\" is not a valid action id",
            ),
            (
                "actions = [1]",
                "line 1: actions: the list holds an integer, not an action id",
            ),
            (
                "actions = true",
                "line 1: actions: found a boolean (expected \"all\"",
            ),
            (
                "actions = \"all\"\nmax_risk = \"extreme\"",
                "/etc/lifeline/policy.toml line 2: max_risk: \"extreme\" is not a risk level \
                 (expected low, medium or high)",
            ),
            ("max_risk = 3", "line 1: max_risk: found an integer"),
            (
                "actions = \"all\"\n\nmax-risk = \"low\"",
                "/etc/lifeline/policy.toml line 3: unknown field `max-risk`",
            ),
            ("actions = ", "/etc/lifeline/policy.toml line 1: "),
            (
                "actions = \"all\"\nactions = \"none\"",
                "/etc/lifeline/policy.toml line 2: ",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{text:?}: {err:?} lacks {expected:?}"
            );
            assert!(!err.contains('\n'), "not one line: {err:?}");
            assert!(!err.ends_with('.'), "{err}");
        }
    }

    #[test]
    fn an_unreadable_file_is_an_error_not_the_default() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(POLICY_FILE);
        std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
        let err = Policy::load_file(&path).unwrap_err().to_string();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        std::fs::write(&path, "actions = \"none\"").unwrap();
        let dir = AgentDir::single(tmp.path().to_owned());
        assert_eq!(Policy::load(&dir).unwrap().actions(), &AllowedActions::None);
    }
}

//! The remote-action catalog: the TOML format admins write, its checked form, and how it is signed.
//!
//! A compromised collector must not be able to make a workstation run anything an admin did not
//! sign. This module is the whole contract for that: what an action may say, how a technician's
//! parameter values are checked and turned into an argument vector, and how catalogs and single
//! actions are signed and verified. It does no I/O: keys, files and signatures go in and out as
//! bytes and text; reading and writing files is the binaries' job. `docs/catalog.md` explains the
//! threat model in plain words.
//!
//! # The catalog file (TOML)
//!
//! ```toml
//! version = 3                      # u64 >= 1; a published catalog only moves forward
//!
//! [[action]]
//! id = "vacuum-journal"            # [a-z0-9-]{1,64}
//! title = "Shrink the systemd journal"
//! description = "Deletes the oldest journal files until the journal fits the size."
//! program = "/usr/bin/journalctl"  # absolute path; executed directly, no shell, no PATH
//! args = ["--vacuum-size={size}M"] # {name} placeholders; {{ and }} are literal braces
//! timeout_secs = 120               # 1..=86400
//! output_limit_bytes = 65536       # 1..=16 MiB of captured output
//! risk = "medium"                  # low | medium | high (high needs an admin's approval)
//! consent = false                  # true: the end user must agree before it runs
//! os = ["linux"]                   # linux | windows | macos
//! recheck = ["storage"]            # optional: sections collected again before and after the run
//!
//! [action.params.size]
//! type = "integer"                 # enum (values) | integer (min, max) |
//! min = 50                         # string (pattern, max_len) | unit | service | pid
//! max = 4096
//! ```
//!
//! Unknown keys are errors, at every level, and every error names the action and parameter it is
//! about. Every declared parameter must be used by `args`, every placeholder must be declared.
//! Safety-relevant fields (`risk`, `consent`, `timeout_secs`, `output_limit_bytes`, `os`) have no
//! defaults. Sizes are bounded ([`ACTIONS_MAX`], [`PARAMS_MAX`], [`ARGS_MAX`] and friends).
//!
//! # Parameters and argument vectors
//!
//! [`Action::validate_params`] is the only way to a [`ValidatedParams`]; [`Action::argv`] expands
//! the template with those values by plain string replacement. The program is executed directly,
//! so a value is always exactly one argument or part of one, whatever characters it holds; the
//! parameter types additionally keep out control and invisible characters, leading `-`, units
//! that reboot the machine or end sessions, and anything the admin's pattern does not match as a
//! whole (see [`ParamType`]).
//!
//! # The lint
//!
//! [`lint`] reports parameters that reach, at a lower risk or without consent, what another
//! action of the same catalog does with a higher risk or with consent (a medium `systemctl
//! restart {unit}` whose pattern accepts `reboot.target` next to a high-risk `reboot`).
//! `catalog sign` prints its warnings.
//!
//! # Canonical encoding
//!
//! Signatures cover a canonical byte encoding of the checked catalog, not the TOML text, so
//! comments, key order and formatting do not matter, and the signed form can be carried as JSON.
//! Building blocks: `u64` and `i64` are 8 bytes big-endian; `bool` is one byte 0 or 1; a string is
//! its UTF-8 length as `u64` followed by the bytes; a list is its length as `u64` followed by the
//! items. An action is encoded as, in this order:
//!
//! ```text
//! id, title, description, program            strings
//! args                                       list of strings (the templates as written)
//! params                                     list, sorted by name, of:
//!                                              name, type name ("enum", "integer", ...), then
//!                                              enum: list of values (in catalog order)
//!                                              integer: min i64, max i64
//!                                              string: pattern string, max_len u64
//!                                              unit, service, pid: nothing
//! timeout_secs, output_limit_bytes           u64
//! risk                                       string ("low", "medium", "high")
//! consent                                    bool
//! os                                         list of strings, sorted
//! recheck                                    list of section names, sorted
//! ```
//!
//! The encoder destructures [`Action`] field by field, so adding a field without deciding how it
//! is signed does not compile.
//!
//! # Signatures (Ed25519)
//!
//! Each signed message starts with its own domain tag, so a signature made for one purpose can
//! never be presented as another:
//!
//! - **one action**: `"lifeline/catalog-action/v1\0"`, catalog version `u64`, the action. Every
//!   action carries this signature, so the agent can check the one action it is asked to run
//!   without the rest of the catalog, and the collector can store and relay actions one by one.
//!   Binding the version lets the agent refuse an action from an older catalog than one it has
//!   already seen.
//! - **the whole catalog**: `"lifeline/catalog/v1\0"`, version `u64`, number of actions `u64`, then
//!   each action's encoding as a length-prefixed string, sorted by id. The collector checks this
//!   on `catalog publish`, so nobody can drop, add or mix actions between versions there.
//! - **a key endorsement**: `"lifeline/catalog-key-endorsement/v1\0"`, the new 32-byte public key.
//!   Made with an already-trusted key; the only way an agent accepts a new key
//!   ([`accept_endorsed_key`]).
//!
//! A key is named by its [`KeyId`]: the SHA-256 of the 32 raw public-key bytes, in hex. File
//! formats (`lifeline-catalog.pub`, `lifeline-catalog.key`, `FILE.signed`, endorsements) are
//! described on [`PublicKey::to_pem`], [`SigningKey::to_pem`], [`SignedCatalog`] and
//! [`KeyEndorsement`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::v1::snapshot::SectionName;

mod lint;
mod params;
mod signing;

pub use lint::{Effect, LintWarning, lint};
pub use params::{
    ArgTemplate, ENUM_VALUE_MAX_LEN, ENUM_VALUES_MAX, PARAM_NAME_MAX_LEN, PATTERN_MAX_LEN, PID_MAX,
    ParamName, ParamType, ParamsError, SESSION_PROCESSES, UNIT_NAME_MAX_LEN, UNIT_SUFFIXES,
    UnitHazard, UnitName, VALUE_MAX_LEN, ValidatedParams, is_forbidden_char, is_session_process,
    split_param, unit_hazard,
};
pub use signing::{
    BadKeyId, KEY_ENDORSEMENT_FORMAT, KeyEndorsement, KeyError, KeyId, PublicKey, RollbackError,
    SIGNED_CATALOG_FORMAT, Signature, SignedAction, SignedCatalog, SignedFileError, SigningKey,
    VerifiedAction, VerifiedCatalog, VerifyError, VersionStep, accept_catalog_version,
    accept_endorsed_key,
};

use params::{forbidden_char, quoted};

/// Longest action id.
pub const ACTION_ID_MAX_LEN: usize = 64;
/// Most actions in one catalog.
pub const ACTIONS_MAX: usize = 256;
/// Most parameters of one action.
pub const PARAMS_MAX: usize = 16;
/// Most elements in one action's `args`.
pub const ARGS_MAX: usize = 64;
/// Longest element of `args`, in bytes.
pub const ARG_MAX_LEN: usize = 1024;
/// Longest title, in bytes.
pub const TITLE_MAX_LEN: usize = 120;
/// Longest description, in bytes.
pub const DESCRIPTION_MAX_LEN: usize = 4096;
/// Longest program path, in bytes.
pub const PROGRAM_MAX_LEN: usize = 512;
/// Longest timeout an action may declare.
pub const TIMEOUT_MAX_SECS: u64 = 24 * 60 * 60;
/// Most output an action may declare to capture.
pub const OUTPUT_LIMIT_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Largest catalog text (TOML or signed JSON) accepted, in bytes.
pub const CATALOG_TEXT_MAX_LEN: usize = 4 * 1024 * 1024;

/// What is wrong with a catalog, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("catalog: {0}")]
    Catalog(String),
    /// `action` is the action's id, or its position (`#3`) when the id itself is bad.
    #[error("action {action}: {problem}")]
    Action { action: String, problem: String },
    #[error("action {action}, parameter {param}: {problem}")]
    Param {
        action: String,
        param: String,
        problem: String,
    },
}

/// An action id: 1 to [`ACTION_ID_MAX_LEN`] lowercase letters, digits and `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActionId(String);

/// Text that is not an [`ActionId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value} is not a valid action id (1 to {ACTION_ID_MAX_LEN} lowercase letters, digits and -)"
)]
pub struct BadActionId {
    /// Quoted and escaped.
    pub value: String,
}

impl ActionId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ActionId {
    type Err = BadActionId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= ACTION_ID_MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(ActionId(s.to_owned()))
        } else {
            Err(BadActionId { value: quoted(s) })
        }
    }
}

impl fmt::Display for ActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ActionId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ActionId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// How much damage a mistaken run can do. Ordered: `Low < Medium < High`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Risk {
    /// Read-only or trivially undone.
    Low,
    /// Interrupts something or deletes regenerable data.
    Medium,
    /// Disruptive or destructive: needs an admin's approval before it runs.
    High,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        }
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operating system an action is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    Linux,
    Windows,
    Macos,
}

impl Os {
    pub fn as_str(self) -> &'static str {
        match self {
            Os::Linux => "linux",
            Os::Windows => "windows",
            Os::Macos => "macos",
        }
    }

    /// The system this program was built for, when it is one of ours.
    pub fn current() -> Option<Os> {
        if cfg!(target_os = "linux") {
            Some(Os::Linux)
        } else if cfg!(target_os = "windows") {
            Some(Os::Windows)
        } else if cfg!(target_os = "macos") {
            Some(Os::Macos)
        } else {
            None
        }
    }
}

impl fmt::Display for Os {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One action as written in TOML (and in the JSON of a signed catalog), before any check.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionSource {
    id: String,
    title: String,
    description: String,
    program: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    params: BTreeMap<String, ParamSource>,
    timeout_secs: u64,
    output_limit_bytes: u64,
    risk: Risk,
    consent: bool,
    os: Vec<Os>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    recheck: Vec<SectionName>,
}

/// The `type` of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ParamKind {
    Enum,
    Integer,
    String,
    Unit,
    Service,
    Pid,
}

/// One `[action.params.NAME]` table before any check. Flat rather than a tagged enum, so a
/// mistyped value is reported with its key.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamSource {
    #[serde(rename = "type")]
    kind: ParamKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_len: Option<usize>,
}

impl ParamSource {
    fn check(self) -> Result<ParamType, String> {
        let ParamSource {
            kind,
            values,
            min,
            max,
            pattern,
            max_len,
        } = self;
        let given = [
            ("values", values.is_some()),
            ("min", min.is_some()),
            ("max", max.is_some()),
            ("pattern", pattern.is_some()),
            ("max_len", max_len.is_some()),
        ];
        let (wanted, type_name): (&[&str], &str) = match kind {
            ParamKind::Enum => (&["values"], "an enum"),
            ParamKind::Integer => (&["min", "max"], "an integer"),
            ParamKind::String => (&["pattern", "max_len"], "a string"),
            ParamKind::Unit => (&[], "a unit"),
            ParamKind::Service => (&[], "a service"),
            ParamKind::Pid => (&[], "a pid"),
        };
        if let Some((key, _)) = given.iter().find(|(k, set)| *set && !wanted.contains(k)) {
            return Err(format!("{key} does not apply to {type_name} parameter"));
        }
        let missing = |key: &str| format!("{type_name} parameter needs {key}");
        match kind {
            ParamKind::Enum => ParamType::enumeration(values.ok_or_else(|| missing("values"))?),
            ParamKind::Integer => ParamType::integer(
                min.ok_or_else(|| missing("min"))?,
                max.ok_or_else(|| missing("max"))?,
            ),
            ParamKind::String => ParamType::string(
                pattern.ok_or_else(|| missing("pattern"))?,
                max_len.ok_or_else(|| missing("max_len"))?,
            ),
            ParamKind::Unit => Ok(ParamType::Unit),
            ParamKind::Service => Ok(ParamType::Service),
            ParamKind::Pid => Ok(ParamType::Pid),
        }
    }
}

impl From<&ParamType> for ParamSource {
    fn from(ty: &ParamType) -> Self {
        let mut source = ParamSource {
            kind: ParamKind::Unit,
            values: None,
            min: None,
            max: None,
            pattern: None,
            max_len: None,
        };
        match ty {
            ParamType::Enum { values } => {
                source.kind = ParamKind::Enum;
                source.values = Some(values.clone());
            }
            ParamType::Integer { min, max } => {
                source.kind = ParamKind::Integer;
                source.min = Some(*min);
                source.max = Some(*max);
            }
            ParamType::String {
                pattern, max_len, ..
            } => {
                source.kind = ParamKind::String;
                source.pattern = Some(pattern.clone());
                source.max_len = Some(*max_len);
            }
            ParamType::Unit => source.kind = ParamKind::Unit,
            ParamType::Service => source.kind = ParamKind::Service,
            ParamType::Pid => source.kind = ParamKind::Pid,
        }
        source
    }
}

/// A checked action: everything in it is within the rules of this module. Built only by parsing
/// a catalog ([`Catalog::from_toml`]) or deserializing (which runs the same checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    id: ActionId,
    title: String,
    description: String,
    program: String,
    args: Vec<ArgTemplate>,
    params: BTreeMap<ParamName, ParamType>,
    timeout_secs: u64,
    output_limit_bytes: u64,
    risk: Risk,
    consent: bool,
    os: Vec<Os>,
    recheck: Vec<SectionName>,
}

impl Action {
    pub fn id(&self) -> &ActionId {
        &self.id
    }

    pub fn title(&self) -> &str {
        &self.title
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// Absolute path of the program to execute.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The argument template, one element per argument.
    pub fn args(&self) -> &[ArgTemplate] {
        &self.args
    }

    pub fn params(&self) -> &BTreeMap<ParamName, ParamType> {
        &self.params
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn timeout_secs(&self) -> u64 {
        self.timeout_secs
    }

    /// Most bytes of output to capture (stdout and stderr together).
    pub fn output_limit_bytes(&self) -> u64 {
        self.output_limit_bytes
    }

    pub fn risk(&self) -> Risk {
        self.risk
    }

    /// Whether the end user must agree before the action runs.
    pub fn consent(&self) -> bool {
        self.consent
    }

    /// Systems the action is written for, sorted.
    pub fn os(&self) -> &[Os] {
        &self.os
    }

    /// Snapshot sections the agent collects again right before and after the run, so the ticket
    /// shows the findings before and after (sorted, without duplicates; may be empty).
    pub fn recheck(&self) -> &[SectionName] {
        &self.recheck
    }

    pub fn runs_on(&self, os: Os) -> bool {
        self.os.contains(&os)
    }

    /// Checks user-supplied `name=value` pairs against this action's parameter types: every
    /// declared parameter exactly once, nothing else, every value within its type.
    pub fn validate_params<K, V>(
        &self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<ValidatedParams, ParamsError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        ValidatedParams::validate(&self.id, &self.params, pairs)
    }

    /// The argument vector to execute, program first. Values replace their placeholders as plain
    /// text: the vector is executed directly, never by a shell.
    ///
    /// Fails only when `params` were validated for another action.
    pub fn argv(&self, params: &ValidatedParams) -> Result<Vec<String>, ParamsError> {
        let wrong_action = || ParamsError::WrongAction {
            validated_for: params.action().clone(),
            action: self.id.clone(),
        };
        if params.action() != &self.id {
            return Err(wrong_action());
        }
        let mut argv = Vec::with_capacity(self.args.len() + 1);
        argv.push(self.program.clone());
        for arg in &self.args {
            argv.push(arg.expand(params.values()).ok_or_else(wrong_action)?);
        }
        Ok(argv)
    }

    /// Parses and checks one action from its JSON form (a TOML `[[action]]` table is converted to
    /// the same form). `position` is the 1-based place in a catalog file, for error messages.
    fn from_value(value: &Value, position: Option<usize>) -> Result<Action, CatalogError> {
        let claimed_id = value.get("id").and_then(Value::as_str);
        let label = match (claimed_id.map(str::parse::<ActionId>), position) {
            (Some(Ok(id)), _) => id.0,
            (Some(Err(_)), Some(n)) => format!("#{n} ({})", quoted(claimed_id.unwrap_or(""))),
            (None, Some(n)) => format!("#{n}"),
            (Some(Err(_)), None) => quoted(claimed_id.unwrap_or("")),
            (None, None) => "(without id)".to_owned(),
        };
        let source: ActionSource = serde_path_to_error::deserialize(value).map_err(|e| {
            let segments: Vec<String> = e.path().iter().map(ToString::to_string).collect();
            let path = e.path().to_string();
            let message = e.inner().to_string();
            match segments.as_slice() {
                [params, param, ..] if params == "params" => {
                    let rest = path
                        .strip_prefix(&format!("params.{param}"))
                        .unwrap_or_default()
                        .trim_start_matches('.');
                    CatalogError::Param {
                        action: label.clone(),
                        param: param.clone(),
                        problem: if rest.is_empty() {
                            message
                        } else {
                            format!("{rest}: {message}")
                        },
                    }
                }
                [] => CatalogError::Action {
                    action: label.clone(),
                    problem: message,
                },
                _ => CatalogError::Action {
                    action: label.clone(),
                    problem: format!("{path}: {message}"),
                },
            }
        })?;
        Action::from_source(source, &label)
    }

    fn from_source(source: ActionSource, label: &str) -> Result<Action, CatalogError> {
        let action_err = |problem: String| CatalogError::Action {
            action: label.to_owned(),
            problem,
        };
        let ActionSource {
            id,
            title,
            description,
            program,
            args,
            params,
            timeout_secs,
            output_limit_bytes,
            risk,
            consent,
            os,
            recheck,
        } = source;

        let id: ActionId = id
            .parse()
            .map_err(|e: BadActionId| action_err(format!("id: {e}")))?;
        check_text("title", &title, TITLE_MAX_LEN, false).map_err(action_err)?;
        check_text("description", &description, DESCRIPTION_MAX_LEN, true).map_err(action_err)?;
        check_program(&program).map_err(|e| action_err(format!("program: {e}")))?;

        if args.len() > ARGS_MAX {
            return Err(action_err(format!(
                "args: {} elements; at most {ARGS_MAX} are allowed",
                args.len()
            )));
        }
        let args = args
            .iter()
            .map(|arg| {
                if arg.len() > ARG_MAX_LEN {
                    return Err(format!(
                        "args: {} is too long (at most {ARG_MAX_LEN} bytes)",
                        quoted(arg)
                    ));
                }
                arg.parse::<ArgTemplate>().map_err(|e| format!("args: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(action_err)?;

        check_find_exec(&program, &args).map_err(action_err)?;

        if params.len() > PARAMS_MAX {
            return Err(action_err(format!(
                "params: {} parameters; at most {PARAMS_MAX} are allowed",
                params.len()
            )));
        }
        let mut checked_params = BTreeMap::new();
        for (name, spec) in params {
            let parsed_name = name.parse::<ParamName>();
            let param_err = |problem: String| CatalogError::Param {
                action: label.to_owned(),
                param: parsed_name
                    .as_ref()
                    .map_or_else(|_| quoted(&name), ToString::to_string),
                problem,
            };
            let parsed_name = parsed_name.clone().map_err(param_err)?;
            let ty = spec.check().map_err(param_err)?;
            checked_params.insert(parsed_name, ty);
        }
        for arg in &args {
            if let Some(undeclared) = arg.params().find(|p| !checked_params.contains_key(*p)) {
                return Err(action_err(format!(
                    "args: {} uses {{{undeclared}}}, but there is no [action.params.{undeclared}]",
                    quoted(arg.as_str())
                )));
            }
        }
        if let Some(unused) = checked_params
            .keys()
            .find(|name| !args.iter().any(|arg| arg.params().any(|p| p == *name)))
        {
            return Err(CatalogError::Param {
                action: label.to_owned(),
                param: unused.to_string(),
                problem: format!("declared but not used in args (add {{{unused}}} to args)"),
            });
        }

        if !(1..=TIMEOUT_MAX_SECS).contains(&timeout_secs) {
            return Err(action_err(format!(
                "timeout_secs must be 1 to {TIMEOUT_MAX_SECS}, not {timeout_secs}"
            )));
        }
        if !(1..=OUTPUT_LIMIT_MAX_BYTES).contains(&output_limit_bytes) {
            return Err(action_err(format!(
                "output_limit_bytes must be 1 to {OUTPUT_LIMIT_MAX_BYTES}, not {output_limit_bytes}"
            )));
        }
        let mut os = os;
        os.sort();
        os.dedup();
        if os.is_empty() {
            return Err(action_err(
                "os must list at least one system (linux, windows, macos)".to_owned(),
            ));
        }

        let mut recheck = recheck;
        recheck.sort();
        recheck.dedup();
        if recheck.contains(&SectionName::Findings) {
            return Err(action_err(
                "recheck: findings are not a section to collect; name the sections they come \
                 from (storage, services, ...)"
                    .to_owned(),
            ));
        }

        Ok(Action {
            id,
            title,
            description,
            program,
            args,
            params: checked_params,
            timeout_secs,
            output_limit_bytes,
            risk,
            consent,
            os,
            recheck,
        })
    }

    fn to_source(&self) -> ActionSource {
        ActionSource {
            id: self.id.0.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            program: self.program.clone(),
            args: self.args.iter().map(|a| a.as_str().to_owned()).collect(),
            params: self
                .params
                .iter()
                .map(|(name, ty)| (name.as_str().to_owned(), ParamSource::from(ty)))
                .collect(),
            timeout_secs: self.timeout_secs,
            output_limit_bytes: self.output_limit_bytes,
            risk: self.risk,
            consent: self.consent,
            os: self.os.clone(),
            recheck: self.recheck.clone(),
        }
    }
}

/// Serializes in the same shape as a TOML `[[action]]` table.
impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_source().serialize(s)
    }
}

/// Runs every check that [`Catalog::from_toml`] runs on an action.
impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Action::from_value(&value, None).map_err(serde::de::Error::custom)
    }
}

fn check_text(field: &str, text: &str, max: usize, multi_line: bool) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err(format!("{field} is empty"));
    }
    if text.len() > max {
        return Err(format!(
            "{field} is {} bytes long; at most {max} are allowed",
            text.len()
        ));
    }
    let allowed = |c: char| multi_line && (c == '\n' || c == '\t');
    if let Some((at, c)) = text
        .char_indices()
        .find(|&(_, c)| params::is_forbidden_char(c) && !allowed(c))
    {
        return Err(format!(
            "{field} contains the control or invisible character {} at byte {at}",
            params::code_point(c)
        ));
    }
    Ok(())
}

/// A program is a plain absolute path: no shell and no PATH search decide what runs.
fn check_program(program: &str) -> Result<(), String> {
    if program.len() > PROGRAM_MAX_LEN {
        return Err(format!(
            "{} is longer than {PROGRAM_MAX_LEN} bytes",
            quoted(program)
        ));
    }
    if let Some(problem) = forbidden_char(program) {
        return Err(format!("{} {problem}", quoted(program)));
    }
    let bytes = program.as_bytes();
    let rest = if program.starts_with('/') {
        program.get(1..)
    } else if bytes.len() > 3 && bytes[0].is_ascii_alphabetic() && &bytes[1..3] == b":\\" {
        program.get(3..)
    } else {
        None
    };
    let Some(rest) = rest else {
        return Err(format!(
            "{} is not an absolute path (programs run directly, without a shell or PATH search)",
            quoted(program)
        ));
    };
    if rest
        .split(['/', '\\'])
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(format!(
            "{} must be a plain absolute path to a file (no empty, . or .. parts)",
            quoted(program)
        ));
    }
    let name = rest.rsplit(['/', '\\']).next().unwrap_or(rest);
    if let Some(runner) = command_runner(name) {
        return Err(format!(
            "{} is a shell, interpreter or command runner ({runner}); an action runs one fixed \
             program, never a command line or code built from parameters",
            quoted(program)
        ));
    }
    Ok(())
}

/// `find` is allowed as a program, but not its `-exec` family: that runs a command line of its
/// own, which belongs in an action of its own.
fn check_find_exec(program: &str, args: &[ArgTemplate]) -> Result<(), String> {
    let base = program.rsplit(['/', '\\']).next().unwrap_or(program);
    let base = base.to_ascii_lowercase();
    if base != "find" && base != "find.exe" {
        return Ok(());
    }
    match args
        .iter()
        .find(|arg| matches!(arg.as_str(), "-exec" | "-execdir" | "-ok" | "-okdir"))
    {
        Some(arg) => Err(format!(
            "args: find {} runs a command line of its own; make that command its own action",
            arg.as_str()
        )),
        None => Ok(()),
    }
}

/// The entry of [`COMMAND_RUNNERS`] a program's base name is, if any. Case-insensitive, without a
/// Windows extension (`.exe`, `.com`), and with or without a version suffix (`python3.11`,
/// `lua5.4`, `tclsh8.6`, `gawk-5.1` all count as their base name). Windows batch files
/// (`.bat`, `.cmd`) and script files for a host (`.ps1`, `.vbs`, `.js`, ...) count as the
/// interpreter that runs them.
fn command_runner(base_name: &str) -> Option<&'static str> {
    let lower = base_name.to_ascii_lowercase();
    if let Some((_, ext)) = lower.rsplit_once('.') {
        let host = match ext {
            "bat" | "cmd" => Some("cmd.exe"),
            "ps1" | "psm1" => Some("powershell"),
            "vbs" | "vbe" | "js" | "jse" | "wsf" | "wsh" => Some("wscript"),
            "hta" => Some("mshta"),
            _ => None,
        };
        if host.is_some() {
            return host;
        }
    }
    let stem = lower
        .strip_suffix(".exe")
        .or_else(|| lower.strip_suffix(".com"))
        .unwrap_or(&lower);
    let unversioned =
        stem.trim_end_matches(|c: char| c.is_ascii_digit() || matches!(c, '.' | '-' | '_'));
    COMMAND_RUNNERS
        .iter()
        .find(|runner| **runner == stem || **runner == unversioned)
        .copied()
}

/// Programs refused as an action's `program`, because whatever they are given (in a fixed
/// argument or a parameter) becomes another program's command line or code, and the catalog's
/// promise — one reviewed program with checked arguments — would no longer hold. Also refused:
/// a program whose base name matches one of these with a version suffix (see [`command_runner`]).
///
/// Not here, by judgement: `find` (its `-exec`/`-ok` take arguments that start with `-`, which no
/// parameter value can, so only an admin's own `-exec` in `args` runs a command, and that is
/// checked separately); `systemctl`, `loginctl` and `kill` (they act on units, sessions and
/// processes, which the parameter types and `catalog sign`'s lint cover); `ssh` (it runs
/// commands elsewhere, not here). A symlink with an innocent name that points at one of these
/// is not caught: review the paths you sign.
const COMMAND_RUNNERS: &[&str] = &[
    // Shells: their arguments are command lines.
    "sh",
    "ash",
    "bash",
    "rbash",
    "dash",
    "zsh",
    "ksh",
    "mksh",
    "pdksh",
    "oksh",
    "yash",
    "hush",
    "msh",
    "fish",
    "csh",
    "tcsh",
    "elvish",
    "nu",
    "xonsh",
    "cmd",
    "powershell",
    "pwsh",
    // Multi-call binaries: the first argument picks the applet, a shell among them.
    "busybox",
    "toybox",
    // Run the program named in their arguments, with other privileges, limits or surroundings.
    "env",
    "sudo",
    "sudoedit",
    "su",
    "doas",
    "pkexec",
    "run0",
    "runuser",
    "setpriv",
    "capsh",
    "sg",
    "newgrp",
    "systemd-run",
    "systemd-nspawn",
    "setsid",
    "nohup",
    "timeout",
    "time",
    "nice",
    "renice",
    "ionice",
    "chrt",
    "taskset",
    "numactl",
    "prlimit",
    "cgexec",
    "stdbuf",
    "unbuffer",
    "chroot",
    "unshare",
    "nsenter",
    "firejail",
    "bwrap",
    "flock",
    "script",
    "watch",
    "xargs",
    "parallel",
    "strace",
    "ltrace",
    "gdb",
    "at",
    "batch",
    // Interpreters: an argument is code (`-c`, `-e`) or names the script to run.
    "python",
    "pypy",
    "perl",
    "ruby",
    "irb",
    "node",
    "nodejs",
    "deno",
    "bun",
    "php",
    "lua",
    "luajit",
    "awk",
    "gawk",
    "mawk",
    "nawk",
    "tclsh",
    "wish",
    "expect",
    "guile",
    "racket",
    "julia",
    "rscript",
    "r",
    "osascript",
    // Editors and stream editors that run shell commands from their script (`sed`'s `e`,
    // `ed`'s `!`, `vim +cmd`).
    "sed",
    "ed",
    "ex",
    "vi",
    "vim",
    "nvim",
    "emacs",
    // Windows: script hosts and tools that start a command line given to them.
    "wscript",
    "cscript",
    "mshta",
    "rundll32",
    "regsvr32",
    "runas",
    "schtasks",
    "wmic",
    "forfiles",
    "psexec",
    "wsl",
];

/// The top level of a catalog file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    version: u64,
    #[serde(default)]
    action: Vec<Value>,
}

/// A checked catalog: a version and actions with unique ids, sorted by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    version: u64,
    actions: Vec<Action>,
}

impl Catalog {
    /// Parses and checks the TOML an admin wrote.
    pub fn from_toml(text: &str) -> Result<Catalog, CatalogError> {
        if text.len() > CATALOG_TEXT_MAX_LEN {
            return Err(CatalogError::Catalog(format!(
                "{} bytes; at most {CATALOG_TEXT_MAX_LEN} are allowed",
                text.len()
            )));
        }
        let syntax = |e: toml::de::Error, path: String| {
            let (line, column) = e
                .span()
                .map(|span| line_column(text, span.start))
                .unwrap_or((1, 1));
            let message = e.message().trim().replace('\n', " ");
            CatalogError::Syntax {
                line,
                column,
                message: if path == "." {
                    message
                } else {
                    format!("{path}: {message}")
                },
            }
        };
        let document = toml::de::Deserializer::parse(text).map_err(|e| syntax(e, ".".into()))?;
        let file: CatalogFile = serde_path_to_error::deserialize(document).map_err(|e| {
            let path = e.path().to_string();
            syntax(e.into_inner(), path)
        })?;
        if file.action.len() > ACTIONS_MAX {
            return Err(CatalogError::Catalog(format!(
                "{} actions; at most {ACTIONS_MAX} are allowed",
                file.action.len()
            )));
        }
        let actions = file
            .action
            .iter()
            .enumerate()
            .map(|(i, value)| Action::from_value(value, Some(i + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        Catalog::new(file.version, actions)
    }

    /// Checks the catalog-wide rules and sorts the actions by id.
    fn new(version: u64, mut actions: Vec<Action>) -> Result<Catalog, CatalogError> {
        if version == 0 {
            return Err(CatalogError::Catalog(
                "version must be at least 1".to_owned(),
            ));
        }
        if actions.len() > ACTIONS_MAX {
            return Err(CatalogError::Catalog(format!(
                "{} actions; at most {ACTIONS_MAX} are allowed",
                actions.len()
            )));
        }
        actions.sort_by(|a, b| a.id.cmp(&b.id));
        if let Some(pair) = actions.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(CatalogError::Action {
                action: pair[0].id.to_string(),
                problem: "the id is used by more than one action".to_owned(),
            });
        }
        Ok(Catalog { version, actions })
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// The actions, sorted by id.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    pub fn action(&self, id: &str) -> Option<&Action> {
        self.actions
            .binary_search_by(|a| a.id.as_str().cmp(id))
            .ok()
            .and_then(|i| self.actions.get(i))
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit_once('\n')
        .map_or(before, |(_, last)| last)
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use proptest::prelude::*;
    use regex::Regex;

    use super::*;

    pub(super) const EXAMPLE: &str = include_str!("../../../docs/catalog.example.toml");

    pub(super) const SMALL: &str = r#"
version = 2

[[action]]
id = "unit-logs"
title = "Show a unit's logs"
description = "Read-only."
program = "/usr/bin/journalctl"
args = ["-u", "{unit}", "-n", "{lines}", "--no-pager"]
timeout_secs = 30
output_limit_bytes = 1048576
risk = "low"
consent = false
os = ["linux"]

[action.params.unit]
type = "unit"

[action.params.lines]
type = "integer"
min = 1
max = 5000

[[action]]
id = "greet"
title = "Greet"
description = """Two lines
of description."""
program = "/usr/bin/echo"
args = ["--mode={mode}", "{name}", "{{literal}}"]
timeout_secs = 5
output_limit_bytes = 100
risk = "medium"
consent = true
os = ["macos", "linux", "linux"]

[action.params.mode]
type = "enum"
values = ["loud", "quiet"]

[action.params.name]
type = "string"
pattern = "[a-z][a-z0-9_.]*"
max_len = 16

[[action]]
id = "kill-process"
title = "Stop a process"
description = "SIGTERM."
program = "/bin/kill"
args = ["-TERM", "{pid}"]
timeout_secs = 10
output_limit_bytes = 4096
risk = "medium"
consent = false
os = ["linux"]

[action.params.pid]
type = "pid"
"#;

    pub(super) fn small() -> Catalog {
        Catalog::from_toml(SMALL).unwrap()
    }

    fn err(text: &str) -> String {
        Catalog::from_toml(text).unwrap_err().to_string()
    }

    /// `SMALL` with `from` replaced by `to` (which must occur).
    fn edited(from: &str, to: &str) -> String {
        assert!(SMALL.contains(from), "{from}");
        SMALL.replacen(from, to, 1)
    }

    #[test]
    fn a_valid_catalog_parses_with_actions_sorted_by_id() {
        let catalog = small();
        assert_eq!(catalog.version(), 2);
        let ids: Vec<_> = catalog.actions().iter().map(|a| a.id().as_str()).collect();
        assert_eq!(ids, ["greet", "kill-process", "unit-logs"]);
        let logs = catalog.action("unit-logs").unwrap();
        assert_eq!(logs.program(), "/usr/bin/journalctl");
        assert_eq!(logs.timeout(), Duration::from_secs(30));
        assert_eq!(logs.risk(), Risk::Low);
        assert_eq!(
            logs.params()[&"lines".parse::<ParamName>().unwrap()],
            ParamType::Integer { min: 1, max: 5000 }
        );
        let greet = catalog.action("greet").unwrap();
        assert_eq!(greet.os(), [Os::Linux, Os::Macos]);
        assert!(greet.consent());
        assert_eq!(greet.description(), "Two lines\nof description.");
        assert!(catalog.action("nope").is_none());
    }

    #[test]
    fn recheck_names_sections_and_is_part_of_the_signed_action() {
        let catalog = Catalog::from_toml(&edited(
            "os = [\"macos\", \"linux\", \"linux\"]",
            "os = [\"linux\"]\nrecheck = [\"storage\", \"services\", \"storage\"]",
        ))
        .unwrap();
        let greet = catalog.action("greet").unwrap();
        assert_eq!(
            greet.recheck(),
            [SectionName::Storage, SectionName::Services]
        );
        assert!(small().action("greet").unwrap().recheck().is_empty());
        assert_ne!(
            greet.canonical_bytes(2),
            small().action("greet").unwrap().canonical_bytes(2)
        );
        let json = serde_json::to_value(greet).unwrap();
        assert_eq!(json["recheck"], serde_json::json!(["storage", "services"]));
        let back: Action = serde_json::from_value(json).unwrap();
        assert_eq!(&back, greet);

        let e = err(&edited(
            "os = [\"linux\"]\n\n[action.params.pid]",
            "os = [\"linux\"]\nrecheck = [\"disks\"]\n\n[action.params.pid]",
        ));
        assert!(e.contains("kill-process") && e.contains("recheck"), "{e}");
        let e = err(&edited(
            "os = [\"linux\"]\n\n[action.params.pid]",
            "os = [\"linux\"]\nrecheck = [\"findings\"]\n\n[action.params.pid]",
        ));
        assert!(e.contains("findings are not a section"), "{e}");
    }

    #[test]
    fn argv_puts_the_program_first_and_substitutes_values() {
        let catalog = small();
        let logs = catalog.action("unit-logs").unwrap();
        let params = logs
            .validate_params([("unit", "nginx.service"), ("lines", "200")])
            .unwrap();
        assert_eq!(
            logs.argv(&params).unwrap(),
            [
                "/usr/bin/journalctl",
                "-u",
                "nginx.service",
                "-n",
                "200",
                "--no-pager"
            ]
        );
        let greet = catalog.action("greet").unwrap();
        let params = greet
            .validate_params([("mode", "loud"), ("name", "bob")])
            .unwrap();
        assert_eq!(
            greet.argv(&params).unwrap(),
            ["/usr/bin/echo", "--mode=loud", "bob", "{literal}"]
        );
        // Values validated for one action cannot be used for another.
        let err = logs.argv(&params).unwrap_err().to_string();
        assert!(err.contains("validated for action greet"), "{err}");
    }

    #[test]
    fn each_catalog_error_names_the_field_and_the_action() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "risk = \"low\"",
                "risk = \"low\"\ncolour = \"red\"",
                &["unit-logs", "unknown field `colour`"],
            ),
            (
                "type = \"unit\"",
                "type = \"unit\"\nmax_len = 3",
                &[
                    "unit-logs",
                    "parameter unit",
                    "max_len does not apply to a unit parameter",
                ],
            ),
            (
                "type = \"unit\"",
                "type = \"unit\"\nsize = 3",
                &["unit-logs", "parameter unit", "unknown field `size`"],
            ),
            (
                "min = 1\n",
                "",
                &[
                    "unit-logs",
                    "parameter lines",
                    "an integer parameter needs min",
                ],
            ),
            (
                "min = 1\n",
                "min = 1\nstep = 2\n",
                &["unit-logs", "parameter lines", "unknown field `step`"],
            ),
            (
                "type = \"unit\"",
                "type = \"path\"",
                &["unit-logs", "parameter unit", "unknown variant `path`"],
            ),
            (
                "max = 5000",
                "max = \"many\"",
                &["unit-logs", "parameter lines", "max", "invalid type"],
            ),
            (
                "timeout_secs = 30",
                "timeout_secs = 0",
                &["unit-logs", "timeout_secs must be 1"],
            ),
            (
                "timeout_secs = 30",
                "timeout_secs = -3",
                &["unit-logs", "timeout_secs"],
            ),
            (
                "timeout_secs = 30\n",
                "",
                &["unit-logs", "missing field `timeout_secs`"],
            ),
            (
                "consent = false\nos = [\"linux\"]\n\n[action.params.unit]",
                "os = [\"linux\"]\n\n[action.params.unit]",
                &["unit-logs", "missing field `consent`"],
            ),
            (
                "output_limit_bytes = 1048576",
                "output_limit_bytes = 999999999",
                &["unit-logs", "output_limit_bytes must be"],
            ),
            (
                "risk = \"low\"",
                "risk = \"extreme\"",
                &["unit-logs", "risk", "unknown variant `extreme`"],
            ),
            (
                "os = [\"linux\"]\n\n[action.params.unit]",
                "os = []\n\n[action.params.unit]",
                &["unit-logs", "os must list"],
            ),
            (
                "os = [\"linux\"]\n\n[action.params.unit]",
                "os = [\"beos\"]\n\n[action.params.unit]",
                &["unit-logs", "os", "unknown variant `beos`"],
            ),
            (
                "id = \"unit-logs\"",
                "id = \"Unit Logs\"",
                &["action #1", "Unit Logs", "not a valid action id"],
            ),
            (
                "id = \"unit-logs\"\n",
                "",
                &["action #1", "missing field `id`"],
            ),
            (
                "id = \"greet\"",
                "id = \"unit-logs\"",
                &["unit-logs", "more than one action"],
            ),
            (
                "program = \"/usr/bin/journalctl\"",
                "program = \"journalctl\"",
                &["unit-logs", "program", "not an absolute path"],
            ),
            (
                "program = \"/usr/bin/journalctl\"",
                "program = \"/usr/bin/../bin/sh\"",
                &["unit-logs", "program", ".."],
            ),
            (
                "program = \"/usr/bin/journalctl\"",
                "program = \"/usr/bin/\"",
                &["unit-logs", "program"],
            ),
            (
                "program = \"/usr/bin/journalctl\"",
                "program = \"/bin/bash\"",
                &["unit-logs", "program", "command runner"],
            ),
            (
                "program = \"/usr/bin/journalctl\"",
                "program = \"/usr/bin/env\"",
                &["unit-logs", "program", "command runner"],
            ),
            (
                "program = \"/usr/bin/journalctl\"",
                "program = 'C:\\Windows\\System32\\CMD.EXE'",
                &["unit-logs", "program", "command runner"],
            ),
            (
                "title = \"Show a unit's logs\"",
                "title = \"\\u001b[31mred\"",
                &["unit-logs", "title", "control"],
            ),
            (
                "title = \"Show a unit's logs\"",
                "title = \"\"",
                &["unit-logs", "title is empty"],
            ),
            (
                "args = [\"-u\", \"{unit}\"",
                "args = [\"-u\", \"{unit\"",
                &["unit-logs", "args", "unclosed"],
            ),
            (
                "args = [\"-u\", \"{unit}\"",
                "args = [\"-u\", \"{unit}{user}\"",
                &["unit-logs", "args", "{user}"],
            ),
            (
                "\"--no-pager\"]",
                "\"--no-pager\", \"{{}}}\"]",
                &["unit-logs", "args", "unmatched"],
            ),
            (
                "args = [\"-u\", \"{unit}\"",
                "args = [\"-u\", \"x\"",
                &["unit-logs", "parameter unit", "not used in args"],
            ),
            (
                "[action.params.lines]",
                "[action.params.Lines]",
                &[
                    "unit-logs",
                    "parameter \"Lines\"",
                    "not a valid parameter name",
                ],
            ),
            (
                "min = 1\n",
                "min = 6000\n",
                &["unit-logs", "parameter lines", "greater than max"],
            ),
            (
                "values = [\"loud\", \"quiet\"]",
                "values = []",
                &["greet", "parameter mode", "at least one value"],
            ),
            (
                "pattern = \"[a-z][a-z0-9_.]*\"",
                "pattern = \"[a-z\"",
                &["greet", "parameter name", "not a valid regex"],
            ),
            (
                "pattern = \"[a-z][a-z0-9_.]*\"",
                "pattern = \"[a-z]+)|(.*\"",
                &["greet", "parameter name", "not a valid regex"],
            ),
            (
                "program = \"/usr/bin/journalctl\"\nargs = [\"-u\", \"{unit}\", \"-n\", \"{lines}\", \"--no-pager\"]",
                "program = \"/usr/bin/find\"\nargs = [\"/tmp\", \"-exec\", \"{unit}\", \";\", \"{lines}\"]",
                &["unit-logs", "find -exec runs a command line"],
            ),
            (
                "max_len = 16",
                "max_len = 100000",
                &["greet", "parameter name", "max_len must be"],
            ),
            (
                "version = 2",
                "version = 0",
                &["catalog", "version must be at least 1"],
            ),
            (
                "version = 2",
                "version = -1",
                &["catalog line 2", "version"],
            ),
            (
                "version = 2",
                "version = 2\nowner = \"me\"",
                &["catalog line 3", "unknown field `owner`"],
            ),
            (
                "[[action]]\nid = \"greet\"",
                "[[actions]]\nid = \"greet\"",
                &["catalog line", "unknown field `actions`"],
            ),
            (
                "version = 2",
                "version = 2\nversion = 3",
                &["catalog line 3", "duplicate key"],
            ),
        ];
        for (from, to, expected) in cases {
            let message = err(&edited(from, to));
            for part in *expected {
                assert!(message.contains(part), "{to:?}: {message:?} lacks {part:?}");
            }
            assert!(!message.contains('\n'), "{to:?}: not one line: {message:?}");
            assert!(!message.ends_with('.'), "{message}");
        }
    }

    #[test]
    fn size_limits_are_enforced() {
        let many_actions: String = std::iter::once("version = 1\n".to_owned())
            .chain((0..=ACTIONS_MAX).map(|i| {
                format!(
                    "[[action]]\nid = \"a{i}\"\ntitle = \"t\"\ndescription = \"d\"\n\
                     program = \"/bin/true\"\ntimeout_secs = 1\noutput_limit_bytes = 1\n\
                     risk = \"low\"\nconsent = false\nos = [\"linux\"]\n"
                )
            }))
            .collect();
        assert!(err(&many_actions).contains("at most 256"));

        let many_args = format!("args = [{}]", vec!["\"x\""; ARGS_MAX + 1].join(", "));
        let text = edited(
            "args = [\"-u\", \"{unit}\", \"-n\", \"{lines}\", \"--no-pager\"]",
            &many_args,
        );
        assert!(err(&text).contains("at most 64"), "{}", err(&text));

        let long_title = format!("title = \"{}\"", "x".repeat(TITLE_MAX_LEN + 1));
        assert!(
            err(&edited("title = \"Show a unit's logs\"", &long_title))
                .contains("title is 121 bytes")
        );

        let long_id = format!("id = \"{}\"", "a".repeat(ACTION_ID_MAX_LEN + 1));
        assert!(err(&edited("id = \"unit-logs\"", &long_id)).contains("not a valid action id"));

        let mut params = String::new();
        let mut args = Vec::new();
        for i in 0..=PARAMS_MAX {
            params.push_str(&format!("[action.params.p{i}]\ntype = \"pid\"\n"));
            args.push(format!("\"{{p{i}}}\""));
        }
        let text = format!(
            "version = 1\n[[action]]\nid = \"a\"\ntitle = \"t\"\ndescription = \"d\"\n\
             program = \"/bin/true\"\nargs = [{}]\ntimeout_secs = 1\noutput_limit_bytes = 1\n\
             risk = \"low\"\nconsent = false\nos = [\"linux\"]\n{params}",
            args.join(", ")
        );
        assert!(err(&text).contains("at most 16"), "{}", err(&text));
    }

    #[test]
    fn parameter_errors_name_the_action_and_parameter() {
        let catalog = small();
        let logs = catalog.action("unit-logs").unwrap();
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("unit", "a.service")],
                "action unit-logs: missing parameter lines",
            ),
            (
                &[("unit", "a.service"), ("lines", "1"), ("user", "x")],
                "unknown parameter \"user\" (expected: lines, unit)",
            ),
            (
                &[("unit", "a.service"), ("lines", "1"), ("lines", "2")],
                "parameter lines is given more than once",
            ),
            (
                &[("unit", "a.service"), ("lines", "0")],
                "action unit-logs, parameter lines: 0 is out of range 1..=5000",
            ),
            (
                &[("unit", "a.service"), ("lines", "ten")],
                "parameter lines: \"ten\" is not a decimal integer",
            ),
            (
                &[("unit", "a"), ("lines", "1")],
                "parameter unit: \"a\" is not a unit name",
            ),
        ];
        for (pairs, expected) in cases {
            let message = logs
                .validate_params(pairs.iter().copied())
                .unwrap_err()
                .to_string();
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }

    /// Attempts to smuggle a second command, an option or a path into an argument. Each must be
    /// rejected by the parameter's type, for every type it could be aimed at.
    const INJECTIONS: &[&str] = &[
        "; rm -rf /",
        "a.service; rm -rf /",
        "$(id)",
        "a$(id).service",
        "`id`",
        "a`id`.service",
        "a.service\nrm -rf /",
        "a.service\r",
        "\n",
        "../../etc/passwd",
        "../a.service",
        "a.service && reboot",
        "a.service | sh",
        "a.service > /etc/passwd",
        "--help",
        "-1",
        "-9",
        "${IFS}",
        "a\u{0}.service",
        "a\u{1b}[2J.service",
        "a\u{202e}ecivres.txt",
        "*",
        "",
        " ",
    ];

    #[test]
    fn injection_attempts_are_rejected_by_every_parameter_type() {
        let catalog = small();
        let logs = catalog.action("unit-logs").unwrap();
        let greet = catalog.action("greet").unwrap();
        let kill = catalog.action("kill-process").unwrap();
        let long = format!("{}.service", "a".repeat(VALUE_MAX_LEN));
        let injections = INJECTIONS.iter().copied().chain([long.as_str()]);
        for attempt in injections {
            let as_unit = logs.validate_params([("unit", attempt), ("lines", "10")]);
            assert!(as_unit.is_err(), "unit accepted {attempt:?}");
            let as_integer = logs.validate_params([("unit", "a.service"), ("lines", attempt)]);
            assert!(as_integer.is_err(), "integer accepted {attempt:?}");
            let as_enum = greet.validate_params([("mode", attempt), ("name", "bob")]);
            assert!(as_enum.is_err(), "enum accepted {attempt:?}");
            let as_string = greet.validate_params([("mode", "loud"), ("name", attempt)]);
            assert!(as_string.is_err(), "string accepted {attempt:?}");
            let as_pid = kill.validate_params([("pid", attempt)]);
            assert!(as_pid.is_err(), "pid accepted {attempt:?}");
        }
    }

    #[test]
    fn dangerous_characters_are_rejected_even_when_the_pattern_allows_them() {
        let text = edited("pattern = \"[a-z][a-z0-9_.]*\"", "pattern = \"(?s).*\"");
        let catalog = Catalog::from_toml(&text).unwrap();
        let greet = catalog.action("greet").unwrap();
        for attempt in [
            "a\nb",
            "a\u{1b}b",
            "\u{7f}",
            "a\u{200b}b",
            "-rf",
            "x".repeat(17).as_str(),
        ] {
            let result = greet.validate_params([("mode", "loud"), ("name", attempt)]);
            assert!(result.is_err(), "accepted {attempt:?}");
        }
        // Without a shell, shell syntax is just text: a permissive pattern lets it through as
        // one harmless argument.
        let params = greet
            .validate_params([("mode", "loud"), ("name", "$(id); rm")])
            .unwrap();
        assert_eq!(greet.argv(&params).unwrap()[2], "$(id); rm");
    }

    #[test]
    fn pids_are_positive_canonical_integers() {
        let catalog = small();
        let kill = catalog.action("kill-process").unwrap();
        for ok in ["1", "4321", "4194304"] {
            assert!(kill.validate_params([("pid", ok)]).is_ok(), "{ok}");
        }
        for bad in [
            "0", "-1", "4194305", "01", "+5", "1.0", "0x10", "12 13", "pid",
        ] {
            assert!(kill.validate_params([("pid", bad)]).is_err(), "{bad}");
        }
    }

    #[test]
    fn actions_round_trip_through_json_with_the_same_checks() {
        let catalog = small();
        for action in catalog.actions() {
            let json = serde_json::to_string(action).unwrap();
            let back: Action = serde_json::from_str(&json).unwrap();
            assert_eq!(&back, action);
        }
        let json = serde_json::to_string(catalog.action("unit-logs").unwrap()).unwrap();
        let tampered = json.replace("/usr/bin/journalctl", "sh");
        let err = serde_json::from_str::<Action>(&tampered)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an absolute path"), "{err}");
        let extra = json.replacen('{', "{\"shell\":true,", 1);
        let err = serde_json::from_str::<Action>(&extra)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `shell`"), "{err}");
    }

    #[test]
    fn the_example_catalog_parses_and_its_actions_work() {
        let catalog = Catalog::from_toml(EXAMPLE).unwrap();
        for action in catalog.actions() {
            assert!(action.runs_on(Os::Linux), "{}", action.id());
        }
        let reboot = catalog.action("reboot").unwrap();
        assert_eq!(reboot.risk(), Risk::High);
        assert!(reboot.consent());

        let argv = |id: &str, pairs: &[(&str, &str)]| {
            let action = catalog.action(id).unwrap();
            let params = action.validate_params(pairs.iter().copied()).unwrap();
            action.argv(&params).unwrap()
        };
        assert_eq!(
            argv("restart-unit", &[("unit", "cups.service")]),
            ["/usr/bin/systemctl", "restart", "cups.service"]
        );
        assert_eq!(
            argv("vacuum-journal", &[("size", "500")]),
            ["/usr/bin/journalctl", "--vacuum-size=500M"]
        );
        assert_eq!(
            argv("unit-logs", &[("unit", "cups.service"), ("lines", "300")]),
            [
                "/usr/bin/journalctl",
                "-u",
                "cups.service",
                "-n",
                "300",
                "--no-pager"
            ]
        );
        assert_eq!(
            argv("kill-process", &[("pid", "4242")]),
            ["/bin/kill", "-TERM", "4242"]
        );
        assert_eq!(
            argv("flush-dns", &[]),
            ["/usr/bin/resolvectl", "flush-caches"]
        );
        assert_eq!(argv("reboot", &[]), ["/usr/bin/systemctl", "reboot"]);
    }

    #[test]
    fn the_example_restart_unit_cannot_reboot_or_end_sessions() {
        let catalog = Catalog::from_toml(EXAMPLE).unwrap();
        let restart = catalog.action("restart-unit").unwrap();
        assert_eq!(restart.risk(), Risk::Medium);
        assert!(!restart.consent());
        for unit in [
            "reboot.target",
            "poweroff.target",
            "halt.target",
            "kexec.target",
            "rescue.target",
            "emergency.target",
            "shutdown.target",
            "suspend.target",
            "hibernate.target",
            "hybrid-sleep.target",
            "ctrl-alt-del.target",
            "exit.target",
            "default.target",
            "graphical.target",
            "multi-user.target",
            "display-manager.service",
            "gdm.service",
            "sddm.service",
            "lightdm.service",
            "systemd-logind.service",
            "dbus.service",
            "dbus-broker.service",
            "user@1000.service",
            "getty@tty1.service",
            "systemd-reboot.service",
            "rescue.service",
            "debug-shell.service",
            "lifeline-agent.service",
            "user-1000.slice",
            "dbus.socket",
            "home.mount",
        ] {
            let err = restart
                .validate_params([("unit", unit)])
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("action restart-unit, parameter unit: ") && err.contains(unit),
                "{err}"
            );
        }
        let err = restart
            .validate_params([("unit", "reboot.target")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("reboots, powers off"), "{err}");
        let err = restart
            .validate_params([("unit", "gdm.service")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("ends desktop or login sessions"), "{err}");
        // Reading logs takes the same type: no refused unit, whatever the program.
        let logs = catalog.action("unit-logs").unwrap();
        assert!(
            logs.validate_params([("unit", "reboot.target"), ("lines", "10")])
                .is_err()
        );
    }

    #[test]
    fn shells_interpreters_and_command_runners_are_refused_as_programs() {
        let with_program = |program: &str| {
            Catalog::from_toml(&edited(
                "program = \"/usr/bin/journalctl\"",
                &format!("program = {program:?}"),
            ))
        };
        for runner in [
            "/usr/bin/systemd-run",
            "/usr/bin/run0",
            "/usr/bin/setsid",
            "/usr/bin/nohup",
            "/usr/bin/timeout",
            "/usr/bin/TIMEOUT",
            "/usr/bin/nice",
            "/usr/bin/ionice",
            "/usr/bin/chrt",
            "/usr/bin/taskset",
            "/usr/bin/stdbuf",
            "/usr/sbin/runuser",
            "/bin/su",
            "/usr/bin/doas",
            "/usr/bin/pkexec",
            "/usr/bin/setpriv",
            "/usr/sbin/chroot",
            "/usr/bin/unshare",
            "/usr/bin/nsenter",
            "/usr/bin/flock",
            "/usr/bin/script",
            "/usr/bin/watch",
            "/usr/bin/xargs",
            "/bin/busybox",
            "/usr/bin/toybox",
            "/bin/ash",
            "/usr/bin/python3",
            "/usr/bin/python3.11",
            "/usr/local/bin/Python3.12",
            "/usr/bin/perl",
            "/usr/bin/perl5.36.0",
            "/usr/bin/ruby3.1",
            "/usr/bin/node",
            "/usr/bin/php8.2",
            "/usr/bin/lua5.4",
            "/usr/bin/awk",
            "/usr/bin/gawk",
            "/usr/bin/mawk",
            "/usr/bin/tclsh8.6",
            "/usr/bin/expect",
            "/bin/sed",
            "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\PowerShell.exe",
            "C:\\Windows\\System32\\wscript.exe",
            "C:\\Tools\\fix.bat",
            "C:\\Tools\\fix.CMD",
            "C:\\Tools\\fix.ps1",
        ] {
            let err = with_program(runner).unwrap_err().to_string();
            assert!(err.contains("command runner"), "{runner}: {err}");
        }
        for fine in [
            "/usr/bin/systemctl",
            "/usr/bin/journalctl",
            "/usr/bin/resolvectl",
            "/usr/bin/apt-get",
            "/usr/bin/timedatectl",
            "/usr/bin/shred",
            "/usr/bin/nmcli",
            "/usr/bin/find",
            "/usr/bin/seq",
            "/bin/kill",
            "C:\\Windows\\System32\\ipconfig.exe",
        ] {
            assert!(with_program(fine).is_ok(), "{fine}");
        }
    }

    #[test]
    fn a_service_parameter_round_trips_and_is_signed_as_its_own_type() {
        let catalog = Catalog::from_toml(EXAMPLE).unwrap();
        let restart = catalog.action("restart-unit").unwrap();
        assert_eq!(
            restart.params()[&"unit".parse::<ParamName>().unwrap()],
            ParamType::Service
        );
        let json = serde_json::to_value(restart).unwrap();
        assert_eq!(json["params"]["unit"]["type"], "service");
        let back: Action = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(&back, restart);
        // The same action with a plain unit parameter is a different signed action.
        let mut widened = json;
        widened["params"]["unit"]["type"] = "unit".into();
        let widened: Action = serde_json::from_value(widened).unwrap();
        assert_ne!(widened.canonical_bytes(1), restart.canonical_bytes(1));
    }

    /// Ids that findings rules suggest, read from the rules' source so a new rule cannot point at
    /// an action the example catalog lacks.
    fn ids_suggested_by_findings() -> Vec<String> {
        const FINDINGS: &str = include_str!("../findings.rs");
        #[allow(clippy::expect_used)] // a constant pattern
        static LAST_ARG: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r#"Some\("([^"]*)"\)\s*,?\s*\)"#).expect("valid regex"));
        let rules = FINDINGS.split("#[cfg(test)]").next().unwrap_or(FINDINGS);
        let mut ids: Vec<String> = LAST_ARG
            .captures_iter(rules)
            .map(|c| c[1].to_owned())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    #[test]
    fn every_action_suggested_by_findings_exists_in_the_example_catalog() {
        let catalog = Catalog::from_toml(EXAMPLE).unwrap();
        let suggested = ids_suggested_by_findings();
        for known in ["clean-package-cache", "restart-unit", "flush-dns", "reboot"] {
            assert!(
                suggested.iter().any(|s| s == known),
                "scan missed {known}: {suggested:?}"
            );
        }
        let required = [
            "clean-package-cache",
            "restart-unit",
            "flush-dns",
            "restart-networkmanager",
            "kill-process",
            "reboot",
            "vacuum-journal",
            "time-sync",
            "unit-logs",
        ];
        for id in suggested.iter().map(String::as_str).chain(required) {
            assert!(
                id.parse::<ActionId>().is_ok(),
                "findings suggest a bad id {id:?}"
            );
            assert!(catalog.action(id).is_some(), "example catalog lacks {id}");
        }
    }

    fn param_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[ -~]{0,40}",
            "[a-z0-9@:._\\-]{1,20}\\.(service|mount|timer)",
            "-?[0-9]{1,8}",
            "[\\x00-\\x20\\x7f\\u{80}-\\u{9f}\\u{200b}-\\u{200f}\\u{202a}-\\u{202e}a-z]{0,12}",
        ]
    }

    proptest! {
        #[test]
        fn argv_of_validated_values_never_holds_a_control_character(
            unit in param_value(),
            lines in param_value(),
            mode in param_value(),
            name in param_value(),
            pid in param_value(),
        ) {
            let text = edited("pattern = \"[a-z][a-z0-9_.]*\"", "pattern = \"(?s).*\"");
            let catalog = Catalog::from_toml(&text).unwrap();
            let tries: [(&str, Vec<(&str, &str)>); 3] = [
                ("unit-logs", vec![("unit", &unit), ("lines", &lines)]),
                ("greet", vec![("mode", &mode), ("name", &name)]),
                ("kill-process", vec![("pid", &pid)]),
            ];
            for (id, pairs) in tries {
                let action = catalog.action(id).unwrap();
                if let Ok(params) = action.validate_params(pairs) {
                    for arg in action.argv(&params).unwrap() {
                        prop_assert!(!arg.chars().any(params::is_forbidden_char), "{arg:?}");
                        prop_assert!(!arg.is_empty());
                    }
                }
            }
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(text in any::<String>()) {
            let _ = Catalog::from_toml(&text);
        }
    }
}

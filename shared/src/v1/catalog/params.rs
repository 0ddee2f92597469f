//! Typed action parameters, the argument template, and the checks every user-supplied value passes.
//!
//! A value reaches an argument vector only as part of a [`ValidatedParams`], which only
//! [`Action::validate_params`](super::Action::validate_params) builds. Whatever the type, a value is
//! never empty, never longer than [`VALUE_MAX_LEN`] bytes and never contains a control character or
//! an invisible formatting character (bidi overrides, zero-width characters), so it can neither
//! break a log line nor spoof what a technician sees. Values of free-form types (`string`, `unit`)
//! never start with `-`, so a program cannot take them for an option.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use regex::{Regex, RegexBuilder};

use super::ActionId;

/// Longest parameter name.
pub const PARAM_NAME_MAX_LEN: usize = 32;
/// Longest value of any parameter, in bytes.
pub const VALUE_MAX_LEN: usize = 1024;
/// Longest `pattern` of a `string` parameter.
pub const PATTERN_MAX_LEN: usize = 256;
/// Most values an `enum` parameter may list.
pub const ENUM_VALUES_MAX: usize = 64;
/// Longest value an `enum` parameter may list.
pub const ENUM_VALUE_MAX_LEN: usize = 128;
/// Longest systemd unit name (systemd's own limit).
pub const UNIT_NAME_MAX_LEN: usize = 256;
/// Highest process id Linux hands out (`PID_MAX_LIMIT` on 64-bit).
pub const PID_MAX: u32 = 4_194_304;
/// Unit types a `unit` parameter may name: the ones an action can sensibly start, stop or read.
pub const UNIT_SUFFIXES: &[&str] = &[
    "service",
    "socket",
    "timer",
    "mount",
    "automount",
    "target",
    "path",
    "swap",
    "slice",
];

/// Compiled-regex memory budget for an admin's `pattern`: generous for real patterns, small
/// enough that a hostile catalog cannot make the agent allocate much.
const PATTERN_SIZE_LIMIT: usize = 256 * 1024;

/// A value supplied for a parameter does not fit the action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("action {action}: unknown parameter {name} (expected: {expected})")]
    Unknown {
        action: ActionId,
        /// Already quoted and escaped: it is user input.
        name: String,
        expected: String,
    },
    #[error("action {action}: missing parameter {name}")]
    Missing { action: ActionId, name: ParamName },
    #[error("action {action}: parameter {name} is given more than once")]
    Duplicate { action: ActionId, name: ParamName },
    #[error("action {action}, parameter {name}: {problem}")]
    Invalid {
        action: ActionId,
        name: ParamName,
        problem: String,
    },
    #[error("{arg}: expected NAME=VALUE")]
    NotAPair {
        /// Already quoted and escaped: it is user input.
        arg: String,
    },
    #[error("parameters were validated for action {validated_for}, not for action {action}")]
    WrongAction {
        validated_for: ActionId,
        action: ActionId,
    },
}

/// Quotes user input for an error message: escaped, and cut short when long.
pub(crate) fn quoted(value: &str) -> String {
    const SHOWN: usize = 64;
    match value.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{:?}... ({} bytes)", &value[..cut], value.len()),
        None => format!("{value:?}"),
    }
}

/// Characters no text in a catalog or a parameter value may hold: C0/C1 controls (newlines,
/// escape sequences) and invisible formatting characters that make text display differently from
/// what it is (bidi overrides, zero-width characters, byte-order mark).
pub(crate) fn is_forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}')
}

/// Describes the first forbidden character in `text`, if any.
pub(crate) fn forbidden_char(text: &str) -> Option<String> {
    text.char_indices()
        .find(|&(_, c)| is_forbidden_char(c))
        .map(|(at, c)| format!("contains the control or invisible character {c:?} at byte {at}"))
}

/// A parameter name: a lowercase letter, then lowercase letters, digits or `_`; at most
/// [`PARAM_NAME_MAX_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParamName(String);

impl ParamName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ParamName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut chars = s.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !first_ok || !rest_ok || s.len() > PARAM_NAME_MAX_LEN {
            return Err(format!(
                "{} is not a valid parameter name (a lowercase letter, then lowercase letters, \
                 digits or _, at most {PARAM_NAME_MAX_LEN} characters)",
                quoted(s)
            ));
        }
        Ok(ParamName(s.to_owned()))
    }
}

/// Lets maps keyed by `ParamName` be searched with a `&str`; ordering and equality are the
/// string's own.
impl Borrow<str> for ParamName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ParamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A systemd unit name: `[A-Za-z0-9:_.@-]`, not starting with `-` or `.`, at most one `@`, ending
/// in one of [`UNIT_SUFFIXES`], at most [`UNIT_NAME_MAX_LEN`] bytes.
///
/// Stricter than systemd: `\` escapes are refused, and so are `-.mount` and `-.slice` (the
/// root mount and slice), which no remote action has reason to touch.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitName(String);

impl UnitName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for UnitName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > UNIT_NAME_MAX_LEN {
            return Err(format!(
                "a unit name is at most {UNIT_NAME_MAX_LEN} bytes, this one is {}",
                s.len()
            ));
        }
        if let Some(bad) = s
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '.' | '-' | '@')))
        {
            return Err(format!(
                "{} is not a unit name: {bad:?} is not allowed (letters, digits, : _ . - @)",
                quoted(s)
            ));
        }
        if s.starts_with(['-', '.']) {
            return Err(format!(
                "{} is not a unit name: it must not start with - or .",
                quoted(s)
            ));
        }
        if s.matches('@').count() > 1 {
            return Err(format!("{} is not a unit name: more than one @", quoted(s)));
        }
        let suffix_ok = s
            .rsplit_once('.')
            .is_some_and(|(stem, suffix)| !stem.is_empty() && UNIT_SUFFIXES.contains(&suffix));
        if !suffix_ok {
            return Err(format!(
                "{} is not a unit name: it must end in .{}",
                quoted(s),
                UNIT_SUFFIXES.join(", .")
            ));
        }
        Ok(UnitName(s.to_owned()))
    }
}

impl fmt::Display for UnitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The type of a parameter, as the catalog declares it.
#[derive(Debug, Clone)]
pub enum ParamType {
    /// One of a fixed list of values.
    Enum { values: Vec<String> },
    /// A decimal integer in `min..=max`.
    Integer { min: i64, max: i64 },
    /// Text that fully matches `pattern` and is at most `max_len` bytes.
    String {
        pattern: String,
        regex: Regex,
        max_len: usize,
    },
    /// A systemd unit name ([`UnitName`]).
    Unit,
    /// A process id: a positive decimal integer up to [`PID_MAX`].
    Pid,
}

impl PartialEq for ParamType {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ParamType::Enum { values: a }, ParamType::Enum { values: b }) => a == b,
            (ParamType::Integer { min: a, max: b }, ParamType::Integer { min: c, max: d }) => {
                a == c && b == d
            }
            (
                ParamType::String {
                    pattern: a,
                    max_len: b,
                    ..
                },
                ParamType::String {
                    pattern: c,
                    max_len: d,
                    ..
                },
            ) => a == c && b == d,
            (ParamType::Unit, ParamType::Unit) | (ParamType::Pid, ParamType::Pid) => true,
            _ => false,
        }
    }
}

impl Eq for ParamType {}

impl ParamType {
    /// The name used in the catalog's `type = "..."`.
    pub fn type_name(&self) -> &'static str {
        match self {
            ParamType::Enum { .. } => "enum",
            ParamType::Integer { .. } => "integer",
            ParamType::String { .. } => "string",
            ParamType::Unit => "unit",
            ParamType::Pid => "pid",
        }
    }

    /// What values fit, in words, for forms and listings.
    pub fn describe(&self) -> String {
        match self {
            ParamType::Enum { values } => format!("one of: {}", values.join(", ")),
            ParamType::Integer { min, max } => format!("an integer from {min} to {max}"),
            ParamType::String {
                pattern, max_len, ..
            } => format!("text matching {pattern}, at most {max_len} bytes"),
            ParamType::Unit => "a systemd unit name, e.g. nginx.service".to_owned(),
            ParamType::Pid => format!("a process id from 1 to {PID_MAX}"),
        }
    }

    /// Checks an `enum` declaration.
    pub(crate) fn enumeration(values: Vec<String>) -> Result<Self, String> {
        if values.is_empty() {
            return Err("an enum needs at least one value".to_owned());
        }
        if values.len() > ENUM_VALUES_MAX {
            return Err(format!(
                "an enum lists at most {ENUM_VALUES_MAX} values, this one {}",
                values.len()
            ));
        }
        for (i, value) in values.iter().enumerate() {
            if value.is_empty() || value.len() > ENUM_VALUE_MAX_LEN {
                return Err(format!(
                    "enum value {} must be 1 to {ENUM_VALUE_MAX_LEN} bytes long",
                    quoted(value)
                ));
            }
            if let Some(problem) = forbidden_char(value) {
                return Err(format!("enum value {} {problem}", quoted(value)));
            }
            if values[..i].contains(value) {
                return Err(format!("enum value {} is listed twice", quoted(value)));
            }
        }
        Ok(ParamType::Enum { values })
    }

    /// Checks an `integer` declaration.
    pub(crate) fn integer(min: i64, max: i64) -> Result<Self, String> {
        if min > max {
            return Err(format!("min ({min}) is greater than max ({max})"));
        }
        Ok(ParamType::Integer { min, max })
    }

    /// Checks a `string` declaration and compiles its pattern, anchored at both ends.
    pub(crate) fn string(pattern: String, max_len: usize) -> Result<Self, String> {
        if pattern.is_empty() || pattern.len() > PATTERN_MAX_LEN {
            return Err(format!(
                "pattern must be 1 to {PATTERN_MAX_LEN} bytes long, this one is {}",
                pattern.len()
            ));
        }
        if let Some(problem) = forbidden_char(&pattern) {
            return Err(format!("pattern {problem}"));
        }
        if max_len == 0 || max_len > VALUE_MAX_LEN {
            return Err(format!(
                "max_len must be 1 to {VALUE_MAX_LEN}, not {max_len}"
            ));
        }
        let regex = RegexBuilder::new(&format!(r"\A(?:{pattern})\z"))
            .size_limit(PATTERN_SIZE_LIMIT)
            .build()
            .map_err(|e| {
                // The regex error is multi-line (it draws the pattern); keep the last line.
                let text = e.to_string();
                let last = text.lines().last().unwrap_or("invalid").trim();
                let reason = last.strip_prefix("error: ").unwrap_or(last).to_owned();
                format!(
                    "pattern {} is not a valid regex: {reason}",
                    quoted(&pattern)
                )
            })?;
        Ok(ParamType::String {
            pattern,
            regex,
            max_len,
        })
    }

    /// Checks one user-supplied value; returns the text that goes into the argument vector.
    pub(crate) fn check(&self, value: &str) -> Result<String, String> {
        if value.is_empty() {
            return Err("the value is empty".to_owned());
        }
        if value.len() > VALUE_MAX_LEN {
            return Err(format!(
                "{} is too long (at most {VALUE_MAX_LEN} bytes)",
                quoted(value)
            ));
        }
        if let Some(problem) = forbidden_char(value) {
            return Err(format!("{} {problem}", quoted(value)));
        }
        match self {
            ParamType::Enum { values } => {
                if values.iter().any(|v| v == value) {
                    Ok(value.to_owned())
                } else {
                    Err(format!(
                        "{} is not one of: {}",
                        quoted(value),
                        values.join(", ")
                    ))
                }
            }
            ParamType::Integer { min, max } => {
                let n = parse_decimal(value)
                    .ok_or_else(|| format!("{} is not a decimal integer", quoted(value)))?;
                if n < i128::from(*min) || n > i128::from(*max) {
                    return Err(format!("{value} is out of range {min}..={max}"));
                }
                Ok(n.to_string())
            }
            ParamType::String {
                pattern,
                regex,
                max_len,
            } => {
                if value.len() > *max_len {
                    return Err(format!(
                        "{} is too long (at most {max_len} bytes)",
                        quoted(value)
                    ));
                }
                if value.starts_with('-') {
                    return Err(format!(
                        "{} starts with -, which a program could take for an option",
                        quoted(value)
                    ));
                }
                if !regex.is_match(value) {
                    return Err(format!(
                        "{} does not match the pattern {pattern}",
                        quoted(value)
                    ));
                }
                Ok(value.to_owned())
            }
            ParamType::Unit => value.parse::<UnitName>().map(|u| u.0),
            ParamType::Pid => match parse_decimal(value) {
                Some(n) if (1..=i128::from(PID_MAX)).contains(&n) && !value.starts_with('-') => {
                    Ok(n.to_string())
                }
                _ => Err(format!(
                    "{} is not a process id (a positive integer up to {PID_MAX})",
                    quoted(value)
                )),
            },
        }
    }
}

/// Parses strict decimal: an optional `-`, then digits without leading zeros. No `+`, no spaces,
/// no `0x`, no `1e3`, so a value means the same to every program it is handed to. Returns `None`
/// when the text is not such a number or does not fit 64 bits.
fn parse_decimal(text: &str) -> Option<i128> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let well_formed = !digits.is_empty()
        && digits.len() <= 20
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if !well_formed {
        return None;
    }
    let n: i128 = text.parse().ok()?;
    (i128::from(i64::MIN)..=i128::from(i64::MAX))
        .contains(&n)
        .then_some(n)
}

/// One piece of an argument template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(ParamName),
}

/// One element of an action's `args`: literal text with `{name}` placeholders. `{{` and `}}`
/// stand for literal braces. Nothing else is interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgTemplate {
    source: String,
    segments: Vec<Segment>,
}

impl ArgTemplate {
    /// The template as the admin wrote it.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The parameters this element refers to.
    pub fn params(&self) -> impl Iterator<Item = &ParamName> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(name) => Some(name),
            Segment::Literal(_) => None,
        })
    }

    /// Replaces each placeholder by its value; `None` if a value is missing.
    pub(crate) fn expand(&self, values: &BTreeMap<ParamName, String>) -> Option<String> {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Param(name) => out.push_str(values.get(name)?),
            }
        }
        Some(out)
    }
}

impl FromStr for ArgTemplate {
    type Err = String;

    fn from_str(source: &str) -> Result<Self, Self::Err> {
        if let Some(problem) = forbidden_char(source) {
            return Err(format!("argument {} {problem}", quoted(source)));
        }
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(format!(
                            "argument {}: unclosed {{ (write {{{{ for a literal brace)",
                            quoted(source)
                        ));
                    }
                    let name = name
                        .parse::<ParamName>()
                        .map_err(|e| format!("argument {}: {e}", quoted(source)))?;
                    if !literal.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Param(name));
                }
                '}' => {
                    return Err(format!(
                        "argument {}: unmatched }} (write }}}} for a literal brace)",
                        quoted(source)
                    ));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(ArgTemplate {
            source: source.to_owned(),
            segments,
        })
    }
}

/// Parameter values that passed their types' checks for one action. Only
/// [`Action::validate_params`](super::Action::validate_params) builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedParams {
    action: ActionId,
    values: BTreeMap<ParamName, String>,
}

impl ValidatedParams {
    /// Checks `pairs` against `params`: every declared parameter exactly once, nothing else.
    pub(crate) fn validate<K, V>(
        action: &ActionId,
        params: &BTreeMap<ParamName, ParamType>,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ParamsError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut values = BTreeMap::new();
        for (name, value) in pairs {
            let (name, value) = (name.as_ref(), value.as_ref());
            let Some((name, ty)) = params.get_key_value(name) else {
                let expected = if params.is_empty() {
                    "this action takes no parameters".to_owned()
                } else {
                    params
                        .keys()
                        .map(ParamName::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(ParamsError::Unknown {
                    action: action.clone(),
                    name: quoted(name),
                    expected,
                });
            };
            if values.contains_key(name) {
                return Err(ParamsError::Duplicate {
                    action: action.clone(),
                    name: name.clone(),
                });
            }
            let checked = ty.check(value).map_err(|problem| ParamsError::Invalid {
                action: action.clone(),
                name: name.clone(),
                problem,
            })?;
            values.insert(name.clone(), checked);
        }
        if let Some(missing) = params.keys().find(|name| !values.contains_key(*name)) {
            return Err(ParamsError::Missing {
                action: action.clone(),
                name: missing.clone(),
            });
        }
        Ok(ValidatedParams {
            action: action.clone(),
            values,
        })
    }

    /// The action these values were validated for.
    pub fn action(&self) -> &ActionId {
        &self.action
    }

    /// The checked value of one parameter, as it goes into the argument vector.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// All values, by parameter name.
    pub fn iter(&self) -> impl Iterator<Item = (&ParamName, &str)> {
        self.values.iter().map(|(k, v)| (k, v.as_str()))
    }

    pub(crate) fn values(&self) -> &BTreeMap<ParamName, String> {
        &self.values
    }
}

/// Splits a command-line `NAME=VALUE` at the first `=`.
pub fn split_param(arg: &str) -> Result<(&str, &str), ParamsError> {
    arg.split_once('=')
        .ok_or_else(|| ParamsError::NotAPair { arg: quoted(arg) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_names_are_lowercase_identifiers() {
        for ok in ["unit", "lines", "a", "size_mb", "x1"] {
            assert!(ok.parse::<ParamName>().is_ok(), "{ok}");
        }
        for bad in ["", "Unit", "1x", "_a", "a-b", "a b", "é", &"a".repeat(33)] {
            assert!(bad.parse::<ParamName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn unit_names_follow_systemd_rules() {
        for ok in [
            "nginx.service",
            "getty@tty1.service",
            "systemd-timesyncd.service",
            "dev-sda1.swap",
            "user-1000.slice",
            "home.mount",
            "a:b_c.timer",
        ] {
            assert!(ok.parse::<UnitName>().is_ok(), "{ok}");
        }
        for bad in [
            "nginx",
            "nginx.exe",
            ".service",
            "-.mount",
            "--help.service",
            "a@b@c.service",
            "../etc/passwd.service",
            "a b.service",
            "a;b.service",
            "a\\x2db.service",
            "a\n.service",
            "nginx.service\n",
            "ng\u{202E}inx.service",
            &format!("{}.service", "a".repeat(250)),
        ] {
            assert!(bad.parse::<UnitName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn decimal_parsing_is_strict() {
        assert_eq!(parse_decimal("0"), Some(0));
        assert_eq!(parse_decimal("-12"), Some(-12));
        assert_eq!(
            parse_decimal("9223372036854775807"),
            Some(i128::from(i64::MAX))
        );
        for bad in [
            "",
            "-",
            "+1",
            "01",
            " 1",
            "1 ",
            "0x10",
            "1e3",
            "1.0",
            "9223372036854775808",
            "99999999999999999999999",
            "١٢",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn templates_parse_placeholders_and_escapes() {
        let t: ArgTemplate = "--vacuum-size={size}M".parse().unwrap();
        assert_eq!(
            t.params().map(ParamName::as_str).collect::<Vec<_>>(),
            ["size"]
        );
        let values = BTreeMap::from([("size".parse().unwrap(), "500".to_owned())]);
        assert_eq!(t.expand(&values).unwrap(), "--vacuum-size=500M");

        let t: ArgTemplate = "{{literal}} {a}{b}".parse().unwrap();
        let values = BTreeMap::from([
            ("a".parse().unwrap(), "1".to_owned()),
            ("b".parse().unwrap(), "2".to_owned()),
        ]);
        assert_eq!(t.expand(&values).unwrap(), "{literal} 12");
        assert_eq!(t.expand(&BTreeMap::new()), None);

        for bad in ["{unit", "unit}", "{}", "{Unit}", "{a b}", "{$(id)}", "a\nb"] {
            assert!(bad.parse::<ArgTemplate>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_bad_pattern_names_the_problem_on_one_line() {
        let err = ParamType::string("a(".into(), 10).unwrap_err();
        assert!(err.contains("not a valid regex"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        assert!(ParamType::string("a".into(), 0).is_err());
        assert!(ParamType::string("x".repeat(PATTERN_MAX_LEN + 1), 10).is_err());
        assert!(ParamType::integer(5, 4).is_err());
        assert!(ParamType::enumeration(vec![]).is_err());
        assert!(ParamType::enumeration(vec!["a".into(), "a".into()]).is_err());
        assert!(ParamType::enumeration(vec!["a\nb".into()]).is_err());
    }

    #[test]
    fn quoted_escapes_and_shortens_user_input() {
        assert_eq!(quoted("a\nb"), "\"a\\nb\"");
        let long = quoted(&"x".repeat(5000));
        assert!(long.len() < 100 && long.contains("5000 bytes"), "{long}");
    }

    #[test]
    fn split_param_splits_at_the_first_equals_sign() {
        assert_eq!(split_param("unit=a=b").unwrap(), ("unit", "a=b"));
        assert!(split_param("unit").is_err());
    }
}

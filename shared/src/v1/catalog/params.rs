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

use regex_automata::meta::{self, Regex};
use regex_syntax::hir::{Hir, Look};

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
/// Deepest nesting of groups and repetitions in a `pattern`, so parsing stays shallow.
const PATTERN_NEST_LIMIT: u32 = 64;

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

/// Characters no text in a catalog or a parameter value may hold, because they break a log line
/// or make text display differently from what it is:
///
/// - every control character (Unicode general category Cc: C0, DEL, C1) and the line and
///   paragraph separators U+2028 and U+2029;
/// - every format character (category Cf): bidi embeddings, overrides, isolates and marks,
///   zero-width space, joiners and non-joiner, word joiner and the invisible math operators,
///   byte-order mark, soft hyphen, interlinear annotation, Mongolian vowel separator, tag
///   characters, and the script-specific format controls (Arabic number signs, Kaithi, Egyptian
///   hieroglyph and shorthand format controls, musical beam and slur controls);
/// - the remaining default-ignorable code points, which render as nothing: combining grapheme
///   joiner, Hangul fillers, Khmer inherent vowels, Mongolian free variation selectors,
///   variation selectors and the reserved ranges Unicode keeps ignorable.
///
/// The table is checked against Unicode's own Cf and Default_Ignorable_Code_Point tables in the
/// tests, so a character missing here fails a test rather than reaching a technician's screen.
pub fn is_forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}'                      // soft hyphen
            | '\u{034F}'                    // combining grapheme joiner
            | '\u{0600}'..='\u{0605}'       // Arabic number signs
            | '\u{061C}'                    // Arabic letter mark
            | '\u{06DD}'                    // Arabic end of ayah
            | '\u{070F}'                    // Syriac abbreviation mark
            | '\u{0890}'..='\u{0891}'       // Arabic pound and piastre marks above
            | '\u{08E2}'                    // Arabic disputed end of ayah
            | '\u{115F}'..='\u{1160}'       // Hangul choseong and jungseong fillers
            | '\u{17B4}'..='\u{17B5}'       // Khmer inherent vowels
            | '\u{180B}'..='\u{180F}'       // Mongolian variation selectors, vowel separator
            | '\u{200B}'..='\u{200F}'       // zero-width space, non-joiner, joiner, LRM, RLM
            | '\u{2028}'..='\u{202E}'       // line/paragraph separators, bidi embeddings
            | '\u{2060}'..='\u{206F}'       // word joiner, invisible operators, bidi isolates
            | '\u{3164}'                    // Hangul filler
            | '\u{FE00}'..='\u{FE0F}'       // variation selectors
            | '\u{FEFF}'                    // byte-order mark, zero-width no-break space
            | '\u{FFA0}'                    // halfwidth Hangul filler
            | '\u{FFF0}'..='\u{FFFB}'       // reserved ignorables, interlinear annotation
            | '\u{110BD}'                   // Kaithi number sign
            | '\u{110CD}'                   // Kaithi number sign above
            | '\u{13430}'..='\u{1343F}'     // Egyptian hieroglyph format controls
            | '\u{1BCA0}'..='\u{1BCA3}'     // shorthand format controls
            | '\u{1D173}'..='\u{1D17A}'     // musical symbol beam and slur controls
            | '\u{E0000}'..='\u{E0FFF}') // tag characters, variation selectors supplement
}

/// Describes the first forbidden character in `text`, if any.
pub(crate) fn forbidden_char(text: &str) -> Option<String> {
    text.char_indices()
        .find(|&(_, c)| is_forbidden_char(c))
        .map(|(at, c)| {
            format!(
                "contains the control or invisible character {} at byte {at}",
                code_point(c)
            )
        })
}

/// `U+XXXX`: how a message names an invisible character (printing it would show nothing).
pub(crate) fn code_point(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
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

/// Why a unit is refused as a parameter value, whatever the action: what naming it in
/// `systemctl start|stop|restart|isolate` does to the machine. Ordered by how much it takes away,
/// from the person at the machine's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UnitHazard {
    /// Cuts remote support: the Lifeline agent (or collector) itself.
    Lifeline,
    /// Opens a root shell without a password (`debug-shell.service`).
    RootShell,
    /// Ends desktop or console sessions: display and login managers, logind, the system bus,
    /// per-user managers, gettys, the user slices.
    Session,
    /// Changes the state of the whole system (rescue or emergency mode, another run level,
    /// core targets whose restart stops everything ordered after them), ending every session.
    SystemState,
    /// Reboots, powers off, halts, suspends or hibernates the machine.
    Power,
}

impl UnitHazard {
    /// What naming such a unit does, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            UnitHazard::Lifeline => {
                "it runs Lifeline itself; restarting or stopping it cuts remote support"
            }
            UnitHazard::RootShell => "starting it opens a root shell without a password",
            UnitHazard::Session => "restarting or stopping it ends desktop or login sessions",
            UnitHazard::SystemState => {
                "it changes the state of the whole system (rescue mode, another target), which \
                 stops services and ends every session"
            }
            UnitHazard::Power => "it reboots, powers off, halts or suspends the machine",
        }
    }
}

/// How an entry of [`CRITICAL_UNITS`] matches a unit name.
#[derive(Debug, Clone, Copy)]
enum UnitMatch {
    /// Exactly this name.
    Exact(&'static str),
    /// Every instance of a template: `getty@` matches `getty@tty1.service`.
    Instances(&'static str, &'static str),
    /// Names with this prefix and suffix: `user-` + `.slice` matches `user-1000.slice`.
    Prefixed(&'static str, &'static str),
}

impl UnitMatch {
    fn matches(self, unit: &str) -> bool {
        match self {
            UnitMatch::Exact(name) => unit == name,
            UnitMatch::Instances(prefix, suffix) | UnitMatch::Prefixed(prefix, suffix) => unit
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(suffix))
                .is_some_and(|middle| !middle.is_empty()),
        }
    }

    /// A name this entry matches, for the catalog lint's search.
    fn example(self) -> String {
        match self {
            UnitMatch::Exact(name) => name.to_owned(),
            UnitMatch::Instances(prefix, suffix) | UnitMatch::Prefixed(prefix, suffix) => {
                format!("{prefix}1000{suffix}")
            }
        }
    }
}

/// Units no `unit` or `service` parameter accepts. Naming one of them in `systemctl restart`
/// reaches what a catalog offers, if at all, as its own action with its own risk and consent
/// (`reboot`), or ends the sessions of everyone at the machine. The targets are the special
/// units of systemd.special(7) that act on the whole system; the services are the ones behind
/// them and the ones desktop sessions depend on. An admin who really wants a medium action to
/// restart, say, the display manager writes an `enum` listing it, and `catalog sign` warns.
const CRITICAL_UNITS: &[(UnitMatch, UnitHazard)] = {
    use UnitHazard::{Lifeline, Power, RootShell, Session, SystemState};
    use UnitMatch::{Exact, Instances, Prefixed};
    &[
        // Power: the targets and the services that carry them out.
        (Exact("reboot.target"), Power),
        (Exact("poweroff.target"), Power),
        (Exact("halt.target"), Power),
        (Exact("kexec.target"), Power),
        (Exact("soft-reboot.target"), Power),
        (Exact("ctrl-alt-del.target"), Power),
        (Exact("shutdown.target"), Power),
        (Exact("final.target"), Power),
        (Exact("umount.target"), Power),
        (Exact("exit.target"), Power),
        (Exact("sleep.target"), Power),
        (Exact("suspend.target"), Power),
        (Exact("hibernate.target"), Power),
        (Exact("hybrid-sleep.target"), Power),
        (Exact("suspend-then-hibernate.target"), Power),
        (Exact("sigpwr.target"), Power),
        (Exact("factory-reset.target"), Power),
        (Exact("system-update.target"), Power),
        (Exact("runlevel0.target"), Power),
        (Exact("runlevel6.target"), Power),
        (Exact("initrd-switch-root.target"), Power),
        (Exact("systemd-reboot.service"), Power),
        (Exact("systemd-poweroff.service"), Power),
        (Exact("systemd-halt.service"), Power),
        (Exact("systemd-kexec.service"), Power),
        (Exact("systemd-soft-reboot.service"), Power),
        (Exact("systemd-exit.service"), Power),
        (Exact("systemd-suspend.service"), Power),
        (Exact("systemd-hibernate.service"), Power),
        (Exact("systemd-hybrid-sleep.service"), Power),
        (Exact("systemd-suspend-then-hibernate.service"), Power),
        (Exact("initrd-switch-root.service"), Power),
        // The state of the whole system.
        (Exact("rescue.target"), SystemState),
        (Exact("emergency.target"), SystemState),
        (Exact("rescue.service"), SystemState),
        (Exact("emergency.service"), SystemState),
        (Exact("default.target"), SystemState),
        (Exact("graphical.target"), SystemState),
        (Exact("multi-user.target"), SystemState),
        (Exact("basic.target"), SystemState),
        (Exact("sysinit.target"), SystemState),
        (Exact("local-fs.target"), SystemState),
        (Exact("remote-fs.target"), SystemState),
        (Exact("sockets.target"), SystemState),
        (Exact("timers.target"), SystemState),
        (Exact("paths.target"), SystemState),
        (Exact("slices.target"), SystemState),
        (Exact("swap.target"), SystemState),
        (Exact("network.target"), SystemState),
        (Exact("runlevel1.target"), SystemState),
        (Exact("runlevel2.target"), SystemState),
        (Exact("runlevel3.target"), SystemState),
        (Exact("runlevel4.target"), SystemState),
        (Exact("runlevel5.target"), SystemState),
        (Exact("init.scope"), SystemState),
        (Exact("system.slice"), SystemState),
        (Exact("machine.slice"), SystemState),
        // Sessions: logins, display managers, the bus and per-user managers they depend on.
        (Exact("getty.target"), Session),
        (Exact("display-manager.service"), Session),
        (Exact("gdm.service"), Session),
        (Exact("gdm3.service"), Session),
        (Exact("sddm.service"), Session),
        (Exact("lightdm.service"), Session),
        (Exact("lxdm.service"), Session),
        (Exact("xdm.service"), Session),
        (Exact("slim.service"), Session),
        (Exact("greetd.service"), Session),
        (Exact("ly.service"), Session),
        (Exact("nodm.service"), Session),
        (Exact("entrance.service"), Session),
        (Exact("cosmic-greeter.service"), Session),
        (Exact("plasmalogin.service"), Session),
        (Exact("systemd-logind.service"), Session),
        (Exact("dbus.service"), Session),
        (Exact("dbus.socket"), Session),
        (Exact("dbus-broker.service"), Session),
        (Exact("messagebus.service"), Session),
        (Exact("console-getty.service"), Session),
        (Exact("user.slice"), Session),
        (Instances("user@", ".service"), Session),
        (Instances("user-runtime-dir@", ".service"), Session),
        (Instances("getty@", ".service"), Session),
        (Instances("serial-getty@", ".service"), Session),
        (Instances("autovt@", ".service"), Session),
        (Instances("container-getty@", ".service"), Session),
        (Prefixed("user-", ".slice"), Session),
        (Exact("debug-shell.service"), RootShell),
        (Prefixed("lifeline-", ".service"), Lifeline),
    ]
};

/// Why `unit` is refused as a parameter value, if it is.
pub fn unit_hazard(unit: &str) -> Option<UnitHazard> {
    CRITICAL_UNITS
        .iter()
        .find(|(pattern, _)| pattern.matches(unit))
        .map(|&(_, hazard)| hazard)
}

/// One name for every entry of the refusal list, with its hazard: what the catalog lint tries
/// against free-form parameters.
pub(crate) fn critical_unit_examples() -> impl Iterator<Item = (String, UnitHazard)> {
    CRITICAL_UNITS
        .iter()
        .map(|&(pattern, hazard)| (pattern.example(), hazard))
}

/// Programs whose end ends desktop or console sessions (or the machine's remote support), by
/// process name as the kernel reports it (`/proc/PID/comm`, cut to 15 bytes). The agent refuses
/// a `pid` parameter that names one of them, and the catalog lint tries them against free-form
/// parameters of `pkill` and `killall`.
pub const SESSION_PROCESSES: &[&str] = &[
    "systemd",
    "systemd-logind",
    "dbus-daemon",
    "dbus-broker",
    "dbus-broker-lau",
    "Xorg",
    "X",
    "Xwayland",
    "gnome-shell",
    "gnome-session-b",
    "gnome-session",
    "mutter",
    "kwin_wayland",
    "kwin_x11",
    "ksmserver",
    "plasma_session",
    "startplasma-way",
    "startplasma-x11",
    "xfce4-session",
    "mate-session",
    "cinnamon-sessio",
    "lxsession",
    "lxqt-session",
    "budgie-wm",
    "sway",
    "Hyprland",
    "weston",
    "labwc",
    "cosmic-comp",
    "cosmic-session",
    "gdm",
    "gdm3",
    "gdm-session-wor",
    "gdm-wayland-ses",
    "gdm-x-session",
    "sddm",
    "sddm-helper",
    "lightdm",
    "greetd",
    "xdm",
    "login",
    "agetty",
    "lifeline-agent",
];

/// Whether a process of this name is one of [`SESSION_PROCESSES`].
pub fn is_session_process(comm: &str) -> bool {
    SESSION_PROCESSES.contains(&comm)
}

/// Checks a `unit` or `service` value: a unit name, not on the refusal list, and for `service`
/// one that ends in `.service`.
fn check_unit(value: &str, services_only: bool) -> Result<String, String> {
    let unit = value.parse::<UnitName>()?;
    if let Some(hazard) = unit_hazard(&unit.0) {
        return Err(format!(
            "{} is refused: {}; a catalog offers that, if at all, as its own action",
            quoted(value),
            hazard.describe()
        ));
    }
    if services_only && !unit.0.ends_with(".service") {
        return Err(format!(
            "{} is not a service: this parameter takes only names ending in .service",
            quoted(value)
        ));
    }
    Ok(unit.0)
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
        /// `pattern`'s syntax tree between start and end anchors (see [`ParamType::string`]).
        regex: Regex,
        max_len: usize,
    },
    /// A systemd unit name ([`UnitName`]) that is not on the refusal list ([`unit_hazard`]).
    Unit,
    /// Like `Unit`, but only `.service` units: what an action that restarts "a service" takes.
    Service,
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
            (ParamType::Unit, ParamType::Unit)
            | (ParamType::Service, ParamType::Service)
            | (ParamType::Pid, ParamType::Pid) => true,
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
            ParamType::Service => "service",
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
            ParamType::Unit => {
                "a systemd unit name, e.g. nginx.service (not power, rescue or session units)"
                    .to_owned()
            }
            ParamType::Service => {
                "a systemd service name, e.g. cups.service (not power, rescue or session units)"
                    .to_owned()
            }
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

    /// Checks a `string` declaration and compiles its pattern so that it only ever matches a
    /// value as a whole.
    ///
    /// The pattern is parsed on its own, so it must be a complete regular expression: `[a-z]+)|(.*`
    /// does not parse, instead of turning into `^([a-z]+)|(.*)$` (which accepts anything) the way
    /// pasting anchors around the text would. The parsed tree is then placed between a start-of-text
    /// and an end-of-text anchor as one concatenation, and the matcher is built from that tree:
    /// whatever alternations or flags the pattern holds, a match must span the whole value (and
    /// `a|ab` accepts `ab`, because the end anchor is part of what each branch must reach).
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
        let regex = whole_match_regex(&pattern).map_err(|reason| {
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
                if value.starts_with('-') && *min >= 0 {
                    return Err(format!(
                        "{} starts with -: this parameter takes no negative numbers, and a \
                         program could take it for an option",
                        quoted(value)
                    ));
                }
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
            ParamType::Unit => check_unit(value, false),
            ParamType::Service => check_unit(value, true),
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

/// Compiles `pattern` into a matcher that accepts only whole values: the pattern's own syntax
/// tree, concatenated between `\A` and `\z` anchors as tree nodes (no text is pasted around it).
fn whole_match_regex(pattern: &str) -> Result<Regex, String> {
    let one_line = |text: String| {
        // The parser's error draws the pattern over several lines; keep the last one.
        let last = text.lines().last().unwrap_or("invalid").trim();
        last.strip_prefix("error: ").unwrap_or(last).to_owned()
    };
    let hir = regex_syntax::ParserBuilder::new()
        .nest_limit(PATTERN_NEST_LIMIT)
        .build()
        .parse(pattern)
        .map_err(|e| one_line(e.to_string()))?;
    let whole = Hir::concat(vec![Hir::look(Look::Start), hir, Hir::look(Look::End)]);
    Regex::builder()
        .configure(
            meta::Config::new()
                .nfa_size_limit(Some(PATTERN_SIZE_LIMIT))
                .onepass_size_limit(Some(PATTERN_SIZE_LIMIT))
                .hybrid_cache_capacity(PATTERN_SIZE_LIMIT * 2)
                .dfa_size_limit(Some(PATTERN_SIZE_LIMIT)),
        )
        .build_from_hir(&whole)
        .map_err(|e| one_line(e.to_string()))
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

    /// `(name, prefix, suffix)` when the element is `prefix{name}suffix` with exactly one
    /// placeholder: what the catalog lint needs to aim a value at a whole argument.
    pub(crate) fn single_placeholder(&self) -> Option<(&ParamName, String, String)> {
        let mut name = None;
        let (mut prefix, mut suffix) = (String::new(), String::new());
        for segment in &self.segments {
            match (segment, name) {
                (Segment::Param(p), None) => name = Some(p),
                (Segment::Param(_), Some(_)) => return None,
                (Segment::Literal(text), None) => prefix.push_str(text),
                (Segment::Literal(text), Some(_)) => suffix.push_str(text),
            }
        }
        name.map(|name| (name, prefix, suffix))
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

    /// Every code point of a Unicode class, read from regex-syntax's Unicode tables (an
    /// independent source for the hand-written table in `is_forbidden_char`).
    fn unicode_class(class: &str) -> Vec<char> {
        use regex_syntax::hir::{Class, HirKind};
        let hir = regex_syntax::parse(class).unwrap();
        match hir.kind() {
            HirKind::Class(Class::Unicode(set)) => {
                set.iter().flat_map(|r| r.start()..=r.end()).collect()
            }
            // A class of one code point comes back as that literal.
            HirKind::Literal(literal) => std::str::from_utf8(&literal.0).unwrap().chars().collect(),
            other => panic!("{class} is {other:?}"),
        }
    }

    #[test]
    fn every_invisible_format_or_control_character_is_forbidden() {
        let mut checked = 0;
        for class in [
            r"\p{Cf}",
            r"\p{Cc}",
            r"\p{Zl}",
            r"\p{Zp}",
            r"\p{Default_Ignorable_Code_Point}",
        ] {
            for c in unicode_class(class) {
                assert!(
                    is_forbidden_char(c),
                    "{class}: {} is allowed",
                    code_point(c)
                );
                checked += 1;
            }
        }
        assert!(checked > 4000, "{checked}");
        // The ones named in the threat model, one by one.
        for c in [
            '\u{00AD}',  // soft hyphen
            '\u{061C}',  // Arabic letter mark
            '\u{115F}',  // Hangul choseong filler
            '\u{1160}',  // Hangul jungseong filler
            '\u{180E}',  // Mongolian vowel separator
            '\u{200B}',  // zero-width space
            '\u{200D}',  // zero-width joiner
            '\u{200E}',  // left-to-right mark
            '\u{2028}',  // line separator
            '\u{202E}',  // right-to-left override
            '\u{2060}',  // word joiner
            '\u{2066}',  // left-to-right isolate
            '\u{2069}',  // pop directional isolate
            '\u{3164}',  // Hangul filler
            '\u{FE0F}',  // variation selector 16
            '\u{FEFF}',  // byte-order mark
            '\u{FFA0}',  // halfwidth Hangul filler
            '\u{FFF9}',  // interlinear annotation anchor
            '\u{E0001}', // language tag
            '\u{E0041}', // tag latin capital letter A
            '\u{E0100}', // variation selector 17
            '\u{0085}',  // next line (C1)
            '\u{007F}',  // delete
        ] {
            assert!(is_forbidden_char(c), "{} is allowed", code_point(c));
            let value = format!("ab{c}cd");
            let err = ParamType::string("(?s).*".into(), 64)
                .unwrap()
                .check(&value)
                .unwrap_err();
            assert!(err.contains(&code_point(c)), "{err}");
        }
        // Visible text stays allowed: letters of every script, symbols, emoji, spaces.
        for ok in "aZ09 -_.,;:/@+=~()[]{}éßøłЖжΩأ中文あ한❤✓€ \u{00A0}".chars() {
            assert!(!is_forbidden_char(ok), "{} is refused", code_point(ok));
        }
    }

    #[test]
    fn a_pattern_matches_the_whole_value_whatever_it_holds() {
        // Text that only works when pasted between ^( and )$ is not a pattern.
        for bad in ["[a-z]+)|(.*", "a)|(b", ")", "(a", "[a-z]+$)|(^.*"] {
            let err = ParamType::string(bad.into(), 64).unwrap_err();
            assert!(err.contains("not a valid regex"), "{bad}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let check = |pattern: &str, value: &str| {
            ParamType::string(pattern.into(), 64)
                .unwrap()
                .check(value)
                .is_ok()
        };
        // Leftmost-first alternation: `a` matching first does not stop `ab` from matching whole.
        assert!(check("a|ab", "a"));
        assert!(check("a|ab", "ab"));
        assert!(!check("a|ab", "abc"));
        assert!(!check("a|ab", "ba"));
        // Each branch is anchored at both ends, not just the first and the last.
        assert!(check("[a-z]+|[0-9]+", "123"));
        assert!(!check("[a-z]+|[0-9]+", "abc123"));
        assert!(!check("[a-z]+|[0-9]+", "123; reboot"));
        // Multi-line mode and the pattern's own anchors do not loosen the whole match.
        assert!(!check("(?m)^[a-z]+$", "abc def"));
        assert!(!check("x*", "y"));
        assert!(check("x*", "xxx"));
        let ParamType::String { regex, .. } = ParamType::string("(?m)a$".into(), 64).unwrap()
        else {
            panic!("a string type");
        };
        assert!(regex.is_match("a"));
        assert!(!regex.is_match("a\nb"));
        assert!(!regex.is_match("b\na"));
    }

    #[test]
    fn an_integer_starts_with_minus_only_when_its_range_is_negative() {
        let positive = ParamType::integer(0, 100).unwrap();
        for bad in ["-0", "-1", "-00", "+1", "01", " 1", "1 "] {
            assert!(positive.check(bad).is_err(), "{bad:?}");
        }
        let err = positive.check("-0").unwrap_err();
        assert!(err.contains("starts with -"), "{err}");
        let err = positive.check("-1").unwrap_err();
        assert!(err.contains("starts with -"), "{err}");
        assert_eq!(positive.check("0").unwrap(), "0");

        let signed = ParamType::integer(-10, 10).unwrap();
        assert_eq!(signed.check("-10").unwrap(), "-10");
        assert_eq!(signed.check("-0").unwrap(), "0");
        assert!(signed.check("-11").is_err());
    }

    #[test]
    fn the_unit_type_refuses_power_rescue_and_session_units_by_name() {
        let cases: &[(&str, UnitHazard)] = &[
            ("reboot.target", UnitHazard::Power),
            ("poweroff.target", UnitHazard::Power),
            ("halt.target", UnitHazard::Power),
            ("kexec.target", UnitHazard::Power),
            ("soft-reboot.target", UnitHazard::Power),
            ("shutdown.target", UnitHazard::Power),
            ("suspend.target", UnitHazard::Power),
            ("hibernate.target", UnitHazard::Power),
            ("hybrid-sleep.target", UnitHazard::Power),
            ("suspend-then-hibernate.target", UnitHazard::Power),
            ("ctrl-alt-del.target", UnitHazard::Power),
            ("exit.target", UnitHazard::Power),
            ("runlevel0.target", UnitHazard::Power),
            ("runlevel6.target", UnitHazard::Power),
            ("systemd-reboot.service", UnitHazard::Power),
            ("systemd-suspend.service", UnitHazard::Power),
            ("rescue.target", UnitHazard::SystemState),
            ("emergency.target", UnitHazard::SystemState),
            ("rescue.service", UnitHazard::SystemState),
            ("default.target", UnitHazard::SystemState),
            ("graphical.target", UnitHazard::SystemState),
            ("multi-user.target", UnitHazard::SystemState),
            ("runlevel3.target", UnitHazard::SystemState),
            ("display-manager.service", UnitHazard::Session),
            ("gdm.service", UnitHazard::Session),
            ("gdm3.service", UnitHazard::Session),
            ("sddm.service", UnitHazard::Session),
            ("lightdm.service", UnitHazard::Session),
            ("systemd-logind.service", UnitHazard::Session),
            ("dbus.service", UnitHazard::Session),
            ("dbus-broker.service", UnitHazard::Session),
            ("user@1000.service", UnitHazard::Session),
            ("user-runtime-dir@1000.service", UnitHazard::Session),
            ("getty@tty1.service", UnitHazard::Session),
            ("serial-getty@ttyS0.service", UnitHazard::Session),
            ("autovt@tty2.service", UnitHazard::Session),
            ("user-1000.slice", UnitHazard::Session),
            ("user.slice", UnitHazard::Session),
            ("debug-shell.service", UnitHazard::RootShell),
            ("lifeline-agent.service", UnitHazard::Lifeline),
            ("lifeline-agent-desktop.service", UnitHazard::Lifeline),
        ];
        for &(unit, hazard) in cases {
            assert_eq!(unit_hazard(unit), Some(hazard), "{unit}");
            for ty in [ParamType::Unit, ParamType::Service] {
                let Err(err) = ty.check(unit) else {
                    panic!("{} accepted {unit}", ty.type_name());
                };
                assert!(err.contains(unit), "{err}");
                assert!(err.contains(hazard.describe()), "{err}");
            }
        }
        for ok in [
            "cups.service",
            "nginx.service",
            "NetworkManager.service",
            "systemd-timesyncd.service",
            "sshd.service",
            "getty-helper.service",
            "user.service",
            "userdb.socket",
            "fstrim.timer",
            "printer.target",
        ] {
            assert_eq!(unit_hazard(ok), None, "{ok}");
            assert_eq!(ParamType::Unit.check(ok).unwrap(), ok);
        }
        assert_eq!(
            ParamType::Service.check("cups.service").unwrap(),
            "cups.service"
        );
        for not_a_service in [
            "cups.socket",
            "fstrim.timer",
            "printer.target",
            "home.mount",
        ] {
            let err = ParamType::Service.check(not_a_service).unwrap_err();
            assert!(err.contains("not a service"), "{err}");
        }
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

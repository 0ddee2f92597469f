//! The catalog lint: a parameter that reaches, at a lower risk, what another action guards.
//!
//! A catalog can hold `reboot` at high risk with consent and, next to it, a medium action whose
//! parameter happens to accept `reboot.target` or `gdm.service`: the parameter then bypasses the
//! approval and the consent the admin meant for rebooting. The parameter types refuse the units
//! and processes that do this ([`unit_hazard`](super::unit_hazard),
//! [`SESSION_PROCESSES`](super::SESSION_PROCESSES)), but `enum` values, `string` patterns and
//! `integer` ranges are the admin's own, so `catalog sign` runs this lint and prints what it
//! finds.
//!
//! How it works: for every parameter it tries the values that matter (every refused unit, the
//! power and session verbs of `systemctl` and `loginctl`, run levels, process ids and session
//! process names), keeps those the parameter's own type accepts, puts each into the action's
//! argument vector and asks what the resulting command does. The programs it understands:
//! `systemctl`, `loginctl`, `shutdown`/`reboot`/`poweroff`/`halt`/`kexec`, `init`/`telinit`,
//! `kill`, `pkill`, `killall`. A warning names the action, the parameter, a value that does it,
//! and the stricter action it sidesteps. It is a pure function of the catalog: no I/O.

use std::fmt;

use super::params::{ParamType, SESSION_PROCESSES, UnitHazard, critical_unit_examples};
use super::{Action, ActionId, Catalog, ParamName, Risk, UNIT_SUFFIXES, unit_hazard};

/// What a command does to the people at the machine, as far as the lint can tell. Ordered: each
/// includes the ones before it (rebooting also ends every session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Effect {
    /// Ends desktop or console sessions.
    EndsSessions,
    /// Switches the whole system to rescue mode or another target.
    ChangesSystemState,
    /// Reboots, powers off, halts or suspends the machine.
    Power,
}

impl Effect {
    pub fn describe(self) -> &'static str {
        match self {
            Effect::EndsSessions => "ends desktop or login sessions",
            Effect::ChangesSystemState => {
                "switches the whole system to rescue mode or another target, ending every session"
            }
            Effect::Power => "reboots, powers off or suspends the machine",
        }
    }

    fn of_unit(hazard: UnitHazard) -> Option<Effect> {
        match hazard {
            UnitHazard::Power => Some(Effect::Power),
            UnitHazard::SystemState => Some(Effect::ChangesSystemState),
            UnitHazard::Session => Some(Effect::EndsSessions),
            UnitHazard::RootShell | UnitHazard::Lifeline => None,
        }
    }
}

/// One finding of [`lint`]: `param` of `action` accepts `value`, which makes the action do
/// `effect`; `guarded_by` does that on purpose and asks for more (higher risk, or consent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintWarning {
    pub action: ActionId,
    pub param: ParamName,
    /// A value the parameter's type accepts that has the effect.
    pub value: String,
    pub effect: Effect,
    pub risk: Risk,
    pub consent: bool,
    pub guarded_by: ActionId,
    pub guarded_risk: Risk,
    pub guarded_consent: bool,
}

impl fmt::Display for LintWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let consent = |c: bool| if c { "with consent" } else { "without consent" };
        write!(
            f,
            "action {}, parameter {}: the value {:?} {}, which action {} guards with {} risk {}, \
             but this action is {} risk {}; narrow the parameter or raise this action's risk \
             and consent",
            self.action,
            self.param,
            self.value,
            self.effect.describe(),
            self.guarded_by,
            self.guarded_risk,
            consent(self.guarded_consent),
            self.risk,
            consent(self.consent),
        )
    }
}

/// Every parameter of `catalog` that reaches, at a lower risk or without consent, an effect that
/// another action of the catalog has with a higher risk or with consent. Sorted by action and
/// parameter; at most one warning per parameter (the strongest effect, the strictest action).
pub fn lint(catalog: &Catalog) -> Vec<LintWarning> {
    let fixed: Vec<(&Action, Option<Effect>)> = catalog
        .actions()
        .iter()
        .map(|action| (action, fixed_effect(action)))
        .collect();
    let mut warnings = Vec::new();
    for &(action, _) in &fixed {
        for (name, ty) in action.params() {
            let Some((effect, value)) = reach(action, name, ty) else {
                continue;
            };
            let stricter = fixed
                .iter()
                .filter(|(other, other_effect)| {
                    other.id() != action.id()
                        && other_effect.is_some_and(|e| e >= effect)
                        && (other.risk() > action.risk() || (other.consent() && !action.consent()))
                })
                .max_by_key(|(other, _)| (other.risk(), other.consent()));
            if let Some((guard, _)) = stricter {
                warnings.push(LintWarning {
                    action: action.id().clone(),
                    param: name.clone(),
                    value,
                    effect,
                    risk: action.risk(),
                    consent: action.consent(),
                    guarded_by: guard.id().clone(),
                    guarded_risk: guard.risk(),
                    guarded_consent: guard.consent(),
                });
            }
        }
    }
    warnings
}

/// One argument of a command under study: known text, or the value of another parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Arg {
    Known(String),
    Unknown,
}

/// What the action does with its fixed arguments alone (every parameter unknown).
fn fixed_effect(action: &Action) -> Option<Effect> {
    let args: Vec<Arg> = action
        .args()
        .iter()
        .map(|arg| {
            if arg.params().next().is_none() {
                Arg::Known(arg.as_str().replace("{{", "{").replace("}}", "}"))
            } else {
                Arg::Unknown
            }
        })
        .collect();
    effect_of(action.program(), &args)
}

/// Values worth trying against a parameter: anything that, in some argument position of some
/// program the lint knows, has an effect.
fn candidates() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (unit, _) in critical_unit_examples() {
        // systemctl reads a name without a type suffix as a service: `rescue` is rescue.service.
        if let Some(stem) = unit.strip_suffix(".service") {
            out.push(stem.to_owned());
        }
        out.push(unit);
    }
    for verb in SYSTEMCTL_POWER_VERBS
        .iter()
        .chain(SYSTEMCTL_STATE_VERBS)
        .chain(LOGINCTL_POWER_VERBS)
        .chain(LOGINCTL_SESSION_VERBS)
    {
        out.push((*verb).to_owned());
    }
    for runlevel in ["0", "1", "6", "s", "S", "-1", "1000"] {
        out.push(runlevel.to_owned());
    }
    out.extend(SESSION_PROCESSES.iter().map(|p| (*p).to_owned()));
    // Harmless names, for verbs and options that do harm with any name at all (`isolate`,
    // `pkill -u`, `loginctl terminate-session`).
    for plain in [
        ".",
        "example",
        "example.service",
        "example.target",
        "alice",
        "c1",
    ] {
        out.push(plain.to_owned());
    }
    out
}

/// The strongest effect `name` of `action` can have, with a value that has it.
fn reach(action: &Action, name: &ParamName, ty: &ParamType) -> Option<(Effect, String)> {
    if matches!(ty, ParamType::Pid) {
        // The agent refuses, on the machine, a pid that is PID 1, a kernel thread, the agent,
        // a login session's leader or one of SESSION_PROCESSES: only it sees the process table.
        return None;
    }
    let mut best: Option<(Effect, String)> = None;
    for candidate in candidates() {
        for template in action.args() {
            let Some((param, prefix, suffix)) = template.single_placeholder() else {
                continue;
            };
            if param != name {
                continue;
            }
            let Some(value) = candidate
                .strip_prefix(prefix.as_str())
                .and_then(|rest| rest.strip_suffix(suffix.as_str()))
            else {
                continue;
            };
            let Ok(checked) = ty.check(value) else {
                continue;
            };
            let args: Vec<Arg> = action
                .args()
                .iter()
                .map(|arg| match arg.single_placeholder() {
                    Some((p, pre, post)) if p == name => {
                        Arg::Known(format!("{pre}{checked}{post}"))
                    }
                    _ if arg.params().next().is_none() => {
                        Arg::Known(arg.as_str().replace("{{", "{").replace("}}", "}"))
                    }
                    _ => Arg::Unknown,
                })
                .collect();
            if let Some(effect) = effect_of(action.program(), &args)
                && best.as_ref().is_none_or(|(e, _)| effect > *e)
            {
                best = Some((effect, checked.clone()));
            }
        }
    }
    best
}

const SYSTEMCTL_POWER_VERBS: &[&str] = &[
    "reboot",
    "poweroff",
    "halt",
    "kexec",
    "soft-reboot",
    "suspend",
    "hibernate",
    "hybrid-sleep",
    "suspend-then-hibernate",
    "sleep",
    "exit",
    "switch-root",
];
const SYSTEMCTL_STATE_VERBS: &[&str] = &["rescue", "emergency", "default", "isolate"];
/// systemctl verbs that only read: a unit named after them is looked at, not touched.
const SYSTEMCTL_READ_VERBS: &[&str] = &[
    "status",
    "show",
    "cat",
    "help",
    "list-units",
    "list-unit-files",
    "list-sockets",
    "list-timers",
    "list-jobs",
    "list-dependencies",
    "list-automounts",
    "list-paths",
    "is-active",
    "is-enabled",
    "is-failed",
    "is-system-running",
    "show-environment",
    "get-default",
    "whoami",
];
const LOGINCTL_POWER_VERBS: &[&str] = &[
    "poweroff",
    "reboot",
    "halt",
    "kexec",
    "suspend",
    "hibernate",
    "hybrid-sleep",
    "suspend-then-hibernate",
    "sleep",
];
const LOGINCTL_SESSION_VERBS: &[&str] = &[
    "terminate-session",
    "terminate-user",
    "terminate-seat",
    "kill-session",
    "kill-user",
];
/// Options of systemctl and loginctl that take the next argument as their value.
const CTL_VALUE_OPTIONS: &[&str] = &[
    "-H",
    "-M",
    "-t",
    "-p",
    "-P",
    "-s",
    "-n",
    "-o",
    "--host",
    "--machine",
    "--type",
    "--property",
    "--signal",
    "--lines",
    "--output",
    "--root",
    "--image",
    "--job-mode",
    "--kill-whom",
    "--kill-value",
    "--what",
    "--state",
    "--reboot-argument",
    "--boot-loader-entry",
    "--boot-loader-menu",
    "--message",
    "--timestamp",
    "--when",
    "--drop-in",
];
/// Options of pkill and killall that select processes by user, session, terminal or group:
/// whatever follows them can name everything a person runs.
const KILL_SELECTORS: &[&str] = &[
    "-u",
    "-U",
    "-s",
    "-t",
    "-g",
    "-G",
    "-P",
    "--euid",
    "--uid",
    "--session",
    "--terminal",
    "--pgroup",
    "--group",
    "--parent",
    "--user",
];

/// The positional arguments (not options, not option values), in order; `None` stands for an
/// argument whose text is unknown. Stops at the first unknown argument in an option position,
/// since from there on positions are guesses.
fn positionals<'a>(args: &'a [Arg], value_options: &[&str]) -> Vec<Option<&'a str>> {
    let mut out = Vec::new();
    let mut skip_next = false;
    for arg in args {
        if skip_next {
            skip_next = false;
            continue;
        }
        match arg {
            Arg::Known(text) if text == "--" => {}
            Arg::Known(text) if text.starts_with('-') && text.len() > 1 => {
                skip_next = value_options.contains(&text.as_str());
            }
            Arg::Known(text) => out.push(Some(text.as_str())),
            Arg::Unknown => out.push(None),
        }
    }
    out
}

/// The unit systemctl acts on for a name: names without a unit type are services.
fn unit_for(name: &str) -> String {
    let typed = name
        .rsplit_once('.')
        .is_some_and(|(_, suffix)| UNIT_SUFFIXES.contains(&suffix) || suffix == "scope");
    if typed {
        name.to_owned()
    } else {
        format!("{name}.service")
    }
}

/// What running `program` with `args` does, as far as the lint knows.
fn effect_of(program: &str, args: &[Arg]) -> Option<Effect> {
    let base = program.rsplit(['/', '\\']).next().unwrap_or(program);
    let base = base.to_ascii_lowercase();
    match base.as_str() {
        "systemctl" => {
            let positional = positionals(args, CTL_VALUE_OPTIONS);
            let (verb, rest) = positional.split_first()?;
            let verb = (*verb)?;
            if SYSTEMCTL_POWER_VERBS.contains(&verb) {
                return Some(Effect::Power);
            }
            if matches!(verb, "rescue" | "emergency" | "default") {
                return Some(Effect::ChangesSystemState);
            }
            if SYSTEMCTL_READ_VERBS.contains(&verb) {
                return None;
            }
            let units = rest.iter().flatten().map(|name| unit_for(name));
            let strongest = units
                .filter_map(|unit| unit_hazard(&unit).and_then(Effect::of_unit))
                .max();
            if verb == "isolate" && !rest.is_empty() {
                // Isolating any target stops every unit it does not need.
                return Some(strongest.map_or(Effect::ChangesSystemState, |e| {
                    e.max(Effect::ChangesSystemState)
                }));
            }
            strongest
        }
        "loginctl" => {
            let positional = positionals(args, CTL_VALUE_OPTIONS);
            let verb = (*positional.first()?)?;
            if LOGINCTL_POWER_VERBS.contains(&verb) {
                Some(Effect::Power)
            } else if LOGINCTL_SESSION_VERBS.contains(&verb) {
                Some(Effect::EndsSessions)
            } else {
                None
            }
        }
        "shutdown" | "reboot" | "poweroff" | "halt" | "kexec" => Some(Effect::Power),
        "init" | "telinit" => {
            let positional = positionals(args, &[]);
            match (*positional.first()?)? {
                "0" | "6" => Some(Effect::Power),
                "1" | "2" | "3" | "4" | "5" | "s" | "S" | "emergency" | "rescue" => {
                    Some(Effect::ChangesSystemState)
                }
                _ => None,
            }
        }
        "kill" => {
            // Every argument after an optional signal is a pid; `-1` is every process.
            let mut rest = args;
            if let Some((Arg::Known(first), tail)) = rest.split_first()
                && first.starts_with('-')
                && rest.len() > 1
            {
                rest = tail;
                if matches!(first.as_str(), "-s" | "-n" | "--signal") {
                    rest = rest.get(1..).unwrap_or_default();
                }
            }
            rest.iter()
                .any(|arg| match arg {
                    Arg::Known(text) => {
                        let digits = text.strip_prefix('-').unwrap_or(text);
                        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
                    }
                    Arg::Unknown => false,
                })
                .then_some(Effect::EndsSessions)
        }
        "pkill" | "killall" | "skill" => {
            let mut after_selector = false;
            let mut hits = false;
            for arg in args {
                let Arg::Known(text) = arg else {
                    after_selector = false;
                    continue;
                };
                if after_selector {
                    hits = true;
                }
                after_selector = KILL_SELECTORS.contains(&text.as_str());
                if text.starts_with('-') {
                    continue;
                }
                // pkill takes a pattern: `.` is every process; a session process by name.
                let is_pattern = base == "pkill" && text.contains(['.', '*', '^', '$', '|', '[']);
                if is_pattern
                    || SESSION_PROCESSES
                        .iter()
                        .any(|p| p.eq_ignore_ascii_case(text))
                {
                    hits = true;
                }
            }
            hits.then_some(Effect::EndsSessions)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::EXAMPLE;
    use super::*;

    /// A catalog of `reboot` (high, consent) and one more action.
    fn with_reboot(action: &str) -> Catalog {
        let text = format!(
            "version = 1\n\
             [[action]]\nid = \"reboot\"\ntitle = \"Reboot\"\ndescription = \"d\"\n\
             program = \"/usr/bin/systemctl\"\nargs = [\"reboot\"]\ntimeout_secs = 60\n\
             output_limit_bytes = 100\nrisk = \"high\"\nconsent = true\nos = [\"linux\"]\n\
             [[action]]\nid = \"probe\"\ntitle = \"Probe\"\ndescription = \"d\"\n\
             timeout_secs = 60\noutput_limit_bytes = 100\nos = [\"linux\"]\n{action}"
        );
        Catalog::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn warned(catalog: &Catalog) -> Vec<(String, String, Effect)> {
        lint(catalog)
            .into_iter()
            .map(|w| (w.action.to_string(), w.param.to_string(), w.effect))
            .collect()
    }

    #[test]
    fn the_example_catalog_lints_clean() {
        let catalog = Catalog::from_toml(EXAMPLE).unwrap();
        assert_eq!(lint(&catalog), []);
    }

    #[test]
    fn a_free_form_unit_parameter_that_can_reboot_is_reported() {
        let catalog = with_reboot(
            "program = \"/usr/bin/systemctl\"\nargs = [\"restart\", \"{unit}\"]\n\
             risk = \"medium\"\nconsent = false\n\
             [action.params.unit]\ntype = \"string\"\npattern = \"[a-z.@-]+\"\nmax_len = 64\n",
        );
        let warnings = lint(&catalog);
        assert_eq!(
            warned(&catalog),
            [("probe".into(), "unit".into(), Effect::Power)]
        );
        let text = warnings[0].to_string();
        for part in [
            "action probe, parameter unit",
            "reboot",
            "guards with high risk with consent",
            "medium risk without consent",
        ] {
            assert!(text.contains(part), "{text} lacks {part}");
        }
        // The value it names really passes the parameter's type.
        let probe = catalog.action("probe").unwrap();
        probe
            .validate_params([("unit", warnings[0].value.as_str())])
            .unwrap();
    }

    #[test]
    fn each_way_of_reaching_a_guarded_effect_is_reported() {
        let cases: &[(&str, Effect)] = &[
            // An enum that lists the display manager.
            (
                "program = \"/usr/bin/systemctl\"\nargs = [\"restart\", \"{unit}\"]\n\
                 [action.params.unit]\ntype = \"enum\"\nvalues = [\"cups.service\", \"gdm.service\"]\n",
                Effect::EndsSessions,
            ),
            // A name without a suffix is a service to systemctl: `rescue` is rescue.service.
            (
                "program = \"/usr/bin/systemctl\"\nargs = [\"start\", \"{name}\"]\n\
                 [action.params.name]\ntype = \"string\"\npattern = \"[a-z]+\"\nmax_len = 20\n",
                Effect::ChangesSystemState,
            ),
            // A verb parameter.
            (
                "program = \"/usr/bin/systemctl\"\nargs = [\"{verb}\", \"cups.service\"]\n\
                 [action.params.verb]\ntype = \"enum\"\nvalues = [\"restart\", \"poweroff\"]\n",
                Effect::Power,
            ),
            // isolate with any target.
            (
                "program = \"/usr/bin/systemctl\"\nargs = [\"isolate\", \"{unit}\"]\n\
                 [action.params.unit]\ntype = \"unit\"\n",
                Effect::ChangesSystemState,
            ),
            // A prefix and suffix around the placeholder.
            (
                "program = \"/usr/bin/systemctl\"\nargs = [\"stop\", \"{dm}.service\"]\n\
                 [action.params.dm]\ntype = \"string\"\npattern = \"gdm|sddm|cups\"\nmax_len = 20\n",
                Effect::EndsSessions,
            ),
            // loginctl with a session verb.
            (
                "program = \"/usr/bin/loginctl\"\nargs = [\"{verb}\", \"c1\"]\n\
                 [action.params.verb]\ntype = \"enum\"\nvalues = [\"show-session\", \"terminate-session\"]\n",
                Effect::EndsSessions,
            ),
            // kill with an integer instead of a pid: no check on the machine.
            (
                "program = \"/bin/kill\"\nargs = [\"-TERM\", \"{n}\"]\n\
                 [action.params.n]\ntype = \"integer\"\nmin = 1\nmax = 99999\n",
                Effect::EndsSessions,
            ),
            // pkill with a free-form name.
            (
                "program = \"/usr/bin/pkill\"\nargs = [\"{name}\"]\n\
                 [action.params.name]\ntype = \"string\"\npattern = \"[A-Za-z_-]+\"\nmax_len = 20\n",
                Effect::EndsSessions,
            ),
            // pkill of everything a user runs.
            (
                "program = \"/usr/bin/pkill\"\nargs = [\"-u\", \"{user}\"]\n\
                 [action.params.user]\ntype = \"string\"\npattern = \"[a-z]+\"\nmax_len = 20\n",
                Effect::EndsSessions,
            ),
            // telinit with a run level.
            (
                "program = \"/sbin/telinit\"\nargs = [\"{level}\"]\n\
                 [action.params.level]\ntype = \"integer\"\nmin = 0\nmax = 6\n",
                Effect::Power,
            ),
        ];
        for (action, effect) in cases {
            let catalog = with_reboot(&format!("risk = \"medium\"\nconsent = false\n{action}"));
            let got = warned(&catalog);
            assert_eq!(got.len(), 1, "{action}: {got:?}");
            assert_eq!(got[0].0, "probe");
            assert_eq!(got[0].2, *effect, "{action}");
        }
    }

    #[test]
    fn safe_or_equally_guarded_parameters_are_not_reported() {
        let cases = [
            // The unit and service types refuse every hazardous unit.
            "risk = \"medium\"\nconsent = false\nprogram = \"/usr/bin/systemctl\"\n\
             args = [\"restart\", \"{unit}\"]\n[action.params.unit]\ntype = \"unit\"\n",
            "risk = \"medium\"\nconsent = false\nprogram = \"/usr/bin/systemctl\"\n\
             args = [\"stop\", \"{unit}\"]\n[action.params.unit]\ntype = \"service\"\n",
            // Reading is not touching.
            "risk = \"low\"\nconsent = false\nprogram = \"/usr/bin/systemctl\"\n\
             args = [\"status\", \"{unit}\"]\n[action.params.unit]\ntype = \"string\"\n\
             pattern = \"[a-z.]+\"\nmax_len = 64\n",
            "risk = \"low\"\nconsent = false\nprogram = \"/usr/bin/journalctl\"\n\
             args = [\"-u\", \"{unit}\"]\n[action.params.unit]\ntype = \"string\"\n\
             pattern = \"[a-z.]+\"\nmax_len = 64\n",
            // A pattern too narrow to name anything hazardous.
            "risk = \"medium\"\nconsent = false\nprogram = \"/usr/bin/systemctl\"\n\
             args = [\"restart\", \"{unit}\"]\n[action.params.unit]\ntype = \"string\"\n\
             pattern = \"cups|nginx|ssh\"\nmax_len = 64\n",
            // As strict as reboot: the admin's explicit choice.
            "risk = \"high\"\nconsent = true\nprogram = \"/usr/bin/systemctl\"\n\
             args = [\"restart\", \"{unit}\"]\n[action.params.unit]\ntype = \"enum\"\n\
             values = [\"gdm.service\"]\n",
            // kill with a pid: the agent refuses session processes on the machine.
            "risk = \"medium\"\nconsent = false\nprogram = \"/bin/kill\"\n\
             args = [\"-TERM\", \"{pid}\"]\n[action.params.pid]\ntype = \"pid\"\n",
        ];
        for action in cases {
            let catalog = with_reboot(action);
            assert_eq!(lint(&catalog), [], "{action}");
        }
    }

    #[test]
    fn without_a_stricter_action_there_is_nothing_to_bypass() {
        let text = "version = 1\n[[action]]\nid = \"restart-any\"\ntitle = \"t\"\n\
                    description = \"d\"\nprogram = \"/usr/bin/systemctl\"\n\
                    args = [\"restart\", \"{unit}\"]\ntimeout_secs = 60\n\
                    output_limit_bytes = 100\nrisk = \"medium\"\nconsent = false\n\
                    os = [\"linux\"]\n[action.params.unit]\ntype = \"string\"\n\
                    pattern = \"[a-z.]+\"\nmax_len = 64\n";
        assert_eq!(lint(&Catalog::from_toml(text).unwrap()), []);
        // Guarded like reboot: nothing to bypass, even though every value ends sessions.
        let catalog = with_reboot(
            "risk = \"high\"\nconsent = true\nprogram = \"/usr/bin/loginctl\"\n\
             args = [\"terminate-user\", \"{user}\"]\n[action.params.user]\ntype = \"string\"\n\
             pattern = \"[a-z]+\"\nmax_len = 20\n",
        );
        assert_eq!(lint(&catalog), []);
    }
}

//! `lifeline-agent hotkey [install]`: the help hotkey as a desktop shortcut, for Wayland.
//!
//! Wayland does not let applications grab keys, so there the desktop itself must run
//! `lifeline-agent help` on the hotkey. GNOME: a custom keybinding in
//! `org.gnome.settings-daemon.plugins.media-keys`, written with `gsettings` (takes effect at
//! once). KDE Plasma: a `.desktop` launcher in `~/.local/share/applications` and its
//! `_launch` shortcut in `kglobalshortcutsrc`, written with `kwriteconfig6`/`kwriteconfig5`
//! (Plasma reads it at the next login). Programs run through [`crate::exec::runner`] with the
//! desktop session's environment; GVariant lists are parsed and built here.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::hotkey::Hotkey;
use crate::exec::runner::{self, Limits, RunError};

const SCHEMA: &str = "org.gnome.settings-daemon.plugins.media-keys";
const LIST_KEY: &str = "custom-keybindings";
const BINDING_SCHEMA: &str = "org.gnome.settings-daemon.plugins.media-keys.custom-keybinding";
/// Our keybinding's path: a fixed name, so installing twice updates it instead of adding one.
pub const GNOME_PATH: &str =
    "/org/gnome/settings-daemon/plugins/media-keys/custom-keybindings/lifeline-help/";
/// Name of the KDE launcher (and its section in `kglobalshortcutsrc`).
pub const KDE_DESKTOP_FILE: &str = "lifeline-help.desktop";
const SHORTCUT_NAME: &str = "Lifeline: get help";
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ShortcutError {
    #[error(
        "{program} is not installed, so the {desktop} shortcut cannot be registered; set the shortcut by \
         hand in the desktop's keyboard settings: shortcut {hotkey}, command `{command}`"
    )]
    Missing {
        program: String,
        desktop: &'static str,
        hotkey: String,
        command: String,
    },
    #[error(
        "GNOME's shortcut settings ({SCHEMA}) are not installed here, so this is not a GNOME \
         desktop; set the shortcut by hand in the desktop's keyboard settings: shortcut {hotkey}, \
         command `{command}`"
    )]
    NoGnomeSchema { hotkey: String, command: String },
    #[error("{program} failed: {message}")]
    Failed { program: String, message: String },
    #[error(transparent)]
    Run(RunError),
    #[error("unexpected answer from gsettings: {0:?}")]
    Parse(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "unknown desktop {0:?}: shortcuts can be installed for GNOME and KDE (use --desktop \
         gnome|kde), or set one by hand that runs `lifeline-agent help`"
    )]
    UnknownDesktop(String),
    #[error("cannot find this program's path: {0}")]
    OwnPath(std::io::Error),
}

/// Desktops we can install a shortcut in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Desktop {
    Gnome,
    Kde,
}

impl Desktop {
    /// From `XDG_CURRENT_DESKTOP` (`ubuntu:GNOME`, `KDE`, ...).
    pub fn detect(current_desktop: &str) -> Option<Desktop> {
        let lower = current_desktop.to_ascii_lowercase();
        let parts: Vec<&str> = lower.split(':').collect();
        if parts
            .iter()
            .any(|p| matches!(*p, "gnome" | "gnome-classic" | "unity" | "budgie"))
        {
            Some(Desktop::Gnome)
        } else if parts.iter().any(|p| matches!(*p, "kde" | "plasma")) {
            Some(Desktop::Kde)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Desktop::Gnome => "GNOME",
            Desktop::Kde => "KDE",
        }
    }
}

/// The command the shortcut runs: this binary's path with `help`, quoted for GLib's and the
/// desktop-entry parser (both split on spaces and honour double quotes), with
/// `LIFELINE_AGENT_DIR` carried over when it is set.
pub fn help_command(exe: &Path, agent_dir: Option<&Path>) -> String {
    let quote = |text: &str| {
        if !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c))
        {
            text.to_owned()
        } else {
            let escaped = text
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('$', "\\$")
                .replace('`', "\\`");
            format!("\"{escaped}\"")
        }
    };
    let mut command = String::new();
    if let Some(dir) = agent_dir {
        let _ = write!(
            command,
            "env {} ",
            quote(&format!("LIFELINE_AGENT_DIR={}", dir.display()))
        );
    }
    let _ = write!(command, "{} help", quote(&exe.display().to_string()));
    command
}

/// Parses a GVariant string array as `gsettings get` prints it (`@as []`, `['/a/', '/b/']`).
pub fn parse_string_list(text: &str) -> Result<Vec<String>, ShortcutError> {
    let bad = || ShortcutError::Parse(text.to_owned());
    let body = text.trim();
    let body = body.strip_prefix("@as").unwrap_or(body).trim();
    let inner = body
        .strip_prefix('[')
        .and_then(|b| b.strip_suffix(']'))
        .ok_or_else(bad)?;
    let mut items = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let Some(open) = chars.next() else {
            return Ok(items);
        };
        if open != '\'' && open != '"' {
            return Err(bad());
        }
        let mut item = String::new();
        loop {
            match chars.next().ok_or_else(bad)? {
                '\\' => item.push(chars.next().ok_or_else(bad)?),
                c if c == open => break,
                c => item.push(c),
            }
        }
        items.push(item);
    }
}

/// A GVariant string (single-quoted, escaped).
pub fn gvariant_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A GVariant string array.
pub fn gvariant_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|i| gvariant_string(i)).collect();
    format!("[{}]", inner.join(", "))
}

/// The `gsettings` invocations that install our GNOME shortcut, given the current list.
pub fn gnome_install_commands(
    current: &[String],
    hotkey: &Hotkey,
    command: &str,
) -> Vec<Vec<String>> {
    let mut list = current.to_vec();
    if !list.iter().any(|p| p == GNOME_PATH) {
        list.push(GNOME_PATH.to_owned());
    }
    let relocatable = format!("{BINDING_SCHEMA}:{GNOME_PATH}");
    let set = |schema: &str, key: &str, value: String| {
        vec!["set".to_owned(), schema.to_owned(), key.to_owned(), value]
    };
    vec![
        set(&relocatable, "name", gvariant_string(SHORTCUT_NAME)),
        set(&relocatable, "command", gvariant_string(command)),
        set(
            &relocatable,
            "binding",
            gvariant_string(&hotkey.gnome_accelerator()),
        ),
        set(SCHEMA, LIST_KEY, gvariant_list(&list)),
    ]
}

/// Runs a desktop program; "not installed" becomes [`ShortcutError::Missing`].
fn run_program(
    program: &str,
    args: &[String],
    desktop: Desktop,
    hotkey: &Hotkey,
    command: &str,
) -> Result<String, ShortcutError> {
    let options = runner::Options::desktop(Limits::new(TIMEOUT, 64 * 1024));
    let out = runner::run_with(program, args, &options).map_err(|e| match e {
        RunError::NotFound { program } => ShortcutError::Missing {
            program,
            desktop: desktop.name(),
            hotkey: hotkey.to_string(),
            command: command.to_owned(),
        },
        other => ShortcutError::Run(other),
    })?;
    if desktop == Desktop::Gnome && out.stderr_text().contains("No such schema") {
        return Err(ShortcutError::NoGnomeSchema {
            hotkey: hotkey.to_string(),
            command: command.to_owned(),
        });
    }
    if out.timed_out || !out.status.success() {
        return Err(ShortcutError::Failed {
            program: program.to_owned(),
            message: if out.timed_out {
                "did not answer in time".to_owned()
            } else {
                out.stderr_line()
            },
        });
    }
    Ok(out.stdout_text())
}

/// Installs the GNOME shortcut with `gsettings` (the program name is a parameter for tests).
pub fn install_gnome(
    gsettings: &str,
    hotkey: &Hotkey,
    command: &str,
) -> Result<String, ShortcutError> {
    let get = ["get".to_owned(), SCHEMA.to_owned(), LIST_KEY.to_owned()];
    let current = parse_string_list(&run_program(
        gsettings,
        &get,
        Desktop::Gnome,
        hotkey,
        command,
    )?)?;
    for args in gnome_install_commands(&current, hotkey, command) {
        run_program(gsettings, &args, Desktop::Gnome, hotkey, command)?;
    }
    Ok(format!(
        "Registered the GNOME shortcut {hotkey} ({}) running `{command}`; it works now.",
        hotkey.gnome_accelerator()
    ))
}

/// The GNOME shortcut as installed now: (binding, command), or `None` when not installed.
pub fn gnome_state(gsettings: &str) -> Result<Option<(String, String)>, ShortcutError> {
    let hotkey = Hotkey::default();
    let get = ["get".to_owned(), SCHEMA.to_owned(), LIST_KEY.to_owned()];
    let list = parse_string_list(&run_program(gsettings, &get, Desktop::Gnome, &hotkey, "")?)?;
    if !list.iter().any(|p| p == GNOME_PATH) {
        return Ok(None);
    }
    let relocatable = format!("{BINDING_SCHEMA}:{GNOME_PATH}");
    let read = |key: &str| -> Result<String, ShortcutError> {
        let args = ["get".to_owned(), relocatable.clone(), key.to_owned()];
        let text = run_program(gsettings, &args, Desktop::Gnome, &hotkey, "")?;
        // A single string prints like a one-element list without the brackets.
        Ok(parse_string_list(&format!("[{}]", text.trim()))?
            .pop()
            .unwrap_or_default())
    };
    Ok(Some((read("binding")?, read("command")?)))
}

/// The KDE launcher file's contents.
pub fn kde_desktop_entry(command: &str) -> String {
    format!(
        "[Desktop Entry]\nType=Application\nName={SHORTCUT_NAME}\nExec={command}\n\
         NoDisplay=true\nX-KDE-GlobalAccel-CommandShortcut=true\n"
    )
}

/// Installs the KDE launcher and its shortcut.
pub fn install_kde(
    applications: &Path,
    hotkey: &Hotkey,
    command: &str,
) -> Result<String, ShortcutError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ShortcutError::Io { path, source }
    };
    std::fs::create_dir_all(applications).map_err(io(applications))?;
    let file = applications.join(KDE_DESKTOP_FILE);
    std::fs::write(&file, kde_desktop_entry(command)).map_err(io(&file))?;
    let args: Vec<String> = [
        "--file",
        "kglobalshortcutsrc",
        "--group",
        "services",
        "--group",
        KDE_DESKTOP_FILE,
        "--key",
        "_launch",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([hotkey.kde_shortcut()])
    .collect();
    let written = run_program("kwriteconfig6", &args, Desktop::Kde, hotkey, command);
    match written {
        Err(ShortcutError::Missing { .. }) => {
            run_program("kwriteconfig5", &args, Desktop::Kde, hotkey, command)?;
        }
        other => {
            other?;
        }
    }
    Ok(format!(
        "Registered the KDE shortcut {} running `{command}` ({}); Plasma picks it up at the \
         next login.",
        hotkey.kde_shortcut(),
        file.display()
    ))
}

/// `lifeline-agent hotkey install`: registers the shortcut with `desktop` (detected from
/// `XDG_CURRENT_DESKTOP` when not given). Returns what was done, for the user.
pub fn install(hotkey: &Hotkey, desktop: Option<Desktop>) -> Result<String, ShortcutError> {
    let current = std::env::var("XDG_CURRENT_DESKTOP").unwrap_or_default();
    let desktop = desktop
        .or_else(|| Desktop::detect(&current))
        .ok_or(ShortcutError::UnknownDesktop(current))?;
    let exe = std::env::current_exe().map_err(ShortcutError::OwnPath)?;
    let agent_dir = std::env::var_os(crate::config::AGENT_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    let command = help_command(&exe, agent_dir.as_deref());
    match desktop {
        Desktop::Gnome => install_gnome("gsettings", hotkey, &command),
        Desktop::Kde => {
            let data_home = std::env::var_os("XDG_DATA_HOME")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
                .ok_or_else(|| ShortcutError::Io {
                    path: PathBuf::from("~/.local/share"),
                    source: std::io::Error::other("HOME is not set"),
                })?;
            install_kde(&data_home.join("applications"), hotkey, &command)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desktops_are_detected_from_xdg_current_desktop() {
        assert_eq!(Desktop::detect("ubuntu:GNOME"), Some(Desktop::Gnome));
        assert_eq!(Desktop::detect("KDE"), Some(Desktop::Kde));
        assert_eq!(Desktop::detect("XFCE"), None);
        assert_eq!(Desktop::detect(""), None);
    }

    #[test]
    fn gsettings_lists_parse_and_print() {
        assert_eq!(parse_string_list("@as []\n").unwrap(), Vec::<String>::new());
        let list = parse_string_list(
            "['/org/gnome/settings-daemon/plugins/media-keys/custom-keybindings/custom0/', 'it\\'s']",
        )
        .unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1], "it's");
        assert_eq!(parse_string_list(&gvariant_list(&list)).unwrap(), list);
        assert!(parse_string_list("nonsense").is_err());
        assert!(parse_string_list("['unterminated]").is_err());
    }

    #[test]
    fn gnome_install_adds_our_binding_once_and_keeps_the_others() {
        let hotkey = Hotkey::default();
        let other = "/org/gnome/settings-daemon/plugins/media-keys/custom-keybindings/custom0/";
        let commands = gnome_install_commands(&[other.to_owned()], &hotkey, "/usr/bin/x help");
        assert_eq!(
            commands[2],
            [
                "set",
                &format!("{BINDING_SCHEMA}:{GNOME_PATH}"),
                "binding",
                "'<Control><Alt>h'"
            ]
        );
        assert_eq!(commands[1][3], "'/usr/bin/x help'");
        let list = parse_string_list(&commands[3][3]).unwrap();
        assert_eq!(list, [other.to_owned(), GNOME_PATH.to_owned()]);
        // Installing again does not add a second entry.
        let again = gnome_install_commands(&list, &hotkey, "/usr/bin/x help");
        assert_eq!(parse_string_list(&again[3][3]).unwrap(), list);
    }

    #[test]
    fn the_command_quotes_paths_with_spaces_and_carries_the_agent_dir() {
        assert_eq!(
            help_command(Path::new("/usr/local/bin/lifeline-agent"), None),
            "/usr/local/bin/lifeline-agent help"
        );
        assert_eq!(
            help_command(
                Path::new("/opt/Life Line/lifeline-agent"),
                Some(Path::new("/home/a/my agent"))
            ),
            "env \"LIFELINE_AGENT_DIR=/home/a/my agent\" \"/opt/Life Line/lifeline-agent\" help"
        );
    }

    #[test]
    fn a_missing_gsettings_says_what_to_do_by_hand() {
        let err = install_gnome("lifeline-no-gsettings-here", &Hotkey::default(), "x help")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lifeline-no-gsettings-here is not installed"),
            "{err}"
        );
        assert!(err.contains("Ctrl+Alt+H"), "{err}");
        assert!(err.contains("`x help`"), "{err}");
    }

    #[test]
    fn kde_gets_a_launcher_file() {
        let tmp = tempfile::tempdir().unwrap();
        // kwriteconfig is not installed here: the launcher is written, then the clear error.
        let result = install_kde(tmp.path(), &Hotkey::default(), "/usr/bin/x help");
        let entry = std::fs::read_to_string(tmp.path().join(KDE_DESKTOP_FILE)).unwrap();
        assert!(entry.contains("Exec=/usr/bin/x help"));
        if let Err(e) = result {
            assert!(
                e.to_string().contains("kwriteconfig5 is not installed"),
                "{e}"
            );
        }
    }
}

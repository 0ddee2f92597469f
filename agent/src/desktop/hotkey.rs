//! The help hotkey: its parsed form, and the listener the service runs on an X11 desktop.
//!
//! [`Hotkey`] is parsed once from `--hotkey` / `LIFELINE_HOTKEY` (`Ctrl+Alt+H`) and knows how
//! to spell itself for global-hotkey (X11 grab), GNOME (`<Control><Alt>h`) and KDE. The listener
//! is one thread holding a global-hotkey manager; each press starts `lifeline-agent help` as a
//! process of its own (through [`crate::exec::runner`]), at most one window at a time.

use std::fmt;
use std::str::FromStr;

/// The hotkey when none is configured.
pub const DEFAULT_HOTKEY: &str = "Ctrl+Alt+H";
/// Environment variable that sets the hotkey (the `--hotkey` flag wins).
pub const HOTKEY_ENV: &str = "LIFELINE_HOTKEY";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad hotkey {text:?}: {reason} (expected modifiers and one key, like \"Ctrl+Alt+H\")")]
pub struct HotkeyError {
    pub text: String,
    pub reason: String,
}

/// Modifier keys, in the order they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Modifiers {
    pub ctrl: bool,
    pub alt: bool,
    pub shift: bool,
    pub super_key: bool,
}

impl Modifiers {
    fn any(self) -> bool {
        self.ctrl || self.alt || self.shift || self.super_key
    }
}

/// The key pressed with the modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// `A`–`Z`.
    Letter(char),
    /// `0`–`9`.
    Digit(char),
    /// `F1`–`F12`.
    Function(u8),
    Named(NamedKey),
}

/// Keys with a name, as each desktop spells them: (ours, global-hotkey, GNOME, KDE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedKey {
    Space,
    Home,
    End,
    Insert,
    Delete,
    PageUp,
    PageDown,
    Pause,
    ScrollLock,
    PrintScreen,
}

impl NamedKey {
    const ALL: [NamedKey; 10] = [
        NamedKey::Space,
        NamedKey::Home,
        NamedKey::End,
        NamedKey::Insert,
        NamedKey::Delete,
        NamedKey::PageUp,
        NamedKey::PageDown,
        NamedKey::Pause,
        NamedKey::ScrollLock,
        NamedKey::PrintScreen,
    ];

    /// (ours, global-hotkey, GNOME accelerator, KDE)
    fn names(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            NamedKey::Space => ("Space", "SPACE", "space", "Space"),
            NamedKey::Home => ("Home", "HOME", "Home", "Home"),
            NamedKey::End => ("End", "END", "End", "End"),
            NamedKey::Insert => ("Insert", "INSERT", "Insert", "Ins"),
            NamedKey::Delete => ("Delete", "DELETE", "Delete", "Del"),
            NamedKey::PageUp => ("PageUp", "PAGEUP", "Page_Up", "PgUp"),
            NamedKey::PageDown => ("PageDown", "PAGEDOWN", "Page_Down", "PgDown"),
            NamedKey::Pause => ("Pause", "PAUSE", "Pause", "Pause"),
            NamedKey::ScrollLock => ("ScrollLock", "SCROLLLOCK", "Scroll_Lock", "ScrollLock"),
            NamedKey::PrintScreen => ("PrintScreen", "PRINTSCREEN", "Print", "Print"),
        }
    }
}

/// A validated hotkey: at least one modifier (F-keys and a few others may stand alone) and
/// exactly one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hotkey {
    pub modifiers: Modifiers,
    pub key: Key,
}

impl Default for Hotkey {
    fn default() -> Self {
        Hotkey {
            modifiers: Modifiers {
                ctrl: true,
                alt: true,
                ..Modifiers::default()
            },
            key: Key::Letter('H'),
        }
    }
}

fn parse_key(token: &str) -> Option<Key> {
    let upper = token.to_ascii_uppercase();
    let mut chars = upper.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        if c.is_ascii_uppercase() {
            return Some(Key::Letter(c));
        }
        if c.is_ascii_digit() {
            return Some(Key::Digit(c));
        }
    }
    if let Some(n) = upper.strip_prefix('F').and_then(|n| n.parse::<u8>().ok()) {
        return (1..=12).contains(&n).then_some(Key::Function(n));
    }
    NamedKey::ALL
        .into_iter()
        .find(|k| k.names().0.eq_ignore_ascii_case(token))
        .map(Key::Named)
}

impl FromStr for Hotkey {
    type Err = HotkeyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason: &str| HotkeyError {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        if text.len() > 64 {
            return Err(error("too long"));
        }
        let mut modifiers = Modifiers::default();
        let mut key = None;
        for token in text.split('+').map(str::trim) {
            if token.is_empty() {
                return Err(error("empty part between '+' signs"));
            }
            if key.is_some() {
                return Err(error("the key must come last, after the modifiers"));
            }
            let flag = match token.to_ascii_lowercase().as_str() {
                "ctrl" | "control" => &mut modifiers.ctrl,
                "alt" => &mut modifiers.alt,
                "shift" => &mut modifiers.shift,
                "super" | "meta" | "win" => &mut modifiers.super_key,
                _ => {
                    key = Some(parse_key(token).ok_or_else(|| {
                        error(&format!(
                            "unknown key {token:?} (use A-Z, 0-9, F1-F12, Space, Home, End, \
                             Insert, Delete, PageUp, PageDown, Pause, ScrollLock, PrintScreen)"
                        ))
                    })?);
                    continue;
                }
            };
            if *flag {
                return Err(error(&format!("modifier {token:?} given twice")));
            }
            *flag = true;
        }
        let key = key.ok_or_else(|| error("no key after the modifiers"))?;
        let may_stand_alone = matches!(
            key,
            Key::Function(_) | Key::Named(NamedKey::Pause | NamedKey::ScrollLock)
        );
        if !modifiers.any() && !may_stand_alone {
            return Err(error(
                "a letter, digit or editing key needs a modifier (it would swallow typing)",
            ));
        }
        Ok(Hotkey { modifiers, key })
    }
}

impl Hotkey {
    fn join(&self, mods: [&str; 4], key: String, separator: &str) -> String {
        let m = self.modifiers;
        let mut parts: Vec<String> = [m.ctrl, m.alt, m.shift, m.super_key]
            .into_iter()
            .zip(mods)
            .filter(|(on, _)| *on)
            .map(|(_, name)| name.to_owned())
            .collect();
        parts.push(key);
        parts.join(separator)
    }

    /// The spelling global-hotkey parses (`ctrl+alt+H`).
    pub fn global_hotkey_spec(&self) -> String {
        let key = match self.key {
            Key::Letter(c) | Key::Digit(c) => c.to_string(),
            Key::Function(n) => format!("F{n}"),
            Key::Named(k) => k.names().1.to_owned(),
        };
        self.join(["ctrl", "alt", "shift", "super"], key, "+")
    }

    /// GNOME's accelerator (`<Control><Alt>h`), as `gsettings` stores it.
    pub fn gnome_accelerator(&self) -> String {
        let key = match self.key {
            Key::Letter(c) => c.to_ascii_lowercase().to_string(),
            Key::Digit(c) => c.to_string(),
            Key::Function(n) => format!("F{n}"),
            Key::Named(k) => k.names().2.to_owned(),
        };
        self.join(["<Control>", "<Alt>", "<Shift>", "<Super>"], key, "")
    }

    /// KDE's shortcut (`Ctrl+Alt+H`), as `kglobalshortcutsrc` stores it.
    pub fn kde_shortcut(&self) -> String {
        let key = match self.key {
            Key::Letter(c) | Key::Digit(c) => c.to_string(),
            Key::Function(n) => format!("F{n}"),
            Key::Named(k) => k.names().3.to_owned(),
        };
        self.join(["Ctrl", "Alt", "Shift", "Meta"], key, "+")
    }
}

impl fmt::Display for Hotkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = match self.key {
            Key::Letter(c) | Key::Digit(c) => c.to_string(),
            Key::Function(n) => format!("F{n}"),
            Key::Named(k) => k.names().0.to_owned(),
        };
        f.write_str(&self.join(["Ctrl", "Alt", "Shift", "Super"], key, "+"))
    }
}

/// Starts the service's hotkey listener when this is an X11 session whose display answers;
/// otherwise says why there is none. Never fails the service: the hotkey is a convenience.
pub fn start_listener(hotkey: Hotkey) {
    let session = super::Session::from_env();
    match &session {
        super::Session::None => {
            eprintln!("lifeline-agent: no desktop session (DISPLAY is not set): no help hotkey");
            return;
        }
        super::Session::WaylandOnly => {
            eprintln!(
                "lifeline-agent: Wayland session without X11: applications cannot grab keys; \
                 run `lifeline-agent hotkey install` to register {hotkey} with the desktop"
            );
            return;
        }
        super::Session::X11 { .. } => {}
    }
    if session.is_wayland() {
        eprintln!(
            "lifeline-agent: Wayland session: the {hotkey} grab only sees keys typed into X11 \
             windows; `lifeline-agent hotkey install` registers it with the desktop instead"
        );
    }
    listen(hotkey);
}

#[cfg(not(feature = "desktop"))]
fn listen(hotkey: Hotkey) {
    eprintln!(
        "lifeline-agent: built without the `desktop` feature: no {hotkey} hotkey \
         (`lifeline-agent help` still works in a terminal)"
    );
}

#[cfg(feature = "desktop")]
fn listen(hotkey: Hotkey) {
    use global_hotkey::{GlobalHotKeyEvent, GlobalHotKeyManager, HotKeyState, hotkey::HotKey};

    if !super::display_available() {
        eprintln!("lifeline-agent: cannot open the X display: no help hotkey");
        return;
    }
    let spec = hotkey.global_hotkey_spec();
    let grab = match spec.parse::<HotKey>() {
        Ok(grab) => grab,
        Err(e) => {
            eprintln!("lifeline-agent: hotkey {hotkey} is not supported here: {e}");
            return;
        }
    };
    let started = std::thread::Builder::new()
        .name("hotkey".to_owned())
        .spawn(move || {
            // The manager owns the X connection and its grab; it lives as long as this thread.
            // global-hotkey's `register` also answers Ok when its X thread died while setting
            // up (seen right after an X server starts), so the grab is checked from outside
            // and the manager made anew until it holds.
            let mut held = None;
            for attempt in 1..=GRAB_ATTEMPTS {
                let manager = match GlobalHotKeyManager::new() {
                    Ok(manager) => manager,
                    Err(e) => {
                        eprintln!("lifeline-agent: cannot listen for the hotkey: {e}");
                        return;
                    }
                };
                if let Err(e) = manager.register(grab) {
                    eprintln!(
                        "lifeline-agent: cannot grab {hotkey} (another program may use it; \
                         choose another with --hotkey): {e}"
                    );
                    return;
                }
                if grab_is_held(&hotkey) {
                    held = Some(manager);
                    break;
                }
                drop(manager);
                std::thread::sleep(std::time::Duration::from_millis(100) * attempt);
            }
            let Some(_manager) = held else {
                eprintln!(
                    "lifeline-agent: the X server did not keep the {hotkey} grab: no help hotkey"
                );
                return;
            };
            eprintln!("lifeline-agent: press {hotkey} for help");
            let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            while let Ok(event) = GlobalHotKeyEvent::receiver().recv() {
                if event.id() == grab.id() && event.state() == HotKeyState::Pressed {
                    open_help_window(&open);
                }
            }
        });
    if let Err(e) = started {
        eprintln!("lifeline-agent: cannot start the hotkey thread: {e}");
    }
}

/// Tries to register a grab before giving up.
#[cfg(feature = "desktop")]
const GRAB_ATTEMPTS: u32 = 5;

/// Whether some client holds the grab of `hotkey` on the root window: our own grab attempt on a
/// second connection is refused with BadAccess exactly then.
#[cfg(feature = "desktop")]
fn grab_is_held(hotkey: &Hotkey) -> bool {
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{ConnectionExt, GrabMode, ModMask};

    let Ok((conn, screen)) = x11rb::connect(None) else {
        return false;
    };
    let Some(root) = conn.setup().roots.get(screen).map(|s| s.root) else {
        return false;
    };
    let keysym: u32 = match hotkey.key {
        // Keysyms of Latin letters and digits are their ASCII codes (upper case for letters).
        Key::Letter(c) | Key::Digit(c) => u32::from(c),
        // F1..F12 are 0xffbe.., the named keys are rare enough to trust global-hotkey.
        Key::Function(n) => 0xffbd + u32::from(n),
        Key::Named(_) => return true,
    };
    let (min, max) = (conn.setup().min_keycode, conn.setup().max_keycode);
    let Ok(Ok(mapping)) = conn
        .get_keyboard_mapping(min, max.saturating_sub(min).saturating_add(1))
        .map(|cookie| cookie.reply())
    else {
        return false;
    };
    let per = usize::from(mapping.keysyms_per_keycode).max(1);
    let Some(keycode) = mapping
        .keysyms
        .chunks(per)
        .position(|syms| syms.contains(&keysym))
        .and_then(|i| u8::try_from(i).ok())
        .map(|i| min.saturating_add(i))
    else {
        return false;
    };
    let m = hotkey.modifiers;
    let mut mods = ModMask::default();
    for (on, bit) in [
        (m.ctrl, ModMask::CONTROL),
        (m.alt, ModMask::M1),
        (m.shift, ModMask::SHIFT),
        (m.super_key, ModMask::M4),
    ] {
        if on {
            mods |= bit;
        }
    }
    let grabbed = conn
        .grab_key(false, root, mods, keycode, GrabMode::ASYNC, GrabMode::ASYNC)
        .map(|cookie| cookie.check());
    match grabbed {
        // We got it: nobody else holds it. Give it back.
        Ok(Ok(())) => {
            if let Ok(cookie) = conn.ungrab_key(keycode, root, mods) {
                cookie.ignore_error();
            }
            let _ = conn.flush();
            false
        }
        Ok(Err(_)) => true,
        Err(_) => false,
    }
}

/// Starts `lifeline-agent help` unless a window this listener opened is still open.
#[cfg(feature = "desktop")]
fn open_help_window(open: &std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::Ordering;
    if open.swap(true, Ordering::SeqCst) {
        eprintln!("lifeline-agent: the help window is already open");
        return;
    }
    eprintln!("lifeline-agent: hotkey pressed: opening the help window");
    let open = std::sync::Arc::clone(open);
    let spawned = std::thread::Builder::new()
        .name("help-window".to_owned())
        .spawn(move || {
            match super::help::run_window_process(1) {
                Ok(()) => {}
                Err(e) => eprintln!("lifeline-agent: help window: {e}"),
            }
            open.store(false, Ordering::SeqCst);
        });
    if let Err(e) = spawned {
        eprintln!("lifeline-agent: cannot start the help window: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_ctrl_alt_h_in_every_spelling() {
        let hotkey: Hotkey = DEFAULT_HOTKEY.parse().unwrap();
        assert_eq!(hotkey, Hotkey::default());
        assert_eq!(hotkey.to_string(), "Ctrl+Alt+H");
        assert_eq!(hotkey.gnome_accelerator(), "<Control><Alt>h");
        assert_eq!(hotkey.kde_shortcut(), "Ctrl+Alt+H");
        assert_eq!(hotkey.global_hotkey_spec(), "ctrl+alt+H");
    }

    #[test]
    fn spellings_are_case_insensitive_and_named_keys_map_per_desktop() {
        let hotkey: Hotkey = "super + shift + pageup".parse().unwrap();
        assert_eq!(hotkey.to_string(), "Shift+Super+PageUp");
        assert_eq!(hotkey.gnome_accelerator(), "<Shift><Super>Page_Up");
        assert_eq!(hotkey.kde_shortcut(), "Shift+Meta+PgUp");
        let f1: Hotkey = "F1".parse().unwrap();
        assert_eq!(f1.gnome_accelerator(), "F1");
    }

    #[test]
    fn bad_hotkeys_get_one_line_errors() {
        for (text, says) in [
            ("", "empty part"),
            ("Ctrl+Alt", "no key"),
            ("Ctrl++H", "empty part"),
            ("Ctrl+H+Alt", "must come last"),
            ("Ctrl+Ctrl+H", "given twice"),
            ("Ctrl+Banana", "unknown key"),
            ("H", "needs a modifier"),
            ("Ctrl+F13", "unknown key"),
        ] {
            let err = text.parse::<Hotkey>().unwrap_err().to_string();
            assert!(err.contains(says), "{text:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let long = "Ctrl+".repeat(40);
        assert!(long.parse::<Hotkey>().is_err());
    }

    #[cfg(feature = "desktop")]
    #[test]
    fn global_hotkey_accepts_every_key_we_accept() {
        let mut keys: Vec<String> = ('A'..='Z').chain('0'..='9').map(String::from).collect();
        keys.extend((1..=12).map(|n| format!("F{n}")));
        keys.extend(NamedKey::ALL.iter().map(|k| k.names().0.to_owned()));
        for key in keys {
            let hotkey: Hotkey = format!("Ctrl+Alt+Shift+Super+{key}").parse().unwrap();
            hotkey
                .global_hotkey_spec()
                .parse::<global_hotkey::hotkey::HotKey>()
                .unwrap_or_else(|e| panic!("{key}: {e}"));
        }
    }
}

//! The end user's desktop: the help hotkey, the help window, the consent window, and the
//! terminal prompt used when there is no display.
//!
//! Windows never run inside the resident service: the service only listens for the hotkey and
//! starts `lifeline-agent help` (or `lifeline-agent consent`) as a short-lived process of its
//! own through [`crate::exec::runner`], so the service stays small and a crash in GUI code
//! cannot take it down. GUI crates (eframe, global-hotkey, x11rb) are behind the `desktop`
//! cargo feature; without it `help` is the terminal prompt and consent answers "no desktop".

pub mod consent;
pub mod help;
pub mod hotkey;
pub mod shortcut;
pub mod terminal;

#[cfg(feature = "desktop")]
mod gui;
#[cfg(feature = "desktop")]
pub mod screenshot;
#[cfg(feature = "desktop")]
pub mod window;

/// The kind of graphical session the agent runs in, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Session {
    /// An X server (`DISPLAY`), which may be XWayland inside a Wayland session.
    X11 { display: String, wayland: bool },
    /// Wayland without XWayland: no window of ours and no key grab.
    WaylandOnly,
    /// No graphical session (a console, SSH, a system service).
    None,
}

impl Session {
    /// The session this process runs in.
    pub fn from_env() -> Session {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let wayland = var("WAYLAND_DISPLAY").is_some()
            || var("XDG_SESSION_TYPE").is_some_and(|t| t.eq_ignore_ascii_case("wayland"));
        match var("DISPLAY") {
            Some(display) => Session::X11 { display, wayland },
            None if wayland => Session::WaylandOnly,
            None => Session::None,
        }
    }

    /// Whether applications cannot grab global keys here (Wayland, even with XWayland: a grab
    /// through XWayland only sees keys typed into X11 windows).
    pub fn is_wayland(&self) -> bool {
        matches!(
            self,
            Session::WaylandOnly | Session::X11 { wayland: true, .. }
        )
    }
}

/// How many processes a window gets to reach the X server.
pub const WINDOW_ATTEMPTS: u32 = 3;

/// Whether a window failed only because its X connection could not be set up. On a loaded
/// machine that happens now and then (we saw about one connection in ten fail on a busy VM), and
/// winit remembers the failure for the life of the process, so the window is retried in a fresh
/// process (`--attempt`) instead.
pub fn is_transient_display_error(message: &str) -> bool {
    message.contains("connection to X server")
}

/// Whether an X display is set and answers: what decides between a window and the terminal
/// prompt, and whether consent can be asked at all.
pub fn display_available() -> bool {
    match Session::from_env() {
        Session::X11 { .. } => x11_answers(),
        _ => false,
    }
}

#[cfg(feature = "desktop")]
fn x11_answers() -> bool {
    // A few tries: a connection can fail to set up on a busy machine (see above).
    (0..WINDOW_ATTEMPTS).any(|attempt| {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        x11rb::connect(None).is_ok()
    })
}

#[cfg(not(feature = "desktop"))]
fn x11_answers() -> bool {
    false
}

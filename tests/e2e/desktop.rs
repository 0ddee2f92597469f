//! The end user's side: the help hotkey and window under a real X server (Xvfb, driven with
//! xdotool), the consent window, the terminal prompt without a display, and "My tickets".
//!
//! Xvfb and xdotool are required (Debian packages `xvfb`, `xdotool`; `.ci/run` installs them):
//! without them these tests fail and say so, they never skip.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::binaries;
use crate::harness::{TestAgent, TestCollector, assert_success, eventually};

const HELP_TITLE: &str = "Lifeline - Get help";
const CONSENT_TITLE: &str = "Lifeline - Allow a remote action?";
const WINDOW_TIMEOUT: Duration = Duration::from_secs(30);

fn require(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    assert!(
        found,
        "{program} is not installed: the desktop tests need a real X server; install it with \
         `apt-get install -y {package}` (.ci/run does)"
    );
}

/// A private X server on a display number Xvfb picks itself; killed on drop.
pub struct Xvfb {
    child: Child,
    pub display: String,
}

impl Xvfb {
    pub fn start() -> Xvfb {
        Xvfb::start_sized("1280x800x24")
    }

    /// An X server whose screen is `screen` (`WIDTHxHEIGHTxDEPTH`).
    pub fn start_sized(screen: &str) -> Xvfb {
        require("Xvfb", "xvfb");
        require("xdotool", "xdotool");
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                screen,
                "-nolisten",
                "tcp",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("Xvfb stdout"))
            .read_line(&mut line)
            .expect("read Xvfb's display number");
        let number = line.trim();
        assert!(
            !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()),
            "Xvfb did not report a display number: {line:?}"
        );
        Xvfb {
            child,
            display: format!(":{number}"),
        }
    }

    /// Runs xdotool on this display.
    pub fn xdotool(&self, args: &[&str]) -> Output {
        Command::new("xdotool")
            .args(args)
            .env("DISPLAY", &self.display)
            .output()
            .expect("run xdotool")
    }

    /// The id of the first window whose name contains `name`, once there is one.
    pub fn wait_for_window(&self, name: &str, timeout: Duration) -> String {
        eventually(&format!("a window named {name:?}"), timeout, || {
            let out = self.xdotool(&["search", "--onlyvisible", "--name", name]);
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
    }

    /// Like [`Xvfb::wait_for_window`], `None` on timeout.
    pub fn try_wait_for_window(&self, name: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let out = self.xdotool(&["search", "--onlyvisible", "--name", name]);
            if let Some(id) = String::from_utf8_lossy(&out.stdout).lines().next() {
                return Some(id.to_owned());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        None
    }

    /// Gives `window` the keyboard focus (there is no window manager to do it).
    pub fn focus(&self, window: &str) {
        let out = self.xdotool(&["windowfocus", "--sync", window]);
        assert_success(&out, "xdotool windowfocus");
        // The first frame (which moves egui's focus into the text field) may still be drawing.
        std::thread::sleep(Duration::from_millis(500));
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["key", "--delay", "50"];
        args.extend_from_slice(keys);
        assert_success(&self.xdotool(&args), "xdotool key");
    }

    pub fn type_text(&self, text: &str) {
        assert_success(
            &self.xdotool(&["type", "--delay", "20", text]),
            "xdotool type",
        );
    }

    /// Whether any window named `name` is still shown.
    pub fn has_window(&self, name: &str) -> bool {
        let out = self.xdotool(&["search", "--onlyvisible", "--name", name]);
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent_command(agent: &TestAgent, display: Option<&str>) -> Command {
    let mut command = Command::new(binaries::agent());
    command
        .env("LIFELINE_AGENT_DIR", agent.dir())
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("LIFELINE_HOTKEY");
    if let Some(display) = display {
        command.env("DISPLAY", display);
    }
    command
}

fn tickets(collector: &TestCollector) -> Vec<serde_json::Value> {
    collector
        .cli_json(&["tickets", "list"])
        .as_array()
        .unwrap()
        .clone()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn the_hotkey_opens_the_help_window_and_enter_files_the_ticket() {
    let x = Xvfb::start();
    let collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    let log = agent.dir().join("service.log");
    let service = Running(
        agent_command(&agent, Some(&x.display))
            .args(["run", "--heartbeat-secs", "5", "--spool-secs", "1"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start lifeline-agent run"),
    );
    eventually("the hotkey grab", Duration::from_secs(20), || {
        read(&log)
            .contains("press Ctrl+Alt+H for help")
            .then_some(())
    });

    let pressed = Instant::now();
    x.keys(&["ctrl+alt+h"]);
    let window = x
        .try_wait_for_window(HELP_TITLE, WINDOW_TIMEOUT)
        .unwrap_or_else(|| {
            panic!(
                "no help window within {WINDOW_TIMEOUT:?} of Ctrl+Alt+H; service log:\n{}",
                read(&log)
            )
        });
    let shown_after = pressed.elapsed();
    x.focus(&window);
    x.type_text("The printer prints blank pages");
    x.keys(&["Return"]);

    let list = eventually(
        "the ticket at the collector",
        Duration::from_secs(60),
        || {
            let list = tickets(&collector);
            (!list.is_empty()).then_some(list)
        },
    );
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["description"], "The printer prints blank pages");
    let number = list[0]["number"].as_u64().unwrap().to_string();
    let ticket = collector.cli_json(&["tickets", "show", &number]);
    assert_eq!(ticket["machine_id"], agent.machine_id.as_str());
    let snapshot = &ticket["snapshots"][0]["snapshot"];
    assert!(
        snapshot["system"].is_object() && snapshot["user"].is_object(),
        "the ticket has no full snapshot: {ticket}"
    );
    // The window says where the report went, and Enter closes it.
    std::thread::sleep(Duration::from_millis(500));
    assert!(x.has_window(HELP_TITLE));
    x.keys(&["Return"]);
    eventually("the window to close", Duration::from_secs(10), || {
        (!x.has_window(HELP_TITLE)).then_some(())
    });
    eprintln!("hotkey to window shown: {} ms", shown_after.as_millis());
    drop(service);
}

fn consent_prompt() -> String {
    serde_json::json!({
        "technician": "alice",
        "action_title": "Restart the print spooler",
        "action_description": "Restarts cups.service so stuck print jobs start again.",
        "params": [["unit", "cups.service"]],
        "reason": "ticket says printing hangs",
        "ticket": 7
    })
    .to_string()
}

/// Runs `lifeline-agent consent` on `x`, presses `keys` once its window shows, and returns
/// what it printed.
fn consent_with_keys(x: &Xvfb, timeout_secs: &str, keys: &[&str]) -> String {
    let agent = TestAgent::unenrolled();
    let mut child = Running(
        agent_command(&agent, Some(&x.display))
            .args(["consent", "--timeout-secs", timeout_secs])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lifeline-agent consent"),
    );
    child
        .0
        .stdin
        .take()
        .unwrap()
        .write_all(consent_prompt().as_bytes())
        .unwrap();
    if !keys.is_empty() {
        let window = x.wait_for_window(CONSENT_TITLE, WINDOW_TIMEOUT);
        x.focus(&window);
        x.keys(keys);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the consent window did not close"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.0.stdout.take().unwrap(), &mut out).unwrap();
    out.trim().to_owned()
}

#[test]
fn consent_is_allowed_only_by_allow_and_denied_by_deny_escape_or_silence() {
    let x = Xvfb::start();
    // Deny has the focus: Tab moves to Allow, Enter presses it.
    assert_eq!(consent_with_keys(&x, "60", &["Tab", "Return"]), "allow");
    // Enter on the focused Deny, and Esc, both deny.
    assert_eq!(consent_with_keys(&x, "60", &["Return"]), "deny");
    assert_eq!(consent_with_keys(&x, "60", &["Escape"]), "deny");
    // Nobody answers: the window denies by itself when its countdown ends.
    let started = Instant::now();
    assert_eq!(consent_with_keys(&x, "2", &[]), "timeout");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn consent_without_a_display_answers_no_desktop() {
    let agent = TestAgent::unenrolled();
    let mut child = agent_command(&agent, None)
        .args(["consent", "--timeout-secs", "60"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(consent_prompt().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no-desktop");
}

fn help_in_terminal(agent: &TestAgent, input: &str) -> Output {
    let mut child = agent_command(agent, None)
        .arg("help")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lifeline-agent help");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn help_without_a_display_asks_in_the_terminal_and_files_the_ticket() {
    let collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);

    // Declining sends nothing.
    let out = help_in_terminal(&agent, "Screen flickers\nhigh\nn\n");
    assert_success(&out, "lifeline-agent help (declined)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("What will be sent"), "{text}");
    assert!(text.contains("Description: Screen flickers"), "{text}");
    assert!(text.contains("Cancelled: nothing was sent."), "{text}");
    assert!(tickets(&collector).is_empty());

    let out = help_in_terminal(&agent, "Screen flickers\nhigh\ny\n");
    assert_success(&out, "lifeline-agent help");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(": delivered, ticket #1"), "{text}");
    let list = tickets(&collector);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["description"], "Screen flickers");
    assert_eq!(list[0]["urgency"], "high");
    let ticket = collector.cli_json(&["tickets", "show", "1"]);
    assert!(ticket["snapshots"][0]["snapshot"]["system"].is_object());

    // Over-long descriptions get one clear line and send nothing.
    let long = format!("{}\nnormal\ny\n", "x".repeat(9000));
    let out = help_in_terminal(&agent, &long);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the limit is 8192"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(tickets(&collector).len(), 1);
}

#[test]
fn my_tickets_lists_only_this_machines_tickets_and_public_replies() {
    let collector = TestCollector::spawn();
    let mine = TestAgent::enrolled(&collector);
    let other = TestAgent::enrolled(&collector);
    assert_success(&mine.run(&["report", "VPN drops every hour"]), "report");
    assert_success(&other.run(&["report", "Other machine's problem"]), "report");
    let list = tickets(&collector);
    let number_of = |text: &str| {
        list.iter().find(|t| t["description"] == text).unwrap()["number"]
            .as_u64()
            .unwrap()
            .to_string()
    };
    let my_number = number_of("VPN drops every hour");
    let other_number = number_of("Other machine's problem");
    collector.cli_ok(&[
        "tickets",
        "comment",
        &my_number,
        "internal: user is on wifi",
    ]);
    let out = collector.cli_ok(&[
        "tickets",
        "comment",
        &my_number,
        "We renewed your VPN certificate, please try again",
        "--public",
    ]);
    assert!(out.contains("public comment added"), "{out}");
    collector.cli_ok(&[
        "tickets",
        "comment",
        &other_number,
        "Reply for the other one",
        "--public",
    ]);
    collector.cli_ok(&[
        "tickets",
        "update",
        &my_number,
        "--status",
        "waiting_on_user",
    ]);

    let out = mine.run(&["tickets", "--json"]);
    assert_success(&out, "lifeline-agent tickets --json");
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let seen = seen.as_array().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["number"].to_string(), my_number);
    assert_eq!(seen[0]["status"], "waiting_on_user");
    let replies = seen[0]["replies"].as_array().unwrap();
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(
        replies[0]["body"],
        "We renewed your VPN certificate, please try again"
    );
    let text = String::from_utf8_lossy(&mine.run(&["tickets"]).stdout).into_owned();
    assert!(text.contains("waiting on user"), "{text}");
    assert!(!text.contains("internal"), "{text}");

    // Technicians still see every comment, marked.
    let shown = collector.cli_ok(&["tickets", "show", &my_number]);
    assert!(shown.contains("internal: user is on wifi"), "{shown}");
    assert!(shown.contains("(public)"), "{shown}");

    // The route is for agents: a technician token is refused, and so is no credential.
    let http = collector.http();
    let answer = http.get(
        lifeline_shared::v1::api::paths::AGENT_TICKETS,
        Some(&collector.admin_token),
    );
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(
        http.get(lifeline_shared::v1::api::paths::AGENT_TICKETS, None)
            .status,
        401
    );
}

#[test]
fn a_bad_hotkey_is_one_clear_line() {
    let agent = TestAgent::unenrolled();
    let out = agent_command(&agent, None)
        .args(["run", "--hotkey", "Ctrl+Banana"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad hotkey \"Ctrl+Banana\""), "{err}");
    assert!(err.contains("unknown key"), "{err}");
    let out = agent_command(&agent, None)
        .args(["run"])
        .env("LIFELINE_HOTKEY", "Alt++")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad hotkey \"Alt++\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn hotkey_without_a_desktop_explains_itself() {
    let agent = TestAgent::unenrolled();
    let out = agent_command(&agent, None).arg("hotkey").output().unwrap();
    assert_success(&out, "lifeline-agent hotkey");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("No desktop session here"), "{text}");
    let out = agent_command(&agent, None)
        .args(["hotkey", "install", "--desktop", "gnome"])
        .output()
        .unwrap();
    // gsettings is not installed on the test machines: the error says what to do by hand.
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("by hand in the desktop's keyboard settings"),
            "{err}"
        );
        assert!(err.contains("help`"), "{err}");
    }
}

/// The width and height in a PNG's IHDR chunk (right after the 8-byte signature).
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(
        png.starts_with(&lifeline_shared::v1::api::PNG_SIGNATURE),
        "not a PNG"
    );
    assert_eq!(&png[12..16], b"IHDR");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn the_screenshot_is_off_by_default_and_sent_scaled_when_turned_on_with_the_keyboard() {
    // Wider than 1600 px: the screenshot is scaled down to 1600 px, keeping proportions.
    let x = Xvfb::start_sized("2000x1000x24");
    let collector = TestCollector::spawn();
    let agent = TestAgent::enrolled(&collector);
    let file_with_window = |text: &str, keys: &[&str]| {
        let _window_process = Running(
            agent_command(&agent, Some(&x.display))
                .arg("help")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start lifeline-agent help"),
        );
        let window = x.wait_for_window(HELP_TITLE, WINDOW_TIMEOUT);
        x.focus(&window);
        x.type_text(text);
        if !keys.is_empty() {
            x.keys(keys);
        }
        // Taking the screenshot (when on) happens on a thread; Send waits for it anyway.
        std::thread::sleep(Duration::from_secs(2));
        x.keys(&["Return"]);
        let ticket = eventually(
            "the ticket at the collector",
            Duration::from_secs(60),
            || {
                tickets(&collector)
                    .into_iter()
                    .find(|t| t["description"] == text)
            },
        );
        ticket["number"].as_u64().unwrap().to_string()
    };

    // Off by default: nothing is attached.
    let plain = file_with_window("No screenshot here", &[]);
    let shown = collector.cli_json(&["tickets", "show", &plain]);
    assert_eq!(shown["has_screenshot"], false, "{shown}");

    // Tab past the urgency choice (Low, Normal, High) to the checkbox; Space turns it on.
    let number = file_with_window(
        "My screen looks wrong",
        &["Tab", "Tab", "Tab", "Tab", "space"],
    );
    let shown = collector.cli_json(&["tickets", "show", &number]);
    assert_eq!(shown["has_screenshot"], true, "{shown}");
    assert_eq!(
        shown["urgency"], "normal",
        "Space must not have changed the urgency"
    );
    let out = agent.dir().join("shot.png");
    collector.cli_ok(&[
        "tickets",
        "screenshot",
        &number,
        "--out",
        out.to_str().unwrap(),
    ]);
    let png = std::fs::read(&out).unwrap();
    assert_eq!(png_size(&png), (1600, 800));
}

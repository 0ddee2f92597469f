//! `lifeline-agent`: the end-user side of Lifeline.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lifeline_agent::config::AgentDir;
use lifeline_agent::desktop::consent::{self, ConsentArgs, ConsentError};
use lifeline_agent::desktop::hotkey::{DEFAULT_HOTKEY, HOTKEY_ENV, Hotkey};
use lifeline_agent::desktop::{self, shortcut};
use lifeline_agent::{collect, render, service, status};
use lifeline_shared::v1::snapshot::SectionName;

#[derive(Debug, Parser)]
#[command(
    name = "lifeline-agent",
    version,
    about = "Lifeline agent: diagnostics and help-desk tickets",
    // `help` is ours (the end-user window); `--help` still prints usage.
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Take a diagnostics snapshot of this machine and print it (works offline).
    Snapshot(SnapshotArgs),
    /// Enroll this machine with a collector (generates the key pair here).
    Enroll(lifeline_agent::enroll::EnrollArgs),
    /// File a ticket with a fresh snapshot and print its number.
    Report(lifeline_agent::report::ReportArgs),
    /// Run the background service: heartbeats, queued reports, live inspections, and (on a
    /// desktop) the help hotkey.
    Run(RunArgs),
    /// Open the "get help" window (a prompt in the terminal when there is no display).
    Help(desktop::help::HelpArgs),
    /// The help hotkey: how it works in this session; `install` registers it with GNOME or KDE
    /// (for Wayland, where applications cannot grab keys).
    Hotkey {
        #[command(subcommand)]
        command: Option<HotkeyCommand>,
    },
    /// This machine's recent tickets, their status and the help desk's replies; on a terminal,
    /// asks "Did this fix it?" for resolved ones.
    Tickets {
        /// Print JSON (and ask nothing).
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        command: Option<TicketsCommand>,
    },
    /// Ask the user to allow a remote action (prompt as JSON on stdin; prints allow, deny or
    /// timeout). Used by the service.
    #[command(hide = true)]
    Consent(ConsentArgs),
    /// Reports waiting to be delivered.
    #[command(subcommand)]
    Spool(SpoolCommand),
    /// The catalog signing keys this machine trusts for remote actions.
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Enrollment, service and queue state of this agent.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    heartbeat_secs: u64,
    /// Seconds one long-poll for work may wait.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..=30))]
    poll_secs: u64,
    /// Seconds between looks at the spool for new reports.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    spool_secs: u64,
    /// The help hotkey on an X11 desktop, like "Ctrl+Alt+H" (modifiers Ctrl, Alt, Shift, Super).
    #[arg(long, env = HOTKEY_ENV, default_value = DEFAULT_HOTKEY, value_name = "KEYS")]
    hotkey: Hotkey,
    /// Do not listen for the help hotkey.
    #[arg(long, conflicts_with = "hotkey")]
    no_hotkey: bool,
}

#[derive(Debug, Subcommand)]
enum HotkeyCommand {
    /// Register the hotkey as a desktop shortcut that runs `lifeline-agent help`.
    Install {
        #[arg(long, env = HOTKEY_ENV, default_value = DEFAULT_HOTKEY, value_name = "KEYS")]
        hotkey: Hotkey,
        /// The desktop to register with; detected from XDG_CURRENT_DESKTOP when not given.
        #[arg(long)]
        desktop: Option<shortcut::Desktop>,
    },
}

/// Satisfaction: "Did this fix it?".
#[derive(Debug, Subcommand)]
enum TicketsCommand {
    /// Answer "Did this fix it?" for a resolved ticket (for scripts); "no" reopens it.
    Feedback {
        number: u64,
        /// It is fixed.
        #[arg(long, conflicts_with = "no", required_unless_present = "no")]
        yes: bool,
        /// It is not fixed: the ticket is reopened.
        #[arg(long)]
        no: bool,
        /// What to tell the help desk.
        #[arg(long, value_name = "TEXT")]
        comment: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum SpoolCommand {
    /// List queued reports and recent deliveries.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Try to deliver every queued report now.
    Flush,
}

#[derive(Debug, Subcommand)]
enum TrustCommand {
    /// Fingerprints of the trusted keys, how each came to be trusted (pinned, first use,
    /// endorsed) and since when.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pin the admins' key (lifeline-catalog.pub): it replaces keys trusted on first use.
    Pin {
        #[arg(value_name = "KEY.pub")]
        key: std::path::PathBuf,
    },
    /// Stop trusting a key (its full fingerprint, or a unique start of it) and the keys
    /// trusted only through its endorsement.
    Remove {
        #[arg(value_name = "FINGERPRINT")]
        fingerprint: String,
    },
}

#[derive(Debug, clap::Args)]
struct SnapshotArgs {
    /// Print the whole versioned JSON document instead of a summary.
    #[arg(long)]
    json: bool,
    /// Only this section (repeatable): system, cpu, memory, storage, network, processes, services,
    /// software, logs, hardware, user, findings.
    #[arg(long = "section", value_name = "NAME")]
    sections: Vec<SectionName>,
    /// Show how long each section took.
    #[arg(long)]
    timings: bool,
    /// Replace user names, host names, IP and MAC addresses with consistent pseudonyms.
    #[arg(long)]
    anonymize: bool,
    /// Also check that this name resolves through the system resolver (repeatable).
    #[arg(long = "resolve", value_name = "HOST")]
    resolve: Vec<String>,
}

fn main() -> ExitCode {
    // The one TLS crypto provider for the process, before anything touches TLS.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Snapshot(args) => snapshot(args),
        Command::Enroll(args) => lifeline_agent::enroll::run(&args).map_err(anyhow::Error::from),
        Command::Report(args) => lifeline_agent::report::run(&args).map_err(anyhow::Error::from),
        Command::Run(args) => run_service(&args),
        Command::Help(args) => desktop::help::run(&args).map_err(anyhow::Error::from),
        Command::Hotkey { command } => hotkey(command),
        Command::Tickets { json, command } => match command {
            None => my_tickets(json),
            Some(TicketsCommand::Feedback {
                number,
                yes,
                no: _,
                comment,
            }) => feedback(number, yes, comment.as_deref()),
        },
        Command::Consent(args) => return consent_window(&args),
        Command::Spool(SpoolCommand::List { json }) => spool_list(json),
        Command::Spool(SpoolCommand::Flush) => spool_flush(),
        Command::Trust(command) => trust(&command),
        Command::Status { json } => show_status(json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (`| head`) is not an error worth reporting.
            let broken_pipe = e.chain().any(|cause| {
                let kind = cause
                    .downcast_ref::<std::io::Error>()
                    .map(std::io::Error::kind)
                    .or_else(|| cause.downcast_ref::<serde_json::Error>()?.io_error_kind());
                kind == Some(std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            eprintln!(
                "lifeline-agent: {}",
                lifeline_shared::errors::describe(e.chain())
            );
            ExitCode::FAILURE
        }
    }
}

fn snapshot(args: SnapshotArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let sections: BTreeSet<SectionName> = args.sections.into_iter().collect();
    let findings_only = sections == BTreeSet::from([SectionName::Findings]);
    let options = collect::Options {
        sections,
        anonymize: args.anonymize,
        dns_probe_names: args.resolve,
        ..collect::Options::default()
    };
    let snapshot = collect::take(&options);
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &snapshot)?;
        writeln!(stdout)?;
    } else {
        write!(
            stdout,
            "{}",
            render::summary(&snapshot, findings_only, args.timings)
        )?;
        if args.timings {
            writeln!(
                stdout,
                "  {:<10} {:>6} ms",
                "total",
                started.elapsed().as_millis()
            )?;
        }
    }
    stdout.flush()?;
    Ok(())
}

fn run_service(args: &RunArgs) -> anyhow::Result<()> {
    let dir = AgentDir::from_env()?;
    let cadence = service::Cadence {
        heartbeat: std::time::Duration::from_secs(args.heartbeat_secs),
        poll_wait: std::time::Duration::from_secs(args.poll_secs),
        spool_check: std::time::Duration::from_secs(args.spool_secs),
    };
    let hotkey = (!args.no_hotkey).then_some(args.hotkey);
    service::run(dir, cadence, hotkey)?;
    Ok(())
}

fn hotkey(command: Option<HotkeyCommand>) -> anyhow::Result<()> {
    match command {
        Some(HotkeyCommand::Install { hotkey, desktop }) => {
            println!("{}", shortcut::install(&hotkey, desktop)?);
        }
        None => print!("{}", hotkey_state()),
    }
    Ok(())
}

/// What the hotkey does in this session, and what is installed.
fn hotkey_state() -> String {
    let hotkey = std::env::var(HOTKEY_ENV)
        .ok()
        .and_then(|h| h.parse::<Hotkey>().ok())
        .unwrap_or_default();
    let session = desktop::Session::from_env();
    let mut out = match &session {
        desktop::Session::None => "No desktop session here (DISPLAY is not set): \
                                   `lifeline-agent help` asks in the terminal.\n"
            .to_owned(),
        desktop::Session::X11 { display, wayland } if !*wayland => format!(
            "X11 session on {display}: `lifeline-agent run` grabs {hotkey} and opens the help \
             window (change it with --hotkey or {HOTKEY_ENV}).\n"
        ),
        _ => format!(
            "Wayland session: applications cannot grab keys. `lifeline-agent hotkey install` \
             registers {hotkey} as a desktop shortcut (GNOME, KDE) that runs \
             `lifeline-agent help`.\n"
        ),
    };
    match shortcut::gnome_state("gsettings") {
        Ok(Some((binding, command))) => out.push_str(&format!(
            "GNOME shortcut installed: {binding} runs `{command}`.\n"
        )),
        Ok(None) => out.push_str("No GNOME shortcut installed.\n"),
        Err(
            shortcut::ShortcutError::Missing { .. } | shortcut::ShortcutError::NoGnomeSchema { .. },
        ) => {}
        Err(e) => out.push_str(&format!("GNOME shortcut: cannot tell ({e}).\n")),
    }
    out
}

fn my_tickets(json: bool) -> anyhow::Result<()> {
    let dir = AgentDir::from_env()?;
    let tickets = lifeline_agent::tickets::fetch(&dir)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&tickets)?);
        return Ok(());
    }
    print!("{}", lifeline_agent::tickets::render(&tickets));
    // Issue 9: on a terminal, ask about resolved tickets right here.
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin())
        && std::io::IsTerminal::is_terminal(&std::io::stdout());
    if interactive && tickets.iter().any(|t| t.feedback_wanted) {
        lifeline_agent::tickets::ask(
            &tickets,
            std::io::stdin().lock(),
            std::io::stdout().lock(),
            |number, fixed, comment| {
                lifeline_agent::tickets::send_feedback(&dir, number, fixed, comment)
            },
        )?;
    }
    Ok(())
}

/// `lifeline-agent tickets feedback N --yes|--no [--comment TEXT]`.
fn feedback(number: u64, fixed: bool, comment: Option<&str>) -> anyhow::Result<()> {
    let dir = AgentDir::from_env()?;
    let recorded = lifeline_agent::tickets::send_feedback(&dir, number, fixed, comment)
        .with_context(|| format!("your answer for ticket #{number} was not sent"))?;
    println!("{}", lifeline_agent::tickets::thanks(&recorded));
    Ok(())
}

/// `lifeline-agent consent`: the answer's word on stdout; exit 3 when there is no desktop.
fn consent_window(args: &ConsentArgs) -> ExitCode {
    match consent::run_window(args) {
        Ok(answer) => {
            println!("{}", answer.word());
            ExitCode::SUCCESS
        }
        Err(ConsentError::NoDesktop) => {
            eprintln!("lifeline-agent: no desktop session to ask in");
            println!("{}", consent::ConsentAnswer::NoDesktop.word());
            ExitCode::from(consent::EXIT_NO_DESKTOP as u8)
        }
        Err(e) => {
            eprintln!("lifeline-agent: {e}");
            println!("deny");
            ExitCode::FAILURE
        }
    }
}

fn spool_list(json: bool) -> anyhow::Result<()> {
    let dir = AgentDir::from_env()?;
    let listing = status::spool_listing(&dir)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&listing)?);
    } else {
        print!("{}", status::render_listing(&listing));
    }
    Ok(())
}

fn spool_flush() -> anyhow::Result<()> {
    let dir = AgentDir::from_env()?;
    print!("{}", status::flush(&dir)?);
    Ok(())
}

fn trust(command: &TrustCommand) -> anyhow::Result<()> {
    use lifeline_agent::trust::{self, TrustStore};
    let dir = AgentDir::from_env()?;
    let store = TrustStore::open(&dir)?;
    match command {
        TrustCommand::List { json } => {
            let keys = store.keys()?;
            let version = store.catalog_version()?;
            let removed = store.removed_keys()?;
            if *json {
                let value = serde_json::json!({
                    "keys": keys,
                    "catalog_version": version,
                    "removed": removed,
                });
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print!("{}", trust::list_text(&keys, version, &removed));
            }
        }
        TrustCommand::Pin { key } => {
            let pinned = store.pin_key_file(key, time::OffsetDateTime::now_utc())?;
            for id in &pinned.keys {
                println!("Pinned catalog signing key {id}.");
            }
            for line in trust::untrusted_lines(&pinned.untrusted) {
                println!("{line}");
            }
        }
        TrustCommand::Remove { fingerprint } => {
            let removed = store.remove(fingerprint)?;
            print!("{}", trust::removed_text(&removed));
        }
    }
    Ok(())
}

fn show_status(json: bool) -> anyhow::Result<()> {
    let dir = AgentDir::from_env()?;
    let s = status::status(&dir)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", status::render_status(&s));
    }
    Ok(())
}

//! `lifeline-agent`: the end-user side of Lifeline.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use lifeline_agent::config::AgentDir;
use lifeline_agent::{collect, render, service, status};
use lifeline_shared::v1::snapshot::SectionName;

#[derive(Debug, Parser)]
#[command(
    name = "lifeline-agent",
    version,
    about = "Lifeline agent: diagnostics and help-desk tickets"
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
    /// Run the background service: heartbeats, queued reports, live inspections.
    Run(RunArgs),
    /// Reports waiting to be delivered.
    #[command(subcommand)]
    Spool(SpoolCommand),
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
        Command::Spool(SpoolCommand::List { json }) => spool_list(json),
        Command::Spool(SpoolCommand::Flush) => spool_flush(),
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
            eprintln!("lifeline-agent: {e:#}");
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
    service::run(dir, cadence)?;
    Ok(())
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

//! `lifeline-agent`: the end-user side of Lifeline.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use lifeline_agent::{collect, render};
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

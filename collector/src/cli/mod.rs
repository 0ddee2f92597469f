//! The technician/admin client: subcommands that talk to a running collector over HTTPS.
//!
//! Connection settings come from `--server/--token/--ca` or `LIFELINE_SERVER`, `LIFELINE_TOKEN`,
//! `LIFELINE_CA`. Output is a table or page for people, or the API's JSON with `--json`.

pub mod actions;
pub mod audit;
pub mod client;
pub mod output;
// Recurring problems, knowledge search and help-desk metrics (issue 9).
pub mod reports;
// Satisfaction, webhooks and e-mail (issue 9).
pub mod webhooks;

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use lifeline_shared::v1::api::{
    EnrollmentTokenCreated, EnrollmentTokenInfo, MachineDetail, MachineSummary, NewComment,
    NewEnrollmentToken, NewUser, Priority, Role, TicketDetail, TicketFilter, TicketSort,
    TicketStatus, TicketSummary, TicketUpdate, Tier, UserCreated, UserSummary, paths,
};
use lifeline_shared::v1::integrations::{USER_EMAIL, UserEmail, check_email};
use lifeline_shared::v1::sla::EscalateRequest;
use lifeline_shared::v1::work::{InspectRequest, WorkState, WorkStatus};
use serde::Serialize;

use crate::secret::Secret;
use client::{ApiClient, ClientError, Connection};

/// Connection settings shared by all client subcommands.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// Collector URL, e.g. https://127.0.0.1:8443
    #[arg(long, env = "LIFELINE_SERVER", global = true)]
    pub server: Option<String>,
    /// Your technician or admin token
    #[arg(long, env = "LIFELINE_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<Secret>,
    /// The collector's CA certificate (ca.pem in its data directory)
    #[arg(long, env = "LIFELINE_CA", global = true)]
    pub ca: Option<PathBuf>,
    /// Print the API's JSON instead of a table
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ClientCommand {
    /// The ticket queue
    #[command(subcommand)]
    Tickets(TicketsCommand),
    /// Enrolled machines
    #[command(subcommand)]
    Machines(MachinesCommand),
    /// Technician and admin accounts (admin)
    #[command(subcommand)]
    Users(UsersCommand),
    /// Queued work such as live inspections
    #[command(subcommand)]
    Work(WorkCommand),
    /// Tokens that let machines enroll (admin)
    #[command(subcommand, name = "enrollment-tokens")]
    EnrollmentTokens(EnrollmentTokensCommand),
    /// The signed action catalog: keygen, sign (offline), trust, publish (admin)
    #[command(subcommand)]
    Catalog(actions::CatalogCommand),
    /// Actions of the published catalog
    #[command(subcommand)]
    Actions(actions::ActionsCommand),
    /// Run an approved action on a machine
    Run(actions::RunArgs),
    /// Runs of actions: list, show, follow
    #[command(subcommand)]
    Runs(actions::RunsCommand),
    /// Run requests waiting for an admin's approval
    #[command(subcommand)]
    Requests(actions::RequestsCommand),
    /// Approve a run request (admin; not your own)
    Approve {
        request: u64,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny a run request (admin)
    Deny {
        request: u64,
        /// Why: the requester sees it
        #[arg(long)]
        reason: String,
    },
    /// The tamper-evident audit log (admin)
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    // Recurring problems, knowledge search and help-desk metrics (issue 9).
    /// Help-desk reports: recurring problems and summary figures
    #[command(subcommand)]
    Reports(reports::ReportsCommand),
    /// The knowledge base: how resolved tickets were solved
    #[command(subcommand)]
    Kb(reports::KbCommand),
    /// The delivery log of webhooks and e-mails: list, send again (admin)
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum TicketsCommand {
    /// List tickets, newest first (--sort due: the soonest service-level due time first)
    List {
        #[arg(long)]
        status: Option<TicketStatus>,
        /// Machine id or host name
        #[arg(long)]
        machine: Option<String>,
        #[arg(long)]
        priority: Option<Priority>,
        /// Only this tier's tickets (with --unassigned: the tier's queue)
        #[arg(long)]
        tier: Option<Tier>,
        /// Only tickets assigned to this user
        #[arg(long, conflicts_with = "unassigned")]
        assignee: Option<String>,
        /// Only tickets nobody is assigned to
        #[arg(long)]
        unassigned: bool,
        /// newest, priority, age (oldest first) or due (soonest service-level due time first)
        #[arg(long)]
        sort: Option<TicketSort>,
    },
    /// Show one ticket: description, findings, comments, then the snapshot sections
    Show { number: u64 },
    /// Change status, priority, tier or assignee
    Update {
        number: u64,
        #[arg(long)]
        status: Option<TicketStatus>,
        #[arg(long)]
        priority: Option<Priority>,
        #[arg(long)]
        tier: Option<Tier>,
        /// User name to assign to; "" unassigns
        #[arg(long)]
        assign: Option<String>,
        /// Put the ticket back in its tier's queue (nobody assigned)
        #[arg(long, conflicts_with = "assign")]
        unassign: bool,
        /// How the problem was solved (with --status resolved or closed, or on a resolved
        /// ticket); kept on the ticket and found by `kb search`
        #[arg(long)]
        note: Option<String>,
    },
    /// Move a ticket up to a higher tier, with the reason (into its timeline and the audit log)
    Escalate {
        number: u64,
        /// 2 or 3; higher than the ticket's tier
        #[arg(long)]
        to_tier: Tier,
        /// Why it needs the higher tier
        #[arg(long)]
        reason: String,
        /// Who at that tier takes it (else it waits in the tier's queue)
        #[arg(long)]
        assign: Option<String>,
    },
    /// Add a comment (internal to the help desk unless --public)
    Comment {
        number: u64,
        text: String,
        /// A reply the end user sees in their help window (`lifeline-agent tickets`)
        #[arg(long)]
        public: bool,
    },
    /// Save the screenshot the user attached to a ticket (a PNG file)
    Screenshot {
        number: u64,
        /// Where to write the PNG
        #[arg(long)]
        out: PathBuf,
        /// Overwrite FILE if it exists
        #[arg(long)]
        force: bool,
    },
    /// Earlier tickets with the same problem (fingerprint), how they were resolved and which
    /// actions ran on them
    Similar {
        number: u64,
        /// Show at most this many tickets (1 to 100) [default: 10]
        #[arg(long)]
        limit: Option<u32>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum MachinesCommand {
    /// List enrolled machines
    List,
    /// Show a machine (id or host name) and its tickets
    Show { machine: String },
    /// Ask a machine for a fresh snapshot now and print it when it arrives
    Inspect {
        machine: String,
        /// Attach the snapshot to this ticket
        #[arg(long)]
        ticket: Option<u64>,
        /// Seconds to wait for the answer (the request itself stays queued until it expires)
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Revoke a machine: its certificate is refused from now on (admin)
    Revoke { machine: String },
    /// Let a machine that enrolled under `--enrollment approve` file tickets (admin)
    Approve { machine: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum WorkCommand {
    /// Where a piece of work (e.g. an inspection) stands, with its snapshot when done
    Show { id: u64 },
}

#[derive(Debug, Clone, Subcommand)]
pub enum UsersCommand {
    /// Add a user and print their token (shown once)
    Add {
        name: String,
        #[arg(long)]
        role: Role,
        /// Where their notifications go (tickets assigned to them)
        #[arg(long, value_name = "ADDRESS")]
        email: Option<String>,
    },
    /// Set a user's e-mail address for notifications ("" removes it)
    SetEmail { name: String, address: String },
    /// List users
    List,
    /// Revoke a user's token
    Revoke { name: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum EnrollmentTokensCommand {
    /// Create an enrollment token (shown once)
    Create {
        /// Seconds until the token expires
        #[arg(long)]
        expires_in: Option<u64>,
        /// How many machines may enroll with it
        #[arg(long)]
        max_uses: Option<u32>,
    },
    /// List enrollment tokens by prefix: who made them, expiry, uses, revoked (never the tokens)
    List,
    /// Revoke an enrollment token by the prefix `list` shows (or its id): it enrolls nobody
    /// from now on; machines it enrolled stay enrolled
    Revoke {
        /// e.g. lle_0123abcd
        prefix: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("missing {flag} (or {env})")]
    Missing {
        flag: &'static str,
        env: &'static str,
    },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    #[error("cannot encode output: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "no answer from {machine} within {waited} s; inspection {id} is still {state} until \
         {expires} (check later with: lifeline-collector work show {id})"
    )]
    StillWaiting {
        machine: String,
        id: u64,
        state: &'static str,
        waited: u64,
        expires: String,
    },
    #[error("{0}")]
    Failed(String),
    #[error("inspection {id} of {machine} {state}{reason}")]
    WorkEnded {
        machine: String,
        id: u64,
        state: &'static str,
        reason: String,
    },
}

impl ConnectionArgs {
    fn connection(&self) -> Result<Connection, CliError> {
        Ok(Connection {
            server: self.server.clone().ok_or(CliError::Missing {
                flag: "--server",
                env: "LIFELINE_SERVER",
            })?,
            token: self.token.clone().ok_or(CliError::Missing {
                flag: "--token",
                env: "LIFELINE_TOKEN",
            })?,
            ca: self.ca.clone().ok_or(CliError::Missing {
                flag: "--ca",
                env: "LIFELINE_CA",
            })?,
        })
    }
}

/// Percent-encodes a path segment or query value.
fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Printer {
    json: bool,
}

impl Printer {
    fn show<T: Serialize>(
        &self,
        value: &T,
        human: impl FnOnce(&T) -> String,
    ) -> Result<(), CliError> {
        let mut stdout = std::io::stdout().lock();
        if self.json {
            serde_json::to_writer_pretty(&mut stdout, value)?;
            writeln!(stdout)?;
        } else {
            writeln!(stdout, "{}", human(value))?;
        }
        Ok(())
    }
}

/// Runs one client subcommand.
pub fn run(args: &ConnectionArgs, command: &ClientCommand) -> Result<(), CliError> {
    if let ClientCommand::Catalog(catalog) = command
        && let Some(done) = actions::offline(catalog)
    {
        return done;
    }
    let client = ApiClient::new(&args.connection()?)?;
    let out = Printer { json: args.json };
    match command {
        ClientCommand::Catalog(command) => actions::catalog(&client, &out, command),
        ClientCommand::Actions(command) => actions::actions(&client, &out, command),
        ClientCommand::Run(run) => actions::run(&client, &out, run),
        ClientCommand::Runs(command) => actions::runs(&client, &out, command),
        ClientCommand::Requests(command) => actions::requests(&client, &out, command),
        ClientCommand::Approve { request, reason } => {
            actions::decide(&client, &out, *request, true, reason.as_deref())
        }
        ClientCommand::Deny { request, reason } => {
            actions::decide(&client, &out, *request, false, Some(reason))
        }
        ClientCommand::Tickets(command) => tickets(&client, &out, command),
        ClientCommand::Machines(command) => machines(&client, &out, command),
        ClientCommand::Users(command) => users(&client, &out, command),
        ClientCommand::Audit(command) => audit::run(&client, &out, command),
        ClientCommand::Reports(command) => reports::reports(&client, &out, command),
        ClientCommand::Kb(command) => reports::kb(&client, &out, command),
        ClientCommand::Webhooks(command) => webhooks::run(&client, &out, command),
        ClientCommand::Work(WorkCommand::Show { id }) => {
            let status: WorkStatus = client.get(&work_path(*id, 0))?;
            out.show(&status, output::inspection_page)
        }
        ClientCommand::EnrollmentTokens(command) => enrollment_tokens(&client, &out, command),
    }
}

fn enrollment_tokens(
    client: &ApiClient,
    out: &Printer,
    command: &EnrollmentTokensCommand,
) -> Result<(), CliError> {
    match command {
        EnrollmentTokensCommand::Create {
            expires_in,
            max_uses,
        } => {
            let created: EnrollmentTokenCreated = client.post(
                paths::ENROLLMENT_TOKENS,
                &NewEnrollmentToken {
                    expires_in_secs: *expires_in,
                    max_uses: *max_uses,
                },
            )?;
            out.show(&created, |c| {
                format!(
                    "enrollment token (shown once, store it now): {}\nname: {}  expires: {}  \
                     uses: {}",
                    c.token,
                    c.prefix,
                    c.expires_at
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "never".into()),
                    c.max_uses
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "unlimited".into()),
                )
            })
        }
        EnrollmentTokensCommand::List => {
            let list: Vec<EnrollmentTokenInfo> = client.get(paths::ENROLLMENT_TOKENS)?;
            out.show(&list, |l| output::enrollment_tokens_table(l))
        }
        EnrollmentTokensCommand::Revoke { prefix } => {
            let list: Vec<EnrollmentTokenInfo> = client.post(
                &paths::ENROLLMENT_TOKEN_REVOKE.replace("{prefix}", &encode(prefix)),
                &serde_json::json!({}),
            )?;
            out.show(&list, |_| {
                format!(
                    "enrollment token {} is revoked; it enrolls nobody from now on",
                    output::clean_line(prefix)
                )
            })
        }
    }
}

fn tickets(client: &ApiClient, out: &Printer, command: &TicketsCommand) -> Result<(), CliError> {
    match command {
        TicketsCommand::List {
            status,
            machine,
            priority,
            tier,
            assignee,
            unassigned,
            sort,
        } => {
            let filter = TicketFilter {
                status: *status,
                machine: machine.clone(),
                priority: *priority,
                tier: *tier,
                assignee: if *unassigned {
                    Some(String::new())
                } else {
                    assignee.clone()
                },
                q: None,
                sort: *sort,
            };
            let mut query = Vec::new();
            if let Some(s) = filter.status {
                query.push(format!("status={}", s.as_str()));
            }
            if let Some(m) = &filter.machine {
                query.push(format!("machine={}", encode(m)));
            }
            if let Some(p) = filter.priority {
                query.push(format!("priority={}", p.as_str()));
            }
            if let Some(t) = filter.tier {
                query.push(format!("tier={t}"));
            }
            if let Some(a) = &filter.assignee {
                query.push(format!("assignee={}", encode(a)));
            }
            if let Some(s) = filter.sort {
                query.push(format!("sort={}", s.as_str()));
            }
            let path = if query.is_empty() {
                paths::TICKETS.to_owned()
            } else {
                format!("{}?{}", paths::TICKETS, query.join("&"))
            };
            let list: Vec<TicketSummary> = client.get(&path)?;
            out.show(&list, |l| output::tickets_table(l))
        }
        TicketsCommand::Show { number } => {
            let ticket: TicketDetail = client.get(&format!("{}/{number}", paths::TICKETS))?;
            out.show(&ticket, output::ticket_page)
        }
        TicketsCommand::Update {
            number,
            status,
            priority,
            tier,
            assign,
            unassign,
            note,
        } => {
            let update = TicketUpdate {
                status: *status,
                priority: *priority,
                tier: *tier,
                assignee: if *unassign {
                    Some(String::new())
                } else {
                    assign.clone()
                },
                resolution_note: note.clone(),
            };
            let ticket: TicketDetail =
                client.patch(&format!("{}/{number}", paths::TICKETS), &update)?;
            out.show(&ticket, |t| {
                format!(
                    "#{}: status {}, priority {}, tier {}, assignee {}",
                    t.summary.number,
                    t.summary.status,
                    t.summary.priority,
                    t.summary.tier,
                    t.summary
                        .assignee
                        .as_deref()
                        .map(output::clean_line)
                        .unwrap_or_else(|| "-".into())
                ) + if note.is_some() {
                    "; resolution note recorded"
                } else {
                    ""
                }
            })
        }
        TicketsCommand::Comment {
            number,
            text,
            public,
        } => {
            let ticket: TicketDetail = client.post(
                &format!("{}/{number}/comments", paths::TICKETS),
                &NewComment {
                    body: text.clone(),
                    public: *public,
                },
            )?;
            out.show(&ticket, |t| {
                format!(
                    "{} comment added to #{} ({} comments)",
                    if *public { "public" } else { "internal" },
                    t.summary.number,
                    t.comments.len()
                )
            })
        }
        TicketsCommand::Escalate {
            number,
            to_tier,
            reason,
            assign,
        } => {
            let ticket: TicketDetail = client.post(
                &paths::TICKET_ESCALATE.replace("{n}", &number.to_string()),
                &EscalateRequest {
                    to_tier: *to_tier,
                    reason: reason.clone(),
                    assignee: assign.clone(),
                },
            )?;
            out.show(&ticket, |t| {
                format!(
                    "#{} escalated to tier {} ({})",
                    t.summary.number,
                    t.summary.tier,
                    t.summary.assignee.as_deref().map_or_else(
                        || format!("in the tier {} queue", t.summary.tier),
                        |a| format!("assigned to {}", output::clean_line(a))
                    )
                )
            })
        }
        TicketsCommand::Screenshot {
            number,
            out: file,
            force,
        } => {
            let png =
                client.get_bytes(&paths::TICKET_SCREENSHOT.replace("{n}", &number.to_string()))?;
            save_new(file, &png, *force)?;
            let saved = serde_json::json!({ "number": number, "file": file, "bytes": png.len() });
            out.show(&saved, |_| {
                format!(
                    "saved the screenshot of #{number} to {} ({} bytes)",
                    file.display(),
                    png.len()
                )
            })
        }
        TicketsCommand::Similar { number, limit } => reports::similar(client, out, *number, *limit),
    }
}

/// Writes `bytes` to `path`, refusing to replace an existing file unless `force`.
fn save_new(path: &Path, bytes: &[u8], force: bool) -> Result<(), CliError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::Failed(format!(
                "{} exists; pass --force to overwrite it",
                path.display()
            ))
        } else {
            CliError::Failed(format!("cannot write {}: {e}", path.display()))
        }
    })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", path.display())))
}

fn machines(client: &ApiClient, out: &Printer, command: &MachinesCommand) -> Result<(), CliError> {
    match command {
        MachinesCommand::List => {
            let list: Vec<MachineSummary> = client.get(paths::MACHINES)?;
            out.show(&list, |l| output::machines_table(l))
        }
        MachinesCommand::Show { machine } => {
            let detail: MachineDetail =
                client.get(&format!("{}/{}", paths::MACHINES, encode(machine)))?;
            out.show(&detail, output::machine_page)
        }
        MachinesCommand::Inspect {
            machine,
            ticket,
            timeout,
        } => inspect(client, out, machine, *ticket, *timeout),
        MachinesCommand::Approve { machine } => {
            let detail: MachineDetail = client.post(
                &format!("{}/{}/approve", paths::MACHINES, encode(machine)),
                &serde_json::json!({}),
            )?;
            out.show(&detail, |m| {
                format!(
                    "machine {} ({}) is {}",
                    output::clean_line(&m.summary.hostname),
                    m.summary.id,
                    m.summary.status
                )
            })
        }
        MachinesCommand::Revoke { machine } => {
            let detail: MachineDetail = client.post(
                &format!("{}/{}/revoke", paths::MACHINES, encode(machine)),
                &serde_json::json!({}),
            )?;
            out.show(&detail, |m| {
                format!(
                    "machine {} ({}) is revoked; its certificate is refused from now on",
                    output::clean_line(&m.summary.hostname),
                    m.summary.id
                )
            })
        }
    }
}

fn work_path(id: u64, wait_secs: u64) -> String {
    let path = paths::WORK.replace("{id}", &id.to_string());
    if wait_secs == 0 {
        path
    } else {
        format!("{path}?wait_secs={wait_secs}")
    }
}

/// Longest single wait for a change, below the client's request timeout.
const STATUS_WAIT_SECS: u64 = 25;

fn inspect(
    client: &ApiClient,
    out: &Printer,
    machine: &str,
    ticket: Option<u64>,
    timeout: u64,
) -> Result<(), CliError> {
    let started = std::time::Instant::now();
    let mut status: WorkStatus = client.post(
        &format!("{}/{}/inspect", paths::MACHINES, encode(machine)),
        &InspectRequest { ticket },
    )?;
    let name = output::clean_line(&status.hostname);
    let mut stderr = std::io::stderr().lock();
    if !status.machine_online {
        let detail: Result<MachineDetail, _> = client.get(&format!(
            "{}/{}",
            paths::MACHINES,
            encode(&status.machine_id)
        ));
        let seen = detail
            .map(|d| output::when(d.summary.last_seen_at))
            .unwrap_or_else(|_| "unknown".to_owned());
        writeln!(
            stderr,
            "machine {name} is offline (last seen {seen}); the request waits until {}",
            output::when(status.expires_at)
        )?;
    }
    let progress = !out.json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut shown = None;
    while !status.state.is_final() {
        let elapsed = started.elapsed().as_secs();
        if progress && shown != Some(status.state) {
            writeln!(
                stderr,
                "inspection {} of {name}: {} ({elapsed} s)",
                status.id,
                status.state.as_str()
            )?;
            shown = Some(status.state);
        }
        if elapsed >= timeout {
            return Err(CliError::StillWaiting {
                machine: name,
                id: status.id,
                state: status.state.as_str(),
                waited: timeout,
                expires: output::when(status.expires_at),
            });
        }
        let wait = (timeout - elapsed).clamp(1, STATUS_WAIT_SECS);
        status = client.get(&work_path(status.id, wait))?;
    }
    if progress {
        writeln!(
            stderr,
            "inspection {} of {name}: {} ({} s)",
            status.id,
            status.state.as_str(),
            started.elapsed().as_secs()
        )?;
    }
    drop(stderr);
    match status.state {
        WorkState::Done => out.show(&status, output::inspection_page),
        other => {
            if out.json {
                out.show(&status, |_| String::new())?;
            }
            Err(CliError::WorkEnded {
                machine: name,
                id: status.id,
                state: other.as_str(),
                reason: status
                    .error
                    .as_deref()
                    .map(|e| format!(": {}", output::clean_line(e)))
                    .unwrap_or_default(),
            })
        }
    }
}

fn users(client: &ApiClient, out: &Printer, command: &UsersCommand) -> Result<(), CliError> {
    match command {
        UsersCommand::Add { name, role, email } => {
            if let Some(address) = email {
                check_email(address).map_err(CliError::Failed)?;
            }
            let created: UserCreated = client.post(
                paths::USERS,
                &NewUser {
                    name: name.clone(),
                    role: *role,
                    email: email.clone(),
                },
            )?;
            out.show(&created, |c| {
                format!(
                    "user {} ({}) added. Token (shown once, store it now):\n{}",
                    c.name, c.role, c.token
                )
            })
        }
        UsersCommand::List => {
            let list: Vec<UserSummary> = client.get(paths::USERS)?;
            out.show(&list, |l| output::users_table(l))
        }
        UsersCommand::SetEmail { name, address } => {
            let address = address.trim();
            let email = (!address.is_empty()).then(|| address.to_owned());
            if let Some(address) = &email {
                check_email(address).map_err(CliError::Failed)?;
            }
            let list: Vec<UserSummary> = client.put(
                &USER_EMAIL.replace("{name}", &encode(name)),
                &UserEmail {
                    email: email.clone(),
                },
            )?;
            out.show(&list, |_| match &email {
                Some(address) => format!("{name}'s notifications go to {address}"),
                None => format!("{name} gets no e-mail notifications"),
            })
        }
        UsersCommand::Revoke { name } => {
            let list: Vec<UserSummary> = client.post(
                &format!("{}/{}/revoke", paths::USERS, encode(name)),
                &serde_json::json!({}),
            )?;
            out.show(&list, |_| format!("user {name} revoked"))
        }
    }
}

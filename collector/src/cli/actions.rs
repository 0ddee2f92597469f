//! Client subcommands for remote actions: the catalog (offline key and signing steps, then trust
//! and publish), actions, runs, and approvals.
//!
//! `catalog keygen`, `catalog sign` and `catalog endorse` work offline, on the admin's machine
//! that holds the private key; they never contact a collector.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand};
use lifeline_shared::v1::actions::{
    ActionInfo, ApprovalSetting, CatalogInfo, Decision, NewRun, Published, RunState, RunStatus,
    TrustKey, TrustedKeyInfo,
};
use lifeline_shared::v1::api::paths;
use lifeline_shared::v1::catalog::{
    CATALOG_TEXT_MAX_LEN, Catalog, KeyEndorsement, LintWarning, PublicKey, SignedCatalog,
    SigningKey, lint, split_param,
};
use lifeline_shared::v1::run::RunResult;

use super::client::ApiClient;
use super::output::{self, clean, clean_line, when};
use super::{CliError, Printer, encode};

/// File names `catalog keygen` writes.
pub const PRIVATE_KEY_FILE: &str = "lifeline-catalog.key";
pub const PUBLIC_KEY_FILE: &str = "lifeline-catalog.pub";

/// Longest one wait on a run's status (the collector caps it too).
const STATUS_WAIT_SECS: u64 = 25;

#[derive(Debug, Clone, Subcommand)]
pub enum CatalogCommand {
    /// Create a catalog signing key pair (offline): lifeline-catalog.key (private, 0600) and
    /// lifeline-catalog.pub
    Keygen {
        /// Directory to write the two files to (created if missing)
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Sign a catalog file (offline) and write FILE.signed beside it. Warns (and still signs)
    /// when a parameter can reach, at a lower risk or without consent, what another action
    /// guards, e.g. a medium restart whose pattern accepts reboot.target next to a high-risk
    /// reboot
    Sign {
        file: PathBuf,
        /// The private signing key
        #[arg(long, env = "LIFELINE_CATALOG_KEY", default_value = PRIVATE_KEY_FILE)]
        key: PathBuf,
    },
    /// Vouch for a new signing key with a trusted one (offline), for key rotation: writes
    /// NEW_KEY.endorsement beside it
    Endorse {
        /// The new key's .pub file
        new_key: PathBuf,
        /// The already-trusted private key that vouches for it
        #[arg(long, env = "LIFELINE_CATALOG_KEY", default_value = PRIVATE_KEY_FILE)]
        key: PathBuf,
    },
    /// Trust a public key to publish catalogs (admin)
    Trust {
        /// A lifeline-catalog.pub file
        key: PathBuf,
        /// An endorsement of this key by an already-trusted key (`catalog endorse`); agents
        /// that pinned the old key accept the new one only through it
        #[arg(long)]
        endorsement: Option<PathBuf>,
    },
    /// Publish a signed catalog (admin); refused unless a trusted key signed it and its
    /// version is newer than the published one
    Publish { file: PathBuf },
    /// The published catalog and the trusted keys
    Show,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ActionsCommand {
    /// Actions of the published catalog, with their parameters
    List,
    /// Make every run of an action wait for an admin's approval, or stop (admin)
    RequireApproval {
        action: String,
        /// Stop requiring approval (not possible for high-risk actions)
        #[arg(long)]
        off: bool,
    },
}

/// `run ACTION --machine M --param k=v ...`
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Action id (see `actions list`)
    pub action: String,
    /// Machine id or host name
    #[arg(long)]
    pub machine: String,
    /// A parameter value (repeatable)
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// The ticket this run belongs to: its result goes to the ticket's timeline
    #[arg(long)]
    pub ticket: Option<u64>,
    /// Why: shown to approvers and kept in the audit log
    #[arg(long)]
    pub reason: Option<String>,
    /// Ask an admin to approve this run even if the action does not need it
    #[arg(long)]
    pub require_approval: bool,
    /// Follow the run until it ends and print its output
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up waiting after this many seconds (the run itself goes on)
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
}

#[derive(Debug, Clone, Subcommand)]
pub enum RunsCommand {
    /// Recent runs, newest first
    List {
        /// Machine id or host name
        #[arg(long)]
        machine: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One run: where it stands, its output and the after-action check
    Show {
        id: u64,
        /// Follow the run until it ends
        #[arg(long)]
        wait: bool,
        /// With --wait: give up waiting after this many seconds
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum RequestsCommand {
    /// Run requests waiting for an admin's approval
    List,
}

// ---------------------------------------------------------------------------------------------
// Offline steps

fn read_text(path: &Path, what: &str, max: usize) -> Result<String, CliError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| CliError::Failed(format!("cannot read {what} {}: {e}", path.display())))?;
    if meta.len() > max as u64 {
        return Err(CliError::Failed(format!(
            "{what} {} is {} bytes; at most {max} are allowed",
            path.display(),
            meta.len()
        )));
    }
    std::fs::read_to_string(path)
        .map_err(|e| CliError::Failed(format!("cannot read {what} {}: {e}", path.display())))
}

/// Writes `text` to `path` through a temporary file, so a crash never leaves half a file.
fn write_file(path: &Path, text: &str, private: bool) -> Result<(), CliError> {
    let fail =
        |e: std::io::Error| CliError::Failed(format!("cannot write {}: {e}", path.display()));
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let mut tmp = match dir {
        Some(dir) => tempfile::NamedTempFile::new_in(dir),
        None => tempfile::NamedTempFile::new_in("."),
    }
    .map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if private { 0o600 } else { 0o644 };
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
            .map_err(fail)?;
    }
    #[cfg(not(unix))]
    let _ = private;
    tmp.write_all(text.as_bytes()).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

fn keygen(out_dir: &Path) -> Result<String, CliError> {
    std::fs::create_dir_all(out_dir).map_err(|e| {
        CliError::Failed(format!(
            "cannot create directory {}: {e}",
            out_dir.display()
        ))
    })?;
    let private = out_dir.join(PRIVATE_KEY_FILE);
    let public = out_dir.join(PUBLIC_KEY_FILE);
    for path in [&private, &public] {
        if path.exists() {
            return Err(CliError::Failed(format!(
                "{} already exists: refusing to overwrite a signing key (choose another --out)",
                path.display()
            )));
        }
    }
    let key = SigningKey::generate().map_err(|e| CliError::Failed(e.to_string()))?;
    write_file(&private, &key.to_pem(), true)?;
    write_file(&public, &key.public_key().to_pem(), false)?;
    Ok(format!(
        "wrote {} (PRIVATE: keep it offline, never copy it to a collector)\n\
         wrote {}\nfingerprint (SHA-256): {}\n\
         next: lifeline-collector catalog trust {} (on a collector, as an admin), and pin it on \
         agents with: lifeline-agent enroll ... --catalog-key {}",
        private.display(),
        public.display(),
        key.public_key().id(),
        public.display(),
        PUBLIC_KEY_FILE,
    ))
}

fn load_signing_key(path: &Path) -> Result<SigningKey, CliError> {
    let text = read_text(path, "signing key", 64 * 1024)?;
    SigningKey::from_pem(&text).map_err(|e| CliError::Failed(format!("{}: {e}", path.display())))
}

fn load_public_key(path: &Path) -> Result<PublicKey, CliError> {
    let text = read_text(path, "public key", 64 * 1024)?;
    PublicKey::from_pem(&text).map_err(|e| CliError::Failed(format!("{}: {e}", path.display())))
}

/// `FILE` + `suffix`, beside it.
fn beside(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// `catalog sign`: the lint's warnings go to stderr, the signing report to stdout.
fn sign(file: &Path, key_path: &Path) -> Result<String, CliError> {
    let (text, warnings) = sign_and_lint(file, key_path)?;
    let mut err = std::io::stderr();
    for warning in &warnings {
        writeln!(err, "warning: {warning}")?;
    }
    Ok(text)
}

/// Checks and signs `file`, and lints it ([`lint`]). Signing goes ahead despite warnings: the
/// admin may mean it (a kiosk fleet where restarting the display manager is routine), and the
/// warning names exactly what to narrow; refusing would only push admins to work around the tool.
fn sign_and_lint(file: &Path, key_path: &Path) -> Result<(String, Vec<LintWarning>), CliError> {
    let text = read_text(file, "catalog", CATALOG_TEXT_MAX_LEN)?;
    let catalog = Catalog::from_toml(&text)
        .map_err(|e| CliError::Failed(format!("{}: {e}", file.display())))?;
    let warnings = lint(&catalog);
    let key = load_signing_key(key_path)?;
    let signed = key
        .sign_catalog(&catalog)
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let json = signed
        .to_json()
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let out = beside(file, ".signed");
    write_file(&out, &json, false)?;
    let lint_line = match warnings.len() {
        0 => String::new(),
        1 => "1 lint warning (printed above): review it before you publish\n".to_owned(),
        n => format!("{n} lint warnings (printed above): review them before you publish\n"),
    };
    let report = format!(
        "signed catalog version {} ({} actions) with key {}\nwrote {}\n{lint_line}\
         next: lifeline-collector catalog publish {}",
        catalog.version(),
        catalog.actions().len(),
        key.public_key().id(),
        out.display(),
        out.display(),
    );
    Ok((report, warnings))
}

fn endorse(new_key: &Path, key_path: &Path) -> Result<String, CliError> {
    let new = load_public_key(new_key)?;
    let key = load_signing_key(key_path)?;
    let endorsement = key
        .endorse(&new)
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let out = beside(new_key, ".endorsement");
    write_file(
        &out,
        &endorsement
            .to_json()
            .map_err(|e| CliError::Failed(e.to_string()))?,
        false,
    )?;
    Ok(format!(
        "key {} endorsed by key {}\nwrote {}\n\
         next: lifeline-collector catalog trust {} --endorsement {}",
        new.id(),
        key.public_key().id(),
        out.display(),
        new_key.display(),
        out.display(),
    ))
}

/// Runs an offline `catalog` step, or returns `None` when the command needs a collector.
pub fn offline(command: &CatalogCommand) -> Option<Result<(), CliError>> {
    let result = match command {
        CatalogCommand::Keygen { out } => keygen(out),
        CatalogCommand::Sign { file, key } => sign(file, key),
        CatalogCommand::Endorse { new_key, key } => endorse(new_key, key),
        CatalogCommand::Trust { .. } | CatalogCommand::Publish { .. } | CatalogCommand::Show => {
            return None;
        }
    };
    Some(result.and_then(|text| {
        writeln!(std::io::stdout(), "{text}")?;
        Ok(())
    }))
}

// ---------------------------------------------------------------------------------------------
// Online steps

pub(super) fn catalog(
    client: &ApiClient,
    out: &Printer,
    command: &CatalogCommand,
) -> Result<(), CliError> {
    match command {
        CatalogCommand::Trust { key, endorsement } => {
            let public_key = read_text(key, "public key", 64 * 1024)?;
            let endorsement = endorsement
                .as_deref()
                .map(|path| {
                    let text = read_text(path, "endorsement", 64 * 1024)?;
                    KeyEndorsement::from_json(&text)
                        .map_err(|e| CliError::Failed(format!("{}: {e}", path.display())))
                })
                .transpose()?;
            let info: TrustedKeyInfo = client.post(
                paths::CATALOG_KEYS,
                &TrustKey {
                    public_key,
                    endorsement,
                },
            )?;
            out.show(&info, |k| {
                format!(
                    "the collector trusts key {} to publish catalogs (added by {})",
                    k.key_id,
                    clean_line(&k.added_by)
                )
            })
        }
        CatalogCommand::Publish { file } => {
            // Parsed here for a clear local error; the collector checks everything again.
            let text = read_text(file, "signed catalog", 2 * CATALOG_TEXT_MAX_LEN)?;
            let signed = SignedCatalog::from_json(&text)
                .map_err(|e| CliError::Failed(format!("{}: {e}", file.display())))?;
            let published: Published = client.post(paths::CATALOG, &signed)?;
            out.show(&published, |p| {
                let c = &p.catalog;
                if p.changed {
                    let mut text = format!(
                        "published catalog version {} ({} actions, key {})",
                        c.version, c.actions, c.key_id
                    );
                    if !p.expired_runs.is_empty() {
                        let ids: Vec<String> =
                            p.expired_runs.iter().map(ToString::to_string).collect();
                        text.push_str(&format!(
                            "\nexpired {} waiting run request(s) or queued run(s) from older \
                             catalog versions: {} (request them again if they are still needed)",
                            ids.len(),
                            ids.join(", ")
                        ));
                    }
                    text
                } else {
                    format!(
                        "catalog version {} was already published; nothing changed",
                        c.version
                    )
                }
            })
        }
        CatalogCommand::Show => {
            let keys: Vec<TrustedKeyInfo> = client.get(paths::CATALOG_KEYS)?;
            let catalog: Option<CatalogInfo> = match client.get(paths::CATALOG) {
                Ok(c) => Some(c),
                Err(super::client::ClientError::Status { status: 404, .. }) => None,
                Err(e) => return Err(e.into()),
            };
            let both = serde_json::json!({ "catalog": catalog, "keys": keys });
            out.show(&both, |_| catalog_page(catalog.as_ref(), &keys))
        }
        CatalogCommand::Keygen { .. }
        | CatalogCommand::Sign { .. }
        | CatalogCommand::Endorse { .. } => offline(command).unwrap_or(Ok(())),
    }
}

fn catalog_page(catalog: Option<&CatalogInfo>, keys: &[TrustedKeyInfo]) -> String {
    let mut page = match catalog {
        Some(c) => format!(
            "Catalog version {}: {} actions, signed by key {}\n  digest {}\n  published by {} at {}\n",
            c.version,
            c.actions,
            c.key_id,
            c.digest,
            clean_line(&c.published_by),
            when(c.published_at)
        ),
        None => "No catalog published yet.\n".to_owned(),
    };
    page.push_str("Trusted keys:\n");
    if keys.is_empty() {
        page.push_str("  none (add one with: lifeline-collector catalog trust KEY.pub)\n");
    }
    for k in keys {
        page.push_str(&format!(
            "  {}  added by {} at {}{}\n",
            k.key_id,
            clean_line(&k.added_by),
            when(k.added_at),
            k.endorsed_by
                .map(|by| format!(", endorsed by {by}"))
                .unwrap_or_default()
        ));
    }
    page
}

pub(super) fn actions(
    client: &ApiClient,
    out: &Printer,
    command: &ActionsCommand,
) -> Result<(), CliError> {
    match command {
        ActionsCommand::List => {
            let list: Vec<ActionInfo> = client.get(paths::ACTIONS)?;
            out.show(&list, |l| actions_table(l))
        }
        ActionsCommand::RequireApproval { action, off } => {
            let info: ActionInfo = client.put(
                &paths::ACTION_APPROVAL.replace("{id}", &encode(action)),
                &ApprovalSetting { required: !off },
            )?;
            out.show(&info, |a| {
                if a.requires_approval {
                    format!("every run of {} now waits for an admin's approval", a.id)
                } else {
                    format!("runs of {} no longer wait for an approval", a.id)
                }
            })
        }
    }
}

fn actions_table(actions: &[ActionInfo]) -> String {
    if actions.is_empty() {
        return "No actions: publish a catalog first (lifeline-collector catalog publish)."
            .to_owned();
    }
    let mut table = output::table(&[
        "ACTION",
        "TITLE",
        "RISK",
        "APPROVAL",
        "CONSENT",
        "PARAMETERS",
    ]);
    for a in actions {
        let params: Vec<String> = a
            .params
            .iter()
            .map(|p| format!("{}: {}", p.name, clean_line(&p.accepts)))
            .collect();
        table.add_row(vec![
            clean_line(&a.id),
            clean_line(&a.title),
            a.risk.to_string(),
            if a.requires_approval { "admin" } else { "-" }.to_owned(),
            if a.consent { "user" } else { "-" }.to_owned(),
            if params.is_empty() {
                "-".to_owned()
            } else {
                params.join("\n")
            },
        ]);
    }
    table.to_string()
}

fn parse_params(args: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    let mut params = BTreeMap::new();
    for arg in args {
        let (name, value) =
            split_param(arg).map_err(|e| CliError::Failed(format!("--param: {e}")))?;
        if params.insert(name.to_owned(), value.to_owned()).is_some() {
            return Err(CliError::Failed(format!("--param: {name} is given twice")));
        }
    }
    Ok(params)
}

fn run_path(id: u64, wait: u64) -> String {
    let path = paths::RUN.replace("{id}", &id.to_string());
    if wait == 0 {
        path
    } else {
        format!("{path}?wait_secs={wait}")
    }
}

pub(super) fn run(client: &ApiClient, out: &Printer, args: &RunArgs) -> Result<(), CliError> {
    let params = parse_params(&args.params)?;
    let status: RunStatus = client.post(
        paths::RUNS,
        &NewRun {
            action: args.action.clone(),
            machine: args.machine.clone(),
            params,
            ticket: args.ticket,
            reason: args.reason.clone(),
            require_approval: args.require_approval,
        },
    )?;
    if args.wait {
        return follow(client, out, status, args.timeout);
    }
    out.show(&status, |s| {
        let mut page = run_page(s);
        page.push_str(&format!(
            "follow it with: lifeline-collector runs show {} --wait",
            s.id
        ));
        page
    })
}

/// Waits for a run to end, telling stderr each step; prints the run; fails unless it succeeded.
fn follow(
    client: &ApiClient,
    out: &Printer,
    mut status: RunStatus,
    timeout: u64,
) -> Result<(), CliError> {
    let started = Instant::now();
    let mut stderr = std::io::stderr().lock();
    let name = clean_line(&status.hostname);
    let mut shown: Option<RunState> = None;
    loop {
        if !out.json && shown != Some(status.state) {
            let note = match status.state {
                RunState::AwaitingApproval => format!(
                    " (request {}: an admin must run `lifeline-collector approve {}`)",
                    status.id, status.id
                ),
                RunState::Queued if !status.machine_online => {
                    format!(" ({name} is offline; the run waits for it)")
                }
                RunState::AwaitingConsent => " (asking the user at the machine)".to_owned(),
                _ => String::new(),
            };
            writeln!(
                stderr,
                "run {} of {} on {name}: {}{note}",
                status.id,
                status.action,
                status.state.as_str().replace('_', " ")
            )?;
            shown = Some(status.state);
        }
        if status.state.is_final() {
            break;
        }
        let elapsed = started.elapsed().as_secs();
        if elapsed >= timeout {
            return Err(CliError::Failed(format!(
                "run {} is still {} after {timeout} s (follow it with: lifeline-collector runs \
                 show {} --wait)",
                status.id,
                status.state.as_str().replace('_', " "),
                status.id
            )));
        }
        let wait = (timeout - elapsed).clamp(1, STATUS_WAIT_SECS);
        status = client.get(&run_path(status.id, wait))?;
    }
    drop(stderr);
    out.show(&status, run_page)?;
    match status.state {
        RunState::Succeeded => Ok(()),
        state => Err(CliError::Failed(format!(
            "run {} {}{}",
            status.id,
            state.as_str().replace('_', " "),
            ending(&status)
        ))),
    }
}

/// `: reason` for a run that did not succeed.
fn ending(status: &RunStatus) -> String {
    match (&status.result, status.state) {
        (Some(RunResult::Refused { reason }), _) => format!(": {}", clean_line(reason)),
        (
            Some(RunResult::Finished {
                timed_out: true, ..
            }),
            _,
        ) => ": it ran past the action's timeout and was killed".to_owned(),
        (
            Some(RunResult::Finished {
                exit_code: Some(code),
                ..
            }),
            _,
        ) => {
            format!(": exit code {code}")
        }
        (
            Some(RunResult::Finished {
                signal: Some(sig), ..
            }),
            _,
        ) => {
            format!(": killed by signal {sig}")
        }
        (_, RunState::Expired) => status
            .expired_reason
            .as_deref()
            .map(|reason| format!(": {}", clean_line(reason)))
            .unwrap_or_default(),
        (_, RunState::Denied) => format!(
            " by {}: {}",
            status
                .decided_by
                .as_deref()
                .map(clean_line)
                .unwrap_or_default(),
            status
                .decision_reason
                .as_deref()
                .map(clean_line)
                .unwrap_or_default()
        ),
        _ => String::new(),
    }
}

fn seconds_after(from: time::OffsetDateTime, to: time::OffsetDateTime) -> String {
    format!("+{:.2} s", (to - from).as_seconds_f64())
}

/// A run for people: what, where, who, the steps it went through, its output.
pub fn run_page(s: &RunStatus) -> String {
    let mut page = format!(
        "Run {}: {} ({}) on {} ({})\n",
        s.id,
        clean_line(&s.action),
        clean_line(&s.action_title),
        clean_line(&s.hostname),
        s.machine_id
    );
    if !s.params.is_empty() {
        let params: Vec<String> = s
            .params
            .iter()
            .map(|(k, v)| format!("{}={}", clean_line(k), clean_line(v)))
            .collect();
        page.push_str(&format!("  parameters: {}\n", params.join(" ")));
    }
    page.push_str(&format!(
        "  requested by {} at {}, risk {}",
        clean_line(&s.requested_by),
        when(s.created_at),
        s.risk
    ));
    if let Some(ticket) = s.ticket {
        page.push_str(&format!(", ticket #{ticket}"));
    }
    page.push('\n');
    if let Some(reason) = &s.reason {
        page.push_str(&format!("  reason: {}\n", clean_line(reason)));
    }
    match s.approval {
        lifeline_shared::v1::actions::Approval::NotNeeded => {}
        approval => page.push_str(&format!(
            "  approval: {}{}{}\n",
            approval.as_str().replace('_', " "),
            s.decided_by
                .as_deref()
                .map(|by| format!(" by {}", clean_line(by)))
                .unwrap_or_default(),
            s.decision_reason
                .as_deref()
                .map(|r| format!(" ({})", clean_line(r)))
                .unwrap_or_default()
        )),
    }
    // The steps, from the timestamps: fast runs finish between two looks at the status.
    let mut steps = vec![format!("requested {}", when(s.created_at))];
    if let Some(at) = s.delivered_at {
        steps.push(format!("delivered {}", seconds_after(s.created_at, at)));
    }
    if let Some(at) = s.started_at {
        steps.push(format!("running {}", seconds_after(s.created_at, at)));
    }
    let end = match &s.result {
        Some(result) => Some(clean_line(&result.ending())),
        None if s.state.is_final() => Some(state_text(s)),
        None => None,
    };
    if let Some(end) = end {
        steps.push(end);
    } else {
        steps.push(format!("now {}", s.state.as_str().replace('_', " ")));
    }
    page.push_str(&format!("  {}\n", steps.join(" → ")));
    if let Some(expires) = s.expires_at {
        page.push_str(&format!("  waits until {}\n", when(expires)));
    }
    if let Some(RunResult::Finished {
        stdout,
        stderr,
        stdout_truncated,
        stderr_truncated,
        ..
    }) = &s.result
    {
        for (name, text, truncated) in [
            ("output", stdout, stdout_truncated),
            ("errors", stderr, stderr_truncated),
        ] {
            if text.is_empty() && !truncated {
                continue;
            }
            page.push_str(&format!("--- {name} ---\n{}", clean(text)));
            if !text.ends_with('\n') {
                page.push('\n');
            }
            if *truncated {
                page.push_str("[output truncated at the action's limit]\n");
            }
        }
    }
    if let Some(recheck) = &s.recheck {
        let (heading, lines) = recheck.summary();
        page.push_str(&format!("{}\n", clean_line(&heading)));
        for line in lines {
            page.push_str(&format!("  {}\n", clean_line(&line)));
        }
    }
    page
}

/// The run's state in words, with why it expired when a newer catalog ended it.
fn state_text(s: &RunStatus) -> String {
    let state = s.state.as_str().replace('_', " ");
    match &s.expired_reason {
        Some(reason) if s.state == RunState::Expired => format!("{state}: {}", clean_line(reason)),
        _ => state,
    }
}

fn runs_table(runs: &[RunStatus]) -> String {
    if runs.is_empty() {
        return "No runs.".to_owned();
    }
    let mut table = output::table(&[
        "RUN",
        "ACTION",
        "MACHINE",
        "REQUESTED BY",
        "REASON",
        "STATE",
        "CREATED",
    ]);
    for r in runs {
        table.add_row(vec![
            r.id.to_string(),
            clean_line(&r.action),
            clean_line(&r.hostname),
            clean_line(&r.requested_by),
            r.reason
                .as_deref()
                .map(clean_line)
                .unwrap_or_else(|| "-".to_owned()),
            state_text(r),
            when(r.created_at),
        ]);
    }
    table.to_string()
}

pub(super) fn runs(
    client: &ApiClient,
    out: &Printer,
    command: &RunsCommand,
) -> Result<(), CliError> {
    match command {
        RunsCommand::List { machine, limit } => {
            let mut path = format!("{}?limit={limit}", paths::RUNS);
            if let Some(machine) = machine {
                path.push_str(&format!("&machine={}", encode(machine)));
            }
            let list: Vec<RunStatus> = client.get(&path)?;
            out.show(&list, |l| runs_table(l))
        }
        RunsCommand::Show { id, wait, timeout } => {
            let status: RunStatus = client.get(&run_path(*id, 0))?;
            if *wait {
                follow(client, out, status, *timeout)
            } else {
                out.show(&status, run_page)
            }
        }
    }
}

pub(super) fn requests(
    client: &ApiClient,
    out: &Printer,
    command: &RequestsCommand,
) -> Result<(), CliError> {
    match command {
        RequestsCommand::List => {
            let list: Vec<RunStatus> =
                client.get(&format!("{}?state=awaiting_approval", paths::RUNS))?;
            if out.json {
                return out.show(&list, |l| runs_table(l));
            }
            // Requests that would still be waiting had a newer catalog not ended them: whoever
            // looks for their request here learns why it is gone.
            let recent: Vec<RunStatus> = client.get(&format!("{}?limit=100", paths::RUNS))?;
            let cutoff = time::OffsetDateTime::now_utc()
                - time::Duration::seconds(lifeline_shared::v1::actions::APPROVAL_TTL_SECS);
            let ended: Vec<RunStatus> = recent
                .into_iter()
                .filter(|r| {
                    r.approval == lifeline_shared::v1::actions::Approval::Expired
                        && r.expired_reason.is_some()
                        && r.created_at > cutoff
                })
                .collect();
            out.show(&list, |l| {
                let mut text = if l.is_empty() {
                    "No run requests are waiting for an approval.".to_owned()
                } else {
                    runs_table(l)
                };
                if !ended.is_empty() {
                    text.push_str(
                        "\nExpired by a newer catalog (request the run again if it is still \
                         needed):\n",
                    );
                    text.push_str(&runs_table(&ended));
                }
                text
            })
        }
    }
}

pub(super) fn decide(
    client: &ApiClient,
    out: &Printer,
    id: u64,
    approve: bool,
    reason: Option<&str>,
) -> Result<(), CliError> {
    let path = if approve {
        paths::RUN_APPROVE
    } else {
        paths::RUN_DENY
    }
    .replace("{id}", &id.to_string());
    let status: RunStatus = client.post(
        &path,
        &Decision {
            reason: reason.map(str::to_owned),
        },
    )?;
    out.show(&status, |s| {
        if approve {
            format!(
                "approved run {} ({} on {}); it is {} now",
                s.id,
                clean_line(&s.action),
                clean_line(&s.hostname),
                s.state.as_str().replace('_', " ")
            )
        } else {
            format!(
                "denied run {} ({} on {})",
                s.id,
                clean_line(&s.action),
                clean_line(&s.hostname)
            )
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn params_are_name_value_pairs_given_once() {
        let p = parse_params(&["unit=nginx.service".into(), "size=a=b".into()]).unwrap();
        assert_eq!(p["unit"], "nginx.service");
        assert_eq!(p["size"], "a=b");
        let e = parse_params(&["unit".into()]).unwrap_err().to_string();
        assert!(e.contains("--param"), "{e}");
        let e = parse_params(&["a=1".into(), "a=2".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("given twice"), "{e}");
    }

    #[test]
    fn keygen_sign_and_endorse_work_offline_and_never_overwrite_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let text = keygen(dir.path()).unwrap();
        assert!(text.contains("fingerprint"), "{text}");
        let private = dir.path().join(PRIVATE_KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&private).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = keygen(dir.path()).unwrap_err().to_string();
        assert!(again.contains("refusing to overwrite"), "{again}");

        let catalog = dir.path().join("catalog.toml");
        std::fs::write(&catalog, include_str!("../../../docs/catalog.example.toml")).unwrap();
        let (text, warnings) = sign_and_lint(&catalog, &private).unwrap();
        assert!(text.contains("catalog.toml.signed"), "{text}");
        assert_eq!(warnings, [], "the example catalog lints clean");
        assert!(!text.contains("warning"), "{text}");
        let signed = std::fs::read_to_string(beside(&catalog, ".signed")).unwrap();
        let signed = SignedCatalog::from_json(&signed).unwrap();
        let public = load_public_key(&dir.path().join(PUBLIC_KEY_FILE)).unwrap();
        signed.verify(&[public]).unwrap();

        std::fs::write(&catalog, "version = 1\n[[action]]\nid = \"x\"\n").unwrap();
        let e = sign(&catalog, &private).unwrap_err().to_string();
        assert!(e.contains("catalog.toml"), "{e}");
        let e = sign(&catalog, &dir.path().join("missing.key"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("catalog.toml") || e.contains("missing.key"),
            "{e}"
        );

        // A catalog whose medium restart accepts any name: signed, with a warning naming the
        // action, the parameter and the stricter action it sidesteps.
        let loose = include_str!("../../../docs/catalog.example.toml").replacen(
            "[action.params.unit]\ntype = \"service\"",
            "[action.params.unit]\ntype = \"string\"\npattern = \"[A-Za-z0-9@._-]+\"\nmax_len = 256",
            1,
        );
        std::fs::write(&catalog, loose).unwrap();
        let (text, warnings) = sign_and_lint(&catalog, &private).unwrap();
        assert!(text.contains("1 lint warning"), "{text}");
        let warning = warnings.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(warning.len(), 1, "{warning:?}");
        for part in [
            "action restart-unit, parameter unit",
            "reboots, powers off",
            "action reboot guards with high risk with consent",
        ] {
            assert!(warning[0].contains(part), "{} lacks {part}", warning[0]);
        }
        let signed = std::fs::read_to_string(beside(&catalog, ".signed")).unwrap();
        SignedCatalog::from_json(&signed)
            .unwrap()
            .verify(&[public])
            .unwrap();

        let other = dir.path().join("new");
        keygen(&other).unwrap();
        let new_pub = other.join(PUBLIC_KEY_FILE);
        endorse(&new_pub, &private).unwrap();
        let endorsement = std::fs::read_to_string(beside(&new_pub, ".endorsement")).unwrap();
        let endorsement = KeyEndorsement::from_json(&endorsement).unwrap();
        assert_eq!(
            lifeline_shared::v1::catalog::accept_endorsed_key(&[public], &endorsement).unwrap(),
            load_public_key(&new_pub).unwrap()
        );
    }
}

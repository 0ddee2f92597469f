//! Running one remote action the collector relayed: every check of the safety model, in order,
//! then the program through [`runner`].
//!
//! The collector is not trusted for what runs. [`execute`] refuses, with the reason in plain
//! words, in this order:
//!
//! 1. a run meant for another machine;
//! 2. an expired run, or one that claims to stay valid longer than [`RUN_LIFETIME_MAX`] (its id
//!    would have to be remembered that long);
//! 3. a malformed or already received run id. The id is recorded here, before anything runs, so
//!    a second delivery — even during the run — is refused, and one run id has one outcome;
//! 4. an action whose signature does not check out against a trusted key;
//! 5. an action from an older catalog than one already verified (rollback);
//! 6. an action written for another operating system;
//! 7. what the local policy (`policy.toml`) forbids;
//! 8. parameter values that do not fit their types (injection attempts end here), and a `pid`
//!    that names a process whose end ends the machine's sessions ([`target`]);
//! 9. an action that needs the end user's consent when nobody can give it.
//!
//! Then the argument vector is built from the verified action and the checked values and
//! executed directly, with the action's timeout enforced on its whole process group, a clean
//! environment, and output captured up to the action's limit.

use lifeline_shared::v1::catalog::{
    Action, Os, ParamType, ParamsError, ValidatedParams, VerifiedAction, VerifyError,
};
use lifeline_shared::v1::run::{BadRunId, RunId, RunOutcome, RunRequest, RunResult};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::exec::policy::{Policy, PolicyRefusal};
use crate::exec::runner::{self, Options, RunError};
use crate::exec::target::{self, ProtectedProcess};
use crate::trust::{TrustError, TrustStore};

/// Longest a run may claim to stay valid: its id is remembered (replay protection) until then.
pub const RUN_LIFETIME_MAX: time::Duration = time::Duration::days(7);

/// The refusal reason for an action that needs consent while no user can give it.
pub const NO_CONSENT: &str = "no user available to consent";

/// What [`execute`] needs to know about this machine and this moment.
#[derive(Debug, Clone, Copy)]
pub struct ActionContext<'a> {
    /// This machine's id, as enrollment recorded it.
    pub machine_id: &'a str,
    pub trust: &'a TrustStore,
    pub policy: &'a Policy,
    /// The current time: passed in, never read inside.
    pub now: OffsetDateTime,
    /// Whether someone at the machine can be asked to agree ([`RunHooks::ask_consent`]). When
    /// `false`, actions with `consent = true` are refused with [`NO_CONSENT`].
    pub user_can_consent: bool,
}

/// The end user's answer to a consent request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    Allowed,
    Denied,
    /// Nobody answered in time: the same as a denial.
    TimedOut,
    /// Nobody could be asked after all (no desktop session).
    NoUser,
}

/// What happens around the checks: asking the end user, and hearing that the program starts.
pub trait RunHooks {
    /// Asks the person at the machine whether `action` may run. Called only when every other
    /// check passed and [`ActionContext::user_can_consent`] is true.
    fn ask_consent(&self, _action: &Action, _request: &RunRequest) -> Consent {
        Consent::Allowed
    }

    /// Every check passed; the program starts as soon as this returns.
    fn starting(&self, _action: &Action) {}
}

/// No hooks: consent is granted whenever [`ActionContext::user_can_consent`] allows asking.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl RunHooks for NoHooks {}

/// Why a run was refused. The message is what the technician sees.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("run is for machine {wanted}, but this is machine {this}")]
    OtherMachine { wanted: String, this: String },
    #[error("run expired at {expires_at} (the agent's time is {now})")]
    Expired { expires_at: String, now: String },
    #[error(
        "run expires at {expires_at}, more than {} days after the agent's time {now}",
        RUN_LIFETIME_MAX.whole_days()
    )]
    ExpiresTooLate { expires_at: String, now: String },
    #[error(transparent)]
    BadRunId(#[from] BadRunId),
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error(
        "no catalog signing key is trusted on this machine, so it refuses every action (pin one \
         with `lifeline-agent trust pin KEY.pub` or enroll with --catalog-key KEY.pub)"
    )]
    NoTrustedKey,
    #[error("unverified action refused: {0}")]
    Signature(#[source] VerifyError),
    #[error("action {action} is written for {wanted}, not for this system ({this})")]
    WrongOs {
        action: String,
        wanted: String,
        this: &'static str,
    },
    #[error(transparent)]
    Policy(#[from] PolicyRefusal),
    #[error(transparent)]
    Params(#[from] ParamsError),
    #[error("action {action}, parameter {param}: {reason}")]
    ProtectedProcess {
        action: String,
        param: String,
        #[source]
        reason: ProtectedProcess,
    },
    #[error("{NO_CONSENT}")]
    NoConsent,
    #[error("the user at the machine denied the action")]
    ConsentDenied,
    #[error("the user at the machine did not answer in time (counted as a denial)")]
    ConsentTimedOut,
    #[error("action {action}: {source}")]
    Start {
        action: String,
        #[source]
        source: RunError,
    },
}

/// Checks `request` and, when every check passes, runs it. Never fails: a refusal is an answer.
pub fn execute(request: &RunRequest, ctx: &ActionContext<'_>) -> RunOutcome {
    execute_with(request, ctx, &NoHooks)
}

/// [`execute`], with `hooks` asked for consent and told when the program starts.
pub fn execute_with(
    request: &RunRequest,
    ctx: &ActionContext<'_>,
    hooks: &dyn RunHooks,
) -> RunOutcome {
    let checked = check(request, ctx, hooks);
    let result = match checked.and_then(|(action, argv)| {
        hooks.starting(action.action());
        run(&action, &argv)
    }) {
        Ok(result) => result,
        Err(refusal) => RunResult::refused(refusal.to_string()),
    };
    RunOutcome {
        run_id: request.run_id.clone(),
        result,
    }
}

/// Every check, in the documented order. Returns the verified action and the argument vector.
fn check(
    request: &RunRequest,
    ctx: &ActionContext<'_>,
    hooks: &dyn RunHooks,
) -> Result<(VerifiedAction, Vec<String>), Refusal> {
    // 1. Machine.
    if request.machine_id != ctx.machine_id {
        return Err(Refusal::OtherMachine {
            wanted: quoted(&request.machine_id),
            this: quoted(ctx.machine_id),
        });
    }

    // 2. Expiry.
    if request.expires_at <= ctx.now {
        return Err(Refusal::Expired {
            expires_at: rfc3339(request.expires_at),
            now: rfc3339(ctx.now),
        });
    }
    if request.expires_at - ctx.now > RUN_LIFETIME_MAX {
        return Err(Refusal::ExpiresTooLate {
            expires_at: rfc3339(request.expires_at),
            now: rfc3339(ctx.now),
        });
    }

    // 3. Run id: checked and recorded in one step.
    let run_id: RunId = request.run_id.parse()?;
    ctx.trust.record_run(&run_id, request.expires_at, ctx.now)?;

    // 4. Signature.
    let keys = ctx.trust.public_keys()?;
    if keys.is_empty() {
        return Err(Refusal::NoTrustedKey);
    }
    let verified = request.action.verify(&keys).map_err(Refusal::Signature)?;
    let action = verified.action();

    // 5. Rollback.
    ctx.trust
        .accept_catalog_version(verified.catalog_version())?;

    // 6. Operating system.
    let this_os = Os::current();
    if !this_os.is_some_and(|os| action.runs_on(os)) {
        return Err(Refusal::WrongOs {
            action: action.id().to_string(),
            wanted: action
                .os()
                .iter()
                .map(|os| os.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            this: this_os.map_or(std::env::consts::OS, Os::as_str),
        });
    }

    // 7. Local policy.
    ctx.policy.check(action)?;

    // 8. Parameters.
    let params = action.validate_params(&request.params)?;
    check_pids(action, &params)?;

    let argv = action.argv(&params)?;

    // 9. Consent, last: the user is asked only about a run that would otherwise go ahead.
    if action.consent() {
        if !ctx.user_can_consent {
            return Err(Refusal::NoConsent);
        }
        match hooks.ask_consent(action, request) {
            Consent::Allowed => {}
            Consent::Denied => return Err(Refusal::ConsentDenied),
            Consent::TimedOut => return Err(Refusal::ConsentTimedOut),
            Consent::NoUser => return Err(Refusal::NoConsent),
        }
    }
    Ok((verified, argv))
}

/// Refuses a `pid` value that names a protected process ([`target::check_pid`]).
fn check_pids(action: &Action, params: &ValidatedParams) -> Result<(), Refusal> {
    for (name, ty) in action.params() {
        if *ty != ParamType::Pid {
            continue;
        }
        // A validated pid is a canonical positive integer; anything else cannot get here.
        let Some(pid) = params
            .get(name.as_str())
            .and_then(|v| v.parse::<u32>().ok())
        else {
            continue;
        };
        target::check_pid(pid).map_err(|reason| Refusal::ProtectedProcess {
            action: action.id().to_string(),
            param: name.to_string(),
            reason,
        })?;
    }
    Ok(())
}

/// Runs the checked argument vector with the action's bounds.
fn run(verified: &VerifiedAction, argv: &[String]) -> Result<RunResult, Refusal> {
    let action: &Action = verified.action();
    let args = argv.get(1..).unwrap_or_default();
    let limit = usize::try_from(action.output_limit_bytes()).unwrap_or(usize::MAX);
    let options = Options::action(action.timeout(), limit);
    let output =
        runner::run_with(action.program(), args, &options).map_err(|source| Refusal::Start {
            action: action.id().to_string(),
            source,
        })?;
    Ok(RunResult::Finished {
        exit_code: output.exit_code(),
        signal: output.signal(),
        timed_out: output.timed_out,
        duration_ms: u64::try_from(output.elapsed.as_millis()).unwrap_or(u64::MAX),
        // The one point where output becomes what is sent: secrets never leave the machine.
        stdout: crate::redact::redact_output(&output.stdout_text()),
        stderr: crate::redact::redact_output(&output.stderr_text()),
        stdout_truncated: output.stdout_truncated,
        stderr_truncated: output.stderr_truncated,
    })
}

/// Untrusted text for a message: escaped, and cut short when long.
fn quoted(text: &str) -> String {
    const SHOWN: usize = 64;
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{:?}... ({} bytes)", &text[..cut], text.len()),
        None => format!("{text:?}"),
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

#[cfg(all(test, target_os = "linux"))]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::LazyLock;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration as StdDuration, Instant};

    use lifeline_shared::v1::catalog::{Catalog, SignedAction, SigningKey};
    use time::Duration;
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-11-23 10:00 UTC);
    const MACHINE: &str = "m-0001";
    const VERSION: u64 = 5;

    static KEY: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::generate().unwrap());
    static OTHER_KEY: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::generate().unwrap());

    const CATALOG: &str = r#"
version = 5

[[action]]
id = "say"
title = "Say something"
description = "Prints its text."
program = "/usr/bin/echo"
args = ["{text}"]
timeout_secs = 10
output_limit_bytes = 4096
risk = "low"
consent = false
os = ["linux", "macos"]

[action.params.text]
type = "string"
pattern = "[A-Za-z0-9 ,.!]*"
max_len = 64

[[action]]
id = "nap"
title = "Sleep"
description = "Sleeps, and times out after two seconds."
program = "/usr/bin/sleep"
args = ["{secs}"]
timeout_secs = 2
output_limit_bytes = 100
risk = "low"
consent = false
os = ["linux"]

[action.params.secs]
type = "integer"
min = 0
max = 60

[[action]]
id = "count"
title = "Count"
description = "Prints numbers, more than it may."
program = "/usr/bin/seq"
args = ["1", "{n}"]
timeout_secs = 10
output_limit_bytes = 100
risk = "low"
consent = false
os = ["linux"]

[action.params.n]
type = "integer"
min = 1
max = 100000

[[action]]
id = "probe-process"
title = "Probe a process"
description = "Signal 0: checks that the process exists, harms nothing."
program = "/usr/bin/kill"
args = ["-0", "{pid}"]
timeout_secs = 10
output_limit_bytes = 100
risk = "medium"
consent = false
os = ["linux"]

[action.params.pid]
type = "pid"

[[action]]
id = "windows-only"
title = "Windows"
description = "d"
program = "C:\\Windows\\System32\\ipconfig.exe"
args = ["/flushdns"]
timeout_secs = 10
output_limit_bytes = 100
risk = "low"
consent = false
os = ["windows"]

[[action]]
id = "needs-consent"
title = "Consent"
description = "d"
program = "/usr/bin/true"
timeout_secs = 10
output_limit_bytes = 100
risk = "medium"
consent = true
os = ["linux"]

[[action]]
id = "risky"
title = "Risky"
description = "d"
program = "/usr/bin/true"
timeout_secs = 10
output_limit_bytes = 100
risk = "high"
consent = false
os = ["linux"]

[[action]]
id = "leaky"
title = "Leaky"
description = "Prints a password, as a journal or config file might."
program = "/usr/bin/printf"
args = ["db_password=hunter2x\\nok\\n"]
timeout_secs = 10
output_limit_bytes = 100
risk = "low"
consent = false
os = ["linux"]

[[action]]
id = "missing"
title = "Missing"
description = "d"
program = "/usr/bin/lifeline-no-such-program"
timeout_secs = 10
output_limit_bytes = 100
risk = "low"
consent = false
os = ["linux"]
"#;

    static CATALOG_PARSED: LazyLock<Catalog> =
        LazyLock::new(|| Catalog::from_toml(CATALOG).unwrap());

    fn signed(id: &str) -> SignedAction {
        KEY.sign_action(VERSION, CATALOG_PARSED.action(id).unwrap())
            .unwrap()
    }

    fn fresh_run_id() -> String {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&NEXT.fetch_add(1, Ordering::SeqCst).to_be_bytes());
        bytes[4..8].copy_from_slice(&std::process::id().to_be_bytes());
        RunId::from_bytes(bytes).to_string()
    }

    fn request(action: SignedAction, params: &[(&str, &str)]) -> RunRequest {
        RunRequest {
            run_id: fresh_run_id(),
            machine_id: MACHINE.to_owned(),
            action,
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            requested_by: "tech".to_owned(),
            approved_by: None,
            reason: Some("testing".to_owned()),
            ticket: Some(42),
            expires_at: NOW + Duration::minutes(10),
            endorsements: Vec::new(),
        }
    }

    struct Machine {
        _tmp: tempfile::TempDir,
        trust: TrustStore,
        policy: Policy,
        user_can_consent: bool,
    }

    impl Machine {
        fn new() -> Machine {
            let tmp = tempfile::tempdir().unwrap();
            let trust = TrustStore::open_file(tmp.path().join("catalog-trust.json")).unwrap();
            trust.pin(&[KEY.public_key()], NOW).unwrap();
            Machine {
                _tmp: tmp,
                trust,
                policy: Policy::default(),
                user_can_consent: false,
            }
        }

        fn with_policy(text: &str) -> Machine {
            Machine {
                policy: Policy::from_toml(text, Path::new("policy.toml")).unwrap(),
                ..Machine::new()
            }
        }

        fn ctx(&self) -> ActionContext<'_> {
            ActionContext {
                machine_id: MACHINE,
                trust: &self.trust,
                policy: &self.policy,
                now: NOW,
                user_can_consent: self.user_can_consent,
            }
        }

        fn execute(&self, request: &RunRequest) -> RunResult {
            let outcome = execute(request, &self.ctx());
            assert_eq!(outcome.run_id, request.run_id);
            outcome.result
        }

        /// The refusal reason; fails the test when the run was not refused.
        fn refusal(&self, request: &RunRequest) -> String {
            match self.execute(request) {
                RunResult::Refused { reason } => {
                    assert!(!reason.contains('\n'), "not one line: {reason:?}");
                    reason
                }
                finished => panic!("expected a refusal, got {finished:?}"),
            }
        }
    }

    fn stdout_of(result: &RunResult) -> &str {
        match result {
            RunResult::Finished { stdout, .. } => stdout,
            refused => panic!("expected a run, got {refused:?}"),
        }
    }

    #[test]
    fn secrets_in_action_output_are_masked_before_the_result_is_sent() {
        let machine = Machine::new();
        let result = machine.execute(&request(signed("leaky"), &[]));
        assert_eq!(stdout_of(&result), "db_password=***\nok\n");
    }

    #[test]
    fn an_approved_action_runs_and_its_output_comes_back() {
        let machine = Machine::new();
        let result = machine.execute(&request(signed("say"), &[("text", "hello, world")]));
        assert!(result.succeeded(), "{result:?}");
        assert_eq!(stdout_of(&result), "hello, world\n");
        let RunResult::Finished {
            exit_code,
            signal,
            timed_out,
            stdout_truncated,
            ..
        } = result
        else {
            unreachable!()
        };
        assert_eq!((exit_code, signal, timed_out), (Some(0), None, false));
        assert!(!stdout_truncated);
        // Running a verified action records its catalog version.
        assert_eq!(machine.trust.catalog_version().unwrap(), Some(VERSION));
    }

    #[test]
    fn the_request_travels_as_json() {
        let request = request(signed("say"), &[("text", "hi")]);
        let json = serde_json::to_string(&request).unwrap();
        assert!(
            json.contains("\"expires_at\":\"2026-11-23T10:10:00Z\""),
            "{json}"
        );
        let back: RunRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, request);
        assert!(Machine::new().execute(&back).succeeded());
    }

    #[test]
    fn a_run_for_another_machine_is_refused() {
        let machine = Machine::new();
        let mut run = request(signed("say"), &[("text", "hi")]);
        run.machine_id = "m-0002".to_owned();
        assert_eq!(
            machine.refusal(&run),
            "run is for machine \"m-0002\", but this is machine \"m-0001\""
        );
        // Not recorded: the right machine may still get it.
        let id: RunId = run.run_id.parse().unwrap();
        assert!(!machine.trust.has_seen_run(&id, NOW).unwrap());
    }

    #[test]
    fn an_expired_run_is_refused() {
        let machine = Machine::new();
        let mut run = request(signed("say"), &[("text", "hi")]);
        run.expires_at = NOW;
        assert_eq!(
            machine.refusal(&run),
            "run expired at 2026-11-23T10:00:00Z (the agent's time is 2026-11-23T10:00:00Z)"
        );
        run.expires_at = NOW + RUN_LIFETIME_MAX + Duration::seconds(1);
        let reason = machine.refusal(&run);
        assert!(reason.contains("more than 7 days after"), "{reason}");
    }

    #[test]
    fn a_replayed_run_id_is_refused() {
        let machine = Machine::new();
        let run = request(signed("say"), &[("text", "once")]);
        assert!(machine.execute(&run).succeeded());
        let reason = machine.refusal(&run);
        assert_eq!(
            reason,
            format!(
                "run {} was already received: refusing to run it again",
                run.run_id
            )
        );
        // Even with a new expiry or other parameters.
        let mut again = run.clone();
        again.expires_at = NOW + Duration::hours(1);
        again.params.insert("text".into(), "twice".into());
        assert!(machine.refusal(&again).contains("already received"));
    }

    #[test]
    fn a_replay_during_the_run_is_refused() {
        let machine = Machine::new();
        let nap = request(signed("nap"), &[("secs", "1")]);
        let nap_id: RunId = nap.run_id.parse().unwrap();
        std::thread::scope(|s| {
            let first = s.spawn(|| machine.execute(&nap));
            let until = Instant::now() + StdDuration::from_secs(5);
            while !machine.trust.has_seen_run(&nap_id, NOW).unwrap() && Instant::now() < until {
                std::thread::sleep(StdDuration::from_millis(5));
            }
            let reason = machine.refusal(&nap);
            assert!(reason.contains("already received"), "{reason}");
            assert!(
                !first.is_finished(),
                "the first run should still be sleeping"
            );
            let first = first.join().unwrap();
            assert!(first.succeeded(), "{first:?}");
        });
    }

    #[test]
    fn a_malformed_run_id_is_refused() {
        let machine = Machine::new();
        let mut run = request(signed("say"), &[("text", "hi")]);
        run.run_id = "../../etc/passwd".to_owned();
        assert_eq!(
            machine.refusal(&run),
            "run id \"../../etc/passwd\" is not 32 lowercase hex digits"
        );
    }

    #[test]
    fn an_action_signed_by_an_untrusted_key_is_refused() {
        let machine = Machine::new();
        let foreign = OTHER_KEY
            .sign_action(VERSION, CATALOG_PARSED.action("say").unwrap())
            .unwrap();
        let reason = machine.refusal(&request(foreign, &[("text", "hi")]));
        assert_eq!(
            reason,
            format!(
                "unverified action refused: action say is signed by key {}, which is not trusted",
                OTHER_KEY.public_key().id()
            )
        );
        // Nothing verified, nothing recorded as a catalog version.
        assert_eq!(machine.trust.catalog_version().unwrap(), None);
    }

    #[test]
    fn an_altered_action_is_refused() {
        let machine = Machine::new();
        let json = signed("say").to_json().unwrap();
        // The collector's database was edited: another program, the same signature.
        let altered =
            SignedAction::from_json(&json.replace("/usr/bin/echo", "/usr/bin/id")).unwrap();
        let reason = machine.refusal(&request(altered, &[("text", "hi")]));
        assert!(
            reason
                .starts_with("unverified action refused: action say: the signature does not match"),
            "{reason}"
        );
        // Or the catalog version it claims.
        let bumped = SignedAction::from_json(
            &json.replace("\"catalog_version\": 5", "\"catalog_version\": 6"),
        )
        .unwrap();
        assert!(
            machine
                .refusal(&request(bumped, &[("text", "hi")]))
                .contains("the signature does not match")
        );
    }

    #[test]
    fn without_a_trusted_key_nothing_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let machine = Machine {
            trust: TrustStore::open_file(tmp.path().join("catalog-trust.json")).unwrap(),
            ..Machine::new()
        };
        assert_eq!(
            machine.refusal(&request(signed("say"), &[("text", "hi")])),
            "no catalog signing key is trusted on this machine, so it refuses every action (pin \
             one with `lifeline-agent trust pin KEY.pub` or enroll with --catalog-key KEY.pub)"
        );
    }

    #[test]
    fn an_action_from_an_older_catalog_is_refused() {
        let machine = Machine::new();
        machine.trust.accept_catalog_version(VERSION + 1).unwrap();
        assert_eq!(
            machine.refusal(&request(signed("say"), &[("text", "hi")])),
            "catalog version 5 is older than version 6, which is already in use: refusing to roll \
             back"
        );
    }

    #[test]
    fn an_action_for_another_system_is_refused() {
        let machine = Machine::new();
        assert_eq!(
            machine.refusal(&request(signed("windows-only"), &[])),
            "action windows-only is written for windows, not for this system (linux)"
        );
    }

    #[test]
    fn the_local_policy_is_obeyed() {
        let off = Machine::with_policy("actions = \"none\"");
        assert!(
            off.refusal(&request(signed("say"), &[("text", "hi")]))
                .starts_with("remote actions are switched off on this machine")
        );
        let subset = Machine::with_policy("actions = [\"nap\", \"risky\"]");
        assert_eq!(
            subset.refusal(&request(signed("say"), &[("text", "hi")])),
            "action say is not allowed by this machine's local policy (allowed: nap, risky)"
        );
        assert!(subset.execute(&request(signed("risky"), &[])).succeeded());
        let capped = Machine::with_policy("max_risk = \"medium\"");
        assert_eq!(
            capped.refusal(&request(signed("risky"), &[])),
            "action risky is high risk; this machine's local policy allows at most medium risk"
        );
        assert!(
            capped
                .execute(&request(signed("say"), &[("text", "hi")]))
                .succeeded()
        );
    }

    #[test]
    fn injection_attempts_are_refused_before_anything_runs() {
        let machine = Machine::new();
        let long = "a".repeat(2000);
        for attempt in [
            "; rm -rf /",
            "$(id)",
            "`id`",
            "hi\nrm -rf /",
            "../../etc/passwd",
            "-n",
            "hi && reboot",
            "hi | sh",
            long.as_str(),
        ] {
            let reason = machine.refusal(&request(signed("say"), &[("text", attempt)]));
            assert!(
                reason.starts_with("action say, parameter text: "),
                "{attempt:?}: {reason}"
            );
        }
        for attempt in ["1; reboot", "$(id)", "-1", "99999999999999999999", "1\n"] {
            let reason = machine.refusal(&request(signed("count"), &[("n", attempt)]));
            assert!(reason.contains("parameter n"), "{attempt:?}: {reason}");
        }
        let reason = machine.refusal(&request(signed("say"), &[]));
        assert_eq!(reason, "action say: missing parameter text");
        let reason = machine.refusal(&request(
            signed("say"),
            &[("text", "hi"), ("program", "/bin/sh")],
        ));
        assert!(reason.contains("unknown parameter \"program\""), "{reason}");
    }

    #[test]
    fn a_pid_that_would_end_the_sessions_is_refused_before_anything_runs() {
        let machine = Machine::new();
        let me = std::process::id().to_string();
        for (pid, expected) in [
            ("1", "PID 1, the init system"),
            (me.as_str(), "the Lifeline agent or a process it runs under"),
        ] {
            let reason = machine.refusal(&request(signed("probe-process"), &[("pid", pid)]));
            assert_eq!(
                reason,
                format!("action probe-process, parameter pid: process {pid} is {expected}")
            );
        }
        // A process of the test's own to name; the rule for production code is about the agent.
        #[allow(clippy::disallowed_methods)]
        let mut child = std::process::Command::new("/usr/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id().to_string();
        let result = machine.execute(&request(signed("probe-process"), &[("pid", &pid)]));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(result.succeeded(), "{result:?}");
    }

    #[test]
    fn an_action_needing_consent_is_refused_without_a_user() {
        let mut machine = Machine::new();
        assert_eq!(
            machine.refusal(&request(signed("needs-consent"), &[])),
            "no user available to consent"
        );
        machine.user_can_consent = true;
        assert!(
            machine
                .execute(&request(signed("needs-consent"), &[]))
                .succeeded()
        );
    }

    #[test]
    fn the_users_answer_decides_and_only_a_run_that_passed_every_check_starts() {
        struct Answer(Consent, std::cell::Cell<u32>, std::cell::Cell<u32>);
        impl RunHooks for Answer {
            fn ask_consent(&self, action: &Action, request: &RunRequest) -> Consent {
                assert_eq!(action.id().as_str(), "needs-consent");
                assert_eq!(request.requested_by, "tech");
                self.1.set(self.1.get() + 1);
                self.0
            }
            fn starting(&self, _action: &Action) {
                self.2.set(self.2.get() + 1);
            }
        }
        let mut machine = Machine::new();
        machine.user_can_consent = true;
        for (answer, expected) in [
            (
                Consent::Denied,
                Some("the user at the machine denied the action"),
            ),
            (
                Consent::TimedOut,
                Some("the user at the machine did not answer in time (counted as a denial)"),
            ),
            (Consent::NoUser, Some(NO_CONSENT)),
            (Consent::Allowed, None),
        ] {
            let hooks = Answer(answer, Default::default(), Default::default());
            let outcome = execute_with(
                &request(signed("needs-consent"), &[]),
                &machine.ctx(),
                &hooks,
            );
            match expected {
                Some(reason) => {
                    assert_eq!(outcome.result, RunResult::refused(reason));
                    assert_eq!(hooks.2.get(), 0, "nothing starts after {answer:?}");
                }
                None => {
                    assert!(outcome.result.succeeded(), "{:?}", outcome.result);
                    assert_eq!(hooks.2.get(), 1);
                }
            }
            assert_eq!(hooks.1.get(), 1, "asked once for {answer:?}");
        }
        // Bad parameters are refused before the user is bothered.
        let hooks = Answer(Consent::Allowed, Default::default(), Default::default());
        let outcome = execute_with(
            &request(signed("say"), &[("text", "$(id)")]),
            &machine.ctx(),
            &hooks,
        );
        assert!(matches!(outcome.result, RunResult::Refused { .. }));
        assert_eq!((hooks.1.get(), hooks.2.get()), (0, 0));
    }

    #[test]
    fn checks_run_in_order_and_the_first_failure_is_reported() {
        let machine = Machine::with_policy("actions = \"none\"");
        let foreign = OTHER_KEY
            .sign_action(VERSION, CATALOG_PARSED.action("needs-consent").unwrap())
            .unwrap();
        let mut run = request(foreign, &[("bogus", "$(id)")]);
        run.machine_id = "elsewhere".to_owned();
        assert!(machine.refusal(&run).starts_with("run is for machine"));
        run.machine_id = MACHINE.to_owned();
        run.expires_at = NOW - Duration::seconds(1);
        assert!(machine.refusal(&run).starts_with("run expired"));
        run.expires_at = NOW + Duration::minutes(1);
        assert!(
            machine
                .refusal(&run)
                .starts_with("unverified action refused")
        );
        // The id was recorded before the signature check: one run id, one outcome.
        assert!(machine.refusal(&run).contains("already received"));

        let mut run = request(signed("needs-consent"), &[("bogus", "$(id)")]);
        assert!(
            machine
                .refusal(&run)
                .starts_with("remote actions are switched off")
        );
        let open = Machine::new();
        run.run_id = fresh_run_id();
        assert!(open.refusal(&run).contains("unknown parameter \"bogus\""));
        run.run_id = fresh_run_id();
        run.params = BTreeMap::new();
        assert_eq!(open.refusal(&run), NO_CONSENT);
    }

    #[test]
    fn a_program_past_its_timeout_is_killed() {
        let machine = Machine::new();
        let started = Instant::now();
        let result = machine.execute(&request(signed("nap"), &[("secs", "30")]));
        assert!(started.elapsed() < StdDuration::from_secs(10));
        let RunResult::Finished {
            exit_code,
            signal,
            timed_out,
            duration_ms,
            ..
        } = result
        else {
            panic!("{result:?}")
        };
        assert!(timed_out);
        assert_eq!((exit_code, signal), (None, Some(9)));
        assert!((2000..10_000).contains(&duration_ms), "{duration_ms}");
        assert!(!RunResult::refused("x").succeeded());
    }

    #[test]
    fn output_over_the_limit_is_truncated_and_marked() {
        let machine = Machine::new();
        let result = machine.execute(&request(signed("count"), &[("n", "100000")]));
        let RunResult::Finished {
            exit_code,
            stdout,
            stdout_truncated,
            stderr_truncated,
            ..
        } = &result
        else {
            panic!("{result:?}")
        };
        assert_eq!(*exit_code, Some(0));
        assert_eq!(stdout.len(), 100);
        assert!(stdout.starts_with("1\n2\n3\n"));
        assert!(*stdout_truncated);
        assert!(!*stderr_truncated);
    }

    #[test]
    fn a_program_that_is_not_installed_is_reported() {
        let machine = Machine::new();
        assert_eq!(
            machine.refusal(&request(signed("missing"), &[])),
            "action missing: /usr/bin/lifeline-no-such-program is not installed"
        );
    }
}

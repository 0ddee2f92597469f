//! A run the collector delivered, end to end on the agent: endorsed keys, every check and the
//! program ([`action::execute_with`]), progress reports, and the after-action check.
//!
//! The collector's part is relay only: what it sends is checked by [`action`] against what this
//! machine trusts. Progress reports are best effort (a lost one only makes the technician's view
//! lag); the result itself is what the caller sends back.

use std::collections::BTreeSet;
use std::sync::Mutex;

use lifeline_shared::v1::actions::{RunStage, WorkProgress};
use lifeline_shared::v1::api::paths;
use lifeline_shared::v1::catalog::Action;
use lifeline_shared::v1::run::{RunOutcome, RunRequest, RunResult};
use lifeline_shared::v1::snapshot::Snapshot;
use lifeline_shared::v1::work::WorkResult;
use time::OffsetDateTime;

use crate::collect;
use crate::config::AgentDir;
use crate::desktop::consent::{self, ConsentAnswer, ConsentPrompt};
use crate::exec::action::{self, ActionContext, Consent, RunHooks};
use crate::exec::policy::Policy;
use crate::report::EnrolledClient;
use crate::transport;
use crate::trust::TrustStore;

/// How long the user at the machine has to answer a consent request; silence is a denial.
pub const CONSENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Checks and runs `request` (work `work_id`); returns the answer for the collector.
pub fn handle(
    dir: &AgentDir,
    client: &EnrolledClient,
    work_id: u64,
    request: &RunRequest,
) -> WorkResult {
    let refused = |reason: String| WorkResult::Run {
        run: RunOutcome {
            run_id: request.run_id.clone(),
            result: RunResult::refused(reason),
        },
        before: None,
        after: None,
    };
    let machine_id = match dir.load() {
        Ok(config) => config.machine_id,
        Err(e) => return refused(format!("the agent cannot read its configuration: {e}")),
    };
    let trust = match TrustStore::open(dir) {
        Ok(trust) => trust,
        Err(e) => return refused(format!("the agent cannot read its trust store: {e}")),
    };
    // A broken policy file must not mean "everything allowed".
    let policy = match Policy::load(dir) {
        Ok(policy) => policy,
        Err(e) => return refused(format!("the local policy cannot be read: {e}")),
    };
    accept_endorsements(&trust, request);

    let hooks = Hooks {
        client,
        work_id,
        before: Mutex::new(None),
    };
    let ctx = ActionContext {
        machine_id: &machine_id,
        trust: &trust,
        policy: &policy,
        now: OffsetDateTime::now_utc(),
        // The consent window decides: without a desktop session it answers "no desktop", and
        // the run is refused as before with "no user available to consent".
        user_can_consent: true,
    };
    let outcome = action::execute_with(request, &ctx, &hooks);
    let before = hooks.before.lock().ok().and_then(|mut b| b.take());
    let (before, after) = match (before, &outcome.result) {
        (Some((sections, before)), RunResult::Finished { .. }) => {
            let after = recollect(client, &sections);
            (Some(Box::new(before)), Some(Box::new(after)))
        }
        _ => (None, None),
    };
    WorkResult::Run {
        run: outcome,
        before,
        after,
    }
}

/// Adds keys that a key this machine already trusts endorsed; the collector cannot do more.
fn accept_endorsements(trust: &TrustStore, request: &RunRequest) {
    let trusted = trust.public_keys().unwrap_or_default();
    for endorsement in &request.endorsements {
        if trusted.contains(endorsement.new_key()) {
            continue;
        }
        match trust.accept_endorsement(endorsement, OffsetDateTime::now_utc()) {
            Ok(id) => eprintln!(
                "lifeline-agent: now trusting catalog key {id} (endorsed by a trusted key)"
            ),
            Err(e) => eprintln!(
                "lifeline-agent: catalog key {} not accepted: {e}",
                endorsement.new_key().id()
            ),
        }
    }
}

/// The action's `recheck` sections, collected now.
fn recollect(
    client: &EnrolledClient,
    sections: &BTreeSet<lifeline_shared::v1::snapshot::SectionName>,
) -> Snapshot {
    let options = collect::Options {
        sections: sections.clone(),
        collector: client.collector.authority(),
        ..collect::Options::default()
    };
    collect::take(&options)
}

struct Hooks<'a> {
    client: &'a EnrolledClient,
    work_id: u64,
    /// The rechecked sections and their snapshot taken right before the program started.
    before: Mutex<
        Option<(
            BTreeSet<lifeline_shared::v1::snapshot::SectionName>,
            Snapshot,
        )>,
    >,
}

impl Hooks<'_> {
    fn report(&self, stage: RunStage) {
        let path = paths::AGENT_WORK_PROGRESS.replace("{id}", &self.work_id.to_string());
        let url = self.client.collector.url(&path);
        let response = self
            .client
            .collector
            .post(&path)
            .send_json(WorkProgress { stage });
        if let Err(e) = transport::finish::<serde_json::Value>(&url, response) {
            eprintln!(
                "lifeline-agent: could not report progress of work {}: {e}",
                self.work_id
            );
        }
    }
}

impl RunHooks for Hooks<'_> {
    fn ask_consent(&self, action: &Action, request: &RunRequest) -> Consent {
        let prompt = ConsentPrompt {
            technician: request.requested_by.clone(),
            action_title: action.title().to_owned(),
            action_description: action.description().to_owned(),
            params: request
                .params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            reason: request.reason.clone(),
            ticket: request.ticket,
        };
        self.report(RunStage::AwaitingConsent);
        let answer = consent::ask(&prompt, CONSENT_TIMEOUT);
        eprintln!(
            "lifeline-agent: work {}: the user's answer to {}: {answer:?}",
            self.work_id,
            action.id()
        );
        match answer {
            ConsentAnswer::Allowed => Consent::Allowed,
            ConsentAnswer::Denied => Consent::Denied,
            ConsentAnswer::TimedOut => Consent::TimedOut,
            ConsentAnswer::NoDesktop => Consent::NoUser,
        }
    }

    fn starting(&self, action: &Action) {
        if !action.recheck().is_empty() {
            let sections: BTreeSet<_> = action.recheck().iter().copied().collect();
            let snapshot = recollect(self.client, &sections);
            if let Ok(mut before) = self.before.lock() {
                *before = Some((sections, snapshot));
            }
        }
        self.report(RunStage::Running);
    }
}

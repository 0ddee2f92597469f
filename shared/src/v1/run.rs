//! A remote-action run as the collector relays it to an agent, and the agent's answer.
//!
//! Everything in a [`RunRequest`] except the signed action comes from the collector and is
//! therefore untrusted by the agent: it checks the machine id, the expiry and the run id (replay),
//! verifies the action's own signature against the keys it pinned, and validates `params` against
//! the verified action before anything runs. A run that does not pass comes back as
//! [`RunResult::Refused`] with the reason in plain words.
//!
//! Both types are forward compatible (unknown fields are ignored) so either side can add optional
//! fields.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::v1::catalog::{KeyEndorsement, SignedAction};

/// Length of a run id: 32 lowercase hex digits (128 random bits).
pub const RUN_ID_LEN: usize = 32;

/// One run of a signed action on one machine, as the collector hands it to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRequest {
    /// 128 random bits in lowercase hex ([`RunId`]); the agent runs each id at most once.
    pub run_id: String,
    /// The machine the run is meant for; any other machine refuses it.
    pub machine_id: String,
    /// The action with its catalog signature, exactly as the admin signed it.
    pub action: SignedAction,
    /// Parameter values as the technician gave them, not yet checked.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Who asked for the run.
    pub requested_by: String,
    /// Who approved it, for runs that needed an approval.
    #[serde(default)]
    pub approved_by: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    /// The ticket the run belongs to, when there is one.
    #[serde(default)]
    pub ticket: Option<u64>,
    /// After this instant the agent refuses the run.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Endorsements of catalog keys, relayed as admins gave them to the collector. An agent
    /// accepts a key from here only when a key it already trusts signed the endorsement.
    #[serde(default)]
    pub endorsements: Vec<KeyEndorsement>,
}

/// The agent's answer to a [`RunRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunOutcome {
    pub run_id: String,
    pub result: RunResult,
}

/// What became of a run. JSON: `{"status": "refused", "reason": "..."}` or
/// `{"status": "finished", "exit_code": 0, ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RunResult {
    /// Nothing ran (or the program could not be started); `reason` says why.
    Refused { reason: String },
    /// The program ran.
    Finished {
        /// The exit code, when the program exited by itself.
        exit_code: Option<i32>,
        /// The signal that ended the program, when one did (9 after a timeout).
        #[serde(default)]
        signal: Option<i32>,
        /// The program (or something it started) was still running at the action's timeout and
        /// its whole process group was killed.
        #[serde(default)]
        timed_out: bool,
        duration_ms: u64,
        /// Captured output, decoded as UTF-8 with invalid bytes replaced.
        #[serde(default)]
        stdout: String,
        #[serde(default)]
        stderr: String,
        /// More output was produced than the action's output limit; the rest was dropped.
        #[serde(default)]
        stdout_truncated: bool,
        #[serde(default)]
        stderr_truncated: bool,
    },
}

impl RunResult {
    pub fn refused(reason: impl Into<String>) -> RunResult {
        RunResult::Refused {
            reason: reason.into(),
        }
    }

    /// How the run ended, in the words every view uses: "exit code 0 after 1.20 s", "timed out,
    /// killed after 30.00 s", "killed by signal 9 after 0.50 s", "refused by the agent: ...".
    pub fn ending(&self) -> String {
        match self {
            RunResult::Refused { reason } => format!("refused by the agent: {reason}"),
            RunResult::Finished {
                exit_code,
                signal,
                timed_out,
                duration_ms,
                ..
            } => {
                let secs = *duration_ms as f64 / 1000.0;
                match (exit_code, signal, timed_out) {
                    (_, _, true) => format!("timed out, killed after {secs:.2} s"),
                    (Some(code), _, _) => format!("exit code {code} after {secs:.2} s"),
                    (None, Some(sig), _) => format!("killed by signal {sig} after {secs:.2} s"),
                    (None, None, _) => format!("ended after {secs:.2} s"),
                }
            }
        }
    }

    /// Whether the program ran and exited with code 0 in time.
    pub fn succeeded(&self) -> bool {
        matches!(
            self,
            RunResult::Finished {
                exit_code: Some(0),
                timed_out: false,
                ..
            }
        )
    }
}

/// A checked run id: exactly [`RUN_ID_LEN`] lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

/// Text that is not a [`RunId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("run id {value} is not {RUN_ID_LEN} lowercase hex digits")]
pub struct BadRunId {
    /// Quoted and escaped, cut short when long: it is untrusted input.
    pub value: String,
}

impl RunId {
    /// From 128 random bits.
    pub fn from_bytes(bytes: [u8; 16]) -> RunId {
        RunId(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RunId {
    type Err = BadRunId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == RUN_ID_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(RunId(s.to_owned()))
        } else {
            let shown: String = s.chars().take(40).collect();
            let value = if shown.len() < s.len() {
                format!("{shown:?}... ({} bytes)", s.len())
            } else {
                format!("{s:?}")
            };
            Err(BadRunId { value })
        }
    }
}

impl TryFrom<String> for RunId {
    type Error = BadRunId;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_way_a_run_ends_reads_the_same_everywhere() {
        let finished = |exit_code, signal, timed_out| RunResult::Finished {
            exit_code,
            signal,
            timed_out,
            duration_ms: 1_234,
            stdout: String::new(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
        };
        assert_eq!(
            finished(Some(0), None, false).ending(),
            "exit code 0 after 1.23 s"
        );
        assert_eq!(
            finished(None, Some(9), true).ending(),
            "timed out, killed after 1.23 s"
        );
        assert_eq!(
            finished(None, Some(15), false).ending(),
            "killed by signal 15 after 1.23 s"
        );
        assert_eq!(finished(None, None, false).ending(), "ended after 1.23 s");
        assert_eq!(
            RunResult::refused("disabled by local policy").ending(),
            "refused by the agent: disabled by local policy"
        );
    }

    #[test]
    fn run_ids_are_32_lowercase_hex_digits() {
        let id = RunId::from_bytes([0xab; 16]);
        assert_eq!(id.as_str(), "ab".repeat(16));
        assert_eq!(id.as_str().parse::<RunId>().unwrap(), id);
        for bad in [
            "",
            "AB".repeat(16).as_str(),
            "ab".repeat(17).as_str(),
            &format!("{}g", "a".repeat(31)),
            &format!("+{}", "a".repeat(31)),
        ] {
            let err = bad.parse::<RunId>().unwrap_err().to_string();
            assert!(err.contains("is not 32 lowercase hex digits"), "{err}");
        }
        let err = "x".repeat(5000).parse::<RunId>().unwrap_err().to_string();
        assert!(err.len() < 200, "{err}");
    }

    #[test]
    fn outcomes_have_a_stable_json_shape() {
        let outcome = RunOutcome {
            run_id: "ab".repeat(16),
            result: RunResult::Finished {
                exit_code: Some(0),
                signal: None,
                timed_out: false,
                duration_ms: 12,
                stdout: "hi\n".into(),
                stderr: String::new(),
                stdout_truncated: false,
                stderr_truncated: false,
            },
        };
        let value = serde_json::to_value(&outcome).unwrap();
        assert_eq!(value["result"]["status"], "finished");
        assert_eq!(value["result"]["exit_code"], 0);
        assert!(outcome.result.succeeded());
        let back: RunOutcome = serde_json::from_value(value).unwrap();
        assert_eq!(back, outcome);

        let refused = json!({
            "run_id": "x",
            "result": {"status": "refused", "reason": "no", "later": 1},
            "also_later": true,
        });
        let back: RunOutcome = serde_json::from_value(refused).unwrap();
        assert_eq!(back.result, RunResult::refused("no"));
        assert!(!back.result.succeeded());
    }
}

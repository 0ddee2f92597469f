//! Fitting the answer to a piece of work into one request the collector accepts.
//!
//! The collector refuses a result body over [`WORK_RESULT_MAX_WIRE_BYTES`] as sent or
//! [`WORK_RESULT_MAX_BYTES`] decompressed (the shared limits its body reader uses). A run's
//! output is bounded by its action, but two streams of up to 16 MiB each, escaped as JSON, with
//! the recheck snapshots, can still be larger; a 413 would lose the whole result and leave the
//! run to fail as "the agent went silent". So [`encode`] measures the real body and, when it is
//! too large, cuts the output here, visibly: the kept part ends with
//! `[output cut: N bytes not sent]` and the stream is marked truncated. If the output is not
//! what makes it large, the recheck snapshots are left out; an inspection snapshot that cannot
//! fit becomes a failure that says so. Nothing is sent that the collector would refuse.

use lifeline_shared::v1::run::{RunOutcome, RunResult};
use lifeline_shared::v1::work::{WORK_RESULT_MAX_BYTES, WORK_RESULT_MAX_WIRE_BYTES, WorkResult};

use crate::report::ReportError;

/// How large a body may be: as sent, and decompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub wire: usize,
    pub decoded: usize,
}

impl Limits {
    /// The collector's limits for work results.
    pub const COLLECTOR: Limits = Limits {
        wire: WORK_RESULT_MAX_WIRE_BYTES,
        decoded: WORK_RESULT_MAX_BYTES,
    };
}

/// Tries at shrinking the output before the snapshots are left out.
const CUT_ATTEMPTS: usize = 8;

/// The line that ends output cut to fit: `N` bytes of captured output were not sent.
pub fn cut_marker(not_sent: usize) -> String {
    format!("[output cut: {not_sent} bytes not sent]\n")
}

/// The zstd body for `result`, cut to fit `limits` as described in the module doc; `result`
/// becomes what was sent.
pub fn encode(result: &mut WorkResult, limits: Limits) -> Result<Vec<u8>, ReportError> {
    let body = compress(result)?;
    if fits(&body, limits) {
        return Ok(body.bytes);
    }
    let original = match result {
        WorkResult::Run {
            run:
                RunOutcome {
                    result: RunResult::Finished { stdout, stderr, .. },
                    ..
                },
            ..
        } => Some((stdout.clone(), stderr.clone())),
        _ => None,
    };
    if let Some(original) = &original
        && let Some(body) = cut_to_fit(result, original, body, limits)?
    {
        return Ok(body.bytes);
    }
    // The output is not what makes it large: leave the recheck snapshots out, and start over
    // from the whole output.
    if let WorkResult::Run { run, before, after } = result
        && (before.is_some() || after.is_some())
    {
        *before = None;
        *after = None;
        if let Some(original) = &original {
            cut_output(&mut run.result, original, 1.0);
        }
        let body = compress(result)?;
        if fits(&body, limits) {
            return Ok(body.bytes);
        }
        if let Some(original) = &original
            && let Some(body) = cut_to_fit(result, original, body, limits)?
        {
            return Ok(body.bytes);
        }
    }
    let (wire, decoded) = compress(result)?.size();
    *result = WorkResult::Failed {
        error: format!(
            "the result is {decoded} bytes ({wire} compressed), more than the collector accepts \
             ({} and {}); nothing of it was sent",
            limits.decoded, limits.wire
        ),
    };
    Ok(compress(result)?.bytes)
}

/// Cuts the output of `result` (a run) step by step until its body fits; `body` is the last
/// body that did not. `None` when even no output at all does not fit.
fn cut_to_fit(
    result: &mut WorkResult,
    original: &(String, String),
    mut body: Body,
    limits: Limits,
) -> Result<Option<Body>, ReportError> {
    let mut keep = 1.0_f64;
    for attempt in 0..=CUT_ATTEMPTS {
        let (wire, decoded) = body.size();
        // How far over the tighter limit the last try was, with some room to spare; the last
        // try sends no output at all.
        keep = if attempt == CUT_ATTEMPTS {
            0.0
        } else {
            keep * (limits.wire as f64 / wire as f64).min(limits.decoded as f64 / decoded as f64)
                * 0.9
        };
        let WorkResult::Run { run, .. } = &mut *result else {
            return Ok(None);
        };
        if !cut_output(&mut run.result, original, keep) {
            return Ok(None);
        }
        body = compress(result)?;
        if fits(&body, limits) {
            return Ok(Some(body));
        }
    }
    Ok(None)
}

/// A compressed body and the size of the JSON it holds.
struct Body {
    bytes: Vec<u8>,
    json_len: usize,
}

impl Body {
    /// (wire, decoded) sizes.
    fn size(&self) -> (usize, usize) {
        (self.bytes.len().max(1), self.json_len.max(1))
    }
}

fn compress(result: &WorkResult) -> Result<Body, ReportError> {
    let json = serde_json::to_vec(result).map_err(|e| ReportError::Encode(e.to_string()))?;
    let bytes = zstd::encode_all(&json[..], crate::report::COMPRESSION_LEVEL)
        .map_err(|e| ReportError::Encode(e.to_string()))?;
    Ok(Body {
        bytes,
        json_len: json.len(),
    })
}

fn fits(body: &Body, limits: Limits) -> bool {
    body.bytes.len() <= limits.wire && body.json_len <= limits.decoded
}

/// Sets the output streams of `result` to the first `keep` share of `original`; a stream that
/// lost something ends with the cut marker. False when that changes nothing.
fn cut_output(result: &mut RunResult, original: &(String, String), keep: f64) -> bool {
    let RunResult::Finished {
        stdout,
        stderr,
        stdout_truncated,
        stderr_truncated,
        ..
    } = result
    else {
        return false;
    };
    let mut changed = false;
    for (text, from, truncated) in [
        (stdout, &original.0, stdout_truncated),
        (stderr, &original.1, stderr_truncated),
    ] {
        let mut at = ((from.len() as f64) * keep.clamp(0.0, 1.0)) as usize;
        let kept = if at >= from.len() {
            from.clone()
        } else {
            while !from.is_char_boundary(at) {
                at -= 1;
            }
            let mut kept = from[..at].to_owned();
            if !kept.is_empty() && !kept.ends_with('\n') {
                kept.push('\n');
            }
            kept.push_str(&cut_marker(from.len() - at));
            *truncated = true;
            kept
        };
        changed |= *text != kept;
        *text = kept;
    }
    changed
}

#[cfg(test)]
mod tests {
    use lifeline_shared::v1::run::RunOutcome;

    use super::*;

    fn run(stdout: String, stderr: String) -> WorkResult {
        WorkResult::Run {
            run: RunOutcome {
                run_id: "0".repeat(32),
                result: RunResult::Finished {
                    exit_code: Some(0),
                    signal: None,
                    timed_out: false,
                    duration_ms: 5,
                    stdout,
                    stderr,
                    stdout_truncated: false,
                    stderr_truncated: false,
                },
            },
            before: None,
            after: None,
        }
    }

    fn decoded(body: &[u8]) -> WorkResult {
        serde_json::from_slice(&zstd::decode_all(body).unwrap()).unwrap()
    }

    /// Output that neither compresses nor stays small as JSON: control characters and bytes
    /// of every kind, from a fixed pseudo-random sequence.
    fn noise(len: usize) -> String {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                char::from(u8::try_from(state % 128).unwrap())
            })
            .collect()
    }

    #[test]
    fn a_result_that_fits_is_sent_as_it_is() {
        let mut result = run("hello\n".into(), String::new());
        let before = result.clone();
        let body = encode(&mut result, Limits::COLLECTOR).unwrap();
        assert_eq!(result, before);
        assert_eq!(decoded(&body), before);
    }

    #[test]
    fn output_too_large_for_one_request_is_cut_with_a_marker() {
        let limits = Limits {
            wire: 20_000,
            decoded: 60_000,
        };
        let mut result = run(noise(100_000), "warning: something\n".repeat(10));
        let body = encode(&mut result, limits).unwrap();
        assert!(body.len() <= limits.wire, "{}", body.len());
        let sent = decoded(&body);
        assert_eq!(sent, result);
        let WorkResult::Run { run, .. } = sent else {
            panic!("still a run result")
        };
        let RunResult::Finished {
            stdout,
            stdout_truncated,
            exit_code,
            ..
        } = run.result
        else {
            panic!("still finished")
        };
        assert_eq!(exit_code, Some(0), "only the output changes");
        assert!(stdout_truncated);
        let marker = stdout.lines().last().unwrap();
        let not_sent: usize = marker
            .strip_prefix("[output cut: ")
            .and_then(|m| m.strip_suffix(" bytes not sent]"))
            .unwrap()
            .parse()
            .unwrap();
        let kept = stdout.len() - marker.len() - 1;
        // What was kept and what was not add up (a newline may have been added before the
        // marker), and most of what fits was kept.
        assert!(
            (100_000 - not_sent).abs_diff(kept) <= 1,
            "{kept} + {not_sent}"
        );
        assert!(kept > 5_000, "{kept}");
    }

    #[test]
    fn snapshots_go_before_a_result_is_lost_and_a_result_that_cannot_fit_says_so() {
        let snapshot: lifeline_shared::v1::snapshot::Snapshot =
            serde_json::from_value(serde_json::json!({
                "schema_version": 1,
                "collected_at": "2026-12-04T08:00:00Z",
                "agent_version": noise(3000),
            }))
            .unwrap();
        let mut result = run("ok\n".into(), String::new());
        if let WorkResult::Run { before, after, .. } = &mut result {
            *before = Some(Box::new(snapshot.clone()));
            *after = Some(Box::new(snapshot.clone()));
        }
        let small = Limits {
            wire: 2_000,
            decoded: 4_000,
        };
        let body = encode(&mut result, small).unwrap();
        assert!(fits(&compress(&result).unwrap(), small));
        let WorkResult::Run { run, before, after } = decoded(&body) else {
            panic!("still a run result")
        };
        assert!(before.is_none() && after.is_none());
        let RunResult::Finished { stdout, .. } = run.result else {
            panic!("still finished")
        };
        assert_eq!(stdout, "ok\n", "the output itself fits: it is not cut");

        let mut inspection = WorkResult::Snapshot {
            snapshot: Box::new(snapshot),
        };
        let body = encode(
            &mut inspection,
            Limits {
                wire: 1_000,
                decoded: 1_000,
            },
        )
        .unwrap();
        let WorkResult::Failed { error } = decoded(&body) else {
            panic!("a failure")
        };
        assert!(error.contains("more than the collector accepts"), "{error}");
    }
}

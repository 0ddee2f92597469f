//! What an agent sends about its work and what it is sent: the work result (`WorkResult`: a
//! snapshot, a failure, or a run's outcome with before/after snapshots), run progress and the
//! heartbeat the collector decodes, the collector's bounding of run output, the recheck findings;
//! and the work batch (with its run requests) the agent decodes from the collector.
#![no_main]

use std::str::FromStr;

use libfuzzer_sys::fuzz_target;
use lifeline_collector::http::actions::{bounded, changes};
use lifeline_collector::http::body::{inflate_zstd, parse_json};
use lifeline_shared::findings;
use lifeline_shared::v1::actions::WorkProgress;
use lifeline_shared::v1::run::{RunId, RunResult};
use lifeline_shared::v1::work::{Heartbeat, WorkBatch, WorkKind, WorkResult};

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// See `ticket_body`: production allows 32 MiB, the path is the same.
const DECODED_LIMIT: usize = 1024 * 1024;

fn check_run_result(result: RunResult) {
    let before = serde_json::to_string(&result).expect("a run result serializes");
    let bounded = bounded(result);
    let _ = bounded.ending();
    let _ = bounded.succeeded();
    // The bounded result is what the collector stores; it must read back.
    let stored = serde_json::to_string(&bounded).expect("a bounded run result serializes");
    let _: RunResult = serde_json::from_str(&stored).expect("the stored run result parses");
    assert!(
        stored.len() <= before.len() + 64,
        "bounding made the result larger"
    );
}

fuzz_target!(|data: &[u8]| {
    let decoded;
    let json = if data.starts_with(&ZSTD_MAGIC) {
        match inflate_zstd(data, DECODED_LIMIT) {
            Ok(bytes) => {
                decoded = bytes;
                &decoded[..]
            }
            Err(_) => return,
        }
    } else {
        data
    };
    if let Ok(result) = parse_json::<WorkResult>(json) {
        match result {
            WorkResult::Snapshot { snapshot } => {
                let _ = findings::evaluate(&snapshot);
                let _ = serde_json::to_string(&snapshot).expect("a snapshot serializes");
            }
            WorkResult::Failed { error } => {
                let _ = error.len();
            }
            WorkResult::Run { run, before, after } => {
                let _ = RunId::from_str(&run.run_id);
                check_run_result(run.result);
                let before = before.map(|s| findings::evaluate(&s)).unwrap_or_default();
                let after = after.map(|s| findings::evaluate(&s)).unwrap_or_default();
                let lines = changes(&before, &after);
                assert!(lines.len() <= before.len() + after.len());
            }
        }
    }
    let _ = parse_json::<WorkProgress>(json);
    if let Ok(beat) = parse_json::<Heartbeat>(json) {
        let _ = beat.vitals.check();
    }
    // The agent's side: the long-poll answer, as ureq's JSON reader would take it.
    if let Ok(batch) = serde_json::from_slice::<WorkBatch>(json) {
        for item in batch.items {
            if let WorkKind::Run { request } = item.kind {
                let _ = RunId::from_str(&request.run_id);
                // No key is trusted: verification must refuse, never panic.
                assert!(request.action.verify(&[]).is_err());
                for endorsement in &request.endorsements {
                    assert!(
                        lifeline_shared::v1::catalog::accept_endorsed_key(&[], endorsement)
                            .is_err()
                    );
                }
                let action = request.action.unverified_action();
                if let Ok(params) = action.validate_params(&request.params) {
                    let _ = action.argv(&params);
                }
            }
        }
    }
});

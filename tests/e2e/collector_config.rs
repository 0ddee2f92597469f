//! `lifeline-collector serve --config FILE`: settings from a TOML file, flags winning over it,
//! and a clear refusal of a broken file.

use std::process::Command;

use crate::binaries;
use crate::harness::{TestAgent, TestCollector};

#[test]
fn settings_come_from_the_config_file_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("collector.toml");
    // The harness's own --data-dir and --listen flags win over these two; enrollment and the
    // extra certificate name come from the file.
    std::fs::write(
        &config,
        "data_dir = \"never-used\"\nlisten = \"127.0.0.1:1\"\nenrollment = \"approve\"\n\
         san = [\"helpdesk.example.test\"]\n",
    )
    .unwrap();
    let collector = TestCollector::spawn_with(&["--config", config.to_str().unwrap()]);
    assert!(!dir.path().join("never-used").exists());
    let names = std::fs::read_to_string(collector.data_dir().join("server.names")).unwrap();
    assert!(names.contains("helpdesk.example.test"), "{names}");

    let out = TestAgent::unenrolled().enroll(
        &collector,
        &collector.enrollment_token,
        &collector.ca_path(),
    );
    assert!(out.status.success(), "{out:?}");
    let machines = collector.cli_json(&["machines", "list"]);
    assert_eq!(
        machines[0]["status"], "pending",
        "enrollment = \"approve\" applies"
    );
}

#[test]
fn a_broken_config_file_is_refused_with_the_file_and_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\nenrolment = \"approve\"\n",
    )
    .unwrap();
    let out = Command::new(binaries::collector())
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("collector.toml"), "{stderr}");
    assert!(stderr.contains("unknown field `enrolment`"), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(
        !dir.path().join("data").exists(),
        "nothing is created for a broken config"
    );
}

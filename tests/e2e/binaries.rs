//! Finds the built `lifeline-agent` and `lifeline-collector` binaries.
//!
//! Test executables live in `target/<profile>/deps/`; the binaries are two levels up. Set
//! `LIFELINE_BIN_DIR` to test binaries from somewhere else.

use std::path::PathBuf;

fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LIFELINE_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test executable is in target/<profile>/deps")
        .to_path_buf()
}

fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} not found: run `cargo build` before the tests (see README.md)",
        path.display()
    );
    path
}

pub fn agent() -> PathBuf {
    binary("lifeline-agent")
}

#[allow(dead_code)] // Used by the collector scenarios.
pub fn collector() -> PathBuf {
    binary("lifeline-collector")
}

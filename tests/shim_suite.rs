//! Runs the shim's own test suite (`bun test` in `shim/`) with the pinned Bun, so
//! `cargo test` covers the JavaScript half too.

mod common;

use std::process::Command;

#[test]
fn shim_bun_test_suite_passes() {
    let output = Command::new(common::bun())
        .arg("test")
        .current_dir(common::repo().join("shim"))
        .output()
        .expect("run bun test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "bun test failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains(" pass") && stderr.contains(" 0 fail"),
        "{stderr}"
    );
}

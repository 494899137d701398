//! Runs the shim's own test suite (`bun test` in `shim/`) with the pinned Bun, so
//! `cargo test` covers the JavaScript half too.

mod common;

use std::process::Command;

/// Runs `bun test` in `shim/` with `env`, asserting that every test passed.
fn suite_passes(env: &[(&str, &str)]) {
    let output = Command::new(common::bun())
        .arg("test")
        .current_dir(common::repo().join("shim"))
        .envs(env.iter().copied())
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

#[test]
fn shim_bun_test_suite_passes() {
    suite_passes(&[]);
}

/// The supervisor starts children from the shim compiled to bytecode (one file, in
/// another module format): the same suite must pass against that build.
#[test]
fn shim_bun_test_suite_passes_against_the_bytecode_build() {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(common::bun())
        .args([
            "build",
            "src/main.js",
            "--target=bun",
            "--bytecode",
            "--outdir",
        ])
        .arg(out.path())
        .current_dir(common::repo().join("shim"))
        .status()
        .expect("run bun build");
    assert!(status.success(), "bun build failed");
    let compiled = out.path().join("main.js");
    assert!(out.path().join("main.js.jsc").is_file());
    suite_passes(&[("BUNTIME_SHIM_MAIN", compiled.to_str().unwrap())]);
}

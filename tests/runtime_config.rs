//! `buntime.jsonc`: settings, homepage and plugins from the runtime config file, and
//! clear refusals of bad ones before any socket is bound.

mod common;

use std::process::Command;

use common::{bun, Apps, Supervisor};

fn run_with_config(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("buntime.jsonc");
    std::fs::write(&file, config).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_buntime-supervisor"))
        .args(["run", "--port", "0", "--config"])
        .arg(&file)
        .arg("--bun")
        .arg(bun())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn app_dirs_homepage_and_pool_size_come_from_the_config_file() {
    let apps = Apps::with(&["hello@1.0.0", "echo@1.0.0"]);
    let config_dir = tempfile::tempdir().unwrap();
    let file = config_dir.path().join("buntime.jsonc");
    std::fs::write(
        &file,
        format!(
            "{{\n  // where the apps live\n  workerDirs: [{:?}],\n  homepage: \"hello\",\n  poolSize: 1,\n  plugins: [],\n}}\n",
            apps.path().display().to_string()
        ),
    )
    .unwrap();
    let file_arg = file.display().to_string();
    let supervisor = Supervisor::start(&apps, &["--config", &file_arg]);
    assert_eq!(
        supervisor.get("/").await,
        (200, "Hello from hello@1.0.0".into())
    );
    let hello = supervisor.pid("hello").await;
    supervisor.pid("echo").await;
    assert!(
        common::eventually(
            std::time::Duration::from_secs(5),
            || !common::process_alive(hello)
        )
        .await,
        "pool size 1 from the file evicts hello"
    );
}

#[test]
fn a_bad_config_value_is_one_line_naming_file_key_and_value() {
    let (code, stderr) = run_with_config("{ workerDirs: [\"/tmp\"], poolSize: \"many\" }");
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("buntime.jsonc: key \"poolSize\": \"many\""),
        "{stderr}"
    );
}

#[test]
fn malformed_json5_is_refused_naming_the_file() {
    let (code, stderr) = run_with_config("{ workerDirs: [\"/tmp\" }");
    assert_eq!(code, Some(2));
    assert!(stderr.contains("buntime.jsonc"), "{stderr}");
}

#[test]
fn unknown_keys_are_refused() {
    let (code, stderr) = run_with_config("{ workerDirs: [\"/tmp\"], colour: \"blue\" }");
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("key \"colour\"") && stderr.contains("unknown key"),
        "{stderr}"
    );
}

#[test]
fn a_required_plugin_that_is_not_available_stops_the_start() {
    let (code, stderr) =
        run_with_config("{ workerDirs: [\"/tmp\"], plugins: [\"auth\"], required: [\"auth\"] }");
    assert_eq!(code, Some(2));
    assert!(stderr.contains("required plugin \"auth\""), "{stderr}");
}

#[test]
fn no_app_dirs_anywhere_is_a_usage_error() {
    let (code, stderr) = run_with_config("{}");
    assert_eq!(code, Some(2));
    assert!(stderr.contains("no app dirs"), "{stderr}");
}

#[test]
fn zero_runtime_threads_is_refused_naming_the_flag() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let output = Command::new(env!("CARGO_BIN_EXE_buntime-supervisor"))
        .args(["run", "--port", "0", "--threads", "0", "--apps"])
        .arg(apps.path())
        .arg("--bun")
        .arg(bun())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--threads"), "{stderr}");
}

#[tokio::test]
async fn a_supervisor_on_several_threads_serves_concurrent_requests() {
    let apps = Apps::with(&["hello@1.0.0", "routes@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &["--threads", "3"]);
    let requests = (0..40).map(|i| {
        let path = if i % 2 == 0 {
            "/hello/"
        } else {
            "/routes/users/42"
        };
        supervisor.get(path)
    });
    let answers = futures_util::future::join_all(requests).await;
    for (i, answer) in answers.into_iter().enumerate() {
        let expected = if i % 2 == 0 {
            "Hello from hello@1.0.0"
        } else {
            r#"{"id":"42"}"#
        };
        assert_eq!(answer, (200, expected.to_owned()), "request {i}");
    }
}

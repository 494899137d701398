//! `buntime-supervisor check` and `apps` on the fixtures.

mod common;

use std::process::Command;

use common::repo;

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_buntime-supervisor"))
        .args(args)
        .current_dir(repo())
        .env_remove("RUNTIME_WORKER_DIRS")
        .env_remove("RUNTIME_CONFIG")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn check_names_every_problem_in_the_bad_fixtures_one_line_each() {
    let (code, stdout, stderr) = run(&["check", "--apps", "fixtures/apps"]);
    assert_eq!(code, Some(1), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let expect = |app: &str, parts: &[&str]| {
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with(app) && parts.iter().all(|part| line.contains(part))),
            "no line for {app} with {parts:?} in:\n{stdout}"
        );
    };
    expect(
        "bad-config@1.0.0",
        &["worker.jsonc", "key \"bogusKey\"", "unknown key"],
    );
    expect(
        "bad-config@1.0.0",
        &[
            "worker.jsonc",
            "key \"timeout\": \"5 minutes\"",
            "is not a duration",
        ],
    );
    expect(
        "bad-json5@1.0.0",
        &["worker.jsonc", "invalid JSON5 at line 3, column 12"],
    );
    expect("bad-entrypoint@1.0.0", &["outside the app dir"]);
    expect(
        "bad-proxy@1.0.0",
        &["key \"proxy\"", "rule 1", "not a valid regular expression"],
    );
    assert_eq!(
        lines.len(),
        5,
        "only the bad fixtures are reported:\n{stdout}"
    );
    assert!(stderr.contains("5 problem(s) found"));
}

#[test]
fn check_passes_on_the_good_fixtures() {
    let good = tempfile::tempdir().unwrap();
    let apps = repo().join("fixtures/apps");
    for entry in std::fs::read_dir(&apps).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !name.starts_with("bad-") {
            std::os::unix::fs::symlink(apps.join(&name), good.path().join(&name)).unwrap();
        }
    }
    let dir = good.path().display().to_string();
    let (code, stdout, stderr) = run(&["check", "--apps", &dir]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
}

#[test]
fn check_reports_a_bad_runtime_config_and_missing_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("buntime.jsonc");
    std::fs::write(
        &config,
        "{ workerDirs: [\"nowhere\"], poolSize: 0, required: [\"auth\"] }",
    )
    .unwrap();
    let config = config.display().to_string();
    let (code, stdout, _) = run(&["check", "--config", &config]);
    assert_eq!(code, Some(1));
    assert!(stdout.contains("key \"poolSize\": 0"), "{stdout}");
}

#[test]
fn apps_lists_each_release_and_how_it_is_served() {
    let (code, stdout, _) = run(&["apps", "--apps", "fixtures/apps"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("hello\t1.0.0\tmodule")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("spa\t1.0.0\tstatic")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("bad-config\t1.0.0\tinvalid")),
        "{stdout}"
    );
}

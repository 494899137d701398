//! Versioned routing as Buntime users know it: layouts, npm ranges, the resolution
//! cache, collisions, and the request the app sees.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{bun, Apps, Supervisor};

/// Writes an app at `dir` (relative to the app dir) answering with `label`.
fn app(root: &Path, dir: &str, label: &str) {
    let path = root.join(dir);
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(
        path.join("index.ts"),
        format!("export default {{ fetch() {{ return new Response({label:?}) }} }}\n"),
    )
    .unwrap();
}

async fn version(supervisor: &Supervisor, path: &str) -> String {
    let (status, body) = supervisor.get(path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[tokio::test]
async fn npm_ranges_pick_the_versions_buntime_users_expect() {
    let apps = Apps::with(&[]);
    let root = apps.path();
    for v in ["1.0.0", "1.5.3", "2.0.0"] {
        app(root, &format!("major/{v}"), v);
    }
    for v in ["1.4.0", "1.4.5", "1.5.0"] {
        app(root, &format!("minor/{v}"), v);
    }
    for v in ["1.0.0", "1.5.0", "2.0.0"] {
        app(root, &format!("caret/{v}"), v);
    }
    for v in ["1.4.0", "1.4.3", "1.5.0"] {
        app(root, &format!("tilde/{v}"), v);
    }
    for v in ["1.2.0", "1.10.0", "2.0.0"] {
        app(root, &format!("highest/{v}"), v);
    }
    app(root, "withlatest/2.1.0", "2.1.0");
    app(root, "withlatest/latest", "latest");
    app(root, "stable/1.0.0", "1.0.0");
    app(root, "stable/stable", "stable");
    app(root, "old/1.0.0", "1.0.0");
    app(root, "old/1.9.0", "1.9.0");
    app(root, "vprefix/v1.0.0", "v1.0.0");
    app(root, "vprefix/v1.2.0", "v1.2.0");
    app(root, "pre/1.0.0", "1.0.0");
    app(root, "pre/1.1.0-beta.1", "1.1.0-beta.1");
    let supervisor = Supervisor::start(&apps, &[]);

    assert_eq!(version(&supervisor, "/major@1/").await, "1.5.3");
    assert_eq!(version(&supervisor, "/minor@1.4/").await, "1.4.5");
    assert_eq!(version(&supervisor, "/caret@%5E1.0.0/").await, "1.5.0");
    assert_eq!(version(&supervisor, "/caret@^1.0.0/").await, "1.5.0");
    assert_eq!(version(&supervisor, "/tilde@~1.4.0/").await, "1.4.3");
    assert_eq!(version(&supervisor, "/highest/").await, "2.0.0");
    assert_eq!(version(&supervisor, "/withlatest/").await, "latest");
    assert_eq!(version(&supervisor, "/withlatest@2/").await, "2.1.0");
    assert_eq!(
        version(&supervisor, "/stable/").await,
        "1.0.0",
        "non-semver dirs are ignored"
    );
    assert_eq!(version(&supervisor, "/major@1.0.0/").await, "1.0.0");
    assert_eq!(version(&supervisor, "/vprefix/").await, "v1.2.0");
    assert_eq!(version(&supervisor, "/vprefix@1.0/").await, "v1.0.0");
    assert_eq!(
        version(&supervisor, "/pre/").await,
        "1.0.0",
        "prereleases are not picked by default"
    );
    assert_eq!(
        version(&supervisor, "/pre@1.1.0-beta.1/").await,
        "1.1.0-beta.1"
    );

    let (status, body) = supervisor.get("/old@2.0.0/").await;
    assert_eq!(status, 404, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "APP_NOT_FOUND");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("old") && message.contains("2.0.0"),
        "{message}"
    );
    let (status, _) = supervisor.get("/withoutlatest@latest/").await;
    assert_eq!(status, 404);
    let (status, body) = supervisor.get("/old@latest/").await;
    assert_eq!(status, 404, "only a latest dir answers @latest: {body}");
}

#[tokio::test]
async fn flat_scoped_and_plain_layouts_are_served() {
    let apps = Apps::with(&[]);
    app(apps.path(), "flat@1.0.0", "flat 1");
    app(apps.path(), "flat@latest", "flat latest");
    app(apps.path(), "@team/tool@0.3.0", "scoped flat");
    app(apps.path(), "@team/nested/1.2.0", "scoped nested");
    app(apps.path(), "plain", "plain");
    let supervisor = Supervisor::start(&apps, &[]);
    assert_eq!(version(&supervisor, "/flat/").await, "flat latest");
    assert_eq!(version(&supervisor, "/flat@1/").await, "flat 1");
    assert_eq!(version(&supervisor, "/@team/tool/").await, "scoped flat");
    assert_eq!(
        version(&supervisor, "/@team/tool@0.3/").await,
        "scoped flat"
    );
    assert_eq!(
        version(&supervisor, "/@team/nested@1/").await,
        "scoped nested"
    );
    assert_eq!(version(&supervisor, "/plain/").await, "plain");
}

#[tokio::test]
async fn several_app_dirs_are_searched() {
    let first = Apps::with(&[]);
    let second = tempfile::tempdir().unwrap();
    app(first.path(), "one@1.0.0", "one");
    app(second.path(), "two@1.0.0", "two");
    app(second.path(), "one@2.0.0", "one v2");
    let dirs = format!("{}:{}", first.path().display(), second.path().display());
    let supervisor = Supervisor::start(&first, &["--apps", &dirs]);
    assert_eq!(version(&supervisor, "/two/").await, "two");
    assert_eq!(version(&supervisor, "/one/").await, "one v2");
    assert_eq!(version(&supervisor, "/one@1/").await, "one");
}

#[tokio::test]
async fn new_and_removed_version_dirs_are_noticed_without_a_restart() {
    let apps = Apps::with(&[]);
    app(apps.path(), "live@1.0.0", "1.0.0");
    let supervisor = Supervisor::start(&apps, &[]);
    assert_eq!(version(&supervisor, "/live/").await, "1.0.0");
    app(apps.path(), "live@1.1.0", "1.1.0");
    let mut seen = String::new();
    for _ in 0..40 {
        seen = version(&supervisor, "/live/").await;
        if seen == "1.1.0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, "1.1.0", "a new version is picked up");
    std::fs::remove_dir_all(apps.path().join("live@1.1.0")).unwrap();
    let mut back = false;
    for _ in 0..40 {
        let (status, body) = supervisor.get("/live/").await;
        if status == 200 && body == "1.0.0" {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "a removed version stops being served");
}

#[tokio::test]
async fn config_changes_reach_the_next_child_without_a_restart() {
    let apps = Apps::with(&["hello@1.0.0"]);
    apps.config(
        "hello@1.0.0",
        "{ env: { GREETING: \"hi\" }, maxRequests: 2 }",
    );
    let supervisor = Supervisor::start(&apps, &[]);
    let (_, env) = supervisor.get("/hello/env").await;
    assert!(env.contains(r#""GREETING":"hi""#), "{env}");
    apps.config("hello@1.0.0", "{ env: { GREETING: \"changed\" } }");
    // Configs are re-read at most a second after they change.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (_, env) = supervisor.get("/hello/env").await;
    assert!(
        env.contains(r#""GREETING":"hi""#),
        "the running child keeps its config: {env}"
    );
    let (_, env) = supervisor.get("/hello/env").await;
    assert!(
        env.contains(r#""GREETING":"changed""#),
        "the next child gets the new one: {env}"
    );
}

#[tokio::test]
async fn two_dirs_with_the_same_release_are_refused_naming_both() {
    let first = Apps::with(&[]);
    let second = tempfile::tempdir().unwrap();
    app(first.path(), "dup@1.0.0", "a");
    app(second.path(), "dup/1.0.0", "b");
    let dirs = format!("{}:{}", first.path().display(), second.path().display());
    let output = Command::new(env!("CARGO_BIN_EXE_buntime-supervisor"))
        .args(["run", "--port", "0", "--apps", &dirs, "--bun"])
        .arg(bun())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("dup@1.0.0"), "{stderr}");
    assert!(
        stderr.contains(&first.path().join("dup@1.0.0").display().to_string()),
        "{stderr}"
    );
    assert!(
        stderr.contains(&second.path().join("dup/1.0.0").display().to_string()),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_collision_that_appears_at_run_time_answers_500_naming_both() {
    let apps = Apps::with(&[]);
    app(apps.path(), "dup@1.0.0", "a");
    let supervisor = Supervisor::start(&apps, &[]);
    assert_eq!(version(&supervisor, "/dup/").await, "a");
    app(apps.path(), "dup/1.0.0", "b");
    // Resolutions are cached for a second.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, body) = supervisor.get("/dup/").await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("APP_COLLISION") && body.contains("dup@1.0.0"),
        "{body}"
    );
}

#[tokio::test]
async fn the_app_sees_its_relative_path_and_forwarding_headers() {
    let apps = Apps::with(&["echo@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let response = supervisor
        .client
        .get(supervisor.url("/echo@1/inspect?x=1"))
        .header("x-forwarded-for", "10.1.2.3")
        // Headers the supervisor sets are never the client's to choose.
        .header("x-base", "/forged")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "forged.example")
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!id.is_empty());
    let seen: serde_json::Value = response.json().await.unwrap();
    assert_eq!(seen["path"], "/inspect?x=1");
    let header = |name: &str| common::seen_header(&seen, name).unwrap_or_default();
    assert_eq!(header("x-base"), "/echo@1");
    assert_eq!(
        header("x-request-id"),
        id,
        "the app sees the id the client gets"
    );
    assert_eq!(header("x-forwarded-for"), "10.1.2.3, 127.0.0.1");
    assert_eq!(header("x-forwarded-proto"), "http");
    assert_eq!(
        header("x-forwarded-host"),
        supervisor.base.trim_start_matches("http://")
    );
}

//! The dashboard at `/_/`: the page and its assets, the retire actions over plain
//! HTTP, and the page driven in a real headless Chromium by `tests/browser/`.
//!
//! The browser tests install what they need on first use: Debian's `chromium` (with
//! `apt-get`, as root) when `/usr/bin/chromium` is missing, and `playwright-core` into
//! `tests/browser/node_modules` (`npm ci`). Screenshots land in
//! `target/test-artifacts/`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{eventually, process_alive, repo, Apps, Supervisor};
use serde_json::Value;

const CHROMIUM: &str = "/usr/bin/chromium";
const FIXTURES: &[&str] = &["hello@1.0.0", "echo@1.0.0", "routes@1.0.0"];
const MASTER_KEY: &str = "dashboard-test-key";

// ---------------------------------------------------------------------------
// Helpers

/// A line written past the test harness's capture, so a long wait is explained.
fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

fn run_install(command: &mut Command, what: &str) {
    let status = command
        .status()
        .unwrap_or_else(|error| panic!("{what}: could not run it: {error}"));
    assert!(status.success(), "{what} failed with {status}");
}

/// Chromium and the browser test's node packages, installed once and by one test
/// process at a time.
fn browser_ready() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let lock_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-browser.lock");
        let lock_file = std::fs::File::create(&lock_path).expect("create the install lock");
        let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
            .expect("take the install lock");
        if !Path::new(CHROMIUM).exists() {
            say(
                "Installing Debian's chromium and chromium-driver with apt-get for the \
                 dashboard's browser test (first run only)…",
            );
            run_install(
                Command::new("apt-get").args(["-q", "update"]),
                "apt-get update (root is needed to install chromium)",
            );
            run_install(
                Command::new("apt-get")
                    .args(["-q", "install", "-y", "--no-install-recommends"])
                    .args(["chromium", "chromium-driver"])
                    .env("DEBIAN_FRONTEND", "noninteractive"),
                "apt-get install chromium chromium-driver",
            );
            assert!(
                Path::new(CHROMIUM).exists(),
                "{CHROMIUM} is still missing after installing chromium"
            );
        }
        let browser_dir = repo().join("tests/browser");
        if !browser_dir
            .join("node_modules/playwright-core/package.json")
            .exists()
        {
            say(
                "Installing playwright-core from npm into tests/browser/node_modules \
                 (first run only)…",
            );
            run_install(
                Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--prefix"])
                    .arg(&browser_dir),
                "npm ci in tests/browser (Node.js and npm are required)",
            );
        }
    });
}

/// Runs `tests/browser/dashboard.mjs` against `supervisor`, failing with its output
/// unless it exits 0 and leaves a non-empty screenshot.
fn drive_browser(supervisor: &Supervisor, screenshot: &Path, key: Option<&str>) {
    browser_ready();
    let _ = std::fs::remove_file(screenshot);
    let output_dir = tempfile::tempdir().expect("tempdir");
    let stdout_path = output_dir.path().join("stdout");
    let stderr_path = output_dir.path().join("stderr");
    let mut command = Command::new("node");
    command
        .arg(repo().join("tests/browser/dashboard.mjs"))
        .arg(&supervisor.base)
        .arg(screenshot)
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"));
    if let Some(key) = key {
        command.args(["--key", key]);
    }
    let mut child = command
        .spawn()
        .expect("run node (Node.js is required for the browser test)");
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = format!(
        "--- browser test output ---\n{}{}--- supervisor log ---\n{}",
        std::fs::read_to_string(&stdout_path).unwrap_or_default(),
        std::fs::read_to_string(&stderr_path).unwrap_or_default(),
        supervisor.log_text(),
    );
    match status {
        None => panic!("the browser test did not finish within 240 s\n{output}"),
        Some(status) => assert!(
            status.success(),
            "the browser test failed ({status})\n{output}"
        ),
    }
    let size = std::fs::metadata(screenshot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 0,
        "no screenshot at {}\n{output}",
        screenshot.display()
    );
}

fn artifact(name: &str) -> PathBuf {
    repo().join("target/test-artifacts").join(name)
}

/// POSTs with the given extra headers, returning the status and the JSON body.
async fn post(supervisor: &Supervisor, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = supervisor.client.post(supervisor.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("POST {path} answered {status} with non-JSON {text:?}"));
    (status, body)
}

/// POSTs as the page does: with an `Origin` naming the supervisor.
async fn post_same_origin(supervisor: &Supervisor, path: &str) -> (u16, Value) {
    let origin = supervisor.base.clone();
    post(supervisor, path, &[("origin", &origin)]).await
}

async fn stats(supervisor: &Supervisor) -> Value {
    let (status, body) = supervisor.get("/_/stats").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("stats JSON")
}

/// The supervisor's id for the child with this pid.
async fn worker_id(supervisor: &Supervisor, pid: u32) -> u64 {
    stats(supervisor).await["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .find(|worker| worker["pid"] == pid)
        .unwrap_or_else(|| panic!("pid {pid} not in /_/stats"))["id"]
        .as_u64()
        .expect("id")
}

async fn listed(supervisor: &Supervisor, pid: u32) -> bool {
    stats(supervisor).await["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .any(|worker| worker["pid"] == pid)
}

/// Waits until the child is gone from `/_/stats` and its process has ended.
async fn assert_ended(supervisor: &Supervisor, pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while listed(supervisor, pid).await {
        assert!(
            Instant::now() < deadline,
            "pid {pid} still listed after retiring"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        eventually(Duration::from_secs(5), || !process_alive(pid)).await,
        "pid {pid} still runs after leaving /_/stats"
    );
}

// ---------------------------------------------------------------------------
// The page

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_their_types_and_no_cache() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    for (path, content_type, marker) in [
        ("/_/", "text/html; charset=utf-8", "Buntime Supervisor"),
        (
            "/_/dashboard",
            "text/html; charset=utf-8",
            "assets/dashboard.js",
        ),
        (
            "/_/assets/dashboard.js",
            "text/javascript; charset=utf-8",
            "EventSource",
        ),
        (
            "/_/assets/dashboard.css",
            "text/css; charset=utf-8",
            "prefers-color-scheme",
        ),
    ] {
        let response = supervisor
            .client
            .get(supervisor.url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], content_type, "{path}");
        assert_eq!(headers["cache-control"], "no-cache", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(
            policy.contains("frame-ancestors 'none'") && policy.contains("script-src 'self'"),
            "{path}: {policy}"
        );
        let body = response.text().await.unwrap();
        assert!(body.contains(marker), "{path} lacks {marker:?}");
        // Nothing is fetched from elsewhere: no CDN, no external fonts.
        assert!(
            !body.contains("http://") && !body.contains("https://") && !body.contains("//cdn"),
            "{path} refers to another origin"
        );
    }
    // `/_` leads to the page.
    let response = supervisor
        .client
        .get(supervisor.url("/_"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.url().path(), "/_/");
}

#[tokio::test]
async fn with_a_master_key_the_page_and_its_actions_need_the_key() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start_with_env(&apps, &[], &[("RUNTIME_MASTER_KEY", MASTER_KEY)]);
    // The page holds no data, but it sits under `/_/` like the rest of the internal
    // API, so it is behind the key too.
    let (status, body) = supervisor.get("/_/").await;
    assert_eq!(status, 401, "{body}");
    let response = supervisor
        .client
        .get(supervisor.url("/_/"))
        .header("x-api-key", MASTER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("Buntime Supervisor"));

    let pid = supervisor.pid("hello").await;
    let id = {
        let response = supervisor
            .client
            .get(supervisor.url("/_/stats"))
            .bearer_auth(MASTER_KEY)
            .send()
            .await
            .unwrap();
        let stats: Value = response.json().await.unwrap();
        stats["workers"][0]["id"].as_u64().unwrap()
    };
    let path = format!("/_/workers/{id}/retire");
    // A same-origin page without the key is refused.
    let (status, body) = post_same_origin(&supervisor, &path).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    assert!(process_alive(pid));
    // The key alone is enough, with or without an Origin.
    let (status, body) = post(&supervisor, &path, &[("x-api-key", MASTER_KEY)]).await;
    assert_eq!(
        (status, &body),
        (200, &serde_json::json!({"retired": true}))
    );
    assert!(
        eventually(Duration::from_secs(15), || !process_alive(pid)).await,
        "pid {pid} still runs"
    );
}

// ---------------------------------------------------------------------------
// The actions

#[tokio::test]
async fn retiring_a_child_by_id_ends_it_and_a_second_retire_finds_nothing() {
    let apps = Apps::with(&["hello@1.0.0", "echo@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let hello = supervisor.pid("hello").await;
    let echo = supervisor.pid("echo").await;
    let id = worker_id(&supervisor, hello).await;

    let path = format!("/_/workers/{id}/retire");
    let (status, body) = post_same_origin(&supervisor, &path).await;
    assert_eq!(
        (status, &body),
        (200, &serde_json::json!({"retired": true}))
    );
    assert_ended(&supervisor, hello).await;
    assert!(process_alive(echo), "the other app's child was touched");
    assert!(listed(&supervisor, echo).await);

    let (status, body) = post_same_origin(&supervisor, &path).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "WORKER_NOT_FOUND");
    // The next request starts a new child.
    assert_ne!(supervisor.pid("hello").await, hello);
    assert_eq!(stats(&supervisor).await["workersRetired"], 1);
}

#[tokio::test]
async fn unknown_worker_ids_answer_404_in_json() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    for path in [
        "/_/workers/999999/retire",
        "/_/workers/not-a-number/retire",
        "/_/workers/-1/retire",
    ] {
        let (status, body) = post_same_origin(&supervisor, path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "WORKER_NOT_FOUND", "{path}");
        assert!(body["error"]["message"].as_str().is_some(), "{path}");
    }
    // Other methods on an action get a JSON 405.
    let response = supervisor
        .client
        .get(supervisor.url("/_/workers/1/retire"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn actions_without_a_same_origin_header_are_refused() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let pid = supervisor.pid("hello").await;
    let id = worker_id(&supervisor, pid).await;
    let worker_path = format!("/_/workers/{id}/retire");
    for path in [worker_path.as_str(), "/_/apps/hello/retire"] {
        let (status, body) = post(&supervisor, path, &[]).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body["error"]["code"], "CSRF_REJECTED", "{path}");
        let (status, body) =
            post(&supervisor, path, &[("origin", "http://elsewhere.example")]).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(process_alive(pid), "a refused call retired the child");
    assert!(listed(&supervisor, pid).await);
}

#[tokio::test]
async fn retiring_an_app_ends_every_child_of_it_and_only_those() {
    let apps = Apps::with(&["hello@1.0.0", "echo@1.0.0"]);
    // A scoped app, to retire by `@scope/name`.
    let scoped = apps.path().join("@team/tool@1.0.0");
    std::fs::create_dir_all(&scoped).unwrap();
    std::fs::write(
        scoped.join("index.ts"),
        "export default { fetch() { return new Response(String(process.pid)) } };\n",
    )
    .unwrap();
    let supervisor = Supervisor::start(&apps, &[]);
    let hello = supervisor.pid("hello").await;
    let echo = supervisor.pid("echo").await;
    let tool = supervisor.pid("@team/tool").await;

    let (status, body) = post_same_origin(&supervisor, "/_/apps/hello/retire").await;
    assert_eq!((status, &body), (200, &serde_json::json!({"retired": 1})));
    assert_ended(&supervisor, hello).await;
    assert!(process_alive(echo) && process_alive(tool));

    let (status, body) = post_same_origin(&supervisor, "/_/apps/@team/tool/retire").await;
    assert_eq!((status, &body), (200, &serde_json::json!({"retired": 1})));
    assert_ended(&supervisor, tool).await;
    assert!(process_alive(echo));

    // The page encodes each segment; the whole name encoded works as well.
    let tool = supervisor.pid("@team/tool").await;
    let (status, body) = post_same_origin(&supervisor, "/_/apps/%40team%2Ftool/retire").await;
    assert_eq!((status, &body), (200, &serde_json::json!({"retired": 1})));
    assert_ended(&supervisor, tool).await;

    // Nothing to retire is not an error.
    for path in ["/_/apps/hello/retire", "/_/apps/no-such-app/retire"] {
        let (status, body) = post_same_origin(&supervisor, path).await;
        assert_eq!(
            (status, &body),
            (200, &serde_json::json!({"retired": 0})),
            "{path}"
        );
    }
    let (status, body) = post_same_origin(&supervisor, "/_/apps/@team/retire").await;
    assert_eq!(status, 404, "{body}");
    assert!(process_alive(echo) && listed(&supervisor, echo).await);
}

// ---------------------------------------------------------------------------
// In a browser

#[test]
fn an_operator_watches_children_and_retires_one_in_a_browser() {
    let apps = Apps::with(FIXTURES);
    let supervisor = Supervisor::start(&apps, &[]);
    drive_browser(&supervisor, &artifact("dashboard.png"), None);
}

#[test]
fn with_a_master_key_the_page_asks_for_it_and_polls_in_a_browser() {
    let apps = Apps::with(FIXTURES);
    let supervisor = Supervisor::start_with_env(&apps, &[], &[("RUNTIME_MASTER_KEY", MASTER_KEY)]);
    drive_browser(
        &supervisor,
        &artifact("dashboard-key.png"),
        Some(MASTER_KEY),
    );
}

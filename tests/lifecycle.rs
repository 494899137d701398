//! Every lifecycle rule against a real child: start-up failures, idle, TTL,
//! ephemeral, maxRequests, timeouts, crashes, LRU eviction and onTerminate.

mod common;

/// How long a test waits for a log line to be read from the supervisor's stderr.
const LOG_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

use std::time::Duration;

use common::{eventually, process_alive, Apps, Supervisor};

#[tokio::test]
async fn a_child_without_ready_in_time_fails_with_503_and_a_log_line() {
    let apps = Apps::with(&["never-ready@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &["--startup-timeout", "1s"]);
    let (status, body) = supervisor.get("/never-ready/").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("WORKER_START_TIMEOUT"), "{body}");
    assert!(
        supervisor
            .wait_for_log(
                &[
                    "child failed to start",
                    "never-ready@1.0.0",
                    "start-up timeout"
                ],
                LOG_WAIT
            )
            .await
    );
}

#[tokio::test]
async fn apps_that_cannot_load_fail_with_502_and_their_stderr_in_the_log() {
    let apps = Apps::with(&["syntax-error@1.0.0", "no-handler@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let (status, body) = supervisor.get("/syntax-error/").await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains(r#"Expected \")\" but found"#),
        "the parse error is named: {body}"
    );
    assert!(
        supervisor
            .wait_for_log(
                &["child failed to start", "syntax-error@1.0.0", "stderr="],
                LOG_WAIT
            )
            .await
    );
    let (status, body) = supervisor.get("/no-handler/").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("exports neither fetch nor routes"), "{body}");
    assert!(
        body.contains("index.ts"),
        "the message names the entrypoint: {body}"
    );
}

#[tokio::test]
async fn an_idle_child_gets_on_idle_once_and_stays() {
    let apps = Apps::with(&["hooks@1.0.0"]);
    apps.config_with_evidence("hooks@1.0.0", "idleTimeout: \"500ms\"");
    let supervisor = Supervisor::start(&apps, &[]);
    let pid = supervisor.pid("hooks").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        apps.evidence_lines("hooks.log"),
        vec![format!("idle {pid}")]
    );
    assert_eq!(supervisor.pid("hooks").await, pid, "an idle child stays");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        apps.evidence_lines("hooks.log"),
        vec![format!("idle {pid}"), format!("idle {pid}")],
        "a new idle period after a request gets its own onIdle"
    );
}

#[tokio::test]
async fn ttl_slides_with_each_request_and_then_retires_the_child() {
    let apps = Apps::with(&["hooks@1.0.0"]);
    apps.config_with_evidence("hooks@1.0.0", "ttl: \"1500ms\"");
    let supervisor = Supervisor::start(&apps, &[]);
    let pid = supervisor.pid("hooks").await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(
            supervisor.pid("hooks").await,
            pid,
            "each request resets the ttl"
        );
    }
    assert!(
        eventually(Duration::from_secs(5), || !process_alive(pid)).await,
        "the child retires once the ttl passes without a request"
    );
    assert!(
        apps.evidence_lines("hooks.log")
            .contains(&format!("terminate {pid}")),
        "onTerminate ran"
    );
    assert_ne!(supervisor.pid("hooks").await, pid);
}

#[tokio::test]
async fn ttl_zero_keeps_one_child_indefinitely() {
    let apps = Apps::with(&["hello@1.0.0"]);
    apps.config("hello@1.0.0", "{ ttl: 0, idleTimeout: \"300ms\" }");
    let supervisor = Supervisor::start(&apps, &[]);
    let pid = supervisor.pid("hello").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(process_alive(pid));
    assert_eq!(supervisor.pid("hello").await, pid);
}

#[tokio::test]
async fn ephemeral_apps_get_a_new_child_per_request() {
    let apps = Apps::with(&["ephemeral@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let mut pids = Vec::new();
    for _ in 0..3 {
        pids.push(supervisor.pid("ephemeral").await);
    }
    pids.dedup();
    assert_eq!(pids.len(), 3, "{pids:?}");
    for pid in pids {
        assert!(
            eventually(Duration::from_secs(5), || !process_alive(pid)).await,
            "{pid} retired"
        );
    }
}

#[tokio::test]
async fn ephemeral_requests_beyond_the_queue_get_503() {
    let apps = Apps::with(&["ephemeral@1.0.0"]);
    let supervisor = Supervisor::start(
        &apps,
        &["--ephemeral-concurrency", "1", "--ephemeral-queue", "1"],
    );
    let requests = (0..3).map(|_| {
        let client = supervisor.client.clone();
        let url = supervisor.url("/ephemeral/?ms=1500");
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    });
    let mut statuses = futures_util::future::join_all(requests).await;
    statuses.sort();
    assert_eq!(statuses, vec![200, 200, 503]);
}

#[tokio::test]
async fn max_requests_recycles_the_child() {
    let apps = Apps::with(&["max-requests@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let first: Vec<u32> =
        futures_util::future::join_all((0..3).map(|_| supervisor.pid("max-requests"))).await;
    assert!(first.iter().all(|pid| *pid == first[0]), "{first:?}");
    let next = supervisor.pid("max-requests").await;
    assert_ne!(next, first[0]);
    assert!(eventually(Duration::from_secs(5), || !process_alive(first[0])).await);
}

#[tokio::test]
async fn a_request_past_its_timeout_gets_504_and_a_hung_child_is_replaced() {
    let apps = Apps::with(&["hang@1.0.0"]);
    apps.config("hang@1.0.0", "{ timeout: \"1s\" }");
    let supervisor = Supervisor::start(&apps, &[]);
    let pid = supervisor.pid("hang").await;

    // A handler whose promise never settles: 504, and the healthy child stays.
    let (status, body) = supervisor.get("/hang/promise").await;
    assert_eq!(status, 504, "{body}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        supervisor.pid("hang").await,
        pid,
        "a responsive child is kept"
    );

    // A handler that blocks the event loop: 504, then the child is killed and replaced.
    let (status, _) = supervisor.get("/hang/").await;
    assert_eq!(status, 504);
    assert!(
        eventually(Duration::from_secs(10), || !process_alive(pid)).await,
        "hung child killed"
    );
    assert_ne!(supervisor.pid("hang").await, pid);
    assert!(
        supervisor
            .wait_for_log(&["did not answer a health probe", "hang@1.0.0"], LOG_WAIT)
            .await
    );
}

#[tokio::test]
async fn a_crash_answers_502_and_the_next_request_gets_a_fresh_child() {
    let apps = Apps::with(&["crash@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let pid = supervisor.pid("crash").await;
    let (status, body) = supervisor.get("/crash/crash").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("requestId"), "{body}");
    let next = supervisor.pid("crash").await;
    assert_ne!(next, pid);
    assert!(
        supervisor
            .wait_for_log(&["child exited unexpectedly", "crash@1.0.0"], LOG_WAIT)
            .await
    );
}

#[tokio::test]
async fn the_least_recently_used_app_is_evicted_at_pool_size() {
    let apps = Apps::with(&["hello@1.0.0", "echo@1.0.0", "routes@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &["--pool-size", "2"]);
    let hello = supervisor.pid("hello").await;
    let echo = supervisor.pid("echo").await;
    assert_eq!(supervisor.pid("echo").await, echo);
    supervisor.pid("routes").await;
    assert!(
        eventually(Duration::from_secs(5), || !process_alive(hello)).await,
        "hello evicted"
    );
    assert!(process_alive(echo), "echo was used more recently and stays");
    assert_ne!(supervisor.pid("hello").await, hello);
}

#[tokio::test]
async fn on_terminate_runs_when_a_child_is_retired() {
    let apps = Apps::with(&["hooks@1.0.0"]);
    apps.config_with_evidence("hooks@1.0.0", "maxRequests: 1");
    let supervisor = Supervisor::start(&apps, &[]);
    let pid = supervisor.pid("hooks").await;
    assert!(
        eventually(Duration::from_secs(5), || apps.evidence_lines("hooks.log")
            == [format!("terminate {pid}")])
        .await,
        "{:?}",
        apps.evidence_lines("hooks.log")
    );
    assert!(eventually(Duration::from_secs(5), || !process_alive(pid)).await);
}

#[tokio::test]
async fn low_memory_apps_run_bun_with_smol() {
    let apps = Apps::with(&["low-memory@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let (status, body) = supervisor.get("/low-memory/argv").await;
    assert_eq!(status, 200);
    assert!(body.contains("--smol"), "{body}");
}

#[tokio::test]
async fn auto_install_runs_bun_install_before_the_first_start() {
    let apps = Apps::with(&["auto-install@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    assert_eq!(
        supervisor.get("/auto-install/").await,
        (200, "installed".into())
    );
}

#[tokio::test]
async fn a_failing_auto_install_is_a_502_naming_the_app() {
    let apps = Apps::with(&["auto-install@1.0.0"]);
    std::fs::write(
        apps.path().join("auto-install@1.0.0/package.json"),
        r#"{"name":"x","private":true,"dependencies":{"missing-local":"file:./does-not-exist"}}"#,
    )
    .unwrap();
    let supervisor = Supervisor::start(&apps, &[]);
    let (status, body) = supervisor.get("/auto-install/").await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("auto-install@1.0.0") && body.contains("bun install failed"),
        "{body}"
    );
}

#[tokio::test]
async fn a_bad_worker_config_answers_500_naming_file_key_and_value() {
    let apps = Apps::with(&["bad-config@1.0.0", "hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let (status, body) = supervisor.get("/bad-config/").await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("worker.jsonc") && body.contains("APP_CONFIG_INVALID"),
        "{body}"
    );
    assert!(
        body.contains("timeout") || body.contains("bogusKey"),
        "{body}"
    );
    assert_eq!(
        supervisor.get("/hello/").await.0,
        200,
        "other apps are unaffected"
    );
}

#[tokio::test]
async fn a_child_that_breaks_the_protocol_is_killed_and_replaced() {
    let apps = Apps::with(&["protocol-breaker@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let pid = supervisor.pid("protocol-breaker").await;
    let (status, body) = supervisor.get("/protocol-breaker/break").await;
    assert_eq!(status, 502, "{body}");
    assert!(
        eventually(Duration::from_secs(5), || !process_alive(pid)).await,
        "the child is killed"
    );
    let pid_text = pid.to_string();
    assert!(
        supervisor
            .wait_for_log(
                &[
                    "protocol error from child",
                    "protocol-breaker@1.0.0",
                    &pid_text,
                    "unknown frame type 0x7f"
                ],
                LOG_WAIT
            )
            .await
    );
    assert_ne!(supervisor.pid("protocol-breaker").await, pid);
}

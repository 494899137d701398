//! What operators see: Prometheus metrics moving with real traffic, JSON logs and
//! access log lines.

mod common;

use std::time::Duration;

use common::{Apps, Supervisor};

async fn scrape(supervisor: &Supervisor) -> String {
    let (status, body) = supervisor.get("/_/metrics/prometheus").await;
    assert_eq!(status, 200);
    body
}

/// The value of the sample whose line starts with `prefix` (name and labels).
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn request_counters_and_latency_histograms_move_with_traffic() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let before = scrape(&supervisor).await;
    for _ in 0..5 {
        supervisor.get("/hello/").await;
    }
    supervisor.get("/hello/missing-route-404").await;
    let after = scrape(&supervisor).await;
    let ok = r#"buntime_requests_total{app="hello",status="2xx",version="1.0.0"}"#;
    assert_eq!(sample(&after, ok) - sample(&before, ok), 5.0, "{after}");
    assert_eq!(
        sample(
            &after,
            r#"buntime_requests_total{app="hello",status="4xx",version="1.0.0"}"#
        ),
        1.0
    );
    let count =
        r#"buntime_request_duration_seconds_count{app="hello",status="2xx",version="1.0.0"}"#;
    assert_eq!(sample(&after, count), 5.0);
    assert!(after.contains("# HELP buntime_request_duration_seconds"));
    assert_eq!(
        sample(&after, r#"buntime_worker_spawns_total{app="hello"}"#),
        1.0
    );
    assert_eq!(sample(&after, r#"buntime_workers{state="active"}"#), 1.0);
    assert!(sample(&after, "process_resident_memory_bytes") > 1e6);
    assert!(
        sample(
            &after,
            r#"buntime_worker_resident_memory_bytes{app="hello""#
        ) > 1e6
    );
    assert!(
        !after.contains("missing-route-404"),
        "no request paths as labels"
    );
}

#[tokio::test]
async fn a_crash_shows_up_as_an_exit_with_reason_crash() {
    let apps = Apps::with(&["crash@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    supervisor.pid("crash").await;
    assert_eq!(supervisor.get("/crash/crash").await.0, 502);
    let mut text = String::new();
    for _ in 0..50 {
        text = scrape(&supervisor).await;
        if sample(
            &text,
            r#"buntime_worker_exits_total{app="crash",reason="crash"}"#,
        ) == 1.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        sample(
            &text,
            r#"buntime_worker_exits_total{app="crash",reason="crash"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"buntime_requests_total{app="crash",status="5xx",version="1.0.0"}"#
        ),
        1.0
    );
}

#[tokio::test]
async fn an_ephemeral_request_is_one_spawn_and_one_exit() {
    let apps = Apps::with(&["ephemeral@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    supervisor.pid("ephemeral").await;
    let mut text = String::new();
    for _ in 0..50 {
        text = scrape(&supervisor).await;
        if sample(
            &text,
            r#"buntime_worker_exits_total{app="ephemeral",reason="ephemeral"}"#,
        ) == 1.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        sample(&text, r#"buntime_worker_spawns_total{app="ephemeral"}"#),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"buntime_worker_exits_total{app="ephemeral",reason="ephemeral"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(&text, "buntime_worker_start_duration_seconds_count"),
        1.0
    );
}

#[tokio::test]
async fn limits_failures_and_sessions_are_counted() {
    let apps = Apps::with(&["echo@1.0.0", "never-ready@1.0.0", "ws-echo@1.0.0"]);
    apps.config("echo@1.0.0", "{ maxBodySize: \"1kb\" }");
    let supervisor = Supervisor::start(&apps, &["--startup-timeout", "500ms"]);
    let rejected = supervisor
        .client
        .post(supervisor.url("/echo/upload"))
        .body(vec![0u8; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), 413);
    assert_eq!(supervisor.get("/never-ready/").await.0, 503);
    let url = format!(
        "{}/ws-echo/",
        supervisor.base.replacen("http://", "ws://", 1)
    );
    let (session, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let text = scrape(&supervisor).await;
    assert_eq!(
        sample(&text, r#"buntime_body_limit_rejections_total{app="echo"}"#),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"buntime_worker_start_failures_total{app="never-ready",kind="timeout"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(&text, r#"buntime_websocket_sessions_open{app="ws-echo"}"#),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"buntime_requests_in_flight{app="ws-echo",version="1.0.0"}"#
        ),
        1.0
    );
    drop(session);
    let mut closed = false;
    for _ in 0..50 {
        if sample(
            &scrape(&supervisor).await,
            r#"buntime_websocket_sessions_open{app="ws-echo"}"#,
        ) == 0.0
        {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(closed, "the session gauge goes back down");
    let alias = supervisor.get("/_/plugin-metrics/prometheus").await;
    assert!(alias.0 == 200 && alias.1.contains("buntime_requests_total"));
}

#[tokio::test]
async fn json_logs_carry_one_access_line_per_request() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &["--log-format", "json"]);
    let pid = supervisor.pid("hello").await;
    supervisor
        .client
        .get(supervisor.url("/hello/?token=secret"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert!(
        supervisor
            .wait_for_log(&["trace-me-42"], Duration::from_secs(5))
            .await
    );
    let line = supervisor
        .logs
        .lock()
        .unwrap()
        .iter()
        .find(|line| line.contains("trace-me-42"))
        .cloned()
        .unwrap();
    let entry: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(entry["target"], "access");
    assert_eq!(entry["method"], "GET");
    assert_eq!(
        entry["path"], "/hello/",
        "the query string stays out of the log"
    );
    assert_eq!(entry["status"], 200);
    assert_eq!(entry["app"], "hello");
    assert_eq!(entry["version"], "1.0.0");
    assert_eq!(entry["pid"], pid);
    assert_eq!(entry["bytes"], "22");
    assert!(entry["duration_ms"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn access_lines_can_be_turned_off() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &["--access-log", "false"]);
    supervisor
        .client
        .get(supervisor.url("/hello/"))
        .header("x-request-id", "quiet-please")
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !supervisor.logged(&["quiet-please"]),
        "{}",
        supervisor.log_text()
    );
}

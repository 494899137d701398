//! The internal API under `/_/` as an operator uses it.

mod common;

use common::{Apps, Supervisor};

#[tokio::test]
async fn stats_list_each_live_child_with_its_figures() {
    let apps = Apps::with(&["hello@1.0.0", "echo@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let hello = supervisor.pid("hello").await;
    supervisor.pid("hello").await;
    let echo = supervisor.pid("echo").await;
    let (status, body) = supervisor.get("/_/stats").await;
    assert_eq!(status, 200);
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stats["activeWorkers"], 2);
    assert_eq!(stats["workersCreated"], 2);
    assert_eq!(stats["hits"], 1);
    assert_eq!(stats["misses"], 2);
    let workers = stats["workers"].as_array().unwrap();
    let hello_entry = workers
        .iter()
        .find(|w| w["pid"] == hello)
        .expect("hello listed");
    assert_eq!(hello_entry["app"], "hello");
    assert_eq!(hello_entry["version"], "1.0.0");
    assert_eq!(hello_entry["requests"], 2);
    assert_eq!(hello_entry["state"], "active");
    assert!(hello_entry["rssBytes"].as_u64().unwrap() > 1_000_000);
    assert!(workers.iter().any(|w| w["pid"] == echo));
}

#[tokio::test]
async fn health_routes_answer_while_serving() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    for path in ["/_/health", "/_/health/live", "/_/health/ready"] {
        assert_eq!(supervisor.get(path).await.0, 200, "{path}");
    }
    let (_, body) = supervisor.get("/_/apps").await;
    assert!(
        body.contains("\"hello\"") && body.contains("1.0.0"),
        "{body}"
    );
}

#[tokio::test]
async fn metrics_report_pool_figures_including_latency_and_ephemeral_limits() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &["--ephemeral-concurrency", "3"]);
    for _ in 0..3 {
        supervisor.get("/hello/").await;
    }
    let (_, body) = supervisor.get("/_/metrics").await;
    let metrics: serde_json::Value = serde_json::from_str(&body).unwrap();
    for key in [
        "activeWorkers",
        "hits",
        "misses",
        "hitRate",
        "evictions",
        "workersCreated",
        "workersFailed",
        "workersRetired",
        "totalRequests",
        "requestsPerSecond",
        "averageResponseMs",
        "uptimeSeconds",
        "ephemeralConcurrency",
        "ephemeralQueueDepth",
    ] {
        assert!(metrics.get(key).is_some(), "{key} missing from {body}");
    }
    assert_eq!(metrics["totalRequests"], 3);
    assert_eq!(metrics["ephemeralConcurrency"], 3);
    assert!(metrics["averageResponseMs"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn sse_streams_the_stats_every_second() {
    use futures_util::StreamExt;
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let pid = supervisor.pid("hello").await;
    let response = supervisor
        .client
        .get(supervisor.url("/_/sse"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    let mut text = String::new();
    let started = std::time::Instant::now();
    while text.matches("event: stats").count() < 2 {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "one event a second"
    );
    assert!(text.contains(&format!("\"pid\":{pid}")), "{text}");
}

#[tokio::test]
async fn the_root_names_the_product_when_no_homepage_is_set() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let (status, body) = supervisor.get("/").await;
    assert_eq!(status, 200);
    assert!(body.starts_with("buntime-supervisor "), "{body}");
}

#[tokio::test]
async fn a_homepage_app_is_served_at_the_root_and_for_paths_naming_no_app() {
    let apps = Apps::with(&["hello@1.0.0", "echo@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &["--homepage", "echo@1"]);
    let (status, body) = supervisor.get("/inspect?from=home").await;
    assert_eq!(status, 200, "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["path"], "/inspect?from=home");
    assert_eq!(
        supervisor.get("/hello/").await.1,
        "Hello from hello@1.0.0",
        "other apps keep their paths"
    );
    assert_eq!(
        supervisor.get("/").await.0,
        404,
        "echo answers / with its own 404"
    );
}

#[tokio::test]
async fn state_changing_internal_calls_need_a_same_origin_or_a_key() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let post = |origin: Option<String>| {
        let mut request = supervisor.client.post(supervisor.url("/_/metrics"));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    let response = post(None).await.unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("CSRF_REJECTED"));
    assert_eq!(
        post(Some("http://evil.example".into()))
            .await
            .unwrap()
            .status(),
        403
    );
    let same = post(Some(supervisor.base.clone())).await.unwrap();
    assert_eq!(
        same.status(),
        405,
        "past the origin check, the route itself answers"
    );
    assert_eq!(
        supervisor.get("/hello/").await.0,
        200,
        "app routes are not affected"
    );
}

#[tokio::test]
async fn a_master_key_protects_the_whole_internal_api_but_not_probes() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor =
        Supervisor::start_with_env(&apps, &[], &[("RUNTIME_MASTER_KEY", "s3cret-key")]);
    let response = supervisor
        .client
        .get(supervisor.url("/_/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let wrong = supervisor
        .client
        .get(supervisor.url("/_/stats"))
        .header("x-api-key", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let keyed = supervisor
        .client
        .get(supervisor.url("/_/stats"))
        .header("x-api-key", "s3cret-key")
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 200);
    let bearer = supervisor
        .client
        .get(supervisor.url("/_/apps"))
        .bearer_auth("s3cret-key")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    let keyed_post = supervisor
        .client
        .post(supervisor.url("/_/metrics"))
        .bearer_auth("s3cret-key")
        .send()
        .await
        .unwrap();
    assert_eq!(
        keyed_post.status(),
        405,
        "a key stands in for the origin check"
    );
    assert_eq!(
        supervisor.get("/_/health/ready").await.0,
        200,
        "probes stay open"
    );
    assert_eq!(supervisor.get("/hello/").await.0, 200);
}

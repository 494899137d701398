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

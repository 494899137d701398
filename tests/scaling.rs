//! Several children per app: scaling out under load, back in when idle, and children
//! kept from boot.

mod common;

use std::time::Duration;

use common::{eventually, process_alive, Apps, Supervisor};

/// The `/_/stats` entries of the app's live children.
async fn workers_of(supervisor: &Supervisor, app: &str) -> Vec<serde_json::Value> {
    let (_, body) = supervisor.get("/_/stats").await;
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    stats["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|worker| worker["app"] == app)
        .cloned()
        .collect()
}

fn pid_of(worker: &serde_json::Value) -> u32 {
    worker["pid"].as_u64().unwrap() as u32
}

async fn children_of_app(supervisor: &Supervisor, app: &str) -> Vec<(u32, String)> {
    workers_of(supervisor, app)
        .await
        .iter()
        .map(|worker| (pid_of(worker), worker["state"].as_str().unwrap().to_owned()))
        .collect()
}

/// The app's children once there are `count` of them (or what there is after 5 s).
async fn wait_for_children(supervisor: &Supervisor, app: &str, count: usize) -> Vec<(u32, String)> {
    let mut children = Vec::new();
    for _ in 0..100 {
        children = children_of_app(supervisor, app).await;
        if children.len() == count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    children
}

#[tokio::test]
async fn a_saturated_app_gets_another_child_and_sheds_it_when_idle() {
    let apps = Apps::with(&["scaled@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let slow = |ms: u64| {
        let client = supervisor.client.clone();
        let url = supervisor.url(&format!("/scaled/?ms={ms}"));
        tokio::spawn(async move { client.get(url).send().await.unwrap().text().await.unwrap() })
    };
    let first = slow(2000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The only child has a request in flight: this one notices and a second starts.
    let second = slow(1500);
    assert_eq!(
        wait_for_children(&supervisor, "scaled", 2).await.len(),
        2,
        "a second child started"
    );
    let third = supervisor.get("/scaled/").await.1;
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!(
        first, second,
        "the second request went to the busy child while the new one started"
    );
    assert_ne!(third, first, "the new child takes the next request");
    let extra: u32 = third.parse().unwrap();
    let kept: u32 = first.parse().unwrap();
    assert!(
        eventually(Duration::from_secs(6), || !process_alive(extra)).await,
        "the extra child retires once idle"
    );
    assert!(process_alive(kept), "one child stays");
    assert_eq!(supervisor.get("/scaled/").await.1, first);
}

#[tokio::test]
async fn min_instances_start_at_boot_and_stay_through_idle() {
    let apps = Apps::with(&["warm@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let children = wait_for_children(&supervisor, "warm", 2).await;
    assert_eq!(
        children.len(),
        2,
        "two children before any request: {children:?}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after_idle = children_of_app(&supervisor, "warm").await;
    assert_eq!(
        after_idle.len(),
        2,
        "minInstances children are kept when idle: {after_idle:?}"
    );
    let pid: u32 = supervisor.get("/warm/").await.1.parse().unwrap();
    assert!(
        children.iter().any(|(p, _)| *p == pid),
        "a request lands on a pre-started child"
    );
}

#[tokio::test]
async fn a_min_instance_that_dies_is_replaced() {
    let apps = Apps::with(&["warm@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let children = wait_for_children(&supervisor, "warm", 2).await;
    let victim = children[0].0;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let mut replaced = false;
    for _ in 0..100 {
        let now = children_of_app(&supervisor, "warm").await;
        if now.len() == 2 && now.iter().all(|(pid, _)| *pid != victim) {
            replaced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(replaced, "back to two children without the dead one");
}

/// Pids of the app's children that have served no request yet.
async fn fresh_children(supervisor: &Supervisor, app: &str) -> Vec<u32> {
    workers_of(supervisor, app)
        .await
        .iter()
        .filter(|worker| worker["requests"] == 0)
        .map(pid_of)
        .collect()
}

async fn wait_for_fresh(supervisor: &Supervisor, app: &str, not: &[u32]) -> u32 {
    for _ in 0..200 {
        if let Some(pid) = fresh_children(supervisor, app)
            .await
            .into_iter()
            .find(|pid| !not.contains(pid))
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no spare child of {app} appeared");
}

#[tokio::test]
async fn ephemeral_requests_are_served_by_a_warm_spare_that_is_then_replaced() {
    let apps = Apps::with(&["ephemeral-spare@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let spare = wait_for_fresh(&supervisor, "ephemeral-spare", &[]).await;
    let served = supervisor.pid("ephemeral-spare").await;
    assert_eq!(served, spare, "the request got the spare started at boot");
    let next_spare = wait_for_fresh(&supervisor, "ephemeral-spare", &[spare]).await;
    assert_ne!(next_spare, spare);
    let served = supervisor.pid("ephemeral-spare").await;
    assert_eq!(served, next_spare, "and the next one the replacement");
    assert!(
        eventually(Duration::from_secs(5), || !process_alive(spare)).await,
        "used spares retire"
    );
}

#[tokio::test]
async fn spares_can_be_turned_off_globally() {
    let apps = Apps::with(&["ephemeral-spare@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &["--max-spares", "0"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(fresh_children(&supervisor, "ephemeral-spare")
        .await
        .is_empty());
    assert_eq!(supervisor.get("/ephemeral-spare/pid").await.0, 200);
}

#[tokio::test]
async fn the_first_request_after_scale_to_zero_takes_a_spare() {
    let apps = Apps::with(&["hello@1.0.0"]);
    apps.config("hello@1.0.0", "{ spares: 1, ttl: \"1s\" }");
    let supervisor = Supervisor::start(&apps, &[]);
    let spare = wait_for_fresh(&supervisor, "hello", &[]).await;
    assert_eq!(
        supervisor.pid("hello").await,
        spare,
        "no cold start for the first request"
    );
    // Once that child expires, the next request again finds a spare waiting.
    let next_spare = wait_for_fresh(&supervisor, "hello", &[spare]).await;
    assert!(
        eventually(Duration::from_secs(5), || !process_alive(spare)).await,
        "the ttl ends the used child"
    );
    assert_eq!(supervisor.pid("hello").await, next_spare);
}

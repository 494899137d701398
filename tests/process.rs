//! The supervisor as a process: crashes under load, no zombies, signals, and clear
//! errors for bad settings.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{bun, children_of, eventually, process_alive, zombies_of, Apps, Supervisor};
use nix::sys::signal::Signal;

#[tokio::test]
async fn killing_a_child_under_load_fails_only_its_requests_in_flight() {
    let apps = Apps::with(&["crash@1.0.0", "hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    let victim = supervisor.pid("crash").await;
    let other = supervisor.pid("hello").await;

    let slow = (0..10).map(|_| {
        let client = supervisor.client.clone();
        let url = supervisor.url("/crash/slow?ms=3000");
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    });
    let fast = (0..10).map(|i| {
        let client = supervisor.client.clone();
        let url = supervisor.url("/hello/");
        async move {
            tokio::time::sleep(Duration::from_millis(100 * i)).await;
            client.get(url).send().await.unwrap().status().as_u16()
        }
    });
    let killer = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(victim as i32), Signal::SIGKILL).unwrap();
    };
    let (slow, fast, ()) = tokio::join!(
        futures_util::future::join_all(slow),
        futures_util::future::join_all(fast),
        killer
    );
    assert!(
        slow.iter().all(|status| *status == 502),
        "in-flight requests on the killed child: {slow:?}"
    );
    assert!(
        fast.iter().all(|status| *status == 200),
        "requests to another app: {fast:?}"
    );
    let next = supervisor.pid("crash").await;
    assert_ne!(next, victim);
    assert_eq!(supervisor.pid("hello").await, other);
    let supervisor_pid = supervisor.pid_of_supervisor();
    assert!(
        eventually(Duration::from_secs(2), || zombies_of(supervisor_pid)
            .is_empty())
        .await,
        "no <defunct> children"
    );
}

#[tokio::test]
async fn sigterm_retires_every_child_with_on_terminate_and_exits_zero() {
    let apps = Apps::with(&["hooks@1.0.0", "hello@1.0.0", "slow@1.0.0"]);
    apps.config_with_evidence("hooks@1.0.0", "");
    let mut supervisor = Supervisor::start(&apps, &["--shutdown-grace", "10s"]);
    let hooks = supervisor.pid("hooks").await;
    let hello = supervisor.pid("hello").await;
    let in_flight = tokio::spawn({
        let client = supervisor.client.clone();
        let url = supervisor.url("/slow/?ms=1000");
        async move {
            let response = client.get(url).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    supervisor.signal(Signal::SIGTERM);
    assert_eq!(
        in_flight.await.unwrap(),
        (200, "slept 1000".into()),
        "in-flight request drained"
    );
    let status = supervisor
        .wait_exit(Duration::from_secs(10))
        .expect("exits within the grace period");
    assert!(status.success(), "{status}");
    assert_eq!(
        apps.evidence_lines("hooks.log"),
        vec![format!("terminate {hooks}")]
    );
    assert!(!process_alive(hooks) && !process_alive(hello));
}

#[tokio::test]
async fn sigkill_of_the_supervisor_leaves_no_bun_behind() {
    let apps = Apps::with(&["hello@1.0.0", "echo@1.0.0", "slow@1.0.0"]);
    let mut supervisor = Supervisor::start(&apps, &[]);
    let pids = vec![
        supervisor.pid("hello").await,
        supervisor.pid("echo").await,
        supervisor.pid("slow").await,
    ];
    let children = children_of(supervisor.pid_of_supervisor());
    for pid in &pids {
        assert!(children.contains(pid), "{pid} is a direct child");
    }
    supervisor.signal(Signal::SIGKILL);
    supervisor
        .wait_exit(Duration::from_secs(5))
        .expect("killed");
    for pid in pids {
        assert!(
            eventually(Duration::from_secs(5), || !process_alive(pid)).await,
            "bun {pid} outlived the supervisor"
        );
    }
}

#[test]
fn a_missing_bun_is_one_clear_error_line() {
    let apps = Apps::with(&[]);
    let output = Command::new(env!("CARGO_BIN_EXE_buntime-supervisor"))
        .args(["run", "--port", "0", "--bun", "/nonexistent/bun", "--apps"])
        .arg(apps.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bun not found at /nonexistent/bun"),
        "{stderr}"
    );
}

#[test]
fn a_missing_app_dir_is_refused_before_listening() {
    let output = Command::new(env!("CARGO_BIN_EXE_buntime-supervisor"))
        .args(["run", "--port", "0", "--apps", "/nonexistent/apps", "--bun"])
        .arg(bun())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("app dir /nonexistent/apps does not exist"),
        "{stderr}"
    );
}

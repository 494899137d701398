//! Children start from the shim compiled to bytecode once the supervisor has built
//! it, and from the shim's source when `bun` cannot build it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{bun, Apps, Supervisor};

const COMPILED: &str = "children start from the shim compiled to bytecode";
const NOT_COMPILED: &str = "could not compile the shim to bytecode";

/// The command line of a process, its arguments joined by spaces.
fn command_line(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).expect("read cmdline");
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

#[tokio::test]
async fn children_start_from_the_compiled_shim_once_it_is_built() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let supervisor = Supervisor::start(&apps, &[]);
    assert!(
        supervisor
            .wait_for_log(&[COMPILED], Duration::from_secs(30))
            .await,
        "{}",
        supervisor.log_text()
    );
    let pid = supervisor.pid("hello").await;
    let command = command_line(pid);
    assert!(command.contains("shim-bytecode/main.js"), "{command}");
    let (status, body) = supervisor.get("/hello/").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn children_start_from_source_when_bun_cannot_build_the_shim() {
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("bun");
    // A `bun` that refuses `build` and runs everything else.
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$1\" = build ]; then echo 'build is not available here' >&2; exit 1; fi\nexec '{}' \"$@\"\n",
            bun().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let apps = Apps::with(&["hello@1.0.0"]);
    let wrapper_text = wrapper.display().to_string();
    let supervisor = Supervisor::start(&apps, &["--bun", &wrapper_text]);
    assert!(
        supervisor
            .wait_for_log(
                &[NOT_COMPILED, "build is not available here"],
                Duration::from_secs(30)
            )
            .await,
        "{}",
        supervisor.log_text()
    );
    assert!(!supervisor.logged(&[COMPILED]));
    let pid = supervisor.pid("hello").await;
    let command = command_line(pid);
    assert!(command.contains("/shim/main.js"), "{command}");
    let (status, body) = supervisor.get("/hello/").await;
    assert_eq!(status, 200, "{body}");
}

//! Starting one child: optional `bun install`, spawn, accept its IPC connection, and
//! wait for READY within the start-up timeout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::net::UnixListener;
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::env::InheritedEnv;
use super::output::{forward, StderrTail, Stream};
use super::spawn::{signal_group, spawn_child, SpawnSpec};
use super::StartError;
use crate::apps::AppRelease;
use crate::config::WorkerConfig;
use crate::ipc::{Connection, ControlEvent};
use crate::shim::ShimEntry;

/// Everything needed to start children, fixed at supervisor start.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The `bun` executable.
    pub bun: PathBuf,
    /// The shim file children start with.
    pub shim: ShimEntry,
    /// Where per-child sockets live.
    pub runtime_dir: PathBuf,
    /// Longest wait from spawn to READY.
    pub startup_timeout: Duration,
    /// The inherited part of every child's environment.
    pub inherited_env: InheritedEnv,
}

/// A child that sent READY, before it is handed to its owning task.
pub struct Started {
    /// The process.
    pub child: Child,
    /// Its pid.
    pub pid: u32,
    /// Its connection.
    pub connection: Connection,
    /// Connection-level events, for the owner.
    pub control: mpsc::UnboundedReceiver<ControlEvent>,
    /// The Bun version it reported.
    pub bun_version: String,
    /// Spawn to READY.
    pub startup: Duration,
}

impl Launcher {
    /// Runs `bun install --frozen-lockfile --ignore-scripts` in the app dir.
    pub async fn install_dependencies(&self, release: &AppRelease) -> Result<(), StartError> {
        let output = tokio::process::Command::new(&self.bun)
            .args(["install", "--frozen-lockfile", "--ignore-scripts"])
            .current_dir(&release.dir)
            .env_clear()
            .envs(self.inherited_env.for_child(&Default::default(), &[]))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(300), output)
            .await
            .map_err(|_| StartError::Install {
                app: release.label(),
                detail: "bun install took longer than 5 minutes".to_owned(),
            })?
            .map_err(|error| StartError::Install {
                app: release.label(),
                detail: error.to_string(),
            })?;
        if !output.status.success() {
            return Err(StartError::Install {
                app: release.label(),
                detail: crate::bun::last_lines(&output.stderr, 10),
            });
        }
        Ok(())
    }

    /// Spawns a child for `release` and waits for READY.
    pub async fn start(
        &self,
        id: u64,
        release: &AppRelease,
        config: &WorkerConfig,
        entrypoint: &Path,
    ) -> Result<Started, StartError> {
        let label = release.label();
        let socket_path = self.runtime_dir.join(format!("w{id}.sock"));
        let _ = std::fs::remove_file(&socket_path);
        let listener = UnixListener::bind(&socket_path).map_err(|error| StartError::Spawn {
            app: label.clone(),
            detail: format!("cannot listen on {}: {error}", socket_path.display()),
        })?;
        let _cleanup = RemoveOnDrop(socket_path.clone());

        let mut args = Vec::new();
        if config.low_memory {
            args.push("--smol".to_owned());
        }
        args.push(self.shim.current().display().to_string());
        let env = self.inherited_env.for_child(
            &config.env,
            &[
                ("BUNTIME_IPC_PATH", socket_path.display().to_string()),
                ("BUNTIME_ENTRYPOINT", entrypoint.display().to_string()),
                ("BUNTIME_APP", label.clone()),
            ],
        );
        let spawned_at = Instant::now();
        let mut child = spawn_child(SpawnSpec {
            bun: &self.bun,
            args,
            cwd: &release.dir,
            env,
        })
        .map_err(|error| StartError::Spawn {
            app: label.clone(),
            detail: format!("cannot run {}: {error}", self.bun.display()),
        })?;
        let pid = child.id().unwrap_or(0);
        let tail = StderrTail::default();
        let mut forwarders = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            forwarders.push(forward(
                stdout,
                Stream::Stdout,
                label.clone(),
                pid,
                tail.clone(),
            ));
        }
        if let Some(stderr) = child.stderr.take() {
            forwarders.push(forward(
                stderr,
                Stream::Stderr,
                label.clone(),
                pid,
                tail.clone(),
            ));
        }

        let outcome =
            tokio::time::timeout(self.startup_timeout, handshake(&listener, &mut child)).await;
        let timed_out = outcome.is_err();
        let failure = match outcome {
            Ok(Ok((connection, control, bun_version))) => {
                return Ok(Started {
                    child,
                    pid,
                    connection,
                    control,
                    bun_version,
                    startup: spawned_at.elapsed(),
                })
            }
            Ok(Err(reason)) => reason,
            Err(_) => format!(
                "no READY within the start-up timeout of {:?}",
                self.startup_timeout
            ),
        };
        signal_group(pid, Signal::SIGKILL);
        let _ = child.wait().await;
        // Let the forwarders read what the child wrote before it died.
        for forwarder in forwarders {
            let _ = tokio::time::timeout(Duration::from_millis(500), forwarder).await;
        }
        let stderr = tail.joined();
        tracing::error!(app = %label, pid, reason = %failure, stderr = %stderr, "child failed to start");
        Err(if timed_out {
            StartError::Timeout {
                app: label,
                after: self.startup_timeout,
            }
        } else {
            StartError::Failed {
                app: label,
                detail: failure,
            }
        })
    }
}

/// The FATAL message a child sent before it exited, if any, read until the end of
/// its connection (bounded, should the reader be slow to get there).
async fn late_fatal(control: &mut mpsc::UnboundedReceiver<ControlEvent>) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match tokio::time::timeout_at(deadline, control.recv()).await {
            Ok(Some(ControlEvent::Fatal(failure))) => return Some(failure.message),
            Ok(Some(ControlEvent::Closed(_)) | None) | Err(_) => return None,
            Ok(Some(_)) => {}
        }
    }
}

/// Accepts the child's connection and reads HELLO and READY; fails on FATAL, on a
/// protocol error, or when the child exits first.
async fn handshake(
    listener: &UnixListener,
    child: &mut Child,
) -> Result<(Connection, mpsc::UnboundedReceiver<ControlEvent>, String), String> {
    let socket = tokio::select! {
        accepted = listener.accept() => accepted.map_err(|e| format!("accept failed: {e}"))?.0,
        status = child.wait() => return Err(exit_text(status)),
    };
    let (control_tx, mut control) = mpsc::unbounded_channel();
    let connection = Connection::start(socket, control_tx);
    let mut bun_version = String::new();
    loop {
        let event = tokio::select! {
            biased;
            event = control.recv() => event,
            status = child.wait() => {
                // The child is gone, so its end of the socket is closed: whatever it
                // wrote (a FATAL naming the error, usually) is read before the end.
                return Err(late_fatal(&mut control).await.unwrap_or_else(|| exit_text(status)));
            }
        };
        match event {
            Some(ControlEvent::Hello { bun, .. }) => bun_version = bun,
            Some(ControlEvent::Ready { .. }) => return Ok((connection, control, bun_version)),
            Some(ControlEvent::Fatal(failure)) => return Err(failure.message),
            Some(ControlEvent::Closed(Some(error))) => {
                return Err(format!("protocol error: {error}"))
            }
            Some(ControlEvent::Closed(None)) | None => {
                let status = child.wait().await;
                return Err(exit_text(status));
            }
            Some(_) => {}
        }
    }
}

fn exit_text(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(status) => format!("child exited before READY ({status})"),
        Err(error) => format!("child could not be waited for: {error}"),
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

//! Starting `bun` children in their own process group, tied to the supervisor's life,
//! and signalling those groups. One of two modules with `unsafe` code (with `heap`).

use std::path::Path;
use std::process::Stdio;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// What to run for one child.
pub struct SpawnSpec<'a> {
    /// The `bun` executable.
    pub bun: &'a Path,
    /// Arguments after `bun`.
    pub args: Vec<String>,
    /// Working directory: the app dir.
    pub cwd: &'a Path,
    /// The complete environment.
    pub env: Vec<(String, String)>,
}

/// Spawns the child with piped stdout/stderr, no stdin, a fresh process group, and
/// SIGKILL delivered to it if the supervisor dies.
pub fn spawn_child(spec: SpawnSpec<'_>) -> std::io::Result<Child> {
    let mut command = Command::new(spec.bun);
    command
        .args(&spec.args)
        .current_dir(spec.cwd)
        .env_clear()
        .envs(spec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let supervisor = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (prctl, getppid, _exit).
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            // The supervisor may have died between fork and prctl: then nobody
            // would deliver the signal, so leave at once.
            if nix::unistd::getppid().as_raw() as u32 != supervisor {
                nix::libc::_exit(1);
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Sends `signal` to the whole process group led by `pid`; a group that is already
/// gone is not an error.
pub fn signal_group(pid: u32, signal: Signal) {
    if let Ok(raw) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(raw), signal);
    }
}

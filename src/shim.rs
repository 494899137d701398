//! The JavaScript shim every child runs, embedded at build time and written to the
//! runtime directory at start.
//!
//! Children first start from the shim's source. A second after start the supervisor
//! has `bun build --bytecode` compile it into one file with JavaScriptCore bytecode
//! beside it, and once that succeeds children start from the compiled copy: parsing
//! and compiling the shim was about a third of a child's start-up CPU. The wait keeps
//! the build (which uses every CPU for a few tens of milliseconds) off the path of the
//! first requests after start. If the build fails (a `bun` without bytecode support,
//! say), children keep starting from source.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::sync::{lock_read, lock_write};

include!(concat!(env!("OUT_DIR"), "/shim_files.rs"));

/// Longest wait for the bytecode build; it takes tens of milliseconds.
const COMPILE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long after start the build begins.
const COMPILE_DELAY: Duration = Duration::from_secs(1);

/// Writes the shim into `runtime_dir/shim` and returns the path of its entry file.
pub fn install(runtime_dir: &Path) -> std::io::Result<PathBuf> {
    let dir = runtime_dir.join("shim");
    std::fs::create_dir_all(&dir)?;
    for (name, contents) in SHIM_FILES {
        std::fs::write(dir.join(name), contents)?;
    }
    let entry = dir.join("main.js");
    if !entry.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the embedded shim has no main.js",
        ));
    }
    Ok(entry)
}

/// The shim file children are started with: the source at first, the compiled copy
/// once it is ready. Shared by every launch.
#[derive(Debug, Clone)]
pub struct ShimEntry(Arc<RwLock<PathBuf>>);

impl ShimEntry {
    /// Children start from `source` until a compiled copy is ready.
    pub fn new(source: PathBuf) -> ShimEntry {
        ShimEntry(Arc::new(RwLock::new(source)))
    }

    /// The file the next child starts with.
    pub fn current(&self) -> PathBuf {
        lock_read(&self.0).clone()
    }

    fn switch_to(&self, compiled: PathBuf) {
        *lock_write(&self.0) = compiled;
    }
}

/// A second after it is called, compiles the installed shim (`source`, its `main.js`) to
/// bytecode under `runtime_dir/shim-bytecode` and points `entry` at the result. Logs
/// the outcome; on failure children keep starting from source.
pub async fn compile(bun: PathBuf, source: PathBuf, runtime_dir: PathBuf, entry: ShimEntry) {
    tokio::time::sleep(COMPILE_DELAY).await;
    let out_dir = runtime_dir.join("shim-bytecode");
    let began = Instant::now();
    match build(&bun, &source, &out_dir).await {
        Ok(compiled) => {
            tracing::info!(shim = %compiled.display(), took_ms = began.elapsed().as_millis() as u64,
                "children start from the shim compiled to bytecode");
            entry.switch_to(compiled);
        }
        Err(why) => tracing::warn!(bun = %bun.display(), %why,
            "could not compile the shim to bytecode; children start from its source, a few milliseconds slower"),
    }
}

/// Runs `bun build --bytecode`; the compiled entry file, or why there is none.
async fn build(bun: &Path, source: &Path, out_dir: &Path) -> Result<PathBuf, String> {
    let _ = std::fs::remove_dir_all(out_dir);
    let run = tokio::process::Command::new(bun)
        .arg("build")
        .arg(source)
        .args(["--target=bun", "--bytecode", "--outdir"])
        .arg(out_dir)
        .env_clear()
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(COMPILE_TIMEOUT, run)
        .await
        .map_err(|_| format!("bun build took longer than {} s", COMPILE_TIMEOUT.as_secs()))?
        .map_err(|error| format!("cannot run bun build: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "bun build exited with {}: {}",
            output.status,
            crate::bun::last_lines(&output.stderr, 5)
        ));
    }
    let compiled = out_dir.join("main.js");
    let bytecode = out_dir.join("main.js.jsc");
    if !compiled.is_file() || !bytecode.is_file() {
        return Err(format!(
            "bun build wrote no {} with its .jsc",
            compiled.display()
        ));
    }
    Ok(compiled)
}

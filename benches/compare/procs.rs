//! Processes: finding `bun`, starting the supervisor and plain Bun servers, killing
//! them whatever happens, and reading CPU time and memory from `/proc`.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// `/proc` reports CPU times in USER_HZ, 100 on every Linux ABI this runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// Lines of a server's output kept for error messages.
const LOG_LINES: usize = 200;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Process groups this run started and has not ended yet, for the Ctrl-C path.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Temporary dirs this run made and has not removed yet, for the Ctrl-C path.
static TEMP_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Kills every process this run started (and their descendants) and removes its
/// temporary dirs. Used on Ctrl-C and SIGTERM, where destructors do not run.
pub fn kill_everything() {
    let pids: Vec<u32> = lock(&LIVE).drain(..).collect();
    for pid in pids {
        let family = descendants(pid);
        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        kill_all(&family);
    }
    let dirs: Vec<PathBuf> = lock(&TEMP_DIRS).drain(..).collect();
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The `bun` the tests use: `BUNTIME_BUN`, else the pinned one in
/// `shim/node_modules`, installed with `npm ci` when it is missing.
pub fn find_bun() -> Result<PathBuf, String> {
    if let Some(configured) = std::env::var_os("BUNTIME_BUN") {
        return Ok(PathBuf::from(configured));
    }
    let shim = repo().join("shim");
    let local = shim.join("node_modules/.bin/bun");
    if local.exists() {
        return Ok(local);
    }
    let lock_file = std::fs::File::create(shim.join(".install.lock"))
        .map_err(|e| format!("create shim/.install.lock: {e}"))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("lock shim/.install.lock: {e}"))?;
    if !local.exists() {
        eprintln!("Installing the pinned Bun from npm into shim/node_modules (first run only)…");
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&shim)
            .status()
            .map_err(|e| format!("run npm (Node.js and npm are needed to install Bun): {e}"))?;
        if !status.success() {
            return Err("npm ci in shim/ failed".into());
        }
    }
    if local.exists() {
        Ok(local)
    } else {
        Err(format!("bun missing at {}", local.display()))
    }
}

/// `bun --version`, for the report.
pub fn bun_version(bun: &Path) -> String {
    Command::new(bun)
        .arg("--version")
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The first executable called `name` on PATH.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|e| format!("find a free port: {e}"))
}

/// A temporary dir, removed on drop and on Ctrl-C.
pub struct TempDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> Result<TempDir, String> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(|e| format!("make a temporary dir: {e}"))?;
        let path = dir.path().to_path_buf();
        lock(&TEMP_DIRS).push(path.clone());
        Ok(TempDir {
            dir: Some(dir),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        lock(&TEMP_DIRS).retain(|p| p != &self.path);
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("create {}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("read {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("read {}: {e}", from.display()))?;
        let target = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(|e| format!("stat {}: {e}", entry.path().display()))?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .map_err(|e| format!("copy {}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// A process this run started: its own process group, killed with its descendants
/// when dropped (also while unwinding from a panic), and by its parent's death.
pub struct Spawned {
    child: Child,
    pub pid: u32,
    label: String,
    log: Arc<Mutex<VecDeque<String>>>,
    /// SIGTERM first, waiting this long, before SIGKILL.
    grace: Duration,
    /// The first stdout line that reads `listening <port>`.
    port_line: mpsc::Receiver<u16>,
    readers: Vec<JoinHandle<()>>,
}

impl Spawned {
    /// Starts `command` in its own process group with piped output.
    ///
    /// Call this from the main thread only: the child gets SIGKILL when the thread
    /// that started it ends, so it also dies if this run is killed outright.
    pub fn start(mut command: Command, label: &str, grace: Duration) -> Result<Spawned, String> {
        command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe work (one prctl call) between fork and exec.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        let mut child = command.spawn().map_err(|e| format!("start {label}: {e}"))?;
        let pid = child.id();
        lock(&LIVE).push(pid);
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (port_tx, port_line) = mpsc::channel();
        let echo = std::env::var_os("BENCH_LOGS").is_some();
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(read_lines(stdout, label, log.clone(), Some(port_tx), echo));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(read_lines(stderr, label, log.clone(), None, echo));
        }
        Ok(Spawned {
            child,
            pid,
            label: label.to_owned(),
            log,
            grace,
            port_line,
            readers,
        })
    }

    /// Waits for the `listening <port>` line.
    pub fn wait_port(&mut self, within: Duration) -> Result<u16, String> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(port) = self.port_line.recv_timeout(Duration::from_millis(50)) {
                return Ok(port);
            }
            if !self.running() {
                return Err(format!(
                    "{} exited before listening:\n{}",
                    self.label,
                    self.recent_log()
                ));
            }
        }
        Err(format!(
            "{} did not print its port within {within:?}:\n{}",
            self.label,
            self.recent_log()
        ))
    }

    /// Whether the process has not exited.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines it wrote.
    pub fn recent_log(&self) -> String {
        let lines = lock(&self.log);
        let skip = lines.len().saturating_sub(30);
        lines
            .iter()
            .skip(skip)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits up to `within` for it to exit and its output to end; returns the output
    /// (the last lines of it, stdout and stderr interleaved).
    pub fn wait_output(&mut self, within: Duration) -> String {
        let deadline = Instant::now() + within;
        while self.running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !self.running() {
            while Instant::now() < deadline && self.readers.iter().any(|r| !r.is_finished()) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let lines = lock(&self.log);
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Stops it (and its descendants) now.
    pub fn stop(&mut self) {
        if self.running() {
            let family = descendants(self.pid);
            if !self.grace.is_zero() {
                let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
                let deadline = Instant::now() + self.grace;
                while Instant::now() < deadline && self.running() {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
            kill_all(&family);
        }
        let _ = self.child.wait();
        lock(&LIVE).retain(|pid| *pid != self.pid);
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_lines(
    stream: impl Read + Send + 'static,
    label: &str,
    log: Arc<Mutex<VecDeque<String>>>,
    port: Option<mpsc::Sender<u16>>,
    echo: bool,
) -> JoinHandle<()> {
    let label = label.to_owned();
    std::thread::spawn(move || {
        let mut port = port;
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("listening ") {
                if let (Some(tx), Ok(number)) = (port.as_ref(), rest.trim().parse::<u16>()) {
                    let _ = tx.send(number);
                    port = None;
                }
            }
            if echo {
                let _ = writeln!(std::io::stderr(), "[{label}] {line}");
            }
            let mut lines = lock(&log);
            if lines.len() == LOG_LINES {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    })
}

/// SIGKILL to each (pid, start time) that still names the same process.
fn kill_all(family: &[(u32, u64)]) {
    for &(pid, start) in family {
        if stat(pid).map(|s| s.start) == Some(start) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

/// The figures of `/proc/<pid>/stat` this harness uses.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub ppid: u32,
    /// utime + stime: its own CPU time, in ticks (each figure rounded down).
    pub own_ticks: u64,
    /// cutime + cstime: CPU time of the children it reaped, in ticks.
    pub reaped_ticks: u64,
    /// Start time since boot, in ticks: with the pid, names a process uniquely.
    pub start: u64,
    pub zombie: bool,
}

pub fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: split after the last ')'.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let number = |index: usize| fields.get(index).and_then(|f| f.parse::<u64>().ok());
    Some(Stat {
        zombie: fields.first() == Some(&"Z"),
        ppid: number(1)? as u32,
        own_ticks: number(11)? + number(12)?,
        reaped_ticks: number(13)? + number(14)?,
        start: number(19)?,
    })
}

/// Every live process below `root`, with its start time.
pub fn descendants(root: u32) -> Vec<(u32, u64)> {
    let mut children: HashMap<u32, Vec<(u32, u64)>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Some(s) = stat(pid) {
                children.entry(s.ppid).or_default().push((pid, s.start));
            }
        }
    }
    let mut found: Vec<(u32, u64)> = Vec::new();
    let mut queue = vec![root];
    while let Some(parent) = queue.pop() {
        if let Some(kids) = children.get(&parent) {
            for &(pid, start) in kids {
                // Bounded by /proc itself; the check guards against a pid loop.
                if pid != root && !found.iter().any(|(p, _)| *p == pid) {
                    found.push((pid, start));
                    queue.push(pid);
                }
            }
        }
    }
    found
}

/// `root` and every process below it.
pub fn tree(root: u32) -> Vec<u32> {
    let mut pids = vec![root];
    pids.extend(descendants(root).into_iter().map(|(pid, _)| pid));
    pids
}

/// Nanoseconds on CPU of the live threads of `pid` (`/proc/<pid>/task/*/schedstat`).
fn threads_cpu_ns(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0u64;
    let mut any = false;
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        if let Some(ns) = text
            .split_whitespace()
            .next()
            .and_then(|f| f.parse::<u64>().ok())
        {
            total += ns;
            any = true;
        }
    }
    any.then_some(total)
}

/// CPU seconds used so far by one process and the children it reaped.
///
/// Its own time is the larger of its threads' schedstat run time (nanoseconds, but
/// missing threads that ended) and utime + stime (all threads, but in 10 ms ticks
/// rounded down, which would lose several ms per short-lived process).
pub fn cpu_seconds(pid: u32) -> f64 {
    let Some(s) = stat(pid).filter(|s| !s.zombie) else {
        return 0.0;
    };
    let ticks = s.own_ticks as f64 / TICKS_PER_SECOND;
    let threads = threads_cpu_ns(pid).map(|ns| ns as f64 / 1e9).unwrap_or(0.0);
    ticks.max(threads) + s.reaped_ticks as f64 / TICKS_PER_SECOND
}

/// CPU seconds used so far by `root`, its live descendants and the children they reaped.
pub fn tree_cpu_seconds(root: u32) -> f64 {
    tree(root).into_iter().map(cpu_seconds).sum()
}

/// CPU seconds of the children this process has started and reaped so far.
pub fn reaped_cpu_seconds() -> f64 {
    stat(std::process::id())
        .map(|s| s.reaped_ticks as f64 / TICKS_PER_SECOND)
        .unwrap_or(0.0)
}

fn status_kib(pid: u32, key: &str) -> u64 {
    let path = format!("/proc/{pid}/status");
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with(key))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// Resident set size in bytes.
pub fn rss(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:") * 1024
}

/// Peak resident set size in bytes.
pub fn hwm(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:") * 1024
}

/// Proportional set size in bytes: shared pages split between the processes sharing them.
pub fn pss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("Pss:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// Summed VmRSS of `root` and its descendants.
pub fn tree_rss(root: u32) -> u64 {
    tree(root).into_iter().map(rss).sum()
}

/// Samples the summed RSS of a process tree every 100 ms on its own thread and keeps
/// the highest figure.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<u64>>,
}

impl RssSampler {
    pub fn start(root: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut peak = tree_rss(root);
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                peak = peak.max(tree_rss(root));
            }
            peak
        });
        RssSampler {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops sampling; returns the peak in bytes.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|handle| handle.join().ok())
            .unwrap_or(0)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

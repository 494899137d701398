//! Test harness: the real supervisor binary, real `bun` children, real sockets.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The pinned `bun`, installed from npm into `shim/node_modules` on first use.
pub fn bun() -> PathBuf {
    static BUN: OnceLock<PathBuf> = OnceLock::new();
    BUN.get_or_init(|| {
        if let Some(configured) = std::env::var_os("BUNTIME_BUN") {
            return PathBuf::from(configured);
        }
        let local = repo().join("shim/node_modules/.bin/bun");
        let lock_path = repo().join("shim/.install.lock");
        let lock_file = std::fs::File::create(&lock_path).expect("create install lock");
        let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
            .expect("lock install");
        if !local.exists() {
            // Written past the test harness's capture so the wait is explained.
            let _ = writeln!(
                std::io::stderr(),
                "Installing the pinned Bun from npm into shim/node_modules (first run only)…"
            );
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--prefix"])
                .arg(repo().join("shim"))
                .status()
                .expect("run npm (Node.js and npm are required to install Bun)");
            assert!(status.success(), "npm ci in shim/ failed");
        }
        assert!(local.exists(), "bun missing at {}", local.display());
        local
    })
    .clone()
}

/// A temporary app dir holding copies of fixture apps.
pub struct Apps {
    pub dir: tempfile::TempDir,
    pub evidence: PathBuf,
}

impl Apps {
    /// Copies the named fixtures (e.g. `hello@1.0.0`).
    pub fn with(fixtures: &[&str]) -> Apps {
        let dir = tempfile::tempdir().expect("tempdir");
        let evidence = dir.path().join(".evidence");
        std::fs::create_dir_all(&evidence).unwrap();
        let apps = Apps { dir, evidence };
        for name in fixtures {
            apps.add(name);
        }
        apps
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Copies one fixture app in.
    pub fn add(&self, name: &str) {
        copy_dir(
            &repo().join("fixtures/apps").join(name),
            &self.path().join(name),
        );
    }

    /// Replaces the app's `worker.jsonc` in one step (write aside, then rename), as a
    /// deploy would: a running supervisor never reads it half written.
    pub fn config(&self, app: &str, body: &str) {
        let dir = self.path().join(app);
        let aside = dir.join(".worker.jsonc.next");
        std::fs::write(&aside, body).unwrap();
        std::fs::rename(&aside, dir.join("worker.jsonc")).unwrap();
    }

    /// Config whose env points the app's evidence files at this dir.
    pub fn config_with_evidence(&self, app: &str, extra: &str) {
        let body = format!(
            "{{ env: {{ EVIDENCE_DIR: {:?} }}, {extra} }}",
            self.evidence.display().to_string()
        );
        self.config(app, &body);
    }

    /// Lines of an evidence file, empty if it does not exist.
    pub fn evidence_lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.evidence.join(file))
            .map(|text| text.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A running supervisor.
pub struct Supervisor {
    pub child: Child,
    pub base: String,
    pub logs: Arc<Mutex<Vec<String>>>,
    pub client: reqwest::Client,
}

impl Supervisor {
    /// Starts the binary on `apps` with extra flags, waiting until it listens.
    pub fn start(apps: &Apps, extra: &[&str]) -> Supervisor {
        Self::start_with_env(apps, extra, &[])
    }

    pub fn start_with_env(apps: &Apps, extra: &[&str], env: &[(&str, &str)]) -> Supervisor {
        let mut command = Command::new(env!("CARGO_BIN_EXE_buntime-supervisor"));
        command.arg("run");
        if !extra.contains(&"--log-format") {
            // Tests read the human format unless they ask for JSON.
            command.args(["--log-format", "text"]);
        }
        if !extra.contains(&"--apps") && !extra.contains(&"--config") {
            command.arg("--apps").arg(apps.path());
        }
        if !extra.contains(&"--bun") {
            command.arg("--bun").arg(bun());
        }
        command
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(extra)
            .env("RUNTIME_LOG_LEVEL", "info")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start supervisor");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                let mut sent = false;
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if !sent {
                        if let Some(at) = line.find("listening on http://") {
                            let rest = &line[at + "listening on ".len()..];
                            let address = rest.split_whitespace().next().unwrap_or("").to_owned();
                            let _ = tx.send(address);
                            sent = true;
                        }
                    }
                    if std::env::var_os("SUPERVISOR_LOGS").is_some() {
                        eprintln!("[supervisor] {line}");
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let base = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                panic!("supervisor did not start: {:#?}", logs.lock().unwrap());
            }
        };
        Supervisor {
            child,
            base,
            logs,
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// GET, returning status and body text.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// The pid of the child that answers `/{app}/pid`.
    pub async fn pid(&self, app: &str) -> u32 {
        let (status, body) = self.get(&format!("/{app}/pid")).await;
        assert_eq!(status, 200, "pid of {app}: {body}");
        body.trim()
            .parse()
            .unwrap_or_else(|_| panic!("not a pid: {body}"))
    }

    /// Whether a log line contains all of `parts`.
    pub fn logged(&self, parts: &[&str]) -> bool {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .any(|line| parts.iter().all(|part| line.contains(part)))
    }

    /// Waits until a log line contains all of `parts`.
    pub async fn wait_for_log(&self, parts: &[&str], within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.logged(parts) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    pub fn pid_of_supervisor(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to the supervisor.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Waits for the supervisor to exit, up to `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = self.child.wait();
        }
        // A killed supervisor cannot remove its runtime dir; do it for it, or every
        // run of the suite leaves hundreds behind in the temp dir.
        let _ = std::fs::remove_dir_all(default_runtime_dir(self.child.id()));
    }
}

/// Where the supervisor with this pid keeps its shim and sockets when not told.
fn default_runtime_dir(pid: u32) -> PathBuf {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    base.join(format!("buntime-supervisor-{pid}"))
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

/// Waits until `check` holds, up to `within`.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    check()
}

/// Pids of the direct children of `parent`.
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                let fields: Vec<&str> = stat
                    .rsplit(')')
                    .next()
                    .unwrap_or("")
                    .split_whitespace()
                    .collect();
                if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent) {
                    found.push(pid);
                }
            }
        }
    }
    found
}

/// Zombie children of `parent`.
pub fn zombies_of(parent: u32) -> Vec<u32> {
    children_of(parent)
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|stat| {
                    stat.rsplit(')')
                        .next()
                        .and_then(|r| r.split_whitespace().next())
                        == Some("Z")
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Resident set size of a process in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// A header the echo fixture's `/inspect` saw, from its JSON answer.
pub fn seen_header(seen: &serde_json::Value, name: &str) -> Option<String> {
    seen["headers"].as_array()?.iter().find_map(|pair| {
        (pair[0].as_str()? == name).then(|| pair[1].as_str().map(str::to_owned))?
    })
}

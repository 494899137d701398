//! The deployment files in `deploy/`: the systemd unit, the Dockerfile and the
//! Kubernetes manifests, checked against the real binary where they depend on it.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use buntime_supervisor::config::{parse_duration_text, RuntimeConfig};
use nix::sys::signal::Signal;
use serde_json::Value;

use common::{bun, repo, Apps, Supervisor};

const BINARY: &str = env!("CARGO_BIN_EXE_buntime-supervisor");
const UNIT: &str = "deploy/systemd/buntime-supervisor.service";
const ENV_FILE: &str = "deploy/systemd/buntime-supervisor.env";
const SYSUSERS: &str = "deploy/systemd/buntime-supervisor.sysusers";
const DOCKERFILE: &str = "deploy/docker/Dockerfile";
const BASE: &str = "deploy/kubernetes/base";
const SIDECAR: &str = "deploy/kubernetes/bun-sidecar";

// ---------------------------------------------------------------------------
// Reading the files
// ---------------------------------------------------------------------------

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_norway::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"))
}

fn items<'a>(value: &'a Value, what: &str) -> &'a [Value] {
    value
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("{what} is not a list: {value}"))
}

fn named<'a>(list: &'a Value, name: &str, what: &str) -> &'a Value {
    items(list, what)
        .iter()
        .find(|item| item["name"] == name)
        .unwrap_or_else(|| panic!("no {what} named {name:?} in {list}"))
}

fn duration(text: &str) -> Duration {
    parse_duration_text(text).unwrap_or_else(|e| panic!("{e}"))
}

/// `[Section]` / `Key=value` pairs of a systemd unit, in order.
fn unit_entries(unit: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut entries = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((key, value)) = line.split_once('=') {
            entries.push((
                section.clone(),
                key.trim().to_owned(),
                value.trim().to_owned(),
            ));
        }
    }
    entries
}

/// Every value of `key` in the unit's `[Service]` section.
fn service_values(key: &str) -> Vec<String> {
    unit_entries(&read(UNIT))
        .into_iter()
        .filter(|(section, name, _)| section == "Service" && name == key)
        .map(|(_, _, value)| value)
        .collect()
}

fn service_value(key: &str) -> String {
    let values = service_values(key);
    assert_eq!(values.len(), 1, "{UNIT}: {key}= set {} times", values.len());
    values[0].clone()
}

/// `Environment=NAME=value` lines of the unit.
fn unit_environment() -> BTreeMap<String, String> {
    service_values("Environment")
        .iter()
        .map(|assignment| {
            let (name, value) = assignment
                .split_once('=')
                .unwrap_or_else(|| panic!("{UNIT}: Environment={assignment}"));
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

/// `NAME=value` lines of the env file example, set (`NAME=…`) or shown commented
/// out (`#NAME=…`).
fn env_file_assignments() -> Vec<(String, String, bool)> {
    read(ENV_FILE)
        .lines()
        .filter_map(|line| {
            let (set, body) = match line.strip_prefix('#') {
                Some(rest) => (false, rest),
                None => (true, line),
            };
            let (name, value) = body.split_once('=')?;
            let is_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            is_name.then(|| (name.to_owned(), value.to_owned(), set))
        })
        .collect()
}

/// One Dockerfile stage: its name, what it is built `FROM`, its instructions.
struct Stage {
    name: Option<String>,
    from: String,
    instructions: Vec<(String, String)>,
}

/// The Dockerfile's stages, continuation lines joined.
fn dockerfile_stages() -> (Vec<(String, String)>, Vec<Stage>) {
    let source = read(DOCKERFILE);
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in source.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut global = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for line in logical {
        let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let keyword = keyword.to_ascii_uppercase();
        let rest = rest.trim().to_owned();
        if keyword == "FROM" {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, as_word, name] if as_word.eq_ignore_ascii_case("as") => Some(name.to_string()),
                _ => None,
            };
            stages.push(Stage {
                name,
                from: words[0].to_owned(),
                instructions: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push((keyword, rest));
        } else {
            global.push((keyword, rest));
        }
    }
    (global, stages)
}

/// The last value of `keyword` in effect in the Dockerfile's final stage, following
/// the stages it is built on.
fn final_stage_instruction(keyword: &str) -> Option<String> {
    let (_, stages) = dockerfile_stages();
    let mut stage = stages.last().expect("Dockerfile has no FROM");
    loop {
        if let Some((_, rest)) = stage.instructions.iter().rev().find(|(k, _)| k == keyword) {
            return Some(rest.clone());
        }
        stage = stages
            .iter()
            .find(|s| s.name.as_deref() == Some(stage.from.as_str()))?;
    }
}

/// `ENV` settings in effect in the final stage (later stages win).
fn final_stage_env() -> BTreeMap<String, String> {
    let (_, stages) = dockerfile_stages();
    let mut chain = vec![stages.last().expect("Dockerfile has no FROM")];
    while let Some(base) = stages
        .iter()
        .find(|s| s.name.as_deref() == Some(chain.last().expect("chain").from.as_str()))
    {
        chain.push(base);
    }
    let mut env = BTreeMap::new();
    for stage in chain.iter().rev() {
        for (keyword, rest) in &stage.instructions {
            if keyword == "ENV" {
                for assignment in rest.split_whitespace() {
                    let (name, value) = assignment
                        .split_once('=')
                        .unwrap_or_else(|| panic!("ENV {rest}: use NAME=value"));
                    env.insert(name.to_owned(), value.to_owned());
                }
            }
        }
    }
    env
}

/// The exec-form JSON array after `prefix` in an instruction.
fn exec_form(rest: &str, prefix: &str) -> Vec<String> {
    let at = rest
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} in {rest:?}"));
    serde_json::from_str(rest[at + prefix.len()..].trim())
        .unwrap_or_else(|e| panic!("not an exec-form array ({e}): {rest}"))
}

fn pinned_bun_version() -> String {
    let package: Value = serde_json::from_str(&read("shim/package.json")).expect("package.json");
    let version = text(&package["devDependencies"]["bun"], "devDependencies.bun").to_owned();
    assert_eq!(
        version,
        buntime_supervisor::bun::PINNED_BUN_VERSION,
        "shim/package.json and PINNED_BUN_VERSION disagree"
    );
    version
}

// ---------------------------------------------------------------------------
// Kubernetes: the Deployment as applied (base, or base + sidecar patch)
// ---------------------------------------------------------------------------

/// The merge key of a list in a pod spec, for strategic merge patches.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers" | "initContainers" | "env" | "volumes" | "ports" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        _ => None,
    }
}

/// Applies a strategic merge patch, as kustomize does, for the fields used here.
fn strategic_merge(target: &mut Value, patch: &Value) {
    let (Some(target), Some(patch)) = (target.as_object_mut(), patch.as_object()) else {
        return;
    };
    for (field, change) in patch {
        match (target.get_mut(field), merge_key(field), change) {
            (Some(Value::Array(existing)), Some(key), Value::Array(additions)) => {
                let mut merged = Vec::new();
                for addition in additions {
                    match existing.iter().position(|item| item[key] == addition[key]) {
                        Some(at) => {
                            let mut item = existing.remove(at);
                            strategic_merge(&mut item, addition);
                            merged.push(item);
                        }
                        None => merged.push(addition.clone()),
                    }
                }
                merged.append(existing);
                *existing = merged;
            }
            (Some(existing @ Value::Object(_)), _, Value::Object(_)) => {
                strategic_merge(existing, change)
            }
            _ => {
                target.insert(field.clone(), change.clone());
            }
        }
    }
}

/// The base Deployment, with the overlay's patches applied when `overlay` is given.
fn deployment(overlay: Option<&str>) -> Value {
    let mut deployment = yaml(&format!("{BASE}/deployment.yaml"));
    if let Some(dir) = overlay {
        let kustomization = yaml(&format!("{dir}/kustomization.yaml"));
        let base = text(&kustomization["resources"][0], "resources");
        assert_eq!(
            repo()
                .join(dir)
                .join(base)
                .canonicalize()
                .expect("overlay base"),
            repo().join(BASE).canonicalize().expect("base"),
            "{dir} is not an overlay of {BASE}"
        );
        for patch in items(&kustomization["patches"], "patches") {
            let path = format!("{dir}/{}", text(&patch["path"], "patch path"));
            strategic_merge(&mut deployment, &yaml(&path));
        }
    }
    deployment
}

fn pod_spec(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]
}

fn supervisor_container(deployment: &Value) -> &Value {
    named(
        &pod_spec(deployment)["containers"],
        "supervisor",
        "container",
    )
}

fn container_env(container: &Value, name: &str) -> Option<String> {
    items(&container["env"], "env")
        .iter()
        .find(|item| item["name"] == name)
        .and_then(|item| item["value"].as_str().map(str::to_owned))
}

/// Resolves a probe's or Service's port (a number or a container port name).
fn resolve_port(container: &Value, port: &Value) -> u64 {
    if let Some(number) = port.as_u64() {
        return number;
    }
    let name = text(port, "port");
    named(&container["ports"], name, "container port")["containerPort"]
        .as_u64()
        .expect("containerPort")
}

/// The duration a `preStop` hook holds the pod before SIGTERM.
fn pre_stop_delay(container: &Value) -> Duration {
    let hook = &container["lifecycle"]["preStop"];
    if let Some(seconds) = hook["sleep"]["seconds"].as_u64() {
        return Duration::from_secs(seconds);
    }
    let command: Vec<&str> = items(&hook["exec"]["command"], "preStop command")
        .iter()
        .map(|word| text(word, "preStop command"))
        .collect();
    match command.as_slice() {
        ["sleep", seconds] => duration(seconds),
        other => panic!("preStop is not a sleep: {other:?}"),
    }
}

/// A host dir standing in for each volume a container mounts.
struct Volumes {
    mounts: Vec<(String, PathBuf)>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Volumes {
    fn host_path(&self, path: &str) -> Option<PathBuf> {
        host_path(&self.mounts, path)
    }
}

/// Maps a container path to the host, through the longest mount holding it.
fn host_path(mounts: &[(String, PathBuf)], path: &str) -> Option<PathBuf> {
    mounts
        .iter()
        .filter_map(|(mount, host)| {
            let rest = path.strip_prefix(mount.as_str())?;
            (rest.is_empty() || rest.starts_with('/'))
                .then(|| (mount.len(), host.join(rest.trim_start_matches('/'))))
        })
        .max_by_key(|(length, _)| *length)
        .map(|(_, host)| host)
}

/// Maps every quoted absolute path in a config file to the host.
fn map_quoted_paths(body: &str, mounts: &[(String, PathBuf)]) -> String {
    let mut mapped = String::new();
    let mut rest = body;
    while let Some(at) = rest.find("\"/") {
        mapped.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let end = rest.find('"').unwrap_or(rest.len());
        match host_path(mounts, &rest[..end]) {
            Some(host) => mapped.push_str(&host.display().to_string()),
            None => mapped.push_str(&rest[..end]),
        }
        rest = &rest[end..];
    }
    mapped.push_str(rest);
    mapped
}

/// Prepares the container's volumes: the apps claim is `apps`, ConfigMaps are
/// written out from the base, emptyDirs are fresh dirs (shared by name in `shared`).
fn mount_volumes(
    deployment: &Value,
    container: &Value,
    apps: &Apps,
    shared: &mut BTreeMap<String, PathBuf>,
) -> Volumes {
    let mut dirs = Vec::new();
    let mut mounts = Vec::new();
    let mut config_maps = Vec::new();
    for mount in items(&container["volumeMounts"], "volumeMounts") {
        let volume_name = text(&mount["name"], "volumeMount name");
        let volume = named(&pod_spec(deployment)["volumes"], volume_name, "volume");
        let mount_path = text(&mount["mountPath"], "mountPath").to_owned();
        let host = if volume.get("persistentVolumeClaim").is_some() {
            apps.path().to_path_buf()
        } else if let Some(existing) = shared.get(volume_name) {
            existing.clone()
        } else {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().to_path_buf();
            dirs.push(dir);
            if let Some(config_map) = volume.get("configMap") {
                config_maps.push((
                    text(&config_map["name"], "configMap name").to_owned(),
                    path.clone(),
                ));
            } else {
                assert!(
                    volume.get("emptyDir").is_some(),
                    "unexpected volume {volume}"
                );
            }
            shared.insert(volume_name.to_owned(), path.clone());
            path
        };
        mounts.push((mount_path, host));
    }
    // ConfigMap files name container paths; they see the same mounts.
    let configmap = yaml(&format!("{BASE}/configmap.yaml"));
    for (name, dir) in config_maps {
        assert_eq!(
            configmap["metadata"]["name"],
            name.as_str(),
            "ConfigMap {name} missing"
        );
        for (file, body) in configmap["data"].as_object().expect("ConfigMap data") {
            let body = map_quoted_paths(text(body, "ConfigMap data"), &mounts);
            std::fs::write(dir.join(file), body).expect("write ConfigMap file");
        }
    }
    Volumes {
        mounts,
        _dirs: dirs,
    }
}

/// The supervisor started as the pod would start it: the container's environment
/// with its mounts mapped to host dirs, only the port changed (to a free one, on
/// loopback) and the `bun` of the image supplied when the pod does not set one.
struct Pod {
    supervisor: Supervisor,
    env: BTreeMap<String, String>,
    _volumes: Vec<Volumes>,
    _apps: Apps,
}

fn start_pod(deployment: &Value) -> Pod {
    let apps = Apps::with(&["hello@1.0.0", "slow@1.0.0"]);
    let mut shared = BTreeMap::new();
    let mut volumes = Vec::new();
    // Init containers first, in order: the sidecar's copies Bun into a shared volume.
    if let Some(init_containers) = pod_spec(deployment)["initContainers"].as_array() {
        for init in init_containers {
            let mounted = mount_volumes(deployment, init, &apps, &mut shared);
            let image = text(&init["image"], "image");
            let command: Vec<String> = items(&init["command"], "command")
                .iter()
                .map(|word| {
                    let word = text(word, "command");
                    if image.starts_with("oven/bun:") && word == "/usr/local/bin/bun" {
                        return bun().display().to_string();
                    }
                    mounted
                        .host_path(word)
                        .map(|path| path.display().to_string())
                        .unwrap_or_else(|| word.to_owned())
                })
                .collect();
            let status = Command::new(&command[0])
                .args(&command[1..])
                .status()
                .unwrap_or_else(|e| panic!("init container {command:?}: {e}"));
            assert!(status.success(), "init container {command:?} failed");
            volumes.push(mounted);
        }
    }
    let container = supervisor_container(deployment);
    let mounted = mount_volumes(deployment, container, &apps, &mut shared);
    let mut env = BTreeMap::new();
    for item in items(&container["env"], "env") {
        let name = text(&item["name"], "env name");
        let Some(value) = item["value"].as_str() else {
            // valueFrom: only optional secrets, absent here.
            assert_eq!(
                item["valueFrom"]["secretKeyRef"]["optional"], true,
                "{item}"
            );
            continue;
        };
        let value = mounted
            .host_path(value)
            .map(|path| path.display().to_string())
            .unwrap_or_else(|| value.to_owned());
        env.insert(name.to_owned(), value);
    }
    volumes.push(mounted);
    env.entry("BUNTIME_BUN".to_owned())
        .or_insert_with(|| bun().display().to_string());
    env.insert("PORT".to_owned(), "0".to_owned());
    env.insert("HOST".to_owned(), "127.0.0.1".to_owned());
    let mut command = Command::new(BINARY);
    command.arg("run").env_clear().envs(&env);
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    Pod {
        supervisor: launch(command),
        env,
        _volumes: volumes,
        _apps: apps,
    }
}

// ---------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------

/// Starts the binary from a prepared command and waits until it listens.
fn launch(mut command: Command) -> Supervisor {
    command
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("start supervisor");
    let stderr = child.stderr.take().expect("stderr");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let logs = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("listening on http://") {
                    let rest = &line[at + "listening on ".len()..];
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                }
                if std::env::var_os("SUPERVISOR_LOGS").is_some() {
                    eprintln!("[supervisor] {line}");
                }
                logs.lock().expect("logs").push(line);
            }
        });
    }
    let base = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(base) => base,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "supervisor did not start: {:#?}",
                logs.lock().expect("logs")
            );
        }
    };
    Supervisor {
        child,
        base,
        logs,
        client: reqwest::Client::new(),
    }
}

/// The binary on the hello fixture, with extra environment.
fn start_plain(apps: &Apps, env: &[(&str, &str)]) -> Supervisor {
    let mut command = Command::new(BINARY);
    command
        .arg("run")
        .arg("--apps")
        .arg(apps.path())
        .args(["--host", "127.0.0.1", "--port", "0", "--bun"])
        .arg(bun())
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .envs(env.iter().copied());
    launch(command)
}

/// A datagram socket standing in for systemd's notify socket.
struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind notify socket");
        NotifySocket {
            socket,
            path,
            _dir: dir,
        }
    }

    /// Messages until one holds the line `wanted`, or panics after `within`.
    fn wait_for(&self, wanted: &str, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {wanted} within {within:?}; got {seen:?}"
            );
            self.socket.set_read_timeout(Some(left)).expect("timeout");
            match self.socket.recv(&mut buffer) {
                Ok(length) => {
                    let message = String::from_utf8_lossy(&buffer[..length]).into_owned();
                    let found = message.lines().any(|line| line == wanted);
                    seen.push(message);
                    if found {
                        return seen;
                    }
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    panic!("no {wanted} within {within:?}; got {seen:?}")
                }
                Err(error) => panic!("notify socket: {error}"),
            }
        }
    }
}

fn find_on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

/// A tool from Debian's `systemd` package, installed with apt-get when missing.
fn systemd_tool(tool: &str) -> PathBuf {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _guard = INSTALL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = find_on_path(tool) {
        return found;
    }
    eprintln!("{tool} not found: installing Debian's systemd package with apt-get");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "systemd"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map(|status| status.success())
            .unwrap_or(false)
    };
    if !install() {
        let _ = Command::new("apt-get").arg("update").status();
        install();
    }
    find_on_path(tool).unwrap_or_else(|| {
        panic!(
            "{tool} is required to check {UNIT} and could not be installed \
             (`apt-get install systemd` failed: not root, or not Debian?). \
             Install systemd's tools and run the tests again."
        )
    })
}

/// The unit as installed, but starting the binary under test.
fn unit_for_test() -> (tempfile::TempDir, PathBuf) {
    let unit = read(UNIT);
    let exec_start = "ExecStart=/usr/local/bin/buntime-supervisor run";
    assert!(
        unit.lines().any(|line| line == exec_start),
        "{UNIT} lacks {exec_start}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("buntime-supervisor.service");
    let unit = unit.replace(exec_start, &format!("ExecStart={BINARY} run"));
    std::fs::write(&path, unit).expect("write unit");
    (dir, path)
}

fn help_text() -> &'static str {
    static HELP: OnceLock<String> = OnceLock::new();
    HELP.get_or_init(|| {
        let output = Command::new(BINARY)
            .args(["run", "--help"])
            .output()
            .expect("run --help");
        assert!(output.status.success(), "run --help failed");
        String::from_utf8_lossy(&output.stdout).into_owned()
    })
}

// ---------------------------------------------------------------------------
// systemd
// ---------------------------------------------------------------------------

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let analyze = systemd_tool("systemd-analyze");
    let (_dir, unit) = unit_for_test();
    let output = Command::new(analyze)
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("run systemd-analyze verify");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // verify exits 0 on unknown keys and bad values too, printing a warning: any
    // output is a failure.
    assert!(
        output.status.success() && stdout.trim().is_empty() && stderr.trim().is_empty(),
        "systemd-analyze verify {UNIT}: {}\n{stdout}{stderr}",
        output.status
    );
}

#[test]
fn systemd_unit_exposure_score_stays_low() {
    let analyze = systemd_tool("systemd-analyze");
    let (_dir, unit) = unit_for_test();
    let output = Command::new(analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("run systemd-analyze security");
    let report = String::from_utf8_lossy(&output.stdout);
    let score: f64 = report
        .lines()
        .find_map(|line| line.split("buntime-supervisor.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|score| score.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in systemd-analyze security output:\n{report}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    assert!(
        score <= 3.5,
        "exposure {score} (at most 3.5 expected):\n{report}"
    );
}

#[test]
fn systemd_sysusers_file_creates_the_units_user_and_group() {
    let sysusers = systemd_tool("systemd-sysusers");
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(root.path().join("etc")).expect("etc");
    let output = Command::new(sysusers)
        .arg(format!("--root={}", root.path().display()))
        .arg(repo().join(SYSUSERS))
        .output()
        .expect("run systemd-sysusers");
    assert!(
        output.status.success(),
        "systemd-sysusers {SYSUSERS}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).expect("passwd");
    let group = std::fs::read_to_string(root.path().join("etc/group")).expect("group");
    let user = service_value("User");
    let user_line = passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields[0] == user)
        .unwrap_or_else(|| panic!("no user {user} in:\n{passwd}"));
    let uid: u32 = user_line[2].parse().expect("uid");
    assert!(
        uid > 0 && uid < 1000,
        "{user} should be a system user, uid {uid}"
    );
    let home = format!("/var/lib/{}", service_value("StateDirectory"));
    assert_eq!(user_line[5], home, "{user}'s home should be the state dir");
    let group_name = service_value("Group");
    assert!(
        group
            .lines()
            .any(|line| line.split(':').next() == Some(group_name.as_str())),
        "no group {group_name} in:\n{group}"
    );
}

#[test]
fn systemd_unit_makes_writable_every_dir_the_service_writes() {
    let env = unit_environment();
    let runtime = format!("%t/{}", service_value("RuntimeDirectory"));
    assert_eq!(
        env["RUNTIME_DIR"], runtime,
        "RUNTIME_DIR should be the RuntimeDirectory"
    );
    let state = format!("%S/{}", service_value("StateDirectory"));
    assert_eq!(env["HOME"], state, "HOME should be the StateDirectory");
    let writable: Vec<String> = service_values("ReadWritePaths")
        .iter()
        .flat_map(|paths| {
            paths
                .split_whitespace()
                .map(|p| p.trim_start_matches('-').to_owned())
        })
        .collect();
    for app_dir in env["RUNTIME_WORKER_DIRS"].split(':') {
        assert!(
            writable
                .iter()
                .any(|path| Path::new(app_dir).starts_with(path)),
            "app dir {app_dir} is not in ReadWritePaths={writable:?}"
        );
    }
    assert_eq!(service_value("ProtectSystem"), "strict");
    // The env file example names the same app dir default.
    for (name, value, _) in env_file_assignments() {
        if name == "RUNTIME_WORKER_DIRS" {
            assert_eq!(value, env["RUNTIME_WORKER_DIRS"], "{ENV_FILE}: {name}");
        }
    }
}

#[test]
fn systemd_stop_timeout_outlasts_the_shutdown_grace() {
    let grace = duration(&unit_environment()["RUNTIME_SHUTDOWN_GRACE"]);
    for (name, value, _) in env_file_assignments() {
        if name == "RUNTIME_SHUTDOWN_GRACE" {
            assert_eq!(duration(&value), grace, "{ENV_FILE} shows another grace");
        }
    }
    let stop_timeout = duration(&service_value("TimeoutStopSec"));
    assert!(
        stop_timeout >= grace + Duration::from_secs(5),
        "TimeoutStopSec={stop_timeout:?} leaves no margin over the grace {grace:?}"
    );
    // Only the supervisor gets SIGTERM; the rest is SIGKILLed at the timeout.
    assert_eq!(service_value("KillMode"), "mixed");
    assert_eq!(service_value("KillSignal"), "SIGTERM");
    // The watchdog pings every half period; a period shorter than the stop timeout
    // keeps a hung drain from waiting for the full timeout.
    assert!(duration(&service_value("WatchdogSec")) > Duration::from_secs(1));
}

#[test]
fn deploy_files_set_only_variables_the_binary_reads() {
    // Read by the supervisor outside clap, or by Bun (HOME: its install cache).
    let read_elsewhere = ["RUNTIME_MASTER_KEY", "HOME"];
    let mut names: Vec<(String, &str)> = Vec::new();
    names.extend(unit_environment().into_keys().map(|name| (name, UNIT)));
    names.extend(
        env_file_assignments()
            .into_iter()
            .map(|(name, _, _)| (name, ENV_FILE)),
    );
    names.extend(final_stage_env().into_keys().map(|name| (name, DOCKERFILE)));
    for container in [
        supervisor_container(&deployment(None)),
        supervisor_container(&deployment(Some(SIDECAR))),
    ] {
        for item in items(&container["env"], "env") {
            names.push((
                text(&item["name"], "env name").to_owned(),
                "deploy/kubernetes",
            ));
        }
    }
    assert!(names.len() > 10, "too few variables found: {names:?}");
    let help = help_text();
    for (name, file) in names {
        assert!(
            read_elsewhere.contains(&name.as_str()) || help.contains(&format!("[env: {name}=")),
            "{file} sets {name}, which buntime-supervisor does not read"
        );
    }
}

#[test]
fn notify_socket_gets_ready_then_stopping_and_the_process_exits_0() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let notify = NotifySocket::bind();
    let path = notify.path.display().to_string();
    let mut supervisor = start_plain(&apps, &[("NOTIFY_SOCKET", &path)]);
    notify.wait_for("READY=1", Duration::from_secs(20));
    supervisor.signal(Signal::SIGTERM);
    let stopping = notify.wait_for("STOPPING=1", Duration::from_secs(10));
    assert!(
        !stopping.iter().any(|m| m.lines().any(|l| l == "READY=1")),
        "READY=1 sent again: {stopping:?}"
    );
    let status = supervisor
        .wait_exit(Duration::from_secs(30))
        .expect("supervisor did not exit after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", supervisor.log_text());
}

#[test]
fn notify_socket_gets_watchdog_pings_at_half_the_period() {
    let apps = Apps::with(&["hello@1.0.0"]);
    let notify = NotifySocket::bind();
    let path = notify.path.display().to_string();
    let _supervisor = start_plain(
        &apps,
        &[("NOTIFY_SOCKET", &path), ("WATCHDOG_USEC", "200000")],
    );
    notify.wait_for("READY=1", Duration::from_secs(20));
    // 100 ms apart: five pings well within two seconds.
    let started = Instant::now();
    for _ in 0..5 {
        notify.wait_for("WATCHDOG=1", Duration::from_secs(1));
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(2),
        "five pings took {elapsed:?}"
    );
}

// ---------------------------------------------------------------------------
// Kubernetes
// ---------------------------------------------------------------------------

#[test]
fn kubernetes_manifests_validate_against_the_pinned_kubernetes() {
    let output = Command::new(repo().join("scripts/validate-k8s"))
        .current_dir(repo())
        .output()
        .expect("run scripts/validate-k8s");
    assert!(
        output.status.success(),
        "scripts/validate-k8s failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn deployment_probes_answer_200_from_the_binary_started_as_the_pod_starts_it() {
    let deployment = deployment(None);
    let container = supervisor_container(&deployment);
    let pod = start_pod(&deployment);
    for probe in ["readinessProbe", "livenessProbe"] {
        let path = text(&container[probe]["httpGet"]["path"], probe);
        let (status, body) = pod.supervisor.get(path).await;
        assert_eq!(status, 200, "{probe} {path}: {body}");
    }
    // The pod serves apps from the claim through the ConfigMap's workerDirs.
    let (status, body) = pod.supervisor.get("/hello/").await;
    assert_eq!((status, body.as_str()), (200, "Hello from hello@1.0.0"));
}

#[test]
fn deployment_ports_agree_with_the_service_the_probes_and_the_binary() {
    let deployment = deployment(None);
    let container = supervisor_container(&deployment);
    let http = named(&container["ports"], "http", "container port");
    let container_port = http["containerPort"].as_u64().expect("containerPort");
    assert_eq!(container_port, 8000);
    assert_eq!(
        container_env(container, "PORT").as_deref(),
        Some(container_port.to_string().as_str()),
        "PORT must be the container port"
    );
    let service = yaml(&format!("{BASE}/service.yaml"));
    let service_port = &items(&service["spec"]["ports"], "Service ports")[0];
    assert_eq!(
        resolve_port(container, &service_port["targetPort"]),
        container_port,
        "the Service targets another port"
    );
    let selector = service["spec"]["selector"].as_object().expect("selector");
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (key, value) in selector {
        assert_eq!(
            &labels[key], value,
            "the Service does not select the pods ({key})"
        );
    }
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(
            resolve_port(container, &container[probe]["httpGet"]["port"]),
            container_port,
            "{probe} port"
        );
    }
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(
        annotations["prometheus.io/port"],
        container_port.to_string().as_str()
    );
    assert_eq!(annotations["prometheus.io/path"], "/_/metrics/prometheus");
    let exposed = final_stage_instruction("EXPOSE").expect("EXPOSE");
    assert_eq!(exposed, container_port.to_string(), "{DOCKERFILE} EXPOSE");
    assert!(
        help_text().contains("[default: 8000]"),
        "the binary's default port changed"
    );
}

#[tokio::test]
async fn deployment_grace_outlasts_prestop_and_drain_and_the_binary_exits_within_it() {
    let deployment = deployment(None);
    let container = supervisor_container(&deployment);
    let grace = duration(
        &container_env(container, "RUNTIME_SHUTDOWN_GRACE")
            .expect("RUNTIME_SHUTDOWN_GRACE must be set explicitly"),
    );
    let pre_stop = pre_stop_delay(container);
    assert!(
        pre_stop >= Duration::from_secs(1),
        "preStop sleep {pre_stop:?}"
    );
    let termination = Duration::from_secs(
        pod_spec(&deployment)["terminationGracePeriodSeconds"]
            .as_u64()
            .expect("terminationGracePeriodSeconds"),
    );
    assert!(
        termination > grace + pre_stop,
        "terminationGracePeriodSeconds {termination:?} <= grace {grace:?} + preStop {pre_stop:?}"
    );

    let mut pod = start_pod(&deployment);
    assert_eq!(pod.env["RUNTIME_SHUTDOWN_GRACE"], "30s");
    let (status, _) = pod.supervisor.get("/slow/?ms=0").await;
    assert_eq!(status, 200, "a live child before stopping");
    // A request in flight when SIGTERM comes is answered before the process exits.
    let in_flight = {
        let client = pod.supervisor.client.clone();
        let url = pod.supervisor.url("/slow/?ms=1500");
        tokio::spawn(async move {
            let response = client.get(url).send().await.expect("request in flight");
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    pod.supervisor.signal(Signal::SIGTERM);
    let exited = loop {
        if let Some(status) = pod.supervisor.child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if started.elapsed() > grace {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = started.elapsed();
    let status = exited.unwrap_or_else(|| {
        panic!(
            "still running {elapsed:?} after SIGTERM (grace {grace:?}):\n{}",
            pod.supervisor.log_text()
        )
    });
    assert_eq!(status.code(), Some(0), "{}", pod.supervisor.log_text());
    let answer = in_flight.await.expect("request task");
    assert_eq!(
        answer,
        (200, "slept 1500".to_owned()),
        "the drain cut a request"
    );
}

#[test]
fn configmap_runtime_config_loads_and_names_the_apps_volume() {
    let configmap = yaml(&format!("{BASE}/configmap.yaml"));
    let deployment = deployment(None);
    let container = supervisor_container(&deployment);
    let config_path = container_env(container, "RUNTIME_CONFIG").expect("RUNTIME_CONFIG");
    let (dir, file) = config_path.rsplit_once('/').expect("RUNTIME_CONFIG path");
    let mount = items(&container["volumeMounts"], "volumeMounts")
        .iter()
        .find(|mount| mount["mountPath"] == dir)
        .unwrap_or_else(|| panic!("nothing mounted at {dir}"));
    let volume = named(
        &pod_spec(&deployment)["volumes"],
        text(&mount["name"], "mount name"),
        "volume",
    );
    assert_eq!(volume["configMap"]["name"], configmap["metadata"]["name"]);

    let body = text(&configmap["data"][file], "ConfigMap data");
    let scratch = tempfile::tempdir().expect("tempdir");
    let path = scratch.path().join(file);
    std::fs::write(&path, body).expect("write config");
    let config = RuntimeConfig::load(&path, true).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.pool_size, Some(50));
    let apps_mount = items(&container["volumeMounts"], "volumeMounts")
        .iter()
        .find(|mount| {
            named(
                &pod_spec(&deployment)["volumes"],
                text(&mount["name"], "name"),
                "volume",
            )
            .get("persistentVolumeClaim")
            .is_some()
        })
        .expect("the apps claim is mounted");
    assert_eq!(
        config.worker_dirs,
        Some(vec![PathBuf::from(text(
            &apps_mount["mountPath"],
            "mountPath"
        ))])
    );
}

#[tokio::test]
async fn bun_sidecar_overlay_hands_bun_to_the_supervisor_through_a_shared_volume() {
    let deployment = deployment(Some(SIDECAR));
    let container = supervisor_container(&deployment);
    let bun_path = container_env(container, "BUNTIME_BUN").expect("BUNTIME_BUN");
    assert_eq!(bun_path, "/opt/bun/bun");
    // The base's settings are kept.
    assert!(container_env(container, "RUNTIME_SHUTDOWN_GRACE").is_some());
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);

    let pod = start_pod(&deployment);
    let bun_on_host = PathBuf::from(&pod.env["BUNTIME_BUN"]);
    assert_ne!(bun_on_host, bun(), "BUNTIME_BUN should be the copy");
    assert!(bun_on_host.is_file(), "the init container copied no bun");
    let (status, body) = pod.supervisor.get("/hello/").await;
    assert_eq!((status, body.as_str()), (200, "Hello from hello@1.0.0"));
    assert!(
        pod.supervisor
            .logged(&[bun_on_host.to_string_lossy().as_ref()]),
        "the supervisor did not use the copied bun:\n{}",
        pod.supervisor.log_text()
    );
}

// ---------------------------------------------------------------------------
// Docker
// ---------------------------------------------------------------------------

#[test]
fn dockerfile_and_bun_sidecar_pin_the_bun_version_of_shim_package_json() {
    let pinned = pinned_bun_version();
    let (global, stages) = dockerfile_stages();
    let arg = global
        .iter()
        .filter(|(keyword, _)| keyword == "ARG")
        .find_map(|(_, rest)| rest.strip_prefix("BUN_VERSION="))
        .expect("ARG BUN_VERSION=… before the first FROM");
    assert_eq!(arg, pinned, "{DOCKERFILE} ARG BUN_VERSION");
    let bun_stage = stages
        .iter()
        .find(|stage| stage.from.starts_with("oven/bun:"))
        .expect("a stage FROM oven/bun");
    assert_eq!(bun_stage.from, "oven/bun:${BUN_VERSION}");
    let bun_stage_name = bun_stage.name.clone().expect("the oven/bun stage is named");
    let copies_bun = stages
        .last()
        .expect("stages")
        .instructions
        .iter()
        .any(|(keyword, rest)| {
            keyword == "COPY"
                && rest.starts_with(&format!("--from={bun_stage_name} /usr/local/bin/bun "))
        });
    assert!(
        copies_bun,
        "the final stage does not copy bun from {bun_stage_name}"
    );

    let sidecar = deployment(Some(SIDECAR));
    let init = named(
        &pod_spec(&sidecar)["initContainers"],
        "bun",
        "init container",
    );
    assert_eq!(
        text(&init["image"], "image"),
        format!("oven/bun:{pinned}"),
        "{SIDECAR} init container image"
    );
}

#[test]
fn dockerfile_runs_the_supervisor_unprivileged_with_the_pod_layout() {
    let entrypoint = exec_form(
        &final_stage_instruction("ENTRYPOINT").expect("ENTRYPOINT"),
        "",
    );
    assert_eq!(entrypoint, ["buntime-supervisor", "run"]);
    assert_eq!(
        final_stage_instruction("STOPSIGNAL").as_deref(),
        Some("SIGTERM")
    );
    let user = final_stage_instruction("USER").expect("USER");
    let (uid, gid) = user.split_once(':').unwrap_or((&user, ""));
    let uid: u64 = uid
        .parse()
        .expect("USER should be numeric for runAsNonRoot");
    assert!(uid > 0, "USER {user} is root");
    let deployment = deployment(None);
    let pod_security = &pod_spec(&deployment)["securityContext"];
    assert_eq!(pod_security["runAsUser"].as_u64(), Some(uid));
    if !gid.is_empty() {
        assert_eq!(pod_security["runAsGroup"].as_u64(), gid.parse().ok());
    }
    assert_eq!(pod_security["runAsNonRoot"], true);

    let env = final_stage_env();
    let container = supervisor_container(&deployment);
    assert_eq!(env["RUNTIME_WORKER_DIRS"], "/srv/apps");
    assert_eq!(
        final_stage_instruction("VOLUME").as_deref(),
        Some("[\"/srv/apps\"]")
    );
    assert_eq!(
        Some(env["RUNTIME_DIR"].clone()),
        container_env(container, "RUNTIME_DIR"),
        "the image and the pod use different runtime dirs"
    );
    assert_eq!(
        env["RUNTIME_SHUTDOWN_GRACE"],
        container_env(container, "RUNTIME_SHUTDOWN_GRACE").expect("grace")
    );
    assert_eq!(env["BUNTIME_BUN"], "/usr/local/bin/bun");
}

#[test]
fn dockerfile_healthcheck_follows_the_live_probe() {
    let healthcheck = final_stage_instruction("HEALTHCHECK").expect("HEALTHCHECK");
    let command = exec_form(&healthcheck, "CMD ");
    assert!(
        command.join(" ").contains("/_/health/live"),
        "HEALTHCHECK does not use the live probe: {command:?}"
    );
    let run_check = |port: &str| {
        Command::new(&command[0])
            .args(&command[1..])
            .env_clear()
            .env("PORT", port)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .output()
            .expect("run the HEALTHCHECK command")
    };
    let apps = Apps::with(&["hello@1.0.0"]);
    let mut supervisor = start_plain(&apps, &[]);
    let port = supervisor.base.rsplit(':').next().expect("port").to_owned();
    let healthy = run_check(&port);
    assert!(
        healthy.status.success(),
        "HEALTHCHECK failed against a live supervisor: {}",
        String::from_utf8_lossy(&healthy.stderr)
    );
    supervisor.signal(Signal::SIGTERM);
    supervisor
        .wait_exit(Duration::from_secs(30))
        .expect("supervisor did not exit");
    assert!(
        !run_check(&port).status.success(),
        "HEALTHCHECK passed with nothing listening"
    );
}

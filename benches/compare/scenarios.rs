//! The scenarios: what each side serves, how it is driven, and how the rounds
//! alternate between the plain Bun server and the supervisor.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;

use crate::load::{self, HttpLoad, Tally, WsLoad};
use crate::procs::{self, RssSampler, Spawned, TempDir};
use crate::report::{Figures, IdleMemory, Pair, ScenarioReport};
use crate::Options;

/// Every scenario, in the order a full run takes them, with a line for `--list`.
pub const SCENARIOS: &[(&str, &str)] = &[
    ("warm-noop", "GET answering \"ok\" from a warm app"),
    (
        "front-door",
        "supervisor answering by itself (GET /_/health/live: no child, no IPC)",
    ),
    ("echo-1kb", "POST of 1 KiB echoed back"),
    ("slow-50ms", "handler awaiting a 50 ms timer"),
    ("cpu-20ms", "handler burning 20 ms of CPU synchronously"),
    (
        "stream-10mb",
        "download of 10 MiB streamed in 64 KiB chunks",
    ),
    (
        "static-spa",
        "a small HTML app's JS asset (supervisor: from disk, no child)",
    ),
    (
        "ws-echo",
        "WebSocket sessions each doing sequential echo round trips",
    ),
    (
        "ephemeral-noop",
        "noop app with ephemeral: true (a child per request)",
    ),
    ("many-apps", "100 distinct apps hit in turn, --pool-size 50"),
    ("cold-start", "first response from an app with no child yet"),
];

/// Most cold starts per side and round (each leaves a live child on the supervisor).
const COLD_STARTS_PER_ROUND: usize = 100;
/// Supervisor process starts measured (spawn → first response of a fresh app).
const SUPERVISOR_STARTS: usize = 5;
/// Longest a server may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Stream scenario: connections at most, whatever `--concurrency` says.
const STREAM_CONCURRENCY: usize = 8;
const MANY_APPS: usize = 100;
const MANY_APPS_POOL: usize = 50;
/// Spare children per app in the ephemeral scenario's spares cases.
const EPHEMERAL_SPARES: usize = 4;
/// The ephemeral scenario's second concurrency.
const EPHEMERAL_WIDE: usize = 10;

/// What every scenario needs.
pub struct Context {
    pub options: Options,
    pub bun: PathBuf,
    pub supervisor: PathBuf,
    pub wrk: Option<PathBuf>,
}

fn bench_dir() -> PathBuf {
    procs::repo().join("bench")
}

/// `bench/apps/<name>@1.0.0`.
fn bench_app(name: &str) -> PathBuf {
    bench_dir().join("apps").join(format!("{name}@1.0.0"))
}

/// A running server and the port it answers on.
struct Server {
    process: Spawned,
    port: u16,
}

impl Server {
    fn pid(&self) -> u32 {
        self.process.pid
    }

    fn alive(&mut self, side: &str) -> Result<(), String> {
        if self.process.running() {
            Ok(())
        } else {
            Err(format!(
                "the {side} server exited during the run:\n{}",
                self.process.recent_log()
            ))
        }
    }
}

/// What the plain side runs.
enum Plain {
    /// `bun plain.ts <bench/apps/APP/index.ts>`
    Module(&'static str),
    /// `bun plain.ts --static <bench/apps/APP>`
    Static(&'static str),
}

fn spawn_plain(context: &Context, plain: &Plain) -> Result<Spawned, String> {
    let mut command = Command::new(&context.bun);
    command.arg(bench_dir().join("plain.ts"));
    let dir = match plain {
        Plain::Module(app) => {
            command.arg(bench_app(app).join("index.ts"));
            bench_app(app)
        }
        Plain::Static(app) => {
            command.arg("--static").arg(bench_app(app));
            bench_app(app)
        }
    };
    command.args(["--port", "0"]).current_dir(dir);
    Spawned::start(command, "plain bun", Duration::ZERO)
}

fn start_plain(context: &Context, plain: &Plain) -> Result<Server, String> {
    let mut process = spawn_plain(context, plain)?;
    let port = process.wait_port(START_TIMEOUT)?;
    Ok(Server { process, port })
}

/// A work dir holding `apps/` (copies of bench apps under the given names) and the
/// supervisor's runtime dir.
fn work_dir(apps: &[(String, &str)], config: Option<&str>) -> Result<TempDir, String> {
    let work = TempDir::new("buntime-bench-")?;
    for (name, source) in apps {
        let copy = work.path().join("apps").join(name);
        procs::copy_dir(&bench_app(source), &copy)?;
        if let Some(config) = config {
            let file = copy.join("worker.jsonc");
            std::fs::write(&file, config).map_err(|e| format!("write {}: {e}", file.display()))?;
        }
    }
    Ok(work)
}

fn spawn_supervisor(context: &Context, work: &Path, flags: &[String]) -> Result<Server, String> {
    let port = procs::free_port()?;
    let mut command = Command::new(&context.supervisor);
    command
        .arg("run")
        .arg("--apps")
        .arg(work.join("apps"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--log-level", "warn", "--access-log", "false"])
        .args(["--log-format", "text", "--shutdown-grace", "2s"])
        .arg("--bun")
        .arg(&context.bun)
        .arg("--runtime-dir")
        .arg(work.join("run"))
        .args(flags)
        .current_dir(work);
    // Nothing from this shell's environment may change the supervisor's settings.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("RUNTIME_")
            || ["RUST_LOG", "PORT", "HOST", "BUNTIME_BUN"].contains(&name.as_ref())
        {
            command.env_remove(name.as_ref());
        }
    }
    let process = Spawned::start(command, "supervisor", Duration::from_secs(3))?;
    Ok(Server { process, port })
}

/// Polls `path` until it answers 200.
async fn wait_ok(server: &mut Server, path: &str, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        match load::get_once(server.port, path).await {
            Ok((status, _)) if status.is_success() => return Ok(()),
            Ok((status, _)) => last = format!("status {status}"),
            Err(e) => last = e,
        }
        if !server.process.running() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Err(format!(
        "no 200 from {path} within {within:?} (last: {last}):\n{}",
        server.process.recent_log()
    ))
}

async fn start_supervisor(
    context: &Context,
    work: &Path,
    flags: &[String],
) -> Result<Server, String> {
    // Measured as a supervisor runs after its first second: with its shim compiled
    // to bytecode (see src/shim.rs), which takes that second and then tens of ms.
    let compiled = work.join("run/shim-bytecode/main.js.jsc");
    let _ = std::fs::remove_file(&compiled);
    let mut server = spawn_supervisor(context, work, flags)?;
    wait_ok(&mut server, "/_/health", START_TIMEOUT).await?;
    let deadline = Instant::now() + START_TIMEOUT;
    while !compiled.is_file() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if compiled.is_file() {
        tokio::time::sleep(Duration::from_millis(100)).await; // the switch follows the build's exit
    } else {
        progress("the supervisor did not compile its shim; children start from source");
    }
    Ok(server)
}

/// One measured run: the tally, the CPU seconds the server's process tree used
/// during it, and the tree's peak RSS.
struct Measured {
    tally: Tally,
    cpu_seconds: f64,
    peak_rss: u64,
}

async fn measure(root: u32, run: impl Future<Output = Tally>) -> Measured {
    let sampler = RssSampler::start(root);
    let before = procs::tree_cpu_seconds(root);
    let tally = run.await;
    let after = procs::tree_cpu_seconds(root);
    Measured {
        tally,
        cpu_seconds: (after - before).max(0.0),
        peak_rss: sampler.finish(),
    }
}

/// The rounds of one side, added up.
struct Totals {
    tally: Tally,
    cpu_seconds: f64,
    peak_rss: u64,
    round_rates: Vec<f64>,
}

impl Totals {
    fn new() -> Totals {
        Totals {
            tally: Tally::new(),
            cpu_seconds: 0.0,
            peak_rss: 0,
            round_rates: Vec::new(),
        }
    }

    fn add(&mut self, measured: Measured) {
        let seconds = measured.tally.elapsed.as_secs_f64();
        self.round_rates.push(if seconds > 0.0 {
            measured.tally.ok as f64 / seconds
        } else {
            0.0
        });
        self.tally.merge(&measured.tally);
        self.cpu_seconds += measured.cpu_seconds;
        self.peak_rss = self.peak_rss.max(measured.peak_rss);
    }

    fn figures(&self, concurrency: usize) -> Figures {
        Figures::from_tally(
            &self.tally,
            concurrency,
            Some(self.cpu_seconds),
            Some(self.peak_rss),
            self.round_rates.clone(),
        )
    }
}

/// How a load scenario drives each side.
#[derive(Clone)]
enum Drive {
    Http(HttpLoad),
    Ws(WsLoad),
}

impl Drive {
    async fn run(&self, port: u16, concurrency: usize, duration: Duration) -> Tally {
        match self {
            Drive::Http(http) => load::run_http(port, http, concurrency, duration).await,
            Drive::Ws(ws) => load::run_ws(port, ws, concurrency, duration).await,
        }
    }
}

/// A scenario that drives both sides with the same load.
struct LoadScenario {
    name: &'static str,
    /// (name in the supervisor's app dir, bench app it copies)
    apps: Vec<(String, &'static str)>,
    flags: Vec<String>,
    plain: Plain,
    plain_drive: Drive,
    supervisor_drive: Drive,
    /// The supervisor configurations measured, each against the plain side.
    cases: Vec<Case>,
    notes: Vec<String>,
    /// Also measure both sides with wrk on these paths (plain, supervisor).
    wrk: Option<(String, String)>,
}

/// One supervisor configuration of a scenario, measured against the plain side at
/// the same concurrency.
struct Case {
    /// Row label; empty for a scenario's only case.
    tag: String,
    concurrency: usize,
    /// `worker.jsonc` written into every app copy in place of the bench app's.
    config: Option<String>,
}

impl Case {
    fn only(concurrency: usize) -> Vec<Case> {
        vec![Case {
            tag: String::new(),
            concurrency,
            config: None,
        }]
    }

    fn tagged(tag: impl Into<String>, concurrency: usize, config: &str) -> Case {
        Case {
            tag: tag.into(),
            concurrency,
            config: Some(config.to_owned()),
        }
    }
}

fn get(paths: Vec<String>) -> Drive {
    Drive::Http(HttpLoad::new(Method::GET, paths, Bytes::new()))
}

fn one_app(name: &'static str) -> Vec<(String, &'static str)> {
    vec![(format!("{name}@1.0.0"), name)]
}

fn load_scenario(name: &str, options: &Options) -> Option<LoadScenario> {
    let concurrency = options.concurrency;
    let simple = |app: &'static str| LoadScenario {
        name: "",
        apps: one_app(app),
        flags: Vec::new(),
        plain: Plain::Module(app),
        plain_drive: get(vec!["/".into()]),
        supervisor_drive: get(vec![format!("/{app}/")]),
        cases: Case::only(concurrency),
        notes: Vec::new(),
        wrk: None,
    };
    let scenario = match name {
        "warm-noop" => LoadScenario {
            name: "warm-noop",
            wrk: Some(("/".into(), "/noop/".into())),
            ..simple("noop")
        },
        "front-door" => LoadScenario {
            name: "front-door",
            supervisor_drive: get(vec!["/_/health/live".into()]),
            wrk: Some(("/".into(), "/_/health/live".into())),
            notes: vec![
                "supervisor side: its own liveness answer, with no child and no IPC: the most any app request can reach through this front door on this machine".into(),
                "plain side: the noop app, as in warm-noop".into(),
            ],
            ..simple("noop")
        },
        "echo-1kb" => {
            let body = Bytes::from(vec![b'x'; 1024]);
            LoadScenario {
                name: "echo-1kb",
                plain_drive: Drive::Http(HttpLoad::new(
                    Method::POST,
                    vec!["/".into()],
                    body.clone(),
                )),
                supervisor_drive: Drive::Http(HttpLoad::new(
                    Method::POST,
                    vec!["/echo/".into()],
                    body,
                )),
                ..simple("echo")
            }
        }
        "slow-50ms" => LoadScenario {
            name: "slow-50ms",
            notes: vec![format!(
                "at most {:.0} req/s at concurrency {concurrency} (each request waits 50 ms)",
                concurrency as f64 * 20.0
            )],
            ..simple("slow")
        },
        "cpu-20ms" => LoadScenario {
            name: "cpu-20ms",
            cases: [1, 2]
                .into_iter()
                .map(|most| {
                    Case::tagged(
                        format!("maxInstances {most}"),
                        concurrency,
                        &format!(
                            "{{ maxRequests: 1000000000, maxInstances: {most}, minInstances: {most}, targetConcurrency: 1 }}"
                        ),
                    )
                })
                .collect(),
            notes: vec![
                "one JS thread on the plain side: at most 50 req/s".into(),
                "supervisor: maxInstances children started from boot (minInstances), requests to the least-loaded one".into(),
            ],
            ..simple("cpu")
        },
        "stream-10mb" => LoadScenario {
            name: "stream-10mb",
            cases: Case::only(concurrency.min(STREAM_CONCURRENCY)),
            notes: vec![format!(
                "concurrency capped at {STREAM_CONCURRENCY} (each response is 10 MiB)"
            )],
            ..simple("stream")
        },
        "static-spa" => LoadScenario {
            name: "static-spa",
            apps: one_app("spa"),
            plain: Plain::Static("spa"),
            plain_drive: get(vec!["/assets/app.js".into()]),
            supervisor_drive: get(vec!["/spa/assets/app.js".into()]),
            notes: vec![
                "plain side: Bun.serve with a file route per file (routes: { path: Bun.file(...) })"
                    .into(),
                "supervisor side: its static file server, no child process".into(),
            ],
            ..simple("spa")
        },
        "ws-echo" => {
            let message = "ping 0123456789 abcdefghijklmnopqrstuvwxyz".to_owned();
            LoadScenario {
                name: "ws-echo",
                plain_drive: Drive::Ws(WsLoad {
                    path: "/".into(),
                    message: message.clone(),
                }),
                supervisor_drive: Drive::Ws(WsLoad {
                    path: "/ws-echo/".into(),
                    message,
                }),
                notes: vec![
                    "req/s and latency are WebSocket round trips (send, wait for the echo)".into(),
                ],
                ..simple("ws-echo")
            }
        }
        "ephemeral-noop" => LoadScenario {
            name: "ephemeral-noop",
            plain: Plain::Module("noop"),
            plain_drive: get(vec!["/".into()]),
            cases: [1, EPHEMERAL_WIDE]
                .into_iter()
                .flat_map(|connections| {
                    [
                        Case::tagged(
                            format!("spares {EPHEMERAL_SPARES}, c={connections}"),
                            connections,
                            &format!("{{ ephemeral: true, spares: {EPHEMERAL_SPARES} }}"),
                        ),
                        Case::tagged(
                            format!("no spares, c={connections}"),
                            connections,
                            "{ ephemeral: true }",
                        ),
                    ]
                })
                .collect(),
            notes: vec![
                "plain side is one long-lived Bun.serve noop process: it has no per-request process"
                    .into(),
                "supervisor side starts a fresh bun child for every request (default --ephemeral-concurrency, queue 100); with spares, children started ahead take the requests"
                    .into(),
            ],
            ..simple("ephemeral")
        },
        "many-apps" => {
            let names: Vec<String> = (0..MANY_APPS).map(|i| format!("many-{i:03}")).collect();
            LoadScenario {
                name: "many-apps",
                apps: names
                    .iter()
                    .map(|name| (format!("{name}@1.0.0"), "noop"))
                    .collect(),
                flags: vec!["--pool-size".into(), MANY_APPS_POOL.to_string()],
                plain: Plain::Module("noop"),
                plain_drive: get(vec!["/".into()]),
                supervisor_drive: get(names.iter().map(|name| format!("/{name}/")).collect()),
                notes: vec![
                    format!(
                        "supervisor: {MANY_APPS} apps hit in turn with --pool-size {MANY_APPS_POOL}, so nearly every request finds its app evicted and starts a child"
                    ),
                    "plain side is one Bun.serve noop process serving every request".into(),
                    "supervisor peak RSS is its whole tree: the pool's children and those still retiring, RSS summed".into(),
                ],
                ..simple("noop")
            }
        }
        _ => return None,
    };
    Some(scenario)
}

/// Runs one scenario by name; a failure is reported in the result, not raised.
pub async fn run(context: &Context, name: &str) -> ScenarioReport {
    let result = if name == "cold-start" {
        cold_start(context).await
    } else {
        match load_scenario(name, &context.options) {
            Some(scenario) => run_load(context, scenario).await,
            None => Err(format!("unknown scenario {name}")),
        }
    };
    result.unwrap_or_else(|failure| ScenarioReport {
        name: name.to_owned(),
        notes: Vec::new(),
        pairs: Vec::new(),
        failure: Some(failure),
    })
}

fn progress(message: &str) {
    eprintln!("  {message}");
}

async fn run_load(context: &Context, scenario: LoadScenario) -> Result<ScenarioReport, String> {
    let mut plain = start_plain(context, &scenario.plain)?;
    let mut pairs = Vec::new();
    let mut notes = scenario.notes.clone();
    for (index, case) in scenario.cases.iter().enumerate() {
        if !case.tag.is_empty() {
            progress(&format!("case {}", case.tag));
        }
        let concurrency = case.concurrency.max(1);
        let work = work_dir(&scenario.apps, case.config.as_deref())?;
        let mut supervisor = start_supervisor(context, work.path(), &scenario.flags).await?;
        let (plain_totals, supervisor_totals) =
            ab_rounds(context, &scenario, &mut plain, &mut supervisor, concurrency).await?;
        pairs.push(Pair {
            tag: case.tag.clone(),
            plain: Some(plain_totals.figures(concurrency)),
            supervisor: Some(supervisor_totals.figures(concurrency)),
        });
        let own_peak = procs::hwm(supervisor.pid()) as f64 / (1024.0 * 1024.0);
        let case_label = if case.tag.is_empty() {
            String::new()
        } else {
            format!("({}) ", case.tag)
        };
        notes.push(format!(
            "{case_label}supervisor process alone, without its children: peak RSS {own_peak:.1} MiB (VmHWM)"
        ));
        let wrk_paths = scenario.wrk.as_ref().filter(|_| index == 0);
        if let (Some(wrk), Some((plain_path, supervisor_path))) = (&context.wrk, wrk_paths) {
            let plain_wrk = run_wrk(context, wrk, &mut plain, plain_path, concurrency).await;
            let supervisor_wrk =
                run_wrk(context, wrk, &mut supervisor, supervisor_path, concurrency).await;
            match (plain_wrk, supervisor_wrk) {
                (Ok(plain), Ok(supervisor)) => {
                    pairs.push(Pair {
                        tag: "wrk".into(),
                        plain: Some(plain),
                        supervisor: Some(supervisor),
                    });
                    notes.push("(wrk) rows: one wrk run per side as a cross-check of the built-in client; wrk gives no p95".into());
                }
                (Err(e), _) | (_, Err(e)) => notes.push(format!("wrk cross-check failed: {e}")),
            }
        }
    }
    Ok(ScenarioReport {
        name: scenario.name.to_owned(),
        notes,
        pairs,
        failure: None,
    })
}

/// Warms both sides up, then alternates measured runs between them.
async fn ab_rounds(
    context: &Context,
    scenario: &LoadScenario,
    plain: &mut Server,
    supervisor: &mut Server,
    concurrency: usize,
) -> Result<(Totals, Totals), String> {
    let options = &context.options;
    // Warm-up: starts the supervisor's child and lets both JITs settle.
    for (side, server, drive) in [
        ("plain", &mut *plain, &scenario.plain_drive),
        ("supervisor", &mut *supervisor, &scenario.supervisor_drive),
    ] {
        progress(&format!("{side}: warm-up {:?}", options.warmup));
        let tally = drive.run(server.port, concurrency, options.warmup).await;
        server.alive(side)?;
        if tally.ok == 0 {
            return Err(format!(
                "{side}: no successful request while warming up ({} errors: {:?}):\n{}",
                tally.errors,
                tally.error_kinds,
                server.process.recent_log()
            ));
        }
    }

    let mut plain_totals = Totals::new();
    let mut supervisor_totals = Totals::new();
    for round in 0..options.rounds {
        // Alternate which side goes first, so drift over time hits both alike.
        let supervisor_first = round % 2 == 1;
        for turn in 0..2 {
            let on_supervisor = (turn == 0) == supervisor_first;
            let (side, server, drive, totals) = if on_supervisor {
                (
                    "supervisor",
                    &mut *supervisor,
                    &scenario.supervisor_drive,
                    &mut supervisor_totals,
                )
            } else {
                (
                    "plain",
                    &mut *plain,
                    &scenario.plain_drive,
                    &mut plain_totals,
                )
            };
            let measured = measure(
                server.pid(),
                drive.run(server.port, concurrency, options.duration),
            )
            .await;
            progress(&format!(
                "{side}: round {} {:.0} req/s, {} errors",
                round + 1,
                measured.tally.ok as f64 / measured.tally.elapsed.as_secs_f64().max(1e-9),
                measured.tally.errors
            ));
            totals.add(measured);
            server.alive(side)?;
        }
    }
    Ok((plain_totals, supervisor_totals))
}

/// One wrk run against `server`, measured like the built-in client's runs.
async fn run_wrk(
    context: &Context,
    wrk: &Path,
    server: &mut Server,
    path: &str,
    concurrency: usize,
) -> Result<Figures, String> {
    let duration = context.options.duration;
    let seconds = duration.as_secs().max(1);
    let mut command = Command::new(wrk);
    command
        .args(["-t", "2", "-c", &concurrency.to_string()])
        .args([
            "-d",
            &format!("{seconds}s"),
            "--timeout",
            "30s",
            "--latency",
        ])
        .arg(format!("http://127.0.0.1:{}{path}", server.port));
    let mut process = Spawned::start(command, "wrk", Duration::ZERO)?;
    let root = server.pid();
    let started = Instant::now();
    let measured = measure(root, async {
        let deadline = Instant::now() + Duration::from_secs(seconds + 40);
        while process.running() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Tally::new()
    })
    .await;
    let finished = !process.running();
    let output = process.wait_output(Duration::from_secs(2));
    drop(process);
    if !finished {
        return Err("wrk did not finish".into());
    }
    progress(&format!("wrk on {path}: {:?}", started.elapsed()));
    server.alive("wrk target")?;
    parse_wrk(
        &output,
        concurrency,
        measured.cpu_seconds,
        measured.peak_rss,
    )
}

/// Latency text from wrk (`812.00us`, `1.23ms`, `2.00s`, `1.00m`) in milliseconds.
fn wrk_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (value, unit) = text.split_at(split);
    let value: f64 = value.parse().ok()?;
    match unit {
        "us" => Some(value / 1000.0),
        "ms" => Some(value),
        "s" => Some(value * 1000.0),
        "m" => Some(value * 60_000.0),
        _ => None,
    }
}

fn parse_wrk(output: &str, concurrency: usize, cpu: f64, peak_rss: u64) -> Result<Figures, String> {
    let mut figures = Figures {
        concurrency,
        cpu_seconds: Some(cpu),
        peak_rss_bytes: Some(peak_rss),
        ..Figures::default()
    };
    let mut rate = None;
    for line in output.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Latency", _avg, _stdev, max, ..] => figures.max_ms = wrk_ms(max),
            ["50%", value] => figures.p50_ms = wrk_ms(value),
            ["99%", value] => figures.p99_ms = wrk_ms(value),
            ["Requests/sec:", value] => rate = value.parse::<f64>().ok(),
            [count, "requests", "in", seconds, ..] => {
                figures.requests = count.parse().unwrap_or(0);
                figures.seconds = seconds
                    .trim_end_matches(',')
                    .trim_end_matches('s')
                    .parse()
                    .unwrap_or(0.0);
            }
            ["Non-2xx", "or", "3xx", "responses:", count] => {
                figures.errors += count.parse::<u64>().unwrap_or(0)
            }
            ["Socket", "errors:", rest @ ..] => {
                figures.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    figures.rate = rate.ok_or_else(|| format!("no Requests/sec in wrk's output:\n{output}"))?;
    Ok(figures)
}

async fn cold_start(context: &Context) -> Result<ScenarioReport, String> {
    let options = &context.options;
    let rounds = options.rounds.max(1);
    let names: Vec<String> = (0..SUPERVISOR_STARTS + rounds * COLD_STARTS_PER_ROUND)
        .map(|i| format!("cold-{i:04}"))
        .collect();
    let apps: Vec<(String, &str)> = names
        .iter()
        .map(|name| (format!("{name}@1.0.0"), "noop"))
        .collect();
    let work = work_dir(&apps, None)?;
    let mut fresh = names.iter();
    let pool = ["--pool-size".to_owned(), (names.len() + 10).to_string()];

    // Supervisor process start → first response from a fresh app.
    let mut starts = Tally::new();
    for _ in 0..SUPERVISOR_STARTS {
        let name = fresh.next().ok_or("out of app names")?;
        let started = Instant::now();
        let mut server = spawn_supervisor(context, work.path(), &pool)?;
        wait_ok(&mut server, &format!("/{name}/"), START_TIMEOUT).await?;
        starts.success(started.elapsed(), 0);
        starts.elapsed += started.elapsed();
    }
    progress(&format!(
        "supervisor start → first response: {} samples",
        starts.ok
    ));

    let mut plain_totals = Totals::new();
    let mut supervisor_totals = Totals::new();
    let mut plain_peak = 0u64;
    for round in 0..rounds {
        let supervisor_first = round % 2 == 1;
        for turn in 0..2 {
            if (turn == 0) == supervisor_first {
                let mut server = start_supervisor(context, work.path(), &pool).await?;
                let batch: Vec<&String> = fresh.by_ref().take(COLD_STARTS_PER_ROUND).collect();
                let port = server.port;
                let duration = options.duration;
                let measured = measure(server.pid(), async move {
                    let mut tally = Tally::new();
                    let began = Instant::now();
                    let mut sender = None;
                    for name in batch {
                        if began.elapsed() >= duration {
                            break;
                        }
                        let current = match sender.as_mut() {
                            Some(current) => current,
                            None => match load::connect(port).await {
                                Ok(connected) => sender.insert(connected),
                                Err(e) => {
                                    tally.error(e);
                                    continue;
                                }
                            },
                        };
                        let path = format!("/{name}/");
                        let started = Instant::now();
                        match load::exchange(current, port, Method::GET, &path, Bytes::new()).await
                        {
                            Ok((status, bytes)) if status.is_success() => {
                                tally.success(started.elapsed(), bytes)
                            }
                            Ok((status, _)) => tally.error(format!("status {}", status.as_u16())),
                            Err(e) => {
                                tally.error(e);
                                sender = None;
                            }
                        }
                    }
                    tally.elapsed = began.elapsed();
                    tally
                })
                .await;
                server.alive("supervisor")?;
                progress(&format!(
                    "supervisor: round {} {} cold starts",
                    round + 1,
                    measured.tally.ok
                ));
                supervisor_totals.add(measured);
            } else {
                let (tally, cpu, peak) = plain_cold_round(context, options.duration).await?;
                progress(&format!(
                    "plain: round {} {} cold starts",
                    round + 1,
                    tally.ok
                ));
                plain_peak = plain_peak.max(peak);
                plain_totals.add(Measured {
                    tally,
                    cpu_seconds: cpu,
                    peak_rss: peak,
                });
            }
        }
    }
    let mut supervisor_figures = supervisor_totals.figures(1);
    supervisor_figures.peak_rss_bytes = None;
    let mut start_figures = Figures::from_tally(&starts, 1, None, None, Vec::new());
    start_figures.mib_per_second = None;
    let mut plain_figures = plain_totals.figures(1);
    plain_figures.peak_rss_bytes = Some(plain_peak);
    plain_figures.mib_per_second = None;
    supervisor_figures.mib_per_second = None;
    Ok(ScenarioReport {
        name: "cold-start".into(),
        notes: vec![
            "req/s is starts per second, one at a time; latency is the time to the first response".into(),
            "plain: spawn `bun plain.ts` → its first response (CPU and peak RSS of that process)".into(),
            "supervisor: GET of an app with no child on a running supervisor → response (CPU of the whole tree; no peak RSS, as every start leaves a child running)".into(),
            format!("supervisor (process start): spawn the supervisor → first response of a fresh app, {SUPERVISOR_STARTS} samples; its plain row is the same as above"),
        ],
        pairs: vec![
            Pair {
                tag: String::new(),
                plain: Some(plain_figures.clone()),
                supervisor: Some(supervisor_figures),
            },
            Pair {
                tag: "process start".into(),
                plain: Some(plain_figures),
                supervisor: Some(start_figures),
            },
        ],
        failure: None,
    })
}

/// Spawns `bun plain.ts` again and again until `duration` has passed: tally of
/// spawn → first response, CPU seconds of all of them, largest VmHWM.
async fn plain_cold_round(
    context: &Context,
    duration: Duration,
) -> Result<(Tally, f64, u64), String> {
    let mut tally = Tally::new();
    let mut peak = 0;
    // Every process started here is reaped before the next: their CPU time adds up
    // in this process's cutime + cstime, exactly, where each one's own figure would
    // be rounded down to 10 ms.
    let cpu_before = procs::reaped_cpu_seconds();
    let began = Instant::now();
    for _ in 0..COLD_STARTS_PER_ROUND {
        if began.elapsed() >= duration {
            break;
        }
        let started = Instant::now();
        let mut process = spawn_plain(context, &Plain::Module("noop"))?;
        let port = match process.wait_port(START_TIMEOUT) {
            Ok(port) => port,
            Err(e) => {
                tally.error(e);
                continue;
            }
        };
        match load::get_once(port, "/").await {
            Ok((status, bytes)) if status.is_success() => tally.success(started.elapsed(), bytes),
            Ok((status, _)) => tally.error(format!("status {}", status.as_u16())),
            Err(e) => tally.error(e),
        }
        peak = peak.max(procs::hwm(process.pid));
        process.stop();
    }
    tally.elapsed = began.elapsed();
    let cpu = (procs::reaped_cpu_seconds() - cpu_before).max(0.0);
    Ok((tally, cpu, peak))
}

/// RSS and PSS of an idle supervisor, of one idle child, and of a plain idle bun.
pub async fn idle_memory(context: &Context) -> Result<IdleMemory, String> {
    let settle = Duration::from_secs(2);
    let work = work_dir(&one_app("noop"), None)?;
    let mut supervisor = start_supervisor(context, work.path(), &[]).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let alone = (procs::rss(supervisor.pid()), procs::pss(supervisor.pid()));
    wait_ok(&mut supervisor, "/noop/", START_TIMEOUT).await?;
    let mut plain = start_plain(context, &Plain::Module("noop"))?;
    wait_ok(&mut plain, "/", START_TIMEOUT).await?;
    tokio::time::sleep(settle).await;
    let children = procs::descendants(supervisor.pid());
    let Some(&(child, _)) = children.first() else {
        return Err("the supervisor has no child after a request".into());
    };
    let with_child = (procs::rss(supervisor.pid()), procs::pss(supervisor.pid()));
    let child_memory = (procs::rss(child), procs::pss(child));
    let plain_memory = (procs::rss(plain.pid()), procs::pss(plain.pid()));
    let ratio = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
    let rows = vec![
        ("supervisor, no children".to_owned(), alone.0, alone.1),
        (
            "supervisor, one idle child".to_owned(),
            with_child.0,
            with_child.1,
        ),
        (
            "its child (noop, idle)".to_owned(),
            child_memory.0,
            child_memory.1,
        ),
        (
            "plain bun (noop, idle)".to_owned(),
            plain_memory.0,
            plain_memory.1,
        ),
        (
            "supervisor + child".to_owned(),
            with_child.0 + child_memory.0,
            with_child.1 + child_memory.1,
        ),
    ];
    let notes = vec![
        format!(
            "child / plain bun: RSS {:.2}x, PSS {:.2}x; supervisor + child / plain bun: RSS {:.2}x, PSS {:.2}x",
            ratio(child_memory.0, plain_memory.0),
            ratio(child_memory.1, plain_memory.1),
            ratio(with_child.0 + child_memory.0, plain_memory.0),
            ratio(with_child.1 + child_memory.1, plain_memory.1),
        ),
        format!("measured {settle:?} after one request to each; PSS splits pages shared with other processes (e.g. the bun binary)"),
    ];
    Ok(IdleMemory { rows, notes })
}

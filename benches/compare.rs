//! Runs the supervisor and a plain `Bun.serve` process side by side on this machine,
//! drives both with the same load, and prints figures and supervisor/plain ratios.
//!
//! ```sh
//! cargo bench --bench compare -- [--scenario NAME]… [--duration 5s] [--warmup 1s]
//!     [--rounds 2] [--concurrency 50] [--json out.json] [--no-wrk] [--no-idle-memory] [--list]
//! ```
//!
//! It measures; it never judges. See `bench/README.md` for what each scenario does.

#[path = "compare/load.rs"]
mod load;
#[path = "compare/procs.rs"]
mod procs;
#[path = "compare/report.rs"]
mod report;
#[path = "compare/scenarios.rs"]
mod scenarios;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::report::ScenarioReport;
use crate::scenarios::{Context, SCENARIOS};

/// Settings from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub scenarios: Vec<String>,
    /// Per side and round.
    pub duration: Duration,
    pub warmup: Duration,
    pub rounds: usize,
    pub concurrency: usize,
    pub json: Option<PathBuf>,
    pub wrk: bool,
    pub idle_memory: bool,
    pub list: bool,
}

const USAGE: &str = "\
usage: cargo bench --bench compare -- [options]

  --scenario NAME    run only this scenario (repeatable, or comma-separated)
  --duration TIME    measured time per side and round (default 5s)
  --warmup TIME      warm-up per side before the rounds (default 1s)
  --rounds N         A/B rounds, alternating which side goes first (default 2)
  --concurrency N    connections, each with one request in flight (default 50)
  --json FILE        also write the results as JSON
  --no-wrk           skip the wrk cross-check even when wrk is on PATH
  --no-idle-memory   skip the idle memory figures
  --list             list the scenarios and exit

TIME is a number of seconds or a number with ms, s or m (500ms, 10s, 1m).";

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else if let Some(m) = text.strip_suffix('m') {
        (m, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("not a duration: {text:?}"))?;
    if !(value.is_finite() && value > 0.0 && value * scale <= 3600.0) {
        return Err(format!("duration out of range (0, 1h]: {text:?}"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

fn parse_options(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        scenarios: Vec::new(),
        duration: Duration::from_secs(5),
        warmup: Duration::from_secs(1),
        rounds: 2,
        concurrency: 50,
        json: None,
        wrk: true,
        idle_memory: true,
        list: false,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            // `cargo bench` passes this to every bench target.
            "--bench" => {}
            "--scenario" => {
                for name in value("--scenario")?.split(',').filter(|n| !n.is_empty()) {
                    if !SCENARIOS.iter().any(|(known, _)| *known == name) {
                        return Err(format!("unknown scenario {name:?} (see --list)"));
                    }
                    if !options.scenarios.iter().any(|n| n == name) {
                        options.scenarios.push(name.to_owned());
                    }
                }
            }
            "--duration" => options.duration = parse_duration(&value("--duration")?)?,
            "--warmup" => options.warmup = parse_duration(&value("--warmup")?)?,
            "--rounds" => {
                options.rounds = value("--rounds")?
                    .parse()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or("--rounds takes a number from 1 to 100")?
            }
            "--concurrency" => {
                options.concurrency = value("--concurrency")?
                    .parse()
                    .ok()
                    .filter(|n| (1..=10_000).contains(n))
                    .ok_or("--concurrency takes a number from 1 to 10000")?
            }
            "--json" => options.json = Some(PathBuf::from(value("--json")?)),
            "--no-wrk" => options.wrk = false,
            "--no-idle-memory" => options.idle_memory = false,
            "--list" => options.list = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if options.scenarios.is_empty() {
        options.scenarios = SCENARIOS.iter().map(|(name, _)| name.to_string()).collect();
    }
    Ok(options)
}

fn machine_summary(bun_version: &str) -> serde_json::Value {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|text| text.trim().to_owned())
        .unwrap_or_default();
    json!({ "cpus": cpus, "cpu_model": model, "kernel": kernel, "bun": bun_version })
}

fn main() -> ExitCode {
    let options = match parse_options(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            if message.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("{message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if options.list {
        for (name, about) in SCENARIOS {
            println!("{name:16} {about}");
        }
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Processes are started from this (the main) thread only: they are tied to it
    // with PR_SET_PDEATHSIG, and `block_on` runs the future right here.
    let code = runtime.block_on(run(options));
    drop(runtime);
    code
}

async fn run(options: Options) -> ExitCode {
    tokio::spawn(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        eprintln!("\ninterrupted: stopping every process this run started");
        procs::kill_everything();
        std::process::exit(130);
    });

    let bun = match procs::find_bun() {
        Ok(bun) => bun,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let bun_version = procs::bun_version(&bun);
    let wrk = if options.wrk {
        procs::on_path("wrk")
    } else {
        None
    };
    let context = Context {
        options: options.clone(),
        bun,
        supervisor: PathBuf::from(env!("CARGO_BIN_EXE_buntime-supervisor")),
        wrk,
    };
    let machine = machine_summary(&bun_version);
    eprintln!(
        "supervisor vs plain Bun.serve: {} per side and round, {} rounds, warm-up {:?}, concurrency {}; machine {machine}",
        humantime(options.duration),
        options.rounds,
        options.warmup,
        options.concurrency,
    );

    let began = Instant::now();
    let mut reports: Vec<ScenarioReport> = Vec::new();
    for name in &options.scenarios {
        eprintln!("[{name}]");
        let report = scenarios::run(&context, name).await;
        if let Some(failure) = &report.failure {
            eprintln!("  FAILED: {failure}");
        }
        reports.push(report);
    }
    let idle = if options.idle_memory {
        eprintln!("[idle memory]");
        match scenarios::idle_memory(&context).await {
            Ok(idle) => Some(idle),
            Err(e) => {
                eprintln!("  FAILED: {e}");
                None
            }
        }
    } else {
        None
    };
    eprintln!("done in {:.0} s\n", began.elapsed().as_secs_f64());

    println!(
        "supervisor vs plain Bun.serve — {} per side × {} rounds, concurrency {}, bun {}, {} CPUs",
        humantime(options.duration),
        options.rounds,
        options.concurrency,
        bun_version,
        machine["cpus"],
    );
    println!("ratio rows are supervisor / plain (req/s: higher is better for the supervisor; the rest: lower is)\n");
    print!("{}", report::table(&reports, idle.as_ref()));

    let mut code = ExitCode::SUCCESS;
    if let Some(path) = &options.json {
        let settings = json!({
            "duration_seconds": options.duration.as_secs_f64(),
            "warmup_seconds": options.warmup.as_secs_f64(),
            "rounds": options.rounds,
            "concurrency": options.concurrency,
            "scenarios": options.scenarios,
            "machine": machine,
        });
        let document = report::json_document(settings, &reports, idle.as_ref());
        let text = serde_json::to_string_pretty(&document).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("cannot write {}: {e}", path.display());
            code = ExitCode::FAILURE;
        } else {
            eprintln!("wrote {}", path.display());
        }
    }
    if reports.iter().any(|report| report.failure.is_some()) {
        code = ExitCode::FAILURE;
    }
    code
}

fn humantime(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

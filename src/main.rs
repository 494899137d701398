//! The `buntime-supervisor` binary.

use clap::Parser;
use tracing_subscriber::EnvFilter;

use buntime_supervisor::check::{listing, problems, Sources};
use buntime_supervisor::cli::{Cli, Command, LogFormat, SourceArgs};

/// jemalloc's per-thread caches serve the dozen small allocations of every forwarded
/// request for less CPU than the system allocator, and it reuses freed body-chunk
/// buffers instead of mapping fresh pages for each, with little idle memory.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Run(args) => *args,
        Command::Check(sources) => std::process::exit(check(&sources)),
        Command::Apps(sources) => {
            for line in listing(&to_sources(&sources)) {
                println!("{line}");
            }
            std::process::exit(0);
        }
    };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|filter| EnvFilter::try_new(filter).ok())
        .or_else(|| EnvFilter::try_new(&args.log_level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let json = match args.log_format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !terminal,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        builder.with_ansi(terminal).init();
    }
    let threads = args.threads.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|cpus| (cpus.get() / 2).max(1))
            .unwrap_or(1)
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("buntime-supervisor: cannot start the async runtime: {error}");
            std::process::exit(1);
        }
    };
    if let Err(error) = runtime.block_on(buntime_supervisor::run::run(args)) {
        tracing::error!("{error}");
        eprintln!("buntime-supervisor: {error}");
        std::process::exit(error.exit_code());
    }
}

fn to_sources(args: &SourceArgs) -> Sources {
    Sources {
        apps: args.apps.clone(),
        config: args.config.clone(),
    }
}

/// Prints every problem and returns the exit code: 0 when there is none, 1 otherwise.
fn check(args: &SourceArgs) -> i32 {
    let found = problems(&to_sources(args));
    for problem in &found {
        println!("{problem}");
    }
    if found.is_empty() {
        eprintln!("buntime-supervisor check: no problems found");
        0
    } else {
        eprintln!("buntime-supervisor check: {} problem(s) found", found.len());
        1
    }
}

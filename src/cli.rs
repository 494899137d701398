//! The command line: `buntime-supervisor run` and its flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{parse_duration_text, parse_size_text};

/// Runs many Bun web apps on one host, each in its own `bun` process.
#[derive(Debug, Parser)]
#[command(name = "buntime-supervisor", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the apps found in the app dirs.
    Run(Box<RunArgs>),
    /// Check the runtime config and every app's config and entrypoint; print one line
    /// per problem and exit non-zero if there is any.
    Check(SourceArgs),
    /// List the apps and versions found in the app dirs.
    Apps(SourceArgs),
}

/// Where `check` and `apps` look.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// App dirs, separated by `:` like PATH (or `workerDirs` in the config).
    #[arg(long, env = "RUNTIME_WORKER_DIRS", value_delimiter = ':')]
    pub apps: Vec<PathBuf>,

    /// The runtime config file (default: `buntime.jsonc` in the working directory).
    #[arg(long, env = "RUNTIME_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Flags of `run`. Settings left out here come from `buntime.jsonc`, then defaults.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The runtime config file (default: `buntime.jsonc` in the working directory,
    /// if there is one).
    #[arg(long, env = "RUNTIME_CONFIG")]
    pub config: Option<PathBuf>,

    /// App dirs, separated by `:` like PATH (or `workerDirs` in the config).
    #[arg(long, env = "RUNTIME_WORKER_DIRS", value_delimiter = ':')]
    pub apps: Vec<PathBuf>,

    /// Port to listen on [default: 8000].
    #[arg(long, env = "PORT")]
    pub port: Option<u16>,

    /// Address to listen on [default: 0.0.0.0].
    #[arg(long, env = "HOST")]
    pub host: Option<String>,

    /// Most app releases with a live child at once, LRU beyond that [default: 100].
    #[arg(long, env = "RUNTIME_POOL_SIZE")]
    pub pool_size: Option<usize>,

    /// The app served at `/` (`name` or `name@range`; or `homepage` in the config).
    #[arg(long, env = "RUNTIME_HOMEPAGE")]
    pub homepage: Option<String>,

    /// The `bun` executable (default: PATH, then the project's local install).
    #[arg(long, env = "BUNTIME_BUN")]
    pub bun: Option<PathBuf>,

    /// Log level or filter (`info`, `debug`, `buntime_supervisor=debug,child=warn`).
    #[arg(long, env = "RUNTIME_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log format: `text`, `json`, or `auto` (text on a terminal, JSON lines otherwise).
    #[arg(long, env = "RUNTIME_LOG_FORMAT", value_enum, default_value = "auto")]
    pub log_format: LogFormat,

    /// One log line per request (method, path, status, bytes, duration, app, pid, id).
    #[arg(long, env = "RUNTIME_ACCESS_LOG", default_value_t = true, action = clap::ArgAction::Set)]
    pub access_log: bool,

    /// Longest wait from spawning a child to its READY [default: 10s].
    #[arg(long, env = "RUNTIME_STARTUP_TIMEOUT", value_parser = duration)]
    pub startup_timeout: Option<Duration>,

    /// Time allowed on SIGTERM/SIGINT to finish requests and end every child
    /// [default: 30s].
    #[arg(long, env = "RUNTIME_SHUTDOWN_GRACE", value_parser = duration)]
    pub shutdown_grace: Option<Duration>,

    /// Longest a retiring child may take to finish its requests in flight.
    #[arg(long, env = "RUNTIME_DRAIN_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub drain_timeout: Duration,

    /// Longest a child may take to run `onTerminate` and exit after TERMINATE.
    #[arg(long, env = "RUNTIME_TERMINATE_TIMEOUT", default_value = "11s", value_parser = duration)]
    pub terminate_timeout: Duration,

    /// Most ephemeral requests running at once (default: twice the CPU count).
    #[arg(long, env = "RUNTIME_EPHEMERAL_CONCURRENCY")]
    pub ephemeral_concurrency: Option<usize>,

    /// Most ephemeral requests waiting for a slot before 503.
    #[arg(long, env = "RUNTIME_EPHEMERAL_QUEUE", default_value_t = 100)]
    pub ephemeral_queue: usize,

    /// Most spare children (started ahead for apps with `spares`) across all apps.
    #[arg(long, env = "RUNTIME_MAX_SPARES", default_value_t = 8)]
    pub max_spares: usize,

    /// Request body limit for apps that set no `maxBodySize` [default: 10mb].
    #[arg(long, env = "RUNTIME_MAX_BODY_SIZE", value_parser = size)]
    pub max_body_size: Option<u64>,

    /// Largest request body any app may accept, whatever its `maxBodySize`
    /// [default: 100mb].
    #[arg(long, env = "RUNTIME_MAX_BODY_SIZE_CEILING", value_parser = size)]
    pub max_body_size_ceiling: Option<u64>,

    /// Extra variables children inherit (comma-separated names); sensitive-looking
    /// names are still refused.
    #[arg(long, env = "RUNTIME_PASS_ENV", value_delimiter = ',')]
    pub pass_env: Vec<String>,

    /// Directory for the shim and the children's sockets (default: a fresh one
    /// under `$XDG_RUNTIME_DIR` or `/tmp`).
    #[arg(long, env = "RUNTIME_DIR")]
    pub runtime_dir: Option<PathBuf>,

    /// Threads serving HTTP and IPC (default: half the CPUs, at least one). The
    /// children need the other half: on small machines one thread moves more
    /// requests than two that contend with the apps for the same cores.
    #[arg(long, env = "RUNTIME_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable on a terminal, JSON lines otherwise.
    Auto,
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration_text(text)
}

fn size(text: &str) -> Result<u64, String> {
    parse_size_text(text)
}

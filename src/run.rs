//! `buntime-supervisor run`: check the settings, start the front door, and shut down
//! cleanly on SIGTERM or SIGINT.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::apps::{AppCatalog, Collision, Entrypoint};
use crate::bun::{find_bun, BunNotFound};
use crate::cli::RunArgs;
use crate::metrics::Metrics;
use crate::pool::{InheritedEnv, Launcher, Pool, PoolSettings, RetireTimings};
use crate::server::{serve, AppState, BodyLimits};
use crate::settings::{Settings, SettingsError, AVAILABLE_PLUGINS};
use crate::shim::ShimEntry;

/// Why the supervisor could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The settings or the runtime config are invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// An app dir does not exist.
    #[error(
        "app dir {0} does not exist or is not a directory (from --apps / RUNTIME_WORKER_DIRS)"
    )]
    MissingAppDir(PathBuf),
    /// No `bun`.
    #[error(transparent)]
    Bun(#[from] BunNotFound),
    /// Two app dirs provide the same release.
    #[error("{0}")]
    Collision(Collision),
    /// The runtime dir or shim could not be written.
    #[error("cannot prepare the runtime dir {path}: {source}")]
    RuntimeDir {
        /// The dir.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The listen address is taken or invalid.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

impl RunError {
    /// The process exit code: 2 for bad settings, 1 for failures while running.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Settings(_)
            | RunError::MissingAppDir(_)
            | RunError::Bun(_)
            | RunError::Collision(_) => 2,
            _ => 1,
        }
    }
}

/// Runs the supervisor until a shutdown signal, then drains and returns.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let settings = Settings::from_args(&args)?;
    for dir in &settings.app_dirs {
        if !dir.is_dir() {
            return Err(RunError::MissingAppDir(dir.clone()));
        }
    }
    for plugin in &settings.plugins {
        if !AVAILABLE_PLUGINS.contains(&plugin.name.as_str()) {
            tracing::warn!(plugin = %plugin.name, "plugin is not available in this build; ignoring it");
        }
    }
    let catalog = AppCatalog::new(settings.app_dirs.clone());
    if let Some(collision) = catalog.collisions().into_iter().next() {
        return Err(RunError::Collision(collision));
    }
    let bun = find_bun(args.bun.as_deref())?;
    let runtime_dir = args.runtime_dir.clone().unwrap_or_else(default_runtime_dir);
    let prepare = |source| RunError::RuntimeDir {
        path: runtime_dir.clone(),
        source,
    };
    std::fs::create_dir_all(&runtime_dir).map_err(prepare)?;
    let shim_source = crate::shim::install(&runtime_dir).map_err(prepare)?;
    let shim = ShimEntry::new(shim_source.clone());

    let (inherited_env, dropped) = InheritedEnv::from_env(std::env::vars(), &args.pass_env);
    if !dropped.is_empty() {
        tracing::warn!(variables = %dropped.join(", "),
            "not passing these variables to children: their names look like secrets");
    }
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let metrics = Arc::new(Metrics::new());
    let pool = Pool::new(
        Launcher {
            bun: bun.clone(),
            shim: shim.clone(),
            runtime_dir: runtime_dir.clone(),
            startup_timeout: settings.startup_timeout,
            inherited_env,
        },
        PoolSettings {
            pool_size: settings.pool_size,
            ephemeral_concurrency: args.ephemeral_concurrency.unwrap_or(cpus * 2).max(1),
            ephemeral_queue: args.ephemeral_queue,
            max_spares: args.max_spares,
            timings: RetireTimings {
                drain: args.drain_timeout,
                terminate: args.terminate_timeout,
            },
        },
        metrics.clone(),
    );

    // Handlers go in before the socket is bound, so a signal sent as soon as the
    // supervisor reports READY is always a graceful stop, never the default action.
    let signals = ShutdownSignals::install();
    let address = format!("{}:{}", settings.host, settings.port);
    let listener = TcpListener::bind(&address)
        .await
        .map_err(|source| RunError::Listen {
            address: address.clone(),
            source,
        })?;
    let local = listener.local_addr().map_err(RunError::Serve)?;
    let names = catalog.app_names();
    tracing::info!(
        "listening on http://{local} with {} apps: {} (bun {})",
        names.len(),
        names.join(", "),
        bun.display()
    );
    let body_limits = BodyLimits {
        default: settings.max_body_size,
        ceiling: settings.max_body_size_ceiling,
    };
    let mut state = AppState::new(catalog, pool, local.to_string(), body_limits, metrics);
    state.access_log = args.access_log;
    state.homepage = settings.homepage.clone();
    state.master_key = settings.master_key.clone();
    let state = Arc::new(state);
    tokio::spawn(prewarm(state.clone()));
    tokio::spawn(crate::shim::compile(
        bun.clone(),
        shim_source,
        runtime_dir.clone(),
        shim,
    ));
    let stop = CancellationToken::new();
    tokio::spawn(signals.stop_on_signal(stop.clone()));
    let result = serve(listener, state, stop, settings.shutdown_grace).await;
    if args.runtime_dir.is_none() {
        let _ = std::fs::remove_dir_all(&runtime_dir);
    }
    tracing::info!("stopped");
    result.map_err(RunError::Serve)
}

/// Starts the `minInstances` children (and spares) of every app's default release,
/// so they take their first request without a cold start. Reading every app's
/// config happens on a blocking thread: with many apps it must not hold up the
/// requests that arrive meanwhile.
async fn prewarm(state: Arc<AppState>) {
    let reader = state.clone();
    let wanted = tokio::task::spawn_blocking(move || {
        let mut wanted = Vec::new();
        for name in reader.catalog.app_names() {
            let Ok(release) = reader.catalog.resolve(&name, None) else {
                continue;
            };
            let Ok(setup) = reader.catalog.setup(&release) else {
                continue;
            };
            if let Entrypoint::Module(entrypoint) = &setup.entrypoint {
                if setup.config.min_instances > 0 || setup.config.spares > 0 {
                    wanted.push((release.clone(), setup.config.clone(), entrypoint.clone()));
                }
            }
        }
        wanted
    })
    .await
    .unwrap_or_default();
    for (release, config, entrypoint) in wanted {
        state.pool.prewarm(&release, &config, &entrypoint).await;
    }
}

/// SIGTERM and SIGINT, caught from the moment they are installed.
struct ShutdownSignals {
    handlers: Option<(Signal, Signal)>,
}

impl ShutdownSignals {
    fn install() -> Self {
        let handlers = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(terminate), Ok(interrupt)) => Some((terminate, interrupt)),
            _ => {
                tracing::error!("cannot install signal handlers; stop the supervisor with SIGKILL");
                None
            }
        };
        ShutdownSignals { handlers }
    }

    /// Cancels `stop` on the first SIGTERM or SIGINT.
    async fn stop_on_signal(self, stop: CancellationToken) {
        let Some((mut terminate, mut interrupt)) = self.handlers else {
            return;
        };
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
        }
        stop.cancel();
    }
}

fn default_runtime_dir() -> PathBuf {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    base.join(format!("buntime-supervisor-{}", std::process::id()))
}

//! The settings a run uses: flags and environment variables first, then
//! `buntime.jsonc`, then defaults.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::RunArgs;
use crate::config::{ConfigError, PluginSpec, RuntimeConfig};

/// Plugins this build provides. Configured plugins outside this list are reported.
pub const AVAILABLE_PLUGINS: &[&str] = &[];

/// Everything `run` needs, merged and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// App dirs, searched in order.
    pub app_dirs: Vec<PathBuf>,
    /// Listen address.
    pub host: String,
    /// Listen port.
    pub port: u16,
    /// Pool size.
    pub pool_size: usize,
    /// The homepage app, if any.
    pub homepage: Option<String>,
    /// Spawn-to-READY limit.
    pub startup_timeout: Duration,
    /// Shutdown grace period.
    pub shutdown_grace: Duration,
    /// Default request body limit.
    pub max_body_size: u64,
    /// Request body ceiling.
    pub max_body_size_ceiling: u64,
    /// Plugins from the config.
    pub plugins: Vec<PluginSpec>,
    /// The master key protecting the internal API, from `RUNTIME_MASTER_KEY`.
    pub master_key: Option<String>,
}

/// Settings that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The runtime config file is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No app dir given anywhere.
    #[error("no app dirs: pass --apps DIR[:DIR…], set RUNTIME_WORKER_DIRS, or set workerDirs in buntime.jsonc")]
    NoAppDirs,
    /// A required plugin is not part of this build.
    #[error("{file}: required plugin {name:?} is not available in this build")]
    MissingPlugin {
        /// The config file.
        file: String,
        /// The plugin.
        name: String,
    },
}

impl Settings {
    /// Merges the flags with the runtime config file.
    pub fn from_args(args: &RunArgs) -> Result<Self, SettingsError> {
        let file = match &args.config {
            Some(path) => RuntimeConfig::load(path, true)?,
            None => RuntimeConfig::load(&PathBuf::from("buntime.jsonc"), false)?,
        };
        let source = file
            .source
            .as_ref()
            .map(|path| path.display().to_string())
            .unwrap_or_else(|| "buntime.jsonc".to_owned());
        for name in &file.required {
            if !AVAILABLE_PLUGINS.contains(&name.as_str()) {
                return Err(SettingsError::MissingPlugin {
                    file: source.clone(),
                    name: name.clone(),
                });
            }
        }
        let app_dirs = if args.apps.is_empty() {
            file.worker_dirs.clone().unwrap_or_default()
        } else {
            args.apps.clone()
        };
        if app_dirs.is_empty() {
            return Err(SettingsError::NoAppDirs);
        }
        let max_body_size_ceiling = args
            .max_body_size_ceiling
            .or(file.max_body_size_ceiling)
            .unwrap_or(100 << 20);
        Ok(Settings {
            app_dirs,
            host: args
                .host
                .clone()
                .or(file.host.clone())
                .unwrap_or_else(|| "0.0.0.0".to_owned()),
            port: args.port.or(file.port).unwrap_or(8000),
            pool_size: args.pool_size.or(file.pool_size).unwrap_or(100).max(1),
            homepage: args.homepage.clone().or(file.homepage.clone()),
            startup_timeout: args
                .startup_timeout
                .or(file.startup_timeout)
                .unwrap_or(Duration::from_secs(10)),
            shutdown_grace: args
                .shutdown_grace
                .or(file.shutdown_grace)
                .unwrap_or(Duration::from_secs(30)),
            max_body_size: args
                .max_body_size
                .or(file.max_body_size)
                .unwrap_or(10 << 20)
                .min(max_body_size_ceiling),
            max_body_size_ceiling,
            plugins: file.plugins,
            master_key: std::env::var("RUNTIME_MASTER_KEY")
                .ok()
                .filter(|key| !key.is_empty()),
        })
    }
}

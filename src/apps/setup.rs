//! A release's config and entrypoint, read from disk and cached briefly so config
//! edits reach the next child without a restart.

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::entrypoint::{resolve, Entrypoint, EntrypointError};
use super::AppRelease;
use crate::config::{ConfigError, WorkerConfig};
use crate::proxy::ProxyRules;
use crate::sync::lock;

/// How long a read config is trusted before the files are read again.
const SETUP_TTL: Duration = Duration::from_secs(1);

/// What a release needs to be served.
#[derive(Debug, Clone)]
pub struct ReleaseSetup {
    /// Its worker config.
    pub config: Arc<WorkerConfig>,
    /// Its entrypoint.
    pub entrypoint: Entrypoint,
    /// Its compiled proxy rules.
    pub proxy: ProxyRules,
}

/// Why a release cannot be served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SetupError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The entrypoint is missing or outside the app dir.
    #[error(transparent)]
    Entrypoint(#[from] EntrypointError),
}

type Cached = (Instant, Result<Arc<ReleaseSetup>, SetupError>);

/// Setups by release ([`AppRelease::key`]).
#[derive(Default)]
pub struct SetupCache {
    entries: Mutex<HashMap<OsString, Cached>>,
}

impl SetupCache {
    /// The setup of `release`, read again when the cached one is over a second old.
    pub fn get(&self, release: &AppRelease) -> Result<Arc<ReleaseSetup>, SetupError> {
        let mut entries = lock(&self.entries);
        if let Some((at, setup)) = entries.get(release.key()) {
            if at.elapsed() < SETUP_TTL {
                return setup.clone();
            }
        }
        let setup = read(release);
        if let Err(error) = &setup {
            tracing::error!(app = %release.label(), %error, "app cannot be served");
        }
        if entries.len() > 10_000 {
            entries.clear();
        }
        entries.insert(release.key().to_owned(), (Instant::now(), setup.clone()));
        setup
    }

    /// Forgets everything, after app dirs changed.
    pub fn clear(&self) {
        lock(&self.entries).clear();
    }
}

fn read(release: &AppRelease) -> Result<Arc<ReleaseSetup>, SetupError> {
    let config = WorkerConfig::load(&release.dir)?;
    let proxy = ProxyRules::compile(&config.proxy).map_err(|error| {
        let file = config
            .source
            .clone()
            .unwrap_or_else(|| release.dir.join("worker.jsonc"));
        let rule = config.proxy.get(error.index).cloned().unwrap_or_default();
        ConfigError::new(&file, "proxy", &rule, &error.to_string())
    })?;
    let entrypoint = resolve(&release.dir, config.entrypoint.as_deref())?;
    Ok(Arc::new(ReleaseSetup {
        config: Arc::new(config),
        entrypoint,
        proxy,
    }))
}

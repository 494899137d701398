//! `buntime-supervisor check` and `apps`: validate or list what a run would serve,
//! without starting anything.

use std::path::PathBuf;

use crate::apps::{AppCatalog, Entrypoint};
use crate::config::{RuntimeConfig, WorkerConfig};
use crate::settings::AVAILABLE_PLUGINS;

/// Where to look: the same app dirs and config file `run` would use.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// App dirs given on the command line or in the environment.
    pub apps: Vec<PathBuf>,
    /// The runtime config file, if named.
    pub config: Option<PathBuf>,
}

/// Every problem found, one line each (file, key, value, why), in a stable order.
pub fn problems(sources: &Sources) -> Vec<String> {
    let mut problems = Vec::new();
    let config = match &sources.config {
        Some(path) => RuntimeConfig::load(path, true),
        None => RuntimeConfig::load(&PathBuf::from("buntime.jsonc"), false),
    };
    let config = match config {
        Ok(config) => config,
        Err(error) => {
            problems.push(error.to_string());
            RuntimeConfig::default()
        }
    };
    let file = config
        .source
        .as_ref()
        .map(|path| path.display().to_string())
        .unwrap_or_else(|| "buntime.jsonc".to_owned());
    for name in &config.required {
        if !AVAILABLE_PLUGINS.contains(&name.as_str()) {
            problems.push(format!(
                "{file}: key \"required\": {name:?} is not a plugin this build has"
            ));
        }
    }
    let dirs = if sources.apps.is_empty() {
        config.worker_dirs.clone().unwrap_or_default()
    } else {
        sources.apps.clone()
    };
    if dirs.is_empty() {
        problems.push(
            "no app dirs: pass --apps, set RUNTIME_WORKER_DIRS, or set workerDirs in buntime.jsonc"
                .to_owned(),
        );
    }
    for dir in &dirs {
        if !dir.is_dir() {
            problems.push(format!(
                "{}: app dir does not exist or is not a directory",
                dir.display()
            ));
        }
    }
    let catalog = AppCatalog::new(dirs);
    for collision in catalog.collisions() {
        problems.push(collision.to_string());
    }
    for name in catalog.app_names() {
        for release in catalog.releases_of(&name) {
            let (_, config_problems) = WorkerConfig::load_all(&release.dir);
            if !config_problems.is_empty() {
                problems.extend(
                    config_problems
                        .iter()
                        .map(|error| format!("{}: {error}", release.label())),
                );
                continue;
            }
            // The config is valid: what is left to find is in the entrypoint and rules.
            if let Err(error) = catalog.setup(&release) {
                problems.push(format!("{}: {error}", release.label()));
            }
        }
    }
    problems
}

/// One line per release: name, version, how it is served, and its entrypoint.
pub fn listing(sources: &Sources) -> Vec<String> {
    let dirs = if sources.apps.is_empty() {
        let config = match &sources.config {
            Some(path) => RuntimeConfig::load(path, true).unwrap_or_default(),
            None => RuntimeConfig::load(&PathBuf::from("buntime.jsonc"), false).unwrap_or_default(),
        };
        config.worker_dirs.unwrap_or_default()
    } else {
        sources.apps.clone()
    };
    let catalog = AppCatalog::new(dirs);
    let mut lines = Vec::new();
    for name in catalog.app_names() {
        for release in catalog.releases_of(&name) {
            let served = match catalog.setup(&release) {
                Ok(setup) => match &setup.entrypoint {
                    Entrypoint::Module(path) => format!("module  {}", path.display()),
                    Entrypoint::Static(path) => format!("static  {}", path.display()),
                },
                Err(error) => format!("invalid {error}"),
            };
            lines.push(format!("{name}\t{}\t{served}", release.version));
        }
    }
    lines
}

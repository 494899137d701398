//! Per-app configuration: `worker.jsonc`, `worker.config.json`, or the `workerConfig`
//! key of the app's `package.json`, in that order of precedence.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use super::units::{parse_duration, parse_size};
use super::{parse_json5, ConfigError};

/// Keys a worker config may hold (Buntime's names).
const KNOWN_KEYS: &[&str] = &[
    "$schema",
    "entrypoint",
    "timeout",
    "ttl",
    "ephemeral",
    "idleTimeout",
    "maxRequests",
    "autoInstall",
    "lowMemory",
    "env",
    "maxBodySize",
    "publicRoutes",
    "proxy",
    "minInstances",
    "maxInstances",
    "targetConcurrency",
    "spares",
];

/// How one app's children are started and retired.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// The file this came from, if any.
    pub source: Option<PathBuf>,
    /// Entrypoint relative to the app dir; detected when absent.
    pub entrypoint: Option<String>,
    /// Longest a request may wait for its response head.
    pub timeout: Duration,
    /// Sliding lifetime without requests after which the child retires; zero: none.
    pub ttl: Duration,
    /// Time without requests after which the child is told it is idle.
    pub idle_timeout: Duration,
    /// Requests after which the child is recycled.
    pub max_requests: u64,
    /// One request per child.
    pub ephemeral: bool,
    /// Run `bun install` in the app dir before the first start.
    pub auto_install: bool,
    /// Start Bun with `--smol`.
    pub low_memory: bool,
    /// Variables added to the child's environment.
    pub env: BTreeMap<String, String>,
    /// Largest request body the app accepts, if it sets its own.
    pub max_body_size: Option<u64>,
    /// Routes that skip authentication plugins, kept as written.
    pub public_routes: Value,
    /// Proxy rules, kept as written.
    pub proxy: Vec<Value>,
    /// Children kept running from boot, never retired for being idle.
    pub min_instances: usize,
    /// Most children the app may have at once.
    pub max_instances: usize,
    /// Requests in flight per child before another child is added.
    pub target_concurrency: usize,
    /// Children started ahead and kept READY, so the request that needs a new child
    /// (ephemeral, or the first after scale to zero) gets one at once.
    pub spares: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            source: None,
            entrypoint: None,
            timeout: Duration::from_secs(30),
            ttl: Duration::ZERO,
            idle_timeout: Duration::from_secs(60),
            max_requests: 1000,
            ephemeral: false,
            auto_install: false,
            low_memory: false,
            env: BTreeMap::new(),
            max_body_size: None,
            public_routes: Value::Null,
            proxy: Vec::new(),
            min_instances: 0,
            max_instances: 1,
            target_concurrency: 8,
            spares: 0,
        }
    }
}

impl WorkerConfig {
    /// Loads the config of the app in `app_dir`; an app without one gets the defaults.
    pub fn load(app_dir: &Path) -> Result<Self, ConfigError> {
        let (config, mut problems) = Self::load_all(app_dir);
        match problems.is_empty() {
            true => Ok(config),
            false => Err(problems.remove(0)),
        }
    }

    /// Loads the config and reports every problem in it, not only the first (what
    /// `check` prints). The config holds the values that were valid.
    pub fn load_all(app_dir: &Path) -> (Self, Vec<ConfigError>) {
        let parsed = |file: &Path| -> Result<Option<Value>, ConfigError> {
            match read_if_present(file)? {
                Some(text) => parse_json5(file, &text).map(Some),
                None => Ok(None),
            }
        };
        for name in ["worker.jsonc", "worker.config.json"] {
            let file = app_dir.join(name);
            match parsed(&file) {
                Ok(Some(value)) => return Self::from_value_all(&file, &value),
                Ok(None) => {}
                Err(error) => return (Self::default(), vec![error]),
            }
        }
        let package = app_dir.join("package.json");
        match parsed(&package) {
            Ok(Some(value)) => match value.get("workerConfig") {
                Some(section) => Self::from_value_all(&package, section),
                None => (Self::default(), Vec::new()),
            },
            Ok(None) => (Self::default(), Vec::new()),
            Err(error) => (Self::default(), vec![error]),
        }
    }

    /// Builds a config from a parsed file, checking every key and value.
    pub fn from_value(file: &Path, value: &Value) -> Result<Self, ConfigError> {
        let (config, mut problems) = Self::from_value_all(file, value);
        match problems.is_empty() {
            true => Ok(config),
            false => Err(problems.remove(0)),
        }
    }

    fn from_value_all(file: &Path, value: &Value) -> (Self, Vec<ConfigError>) {
        let mut config = WorkerConfig {
            source: Some(file.to_path_buf()),
            ..WorkerConfig::default()
        };
        let Value::Object(map) = value else {
            let error = ConfigError::new(file, "", value, "the config must be an object");
            return (config, vec![error]);
        };
        let mut problems = Vec::new();
        for (key, value) in map {
            if !KNOWN_KEYS.contains(&key.as_str()) {
                problems.push(ConfigError::new(
                    file,
                    key,
                    value,
                    &format!("unknown key (known keys: {})", KNOWN_KEYS[1..].join(", ")),
                ));
                continue;
            }
            if let Err(error) = config.apply(file, key, value) {
                problems.push(error);
            }
        }
        if config.min_instances > config.max_instances {
            if let Some(value) = map.get("minInstances") {
                problems.push(ConfigError::new(
                    file,
                    "minInstances",
                    value,
                    &format!("is more than maxInstances ({})", config.max_instances),
                ));
            }
        }
        (config, problems)
    }

    fn apply(&mut self, file: &Path, key: &str, value: &Value) -> Result<(), ConfigError> {
        let fail = |reason: &str| ConfigError::new(file, key, value, reason);
        match key {
            "entrypoint" => {
                let text = value
                    .as_str()
                    .ok_or_else(|| fail("must be a path string"))?;
                if text.is_empty() {
                    return Err(fail("must not be empty"));
                }
                self.entrypoint = Some(text.to_owned());
            }
            "timeout" => {
                self.timeout = parse_duration(value).map_err(|reason| fail(&reason))?;
                if self.timeout.is_zero() {
                    return Err(fail("must be greater than zero"));
                }
            }
            "ttl" => self.ttl = parse_duration(value).map_err(|reason| fail(&reason))?,
            "idleTimeout" => {
                self.idle_timeout = parse_duration(value).map_err(|reason| fail(&reason))?;
                if self.idle_timeout.is_zero() {
                    return Err(fail("must be greater than zero"));
                }
            }
            "maxRequests" => {
                self.max_requests = value
                    .as_u64()
                    .filter(|count| *count > 0)
                    .ok_or_else(|| fail("must be a whole number of requests, at least 1"))?;
            }
            "ephemeral" => {
                self.ephemeral = boolean(value).ok_or_else(|| fail("must be true or false"))?
            }
            "autoInstall" => {
                self.auto_install = boolean(value).ok_or_else(|| fail("must be true or false"))?
            }
            "lowMemory" => {
                self.low_memory = boolean(value).ok_or_else(|| fail("must be true or false"))?
            }
            "env" => self.env = env_map(value).map_err(|reason| fail(&reason))?,
            "maxBodySize" => {
                self.max_body_size = Some(parse_size(value).map_err(|reason| fail(&reason))?)
            }
            "publicRoutes" => {
                if !(value.is_array() || value.is_object()) {
                    return Err(fail(
                        "must be a list of routes or an object of methods to routes",
                    ));
                }
                self.public_routes = value.clone();
            }
            "minInstances" => {
                self.min_instances =
                    count(value, 0).ok_or_else(|| fail("must be a whole number, 0 or more"))?
            }
            "maxInstances" => {
                self.max_instances =
                    count(value, 1).ok_or_else(|| fail("must be a whole number, at least 1"))?
            }
            "targetConcurrency" => {
                self.target_concurrency = count(value, 1)
                    .ok_or_else(|| fail("must be a whole number of requests, at least 1"))?
            }
            "spares" => {
                self.spares = count(value, 0)
                    .ok_or_else(|| fail("must be a whole number of children, 0 or more"))?
            }
            "proxy" => {
                let rules = value
                    .as_array()
                    .ok_or_else(|| fail("must be a list of rules"))?;
                self.proxy = rules.clone();
            }
            _ => {}
        }
        Ok(())
    }
}

fn count(value: &Value, least: u64) -> Option<usize> {
    value
        .as_u64()
        .filter(|n| *n >= least && *n <= 1024)
        .and_then(|n| usize::try_from(n).ok())
}

fn boolean(value: &Value) -> Option<bool> {
    value.as_bool()
}

fn env_map(value: &Value) -> Result<BTreeMap<String, String>, String> {
    let map: &Map<String, Value> = value
        .as_object()
        .ok_or_else(|| "must be an object of variable names to values".to_owned())?;
    let mut env = BTreeMap::new();
    for (name, value) in map {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(format!("variable name {name:?} is not allowed"));
        }
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            _ => {
                return Err(format!(
                    "variable {name:?} must be a string, number or boolean"
                ))
            }
        };
        if text.contains('\0') {
            return Err(format!("variable {name:?} contains a NUL byte"));
        }
        env.insert(name.clone(), text);
    }
    Ok(env)
}

fn read_if_present(file: &Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(ConfigError::unreadable(file, &error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<WorkerConfig, ConfigError> {
        WorkerConfig::from_value(Path::new("apps/x/worker.jsonc"), &value)
    }

    #[test]
    fn defaults_follow_buntime() {
        let config = parse(json!({})).unwrap();
        assert_eq!(config.timeout, Duration::from_secs(30));
        assert_eq!(config.ttl, Duration::ZERO);
        assert_eq!(config.idle_timeout, Duration::from_secs(60));
        assert_eq!(config.max_requests, 1000);
        assert!(!config.ephemeral);
    }

    #[test]
    fn values_are_read_with_units() {
        let config = parse(json!({
            "timeout": "500ms", "ttl": "5m", "idleTimeout": 2, "maxRequests": 3,
            "ephemeral": true, "lowMemory": true, "maxBodySize": "1mb",
            "env": {"A": "x", "N": 1}
        }))
        .unwrap();
        assert_eq!(config.timeout, Duration::from_millis(500));
        assert_eq!(config.ttl, Duration::from_secs(300));
        assert_eq!(config.idle_timeout, Duration::from_secs(2));
        assert_eq!(config.max_requests, 3);
        assert_eq!(config.max_body_size, Some(1 << 20));
        assert_eq!(config.env.get("N").map(String::as_str), Some("1"));
    }

    #[test]
    fn errors_name_file_key_and_value() {
        let error = parse(json!({"ttl": "5 minutes"})).unwrap_err().to_string();
        assert!(
            error.starts_with("apps/x/worker.jsonc: key \"ttl\": \"5 minutes\""),
            "{error}"
        );
        let error = parse(json!({"bogus": 1})).unwrap_err().to_string();
        assert!(
            error.contains("key \"bogus\"") && error.contains("unknown key"),
            "{error}"
        );
        assert!(parse(json!({"maxRequests": 0})).is_err());
    }

    #[test]
    fn files_are_found_in_order_of_precedence() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("package.json"),
            r#"{"workerConfig": {"ttl": 9}}"#,
        )
        .unwrap();
        assert_eq!(
            WorkerConfig::load(dir.path()).unwrap().ttl,
            Duration::from_secs(9)
        );
        std::fs::write(dir.path().join("worker.config.json"), r#"{"ttl": 8}"#).unwrap();
        assert_eq!(
            WorkerConfig::load(dir.path()).unwrap().ttl,
            Duration::from_secs(8)
        );
        std::fs::write(dir.path().join("worker.jsonc"), "{ // c\n ttl: 7, }").unwrap();
        assert_eq!(
            WorkerConfig::load(dir.path()).unwrap().ttl,
            Duration::from_secs(7)
        );
    }
}

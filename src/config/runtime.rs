//! The runtime config file `buntime.jsonc`: plugins, the homepage app and runtime
//! settings. Flags and environment variables win over it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::units::{parse_duration, parse_size};
use super::{parse_json5, ConfigError};

/// Keys the runtime config may hold.
const KNOWN_KEYS: &[&str] = &[
    "$schema",
    "plugins",
    "required",
    "homepage",
    "workerDirs",
    "poolSize",
    "port",
    "host",
    "startupTimeout",
    "shutdownGrace",
    "maxBodySize",
    "maxBodySizeCeiling",
];

/// A plugin entry: a name, or `[name, options]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSpec {
    /// The plugin name.
    pub name: String,
    /// Its options, `null` when none.
    pub options: Value,
}

/// What `buntime.jsonc` says; every setting is optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConfig {
    /// The file read, if any.
    pub source: Option<PathBuf>,
    /// Plugins to load, in order.
    pub plugins: Vec<PluginSpec>,
    /// Plugins that must load or the supervisor refuses to start.
    pub required: Vec<String>,
    /// The app served at `/` (`name` or `name@range`).
    pub homepage: Option<String>,
    /// App dirs, relative ones taken from the file's directory.
    pub worker_dirs: Option<Vec<PathBuf>>,
    /// Pool size.
    pub pool_size: Option<usize>,
    /// Listen port.
    pub port: Option<u16>,
    /// Listen address.
    pub host: Option<String>,
    /// Spawn-to-READY limit.
    pub startup_timeout: Option<Duration>,
    /// Shutdown grace period.
    pub shutdown_grace: Option<Duration>,
    /// Default request body limit.
    pub max_body_size: Option<u64>,
    /// Request body ceiling.
    pub max_body_size_ceiling: Option<u64>,
}

impl RuntimeConfig {
    /// Reads `file`; a missing file is an error only when `required`.
    pub fn load(file: &Path, required: bool) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Self::default())
            }
            Err(error) => return Err(ConfigError::unreadable(file, &error.to_string())),
        };
        let value = parse_json5(file, &text)?;
        Self::from_value(file, &value)
    }

    /// Builds the config from a parsed file, checking every key and value.
    pub fn from_value(file: &Path, value: &Value) -> Result<Self, ConfigError> {
        let Value::Object(map) = value else {
            return Err(ConfigError::new(
                file,
                "",
                value,
                "the config must be an object",
            ));
        };
        let base = file.parent().unwrap_or(Path::new("."));
        let mut config = RuntimeConfig {
            source: Some(file.to_path_buf()),
            ..Self::default()
        };
        for (key, value) in map {
            let fail = |reason: &str| ConfigError::new(file, key, value, reason);
            match key.as_str() {
                "$schema" => {}
                "plugins" => config.plugins = plugins(value).map_err(|reason| fail(&reason))?,
                "required" => {
                    config.required =
                        strings(value).ok_or_else(|| fail("must be a list of plugin names"))?
                }
                "homepage" => {
                    let app = match value {
                        Value::String(app) => Some(app.clone()),
                        Value::Object(object) => {
                            object.get("app").and_then(Value::as_str).map(str::to_owned)
                        }
                        _ => None,
                    };
                    let app = app.filter(|app| !app.is_empty()).ok_or_else(|| {
                        fail("must be an app name like \"home\" or \"home@1\", or {\"app\": …}")
                    })?;
                    config.homepage = Some(app);
                }
                "workerDirs" => {
                    let dirs = match value {
                        Value::String(text) => Some(text.split(':').map(str::to_owned).collect()),
                        other => strings(other),
                    }
                    .filter(|dirs: &Vec<String>| {
                        !dirs.is_empty() && dirs.iter().all(|d| !d.is_empty())
                    })
                    .ok_or_else(|| fail("must be a list of directories or a PATH-style string"))?;
                    config.worker_dirs = Some(dirs.into_iter().map(|dir| base.join(dir)).collect());
                }
                "poolSize" => {
                    config.pool_size = Some(
                        value
                            .as_u64()
                            .filter(|size| *size > 0)
                            .and_then(|size| usize::try_from(size).ok())
                            .ok_or_else(|| fail("must be a whole number, at least 1"))?,
                    )
                }
                "port" => {
                    config.port = Some(
                        value
                            .as_u64()
                            .and_then(|port| u16::try_from(port).ok())
                            .ok_or_else(|| fail("must be a port number (0-65535)"))?,
                    )
                }
                "host" => {
                    config.host = Some(
                        value
                            .as_str()
                            .ok_or_else(|| fail("must be an address string"))?
                            .to_owned(),
                    )
                }
                "startupTimeout" => {
                    config.startup_timeout =
                        Some(parse_duration(value).map_err(|reason| fail(&reason))?)
                }
                "shutdownGrace" => {
                    config.shutdown_grace =
                        Some(parse_duration(value).map_err(|reason| fail(&reason))?)
                }
                "maxBodySize" => {
                    config.max_body_size = Some(parse_size(value).map_err(|reason| fail(&reason))?)
                }
                "maxBodySizeCeiling" => {
                    config.max_body_size_ceiling =
                        Some(parse_size(value).map_err(|reason| fail(&reason))?)
                }
                _ => {
                    return Err(fail(&format!(
                        "unknown key (known keys: {})",
                        KNOWN_KEYS[1..].join(", ")
                    )))
                }
            }
        }
        Ok(config)
    }
}

fn strings(value: &Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|item| item.as_str().map(str::to_owned))
        .collect()
}

fn plugins(value: &Value) -> Result<Vec<PluginSpec>, String> {
    let items = value
        .as_array()
        .ok_or("must be a list of plugin names or [name, options] pairs")?;
    items
        .iter()
        .map(|item| match item {
            Value::String(name) if !name.is_empty() => Ok(PluginSpec {
                name: name.clone(),
                options: Value::Null,
            }),
            Value::Array(pair) if pair.len() == 2 && pair[0].is_string() && pair[1].is_object() => {
                Ok(PluginSpec {
                    name: pair[0].as_str().unwrap_or_default().to_owned(),
                    options: pair[1].clone(),
                })
            }
            other => Err(format!(
                "entry {other} is neither a plugin name nor [name, {{options}}]"
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<RuntimeConfig, ConfigError> {
        RuntimeConfig::from_value(Path::new("/etc/buntime/buntime.jsonc"), &value)
    }

    #[test]
    fn settings_plugins_and_homepage_are_read() {
        let config = parse(json!({
            "plugins": ["metrics", ["auth", {"realm": "x"}]],
            "required": ["metrics"],
            "homepage": {"app": "home@1"},
            "workerDirs": ["apps", "/srv/more"],
            "poolSize": 20, "port": 9000, "startupTimeout": "5s", "maxBodySize": "2mb"
        }))
        .unwrap();
        assert_eq!(config.plugins[1].name, "auth");
        assert_eq!(config.homepage.as_deref(), Some("home@1"));
        assert_eq!(
            config.worker_dirs,
            Some(vec![
                PathBuf::from("/etc/buntime/apps"),
                PathBuf::from("/srv/more")
            ])
        );
        assert_eq!(config.pool_size, Some(20));
        assert_eq!(config.startup_timeout, Some(Duration::from_secs(5)));
        assert_eq!(config.max_body_size, Some(2 << 20));
    }

    #[test]
    fn bad_values_name_the_file_key_and_value() {
        let error = parse(json!({"poolSize": -1})).unwrap_err().to_string();
        assert!(
            error.contains("buntime.jsonc: key \"poolSize\": -1"),
            "{error}"
        );
        let error = parse(json!({"plugins": [42]})).unwrap_err().to_string();
        assert!(error.contains("key \"plugins\""), "{error}");
        assert!(parse(json!({"nope": 1}))
            .unwrap_err()
            .to_string()
            .contains("unknown key"));
    }
}

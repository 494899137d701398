//! Configuration: the runtime config, per-app worker configs, and the units they
//! are written in.

mod runtime;
mod units;
mod worker;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use runtime::{PluginSpec, RuntimeConfig};
pub use units::{parse_duration, parse_duration_text, parse_size, parse_size_text};
pub use worker::WorkerConfig;

/// A config file that cannot be used, naming the file, the key and the value at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}", file.display(), detail)]
pub struct ConfigError {
    /// The file at fault.
    pub file: PathBuf,
    /// The key at fault, empty for the whole file.
    pub key: String,
    /// What is wrong, starting with `: `.
    detail: String,
}

impl ConfigError {
    /// A bad value for `key`.
    pub fn new(file: &Path, key: &str, value: &Value, reason: &str) -> Self {
        let shown = value.to_string();
        let shown = if shown.chars().count() > 80 {
            format!("{}…", shown.chars().take(80).collect::<String>())
        } else {
            shown
        };
        let detail = if key.is_empty() {
            format!(": {reason}")
        } else {
            format!(": key \"{key}\": {shown} {reason}")
        };
        ConfigError {
            file: file.to_path_buf(),
            key: key.to_owned(),
            detail,
        }
    }

    /// A file that cannot be read or parsed at all.
    pub fn unreadable(file: &Path, reason: &str) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            key: String::new(),
            detail: format!(": {reason}"),
        }
    }
}

/// Parses a JSON5 config file, turning a syntax error into one line naming the file,
/// the line and column, and what was expected there.
pub(crate) fn parse_json5(file: &Path, text: &str) -> Result<Value, ConfigError> {
    json5::from_str(text).map_err(|error| {
        let json5::Error::Message { msg, location } = &error;
        // The parser's message is a multi-line drawing; its "= …" line says what is wrong.
        let what = msg
            .lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix("= "))
            .unwrap_or_else(|| msg.lines().next().unwrap_or("invalid JSON5"));
        let reason = match location {
            Some(at) => format!(
                "invalid JSON5 at line {}, column {}: {what}",
                at.line, at.column
            ),
            None => format!("invalid JSON5: {what}"),
        };
        ConfigError::unreadable(file, &reason)
    })
}

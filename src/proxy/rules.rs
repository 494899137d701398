//! Compiling an app's `proxy` list and matching request paths against it.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use regex::Regex;
use serde_json::{Map, Value};

use super::target::TargetBase;
use super::template;

/// Keys a rule may have; anything else is refused, so a typo (`changeorigin`) is
/// reported instead of silently ignored.
const KEYS: &[&str] = &[
    "pattern",
    "target",
    "rewrite",
    "changeOrigin",
    "secure",
    "headers",
    "ws",
];

/// An app's compiled proxy rules, in order. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ProxyRules {
    rules: Arc<[Arc<Rule>]>,
}

/// A rule that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {index}: {reason}")]
pub struct RuleError {
    /// Zero-based position of the rule in the `proxy` list.
    pub index: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// Matched against the path relative to the app's base.
    pub pattern: Regex,
    /// `target` as written in the config (placeholders unexpanded), for logs: an
    /// expanded target may hold a secret.
    pub target_as_written: String,
    /// `target` with placeholders filled in.
    pub target: TargetBase,
    /// `rewrite` in braced `Captures::expand` form.
    pub rewrite: Option<String>,
    /// Set `Host` (and `Origin`) to the target's.
    pub change_origin: bool,
    /// Verify the target's TLS certificate.
    pub secure: bool,
    /// Headers set on every proxied request.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Whether WebSocket upgrades are proxied.
    pub ws: bool,
}

/// A matched rule with the target URL it produced.
#[derive(Debug, Clone)]
pub struct RuleMatch {
    /// The absolute target URL without the query string; the proxy appends the
    /// client's query (kept exactly) when it sends the request.
    pub target: String,
    /// The rule that matched.
    pub rule: Arc<Rule>,
}

impl ProxyRules {
    /// Compiles the `proxy` list of a worker config. `${ENV_VAR}` placeholders in
    /// targets and header values are filled in now, from the supervisor's own
    /// environment.
    pub fn compile(rules: &[Value]) -> Result<Self, RuleError> {
        let compiled = rules
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                compile_rule(rule)
                    .map(Arc::new)
                    .map_err(|reason| RuleError { index, reason })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProxyRules {
            rules: compiled.into(),
        })
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule matching `path` (relative to the app's base, no query).
    ///
    /// With `rewrite`, the part of the path the pattern matched is replaced by the
    /// expanded rewrite (so `^/api` with rewrite `""` strips a prefix, and an anchored
    /// `^/api/(.*)$` replaces the whole path); without it the path goes on as is.
    pub fn find(&self, path: &str) -> Option<RuleMatch> {
        self.rules.iter().find_map(|rule| {
            let captures = rule.pattern.captures(path)?;
            let target = match &rule.rewrite {
                None => rule.target.url_for(path),
                Some(rewrite) => {
                    let whole = captures.get(0)?;
                    let mut rewritten = String::with_capacity(path.len() + rewrite.len());
                    rewritten.push_str(&path[..whole.start()]);
                    captures.expand(rewrite, &mut rewritten);
                    rewritten.push_str(&path[whole.end()..]);
                    rule.target.url_for(&rewritten)
                }
            };
            Some(RuleMatch {
                target,
                rule: rule.clone(),
            })
        })
    }
}

fn compile_rule(value: &Value) -> Result<Rule, String> {
    let Value::Object(fields) = value else {
        return Err(format!(
            "must be an object like {{ \"pattern\": \"^/api/(.*)$\", \"target\": \"http://localhost:3000\" }}, not {}",
            kind(value)
        ));
    };
    if let Some(unknown) = fields.keys().find(|key| !KEYS.contains(&key.as_str())) {
        return Err(format!(
            "unknown key \"{unknown}\" (known: {})",
            KEYS.join(", ")
        ));
    }
    let pattern_text = required_string(fields, "pattern")?;
    let pattern = Regex::new(pattern_text).map_err(|error| {
        format!(
            "pattern \"{pattern_text}\" is not a valid regular expression: {}",
            regex_reason(&error)
        )
    })?;
    let target_as_written = required_string(fields, "target")?;
    let target = TargetBase::parse(&template::expand_env(target_as_written)?)?;
    let rewrite = optional_string(fields, "rewrite")?
        .map(|text| template::compile_rewrite(text, &pattern))
        .transpose()?;
    let headers = match fields.get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(headers)) => headers
            .iter()
            .map(|(name, value)| compile_header(name, value))
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "\"headers\" must be an object of header names to strings, not {}",
                kind(other)
            ))
        }
    };
    Ok(Rule {
        pattern,
        target_as_written: target_as_written.to_owned(),
        target,
        rewrite,
        change_origin: optional_bool(fields, "changeOrigin")?.unwrap_or(false),
        secure: optional_bool(fields, "secure")?.unwrap_or(true),
        headers,
        ws: optional_bool(fields, "ws")?.unwrap_or(true),
    })
}

fn compile_header(name: &str, value: &Value) -> Result<(HeaderName, HeaderValue), String> {
    let header = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("header name \"{name}\" is not a valid HTTP header name"))?;
    let Value::String(text) = value else {
        return Err(format!(
            "header \"{name}\" must be a string, not {}",
            kind(value)
        ));
    };
    let text = template::expand_env(text)?;
    let value = HeaderValue::from_str(&text)
        .map_err(|_| format!("header \"{name}\" has a value that cannot be sent in HTTP"))?;
    Ok((header, value))
}

fn required_string<'a>(fields: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    match optional_string(fields, key)? {
        Some(text) if !text.trim().is_empty() => Ok(text),
        Some(_) => Err(format!("\"{key}\" is empty")),
        None => Err(format!("\"{key}\" is missing")),
    }
}

fn optional_string<'a>(
    fields: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, String> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(format!("\"{key}\" must be a string, not {}", kind(other))),
    }
}

fn optional_bool(fields: &Map<String, Value>, key: &str) -> Result<Option<bool>, String> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(other) => Err(format!(
            "\"{key}\" must be true or false, not {}",
            kind(other)
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The one-line reason out of the regex crate's multi-line error text.
fn regex_reason(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .find_map(|line| line.trim().strip_prefix("error: "))
        .map(str::to_owned)
        .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(value: Value) -> Result<ProxyRules, RuleError> {
        ProxyRules::compile(value.as_array().unwrap())
    }

    #[test]
    fn first_matching_rule_wins_and_rewrites_use_groups() {
        let compiled = rules(json!([
            {"pattern": "^/api/(?<v>v\\d)/(.*)$", "target": "http://a:1/base", "rewrite": "/$v/x/$2"},
            {"pattern": "^/api", "target": "http://b:2", "rewrite": ""},
            {"pattern": "^/static/", "target": "https://c"},
        ]))
        .unwrap();
        assert_eq!(
            compiled.find("/api/v2/users/7").unwrap().target,
            "http://a:1/base/v2/x/users/7"
        );
        assert_eq!(
            compiled.find("/api/users").unwrap().target,
            "http://b:2/users"
        );
        assert_eq!(compiled.find("/api").unwrap().target, "http://b:2/");
        assert_eq!(
            compiled.find("/static/a%20b.css").unwrap().target,
            "https://c/static/a%20b.css"
        );
        assert!(compiled.find("/other").is_none());
    }

    #[test]
    fn defaults_are_secure_websocket_enabled_and_host_kept() {
        let compiled = rules(json!([{"pattern": "^/", "target": "http://a"}])).unwrap();
        let matched = compiled.find("/").unwrap();
        assert!(matched.rule.secure && matched.rule.ws && !matched.rule.change_origin);
    }

    #[test]
    fn bad_rules_name_what_is_wrong() {
        let cases = [
            (
                json!([{"pattern": "(", "target": "http://a"}]),
                "pattern \"(\" is not a valid regular expression: unclosed group",
            ),
            (json!([{"target": "http://a"}]), "\"pattern\" is missing"),
            (
                json!([{"pattern": "", "target": "http://a"}]),
                "\"pattern\" is empty",
            ),
            (json!([{"pattern": "^/"}]), "\"target\" is missing"),
            (
                json!([{"pattern": "^/", "target": "http://a", "ws": "yes"}]),
                "\"ws\" must be true or false, not a string",
            ),
            (
                json!([{"pattern": "^/", "target": "http://a", "changeorigin": true}]),
                "unknown key \"changeorigin\"",
            ),
            (
                json!([{"pattern": "^/", "target": "http://a", "headers": {"x": 1}}]),
                "header \"x\" must be a string",
            ),
            (
                json!([{"pattern": "^/", "target": "http://a", "headers": {"bad name": "v"}}]),
                "not a valid HTTP header name",
            ),
            (
                json!([{"pattern": "^/", "target": "${PROXY_RULES_TEST_UNSET}"}]),
                "environment variable PROXY_RULES_TEST_UNSET is not set",
            ),
            (
                json!([{"pattern": "^/(a)", "target": "http://a", "rewrite": "/$2"}]),
                "rewrite refers to group $2",
            ),
            (json!(["^/"]), "must be an object"),
        ];
        for (value, expected) in cases {
            let error = rules(value.clone()).unwrap_err();
            assert_eq!(error.index, 0);
            assert!(error.reason.contains(expected), "{value}: {}", error.reason);
        }
        let error =
            rules(json!([{"pattern": "^/", "target": "http://a"}, {"pattern": "["}])).unwrap_err();
        assert_eq!(error.index, 1);
    }
}

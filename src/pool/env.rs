//! The environment a child starts with: a small inherited base, never the
//! supervisor's secrets, plus the app's own `env`.

use std::collections::BTreeMap;

use regex::RegexSet;

/// Variables every child inherits from the supervisor when set.
const BASE_NAMES: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "NODE_ENV",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

/// Names that look like credentials; never inherited.
const SENSITIVE_PATTERNS: &[&str] = &[
    r"^(DATABASE|DB)_",
    r"^(API|AUTH|SECRET|PRIVATE)_?KEY",
    r"_TOKEN$",
    r"_SECRET$",
    r"_PASSWORD$",
    r"^AWS_",
    r"^GITHUB_",
    r"^OPENAI_",
    r"^ANTHROPIC_",
    r"^STRIPE_",
];

/// The inherited part of every child's environment, computed once at start.
#[derive(Debug, Clone, Default)]
pub struct InheritedEnv {
    vars: Vec<(String, String)>,
}

impl InheritedEnv {
    /// Picks the base variables and the operator's `pass_through` names out of
    /// `supervisor_env`. Returns the names dropped because they look sensitive.
    pub fn from_env(
        supervisor_env: impl IntoIterator<Item = (String, String)>,
        pass_through: &[String],
    ) -> (Self, Vec<String>) {
        let sensitive = sensitive_patterns();
        let mut vars = Vec::new();
        let mut dropped = Vec::new();
        for (name, value) in supervisor_env {
            let wanted = BASE_NAMES.contains(&name.as_str())
                || name.starts_with("LC_")
                || pass_through.iter().any(|pass| pass == &name);
            if !wanted {
                continue;
            }
            if sensitive.is_match(&name) {
                dropped.push(name);
                continue;
            }
            vars.push((name, value));
        }
        vars.sort();
        dropped.sort();
        (InheritedEnv { vars }, dropped)
    }

    /// The full environment for one child: inherited base, then the app's `env`,
    /// then the supervisor's own variables for the shim.
    pub fn for_child(
        &self,
        app_env: &BTreeMap<String, String>,
        shim_vars: &[(&str, String)],
    ) -> Vec<(String, String)> {
        let mut env: BTreeMap<String, String> = self.vars.iter().cloned().collect();
        for (name, value) in app_env {
            env.insert(name.clone(), value.clone());
        }
        for (name, value) in shim_vars {
            env.insert((*name).to_owned(), value.clone());
        }
        env.into_iter().collect()
    }
}

fn sensitive_patterns() -> RegexSet {
    // The patterns are constants tested below; an empty set is the safe fallback.
    RegexSet::new(SENSITIVE_PATTERNS).unwrap_or_else(|_| RegexSet::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_the_base_and_pass_through_names_are_inherited() {
        let (inherited, dropped) = InheritedEnv::from_env(
            env(&[
                ("PATH", "/bin"),
                ("LC_ALL", "C"),
                ("CUSTOM", "x"),
                ("OTHER", "y"),
            ]),
            &["CUSTOM".to_owned()],
        );
        let names: Vec<_> = inherited.vars.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["CUSTOM", "LC_ALL", "PATH"]);
        assert!(dropped.is_empty());
    }

    #[test]
    fn sensitive_names_are_dropped_and_reported() {
        let names = [
            "DATABASE_URL",
            "DB_HOST",
            "API_KEY",
            "APIKEY",
            "SECRET_KEY",
            "PRIVATE_KEY",
            "SLACK_TOKEN",
            "APP_SECRET",
            "ROOT_PASSWORD",
            "AWS_REGION",
            "GITHUB_SHA",
            "OPENAI_ORG",
            "ANTHROPIC_BASE",
            "STRIPE_MODE",
        ];
        let pass: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let pairs: Vec<(String, String)> = pass.iter().map(|n| (n.clone(), "v".into())).collect();
        let (inherited, dropped) = InheritedEnv::from_env(pairs, &pass);
        assert!(inherited.vars.is_empty(), "{:?}", inherited.vars);
        assert_eq!(dropped.len(), names.len());
    }

    #[test]
    fn app_env_and_shim_vars_win_over_inherited_ones() {
        let (inherited, _) = InheritedEnv::from_env(env(&[("TZ", "UTC")]), &[]);
        let app: BTreeMap<String, String> = [("TZ".to_owned(), "Europe/Paris".to_owned())].into();
        let all = inherited.for_child(&app, &[("BUNTIME_APP", "a@1".into())]);
        assert!(all.contains(&("TZ".into(), "Europe/Paris".into())));
        assert!(all.contains(&("BUNTIME_APP".into(), "a@1".into())));
    }
}

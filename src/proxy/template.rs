//! The two kinds of `$` templates in proxy rules: `${ENV_VAR}` placeholders filled in
//! from the supervisor's environment when a rule is compiled, and `rewrite`
//! replacements filled in from the pattern's capture groups on every match.

use regex::Regex;

/// Replaces every `${NAME}` (NAME = letters, digits and `_`, not starting with a
/// digit) with the value of that variable in the supervisor's environment.
///
/// Other `$` signs are left alone, so a literal `$` needs no escaping. An unset or
/// non-UTF-8 variable is an error naming it: a rule that silently pointed at
/// `http://` + nothing would fail much later and far less clearly.
pub fn expand_env(text: &str) -> Result<String, String> {
    expand_env_with(text, |name| match std::env::var(name) {
        Ok(value) => Ok(value),
        Err(std::env::VarError::NotPresent) => {
            Err(format!("environment variable {name} is not set"))
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("environment variable {name} is not valid UTF-8"))
        }
    })
}

/// [`expand_env`] with the variable lookup passed in (for tests).
fn expand_env_with(
    text: &str,
    lookup: impl Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        match after.find('}') {
            Some(end) if is_identifier(&after[..end]) => {
                out.push_str(&lookup(&after[..end])?);
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(first) if first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Turns a `rewrite` value into the braced form of the regex crate's
/// `Captures::expand`, so groups end where a reader (and JavaScript) expects:
/// `$1a` is group 1 then `a`, `$<name>` (JavaScript's spelling) is `${name}`,
/// `$$` is a literal `$`, and a `$` followed by nothing usable stays literal.
///
/// Every group the template names must exist in `pattern`; a typo in a group name
/// would otherwise silently turn into an empty string.
pub fn compile_rewrite(template: &str, pattern: &Regex) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 8);
    let mut chars = template.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let rest = &template[at + 1..];
        let (group, consumed) = if rest.starts_with('$') {
            out.push_str("$$");
            chars.next();
            continue;
        } else if let Some(inner) = rest.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else if let Some(inner) = rest.strip_prefix('<') {
            match inner.find('>') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else if rest.starts_with(|c: char| c.is_ascii_digit()) {
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            (&rest[..end], end)
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], end)
        };
        if group.is_empty() {
            // A lone `$`: literal.
            out.push_str("$$");
            continue;
        }
        check_group(group, pattern)?;
        out.push_str("${");
        out.push_str(group);
        out.push('}');
        for _ in 0..consumed {
            // `consumed` counts bytes; every byte here is ASCII, so chars too.
            chars.next();
        }
    }
    Ok(out)
}

fn check_group(group: &str, pattern: &Regex) -> Result<(), String> {
    if let Ok(number) = group.parse::<usize>() {
        let available = pattern.captures_len() - 1;
        if number > available {
            return Err(format!(
                "rewrite refers to group ${number} but the pattern has {available} group{}",
                if available == 1 { "" } else { "s" }
            ));
        }
        return Ok(());
    }
    if !group.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "rewrite has an invalid group reference \"{group}\""
        ));
    }
    if pattern.capture_names().flatten().any(|name| name == group) {
        Ok(())
    } else {
        Err(format!(
            "rewrite refers to group \"{group}\" but the pattern has no group of that name"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Result<String, String> {
        match name {
            "HOST" => Ok("example.test".into()),
            _ => Err(format!("environment variable {name} is not set")),
        }
    }

    #[test]
    fn env_placeholders_are_filled_and_other_dollars_kept() {
        assert_eq!(
            expand_env_with("http://${HOST}:80/$x/${ not}", env).unwrap(),
            "http://example.test:80/$x/${ not}"
        );
        assert_eq!(
            expand_env_with("${MISSING}", env).unwrap_err(),
            "environment variable MISSING is not set"
        );
    }

    #[test]
    fn rewrite_templates_use_braced_groups() {
        let pattern = Regex::new(r"^/api/(?<version>v\d)/(.*)$").unwrap();
        assert_eq!(
            compile_rewrite("/$version/$2a/$<version>/${1}$$/$", &pattern).unwrap(),
            "/${version}/${2}a/${version}/${1}$$/$$"
        );
        assert!(compile_rewrite("/$3", &pattern)
            .unwrap_err()
            .contains("has 2 groups"));
        assert!(compile_rewrite("/$nope", &pattern)
            .unwrap_err()
            .contains("\"nope\""));
    }
}

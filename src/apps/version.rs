//! npm-style version ranges over the version directories of an app.

use semver::{Version, VersionReq};

/// A version range as npm reads it (`1`, `1.4`, `^1.2.0`, `~1.4.0`, `1.0.0`,
/// `>=1 <2`, `1.0.0 - 1.5.0`, `a || b`).
#[derive(Debug, Clone)]
pub struct NpmRange {
    alternatives: Vec<VersionReq>,
}

impl NpmRange {
    /// Parses a range; `None` when it is not one npm would accept.
    pub fn parse(text: &str) -> Option<Self> {
        let mut alternatives = Vec::new();
        for alternative in text.split("||") {
            let requirement = translate(alternative.trim())?;
            alternatives.push(VersionReq::parse(&requirement).ok()?);
        }
        Some(NpmRange { alternatives })
    }

    /// Whether `version` is in the range.
    pub fn matches(&self, version: &Version) -> bool {
        self.alternatives.iter().any(|req| req.matches(version))
    }
}

/// Reads a version directory name (`1.2.3` or `v1.2.3`).
pub fn parse_version(text: &str) -> Option<Version> {
    Version::parse(text.strip_prefix('v').unwrap_or(text)).ok()
}

/// Rewrites one npm comparator set into the `semver` crate's syntax: partial
/// versions become explicit bounds and a bare full version means exactly it.
fn translate(set: &str) -> Option<String> {
    if set.is_empty() || set == "*" || set == "x" || set == "X" {
        return Some("*".to_owned());
    }
    let tokens: Vec<&str> = set.split_whitespace().collect();
    if tokens.len() == 3 && tokens[1] == "-" {
        let (major, minor, patch) = partial(tokens[0])?;
        let low = format!(
            ">={major}.{}.{}",
            minor.unwrap_or(0),
            patch.unwrap_or_else(|| "0".to_owned())
        );
        let high = match partial(tokens[2])? {
            (major, Some(minor), Some(patch)) => format!("<={major}.{minor}.{patch}"),
            (major, Some(minor), None) => format!("<{major}.{}.0", minor.checked_add(1)?),
            (major, None, _) => format!("<{}.0.0", major.checked_add(1)?),
        };
        return Some(format!("{low}, {high}"));
    }
    let mut parts = Vec::new();
    for token in tokens {
        let operator_len = token
            .find(|c: char| c.is_ascii_digit() || c == 'v')
            .unwrap_or(token.len());
        let (operator, version) = token.split_at(operator_len);
        let version = version.strip_prefix('v').unwrap_or(version);
        if operator.is_empty() {
            let (low, high) = partial_bounds(version)?;
            parts.push(match high {
                Some(high) => format!("{low}, {high}"),
                None => low,
            });
        } else {
            parts.push(format!("{operator}{version}"));
        }
    }
    Some(parts.join(", "))
}

fn partial(text: &str) -> Option<(u64, Option<u64>, Option<String>)> {
    let text = text.strip_prefix('v').unwrap_or(text);
    let mut pieces = text.splitn(3, '.');
    let wild = |piece: &str| matches!(piece, "x" | "X" | "*");
    let major = pieces.next()?.parse().ok()?;
    let minor = match pieces.next() {
        None => None,
        Some(piece) if wild(piece) => None,
        Some(piece) => Some(piece.parse().ok()?),
    };
    let patch = match (minor, pieces.next()) {
        (None, _) | (_, None) => None,
        (_, Some(piece)) if wild(piece) => None,
        (_, Some(piece)) => Some(piece.to_owned()),
    };
    Some((major, minor, patch))
}

/// The lower bound and, for partial versions, the exclusive upper bound.
fn partial_bounds(text: &str) -> Option<(String, Option<String>)> {
    Some(match partial(text)? {
        (major, Some(minor), Some(patch)) => (format!("={major}.{minor}.{patch}"), None),
        (major, Some(minor), None) => (
            format!(">={major}.{minor}.0"),
            Some(format!("<{major}.{}.0", minor.checked_add(1)?)),
        ),
        (major, None, _) => (
            format!(">={major}.0.0"),
            Some(format!("<{}.0.0", major.checked_add(1)?)),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(range: &str, version: &str) -> bool {
        NpmRange::parse(range)
            .unwrap()
            .matches(&parse_version(version).unwrap())
    }

    #[test]
    fn partial_versions_read_as_npm_reads_them() {
        assert!(matches("1", "1.9.0"));
        assert!(!matches("1", "2.0.0"));
        assert!(matches("1.4", "1.4.7"));
        assert!(!matches("1.4", "1.5.0"), "npm reads 1.4 as 1.4.x, not ^1.4");
        assert!(matches("1.x", "1.2.0"));
    }

    #[test]
    fn operators_and_exact_versions() {
        assert!(matches("1.0.0", "1.0.0"));
        assert!(!matches("1.0.0", "1.0.1"), "a bare full version is exact");
        assert!(matches("^1.2.0", "1.9.9"));
        assert!(matches("~1.4.0", "1.4.9"));
        assert!(!matches("~1.4.0", "1.5.0"));
        assert!(matches(">=1 <2", "1.5.0"));
        assert!(matches("1.0.0 - 1.5", "1.5.9"));
        assert!(matches("1 || 3", "3.1.0"));
        assert!(matches("v1", "v1.0.0"));
    }

    #[test]
    fn absurd_ranges_from_clients_are_refused_not_panicked_on() {
        for range in [
            "18446744073709551615",
            "1.18446744073709551615",
            "1 - 18446744073709551615.x",
            "%%",
            "^",
            "1.2.3.4.5",
        ] {
            let _ = NpmRange::parse(range);
        }
        assert!(NpmRange::parse("18446744073709551615").is_none());
    }

    #[test]
    fn prereleases_need_an_explicit_prerelease_range() {
        assert!(!matches("1", "1.1.0-beta.1"));
        assert!(matches("1.1.0-beta.1", "1.1.0-beta.1"));
    }
}

//! Finding the `bun` executable: `--bun` / `BUNTIME_BUN`, then `PATH`, then the copy
//! the project's setup installs from the npm package `bun` into `shim/node_modules`.

use std::path::{Path, PathBuf};

/// The Bun version this release is built and tested against.
pub const PINNED_BUN_VERSION: &str = "1.4.5";

/// No usable `bun` was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BunNotFound {
    /// The configured path does not exist or is not executable.
    #[error("bun not found at {0} (from --bun or BUNTIME_BUN)")]
    Configured(PathBuf),
    /// Nothing anywhere.
    #[error("bun not found: install Bun {PINNED_BUN_VERSION} with `npm install --prefix shim` (or `scripts/install-bun`), put it on PATH, or pass --bun /path/to/bun")]
    Missing,
}

/// Finds `bun`; `configured` is the value of `--bun` / `BUNTIME_BUN` if given.
pub fn find_bun(configured: Option<&Path>) -> Result<PathBuf, BunNotFound> {
    if let Some(path) = configured {
        return if is_executable(path) {
            Ok(path.to_path_buf())
        } else {
            Err(BunNotFound::Configured(path.to_path_buf()))
        };
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("bun");
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
    }
    local_installs()
        .into_iter()
        .find(|candidate| is_executable(candidate))
        .ok_or(BunNotFound::Missing)
}

/// The last `count` lines of a `bun` command's output, joined by ` | `, for one log
/// line or error message.
pub(crate) fn last_lines(output: &[u8], count: usize) -> String {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join(" | ")
}

/// Where the project's setup puts Bun: beside the source tree the binary was built
/// from, and beside the binary itself (for installed copies).
fn local_installs() -> Vec<PathBuf> {
    let mut candidates =
        vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("shim/node_modules/.bin/bun")];
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join("bun"));
            candidates.push(dir.join("node_modules/.bin/bun"));
        }
    }
    candidates
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_keeps_the_end_of_the_output() {
        assert_eq!(last_lines(b"one\ntwo\nthree\n", 2), "two | three");
        assert_eq!(last_lines(b"only", 5), "only");
        assert_eq!(last_lines(b"", 5), "");
    }

    #[test]
    fn the_pinned_version_is_the_one_the_setup_installs() {
        let package =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/shim/package.json"))
                .unwrap();
        let package: serde_json::Value = serde_json::from_str(&package).unwrap();
        assert_eq!(package["devDependencies"]["bun"], PINNED_BUN_VERSION);
    }

    #[test]
    fn a_configured_path_that_is_not_executable_is_refused() {
        let missing = Path::new("/nonexistent/bun");
        assert_eq!(
            find_bun(Some(missing)),
            Err(BunNotFound::Configured(missing.to_path_buf()))
        );
    }
}

//! Which file of an app dir is its entrypoint, and refusing ones outside the dir.

use std::path::{Path, PathBuf};

/// Files tried, in order, when the config names no entrypoint.
const CANDIDATES: &[&str] = &["index.html", "index.ts", "index.js", "index.mjs"];

/// How an app is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entrypoint {
    /// A JavaScript or TypeScript module run in a `bun` child.
    Module(PathBuf),
    /// A static site served from disk, with this HTML file as the SPA fallback.
    Static(PathBuf),
}

/// An entrypoint that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntrypointError {
    /// No candidate file exists.
    #[error("no entrypoint in {0}: add index.ts, index.js, index.mjs or index.html, or set \"entrypoint\" in worker.jsonc")]
    Missing(PathBuf),
    /// The configured file does not exist.
    #[error("entrypoint {0} does not exist")]
    NotFound(PathBuf),
    /// The configured file resolves outside the app dir.
    #[error("entrypoint {entry:?} resolves outside the app dir {dir}")]
    Escapes {
        /// As configured.
        entry: String,
        /// The app dir.
        dir: PathBuf,
    },
}

/// Finds the entrypoint of the app in `app_dir`, given the configured one if any.
pub fn resolve(app_dir: &Path, configured: Option<&str>) -> Result<Entrypoint, EntrypointError> {
    let root = app_dir
        .canonicalize()
        .map_err(|_| EntrypointError::Missing(app_dir.to_path_buf()))?;
    let path = match configured {
        Some(entry) => {
            let escapes = || EntrypointError::Escapes {
                entry: entry.to_owned(),
                dir: app_dir.to_path_buf(),
            };
            if Path::new(entry).is_absolute() {
                return Err(escapes());
            }
            let joined = root.join(entry);
            let real = joined
                .canonicalize()
                .map_err(|_| EntrypointError::NotFound(joined.clone()))?;
            if !real.starts_with(&root) {
                return Err(escapes());
            }
            real
        }
        None => CANDIDATES
            .iter()
            .map(|name| root.join(name))
            .find_map(|candidate| {
                let real = candidate.canonicalize().ok()?;
                (real.starts_with(&root) && real.is_file()).then_some(real)
            })
            .ok_or_else(|| EntrypointError::Missing(app_dir.to_path_buf()))?,
    };
    let is_html = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("html") || ext.eq_ignore_ascii_case("htm"));
    Ok(if is_html {
        Entrypoint::Static(path)
    } else {
        Entrypoint::Module(path)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_tried_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.js"), "").unwrap();
        std::fs::write(dir.path().join("index.ts"), "").unwrap();
        let found = resolve(dir.path(), None).unwrap();
        assert!(matches!(found, Entrypoint::Module(path) if path.ends_with("index.ts")));
        std::fs::write(dir.path().join("index.html"), "").unwrap();
        assert!(matches!(
            resolve(dir.path(), None).unwrap(),
            Entrypoint::Static(_)
        ));
    }

    #[test]
    fn entrypoints_outside_the_dir_are_refused() {
        let outer = tempfile::tempdir().unwrap();
        let app = outer.path().join("app");
        std::fs::create_dir(&app).unwrap();
        std::fs::write(outer.path().join("secret.ts"), "").unwrap();
        std::os::unix::fs::symlink(outer.path().join("secret.ts"), app.join("link.ts")).unwrap();
        for entry in ["../secret.ts", "/etc/passwd", "link.ts"] {
            assert!(
                matches!(
                    resolve(&app, Some(entry)),
                    Err(EntrypointError::Escapes { .. })
                ),
                "{entry}"
            );
        }
        assert!(matches!(
            resolve(&app, None),
            Err(EntrypointError::Missing(_))
        ));
    }
}

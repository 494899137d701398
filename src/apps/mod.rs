//! Apps on disk: discovery over the app dirs, version resolution and entrypoints.
//!
//! Layouts: flat `name@1.2.3/`, nested `name/1.2.3/`, a `latest` dir in either form
//! (`name@latest/`, `name/latest/`), scoped names (`@scope/name@1.0.0/`,
//! `@scope/name/1.0.0/`), and a plain `name/` dir holding the app itself, which is
//! served as its only, unversioned release.

pub mod archive;
mod entrypoint;
mod setup;
mod version;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use semver::Version;
use tokio::time::Instant;

pub use entrypoint::{resolve as resolve_entrypoint, Entrypoint, EntrypointError};
pub use setup::{ReleaseSetup, SetupCache, SetupError};
pub use version::{parse_version, NpmRange};

/// How long a resolved route is trusted before the app dirs are read again.
const RESOLUTION_TTL: Duration = Duration::from_secs(1);

/// One release of an app: a directory with an entrypoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AppRelease {
    /// The app name, with its scope if it has one.
    pub name: String,
    /// The version dir name (`1.2.3`, `latest`), or `latest` for a plain app dir.
    pub version: String,
    /// The directory holding the release.
    pub dir: PathBuf,
}

impl AppRelease {
    /// `name@version`, as logs and metrics show it.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// What per-request maps key a release by: its dir's bytes. Hashing the `Path`
    /// itself walks its components, which costs more than the rest of the lookup.
    pub fn key(&self) -> &OsStr {
        self.dir.as_os_str()
    }
}

/// Why no release answers a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No app of that name in any app dir.
    #[error("no app named {0:?}")]
    UnknownApp(String),
    /// The app exists but no version matches.
    #[error("app {name:?} has no version matching {range:?}")]
    NoMatch {
        /// The app.
        name: String,
        /// The requested range.
        range: String,
    },
    /// The range is not a valid npm range.
    #[error("{0:?} is not a valid version range")]
    BadRange(String),
    /// Two directories provide the same release.
    #[error(transparent)]
    Collision(Collision),
}

/// Two directories that provide the same `name@version`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{app} is provided by both {} and {}; remove one", first.display(), second.display())]
pub struct Collision {
    /// `name@version`.
    pub app: String,
    /// The first directory found.
    pub first: PathBuf,
    /// The other one.
    pub second: PathBuf,
}

/// Resolved releases of one app by the range asked for, with when they were resolved.
type ResolvedRanges = HashMap<String, (Instant, Arc<AppRelease>)>;

/// Finds app releases in the app dirs and caches what it found for a second.
pub struct AppCatalog {
    app_dirs: Vec<PathBuf>,
    /// Resolved releases by app name, then by the range asked for, with when they
    /// were resolved. Two levels so a lookup borrows the request's strings.
    cache: RwLock<HashMap<String, ResolvedRanges>>,
    /// Configs and entrypoints of releases.
    setups: SetupCache,
}

impl AppCatalog {
    /// A catalog over the given app dirs, searched in order.
    pub fn new(app_dirs: Vec<PathBuf>) -> Self {
        AppCatalog {
            app_dirs,
            cache: RwLock::new(HashMap::new()),
            setups: SetupCache::default(),
        }
    }

    /// The config and entrypoint of a release.
    pub fn setup(&self, release: &AppRelease) -> Result<Arc<ReleaseSetup>, SetupError> {
        self.setups.get(release)
    }

    /// Forgets cached resolutions and setups, after apps were added or removed.
    pub fn invalidate(&self) {
        if let Ok(mut cache) = self.cache.write() {
            cache.clear();
        }
        self.setups.clear();
    }

    /// The app dirs searched.
    pub fn app_dirs(&self) -> &[PathBuf] {
        &self.app_dirs
    }

    /// The release that serves `name` for `range` (`None`: the default release).
    pub fn resolve(
        &self,
        name: &str,
        range: Option<&str>,
    ) -> Result<Arc<AppRelease>, ResolveError> {
        let asked = range.unwrap_or("");
        if let Ok(cache) = self.cache.read() {
            if let Some((at, release)) = cache.get(name).and_then(|ranges| ranges.get(asked)) {
                if at.elapsed() < RESOLUTION_TTL {
                    return Ok(release.clone());
                }
            }
        }
        let release = Arc::new(self.resolve_uncached(name, range)?);
        if let Ok(mut cache) = self.cache.write() {
            // Bounded: names and ranges come from request paths.
            if cache.len() > 10_000 {
                cache.clear();
            }
            let ranges = cache.entry(name.to_owned()).or_default();
            if ranges.len() > 100 {
                ranges.clear();
            }
            ranges.insert(asked.to_owned(), (Instant::now(), release.clone()));
        }
        Ok(release)
    }

    fn resolve_uncached(
        &self,
        name: &str,
        range: Option<&str>,
    ) -> Result<AppRelease, ResolveError> {
        let (releases, collisions) = self.scan(&mut Listing::default(), name);
        if let Some(collision) = collisions.into_iter().next() {
            return Err(ResolveError::Collision(collision));
        }
        if releases.is_empty() {
            return Err(ResolveError::UnknownApp(name.to_owned()));
        }
        let no_match = || ResolveError::NoMatch {
            name: name.to_owned(),
            range: range.unwrap_or("latest").to_owned(),
        };
        let latest = releases.iter().find(|release| release.version == "latest");
        let highest = |filter: &dyn Fn(&Version) -> bool| {
            releases
                .iter()
                .filter_map(|release| Some((parse_version(&release.version)?, release)))
                .filter(|(version, _)| filter(version))
                .max_by(|a, b| a.0.cmp(&b.0))
                .map(|(_, release)| release.clone())
        };
        match range {
            None | Some("") => latest
                .cloned()
                .or_else(|| highest(&|version| version.pre.is_empty()))
                .or_else(|| highest(&|_| true))
                .ok_or_else(no_match),
            Some("latest") => latest.cloned().ok_or_else(no_match),
            Some(text) => {
                let npm_range =
                    NpmRange::parse(text).ok_or_else(|| ResolveError::BadRange(text.to_owned()))?;
                highest(&|version| npm_range.matches(version)).ok_or_else(no_match)
            }
        }
    }

    /// Every release of `name` in the app dirs. Two dirs providing the same version
    /// are not resolved between: the first is listed and the clash is reported.
    pub fn releases_of(&self, name: &str) -> Vec<AppRelease> {
        self.scan(&mut Listing::default(), name).0
    }

    /// Every `name@version` provided by more than one directory.
    pub fn collisions(&self) -> Vec<Collision> {
        // One listing for the whole pass: each dir is read once, not once per app.
        let mut listing = Listing::default();
        self.names_in(&mut listing)
            .iter()
            .flat_map(|name| self.scan(&mut listing, name).1)
            .collect()
    }

    fn scan(&self, listing: &mut Listing, name: &str) -> (Vec<AppRelease>, Vec<Collision>) {
        let mut releases: Vec<AppRelease> = Vec::new();
        let mut collisions = Vec::new();
        let mut push = |release: AppRelease| match releases
            .iter()
            .find(|known| known.version == release.version)
        {
            Some(known) => collisions.push(Collision {
                app: release.label(),
                first: known.dir.clone(),
                second: release.dir,
            }),
            None => releases.push(release),
        };
        for app_dir in &self.app_dirs {
            let (parent, base) = match name.split_once('/') {
                Some((scope, base)) => (app_dir.join(scope), base),
                None => (app_dir.clone(), name),
            };
            let entries = listing.read(&parent);
            let prefix = format!("{base}@");
            let mut flat: Vec<_> = entries
                .iter()
                .filter_map(|entry| {
                    let version = entry.name.strip_prefix(&prefix)?;
                    (entry.is_dir && !version.is_empty())
                        .then(|| (version.to_owned(), entry.path.clone()))
                })
                .collect();
            flat.sort();
            for (version, dir) in flat {
                push(AppRelease {
                    name: name.to_owned(),
                    version,
                    dir,
                });
            }
            let nested = parent.join(base);
            let nested_is_dir = entries
                .iter()
                .any(|entry| entry.is_dir && entry.name == base);
            if nested_is_dir && valid_name(base) {
                let mut versions = version_dirs(listing, &nested);
                versions.sort();
                if versions.is_empty() && looks_like_app(&nested) {
                    push(AppRelease {
                        name: name.to_owned(),
                        version: "latest".to_owned(),
                        dir: nested,
                    });
                } else {
                    for (version, dir) in versions {
                        push(AppRelease {
                            name: name.to_owned(),
                            version,
                            dir,
                        });
                    }
                }
            }
        }
        (releases, collisions)
    }

    /// Names of every app found in the app dirs, sorted.
    pub fn app_names(&self) -> Vec<String> {
        self.names_in(&mut Listing::default())
    }

    fn names_in(&self, listing: &mut Listing) -> Vec<String> {
        let mut names = Vec::new();
        for app_dir in &self.app_dirs {
            collect_names(listing, app_dir, None, &mut names);
        }
        names.sort();
        names.dedup();
        names
    }
}

fn collect_names(listing: &mut Listing, dir: &Path, scope: Option<&str>, names: &mut Vec<String>) {
    for entry in listing.read(dir).iter() {
        let file_name = &entry.name;
        if !entry.is_dir || file_name.starts_with('.') {
            continue;
        }
        if scope.is_none() && file_name.starts_with('@') && !file_name[1..].contains('@') {
            collect_names(listing, &entry.path, Some(file_name), names);
            continue;
        }
        let base = match file_name.rsplit_once('@') {
            Some((base, _)) if !base.is_empty() => base.to_owned(),
            _ => {
                if version_dirs(listing, &entry.path).is_empty() && !looks_like_app(&entry.path) {
                    continue;
                }
                file_name.clone()
            }
        };
        names.push(match scope {
            Some(scope) => format!("{scope}/{base}"),
            None => base,
        });
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains('@')
}

fn version_dirs(listing: &mut Listing, dir: &Path) -> Vec<(String, PathBuf)> {
    listing
        .read(dir)
        .iter()
        .filter(|entry| {
            entry.is_dir && (entry.name == "latest" || parse_version(&entry.name).is_some())
        })
        .map(|entry| (entry.name.clone(), entry.path.clone()))
        .collect()
}

/// Directory listings read once during a pass over the app dirs.
#[derive(Default)]
struct Listing {
    dirs: HashMap<PathBuf, Arc<Vec<ListedEntry>>>,
}

/// A directory entry with a UTF-8 name.
struct ListedEntry {
    name: String,
    path: PathBuf,
    /// A directory, or a symlink to one.
    is_dir: bool,
}

impl Listing {
    /// The entries of `dir`; none when it cannot be read.
    fn read(&mut self, dir: &Path) -> Arc<Vec<ListedEntry>> {
        if let Some(entries) = self.dirs.get(dir) {
            return entries.clone();
        }
        let entries: Vec<ListedEntry> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|entry| {
                        let name = entry.file_name().into_string().ok()?;
                        let path = entry.path();
                        // The entry's type comes with the listing; only symlinks need a stat.
                        let is_dir = match entry.file_type() {
                            Ok(kind) if kind.is_symlink() => path.is_dir(),
                            Ok(kind) => kind.is_dir(),
                            Err(_) => path.is_dir(),
                        };
                        Some(ListedEntry { name, path, is_dir })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let entries = Arc::new(entries);
        self.dirs.insert(dir.to_path_buf(), entries.clone());
        entries
    }
}

fn looks_like_app(dir: &Path) -> bool {
    [
        "worker.jsonc",
        "worker.config.json",
        "index.html",
        "index.ts",
        "index.js",
        "index.mjs",
    ]
    .iter()
    .any(|name| dir.join(name).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(root: &Path, path: &str) {
        let dir = root.join(path);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.ts"), "").unwrap();
    }

    #[test]
    fn flat_nested_scoped_and_latest_layouts_resolve() {
        let root = tempfile::tempdir().unwrap();
        app(root.path(), "flat@1.0.0");
        app(root.path(), "flat@1.4.2");
        app(root.path(), "flat@2.0.0");
        app(root.path(), "nested/1.0.0");
        app(root.path(), "nested/latest");
        app(root.path(), "@team/tool@0.3.0");
        app(root.path(), "plain");
        let catalog = AppCatalog::new(vec![root.path().to_path_buf()]);
        let version = |name: &str, range: Option<&str>| {
            catalog.resolve(name, range).map(|r| r.version.clone())
        };
        assert_eq!(version("flat", None).unwrap(), "2.0.0");
        assert_eq!(version("flat", Some("1")).unwrap(), "1.4.2");
        assert_eq!(version("flat", Some("1.0")).unwrap(), "1.0.0");
        assert_eq!(version("nested", None).unwrap(), "latest");
        assert_eq!(version("nested", Some("1")).unwrap(), "1.0.0");
        assert_eq!(version("@team/tool", None).unwrap(), "0.3.0");
        assert_eq!(version("plain", None).unwrap(), "latest");
        assert!(matches!(
            version("flat", Some("3")),
            Err(ResolveError::NoMatch { .. })
        ));
        assert!(matches!(
            version("missing", None),
            Err(ResolveError::UnknownApp(_))
        ));
        assert_eq!(
            catalog.app_names(),
            vec!["@team/tool", "flat", "nested", "plain"]
        );
    }
}

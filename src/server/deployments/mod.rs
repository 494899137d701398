//! `/_/deployments`: listing, uploading, downloading and deleting app releases.
//!
//! - `GET /_/deployments`: every release in every app dir, with its file count and size.
//! - `POST /_/deployments[?overwrite=true]`: a multipart upload (`file`, and optional
//!   `name` and `version` fields that win over the archive's `package.json`), written
//!   to `{first app dir}/{name}@{version}/`; see [`upload`].
//! - `GET /_/deployments/{name}/{version}/download`: the release as a `.tar.gz`.
//! - `DELETE /_/deployments/{name}/{version}`: that release, in every app dir.
//! - `DELETE /_/deployments/{name}`: every release of the app, in every app dir and
//!   layout.
//!
//! Scoped names take two path segments: `/_/deployments/@team/tool/1.0.0/download`.
//!
//! Routing never sees half an app. An upload is extracted into a dot-named staging
//! dir in the first app dir (dot names are never discovered as apps) and moved into
//! place with one `rename`; an overwrite swaps old and new in one step
//! (`renameat2(RENAME_EXCHANGE)`, two renames where that is missing); a deletion
//! renames the release away before removing its files. After every change the
//! catalog forgets what it had cached, and children of a replaced or removed release
//! are retired: they finish the requests they hold, and the next request starts a
//! child on what is on disk now.

mod download;
mod upload;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use serde_json::{json, Value};

use super::errors::RequestError;
use super::AppState;
use crate::apps::{parse_version, AppCatalog, AppRelease};
use crate::pool::ExitReason;

/// The deployment routes, mounted under `/_/deployments`.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/_/deployments",
            get(list)
                .post(upload::upload)
                .layer(DefaultBodyLimit::max(upload::BODY_LIMIT)),
        )
        .route(
            "/_/deployments/{*rest}",
            get(download::download).delete(delete),
        )
}

/// An app name as the deployments API accepts it: npm-like, lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AppName {
    /// `name` or `@scope/name`.
    full: String,
    /// `@scope`, when scoped.
    scope: Option<String>,
    /// The name without its scope.
    base: String,
}

/// The longest name npm accepts.
const MAX_NAME_LEN: usize = 214;

impl AppName {
    /// Checks a name: lower-case letters, digits, `-`, `_` and `.`, not starting with
    /// `.` or `_`, optionally under one `@scope/`. Nothing else, so the name can never
    /// step out of an app dir.
    fn parse(text: &str) -> Result<AppName, RequestError> {
        let invalid = |why: &str| {
            RequestError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_NAME",
                format!("invalid app name {text:?}: {why}"),
            )
        };
        if text.is_empty() || text.len() > MAX_NAME_LEN {
            return Err(invalid("it must be 1 to 214 characters long"));
        }
        let (scope, base) = match text.strip_prefix('@') {
            Some(rest) => {
                let (scope, base) = rest
                    .split_once('/')
                    .ok_or_else(|| invalid("a scoped name is @scope/name"))?;
                (Some(scope), base)
            }
            None => (None, text),
        };
        for part in scope.into_iter().chain([base]) {
            if part.is_empty() {
                return Err(invalid("an empty part"));
            }
            if part.starts_with('.') || part.starts_with('_') {
                return Err(invalid("a part may not start with `.` or `_`"));
            }
            if !part.bytes().all(|byte| {
                byte.is_ascii_lowercase()
                    || byte.is_ascii_digit()
                    || matches!(byte, b'-' | b'_' | b'.')
            }) {
                return Err(invalid(
                    "only lower-case letters, digits, `-`, `_` and `.` are allowed, with one optional @scope/",
                ));
            }
        }
        Ok(AppName {
            full: text.to_owned(),
            scope: scope.map(|scope| format!("@{scope}")),
            base: base.to_owned(),
        })
    }

    /// The directory flat releases of this app sit in, inside `app_dir`.
    fn parent(&self, app_dir: &Path) -> PathBuf {
        match &self.scope {
            Some(scope) => app_dir.join(scope),
            None => app_dir.to_path_buf(),
        }
    }

    /// The flat release dir name, `name@version`.
    fn release_dir_name(&self, version: &str) -> String {
        format!("{}@{version}", self.base)
    }
}

/// A version for a new release: strict semver (`1.2.3`, `2.0.0-beta.1`) or `latest`.
fn upload_version(text: &str) -> Result<String, RequestError> {
    if text == "latest" || (text.len() <= 256 && semver::Version::parse(text).is_ok()) {
        Ok(text.to_owned())
    } else {
        Err(RequestError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_VERSION",
            format!("invalid version {text:?}: use semver (1.2.3) or `latest`"),
        ))
    }
}

/// A version naming an existing release: as discovery reads dir names (semver with
/// an optional `v`, or `latest`). Such text can never step out of a directory.
fn lookup_version(text: &str) -> Result<&str, RequestError> {
    if text == "latest" || parse_version(text).is_some() {
        Ok(text)
    } else {
        Err(RequestError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_VERSION",
            format!("invalid version {text:?}"),
        ))
    }
}

/// Splits the path after `/_/deployments/` into the app name (one segment, or two
/// for a scoped name) and the segments that follow it.
fn split_target(rest: &str) -> Result<(AppName, Vec<&str>), RequestError> {
    let mut segments = rest.split('/');
    let first = segments.next().unwrap_or_default();
    let name = if first.starts_with('@') {
        let base = segments.next().unwrap_or_default();
        AppName::parse(&format!("{first}/{base}"))?
    } else {
        AppName::parse(first)?
    };
    let segments: Vec<&str> = segments.collect();
    if segments
        .iter()
        .any(|segment| matches!(*segment, "." | ".."))
    {
        return Err(RequestError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_PATH",
            format!("`.` and `..` are not allowed in {rest:?}"),
        ));
    }
    Ok((name, segments))
}

fn unknown_route() -> RequestError {
    RequestError::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "no such deployments route: use /_/deployments/{name}/{version}/download or DELETE /_/deployments/{name}[/{version}]",
    )
}

fn internal(code: &'static str, what: &str, error: impl std::fmt::Display) -> RequestError {
    tracing::error!(%error, "{what}");
    RequestError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        code,
        format!("{what}: {error}"),
    )
}

/// Releases of `name` in one app dir, in every layout discovery knows.
fn releases_in(app_dir: &Path, name: &str) -> Vec<AppRelease> {
    AppCatalog::new(vec![app_dir.to_path_buf()]).releases_of(name)
}

/// Retires the children running any of `dirs`; they finish their requests first.
fn retire_children(state: &AppState, dirs: &[PathBuf]) {
    for worker in state.pool.live_workers() {
        if dirs.contains(&worker.release.dir) {
            worker.retire(ExitReason::Manual);
        }
    }
}

/// A suffix no other staging or trash dir of this process has.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{}-{}-{nanos:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Regular files and their bytes under `dir`; links are not followed.
fn tree_size(dir: &Path) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() {
                files += 1;
                bytes += meta.len();
            }
        }
    }
    (files, bytes)
}

/// `GET /_/deployments`: every release in every app dir, shadowed ones included.
async fn list(State(state): State<Arc<AppState>>) -> Result<Json<Value>, RequestError> {
    let document = tokio::task::spawn_blocking(move || {
        let apps: Vec<Value> = state
            .catalog
            .app_names()
            .into_iter()
            .map(|name| {
                let mut releases: Vec<AppRelease> = state
                    .catalog
                    .app_dirs()
                    .iter()
                    .flat_map(|app_dir| releases_in(app_dir, &name))
                    .collect();
                // Semver order, non-semver (`latest`) last; the sort is stable, so
                // copies of one version keep the app dirs' order.
                releases.sort_by(|a, b| {
                    let (a, b) = (parse_version(&a.version), parse_version(&b.version));
                    match (a, b) {
                        (Some(a), Some(b)) => a.cmp(&b),
                        (a, b) => a.is_none().cmp(&b.is_none()),
                    }
                });
                let versions: Vec<Value> = releases
                    .into_iter()
                    .map(|release| {
                        let (files, bytes) = tree_size(&release.dir);
                        json!({
                            "version": release.version,
                            "dir": release.dir,
                            "files": files,
                            "bytes": bytes,
                        })
                    })
                    .collect();
                json!({"name": name, "versions": versions})
            })
            .collect();
        json!({ "apps": apps })
    })
    .await
    .map_err(|error| internal("LIST_FAILED", "listing the deployments failed", error))?;
    Ok(Json(document))
}

/// `DELETE /_/deployments/{name}[/{version}]`: removes the release (or every release
/// of the app) from every app dir.
async fn delete(
    State(state): State<Arc<AppState>>,
    UrlPath(rest): UrlPath<String>,
) -> Result<Json<Value>, RequestError> {
    let (name, segments) = split_target(&rest)?;
    let version = match segments.as_slice() {
        [] => None,
        [version] => Some(lookup_version(version)?.to_owned()),
        _ => return Err(unknown_route()),
    };
    tokio::task::spawn_blocking(move || remove_releases(&state, &name, version.as_deref()))
        .await
        .map_err(|error| internal("DELETE_FAILED", "deleting failed", error))?
}

fn remove_releases(
    state: &AppState,
    name: &AppName,
    version: Option<&str>,
) -> Result<Json<Value>, RequestError> {
    let mut removed: Vec<AppRelease> = Vec::new();
    let mut trash: Vec<PathBuf> = Vec::new();
    let mut failure = None;
    for app_dir in state.catalog.app_dirs() {
        for release in releases_in(app_dir, &name.full) {
            if version.is_some_and(|version| version != release.version) {
                continue;
            }
            // Out of sight in one step, then removed at leisure.
            let Some(file_name) = release.dir.file_name() else {
                continue;
            };
            let away = release.dir.with_file_name(format!(
                ".{}.deleted-{}",
                file_name.to_string_lossy(),
                unique_suffix()
            ));
            match std::fs::rename(&release.dir, &away) {
                Ok(()) => {
                    trash.push(away);
                    removed.push(release);
                }
                Err(error) => failure = Some((release.dir.clone(), error)),
            }
        }
    }
    if !removed.is_empty() {
        state.catalog.invalidate();
        let dirs: Vec<PathBuf> = removed.iter().map(|release| release.dir.clone()).collect();
        retire_children(state, &dirs);
        for release in &removed {
            tracing::info!(
                app = %release.name,
                version = %release.version,
                action = "delete",
                dir = %release.dir.display(),
                "deployment deleted"
            );
        }
    }
    for dir in trash {
        if let Err(error) = remove_path(&dir) {
            tracing::warn!(dir = %dir.display(), %error, "could not remove a deleted release's files");
        }
    }
    // Containers the app leaves empty go too (never anything with files in it).
    for app_dir in state.catalog.app_dirs() {
        let parent = name.parent(app_dir);
        let _ = std::fs::remove_dir(parent.join(&name.base));
        if name.scope.is_some() {
            let _ = std::fs::remove_dir(&parent);
        }
    }
    if let Some((dir, error)) = failure {
        return Err(internal(
            "DELETE_FAILED",
            &format!("could not remove {}", dir.display()),
            error,
        ));
    }
    if removed.is_empty() {
        let what = match version {
            Some(version) => format!("{}@{version}", name.full),
            None => name.full.clone(),
        };
        return Err(RequestError::new(
            StatusCode::NOT_FOUND,
            "RELEASE_NOT_FOUND",
            format!("no release {what} in the app dirs"),
        ));
    }
    let deleted: Vec<&Path> = removed
        .iter()
        .map(|release| release.dir.as_path())
        .collect();
    Ok(Json(json!({ "deleted": deleted })))
}

/// Removes a directory tree, or the link or file at `path`, never following links.
fn remove_path(path: &Path) -> io::Result<()> {
    if std::fs::symlink_metadata(path)?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_npm_like_names() {
        for name in [
            "hello",
            "my-app",
            "a.b_c",
            "x1",
            "@team/tool",
            "@my-org/app.v2",
        ] {
            assert!(AppName::parse(name).is_ok(), "{name}");
        }
        let scoped = AppName::parse("@team/tool").unwrap();
        assert_eq!(scoped.scope.as_deref(), Some("@team"));
        assert_eq!(scoped.base, "tool");
        assert_eq!(
            scoped.parent(Path::new("/apps")),
            PathBuf::from("/apps/@team")
        );
        assert_eq!(scoped.release_dir_name("1.0.0"), "tool@1.0.0");
    }

    #[test]
    fn refuses_names_that_could_escape_or_are_not_npm_like() {
        for name in [
            "",
            "..",
            ".",
            "../evil",
            "a/b",
            "@team",
            "@team/",
            "@/x",
            "@team/a/b",
            "@../x",
            "Hello",
            "a b",
            "a@1",
            "_private",
            ".hidden",
            "a\\b",
            "@team/..",
        ] {
            assert!(AppName::parse(name).is_err(), "{name:?} accepted");
        }
        assert!(AppName::parse(&"a".repeat(215)).is_err());
    }

    #[test]
    fn versions_for_uploads_are_strict_semver_or_latest() {
        for version in ["1.0.0", "2.0.0-beta.1", "1.2.3+build.5", "latest"] {
            assert!(upload_version(version).is_ok(), "{version}");
        }
        for version in ["1", "1.0", "v1.0.0", "../1.0.0", "", "1.0.0/..", "next"] {
            assert!(upload_version(version).is_err(), "{version:?} accepted");
        }
        assert!(lookup_version("v1.0.0").is_ok());
        assert!(lookup_version("..").is_err());
    }

    #[test]
    fn splits_plain_and_scoped_targets() {
        let (name, rest) = split_target("hello/1.0.0/download").unwrap();
        assert_eq!(
            (name.full.as_str(), rest),
            ("hello", vec!["1.0.0", "download"])
        );
        let (name, rest) = split_target("@team/tool/1.0.0").unwrap();
        assert_eq!((name.full.as_str(), rest), ("@team/tool", vec!["1.0.0"]));
        let (name, rest) = split_target("hello").unwrap();
        assert_eq!((name.full.as_str(), rest.len()), ("hello", 0));
        assert!(split_target("../etc").is_err());
        assert!(split_target("@team").is_err());
        assert!(split_target("hello/../..").is_err());
    }
}

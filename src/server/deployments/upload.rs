//! `POST /_/deployments`: a release from an uploaded archive.
//!
//! The multipart body is read field by field: `file` streams to a staging dir in the
//! first app dir (and is refused past [`MAX_UPLOAD_BYTES`] while it arrives), `name`
//! and `version` are short text fields. The archive is then checked and extracted on
//! a blocking thread by [`crate::apps::archive`], which refuses unsafe entries and
//! bombs; the app's `package.json` names the release unless the fields do. Only then
//! does the release appear, with one rename (or one exchange, with `?overwrite=true`).
//! A refused or failed upload leaves nothing behind: the staging dir goes with it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::{Multipart, RawQuery, State};
use axum::Json;
use http::StatusCode;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::{internal, retire_children, unique_suffix, upload_version, AppName, AppState};
use crate::apps::archive::{self, ArchiveError, Limits};
use crate::server::errors::RequestError;

/// Largest archive accepted, compressed: 100 MiB.
pub(super) const MAX_UPLOAD_BYTES: u64 = 100 * 1024 * 1024;

/// Largest request body: the archive plus room for the multipart framing and the
/// text fields.
pub(super) const BODY_LIMIT: usize = MAX_UPLOAD_BYTES as usize + 1024 * 1024;

/// Largest `name` or `version` field.
const MAX_TEXT_FIELD: usize = 1024;

/// What the form held besides the archive, which is on disk by then.
struct Form {
    name: Option<AppName>,
    version: Option<String>,
}

/// `POST /_/deployments[?overwrite=true]`: deploys the uploaded archive.
pub(super) async fn upload(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Value>), RequestError> {
    let overwrite = overwrite_flag(query.as_deref())?;
    let mut multipart = multipart.map_err(|rejection| {
        RequestError::new(
            StatusCode::BAD_REQUEST,
            "BAD_UPLOAD",
            format!(
                "expected a multipart/form-data body with a `file` field: {}",
                rejection.body_text()
            ),
        )
    })?;
    let app_dir = state.catalog.app_dirs().first().cloned().ok_or_else(|| {
        RequestError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "NO_APP_DIR",
            "no app dir is configured",
        )
    })?;
    let staging = Staging::create(&app_dir)
        .await
        .map_err(|error| internal("DEPLOY_FAILED", "could not create a staging dir", error))?;
    let form = read_form(&mut multipart, &staging.archive()).await?;
    tokio::task::spawn_blocking(move || install(&state, staging, &app_dir, form, overwrite))
        .await
        .map_err(|error| internal("DEPLOY_FAILED", "deploying failed", error))?
}

/// `?overwrite=true` (also `1` or bare); absent or `false` means no.
fn overwrite_flag(query: Option<&str>) -> Result<bool, RequestError> {
    let mut overwrite = false;
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, "true"));
        if key == "overwrite" {
            overwrite = match value {
                "true" | "1" | "" => true,
                "false" | "0" => false,
                _ => {
                    return Err(RequestError::new(
                        StatusCode::BAD_REQUEST,
                        "BAD_QUERY",
                        format!("overwrite must be true or false, not {value:?}"),
                    ))
                }
            };
        }
    }
    Ok(overwrite)
}

fn multipart_error(error: MultipartError) -> RequestError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        RequestError::new(
            StatusCode::BAD_REQUEST,
            "BAD_UPLOAD",
            format!("unreadable multipart body: {}", error.body_text()),
        )
    }
}

fn too_large() -> RequestError {
    RequestError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "UPLOAD_TOO_LARGE",
        format!("the upload is larger than {MAX_UPLOAD_BYTES} bytes"),
    )
}

/// Reads every field: the archive to `archive_path`, the text fields into the form.
async fn read_form(multipart: &mut Multipart, archive_path: &Path) -> Result<Form, RequestError> {
    let mut form = Form {
        name: None,
        version: None,
    };
    let mut have_file = false;
    let mut received: u64 = 0;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name().unwrap_or_default() {
            "file" => {
                if have_file {
                    return Err(RequestError::new(
                        StatusCode::BAD_REQUEST,
                        "BAD_UPLOAD",
                        "more than one `file` field",
                    ));
                }
                have_file = true;
                let write_failed = |error: io::Error| {
                    internal("DEPLOY_FAILED", "could not store the upload", error)
                };
                let mut out = tokio::fs::File::create(archive_path)
                    .await
                    .map_err(write_failed)?;
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    received += chunk.len() as u64;
                    if received > MAX_UPLOAD_BYTES {
                        return Err(too_large());
                    }
                    out.write_all(&chunk).await.map_err(write_failed)?;
                }
                out.flush().await.map_err(write_failed)?;
            }
            "name" => {
                form.name = match text_field(field).await? {
                    Some(name) => Some(AppName::parse(&name)?),
                    None => None,
                }
            }
            "version" => {
                form.version = match text_field(field).await? {
                    Some(version) => Some(upload_version(&version)?),
                    None => None,
                }
            }
            _ => {
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    received += chunk.len() as u64;
                    if received > MAX_UPLOAD_BYTES {
                        return Err(too_large());
                    }
                }
            }
        }
    }
    if !have_file {
        return Err(RequestError::new(
            StatusCode::BAD_REQUEST,
            "MISSING_FILE",
            "the form has no `file` field holding the archive",
        ));
    }
    Ok(form)
}

/// A short text field, trimmed; `None` when empty.
async fn text_field(
    mut field: axum::extract::multipart::Field<'_>,
) -> Result<Option<String>, RequestError> {
    let label = field.name().unwrap_or_default().to_owned();
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_TEXT_FIELD {
            return Err(RequestError::new(
                StatusCode::BAD_REQUEST,
                "BAD_UPLOAD",
                format!("the `{label}` field is longer than {MAX_TEXT_FIELD} bytes"),
            ));
        }
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        RequestError::new(
            StatusCode::BAD_REQUEST,
            "BAD_UPLOAD",
            format!("the `{label}` field is not UTF-8"),
        )
    })?;
    let text = text.trim();
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// Extracts, names and moves the release into place. Runs on a blocking thread;
/// `staging` is removed when this returns, whatever happened.
fn install(
    state: &AppState,
    staging: Staging,
    app_dir: &Path,
    form: Form,
    overwrite: bool,
) -> Result<(StatusCode, Json<Value>), RequestError> {
    let extracted = archive::extract(&staging.archive(), &staging.tree(), &Limits::default())
        .map_err(archive_error)?;
    let _ = std::fs::remove_file(staging.archive());
    let (name, version) = identity(form, &extracted.root)?;
    let parent = name.parent(app_dir);
    let target = parent.join(name.release_dir_name(&version));
    let on_disk = std::fs::symlink_metadata(&target).is_ok();
    let exists = on_disk
        || state
            .catalog
            .releases_of(&name.full)
            .iter()
            .any(|release| release.version == version);
    if exists && !overwrite {
        return Err(version_exists(&name, &version));
    }
    std::fs::create_dir_all(&parent)
        .map_err(|error| internal("DEPLOY_FAILED", "could not create the app's dir", error))?;
    if on_disk {
        exchange(&extracted.root, &target, &staging.dir.join("replaced")).map_err(|error| {
            internal("DEPLOY_FAILED", "could not swap the new release in", error)
        })?;
    } else {
        rename_no_replace(&extracted.root, &target).map_err(|error| match error.kind() {
            io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty => {
                version_exists(&name, &version)
            }
            _ => internal("DEPLOY_FAILED", "could not move the new release in", error),
        })?;
    }
    state.catalog.invalidate();
    if on_disk {
        retire_children(state, std::slice::from_ref(&target));
    }
    tracing::info!(
        app = %name.full,
        version = %version,
        action = if on_disk { "redeploy" } else { "deploy" },
        dir = %target.display(),
        files = extracted.files,
        bytes = extracted.bytes,
        "deployment written"
    );
    drop(staging);
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "name": name.full,
            "version": version,
            "dir": target,
            "files": extracted.files,
            "bytes": extracted.bytes,
        })),
    ))
}

fn version_exists(name: &AppName, version: &str) -> RequestError {
    RequestError::new(
        StatusCode::CONFLICT,
        "VERSION_EXISTS",
        format!(
            "{}@{version} is already deployed; add ?overwrite=true to replace it",
            name.full
        ),
    )
}

fn archive_error(error: ArchiveError) -> RequestError {
    let code = match &error {
        ArchiveError::NotAnArchive => "NOT_AN_ARCHIVE",
        ArchiveError::Corrupt(_) | ArchiveError::Clash { .. } | ArchiveError::Empty => {
            "BAD_ARCHIVE"
        }
        ArchiveError::UnsafePath { .. }
        | ArchiveError::Link { .. }
        | ArchiveError::Unsupported { .. } => "UNSAFE_ARCHIVE_ENTRY",
        ArchiveError::TooManyEntries { .. }
        | ArchiveError::FileTooLarge { .. }
        | ArchiveError::TooLarge { .. }
        | ArchiveError::RatioTooHigh { .. } => "ARCHIVE_TOO_LARGE",
        ArchiveError::Io(io_error) => {
            return internal("DEPLOY_FAILED", "could not write the release", io_error)
        }
    };
    tracing::warn!(%error, "upload refused");
    RequestError::new(StatusCode::BAD_REQUEST, code, error.to_string())
}

/// The release's name and version: the form's fields, else the app's `package.json`.
fn identity(form: Form, root: &Path) -> Result<(AppName, String), RequestError> {
    let package = if form.name.is_none() || form.version.is_none() {
        read_package_json(root)?
    } else {
        Value::Null
    };
    let from_package = |key: &str| package.get(key).and_then(Value::as_str);
    let name = match form.name {
        Some(name) => name,
        None => match from_package("name") {
            Some(name) => AppName::parse(name)?,
            None => return Err(RequestError::new(
                StatusCode::BAD_REQUEST,
                "MISSING_NAME",
                "no app name: send a `name` field or put a package.json with a name in the archive",
            )),
        },
    };
    let version = match form.version {
        Some(version) => version,
        None => match from_package("version") {
            Some(version) => upload_version(version)?,
            None => {
                return Err(RequestError::new(
                    StatusCode::BAD_REQUEST,
                    "MISSING_VERSION",
                    "no version: send a `version` field or put a package.json with a version in the archive",
                ))
            }
        },
    };
    Ok((name, version))
}

/// The app's `package.json`, `Null` when there is none.
fn read_package_json(root: &Path) -> Result<Value, RequestError> {
    let text = match std::fs::read_to_string(root.join("package.json")) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Value::Null),
        Err(error) => {
            return Err(RequestError::new(
                StatusCode::BAD_REQUEST,
                "BAD_PACKAGE_JSON",
                format!("package.json is unreadable: {error}"),
            ))
        }
    };
    serde_json::from_str(&text).map_err(|error| {
        RequestError::new(
            StatusCode::BAD_REQUEST,
            "BAD_PACKAGE_JSON",
            format!("package.json is not valid JSON: {error}"),
        )
    })
}

/// Moves `from` to `to` unless something is at `to` already.
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use nix::errno::Errno;
        use nix::fcntl::{renameat2, RenameFlags};
        match renameat2(None, from, None, to, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(Errno::EINVAL | Errno::ENOSYS) => {}
            Err(errno) => return Err(io::Error::from(errno)),
        }
    }
    // Where the flag is missing a plain rename still refuses a non-empty target.
    std::fs::rename(from, to)
}

/// Puts `new` at `target` and the release that was there at `new`, in one step where
/// the filesystem allows it; otherwise moves the old release to `aside` first.
fn exchange(new: &Path, target: &Path, aside: &Path) -> io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use nix::errno::Errno;
        use nix::fcntl::{renameat2, RenameFlags};
        match renameat2(None, new, None, target, RenameFlags::RENAME_EXCHANGE) {
            Ok(()) => return Ok(()),
            // Removed meanwhile: nothing left to swap with.
            Err(Errno::ENOENT) if std::fs::symlink_metadata(target).is_err() => {
                return rename_no_replace(new, target)
            }
            Err(Errno::EINVAL | Errno::ENOSYS) => {}
            Err(errno) => return Err(io::Error::from(errno)),
        }
    }
    std::fs::rename(target, aside)?;
    if let Err(error) = std::fs::rename(new, target) {
        let _ = std::fs::rename(aside, target);
        return Err(error);
    }
    Ok(())
}

/// A dot-named dir in the first app dir holding the upload and its extraction;
/// removed with everything in it when dropped.
struct Staging {
    dir: PathBuf,
}

impl Staging {
    async fn create(app_dir: &Path) -> io::Result<Staging> {
        loop {
            let dir = app_dir.join(format!(".deploy-{}.upload", unique_suffix()));
            match tokio::fs::create_dir(&dir).await {
                Ok(()) => return Ok(Staging { dir }),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error),
            }
        }
    }

    /// The uploaded archive.
    fn archive(&self) -> PathBuf {
        self.dir.join("upload")
    }

    /// Where the archive is extracted.
    fn tree(&self) -> PathBuf {
        self.dir.join("tree")
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.dir) {
            if error.kind() != io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.dir.display(), %error, "could not remove a staging dir");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overwrite_flag_reads_true_false_and_refuses_the_rest() {
        assert!(!overwrite_flag(None).unwrap());
        assert!(overwrite_flag(Some("overwrite=true")).unwrap());
        assert!(overwrite_flag(Some("x=1&overwrite")).unwrap());
        assert!(!overwrite_flag(Some("overwrite=false")).unwrap());
        assert!(overwrite_flag(Some("overwrite=yes-please")).is_err());
    }

    #[test]
    fn exchange_swaps_two_dirs() {
        let temp = tempfile::tempdir().unwrap();
        let (new, target) = (temp.path().join("new"), temp.path().join("app@1.0.0"));
        std::fs::create_dir(&new).unwrap();
        std::fs::write(new.join("v"), "2").unwrap();
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("v"), "1").unwrap();
        exchange(&new, &target, &temp.path().join("aside")).unwrap();
        assert_eq!(std::fs::read_to_string(target.join("v")).unwrap(), "2");
        let old = if new.exists() {
            new
        } else {
            temp.path().join("aside")
        };
        assert_eq!(std::fs::read_to_string(old.join("v")).unwrap(), "1");
    }

    #[test]
    fn rename_no_replace_refuses_an_existing_target() {
        let temp = tempfile::tempdir().unwrap();
        let (new, target) = (temp.path().join("new"), temp.path().join("app@1.0.0"));
        std::fs::create_dir(&new).unwrap();
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("v"), "1").unwrap();
        assert!(rename_no_replace(&new, &target).is_err());
        assert!(new.exists());
    }
}

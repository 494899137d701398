//! Static apps (an HTML entrypoint): files served from the app dir by the supervisor,
//! with no child process.
//!
//! A request goes through these steps:
//!
//! 1. Only `GET` and `HEAD` are served (405 otherwise).
//! 2. The path is decoded one segment at a time ([`decode_path`]). A `.` or `..`
//!    segment, an encoded `/`, a backslash, a NUL, bad percent-encoding or non-UTF-8
//!    bytes answer 400. Hidden segments (`.env`, `.git`; `.well-known` at the top is
//!    allowed) and the app's own files at the top (`worker.jsonc`, `package.json`,
//!    `node_modules`, …) answer 404.
//! 3. The file is canonicalized and must stay under the app dir, so a symlink cannot
//!    lead out of it ([`locate`]). A directory serves its `index.html`; a missing path
//!    whose last segment has no extension is a client-side route and gets the
//!    entrypoint (the SPA fallback); any other missing path is 404.
//! 4. The representation is picked ([`representation`]): HTML under a base gets a
//!    `<base href>` (see [`html`]); a precompressed `file.br` / `file.gz` sibling is
//!    served when the client accepts it; text-like files are gzipped on the fly.
//! 5. `If-None-Match` / `If-Modified-Since` may answer 304, then `Range` / `If-Range`
//!    may answer 206 or 416, and the body is sent from memory (files up to 64 KiB)
//!    or streamed from the file.
//!
//! Path resolution, metadata and small reads are plain blocking calls on the request's
//! thread: the kernel answers them from its caches in microseconds, while a hop to
//! the blocking pool for each of them made a small asset cost five times as much.
//! Repeated requests skip most of them: [`cache`] keeps where a path led, the bytes
//! of small files and gzipped text, each checked or aged as it describes.

mod body;
mod cache;
mod html;
mod negotiate;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::server::percent::percent_decode;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{
    ACCEPT_RANGES, ALLOW, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED, RANGE, VARY,
    X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use self::body::FileBody;
use self::cache::{Content, Located, Opened, Stamp};
use self::negotiate::{AcceptEncoding, ByteRange, Coding};
use crate::server::RequestError;

/// `cache-control` for HTML: always revalidate, so a new deploy is seen at once.
const HTML_CACHE: &str = "no-cache";
/// `cache-control` for other files: cacheable, but revalidated (cheaply, by ETag),
/// since file names are not known to be content-hashed.
const ASSET_CACHE: &str = "public, max-age=0, must-revalidate";
/// Text files smaller than this are not worth compressing.
const COMPRESS_MIN: u64 = 1024;
/// Text files larger than this are sent uncompressed rather than held in memory.
const COMPRESS_MAX: u64 = 4 * 1024 * 1024;
/// HTML files larger than this are served as they are, without `<base href>`.
const INJECT_MAX: u64 = 8 * 1024 * 1024;
/// Names at the top of the app dir that belong to the app's setup, not its site.
const PRIVATE_AT_ROOT: &[&str] = &[
    "worker.jsonc",
    "worker.config.json",
    "package.json",
    "bun.lock",
    "bun.lockb",
    "bunfig.toml",
    "node_modules",
];
/// Extensions of text-like files that are gzipped on the fly.
const COMPRESSIBLE: &[&str] = &[
    "html",
    "htm",
    "css",
    "js",
    "mjs",
    "cjs",
    "json",
    "map",
    "webmanifest",
    "svg",
    "txt",
    "xml",
    "csv",
    "md",
    "wasm",
];

/// One request for a static app.
pub struct StaticRequest<'a> {
    /// The app dir (canonical).
    pub root: &'a Path,
    /// The HTML entrypoint (canonical), the SPA fallback.
    pub entry: &'a Path,
    /// The request method.
    pub method: &'a Method,
    /// The path relative to the app's base, as the client sent it (still
    /// percent-encoded), starting with `/`, without the query.
    pub path: &'a str,
    /// The base the client used (`/spa@1`); empty when the app is served at `/`.
    pub base: &'a str,
    /// The request headers.
    pub headers: &'a HeaderMap,
}

/// Serves a file of a static app: the whole answer, including 304, 206, 404 and the
/// JSON errors, so the caller only adds its request id.
pub async fn serve(request: StaticRequest<'_>) -> Response {
    if request.method != Method::GET && request.method != Method::HEAD {
        return method_not_allowed(request.method);
    }
    let files = cache::files();
    let remembered = files.located(request.root, request.path);
    let located = match remembered.clone() {
        Some(located) => located,
        None => match resolve(&request) {
            Ok(located) => located,
            Err(refusal) => return refusal.into_response(),
        },
    };
    let mut answer = respond(&request, &located).await;
    if remembered.is_some()
        && answer
            .as_ref()
            .is_err_and(|error| error.kind() == io::ErrorKind::NotFound)
    {
        // The file found earlier is gone: walk the path again, as for a new one.
        files.forget_located(request.root, request.path);
        answer = match resolve(&request) {
            Ok(located) => respond(&request, &located).await,
            Err(refusal) => return refusal.into_response(),
        };
    }
    match answer {
        Ok(response) => response,
        Err(error) if error.kind() == io::ErrorKind::NotFound => not_found(),
        Err(error) => {
            tracing::warn!(file = %located.file.display(), %error, "static file could not be served");
            internal_error(&located.file)
        }
    }
}

/// Decodes and locates the request's path, remembering where it led when that was
/// an existing file (not a refusal, and not the fallback for a missing path).
fn resolve(request: &StaticRequest<'_>) -> Result<Arc<Located>, Refusal> {
    let segments = decode_path(request.path)?;
    let (file, found) = locate(request, &segments)?;
    let located = Arc::new(Located {
        siblings: precompressed_siblings(request.root, &file),
        file,
    });
    if found {
        cache::files().remember_located(request.root, request.path, located.clone());
    }
    Ok(located)
}

/// Why a request path is not served.
enum Refusal {
    /// 400: the path is malformed or tries to leave the app dir.
    BadPath(&'static str),
    /// 404: nothing to serve, or something that must not be served.
    NotFound,
    /// 500: the file system failed for this file.
    Failed(PathBuf),
}

impl Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::BadPath(message) => bad_path(message),
            Refusal::NotFound => not_found(),
            Refusal::Failed(file) => internal_error(&file),
        }
    }
}

/// Splits the raw path into decoded segments, or the error response that refuses it.
fn decode_path(raw: &str) -> Result<Vec<String>, Refusal> {
    let mut segments = Vec::new();
    for raw_segment in raw.split('/') {
        if raw_segment.is_empty() {
            continue;
        }
        let Some(segment) = percent_decode(raw_segment) else {
            return Err(Refusal::BadPath(
                "the path has invalid percent-encoding or is not UTF-8",
            ));
        };
        if segment == "." || segment == ".." {
            return Err(Refusal::BadPath("the path has a `.` or `..` segment"));
        }
        if segment.contains(['/', '\\', '\0']) {
            return Err(Refusal::BadPath(
                "the path has an encoded slash, a backslash or a NUL byte",
            ));
        }
        let at_top = segments.is_empty();
        let hidden = segment.starts_with('.') && !(at_top && segment == ".well-known");
        if hidden || (at_top && PRIVATE_AT_ROOT.contains(&segment.as_str())) {
            return Err(Refusal::NotFound);
        }
        segments.push(segment);
    }
    Ok(segments)
}

/// The file to serve for the decoded path: the canonical file under the root, a
/// directory's `index.html`, or the entrypoint as the SPA fallback; and whether the
/// path named it (false for the fallback, which a file made later would replace).
fn locate(request: &StaticRequest<'_>, segments: &[String]) -> Result<(PathBuf, bool), Refusal> {
    let Some(last) = segments.last() else {
        return Ok((request.entry.to_path_buf(), true));
    };
    let candidate = segments
        .iter()
        .fold(request.root.to_path_buf(), |path, segment| {
            path.join(segment)
        });
    let real = match std::fs::canonicalize(&candidate) {
        Ok(real) => real,
        Err(error) if is_missing(&error) => {
            return if looks_like_file(last) {
                Err(Refusal::NotFound)
            } else {
                Ok((request.entry.to_path_buf(), false))
            };
        }
        Err(error) => {
            tracing::warn!(file = %candidate.display(), %error, "static file could not be resolved");
            return Err(Refusal::Failed(candidate));
        }
    };
    if !real.starts_with(request.root) {
        tracing::warn!(requested = %candidate.display(), resolved = %real.display(),
            "refused a static path that resolves outside the app dir");
        return Err(Refusal::NotFound);
    }
    let metadata = match std::fs::metadata(&real) {
        Ok(metadata) => metadata,
        Err(error) if is_missing(&error) => return Err(Refusal::NotFound),
        Err(error) => {
            tracing::warn!(file = %real.display(), %error, "static file could not be read");
            return Err(Refusal::Failed(real));
        }
    };
    if metadata.is_file() {
        return Ok((real, true));
    }
    if !metadata.is_dir() {
        return Err(Refusal::NotFound);
    }
    if let Ok(index) = std::fs::canonicalize(real.join("index.html")) {
        let is_file = std::fs::metadata(&index).is_ok_and(|metadata| metadata.is_file());
        if is_file && index.starts_with(request.root) {
            return Ok((index, true));
        }
    }
    Ok((request.entry.to_path_buf(), false))
}

/// Errors that mean "no such file" rather than a failing disk.
fn is_missing(error: &io::Error) -> bool {
    const ELOOP: i32 = nix::errno::Errno::ELOOP as i32;
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::InvalidFilename
    ) || error.raw_os_error() == Some(ELOOP)
}

/// Whether a path segment names a file (`app.js`) rather than a client-side route
/// (`settings`): it has a dot after its first character.
fn looks_like_file(segment: &str) -> bool {
    segment.char_indices().any(|(at, c)| c == '.' && at > 0)
}

/// The bytes of a response body before ranges: the file itself or a buffer.
enum Source {
    /// `len` bytes of the open file, from its start.
    File { file: File, len: u64 },
    /// Bytes held in memory (HTML with a base, or gzipped on the fly).
    Memory(Bytes),
}

impl Source {
    fn len(&self) -> u64 {
        match self {
            Source::File { len, .. } => *len,
            Source::Memory(bytes) => bytes.len() as u64,
        }
    }
}

/// What will be sent for a file: bytes, their encoding and validators.
struct Representation {
    source: Source,
    /// The file the bytes come from, for log lines.
    origin: PathBuf,
    /// The version of `origin` the bytes are, when they are the file's own (not HTML
    /// with a base): what a gzipped copy is kept under.
    stamp: Option<Stamp>,
    encoding: Option<Coding>,
    /// Compress `source` with gzip once the conditionals have not answered 304.
    gzip_later: bool,
    etag: String,
    modified: Option<SystemTime>,
}

/// The headers every answer about a file carries (200, 206, 304, 416).
struct Common {
    content_type: HeaderValue,
    cache_control: &'static str,
    vary: bool,
}

/// Answers for one located file: 304, 200, 206 or 416. An `Err` is an I/O failure
/// the caller turns into 404 (the file vanished) or 500.
async fn respond(request: &StaticRequest<'_>, located: &Located) -> io::Result<Response> {
    let path = located.file.as_path();
    let extension = path
        .extension()
        .and_then(|extension| extension.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let is_html = extension == "html" || extension == "htm";
    let accept = AcceptEncoding::from_headers(request.headers);
    let wants_range = request.headers.contains_key(RANGE);
    let compressible = COMPRESSIBLE.contains(&extension.as_str());

    let (mut representation, has_siblings) = representation(
        request,
        located,
        is_html,
        compressible,
        &accept,
        wants_range,
    )?;
    let common = Common {
        content_type: content_type(path),
        cache_control: if is_html { HTML_CACHE } else { ASSET_CACHE },
        vary: has_siblings || (compressible && representation.source.len() >= COMPRESS_MIN),
    };

    if not_modified(request.headers, &representation) {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        common_headers(response.headers_mut(), &common, &representation);
        return Ok(response);
    }

    if representation.gzip_later {
        let files = cache::files();
        let origin = &representation.origin;
        let kept = representation
            .stamp
            .and_then(|stamp| files.gzipped(origin, stamp));
        let compressed = match kept {
            Some(compressed) => compressed,
            None => {
                let original = take_bytes(&mut representation.source, origin).await?;
                let compressed = gzip(original).await?;
                if let Some(stamp) = representation.stamp {
                    files.remember_gzipped(origin, stamp, compressed.clone());
                }
                compressed
            }
        };
        representation.source = Source::Memory(compressed);
        representation.encoding = Some(Coding::Gzip);
    }

    let len = representation.source.len();
    let range = match request.headers.get(RANGE).and_then(|v| v.to_str().ok()) {
        Some(range)
            if representation.encoding.is_none()
                && if_range_allows(request.headers, &representation) =>
        {
            ByteRange::parse(range, len)
        }
        _ => ByteRange::Full,
    };
    let (status, start, count) = match range {
        ByteRange::Full => (StatusCode::OK, 0, len),
        ByteRange::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        ByteRange::Unsatisfiable => {
            let mut response = RequestError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "RANGE_NOT_SATISFIABLE",
                format!("the requested range is outside the file's {len} bytes"),
            )
            .into_response();
            let headers = response.headers_mut();
            insert(headers, CONTENT_RANGE, format!("bytes */{len}"));
            headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            insert(headers, ETAG, representation.etag.clone());
            return Ok(response);
        }
    };

    let mut headers = HeaderMap::new();
    common_headers(&mut headers, &common, &representation);
    headers.insert(CONTENT_TYPE, common.content_type.clone());
    headers.insert(CONTENT_LENGTH, HeaderValue::from(count));
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Some(coding) = representation.encoding {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(coding.token()));
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let end = start + count - 1;
        insert(
            &mut headers,
            CONTENT_RANGE,
            format!("bytes {start}-{end}/{len}"),
        );
    }

    let body = if request.method == Method::HEAD {
        Body::empty()
    } else {
        match representation.source {
            Source::Memory(bytes) => {
                Body::from(bytes.slice(start as usize..(start + count) as usize))
            }
            Source::File { mut file, .. } => {
                if start > 0 {
                    file.seek(io::SeekFrom::Start(start)).await?;
                }
                Body::new(FileBody::new(file, count, representation.origin))
            }
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// Picks what to send for the located file, and says whether it has precompressed
/// siblings (so the answer varies by `accept-encoding` even when this one is not
/// encoded).
fn representation(
    request: &StaticRequest<'_>,
    located: &Located,
    is_html: bool,
    compressible: bool,
    accept: &AcceptEncoding,
    wants_range: bool,
) -> io::Result<(Representation, bool)> {
    let path = located.file.as_path();
    let files = cache::files();
    let opened = files.open(path)?;
    if !opened.metadata.is_file() {
        return Err(io::Error::from(io::ErrorKind::NotFound));
    }
    let size = opened.metadata.len();
    let modified = opened.metadata.modified().ok();
    let etag = entity_tag(size, modified, "");

    if is_html && !request.base.is_empty() && size <= INJECT_MAX {
        let document = match opened.content {
            Content::Memory(bytes) => bytes,
            Content::File(file) => Bytes::from(cache::read_whole(file, size)?),
        };
        let (bytes, etag) = match html::inject_base(&document, request.base) {
            Some(injected) => {
                let suffix = format!("-b{:x}", fnv1a(request.base.as_bytes()));
                (Bytes::from(injected), entity_tag(size, modified, &suffix))
            }
            None => (document, etag),
        };
        let gzip_later = !wants_range
            && accept.accepts(Coding::Gzip)
            && bytes.len() as u64 >= COMPRESS_MIN
            && (bytes.len() as u64) <= COMPRESS_MAX;
        let etag = if gzip_later {
            with_suffix(&etag, "-gz")
        } else {
            etag
        };
        let representation = Representation {
            source: Source::Memory(bytes),
            origin: path.to_path_buf(),
            stamp: None,
            encoding: None,
            gzip_later,
            etag,
            modified,
        };
        return Ok((representation, false));
    }

    let has_siblings = !located.siblings.is_empty();
    if !wants_range {
        for coding in accept.preference() {
            let Some((sibling, sibling_path)) =
                located.siblings.iter().find(|(found, _)| *found == coding)
            else {
                continue;
            };
            let Ok(opened) = files.open(sibling_path) else {
                continue;
            };
            if !opened.metadata.is_file() {
                continue;
            }
            let sibling_modified = opened.metadata.modified().ok();
            let suffix = format!("-{}", sibling.token());
            let representation = Representation {
                etag: entity_tag(opened.metadata.len(), sibling_modified, &suffix),
                origin: sibling_path.clone(),
                stamp: Some(opened.stamp()),
                source: source(opened),
                encoding: Some(*sibling),
                gzip_later: false,
                modified: sibling_modified,
            };
            return Ok((representation, has_siblings));
        }
    }

    let gzip_later = compressible
        && !wants_range
        && accept.accepts(Coding::Gzip)
        && (COMPRESS_MIN..=COMPRESS_MAX).contains(&size);
    let representation = Representation {
        origin: path.to_path_buf(),
        stamp: Some(opened.stamp()),
        source: source(opened),
        encoding: None,
        gzip_later,
        etag: if gzip_later {
            with_suffix(&etag, "-gz")
        } else {
            etag
        },
        modified,
    };
    Ok((representation, has_siblings))
}

/// `file.br` and `file.gz` next to `path` that are regular files under the root.
fn precompressed_siblings(root: &Path, path: &Path) -> Vec<(Coding, PathBuf)> {
    let mut found = Vec::new();
    let Some(name) = path.file_name() else {
        return found;
    };
    for coding in [Coding::Brotli, Coding::Gzip] {
        let mut sibling_name = name.to_os_string();
        sibling_name.push(coding.extension());
        let Ok(sibling) = std::fs::canonicalize(path.with_file_name(sibling_name)) else {
            continue;
        };
        if sibling.starts_with(root)
            && std::fs::metadata(&sibling).is_ok_and(|metadata| metadata.is_file())
        {
            found.push((coding, sibling));
        }
    }
    found
}

/// Whether `If-None-Match` (or, without it, `If-Modified-Since`) says the client's
/// copy is current.
fn not_modified(headers: &HeaderMap, representation: &Representation) -> bool {
    let mut none_match = headers.get_all(IF_NONE_MATCH).iter().peekable();
    if none_match.peek().is_some() {
        return none_match
            .filter_map(|value| value.to_str().ok())
            .any(|value| negotiate::etag_list_matches(value, &representation.etag));
    }
    let since = headers
        .get(IF_MODIFIED_SINCE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| httpdate::parse_http_date(value.trim()).ok());
    match (since, representation.modified) {
        (Some(since), Some(modified)) => whole_seconds(modified) <= whole_seconds(since),
        _ => false,
    }
}

/// Whether a `Range` may be honoured: no `If-Range`, or one naming this
/// representation (by strong ETag or exact `Last-Modified`).
fn if_range_allows(headers: &HeaderMap, representation: &Representation) -> bool {
    let Some(value) = headers.get(IF_RANGE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return value == representation.etag;
    }
    match (httpdate::parse_http_date(value), representation.modified) {
        (Ok(date), Some(modified)) => whole_seconds(date) == whole_seconds(modified),
        _ => false,
    }
}

fn common_headers(headers: &mut HeaderMap, common: &Common, representation: &Representation) {
    insert(headers, ETAG, representation.etag.clone());
    if let Some(modified) = representation.modified {
        insert(headers, LAST_MODIFIED, httpdate::fmt_http_date(modified));
    }
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static(common.cache_control),
    );
    if common.vary {
        headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    }
}

fn insert(headers: &mut HeaderMap, name: http::HeaderName, value: String) {
    if let Ok(value) = HeaderValue::try_from(value) {
        headers.insert(name, value);
    }
}

/// `content-type` from the extension, with `charset=utf-8` for text.
fn content_type(path: &Path) -> HeaderValue {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let textual = mime.type_() == mime_guess::mime::TEXT
        || matches!(
            mime.essence_str(),
            "application/javascript"
                | "application/json"
                | "application/xml"
                | "application/manifest+json"
                | "image/svg+xml"
        );
    let value = if textual && mime.get_param(mime_guess::mime::CHARSET).is_none() {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.to_string()
    };
    HeaderValue::try_from(value)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

/// A quoted ETag from the size and the modification time in nanoseconds.
fn entity_tag(size: u64, modified: Option<SystemTime>, suffix: &str) -> String {
    let nanos = modified
        .and_then(|modified| modified.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |since| since.as_nanos());
    format!("\"{size:x}-{nanos:x}{suffix}\"")
}

fn with_suffix(etag: &str, suffix: &str) -> String {
    let bare = etag.trim_end_matches('"');
    format!("{bare}{suffix}\"")
}

fn whole_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// 64-bit FNV-1a, to tell apart the ETags of one file under different bases.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The body of an opened file: its bytes when they were read (small files), else
/// the file to stream.
fn source(opened: Opened) -> Source {
    match opened.content {
        Content::Memory(bytes) => Source::Memory(bytes),
        Content::File(file) => Source::File {
            file: File::from_std(file),
            len: opened.metadata.len(),
        },
    }
}

/// Reads an open file to its end, expecting about `size` bytes.
async fn read_all(file: &mut File, size: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.read_to_end(&mut bytes).await?;
    Ok(bytes)
}

/// The bytes of a source, reading the file if it is one.
async fn take_bytes(source: &mut Source, origin: &Path) -> io::Result<Bytes> {
    match source {
        Source::Memory(bytes) => Ok(bytes.clone()),
        Source::File { file, len } => {
            let bytes = read_all(file, *len).await?;
            if bytes.len() as u64 != *len {
                tracing::debug!(file = %origin.display(), "static file changed size while being read");
            }
            Ok(Bytes::from(bytes))
        }
    }
}

/// Gzips `bytes` on a blocking thread.
async fn gzip(bytes: Bytes) -> io::Result<Bytes> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(bytes.len() / 3 + 64),
            flate2::Compression::default(),
        );
        encoder.write_all(&bytes)?;
        encoder.finish().map(Bytes::from)
    })
    .await
    .map_err(io::Error::other)?
}

fn method_not_allowed(method: &Method) -> Response {
    let mut response = RequestError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("{method} is not allowed on a static app; use GET or HEAD"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

fn bad_path(message: &str) -> Response {
    RequestError::new(StatusCode::BAD_REQUEST, "BAD_PATH", message).into_response()
}

fn not_found() -> Response {
    RequestError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such file").into_response()
}

fn internal_error(file: &Path) -> Response {
    let name = file
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    RequestError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "STATIC_FILE_ERROR",
        format!("{name} could not be read"),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(raw: &str) -> Option<Vec<String>> {
        decode_path(raw).ok()
    }

    fn refusal_status(raw: &str) -> Option<StatusCode> {
        decode_path(raw)
            .err()
            .map(|refusal| refusal.into_response().status())
    }

    #[test]
    fn paths_decode_into_segments() {
        assert_eq!(decoded("/"), Some(vec![]));
        assert_eq!(
            decoded("/assets//app%20v2.js"),
            Some(vec!["assets".to_owned(), "app v2.js".to_owned()])
        );
        assert_eq!(
            decoded("/.well-known/x"),
            Some(vec![".well-known".to_owned(), "x".to_owned()])
        );
    }

    #[test]
    fn traversal_and_odd_bytes_are_refused() {
        for raw in [
            "/..",
            "/a/../b",
            "/%2e%2e/x",
            "/%2E%2e/x",
            "/..%2fx",
            "/a%2fb",
            "/a%5cb",
            "/a\\b",
            "/%00",
            "/a%0",
            "/a%zz",
            "/%ff",
            "/./x",
        ] {
            assert_eq!(refusal_status(raw), Some(StatusCode::BAD_REQUEST), "{raw}");
        }
    }

    #[test]
    fn hidden_and_private_names_are_not_found() {
        for raw in [
            "/.env",
            "/assets/.DS_Store",
            "/.git/config",
            "/worker.jsonc",
            "/package.json",
            "/node_modules/x/index.js",
            "/a/.well-known/x",
        ] {
            assert_eq!(refusal_status(raw), Some(StatusCode::NOT_FOUND), "{raw}");
        }
        assert!(decoded("/docs/package.json").is_some());
    }

    #[test]
    fn file_names_are_told_from_routes() {
        assert!(looks_like_file("app.js"));
        assert!(looks_like_file("archive.tar.gz"));
        assert!(!looks_like_file("settings"));
        assert!(!looks_like_file(".profile"));
    }

    #[test]
    fn content_types_carry_a_charset_for_text() {
        let of = |name: &str| content_type(Path::new(name));
        assert_eq!(of("a.html"), "text/html; charset=utf-8");
        assert_eq!(of("a.css"), "text/css; charset=utf-8");
        assert_eq!(of("a.js"), "text/javascript; charset=utf-8");
        assert_eq!(of("a.mjs"), "application/javascript; charset=utf-8");
        assert_eq!(of("a.json"), "application/json; charset=utf-8");
        assert_eq!(of("a.png"), "image/png");
        assert_eq!(of("a"), "application/octet-stream");
    }

    #[test]
    fn etags_are_quoted_and_suffixed_inside_the_quotes() {
        let etag = entity_tag(255, Some(UNIX_EPOCH), "");
        assert_eq!(etag, "\"ff-0\"");
        assert_eq!(with_suffix(&etag, "-gz"), "\"ff-0-gz\"");
    }
}

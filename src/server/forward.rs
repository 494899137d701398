//! Requests for apps: find the release, lease a child, and stream the exchange over
//! its IPC connection.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body::Body as _;
use tokio::time::Instant;

use super::errors::RequestError;
use super::limits::{self, LimitedBody};
use super::percent::percent_decode;
use super::static_files::{self, StaticRequest};
use super::websocket;
use super::AppState;
use crate::apps::{AppRelease, Entrypoint, ResolveError};
use crate::ipc::{OutgoingRequest, ResponseStart};
use crate::proxy::{strip_hop_by_hop, ProxyContext};
use hyper::upgrade::OnUpgrade;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_BASE: HeaderName = HeaderName::from_static("x-base");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Bodies up to this size with a declared length are sent with their head at once.
const SMALL_BODY: u64 = 64 * 1024;

/// The app part of a request path.
#[derive(Debug, PartialEq, Eq)]
pub struct AppPath<'a> {
    /// The app name, `@scope/name` for scoped apps.
    pub name: String,
    /// The version range after `@`, if any.
    pub range: Option<String>,
    /// The prefix the client used (`/name@range`), as the app's base.
    pub base: &'a str,
    /// The rest of the path, starting with `/`.
    pub rest: &'a str,
}

/// Splits `/name[@range]/rest` (or `/@scope/name[@range]/rest`).
pub fn split_app_path(path: &str) -> Option<AppPath<'_>> {
    let trimmed = path.strip_prefix('/')?;
    let mut segment_end = trimmed.find('/').unwrap_or(trimmed.len());
    if trimmed.starts_with('@') {
        let after_scope = &trimmed[segment_end..];
        let next = after_scope
            .get(1..)?
            .find('/')
            .map(|at| at + 1)
            .unwrap_or(after_scope.len());
        segment_end += next;
    }
    let segment = percent_decode(&trimmed[..segment_end])?;
    // The version range starts at the first `@` after the name (after the scope's).
    let range_at = match segment.strip_prefix('@') {
        Some(scoped) => scoped.find('@').map(|at| at + 1),
        None => segment.find('@'),
    };
    let (name, range) = match range_at {
        Some(at) => (segment[..at].to_owned(), Some(segment[at + 1..].to_owned())),
        None => (segment, None),
    };
    if name.is_empty() || name.starts_with('.') || name.contains("..") || name == "@" {
        return None;
    }
    let rest = &trimmed[segment_end..];
    Some(AppPath {
        name,
        range: range.filter(|range| !range.is_empty()),
        base: &path[..segment_end + 1],
        rest: if rest.is_empty() { "/" } else { rest },
    })
}

/// Makes request ids: a per-process random prefix and a counter.
pub struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    /// A generator with a prefix that differs between runs.
    pub fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos() ^ (elapsed.as_secs() as u32))
            .unwrap_or(0)
            ^ std::process::id().rotate_left(16);
        RequestIds {
            prefix: seed,
            next: AtomicU64::new(1),
        }
    }

    /// The client's id if it sent a sane one, else a new one.
    pub fn pick(&self, headers: &HeaderMap) -> HeaderValue {
        if let Some(value) = headers.get(&X_REQUEST_ID) {
            let bytes = value.as_bytes();
            if !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|b| b.is_ascii_graphic())
            {
                return value.clone();
            }
        }
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let mut text = [b'-'; 21];
        write_hex(&mut text[..8], u64::from(self.prefix));
        write_hex(&mut text[9..], number);
        HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
    }
}

/// Writes the low digits of `value` as lowercase hex, zero-padded to fill `out`; the
/// request id is made on every request, where `format!` costs more than the rest of it.
fn write_hex(out: &mut [u8], mut value: u64) {
    for slot in out.iter_mut().rev() {
        *slot = b"0123456789abcdef"[(value & 0xf) as usize];
        value >>= 4;
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

/// `GET /` without a homepage app: what is running here.
fn product_banner() -> Response {
    let mut response = Response::new(Body::from(format!(
        "buntime-supervisor {}\n",
        env!("CARGO_PKG_VERSION")
    )));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The router's fallback: paths under `/_/` that no internal route took.
pub async fn forward(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    serve_app(&state, &client.ip().to_string(), request).await
}

/// Serves one request for an app: routing, the app's answer, metrics, access line.
/// `client_ip` is the client's IP address as text, made once per connection.
pub async fn serve_app(state: &AppState, client_ip: &str, request: Request) -> Response {
    let started = Instant::now();
    let request_id = state.request_ids.pick(request.headers());
    // What the access line needs is kept only when access lines are written.
    let logged = state
        .access_log
        .then(|| (request.method().clone(), request.uri().path().to_owned()));
    let mut served = Served::default();
    let mut response =
        match forward_inner(state, client_ip, request, &request_id, &mut served).await {
            Ok(response) => response,
            Err(error) => error.into_response_with_id(&request_id),
        };
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let (app, version) = served
        .release
        .as_ref()
        .map(|release| (release.name.as_str(), release.version.as_str()))
        .unwrap_or(("", ""));
    if served.release.is_some() {
        state.metrics.request(app, version, status, elapsed);
    }
    if let Some((method, path)) = logged {
        // Streamed bodies have no length yet; they are logged as "-".
        let bytes = response
            .body()
            .size_hint()
            .exact()
            .map(|length| length.to_string())
            .unwrap_or_else(|| "-".to_owned());
        tracing::info!(target: "access", method = %method, path = %path, status, bytes = %bytes,
            duration_ms = elapsed.as_secs_f64() * 1000.0, app, version,
            pid = served.pid.unwrap_or(0), request_id = request_id.to_str().unwrap_or(""),
            client = client_ip, "request");
    }
    response
        .headers_mut()
        .insert(X_REQUEST_ID.clone(), request_id);
    response
}

/// What a request was routed to, for its metrics and access log line.
#[derive(Default)]
struct Served {
    release: Option<Arc<AppRelease>>,
    pid: Option<u32>,
}

async fn forward_inner(
    state: &AppState,
    client_ip: &str,
    request: Request,
    request_id: &HeaderValue,
    served: &mut Served,
) -> Result<Response, RequestError> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path();
    let routed = split_app_path(path).and_then(|app_path| {
        let release = state
            .catalog
            .resolve(&app_path.name, app_path.range.as_deref());
        match (&release, &state.homepage) {
            // Paths that name no app belong to the homepage app, when there is one.
            (Err(ResolveError::UnknownApp(_)), Some(_)) => None,
            _ => Some((app_path, release)),
        }
    });
    let (app_path, release) = match (routed, &state.homepage) {
        (Some(routed), _) => routed,
        (None, Some(homepage)) => {
            let (name, range) = match homepage
                .split_once('@')
                .filter(|(name, _)| !name.is_empty())
            {
                Some((name, range)) => (name.to_owned(), Some(range.to_owned())),
                None => (homepage.clone(), None),
            };
            let release = state.catalog.resolve(&name, range.as_deref());
            let app_path = AppPath {
                name,
                range,
                base: "",
                rest: path,
            };
            (app_path, release)
        }
        (None, None) if path == "/" => {
            return Ok(product_banner());
        }
        (None, None) => {
            return Err(RequestError::new(
                StatusCode::NOT_FOUND,
                "APP_NOT_FOUND",
                "no app in the request path",
            ));
        }
    };
    let release = release?;
    served.release = Some(release.clone());
    let setup = state.catalog.setup(&release)?;
    if let Some(matched) = setup.proxy.find(app_path.rest) {
        let context = ProxyContext {
            client_ip,
            request_id,
            timeout: setup.config.timeout,
            app: &release.label(),
            metrics: &state.metrics,
        };
        let request = Request::from_parts(parts, body);
        // Proxied and static requests are boxed so app requests carry a small future.
        return Ok(Box::pin(state.proxy.forward(matched, request, context)).await);
    }
    let entrypoint = match &setup.entrypoint {
        Entrypoint::Module(path) => path,
        Entrypoint::Static(entry) => {
            let root = entry.parent().unwrap_or(entry);
            return Ok(Box::pin(static_files::serve(StaticRequest {
                root,
                entry,
                method: &parts.method,
                path: app_path.rest,
                base: app_path.base,
                headers: &parts.headers,
            }))
            .await);
        }
    };
    let body_limit = state.body_limits.for_app(setup.config.max_body_size);
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    if declared.is_some_and(|length| length > body_limit) {
        state.metrics.body_rejected(&release.name);
        return Err(limits::too_large(body_limit, &release.label()));
    }
    let lease = state
        .pool
        .lease(&release, &setup.config, entrypoint)
        .await?;
    let worker = lease.worker().clone();
    served.pid = Some(worker.pid);

    let host = parts
        .headers
        .get(HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or(&state.listen_host);
    let mut url = String::with_capacity(16 + host.len() + path.len());
    url.push_str("http://");
    url.push_str(host);
    url.push_str(app_path.rest);
    if let Some(query) = parts.uri.query() {
        url.push('?');
        url.push_str(query);
    }
    // What the supervisor tells the app about the request replaces whatever the client
    // sent under the same names; the values go to the encoder as they are.
    let base = app_path.base.as_bytes();
    let base: &[u8] = if base.iter().all(|byte| byte.is_ascii_graphic()) {
        base
    } else {
        b"/"
    };
    let forwarded_for: Cow<'_, str> = match parts
        .headers
        .get(&X_FORWARDED_FOR)
        .and_then(|value| value.to_str().ok())
    {
        Some(earlier) => Cow::Owned(format!("{earlier}, {client_ip}")),
        None => Cow::Borrowed(client_ip),
    };
    let overrides: [(&HeaderName, &[u8]); 5] = [
        (&X_BASE, base),
        (&X_REQUEST_ID, request_id.as_bytes()),
        (&X_FORWARDED_FOR, forwarded_for.as_bytes()),
        (&X_FORWARDED_PROTO, b"http"),
        (&X_FORWARDED_HOST, host.as_bytes()),
    ];
    let outgoing = OutgoingRequest {
        method: parts.method.as_str(),
        url: &url,
        address: client_ip,
        headers: &parts.headers,
        overrides: &overrides,
    };

    let has_body = !(body.is_end_stream() || body.size_hint().exact() == Some(0));
    let websocket_key = websocket::upgrade_key(&parts.method, &parts.headers);
    let on_upgrade = websocket_key
        .as_ref()
        .and_then(|_| parts.extensions.remove::<OnUpgrade>());
    let over_limit = Arc::new(AtomicBool::new(false));
    let body = LimitedBody::new(body, body_limit, over_limit.clone());
    // A small declared body is read at once and sent with the head in one write.
    let small_body = has_body && declared.is_some_and(|length| length <= SMALL_BODY);
    let opened = if small_body {
        match http_body_util::BodyExt::collect(body).await {
            Ok(collected) => worker
                .connection()
                .open_stream_with_body(&outgoing, collected.to_bytes()),
            Err(_) if over_limit.load(Ordering::Acquire) => {
                state.metrics.body_rejected(&release.name);
                return Err(limits::too_large(body_limit, &worker.label));
            }
            Err(error) => {
                return Err(RequestError::new(
                    StatusCode::BAD_REQUEST,
                    "REQUEST_BODY_FAILED",
                    format!("the request body could not be read: {error}"),
                ))
            }
        }
    } else {
        worker
            .connection()
            .open_stream(&outgoing, has_body.then_some(body))
    };
    let mut stream = opened.map_err(|error| {
        RequestError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "HEAD_TOO_LARGE",
            error.to_string(),
        )
    })?;
    // The request's head is in the child's frame now: what the wait below keeps is
    // only the one header an upgrade still needs, not the whole head.
    let offered_protocol = websocket_key.as_ref().and_then(|_| {
        parts
            .headers
            .get(http::header::SEC_WEBSOCKET_PROTOCOL)
            .cloned()
    });
    drop(parts);

    let started = Instant::now();
    let timeout = worker.config.timeout;
    let start = match tokio::time::timeout(timeout, stream.response()).await {
        Ok(start) => start,
        Err(_) => {
            worker.record_error();
            worker.check_health();
            tracing::warn!(app = %worker.label, pid = worker.pid, request_id = ?request_id,
                timeout = ?timeout, "request timed out waiting for the app");
            return Err(RequestError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "WORKER_TIMEOUT",
                format!("{} did not answer within {timeout:?}", worker.label),
            ));
        }
    };
    if over_limit.load(Ordering::Acquire) {
        state.metrics.body_rejected(&release.name);
        return Err(limits::too_large(body_limit, &worker.label));
    }
    worker.record_response(started.elapsed());
    state.pool.counters.record_response(started.elapsed());
    let head = match start {
        ResponseStart::Head(head) => head,
        ResponseStart::Failed(failure) => {
            worker.record_error();
            tracing::warn!(app = %worker.label, pid = worker.pid, request_id = ?request_id,
                message = %failure.message, stack = failure.stack.as_deref().unwrap_or(""),
                "app handler failed");
            return Err(RequestError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "APP_ERROR",
                format!(
                    "{} failed to handle the request: {}",
                    worker.label, failure.message
                ),
            ));
        }
        ResponseStart::Lost => {
            worker.record_error();
            return Err(RequestError::new(
                StatusCode::BAD_GATEWAY,
                "WORKER_CRASHED",
                format!(
                    "{} (pid {}) exited before answering",
                    worker.label, worker.pid
                ),
            ));
        }
        ResponseStart::Upgrade(app_headers) => {
            let (Some(key), Some(on_upgrade)) = (websocket_key, on_upgrade) else {
                worker.record_error();
                return Err(RequestError::new(
                    StatusCode::BAD_GATEWAY,
                    "BAD_UPGRADE",
                    format!(
                        "{} accepted an upgrade for a request that is not one",
                        worker.label
                    ),
                ));
            };
            let response =
                websocket::switching_protocols(&key, offered_protocol.as_ref(), app_headers);
            let counted = state.metrics.session_opened(&release.name);
            websocket::spawn_session(on_upgrade, stream, lease, counted);
            return Ok(response);
        }
    };
    let (status, mut response_headers) = head.into_http().map_err(|error| {
        worker.record_error();
        tracing::warn!(app = %worker.label, pid = worker.pid, request_id = ?request_id, %error,
            "child sent a response head that cannot be passed on");
        RequestError::new(
            StatusCode::BAD_GATEWAY,
            "BAD_RESPONSE_HEAD",
            format!("{}: {error}", worker.label),
        )
    })?;
    strip_hop_by_hop(&mut response_headers);
    let body = match stream.take_complete_body() {
        Some(bytes) => {
            drop(lease);
            Body::from(bytes)
        }
        None => Body::new(stream.into_body(Box::new(lease))),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = response_headers;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_paths_split_into_name_range_base_and_rest() {
        let path = split_app_path("/hello-api@1/users").unwrap();
        assert_eq!(
            (path.name.as_str(), path.range.as_deref()),
            ("hello-api", Some("1"))
        );
        assert_eq!((path.base, path.rest), ("/hello-api@1", "/users"));
        let path = split_app_path("/hello").unwrap();
        assert_eq!((path.base, path.rest, path.range), ("/hello", "/", None));
        let path = split_app_path("/@team/tool@%5E1.0.0/x/y").unwrap();
        assert_eq!(path.name, "@team/tool");
        assert_eq!(path.range.as_deref(), Some("^1.0.0"));
        assert_eq!(path.rest, "/x/y");
        assert_eq!(split_app_path("/"), None);
        assert_eq!(split_app_path("/..%2f/x"), None);
    }

    #[test]
    fn request_ids_are_prefix_and_counter_in_hex_unless_the_client_sent_one() {
        let ids = RequestIds {
            prefix: 0x00ab_12ef,
            next: AtomicU64::new(0x1_0000_00ff),
        };
        let none = HeaderMap::new();
        assert_eq!(ids.pick(&none), "00ab12ef-0001000000ff");
        assert_eq!(ids.pick(&none), "00ab12ef-000100000100");
        let mut sent = HeaderMap::new();
        sent.insert(&X_REQUEST_ID, HeaderValue::from_static("trace-7"));
        assert_eq!(ids.pick(&sent), "trace-7");
        sent.insert(&X_REQUEST_ID, HeaderValue::from_static("has space"));
        assert_eq!(ids.pick(&sent), "00ab12ef-000100000101");
    }
}

//! Static apps (an HTML entrypoint): files served from the app dir by the supervisor.

use std::path::Path;

use axum::response::Response;
use http::{HeaderMap, Method};

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

/// Serves a file of a static app.
pub async fn serve(request: StaticRequest<'_>) -> Response {
    let _ = request;
    Response::new(axum::body::Body::empty())
}

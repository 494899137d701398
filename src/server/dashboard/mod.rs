//! The live dashboard at `/_/` and the operator actions it uses.
//!
//! - `GET /_/` (also `/_/dashboard`; `/_` redirects): the page. Its script and style
//!   sheet are `GET /_/assets/dashboard.js` and `/_/assets/dashboard.css`. All three
//!   are compiled into the binary, served with `cache-control: no-cache` and a strict
//!   content security policy (same-origin scripts, styles and calls only, no framing).
//! - `POST /_/workers/{id}/retire`: retires one live child by its supervisor id;
//!   `{"retired": true}`, or 404 `WORKER_NOT_FOUND`.
//! - `POST /_/apps/{name}/retire` and `POST /_/apps/@scope/{name}/retire`: retires
//!   every live child of the app, any version; `{"retired": N}` (0 when none runs).
//!
//! The page holds no data: it reads `/_/apps` and the `/_/sse` stream (or polls
//! `/_/stats` when it has to send the master key, which `EventSource` cannot).
//! Everything sits behind the internal API guard like the rest of `/_/`: with
//! `RUNTIME_MASTER_KEY` set the page itself needs the key too, and without one the
//! actions need a same-origin `Origin` header, which the page's `fetch` sends.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::json;

use super::errors::RequestError;
use super::AppState;

const INDEX_HTML: &str = include_str!("assets/index.html");
const DASHBOARD_JS: &str = include_str!("assets/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("assets/dashboard.css");

/// Same-origin everything, inline nothing, never inside a frame.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// The dashboard page and action routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/_", get(|| async { Redirect::permanent("/_/") }))
        .route("/_/", get(page))
        .route("/_/dashboard", get(page))
        .route("/_/assets/dashboard.js", get(script))
        .route("/_/assets/dashboard.css", get(style))
        .route(
            "/_/workers/{id}/retire",
            post(retire_worker).fallback(only_post),
        )
        .route("/_/apps/{app}/retire", post(retire_app).fallback(only_post))
        .route(
            "/_/apps/{app}/{base}/retire",
            post(retire_scoped_app).fallback(only_post),
        )
}

/// Other methods on an action route: a JSON 405 like every internal API error.
async fn only_post() -> Response {
    let mut response = RequestError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "this action takes POST",
    )
    .into_response();
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("POST"));
    response
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", DASHBOARD_JS)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", DASHBOARD_CSS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

/// `POST /_/workers/{id}/retire`.
async fn retire_worker(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, RequestError> {
    let not_found = || {
        RequestError::new(
            StatusCode::NOT_FOUND,
            "WORKER_NOT_FOUND",
            format!("no live child has the id {id:?}"),
        )
    };
    let number: u64 = id.parse().map_err(|_| not_found())?;
    if state.pool.retire_worker(number) {
        Ok(Json(json!({"retired": true})))
    } else {
        Err(not_found())
    }
}

/// `POST /_/apps/{name}/retire`.
async fn retire_app(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, RequestError> {
    // A percent-encoded scoped name (`%40team%2Ftool`) arrives here in one piece.
    if name.is_empty() || (name.starts_with('@') && !name.contains('/')) {
        return Err(bad_name(&name));
    }
    Ok(Json(json!({"retired": state.pool.retire_app(&name)})))
}

/// `POST /_/apps/@scope/{name}/retire`.
async fn retire_scoped_app(
    State(state): State<Arc<AppState>>,
    Path((scope, name)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, RequestError> {
    let full = format!("{scope}/{name}");
    if scope.len() < 2 || !scope.starts_with('@') || name.is_empty() {
        return Err(bad_name(&full));
    }
    Ok(Json(json!({"retired": state.pool.retire_app(&full)})))
}

fn bad_name(name: &str) -> RequestError {
    RequestError::new(
        StatusCode::NOT_FOUND,
        "APP_NOT_FOUND",
        format!("{name:?} is not an app name (`name` or `@scope/name`)"),
    )
}

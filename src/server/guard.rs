//! Protection of the internal API: the master key, and a same-origin check on
//! state-changing calls made without a key (CSRF).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, HOST, ORIGIN, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::errors::RequestError;
use super::AppState;

/// Guards every route under `/_/`. With `RUNTIME_MASTER_KEY` set, the whole internal
/// API (health probes aside) needs the key in `X-API-Key` or `Authorization: Bearer`.
/// Calls that change state need the key or an `Origin` naming this host.
pub async fn guard_internal(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if !path.starts_with("/_/") && path != "/_" {
        return next.run(request).await;
    }
    let is_probe = path.starts_with("/_/health");
    let key_presented = presented_key(request.headers());
    let key_valid = match (&state.master_key, key_presented) {
        (Some(expected), Some(given)) => constant_time_eq(expected.as_bytes(), given.as_bytes()),
        _ => false,
    };
    if state.master_key.is_some() && !key_valid && !is_probe {
        let mut response = RequestError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "the internal API needs the master key in X-API-Key or Authorization: Bearer",
        )
        .into_response();
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let changes_state = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if changes_state && !key_valid && !same_origin(request.headers()) {
        return RequestError::new(
            StatusCode::FORBIDDEN,
            "CSRF_REJECTED",
            "state-changing calls need an Origin header matching the host, or an API key",
        )
        .into_response();
    }
    next.run(request).await
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers
        .get("x-api-key")
        .and_then(|value| value.to_str().ok())
    {
        return Some(key.trim());
    }
    let authorization = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = authorization.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether `Origin` is present and names the same host and port as `Host`.
fn same_origin(headers: &HeaderMap) -> bool {
    let (Some(origin), Some(host)) = (
        headers.get(ORIGIN).and_then(|value| value.to_str().ok()),
        headers.get(HOST).and_then(|value| value.to_str().ok()),
    ) else {
        return false;
    };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    !authority.is_empty() && authority.eq_ignore_ascii_case(host)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    http::HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn origins_must_match_the_host_exactly() {
        assert!(same_origin(&headers(&[
            ("origin", "http://a.example:8000"),
            ("host", "a.example:8000")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "http://evil.example"),
            ("host", "a.example:8000")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "http://a.example:9000"),
            ("host", "a.example:8000")
        ])));
        assert!(!same_origin(&headers(&[("host", "a.example:8000")])));
        assert!(!same_origin(&headers(&[
            ("origin", "null"),
            ("host", "null")
        ])));
    }

    #[test]
    fn keys_come_from_either_header() {
        assert_eq!(presented_key(&headers(&[("x-api-key", "k1")])), Some("k1"));
        assert_eq!(
            presented_key(&headers(&[("authorization", "Bearer k2")])),
            Some("k2")
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "Basic k3")])),
            None
        );
        assert!(constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd"));
    }
}

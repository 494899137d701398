//! Header handling shared by HTTP and WebSocket proxying: hop-by-hop removal, the
//! `x-forwarded-*` family, `changeOrigin` and a rule's own headers.

use http::header::{CONNECTION, HOST, ORIGIN, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::rules::Rule;
use super::ProxyContext;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1, plus the
/// old `proxy-connection` and `keep-alive`). A proxy must not pass them on.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes hop-by-hop headers, including every header named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over their few names settles it.
    if !headers
        .keys()
        .any(|name| HOP_BY_HOP.contains(&name.as_str()))
    {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// Whether the request asks to become a WebSocket (`GET` with `Connection: upgrade`
/// and `Upgrade: websocket`).
pub fn is_websocket_upgrade(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::GET
        && has_token(headers, &CONNECTION, "upgrade")
        && has_token(headers, &UPGRADE, "websocket")
}

fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|part| part.trim().eq_ignore_ascii_case(token))
}

/// Adds what the target should know about the original request and applies the
/// rule: `x-forwarded-for` (the client's address appended), `x-forwarded-proto`,
/// `x-forwarded-host` (the client's `Host`), `x-request-id`, then `changeOrigin`,
/// then the rule's own headers, which win over everything before them.
pub fn prepare_outgoing(headers: &mut HeaderMap, rule: &Rule, context: &ProxyContext<'_>) {
    let earlier: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    let client_ip = context.client_ip;
    let forwarded_for = if earlier.is_empty() {
        client_ip.to_owned()
    } else {
        format!("{}, {client_ip}", earlier.join(", "))
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    if let Some(host) = headers.get(HOST).cloned() {
        headers.insert(X_FORWARDED_HOST.clone(), host);
    }
    headers.insert(X_REQUEST_ID.clone(), context.request_id.clone());
    if rule.change_origin {
        if let Some(host) = rule.target.host_header() {
            headers.insert(HOST, host);
        }
        if headers.contains_key(ORIGIN) {
            if let Some(origin) = rule.target.origin_header() {
                headers.insert(ORIGIN, origin);
            }
        }
    }
    for (name, value) in &rule.headers {
        headers.insert(name.clone(), value.clone());
    }
}

/// Marks a response with the request id.
pub fn set_request_id(headers: &mut HeaderMap, request_id: &HeaderValue) {
    headers.insert(X_REQUEST_ID.clone(), request_id.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_go() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "connection",
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("te", HeaderValue::from_static("trailers"));
        headers.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut headers);
        let left: Vec<_> = headers.keys().map(|name| name.as_str()).collect();
        assert_eq!(left, ["x-kept"]);
    }

    #[test]
    fn websocket_upgrades_are_recognised_case_insensitively() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "connection",
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        headers.insert("upgrade", HeaderValue::from_static("WebSocket"));
        assert!(is_websocket_upgrade(&Method::GET, &headers));
        assert!(!is_websocket_upgrade(&Method::POST, &headers));
        headers.insert("upgrade", HeaderValue::from_static("h2c"));
        assert!(!is_websocket_upgrade(&Method::GET, &headers));
    }
}

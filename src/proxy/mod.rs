//! Proxy rules: requests whose path matches an app's `proxy` rule go to another
//! server (HTTP streamed both ways, WebSocket upgrades bridged) without a worker.
//!
//! # Rules
//!
//! In an app's `worker.jsonc` (Buntime's format):
//!
//! ```jsonc
//! proxy: [
//!   { pattern: "^/api/(?<rest>.*)$", target: "${API_URL}", rewrite: "/v1/$rest",
//!     changeOrigin: true, headers: { "x-api-key": "${API_KEY}" } },
//!   { pattern: "^/live", target: "https://stream.internal:8443", secure: false },
//! ]
//! ```
//!
//! - `pattern` (required): a regular expression (the `regex` crate's syntax) matched
//!   against the request path relative to the app's base, without the query. The
//!   first matching rule wins; a path no rule matches goes to the app as usual.
//! - `target` (required): `http://`, `https://` (or `ws://`, `wss://`) base URL with an
//!   optional path prefix. `${NAME}` is filled in from the supervisor's environment
//!   when the config is read; an unset variable makes the config invalid.
//! - `rewrite`: replaces the part of the path the pattern matched, with `$1`, `$name`,
//!   `${name}` or `$<name>` for groups and `$$` for a literal `$`. Without it the path
//!   goes on unchanged. The target URL is the target base, then the path, then the
//!   client's query string exactly as sent.
//! - `changeOrigin` (default `false`): send the target's `host[:port]` as `Host`, and
//!   `scheme://host[:port]` as `Origin` when the client sent one. Otherwise the
//!   client's `Host` is kept.
//! - `secure` (default `true`): verify an `https` target's certificate against the
//!   webpki roots; `false` accepts any certificate (self-signed, expired).
//! - `headers`: header names to values, set on every proxied request (they win over
//!   the client's); `${NAME}` placeholders are filled in as for `target`.
//! - `ws` (default `true`): proxy WebSocket upgrades that match the rule; with
//!   `false` an upgrade is answered 400 `PROXY_WEBSOCKET_DISABLED`.
//!
//! A rule with an unknown key, a wrong type, an invalid pattern or target, or a
//! rewrite naming a group the pattern lacks is refused with a reason, and the app
//! answers 500 naming the file, the `proxy` key and the rule.
//!
//! # Requests
//!
//! Bodies stream both ways (never held whole). Hop-by-hop headers (`Connection` and
//! every header it names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`,
//! `Transfer-Encoding`, `Upgrade`) are removed both ways; the target gets
//! `x-forwarded-for` (the client's address appended), `x-forwarded-proto`,
//! `x-forwarded-host` and `x-request-id`, and the client gets `x-request-id` on
//! every answer. The app's `maxBodySize` does not apply: the target decides.
//! Connections to targets are kept alive and reused. A target that cannot be
//! reached answers 502 `PROXY_TARGET_UNREACHABLE` (TLS failures included); one that
//! sends no response head within the app's `timeout`, 504 `PROXY_TARGET_TIMEOUT`
//! (the wait restarts while the target is still taking the request body, so a long
//! upload is not cut off while it moves).
//! Each such failure is logged once with the app and the rule's target as written.
//!
//! # WebSocket
//!
//! An upgrade request matching a rule (with `ws` on) is sent to the target as an
//! upgrade with the same headers treatment, the client's subprotocol offer and key
//! included. A target that refuses gets its status, headers and small body passed
//! to the client; one that accepts gets the client a `101` with its chosen
//! subprotocol. Then messages are pumped both ways, each direction waiting for
//! delivery before reading on (a slow reader slows the sender), up to
//! [`MAX_MESSAGE_BYTES`] each. Close codes and reasons pass through; a client that
//! vanishes is reported to the target with `1001`, a target that vanishes to the
//! client with `1011`.

mod bridge;
mod client;
mod errors;
mod headers;
mod http;
mod progress;
mod rules;
mod target;
mod template;
mod tls;
mod websocket;

use std::time::Duration;

use ::http::{HeaderValue, Request};
use axum::body::Body;
use axum::response::Response;

pub use headers::strip_hop_by_hop;
pub use rules::{ProxyRules, Rule, RuleError, RuleMatch};
pub use target::TargetBase;
pub use websocket::MAX_MESSAGE_BYTES;

/// What the proxy needs to know about the request besides the request itself.
pub struct ProxyContext<'a> {
    /// Where target failures are counted.
    pub metrics: &'a crate::metrics::Metrics,
    /// The client's IP address as text.
    pub client_ip: &'a str,
    /// The request id, sent on to the target and echoed.
    pub request_id: &'a HeaderValue,
    /// The app's request timeout.
    pub timeout: Duration,
    /// `name@version` of the app whose rule matched, for logs.
    pub app: &'a str,
}

/// Shared state for proxying: keep-alive connection pools to targets, one for the
/// whole run.
#[derive(Default)]
pub struct Proxy {
    clients: client::Clients,
}

impl Proxy {
    /// A proxy with empty connection pools.
    pub fn new() -> Self {
        Proxy {
            clients: client::Clients::new(),
        }
    }

    /// Sends `request` to the rule's target and streams the answer back; WebSocket
    /// upgrades are bridged. Always answers: failures become JSON errors carrying the
    /// request id.
    pub async fn forward(
        &self,
        matched: RuleMatch,
        request: Request<Body>,
        context: ProxyContext<'_>,
    ) -> Response {
        let outcome = if headers::is_websocket_upgrade(request.method(), request.headers()) {
            websocket::forward(&self.clients, &matched, request, &context).await
        } else {
            http::forward(&self.clients, &matched, request, &context).await
        };
        match outcome {
            Ok(mut response) => {
                headers::set_request_id(response.headers_mut(), context.request_id);
                response
            }
            Err(failure) => {
                context.metrics.proxy_failed(context.app, failure.kind());
                failure.respond(&matched, &context)
            }
        }
    }
}

//! What can go wrong while proxying, as JSON error responses and log lines.
//!
//! Messages for the client name the app and the cause but not the target URL: a
//! target may carry a secret filled in from the environment. The log line, for the
//! operator, names the rule's target as written in the config.

use std::time::Duration;

use axum::response::Response;
use http::StatusCode;

use super::rules::RuleMatch;
use super::ProxyContext;
use crate::server::RequestError;

/// A proxied request that ends in an error response.
#[derive(Debug)]
pub enum Failure {
    /// No response head from the target within the app's timeout.
    Timeout(Duration),
    /// Connecting to the target, TLS, or the exchange itself failed.
    Unreachable(String),
    /// The client's request body failed (usually: the client went away).
    ClientBody(String),
    /// The rule produced a URL that cannot be sent.
    BadUrl(String),
    /// A WebSocket upgrade on a rule with `ws: false`.
    WebSocketDisabled,
    /// The client's WebSocket handshake is not valid.
    BadHandshake(String),
    /// The target answered 101 with a handshake that does not check out.
    BadUpgrade(String),
}

impl Failure {
    /// The kind of failure, as the metrics label it.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Timeout(_) => "timeout",
            Failure::Unreachable(_) => "unreachable",
            Failure::ClientBody(_) => "client",
            _ => "other",
        }
    }

    /// The error response, after logging the failure once.
    pub fn respond(self, matched: &RuleMatch, context: &ProxyContext<'_>) -> Response {
        let app = context.app;
        let error = match self {
            Failure::Timeout(timeout) => {
                warn(matched, context, &format!("no response within {timeout:?}"));
                RequestError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "PROXY_TARGET_TIMEOUT",
                    format!("{app}: the proxy target did not answer within {timeout:?}"),
                )
            }
            Failure::Unreachable(error) => {
                warn(matched, context, &error);
                RequestError::new(
                    StatusCode::BAD_GATEWAY,
                    "PROXY_TARGET_UNREACHABLE",
                    format!("{app}: the proxy target could not be reached: {error}"),
                )
            }
            Failure::ClientBody(error) => {
                tracing::debug!(app = %app, request_id = ?context.request_id, %error,
                    "request body failed while proxying");
                RequestError::new(
                    StatusCode::BAD_REQUEST,
                    "PROXY_REQUEST_BODY_FAILED",
                    format!("{app}: the request body could not be read: {error}"),
                )
            }
            Failure::BadUrl(error) => {
                warn(matched, context, &error);
                RequestError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "PROXY_TARGET_URL_INVALID",
                    format!("{app}: the proxy rule produced an invalid URL: {error}"),
                )
            }
            Failure::WebSocketDisabled => RequestError::new(
                StatusCode::BAD_REQUEST,
                "PROXY_WEBSOCKET_DISABLED",
                format!("{app}: WebSocket upgrades are turned off for this proxy rule (ws: false)"),
            ),
            Failure::BadHandshake(reason) => RequestError::new(
                StatusCode::BAD_REQUEST,
                "BAD_WEBSOCKET_HANDSHAKE",
                format!("{app}: {reason}"),
            ),
            Failure::BadUpgrade(error) => {
                warn(matched, context, &error);
                RequestError::new(
                    StatusCode::BAD_GATEWAY,
                    "PROXY_TARGET_BAD_UPGRADE",
                    format!("{app}: the proxy target's WebSocket handshake failed: {error}"),
                )
            }
        };
        error.into_response_with_id(context.request_id)
    }
}

fn warn(matched: &RuleMatch, context: &ProxyContext<'_>, error: &str) {
    tracing::warn!(
        app = %context.app,
        target = %matched.rule.target_as_written,
        request_id = ?context.request_id,
        %error,
        "proxy target failed"
    );
}

/// An error and its causes on one line, without repeating a cause that the text
/// before it already quotes.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

//! Proxy rules: requests whose path matches an app's `proxy` rule go to another
//! server (HTTP streamed both ways, WebSocket upgrades bridged) without a worker.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, Request};
use serde_json::Value;

/// An app's compiled proxy rules, in order.
#[derive(Debug, Clone, Default)]
pub struct ProxyRules {
    rules: Vec<Value>,
}

/// A rule that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {index}: {reason}")]
pub struct RuleError {
    /// Zero-based position of the rule in the `proxy` list.
    pub index: usize,
    /// What is wrong with it.
    pub reason: String,
}

impl ProxyRules {
    /// Compiles the `proxy` list of a worker config.
    pub fn compile(rules: &[Value]) -> Result<Self, RuleError> {
        Ok(ProxyRules {
            rules: rules.to_vec(),
        })
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule matching `path` (relative to the app's base, no query).
    pub fn find(&self, path: &str) -> Option<RuleMatch> {
        let _ = path;
        None
    }
}

/// A matched rule with the target URL it produced.
#[derive(Debug, Clone)]
pub struct RuleMatch {
    /// The absolute target URL, query included.
    pub target: String,
}

/// What the proxy needs to know about the request besides the request itself.
pub struct ProxyContext<'a> {
    /// The client's address.
    pub client: SocketAddr,
    /// The request id, sent on to the target and echoed.
    pub request_id: &'a HeaderValue,
    /// The app's request timeout.
    pub timeout: Duration,
    /// `name@version` of the app whose rule matched, for logs.
    pub app: &'a str,
}

/// Shared state for proxying: connection pools to targets.
#[derive(Default)]
pub struct Proxy {}

impl Proxy {
    /// A proxy with empty connection pools.
    pub fn new() -> Self {
        Proxy {}
    }

    /// Sends `request` to the rule's target and streams the answer back.
    pub async fn forward(
        &self,
        matched: RuleMatch,
        request: Request<Body>,
        context: ProxyContext<'_>,
    ) -> Response {
        let _ = (matched, request, context);
        Response::new(Body::empty())
    }
}

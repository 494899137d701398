//! Pooled keep-alive connections to proxy targets, and sending one request over them
//! with the app's timeout for the target's silence.

use std::time::Duration;

use axum::body::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;

use super::errors::{error_chain, Failure};
use super::progress::{Progress, ProgressBody};
use super::tls;

/// Longest wait for a TCP connection; the app's timeout still bounds the whole wait
/// for the response head, this only keeps a black-holed address from holding a
/// connection slot longer than that.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle keep-alive connections are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle keep-alive connections kept per target host.
const POOL_MAX_IDLE_PER_HOST: usize = 64;
/// Most headers accepted in a target's response head.
const MAX_RESPONSE_HEADERS: usize = 100;

type TargetClient = Client<HttpsConnector<HttpConnector>, Body>;

/// One connection pool for targets whose certificates are verified and one for
/// rules with `secure: false`, so a connection made without verification is never
/// reused for a rule that asked for it.
pub struct Clients {
    verifying: Result<TargetClient, String>,
    accepting_any: Result<TargetClient, String>,
}

impl Clients {
    /// Empty pools. TLS settings that cannot be built (which ring's provider never
    /// causes in practice) turn into 502s for `https` targets rather than a panic.
    pub fn new() -> Self {
        Clients {
            verifying: build(tls::verifying()),
            accepting_any: build(tls::accepting_any()),
        }
    }

    /// Sends `request` and waits for the response head until the target has been
    /// silent for `timeout`: neither taking request body nor answering. For a request
    /// without a body that is `timeout` from now; an upload that keeps moving is
    /// never cut off by it. The bodies are streamed by hyper as each side reads, so
    /// neither is ever held whole.
    pub async fn send(
        &self,
        secure: bool,
        request: Request<Body>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, Failure> {
        let client = if secure {
            &self.verifying
        } else {
            &self.accepting_any
        };
        let client = client
            .as_ref()
            .map_err(|error| Failure::Unreachable(format!("TLS is unavailable: {error}")))?;
        let progress = Progress::new();
        let request = request.map(|body| Body::new(ProgressBody::new(body, progress.clone())));
        let response = client.request(request);
        tokio::pin!(response);
        loop {
            let deadline = progress.last_activity() + timeout;
            tokio::select! {
                result = &mut response => return result.map_err(|error| classify(&error)),
                _ = tokio::time::sleep_until(deadline) => {
                    if progress.last_activity() + timeout <= tokio::time::Instant::now() {
                        return Err(Failure::Timeout(timeout));
                    }
                }
            }
        }
    }
}

impl Default for Clients {
    fn default() -> Self {
        Self::new()
    }
}

fn build(config: Result<ClientConfig, rustls::Error>) -> Result<TargetClient, String> {
    let config = config.map_err(|error| error.to_string())?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .http1_max_headers(MAX_RESPONSE_HEADERS)
        .build(connector))
}

/// Tells a failure of the client's own request body (the client went away while
/// uploading) from a failure of the target.
fn classify(error: &hyper_util::client::legacy::Error) -> Failure {
    let text = error_chain(error);
    if !error.is_connect() && caused_by_request_body(error) {
        return Failure::ClientBody(text);
    }
    Failure::Unreachable(text)
}

fn caused_by_request_body(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(hyper_error) = cause.downcast_ref::<hyper::Error>() {
            if hyper_error.is_user() {
                return true;
            }
        }
        source = cause.source();
    }
    false
}

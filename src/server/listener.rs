//! Accepting HTTP/1 connections with hyper directly, so header limits and graceful
//! shutdown are ours to set. App requests go straight to the forwarding code; only
//! the internal API under `/_/` goes through the router and its guard.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::{forward, limits, AppState};

/// Read buffer per connection; also bounds a request head hyper will parse.
pub const MAX_HEAD_BYTES: usize = 128 * 1024;

/// Accepts connections until `stop` fires, then lets open connections finish their
/// requests in flight. Resolves once every connection task has ended.
pub async fn accept_loop(
    listener: TcpListener,
    router: Router,
    state: Arc<AppState>,
    stop: CancellationToken,
) {
    let connections = TaskTracker::new();
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, client) = match accepted {
            Ok(accepted) => {
                backoff = Duration::from_millis(5);
                accepted
            }
            Err(error) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(%error, "accept failed; backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let state = state.clone();
        let stop = stop.clone();
        // The client's IP as apps and logs see it, made once for the connection.
        let client_ip: Arc<str> = client.ip().to_string().into();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let mut request = request.map(Body::new);
                if is_internal(request.uri().path()) {
                    request.extensions_mut().insert(ConnectInfo(client));
                    Either::Left(router.clone().oneshot(request))
                } else {
                    // App requests skip the router: they are most of the traffic.
                    Either::Right(serve_app_request(state.clone(), client_ip.clone(), request))
                }
            });
            let mut builder = http1::Builder::new();
            // Requests keep hyper's own limit of 100 headers (more get 431). It is not
            // set here: an explicit limit, even the same one, makes hyper fill its
            // header arrays element by element on every request.
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .max_buf_size(MAX_HEAD_BYTES.max(8192));
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => log_connection_end(client, result),
                _ = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    log_connection_end(client, connection.await);
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// Paths the router serves: the internal API and what lies under `/_`.
fn is_internal(path: &str) -> bool {
    path == "/_" || path.starts_with("/_/")
}

async fn serve_app_request(
    state: Arc<AppState>,
    client_ip: Arc<str>,
    request: Request,
) -> Result<Response, Infallible> {
    if let Err(error) = limits::check_header_sizes(request.headers()) {
        return Ok(error.into_response());
    }
    Ok(forward::serve_app(&state, &client_ip, request).await)
}

fn log_connection_end(client: SocketAddr, result: Result<(), hyper::Error>) {
    if let Err(error) = result {
        tracing::debug!(client.addr = %client, %error, "connection ended with an error");
    }
}

//! WebSocket proxying: the handshake.
//!
//! The client's upgrade request goes to the target as an HTTP/1.1 upgrade over the
//! same pooled, TLS-aware client as plain requests (so `secure` and the app's
//! timeout apply the same way). The target's answer decides what the client gets:
//!
//! - anything but `101`: that status and headers, and the body when it is small,
//!   so a target that refuses with 403 is seen refusing with 403;
//! - `101`: the client gets `101` with the target's chosen subprotocol (and other
//!   headers, such as cookies) and a `Sec-WebSocket-Accept` computed for its own
//!   key; then both connections are taken over and bridged message by message (see
//!   [`super::bridge`]).
//!
//! Doing the handshake with hyper rather than a WebSocket client library lets the
//! target's exact answer reach the client: its status and body when it refuses, and
//! its subprotocol choice (including choosing none) when it accepts.
//! `Sec-WebSocket-Extensions` is not offered to the target, since the bridge reads
//! and writes plain frames.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::header::{
    CONNECTION, CONTENT_LENGTH, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderValue, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use super::bridge::{self, Session};
use super::client::Clients;
use super::errors::Failure;
use super::headers::{prepare_outgoing, strip_hop_by_hop};
use super::http::target_uri;
use super::rules::RuleMatch;
use super::ProxyContext;

/// Largest body of a refused upgrade passed on to the client.
const MAX_REFUSAL_BODY: usize = 64 * 1024;

/// Largest WebSocket message (and frame) passed through, either way.
pub const MAX_MESSAGE_BYTES: usize = 32 << 20;

/// Proxies a WebSocket upgrade request.
pub async fn forward(
    clients: &Clients,
    matched: &RuleMatch,
    mut request: Request<Body>,
    context: &ProxyContext<'_>,
) -> Result<Response, Failure> {
    if !matched.rule.ws {
        return Err(Failure::WebSocketDisabled);
    }
    let key = request
        .headers()
        .get(SEC_WEBSOCKET_KEY)
        .cloned()
        .ok_or_else(|| Failure::BadHandshake("Sec-WebSocket-Key is missing".into()))?;
    if request
        .headers()
        .get(SEC_WEBSOCKET_VERSION)
        .is_none_or(|version| version != "13")
    {
        return Err(Failure::BadHandshake(
            "Sec-WebSocket-Version must be 13".into(),
        ));
    }
    let client_upgrade = hyper::upgrade::on(&mut request);
    let (parts, _) = request.into_parts();
    let uri = target_uri(&matched.target, parts.uri.query())?;
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    headers.remove(SEC_WEBSOCKET_EXTENSIONS);
    prepare_outgoing(&mut headers, &matched.rule, context);
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));

    let mut outgoing = Request::new(Body::empty());
    *outgoing.method_mut() = Method::GET;
    *outgoing.uri_mut() = uri;
    *outgoing.version_mut() = Version::HTTP_11;
    *outgoing.headers_mut() = headers;

    let mut answer = clients
        .send(matched.rule.secure, outgoing, context.timeout)
        .await?;
    if answer.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(refusal(answer, context.timeout).await);
    }
    let accept = derive_accept_key(key.as_bytes());
    if answer
        .headers()
        .get(SEC_WEBSOCKET_ACCEPT)
        .is_none_or(|value| value.as_bytes() != accept.as_bytes())
    {
        return Err(Failure::BadUpgrade(
            "Sec-WebSocket-Accept does not match the key".into(),
        ));
    }
    let accept =
        HeaderValue::from_str(&accept).map_err(|error| Failure::BadUpgrade(error.to_string()))?;
    let target_upgrade = hyper::upgrade::on(&mut answer);

    let mut response_headers = std::mem::take(answer.headers_mut());
    strip_hop_by_hop(&mut response_headers);
    response_headers.remove(SEC_WEBSOCKET_EXTENSIONS);
    response_headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    response_headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    response_headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *response.headers_mut() = response_headers;

    let session = Session {
        app: context.app.to_owned(),
        target: matched.rule.target_as_written.clone(),
        request_id: context.request_id.clone(),
    };
    tokio::spawn(async move {
        // The client's side completes once hyper has written the 101 below.
        let (client, target) = match tokio::try_join!(client_upgrade, target_upgrade) {
            Ok(both) => both,
            Err(error) => {
                tracing::debug!(app = %session.app, request_id = ?session.request_id, %error,
                    "WebSocket upgrade did not complete");
                return;
            }
        };
        let client =
            WebSocketStream::from_raw_socket(TokioIo::new(client), Role::Server, Some(config()))
                .await;
        let target =
            WebSocketStream::from_raw_socket(TokioIo::new(target), Role::Client, Some(config()))
                .await;
        bridge::run(client, target, session).await;
    });
    Ok(response)
}

/// The target's refusal for the client: status and headers, and the body when it
/// is small ([`MAX_REFUSAL_BODY`]) and arrives within `timeout`, sent with a
/// `Content-Length` (WebSocket client libraries rarely read chunked refusals).
async fn refusal(answer: http::Response<Incoming>, timeout: Duration) -> Response {
    let (mut parts, body) = answer.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(CONTENT_LENGTH);
    parts.version = Version::HTTP_11;
    let collected = tokio::time::timeout(timeout, Limited::new(body, MAX_REFUSAL_BODY).collect());
    let body = match collected.await {
        Ok(Ok(collected)) => Body::from(collected.to_bytes()),
        _ => Body::empty(),
    };
    Response::from_parts(parts, body)
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

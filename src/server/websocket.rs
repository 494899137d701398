//! WebSocket sessions into apps: the supervisor completes the client's upgrade once
//! the app accepted it, then carries the session's messages over the child's IPC
//! stream with the same per-stream flow control as bodies.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, UPGRADE,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::ipc::{SessionEvent, StreamHandle};
use crate::metrics::SessionGuard;
use crate::pool::Lease;

/// Largest message a client may send into an app.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// How long one side of a closing session waits for the other to finish.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Whether the request asks for a WebSocket upgrade; returns its key if so.
pub fn upgrade_key(method: &Method, headers: &HeaderMap) -> Option<HeaderValue> {
    if method != Method::GET {
        return None;
    }
    let wants_websocket = headers
        .get(UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    if !wants_websocket {
        return None;
    }
    headers.get(SEC_WEBSOCKET_KEY).cloned()
}

/// The 101 answer for an upgrade the app accepted, with the app's extra headers.
/// Like Bun, when the client offered subprotocols and the app chose none, the first
/// offered one is accepted.
pub fn switching_protocols(
    key: &HeaderValue,
    offered_protocols: Option<&HeaderValue>,
    app_headers: Vec<(String, Bytes)>,
) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    for (name, value) in app_headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_maybe_shared(value),
        ) {
            headers.append(name, value);
        }
    }
    if !headers.contains_key(SEC_WEBSOCKET_PROTOCOL) {
        let first = offered_protocols
            .and_then(|offer| offer.to_str().ok())
            .and_then(|offer| {
                offer
                    .split(',')
                    .map(str::trim)
                    .find(|name| !name.is_empty())
            })
            .and_then(|name| HeaderValue::from_str(name).ok());
        if let Some(first) = first {
            headers.insert(SEC_WEBSOCKET_PROTOCOL, first);
        }
    }
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// Runs the session in the background once hyper hands over the connection. The
/// lease keeps the child from going idle or retiring while the session is open.
pub fn spawn_session(
    on_upgrade: OnUpgrade,
    stream: StreamHandle,
    lease: Lease,
    counted: SessionGuard,
) {
    tokio::spawn(async move {
        let _counted = counted;
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "client upgrade failed");
                stream.session_sender().send_close(1006, "");
                return;
            }
        };
        let config = WebSocketConfig::default().max_message_size(Some(MAX_MESSAGE));
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        run_session(socket, stream, lease).await;
    });
}

async fn run_session<S>(socket: WebSocketStream<S>, mut stream: StreamHandle, lease: Lease)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let worker = lease.worker().clone();
    let going_away = worker.going_away().clone();
    let sender = stream.session_sender();
    let (mut sink, mut source) = socket.split();

    // Client to app: each message waits for window, so a slow app slows the client.
    let inbound = async {
        let mut closed_by_client = false;
        while let Some(message) = source.next().await {
            let sent = match message {
                Ok(Message::Text(text)) => {
                    sender
                        .send_message(false, Bytes::copy_from_slice(text.as_bytes()))
                        .await
                }
                Ok(Message::Binary(data)) => sender.send_message(true, data).await,
                Ok(Message::Close(frame)) => {
                    let (code, reason) = frame
                        .map(|frame| (u16::from(frame.code), frame.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    sender.send_close(code, &reason);
                    // Reading on lets the socket send its answer to the client's close.
                    closed_by_client = true;
                    continue;
                }
                Ok(_) => Ok(()),
                Err(error) => {
                    tracing::debug!(app = %worker.label, %error, "websocket client error");
                    break;
                }
            };
            if sent.is_err() {
                return;
            }
        }
        if !closed_by_client {
            // The client vanished without a close frame.
            sender.send_close(1006, "");
        }
    };

    // App to client: a message's window is given back once it is written to the client.
    let outbound = async {
        let mut message = BytesMut::new();
        loop {
            let event = tokio::select! {
                event = stream.session_event() => event,
                _ = going_away.cancelled() => {
                    let _ = sink.send(close_message(1001, "going away")).await;
                    sender.send_close(1001, "going away");
                    return;
                }
            };
            match event {
                SessionEvent::Message { binary, fin, data } => {
                    message.extend_from_slice(&data);
                    if !fin {
                        // A message larger than the window must keep flowing; its
                        // earlier fragments are paid back as they arrive.
                        stream.session_grant(data.len());
                        continue;
                    }
                    let whole = message.split().freeze();
                    let len = data.len();
                    let frame = if binary {
                        Message::Binary(whole)
                    } else {
                        match String::from_utf8(whole.to_vec()) {
                            Ok(text) => Message::Text(text.into()),
                            Err(_) => Message::Binary(whole),
                        }
                    };
                    if sink.send(frame).await.is_err() {
                        return;
                    }
                    stream.session_grant(len);
                }
                SessionEvent::Close { code: 1006, .. } => {
                    // The app terminated the session: drop the client without a close frame.
                    return;
                }
                SessionEvent::Close { code, reason } => {
                    let _ = sink.send(close_message(code, &reason)).await;
                    return;
                }
                SessionEvent::Lost => {
                    let _ = sink.send(close_message(1011, "app worker exited")).await;
                    return;
                }
            }
        }
    };

    tokio::pin!(inbound);
    tokio::pin!(outbound);
    tokio::select! {
        _ = &mut inbound => { let _ = tokio::time::timeout(CLOSE_WAIT, &mut outbound).await; }
        _ = &mut outbound => { let _ = tokio::time::timeout(CLOSE_WAIT, &mut inbound).await; }
    }
    drop(lease);
}

fn close_message(code: u16, reason: &str) -> Message {
    // Codes that may not be sent on the wire are replaced by a plain error close.
    let code = match code {
        1005 | 1006 | 1015 => 1011,
        code => code,
    };
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_owned().into(),
    }))
}

//! A WebSocket echo target for proxy tests (tokio-tungstenite in the test process).
//!
//! - every text and binary message is sent back unchanged;
//! - the text `close-me` makes it close with `4001 "bye from target"`;
//! - a close from the other side is recorded in [`WsTarget::closes`], a ping's
//!   payload in [`WsTarget::pings`] (the library answers it);
//! - an upgrade for a path ending in `/refuse` is refused with 403 and a body;
//! - when the client offers subprotocols including `chat.v2`, it picks `chat.v2`;
//! - every handshake's headers are kept in [`WsTarget::handshakes`];
//! - [`WsTarget::kill`] drops the listener and every connection without a close.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use http::HeaderMap;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// A running WebSocket target; stops when dropped.
pub struct WsTarget {
    pub addr: SocketAddr,
    pub closes: Arc<Mutex<Vec<(u16, String)>>>,
    pub handshakes: Arc<Mutex<Vec<HeaderMap>>>,
    pub pings: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: CancellationToken,
}

impl WsTarget {
    pub async fn start() -> WsTarget {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = WsTarget {
            addr: listener.local_addr().unwrap(),
            closes: Arc::default(),
            handshakes: Arc::default(),
            pings: Arc::default(),
            stop: CancellationToken::new(),
        };
        let (closes, handshakes, pings, stop) = (
            target.closes.clone(),
            target.handshakes.clone(),
            target.pings.clone(),
            target.stop.clone(),
        );
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                };
                let log = Log {
                    closes: closes.clone(),
                    handshakes: handshakes.clone(),
                    pings: pings.clone(),
                };
                let stop = stop.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = session(stream, log) => {}
                        _ = stop.cancelled() => {}
                    }
                });
            }
        });
        target
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops the listener and every open connection, without close messages.
    pub fn kill(&self) {
        self.stop.cancel();
    }
}

impl Drop for WsTarget {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Where one session records what it saw.
struct Log {
    closes: Arc<Mutex<Vec<(u16, String)>>>,
    handshakes: Arc<Mutex<Vec<HeaderMap>>>,
    pings: Arc<Mutex<Vec<Vec<u8>>>>,
}

// The handshake callback's error type is tungstenite's, large or not.
#[allow(clippy::result_large_err)]
async fn session(stream: TcpStream, log: Log) {
    let Log {
        closes,
        handshakes,
        pings,
    } = log;
    let callback = move |request: &Request, mut response: Response| {
        handshakes.lock().unwrap().push(request.headers().clone());
        if request.uri().path().ends_with("/refuse") {
            let mut refusal = ErrorResponse::new(Some("target says no".to_owned()));
            *refusal.status_mut() = http::StatusCode::FORBIDDEN;
            return Err(refusal);
        }
        let offered = request
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        if offered.split(',').any(|p| p.trim() == "chat.v2") {
            response
                .headers_mut()
                .insert("sec-websocket-protocol", "chat.v2".parse().unwrap());
        }
        Ok(response)
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let Ok(mut socket) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await
    else {
        return;
    };
    while let Some(Ok(message)) = socket.next().await {
        match message {
            Message::Text(text) if text.as_str() == "close-me" => {
                let frame = CloseFrame {
                    code: CloseCode::Library(4001),
                    reason: "bye from target".into(),
                };
                if socket.send(Message::Close(Some(frame))).await.is_err() {
                    return;
                }
            }
            Message::Text(_) | Message::Binary(_) => {
                if socket.send(message).await.is_err() {
                    return;
                }
            }
            Message::Close(frame) => {
                let (code, reason) = frame
                    .map(|frame| (u16::from(frame.code), frame.reason.to_string()))
                    .unwrap_or((1005, String::new()));
                closes.lock().unwrap().push((code, reason));
            }
            Message::Ping(payload) => pings.lock().unwrap().push(payload.to_vec()),
            Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}

//! WebSocket proxying: pumping messages between the client and the target once both
//! handshakes are done.
//!
//! Each direction reads one message and awaits its delivery (written and flushed)
//! before reading the next, so a slow reader on one end slows the sender on the
//! other and nothing queues up in between. Text, binary, ping, pong and close
//! messages pass through unchanged (each end also answers pings itself, as the
//! WebSocket library does, so a ping may see two pongs).
//!
//! Ending, whichever side starts it:
//!
//! - a close message is passed on with its code and reason; the side that sent it
//!   gets its close answered at once, the other side answers on its own;
//! - a client that goes away without a close: the target gets `1001` (going away);
//! - a target that goes away without a close: the client gets `1011` (the server
//!   hit a condition that ended the session);
//!
//! and after the first direction ends, the other has [`CLOSE_GRACE`] to finish
//! before both connections are dropped.

use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use http::HeaderValue;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// How long the second direction may take to finish once the first has ended.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How long sending our own close message to one side may take.
const CLOSE_SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Who the bridged session belongs to, for logs.
pub struct Session {
    /// `name@version` of the app.
    pub app: String,
    /// The rule's target as written in the config.
    pub target: String,
    /// The id of the upgrade request.
    pub request_id: HeaderValue,
}

/// How one direction ended.
enum End {
    /// A close message was passed on.
    Closed,
    /// The side read from went away without a close message.
    SourceGone(String),
    /// The side written to could not take the message.
    SinkGone(String),
}

/// Bridges `client` and `target` until the session ends.
pub async fn run<C, T>(client: WebSocketStream<C>, target: WebSocketStream<T>, session: Session)
where
    C: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    tracing::debug!(app = %session.app, target = %session.target,
        request_id = ?session.request_id, "WebSocket session opened");
    let (client_tx, client_rx) = client.split();
    let (target_tx, target_rx) = target.split();
    let upstream = pump(client_rx, target_tx);
    let downstream = pump(target_rx, client_tx);
    tokio::pin!(upstream, downstream);
    let (up, down) = tokio::select! {
        (end, _, mut target_tx) = &mut upstream => {
            after_upstream(&end, &mut target_tx).await;
            let down = match tokio::time::timeout(CLOSE_GRACE, &mut downstream).await {
                Ok((end, _, mut client_tx)) => {
                    after_downstream(&end, &mut client_tx).await;
                    Some(end)
                }
                Err(_) => None,
            };
            (Some(end), down)
        }
        (end, _, mut client_tx) = &mut downstream => {
            after_downstream(&end, &mut client_tx).await;
            if let End::SourceGone(error) = &end {
                tracing::warn!(app = %session.app, target = %session.target,
                    request_id = ?session.request_id, %error,
                    "proxy target dropped a WebSocket session; closed the client with 1011");
            }
            let up = match tokio::time::timeout(CLOSE_GRACE, &mut upstream).await {
                Ok((end, _, mut target_tx)) => {
                    after_upstream(&end, &mut target_tx).await;
                    Some(end)
                }
                Err(_) => None,
            };
            (up, Some(end))
        }
    };
    tracing::debug!(app = %session.app, request_id = ?session.request_id,
        client_to_target = %describe(up.as_ref()), target_to_client = %describe(down.as_ref()),
        "WebSocket session ended");
}

fn describe(end: Option<&End>) -> String {
    match end {
        None => "still open after the grace period".into(),
        Some(End::Closed) => "closed".into(),
        Some(End::SourceGone(error)) => format!("reading failed: {error}"),
        Some(End::SinkGone(error)) => format!("writing failed: {error}"),
    }
}

/// Passes messages from `from` to `to` until a close message has been passed on or
/// either side fails. After a close it keeps reading `from` for up to
/// [`CLOSE_GRACE`] (discarding anything that still arrives), which sends the
/// library's answer to that close and waits for the side to finish.
async fn pump<R, W>(mut from: R, mut to: W) -> (End, R, W)
where
    R: Stream<Item = Result<Message, WsError>> + Unpin,
    W: Sink<Message, Error = WsError> + Unpin,
{
    let end = loop {
        match from.next().await {
            Some(Ok(message)) => {
                let closing = message.is_close();
                let sent = to.send(message).await;
                if closing {
                    // A close that cannot be passed on answers one the other side
                    // already sent: the session is closing either way.
                    let drain = async { while let Some(Ok(_)) = from.next().await {} };
                    let _ = tokio::time::timeout(CLOSE_GRACE, drain).await;
                    break End::Closed;
                }
                if let Err(error) = sent {
                    break End::SinkGone(error.to_string());
                }
            }
            Some(Err(error)) => break End::SourceGone(error.to_string()),
            None => break End::SourceGone("connection closed".into()),
        }
    };
    (end, from, to)
}

/// The client side ended: a client that vanished is reported to the target.
async fn after_upstream<W>(end: &End, target: &mut W)
where
    W: Sink<Message, Error = WsError> + Unpin,
{
    if let End::SourceGone(_) = end {
        send_close(target, CloseCode::Away, "client went away").await;
    }
}

/// The target side ended: a target that vanished is reported to the client.
async fn after_downstream<W>(end: &End, client: &mut W)
where
    W: Sink<Message, Error = WsError> + Unpin,
{
    if let End::SourceGone(_) = end {
        send_close(
            client,
            CloseCode::Error,
            "proxy target closed the connection",
        )
        .await;
    }
}

async fn send_close<W>(sink: &mut W, code: CloseCode, reason: &'static str)
where
    W: Sink<Message, Error = WsError> + Unpin,
{
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(CLOSE_SEND_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
}

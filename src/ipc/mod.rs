//! The framed IPC between the supervisor and each `bun` child.
//!
//! # Protocol (version 1)
//!
//! One Unix-socket connection per child carries every request, response and control
//! message, multiplexed by stream id. The supervisor listens on a per-child socket path
//! (given to the child in `BUNTIME_IPC_PATH`); the shim connects to it at start.
//!
//! ## Frame
//!
//! ```text
//! offset 0  u32 LE  length   bytes after this field (5 + payload length)
//! offset 4  u8      type
//! offset 5  u32 LE  stream   0 for connection-level frames, else a request stream
//! offset 9  payload          length - 5 bytes
//! ```
//!
//! A payload is at most [`MAX_PAYLOAD`] bytes (1 MiB); a `DATA` payload at most
//! [`MAX_CHUNK`] bytes (64 KiB). A longer frame, an unknown type, a frame on the wrong
//! stream or a malformed payload is a protocol error: the supervisor kills the child.
//!
//! ## Frame types
//!
//! | type | name | direction | stream | payload |
//! |------|------|-----------|--------|---------|
//! | 0x01 | HELLO | child → supervisor | 0 | JSON `{"protocol":1,"pid":N,"bun":"1.4.5"}` |
//! | 0x02 | READY | child → supervisor | 0 | JSON `{"exports":["fetch","routes","websocket","onIdle","onTerminate"]}` (those present) |
//! | 0x03 | FATAL | child → supervisor | 0 | JSON `{"message":"…","stack":"…"}`: the app could not start; the child exits 1 after it |
//! | 0x10 | REQUEST | supervisor → child | n | request head (below) |
//! | 0x11 | RESPONSE | child → supervisor | n | response head (below) |
//! | 0x12 | DATA | both | n | body bytes, 1..=65536 of them |
//! | 0x13 | END | both | n | empty: the sender's body on stream n is complete |
//! | 0x14 | CREDIT | both | n | u32 LE: more body bytes the receiver of this frame may send on n |
//! | 0x15 | CANCEL | supervisor → child | n | empty: client gone or timed out; abort `req.signal`, stop sending |
//! | 0x16 | ERROR | child → supervisor | n | JSON `{"message":"…","stack":"…"}`: the handler failed; ends stream n |
//! | 0x20 | PING | supervisor → child | 0 | 8 bytes, echoed back in PONG |
//! | 0x21 | PONG | child → supervisor | 0 | the 8 bytes of the PING |
//! | 0x22 | IDLE | supervisor → child | 0 | empty: call the app's `onIdle()` |
//! | 0x23 | TERMINATE | supervisor → child | 0 | empty: call `onTerminate()`, flush, exit 0 |
//! | 0x24 | STATS_REQUEST | supervisor → child | 0 | empty |
//! | 0x25 | STATS | child → supervisor | 0 | JSON `{"rss":N,"heapUsed":N,"heapTotal":N,"external":N}` |
//!
//! | 0x30 | WS_ACCEPT | child → supervisor | n | u16 header count, headers: the app called `server.upgrade(req)`; stream n becomes a WebSocket session |
//! | 0x31 | WS_MESSAGE | both | n | u8 flags (bit 0: binary, bit 1: last fragment), then 0..=65536 bytes of the message |
//! | 0x32 | WS_CLOSE | both | n | u16 close code, then the reason (UTF-8, at most 123 bytes) |
//!
//! ## WebSocket sessions
//!
//! A client's upgrade request travels as an ordinary REQUEST (its `upgrade`,
//! `connection` and `sec-websocket-*` headers included). If the app's `fetch` calls
//! `server.upgrade(req, { data, headers })`, the shim answers WS_ACCEPT instead of
//! RESPONSE, carrying the extra response headers (for instance the chosen
//! `sec-websocket-protocol`), and calls the app's `websocket.open(ws)`. If the app
//! returns a Response instead, the exchange is plain HTTP. After WS_ACCEPT the stream
//! carries WS_MESSAGE frames both ways: a message is one or more fragments, the last
//! with bit 1 set, of at most 64 KiB each, and the data bytes spend the same
//! per-stream windows as DATA (the flags byte does not count); the receiver grants
//! CREDIT once a message is delivered (to the app's `message` handler, or written to
//! the client). Each side sends exactly one WS_CLOSE: the side that closes first sends
//! it, the other answers with its own (echoing the code), and a side forgets the
//! session once it has both sent and received one. The app's `close` handler runs
//! once, with the code of the first WS_CLOSE. A client that vanishes without a close
//! frame is reported as WS_CLOSE 1006; CANCEL ends a session at once (the app sees
//! 1006). A child that exits closes its clients with 1011.
//!
//! ## Heads
//!
//! Integers are little-endian. Header names are lower-case; header values are raw bytes
//! (they need not be UTF-8) and a name may repeat (`set-cookie`).
//!
//! ```text
//! REQUEST   u8 flags (bit 0: a body follows as DATA… END)
//!           u8 method length, method
//!           u16 url length, url        absolute URL the app sees as req.url
//!           u8 address length, address  client IP address as text, may be empty
//!           u16 header count, then per header:
//!             u16 name length, name, u16 value length, value
//! RESPONSE  u8 flags (bit 0: a body follows as DATA… END)
//!           u16 status
//!           u16 header count, headers as above
//! ```
//!
//! Without the body flag, the body is empty and no DATA or END follows.
//!
//! ## Streams, flow control and cancellation
//!
//! The supervisor opens stream ids 1, 2, 3, … and never reuses one on a connection.
//! A stream ends when the supervisor has received the child's END or ERROR for it,
//! or when the supervisor sends CANCEL. Frames that arrive for a stream that has ended
//! are ignored (they may cross a CANCEL); a frame for a stream id never opened is a
//! protocol error.
//!
//! Each direction of each stream has its own send window of [`INITIAL_WINDOW`] bytes
//! (256 KiB). DATA spends window; a sender with no window waits. The receiver sends
//! CREDIT for bytes once it has handed them on (to the app's body reader, or to the
//! HTTP client), batching small amounts. Sending DATA beyond the window is a protocol
//! error. Because every stream has its own window, a slow reader or a large upload on
//! one stream never stalls another.
//!
//! Both sides batch writes: the shim flushes its queue once per microtask, the
//! supervisor's writer drains its queue before one write.

mod connection;
mod events;
mod frame;
mod head;
mod outbox;
mod stream_table;

pub use connection::{
    ChildFailure, Connection, ControlEvent, IpcBody, ResponseStart, SessionEvent, SessionSender,
    StreamHandle,
};
pub use frame::{
    decode_frame, encode_frame, Frame, FrameType, HEADER_LEN, INITIAL_WINDOW, MAX_CHUNK,
    MAX_PAYLOAD,
};
pub use head::{
    decode_request, decode_response, decode_ws_accept, encode_request, encode_response,
    encode_ws_accept, BadResponseHead, OutgoingRequest, RequestHead, ResponseHead, FLAG_BODY,
};

/// WS_MESSAGE flag: the message is binary.
pub const WS_BINARY: u8 = 1;
/// WS_MESSAGE flag: this fragment ends the message.
pub const WS_FINAL: u8 = 2;

/// A child broke the framing rules; the connection cannot be trusted any more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The length field is too small to hold a header.
    #[error("frame length {0} is shorter than a frame header")]
    FrameTooShort(usize),
    /// The payload is larger than [`MAX_PAYLOAD`].
    #[error("frame payload of {0} bytes exceeds the 1 MiB limit")]
    FrameTooLong(usize),
    /// The type byte names no frame type.
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    /// A DATA frame is empty or larger than [`MAX_CHUNK`].
    #[error("DATA frame of {0} bytes (allowed 1..=65536)")]
    BadChunk(usize),
    /// A head ended before its fields did.
    #[error("truncated head")]
    TruncatedHead,
    /// A head had bytes after its last field.
    #[error("{0} stray bytes after a head")]
    TrailingBytes(usize),
    /// A head is too large for the protocol's field sizes.
    #[error("head too large to encode")]
    HeadTooLarge,
    /// A frame the child must never send, or sent on the wrong stream.
    #[error("unexpected {kind:?} frame on stream {stream}")]
    Unexpected {
        /// The frame type.
        kind: FrameType,
        /// The stream it came on.
        stream: u32,
    },
    /// A frame for a stream id the supervisor never opened.
    #[error("frame for stream {0}, which was never opened")]
    UnknownStream(u32),
    /// The child sent more body bytes than its window allowed.
    #[error("stream {0}: DATA beyond the flow-control window")]
    WindowExceeded(u32),
    /// The child granted an absurd amount of credit.
    #[error("stream {0}: credit beyond any sane window")]
    CreditOverflow(u32),
    /// A JSON control payload did not parse.
    #[error("bad {kind:?} payload: {reason}")]
    BadJson {
        /// The frame type.
        kind: FrameType,
        /// What the JSON parser said.
        reason: String,
    },
    /// The handshake named another protocol version.
    #[error("child speaks protocol {0}, the supervisor speaks 1")]
    Version(u64),
}

//! One multiplexed connection to a child: a reader task, a writer task, and the table
//! of open streams between them.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame as BodyFrame, SizeHint};
use http_body_util::BodyExt;
use serde::Deserialize;
use tokio::io::AsyncReadExt;
use tokio::net::unix::OwnedReadHalf;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use super::events;
use super::frame::{decode_frame, encode_frame, Frame, FrameType, INITIAL_WINDOW, MAX_CHUNK};
use super::head::{decode_response, encode_request, OutgoingRequest, ResponseHead};
use super::outbox::{run_writer, Outbox};
use super::stream_table::StreamMap;
use super::ProtocolError;
use crate::sync::lock;

/// Credit is granted back to the child once this many body bytes were handed on.
const CREDIT_BATCH: u32 = 64 * 1024;
/// A child may never open a send window larger than this on one stream.
const MAX_WINDOW: usize = 64 * 1024 * 1024;

/// A JSON failure report from the child (FATAL or ERROR frames).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ChildFailure {
    /// The error message.
    #[serde(default)]
    pub message: String,
    /// The JavaScript stack, when there is one.
    #[serde(default)]
    pub stack: Option<String>,
}

/// Connection-level news for the task that owns the child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlEvent {
    /// The handshake: protocol version checked, pid and Bun version reported.
    Hello {
        /// The child's pid as it sees itself.
        pid: u32,
        /// The Bun version the child runs.
        bun: String,
    },
    /// The app is imported and serves requests; `exports` lists what it has.
    Ready {
        /// Names of the app's exports the shim found.
        exports: Vec<String>,
    },
    /// The app could not start.
    Fatal(ChildFailure),
    /// Answer to a PING.
    Pong([u8; 8]),
    /// Memory figures, raw JSON.
    Stats(serde_json::Value),
    /// The connection is gone; `None` on a clean end of stream.
    Closed(Option<ProtocolError>),
}

/// What a stream's consumer receives, in order.
#[derive(Debug)]
enum StreamEvent {
    Head(ResponseHead),
    Data(Bytes),
    End,
    Failed(ChildFailure),
    Lost,
    WsAccept(Vec<(String, Bytes)>),
    WsMessage { flags: u8, data: Bytes },
    WsClose { code: u16, reason: String },
}

/// What a WebSocket session's child side does next.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// A fragment of a message from the app.
    Message {
        /// Binary rather than text.
        binary: bool,
        /// The last fragment of the message.
        fin: bool,
        /// The fragment's bytes.
        data: Bytes,
    },
    /// The app closed the session, or answered the client's close.
    Close {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The child went away.
    Lost,
}

/// The first thing a stream answers: a head, or why there is none.
#[derive(Debug)]
pub enum ResponseStart {
    /// The child answered with this head; the body follows in the handle.
    Head(ResponseHead),
    /// The handler threw or rejected.
    Failed(ChildFailure),
    /// The connection closed (child exit, crash or protocol error) first.
    Lost,
    /// The app accepted a WebSocket upgrade, with these extra response headers.
    Upgrade(Vec<(String, Bytes)>),
}

struct Slot {
    events: events::Sender<StreamEvent>,
    /// Bytes the supervisor may still send on this stream; CREDIT adds permits.
    send_window: Arc<Semaphore>,
    /// Bytes the child may still send on this stream before it must wait for credit.
    receive_window: u32,
}

struct Table {
    next_id: u32,
    open: StreamMap<Slot>,
    /// Set once the connection is gone; no stream may open after that.
    closed: bool,
}

struct Shared {
    /// Encoded frames on their way to the child. Unbounded on purpose: every producer
    /// is bounded already, bodies by their stream windows and heads by requests in flight.
    outbox: Arc<Outbox>,
    /// Open streams; held only for map updates, never across an await.
    table: Mutex<Table>,
    /// Set once the reader has seen the connection end; read without the table lock.
    closed: AtomicBool,
}

impl Drop for Shared {
    /// The last handle is gone: the writer finishes what is queued and ends, which
    /// shuts the socket's write half and tells the child the supervisor is done.
    fn drop(&mut self) {
        self.outbox.close();
    }
}

/// A handle to a child's connection; cheap to clone.
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
}

impl Connection {
    /// Starts the reader and writer tasks on an accepted socket. Connection-level
    /// frames and the connection's end are reported on `control`.
    pub fn start(socket: UnixStream, control: mpsc::UnboundedSender<ControlEvent>) -> Self {
        let (read_half, write_half) = socket.into_split();
        let outbox = Outbox::new(write_half);
        let shared = Arc::new(Shared {
            outbox: outbox.clone(),
            table: Mutex::new(Table {
                next_id: 1,
                open: StreamMap::default(),
                closed: false,
            }),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(run_writer(outbox));
        tokio::spawn(read_loop(read_half, shared.clone(), control));
        Connection { shared }
    }

    /// Sends a connection-level frame (PING, IDLE, TERMINATE, STATS_REQUEST).
    pub fn send_control(&self, kind: FrameType, payload: &[u8]) {
        self.shared
            .outbox
            .send(|out| encode_frame(out, kind, 0, payload));
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Opens a stream by sending a request head. With `body`, the body is pumped to
    /// the child in the background within the stream's window.
    pub fn open_stream<B>(
        &self,
        request: &OutgoingRequest<'_>,
        body: Option<B>,
    ) -> Result<StreamHandle, ProtocolError>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Send,
    {
        let (id, events, send_window) = self.register(request, body.is_some(), None)?;
        let pump = body.map(|body| {
            tokio::spawn(pump_body(
                self.shared.clone(),
                id,
                body,
                send_window.clone(),
            ))
        });
        Ok(self.handle(id, events, send_window, pump))
    }

    /// Opens a stream for a request whose whole body is already in memory and fits
    /// the initial window: head, body and end go out in one write, with no pump task.
    pub fn open_stream_with_body(
        &self,
        request: &OutgoingRequest<'_>,
        body: Bytes,
    ) -> Result<StreamHandle, ProtocolError> {
        if body.len() > INITIAL_WINDOW as usize {
            return Err(ProtocolError::HeadTooLarge);
        }
        let (id, events, send_window) = self.register(request, true, Some(&body))?;
        if let Ok(permit) = send_window.try_acquire_many(body.len() as u32) {
            permit.forget();
        }
        Ok(self.handle(id, events, send_window, None))
    }

    /// Allocates a stream id, records the stream and queues its head (and, when
    /// given, its whole body and END) under the table lock, so ids reach the child
    /// in order.
    fn register(
        &self,
        request: &OutgoingRequest<'_>,
        has_body: bool,
        whole_body: Option<&Bytes>,
    ) -> Result<(u32, events::Receiver<StreamEvent>, Arc<Semaphore>), ProtocolError> {
        let (events_tx, events) = events::queue();
        let send_window = Arc::new(Semaphore::new(INITIAL_WINDOW as usize));
        let mut table = lock(&self.shared.table);
        let id = table.next_id;
        let queued = self.shared.outbox.send(|out| {
            encode_request(out, id, has_body, request)?;
            if let Some(body) = whole_body {
                for chunk in body.chunks(MAX_CHUNK) {
                    encode_frame(out, FrameType::Data, id, chunk);
                }
                encode_frame(out, FrameType::End, id, &[]);
            }
            Ok(())
        });
        match queued {
            Some(Err(error)) => return Err(error),
            // The reader holds off until the table lock is released, so the child's
            // answer cannot arrive before the stream is in the table.
            Some(Ok(())) if !table.closed => {
                table.open.insert(
                    id,
                    Slot {
                        events: events_tx,
                        send_window: send_window.clone(),
                        receive_window: INITIAL_WINDOW,
                    },
                );
            }
            _ => {
                let _ = events_tx.send(StreamEvent::Lost);
            }
        }
        table.next_id = id.wrapping_add(1).max(1);
        drop(table);
        Ok((id, events, send_window))
    }

    fn handle(
        &self,
        id: u32,
        events: events::Receiver<StreamEvent>,
        send_window: Arc<Semaphore>,
        pump: Option<JoinHandle<()>>,
    ) -> StreamHandle {
        StreamHandle {
            connection: self.clone(),
            id,
            send_window,
            events,
            pump,
            finished: false,
            unacknowledged: 0,
            pending: VecDeque::new(),
        }
    }

    /// Queues one frame; false when the connection is closed.
    fn send_frame(&self, kind: FrameType, stream: u32, payload: &[u8]) -> bool {
        self.shared
            .outbox
            .send(|out| encode_frame(out, kind, stream, payload))
            .is_some()
    }
}

/// One request in flight on a connection. Dropping it before the response ended
/// cancels the request in the child.
pub struct StreamHandle {
    connection: Connection,
    id: u32,
    /// Bytes the supervisor may still send on this stream.
    send_window: Arc<Semaphore>,
    events: events::Receiver<StreamEvent>,
    pump: Option<JoinHandle<()>>,
    /// The child ended the stream (END, ERROR) or the connection is gone.
    finished: bool,
    /// Body bytes handed on since the last CREDIT.
    unacknowledged: u32,
    /// Events already taken off the channel by [`StreamHandle::take_complete_body`].
    pending: VecDeque<StreamEvent>,
}

impl StreamHandle {
    /// The stream id on its connection.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Waits for the response head.
    pub async fn response(&mut self) -> ResponseStart {
        match self.events.recv().await {
            Some(StreamEvent::Head(head)) => {
                if !head.has_body {
                    self.finished = true;
                }
                ResponseStart::Head(head)
            }
            Some(StreamEvent::Failed(failure)) => {
                self.finished = true;
                ResponseStart::Failed(failure)
            }
            Some(StreamEvent::WsAccept(headers)) => ResponseStart::Upgrade(headers),
            // A body before a head is refused by the reader; treat anything else as loss.
            _ => {
                self.finished = true;
                ResponseStart::Lost
            }
        }
    }

    /// The whole body, if the child has already sent all of it (small responses
    /// usually arrive with their head). Otherwise what arrived stays queued for
    /// [`IpcBody`].
    pub fn take_complete_body(&mut self) -> Option<Bytes> {
        if self.finished {
            return Some(Bytes::new());
        }
        loop {
            match self.events.try_recv() {
                Some(StreamEvent::End) => break,
                Some(event @ StreamEvent::Data(_)) => self.pending.push_back(event),
                Some(other) => {
                    self.pending.push_back(other);
                    return None;
                }
                None => return None,
            }
        }
        self.finished = true;
        let mut chunks = std::mem::take(&mut self.pending)
            .into_iter()
            .filter_map(|event| match event {
                StreamEvent::Data(chunk) => Some(chunk),
                _ => None,
            });
        let first = chunks.next().unwrap_or_default();
        let rest: Vec<Bytes> = chunks.collect();
        if rest.is_empty() {
            return Some(first);
        }
        let mut whole = BytesMut::from(&first[..]);
        for chunk in rest {
            whole.extend_from_slice(&chunk);
        }
        Some(whole.freeze())
    }

    /// Turns the rest of the stream into an HTTP body; `keepalive` lives as long as
    /// the body does (it holds the worker lease).
    pub fn into_body(self, keepalive: Box<dyn Send + Sync>) -> IpcBody {
        IpcBody {
            stream: self,
            _keepalive: keepalive,
        }
    }

    /// The next event of a WebSocket session.
    pub async fn session_event(&mut self) -> SessionEvent {
        match self.events.recv().await {
            Some(StreamEvent::WsMessage { flags, data }) => SessionEvent::Message {
                binary: flags & super::WS_BINARY != 0,
                fin: flags & super::WS_FINAL != 0,
                data,
            },
            Some(StreamEvent::WsClose { code, reason }) => {
                self.finished = true;
                SessionEvent::Close { code, reason }
            }
            _ => {
                self.finished = true;
                SessionEvent::Lost
            }
        }
    }

    /// Gives the child back window for `len` bytes of session messages handed on.
    pub fn session_grant(&mut self, len: usize) {
        self.grant(u32::try_from(len).unwrap_or(u32::MAX));
    }

    /// A handle for sending on this stream's session, usable from another task.
    pub fn session_sender(&self) -> SessionSender {
        SessionSender {
            connection: self.connection.clone(),
            id: self.id,
            send_window: self.send_window.clone(),
        }
    }

    fn grant(&mut self, len: u32) {
        self.unacknowledged += len;
        if self.unacknowledged < CREDIT_BATCH {
            return;
        }
        let credit = std::mem::take(&mut self.unacknowledged);
        {
            let mut table = lock(&self.connection.shared.table);
            match table.open.get_mut(&self.id) {
                Some(slot) => slot.receive_window = slot.receive_window.saturating_add(credit),
                None => return,
            }
        }
        self.connection
            .send_frame(FrameType::Credit, self.id, &credit.to_le_bytes());
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        if let Some(pump) = self.pump.take() {
            pump.abort();
        }
        if self.finished {
            return;
        }
        let was_open = lock(&self.connection.shared.table)
            .open
            .remove(&self.id)
            .is_some();
        if was_open {
            self.connection.send_frame(FrameType::Cancel, self.id, &[]);
        }
    }
}

/// Sends WebSocket messages and closes on a session stream.
#[derive(Clone)]
pub struct SessionSender {
    connection: Connection,
    id: u32,
    send_window: Arc<Semaphore>,
}

/// The child's connection is gone.
#[derive(Debug, thiserror::Error)]
#[error("child connection lost")]
pub struct SessionLost;

impl SessionSender {
    /// Sends one message in fragments of at most 64 KiB, waiting for window as the
    /// app takes them: a slow app slows the client.
    pub async fn send_message(&self, binary: bool, mut data: Bytes) -> Result<(), SessionLost> {
        let binary_flag = if binary { super::WS_BINARY } else { 0 };
        loop {
            let len = data.len().min(MAX_CHUNK);
            if len > 0 {
                let permit = self
                    .send_window
                    .acquire_many(len as u32)
                    .await
                    .map_err(|_| SessionLost)?;
                permit.forget();
            }
            let chunk = data.split_to(len);
            let flags = binary_flag | if data.is_empty() { super::WS_FINAL } else { 0 };
            self.connection
                .shared
                .outbox
                .send(|out| {
                    out.reserve(10 + chunk.len());
                    super::frame::put_frame_header(
                        out,
                        FrameType::WsMessage,
                        self.id,
                        chunk.len() + 1,
                    );
                    out.extend_from_slice(&[flags]);
                    out.extend_from_slice(&chunk);
                })
                .ok_or(SessionLost)?;
            if data.is_empty() {
                return Ok(());
            }
        }
    }

    /// Sends the session's close with `code` and `reason` (cut to 123 bytes).
    pub fn send_close(&self, code: u16, reason: &str) {
        let mut cut = reason.len().min(123);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut payload = Vec::with_capacity(2 + cut);
        payload.extend_from_slice(&code.to_le_bytes());
        payload.extend_from_slice(&reason.as_bytes()[..cut]);
        self.connection
            .send_frame(FrameType::WsClose, self.id, &payload);
    }
}

/// An error in a response body streamed from a child.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The app's body failed after the head was sent.
    #[error("app body failed: {0}")]
    Failed(String),
    /// The child went away mid-body.
    #[error("child connection lost mid-body")]
    Lost,
}

/// A response body streamed from a child, granting credit as the client takes it.
pub struct IpcBody {
    stream: StreamHandle,
    /// Held for the life of the body; dropped when the response is done or abandoned.
    _keepalive: Box<dyn Send + Sync>,
}

impl Body for IpcBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<BodyFrame<Bytes>, BodyError>>> {
        let stream = &mut self.stream;
        if stream.finished && stream.pending.is_empty() {
            return Poll::Ready(None);
        }
        let next = match stream.pending.pop_front() {
            Some(event) => Poll::Ready(Some(event)),
            None => stream.events.poll_recv(cx),
        };
        match next {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(StreamEvent::Data(chunk))) => {
                stream.grant(chunk.len() as u32);
                Poll::Ready(Some(Ok(BodyFrame::data(chunk))))
            }
            Poll::Ready(Some(StreamEvent::End)) => {
                stream.finished = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(StreamEvent::Failed(failure))) => {
                stream.finished = true;
                Poll::Ready(Some(Err(BodyError::Failed(failure.message))))
            }
            Poll::Ready(
                Some(
                    StreamEvent::Head(_)
                    | StreamEvent::Lost
                    | StreamEvent::WsAccept(_)
                    | StreamEvent::WsMessage { .. }
                    | StreamEvent::WsClose { .. },
                )
                | None,
            ) => {
                stream.finished = true;
                Poll::Ready(Some(Err(BodyError::Lost)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stream.finished && self.stream.pending.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

async fn pump_body<B>(shared: Arc<Shared>, id: u32, mut body: B, window: Arc<Semaphore>)
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Send,
{
    let send = |kind: FrameType, payload: &[u8]| {
        shared
            .outbox
            .send(|out| encode_frame(out, kind, id, payload))
            .is_some()
    };
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                let Ok(mut data) = frame.into_data() else {
                    continue;
                };
                while !data.is_empty() {
                    let len = data.len().min(MAX_CHUNK);
                    let Ok(permit) = window.acquire_many(len as u32).await else {
                        return;
                    };
                    permit.forget();
                    let chunk = data.split_to(len);
                    if !send(FrameType::Data, &chunk) {
                        return;
                    }
                }
            }
            Some(Err(_)) => {
                // The client's upload broke off: the request cannot complete.
                let still_open = lock(&shared.table).open.remove(&id);
                if let Some(slot) = still_open {
                    let _ = slot.events.send(StreamEvent::Lost);
                    send(FrameType::Cancel, &[]);
                }
                return;
            }
            None => {
                send(FrameType::End, &[]);
                return;
            }
        }
    }
}

async fn read_loop(
    mut socket: OwnedReadHalf,
    shared: Arc<Shared>,
    control: mpsc::UnboundedSender<ControlEvent>,
) {
    let mut buffer = BytesMut::with_capacity(64 * 1024);
    let outcome = loop {
        match decode_frame(&mut buffer) {
            Ok(Some(frame)) => {
                if let Err(error) = dispatch(&shared, &control, frame) {
                    break Some(error);
                }
                continue;
            }
            Ok(None) => {}
            Err(error) => break Some(error),
        }
        if buffer.capacity() - buffer.len() < 4096 {
            buffer.reserve(64 * 1024);
        }
        match socket.read_buf(&mut buffer).await {
            Ok(0) | Err(_) => break None,
            Ok(_) => {}
        }
    };
    let streams = {
        let mut table = lock(&shared.table);
        table.closed = true;
        shared.closed.store(true, Ordering::Release);
        std::mem::take(&mut table.open)
    };
    for (_, slot) in streams {
        slot.send_window.close();
        let _ = slot.events.send(StreamEvent::Lost);
    }
    let _ = control.send(ControlEvent::Closed(outcome));
}

fn dispatch(
    shared: &Shared,
    control: &mpsc::UnboundedSender<ControlEvent>,
    frame: Frame,
) -> Result<(), ProtocolError> {
    let unexpected = || ProtocolError::Unexpected {
        kind: frame.kind,
        stream: frame.stream,
    };
    match frame.kind {
        FrameType::Hello
        | FrameType::Ready
        | FrameType::Fatal
        | FrameType::Pong
        | FrameType::Stats => {
            if frame.stream != 0 {
                return Err(unexpected());
            }
            let event = control_event(frame.kind, &frame.payload)?;
            let _ = control.send(event);
            Ok(())
        }
        FrameType::Response
        | FrameType::Data
        | FrameType::End
        | FrameType::Error
        | FrameType::Credit
        | FrameType::WsAccept
        | FrameType::WsMessage
        | FrameType::WsClose => {
            if frame.stream == 0 {
                return Err(unexpected());
            }
            stream_frame(shared, frame)
        }
        _ => Err(unexpected()),
    }
}

fn stream_frame(shared: &Shared, frame: Frame) -> Result<(), ProtocolError> {
    let id = frame.stream;
    let mut table = lock(&shared.table);
    let Some(slot) = table.open.get_mut(&id) else {
        // Frames may cross a CANCEL; only ids never handed out are an error.
        return if id < table.next_id {
            Ok(())
        } else {
            Err(ProtocolError::UnknownStream(id))
        };
    };
    match frame.kind {
        FrameType::Response => {
            let head = decode_response(frame.payload)?;
            let ends = !head.has_body;
            let _ = slot.events.send(StreamEvent::Head(head));
            if ends {
                table.open.remove(&id);
            }
        }
        FrameType::Data => {
            let len = frame.payload.len() as u32;
            if len > slot.receive_window {
                return Err(ProtocolError::WindowExceeded(id));
            }
            slot.receive_window -= len;
            let _ = slot.events.send(StreamEvent::Data(frame.payload));
        }
        FrameType::End => {
            let _ = slot.events.send(StreamEvent::End);
            table.open.remove(&id);
        }
        FrameType::Error => {
            let failure = parse_json::<ChildFailure>(FrameType::Error, &frame.payload)?;
            let _ = slot.events.send(StreamEvent::Failed(failure));
            table.open.remove(&id);
        }
        FrameType::WsAccept => {
            let headers = super::head::decode_ws_accept(frame.payload)?;
            let _ = slot.events.send(StreamEvent::WsAccept(headers));
        }
        FrameType::WsMessage => {
            let mut payload = frame.payload;
            let flags = payload[0];
            let data = payload.split_off(1);
            let len = data.len() as u32;
            if len > slot.receive_window {
                return Err(ProtocolError::WindowExceeded(id));
            }
            slot.receive_window -= len;
            let _ = slot.events.send(StreamEvent::WsMessage { flags, data });
        }
        FrameType::WsClose => {
            if frame.payload.len() < 2 || frame.payload.len() > 2 + 123 {
                return Err(ProtocolError::TruncatedHead);
            }
            let code = u16::from_le_bytes([frame.payload[0], frame.payload[1]]);
            let reason = String::from_utf8_lossy(&frame.payload[2..]).into_owned();
            let _ = slot.events.send(StreamEvent::WsClose { code, reason });
            table.open.remove(&id);
        }
        FrameType::Credit => {
            let credit = <[u8; 4]>::try_from(&frame.payload[..])
                .map(u32::from_le_bytes)
                .map_err(|_| ProtocolError::TruncatedHead)? as usize;
            if slot.send_window.available_permits() + credit > MAX_WINDOW {
                return Err(ProtocolError::CreditOverflow(id));
            }
            slot.send_window.add_permits(credit);
        }
        kind => return Err(ProtocolError::Unexpected { kind, stream: id }),
    }
    Ok(())
}

#[derive(Deserialize)]
struct Hello {
    protocol: u64,
    #[serde(default)]
    pid: u32,
    #[serde(default)]
    bun: String,
}

#[derive(Deserialize)]
struct Ready {
    #[serde(default)]
    exports: Vec<String>,
}

fn control_event(kind: FrameType, payload: &[u8]) -> Result<ControlEvent, ProtocolError> {
    Ok(match kind {
        FrameType::Hello => {
            let hello: Hello = parse_json(kind, payload)?;
            if hello.protocol != 1 {
                return Err(ProtocolError::Version(hello.protocol));
            }
            ControlEvent::Hello {
                pid: hello.pid,
                bun: hello.bun,
            }
        }
        FrameType::Ready => ControlEvent::Ready {
            exports: parse_json::<Ready>(kind, payload)?.exports,
        },
        FrameType::Fatal => ControlEvent::Fatal(parse_json(kind, payload)?),
        FrameType::Pong => ControlEvent::Pong(
            <[u8; 8]>::try_from(payload).map_err(|_| ProtocolError::TruncatedHead)?,
        ),
        _ => ControlEvent::Stats(parse_json(kind, payload)?),
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(
    kind: FrameType,
    payload: &[u8],
) -> Result<T, ProtocolError> {
    serde_json::from_slice(payload).map_err(|error| ProtocolError::BadJson {
        kind,
        reason: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::head::encode_response;
    use http::HeaderMap;
    use tokio::io::AsyncWriteExt;

    fn pair() -> (
        Connection,
        UnixStream,
        mpsc::UnboundedReceiver<ControlEvent>,
    ) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let (control_tx, control) = mpsc::unbounded_channel();
        (Connection::start(ours, control_tx), theirs, control)
    }

    fn open(connection: &Connection) -> StreamHandle {
        connection
            .open_stream::<http_body_util::Empty<Bytes>>(
                &OutgoingRequest {
                    method: "GET",
                    url: "http://x/",
                    address: "",
                    headers: &HeaderMap::new(),
                    overrides: &[],
                },
                None,
            )
            .unwrap()
    }

    async fn send(child: &mut UnixStream, kind: FrameType, stream: u32, payload: &[u8]) {
        let mut out = BytesMut::new();
        encode_frame(&mut out, kind, stream, payload);
        child.write_all(&out).await.unwrap();
    }

    #[tokio::test]
    async fn a_malformed_frame_closes_the_connection_and_fails_open_streams() {
        let (connection, mut child, mut control) = pair();
        let mut stream = open(&connection);
        child
            .write_all(&[5, 0, 0, 0, 0x7f, 0, 0, 0, 0])
            .await
            .unwrap();
        assert_eq!(
            control.recv().await,
            Some(ControlEvent::Closed(Some(ProtocolError::UnknownType(0x7f))))
        );
        assert!(matches!(stream.response().await, ResponseStart::Lost));
        assert!(connection.is_closed());
    }

    #[tokio::test]
    async fn data_beyond_the_window_is_a_protocol_error() {
        let (connection, mut child, mut control) = pair();
        let _stream = open(&connection);
        let head = ResponseHead {
            has_body: true,
            status: 200,
            headers: vec![],
        };
        let mut out = BytesMut::new();
        encode_response(&mut out, 1, &head).unwrap();
        child.write_all(&out).await.unwrap();
        let chunk = vec![0u8; MAX_CHUNK];
        for _ in 0..(INITIAL_WINDOW as usize / MAX_CHUNK) + 1 {
            send(&mut child, FrameType::Data, 1, &chunk).await;
        }
        assert_eq!(
            control.recv().await,
            Some(ControlEvent::Closed(Some(ProtocolError::WindowExceeded(1))))
        );
    }

    #[tokio::test]
    async fn frames_for_streams_never_opened_are_refused_but_late_ones_are_ignored() {
        let (connection, mut child, mut control) = pair();
        drop(open(&connection)); // stream 1, cancelled at once
        send(&mut child, FrameType::End, 1, &[]).await;
        send(&mut child, FrameType::Pong, 0, &[1, 2, 3, 4, 5, 6, 7, 8]).await;
        assert_eq!(
            control.recv().await,
            Some(ControlEvent::Pong([1, 2, 3, 4, 5, 6, 7, 8]))
        );
        send(&mut child, FrameType::End, 9, &[]).await;
        assert_eq!(
            control.recv().await,
            Some(ControlEvent::Closed(Some(ProtocolError::UnknownStream(9))))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_child_sees_stream_ids_in_increasing_order_under_concurrency() {
        let (connection, mut child, _control) = pair();
        let openers: Vec<_> = (0..8)
            .map(|_| {
                let connection = connection.clone();
                tokio::spawn(async move {
                    let mut handles = Vec::new();
                    for _ in 0..250 {
                        handles.push(open(&connection));
                        tokio::task::yield_now().await;
                    }
                    handles
                })
            })
            .collect();
        let mut handles = Vec::new();
        for opener in openers {
            handles.extend(opener.await.unwrap());
        }
        let mut buffer = BytesMut::new();
        let mut last = 0;
        let mut seen = 0;
        while seen < 2000 {
            tokio::io::AsyncReadExt::read_buf(&mut child, &mut buffer)
                .await
                .unwrap();
            while let Some(frame) = decode_frame(&mut buffer).unwrap() {
                assert_eq!(frame.kind, FrameType::Request);
                assert!(frame.stream > last, "stream {} after {last}", frame.stream);
                last = frame.stream;
                seen += 1;
            }
        }
        drop(handles);
    }

    #[tokio::test]
    async fn a_handshake_with_another_protocol_version_is_refused() {
        let (_connection, mut child, mut control) = pair();
        send(
            &mut child,
            FrameType::Hello,
            0,
            br#"{"protocol":2,"pid":1,"bun":"x"}"#,
        )
        .await;
        assert_eq!(
            control.recv().await,
            Some(ControlEvent::Closed(Some(ProtocolError::Version(2))))
        );
    }
}

//! The load generator: N keep-alive HTTP/1.1 connections (or WebSocket sessions),
//! each with one request in flight, every latency recorded in an HdrHistogram.
//! Closed loop: a slow answer delays that connection's next request, so latencies
//! under overload are not corrected for coordinated omission.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Longest wait for one response (head and body) before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Distinct error messages kept per run.
const ERROR_KINDS: usize = 8;

/// Latencies in microseconds, 1 µs to 10 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// What one measured run produced.
#[derive(Debug, Clone)]
pub struct Tally {
    pub ok: u64,
    pub errors: u64,
    /// Response body bytes (or WebSocket payload bytes) received.
    pub bytes: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
    /// Error message → count.
    pub error_kinds: BTreeMap<String, u64>,
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            ok: 0,
            errors: 0,
            bytes: 0,
            elapsed: Duration::ZERO,
            latency: histogram(),
            error_kinds: BTreeMap::new(),
        }
    }

    pub fn success(&mut self, took: Duration, bytes: u64) {
        self.ok += 1;
        self.bytes += bytes;
        self.latency
            .saturating_record(took.as_micros().clamp(1, u64::MAX as u128) as u64);
    }

    pub fn error(&mut self, what: impl Into<String>) {
        self.errors += 1;
        let what = what.into();
        if let Some(count) = self.error_kinds.get_mut(&what) {
            *count += 1;
        } else if self.error_kinds.len() < ERROR_KINDS {
            self.error_kinds.insert(what, 1);
        } else {
            *self.error_kinds.entry("(other errors)".into()).or_default() += 1;
        }
    }

    /// Adds another run's figures; elapsed times add up.
    pub fn merge(&mut self, other: &Tally) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.bytes += other.bytes;
        self.elapsed += other.elapsed;
        let _ = self.latency.add(&other.latency);
        for (what, count) in &other.error_kinds {
            *self.error_kinds.entry(what.clone()).or_default() += count;
        }
    }
}

/// An HTTP load: each request takes the next path in turn (one path for most
/// scenarios, many for `many-apps`).
#[derive(Clone)]
pub struct HttpLoad {
    pub method: Method,
    pub paths: Arc<Vec<String>>,
    pub body: Bytes,
    pub next: Arc<AtomicUsize>,
}

impl HttpLoad {
    pub fn new(method: Method, paths: Vec<String>, body: Bytes) -> HttpLoad {
        HttpLoad {
            method,
            paths: Arc::new(paths),
            body,
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn path(&self) -> &str {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.paths.len().max(1);
        self.paths.get(index).map(String::as_str).unwrap_or("/")
    }
}

/// A WebSocket load: each session sends `message` and waits for it to come back.
#[derive(Clone)]
pub struct WsLoad {
    pub path: String,
    pub message: String,
}

/// Drives `port` with `concurrency` connections until `duration` has passed.
pub async fn run_http(port: u16, load: &HttpLoad, concurrency: usize, duration: Duration) -> Tally {
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| tokio::spawn(http_worker(port, load.clone(), deadline)))
        .collect();
    collect(workers, start).await
}

/// Drives `port` with `concurrency` WebSocket sessions until `duration` has passed.
pub async fn run_ws(port: u16, load: &WsLoad, concurrency: usize, duration: Duration) -> Tally {
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| tokio::spawn(ws_worker(port, load.clone(), deadline)))
        .collect();
    collect(workers, start).await
}

async fn collect(workers: Vec<tokio::task::JoinHandle<Tally>>, start: Instant) -> Tally {
    let mut total = Tally::new();
    for worker in workers {
        match worker.await {
            Ok(tally) => total.merge(&tally),
            Err(e) => total.error(format!("load task failed: {e}")),
        }
    }
    total.elapsed = start.elapsed();
    total
}

/// One HTTP/1.1 connection to 127.0.0.1.
pub async fn connect(port: u16) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(("127.0.0.1", port)))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {}", e.kind()))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends one request on `sender` and reads the whole response body, counting bytes.
pub async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    port: u16,
    method: Method,
    path: &str,
    body: Bytes,
) -> Result<(StatusCode, u64), String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("connection: {e}"))?;
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, format!("127.0.0.1:{port}"));
    if !body.is_empty() {
        request = request.header(header::CONTENT_TYPE, "application/octet-stream");
    }
    let request = request
        .body(Full::new(body))
        .map_err(|e| format!("request: {e}"))?;
    let exchange = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let status = response.status();
        let mut body = response.into_body();
        let mut bytes = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("body: {e}"))?;
            if let Some(data) = frame.data_ref() {
                bytes += data.len() as u64;
            }
        }
        Ok((status, bytes))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no response within {REQUEST_TIMEOUT:?}"))?
}

/// One GET on a fresh connection: status and body.
pub async fn get_once(port: u16, path: &str) -> Result<(StatusCode, u64), String> {
    let mut sender = connect(port).await?;
    exchange(&mut sender, port, Method::GET, path, Bytes::new()).await
}

async fn http_worker(port: u16, load: HttpLoad, deadline: Instant) -> Tally {
    let mut tally = Tally::new();
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    while Instant::now() < deadline {
        let current = match sender.as_mut() {
            Some(current) => current,
            None => match connect(port).await {
                Ok(fresh) => sender.insert(fresh),
                Err(e) => {
                    tally.error(e);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let path = load.path().to_owned();
        let started = Instant::now();
        match exchange(current, port, load.method.clone(), &path, load.body.clone()).await {
            Ok((status, bytes)) if status.is_success() => tally.success(started.elapsed(), bytes),
            Ok((status, _)) => tally.error(format!("status {}", status.as_u16())),
            Err(e) => {
                tally.error(e);
                sender = None;
            }
        }
    }
    tally
}

type WsStream = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn ws_connect(port: u16, path: &str) -> Result<WsStream, String> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(("127.0.0.1", port)))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {}", e.kind()))?;
    let _ = stream.set_nodelay(true);
    let url = format!("ws://127.0.0.1:{port}{path}");
    let (socket, _) = tokio::time::timeout(
        REQUEST_TIMEOUT,
        tokio_tungstenite::client_async(url, stream),
    )
    .await
    .map_err(|_| "WebSocket handshake timed out".to_owned())?
    .map_err(|e| format!("WebSocket handshake: {e}"))?;
    Ok(socket)
}

async fn ws_round_trip(socket: &mut WsStream, message: &str) -> Result<u64, String> {
    socket
        .send(Message::text(message))
        .await
        .map_err(|e| format!("ws send: {e}"))?;
    let wait = async {
        // Pings and pongs may come in between; bounded by the timeout around it.
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => return Ok(text.len() as u64),
                Some(Ok(Message::Binary(data))) => return Ok(data.len() as u64),
                Some(Ok(Message::Close(frame))) => return Err(format!("ws closed: {frame:?}")),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("ws receive: {e}")),
                None => return Err("ws ended".to_owned()),
            }
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, wait)
        .await
        .map_err(|_| format!("no echo within {REQUEST_TIMEOUT:?}"))?
}

async fn ws_worker(port: u16, load: WsLoad, deadline: Instant) -> Tally {
    let mut tally = Tally::new();
    let mut socket: Option<WsStream> = None;
    while Instant::now() < deadline {
        let current = match socket.as_mut() {
            Some(current) => current,
            None => match ws_connect(port, &load.path).await {
                Ok(fresh) => socket.insert(fresh),
                Err(e) => {
                    tally.error(e);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let started = Instant::now();
        match ws_round_trip(current, &load.message).await {
            Ok(bytes) => tally.success(started.elapsed(), bytes),
            Err(e) => {
                tally.error(e);
                socket = None;
            }
        }
    }
    if let Some(mut open) = socket {
        let _ = tokio::time::timeout(Duration::from_secs(1), open.close(None)).await;
    }
    tally
}

//! An HTTP target for proxy tests, served by hyper in the test process, over plain
//! TCP or TLS. Routes (matched on the end of the path, so any prefix works):
//!
//! - `…/hang` → never answers;
//! - `…/download?bytes=N` → N bytes in 64 KiB chunks, byte `i` = `i % 251`;
//! - `…/upload` → reads the body chunk by chunk, answers `{"bytes":N,"intact":bool}`
//!   (intact: every byte `i` was `i % 251`);
//! - `…/endless` → 64 KiB chunks forever, counted in [`HttpTarget::produced`], with
//!   [`HttpTarget::endless_dropped`] set once hyper drops the body;
//! - `…/hop-out` → a response carrying hop-by-hop headers and `x-kept: yes`;
//! - anything else → JSON `{method, path, query, headers: [[name, value]…], body}`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

type Body = UnsyncBoxBody<Bytes, Infallible>;

const CHUNK: usize = 64 * 1024;

/// A running HTTP target; stops when dropped.
pub struct HttpTarget {
    pub addr: SocketAddr,
    pub produced: Arc<AtomicU64>,
    pub endless_dropped: Arc<AtomicBool>,
    stop: CancellationToken,
}

#[derive(Clone)]
struct Shared {
    produced: Arc<AtomicU64>,
    endless_dropped: Arc<AtomicBool>,
}

impl HttpTarget {
    /// Serves plain HTTP on 127.0.0.1.
    pub async fn start() -> HttpTarget {
        Self::start_with(None).await
    }

    /// Serves HTTPS on 127.0.0.1 with `acceptor`.
    pub async fn start_tls(acceptor: TlsAcceptor) -> HttpTarget {
        Self::start_with(Some(acceptor)).await
    }

    async fn start_with(tls: Option<TlsAcceptor>) -> HttpTarget {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let shared = Shared {
            produced: Arc::new(AtomicU64::new(0)),
            endless_dropped: Arc::new(AtomicBool::new(false)),
        };
        let target = HttpTarget {
            addr,
            produced: shared.produced.clone(),
            endless_dropped: shared.endless_dropped.clone(),
            stop: stop.clone(),
        };
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(_) => continue,
                    },
                };
                let shared = shared.clone();
                let stop = stop.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve(stream, shared, stop).await,
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve(stream, shared, stop).await;
                            }
                        }
                    }
                });
            }
        });
        target
    }

    /// `http://127.0.0.1:port` (or `https://`).
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }
}

impl Drop for HttpTarget {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve<S>(stream: S, shared: Shared, stop: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| handle(request, shared.clone()));
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        _ = stop.cancelled() => {}
    }
}

async fn handle(request: Request<Incoming>, shared: Shared) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    if path.ends_with("/hang") {
        tokio::time::sleep(Duration::from_secs(60)).await;
        return Ok(text("too late"));
    }
    if path.ends_with("/download") {
        let bytes: u64 = query
            .strip_prefix("bytes=")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1 << 20);
        return Ok(Response::new(pattern_body(bytes)));
    }
    if path.ends_with("/upload") {
        let mut body = request.into_body();
        let mut count: u64 = 0;
        let mut intact = true;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return Ok(text("body failed"));
            };
            if let Some(data) = frame.data_ref() {
                for byte in data.iter() {
                    intact &= u64::from(*byte) == count % 251;
                    count += 1;
                }
            }
        }
        return Ok(text(&format!(r#"{{"bytes":{count},"intact":{intact}}}"#)));
    }
    if path.ends_with("/endless") {
        return Ok(Response::new(endless_body(shared)));
    }
    if path.ends_with("/hop-out") {
        return Ok(Response::builder()
            .header("connection", "x-hop-out")
            .header("x-hop-out", "must not reach the client")
            .header("keep-alive", "timeout=5")
            .header("proxy-connection", "keep-alive")
            .header("trailer", "x-checksum")
            .header("x-kept", "yes")
            .body(full(Bytes::from_static(b"hop")))
            .unwrap());
    }
    let method = request.method().to_string();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = request.into_body().collect().await.map(|b| b.to_bytes());
    let body = String::from_utf8_lossy(&body.unwrap_or_default()).into_owned();
    let echo = serde_json::json!({
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "body": body,
    });
    let mut response = Response::new(full(Bytes::from(echo.to_string())));
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    Ok(response)
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn text(body: &str) -> Response<Body> {
    Response::new(full(Bytes::from(body.to_owned())))
}

/// Byte `i` of a pattern stream.
pub fn pattern_chunk(start: u64, len: usize) -> Bytes {
    (0..len as u64)
        .map(|i| ((start + i) % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

fn pattern_body(total: u64) -> Body {
    let chunks = stream::unfold(0u64, move |sent| async move {
        if sent >= total {
            return None;
        }
        let len = (total - sent).min(CHUNK as u64) as usize;
        let chunk = pattern_chunk(sent, len);
        Some((Ok::<_, Infallible>(Frame::data(chunk)), sent + len as u64))
    });
    StreamBody::new(chunks).boxed_unsync()
}

/// Sets the flag when the endless body is dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn endless_body(shared: Shared) -> Body {
    let chunk = Bytes::from(vec![b'x'; CHUNK]);
    let flag = DropFlag(shared.endless_dropped.clone());
    let produced = shared.produced.clone();
    let chunks = stream::unfold((), move |()| {
        let chunk = chunk.clone();
        let produced = produced.clone();
        let _keep = &flag;
        async move {
            produced.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            Some((Ok::<_, Infallible>(Frame::data(chunk)), ()))
        }
    });
    StreamBody::new(chunks).boxed_unsync()
}

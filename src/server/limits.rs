//! Request size limits: oversized single headers (431) and bodies (413).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::errors::RequestError;

/// Longest single request header value; longer is answered with 431.
pub const MAX_HEADER_VALUE: usize = 8 * 1024;

/// Request body limits.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Limit for apps that set no `maxBodySize`.
    pub default: u64,
    /// No app may accept more than this, whatever it sets.
    pub ceiling: u64,
}

impl BodyLimits {
    /// The limit for an app that asks for `requested`.
    pub fn for_app(&self, requested: Option<u64>) -> u64 {
        requested.unwrap_or(self.default).min(self.ceiling)
    }
}

/// Most bytes of request header names and values together; more is answered with 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Answers 431 for a request with a header value over [`MAX_HEADER_VALUE`] bytes or
/// headers over [`MAX_HEADER_BYTES`] in total. The header count is bounded by the
/// connection settings.
pub async fn reject_oversized_headers(request: Request, next: Next) -> Response {
    match check_header_sizes(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// The 431 error for headers over [`MAX_HEADER_VALUE`] or [`MAX_HEADER_BYTES`].
pub fn check_header_sizes(headers: &HeaderMap) -> Result<(), RequestError> {
    let mut total = 0;
    for (name, value) in headers {
        if value.len() > MAX_HEADER_VALUE {
            return Err(RequestError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "HEADER_TOO_LARGE",
                format!(
                    "request header {name} is {} bytes, over the limit of {MAX_HEADER_VALUE}",
                    value.len()
                ),
            ));
        }
        total += name.as_str().len() + value.len();
    }
    if total > MAX_HEADER_BYTES {
        return Err(RequestError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "HEADERS_TOO_LARGE",
            format!("request headers total {total} bytes, over the limit of {MAX_HEADER_BYTES}"),
        ));
    }
    Ok(())
}

/// A request body that fails once more than `limit` bytes have passed, and records
/// that it did so the request can be answered with 413.
pub struct LimitedBody {
    inner: Body,
    remaining: u64,
    exceeded: Arc<AtomicBool>,
}

/// The body went over its limit.
#[derive(Debug, thiserror::Error)]
#[error("request body over the limit")]
pub struct BodyTooLarge;

impl LimitedBody {
    /// Wraps `inner`; `exceeded` is set if it goes over `limit`.
    pub fn new(inner: Body, limit: u64, exceeded: Arc<AtomicBool>) -> Self {
        LimitedBody {
            inner,
            remaining: limit,
            exceeded,
        }
    }
}

impl HttpBody for LimitedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > self.remaining {
                        self.exceeded.store(true, Ordering::Release);
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                    }
                    self.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(Box::new(error)))),
            other => other.map(|frame| frame.map(|result| result.map_err(|e| Box::new(e) as _))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The 413 answer for a body over `limit` bytes.
pub fn too_large(limit: u64, app: &str) -> RequestError {
    RequestError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "BODY_TOO_LARGE",
        format!("request body exceeds the limit of {limit} bytes for {app}"),
    )
}

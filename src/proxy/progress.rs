//! Upload progress, so the app's timeout measures the target's silence rather than
//! the length of an upload: the wait for the response head restarts whenever the
//! target takes another chunk of the request body.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::Instant;

/// When the request body last moved.
#[derive(Debug)]
pub struct Progress {
    start: Instant,
    /// Milliseconds from `start` to the last chunk taken.
    last: AtomicU64,
}

impl Progress {
    /// Progress starting now.
    pub fn new() -> Arc<Self> {
        Arc::new(Progress {
            start: Instant::now(),
            last: AtomicU64::new(0),
        })
    }

    /// Records that a chunk was taken.
    fn touch(&self) {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.fetch_max(elapsed, Ordering::Relaxed);
    }

    /// When the last chunk was taken (the start if none was).
    pub fn last_activity(&self) -> Instant {
        self.start + std::time::Duration::from_millis(self.last.load(Ordering::Relaxed))
    }
}

/// A request body that records on [`Progress`] every chunk the target takes.
pub struct ProgressBody {
    inner: Body,
    progress: Arc<Progress>,
}

impl ProgressBody {
    /// Wraps `inner`, reporting to `progress`.
    pub fn new(inner: Body, progress: Arc<Progress>) -> Self {
        ProgressBody { inner, progress }
    }
}

impl http_body::Body for ProgressBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            self.progress.touch();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

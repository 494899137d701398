//! A response body read from an open file in chunks, so a large file never sits in
//! memory.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::fs::File;
use tokio::io::{AsyncRead, ReadBuf};

/// Bytes read per chunk.
const CHUNK: usize = 64 * 1024;

/// `remaining` bytes of `file` from its current position.
pub(super) struct FileBody {
    file: File,
    remaining: u64,
    path: PathBuf,
}

impl FileBody {
    /// A body of `len` bytes of `file` from where it is positioned; `path` names it in
    /// log lines.
    pub(super) fn new(file: File, len: u64, path: PathBuf) -> Self {
        FileBody {
            file,
            remaining: len,
            path,
        }
    }
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.remaining).map_or(CHUNK, |left| left.min(CHUNK));
        let mut chunk = BytesMut::zeroed(want);
        let mut buffer = ReadBuf::new(&mut chunk);
        if let Err(error) = ready!(Pin::new(&mut this.file).poll_read(cx, &mut buffer)) {
            tracing::warn!(file = %this.path.display(), %error, "reading a static file failed mid-response");
            this.remaining = 0;
            return Poll::Ready(Some(Err(error)));
        }
        let read = buffer.filled().len();
        if read == 0 {
            tracing::warn!(file = %this.path.display(), missing = this.remaining,
                "static file shrank while being sent; the response is cut short");
            let error = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} ended early", this.path.display()),
            );
            this.remaining = 0;
            return Poll::Ready(Some(Err(error)));
        }
        this.remaining -= read as u64;
        chunk.truncate(read);
        Poll::Ready(Some(Ok(Frame::data(chunk.freeze()))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

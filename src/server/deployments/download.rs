//! `GET /_/deployments/{name}/{version}/download`: a release as a `.tar.gz`.
//!
//! The archive is built by [`archive::pack`] on a blocking thread and streamed as it
//! is made, in 64 KiB chunks through a small channel: memory stays bounded whatever
//! the release's size, and packing stops when the client goes away.

use std::io::{self, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body::Frame;
use tokio::sync::mpsc;

use super::{lookup_version, split_target, unknown_route, AppState};
use crate::apps::archive;
use crate::server::errors::RequestError;

/// Bytes per body chunk.
const CHUNK: usize = 64 * 1024;

/// `GET /_/deployments/{name}/{version}/download` (scoped names take two segments).
pub(super) async fn download(
    State(state): State<Arc<AppState>>,
    UrlPath(rest): UrlPath<String>,
) -> Result<Response, RequestError> {
    let (name, segments) = split_target(&rest)?;
    let [version, "download"] = segments.as_slice() else {
        return Err(unknown_route());
    };
    let version = lookup_version(version)?;
    let release = state
        .catalog
        .releases_of(&name.full)
        .into_iter()
        .find(|release| release.version == version)
        .filter(|release| release.dir.is_dir())
        .ok_or_else(|| {
            RequestError::new(
                StatusCode::NOT_FOUND,
                "RELEASE_NOT_FOUND",
                format!("no release {}@{version} in the app dirs", name.full),
            )
        })?;
    let (sender, receiver) = mpsc::channel(8);
    let dir = release.dir.clone();
    tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter {
            sender: sender.clone(),
            buffer: Vec::with_capacity(CHUNK),
        };
        let packed = archive::pack(&dir, writer).and_then(|mut writer| writer.flush());
        if let Err(error) = packed {
            if error.kind() != io::ErrorKind::BrokenPipe {
                tracing::warn!(dir = %dir.display(), %error, "packing a release failed");
            }
            let _ = sender.blocking_send(Err(error));
        }
    });
    let file_name = format!(
        "{}-{version}.tgz",
        name.full.trim_start_matches('@').replace('/', "-")
    );
    let mut response = Response::new(Body::new(ChannelBody { receiver }));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// Collects written bytes into chunks and sends them to the response body.
struct ChannelWriter {
    sender: mpsc::Sender<io::Result<Bytes>>,
    buffer: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            Ok(())
        } else {
            self.send()
        }
    }
}

/// A response body fed by [`ChannelWriter`]; an error aborts the response.
struct ChannelBody {
    receiver: mpsc::Receiver<io::Result<Bytes>>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.receiver
            .poll_recv(cx)
            .map(|item| item.map(|chunk| chunk.map(Frame::data)))
    }
}

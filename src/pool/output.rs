//! A child's stdout and stderr, forwarded line by line to the supervisor's log, with
//! the last lines of stderr kept for start-up failure reports.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::task::JoinHandle;

use crate::sync::lock;

/// Lines of stderr kept for failure reports.
const TAIL_LINES: usize = 20;
/// Longest line logged; the rest is cut so one child cannot flood the log.
const MAX_LINE: usize = 8 * 1024;

/// The last lines a child wrote to stderr.
#[derive(Clone, Default)]
pub struct StderrTail {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl StderrTail {
    fn push(&self, line: &str) {
        let mut lines = lock(&self.lines);
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line.to_owned());
    }

    /// The kept lines joined with ` | `, or a note that there were none.
    pub fn joined(&self) -> String {
        let lines = lock(&self.lines);
        if lines.is_empty() {
            "(no stderr output)".to_owned()
        } else {
            lines
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(" | ")
        }
    }
}

/// Which of the child's streams a line came from.
#[derive(Clone, Copy)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Forwards `reader` line by line to the log, tagged with the app and pid; stderr
/// lines also go to `tail`. Ends at end of file.
pub fn forward<R>(
    reader: R,
    stream: Stream,
    app: String,
    pid: u32,
    tail: StderrTail,
) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        let mut buffer = Vec::with_capacity(256);
        loop {
            buffer.clear();
            match read_line_bounded(&mut reader, &mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&buffer);
            let line = text.trim_end_matches(['\n', '\r']);
            match stream {
                Stream::Stdout => {
                    tracing::info!(target: "child", app = %app, pid, stream = "stdout", "{line}")
                }
                Stream::Stderr => {
                    tail.push(line);
                    tracing::warn!(target: "child", app = %app, pid, stream = "stderr", "{line}");
                }
            }
        }
    })
}

/// Reads up to a newline, keeping at most [`MAX_LINE`] bytes and skipping the rest of
/// an overlong line.
async fn read_line_bounded<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    buffer: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(total);
        }
        let (chunk, found) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (&available[..=at], true),
            None => (available, false),
        };
        let room = MAX_LINE.saturating_sub(buffer.len());
        buffer.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len();
        reader.consume(used);
        total += used;
        if found {
            return Ok(total);
        }
    }
}

//! The sending side of a child's connection: frames are encoded straight into one
//! shared buffer, and written to the socket at once when nothing else is waiting to
//! go out, else by the writer task after the writes before them.
//!
//! A request's frame thus costs no allocation, no channel slot and, on an idle
//! socket, no hand-off to another task; frames queued while a write is under way
//! go out together in the next one.

use std::io;
use std::sync::{Arc, Mutex};

use bytes::{Buf, BytesMut};
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::Notify;

use crate::sync::lock;

/// A pending buffer that grew past this is replaced by a fresh one once written,
/// so one burst of large bodies does not keep its memory for the connection's life.
const KEEP_CAPACITY: usize = 256 * 1024;
/// Capacity of a fresh pending buffer.
const INITIAL_CAPACITY: usize = 16 * 1024;

struct State {
    /// Encoded frames not yet handed to the kernel, in order.
    pending: BytesMut,
    /// The writer task holds bytes taken from `pending` that are not all written yet;
    /// nothing may be written past them.
    writing: bool,
    /// The socket failed or the connection is shutting down: frames are dropped.
    closed: bool,
}

/// Frames on their way to one child, shared by every task that sends to it.
pub struct Outbox {
    socket: OwnedWriteHalf,
    state: Mutex<State>,
    /// Wakes the writer task when `pending` gains bytes it must write.
    wake: Notify,
}

impl Outbox {
    /// An outbox on the socket's write half; [`run_writer`] must be spawned on it.
    pub fn new(socket: OwnedWriteHalf) -> Arc<Self> {
        Arc::new(Outbox {
            socket,
            state: Mutex::new(State {
                pending: BytesMut::with_capacity(INITIAL_CAPACITY),
                writing: false,
                closed: false,
            }),
            wake: Notify::new(),
        })
    }

    /// Appends what `encode` writes into the buffer and sends it on its way.
    /// Returns `encode`'s result, or `None` when the connection is closed and the
    /// frames were not queued. `encode` must leave the buffer as it found it when it
    /// fails.
    pub fn send<R>(&self, encode: impl FnOnce(&mut BytesMut) -> R) -> Option<R> {
        let mut state = lock(&self.state);
        if state.closed {
            return None;
        }
        let was_empty = state.pending.is_empty();
        let result = encode(&mut state.pending);
        if state.pending.is_empty() {
            return Some(result);
        }
        if was_empty && !state.writing {
            // Nothing ahead of these bytes: try the socket now, without a task hop.
            match self.socket.try_write(&state.pending) {
                Ok(written) => state.pending.advance(written),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    // The writer ends on seeing the outbox closed; the reader reports the loss.
                    state.closed = true;
                    state.pending.clear();
                    drop(state);
                    self.wake.notify_one();
                    return Some(result);
                }
            }
            if state.pending.is_empty() {
                state.pending.clear(); // back to the start of its capacity
                return Some(result);
            }
        }
        if was_empty {
            self.wake.notify_one();
        }
        Some(result)
    }

    /// Stops the writer once what is queued has been written.
    pub fn close(&self) {
        lock(&self.state).closed = true;
        self.wake.notify_one();
    }
}

/// Writes what producers leave in the outbox whenever the socket could not take it
/// at once. Ends when the socket fails or the outbox is closed and drained; the
/// socket's write half is shut down when the last handle to the outbox goes.
pub async fn run_writer(outbox: Arc<Outbox>) {
    let mut batch = BytesMut::with_capacity(INITIAL_CAPACITY);
    loop {
        {
            let mut state = lock(&outbox.state);
            if state.pending.is_empty() {
                if state.closed {
                    return;
                }
            } else {
                std::mem::swap(&mut state.pending, &mut batch);
                state.writing = true;
            }
        }
        if batch.is_empty() {
            outbox.wake.notified().await;
            continue;
        }
        let oversized = batch.capacity() > KEEP_CAPACITY;
        let written = write_all(&outbox.socket, &mut batch).await;
        let mut state = lock(&outbox.state);
        state.writing = false;
        if written.is_err() {
            state.closed = true;
            state.pending.clear();
            return;
        }
        if oversized {
            batch = BytesMut::with_capacity(INITIAL_CAPACITY);
        } else {
            batch.clear();
        }
    }
}

/// Writes all of `buf`, waiting for the socket to take more as needed.
async fn write_all(socket: &OwnedWriteHalf, buf: &mut BytesMut) -> io::Result<()> {
    while !buf.is_empty() {
        socket.writable().await?;
        match socket.try_write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => buf.advance(written),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use tokio::io::AsyncReadExt;
    use tokio::net::UnixStream;

    /// Queues `count` blocks of `size` bytes, block i filled with byte i.
    fn queue_blocks(outbox: &Outbox, count: usize, size: usize) {
        for i in 0..count {
            let queued = outbox.send(|out| out.put_bytes(i as u8, size));
            assert!(queued.is_some(), "block {i} refused");
        }
    }

    fn check_blocks(received: &[u8], count: usize, size: usize) {
        assert_eq!(received.len(), count * size);
        for (i, block) in received.chunks(size).enumerate() {
            assert!(
                block.iter().all(|&b| b == i as u8),
                "block {i} out of order"
            );
        }
    }

    #[tokio::test]
    async fn bytes_the_socket_cannot_take_at_once_follow_in_order_and_the_end_comes_after_them() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let (_read, write) = ours.into_split();
        let outbox = Outbox::new(write);
        let writer = tokio::spawn(run_writer(outbox.clone()));
        // Far more than a socket buffer holds while nobody reads.
        queue_blocks(&outbox, 256, 16 * 1024);
        outbox.close();
        assert!(
            outbox.send(|out| out.put_u8(0)).is_none(),
            "a closed outbox took a frame"
        );
        drop(outbox);
        let mut received = Vec::new();
        let read = theirs.read_to_end(&mut received);
        tokio::time::timeout(std::time::Duration::from_secs(10), read)
            .await
            .expect("the write half was never shut down")
            .unwrap();
        check_blocks(&received, 256, 16 * 1024);
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn a_peer_that_went_away_closes_the_outbox() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let (_read, write) = ours.into_split();
        let outbox = Outbox::new(write);
        let writer = tokio::spawn(run_writer(outbox.clone()));
        drop(theirs);
        // The first failed write closes it, whichever side of the outbox tries it.
        let mut refused = false;
        for _ in 0..1000 {
            if outbox.send(|out| out.put_bytes(1, 1024)).is_none() {
                refused = true;
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(
            refused,
            "frames kept being accepted for a peer that is gone"
        );
        writer.await.unwrap();
    }
}

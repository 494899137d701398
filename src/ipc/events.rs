//! The queue that carries one stream's events from the connection's reader to the
//! request waiting on them. A stream sees a handful of events, so this is a small
//! locked deque and one waker, cheaper to make per request than a general channel.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::sync::lock;

struct State<T> {
    items: VecDeque<T>,
    waker: Option<Waker>,
    sender_gone: bool,
    receiver_gone: bool,
}

type Shared<T> = Arc<Mutex<State<T>>>;

/// A new queue's two ends.
pub fn queue<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Mutex::new(State {
        items: VecDeque::new(),
        waker: None,
        sender_gone: false,
        receiver_gone: false,
    }));
    (Sender(shared.clone()), Receiver(shared))
}

/// The reader's end; dropping it ends the queue after what was sent.
pub struct Sender<T>(Shared<T>);

impl<T> Sender<T> {
    /// Queues `item`; false when the receiver is gone (the item is dropped).
    pub fn send(&self, item: T) -> bool {
        let waker = {
            let mut state = lock(&self.0);
            if state.receiver_gone {
                return false;
            }
            state.items.push_back(item);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = lock(&self.0);
            state.sender_gone = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The consuming end.
pub struct Receiver<T>(Shared<T>);

impl<T> Receiver<T> {
    /// The next item; `None` once the sender is gone and everything was taken.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = lock(&self.0);
        if let Some(item) = state.items.pop_front() {
            return Poll::Ready(Some(item));
        }
        if state.sender_gone {
            return Poll::Ready(None);
        }
        match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Waits for the next item.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next item if one is queued already.
    pub fn try_recv(&mut self) -> Option<T> {
        lock(&self.0).items.pop_front()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        // Undelivered items are dropped after the lock is released.
        let _undelivered = {
            let mut state = lock(&self.0);
            state.receiver_gone = true;
            state.waker = None;
            std::mem::take(&mut state.items)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn items_arrive_in_order_then_the_end() {
        let (sender, mut receiver) = queue();
        assert!(sender.send(1));
        assert!(sender.send(2));
        assert_eq!(receiver.try_recv(), Some(1));
        drop(sender);
        assert_eq!(receiver.recv().await, Some(2));
        assert_eq!(receiver.recv().await, None);
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_a_send_from_another_task() {
        let (sender, mut receiver) = queue();
        let waiting = tokio::spawn(async move { receiver.recv().await });
        tokio::task::yield_now().await;
        sender.send("head");
        assert_eq!(waiting.await.unwrap(), Some("head"));
    }

    #[test]
    fn sending_to_a_dropped_receiver_reports_it() {
        let (sender, receiver) = queue();
        drop(receiver);
        assert!(!sender.send(()));
    }
}

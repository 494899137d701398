// Outgoing frame queue: frames pushed during one tick are written with a single
// socket.write at the next microtask. Short writes keep the unwritten tail and
// finish it from the socket's drain handler, so frame order is always kept.

export class FrameWriter {
  constructor() {
    this.socket = null;
    this.queue = [];
    this.queuedBytes = 0;
    this.scheduled = false;
    this.tail = null; // bytes a short write left over; written before anything queued later
    this.closed = false;
    this.idleWaiters = [];
    this.flush = this.flush.bind(this);
  }

  attach(socket) {
    this.socket = socket;
    if (this.queue.length) this.schedule();
  }

  // Queues one buffer (a whole frame, or a frame header followed by its payload).
  push(buf) {
    if (this.closed) return;
    this.queue.push(buf);
    this.queuedBytes += buf.length;
    if (!this.scheduled) this.schedule();
  }

  schedule() {
    this.scheduled = true;
    queueMicrotask(this.flush);
  }

  flush() {
    this.scheduled = false;
    if (this.socket === null || this.tail !== null || this.queue.length === 0) return;
    // One buffer per write. A lone entry is always a frame built by the codec (DATA is
    // queued as header + payload, two entries), so it is never an app-owned buffer
    // and its tail can be kept without a copy; several entries are concatenated.
    const data = this.queue.length === 1 ? this.queue[0] : Buffer.concat(this.queue, this.queuedBytes);
    this.queue = [];
    this.queuedBytes = 0;
    this.write(data);
  }

  write(data) {
    const written = this.socket.write(data);
    if (written === data.length) {
      if (this.idleWaiters.length && this.queue.length === 0) this.wakeIdle();
      return;
    }
    if (written < 0) return this.close(); // the socket is gone
    // Short write: keep what is left for drain.
    this.tail = data.subarray(written);
  }

  // The socket is closed: drop what is pending and release idle() waiters.
  close() {
    this.closed = true;
    this.queue = [];
    this.queuedBytes = 0;
    this.tail = null;
    this.wakeIdle();
  }

  // Socket drain handler: finish the tail, then anything queued meanwhile.
  drain() {
    if (this.tail === null) return;
    const tail = this.tail;
    this.tail = null;
    this.write(tail);
    if (this.tail === null && this.queue.length && !this.scheduled) this.flush();
  }

  // Resolves once everything pushed so far has been handed to the kernel.
  idle() {
    if (this.closed || (this.tail === null && this.queue.length === 0)) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  wakeIdle() {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

// Request body: a ReadableStream fed by DATA frames. Chunks wait in a small
// queue until the app reads them, and CREDIT is granted only for bytes handed
// to the app (batched), so the supervisor never sends more than the app takes.

import { INITIAL_WINDOW, MAX_CHUNK, ProtocolError } from "./protocol.js";

export class RequestBody {
  // grant(n): send CREDIT for n bytes on this stream.
  constructor(grant) {
    this.grant = grant;
    this.queue = [];
    this.controller = null;
    this.waiting = false; // the app has a read pending and nothing was queued
    this.ended = false; // END received
    this.closed = false; // stream closed, errored or cancelled by the app
    this.discard = false; // the app gave up on the body: just grant credit
    this.window = INITIAL_WINDOW; // bytes the supervisor may still send
    this.consumed = 0; // handed to the app, not yet granted
    this.stream = new ReadableStream(
      {
        start: (c) => {
          this.controller = c;
        },
        pull: () => this.pull(),
        cancel: () => this.cancelled(),
      },
      { highWaterMark: 0 },
    );
  }

  data(chunk) {
    if (this.ended) throw new ProtocolError("DATA after END");
    if (chunk.length > this.window) throw new ProtocolError("DATA beyond the window");
    this.window -= chunk.length;
    if (this.discard) return this.give(chunk.length);
    if (this.waiting) {
      this.waiting = false;
      this.controller.enqueue(chunk);
      this.give(chunk.length);
    } else {
      this.queue.push(chunk);
    }
  }

  end() {
    if (this.ended) throw new ProtocolError("END twice");
    this.ended = true;
    if (!this.closed && this.queue.length === 0) this.close();
  }

  // The app wants more: hand over one queued chunk, or wait for the next DATA.
  pull() {
    if (this.queue.length === 0) {
      this.waiting = true;
      return;
    }
    const chunk = this.queue.shift();
    this.controller.enqueue(chunk);
    this.give(chunk.length);
    if (this.ended && this.queue.length === 0) this.close();
  }

  // Counts bytes handed on; grants when a batch is full or nothing is left queued.
  give(n) {
    this.consumed += n;
    if (this.ended) return;
    if (this.consumed >= MAX_CHUNK || this.queue.length === 0) {
      this.window += this.consumed;
      this.grant(this.consumed);
      this.consumed = 0;
    }
  }

  close() {
    this.closed = true;
    try {
      this.controller.close();
    } catch {}
  }

  // The stream is gone (cancel, or the request was aborted): stop buffering.
  fail(reason) {
    if (this.closed) return;
    this.closed = true;
    this.discard = true;
    this.queue = [];
    try {
      this.controller.error(reason);
    } catch {}
  }

  cancelled() {
    this.closed = true;
    this.discard = true;
    let dropped = 0;
    for (const c of this.queue) dropped += c.length;
    this.queue = [];
    if (dropped) this.give(dropped);
  }
}

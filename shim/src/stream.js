// One request stream: its abort signal, its request body (a ReadableStream fed
// by DATA frames, with credit granted as the app reads), and the sending of
// the app's response (head, DATA within the window, END) or of an ERROR.

import { INITIAL_WINDOW, MAX_CHUNK, ProtocolError, T, frame, header, jsonFrame, responseFrame, wholeResponseFrames } from "./protocol.js";
import { addImplicitType, bodyText, headerList, isBodyless, kindOf } from "./app.js";

const NativeResponse = Response;
const noop = () => {};

export function errorPayload(err) {
  if (err instanceof Error) return { message: String(err.message), stack: String(err.stack ?? "") };
  return { message: String(err), stack: "" };
}

function describe(value) {
  if (value === null) return "null";
  if (typeof value === "object") return value.constructor?.name ?? "object";
  return typeof value;
}

// A body chunk as bytes (streams may yield strings or buffer views).
function toBytes(value) {
  if (value instanceof Uint8Array) return value;
  if (typeof value === "string") return Buffer.from(value);
  if (value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError(`response body chunk is ${describe(value)}, not bytes`);
}

export class Stream {
  constructor(conn, id, head) {
    this.conn = conn;
    this.id = id;
    this.head = head; // HEAD request: Bun.serve adds no implicit content-type
    this.staticRoute = false; // static route values keep their content-type on HEAD
    this.abort = new AbortController();
    this.body = null; // RequestBody when the request has one
    this.collecting = null; // {head, chunks, size, ended} while a request body is collected
    this.window = INITIAL_WINDOW; // response bytes we may still send
    this.out = null; // in-memory response bytes still to send
    this.outOff = 0;
    this.waiter = null; // resolves a streaming pump waiting for credit
    this.reader = null;
    this.done = false;
    this.responded = false; // the app's Response is being sent: too late for server.upgrade()
    this.upgraded = false; // server.upgrade() turned the stream into a WebSocket session
  }

  // server.upgrade() accepted: the session takes over the stream id; whatever the
  // handler returns afterwards is ignored, as Bun.serve does.
  upgradeTo(session) {
    this.upgraded = true;
    this.done = true;
    if (this.body !== null && !this.body.ended) this.body.fail(new Error("the request was upgraded"));
    this.conn.streams.set(this.id, session);
  }

  // --- from the supervisor ---

  credit(n) {
    this.window += n;
    if (this.out !== null) this.sendOut();
    else if (this.waiter !== null) this.wake();
  }

  // CANCEL: the client is gone. Abort req.signal, stop the body, forget the stream.
  cancel() {
    if (this.done) return;
    this.finish();
    try {
      this.abort.abort();
    } catch (err) {
      console.error(err); // an app abort listener threw
    }
    if (this.body !== null) this.body.fail(this.abort.signal.reason);
    if (this.reader !== null) this.reader.cancel(this.abort.signal.reason).then(noop, noop);
  }

  // --- the app's answer ---

  // Accepts whatever the handler returned: a Response, a promise of one, or junk.
  respond(result) {
    if (result instanceof NativeResponse) return this.sendResponse(result);
    if (result instanceof Promise) {
      // A settled promise is read at once, without a microtask hop.
      const state = Bun.peek.status(result);
      if (state === "fulfilled") return this.settled(Bun.peek(result));
      if (state === "rejected") {
        result.then(noop, noop); // mark handled
        return this.sendError(Bun.peek(result));
      }
    }
    if (result !== null && (typeof result === "object" || typeof result === "function") && typeof result.then === "function") {
      result.then(
        (value) => this.settled(value),
        (err) => this.sendError(err),
      );
      return;
    }
    this.settled(result);
  }

  settled(value) {
    if (this.upgraded) {
      if (value instanceof NativeResponse) this.discard(value);
      return;
    }
    if (value instanceof NativeResponse) this.sendResponse(value);
    else this.sendError(new TypeError(`handler returned ${describe(value)}, not a Response`));
  }

  sendResponse(res) {
    if (this.done) return this.discard(res);
    this.responded = true;
    const status = res.status;
    if (status < 200 || status > 999) return this.sendError(new RangeError(`invalid response status ${status}`));
    const kind = kindOf(res);
    const head = this.head && !this.staticRoute; // HEAD to a handler: no body-derived type
    let headers;
    try {
      headers = headerList(res, head && kind.headDrop); // before the body is touched
    } catch (err) {
      return this.sendError(err);
    }
    if (isBodyless(status)) {
      this.discard(res);
      return this.sendHead(status, headers, false);
    }
    const implicit = head ? null : kind.implicit;
    if (kind.mem) {
      const text = bodyText(res);
      if (text !== undefined) return this.sendBytes(status, headers, implicit, text);
      let bytes;
      try {
        bytes = res.bytes();
      } catch (err) {
        return this.sendError(err);
      }
      // In-memory bodies are usually ready at once: head, DATA and END in this tick.
      if (Bun.peek.status(bytes) === "fulfilled") return this.sendBytes(status, headers, implicit, Bun.peek(bytes));
      bytes.then(
        (b) => this.sendBytes(status, headers, implicit, b),
        (err) => this.sendError(err),
      );
      return;
    }
    const body = res.body;
    if (body === null) return this.sendHead(status, headers, false);
    let reader;
    try {
      reader = body.getReader();
    } catch (err) {
      return this.sendError(err); // locked or already read
    }
    if (implicit !== null) addImplicitType(headers, implicit);
    if (!this.sendHead(status, headers, true)) return reader.cancel().then(noop, noop);
    this.pump(reader);
  }

  // Queues the RESPONSE frame; false (after sending ERROR) if the head cannot be encoded.
  sendHead(status, headers, hasBody) {
    let buf;
    try {
      buf = responseFrame(this.id, status, headers, hasBody);
    } catch (err) {
      this.sendError(err);
      return false;
    }
    this.conn.writer.push(buf);
    if (!hasBody) this.finish();
    return true;
  }

  // An in-memory body: bytes, or the string the Response was built from (encoded
  // straight into the frames, without reading the Response's body). A body that fits
  // in one DATA goes out with its head and END in one buffer.
  sendBytes(status, headers, implicit, body) {
    if (this.done) return;
    const text = typeof body === "string";
    const size = text ? Buffer.byteLength(body) : body.length;
    const hasBody = size > 0;
    if (hasBody && implicit !== null) addImplicitType(headers, implicit);
    if (hasBody && size <= MAX_CHUNK && size <= this.window) {
      let buf;
      try {
        buf = wholeResponseFrames(this.id, status, headers, body, size);
      } catch (err) {
        return this.sendError(err);
      }
      this.window -= size;
      this.conn.writer.push(buf);
      return this.finish();
    }
    if (!this.sendHead(status, headers, hasBody) || !hasBody) return;
    this.out = text ? Buffer.from(body) : body;
    this.outOff = 0;
    this.sendOut();
  }

  // Sends in-memory bytes as far as the window allows; credit() resumes it.
  sendOut() {
    const bytes = this.out;
    let off = this.outOff;
    while (off < bytes.length && this.window > 0) {
      const n = Math.min(bytes.length - off, this.window, MAX_CHUNK);
      this.data(bytes.subarray(off, off + n));
      off += n;
    }
    this.outOff = off;
    if (off === bytes.length) {
      this.out = null;
      this.end();
    }
  }

  // Streams a body: read, split into ≤ 64 KiB DATA within the window, END.
  async pump(reader) {
    this.reader = reader;
    try {
      for (;;) {
        const step = await reader.read();
        if (this.done) return;
        if (step.done) break;
        const chunk = toBytes(step.value);
        let off = 0;
        while (off < chunk.length) {
          if (this.window === 0) {
            await new Promise((resolve) => (this.waiter = resolve));
            if (this.done) return;
            continue;
          }
          const n = Math.min(chunk.length - off, this.window, MAX_CHUNK);
          this.data(chunk.subarray(off, off + n));
          off += n;
        }
      }
      this.end();
    } catch (err) {
      if (!this.done) {
        this.sendError(err);
        reader.cancel(err).then(noop, noop);
      }
    }
  }

  data(bytes) {
    this.window -= bytes.length;
    const w = this.conn.writer;
    w.push(header(T.DATA, this.id, bytes.length));
    w.push(bytes);
  }

  end() {
    if (this.done) return;
    this.conn.writer.push(frame(T.END, this.id));
    this.finish();
  }

  sendError(err) {
    if (this.done) {
      if (this.upgraded) console.error("[buntime] fetch failed after server.upgrade():", err);
      return;
    }
    this.conn.writer.push(jsonFrame(T.ERROR, this.id, errorPayload(err)));
    this.finish();
  }

  // The stream is over for us: forget it; a request body still open cannot get more data.
  finish() {
    this.done = true;
    this.out = null;
    this.conn.streams.delete(this.id);
    if (this.body !== null && !this.body.ended) this.body.fail(new Error("the response has ended"));
    if (this.waiter !== null) this.wake();
  }

  wake() {
    const w = this.waiter;
    this.waiter = null;
    w();
  }

  // Releases a response that will not be sent (bodyless status, or already cancelled).
  discard(res) {
    if (!kindOf(res).mem && res.body !== null && !res.body.locked) res.body.cancel().then(noop, noop);
  }
}

// Request body: a ReadableStream fed by DATA frames. Chunks wait in a small
// queue until the app reads them, and CREDIT is granted only for bytes handed
// to the app (batched), so the supervisor never sends more than the app takes.

export class RequestBody {
  // grant(n): send CREDIT for n bytes on this stream.
  constructor(grant) {
    this.grant = grant;
    this.queue = []; // chunks not yet read by the app, from index `next` on
    this.next = 0;
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

  queued() {
    return this.queue.length - this.next;
  }

  end() {
    if (this.ended) throw new ProtocolError("END twice");
    this.ended = true;
    if (!this.closed && this.queued() === 0) this.close();
  }

  // The app wants more: hand over one queued chunk, or wait for the next DATA.
  pull() {
    if (this.queued() === 0) {
      this.waiting = true;
      return;
    }
    const chunk = this.queue[this.next];
    this.queue[this.next++] = undefined;
    if (this.next === this.queue.length) {
      this.queue = [];
      this.next = 0;
    }
    this.controller.enqueue(chunk);
    this.give(chunk.length);
    if (this.ended && this.queued() === 0) this.close();
  }

  // Counts bytes handed on; grants when a batch is full or nothing is left queued.
  give(n) {
    this.consumed += n;
    if (this.ended) return;
    if (this.consumed >= MAX_CHUNK || this.queued() === 0) {
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
    this.next = 0;
    try {
      this.controller.error(reason);
    } catch {}
  }

  cancelled() {
    this.closed = true;
    this.discard = true;
    let dropped = 0;
    for (let i = this.next; i < this.queue.length; i++) dropped += this.queue[i].length;
    this.queue = [];
    this.next = 0;
    if (dropped) this.give(dropped);
  }
}

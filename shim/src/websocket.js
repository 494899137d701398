// WebSocket sessions (loaded only for apps that export `websocket`):
// server.upgrade(), the ServerWebSocket objects handed to the app, message
// fragmentation and reassembly within the per-stream windows, the close
// handshake with the supervisor, and pub/sub between the sessions of this child.
//
// Wire rules (see src/ipc/mod.rs): after WS_ACCEPT the stream carries
// WS_MESSAGE fragments (≤ 64 KiB of data each) both ways; their data bytes
// spend the same 256 KiB windows as DATA. Each side sends one WS_CLOSE; a
// session is forgotten once one has gone each way, or on CANCEL.

import {
  INITIAL_WINDOW,
  MAX_CHUNK,
  MAX_CLOSE_REASON,
  ProtocolError,
  WS_BINARY,
  WS_LAST,
  creditFrame,
  wsAcceptFrame,
  wsCloseFrame,
  wsMessageFrame,
  wsTextFrame,
} from "./protocol.js";

const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

const DEFAULT_BACKPRESSURE_LIMIT = 16 * 1024 * 1024; // Bun's default
const DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024; // Bun's default maxPayloadLength
const EMPTY = Buffer.alloc(0);
const UPGRADE_TOKEN = /(?:^|,)\s*websocket\s*(?:,|$)/i;

function logError(what, err) {
  console.error(`[buntime] websocket ${what} failed:`, err);
}

// Runs an app handler; errors (thrown or rejected) go to stderr. Returns the
// handler's promise when it returned one, so callers can wait for it.
function call(handlers, name, args) {
  const fn = handlers[name];
  if (typeof fn !== "function") return undefined;
  let r;
  try {
    r = fn.apply(handlers, args);
  } catch (err) {
    logError(name, err);
    return undefined;
  }
  if (r !== null && typeof r === "object" && typeof r.then === "function") {
    return Promise.resolve(r).then(undefined, (err) => logError(name, err));
  }
  return undefined;
}

function describe(value) {
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (typeof value === "object") return `an instance of ${value.constructor?.name ?? "Object"}`;
  return `type ${typeof value} (${String(value)})`;
}

function checkTopic(topic, what) {
  if (typeof topic !== "string") {
    throw new TypeError(`The "topic" argument must be of type string. Received ${describe(topic)}`);
  }
  if (topic.length === 0) throw new TypeError(`${what} requires a non-empty topic name`);
  return topic;
}

// Bytes of a binary message (a view on the caller's memory), or null if `data` is not binary.
function binaryView(data, what) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer || data instanceof SharedArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof Blob) {
    // Only in-memory blobs can be read synchronously, as in Bun.
    const bytes = data.bytes();
    if (Bun.peek.status(bytes) !== "fulfilled") {
      bytes.then(undefined, () => {});
      throw new TypeError(`${what} cannot send a file- or S3-backed Blob synchronously; await blob.bytes() first`);
    }
    return Bun.peek(bytes);
  }
  return null;
}

// A close reason as at most 123 bytes of UTF-8, cut at a character boundary.
function reasonBytes(reason) {
  if (reason.length === 0) return EMPTY;
  let bytes = Buffer.from(reason);
  if (bytes.length <= MAX_CLOSE_REASON) return bytes;
  let end = MAX_CLOSE_REASON;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--; // do not split a character
  return bytes.subarray(0, end);
}

// Close codes an endpoint may put in a close frame (RFC 6455 7.4).
function sendableCode(code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

// The WebSocket sessions of this child: upgrades, and the pub/sub topics they share.
export class Sessions {
  constructor(handlers) {
    this.handlers = handlers;
    this.conn = null;
    this.candidates = new WeakMap(); // upgrade Request -> [stream, address]
    this.topics = new Map(); // topic -> Set of Session
    const limit = Number(handlers.backpressureLimit);
    this.backpressureLimit = limit > 0 ? limit : DEFAULT_BACKPRESSURE_LIMIT;
    const max = Number(handlers.maxPayloadLength);
    this.maxPayload = max > 0 ? max : DEFAULT_MAX_PAYLOAD;
    this.publishToSelf = handlers.publishToSelf === true;
  }

  attach(conn) {
    this.conn = conn;
  }

  // Called for every request before the app sees it: remembers WebSocket
  // upgrade requests (GET without a body, `upgrade: websocket`, a key).
  offer(req, st, head) {
    if (head.method !== "GET" || head.body) return;
    let upgrade = false;
    let key = false;
    const headers = head.headers;
    for (let i = 0; i < headers.length; i++) {
      const name = headers[i][0];
      if (name === "upgrade") upgrade = UPGRADE_TOKEN.test(headers[i][1]);
      else if (name === "sec-websocket-key") key = headers[i][1].length > 0;
    }
    if (upgrade && key) this.candidates.set(req, [st, head.address]);
  }

  // server.upgrade(req, {data, headers}): WS_ACCEPT, then websocket.open(ws), as Bun does, before returning true.
  upgrade(req, options) {
    const entry = typeof req === "object" && req !== null ? this.candidates.get(req) : undefined;
    if (entry === undefined) return false;
    const st = entry[0];
    if (st.done || st.responded) return false;
    let headers = [];
    if (options != null && options.headers != null) headers = [...new Headers(options.headers)];
    const accept = wsAcceptFrame(st.id, headers); // may throw: then nothing has changed
    this.candidates.delete(req);
    const session = new Session(this, st.id, options != null ? options.data : undefined, entry[1]);
    st.upgradeTo(session);
    this.conn.writer.push(accept);
    call(this.handlers, "open", [session.ws]);
    return true;
  }

  // Message bytes we own, for fanning out -> [bytes, binary]; `what` names the caller for errors.
  prepare(data, mode, what) {
    if (mode !== "binary" && typeof data === "string") return [Buffer.from(data), false];
    if (mode === "text") throw new TypeError(`${what} expects a string`);
    const view = binaryView(data, what);
    if (view !== null) return [Buffer.from(view), true];
    if (mode === "binary") throw new TypeError(`${what} expects a Blob or BufferSource`);
    if (data == null) throw new TypeError(`${what} requires a non-empty message`);
    return [Buffer.from(String(data)), false];
  }

  // Sends to every subscriber of `topic` except `from` -> message bytes, or 0 if nobody got it.
  publish(topic, data, from, mode, what) {
    checkTopic(topic, what);
    const subs = this.topics.get(topic);
    if (subs === undefined) return 0;
    const [bytes, binary] = this.prepare(data, mode, what);
    let sent = false;
    for (const s of subs) {
      if (s === from && !this.publishToSelf) continue;
      s.sendBytes(bytes, binary, true);
      sent = true;
    }
    return sent ? bytes.length : 0;
  }

  subscriberCount(topic) {
    checkTopic(topic, "subscriberCount");
    const subs = this.topics.get(topic);
    return subs === undefined ? 0 : subs.size;
  }

  subscribe(session, topic) {
    let subs = this.topics.get(topic);
    if (subs === undefined) this.topics.set(topic, (subs = new Set()));
    subs.add(session);
  }

  unsubscribe(session, topic) {
    const subs = this.topics.get(topic);
    if (subs === undefined || !subs.delete(session)) return false;
    if (subs.size === 0) this.topics.delete(topic);
    return true;
  }
}

// One WebSocket session: what the connection's stream table holds for its stream id.
class Session {
  constructor(hub, id, data, address) {
    this.hub = hub;
    this.conn = hub.conn;
    this.id = id;
    this.body = null; // DATA/END on a session are protocol errors
    this.readyState = OPEN;
    this.binaryType = "nodebuffer";
    this.topics = new Set();
    // outgoing
    this.window = INITIAL_WINDOW; // message bytes we may still send
    this.queue = []; // [bytes, offset, binary] waiting for window, from index `next` on
    this.next = 0;
    this.queued = 0; // bytes not yet sent
    this.closeAfterFlush = null; // [code, reason bytes] of a close waiting behind the queue
    this.sentClose = false;
    this.closeCode = 0; // the close the app's handler will be told about
    this.closeReason = "";
    this.closeCalled = false;
    this.forgotten = false;
    // incoming
    this.recvWindow = INITIAL_WINDOW; // message bytes the supervisor may still send
    this.parts = null; // fragments of a message being reassembled
    this.partBytes = 0;
    this.partBinary = false;
    this.pending = 0; // message handlers whose promise has not settled
    this.ungranted = 0; // bytes handed on and not yet credited
    this.grantScheduled = false;
    this.paused = false;
    this.inbox = []; // complete messages held back while paused: [value, bytes]
    this.grantLater = () => {
      this.grantScheduled = false;
      if (this.ungranted > 0 && this.mayGrant()) this.grant();
    };
    this.ws = new ServerWebSocket(this, data, address);
  }

  // --- from the supervisor ---

  credit(n) {
    if (this.sentClose) return;
    this.window += n;
    if (this.next < this.queue.length) this.flush();
  }

  // One WS_MESSAGE fragment (payload: flags byte, then data).
  wsMessage(payload) {
    const flags = payload[0];
    if (flags & ~(WS_BINARY | WS_LAST)) throw new ProtocolError(`WS_MESSAGE with flags 0x${flags.toString(16)}`);
    const n = payload.length - 1;
    if (n > this.recvWindow) throw new ProtocolError("WS_MESSAGE beyond the window");
    this.recvWindow -= n;
    if (this.readyState !== OPEN) return; // we are closing: nothing more reaches the app
    const last = (flags & WS_LAST) !== 0;
    if (this.partBytes + n > this.hub.maxPayload) {
      this.parts = null;
      this.partBytes = 0;
      return this.close(1009, EMPTY);
    }
    if (this.parts === null) {
      if (last) return this.received(this.decode(payload.subarray(1), (flags & WS_BINARY) !== 0, true), n);
      this.parts = [];
      this.partBinary = (flags & WS_BINARY) !== 0; // the first fragment says what the message is
    }
    if (n) this.parts.push(payload.subarray(1));
    this.partBytes += n;
    if (!last) return this.release(n); // earlier fragments are credited as they arrive, so any size gets through
    const whole = Buffer.concat(this.parts, this.partBytes);
    this.parts = null;
    this.partBytes = 0;
    this.received(this.decode(whole, this.partBinary, false), n);
  }

  // The supervisor's WS_CLOSE: the client closed, or this is the answer to ours.
  wsClose(code, reason) {
    if (!this.sentClose) {
      this.dropQueue();
      this.sendClose(code, EMPTY); // answer, echoing the code
      this.closeCode = code;
      this.closeReason = reason;
    }
    this.end();
  }

  // CANCEL: the session is over at once; the app sees 1006 (unless its close handler ran already).
  cancel() {
    this.closeCode = 1006;
    this.closeReason = "";
    this.end();
  }

  // --- incoming messages ---

  decode(bytes, binary, shared) {
    if (!binary) return bytes.toString("utf8");
    switch (this.binaryType) {
      case "arraybuffer": {
        const ab = new ArrayBuffer(bytes.length);
        new Uint8Array(ab).set(bytes);
        return ab;
      }
      case "uint8array":
        return new Uint8Array(bytes);
      default:
        // A single fragment is a view into the socket's read buffer: copy it out.
        return shared ? Buffer.from(bytes) : bytes;
    }
  }

  // A complete message: to the app now, or after resume() when paused.
  received(value, held) {
    if (this.paused) this.inbox.push([value, held]);
    else this.deliver(value, held);
  }

  // Calls message(ws, value); its bytes are credited once the handler returns or its promise settles.
  deliver(value, held) {
    const done = call(this.hub.handlers, "message", [this.ws, value]);
    if (done === undefined) return this.release(held);
    this.pending++;
    done.then(() => {
      this.pending--;
      this.release(held);
    });
  }

  // Counts bytes handed on; credits a batch of 64 KiB at once, the rest when nothing is in progress.
  release(n) {
    this.ungranted += n;
    if (!this.mayGrant()) return;
    if (this.ungranted >= MAX_CHUNK) this.grant();
    else if (this.pending === 0 && this.parts === null && !this.grantScheduled && this.ungranted > 0) {
      this.grantScheduled = true;
      queueMicrotask(this.grantLater); // one CREDIT for the messages of one read
    }
  }

  mayGrant() {
    return this.readyState === OPEN && !this.paused;
  }

  grant() {
    const n = this.ungranted;
    this.ungranted = 0;
    this.recvWindow += n;
    this.conn.writer.push(creditFrame(this.id, n));
  }

  pause() {
    if (this.readyState === OPEN) this.paused = true;
  }

  resume() {
    if (!this.paused) return;
    this.paused = false;
    const inbox = this.inbox;
    this.inbox = [];
    for (let i = 0; i < inbox.length; i++) {
      if (this.readyState !== OPEN) return;
      if (this.paused) {
        this.inbox.push(...inbox.slice(i));
        return;
      }
      this.deliver(inbox[i][0], inbox[i][1]);
    }
    this.release(0);
  }

  // --- outgoing messages ---

  // Sends a message -> bytes sent, -1 if (part of) it waits for window, 0 if dropped.
  // `owned`: the bytes are ours (not the app's), so they need no copy when queued.
  sendBytes(bytes, binary, owned) {
    if (this.readyState !== OPEN) return 0;
    const n = bytes.length;
    if (this.next < this.queue.length) {
      if (this.queued > this.hub.backpressureLimit) return 0; // Bun drops beyond backpressureLimit
      this.queue.push([owned ? bytes : Buffer.from(bytes), 0, binary]);
      this.queued += n;
      return -1;
    }
    const off = this.fragments(bytes, 0, binary);
    if (off === n) return n;
    const rest = owned ? bytes : Buffer.from(bytes.subarray(off));
    this.queue.push([rest, owned ? off : 0, binary]);
    this.queued += n - off;
    return -1;
  }

  sendText(text) {
    if (this.readyState !== OPEN) return 0;
    if (this.next === this.queue.length && text.length <= MAX_CHUNK / 3) {
      // Small text with nothing queued: encode straight into the frame.
      const n = Buffer.byteLength(text);
      if (n <= this.window) {
        this.conn.writer.push(wsTextFrame(this.id, text, n));
        this.window -= n;
        return n;
      }
    }
    return this.sendBytes(Buffer.from(text), false, true);
  }

  // Sends fragments of bytes[off..] as far as the window allows -> the new offset.
  fragments(bytes, off, binary) {
    const n = bytes.length;
    const kind = binary ? WS_BINARY : 0;
    const w = this.conn.writer;
    if (n === 0) {
      w.push(wsMessageFrame(this.id, kind | WS_LAST, bytes, 0, 0));
      return 0;
    }
    while (off < n && this.window > 0) {
      const k = Math.min(n - off, this.window, MAX_CHUNK);
      const end = off + k;
      w.push(wsMessageFrame(this.id, end === n ? kind | WS_LAST : kind, bytes, off, end));
      this.window -= k;
      off = end;
    }
    return off;
  }

  // Credit arrived: send what waits; once all of it is out, the pending close or drain().
  flush() {
    const q = this.queue;
    while (this.next < q.length) {
      const item = q[this.next];
      const off = this.fragments(item[0], item[1], item[2]);
      this.queued -= off - item[1];
      item[1] = off;
      if (off < item[0].length) return;
      q[this.next++] = undefined;
    }
    this.queue = [];
    this.next = 0;
    this.queued = 0;
    if (this.closeAfterFlush !== null) {
      const [code, reason] = this.closeAfterFlush;
      this.closeAfterFlush = null;
      return this.sendClose(code, reason);
    }
    if (this.readyState === OPEN) call(this.hub.handlers, "drain", [this.ws]);
  }

  dropQueue() {
    this.queue = [];
    this.next = 0;
    this.queued = 0;
    this.closeAfterFlush = null;
  }

  // --- closing ---

  // The app closes (code already validated): WS_CLOSE after what is queued; close() runs on the answer.
  close(code, reason) {
    if (this.readyState !== OPEN) return;
    this.readyState = CLOSING;
    this.closeCode = code;
    this.closeReason = reason.toString("utf8");
    this.leaveTopics();
    this.dropInbound();
    if (this.next < this.queue.length) this.closeAfterFlush = [code, reason];
    else this.sendClose(code, reason);
  }

  // terminate(): WS_CLOSE 1006 at once (unless a close went out already), queued data dropped,
  // and the close handler runs now; the supervisor's answer only lets us forget the stream.
  terminate() {
    if (this.readyState === CLOSED) return;
    if (!this.sentClose) {
      this.dropQueue();
      this.sendClose(1006, EMPTY);
      this.closeCode = 1006;
      this.closeReason = "";
    }
    this.readyState = CLOSED;
    this.leaveTopics();
    this.dropInbound();
    this.callClose();
  }

  sendClose(code, reason) {
    this.sentClose = true;
    this.conn.writer.push(wsCloseFrame(this.id, code, reason));
  }

  // Both closes are through (or CANCEL): forget the stream and tell the app, once.
  end() {
    this.readyState = CLOSED;
    this.leaveTopics();
    this.dropInbound();
    this.dropQueue();
    if (!this.forgotten) {
      this.forgotten = true;
      if (this.conn.streams.get(this.id) === this) this.conn.streams.delete(this.id);
    }
    this.callClose();
  }

  callClose() {
    if (this.closeCalled) return;
    this.closeCalled = true;
    call(this.hub.handlers, "close", [this.ws, this.closeCode, this.closeReason]);
  }

  dropInbound() {
    this.parts = null;
    this.partBytes = 0;
    this.inbox = [];
    this.paused = false;
  }

  leaveTopics() {
    for (const t of this.topics) this.hub.unsubscribe(this, t);
    this.topics.clear();
  }
}

// What the app sees: Bun's ServerWebSocket API, backed by a Session.
class ServerWebSocket {
  #s;

  constructor(session, data, address) {
    this.#s = session;
    this.data = data;
    this.remoteAddress = address;
  }

  get readyState() {
    return this.#s.readyState;
  }

  get binaryType() {
    return this.#s.binaryType;
  }

  set binaryType(value) {
    if (value !== "nodebuffer" && value !== "arraybuffer" && value !== "uint8array") {
      throw new TypeError('binaryType must be "nodebuffer", "arraybuffer" or "uint8array"');
    }
    this.#s.binaryType = value;
  }

  // Returns bytes sent, -1 when (part of) the message waits for the client to catch
  // up, 0 when the socket is not open or the backpressure limit dropped the message.
  send(message, compress) {
    if (typeof message === "string") return this.#s.sendText(message);
    const view = binaryView(message, "send");
    if (view !== null) return this.#s.sendBytes(view, true, false);
    if (message == null) throw new TypeError("send requires a non-empty message");
    return this.#s.sendText(String(message));
  }

  sendText(message, compress) {
    if (typeof message !== "string") throw new TypeError("sendText expects a string");
    return this.#s.sendText(message);
  }

  sendBinary(message, compress) {
    const view = binaryView(message, "sendBinary");
    if (view === null) throw new TypeError("sendBinary expects a Blob or BufferSource");
    return this.#s.sendBytes(view, true, false);
  }

  // close(code = 1000, reason = ""): like Bun, a code that is not a number (or undefined)
  // is a TypeError; codes that may not appear in a close frame are a RangeError.
  close(code, reason) {
    if (code === undefined) code = 1000;
    else if (typeof code !== "number") throw new TypeError("close requires a numeric code or undefined");
    else code = Math.trunc(code);
    if (!sendableCode(code)) throw new RangeError(`invalid WebSocket close code ${code}`);
    this.#s.close(code, reasonBytes(reason === undefined ? "" : String(reason)));
  }

  terminate() {
    this.#s.terminate();
  }

  subscribe(topic) {
    checkTopic(topic, "subscribe");
    const s = this.#s;
    if (s.readyState !== OPEN) return false;
    s.topics.add(topic);
    s.hub.subscribe(s, topic);
    return true;
  }

  unsubscribe(topic) {
    checkTopic(topic, "unsubscribe");
    const s = this.#s;
    if (!s.topics.delete(topic)) return false;
    return s.hub.unsubscribe(s, topic);
  }

  isSubscribed(topic) {
    checkTopic(topic, "isSubscribed");
    return this.#s.topics.has(topic);
  }

  get subscriptions() {
    return [...this.#s.topics];
  }

  // To the other subscribers of `topic` (this socket too with websocket.publishToSelf).
  publish(topic, message, compress) {
    return this.#publish(topic, message, null, "publish");
  }

  publishText(topic, message, compress) {
    return this.#publish(topic, message, "text", "publishText");
  }

  publishBinary(topic, message, compress) {
    return this.#publish(topic, message, "binary", "publishBinary");
  }

  #publish(topic, message, mode, what) {
    const s = this.#s;
    if (s.readyState !== OPEN) {
      checkTopic(topic, what);
      return 0;
    }
    return s.hub.publish(topic, message, s, mode, what);
  }

  cork(callback) {
    return callback(this);
  }

  // Bytes waiting for the client's window.
  getBufferedAmount() {
    return this.#s.queued;
  }

  // pause() stops delivering messages and withholds their credit, so the client stalls.
  pause() {
    this.#s.pause();
  }

  resume() {
    this.#s.resume();
  }

  get isPaused() {
    return this.#s.paused;
  }

  // Control frames are the supervisor's business: nothing is sent.
  ping(data) {
    return 0;
  }

  pong(data) {
    return 0;
  }
}

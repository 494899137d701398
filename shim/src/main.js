"use strict"; // kept by the bytecode build, which turns these modules into one function
// Entry point of every app process: `bun main.js`, with
//   BUNTIME_IPC_PATH   the supervisor's Unix socket
//   BUNTIME_ENTRYPOINT absolute path of the app module
//   BUNTIME_APP        a label such as "hello@1.0.0"
// The app import and the connection start together; READY follows both.
// (Few modules on purpose: each extra module costs startup time.)

import {
  INITIAL_WINDOW,
  MAX_CHUNK,
  PROTOCOL_VERSION,
  ProtocolError,
  T,
  TYPE_NAMES,
  FrameReader,
  creditFrame,
  decodeRequestHead,
  decodeWsClose,
  frame,
  jsonFrame,
} from "./protocol.js";
import { CLIENT_ADDRESS, installBodyTracking, loadApp } from "./app.js";
import { RequestBody, Stream, errorPayload } from "./stream.js";

// Outgoing frame queue: frames pushed during one tick are written together at the
// next microtask, small frames as one buffer and each large payload as it is (a copy
// of a 64 KiB chunk into the batch cost more than the extra write). Short writes keep
// the unwritten rest and finish it from the socket's drain handler, so frame order is
// always kept.

// Payloads of at least this many bytes are written on their own, not copied.
const DIRECT_WRITE = 16 * 1024;

class FrameWriter {
  constructor() {
    this.socket = null;
    this.queue = [];
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

  // Queues one buffer: a whole frame built by the codec, or a DATA payload (which may
  // be the app's own buffer) right after its header.
  push(buf) {
    if (this.closed) return;
    this.queue.push(buf);
    if (!this.scheduled) this.schedule();
  }

  schedule() {
    this.scheduled = true;
    queueMicrotask(this.flush);
  }

  flush() {
    this.scheduled = false;
    if (this.socket === null || this.tail !== null || this.queue.length === 0) return;
    const queue = this.queue;
    this.queue = [];
    let small = 0; // first entry of the run of small ones not written yet
    for (let i = 0; i <= queue.length; i++) {
      if (i < queue.length && queue[i].length < DIRECT_WRITE) continue;
      if (i > small) {
        const run = i - small === 1 ? queue[small] : Buffer.concat(queue.slice(small, i));
        if (!this.write(run, false)) return this.keep(queue, i);
      }
      if (i < queue.length && !this.write(queue[i], true)) return this.keep(queue, i + 1);
      small = i + 1;
    }
    this.settle();
  }

  // Writes one buffer; false when the socket took only part of it (the rest waits for
  // drain) or is gone. An app's buffer may change once we return, so its rest is copied.
  write(data, appOwned) {
    const written = this.socket.write(data);
    if (written === data.length) return true;
    if (written < 0) {
      this.close(); // the socket is gone
      return false;
    }
    const rest = data.subarray(written);
    this.tail = appOwned ? Buffer.from(rest) : rest;
    return false;
  }

  // A short write stopped a flush at `from`: those entries go before anything queued
  // since, behind the tail.
  keep(queue, from) {
    if (this.closed || from >= queue.length) return;
    this.queue = queue.slice(from).concat(this.queue);
  }

  // Wakes idle() waiters once nothing is pending.
  settle() {
    if (this.idleWaiters.length && this.tail === null && this.queue.length === 0) this.wakeIdle();
  }

  // The socket is closed: drop what is pending and release idle() waiters.
  close() {
    this.closed = true;
    this.queue = [];
    this.tail = null;
    this.wakeIdle();
  }

  // Socket drain handler: finish the tail, then anything queued meanwhile.
  drain() {
    if (this.tail === null) return;
    const tail = this.tail;
    this.tail = null;
    if (!this.write(tail, false)) return;
    if (this.queue.length && !this.scheduled) this.flush();
    else this.settle();
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

// The IPC connection: socket handlers, frame dispatch, the stream table and
// the connection-level messages (HELLO/READY/FATAL, PING, IDLE, TERMINATE, STATS).

const TERMINATE_CAP_MS = 10_000;
const EXIT_PROTOCOL = 70;

function logError(what, err) {
  console.error(`[buntime] ${what}:`, err);
}

// Socket callbacks; socket.data is set to the Connection when the socket opens.
function socketHandlers(conn) {
  return {
    open(socket) {
      socket.data = conn;
      conn.open(socket);
    },
    data(socket, chunk) {
      socket.data.receive(chunk);
    },
    drain(socket) {
      socket.data.writer.drain();
    },
    end(socket) {
      socket.data.lost("the supervisor closed the connection");
    },
    close(socket) {
      conn.lost("the connection closed");
    },
    error(socket, err) {
      logError("ipc socket error", err);
    },
    connectError(socket, err) {
      logError(`cannot connect to ${process.env.BUNTIME_IPC_PATH}`, err);
      process.exit(1);
    },
  };
}

class Connection {
  constructor() {
    this.writer = new FrameWriter();
    this.reader = new FrameReader((type, id, payload) => this.onFrame(type, id, payload));
    this.streams = new Map();
    this.lastId = 0;
    this.app = null;
    this.handler = null;
    this.sessions = null; // WebSocket sessions (websocket.js), for apps that export `websocket`
    this.early = []; // streams whose REQUEST came before the app was ready
    this.opened = null; // resolves when the socket is open
    this.terminating = false;
  }

  connect(path) {
    this.opened = new Promise((resolve) => (this.onOpen = resolve));
    Bun.connect({ unix: path, socket: socketHandlers(this), allowHalfOpen: true }).catch((err) => {
      logError(`cannot connect to ${path}`, err);
      process.exit(1);
    });
  }

  open(socket) {
    this.writer.attach(socket);
    this.writer.push(jsonFrame(T.HELLO, 0, { protocol: PROTOCOL_VERSION, pid: process.pid, bun: Bun.version }));
    this.onOpen();
  }

  // The app loaded: announce it and serve requests that arrived early.
  ready(loaded) {
    this.app = loaded.app;
    this.handler = loaded.handler;
    this.sessions = loaded.sessions;
    if (this.sessions !== null) this.sessions.attach(this);
    this.writer.push(jsonFrame(T.READY, 0, { exports: loaded.exports }));
    const early = this.early;
    this.early = [];
    for (const [st, req, head] of early) if (!st.done) this.invoke(st, req, head);
  }

  // The app cannot start: FATAL to the supervisor and stderr, then exit 1.
  async fatal(err) {
    const payload = errorPayload(err);
    console.error(`[buntime] ${process.env.BUNTIME_APP ?? "app"}: ${payload.stack || payload.message}`);
    await this.opened;
    this.writer.push(jsonFrame(T.FATAL, 0, payload));
    await this.writer.idle();
    process.exit(1);
  }

  lost(why) {
    this.writer.close();
    if (this.terminating) return; // finishing onTerminate; exits 0 by itself
    console.error(`[buntime] ${why}; exiting`);
    process.exit(1);
  }

  receive(chunk) {
    try {
      this.reader.feed(chunk);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      console.error(`[buntime] protocol error from the supervisor: ${err.message}`);
      process.exit(EXIT_PROTOCOL);
    }
  }

  onFrame(type, id, payload) {
    switch (type) {
      case T.REQUEST:
        return this.onRequest(this.streamId(type, id), payload);
      case T.DATA: {
        if (payload.length === 0 || payload.length > MAX_CHUNK) throw new ProtocolError(`DATA of ${payload.length} bytes`);
        const st = this.streams.get(this.streamId(type, id));
        if (st === undefined || this.collect(st, payload)) return;
        if (st.body === null) throw new ProtocolError(`DATA on stream ${id} without a request body`);
        return st.body.data(payload);
      }
      case T.END: {
        this.empty(type, payload);
        const st = this.streams.get(this.streamId(type, id));
        if (st === undefined || this.collected(st)) return;
        if (st.body === null) throw new ProtocolError(`END on stream ${id} without a request body`);
        return st.body.end();
      }
      case T.CREDIT: {
        if (payload.length !== 4) throw new ProtocolError("CREDIT payload is not 4 bytes");
        const st = this.streams.get(this.streamId(type, id));
        if (st !== undefined) st.credit(payload.readUInt32LE(0));
        return;
      }
      case T.CANCEL: {
        this.empty(type, payload);
        const st = this.streams.get(this.streamId(type, id));
        if (st !== undefined) st.cancel();
        return;
      }
      case T.WS_MESSAGE: {
        if (payload.length === 0 || payload.length > MAX_CHUNK + 1) throw new ProtocolError(`WS_MESSAGE of ${payload.length} bytes`);
        const st = this.streams.get(this.streamId(type, id));
        if (st === undefined) return;
        if (st.wsMessage === undefined) throw new ProtocolError(`WS_MESSAGE on stream ${id}, which is not a WebSocket session`);
        return st.wsMessage(payload);
      }
      case T.WS_CLOSE: {
        const close = decodeWsClose(payload);
        const st = this.streams.get(this.streamId(type, id));
        if (st === undefined) return;
        if (st.wsClose === undefined) throw new ProtocolError(`WS_CLOSE on stream ${id}, which is not a WebSocket session`);
        return st.wsClose(close.code, close.reason);
      }
      case T.PING:
        this.control(type, id);
        if (payload.length !== 8) throw new ProtocolError("PING payload is not 8 bytes");
        return this.writer.push(frame(T.PONG, 0, payload));
      case T.IDLE:
        this.control(type, id);
        this.empty(type, payload);
        return this.idle();
      case T.TERMINATE:
        this.control(type, id);
        this.empty(type, payload);
        return void this.terminate();
      case T.STATS_REQUEST: {
        this.control(type, id);
        this.empty(type, payload);
        const m = process.memoryUsage();
        const stats = { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external };
        return this.writer.push(jsonFrame(T.STATS, 0, stats));
      }
      default:
        throw new ProtocolError(`unexpected frame type 0x${type.toString(16)} ${TYPE_NAMES[type] ?? ""}`.trim());
    }
  }

  // Frame-shape checks: stream frames need an id, control frames use stream 0.
  streamId(type, id) {
    if (id === 0) throw new ProtocolError(`${TYPE_NAMES[type]} on stream 0`);
    return id;
  }
  control(type, id) {
    if (id !== 0) throw new ProtocolError(`${TYPE_NAMES[type]} on stream ${id}`);
  }
  empty(type, payload) {
    if (payload.length !== 0) throw new ProtocolError(`${TYPE_NAMES[type]} with a payload`);
  }

  onRequest(id, payload) {
    if (id <= this.lastId) throw new ProtocolError(`REQUEST reuses stream ${id}`);
    this.lastId = id;
    const head = decodeRequestHead(payload);
    const st = new Stream(this, id, head.method === "HEAD");
    this.streams.set(id, st);
    if (head.body) {
      // A small body usually arrives in the same read as its head. Collect it until
      // END or the end of this tick, whichever comes first: a whole body becomes a
      // plain buffer, which is much cheaper for the app to read than a stream.
      st.collecting = { head, chunks: [], size: 0, ended: false };
      queueMicrotask(() => this.beginCollected(st));
      return;
    }
    this.begin(st, head, null);
  }

  // DATA for a stream whose body is still being collected: false if it is not.
  collect(st, payload) {
    const pending = st.collecting; // undefined on a WebSocket session
    if (!pending) return false;
    if (pending.size + payload.length > INITIAL_WINDOW) throw new ProtocolError("DATA beyond the window");
    pending.chunks.push(payload);
    pending.size += payload.length;
    return true;
  }

  // END for a stream whose body is still being collected: the request starts now.
  collected(st) {
    if (!st.collecting) return false;
    st.collecting.ended = true;
    this.beginCollected(st);
    return true;
  }

  // Starts a request whose body was being collected (at END or at the end of the
  // tick): the whole body as a buffer if END came, else a stream that takes over
  // from the chunks so far.
  beginCollected(st) {
    const pending = st.collecting;
    if (pending === null || st.done) return;
    st.collecting = null;
    if (pending.ended && pending.size > 0) {
      const body = pending.chunks.length === 1 ? pending.chunks[0] : Buffer.concat(pending.chunks, pending.size);
      return this.begin(st, pending.head, body);
    }
    const id = st.id;
    st.body = new RequestBody((n) => {
      if (!st.done) this.writer.push(creditFrame(id, n));
    });
    for (const chunk of pending.chunks) st.body.data(chunk);
    if (pending.ended) st.body.end();
    this.begin(st, pending.head, st.body.stream);
  }

  // Builds the Request and hands it to the app (or holds it until the app is ready).
  begin(st, head, body) {
    let req;
    try {
      // Appending to the new Request's own headers gives the same list as passing
      // the pairs in its init, at about two thirds of the cost (no sequence walk).
      req = new Request(head.url, { method: head.method, body, signal: st.abort.signal });
      const headers = req.headers;
      const pairs = head.headers;
      for (let i = 0; i < pairs.length; i++) headers.append(pairs[i][0], pairs[i][1]);
    } catch (err) {
      return st.sendError(err);
    }
    if (head.address) req[CLIENT_ADDRESS] = head.address;
    if (this.handler === null) this.early.push([st, req, head]);
    else this.invoke(st, req, head);
  }

  invoke(st, req, head) {
    if (this.sessions !== null) this.sessions.offer(req, st, head);
    let result;
    try {
      result = this.handler(req, st, head.url, head.method);
    } catch (err) {
      return st.sendError(err);
    }
    st.respond(result);
  }

  // IDLE: call onIdle() once; its errors only go to stderr.
  idle() {
    const app = this.app;
    if (app === null || typeof app.onIdle !== "function") return;
    try {
      const r = app.onIdle();
      if (r != null && typeof r.then === "function") r.then(undefined, (err) => logError("onIdle failed", err));
    } catch (err) {
      logError("onIdle failed", err);
    }
  }

  // TERMINATE: await onTerminate() (at most 10 s), flush our frames, exit 0.
  async terminate() {
    if (this.terminating) return;
    this.terminating = true;
    const app = this.app;
    if (app !== null && typeof app.onTerminate === "function") {
      let timer;
      const cap = new Promise((resolve) => {
        timer = setTimeout(() => {
          console.error("[buntime] onTerminate did not finish within 10 s");
          resolve();
        }, TERMINATE_CAP_MS);
      });
      try {
        await Promise.race([Promise.resolve().then(() => app.onTerminate()), cap]);
      } catch (err) {
        logError("onTerminate failed", err);
      }
      clearTimeout(timer);
    }
    await this.writer.idle();
    process.exit(0);
  }
}

// --- startup ---

const env = process.env;
const entry = env.BUNTIME_ENTRYPOINT;
const ipcPath = env.BUNTIME_IPC_PATH;

if (!entry || !ipcPath) {
  console.error("[buntime] BUNTIME_ENTRYPOINT and BUNTIME_IPC_PATH must be set");
  process.exit(2);
}

// A stray rejection in app code must not take the process down.
process.on("unhandledRejection", (err) => {
  console.error(`[buntime] ${env.BUNTIME_APP ?? "app"}: unhandled rejection:`, err);
});

installBodyTracking(); // before the app creates any Response
const loading = loadApp(entry);
const conn = new Connection();
conn.connect(ipcPath);
loading.then(
  async (loaded) => {
    await conn.opened;
    conn.ready(loaded);
  },
  (err) => conn.fatal(err),
);

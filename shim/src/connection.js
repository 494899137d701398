// The IPC connection: socket handlers, frame dispatch, the stream table and
// the connection-level messages (HELLO/READY/FATAL, PING, IDLE, TERMINATE, STATS).

import {
  MAX_CHUNK,
  PROTOCOL_VERSION,
  ProtocolError,
  T,
  TYPE_NAMES,
  creditFrame,
  decodeRequestHead,
  frame,
  jsonFrame,
} from "./protocol.js";
import { FrameReader } from "./reader.js";
import { FrameWriter } from "./writer.js";
import { RequestBody } from "./body.js";
import { Stream, errorPayload } from "./stream.js";
import { requestAddresses } from "./app.js";

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

export class Connection {
  constructor() {
    this.writer = new FrameWriter();
    this.reader = new FrameReader((type, id, payload) => this.onFrame(type, id, payload));
    this.streams = new Map();
    this.lastId = 0;
    this.app = null;
    this.handler = null;
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
    this.writer.push(jsonFrame(T.READY, 0, { exports: loaded.exports }));
    const early = this.early;
    this.early = [];
    for (const [st, req, url, method] of early) if (!st.done) this.invoke(st, req, url, method);
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
        if (st === undefined) return;
        if (st.body === null) throw new ProtocolError(`DATA on stream ${id} without a request body`);
        return st.body.data(payload);
      }
      case T.END: {
        this.empty(type, payload);
        const st = this.streams.get(this.streamId(type, id));
        if (st === undefined) return;
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
    let body = null;
    if (head.body) {
      st.body = new RequestBody((n) => {
        if (!st.done) this.writer.push(creditFrame(id, n));
      });
      body = st.body.stream;
    }
    let req;
    try {
      req = new Request(head.url, { method: head.method, headers: head.headers, body, signal: st.abort.signal });
    } catch (err) {
      return st.sendError(err);
    }
    if (head.address) requestAddresses.set(req, head.address);
    if (this.handler === null) this.early.push([st, req, head.url, head.method]);
    else this.invoke(st, req, head.url, head.method);
  }

  invoke(st, req, url, method) {
    let result;
    try {
      result = this.handler(req, st, url, method);
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

// A small fake supervisor for end-to-end tests: listens on a Unix socket in a
// temp dir, spawns the real shim against an app from test/apps/, records the
// frames it receives and lets a test send frames back.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FrameReader, INITIAL_WINDOW, MAX_CHUNK, WS_BINARY, WS_LAST } from "../src/protocol.js";
import {
  T,
  TYPE_NAMES,
  creditFrame,
  decodeResponseHead,
  decodeWsAccept,
  decodeWsClose,
  frame,
  requestFrame,
  wsCloseFrame,
  wsMessageFrame,
} from "../src/protocol.js";

// The shim under test: its source, or (BUNTIME_SHIM_MAIN) the bytecode build the
// supervisor makes of it, which must behave the same.
export const SHIM_MAIN = process.env.BUNTIME_SHIM_MAIN || join(import.meta.dir, "..", "src", "main.js");
export const APPS = join(import.meta.dir, "apps");

export class FakeSupervisor {
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "buntime-shim-"));
    this.path = join(this.dir, "ipc.sock");
    this.frames = []; // every frame received, in order
    this.waiters = [];
    this.socket = null;
    this.pending = []; // unwritten bytes after a short write, in order
    this.closed = false;
    this.stdout = "";
    this.stderr = "";
    this.chunks = 0; // data events seen; each frame records the one it completed in
    this.granted = new Map(); // stream -> CREDIT the shim gave us
    this.spent = new Map(); // stream -> WS_MESSAGE bytes we sent
    this.given = new Map(); // stream -> CREDIT we gave the shim
    this.reader = new FrameReader((type, stream, payload) => {
      this.frames.push({ type, name: TYPE_NAMES[type], stream, payload: Buffer.from(payload), chunk: this.chunks });
      if (type === T.CREDIT) this.granted.set(stream, (this.granted.get(stream) ?? 0) + payload.readUInt32LE(0));
      this.check();
    });
    this.listener = Bun.listen({
      unix: this.path,
      socket: {
        open: (socket) => {
          this.socket = socket;
          this.check();
        },
        data: (_socket, chunk) => {
          this.chunks++;
          this.reader.feed(chunk);
        },
        drain: () => this.drain(),
        close: () => {
          this.closed = true;
          this.check();
        },
      },
    });
  }

  // Spawns the shim for test/apps/<app> (or an absolute path).
  start(app, extraEnv = {}) {
    const entry = app.startsWith("/") ? app : join(APPS, app);
    this.entry = entry;
    this.proc = Bun.spawn([process.execPath, SHIM_MAIN], {
      cwd: APPS,
      env: {
        ...process.env,
        BUNTIME_IPC_PATH: this.path,
        BUNTIME_ENTRYPOINT: entry,
        BUNTIME_APP: "test@1.0.0",
        ...extraEnv,
      },
      stdout: "pipe",
      stderr: "pipe",
    });
    this.stderrDone = Promise.all([
      new Response(this.proc.stdout).text().then((t) => (this.stdout = t)),
      new Response(this.proc.stderr).text().then((t) => (this.stderr = t)),
    ]);
    return this;
  }

  // Starts the shim and waits for HELLO and READY; returns READY's JSON.
  async ready(app, extraEnv) {
    this.start(app, extraEnv);
    await this.next((f) => f.type === T.HELLO);
    const ready = await this.next((f) => f.type === T.READY || f.type === T.FATAL);
    if (ready.type !== T.READY) throw new Error(`app did not start: ${ready.payload}`);
    return JSON.parse(ready.payload.toString());
  }

  check() {
    for (const w of [...this.waiters]) {
      const i = this.frames.findIndex((f, idx) => idx >= w.from && w.match(f));
      if (i >= 0) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(this.frames[i]);
      } else if (this.closed) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.reject(new Error(`connection closed while waiting; stderr: ${this.stderr}`));
      }
    }
  }

  // Next frame (from index `from`) matching `match`, or a rejection after `ms`.
  next(match = () => true, ms = 5000, from = 0) {
    return new Promise((resolve, reject) => {
      const w = { match, from, resolve, reject };
      this.waiters.push(w);
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`timed out; frames: ${this.frames.map((f) => `${f.name}/${f.stream}`).join(" ")}`));
      }, ms);
      const settle = w.resolve;
      w.resolve = (f) => {
        clearTimeout(timer);
        settle(f);
      };
      this.check();
    });
  }

  // Writes in order, keeping whatever a short write left for the drain handler.
  send(buf) {
    if (this.pending.length) {
      this.pending.push(Buffer.from(buf));
      return;
    }
    const n = this.socket.write(buf);
    if (n < buf.length) this.pending.push(Buffer.from(buf.subarray(Math.max(n, 0))));
  }

  drain() {
    while (this.pending.length) {
      const b = this.pending[0];
      const n = this.socket.write(b);
      if (n < b.length) {
        this.pending[0] = b.subarray(Math.max(n, 0));
        return;
      }
      this.pending.shift();
    }
  }

  sendFrame(type, stream, payload) {
    this.send(frame(type, stream, payload));
  }

  credit(stream, n) {
    this.given.set(stream, (this.given.get(stream) ?? 0) + n);
    this.send(creditFrame(stream, n));
  }

  request(stream, head) {
    this.send(requestFrame(stream, { body: false, method: "GET", address: "127.0.0.1", headers: [], ...head }));
  }

  streamFrames(stream) {
    return this.frames.filter((f) => f.stream === stream);
  }

  // Waits until stream `id` ends (END or ERROR) -> {status, headers, body, error}.
  async response(id, ms = 5000) {
    const last = await this.next((f) => f.stream === id && (f.type === T.END || f.type === T.ERROR || (f.type === T.RESPONSE && !(f.payload[0] & 1))), ms);
    const frames = this.streamFrames(id);
    const out = { status: 0, headers: [], body: Buffer.alloc(0), error: null, frames };
    const head = frames.find((f) => f.type === T.RESPONSE);
    if (head) Object.assign(out, decodeResponseHead(head.payload));
    out.body = Buffer.concat(frames.filter((f) => f.type === T.DATA).map((f) => f.payload));
    if (last.type === T.ERROR) out.error = JSON.parse(last.payload.toString());
    out.text = out.body.toString();
    out.header = (name) => out.headers.find((h) => h[0] === name)?.[1] ?? null;
    return out;
  }

  // Simple request on `id`, then its full response (granting credit as DATA arrives).
  async fetch(id, url, head = {}) {
    this.request(id, { url: url.startsWith("http") ? url : `http://app.test${url}`, ...head });
    return this.response(id);
  }

  // --- WebSocket sessions ---

  // A WebSocket upgrade REQUEST on `id` (headers added to the usual upgrade headers).
  wsRequest(id, url, { headers = [], ...head } = {}) {
    const upgrade = [
      ["connection", "Upgrade"],
      ["upgrade", "websocket"],
      ["sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="],
      ["sec-websocket-version", "13"],
    ];
    this.request(id, { url: url.startsWith("http") ? url : `http://app.test${url}`, headers: [...upgrade, ...headers], ...head });
  }

  // Upgrade request on `id` -> the headers of its WS_ACCEPT (throws on any other answer).
  async wsOpen(id, url, opts) {
    this.wsRequest(id, url, opts);
    const f = await this.next((f) => f.stream === id && (f.type === T.WS_ACCEPT || f.type === T.RESPONSE || f.type === T.ERROR));
    if (f.type !== T.WS_ACCEPT) throw new Error(`stream ${id} answered ${f.name}, not WS_ACCEPT`);
    return decodeWsAccept(f.payload);
  }

  // Message bytes we may still send on `id`.
  wsWindow(id) {
    return INITIAL_WINDOW + (this.granted.get(id) ?? 0) - (this.spent.get(id) ?? 0);
  }

  // Sends one message in fragments of at most `fragment` bytes, within the window.
  // Resolves true once all of it is sent, false if the session closed first.
  async wsSend(id, data, { binary = typeof data !== "string", fragment = MAX_CHUNK } = {}) {
    const bytes = Buffer.from(data);
    const kind = binary ? WS_BINARY : 0;
    let off = 0;
    do {
      const n = Math.min(bytes.length - off, fragment, this.wsWindow(id));
      if (n <= 0 && bytes.length > 0) {
        if (this.closed || this.streamFrames(id).some((f) => f.type === T.WS_CLOSE)) return false;
        await sleep(1);
        continue;
      }
      const end = off + n;
      this.send(wsMessageFrame(id, end === bytes.length ? kind | WS_LAST : kind, bytes, off, end));
      this.spent.set(id, (this.spent.get(id) ?? 0) + n);
      off = end;
    } while (off < bytes.length);
    return true;
  }

  wsClose(id, code, reason = "") {
    this.send(wsCloseFrame(id, code, Buffer.from(reason)));
  }

  // WS_CLOSE frames the shim sent on `id`, decoded.
  wsCloses(id) {
    return this.streamFrames(id).filter((f) => f.type === T.WS_CLOSE).map((f) => decodeWsClose(f.payload));
  }

  // The complete messages the shim sent on `id`: {binary, data (Buffer), text}.
  wsMessages(id) {
    const out = [];
    let parts = [];
    let binary = null;
    for (const f of this.streamFrames(id)) {
      if (f.type !== T.WS_MESSAGE) continue;
      if (binary === null) binary = (f.payload[0] & WS_BINARY) !== 0;
      parts.push(f.payload.subarray(1));
      if (f.payload[0] & WS_LAST) {
        const data = Buffer.concat(parts);
        out.push({ binary, data, text: data.toString() });
        parts = [];
        binary = null;
      }
    }
    return out;
  }

  // WS_MESSAGE data bytes the shim sent on `id`.
  wsBytes(id) {
    return this.streamFrames(id).reduce((n, f) => n + (f.type === T.WS_MESSAGE ? f.payload.length - 1 : 0), 0);
  }

  // Waits for the shim's message number `index` on `id`, granting credit for what
  // arrives (as the supervisor does once it has written it to the client).
  async wsMessage(id, index, ms = 5000) {
    const end = performance.now() + ms;
    for (;;) {
      const messages = this.wsMessages(id);
      if (messages.length > index) return messages[index];
      const received = this.wsBytes(id);
      const given = this.given.get(id) ?? 0;
      if (received > given) this.credit(id, received - given);
      if (this.closed) throw new Error(`connection closed; stderr: ${this.stderr}`);
      if (performance.now() > end) throw new Error(`timed out waiting for message ${index} on ${id}`);
      await sleep(1);
    }
  }

  async exited(ms = 5000) {
    const timer = setTimeout(() => this.proc.kill(), ms);
    const code = await this.proc.exited;
    clearTimeout(timer);
    await this.stderrDone;
    return code;
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null) this.proc.kill();
    if (this.proc) await this.proc.exited;
    this.listener.stop(true);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

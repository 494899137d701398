// A small fake supervisor for end-to-end tests: listens on a Unix socket in a
// temp dir, spawns the real shim against an app from test/apps/, records the
// frames it receives and lets a test send frames back.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FrameReader } from "../src/protocol.js";
import { T, TYPE_NAMES, creditFrame, decodeResponseHead, frame, requestFrame } from "../src/protocol.js";

export const SHIM_MAIN = join(import.meta.dir, "..", "src", "main.js");
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
    this.reader = new FrameReader((type, stream, payload) => {
      this.frames.push({ type, name: TYPE_NAMES[type], stream, payload: Buffer.from(payload), chunk: this.chunks });
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

// End-to-end: the real shim process against the fake supervisor.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { FakeSupervisor, APPS, sleep } from "./harness.js";
import { INITIAL_WINDOW, MAX_CHUNK, T, frame } from "../src/protocol.js";

const pattern = (n) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = i & 0xff;
  return b;
};
// Polls until cond() holds (or gives up after ms).
async function until(cond, ms = 5000) {
  const end = performance.now() + ms;
  while (!cond() && performance.now() < end) await sleep(2);
}
const dataBytes = (frames) => frames.filter((f) => f.type === T.DATA).reduce((n, f) => n + f.payload.length, 0);

describe("startup", () => {
  test("HELLO then READY with the fetch app's exports", async () => {
    const s = new FakeSupervisor();
    try {
      s.start("fetch-app.js");
      const hello = await s.next((f) => f.type === T.HELLO);
      expect(hello.stream).toBe(0);
      expect(JSON.parse(hello.payload)).toEqual({ protocol: 1, pid: s.proc.pid, bun: Bun.version });
      const ready = await s.next((f) => f.type === T.READY);
      expect(JSON.parse(ready.payload)).toEqual({ exports: ["fetch", "onIdle", "onTerminate"] });
      expect(s.frames.indexOf(hello)).toBeLessThan(s.frames.indexOf(ready));
    } finally {
      await s.stop();
    }
  });

  test("READY lists routes for routes apps (default export or namespace)", async () => {
    for (const [app, exportsList] of [
      ["routes-app.js", ["fetch", "routes"]],
      ["routes-only.js", ["routes"]],
      ["class-app.js", ["fetch", "onTerminate"]],
    ]) {
      const s = new FakeSupervisor();
      try {
        expect((await s.ready(app)).exports).toEqual(exportsList);
      } finally {
        await s.stop();
      }
    }
  });

  test("a REQUEST that arrives before READY is served once the app is loaded", async () => {
    const s = new FakeSupervisor();
    try {
      s.start("slow-start.js");
      await s.next((f) => f.type === T.HELLO);
      s.request(1, { url: "http://app.test/" });
      const r = await s.response(1);
      expect(r.text).toBe("loaded late");
      const ready = s.frames.findIndex((f) => f.type === T.READY);
      expect(ready).toBeGreaterThanOrEqual(0);
      expect(ready).toBeLessThan(s.frames.indexOf(r.frames[0]));
    } finally {
      await s.stop();
    }
  });

  test("syntax error -> FATAL naming the entrypoint, stderr, exit 1", async () => {
    const s = new FakeSupervisor();
    try {
      s.start("syntax-error.js");
      const fatal = await s.next((f) => f.type === T.FATAL);
      const body = JSON.parse(fatal.payload);
      expect(body.message).toContain(join(APPS, "syntax-error.js"));
      expect(typeof body.stack).toBe("string");
      expect(await s.exited()).toBe(1);
      expect(s.stderr).toContain("syntax-error.js");
      expect(s.frames.some((f) => f.type === T.READY)).toBe(false);
    } finally {
      await s.stop();
    }
  });

  test("no fetch and no routes -> FATAL, exit 1", async () => {
    const s = new FakeSupervisor();
    try {
      s.start("no-handler.js");
      const fatal = await s.next((f) => f.type === T.FATAL);
      const entry = join(APPS, "no-handler.js");
      expect(JSON.parse(fatal.payload).message).toBe(`entrypoint ${entry} exports neither fetch nor routes`);
      expect(await s.exited()).toBe(1);
      expect(s.stderr).toContain("exports neither fetch nor routes");
    } finally {
      await s.stop();
    }
  });
});

describe("fetch app", () => {
  const s = new FakeSupervisor();
  let id = 0;
  beforeAll(() => s.ready("fetch-app.js"));
  afterAll(() => s.stop());

  test("answers a request; head, data and END go out in one write", async () => {
    const n = ++id;
    const r = await s.fetch(n, "/hello");
    expect(r.status).toBe(200);
    expect(r.text).toBe("hello GET");
    expect(r.headers).toEqual([["content-type", "text/plain;charset=utf-8"]]);
    expect(r.frames.map((f) => f.name)).toEqual(["RESPONSE", "DATA", "END"]);
    expect(new Set(r.frames.map((f) => f.chunk)).size).toBe(1);
  });

  test("requestIP reports the head's address", async () => {
    let r = await s.fetch(++id, "/ip", { address: "127.0.0.1" });
    expect(JSON.parse(r.text)).toEqual({ address: "127.0.0.1", family: "IPv4", port: 0 });
    r = await s.fetch(++id, "/ip", { address: "::1" });
    expect(JSON.parse(r.text)).toEqual({ address: "::1", family: "IPv6", port: 0 });
    r = await s.fetch(++id, "/ip", { address: "" });
    expect(r.text).toBe("null");
  });

  test("request headers reach the app; repeated set-cookie and latin1 bytes survive", async () => {
    let r = await s.fetch(++id, "/headers", { headers: [["x-a", "1"], ["accept", "*/*"]] });
    expect(JSON.parse(r.text)).toEqual([["accept", "*/*"], ["x-a", "1"]]);

    r = await s.fetch(++id, "/cookies");
    expect(r.headers.filter((h) => h[0] === "set-cookie")).toEqual([["set-cookie", "a=1; Path=/"], ["set-cookie", "b=2; HttpOnly"]]);
    expect(r.header("x-latin1")).toBe("caf\u00e9");
    expect(r.frames[0].payload.includes(Buffer.from([0x63, 0x61, 0x66, 0xe9]))).toBe(true);

    // The app sees what `new Request(url, { headers })` would give it: repeated names
    // joined, set-cookie kept apart, names lowercased and sorted, with a body too.
    const sent = [["X-Dup", "1"], ["set-cookie", "a=1"], ["x-dup", "2"], ["Content-Type", "text/csv"], ["set-cookie", "b=2"], ["host", "app.test"]];
    const expected = [...new Request("http://app.test/", { method: "POST", headers: sent, body: "x" }).headers];
    const n = ++id;
    s.request(n, { method: "POST", url: "http://app.test/headers", headers: sent, body: true });
    s.sendFrame(T.DATA, n, Buffer.from("x"));
    s.sendFrame(T.END, n);
    r = await s.response(n);
    expect(JSON.parse(r.text)).toEqual(expected);
    expect(expected).toContainEqual(["x-dup", "1, 2"]);
    r = await s.fetch(++id, "/headers", { headers: sent.slice(0, 3) });
    expect(JSON.parse(r.text)).toEqual([...new Headers(sent.slice(0, 3))]);

    const raw = "\u00ff\u0080 caf\u00e9 \u00c3\u00a9"; // bytes that are not valid UTF-8, plus a UTF-8 pair
    r = await s.fetch(++id, "/raw-header", { headers: [["x-raw", raw]] });
    expect(r.header("x-echo")).toBe(raw);
    expect(r.frames[0].payload.includes(Buffer.from(raw, "latin1"))).toBe(true);
  });

  test("a request body arrives as a stream", async () => {
    const n = ++id;
    s.request(n, { method: "POST", url: "http://app.test/text", body: true });
    s.sendFrame(T.DATA, n, Buffer.from("hello "));
    s.sendFrame(T.DATA, n, Buffer.from("world"));
    s.sendFrame(T.END, n);
    const r = await s.response(n);
    expect(r.text).toBe("hello world");
  });

  test("handler errors -> ERROR frames, and the shim keeps serving", async () => {
    let r = await s.fetch(++id, "/throw");
    expect(r.error.message).toBe("boom");
    expect(r.error.stack).toContain("boom");
    expect(r.frames.map((f) => f.name)).toEqual(["ERROR"]);

    r = await s.fetch(++id, "/reject");
    expect(r.error.message).toBe("late boom");

    r = await s.fetch(++id, "/not-response");
    expect(r.error.message).toContain("not a Response");

    r = await s.fetch(++id, "/stream-error");
    expect(r.frames.map((f) => f.name)).toEqual(["RESPONSE", "DATA", "ERROR"]);
    expect(r.error.message).toBe("stream broke");

    expect((await s.fetch(++id, "/hello")).text).toBe("hello GET");
  });

  test("PING -> PONG with the same bytes", async () => {
    const from = s.frames.length;
    s.sendFrame(T.PING, 0, Buffer.from("8bytes!!"));
    const pong = await s.next((f) => f.type === T.PONG, 5000, from);
    expect(pong.stream).toBe(0);
    expect(pong.payload.toString()).toBe("8bytes!!");
  });

  test("STATS_REQUEST -> STATS with memory numbers", async () => {
    const from = s.frames.length;
    s.sendFrame(T.STATS_REQUEST, 0);
    const stats = JSON.parse((await s.next((f) => f.type === T.STATS, 5000, from)).payload);
    expect(Object.keys(stats)).toEqual(["rss", "heapUsed", "heapTotal", "external"]);
    for (const v of Object.values(stats)) expect(v).toBeGreaterThan(0);
  });

  test("IDLE calls onIdle once per frame", async () => {
    const before = Number((await s.fetch(++id, "/idle-count")).text);
    s.sendFrame(T.IDLE, 0);
    s.sendFrame(T.IDLE, 0);
    await sleep(20);
    expect(Number((await s.fetch(++id, "/idle-count")).text)).toBe(before + 2);
  });

  test("a slow stream does not block a fast one", async () => {
    const slow = ++id;
    const fast = ++id;
    s.request(slow, { url: "http://app.test/slow?ms=300" });
    s.request(fast, { url: "http://app.test/hello" });
    const fastDone = await s.response(fast);
    expect(fastDone.text).toBe("hello GET");
    expect(s.streamFrames(slow)).toEqual([]);
    const slowDone = await s.response(slow);
    expect(slowDone.text).toBe("slow done");
    expect(s.frames.indexOf(fastDone.frames.at(-1))).toBeLessThan(s.frames.indexOf(slowDone.frames[0]));
  });

  test("frames for streams never opened are ignored", async () => {
    s.sendFrame(T.CREDIT, 9999, Buffer.from([0, 0, 1, 0]));
    s.sendFrame(T.CANCEL, 9998);
    s.sendFrame(T.DATA, 9997, Buffer.from("x"));
    expect((await s.fetch(++id, "/hello")).text).toBe("hello GET");
  });

  test("10 MB response: at most 256 KiB without credit, more after CREDIT", async () => {
    const n = ++id;
    const total = 10 * 1024 * 1024;
    s.request(n, { url: `http://app.test/big?n=${total}` });
    await s.next((f) => f.stream === n && f.type === T.RESPONSE);
    await until(() => dataBytes(s.streamFrames(n)) >= INITIAL_WINDOW);
    await sleep(200);
    expect(dataBytes(s.streamFrames(n))).toBe(INITIAL_WINDOW);

    s.credit(n, 100_000);
    await until(() => dataBytes(s.streamFrames(n)) >= INITIAL_WINDOW + 100_000);
    await sleep(100);
    expect(dataBytes(s.streamFrames(n))).toBe(INITIAL_WINDOW + 100_000);

    // keep granting as the data comes in, like the supervisor would
    let granted = INITIAL_WINDOW + 100_000;
    while (!s.streamFrames(n).some((f) => f.type === T.END)) {
      const received = dataBytes(s.streamFrames(n));
      expect(received).toBeLessThanOrEqual(granted);
      if (granted - received < INITIAL_WINDOW) {
        s.credit(n, INITIAL_WINDOW);
        granted += INITIAL_WINDOW;
      }
      await sleep(1);
    }
    const frames = s.streamFrames(n);
    expect(dataBytes(frames)).toBe(total);
    expect((await s.response(n)).body.equals(pattern(total))).toBe(true);
    for (const f of frames) if (f.type === T.DATA) expect(f.payload.length).toBeLessThanOrEqual(MAX_CHUNK);
  });

  test("a socket that stops reading: short writes keep every byte and the frame order", async () => {
    const total = 2 * 1024 * 1024;
    const ids = [++id, ++id, ++id];
    s.socket.pause();
    for (const n of ids) {
      s.request(n, { url: `http://app.test/big?n=${total}` });
      s.credit(n, total);
    }
    await sleep(200); // the shim fills the socket buffer and keeps the rest
    const from = s.frames.length;
    s.sendFrame(T.PING, 0, Buffer.from("afterbig"));
    s.socket.resume();
    for (const n of ids) {
      const r = await s.response(n, 10000);
      expect(r.body.length).toBe(total);
      expect(r.body.equals(pattern(total))).toBe(true);
    }
    expect((await s.next((f) => f.type === T.PONG, 5000, from)).payload.toString()).toBe("afterbig");
  });

  test("no CREDIT for a request body the app does not read", async () => {
    const n = ++id;
    s.request(n, { method: "POST", url: "http://app.test/slow?ms=150", body: true });
    for (let sent = 0; sent < INITIAL_WINDOW; sent += MAX_CHUNK) s.sendFrame(T.DATA, n, Buffer.alloc(MAX_CHUNK));
    await sleep(100);
    expect(s.streamFrames(n).filter((f) => f.type === T.CREDIT)).toEqual([]);
    expect((await s.response(n)).text).toBe("slow done");
  });

  test("upload larger than the window streams through as the app reads", async () => {
    const n = ++id;
    const total = 3 * 1024 * 1024 + 123;
    const body = Buffer.alloc(total);
    for (let i = 0; i < total; i++) body[i] = (i * 31) & 0xff;
    s.request(n, { method: "POST", url: "http://app.test/upload", body: true });

    let sent = 0;
    let window = INITIAL_WINDOW;
    let credits = 0;
    let seen = s.frames.length;
    while (sent < total) {
      for (; seen < s.frames.length; seen++) {
        const f = s.frames[seen];
        if (f.stream === n && f.type === T.CREDIT) {
          window += f.payload.readUInt32LE(0);
          credits++;
        }
      }
      const n2 = Math.min(MAX_CHUNK, total - sent, window);
      if (n2 > 0) {
        s.sendFrame(T.DATA, n, body.subarray(sent, sent + n2));
        sent += n2;
        window -= n2;
      } else {
        await sleep(1);
      }
    }
    s.sendFrame(T.END, n);
    const r = await s.response(n, 10000);
    const result = JSON.parse(r.text);
    expect(result.total).toBe(total);
    expect(result.sha256).toBe(new Bun.CryptoHasher("sha256").update(body).digest("hex"));
    expect(credits).toBeGreaterThan(0);
    // all credit granted never lets the supervisor run ahead of the app by more than a window
    const granted = s.streamFrames(n).filter((f) => f.type === T.CREDIT).reduce((a, f) => a + f.payload.readUInt32LE(0), 0);
    expect(granted).toBeLessThanOrEqual(total);
  });

  test("CANCEL aborts req.signal and nothing more is sent on the stream", async () => {
    const n = ++id;
    s.request(n, { url: "http://app.test/wait-abort" });
    await sleep(30);
    s.sendFrame(T.CANCEL, n);
    const r = await s.fetch(++id, "/event?name=abort");
    expect(r.text).toBe("signal aborted: AbortError");
    await sleep(20);
    expect(s.streamFrames(n)).toEqual([]);
  });

  test("CANCEL stops an endless streaming response", async () => {
    const n = ++id;
    s.request(n, { url: "http://app.test/endless" });
    await s.next((f) => f.stream === n && f.type === T.DATA);
    await sleep(30);
    s.sendFrame(T.CANCEL, n);
    // the app saw its stream cancelled; after that the stream stays silent
    const r = await s.fetch(++id, "/event?name=endless");
    expect(r.text).toMatch(/^stream cancelled after \d+ chunks$/);
    const count = s.streamFrames(n).length;
    await sleep(100);
    expect(s.streamFrames(n).length).toBe(count);
    expect(s.streamFrames(n).some((f) => f.type === T.END || f.type === T.ERROR)).toBe(false);
  });
});

describe("lifecycle", () => {
  test("class app: fetch runs with `this` bound; its output is flushed at TERMINATE", async () => {
    const s = new FakeSupervisor();
    try {
      await s.ready("class-app.js");
      expect((await s.fetch(1, "/")).text).toBe("hi from a class");
      s.sendFrame(T.TERMINATE, 0);
      expect(await s.exited()).toBe(0);
      expect(s.stdout).toBe("class app terminating\n");
    } finally {
      await s.stop();
    }
  });

  test("TERMINATE awaits onTerminate, then exits 0", async () => {
    const s = new FakeSupervisor();
    const marker = join(s.dir, "terminated.txt");
    try {
      await s.ready("fetch-app.js", { TERMINATE_MARKER: marker });
      s.sendFrame(T.IDLE, 0);
      await sleep(10);
      s.sendFrame(T.TERMINATE, 0);
      expect(await s.exited()).toBe(0);
      expect(existsSync(marker)).toBe(true);
      expect(readFileSync(marker, "utf8")).toBe("terminated after 1 idle calls");
    } finally {
      await s.stop();
    }
  });

  test("failing hooks are logged; the shim keeps serving and still exits 0", async () => {
    const s = new FakeSupervisor();
    try {
      await s.ready("faulty-hooks.js");
      s.sendFrame(T.IDLE, 0);
      expect((await s.fetch(1, "/")).text).toBe("still serving");
      s.sendFrame(T.TERMINATE, 0);
      expect(await s.exited()).toBe(0);
      expect(s.stderr).toContain("idle hook failed");
      expect(s.stderr).toContain("terminate hook failed");
    } finally {
      await s.stop();
    }
  });

  test("supervisor closing the socket -> exit 1 promptly", async () => {
    const s = new FakeSupervisor();
    try {
      await s.ready("fetch-app.js");
      const t0 = performance.now();
      s.socket.end();
      expect(await s.exited()).toBe(1);
      expect(performance.now() - t0).toBeLessThan(1000);
    } finally {
      await s.stop();
    }
  });

  test("malformed frames -> stderr and exit 70", async () => {
    const bad = [
      ["unknown type", frame(0x7f, 0)],
      ["child-only type", frame(T.READY, 0, Buffer.from("{}"))],
      ["PING on a stream", frame(T.PING, 3, Buffer.alloc(8))],
      ["short PING", frame(T.PING, 0, Buffer.alloc(4))],
      ["REQUEST on stream 0", frame(T.REQUEST, 0, Buffer.alloc(1))],
      ["truncated REQUEST head", frame(T.REQUEST, 1, Buffer.from([0, 3, 0x47]))],
      ["length below 5", Buffer.from("0300000000", "hex")],
    ];
    for (const [what, buf] of bad) {
      const s = new FakeSupervisor();
      try {
        await s.ready("fetch-app.js");
        s.send(buf);
        expect({ what, code: await s.exited() }).toEqual({ what, code: 70 });
        expect(s.stderr).toContain("protocol error");
      } finally {
        await s.stop();
      }
    }
  });

  test("DATA beyond the request window is a protocol error", async () => {
    const s = new FakeSupervisor();
    try {
      await s.ready("fetch-app.js");
      s.request(1, { method: "POST", url: "http://app.test/slow?ms=2000", body: true });
      for (let sent = 0; sent <= INITIAL_WINDOW; sent += MAX_CHUNK) s.sendFrame(T.DATA, 1, Buffer.alloc(MAX_CHUNK));
      expect(await s.exited()).toBe(70);
      expect(s.stderr).toContain("beyond the window");
    } finally {
      await s.stop();
    }
  });
});

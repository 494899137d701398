// WebSocket sessions end to end: the real shim against the fake supervisor,
// with test/apps/ws-app.js (one behaviour per command) and test/apps/chat-app.js.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { FakeSupervisor, sleep } from "./harness.js";
import { INITIAL_WINDOW, MAX_CHUNK, T, WS_BINARY, WS_LAST, wsMessageFrame } from "../src/protocol.js";

const pattern = (n) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7) & 0xff;
  return b;
};
const sha256 = (data) => new Bun.CryptoHasher("sha256").update(data).digest("hex");

// Polls until cond() holds (or gives up after ms).
async function until(cond, ms = 5000) {
  const end = performance.now() + ms;
  while (!cond() && performance.now() < end) await sleep(2);
}

const creditOn = (s, id) =>
  s.streamFrames(id).filter((f) => f.type === T.CREDIT).reduce((n, f) => n + f.payload.readUInt32LE(0), 0);

describe("ws-app", () => {
  const s = new FakeSupervisor();
  let id = 100;
  let ready;
  beforeAll(async () => {
    ready = await s.ready("ws-app.js");
  });
  afterAll(() => s.stop());

  const nid = () => ++id;
  // The app's event log, optionally only the entries of one kind and user.
  async function appLog(kind, user) {
    const r = await s.fetch(nid(), "/log");
    const log = JSON.parse(r.text);
    return log.filter((e) => (kind === undefined || e[0] === kind) && (user === undefined || e[1] === user));
  }
  // The log entries of one kind and user, once there are at least `count` of them.
  async function logged(kind, user, count = 1, ms = 5000) {
    const end = performance.now() + ms;
    for (;;) {
      const entries = await appLog(kind, user);
      if (entries.length >= count || performance.now() > end) return entries;
      await sleep(5);
    }
  }
  // Opens a session as `user` and reads its welcome message.
  async function open(user, path = "/ws", opts) {
    const n = nid();
    const headers = await s.wsOpen(n, `${path}?user=${user}`, opts);
    expect((await s.wsMessage(n, 0)).text).toBe(`welcome ${user}`);
    return { n, headers };
  }

  test("READY lists websocket", () => {
    expect(ready.exports).toEqual(["fetch", "websocket"]);
  });

  test("upgrade -> WS_ACCEPT with the app's headers, then open(ws) with data, readyState and address", async () => {
    const n = nid();
    const headers = await s.wsOpen(n, "/ws?user=ann", { address: "10.1.2.3", headers: [["sec-websocket-protocol", "chat, superchat"]] });
    expect(headers).toEqual([
      ["sec-websocket-protocol", "superchat"],
      ["x-extra", "1"],
    ]);
    expect((await s.wsMessage(n, 0)).text).toBe("welcome ann");
    expect(await appLog("open", undefined)).toContainEqual(["open", { user: "ann", path: "/ws" }, 1, "10.1.2.3"]);
    expect(s.streamFrames(n).some((f) => f.type === T.RESPONSE || f.type === T.ERROR)).toBe(false);
    // WS_ACCEPT comes first on the stream
    expect(s.streamFrames(n)[0].type).toBe(T.WS_ACCEPT);
  });

  test("no protocol header unless the app gives one; options are optional", async () => {
    const { headers } = await open("bo");
    expect(headers).toEqual([["x-extra", "1"]]);

    const n = nid();
    expect(await s.wsOpen(n, "/ws-bare", { headers: [["sec-websocket-protocol", "chat"]] })).toEqual([]);
    expect((await s.wsMessage(n, 0)).text).toBe("welcome undefined");
    s.wsSend(n, "data");
    expect((await s.wsMessage(n, 1)).text).toBe("{}"); // ws.data is undefined
  });

  test("upgrade headers given as pairs or as Headers (repeated names kept)", async () => {
    let n = nid();
    expect(await s.wsOpen(n, "/ws-pairs?user=p1")).toEqual([["x-pair", "yes"]]);
    n = nid();
    expect(await s.wsOpen(n, "/ws-pairs?user=p2&headers")).toEqual([
      ["set-cookie", "a=1"],
      ["set-cookie", "b=2"],
    ]);
  });

  test("refused: not an upgrade request, POST, or no key -> the app's normal RESPONSE", async () => {
    let r = await s.fetch(nid(), "/ws?user=x");
    expect([r.status, r.text]).toEqual([400, "not a websocket"]);

    let n = nid();
    s.wsRequest(n, "/ws?user=x", { method: "POST" });
    r = await s.response(n);
    expect([r.status, r.text]).toEqual([400, "not a websocket"]);

    n = nid();
    s.request(n, { url: "http://app.test/ws?user=x", headers: [["upgrade", "websocket"], ["connection", "Upgrade"]] });
    r = await s.response(n);
    expect([r.status, r.text]).toEqual([400, "not a websocket"]);

    n = nid();
    s.request(n, { url: "http://app.test/ws?user=x", headers: [["upgrade", "h2c"], ["sec-websocket-key", "k"]] });
    expect((await s.response(n)).status).toBe(400);
  });

  test("upgrade wins over a returned Response; a second upgrade returns false", async () => {
    const n = nid();
    await s.wsOpen(n, "/ws-response?user=rr");
    expect((await s.wsMessage(n, 0)).text).toBe("welcome rr");
    expect(await appLog("upgrade twice", "rr")).toEqual([["upgrade twice", "rr", true, false]]);
    s.wsSend(n, "echo:still here");
    expect((await s.wsMessage(n, 1)).text).toBe("still here");
    expect(s.streamFrames(n).some((f) => f.type === T.RESPONSE || f.type === T.DATA || f.type === T.ERROR)).toBe(false);
  });

  test("upgrade after an await works; fetch throwing after upgrade keeps the session", async () => {
    let { n } = await open("later", "/ws-async");
    s.wsSend(n, "echo:async ok");
    expect((await s.wsMessage(n, 1)).text).toBe("async ok");

    ({ n } = await open("thrower", "/ws-throw"));
    s.wsSend(n, "echo:thrown but open");
    expect((await s.wsMessage(n, 1)).text).toBe("thrown but open");
    expect(s.streamFrames(n).some((f) => f.type === T.ERROR)).toBe(false);
  });

  test("upgrade once the response is out returns false", async () => {
    const n = nid();
    s.wsRequest(n, "/ws-late?user=late");
    expect((await s.response(n)).text).toBe("plain");
    expect(await logged("late upgrade", "late")).toEqual([["late upgrade", "late", false]]);
  });

  test("text and binary messages both ways; binary arrives as a Buffer", async () => {
    const { n } = await open("msg");
    await s.wsSend(n, "echo:héllo wörld");
    let m = await s.wsMessage(n, 1);
    expect([m.binary, m.text]).toEqual([false, "héllo wörld"]);

    await s.wsSend(n, Buffer.from([1, 2, 3, 250]));
    m = await s.wsMessage(n, 2);
    expect(m.binary).toBe(true);
    expect([...m.data]).toEqual([1, 2, 3, 250]);
    expect(await appLog("binary", "msg")).toEqual([["binary", "msg", "Buffer", 4]]);

    // empty messages of both kinds
    await s.wsSend(n, Buffer.alloc(0));
    m = await s.wsMessage(n, 3);
    expect([m.binary, m.data.length]).toEqual([true, 0]);
  });

  test("send() kinds and return values", async () => {
    const { n } = await open("kinds");
    s.wsSend(n, "kinds");
    await s.wsMessage(n, 8);
    const [entry] = await appLog("kinds", "kinds");
    expect(entry.slice(2)).toEqual([0, 3, 2, 4, 2, 3, 4, 2, "TypeError", "TypeError", "TypeError"]);
    const got = s.wsMessages(n).slice(1).map((m) => [m.binary, m.data.toString("hex")]);
    expect(got).toEqual([
      [false, ""],
      [true, "010203"],
      [true, "0000"],
      [true, "00000000"],
      [false, Buffer.from("é").toString("hex")],
      [true, Buffer.from("bin").toString("hex")],
      [true, Buffer.from("blob").toString("hex")],
      [false, Buffer.from("42").toString("hex")],
    ]);
  });

  test("a buffer the app reuses after send() does not change what was sent", async () => {
    const { n } = await open("reuse");
    s.wsSend(n, "reuse");
    await s.wsMessage(n, 3);
    expect(s.wsMessages(n).slice(1).map((m) => m.text)).toEqual(["AAAA", "BBBB", "CCCC"]);
  });

  test("ws.data; cork() runs the callback and returns its value", async () => {
    const { n } = await open("dora");
    s.wsSend(n, "data");
    expect(JSON.parse((await s.wsMessage(n, 1)).text)).toEqual({ data: { user: "dora", path: "/ws" } });
    s.wsSend(n, "cork");
    expect((await s.wsMessage(n, 2)).text).toBe("corked");
    expect(await appLog("cork", "dora")).toEqual([["cork", "dora", true]]);
  });

  test("1 MB binary each way: fragmented within the window, reassembled intact", async () => {
    const { n } = await open("big");
    const body = pattern(1024 * 1024);
    const sending = s.wsSend(n, body);
    const report = JSON.parse((await s.wsMessage(n, 1, 10000)).text);
    await sending;
    expect(report).toEqual({ length: body.length, sha256: sha256(body) });
    const echo = await s.wsMessage(n, 2, 10000);
    expect(echo.binary).toBe(true);
    expect(echo.data.equals(body)).toBe(true);
    const fragments = s.streamFrames(n).filter((f) => f.type === T.WS_MESSAGE);
    for (const f of fragments) expect(f.payload.length - 1).toBeLessThanOrEqual(MAX_CHUNK);
    expect(fragments.length).toBeGreaterThanOrEqual(16);
    // every fragment of the echo carries the binary bit, only the last one the last bit
    const echoFrames = fragments.slice(-16);
    expect(echoFrames.every((f) => f.payload[0] & WS_BINARY)).toBe(true);
    expect(echoFrames.filter((f) => f.payload[0] & WS_LAST).length).toBe(1);
    // the shim credited everything we sent
    await until(() => creditOn(s, n) === body.length);
    expect(creditOn(s, n)).toBe(body.length);
  });

  test("a text message split inside UTF-8 characters is decoded whole", async () => {
    const { n } = await open("utf8");
    const text = "text:" + "é€😀".repeat(40000); // > 256 KiB, split every 1000 bytes
    await s.wsSend(n, text, { fragment: 1000 });
    expect(await logged("text", "utf8")).toEqual([["text", "utf8", text.length, sha256(text)]]);
  });

  test("app close(code, reason): WS_CLOSE, then on the answer close() with the app's code, once", async () => {
    const { n } = await open("closer");
    s.wsSend(n, "close:4001:bye now");
    await s.next((f) => f.stream === n && f.type === T.WS_CLOSE);
    expect(s.wsCloses(n)).toEqual([{ code: 4001, reason: "bye now" }]);
    expect(await appLog("after close", "closer")).toEqual([["after close", "closer", 2, 0, []]]);
    expect(await appLog("close", "closer")).toEqual([]);

    // a message that crossed the close is dropped
    s.wsSend(n, "echo:crossed");
    s.wsClose(n, 4001);
    expect(await logged("close", "closer")).toEqual([["close", "closer", 4001, "bye now", 3, []]]);
    expect(s.wsCloses(n).length).toBe(1);
    expect(s.wsMessages(n).length).toBe(1);

    // the stream is forgotten: further frames are ignored
    s.wsClose(n, 1000);
    s.sendFrame(T.WS_MESSAGE, n, Buffer.from([WS_LAST]));
    await sleep(20);
    expect(await appLog("close", "closer")).toHaveLength(1);
  });

  test("close() defaults to 1000; a close reason is cut to 123 bytes", async () => {
    let { n } = await open("default-close");
    s.wsSend(n, "close-default");
    await s.next((f) => f.stream === n && f.type === T.WS_CLOSE);
    expect(s.wsCloses(n)).toEqual([{ code: 1000, reason: "" }]);
    s.wsClose(n, 1000);

    ({ n } = await open("long-reason"));
    s.wsSend(n, "close:4002:" + "é".repeat(100));
    await s.next((f) => f.stream === n && f.type === T.WS_CLOSE);
    const [close] = s.wsCloses(n);
    expect(close.reason).toBe("é".repeat(61));
    s.wsClose(n, 4002);
  });

  test("invalid close codes throw like Bun (TypeError) or as a RangeError, and leave the socket open", async () => {
    const { n } = await open("badclose");
    s.wsSend(n, "bad-close");
    s.wsSend(n, "echo:open");
    expect((await s.wsMessage(n, 1)).text).toBe("open");
    expect(await appLog("bad close", "badclose")).toEqual([["bad close", "badclose", "RangeError", "RangeError", "TypeError", "TypeError", 1]]);
    expect(s.wsCloses(n)).toEqual([]);
  });

  test("WS_CLOSE from the supervisor: close() once with its code, answered with the same code", async () => {
    const { n } = await open("client-closes");
    s.wsClose(n, 4100, "client bye");
    await s.next((f) => f.stream === n && f.type === T.WS_CLOSE);
    expect(s.wsCloses(n)).toEqual([{ code: 4100, reason: "" }]);
    s.wsClose(n, 4100, "again");
    await sleep(20);
    expect(await appLog("close", "client-closes")).toEqual([["close", "client-closes", 4100, "client bye", 3, []]]);
    expect(s.wsCloses(n)).toHaveLength(1);
  });

  test("CANCEL: close() with 1006, once, and nothing is sent", async () => {
    const { n } = await open("cancelled");
    const before = s.streamFrames(n).length;
    s.sendFrame(T.CANCEL, n);
    s.sendFrame(T.CANCEL, n);
    await sleep(20);
    expect(await appLog("close", "cancelled")).toEqual([["close", "cancelled", 1006, "", 3, []]]);
    expect(s.streamFrames(n).length).toBe(before);
  });

  test("terminate(): WS_CLOSE 1006 and close() with 1006 at once", async () => {
    const { n } = await open("term");
    s.wsSend(n, "terminate");
    await s.next((f) => f.stream === n && f.type === T.WS_CLOSE);
    expect(s.wsCloses(n)).toEqual([{ code: 1006, reason: "" }]);
    expect(await appLog("close", "term")).toEqual([["close", "term", 1006, "", 3, []]]);
    expect(await appLog("after terminate", "term")).toEqual([["after terminate", "term", 3, 0]]);
    s.wsClose(n, 1006);
    await sleep(20);
    expect(await appLog("close", "term")).toHaveLength(1);
  });

  test("backpressure: 256 KiB without credit, send() returned -1, the rest and drain() after CREDIT", async () => {
    const { n } = await open("bp");
    const credited = s.given.get(n) ?? 0; // credit given for the welcome
    const start = s.wsBytes(n);
    const size = 1024 * 1024;
    s.wsSend(n, `big:${size}:2`);
    await until(() => s.wsBytes(n) - start >= INITIAL_WINDOW - (start - credited));
    await sleep(100);
    const window = INITIAL_WINDOW - (start - credited);
    expect(s.wsBytes(n) - start).toBe(window);
    expect(await appLog("big sent", "bp")).toEqual([["big sent", "bp", [-1, -1], 2 * size - window]]);
    expect(await appLog("drain", "bp")).toEqual([]);

    s.credit(n, 100_000);
    await until(() => s.wsBytes(n) - start >= window + 100_000);
    await sleep(50);
    expect(s.wsBytes(n) - start).toBe(window + 100_000);
    expect(await appLog("drain", "bp")).toEqual([]);

    const first = await s.wsMessage(n, 1, 10000);
    const second = await s.wsMessage(n, 2, 10000);
    expect(first.data.equals(pattern(size))).toBe(true);
    expect(second.data.equals(pattern(size))).toBe(true);
    await sleep(20);
    expect(await appLog("drain", "bp")).toEqual([["drain", "bp", 0]]);
    for (const f of s.streamFrames(n)) if (f.type === T.WS_MESSAGE) expect(f.payload.length - 1).toBeLessThanOrEqual(MAX_CHUNK);
  });

  test("a close behind queued messages goes out after them", async () => {
    const { n } = await open("bp-close");
    s.wsSend(n, `big:${512 * 1024}`);
    s.wsSend(n, "close:4003:done");
    await until(() => s.wsBytes(n) >= INITIAL_WINDOW - 20);
    await sleep(50);
    expect(s.wsCloses(n)).toEqual([]);
    const big = await s.wsMessage(n, 1, 10000);
    expect(big.data.equals(pattern(512 * 1024))).toBe(true);
    await s.next((f) => f.stream === n && f.type === T.WS_CLOSE);
    expect(s.wsCloses(n)).toEqual([{ code: 4003, reason: "done" }]);
    const frames = s.streamFrames(n);
    expect(frames.at(-1).type).toBe(T.WS_CLOSE);
    s.wsClose(n, 4003);
  });

  test("incoming credit waits for the message handler's promise", async () => {
    const { n } = await open("slowpoke");
    const before = creditOn(s, n);
    await s.wsSend(n, "slow:g1");
    await sleep(100);
    expect(creditOn(s, n)).toBe(before);
    await s.fetch(nid(), "/release?gate=g1");
    await until(() => creditOn(s, n) > before);
    expect(creditOn(s, n) - before).toBe("slow:g1".length);
    expect(await appLog("slow done", "slowpoke")).toEqual([["slow done", "slowpoke", "g1"]]);

    // a quick handler is credited at once
    await s.wsSend(n, "echo:x");
    await s.wsMessage(n, 1);
    await until(() => creditOn(s, n) === before + "slow:g1".length + "echo:x".length);
    expect(creditOn(s, n)).toBe(before + "slow:g1".length + "echo:x".length);
  });

  test("a slow handler stalls the client once the window is spent", async () => {
    const { n } = await open("stall");
    const body = Buffer.alloc(60 * 1024, "s");
    body.write("slow:g2:");
    const sends = [];
    for (let i = 0; i < 6; i++) sends.push(s.wsSend(n, body, { binary: false }));
    await sleep(150);
    // four messages and part of the fifth fit in the window; nothing was credited, so the rest waits
    expect(s.spent.get(n)).toBe(INITIAL_WINDOW);
    expect(creditOn(s, n)).toBe(0);
    await s.fetch(nid(), "/release?gate=g2");
    await Promise.all(sends);
    await until(() => creditOn(s, n) === 6 * body.length);
    expect(creditOn(s, n)).toBe(6 * body.length);
  });

  test("throwing or rejecting message handlers: credit is still granted, the session goes on", async () => {
    const { n } = await open("thrower2");
    await s.wsSend(n, "throw");
    await s.wsSend(n, "reject");
    await until(() => creditOn(s, n) === "throw".length + "reject".length);
    expect(creditOn(s, n)).toBe("throw".length + "reject".length);
    s.wsSend(n, "echo:alive");
    expect((await s.wsMessage(n, 1)).text).toBe("alive");
  });

  test("pause() holds messages and their credit until resume()", async () => {
    const { n } = await open("pauser");
    await s.wsSend(n, "pause");
    expect(await logged("paused", "pauser")).toEqual([["paused", "pauser", true]]);
    await s.wsSend(n, "echo:held");
    await sleep(50);
    expect(s.wsMessages(n)).toHaveLength(1);
    expect(creditOn(s, n)).toBe(0); // nothing is credited while paused
    await s.fetch(nid(), "/resume?user=pauser");
    expect((await s.wsMessage(n, 1)).text).toBe("held");
    await until(() => creditOn(s, n) === "pause".length + "echo:held".length);
    expect(creditOn(s, n)).toBe("pause".length + "echo:held".length);
  });

  test("binaryType arraybuffer and uint8array", async () => {
    const { n } = await open("types");
    s.wsSend(n, "binary-type:arraybuffer");
    await s.wsSend(n, Buffer.from([1, 2]));
    await s.wsMessage(n, 1);
    s.wsSend(n, "binary-type:uint8array");
    await s.wsSend(n, Buffer.from([3]));
    await s.wsMessage(n, 2);
    expect(await appLog("binary", "types")).toEqual([
      ["binary", "types", "ArrayBuffer", null],
      ["binary", "types", "Uint8Array", 1],
    ]);
  });

  test("a message over maxPayloadLength closes with 1009", async () => {
    const { n } = await open("toobig");
    const sending = s.wsSend(n, Buffer.alloc(2 * 1024 * 1024 + 1));
    await s.next((f) => f.stream === n && f.type === T.WS_CLOSE, 10000);
    expect(s.wsCloses(n)).toEqual([{ code: 1009, reason: "" }]);
    s.wsClose(n, 1009);
    await sending; // completes, or gives up once the session closed
    expect(await logged("close", "toobig")).toEqual([["close", "toobig", 1009, "", 3, []]]);
  });

  test("WS_MESSAGE / WS_CLOSE for streams never opened are ignored", async () => {
    s.sendFrame(T.WS_MESSAGE, 99999, Buffer.from([WS_LAST, 0x41]));
    s.wsClose(99998, 1000);
    expect((await s.fetch(nid(), "/log")).status).toBe(200);
  });
});

describe("chat-app: rooms with subscribe/publish", () => {
  const s = new FakeSupervisor();
  beforeAll(() => s.ready("chat-app.js"));
  afterAll(() => s.stop());

  const texts = (id) => s.wsMessages(id).map((m) => m.text);
  async function expectTexts(id, want) {
    await until(() => s.wsMessages(id).length >= want.length);
    await sleep(20);
    expect(texts(id)).toEqual(want);
  }

  test("publish reaches the other members of a room, not the sender; server.publish reaches all", async () => {
    await s.wsOpen(1, "/chat?room=a&name=alice");
    await s.wsOpen(2, "/chat?room=a&name=bob");
    await s.wsOpen(3, "/chat?room=b&name=carol");
    await expectTexts(1, ["welcome alice to a", "bob joined"]);
    await expectTexts(2, ["welcome bob to a"]);
    await expectTexts(3, ["welcome carol to b"]);

    await s.wsSend(1, "hi all");
    await expectTexts(2, ["welcome bob to a", "alice: hi all"]);
    expect(texts(1)).toEqual(["welcome alice to a", "bob joined"]);
    expect(texts(3)).toEqual(["welcome carol to b"]);

    expect((await s.fetch(10, "/count?room=a")).text).toBe("2");
    expect((await s.fetch(11, "/count?room=nobody")).text).toBe("0");
    const r = await s.fetch(12, "/announce?room=a&text=news");
    expect(JSON.parse(r.text)).toEqual({ bytes: Buffer.byteLength("[a] news") });
    await expectTexts(1, ["welcome alice to a", "bob joined", "[a] news"]);
    await expectTexts(2, ["welcome bob to a", "alice: hi all", "[a] news"]);
    expect(texts(3)).toEqual(["welcome carol to b"]);
    expect(JSON.parse((await s.fetch(13, "/announce?room=empty&text=x")).text)).toEqual({ bytes: 0 });
  });

  test("moving rooms and leaving update the subscriptions", async () => {
    await s.wsSend(3, "/join a");
    await expectTexts(3, ["welcome carol to b", "now in a"]);
    await expectTexts(1, ["welcome alice to a", "bob joined", "[a] news", "carol joined"]);
    await s.wsSend(3, "/rooms");
    await expectTexts(3, ["welcome carol to b", "now in a", '["room:a"]']);
    expect((await s.fetch(20, "/count?room=a")).text).toBe("3");
    expect((await s.fetch(21, "/count?room=b")).text).toBe("0");

    s.wsClose(2, 1001, "gone");
    await s.next((f) => f.stream === 2 && f.type === T.WS_CLOSE);
    await expectTexts(1, ["welcome alice to a", "bob joined", "[a] news", "carol joined", "bob left"]);
    await expectTexts(3, ["welcome carol to b", "now in a", '["room:a"]', "bob left"]);
    expect((await s.fetch(22, "/count?room=a")).text).toBe("2");

    s.sendFrame(T.CANCEL, 3);
    await expectTexts(1, ["welcome alice to a", "bob joined", "[a] news", "carol joined", "bob left", "carol left"]);
    expect((await s.fetch(23, "/count?room=a")).text).toBe("1");
  });
});

describe("without a websocket export", () => {
  test("server.upgrade returns false and the request is plain HTTP", async () => {
    const s = new FakeSupervisor();
    try {
      await s.ready("fetch-app.js");
      s.wsRequest(1, "/try-upgrade");
      const r = await s.response(1);
      expect([r.status, r.text]).toEqual([200, "false 0 0"]);
    } finally {
      await s.stop();
    }
  });
});

describe("session lifecycle and protocol strictness", () => {
  test("TERMINATE exits 0 with sessions open; handler errors went to stderr", async () => {
    const s = new FakeSupervisor();
    try {
      await s.ready("ws-app.js");
      await s.wsOpen(1, "/ws-throw?user=t1");
      await s.wsOpen(2, "/ws?user=t2");
      await s.wsSend(2, "throw");
      await until(() => creditOn(s, 2) > 0);
      await s.wsOpen(3, "/ws?user=t3");
      s.sendFrame(T.TERMINATE, 0);
      expect(await s.exited()).toBe(0);
      expect(s.stderr).toContain("thrown after upgrade");
      expect(s.stderr).toContain("message boom");
    } finally {
      await s.stop();
    }
  });

  test("malformed WebSocket frames -> stderr and exit 70", async () => {
    const bad = [
      ["WS_ACCEPT from the supervisor", (s) => s.sendFrame(T.WS_ACCEPT, 1, Buffer.from([0, 0]))],
      ["WS_MESSAGE on an HTTP stream", (s) => s.sendFrame(T.WS_MESSAGE, 2, Buffer.from([WS_LAST, 0x41]))],
      ["WS_CLOSE on an HTTP stream", (s) => s.wsClose(2, 1000)],
      ["empty WS_MESSAGE", (s) => s.sendFrame(T.WS_MESSAGE, 1)],
      ["unknown WS_MESSAGE flags", (s) => s.sendFrame(T.WS_MESSAGE, 1, Buffer.from([4, 0x41]))],
      ["oversized fragment", (s) => s.sendFrame(T.WS_MESSAGE, 1, Buffer.alloc(MAX_CHUNK + 2))],
      ["short WS_CLOSE", (s) => s.sendFrame(T.WS_CLOSE, 1, Buffer.from([0xe8]))],
      ["long close reason", (s) => s.sendFrame(T.WS_CLOSE, 1, Buffer.concat([Buffer.from([0xe8, 0x03]), Buffer.alloc(124, 0x61)]))],
      ["WS_CLOSE on stream 0", (s) => s.wsClose(0, 1000)],
      ["DATA on a session", (s) => s.sendFrame(T.DATA, 1, Buffer.from("x"))],
      [
        "WS_MESSAGE beyond the window",
        (s) => {
          // whole messages whose handlers never finish, so nothing is credited
          const m = Buffer.alloc(MAX_CHUNK, 0x61);
          m.write("slow:never:");
          for (let sent = 0; sent <= INITIAL_WINDOW; sent += MAX_CHUNK) s.send(wsMessageFrame(1, WS_LAST, m, 0, m.length));
        },
      ],
    ];
    for (const [what, act] of bad) {
      const s = new FakeSupervisor();
      try {
        await s.ready("ws-app.js");
        await s.wsOpen(1, "/ws?user=strict");
        s.request(2, { url: "http://app.test/hold?gate=never" });
        await sleep(10);
        act(s);
        expect({ what, code: await s.exited() }).toEqual({ what, code: 70 });
        expect(s.stderr).toContain("protocol error");
      } finally {
        await s.stop();
      }
    }
  });
});

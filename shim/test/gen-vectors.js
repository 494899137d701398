// Regenerates test/vectors.json from the frame descriptions below:
//   bun test/gen-vectors.js
// The Rust codec is tested against the same file, so change it deliberately.
// Payload fields per type: JSON types `json`; DATA/PING/PONG `dataHex`;
// REQUEST/RESPONSE `head`; CREDIT `credit`; WS_ACCEPT `headers` (latin1
// strings, like head headers); WS_MESSAGE `flags` (bit 0 binary, bit 1 last)
// and `dataHex`; WS_CLOSE `code` and `reason` (a string, UTF-8 on the wire).
import { encodeVector } from "./vector-codec.js";

const frames = [
  ["hello", { type: "HELLO", stream: 0, json: { protocol: 1, pid: 4242, bun: "1.4.5" } }],
  ["ready all exports", { type: "READY", stream: 0, json: { exports: ["fetch", "routes", "websocket", "onIdle", "onTerminate"] } }],
  ["ready fetch only", { type: "READY", stream: 0, json: { exports: ["fetch"] } }],
  ["fatal", { type: "FATAL", stream: 0, json: { message: "entrypoint /srv/app/index.ts exports neither fetch nor routes", stack: "" } }],
  [
    "request GET no headers",
    { type: "REQUEST", stream: 1, head: { body: false, method: "GET", url: "http://example.com/", address: "127.0.0.1", headers: [] } },
  ],
  [
    "request POST with body flag",
    {
      type: "REQUEST",
      stream: 2,
      head: {
        body: true,
        method: "POST",
        url: "http://example.com/upload?x=1",
        address: "::1",
        headers: [
          ["content-type", "application/json"],
          ["content-length", "7"],
        ],
      },
    },
  ],
  [
    "request latin1 header and empty address",
    {
      type: "REQUEST",
      stream: 3,
      head: { body: false, method: "GET", url: "http://h/caf", address: "", headers: [["x-name", "caf\u00e9"], ["cookie", "a=1"]] },
    },
  ],
  ["response 200 no headers no body", { type: "RESPONSE", stream: 1, head: { body: false, status: 200, headers: [] } }],
  [
    "response with body and repeated set-cookie",
    {
      type: "RESPONSE",
      stream: 2,
      head: {
        body: true,
        status: 201,
        headers: [
          ["content-type", "text/plain;charset=utf-8"],
          ["set-cookie", "a=1; Path=/"],
          ["set-cookie", "b=2"],
        ],
      },
    },
  ],
  [
    "response 404 with non-utf8 header bytes",
    { type: "RESPONSE", stream: 3, head: { body: false, status: 404, headers: [["x-raw", "\u00ff\u00fe caf\u00e9"]] } },
  ],
  ["data", { type: "DATA", stream: 2, dataHex: Buffer.from("hello, world").toString("hex") }],
  ["data one byte", { type: "DATA", stream: 7, dataHex: "00" }],
  ["end", { type: "END", stream: 2 }],
  ["credit 64 KiB", { type: "CREDIT", stream: 2, credit: 65536 }],
  ["credit 256 KiB", { type: "CREDIT", stream: 300, credit: 262144 }],
  ["cancel", { type: "CANCEL", stream: 5 }],
  ["error", { type: "ERROR", stream: 4, json: { message: "boom", stack: "Error: boom\n    at fetch (/srv/app/index.ts:3:11)" } }],
  ["ping", { type: "PING", stream: 0, dataHex: "0102030405060708" }],
  ["pong", { type: "PONG", stream: 0, dataHex: "0102030405060708" }],
  ["idle", { type: "IDLE", stream: 0 }],
  ["terminate", { type: "TERMINATE", stream: 0 }],
  ["stats request", { type: "STATS_REQUEST", stream: 0 }],
  ["stats", { type: "STATS", stream: 0, json: { rss: 41943040, heapUsed: 1048576, heapTotal: 2097152, external: 65536 } }],
  ["large stream id", { type: "END", stream: 4294967295 }],
  ["ws accept no headers", { type: "WS_ACCEPT", stream: 1, headers: [] }],
  [
    "ws accept with protocol and extra header",
    {
      type: "WS_ACCEPT",
      stream: 6,
      headers: [
        ["sec-websocket-protocol", "chat"],
        ["x-extra", "caf\u00e9"],
      ],
    },
  ],
  ["ws message text last", { type: "WS_MESSAGE", stream: 6, flags: 2, dataHex: Buffer.from("hi \u00e9").toString("hex") }],
  ["ws message binary first fragment", { type: "WS_MESSAGE", stream: 6, flags: 1, dataHex: "000102ff" }],
  ["ws message binary last fragment", { type: "WS_MESSAGE", stream: 6, flags: 3, dataHex: "fe" }],
  ["ws message empty text", { type: "WS_MESSAGE", stream: 8, flags: 2, dataHex: "" }],
  ["ws close normal", { type: "WS_CLOSE", stream: 6, code: 1000, reason: "" }],
  ["ws close with utf8 reason", { type: "WS_CLOSE", stream: 7, code: 4001, reason: "au revoir \u00e9t\u00e9" }],
  ["ws close abnormal", { type: "WS_CLOSE", stream: 9, code: 1006, reason: "" }],
];

const vectors = frames.map(([name, f]) => ({ name, hex: encodeVector(f).toString("hex"), frame: f }));
const out = new URL("./vectors.json", import.meta.url).pathname;
await Bun.write(out, JSON.stringify(vectors, null, 2) + "\n");
console.log(`wrote ${vectors.length} vectors to ${out}`);

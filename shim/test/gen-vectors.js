// Regenerates test/vectors.json from the frame descriptions below:
//   bun test/gen-vectors.js
// The Rust codec is tested against the same file, so change it deliberately.
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
];

const vectors = frames.map(([name, f]) => ({ name, hex: encodeVector(f).toString("hex"), frame: f }));
const out = new URL("./vectors.json", import.meta.url).pathname;
await Bun.write(out, JSON.stringify(vectors, null, 2) + "\n");
console.log(`wrote ${vectors.length} vectors to ${out}`);

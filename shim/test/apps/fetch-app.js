// The main fetch-style test app: one path per behaviour under test.
import { cases } from "./ct-cases.js";

const enc = new TextEncoder();
let idleCalls = 0;
const events = new Map(); // name -> what happened (for tests to ask about)
const eventWaiters = new Map(); // name -> [resolve]

function record(name, what) {
  events.set(name, what);
  for (const w of eventWaiters.get(name) ?? []) w();
  eventWaiters.delete(name);
}

function eventually(name) {
  if (events.has(name)) return Promise.resolve();
  return new Promise((r) => eventWaiters.set(name, [...(eventWaiters.get(name) ?? []), r]));
}

// `total` bytes where byte i is i & 0xff, in 100 KiB chunks (a multiple of 256).
function bigStream(total) {
  const chunk = new Uint8Array(100 * 1024);
  for (let i = 0; i < chunk.length; i++) chunk[i] = i & 0xff;
  let sent = 0;
  return new ReadableStream(
    {
      pull(c) {
        if (sent >= total) return c.close();
        const n = Math.min(chunk.length, total - sent);
        c.enqueue(chunk.subarray(0, n));
        sent += n;
      },
    },
    { highWaterMark: 0 },
  );
}

export default {
  async fetch(req, server) {
    const url = new URL(req.url);
    const p = url.pathname;
    if (p === "/hello") return new Response("hello " + req.method);
    if (p.startsWith("/ct/")) return cases[p.slice(4)]();
    if (p === "/ip") return Response.json(server.requestIP(req));
    if (p === "/headers") return Response.json([...req.headers]);
    if (p === "/raw-header") {
      // echoes a header value byte for byte (latin1 in, latin1 out)
      return new Response("ok", { headers: { "x-echo": req.headers.get("x-raw") ?? "" } });
    }
    if (p === "/cookies") {
      const h = new Headers();
      h.append("set-cookie", "a=1; Path=/");
      h.append("set-cookie", "b=2; HttpOnly");
      h.append("x-latin1", "caf\u00e9");
      return new Response("cookies", { headers: h });
    }
    if (p === "/throw") throw new Error("boom");
    if (p === "/reject") {
      await Bun.sleep(1);
      throw new TypeError("late boom");
    }
    if (p === "/not-response") return "just a string";
    if (p === "/stream-error") {
      let n = 0;
      return new Response(
        new ReadableStream({
          pull(c) {
            if (n++ === 0) c.enqueue(enc.encode("partial"));
            else c.error(new Error("stream broke"));
          },
        }),
      );
    }
    if (p === "/big") return new Response(bigStream(Number(url.searchParams.get("n"))));
    if (p === "/endless") {
      let chunks = 0;
      return new Response(
        new ReadableStream({
          async pull(c) {
            await Bun.sleep(2);
            c.enqueue(enc.encode(`tick ${chunks++}\n`));
          },
          cancel() {
            record("endless", `stream cancelled after ${chunks} chunks`);
          },
        }),
      );
    }
    if (p === "/wait-abort") {
      // resolves only when the request is aborted (CANCEL)
      return new Promise((resolve) => {
        req.signal.addEventListener("abort", () => {
          record("abort", `signal aborted: ${req.signal.reason?.name}`);
          resolve(new Response("aborted"));
        });
      });
    }
    if (p === "/event") {
      // what happened under `name`, waiting for it first
      const name = url.searchParams.get("name");
      await eventually(name);
      return new Response(events.get(name));
    }
    if (p === "/upload") {
      // reads the body slowly, reporting sizes seen
      const reader = req.body.getReader();
      let total = 0;
      let reads = 0;
      const hash = new Bun.CryptoHasher("sha256");
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        total += value.length;
        reads++;
        hash.update(value);
        if (reads % 4 === 0) await Bun.sleep(1);
      }
      return Response.json({ total, reads, sha256: hash.digest("hex") });
    }
    if (p === "/echo") return new Response(await req.arrayBuffer());
    if (p === "/text") return new Response(await req.text());
    if (p === "/slow") {
      await Bun.sleep(Number(url.searchParams.get("ms") ?? 300));
      return new Response("slow done");
    }
    if (p === "/idle-count") return new Response(String(idleCalls));
    if (p === "/memory") return new Response(String(process.memoryUsage().rss));
    if (p === "/try-upgrade") {
      // no `websocket` export: upgrade refuses, pub/sub reaches nobody
      return new Response(`${server.upgrade(req, { data: 1 })} ${server.publish("t", "x")} ${server.subscriberCount("t")}`);
    }
    return new Response("not found", { status: 404 });
  },
  onIdle() {
    idleCalls++;
  },
  async onTerminate() {
    await Bun.sleep(20);
    const marker = process.env.TERMINATE_MARKER;
    if (marker) await Bun.write(marker, `terminated after ${idleCalls} idle calls`);
  },
};

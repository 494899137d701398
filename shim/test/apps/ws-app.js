// WebSocket test app: the upgrade variants on different paths, and text
// commands that exercise one behaviour each. Everything the handlers see is
// recorded in `log`, which tests read over plain HTTP at /log.

const log = [];
const sockets = new Map(); // user -> ws
const gates = new Map(); // name -> {promise, resolve}

function gate(name) {
  let g = gates.get(name);
  if (g === undefined) {
    let resolve;
    const promise = new Promise((r) => (resolve = r));
    gates.set(name, (g = { promise, resolve }));
  }
  return g;
}

// `n` bytes where byte i is (i * 7) & 0xff.
function pattern(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7) & 0xff;
  return b;
}

function errorName(fn) {
  try {
    fn();
    return "ok";
  } catch (err) {
    return err.constructor.name;
  }
}

export default {
  async fetch(req, server) {
    const url = new URL(req.url);
    const p = url.pathname;
    const user = url.searchParams.get("user") ?? "anon";
    if (p === "/ws") {
      const headers = { "x-extra": "1" };
      const offered = req.headers.get("sec-websocket-protocol");
      if (offered) headers["sec-websocket-protocol"] = offered.split(",").at(-1).trim();
      if (server.upgrade(req, { data: { user, path: p }, headers })) return;
      return new Response("not a websocket", { status: 400 });
    }
    if (p === "/ws-bare") {
      if (server.upgrade(req)) return;
      return new Response("not a websocket", { status: 400 });
    }
    if (p === "/ws-pairs") {
      const h = new Headers();
      h.append("set-cookie", "a=1");
      h.append("set-cookie", "b=2");
      const ok = server.upgrade(req, { data: { user }, headers: url.searchParams.has("headers") ? h : [["x-pair", "yes"]] });
      return ok ? undefined : new Response("not a websocket", { status: 400 });
    }
    if (p === "/ws-response") {
      const first = server.upgrade(req, { data: { user } });
      const second = server.upgrade(req, { data: { user: "again" } });
      log.push(["upgrade twice", user, first, second]);
      return new Response("ignored", { status: 201 });
    }
    if (p === "/ws-throw") {
      server.upgrade(req, { data: { user } });
      throw new Error("thrown after upgrade");
    }
    if (p === "/ws-async") {
      await Bun.sleep(5);
      if (server.upgrade(req, { data: { user } })) return;
      return new Response("not a websocket", { status: 400 });
    }
    if (p === "/ws-late") {
      // upgrade after the response: too late
      const res = new Response("plain");
      setTimeout(() => log.push(["late upgrade", user, server.upgrade(req)]), 20);
      return res;
    }
    if (p === "/log") return Response.json(log);
    if (p === "/release") {
      gate(url.searchParams.get("gate")).resolve();
      return new Response("released");
    }
    if (p === "/resume") {
      sockets.get(user).resume();
      return new Response("resumed");
    }
    if (p === "/hold") {
      await gate(url.searchParams.get("gate")).promise;
      return new Response("held");
    }
    return new Response("not found", { status: 404 });
  },

  websocket: {
    maxPayloadLength: 2 * 1024 * 1024,
    open(ws) {
      sockets.set(ws.data?.user, ws);
      log.push(["open", ws.data ?? null, ws.readyState, ws.remoteAddress]);
      ws.send(`welcome ${ws.data?.user}`);
    },
    message(ws, msg) {
      const user = ws.data?.user;
      if (typeof msg !== "string") {
        log.push(["binary", user, msg.constructor.name, msg.length]);
        if (msg.length > 1000) {
          const sha256 = new Bun.CryptoHasher("sha256").update(msg).digest("hex");
          ws.send(JSON.stringify({ length: msg.length, sha256 }));
        }
        ws.send(msg);
        return;
      }
      const [cmd, ...args] = msg.split(":");
      switch (cmd) {
        case "echo":
          return void ws.send(args.join(":"));
        case "text":
          log.push(["text", user, msg.length, new Bun.CryptoHasher("sha256").update(msg).digest("hex")]);
          return;
        case "data":
          return void ws.send(JSON.stringify({ data: ws.data }));
        case "close": {
          ws.close(Number(args[0]), args[1]);
          log.push(["after close", user, ws.readyState, ws.send("too late"), ws.subscriptions]);
          return;
        }
        case "close-default":
          return void ws.close();
        case "terminate":
          ws.terminate();
          log.push(["after terminate", user, ws.readyState, ws.send("too late")]);
          return;
        case "bad-close":
          log.push([
            "bad close",
            user,
            errorName(() => ws.close(999)),
            errorName(() => ws.close(1006)),
            errorName(() => ws.close("4000")),
            errorName(() => ws.close(null)),
            ws.readyState,
          ]);
          return;
        case "big": {
          const n = Number(args[0]);
          const results = [];
          for (let i = 0; i < Number(args[1] ?? 1); i++) results.push(ws.send(pattern(n)));
          log.push(["big sent", user, results, ws.getBufferedAmount()]);
          return;
        }
        case "kinds":
          log.push([
            "kinds",
            user,
            ws.send(""),
            ws.send(new Uint8Array([1, 2, 3])),
            ws.send(new ArrayBuffer(2)),
            ws.send(new DataView(new ArrayBuffer(4))),
            ws.sendText("é"),
            ws.sendBinary(Buffer.from("bin")),
            ws.send(new Blob(["blob"])),
            ws.send(42),
            errorName(() => ws.sendText(new Uint8Array(1))),
            errorName(() => ws.sendBinary("str")),
            errorName(() => ws.send(undefined)),
          ]);
          return;
        case "reuse": {
          // the app reuses its buffer right after send: what was sent must not change
          const buf = Buffer.alloc(4);
          for (let i = 0; i < 3; i++) {
            buf.fill(65 + i);
            ws.send(buf);
          }
          return;
        }
        case "slow":
          return gate(args[0]).promise.then(() => log.push(["slow done", user, args[0]]));
        case "throw":
          throw new Error("message boom");
        case "reject":
          return Promise.reject(new Error("async message boom"));
        case "pause":
          ws.pause();
          log.push(["paused", user, ws.isPaused]);
          return;
        case "binary-type":
          ws.binaryType = args[0];
          return;
        case "cork":
          log.push(["cork", user, ws.cork((w) => w.send("corked") > 0 && w === ws)]);
          return;
        default:
          log.push(["message", user, msg]);
      }
    },
    close(ws, code, reason) {
      log.push(["close", ws.data?.user, code, reason, ws.readyState, ws.subscriptions]);
    },
    drain(ws) {
      log.push(["drain", ws.data?.user, ws.getBufferedAmount()]);
    },
  },
};

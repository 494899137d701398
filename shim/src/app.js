// Loads the app module and turns it into one request handler with Bun.serve
// semantics (fetch, routes with fetch fallback, 404 without either).

import { Router, leafFor, pathOf } from "./routes.js";

// Client address per Request, for server.requestIP().
export const requestAddresses = new WeakMap();

// The `server` argument handlers get: the parts that make sense behind the supervisor.
export const server = {
  requestIP(req) {
    const address = requestAddresses.get(req);
    if (!address) return null;
    return { address, family: address.includes(":") ? "IPv6" : "IPv4", port: 0 };
  },
  upgrade() {
    return false; // WebSocket sessions are not supported yet
  },
  timeout() {},
};

// An app that cannot start: becomes a FATAL frame and exit 1.
export class FatalError extends Error {
  constructor(message, cause) {
    super(message);
    this.name = "FatalError";
    if (cause instanceof Error && cause.stack) this.stack = `${message}\n${cause.stack}`;
  }
}

function isApp(value) {
  return (
    value != null &&
    (typeof value === "object" || typeof value === "function") &&
    (typeof value.fetch === "function" || (value.routes != null && typeof value.routes === "object"))
  );
}

// The app object: `export default {...}` when it has fetch/routes, else the namespace.
export function pickApp(mod) {
  if (isApp(mod.default)) return mod.default;
  if (isApp(mod)) return mod;
  return null;
}

export function exportsOf(app) {
  const out = [];
  if (typeof app.fetch === "function") out.push("fetch");
  if (app.routes != null && typeof app.routes === "object") out.push("routes");
  if (app.websocket != null && typeof app.websocket === "object") out.push("websocket");
  if (typeof app.onIdle === "function") out.push("onIdle");
  if (typeof app.onTerminate === "function") out.push("onTerminate");
  return out;
}

// handler(req, stream, url, method) -> whatever the app returns (Response or promise).
function makeHandler(app, router) {
  const hasFetch = typeof app.fetch === "function";
  if (router === null) return (req) => app.fetch(req, server);
  return (req, st, url, method) => {
    const hit = router.match(pathOf(url));
    if (hit !== null) {
      const leaf = leafFor(hit.target, method);
      if (leaf !== undefined) {
        req.params = hit.params;
        if (leaf.kind === "handler") return leaf.value(req, server);
        st.staticRoute = true;
        return leaf.kind === "static" ? leaf.value.clone() : new Response(leaf.value);
      }
    }
    if (hasFetch) return app.fetch(req, server);
    return new Response(null, { status: 404 });
  };
}

// Imports the entrypoint -> {app, exports, handler}; throws FatalError.
export async function loadApp(entry) {
  let mod;
  try {
    mod = await import(entry);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new FatalError(`entrypoint ${entry} failed to load: ${detail}`, err);
  }
  const app = pickApp(mod);
  if (app === null) throw new FatalError(`entrypoint ${entry} exports neither fetch nor routes`);
  let router = null;
  if (app.routes != null && typeof app.routes === "object") {
    try {
      router = new Router(app.routes);
    } catch (err) {
      throw new FatalError(`entrypoint ${entry} has invalid routes: ${err.message}`, err);
    }
  }
  return { app, exports: exportsOf(app), handler: makeHandler(app, router) };
}

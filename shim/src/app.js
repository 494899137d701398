// The app side of the shim: the body-kind bookkeeping behind content-type
// parity, loading the app module, the `server` object and routes dispatch.

// --- body kinds ---
// We remember what kind of body each Response was built from, so the shim can
// (a) send in-memory bodies without stream machinery and (b) add the same
// implicit content-type that Bun.serve adds on the wire (which JS never sees
// in res.headers). Bun.serve 1.4.5, for a response without content-type:
//   non-empty string                         -> text/plain;charset=utf-8
//   non-empty ArrayBuffer / typed array      -> application/octet-stream
//   Blob without type, made of ASCII strings -> text/plain;charset=utf-8
//   any other Blob without type              -> application/octet-stream
//   ReadableStream from Blob#stream()        -> the blob's type, else octet-stream
//   a JS ReadableStream / async iterable     -> nothing
//   a body that is not ours (fetch())        -> application/octet-stream
//   empty body, 204/205/304, HEAD request    -> nothing
// On HEAD, Bun also drops a content-type that only came from the body
// (Blob type, Bun.file, FormData, URLSearchParams), keeping explicit ones.

export const TEXT_PLAIN = "text/plain;charset=utf-8";
export const OCTET = "application/octet-stream";

// mem: bytes are in memory (read with res.bytes(), no stream);
// implicit: content-type to add when none is set; headDrop: drop content-type on HEAD.
function kind(mem, implicit, headDrop) {
  return Object.freeze({ mem, implicit, headDrop });
}
const K_EMPTY = kind(true, null, false);
const K_TEXT = kind(true, TEXT_PLAIN, false);
const K_BINARY = kind(true, OCTET, false);
const K_MEM = kind(true, null, false);
const K_MEM_TYPED = kind(true, null, true);
const K_STREAM = kind(false, null, false);
const K_FILE = kind(false, null, false);
const K_FILE_TYPED = kind(false, null, true);
const K_NATIVE_OCTET = kind(false, OCTET, false);
const K_FOREIGN = kind(false, OCTET, false); // not built through our constructor

const NativeResponse = globalThis.Response;
const NativeBlob = globalThis.Blob;
const NativeFile = globalThis.File;
const NativeReadableStream = globalThis.ReadableStream;

// Where a tracked Response keeps its body kind, and its body when that was a string
// (sent as it is, without reading the body through a promise). Symbol-keyed
// properties cost far less per response than WeakMap entries.
const KIND = Symbol("buntime.bodyKind");
const TEXT = Symbol("buntime.bodyText");

const memBlobs = new WeakMap(); // in-memory Blob -> true when made only of ASCII text
const nativeStreams = new WeakMap(); // stream from Blob#stream() -> implied content-type

export function kindOf(res) {
  return res[KIND] || K_FOREIGN;
}

const NON_ASCII = /[^\x00-\x7f]/;

// True when every blob part is an ASCII string or an ASCII-text blob of ours.
function textParts(parts) {
  if (parts == null || typeof parts[Symbol.iterator] !== "function") return true;
  for (const p of parts) {
    if (typeof p === "string") {
      if (NON_ASCII.test(p)) return false;
    } else if (!(p instanceof NativeBlob && memBlobs.get(p) === true)) {
      return false;
    }
  }
  return true;
}

function hasContentType(init) {
  const h = init != null ? init.headers : undefined;
  if (h == null) return false;
  if (h instanceof Headers) return h.has("content-type");
  if (Array.isArray(h)) return h.some((p) => String(p[0]).toLowerCase() === "content-type");
  return Object.keys(h).some((k) => k.toLowerCase() === "content-type");
}

function classify(body, init) {
  if (body == null) return K_EMPTY;
  if (typeof body === "string") return body.length ? K_TEXT : K_EMPTY;
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body) || body instanceof SharedArrayBuffer) {
    return body.byteLength ? K_BINARY : K_EMPTY;
  }
  if (body instanceof NativeBlob) {
    const text = memBlobs.get(body);
    if (text === undefined) {
      // Not built by new Blob/File: Bun.file() or similar, streamed from disk.
      if (!body.type) return K_NATIVE_OCTET;
      return hasContentType(init) ? K_FILE : K_FILE_TYPED;
    }
    if (body.size === 0) return K_EMPTY;
    if (body.type) return hasContentType(init) ? K_MEM : K_MEM_TYPED;
    return text ? K_TEXT : K_BINARY;
  }
  if (body instanceof NativeReadableStream) {
    const implied = nativeStreams.get(body);
    if (implied === undefined) return K_STREAM;
    return implied === OCTET ? K_NATIVE_OCTET : kind(false, implied, false);
  }
  if (body instanceof FormData || body instanceof URLSearchParams) {
    return hasContentType(init) ? K_MEM : K_MEM_TYPED;
  }
  if (typeof body[Symbol.asyncIterator] === "function") return K_STREAM;
  return K_TEXT; // other values are stringified by Response
}

let installed = false;

// A stand-in for a native constructor that calls `record(instance, a, b)` after each
// construction. It shares the native prototype, so instanceof and prototype patches
// hold for instances made anywhere (fetch(), Response.json()), and it inherits the
// native statics; calling it without `new` fails as the native does. Subclasses
// still get their own prototype. (A Proxy's construct trap did the same at four
// times the cost per Response.)
function tracked(Native, record) {
  const name = Native.name;
  const Tracked = {
    [name]: function (a, b, c) {
      if (new.target === undefined) return Native(a, b, c);
      const made = new.target === Tracked ? new Native(a, b, c) : Reflect.construct(Native, arguments, new.target);
      record(made, a, b);
      return made;
    },
  }[name];
  Tracked.prototype = Native.prototype;
  Object.setPrototypeOf(Tracked, Native);
  Object.defineProperty(Tracked, "length", { value: Native.length });
  return Tracked;
}

function recordResponse(res, body, init) {
  let k = K_FOREIGN;
  try {
    k = classify(body, init);
  } catch {} // odd init objects: keep the safe default
  res[KIND] = k;
  if (k === K_TEXT && typeof body === "string") res[TEXT] = body;
}

function recordBlob(blob, parts) {
  memBlobs.set(blob, textParts(parts));
}

// Replaces the global Response/Blob/File constructors with tracked ones (same
// prototype, instanceof unchanged) that record body kinds. Must run before the app
// module is imported.
export function installBodyTracking() {
  if (installed) return;
  installed = true;

  globalThis.Response = tracked(NativeResponse, recordResponse);

  const nativeJson = NativeResponse.json;
  NativeResponse.json = function json(data, init) {
    const res = nativeJson.call(NativeResponse, data, init);
    res[KIND] = K_MEM;
    return res;
  };

  const nativeClone = NativeResponse.prototype.clone;
  NativeResponse.prototype.clone = function clone() {
    const copy = nativeClone.call(this);
    const k = this[KIND];
    if (k !== undefined) copy[KIND] = k;
    const text = this[TEXT];
    if (text !== undefined) copy[TEXT] = text;
    return copy;
  };

  globalThis.Blob = tracked(NativeBlob, recordBlob);
  if (NativeFile !== undefined) globalThis.File = tracked(NativeFile, recordBlob);

  const nativeSlice = NativeBlob.prototype.slice;
  NativeBlob.prototype.slice = function slice(...args) {
    const part = nativeSlice.apply(this, args);
    const text = memBlobs.get(this);
    if (text !== undefined) memBlobs.set(part, text);
    return part;
  };

  const nativeStream = NativeBlob.prototype.stream;
  NativeBlob.prototype.stream = function stream(...args) {
    const s = nativeStream.apply(this, args);
    nativeStreams.set(s, this.type || OCTET);
    return s;
  };
}

// The string a Response was built from, while its body is still unread; else undefined.
export function bodyText(res) {
  const text = res[TEXT];
  return text === undefined || res.bodyUsed ? undefined : text;
}

// Status codes that never carry a body (Bun.serve drops it and adds no type).
export function isBodyless(status) {
  return status === 204 || status === 205 || status === 304;
}

// res.headers as [[name, value], ...]; `dropType` leaves content-type out (the
// HEAD rule above). Read this before the body: Bun derives a Blob's or FormData's
// content-type lazily and loses it once the body has been taken.
export function headerList(res, dropType) {
  const out = [];
  const headers = res.headers;
  if (headers.count === 0) return out; // Bun's own count: no iterator for the common case
  for (const pair of headers) {
    if (dropType && pair[0] === "content-type") continue;
    out.push(pair);
  }
  return out;
}

// Adds Bun.serve's implicit content-type unless the list already has one.
export function addImplicitType(list, type) {
  for (let i = 0; i < list.length; i++) if (list[i][0] === "content-type") return;
  list.push(["content-type", type]);
}

// --- app loading ---
// The module becomes one request handler with Bun.serve
// semantics (fetch, routes with fetch fallback, 404 without either).

// Where the shim keeps a Request's client address, for server.requestIP(): a
// symbol-keyed property costs far less per request than a WeakMap entry.
export const CLIENT_ADDRESS = Symbol("buntime.clientAddress");

// The WebSocket session registry (websocket.js) when the app exports `websocket`.
let sessions = null;

// The `server` argument handlers get: the parts that make sense behind the supervisor.
export const server = {
  requestIP(req) {
    const address = req?.[CLIENT_ADDRESS];
    if (!address) return null;
    return { address, family: address.includes(":") ? "IPv6" : "IPv4", port: 0 };
  },
  // true once `req` (a WebSocket upgrade request) became a session; false without `websocket`.
  upgrade(req, options) {
    return sessions === null ? false : sessions.upgrade(req, options);
  },
  publish(topic, message, compress) {
    return sessions === null ? 0 : sessions.publish(topic, message, null, null, "publish");
  },
  subscriberCount(topic) {
    return sessions === null ? 0 : sessions.subscriberCount(topic);
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
// `routing` is the routes.js module when the app has routes.
function makeHandler(app, router, routing) {
  const hasFetch = typeof app.fetch === "function";
  if (router === null) return (req) => app.fetch(req, server);
  const { pathOf, leafFor } = routing;
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

// One build or resolve error as "message (file:line:column)".
function describeBuildError(error) {
  const message = error && error.message ? error.message : String(error);
  const at = error && error.position;
  return at && at.file ? `${message} (${at.file}:${at.line}:${at.column})` : message;
}

// Imports the entrypoint -> {app, exports, handler, sessions}; throws FatalError.
export async function loadApp(entry) {
  let mod;
  try {
    mod = await import(entry);
  } catch (err) {
    let detail = err instanceof Error ? err.message : String(err);
    // Build failures arrive as an aggregate; the individual messages say what is wrong.
    if (err && Array.isArray(err.errors) && err.errors.length > 0) {
      detail += ": " + err.errors.map((e) => describeBuildError(e)).join("; ");
    }
    throw new FatalError(`entrypoint ${entry} failed to load: ${detail}`, err);
  }
  const app = pickApp(mod);
  if (app === null) throw new FatalError(`entrypoint ${entry} exports neither fetch nor routes`);
  let router = null;
  let routing = null;
  if (app.routes != null && typeof app.routes === "object") {
    routing = await import("./routes.js"); // only routes apps pay for loading it
    try {
      router = new routing.Router(app.routes);
    } catch (err) {
      throw new FatalError(`entrypoint ${entry} has invalid routes: ${err.message}`, err);
    }
  }
  if (app.websocket != null && typeof app.websocket === "object") {
    const ws = await import("./websocket.js"); // only WebSocket apps pay for loading it
    sessions = new ws.Sessions(app.websocket);
  }
  return { app, exports: exportsOf(app), handler: makeHandler(app, router, routing), sessions };
}

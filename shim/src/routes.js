// Bun.serve `routes` semantics: exact paths, `:param` segments and trailing
// `/*` wildcards, with precedence exact > params > wildcard. Route values are
// a Response (a clone is served per request), a Blob / Bun.file, a handler
// function, or an object of per-method values. A method missing from such an
// object falls back to `fetch` (HEAD uses GET first), as Bun.serve does.

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"]);

// One route value -> {kind: "static"|"blob"|"handler", value} or a methods table.
function compileValue(path, value) {
  if (value instanceof Response) return { kind: "static", value };
  if (value instanceof Blob) return { kind: "blob", value };
  if (typeof value === "function") return { kind: "handler", value };
  if (value !== null && typeof value === "object") {
    const methods = Object.create(null);
    for (const method of Object.keys(value)) {
      if (!METHODS.has(method)) throw new TypeError(`route ${path}: unsupported key ${method}`);
      const leaf = compileValue(`${path} ${method}`, value[method]);
      if (leaf === null || leaf.methods) throw new TypeError(`route ${path}: bad ${method} handler`);
      methods[method] = leaf;
    }
    return { methods };
  }
  if (value === false || value == null) return null;
  throw new TypeError(`route ${path}: unsupported route value`);
}

function newNode() {
  return { statics: new Map(), param: null, end: null, wild: null };
}

// Depth-first walk: static child, then `:param`, then wildcard at this node.
function walk(node, segs, i, values) {
  if (i === segs.length) return node.end;
  const seg = segs[i];
  const next = node.statics.get(seg);
  if (next !== undefined) {
    const found = walk(next, segs, i + 1, values);
    if (found !== null) return found;
  }
  if (node.param !== null && seg !== "") {
    values.push(seg);
    const found = walk(node.param, segs, i + 1, values);
    if (found !== null) return found;
    values.pop();
  }
  return node.wild;
}

function decode(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export class Router {
  constructor(routes) {
    this.exact = new Map();
    this.root = newNode();
    this.dynamic = false;
    for (const path of Object.keys(routes)) {
      if (path[0] !== "/") throw new TypeError(`route ${path}: must start with "/"`);
      const target = compileValue(path, routes[path]);
      if (target !== null) this.add(path, target);
    }
  }

  add(path, target) {
    if (!path.includes(":") && !path.includes("*")) {
      this.exact.set(path, { target, names: null });
      return;
    }
    this.dynamic = true;
    const segs = path.slice(1).split("/");
    const names = [];
    let node = this.root;
    for (let i = 0; i < segs.length; i++) {
      const seg = segs[i];
      if (seg === "*" && i === segs.length - 1) {
        node.wild = { target, names };
        return;
      }
      if (seg[0] === ":") {
        names.push(seg.slice(1));
        node = node.param ??= newNode();
      } else {
        let next = node.statics.get(seg);
        if (next === undefined) node.statics.set(seg, (next = newNode()));
        node = next;
      }
    }
    node.end = { target, names };
  }

  // -> {target, params} or null when nothing matches the path.
  match(path) {
    const hit = this.exact.get(path);
    if (hit !== undefined) return { target: hit.target, params: {} };
    if (!this.dynamic) return null;
    const values = [];
    const found = walk(this.root, path.slice(1).split("/"), 0, values);
    if (found === null) return null;
    const params = {};
    for (let i = 0; i < found.names.length; i++) params[found.names[i]] = decode(values[i]);
    return { target: found.target, params };
  }
}

// Pathname of an absolute URL string, without parsing the whole URL.
export function pathOf(url) {
  const scheme = url.indexOf("://");
  const start = url.indexOf("/", scheme < 0 ? 0 : scheme + 3);
  if (start < 0) return "/";
  let end = url.length;
  const q = url.indexOf("?", start);
  if (q >= 0) end = q;
  const h = url.indexOf("#", start);
  if (h >= 0 && h < end) end = h;
  return url.slice(start, end);
}

// Resolves the value to call for a method: a leaf or undefined (use fetch).
export function leafFor(target, method) {
  if (target.methods === undefined) return target;
  return target.methods[method] ?? (method === "HEAD" ? target.methods.GET : undefined);
}

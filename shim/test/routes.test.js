// Routes: the Router on its own, then the routes apps through the shim,
// compared request by request with a real Bun.serve running the same app.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Router, leafFor, pathOf } from "../src/routes.js";
import { FakeSupervisor } from "./harness.js";
import routesApp from "./apps/routes-app.js";
import * as routesOnly from "./apps/routes-only.js";

describe("Router", () => {
  const r = new Router({
    "/a": () => 1,
    "/u/:id": () => 2,
    "/u/me": () => 3,
    "/u/:id/p/:pid": () => 4,
    "/w/*": () => 5,
    "/w/x": () => 6,
    "/u/:id/*": () => 7,
    "/m": { GET: () => 8, POST: () => 9 },
  });
  const hit = (p) => {
    const m = r.match(p);
    return m && [m.target.value?.() ?? "methods", m.params];
  };

  test("exact beats params beats wildcard", () => {
    expect(hit("/a")).toEqual([1, {}]);
    expect(hit("/u/me")).toEqual([3, {}]);
    expect(hit("/u/42")).toEqual([2, { id: "42" }]);
    expect(hit("/w/x")).toEqual([6, {}]);
    expect(hit("/w/y/z")).toEqual([5, {}]);
    expect(hit("/u/1/p/2")).toEqual([4, { id: "1", pid: "2" }]);
    expect(hit("/u/1/q")).toEqual([7, { id: "1" }]);
  });

  test("params are decoded; empty segments and bare wildcard roots do not match", () => {
    expect(hit("/u/a%20b")).toEqual([2, { id: "a b" }]);
    expect(hit("/u/%E2%82%AC")).toEqual([2, { id: "\u20ac" }]);
    expect(hit("/u/bad%zz")).toEqual([2, { id: "bad%zz" }]);
    expect(hit("/u/")).toBeNull();
    expect(hit("/w")).toBeNull();
    expect(hit("/w/")).toEqual([5, {}]);
    expect(hit("/nope")).toBeNull();
  });

  test("per-method tables: HEAD falls back to GET, others to fetch", () => {
    const t = r.match("/m").target;
    expect(leafFor(t, "GET").value()).toBe(8);
    expect(leafFor(t, "HEAD").value()).toBe(8);
    expect(leafFor(t, "POST").value()).toBe(9);
    expect(leafFor(t, "PUT")).toBeUndefined();
  });

  test("invalid route tables throw", () => {
    expect(() => new Router({ nope: () => 1 })).toThrow();
    expect(() => new Router({ "/x": 42 })).toThrow();
    expect(() => new Router({ "/x": { FETCH: () => 1 } })).toThrow();
  });

  test("pathOf", () => {
    expect(pathOf("http://h:1/a/b?c=/d#e")).toBe("/a/b");
    expect(pathOf("http://h")).toBe("/");
    expect(pathOf("http://h/#x")).toBe("/");
  });
});

// [method, path, body?]
const requests = [
  ["GET", "/static"],
  ["POST", "/static", "x"],
  ["HEAD", "/static"],
  ["GET", "/file"],
  ["HEAD", "/file"],
  ["GET", "/users/42"],
  ["GET", "/users/me"],
  ["GET", "/users/a%20b"],
  ["GET", "/users/"],
  ["GET", "/users/1/posts/2"],
  ["GET", "/api"],
  ["GET", "/api/"],
  ["GET", "/api/a/b"],
  ["GET", "/api/exact"],
  ["GET", "/method"],
  ["POST", "/method", "payload"],
  ["DELETE", "/method"],
  ["PUT", "/method", "p"],
  ["HEAD", "/method"],
  ["GET", "/nomatch?q=1"],
  ["GET", "/only"],
  ["GET", "/m"],
  ["PUT", "/m", "x"],
];

for (const [app, module] of [
  ["routes-app.js", routesApp],
  ["routes-only.js", routesOnly],
]) {
  describe(`${app} matches Bun.serve`, () => {
    const s = new FakeSupervisor();
    let real;
    let id = 0;
    beforeAll(async () => {
      real = Bun.serve({ port: 0, hostname: "127.0.0.1", routes: module.routes, fetch: module.fetch });
      await s.ready(app);
    });
    afterAll(async () => {
      real.stop(true);
      await s.stop();
    });

    for (const [method, path, body] of requests) {
      test(`${method} ${path}`, async () => {
        const want = await fetch(`http://127.0.0.1:${real.port}${path}`, { method, body });
        const wantText = await want.text();
        const n = ++id;
        s.request(n, { method, url: `http://127.0.0.1${path}`, body: body !== undefined });
        if (body !== undefined) {
          s.sendFrame(0x12, n, Buffer.from(body));
          s.sendFrame(0x13, n);
        }
        const got = await s.response(n);
        expect(got.error).toBeNull();
        expect(got.status).toBe(want.status);
        expect(got.header("content-type")).toBe(want.headers.get("content-type"));
        if (method !== "HEAD") expect(got.text).toBe(wantText);
        expect(got.header("x-static")).toBe(want.headers.get("x-static"));
      });
    }
  });
}

// Content-type parity: each body kind answered by the shim must carry the same
// content-type (and status and body) that a real Bun.serve puts on the wire.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { FakeSupervisor } from "./harness.js";
import { cases } from "./apps/ct-cases.js";

const s = new FakeSupervisor();
let real;
let id = 0;

beforeAll(async () => {
  real = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: (req) => cases[new URL(req.url).pathname.slice(1)](),
    error: () => new Response("failed", { status: 500 }), // its 500, without the test runner's report
  });
  await s.ready("fetch-app.js");
});
afterAll(async () => {
  real.stop(true);
  await s.stop();
});

// multipart boundaries are random: compare everything but the token
const normalize = (ct) => ct?.replace(/boundary=\S+/, "boundary=*") ?? null;

// Cases Bun.serve answers with its 500 page; the shim must fail them too.
const failing = new Set(["readBeforeReturn"]);

for (const name of Object.keys(cases).filter((name) => !failing.has(name))) {
  test(`GET ${name}`, async () => {
    const want = await fetch(`http://127.0.0.1:${real.port}/${name}`);
    const wantBody = Buffer.from(await want.arrayBuffer());
    const got = await s.fetch(++id, `/ct/${name}`);
    expect(got.error).toBeNull();
    expect(got.status).toBe(want.status);
    expect(normalize(got.header("content-type"))).toBe(normalize(want.headers.get("content-type")));
    if (name !== "formData") expect(got.body.toString("hex")).toBe(wantBody.toString("hex"));
  });
}

// HEAD: Bun.serve drops a content-type that only came from the body.
for (const name of ["string", "uint8", "blobTyped", "bunFileJson", "json", "explicit", "urlSearchParams"]) {
  test(`HEAD ${name}`, async () => {
    const want = await fetch(`http://127.0.0.1:${real.port}/${name}`, { method: "HEAD" });
    const got = await s.fetch(++id, `/ct/${name}`, { method: "HEAD" });
    expect(got.status).toBe(want.status);
    expect(got.header("content-type")).toBe(want.headers.get("content-type"));
  });
}

for (const name of failing) {
  test(`GET ${name} fails as in Bun.serve`, async () => {
    const want = await fetch(`http://127.0.0.1:${real.port}/${name}`);
    await want.arrayBuffer();
    expect(want.status).toBe(500);
    const got = await s.fetch(++id, `/ct/${name}`);
    expect(got.error?.message).toMatch(/already used/i);
  });
}

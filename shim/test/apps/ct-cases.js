// Response bodies whose content-type the tests compare between the shim and a
// real Bun.serve. Each case is a function so every request gets a fresh Response.
const here = import.meta.dir;
const enc = new TextEncoder();

export const cases = {
  string: () => new Response("ok"),
  emptyString: () => new Response(""),
  nullBody: () => new Response(null),
  uint8: () => new Response(new Uint8Array([1, 2, 3])),
  uint8Text: () => new Response(enc.encode("hello")),
  arrayBuffer: () => new Response(new Uint8Array([1, 2]).buffer),
  dataView: () => new Response(new DataView(new ArrayBuffer(4))),
  blobAscii: () => new Response(new Blob(["hello"])),
  blobUtf8: () => new Response(new Blob(["h\u00e9llo"])),
  blobBinary: () => new Response(new Blob([new Uint8Array([0, 255])])),
  blobTyped: () => new Response(new Blob(["<b>x</b>"], { type: "text/html" })),
  blobSlice: () => new Response(new Blob(["hello"]).slice(1)),
  fileText: () => new Response(new File(["hello"], "a.txt")),
  bunFileJson: () => new Response(Bun.file(`${here}/static/data.json`)),
  bunFileHtml: () => new Response(Bun.file(`${here}/static/page.html`)),
  stream: () =>
    new Response(
      new ReadableStream({
        start(c) {
          c.enqueue(enc.encode("streamed"));
          c.close();
        },
      }),
    ),
  blobStream: () => new Response(new Blob(["hello"]).stream()),
  bunFileStream: () => new Response(Bun.file(`${here}/static/data.json`).stream()),
  asyncIterable: () =>
    new Response(
      (async function* () {
        yield "a";
        yield "b";
      })(),
    ),
  json: () => Response.json({ a: 1 }),
  jsonClone: () => Response.json({ a: 1 }).clone(),
  stringClone: () => new Response("ok").clone(),
  explicit: () => new Response("ok", { headers: { "Content-Type": "text/custom" } }),
  urlSearchParams: () => new Response(new URLSearchParams("a=b")),
  formData: () => {
    const f = new FormData();
    f.append("a", "b");
    return new Response(f);
  },
  noContent: () => new Response("gone", { status: 204 }),
  notModified: () => new Response(null, { status: 304 }),
  asyncString: async () => new Response("later"),
  utf8String: () => new Response("h\u00e9llo \u{1F600}"),
  loneSurrogate: () => new Response("a\ud800b"),
  largeString: () => new Response("x".repeat(200_000)),
  subclass: () => new (class Custom extends Response {})("sub"),
  typeSetLater: () => {
    const res = new Response("ok");
    res.headers.set("content-type", "text/later");
    return res;
  },
  readBeforeReturn: async () => {
    const res = new Response("ok");
    await res.text();
    return res;
  },
};

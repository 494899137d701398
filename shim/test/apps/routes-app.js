// Routes app with a fetch fallback.
const here = import.meta.dir;
export default {
  routes: {
    "/static": new Response("static body", { headers: { "x-static": "1" } }),
    "/file": Bun.file(`${here}/static/data.json`),
    "/users/:id": (req) => Response.json({ route: "user", params: req.params }),
    "/users/me": () => new Response("me"),
    "/users/:id/posts/:post": (req) => Response.json({ route: "post", params: req.params }),
    "/api/*": (req) => new Response("wildcard " + new URL(req.url).pathname),
    "/api/exact": () => new Response("api exact"),
    "/method": {
      GET: () => new Response("method get"),
      POST: async (req) => new Response("method post " + (await req.text())),
      DELETE: new Response("method delete static"),
    },
  },
  fetch(req) {
    return new Response("fallback " + req.method + " " + new URL(req.url).pathname);
  },
};

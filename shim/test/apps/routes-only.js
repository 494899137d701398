// Routes without a fetch fallback: unmatched paths get Bun.serve's empty 404.
export const routes = {
  "/only": () => new Response("only"),
  "/m": { GET: () => new Response("m get") },
};

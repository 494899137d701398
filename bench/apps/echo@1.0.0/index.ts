// Answers with the request body, whole.
export default {
  async fetch(req: Request): Promise<Response> {
    const body = await req.arrayBuffer();
    return new Response(body, {
      headers: { "content-type": req.headers.get("content-type") ?? "application/octet-stream" },
    });
  },
};

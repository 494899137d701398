// Takes a while to load (top-level await), so requests can arrive before READY.
await Bun.sleep(150);
export default { fetch: () => new Response("loaded late") };

// Hooks that fail: the shim logs them and keeps going (TERMINATE still exits 0).
export default {
  fetch: () => new Response("still serving"),
  onIdle() {
    throw new Error("idle hook failed");
  },
  async onTerminate() {
    throw new Error("terminate hook failed");
  },
};

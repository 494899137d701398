// Waits 50 ms (a timer, no CPU) before answering, like a handler waiting on a database.
const DELAY_MS = 50;

export default {
  async fetch(): Promise<Response> {
    await new Promise((resolve) => setTimeout(resolve, DELAY_MS));
    return new Response("ok");
  },
};

// The noop app, run with a fresh process for every request (see worker.jsonc).
export default {
  fetch(): Response {
    return new Response("ok");
  },
};

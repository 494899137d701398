// The smallest app: every request answers "ok".
export default {
  fetch(): Response {
    return new Response("ok");
  },
};

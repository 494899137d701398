// Deliberately broken module.
export default {
  fetch(req) {
    return new Response("never"
  },
};

// Burns 20 ms of CPU synchronously per request, blocking the event loop like a
// template render or a hash would.
const BURN_MS = 20;

function burn(ms: number): number {
  const until = performance.now() + ms;
  let x = 0;
  while (performance.now() < until) {
    for (let i = 0; i < 1000; i++) x = (x * 31 + i) | 0;
  }
  return x;
}

export default {
  fetch(): Response {
    return new Response(String(burn(BURN_MS) & 1));
  },
};

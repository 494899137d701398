// The plain side of the comparison: one Bun.serve process serving an app module
// directly, with no supervisor in front.
//
//   bun plain.ts <app.ts> [--port N]       the app's default export: fetch (+ websocket)
//   bun plain.ts --static <dir> [--port N] every file under <dir> as a file route,
//                                           index.html for anything else
//
// Prints "listening <port>" on stdout once the server accepts connections.

import { readdirSync, statSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";

function usage(): never {
  console.error("usage: bun plain.ts <app.ts> | --static <dir>  [--port N]");
  process.exit(2);
}

const argv = process.argv.slice(2);
let entry: string | undefined;
let staticDir: string | undefined;
let port = 0;
for (let i = 0; i < argv.length; i++) {
  const arg = argv[i];
  if (arg === "--port") port = Number(argv[++i] ?? usage());
  else if (arg === "--static") staticDir = argv[++i] ?? usage();
  else if (entry === undefined) entry = arg;
  else usage();
}
if ((entry === undefined) === (staticDir === undefined)) usage();

function filesUnder(dir: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...filesUnder(path));
    else found.push(path);
  }
  return found;
}

let server: ReturnType<typeof Bun.serve>;
if (staticDir !== undefined) {
  const root = resolve(staticDir);
  const routes: Record<string, ReturnType<typeof Bun.file>> = {};
  for (const path of filesUnder(root)) {
    routes["/" + relative(root, path).split(sep).join("/")] = Bun.file(path);
  }
  const index = Bun.file(join(root, "index.html"));
  server = Bun.serve({
    hostname: "127.0.0.1",
    port,
    routes,
    fetch: () => new Response(index),
  });
} else {
  const app = (await import(resolve(entry!))).default;
  server = Bun.serve({
    hostname: "127.0.0.1",
    port,
    fetch: app.fetch.bind(app),
    websocket: app.websocket,
  });
}

console.log(`listening ${server.port}`);

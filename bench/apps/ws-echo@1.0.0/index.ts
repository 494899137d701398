// Upgrades every request to a WebSocket and sends each message back as it came.
import type { ServerWebSocket } from "bun";

export default {
  fetch(req: Request, server: { upgrade(req: Request): boolean }): Response | undefined {
    if (server.upgrade(req)) return;
    return new Response("expected a WebSocket upgrade", { status: 400 });
  },
  websocket: {
    message(ws: ServerWebSocket<unknown>, message: string | Buffer) {
      ws.send(message);
    },
  },
};

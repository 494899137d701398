// A chat with rooms: GET /chat?room=R&name=N upgrades; each session is
// subscribed to its room's topic and what it sends goes to the others there.
//   "/join R"  moves to room R        "/rooms"  lists the subscriptions
//   GET /announce?room=R&text=T       server.publish to a room
//   GET /count?room=R                 server.subscriberCount of a room

let server = null;
const topic = (room) => `room:${room}`;

export default {
  fetch(req, srv) {
    server = srv;
    const url = new URL(req.url);
    const room = url.searchParams.get("room") ?? "lobby";
    if (url.pathname === "/chat") {
      const name = url.searchParams.get("name") ?? "guest";
      if (srv.upgrade(req, { data: { room, name } })) return;
      return new Response("expected a websocket", { status: 400 });
    }
    if (url.pathname === "/announce") {
      const bytes = srv.publish(topic(room), `[${room}] ${url.searchParams.get("text")}`);
      return Response.json({ bytes });
    }
    if (url.pathname === "/count") return new Response(String(srv.subscriberCount(topic(room))));
    return new Response("chat server");
  },

  websocket: {
    open(ws) {
      const { room, name } = ws.data;
      ws.subscribe(topic(room));
      ws.publish(topic(room), `${name} joined`);
      ws.send(`welcome ${name} to ${room}`);
    },
    message(ws, message) {
      const { room, name } = ws.data;
      if (message.startsWith("/join ")) {
        const next = message.slice(6);
        ws.unsubscribe(topic(room));
        ws.publish(topic(room), `${name} left`);
        ws.data.room = next;
        ws.subscribe(topic(next));
        ws.publish(topic(next), `${name} joined`);
        ws.send(`now in ${next}`);
        return;
      }
      if (message === "/rooms") return void ws.send(JSON.stringify(ws.subscriptions));
      ws.publish(topic(room), `${name}: ${message}`);
    },
    close(ws) {
      // ws is closed and unsubscribed here: the server publishes the goodbye
      server.publish(topic(ws.data.room), `${ws.data.name} left`);
    },
  },
};

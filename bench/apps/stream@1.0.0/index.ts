// Streams 10 MiB in 64 KiB chunks, each produced when the reader asks for it.
const CHUNK = new Uint8Array(64 * 1024).fill(120);
const TOTAL = 10 * 1024 * 1024;

export default {
  fetch(): Response {
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= TOTAL) {
          controller.close();
          return;
        }
        const length = Math.min(CHUNK.length, TOTAL - sent);
        controller.enqueue(length === CHUNK.length ? CHUNK.slice() : CHUNK.slice(0, length));
        sent += length;
      },
    });
    return new Response(body, { headers: { "content-type": "application/octet-stream" } });
  },
};

// Entry point of every app process: `bun main.js`, with
//   BUNTIME_IPC_PATH   the supervisor's Unix socket
//   BUNTIME_ENTRYPOINT absolute path of the app module
//   BUNTIME_APP        a label such as "hello@1.0.0"
// The app import and the connection start together; READY follows both.

import { installBodyTracking } from "./bodykind.js";
import { Connection } from "./connection.js";
import { loadApp } from "./app.js";

const env = process.env;
const entry = env.BUNTIME_ENTRYPOINT;
const ipcPath = env.BUNTIME_IPC_PATH;

if (!entry || !ipcPath) {
  console.error("[buntime] BUNTIME_ENTRYPOINT and BUNTIME_IPC_PATH must be set");
  process.exit(2);
}

// A stray rejection in app code must not take the process down.
process.on("unhandledRejection", (err) => {
  console.error(`[buntime] ${env.BUNTIME_APP ?? "app"}: unhandled rejection:`, err);
});

installBodyTracking(); // before the app creates any Response
const loading = loadApp(entry);
const conn = new Connection();
conn.connect(ipcPath);
loading.then(
  async (loaded) => {
    await conn.opened;
    conn.ready(loaded);
  },
  (err) => conn.fatal(err),
);

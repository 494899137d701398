// Drives the supervisor's dashboard in headless Chromium, as an operator would.
//
//   node tests/browser/dashboard.mjs <base URL> <screenshot.png> [--key MASTER_KEY]
//
// Expects a supervisor with the fixture apps hello, echo and routes and no live child
// yet. Loads /_/, checks the apps are listed and the pool is empty, sends requests to
// the apps from here, waits for their live children (with pids) and for the figures
// and the requests chart to move, retires hello's child with its Retire button and
// waits for its row to go, then saves full-page screenshots: the given path (light)
// and a `-dark` sibling. Any failure exits 1 with a message naming the step.
//
// With --key the supervisor runs with that RUNTIME_MASTER_KEY. The page itself is
// then fetched with the key added (as a header-injecting proxy in front of the
// supervisor would), while the page's own calls carry only what the page sends: it
// must ask for the key (a wrong one first, which it must refuse and ask again), poll
// /_/stats with it instead of using the event stream, retire with it, and remember it
// across a reload.

import { mkdtempSync, mkdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, parse } from "node:path";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const STEP_TIMEOUT_MS = 20_000;
const FIXTURE_APPS = ["hello", "echo", "routes"];

const usage = "usage: node dashboard.mjs <supervisor base URL> <screenshot.png> [--key MASTER_KEY]";
const [base, screenshotPath, ...options] = process.argv.slice(2);
let masterKey = null;
if (options.length === 2 && options[0] === "--key" && options[1]) {
  masterKey = options[1];
} else if (options.length !== 0) {
  console.error(usage);
  process.exit(2);
}
if (!base || !screenshotPath) {
  console.error(usage);
  process.exit(2);
}
const root = base.replace(/\/+$/, "");
const apiHeaders = masterKey ? { "X-API-Key": masterKey } : {};

let currentStep = "start";
const problems = [];
const consoleErrors = [];

function log(message) {
  console.log(`[dashboard] ${message}`);
}

async function step(name, action) {
  currentStep = name;
  log(name);
  return action();
}

async function get(path) {
  const response = await fetch(root + path, { headers: apiHeaders });
  return { status: response.status, text: await response.text() };
}

async function liveChildren() {
  const { status, text } = await get("/_/stats");
  if (status !== 200) throw new Error(`GET /_/stats answered ${status}: ${text}`);
  return JSON.parse(text).workers;
}

function darkSibling(path) {
  const { dir, name, ext } = parse(path);
  return join(dir, `${name}-dark${ext || ".png"}`);
}

async function updates(page) {
  return page.evaluate(() => Number(document.querySelector("main").dataset.updates));
}

async function waitForUpdates(page, count) {
  await page.waitForFunction(
    (target) => Number(document.querySelector("main").dataset.updates) >= target,
    count,
  );
}

function row(page, pid) {
  return page.locator(`[data-testid="worker-row"][data-pid="${pid}"]`);
}

async function loadPage(page) {
  const response = await page.goto(`${root}/_/`, { waitUntil: "load" });
  if (!response || response.status() !== 200) {
    throw new Error(`GET /_/ answered ${response ? response.status() : "nothing"}`);
  }
  const type = response.headers()["content-type"] || "";
  if (!type.startsWith("text/html")) throw new Error(`GET /_/ has content-type ${type}`);
  const title = await page.getByTestId("product-name").textContent();
  if (!/Buntime Supervisor/.test(title || "")) throw new Error(`product name shows ${title}`);
}

async function checkAppsListed(page) {
  for (const app of FIXTURE_APPS) {
    const card = page.locator(`[data-testid="app-card"][data-app="${app}"]`);
    await card.waitFor({ state: "visible" });
    const versions = await card.getByTestId("app-version").allTextContents();
    if (!versions.some((text) => text.includes("1.0.0"))) {
      throw new Error(`${app} lists versions ${JSON.stringify(versions)}, not 1.0.0`);
    }
  }
}

async function checkEmptyPool(page) {
  await page.getByTestId("workers-empty").waitFor({ state: "visible" });
  const rows = await page.getByTestId("worker-row").count();
  if (rows !== 0) throw new Error(`${rows} child rows shown for an empty pool`);
}

/** Sends a request to /hello/ and returns the pid of the child that answered. */
async function startHello() {
  const { status, text } = await get("/hello/");
  if (status !== 200 || !text.includes("Hello from hello@1.0.0")) {
    throw new Error(`GET /hello/ answered ${status}: ${text}`);
  }
  const hello = (await liveChildren()).find((worker) => worker.app === "hello");
  if (!hello) throw new Error("no hello child in /_/stats after a request");
  return hello.pid;
}

async function checkRow(page, pid) {
  const shown = row(page, pid);
  await shown.waitFor({ state: "visible" });
  const text = (await shown.getByTestId("worker-pid").textContent()).trim();
  if (text !== String(pid)) throw new Error(`row shows pid ${text}, expected ${pid}`);
  const app = await shown.getByTestId("worker-app").textContent();
  if (!app.includes("hello@1.0.0")) throw new Error(`row names ${app}, expected hello@1.0.0`);
  const state = (await shown.getByTestId("worker-state").textContent()).trim();
  if (!["ready", "active", "idle"].includes(state)) throw new Error(`row shows state ${state}`);
  await page.getByTestId("workers-empty").waitFor({ state: "hidden" });
}

async function retireByButton(page, pid, others = []) {
  const shown = row(page, pid);
  await shown.getByTestId("retire-worker").click();
  await page
    .getByTestId("toast")
    .filter({ hasText: `Retiring hello@1.0.0 (pid ${pid})` })
    .waitFor({ state: "visible" });
  await shown.waitFor({ state: "detached" });
  const workers = await liveChildren();
  if (workers.some((worker) => worker.pid === pid)) {
    throw new Error(`pid ${pid} is still in /_/stats after its row went`);
  }
  for (const other of others) {
    if ((await row(page, other).count()) !== 1) throw new Error(`the row of pid ${other} went too`);
  }
  const card = page.locator('[data-testid="app-card"][data-app="hello"]');
  await card.getByTestId("app-live").filter({ hasText: "no child" }).waitFor();
}

async function screenshots(page) {
  mkdirSync(dirname(screenshotPath), { recursive: true });
  // A couple more points on the charts, and the page at rest, for the picture.
  await waitForUpdates(page, (await updates(page)) + 2);
  await page.mouse.move(0, 0);
  await page.screenshot({ path: screenshotPath, fullPage: true });
  if (statSync(screenshotPath).size === 0) throw new Error("the screenshot is empty");
  await page.emulateMedia({ colorScheme: "dark" });
  await page.waitForTimeout(300);
  await page.screenshot({ path: darkSibling(screenshotPath), fullPage: true });
  await page.emulateMedia({ colorScheme: "light" });
}

/** Without a master key: the event stream, and same-origin POSTs for the actions. */
async function openSupervisor(page) {
  await step("load /_/", () => loadPage(page));
  await step("the fixture apps are listed with their versions", () => checkAppsListed(page));
  await step("the live stream connects and the pool shows empty", async () => {
    await page.waitForSelector('[data-testid="connection"][data-state="live"]');
    await waitForUpdates(page, 2);
    await checkEmptyPool(page);
  });

  const before = await page.evaluate(() => ({
    updates: Number(document.querySelector("main").dataset.updates),
    requests: document.querySelector('[data-testid="tile-requests"]').textContent,
    chart: document.querySelector('[data-testid="rps-chart"]').toDataURL(),
  }));
  const pid = await step("a request to /hello/ starts a child", startHello);
  await step(`the child's row appears with pid ${pid}`, () => checkRow(page, pid));
  await step("the request figure and the requests chart change between events", async () => {
    await page.waitForFunction((old) => {
      const updates = Number(document.querySelector("main").dataset.updates);
      const requests = document.querySelector('[data-testid="tile-requests"]').textContent;
      const chart = document.querySelector('[data-testid="rps-chart"]').toDataURL();
      return updates >= old.updates + 2 && requests !== old.requests && chart !== old.chart;
    }, before);
    const requests = await page.getByTestId("tile-requests").textContent();
    if (Number(requests.replace(/,/g, "")) < 1) throw new Error(`requests tile shows ${requests}`);
  });

  const others = await step("requests to echo and routes start two more children", async () => {
    for (let round = 0; round < 5; round += 1) {
      for (const path of ["/echo/", "/routes/", "/routes/users/7", "/hello/"]) {
        const { status, text } = await get(path);
        if (status >= 500) throw new Error(`GET ${path} answered ${status}: ${text}`);
      }
    }
    const workers = await liveChildren();
    const pids = workers.filter((worker) => worker.app !== "hello").map((worker) => worker.pid);
    if (pids.length !== 2) throw new Error(`expected 2 other children, /_/stats has ${pids.length}`);
    for (const other of pids) await row(page, other).waitFor();
    return pids;
  });
  await step(`Retire on pid ${pid} removes its row`, () => retireByButton(page, pid, others));
}

/** With a master key: the page asks for it, polls with it, and acts with it. */
async function keyedSupervisor(page, context) {
  // The page and its assets get the key, as from a proxy; the page's calls do not.
  await context.route(`${root}/**`, (route) => {
    const request = route.request();
    const path = new URL(request.url()).pathname;
    if (path === "/_/" || path.startsWith("/_/assets/")) {
      return route.continue({ headers: { ...request.headers(), "x-api-key": masterKey } });
    }
    return route.continue();
  });
  // The 401s the page must get before it has the key are expected.
  const expected401 = (text) => /status of 401/.test(text);

  await step("load /_/ with the key added by a proxy", () => loadPage(page));
  await step("the page asks for the key", async () => {
    await page.getByTestId("key-panel").waitFor({ state: "visible" });
    await page.waitForSelector('[data-testid="connection"][data-state="locked"]');
  });
  await step("a wrong key is refused and asked for again", async () => {
    await page.getByTestId("key-input").fill(`${masterKey}-wrong`);
    await page.getByTestId("key-submit").click();
    await page.getByTestId("key-message").filter({ hasText: "refused" }).waitFor();
    await page.getByTestId("key-panel").waitFor({ state: "visible" });
  });
  await step("the right key unlocks the page, which polls /_/stats", async () => {
    await page.getByTestId("key-input").fill(masterKey);
    await page.getByTestId("key-submit").click();
    await page.getByTestId("key-panel").waitFor({ state: "hidden" });
    await page.waitForSelector('[data-testid="connection"][data-state="polling"]');
    const start = await updates(page);
    await waitForUpdates(page, start + 2);
    await checkAppsListed(page);
    await checkEmptyPool(page);
    const note = await page.getByTestId("live-mode").textContent();
    if (!/Polling/.test(note)) throw new Error(`live mode says ${note}`);
  });
  const pid = await step("a request to /hello/ starts a child", startHello);
  await step(`the child's row appears with pid ${pid}`, () => checkRow(page, pid));
  await step(`Retire (with the key) on pid ${pid} removes its row`, () =>
    retireByButton(page, pid),
  );
  await step("after a reload the page keeps the key for the session", async () => {
    await loadPage(page);
    await page.waitForSelector('[data-testid="connection"][data-state="polling"]');
    await waitForUpdates(page, 2);
    if (await page.getByTestId("key-panel").isVisible()) {
      throw new Error("the key form shows again after a reload");
    }
    await startHello();
  });
  return expected401;
}

async function main() {
  const profile = mkdtempSync(join(tmpdir(), "dashboard-chromium-"));
  let context;
  try {
    context = await step("launch Chromium", () =>
      chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        args: CHROMIUM_ARGS,
        headless: true,
        viewport: { width: 1280, height: 860 },
        colorScheme: "light",
        timeout: 60_000,
      }),
    );
    context.setDefaultTimeout(STEP_TIMEOUT_MS);
    const page = context.pages()[0] || (await context.newPage());
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(message.text());
    });

    let expected = () => false;
    if (masterKey) expected = await keyedSupervisor(page, context);
    else await openSupervisor(page);
    await step(`full-page screenshots to ${screenshotPath}`, () => screenshots(page));

    const unexpected = consoleErrors.filter((text) => !expected(text));
    problems.push(...unexpected.map((text) => `console: ${text}`));
    if (problems.length) {
      currentStep = "the page's own errors";
      throw new Error(problems.join("\n"));
    }
    log(`ok: screenshots at ${screenshotPath} and ${darkSibling(screenshotPath)}`);
  } finally {
    if (context) await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
}

try {
  await main();
  process.exit(0);
} catch (error) {
  console.error(`[dashboard] FAILED at step "${currentStep}": ${error.message}`);
  const reported = [...problems, ...consoleErrors.map((text) => `console: ${text}`)];
  if (reported.length && currentStep !== "the page's own errors") {
    console.error(`[dashboard] the page also reported:\n${reported.join("\n")}`);
  }
  process.exit(1);
}

// The supervisor dashboard: live pool figures, two charts, the apps and the live
// children, with actions to retire a child or every child of an app.
//
// Figures come from the `/_/sse` event stream. With a master key the stream cannot
// be used (EventSource sends no headers), so the page polls `/_/stats` instead and
// sends the key, which it asks for once and keeps in sessionStorage.
//
// Every URL is relative to the page, which lives at `/_/` (or `/_/dashboard`), so
// the dashboard also works behind a proxy that mounts the supervisor on a sub-path.

const KEY_STORAGE = "buntime-supervisor.master-key";
const HISTORY = 60;
const APPS_EVERY_MS = 10_000;
const POLL_EVERY_MS = 1_000;
const STALL_MS = 5_000;
const TOAST_MS = 4_000;

const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);

const page = {
  key: readKey(),
  keyPrompt: null,
  keyResolve: null,
  appsSignature: "",
  appNames: [],
  previous: null,
  rps: [],
  latency: [],
  lastStats: null,
  updates: 0,
  rows: new Map(),
  live: { mode: "none", generation: 0, source: null, timer: null, retries: 0, lastEventAt: 0 },
};

// ---------------------------------------------------------------------------
// The master key

function readKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || null;
  } catch {
    return null;
  }
}

function storeKey(key) {
  page.key = key;
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // Storage may be off; the key then lasts as long as the page.
  }
}

/** Shows the key form (once, however many calls wait) and resolves when a key is given. */
function askForKey(message) {
  if (!page.keyPrompt) {
    page.keyPrompt = new Promise((resolve) => {
      page.keyResolve = resolve;
    });
    byTestId("key-message").textContent = message;
    byTestId("key-panel").hidden = false;
    setConnection("locked");
    byTestId("key-input").focus();
  }
  return page.keyPrompt;
}

function onKeySubmit(event) {
  event.preventDefault();
  const input = byTestId("key-input");
  const key = input.value.trim();
  if (!key) return;
  storeKey(key);
  input.value = "";
  byTestId("key-panel").hidden = true;
  const resolve = page.keyResolve;
  page.keyPrompt = null;
  page.keyResolve = null;
  if (resolve) resolve();
}

// ---------------------------------------------------------------------------
// Calls to the internal API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** A JSON call; on 401 it asks for the key and tries again with it. */
async function api(path, options = {}) {
  for (;;) {
    const key = page.key;
    const headers = new Headers(options.headers || {});
    headers.set("Accept", "application/json");
    if (key) headers.set("X-API-Key", key);
    const response = await fetch(path, { ...options, headers, cache: "no-store" });
    if (response.status === 401) {
      if (page.key === key) {
        storeKey(null);
        await askForKey(
          key
            ? "That key was refused. Enter the supervisor's RUNTIME_MASTER_KEY."
            : "This supervisor protects its internal API with a master key.",
        );
      }
      continue;
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const error = body && body.error ? body.error : {};
      throw new ApiError(
        response.status,
        error.code || `HTTP_${response.status}`,
        error.message || `${response.status} ${response.statusText}`,
      );
    }
    return body;
  }
}

// ---------------------------------------------------------------------------
// The live feed: the event stream, or polling when a key must be sent

const CONNECTION_LABELS = {
  connecting: "Connecting…",
  live: "Live",
  polling: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline, retrying",
  locked: "Key needed",
};

function setConnection(wanted) {
  // While the key form waits, nothing else can be shown truthfully.
  const state = page.keyPrompt ? "locked" : wanted;
  const badge = byTestId("connection");
  if (badge.dataset.state === state) return;
  badge.dataset.state = state;
  badge.querySelector(".connection-label").textContent = CONNECTION_LABELS[state] || state;
}

function setModeNote(text) {
  byTestId("live-mode").textContent = text;
}

function stopLive() {
  const live = page.live;
  live.generation += 1;
  if (live.source) {
    live.source.close();
    live.source = null;
  }
  clearTimeout(live.timer);
  live.timer = null;
  live.mode = "none";
}

function startLive() {
  stopLive();
  if (page.key) startPolling();
  else startStream();
}

function startStream() {
  const live = page.live;
  const generation = live.generation;
  live.mode = "stream";
  live.lastEventAt = Date.now();
  setConnection(live.retries ? "reconnecting" : "connecting");
  setModeNote("Live figures from the /_/sse stream, once a second.");
  const source = new EventSource("sse");
  live.source = source;
  source.addEventListener("stats", (event) => {
    if (generation !== live.generation) return;
    live.lastEventAt = Date.now();
    live.retries = 0;
    setConnection("live");
    let stats;
    try {
      stats = JSON.parse(event.data);
    } catch {
      return;
    }
    onStats(stats);
  });
  source.addEventListener("error", () => {
    if (generation !== live.generation) return;
    if (source.readyState === EventSource.CLOSED) {
      // Refused (401 with a master key) or not an event stream: the browser gives up.
      recover();
    } else {
      // The connection dropped; the browser reconnects by itself.
      setConnection("reconnecting");
    }
  });
}

function startPolling() {
  const live = page.live;
  const generation = live.generation;
  live.mode = "polling";
  setModeNote("Polling /_/stats once a second (an event stream cannot carry the key).");
  const tick = async () => {
    if (generation !== live.generation) return;
    try {
      const stats = await api("stats");
      if (generation !== live.generation) return;
      live.retries = 0;
      setConnection("polling");
      onStats(stats);
    } catch {
      if (generation !== live.generation) return;
      setConnection("offline");
    }
    live.timer = setTimeout(tick, POLL_EVERY_MS);
  };
  tick();
}

/** After the stream failed or stalled: wait, check the API (asking for a key on 401), restart. */
async function recover() {
  const live = page.live;
  stopLive();
  live.mode = "recovering";
  const generation = live.generation;
  setConnection("reconnecting");
  const delay = Math.min(1000 * 2 ** live.retries, 10_000);
  live.retries += 1;
  await new Promise((resolve) => {
    live.timer = setTimeout(resolve, delay);
  });
  if (generation !== live.generation) return;
  try {
    const stats = await api("stats");
    if (generation !== live.generation) return;
    onStats(stats);
  } catch {
    if (generation !== live.generation) return;
    setConnection("offline");
    recover();
    return;
  }
  startLive();
}

function watchForStalls() {
  const live = page.live;
  if (live.mode === "stream" && Date.now() - live.lastEventAt > STALL_MS) recover();
}

// ---------------------------------------------------------------------------
// Figures

function onStats(stats) {
  const total = Number(stats.totalRequests) || 0;
  const uptime = Number(stats.uptimeSeconds) || 0;
  const previous = page.previous;
  let rate = null;
  if (previous && (uptime < previous.uptime || total < previous.total)) {
    // The supervisor restarted: the history belongs to the old one.
    page.rps = [];
    page.latency = [];
  } else if (previous && uptime > previous.uptime) {
    rate = (total - previous.total) / (uptime - previous.uptime);
  }
  if (!previous || uptime !== previous.uptime) {
    page.previous = { total, uptime };
    if (rate !== null) pushPoint(page.rps, rate);
    pushPoint(page.latency, Number(stats.averageResponseMs) || 0);
  }
  page.lastStats = stats;
  page.updates += 1;

  renderTiles(stats, rate);
  renderCharts();
  renderWorkers(Array.isArray(stats.workers) ? stats.workers : []);
  renderAppLiveCounts();
  byTestId("dashboard").dataset.updates = String(page.updates);
}

function pushPoint(series, value) {
  series.push(Number.isFinite(value) ? Math.max(0, value) : 0);
  if (series.length > HISTORY) series.splice(0, series.length - HISTORY);
}

function setText(testId, text) {
  const element = byTestId(testId);
  if (element.textContent !== text) element.textContent = text;
}

function renderTiles(stats, rate) {
  const total = Number(stats.totalRequests) || 0;
  setText("uptime", formatDuration(stats.uptimeSeconds));
  setText("tile-active", formatInt(stats.activeWorkers));
  setText("tile-pool-size", `pool size ${formatInt(stats.poolSize)}`);
  setText("tile-requests", formatInt(total));
  setText("tile-hits", `${formatInt(stats.hits)} hits · ${formatInt(stats.misses)} starts`);
  const current = rate ?? page.rps[page.rps.length - 1];
  setText("tile-rps", current === undefined ? "–" : formatRate(current));
  setText("tile-rps-mean", `${formatRate(stats.requestsPerSecond)} mean since start`);
  setText("tile-latency", total === 0 ? "–" : formatMs(stats.averageResponseMs));
  setText("tile-hit-rate", total === 0 ? "–" : `${(Number(stats.hitRate) * 100).toFixed(1)}%`);
  setText("tile-lifecycle", `${formatInt(stats.workersCreated)} / ${formatInt(stats.workersRetired)}`);
  const failed = Number(stats.workersFailed) || 0;
  setText("tile-failed", failed ? `${formatInt(failed)} failed to start` : "none failed to start");
  setText(
    "tile-ephemeral",
    `${formatInt(stats.ephemeralRunning)} / ${formatInt(stats.ephemeralConcurrency)}`,
  );
  setText("tile-ephemeral-note", `running · ${formatInt(stats.ephemeralQueueDepth)} queued`);
  setText("rps-value", current === undefined ? "–" : `${formatRate(current)}/s`);
  setText("latency-value", total === 0 ? "–" : formatMs(stats.averageResponseMs));
}

// ---------------------------------------------------------------------------
// Charts

function renderCharts() {
  drawChart(byTestId("rps-chart"), page.rps, "--chart-rps", formatRate);
  drawChart(byTestId("latency-chart"), page.latency, "--chart-latency", formatMs);
}

function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  const fraction = value / magnitude;
  const nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10;
  return nice * magnitude;
}

function drawChart(canvas, values, colorVariable, format) {
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (!width || !height) return;
  const ratio = window.devicePixelRatio || 1;
  const pixelWidth = Math.round(width * ratio);
  const pixelHeight = Math.round(height * ratio);
  if (canvas.width !== pixelWidth || canvas.height !== pixelHeight) {
    canvas.width = pixelWidth;
    canvas.height = pixelHeight;
  }
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);

  const styles = getComputedStyle(document.documentElement);
  const color = styles.getPropertyValue(colorVariable).trim() || "#4b63e6";
  const grid = styles.getPropertyValue("--grid").trim() || "rgba(0,0,0,0.08)";
  const faint = styles.getPropertyValue("--faint").trim() || "#98a2b3";

  const top = 16;
  const bottom = height - 16;
  const left = 0;
  const right = width - 4;
  const ceiling = niceCeiling(Math.max(0, ...values));
  const y = (value) => bottom - (Math.min(value, ceiling) / ceiling) * (bottom - top);

  context.lineWidth = 1;
  context.strokeStyle = grid;
  for (const fraction of [0, 0.5, 1]) {
    const lineY = Math.round(y(ceiling * fraction)) + 0.5;
    context.beginPath();
    context.moveTo(left, lineY);
    context.lineTo(right, lineY);
    context.stroke();
  }
  context.fillStyle = faint;
  context.font = "10.5px system-ui, sans-serif";
  context.textAlign = "left";
  context.textBaseline = "bottom";
  context.fillText(format(ceiling), left, y(ceiling) - 2);
  context.textBaseline = "top";
  context.fillText("60 s ago", left, bottom + 4);
  context.textAlign = "right";
  context.fillText("now", right, bottom + 4);

  if (values.length === 0) return;
  const step = (right - left) / (HISTORY - 1);
  const x = (index) => right - (values.length - 1 - index) * step;

  const line = new Path2D();
  values.forEach((value, index) => {
    if (index === 0) line.moveTo(x(index), y(value));
    else line.lineTo(x(index), y(value));
  });

  const area = new Path2D(line);
  area.lineTo(x(values.length - 1), bottom);
  area.lineTo(x(0), bottom);
  area.closePath();
  const gradient = context.createLinearGradient(0, top, 0, bottom);
  gradient.addColorStop(0, color);
  gradient.addColorStop(1, "rgba(0, 0, 0, 0)");
  context.globalAlpha = 0.2;
  context.fillStyle = gradient;
  context.fill(area);
  context.globalAlpha = 1;

  context.strokeStyle = color;
  context.lineWidth = 2;
  context.lineJoin = "round";
  context.lineCap = "round";
  context.stroke(line);

  const last = values.length - 1;
  context.fillStyle = color;
  context.beginPath();
  context.arc(x(last), y(values[last]), 3, 0, Math.PI * 2);
  context.fill();
}

// ---------------------------------------------------------------------------
// Apps

async function loadApps() {
  let document_;
  try {
    document_ = await api("apps");
  } catch (error) {
    const empty = byTestId("apps-empty");
    empty.textContent = `Could not load the apps: ${error.message}`;
    empty.hidden = false;
    return;
  }
  const apps = Array.isArray(document_ && document_.apps) ? document_.apps : [];
  const signature = JSON.stringify(apps);
  if (signature === page.appsSignature) return;
  page.appsSignature = signature;
  renderApps(apps);
}

function renderApps(apps) {
  const list = byTestId("apps-list");
  list.replaceChildren(...apps.map(appCard));
  page.appNames = apps.map((app) => app.name);
  const empty = byTestId("apps-empty");
  empty.textContent = "No apps found in the app dirs.";
  empty.hidden = apps.length > 0;
  setText("apps-count", apps.length ? String(apps.length) : "");
  renderAppLiveCounts();
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function appCard(app) {
  const card = element("li", "app");
  card.dataset.testid = "app-card";
  card.dataset.app = app.name;

  const head = element("div", "app-head");
  const name = element("span", "app-name", app.name);
  name.dataset.testid = "app-name";
  name.title = app.name;
  const live = element("span", "app-live", "no child");
  live.dataset.testid = "app-live";
  head.append(name, live);

  const versions = element("div", "app-versions");
  for (const release of app.versions || []) {
    const chip = element("span", "version");
    chip.dataset.testid = "app-version";
    chip.append(document.createTextNode(release.version));
    const kind = element("span", "version-kind", release.error ? "error" : release.kind || "");
    chip.append(kind);
    if (release.error) {
      chip.dataset.error = "true";
      chip.title = release.error;
    } else {
      chip.title = [release.dir, release.entrypoint].filter(Boolean).join("\n");
    }
    versions.append(chip);
  }

  const body = element("div", "app-body");
  const button = element("button", "button button-danger", "Retire all");
  button.type = "button";
  button.dataset.testid = "retire-app";
  button.dataset.app = app.name;
  button.setAttribute("aria-label", `Retire every child of ${app.name}`);
  button.disabled = true;
  button.addEventListener("click", () => retireApp(app.name, button));
  body.append(versions, button);

  card.append(head, body);
  return card;
}

function renderAppLiveCounts() {
  const counts = new Map();
  const workers = (page.lastStats && page.lastStats.workers) || [];
  for (const worker of workers) {
    if (worker.state === "retiring" || worker.state === "terminated") continue;
    counts.set(worker.app, (counts.get(worker.app) || 0) + 1);
  }
  for (const card of byTestId("apps-list").children) {
    const count = counts.get(card.dataset.app) || 0;
    const live = byTestId("app-live", card);
    const text = count === 0 ? "no child" : count === 1 ? "1 child" : `${count} children`;
    if (live.textContent !== text) live.textContent = text;
    live.dataset.live = String(count > 0);
    const button = byTestId("retire-app", card);
    if (button.dataset.busy !== "true") button.disabled = count === 0;
  }
}

async function retireApp(name, button) {
  button.disabled = true;
  button.dataset.busy = "true";
  const path = name.split("/").map(encodeURIComponent).join("/");
  try {
    const result = await api(`apps/${path}/retire`, { method: "POST" });
    const count = Number(result && result.retired) || 0;
    toast(
      count === 0
        ? `No live child of ${name} to retire`
        : `Retiring ${count} ${count === 1 ? "child" : "children"} of ${name}`,
    );
  } catch (error) {
    toast(`Could not retire ${name}: ${error.message}`, "error");
  } finally {
    delete button.dataset.busy;
    renderAppLiveCounts();
  }
}

// ---------------------------------------------------------------------------
// Live children

const COLUMNS = [
  "app",
  "pid",
  "state",
  "age",
  "idle",
  "requests",
  "inFlight",
  "errors",
  "latency",
  "rss",
  "actions",
];
const NUMERIC = new Set(["pid", "age", "idle", "requests", "inFlight", "errors", "latency", "rss"]);

function createRow(worker) {
  const row = element("tr");
  row.dataset.testid = "worker-row";
  row.dataset.workerId = String(worker.id);
  const cells = {};
  for (const column of COLUMNS) {
    const cell = element("td", NUMERIC.has(column) ? "num" : "");
    cell.dataset.testid = `worker-${column.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    cells[column] = cell;
    row.append(cell);
  }
  const app = element("span", "worker-app", worker.app);
  const version = element("span", "worker-version", `@${worker.version}`);
  cells.app.append(app, version);
  cells.pid.classList.add("worker-pid");
  const badge = element("span", "badge");
  cells.state.append(badge);
  const button = element("button", "button button-danger", "Retire");
  button.type = "button";
  button.dataset.testid = "retire-worker";
  button.addEventListener("click", () => retireWorker(row, button));
  cells.actions.append(button);
  row.cells_ = cells;
  row.badge_ = badge;
  row.button_ = button;
  return row;
}

function updateRow(row, worker) {
  const cells = row.cells_;
  const label = `${worker.app}@${worker.version}`;
  row.dataset.label = label;
  row.dataset.app = worker.app;
  row.dataset.pid = String(worker.pid);
  row.dataset.state = worker.state;
  cells.app.title = label;
  row.button_.setAttribute("aria-label", `Retire ${label} (pid ${worker.pid})`);
  setCell(cells.pid, String(worker.pid));
  if (row.badge_.textContent !== worker.state) {
    row.badge_.textContent = worker.state;
    row.badge_.dataset.state = worker.state;
  }
  setCell(cells.age, formatDuration(worker.ageSeconds));
  setCell(cells.idle, formatDuration(worker.idleSeconds));
  setCell(cells.requests, formatInt(worker.requests));
  setCell(cells.inFlight, formatInt(worker.inFlight));
  setCell(cells.errors, formatInt(worker.errors));
  cells.errors.classList.toggle("errors-nonzero", Number(worker.errors) > 0);
  setCell(cells.latency, Number(worker.requests) > 0 ? formatMs(worker.avgResponseMs) : "–");
  setCell(cells.rss, formatMegabytes(worker.rssBytes));
  const retiring = worker.state === "retiring" || worker.state === "terminated";
  const busy = retiring || row.dataset.retireRequested === "true";
  row.button_.disabled = busy;
  const text = busy ? "Retiring…" : "Retire";
  if (row.button_.textContent !== text) row.button_.textContent = text;
}

function setCell(cell, text) {
  if (cell.textContent !== text) cell.textContent = text;
}

function renderWorkers(workers) {
  const body = byTestId("workers-body");
  const ids = new Set(workers.map((worker) => String(worker.id)));
  for (const [id, row] of page.rows) {
    if (!ids.has(id)) {
      row.remove();
      page.rows.delete(id);
    }
  }
  let previous = null;
  for (const worker of workers) {
    const id = String(worker.id);
    let row = page.rows.get(id);
    if (!row) {
      row = createRow(worker);
      page.rows.set(id, row);
    }
    updateRow(row, worker);
    const expected = previous ? previous.nextElementSibling : body.firstElementChild;
    if (row !== expected) body.insertBefore(row, expected);
    previous = row;
  }
  if (page.lastStats) {
    setText("workers-empty", "No live children. An app's child starts on its first request.");
  }
  byTestId("workers-table").hidden = workers.length === 0;
  byTestId("workers-empty").hidden = workers.length > 0;
  setText("workers-count", workers.length ? String(workers.length) : "");
}

async function retireWorker(row, button) {
  const { workerId, label, pid } = row.dataset;
  row.dataset.retireRequested = "true";
  button.disabled = true;
  button.textContent = "Retiring…";
  try {
    await api(`workers/${encodeURIComponent(workerId)}/retire`, { method: "POST" });
    toast(`Retiring ${label} (pid ${pid})`);
  } catch (error) {
    delete row.dataset.retireRequested;
    button.disabled = false;
    button.textContent = "Retire";
    toast(`Could not retire ${label} (pid ${pid}): ${error.message}`, "error");
  }
}

// ---------------------------------------------------------------------------
// Toasts

function toast(message, kind = "ok") {
  const container = byTestId("toasts");
  const note = element("div", "toast", message);
  note.dataset.testid = "toast";
  note.dataset.kind = kind;
  container.append(note);
  while (container.children.length > 4) container.firstElementChild.remove();
  setTimeout(() => {
    note.dataset.leaving = "true";
    setTimeout(() => note.remove(), 350);
  }, TOAST_MS);
}

// ---------------------------------------------------------------------------
// Formatting

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

function formatInt(value) {
  const number = Number(value);
  return Number.isFinite(number) ? integer.format(number) : "–";
}

function formatRate(value) {
  const number = Number(value) || 0;
  if (number === 0) return "0";
  if (number < 10) return number.toFixed(1);
  return integer.format(Math.round(number));
}

function formatMs(value) {
  const number = Number(value) || 0;
  if (number < 10) return `${number.toFixed(2)} ms`;
  if (number < 100) return `${number.toFixed(1)} ms`;
  if (number < 10_000) return `${Math.round(number)} ms`;
  return `${(number / 1000).toFixed(1)} s`;
}

function formatMegabytes(bytes) {
  const number = Number(bytes) || 0;
  if (number === 0) return "–";
  return `${(number / 1_048_576).toFixed(1)} MB`;
}

function formatDuration(seconds) {
  const total = Math.max(0, Math.floor(Number(seconds) || 0));
  const days = Math.floor(total / 86_400);
  const hours = Math.floor((total % 86_400) / 3_600);
  const minutes = Math.floor((total % 3_600) / 60);
  const rest = total % 60;
  if (days) return `${days}d ${hours}h`;
  if (hours) return `${hours}h ${String(minutes).padStart(2, "0")}m`;
  if (minutes) return `${minutes}m ${String(rest).padStart(2, "0")}s`;
  return `${rest}s`;
}

// ---------------------------------------------------------------------------
// Start

function start() {
  byTestId("key-form").addEventListener("submit", onKeySubmit);
  const redraw = () => renderCharts();
  if ("ResizeObserver" in window) {
    const observer = new ResizeObserver(redraw);
    observer.observe(byTestId("rps-chart"));
    observer.observe(byTestId("latency-chart"));
  } else {
    window.addEventListener("resize", redraw);
  }
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redraw);
  renderCharts();
  renderWorkers([]);
  loadApps();
  setInterval(loadApps, APPS_EVERY_MS);
  setInterval(watchForStalls, 1_000);
  startLive();
}

start();

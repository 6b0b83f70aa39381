// timnode dashboard: polls /admin/status (bearer token) and /metrics (Prometheus text)
// every POLL_MS and draws figures and small canvas charts. No libraries, no build step;
// data only ever reaches the page through textContent.

const POLL_MS = 2000;
const HISTORY = 90; // points kept per chart (3 minutes at 2 s)
const TOKEN_KEY = "timnode.dashboard.token";

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ Prometheus text format

/** Parse the text exposition format into Map(name -> [{labels, value}]). */
export function parseMetrics(text) {
  const out = new Map();
  const labelRe = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    let name, labelText = "", rest;
    const brace = line.indexOf("{");
    const space = line.indexOf(" ");
    if (brace >= 0 && (space < 0 || brace < space)) {
      const close = line.lastIndexOf("}");
      name = line.slice(0, brace);
      labelText = line.slice(brace + 1, close);
      rest = line.slice(close + 1).trim();
    } else {
      name = line.slice(0, space);
      rest = line.slice(space + 1).trim();
    }
    const value = parseFloat(rest.split(/\s+/)[0]);
    const labels = {};
    for (const m of labelText.matchAll(labelRe)) {
      labels[m[1]] = m[2].replace(/\\"/g, '"').replace(/\\n/g, "\n").replace(/\\\\/g, "\\");
    }
    if (!out.has(name)) out.set(name, []);
    out.get(name).push({ labels, value });
  }
  return out;
}

/** Sum of a family's samples whose labels pass `keep`. */
export function sum(metrics, name, keep = () => true) {
  return (metrics.get(name) || []).filter((s) => keep(s.labels)).reduce((a, s) => a + s.value, 0);
}

/** Non-cumulative histogram over all label sets: [{le, count}] in bucket order. */
export function histogram(metrics, name) {
  const byLe = new Map();
  for (const s of metrics.get(name + "_bucket") || []) {
    const le = s.labels.le;
    byLe.set(le, (byLe.get(le) || 0) + s.value);
  }
  const bounds = [...byLe.keys()].sort((a, b) => (a === "+Inf" ? 1 : b === "+Inf" ? -1 : parseFloat(a) - parseFloat(b)));
  let previous = 0;
  return bounds.map((le) => {
    const cumulative = byLe.get(le);
    const count = Math.max(0, cumulative - previous);
    previous = cumulative;
    return { le, count };
  });
}

// ------------------------------------------------------------------ formatting

function fmtInt(n) { return Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–"; }
function fmtRate(n) { return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2); }
function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
}
function fmtLe(le) {
  if (le === "+Inf") return "more";
  const s = parseFloat(le);
  return s < 1 ? (s * 1000).toFixed(s < 0.001 ? 1 : 0) + "ms" : s + "s";
}

// ------------------------------------------------------------------ charts (canvas)

function prepare(canvas) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "11px DejaVu Sans, sans-serif";
  return ctx;
}

/** series: [{values: number[], color, label}] sharing one y axis starting at 0. */
function drawLines(canvas, series, format = (v) => fmtRate(v)) {
  const ctx = prepare(canvas);
  const w = canvas.width, h = canvas.height, left = 48, bottom = 16, top = 8;
  const max = Math.max(1e-9, ...series.flatMap((s) => s.values)) * 1.15;
  ctx.strokeStyle = "#dde2e8";
  ctx.fillStyle = "#6b7685";
  for (let i = 0; i <= 3; i++) {
    const y = top + (h - top - bottom) * (1 - i / 3);
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(w, y); ctx.stroke();
    ctx.fillText(format((max * i) / 3), 2, y + 4);
  }
  let points = 0;
  for (const s of series) {
    const n = s.values.length;
    points = Math.max(points, n);
    if (n < 1) continue;
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    s.values.forEach((v, i) => {
      const x = left + ((w - left) * (HISTORY - n + i)) / (HISTORY - 1);
      const y = top + (h - top - bottom) * (1 - v / max);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
    ctx.lineWidth = 1;
  }
  canvas.dataset.points = String(points);
}

function drawBars(canvas, buckets) {
  const ctx = prepare(canvas);
  const w = canvas.width, h = canvas.height, bottom = 16, top = 8;
  const max = Math.max(1, ...buckets.map((b) => b.count));
  const slot = w / Math.max(1, buckets.length);
  buckets.forEach((b, i) => {
    const bh = ((h - top - bottom) * b.count) / max;
    ctx.fillStyle = "#2f6fed";
    ctx.fillRect(i * slot + 3, h - bottom - bh, slot - 6, bh);
    ctx.fillStyle = "#6b7685";
    if (slot >= 40 || i % 2 === 0) ctx.fillText(fmtLe(b.le), i * slot + 3, h - 3);
    if (b.count) ctx.fillText(fmtInt(b.count), i * slot + 3, Math.max(top + 9, h - bottom - bh - 3));
  });
  canvas.dataset.points = String(buckets.reduce((a, b) => a + b.count, 0));
}

// ------------------------------------------------------------------ state and polling

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  previous: null, // {at, msgIn, msgOut, cpu}
  history: { in: [], out: [], conns: [], users: [], cpu: [], mem: [] },
  timer: null,
};

function push(list, value) {
  list.push(value);
  if (list.length > HISTORY) list.shift();
}

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function getJson(path) {
  const reply = await fetch(path, { headers: { Authorization: "Bearer " + state.token }, cache: "no-store" });
  if (!reply.ok) {
    let message = reply.statusText;
    try { message = (await reply.json()).error || message; } catch { /* not JSON */ }
    throw new HttpError(reply.status, message);
  }
  return reply.json();
}

async function getText(path) {
  const reply = await fetch(path, { cache: "no-store" });
  if (!reply.ok) throw new HttpError(reply.status, reply.statusText);
  return reply.text();
}

function render(status, metrics) {
  const now = performance.now();
  const msgIn = sum(metrics, "timnode_messages_total", (l) => l.kind !== "duplicate");
  const msgOut = sum(metrics, "timnode_deliveries_total");
  const cpu = sum(metrics, "process_cpu_seconds_total");
  const mem = sum(metrics, "process_resident_memory_bytes") || (status.process || {}).resident_memory_bytes || 0;
  const p = state.previous;
  let rateIn = 0, rateOut = 0, cpuPct = 0;
  if (p) {
    const dt = Math.max(0.001, (now - p.at) / 1000);
    rateIn = Math.max(0, msgIn - p.msgIn) / dt;
    rateOut = Math.max(0, msgOut - p.msgOut) / dt;
    cpuPct = (Math.max(0, cpu - p.cpu) / dt) * 100;
  }
  state.previous = { at: now, msgIn, msgOut, cpu };

  $("node-id").textContent = status.node || "";
  $("fig-connections").textContent = fmtInt(status.connections);
  $("fig-online").textContent = fmtInt(status.online_users);
  $("fig-sessions").textContent = fmtInt(status.sessions);
  $("fig-rate-in").textContent = p ? fmtRate(rateIn) : "…";
  $("fig-rate-in").dataset.value = String(rateIn);
  $("fig-rate-out").textContent = p ? fmtRate(rateOut) : "…";
  $("fig-rate-out").dataset.value = String(rateOut);
  $("fig-deliveries").textContent = fmtInt(msgOut);
  $("fig-acks").textContent = fmtInt(sum(metrics, "timnode_delivery_acks_total"));
  $("fig-peers").textContent = fmtInt(status.peers);
  const kinds = $("fig-peer-kinds");
  kinds.replaceChildren();
  const byKind = Object.entries(status.peers_by_kind || {}).sort();
  for (const [kind, count] of byKind.length ? byKind : [["no links", ""]]) {
    const li = document.createElement("li");
    li.textContent = count === "" ? kind : `${kind}: ${count}`;
    li.dataset.kind = kind;
    kinds.append(li);
  }
  const dht = status.dht_summary || {};
  $("fig-dht").textContent = dht.enabled ? fmtInt(dht.routing_table) : "off";
  $("fig-dht-sub").textContent = dht.enabled ? `contacts, ${fmtInt(dht.stored_records)} records stored` : "not enabled";
  $("fig-store").textContent = (status.store || {}).backend || "–";
  $("fig-shards").textContent = fmtInt(status.store_shards);
  $("fig-cpu").textContent = p ? cpuPct.toFixed(1) + " %" : "…";
  $("fig-memory").textContent = fmtBytes(mem);

  const h = state.history;
  if (p) {
    push(h.in, rateIn); push(h.out, rateOut); push(h.cpu, cpuPct);
  }
  push(h.conns, status.connections || 0); push(h.users, status.online_users || 0); push(h.mem, mem);
  drawLines($("chart-rate"), [
    { values: h.in, color: "#2f6fed" },
    { values: h.out, color: "#e8833a" },
  ]);
  drawLines($("chart-conns"), [
    { values: h.conns, color: "#2f6fed" },
    { values: h.users, color: "#2eb25c" },
  ], fmtInt);
  drawBars($("chart-latency"), histogram(metrics, "timnode_request_duration_seconds"));
  const memMax = Math.max(1, ...h.mem);
  drawLines($("chart-cpu"), [
    { values: h.cpu, color: "#e8833a" },
    { values: h.mem.map((m) => (m / memMax) * Math.max(1, ...h.cpu)), color: "#8a5cd6" },
  ], (v) => v.toFixed(0) + "%");
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  $("updated").dataset.state = "ok";
}

async function poll() {
  state.timer = null;
  try {
    const [status, text] = await Promise.all([getJson("/admin/status"), getText("/metrics")]);
    $("poll-error").hidden = true;
    render(status, parseMetrics(text));
  } catch (err) {
    if (err instanceof HttpError && err.status === 401) {
      logout("The node refused this token.");
      return;
    }
    $("poll-error").textContent = err instanceof HttpError && err.status === 429
      ? "Too many wrong tokens were tried; the node refuses admin requests for a moment."
      : `Cannot read the node: ${err.message || err}`;
    $("poll-error").hidden = false;
    $("updated").dataset.state = "error";
  }
  if (state.token) state.timer = setTimeout(poll, POLL_MS);
}

function show(view) {
  $("dash").dataset.view = view;
  $("login-view").hidden = view !== "login";
  $("main-view").hidden = view !== "main";
}

function logout(message = "") {
  if (state.timer) clearTimeout(state.timer);
  state.timer = null;
  state.token = "";
  state.previous = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $("login-error").textContent = message;
  $("login-error").hidden = !message;
  show("login");
}

async function login(event) {
  event.preventDefault();
  const token = $("token-input").value.trim();
  if (!token) return;
  state.token = token;
  try {
    await getJson("/admin/status");
  } catch (err) {
    state.token = "";
    $("login-error").textContent = err instanceof HttpError && err.status === 401
      ? "Wrong token."
      : err instanceof HttpError && err.status === 404
        ? "This node has no admin API (start it with --admin-token)."
        : `Cannot log in: ${err.message || err}`;
    $("login-error").hidden = false;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token-input").value = "";
  start();
}

function start() {
  $("login-error").hidden = true;
  show("main");
  poll();
}

$("login-form").addEventListener("submit", login);
$("logout-btn").addEventListener("click", () => logout());
if (state.token) start(); else show("login");

// A small line chart of packed bytes over time, drawn as inline SVG at the box's real width.
// The past comes from the server (the running total at each recorded piece), so a fresh load
// already has a line; live samples from the polled preparation status extend it to now and are
// kept in the tab's session storage.

import { request } from "./client.js";
import { formatBytes } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const STORE_KEY = "dataset-worker.packed-samples";
const MAX_SAMPLES = 720; // an hour at one sample every 5 s
const MIN_GAP_MS = 4000;
const HISTORY_PATH = "/api/packed-history?points=300";
const DAY_MS = 24 * 60 * 60 * 1000;

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

export class PackedChart {
  constructor(box, caption) {
    this.box = box;
    this.caption = caption;
    this.samples = load();
    this.history = []; // {t, v} from the server, oldest first
    this.historyLoaded = false;
    new ResizeObserver(() => this.draw()).observe(box);
  }

  /** Load the history on each sign-in (the panels' start/stop protocol). */
  start() {
    this.loadHistory();
  }

  stop() {}

  async loadHistory() {
    try {
      const reply = await request(HISTORY_PATH);
      this.history = (reply.points || []).map((p) => ({ t: Date.parse(p.time), v: Number(p.bytes) }));
    } catch (err) {
      // Without history the live samples still draw a line; say why it starts late.
      console.warn("packed-bytes history unavailable:", err.message);
      this.history = [];
    }
    this.historyLoaded = true;
    this.draw();
  }

  /** The history, then the live samples taken after its last point. */
  series() {
    const last = this.history[this.history.length - 1];
    if (!last) return this.samples;
    return [...this.history, ...this.samples.filter((s) => s.t > last.t)];
  }

  /** Record the current total of packed bytes (at most one sample per few seconds). */
  add(bytes, now = Date.now()) {
    // Points stay at least MIN_GAP_MS apart; the newest one moves until the gap is reached.
    const before = this.samples[this.samples.length - 2];
    if (before && now - before.t < MIN_GAP_MS) this.samples.pop();
    this.samples.push({ t: now, v: bytes });
    if (this.samples.length > MAX_SAMPLES) this.samples.splice(0, this.samples.length - MAX_SAMPLES);
    try {
      sessionStorage.setItem(STORE_KEY, JSON.stringify(this.samples));
    } catch {
      // Storage full or disabled: the chart still works for this page view.
    }
    this.draw();
  }

  draw() {
    const width = Math.max(240, Math.floor(this.box.clientWidth));
    const height = 150;
    const pad = { left: 64, right: 12, top: 10, bottom: 24 };
    const samples = this.series();
    const last = samples[samples.length - 1];
    this.caption.textContent = last ? `${formatBytes(last.v)} of data packed` : "";
    this.box.setAttribute(
      "aria-label",
      last ? `Data bytes packed over time; now ${formatBytes(last.v)}` : "Data bytes packed over time; no data yet",
    );
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "chart-svg" });
    if (samples.length < 2) {
      const empty = this.historyLoaded && !last?.v ? "Nothing packed yet" : "Collecting samples…";
      root.append(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "chart-empty" }, empty));
      this.box.replaceChildren(root);
      return;
    }
    const t0 = samples[0].t;
    const t1 = Math.max(last.t, t0 + 1);
    root.setAttribute("data-from", new Date(t0).toISOString()); // where the line starts (tests)
    const top = niceCeiling(Math.max(...samples.map((s) => s.v), 1024)); // at least 1 KiB: whole labels
    const x = (t) => pad.left + ((t - t0) / (t1 - t0)) * (width - pad.left - pad.right);
    const y = (v) => pad.top + (1 - v / top) * (height - pad.top - pad.bottom);

    for (const frac of [0, 0.5, 1]) {
      const gy = y(top * frac);
      root.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: gy, y2: gy, class: "chart-grid" }));
      root.append(svg("text", { x: pad.left - 6, y: gy + 4, "text-anchor": "end", class: "chart-label" }, formatBytes(top * frac)));
    }
    const points = samples.map((s) => `${x(s.t).toFixed(1)},${y(s.v).toFixed(1)}`);
    const base = y(0).toFixed(1);
    root.append(svg("path", { d: `M${x(t0)},${base}L${points.join("L")}L${x(last.t)},${base}Z`, class: "chart-area" }));
    root.append(svg("polyline", { points: points.join(" "), class: "chart-line" }));
    root.append(svg("circle", { cx: x(last.t), cy: y(last.v), r: 3, class: "chart-dot" }));
    // Seconds on the axis only when the samples span a few minutes; the date past a day.
    const clock = t1 - t0 < 10 * 60 * 1000 ? { second: "2-digit" } : {};
    const date = t1 - t0 >= DAY_MS ? { month: "short", day: "numeric" } : {};
    const time = (t) => new Date(t).toLocaleString([], { ...date, hour: "2-digit", minute: "2-digit", ...clock });
    root.append(svg("text", { x: pad.left, y: height - 6, class: "chart-label" }, time(t0)));
    root.append(svg("text", { x: width - pad.right, y: height - 6, "text-anchor": "end", class: "chart-label" }, time(last.t)));
    this.box.replaceChildren(root);
  }
}

/** 1, 2 or 5 times a power of two-ish step above `v`, so axis labels are round numbers. */
function niceCeiling(v) {
  const unit = 1024 ** Math.max(0, Math.floor(Math.log(v) / Math.log(1024)));
  const scaled = v / unit;
  for (const step of [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]) if (scaled <= step) return step * unit;
  return v;
}

function load() {
  try {
    const data = JSON.parse(sessionStorage.getItem(STORE_KEY) || "[]");
    return Array.isArray(data) ? data.filter((s) => typeof s.t === "number" && typeof s.v === "number") : [];
  } catch {
    return [];
  }
}

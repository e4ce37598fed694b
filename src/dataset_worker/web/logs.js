// The Logs panel: the worker's stdout and stderr, live over Server-Sent Events read with fetch
// (so the bearer token goes along), bounded to the last MAX_LINES lines, with follow and pause.

import { ApiError, streamEvents } from "./client.js";
import { byId, h } from "./dom.js";

const STREAM_PATH = "/api/dataset-worker/logs/stream?tail=200";
export const MAX_LINES = 2000;

export class LogsPanel {
  constructor() {
    this.view = byId("logs-view");
    this.state = byId("logs-state");
    this.count = byId("logs-count");
    this.pauseButton = byId("logs-pause");
    this.follow = byId("logs-follow");
    this.paused = false;
    this.pending = []; // lines that arrived while paused, bounded like the view
    this.controller = null;
    this.retryTimer = null;
    this.retryDelay = 1000;
    this.lastEventId = "";
    this.active = false;
    this.runId = null; // the run whose output is shown
    this.runRunning = false;
    this.partial = { stdout: "", stderr: "" }; // text after the last newline of each stream
    this.connection = "idle"; // idle | connecting | open
    this.autoScrolling = false;

    this.pauseButton.addEventListener("click", () => this.setPaused(!this.paused));
    byId("logs-clear").addEventListener("click", () => this.clear());
    byId("logs-stdout").addEventListener("change", (e) => this.view.classList.toggle("hide-stdout", !e.target.checked));
    byId("logs-stderr").addEventListener("change", (e) => this.view.classList.toggle("hide-stderr", !e.target.checked));
    this.follow.addEventListener("change", () => this.follow.checked && this.scrollToEnd());
    // Scrolling up to read stops following; scrolling back to the end resumes it.
    this.view.addEventListener("scroll", () => {
      if (this.autoScrolling) return;
      const atEnd = this.view.scrollHeight - this.view.scrollTop - this.view.clientHeight < 8;
      if (this.follow.checked !== atEnd) this.follow.checked = atEnd;
    });
  }

  start() {
    this.active = true;
    this.connect();
  }

  stop() {
    this.active = false;
    clearTimeout(this.retryTimer);
    this.controller?.abort();
    this.controller = null;
    this.connection = "idle";
  }

  /** The worker panel reports each status: connect at once when a worker appears. */
  workerChanged(status) {
    if (status.running && this.connection === "idle") this.reconnectSoon(0);
  }

  /** One SSE event: `run` {runId, pid, running}, or `stdout`/`stderr` {text, offset, nextOffset}. */
  handleEvent(event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    if (event.event === "run") {
      this.flushPartials();
      if (data.runId !== this.runId) {
        if (this.runId !== null) this.appendLines([meta(`run ${data.runId} · worker ${data.pid} started`)]);
        this.runId = data.runId;
      } else if (this.runRunning && !data.running) {
        this.appendLines([meta(`worker ${data.pid} exited`)]);
      }
      this.runRunning = data.running;
      if (data.running) this.setState("Live", "ok");
      else this.setState("Worker not running", "idle");
    } else if (event.event === "stdout" || event.event === "stderr") {
      const [lines, rest] = splitChunk(this.partial[event.event], String(data.text ?? ""));
      this.partial[event.event] = rest;
      this.appendLines(lines.map((text) => ({ stream: event.event, text })));
    }
  }

  /** Show the unfinished last line of each stream (the output ended without a newline). */
  flushPartials() {
    for (const stream of ["stdout", "stderr"]) {
      if (this.partial[stream]) this.appendLines([{ stream, text: this.partial[stream] }]);
      this.partial[stream] = "";
    }
  }

  setState(text, kind) {
    this.state.textContent = text;
    this.state.className = `pill pill-${kind}`;
  }

  async connect() {
    if (!this.active) return;
    clearTimeout(this.retryTimer);
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.connection = "connecting";
    this.setState("Connecting", "idle");
    try {
      await streamEvents(STREAM_PATH, {
        signal: controller.signal,
        lastEventId: this.lastEventId,
        onOpen: () => {
          this.connection = "open";
          this.retryDelay = 1000;
          this.setState("Connected", "idle");
        },
        onEvent: (event) => {
          if (event.id) this.lastEventId = event.id;
          this.handleEvent(event);
        },
      });
      if (controller.signal.aborted) return;
      this.flushPartials();
      this.setState("Reconnecting", "warn");
    } catch (err) {
      if (controller.signal.aborted) return;
      if (err instanceof ApiError && err.status === 404) this.setState("No worker has run yet", "idle");
      else if (err instanceof ApiError && err.status === 401) return;
      else this.setState("Reconnecting", "warn");
    }
    this.connection = "idle";
    this.reconnectSoon(this.retryDelay);
    this.retryDelay = Math.min(this.retryDelay * 2, 10000);
  }

  reconnectSoon(delay) {
    clearTimeout(this.retryTimer);
    if (this.active) this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  appendLines(lines) {
    if (!lines.length) return;
    if (this.paused) {
      this.pending.push(...lines);
      if (this.pending.length > MAX_LINES) this.pending.splice(0, this.pending.length - MAX_LINES);
      this.showCount();
      return;
    }
    const fragment = document.createDocumentFragment();
    for (const line of lines.slice(-MAX_LINES)) {
      fragment.append(h("div", { class: `line line-${line.stream}` }, line.text || " "));
    }
    this.view.append(fragment);
    let excess = this.view.childElementCount - MAX_LINES;
    while (excess-- > 0) this.view.firstElementChild.remove();
    this.showCount();
    if (this.follow.checked) this.scrollToEnd();
  }

  scrollToEnd() {
    this.autoScrolling = true;
    this.view.scrollTop = this.view.scrollHeight;
    requestAnimationFrame(() => {
      this.autoScrolling = false;
    });
  }

  setPaused(paused) {
    this.paused = paused;
    this.pauseButton.setAttribute("aria-pressed", String(paused));
    this.pauseButton.textContent = paused ? "Resume" : "Pause";
    if (!paused && this.pending.length) {
      const lines = this.pending;
      this.pending = [];
      this.appendLines(lines);
    }
    this.showCount();
  }

  clear() {
    this.view.replaceChildren();
    this.pending = [];
    this.showCount();
  }

  showCount() {
    const shown = this.view.childElementCount;
    const waiting = this.pending.length ? ` · ${this.pending.length} waiting` : "";
    this.count.textContent = `${shown} line${shown === 1 ? "" : "s"}${waiting}`;
  }
}

function meta(text) {
  return { stream: "meta", text: `── ${text} ──` };
}

/** Split `carry + text` into whole lines and the unfinished rest (kept for the next chunk). */
export function splitChunk(carry, text) {
  const parts = (carry + text).split("\n");
  const rest = parts.pop();
  return [parts.map((line) => line.replace(/\r$/, "")), rest];
}

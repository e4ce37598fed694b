// The Worker panel: status (pid, ticking uptime, effective config, last run), start and stop.

import { request } from "./client.js";
import { byId, h, replace } from "./dom.js";
import { clearErrors, showError } from "./fields.js";
import { formatTime, formatUptime, parseGoDuration, secondsBetween } from "./format.js";
import { Poller } from "./poll.js";

const STATUS_PATH = "/api/dataset-worker/status";

// Labels for the effective config, in the order of docs/api.md#start-the-worker; unknown keys follow as-is.
const CONFIG_LABELS = {
  concurrency: "Concurrency",
  enableScan: "Scan",
  enablePack: "Pack",
  enableDag: "DAG",
  exitOnComplete: "Exit when done",
  exitOnError: "Exit on error",
  minInterval: "Min interval",
  maxInterval: "Max interval",
  maxAttempts: "Max attempts",
};

// The manager's states (supervisord-like); "exited" is a worker that ended by itself.
const STATE_LABELS = {
  stopped: "Stopped",
  starting: "Starting",
  running: "Running",
  stopping: "Stopping",
  exited: "Stopped",
  fatal: "Failed to start",
};

const SIGNAL_NAMES = { 1: "SIGHUP", 2: "SIGINT", 9: "SIGKILL", 15: "SIGTERM", 6: "SIGABRT", 11: "SIGSEGV" };

export class WorkerPanel {
  /** `onStatus(status)` hears every fresh status (logs panel, top bar); `onError(err)` failures. */
  constructor({ onStatus, onError }) {
    this.onStatus = onStatus;
    this.onError = onError;
    this.status = null;
    this.uptimeBase = null; // [seconds at poll, performance.now() at poll]
    this.flashFor = null; // the running state the current action message belongs to
    this.poller = new Poller(() => this.refresh(), 2000);
    this.ticker = null;

    this.startForm = byId("start-form");
    this.stopForm = byId("stop-form");
    this.startForm.addEventListener("submit", (e) => this.submitStart(e));
    this.startForm.addEventListener("reset", () => clearErrors(this.startForm));
    this.stopForm.addEventListener("submit", (e) => this.submitStop(e));
  }

  start() {
    this.poller.start();
    this.ticker = setInterval(() => this.tick(), 1000);
  }

  stop() {
    this.poller.stop();
    clearInterval(this.ticker);
  }

  async refresh() {
    let status;
    try {
      status = await request(STATUS_PATH);
    } catch (err) {
      if (err.status !== 401) this.onError(err);
      return;
    }
    this.render(status);
  }

  render(status) {
    this.status = status;
    const running = Boolean(status.running);
    const state = byId("worker-state");
    state.textContent = STATE_LABELS[status.state] || (running ? "Running" : "Stopped");
    state.className = `pill ${status.state === "fatal" ? "pill-warn" : running ? "pill-ok" : "pill-idle"}`;
    byId("worker-pid").textContent = running && status.pid ? String(status.pid) : "—";
    byId("worker-started").textContent = running ? formatTime(status.startTime) : "—";

    // The server rounds uptime to seconds: re-base the local clock only when it drifted, so the
    // ticking display never steps backwards.
    const uptime = running ? (parseGoDuration(status.uptime) ?? secondsBetween(status.startTime)) : null;
    const local = this.uptimeNow();
    if (uptime === null) this.uptimeBase = null;
    else if (local === null || Math.abs(local - uptime) > 1.5) this.uptimeBase = [uptime, performance.now()];
    this.tick();

    byId("worker-running").hidden = !running;
    this.startForm.hidden = running;
    if (running) this.renderConfig(status.config || {});
    this.renderLastRun(running ? null : status.lastRun, running ? null : status.error);
    // "Worker started" is stale once it stopped (and "stopped" once another one runs).
    if (this.flashFor !== null && running !== this.flashFor) this.flash("", null);
    this.onStatus(status);
  }

  uptimeNow() {
    if (!this.uptimeBase) return null;
    const [seconds, at] = this.uptimeBase;
    return seconds + (performance.now() - at) / 1000;
  }

  tick() {
    const uptime = this.uptimeNow();
    byId("worker-uptime").textContent = uptime === null ? "—" : formatUptime(uptime);
  }

  renderConfig(config) {
    const keys = [
      ...Object.keys(CONFIG_LABELS).filter((k) => k in config),
      ...Object.keys(config).filter((k) => !(k in CONFIG_LABELS)),
    ];
    replace(
      byId("worker-config"),
      keys.map((key) =>
        h("div", { dataset: { key } }, h("dt", {}, CONFIG_LABELS[key] || key), h("dd", {}, showValue(config[key]))),
      ),
    );
  }

  renderLastRun(lastRun, error) {
    const box = byId("worker-lastrun");
    if (error) {
      box.hidden = false;
      box.className = "notice notice-warn";
      replace(box, h("strong", {}, "The last start failed"), ": ", error);
      return;
    }
    if (!lastRun) {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    const took = secondsBetween(lastRun.startTime, lastRun.endTime);
    const ok = lastRun.exitCode === 0 || lastRun.exitCode === 130; // 130: stopped on request
    box.className = `notice ${ok ? "notice-ok" : "notice-warn"}`;
    replace(
      box,
      h("strong", {}, "Last run"),
      ` — pid ${lastRun.pid ?? "?"} ended ${formatTime(lastRun.endTime)}`,
      took === null ? "" : ` after ${formatUptime(took)}`,
      ": ",
      h("span", { id: "worker-exit" }, describeExit(lastRun)),
    );
  }

  formBody() {
    const form = this.startForm;
    const body = {};
    const concurrency = form.elements.concurrency.value.trim();
    // A text field, and non-numbers sent as typed, so the server's message names the rule.
    if (concurrency !== "") body.concurrency = /^-?\d+(\.\d+)?$/.test(concurrency) ? Number(concurrency) : concurrency;
    for (const name of ["enableScan", "enablePack", "enableDag", "exitOnComplete", "exitOnError"]) {
      body[name] = form.elements[name].checked;
    }
    for (const name of ["minInterval", "maxInterval"]) {
      const value = form.elements[name].value.trim();
      if (value !== "") body[name] = value;
    }
    return body;
  }

  async submitStart(event) {
    event.preventDefault();
    const form = this.startForm;
    clearErrors(form);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const reply = await request("/api/dataset-worker/start", { method: "POST", body: this.formBody() });
      this.stopForm.querySelector(".form-error").textContent = "";
      this.flash(`Worker started (pid ${reply.pid}).`, true);
      await this.poller.poke();
    } catch (err) {
      showError(form, err);
      if (err.status === 409) this.poller.poke();
    } finally {
      button.disabled = false;
    }
  }

  async submitStop(event) {
    event.preventDefault();
    const form = this.stopForm;
    clearErrors(form);
    const timeout = form.elements.timeout.value.trim();
    const query = timeout === "" ? "" : `?timeout=${encodeURIComponent(timeout)}`;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    button.textContent = "Stopping…";
    try {
      const reply = await request(`/api/dataset-worker/stop${query}`, { method: "POST" });
      this.startForm.querySelector(".form-error").textContent = "";
      // A clean stop is told by the "Last run" box; a kill deserves its own word.
      if (reply.forced) this.flash(`The grace period ran out: worker ${reply.pid} was killed (SIGKILL).`, false);
      else this.flash("", null);
    } catch (err) {
      showError(form, err);
    } finally {
      button.disabled = false;
      button.textContent = "Stop worker";
      await this.poller.poke();
    }
  }

  /** Show the outcome of the user's last action while the worker is still `running` (or not). */
  flash(message, running) {
    this.flashFor = running;
    const box = byId("worker-message");
    box.hidden = !message;
    box.textContent = message;
  }
}

function showValue(value) {
  if (value === true) return "yes";
  if (value === false) return "no";
  if (value === null || value === undefined) return "—";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

/** "exit code 0 (finished)", "killed by SIGKILL", "exit code 1 (error)". */
export function describeExit(lastRun) {
  if (lastRun.signal !== null && lastRun.signal !== undefined && lastRun.signal !== "") {
    const name = typeof lastRun.signal === "number" ? SIGNAL_NAMES[lastRun.signal] || `signal ${lastRun.signal}` : lastRun.signal;
    return `killed by ${name}`;
  }
  const code = lastRun.exitCode;
  if (code === null || code === undefined) return "exit status unknown";
  const meaning = { 0: "finished", 1: "error", 2: "bad flags", 130: "interrupted" }[code];
  return meaning ? `exit code ${code} (${meaning})` : `exit code ${code}`;
}

// The Workers panel: every worker thread registered in the database, on any machine, with its
// liveness (heartbeat age on the server's clock), the jobs it holds, and whether this server
// started it.

import { request } from "./client.js";
import { byId, h, replace } from "./dom.js";
import { formatTime } from "./format.js";
import { Poller } from "./poll.js";

export class WorkersPanel {
  constructor() {
    this.body = byId("workers-body");
    this.poller = new Poller(() => this.refresh(), 3000);
  }

  start() {
    this.poller.start();
  }

  stop() {
    this.poller.stop();
  }

  async refresh() {
    const error = byId("workers-error");
    let reply;
    try {
      reply = await request("/api/workers");
    } catch (err) {
      error.textContent = err.message;
      return;
    }
    error.textContent = "";
    const workers = reply.workers || [];
    replace(this.body, workers.map(workerRow));
    byId("workers-empty").hidden = workers.length > 0;
    byId("workers-stale-after").textContent = String(reply.staleAfter ?? 20);
    const alive = workers.filter((w) => w.alive).length;
    const stale = workers.length - alive;
    const summary = byId("workers-summary");
    summary.textContent = workers.length ? `${alive} alive${stale ? ` · ${stale} stale` : ""}` : "none";
    summary.className = `pill ${stale ? "pill-warn" : alive ? "pill-ok" : "pill-idle"}`;
  }
}

function workerRow(worker) {
  const jobs = worker.jobs || [];
  return h(
    "tr",
    { dataset: { workerId: worker.id, status: worker.status, managed: String(worker.managed) } },
    h("td", { "data-label": "Worker", class: "mono small", title: worker.id }, worker.id.slice(0, 8)),
    h("td", { "data-label": "Host" }, worker.hostname || "—"),
    h("td", { "data-label": "PID", class: "num" }, worker.pid ?? "—"),
    h("td", { "data-label": "Started", class: "hide-narrow" }, formatTime(worker.startedAt)),
    h("td", { "data-label": "Heartbeat" }, formatTime(worker.lastHeartbeat)),
    h("td", { "data-label": "Status" }, h("span", { class: `badge badge-${worker.status}` }, worker.status)),
    h("td", { "data-label": "Managed" }, worker.managed ? "this server" : "—"),
    h(
      "td",
      { "data-label": "Jobs" },
      jobs.length ? jobs.map((job) => h("span", { class: "held-job" }, `#${job.id} ${job.type} (${job.state})`)) : "—",
    ),
  );
}

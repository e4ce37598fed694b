// The Deals panel: deals proposed to storage providers (Curio Market 2.0) with where each
// stands and the SP's last answer, and the deal schedules the worker runs, with pause/resume.

import { request } from "./client.js";
import { byId, h, replace } from "./dom.js";
import { formatTime, shortCid } from "./format.js";
import { Poller } from "./poll.js";

const STATES = ["proposing", "accepted", "complete", "failed", "rejected"];
const BADGE = {
  proposing: "badge-processing",
  accepted: "badge-processing",
  complete: "badge-complete",
  failed: "badge-error",
  rejected: "badge-error",
};

export class DealsPanel {
  constructor() {
    this.body = byId("deals-body");
    this.schedulesBody = byId("schedules-body");
    this.filter = byId("deals-state");
    this.poller = new Poller(() => this.refresh(), 5000);
    this.filter.addEventListener("change", () => this.poller.poke());
  }

  start() {
    this.poller.start();
  }

  stop() {
    this.poller.stop();
  }

  async refresh() {
    const error = byId("deals-error");
    const state = this.filter.value;
    let deals;
    let schedules;
    try {
      [deals, schedules] = await Promise.all([
        request(`/api/deals?limit=200${state ? `&state=${encodeURIComponent(state)}` : ""}`),
        request("/api/schedules"),
      ]);
    } catch (err) {
      error.textContent = err.message;
      return;
    }
    error.textContent = "";
    replace(this.body, deals.map(dealRow));
    byId("deals-empty").hidden = deals.length > 0;
    replace(this.schedulesBody, schedules.map((s) => this.scheduleRow(s)));
    byId("schedules-wrap").hidden = schedules.length === 0;
    this.summarize(state ? null : deals);
  }

  summarize(deals) {
    const summary = byId("deals-summary");
    if (!deals) return; // a filtered list says nothing about the others
    const counts = STATES.map((s) => [s, deals.filter((d) => d.state === s).length]).filter(([, n]) => n);
    summary.textContent = counts.length ? counts.map(([s, n]) => `${n} ${s}`).join(" · ") : "none";
    const bad = counts.some(([s]) => s === "failed" || s === "rejected");
    summary.className = `pill ${bad ? "pill-warn" : deals.length ? "pill-ok" : "pill-idle"}`;
  }

  scheduleRow(schedule) {
    const paused = schedule.state === "paused";
    const action = paused ? "resume" : "pause";
    const button = h(
      "button",
      {
        type: "button",
        class: "btn btn-small",
        "aria-label": `${paused ? "Resume" : "Pause"} schedule ${schedule.id}`,
        onclick: async (event) => {
          event.currentTarget.disabled = true;
          try {
            await request(`/api/schedules/${schedule.id}/${action}`, { method: "POST" });
          } catch (err) {
            byId("deals-error").textContent = err.message;
          }
          this.poller.poke();
        },
      },
      paused ? "Resume" : "Pause",
    );
    const limits = [
      schedule.perDay ? `${schedule.perDay}/day` : null,
      schedule.total ? `${schedule.total} in all` : null,
    ].filter(Boolean);
    return h(
      "tr",
      { dataset: { schedule: String(schedule.id), state: schedule.state } },
      h("td", { "data-label": "Schedule", class: "num" }, `#${schedule.id}`),
      h("td", { "data-label": "Preparation" }, schedule.preparation),
      h("td", { "data-label": "Providers", class: "mono small" }, schedule.providers.map((p) => p.provider).join(", ")),
      h("td", { "data-label": "Replicas", class: "num" }, schedule.replicas),
      h("td", { "data-label": "Limits" }, limits.length ? limits.join(", ") : "—"),
      h("td", { "data-label": "Made", class: "num" }, schedule.dealsMade),
      h("td", { "data-label": "State" }, h("span", { class: `badge ${paused ? "badge-paused" : "badge-complete"}` }, schedule.state)),
      h("td", { "data-label": "Actions" }, button),
    );
  }
}

function dealRow(deal) {
  const answer = [deal.lastStatus, deal.lastReason].filter((x) => x !== null && x !== undefined && x !== "").join(" ");
  return h(
    "tr",
    { dataset: { deal: deal.ulid, state: deal.state } },
    h("td", { "data-label": "Deal", class: "mono small", title: deal.ulid }, `#${deal.id} ${deal.ulid.slice(-8)}`),
    h("td", { "data-label": "Preparation" }, deal.preparation || "—"),
    h("td", { "data-label": "Piece", class: "mono small", title: deal.pieceCid }, shortCid(deal.pieceCid)),
    h("td", { "data-label": "Provider", class: "mono" }, deal.provider),
    h(
      "td",
      { "data-label": "State" },
      h("span", { class: `badge ${BADGE[deal.state] || ""}` }, deal.state),
      deal.spState && deal.spState !== deal.state ? h("span", { class: "muted small sp-state" }, ` SP: ${deal.spState}`) : null,
    ),
    h("td", { "data-label": "Last answer", class: "deal-answer small" }, answer || "—"),
    h("td", { "data-label": "Updated", class: "hide-narrow" }, formatTime(deal.updatedAt)),
  );
}

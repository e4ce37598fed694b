// The Jobs table: newest first, filters, keyset paging by cursor, expandable errors, auto refresh.

import { request } from "./client.js";
import { byId, h, replace } from "./dom.js";
import { formatTime, formatTook, secondsBetween } from "./format.js";
import { Poller } from "./poll.js";
import { retryJobs } from "./retry.js";

export class JobsPanel {
  constructor() {
    this.filters = byId("jobs-filters");
    this.body = byId("jobs-body");
    this.cursors = [null]; // cursor of each page visited; the last one is the current page
    this.nextCursor = null;
    this.expanded = new Set(); // ids of jobs whose error is open, kept across refreshes
    this.requests = 0;
    this.poller = new Poller(() => this.refresh(), 3000);
    this.auto = byId("jobs-auto");

    this.filters.addEventListener("change", () => this.firstPage());
    this.filters.addEventListener("submit", (e) => {
      e.preventDefault();
      this.firstPage();
    });
    this.auto.addEventListener("change", () => (this.auto.checked ? this.poller.start() : this.poller.stop()));
    byId("jobs-first").addEventListener("click", () => this.firstPage());
    byId("jobs-prev").addEventListener("click", () => {
      if (this.cursors.length > 1) this.cursors.pop();
      this.refresh();
    });
    byId("jobs-next").addEventListener("click", () => {
      if (!this.nextCursor) return;
      this.cursors.push(this.nextCursor);
      this.refresh();
    });
  }

  start() {
    if (this.auto.checked) this.poller.start();
    else this.refresh();
  }

  stop() {
    this.poller.stop();
  }

  firstPage() {
    this.cursors = [null];
    this.refresh();
  }

  /** Offer the known preparation names in the filter, keeping the current choice. */
  setPreparations(names) {
    const select = byId("jobs-prep");
    const current = select.value;
    const known = [...select.options].slice(1).map((o) => o.value);
    if (known.join("\n") === names.join("\n")) return;
    replace(select, h("option", { value: "" }, "Any"), names.map((n) => h("option", { value: n }, n)));
    select.value = names.includes(current) ? current : "";
  }

  query() {
    const params = new URLSearchParams();
    for (const name of ["status", "type", "preparation", "limit"]) {
      const value = this.filters.elements[name].value;
      if (value) params.set(name, value);
    }
    const cursor = this.cursors[this.cursors.length - 1];
    if (cursor) params.set("cursor", cursor);
    return params.toString();
  }

  async refresh() {
    const error = byId("jobs-error");
    const ticket = ++this.requests; // only the newest request may draw (pages change under us)
    let page;
    try {
      page = await request(`/api/dataset-worker/jobs?${this.query()}`);
    } catch (err) {
      if (ticket === this.requests) error.textContent = err.message;
      return;
    }
    if (ticket !== this.requests) return;
    error.textContent = "";
    this.nextCursor = page.nextCursor || null;
    this.render(page.jobs || []);
  }

  render(jobs) {
    const rows = [];
    for (const job of jobs) {
      rows.push(this.row(job));
      if (job.error && this.expanded.has(job.id)) rows.push(errorRow(job));
    }
    // Auto refresh rebuilds the rows: keep keyboard focus on the same control.
    const focusKey = this.body.contains(document.activeElement) ? document.activeElement.dataset.focusKey : null;
    replace(this.body, rows);
    if (focusKey) this.body.querySelector(`[data-focus-key="${focusKey}"]`)?.focus();
    byId("jobs-empty").hidden = jobs.length > 0;
    const pageNo = this.cursors.length;
    byId("jobs-page").textContent = `Page ${pageNo}`;
    byId("jobs-prev").disabled = pageNo <= 1;
    byId("jobs-first").disabled = pageNo <= 1;
    byId("jobs-next").disabled = !this.nextCursor;
  }

  /** Open or close one job's error in place (no refetch, focus stays on the button). */
  toggleError(job, button) {
    const open = !this.expanded.has(job.id);
    if (open) this.expanded.add(job.id);
    else this.expanded.delete(job.id);
    button.setAttribute("aria-expanded", String(open));
    if (open) button.closest("tr").after(errorRow(job));
    else document.getElementById(`job-error-${job.id}`)?.remove();
  }

  /** Make the failed jobs of this job's type and preparation ready again, then refresh. */
  async retry(job, button) {
    button.disabled = true;
    const error = byId("jobs-error");
    try {
      const changed = await retryJobs(job.preparation, job.type);
      error.textContent = "";
      button.textContent = `Queued ${changed.length}`;
      this.poller.poke();
      if (!this.auto.checked) this.refresh();
    } catch (err) {
      error.textContent = err.message;
      button.disabled = false;
    }
  }

  row(job) {
    // Time taken for finished jobs, time so far for running ones; nothing for queued ones.
    const took = job.finished || job.status === "processing" ? secondsBetween(job.started, job.finished) : null;
    const actions = [];
    if (job.status === "error" && job.preparation) {
      actions.push(
        h(
          "button",
          {
            type: "button",
            class: "btn btn-small btn-retry",
            title: `Retry the failed ${job.type} jobs of ${job.preparation}`,
            dataset: { focusKey: `retry-${job.id}` },
            onclick: (event) => this.retry(job, event.currentTarget),
          },
          "Retry",
        ),
      );
    }
    if (job.error) {
      const open = this.expanded.has(job.id);
      actions.push(
        h(
          "button",
          {
            type: "button",
            class: "btn btn-small btn-quiet disclosure",
            "aria-expanded": String(open),
            title: "Show or hide the error message",
            "aria-controls": `job-error-${job.id}`,
            dataset: { focusKey: `error-${job.id}` },
            onclick: (event) => this.toggleError(job, event.currentTarget),
          },
          "Error",
        ),
      );
    }
    return h(
      "tr",
      { dataset: { jobId: job.id, status: job.status } },
      h("td", { class: "num", "data-label": "ID" }, String(job.id)),
      h("td", { "data-label": "Type" }, job.type),
      h("td", { "data-label": "Status" }, h("span", { class: `badge badge-${job.status}` }, job.status), attemptsNote(job)),
      h("td", { "data-label": "Preparation" }, job.preparation ?? "—"),
      workerCell(job),
      h("td", { class: "hide-narrow" }, formatTime(job.started)),
      h("td", { class: "hide-narrow" }, formatTime(job.finished)),
      h("td", { class: "hide-narrow num" }, took === null ? "—" : formatTook(took)),
      // On a phone each job is a card: its error is a row of the card, always shown.
      job.error ? h("td", { class: "only-narrow job-error-cell", "data-label": "Error" }, h("pre", { class: "error-text" }, job.error)) : null,
      h("td", { class: "row-actions", "data-label": actions.length ? "Actions" : "" }, actions),
    );
  }
}

/** The worker holding the job, else the last one that ran it (kept after the run), and its host. */
function workerCell(job) {
  const who = job.worker ?? job.lastWorker;
  const host = job.lastWorkerHost;
  const title = who ? `${who}${host ? ` on ${host}` : ""}` : "";
  const text = who ? `${String(who).slice(0, 8)}${host ? ` @ ${host}` : ""}` : "—";
  return h("td", { class: "hide-narrow mono small worker-cell", title }, text);
}

/** Failed attempts so far, and when a job waiting for a retry runs again. */
function attemptsNote(job) {
  if (!job.attempts) return null;
  const retry = job.status === "ready" && job.nextAttemptAt ? `, retry at ${formatTime(job.nextAttemptAt)}` : "";
  const words = `${job.attempts} failed ${job.attempts === 1 ? "attempt" : "attempts"}${retry}`;
  return h("span", { class: "attempts small muted", title: words }, ` ${words}`);
}

function errorRow(job) {
  return h(
    "tr",
    { class: "error-row", id: `job-error-${job.id}` },
    h("td", { colspan: "9" }, h("pre", { class: "error-text" }, job.error)),
  );
}

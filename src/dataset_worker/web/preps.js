// Preparations: list with progress, create form, start scan / daggen, pieces table.

import { request } from "./client.js";
import { byId, copyText, h, replace } from "./dom.js";
import { FileBrowser } from "./explore.js";
import { clearErrors, showError } from "./fields.js";
import { formatBytes, percent, shortCid } from "./format.js";
import { DeleteControl } from "./lifecycle.js";
import { Poller } from "./poll.js";
import { RetryControl, stagePill } from "./retry.js";
import { VerifyControl, loadConfig, pieceUrl, pieceUrlCell, storageMode } from "./verify.js";

const BASE = "/api/preparations";
const JOB_TYPES = ["scan", "pack", "daggen"];
const STATES = ["complete", "processing", "ready", "paused", "created", "error"];

const prepPath = (name) => `${BASE}/${encodeURIComponent(name)}`;

export class PrepsPanel {
  /** `onList(names)` hears the preparation names; `onPacked(bytes)` the total packed so far. */
  constructor({ onList, onPacked }) {
    this.onList = onList;
    this.onPacked = onPacked;
    this.cards = new Map(); // name -> PrepCard
    this.list = byId("preps-list");
    this.form = byId("prep-form");
    this.newButton = byId("prep-new");
    this.poller = new Poller(() => this.refresh(), 3000);

    this.newButton.addEventListener("click", () => this.showForm(this.form.hidden));
    byId("prep-cancel").addEventListener("click", () => this.showForm(false));
    this.form.addEventListener("submit", (e) => this.submitCreate(e));
  }

  start() {
    this.poller.start();
  }

  stop() {
    this.poller.stop();
  }

  showForm(show) {
    this.form.hidden = !show;
    this.newButton.setAttribute("aria-expanded", String(show));
    if (show) this.form.elements.name.focus();
    else {
      clearErrors(this.form);
      this.newButton.focus();
    }
  }

  async submitCreate(event) {
    event.preventDefault();
    const form = this.form;
    clearErrors(form);
    const body = { noDag: form.elements.noDag.checked, noFileHash: form.elements.noFileHash.checked };
    body.noAuto = form.elements.noAuto.checked;
    for (const name of ["name", "source", "output", "maxSize", "minPieceSize", "pieceSize"]) {
      const value = form.elements[name].value.trim();
      if (value !== "" || name === "name") body[name] = value;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await request(BASE, { method: "POST", body });
      form.reset();
      this.showForm(false);
      await this.poller.poke();
    } catch (err) {
      showError(form, err);
    } finally {
      button.disabled = false;
    }
  }

  async refresh() {
    const errorSlot = byId("preps-error");
    let preps;
    try {
      preps = await request(BASE);
    } catch (err) {
      errorSlot.textContent = err.message;
      return;
    }
    errorSlot.textContent = "";
    preps = Array.isArray(preps) ? preps : preps.preparations || [];
    const names = preps.map((p) => p.name);
    this.onList(names);
    byId("preps-empty").hidden = preps.length > 0;
    byId("chart-box").hidden = preps.length === 0;

    for (const [name, card] of this.cards) {
      if (!names.includes(name)) {
        card.el.remove();
        this.cards.delete(name);
      }
    }
    for (const prep of preps) {
      if (!this.cards.has(prep.name)) {
        const card = new PrepCard(prep, () => this.poller.poke());
        this.cards.set(prep.name, card);
        this.list.append(card.el);
      }
      this.cards.get(prep.name).prep = prep;
    }
    const statuses = await Promise.all(
      preps.map((prep) => request(prepPath(prep.name)).catch((err) => ({ failed: err }))),
    );
    let packed = 0;
    preps.forEach((prep, i) => {
      const summary = summarize(statuses[i]);
      packed += summary.bytesPacked;
      this.cards.get(prep.name).update(summary);
    });
    this.onPacked(packed);
  }
}

/** Normalise a preparation status reply: sizes, pieces, and job counts per type and state. */
export function summarize(status) {
  if (!status || status.failed) return { failed: status?.failed, jobs: {}, bytesScanned: 0, bytesPacked: 0 };
  const jobs = {};
  const add = (type, state, count) => {
    jobs[type] = jobs[type] || {};
    jobs[type][state] = (jobs[type][state] || 0) + Number(count || 0);
  };
  const raw = status.jobs ?? status.jobCounts ?? {};
  if (Array.isArray(raw)) {
    for (const item of raw) add(item.type, item.state ?? item.status, item.count ?? 1);
  } else {
    for (const [type, states] of Object.entries(raw)) {
      for (const [state, count] of Object.entries(states || {})) add(type, state, count);
    }
  }
  return {
    jobs,
    bytesScanned: Number(status.bytesScanned ?? 0),
    bytesPacked: Number(status.bytesPacked ?? 0),
    pieces: status.pieces ?? status.piecesCount ?? status.pieceCount ?? null,
    rootCid: status.rootCid ?? null,
    stage: status.stage ?? null,
    autoChain: status.autoChain ?? null,
    lastError: status.lastError ?? null,
  };
}

const queuedOrRunning = (counts) => Boolean(counts?.ready || counts?.processing);

/**
 * Why a start button would only re-queue finished work (or be refused), or null when it may be
 * pressed: the scan while it is queued or running; the DAG while it is queued or running, once
 * it is built (the API's ?force=true builds it again), or when the preparation has no DAG.
 */
export function startBlocked(kind, jobs, prep) {
  const counts = jobs?.[kind] || {};
  const what = kind === "scan" ? "The scan" : "DAG generation";
  if (queuedOrRunning(counts)) return `${what} is already ${counts.processing ? "running" : "queued"}.`;
  if (kind !== "daggen") return null;
  if (prep?.noDag) return "This preparation was created without a DAG (noDag).";
  if (counts.complete) return "The DAG is built: its DAG piece exists. The API's start-daggen?force=true builds it again.";
  return null;
}

class PrepCard {
  constructor(prep, onChange) {
    this.prep = prep;
    this.onChange = onChange;
    this.piecesOpen = false;
    this.lastPieceCount = null;
    this.failure = null; // the status error on show, cleared once the status loads again
    const id = `prep-${cssId(prep.name)}`;

    this.message = h("p", { class: "card-message", role: "status" });
    this.jobError = h("div", { class: "card-job-error", id: `${id}-job-error`, hidden: true });
    this.packedBar = progressBar(`${id}-packed`, "Data packed");
    this.scanButton = h("button", { type: "button", class: "btn btn-small", onclick: (e) => this.action("start-scan", "Scan", e.currentTarget) }, "Start scan");
    this.dagButton = h("button", { type: "button", class: "btn btn-small", onclick: (e) => this.action("start-daggen", "DAG generation", e.currentTarget) }, "Start daggen");
    this.jobsBox = h("div", { class: "job-bars" });
    this.facts = h("dl", { class: "facts facts-small" });
    this.piecesBox = h("div", { class: "pieces", id: `${id}-pieces`, hidden: true });
    this.piecesButton = h(
      "button",
      { type: "button", class: "btn btn-small", "aria-expanded": "false", "aria-controls": `${id}-pieces`, onclick: () => this.togglePieces() },
      "Pieces",
    );
    this.browser = new FileBrowser(prep.name, `${id}-files`, (open) => this.el.classList.toggle("browsing", open));
    this.deleter = new DeleteControl(prep.name, `${id}-delete`, () => onChange());
    this.retry = new RetryControl(prep.name, { say: (text, isError) => this.say(text, isError), onChange });
    this.verifier = new VerifyControl(prep.name, `${id}-verify`);
    this.stageSlot = h("span", { class: "stage-slot" }, stagePill(null));
    this.el = h(
      "li",
      { class: "prep", id, dataset: { name: prep.name } },
      h(
        "div",
        { class: "prep-head" },
        h("h3", {}, prep.name),
        this.stageSlot,
        h("span", { class: "muted small mono prep-paths" }, describePaths(prep)),
      ),
      this.facts,
      this.jobError,
      this.packedBar.el,
      this.jobsBox,
      h(
        "div",
        { class: "actions" },
        this.scanButton,
        this.dagButton,
        h(
          "button",
          {
            type: "button",
            class: "btn btn-small",
            title: "List the source again and re-plan unfinished packs around changed, grown, vanished and new files",
            onclick: (e) => this.action("rescan", "Rescan", e.currentTarget),
          },
          "Rescan",
        ),
        this.retry.button,
        this.piecesButton,
        this.verifier.button,
        this.browser.button,
        this.deleter.button,
      ),
      this.deleter.el,
      this.message,
      this.verifier.el,
      this.piecesBox,
      this.browser.el,
    );
  }

  update(summary) {
    if (summary.failed) {
      this.failure = summary.failed.message;
      this.say(this.failure, true);
      return;
    }
    if (this.failure !== null && this.message.textContent === this.failure) this.say("");
    this.failure = null;
    const { bytesScanned, bytesPacked } = summary;
    // Data bytes: the source files' bytes, not the CAR files' (those are in the pieces table).
    this.packedBar.set(percent(bytesPacked, bytesScanned), `${formatBytes(bytesPacked)} of ${formatBytes(bytesScanned)} of data`);
    replace(
      this.facts,
      fact("Data scanned", formatBytes(bytesScanned)),
      fact("Data packed", formatBytes(bytesPacked)),
      fact("Pieces", summary.pieces ?? "—"),
      fact("Max CAR size", formatBytes(this.prep.maxSize)),
      fact("File hash", this.prep.fileHash === false ? "off" : "sha256"),
      fact("Storage", storageMode(this.prep)),
      fact("Root CID", summary.rootCid ? h("span", { class: "mono", title: summary.rootCid }, shortCid(summary.rootCid)) : "—"),
    );
    replace(this.jobsBox, JOB_TYPES.map((type) => jobBar(type, summary.jobs[type] || {})));
    replace(this.stageSlot, stagePill(summary.stage, summary.autoChain));
    this.showJobError(summary.lastError);
    this.block(this.scanButton, startBlocked("scan", summary.jobs, this.prep));
    this.block(this.dagButton, startBlocked("daggen", summary.jobs, this.prep));
    // Once a scan is done, the Rescan button is the way to list the source again.
    this.scanButton.hidden = Boolean(summary.jobs.scan?.complete);
    this.retry.update(summary.jobs);
    this.piecesButton.textContent = summary.pieces ? `Pieces (${summary.pieces})` : "Pieces";
    if (this.piecesOpen && summary.pieces !== this.lastPieceCount) this.loadPieces();
    this.lastPieceCount = summary.pieces;
  }

  /** The newest job error of the preparation, or nothing once no job carries one. */
  showJobError(error) {
    this.jobError.hidden = !error;
    if (!error) return replace(this.jobError);
    const failed = error.state === "error";
    const attempts = `${error.attempts} failed ${error.attempts === 1 ? "attempt" : "attempts"}`;
    const head = failed ? `${error.type} job ${error.jobId} failed` : `${error.type} job ${error.jobId} waits for a retry (${attempts})`;
    replace(
      this.jobError,
      h("p", { class: "card-job-error-head" }, h("strong", {}, "Last job error: "), head),
      h("pre", { class: "error-text" }, error.message),
    );
  }

  /** Disable a start button that would only re-queue finished work, saying why. */
  block(button, why) {
    button.disabled = Boolean(why);
    if (why) {
      button.title = why;
      button.dataset.blocked = why;
    } else {
      button.removeAttribute("title");
      delete button.dataset.blocked;
    }
  }

  /** Show `text` under the card's buttons: the error colour for failures, else the success one. */
  say(text, isError = false) {
    this.message.textContent = text;
    this.message.classList.toggle("is-error", isError);
  }

  async action(verb, label, button) {
    button.disabled = true;
    try {
      const job = await request(`${prepPath(this.prep.name)}/${verb}`, { method: "POST" });
      this.say(`${label} queued (job ${job.id ?? "?"}, ${job.state ?? job.status ?? "ready"}).`);
      this.onChange();
    } catch (err) {
      this.say(err.message, true);
    } finally {
      button.disabled = Boolean(button.dataset.blocked);
    }
  }

  togglePieces() {
    this.piecesOpen = !this.piecesOpen;
    this.piecesButton.setAttribute("aria-expanded", String(this.piecesOpen));
    this.piecesBox.hidden = !this.piecesOpen;
    this.el.classList.toggle("open", this.piecesOpen);
    if (this.piecesOpen) this.loadPieces();
  }

  async loadPieces() {
    let pieces;
    try {
      pieces = await request(`${prepPath(this.prep.name)}/pieces`);
    } catch (err) {
      replace(this.piecesBox, h("p", { class: "form-error" }, err.message));
      return;
    }
    pieces = Array.isArray(pieces) ? pieces : pieces.pieces || [];
    if (!pieces.length) {
      replace(this.piecesBox, h("p", { class: "empty" }, "No pieces yet."));
      return;
    }
    const { publicUrl, pieceCidVersion } = await loadConfig();
    replace(this.piecesBox, piecesTable(pieces, publicUrl, pieceCidVersion));
  }
}

/** Piece links name the v1 piece CID, or the v2 one (FRC-0069) with `serve --piece-cid-version 2`. */
function piecesTable(pieces, publicUrl = null, pieceCidVersion = 1) {
  const columns = ["Piece CID", "Piece CID v2", "Type", "Piece size", "Root CID", "CAR size", ...(publicUrl ? ["URL"] : [])];
  const linked = (p) => (pieceCidVersion === 2 && p.pieceCidV2 ? p.pieceCidV2 : p.pieceCid);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "table pieces-table" },
      h("caption", { class: "visually-hidden" }, "Pieces"),
      h(
        "thead",
        {},
        h("tr", {}, columns.map((t) => h("th", { scope: "col" }, t))),
      ),
      h(
        "tbody",
        {},
        pieces.map((p) =>
          h(
            "tr",
            { dataset: { pieceCid: p.pieceCid } },
            h(
              "td",
              { "data-label": "Piece CID" },
              h("span", { class: "cid-cell" }, h("code", { class: "cid", title: p.pieceCid }, p.pieceCid), copyButton(p.pieceCid)),
            ),
            h(
              "td",
              { "data-label": "Piece CID v2" },
              p.pieceCidV2
                ? h("span", { class: "cid-cell" }, h("code", { class: "cid cid-v2", title: p.pieceCidV2 }, shortCid(p.pieceCidV2, 8)), copyButton(p.pieceCidV2, "Copy piece CID v2"))
                : "",
            ),
            h("td", { "data-label": "Type" }, p.pieceType ?? "data"),
            h("td", { class: "num", "data-label": "Piece size" }, formatBytes(p.pieceSize)),
            h("td", { "data-label": "Root CID" }, h("code", { class: "cid", title: p.rootCid ?? "" }, shortCid(p.rootCid, 10))),
            h("td", { class: "num", "data-label": "CAR size" }, formatBytes(p.fileSize ?? p.carSize)),
            publicUrl ? h("td", { "data-label": "URL" }, pieceUrlCell(pieceUrl(publicUrl, linked(p)))) : null,
          ),
        ),
      ),
    ),
  );
}

function copyButton(text, label = "Copy piece CID") {
  const button = h(
    "button",
    {
      type: "button",
      class: "btn btn-small btn-quiet copy",
      "aria-label": label,
      onclick: async () => {
        const ok = await copyText(text);
        button.textContent = ok ? "Copied" : "Copy failed";
        setTimeout(() => (button.textContent = "Copy"), 1500);
      },
    },
    "Copy",
  );
  return button;
}

function progressBar(id, label) {
  const bar = h("div", { class: "bar-fill" });
  const text = h("span", { class: "small muted", id: `${id}-text` });
  const track = h("div", {
    class: "bar",
    role: "progressbar",
    "aria-label": label,
    "aria-valuemin": "0",
    "aria-valuemax": "100",
    "aria-describedby": `${id}-text`,
  });
  track.append(bar);
  const el = h("div", { class: "progress" }, h("div", { class: "progress-label" }, h("span", {}, label), text), track);
  return {
    el,
    set(pct, caption) {
      bar.style.width = `${pct.toFixed(1)}%`;
      track.setAttribute("aria-valuenow", pct.toFixed(0));
      text.textContent = caption;
    },
  };
}

/** One job type: a stacked bar of states and the counts in words. */
function jobBar(type, counts) {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const states = [...STATES, ...Object.keys(counts).filter((s) => !STATES.includes(s))];
  const words = states.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`);
  const track = h("div", { class: "bar stacked", "aria-hidden": "true" });
  for (const state of states) {
    if (!counts[state]) continue;
    const seg = h("span", { class: `seg seg-${state}`, title: `${counts[state]} ${state}` });
    seg.style.width = `${percent(counts[state], total)}%`; // CSSOM, not a style attribute: CSP-safe
    track.append(seg);
  }
  return h(
    "div",
    { class: "job-bar", dataset: { type } },
    h("div", { class: "progress-label" }, h("span", {}, type), h("span", { class: "small muted job-counts" }, total ? words.join(" · ") : "no jobs")),
    track,
  );
}

function fact(label, value) {
  return h("div", { dataset: { fact: label } }, h("dt", {}, label), h("dd", {}, value));
}

function describePaths(prep) {
  const source = prep.source ?? prep.sourceStorages?.[0]?.path ?? prep.sourceStorages?.[0]?.name;
  const output = prep.output ?? prep.outputStorages?.[0]?.path ?? prep.outputStorages?.[0]?.name;
  return source ? `${source} → ${output ?? "inline"}` : "";
}

function cssId(name) {
  return name.replace(/[^A-Za-z0-9_-]/g, "_");
}

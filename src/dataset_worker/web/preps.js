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
  };
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
    this.packedBar = progressBar(`${id}-packed`, "Packed");
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
      this.packedBar.el,
      this.jobsBox,
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", class: "btn btn-small", onclick: (e) => this.action("start-scan", "Scan", e.currentTarget) }, "Start scan"),
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
        h("button", { type: "button", class: "btn btn-small", onclick: (e) => this.action("start-daggen", "DAG generation", e.currentTarget) }, "Start daggen"),
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
    this.packedBar.set(percent(bytesPacked, bytesScanned), `${formatBytes(bytesPacked)} of ${formatBytes(bytesScanned)} scanned`);
    replace(
      this.facts,
      fact("Scanned", formatBytes(bytesScanned)),
      fact("Packed", formatBytes(bytesPacked)),
      fact("Pieces", summary.pieces ?? "—"),
      fact("Max size", formatBytes(this.prep.maxSize)),
      fact("File hash", this.prep.fileHash === false ? "off" : "sha256"),
      fact("Storage", storageMode(this.prep)),
      fact("Root CID", summary.rootCid ? h("span", { class: "mono", title: summary.rootCid }, shortCid(summary.rootCid)) : "—"),
    );
    replace(this.jobsBox, JOB_TYPES.map((type) => jobBar(type, summary.jobs[type] || {})));
    replace(this.stageSlot, stagePill(summary.stage, summary.autoChain));
    this.retry.update(summary.jobs);
    this.piecesButton.textContent = summary.pieces ? `Pieces (${summary.pieces})` : "Pieces";
    if (this.piecesOpen && summary.pieces !== this.lastPieceCount) this.loadPieces();
    this.lastPieceCount = summary.pieces;
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
      button.disabled = false;
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
    const { publicUrl } = await loadConfig();
    replace(this.piecesBox, piecesTable(pieces, publicUrl));
  }
}

function piecesTable(pieces, publicUrl = null) {
  const columns = ["Piece CID", "Type", "Piece size", "Root CID", "CAR size", ...(publicUrl ? ["URL"] : [])];
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
            h("td", { "data-label": "Type" }, p.pieceType ?? "data"),
            h("td", { class: "num", "data-label": "Piece size" }, formatBytes(p.pieceSize)),
            h("td", { "data-label": "Root CID" }, h("code", { class: "cid", title: p.rootCid ?? "" }, shortCid(p.rootCid, 10))),
            h("td", { class: "num", "data-label": "CAR size" }, formatBytes(p.fileSize ?? p.carSize)),
            publicUrl ? h("td", { "data-label": "URL" }, pieceUrlCell(pieceUrl(publicUrl, p.pieceCid))) : null,
          ),
        ),
      ),
    ),
  );
}

function copyButton(text) {
  const button = h(
    "button",
    {
      type: "button",
      class: "btn btn-small btn-quiet copy",
      "aria-label": "Copy piece CID",
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

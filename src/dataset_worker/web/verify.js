// Verifying a preparation from its card (POST /api/preparations/{name}/verify, then polled), the
// card's storage mode (inline or CAR files), and piece links on the content provider
// (GET /api/config gives its public URL, `serve --public-url`).

import { request } from "./client.js";
import { copyText, h, replace } from "./dom.js";
import { formatBytes } from "./format.js";

const POLL_MS = 1000;
let configPromise = null;

/** The server's page settings, asked once per page load ({publicUrl, pieceCidVersion, version}). */
export function loadConfig() {
  configPromise ??= request("/api/config").catch(() => ({ publicUrl: null, pieceCidVersion: 1 }));
  return configPromise;
}

/** True when the preparation writes no CAR files (no output storage): pieces are rebuilt. */
export function isInline(prep) {
  const outputs = prep.outputStorages ?? (prep.output ? [prep.output] : []);
  return !outputs.length;
}

/** "inline" or "CAR files", for the card's facts. */
export function storageMode(prep) {
  return isInline(prep) ? "inline (no CAR files)" : "CAR files";
}

/** The piece's URL on the content provider, or null when no public URL is configured. */
export function pieceUrl(publicUrl, pieceCid) {
  return publicUrl ? `${publicUrl}/piece/${encodeURIComponent(pieceCid)}` : null;
}

/** A table cell's content: the piece URL as a link, with a copy button. */
export function pieceUrlCell(url) {
  const button = h(
    "button",
    {
      type: "button",
      class: "btn btn-small btn-quiet copy",
      "aria-label": "Copy piece URL",
      onclick: async () => {
        const ok = await copyText(url);
        button.textContent = ok ? "Copied" : "Copy failed";
        setTimeout(() => (button.textContent = "Copy"), 1500);
      },
    },
    "Copy",
  );
  const link = h("a", { class: "cid piece-url", href: url, title: url, rel: "noreferrer" }, url);
  return h("span", { class: "cid-cell" }, link, button);
}

/** The card's Verify button and the watched result below it. */
export class VerifyControl {
  constructor(name, id) {
    this.name = name;
    this.path = `/api/preparations/${encodeURIComponent(name)}/verify`;
    this.timer = null;
    this.el = h("div", { class: "verify-result", id, role: "status", hidden: true });
    this.button = h("button", { type: "button", class: "btn btn-small", onclick: () => this.start() }, "Verify");
    this.loadLatest();
  }

  async loadLatest() {
    try {
      const latest = await request(this.path);
      if (latest) this.show(latest);
    } catch {
      // No verification shown is fine: the button still works.
    }
  }

  async start() {
    this.button.disabled = true;
    try {
      this.show(await request(this.path, { method: "POST", body: { deep: false } }));
    } catch (err) {
      this.button.disabled = false;
      this.showText(err.message, true);
    }
  }

  /** Render a verification record; keep polling while it runs. */
  show(record) {
    clearTimeout(this.timer);
    const running = record.state === "running";
    this.button.disabled = running;
    this.el.hidden = false;
    this.el.dataset.state = record.state;
    replace(this.el, h("p", { class: "verify-line" }, describe(record)), problemList(record));
    this.el.classList.toggle("is-error", record.state === "problems" || record.state === "failed");
    if (running) this.timer = setTimeout(() => this.poll(record.id), POLL_MS);
  }

  showText(text, isError) {
    this.el.hidden = false;
    this.el.dataset.state = "error";
    this.el.classList.toggle("is-error", isError);
    replace(this.el, h("p", { class: "verify-line" }, text));
  }

  async poll(id) {
    try {
      this.show(await request(`${this.path}/${encodeURIComponent(id)}`));
    } catch (err) {
      this.button.disabled = false;
      this.showText(err.message, true);
    }
  }
}

function describe(record) {
  const summary = record.report?.summary;
  if (record.state === "running") {
    const p = record.progress;
    const done = p && p.total ? ` ${Math.floor((100 * p.done) / p.total)}%` : "";
    return `Verifying…${p ? ` ${p.stage}${done}` : ""}`;
  }
  if (record.state === "failed") return `Verification failed: ${record.error ?? "unknown error"}`;
  const checked = summary ? `${summary.piecesChecked} pieces, ${summary.blocks} blocks, ${formatBytes(summary.bytes)}` : "";
  const skipped = summary?.piecesSkipped ? ` (${summary.piecesSkipped} without CAR file skipped)` : "";
  if (record.state === "clean") return `Verified clean: ${checked}${skipped}.`;
  const count = summary?.problems ?? 0;
  return `Verification found ${count} ${count === 1 ? "problem" : "problems"} (${checked}${skipped}):`;
}

function problemList(record) {
  const problems = record.report?.problems ?? [];
  if (!problems.length) return null;
  return h(
    "ul",
    { class: "verify-problems", "aria-label": "Problems found" },
    problems.slice(0, 20).map((p) => h("li", {}, `${p.kind}: ${p.message}`, p.carPath ? h("span", { class: "mono small muted" }, ` ${p.carPath}`) : null)),
    problems.length > 20 ? h("li", { class: "muted" }, `… and ${problems.length - 20} more`) : null,
  );
}

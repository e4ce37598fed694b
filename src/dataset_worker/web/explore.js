// File browser of a preparation card: the source's folders as the scan recorded them, with each
// entry's size, CID, pieces and sha256. Names and CIDs go through textContent only (h()).

import { request } from "./client.js";
import { copyText, h, replace } from "./dom.js";
import { formatBytes, shortCid } from "./format.js";

const PAGE_SIZE = 100;
const PIECES_SHOWN = 3; // a file in more pieces shows "+N more" (all of them in the tooltip)

/** The API path of folder `segments` of preparation `name`. */
export function explorePath(name, segments) {
  const folder = segments.map(encodeURIComponent).join("/");
  return `/api/preparations/${encodeURIComponent(name)}/explore/${folder}`;
}

/** A small button that copies `text`; `label` names what it copies for screen readers. */
export function copyButton(text, label) {
  const button = h(
    "button",
    {
      type: "button",
      class: "btn btn-small btn-quiet copy",
      "aria-label": label,
      title: label,
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

export class FileBrowser {
  /** `onToggle(open)` hears the browser open and close (the card widens while it is open). */
  constructor(name, id, onToggle) {
    this.name = name;
    this.onToggle = onToggle;
    this.segments = [];
    this.cursor = null;
    this.shown = 0;
    this.request = 0; // answers to superseded requests are dropped
    this.button = h(
      "button",
      { type: "button", class: "btn btn-small", "aria-expanded": "false", "aria-controls": id, onclick: () => this.toggle() },
      "Browse files",
    );
    this.crumbs = h("ol", { class: "crumbs" });
    this.summary = h("div", { class: "explore-summary small muted", role: "status" });
    this.error = h("p", { class: "form-error", role: "alert" });
    this.rows = h("tbody");
    this.table = h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "table explore-table" },
        h("caption", { class: "visually-hidden" }, `Files of ${name}`),
        h("thead", {}, h("tr", {}, ["Name", "Size", "CID", "Pieces", "SHA-256"].map((t) => h("th", { scope: "col" }, t)))),
        this.rows,
      ),
    );
    this.more = h("button", { type: "button", class: "btn btn-small", hidden: true, onclick: () => this.load(true) }, "Show more");
    this.el = h(
      "section",
      { class: "explore", id, hidden: true, "aria-label": `Files of ${name}` },
      h("nav", { "aria-label": "Folder path" }, this.crumbs),
      this.summary,
      this.error,
      this.table,
      h("div", { class: "pager" }, this.more),
    );
  }

  toggle() {
    const open = this.el.hidden;
    this.el.hidden = !open;
    this.button.setAttribute("aria-expanded", String(open));
    this.onToggle(open);
    if (open) this.go(this.segments);
  }

  /** Show folder `segments` from its first page. */
  go(segments) {
    this.segments = segments;
    this.cursor = null;
    return this.load(false);
  }

  async load(append) {
    const ticket = ++this.request;
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (append && this.cursor) query.set("cursor", this.cursor);
    this.more.disabled = true;
    let page;
    try {
      page = await request(`${explorePath(this.name, this.segments)}?${query}`);
    } catch (err) {
      if (ticket !== this.request) return;
      this.error.textContent = err.message;
      if (!append) this.renderCrumbs();
      return;
    } finally {
      if (ticket === this.request) this.more.disabled = false;
    }
    if (ticket !== this.request) return;
    this.error.textContent = "";
    this.cursor = page.nextCursor;
    this.more.hidden = !page.nextCursor;
    const rows = page.entries.map((entry) => this.row(entry));
    if (append) {
      this.rows.append(...rows);
      this.shown += rows.length;
    } else {
      replace(this.rows, rows);
      this.shown = rows.length;
      this.renderCrumbs();
    }
    this.table.hidden = this.shown === 0;
    this.renderSummary(page);
  }

  renderCrumbs() {
    const parts = ["root", ...this.segments];
    replace(
      this.crumbs,
      parts.map((label, i) => {
        const last = i === parts.length - 1;
        const target = this.segments.slice(0, i);
        return h(
          "li",
          {},
          last
            ? h("span", { "aria-current": "location" }, label)
            : h("button", { type: "button", class: "linklike", onclick: () => this.go(target) }, label),
        );
      }),
    );
  }

  renderSummary(page) {
    const where = page.path ? `/${page.path}` : "the root folder";
    // A sub-folder with nothing in it is an empty folder: it has no node in the DAG.
    const nothing = page.path ? `${where} is an empty folder (not in the DAG: empty folders are not part of a dataset).` : `Nothing recorded in ${where}.`;
    const count = this.shown === 0 ? nothing : `${this.shown} entr${this.shown === 1 ? "y" : "ies"}${page.nextCursor ? " so far" : ""}`;
    replace(
      this.summary,
      h("span", {}, count),
      page.cid ? h("span", { class: "cid-cell" }, "Folder CID ", h("code", { class: "cid", title: page.cid }, shortCid(page.cid, 10)), copyButton(page.cid, "Copy folder CID")) : null,
    );
  }

  row(entry) {
    const name = entry.isDir
      ? h("button", { type: "button", class: "linklike folder", onclick: () => this.go([...this.segments, entry.name]) }, `${entry.name}/`)
      : h("span", { class: "file-name" }, entry.name);
    return h(
      "tr",
      { dataset: { name: entry.name, kind: entry.isDir ? "folder" : "file" } },
      h("td", { "data-label": "Name", class: "name-cell" }, name),
      h("td", { class: "num", "data-label": "Size" }, entry.isDir ? "—" : formatBytes(entry.size)),
      h("td", { "data-label": "CID" }, entry.cid ? cidCell(entry.cid, `Copy CID of ${entry.name}`) : h("span", { class: "muted" }, entry.empty ? "empty folder (not in the DAG)" : "not packed")),
      h("td", { "data-label": "Pieces" }, piecesCell(entry.pieceCids || [])),
      h("td", { "data-label": "SHA-256" }, entry.sha256 ? cidCell(entry.sha256, `Copy SHA-256 of ${entry.name}`, 8) : "—"),
    );
  }
}

function cidCell(text, label, keep = 10) {
  return h("span", { class: "cid-cell" }, h("code", { class: "cid", title: text }, shortCid(text, keep)), copyButton(text, label));
}

function piecesCell(pieces) {
  if (!pieces.length) return "—";
  const shown = pieces.slice(0, PIECES_SHOWN).map((cid) => cidCell(cid, "Copy piece CID", 8));
  const rest = pieces.length - shown.length;
  return h(
    "div",
    { class: "piece-list" },
    shown,
    rest > 0 ? h("span", { class: "small muted", title: pieces.slice(PIECES_SHOWN).join("\n") }, `+${rest} more`) : null,
  );
}

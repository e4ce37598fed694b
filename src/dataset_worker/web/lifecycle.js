// Deleting a preparation from its card: a "Delete…" button opens a confirmation step with the
// option to remove the CAR files too; the reply's counts are announced above the list.

import { request } from "./client.js";
import { byId, h } from "./dom.js";

const WORDS = [
  ["files", "file", "files"],
  ["directories", "folder", "folders"],
  ["cars", "piece", "pieces"],
  ["jobs", "job", "jobs"],
  ["carFiles", "CAR file", "CAR files"],
  ["unrecordedCarFiles", "unrecorded CAR file", "unrecorded CAR files"],
];

/** "Deleted "x": 3 files, 2 pieces, …" from a delete reply. */
export function describeDeletion(report) {
  const removed = report.removed || {};
  const parts = WORDS.filter(([key]) => removed[key]).map(([key, one, many]) => `${removed[key]} ${removed[key] === 1 ? one : many}`);
  const kept = report.keptStorages?.length ? ` Kept storages used by other preparations: ${report.keptStorages.join(", ")}.` : "";
  return `Deleted preparation "${report.name}"${parts.length ? `: ${parts.join(", ")}` : ""}.${kept}`;
}

export class DeleteControl {
  /** `onDeleted(report)` runs once the server has deleted the preparation. */
  constructor(name, id, onDeleted) {
    this.name = name;
    this.onDeleted = onDeleted;
    this.button = h(
      "button",
      { type: "button", class: "btn btn-small btn-danger", "aria-expanded": "false", "aria-controls": id, onclick: () => this.show(true) },
      "Delete…",
    );
    this.cars = h("input", { type: "checkbox", name: "deleteCars" });
    this.error = h("p", { class: "form-error", role: "alert" });
    this.confirm = h("button", { type: "submit", class: "btn btn-small btn-danger-solid" }, "Delete preparation");
    this.el = h(
      "form",
      { class: "confirm-delete", id, hidden: true, novalidate: true, "aria-label": `Delete ${name}`, onsubmit: (e) => this.submit(e) },
      h("p", {}, `Delete preparation "${name}"? Its jobs, folders, files and pieces are removed from the database; this cannot be undone.`),
      h("label", { class: "check" }, this.cars, "Also delete its CAR files from the output folder"),
      this.error,
      h(
        "div",
        { class: "actions" },
        this.confirm,
        h("button", { type: "button", class: "btn btn-small btn-quiet", onclick: () => this.show(false) }, "Cancel"),
      ),
    );
  }

  show(open) {
    this.el.hidden = !open;
    this.button.setAttribute("aria-expanded", String(open));
    this.error.textContent = "";
    if (open) this.confirm.focus();
    else {
      this.cars.checked = false;
      this.button.focus();
    }
  }

  async submit(event) {
    event.preventDefault();
    this.confirm.disabled = true;
    this.error.textContent = "";
    const query = this.cars.checked ? "?deleteCars=true" : "";
    try {
      const report = await request(`/api/preparations/${encodeURIComponent(this.name)}${query}`, { method: "DELETE" });
      announce(describeDeletion(report));
      this.onDeleted(report);
    } catch (err) {
      this.error.textContent = err.message;
    } finally {
      this.confirm.disabled = false;
    }
  }
}

/** Show `text` in the notice above the preparations list. */
function announce(text) {
  const notice = byId("preps-notice");
  notice.textContent = text;
  notice.hidden = false;
}

// The Storages panel: named storages (local folders, S3 buckets, SFTP servers) that
// preparations refer to as NAME or NAME:/sub/path. List, create, check (read the root and show
// its first entries) and delete. The server masks secrets as *** in every reply; this panel
// never asks for one (credentials come from the AWS chain on each machine).

import { request } from "./client.js";
import { byId, h, replace } from "./dom.js";
import { clearErrors, showError } from "./fields.js";
import { Poller } from "./poll.js";

export class StoragesPanel {
  constructor() {
    this.form = byId("storage-form");
    this.body = byId("storages-body");
    this.poller = new Poller(() => this.refresh(), 10000);
    this.results = new Map(); // name -> [class, text]: a check's result survives the refreshes
    this.open = new Set(); // preparations whose own storages are shown
    this.form.addEventListener("submit", (event) => this.create(event));
    byId("storage-new").addEventListener("click", () => this.toggleForm(true));
    byId("storage-cancel").addEventListener("click", () => this.toggleForm(false));
  }

  start() {
    this.poller.start();
  }

  stop() {
    this.poller.stop();
  }

  toggleForm(open) {
    this.form.hidden = !open;
    byId("storage-new").setAttribute("aria-expanded", String(open));
    if (open) this.form.elements.name.focus();
    else {
      this.form.reset();
      clearErrors(this.form);
    }
  }

  async refresh() {
    const error = byId("storages-error");
    let storages;
    try {
      storages = await request("/api/storages");
    } catch (err) {
      error.textContent = err.message;
      return;
    }
    error.textContent = "";
    const { named, owned } = foldOwned(storages);
    const rows = named.map((storage) => this.row(storage));
    for (const [prep, own] of owned) {
      rows.push(this.groupRow(prep, own));
      if (this.open.has(prep)) rows.push(...own.map((storage) => this.row(storage, prep)));
    }
    const focusKey = this.body.contains(document.activeElement) ? document.activeElement.dataset.focusKey : null;
    replace(this.body, rows);
    if (focusKey) this.body.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`)?.focus();
    byId("storages-empty").hidden = storages.length > 0;
  }

  /** One row standing for a preparation's own storages, which it opens and closes. */
  groupRow(prep, own) {
    const open = this.open.has(prep);
    const kinds = own.map((s) => s.name.slice(prep.length + 1)).join(" and ");
    const toggle = h(
      "button",
      {
        type: "button",
        class: "btn btn-small btn-quiet group-toggle",
        "aria-expanded": String(open),
        dataset: { focusKey: `group-${prep}` },
        onclick: () => {
          if (this.open.has(prep)) this.open.delete(prep);
          else this.open.add(prep);
          this.refresh();
        },
      },
      `Preparation "${prep}": its own ${kinds} (${own.length})`,
    );
    return h(
      "tr",
      { class: "storage-group", dataset: { group: prep } },
      h("td", { colspan: "6", "data-label": "" }, toggle, h("span", { class: "muted small" }, " made by prep create, deleted with the preparation")),
    );
  }

  row(storage, owner = null) {
    const config = Object.entries(storage.config || {});
    const [kind, text] = this.results.get(storage.name) || ["", ""];
    const result = h("p", { class: `check-result small ${kind}`, role: "status", "aria-live": "polite" }, text);
    return h(
      "tr",
      { class: owner ? "storage-owned" : null, dataset: owner ? { storage: storage.name, owner } : { storage: storage.name } },
      h("td", { "data-label": "Name", class: "mono" }, storage.name),
      h("td", { "data-label": "Type" }, h("span", { class: "badge" }, storage.type)),
      h("td", { "data-label": "Path", class: "mono small break" }, storage.path),
      h(
        "td",
        { "data-label": "Config", class: "mono small" },
        config.length
          ? h("div", { class: "config-list" }, config.map(([key, value]) => h("div", { class: "config-item" }, `${key} = ${value}`)))
          : "—",
      ),
      h("td", { "data-label": "Used by" }, (storage.preparations || []).join(", ") || "—"),
      h("td", { "data-label": "Actions" }, h("div", { class: "storage-actions" }, this.buttons(storage, result), result)),
    );
  }

  buttons(storage, result) {
    const check = h("button", { type: "button", class: "btn btn-small", onclick: () => this.check(storage, result) }, "Check");
    const remove = h(
      "button",
      {
        type: "button",
        class: "btn btn-small btn-danger",
        onclick: (event) => this.remove(storage, result, event.currentTarget),
        "aria-label": `Delete storage ${storage.name}`,
      },
      "Delete",
    );
    return h("div", { class: "row-actions" }, check, remove);
  }

  async check(storage, result) {
    this.show(storage, result, "", "Checking…");
    try {
      const reply = await request(`/api/storages/${encodeURIComponent(storage.name)}/check`, { method: "POST" });
      const sample = reply.sample?.length ? ` First entries: ${reply.sample.join(", ")}` : "";
      this.show(storage, result, reply.ok ? "check-ok" : "check-failed", `${reply.ok ? "OK" : "Failed"}: ${reply.message}.${sample}`);
    } catch (err) {
      this.show(storage, result, "check-failed", err.message);
    }
  }

  show(storage, result, kind, text) {
    this.results.set(storage.name, [kind, text]);
    // The row may have been redrawn by a refresh meanwhile: update the one on the page.
    const current = this.body.querySelector(`tr[data-storage="${CSS.escape(storage.name)}"] .check-result`) || result;
    current.className = `check-result small ${kind}`;
    current.textContent = text;
  }

  async remove(storage, result, button) {
    if (!window.confirm(`Delete storage "${storage.name}"? Its files are not touched.`)) return;
    button.disabled = true;
    try {
      await request(`/api/storages/${encodeURIComponent(storage.name)}`, { method: "DELETE" });
      this.results.delete(storage.name);
      await this.refresh();
    } catch (err) {
      this.show(storage, result, "check-failed", err.message);
      button.disabled = false;
    }
  }

  async create(event) {
    event.preventDefault();
    const form = this.form;
    clearErrors(form);
    const value = (name) => form.elements[name].value.trim();
    const body = { name: value("name"), url: value("url"), anonymous: form.elements.anonymous.checked };
    for (const name of ["endpoint", "region", "profile"]) if (value(name)) body[name] = value(name);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const created = await request("/api/storages", { method: "POST", body });
      this.toggleForm(false);
      const notice = byId("storages-notice");
      notice.textContent = `Created storage "${created.name}" (${created.type} ${created.path}).`;
      notice.hidden = false;
      await this.refresh();
    } catch (err) {
      showError(form, err);
    } finally {
      button.disabled = false;
    }
  }
}

/**
 * Split the storages into named ones and those a preparation made for itself ("<prep>-source",
 * "<prep>-output", used by that preparation only), grouped by preparation in name order.
 */
export function foldOwned(storages) {
  const named = [];
  const owned = new Map();
  for (const storage of storages) {
    const users = storage.preparations || [];
    const prep = users.length === 1 ? users[0] : null;
    if (prep && (storage.name === `${prep}-source` || storage.name === `${prep}-output`)) {
      if (!owned.has(prep)) owned.set(prep, []);
      owned.get(prep).push(storage);
    } else named.push(storage);
  }
  const sorted = new Map([...owned].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const sourceFirst = (a, b) => Number(b.name.endsWith("-source")) - Number(a.name.endsWith("-source"));
  for (const own of sorted.values()) own.sort(sourceFirst);
  return { named, owned: sorted };
}

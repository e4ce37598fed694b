// Entry point: sign-in with the admin token, then the panels, each polling the public API.

import { forgetToken, onUnauthorized, request, savedToken, saveToken } from "./client.js";
import { PackedChart } from "./chart.js";
import { DealsPanel } from "./deals.js";
import { byId } from "./dom.js";
import { WorkersPanel } from "./fleet.js";
import { JobsPanel } from "./jobs.js";
import { LogsPanel } from "./logs.js";
import { PrepsPanel } from "./preps.js";
import { StoragesPanel } from "./storages.js";
import { WorkerPanel } from "./worker.js";

const REFUSED = "The server refused this token. Use the token that dataset-worker serve printed on first start, or the value of DATASET_WORKER_ADMIN_TOKEN.";

let panels = null;

function buildPanels() {
  const logs = new LogsPanel();
  const jobs = new JobsPanel();
  const chart = new PackedChart(byId("chart"), byId("chart-now"));
  const worker = new WorkerPanel({
    onStatus: (status) => {
      logs.workerChanged(status);
      const pill = byId("topbar-state");
      pill.textContent = status.running ? `Worker running · pid ${status.pid}` : "Worker stopped";
      pill.className = `pill ${status.running ? "pill-ok" : "pill-idle"}`;
      setBanner("");
    },
    onError: (err) => setBanner(err.status === 0 ? err.message : `Status unavailable: ${err.message}`),
  });
  const preps = new PrepsPanel({
    onList: (names) => jobs.setPreparations(names),
    onPacked: (bytes) => chart.add(bytes),
  });
  return [worker, logs, preps, jobs, chart, new WorkersPanel(), new StoragesPanel(), new DealsPanel()];
}

function setBanner(text) {
  const banner = byId("connection");
  banner.textContent = text;
  banner.hidden = !text;
}

function showSignIn(message = "") {
  panels?.forEach((panel) => panel.stop());
  byId("app").hidden = true;
  byId("signin").hidden = false;
  const form = byId("signin-form");
  form.querySelector("#token-error").textContent = message;
  form.querySelector("#token").setAttribute("aria-invalid", String(Boolean(message)));
  form.querySelector(".form-error").textContent = "";
  form.elements.token.focus();
}

function showApp() {
  byId("signin").hidden = true;
  byId("app").hidden = false;
  if (!panels) panels = buildPanels();
  panels.forEach((panel) => panel.start());
}

async function signIn(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const token = form.elements.token.value.trim();
  const fieldError = form.querySelector("#token-error");
  const general = form.querySelector(".form-error");
  fieldError.textContent = "";
  general.textContent = "";
  if (!token) {
    fieldError.textContent = "Enter the admin token.";
    form.elements.token.setAttribute("aria-invalid", "true");
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await request("/api/dataset-worker/status", { token });
    saveToken(token);
    form.reset();
    form.elements.token.removeAttribute("aria-invalid");
    showApp();
    // Keyboard users continue at the top of the content; without preventScroll a phone (whose
    // top bar is not sticky) scrolls the top bar out of view.
    byId("main").focus({ preventScroll: true });
  } catch (err) {
    if (err.status === 401 || err.status === 403) {
      fieldError.textContent = REFUSED;
      form.elements.token.setAttribute("aria-invalid", "true");
      form.elements.token.select();
    } else {
      general.textContent = err.message;
    }
  } finally {
    button.disabled = false;
  }
}

function signOut() {
  forgetToken();
  showSignIn();
}

function boot() {
  byId("signin-form").addEventListener("submit", signIn);
  byId("signout").addEventListener("click", signOut);
  onUnauthorized(() => {
    if (!savedToken()) return;
    forgetToken();
    showSignIn("The server no longer accepts the saved token. Sign in again.");
  });
  if (savedToken()) showApp();
  else showSignIn();
}

boot();

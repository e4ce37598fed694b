// Retrying failed jobs (POST /api/preparations/{name}/retry) and showing where a preparation's
// pipeline is (its `stage`): used by the preparation cards and the jobs table.

import { request } from "./client.js";
import { h } from "./dom.js";

const STAGE_TONES = { done: "pill-ok", error: "pill-error", paused: "pill-warn", new: "pill-idle", packed: "pill-idle" };

/** Make the failed jobs of preparation `name` ready again (one `type`, or all); returns them. */
export async function retryJobs(name, type = null) {
  const body = type ? { type } : undefined;
  const jobs = await request(`/api/preparations/${encodeURIComponent(name)}/retry`, { method: "POST", body });
  return Array.isArray(jobs) ? jobs : [];
}

/** "2 jobs ready again: 7, 9." */
export function describeRetried(jobs) {
  if (!jobs.length) return "No failed jobs to retry.";
  return `${jobs.length} ${jobs.length === 1 ? "job" : "jobs"} ready again: ${jobs.map((j) => j.id).join(", ")}.`;
}

/** The stage pill of a card: scanning, packing, dag, done, … (an auto-chained pipeline). */
export function stagePill(stage, autoChain) {
  const label = stage ? `${stage}${autoChain === false ? " · manual" : ""}` : "…";
  return h(
    "span",
    { class: `pill stage ${STAGE_TONES[stage] || ""}`, dataset: { stage: stage || "" }, title: "Pipeline stage" },
    label,
  );
}

/** The card's Retry button: shown while the preparation has failed jobs. */
export class RetryControl {
  /** `say(text, isError)` reports the outcome on the card; `onChange()` refreshes it. */
  constructor(name, { say, onChange }) {
    this.name = name;
    this.say = say;
    this.onChange = onChange;
    this.button = h(
      "button",
      { type: "button", class: "btn btn-small btn-retry", hidden: true, onclick: () => this.retry() },
      "Retry failed jobs",
    );
  }

  /** Show the button with the number of failed jobs, or hide it when there are none. */
  update(jobs) {
    const failed = Object.values(jobs || {}).reduce((sum, states) => sum + Number(states?.error || 0), 0);
    this.button.hidden = failed === 0;
    this.button.textContent = failed ? `Retry ${failed} failed ${failed === 1 ? "job" : "jobs"}` : "Retry failed jobs";
  }

  async retry() {
    this.button.disabled = true;
    try {
      this.say(describeRetried(await retryJobs(this.name)));
      this.onChange();
    } catch (err) {
      this.say(err.message, true);
    } finally {
      this.button.disabled = false;
    }
  }
}

// Run a refresh function now and then every `intervalMs`, one call at a time, resting while
// the tab is hidden. `poke()` refreshes at once (after an action the user just took).

export class Poller {
  constructor(fn, intervalMs) {
    this.fn = fn;
    this.intervalMs = intervalMs;
    this.timer = null;
    this.running = false;
    this.active = false;
    this.again = false;
    this.onVisibility = () => {
      if (!document.hidden && this.active) this.poke();
    };
  }

  start() {
    if (this.active) return;
    this.active = true;
    document.addEventListener("visibilitychange", this.onVisibility);
    this.poke();
  }

  stop() {
    this.active = false;
    clearTimeout(this.timer);
    this.timer = null;
    document.removeEventListener("visibilitychange", this.onVisibility);
  }

  /** Refresh now; if a refresh is in flight, run once more right after it. */
  async poke() {
    if (!this.active) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.running = true;
    try {
      await this.fn();
    } catch (err) {
      console.error(err);
    } finally {
      this.running = false;
    }
    if (!this.active) return;
    if (this.again) {
      this.again = false;
      this.poke();
    } else if (!document.hidden) {
      this.timer = setTimeout(() => this.poke(), this.intervalMs);
    }
  }
}

// Formatting helpers: byte sizes, Go durations, timestamps. Pure functions, no DOM.

const SIZE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** 1048576 -> "1 MiB", 1500 -> "1.46 KiB" (binary units, like the CLI). */
export function formatBytes(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return "—";
  let value = Number(n);
  for (const unit of SIZE_UNITS) {
    if (Math.abs(value) < 1024 || unit === "PiB") {
      return unit === "B" ? `${Math.round(value)} B` : `${Number(value.toPrecision(3))} ${unit}`;
    }
    value /= 1024;
  }
  return `${n} B`;
}

const DURATION_UNITS = { ns: 1e-9, us: 1e-6, "µs": 1e-6, "μs": 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
const DURATION_PART = /(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;

/** Parse a Go duration ("2m30s", "1.5h", "250ms") into seconds; null when it does not parse. */
export function parseGoDuration(text) {
  if (typeof text !== "string") return null;
  let s = text.trim();
  if (s === "0") return 0;
  let sign = 1;
  if (s.startsWith("-") || s.startsWith("+")) {
    sign = s[0] === "-" ? -1 : 1;
    s = s.slice(1);
  }
  if (!s) return null;
  let total = 0;
  DURATION_PART.lastIndex = 0;
  while (DURATION_PART.lastIndex < s.length) {
    const match = DURATION_PART.exec(s);
    if (!match) return null;
    total += Number(match[1]) * DURATION_UNITS[match[2]];
  }
  return sign * total;
}

/** Whole seconds as Go prints them: "45s", "2m30s", "1h0m5s". */
export function formatUptime(seconds) {
  const total = Math.max(0, Math.floor(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h) return `${h}h${m}m${s}s`;
  if (m) return `${m}m${s}s`;
  return `${s}s`;
}

/** A job's run time: "0.21s" below a minute, else "2m30s". */
export function formatTook(seconds) {
  if (seconds < 60) return `${Number(seconds.toFixed(seconds < 10 ? 2 : 1))}s`;
  return formatUptime(seconds);
}

/** An RFC 3339 timestamp in the reader's local time, short form; "—" for null. */
export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  const sameDay = date.toDateString() === new Date().toDateString();
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return sameDay ? time : `${date.toLocaleDateString()} ${time}`;
}

/** Seconds between two RFC 3339 timestamps (end defaults to now); null if start is missing. */
export function secondsBetween(startIso, endIso) {
  if (!startIso) return null;
  const start = new Date(startIso).getTime();
  const end = endIso ? new Date(endIso).getTime() : Date.now();
  if (Number.isNaN(start) || Number.isNaN(end)) return null;
  return Math.max(0, (end - start) / 1000);
}

/** Shorten a long CID for a table cell: "bafy…wxyz" (the full value stays in the title). */
export function shortCid(cid, keep = 8) {
  if (!cid) return "—";
  return cid.length <= keep * 2 + 1 ? cid : `${cid.slice(0, keep)}…${cid.slice(-keep)}`;
}

/** Percentage 0..100 of part in whole, 0 when whole is 0. */
export function percent(part, whole) {
  if (!whole) return 0;
  return Math.max(0, Math.min(100, (100 * part) / whole));
}

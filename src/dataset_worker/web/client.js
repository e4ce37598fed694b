// The page's only way to the server: the public HTTP API with the admin bearer token.

const TOKEN_KEY = "dataset-worker.token";

/**
 * An HTTP error reply: status code, the server's human sentence, its optional detail, and (on a
 * 400) `errors`, every problem found as {field, message}.
 */
export class ApiError extends Error {
  constructor(status, message, detail, errors) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
    this.errors = Array.isArray(errors) ? errors : [];
  }
}

export function savedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function saveToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

const unauthorizedListeners = new Set();

/** Call `fn` whenever a request is refused with 401 (the token was revoked or changed). */
export function onUnauthorized(fn) {
  unauthorizedListeners.add(fn);
}

function headers(token, extra = {}) {
  return { Authorization: `Bearer ${token}`, ...extra };
}

/**
 * Send one request and return the parsed JSON body (or text for non-JSON replies).
 * Throws ApiError for any non-2xx reply, with the server's `error` sentence as the message.
 */
export async function request(path, { method = "GET", body, token = savedToken(), signal } = {}) {
  const init = { method, headers: headers(token || ""), signal, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "The server cannot be reached. Is `dataset-worker serve` running?");
  }
  const payload = await readBody(response);
  if (response.ok) return payload;
  const message =
    (payload && typeof payload === "object" && (payload.error || payload.detail?.toString())) ||
    (typeof payload === "string" && payload) ||
    `${response.status} ${response.statusText}`;
  const error = new ApiError(response.status, String(message), payload?.detail, payload?.errors);
  if (response.status === 401) unauthorizedListeners.forEach((fn) => fn(error));
  throw error;
}

async function readBody(response) {
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("json")) {
    try {
      return await response.json();
    } catch {
      return null;
    }
  }
  return response.text();
}

/**
 * Read a Server-Sent Events stream with fetch, so the bearer token can be sent (EventSource
 * cannot send headers). Calls onEvent({event, data, id}) per event; resolves when the server
 * closes the stream, rejects on errors. Abort with `signal`.
 */
export async function streamEvents(path, { onEvent, onOpen, signal, lastEventId } = {}) {
  const extra = { Accept: "text/event-stream" };
  if (lastEventId) extra["Last-Event-ID"] = lastEventId;
  const response = await fetch(path, {
    headers: headers(savedToken() || "", extra),
    signal,
    cache: "no-store",
  });
  if (!response.ok) {
    const payload = await readBody(response);
    const message = payload?.error || `${response.status} ${response.statusText}`;
    const error = new ApiError(response.status, message, payload?.detail);
    if (response.status === 401) unauthorizedListeners.forEach((fn) => fn(error));
    throw error;
  }
  if (onOpen) onOpen();
  const parser = new EventStreamParser(onEvent);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parser.feed(value);
  }
}

/** The text/event-stream format (WHATWG HTML §9.2.6), fed chunk by chunk. */
export class EventStreamParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.reset();
    this.lastId = "";
  }

  reset() {
    this.event = "";
    this.data = [];
  }

  feed(chunk) {
    this.buffer += chunk;
    // A chunk may end between \r and \n: keep a trailing \r until the next chunk decides.
    const lines = this.buffer.split(/\r\n|\n|\r(?!$)/);
    this.buffer = lines.pop();
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === "") {
      if (this.data.length) {
        this.onEvent({ event: this.event || "message", data: this.data.join("\n"), id: this.lastId });
      }
      this.reset();
      return;
    }
    if (line.startsWith(":")) return; // comment / keep-alive
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.lastId = value;
  }
}

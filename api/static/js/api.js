// Talking to the server (same origin): JSON routes, the streamed /v1/ask, and uploads with progress.
// Every failure becomes an ApiError with the server's code and message, so the page can say what happened.

import { readEvents } from "./sse.js";

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.name = "ApiError";
    this.status = status; // 0 when the server could not be reached
    this.code = code;
    this.retryAfter = retryAfter; // seconds, from Retry-After on a 503
  }
}

/** An ApiError from a response's status, body text and Retry-After header (any of them may be junk). */
export function errorFrom(status, bodyText, retryAfterHeader = null) {
  let code = status >= 500 ? "server_error" : "bad_request";
  let message = "";
  try {
    const err = JSON.parse(bodyText).error;
    if (err && typeof err === "object") {
      code = typeof err.code === "string" ? err.code : code;
      message = typeof err.message === "string" ? err.message : "";
    }
  } catch {
    // not JSON: a proxy's error page, say; its text is not worth showing
  }
  const seconds = Number.parseInt(retryAfterHeader ?? "", 10);
  return new ApiError(status, code, message || `the server answered ${status}`, Number.isFinite(seconds) && seconds >= 0 ? seconds : null);
}

// An `error` event carries the body without the status line; the code tells it.
const CODE_STATUS = { busy: 503, not_ready: 503, index_unavailable: 503, generator_failed: 502, bad_input: 400, too_large: 413 };

/** The payload of an SSE `error` event, as an ApiError. */
export function streamError(payload) {
  const err = (payload && payload.error) || {};
  const code = typeof err.code === "string" ? err.code : "internal_error";
  return new ApiError(CODE_STATUS[code] ?? 500, code, err.message || "the answer failed while it was being written");
}

export function networkError(cause) {
  const err = new ApiError(0, "network", "the server could not be reached");
  err.cause = cause;
  return err;
}

export class Api {
  /** `key()` returns the API key or "" (read each time: the user may enter it later). */
  constructor({ key = () => "", fetchImpl = (...args) => fetch(...args) } = {}) {
    this.key = key;
    this.fetch = fetchImpl;
  }

  headers(extra = {}) {
    const headers = { Accept: "application/json", ...extra };
    const key = this.key();
    if (key) headers.Authorization = `Bearer ${key}`;
    return headers;
  }

  async send(method, path, body, { signal, accept } = {}) {
    const init = { method, headers: this.headers(body === undefined ? {} : { "Content-Type": "application/json" }), signal };
    if (accept) init.headers.Accept = accept;
    if (body !== undefined) init.body = JSON.stringify(body);
    let response;
    try {
      response = await this.fetch(path, init);
    } catch (err) {
      if (err && err.name === "AbortError") throw err;
      throw networkError(err);
    }
    if (!response.ok) throw errorFrom(response.status, await response.text().catch(() => ""), response.headers.get("Retry-After"));
    return response;
  }

  async get(path, options) {
    return (await this.send("GET", path, undefined, options)).json();
  }

  async post(path, body, options) {
    return (await this.send("POST", path, body, options)).json();
  }

  async delete(path, options) {
    return (await this.send("DELETE", path, undefined, options)).json();
  }

  /** POST /v1/ask as a stream: yields {event, data} with data parsed; Stop is `signal`. */
  async *ask(body, { signal } = {}) {
    const response = await this.send("POST", "/v1/ask", { ...body, stream: true }, { signal, accept: "text/event-stream" });
    for await (const { event, data } of readEvents(response.body)) {
      let parsed;
      try {
        parsed = JSON.parse(data);
      } catch {
        throw new ApiError(500, "bad_stream", `the server sent an unreadable ${event} event`);
      }
      yield { event, data: parsed };
    }
  }

  /** POST /v1/check: the archive's verdict on a claim, with its quotes. */
  async check(body, { signal } = {}) {
    return this.post("/v1/check", body, { signal });
  }

  /** POST /v1/documents with a file; `onProgress(fraction)` as it is sent. Resolves to {status, body}. */
  upload(file, { onProgress = () => {}, XHR = globalThis.XMLHttpRequest } = {}) {
    return new Promise((resolve, reject) => {
      const xhr = new XHR();
      xhr.open("POST", "/v1/documents");
      for (const [name, value] of Object.entries(this.headers())) xhr.setRequestHeader(name, value);
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable && e.total > 0) onProgress(e.loaded / e.total);
      });
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          try {
            resolve({ status: xhr.status, body: JSON.parse(xhr.responseText) });
          } catch {
            reject(new ApiError(xhr.status, "bad_response", "the server's reply could not be read"));
          }
        } else {
          reject(errorFrom(xhr.status, xhr.responseText, xhr.getResponseHeader("Retry-After")));
        }
      });
      xhr.addEventListener("error", () => reject(networkError()));
      xhr.addEventListener("abort", () => reject(new ApiError(0, "aborted", "the upload was cancelled")));
      const form = new FormData();
      form.append("file", file, file.name);
      xhr.send(form);
    });
  }
}

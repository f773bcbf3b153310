// Small wording helpers: times, article metadata, links, and what to tell a person about an error.

/** "0.84 s", "3.2 s", "41 s"; null when there is no figure. */
export function seconds(value) {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) return null;
  if (value < 1) return `${value.toFixed(2)} s`;
  if (value < 10) return `${value.toFixed(1)} s`;
  return `${Math.round(value)} s`;
}

/** "TTFT 0.84 s · total 3.2 s", from the answer's timings (TTFT only when something was generated). */
export function timingLine(timings) {
  const parts = [];
  const ttft = seconds(timings?.ttft_s);
  const total = seconds(timings?.total_s);
  if (ttft) parts.push(`TTFT ${ttft}`);
  if (total) parts.push(`total ${total}`);
  return parts.join(" · ");
}

/** "The Independent · 2023-06-15", with honest words for what is not known. */
export function metaLine({ source, date } = {}) {
  return `${source || "unknown outlet"} · ${date || "undated"}`;
}

/** "also in: Northern Wire · 2024-02-07; Bay Times · undated": the other outlets that ran the same story
 * (near-duplicates the server folded into this one); "" when there are none. */
export function alsoInLine(copies) {
  if (!Array.isArray(copies) || !copies.length) return "";
  return "also in: " + copies.map((c) => metaLine(c ?? {})).join("; ");
}

/** The URL when it is a plain http(s) link, else null: an article's metadata must not become javascript:. */
export function safeUrl(url) {
  if (typeof url !== "string" || !url) return null;
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${Math.round(n / 1024)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

/**
 * What the page says about an ApiError (or any error): {title, detail, retryAfter, needsKey}.
 * `detail` is the server's own message where it has one.
 */
export function describeError(err) {
  const status = err?.status ?? 0;
  const code = err?.code ?? "";
  const detail = err?.message || "";
  const retryAfter = err?.retryAfter ?? null;
  if (status === 0 && code === "network") return { title: "The server cannot be reached", detail: "check that rag serve is still running.", retryAfter: null, needsKey: false };
  if (status === 401) return { title: "An API key is needed", detail: "The server did not accept the key. Enter the key this server was started with (RAG_API_KEY).", retryAfter: null, needsKey: true };
  if (status === 503 && code === "busy") {
    const wait = retryAfter ? `Try again in ${retryAfter} s.` : "Try again in a few seconds.";
    return { title: "The model is busy with other questions", detail: `${wait} ${detail}`.trim(), retryAfter, needsKey: false };
  }
  if (status === 503) return { title: "The server is not ready", detail, retryAfter, needsKey: false };
  if (status === 403) return { title: "Not allowed on this server", detail, retryAfter: null, needsKey: false };
  if (status === 404) return { title: "Not found", detail, retryAfter: null, needsKey: false };
  if (status === 409) return { title: "The index is busy", detail, retryAfter: null, needsKey: false };
  if (status === 413) return { title: "Too large", detail, retryAfter: null, needsKey: false };
  if (status === 415) return { title: "Unsupported file", detail, retryAfter: null, needsKey: false };
  if (status >= 400 && status < 500) return { title: "Check the question and options", detail, retryAfter: null, needsKey: false };
  if (status >= 500) return { title: "The server failed to answer", detail, retryAfter, needsKey: false };
  return { title: "Something went wrong", detail: detail || String(err), retryAfter: null, needsKey: false };
}

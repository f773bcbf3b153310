// Showing a quote inside its article: spans come from the server as character offsets into the cleaned text
// (Python counts code points, JavaScript strings count UTF-16 units, so they differ after an emoji), and
// the text is put in the page as text nodes plus <mark>, never as HTML.

const SURROGATE = /[\uD800-\uDFFF]/;

/** The UTF-16 index of code point offset `cp` in `text` (offsets past the end give text.length). */
export function utf16Index(text, cp) {
  if (!SURROGATE.test(text)) return Math.min(Math.max(cp, 0), text.length);
  let i = 0;
  for (let n = 0; n < cp && i < text.length; n++) {
    const c = text.charCodeAt(i);
    const pairStart = c >= 0xd800 && c <= 0xdbff && i + 1 < text.length;
    const next = pairStart ? text.charCodeAt(i + 1) : 0;
    i += pairStart && next >= 0xdc00 && next <= 0xdfff ? 2 : 1;
  }
  return i;
}

/**
 * Where a quote {text, start, end} sits in the article, as a UTF-16 [start, end), or null. The span is
 * trusted when it holds the quote's text (or when no text came with it); otherwise the quote is searched
 * for, so a stale span never marks the wrong sentence.
 */
export function locate(text, quote) {
  const { start, end } = quote;
  const quoted = quote.text || "";
  if (Number.isInteger(start) && Number.isInteger(end) && start >= 0 && end > start) {
    const s = utf16Index(text, start);
    const e = utf16Index(text, end);
    if (e > s && (!quoted || text.slice(s, e) === quoted)) return [s, e];
  }
  if (quoted) {
    const at = text.indexOf(quoted);
    if (at >= 0) return [at, at + quoted.length];
  }
  return null;
}

/** A code point span [start, end) as UTF-16, clamped to the text; null when it is not a span. */
export function spanOf(text, span) {
  if (!Array.isArray(span) || !Number.isInteger(span[0]) || !Number.isInteger(span[1])) return null;
  const s = utf16Index(text, span[0]);
  const e = utf16Index(text, span[1]);
  return e > s ? [s, e] : null;
}

/**
 * Cut `text` into runs: "quote" inside any of `marks`, else "passage" inside any of `regions`, else "plain".
 * Ranges are UTF-16 [start, end); they may overlap and need not be sorted. Adjacent runs of a kind merge.
 */
export function segments(text, marks = [], regions = []) {
  const clamp = (v) => Math.min(Math.max(v, 0), text.length);
  const valid = (ranges) => ranges.filter(Boolean).map(([s, e]) => [clamp(s), clamp(e)]).filter(([s, e]) => e > s);
  const quotes = valid(marks);
  const passages = valid(regions);
  const cuts = new Set([0, text.length]);
  for (const [s, e] of [...quotes, ...passages]) cuts.add(s).add(e);
  const points = [...cuts].sort((a, b) => a - b);
  const inside = (ranges, at) => ranges.some(([s, e]) => s <= at && at < e);
  const out = [];
  for (let i = 0; i + 1 < points.length; i++) {
    const [a, b] = [points[i], points[i + 1]];
    const kind = inside(quotes, a) ? "quote" : inside(passages, a) ? "passage" : "plain";
    const prev = out[out.length - 1];
    if (prev && prev.kind === kind) prev.text += text.slice(a, b);
    else out.push({ kind, text: text.slice(a, b) });
  }
  return out;
}

/**
 * Replace `container`'s children with the runs: plain text nodes, <span class="passage"> and <mark>, each
 * filled through createTextNode. Returns the first <mark>, to scroll to, or null.
 */
export function renderSegments(doc, container, runs) {
  const nodes = [];
  let first = null;
  for (const run of runs) {
    if (run.kind === "plain") {
      nodes.push(doc.createTextNode(run.text));
      continue;
    }
    const el = doc.createElement(run.kind === "quote" ? "mark" : "span");
    if (run.kind === "passage") el.className = "passage";
    el.appendChild(doc.createTextNode(run.text));
    if (run.kind === "quote" && !first) first = el;
    nodes.push(el);
  }
  container.replaceChildren(...nodes);
  return first;
}

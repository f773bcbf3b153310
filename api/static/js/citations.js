// The [n] markers in an answer and the citations they point to.
//
// A citation carries `quote` and `span` ([start, end) in the cleaned article text); a newer server may also
// send `quotes`, a list of {text, start, end} (or {text, span}), when one passage supports a claim with
// several sentences. Several citations may share a number when numbers are given per passage.

const MARKER = /\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]/g;

/** Split answer text into plain text and marker parts: [{text}] and [{text: "[1, 2]", numbers: [1, 2]}]. */
export function splitMarkers(text) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(MARKER)) {
    if (match.index > last) parts.push({ text: text.slice(last, match.index) });
    parts.push({ text: match[0], numbers: match[1].split(",").map((n) => Number.parseInt(n.trim(), 10)) });
    last = match.index + match[0].length;
  }
  if (last < text.length) parts.push({ text: text.slice(last) });
  return parts;
}

function pair(span) {
  return Array.isArray(span) && span.length === 2 ? span : [undefined, undefined];
}

/** Every quote of a citation as {text, start, end}: `quotes` when the server sends them, else quote/span. */
export function quotesOf(citation) {
  if (Array.isArray(citation.quotes) && citation.quotes.length) {
    return citation.quotes.map((q) => {
      const [s, e] = pair(q.span);
      return { text: q.text ?? q.quote ?? "", start: q.start ?? s, end: q.end ?? e };
    });
  }
  const [s, e] = pair(citation.span);
  return [{ text: citation.quote ?? "", start: citation.start ?? s, end: citation.end ?? e }];
}

/** Citations grouped by number, in order of first appearance: Map<number, citation[]>. */
export function groupByNumber(citations) {
  const groups = new Map();
  for (const c of citations || []) {
    if (!groups.has(c.number)) groups.set(c.number, []);
    groups.get(c.number).push(c);
  }
  return groups;
}

/**
 * What the article panel shows for marker n: the first citation's article, every quote that the citations
 * with number n take from that article, and their passage ids. null when no citation has that number.
 */
export function citationTarget(citations, number) {
  const group = groupByNumber(citations).get(number);
  if (!group) return null;
  const first = group[0];
  const same = group.filter((c) => c.doc_id === first.doc_id);
  return {
    number,
    doc_id: first.doc_id,
    title: first.title ?? null,
    source: first.source ?? null,
    date: first.date ?? null,
    url: first.url ?? null,
    passage_ids: [...new Set(same.map((c) => c.passage_id))],
    quotes: same.flatMap(quotesOf),
    also_in: Array.isArray(first.also_in) ? first.also_in : [],
  };
}

/** The sources list under an answer: one entry per number, in number order. */
export function sourceEntries(citations) {
  return [...groupByNumber(citations).keys()].sort((a, b) => a - b).map((n) => citationTarget(citations, n));
}

/** Retrieved passages, one per document, best first: what an abstention offers for reading. */
export function closestDocuments(sources) {
  const seen = new Set();
  const out = [];
  for (const s of [...(sources || [])].sort((a, b) => a.rank - b.rank)) {
    if (seen.has(s.doc_id)) continue;
    seen.add(s.doc_id);
    out.push(s);
  }
  return out;
}

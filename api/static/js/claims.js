// A claim checked against the archive (POST /v1/check): the verdict in words and its quotes as the article
// targets the citation rendering opens (the same shape citationTarget gives for an answer's [n]).

const VERDICTS = {
  supported: { title: "Supported", tone: "supported", text: "An article states this." },
  contradicted: { title: "Contradicted", tone: "contradicted", text: "An article about the same thing says otherwise." },
  not_found: { title: "Not found", tone: "not-found", text: "No checked sentence of the articles supports or contradicts this." },
};

/** The verdict as {title, tone, text, how}: `how` says whether the judge model read the quotes. */
export function verdictView(check) {
  const v = VERDICTS[check?.verdict] ?? { title: "Unknown verdict", tone: "not-found", text: String(check?.verdict ?? "") };
  const n = Number.isFinite(check?.candidates) ? check.candidates : 0;
  const how = check?.judge
    ? `checked against ${n} sentences by word checks and the judge model`
    : `checked against ${n} sentences by word checks only (no judge model is built)`;
  return { ...v, how };
}

/** Each citation as a numbered article target: {number, stance, doc_id, title, source, date, url, passage_ids, quotes}. */
export function checkEntries(check) {
  return (check?.citations || []).map((c, i) => {
    const [start, end] = Array.isArray(c.span) && c.span.length === 2 ? c.span : [undefined, undefined];
    return {
      number: i + 1,
      stance: c.stance,
      doc_id: c.doc_id,
      title: c.title ?? null,
      source: c.source ?? null,
      date: c.date ?? null,
      url: c.url ?? null,
      passage_ids: c.passage_id ? [c.passage_id] : [],
      quotes: [{ text: c.quote ?? "", start, end }],
      also_in: [],
    };
  });
}

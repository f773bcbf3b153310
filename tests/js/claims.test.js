import assert from "node:assert/strict";
import { test } from "node:test";

import { checkEntries, verdictView } from "../../api/static/js/claims.js";

const CHECK = {
  claim: "The NATO-Ukraine Commission is set to be upgraded.",
  verdict: "supported",
  judge: "newsrag-judge-1:abc:int8",
  candidates: 12,
  citations: [
    { stance: "supports", quote: "It is set to be upgraded.", span: [10, 35], doc_id: "001", passage_id: "001#2", title: "NATO", source: "AP", date: "2023-06-15", url: null, lexical: 0.9 },
    { stance: "supports", quote: "Upgraded.", span: [50, 59], doc_id: "000", passage_id: "000#1", title: null, source: null, date: null, lexical: 0.7 },
  ],
};

test("verdicts in words, and whether the judge read the quotes", () => {
  assert.equal(verdictView(CHECK).title, "Supported");
  assert.match(verdictView(CHECK).how, /12 sentences .* judge model/);
  const lexical = verdictView({ ...CHECK, verdict: "not_found", judge: null, citations: [] });
  assert.equal(lexical.tone, "not-found");
  assert.match(lexical.how, /word checks only/);
  assert.equal(verdictView({ verdict: "contradicted" }).title, "Contradicted");
  assert.equal(verdictView({ verdict: "maybe" }).title, "Unknown verdict");
});

test("citations become numbered article targets with their quote span", () => {
  const entries = checkEntries(CHECK);
  assert.deepEqual(entries.map((e) => e.number), [1, 2]);
  assert.deepEqual(entries[0].quotes, [{ text: "It is set to be upgraded.", start: 10, end: 35 }]);
  assert.deepEqual(entries[0].passage_ids, ["001#2"]);
  assert.equal(entries[1].title, null);
  assert.deepEqual(checkEntries({ verdict: "not_found" }), []);
});

import assert from "node:assert/strict";
import { test } from "node:test";

import { citationTarget, closestDocuments, quotesOf, sourceEntries, splitMarkers } from "../../api/static/js/citations.js";

const C1 = { number: 1, doc_id: "001", passage_id: "001#3", title: "NATO debates", source: "The Independent", date: "2023-06-15", quote: "It is upgraded.", span: [10, 25], support: 0.9 };
const C2 = { number: 2, doc_id: "000", passage_id: "000#1", title: "Council", source: "AP", date: null, quote: "Equal seat.", span: [5, 16], support: 0.8 };

test("markers become parts with numbers; text around them is kept exactly", () => {
  const text = "It was upgraded. [1] Ukraine gets a seat [1, 2].[3]";
  const parts = splitMarkers(text);
  assert.equal(parts.map((p) => p.text).join(""), text);
  assert.deepEqual(parts.filter((p) => p.numbers).map((p) => p.numbers), [[1], [1, 2], [3]]);
  assert.deepEqual(splitMarkers("no markers [a] [] [1234]"), [{ text: "no markers [a] [] [1234]" }]);
  assert.deepEqual(splitMarkers(""), []);
});

test("quotes: the `quotes` list when sent (start/end or span), else quote and span", () => {
  assert.deepEqual(quotesOf(C1), [{ text: "It is upgraded.", start: 10, end: 25 }]);
  assert.deepEqual(quotesOf({ ...C1, span: undefined, start: 3, end: 9 }), [{ text: "It is upgraded.", start: 3, end: 9 }]);
  const multi = { ...C1, quotes: [{ text: "A.", start: 1, end: 3 }, { text: "B.", span: [7, 9] }] };
  assert.deepEqual(quotesOf(multi), [{ text: "A.", start: 1, end: 3 }, { text: "B.", start: 7, end: 9 }]);
  assert.deepEqual(quotesOf({ ...C1, quotes: [] }), [{ text: "It is upgraded.", start: 10, end: 25 }]);
});

test("a number shared by several citations opens one article with all its quotes", () => {
  const other = { ...C1, passage_id: "001#4", quote: "Later.", span: [40, 46] };
  const elsewhere = { ...C2, number: 1 };
  const target = citationTarget([C1, C2, other, elsewhere], 1);
  assert.equal(target.doc_id, "001");
  assert.deepEqual(target.passage_ids, ["001#3", "001#4"]);
  assert.deepEqual(target.quotes.map((q) => q.text), ["It is upgraded.", "Later."]);
  assert.equal(citationTarget([C1], 7), null);
});

test("sources list: one entry per number, in order", () => {
  assert.deepEqual(sourceEntries([C2, C1, { ...C1 }]).map((e) => [e.number, e.doc_id, e.quotes.length]), [[1, "001", 2], [2, "000", 1]]);
  assert.deepEqual(sourceEntries(undefined), []);
});

test("closest documents: best rank first, one passage per document", () => {
  const s = (rank, doc_id) => ({ rank, doc_id, passage_id: `${doc_id}#${rank}` });
  assert.deepEqual(closestDocuments([s(3, "b"), s(1, "a"), s(2, "a"), s(4, "c")]).map((p) => p.passage_id), ["a#1", "b#3", "c#4"]);
});

test("a source entry keeps the outlets its story was folded from (none when the server sends none)", () => {
  const copies = [{ doc_id: "wire_tidal", source: "Northern Wire", date: "2024-02-07" }];
  const [entry] = sourceEntries([{ number: 1, doc_id: "a", passage_id: "a#0", also_in: copies }]);
  assert.deepEqual(entry.also_in, copies);
  assert.deepEqual(sourceEntries([{ number: 1, doc_id: "a", passage_id: "a#0" }])[0].also_in, []);
});

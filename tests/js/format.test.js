import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, errorFrom, streamError } from "../../api/static/js/api.js";
import { alsoInLine, describeError, metaLine, safeUrl, seconds, timingLine } from "../../api/static/js/format.js";

test("times read well at every scale, and missing figures are left out", () => {
  assert.equal(seconds(0.8412), "0.84 s");
  assert.equal(seconds(3.24), "3.2 s");
  assert.equal(seconds(41.6), "42 s");
  assert.equal(seconds(null), null);
  assert.equal(timingLine({ ttft_s: 0.5, total_s: 2 }), "TTFT 0.50 s · total 2.0 s");
  assert.equal(timingLine({ ttft_s: null, total_s: 0.2 }), "total 0.20 s");
  assert.equal(timingLine(undefined), "");
});

test("metadata says what is unknown; only http(s) links are links", () => {
  assert.equal(metaLine({ source: "AP", date: "2023-06-15" }), "AP · 2023-06-15");
  assert.equal(metaLine({}), "unknown outlet · undated");
  assert.equal(safeUrl("https://example.org/a?b=1"), "https://example.org/a?b=1");
  assert.equal(safeUrl("javascript:alert(1)"), null);
  assert.equal(safeUrl("data:text/html,<script>"), null);
  assert.equal(safeUrl("not a url"), null);
  assert.equal(safeUrl(null), null);
});

test("errors: the server's code and message, Retry-After, junk bodies", () => {
  const busy = errorFrom(503, '{"error": {"type": "busy", "code": "busy", "message": "the model queue is full"}}', "7");
  assert.ok(busy instanceof ApiError);
  assert.deepEqual([busy.status, busy.code, busy.message, busy.retryAfter], [503, "busy", "the model queue is full", 7]);
  const junk = errorFrom(502, "<html>Bad gateway</html>", null);
  assert.deepEqual([junk.code, junk.message, junk.retryAfter], ["server_error", "the server answered 502", null]);
  const stream = streamError({ error: { code: "generator_failed", message: "down" } });
  assert.deepEqual([stream.status, stream.code, stream.message], [502, "generator_failed", "down"]);
});

test("what the page tells a person about each kind of failure", () => {
  const busy = describeError(new ApiError(503, "busy", "queue full", 5));
  assert.equal(busy.title, "The model is busy with other questions");
  assert.match(busy.detail, /Try again in 5 s/);
  assert.equal(busy.retryAfter, 5);
  assert.equal(describeError(new ApiError(503, "not_ready", "no index yet: run rag index")).title, "The server is not ready");
  assert.equal(describeError(new ApiError(503, "not_ready", "no index yet: run rag index")).detail, "no index yet: run rag index");
  assert.equal(describeError(new ApiError(400, "bad_input", "since is after until")).detail, "since is after until");
  assert.ok(describeError(new ApiError(401, "unauthorized", "missing key")).needsKey);
  assert.equal(describeError(new ApiError(0, "network", "x")).title, "The server cannot be reached");
  assert.equal(describeError(new Error("boom")).detail, "boom");
});

test("also in: every other outlet that ran the story, with honest words for what is unknown", () => {
  assert.equal(alsoInLine([{ source: "Northern Wire", date: "2024-02-07" }, { source: "Bay Times" }]), "also in: Northern Wire · 2024-02-07; Bay Times · undated");
  assert.equal(alsoInLine([]), "");
  assert.equal(alsoInLine(undefined), "");
});

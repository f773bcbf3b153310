// The page's client against a stand-in fetch: headers, the streamed ask, and errors before and during it.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Api, ApiError } from "../../api/static/js/api.js";

function sseResponse(text, status = 200, headers = {}) {
  return new Response(text, { status, headers: { "Content-Type": "text/event-stream", ...headers } });
}

function recordingFetch(response) {
  const calls = [];
  const fetchImpl = async (path, init) => {
    calls.push({ path, init });
    return typeof response === "function" ? response() : response;
  };
  return { calls, fetchImpl };
}

test("the key goes as a Bearer header when there is one, and not otherwise", async () => {
  let key = "";
  const { calls, fetchImpl } = recordingFetch(() => new Response("{}", { status: 200 }));
  const api = new Api({ key: () => key, fetchImpl });
  await api.get("/v1/documents");
  key = "s3cret";
  await api.get("/v1/documents");
  assert.equal(calls[0].init.headers.Authorization, undefined);
  assert.equal(calls[1].init.headers.Authorization, "Bearer s3cret");
});

test("ask streams tokens then the answer, posting stream: true with the options", async () => {
  const body = 'event: token\r\ndata: {"text": "Up"}\r\n\r\nevent: token\r\ndata: {"text": "graded."}\r\n\r\nevent: answer\r\ndata: {"answer": "Upgraded. [1]", "citations": []}\r\n\r\n';
  const { calls, fetchImpl } = recordingFetch(sseResponse(body));
  const events = [];
  for await (const e of new Api({ fetchImpl }).ask({ question: "q", mode: "extractive", history: [] })) events.push(e);
  assert.deepEqual(events.map((e) => e.event), ["token", "token", "answer"]);
  assert.equal(events[2].data.answer, "Upgraded. [1]");
  assert.deepEqual(JSON.parse(calls[0].init.body), { question: "q", mode: "extractive", history: [], stream: true });
  assert.equal(calls[0].init.headers.Accept, "text/event-stream");
});

test("a refusal before the stream is an ApiError with the server's words and Retry-After", async () => {
  const refusal = new Response('{"error": {"type": "busy", "code": "busy", "message": "the model queue is full", "param": null}}', { status: 503, headers: { "Retry-After": "9" } });
  const api = new Api({ fetchImpl: recordingFetch(refusal).fetchImpl });
  await assert.rejects(async () => {
    for await (const _ of api.ask({ question: "q" })) assert.fail("no events expected");
  }, (err) => err instanceof ApiError && err.status === 503 && err.code === "busy" && err.retryAfter === 9 && err.message === "the model queue is full");
});

test("a server that cannot be reached is a network ApiError; Stop (abort) stays an AbortError", async () => {
  const down = new Api({ fetchImpl: async () => { throw new TypeError("fetch failed"); } });
  await assert.rejects(() => down.get("/readyz"), (err) => err instanceof ApiError && err.status === 0 && err.code === "network");
  const aborted = new Api({ fetchImpl: async () => { throw new DOMException("stopped", "AbortError"); } });
  await assert.rejects(() => aborted.get("/readyz"), (err) => err.name === "AbortError");
});

test("an unreadable event is an error, not a crash", async () => {
  const api = new Api({ fetchImpl: recordingFetch(sseResponse("event: answer\ndata: {not json\n\n")).fetchImpl });
  await assert.rejects(async () => {
    for await (const _ of api.ask({ question: "q" })) assert.fail("no events expected");
  }, (err) => err instanceof ApiError && err.code === "bad_stream");
});

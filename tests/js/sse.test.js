// node --test tests/js: the page's SSE parser, fed the way a network delivers bytes.
import assert from "node:assert/strict";
import { test } from "node:test";

import { SseParser, readEvents } from "../../api/static/js/sse.js";

const STREAM = 'event: token\r\ndata: {"text": "The"}\r\n\r\n: ping - 2024-01-01\r\n\r\nevent: token\r\ndata: {"text": " council"}\r\n\r\nevent: answer\r\ndata: {"answer": "The council. [1]"}\r\n\r\n';

function parseAll(chunks) {
  const parser = new SseParser();
  return chunks.flatMap((c) => parser.push(c));
}

test("events as sse-starlette writes them: CRLF lines, pings ignored", () => {
  assert.deepEqual(parseAll([STREAM]), [
    { event: "token", data: '{"text": "The"}' },
    { event: "token", data: '{"text": " council"}' },
    { event: "answer", data: '{"answer": "The council. [1]"}' },
  ]);
});

test("the same events whatever the chunk boundaries, even inside a CRLF", () => {
  const whole = parseAll([STREAM]);
  for (let size = 1; size <= 7; size++) {
    const chunks = [];
    for (let i = 0; i < STREAM.length; i += size) chunks.push(STREAM.slice(i, i + size));
    assert.deepEqual(parseAll(chunks), whole, `chunks of ${size}`);
  }
  const cr = STREAM.indexOf("\r\n") + 1; // split between \r and \n
  assert.deepEqual(parseAll([STREAM.slice(0, cr), STREAM.slice(cr)]), whole);
});

test("LF and CR line ends, multi-line data, default event name, field without a space", () => {
  assert.deepEqual(parseAll(["data: a\ndata: b\n\n", "event:x\rdata:1\r\r", "data\n\n"]), [
    { event: "message", data: "a\nb" },
    { event: "x", data: "1" },
    { event: "message", data: "" },
  ]);
});

test("an event cut off by the end of the stream is not dispatched; blank lines alone dispatch nothing", () => {
  assert.deepEqual(parseAll(["\n\n\r\n", "event: answer\ndata: {}"]), []);
});

test("a leading byte order mark is ignored", () => {
  assert.deepEqual(parseAll(["\ufeffdata: 1\n\n"]), [{ event: "message", data: "1" }]);
});

test("readEvents decodes UTF-8 split across network chunks", async () => {
  const bytes = new TextEncoder().encode('event: token\ndata: {"text": "Kyiv – Київ 🇺🇦"}\n\n');
  const stream = new ReadableStream({
    start(controller) {
      for (let i = 0; i < bytes.length; i += 3) controller.enqueue(bytes.slice(i, i + 3));
      controller.close();
    },
  });
  const events = [];
  for await (const e of readEvents(stream)) events.push(e);
  assert.deepEqual(events, [{ event: "token", data: '{"text": "Kyiv – Київ 🇺🇦"}' }]);
  assert.equal(JSON.parse(events[0].data).text, "Kyiv – Київ 🇺🇦");
});

test("stopping early cancels the body (the server sees the client leave)", async () => {
  let cancelled = false;
  const stream = new ReadableStream({
    pull(controller) {
      controller.enqueue(new TextEncoder().encode("event: token\ndata: {}\n\n"));
    },
    cancel() {
      cancelled = true;
    },
  });
  for await (const e of readEvents(stream)) {
    assert.equal(e.event, "token");
    break;
  }
  await new Promise((r) => setTimeout(r, 0));
  assert.ok(cancelled);
});

import assert from "node:assert/strict";
import { test } from "node:test";

import { locate, renderSegments, segments, spanOf, utf16Index } from "../../api/static/js/highlight.js";

test("code point offsets (Python) become UTF-16 indexes (JavaScript) after astral characters", () => {
  const text = "🇺🇦 Kyiv 😀 said: yes.";
  // Python: text.index("yes.") == 16 code points; in UTF-16 the flag's two letters and the emoji take 2 units each.
  assert.equal(utf16Index(text, 16), 19);
  assert.equal(text.slice(utf16Index(text, 16), utf16Index(text, 20)), "yes.");
  assert.equal(utf16Index("plain", 3), 3);
  assert.equal(utf16Index("plain", 99), 5);
  assert.equal(utf16Index("😀", 99), 2);
});

test("locate trusts a span that holds the quote, searches when it does not, and gives up honestly", () => {
  const text = "First sentence. The council was created. Last one.";
  assert.deepEqual(locate(text, { text: "The council was created.", start: 16, end: 40 }), [16, 40]);
  assert.deepEqual(locate(text, { text: "The council was created.", start: 0, end: 5 }), [16, 40]); // stale span
  assert.deepEqual(locate(text, { text: "", start: 0, end: 5 }), [0, 5]);
  assert.equal(locate(text, { text: "Not in the article.", start: 0, end: 5 }), null);
  assert.equal(locate(text, { text: "Not there.", start: undefined, end: undefined }), null);
  const astral = "😀 The council was created.";
  assert.deepEqual(locate(astral, { text: "The council was created.", start: 2, end: 26 }), [3, 27]);
});

test("spanOf converts and rejects non-spans", () => {
  assert.deepEqual(spanOf("😀abc", [1, 3]), [2, 4]);
  assert.equal(spanOf("abc", null), null);
  assert.equal(spanOf("abc", [2, 2]), null);
});

test("segments: quotes inside a passage, overlapping and unsorted ranges, clamped ends", () => {
  const text = "aaaa PASSAGE with QUOTE inside bbbb";
  const p = [5, 30];
  const q = [18, 23];
  assert.deepEqual(segments(text, [q], [p]), [
    { kind: "plain", text: "aaaa " },
    { kind: "passage", text: "PASSAGE with " },
    { kind: "quote", text: "QUOTE" },
    { kind: "passage", text: " inside" },
    { kind: "plain", text: " bbbb" },
  ]);
  const merged = segments("0123456789", [[6, 99], [2, 4], [3, 5]], []);
  assert.deepEqual(merged.map((s) => [s.kind, s.text]), [["plain", "01"], ["quote", "234"], ["plain", "5"], ["quote", "6789"]]);
  assert.deepEqual(segments("abc", [], []), [{ kind: "plain", text: "abc" }]);
  assert.deepEqual(segments("", [[0, 3]], []), []);
  const all = segments(text, [q, [0, 2]], [p, null]);
  assert.equal(all.map((s) => s.text).join(""), text);
});

// Just enough of a DOM to see what renderSegments builds.
function fakeDocument() {
  const make = (tag) => ({
    tag,
    className: "",
    children: [],
    appendChild(child) {
      this.children.push(child);
      return child;
    },
    replaceChildren(...nodes) {
      this.children = nodes;
    },
    get textContent() {
      return this.children.map((c) => c.textContent ?? c.text).join("");
    },
  });
  return { createElement: make, createTextNode: (text) => ({ tag: "#text", text }) };
}

test("renderSegments builds text nodes and <mark>, never HTML, and returns the first mark", () => {
  const doc = fakeDocument();
  const container = doc.createElement("div");
  const text = 'Before <img src=x onerror="alert(1)"> and <script>alert(2)</script> after.';
  const first = renderSegments(doc, container, segments(text, [[7, 37], [42, 67]], [[0, 74]]));
  assert.equal(container.textContent, text);
  assert.equal(first.tag, "mark");
  assert.equal(first.textContent, '<img src=x onerror="alert(1)">');
  const tags = container.children.map((c) => c.tag);
  assert.deepEqual(tags, ["span", "mark", "span", "mark", "span"]);
  assert.ok(container.children.every((c) => c.children.every((n) => n.tag === "#text")));
  assert.equal(container.children[0].className, "passage");
  assert.equal(renderSegments(doc, container, segments("plain", [], [])), null);
});

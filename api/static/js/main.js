// The chat page: wiring between the DOM and the server. Logic that can be tested without a browser lives
// in the modules it imports (sse, citations, highlight, format, api); this file only builds and updates
// elements, always with text nodes (dom.js), never HTML strings.

import { Api, ApiError, networkError, streamError } from "./api.js";
import { citationTarget, closestDocuments, sourceEntries, splitMarkers } from "./citations.js";
import { checkEntries, verdictView } from "./claims.js";
import { $, h } from "./dom.js";
import { alsoInLine, bytes, describeError, metaLine, safeUrl, timingLine } from "./format.js";
import { locate, renderSegments, segments, spanOf } from "./highlight.js";

const KEY_STORAGE = "newsrag.api_key";
const READY_POLL_MS = 5000;
const HISTORY_TURNS = 10; // earlier question/answer pairs sent with a follow-up (the server trims further)

const keyStore = {
  get() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || "";
    } catch {
      return "";
    }
  },
  set(value) {
    try {
      sessionStorage.setItem(KEY_STORAGE, value);
    } catch {
      // storage refused (private mode): the key lasts as long as this page instead
      memoryKey = value;
    }
  },
  clear() {
    memoryKey = "";
    try {
      sessionStorage.removeItem(KEY_STORAGE);
    } catch {
      // nothing stored
    }
  },
};
let memoryKey = "";

const api = new Api({ key: () => keyStore.get() || memoryKey });

const els = {};
const state = {
  config: null,
  turns: [],
  nextTurnId: 1,
  controller: null, // the running question's AbortController
  docs: new Map(), // doc_id -> GET /v1/documents/{id}, cleared on every write
  triggers: {}, // panel id -> the element that opened it, for focus on close
  panelSeq: 0,
  readyTimer: null,
};

// --- start ---------------------------------------------------------------------------------------------------

function grab() {
  for (const id of [
    "status", "docs-open", "banner", "conversation", "empty", "ask-form", "options", "options-summary", "mode", "since", "until", "top-k",
    "question", "send", "stop", "new-chat", "check-mode", "article-panel", "article-title", "article-meta", "article-link", "article-quote", "article-note",
    "article-text", "docs-panel", "docs-title", "upload", "dropzone", "upload-types", "choose-files", "file-input", "upload-list", "upload-off",
    "delete-off", "doc-list-note", "doc-list", "key-dialog", "key-form", "key-input", "key-error", "confirm-dialog", "confirm-text", "announcer",
  ]) {
    els[id.replace(/-(\w)/g, (_, c) => c.toUpperCase())] = document.getElementById(id);
  }
}

async function connect() {
  setStatus("Connecting…");
  try {
    state.config = await api.get("/v1/config");
  } catch (err) {
    const d = describeError(err);
    setStatus("Offline");
    showBanner(sentence(d), "Try again", connect);
    return;
  }
  applyConfig(state.config);
  hideBanner();
  if (state.config.auth_required && !api.key()) {
    setStatus("Waiting for the API key");
    askForKey();
    return;
  }
  await checkReady();
}

function applyConfig(config) {
  els.topK.max = String(config.max_top_k);
  els.topK.placeholder = String(config.top_k);
  els.mode.value = config.mode;
  els.question.maxLength = config.max_question_chars;
  els.uploadTypes.textContent = listWords(byPreference(config.upload_types, [".txt", ".md", ".html", ".htm"]));
  els.fileInput.accept = config.upload_types.join(",");
  els.upload.hidden = !config.allow_uploads;
  els.uploadOff.hidden = config.allow_uploads;
  els.uploadOff.textContent = "Uploading is turned off on this server (RAG_ALLOW_UPLOADS=false).";
  els.deleteOff.hidden = config.allow_deletes;
  els.deleteOff.textContent = "Deleting is turned off on this server (RAG_ALLOW_DELETES=false).";
  if (window.matchMedia("(min-width: 900px)").matches) els.options.open = true;
  summarizeOptions();
}

function byPreference(items, order) {
  const rank = (x) => (order.includes(x) ? order.indexOf(x) : order.length);
  return [...items].sort((a, b) => rank(a) - rank(b));
}

function listWords(items) {
  return items.length < 2 ? items.join("") : `${items.slice(0, -1).join(", ")} or ${items[items.length - 1]}`;
}

async function checkReady() {
  clearTimeout(state.readyTimer);
  try {
    const ready = await api.get("/readyz");
    hideBanner();
    els.status.replaceChildren(
      `${ready.index.documents} ${ready.index.documents === 1 ? "article" : "articles"}`,
      h("span", { class: "wide-only" }, ` · ${ready.index.passages} passages`),
    );
    return true;
  } catch (err) {
    if (err.status === 401) {
      keyStore.clear();
      askForKey("The key was not accepted.");
      return false;
    }
    const d = describeError(err);
    setStatus("Not ready");
    showBanner(`${sentence(d)} Checking again every ${READY_POLL_MS / 1000} s.`, "Check now", checkReady);
    state.readyTimer = setTimeout(checkReady, READY_POLL_MS);
    return false;
  }
}

/** "The server is not ready: no index at …." from describeError's title and detail. */
function sentence(d) {
  const text = d.detail ? `${d.title}: ${d.detail}` : d.title;
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

function setStatus(text) {
  els.status.textContent = text;
}

function showBanner(text, actionLabel = null, action = null) {
  els.banner.hidden = false;
  $(".banner-text", els.banner).textContent = text;
  const button = $(".banner-action", els.banner);
  button.hidden = !actionLabel;
  button.textContent = actionLabel || "";
  button.onclick = action;
}

function hideBanner() {
  els.banner.hidden = true;
}

function announce(text) {
  els.announcer.textContent = "";
  requestAnimationFrame(() => {
    els.announcer.textContent = text;
  });
}

// --- the API key -----------------------------------------------------------------------------------------------

function askForKey(message = "") {
  els.keyError.textContent = message;
  els.keyInput.value = "";
  if (!els.keyDialog.open) els.keyDialog.showModal();
  els.keyInput.focus();
}

async function submitKey(event) {
  event.preventDefault();
  const key = els.keyInput.value.trim();
  if (!key) return;
  keyStore.set(key);
  try {
    await api.get("/readyz");
  } catch (err) {
    if (err.status === 401) {
      keyStore.clear();
      els.keyError.textContent = "That key was not accepted. Check RAG_API_KEY on the server.";
      els.keyInput.select();
      return;
    }
    // 503 and friends: the key is fine, the server is not ready; checkReady says so below.
  }
  els.keyDialog.close("ok");
  els.question.focus();
  await checkReady();
}

function keyDialogClosed() {
  if (els.keyDialog.returnValue !== "ok" && !api.key()) {
    setStatus("API key needed");
    showBanner("This server needs an API key before it shows any article.", "Enter the key", () => askForKey());
  }
  els.keyDialog.returnValue = "";
}

// --- asking ------------------------------------------------------------------------------------------------------

function options() {
  const body = { mode: els.mode.value };
  if (els.since.value) body.since = els.since.value;
  if (els.until.value) body.until = els.until.value;
  const k = els.topK.value.trim();
  if (k) body.top_k = Number(k);
  return body;
}

function summarizeOptions() {
  const o = options();
  const parts = [o.mode, `top ${o.top_k ?? state.config?.top_k ?? "k"}`];
  if (o.since) parts.push(`since ${o.since}`);
  if (o.until) parts.push(`until ${o.until}`);
  els.optionsSummary.textContent = `Options: ${parts.join(" · ")}`;
}

function historyBefore(turn) {
  const done = state.turns.slice(0, state.turns.indexOf(turn)).filter((t) => t.answer);
  return done.slice(-HISTORY_TURNS).flatMap((t) => [
    { role: "user", content: t.question },
    { role: "assistant", content: t.answer.answer },
  ]);
}

function checkOptions() {
  const { mode, ...rest } = options(); // a check quotes; it has no mode
  return rest;
}

// --- checking a claim ------------------------------------------------------------------------------------------

function setCheckMode() {
  const on = els.checkMode.checked;
  els.question.placeholder = on ? "A sentence to check against the articles…" : "Ask about the articles…";
  els.send.textContent = on ? "Check" : "Ask";
}

async function runCheck(turn) {
  const controller = new AbortController();
  state.controller = controller;
  setAsking(true);
  turn.answer = null;
  setAnswer(turn, [h("p", { class: "pending" }, "Checking the claim against the articles…")], true);
  try {
    turn.check = await api.check({ claim: turn.question, ...checkOptions() }, { signal: controller.signal });
    renderCheck(turn);
  } catch (err) {
    if (controller.signal.aborted) renderStopped(turn);
    else renderError(turn, err instanceof ApiError ? err : networkError(err));
  } finally {
    state.controller = null;
    setAsking(false);
  }
}

function renderCheck(turn) {
  const v = verdictView(turn.check);
  const entries = checkEntries(turn.check);
  const parts = [
    h("div", { class: `verdict verdict-${v.tone}` }, h("p", { class: "verdict-title" }, v.title), h("p", {}, v.text)),
    h("p", { class: "timing" }, [v.how, turn.check.as_of ? `as of ${turn.check.as_of}` : ""].filter(Boolean).join(" · ")),
  ];
  if (entries.length) {
    const heading = turn.check.verdict === "supported" ? "Quotes that support it" : "Quotes that contradict it";
    parts.push(
      h("section", { class: "sources", "aria-label": heading },
        h("h3", {}, heading),
        h("ol", {}, entries.map((entry) => sourceItem(turn, entry)))),
    );
  }
  setAnswer(turn, parts, false);
  announce(`Claim ${v.title.toLowerCase()}`);
}

function newTurn(question, kind = "ask") {
  const answerEl = h("div", { class: "answer", "aria-busy": "true" });
  const el = h(
    "article",
    { class: "turn" },
    h("p", { class: "question" }, h("span", { class: kind === "check" ? "claim-label" : "visually-hidden" }, kind === "check" ? "Check: " : "You asked: "), question),
    answerEl,
  );
  els.empty.hidden = true;
  els.conversation.append(el);
  scrollToEnd(); // the question just asked is what the reader looks at
  const turn = { id: state.nextTurnId++, question, kind, el, answerEl, answer: null, check: null };
  state.turns.push(turn);
  return turn;
}

async function run(turn) {
  const controller = new AbortController();
  state.controller = controller;
  setAsking(true);
  turn.answer = null;
  const body = { question: turn.question, history: historyBefore(turn), ...options() };
  setAnswer(turn, [h("p", { class: "pending" }, "Searching the articles…")], true);
  let draft = "";
  try {
    for await (const { event, data } of api.ask(body, { signal: controller.signal })) {
      if (event === "token") {
        draft += typeof data.text === "string" ? data.text : "";
        renderDraft(turn, draft);
      } else if (event === "answer") {
        turn.answer = data;
        renderAnswer(turn);
      } else if (event === "error") {
        throw streamError(data);
      }
    }
    if (!turn.answer) throw new ApiError(502, "incomplete", "the connection closed before the checked answer arrived");
  } catch (err) {
    turn.answer = null;
    if (controller.signal.aborted) renderStopped(turn);
    else renderError(turn, err instanceof ApiError ? err : networkError(err));
  } finally {
    state.controller = null;
    setAsking(false);
  }
}

function setAsking(on) {
  const focusWasOn = document.activeElement;
  els.send.hidden = on; // Stop takes Ask's place while the answer is written
  els.stop.hidden = !on;
  if (on && focusWasOn === els.send) els.stop.focus();
  if (!on && focusWasOn === els.stop) els.question.focus();
}

function stop() {
  if (state.controller) state.controller.abort();
}

function setAnswer(turn, children, busy) {
  turn.answerEl.setAttribute("aria-busy", busy ? "true" : "false");
  const stick = nearBottom();
  turn.answerEl.replaceChildren(...children.filter(Boolean));
  if (stick) scrollToEnd();
}

function nearBottom() {
  const c = els.conversation;
  return c.scrollHeight - c.scrollTop - c.clientHeight < 80;
}

function scrollToEnd() {
  els.conversation.scrollTop = els.conversation.scrollHeight;
}

function renderDraft(turn, draft) {
  setAnswer(turn, [
    h("p", { class: "draft" }, h("span", { class: "draft-label" }, "Draft, being checked: "), draft),
  ], true);
}

function renderAnswer(turn) {
  const a = turn.answer;
  const parts = [];
  if (a.abstained) {
    parts.push(h("div", { class: "abstain" }, h("p", { class: "abstain-title" }, "The articles don't say"), h("p", {}, a.answer)));
  } else {
    parts.push(h("p", { class: "answer-text" }, linkMarkers(turn, a.answer)));
    if (a.quoted_because === "draft_unsupported") {
      parts.push(h("p", { class: "note" }, "None of the model's sentences passed the check against the articles, so these are quotes from them."));
    } else if (a.quoted_because === "typed_answer" || a.quoted_because === "reporting_question" || a.quoted_because === "drafts_measured_weak") {
      parts.push(h("p", { class: "note" }, "The articles state this directly, so it is quoted rather than reworded."));
    }
  }
  const facts = [timingLine(a.timings), a.mode];
  if (a.standalone_question && a.standalone_question !== a.question) facts.push(`searched as “${a.standalone_question}”`);
  parts.push(h("p", { class: "timing" }, facts.filter(Boolean).join(" · ")));

  const entries = sourceEntries(a.citations);
  if (entries.length) {
    parts.push(
      h("section", { class: "sources", "aria-label": "Sources" },
        h("h3", {}, "Sources"),
        h("ol", {}, entries.map((entry) => sourceItem(turn, entry)))),
    );
  }
  const closest = closestDocuments(a.sources);
  if (closest.length) {
    const list = h("ol", { class: "passages" }, closest.map((s) => passageItem(s)));
    parts.push(
      a.abstained || !entries.length
        ? h("section", { class: "sources", "aria-label": "Closest sources" }, h("h3", {}, "Closest sources"), list)
        : h("details", { class: "retrieved" }, h("summary", {}, `Retrieved articles (${closest.length})`), list),
    );
  }
  setAnswer(turn, parts, false);
}

function linkMarkers(turn, text) {
  const citations = turn.answer.citations;
  return splitMarkers(text).flatMap((part) => {
    if (!part.numbers) return [part.text];
    return part.numbers.map((n) => {
      const target = citationTarget(citations, n);
      if (!target) return `[${n}]`;
      return h("a", {
        href: `#source-${turn.id}-${n}`,
        class: "cite",
        "aria-label": `[${n}] ${target.title || target.doc_id}`,
        onclick: (e) => {
          e.preventDefault();
          openArticle(target, e.currentTarget);
        },
      }, `[${n}]`);
    });
  });
}

function sourceItem(turn, entry) {
  const quotes = entry.quotes.map((q) => q.text).filter(Boolean);
  return h("li", { id: `source-${turn.id}-${entry.number}`, value: entry.number },
    articleLink(entry, entry.title || entry.doc_id),
    h("span", { class: "meta" }, ` — ${metaLine(entry)}`),
    alsoIn(entry.also_in),
    quotes.length ? h("q", { class: "source-quote" }, quotes.join(" … ")) : null);
}

function alsoIn(copies) {
  const line = alsoInLine(copies);
  return line ? h("span", { class: "also-in" }, line) : null;
}

function passageItem(source) {
  const target = { doc_id: source.doc_id, title: source.title, source: source.source, date: source.date, url: source.url, passage_ids: [source.passage_id], quotes: [], passageSpan: source.span };
  return h("li", {},
    articleLink(target, source.title || source.doc_id),
    h("span", { class: "meta" }, ` — ${metaLine(source)}`),
    alsoIn(source.also_in));
}

function articleLink(target, text) {
  return h("a", {
    href: "#article-panel",
    class: "source-title",
    onclick: (e) => {
      e.preventDefault();
      openArticle(target, e.currentTarget);
    },
  }, text);
}

function renderStopped(turn) {
  setAnswer(turn, [
    h("p", { class: "note" }, "Stopped. The draft had not been checked, so it is not shown."),
    h("p", {}, h("button", { type: "button", onclick: () => retry(turn) }, "Ask again")),
  ], false);
}

function renderError(turn, err) {
  const d = describeError(err);
  const retryButton = h("button", { type: "button", onclick: () => retry(turn) }, "Retry");
  const actions = [retryButton];
  if (d.needsKey) {
    keyStore.clear();
    actions.push(h("button", { type: "button", onclick: () => askForKey() }, "Enter the key"));
    askForKey("The key was not accepted.");
  }
  setAnswer(turn, [
    h("div", { class: "error", role: "alert" },
      h("p", { class: "error-title" }, d.title),
      d.detail ? h("p", {}, d.detail) : null,
      h("p", { class: "actions" }, actions)),
  ], false);
  if (d.retryAfter) countdown(retryButton, d.retryAfter); // once the button is in the page
}

function countdown(button, secondsLeft) {
  button.disabled = true;
  const tick = () => {
    if (!button.isConnected) return;
    if (secondsLeft <= 0) {
      button.disabled = false;
      button.textContent = "Retry";
      return;
    }
    button.textContent = `Retry in ${secondsLeft} s`;
    secondsLeft -= 1;
    setTimeout(tick, 1000);
  };
  tick();
}

function retry(turn) {
  if (state.controller) return;
  if (turn.kind === "check") runCheck(turn);
  else run(turn);
}

function newChat() {
  stop();
  state.turns = [];
  for (const el of [...els.conversation.querySelectorAll(".turn")]) el.remove();
  els.empty.hidden = false;
  els.question.focus();
}

// --- panels ------------------------------------------------------------------------------------------------------

const PANELS = ["article-panel", "docs-panel"];

function showPanel(id, trigger) {
  for (const other of PANELS) if (other !== id) document.getElementById(other).hidden = true;
  if (trigger) state.triggers[id] = trigger;
  document.getElementById(id).hidden = false;
  document.body.classList.add("panel-open");
  els.docsOpen.setAttribute("aria-expanded", id === "docs-panel" ? "true" : "false");
}

function closePanel(id) {
  document.getElementById(id).hidden = true;
  document.body.classList.remove("panel-open");
  els.docsOpen.setAttribute("aria-expanded", "false");
  const trigger = state.triggers[id];
  if (trigger && trigger.isConnected) {
    const host = trigger.closest(".panel");
    if (host && host.hidden) showPanel(host.id); // opened from the documents list: back to it
    trigger.focus();
  }
}

function openPanelId() {
  return PANELS.find((id) => !document.getElementById(id).hidden) || null;
}

async function loadDocument(docId) {
  if (!state.docs.has(docId)) state.docs.set(docId, api.get(`/v1/documents/${encodeURIComponent(docId)}`));
  try {
    return await state.docs.get(docId);
  } catch (err) {
    state.docs.delete(docId);
    throw err;
  }
}

/** target: {doc_id, title, source, date, url, quotes: [{text, start, end}], passage_ids, passageSpan?, number?} */
async function openArticle(target, trigger) {
  const seq = ++state.panelSeq;
  showPanel("article-panel", trigger);
  els.articlePanel.dataset.docId = target.doc_id;
  els.articleTitle.textContent = target.title || target.doc_id;
  els.articleMeta.textContent = metaLine(target);
  els.articleLink.replaceChildren();
  const quotes = target.quotes.map((q) => q.text).filter(Boolean);
  els.articleQuote.hidden = !quotes.length;
  els.articleQuote.replaceChildren(
    target.number ? h("span", { class: "quote-label" }, `[${target.number}] `) : "",
    quotes.join(" … "),
  );
  els.articleNote.textContent = "Loading the article…";
  els.articleText.replaceChildren();
  els.articleTitle.focus();

  let doc;
  try {
    doc = await loadDocument(target.doc_id);
  } catch (err) {
    if (seq !== state.panelSeq) return;
    const d = describeError(err);
    els.articleNote.textContent = err.status === 404 ? "This article is no longer in the index." : sentence(d);
    return;
  }
  if (seq !== state.panelSeq) return; // another citation was opened meanwhile

  els.articleTitle.textContent = doc.title || target.title || doc.doc_id;
  els.articleMeta.textContent = `${metaLine(doc)} · ${doc.doc_id}`;
  const url = safeUrl(doc.url || target.url);
  if (url) els.articleLink.replaceChildren(h("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, url));

  const marks = target.quotes.map((q) => locate(doc.text, q));
  const spans = new Map((doc.passage_spans || []).map((p) => [p.passage_id, p.span]));
  const regions = (target.passage_ids || []).map((pid) => spanOf(doc.text, spans.get(pid) || null));
  if (!regions.some(Boolean) && target.passageSpan) regions.push(spanOf(doc.text, target.passageSpan));
  const first = renderSegments(document, els.articleText, segments(doc.text, marks.filter(Boolean), regions));
  const missing = marks.filter((m) => !m).length;
  els.articleNote.textContent = missing
    ? "The quote was not found in the article's current text: it may have changed since the answer."
    : "";
  const focusOn = first || els.articleText.querySelector(".passage");
  if (focusOn) focusOn.scrollIntoView({ block: "center" });
}

// --- documents ---------------------------------------------------------------------------------------------------

async function openDocs() {
  showPanel("docs-panel", els.docsOpen);
  els.docsTitle.focus();
  await refreshDocs();
}

async function refreshDocs() {
  els.docListNote.textContent = "Loading…";
  try {
    const list = await api.get("/v1/documents");
    els.docList.replaceChildren(...list.documents.map(docItem));
    els.docListNote.textContent = list.total === 1 ? "1 article" : `${list.total} articles`;
  } catch (err) {
    const d = describeError(err);
    els.docListNote.textContent = sentence(d);
    if (d.needsKey) askForKey("The key was not accepted.");
  }
}

function docItem(doc) {
  const name = doc.title || doc.doc_id;
  const passages = doc.passages === 1 ? "1 passage" : `${doc.passages} passages`;
  const read = { doc_id: doc.doc_id, title: doc.title, source: doc.source, date: doc.date, quotes: [], passage_ids: [] };
  return h("li", { class: "doc", "data-doc-id": doc.doc_id },
    h("div", { class: "doc-main" },
      h("span", { class: "doc-title" }, name),
      h("span", { class: "meta" }, `${metaLine(doc)} · ${passages}`),
      doc.title ? h("span", { class: "doc-id" }, doc.doc_id) : null),
    h("div", { class: "doc-actions" },
      h("button", { type: "button", onclick: (e) => openArticle(read, e.currentTarget) }, "Read", h("span", { class: "visually-hidden" }, ` ${name}`)),
      state.config?.allow_deletes
        ? h("button", { type: "button", class: "danger", onclick: (e) => confirmDelete(doc, e.currentTarget) }, "Delete", h("span", { class: "visually-hidden" }, ` ${name}`))
        : null));
}

function confirmDelete(doc, trigger) {
  els.confirmText.textContent = `“${doc.title || doc.doc_id}” (${doc.doc_id}) will be removed from the index and its stored copy deleted. Answers will no longer cite it.`;
  els.confirmDialog.returnValue = "";
  els.confirmDialog.addEventListener("close", () => {
    if (els.confirmDialog.returnValue === "delete") deleteDocument(doc);
    else trigger.focus();
  }, { once: true });
  els.confirmDialog.showModal();
}

async function deleteDocument(doc) {
  const name = doc.title || doc.doc_id;
  els.docListNote.textContent = `Deleting ${name}…`;
  try {
    await api.delete(`/v1/documents/${encodeURIComponent(doc.doc_id)}`);
  } catch (err) {
    const d = describeError(err);
    els.docListNote.textContent = `${name} was not deleted. ${sentence(d)}`;
    return;
  }
  state.docs.clear();
  await refreshDocs();
  els.docListNote.textContent = `Deleted ${name}. ${els.docListNote.textContent}`;
  announce(`Deleted ${name}`);
  els.docsTitle.focus();
  checkReady();
}

async function uploadFiles(files) {
  if (!state.config?.allow_uploads || !files.length) return;
  const jobs = files.map((file) => ({ file, row: uploadRow(file) }));
  for (const { file, row } of jobs) await uploadOne(file, row);
  state.docs.clear();
  await refreshDocs();
  checkReady();
}

function uploadRow(file) {
  const progress = h("progress", { max: "1", value: "0", "aria-label": `Sending ${file.name}` });
  const verdict = h("span", { class: "verdict" }, "Waiting…");
  const row = h("li", { class: "upload", "data-file": file.name }, h("span", { class: "file-name" }, `${file.name} (${bytes(file.size)})`), progress, verdict);
  els.uploadList.prepend(row);
  return { row, progress, verdict };
}

async function uploadOne(file, { row, progress, verdict }) {
  const limit = state.config.max_upload_bytes;
  if (file.size > limit) {
    return fail(row, progress, verdict, `Not added: larger than this server's limit of ${bytes(limit)}.`);
  }
  verdict.textContent = "Sending…";
  try {
    const { body } = await api.upload(file, {
      onProgress: (fraction) => {
        progress.value = fraction;
        if (fraction >= 1) verdict.textContent = "Indexing…";
      },
    });
    progress.value = 1;
    const d = body.document;
    const passages = d.passages === 1 ? "1 passage" : `${d.passages} passages`;
    verdict.textContent = {
      added: `Added as ${d.doc_id} (${passages}).`,
      updated: `Updated ${d.doc_id} (${passages}).`,
      unchanged: `Already indexed as ${d.doc_id}, unchanged.`,
    }[body.status] || `Stored as ${d.doc_id}.`;
    row.classList.add("ok");
    row.dataset.docId = d.doc_id;
  } catch (err) {
    const e = describeError(err);
    fail(row, progress, verdict, `Not added: ${e.detail || e.title}`);
    if (e.needsKey) askForKey("The key was not accepted.");
  }
}

function fail(row, progress, verdict, text) {
  progress.hidden = true;
  verdict.textContent = text;
  row.classList.add("failed");
}

// --- events --------------------------------------------------------------------------------------------------------

function wire() {
  els.askForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const question = els.question.value.trim();
    if (!question || state.controller) return;
    els.question.value = "";
    if (els.checkMode.checked) runCheck(newTurn(question, "check"));
    else run(newTurn(question));
  });
  els.checkMode.addEventListener("change", setCheckMode);
  els.question.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      els.askForm.requestSubmit();
    } else if (e.key === "Escape" && state.controller) {
      stop();
    }
  });
  els.stop.addEventListener("click", stop);
  els.newChat.addEventListener("click", newChat);
  for (const el of [els.mode, els.since, els.until, els.topK]) el.addEventListener("change", summarizeOptions);

  els.docsOpen.addEventListener("click", () => (openPanelId() === "docs-panel" ? closePanel("docs-panel") : openDocs()));
  for (const button of document.querySelectorAll("[data-close]")) {
    button.addEventListener("click", () => closePanel(button.dataset.close));
  }
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape" || e.defaultPrevented || document.querySelector("dialog[open]")) return;
    const open = openPanelId();
    if (open && !(e.target === els.question && state.controller)) closePanel(open);
  });

  els.keyForm.addEventListener("submit", submitKey);
  els.keyDialog.addEventListener("close", keyDialogClosed);

  els.chooseFiles.addEventListener("click", () => els.fileInput.click());
  els.fileInput.addEventListener("change", () => {
    const files = [...els.fileInput.files];
    els.fileInput.value = "";
    uploadFiles(files);
  });
  els.dropzone.addEventListener("dragover", (e) => {
    e.preventDefault();
    els.dropzone.classList.add("dragging");
  });
  els.dropzone.addEventListener("dragleave", () => els.dropzone.classList.remove("dragging"));
  els.dropzone.addEventListener("drop", (e) => {
    e.preventDefault();
    els.dropzone.classList.remove("dragging");
    uploadFiles([...(e.dataTransfer?.files || [])]);
  });
  // A file dropped anywhere else must not make the browser leave the page to show it.
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (e) => e.preventDefault());
}

grab();
wire();
connect();

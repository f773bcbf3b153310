"""The HTTP API over a real (tmp) index with a hashing embedder and scripted generators: fast, no models."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from rag.answer.pipeline import Pipeline
from rag.ingest.indexing import index_paths
from rag.models.generator import Usage
from tests.fakes import ScriptedGenerator, strength_rule

QUESTION = "What was decided about the NATO-Ukraine Council?"
COUNCIL = (
    "The NATO-Ukraine Commission is set to be upgraded to a NATO-Ukraine Council, giving the country an equal seat at "
    "the table with the 31 allies."
)
COUNCIL_DOCS = {"001_d33884d0ecc97606", "000_ff6882ef16d64a7d"}
NEW_STORY = b"""Harbour Town Opens Floating Library

The town of Lowmere opened a floating library on its harbour on Saturday, the mayor said.
The barge holds four thousand books and will moor at a different pier each week.
Volunteers from the rowing club built the shelves over the winter months.
"""


class BlockingGenerator(ScriptedGenerator):
    """Holds each token until `release` is set: a model that is busy for as long as a test wants."""

    def __init__(self, reply: str, release: threading.Event):
        super().__init__(reply)
        self.release = release

    def stream(self, messages, **kw) -> Iterator[str]:
        for piece in super().stream(messages, **kw):
            self.release.wait(10)
            yield piece


class EndlessGenerator(ScriptedGenerator):
    """Never finishes on its own; records when its consumer closed it."""

    def __init__(self) -> None:
        super().__init__("")
        self.closed = threading.Event()

    def stream(self, messages, **kw) -> Iterator[str]:
        self.calls.append(messages)
        self.usage = Usage(prompt_tokens=10)
        try:
            while True:
                time.sleep(0.01)
                self.usage.completion_tokens += 1
                yield " council"
        finally:
            self.closed.set()


class ExplodingGenerator(ScriptedGenerator):
    def stream(self, messages, **kw) -> Iterator[str]:
        raise RuntimeError("secret internal detail")


@pytest.fixture
def index(settings, hashing_embedder, corpus_copy):
    built, _ = index_paths(settings, hashing_embedder, [corpus_copy])
    return built


@pytest.fixture
def make_app(settings, hashing_embedder, prompts, index):
    """make_app(generator=..., **settings overrides) -> FastAPI app over the tmp index."""

    def make(generator=None, **overrides):
        s = settings.model_copy(update={"support_threshold": 0.5, **overrides})
        gen = generator if generator is not None else ScriptedGenerator(COUNCIL + " [1]")
        return create_app(s, Pipeline(s, index, hashing_embedder, gen, prompts, strength_rule()))

    return make


@pytest.fixture
def client(make_app) -> Iterator[TestClient]:
    with TestClient(make_app()) as c:
        yield c


def sse(text: str) -> list[tuple[str, str]]:
    events = []
    for block in re.split(r"\r?\n\r?\n", text.strip()):
        name, data = "message", []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            events.append((name, "\n".join(data)))
    return events


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and {"type", "message", "code"} <= set(body["error"]), body
    assert "Traceback" not in response.text
    return body["error"]


def test_ask_returns_verified_answer_with_citations_and_timings(client):
    r = client.post("/v1/ask", json={"question": QUESTION, "top_k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert not body["abstained"] and body["answer"].endswith("[1]")
    c = body["citations"][0]
    assert c["doc_id"] in COUNCIL_DOCS and c["passage_id"].startswith(c["doc_id"])
    assert {"title", "source", "date", "quote", "span"} <= set(c)
    text = client.get(f"/v1/documents/{c['doc_id']}").json()["text"]
    assert text[c["span"][0] : c["span"][1]] == c["quote"]
    assert c["quotes"][0] == {
        "text": c["quote"],
        "span": c["span"],
        "support": c["support"],
    }  # one per passage, quotes under it
    t = body["timings"]
    assert (
        t["retrieval_s"] > 0
        and t["ttft_s"] is not None
        and t["completion_tokens"] > 0
        and t["total_s"] >= t["retrieval_s"]
    )


def test_ask_extractive_mode_and_unknown_fields_ignored(client):
    r = client.post("/v1/ask", json={"question": QUESTION, "mode": "extractive", "temperature": 0.3, "whatever": [1]})
    assert r.status_code == 200, r.text
    assert r.json()["mode"] == "extractive" and r.json()["citations"]


def test_ask_about_the_reporting_names_the_outlet_without_calling_the_model(client):
    question = "Which outlet reported that the NATO-Ukraine Commission is set to be upgraded to a NATO-Ukraine Council?"
    body = client.post("/v1/ask", json={"question": question}).json()
    assert (
        body["answer"].startswith("The Independent reported it on 15 June 2023: “")
        and body["quoted_because"] == "reporting_question"
    ), body["answer"]
    assert body["citations"][0]["source"] == "The Independent" and body["timings"]["completion_tokens"] == 0


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"question": "   "}, 400, "bad_input"),
        ({"question": "x" * 100_000}, 413, "too_large"),
        ({"question": QUESTION, "top_k": -1}, 400, "bad_input"),
        ({"question": QUESTION, "top_k": 0}, 400, "bad_input"),
        ({"question": QUESTION, "top_k": 10_000}, 400, "bad_input"),
        ({"question": QUESTION, "since": "yesterday"}, 400, "bad_input"),
        ({"question": QUESTION, "until": "2024-13-45"}, 400, "bad_input"),
        ({"question": QUESTION, "since": "2024-01-01", "until": "2023-01-01"}, 400, "bad_input"),
        ({"question": 123}, 422, "validation_error"),
        ({"question": QUESTION, "top_k": "five"}, 422, "validation_error"),
        ({"question": QUESTION, "history": "not a list"}, 422, "validation_error"),
        ({"question": QUESTION, "history": [{"role": "wizard", "content": "x"}]}, 422, "validation_error"),
        ({"question": QUESTION, "mode": "poetry"}, 422, "validation_error"),
        ({}, 422, "validation_error"),
    ],
)
def test_ask_errors_map_to_status_codes(client, payload, status, code):
    r = client.post("/v1/ask", json=payload)
    assert r.status_code == status, r.text
    err = error_of(r)
    assert err["code"] == code and err["type"] == code and err["message"]
    if status == 422:
        assert "x" * 1000 not in r.text  # the offending input is not echoed back


def test_sse_stream_sends_tokens_then_verified_answer(client):
    r = client.post("/v1/ask", json={"question": QUESTION, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse(r.text)
    kinds = [k for k, _ in events]
    assert kinds[-1] == "answer" and set(kinds[:-1]) == {"token"} and len(kinds) > 5
    draft = "".join(json.loads(d)["text"] for k, d in events if k == "token")
    assert draft == COUNCIL + " [1]"
    final = json.loads(events[-1][1])
    assert final["citations"][0]["doc_id"] in COUNCIL_DOCS and final["answer"].endswith("[1]")
    assert final["timings"]["ttft_s"] is not None


def test_malformed_json_and_stream_errors_are_plain_json(client):
    r = client.post("/v1/ask", content=b'{"question": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and error_of(r)["code"] == "validation_error"
    r = client.post("/v1/ask", json={"question": "", "stream": True})  # checked before the stream starts
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/json")


def test_unexpected_error_is_json_500_without_details(make_app):
    with TestClient(make_app(ExplodingGenerator())) as c:
        r = c.post("/v1/ask", json={"question": QUESTION})
    assert r.status_code == 500
    assert error_of(r)["code"] == "internal_error" and "secret" not in r.text


def test_full_queue_answers_503_with_retry_after(make_app):
    release = threading.Event()
    app = make_app(
        BlockingGenerator(COUNCIL + " [1]", release), queue_max=1, model_slots=1
    )  # one answer at a time: the second waits
    queue = app.state.runtime.queue

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as c:
            first = [asyncio.create_task(c.post("/v1/ask", json={"question": QUESTION})) for _ in range(2)]
            for _ in range(200):
                if queue.in_flight == 2:
                    break
                await asyncio.sleep(0.01)
            busy = await c.post("/v1/ask", json={"question": QUESTION})
            extractive = await c.post("/v1/ask", json={"question": QUESTION, "mode": "extractive"})  # needs no model
            depth = queue.depth
            release.set()
            return busy, extractive, depth, await asyncio.gather(*first)

    busy, extractive, depth, done = asyncio.run(scenario())
    assert busy.status_code == 503 and error_of(busy)["code"] == "busy"
    assert int(busy.headers["Retry-After"]) >= 1
    assert extractive.status_code == 200 and depth == 1
    assert [r.status_code for r in done] == [200, 200]
    assert queue.in_flight == 0


@contextmanager
def served(app) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_client_disconnect_stops_generation(make_app):
    gen = EndlessGenerator()
    app = make_app(gen)
    with served(app) as base, httpx.Client(base_url=base, timeout=10) as c:
        with c.stream("POST", "/v1/ask", json={"question": QUESTION, "stream": True}) as r:
            for line in r.iter_lines():
                if line.startswith("event: token"):
                    break
        assert gen.closed.wait(5), "generation kept running after the client left"
        deadline = time.monotonic() + 5
        while app.state.runtime.queue.in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        assert app.state.runtime.queue.in_flight == 0


def test_openai_client_stream_and_non_stream_agree(make_app):
    import openai

    app = make_app()

    async def scenario():
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test/v1")
        client = openai.AsyncOpenAI(base_url="http://test/v1", api_key="unused", http_client=http)
        messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": QUESTION}]
        plain = await client.chat.completions.create(model="newsrag", messages=messages, temperature=0.7, max_tokens=5)
        stream = await client.chat.completions.create(model="newsrag", messages=messages, stream=True)
        chunks = [chunk async for chunk in stream]
        models = await client.models.list()
        await http.aclose()
        return plain, chunks, models

    plain, chunks, models = asyncio.run(scenario())
    content = plain.choices[0].message.content
    assert "[1]" in content and "\n\nSources:\n[1] " in content
    cites = plain.model_extra["citations"]
    assert cites and cites[0]["doc_id"] in COUNCIL_DOCS
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == content
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].model_extra["citations"] == cites
    assert [m.id for m in models.data] == ["newsrag"]


def test_openai_history_and_errors(client):
    history = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "It was upgraded [1].\n\nSources:\n[1] NATO — x, 2023"},
        {"role": "user", "content": [{"type": "text", "text": "And when did the commission meet?"}]},
    ]
    r = client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": history, "mode": "extractive", "n": 1})
    assert r.status_code == 200, r.text
    assert r.json()["object"] == "chat.completion" and r.json()["model"] == "newsrag"
    bad = client.post("/v1/chat/completions", json={"messages": [{"role": "assistant", "content": "hi"}]})
    assert bad.status_code == 400 and error_of(bad)["type"] == "invalid_request_error"
    wrong = client.post("/v1/chat/completions", json={"messages": "hi"})
    assert wrong.status_code == 422 and error_of(wrong)["type"] == "invalid_request_error"
    assert client.get("/v1/models/other").status_code == 404


def test_search(client):
    r = client.post("/v1/search", json={"query": "NATO Ukraine membership", "since": "2024-01-01", "method": "bm25"})
    assert r.status_code == 200, r.text
    assert {x["doc_id"] for x in r.json()["results"]} == {"002_e0b0d12e770a7305"}
    assert client.post("/v1/search", json={"query": "NATO", "method": "telepathy"}).status_code == 422
    assert client.post("/v1/search", json={"query": ""}).status_code == 400


def test_list_and_read_documents(client):
    listing = client.get("/v1/documents").json()
    assert listing["total"] == 5 and listing["generation"] >= 1
    doc = client.get("/v1/documents/001_d33884d0ecc97606").json()
    assert doc["text"] and doc["passage_ids"] and doc["passage_spans"][0]["passage_id"] == doc["passage_ids"][0]
    assert error_of(client.get("/v1/documents/nope"))["code"] == "not_found"
    traversal = client.get("/v1/documents/..%2F..%2Fetc%2Fpasswd")
    assert traversal.status_code == 400 and error_of(traversal)["code"] == "bad_input"


def test_upload_ask_delete_roundtrip(client, settings):
    r = client.post("/v1/documents", files={"file": ("lowmere.txt", NEW_STORY, "text/plain")})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "added" and r.json()["document"]["doc_id"] == "lowmere"
    stored = settings.index_dir / "documents" / r.json()["document"]["stored_as"]
    assert stored.is_file()
    hits = client.post("/v1/search", json={"query": "floating library Lowmere harbour"}).json()["results"]
    assert hits[0]["doc_id"] == "lowmere"
    answer = client.post(
        "/v1/ask", json={"question": "What did Lowmere open on its harbour?", "mode": "extractive"}
    ).json()
    assert any(c["doc_id"] == "lowmere" for c in answer["citations"])
    again = client.post("/v1/documents", files={"file": ("lowmere.txt", NEW_STORY, "text/plain")})
    assert again.status_code == 200 and again.json()["status"] == "unchanged"

    gone = client.delete("/v1/documents/lowmere")
    assert gone.status_code == 200 and gone.json()["total_documents"] == 5
    assert not stored.exists()
    assert all(
        h["doc_id"] != "lowmere"
        for h in client.post("/v1/search", json={"query": "floating library Lowmere harbour"}).json()["results"]
    )
    assert client.get("/v1/documents/lowmere").status_code == 404
    assert client.delete("/v1/documents/lowmere").status_code == 404


@pytest.mark.parametrize(
    ("files", "data", "status", "code"),
    [
        ({"file": ("../../etc/passwd", NEW_STORY, "text/plain")}, {}, 400, "bad_input"),
        ({"file": ("..\\evil.txt", NEW_STORY, "text/plain")}, {}, 400, "bad_input"),
        ({"file": ("story.txt", NEW_STORY, "text/plain")}, {"doc_id": "../../etc/passwd"}, 400, "bad_input"),
        ({"file": ("story.pdf", NEW_STORY, "application/pdf")}, {}, 415, "unsupported_file"),
        ({"file": ("story.txt", b"", "text/plain")}, {}, 400, "bad_input"),
        ({"file": ("story.txt", b"\x00\x01binary\x00", "text/plain")}, {}, 415, "unsupported_file"),
        ({"other": ("story.txt", NEW_STORY, "text/plain")}, {}, 400, "bad_input"),
    ],
)
def test_upload_errors(client, files, data, status, code):
    r = client.post("/v1/documents", files=files, data=data)
    assert r.status_code == status, r.text
    assert error_of(r)["code"] == code


def test_duplicate_content_under_new_id_is_refused(client, corpus_copy):
    data = (corpus_copy / "001_d33884d0ecc97606.txt").read_bytes()
    r = client.post("/v1/documents", files={"file": ("copy.txt", data, "text/plain")})
    assert r.status_code in (400, 409) and "same content" in error_of(r)["message"]


def test_oversize_upload_is_413(make_app, settings):
    boundary = "xyz"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()

    def chunked():  # no Content-Length: the limit must hold while reading
        yield head
        for _ in range(40):
            yield b"word " * 10_000

    with TestClient(make_app(max_upload_bytes=1000)) as c:
        slightly = c.post("/v1/documents", files={"file": ("big.txt", b"word " * 300, "text/plain")})
        declared = c.post("/v1/documents", files={"file": ("big.txt", b"word " * 400_000, "text/plain")})
        streamed = c.post(
            "/v1/documents", content=chunked(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        assert c.get("/v1/documents").json()["total"] == 5
    for r in (slightly, declared, streamed):
        assert r.status_code == 413, r.text
        assert error_of(r)["code"] == "too_large"
    assert not (settings.index_dir / "documents" / "big.txt").exists()


def test_uploads_and_deletes_can_be_disabled(make_app):
    with TestClient(make_app(allow_uploads=False, allow_deletes=False)) as c:
        up = c.post("/v1/documents", files={"file": ("a.txt", NEW_STORY, "text/plain")})
        down = c.delete("/v1/documents/001_d33884d0ecc97606")
        assert up.status_code == 403 and down.status_code == 403 and error_of(up)["code"] == "forbidden"
        assert c.get("/v1/documents").json()["total"] == 5


def test_api_key(make_app, client):
    assert client.get("/v1/documents").status_code == 200 and client.get("/docs").status_code == 200  # no key: open
    with TestClient(make_app(api_key=SecretStr("s3cret"))) as c:
        assert c.get("/healthz").status_code == 200
        for path in ("/readyz", "/metrics", "/v1/documents", "/v1/models", "/openapi.json"):
            r = c.get(path)
            assert r.status_code == 401, path
            assert r.headers["WWW-Authenticate"] == "Bearer"
        assert c.get("/v1/documents", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.post("/v1/ask", json={"question": QUESTION}).status_code == 401
        ok = {"Authorization": "Bearer s3cret"}
        assert c.get("/v1/documents", headers=ok).status_code == 200
        assert c.post("/v1/ask", json={"question": QUESTION}, headers=ok).status_code == 200
        assert c.get("/openapi.json", headers=ok).json()["info"]["title"] == "newsrag"
        assert error_of(c.get("/v1/models"))["type"] == "authentication_error"


def test_readyz_when_ready_and_when_not(client, settings, tmp_path):
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["index"]["documents"] == 5 and ready["generator"] == "scripted"
    broken = settings.model_copy(update={"index_dir": tmp_path / "none", "embedding_model_path": tmp_path / "no-model"})
    with TestClient(create_app(broken)) as c:  # the lifespan tries to load and fails cleanly
        assert c.get("/healthz").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 503 and error_of(r)["code"] == "not_ready" and "no-model" in error_of(r)["message"]
        ask = c.post("/v1/ask", json={"question": QUESTION})
        assert ask.status_code == 503 and "Retry-After" in ask.headers


def test_metrics_exposes_requests_latency_ttft_queue_and_index(client):
    client.post("/v1/ask", json={"question": QUESTION})
    client.post("/v1/ask", json={"question": ""})
    text = client.get("/metrics").text
    assert 'rag_http_requests_total{method="POST",route="/v1/ask",status="200"} 1.0' in text
    assert 'rag_http_requests_total{method="POST",route="/v1/ask",status="400"} 1.0' in text
    for name in (
        "rag_http_request_duration_seconds_bucket",
        "rag_ttft_seconds_count 1.0",
        "rag_generation_tokens_per_second_count",
        "rag_queue_depth 0.0",
        "rag_index_documents 5.0",
        "rag_index_passages",
        "rag_ready 1.0",
        "rag_retrieval_seconds_count 1.0",
    ):
        assert name in text, name


def test_cors_off_by_default_and_on_when_configured(client, make_app):
    headers = {"Origin": "http://example.com", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/v1/ask", headers=headers).headers
    with TestClient(make_app(cors_origins=["http://example.com"])) as c:
        r = c.options("/v1/ask", headers=headers)
        assert r.headers["access-control-allow-origin"] == "http://example.com"


def test_server_embeds_questions_on_one_thread_unless_configured(tmp_path):
    # Requests embed while llama.cpp generates for another: two OpenMP teams on two cores stall each other.
    from rag.core.settings import Settings

    default = create_app(Settings(_env_file=None, index_dir=tmp_path / "index"))
    assert default.state.runtime.settings.query_threads == 1
    chosen = create_app(Settings(_env_file=None, index_dir=tmp_path / "index", query_threads=2))
    assert chosen.state.runtime.settings.query_threads == 2

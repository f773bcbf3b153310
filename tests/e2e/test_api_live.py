"""The server as a user runs it: `rag index`, then `rag serve` (uvicorn on 127.0.0.1) with the real embedder
and the bundled GGUF, driven over a real socket with httpx and the official `openai` client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import CORPUS, ROOT
from tests.servers import rag_server

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

QUESTION = "What was decided about the NATO-Ukraine Council?"
COUNCIL_DOCS = {"001_d33884d0ecc97606", "000_ff6882ef16d64a7d"}
RAG = [sys.executable, "-m", "rag.cli.main"]
TIMEOUT = httpx.Timeout(900.0, connect=10.0)  # a loaded 2-core CI box decodes a couple of tokens a second
NEW_STORY = b"""Harbour Town Opens Floating Library

LOWMERE, 2024-05-04 - The town of Lowmere opened a floating library on its harbour on Saturday, the mayor said.
The barge holds four thousand books and will moor at a different pier each week.
Volunteers from the rowing club built the shelves over the winter months.
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, Path, Path]]:
    """(base url, index dir, server log). Runs from a temp cwd with RAG_* cleared, so no .env leaks in."""
    home = tmp_path_factory.mktemp("live")
    index_dir = home / "index"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    subprocess.run(
        [*RAG, "--index-dir", str(index_dir), "index", str(CORPUS)],
        cwd=home,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    log = home / "serve.log"
    with rag_server([*RAG, "--index-dir", str(index_dir), "serve"], cwd=home, env=env, log=log) as base:
        yield base, index_dir, log


@pytest.fixture(scope="module")
def http(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server[0], timeout=TIMEOUT) as c:
        yield c


@pytest.fixture(scope="module")
def openai_client(server):
    import openai

    return openai.OpenAI(base_url=server[0] + "/v1", api_key="not-needed", timeout=900, max_retries=0)


def test_binds_localhost_and_reports_ready(server, http):
    base, _, log = server
    assert f"Uvicorn running on {base}" in log.read_text()
    ready = http.get("/readyz").json()
    assert ready["index"]["documents"] == 5 and ready["generator"] and ready["embedder"]


def test_ask_cites_the_council_articles(http):
    r = http.post("/v1/ask", json={"question": QUESTION})
    assert r.status_code == 200, r.text
    body = r.json()
    assert not body["abstained"], body
    assert {c["doc_id"] for c in body["citations"]} & COUNCIL_DOCS, body
    c = body["citations"][0]
    text = http.get(f"/v1/documents/{c['doc_id']}").json()["text"]
    assert text[c["span"][0] : c["span"][1]] == c["quote"]
    assert body["timings"]["retrieval_s"] > 0 and body["timings"]["total_s"] > 0


def test_ask_streams_tokens_then_the_verified_answer(http):
    events: list[tuple[str, str]] = []
    with http.stream("POST", "/v1/ask", json={"question": QUESTION, "stream": True}) as r:
        assert r.status_code == 200
        name = ""
        for line in r.iter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                events.append((name, line[5:].strip()))
    kinds = [k for k, _ in events]
    assert kinds[-1] == "answer" and set(kinds[:-1]) <= {"token"}, kinds[-3:]
    final = json.loads(events[-1][1])
    assert {c["doc_id"] for c in final["citations"]} & COUNCIL_DOCS
    if final["timings"]["completion_tokens"]:
        assert "token" in kinds and final["timings"]["ttft_s"] is not None


def test_openai_client_same_answer_streamed_and_not(openai_client):
    models = openai_client.models.list()
    assert [m.id for m in models.data] == ["newsrag"]
    messages = [{"role": "user", "content": QUESTION}]
    plain = openai_client.chat.completions.create(model="newsrag", messages=messages, temperature=0.2)
    content = plain.choices[0].message.content
    citations = plain.model_extra["citations"]
    assert {c["doc_id"] for c in citations} & COUNCIL_DOCS, content
    assert "[1]" in content and "Sources:" in content

    chunks = list(openai_client.chat.completions.create(model="newsrag", messages=messages, stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = chunks[-1]
    assert final.choices[0].finish_reason == "stop"
    assert [c["doc_id"] for c in final.model_extra["citations"]] == [c["doc_id"] for c in citations]
    assert streamed == content  # temperature 0 on our side: the same verified answer both ways


def test_upload_ask_delete_leaves_nothing_behind(http, server):
    _, index_dir, _ = server
    up = http.post(
        "/v1/documents", files={"file": ("lowmere.md", NEW_STORY, "text/markdown")}, data={"doc_id": "lowmere-library"}
    )
    assert up.status_code == 201, up.text
    stored = index_dir / "documents" / up.json()["document"]["stored_as"]
    assert stored.is_file()

    answer = http.post("/v1/ask", json={"question": "What did the town of Lowmere open on its harbour?"}).json()
    assert any(c["doc_id"] == "lowmere-library" for c in answer["citations"]), answer
    hits = http.post("/v1/search", json={"query": "Lowmere floating library barge"}).json()["results"]
    assert hits[0]["doc_id"] == "lowmere-library"

    assert http.delete("/v1/documents/lowmere-library").status_code == 200
    hits = http.post("/v1/search", json={"query": "Lowmere floating library barge", "top_k": 50}).json()["results"]
    assert all(h["doc_id"] != "lowmere-library" for h in hits)
    assert http.get("/v1/documents/lowmere-library").status_code == 404
    assert not stored.exists()
    live = index_dir / (index_dir / "CURRENT").read_text().strip()
    manifest = json.loads((live / "manifest.json").read_text())
    assert "lowmere-library" not in manifest["documents"] and len(manifest["documents"]) == 5
    # The upload's segment may remain (its document tombstoned) until a merge: no live row of it is left.
    tombstoned = {d for e in manifest["segments"] for d in e["deleted"]}
    segments = [index_dir / "segments" / e["name"] for e in manifest["segments"]]
    passages = [
        json.loads(line)
        for seg in segments
        for line in (seg / "passages.jsonl").read_text().splitlines()
        if line.strip()
    ]
    assert passages and all(p["doc_id"] != "lowmere-library" or p["doc_id"] in tombstoned for p in passages)


def test_metrics_after_real_traffic(http):
    text = http.get("/metrics").text
    assert (
        'route="/v1/chat/completions"' in text
        and "rag_ttft_seconds_count" in text
        and "rag_index_documents 5.0" in text
    )

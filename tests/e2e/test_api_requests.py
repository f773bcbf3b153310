"""The HTTP API with fakes, on requests the core must refuse before any work starts (#17 items 6 and 11), and on
a server started before any index existed (#17 item 14). Complements test_api_fakes.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

import rag.models.embedding
from api.app import create_app
from rag.answer.pipeline import Pipeline
from rag.ingest.indexing import index_paths
from rag.storage.index import Index
from tests.e2e.test_api_fakes import COUNCIL, NEW_STORY, QUESTION, error_of
from tests.fakes import ScriptedGenerator, strength_rule


@pytest.fixture
def loose(settings):
    return settings.model_copy(update={"support_threshold": 0.5})


@pytest.fixture
def client(loose, hashing_embedder, prompts, corpus_copy) -> Iterator[TestClient]:
    index, _ = index_paths(loose, hashing_embedder, [corpus_copy])
    with TestClient(
        create_app(
            loose,
            Pipeline(loose, index, hashing_embedder, ScriptedGenerator(COUNCIL + " [1]"), prompts, strength_rule()),
        )
    ) as c:
        yield c


# --- refused before anything starts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b'{"query": "\\u0000\\u0000"}', b'{"query": "\\u200b"}', b'{"query": "NATO \\ud800"}', b'{"query": "\\udfff?"}'],
    ids=["nul", "zero-width-space", "lone-surrogate", "lone-low-surrogate"],
)
def test_questions_without_words_or_valid_unicode_are_400_on_every_route(client, raw):
    # Sent as raw JSON: the escapes decode to NULs, a zero-width space or an unpaired surrogate on the server.
    headers = {"Content-Type": "application/json"}
    question = raw.replace(b'"query"', b'"question"')
    chat = raw.replace(b'{"query": ', b'{"messages": [{"role": "user", "content": ').replace(b"}", b"}]}")
    for route, body in (("/v1/search", raw), ("/v1/ask", question), ("/v1/chat/completions", chat)):
        r = client.post(route, content=body, headers=headers)
        assert r.status_code == 400, (route, r.status_code, r.text)
        assert error_of(r)["code"] == "bad_input"
    streamed = client.post("/v1/ask", content=question[:-1] + b', "stream": true}', headers=headers)
    assert streamed.status_code == 400 and streamed.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("route", ["/v1/ask", "/v1/chat/completions"])
def test_streaming_refuses_since_after_until_before_the_stream_starts(client, route):
    dates = {"since": "2024-01-01", "until": "2023-01-01", "stream": True}
    body = (
        {"question": QUESTION, **dates}
        if route == "/v1/ask"
        else {"messages": [{"role": "user", "content": QUESTION}], **dates}
    )
    r = client.post(route, json=body)
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/json"), r.text
    assert error_of(r)["code"] == "bad_input" and "after until" in error_of(r)["message"]


# --- a server started before any index existed ----------------------------------------------------------------


@pytest.fixture
def empty_server(loose, hashing_embedder, prompts):
    """An app whose pipeline has models but no index yet, as `rag serve` loads it over an empty index folder."""
    empty = Index.empty(
        loose.index_dir, loose, embedding_model=hashing_embedder.name, dimension=hashing_embedder.dimension
    )
    return create_app(
        loose, Pipeline(loose, empty, hashing_embedder, ScriptedGenerator(COUNCIL + " [1]"), prompts, strength_rule())
    )


def test_an_index_built_elsewhere_makes_a_waiting_server_ready(empty_server, loose, hashing_embedder, corpus_copy):
    with TestClient(empty_server) as c:
        for r in (
            c.get("/readyz"),
            c.post("/v1/ask", json={"question": QUESTION}),
            c.post("/v1/search", json={"query": "NATO"}),
        ):
            assert r.status_code == 503 and error_of(r)["code"] == "not_ready", r.text
            assert "rag index" in error_of(r)["message"] and "Retry-After" in r.headers
        assert "rag_ready 0.0" in c.get("/metrics").text

        index_paths(loose, hashing_embedder, [corpus_copy])  # `rag index` in another shell

        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["index"]["documents"] == 5
        answer = c.post("/v1/ask", json={"question": QUESTION})
        assert answer.status_code == 200 and answer.json()["citations"], answer.text
        assert "rag_ready 1.0" in c.get("/metrics").text


def test_the_first_upload_to_a_waiting_server_creates_the_index(empty_server, loose):
    with TestClient(empty_server) as c:
        assert c.get("/v1/documents").status_code == 503
        r = c.post("/v1/documents", files={"file": ("lowmere.txt", NEW_STORY, "text/plain")})
        assert r.status_code == 201, r.text
        assert r.json()["generation"] == 1 and r.json()["total_documents"] == 1
        assert (loose.index_dir / "CURRENT").read_text() == "gen-000001"
        assert c.get("/readyz").status_code == 200
        hits = c.post("/v1/search", json={"query": "floating library Lowmere harbour"}).json()["results"]
        assert hits and hits[0]["doc_id"] == "lowmere"


def test_rag_serve_over_an_empty_folder_loads_the_models_and_waits(loose, hashing_embedder, monkeypatch):
    # The lifespan path `rag serve` takes, with the embedding model swapped for the hashing fake.
    monkeypatch.setattr(rag.models.embedding, "build_embedder", lambda settings: hashing_embedder)
    settings = loose.model_copy(update={"generator_backend": "none"})
    with TestClient(create_app(settings)) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and "no index" in error_of(r)["message"]
        up = c.post("/v1/documents", files={"file": ("lowmere.txt", NEW_STORY, "text/plain")})
        assert up.status_code == 201, up.text
        assert c.get("/readyz").json()["generator"] is None
        assert (
            c.post(
                "/v1/ask", json={"question": "What did Lowmere open on its harbour?", "mode": "extractive"}
            ).status_code
            == 200
        )

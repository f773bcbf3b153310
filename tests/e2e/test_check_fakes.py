"""`rag check --json` and POST /v1/check over a tmp index with the hashing embedder and a keyword judge."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from api.app import create_app
from rag.answer.pipeline import Pipeline
from rag.cli.main import app
from rag.ingest.indexing import index_paths
from tests.fakes import KeywordJudge, strength_rule

CLAIM = "The NATO-Ukraine Commission is set to be upgraded to a NATO-Ukraine Council."
CITATION_KEYS = {"stance", "quote", "span", "doc_id", "passage_id", "title", "source", "date", "url", "lexical"}


@pytest.fixture
def pipeline(settings, hashing_embedder, prompts, corpus_copy) -> Pipeline:
    index, _ = index_paths(settings, hashing_embedder, [corpus_copy])
    built = Pipeline(settings, index, hashing_embedder, None, prompts, strength_rule())
    built.use_judge(KeywordJudge(entails=("upgraded to a nato-ukraine council",)))
    return built


@pytest.fixture
def client(settings, pipeline) -> Iterator[TestClient]:
    with TestClient(create_app(settings, pipeline)) as c:
        yield c


def test_cli_check_json_shape(pipeline, settings, monkeypatch):
    monkeypatch.setattr(Pipeline, "from_settings", classmethod(lambda cls, s, **kw: pipeline))
    result = CliRunner().invoke(app, ["--index-dir", str(settings.index_dir), "check", CLAIM, "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["verdict"] == "supported" and body["judge"] == "keyword-judge"
    assert {"verdict", "citations", "judge", "note", "claim", "candidates", "as_of"} <= set(body)
    assert CITATION_KEYS <= set(body["citations"][0]) and body["citations"][0]["stance"] == "supports"


def test_cli_check_prints_verdict_and_quotes(pipeline, settings, monkeypatch):
    monkeypatch.setattr(Pipeline, "from_settings", classmethod(lambda cls, s, **kw: pipeline))
    result = CliRunner().invoke(app, ["check", CLAIM, "--as-of", "2023-07-01"])
    assert result.exit_code == 0, result.output
    assert "supported" in result.stdout and "upgraded to a NATO-Ukraine Council" in result.stdout
    assert "as of 2023-07-01" in result.stdout


def test_api_check_returns_verdict_with_citations_whose_spans_hold_the_quote(client):
    r = client.post("/v1/check", json={"claim": CLAIM, "as_of": "2023-07-01"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verdict"] == "supported" and body["judge"] == "keyword-judge" and body["as_of"] == "2023-07-01"
    c = body["citations"][0]
    assert CITATION_KEYS <= set(c)
    text = client.get(f"/v1/documents/{c['doc_id']}").json()["text"]
    assert text[c["span"][0] : c["span"][1]] == c["quote"]


def test_api_check_as_of_before_the_articles_finds_nothing(client):
    body = client.post("/v1/check", json={"claim": CLAIM, "as_of": "2020-01-01"}).json()
    assert body["verdict"] == "not_found" and body["citations"] == []


@pytest.mark.parametrize(
    ("payload", "status"),
    [({"claim": "  "}, 400), ({"claim": CLAIM, "since": "2023-07-01", "until": "2023-06-01"}, 400), ({}, 422)],
)
def test_api_check_refuses_bad_requests_cleanly(client, payload, status):
    r = client.post("/v1/check", json=payload)
    assert r.status_code == status and "Traceback" not in r.text


def test_api_check_needs_the_key_when_one_is_set(settings, pipeline):
    keyed = settings.model_copy(update={"api_key": SecretStr("k")})
    with TestClient(create_app(keyed, pipeline)) as c:
        assert c.post("/v1/check", json={"claim": CLAIM}).status_code == 401
        ok = c.post("/v1/check", json={"claim": CLAIM}, headers={"Authorization": "Bearer k"})
        assert ok.status_code == 200

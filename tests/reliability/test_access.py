"""Who may do what through the HTTP API, and what a request can reach. Complements tests/e2e/test_api_fakes.py
(which covers the basic key check, the upload/delete switches, CORS on/off and a small-limit 413): here every
route is walked for the key, request paths and names are aimed at files outside the index, bodies are
malformed on every JSON route, and a 50 MB upload meets the default limit. The index on disk must not change.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import api.deps
from api.app import create_app
from rag.answer.pipeline import Pipeline
from rag.core.settings import Settings
from rag.ingest.indexing import index_paths
from rag.models.prompts import PromptSet
from tests.fakes import ScriptedGenerator, strength_rule
from tests.reliability.conftest import read_disk_index

KEY = "correct-horse-battery-staple"
STORY = (
    b"Harbour Town Opens Floating Library\n\n"
    b"The town of Lowmere opened a floating library on its harbour on Saturday.\n"
)


@pytest.fixture
def world(tmp_path, settings, hashing_embedder, corpus_copy):
    """An index inside tmp_path/index, plus a secret file beside it that no request may touch."""
    index, _ = index_paths(settings, hashing_embedder, [corpus_copy])
    secret = tmp_path / "secret.txt"
    secret.write_text("the launch codes\n")

    def make(**overrides) -> TestClient:
        s = settings.model_copy(update={"support_threshold": 0.5, **overrides})
        return TestClient(
            create_app(
                s, Pipeline(s, index, hashing_embedder, ScriptedGenerator("x"), PromptSet.load(), strength_rule())
            )
        )

    return make


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with its size and mtime: what changed on disk, anywhere."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if name != ".lock":
                stat = path.stat()
                out[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return out


@pytest.fixture
def untouched(world, tmp_path, settings) -> Iterator[None]:
    """Asserts afterwards that no file anywhere under tmp_path was created, changed or removed."""
    before, index_before = tree(tmp_path), read_disk_index(settings.index_dir)
    yield
    assert tree(tmp_path) == before
    assert read_disk_index(settings.index_dir) == index_before


def test_settings_default_to_a_private_server(monkeypatch):
    for name in [k for k in os.environ if k.startswith("RAG_")]:
        monkeypatch.delenv(name)
    defaults = Settings(_env_file=None)
    assert defaults.host == "127.0.0.1" and defaults.api_key is None and defaults.cors_origins == []
    assert defaults.allow_uploads and defaults.allow_deletes  # on, but only reachable from this machine
    assert (
        defaults.max_upload_bytes == 10 * 1024 * 1024
        and defaults.max_question_chars == 2000
        and defaults.max_top_k == 50
    )
    env = {
        "RAG_API_KEY": KEY,
        "RAG_ALLOW_UPLOADS": "false",
        "RAG_ALLOW_DELETES": "0",
        "RAG_MAX_UPLOAD_BYTES": "1000",
        "RAG_CORS_ORIGINS": '["http://a.example"]',
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    configured = Settings(_env_file=None)
    assert configured.api_key.get_secret_value() == KEY and KEY not in repr(configured)  # never printed in logs
    assert not configured.allow_uploads and not configured.allow_deletes and configured.max_upload_bytes == 1000
    assert configured.cors_origins == ["http://a.example"]


# Open by design: liveness, and what the web page needs before it has the key (whether to ask for one).
OPEN_ROUTES = {"/healthz", "/v1/config"}


def test_every_route_but_healthz_needs_the_key(world, untouched):
    with world(api_key=KEY) as c:
        # Every documented route, plus the schema and docs pages themselves (kept out of the schema).
        routes = [(m.upper(), path) for path, ops in c.app.openapi()["paths"].items() for m in ops]
        routes += [("GET", "/openapi.json"), ("GET", "/docs")]
        assert len(routes) >= 14
        for method, path in routes:
            url = path.replace("{doc_id}", "001_d33884d0ecc97606").replace("{model_id}", "newsrag")
            for headers in (
                {},
                {"Authorization": "Bearer wrong"},
                {"Authorization": f"Basic {KEY}"},
                {"Authorization": "Bearer "},
                {"X-API-Key": KEY},
            ):
                r = c.request(method, url, headers=headers, params={"api_key": KEY})
                if path in OPEN_ROUTES:
                    assert r.status_code == 200
                else:
                    assert r.status_code == 401, (method, url, headers, r.status_code)
                    assert r.json()["error"]["code"] == "unauthorized" and KEY not in r.text
        assert c.get("/v1/documents", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_key_is_compared_in_constant_time(world, monkeypatch):
    calls = []
    real = api.deps.hmac.compare_digest
    monkeypatch.setattr(api.deps.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    with world(api_key=KEY) as c:
        assert c.get("/v1/documents", headers={"Authorization": "Bearer guess"}).status_code == 401
    assert calls == [(b"guess", KEY.encode())]


def test_a_refused_caller_cannot_store_anything(world, untouched):
    with world(api_key=KEY) as c:
        r = c.post("/v1/documents", files={"file": ("lowmere.txt", STORY, "text/plain")})
        assert r.status_code == 401
    with world(allow_uploads=False, allow_deletes=False) as c:
        assert c.post("/v1/documents", files={"file": ("lowmere.txt", STORY, "text/plain")}).status_code == 403
        assert c.delete("/v1/documents/001_d33884d0ecc97606").status_code == 403
        assert c.get("/v1/documents/001_d33884d0ecc97606").status_code == 200  # reading stays open


def test_cors_allows_only_the_configured_origin(world):
    with world(cors_origins=["http://app.example"]) as c:
        ok = c.options("/v1/ask", headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST"})
        evil = c.options("/v1/ask", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
        assert ok.headers.get("access-control-allow-origin") == "http://app.example"
        assert "access-control-allow-origin" not in evil.headers
        assert (
            "access-control-allow-origin"
            not in c.get("/v1/documents", headers={"Origin": "http://evil.example"}).headers
        )


# --- paths and names from requests ---------------------------------------------------------------------------

TRAVERSALS = [
    "..%2Fsecret",
    "..%2F..%2Fsecret.txt",
    "%2e%2e%2fsecret",
    "..%5Csecret",
    "%2Fetc%2Fpasswd",
    "documents%2F..%2F..%2Fsecret",
    ".lock",
    "..",
    "CURRENT%00",
    "secret.txt%00.md",
    "a" * 300,
    "%E2%80%AEtxt.exe",
]


@pytest.mark.parametrize("doc_id", TRAVERSALS)
def test_document_ids_in_urls_never_reach_the_filesystem(world, untouched, doc_id):
    with world() as c:
        for method in ("GET", "DELETE"):
            r = c.request(method, f"/v1/documents/{doc_id}")
            assert r.status_code in (400, 404), (method, doc_id, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/json") and "launch codes" not in r.text


@pytest.mark.parametrize(
    ("filename", "doc_id"),
    [
        ("/etc/passwd.txt", None),
        ("..", None),
        (".env.txt", None),
        ("..%2Fsecret.txt", None),
        ("sub/../../secret.txt", None),
        ("evil.txt", ".."),
        ("evil.txt", "../secret"),
        ("evil.txt", "a/../../secret"),
        ("evil.txt", " "),
        ("evil.txt", "x" * 200),
        ("evil.txt", "..\u2215secret"),
        ("evil.txt", "CURRENT/../../secret"),
    ],
)
def test_upload_names_and_ids_never_reach_the_filesystem(world, untouched, filename, doc_id):
    with world() as c:
        data = {"doc_id": doc_id} if doc_id is not None else {}
        r = c.post("/v1/documents", files={"file": (filename, STORY, "text/plain")}, data=data)
        assert r.status_code in (400, 415), (filename, doc_id, r.status_code, r.text)
        assert r.json()["error"]["code"] in ("bad_input", "unsupported_file")


# --- bodies --------------------------------------------------------------------------------------------------

JSON_ROUTES = ["/v1/ask", "/v1/search", "/v1/check", "/v1/chat/completions"]
BAD_BODIES = [
    (b'{"question": ', "application/json"),
    (b"[1, 2, 3]", "application/json"),
    (b'"just a string"', "application/json"),
    (b"\xff\xfe{\x00}", "application/json"),
    (b'{"question": "NATO?"}', "text/plain"),
    (b"question=NATO", "application/x-www-form-urlencoded"),
    (b"", "application/json"),
    (b'{"question": {"$ne": null}, "query": ["a"], "messages": 5}', "application/json"),
]


@pytest.mark.parametrize("route", JSON_ROUTES)
@pytest.mark.parametrize(
    ("body", "content_type"),
    BAD_BODIES,
    ids=["truncated", "array", "string", "not-utf8", "text-plain", "form", "empty", "wrong-types"],
)
def test_malformed_bodies_get_a_json_4xx_on_every_route(world, route, body, content_type):
    with world() as c:
        r = c.post(route, content=body, headers={"Content-Type": content_type})
    assert 400 <= r.status_code < 500, (route, body, r.status_code, r.text)
    assert set(r.json()) == {"error"} and "Traceback" not in r.text


def test_unknown_fields_are_ignored_not_refused(world):
    with world() as c:
        r = c.post(
            "/v1/search", json={"query": "NATO Ukraine membership", "temperature": 0.3, "__proto__": {"admin": True}}
        )
    assert r.status_code == 200 and r.json()["results"]


def test_a_50_mb_upload_is_refused_before_it_is_read(world, untouched):
    big = b"word " * (10 * 1024 * 1024)  # 50 MB against the default 10 MB limit
    with world() as c:
        r = c.post("/v1/documents", files={"file": ("big.txt", big, "text/plain")})
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
        assert "larger than the limit" in r.json()["error"]["message"]
        assert c.get("/v1/documents").json()["total"] == 5


def test_a_huge_json_body_is_refused(world):
    with world(max_upload_bytes=1000) as c:  # JSON bodies get at least a 1 MB allowance
        r = c.post(
            "/v1/ask",
            content=b'{"question": "' + b"x" * (2 * 1024 * 1024) + b'"}',
            headers={"Content-Type": "application/json"},
        )
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"

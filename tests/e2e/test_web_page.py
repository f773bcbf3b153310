"""The web page as files the server hands out: where it is, its security headers, that every asset is local,
and /v1/config, which the page reads before it has the key. The page's behaviour in a real browser is
tests/e2e/test_web_browser.py; its JavaScript logic is tests/js/ (node --test)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.routes.web import STATIC_DIR
from rag.answer.pipeline import Pipeline
from rag.ingest.indexing import index_paths
from tests.fakes import ScriptedGenerator

KEY = "page-key-123"


@pytest.fixture
def make_client(settings, hashing_embedder, prompts, corpus_copy):
    index, _ = index_paths(settings, hashing_embedder, [corpus_copy])

    def make(**overrides) -> TestClient:
        s = settings.model_copy(update=overrides)
        return TestClient(create_app(s, Pipeline(s, index, hashing_embedder, ScriptedGenerator("x"), prompts)))

    return make


def assets() -> list[Path]:
    return sorted(p for p in STATIC_DIR.rglob("*") if p.is_file())


def csp_directives(header: str) -> dict[str, str]:
    return {part.split()[0]: part.strip() for part in header.split(";") if part.strip()}


def test_page_is_served_at_root_with_a_strict_csp(make_client):
    with make_client() as c:
        r = c.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/js/main.js">' in r.text
    csp = csp_directives(r.headers["content-security-policy"])
    assert csp["default-src"] == "default-src 'self'"
    assert csp["script-src"] == "script-src 'self'"  # no 'unsafe-inline', no other origin
    assert csp["connect-src"] == "connect-src 'self'"
    assert csp["frame-ancestors"] == "frame-ancestors 'none'"
    assert "unsafe" not in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", [p.relative_to(STATIC_DIR).as_posix() for p in assets()])
def test_every_asset_is_served_with_the_headers_and_the_right_type(make_client, path):
    with make_client() as c:
        r = c.get(f"/static/{path}")
    assert r.status_code == 200
    assert "default-src 'self'" in r.headers["content-security-policy"]
    if path.endswith(".js"):
        assert r.headers["content-type"].startswith("text/javascript")  # module scripts need a JS type
    if path.endswith(".css"):
        assert r.headers["content-type"].startswith("text/css")


def test_assets_are_local_and_inline_free():
    """No CDN, web font, analytics or inline script: nothing in the page names another origin."""
    html = (STATIC_DIR / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=\"/static/)[^>]*>", html), "inline script in index.html"
    assert not re.search(r"\son\w+=", html), "inline event handler in index.html"
    assert " style=" not in html
    for path in assets():
        text = path.read_text()
        code = text if path.suffix != ".svg" else text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert not re.search(r"https?://|//[a-z0-9.-]+\.(com|net|org|io)\b|@import|fonts\.googleapis", code), path.name
    js = "\n".join(p.read_text() for p in assets() if p.suffix == ".js")
    for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert unsafe not in js, unsafe


def test_static_paths_stay_inside_the_static_folder(make_client):
    with make_client() as c:
        for path in (
            "/static/../routes/web.py",
            "/static/%2e%2e/app.py",
            "/static/..%2F..%2Fpyproject.toml",
            "/static/nope.js",
        ):
            r = c.get(path)
            assert r.status_code == 404, path
            assert "import" not in r.text


def test_config_tells_the_page_what_this_server_allows(make_client):
    with make_client() as c:
        body = c.get("/v1/config").json()
    assert body == {
        "auth_required": False,
        "allow_uploads": True,
        "allow_deletes": True,
        "upload_types": [".htm", ".html", ".md", ".txt"],
        "max_upload_bytes": 10 * 1024 * 1024,
        "max_question_chars": 2000,
        "top_k": 5,
        "max_top_k": 50,
        "mode": "generate",
    }
    with make_client(allow_uploads=False, allow_deletes=False, top_k=7, mode="extractive") as c:
        body = c.get("/v1/config").json()
    assert (body["allow_uploads"], body["allow_deletes"], body["top_k"], body["mode"]) == (
        False,
        False,
        7,
        "extractive",
    )


@pytest.mark.parametrize("key", [KEY, SecretStr(KEY)])
def test_with_a_key_the_page_and_config_load_but_the_data_does_not(make_client, key):
    with make_client(api_key=key) as c:
        assert c.get("/").status_code == 200
        assert c.get("/static/js/main.js").status_code == 200
        config = c.get("/v1/config")
        assert config.status_code == 200 and config.json()["auth_required"] is True and KEY not in config.text
        assert c.get("/v1/documents").status_code == 401
        assert c.get("/v1/documents", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    with make_client(api_key=SecretStr("")) as c:
        assert c.get("/v1/config").json()["auth_required"] is False

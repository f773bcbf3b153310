"""Web pages against a server with no API key (#17 item 5): a page elsewhere cannot add or delete articles
(cross-site writes), nor reach the server through a domain rebound to 127.0.0.1 (DNS rebinding); the
server's own page, curl and scripts keep working. Complements test_access.py."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from rag.answer.pipeline import Pipeline
from rag.ingest.indexing import index_paths
from rag.models.prompts import PromptSet
from tests.fakes import ScriptedGenerator, strength_rule
from tests.reliability.conftest import read_disk_index

SERVER = "http://127.0.0.1:8000"
STORY = (
    b"Harbour Town Opens Floating Library\n\n"
    b"The town of Lowmere opened a floating library on its harbour on Saturday.\n"
)
EVIL = "https://evil.example"


@pytest.fixture
def serve(settings, hashing_embedder, corpus_copy):
    """serve(**settings) -> a TestClient addressing the server as http://127.0.0.1:8000, the way `rag serve` is."""
    index, _ = index_paths(settings, hashing_embedder, [corpus_copy])

    def make(**overrides) -> TestClient:
        s = settings.model_copy(update={"allowed_hosts": [], "support_threshold": 0.5, **overrides})
        return TestClient(
            create_app(
                s, Pipeline(s, index, hashing_embedder, ScriptedGenerator("x"), PromptSet.load(), strength_rule())
            ),
            base_url=SERVER,
        )

    return make


def upload(c: TestClient, **headers: str):
    return c.post("/v1/documents", files={"file": ("planted.txt", STORY, "text/plain")}, headers=headers)


def test_a_page_elsewhere_cannot_add_or_delete_articles(serve, settings):
    before = read_disk_index(settings.index_dir)
    with serve() as c:
        for headers in (
            {"Origin": EVIL},
            {"Origin": "null"},
            {"Origin": "http://127.0.0.1:3000"},
            {"Origin": "http://localhost:8000"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
        ):
            for r in (
                upload(c, **headers),
                c.delete("/v1/documents/001_d33884d0ecc97606", headers=headers),
                c.post(
                    "/v1/ask", json={"question": "What was decided about the NATO-Ukraine Council?"}, headers=headers
                ),
            ):
                assert r.status_code == 403, (headers, r.request.method, r.status_code, r.text)
                assert r.json()["error"]["code"] == "forbidden_origin"
        assert (
            c.get("/v1/documents", headers={"Origin": EVIL}).json()["total"] == 5
        )  # reading is the browser's CORS job
    assert read_disk_index(settings.index_dir) == before


def test_the_servers_own_page_curl_and_configured_origins_still_write(serve):
    with serve() as c:
        assert upload(c).status_code == 201  # curl and scripts send no Origin
        assert (
            c.delete("/v1/documents/planted", headers={"Origin": SERVER, "Sec-Fetch-Site": "same-origin"}).status_code
            == 200
        )
        assert upload(c, Origin=SERVER).status_code == 201  # the web page served at / by this server
        assert (
            c.delete(
                "/v1/documents/planted", headers={"Origin": "http://localhost:8000", "Host": "localhost:8000"}
            ).status_code
            == 200
        )
        assert (
            c.post("/v1/search", json={"query": "NATO"}, headers={"Sec-Fetch-Site": "none"}).status_code == 200
        )  # typed in the address bar
    with serve(cors_origins=["http://localhost:3000"]) as c:
        assert upload(c, Origin="http://localhost:3000").status_code == 201
        assert upload(c, Origin=EVIL).status_code == 403


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example:8000", "localhost.evil.example"]
)
def test_a_rebound_domain_is_refused(serve, settings, host):
    before = read_disk_index(settings.index_dir)
    with serve() as c:
        for r in (c.get("/v1/documents", headers={"Host": host}), upload(c, Host=host, Origin=f"http://{host}")):
            assert r.status_code == 421, (host, r.status_code, r.text)
            assert r.json()["error"]["code"] == "bad_host" and "RAG_ALLOWED_HOSTS" in r.json()["error"]["message"]
    assert read_disk_index(settings.index_dir) == before


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:8000",
        "localhost:8000",
        "localhost",
        "[::1]:8000",
        "192.168.1.20:8000",
        "rag.lan:8000",
        "newsrag.internal",
    ],
)
def test_local_names_addresses_and_configured_names_are_served(serve, host):
    with serve(allowed_hosts=["rag.lan", "newsrag.internal:443"], host="newsrag.internal") as c:
        assert c.get("/v1/documents", headers={"Host": host}).status_code == 200, host
    with serve(allowed_hosts=["*"]) as c:  # the check switched off, e.g. behind a proxy that checks Host itself
        assert c.get("/v1/documents", headers={"Host": "anything.example"}).status_code == 200

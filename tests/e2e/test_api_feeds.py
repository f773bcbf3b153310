"""URLs and feeds through the HTTP API, against the local news site: a tmp index, the hashing embedder, no models."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from rag.answer.pipeline import Pipeline
from rag.ingest.fetch import page_id
from rag.ingest.indexing import index_paths
from tests.fakes import ScriptedGenerator, strength_rule
from tests.newsserver import STORIES, NewsServer, Route, article_page, rss


@pytest.fixture
def site() -> Iterator[NewsServer]:
    server = NewsServer().start()
    for path, (title, text) in STORIES.items():
        server.routes[path] = Route(article_page(title, [text]))
    yield server
    server.stop()


@pytest.fixture
def make_client(settings, hashing_embedder, prompts, corpus_copy):
    index, _ = index_paths(settings, hashing_embedder, [corpus_copy])
    clients: list[TestClient] = []

    def make(**overrides) -> TestClient:
        # The news site is on 127.0.0.1, which the fetch policy refuses unless told (rag/ingest/addresses.py).
        s = settings.model_copy(update={"fetch_allow_private": True, **overrides})
        client = TestClient(
            create_app(s, Pipeline(s, index, hashing_embedder, ScriptedGenerator("x"), prompts, strength_rule()))
        )
        clients.append(client.__enter__())  # runs the lifespan, where the periodic update starts
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def total(client: TestClient) -> int:
    return client.get("/v1/documents").json()["total"]


def test_post_a_url_indexes_the_page_and_it_is_searchable_at_once(client, site):
    url = site.url("/news/library-barge")
    before = total(client)
    created = client.post("/v1/documents", json={"url": url})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (
        body["status"] == "added"
        and body["document"]["doc_id"] == page_id(url)
        and body["document"]["source"] == "Harbour Gazette"
    )
    detail = client.get(f"/v1/documents/{page_id(url)}").json()
    assert (
        detail["url"] == url
        and detail["title"] == "Floating library opens in Lowmere"
        and detail["date"] == "2024-05-02"
    )
    hits = client.post("/v1/search", json={"query": "floating library barge books", "top_k": 1}).json()
    assert (hits["results"][0]["doc_id"], hits["results"][0]["url"]) == (page_id(url), url)
    again = client.post("/v1/documents", json={"url": url})
    assert again.status_code == 200 and again.json()["status"] == "unchanged" and total(client) == before + 1


@pytest.mark.parametrize(
    "route, overrides, status, code",
    [
        (Route(b"gone", "text/plain", status=404), {}, 502, "fetch_failed"),
        (
            Route(article_page("Slow", ["This page is slow to come."]), delay_s=3),
            {"fetch_timeout_s": 0.5},
            504,
            "fetch_timeout",
        ),
        (
            Route(article_page("Huge", ["A long sentence about the harbour."] * 3000)),
            {"fetch_max_bytes": 20_000},
            413,
            "too_large",
        ),
        (Route(b'{"not": "html"}', "application/json"), {}, 415, "unsupported_file"),
    ],
    ids=["404", "timeout", "oversize", "not-html"],
)
def test_a_url_that_fails_is_one_clear_error_and_indexes_nothing(make_client, site, route, overrides, status, code):
    client = make_client(**overrides)
    site.routes["/bad"] = route
    before = client.get("/v1/documents").json()
    response = client.post("/v1/documents", json={"url": site.url("/bad")})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and site.url("/bad") in error["message"]
    assert client.get("/v1/documents").json() == before


def test_a_url_request_must_be_http(client):
    for body in ({"url": "file:///etc/passwd"}, {"url": "ftp://example.com/a.html"}, {"link": "https://example.com"}):
        response = client.post("/v1/documents", json=body)
        assert response.status_code == 400 and response.json()["error"]["code"] == "bad_input"


def test_feeds_endpoints_subscribe_update_once_and_unsubscribe(client, site):
    items = [(p, site.url(p), "Tue, 30 Apr 2024 08:00:00 GMT") for p in ("/news/pier-vote", "/world/rail-link")]
    site.routes["/rss.xml"] = Route(rss("Lowmere News", items), "application/rss+xml", etag='"v1"')
    feed = site.url("/rss.xml")
    added = client.post("/v1/feeds", json={"url": feed})
    assert added.status_code == 201 and added.json()["feed"]["title"] == "Lowmere News"
    assert client.post("/v1/feeds", json={"url": feed}).json()["status"] == "exists"
    assert [f["url"] for f in client.get("/v1/feeds").json()["feeds"]] == [feed]

    before = total(client)
    updated = client.post("/v1/feeds/update")
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert sorted(body["added"]) == sorted(page_id(u) for _, u, _ in items) and body["total_documents"] == before + 2
    assert body["feeds"][0]["status"] == "new" and total(client) == before + 2  # served at once

    site.clear_log()
    quiet = client.post("/v1/feeds/update", json={"urls": [feed]}).json()
    assert (
        quiet["feeds"][0]["status"] == "not_modified"
        and quiet["added"] == []
        and quiet["generation"] == body["generation"]
    )
    assert [(h.path, h.status, h.if_none_match) for h in site.hits()] == [("/rss.xml", 304, '"v1"')]

    assert client.delete("/v1/feeds", params={"url": feed}).json()["url"] == feed
    missing = client.delete("/v1/feeds", params={"url": feed})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert client.get("/v1/feeds").json()["feeds"] == [] and total(client) == before + 2  # the articles stay


def test_a_bad_feed_is_refused_and_a_failing_one_is_reported(client, site):
    site.routes["/page"] = Route(b"<html><body>just a page</body></html>")
    refused = client.post("/v1/feeds", json={"url": site.url("/page")})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "bad_feed"
    down = client.post("/v1/feeds", json={"url": site.url("/nothing.xml")})
    assert down.status_code == 502 and "404" in down.json()["error"]["message"]

    site.routes["/rss.xml"] = Route(rss("Soon broken", []), "application/rss+xml")
    assert client.post("/v1/feeds", json={"url": site.url("/rss.xml")}).status_code == 201
    site.routes["/rss.xml"] = Route(b"<rss version='2.0'><channel><item><link>", "application/rss+xml")
    before = total(client)
    report = client.post("/v1/feeds/update").json()
    assert (
        report["feeds"][0]["status"] == "failed"
        and "not well-formed XML" in report["feeds"][0]["error"]
        and total(client) == before
    )


def test_feed_writes_follow_the_uploads_switch(make_client, site):
    client = make_client(allow_uploads=False)
    assert client.post("/v1/feeds", json={"url": site.url("/rss.xml")}).status_code == 403
    assert client.post("/v1/feeds/update").status_code == 403
    assert client.post("/v1/documents", json={"url": site.url("/news/pier-vote")}).status_code == 403
    assert client.get("/v1/feeds").status_code == 200


def test_serve_updates_the_feeds_on_an_interval_when_set(make_client, site, settings):
    url = site.url("/world/glacier")
    site.routes["/rss.xml"] = Route(
        rss("World", [("g", url, "Tue, 30 Apr 2024 08:00:00 GMT")]), "application/rss+xml", etag='"w1"'
    )
    idle = make_client()  # interval 0: no background updates
    assert idle.post("/v1/feeds", json={"url": site.url("/rss.xml")}).status_code == 201
    time.sleep(0.6)
    assert not site.hits("/world/glacier")

    client = make_client(feeds_update_interval_s=0.2)
    deadline = time.monotonic() + 10
    while page_id(url) not in {d["doc_id"] for d in client.get("/v1/documents").json()["documents"]}:
        assert time.monotonic() < deadline, "the periodic update never indexed the feed's item"
        time.sleep(0.1)
    time.sleep(0.6)  # later rounds: conditional requests only
    assert len(site.hits("/world/glacier")) == 1 and site.hits("/rss.xml")[-1].status == 304


def _localhost(site: NewsServer, path: str) -> str:
    return site.url(path).replace("127.0.0.1", "localhost")


def test_a_url_on_a_loopback_address_is_refused_and_its_redirect_hop_too(make_client, site):
    """SSRF (issue 25, 1): the default policy refuses loopback at once, and a host that is allowed by name
    cannot redirect the fetch to one that is not: every hop is checked."""
    site.routes["/secret"] = Route(article_page("Internal", ["The admin password of the harbour router is hunter2."]))
    site.routes["/redirect"] = Route(b"", status=302, location=site.url("/secret"))
    strict = make_client(fetch_allow_private=False)
    before = strict.get("/v1/documents").json()
    for path in ("/secret", "/redirect"):
        refused = strict.post("/v1/documents", json={"url": site.url(path)})
        assert refused.status_code == 403, refused.text
        error = refused.json()["error"]
        assert error["code"] == "address_refused" and "loopback" in error["message"]
    assert strict.get("/v1/documents").json() == before and not site.hits("/secret")

    by_name = make_client(fetch_allow_private=False, fetch_allow_hosts=["localhost"])
    hop = by_name.post("/v1/documents", json={"url": _localhost(site, "/redirect")})
    assert hop.status_code == 403 and "127.0.0.1 is a loopback address" in hop.json()["error"]["message"]
    assert not site.hits("/secret") and by_name.get("/v1/documents").json() == before
    hits = by_name.post("/v1/search", json={"query": "admin password harbour router", "top_k": 3}).json()
    assert all("hunter2" not in r["text"] for r in hits["results"])


def test_a_feed_item_linking_to_a_refused_address_is_skipped(make_client, site):
    site.routes["/secret"] = Route(article_page("Internal", ["The admin password of the harbour router is hunter2."]))
    site.routes["/rss.xml"] = Route(
        rss("Third party", [("s", site.url("/secret"), "Tue, 30 Apr 2024 08:00:00 GMT")]), "application/rss+xml"
    )
    client = make_client(fetch_allow_private=False, fetch_allow_hosts=["localhost"])
    assert client.post("/v1/feeds", json={"url": _localhost(site, "/rss.xml")}).status_code == 201
    before = total(client)
    report = client.post("/v1/feeds/update").json()
    skipped = report["feeds"][0]["skipped"]
    assert report["added"] == [] and total(client) == before and not site.hits("/secret")
    assert len(skipped) == 1 and "loopback" in skipped[0]["reason"]


def test_url_uploads_take_the_upload_lane_like_file_uploads(settings, hashing_embedder, prompts, corpus_copy, site):
    """Issue 25, 3: six parallel URL uploads of slow pages all fetched at once and skipped admission; they now
    queue in the upload lane (1 running + 2 waiting by default), so three are refused with 503 as files are."""
    import asyncio

    import httpx

    index, _ = index_paths(settings, hashing_embedder, [corpus_copy])
    s = settings.model_copy(update={"fetch_allow_private": True})
    app = create_app(s, Pipeline(s, index, hashing_embedder, ScriptedGenerator("x"), prompts, strength_rule()))
    paths = list(STORIES)[:5] + ["/news/extra"]
    site.routes["/news/extra"] = Route(article_page("Extra", ["The harbour ferry timetable changes on Monday."]))
    for path in paths:
        site.routes[path].delay_s = 0.5

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as c:
            posts = [c.post("/v1/documents", json={"url": site.url(p)}) for p in paths]
            return await asyncio.gather(*posts)

    try:
        responses = asyncio.run(scenario())
    finally:
        app.state.runtime.admission.shutdown()
    codes = sorted(r.status_code for r in responses)
    assert codes == [201, 201, 201, 503, 503, 503], [r.text for r in responses]
    assert all(r.json()["error"]["code"] == "busy" for r in responses if r.status_code == 503)
    assert len(site.hits()) == 3  # the refused ones were never fetched

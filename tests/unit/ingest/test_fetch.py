"""URL ids, charsets and feed parsing: the parts of rag/ingest/fetch.py and rag/ingest/feeds.py that need no server."""

from __future__ import annotations

import pytest

from rag.core.errors import BadInputError, FeedError
from rag.ingest.corpus import validate_doc_id
from rag.ingest.feeds import parse_feed
from rag.ingest.fetch import Fetched, article_from_page, normalise_url, page_id, split_targets


def test_page_ids_are_stable_valid_and_distinct():
    url = "https://News.Example.com/2024/05/pier-vote.html?id=7"
    same = [
        "https://news.example.com:443/2024/05/pier-vote.html?id=7#comments",
        "HTTPS://news.example.com/2024/05/pier-vote.html?utm_source=rss&id=7&fbclid=x",
    ]
    assert all(page_id(u) == page_id(url) for u in same)
    assert page_id(url).startswith("news.example.com_pier-vote-html_") and validate_doc_id(page_id(url))
    others = [
        "https://news.example.com/2024/05/pier-vote.html?id=8",
        "http://news.example.com/2024/05/pier-vote.html?id=7",
        "https://news.example.com/2024/06/pier-vote.html?id=7",
    ]
    assert len({page_id(u) for u in [url, *others]}) == 4
    for odd in ("http://[::1]:8080/", "http://example.com", "http://x.org/" + "é" * 300):
        assert validate_doc_id(page_id(odd))
    assert normalise_url("http://Example.com:8080") == "http://example.com:8080/"


def test_only_http_and_https_targets_are_urls():
    urls, paths = split_targets(["data/corpus", "https://example.com/a", "story.html"])
    assert urls == ["https://example.com/a"] and [str(p) for p in paths] == ["data/corpus", "story.html"]
    for bad in ("ftp://example.com/a", "file:///etc/passwd", "http://", "https:no-host"):
        with pytest.raises(BadInputError, match="not an http"):
            split_targets([bad])


def test_a_latin1_page_is_read_in_its_declared_charset():
    html = (
        "<html><head><meta charset='iso-8859-1'><title>Caf\xe9 reopens</title></head><body><article><p>The caf\xe9 on "
        "the quay reopened on Monday after a long winter closure, its owner said.</p></article></body></html>"
    )
    page = Fetched(
        url="http://example.com/cafe", status=200, content_type="text/html", charset=None, data=html.encode("latin-1")
    )
    article, name, data = article_from_page(page, "http://example.com/cafe")
    assert "café on the quay" in article.text and article.meta.title == "Café reopens" and data.decode("utf-8")
    assert name == page_id("http://example.com/cafe") + ".html" and article.meta.url == "http://example.com/cafe"


def test_feeds_parse_rss_and_atom_and_refuse_what_is_not_one():
    title, items = parse_feed(
        b"<?xml version='1.0'?><feed xmlns='http://www.w3.org/2005/Atom'><title>T</title><entry><id>e1</id><link "
        b"href='/a'/><updated>2024-05-01T10:00:00Z</updated></entry><entry><id>urn:uuid:e2</id></entry></feed>",
        url="http://h/feed.xml",
    )
    assert title == "T" and [(i.link, i.date) for i in items] == [
        ("http://h/a", "2024-05-01")
    ]  # relative link resolved; no link, no item
    for body in (
        b"<html><body>hello</body></html>",
        b"",
        b"<rss version='2.0'><channel><title>x</title><item><link>http://h/1</link>",
    ):
        with pytest.raises(FeedError):
            parse_feed(body, url="http://h/feed.xml")


def test_a_page_names_its_outlet_from_its_address_with_or_without_a_canonical_link():
    body = (
        "<html><head><title>Pier vote</title>{}</head><body><article><p>The council voted on Tuesday to rebuild the "
        "old pier before the summer season.</p>"
        "<p>Work starts in May and is paid for by the harbour fund, the mayor said.</p></article></body></html>"
    )
    bare = Fetched(
        url="https://www.example-news.org/2024/05/pier",
        status=200,
        content_type="text/html",
        charset=None,
        data=body.format("").encode(),
    )
    linked = Fetched(
        url=bare.url,
        status=200,
        content_type="text/html",
        charset=None,
        data=body.format('<link rel="canonical" href="https://www.example-news.org/2024/05/pier">').encode(),
    )
    assert (
        article_from_page(bare, bare.url)[0].meta.source
        == article_from_page(linked, bare.url)[0].meta.source
        == "example-news.org"
    )
    cnn = Fetched(
        url="https://edition.cnn.com/2024/05/pier",
        status=200,
        content_type="text/html",
        charset=None,
        data=body.format("").encode(),
    )
    assert article_from_page(cnn, cnn.url)[0].meta.source == "CNN"

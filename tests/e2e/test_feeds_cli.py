"""`rag feeds` / `rag update` / `rag index URL` against a news site on 127.0.0.1 (tests/newsserver.py).

The commands run in-process through rag.cli.main.main, as the `rag` script runs them (one `error:` line and exit 1
for a user's mistake), with the hashing embedder in place of the model; two cases at the end run the real
command in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from rag.core.settings import Settings
from rag.ingest.fetch import page_id
from rag.storage.loading import load_index
from rag.storage.manifest import read_manifest
from tests.conftest import ROOT
from tests.fakes import HashingEmbedder
from tests.newsserver import STORIES, NewsServer, Route, TrickleServer, article_page, atom, http_date, rss


def publish(site: NewsServer, path: str, **kw) -> str:
    title, text = STORIES[path]
    site.routes[path] = Route(article_page(title, [text], **kw))
    return site.url(path)


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:  # rich wraps stdout at 80 columns when it is not a terminal
        return " ".join(self.out.split())


@pytest.fixture
def site():
    server = NewsServer().start()
    yield server
    server.stop()


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """cli(*args, **RAG_env) -> Result of `rag --index-dir INDEX args`; cli.loads counts embedding model loads."""
    from rag.cli.main import main

    monkeypatch.chdir(tmp_path)  # no developer .env
    for key in [k for k in os.environ if k.startswith("RAG_")]:
        monkeypatch.delenv(key)
    index = tmp_path / "index"
    loads: list[int] = []

    def build(settings):
        loads.append(1)
        return HashingEmbedder(256)

    monkeypatch.setattr("rag.models.embedding.build_embedder", build)

    def run(*args: str, **env: str) -> Result:
        with monkeypatch.context() as m:
            # The news site is on 127.0.0.1, which the fetch policy refuses unless told (rag/ingest/addresses.py).
            env = {"RAG_FETCH_ALLOW_PRIVATE": "true", **env}
            for key, value in env.items():
                m.setenv(key, value)
            m.setattr(sys, "argv", ["rag", "--index-dir", str(index), *args])
            try:
                main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    run.index, run.loads = index, loads
    return run


def documents(index: Path) -> dict:
    try:
        return read_manifest(index).documents
    except Exception:
        return {}


def articles(index: Path) -> dict:
    return load_index(Settings(_env_file=None, index_dir=index), embedding_model="hashing-256", dimension=256).articles


def stored_files(index: Path) -> set[str]:
    folder = index / "documents"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


@pytest.fixture
def feeds(site):
    """An RSS feed (ETag) with two stories and an Atom feed (Last-Modified) with two others."""
    rss_items = [
        ("pier", publish(site, "/news/pier-vote"), "Tue, 30 Apr 2024 08:00:00 GMT"),
        ("library", publish(site, "/news/library-barge"), "Sat, 04 May 2024 08:00:00 GMT"),
    ]
    atom_items = [
        ("urn:glacier", publish(site, "/world/glacier", outlet=None, date=None), "2024-05-01T09:00:00Z"),
        ("urn:rail", publish(site, "/world/rail-link"), "2024-05-02T09:00:00Z"),
    ]
    site.routes["/rss.xml"] = Route(rss("Lowmere News", rss_items), "application/rss+xml", etag='"rss-v1"')
    site.routes["/atom.xml"] = Route(atom("World", atom_items), "application/atom+xml", last_modified=http_date(-3600))
    return rss_items


def subscribe(cli, site) -> None:
    for path in ("/rss.xml", "/atom.xml"):
        result = cli("feeds", "add", site.url(path))
        assert result.code == 0 and "subscribed to" in result.out, result.err


def test_update_indexes_new_items_once_and_a_second_update_fetches_nothing(cli, site, feeds):
    subscribe(cli, site)
    listed = json.loads(cli("feeds", "list", "--json").out)
    assert {f["title"] for f in listed} == {"Lowmere News", "World"} and all(f["items_seen"] == 0 for f in listed)

    first = cli("update")
    assert first.code == 0, first.err
    assert "2 new, 2 indexed" in first.out and first.out.count("2 indexed") == 2
    docs = documents(cli.index)
    assert set(docs) == {
        page_id(site.url(p)) for p in ("/news/pier-vote", "/news/library-barge", "/world/glacier", "/world/rail-link")
    }
    glacier = articles(cli.index)[page_id(site.url("/world/glacier"))]
    # The page names no outlet or date: the host and the Atom entry's date stand in; the url is always kept.
    assert (glacier.meta.title, glacier.meta.source, glacier.meta.date, glacier.meta.url) == (
        "Glacier retreat measured in the Alps",
        "127.0.0.1",
        "2024-05-01",
        site.url("/world/glacier"),
    )
    pier = articles(cli.index)[page_id(site.url("/news/pier-vote"))]
    assert (pier.meta.source, pier.meta.date) == (
        "Harbour Gazette",
        "2024-05-02",
    ) and "four million pounds" in pier.text
    assert all("newsrag/" in hit.user_agent for hit in site.hits())

    state_before = (cli.index / "feeds.json").read_bytes()
    current_before = (cli.index / "CURRENT").read_text()
    loads_before = len(cli.loads)
    site.clear_log()
    second = cli("update")
    assert second.code == 0, second.err
    assert second.out.count("not modified") == 2
    hits = site.hits()
    assert [(h.path, h.status) for h in hits] == [("/rss.xml", 304), ("/atom.xml", 304)]  # no page fetched
    assert hits[0].if_none_match == '"rss-v1"' and hits[1].if_modified_since == site.routes["/atom.xml"].last_modified
    assert (cli.index / "feeds.json").read_bytes() == state_before and (
        cli.index / "CURRENT"
    ).read_text() == current_before
    assert len(cli.loads) == loads_before  # nothing to embed: the model is not even loaded


def test_a_feed_that_adds_an_item_gets_it_indexed_on_the_next_update(cli, site, feeds):
    subscribe(cli, site)
    assert cli("update").code == 0
    feeds.insert(0, ("school", publish(site, "/news/new-school"), "Mon, 06 May 2024 08:00:00 GMT"))
    site.routes["/rss.xml"] = Route(rss("Lowmere News", feeds), "application/rss+xml", etag='"rss-v2"')
    site.clear_log()

    result = cli("update")
    assert result.code == 0, result.err
    assert "1 new, 1 indexed" in result.out and "not modified" in result.out  # the Atom feed did not change
    assert [(h.path, h.status) for h in site.hits()] == [
        ("/rss.xml", 200),
        ("/news/new-school", 200),
        ("/atom.xml", 304),
    ]
    assert site.hits("/rss.xml")[0].if_none_match == '"rss-v1"'
    assert page_id(site.url("/news/new-school")) in documents(cli.index) and len(documents(cli.index)) == 5
    site.clear_log()
    assert cli("update").code == 0 and [h.status for h in site.hits()] == [304, 304]


def test_a_feed_that_is_not_one_is_refused_when_added(cli, site):
    site.routes["/not-a-feed"] = Route(b"<html><body><p>Welcome to our homepage</p></body></html>")
    site.routes["/garbage.xml"] = Route(b"\x00\x01 certainly not xml", "application/rss+xml")
    for path, words in (
        ("/not-a-feed", "not an RSS or Atom feed"),
        ("/garbage.xml", "not an RSS or Atom feed"),
        ("/missing.xml", "404"),
    ):
        result = cli("feeds", "add", site.url(path))
        assert result.code == 1 and result.out == ""
        assert (
            result.err.count("\n") == 1
            and result.err.startswith("error: ")
            and words in result.err
            and site.url(path) in result.err
        )
    assert json.loads(cli("feeds", "list", "--json").out) == []


def test_a_feed_that_breaks_later_is_reported_and_indexes_nothing(cli, site, feeds):
    subscribe(cli, site)
    truncated = rss("Lowmere News", feeds)[:-40]  # cut inside the last item: two items would still parse
    site.routes["/rss.xml"] = Route(truncated, "application/rss+xml", etag='"rss-broken"')
    site.routes["/atom.xml"] = Route(b"<html>maintenance</html>", "text/html")
    result = cli("update")
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("feed failed ") for line in lines)
    assert "not well-formed XML" in lines[0] and "not an RSS or Atom feed" in lines[1]
    assert documents(cli.index) == {} and stored_files(cli.index) == set()
    assert [h.path for h in site.hits()][-2:] == ["/rss.xml", "/atom.xml"] and not site.hits("/news/pier-vote")


def _bad_page(site: NewsServer, kind: str) -> tuple[str, dict[str, str], str]:
    """A page that fails in one way: (its URL, settings for the run, words its line must contain)."""
    huge = article_page("Huge", ["A sentence about the harbour that repeats."] * 3000)
    routes = {
        "404": (Route(b"gone", "text/plain", status=404), {}, "answered 404"),
        "timeout": (
            Route(article_page("Slow", ["This page takes too long."]), delay_s=3),
            {"RAG_FETCH_TIMEOUT_S": "0.5"},
            "no answer within 0.5 s",
        ),
        "oversize": (Route(huge), {"RAG_FETCH_MAX_BYTES": "20000"}, "larger than the limit of 20000 bytes"),
        "oversize-unannounced": (
            Route(huge, send_length=False),
            {"RAG_FETCH_MAX_BYTES": "20000"},
            "larger than the limit of 20000 bytes",
        ),
        "not-html": (Route(b"%PDF-1.4 binary", "application/pdf"), {}, "sent application/pdf, not an HTML page"),
        "redirect-loop": (
            Route(b"", status=302, location="/bad"),
            {"RAG_FETCH_MAX_REDIRECTS": "3"},
            "more than 3 redirects",
        ),
    }
    route, env, words = routes[kind]
    site.routes["/bad"] = route
    return site.url("/bad"), env, words


KINDS = ["404", "timeout", "oversize", "oversize-unannounced", "not-html", "redirect-loop"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_bad_item_page_gives_one_line_and_no_document(cli, site, kind):
    bad, env, words = _bad_page(site, kind)
    good = publish(site, "/news/pier-vote")
    site.routes["/rss.xml"] = Route(
        rss("Mixed", [("bad", bad, "Tue, 30 Apr 2024 08:00:00 GMT"), ("good", good, "Tue, 30 Apr 2024 09:00:00 GMT")]),
        "application/rss+xml",
        etag='"m1"',
    )
    assert cli("feeds", "add", site.url("/rss.xml")).code == 0
    result = cli("update", **env)
    assert result.code == 1 and "2 new, 1 indexed" in result.out
    lines = result.err.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith(f"skipped {bad}: ")
        and words in lines[0]
        and "retried next update" in lines[0]
    )
    assert set(documents(cli.index)) == {page_id(good)}
    assert stored_files(cli.index) == {page_id(good) + ".html"}  # nothing of the bad page was stored


@pytest.mark.parametrize("kind", KINDS)
def test_rag_index_of_a_bad_url_gives_one_line_and_no_document(cli, site, kind):
    bad, env, words = _bad_page(site, kind)
    result = cli("index", bad, **env)
    assert result.code == 1
    line = result.err.strip()  # (the transient progress bar leaves a blank line on a non-terminal)
    assert line.splitlines() == [line] and line.startswith(f"skipped {bad}: ") and words in line
    assert "0 added" in result.text and documents(cli.index) == {} and stored_files(cli.index) == set()
    assert cli.loads == []  # nothing arrived, so no model was loaded


def test_a_failing_item_is_retried_then_given_up_and_the_feed_goes_quiet(cli, site):
    site.routes["/rss.xml"] = Route(
        rss("One", [("gone", site.url("/gone"), "Tue, 30 Apr 2024 08:00:00 GMT")]), "application/rss+xml", etag='"g1"'
    )
    assert cli("feeds", "add", site.url("/rss.xml")).code == 0
    notes = [cli("update").err for _ in range(3)]
    assert "attempt 1 of 3" in notes[0] and "attempt 2 of 3" in notes[1] and "gave up after 3 attempts" in notes[2]
    # Validators were withheld while the item was pending, so each retry was a full GET.
    assert [h.if_none_match for h in site.hits("/rss.xml")] == [None, None, None, None]  # add + three updates
    site.clear_log()
    quiet = cli("update")
    assert quiet.code == 0 and "not modified" in quiet.out and [h.path for h in site.hits()] == ["/rss.xml"]


def test_rag_index_url_keeps_metadata_and_survives_reindex(cli, site):
    url = publish(site, "/world/glacier", outlet=None, date=None)
    moved = site.url("/old/glacier")
    site.routes["/old/glacier"] = Route(b"", status=301, location="/world/glacier")
    first = cli("index", url, moved + "?utm_source=newsletter")
    assert first.code == 0, first.err
    assert "2 added" not in first.text and "1 added" in first.text  # the moved copy has the same content
    assert "same content as document" in first.err
    doc_id = page_id(url)
    assert doc_id.startswith("127.0.0.1_glacier_") and set(documents(cli.index)) == {doc_id}
    again = cli("index", url)
    assert "1 unchanged" in again.text and "0 passages embedded" in again.text
    assert page_id(url + "#comments") == doc_id == page_id(url.replace("http://", "HTTP://") + "?utm_medium=x")

    rebuilt = cli("reindex", "--rebuild")
    assert rebuilt.code == 0, rebuilt.err
    meta = articles(cli.index)[doc_id].meta
    assert (meta.url, meta.source, meta.title) == (
        url,
        "127.0.0.1",
        "Glacier retreat measured in the Alps",
    )  # from the stored copy alone
    assert cli("remove", doc_id).code == 0 and documents(cli.index) == {}


def test_one_page_reached_twice_is_indexed_once(cli, site):
    url = publish(site, "/news/pier-vote")
    site.routes["/rss.xml"] = Route(
        rss("A", [("p", url + "?utm_source=rss", "Tue, 30 Apr 2024 08:00:00 GMT")]), "application/rss+xml"
    )
    site.routes["/atom.xml"] = Route(atom("B", [("urn:p", url, "2024-04-30T08:00:00Z")]), "application/atom+xml")
    result = cli("index", url, url + "?utm_medium=email")
    assert result.code == 0 and "1 added" in result.text and set(documents(cli.index)) == {page_id(url)}
    passages = read_manifest(cli.index).count
    for path in ("/rss.xml", "/atom.xml"):
        assert cli("feeds", "add", site.url(path)).code == 0
    assert cli("update").code == 0
    assert set(documents(cli.index)) == {page_id(url)} and read_manifest(cli.index).count == passages


def test_rag_index_takes_files_and_urls_together(cli, site, tmp_path):
    story = tmp_path / "harbour.txt"
    story.write_text(
        "Harbour dues rise\n\nThe harbour board raised mooring dues by five percent on Monday, its chair said.\n"
    )
    url = publish(site, "/world/rail-link")
    result = cli("index", str(story), url, site.url("/missing"))
    assert (
        result.code == 0
        and "2 added" in result.text
        and "1 skipped" in result.text
        and "index now 2 documents" in result.text
    )
    assert set(documents(cli.index)) == {"harbour", page_id(url)} and len(cli.loads) == 1  # one model load for both


def test_only_http_urls_are_accepted(cli):
    for target in ("ftp://example.com/story.html", "file:///etc/passwd", "javascript://x"):
        result = cli("index", target)
        assert (
            result.code == 1
            and result.err.startswith("error: ")
            and "not an http(s) URL" in result.err
            and result.err.count("\n") == 1
        )
        assert cli("feeds", "add", target).code == 1
    assert cli.loads == []


def test_removing_a_feed(cli, site, feeds):
    subscribe(cli, site)
    removed = cli("feeds", "remove", site.url("/rss.xml"))
    assert removed.code == 0 and "unsubscribed" in removed.out
    again = cli("feeds", "remove", site.url("/rss.xml"))
    assert again.code == 1 and again.err.startswith("error: not subscribed to")
    assert [f["url"] for f in json.loads(cli("feeds", "list", "--json").out)] == [site.url("/atom.xml")]
    assert cli("update", site.url("/rss.xml")).code == 1  # an update of a feed not subscribed says so


def run_real(*args: str, index: Path, **env: str) -> subprocess.CompletedProcess:
    """The real `rag` (this checkout's, via -m) in a subprocess."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    environ.update({"RAG_INDEX_DIR": str(index), **env})
    return subprocess.run(
        [sys.executable, "-m", "rag.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
        cwd=ROOT,
    )


def test_the_real_command_prints_one_line_for_a_broken_feed_and_a_missing_page(site, tmp_path):
    site.routes["/broken.xml"] = Route(b"<rss version='2.0'><channel><title>x</title><item>", "application/rss+xml")
    added = run_real("feeds", "add", site.url("/broken.xml"), index=tmp_path / "index", RAG_FETCH_ALLOW_PRIVATE="true")
    assert added.returncode == 1 and "Traceback" not in added.stderr
    assert (
        added.stderr.count("\n") == 1 and added.stderr.startswith("error: ") and "not well-formed XML" in added.stderr
    )
    indexed = run_real("index", site.url("/nope"), index=tmp_path / "index", RAG_FETCH_ALLOW_PRIVATE="true")
    assert indexed.returncode == 1 and "Traceback" not in indexed.stderr
    assert indexed.stderr.strip() == f"skipped {site.url('/nope')}: the server answered 404 Not Found"


def test_the_real_command_refuses_a_loopback_url_by_default_in_one_line(site, tmp_path):
    site.routes["/secret"] = Route(article_page("Internal", ["The router password is hunter2, the admin said."]))
    indexed = run_real("index", site.url("/secret"), index=tmp_path / "index")
    assert indexed.returncode == 1 and "Traceback" not in indexed.stderr
    assert indexed.stderr.strip() == (
        f"skipped {site.url('/secret')}: 127.0.0.1 is a loopback address (127.0.0.1): not fetched "
        "(allow it with RAG_FETCH_ALLOW_PRIVATE or RAG_FETCH_ALLOW_HOSTS)"
    )
    assert not site.hits("/secret") and documents(tmp_path / "index") == {}


def test_the_fetch_timeout_is_one_deadline_even_for_headers_sent_a_byte_a_second(cli):
    """Issue 25, 2: httpx's timeout bounds each read, so a server trickling its headers kept `rag index` for as
    long as it liked (40 s for these headers); the whole fetch now ends at RAG_FETCH_TIMEOUT_S."""
    slow = TrickleServer().start()
    url = slow.url("/slowheaders")
    try:
        started = time.monotonic()
        result = cli("index", url, RAG_FETCH_TIMEOUT_S="2")
        elapsed = time.monotonic() - started
    finally:
        slow.stop()
    assert result.code == 1 and elapsed < 4, elapsed
    assert result.err.strip() == f"skipped {url}: no answer within 2 s (RAG_FETCH_TIMEOUT_S)"

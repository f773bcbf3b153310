"""Pages in over HTTP: fetched within limits (time, size, redirects), then cleaned like a file (rag.ingest.corpus), so a
URL gives the same kind of Article as a saved page. Only http and https. A page's id is derived from its URL,
so fetching it again updates the same document."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html import escape
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from rag import __version__
from rag.core.errors import (
    AddressRefusedError,
    BadInputError,
    FetchError,
    FetchTimeoutError,
    FetchTooLargeError,
    NotHtmlError,
    RagError,
)
from rag.core.settings import Settings
from rag.core.types import Article
from rag.ingest.addresses import AddressPolicy
from rag.ingest.corpus import META_CHARSET, article_from_bytes, decode_text
from rag.ingest.indexing import IndexReport, SkippedFile, add_article, commit_articles, writes_index
from rag.ingest.transport import PinnedTransport, deadline
from rag.models.embedding import Embedder
from rag.storage.index import Index
from rag.storage.manifest import IndexLock, read_manifest
from rag.text.outlets import outlet_from_url

USER_AGENT = f"newsrag/{__version__} (a local news archive; fetches the pages and feeds its user added)"
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
PAGE_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"
# Tracking parameters name the campaign, not the page: without them a feed's link and a pasted link agree.
_TRACKING = re.compile(r"^(utm_[a-z]+|fbclid|gclid|mc_cid|mc_eid)$", re.I)

Incoming = tuple[Article, str, bytes]  # what rag.ingest.indexing.apply_articles takes: article, file name, raw bytes
EmbedderSource = Callable[[], Embedder]  # called only when there is something to embed


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    status: int
    content_type: str  # media type only, lower case; "" when the server sent none
    charset: str | None
    data: bytes
    etag: str | None = None
    last_modified: str | None = None


def is_url(target: str) -> bool:
    return "://" in target or target.lower().startswith(("http:", "https:"))


def check_url(url: str) -> str:
    """`url` if it is an absolute http(s) URL with a host, else BadInputError."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise BadInputError(f"{url!r} is not an http(s) URL: only http:// and https:// pages and feeds can be fetched")
    return url.strip()


def split_targets(targets: list[str]) -> tuple[list[str], list]:
    """`rag index` arguments: (URLs, paths). A URL of another scheme is refused before any work starts."""
    from pathlib import Path

    urls = [check_url(t) for t in targets if is_url(t)]
    return urls, [Path(t) for t in targets if not is_url(t)]


def normalise_url(url: str) -> str:
    parts = urlsplit(check_url(url))
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default_port = {"http": 80, "https": 443}[parts.scheme.lower()]
    netloc = host if parts.port in (None, default_port) else f"{host}:{parts.port}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)])
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", query, ""))


def page_id(url: str) -> str:
    """A stable document id for a page: its host and last path words to read, a hash of the normalised URL to
    keep two pages apart (the same rules as a file stem: rag.ingest.corpus.validate_doc_id)."""
    norm = normalise_url(url)
    parts = urlsplit(norm)
    host = re.sub(r"[^A-Za-z0-9.-]+", "-", parts.hostname or "").strip(".-")[:60] or "page"
    tail = re.sub(r"[^A-Za-z0-9]+", "-", parts.path.rstrip("/").rsplit("/", 1)[-1]).strip("-")[:40]
    digest = hashlib.sha256(norm.encode()).hexdigest()[:16]
    return "_".join(p for p in (host, tail, digest) if p)


def make_client(settings: Settings) -> httpx.Client:
    """A client whose every connection is checked against the address policy and pinned to the checked address
    (rag/ingest/transport.py). Redirects are followed by `fetch`, one checked hop at a time."""
    policy = AddressPolicy.build(settings.fetch_allow_private, settings.fetch_allow_hosts)
    return httpx.Client(
        transport=PinnedTransport(policy),
        timeout=httpx.Timeout(settings.fetch_timeout_s),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )


@contextmanager
def client_for(settings: Settings, client: httpx.Client | None) -> Iterator[httpx.Client]:
    """The caller's client (one from make_client, shared by a batch) or a new one closed afterwards."""
    if client is not None:
        yield client
        return
    with make_client(settings) as own:
        yield own


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def fetch(
    client: httpx.Client, settings: Settings, url: str, *, accept: str, headers: dict[str, str] | None = None
) -> Fetched:
    """GET `url` whole or not at all: an error status, a refused address, a body over the size limit, or the
    whole fetch (every connect, redirect, header and body byte) taking longer than the timeout raises."""
    timeout = settings.fetch_timeout_s
    try:
        with deadline(timeout):
            return _follow(client, settings, check_url(url), {"Accept": accept, **(headers or {})})
    except httpx.TimeoutException:
        raise FetchTimeoutError(f"{url}: no answer within {timeout:g} s (RAG_FETCH_TIMEOUT_S)") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"{url}: cannot fetch: {exc or type(exc).__name__}") from None
    except httpx.InvalidURL as exc:  # not an HTTPError in httpx
        raise BadInputError(f"{url}: not a valid URL ({exc})") from None
    except (AddressRefusedError, FetchError) as exc:
        if str(exc).startswith(f"{url}: "):
            raise
        # Raised in the transport, which knows the host but not the URL asked for: name it like every other error.
        raise type(exc)(f"{url}: {exc}") from None


def _follow(client: httpx.Client, settings: Settings, url: str, headers: dict[str, str]) -> Fetched:
    # Redirects are followed here, not by httpx, so each hop's scheme is checked and each hop's connection goes
    # through the address policy (a public page redirecting to 127.0.0.1 is refused like 127.0.0.1 itself).
    for _ in range(settings.fetch_max_redirects + 1):
        with client.stream("GET", url, headers=headers) as response:
            location = response.headers.get("location")
            if response.status_code in _REDIRECTS and location:
                target = str(response.url.join(location))
                if urlsplit(target).scheme.lower() not in ("http", "https"):
                    raise FetchError(f"{url}: redirected to a URL that is not http(s)")
                url = target
                continue
            return _receive(response, settings, url)
    raise FetchError(f"{url}: more than {settings.fetch_max_redirects} redirects (RAG_FETCH_MAX_REDIRECTS)")


def _receive(response: httpx.Response, settings: Settings, url: str) -> Fetched:
    limit = settings.fetch_max_bytes
    if response.status_code >= 400:
        raise FetchError(f"{url}: the server answered {response.status_code} {response.reason_phrase}".rstrip())
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise FetchTooLargeError(
            f"{url}: {declared} bytes is larger than the limit of {limit} bytes (RAG_FETCH_MAX_BYTES)"
        )
    chunks, size = [], 0
    for chunk in response.iter_bytes():  # decoded bytes: a small gzip bomb is counted by what it unpacks to
        size += len(chunk)
        if size > limit:
            raise FetchTooLargeError(f"{url}: larger than the limit of {limit} bytes (RAG_FETCH_MAX_BYTES)")
        chunks.append(chunk)
    media = response.headers.get("content-type", "")
    return Fetched(
        url=str(response.url),
        status=response.status_code,
        content_type=media.split(";")[0].strip().lower(),
        charset=response.charset_encoding,
        data=b"".join(chunks),
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
    )


def _looks_like_html(data: bytes) -> bool:
    head = data[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head


def _to_utf8(name: str, data: bytes, charset: str | None) -> bytes:
    """The page in UTF-8, decoded by the one rule files and uploads follow (rag.ingest.corpus.decode_text), its
    own charset declaration rewritten to say so: the stored copy must read the same on `rag reindex`."""
    utf8 = decode_text(name, data, declared=charset).encode("utf-8")
    return META_CHARSET.sub(lambda m: m.group(0)[: m.start(1) - m.start(0)] + b"utf-8", utf8, count=1)


def _declare(html: bytes, **meta: str | None) -> bytes:
    """Put what the page itself does not say (its URL, the outlet, a feed's date) into its <head>, where
    trafilatura reads a page's own metadata: the stored copy then rebuilds the same article on `rag reindex`."""
    tag = {
        "url": 'link rel="canonical" href',
        "source": 'meta property="og:site_name" content',
        "date": 'meta property="article:published_time" content',
    }
    tags = "".join(f'<{tag[k]}="{escape(v)}">' for k, v in meta.items() if v)
    if not tags:
        return html
    head = re.search(rb"<head(\s[^>]*)?>", html, re.I)
    at = head.end() if head else 0
    return html[:at] + tags.encode() + html[at:]


def article_from_page(page: Fetched, url: str, *, date: str | None = None) -> Incoming:
    """The Article in a fetched page, under the id of the URL asked for (not of where redirects ended)."""
    if page.content_type not in HTML_TYPES and not (
        page.content_type in ("", "application/octet-stream", "text/plain") and _looks_like_html(page.data)
    ):
        raise NotHtmlError(f"{url}: the server sent {page.content_type or 'no content type'}, not an HTML page")
    doc_id = page_id(url)
    name = f"{doc_id}.html"
    data = _to_utf8(url, page.data, page.charset)
    article = article_from_bytes(doc_id, name, data, path=url)
    missing = {
        "url": None if article.meta.url else page.url,
        # Named as a file's URL line names it (rag/text/outlets.py), so a page with and without a canonical link agree.
        "source": None if article.meta.source else outlet_from_url(page.url),
        "date": None if article.meta.date else date,
    }
    if any(missing.values()):
        data = _declare(data, **missing)
        article = article_from_bytes(doc_id, name, data, path=url)
    return article, name, data


def fetch_article(client: httpx.Client, settings: Settings, url: str, *, date: str | None = None) -> Incoming:
    return article_from_page(fetch(client, settings, url, accept=PAGE_ACCEPT), url, date=date)


def reason(exc: RagError, url: str) -> str:
    """An error's message without the URL in front, for lines that already name it."""
    return str(exc).removeprefix(f"{url}: ")


def commit_locked(settings: Settings, embedder: Embedder, incoming: list[Incoming], report: IndexReport) -> Index:
    """Index fetched articles in one generation, like `rag index` does files. Caller holds the IndexLock."""
    # One page reached twice in a batch (two feeds, a tracking parameter) must not be added twice.
    unique: dict[str, Incoming] = {}
    for item in incoming:
        unique.setdefault(item[0].doc_id, item)
    return commit_articles(settings, embedder, list(unique.values()), report)


def _totals(settings: Settings, report: IndexReport) -> None:
    try:
        if settings.store == "milvus":
            from rag.storage.milvus.records import load_stored

            manifest = load_stored(settings).manifest
        else:
            manifest = read_manifest(settings.index_dir)
    except RagError:
        return
    report.generation, report.total_documents, report.total_passages = (
        manifest.generation,
        len(manifest.documents),
        manifest.count,
    )


@writes_index
def index_urls(
    settings: Settings,
    embedder_source: EmbedderSource,
    urls: list[str],
    *,
    client: httpx.Client | None = None,
    report: IndexReport | None = None,
) -> tuple[Index | None, IndexReport]:
    """`rag index URL...`: every page is fetched first (a failure is skipped, with its reason), then all that
    arrived are indexed in one commit. No model is loaded when nothing arrived."""
    report = report or IndexReport()
    incoming: list[Incoming] = []
    with client_for(settings, client) as http:
        for url in dict.fromkeys(map(check_url, urls)):
            try:
                incoming.append(fetch_article(http, settings, url))
            except RagError as exc:
                report.skipped.append(SkippedFile(path=url, reason=reason(exc, url)))
    if not incoming:
        _totals(settings, report)
        return None, report
    embedder = embedder_source()
    with IndexLock(settings.index_dir, timeout=30):
        return commit_locked(settings, embedder, incoming, report), report


@writes_index
def add_url(
    settings: Settings, embedder_source: EmbedderSource, url: str, *, client: httpx.Client | None = None
) -> tuple[Index, IndexReport]:
    """One page through the API: raises instead of skipping, since the caller sent one URL."""
    with client_for(settings, client) as http:
        incoming = fetch_article(http, settings, check_url(url))
    return add_article(settings, embedder_source(), incoming, label=url)

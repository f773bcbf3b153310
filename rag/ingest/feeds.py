"""RSS and Atom feeds: subscribe, poll with conditional GET, index the items not seen before.

The subscriptions and what each feed has shown live in INDEX_DIR/feeds.json, written atomically under the
index's writer lock like every other index file. An update fetches feeds and pages without the lock (the
network is slow), then takes it once to commit the new articles and then the state, in that order: a crash
between the two leaves items indexed but not marked seen, and the next update finds them unchanged.
"""

from __future__ import annotations

import io
import time
import xml.sax
from typing import Literal

import feedparser
import httpx
from pydantic import BaseModel, Field, ValidationError

from rag.core.errors import FeedError, FeedNotFoundError, IndexCorruptError, RagError
from rag.core.settings import Settings
from rag.ingest.fetch import (
    EmbedderSource,
    Incoming,
    check_url,
    client_for,
    commit_locked,
    fetch,
    fetch_article,
    normalise_url,
    reason,
)
from rag.ingest.indexing import IndexReport, SkippedFile, writes_index
from rag.storage.index import Index
from rag.storage.manifest import IndexLock, now_utc, write_atomic

STATE_FILE = "feeds.json"
FEED_ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"


class FeedRecord(BaseModel):
    url: str
    title: str | None = None
    added_at: str
    etag: str | None = None
    last_modified: str | None = None
    seen: list[str] = Field(default_factory=list)  # item keys (guid, else link) indexed or given up on
    failures: dict[str, int] = Field(default_factory=dict)  # item key -> failed fetches so far
    last_new_at: str | None = None  # when an update last found new items (no "last checked": a 304 writes nothing)


class FeedState(BaseModel):
    version: int = 1
    feeds: dict[str, FeedRecord] = Field(default_factory=dict)


class FeedInfo(BaseModel):
    """A subscription as `rag feeds list` and GET /v1/feeds show it."""

    url: str
    title: str | None
    added_at: str
    items_seen: int
    pending_retries: int
    last_new_at: str | None
    conditional: bool  # the server gave an ETag or Last-Modified, so unchanged polls cost a 304


class FeedResult(BaseModel):
    url: str
    status: Literal["new", "unchanged", "not_modified", "failed"]
    items: int = 0  # in the feed as fetched
    new: int = 0  # items not seen before
    indexed: list[str] = Field(default_factory=list)  # document ids added or updated
    skipped: list[SkippedFile] = Field(default_factory=list)  # item pages that failed: retried on later updates
    error: str | None = None  # the feed itself failed


class UpdateReport(BaseModel):
    feeds: list[FeedResult] = Field(default_factory=list)
    index: IndexReport = Field(default_factory=IndexReport)

    @property
    def failed(self) -> bool:
        return any(f.status == "failed" or f.skipped for f in self.feeds)


class _Item(BaseModel):
    key: str
    link: str
    date: str | None = None


class _Polled(BaseModel):
    title: str | None
    items: list[_Item]
    etag: str | None
    last_modified: str | None


def info(record: FeedRecord) -> FeedInfo:
    return FeedInfo(
        url=record.url,
        title=record.title,
        added_at=record.added_at,
        items_seen=len(record.seen),
        pending_retries=len(record.failures),
        last_new_at=record.last_new_at,
        conditional=bool(record.etag or record.last_modified),
    )


# ---------------------------------------------------------------- state


def load_state(settings: Settings) -> FeedState:
    path = settings.index_dir / STATE_FILE
    try:
        return FeedState.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return FeedState()
    except (OSError, ValidationError, ValueError) as exc:
        raise IndexCorruptError(f"{path} does not load ({exc}); fix or delete it and add the feeds again") from None


def _save_state(settings: Settings, state: FeedState) -> None:
    write_atomic(settings.index_dir / STATE_FILE, state.model_dump_json(indent=2).encode())


def list_feeds(settings: Settings) -> list[FeedInfo]:
    return [info(r) for r in sorted(load_state(settings).feeds.values(), key=lambda r: r.url)]


# ---------------------------------------------------------------- polling


def _entry_date(entry: dict) -> str | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    return time.strftime("%Y-%m-%d", parsed) if parsed else None


def parse_feed(data: bytes, *, url: str, content_type: str = "") -> tuple[str | None, list[_Item]]:
    """The feed's title and items with an http(s) link. Anything that is not well-formed RSS or Atom raises
    FeedError: a half-read feed would index some items and silently lose the rest."""
    # A file object, never the bytes: feedparser fetches a string that looks like a URL.
    parsed = feedparser.parse(
        io.BytesIO(data), response_headers={"content-location": url, "content-type": content_type or "application/xml"}
    )
    if not parsed.get("version"):
        raise FeedError(f"{url}: not an RSS or Atom feed")
    problem = parsed.get("bozo_exception")
    if isinstance(problem, xml.sax.SAXException):
        raise FeedError(f"{url}: the feed is not well-formed XML ({problem}); nothing indexed from it")
    items = []
    for entry in parsed.entries:
        link = entry.get("link") or ""
        if not link.lower().startswith(("http://", "https://")):
            continue  # nothing we could fetch
        items.append(_Item(key=entry.get("id") or link, link=link, date=_entry_date(entry)))
    return parsed.feed.get("title") or None, items


def poll(client: httpx.Client, settings: Settings, record: FeedRecord) -> _Polled | None:
    """The feed's items, or None when the server says nothing changed (304) since the validators we kept."""
    headers = {}
    if record.etag:
        headers["If-None-Match"] = record.etag
    if record.last_modified:
        headers["If-Modified-Since"] = record.last_modified
    page = fetch(client, settings, record.url, accept=FEED_ACCEPT, headers=headers)
    if page.status == 304:
        return None
    title, items = parse_feed(page.data, url=record.url, content_type=page.content_type)
    return _Polled(title=title, items=items, etag=page.etag, last_modified=page.last_modified)


# ---------------------------------------------------------------- subscriptions


@writes_index
def add_feed(settings: Settings, url: str, *, client: httpx.Client | None = None) -> tuple[FeedInfo, bool]:
    """Subscribe to a feed after checking that it is one. (info, False) when it was already subscribed.
    Nothing is indexed yet: `rag update` does that."""
    url = normalise_url(check_url(url))
    with client_for(settings, client) as http:
        polled = poll(http, settings, FeedRecord(url=url, added_at=""))
    assert polled is not None  # no validators were sent, so no 304
    with IndexLock(settings.index_dir, timeout=30):
        state = load_state(settings)
        if url in state.feeds:
            return info(state.feeds[url]), False
        # The validators are not kept: the first update must see the items, not a 304.
        state.feeds[url] = record = FeedRecord(url=url, title=polled.title, added_at=now_utc())
        _save_state(settings, state)
    return info(record), True


@writes_index
def remove_feed(settings: Settings, url: str) -> FeedInfo:
    """Unsubscribe; the articles already indexed from the feed stay (remove them with `rag remove`)."""
    key = normalise_url(check_url(url))
    with IndexLock(settings.index_dir, timeout=30):
        state = load_state(settings)
        record = state.feeds.pop(key, None)
        if record is None:
            raise FeedNotFoundError(f"not subscribed to {url} (see `rag feeds list`)")
        _save_state(settings, state)
    return info(record)


# ---------------------------------------------------------------- update


# Item keys kept per feed beyond those the feed lists now: an item that left the feed is rarely listed again,
# and if it is, refetching it costs one request (its document comes back "unchanged"). Without a bound the list
# grew by every item a feed ever showed, and feeds.json was rewritten whole on every update.
SEEN_KEPT = 1000


class _Change(BaseModel):
    title: str | None
    etag: str | None = None
    last_modified: str | None = None
    listed: list[str] = Field(default_factory=list)  # every item key the feed listed this time
    seen: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)  # item keys whose page failed this time
    found_new: bool = False


def _apply(record: FeedRecord, change: _Change, max_attempts: int) -> bool:
    """Fold one update's findings into the record as re-read under the lock; False when nothing in it changed.
    Failures are counted onto the record's own counts, not copied from the poll's snapshot: two updates polling
    at once each add their attempt instead of the second overwriting the first."""
    before = record.model_dump()
    record.title = change.title or record.title
    record.etag, record.last_modified = change.etag, change.last_modified
    seen = list(dict.fromkeys(record.seen + change.seen))
    failures = {k: n for k, n in record.failures.items() if k in change.listed}  # left the feed: not retried
    for key in change.failed:
        if key in seen:
            continue  # another update got it in meanwhile
        failures[key] = failures.get(key, 0) + 1
        if failures[key] >= max_attempts:
            seen.append(key)  # given up on
    record.failures = {k: n for k, n in failures.items() if k not in seen}
    listed = set(change.listed)
    recent = set([k for k in seen if k not in listed][-SEEN_KEPT:])
    record.seen = [k for k in seen if k in listed or k in recent]
    if change.found_new:
        record.last_new_at = now_utc()
    return record.model_dump() != before


def _check_feed(
    http: httpx.Client, settings: Settings, record: FeedRecord, incoming: list[Incoming], origin: dict[str, FeedResult]
) -> tuple[FeedResult, _Change | None]:
    result = FeedResult(url=record.url, status="not_modified")
    try:
        polled = poll(http, settings, record)
    except RagError as exc:
        result.status, result.error = "failed", reason(exc, record.url)
        return result, None
    if polled is None:
        return result, None
    seen = set(record.seen)
    fresh = list({i.key: i for i in polled.items if i.key not in seen}.values())
    result.items, result.new, result.status = len(polled.items), len(fresh), "new" if fresh else "unchanged"
    change = _Change(title=polled.title, found_new=bool(fresh), listed=[i.key for i in polled.items])
    for item in fresh:
        try:
            article = fetch_article(http, settings, item.link, date=item.date)
        except RagError as exc:
            attempts = record.failures.get(item.key, 0) + 1
            given_up = attempts >= settings.feed_max_attempts
            note = (
                f" (gave up after {attempts} attempts)"
                if given_up
                else f" (attempt {attempts} of {settings.feed_max_attempts}; retried next update)"
            )
            result.skipped.append(SkippedFile(path=item.link, reason=reason(exc, item.link) + note))
            change.failed.append(item.key)  # counted (and given up on) under the lock, by _apply
            continue
        change.seen.append(item.key)
        incoming.append(article)
        origin[article[0].doc_id] = result
    if not change.failed or all(record.failures.get(k, 0) + 1 >= settings.feed_max_attempts for k in change.failed):
        # Validators are kept only when every new item got in: a 304 would otherwise hide the failed ones.
        change.etag, change.last_modified = polled.etag, polled.last_modified
    return result, change


@writes_index
def update_feeds(
    settings: Settings,
    embedder_source: EmbedderSource,
    *,
    urls: list[str] | None = None,
    client: httpx.Client | None = None,
) -> tuple[Index | None, UpdateReport]:
    """`rag update`: poll every feed (or `urls`), fetch and index the new items in one commit, record what was
    seen. Returns the new index when one was committed. A feed or page that fails is reported, not fatal."""
    state = load_state(settings)
    wanted = [normalise_url(u) for u in urls] if urls else list(state.feeds)
    unknown = [u for u in wanted if u not in state.feeds]
    if unknown:
        raise FeedNotFoundError(f"not subscribed to {', '.join(unknown)} (see `rag feeds list`)")
    report = UpdateReport()
    incoming: list[Incoming] = []
    origin: dict[str, FeedResult] = {}
    changes: dict[str, _Change] = {}
    with client_for(settings, client) as http:
        for url in wanted:
            result, change = _check_feed(http, settings, state.feeds[url], incoming, origin)
            report.feeds.append(result)
            if change is not None:
                changes[url] = change
    index = None
    if not changes:
        return None, report  # every feed answered 304 or failed: nothing to write, no model to load
    embedder = embedder_source() if incoming else None
    with IndexLock(settings.index_dir, timeout=30):
        if embedder is not None:
            index = commit_locked(settings, embedder, incoming, report.index)
            for doc_id in report.index.added + report.index.updated:
                origin[doc_id].indexed.append(doc_id)
        state = load_state(settings)  # again, under the lock: a feed may have been added or removed meanwhile
        dirty = [
            url
            for url, change in changes.items()
            if url in state.feeds and _apply(state.feeds[url], change, settings.feed_max_attempts)
        ]
        if dirty:
            _save_state(settings, state)
    return index, report

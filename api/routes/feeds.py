"""Feeds: subscribe, list, unsubscribe, update now; and the periodic update `rag serve` runs when
RAG_FEEDS_UPDATE_INTERVAL_S is set. The work is rag/ingest/feeds.py's; fetching runs in the threadpool, outside the
write lock, and the generation it commits is swapped in under it (Runtime.adopt)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from api.deps import Runtime, RuntimeDep, SettingsDep, UploadsAllowed, WriterPipelineDep
from api.schemas import FeedAdded, FeedList, FeedsUpdated, FeedsUpdateRequest, UrlRequest, error_responses
from rag.answer.pipeline import Pipeline
from rag.core.errors import RagError
from rag.ingest.feeds import FeedInfo, UpdateReport, add_feed, list_feeds, remove_feed, update_feeds

router = APIRouter(tags=["feeds"])
log = logging.getLogger("newsrag.api")


@router.get(
    "/v1/feeds", response_model=FeedList, summary="The subscribed RSS/Atom feeds", responses=error_responses(401, 503)
)
async def get_feeds(settings: SettingsDep) -> FeedList:
    return FeedList(feeds=await run_in_threadpool(list_feeds, settings))


@router.post(
    "/v1/feeds",
    status_code=201,
    response_model=FeedAdded,
    dependencies=[UploadsAllowed],
    summary="Subscribe to a feed (fetched once to check it is RSS or Atom; POST /v1/feeds/update indexes its items)",
    responses={
        200: {"model": FeedAdded, "description": "already subscribed"},
        **error_responses(400, 401, 403, 409, 413, 422, 502, 504),
    },
)
async def post_feed(body: UrlRequest, response: Response, settings: SettingsDep) -> FeedAdded:
    feed, added = await run_in_threadpool(add_feed, settings, body.url)
    if not added:
        response.status_code = 200
    return FeedAdded(status="added" if added else "exists", feed=feed)


@router.delete(
    "/v1/feeds",
    response_model=FeedInfo,
    dependencies=[UploadsAllowed],
    summary="Unsubscribe from the feed `url`; articles already indexed from it stay",
    responses=error_responses(400, 401, 403, 404, 409),
)
async def delete_feed(url: str, settings: SettingsDep) -> FeedInfo:
    return await run_in_threadpool(remove_feed, settings, url)


@router.post(
    "/v1/feeds/update",
    response_model=FeedsUpdated,
    dependencies=[UploadsAllowed],
    summary="Poll the feeds now (conditional GET) and index items not seen before; a failing feed or page is reported "
    "per feed",
    responses=error_responses(400, 401, 403, 404, 409, 503),
)
async def post_update(
    runtime: RuntimeDep, pipeline: WriterPipelineDep, body: FeedsUpdateRequest | None = None
) -> FeedsUpdated:
    report = await run_update(runtime, pipeline, urls=body.urls if body else None)
    idx = report.index
    return FeedsUpdated(
        feeds=report.feeds,
        added=idx.added,
        updated=idx.updated,
        generation=pipeline.index.generation,
        total_documents=len(pipeline.index.manifest.documents),
    )


async def run_update(runtime: Runtime, pipeline: Pipeline, *, urls: list[str] | None = None) -> UpdateReport:
    index, report = await run_in_threadpool(update_feeds, runtime.settings, lambda: pipeline.embedder, urls=urls)
    if index is not None:
        await runtime.adopt(pipeline, index)
    return report


async def update_periodically(runtime: Runtime, interval_s: float) -> None:
    """`rag serve` with RAG_FEEDS_UPDATE_INTERVAL_S: an update every interval, the first one interval after
    start-up. A failure is logged and the loop goes on; a feed that is down now may be back next time."""
    while True:
        await asyncio.sleep(interval_s)
        if runtime.pipeline is None:
            continue  # the models did not load; /readyz says why
        try:
            report = await run_update(runtime, runtime.pipeline)
        except RagError as exc:
            log.warning("feed update failed: %s", exc)
            continue
        except Exception:
            log.exception("feed update failed")
            continue
        for feed in report.feeds:
            if feed.error or feed.skipped:
                log.warning(
                    "feed %s: %s", feed.url, feed.error or "; ".join(f"{s.path}: {s.reason}" for s in feed.skipped)
                )
        if report.index.changed:
            log.info(
                "feeds: %d added, %d updated (generation %d)",
                len(report.index.added),
                len(report.index.updated),
                report.index.generation,
            )


def start_updates(runtime: Runtime) -> asyncio.Task | None:
    interval = runtime.settings.feeds_update_interval_s
    return asyncio.create_task(update_periodically(runtime, interval)) if interval > 0 else None

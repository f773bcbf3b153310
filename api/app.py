"""The HTTP app: `create_app(settings)` builds one, with the index and models loaded once at start-up.

Tests inject a Pipeline built from fakes; `rag serve` passes none and the lifespan loads the real one. If
loading fails (a model missing, a corrupt index) the server still starts: /healthz answers, /readyz and every
other route say why with a 503, instead of the process dying in a restart loop. With no index yet the models
load and the server waits for one: each request looks for it, and an upload creates it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from api.admission import MODEL_CLASSES, Admission
from api.deps import Auth, Runtime
from api.errors import install_error_handlers
from api.guard import RequestGuard
from api.metrics import Metrics, MetricsMiddleware
from api.queue import GenerationQueue
from api.routes import ask, check, documents, feeds, health, openai_compat, search, web
from rag import __version__
from rag.answer.pipeline import Pipeline
from rag.core.errors import RagError
from rag.core.settings import SERVE_MODEL_SLOTS, Settings

log = logging.getLogger("newsrag.api")

MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around an upload of max_upload_bytes
MIN_BODY_LIMIT = 1024 * 1024  # JSON bodies (a long chat history) when uploads are configured tiny

DESCRIPTION = """Private question answering over news articles. Every answer sentence is checked against the
article text; citations carry the exact quote and its character span. When `RAG_API_KEY` is set, every route
but `/healthz`, `/v1/config` and the web page (`/`, `/static/`) needs `Authorization: Bearer <key>`."""


def load_pipeline(settings: Settings) -> Pipeline:
    # No index yet is no reason to stay down: the models load now, the index when `rag index` or the first
    # upload makes one (Runtime.serving_pipeline).
    return Pipeline.from_settings(settings, with_generator=settings.generator_backend != "none", missing_index_ok=True)


def model_queue(settings: Settings, metrics: Metrics) -> GenerationQueue:
    limits = {k: v for k in MODEL_CLASSES if (v := settings.admission_limits.get(k)) is not None}
    deadlines = {k: settings.admission_deadlines_s[k] for k in MODEL_CLASSES}
    return GenerationQueue(
        settings.queue_max,
        settings.queue_timeout_s,
        limits=limits,
        deadlines_s=deadlines,
        observer=metrics,
        slots=settings.model_slots or 1,
    )


def create_app(settings: Settings | None = None, pipeline: Pipeline | None = None) -> FastAPI:
    settings = settings or Settings()
    if settings.query_threads is None:
        # Requests embed while llama.cpp generates for another: one thread each, not competing OpenMP teams.
        settings = settings.model_copy(update={"query_threads": 1})
    if settings.model_slots is None:
        # Readers arrive at once here: answers are decoded together rather than each waiting for the last.
        settings = settings.model_copy(update={"model_slots": SERVE_MODEL_SLOTS})
    metrics = Metrics()
    runtime = Runtime(
        settings=settings, metrics=metrics, queue=model_queue(settings, metrics), admission=Admission(settings, metrics)
    )
    if pipeline is not None:
        runtime.attach(pipeline)
    metrics.bind(
        queue_depth=lambda: runtime.queue.depth,
        in_flight=lambda: runtime.queue.in_flight,
        index_stats=runtime.index_stats,
        ready=lambda: runtime.ready,
    )
    for klass, lane in runtime.admission.lanes.items():
        metrics.bind_admission(
            klass, depth=lambda lane=lane: lane.waiting, in_flight=lambda lane=lane: lane.running + lane.waiting
        )
    metrics.bind_model(lambda: runtime.queue.busy_seconds)
    for klass in MODEL_CLASSES:
        metrics.bind_admission(
            klass, depth=partial(runtime.queue.pending, klass), in_flight=partial(runtime.queue.admitted, klass)
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime.pipeline is None:
            try:
                runtime.attach(await anyio.to_thread.run_sync(load_pipeline, settings))
                docs, passages, generation = runtime.index_stats()
                log.info("ready: %d documents, %d passages (index generation %d)", docs, passages, generation)
            except RagError as exc:
                runtime.load_error = exc
                log.error("not ready: %s", exc)
        updates = feeds.start_updates(runtime)  # None unless RAG_FEEDS_UPDATE_INTERVAL_S is set
        yield
        if updates is not None:
            updates.cancel()
        runtime.admission.shutdown()

    app = FastAPI(
        title="newsrag",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served below, behind the API key when one is set
        redoc_url=None,
        openapi_url=None,
    )
    app.state.runtime = runtime

    # Innermost: the catch-all, then the body limit (ours, not FastAPI's max_body_size, whose 413 is plain text).
    install_error_handlers(app, max_body_size=max(settings.max_upload_bytes + MULTIPART_OVERHEAD, MIN_BODY_LIMIT))
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Retry-After"],
        )
    app.add_middleware(RequestGuard, settings=settings)  # before CORS and every route: see api/guard.py
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: sees the final status of everything

    app.include_router(health.router)  # /healthz is open; /readyz and /metrics carry the key check themselves
    app.include_router(web.router)  # the page and /v1/config are open: the page asks for the key, the data needs it
    app.mount("/static", web.PageFiles(directory=web.STATIC_DIR), name="static")
    for module in (ask, check, openai_compat, search, documents, feeds):
        app.include_router(module.router, dependencies=[Auth])
    add_docs_routes(app)
    return app


def add_docs_routes(app: FastAPI) -> None:
    @app.get("/openapi.json", include_in_schema=False, dependencies=[Auth])
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Auth])
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="newsrag API")

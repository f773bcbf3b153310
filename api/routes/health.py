"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import Auth, RuntimeDep
from api.errors import error_response
from api.schemas import Health, IndexStats, Readiness, error_responses
from rag.core.errors import RagError

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is up (no key needed)")
async def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    dependencies=[Auth],
    summary="Index and models loaded",
    responses=error_responses(401, 503),
)
async def readyz(request: Request, runtime: RuntimeDep) -> Readiness | JSONResponse:
    try:
        pipeline = await run_in_threadpool(runtime.serving_pipeline)
    except RagError as exc:
        return error_response(request, 503, "not_ready", str(exc), {"Retry-After": "5"})
    documents, passages, generation = runtime.index_stats()
    generator = getattr(pipeline.generator, "name", None)
    return Readiness(
        index=IndexStats(documents=documents, passages=passages, generation=generation),
        embedder=pipeline.embedder.name,
        generator=generator,
    )


@router.get(
    "/metrics",
    dependencies=[Auth],
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(runtime: RuntimeDep) -> Response:
    body, content_type = runtime.metrics.render()
    return Response(body, media_type=content_type)

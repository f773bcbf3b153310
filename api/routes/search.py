"""POST /v1/search: the passages retrieval ranks highest, without generating anything."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter

from api.deps import PipelineDep, RuntimeDep
from api.schemas import PassageOut, SearchRequest, SearchResponse, error_responses

router = APIRouter(tags=["search"])


# Embedding the query runs in the CPU pool, behind the search lane (api/admission.py).
@router.post(
    "/v1/search",
    response_model=SearchResponse,
    summary="Hybrid, dense or BM25 passage search",
    responses=error_responses(400, 401, 413, 422, 503),
)
async def search(body: SearchRequest, runtime: RuntimeDep, pipeline: PipelineDep) -> SearchResponse:
    find = partial(
        pipeline.search, body.query, top_k=body.top_k, since=body.since, until=body.until, method=body.method
    )
    results = await runtime.admission.run("search", find)
    return SearchResponse(query=body.query, results=[PassageOut.of(r) for r in results])

"""POST /v1/search: the passages retrieval ranks highest, without generating anything."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import PipelineDep
from api.schemas import PassageOut, SearchRequest, SearchResponse, error_responses

router = APIRouter(tags=["search"])


# A plain `def`: FastAPI runs it in the threadpool, where embedding the query may take its time.
@router.post("/v1/search", response_model=SearchResponse, summary="Hybrid, dense or BM25 passage search", responses=error_responses(400, 401, 413, 422, 503))
def search(body: SearchRequest, pipeline: PipelineDep) -> SearchResponse:
    results = pipeline.search(body.query, top_k=body.top_k, since=body.since, until=body.until, method=body.method)
    return SearchResponse(query=body.query, results=[PassageOut.of(r) for r in results])

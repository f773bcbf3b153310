"""POST /v1/check: the archive's verdict on a claim, with the quotes that support or contradict it."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter

from api.deps import PipelineDep, RuntimeDep
from api.schemas import CheckRequest, CheckResponse, error_responses
from rag.answer.pipeline import check_request

router = APIRouter(tags=["check"])


# Retrieval, the lexical checks and the judge are CPU work: the request waits in the extractive lane, like a
# question that is answered by quoting (api/admission.py).
@router.post(
    "/v1/check",
    response_model=CheckResponse,
    summary="Check a claim against the indexed articles: supported, contradicted or not_found",
    responses=error_responses(400, 401, 413, 422, 503),
)
async def check(body: CheckRequest, runtime: RuntimeDep, pipeline: PipelineDep) -> CheckResponse:
    check_request(pipeline.settings, body.claim, top_k=body.top_k, since=body.since, until=body.until, as_of=body.as_of)
    work = partial(pipeline.check, body.claim, top_k=body.top_k, since=body.since, until=body.until, as_of=body.as_of)
    return CheckResponse.of(await runtime.admission.run("extractive", work))

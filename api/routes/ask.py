"""POST /v1/ask: a verified answer with citations, as JSON or as Server-Sent Events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from api.deps import PipelineDep, RuntimeDep
from api.errors import payload_for
from api.runner import AskJob, AskParams
from api.schemas import AskRequest, AskResponse, error_responses

router = APIRouter(tags=["ask"])

SSE_DOC = """With `"stream": true` the reply is `text/event-stream`:

* `event: token` — `{"text": "..."}` pieces of the model's **unverified draft**, as they are generated;
* `event: answer` — the final AskResponse: the **verified** answer text, citations and timings;
* `event: error` — `{"error": {...}}` if something failed after the stream began.

Closing the connection stops generation."""


@router.post(
    "/v1/ask",
    response_model=AskResponse,
    summary="Answer a question from the indexed articles, with verified citations",
    description=SSE_DOC,
    responses={200: {"content": {"text/event-stream": {}}}, **error_responses(400, 401, 413, 422, 503)},
)
async def ask(
    body: AskRequest, request: Request, runtime: RuntimeDep, pipeline: PipelineDep
) -> AskResponse | EventSourceResponse:
    params = AskParams(
        question=body.question,
        mode=body.mode,
        top_k=body.top_k,
        since=body.since,
        until=body.until,
        as_of=body.as_of,
        history=body.history,
    )
    job = AskJob(runtime, pipeline, params, stream=body.stream)
    if not body.stream:
        return AskResponse.of(await job.run(request))
    return EventSourceResponse(sse_events(job), ping=15, background=BackgroundTask(job.release_if_never_started))


async def sse_events(job: AskJob) -> AsyncIterator[ServerSentEvent]:
    async for kind, value in job.events():
        if kind == "token":
            yield ServerSentEvent(event="token", data=json.dumps({"text": value}, ensure_ascii=False))
        elif kind == "answer":
            yield ServerSentEvent(event="answer", data=AskResponse.of(value).model_dump_json())
        else:
            _, body = payload_for(value)
            yield ServerSentEvent(event="error", data=json.dumps(body, ensure_ascii=False))

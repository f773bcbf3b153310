"""OpenAI-compatible chat completions and model list, so existing clients and UIs can ask the articles.

The answer text carries [n] markers and ends with a "Sources:" block; the verified citations also travel
as a `citations` field (on the last chunk when streaming). Streaming sends only verified text: an OpenAI
client shows every delta it receives and cannot take back a draft sentence that verification removes,
so the stream opens at once and the checked answer follows when it is ready.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from api.deps import PipelineDep, RuntimeDep
from api.errors import payload_for
from api.openai_schemas import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionRequest,
    ChunkChoice,
    ChunkDelta,
    CompletionUsage,
    ModelCard,
    ModelList,
)
from api.runner import AskJob, AskParams
from api.schemas import CitationOut, error_responses
from rag.core.errors import BadInputError, DocumentNotFoundError
from rag.core.types import Answer, ChatTurn
from rag.verify.citations import copies_line

router = APIRouter(tags=["openai"])

MODEL_ID = "newsrag"
SOURCES_HEADINGS = ("\n\nSources:\n", "\n\nClosest sources:\n")
WORDS_PER_CHUNK = 3


def params_from_messages(body: ChatCompletionRequest) -> AskParams:
    """The last user message is the question; earlier user/assistant turns are history. System prompts are
    ignored: the answer prompt is ours, since verification depends on it."""
    turns = [m for m in body.messages if m.role in ("user", "assistant")]
    if not turns or turns[-1].role != "user":
        raise BadInputError("the last message must have role 'user': it is the question")
    history = [ChatTurn(role=m.role, content=strip_sources(m.text())) for m in turns[:-1] if m.text().strip()]  # type: ignore[arg-type]
    return AskParams(
        question=turns[-1].text(),
        mode=body.mode,
        top_k=body.top_k,
        since=body.since,
        until=body.until,
        as_of=body.as_of,
        history=history,
    )


def strip_sources(text: str) -> str:
    # Our own earlier replies come back as history; their source lists would only confuse the rewrite.
    for heading in SOURCES_HEADINGS:
        text = text.split(heading, 1)[0]
    return text


def content_with_sources(answer: Answer) -> str:
    if answer.citations:
        entries = []
        for c in sorted(answer.citations, key=lambda c: c.number):  # one per passage, its quotes beneath
            quotes = "".join(f'\n    "{q.text}"' for q in c.all_quotes())
            copies = f"\n    {copies_line(c.also_in)}" if c.also_in else ""
            entries.append(
                f"[{c.number}] {c.title or c.doc_id} — {c.source or 'unknown source'}, "
                f"{c.date or 'undated'}{copies}{quotes}"
            )
        return answer.text + SOURCES_HEADINGS[0] + "\n".join(entries)
    docs: dict[str, str] = {}
    for sp in answer.sources:
        m = sp.passage.meta
        docs.setdefault(
            sp.passage.doc_id,
            f"- {m.title or sp.passage.doc_id} — {m.source or 'unknown source'}, {m.date or 'undated'}",
        )
    return answer.text + (SOURCES_HEADINGS[1] + "\n".join(docs.values()) if docs else "")


def text_pieces(text: str, words: int = WORDS_PER_CHUNK) -> list[str]:
    """Split into small deltas whose concatenation is exactly `text`."""
    tokens = re.split(r"(?<=\s)(?=\S)", text)
    return ["".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletion,
    summary="OpenAI-compatible chat completion over the indexed articles",
    description="Extra fields `mode`, `top_k`, `since`, `until` may be sent (OpenAI clients: `extra_body`); OpenAI "
    "sampling fields are accepted and ignored.",
    responses={200: {"content": {"text/event-stream": {}}}, **error_responses(400, 401, 413, 422, 503)},
)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, runtime: RuntimeDep, pipeline: PipelineDep
) -> ChatCompletion | EventSourceResponse:
    job = AskJob(runtime, pipeline, params_from_messages(body), stream=bool(body.stream))
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    if body.stream:
        stream = chunk_stream(job, completion_id, created)
        return EventSourceResponse(stream, ping=15, background=BackgroundTask(job.release_if_never_started))
    answer = await job.run(request)
    return ChatCompletion(
        id=completion_id,
        created=created,
        model=MODEL_ID,
        choices=[ChatChoice(message=ChatCompletionMessage(content=content_with_sources(answer)))],
        usage=CompletionUsage.of(answer.timings),
        citations=[CitationOut.of(c) for c in answer.citations],
        abstained=answer.abstained,
        timings=answer.timings,
    )


async def chunk_stream(job: AskJob, completion_id: str, created: int) -> AsyncIterator[str]:
    def chunk(delta: ChunkDelta, **extra) -> str:
        body = ChatCompletionChunk(
            id=completion_id,
            created=created,
            model=MODEL_ID,
            choices=[ChunkChoice(delta=delta, finish_reason=extra.pop("finish_reason", None))],
            **extra,
        )
        data = {k: v for k, v in body.model_dump(mode="json").items() if v is not None}  # extras only where they apply
        data["choices"][0]["delta"] = delta.model_dump(exclude_none=True)
        return json.dumps(data, ensure_ascii=False)

    yield chunk(ChunkDelta(role="assistant", content=""))
    async for kind, value in job.events():
        if kind == "token":
            continue  # drafts stay server-side; see the module docstring
        if kind == "error":
            _, body = payload_for(value, openai=True)
            yield json.dumps(body, ensure_ascii=False)  # OpenAI clients raise APIError on a data line with "error"
            break
        for piece in text_pieces(content_with_sources(value)):
            yield chunk(ChunkDelta(content=piece))
        yield chunk(
            ChunkDelta(),
            finish_reason="stop",
            usage=CompletionUsage.of(value.timings),
            citations=[CitationOut.of(c) for c in value.citations],
            abstained=value.abstained,
            timings=value.timings,
        )
    yield "[DONE]"


@router.get("/v1/models", response_model=ModelList, summary="The one model this server offers (OpenAI-compatible)")
async def list_models() -> ModelList:
    return ModelList(data=[ModelCard(id=MODEL_ID)])


@router.get("/v1/models/{model_id}", response_model=ModelCard, responses=error_responses(404))
async def get_model(model_id: str) -> ModelCard:
    if model_id != MODEL_ID:
        raise DocumentNotFoundError(f"no model {model_id!r}; this server offers {MODEL_ID!r}")
    return ModelCard(id=MODEL_ID)

"""OpenAI-compatible request and response bodies (/v1/chat/completions, /v1/models), so OpenAI clients work
unchanged against the server."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from api.schemas import SINCE_DOC, UNTIL_DOC, ApiRequest, CitationOut, ModeField
from rag.core.types import Timings


class ContentPart(ApiRequest):
    type: str
    text: str | None = None


class ChatMessage(ApiRequest):
    role: str
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class ChatCompletionRequest(ApiRequest):
    model: str = "newsrag"
    messages: list[ChatMessage]
    stream: bool = False
    # Our extras; OpenAI clients send them through `extra_body`.
    mode: ModeField | None = None
    top_k: int | None = None
    since: str | None = Field(None, description=SINCE_DOC)
    until: str | None = Field(None, description=UNTIL_DOC)
    as_of: str | None = None


class ChatCompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatCompletionMessage
    finish_reason: Literal["stop", "length"] = "stop"


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, t: Timings) -> CompletionUsage:
        return cls(
            prompt_tokens=t.prompt_tokens,
            completion_tokens=t.completion_tokens,
            total_tokens=t.prompt_tokens + t.completion_tokens,
        )


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: CompletionUsage
    citations: list[CitationOut] = Field(
        description="verified citations; the [n] in the content refer to these numbers"
    )
    abstained: bool
    timings: Timings


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    finish_reason: Literal["stop", "length"] | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
    citations: list[CitationOut] | None = Field(None, description="on the final chunk only")
    abstained: bool | None = None
    timings: Timings | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "newsrag"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]

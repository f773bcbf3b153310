"""Small stand-ins for the models, so most tests run in milliseconds."""

from __future__ import annotations

from collections.abc import Iterator

from rag.generator import Message, Usage


class ScriptedGenerator:
    """Replies with scripted texts in turn (the last one repeats), streamed word by word."""

    name = "scripted"

    def __init__(self, *replies: str):
        self.replies = list(replies) or [""]
        self.calls: list[list[Message]] = []
        self.usage = Usage()

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(self, messages: list[Message], *, max_tokens: int, temperature: float, stop: list[str] | None = None) -> Iterator[str]:
        self.calls.append(messages)
        reply = self.replies[min(len(self.calls) - 1, len(self.replies) - 1)]
        self.usage = Usage(prompt_tokens=sum(self.count_tokens(m["content"]) for m in messages))
        for i, word in enumerate(reply.split(" ")):
            self.usage.completion_tokens += 1
            yield word if i == 0 else " " + word

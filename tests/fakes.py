"""Small stand-ins for the models, so most tests run in milliseconds."""

from __future__ import annotations

from collections.abc import Iterator

from rag.decision import BASE_FEATURES as FEATURES, DecisionModel
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

    def stream(self, messages: list[Message], *, max_tokens: int, temperature: float, stop: list[str] | None = None, priority: bool = False) -> Iterator[str]:
        self.calls.append(messages)
        reply = self.replies[min(len(self.calls) - 1, len(self.replies) - 1)]
        self.usage = Usage(prompt_tokens=sum(self.count_tokens(m["content"]) for m in messages))
        for i, word in enumerate(reply.split(" ")):
            self.usage.completion_tokens += 1
            yield word if i == 0 else " " + word


class KeywordReader:
    """A reader that finds an answer in any text holding `keyword`; records what it was asked to read."""

    name = "keyword"

    def __init__(self, keyword: str):
        self.keyword = keyword.lower()
        self.calls: list[tuple[str, list[str]]] = []

    def score(self, question: str, texts: list[str]) -> list[float]:
        self.calls.append((question, texts))
        return [0.9 if self.keyword in t.lower() else 0.1 for t in texts]


def strength_rule(threshold: float = 0.2) -> DecisionModel:
    """An answer decision that answers when the best sentence's relevance reaches `threshold` and the question
    names nothing the evidence lacks: with the hashing embedder, real fitted weights would mean nothing."""
    weights = [0.0] * len(FEATURES)
    weights[FEATURES.index("strength")] = 40.0
    weights[FEATURES.index("missing_names")] = -60.0
    return DecisionModel(weights=weights, bias=-40.0 * threshold, mean=[0.0] * len(FEATURES), scale=[1.0] * len(FEATURES), threshold=0.5, confident=0.9)

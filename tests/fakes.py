"""Small stand-ins for the models, so most tests run in milliseconds."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import numpy as np

from rag.answer.decision import BASE_FEATURES as FEATURES
from rag.answer.decision import DecisionModel
from rag.models.embedding import normalise
from rag.models.generator import Message, Usage


class ScriptedGenerator:
    """Replies with scripted texts in turn (the last one repeats), streamed word by word."""

    name = "scripted"

    def __init__(self, *replies: str):
        self.replies = list(replies) or [""]
        self.calls: list[list[Message]] = []
        self.usage = Usage()

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int,
        temperature: float,
        stop: list[str] | None = None,
        priority: bool = False,
    ) -> Iterator[str]:
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
    return DecisionModel(
        weights=weights,
        bias=-40.0 * threshold,
        mean=[0.0] * len(FEATURES),
        scale=[1.0] * len(FEATURES),
        threshold=0.5,
        confident=0.9,
    )


_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Deterministic bag-of-words hashing vectors: no model, for fast tests and as a model-free fallback."""

    backend = "hashing"
    quantization = "none"

    def __init__(self, dimension: int = 256, name: str = "hashing"):
        self.dimension = dimension
        self.name = f"{name}-{dimension}"

    def embed(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dimension
                sign = 1.0 if digest[4] & 1 else -1.0
                out[row, bucket] += sign
        return normalise(out)


class KeywordJudge:
    """A judge that reads entailment in a quote holding one of `entails`, contradiction in one holding one of
    `contradicts`, and nothing elsewhere; records what it was asked."""

    name = "keyword-judge"

    def __init__(self, entails: tuple[str, ...] = (), contradicts: tuple[str, ...] = ()):
        self.entails = tuple(w.lower() for w in entails)
        self.contradicts = tuple(w.lower() for w in contradicts)
        self.calls: list[tuple[str, list[str]]] = []

    def answers(self, question: str, texts: list[str]) -> list[float]:
        return [0.5 for _ in texts]

    def relation(self, claim: str, quotes: list[str]) -> list:
        from rag.models.judge import Relation

        self.calls.append((claim, quotes))
        out = []
        for quote in quotes:
            q = quote.lower()
            if any(w in q for w in self.contradicts):
                out.append(Relation(entail=0.05, contradict=0.9, neutral=0.05))
            elif any(w in q for w in self.entails):
                out.append(Relation(entail=0.9, contradict=0.05, neutral=0.05))
            else:
                out.append(Relation(entail=0.05, contradict=0.05, neutral=0.9))
        return out

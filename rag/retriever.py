"""Hybrid retrieval: dense (cosine) and BM25 candidates fused by reciprocal rank, with date filters and boosts."""

from __future__ import annotations

import calendar
import re
from datetime import date
from typing import Literal

import numpy as np

from rag.embedder import Embedder
from rag.errors import BadInputError
from rag.index import Index
from rag.settings import Settings
from rag.types import ScoredPassage

Method = Literal["hybrid", "dense", "bm25"]

_RECENCY = re.compile(r"\b(latest|most recent|newest|recently|last|current|now|today)\b", re.I)
_YEAR = re.compile(r"\b(?:in|during|since|of|from)\s+((?:19|20)\d\d)\b", re.I)


def parse_period(value: str, *, field: str = "date") -> tuple[date, date]:
    """(first day, last day) of YYYY, YYYY-MM or YYYY-MM-DD; anything else is the caller's mistake, reported clearly."""
    text = value.strip()
    try:
        if re.fullmatch(r"\d{4}", text):
            year = int(text)
            return date(year, 1, 1), date(year, 12, 31)
        if re.fullmatch(r"\d{4}-\d{2}", text):
            year, month = int(text[:4]), int(text[5:])
            return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
        day = date.fromisoformat(text)
        return day, day
    except ValueError:
        pass
    raise BadInputError(f"{field} {value!r} is not a date: use YYYY-MM-DD, YYYY-MM or YYYY")


def parse_date(value: str | date | None, *, field: str = "date", end: bool | None = None) -> date | None:
    """One bound of a date filter. A partial date names a period: `since` starts on its first day and `until`
    runs to its last (`--until 2023` keeps December). `end` picks the last day; by default it follows
    `field`, so every caller that names its field "until" gets an inclusive period without saying so."""
    if value is None or isinstance(value, date):
        return value
    first, last = parse_period(value, field=field)
    return last if (field == "until" if end is None else end) else first


def _as_date(iso: str | None) -> date | None:
    if not iso:
        return None
    try:
        return date.fromisoformat(iso[:10])
    except ValueError:
        return None


def date_intent(question: str) -> tuple[bool, int | None]:
    """(wants the most recent news, a year the question names)."""
    year = _YEAR.search(question)
    return bool(_RECENCY.search(question)), int(year.group(1)) if year else None


class Retriever:
    def __init__(self, index: Index, embedder: Embedder, settings: Settings):
        self.index = index
        self.embedder = embedder
        self.settings = settings

    def allowed_ids(self, since: date | None, until: date | None) -> set[str] | None:
        """Passages whose article date is within [since, until]. Undated articles are excluded by any filter,
        since we cannot claim they fall in the range."""
        if since is None and until is None:
            return None
        if since and until and since > until:
            raise BadInputError(f"since {since} is after until {until}")
        allowed = set()
        for p in self.index.passages:
            d = _as_date(p.meta.date)
            if d is None or (since and d < since) or (until and d > until):
                continue
            allowed.add(p.passage_id)
        return allowed

    def embed_query(self, query: str) -> np.ndarray:
        return self.embedder.embed([query])[0]

    def search(
        self,
        query: str,
        *,
        top_k: int | None = None,
        since: date | None = None,
        until: date | None = None,
        method: Method = "hybrid",
        query_vector: np.ndarray | None = None,
    ) -> list[ScoredPassage]:
        top_k = self.settings.top_k if top_k is None else top_k
        if top_k < 1 or top_k > self.settings.max_top_k:
            raise BadInputError(f"top_k must be between 1 and {self.settings.max_top_k}, got {top_k}")
        if not self.index.passages:
            return []
        allow = self.allowed_ids(since, until)
        if allow is not None and not allow:
            return []
        depth = max(self.settings.candidates, top_k)
        dense: list[tuple[str, float]] = []
        lexical: list[tuple[str, float]] = []
        if method in ("hybrid", "dense"):
            vector = query_vector if query_vector is not None else self.embed_query(query)
            dense = self.index.store.search(vector, depth, allow)
            # Stores that persist themselves (Milvus) may know ids this generation no longer holds.
            dense = [(pid, s) for pid, s in dense if pid in self.index.passage_by_id]
        if method in ("hybrid", "bm25"):
            lexical = self.index.lexical.search(query, depth, allow)
        return self._fuse(query, dense, lexical, method)[:top_k]

    def _fuse(self, query: str, dense, lexical, method: Method) -> list[ScoredPassage]:
        k = self.settings.rrf_k
        scores: dict[str, float] = {}
        dense_of = dict(dense)
        bm25_of = dict(lexical)
        weights = {"hybrid": (self.settings.dense_weight, self.settings.bm25_weight), "dense": (1.0, 0.0), "bm25": (0.0, 1.0)}[method]
        for weight, ranked in zip(weights, (dense, lexical)):
            for rank, (pid, _) in enumerate(ranked):
                scores[pid] = scores.get(pid, 0.0) + weight / (k + rank + 1)
        self._date_boost(query, scores)
        ordered = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        out = []
        for rank, (pid, score) in enumerate(ordered, start=1):
            out.append(
                ScoredPassage(
                    passage=self.index.passage_by_id[pid],
                    score=score,
                    dense_score=dense_of.get(pid),
                    bm25_score=bm25_of.get(pid),
                    rank=rank,
                )
            )
        return out

    def _date_boost(self, query: str, scores: dict[str, float]) -> None:
        """Questions about the latest news favour recent articles; "in 2024" favours articles of that year."""
        wants_recent, year = date_intent(query)
        if not (wants_recent or year) or not scores or self.settings.recency_weight == 0:
            return
        k = self.settings.rrf_k
        weight = self.settings.recency_weight
        dated = {pid: _as_date(self.index.passage_by_id[pid].meta.date) for pid in scores}
        if wants_recent:
            newest_first = sorted({d for d in dated.values() if d}, reverse=True)
            rank_of = {d: i for i, d in enumerate(newest_first)}
            for pid, d in dated.items():
                if d is not None:  # undated articles get no boost: we cannot tell they are recent
                    scores[pid] += weight / (k + rank_of[d] + 1)
        if year:
            for pid, d in dated.items():
                if d is not None and d.year == year:
                    scores[pid] += weight / (k + 1)

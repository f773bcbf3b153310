"""Hybrid retrieval: dense (cosine) and BM25 candidates fused by reciprocal rank, with date filters and boosts."""

from __future__ import annotations

import functools
from datetime import date
from typing import Literal

import numpy as np

from rag.core.errors import BadInputError
from rag.core.settings import Settings
from rag.core.types import ScoredPassage, StoryCopy
from rag.models.embedding import Embedder
from rag.search.periods import year_named
from rag.storage.index import Index
from rag.text.syndication import representative
from rag.text.timeframe import TimeFrame, age_days, as_date, days_before, resolve, utc_today

Method = Literal["hybrid", "dense", "bm25"]


class Retriever:
    def __init__(self, index: Index, embedder: Embedder, settings: Settings):
        self.index = index
        self.embedder = embedder
        self.settings = settings

    def allowed_ids(
        self,
        since: date | None,
        until: date | None,
        *,
        as_of: date | None = None,
        exclude_docs: frozenset[str] = frozenset(),
    ) -> set[str] | None:
        """Passages whose article date is within [since, until] and not after `as_of`, and whose article is not
        excluded. Undated articles are excluded by since/until, since we cannot claim they fall in the range,
        but kept under an as-of date: nothing says they were published later."""
        if as_of is not None and (self.newest is None or as_of >= self.newest or as_of >= utc_today()):
            # Nothing was published after it (no filter, and no pass over every passage); or it is today, and an
            # article dated after today is a clock or zone difference, not a report from after the question.
            as_of = None
        if since is None and until is None and as_of is None and not exclude_docs:
            return None
        if since and until and since > until:
            raise BadInputError(f"since {since} is after until {until}")
        days = self._days
        keep = np.ones(len(days), dtype=bool)
        if since or until:
            keep &= days >= 0
            if since:
                keep &= days >= since.toordinal()
            if until:
                keep &= days <= until.toordinal()
        if as_of:
            keep &= days <= as_of.toordinal()  # undated (-1) passes
        if exclude_docs:
            keep &= ~np.isin(self._doc_ids, list(exclude_docs))
        ids = self._passage_ids
        return {ids[i] for i in np.flatnonzero(keep)}

    @functools.cached_property
    def _days(self) -> np.ndarray:
        """Each passage's article date as a day number, -1 when undated: a filter is one vector comparison, not a
        date parse per passage per question (a time-worded question filters twice)."""
        return np.array(
            [d.toordinal() if (d := as_date(p.meta.date)) else -1 for p in self.index.passages], dtype=np.int64
        )

    @functools.cached_property
    def _passage_ids(self) -> list[str]:
        return [p.passage_id for p in self.index.passages]

    @functools.cached_property
    def _doc_ids(self) -> np.ndarray:
        return np.array([p.doc_id for p in self.index.passages])

    @functools.cached_property
    def newest(self) -> date | None:
        """The newest article date of this generation (a retriever lives as long as its generation)."""
        newest = int(self._days.max(initial=-1))
        return date.fromordinal(newest) if newest > 0 else None

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
        frame: TimeFrame | None = None,
        exclude_docs: frozenset[str] = frozenset(),
    ) -> list[ScoredPassage]:
        """`frame` carries an explicit as-of date (articles after it are left out) and the question's time words;
        `exclude_docs` leaves articles out without reindexing (the eval's leave-the-gold-out runs)."""
        top_k = self.settings.top_k if top_k is None else top_k
        if top_k < 1 or top_k > self.settings.max_top_k:
            raise BadInputError(f"top_k must be between 1 and {self.settings.max_top_k}, got {top_k}")
        if not self.index.passages:
            return []
        allow = self.allowed_ids(since, until, as_of=frame.as_of if frame else None, exclude_docs=exclude_docs)
        if allow is not None and not allow:
            return []
        depth = max(self.settings.candidates, top_k)
        vector = None
        if method in ("hybrid", "dense"):
            vector = query_vector if query_vector is not None else self.embed_query(query)
        lists = [self._candidates(query, vector, depth, allow, method)]
        window = self._window_allow(frame, allow, exclude_docs)
        if window:
            # The time words' own days searched on their own: an article of "this week" that paraphrases the
            # question ranks below the archive's older, wordier matches and never reaches the global candidates.
            lists.append(self._candidates(query, vector, depth, window, method))
        return self._diversify(self._fold(self._fuse(query, lists, method, frame), allow), top_k)

    def _candidates(
        self, query: str, vector: np.ndarray | None, depth: int, allow: set[str] | None, method: Method
    ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """(dense, BM25) candidates among `allow`, each list as deep as `depth`; a method's unused list is empty."""
        dense: list[tuple[str, float]] = []
        lexical: list[tuple[str, float]] = []
        if vector is not None:
            # Stores that persist themselves (Milvus) may know ids this generation no longer holds.
            dense = [
                (pid, s) for pid, s in self.index.store.search(vector, depth, allow) if pid in self.index.passage_by_id
            ]
        if method in ("hybrid", "bm25"):
            lexical = self.index.lexical.search(query, depth, allow)
        return dense, lexical

    def _window_allow(
        self, frame: TimeFrame | None, allow: set[str] | None, exclude_docs: frozenset[str]
    ) -> set[str] | None:
        if frame is None or self.settings.window_weight == 0:
            return None
        if frame.window is not None:
            start = frame.window[0]
        elif frame.wants_recent and self.settings.recent_days:
            start = days_before(frame.as_of, self.settings.recent_days)
        else:
            return None
        window = self.allowed_ids(start, frame.as_of, exclude_docs=exclude_docs)
        if window is not None and allow is not None:
            window &= allow
        if window is not None and len(window) >= (len(allow) if allow is not None else len(self.index.passages)):
            return None  # the window holds every candidate: searching it again would only repeat the lists
        return window

    @functools.cached_property
    def copies(self) -> dict[str, list[str]]:
        """For each article with syndicated copies (rag/text/syndication.py), every member of its group, representative
        first.
        """
        docs = self.index.manifest.documents
        groups: dict[str, list[str]] = {}
        for doc_id, record in docs.items():
            if record.group:
                groups.setdefault(record.group, []).append(doc_id)
        dates = {doc_id: record.date for doc_id, record in docs.items()}
        out: dict[str, list[str]] = {}
        for members in groups.values():
            if len(members) > 1:
                lead = representative(members, dates)
                ordered = [lead] + sorted((m for m in members if m != lead), key=lambda m: (dates.get(m) or "9999", m))
                out.update((m, ordered) for m in members)
        return out

    def _fold(self, ranked: list[ScoredPassage], allow: set[str] | None) -> list[ScoredPassage]:
        """One copy per story: after fusion (and date boosts) the best-scoring copy speaks for the story, the other
        copies' passages are dropped, and its passages name those copies that the date filters let through."""
        if not self.settings.fold_syndicated or not self.copies:
            return ranked
        speaker: dict[str, str] = {}  # group (its representative) -> the copy retrieved for it
        kept: list[ScoredPassage] = []
        for sp in ranked:
            members = self.copies.get(sp.passage.doc_id)
            if members is not None:
                lead = speaker.setdefault(members[0], sp.passage.doc_id)
                if lead != sp.passage.doc_id:
                    continue
                # A copy's first passage stands for the copy: every article has one, and filters are per article.
                sp.also_in = [
                    self._story_copy(m) for m in members if m != lead and (allow is None or f"{m}#0" in allow)
                ]
            kept.append(sp)
        for rank, sp in enumerate(kept, start=1):
            sp.rank = rank
        return kept

    def _story_copy(self, doc_id: str) -> StoryCopy:
        record = self.index.manifest.documents[doc_id]
        article = self.index.articles.get(doc_id)
        return StoryCopy(
            doc_id=doc_id,
            title=record.title,
            source=record.source,
            date=record.date,
            url=article.meta.url if article else None,
        )

    def _diversify(self, ranked: list[ScoredPassage], top_k: int) -> list[ScoredPassage]:
        """At most `max_passages_per_article` passages of one article in the top k, so one long article does not
        crowd out the others (a news archive holds the same story in several articles); 0 keeps every one."""
        cap = self.settings.max_passages_per_article
        if not cap:
            return ranked[:top_k]
        kept: list[ScoredPassage] = []
        per_doc: dict[str, int] = {}
        for sp in ranked:
            if per_doc.get(sp.passage.doc_id, 0) < cap:
                per_doc[sp.passage.doc_id] = per_doc.get(sp.passage.doc_id, 0) + 1
                kept.append(sp)
                if len(kept) == top_k:
                    break
        if len(kept) < top_k:
            # Too few articles to fill the top k (a question scoped to one outlet, a narrow date filter): the
            # cap would only leave places empty, and one article's 4th passage may hold the answer.
            chosen = {id(sp) for sp in kept}
            chosen.update(id(sp) for sp in [sp for sp in ranked if id(sp) not in chosen][: top_k - len(kept)])
            kept = [sp for sp in ranked if id(sp) in chosen]  # in rank order
        for rank, sp in enumerate(kept, start=1):
            sp.rank = rank
        return kept

    def _fuse(self, query: str, lists, method: Method, frame: TimeFrame | None = None) -> list[ScoredPassage]:
        """`lists`: (dense, lexical) candidate lists, the archive's first, then the time window's."""
        k = self.settings.rrf_k
        scores: dict[str, float] = {}
        dense_of: dict[str, float] = {}
        bm25_of: dict[str, float] = {}
        weights = {
            "hybrid": (self.settings.dense_weight, self.settings.bm25_weight),
            "dense": (1.0, 0.0),
            "bm25": (0.0, 1.0),
        }[method]
        for n, (dense, lexical) in enumerate(lists):
            scale = 1.0 if n == 0 else self.settings.window_weight
            for pid, s in dense:
                dense_of.setdefault(pid, s)
            for pid, s in lexical:
                bm25_of.setdefault(pid, s)
            for weight, ranked in zip(weights, (dense, lexical)):
                for rank, (pid, _) in enumerate(ranked):
                    scores[pid] = scores.get(pid, 0.0) + scale * weight / (k + rank + 1)
        self._date_boost(query, scores, frame)
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

    def _date_boost(self, query: str, scores: dict[str, float], frame: TimeFrame | None) -> None:
        """Time words favour articles of the time they name, counted back from the as-of date: "this week" the
        week before it, "latest" the newest articles not after it; "in 2024" favours articles of that year."""
        year = year_named(query)
        frame = frame or resolve(query, utc_today())
        weight = self.settings.recency_weight
        if not (frame.has_cue or year) or not scores or weight == 0:
            return
        k = self.settings.rrf_k
        ages = {pid: age_days(self.index.passage_by_id[pid].meta.date, frame.as_of) for pid in scores}
        if frame.wants_recent:
            # By rank of age among the candidates, so an archive of old stories still has a "latest".
            newest_first = sorted({a for a in ages.values() if a is not None and a >= 0})
            rank_of = {a: i for i, a in enumerate(newest_first)}
            for pid, a in ages.items():
                if a is not None and a >= 0:  # undated articles get no boost: we cannot tell they are recent
                    scores[pid] += weight / (k + rank_of[a] + 1)
        if frame.window:
            start, end = frame.window
            span = (frame.as_of - start).days
            for pid, a in ages.items():
                if a is not None and 0 <= a <= span:
                    scores[pid] += weight / (k + 1)
        if year:
            for pid in scores:
                d = as_date(self.index.passage_by_id[pid].meta.date)
                if d is not None and d.year == year:
                    scores[pid] += weight / (k + 1)
